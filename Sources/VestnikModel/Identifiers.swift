import Foundation

/// A typed identifier over a UUID, so a `UserID` can never be passed where a `ChatID` is expected.
///
/// On the wire and in storage it is the lowercase UUID string (BotX uses the same form for
/// `huid`, `group_chat_id` and `sync_id`).
public struct Identifier<Tag>: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let uuid: UUID

    public init(_ uuid: UUID) { self.uuid = uuid }

    /// A fresh random identifier.
    public static func random() -> Self { Self(UUID()) }

    /// Parses the textual form; `nil` if it is not a UUID.
    public init?(_ string: String) {
        guard let uuid = UUID(uuidString: string) else { return nil }
        self.uuid = uuid
    }

    public var description: String { uuid.uuidString.lowercased() }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode(String.self)
        guard let uuid = UUID(uuidString: raw) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a UUID: \(raw.prefix(64))")
        }
        self.uuid = uuid
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.description < rhs.description }
}

public enum UserTag {}
public enum ChatTag {}
public enum MessageTag {}
public enum SessionTag {}

/// A user account (BotX `huid`).
public typealias UserID = Identifier<UserTag>
/// A chat of any kind (BotX `group_chat_id`).
public typealias ChatID = Identifier<ChatTag>
/// A message (BotX `sync_id`).
public typealias MessageID = Identifier<MessageTag>
/// A login session bound to one device.
public typealias SessionID = Identifier<SessionTag>

/// A position in the ordered event log.
///
/// Positions only grow and a reader never observes a later position before an earlier one is
/// visible, so "everything after N" is a complete answer. `0` means "before everything".
public struct EventSeq: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public let value: Int64
    public init(_ value: Int64) { self.value = value }
    public static let zero = EventSeq(0)
    public var next: EventSeq { EventSeq(value + 1) }
    public var description: String { String(value) }

    public init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(Int64.self)
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }
}
