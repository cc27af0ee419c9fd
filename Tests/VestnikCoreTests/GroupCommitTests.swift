import Synchronization
import Testing
import VestnikCore

/// `GroupCommit` over an in-memory "store": a transaction is a list of changes that becomes
/// visible only when the whole transaction commits; a savepoint rollback drops what its write added.
@Suite(.timeLimit(.minutes(1))) struct GroupCommitTests {
    final class Ledger: Sendable {
        let state = Mutex<(committed: [Int], open: [Int], savepointAt: Int?, transactions: Int, savepoints: Int, runs: Int)>(([], [], nil, 0, 0, 0))
        /// Writes issued so far, for tests that hold the writer until they queued up.
        let arrivals = Atomic<Int>(0)
        /// The transaction whose number is in `failingCommits` fails at COMMIT.
        let failingCommits: Set<Int>

        init(failingCommits: Set<Int> = []) { self.failingCommits = failingCommits }

        func groupCommit() -> GroupCommit<Ledger> {
            GroupCommit<Ledger>(
                maxBatch: 8,
                transaction: { writes in
                    let number = self.state.withLock { state in
                        state.open = []
                        state.transactions += 1
                        return state.transactions
                    }
                    // A slow commit, so that concurrent writes queue up behind it.
                    try? await Task.sleep(for: .milliseconds(5))
                    do {
                        try await writes(self)
                    } catch {
                        self.state.withLock { $0.open = [] }
                        throw error
                    }
                    if self.failingCommits.contains(number) {
                        self.state.withLock { $0.open = [] }
                        throw CommitFailed()
                    }
                    self.state.withLock { state in
                        state.committed += state.open
                        state.open = []
                    }
                },
                savepoint: { ledger, step in
                    ledger.state.withLock { state in
                        switch step {
                        case .open:
                            state.savepointAt = state.open.count
                            state.savepoints += 1
                        case .release: state.savepointAt = nil
                        case .rollBack:
                            state.open.removeSubrange((state.savepointAt ?? 0)...)
                            state.savepointAt = nil
                        }
                    }
                })
        }

        func add(_ value: Int) {
            state.withLock { state in
                state.open.append(value)
                state.runs += 1
            }
        }
    }

    struct CommitFailed: Error {}
    struct Refused: Error, Equatable { let value: Int }

    @Test("concurrent writes commit in shared transactions; a failing one leaves no trace and the others all return")
    func batchesAndFailures() async throws {
        let ledger = Ledger()
        let writer = ledger.groupCommit()
        let outcomes = await withTaskGroup(of: (Int, Result<Int, Refused>).self) { group in
            for value in 0..<40 {
                group.addTask {
                    do {
                        let returned = try await writer.write { ledger -> Int in
                            ledger.add(value)
                            if value % 7 == 3 { throw Refused(value: value) }
                            return value * 10
                        }
                        return (value, .success(returned))
                    } catch {
                        return (value, .failure(error as? Refused ?? Refused(value: -1)))
                    }
                }
            }
            var outcomes: [Int: Result<Int, Refused>] = [:]
            for await (value, outcome) in group { outcomes[value] = outcome }
            return outcomes
        }
        let refused = Set((0..<40).filter { $0 % 7 == 3 })
        for value in 0..<40 {
            if refused.contains(value) {
                #expect(outcomes[value] == .failure(Refused(value: value)))
            } else {
                #expect(outcomes[value] == .success(value * 10))
            }
        }
        let (committed, transactions) = ledger.state.withLock { ($0.committed, $0.transactions) }
        #expect(Set(committed) == Set(0..<40).subtracting(refused))
        #expect(committed.count == 40 - refused.count)
        // Batching happened: far fewer transactions than writes (each takes 5 ms; 40 start at once).
        #expect(transactions < 30)
    }

    @Test("a batch without failures runs every write once and uses no savepoints; a failure re-runs the others once, isolated")
    func savepointsOnlyAfterAFailure() async throws {
        let ledger = Ledger()
        let writer = ledger.groupCommit()
        /// Holds the writer until `count` writes were issued (and a little longer), so that they
        /// queue up behind it and form one batch.
        func blocker(until count: Int) -> Task<Void, any Error> {
            Task {
                try await writer.write { ledger in
                    while ledger.arrivals.load(ordering: .relaxed) < count { try? await Task.sleep(for: .milliseconds(1)) }
                    try? await Task.sleep(for: .milliseconds(20))
                    ledger.add(-count)
                }
            }
        }
        /// Issues writes of `values` one after another (in this order), each failing if `failing`.
        func issue(_ values: Range<Int>, failing: Int? = nil) async -> [Int: Bool] {
            await withTaskGroup(of: (Int, Bool).self) { group in
                for value in values {
                    group.addTask {
                        do {
                            try await writer.write { ledger in
                                ledger.add(value)
                                if value == failing { throw Refused(value: value) }
                            }
                            return (value, true)
                        } catch {
                            return (value, false)
                        }
                    }
                    ledger.arrivals.add(1, ordering: .relaxed)
                    try? await Task.sleep(for: .milliseconds(2))
                }
                var results: [Int: Bool] = [:]
                for await (value, ok) in group { results[value] = ok }
                return results
            }
        }

        let first = blocker(until: 6)
        try await Task.sleep(for: .milliseconds(5))
        #expect(await issue(0..<6).values.allSatisfy { $0 })
        try await first.value
        var (savepoints, runs) = ledger.state.withLock { ($0.savepoints, $0.runs) }
        #expect(savepoints == 0)
        #expect(runs == 7)

        ledger.arrivals.store(0, ordering: .relaxed)
        let second = blocker(until: 5)
        try await Task.sleep(for: .milliseconds(5))
        #expect(await issue(10..<15, failing: 12) == [10: true, 11: true, 12: false, 13: true, 14: true])
        try await second.value
        (savepoints, runs) = ledger.state.withLock { ($0.savepoints, $0.runs) }
        let committed = ledger.state.withLock { $0.committed }
        #expect(Set(committed) == Set([-6, 0, 1, 2, 3, 4, 5, -5, 10, 11, 13, 14]))
        #expect(committed.count == 12)
        // The five formed one batch behind the blocker: 10, 11, 12 ran, 12 failed; then 10, 11,
        // 13, 14 ran again, all but the first in a savepoint.
        #expect(runs == 7 + 1 + 3 + 4)
        #expect(savepoints == 3)
    }

    @Test("a failed commit fails every write of its batch and none of them is visible; the next batch is unaffected")
    func failedCommit() async throws {
        let ledger = Ledger(failingCommits: [1])
        let writer = ledger.groupCommit()
        await #expect(throws: CommitFailed.self) { try await writer.write { $0.add(1) } }
        try await writer.write { $0.add(2) }
        #expect(ledger.state.withLock { $0.committed } == [2])
    }

    @Test("a write whose caller was cancelled still commits, with the writes queued behind it")
    func cancelledCaller() async throws {
        let ledger = Ledger()
        let writer = ledger.groupCommit()
        let leader = Task { try await writer.write { $0.add(1) } }
        leader.cancel()
        let followers = (2...5).map { value in Task { try await writer.write { $0.add(value) } } }
        try await leader.value
        for follower in followers { try await follower.value }
        #expect(Set(ledger.state.withLock { $0.committed }) == [1, 2, 3, 4, 5])
    }
}
