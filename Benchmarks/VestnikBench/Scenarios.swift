import Foundation
import VestnikAPI
import VestnikKit
import Logging
import NIOCore
import Synchronization
import WSClient

/// Logged-in clients with open streams, and the receive side of the measurements.
struct Participants {
    let clients: [VestnikClient]
    let users: [User]
    let streamTasks: [Task<Void, Never>]
    /// Each client's stream, for `send` frames (raw receivers only).
    let streamSenders: [StreamSender]

    /// Logs every login in (bounded concurrency) and opens one stream each; returns when every
    /// stream reported `ready`.
    /// Client `i` connects to `servers[i % servers.count]` (the cluster scenario spreads them).
    static func connect(
        servers: [ServerUnderTest], logins: [String], password: String, recorder: Recorder?, marker: String, sdkReceivers: Bool = false
    ) async throws -> Participants {
        var clients: [VestnikClient] = []
        var users: [User] = []
        for (index, login) in logins.enumerated() {
            let client = VestnikClient(serverURL: servers[index % servers.count].url, token: nil)
            users.append(try await client.login(login: login, password: password, deviceName: "bench").user)
            clients.append(client)
        }
        let ready = ReadyCounter()
        var tasks: [Task<Void, Never>] = []
        var senders: [StreamSender] = []
        for (index, client) in clients.enumerated() {
            if sdkReceivers {
                tasks.append(Task { await receiveDecoding(client, recorder: recorder, marker: marker, ready: ready) })
            } else {
                guard let token = client.token else { throw BenchError("no token after login") }
                let url = servers[index % servers.count].url
                let sender = StreamSender()
                senders.append(sender)
                tasks.append(Task { await receiveRaw(server: url, token: token, recorder: recorder, marker: marker, ready: ready, sender: sender) })
            }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while await ready.value < clients.count {
            guard ContinuousClock.now < deadline else { throw BenchError("streams did not become ready") }
            try await Task.sleep(for: .milliseconds(20))
        }
        return Participants(clients: clients, users: users, streamTasks: tasks, streamSenders: senders)
    }

    func close() {
        for task in streamTasks { task.cancel() }
        for sender in streamSenders { sender.fail() }
    }

    /// Who sends the load: the HTTP clients, or the same users over their streams.
    func senders(over path: SendPath) throws -> [any MessageSender] {
        switch path {
        case .http: return clients
        case .stream:
            guard streamSenders.count == clients.count else { throw BenchError("--send-over stream needs raw receivers (not --sdk-receivers)") }
            return streamSenders
        }
    }
}

/// Receives through VestnikKit's stream, decoding every event into its wire type (what an app does).
private func receiveDecoding(_ client: VestnikClient, recorder: Recorder?, marker: String, ready: ReadyCounter) async {
    do {
        for try await event in client.stream() {
            switch event {
            case .ready: await ready.increment()
            case .event(let sequenced):
                if let recorder, case .messageCreated(let message) = sequenced.event, message.text.hasPrefix(marker),
                    let index = Int(message.text.dropFirst(marker.count))
                {
                    recorder.seen(index, at: .now)
                }
            default: break
            }
        }
    } catch {}
}

/// Receives on a bare WebSocket and only looks for the message marker in each frame: the load
/// generator shares the two cores with the server, and decoding 20 copies of every message into
/// wire types would cost it more CPU than the server spends (measured: `--sdk-receivers`).
private func receiveRaw(server: URL, token: String, recorder: Recorder?, marker: String, ready: ReadyCounter, sender: StreamSender) async {
    do {
        let channel = try await RawStream.connect(server: server, token: token, maxFrameSize: 1 << 22) {
            GroupFrameHandler(recorder: recorder, marker: marker, ready: ready, sender: sender)
        }
        sender.attach(channel)
        defer { sender.fail() }
        try await withTaskCancellationHandler {
            try await channel.closeFuture.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    } catch {
        sender.fail()
    }
}

/// What the `group` receivers look for in each frame, worked out from its bytes in place.
private final class GroupFrameHandler: StreamFrameHandler {
    private let recorder: Recorder?
    private let ready: ReadyCounter
    private let sender: StreamSender
    private let needle: [UInt8]
    private var isReady = false

    // Event frames are written by hand with this prefix (see `StreamFrames.event`).
    private static let eventPrefix = Array("{\"type\":\"event\"".utf8)
    private static let ackType = Array("\"type\":\"ack\"".utf8)
    private static let nackType = Array("\"type\":\"nack\"".utf8)
    private static let refKey = Array("\"ref\":\"".utf8)
    private static let readyType = Array("\"ready\"".utf8)

    init(recorder: Recorder?, marker: String, ready: ReadyCounter, sender: StreamSender) {
        self.recorder = recorder
        self.ready = ready
        self.sender = sender
        needle = Array("\"text\":\"\(marker)".utf8)
    }

    /// What one frame says.
    private enum Seen { case none, ready, event(Int), ack(Int), nack }

    override func received(_ frame: ByteBuffer) {
        let seen: Seen = frame.withUnsafeReadableBytes { bytes in
            if !isReady { return bytes.firstRange(of: Self.readyType) != nil ? .ready : .none }
            if bytes.starts(with: Self.eventPrefix) { return numberAfter(needle, in: bytes).map(Seen.event) ?? .none }
            // An ack needs no decoding: its ref (one of the sender's numbers) is all it says
            // that matters here. Control frames are encoded with Codable, keys in no fixed order.
            if bytes.firstRange(of: Self.ackType) != nil { return numberAfter(Self.refKey, in: bytes).map(Seen.ack) ?? .none }
            return bytes.firstRange(of: Self.nackType) != nil ? .nack : .none
        }
        switch seen {
        case .none: break
        case .ready:
            isReady = true
            let ready = ready
            Task { await ready.increment() }
        case .event(let index): recorder?.seen(index, at: .now)
        case .ack(let ref): sender.acknowledged(ref: String(ref))
        case .nack:
            if let decoded = try? VestnikJSON.decode(ServerFrame.self, from: Data(frame.readableBytesView)) { sender.answered(decoded) }
        }
    }
}

/// How the load is sent.
enum SendPath: String, Sendable {
    case http, stream
}

/// Something that sends one message and returns once the server acknowledged it.
protocol MessageSender: Sendable {
    func send(chatID: ChatID, text: String) async throws
}

extension VestnikClient: MessageSender {
    func send(chatID: ChatID, text: String) async throws {
        _ = try await sendMessage(chatID: chatID, text: text)
    }
}

/// Sends `send` frames on one open stream and matches the `ack`/`nack` frames to them by `ref`.
final class StreamSender: MessageSender {
    private struct State {
        var channel: (any Channel)?
        var waiting: [String: CheckedContinuation<Void, any Error>] = [:]
        var nextRef = 0
        var failed = false
    }
    private let state = Mutex(State())

    func attach(_ channel: any Channel) { state.withLock { $0.channel = channel } }

    func send(chatID: ChatID, text: String) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let prepared = state.withLock { state -> ((any Channel), String)? in
                guard !state.failed, let channel = state.channel else { return nil }
                state.nextRef += 1
                let ref = String(state.nextRef)
                state.waiting[ref] = continuation
                return (channel, ref)
            }
            guard let (channel, ref) = prepared else {
                continuation.resume(throwing: BenchError("the stream is not open"))
                return
            }
            do {
                let data = try VestnikJSON.encode(ClientFrame(type: .send, chatID: chatID, ref: ref, message: SendMessageRequest(text: text)))
                RawStream.writeText(data, on: channel).whenFailure { self.resume(ref, with: .failure($0)) }
            } catch {
                resume(ref, with: .failure(error))
            }
        }
    }

