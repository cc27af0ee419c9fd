import AsyncHTTPClient
import Foundation
import VestnikAPI
import VestnikKit

/// The server being measured: a `vestnik serve` child process the bench starts, or an external
/// one given by URL (then its data directory is needed to create users through the admin path).
struct ServerUnderTest {
    let url: URL
    let dataDirectory: String
    let binary: URL
    let process: Process?
    /// Arguments that select the store (`--database …`), passed to admin commands too.
    var storeArguments: [String] = []

    /// Starts `vestnik serve` on a free port with a fresh data directory.
    static func start(binary: URL, extraArguments: [String] = [], environment: [String: String] = [:]) async throws -> ServerUnderTest {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let log = URL(fileURLWithPath: data + "/serve.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        var extraArguments = extraArguments
        // PostgreSQL needs an explicit bot key file, shared with the admin commands below.
        if extraArguments.contains("--database"), !extraArguments.contains("--bot-key-file") {
            extraArguments += ["--bot-key-file", data + "/bot-secrets.key"]
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve", "--port", "0", "--data-dir", data, "--log-level", "notice"] + extraArguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let handle = try FileHandle(forWritingTo: log)
        process.standardError = handle
        process.standardOutput = handle
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: "vestnik.address=") {
                let address = text[range.upperBound...].prefix { !$0.isWhitespace }
                if let port = address.split(separator: ":").last.flatMap({ Int($0) }) {
                    var server = ServerUnderTest(url: URL(string: "http://127.0.0.1:\(port)")!, dataDirectory: data, binary: binary, process: process)
                    if let index = extraArguments.firstIndex(of: "--database"), index + 1 < extraArguments.count {
                        server.storeArguments = ["--database", extraArguments[index + 1]]
                        if let key = extraArguments.firstIndex(of: "--bot-key-file"), key + 1 < extraArguments.count {
                            server.storeArguments += ["--bot-key-file", extraArguments[key + 1]]
                        }
                    }
                    return server
                }
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        throw BenchError("vestnik serve did not start: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
    }

    /// Creates users through the admin path (`vestnik admin user add --password-stdin`).
    func createUsers(prefix: String, count: Int, password: String, concurrency: Int = 2) async throws -> [String] {
        let logins = (0..<count).map { "\(prefix)\($0)" }
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func launch() {
                guard next < logins.count else { return }
                let login = logins[next]
                next += 1
                group.addTask { try self.admin(["user", "add", "--login", login, "--name", "Bench \(login)", "--password-stdin"], stdin: password + "\n") }
            }
            for _ in 0..<concurrency { launch() }
            while try await group.next() != nil { launch() }
        }
        return logins
    }

    /// Imports passwordless accounts in one admin call; returns their ids in order.
    func importUsers(_ logins: [String]) throws -> [UserID] {
        let lines = logins.map { #"{"login":"\#($0)","name":"Bench \#($0)"}"# }.joined(separator: "\n") + "\n"
        let output = try adminOutput(["user", "import", "--json"], stdin: lines)
        let users = try output.split(separator: UInt8(ascii: "\n")).map { try VestnikJSON.decode(User.self, from: Data($0)) }
        let byLogin = Dictionary(users.map { ($0.login, $0.id) }, uniquingKeysWith: { first, _ in first })
        return try logins.map { login in
            guard let id = byLogin[login] else { throw BenchError("import did not report \(login)") }
            return id
        }
    }

    /// Issues one session per login through the admin path; returns the tokens in order.
    func issueSessions(_ logins: [String]) throws -> [String] {
        let output = try adminOutput(["session", "issue", "--stdin", "--device", "bench"], stdin: logins.joined(separator: "\n") + "\n")
        let tokens = Dictionary(
            String(decoding: output, as: UTF8.self).split(separator: "\n").compactMap { line -> (String, String)? in
                let fields = line.split(separator: "\t")
                return fields.count == 2 ? (String(fields[0]), String(fields[1])) : nil
            }, uniquingKeysWith: { first, _ in first })
        return try logins.map { login in
            guard let token = tokens[login] else { throw BenchError("no session issued for \(login)") }
            return token
        }
    }

    func admin(_ arguments: [String], stdin: String) throws {
        _ = try adminOutput(arguments, stdin: stdin)
    }

    /// Runs `vestnik admin …` on this server's store and returns its standard output.
    func adminOutput(_ arguments: [String], stdin: String) throws -> Data {
        let process = Process()
        process.executableURL = binary
        process.arguments = ["admin"] + arguments + ["--data-dir", dataDirectory] + storeArguments
        let input = Pipe()
        process.standardInput = input
        let output = Pipe()
        process.standardOutput = output
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        // Feed standard input while reading the output, so neither pipe fills up and blocks.
        let writer = Thread {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        let result = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("admin \(arguments.prefix(3)): \(String(decoding: err, as: UTF8.self))") }
        return result
    }

    /// Stops a server the bench started and removes its data directory.
    func stop() {
        guard let process else { return }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    /// The store's write-batching counters (`GET /metrics`, which the server serves to this
    /// host): writes and batches committed so far; nil if unavailable.
    func writeBatching() async -> (writes: Double, batches: Double)? {
        var request = HTTPClientRequest(url: url.absoluteString + "/metrics")
        request.method = .GET
        guard let response = try? await VestnikClient.defaultHTTPClient.execute(request, timeout: .seconds(10)), response.status == .ok,
            let body = try? await response.body.collect(upTo: 4 << 20)
        else { return nil }
        let text = String(buffer: body)
        func value(_ name: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        guard let writes = value("vestnik_store_writes_total"), let batches = value("vestnik_store_write_batches_total") else { return nil }
        return (writes, batches)
    }

    /// CPU seconds (user + system) the server process has used so far.
    func cpuSeconds() -> Double? {
        guard let pid = process?.processIdentifier,
            let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // Fields after the command: state is [0], utime [11], stime [12].
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident memory of the server process in bytes.
    func rssBytes() -> Int? {
        guard let pid = process?.processIdentifier,
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
