import Foundation
import Logging
import Synchronization
import VestnikAPI
import VestnikKit
import WSClient

/// The `channel` scenario: one channel with `members` connected readers; an admin posts `posts`
/// times, a second apart. Reports, over every (post, member) pair, the time from the post being
/// sent to the member's stream delivering it, and per post the time until the last member has it.
///
/// Members are imported through the admin path without passwords and given sessions by
/// `vestnik admin session issue` (thousands of password logins would measure scrypt, not fan-out).
/// Their streams live in worker processes (`channel-worker`) that only look for the post marker in
/// each frame, so the load generator's own decoding does not compete with the server for the two
/// cores. Send and receive times are wall-clock (`CLOCK_REALTIME`), comparable across processes
/// on one machine.
func runChannel(server: ServerUnderTest, backend: String, members: Int, posts: Int, perWorker: Int, bench: URL) async throws -> ScenarioResult {
    let tag = UInt16.random(in: 0...UInt16.max)
    let password = "bench-password-1"
    let ownerLogin = try await server.createUsers(prefix: "o\(tag)u", count: 1, password: password)[0]
    let owner = VestnikClient(serverURL: server.url, token: nil)
    _ = try await owner.login(login: ownerLogin, password: password, deviceName: "bench channel owner")

    let logins = (0..<members).map { "m\(tag)u\($0)" }
    let memberIDs = try server.importUsers(logins)
    let tokens = try server.issueSessions(logins)

    // Create the channel and add everyone (the API takes at most 1,000 members per request).
    let chunks = stride(from: 0, to: memberIDs.count, by: 1000).map { Array(memberIDs[$0..<min($0 + 1000, memberIDs.count)]) }
    let chat = try await owner.createChannel(title: "bench channel", members: chunks.first ?? []).chat
    for chunk in chunks.dropFirst() { _ = try await owner.addMembers(chatID: chat.id, userIDs: chunk) }

    // Open every member's stream in worker processes.
    var workers: [(process: Process, output: Pipe)] = []
    defer { for worker in workers where worker.process.isRunning { worker.process.terminate() } }
    for start in stride(from: 0, to: tokens.count, by: perWorker) {
        let slice = tokens[start..<min(start + perWorker, tokens.count)]
        let process = Process()
        process.executableURL = bench
        process.arguments = ["channel-worker", "--server", server.url.absoluteString, "--messages", String(posts)]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(slice.joined(separator: "\n").utf8 + [UInt8(ascii: "\n")]))
        try input.fileHandleForWriting.close()
        workers.append((process, output))
    }
    var ready = 0
    for worker in workers {
        let line = String(decoding: worker.output.fileHandleForReading.availableDataUntilNewline(), as: UTF8.self)
        ready += Int(line.split(separator: " ").last ?? "") ?? 0
    }
    guard ready == members else { throw BenchError("only \(ready) of \(members) member streams became ready") }
    try await Task.sleep(for: .seconds(1))

    let cpuBefore = server.cpuSeconds()
    var sentAt: [Int: Int64] = [:]
    for index in 0..<posts {
        sentAt[index] = wallClockNanoseconds()
        _ = try await owner.sendMessage(chatID: chat.id, text: "chan-\(index)")
        try await Task.sleep(for: .seconds(1))
    }
    // Workers print `seen POST NANOS` per delivery, then exit once every stream saw every post.
    var latencies: [Double] = []
    var lastArrival: [Int: Int64] = [:]
    for worker in workers {
        let text = String(decoding: worker.output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[0] == "seen", let post = Int(fields[1]), let at = Int64(fields[2]), let sent = sentAt[post] else { continue }
            latencies.append(Double(at - sent) / 1e6)
            lastArrival[post] = max(lastArrival[post] ?? 0, at)
        }
        worker.process.waitUntilExit()
    }
    let cpuAfter = server.cpuSeconds()
    let completion = sentAt.compactMap { post, sent in lastArrival[post].map { Double($0 - sent) / 1e6 } }
    var figures: [String: Double] = [
        "members": Double(members),
        "posts": Double(posts),
        "deliveries expected": Double(members * posts),
        "deliveries seen": Double(latencies.count),
    ]
    if let cpuBefore, let cpuAfter { figures["server CPU ms per post"] = (cpuAfter - cpuBefore) / Double(posts) * 1000 }
    if let rss = server.rssBytes() { figures["server RSS MiB"] = Double(rss) / 1_048_576 }
    return ScenarioResult(
        scenario: "channel", backend: backend, parameters: ["members": "\(members)", "posts": "\(posts)"],
        figures: figures,
        latencies: ["post→member": Percentiles(latencies), "post→all members": Percentiles(completion)])
}

