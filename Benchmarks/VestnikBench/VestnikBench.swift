import ArgumentParser
import Foundation
import VestnikKit

/// `vestnik-bench`: load scenarios against a Vestnik server, printing a table and writing JSON.
/// Build in release: `swift build -c release --product vestnik-bench`.
@main
struct VestnikBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vestnik-bench", abstract: "Measure a Vestnik server (starts one itself unless --server is given).")

    @Argument(help: "Scenarios to run: group, channel, catchup, idle, cluster, login, codec, jitter, disksync (default: group catchup).") var scenarios: [String] = ["group", "catchup"]
    @Option(help: "An already running server (its --data-dir is then required to create users).") var server: String?
    @Option(name: .customLong("data-dir"), help: "Data directory of --server.") var dataDirectory: String?
    @Option(name: .customLong("vestnik-bin"), help: "The vestnik executable (default: next to this one).") var vestnikBinary: String?
    @Option(help: "Extra arguments for the started server, e.g. \"--database postgres://…\".") var serverArguments: String = ""
    @Option(help: "Users in the group.") var users = 20
    @Option(help: "Messages in the group scenario.") var messages = 2000
    @Option(help: "Messages in flight at once.") var inflight = 10
    @Option(help: "Group chats the group and cluster scenarios send to, round-robin (every user is in each).") var chats = 1
    @Option(help: "Fixed send rate in msg/s (default: as fast as acknowledgements allow).") var rate: Double?
    @Option(help: "Messages missed before the catch-up.") var missed = 10_000
    @Option(help: "Logins, one after another (login scenario).") var logins = 40
    @Option(help: "Write the results as JSON to this file.") var json: String?
    @Option(name: .customLong("per-message-csv"), help: "Write each measured group message's ack and first/last seen times to this CSV file.")
    var perMessageCSV: String?
    @Option(help: "Label for the backend column.") var backend = "sqlite"
    @Option(help: "Idle stream connections (idle scenario).") var connections = 15_000
    @Option(help: "Connections per worker process (each process may hold at most 20,000 files).") var perWorker = 5000
    @Option(name: .customLong("send-over"), help: "How group senders send: stream (send frames on their open stream, answered by ack frames) or http (a POST per message).")
    var sendOver: SendPath = .stream
    @Flag(help: "Group receivers decode every event through VestnikKit's stream instead of scanning raw frames.") var sdkReceivers = false
    @Option(help: "Connected members of the channel (channel scenario).") var members = 5000
    @Option(help: "Posts to the channel, a second apart (channel scenario).") var posts = 10
    @Option(help: "Operations per measurement (codec scenario).") var iterations = 20_000
    @Option(help: "Runs of the fixed work or syncs, 200 ms apart (jitter and disksync scenarios).") var samples = 300

    func run() async throws {
        if scenarios.first == "idle-worker" {
            guard let server else { throw ValidationError("idle-worker needs --server") }
            return try await runIdleWorker(server: server, connections: connections)
        }
        if scenarios.first == "channel-worker" {
            guard let server else { throw ValidationError("channel-worker needs --server") }
            return try await runChannelWorker(server: server, posts: messages)
        }
        let binary = URL(fileURLWithPath: vestnikBinary ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vestnik").path)
        var results: [ScenarioResult] = []
        for scenario in scenarios {
            if scenario == "codec" || scenario == "jitter" || scenario == "disksync" {
                // In-process: no server.
                let result: ScenarioResult
                switch scenario {
                case "codec": result = try runCodec(iterations: iterations)
                case "jitter": result = try await runJitter(samples: samples, period: .milliseconds(200))
                default: result = try await runDiskSync(samples: samples, period: .milliseconds(200))
                }
                result.printTable()
                results.append(result)
                continue
            }
            let target: ServerUnderTest
            if let server {
                guard let dataDirectory else { throw ValidationError("--data-dir is required with --server") }
                guard let url = URL(string: server) else { throw ValidationError("--server is not a URL") }
                target = ServerUnderTest(url: url, dataDirectory: dataDirectory, binary: binary, process: nil)
            } else {
                target = try await ServerUnderTest.start(binary: binary, extraArguments: serverArguments.split(separator: " ").map(String.init))
            }
            defer { target.stop() }
            let result: ScenarioResult
            switch scenario {
            case "group": result = try await runGroup(servers: [target], backend: backend, users: users, messages: messages, inflight: inflight, rate: rate, sdkReceivers: sdkReceivers, sendOver: sendOver, perMessageCSV: perMessageCSV, chats: chats)
            case "cluster":
                // Two more nodes on the same database (the first one migrated it).
                var extra = serverArguments.split(separator: " ").map(String.init)
                // Every node must use the first node's bot key file.
                if !extra.contains("--bot-key-file"), let key = target.storeArguments.firstIndex(of: "--bot-key-file") {
                    extra += Array(target.storeArguments[key...].prefix(2))
                }
                guard extra.contains("--database") else { throw ValidationError("cluster needs --server-arguments=--database postgres://…") }
                var nodes = [target]
                for _ in 0..<2 { nodes.append(try await ServerUnderTest.start(binary: binary, extraArguments: extra)) }
                defer { nodes.dropFirst().forEach { $0.stop() } }
                result = try await runGroup(servers: nodes, scenario: "cluster", backend: backend, users: users, messages: messages, inflight: inflight, rate: rate, sdkReceivers: sdkReceivers, sendOver: sendOver, perMessageCSV: perMessageCSV, chats: chats)
            case "channel":
                let bench = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
                result = try await runChannel(server: target, backend: backend, members: members, posts: posts, perWorker: perWorker, bench: bench)
            case "catchup": result = try await runCatchUp(server: target, backend: backend, missed: missed)
            case "login": result = try await runLogin(server: target, backend: backend, logins: logins)
            case "idle":
                let bench = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
                result = try await runIdle(server: target, backend: backend, connections: connections, perWorker: perWorker, bench: bench)
            default: throw ValidationError("unknown scenario \(scenario)")
            }
            result.printTable()
            results.append(result)
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(results).write(to: URL(fileURLWithPath: json))
        }
    }
}

extension SendPath: ExpressibleByArgument {}
