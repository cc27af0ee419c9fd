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
/// has: a container is filled before its parent's next element is written. Other shapes (filling a
/// container after its parent moved on, `superEncoder`, an encoder kept after its value's
/// `encode(to:)` returned) mark the output unusable, and ``VestnikJSON/encode(_:)`` encodes that
/// value with Foundation's encoder instead. Writing twice into one place is an `EncodingError`
/// (Foundation's encoder stops the process there). An element whose value throws is removed
/// again, so a caller that catches the error leaves no broken JSON behind.
///
/// Differences from Foundation, none of which changes what a JSON reader gets from our types: keys
/// come out in the order they were encoded (Foundation's order varies per process); a key encoded
/// twice into one object is written twice (Foundation keeps the last; readers that take the last
/// agree), which synthesized conformances never do; a single value that throws can be retried in
/// its place (Foundation keeps what the failed value wrote); `codingPath` is empty (no conformance
/// of ours reads it).
struct JSONStreamEncoder {
    /// Values nested deeper than this are an error, as with Foundation's encoder (which stops at
    /// the same depth); it also bounds this encoder's recursion.
    static let maximumDepth = 512

    /// Encodes `value`; nil when it used containers in a way this encoder cannot stream, or wrote
    /// nothing at all (Foundation's encoder then reports that error).
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8]? {
        let writer = JSONByteWriter()
        try writer.writeValue(value, depth: 0, nothingIsEmptyObject: false)
        if writer.invalid {
            throw EncodingError.invalidValue(
                value, .init(codingPath: [], debugDescription: "A value was encoded twice in one place, or a container was asked for after a value."))
        }
        writer.close(above: 0)
        return writer.unsupported || writer.bytes.isEmpty ? nil : writer.bytes
    }
}

/// The output, the containers that are still open and the value slots being written.
final class JSONByteWriter {
    private struct OpenContainer {
        let id: Int
        let closer: UInt8
        var count = 0
    }

    /// A value being written (its `encode(to:)` is running): what it has written so far.
    private struct Slot {
        enum State: Equatable {
            case empty
            case filled
            case container(id: Int)
        }
        let id: Int
        /// Where its own container opens: it may not write into containers further out.
        let depth: Int
        var state = State.empty
    }

    // Exclusivity is not checked at run time for these three (it was ~9 % of encoding time in
    // the server's profile): a writer lives inside one `JSONStreamEncoder.encode` call, on one
    // thread, and no access to one of them is open while another to it starts (the only `inout`
    // use, `appendFormattedDate(_:to:)`, touches nothing of the writer).
    @exclusivity(unchecked) fileprivate private(set) var bytes: [UInt8] = []
    /// Open containers, outermost first; a container's index is its depth.
    @exclusivity(unchecked) private var open: [OpenContainer] = []
    /// Slots whose `encode(to:)` is running, innermost last.
    @exclusivity(unchecked) private var slots: [Slot] = []
    /// The value used containers in a shape that cannot be streamed: Foundation's encoder encodes it.
    fileprivate(set) var unsupported = false
    /// The value wrote twice into one place (Foundation's encoder stops the process for that).
    fileprivate(set) var invalid = false
    private var lastID = 0

    init() { bytes.reserveCapacity(512) }

    /// `"key":` for an already converted key, escaped.
    static func quotedKey(_ key: String) -> [UInt8] {
        let writer = JSONByteWriter()
        writer.writeKey(key)
        return writer.bytes
    }

    /// `"key":`, escaped: a dictionary's own key, written as it is.
    fileprivate func writeKey(_ key: String) {
        writeString(key)
        bytes.append(UInt8(ascii: ":"))
    }

    fileprivate func makeID() -> Int {
        lastID += 1
        return lastID
    }

    fileprivate func markUnsupported() { unsupported = true }

    /// Writes the closing brackets of every container deeper than `depth`.
    fileprivate func close(above depth: Int) {
        while open.count > depth { bytes.append(open.removeLast().closer) }
    }

    fileprivate func elementCount(index: Int, id: Int) -> Int {
        index < open.count && open[index].id == id ? open[index].count : 0
    }

