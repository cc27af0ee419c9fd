import Dispatch
import Foundation
import Synchronization

/// Runs CPU-heavy synchronous work (password hashing) off Swift's cooperative thread pool, at most
/// `width` jobs at a time, with a bounded queue.
///
/// scrypt takes ~0.1 s and 32 MiB per call: on the cooperative pool (one thread per core) two
/// concurrent logins would stall every other request, and a flood of logins would exhaust memory.
package final class BlockingWorkPool: Sendable {
    private let queue: DispatchQueue
    private let width: Int
    private let maxWaiting: Int
    private let state = Mutex<State>(State())

    private struct State {
        var running = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    /// The pool is full: the caller should answer "busy" rather than queue more work.
    package struct Saturated: Error {}

    package init(label: String, width: Int, maxWaiting: Int) {
        queue = DispatchQueue(label: label, attributes: .concurrent)
        self.width = max(1, width)
        self.maxWaiting = maxWaiting
    }

    /// Whether ``run(_:)`` would refuse now: a caller with work to do first can refuse before it.
    package var isSaturated: Bool { state.withLock { $0.running >= width && $0.waiting.count >= maxWaiting } }

    /// Runs `work` on the pool's threads once a slot is free.
    package func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        try await acquireSlot()
        defer { releaseSlot() }
        return await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
    }

    private func acquireSlot() async throws {
        enum Decision { case go, wait, refuse }
        let decision: Decision = state.withLock { state in
            if state.running < width {
                state.running += 1
                return .go
            }
            return state.waiting.count >= maxWaiting ? .refuse : .wait
        }
        switch decision {
        case .go: return
        case .refuse: throw Saturated()
        case .wait:
            await withCheckedContinuation { continuation in
                let startNow = state.withLock { state -> Bool in
                    if state.running < width {
                        state.running += 1
                        return true
                    }
                    state.waiting.append(continuation)
                    return false
                }
                if startNow { continuation.resume() }
            }
        }
    }

    private func releaseSlot() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.running -= 1
                return nil
            }
            // The slot passes directly to the next waiter; `running` stays the same.
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
