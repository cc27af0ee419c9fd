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
/// - `ack`: a `send` frame's message is stored (`sent`); `ref` is the frame's. The message itself
///   arrives as a `message.created` event like everyone else's.
/// - `nack`: a `send` frame was refused; `code` and `message` as an HTTP error body would have
///   them. The stream stays open.
public struct ServerFrame: Codable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case event, ephemeral, ready, error, pong, ack, nack
        case resyncRequired = "resync_required"
    }
    public var type: Kind
    public var seq: EventSeq?
    public var event: ServerEvent?
    public var code: String?
    public var message: String?
    public var ref: String?
    public var sent: SentMessage?

    public init(
        type: Kind, seq: EventSeq? = nil, event: ServerEvent? = nil, code: String? = nil, message: String? = nil, ref: String? = nil,
        sent: SentMessage? = nil
    ) {
        self.type = type
        self.seq = seq
        self.event = event
        self.code = code
        self.message = message
        self.ref = ref
        self.sent = sent
    }
}

/// What an `ack` frame says about the stored message: enough to match it to the event that
/// carries it, without sending its text back.
public struct SentMessage: Codable, Sendable, Hashable {
    public var id: MessageID
    public var chatID: ChatID
    public var chatSeq: Int64
    public var createdAt: Date
    public var clientMessageID: String?
    /// False when `client_message_id` named a message sent before: this is that message.
    public var created: Bool

    public init(id: MessageID, chatID: ChatID, chatSeq: Int64, createdAt: Date, clientMessageID: String?, created: Bool) {
        self.id = id
        self.chatID = chatID
        self.chatSeq = chatSeq
        self.createdAt = createdAt
        self.clientMessageID = clientMessageID
        self.created = created
    }
}

/// A frame a client sends on the stream.
///
/// - `auth`: for clients that cannot set an `Authorization` header (browsers): must be the
///   first frame, carrying the token. Tokens never go in URLs.
/// - `typing`: the user is typing in `chat_id`.
/// - `ping`: answered with a `pong` frame once authenticated (an application-level keep-alive
///   for clients, such as browsers, that cannot send or observe WebSocket ping control frames).
/// - `send`: posts `message` (the body of `POST /api/v1/chats/{chat_id}/messages`) to `chat_id`;
///   answered with an `ack` or `nack` frame carrying the same `ref` (at most
///   ``APILimits/maxFrameRefLength`` bytes). Sends on one stream are stored in the order they
///   were sent. Saves an HTTP request per message for clients that hold a stream open anyway.
public struct ClientFrame: Codable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case auth, typing, ping, send
    }
    public var type: Kind
    public var token: String?
    public var chatID: ChatID?
    public var ref: String?
    public var message: SendMessageRequest?

    public init(type: Kind, token: String? = nil, chatID: ChatID? = nil, ref: String? = nil, message: SendMessageRequest? = nil) {
        self.type = type
        self.token = token
        self.chatID = chatID
        self.ref = ref
        self.message = message
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
    /// A client's stream frame; as large as an HTTP body, since a `send` frame carries one.
    public static let maxStreamFrameBytes = 64 * 1024
    public static let maxFrameRefLength = 64
    public static let maxPageSize = 200
    public static let maxTitleLength = 128
    public static let maxDescriptionLength = 2048
    public static let maxClientMessageIDLength = 128
}
