import Foundation
import NIOCore
import Testing
import VestnikKit
import VestnikServer

/// The `vestnik` command line against a running `vestnik serve`, both as child processes: the
/// two-terminal scenario (`vestnik tail` in one, `vestnik send` in another).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct CLITests {
    @Test("login, create a group, send, tail, history, read — all through the CLI")
    func twoTerminals() async throws {
        let binary = try VestnikBinary.locate()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-cli-\(UUID().uuidString)").path
        let data = root + "/data"
        let backend = try await TestBackend.serverArguments()
        for login in ["alice", "bob"] {
            let added = try binary.run(
                ["admin", "user", "add", "--login", login, "--name", login.capitalized + " Test", "--password-stdin", "--data-dir", data] + backend,
                stdin: "cli-password-\(login)\n")
            #expect(added.status == 0, "\(added.error)")
        }
        let listed = try binary.run(["admin", "user", "list", "--json", "--data-dir", data] + backend)
        #expect(listed.output.split(separator: "\n").count == 2)

        let server = try await binary.startServer(dataDirectory: data, arguments: backend)
        defer { server.kill9() }
        let alice = ["VESTNIK_CONFIG_DIR": root + "/alice"]
        let bob = ["VESTNIK_CONFIG_DIR": root + "/bob"]
        for (login, env) in [("alice", alice), ("bob", bob)] {
            let result = try binary.run(
                ["login", "--server", server.url.absoluteString, "--login", login, "--password-stdin"], stdin: "cli-password-\(login)\n",
                environment: env)
            #expect(result.status == 0, "\(result.error)")
        }
        let credentials = root + "/alice/credentials.json"
        let permissions = try FileManager.default.attributesOfItem(atPath: credentials)[.posixPermissions] as? Int
        #expect(permissions == 0o600)
        #expect(try binary.run(["whoami"], environment: alice).output.contains("alice"))

        let created = try binary.run(["chat", "create", "--group", "Team", "--members", "bob"], environment: alice)
        #expect(created.status == 0, "\(created.error)")

        // Terminal 1: bob tails as JSON lines.
        let tailOutput = root + "/bob-tail.jsonl"
        _ = FileManager.default.createFile(atPath: tailOutput, contents: nil)
        let tail = Process()
        tail.executableURL = binary.url
        tail.arguments = ["tail", "--json"]
        tail.environment = ProcessInfo.processInfo.environment.merging(bob) { $1 }
        tail.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: tailOutput))
        tail.standardError = FileHandle.nullDevice
        try tail.run()
        defer { tail.terminate() }
        try await Task.sleep(for: .milliseconds(700))

        // Terminal 2: alice sends.
        let sent = try binary.run(["send", "Team", "hello from the command line"], environment: alice)
        #expect(sent.status == 0, "\(sent.error)")
        let arrived = await waitUntil(timeout: .seconds(15)) {
            ((try? String(contentsOfFile: tailOutput, encoding: .utf8)) ?? "").contains("hello from the command line")
        }
        #expect(arrived)
        let lines = ((try? String(contentsOfFile: tailOutput, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil }, "tail --json prints one JSON object per line")

        let history = try binary.run(["history", "Team", "--json"], environment: bob)
        #expect(history.status == 0)
        #expect(history.output.contains("hello from the command line"))
        #expect(try binary.run(["read", "Team"], environment: bob).status == 0)
        let chats = try binary.run(["chats", "--json"], environment: bob)
        let team = chats.output.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .first { ($0["chat"] as? [String: Any])?["title"] as? String == "Team" }
        #expect(team?["unread_count"] as? Int == 0)

        // Errors are clear and non-zero.
        let missing = try binary.run(["send", "No such chat", "x"], environment: alice)
        #expect(missing.status != 0)
        #expect(missing.error.contains("error"))
        let channelPost = try binary.run(["chat", "create", "--channel", "News", "--members", "bob"], environment: alice)
        #expect(channelPost.status == 0)
        let forbidden = try binary.run(["send", "News", "bob cannot post here"], environment: bob)
        #expect(forbidden.status != 0)
        #expect(forbidden.error.contains("channel_read_only"))
    }

    @Test("admin user import creates accounts all-or-none; admin session issue gives working tokens")
    func importAndIssue() async throws {
        let binary = try VestnikBinary.locate()
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-import-\(UUID().uuidString)").path
        let backend = try await TestBackend.serverArguments()
        let lines = (0..<50).map { #"{"login":"staff\#($0)","name":"Сотрудник \#($0)","department":"ИТ"}"# }.joined(separator: "\n")
        let imported = try binary.run(["admin", "user", "import", "--data-dir", data] + backend, stdin: lines + "\n")
        #expect(imported.status == 0, "\(imported.error)")
        #expect(imported.output.contains("imported 50 accounts"))
        // A clean run warns about nothing (on PostgreSQL it used to: a lease before the pool ran).
        #expect(!imported.error.contains(" warning "), "\(imported.error)")

        // One bad line (a taken login) imports nothing; a malformed line is refused before any work.
        let clash = try binary.run(
            ["admin", "user", "import", "--data-dir", data] + backend, stdin: #"{"login":"fresh","name":"F"}"# + "\n" + #"{"login":"staff3","name":"X"}"# + "\n")
        #expect(clash.status != 0)
        #expect(clash.error.contains("login_taken"))
        let malformed = try binary.run(["admin", "user", "import", "--data-dir", data] + backend, stdin: "not json\n")
        #expect(malformed.status != 0)
        let listed = try binary.run(["admin", "user", "list", "--data-dir", data] + backend)
        #expect(listed.output.split(separator: "\n").count == 50)
        #expect(!listed.output.contains("fresh"))

        let issued = try binary.run(["admin", "session", "issue", "--stdin", "--device", "kiosk", "--data-dir", data] + backend, stdin: "staff1\nstaff2\n")
        #expect(issued.status == 0, "\(issued.error)")
        let tokens = issued.output.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        #expect(tokens.map(\.first) == ["staff1", "staff2"])
        let unknown = try binary.run(["admin", "session", "issue", "nobody", "--data-dir", data] + backend)
        #expect(unknown.status != 0)
        #expect(unknown.error.contains("user_not_found"))

        let server = try await binary.startServer(dataDirectory: data, arguments: backend)
        defer { server.kill9() }
        let token = try #require(tokens.first?.last)
        let client = VestnikClient(serverURL: server.url, token: token)
        #expect(try await client.me().login == "staff1")
        #expect(try await client.sessions().sessions.first?.session.deviceName == "kiosk")
        // Imported accounts have no password: a password login fails like any wrong password.
        let anonymous = VestnikClient(serverURL: server.url, token: nil)
        await #expect(throws: VestnikClientError.self) { _ = try await anonymous.login(login: "staff3", password: "anything-at-all", deviceName: "x") }
    }

    @Test("admin bot add|set take --allow and --bot-key-file; a different key file is refused, not silently used")
    func botAdministration() async throws {
        let binary = try VestnikBinary.locate()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-cli-\(UUID().uuidString)").path
        let data = root + "/data"
        var backend = try await TestBackend.serverArguments()
        if !backend.contains("--bot-key-file") { backend += ["--bot-key-file", root + "/bot.key"] }
        let added = try binary.run(
            ["admin", "bot", "add", "--name", "Ops", "--url", "http://127.0.0.1:9", "--allow", "create-chats", "--json", "--data-dir", data] + backend)
        #expect(added.status == 0, "\(added.error)")
        #expect(added.output.contains(#""allow":["create-chats"]"#), "\(added.output)")
        let set = try binary.run(["admin", "bot", "set", "Ops", "--allow", "directory-export,create-chats", "--data-dir", data] + backend)
        #expect(set.status == 0 && set.output.contains("create-chats,directory-export"), "\(set.output) \(set.error)")
        let bad = try binary.run(["admin", "bot", "set", "Ops", "--allow", "everything", "--data-dir", data] + backend)
        #expect(bad.status != 0)
        let disabled = try binary.run(["admin", "bot", "disable", "Ops", "--data-dir", data] + backend)
        #expect(disabled.status == 0 && disabled.output.hasPrefix("disabled Ops"))
        // Another key against the same database: refused before anything is sealed with it.
        var otherKey = backend
        if let index = otherKey.firstIndex(of: "--bot-key-file") { otherKey[index + 1] = root + "/other.key" }
        let mismatch = try binary.run(["admin", "bot", "list", "--data-dir", data] + otherKey)
        #expect(mismatch.status != 0 && mismatch.error.contains("does not match"), "\(mismatch.error)")
        let listed = try binary.run(["admin", "bot", "list", "--json", "--data-dir", data] + backend)
        #expect(listed.status == 0 && listed.output.contains(#""allow":["create-chats","directory-export"]"#), "\(listed.output)")
    }

    @Test("serve sizes its socket threads: half the cores by default, --event-loops, VESTNIK_EVENT_LOOPS over NIO's variable; a count outside 1…256 stops it")
    func eventLoopCount() async throws {
        let binary = try VestnikBinary.locate()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-loops-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let halfTheCores = ServerConfiguration.defaultEventLoops(cores: System.coreCount)
        let cases: [(arguments: [String], environment: [String: String], loops: Int)] = [
            ([], [:], halfTheCores),
            (["--event-loops", "3"], ["VESTNIK_EVENT_LOOPS": "2"], 3),
            ([], ["VESTNIK_EVENT_LOOPS": "2", "NIO_SINGLETON_GROUP_LOOP_COUNT": "5"], 2),
            ([], ["NIO_SINGLETON_GROUP_LOOP_COUNT": "5"], 5),
            ([], ["NIO_SINGLETON_GROUP_LOOP_COUNT": "many"], halfTheCores),
            ([], ["NIO_SINGLETON_GROUP_LOOP_COUNT": "1000"], halfTheCores),
        ]
        for (index, setting) in cases.enumerated() {
            let server = try await binary.startServer(
                dataDirectory: root + "/\(index)", arguments: setting.arguments,
                environment: setting.environment, unset: ["VESTNIK_EVENT_LOOPS", "NIO_SINGLETON_GROUP_LOOP_COUNT"])
            defer { server.kill9() }
            // The threads NIO actually started, not only what the log says.
            let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(server.process.processIdentifier)/task").filter { task in
                let name = (try? String(contentsOfFile: "/proc/\(server.process.processIdentifier)/task/\(task)/comm", encoding: .utf8)) ?? ""
                return name.hasPrefix("NIO-SGLTN-")
            }
            #expect(threads.count == setting.loops, "\(setting)")
            let log = try String(contentsOf: server.log, encoding: .utf8)
            #expect(log.contains("vestnik.event_loops=\(setting.loops)"), "\(setting): \(log)")
        }

        for bad in ["0", "257", "-1"] {
            let refused = try binary.run(["serve", "--port", "0", "--data-dir", root + "/bad", "--event-loops=\(bad)"], timeout: .seconds(20))
            #expect(refused.status != 0)
            #expect(refused.error.contains("--event-loops must be 1…256"), "\(bad): \(refused.error)")
        }
        let refusedEnvironment = try binary.run(
            ["serve", "--port", "0", "--data-dir", root + "/bad"], environment: ["VESTNIK_EVENT_LOOPS": "many"], timeout: .seconds(20))
        #expect(refusedEnvironment.status != 0)
        #expect(refusedEnvironment.error.contains("VESTNIK_EVENT_LOOPS must be 1…256"), "\(refusedEnvironment.error)")
    }
}
