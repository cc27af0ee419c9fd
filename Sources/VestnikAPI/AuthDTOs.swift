import Foundation
@_exported import VestnikModel

/// `POST /api/v1/auth/login`
public struct LoginRequest: Codable, Sendable {
    public var login: String
    public var password: String
    /// A name the user recognises in their session list ("Firefox on office PC").
    public var deviceName: String

    public init(login: String, password: String, deviceName: String) {
        self.login = login
        self.password = password
        self.deviceName = deviceName
    }
}

/// The answer to a successful login. The token is shown once and never again.
public struct LoginResponse: Codable, Sendable {
    public var token: String
    public var session: Session
    public var user: User

    public init(token: String, session: Session, user: User) {
        self.token = token
        self.session = session
        self.user = user
    }
}

/// `GET /api/v1/sessions`
public struct SessionList: Codable, Sendable {
    public var sessions: [SessionInfo]
    public init(sessions: [SessionInfo]) { self.sessions = sessions }
}

/// A session plus whether it is the one making the request.
public struct SessionInfo: Codable, Sendable, Hashable {
    public var session: Session
    public var current: Bool
    public init(session: Session, current: Bool) {
        self.session = session
        self.current = current
    }
}

/// A directory entry with live presence.
public struct UserProfile: Codable, Sendable, Hashable {
    public var user: User
    public var presence: Presence
    public init(user: User, presence: Presence) {
        self.user = user
        self.presence = presence
    }
}

/// `GET /api/v1/users?q=…`
public struct UserList: Codable, Sendable {
    public var users: [UserProfile]
    public init(users: [UserProfile]) { self.users = users }
}

/// The error body every failing endpoint returns.
public struct ErrorResponse: Codable, Sendable {
    public struct Body: Codable, Sendable {
        /// Stable, machine-readable snake_case code (`chat_not_found`).
        public var code: String
        /// Human-readable, safe to show.
        public var message: String
        public var requestID: String?
        public init(code: String, message: String, requestID: String?) {
            self.code = code
            self.message = message
            self.requestID = requestID
        }
    }
    public var error: Body
    public init(error: Body) { self.error = error }
}
