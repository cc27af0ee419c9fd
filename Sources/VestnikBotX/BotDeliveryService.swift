import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import VestnikCore
import VestnikModel

/// Tuning of server→bot delivery.
package struct BotDeliveryOptions: Sendable {
    /// Requests in flight to one bot; a slow bot cannot take more.
    package var perBotConcurrency = 4
    /// Requests in flight overall.
    package var totalConcurrency = 64
    /// One request's time limit (connect included): a hanging bot costs this, then a retry.
    package var requestTimeout: TimeAmount = .seconds(10)
    /// How often the outbox is read for jobs written elsewhere (other nodes, the admin CLI).
    package var poll: Duration = .milliseconds(250)
    /// A claimed job comes back after this long if its deliverer died (or was stopped mid-request):
    /// well above `requestTimeout`, so a live deliverer always finishes first.
    package var lease: TimeInterval = 60
    /// Retries back off exponentially from `firstRetry` to `maxRetry`.
    package var firstRetry: TimeInterval = 1
    package var maxRetry: TimeInterval = 300
    /// Jobs older than this are abandoned; callbacks sooner (pybotx stops waiting after 60 s).
    package var maxAge: TimeInterval = 24 * 3600
    package var callbackMaxAge: TimeInterval = 120
    /// How often command menus (`GET {url}/status`) are refreshed.
    package var menuRefresh: Duration = .seconds(300)

    package init() {}
}

/// Drains the bot outbox: POSTs commands, system events and callbacks to bots with a fresh JWT
/// each, retries with backoff, keeps per-bot concurrency bounded, and refreshes command menus.
///
/// Users never wait for this: their request committed the job and returned. Jobs are leased, so
/// a restart (or another node) picks up whatever was not delivered: at-least-once.
package struct BotDeliveryService: Service {
    let services: Services
    let host: String
    let options: BotDeliveryOptions
    let logger: Logger

    package init(services: Services, host: String, options: BotDeliveryOptions = BotDeliveryOptions(), logger: Logger) {
        self.services = services
        self.host = host
        self.options = options
        self.logger = logger
    }

    package func run() async throws {
        // The outbox table may not exist before this node's migration ran.
        await cancelWhenGracefulShutdown { await services.context.storeReady.wait() }
        guard !Task.isShuttingDownGracefully, !Task.isCancelled else { return }
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(5), read: options.requestTimeout))
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let deliverer = BotDeliverer(client: client, services: services, host: host, options: options, logger: logger)
        let inFlight = InFlight()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await refreshMenus(deliverer) }
            var waiting: [BotJobRecord] = []
            var lastClaim = ContinuousClock.now - options.poll
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                // Start what the per-bot and total limits allow, oldest first.
                var stillWaiting: [BotJobRecord] = []
                for job in waiting {
                    if inFlight.tryStart(job.botID, perBot: options.perBotConcurrency, total: options.totalConcurrency) {
                        group.addTask {
                            // Not started once cancelled: the store may already be closing.
                            if !Task.isCancelled { await deliverer.deliver(job) }
                            inFlight.finish(job.botID)
                            services.context.botOutbox.poke()
                        }
                    } else {
                        stillWaiting.append(job)
                    }
                }
                waiting = stillWaiting
                let now = ContinuousClock.now
                let poked = services.context.botOutbox.take()
                if Task.isCancelled || Task.isShuttingDownGracefully { break }
                if waiting.count < options.totalConcurrency, poked || now - lastClaim >= options.poll {
                    lastClaim = now
                    let busy = inFlight.busyBots(perBot: options.perBotConcurrency, waiting: waiting)
                    do {
                        let claimed = try await services.bots.claimJobs(
                            limit: options.totalConcurrency, perBot: options.perBotConcurrency, lease: options.lease, skipping: busy,
                            checkFirst: !poked)
                        waiting += claimed
                        if !claimed.isEmpty { continue }
                    } catch {
                        logger.backgroundFailure("bot outbox claim failed", error)
                    }
                }
                // Until a commit or a finished delivery pokes, or the poll for other writers is due.
                let pause = waiting.count < options.totalConcurrency ? lastClaim + options.poll - ContinuousClock.now : options.poll
                await cancelWhenGracefulShutdown { await services.context.botOutbox.wait(atMost: pause) }
            }
            if Task.isCancelled {
                group.cancelAll()
            } else {
                // Graceful shutdown: jobs claimed but not started go back to the queue now (not
                // after their lease, a minute later, on whichever node is still up), and the
                // requests in flight finish (each bounded by the request timeout), so their
                // outcome is recorded rather than retried after the lease.
                do {
                    try await services.bots.releaseJobs(waiting)
                } catch {
                    logger.backgroundFailure("bot outbox release failed", error)
                }
                await group.waitForAll()
            }
        }
        try? await client.shutdown()
    }

    /// Fetches every enabled bot's `/status` menu now and then. A bot this node has not asked yet
    /// (just registered, or the server just started) is asked within seconds; one that did not
    /// answer is asked again after 5 s, one that answered after `menuRefresh`.
    private func refreshMenus(_ deliverer: BotDeliverer) async {
        var due: [UserID: ContinuousClock.Instant] = [:]
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                for bot in try await services.bots.enabledBots() where due[bot.id].map({ $0 <= ContinuousClock.now }) ?? true {
                    if Task.isCancelled { return }
                    let answered = await deliverer.refreshMenu(of: bot.id)
                    due[bot.id] = ContinuousClock.now + (answered ? options.menuRefresh : .seconds(5))
                }
            } catch {
                logger.backgroundFailure("bot menu refresh failed", error)
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            } catch {
                return
            }
        }
    }
}

