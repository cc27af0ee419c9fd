import Foundation
import Testing
import VestnikAPI

@testable import VestnikModel

/// The streaming encoder must write what Foundation's encoder, set up for the same dialect, writes:
/// it replaced it for every response, stream frame and stored event.
@Suite("JSON stream encoder")
struct JSONStreamEncoderTests {
    /// Both outputs, parsed and written again with sorted keys: equal when they mean the same
    /// (Foundation's key order changes from process to process).
    private func expectSameJSON<T: Encodable>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let streamed = try #require(try JSONStreamEncoder.encode(value), "value was not streamable", sourceLocation: sourceLocation)
        let reference = try VestnikJSON.foundationEncoder().encode(value)
        #expect(try canonical(Data(streamed)) == canonical(reference), sourceLocation: sourceLocation)
    }

    private func canonical(_ data: Data) throws -> String {
        let object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
    }

    private func streamed<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try #require(try JSONStreamEncoder.encode(value)), as: UTF8.self)
    }

    private func foundation<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try VestnikJSON.foundationEncoder().encode(value), as: UTF8.self)
    }

    private static let at = Date(millisecondsSince1970: 1_795_000_000_123)

    private static func fullMessage() -> Message {
        var message = Message(
            id: .random(), chatID: .random(), chatSeq: 42, senderID: .random(), text: "Привет, \"мир\"\n\t\\ / 😀 \u{1}\u{1f}",
            replyTo: .random(), forwardedFrom: ForwardOrigin(messageID: .random(), chatID: .random(), senderID: .random(), sentAt: at),
            mentions: [.user(.random()), .all], createdAt: at, editedAt: at, editCount: 3, deletedAt: nil,
            reactions: [ReactionSummary(emoji: "👍", count: 2, users: [.random(), .random()])], pinned: true, clientMessageID: "c-1")
        message.extras = MessageExtras(
            bubble: [[BotButton(command: "/go", label: "Go", data: .object(["camelKey": .int(1), "nested": .array([.double(1.5), .null, .bool(true)])]),
                                hSize: 2, showAlert: true, alertText: "a")]],
            keyboard: [], metadata: .object(["someKey": .string("v"), "n": .double(-0.25), "big": .int(.max)]),
            recipients: [.random()], attachments: [Attachment(type: "image", fileName: "a.png", mimeType: "image/png", size: 3, data: "AAA=")],
            silentResponse: false, stealth: true)
        return message
    }

    @Test("events, frames and messages mean the same as with Foundation's encoder")
    func wireTypesMatchFoundation() throws {
        let message = Self.fullMessage()
        let chat = Chat(
            id: .random(), kind: .group, title: "T", description: "", createdBy: .random(), createdAt: Self.at, memberCount: 2,
            lastMessageSeq: 0, lastActivityAt: Self.at)
        let events: [ServerEvent] = [
            .messageCreated(message), .messageEdited(Message(id: .random(), chatID: .random(), chatSeq: 1, senderID: .random(), text: "", createdAt: Self.at)),
            .messageDeleted(message), .reactionsChanged(chatID: .random(), messageID: .random(), reactions: []),
            .messagePinned(chatID: .random(), messageID: .random(), by: .random()), .receiptUpdated(chatID: .random(), userID: .random(), readSeq: 9),
            .chatCreated(chat), .membersJoined(chat: chat, members: [ChatMember(userID: .random(), role: .admin, joinedAt: Self.at, readSeq: 0)], by: .random()),
            .memberLeft(chat: chat, userID: .random(), by: .random()), .memberRoleChanged(chatID: .random(), userID: .random(), role: .member, by: .random()),
            .sessionRevoked(sessionID: .random()), .typing(chatID: .random(), userID: .random()),
            .presenceChanged(Presence(userID: .random(), online: false, lastSeenAt: Self.at)),
            .presenceChanged(Presence(userID: .random(), online: true, lastSeenAt: nil)),
        ]
        for event in events {
            try expectSameJSON(event)
            try expectSameJSON(ServerFrame(type: .event, seq: EventSeq(7), event: event))
        }
        try expectSameJSON(message)
        try expectSameJSON(message.extras)
        try expectSameJSON(
            ServerFrame(
                type: .ack, ref: "r1",
                sent: SentMessage(id: .random(), chatID: .random(), chatSeq: 3, createdAt: Self.at, clientMessageID: nil, created: true)))
        try expectSameJSON(ServerFrame(type: .error, code: "rate_limited", message: "Slow down."))
        // Nothing is optional-skipped differently: an absent key stays absent.
        #expect(try !streamed(ServerFrame(type: .pong)).contains("null"))
    }

    @Test("strings are escaped byte for byte as Foundation escapes them")
    func stringEscaping() throws {
        var everyControl = ""
        for byte in 0..<0x20 { everyControl.unicodeScalars.append(Unicode.Scalar(UInt8(byte))) }
        let strings = [everyControl, "\"\\/", "\u{7f}\u{80}\u{ff}\u{2028}\u{2029}\u{FEFF}", "Ω😀中", "", "plain"]
        #expect(try streamed(strings) == foundation(strings))
        for string in strings { #expect(try streamed(string) == foundation(string)) }
    }

    @Test("numbers are spelled as Foundation spells them")
    func numbers() throws {
        let doubles = [0, -0.0, 1, 1.5, 0.1, 1e16, 1e300, 1e-7, -123456789.123, Double.leastNonzeroMagnitude, Double.greatestFiniteMagnitude]
        #expect(try streamed(doubles) == foundation(doubles))
        let floats: [Float] = [0.1, 3.4e38, 1e-10, 1]
        #expect(try streamed(floats) == foundation(floats))
        let integers: [Int64] = [0, 9, 10, -1, -10, .min, .max]
        #expect(try streamed(integers) == foundation(integers))
        #expect(try streamed([UInt64.max]) == foundation([UInt64.max]))
        #expect(try streamed([Int8.min]) == foundation([Int8.min]))
        #expect(try streamed(Decimal(string: "12.50")) == foundation(Decimal(string: "12.50")))
        #expect(throws: EncodingError.self) { try JSONStreamEncoder.encode([Double.nan]) }
        #expect(throws: EncodingError.self) { try JSONStreamEncoder.encode(["x": Double.infinity]) }
    }

    @Test("dates, data, URLs and optionals use the dialect's spellings")
    func specialTypes() throws {
        struct Special: Encodable {
            var createdAt = JSONStreamEncoderTests.at
            var blob = Data([1, 2, 3, 250])
            var link = URL(string: "https://example.org/a?b=1")
            var missing: Int?
            var dates = [JSONStreamEncoderTests.at]
            var optionalDates: [Date?] = [nil, JSONStreamEncoderTests.at]
        }
        try expectSameJSON(Special())
        #expect(try streamed(Special()).hasPrefix(#"{"created_at":"2026-11-18T"#))
        #expect(try !streamed(Special()).contains("missing"))
    }

    @Test("dictionary keys are data: string keys are never converted, other keys as Foundation converts them")
    func dictionaries() throws {
        let data: JSONValue = .object(["camelCase": .int(1), "snake_case": .object(["innerKey": .array([])]), "URLs": .string("x")])
        #expect(try streamed(data).contains(#""camelCase":1"#))
        #expect(try streamed(data).contains(#""innerKey":[]"#))
        try expectSameJSON(data)
        try expectSameJSON([3: "three", 40: "forty"])
        try expectSameJSON(["userIDs": ["someValue": 1]])
    }

    @Test("a value that writes nothing is an empty object; at the top level it is Foundation's error")
    func emptyValues() throws {
        struct Nothing: Encodable { func encode(to encoder: any Encoder) throws {} }
        struct Holder: Encodable {
            var inner = Nothing()
            var list = [Nothing()]
        }
        #expect(try streamed(Holder()) == #"{"inner":{},"list":[{}]}"#)
        #expect(try JSONStreamEncoder.encode(Nothing()) == nil)
        #expect(throws: EncodingError.self) { try VestnikJSON.encode(Nothing()) }
    }

    @Test("containers used out of order make the value fall back to Foundation, with the same meaning")
    func unstreamableShapesFallBack() throws {
        /// Fills a nested container after writing a later key of its parent.
        struct LateNested: Encodable {
            enum Keys: String, CodingKey { case inner, afterInner }
            enum InnerKeys: String, CodingKey { case value }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: Keys.self)
                var inner = container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner)
                try container.encode(1, forKey: .afterInner)
                try inner.encode(2, forKey: .value)
            }
        }
        class Base: Encodable {
            var baseField = 1
        }
        final class Derived: Base {
            enum Keys: String, CodingKey { case derivedField }
            override func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: Keys.self)
                try container.encode(2, forKey: .derivedField)
                try super.encode(to: container.superEncoder())
            }
        }
        #expect(try JSONStreamEncoder.encode(LateNested()) == nil)
        #expect(try JSONStreamEncoder.encode(Derived()) == nil)
        for value in [LateNested()] as [any Encodable] + [Derived()] {
            let encoded = try VestnikJSON.encode(value)
            #expect(try canonical(encoded) == canonical(VestnikJSON.foundationEncoder().encode(value)))
        }
        #expect(try canonical(VestnikJSON.encode(LateNested())) == #"{"after_inner":1,"inner":{"value":2}}"#)
    }

    @Test("a value asking for its container twice (a class and its superclass sharing one) gets the same one")
    func sharedContainer() throws {
        class Base: Encodable {
            enum Keys: String, CodingKey { case baseField }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: Keys.self)
                try container.encode(1, forKey: .baseField)
            }
        }
        final class Derived: Base {
            enum Keys: String, CodingKey { case derivedField }
            override func encode(to encoder: any Encoder) throws {
                try super.encode(to: encoder)
                var container = encoder.container(keyedBy: Keys.self)
                try container.encode([2], forKey: .derivedField)
            }
        }
        #expect(try streamed([Derived(), Derived()]) == #"[{"base_field":1,"derived_field":[2]},{"base_field":1,"derived_field":[2]}]"#)
        try expectSameJSON(Derived())
    }

    @Test("an element whose value throws leaves no trace when the caller catches the error, as with Foundation")
    func caughtErrorsLeaveNothing() throws {
        struct Failing: Encodable, Error {
            var writeFirst: Bool
            enum Keys: String, CodingKey { case partial }
            func encode(to encoder: any Encoder) throws {
                if writeFirst {
                    var container = encoder.container(keyedBy: Keys.self)
                    try container.encode([1, 2], forKey: .partial)
                }
                throw self
            }
        }
        struct Forgiving: Encodable {
            var retrySingle = true
            enum Keys: String, CodingKey { case ratio, child, written, list, single }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: Keys.self)
                try? container.encode(Double.nan, forKey: .ratio)
                try? container.encode(Failing(writeFirst: false), forKey: .child)
                try? container.encode(Failing(writeFirst: true), forKey: .child)
                try container.encode("kept", forKey: .written)
                var list = container.nestedUnkeyedContainer(forKey: .list)
                try? list.encode(Float.infinity)
                try? list.encode(Failing(writeFirst: true))
                try list.encode(1)
                try? list.encode(Failing(writeFirst: false))
                if retrySingle { try container.encode(Wrapper(), forKey: .single) }
            }
        }
        /// A single value that fails, then succeeds in the same slot.
        struct Wrapper: Encodable {
            func encode(to encoder: any Encoder) throws {
                var single = encoder.singleValueContainer()
                try? single.encode(Failing(writeFirst: true))
                try single.encode("second try")
            }
        }
        #expect(try streamed(Forgiving()) == #"{"written":"kept","list":[1],"single":"second try"}"#)
        // Foundation agrees except for the failed single value: it keeps what that value wrote before
        // throwing (`"single":{"partial":[1,2]}`) and ignores the second try.
        try expectSameJSON(Forgiving(retrySingle: false))
        #expect(throws: Failing.self) { try VestnikJSON.encode([Failing(writeFirst: true)]) }
    }

    @Test("a value writing into a container it was handed by an outer value is left to Foundation, without breaking or crashing")
    func writesIntoOuterContainers() throws {
        struct Escaped: Error {}
        struct Child: Encodable {
            let parent: any UnkeyedEncodingContainer
            var fail = false
            func encode(to encoder: any Encoder) throws {
                var outer = parent
                try outer.encode(1)
                if fail { throw Escaped() }
                var single = encoder.singleValueContainer()
                try single.encode(2)
            }
        }
        struct Root: Encodable {
            func encode(to encoder: any Encoder) throws {
                var list = encoder.unkeyedContainer()
                try list.encode(Child(parent: list))
            }
        }
        /// The child writes into the root's array from inside the middle value's own array, then throws.
        struct RootThroughMiddle: Encodable {
            struct Middle: Encodable {
                let root: any UnkeyedEncodingContainer
                func encode(to encoder: any Encoder) throws {
                    var own = encoder.unkeyedContainer()
                    try? own.encode(Child(parent: root, fail: true))
                    try own.encode(3)
                }
            }
            func encode(to encoder: any Encoder) throws {
                var list = encoder.unkeyedContainer()
                try list.encode(Middle(root: list))
            }
        }
        #expect(try JSONStreamEncoder.encode(Root()) == nil)
        #expect(try JSONStreamEncoder.encode(RootThroughMiddle()) == nil)
        #expect(try canonical(VestnikJSON.encode(Root())) == canonical(VestnikJSON.foundationEncoder().encode(Root())))
    }

    @Test("writing twice into one place is an error, not broken JSON (Foundation's encoder stops the process there)")
    func doubleWritesAreErrors() throws {
        struct TwoValues: Encodable {
            func encode(to encoder: any Encoder) throws {
                var single = encoder.singleValueContainer()
                try single.encode(Optional("a"))
                try single.encode(Optional("b"))
            }
        }
        struct ValueThenObject: Encodable {
            enum Keys: String, CodingKey { case y }
            func encode(to encoder: any Encoder) throws {
                var single = encoder.singleValueContainer()
                try single.encode(ChatKind.group)
                var keyed = encoder.container(keyedBy: Keys.self)
                try keyed.encode(1, forKey: .y)
            }
        }
        struct ObjectThenArray: Encodable {
            enum Keys: String, CodingKey { case y }
            func encode(to encoder: any Encoder) throws {
                var keyed = encoder.container(keyedBy: Keys.self)
                try keyed.encode(1, forKey: .y)
                var list = encoder.unkeyedContainer()
                try list.encode(2)
            }
        }
        #expect(throws: EncodingError.self) { try VestnikJSON.encode(TwoValues()) }
        #expect(throws: EncodingError.self) { try VestnikJSON.encode(["k": ValueThenObject()]) }
        #expect(throws: EncodingError.self) { try VestnikJSON.encode([ObjectThenArray()]) }
    }

    @Test("128-bit integers, Decimal NaN and nesting depth behave as with Foundation")
    func edgeValues() throws {
        let wide: [Int128] = [.min, 0, .max]
        #expect(try streamed(wide) == foundation(wide))
        #expect(try streamed([UInt128.max]) == foundation([UInt128.max]))
        #expect(throws: EncodingError.self) { try VestnikJSON.encode([Decimal.nan]) }
        var nested = JSONValue.int(1)
        for _ in 0..<500 { nested = .array([nested]) }
        #expect(try streamed(nested) == foundation(nested))
        for _ in 0..<20 { nested = .array([nested]) }
        #expect(throws: EncodingError.self) { try VestnikJSON.encode(nested) }
    }

    @Test("dates are written as formatDate writes them, also outside four-digit years")
    func dates() throws {
        for ms: Int64 in [0, -1, 1_795_000_000_123, 253_402_300_799_999, 253_402_300_800_000, -62_135_596_800_001, 951_782_400_000] {
            let date = Date(millisecondsSince1970: ms)
            #expect(try streamed(date) == "\"\(VestnikJSON.formatDate(date))\"")
            #expect(VestnikJSON.parseDate(VestnikJSON.formatDate(date)) == date || !(0..<253_402_300_800_000).contains(ms), "\(ms)")
        }
        #expect(VestnikJSON.formatDate(Date(millisecondsSince1970: 951_782_400_000)) == "2000-02-29T00:00:00.000Z")
        #expect(VestnikJSON.formatDate(Date(millisecondsSince1970: -1)) == "1969-12-31T23:59:59.999Z")
        #expect(VestnikJSON.formatDate(Date(millisecondsSince1970: 253_402_300_800_000)) == "10000-01-01T00:00:00.000Z")
    }

    @Test("random JSON values mean the same and decode back to themselves")
    func randomValues() throws {
        var generator = SystemRandomNumberGenerator()
        func randomString() -> String {
            let pool: [Unicode.Scalar] = ["a", "Z", "\"", "\\", "/", "\n", "\u{0}", "\u{1f}", "é", "中", "😀", "_", "I", "D"]
            return String(String.UnicodeScalarView((0..<Int.random(in: 0...8, using: &generator)).map { _ in pool.randomElement(using: &generator)! }))
        }
        func randomValue(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0...(depth > 3 ? 4 : 6), using: &generator) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &generator))
            case 2: return .int(Int64.random(in: .min ... .max, using: &generator))
            case 3: return .double(Double.random(in: -1e6...1e6, using: &generator))
            case 4: return .string(randomString())
            case 5: return .array((0..<Int.random(in: 0...4, using: &generator)).map { _ in randomValue(depth + 1) })
            default:
                var object: [String: JSONValue] = [:]
                for _ in 0..<Int.random(in: 0...4, using: &generator) { object[randomString()] = randomValue(depth + 1) }
                return .object(object)
            }
        }
        for _ in 0..<300 {
            let value = randomValue(0)
            try expectSameJSON(value)
            #expect(try VestnikJSON.decode(JSONValue.self, from: VestnikJSON.encode(value)) == value)
        }
    }
}
