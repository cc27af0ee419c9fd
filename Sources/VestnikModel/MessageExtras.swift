import Foundation

/// The parts of a message beyond text and mentions: bot buttons and metadata, recipients,
/// attachments, stealth. Stored as one JSON value so new parts (the file service's attachments)
/// need no new columns; every field is optional so older stored values keep decoding.
public struct MessageExtras: Hashable, Sendable, Codable {
    public var bubble: [[BotButton]]?
    public var keyboard: [[BotButton]]?
    public var metadata: JSONValue?
    public var recipients: [UserID]?
    public var attachments: [Attachment]?
    public var silentResponse: Bool?
    public var stealth: Bool?

    public init(
        bubble: [[BotButton]]? = nil, keyboard: [[BotButton]]? = nil, metadata: JSONValue? = nil, recipients: [UserID]? = nil,
        attachments: [Attachment]? = nil, silentResponse: Bool? = nil, stealth: Bool? = nil
    ) {
        self.bubble = bubble
        self.keyboard = keyboard
        self.metadata = metadata
        self.recipients = recipients
        self.attachments = attachments
        self.silentResponse = silentResponse
        self.stealth = stealth
    }

    /// True when nothing is set (then nothing is stored).
    public var isEmpty: Bool { self == MessageExtras() }
}

/// A button a bot put under a message or the input field.
///
/// Pressing it sends `command` (or the label) back to the bot with `data`, the message's
/// metadata and the message id (BotX `source_sync_id`).
public struct BotButton: Hashable, Sendable, Codable {
    public var command: String?
    public var label: String
    public var data: JSONValue?
    /// Not shown in the chat when pressed.
    public var silent: Bool
    public var align: String?
    /// Width ratio within the row.
    public var hSize: Int?
    public var fontColor: String?
    public var backgroundColor: String?
    public var showAlert: Bool?
    public var alertText: String?
    /// `client`: handled by the client (e.g. opening `link`), never sent to the bot.
    public var handler: String?
    public var link: String?

    public init(
        command: String?, label: String, data: JSONValue? = nil, silent: Bool = false, align: String? = nil, hSize: Int? = nil,
        fontColor: String? = nil, backgroundColor: String? = nil, showAlert: Bool? = nil, alertText: String? = nil,
        handler: String? = nil, link: String? = nil
    ) {
        self.command = command
        self.label = label
        self.data = data
        self.silent = silent
        self.align = align
        self.hSize = hSize
        self.fontColor = fontColor
        self.backgroundColor = backgroundColor
        self.showAlert = showAlert
        self.alertText = alertText
        self.handler = handler
        self.link = link
    }
}

/// A file carried with a message.
///
/// Today files are inline (`data` is base64, bounded by the server's inline limit). The file
/// service will add a `fileID` form; clients should treat `data` as optional.
public struct Attachment: Hashable, Sendable, Codable {
    /// `image`, `video`, `document` or `voice`, from the MIME type.
    public var type: String
    public var fileName: String
    public var mimeType: String
    public var size: Int
    /// Base64 content, for inline attachments.
    public var data: String?

    public init(type: String, fileName: String, mimeType: String, size: Int, data: String?) {
        self.type = type
        self.fileName = fileName
        self.mimeType = mimeType
        self.size = size
        self.data = data
    }
}

/// Any JSON value: opaque data owned by bots (`metadata`, button `data`).
///
/// Objects are coded as dictionaries, whose keys no key-conversion strategy touches, so bot data
/// round-trips exactly through ``VestnikJSON`` (which converts the keys of Vestnik's own types).
public enum JSONValue: Hashable, Sendable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let value = try? c.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? c.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? c.decode(Double.self) {
            self = .double(value)
        } else if let value = try? c.decode(String.self) {
            self = .string(value)
        } else if let value = try? c.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let v): try c.encode(v)
        case .int(let v): try c.encode(v)
        case .double(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .array(let v): try c.encode(v)
        case .object(let v): try c.encode(v)
        }
    }

    /// An empty object, BotX's default for `data` and `metadata`.
    public static let emptyObject = JSONValue.object([:])

    /// The string, if this is one.
    public var stringValue: String? {
        if case .string(let s) = self { s } else { nil }
    }

    /// The member `key`, if this is an object that has it.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { o[key] } else { nil }
    }
}
