import ArgumentParser
import CMalloc
import Foundation
import Logging
import VestnikCore
import VestnikModel
import VestnikServer

/// Options shared by `serve` and `admin`: where the data lives.
struct DataOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Data directory (env VESTNIK_DATA_DIR, default ./vestnik-data).")
    var dataDirectory: String?
    @Option(help: "PostgreSQL URL postgres://user:password@host:port/db (env VESTNIK_DATABASE_URL); default: SQLite in the data directory.")
    var database: String?
    @Option(
        name: .customLong("bot-key-file"),
        help: "Key sealing bot secrets (env VESTNIK_BOT_KEY_FILE; default <data-dir>/bot-secrets.key; required with PostgreSQL).")
    var botKeyFile: String?

    func configuration() throws -> ServerConfiguration {
        // Everything the server writes (database, WAL, logs of SQLite) is for its owner only.
        umask(0o077)
        var configuration = ServerConfiguration()
        try configuration.apply(environment: ProcessInfo.processInfo.environment)
        if let dataDirectory { configuration.dataDirectory = dataDirectory }
        if let database { configuration.databaseURL = database }
        if let botKeyFile { configuration.botKeyFile = botKeyFile }
        return configuration
    }
}

/// `vestnik serve`
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the messenger server.")

    /// Lets glibc keep up to 32 MiB free at the top of each thread's heap instead of returning it
    /// to the kernel at once, and serve blocks below 4 MiB from the heaps (unless the operator set
    /// either through `GLIBC_TUNABLES`). glibc's heaps number up to 8 per core, so in the worst
    /// case each holds 32 MiB it no longer uses.
    ///
    /// Why: the server's tasks move between threads, so memory allocated on one thread's heap is
    /// often freed on another's, and glibc then gave the top of that heap back (`madvise`) only to
    /// fault it in again moments later. Under the `group` benchmark that was ~4,000 `madvise`
    /// calls per 4,000 messages, each flushing the other core's TLB; with this, 24 (issue 3).
    static func keepFreedHeapMemory() {
        #if os(Linux)
        if let tunables = ProcessInfo.processInfo.environment["GLIBC_TUNABLES"],
            tunables.contains("trim_threshold") || tunables.contains("mmap_threshold")
        {
            return
        }
        _ = mallopt(M_TRIM_THRESHOLD, 32 << 20)
        // Setting the trim threshold turns off glibc's adaptive mmap threshold, which would then
        // stay at 128 KiB: every larger block (a fan-out's frame list, a big query result) would
        // be mapped and unmapped each time. 4 MiB is fixed instead.
        _ = mallopt(M_MMAP_THRESHOLD, 4 << 20)
        #endif
    }

    @OptionGroup var data: DataOptions
    @Option(name: .customLong("database-pool-size"), help: "PostgreSQL connections per node, 3–1000 (default 16), besides the single writer's own (env VESTNIK_DATABASE_POOL_SIZE).") var poolSize: Int?
    @Option(
        name: .customLong("database-answer-timeout"),
        help: "Seconds a PostgreSQL statement may go unanswered before the node treats the server as unreachable (env VESTNIK_DATABASE_ANSWER_TIMEOUT, default 15).")
    var answerTimeout: Int?
    @Option(name: .customLong("event-loops"), help: "Threads that run the sockets (env VESTNIK_EVENT_LOOPS, default half the cores, at least 1).")
    var eventLoops: Int?
    @Option(help: "Address to listen on (env VESTNIK_HOST, default 127.0.0.1).") var host: String?
    @Option(help: "Port to listen on (env VESTNIK_PORT, default 8080).") var port: Int?
    @Option(name: .customLong("log-level"), help: "trace|debug|info|notice|warning|error (env VESTNIK_LOG_LEVEL).") var logLevel: String?
    @Option(name: .customLong("botx-host"), help: "Host name bots use in their cts_url, their JWT audience (env VESTNIK_BOTX_HOST, default --host).")
    var botxHost: String?
    @Option(name: .customLong("trusted-proxy"), help: "A reverse proxy's IP address or network (10.0.0.0/24) whose X-Forwarded-For names the client; repeatable (env VESTNIK_TRUSTED_PROXIES, comma-separated).")
    var trustedProxies: [String] = []
    @Option(name: .customLong("metrics-token-file"), help: "A file with the bearer token GET /metrics requires (env VESTNIK_METRICS_TOKEN_FILE); without one, metrics are served to this host only.")
    var metricsTokenFile: String?

    func run() async throws {
        Self.keepFreedHeapMemory()
        var configuration = try data.configuration()
        if !trustedProxies.isEmpty { configuration.trustedProxies = trustedProxies }
        if let metricsTokenFile { configuration.metricsTokenFile = metricsTokenFile }
        if let host { configuration.host = host }
        if let poolSize {
            let range = ServerConfiguration.databasePoolSizeRange
            guard range.contains(poolSize) else { throw ValidationError("--database-pool-size must be \(range.lowerBound)…\(range.upperBound)") }
            configuration.databasePoolSize = poolSize
        }
        if let answerTimeout {
            guard ServerConfiguration.databaseAnswerTimeoutRange.contains(answerTimeout) else {
                throw ValidationError("--database-answer-timeout must be 1…3600 seconds")
            }
            configuration.databaseAnswerTimeout = .seconds(answerTimeout)
        }
        if let eventLoops {
            guard ServerConfiguration.eventLoopRange.contains(eventLoops) else { throw ValidationError("--event-loops must be 1…256") }
            configuration.eventLoops = eventLoops
        }
        if let botxHost { configuration.botxHost = botxHost }
        if let port {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535") }
            configuration.port = port
        }
        if let logLevel {
            guard let level = Logger.Level(rawValue: logLevel.lowercased()) else { throw ValidationError("unknown log level \(logLevel)") }
            configuration.logLevel = level
        }
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        configuration.eventLoops = configuration.sizeProcessEventLoops(environment: ProcessInfo.processInfo.environment)
        let server = try await buildApplication(configuration: configuration)
        try await server.run()
    }
}

