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
/// queued frame and flushes each touched connection once, those with a reply first (decision 0006). A post to a
/// 5,000-member channel is then a handful of loop tasks instead of 5,000 task switches.
///
/// NIO channels accept writes from any thread; the frames enter at the tail of the pipeline and
/// pass the (write-transparent) async-channel handler to NIO's `WebSocketFrameEncoder`, like
/// Hummingbird's own writer's frames, except live events, framed once for all recipients
/// (``WireFrame``), which enter just past that encoder. Every frame the stream sends goes
/// through here, on the connection's loop, so frames of one connection leave in the order they
/// were queued.
///
/// Memory: a connection whose socket does not drain (NIO's buffered bytes above
/// ``StreamConnection/maxBufferedBytes``) gets no further events or replies: the first one that
/// does not fit ends the stream as `slow_consumer` (see ``StreamConnection/FrameKind``).
package final class EventLoopWriteQueue: Sendable {
    enum Item: Sendable {
        case frame(StreamConnection, WebSocketFrame, EventLoopPromise<Void>?, StreamConnection.FrameKind)
        /// A live durable event, framed once for all its recipients (see ``WireFrame``).
        case wire(StreamConnection, WireFrame)
        /// The closing frame; the connection is closed once it is written (or after a grace
        /// period, for a client that reads nothing), and takes no frames after it.
        /// `slowConsumer`: the close ends the stream as too slow, which is counted if this close
        /// is the one that ends it (another close, such as a revocation's, may already be queued).
        case close(StreamConnection, WebSocketFrame, slowConsumer: Bool)
    }

    let eventLoop: any EventLoop
    private let pending = Mutex<(items: [Item], scheduled: Bool)>(([], false))
    /// The open streams on this loop, and the timer that pings them while there are any.
    private let keepAlive = Mutex<(connections: [ObjectIdentifier: StreamConnection], timer: RepeatedTask?)>(([:], nil))

    /// How often every open stream gets a WebSocket ping.
    ///
    /// Why here and not per connection: Hummingbird's own keep-alive runs a task per connection,
    /// ~3 KiB of every idle stream's memory (measured with the `idle` benchmark: 34.6 → 31.5 KiB
    /// per connection without it). One timer per event loop pings them all. The ping keeps
    /// proxies (nginx's `proxy_read_timeout`) from dropping quiet streams; a peer that vanished is
    /// found by the kernel instead of by a missing pong: the socket's `TCP_USER_TIMEOUT` aborts
    /// it when a ping stays unacknowledged (``StreamConnection/unacknowledgedDataTimeout``).
    static let defaultKeepAliveInterval = TimeAmount.seconds(30)
    let keepAliveInterval: TimeAmount

    package init(eventLoop: any EventLoop, keepAliveInterval: TimeAmount = defaultKeepAliveInterval) {
        self.eventLoop = eventLoop
        self.keepAliveInterval = keepAliveInterval
    }

    /// Adds an open stream to the keep-alive pings.
    package func register(_ connection: StreamConnection) {
        let start = keepAlive.withLock { box -> Bool in
            box.connections[ObjectIdentifier(connection)] = connection
            return box.timer == nil
        }
        guard start else { return }
        let timer = eventLoop.scheduleRepeatedTask(initialDelay: keepAliveInterval, delay: keepAliveInterval) { [weak self] _ in
            self?.pingAll()
        }
        // A concurrent register may have started one too; keep one.
        let surplus = keepAlive.withLock { box -> RepeatedTask? in
            if box.timer == nil {
                box.timer = timer
                return nil
            }
            return timer
        }
        surplus?.cancel()
    }

    /// Removes a closed stream; the timer stops with the last one.
    package func unregister(_ connection: StreamConnection) {
        let stopped = keepAlive.withLock { box -> RepeatedTask? in
            box.connections.removeValue(forKey: ObjectIdentifier(connection))
            guard box.connections.isEmpty else { return nil }
            defer { box.timer = nil }
            return box.timer
        }
        stopped?.cancel()
    }

    /// Runs on the event loop: ends every stream whose session expired, and pings the others.
    /// A stream whose client answered none of the last two pings (nor sent anything else) is
    /// closed, as a client that vanished behind a proxy, which acknowledges the pings itself.
    /// The ping counts as a `live` frame: a socket still more than its bound behind at a tick
    /// (a client that stopped reading after the last event filled it, so no later event will
    /// find it) ends as `slow_consumer` instead of holding its buffer until a next event.
    private func pingAll() {
        let connections = keepAlive.withLock { Array($0.connections.values) }
        for connection in connections where connection.accepting(.control) {
            if connection.expired {
                connection.close(after: StreamConnection.sessionExpiredFrame, code: StreamConnection.unauthenticatedCloseCode, reason: "session_expired")
            } else if connection.accepting(.live) {
                connection.pingOrCloseIfSilent(for: keepAliveInterval * 2 + .seconds(5))
            }
        }
    }

    func enqueue(_ item: Item) { enqueue(CollectionOfOne(item)) }

    func enqueue(_ items: some Collection<Item>) {
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
            let items = box.items
            // Room for as many as this turn had: a fan-out then fills one allocation instead of
            // growing the list step by step.
            box.items = []
            box.items.reserveCapacity(items.count)
            box.scheduled = false
            return items
        }
        var touched: [ObjectIdentifier: StreamConnection] = [:]
        // Connections with a reply (an `ack`, `nack` or `pong`) are flushed first: a client that
        // waits for its ack (an app showing the message as sent, a sender keeping a bounded number
        // in flight) waits on it, while the deliveries of the same turn wait for nothing. Only
        // the order across connections changes; each one's frames keep theirs.
        var replied: [ObjectIdentifier: StreamConnection] = [:]
        for item in items {
            switch item {
            case .frame(let connection, let frame, let promise, let kind):
                guard connection.accepting(kind) else {
                    promise?.fail(ChannelError.ioOnClosedChannel)
                    continue
                }
                connection.channel.write(frame, promise: promise)
                touched[ObjectIdentifier(connection)] = connection
                if kind == .live { replied[ObjectIdentifier(connection)] = connection }
            case .wire(let connection, let frame):
                guard connection.accepting(.live) else { continue }
                connection.write(frame)
                touched[ObjectIdentifier(connection)] = connection
            case .close(let connection, let frame, let slowConsumer):
                guard connection.beginClosing() else { continue }
                if slowConsumer { connection.countSlowConsumer() }
                touched.removeValue(forKey: ObjectIdentifier(connection))
                replied.removeValue(forKey: ObjectIdentifier(connection))
                let channel = connection.channel
                let written = channel.eventLoop.makePromise(of: Void.self)
                channel.writeAndFlush(frame, promise: written)
                written.futureResult.whenComplete { _ in channel.close(promise: nil) }
                channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
            }
        }
        for (key, connection) in replied {
            connection.channel.flush()
            touched.removeValue(forKey: key)
        }
        for connection in touched.values { connection.channel.flush() }
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
package final class StreamConnection: Sendable {
    /// NIO-buffered bytes the connection may have before it gets no more events (a client that
    /// stopped reading; the stream then ends): bounds memory per stalled stream; a healthy
    /// client drains far below it.
    /// It is the channel's high-water mark (see ``accepting(_:)``), whose low mark, half of it,
    /// only matters to ephemeral events: overflowing ends the stream.
    let maxBufferedBytes: Int
    let channel: any Channel
    let queue: EventLoopWriteQueue
    private enum State: UInt8, AtomicRepresentable { case open, overflowed, closing }
    private let state = Atomic<State>(.open)
    /// Set by the first ``endAsSlowConsumer()``, which alone tells the client and counts it.
    private let endedAsSlowConsumer = Atomic<Bool>(false)
    fileprivate let countSlowConsumer: @Sendable () -> Void
    /// How long ago the client last sent anything (pongs included); nil where unknown.
    private let receiveAge: @Sendable (any Channel) -> EventLoopFuture<TimeAmount?>
    /// When the stream's session expires, in milliseconds since 1970 (`Int64.max`: never).
    private let expiresAt = Atomic<Int64>(.max)
    /// What only the connection's event loop reads and writes.
    private let loopState: NIOLoopBoundBox<LoopState>
    private struct LoopState {
        /// Where pre-framed events enter the pipeline (see ``write(_:)-(WireFrame)``), looked up
        /// on the first one.
        var wirePath = WirePath.unknown
        /// Whether ``maxBufferedBytes`` is the channel's high-water mark yet (set before the first
        /// frame is written; see ``accepting(_:)``).
        var bounded = false
    }
    private enum WirePath {
        case unknown
        /// The context of NIO's `WebSocketFrameEncoder`: a write there goes to the handler after
        /// it, toward the socket.
        case pastEncoder(ChannelHandlerContext)
        case throughPipeline
    }

    /// - Parameter bufferLimit: the stream buffer limit in deliveries; the byte bound allows
    ///   512 bytes per delivery (4 MiB at the default 8,192), and never less than 1 MiB, so a
    ///   burst of large messages to a healthy client never looks like a stall.
    ///   - receiveAge: how long ago the client last sent anything; by default the kernel's count
    ///     (`TCP_INFO`), which sees every byte, pongs included, at no cost per connection.
    ///   - countSlowConsumer: called once if the stream ends as `slow_consumer` (the metric).
    package init(
        channel: any Channel, queue: EventLoopWriteQueue, bufferLimit: Int,
        receiveAge: @escaping @Sendable (any Channel) -> EventLoopFuture<TimeAmount?> = StreamConnection.kernelReceiveAge,
        countSlowConsumer: @escaping @Sendable () -> Void = {}
    ) {
        // The queue writes on its loop, and the connection's loop-bound state lives there.
        precondition(queue.eventLoop === channel.eventLoop, "a stream's write queue must run on its channel's event loop")
        self.channel = channel
        self.queue = queue
        loopState = .makeBoxSendingValue(LoopState(), eventLoop: channel.eventLoop)
        maxBufferedBytes = max(bufferLimit * 512, 1 << 20)
        self.receiveAge = receiveAge
        self.countSlowConsumer = countSlowConsumer
    }

    /// The frame that ends a stream whose session expired (then closed with 4401).
    static let sessionExpiredFrame = StreamFrames.control(
        ServerFrame(type: .error, code: VestnikError.Code.unauthenticated.rawValue, message: "The session has expired. Log in again."))
    static let unauthenticatedCloseCode = WebSocketErrorCode(codeNumber: 4401)

    /// How long data the server sent may stay unacknowledged before the kernel aborts the
    /// connection (`TCP_USER_TIMEOUT`): with the keep-alive pings, this is what ends a stream
    /// whose client vanished without closing it.
    static let unacknowledgedDataTimeout = TimeAmount.seconds(60)

    /// Joins the keep-alive pings of its event loop (until ``EventLoopWriteQueue/unregister(_:)``)
    /// and arms the unacknowledged-data timeout.
    package func keepAlive(until expiry: Date? = nil) {
        if let expiry { expiresAt.store(expiry.millisecondsSince1970, ordering: .relaxed) }
        queue.register(self)
        #if os(Linux)
        // Milliseconds; a failure only loses the early abort.
        let option = ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: CInt(TCP_USER_TIMEOUT)))
        _ = channel.setOption(option, value: SocketOptionValue(Self.unacknowledgedDataTimeout.nanoseconds / 1_000_000))
        #endif
    }

    /// Whether the stream's session has expired.
    var expired: Bool { Date.millisecondNow().millisecondsSince1970 >= expiresAt.load(ordering: .relaxed) }

    /// On the event loop: closes the stream if its client sent nothing, not even a pong, for
    /// `interval`; otherwise pings it.
    fileprivate func pingOrCloseIfSilent(for interval: TimeAmount) {
        receiveAge(channel).whenSuccess { age in
            guard self.accepting(.control) else { return }
            if let age, age > interval {
                self.close(after: nil, code: .goingAway, reason: "ping_timeout")
            } else {
                self.channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer()), promise: nil)
            }
        }
    }

    /// The kernel's time since the socket last received data (`tcpi_last_data_recv`).
    package static let kernelReceiveAge: @Sendable (any Channel) -> EventLoopFuture<TimeAmount?> = { channel in
        #if os(Linux)
        if let provider = channel as? any SocketOptionProvider {
            let info: EventLoopFuture<tcp_info> = provider.unsafeGetSocketOption(
                level: .tcp, name: NIOBSDSocket.Option(rawValue: CInt(TCP_INFO)))
            return info.map { Optional(TimeAmount.milliseconds(Int64($0.tcpi_last_data_recv))) }.recover { _ in nil }
        }
        #endif
        return channel.eventLoop.makeSucceededFuture(nil)
    }

    /// Whether the stream is ending because its client did not keep up (its socket fell too far
    /// behind, or the hub found it too slow): no further event is sent on it.
    package var overflowed: Bool { endedAsSlowConsumer.load(ordering: .relaxed) }

    /// What a frame is to the stream, which decides what happens to it behind a socket that
    /// stopped draining (more than ``maxBufferedBytes`` waiting).
    package enum FrameKind: Sendable {
        /// Catch-up pages, errors, the `ready` frame: written until the stream closes. Their
        /// writers wait until each reached the socket, or close the stream after it, which bounds
        /// them.
        case control
        /// Live events and the replies to the client's frames (`ack`, `nack`, `pong`): the stream
        /// promises each of them, so one that cannot be written ends the stream as
        /// `slow_consumer` at once (the client resumes from its position), rather than leaving
        /// it open with a hole that nothing would report until the next delivery.
        case live
        /// Typing and presence: dropped behind a socket that stopped draining; they never end a
        /// stream.
        case ephemeral
    }

    /// On the event loop, before writing a frame of `kind`: whether to write it. A `live` frame
    /// behind a socket that stopped draining marks the stream overflowed and ends it
    /// (``endAsSlowConsumer()``); after that only `control` frames go, so the notice and the
    /// close frame follow what is buffered.
    ///
    /// The bound is the channel's high-water mark, so that `isWritable` (an atomic load) says
    /// whether the socket fell that far behind; with the loop check of ``loopState`` that is all
    /// a frame costs here. Asking NIO for the buffered byte count instead, once per frame, was
    /// ~1.8 % of the server's CPU (`perf`, `group`): its option lookup is a chain of dynamic
    /// casts. The mark is set here, on the loop, before the first frame: set from the
    /// connection's task (`Channel.setOption`, a future per connection) it cost every idle stream
    /// ~1 KiB (`idle`: 32.88 against 31.86 KiB per connection).
    fileprivate func accepting(_ kind: FrameKind) -> Bool {
        if !loopState.value.bounded {
            loopState.value.bounded = true
            do {
                guard let options = channel.syncOptions else { throw ChannelError.operationUnsupported }
                try options.setOption(.writeBufferWaterMark, value: .init(low: maxBufferedBytes / 2, high: maxBufferedBytes))
            } catch {
                // NIO's 64 KiB default would stay the bound: healthy clients with a burst of
                // large messages would be cut off as slow. No channel of ours refuses the option.
                assertionFailure("the stream's write buffer bound could not be set: \(error)")
            }
        }
        switch (state.load(ordering: .relaxed), kind) {
        case (.closing, _): return false
        case (.overflowed, .control): return true
        case (.overflowed, _): return false
        case (.open, .control): return true
        case (.open, .ephemeral): return channel.isWritable
        case (.open, .live):
            if channel.isWritable { return true }
            if state.compareExchange(expected: .open, desired: .overflowed, ordering: .relaxed).exchanged { endAsSlowConsumer() }
            return false
        }
    }

    /// The frame that tells a client it fell behind, before the stream closes with 4408.
    static let slowConsumerFrame = StreamFrames.control(
        ServerFrame(type: .error, code: "slow_consumer", message: "The client did not keep up; reconnect with since."))
    static let slowConsumerCloseCode = WebSocketErrorCode(codeNumber: 4408)

    /// Ends the stream because its client did not keep up: no event or reply is written after
    /// this; the notice and the close frame are queued behind whatever is buffered, and the
    /// connection closes once they are written or after two seconds (see
    /// ``close(after:code:reason:)``). So only a client that drains its backlog within those two
    /// seconds reads them; any other sees the connection end, and either way resumes from its
    /// last position. Only the first call does anything, so the overflow and the hub's own
    /// verdict (its subscription ends as `slow_consumer` at its next delivery) end it once; it
    /// is counted when its close is the one that ends the stream.
    package func endAsSlowConsumer() {
        guard !endedAsSlowConsumer.exchange(true, ordering: .relaxed) else { return }
        _ = state.compareExchange(expected: .open, desired: .overflowed, ordering: .relaxed)
        close(after: Self.slowConsumerFrame, code: Self.slowConsumerCloseCode, reason: "slow_consumer", slowConsumer: true)
    }

    /// On the event loop: true the first time only.
    fileprivate func beginClosing() -> Bool {
        state.exchange(.closing, ordering: .relaxed) != .closing
    }

    /// No frame is written after this (the client closed, or the server is done with it).
    package func stopWriting() {
        state.store(.closing, ordering: .relaxed)
    }

    /// Queues a frame without waiting; see ``FrameKind`` for what becomes of it behind a socket
    /// that stopped draining. One frame, no intermediate arrays: this runs once per recipient of
    /// every ephemeral event.
    package func enqueue(_ payload: ByteBuffer, kind: FrameKind) {
        queue.enqueue(.frame(self, WebSocketFrame(fin: true, opcode: .text, data: payload), nil, kind))
    }

    /// ``enqueue(_:kind:)`` of a `live` frame, already framed for every recipient.
    package func enqueue(_ frame: WireFrame) {
        queue.enqueue(.wire(self, frame))
    }

    /// On the event loop: writes the frame's bytes past NIO's `WebSocketFrameEncoder`, which
    /// would frame them again for this connection (or through the pipeline if that encoder is
    /// not in it). Frames written either way reach the socket in the order they were written:
    /// the encoder passes every write on at once.
    fileprivate func write(_ frame: WireFrame) {
        if case .unknown = loopState.value.wirePath {
            if let context = try? channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self) {
                loopState.value.wirePath = .pastEncoder(context)
            } else {
                loopState.value.wirePath = .throughPipeline
            }
        }
        if case .pastEncoder(let context) = loopState.value.wirePath {
            // A context whose handler was removed (the channel closed) drops the write.
            context.write(NIOAny(frame.wire), promise: nil)
        } else {
            channel.write(WebSocketFrame(fin: true, opcode: .text, data: frame.payload), promise: nil)
        }
    }

    /// Queues frames and waits until they reached the socket, so a catch-up of thousands of
    /// events never piles up in memory ahead of a slow client.
    func write(_ payloads: [ByteBuffer]) async throws {
        guard let last = payloads.last else { return }
        let promise = channel.eventLoop.makePromise(of: Void.self)
        var items: [EventLoopWriteQueue.Item] = payloads.dropLast().map {
            .frame(self, WebSocketFrame(fin: true, opcode: .text, data: $0), nil, .control)
        }
        items.append(.frame(self, WebSocketFrame(fin: true, opcode: .text, data: last), promise, .control))
        queue.enqueue(items)
        try await promise.futureResult.get()
    }

    func write(_ payload: ByteBuffer) async throws { try await write([payload]) }

    /// Sends `payload` (if any) and a close frame after everything queued, then closes the
    /// connection once the close frame is written — or after two seconds, for a client that
    /// reads nothing. Nothing is written after the close frame.
    package func close(after payload: ByteBuffer?, code: WebSocketErrorCode, reason: String, slowConsumer: Bool = false) {
        var items: [EventLoopWriteQueue.Item] = []
        if let payload { items.append(.frame(self, WebSocketFrame(fin: true, opcode: .text, data: payload), nil, .control)) }
        var data = ByteBuffer()
        data.write(webSocketErrorCode: code)
        data.writeString(reason)
        items.append(.close(self, WebSocketFrame(fin: true, opcode: .connectionClose, data: data), slowConsumer: slowConsumer))
        queue.enqueue(items)
    }
}

