import Foundation
import Synchronization
import Testing
import VestnikCore
@testable import VestnikStorePostgres

/// Stopping a store while reads and writes are in flight: each of them must return (with its
/// result or an error), none may wait forever. A server's shutdown waits for its background
/// services, and they are mid-query when it begins.
@Suite(.enabled(if: serverURL != nil, "VESTNIK_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against"))
struct PostgresShutdownTests {
    @Test("reads and writes in flight while the store stops all return; none waits forever")
    func requestsInFlightEnd() async throws {
        try await withFreshDatabase { configuration in
            for round in 0..<30 {
                let store = PostgresStore(configuration: configuration)
                let runner = Task { await store.run() }
                try await store.migrate()
                let ended = EndedCount()
                let callers = 16
                let tasks = (0..<callers).map { index in
                    Task {
                        while true {
                            do {
                                if index % 2 == 0 { _ = try await store.headSeq() } else { try await store.write(intent: nil) { _ in } }
                            } catch {
                                break
                            }
                        }
                        ended.value.add(1, ordering: .relaxed); ended.done.withLock { _ = $0.insert(index) }
                    }
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: 20...150)))
                runner.cancel()
                // Half the callers are cancelled with it, as a server's services are.
                for (index, task) in tasks.enumerated() where index % 4 < 2 { task.cancel() }
                let deadline = ContinuousClock.now + .seconds(10)
                while ended.value.load(ordering: .relaxed) < callers, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
                let waiting = callers - ended.value.load(ordering: .relaxed)
                let finished = ended.done.withLock { $0 }
                let stuck: [String] = (0..<callers).filter { !finished.contains($0) }.map { index in
                    let kind = index % 2 == 0 ? "read" : "write"
                    return index % 4 < 2 ? kind + " (cancelled)" : kind
                }
                #expect(waiting == 0, "round \(round): \(waiting) of \(callers) requests still waiting 10 s after the store stopped: \(stuck)")
                if waiting > 0 { break }
                _ = await runner.value
            }
        }
    }
}

private final class EndedCount: Sendable {
    let value = Atomic<Int>(0)
    let done = Mutex<Set<Int>>([])
}
