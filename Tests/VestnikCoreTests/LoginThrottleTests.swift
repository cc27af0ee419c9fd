import Crypto
import Foundation
import Logging
import Testing
import VestnikCore
import VestnikModel

/// What a node keeps in memory in front of the store's login counts (decision 0017).
@Suite struct LoginThrottleTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test("a refused account is answered from memory, without a write, until the store is asked again; a reset elsewhere then lifts it")
    func refusalRemembered() async throws {
        let environment = try await TestEnvironment()
        let store = CountingStore(environment.store)
        let secret = SymmetricKey(size: .bits256)
        let limits = LoginLimits(failuresPerAccount: 2, attemptsPerAddress: 100, window: 60)
        // The recheck is seconds away: everything up to the sleep below must happen before it,
        // also on a loaded machine (300 ms was seen to run out there).
        let throttle = LoginThrottle(store: store, limits: limits, secret: secret, logger: Self.logger, recheckInterval: .seconds(3))
        _ = try await throttle.begin(login: "alice", address: "10.0.0.1")
        _ = try await throttle.begin(login: "alice", address: "10.0.0.2")
        #expect(await errorCode { _ = try await throttle.begin(login: "alice", address: "10.0.0.3") } == "rate_limited")
        let asked = store.attemptsCounted
        for index in 0..<20 {
            #expect(await errorCode { _ = try await throttle.begin(login: "alice", address: "10.0.1.\(index)") } == "rate_limited")
        }
        #expect(store.attemptsCounted == asked, "20 retries of a refused account asked the store nothing")
        // Another node's password reset forgets the count in the store; this node still answers
        // from memory until its recheck, then asks the store and lets the login through.
        try await store.forgetAttempts(under: .account("alice", keyedBy: secret))
        #expect(await errorCode { _ = try await throttle.begin(login: "alice", address: "10.0.0.4") } == "rate_limited")
        try await Task.sleep(for: .milliseconds(3_100))
        _ = try await throttle.begin(login: "alice", address: "10.0.0.5")
        #expect(store.attemptsCounted > asked)
    }

    @Test("a locked account does not use up its address's attempts; the address limit refuses on its own")
    func addressBudget() async throws {
        let environment = try await TestEnvironment()
        let throttle = LoginThrottle(
            store: environment.store, limits: LoginLimits(failuresPerAccount: 1, attemptsPerAddress: 3, window: 60),
            secret: SymmetricKey(size: .bits256), logger: Self.logger)
        _ = try await throttle.begin(login: "alice", address: "10.0.0.1")
        // Refusals of the locked account from the shared address cost the address nothing.
        for _ in 0..<5 { #expect(await errorCode { _ = try await throttle.begin(login: "alice", address: "10.0.0.1") } == "rate_limited") }
        _ = try await throttle.begin(login: "bob", address: "10.0.0.1")
        _ = try await throttle.begin(login: "carol", address: "10.0.0.1")
        #expect(await errorCode { _ = try await throttle.begin(login: "dave", address: "10.0.0.1") } == "rate_limited")
        _ = try await throttle.begin(login: "dave", address: "10.0.0.2")
    }

    @Test("a success gives everything back: the account's failures are forgotten, the address's attempt returned")
    func successForgets() async throws {
        let environment = try await TestEnvironment()
        let throttle = LoginThrottle(
            store: environment.store, limits: LoginLimits(failuresPerAccount: 2, attemptsPerAddress: 2, window: 60),
            secret: SymmetricKey(size: .bits256), logger: Self.logger)
        _ = try await throttle.begin(login: "alice", address: "10.0.0.1")
        await throttle.succeeded(try await throttle.begin(login: "alice", address: "10.0.0.1"))
        // The failure before the success is forgotten too, and the address has one attempt used.
        _ = try await throttle.begin(login: "alice", address: "10.0.0.1")
        #expect(await errorCode { _ = try await throttle.begin(login: "alice", address: "10.0.0.1") } == "rate_limited")
        _ = try await throttle.begin(login: "alice", address: "10.0.0.2")
        #expect(await errorCode { _ = try await throttle.begin(login: "alice", address: "10.0.0.3") } == "rate_limited")
    }
}
