import Foundation
import Logging
import PostgresNIO
import VestnikCore

/// Creates and drops whole databases over a short-lived single connection (no pool, no running
/// service needed): provisioning for operators and isolated databases for tests.
///
/// Database names cannot be bound as parameters, so they are restricted to lowercase ASCII
/// letters, digits and `_` (at most 63 bytes, not starting with a digit) and then double-quoted.
package enum PostgresDatabaseAdmin {
    /// Whether `name` may be used as a database name by this helper.
    package static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 63, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    /// Creates the database `name` on the server of `server` (connecting to `server.database`).
    package static func createDatabase(_ name: String, on server: PostgresStoreConfiguration, logger: Logger = Logger(label: "vestnik.store.postgres"))
        async throws
    {
        try await run("CREATE DATABASE \(unescaped: try quoted(name))", on: server, logger: logger)
    }

    /// Drops the database `name` if it exists, disconnecting any sessions still using it.
    package static func dropDatabase(_ name: String, on server: PostgresStoreConfiguration, logger: Logger = Logger(label: "vestnik.store.postgres"))
        async throws
    {
        try await run("DROP DATABASE IF EXISTS \(unescaped: try quoted(name)) WITH (FORCE)", on: server, logger: logger)
    }

    private static func quoted(_ name: String) throws -> String {
        guard isValidName(name) else { throw PostgresConfigurationError("'\(name.prefix(80))' is not a database name this tool creates") }
        return "\"\(name)\""
    }

    private static func run(_ query: PostgresQuery, on server: PostgresStoreConfiguration, logger: Logger) async throws {
        do {
            let connection = try await PostgresConnection.connect(configuration: server.connectionConfiguration, id: 1, logger: logger)
            do {
                try await connection.query(query, logger: logger)
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
        } catch {
            throw PostgresErrors.translate(error)
        }
    }
}