/// `vestnik admin …`
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "Administer the server through its data directory (works whether it runs or not).",
        subcommands: [AdminUserCommand.self, AdminSessionCommand.self, AdminBotCommand.self])
}

struct AdminUserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Manage user accounts.",
        subcommands: [Add.self, Import.self, List.self, Block.self, Unblock.self, ResetPassword.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user and print its one-time password.")
        @OptionGroup var data: DataOptions
        @Option(help: "Login (a–z, 0–9, . _ -).") var login: String
        @Option(help: "Display name.") var name: String
        @Option var email: String?
        @Option var department: String?
        @Option var position: String?
        @Flag(help: "Make the user a server administrator.") var admin = false
        @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input instead of generating one.")
        var passwordStdin = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let password = passwordStdin ? try readPasswordFromStdin() : nil
            let account = NewAccount(login: login, displayName: name, email: email, department: department, position: position, isAdmin: admin)
            let (user, secret) = try await reportingErrors {
                try await AdminConsole.with(configuration: data.configuration()) { try await $0.addUser(account, password: password) }
            }
            if json {
                printJSONLine(AdminUserOutput(user: user, password: password == nil ? secret : nil))
            } else {
                print("created \(user.login) (\(user.id))")
                if password == nil { print("one-time password: \(secret)") }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users.")
        @OptionGroup var data: DataOptions
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            let users = try await reportingErrors {
                try await AdminConsole.with(configuration: data.configuration()) { try await $0.listUsers() }
            }
            for user in users {
                if json {
                    printJSONLine(user)
                } else {
                    let flags = [user.isAdmin ? "admin" : nil, user.isBlocked ? "blocked" : nil].compactMap { $0 }
                    print("\(user.login)\t\(user.displayName)\t\(user.id)\(flags.isEmpty ? "" : "\t" + flags.joined(separator: ","))")
                }
            }
        }
    }

    struct Block: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Block a user and end all their sessions.")
        @OptionGroup var data: DataOptions
        @Argument(help: "Login or id.") var user: String

        func run() async throws {
            let user = self.user
            let updated = try await reportingErrors {
                try await AdminConsole.with(configuration: data.configuration()) { try await $0.setBlocked(true, loginOrID: user) }
            }
            print("blocked \(updated.login)")
        }
    }

    struct Unblock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unblock a user.")
        @OptionGroup var data: DataOptions
        @Argument(help: "Login or id.") var user: String

        func run() async throws {
            let user = self.user
            let updated = try await reportingErrors {
                try await AdminConsole.with(configuration: data.configuration()) { try await $0.setBlocked(false, loginOrID: user) }
            }
            print("unblocked \(updated.login)")
        }
    }

    struct ResetPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-password", abstract: "Set a new password (printed once) and end all sessions.")
        @OptionGroup var data: DataOptions
        @Argument(help: "Login or id.") var user: String
        @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input instead of generating one.")
        var passwordStdin = false

        func run() async throws {
            let password = passwordStdin ? try readPasswordFromStdin() : nil
            let user = self.user
            let (updated, secret) = try await reportingErrors {
                try await AdminConsole.with(configuration: data.configuration()) { try await $0.resetPassword(loginOrID: user, password: password) }
            }
            print("password reset for \(updated.login)")
            if password == nil { print("one-time password: \(secret)") }
        }
    }
}

struct AdminUserOutput: Encodable {
    var user: User
    var password: String?
}

/// Reads one line from standard input (for `--password-stdin`), without the newline.
func readPasswordFromStdin() throws -> String {
    guard let line = readLine(strippingNewline: true), !line.isEmpty else {
        throw ValidationError("no password on standard input")
    }
    return line
}

/// One JSON object on one line, in the Vestnik dialect.
func printJSONLine<T: Encodable>(_ value: T) {
    if let data = try? VestnikJSON.encode(value) {
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}
