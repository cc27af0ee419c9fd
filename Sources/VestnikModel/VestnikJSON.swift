import Foundation
import Synchronization

/// The one JSON dialect of Vestnik: snake_case keys, ISO 8601 dates with milliseconds.
///
/// Used for the client API, the realtime stream and the event log payloads, so an event is
/// encoded once and the same bytes are stored and sent.
public enum VestnikJSON {
    /// Foundation's encoder set up for the dialect: the reference the streaming encoder is tested
    /// against, and the fallback for the rare value it cannot stream.
    static func foundationEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .custom { keys in
            SnakeCaseKey(keyCache.snake(keys.last!.stringValue))  // safe: the coding path is never empty
        }
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatDate(date))
        }
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }

    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .custom { keys in
            SnakeCaseKey(keyCache.camel(keys.last!.stringValue))  // safe: the coding path is never empty
        }
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let raw = try container.decode(String.self)
            guard let date = parseDate(raw) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an ISO 8601 date")
            }
            return date
        }
        return decoder
    }

    /// Encodes with the Vestnik dialect.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        if let bytes = try JSONStreamEncoder.encode(value) { return Data(bytes) }
        return try foundationEncoder().encode(value)
    }

    /// Decodes with the Vestnik dialect.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try makeDecoder().decode(type, from: data)
    }

    /// `2026-11-29T04:01:38.123Z`, always UTC with exactly three fraction digits.
    public static func formatDate(_ date: Date) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        appendFormattedDate(date, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// ``formatDate(_:)`` written straight into `bytes` (the JSON encoder's output).
    ///
    /// Computed from whole milliseconds with the proleptic Gregorian calendar (days-from-civil
    /// inverse), so formatting never rounds into a neighbouring millisecond.
    static func appendFormattedDate(_ date: Date, to bytes: inout [UInt8]) {
        let ms = date.millisecondsSince1970
        let days = ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000
        let msOfDay = ms - days * 86_400_000
        // Civil date from days since 1970-01-01.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        /// Zero-padded to `width` digits; a value outside them (years before 0 or after 9999) keeps
        /// its own decimal form, padded on the left as before.
        func append(_ value: Int64, _ width: Int, then separator: UInt8?) {
            var limit: Int64 = 1
            for _ in 0..<width { limit *= 10 }
            if value >= 0, value < limit {
                var divisor = limit / 10
                while divisor > 0 {
                    bytes.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
                    divisor /= 10
                }
            } else {
                let digits = String(value)
                bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: max(0, width - digits.utf8.count)))
                bytes.append(contentsOf: digits.utf8)
            }
            if let separator { bytes.append(separator) }
        }
        append(year, 4, then: UInt8(ascii: "-"))
        append(month, 2, then: UInt8(ascii: "-"))
        append(day, 2, then: UInt8(ascii: "T"))
        append(msOfDay / 3_600_000, 2, then: UInt8(ascii: ":"))
        append(msOfDay / 60_000 % 60, 2, then: UInt8(ascii: ":"))
        append(msOfDay / 1000 % 60, 2, then: UInt8(ascii: "."))
        append(msOfDay % 1000, 3, then: UInt8(ascii: "Z"))
    }

    /// Parses an ISO 8601 date, normalised to whole milliseconds so that a value read back
    /// compares equal to the value written.
    public static func parseDate(_ raw: String) -> Date? {
        guard let date = (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(raw)) ?? (try? Date.ISO8601FormatStyle().parse(raw))
        else { return nil }
        return Date(millisecondsSince1970: date.millisecondsSince1970)
    }

    /// `chatID` → `chat_id`, `userIDs` → `user_ids`, `replyTo` → `reply_to`.
    ///
    /// Acronyms are written in capitals in Swift names (`ID`, `URL`); they are one word on the wire.
    public static func snakeCase(_ name: String) -> String {
        let normalized = name
            .replacingOccurrences(of: "IDs", with: "Ids")
            .replacingOccurrences(of: "ID", with: "Id")
            .replacingOccurrences(of: "URL", with: "Url")
        var result = ""
        result.reserveCapacity(normalized.count + 4)
        for char in normalized {
            if char.isUppercase {
                if !result.isEmpty { result.append("_") }
                result += char.lowercased()
            } else {
                result.append(char)
            }
        }
        return result
    }

    /// The inverse of ``snakeCase(_:)``: `chat_id` → `chatID`, `user_ids` → `userIDs`.
    public static func camelCase(_ key: String) -> String {
        let parts = key.split(separator: "_", omittingEmptySubsequences: false)
        guard let first = parts.first else { return key }
        var result = String(first)
        for part in parts.dropFirst() {
            switch part {
            case "id": result += "ID"
            case "ids": result += "IDs"
            case "url": result += "URL"
            default: result += part.prefix(1).uppercased() + part.dropFirst()
            }
        }
        return result
    }
}

/// Key conversions are called for every key of every value encoded or decoded; the set of keys is
/// small and fixed (property names, and wire names), so each is converted once.
let keyCache = KeyCache()

final class KeyCache: Sendable {
    private let snakeCases = Mutex<[String: String]>([:])
    private let camelCases = Mutex<[String: String]>([:])
    private let quotedSnakeCases = Mutex<[String: [UInt8]]>([:])

    /// `"snake_case":`, escaped and ready to write (``JSONStreamEncoder``).
    func quotedSnake(_ name: String) -> [UInt8] {
        if let cached = quotedSnakeCases.withLock({ $0[name] }) { return cached }
        let quoted = JSONByteWriter.quotedKey(snake(name))
        // Keys of dictionaries keyed by non-string types come from data: keep a bounded number.
        quotedSnakeCases.withLock { if $0.count < 4096 { $0[name] = quoted } }
        return quoted
    }

    func snake(_ name: String) -> String {
        if let cached = snakeCases.withLock({ $0[name] }) { return cached }
        let converted = VestnikJSON.snakeCase(name)
        snakeCases.withLock { if $0.count < 4096 { $0[name] = converted } }
        return converted
    }

    func camel(_ key: String) -> String {
        if let cached = camelCases.withLock({ $0[key] }) { return cached }
        let converted = VestnikJSON.camelCase(key)
        // Decoded keys come from clients: only keep a bounded number of them.
        camelCases.withLock { if $0.count < 4096 { $0[key] = converted } }
        return converted
    }
}

private struct SnakeCaseKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension Date {
    /// Now, truncated to whole milliseconds: the precision of the wire format and of storage, so a
    /// value reads back exactly as it was written.
    public static func millisecondNow() -> Date {
        Date(millisecondsSince1970: Date().millisecondsSince1970)
    }

    public var millisecondsSince1970: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }

    public init(millisecondsSince1970 ms: Int64) {
        self.init(timeIntervalSince1970: Double(ms) / 1000)
    }
}
