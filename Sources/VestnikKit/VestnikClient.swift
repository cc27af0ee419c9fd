import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization
import VestnikAPI

/// The Vestnik client SDK: one async method per server endpoint plus the auto-reconnecting
/// realtime stream (``stream(since:configuration:)``).
///
/// - The client is `Sendable`; share one instance per account and server. All methods may be
///   called concurrently.
/// - Authentication: pass a token from an earlier ``login(login:password:deviceName:)`` to the
///   initializer, or call `login` (which stores the returned token in the client). ``logout()``
///   clears it. ``token`` reads the current one (persist it yourself; the SDK stores nothing on disk).
/// - Errors: every call throws ``VestnikClientError`` for server refusals, transport failures and
///   undecodable answers, and `CancellationError` when the calling task is cancelled.
/// - Retries: reads (`GET`), ``markRead(chatID:messageID:)`` and
///   ``sendMessage(chatID:text:clientMessageID:replyTo:forwardOf:mentions:)`` (idempotent through
///   its client message id) are retried on transport failures, 5xx, 408 and 429 according to
///   ``Configuration/retry``. Other writes are sent once, because repeating them is not safe.
/// - Response bodies are capped at ``Configuration/maxResponseBodyBytes``.
/// - HTTP goes through AsyncHTTPClient; by default a process-wide client owned by VestnikKit
///   (``defaultHTTPClient``), which needs no shutdown. When you pass your own `HTTPClient` you stay
///   responsible for shutting it down after the last call.
public final class VestnikClient: Sendable {
    /// Tunables of a client. The defaults suit interactive apps and the CLI.
    public struct Configuration: Sendable {
        /// Time a single HTTP request (including reading its body) may take.
        public var requestTimeout: Duration
        /// Largest response body accepted; bigger ones fail with ``VestnikClientError/Code/invalidResponse``.
        public var maxResponseBodyBytes: Int
        /// How idempotent requests are repeated after transient failures.
        public var retry: RetryPolicy
        /// Sent as `User-Agent`.
        public var userAgent: String

        /// Creates a configuration; every parameter has a sensible default.
        public init(
            requestTimeout: Duration = .seconds(30),
            maxResponseBodyBytes: Int = 16 * 1024 * 1024,
            retry: RetryPolicy = RetryPolicy(),
            userAgent: String = "VestnikKit/1"
        ) {
            self.requestTimeout = requestTimeout
            self.maxResponseBodyBytes = maxResponseBodyBytes
            self.retry = retry
            self.userAgent = userAgent
        }
    }

    /// Exponential backoff for idempotent requests.
    ///
    /// Attempt `n` (1-based) waits `initialDelay * 2^(n-1)`, capped at `maxDelay`, or the server's
    /// `Retry-After` when that is longer. A `Retry-After` longer than `maxRetryAfter` is not waited
    /// for: the error is thrown instead.
    public struct RetryPolicy: Sendable {
        /// Total tries including the first; `1` disables retries.
        public var maxAttempts: Int
        /// Wait before the second attempt.
        public var initialDelay: Duration
        /// Longest wait between attempts (unless the server's `Retry-After` asks for more).
        public var maxDelay: Duration
        /// Longest `Retry-After` honoured; a longer one makes the call fail right away.
        public var maxRetryAfter: Duration

        /// Creates a policy. The default tries 4 times over roughly 1.5 seconds.
        public init(
            maxAttempts: Int = 4, initialDelay: Duration = .milliseconds(200), maxDelay: Duration = .seconds(5),
            maxRetryAfter: Duration = .seconds(30)
        ) {
            self.maxAttempts = max(1, maxAttempts)
            self.initialDelay = initialDelay
            self.maxDelay = maxDelay
            self.maxRetryAfter = maxRetryAfter
        }

        /// No retries at all.
        public static let none = RetryPolicy(maxAttempts: 1)

