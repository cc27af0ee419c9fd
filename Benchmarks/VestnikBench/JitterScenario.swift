import Foundation

/// `jitter`: the machine's own latency noise, with no server at all.
///
/// Why: the `group --rate 5` tail (p99 send→seen) is a few milliseconds of work spread over
/// threads, a disk sync and the client. Whether its p99 can reach a target depends on how much
/// slower the *same* work runs at the tail on this machine. This runs a fixed piece of pure CPU
/// work (calibrated to ~0.5 ms, about one message's server path) once per `period`, like the
/// rate-limited sends, and reports how long each run took. A p99 many times the p50 here is
/// noise of the machine (a virtual CPU that is not running, kernel threads), not of Vestnik.
func runJitter(samples: Int, period: Duration) async throws -> ScenarioResult {
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    /// Arithmetic plus a stride through 1 MiB, so caches and memory take part as in real work.
    func work(_ rounds: Int) -> UInt64 {
        var accumulator: UInt64 = 0
        buffer.withUnsafeMutableBufferPointer { bytes in
            let mask = bytes.count - 1
            for index in 0..<rounds {
                accumulator = accumulator &+ UInt64(truncatingIfNeeded: index) &* 2_654_435_761
                bytes[(index &* 64) & mask] &+= 1
            }
        }
        return accumulator
    }
    func timed(_ rounds: Int) -> (Duration, UInt64) {
        let start = ContinuousClock.now
        let result = work(rounds)
        return (ContinuousClock.now - start, result)
    }

    // Calibrate: the fastest of a few back-to-back runs sets the rounds for ~0.5 ms.
    var sink: UInt64 = 0
    let probeRounds = 100_000
    var fastest = Duration.seconds(1)
    for _ in 0..<20 {
        let (elapsed, result) = timed(probeRounds)
        sink &+= result
        fastest = min(fastest, elapsed)
    }
    let rounds = max(1, Int(Double(probeRounds) * 0.5 / max(0.001, fastest.milliseconds)))

    let durations = try await pacedDurations(samples: samples, period: period) { _ in sink &+= work(rounds) }
    precondition(sink != 0, "the measured work was optimised away")
    let percentiles = Percentiles(durations)
    return ScenarioResult(
        scenario: "jitter", backend: "none",
        parameters: ["samples": String(samples), "period_ms": String(Int(period.milliseconds))],
        figures: ["fixed work p99 / p50": percentiles.p99 / percentiles.p50, "fixed work max / p50": percentiles.max / percentiles.p50],
        latencies: ["fixed work": percentiles])
}
