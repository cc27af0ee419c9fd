import Logging
import VestnikModel

/// The one error vocabulary of the domain.
///
/// `code` is stable and machine-readable, `message` is safe to show to the caller, `cause` is
/// for the log only. The HTTP layer maps `code.category` to a status once, in one place.
package struct VestnikError: Error, Sendable, CustomStringConvertible {
    /// A stable snake_case error code with the category that decides its transport status.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        package let rawValue: String
        package let category: Category
        package init(_ rawValue: String, _ category: Category) {
            self.rawValue = rawValue
            self.category = category
        }
        package var description: String { rawValue }

        package static let invalidRequest = Code("invalid_request", .badRequest)
        package static let invalidJSON = Code("invalid_json", .badRequest)
        package static let payloadTooLarge = Code("payload_too_large", .tooLarge)
        package static let unauthenticated = Code("unauthenticated", .unauthenticated)
        package static let invalidCredentials = Code("invalid_credentials", .unauthenticated)
        package static let accountBlocked = Code("account_blocked", .forbidden)
        package static let forbidden = Code("forbidden", .forbidden)
        package static let notChatAdmin = Code("not_chat_admin", .forbidden)
        package static let channelReadOnly = Code("channel_read_only", .forbidden)
        package static let notMessageAuthor = Code("not_message_author", .forbidden)
        package static let notFound = Code("not_found", .notFound)
        package static let userNotFound = Code("user_not_found", .notFound)
        package static let chatNotFound = Code("chat_not_found", .notFound)
        package static let messageNotFound = Code("message_not_found", .notFound)
        package static let sessionNotFound = Code("session_not_found", .notFound)
        package static let loginTaken = Code("login_taken", .conflict)
        package static let conflict = Code("conflict", .conflict)
        package static let messageDeleted = Code("message_deleted", .conflict)
        package static let lastAdmin = Code("last_admin", .conflict)
        package static let rateLimited = Code("rate_limited", .rateLimited)
        package static let resyncRequired = Code("resync_required", .gone)
        package static let methodNotAllowed = Code("method_not_allowed", .methodNotAllowed)
        package static let unavailable = Code("unavailable", .unavailable)
        /// A bot that is disabled or no longer in the chat cannot take a button press. Not
        /// `unavailable`, which says the service itself (its database) is down.
        package static let botUnavailable = Code("bot_unavailable", .unavailable)
        /// A bot addressed a message to nobody who can receive it.
        package static let recipientsEmpty = Code("event_recipients_list_is_empty", .badRequest)
        /// A bot sent in stealth mode to a chat where stealth is off.
        package static let stealthDisabled = Code("stealth_mode_disabled", .badRequest)
        package static let internalError = Code("internal_error", .internalError)
    }

    /// How a transport should classify the error.
    package enum Category: Sendable {
        case badRequest, unauthenticated, forbidden, notFound, methodNotAllowed, conflict, gone, tooLarge,
            rateLimited, unavailable, internalError
    }

    package var code: Code
    package var message: String
    /// Logged, never shown to a client.
    package var cause: (any Error)?
    /// Seconds the caller should wait (for `rate_limited`).
    package var retryAfter: Int?

    package init(_ code: Code, _ message: String, cause: (any Error)? = nil, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
        self.retryAfter = retryAfter
    }

    package var description: String {
        "\(code.rawValue): \(message)" + (cause.map { " (cause: \($0))" } ?? "")
    }

    /// What an error that reached a transport means in the domain's terms: a ``VestnikError``
    /// as it is, a store failure as ``StoreError/mapped(_:)`` says, a cancelled request as the
    /// server shutting down; nil for errors only the transport knows (its own HTTP and decoding
    /// errors). Every edge (the client API, BotX) starts from this, so they agree.
    package static func reaching(_ error: any Error) -> VestnikError? {
        switch error {
        case let error as VestnikError: error
        // Services that call the store without ``CoreContext`` (logins, session writes).
        case let error as StoreError: error.mapped("Internal error.")
        case is CancellationError: VestnikError(.unavailable, "The server is shutting down.")
        default: nil
        }
    }

    package static func invalid(_ message: String) -> VestnikError { VestnikError(.invalidRequest, message) }

    /// Whether this is the `conflict` of a uniqueness race on the store's key `what` (see
    /// ``CoreContext/write(intent:_:)``): a concurrent writer stored the same thing first.
    package func isDuplicate(of what: String) -> Bool {
        guard code == .conflict, case .duplicate(let duplicated)? = cause as? StoreError else { return false }
        return duplicated == what
    }
    package static let chatNotFound = VestnikError(.chatNotFound, "Chat not found.")
    package static let messageNotFound = VestnikError(.messageNotFound, "Message not found.")
    package static let userNotFound = VestnikError(.userNotFound, "User not found.")
}

/// Errors a store adapter may throw. Core translates them; nothing above Core sees them.
package enum StoreError: Error, Sendable {
    /// A uniqueness constraint failed (`what` names the constraint, e.g. `login`).
    case duplicate(what: String)
    /// The backend failed; the detail is for the log.
    case backend(String)
    /// The database cannot be reached right now (a server that stopped, restarts or is cut
    /// off); the request may succeed if retried shortly. The detail is for the log.
    case unavailable(String)
    /// A concurrent transaction (another node's) won a deadlock or a serialization check: this
    /// one stored nothing, and running it again may succeed (``GroupCommit`` does so once).
    case contention(String)

    /// What clients are told for a store failure: a store they can retry against later is
    /// `unavailable` (503), a transaction that lost to a concurrent one `conflict` (409, retry),
    /// anything else an internal error.
    package func mapped(_ message: String) -> VestnikError {
        switch self {
        case .unavailable:
            VestnikError(.unavailable, "The database is not reachable right now; try again shortly.", cause: self)
        case .contention:
            VestnikError(.conflict, "The request conflicts with a concurrent change; retry.", cause: self)
        case .duplicate, .backend:
            VestnikError(.internalError, message, cause: self)
        }
    }
}

extension Logger {
    /// Logs a failure of background work (a poll, a listener, housekeeping) that will run again.
    ///
    /// Why not always a warning: while the database is unreachable every background loop fails
    /// several times a second, which would bury the one line that matters. The store logs the
    /// outage once as an error and its end as a notice (decision 0014); meanwhile these
    /// failures go out at debug level.
    package func backgroundFailure(_ message: @autoclosure () -> Logger.Message, _ error: any Error, metadata: Logger.Metadata = [:]) {
        var metadata = metadata
        metadata["vestnik.error"] = "\(error)"
        log(level: Self.isUnavailable(error) ? .debug : .warning, message(), metadata: metadata)
    }

    private static func isUnavailable(_ error: any Error) -> Bool {
        switch error {
        case StoreError.unavailable: true
        case let error as VestnikError: error.code == .unavailable
        default: false
        }
    }
}
