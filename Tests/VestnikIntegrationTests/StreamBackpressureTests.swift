import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Synchronization
import Testing
import VestnikAPI
import VestnikKit
import WSClient

/// A client that stops reading must not make the server buffer without bound: once its socket
/// and the allowed backlog are full, the server drops it (`slow_consumer`), while everybody
/// else keeps receiving everything. The fan-out does not depend on the store, and flooding
/// ~15 MB through PostgreSQL in a debug build takes a minute, so it runs on SQLite only.
@Suite(.timeLimit(.minutes(2)), .enabled(if: TestBackend.postgresServerURL == nil, "store-independent; runs on SQLite"))
struct StreamBackpressureTests {
    @Test("a stream that stops reading is dropped as slow_consumer; other streams get every message")
    func slowConsumerIsDropped() async throws {
        let server = try await TestServer.start { $0.streamBufferLimit = 16 }
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice")
        let (bob, bobUser) = try await server.client("bob")
        let (carol, carolUser) = try await server.client("carol")
        let chat = try await alice.createGroup(title: "flood", members: [bobUser.id, carolUser.id]).chat
        let bobToken = try #require(bob.token)
        let (carolEvents, carolTask) = EventCollector.start(carol.stream())
        defer { carolTask.cancel() }

        // Bob authenticates, sees `ready`, then reads nothing until the flood is over.
        let (floodDone, floodDoneContinuation) = AsyncStream<Void>.makeStream()
        let (bobReady, bobReadyContinuation) = AsyncStream<Void>.makeStream()
        let bobFrames = Mutex<(events: Int, errors: [String])>((0, []))
        let bobTask = Task {
            let configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 20, autoPing: .disabled)
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            try await WebSocketClient.connect(url: "ws://127.0.0.1:\(server.port)/api/v1/stream", configuration: configuration, logger: logger) {
                inbound, outbound, _ in
                try await outbound.write(.text("{\"type\":\"auth\",\"token\":\"\(bobToken)\"}"))
                var iterator = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                while let message = try await iterator.next() {
                    if case .text(let text) = message, text.contains("\"ready\"") { break }
                }
                bobReadyContinuation.finish()
                for await _ in floodDone {}
                while let message = try await iterator.next() {
                    guard case .text(let text) = message,
                        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                    else { continue }
                    bobFrames.withLock { frames in
                        if object["type"] as? String == "event" { frames.events += 1 }
                        if object["type"] as? String == "error", let code = object["code"] as? String { frames.errors.append(code) }
                    }
                }
            }
        }
        for await _ in bobReady {}

        // ~15 MB of messages: more than the kernel's socket buffers on both ends can hold.
        let text = String(repeating: "x", count: 15_000)
        let count = 1_000
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in stride(from: worker, to: count, by: 8) {
                        _ = try await alice.sendMessage(chatID: chat.id, text: "\(index) \(text)")
                    }
                }
            }
            try await group.waitForAll()
        }
        floodDoneContinuation.finish()
        _ = try? await bobTask.value

        let bobSaw = bobFrames.withLock { $0 }
        #expect(bobSaw.events < count, "the slow stream was cut off before the end of the flood")
        // The notice reaches a client that drains its backlog within the close's grace period;
        // whatever it read, it is told nothing else.
        #expect(bobSaw.errors.allSatisfy { $0 == "slow_consumer" }, "\(bobSaw.errors)")
        let (metricsBody, _) = try await URLSession.shared.data(from: server.url.appendingPathComponent("metrics"))
        #expect(String(decoding: metricsBody, as: UTF8.self).contains("vestnik_stream_slow_consumer_disconnects_total 1"))
        // Carol, who kept reading, has every message.
        #expect(await carolEvents.wait(timeout: .seconds(30)) { await $0.messagesCreated.count >= count })
        #expect(await carolEvents.messagesCreated.count == count)
        // The server is healthy: Bob can reconnect and send.
        _ = try await bob.sendMessage(chatID: chat.id, text: "back")
    }
}