/// A text frame as it goes on the wire: the WebSocket header and the payload, in one buffer.
///
/// Why: a server's frames are not masked, so the bytes are the same for every connection. NIO's
/// `WebSocketFrameEncoder` would build a header per connection and hand the socket two buffers
/// per frame; for a message to a 20-member group that encoder and its pipeline steps were ~6 % of
/// the server's CPU (issue 3). Written past the encoder (``StreamConnection/write(_:)-(WireFrame)``)
/// every recipient's socket gets a reference to these bytes.
package struct WireFrame: Sendable {
    /// Header and payload.
    package let wire: ByteBuffer
    /// The payload alone (a view into `wire`), for a connection whose pipeline has no encoder to pass.
    package let payload: ByteBuffer

    package init(text payload: ByteBuffer) {
        var wire = ByteBuffer()
        let length = payload.readableBytes
        wire.reserveCapacity(length + 10)
        wire.writeInteger(UInt8(0x81))  // FIN, text
        if length < 126 {
            wire.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            wire.writeInteger(UInt8(126))
            wire.writeInteger(UInt16(length))
        } else {
            wire.writeInteger(UInt8(127))
            wire.writeInteger(UInt64(length))
        }
        let headerLength = wire.writerIndex
        wire.writeImmutableBuffer(payload)
        self.wire = wire
        self.payload = wire.getSlice(at: headerLength, length: length) ?? payload
    }
}

