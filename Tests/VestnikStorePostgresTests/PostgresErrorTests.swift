import Foundation
import Logging
import PostgresNIO
import Testing
import VestnikCore
@testable import VestnikStorePostgres

/// Which PostgreSQL failures the store reports as an outage (`unavailable`, which makes it probe
/// the server and clients retry, decision 0014), as a duplicate, or as a plain backend error.
/// The server itself raises each SQLSTATE (`RAISE … USING ERRCODE`), so the errors are the ones
/// PostgresNIO really hands the store.
@Suite(.enabled(if: serverURL != nil, "VESTNIK_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against"), .timeLimit(.minutes(2)))
struct PostgresErrorTests {
    enum Kind: Equatable { case unavailable, duplicate(String), contention, backend }
    static let logger = Logger(label: "test")

    static func kind(_ error: any Error) -> Kind? {
        switch PostgresErrors.translate(error) {
        case StoreError.unavailable: .unavailable
        case StoreError.duplicate(let what): .duplicate(what)
        case StoreError.contention: .contention
        case StoreError.backend: .backend
        default: nil
        }
    }

    @Test(
        "SQLSTATEs: connection class 08, a server going away (57P01–57P03) and a statement cancelled for taking too long (57014) are unavailability; deadlocks and serialization failures are contention; too many connections and others are backend errors",
        arguments: [
            ("57P01", Kind.unavailable), ("57P02", .unavailable), ("57P03", .unavailable), ("08006", .unavailable), ("08000", .unavailable),
            ("57014", .unavailable), ("53300", .backend), ("40001", .contention), ("40P01", .contention), ("42P01", .backend),
        ])
    func serverStates(sqlState: String, expected: Kind) async throws {
        try await withConnection { connection in
            let error = await #expect(throws: PSQLError.self) {
                try await connection.query(
                    PostgresQuery(unsafeSQL: "DO $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '\(sqlState)'; END $$"), logger: Self.logger)
            }
            let caught = try #require(error)
            #expect(Self.kind(caught) == expected, "\(sqlState): \(PostgresErrors.translate(caught))")
        }
    }

    @Test("a unique violation names what the SQLite adapter names for the same constraint; an unknown one names the constraint")
    func uniqueViolations() async throws {
        try await withConnection { connection in
            for (constraint, what) in [("users_login_key", "login"), ("messages_by_client_message_id", "client_message_id"), ("other_key", "other_key")] {
                let error = await #expect(throws: PSQLError.self) {
                    try await connection.query(
                        PostgresQuery(unsafeSQL: "DO $$ BEGIN RAISE EXCEPTION 'duplicate' USING ERRCODE = '23505', CONSTRAINT = '\(constraint)'; END $$"),
                        logger: Self.logger)
                }
                let caught = try #require(error)
                #expect(Self.kind(caught) == .duplicate(what), "\(constraint)")
            }
        }
    }

    @Test("a closed connection is an outage, and a backend error does not carry the bound values")
    func clientSide() async throws {
        let configuration = try PostgresStoreConfiguration(url: try #require(serverURL), poolSize: 1)
        let connection = try await PostgresConnection.connect(configuration: configuration.connectionConfiguration, id: 1, logger: Logger(label: "test"))
        let secret = "bound-value-\(UUID().uuidString)"
        let failed = await #expect(throws: PSQLError.self) {
            try await connection.query("SELECT 1 / (length(\(secret)::text) - length(\(secret)::text))", logger: Self.logger)
        }
        let caught = try #require(failed)
        let translated = "\(PostgresErrors.translate(caught))"
        #expect(Self.kind(caught) == .backend)
        #expect(translated.contains("22012"), "\(translated)")
        #expect(!translated.contains(secret), "\(translated)")
        // A query written to a closed connection is dropped without an answer (PostgresNIO 1.33),
        // so the store checks first; that check is the outage here.
        try connection.checkOpen()
        try await connection.close()
        #expect(throws: StoreError.self) { try connection.checkOpen() }
        do {
            try connection.checkOpen()
        } catch {
            #expect(Self.kind(error) == .unavailable, "\(error)")
        }
    }

    private func withConnection(_ body: (PostgresConnection) async throws -> Void) async throws {
        let configuration = try PostgresStoreConfiguration(url: try #require(serverURL), poolSize: 1)
        let connection = try await PostgresConnection.connect(configuration: configuration.connectionConfiguration, id: 1, logger: Logger(label: "test"))
        do {
            try await body(connection)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}
