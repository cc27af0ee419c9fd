import Foundation

/// Writes Vestnik's JSON dialect straight into bytes while a value's `encode(to:)` runs.
///
/// Why not Foundation's `JSONEncoder`: it boxes every value into a tree, builds a coding path for
/// every key (our key strategy is custom), and serializes the tree afterwards. On the realtime path
/// that was ~14 % of the server's CPU (issue 3); every event payload and every `ack` is encoded on
/// the single writer's path. Here each key's bytes are converted and escaped once (cached) and every
/// value is written once, in order.
///
/// Writing as it goes relies on the shape every synthesized and ordinary hand-written conformance
/// has: a container is filled before its parent's next element is written. Anything else (filling a
/// container after its parent moved on, `superEncoder`, a second container for a value that already
/// wrote one of another kind) marks the output unusable, and ``VestnikJSON/encode(_:)`` encodes that
/// value with Foundation's encoder instead, so the result is the same either way.
///
/// Differences from Foundation, both invisible to a JSON reader: keys come out in the order they
/// were encoded (Foundation's order varies per process), and `codingPath` is empty (no conformance
/// of ours reads it; errors name the value instead).
struct JSONStreamEncoder {
    /// Encodes `value`; nil when it used containers in a way this encoder cannot stream.
    /// Nil also for a value that writes nothing: Foundation's encoder reports that error.
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8]? {
        let writer = JSONByteWriter()
        try writer.writeValue(value, depth: 0, nothingIsEmptyObject: false)
        writer.close(above: 0)
        return writer.unsupported || writer.bytes.isEmpty ? nil : writer.bytes
    }
}

/// The output and the stack of containers that are still open.
final class JSONByteWriter {
    struct OpenContainer {
        /// Which value slot opened it: a value asking twice (a class and its superclass) gets it back.
        let slot: Int
        let id: Int
        let closer: UInt8
        var count = 0
    }

    var bytes: [UInt8] = []
    /// Open containers, outermost first; a container's index is its depth.
    var open: [OpenContainer] = []
    var unsupported = false
    private var lastID = 0
    /// The slot that last wrote a single value: it may not open a container afterwards.
    private var filledSlot = -1

    init() { bytes.reserveCapacity(512) }

    func makeID() -> Int {
        lastID += 1
        return lastID
    }

    /// Writes the closing brackets of every container deeper than `depth`.
    @inline(__always) func close(above depth: Int) {
        while open.count > depth { bytes.append(open.removeLast().closer) }
    }

    /// Starts the next element of the container at `index`: closes what its previous element left
    /// open and writes the separator. False (and the output is unusable) when that container is no
    /// longer open.
    func beginElement(index: Int, id: Int) -> Bool {
        guard index < open.count, open[index].id == id else {
            unsupported = true
            return false
        }
        close(above: index + 1)
        if open[index].count > 0 { bytes.append(UInt8(ascii: ",")) }
        open[index].count += 1
        return true
    }

    /// Opens a container for the value in `slot`, at `depth`; its id, or nil when the slot cannot have one.
    func openContainer(slot: Int, depth: Int, opener: UInt8, closer: UInt8) -> Int? {
        if depth < open.count, open[depth].slot == slot, open[depth].closer == closer {
            close(above: depth + 1)
            return open[depth].id
        }
        guard open.count == depth, filledSlot != slot else {
            unsupported = true
            return nil
        }
        bytes.append(opener)
        let id = makeID()
        open.append(OpenContainer(slot: slot, id: id, closer: closer))
        return id
    }

    /// Marks `slot` as holding a single value.
    func fill(slot: Int, depth: Int) -> Bool {
        guard open.count == depth, filledSlot != slot else {
            unsupported = true
            return false
        }
        filledSlot = slot
        return true
    }

    // MARK: Values