    /// Starts the next element of the container at `index`: closes what its previous element left
    /// open, writes the separator and the key. Returns where the element starts, for
    /// ``rollBack(to:index:)``; nil (and the output is unusable) when that container is no longer open.
    fileprivate func beginElement(index: Int, id: Int, key: [UInt8]? = nil) -> Int? {
        // A value writing into a container of a value further out (one it was handed) would
        // interleave with its own element; such values are left to Foundation's encoder.
        guard index < open.count, open[index].id == id, index >= (slots.last?.depth ?? 0) else {
            unsupported = true
            return nil
        }
        close(above: index + 1)
        let mark = bytes.count
        if open[index].count > 0 { bytes.append(UInt8(ascii: ",")) }
        open[index].count += 1
        if let key { bytes.append(contentsOf: key) }
        return mark
    }

    /// Removes an element whose value threw: a caller that catches the error and goes on leaves
    /// no trace of it, as with Foundation.
    fileprivate func rollBack(to mark: Int, index: Int) {
        bytes.removeSubrange(mark...)
        if open.count > index + 1 { open.removeSubrange((index + 1)...) }
        open[index].count -= 1
    }

    /// Runs `write` as the next element of the container at `index`, removing it again if it throws.
    fileprivate func element(index: Int, id: Int, key: [UInt8]? = nil, _ write: () throws -> Void) throws {
        guard let mark = beginElement(index: index, id: id, key: key) else { return }
        do { try write() } catch {
            rollBack(to: mark, index: index)
            throw error
        }
    }

    /// Opens a container inside an element just begun (`nestedContainer`).
    fileprivate func openNested(depth: Int, opener: UInt8, closer: UInt8) -> Int {
        bytes.append(opener)
        let id = makeID()
        open.append(OpenContainer(id: id, closer: closer))
        return id
    }

    /// The container of the value in `slot`: opened now, or the one it already has (a class and its
    /// superclass share one). Nil (and the output is unusable) for an encoder used outside its
    /// value's `encode(to:)`, or a second container of another kind.
    fileprivate func container(slot: Int, depth: Int, opener: UInt8, closer: UInt8) -> Int? {
        guard let top = slots.last, top.id == slot else {
            unsupported = true
            return nil
        }
        switch top.state {
        case .empty:
            guard open.count == depth else {
                unsupported = true
                return nil
            }
            let id = openNested(depth: depth, opener: opener, closer: closer)
            slots[slots.count - 1].state = .container(id: id)
            return id
        case .container(let id):
            guard depth < open.count, open[depth].id == id, open[depth].closer == closer else {
                invalid = true
                return nil
            }
            close(above: depth + 1)
            return id
        case .filled:
            invalid = true
            return nil
        }
    }

    /// Claims `slot` for a single value; false when it cannot take one (already written, or not the
    /// value being written).
    fileprivate func fill(slot: Int, depth: Int) -> Bool {
        guard let top = slots.last, top.id == slot, open.count == depth else {
            unsupported = true
            return false
        }
        guard top.state == .empty else {
            invalid = true
            return false
        }
        slots[slots.count - 1].state = .filled
        return true
    }

    /// Gives a slot back after its single value threw.
    fileprivate func unfill(slot: Int, depth: Int, mark: Int) {
        bytes.removeSubrange(mark...)
        if open.count > depth { open.removeSubrange(depth...) }
        if let top = slots.last, top.id == slot { slots[slots.count - 1].state = .empty }
    }

    // MARK: Values

