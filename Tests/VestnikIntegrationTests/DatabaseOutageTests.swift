import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import VestnikAPI
import VestnikKit
import VestnikModel

/// Two nodes on a PostgreSQL server that stops and starts again (decision 0014): while it is
/// down, requests fail fast with `503 unavailable`; once it is back the nodes serve again within
/// moments, and live streams carry messages across nodes again.
///
/// The test runs its own PostgreSQL cluster: stopping the shared test server would break every
/// other suite running at the same time.
@Suite(
    .serialized, .timeLimit(.minutes(3)),
    .enabled(if: TestBackend.postgresServerURL != nil && PrivatePostgres.binDirectory != nil, "needs VESTNIK_TEST_BACKEND=postgres and PostgreSQL's programs")
)
struct DatabaseOutageTests {
    @Test("a PostgreSQL outage: requests fail fast with 503 unavailable, and the nodes serve again within seconds of its return")
    func outageAndRecovery() async throws {
        let postgres = try PrivatePostgres.create()
        defer { postgres.destroy() }
        let binary = try VestnikBinary.locate()
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-outage-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: data) }
        let backend = ["--database", postgres.url, "--bot-key-file", data + "/bot.key"]
        for login in ["alice", "bob"] {
            let added = try binary.run(
                ["admin", "user", "add", "--login", login, "--name", login, "--password-stdin", "--data-dir", data + "/admin"] + backend,
                stdin: "outage-pass-\(login)\n")
            #expect(added.status == 0, "\(added.error)")
        }
        let nodeA = try await binary.startServer(dataDirectory: data + "/a", arguments: backend)
        defer { nodeA.kill9() }
        let nodeB = try await binary.startServer(dataDirectory: data + "/b", arguments: backend)
        defer { nodeB.kill9() }
        let alice = VestnikClient(serverURL: nodeA.url, token: nil, configuration: .init(retry: .none))
        _ = try await alice.login(login: "alice", password: "outage-pass-alice", deviceName: "outage")
        let bob = VestnikClient(serverURL: nodeB.url, token: nil, configuration: .init(retry: .none))
        let bobUser = try await bob.login(login: "bob", password: "outage-pass-bob", deviceName: "outage").user
        let chat = try await alice.createGroup(title: "Outage", members: [bobUser.id]).chat
        let fastReconnect = RealtimeConfiguration(initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(200))
        let (bobEvents, bobTask) = EventCollector.start(bob.stream(configuration: fastReconnect))
        defer { bobTask.cancel() }
        #expect(await bobEvents.wait { await $0.readyCount == 1 })
        _ = try await alice.sendMessage(chatID: chat.id, text: "before", clientMessageID: "before")
        #expect(await bobEvents.wait { await $0.messagesCreated.contains { $0.text == "before" } }, "node B's client gets node A's message")

        try postgres.stop()
        // The first send after the stop fails as unavailable, not after PostgresNIO's 60 s, not
        // as 500 (at worst it waited in a pool being retired: its drain is bounded at 5 s).
        let started = ContinuousClock.now
        await Self.expectUnavailable { _ = try await alice.sendMessage(chatID: chat.id, text: "during", clientMessageID: "during") }
        #expect(ContinuousClock.now - started < .seconds(10), "failed fast, not after the pool's 60 s")
        // Once the nodes know (readiness says so), requests fail at once.
        for node in [nodeA, nodeB] {
            #expect(await waitUntil(timeout: .seconds(10)) { await Self.readiness(of: node.url) == 503 }, "\(node.url) reports not ready")
        }
        let known = ContinuousClock.now
        await Self.expectUnavailable { _ = try await bob.chats() }
        // So does a login.
        let carol = VestnikClient(serverURL: nodeA.url, token: nil, configuration: .init(retry: .none))
        await Self.expectUnavailable { _ = try await carol.login(login: "alice", password: "outage-pass-alice", deviceName: "outage") }
        await Self.expectUnavailable { _ = try await alice.sendMessage(chatID: chat.id, text: "during", clientMessageID: "during") }
        // Four requests, each of which would otherwise wait for a pooled connection that cannot
        // open. The bound is loose: under the whole suite in parallel they once took 2.4 s.
        #expect(ContinuousClock.now - known < .seconds(4), "answered at once while the database is known to be down")

        try postgres.start()
        let back = ContinuousClock.now
        let recovered = await waitUntil(timeout: .seconds(20)) {
            (try? await alice.sendMessage(chatID: chat.id, text: "after", clientMessageID: "after")) != nil
        }
        #expect(recovered, "node A accepts sends again")
        #expect(ContinuousClock.now - back < .seconds(10), "within seconds of the database's return")
        // Node B listens again: its client gets node A's message live, once.
        #expect(await bobEvents.wait(timeout: .seconds(20)) { await $0.messagesCreated.contains { $0.text == "after" } })
        try await Task.sleep(for: .seconds(1))  // room for a duplicate to show up
        let texts = await bobEvents.messagesCreated.map(\.text)
        #expect(texts == ["before", "after"], "each once, in order")
        // The failed sends left nothing behind, and node B serves reads again.
        #expect(await waitUntil(timeout: .seconds(10)) { (try? await bob.chats()) != nil })
        let stored = try await bob.history(chatID: chat.id).messages.map(\.text)
        #expect(stored.filter { $0 == "during" }.isEmpty && stored.contains("before") && stored.contains("after"), "\(stored)")
    }

    @Test("a PostgreSQL server that stops answering (frozen, or cut off by the network): requests fail with 503 after the answer timeout, not after TCP gives up, and are served again once it answers")
    func unansweringServer() async throws {
        let postgres = try PrivatePostgres.create()
        defer { postgres.destroy() }
        let binary = try VestnikBinary.locate()
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-frozen-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: data) }
        let answerTimeout = 2
        let backend = ["--database", postgres.url, "--bot-key-file", data + "/bot.key"]
        let added = try binary.run(
            ["admin", "user", "add", "--login", "alice", "--name", "alice", "--password-stdin", "--data-dir", data + "/admin"] + backend,
            stdin: "frozen-pass-alice\n")
        #expect(added.status == 0, "\(added.error)")
        let node = try await binary.startServer(
            dataDirectory: data + "/a", arguments: backend + ["--database-answer-timeout", "\(answerTimeout)"])
        defer { node.kill9() }
        // A client that would wait far longer than the server should.
        let alice = VestnikClient(serverURL: node.url, token: nil, configuration: .init(requestTimeout: .seconds(60), retry: .none))
        _ = try await alice.login(login: "alice", password: "frozen-pass-alice", deviceName: "frozen")
        let chat = try await alice.createGroup(title: "Frozen", members: []).chat
        _ = try await alice.sendMessage(chatID: chat.id, text: "before", clientMessageID: "before")

        try postgres.freeze()
        // Every connection stays open and nothing answers: only the node's own timeout ends the wait.
        let started = ContinuousClock.now
        await Self.expectUnavailable { _ = try await alice.sendMessage(chatID: chat.id, text: "during", clientMessageID: "during") }
        let waited = ContinuousClock.now - started
        #expect(waited >= .seconds(answerTimeout) - .milliseconds(100), "failed only once the answer timeout passed: \(waited)")
        #expect(waited < .seconds(answerTimeout + 6), "failed within the answer timeout and a sweep, not when TCP gives up: \(waited)")
        // The probe cannot connect either (its start-up gets no answer), so the node retires its
        // pools: it says it is not ready and fails what comes next at once.
        let nodeLog = { (try? String(contentsOf: node.log, encoding: .utf8)) ?? "" }
        #expect(
            await waitUntil(timeout: .seconds(15)) { nodeLog().contains("the PostgreSQL server is not reachable") },
            "the probe found the server not answering")
        let known = ContinuousClock.now
        #expect(await Self.readiness(of: node.url) == 503, "the node reports not ready")
        await Self.expectUnavailable { _ = try await alice.chats() }
        #expect(ContinuousClock.now - known < .seconds(3), "answered at once while the server is known not to answer")

        try postgres.thaw()
        let thawed = ContinuousClock.now
        #expect(await waitUntil(timeout: .seconds(20)) { (try? await alice.chats()) != nil }, "served again once the server answers")
        #expect(ContinuousClock.now - thawed < .seconds(10), "within seconds of the server answering again")
        // The refused send, retried with its key: stored once whatever the first attempt left.
        _ = try await alice.sendMessage(chatID: chat.id, text: "during", clientMessageID: "during")
        let stored = try await alice.history(chatID: chat.id).messages.map(\.text)
        #expect(stored.filter { $0 == "during" }.count == 1 && stored.contains("before"), "\(stored)")
        #expect(nodeLog().contains("PostgreSQL did not answer statements in time"), "the node logs why it closed connections")
    }

    /// Expects `request` to fail with `503 unavailable`.
    private static func expectUnavailable(_ request: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            try await request()
            Issue.record("a request succeeded while the database was down", sourceLocation: sourceLocation)
        } catch let error as VestnikClientError {
            #expect(error.status == 503 && error.code == "unavailable", "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error: \(error)", sourceLocation: sourceLocation)
        }
    }

    /// `GET /readyz`'s status, or 0 when the node does not answer.
    private static func readiness(of server: URL) async -> Int {
        guard let (_, response) = try? await URLSession.shared.data(from: server.appendingPathComponent("readyz")) else { return 0 }
        return (response as? HTTPURLResponse)?.statusCode ?? 0
    }
}

