import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import VestnikAPI
import VestnikCore

/// `GET /api/v1/stream`: the realtime WebSocket.
///
/// Order of work on connect: subscribe to the live hub first (so nothing committed from now on
/// can be missed), then replay the log from `since` up to the position the subscription starts
/// at, then forward live deliveries, skipping anything at or below the last position sent. Every
/// durable event is therefore sent exactly once and in order, whatever races with the catch-up.
struct StreamGateway {
    let services: Services
    let metrics: ServerMetrics
    let allowedOrigins: [String]
    let writeQueues = EventLoopWriteQueues()
    let sharedFrames = SharedEventFrames()

    /// Close codes in the private 4000 range, mirroring the HTTP statuses.
    enum CloseCode {
        static let unauthenticated = StreamConnection.unauthenticatedCloseCode
        static let slowConsumer = StreamConnection.slowConsumerCloseCode
        static let sessionRevoked = WebSocketErrorCode(codeNumber: 4403)
    }

    func addRoutes(to router: Router<VestnikRequestContext>) {
        router.ws("/api/v1/stream", shouldUpgrade: shouldUpgrade, onUpgrade: handle)
    }

    /// Refuses cross-site upgrades from browsers: a browser always sends its page's `http(s)`
    /// origin, which must be this server's own or a configured one. Native clients (the SDK sends
    /// a `ws://` origin) are not browsers and authenticate with their token like any request.
    @Sendable func shouldUpgrade(_ request: Request, context: VestnikRequestContext) async throws -> RouterShouldUpgrade {
        if let origin = request.headers[.origin], !Self.isOriginAllowed(origin, host: request.head.authority, allowed: allowedOrigins) {
            throw VestnikError(.forbidden, "This origin may not open a stream.")
        }
        _ = try request.queryInt("since", in: 0...Int64.max)
        return .upgrade([:])
    }

    /// The connection's task, in phases. Each phase is its own function, kept out of line: an
    /// async function's frame holds every value any of its suspension points keeps alive, and it
    /// stays allocated for the task's lifetime. As one function the frame was ~9 KiB, held by every
    /// idle connection; split, an idle stream keeps only this function's and `serve`'s.
    @Sendable func handle(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, _ context: WebSocketRouterContext<VestnikRequestContext>) async throws {
        let logger = context.logger
        let channel = context.requestContext.channel
        let frames = StreamConnection(
            channel: channel, queue: writeQueues.queue(for: channel.eventLoop), bufferLimit: services.sync.streamBufferLimit,
            countSlowConsumer: { [metrics] in metrics.slowConsumerDisconnects.increment() })
        var iterator = inbound.messages(maxSize: APILimits.maxStreamFrameBytes).makeAsyncIterator()

        guard let (session, token) = await authenticate(headers: context.request.headers, &iterator, frames, outbound) else { return }
        frames.keepAlive(until: session.expiresAt)
        defer { frames.queue.unregister(frames) }
        let since = (try? context.request.queryInt("since", in: 0...Int64.max)).flatMap { $0 }.map(EventSeq.init)
        metrics.streamConnections.increment()
        metrics.streamConnectionsTotal.increment()
        let subscription = await services.sync.connect(session)
        defer { metrics.streamConnections.decrement() }

        do {
            if let lastSent = try await start(subscription, session: session, token: token, since: since, frames, outbound) {
                // Live: from now on the hub writes deliveries straight to the connection (and
                // closes it when the subscription ends); this task only reads the client's frames.
                // When the connection closes, from either side, the loop ends.
                subscription.goLive(
                    LiveStreamSink(connection: frames, frames: sharedFrames, ownSession: session.sessionID, lastSent: lastSent))
                try await serve(&iterator, session: session, frames, outbound, logger: logger)
            }
        } catch {
            logger.debug("stream ended", metadata: ["vestnik.error": "\(error)"])
        }
        // The client is gone or Hummingbird is closing the socket: frames still queued for it
        // must not follow its close frame.
        frames.stopWriting()
        await services.sync.disconnect(subscription)
    }