/// The most recent durable event's frame, shared by every connection it goes to.
///
/// The hub hands one event to all its recipients before the next, so keeping just the last
/// frame means each event is framed once, and every connection's outbound buffer holds a
/// reference to the same bytes rather than its own copy.
final class SharedEventFrames: Sendable {
    private let last = Mutex<(seq: EventSeq, frame: WireFrame)?>(nil)

    func frame(seq: EventSeq, payload: Data) -> WireFrame {
        last.withLock { last in
            if let last, last.seq == seq { return last.frame }
            let frame = WireFrame(text: StreamFrames.event(seq: seq, payload: payload))
            last = (seq, frame)
            return frame
        }
    }
}

/// Live deliveries for one stream, written by the hub without a task per connection.
///
/// Deduplicates against the catch-up (nothing at or below the last position already sent),
/// ends the stream when its own session is revoked, and reports a client whose socket stopped
/// draining (see ``StreamConnection/maxBufferedBytes``) as too slow: the connection ended the
/// stream already when the event that did not fit was dropped, and the hub ends the
/// subscription at its next delivery. Ephemeral events are dropped rather than queued behind a
/// full socket.
///
/// "Full" is the same bound for both, NIO's writability: an ephemeral event (typing, presence)
/// is dropped from the moment the socket has more than that bound waiting until it drained to
/// half. Below it, a lagging client gets its typing notices late rather than not at all; they
/// are a few hundred bytes against a bound of at least 1 MiB.
final class LiveStreamSink: LiveDeliverySink {
    private let connection: StreamConnection
    private let frames: SharedEventFrames
    private let ownSession: SessionID
    private let lastSent: Mutex<EventSeq>

