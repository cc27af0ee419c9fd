import NIOCore
import NIOWebSocket

/// Writes the stream's text frames straight into the connection's NIO pipeline, several at a
/// time: one hop to the event loop and one flush (one `writev`) per batch instead of per frame.
///
/// Hummingbird's `WebSocketOutboundWriter` costs a task suspension, an async-writer state
/// machine step and an event-loop hop *per frame*; with ~20 frames per message in a group chat
/// that per-frame cost dominated the fan-out (decision 0006). NIO channels accept writes from
/// any thread; the frames enter at the tail of the pipeline and pass the (write-transparent)
/// async-channel handler to NIO's `WebSocketFrameEncoder`, exactly like the outbound writer's
/// own writes. Every frame of the stream — events, control frames, pongs — goes through here,
/// so their order is the order of the calls; only the closing handshake stays with
/// Hummingbird's writer, and it is always issued after the last frame was handed over.
///
/// Backpressure: while the socket keeps up, batches are handed over without waiting. When the
/// channel reports it is not writable (its outbound buffer passed NIO's high-water mark), the
/// caller waits until its batch reached the socket; the subscription's mailbox then fills, and
/// a consumer that stays behind is disconnected as `slow_consumer` by the hub.
struct StreamFrameWriter: Sendable {
    let channel: any Channel

    func write(_ payload: ByteBuffer) async throws {
        try await write(CollectionOfOne(payload))
    }

    func write<Payloads: Collection & Sendable>(_ payloads: Payloads) async throws where Payloads.Element == ByteBuffer {
        guard !payloads.isEmpty else { return }
        let channel = self.channel
        let promise: EventLoopPromise<Void>? = channel.isWritable ? nil : channel.eventLoop.makePromise()
        channel.eventLoop.execute {
            var remaining = payloads.count
            for payload in payloads {
                remaining -= 1
                channel.write(WebSocketFrame(fin: true, opcode: .text, data: payload), promise: remaining == 0 ? promise : nil)
            }
            channel.flush()
        }
        if let promise { try await promise.futureResult.get() }
    }
}