    /// 1. Authenticates: a header, or an `auth` frame first (browsers cannot set headers). On
    /// failure the client gets an `error` frame and the close, and the result is nil.
    @inline(never)
    func authenticate(
        headers: HTTPFields, _ iterator: inout WebSocketInboundMessageStream.AsyncIterator, _ frames: StreamConnection, _ outbound: WebSocketOutboundWriter
    ) async -> (AuthenticatedSession, token: String)? {
        do {
            if let headerToken = bearerToken(headers) {
                return (try await services.sessions.authenticate(token: headerToken), headerToken)
            }
            // A client that never authenticates is dropped after 10 s.
            let first = try await withThrowingTaskGroup(of: Void.self) { [iterator] group in
                var iterator = iterator
                group.addTask {
                    try await Task.sleep(for: .seconds(10))
                    try? await outbound.close(CloseCode.unauthenticated, reason: "auth timeout")
                }
                let first = try await iterator.next()
                group.cancelAll()
                return (first, iterator)
            }
            iterator = first.1
            guard case .text(let text) = first.0,
                let frame = try? VestnikJSON.decode(ClientFrame.self, from: Data(text.utf8)),
                frame.type == .auth, let frameToken = frame.token
            else {
                throw VestnikError(.unauthenticated, "The first frame must be {\"type\":\"auth\",\"token\":…}.")
            }
            return (try await services.sessions.authenticate(token: frameToken), frameToken)
        } catch {
            let ending = Self.authenticationFailure(error)
            try? await frames.write(ending.frame)
            try? await outbound.close(ending.code, reason: ending.reason)
            return nil
        }
    }

    /// 2. With the subscription in place: checks the session once more, replays the log from
    /// `since` and sends `ready`. Returns the last position sent, or nil when the session was
    /// revoked meanwhile (the stream is then closed).
    @inline(never)
    func start(
        _ subscription: EventHub.Subscription, session: AuthenticatedSession, token: String, since: EventSeq?, _ frames: StreamConnection,
        _ outbound: WebSocketOutboundWriter
    ) async throws -> EventSeq? {
        // A revocation that committed between authentication and subscription was delivered
        // before this subscription existed; check once more now that nothing can slip by.
        do {
            _ = try await services.sessions.authenticate(token: token)
        } catch {
            let ending = Self.recheckFailure(error, session: session)
            try? await frames.write(ending.frame)
            try? await outbound.close(ending.code, reason: ending.reason)
            return nil
        }
        var lastSent = subscription.deliveredFrom
        if let since {
            do {
                try await services.sync.checkResumable(since)
                var cursor = since
                while cursor < subscription.deliveredFrom {
                    let page = try await services.sync.catchUpPage(after: cursor, through: subscription.deliveredFrom, limit: 500, as: session.userID)
                    guard let last = page.last else { break }
                    try await frames.write(page.map { StreamFrames.event(seq: $0.seq, payload: $0.payload) })
                    cursor = last.seq
                }
                lastSent = max(since, subscription.deliveredFrom)
            } catch let error as VestnikError where error.code == .resyncRequired {
                // The stream stays open and live from `seq`: the client refetches its
                // snapshot after this frame, and whatever commits meanwhile still arrives
                // here, so nothing falls between the snapshot and the stream.
                try await frames.write(
                    StreamFrames.control(
                        ServerFrame(type: .resyncRequired, seq: subscription.deliveredFrom, code: error.code.rawValue, message: error.message)))
                lastSent = subscription.deliveredFrom
            }
        }
        try await frames.write(StreamFrames.control(ServerFrame(type: .ready, seq: lastSent)))
        return lastSent
    }

    /// 3. Reads the client's frames until the connection closes.
    @inline(never)
    func serve(
        _ iterator: inout WebSocketInboundMessageStream.AsyncIterator, session: AuthenticatedSession, _ frames: StreamConnection,
        _ outbound: WebSocketOutboundWriter, logger: Logger
    ) async throws {
        while let message = try await iterator.next() {
            // The keep-alive timer closes an expired stream within one interval; until then it
            // takes nothing more from the client.
            if frames.expired {
                try? await frames.write(StreamConnection.sessionExpiredFrame)
                try? await outbound.close(CloseCode.unauthenticated, reason: "session_expired")
                return
            }
            guard case .text(let text) = message else { continue }
            await received(Data(text.utf8), session: session, frames, logger: logger)
        }
    }

    /// One client frame, live.
    @inline(never)
    func received(_ data: Data, session: AuthenticatedSession, _ frames: StreamConnection, logger: Logger) async {
        guard let frame = try? VestnikJSON.decode(ClientFrame.self, from: data) else {
            // Unknown frames are ignored, but a send the client waits on is answered.
            if let head = try? VestnikJSON.decode(FrameHead.self, from: data), head.type == ClientFrame.Kind.send.rawValue {
                frames.enqueue(Self.nack(VestnikError(.invalidJSON, "The send frame is not valid: see ClientFrame."), ref: head.ref), kind: .live)
            }
            return
        }
        switch frame.type {
        case .typing:
            // A typing frame for a chat the user cannot post in is simply dropped.
            if let chatID = frame.chatID { try? await services.chats.typing(in: chatID, as: session) }
        case .ping:
            // Browsers cannot observe WebSocket pings, so they ask for a `pong` frame to tell a
            // live socket from a half-open one. It joins the same write queue as the
            // deliveries, so frames never interleave.
            frames.enqueue(StreamFrames.control(ServerFrame(type: .pong)), kind: .live)
        case .send:
            // Awaited before the next frame is read: one stream's messages are stored in the
            // order the client sent them.
            frames.enqueue(await send(frame, as: session, logger: logger), kind: .live)
        case .auth:
            return  // already authenticated; a repeated auth frame changes nothing
        }
    }

