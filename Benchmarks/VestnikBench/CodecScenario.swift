import Foundation
import VestnikKit

/// `codec`: the JSON cost of the stream's hot frames, in-process (no server).
///
/// Why: a group message is encoded once as an event and once as the sender's `ack`, and each
/// client decodes frames; the `group` profile showed these encodes among the server's largest
/// costs. This isolates them so that a change to ``VestnikJSON`` can be measured on its own.
/// Every figure is microseconds per operation, the mean over `iterations` after a warm-up.
func runCodec(iterations: Int) throws -> ScenarioResult {
    let message = Message(
        id: .random(), chatID: .random(), chatSeq: 4242, senderID: .random(), text: "bench-17 a message of an ordinary length, with words",
        createdAt: .millisecondNow(), clientMessageID: "c-0123456789")
    let event = ServerEvent.messageCreated(message)
    let ack = ServerFrame(
        type: .ack, ref: "17",
        sent: SentMessage(id: message.id, chatID: message.chatID, chatSeq: message.chatSeq, createdAt: message.createdAt, clientMessageID: message.clientMessageID, created: true))
    let send = ClientFrame(type: .send, chatID: message.chatID, ref: "17", message: SendMessageRequest(text: message.text, clientMessageID: "c-0123456789"))
    let eventFrame = Data("{\"type\":\"event\",\"seq\":99,\"event\":".utf8) + (try VestnikJSON.encode(event)) + Data("}".utf8)
    let ackBytes = try VestnikJSON.encode(ack)
    let sendBytes = try VestnikJSON.encode(send)

    /// Mean microseconds of `body` over `iterations` runs (after `iterations / 10` unmeasured ones).
    func measure(_ body: () throws -> Int) rethrows -> Double {
        var sink = 0
        for _ in 0..<max(1, iterations / 10) { sink &+= try body() }
        let start = ContinuousClock.now
        for _ in 0..<iterations { sink &+= try body() }
        let elapsed = ContinuousClock.now - start
        precondition(sink != 0, "the measured work was optimised away")
        return elapsed.milliseconds * 1000 / Double(iterations)
    }

    var figures: [String: Double] = [:]
    figures["encode message.created µs"] = try measure { try VestnikJSON.encode(event).count }
    figures["encode ack frame µs"] = try measure { try VestnikJSON.encode(ack).count }
    figures["decode send frame µs"] = try measure { try VestnikJSON.decode(ClientFrame.self, from: sendBytes).ref?.count ?? 0 }
    figures["decode ack frame µs"] = try measure { try VestnikJSON.decode(ServerFrame.self, from: ackBytes).sent?.chatSeq.hashValue ?? 0 }
    figures["decode event frame µs"] = try measure { try VestnikJSON.decode(ServerFrame.self, from: eventFrame).seq?.value.hashValue ?? 0 }
    let now = Date.millisecondNow()
    let formatted = VestnikJSON.formatDate(now)
    figures["format date µs"] = measure { VestnikJSON.formatDate(now).utf8.count }
    figures["parse date µs"] = measure { VestnikJSON.parseDate(formatted).map { Int($0.timeIntervalSince1970) } ?? 0 }
    return ScenarioResult(
        scenario: "codec", backend: "none", parameters: ["iterations": String(iterations)], figures: figures, latencies: [:])
}
