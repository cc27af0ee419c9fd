import Foundation

/// `disksync`: how long this machine's disk takes to make one commit's worth of log durable,
/// with no server at all.
///
/// Why: every acknowledged message waits for a data sync of SQLite's write-ahead log
/// (`synchronous=FULL`), and at a low send rate each message has one of its own. The `group
/// --rate 5` p99 can therefore not be lower than this scenario's p99 plus the rest of the path.
/// Like a one-send SQLite commit in a log that has started over (its steady state), each sample
/// overwrites 12 pages (48 KiB) of a preallocated file in the temporary directory (where the
/// benchmark's servers keep their data) and calls `fdatasync`, once per `period`.
func runDiskSync(samples: Int, period: Duration) async throws -> ScenarioResult {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-bench-sync-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("log").path
    let descriptor = open(path, O_WRONLY | O_CREAT, 0o600)
    guard descriptor >= 0 else { throw BenchError("cannot create \(path): errno \(errno)") }
    defer { close(descriptor) }

    let commitBytes = 12 * 4096
    let slots = 64
    let page = [UInt8](repeating: 0x5A, count: commitBytes)
    func write(at slot: Int) throws {
        let written = page.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, commitBytes, off_t(slot * commitBytes)) }
        guard written == commitBytes else { throw BenchError("pwrite: errno \(errno)") }
    }
    // Preallocated and synced: the samples' syncs carry data only, no change of the file's size.
    for slot in 0..<slots { try write(at: slot) }
    guard fsync(descriptor) == 0 else { throw BenchError("fsync: errno \(errno)") }

    var durations: [Double] = []
    durations.reserveCapacity(samples)
    for sample in 0..<samples {
        try await Task.sleep(for: period)
        let start = ContinuousClock.now
        try write(at: sample % slots)
        guard fdatasync(descriptor) == 0 else { throw BenchError("fdatasync: errno \(errno)") }
        durations.append((ContinuousClock.now - start).milliseconds)
    }
    let percentiles = Percentiles(durations)
    return ScenarioResult(
        scenario: "disksync", backend: "none",
        parameters: ["samples": String(samples), "period_ms": String(Int(period.milliseconds)), "bytes per sync": String(commitBytes)],
        figures: ["sync p99 / p50": percentiles.p99 / percentiles.p50],
        latencies: ["write + fdatasync": percentiles])
}
