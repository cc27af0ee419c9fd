import Foundation
import Testing

/// The built `vestnik` executable, run as a child process the way an operator runs it.
struct VestnikBinary {
    let url: URL

    /// Finds the executable next to the test bundle (SwiftPM builds it with the tests), or at
    /// `VESTNIK_BINARY`.
    static func locate() throws -> VestnikBinary {
        if let override = ProcessInfo.processInfo.environment["VESTNIK_BINARY"] {
            return VestnikBinary(url: URL(fileURLWithPath: override))
        }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("vestnik")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue,
                FileManager.default.isExecutableFile(atPath: candidate.path)
            {
                return VestnikBinary(url: candidate)
            }
            directory.deleteLastPathComponent()
        }
        throw NotFound()
    }

    struct NotFound: Error, CustomStringConvertible {
        var description: String { "the vestnik executable was not found next to the tests; run `swift build` first or set VESTNIK_BINARY" }
    }

    /// Runs a command to completion and returns its exit status and standard output.
    /// - Parameter timeout: after this long the command is killed (a `serve` that was expected
    ///   to refuse its arguments but started ends the test instead of hanging it).
    @discardableResult
    func run(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], timeout: Duration? = nil) throws -> (
        status: Int32, output: String, error: String
    ) {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let errors = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input
        try process.run()
        var killer: DispatchWorkItem?
        if let timeout {
            let pid = process.processIdentifier
            let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
            let item = DispatchWorkItem { kill(pid, SIGKILL) }
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: item)
            killer = item
        }
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        killer?.cancel()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// Starts `vestnik serve` on a free port; returns once it listens.
    /// - Parameter unset: variables of this process's environment the server does not inherit.
    func startServer(dataDirectory: String, arguments extra: [String] = [], environment: [String: String] = [:], unset: [String] = []) async throws
        -> RunningServer
    {
        let log = URL(fileURLWithPath: dataDirectory).appendingPathComponent("serve-\(UUID().uuidString).log")
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = url
        process.arguments = ["serve", "--port", "0", "--data-dir", dataDirectory, "--log-level", "notice"] + extra
        process.environment = ProcessInfo.processInfo.environment.filter { !unset.contains($0.key) }.merging(environment) { $1 }
        process.standardError = handle
        process.standardOutput = handle
        try process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: "vestnik.address=127.0.0.1:") {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits) { return RunningServer(process: process, port: port, log: log) }
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        throw ServerDidNotStart(log: (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    struct ServerDidNotStart: Error, CustomStringConvertible {
        let log: String
        var description: String { "vestnik serve did not start:\n\(log)" }
    }
}

/// A `vestnik serve` child process.
final class RunningServer: Sendable {
    let process: Process
    let port: Int
    let log: URL
    var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

    init(process: Process, port: Int, log: URL) {
        self.process = process
        self.port = port
        self.log = log
    }

    /// SIGKILL: no shutdown code runs at all.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit; returns the exit status or nil.
    func terminate(timeout: Duration = .seconds(10)) async -> Int32? {
        kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }
}
