import Foundation
import HTTPTypes
import Logging
import Synchronization
import VestnikAPI
import VestnikKit
import WSClient

/// The `idle` scenario: C authenticated, idle stream connections (one account, one session),
/// spread over worker processes because one process may hold at most 20,000 open files.
/// Reports the server's RSS growth per connection.
func runIdle(server: ServerUnderTest, backend: String, connections: Int, perWorker: Int, bench: URL) async throws -> ScenarioResult {
    let password = "bench-password-1"
    let login = "i\(UInt16.random(in: 0...UInt16.max))u0"
    _ = try await server.createUsers(prefix: String(login.dropLast()), count: 1, password: password)
    let client = VestnikClient(serverURL: server.url, token: nil)
    _ = try await client.login(login: login, password: password, deviceName: "bench idle")
    guard let token = client.token else { throw BenchError("no token") }
    try await Task.sleep(for: .seconds(1))
    let rssBefore = server.rssBytes() ?? 0

    var workers: [(Process, Pipe)] = []
    var remaining = connections
    while remaining > 0 {
        let count = min(perWorker, remaining)
        remaining -= count
        let process = Process()
        process.executableURL = bench
        process.arguments = ["idle-worker", "--server", server.url.absoluteString, "--connections", String(count)]
        process.environment = ProcessInfo.processInfo.environment.merging(["VESTNIK_BENCH_TOKEN": token]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        workers.append((process, output))
    }
    defer { for (process, _) in workers where process.isRunning { process.terminate() } }
    var ready = 0
    var retried = 0
    let started = ContinuousClock.now
    for (_, output) in workers {
        // Each worker prints one line, "ready N retried M", once all its connections got their
        // ready frame (M: connects that failed and were tried again).
        let words = String(decoding: output.fileHandleForReading.availableDataUntilNewline(), as: UTF8.self).split(separator: " ")
        if words.count == 4 {
            ready += Int(words[1]) ?? 0
            retried += Int(words[3].trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
    }
    let setupSeconds = (ContinuousClock.now - started).seconds
    try await Task.sleep(for: .seconds(2))
    let rssAfter = server.rssBytes() ?? 0
    return ScenarioResult(
        scenario: "idle", backend: backend, parameters: ["connections": "\(connections)", "per worker": "\(perWorker)"],
        figures: [
            "connections ready": Double(ready),
            "connects retried": Double(retried),
            "seconds to open all": setupSeconds,
            "server RSS MiB (before)": Double(rssBefore) / 1_048_576,
            "server RSS MiB (with connections)": Double(rssAfter) / 1_048_576,
            "server RSS KiB per connection": ready > 0 ? Double(rssAfter - rssBefore) / 1024 / Double(ready) : .nan,
        ],
        latencies: [:])
}

extension FileHandle {
    /// Reads until a newline or end of file.
    func availableDataUntilNewline() -> Data {
        var data = Data()
        while true {
            let chunk = readData(ofLength: 1)
            if chunk.isEmpty || chunk == Data("\n".utf8) { return data }
            data.append(chunk)
        }
    }
}

/// One worker process of the idle scenario: opens N streams with the token from
/// `VESTNIK_BENCH_TOKEN`, prints `ready N retried M` when all are live (M: connects that failed
/// and were tried again), then holds them until killed.
func runIdleWorker(server: String, connections: Int) async throws {
    guard let token = ProcessInfo.processInfo.environment["VESTNIK_BENCH_TOKEN"] else { throw BenchError("VESTNIK_BENCH_TOKEN is not set") }
    let url = server.replacingOccurrences(of: "http://", with: "ws://") + "/api/v1/stream"
    let readyCount = SharedCounter()
    let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
    let failedAttempts = SharedCounter()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for index in 0..<connections {
            group.addTask {
                var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 20, autoPing: .disabled)
                configuration.additionalHeaders[.authorization] = "Bearer \(token)"
                // A connect that fails (a handshake the server's full accept queue dropped, then
                // reset) is tried again after a pause, as an app's client does; without this a
                // few hundred of 15,000 streams never opened and the figure was per ready stream
                // while the RSS held the failed ones too.
                // Ten attempts (about half a minute): a server that refuses for longer, or
                // answers the upgrade with an error, fails the worker instead.
                var pause = Duration.milliseconds(250)
                for attempt in 1...10 {
                    let opened = SharedCounter()
                    do {
                        _ = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, _, _ in
                            opened.increment()
                            var counted = false
                            for try await message in inbound.messages(maxSize: 1 << 20) {
                                if !counted, case .text(let text) = message, text.contains("\"ready\"") {
                                    counted = true
                                    readyCount.increment()
                                }
                            }
                        }
                    } catch {
                        if attempt == 10 { throw error }
                    }
                    if opened.value > 0 { return }  // held until the server or this process ended it
                    failedAttempts.increment()
                    // Jittered, so that connects that failed together do not return together.
                    try await Task.sleep(for: pause * Double.random(in: 0.5...1.5))
                    pause = min(pause * 2, .seconds(4))
                }
            }
            // Open in small bursts so the server's accept queue is not flooded.
            if index % 100 == 99 { try await Task.sleep(for: .milliseconds(20)) }
        }
        group.addTask {
            let deadline = ContinuousClock.now + .seconds(300)
            while readyCount.value < connections, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            FileHandle.standardOutput.write(Data("ready \(readyCount.value) retried \(failedAttempts.value)\n".utf8))
            // Hold the connections until the parent kills this process.
            try await Task.sleep(for: .seconds(3600))
        }
        try await group.waitForAll()
    }
}

/// A counter shared by many tasks.
final class SharedCounter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
