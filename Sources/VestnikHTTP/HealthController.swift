import Foundation
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

    /// GET /metrics — Prometheus text format.
    @Sendable func prometheus(_ request: Request, context: VestnikRequestContext) async throws -> Response {
        Response(
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
