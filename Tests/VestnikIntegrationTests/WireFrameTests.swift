import NIOCore
import NIOEmbedded
import NIOWebSocket
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

    @Test("the byte bound is the channel's high-water mark; past it live frames are dropped, the stream is marked overflowed and only its close frame goes out")
    func overflowFromWritability() throws {
        let (loop, channel, connection) = Self.bareConnection()
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
        // Ending it: only the close frame goes out to a socket that fell behind.
        connection.close(after: ByteBuffer(string: "{\"bye\":1}"), code: .normalClosure, reason: "slow")
        loop.run()
        var written: [(WebSocketOpcode, String)] = []
        while let frame = try channel.readOutbound(as: WebSocketFrame.self) {
            var data = frame.data
            written.append((frame.opcode, data.readString(length: data.readableBytes) ?? ""))
        }
        #expect(written.map(\.0) == [.text, .connectionClose])
        #expect(written.first?.1 == "{\"seq\":1}", "the live frame after the overflow was dropped")
    }

    @Test("without the encoder in the pipeline a live frame still goes out, as a frame")
    func fallsBackWithoutEncoder() throws {
        let (loop, channel, connection) = Self.bareConnection()
        connection.enqueue(WireFrame(text: ByteBuffer(string: "{\"seq\":1}")))
        loop.run()
        let frame = try #require(try channel.readOutbound(as: WebSocketFrame.self))
        #expect(frame.opcode == .text && frame.fin && frame.data == ByteBuffer(string: "{\"seq\":1}"))
    }
}
