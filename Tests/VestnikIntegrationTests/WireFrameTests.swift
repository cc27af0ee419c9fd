import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
import Testing

import VestnikHTTP

/// Live events are framed once and written past NIO's frame encoder: the bytes must be exactly
/// what that encoder writes, for every length form, and keep their order with frames that do go
/// through the encoder.
@Suite
struct WireFrameTests {
    /// What NIO's encoder writes for a frame (a text frame with this payload by default).
    private static func encodedByNIO(_ payload: ByteBuffer, opcode: WebSocketOpcode = .text) throws -> [UInt8] {
        let channel = EmbeddedChannel(handler: WebSocketFrameEncoder())
        try channel.writeAndFlush(WebSocketFrame(fin: true, opcode: opcode, data: payload)).wait()
        var bytes: [UInt8] = []
        while var part = try channel.readOutbound(as: ByteBuffer.self) { bytes += part.readBytes(length: part.readableBytes) ?? [] }
        return bytes
    }

    /// A stream connection on an embedded channel with no handlers (frames come out as written).
    private static func bareConnection() -> (EmbeddedEventLoop, EmbeddedChannel, StreamConnection) {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        return (loop, channel, StreamConnection(channel: channel, queue: EventLoopWriteQueue(eventLoop: loop), bufferLimit: 8))
    }

    /// ``bareConnection()`` whose slow-consumer ends are counted.
    private static func countingConnection() -> (EmbeddedEventLoop, EmbeddedChannel, StreamConnection, Calls) {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let counted = Calls()
        let connection = StreamConnection(
            channel: channel, queue: EventLoopWriteQueue(eventLoop: loop), bufferLimit: 8, countSlowConsumer: { counted.count.withLock { $0 += 1 } })
        return (loop, channel, connection, counted)
    }

    private final class Calls: Sendable {
        let count = Mutex(0)
    }

