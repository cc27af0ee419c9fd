import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import ServiceLifecycle
import Synchronization
import VestnikAPI
import VestnikBotX
import VestnikCore
import VestnikHTTP

/// The version string reported by `/healthz`.
package let vestnikVersion = "0.1.0"

/// A built server: the runnable application and the services behind it (tests use both).
package struct VestnikServerApp: Sendable {
    package let application: any ApplicationProtocol
    package let background: [any Service]
    package let fanOut: any Service
    package let services: Services
    package let metrics: ServerMetrics
    package let logger: Logger
    /// "sqlite" or "postgres".
    package let storeKind: String

    /// Runs until SIGTERM/SIGINT (or cancellation), then shuts down gracefully.
    ///
    /// Services stop in reverse order, so the fan-out (last) stops first and ends every open
    /// stream; then the HTTP server drains; then housekeeping stops.
    package func run(handleSignals: Bool = true) async throws {
        try await serviceGroup(handleSignals: handleSignals).run()
    }

    /// The services as one group, for a caller that stops it itself
    /// (`triggerGracefulShutdown()`) rather than by signal or by cancelling its task: tests
    /// start and stop servers by the hundred, and cancelling the task that serves a Hummingbird
    /// application while a connection is being accepted traps in NIO (swift-nio#2813).
    package func serviceGroup(handleSignals: Bool) -> ServiceGroup {
        ServiceGroup(
            configuration: .init(
                services: (background + [application, fanOut]).map { LoggedService($0, logger: logger) },
                gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
                logger: logger))
    }
}

/// A service that says when it stopped, so that a shutdown that does not finish names what it
/// still waits for (`--log-level debug`).
struct LoggedService: Service, CustomStringConvertible {
    let service: any Service
    let name: String
    let logger: Logger

    init(_ service: any Service, logger: Logger) {
        self.service = service
        // The type's name, without the values a struct's description would list.
        self.name = String(String(describing: type(of: service)).prefix { $0 != "<" })
        self.logger = logger
    }

    /// What ServiceGroup's own log lines call it.
    var description: String { name }

    func run() async throws {
        defer { logger.debug("service stopped", metadata: ["vestnik.service": "\(name)"]) }
        try await service.run()
    }
}

/// Connections the kernel may hold for the server before it accepts them (capped by
/// `net.core.somaxconn`, 4096 on current Linux).
///
/// Why not Hummingbird's 256: when a node stops, every client it held reconnects to the others
/// within a second or two, and a reconnecting office arrives the same way after a network blip.
/// Connects beyond the queue are dropped and retried with growing pauses. Measured with the `idle`
/// benchmark (15,000 streams opened at once, two runs each): with 256, 775 and 911 connects failed
/// and were retried and all were open after 32 and 62 s (`TcpExtListenOverflows` +65,000 and
/// +69,000); with 4096, 0 and 61 retries, open after 11 and 12 s (+26,000 and +37,000).
let listenBacklog = 4096

/// The composition root: opens the store, builds the services, the routers and the background
/// services, in that order.
///
/// - Parameter onListening: called with the bound port once the server accepts connections
///   (tests start on port 0).
package func buildApplication(
    configuration: ServerConfiguration, logger: Logger? = nil, onListening: (@Sendable (Int) async -> Void)? = nil
) async throws -> VestnikServerApp {
    guard let proxies = TrustedProxies(configuration.trustedProxies) else {
        throw ConfigurationError(
            "--trusted-proxy takes IP addresses and networks (10.0.0.5, 10.0.0.0/24, fd00::/64; no bits set after the prefix, as in 10.0.0.1/24, and no /0); refused: "
                + TrustedProxies.invalidEntries(configuration.trustedProxies).map { "\"\($0)\"" }.joined(separator: ", "))
    }
    let metricsToken = try configuration.metricsToken()
    var configuredLogger = logger ?? Logger(label: "vestnik")
    configuredLogger.logLevel = configuration.logLevel
    let logger = configuredLogger
    let opened = try Backend.openStore(configuration, logger: logger)
    let store = opened.store
    let services = try await Backend.makeServices(store: store, configuration: configuration, logger: logger, relay: opened.relay)
    let metrics = ServerMetrics(writeStatistics: { store.writeStatistics })

    var options = HTTPOptions()
    options.allowedOrigins = configuration.allowedOrigins
    options.trustedProxies = proxies
    options.metricsToken = metricsToken
    options.openAPIDocument = OpenAPIDocument.data
    options.version = vestnikVersion
    options.webAssets = WebClientBundle.assets
    let router = buildRouter(services: services, metrics: metrics, options: options)
    BotXController<VestnikRequestContext>(
        services: services, options: {
            var botx = BotXOptions(host: configuration.effectiveBotXHost)
            botx.maxInlineFileBytes = configuration.botInlineFileBytes
            botx.requestsPerMinute = configuration.botRequestsPerMinute
            botx.maxBodyBytes = max(botx.maxBodyBytes, configuration.botInlineFileBytes * 2)
            return botx
        }()
    ).addRoutes(to: router)
    var delivery = BotDeliveryOptions()
    delivery.perBotConcurrency = configuration.botConcurrency
    delivery.requestTimeout = .seconds(Int64(configuration.botRequestTimeout))
    delivery.firstRetry = configuration.botFirstRetry
    delivery.lease = configuration.botLease
    delivery.maxAge = configuration.botMaxAge
    let webSocketRouter = buildWebSocketRouter(services: services, metrics: metrics, options: options)

    var application = Application(
        router: router,
        server: .http1WebSocketUpgrade(
            webSocketRouter: webSocketRouter,
            // Keep-alive pings come from the stream gateway, one timer per event loop
            // (`EventLoopWriteQueue.defaultKeepAliveInterval`), not a task per connection.
            configuration: .init(ws: .init(maxFrameSize: APILimits.maxStreamFrameBytes, autoPing: .disabled))),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "Vestnik", backlog: listenBacklog),
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? 0
            var metadata: Logger.Metadata = ["vestnik.address": "\(configuration.host):\(port)"]
            if let loops = configuration.eventLoops { metadata["vestnik.event_loops"] = "\(loops)" }
            logger.notice("listening", metadata: metadata)
            await onListening?(port)
        },
        logger: logger
    )
    application.beforeServerStarts {
        try await opened.prepare()
        try await services.bots.adoptServerKey()
        let head = try await store.headSeq()
        await services.context.hub.start(after: head)
        services.context.storeReady.open()
    }
    return VestnikServerApp(
        application: application,
        background: opened.services + [RetentionService(services: services, retention: configuration.eventRetention, logger: logger)]
            + (opened.relay.map { [RelayService(relay: $0, services: services, heartbeat: configuration.clusterHeartbeat, logger: logger)] } ?? [])
            + [
                BotDeliveryService(services: services, host: configuration.effectiveBotXHost, options: delivery, logger: logger),
                StealthExpiryService(services: services, logger: logger),
            ],
        fanOut: FanOutService(hub: services.context.hub, interval: configuration.foreignWritePollInterval, listen: opened.listen, logger: logger),
        services: services, metrics: metrics, logger: logger, storeKind: opened.kind)
}
