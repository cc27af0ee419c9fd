import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// A WebSocket stream client made of plain channel handlers: every frame is handled on the
/// event loop that read it.
///
/// Why not `WSClient`: the load generator shares the two cores with the server, and an async
/// inbound sequence costs a task resumption and the sequence's locking per frame. The `group`
/// workload delivers ~20 frames per message, and with the async client half of the generator's
/// CPU was that machinery (`perf record` of the generator, session 8).
enum RawStream {
    /// Opens `/api/v1/stream` on `server` with `token`, installs the handler `makeHandler`
    /// returns, and returns the channel once the upgrade succeeded.
    static func connect(
        server: URL, token: String, maxFrameSize: Int,
        makeHandler: @escaping @Sendable () -> any ChannelInboundHandler
    ) async throws -> any Channel {
        guard let host = server.host else { throw BenchError("no host in \(server)") }
        let port = server.port ?? 80
        let group = MultiThreadedEventLoopGroup.singleton
        let upgraded = group.any().makePromise(of: Void.self)
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                let request = UpgradeRequest(host: "\(host):\(port)", path: "/api/v1/stream", token: token, failed: upgraded)
                let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: maxFrameSize, automaticErrorHandling: true) { channel, _ in
                    // Called on the channel's event loop, where the handler then lives.
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(makeHandler())
                        upgraded.succeed()
                    }
                }
                // The server's first frames may arrive in the same read as its 101 answer:
                // they are passed on, not dropped with the HTTP decoder.
                return channel.pipeline.addHTTPClientHandlers(
                    leftOverBytesStrategy: .forwardBytes,
                    withClientUpgrade: (
                        upgraders: [upgrader],
                        completionHandler: { context in context.pipeline.syncOperations.removeHandler(request, promise: nil) }
                    )
                ).flatMap { channel.pipeline.addHandler(request) }
            }
        let channel = try await bootstrap.connect(host: host, port: port).get()
        channel.closeFuture.whenComplete { _ in upgraded.fail(BenchError("the stream closed before its upgrade")) }
        try await upgraded.futureResult.get()
        return channel
    }

    /// Writes one text frame (masked, as a client must).
    static func writeText(_ bytes: some Sequence<UInt8>, on channel: any Channel) -> EventLoopFuture<Void> {
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: bytes))
        return channel.writeAndFlush(frame)
    }
}

/// Sends the upgrade request when the connection opens; answers other than the upgrade fail it.
private final class UpgradeRequest: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let host: String
    let path: String
    let token: String
    let failed: EventLoopPromise<Void>

    init(host: String, path: String, token: String, failed: EventLoopPromise<Void>) {
        self.host = host
        self.path = path
        self.token = token
        self.failed = failed
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Authorization", value: "Bearer \(token)")
        headers.add(name: "Content-Length", value: "0")
        context.write(wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
        context.flush()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // The upgrade handler passes on a response only when it is not the upgrade.
        if case .head(let head) = unwrapInboundIn(data) {
            failed.fail(BenchError("the stream was refused: HTTP \(head.status.code)"))
        }
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failed.fail(error)
        context.close(promise: nil)
    }
}

/// The base of the load generator's frame handlers: joins fragments, answers pings and closes,
/// and hands every complete text frame's bytes to `received`.
class StreamFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private var fragments = ByteBuffer()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        case .text, .continuation:
            var data = frame.unmaskedData
            if !frame.fin || fragments.readableBytes > 0 {
                fragments.writeBuffer(&data)
                guard frame.fin else { return }
                data = fragments
                fragments = ByteBuffer()
            }
            received(data)
        default:
            break
        }
    }

    /// One complete text frame.
    func received(_ frame: ByteBuffer) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
