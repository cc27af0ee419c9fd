import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import VestnikAPI
import VestnikCore

/// Verifies `Authorization: Bearer …` when present; routes behind ``AuthenticatedRequestContext``
/// reject requests without a valid session.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = VestnikRequestContext
    let sessions: SessionService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = bearerToken(request.headers) else { return try await next(request, context) }
        var context = context
        context.session = try await sessions.authenticate(token: token)
        return try await next(request, context)
    }
}

/// The bearer token of a request, if it has one.
func bearerToken(_ headers: HTTPFields) -> String? {
    guard let value = headers[.authorization] else { return nil }
    let prefix = "bearer "
    guard value.count > prefix.count, value.lowercased().hasPrefix(prefix) else { return nil }
    return String(value.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces)
}

/// Maps every error to `{"error":{"code","message","request_id"}}` with one status per error
/// category. Unknown errors become `internal_error` 500; their details go only to the log.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = VestnikRequestContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = Self.response(for: error, requestID: context.requestID, logger: context.logger)
        }
        response.headers[.init("X-Request-ID")!] = context.requestID  // safe: constant valid header name
        metrics.countResponse(status: response.status.code)
        return response
    }

    static func response(for error: any Error, requestID: String, logger: Logger) -> Response {
        let mapped = map(error)
        if mapped.code.category == .internalError {
            logger.error("request failed", metadata: ["vestnik.error": "\(error)", "vestnik.request.id": "\(requestID)"])
        } else if let cause = mapped.cause {
            logger.debug("request rejected", metadata: ["vestnik.error": "\(cause)"])
        }
        let body = ErrorResponse(error: .init(code: mapped.code.rawValue, message: mapped.message, requestID: requestID))
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if let retryAfter = mapped.retryAfter { headers[.retryAfter] = String(retryAfter) }
        if mapped.code.category == .unauthenticated { headers[.wwwAuthenticate] = "Bearer" }
        let data = (try? VestnikJSON.encode(body)) ?? Data("{\"error\":{\"code\":\"internal_error\",\"message\":\"\"}}".utf8)
        return Response(status: status(mapped.code.category), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The one place errors become transport errors.
    static func map(_ error: any Error) -> VestnikError {
        if let domain = VestnikError.reaching(error) { return domain }
        switch error {
        case let error as HTTPError:
            switch error.status {
            case .notFound: return VestnikError(.notFound, "No such endpoint.")
            case .methodNotAllowed: return VestnikError(.methodNotAllowed, "Method not allowed on this endpoint.")
            case .contentTooLarge: return VestnikError(.payloadTooLarge, "The request body is too large.")
            case .badRequest: return VestnikError(.invalidRequest, error.body ?? "Bad request.")
            case .unauthorized: return VestnikError(.unauthenticated, "A valid session token is required.")
            default:
                if (400..<500).contains(error.status.code) {
                    return VestnikError(VestnikError.Code(error.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_"), .badRequest),
                        error.body ?? error.status.reasonPhrase)
                }
                return VestnikError(.internalError, "Internal error.", cause: error)
            }
        case let error as DecodingError:
            return VestnikError(.invalidJSON, describe(error), cause: error)
        default:
            return VestnikError(.internalError, "Internal error.", cause: error)
        }
    }

    static func status(_ category: VestnikError.Category) -> HTTPResponse.Status {
        switch category {
        case .badRequest: .badRequest
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .methodNotAllowed: .methodNotAllowed
        case .conflict: .conflict
        case .gone: .gone
        case .tooLarge: .contentTooLarge
        case .rateLimited: .tooManyRequests
        case .unavailable: .serviceUnavailable
        case .internalError: .internalServerError
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? VestnikJSON.snakeCase($0.stringValue) }
            return keys.isEmpty ? "the body" : keys.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let field = (context.codingPath + [key]).map { VestnikJSON.snakeCase($0.stringValue) }.joined(separator: ".")
            return "The field \(field) is required."
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "The field \(path(context)) has the wrong type."
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "The body is not valid JSON." : "The field \(path(context)) is not valid."
        @unknown default:
            return "The body is not valid."
        }
    }
}

/// Security headers on every response: no framing, no sniffing, a strict CSP, no referrer.
///
/// A handler may set its own (stricter or page-specific) `Content-Security-Policy` and
/// `Cache-Control`; otherwise the API defaults apply.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.init("X-Content-Type-Options")!] = "nosniff"  // safe: constant valid header name
        response.headers[.init("X-Frame-Options")!] = "DENY"  // safe: constant valid header name
        response.headers[.init("Referrer-Policy")!] = "no-referrer"  // safe: constant valid header name
        if response.headers[.contentSecurityPolicy] == nil {
            response.headers[.contentSecurityPolicy] = "default-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'none'"
        }
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }
}

extension Request {
    /// Decodes a JSON body of at most `APILimits.maxRequestBodyBytes`, with clear errors.
    func decodeJSON<T: Decodable>(_ type: T.Type) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: APILimits.maxRequestBodyBytes)
        } catch is NIOTooManyBytesError {
            throw VestnikError(.payloadTooLarge, "The request body is larger than \(APILimits.maxRequestBodyBytes / 1024) KiB.")
        }
        guard buffer.readableBytes > 0 else { throw VestnikError(.invalidJSON, "A JSON body is required.") }
        do {
            return try VestnikJSON.makeDecoder().decode(T.self, from: Data(buffer: buffer))
        } catch let error as DecodingError {
            throw ErrorMiddleware.map(error)
        }
    }
}
