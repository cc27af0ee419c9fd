import Foundation
import Logging

/// Everything `vestnik serve` can be told, from flags or `VESTNIK_*` environment variables.
package struct ServerConfiguration: Sendable {
    package var host = "127.0.0.1"
    package var port = 8080
    /// Where the SQLite database (and later files) live.
    package var dataDirectory = "./vestnik-data"
    /// `postgres://user:password@host:port/database`; nil means the embedded SQLite store.
    package var databaseURL: String?
    /// Connections per node in the PostgreSQL pool.
    package var databasePoolSize = 16
    /// The accepted range of ``databasePoolSize``: a node's two listeners (log positions and
    /// cluster signals) each hold a pooled connection for good, so three is the least that leaves
    /// one for reads.
    package static let databasePoolSizeRange = 3...1000
    /// How often a node of a cluster tells the others it is alive; a node silent for three times
    /// as long counts as dead and its users as offline (tests shorten it).
    package var clusterHeartbeat: Duration = .seconds(5)
    /// The accepted range of ``clusterHeartbeat``, in seconds.
    package static let clusterHeartbeatRange = 0.1...60.0
    /// How long a PostgreSQL statement may go unanswered before the node treats the server as
    /// unreachable (a frozen server or a network that drops packets closes nothing).
    package var databaseAnswerTimeout: Duration = .seconds(15)
    /// The accepted range of ``databaseAnswerTimeout``, in seconds.
    package static let databaseAnswerTimeoutRange = 1...3600
    /// Threads that run the sockets (HTTP, streams, the pooled PostgreSQL connections; the
    /// PostgreSQL writer has a thread of its own); nil: NIO's `NIO_SINGLETON_GROUP_LOOP_COUNT`
    /// if set, else ``defaultEventLoops(cores:)``. `vestnik serve` sets it to the count in effect.
    package var eventLoops: Int?
    package var logLevel: Logger.Level = .info
    /// How long the event log keeps entries; clients further behind must resync.
    package var eventRetention: TimeInterval = 30 * 24 * 3600
    /// How often the fan-out looks for events written by other processes.
    package var foreignWritePollInterval: Duration = .milliseconds(500)
    /// Deliveries a stream may have queued before it is disconnected as too slow.
    package var streamBufferLimit = 8192
    /// How long a session (a login) stays valid.
    package var sessionLifetime: TimeInterval = 30 * 24 * 3600
    /// Login rate limits, counted in the store for every node together (decision 0017): this
    /// many failures per account (or attempts per address) at once, then one more every
    /// `loginWindow` divided by that count.
    package var loginFailuresPerAccount = 5
    /// Failed logins per client address; generous because many users may share one address (NAT).
    package var loginAttemptsPerAddress = 100
    package var loginWindow: TimeInterval = 300
    /// Cheap password hashing, for tests only.
    package var fastPasswordHashing = false
    package var allowedOrigins: [String] = []
    /// Reverse proxies (IP addresses) whose `X-Forwarded-For` names the client.
    package var trustedProxies: [String] = []
    /// A file holding the bearer token `GET /metrics` requires (without one: this host only).
    package var metricsTokenFile: String?
    /// The host name bots use in their `cts_url` (their JWT `aud`); default: `host`.
    package var botxHost: String?
    /// The key sealing bot secrets at rest; default `bot-secrets.key` in the data directory.
    /// Nodes of a PostgreSQL cluster (and the admin CLI) must share one.
    package var botKeyFile: String?
    /// Decoded bytes of inline files in one bot message.
    package var botInlineFileBytes = 1024 * 1024
    /// Concurrent deliveries to one bot.
    package var botConcurrency = 4
    /// Time limit of one request to a bot, in seconds.
    package var botRequestTimeout = 10
    /// First retry delay after a failed delivery, in seconds (doubles up to 5 minutes).
    package var botFirstRetry: TimeInterval = 1
    /// How long a claimed bot delivery stays with the node that claimed it (tests shorten it).
    package var botLease: TimeInterval = 60
    /// BotX calls one bot may make per minute on one node.
    package var botRequestsPerMinute = 1200
    /// Deliveries still not through after this long are given up (tests shorten it).
    package var botMaxAge: TimeInterval = 24 * 3600

    package init() {}

    /// What `--event-loops` and `VESTNIK_EVENT_LOOPS` accept.
    package static let eventLoopRange = 1...256

    /// Half the cores, at least one.
    ///
    /// Why not one per core, NIO's default: the event loops only move bytes; decoding, the store
    /// (SQLite's writer included) and the fan-out run on Swift's cooperative pool, which has a
    /// thread per core of its own. A loop per core puts two busy threads on every core, and the
    /// frames of one fan-out are split over all loops, each woken for its share. On this
    /// project's 2-core machine one loop instead of two took 6–15 % less server CPU per message
    /// in `vestnik-bench group` (17 of 18 alternated pairs, three sittings); throughput moved
    /// more between sittings than between the settings (decision 0015). Only two cores were
    /// measured; half of a larger machine is an extrapolation.
    package static func defaultEventLoops(cores: Int) -> Int { max(1, cores / 2) }

    /// The BotX host (JWT audience) in effect.
    package var effectiveBotXHost: String { botxHost ?? host }

    /// The bot secret key file in effect.
    package var effectiveBotKeyFile: String {
        botKeyFile ?? (dataDirectory as NSString).appendingPathComponent("bot-secrets.key")
    }

    /// Applies `VESTNIK_HOST`, `VESTNIK_PORT`, `VESTNIK_DATA_DIR`, `VESTNIK_DATABASE_URL`,
    /// `VESTNIK_DATABASE_POOL_SIZE`, `VESTNIK_DATABASE_ANSWER_TIMEOUT`, `VESTNIK_EVENT_LOOPS`, `VESTNIK_LOG_LEVEL`,
    /// `VESTNIK_ALLOWED_ORIGINS` and `VESTNIK_TRUSTED_PROXIES` (comma-separated), `VESTNIK_EVENT_RETENTION_DAYS`,
    /// `VESTNIK_BOTX_HOST`, `VESTNIK_BOT_KEY_FILE`, `VESTNIK_METRICS_TOKEN_FILE`, `VESTNIK_CLUSTER_HEARTBEAT_SECONDS`.
    package mutating func apply(environment: [String: String]) throws {
        if let host = environment["VESTNIK_HOST"] { self.host = host }
        if let raw = environment["VESTNIK_PORT"] {
            guard let port = Int(raw), (0...65535).contains(port) else { throw ConfigurationError("VESTNIK_PORT must be 0…65535") }
            self.port = port
        }
        if let dir = environment["VESTNIK_DATA_DIR"] { dataDirectory = dir }
        if let url = environment["VESTNIK_DATABASE_URL"], !url.isEmpty { databaseURL = url }
        if let raw = environment["VESTNIK_DATABASE_POOL_SIZE"] {
            guard let size = Int(raw), Self.databasePoolSizeRange.contains(size) else {
                throw ConfigurationError("VESTNIK_DATABASE_POOL_SIZE must be \(Self.databasePoolSizeRange.lowerBound)…\(Self.databasePoolSizeRange.upperBound)")
            }
            databasePoolSize = size
        }
        if let raw = environment["VESTNIK_DATABASE_ANSWER_TIMEOUT"] {
            guard let seconds = Int(raw), Self.databaseAnswerTimeoutRange.contains(seconds) else {
                throw ConfigurationError("VESTNIK_DATABASE_ANSWER_TIMEOUT must be 1…3600 seconds")
            }
            databaseAnswerTimeout = .seconds(seconds)
        }
        if let raw = environment["VESTNIK_EVENT_LOOPS"] {
            guard let loops = Int(raw), Self.eventLoopRange.contains(loops) else { throw ConfigurationError("VESTNIK_EVENT_LOOPS must be 1…256") }
            eventLoops = loops
        }
        if let raw = environment["VESTNIK_LOG_LEVEL"] {
            guard let level = Logger.Level(rawValue: raw.lowercased()) else {
                throw ConfigurationError("VESTNIK_LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = level
        }
        /// `a, b,,c` → `["a", "b", "c"]`.
        func list(_ raw: String) -> [String] {
            raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if let raw = environment["VESTNIK_ALLOWED_ORIGINS"] { allowedOrigins = list(raw) }
        if let raw = environment["VESTNIK_TRUSTED_PROXIES"] { trustedProxies = list(raw) }
        if let raw = environment["VESTNIK_METRICS_TOKEN_FILE"], !raw.isEmpty { metricsTokenFile = raw }
        if let raw = environment["VESTNIK_BOTX_HOST"], !raw.isEmpty { botxHost = raw }
        if let raw = environment["VESTNIK_BOT_KEY_FILE"], !raw.isEmpty { botKeyFile = raw }
        if let raw = environment["VESTNIK_CLUSTER_HEARTBEAT_SECONDS"] {
            guard let seconds = Double(raw), Self.clusterHeartbeatRange.contains(seconds) else {
                throw ConfigurationError("VESTNIK_CLUSTER_HEARTBEAT_SECONDS must be 0.1…60")
            }
            clusterHeartbeat = .milliseconds(Int(seconds * 1000))
        }
        if let raw = environment["VESTNIK_EVENT_RETENTION_DAYS"] {
            guard let days = Double(raw), days > 0 else { throw ConfigurationError("VESTNIK_EVENT_RETENTION_DAYS must be positive") }
            eventRetention = days * 24 * 3600
        }
    }

    /// The token in ``metricsTokenFile`` (surrounding whitespace removed), or nil if none is set.
    package func metricsToken() throws -> String? {
        guard let metricsTokenFile else { return nil }
        let raw: String
        do {
            raw = try String(contentsOfFile: metricsTokenFile, encoding: .utf8)
        } catch {
            throw ConfigurationError("cannot read the metrics token file \(metricsTokenFile): \(error.localizedDescription)")
        }
        let token = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        // token68 (RFC 7235), so that any client can send it in a header.
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=".utf8)
        guard (16...1024).contains(token.utf8.count), token.utf8.allSatisfy({ allowed.contains($0) }) else {
            throw ConfigurationError(
                "the metrics token in \(metricsTokenFile) must be 16–1024 characters of A–Z a–z 0–9 - . _ ~ + / = (use a random one, e.g. openssl rand -base64 32)")
        }
        return token
    }

    /// The SQLite database file inside the data directory.
    package var databasePath: String { (dataDirectory as NSString).appendingPathComponent("vestnik.sqlite") }
}

/// A configuration value that cannot be used.
package struct ConfigurationError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
