import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import VestnikHTTP

/// The keep-alive pings: one timer per event loop pings every open stream, and stops with the
/// last one (on an embedded event loop, so time is under the test's control).
@Suite
struct StreamKeepAliveTests {
    private static func pings(in channel: EmbeddedChannel) throws -> Int {
        var count = 0
        while let frame = try channel.readOutbound(as: WebSocketFrame.self) {
            #expect(frame.opcode == .ping && frame.fin)
            count += 1
        }
        return count
    }

    @Test("open streams are pinged every interval; closed and overflowed ones are not; the timer stops with the last stream")
    func pingsEveryInterval() throws {
        let loop = EmbeddedEventLoop()
        let queue = EventLoopWriteQueue(eventLoop: loop, keepAliveInterval: .seconds(5))
        let first = EmbeddedChannel(loop: loop)
        let second = EmbeddedChannel(loop: loop)
        let a = StreamConnection(channel: first, queue: queue, bufferLimit: 8)
        let b = StreamConnection(channel: second, queue: queue, bufferLimit: 8)
        queue.register(a)
        queue.register(b)

        loop.advanceTime(by: .seconds(4))
        #expect(try Self.pings(in: first) == 0)
        loop.advanceTime(by: .seconds(1))
        #expect(try Self.pings(in: first) == 1)
        #expect(try Self.pings(in: second) == 1)

        // A stream that is closing gets no more pings.
        b.stopWriting()
        loop.advanceTime(by: .seconds(5))
        #expect(try Self.pings(in: first) == 1)
        #expect(try Self.pings(in: second) == 0)

        // With no stream left the timer is gone: nothing more is scheduled.
        queue.unregister(a)
        queue.unregister(b)
        loop.advanceTime(by: .seconds(30))
        #expect(try Self.pings(in: first) == 0)

        // And it starts again with the next stream.
        queue.register(a)
        loop.advanceTime(by: .seconds(5))
        #expect(try Self.pings(in: first) == 1)
        queue.unregister(a)
        _ = try? first.finish()
        _ = try? second.finish()
    }
}
