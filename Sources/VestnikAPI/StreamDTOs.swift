import Foundation

/// `GET /api/v1/events?since=N&limit=M`: the HTTP catch-up, same log as the stream.
public struct EventPage: Codable, Sendable {
    public var events: [SequencedEvent]
    /// The position to pass as `since` next time.
    public var next: EventSeq
    /// More events are waiting after `next`.
    public var hasMore: Bool
    public init(events: [SequencedEvent], next: EventSeq, hasMore: Bool) {
        self.events = events
        self.next = next
        self.hasMore = hasMore
    }
}

/// A frame the server sends on `GET /api/v1/stream`.
///
/// - `event`: a durable event; remember `seq` and reconnect with `?since=seq`.
/// - `ephemeral`: typing/presence; no position.
/// - `ready`: the catch-up is complete; everything from here on is live. `seq` is the position
///   the client is at.
/// - `resync_required`: `since` is older than the log keeps. The stream stays open and continues
///   live from `seq`: refetch chats and history now, and keep applying the events that follow
///   (they are all newer than `seq`). Reconnect later with `since` ≥ `seq`.
/// - `error`: the server is closing the stream for `code` (`slow_consumer`, `session_revoked`,
///   `unauthenticated`, …); reconnect with `since` unless the code says the session is gone.
/// - `pong`: the answer to a client `ping` frame. Browsers cannot see WebSocket control frames,
///   so this is how a page notices a half-open socket (no `pong` in time: reconnect with `since`).
public struct ServerFrame: Codable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case event, ephemeral, ready, error, pong
        case resyncRequired = "resync_required"
    }
    public var type: Kind
    public var seq: EventSeq?
    public var event: ServerEvent?
    public var code: String?
    public var message: String?

    public init(type: Kind, seq: EventSeq? = nil, event: ServerEvent? = nil, code: String? = nil, message: String? = nil) {
        self.type = type
        self.seq = seq
        self.event = event
        self.code = code
        self.message = message
    }
}

/// A frame a client sends on the stream.
///
/// - `auth`: for clients that cannot set an `Authorization` header (browsers): must be the
///   first frame, carrying the token. Tokens never go in URLs.
/// - `typing`: the user is typing in `chat_id`.
/// - `ping`: answered with a `pong` frame once authenticated (an application-level keep-alive
///   for clients, such as browsers, that cannot send or observe WebSocket ping control frames).
public struct ClientFrame: Codable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case auth, typing, ping
    }
    public var type: Kind
    public var token: String?
    public var chatID: ChatID?

    public init(type: Kind, token: String? = nil, chatID: ChatID? = nil) {
        self.type = type
        self.token = token
        self.chatID = chatID
    }
}

/// `GET /healthz`, `GET /readyz`
public struct HealthResponse: Codable, Sendable {
    public var status: String
    public var version: String
    public init(status: String, version: String) {
        self.status = status
        self.version = version
    }
}

/// Limits clients should respect (the server enforces them).
public enum APILimits {
    public static let maxMessageBytes = 16 * 1024
    public static let maxRequestBodyBytes = 64 * 1024
    public static let maxStreamFrameBytes = 4 * 1024
    public static let maxPageSize = 200
    public static let maxTitleLength = 128
    public static let maxDescriptionLength = 2048
    public static let maxClientMessageIDLength = 128
}
