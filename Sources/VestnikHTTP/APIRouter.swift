import Foundation
import Hummingbird
import HummingbirdWebSocket
import VestnikAPI
import VestnikCore

/// Options of the HTTP edge.
package struct HTTPOptions: Sendable {
    /// Extra origins (besides the server's own) allowed to open the WebSocket stream.
    package var allowedOrigins: [String] = []
    /// The OpenAPI document served at `/api/v1/openapi.json`.
    package var openAPIDocument: Data?
    package var version: String = "dev"
    /// The browser client served at `/`; nil serves none.
    package var webAssets: WebAssets?
    /// The bearer token `GET /metrics` requires; without one, metrics are served to this host only.
    package var metricsToken: String?
    /// Reverse proxies whose `X-Forwarded-For` names the client (``TrustedProxies``).
    package var trustedProxies = TrustedProxies.none
    package init() {}
}

/// Builds the HTTP router: every endpoint of the client API plus health and metrics.
package func buildRouter(services: Services, metrics: ServerMetrics, options: HTTPOptions) -> Router<VestnikRequestContext> {
    let router = Router(context: VestnikRequestContext.self)
    router.add(middleware: SecurityHeadersMiddleware())
    router.add(middleware: ErrorMiddleware(metrics: metrics))
    if !options.trustedProxies.isEmpty { router.add(middleware: ClientAddressMiddleware(proxies: options.trustedProxies)) }
    HealthController(
        services: services, metrics: metrics, openAPIDocument: options.openAPIDocument, version: options.version,
        metricsAccess: MetricsAccess(token: options.metricsToken, trustedProxies: options.trustedProxies))
        .addRoutes(to: router)
    if let webAssets = options.webAssets { WebClientController(assets: webAssets).addRoutes(to: router) }

    let api = router.group("api/v1")
    AccountController(services: services).addPublicRoutes(to: api)
    let authenticated = api.add(middleware: AuthenticationMiddleware(sessions: services.sessions))
        .group(context: AuthenticatedRequestContext.self)
    AccountController(services: services).addRoutes(to: authenticated)
    ChatController(services: services).addRoutes(to: authenticated)
    MessageController(services: services, metrics: metrics).addRoutes(to: authenticated)
    EventController(services: services).addRoutes(to: authenticated)
    BotController(services: services).addRoutes(to: authenticated)
    // A plain GET of the stream (no upgrade) lands here.
    api.get("stream") { _, _ -> Response in
        throw VestnikError.invalid("This endpoint is a WebSocket: send an Upgrade request.")
    }
    return router
}

/// Builds the router that decides WebSocket upgrades.
package func buildWebSocketRouter(services: Services, metrics: ServerMetrics, options: HTTPOptions) -> Router<VestnikRequestContext> {
    let router = Router(context: VestnikRequestContext.self)
    StreamGateway(services: services, metrics: metrics, allowedOrigins: options.allowedOrigins).addRoutes(to: router)
    return router
}