/// Requests in flight, per bot and in total.
final class InFlight: Sendable {
    private let counts = Mutex<[UserID: Int]>([:])

    func tryStart(_ bot: UserID, perBot: Int, total: Int) -> Bool {
        counts.withLock { counts in
            guard counts[bot, default: 0] < perBot, counts.values.reduce(0, +) < total else { return false }
            counts[bot, default: 0] += 1
            return true
        }
    }

    func finish(_ bot: UserID) {
        counts.withLock { counts in
            counts[bot, default: 1] -= 1
            if counts[bot] == 0 { counts[bot] = nil }
        }
    }

    /// Bots that already have enough work (in flight plus waiting locally): not claimed for now.
    func busyBots(perBot: Int, waiting: [BotJobRecord]) -> [UserID] {
        var load = counts.withLock { $0 }
        for job in waiting { load[job.botID, default: 0] += 1 }
        return load.filter { $0.value >= perBot }.map(\.key)
    }
}

/// One delivery: the wire payload, the HTTP request, and what its outcome means for the job.
struct BotDeliverer: Sendable {
    let client: HTTPClient
    let services: Services
    let host: String
    let options: BotDeliveryOptions
    let logger: Logger

    /// Delivers one job and records the outcome (decision 0004, "Delivery outcomes"):
    ///
    /// | answer | meaning | job |
    /// |---|---|---|
    /// | 2xx | delivered | deleted |
    /// | 400, 413, 422, other 4xx | the bot refuses this payload | deleted (retrying cannot help) |
    /// | 3xx, 401, 403, 404, 405, 503 `bot_disabled` | misconfiguration (URL, secret, host, bot id) | retried with backoff; status `misconfigured: …` |
    /// | 408, 429, other 5xx, timeouts, refused | transient | retried with backoff, `Retry-After` honoured |
    ///
    /// Every job is given up once older than the deadline (24 h; callbacks 2 min), whatever kept
    /// it from going out — an unusable endpoint included.
    func deliver(_ job: BotJobRecord) async {
        let age = Date().timeIntervalSince(job.createdAt)
        do {
            if age > (job.job.kind == .callback ? options.callbackMaxAge : options.maxAge) {
                logger.warning("bot delivery abandoned", metadata: ["vestnik.bot.id": "\(job.botID)", "vestnik.bot.attempts": "\(job.attempts)"])
                return try await services.bots.finish(job, retryAt: nil, status: "gave up after \(job.attempts) attempts")
            }
            let endpoint: (url: String, secret: String, record: BotRecord)
            do {
                guard let found = try await services.bots.endpoint(of: job.botID) else {
                    // Disabled or removed: nothing will ever take this job.
                    return try await services.bots.finish(job, retryAt: nil, status: "disabled")
                }
                endpoint = found
            } catch let unusable as BotEndpointUnusable {
                logger.warning("bot endpoint unusable", metadata: ["vestnik.bot.id": "\(job.botID)", "vestnik.bot.status": "\(unusable.reason)"])
                return try await services.bots.finish(job, retryAt: retryTime(after: job.attempts), status: unusable.reason)
            }
            let path: String
            let payload: JSONValue
            if job.job.kind == .callback, let callback = job.job.callback {
                path = "/notification/callback"
                payload = BotXPayloads.callback(callback)
            } else if let command = BotXPayloads.command(for: job, host: host) {
                path = "/command"
                payload = command
            } else {
                return try await services.bots.finish(job, retryAt: nil, status: "invalid job")
            }
            let outcome = await post(payload, to: endpoint.url + path, bot: job.botID, secret: endpoint.secret)
            // Cancelled mid-request (shutdown): leave the job leased; it comes back after the lease.
            if Task.isCancelled { return }
            switch outcome {
            case .delivered:
                try await services.bots.finish(job, retryAt: nil, status: "ok")
            case .rejected(let status):
                logger.notice("bot rejected a delivery", metadata: ["vestnik.bot.id": "\(job.botID)", "vestnik.http.status": "\(status)"])
                try await services.bots.finish(job, retryAt: nil, status: "rejected: http \(status)")
            case .misconfigured(let why):
                logger.warning("bot endpoint misconfigured", metadata: ["vestnik.bot.id": "\(job.botID)", "vestnik.bot.status": "\(why)"])
                try await services.bots.finish(job, retryAt: retryTime(after: job.attempts), status: "misconfigured: " + why)
            case .failed(let why, let retryAfter):
                try await services.bots.finish(job, retryAt: retryTime(after: job.attempts, retryAfter: retryAfter), status: why)
            }
        } catch {
            // The store failed: the lease brings the job back.
            logger.backgroundFailure("bot delivery bookkeeping failed", error)
        }
    }

