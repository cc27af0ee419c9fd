import Foundation
import Logging
import PostgresNIO
import Testing
import VestnikCore
import VestnikModel
@testable import VestnikStorePostgres
import VestnikStoreTesting

/// Statements that take too long on a server that still answers: PostgreSQL's own
/// `statement_timeout`, set below the answer timeout (``PostgresStoreConfiguration``), cancels
/// them, which also ends their sessions' locks. A server that does not answer at all (a frozen
/// cluster, the ``AnswerWatchdog``'s case) is `DatabaseOutageTests.unansweringServer`.
@Suite(.enabled(if: serverURL != nil, "VESTNIK_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against"), .timeLimit(.minutes(2)))
struct PostgresAnswerWatchdogTests {
    @Test("a statement waiting on a lock past the timeout is cancelled by the server and fails as unavailable; the store keeps serving")
    func overlongStatementFails() async throws {
        try await withStoreAnsweringWithin(.seconds(2)) { store, configuration in
            let user = try await StoreConformance.insertUser(store, StoreConformance.makeUser("held"))
            // Released after 10 s at the latest, so that a regression fails rather than hangs.
            try await withRowHeld("SELECT 1 FROM users WHERE id = '\(user.id)' FOR UPDATE", on: configuration, for: .seconds(10)) {
                let started = ContinuousClock.now
                // A write transaction reads the user row for update, which waits for the holder.
                // The server cancels it at the statement timeout (4/5 of the answer timeout: 1.6 s),
                // before the watchdog would close its connection (2–2.5 s, another message).
                await #expect {
                    _ = try await store.write(intent: nil) { try await $0.user(user.id) }
                } throws: { error in
                    guard case StoreError.unavailable(let detail) = error else { return false }
                    return detail.contains("cancelled a statement")
                }
                let waited = ContinuousClock.now - started
                #expect(waited >= .milliseconds(1500) && waited < .seconds(5), "failed at the statement timeout: \(waited)")
            }
            // The probe finds the server answering: the pools stay, requests are served.
            #expect(try await store.write(intent: nil) { try await $0.user(user.id) }?.user.login == "held")
            #expect(try await store.headSeq() == EventSeq(0))
        }
    }

    @Test("a migration waiting for another node's migration is not cut by either timeout")
    func migrationWaitsUncut() async throws {
        try await withStoreAnsweringWithin(.seconds(1)) { store, configuration in
            let started = ContinuousClock.now
            try await withRowHeld("SELECT pg_advisory_xact_lock(\(PostgresStore.migrationLockKey))", on: configuration, for: .seconds(2)) {
                // Waits ~2 s for the lock, twice the answer timeout.
                try await store.migrate()
            }
            #expect(ContinuousClock.now - started >= .milliseconds(1900), "the migration waited for the lock")
        }
    }

    /// A migrated store on a fresh database, with `answerTimeout`.
    private func withStoreAnsweringWithin(
        _ answerTimeout: Duration, _ body: (PostgresStore, PostgresStoreConfiguration) async throws -> Void
    ) async throws {
        try await withFreshDatabase { server in
            var configuration = server
            configuration.answerTimeout = answerTimeout
            try await withRunningStore(configuration) { store in
                try await store.migrate()
                try await body(store, configuration)
            }
        }
    }

    /// Runs `body` while another session holds what `lockingQuery` locks; with `duration` it is
    /// released after that long or once `body` returns, whichever comes first, else once it returns.
    private func withRowHeld<T: Sendable>(
        _ lockingQuery: String, on configuration: PostgresStoreConfiguration, for duration: Duration? = nil,
        _ body: @Sendable () async throws -> T
    ) async throws -> T {
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let holder = try await PostgresConnection.connect(
            configuration: PostgresConnection.Configuration(
                host: configuration.host, port: configuration.port, username: configuration.username, password: configuration.password,
                database: configuration.database, tls: .disable),
            id: 1, logger: logger)
        try await holder.query("BEGIN", logger: logger)
        try await holder.query(PostgresQuery(unsafeSQL: lockingQuery), logger: logger)
        let timedRelease = duration.map { duration in
            Task {
                try? await Task.sleep(for: duration)
                _ = try? await holder.query("COMMIT", logger: logger)
            }
        }
        do {
            let result = try await body()
            if let timedRelease {
                timedRelease.cancel()  // ends its sleep early; it commits at once
                await timedRelease.value
            } else {
                try await holder.query("COMMIT", logger: logger)
            }
            try await holder.close()
            return result
        } catch {
            await timedRelease?.value
            try? await holder.close()
            throw error
        }
    }
}
