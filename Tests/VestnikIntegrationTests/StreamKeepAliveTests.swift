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
        let silentConnection = StreamConnection(channel: quiet, queue: queue, bufferLimit: 8)
        let answering = StreamConnection(channel: chatty, queue: queue, bufferLimit: 8)
        try chatty.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try quiet.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        answering.keepAlive()
        silentConnection.keepAlive()
        for _ in 0..<8 {
            loop.advanceTime(by: .seconds(10))
            // The answering client sends a pong (any bytes count) after every ping.
            try chatty.writeInbound(ByteBuffer(bytes: [0x8A, 0x00]))
            _ = try chatty.readInbound(as: ByteBuffer.self)
        }
        var quietFrames: [WebSocketOpcode] = []
        while let frame = try quiet.readOutbound(as: WebSocketFrame.self) { quietFrames.append(frame.opcode) }
        #expect(quietFrames.filter { $0 == .ping }.count == 2)
        #expect(quietFrames.last == .connectionClose)
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