    /// Writes any value: the types the dialect spells specially, or the value's own `encode(to:)`
    /// in a new slot one level below `depth`'s parent. An `encode(to:)` that writes nothing is `{}`,
    /// as with Foundation.
    func writeValue<T: Encodable>(_ value: T, depth: Int, nothingIsEmptyObject: Bool = true) throws {
        if try writeSpecial(value, depth: depth) { return }
        let before = bytes.count
        try value.encode(to: StreamingEncoder(writer: self, depth: depth, slot: makeID()))
        if bytes.count == before, nothingIsEmptyObject, !unsupported {
            bytes.append(UInt8(ascii: "{"))
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// The types whose JSON is not their `encode(to:)`'s: dates in Vestnik's format, Foundation's
    /// spellings of `Data` (base64), `URL` and `Decimal`, and string-keyed dictionaries, whose keys are
    /// data and never converted. Common primitives come first, compared by type, not cast.
    private func writeSpecial<T: Encodable>(_ value: T, depth: Int) throws -> Bool {
        let type = ObjectIdentifier(T.self)
        if type == ObjectIdentifier(String.self), let string = value as? String {
            writeString(string)
        } else if type == ObjectIdentifier(Int.self), let number = value as? Int {
            writeInteger(Int64(number))
        } else if type == ObjectIdentifier(Int64.self), let number = value as? Int64 {
            writeInteger(number)
        } else if type == ObjectIdentifier(Bool.self), let flag = value as? Bool {
            writeBool(flag)
        } else if type == ObjectIdentifier(Date.self), let date = value as? Date {
            writeString(VestnikJSON.formatDate(date))
        } else if type == ObjectIdentifier(Double.self), let number = value as? Double {
            try writeFloatingPoint(number)
        } else if type == ObjectIdentifier(Data.self), let data = value as? Data {
            writeString(data.base64EncodedString())
        } else if type == ObjectIdentifier(URL.self), let url = value as? URL {
            writeString(url.absoluteString)
        } else if type == ObjectIdentifier(Decimal.self), let number = value as? Decimal {
            writeRaw(number.description)
        } else if let dictionary = value as? any StringKeyedEncodable {
            try dictionary.writeEntries(into: self, depth: depth)
        } else {
            return false
        }
        return true
    }

    func writeRaw(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    func writeBool(_ value: Bool) {
        writeRaw(value ? "true" : "false")
    }

    func writeNull() {
        writeRaw("null")
    }

    func writeInteger(_ value: Int64) {
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            writeUnsigned(value.magnitude)
        } else {
            writeUnsigned(UInt64(value))
        }
    }

    func writeUnsigned(_ value: UInt64) {
        // Digits are produced last first: append them, then reverse them in place.
        let start = bytes.count
        var rest = value
        repeat {
            bytes.append(UInt8(ascii: "0") &+ UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        bytes[start...].reverse()
    }

    /// Foundation's spelling: the shortest round-tripping form, without a trailing `.0`; NaN and
    /// infinities are errors (JSON has no spelling for them).
    func writeFloatingPoint<F: BinaryFloatingPoint & CustomStringConvertible & Sendable>(_ value: F) throws {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "Unable to encode \(F.self).\(value) directly in JSON."))
        }
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        writeRaw(text)
    }

    /// A quoted string, escaped as Foundation does with `.withoutEscapingSlashes`: quote, backslash
    /// and control characters only; everything else is written as UTF-8.
    func writeString(_ string: String) {
        bytes.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
                runStart = index + 1
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                default:
                    func hexDigit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10 }
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hexDigit(byte >> 4), hexDigit(byte & 0xF)])
                }
            }
            if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// A string-keyed dictionary: Foundation writes its keys as they are (they are data, not property
/// names), and so do we.
private protocol StringKeyedEncodable {
    func writeEntries(into writer: JSONByteWriter, depth: Int) throws
}

extension Dictionary: StringKeyedEncodable where Key == String, Value: Encodable {
    fileprivate func writeEntries(into writer: JSONByteWriter, depth: Int) throws {
        guard let id = writer.openContainer(slot: writer.makeID(), depth: depth, opener: UInt8(ascii: "{"), closer: UInt8(ascii: "}")) else {
            return
        }
        for (key, value) in self {
            guard writer.beginElement(index: depth, id: id) else { return }
            writer.writeString(key)
            writer.bytes.append(UInt8(ascii: ":"))
            try writer.writeValue(value, depth: depth + 1)
        }
        writer.close(above: depth)
    }
}

/// The `Encoder` handed to a value's `encode(to:)`: one value slot at one depth.
private struct StreamingEncoder: Encoder {
    let writer: JSONByteWriter
    let depth: Int
    let slot: Int

    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let id = writer.openContainer(slot: slot, depth: depth, opener: UInt8(ascii: "{"), closer: UInt8(ascii: "}")) ?? -1
        return KeyedEncodingContainer(StreamingKeyedContainer<Key>(writer: writer, index: depth, id: id))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let id = writer.openContainer(slot: slot, depth: depth, opener: UInt8(ascii: "["), closer: UInt8(ascii: "]")) ?? -1
        return StreamingUnkeyedContainer(writer: writer, index: depth, id: id)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        StreamingSingleValueContainer(writer: writer, depth: depth, slot: slot)
    }
}

