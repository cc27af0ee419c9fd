import Foundation
import Synchronization

/// Send and receive timestamps, shared by every client task of a run.
final class Recorder: Sendable {
    private struct State {
        var sent: [Int: ContinuousClock.Instant] = [:]
        var acked: [Int: ContinuousClock.Instant] = [:]
        var seen: [Int: [ContinuousClock.Instant]] = [:]
        var seenCount = 0
    }
    private let state = Mutex(State())
    let origin = ContinuousClock.now

    func sent(_ index: Int, at instant: ContinuousClock.Instant) { state.withLock { $0.sent[index] = instant } }
    func acked(_ index: Int, at instant: ContinuousClock.Instant) { state.withLock { $0.acked[index] = instant } }
    func seen(_ index: Int, at instant: ContinuousClock.Instant) {
        state.withLock {
            $0.seen[index, default: []].append(instant)
            $0.seenCount += 1
        }
    }
    var seenCount: Int { state.withLock { $0.seenCount } }

    /// Milliseconds from send to ack, one per message.
    func ackLatencies() -> [Double] {
        state.withLock { s in s.acked.compactMap { index, ack in s.sent[index].map { (ack - $0).milliseconds } } }
    }

    /// Milliseconds from send to each receiver seeing the message.
    func endToEndLatencies() -> [Double] {
        state.withLock { s in s.seen.flatMap { index, instants in s.sent[index].map { start in instants.map { ($0 - start).milliseconds } } ?? [] } }
    }

    /// Per message, milliseconds from its send to the first and to the last receiver seeing it:
    /// the first is the server's own path (store, commit, the first frame written), the gap to the
    /// last is the fan-out's, both of the server's writes and of the receivers' reads. A slow
    /// message counts once here, where it counts once per receiver in ``endToEndLatencies()``.
    func firstAndLastSeen() -> (first: [Double], last: [Double], spread: [Double]) {
        state.withLock { s in
            var first: [Double] = [], last: [Double] = [], spread: [Double] = []
            for (index, instants) in s.seen {
                guard let start = s.sent[index], let earliest = instants.min(), let latest = instants.max() else { continue }
                first.append((earliest - start).milliseconds)
                last.append((latest - start).milliseconds)
                spread.append((latest - earliest).milliseconds)
            }
            return (first, last, spread)
        }
    }

    /// One line per message, in send order: index, send time since the first send, and the
    /// milliseconds to its ack, its first and its last receiver. For finding out whether the slow
    /// messages of a run come in a pattern (every so many, or at some moment).
    func perMessageCSV() -> String {
        state.withLock { s in
            guard let origin = s.sent.values.min() else { return "" }
            var lines = ["index,sent_ms,ack_ms,first_seen_ms,last_seen_ms"]
            for index in s.sent.keys.sorted() {
                guard let start = s.sent[index] else { continue }
                func since(_ instant: ContinuousClock.Instant?) -> String { instant.map { String(format: "%.3f", ($0 - start).milliseconds) } ?? "" }
                let seen = s.seen[index] ?? []
                lines.append("\(index),\(String(format: "%.1f", (start - origin).milliseconds)),\(since(s.acked[index])),\(since(seen.min())),\(since(seen.max()))")
            }
            return lines.joined(separator: "\n") + "\n"
        }
    }

    func sendWindow() -> Duration? {
        state.withLock { s in
            guard let first = s.sent.values.min(), let last = s.acked.values.max() else { return nil }
            return last - first
        }
    }

    var ackedCount: Int { state.withLock { $0.acked.count } }
}

/// Milliseconds each of `samples` runs of `body` took, one run after every `period` of sleep, at
/// the pace of `group --rate 5` for a 200 ms period: the pacing the machine-noise scenarios
/// (`jitter`, `disksync`) share. `body` gets the run's index.
func pacedDurations(samples: Int, period: Duration, _ body: (Int) throws -> Void) async throws -> [Double] {
    var durations: [Double] = []
    durations.reserveCapacity(samples)
    for sample in 0..<samples {
        try await Task.sleep(for: period)
        let start = ContinuousClock.now
        try body(sample)
        durations.append((ContinuousClock.now - start).milliseconds)
    }
    return durations
}

