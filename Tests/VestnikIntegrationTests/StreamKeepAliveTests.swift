import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

import VestnikHTTP

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

    @Test("a stream whose client answers no ping for two intervals is closed (a vanished client behind a proxy)")
    func silentClientIsClosed() throws {
        let loop = EmbeddedEventLoop()
        let queue = EventLoopWriteQueue(eventLoop: loop, keepAliveInterval: .seconds(10))
        let quiet = EmbeddedChannel(loop: loop)
        let chatty = EmbeddedChannel(loop: loop)
        let start = loop.now
        // What the kernel would report: the quiet client never sent anything since the start,
        // the chatty one answers every ping at once.
        let silentConnection = StreamConnection(channel: quiet, queue: queue, bufferLimit: 8) { channel in
            channel.eventLoop.makeSucceededFuture(.nanoseconds(Int64(channel.eventLoop.now.uptimeNanoseconds - start.uptimeNanoseconds)))
        }
        let answering = StreamConnection(channel: chatty, queue: queue, bufferLimit: 8) { channel in
            channel.eventLoop.makeSucceededFuture(.zero)
        }
        answering.keepAlive()
        silentConnection.keepAlive()
        loop.advanceTime(by: .seconds(80))
        var quietFrames: [WebSocketOpcode] = []
        while let frame = try quiet.readOutbound(as: WebSocketFrame.self) { quietFrames.append(frame.opcode) }
        // Pings at 10 and 20 s; at 30 s it has been silent for more than 25 s.
        #expect(quietFrames == [.ping, .ping, .connectionClose])
        #expect(try Self.pings(in: chatty) == 8)
        queue.unregister(silentConnection)
        queue.unregister(answering)
        _ = try? quiet.finish()
        _ = try? chatty.finish()
    }

    @Test("open streams are pinged every interval; closed and overflowed ones are not; the timer stops with the last stream")
    func pingsEveryInterval() throws {
        let loop = EmbeddedEventLoop()
        let queue = EventLoopWriteQueue(eventLoop: loop, keepAliveInterval: .seconds(5))
        let first = EmbeddedChannel(loop: loop)
        let second = EmbeddedChannel(loop: loop)
        let a = StreamConnection(channel: first, queue: queue, bufferLimit: 8)
        let b = StreamConnection(channel: second, queue: queue, bufferLimit: 8)
        a.keepAlive()
        b.keepAlive()

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

        // And it starts again with the next stream (whose client just sent something).
        try first.writeInbound(ByteBuffer(bytes: [0x8A, 0x00]))
        _ = try first.readInbound(as: ByteBuffer.self)
        queue.register(a)
        loop.advanceTime(by: .seconds(5))
        #expect(try Self.pings(in: first) == 1)
        queue.unregister(a)
        _ = try? first.finish()
        _ = try? second.finish()
    }
}
