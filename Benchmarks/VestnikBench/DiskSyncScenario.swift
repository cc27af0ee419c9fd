import Foundation

/// `disksync`: how long this machine's disk takes to make one commit's worth of log durable,
/// with no server at all.
///
/// Why: every acknowledged message waits for a data sync of SQLite's write-ahead log
/// (`synchronous=FULL`), and at a low send rate each message has one of its own. The `group
/// --rate 5` p99 can therefore not be lower than this scenario's p99. Like a one-send SQLite
/// commit in a log that has started over (its steady state: `strace` of the server at `--rate 5`
/// showed 12 log frames written before each `fdatasync`), each sample overwrites 12 pages
/// (48 KiB) of a preallocated file in the temporary directory (where the benchmark's servers keep
/// their data) and syncs it, once per `period`.
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
    // Random bytes, as page images are to a file system that compresses.
    var generator = SystemRandomNumberGenerator()
    let commitImage = (0..<commitBytes).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    func overwrite(slot: Int) throws {
        let written = commitImage.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, commitBytes, off_t(slot * commitBytes)) }
        if written < 0 {
            let error = errno
            throw BenchError("pwrite: errno \(error)")
        }
        guard written == commitBytes else { throw BenchError("pwrite wrote \(written) of \(commitBytes) bytes") }
    }
    func syncData() throws {
        #if canImport(Glibc)
        let result = fdatasync(descriptor)
        #else
        let result = fsync(descriptor)
        #endif
        if result != 0 {
            let error = errno
            throw BenchError("sync: errno \(error)")
        }
    }
    // Preallocated and synced: the samples' syncs carry data only, no change of the file's size.
    for slot in 0..<slots { try overwrite(slot: slot) }
    guard fsync(descriptor) == 0 else { throw BenchError("fsync: errno \(errno)") }

    let durations = try await pacedDurations(samples: samples, period: period) { sample in
        try overwrite(slot: sample % slots)
        try syncData()
    }
    let percentiles = Percentiles(durations)
    return ScenarioResult(
        scenario: "disksync", backend: "none",
        parameters: ["samples": String(samples), "period_ms": String(Int(period.milliseconds)), "bytes per sync": String(commitBytes)],
        figures: ["sync p99 / p50": percentiles.p99 / percentiles.p50, "sync max / p50": percentiles.max / percentiles.p50],
        latencies: ["write + fdatasync": percentiles])
}
