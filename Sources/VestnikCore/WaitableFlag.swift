import Synchronization

/// A flag tasks can wait for: the one mechanism behind ``BotOutboxSignal`` (set by every poke,
/// cleared by the delivery loop) and ``ReadinessLatch`` (set once, never cleared).
///
/// Setting it wakes every waiter; a waiter whose task is cancelled returns at once.
final class WaitableFlag: Sendable {
    private struct State {
        var isSet = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    var isSet: Bool { state.withLock { $0.isSet } }

    func set() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.isSet = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Whether the flag was set; clears it.
    func take() -> Bool { state.withLock { state in defer { state.isSet = false }; return state.isSet } }

    /// Returns once the flag is set (at once if it is), or when the task is cancelled.
    func wait() async {
        let token = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Checked under the lock: either the cancellation handler below finds the stored
                // waiter, or this sees the cancellation (the flag is set before the handler runs).
                let resumeNow = state.withLock { state -> Bool in
                    if state.isSet || Task.isCancelled { return true }
                    state.waiters[token] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: token) }?.resume()
        }
    }

    /// Like ``wait()``, but gives up after `timeout`.
    func wait(atMost timeout: Duration) async {
        guard timeout > .zero, !isSet else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wait() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }
}
