import Foundation
import VestnikStorePostgres

/// Which store the integration suite runs against: SQLite by default; PostgreSQL when
/// `VESTNIK_TEST_BACKEND=postgres` and `VESTNIK_TEST_POSTGRES_URL` point at a server (CI runs the
/// suite once per backend). Every server under test gets a fresh, empty database.
enum TestBackend {
    static var postgresServerURL: String? {
        let env = ProcessInfo.processInfo.environment
        guard env["VESTNIK_TEST_BACKEND"] == "postgres" else { return nil }
        return env["VESTNIK_TEST_POSTGRES_URL"]
    }

    static var name: String { postgresServerURL == nil ? "sqlite" : "postgres" }

    /// A fresh database URL on the test PostgreSQL server, or nil for SQLite.
    static func freshDatabaseURL() async throws -> String? {
        guard let server = postgresServerURL else { return nil }
        let name = "vt_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        try await PostgresDatabaseAdmin.createDatabase(String(name), on: try PostgresStoreConfiguration(url: server))
        guard var components = URLComponents(string: server) else { throw BadURL() }
        components.path = "/" + name
        guard let url = components.string else { throw BadURL() }
        return url
    }

    /// Arguments selecting the backend for `vestnik serve` and `vestnik admin` child processes;
    /// the same list must be passed to every process sharing one deployment.
    static func serverArguments() async throws -> [String] {
        guard let url = try await freshDatabaseURL() else { return [] }
        // One key file per deployment, shared by its nodes and admin commands (required with
        // PostgreSQL).
        let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-key-\(UUID().uuidString)").path
        return ["--database", url, "--bot-key-file", keyFile]
    }

    struct BadURL: Error {}
}
