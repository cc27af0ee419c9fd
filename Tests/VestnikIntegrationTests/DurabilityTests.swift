import AsyncHTTPClient
import Foundation
import Synchronization
import Testing
import VestnikAPI
import VestnikKit
import VestnikModel

/// The built server as a child process: killed with SIGKILL right after acknowledgements, and
/// stopped with SIGTERM while streams are open.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct DurabilityTests {
    @Test("every acknowledged message survives kill -9 of the server")
    func killNine() async throws {
        let binary = try VestnikBinary.locate()
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-kill9-\(UUID().uuidString)").path
        let backend = try await TestBackend.serverArguments()
        let added = try binary.run(["admin", "user", "add", "--login", "alice", "--name", "Alice", "--password-stdin", "--data-dir", data] + backend, stdin: "durable-password\n")
        #expect(added.status == 0, "\(added.error)")
        let server = try await binary.startServer(dataDirectory: data, arguments: backend)
        let client = VestnikClient(serverURL: server.url, token: nil, configuration: .init(retry: .none))
        _ = try await client.login(login: "alice", password: "durable-password", deviceName: "durability test")
        let chat = try await client.openNotesChat().chat

        // Sequential sends; the kill comes immediately after the last acknowledgement.
        var acknowledged: [Message] = []
        for i in 0..<40 { acknowledged.append(try await client.sendMessage(chatID: chat.id, text: "durable \(i)")) }
        server.kill9()

        // Concurrent sends interrupted by a kill at an arbitrary moment.
        let second = try await binary.startServer(dataDirectory: data, arguments: backend)
        let client2 = VestnikClient(serverURL: second.url, token: client.token, configuration: .init(retry: .none))
        let acked = AckLog()
        await withTaskGroup(of: Void.self) { group in
            for sender in 0..<4 {
                group.addTask {
                    for i in 0..<10_000 {
                        guard let message = try? await client2.sendMessage(chatID: chat.id, text: "racing \(sender)-\(i)") else { return }
                        await acked.append(message)
                    }
                }
            }
            // Kill while sends are in flight: once some were acknowledged (a fixed delay alone can
            // pass before the first acknowledgement on a loaded machine), a little later.
            _ = await waitUntil(timeout: .seconds(20)) { await !acked.messages.isEmpty }
            try? await Task.sleep(for: .milliseconds(200))
            second.kill9()
        }
        let racing = await acked.messages
        #expect(racing.count > 0)

        let third = try await binary.startServer(dataDirectory: data, arguments: backend)
        defer { third.kill9() }
        let client3 = VestnikClient(serverURL: third.url, token: client.token)
        var stored: [MessageID: Message] = [:]
        var before: MessageID?
        while true {
            let page = try await client3.history(chatID: chat.id, before: before, limit: 200)
            for message in page.messages { stored[message.id] = message }
            guard page.hasMoreBefore, let first = page.messages.first else { break }
            before = first.id
        }
        for message in acknowledged + racing {
            #expect(stored[message.id]?.text == message.text, "acknowledged message \(message.text) lost")
        }
        // Positions stay gap-free across the crashes.
        let sequences = stored.values.map(\.chatSeq).sorted()
        #expect(sequences == Array(1...Int64(sequences.count)))
    }

    @Test("SIGTERM shuts down promptly with open streams, and clients resume after the restart")
    func gracefulShutdownAndResume() async throws {
        let binary = try VestnikBinary.locate()
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-term-\(UUID().uuidString)").path
        let backend = try await TestBackend.serverArguments()
        for login in ["alice", "bob"] {
            let added = try binary.run(["admin", "user", "add", "--login", login, "--name", login, "--password-stdin", "--data-dir", data] + backend, stdin: "password-\(login)\n")
            #expect(added.status == 0)
        }
        let server = try await binary.startServer(dataDirectory: data, arguments: backend)
        let alice = VestnikClient(serverURL: server.url, token: nil)
        _ = try await alice.login(login: "alice", password: "password-alice", deviceName: "t")
        let bob = VestnikClient(serverURL: server.url, token: nil)
        let bobUser = try await bob.login(login: "bob", password: "password-bob", deviceName: "t").user
        let chat = try await alice.createGroup(title: "Restart", members: [bobUser.id]).chat
        let (collector, task) = EventCollector.start(bob.stream(configuration: RealtimeConfiguration(initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(300))))
        defer { task.cancel() }
        #expect(await collector.wait { await $0.readyCount == 1 })
        let before = try await alice.sendMessage(chatID: chat.id, text: "before restart")
        #expect(await collector.wait { await $0.messagesCreated.contains { $0.id == before.id } })

        let started = ContinuousClock.now
        let status = await server.terminate()
        #expect(status == 0, "exit status \(String(describing: status))")
        #expect(ContinuousClock.now - started < .seconds(5))

        // While the server is down nothing arrives; after the restart (same port) the stream resumes.
        let restarted = try await restartOnPort(binary: binary, data: data, port: server.port, backend: backend)
        defer { restarted.kill9() }
        let alice2 = VestnikClient(serverURL: restarted.url, token: alice.token)
        let after = try await alice2.sendMessage(chatID: chat.id, text: "after restart")
        #expect(await collector.wait(timeout: .seconds(20)) { await $0.messagesCreated.contains { $0.id == after.id } })
        let ids = await collector.messagesCreated.map(\.id)
        #expect(ids == [before.id, after.id])
        #expect(await collector.reconnects >= 1)
    }

    /// Starts the server again on a known port (the client reconnects to the same address).
    private func restartOnPort(binary: VestnikBinary, data: String, port: Int, backend: [String]) async throws -> RunningServer {
        let process = Process()
        process.executableURL = binary.url
        process.arguments = ["serve", "--port", String(port), "--data-dir", data, "--log-level", "error"] + backend
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let server = RunningServer(process: process, port: port, log: URL(fileURLWithPath: "/dev/null"))
        _ = await waitUntil(timeout: .seconds(20)) {
            (try? await HTTPClient.shared.execute(HTTPClientRequest(url: server.url.absoluteString + "/healthz"), timeout: .seconds(2)))?.status == .ok
        }
        return server
    }
}

actor AckLog {
    private(set) var messages: [Message] = []
    /// Sends that failed on one node and were retried on another.
    private(set) var failovers = 0
    /// Returns how many messages are acknowledged now, this one included.
    @discardableResult func append(_ message: Message) -> Int {
        messages.append(message)
        return messages.count
    }
    func failedOver() { failovers += 1 }
}