    /// When to try again: exponential backoff with jitter, or the bot's own `Retry-After` when it
    /// gave one (never sooner than it asked; capped at an hour so a bogus value cannot park a job
    /// past its deadline unnoticed).
    func retryTime(after attempts: Int, retryAfter: TimeInterval? = nil, now: Date = Date()) -> Date {
        if let retryAfter { return now.addingTimeInterval(min(max(retryAfter, options.firstRetry), 3600)) }
        let delay = min(options.maxRetry, options.firstRetry * pow(2, Double(min(attempts, 20))))
        return now.addingTimeInterval(delay + delay * Double.random(in: 0...0.2))
    }

    enum Outcome: Equatable {
        case delivered
        /// The bot refuses this payload; retrying cannot help.
        case rejected(Int)
        /// The bot's URL, secret, host or id is wrong: retried (an operator can fix it) and shown.
        case misconfigured(String)
        /// Unreachable, timed out, overloaded: retry later (after `retryAfter` seconds if given).
        case failed(String, retryAfter: TimeInterval?)
    }

    /// What an HTTP answer from a bot means for the delivery (the table on ``deliver(_:)``).
    static func outcome(status: Int, retryAfter: String?, body: Data) -> Outcome {
        switch status {
        case 200..<300:
            return .delivered
        case 300..<400:
            // Redirects are not followed (the JWT must not travel elsewhere), and not success.
            return .misconfigured("http \(status) (redirect)")
        case 401, 403, 404, 405:
            return .misconfigured("http \(status)")
        case 408, 429:
            return .failed("http \(status)", retryAfter: retryAfter.flatMap(parseRetryAfter))
        case 400..<500:
            return .rejected(status)
        case 503 where reason(of: body) == "bot_disabled":
            // pybotx answers this for an unknown bot id or a payload it cannot validate; either
            // way an operator has to look.
            return .misconfigured("http 503 bot_disabled")
        default:
            return .failed("http \(status)", retryAfter: retryAfter.flatMap(parseRetryAfter))
        }
    }

