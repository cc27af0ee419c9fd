import Foundation
import Synchronization
import Testing
import VestnikCore
import VestnikModel

/// `GroupCommit` over an in-memory "store": a transaction is a list of changes that becomes
/// visible only when the whole transaction commits; a savepoint rollback drops what its write added.
@Suite(.timeLimit(.minutes(1))) struct GroupCommitTests {
    final class Ledger: Sendable {
        let state = Mutex<(committed: [Int], open: [Int], savepointAt: Int?, transactions: Int, savepoints: Int, runs: Int)>(([], [], nil, 0, 0, 0))
        /// Set by a test's blocking write once it runs.
        let arrivals = Atomic<Int>(0)
        /// The transaction whose number is in `failingCommits` fails at COMMIT.
        let failingCommits: Set<Int>

        init(failingCommits: Set<Int> = []) { self.failingCommits = failingCommits }

        func groupCommit() -> GroupCommit<Ledger> {
            GroupCommit<Ledger>(
                maxBatch: 8,
                transaction: { _, writes in
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

    /// What a failing step of an adapter's batch preparation must cost: one more run of the
    /// batch, isolated and without intents (where the adapter defers nothing), and no write's
    /// outcome. Flavours: the held writes fail before the commit, or the preparation fails
    /// before the first write.
    @Test("a batch's leading intents reach its transaction; a failing beforeCommit or preparation runs it again isolated, without intents", arguments: [true, false])
    func intentsAndBatchPreparation(failBeforeCommit: Bool) async throws {
        struct PreparationFailed: Error {}
        struct Access: Sendable {}
        final class Record: Sendable {
            let intentsSeen = Mutex<[[WriteIntent]]>([])
            let failures = Mutex(1)
            let committed = Mutex<[Int]>([])
            let open = Mutex<[Int]>([])
            let announced = Atomic<Bool>(false)
            func fail() -> Bool { failures.withLock { left in defer { left = max(0, left - 1) }; return left > 0 } }
        }
        let record = Record()
        let writer = GroupCommit<Access>(
            maxBatch: 8,
            transaction: { intents, writes in
                record.intentsSeen.withLock { $0.append(intents) }
                record.announced.store(!intents.isEmpty, ordering: .relaxed)
                record.open.withLock { $0 = [] }
                if !failBeforeCommit, !intents.isEmpty, record.fail() { throw PreparationFailed() }
                try await writes(Access())
                let done = record.open.withLock { $0 }
                record.committed.withLock { $0 += done }
            },
            savepoint: { _, _ in },
            beforeCommit: { _ in if failBeforeCommit, record.announced.load(ordering: .relaxed), record.fail() { throw PreparationFailed() } })
        let chat = ChatID.random(), alice = UserID.random(), bob = UserID.random()
        let first = WriteIntent.send(chat: chat, sender: alice, clientMessageID: nil)
        let second = WriteIntent.send(chat: chat, sender: bob, clientMessageID: "b")
        // A write that holds the writer until three more queued behind it, in this order: two
        // announced sends, a write without an intent, and another announced send.
        let release = Atomic<Bool>(false)
        let holder = Task { try await writer.write { _ in while !release.load(ordering: .relaxed) { try? await Task.sleep(for: .milliseconds(1)) } } }
        while record.intentsSeen.withLock({ $0.count }) == 0 { try await Task.sleep(for: .milliseconds(1)) }
        var tasks: [Task<Int, any Error>] = []
        for (value, intent) in [(1, Optional(first)), (2, Optional(second)), (3, nil), (4, Optional(first))] {
            let queued = writer.queuedWrites
            tasks.append(Task { try await writer.write(intent: intent) { _ in record.open.withLock { $0.append(value) }; return value } })
            while writer.queuedWrites == queued { try await Task.sleep(for: .milliseconds(1)) }
        }
        release.store(true, ordering: .relaxed)
        try await holder.value
        var returned: [Int] = []
        for task in tasks { returned.append(try await task.value) }
        #expect(returned == [1, 2, 3, 4])
        // The holder's batch had no intents; the batch got the intents of its leading writes
        // (up to the first write without one), and its second, isolated run got none.
        #expect(record.intentsSeen.withLock { $0 } == [[], [first, second], []])
        #expect(record.committed.withLock { $0 } == [1, 2, 3, 4])
        #expect(writer.statistics.reruns == 1)
    }

    @Test("a batch without failures uses no savepoints; after a failure the batch runs again isolated, and so do the next ones")
    func savepointsOnlyAfterAFailure() async throws {
        let ledger = Ledger()
        let writer = ledger.groupCommit()
        /// Holds the writer until `count` writes queued up behind it, so that they form one batch.
        func blocker(until count: Int) async throws -> Task<Void, any Error> {
            ledger.arrivals.store(0, ordering: .relaxed)
            let task = Task {
                try await writer.write { ledger in
                    ledger.arrivals.store(1, ordering: .relaxed)
                    while writer.queuedWrites < count { try? await Task.sleep(for: .milliseconds(1)) }
                    ledger.add(-count)
                }
            }
            while ledger.arrivals.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(1)) }
            return task
        }
        /// Queues writes of `values` in this order (each after the previous one is queued), each
        /// failing if it is `failing`; returns who succeeded once all are done.
        func issue(_ values: Range<Int>, failing: Int? = nil) async throws -> [Int: Bool] {
            try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for (queued, value) in values.enumerated() {
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
                    // The last one needs no wait: the blocker lets the batch go only once it queued.
                    while queued < values.count - 1, writer.queuedWrites <= queued { try await Task.sleep(for: .milliseconds(1)) }
                }
                var results: [Int: Bool] = [:]
                for try await (value, ok) in group { results[value] = ok }
                return results
            }
        }
        func counts() -> (savepoints: Int, runs: Int) { ledger.state.withLock { ($0.savepoints, $0.runs) } }

        let first = try await blocker(until: 6)
        #expect(try await issue(0..<6).values.allSatisfy { $0 })
        try await first.value
        #expect(counts() == (0, 7))

        // One batch of five whose third write fails: 10, 11, 12 ran; then all five again, every
        // one but the first in a savepoint, and only 12 fails.
        let second = try await blocker(until: 5)
        #expect(try await issue(10..<15, failing: 12) == [10: true, 11: true, 12: false, 13: true, 14: true])
        try await second.value
        #expect(counts() == (4, 7 + 1 + 3 + 5))
        let committed = ledger.state.withLock { $0.committed }
        #expect(Set(committed) == Set([-6, 0, 1, 2, 3, 4, 5, -5, 10, 11, 13, 14]))
        #expect(committed.count == 12)

        // The batches right after a failure start isolated: a savepoint for the second write.
        let third = try await blocker(until: 2)
        #expect(try await issue(20..<22).values.allSatisfy { $0 })
        try await third.value
        #expect(counts() == (4 + 1, 16 + 1 + 2))
    }

    @Test("events of a write that ran twice (a later write of its batch failed) are published once, with their committed positions")
    func rerunWritesPublishOnce() async throws {
        let env = try await TestEnvironment()
        let context = env.services.context
        let user = UserID.random()
        let (subscription, _) = await context.hub.subscribe(user: user, session: nil)
        struct Refused: Error {}
        final class Flag: Sendable { let isSet = Atomic<Bool>(false) }
        let holding = Flag(), release = Flag()
        // Holds the writer while the next two writes queue up, in this order, into one batch
        // (waiting on the queue, not on time: a loaded machine must not split the batch).
        let blocker = Task {
            try await context.write { _, _ in
                holding.isSet.store(true, ordering: .relaxed)
                while !release.isSet.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(1)) }
            }
        }
        let store = env.store
        func waitUntil(_ condition: () -> Bool) async throws {
            let deadline = ContinuousClock.now + .seconds(10)
            while !condition() {
                try #require(ContinuousClock.now < deadline, "timed out lining up the batch")
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        try await waitUntil { holding.isSet.load(ordering: .relaxed) }
        final class Runs: Sendable { let count = Atomic<Int>(0) }
        let runs = Runs()
        let published = Task {
            try await context.write { tx, log in
                runs.count.add(1, ordering: .relaxed)
                return try await log.append(.typing(chatID: .random(), userID: user), to: [user], in: tx)
            }
        }
        try await waitUntil { store.queuedWrites == 1 }
        let refused = Task {
            try await context.write { tx, log in
                try await log.append(.typing(chatID: .random(), userID: user), to: [user], in: tx)
                throw Refused()
            }
        }
        try await waitUntil { store.queuedWrites == 2 }
        release.isSet.store(true, ordering: .relaxed)
        try await blocker.value
        let seq = try await published.value
        await #expect(throws: Refused.self) { try await refused.value }
        // Only the committed event arrives, once.
        try await Task.sleep(for: .milliseconds(200))
        _ = await context.hub.unsubscribe(subscription)
        var received: [EventSeq] = []
        for await delivery in subscription.stream {
            if case .durable(let position, _, _) = delivery { received.append(position) }
        }
        #expect(runs.count.load(ordering: .relaxed) == 2)  // it did run again
        #expect(received == [seq])
        #expect(try await env.store.headSeq() == seq)
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

    @Test("a first write that lost to a concurrent transaction (contention) runs once more and commits; one that loses again gets the error")
    func contentionRunsOnceMore() async throws {
        let ledger = Ledger()
        let writer = ledger.groupCommit()
        let attempts = Atomic<Int>(0)
        let value = try await writer.write { ledger -> Int in
            if attempts.add(1, ordering: .relaxed).newValue == 1 { throw StoreError.contention("deadlock detected") }
            ledger.add(7)
            return 7
        }
        #expect(value == 7)
        #expect(attempts.load(ordering: .relaxed) == 2)
        #expect(ledger.state.withLock { $0.committed } == [7])
        #expect(writer.statistics.reruns == 1)

        let always = Atomic<Int>(0)
        await #expect {
            try await writer.write { _ in
                always.add(1, ordering: .relaxed)
                throw StoreError.contention("deadlock detected")
            }
        } throws: { error in
            if case StoreError.contention = error { true } else { false }
        }
        #expect(always.load(ordering: .relaxed) == 2)  // once more, not forever
        #expect(writer.statistics.reruns == 2)
        #expect(ledger.state.withLock { $0.committed } == [7])
        // The rerun arms no savepoints: the next batch runs without them.
        try await writer.write { $0.add(8) }
        #expect(ledger.state.withLock { $0.savepoints } == 0)
    }
}
