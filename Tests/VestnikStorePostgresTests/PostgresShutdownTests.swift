import Foundation
import Synchronization
import Testing
import VestnikCore
@testable import VestnikStorePostgres

/// Stopping a store while reads and writes are in flight: each of them must return (with its
/// result or an error), none may wait forever. A server's shutdown waits for its background
/// services, and they are mid-query when it begins.
@Suite(.enabled(if: serverURL != nil, "VESTNIK_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against"), .timeLimit(.minutes(5)))
struct PostgresShutdownTests {
    @Test("reads and writes in flight while the store stops all return; none waits forever")
    func requestsInFlightEnd() async throws {
        try await withFreshDatabase { configuration in
            for round in 0..<30 {
                let store = PostgresStore(configuration: configuration)
                let stopped = Progress()
                let runner = Task {
                    await store.run()
                    stopped.count.add(1, ordering: .relaxed)
                }
                try await store.migrate()
                let progress = Progress()
                let callers = 16
                let tasks = (0..<callers).map { index in
                    Task {
                        while true {
                            do {
                                if index % 2 == 0 { _ = try await store.headSeq() } else { try await store.write(intent: nil) { _ in } }
                                progress.succeeded.add(1, ordering: .relaxed)
                            } catch {
                                break
                            }
                        }
                        progress.count.add(1, ordering: .relaxed)
                        progress.ended.withLock { _ = $0.insert(index) }
                    }
                }
                // Let every caller get going, then stop at a random moment.
                let warm = ContinuousClock.now + .seconds(15)
                while progress.succeeded.load(ordering: .relaxed) < callers, ContinuousClock.now < warm { try await Task.sleep(for: .milliseconds(1)) }
                #expect(progress.succeeded.load(ordering: .relaxed) >= callers, "round \(round): the running store answered too few requests")
                try await Task.sleep(for: .milliseconds(Int.random(in: 5...100)))
                runner.cancel()
                // Half the callers are cancelled with it, as a server's services are.
                for (index, task) in tasks.enumerated() where index % 4 < 2 { task.cancel() }
                let deadline = ContinuousClock.now + .seconds(15)
                while progress.count.load(ordering: .relaxed) < callers || stopped.count.load(ordering: .relaxed) == 0,
                    ContinuousClock.now < deadline
                {
                    try await Task.sleep(for: .milliseconds(10))
                }
                let ended = progress.ended.withLock { $0 }
                let stuck: [String] = (0..<callers).filter { !ended.contains($0) }.map { index in
                    let kind = index % 2 == 0 ? "read" : "write"
                    return index % 4 < 2 ? kind + " (cancelled)" : kind
                }
                #expect(stuck.isEmpty, "round \(round): requests still waiting 15 s after the store began to stop: \(stuck)")
                #expect(stopped.count.load(ordering: .relaxed) == 1, "round \(round): the store did not stop within 15 s")
                if !stuck.isEmpty || stopped.count.load(ordering: .relaxed) == 0 { break }
            }
        }
    }
}

/// What the callers of one round did.
private final class Progress: Sendable {
    /// Callers (or stores) that ended.
    let count = Atomic<Int>(0)
    let succeeded = Atomic<Int>(0)
    let ended = Mutex<Set<Int>>([])
}
