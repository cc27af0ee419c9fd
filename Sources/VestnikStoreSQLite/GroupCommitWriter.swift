import Synchronization
import VestnikCore

/// Runs write transactions on the single writer connection, committing concurrent ones together.
///
/// Why: SQLite has one writer, so concurrent sends queue behind each other, and each paid its own
/// `BEGIN … COMMIT` with a WAL sync. Here the first writer to arrive starts a batch; everything
/// that queued while the previous batch was committing joins the next one. Each write still runs
/// alone and in arrival order, inside its own `SAVEPOINT`, so one that throws rolls back only its
/// own changes; the batch is then committed once, and every write in it returns only after that
/// commit (durability per acknowledged write is unchanged). If the commit itself fails, every
/// write in the batch fails: none of their events was published, because publishing happens after
/// `write` returns.
final class GroupCommitWriter: Sendable {
    /// One queued write: runs its body inside the batch, then learns how the batch ended.
    private struct PendingWrite: Sendable {
        /// Runs the body; true if it succeeded (its savepoint is then released, else rolled back).
        let run: @Sendable (SQLiteAccess) async -> Bool
        /// Resumes the caller: with the body's outcome, or with the batch's commit error.
        let complete: @Sendable ((any Error)?) -> Void
    }

    private struct State {
        var queue: [PendingWrite] = []
        var leading = false
    }

    private let pool: ConnectionPool
    private let state = Mutex(State())
    /// An upper bound on one batch, so a steady stream of writes still commits regularly.
    private let maxBatch: Int

    init(pool: ConnectionPool, maxBatch: Int = 128) {
        self.pool = pool
        self.maxBatch = maxBatch
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteAccess) async throws -> T) async throws -> T {
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
                        let result = outcome.withLock { $0 } ?? .failure(StoreError.backend("write finished without an outcome"))
                        continuation.resume(with: result)
                    }
                })
            let startLeader = state.withLock { state -> Bool in
                state.queue.append(pending)
                guard !state.leading else { return false }
                state.leading = true
                return true
            }
            if startLeader {
                Task { await self.commitBatches() }
            }
        }
    }

    /// Takes batches off the queue until it is empty, then steps down.
    private func commitBatches() async {
        while true {
            let batch = state.withLock { state -> [PendingWrite] in
                let count = min(state.queue.count, maxBatch)
                let batch = Array(state.queue.prefix(count))
                state.queue.removeFirst(count)
                if batch.isEmpty { state.leading = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            let commitError = await commit(batch)
            for pending in batch { pending.complete(commitError) }
        }
    }

    /// Runs one batch in one transaction; returns the error that failed the whole batch, if any.
    private func commit(_ batch: [PendingWrite]) async -> (any Error)? {
        do {
            return try await pool.with { box -> (any Error)? in
                let connection = box.connection
                // IMMEDIATE takes the write lock up front, so the transaction never fails half-way
                // because another process (the admin CLI) started writing.
                try connection.exec("BEGIN IMMEDIATE")
                do {
                    let access = SQLiteAccess(box: box)
                    for pending in batch {
                        try connection.query("SAVEPOINT write")
                        if await pending.run(access) {
                            try connection.query("RELEASE write")
                        } else {
                            try connection.query("ROLLBACK TO write")
                            try connection.query("RELEASE write")
                        }
                    }
                    try connection.exec("COMMIT")
                    return nil
                } catch {
                    try? connection.exec("ROLLBACK")
                    return error
                }
            }
        } catch {
            return error
        }
    }
}