    /// An `ack` frame for `ref` arrived.
    func acknowledged(ref: String) { resume(ref, with: .success(())) }

    func answered(_ frame: ServerFrame) {
        guard let ref = frame.ref else { return }
        if frame.type == .ack {
            resume(ref, with: .success(()))
        } else {
            resume(ref, with: .failure(BenchError("send refused: \(frame.code ?? "?") \(frame.message ?? "")")))
        }
    }

    /// Fails every send still waiting, and every later one (the stream is gone).
    func fail() {
        let waiting = state.withLock { state in
            state.failed = true
            defer { state.waiting.removeAll() }
            return Array(state.waiting.values)
        }
        for continuation in waiting { continuation.resume(throwing: BenchError("the stream closed")) }
    }

    private func resume(_ ref: String, with result: Result<Void, any Error>) {
        state.withLock { $0.waiting.removeValue(forKey: ref) }?.resume(with: result)
    }
}

actor ReadyCounter {
    private(set) var value = 0
    func increment() { value += 1 }
}

/// Sends `count` messages round-robin over `senders` (and over `chatIDs`, message i to chat
/// i mod their count), at most `inflight` at once, optionally paced at `rate` per second.
func sendLoad(
    senders: [any MessageSender], chatIDs: [ChatID], count: Int, inflight: Int, rate: Double?, marker: String, recorder: Recorder, deadline: Duration
) async throws {
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        var issued = 0
        func issue() {
            guard issued < count, ContinuousClock.now - start < deadline else { return }
            let index = issued
            issued += 1
            let client = senders[index % senders.count]
            let chatID = chatIDs[index % chatIDs.count]
            group.addTask {
                if let rate {
                    let due = start + .milliseconds(Int64(Double(index) * 1000 / rate))
                    if due > .now { try await Task.sleep(until: due) }
                }
                let sentAt = ContinuousClock.now
                recorder.sent(index, at: sentAt)
                try await client.send(chatID: chatID, text: "\(marker)\(index)")
                recorder.acked(index, at: .now)
            }
        }
        for _ in 0..<inflight { issue() }
        while try await group.next() != nil { issue() }
    }
}