/// Nanoseconds since the epoch: the one clock two processes on a machine share.
func wallClockNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// One worker process of the channel scenario: one stream per token read from standard input;
/// prints `ready N` when all are live, then `seen POST NANOS` for each post each stream delivers,
/// and exits when every stream has seen `posts` posts (or after five minutes).
func runChannelWorker(server: String, posts: Int) async throws {
    var input: [String] = []
    while let line = readLine(strippingNewline: true) { if !line.isEmpty { input.append(line) } }
    let tokens = input
    let url = server.replacingOccurrences(of: "http://", with: "ws://") + "/api/v1/stream"
    let readyCount = SharedCounter()
    let finished = SharedCounter()
    let seen = LineCollector()
    let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
    let marker = Array("\"text\":\"chan-".utf8)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for (index, token) in tokens.enumerated() {
            group.addTask {
                var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 22, autoPing: .disabled)
                configuration.additionalHeaders[.authorization] = "Bearer \(token)"
                _ = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, _, _ in
                    var counted = false
                    var received = 0
                    for try await message in inbound.messages(maxSize: 1 << 22) {
                        guard case .text(let text) = message else { continue }
                        if !counted, text.contains("\"ready\"") {
                            counted = true
                            readyCount.increment()
                            continue
                        }
                        let at = wallClockNanoseconds()
                        guard let post = numberAfter(marker, in: Array(text.utf8)) else { continue }
                        seen.append("seen \(post) \(at)")
                        received += 1
                        if received == posts {
                            finished.increment()
                            return
                        }
                    }
                }
            }
            if index % 100 == 99 { try await Task.sleep(for: .milliseconds(20)) }
        }
        group.addTask {
            let deadline = ContinuousClock.now + .seconds(120)
            while readyCount.value < tokens.count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            FileHandle.standardOutput.write(Data("ready \(readyCount.value)\n".utf8))
            let end = ContinuousClock.now + .seconds(300)
            while finished.value < tokens.count, ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(100)) }
            let lines = seen.lines
            FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
            exit(0)
        }
        try await group.waitForAll()
    }
}

/// The decimal number right after `needle` in `bytes` (e.g. the N of `"text":"chan-N"`), if any.
func numberAfter<Bytes: RandomAccessCollection<UInt8>>(_ needle: [UInt8], in bytes: Bytes) -> Int? where Bytes.Index == Int {
    guard !needle.isEmpty, bytes.count >= needle.count else { return nil }
    var start = bytes.startIndex
    while start + needle.count <= bytes.endIndex {
        if bytes[start] == needle[0], bytes[start..<(start + needle.count)].elementsEqual(needle) {
            var value = 0
            var position = start + needle.count
            while position < bytes.endIndex, (48...57).contains(bytes[position]) {
                value = value * 10 + Int(bytes[position] - 48)
                position += 1
            }
            return position > start + needle.count ? value : nil
        }
        start += 1
    }
    return nil
}

/// Lines gathered by many tasks.
final class LineCollector: Sendable {
    private let collected = Mutex<[String]>([])
    func append(_ line: String) { collected.withLock { $0.append(line) } }
    var lines: [String] { collected.withLock { $0 } }
}
