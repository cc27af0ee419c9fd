import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import VestnikAPI

/// Every error a ``VestnikClient`` call can throw (besides `CancellationError` when the calling
/// task is cancelled).
///
/// - Server refusals (4xx/5xx) carry the HTTP ``status`` and the server's stable ``code``
///   (`chat_not_found`, `forbidden`, `resync_required`, …), a ``message`` safe to show to the user,
///   and the ``requestID`` to quote in bug reports.
/// - Failures before a response arrived (connection refused, timeout, TLS) have `status == nil`
///   and code ``Code/connectionFailed``.
/// - A 2xx response the SDK could not understand has code ``Code/invalidResponse``.
public struct VestnikClientError: Error, Sendable, CustomStringConvertible {
    /// Codes the SDK itself produces (the server's codes are plain strings in ``code``).
    public enum Code {
        /// No HTTP response: the server is unreachable, the connection broke or timed out.
        public static let connectionFailed = "connection_failed"
        /// The server answered with a body the SDK could not decode (or one over the size cap).
        public static let invalidResponse = "invalid_response"
        /// The caller passed arguments the SDK rejects before contacting the server.
        public static let invalidArgument = "invalid_argument"
        /// The call needs a token but the client has none.
        public static let notAuthenticated = "unauthenticated"
        /// `GET /events` or the stream: `since` is older than the server's log keeps.
        public static let resyncRequired = "resync_required"
        /// The session behind the token was revoked.
        public static let sessionRevoked = "session_revoked"
        /// The request lost to a concurrent change (409) and stored nothing; it may be repeated.
        public static let conflict = "conflict"
    }

    /// The HTTP status, or `nil` when no response was received (transport failure).
    public var status: Int?
    /// Stable machine-readable snake_case code; compare against it, never against ``message``.
    public var code: String
    /// Human-readable explanation, safe to show.
    public var message: String
    /// The server's request id when it sent one.
    public var requestID: String?
    /// How long the server asked the client to wait before retrying (`Retry-After`), if it did.
    public var retryAfter: Duration?
    /// The lower-level error for transport and decoding failures.
    public var underlying: (any Error)?

    /// Creates an error; mostly useful for tests and wrappers.
    public init(
        status: Int?, code: String, message: String, requestID: String? = nil, retryAfter: Duration? = nil,
        underlying: (any Error)? = nil
    ) {
        self.status = status
        self.code = code
        self.message = message
        self.requestID = requestID
        self.retryAfter = retryAfter
        self.underlying = underlying
    }

    /// `true` when the token is no longer (or never was) accepted: log in again.
    public var isAuthenticationFailure: Bool {
        status == 401 || code == Code.notAuthenticated || code == Code.sessionRevoked
    }

    /// `true` when the client must refetch its state and restart from the server head.
    public var isResyncRequired: Bool { code == Code.resyncRequired }

    /// `true` for failures where repeating the same request may succeed: transport failures,
    /// 5xx, 408, 429, and 409 `conflict` (the request lost to a concurrent change and stored
    /// nothing). Only repeat requests that are idempotent.
    public var isTransient: Bool {
        guard let status else { return code == Code.connectionFailed }
        return status >= 500 || status == 429 || status == 408 || (status == 409 && code == Code.conflict)
    }

    /// `message (code, HTTP status, request id)`, for logs.
    public var description: String {
        var text = "\(message) (\(code)"
        if let status { text += ", HTTP \(status)" }
        if let requestID { text += ", request \(requestID)" }
        return text + ")"
    }

    static func invalidArgument(_ message: String) -> Self {
        Self(status: nil, code: Code.invalidArgument, message: message)
    }

    static func connectionFailed(_ error: any Error) -> Self {
        Self(status: nil, code: Code.connectionFailed, message: describeTransportError(error), underlying: error)
    }
}

extension VestnikClientError: LocalizedError {
    /// Same as ``description``.
    public var errorDescription: String? { description }
}

/// A short human-readable text for a transport-level error (instead of NIO's verbose dumps).
func describeTransportError(_ error: any Error) -> String {
    func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }
    switch error {
    case let error as NIOConnectionError:
        if let failure = error.connectionErrors.first {
            if let io = failure.error as? IOError {
                return "cannot connect to \(error.host):\(error.port) (\(errnoText(io.errnoCode)))"
            }
            return "cannot connect to \(error.host):\(error.port) (\(failure.error))"
        }
        if let dns = error.dnsAError ?? error.dnsAAAAError {
            return "cannot resolve \(error.host) (\(dns))"
        }
        return "cannot connect to \(error.host):\(error.port)"
    case let error as IOError:
        return "connection failed (\(errnoText(error.errnoCode)))"
    case let error as HTTPClientError:
        switch error {
        case .connectTimeout: return "connecting to the server timed out"
        case .deadlineExceeded, .readTimeout: return "the server did not answer in time"
        case .remoteConnectionClosed: return "the server closed the connection"
        case .cancelled: return "the request was cancelled"
        default: return "HTTP failure: \(error)"
        }
    case let error as ChannelError:
        return "connection failed (\(error))"
    default:
        return "connection failed (\(error))"
    }
}