    init(connection: StreamConnection, frames: SharedEventFrames, ownSession: SessionID, lastSent: EventSeq) {
        self.connection = connection
        self.frames = frames
        self.ownSession = ownSession
        self.lastSent = Mutex(lastSent)
    }

    func deliver(_ delivery: EventHub.Delivery) -> Bool {
        switch delivery {
        case .durable(let seq, let event, let payload):
            guard !connection.overflowed else { return false }
            let isNew = lastSent.withLock { lastSent in
                guard seq > lastSent else { return false }
                lastSent = seq
                return true
            }
            guard isNew else { return true }  // already sent during the catch-up
            connection.enqueue(frames.frame(seq: seq, payload: payload))
            if case .sessionRevoked(let revoked) = event, revoked == ownSession {
                connection.close(after: StreamGateway.sessionRevokedFrame, code: StreamGateway.CloseCode.sessionRevoked, reason: "session_revoked")
            }
            return true
        case .ephemeral(_, let payload):
            // Not queued behind a socket that stopped draining (past the stream's byte bound).
            guard connection.channel.isWritable else { return false }
            connection.enqueue(StreamFrames.ephemeral(payload: payload), kind: .ephemeral)
            return true
        }
    }

    func close(reason: String?) {
        switch reason {
        case nil:
            return  // the client went away; its connection is closing already
        case "slow_consumer":
            connection.endAsSlowConsumer()
        case "session_revoked":
            connection.close(after: StreamGateway.sessionRevokedFrame, code: StreamGateway.CloseCode.sessionRevoked, reason: "session_revoked")
        default:
            connection.close(after: nil, code: .goingAway, reason: "server shutting down")
        }
    }
}
