import Foundation
import NIOCore
import NIOWebSocket
import Synchronization
import VestnikAPI
import VestnikCore

/// Frames for connections served by one event loop, written in one go per loop turn.
///
/// Fan-out used to cost, per delivery, a task wake-up, Hummingbird's async-writer step and its
/// own hop onto the event loop and `writev`. Here every frame for a loop's connections joins one
/// list; the first frame after a turn schedules a single task on the loop, which writes every
/// queued frame and flushes each touched connection once (decision 0006). A post to a
/// 5,000-member channel is then a handful of loop tasks instead of 5,000 task switches.
///
/// NIO channels accept writes from any thread; the frames enter at the tail of the pipeline and
/// pass the (write-transparent) async-channel handler to NIO's `WebSocketFrameEncoder`, like
/// Hummingbird's own writer's frames. Every frame of the stream goes through here, so frames of
/// one connection leave in the order they were queued.
final class EventLoopWriteQueue: Sendable {
    enum Item: Sendable {
        case frame(any Channel, WebSocketFrame, EventLoopPromise<Void>?)
        /// Flush what is queued for the channel, then close it.
        case close(any Channel)
    }

    let eventLoop: any EventLoop
    private let pending = Mutex<(items: [Item], scheduled: Bool)>(([], false))

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ items: [Item]) {
        let schedule = pending.withLock { box -> Bool in
            box.items.append(contentsOf: items)
            if box.scheduled { return false }
            box.scheduled = true
            return true
        }
        if schedule { eventLoop.execute { self.writeQueued() } }
    }

    private func writeQueued() {
        let items = pending.withLock { box -> [Item] in
            defer {
                box.items = []
                box.scheduled = false
            }
            return box.items
        }
        var touched: [ObjectIdentifier: any Channel] = [:]
        for item in items {
            switch item {
            case .frame(let channel, let frame, let promise):
                channel.write(frame, promise: promise)
                touched[ObjectIdentifier(channel)] = channel
            case .close(let channel):
                touched.removeValue(forKey: ObjectIdentifier(channel))?.flush()
                channel.close(promise: nil)
            }
        }
        for channel in touched.values { channel.flush() }
    }
}

/// One write queue per event loop of the server.
final class EventLoopWriteQueues: Sendable {
    private let queues = Mutex<[ObjectIdentifier: EventLoopWriteQueue]>([:])

    func queue(for eventLoop: any EventLoop) -> EventLoopWriteQueue {
        queues.withLock { queues in
            if let queue = queues[ObjectIdentifier(eventLoop)] { return queue }
            let queue = EventLoopWriteQueue(eventLoop: eventLoop)
            queues[ObjectIdentifier(eventLoop)] = queue
            return queue
        }
    }
}

/// The stream's side of one WebSocket connection: every frame the server sends on it.
struct StreamConnection: Sendable {
    let channel: any Channel
    let queue: EventLoopWriteQueue

    /// Queues frames without waiting.
    func enqueue(_ payloads: [ByteBuffer]) {
        queue.enqueue(payloads.map { .frame(channel, WebSocketFrame(fin: true, opcode: .text, data: $0), nil) })
    }

    /// Queues frames; while the socket is not keeping up (NIO reports the channel unwritable)
    /// waits until they reached it, so a catch-up of thousands of events cannot pile up here.
    func write(_ payloads: [ByteBuffer]) async throws {
        guard let last = payloads.last else { return }
        guard !channel.isWritable else { return enqueue(payloads) }
        let promise = channel.eventLoop.makePromise(of: Void.self)
        var items: [EventLoopWriteQueue.Item] = payloads.dropLast().map { .frame(channel, WebSocketFrame(fin: true, opcode: .text, data: $0), nil) }
        items.append(.frame(channel, WebSocketFrame(fin: true, opcode: .text, data: last), promise))
        queue.enqueue(items)
        try await promise.futureResult.get()
    }

    func write(_ payload: ByteBuffer) async throws { try await write([payload]) }

    /// Sends `payload` (if any) and a close frame, then closes the connection without waiting
    /// for the client's answer: it is being dropped, not asked to leave.
    func close(after payload: ByteBuffer?, code: WebSocketErrorCode, reason: String) {
        var items: [EventLoopWriteQueue.Item] = []
        if let payload { items.append(.frame(channel, WebSocketFrame(fin: true, opcode: .text, data: payload), nil)) }
        var data = ByteBuffer()
        data.write(webSocketErrorCode: code)
        data.writeString(reason)
        items.append(.frame(channel, WebSocketFrame(fin: true, opcode: .connectionClose, data: data), nil))
        items.append(.close(channel))
        queue.enqueue(items)
    }
}

/// Live deliveries for one stream, written by the hub without a task per connection.
///
/// Deduplicates against the catch-up (nothing at or below the last position already sent),
/// ends the stream when its own session is revoked, and reports a client that lets more than
/// `limit` deliveries pile up behind an unwritable socket as too slow (the hub then closes it
/// as `slow_consumer`); ephemeral events are dropped rather than queued behind a full socket.
final class LiveStreamSink: LiveDeliverySink {
    private let connection: StreamConnection
    private let ownSession: SessionID
    private let limit: Int
    private let metrics: ServerMetrics
    private let state: Mutex<(lastSent: EventSeq, backlog: Int)>

    init(connection: StreamConnection, ownSession: SessionID, lastSent: EventSeq, limit: Int, metrics: ServerMetrics) {
        self.connection = connection
        self.ownSession = ownSession
        self.limit = limit
        self.metrics = metrics
        state = Mutex((lastSent, 0))
    }

    func deliver(_ delivery: EventHub.Delivery) -> Bool {
        let writable = connection.channel.isWritable
        switch delivery {
        case .durable(let seq, let event, let payload):
            let accepted = state.withLock { state -> Bool? in
                guard seq > state.lastSent else { return nil }
                state.backlog = writable ? 0 : state.backlog + 1
                guard state.backlog <= limit else { return false }
                state.lastSent = seq
                return true
            }
            guard let accepted else { return true }  // already sent during the catch-up
            guard accepted else { return false }
            if case .sessionRevoked(let revoked) = event, revoked == ownSession {
                connection.enqueue([StreamFrames.event(seq: seq, payload: payload)])
                connection.close(after: StreamGateway.sessionRevokedFrame, code: StreamGateway.CloseCode.sessionRevoked, reason: "session_revoked")
            } else {
                connection.enqueue([StreamFrames.event(seq: seq, payload: payload)])
            }
            return true
        case .ephemeral(_, let payload):
            guard writable else { return false }
            connection.enqueue([StreamFrames.ephemeral(payload: payload)])
            return true
        }
    }

    func close(reason: String?) {
        switch reason {
        case nil:
            return  // the client went away; its connection is closing already
        case "slow_consumer":
            metrics.slowConsumerDisconnects.increment()
            connection.close(
                after: StreamFrames.control(ServerFrame(type: .error, code: "slow_consumer", message: "The client did not keep up; reconnect with since.")),
                code: StreamGateway.CloseCode.slowConsumer, reason: "slow_consumer")
        case "session_revoked":
            connection.close(after: StreamGateway.sessionRevokedFrame, code: StreamGateway.CloseCode.sessionRevoked, reason: "session_revoked")
        default:
            connection.close(after: nil, code: .goingAway, reason: "server shutting down")
        }
    }
}