    @Test("a wire frame is byte for byte what NIO's encoder writes", arguments: [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
    func matchesEncoder(length: Int) throws {
        let payload = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let frame = WireFrame(text: payload)
        #expect(Array(frame.wire.readableBytesView) == (try Self.encodedByNIO(payload)))
        #expect(frame.payload == payload)
    }

    @Test("live frames go out past the encoder, in order with frames that go through it")
    func writtenPastTheEncoder() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        let connection = StreamConnection(channel: channel, queue: EventLoopWriteQueue(eventLoop: loop), bufferLimit: 8)
        let first = WireFrame(text: ByteBuffer(string: "{\"seq\":1}"))
        let second = WireFrame(text: ByteBuffer(string: "{\"seq\":2}"))
        connection.enqueue(first)
        connection.close(after: ByteBuffer(string: "{\"bye\":1}"), code: .normalClosure, reason: "done")
        connection.enqueue(second)  // after the close frame: never written
        loop.run()
        var parts: [[UInt8]] = []
        while var part = try channel.readOutbound(as: ByteBuffer.self) { parts.append(part.readBytes(length: part.readableBytes) ?? []) }
        // One buffer, header and payload: it did not pass the encoder, which writes two.
        #expect(parts.first == Array(first.wire.readableBytesView))
        let written = parts.flatMap { $0 }
        var closing = ByteBuffer()
        closing.write(webSocketErrorCode: .normalClosure)
        closing.writeString("done")
        var expected = Array(first.wire.readableBytesView)
        expected += try Self.encodedByNIO(ByteBuffer(string: "{\"bye\":1}"))
        expected += try Self.encodedByNIO(closing, opcode: .connectionClose)
        #expect(written == expected, "the live frame, then the last frame and the close frame; nothing after the close")
    }

    /// The frames an embedded channel got, as opcode and text.
    private static func writtenFrames(_ channel: EmbeddedChannel) throws -> [(opcode: WebSocketOpcode, text: String)] {
        var written: [(WebSocketOpcode, String)] = []
        while let frame = try channel.readOutbound(as: WebSocketFrame.self) {
            var data = frame.data
            if frame.opcode == .connectionClose, let code = data.readInteger(as: UInt16.self) {
                written.append((frame.opcode, "\(code) \(data.readString(length: data.readableBytes) ?? "")"))
            } else {
                written.append((frame.opcode, data.readString(length: data.readableBytes) ?? ""))
            }
        }
        return written
    }

    @Test("the byte bound is the channel's high-water mark; a live frame past it ends the stream at once as slow_consumer, counted once")
    func overflowFromWritability() throws {
        let (loop, channel, connection, counted) = Self.countingConnection()
        connection.enqueue(WireFrame(text: ByteBuffer(string: "{\"seq\":1}")))
        loop.run()
        // Installed before the first frame: 8 deliveries × 512 bytes is below the 1 MiB floor.
        let mark = try #require(channel.syncOptions).getOption(.writeBufferWaterMark)
        #expect(mark.high == 1 << 20 && mark.low == 1 << 19)
        #expect(!connection.overflowed)

        channel.isWritable = false  // what NIO reports once more than the high mark waits
        connection.enqueue(WireFrame(text: ByteBuffer(string: "{\"seq\":2}")))
        loop.run()
        #expect(connection.overflowed)
        // No later delivery is needed: the notice and the close frame follow what is buffered.
        let written = try Self.writtenFrames(channel)
        #expect(written.map(\.opcode) == [.text, .text, .connectionClose])
        #expect(written.first?.text == "{\"seq\":1}", "the live frame past the bound was dropped")
        #expect(written.dropFirst().first?.text.contains("\"code\":\"slow_consumer\"") == true)
        #expect(written.last?.text == "4408 slow_consumer")
        #expect(counted.count.withLock { $0 } == 1)

        // The hub's own verdict at its next delivery changes nothing more.
        connection.endAsSlowConsumer()
        connection.enqueue(WireFrame(text: ByteBuffer(string: "{\"seq\":3}")))
        loop.run()
        #expect(try Self.writtenFrames(channel).isEmpty)
        #expect(counted.count.withLock { $0 } == 1)
    }

    @Test("behind a socket that stopped draining, typing and presence are dropped without ending the stream; a reply ends it")
    func ephemeralFramesDoNotEndTheStream() throws {
        let (loop, channel, connection, counted) = Self.countingConnection()
        connection.enqueue(ByteBuffer(string: "{\"type\":\"pong\"}"), kind: .live)
        loop.run()
        channel.isWritable = false
        connection.enqueue(ByteBuffer(string: "{\"typing\":1}"), kind: .ephemeral)
        loop.run()
        #expect(!connection.overflowed)
        #expect(try Self.writtenFrames(channel).map(\.text) == ["{\"type\":\"pong\"}"])

        // An ack or pong is promised like an event: not written, it ends the stream.
        connection.enqueue(ByteBuffer(string: "{\"type\":\"ack\"}"), kind: .live)
        loop.run()
        #expect(connection.overflowed)
        #expect(try Self.writtenFrames(channel).map(\.opcode) == [.text, .connectionClose])
        #expect(counted.count.withLock { $0 } == 1)
    }

    @Test("an event that overflows next to a revocation: the revocation's notice and close end the stream, not counted as slow")
    func overflowBehindAnotherClose() throws {
        let (loop, channel, connection, counted) = Self.countingConnection()
        connection.enqueue(WireFrame(text: ByteBuffer(string: "{\"seq\":1}")))
        loop.run()
        channel.isWritable = false
        // As the hub delivers a revocation: the event, then at once the close with its notice.
        connection.enqueue(WireFrame(text: ByteBuffer(string: "{\"seq\":2}")))
        connection.close(after: ByteBuffer(string: "{\"revoked\":1}"), code: WebSocketErrorCode(codeNumber: 4403), reason: "session_revoked")
        loop.run()
        let written = try Self.writtenFrames(channel)
        #expect(written.map(\.text) == ["{\"seq\":1}", "{\"revoked\":1}", "4403 session_revoked"])
        #expect(counted.count.withLock { $0 } == 0)
    }

    @Test("a stream the hub finds too slow on a writable socket: no reply after it, then the notice and 4408, counted once")
    func endedByTheHub() throws {
        let (loop, channel, connection, counted) = Self.countingConnection()
        connection.endAsSlowConsumer()
        connection.enqueue(ByteBuffer(string: "{\"type\":\"ack\"}"), kind: .live)
        connection.enqueue(WireFrame(text: ByteBuffer(string: "{\"seq\":1}")))
        loop.run()
        let written = try Self.writtenFrames(channel)
        #expect(written.map(\.opcode) == [.text, .connectionClose])
        #expect(written.first?.text.contains("\"code\":\"slow_consumer\"") == true)
        #expect(written.last?.text == "4408 slow_consumer")
        #expect(counted.count.withLock { $0 } == 1)
    }

    @Test("a socket still past its bound at a keep-alive tick ends as slow_consumer (no later event would find it)")
    func keepAliveTickEndsAStalledStream() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let counted = Calls()
        let queue = EventLoopWriteQueue(eventLoop: loop, keepAliveInterval: .seconds(5))
        let connection = StreamConnection(
            channel: channel, queue: queue, bufferLimit: 8,
            receiveAge: { $0.eventLoop.makeSucceededFuture(.zero) }, countSlowConsumer: { counted.count.withLock { $0 += 1 } })
        connection.keepAlive()
        loop.advanceTime(by: .seconds(5))
        #expect(try Self.writtenFrames(channel).map(\.opcode) == [.ping], "a draining stream is pinged")

        channel.isWritable = false
        loop.advanceTime(by: .seconds(5))
        let written = try Self.writtenFrames(channel)
        #expect(written.map(\.opcode) == [.text, .connectionClose])
        #expect(written.last?.text == "4408 slow_consumer")
        #expect(counted.count.withLock { $0 } == 1)
        queue.unregister(connection)
        _ = try? channel.finish()
    }

