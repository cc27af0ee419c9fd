import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import VestnikAPI
import VestnikCore

/// The context of every request: a request id, the client address, and (after the auth
/// middleware) the verified session.
public struct VestnikRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    /// Set by ``AuthenticationMiddleware`` when a valid bearer token came with the request.
    package var session: AuthenticatedSession?
    /// The client's address as rate limits count it (an IPv6 address's /64 network, see
    /// ``TrustedProxies/limitingKey(_:)``): what a trusted reverse proxy forwarded
    /// (``ClientAddressMiddleware``), else the socket peer's; "unknown" for Unix sockets.
    /// Worked out when asked (only logins ask), not for every request.
    package var clientAddress: String { forwardedClientAddress ?? TrustedProxies.limitingKey(TrustedProxies.normalizedAddress(peerAddress) ?? peerAddress) }
    /// Set by ``ClientAddressMiddleware`` for requests through a trusted proxy.
    package var forwardedClientAddress: String?
    /// The socket peer's IP address; "unknown" for Unix sockets.
    package let peerAddress: String
    package let requestID: String
    /// The connection, for the stream's frame writer (``StreamFrameWriter``).
    package let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        channel = source.channel
        session = nil
        peerAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
        requestID = source.logger[metadataKey: "hb.request.id"]?.description ?? RequestID.make()
    }

    public var maxUploadSize: Int { APILimits.maxRequestBodyBytes }
    public var responseEncoder: VestnikResponseEncoder { VestnikResponseEncoder() }
    public var requestDecoder: JSONDecoder { VestnikJSON.makeDecoder() }
}

/// The context behind authentication: the session is guaranteed.
public struct AuthenticatedRequestContext: ChildRequestContext {
    public typealias ParentContext = VestnikRequestContext
    public var coreContext: CoreRequestContextStorage
    package let session: AuthenticatedSession
    package let requestID: String

    public init(context: VestnikRequestContext) throws {
        guard let session = context.session else {
            throw VestnikError(.unauthenticated, "A valid session token is required.")
        }
        coreContext = context.coreContext
        self.session = session
        requestID = context.requestID
    }

    public var maxUploadSize: Int { APILimits.maxRequestBodyBytes }
    public var responseEncoder: VestnikResponseEncoder { VestnikResponseEncoder() }
    public var requestDecoder: JSONDecoder { VestnikJSON.makeDecoder() }
}

/// Response bodies in Vestnik's JSON dialect, written by the same encoder as stream frames and
/// stored events (``VestnikJSON/encode(_:)``).
public struct VestnikResponseEncoder: ResponseEncoder {
    public func encode(_ value: some Encodable, from request: Request, context: some RequestContext) throws -> Response {
        let data = try VestnikJSON.encode(value)
        return Response(
            status: .ok,
            headers: [.contentType: "application/json; charset=utf-8", .contentLength: String(data.count)],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

enum RequestID {
    static func make() -> String {
        var rng = SystemRandomNumberGenerator()
        return String(rng.next(), radix: 16)
    }
}