    /// Writes any value: the types the dialect spells specially, or the value's own `encode(to:)`
    /// in a new slot at `depth`. An `encode(to:)` that writes nothing is `{}`, as with Foundation.
    fileprivate func writeValue<T: Encodable>(_ value: T, depth: Int, nothingIsEmptyObject: Bool = true) throws {
        guard depth < JSONStreamEncoder.maximumDepth else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "Values are nested too deeply to encode."))
        }
        if try writeSpecial(value, depth: depth) { return }
        let before = bytes.count
        slots.append(Slot(id: makeID(), depth: depth))
        defer { slots.removeLast() }
        try value.encode(to: StreamingEncoder(writer: self, depth: depth, slot: slots[slots.count - 1].id))
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
            writeDate(date)
        } else if type == ObjectIdentifier(Double.self), let number = value as? Double {
            try Self.checkFinite(number)
            writeFiniteFloatingPoint(number)
        } else if type == ObjectIdentifier(Data.self), let data = value as? Data {
            writeString(data.base64EncodedString())
        } else if type == ObjectIdentifier(URL.self), let url = value as? URL {
            writeString(url.absoluteString)
        } else if type == ObjectIdentifier(Decimal.self), let number = value as? Decimal {
            guard !number.isNaN else {
                throw EncodingError.invalidValue(number, .init(codingPath: [], debugDescription: "Unable to encode Decimal.nan in JSON."))
            }
            writeRaw(number.description)
        } else if let dictionary = value as? any StringKeyedEncodable {
            try dictionary.writeEntries(into: self, depth: depth)
        } else {
            return false
        }
        return true
    }

    fileprivate func writeRaw(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    fileprivate func writeBool(_ value: Bool) {
        writeRaw(value ? "true" : "false")
    }

    fileprivate func writeNull() {
        writeRaw("null")
    }

    fileprivate func writeInteger(_ value: Int64) {
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            writeUnsigned(value.magnitude)
        } else {
            writeUnsigned(UInt64(value))
        }
    }

    fileprivate func writeUnsigned(_ value: UInt64) {
        // Digits come out last first: fill a small buffer from its end, then append it once.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var position = 20
            var rest = value
            repeat {
                position -= 1
                buffer[position] = UInt8(ascii: "0") &+ UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[position...]))
        }
    }

    /// Foundation's spelling: the shortest round-tripping form, without a trailing `.0`. NaN and
    /// infinities are errors (JSON has no spelling for them): callers call ``checkFinite(_:)``
    /// first, before anything of the element is written.
    fileprivate func writeFiniteFloatingPoint<F: BinaryFloatingPoint & CustomStringConvertible>(_ value: F) {
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        writeRaw(text)
    }

    fileprivate static func checkFinite<F: BinaryFloatingPoint & CustomStringConvertible & Sendable>(_ value: F) throws {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "Unable to encode \(F.self).\(value) directly in JSON."))
        }
    }

    fileprivate func writeDate(_ date: Date) {
        bytes.append(UInt8(ascii: "\""))
        VestnikJSON.appendFormattedDate(date, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// A quoted string, escaped as Foundation does with `.withoutEscapingSlashes`: quote, backslash
    /// and control characters only; everything else is written as UTF-8.
    fileprivate func writeString(_ string: String) {
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
        let id = writer.openNested(depth: depth, opener: UInt8(ascii: "{"), closer: UInt8(ascii: "}"))
        for (key, value) in self {
            try writer.element(index: depth, id: id) {
                writer.writeKey(key)
                try writer.writeValue(value, depth: depth + 1)
            }
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
        let id = writer.container(slot: slot, depth: depth, opener: UInt8(ascii: "{"), closer: UInt8(ascii: "}")) ?? -1
        return KeyedEncodingContainer(StreamingKeyedContainer<Key>(writer: writer, index: depth, id: id))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let id = writer.container(slot: slot, depth: depth, opener: UInt8(ascii: "["), closer: UInt8(ascii: "]")) ?? -1
        return StreamingUnkeyedContainer(writer: writer, index: depth, id: id)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        StreamingSingleValueContainer(writer: writer, depth: depth, slot: slot)
    }
}

private struct StreamingKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: JSONByteWriter
    /// The container's depth: its position among the open containers.
    let index: Int
    let id: Int

    var codingPath: [any CodingKey] { [] }

    /// Writes the separator and `"key":`; false when the container can no longer be written.
    private func begin(_ key: Key) -> Bool {
        writer.beginElement(index: index, id: id, key: keyCache.quotedSnake(key.stringValue)) != nil
    }

    /// An element whose writing may throw: removed again if it does.
    private func element(_ key: Key, _ write: () throws -> Void) throws {
        try writer.element(index: index, id: id, key: keyCache.quotedSnake(key.stringValue), write)
    }

    mutating func encodeNil(forKey key: Key) throws { if begin(key) { writer.writeNull() } }
    mutating func encode(_ value: Bool, forKey key: Key) throws { if begin(key) { writer.writeBool(value) } }
    mutating func encode(_ value: String, forKey key: Key) throws { if begin(key) { writer.writeString(value) } }
    mutating func encode(_ value: Double, forKey key: Key) throws {
        try JSONByteWriter.checkFinite(value)
        if begin(key) { writer.writeFiniteFloatingPoint(value) }
    }
    mutating func encode(_ value: Float, forKey key: Key) throws {
        try JSONByteWriter.checkFinite(value)
        if begin(key) { writer.writeFiniteFloatingPoint(value) }
    }
    mutating func encode(_ value: Int, forKey key: Key) throws { if begin(key) { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int8, forKey key: Key) throws { if begin(key) { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int16, forKey key: Key) throws { if begin(key) { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int32, forKey key: Key) throws { if begin(key) { writer.writeInteger(Int64(value)) } }
    mutating func encode(_ value: Int64, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode(_ value: Int128, forKey key: Key) throws { if begin(key) { writer.writeRaw(value.description) } }
    mutating func encode(_ value: UInt, forKey key: Key) throws { if begin(key) { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { if begin(key) { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { if begin(key) { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { if begin(key) { writer.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { if begin(key) { writer.writeUnsigned(value) } }
    mutating func encode(_ value: UInt128, forKey key: Key) throws { if begin(key) { writer.writeRaw(value.description) } }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try element(key) { try writer.writeValue(value, depth: index + 1) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let nestedID = begin(key) ? writer.openNested(depth: index + 1, opener: UInt8(ascii: "{"), closer: UInt8(ascii: "}")) : -1
        return KeyedEncodingContainer(StreamingKeyedContainer<NestedKey>(writer: writer, index: index + 1, id: nestedID))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nestedID = begin(key) ? writer.openNested(depth: index + 1, opener: UInt8(ascii: "["), closer: UInt8(ascii: "]")) : -1
        return StreamingUnkeyedContainer(writer: writer, index: index + 1, id: nestedID)
    }

    /// Not streamable (the superclass may write nothing, and its key is already out): Foundation encodes such values.
    mutating func superEncoder() -> any Encoder {
        writer.markUnsupported()
        return StreamingEncoder(writer: writer, depth: index + 1, slot: -1)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        writer.markUnsupported()
        return StreamingEncoder(writer: writer, depth: index + 1, slot: -1)
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
    mutating func encode(_ value: Double) throws {
        try JSONByteWriter.checkFinite(value)
        if begin() { writer.writeFiniteFloatingPoint(value) }
    }
    mutating func encode(_ value: Float) throws {
        try JSONByteWriter.checkFinite(value)
        if begin() { writer.writeFiniteFloatingPoint(value) }
    }
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
    var count: Int { writer.elementCount(index: index, id: id) }

    func begin() -> Bool { writer.beginElement(index: index, id: id) != nil }
    // Declared here, not in `StreamingElementWriter`: the standard library's own defaults for these would be ambiguous with it.
    mutating func encode(_ value: Int128) throws { if begin() { writer.writeRaw(value.description) } }
    mutating func encode(_ value: UInt128) throws { if begin() { writer.writeRaw(value.description) } }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try writer.element(index: index, id: id) { try writer.writeValue(value, depth: index + 1) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let nestedID = begin() ? writer.openNested(depth: index + 1, opener: UInt8(ascii: "{"), closer: UInt8(ascii: "}")) : -1
        return KeyedEncodingContainer(StreamingKeyedContainer<NestedKey>(writer: writer, index: index + 1, id: nestedID))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nestedID = begin() ? writer.openNested(depth: index + 1, opener: UInt8(ascii: "["), closer: UInt8(ascii: "]")) : -1
        return StreamingUnkeyedContainer(writer: writer, index: index + 1, id: nestedID)
    }

    mutating func superEncoder() -> any Encoder {
        writer.markUnsupported()
        return StreamingEncoder(writer: writer, depth: index + 1, slot: -1)
    }
}

/// A single value written in place of its slot: the slot's first and only write.
private struct StreamingSingleValueContainer: SingleValueEncodingContainer, StreamingElementWriter {
    let writer: JSONByteWriter
    let depth: Int
    let slot: Int

    var codingPath: [any CodingKey] { [] }

    func begin() -> Bool { writer.fill(slot: slot, depth: depth) }
    // Declared here, not in `StreamingElementWriter`: the standard library's own defaults for these would be ambiguous with it.
    mutating func encode(_ value: Int128) throws { if begin() { writer.writeRaw(value.description) } }
    mutating func encode(_ value: UInt128) throws { if begin() { writer.writeRaw(value.description) } }

    /// The value takes this slot over: its special spelling or its own `encode(to:)` writes here.
    /// If it throws, the slot is empty again.
    mutating func encode<T: Encodable>(_ value: T) throws {
        let mark = writer.bytes.count
        guard begin() else { return }
        do { try writer.writeValue(value, depth: depth) } catch {
            writer.unfill(slot: slot, depth: depth, mark: mark)
            throw error
        }
    }
}
