import Synchronization
import Testing
import VestnikCore

/// `GroupCommit` over an in-memory "store": a transaction is a list of changes that becomes
/// visible only when the whole transaction commits; a savepoint rollback drops what its write added.
@Suite(.timeLimit(.minutes(1))) struct GroupCommitTests {
    final class Ledger: Sendable {
        let state = Mutex<(committed: [Int], open: [Int], savepointAt: Int?, transactions: Int)>(([], [], nil, 0))
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
                        case .open: state.savepointAt = state.open.count
                        case .release: state.savepointAt = nil
                        case .rollBack:
                            state.open.removeSubrange((state.savepointAt ?? 0)...)
                            state.savepointAt = nil
                        }
                    }
                })
        }

        func add(_ value: Int) { state.withLock { $0.open.append(value) } }
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
