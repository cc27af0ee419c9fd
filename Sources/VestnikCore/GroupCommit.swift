import Synchronization

/// Runs a store's write transactions one after another, committing concurrent ones together.
///
/// Why: every write transaction ends in a durable commit (a WAL sync in SQLite, a WAL flush and
/// lock release in PostgreSQL), and concurrent sends to one chat would otherwise queue on the
/// writer or on the chat's row lock, each paying for its own commit. Here the first write to
/// arrive starts a batch; everything that queues while that batch commits joins the next one.
/// Each write still runs alone and in arrival order, and one that throws leaves no trace (see
/// `commit` for how); the batch then commits once, and every write in it returns only after that
/// commit (an acknowledged write is as durable as before). If the commit itself fails, every
/// write of the batch fails, and none of their events was published, because publishing happens
/// after `write` returns (``CoreContext/write(_:)``).
///
/// A write's body may run more than once (when a write of its batch fails, or the batch lost to
/// a concurrent transaction, see `commit`): only
/// its last run counts, so a body must keep its effects inside the transaction
/// and its result (``CoreContext/write(_:)`` resets its event log for every run).
package final class GroupCommit<Access: Sendable>: Sendable {
    /// The savepoint steps around one write inside a batch.
    package enum SavepointStep: Sendable {
        case open, release, rollBack
    }

    /// Opens a write transaction, runs the batch's writes in it, commits; throws (after rolling
    /// back) if anything in it threw. `intents` announces the batch's leading writes (see
    /// ``WriteIntent``): the intents of its first writes, up to the first write without one;
    /// empty when the batch runs isolated (with savepoints), which must not defer anything.
    package typealias Transaction = @Sendable (
        _ intents: [WriteIntent], _ writes: @Sendable (Access) async throws -> Void
    ) async throws -> Void
    /// Runs one savepoint step on the transaction's connection.
    package typealias Savepoint = @Sendable (Access, SavepointStep) async throws -> Void
    /// Runs after a batch's last write, inside its transaction, before the commit: an adapter
    /// writes there what it held back from the writes (see ``WriteIntent``). If it throws in a
    /// batch that ran without savepoints, the batch runs again isolated, where nothing is held
    /// back, so every write meets its own error (as when a write itself fails).
    package typealias BeforeCommit = @Sendable (Access) async throws -> Void

    /// One queued write: runs its body inside the batch, then learns how the batch ended.
    private struct PendingWrite: Sendable {
        let intent: WriteIntent?
        /// Runs the body; nil if it succeeded (its savepoint is then released, else rolled back),
        /// else what it threw.
        let run: @Sendable (Access) async -> (any Error)?
        /// Resumes the caller: with the body's outcome, or with the batch's commit error.
        let complete: @Sendable ((any Error)?) -> Void
    }

    /// Rolls back a batch run without savepoints because the write at `index` failed.
    private struct WriteFailed: Error {
        let index: Int
        /// It lost to a concurrent transaction (``StoreError/contention(_:)``), not to its own input.
        var contended = false
    }

    private struct Queue {
        var pending: [PendingWrite] = []
        var leading = false
    }

    private let queue = Mutex(Queue())
    /// Batches that start with savepoints because a recent batch had a failing write.
    private let isolatedBatchesLeft = Atomic<Int>(0)
    static var isolatedBatchesAfterFailure: Int { 16 }

    /// Writes waiting for the next batch (tests use it to line writes up deterministically).
    package var queuedWrites: Int { queue.withLock { $0.pending.count } }
    /// Batches that ran again after a failure in them (see `commit`): each costs a transaction,
    /// so a steady rise means writes keep failing or an adapter's batching does.
    private let rerunCount = Atomic<Int>(0)
    private let batchCount = Atomic<Int>(0)
    private let writeCount = Atomic<Int>(0)

    /// Totals since start, for operators (`GET /metrics`).
    package var statistics: WriteBatchStatistics {
        WriteBatchStatistics(
            batches: batchCount.load(ordering: .relaxed), writes: writeCount.load(ordering: .relaxed), reruns: rerunCount.load(ordering: .relaxed))
    }
    private let transaction: Transaction
    private let savepoint: Savepoint
    private let beforeCommit: BeforeCommit
    /// Where the leader runs, if not on the global executor (see `init`).
    private let leaderExecutor: (any TaskExecutor)?
    /// An upper bound on one batch, so a steady stream of writes still commits regularly.
    private let maxBatch: Int

    /// - Parameter leaderExecutor: where the task that runs the batches one after another lives.
    ///   An adapter whose transactions run on one thread of their own (PostgreSQL's writer
    ///   connection) passes that thread's executor, so a batch's end and the next one's start
    ///   need no hop between threads; nil runs it on the global executor.
    package init(
        maxBatch: Int = 128, transaction: @escaping Transaction, savepoint: @escaping Savepoint, beforeCommit: @escaping BeforeCommit = { _ in },
        leaderExecutor: (any TaskExecutor)? = nil
    ) {
        self.leaderExecutor = leaderExecutor
        self.maxBatch = maxBatch
        self.transaction = transaction
        self.savepoint = savepoint
        self.beforeCommit = beforeCommit
    }

    /// Runs `body` in the next batch and returns its result once that batch has committed.
    /// - Parameter intent: what `body` is about to do, passed on to the transaction.
    package func write<T: Sendable>(intent: WriteIntent? = nil, _ body: @escaping @Sendable (Access) async throws -> T) async throws -> T {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let pending = PendingWrite(
                intent: intent,
                run: { access in
                    do {
                        let value = try await body(access)
                        outcome.withLock { $0 = .success(value) }
                        return nil
                    } catch {
                        outcome.withLock { $0 = .failure(error) }
                        return error
                    }
                },
                complete: { commitError in
                    if let commitError {
                        continuation.resume(throwing: commitError)
                    } else {
                        let result = outcome.withLock { $0 } ?? .failure(StoreError.backend("a write finished without an outcome"))
                        continuation.resume(with: result)
                    }
                })
            let startLeader = queue.withLock { queue -> Bool in
                queue.pending.append(pending)
                guard !queue.leading else { return false }
                queue.leading = true
                return true
            }
            if startLeader {
                // The leader outlives this call only while the queue is non-empty; it needs no
                // owner because every write it runs has a caller waiting on its continuation.
                if let executor = self.leaderExecutor {
                    Task(executorPreference: executor) { await self.commitBatches() }
                } else {
                    Task { await self.commitBatches() }
                }
            }
        }
    }

    /// Takes batches off the queue until it is empty, then steps down.
    private func commitBatches() async {
        while true {
            let batch = queue.withLock { queue -> [PendingWrite] in
                let count = min(queue.pending.count, maxBatch)
                let batch = Array(queue.pending.prefix(count))
                queue.pending.removeFirst(count)
                if batch.isEmpty { queue.leading = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            await commit(batch[...])
        }
    }

    /// Runs one batch in one transaction, and resumes every write of it.
    ///
    /// Optimistically first: every write runs straight in the transaction, without savepoints,
    /// because a savepoint costs a statement (a round trip on PostgreSQL) per write and writes
    /// rarely fail. If one does, the transaction is rolled back and the batch runs again in a new
    /// one, now with a savepoint around every write but the first, so that a failure undoes only
    /// its own write. The failed write stays in the batch: its first error may have come from
    /// the writes before it, which were rolled back, so only the isolated run decides its outcome.
    /// A failure of a transaction's first write is final (nothing ran before it): that write
    /// leaves, and the rest runs again; except, once per batch, a first write that lost a deadlock
    /// or serialization check to another node's transaction, which says nothing about the write
    /// itself and usually succeeds when run again. A batch thus runs at most three times, plus
    /// once per failure of its first write. After a failure the next ``isolatedBatchesAfterFailure`` batches start
    /// isolated, so a client whose writes keep failing cannot make every batch run twice.
    private func commit(_ batch: ArraySlice<PendingWrite>) async {
        var remaining = Array(batch)
        var isolated = isolatedBatchesLeft.load(ordering: .relaxed) > 0
        if isolated { isolatedBatchesLeft.subtract(1, ordering: .relaxed) }
        var firstRun = true
        var contentionRetried = false
        batchCount.add(1, ordering: .relaxed)
        writeCount.add(batch.count, ordering: .relaxed)
        while !remaining.isEmpty {
            if !firstRun { rerunCount.add(1, ordering: .relaxed) }
            firstRun = false
            let writes = remaining
            let savepoint = self.savepoint
            let beforeCommit = self.beforeCommit
            var intents: [WriteIntent] = []
            if !isolated {
                for pending in writes {
                    guard let intent = pending.intent else { break }
                    intents.append(intent)
                }
            }
            let reachedWrites = Atomic<Bool>(false)
            do {
                try await transaction(intents) { [isolated] access in
                    reachedWrites.store(true, ordering: .relaxed)
                    for (index, pending) in writes.enumerated() {
                        if isolated, index > 0 {
                            try await savepoint(access, .open)
                            if let error = await pending.run(access) {
                                try Self.rethrowIfUnavailable(error)
                                try await savepoint(access, .rollBack)
                            } else {
                                try await savepoint(access, .release)
                            }
                        } else if let error = await pending.run(access) {
                            try Self.rethrowIfUnavailable(error)
                            var contended = false
                            if case StoreError.contention = error { contended = true }
                            throw WriteFailed(index: index, contended: contended)
                        }
                    }
                    do {
                        try await beforeCommit(access)
                    } catch where !isolated {
                        // Past the last write: no write is to blame yet, so none leaves the batch.
                        throw WriteFailed(index: writes.count)
                    }
                }
                for pending in writes { pending.complete(nil) }
                return
            } catch let failed as WriteFailed {
                if failed.index == 0, failed.contended, !contentionRetried {
                    // Lost to a concurrent transaction, not to its input: the batch runs once
                    // more as it was (no savepoints are armed: with them a later write that meets
                    // contention would get it as its answer instead of a rerun).
                    contentionRetried = true
                    continue
                }
                isolatedBatchesLeft.store(Self.isolatedBatchesAfterFailure, ordering: .relaxed)
                if failed.index == 0 {
                    // Nothing ran before it in its transaction: its own error is its outcome.
                    remaining.removeFirst().complete(nil)
                }
                isolated = true
            } catch StoreError.unavailable(let detail) {
                // The database is gone: no write is to blame, and running the batch again (or
                // the next ones isolated) cannot help; every write fails, and its client retries.
                for pending in writes { pending.complete(StoreError.unavailable(detail)) }
                return
            } catch {
                if !isolated, !intents.isEmpty, !reachedWrites.load(ordering: .relaxed) {
                    // The transaction failed while preparing for the announced writes (the
                    // adapter's batched read, which may meet a deadlock like any statement):
                    // run them again without preparation rather than fail them all for it.
                    isolatedBatchesLeft.store(Self.isolatedBatchesAfterFailure, ordering: .relaxed)
                    isolated = true
                    continue
                }
                for pending in writes { pending.complete(error) }
                return
            }
        }
    }
}

extension GroupCommit {
    /// A write that failed because the database is unavailable ends its whole batch with that
    /// error, instead of making the batch run again isolated: the adapter must see it (it checks
    /// the server), and every other write would meet it too.
    fileprivate static func rethrowIfUnavailable(_ error: any Error) throws {
        if case StoreError.unavailable = error { throw error }
    }
}

/// How a store's writes were batched (``GroupCommit``), counted since the process started.
///
/// Why operators want it: `writes / batches` is the number of writes each durable commit
/// carried, and reruns count batches that ran again because a write in them failed.
package struct WriteBatchStatistics: Sendable, Hashable {
    /// Batches committed (or failed), each counted once however often it ran.
    package var batches: Int
    /// Writes that joined a batch.
    package var writes: Int
    /// Extra runs of a batch after a failure in it.
    package var reruns: Int

    package init(batches: Int = 0, writes: Int = 0, reruns: Int = 0) {
        self.batches = batches
        self.writes = writes
        self.reruns = reruns
    }
}