/// A PostgreSQL cluster of a test's own (Debian's `postgresql` package), which the test may stop
/// and start; as root, its programs run as the `postgres` user, as `scripts/test-postgres.sh` does.
struct PrivatePostgres {
    let directory: String
    let port: Int
    let binDirectory: String

    var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    /// Where `initdb` and `pg_ctl` are: `pg_config --bindir`, else the newest Debian version.
    static let binDirectory: String? = {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        let newest = versions.compactMap { Int($0) }.max()
        guard let newest else { return nil }
        let directory = "/usr/lib/postgresql/\(newest)/bin"
        return FileManager.default.isExecutableFile(atPath: directory + "/pg_ctl") ? directory : nil
    }()

    static func create() throws -> PrivatePostgres {
        guard let binDirectory else { throw Failure("PostgreSQL's programs were not found") }
        let directory = "/tmp/vestnik-outage-pg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 { try shell("chown postgres:postgres \(directory)") }
        let postgres = PrivatePostgres(directory: directory, port: try freePort(), binDirectory: binDirectory)
        try postgres.asOwner("\(binDirectory)/initdb -D \(directory)/data -U postgres --auth=trust -E UTF8 --no-sync > /dev/null")
        try postgres.start()
        return postgres
    }

    func start() throws {
        try asOwner(
            "\(binDirectory)/pg_ctl -D \(directory)/data -l \(directory)/log -w start -o '-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off' > /dev/null"
        )
    }

