import VestnikModel

/// Who is asking. Every Core entry point takes one and checks policy itself, so every transport
/// passes the same checks.
package enum Principal: Sendable, Hashable {
    /// A logged-in user acting through one session.
    case user(UserID, session: SessionID)
    /// The local operator (the `vestnik admin` command with access to the data directory).
    case localAdmin

    /// The acting user, if the principal is one.
    package var userID: UserID? {
        switch self {
        case .user(let id, _): id
        case .localAdmin: nil
        }
    }
}
