import Foundation
import Synchronization

/// A sliding-window counter per key (an account, an address), kept in memory on this node.
///
/// Used for login attempts: each failure is recorded; while a key has `limit` failures inside
/// `window`, attempts are refused with the seconds until the oldest one expires.
package final class RateLimiter: Sendable {
    private let limit: Int
    private let window: TimeInterval
    private let maxKeys: Int
    private let state = Mutex<[String: [Date]]>([:])

    package init(limit: Int, window: TimeInterval, maxKeys: Int = 100_000) {
        self.limit = limit
        self.window = window
        self.maxKeys = maxKeys
    }

    /// Seconds to wait if `key` is over its limit now, else nil.
    package func retryAfter(_ key: String, now: Date = Date.millisecondNow()) -> Int? {
        state.withLock { table in
            guard var hits = table[key] else { return nil }
            hits.removeAll { now.timeIntervalSince($0) >= window }
            table[key] = hits.isEmpty ? nil : hits
            guard hits.count >= limit, let oldest = hits.first else { return nil }
            return max(1, Int((window - now.timeIntervalSince(oldest)).rounded(.up)))
        }
    }

    /// Counts one attempt against `key`.
    package func record(_ key: String, now: Date = Date.millisecondNow()) {
        state.withLock { table in
            if table.count >= maxKeys, table[key] == nil {
                // Bounded memory under a flood of distinct keys: forget expired entries first.
                table = table.filter { $0.value.contains { now.timeIntervalSince($0) < window } }
                if table.count >= maxKeys { table.removeAll(keepingCapacity: true) }
            }
            var hits = table[key] ?? []
            hits.removeAll { now.timeIntervalSince($0) >= window }
            hits.append(now)
            if hits.count > limit { hits.removeFirst(hits.count - limit) }
            table[key] = hits
        }
    }

    /// Forgets `key` (after a successful login).
    package func reset(_ key: String) {
        _ = state.withLock { $0.removeValue(forKey: key) }
    }
}