extension Duration {
    var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
    var seconds: Double { milliseconds / 1000 }
}

/// p50/p95/p99/max of a sample, in its unit.
struct Percentiles: Codable {
    var count: Int
    var p50: Double
    var p95: Double
    var p99: Double
    var max: Double

    init(_ samples: [Double]) {
        let sorted = samples.sorted()
        count = sorted.count
        func at(_ q: Double) -> Double {
            guard !sorted.isEmpty else { return .nan }
            let rank = Int((Double(sorted.count) * q).rounded(.up)) - 1
            return sorted[Swift.max(0, Swift.min(sorted.count - 1, rank))]
        }
        p50 = at(0.50)
        p95 = at(0.95)
        p99 = at(0.99)
        max = sorted.last ?? .nan
    }
}

/// One printed and saved result row.
struct ScenarioResult: Codable {
    var scenario: String
    var backend: String
    var parameters: [String: String]
    var figures: [String: Double]
    var latencies: [String: Percentiles]

    func printTable() {
        func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
        func number(_ value: Double, _ width: Int) -> String {
            let text = String(format: "%.2f", value)
            return String(repeating: " ", count: max(0, width - text.count)) + text
        }
        print("")
        print("== \(scenario) (\(backend)) " + parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        for (name, value) in figures.sorted(by: { $0.key < $1.key }) {
            print("  " + pad(name, 34) + number(value, 12))
        }
        if !latencies.isEmpty {
            print("  " + pad("latency (ms)", 14) + ["n", "p50", "p95", "p99", "max"].map { String(repeating: " ", count: 10 - $0.count) + $0 }.joined())
            for (name, p) in latencies.sorted(by: { $0.key < $1.key }) {
                print("  " + pad(name, 14) + String(repeating: " ", count: max(0, 10 - String(p.count).count)) + String(p.count)
                    + [p.p50, p.p95, p.p99, p.max].map { number($0, 10) }.joined())
            }
        }
    }
}

/// The whole machine's processor time by kind, from the first line of `/proc/stat` (in clock
/// ticks, summed over cores).
///
/// Why: runs of the same build at the same load differ by up to 1.7× in CPU per message on this
/// virtual machine. Time the hypervisor gave to someone else (`steal`) and time spent waiting for
/// the disk (`iowait`) say whether a slow run was slow because of the machine, not the server.
struct HostCPUTimes {
    var busy: Double = 0
    var idle: Double = 0
    var iowait: Double = 0
    var steal: Double = 0

    /// Nil where `/proc/stat` cannot be read (not Linux).
    static func now() -> HostCPUTimes? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        // user nice system idle iowait irq softirq steal (guest time is already inside user).
        let fields = line.split(separator: " ").dropFirst().prefix(8).compactMap { Double($0) }
        guard fields.count == 8 else { return nil }
        return HostCPUTimes(
            busy: fields[0] + fields[1] + fields[2] + fields[5] + fields[6], idle: fields[3], iowait: fields[4], steal: fields[7])
    }

    /// The shares of the time between `earlier` and `self`, in percent of all cores' time.
    func percentages(since earlier: HostCPUTimes) -> [String: Double] {
        let busy = busy - earlier.busy, idle = idle - earlier.idle
        let iowait = iowait - earlier.iowait, steal = steal - earlier.steal
        let total = busy + idle + iowait + steal
        guard total > 0 else { return [:] }
        return [
            "host busy %": busy / total * 100, "host idle %": idle / total * 100,
            "host iowait %": iowait / total * 100, "host steal %": steal / total * 100,
        ]
    }
}
