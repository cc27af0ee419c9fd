import Foundation
import VestnikKit

/// `login`: what a login costs, one after another over HTTP: the password check (scrypt at the
/// server's real cost) and the writes around it (the cluster-wide attempt counts of decision 0017
/// and the session). Each login gets a fresh client, as a new device would.
func runLogin(server: ServerUnderTest, backend: String, logins: Int) async throws -> ScenarioResult {
    let password = "bench-password-1"
    let prefix = "l\(UInt16.random(in: 0...UInt16.max))u"
    guard let login = try await server.createUsers(prefix: prefix, count: 1, password: password).first else { throw BenchError("no user") }
    var durations: [Double] = []
    let cpuBefore = server.cpuSeconds()
    for _ in 0..<logins {
        let client = VestnikClient(serverURL: server.url, token: nil)
        let started = ContinuousClock.now
        _ = try await client.login(login: login, password: password, deviceName: "bench")
        durations.append((ContinuousClock.now - started).milliseconds)
    }
    var figures: [String: Double] = ["logins": Double(durations.count)]
    if let cpuBefore, let cpuAfter = server.cpuSeconds() {
        figures["server CPU ms per login"] = (cpuAfter - cpuBefore) / Double(max(1, logins)) * 1000
    }
    return ScenarioResult(
        scenario: "login", backend: backend, parameters: ["logins": "\(logins)"], figures: figures, latencies: ["login": Percentiles(durations)])
}