    @Test("without the encoder in the pipeline a live frame still goes out, as a frame")
    func fallsBackWithoutEncoder() throws {
        let (loop, channel, connection) = Self.bareConnection()
        connection.enqueue(WireFrame(text: ByteBuffer(string: "{\"seq\":1}")))
        loop.run()
        let frame = try #require(try channel.readOutbound(as: WebSocketFrame.self))
        #expect(frame.opcode == .text && frame.fin && frame.data == ByteBuffer(string: "{\"seq\":1}"))
    }

    /// The order in which channels were flushed, across channels.
    private final class FlushOrder: Sendable {
        let names = Mutex<[String]>([])
    }

    /// Records its channel's flushes in a shared ``FlushOrder``.
    private final class FlushRecorder: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = NIOAny
        let name: String
        let order: FlushOrder

        init(_ name: String, into order: FlushOrder) {
            self.name = name
            self.order = order
        }

        func flush(context: ChannelHandlerContext) {
            order.names.withLock { $0.append(name) }
            context.flush()
        }
    }

    @Test("in one loop turn, connections with a reply (ack) are flushed before those with only deliveries; each keeps its own order")
    func repliesFlushFirst() throws {
        // Three turns of sixteen streams each, the sender in a different place every time: an
        // order that ignores replies puts all three senders first by chance once in 4,096.
        for senderIndex in [9, 0, 15] {
            let loop = EmbeddedEventLoop()
            let queue = EventLoopWriteQueue(eventLoop: loop)
            let order = FlushOrder()
            let names = (0..<16).map { "stream \($0)" }
            let sender = names[senderIndex]
            var connections: [String: (EmbeddedChannel, StreamConnection)] = [:]
            for name in names {
                let channel = EmbeddedChannel(loop: loop)
                try channel.pipeline.syncOperations.addHandlers([WebSocketFrameEncoder(), FlushRecorder(name, into: order)])
                connections[name] = (channel, StreamConnection(channel: channel, queue: queue, bufferLimit: 1 << 20))
            }
            let event = WireFrame(text: ByteBuffer(string: "{\"seq\":1}"))
            // The turn's deliveries first, then the sender's ack, as the gateway queues them.
            for name in names { connections[name]?.1.enqueue(event) }
            connections[sender]?.1.enqueue(ByteBuffer(string: "{\"type\":\"ack\"}"), kind: .live)
            loop.run()
            let flushed = order.names.withLock { $0 }
            #expect(flushed.first == sender)
            #expect(flushed.sorted() == names.sorted(), "every stream flushed once")
            // The sender's own frames leave in the order queued: the delivery, then the ack.
            var written = ""
            while var part = try connections[sender]?.0.readOutbound(as: ByteBuffer.self) {
                written += String(decoding: part.readBytes(length: part.readableBytes) ?? [], as: UTF8.self)
            }
            let delivery = try #require(written.range(of: "{\"seq\":1}")), ack = try #require(written.range(of: "{\"type\":\"ack\"}"))
            #expect(delivery.lowerBound < ack.lowerBound)
        }
    }
}
