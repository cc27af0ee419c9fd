import Foundation
import Synchronization

/// A sliding-window counter per key (an account, an address), kept in memory on this node.
///
/// ``acquire(_:now:)`` checks and counts in one step, so many parallel attempts cannot all slip
/// through before the first failure is recorded; an attempt that turned out not to count is
/// given back (``release(_:)``). Login limits that must hold for a cluster are counted in the
/// store instead (``LoginThrottle``); this one is their flood gate and the typing throttle.
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

    /// Counts an attempt for `key` unless it is over its limit; returns the seconds to wait when it is.
    package func acquire(_ key: String, now: Date = Date()) -> Int? {
        state.withLock { table in
            var hits = table[key] ?? []
            hits.removeAll { now.timeIntervalSince($0) >= window }
            if hits.count >= limit, let oldest = hits.first {
                table[key] = hits
                return max(1, Int((window - now.timeIntervalSince(oldest)).rounded(.up)))
            }
            if table[key] == nil, table.count >= maxKeys { Self.evict(&table, now: now, window: window, keep: maxKeys / 2) }
            hits.append(now)
            table[key] = hits
            return nil
        }
    }

    /// Gives back the most recent attempt of `key` (it turned out not to count, e.g. it succeeded).
    package func release(_ key: String) {
        state.withLock { table in
            guard var hits = table[key], !hits.isEmpty else { return }
            hits.removeLast()
            table[key] = hits.isEmpty ? nil : hits
        }
    }

    /// Bounded memory under a flood of distinct keys: drop expired keys, then the keys whose last
    /// attempt is oldest. Keys with recent failures (an account under attack) are kept.
    private static func evict(_ table: inout [String: [Date]], now: Date, window: TimeInterval, keep: Int) {
        table = table.filter { $0.value.contains { now.timeIntervalSince($0) < window } }
        guard table.count > keep else { return }
        let newest = table.sorted { ($0.value.last ?? .distantPast) > ($1.value.last ?? .distantPast) }.prefix(keep)
        table = Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })
    }
}
