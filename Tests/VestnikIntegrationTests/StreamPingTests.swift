import Foundation
import Logging
import Synchronization
import Testing
import WSClient

/// The stream's application-level keep-alive: browsers can neither send nor see WebSocket ping
/// control frames, so they send `{"type":"ping"}` and expect `{"type":"pong"}`.
@Suite(.timeLimit(.minutes(1)))
struct StreamPingTests {
    /// Opens a raw stream the way the web client does (same-origin `Origin`, `first` as the first frame,
    /// normally the auth frame), sends `frames` once `ready` arrived, and returns the `type` of every server frame
    /// until `stopAt` frames were received (or the socket closed).
    static func exchange(_ server: TestServer, first: String, frames: [String], stopAt: Int) async throws -> [String] {
        let received = Mutex<[String]>([])
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 20, autoPing: .disabled)
        configuration.additionalHeaders[.origin] = "http://127.0.0.1:\(server.port)"
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        try await WebSocketClient.connect(url: "ws://127.0.0.1:\(server.port)/api/v1/stream", configuration: configuration, logger: logger) {
            inbound, outbound, _ in
            try await outbound.write(.text(first))
            for try await message in inbound.messages(maxSize: 1 << 20) {
                guard case .text(let text) = message,
                    let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                    let type = object["type"] as? String
                else { continue }
                let count = received.withLock { $0.append(type); return $0.count }
                if type == "ready" {
                    for frame in frames { try await outbound.write(.text(frame)) }
                }
                if count >= stopAt {
                    try await outbound.close(.normalClosure, reason: nil)
                    return
                }
            }
        }
        return received.withLock { $0 }
    }

    @Test("a ping frame is answered with a pong frame, once per ping; unknown and malformed frames are ignored")
    func pingPong() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice")
        let token = try #require(alice.token)
        let types = try await Self.exchange(
            server, first: "{\"type\":\"auth\",\"token\":\"\(token)\"}",
            frames: ["{\"type\":\"ping\"}", "not json", "{\"type\":\"bogus\"}", "{\"type\":\"ping\"}"],
            stopAt: 3)
        #expect(types == ["ready", "pong", "pong"])
    }

    @Test("a ping before authentication is not answered: the first frame must still be auth")
    func pingBeforeAuth() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let types = try await Self.exchange(server, first: "{\"type\":\"ping\"}", frames: [], stopAt: 5)
        #expect(types == ["error"])
    }
}
