import Synchronization

/// Runs a store's write transactions one after another, committing concurrent ones together.
///
/// Why: every write transaction ends in a durable commit (a WAL sync in SQLite, a WAL flush and
/// lock release in PostgreSQL), and concurrent sends to one chat would otherwise queue on the
/// writer or on the chat's row lock, each paying for its own commit. Here the first write to
/// arrive starts a batch; everything that queues while that batch commits joins the next one.
/// Each write still runs alone and in arrival order, inside its own savepoint (except the first,
/// see `commit`), so one that throws rolls back only its own changes; the batch then commits
/// once, and every write in it returns only after that commit (an acknowledged write is as durable as before). If the commit itself
/// fails, every write of the batch fails, and none of their events was published, because
/// publishing happens after `write` returns (``CoreContext/write(_:)``).
package final class GroupCommit<Access: Sendable>: Sendable {
    /// The savepoint steps around one write inside a batch.
    package enum SavepointStep: Sendable {
        case open, release, rollBack
    }

    /// Opens a write transaction, runs the batch's writes in it, commits; throws (after rolling
    /// back) if anything in it threw.
    package typealias Transaction = @Sendable (_ writes: @Sendable (Access) async throws -> Void) async throws -> Void
    /// Runs one savepoint step on the transaction's connection.
    package typealias Savepoint = @Sendable (Access, SavepointStep) async throws -> Void

    /// One queued write: runs its body inside the batch, then learns how the batch ended.
    private struct PendingWrite: Sendable {
        /// Runs the body; true if it succeeded (its savepoint is then released, else rolled back).
        let run: @Sendable (Access) async -> Bool
        /// Resumes the caller: with the body's outcome, or with the batch's commit error.
        let complete: @Sendable ((any Error)?) -> Void
    }

    /// Rolls back a transaction whose first write failed.
    private struct FirstWriteFailed: Error {}

    private struct Queue {
        var pending: [PendingWrite] = []
        var leading = false
    }

    private let queue = Mutex(Queue())
    private let transaction: Transaction
    private let savepoint: Savepoint
    /// An upper bound on one batch, so a steady stream of writes still commits regularly.
    private let maxBatch: Int

    package init(maxBatch: Int = 128, transaction: @escaping Transaction, savepoint: @escaping Savepoint) {
        self.maxBatch = maxBatch
        self.transaction = transaction
        self.savepoint = savepoint
    }

    /// Runs `body` in the next batch and returns its result once that batch has committed.
    package func write<T: Sendable>(_ body: @escaping @Sendable (Access) async throws -> T) async throws -> T {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let pending = PendingWrite(
                run: { access in
                    do {
                        let value = try await body(access)
                        outcome.withLock { $0 = .success(value) }
                        return true
                    } catch {
                        outcome.withLock { $0 = .failure(error) }
                        return false
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
                Task { await self.commitBatches() }
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
    /// The first write runs without a savepoint: if it fails, the transaction is rolled back
    /// (nothing else ran in it yet) and the rest of the batch starts over in a new one. Every
    /// later write gets a savepoint, so its failure undoes only its own changes. Under light
    /// load most batches hold one write, which then costs no savepoint statements at all.
    private func commit(_ batch: ArraySlice<PendingWrite>) async {
        var remaining = batch
        while let first = remaining.first {
            let rest = remaining.dropFirst()
            let savepoint = self.savepoint
            do {
                try await transaction { access in
                    guard await first.run(access) else { throw FirstWriteFailed() }
                    for pending in rest {
                        try await savepoint(access, .open)
                        if await pending.run(access) {
                            try await savepoint(access, .release)
                        } else {
                            try await savepoint(access, .rollBack)
                        }
                    }
                }
                for pending in remaining { pending.complete(nil) }
                return
            } catch is FirstWriteFailed {
                // Its own error is its outcome; the others have not run yet.
                first.complete(nil)
                remaining = rest
            } catch {
                for pending in remaining { pending.complete(error) }
                return
            }
        }
    }
}