        func delay(afterAttempt attempt: Int) -> Duration {
            var delay = initialDelay
            for _ in 1..<max(1, attempt) where delay < maxDelay { delay *= 2 }
            return min(delay, maxDelay)
        }
    }

    /// The server's base URL as given (`https://chat.example.com`, optionally with a path prefix).
    public let serverURL: URL
    /// The tunables this client was created with.
    public let configuration: Configuration
    let httpClient: HTTPClient
    private let tokenStorage: Mutex<String?>

    /// Creates a client for `serverURL` (scheme `http` or `https`).
    ///
    /// - Parameters:
    ///   - serverURL: The server's base URL; `/api/v1/…` is appended to it.
    ///   - token: A bearer token from an earlier login, or `nil` before logging in.
    ///   - httpClient: The AsyncHTTPClient to use; ``defaultHTTPClient`` by default. If you pass your
    ///     own you must shut it down after you are done with this client. Prefer one configured with
    ///     `connectionPool.retryConnectionEstablishment = false`, or an unreachable server makes every
    ///     attempt wait for the whole request timeout.
    ///   - configuration: Timeouts, body cap and retry policy.
    public init(
        serverURL: URL, token: String?, httpClient: HTTPClient = VestnikClient.defaultHTTPClient,
        configuration: Configuration = Configuration()
    ) {
        self.serverURL = serverURL
        self.tokenStorage = Mutex(token)
        self.httpClient = httpClient
        self.configuration = configuration
    }

    /// The process-wide AsyncHTTPClient used when none is passed to the initializer. It is never shut
    /// down (like `HTTPClient.shared`), so do not call `shutdown()` on it.
    ///
    /// Unlike `HTTPClient.shared` it fails a request as soon as the connection cannot be established
    /// (instead of retrying until the request's deadline), so that ``RetryPolicy`` decides about
    /// retries and an unreachable server is reported within seconds.
    public static let defaultHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// The bearer token currently used (after ``login(login:password:deviceName:)`` the new one).
    public var token: String? { tokenStorage.withLock { $0 } }

    /// Replaces the bearer token used by subsequent calls (and by stream reconnects).
    public func setToken(_ token: String?) { tokenStorage.withLock { $0 = token } }

    // MARK: - Request plumbing

    enum Verb: Sendable {
        case get, post, put, patch, delete
    }

    struct RawResponse: Sendable {
        var status: Int
        var body: ByteBuffer
    }

    /// The base URL without a trailing slash.
    var baseString: String {
        var base = serverURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        return base
    }

    func url(_ path: String, query: [(String, String)]) -> String {
        var url = baseString + "/api/v1" + path
        if !query.isEmpty {
            url += "?" + query.map { "\(Self.percentEncode($0.0))=\(Self.percentEncode($0.1))" }.joined(separator: "&")
        }
        return url
    }