private struct StreamingKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: JSONByteWriter
    /// The container's depth: its position in `writer.open`.
    let index: Int
    let id: Int

    var codingPath: [any CodingKey] { [] }

    /// Writes the separator and `"key":`; false when the container can no longer be written.
    private func begin(_ key: Key) -> Bool {
        guard writer.beginElement(index: index, id: id) else { return false }
        writer.bytes.append(contentsOf: keyCache.quotedSnake(key.stringValue))
        return true
    }

    mutating func encodeNil(forKey key: Key) throws { if begin(key) { writer.writeNull() } }
    mutating func encode(_ value: Bool, forKey key: Key) throws { if begin(key) { writer.writeBool(value) } }
    mutating func encode(_ value: String, forKey key: Key) throws { if begin(key) { writer.writeString(value) } }
    mutating func encode(_ value: Double, forKey key: Key) throws { if begin(key) { try writer.writeFloatingPoint(value) } }
    mutating func encode(_ value: Float, forKey key: Key) throws { if begin(key) { try writer.writeFloatingPoint(value) } }
    mutating func encode(_ value: Int, forKey key: Key) throws { if begin(key) { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int8, forKey key: Key) throws { if begin(key) { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int16, forKey key: Key) throws { if begin(key) { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int32, forKey key: Key) throws { if begin(key) { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int64, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode(_ value: UInt, forKey key: Key) throws { if begin(key) { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { if begin(key) { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { if begin(key) { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { if begin(key) { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { if begin(key) { writer.writeUnsigned(value) } }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        if begin(key) { try writer.writeValue(value, depth: index + 1) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        var nestedID = -1
        if begin(key) {
            nestedID = writer.openContainer(slot: writer.makeID(), depth: index + 1, opener: UInt8(ascii: "{"), closer: UInt8(ascii: "}")) ?? -1
        }
        return KeyedEncodingContainer(StreamingKeyedContainer<NestedKey>(writer: writer, index: index + 1, id: nestedID))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        var nestedID = -1
        if begin(key) {
            nestedID = writer.openContainer(slot: writer.makeID(), depth: index + 1, opener: UInt8(ascii: "["), closer: UInt8(ascii: "]")) ?? -1
        }
        return StreamingUnkeyedContainer(writer: writer, index: index + 1, id: nestedID)
    }

    /// Not streamable (the superclass may write nothing, and its key is already out): Foundation encodes such values.
    mutating func superEncoder() -> any Encoder {
        writer.unsupported = true
        return StreamingEncoder(writer: writer, depth: index + 1, slot: writer.makeID())
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        writer.unsupported = true
        return StreamingEncoder(writer: writer, depth: index + 1, slot: writer.makeID())
    }
}

/// The unkeyed and single-value containers: their primitive writes differ only in how an element begins.
private protocol StreamingElementWriter {
    var writer: JSONByteWriter { get }
    /// Prepares the next element; false when it cannot be written (the output is then unusable).
    func begin() -> Bool
}

extension StreamingElementWriter {
    mutating func encodeNil() throws { if begin() { writer.writeNull() } }
    mutating func encode(_ value: Bool) throws { if begin() { writer.writeBool(value) } }
    mutating func encode(_ value: String) throws { if begin() { writer.writeString(value) } }
    mutating func encode(_ value: Double) throws { if begin() { try writer.writeFloatingPoint(value) } }
    mutating func encode(_ value: Float) throws { if begin() { try writer.writeFloatingPoint(value) } }
    mutating func encode(_ value: Int) throws { if begin() { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int8) throws { if begin() { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int16) throws { if begin() { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int32) throws { if begin() { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int64) throws { if begin() { writer.writeInteger(value) } }
    mutating func encode(_ value: UInt) throws { if begin() { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt8) throws { if begin() { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt16) throws { if begin() { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt32) throws { if begin() { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt64) throws { if begin() { writer.writeUnsigned(value) } }
}

private struct StreamingUnkeyedContainer: UnkeyedEncodingContainer, StreamingElementWriter {
    let writer: JSONByteWriter
    let index: Int
    let id: Int

    var codingPath: [any CodingKey] { [] }
    var count: Int { index < writer.open.count && writer.open[index].id == id ? writer.open[index].count : 0 }

    func begin() -> Bool { writer.beginElement(index: index, id: id) }


    mutating func encode<T: Encodable>(_ value: T) throws {
        if begin() { try writer.writeValue(value, depth: index + 1) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        var nestedID = -1
        if begin() {
            nestedID = writer.openContainer(slot: writer.makeID(), depth: index + 1, opener: UInt8(ascii: "{"), closer: UInt8(ascii: "}")) ?? -1
        }
        return KeyedEncodingContainer(StreamingKeyedContainer<NestedKey>(writer: writer, index: index + 1, id: nestedID))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        var nestedID = -1
        if begin() {
            nestedID = writer.openContainer(slot: writer.makeID(), depth: index + 1, opener: UInt8(ascii: "["), closer: UInt8(ascii: "]")) ?? -1
        }
        return StreamingUnkeyedContainer(writer: writer, index: index + 1, id: nestedID)
    }

    mutating func superEncoder() -> any Encoder {
        writer.unsupported = true
        return StreamingEncoder(writer: writer, depth: index + 1, slot: writer.makeID())
    }
}

/// A single value written in place of its slot: the slot's first and only write.
private struct StreamingSingleValueContainer: SingleValueEncodingContainer, StreamingElementWriter {
    let writer: JSONByteWriter
    let depth: Int
    let slot: Int

    var codingPath: [any CodingKey] { [] }

    func begin() -> Bool { writer.fill(slot: slot, depth: depth) }


    /// The value takes this slot over: its special spelling or its own `encode(to:)` writes here.
    mutating func encode<T: Encodable>(_ value: T) throws {
        if begin() { try writer.writeValue(value, depth: depth) }
    }
}
