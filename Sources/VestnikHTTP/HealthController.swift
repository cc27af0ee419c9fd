import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VestnikAPI
import VestnikCore

/// Liveness, readiness, metrics and the API description.
struct HealthController {
    let services: Services
    let metrics: ServerMetrics
    let openAPIDocument: Data?
    let version: String
    let metricsAccess: MetricsAccess

    func addRoutes(to router: Router<VestnikRequestContext>) {
        router.get("healthz", use: health)
        router.get("readyz", use: ready)
        router.get("metrics", use: prometheus)
        router.get("api/v1/openapi.json", use: openAPI)
    }

    /// GET /healthz — the process is up.
    @Sendable func health(_ request: Request, context: VestnikRequestContext) async throws -> HealthResponse {
        HealthResponse(status: "ok", version: version)
    }

    /// GET /readyz — the store answers.
    @Sendable func ready(_ request: Request, context: VestnikRequestContext) async throws -> HealthResponse {
        do {
            _ = try await services.context.store.headSeq()
        } catch {
            throw VestnikError(.unavailable, "The database is not reachable.", cause: error)
        }
        return HealthResponse(status: "ready", version: version)
    }

    /// GET /metrics — Prometheus text format, for the metrics token or this host (``MetricsAccess``).
    @Sendable func prometheus(_ request: Request, context: VestnikRequestContext) async throws -> Response {
        try metricsAccess.check(
            bearer: bearerToken(request.headers), peer: context.peerAddress,
            forwarded: MetricsAccess.forwardingHeaders.contains { request.headers[$0] != nil })
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
    }

    /// GET /api/v1/openapi.json
    @Sendable func openAPI(_ request: Request, context: VestnikRequestContext) async throws -> Response {
        guard let openAPIDocument else { throw VestnikError(.notFound, "No API description is bundled.") }
        return Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "public, max-age=300"],
            body: .init(byteBuffer: ByteBuffer(bytes: openAPIDocument)))
    }
}

/// Who may read `GET /metrics`.
///
/// Why: the counters (requests, messages, open streams, errors) are operational detail a
/// deployment keeps to its monitoring, and the port that serves them is the public one. With a
/// token configured, a scraper sends it as a bearer token (compared in constant time). Without
/// one, only this host may read them: a loopback peer, and only when nothing says the request was
/// forwarded (a proxy or tunnel on this host also connects from loopback) and no trusted proxy
/// lives on loopback. A development server and `curl` on a node keep working.
struct MetricsAccess: Sendable {
    let token: String?
    let trustedProxies: TrustedProxies

    /// Headers any common proxy adds; their presence means the request is someone else's.
    static let forwardingHeaders: [HTTPField.Name] = [
        ClientAddressMiddleware.forwardedFor, HTTPField.Name("Forwarded")!, HTTPField.Name("X-Real-IP")!, HTTPField.Name("Via")!,
    ]  // safe: valid field name literals

    /// - Parameter bearer: the request's bearer token (``bearerToken(_:)``), if any.
    func check(bearer: String?, peer: String, forwarded: Bool) throws {
        if let token {
            guard let bearer, ConstantTime.equal(Array(bearer.utf8), Array(token.utf8)) else {
                throw VestnikError(.unauthenticated, "GET /metrics needs the metrics token: Authorization: Bearer <token>.")
            }
            return
        }
        let address = TrustedProxies.normalizedAddress(peer) ?? peer
        guard TrustedProxies.isLoopback(address), !forwarded, !trustedProxies.containsLoopback else {
            throw VestnikError(.forbidden, "Metrics are served to this host only; start the server with --metrics-token-file to scrape from elsewhere.")
        }
    }
}