    /// RFC 3986 unreserved characters stay, everything else (including `/`, `?`, `&`, emoji) is escaped.
    static func percentEncode(_ value: String) -> String {
        var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    /// Sends a request and returns the 2xx response; non-2xx answers become ``VestnikClientError``.
    func perform(
        _ verb: Verb, _ path: String, query: [(String, String)] = [], body: Data? = nil, retryable: Bool
    ) async throws -> RawResponse {
        let policy = retryable ? configuration.retry : .none
        var attempt = 1
        while true {
            do {
                return try await performOnce(verb, path, query: query, body: body)
            } catch let error as VestnikClientError where error.isTransient && attempt < policy.maxAttempts {
                var delay = policy.delay(afterAttempt: attempt)
                if let retryAfter = error.retryAfter {
                    guard retryAfter <= policy.maxRetryAfter else { throw error }
                    delay = max(delay, retryAfter)
                }
                try await Task.sleep(for: delay)
                attempt += 1
            }
        }
    }

    private func performOnce(_ verb: Verb, _ path: String, query: [(String, String)], body: Data?) async throws -> RawResponse {
        var request = HTTPClientRequest(url: url(path, query: query))
        switch verb {
        case .get: request.method = .GET
        case .post: request.method = .POST
        case .put: request.method = .PUT
        case .patch: request.method = .PATCH
        case .delete: request.method = .DELETE
        }
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: configuration.userAgent)
        if let token {
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        } else if verb == .post || verb == .put || verb == .patch {
            request.headers.add(name: "Content-Length", value: "0")
        }

        let timeout = Self.timeAmount(configuration.requestTimeout)
        let deadline = NIODeadline.now() + timeout
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await httpClient.execute(request, deadline: deadline)
        } catch {
            try Task.checkCancellation()
            throw VestnikClientError.connectionFailed(error)
        }
        do {
            bytes = try await response.body.collect(upTo: configuration.maxResponseBodyBytes)
        } catch is NIOTooManyBytesError {
            throw VestnikClientError(
                status: Int(response.status.code), code: VestnikClientError.Code.invalidResponse,
                message: "response body larger than \(configuration.maxResponseBodyBytes) bytes")
        } catch {
            try Task.checkCancellation()
            throw VestnikClientError.connectionFailed(error)
        }

        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            let retryAfter = response.headers.first(name: "Retry-After").flatMap(Self.parseRetryAfter)
            let headerRequestID = response.headers.first(name: "X-Request-ID")
            if let decoded = try? VestnikJSON.decode(ErrorResponse.self, from: Data(bytes.readableBytesView)) {
                throw VestnikClientError(
                    status: status, code: decoded.error.code, message: decoded.error.message,
                    requestID: decoded.error.requestID ?? headerRequestID, retryAfter: retryAfter)
            }
            let text = String(decoding: bytes.readableBytesView.prefix(200), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw VestnikClientError(
                status: status, code: "http_\(status)",
                message: text.isEmpty ? "HTTP \(status) \(response.status.reasonPhrase)" : text,
                requestID: headerRequestID, retryAfter: retryAfter)
        }
        return RawResponse(status: status, body: bytes)
    }

    /// Sends `body` (if any) and decodes a `T` from the 2xx answer.
    func request<T: Decodable>(
        _ verb: Verb, _ path: String, query: [(String, String)] = [], body: (some Encodable)? = nil as Never?,
        retryable: Bool? = nil, as type: T.Type = T.self
    ) async throws -> T {
        let response = try await perform(
            verb, path, query: query, body: try Self.encode(body), retryable: retryable ?? (verb == .get))
        return try Self.decode(T.self, from: response)
    }

    /// Sends `body` (if any) and ignores the 2xx answer's body (204 endpoints).
    func requestVoid(
        _ verb: Verb, _ path: String, query: [(String, String)] = [], body: (some Encodable)? = nil as Never?,
        retryable: Bool? = nil
    ) async throws {
        _ = try await perform(verb, path, query: query, body: try Self.encode(body), retryable: retryable ?? (verb == .get))
    }

    static func encode(_ body: (some Encodable)?) throws -> Data? {
        guard let body else { return nil }
        do {
            return try VestnikJSON.encode(body)
        } catch {
            throw VestnikClientError(
                status: nil, code: VestnikClientError.Code.invalidArgument, message: "cannot encode request: \(error)",
                underlying: error)
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from response: RawResponse) throws -> T {
        do {
            return try VestnikJSON.decode(T.self, from: Data(response.body.readableBytesView))
        } catch {
            throw VestnikClientError(
                status: response.status, code: VestnikClientError.Code.invalidResponse,
                message: "cannot decode \(T.self) from the server's answer: \(error)", underlying: error)
        }
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// `Retry-After` is either delay-seconds or an HTTP-date.
    static func parseRetryAfter(_ value: String) -> Duration? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Int(trimmed) { return .seconds(max(0, seconds)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        return .milliseconds(max(0, Int64(date.timeIntervalSinceNow * 1000)))
    }
}