/// The `group` scenario: N users in one group, each with a stream; M messages round-robin.
/// With several servers (the `cluster` scenario) clients are spread over them.
func runGroup(
    servers: [ServerUnderTest], scenario: String = "group", backend: String, users: Int, messages: Int, inflight: Int, rate: Double?,
    sdkReceivers: Bool = false, sendOver: SendPath = .stream, perMessageCSV: String? = nil, chats: Int = 1
) async throws -> ScenarioResult {
    guard let server = servers.first else { throw BenchError("no server") }
    let password = "bench-password-1"
    let prefix = "g\(UInt16.random(in: 0...UInt16.max))u"
    let logins = try await server.createUsers(prefix: prefix, count: users, password: password)
    let recorder = Recorder()
    let marker = "bench-"
    let participants = try await Participants.connect(
        servers: servers, logins: logins, password: password, recorder: recorder, marker: marker, sdkReceivers: sdkReceivers)
    defer { participants.close() }
    // Every user is in every chat: each message reaches the same 20 streams whichever chat it
    // goes to; more chats only spread the sends over more chat rows (each chat's order is kept
    // under its own row lock, which the nodes of a cluster otherwise all queue on).
    var chatIDs: [ChatID] = []
    for index in 0..<max(1, chats) {
        chatIDs.append(try await participants.clients[0].createGroup(title: "bench \(index)", members: participants.users.dropFirst().map(\.id)).chat.id)
    }

    // Warm-up (not measured).
    let warmup = Recorder()
    let senders = try participants.senders(over: sendOver)
    try await sendLoad(senders: senders, chatIDs: chatIDs, count: 40, inflight: inflight, rate: nil, marker: "warm-", recorder: warmup, deadline: .seconds(60))
    try await Task.sleep(for: .milliseconds(300))

    func totalCPU() -> Double? {
        let values = servers.compactMap { $0.cpuSeconds() }
        return values.count == servers.count ? values.reduce(0, +) : nil
    }
    func totalRSS() -> Int? {
        let values = servers.compactMap { $0.rssBytes() }
        return values.count == servers.count ? values.reduce(0, +) : nil
    }
    func totalBatching() async -> (writes: Double, batches: Double)? {
        var sum = (writes: 0.0, batches: 0.0)
        for server in servers {
            guard let counted = await server.writeBatching() else { return nil }
            sum = (sum.writes + counted.writes, sum.batches + counted.batches)
        }
        return sum
    }
    let batchingBefore = await totalBatching()
    let cpuBefore = totalCPU()
    let clientCPUBefore = ownCPUSeconds()
    let rssBefore = totalRSS()
    let hostBefore = HostCPUTimes.now()
    try await sendLoad(
        senders: senders, chatIDs: chatIDs, count: messages, inflight: inflight, rate: rate, marker: marker, recorder: recorder,
        deadline: .seconds(600))
    // Every other member must see every message (senders see their own too; counted the same).
    let expected = messages * users
    let drainDeadline = ContinuousClock.now + .seconds(60)
    while recorder.seenCount < expected, ContinuousClock.now < drainDeadline { try await Task.sleep(for: .milliseconds(10)) }
    let cpuAfter = totalCPU()
    let clientCPU = ownCPUSeconds() - clientCPUBefore
    let hostAfter = HostCPUTimes.now()
    let window = recorder.sendWindow()?.seconds ?? .nan
    var figures: [String: Double] = [
        "send throughput (msg/s)": Double(recorder.ackedCount) / window,
        "messages acked": Double(recorder.ackedCount),
        "deliveries seen": Double(recorder.seenCount),
        "deliveries expected": Double(expected),
    ]
    if let cpuBefore, let cpuAfter {
        figures["server CPU s"] = cpuAfter - cpuBefore
        figures["server CPU µs per message"] = (cpuAfter - cpuBefore) / Double(max(1, recorder.ackedCount)) * 1e6
    }
    // The load generator shares the two cores with the server; its share bounds the result too.
    figures["client CPU µs per message"] = clientCPU / Double(max(1, recorder.ackedCount)) * 1e6
    // How many writes each durable commit carried (the store's single writer batches them).
    if let before = batchingBefore, let after = await totalBatching(), after.batches > before.batches {
        figures["writes per commit"] = (after.writes - before.writes) / (after.batches - before.batches)
    }
    if let hostBefore, let hostAfter { figures.merge(hostAfter.percentages(since: hostBefore)) { $1 } }
    if let rss = totalRSS() { figures["server RSS MiB (after)"] = Double(rss) / 1_048_576 }
    if let rssBefore { figures["server RSS MiB (before)"] = Double(rssBefore) / 1_048_576 }
    // Per message rather than per (message, receiver) pair: where a slow message lost its time.
    let perMessage = recorder.firstAndLastSeen()
    if let perMessageCSV { try Data(recorder.perMessageCSV().utf8).write(to: URL(fileURLWithPath: perMessageCSV)) }
    return ScenarioResult(
        scenario: scenario, backend: backend,
        parameters: ["receivers": sdkReceivers ? "VestnikKit" : "raw", "send over": sendOver.rawValue, "nodes": "\(servers.count)", "chats": "\(chatIDs.count)", "users": "\(users)", "messages": "\(messages)", "inflight": "\(inflight)", "rate": rate.map { "\($0)" } ?? "max"],
        figures: figures,
        latencies: [
            "ack": Percentiles(recorder.ackLatencies()), "send→seen": Percentiles(recorder.endToEndLatencies()),
            "first seen": Percentiles(perMessage.first), "last seen": Percentiles(perMessage.last),
            "seen spread": Percentiles(perMessage.spread),
        ])
}

