import Crypto
import Foundation
import Logging
import Synchronization

/// How many login attempts are allowed; each limit holds for the whole cluster (decision 0017).
package struct LoginLimits: Sendable, Hashable {
    /// Failed logins per account.
    package var perAccount: AttemptLimit
    /// Attempts per client address (the socket peer, or the address a trusted reverse proxy
    /// forwarded); generous because many users may share one address (NAT).
    package var perAddress: AttemptLimit

    package init(failuresPerAccount: Int, attemptsPerAddress: Int, window: TimeInterval) {
        perAccount = AttemptLimit(count: failuresPerAccount, window: window)
        perAddress = AttemptLimit(count: attemptsPerAddress, window: window)
    }
}

/// Login attempts per account and per client address, counted in the store so that every node of
/// a deployment counts against the same limits (decision 0017).
///
/// Two things in this node's memory keep attacks off the store: a flood gate per address in front
/// of it (a sliding window allowing twice the address's count per window: the most the store's
/// rule lets through in any window, so it refuses only a client the store would refuse too), and
/// each key the store refused, with the time it named (a client
/// retrying a refused account is answered without a write, and the store is asked again only
/// every ``recheckInterval``, in case another node forgot the key's count: a password reset).
/// Both only refuse what the store refused or would refuse; neither ever lets more through.
package final class LoginThrottle: Sendable {
    /// One login's counted attempt.
    package struct Attempt: Sendable {
        fileprivate let account: AttemptKey
        fileprivate let address: AttemptKey
        fileprivate let gateKey: String
        /// What each count answered (what a give-back names).
        fileprivate let accountCountedUntil: Date
        fileprivate let addressCountedUntil: Date
    }

    private let store: any Store
    private let limits: LoginLimits
    private let secret: SymmetricKey
    private let floodGate: RateLimiter
    /// Per refused key: until when the store refused it, and when to ask the store again.
    private let refused = Mutex<[AttemptKey: (until: ContinuousClock.Instant, recheck: ContinuousClock.Instant)]>([:])
    private let recheckInterval: Duration
    private let logger: Logger
    /// Refusals remembered at most; beyond it the expired ones go, then all (forgetting one only
    /// means asking the store again).
    private static let maxRemembered = 100_000

    /// - Parameter secret: the key for ``AttemptKey``; every node of a deployment must have the
    ///   same (``SecretBox/derivedKey(for:)`` of the shared server key).
    /// - Parameter recheckInterval: how long a remembered refusal is answered from memory before
    ///   the store is asked again.
    package init(store: any Store, limits: LoginLimits, secret: SymmetricKey, logger: Logger, recheckInterval: Duration = .seconds(5)) {
        self.store = store
        self.limits = limits
        self.secret = secret
        self.logger = logger
        self.recheckInterval = recheckInterval
        floodGate = RateLimiter(limit: 2 * limits.perAddress.count, window: limits.perAddress.window)
    }

    /// Counts a login attempt for `login` from `address` before its password is checked, so that
    /// parallel guesses cannot all pass before the first failure is counted.
    /// - Throws: `rate_limited` with the seconds to wait, when either limit is reached.
    package func begin(login: String, address: String) async throws -> Attempt {
        let account = AttemptKey.account(login, keyedBy: secret)
        let address = (key: AttemptKey.address(address, keyedBy: secret), gate: "address:" + address)
        if let wait = rememberedRefusal(of: [address.key, account]) { throw Self.tooManyAttempts(wait) }
        if let wait = floodGate.acquire(address.gate) { throw Self.tooManyAttempts(wait) }
        let addressCount: AttemptCount
        do {
            addressCount = try await store.countAttempt(under: address.key, limit: limits.perAddress, at: nil)
        } catch {
            floodGate.release(address.gate)
            throw error
        }
        let addressCountedUntil: Date
        switch addressCount {
        case .counted(let until): addressCountedUntil = until
        case .refused(let wait):
            floodGate.release(address.gate)
            remember(address.key, refusedFor: wait)
            throw Self.tooManyAttempts(wait)
        }
        let accountCount: AttemptCount
        do {
            accountCount = try await store.countAttempt(under: account, limit: limits.perAccount, at: nil)
        } catch {
            await uncount(address.key, limits.perAddress, addressCountedUntil)
            floodGate.release(address.gate)
            throw error
        }
        switch accountCount {
        case .counted(let until):
            return Attempt(
                account: account, address: address.key, gateKey: address.gate, accountCountedUntil: until, addressCountedUntil: addressCountedUntil)
        case .refused(let wait):
            // A locked account does not use up its address's attempts (many users may share the
            // address).
            await uncount(address.key, limits.perAddress, addressCountedUntil)
            floodGate.release(address.gate)
            remember(account, refusedFor: wait)
            throw Self.tooManyAttempts(wait)
        }
    }

    /// The attempt got no answer about the password (the server was busy or failed): it does
    /// not count. Best effort.
    package func giveBack(_ attempt: Attempt) async {
        floodGate.release(attempt.gateKey)
        await uncount(attempt.address, limits.perAddress, attempt.addressCountedUntil)
        await uncount(attempt.account, limits.perAccount, attempt.accountCountedUntil)
    }

    /// The password was right: the account's failures are forgotten and the address's attempt
    /// given back. Best effort (a failure leaves the counts as if the attempt had failed).
    package func succeeded(_ attempt: Attempt) async {
        floodGate.release(attempt.gateKey)
        do {
            try await store.forgetAttempts(under: attempt.account)
        } catch {
            logger.backgroundFailure("clearing login failures failed", error)
        }
        await uncount(attempt.address, limits.perAddress, attempt.addressCountedUntil)
    }

    /// Gives back one counted attempt, best effort: a failure leaves it counted (logged).
    private func uncount(_ key: AttemptKey, _ limit: AttemptLimit, _ countedUntil: Date) async {
        do {
            try await store.uncountAttempt(under: key, limit: limit, countedUntil: countedUntil, at: nil)
        } catch {
            logger.backgroundFailure("giving back a login attempt failed", error)
        }
    }

    /// An administrator set a new password: its user may log in with it at once on this node, and
    /// within ``recheckInterval`` on a node that remembers a refusal of the account.
    package func forgetFailures(of login: String) async throws {
        let key = AttemptKey.account(login, keyedBy: secret)
        _ = refused.withLock { $0.removeValue(forKey: key) }
        try await store.forgetAttempts(under: key)
    }

    /// Deletes the counts whose attempts are all spent (housekeeping); returns how many.
    package func prune() async throws -> Int {
        var total = 0
        let batch = 5_000
        while true {
            let pruned = try await store.pruneAttempts(before: nil, limit: batch)
            total += pruned
            if pruned < batch { return total }
        }
    }

    private func rememberedRefusal(of keys: [AttemptKey]) -> Int? {
        let now = ContinuousClock.now
        return refused.withLock { table in
            keys.compactMap { key -> Duration? in
                guard let entry = table[key] else { return nil }
                guard entry.until > now, entry.recheck > now else {
                    table[key] = nil
                    return nil
                }
                return entry.until - now
            }.max().map { Self.seconds($0) }
        }
    }

    private func remember(_ key: AttemptKey, refusedFor wait: TimeInterval) {
        let now = ContinuousClock.now
        refused.withLock { table in
            if table.count >= Self.maxRemembered {
                table = table.filter { $0.value.until > now && $0.value.recheck > now }
                if table.count >= Self.maxRemembered { table.removeAll() }
            }
            table[key] = (until: now + .milliseconds(Int64((wait * 1000).rounded(.down))), recheck: now + recheckInterval)
        }
    }

    private static func seconds(_ duration: Duration) -> Int {
        max(1, Int((Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18).rounded(.up)))
    }

    private static func tooManyAttempts(_ wait: TimeInterval) -> VestnikError {
        tooManyAttempts(max(1, Int(wait.rounded(.up))))
    }

    private static func tooManyAttempts(_ wait: Int) -> VestnikError {
        VestnikError(.rateLimited, "Too many login attempts. Try again in \(wait) seconds.", retryAfter: wait)
    }
}