    /// `Retry-After` in seconds (the HTTP-date form is not used by bots and is ignored).
    static func parseRetryAfter(_ raw: String) -> TimeInterval? {
        guard let seconds = Int(raw.trimmingCharacters(in: .whitespaces)), seconds >= 0 else { return nil }
        return TimeInterval(seconds)
    }

    private struct ErrorBody: Decodable { var reason: String? }

    private static func reason(of body: Data) -> String? {
        try? VestnikJSON.decode(ErrorBody.self, from: body).reason
    }

    func post(_ payload: JSONValue, to url: String, bot: UserID, secret: String) async -> Outcome {
        do {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Authorization", value: "Bearer " + BotXToken.mintForBot(bot: bot, audience: host, secret: secret))
            request.body = .bytes(ByteBuffer(bytes: try VestnikJSON.encode(payload)))
            let response = try await client.execute(request, timeout: options.requestTimeout)
            let body = (try? await response.body.collect(upTo: 64 * 1024)).map { Data(buffer: $0) } ?? Data()
            return Self.outcome(status: Int(response.status.code), retryAfter: response.headers.first(name: "Retry-After"), body: body)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return .failed("timeout", retryAfter: nil)
        } catch {
            return .failed("unreachable", retryAfter: nil)
        }
    }

    /// `GET {url}/status`: the bot's command menu. True when the bot answered.
    @discardableResult
    func refreshMenu(of bot: UserID) async -> Bool {
        do {
            guard let endpoint = try await services.bots.endpoint(of: bot) else { return false }
            var components = URLComponents(string: endpoint.url + "/status")
            components?.queryItems = [
                URLQueryItem(name: "bot_id", value: bot.description), URLQueryItem(name: "user_huid", value: bot.description),
                URLQueryItem(name: "ad_login", value: ""), URLQueryItem(name: "ad_domain", value: ""), URLQueryItem(name: "is_admin", value: ""),
                URLQueryItem(name: "chat_type", value: "chat"),
            ]
            guard let url = components?.string else { return false }
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Authorization", value: "Bearer " + BotXToken.mintForBot(bot: bot, audience: host, secret: endpoint.secret))
            let status: String
            var commands = endpoint.record.commands
            do {
                let response = try await client.execute(request, timeout: options.requestTimeout)
                let body = try await response.body.collect(upTo: 256 * 1024)
                if response.status.code == 200 {
                    commands = try VestnikJSON.decode(StatusResponse.self, from: Data(buffer: body)).result.commands
                    status = "ok"
                } else {
                    status = "status: http \(response.status.code)"
                }
            } catch {
                status = "unreachable"
            }
            try await services.bots.setCommands(commands, status: status, of: bot)
            return status == "ok"
        } catch is BotEndpointUnusable {
            // Reported by the deliveries (the bot's status); nothing to ask.
            return false
        } catch {
            logger.backgroundFailure("bot menu refresh failed", error, metadata: ["vestnik.bot.id": "\(bot)"])
            return false
        }
    }

    struct StatusResponse: Decodable {
        struct Result: Decodable { var commands: [BotCommand] }
        var result: Result
    }
}
