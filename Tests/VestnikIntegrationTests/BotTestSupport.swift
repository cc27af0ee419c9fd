import AsyncHTTPClient
import Foundation
import Hummingbird
import Synchronization
import Testing
import VestnikCore
import VestnikKit
import VestnikModel

/// A free TCP port on 127.0.0.1 (bound to port 0, then released).
func freeLocalPort() throws -> Int {
    let (fd, port) = try reserveLocalPort()
    close(fd)
    return port
}

/// A port bound but not listening: connections to it are refused (a bot that is down), and no
/// other test can take it until `close(fd)`.
func reserveLocalPort() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard bound == 0 else {
        close(fd)
        throw POSIXError(.EADDRINUSE)
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// The Python of the pybotx venv (`VESTNIK_PYBOTX_PYTHON`, set by scripts/test.sh), or nil.
enum PybotxEnvironment {
    static var python: String? {
        guard let path = ProcessInfo.processInfo.environment["VESTNIK_PYBOTX_PYTHON"], FileManager.default.isExecutableFile(atPath: path)
        else { return nil }
        return path
    }

    static var scripts: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("pybotx")
    }
}

/// A pybotx bot (or scenario script) running as a child process; stdout lines are collected.
final class PythonBot: Sendable {
    let process: Process
    let port: Int
    private let captured = Captured()

    /// What the child printed; a class so the pipe handlers can share it.
    final class Captured: Sendable {
        let output = Mutex<[String]>([])
        let errors = Mutex<String>("")
    }

    /// Starts `arguments` (after the venv's python) in Tests/pybotx with the bot's environment.
    init(_ arguments: [String], bot: UserID, secret: String, server: URL, port: Int, extra: [String: String] = [:]) throws {
        guard let python = PybotxEnvironment.python else { throw Skip() }
        self.port = port
        process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = arguments
        process.currentDirectoryURL = PybotxEnvironment.scripts
        var environment = ProcessInfo.processInfo.environment
        environment["BOT_ID"] = bot.description
        environment["BOT_SECRET"] = secret
        environment["CTS_URL"] = server.absoluteString
        environment["BOT_PORT"] = String(port)
        environment["PYTHONUNBUFFERED"] = "1"
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        let captured = self.captured
        stdout.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else { return }
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            captured.output.withLock { $0.append(contentsOf: lines) }
        }
        stderr.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else { return }
            captured.errors.withLock { text in if text.utf8.count < 200_000 { text += String(decoding: data, as: UTF8.self) } }
        }
        try process.run()
    }

    /// An HTTP bot app: `uvicorn MODULE:app`.
    static func app(_ module: String, bot: UserID, secret: String, server: URL) async throws -> PythonBot {
        let port = try freeLocalPort()
        let running = try PythonBot(
            ["-m", "uvicorn", "\(module):app", "--host", "127.0.0.1", "--port", String(port), "--log-level", "warning"], bot: bot,
            secret: secret, server: server, port: port)
        // Ready when its health endpoint answers.
        let ready = await waitUntil(timeout: .seconds(30)) {
            guard running.process.isRunning else { return true }
            let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/health/"), timeout: .seconds(2))
            return response?.status.code == 200
        }
        guard ready, running.process.isRunning else {
            throw BotDidNotStart(log: running.stderr)
        }
        return running
    }

    var lines: [String] { captured.output.withLock { $0 } }
    var stderr: String { captured.errors.withLock { $0 } }

    /// The JSON check lines of a scenario script.
    var checks: [[String: String]] {
        lines.compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let name = object["check"] as? String
            else { return nil }
            return ["check": name, "ok": (object["ok"] as? Bool) == true ? "true" : "false", "detail": object["detail"] as? String ?? ""]
        }
    }

    func waitForExit(timeout: Duration) async -> Int32? {
        let exited = await waitUntil(timeout: timeout) { !process.isRunning }
        return exited ? process.terminationStatus : nil
    }

    /// Kills the bot at once. Not SIGTERM: uvicorn's graceful shutdown waits for idle keep-alive
    /// connections of the server under test, and nothing here needs a graceful bot exit.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    struct Skip: Error, CustomStringConvertible {
        var description: String { "VESTNIK_PYBOTX_PYTHON is not set: the pybotx suite needs scripts/test.sh (or .ci/run) to create the venv" }
    }

    struct BotDidNotStart: Error, CustomStringConvertible {
        let log: String
        var description: String { "the pybotx bot did not start:\n\(log.suffix(3000))" }
    }
}

/// Waits for a message in `chat` that satisfies `match`, as `client` sees it in history.
func waitForMessage(
    _ client: VestnikClient, in chat: ChatID, timeout: Duration = .seconds(20), _ match: @Sendable (Message) -> Bool
) async throws -> Message? {
    var found: Message?
    _ = try await waitUntil(timeout: timeout) {
        found = try await client.history(chatID: chat, limit: 100).messages.last(where: match)
        return found != nil
    }
    return found
}