    func stop() throws {
        try asOwner("\(binDirectory)/pg_ctl -D \(directory)/data -m fast -w stop > /dev/null")
    }

    /// Stops every process of the cluster (SIGSTOP): connections stay open, new ones are accepted
    /// by the kernel, and nothing answers, as with a frozen server or a network that drops packets.
    func freeze() throws {
        let postmaster = try postmasterPID()
        try Self.shell("kill -STOP \(postmaster) && pkill -STOP -P \(postmaster)")
    }

    /// Lets a frozen cluster run again.
    func thaw() throws {
        let postmaster = try postmasterPID()
        try Self.shell("pkill -CONT -P \(postmaster); kill -CONT \(postmaster)")
    }

    /// The first line of `postmaster.pid`.
    private func postmasterPID() throws -> Int {
        let text = try String(contentsOfFile: "\(directory)/data/postmaster.pid", encoding: .utf8)
        guard let first = text.split(separator: "\n").first, let pid = Int(first) else { throw Failure("no PID in postmaster.pid") }
        return pid
    }

    func destroy() {
        // A frozen cluster would not act on pg_ctl's signal.
        try? thaw()
        _ = try? asOwner("\(binDirectory)/pg_ctl -D \(directory)/data -m immediate stop > /dev/null 2>&1")
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func asOwner(_ command: String) throws {
        if getuid() == 0 {
            try Self.shell("su postgres -s /bin/sh -c \"\(command)\"")
        } else {
            try Self.shell(command)
        }
    }

    /// Runs `command` with `/bin/sh` and waits for it. Spawned and reaped directly: Foundation's
    /// `Process.waitUntilExit()` hung here on a child that had already exited.
    private static func shell(_ command: String) throws {
        var pid: pid_t = 0
        let arguments = ["/bin/sh", "-c", command]
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, &argv, environ)
        guard spawned == 0 else { throw Failure("posix_spawn: \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw Failure("waitpid: errno \(errno)") }
        }
        // WIFEXITED && WEXITSTATUS == 0
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else { throw Failure("`\(command)` ended with status \(status)") }
    }

    /// A TCP port nothing listens on right now, below Linux's ephemeral range (32768 and up), so
    /// that no outgoing connection takes it while the server is stopped.
    private static func freePort() throws -> Int {
        for _ in 0..<50 {
            let port = Int.random(in: 20_000..<30_000)
            if try canBind(port) { return port }
        }
        throw Failure("no free port in 20000–29999")
    }

    private static func canBind(_ port: Int) throws -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw Failure("socket: errno \(errno)") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 }
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
