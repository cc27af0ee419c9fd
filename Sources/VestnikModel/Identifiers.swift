import Foundation

/// A typed identifier over a UUID, so a `UserID` can never be passed where a `ChatID` is expected.
///
/// On the wire and in storage it is the lowercase UUID string (BotX uses the same form for
/// `huid`, `group_chat_id` and `sync_id`).
public struct Identifier<Tag>: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let uuid: UUID

    public init(_ uuid: UUID) { self.uuid = uuid }


    /// A fresh random (version 4) identifier.
    ///
    /// From the system generator (`getrandom` on Linux) rather than `UUID()`, which on Linux
    /// opens, reads and closes `/dev/urandom` for every id: three system calls on every send.
    public static func random() -> Self {
        fromRandomBytes(version: 4) { _ in }
    }

    /// A fresh identifier that sorts by creation time (UUID version 7: 48 bits of Unix
    /// milliseconds, then 74 random bits).
    ///
    /// For rows created at a high rate and keyed by their id (messages): a new key lands at the
    /// right edge of every index on it, so a commit of several messages dirties a few pages
    /// instead of one random page per message and index. With SQLite that cut the WAL frames per
    /// group-commit batch from ~18 to ~12 (together with not storing a message's text twice,
    /// issue 3). The random part keeps ids unguessable; the time part says no more than the
    /// message's own `created_at`.
    public static func timeOrdered(at date: Date = Date()) -> Self {
        var milliseconds = UInt64(clamping: max(0, date.millisecondsSince1970))
        return fromRandomBytes(version: 7) { raw in
            for index in (0..<6).reversed() {
                raw[index] = UInt8(truncatingIfNeeded: milliseconds)
                milliseconds >>= 8
            }
        }
    }

    /// 16 bytes from the system generator, changed by `fill`, then stamped with `version` and
    /// the RFC 9562 variant.
    private static func fromRandomBytes(version: UInt8, _ fill: (UnsafeMutableRawBufferPointer) -> Void) -> Self {
        var generator = SystemRandomNumberGenerator()
        var bytes = (generator.next() as UInt64, generator.next() as UInt64)
        return withUnsafeMutableBytes(of: &bytes) { raw in
            fill(raw)
            raw[6] = raw[6] & 0x0F | version << 4
            raw[8] = raw[8] & 0x3F | 0x80
            return Self(UUID(uuid: raw.load(as: uuid_t.self)))
        }
    }

    /// Parses the textual form (either case); `nil` if it is not a UUID.
    ///
    /// Hand-written because ids are parsed for every stored row and request: Foundation's
    /// parser goes through `sscanf`.
    public init?(_ string: String) {
        var copy = string
        guard let parsed = copy.withUTF8({ Self.parse($0) }) else { return nil }
        self.uuid = parsed
    }

    /// Parses the textual form from UTF-8 bytes (either case); `nil` if they are not a UUID.
    public init?(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        guard let parsed = Self.parse(bytes) else { return nil }
        self.uuid = parsed
    }

    /// Fills the 16 bytes in place: ids are parsed for every member of a chat on every send, and a
    /// heap buffer per parse showed up in the server's profile.
    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> UUID? {
        guard bytes.count == 36 else { return nil }
        var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let valid = withUnsafeMutableBytes(of: &uuid) { raw in
            var out = 0
            var index = 0
            while index < 36 {
                if index == 8 || index == 13 || index == 18 || index == 23 {
                    guard bytes[index] == UInt8(ascii: "-") else { return false }
                    index += 1
                    continue
                }
                guard let high = hexValue(bytes[index]), let low = hexValue(bytes[index + 1]) else { return false }
                raw[out] = high << 4 | low
                out += 1
                index += 2
            }
            return true
        }
        return valid ? UUID(uuid: uuid) : nil
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The lowercase textual form, formatted by hand (Foundation's goes through `sprintf`).
    public var description: String {
        let digits = lowercaseHexDigits
        return withUnsafeBytes(of: uuid.uuid) { raw in
            String(unsafeUninitializedCapacity: 36) { buffer in
                var position = 0
                for (index, byte) in raw.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        buffer[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    buffer[position] = digits[Int(byte >> 4)]
                    buffer[position + 1] = digits[Int(byte & 0x0F)]
                    position += 2
                }
                return 36
            }
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode(String.self)
        guard let parsed = Self(raw) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a UUID: \(raw.prefix(64))")
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The order of the textual forms (lowercase hex keeps byte order), without formatting them.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        let (lhsHigh, lhsLow) = lhs.halves
        let (rhsHigh, rhsLow) = rhs.halves
        return lhsHigh != rhsHigh ? lhsHigh < rhsHigh : lhsLow < rhsLow
    }

    /// The 16 bytes as two big-endian numbers.
    private var halves: (UInt64, UInt64) {
        withUnsafeBytes(of: uuid.uuid) { raw in
            (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
             UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }
}

private let lowercaseHexDigits: [UInt8] = Array("0123456789abcdef".utf8)

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