/// The `catchup` scenario: a client reconnects after `missed` messages and reads them all.
func runCatchUp(server: ServerUnderTest, backend: String, missed: Int) async throws -> ScenarioResult {
    let password = "bench-password-1"
    let prefix = "c\(UInt16.random(in: 0...UInt16.max))u"
    let logins = try await server.createUsers(prefix: prefix, count: 2, password: password)
    let sender = VestnikClient(serverURL: server.url, token: nil)
    _ = try await sender.login(login: logins[0], password: password, deviceName: "bench")
    let reader = VestnikClient(serverURL: server.url, token: nil)
    let readerUser = try await reader.login(login: logins[1], password: password, deviceName: "bench").user
    let chat = try await sender.createGroup(title: "catchup", members: [readerUser.id]).chat
    let position = try await reader.events(since: nil).next
    let recorder = Recorder()
    try await sendLoad(senders: [sender], chatIDs: [chat.id], count: missed, inflight: 32, rate: nil, marker: "m-", recorder: recorder, deadline: .seconds(600))

    let started = ContinuousClock.now
    let counted = SharedCount()
    // Bounded in time even when the stream stalls: the reader races a 120 s timer.
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            for try await event in reader.stream(since: position) {
                if case .event(let sequenced) = event, case .messageCreated = sequenced.event {
                    if counted.increment() >= missed { return }
                }
            }
        }
        group.addTask { try await Task.sleep(for: .seconds(120)) }
        try await group.next()
        group.cancelAll()
    }
    let received = counted.value
    let elapsed = (ContinuousClock.now - started).seconds
    return ScenarioResult(
        scenario: "catchup", backend: backend, parameters: ["missed": "\(missed)"],
        figures: ["catch-up seconds": elapsed, "messages received": Double(received), "messages per second": Double(received) / elapsed],
        latencies: [:])
}

/// A count shared between tasks.
final class SharedCount: Sendable {
    private let count = Mutex(0)
    /// Adds one; returns the new count.
    func increment() -> Int { count.withLock { $0 += 1; return $0 } }
    var value: Int { count.withLock { $0 } }
}

/// CPU seconds (user + system) this process has used so far.
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}