    /// Stores a `send` frame's message; the `ack` or `nack` frame that answers it.
    @inline(never)
    func send(_ frame: ClientFrame, as session: AuthenticatedSession, logger: Logger) async -> ByteBuffer {
        let ref = frame.ref
        do {
            guard let ref, !ref.isEmpty, ref.utf8.count <= APILimits.maxFrameRefLength else {
                throw VestnikError.invalid("ref is required: 1–\(APILimits.maxFrameRefLength) bytes.")
            }
            guard let chatID = frame.chatID, let body = frame.message else {
                throw VestnikError.invalid("A send frame needs chat_id and message.")
            }
            let (message, created) = try await services.messages.send(OutgoingMessage(body), to: chatID, as: session)
            if created { metrics.messagesSent.increment() }
            let sent = SentMessage(
                id: message.id, chatID: message.chatID, chatSeq: message.chatSeq, createdAt: message.createdAt,
                clientMessageID: message.clientMessageID, created: created)
            return StreamFrames.control(ServerFrame(type: .ack, ref: ref, sent: sent))
        } catch {
            let mapped = ErrorMiddleware.map(error)
            if mapped.code.category == .internalError {
                logger.error("stream send failed", metadata: ["vestnik.error": "\(error)"])
            }
            return Self.nack(mapped, ref: ref)
        }
    }

    /// The `nack` frame for a refused send. A ref longer than allowed is not echoed back: the
    /// client learns from the code what was wrong.
    static func nack(_ error: VestnikError, ref: String?) -> ByteBuffer {
        let echoed = ref.flatMap { $0.utf8.count <= APILimits.maxFrameRefLength ? $0 : nil }
        return StreamFrames.control(ServerFrame(type: .nack, code: error.code.rawValue, message: error.message, ref: echoed))
    }

    /// The part of a client frame that identifies it, for answering one that does not decode.
    private struct FrameHead: Decodable {
        var type: String?
        var ref: String?

        private enum CodingKeys: String, CodingKey { case type, ref }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            type = try? container.decode(String.self, forKey: .type)
            // A ref of the wrong type is not echoed, but the frame is still answered.
            ref = try? container.decode(String.self, forKey: .ref)
        }
    }

    static func isOriginAllowed(_ origin: String, host: String?, allowed: [String]) -> Bool {
        let lowered = origin.lowercased()
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://") || lowered == "null" else { return true }
        if allowed.contains(origin) { return true }
        guard let host, !host.isEmpty else { return false }
        return lowered == "http://\(host.lowercased())" || lowered == "https://\(host.lowercased())"
    }

    static let sessionRevokedFrame = StreamFrames.control(
        ServerFrame(type: .error, code: "session_revoked", message: "This session was ended."))

    /// How a stream ends when the session check after subscribing (``start``) fails. Revoked
    /// only if the session is gone (deleted, or its user blocked). One that expired in between is
    /// `unauthenticated`, as at the first check. A check that could not run (a database outage)
    /// says nothing about the session: told "revoked", a client would drop a session that is
    /// still valid.
    static func recheckFailure(_ error: any Error, session: AuthenticatedSession, now: Date = Date()) -> Ending {
        let ending = authenticationFailure(error)
        guard ending.code == CloseCode.unauthenticated, !(session.expiresAt.map { $0 <= now } ?? false) else { return ending }
        return Ending(frame: sessionRevokedFrame, code: CloseCode.sessionRevoked, reason: "session_revoked")
    }

    /// How a stream ends when authenticating it fails: the error frame, then 4401 for an
    /// authentication failure, 1011 for anything else (such as a database outage).
    static func authenticationFailure(_ error: any Error) -> Ending {
        let mapped = ErrorMiddleware.map(error)
        return Ending(
            frame: StreamFrames.control(ServerFrame(type: .error, code: mapped.code.rawValue, message: mapped.message)),
            code: mapped.code.category == .unauthenticated ? CloseCode.unauthenticated : .unexpectedServerError, reason: mapped.code.rawValue)
    }

    /// The last frame of a stream that is being refused, and its close.
    struct Ending {
        let frame: ByteBuffer
        let code: WebSocketErrorCode
        let reason: String
    }
}

