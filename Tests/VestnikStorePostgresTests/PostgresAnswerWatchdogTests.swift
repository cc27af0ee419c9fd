import Foundation
import Logging
import PostgresNIO
import Testing
import VestnikCore
import VestnikModel
@testable import VestnikStorePostgres
import VestnikStoreTesting

/// The answer timeout (``AnswerWatchdog``) against a statement that waits on a row another
/// session holds: PostgreSQL is there but does not answer, as a frozen server would not. The
/// whole-server case (a frozen cluster) is `DatabaseOutageTests.unansweringServer`.
@Suite(.enabled(if: serverURL != nil, "VESTNIK_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against"), .timeLimit(.minutes(2)))
struct PostgresAnswerWatchdogTests {
    @Test("a statement unanswered for the answer timeout fails as unavailable; the server still answers, so the store keeps serving")
    func unansweredStatementFails() async throws {
        try await withStoreAnsweringWithin(.seconds(1)) { store, configuration in
            let user = try await StoreConformance.insertUser(store, StoreConformance.makeUser("held"))
            try await withRowHeld("SELECT 1 FROM users WHERE id = '\(user.id)' FOR UPDATE", on: configuration) {
                let started = ContinuousClock.now
                // A write transaction reads the user row for update, which waits for the holder.
                await #expect {
                    _ = try await store.write(intent: nil) { try await $0.user(user.id) }
                } throws: { error in
                    guard case StoreError.unavailable = error else { return false }
                    return true
                }
                let waited = ContinuousClock.now - started
                #expect(waited >= .milliseconds(900) && waited < .seconds(4), "failed after the timeout and one sweep: \(waited)")
            }
            // The probe finds the server answering: the pools stay, requests are served.
            #expect(try await store.write(intent: nil) { try await $0.user(user.id) }?.user.login == "held")
            #expect(try await store.headSeq() == EventSeq(0))
        }
    }

    @Test("pruning the log is not cut by the answer timeout: a large backlog may take longer to delete")
    func pruneIsUnwatched() async throws {
        try await withStoreAnsweringWithin(.seconds(1)) { store, configuration in
            let pruned = try await withRowHeld("SELECT 1 FROM log_state WHERE id = 1 FOR UPDATE", on: configuration, for: .seconds(2)) {
                // The prune waits ~2 s for the counter row, twice the timeout.
                try await store.write(intent: nil) { try await $0.pruneEvents(before: Date.millisecondNow()) }
            }
            #expect(pruned == 0)
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

    /// Runs `body` while another session holds the rows `lockingQuery` locks; with `duration`
    /// the rows are released that long after `body` started (concurrently), else once it returns.
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
            if let timedRelease { await timedRelease.value } else { try await holder.query("COMMIT", logger: logger) }
            try await holder.close()
            return result
        } catch {
            await timedRelease?.value
            try? await holder.close()
            throw error
        }
    }
}
