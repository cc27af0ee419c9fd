import Foundation
import PostgresNIO
import VestnikModel

/// Where the PostgreSQL store connects, parsed from a `postgres://user:password@host:port/database` URL.
///
/// Operators configure one URL, the form every PostgreSQL tool understands; the adapter turns it
/// into PostgresNIO's configuration here, in one place, so the rest of the adapter never sees the
/// password or the raw URL.
///
/// TLS: not supported yet, connections are plain TCP. `sslmode=disable`, `allow` and `prefer` are
/// accepted (libpq allows a plain connection for all three); `require`, `verify-ca` and
/// `verify-full` are rejected rather than silently downgraded.
package struct PostgresStoreConfiguration: Sendable {
    /// Host name or IP address of the server.
    package var host: String
    /// TCP port; 5432 when the URL has none.
    package var port: Int
    /// Role to log in as (percent-decoded).
    package var username: String
    /// Percent-decoded; never printed.
    package var password: String?
    /// Database to open; the user name when the URL has none (as libpq does).
    package var database: String
    /// The most connections the pool opens (the listener, when running, holds one of them).
    package var poolSize: Int
    /// How long a statement may go unanswered (or a request wait for a connection) before the
    /// store treats the server as unreachable (see ``AnswerWatchdog``). A server that is frozen or
    /// cut off by the network closes nothing, so without it a request would wait for TCP to give
    /// up, which takes minutes. Far above any statement Vestnik sends.
    package var answerTimeout: Duration = .seconds(15)

    /// Parses a `postgres://` (or `postgresql://`) URL.
    ///
    /// User, password and database name are percent-decoded; the port defaults to 5432 and the
    /// database to the user name, as with libpq.
    package init(url string: String, poolSize: Int = 8) throws {
        guard let components = URLComponents(string: string) else {
            throw PostgresConfigurationError("the PostgreSQL URL is not a valid URL")
        }
        guard let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql" else {
            throw PostgresConfigurationError("the PostgreSQL URL must start with postgres:// or postgresql://")
        }
        guard let host = components.host.flatMap({ $0.removingPercentEncoding }), !host.isEmpty else {
            throw PostgresConfigurationError("the PostgreSQL URL has no host")
        }
        guard let username = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !username.isEmpty else {
            throw PostgresConfigurationError("the PostgreSQL URL has no user name (postgres://user@host/database)")
        }
        var password: String?
        if let encoded = components.percentEncodedPassword {
            guard let decoded = encoded.removingPercentEncoding else {
                throw PostgresConfigurationError("the password in the PostgreSQL URL is not valid percent-encoding")
            }
            password = decoded
        }
        let path = components.percentEncodedPath.hasPrefix("/") ? String(components.percentEncodedPath.dropFirst()) : components.percentEncodedPath
        guard let database = path.removingPercentEncoding, !database.contains("/") else {
            throw PostgresConfigurationError("the database name in the PostgreSQL URL is not valid")
        }
        for item in components.queryItems ?? [] {
            switch (item.name, item.value) {
            case ("sslmode", "disable"?), ("sslmode", "allow"?), ("sslmode", "prefer"?):
                continue
            case ("sslmode", _):
                throw PostgresConfigurationError("TLS to PostgreSQL is not supported yet; use sslmode=disable")
            default:
                throw PostgresConfigurationError("unsupported PostgreSQL URL parameter '\(item.name)'")
            }
        }
        if let port = components.port, !(1...65535).contains(port) {
            throw PostgresConfigurationError("the port in the PostgreSQL URL is out of range")
        }
        guard poolSize >= 1 else { throw PostgresConfigurationError("the PostgreSQL pool size must be at least 1") }
        self.host = host
        self.port = components.port ?? 5432
        self.username = username
        self.password = password
        self.database = database.isEmpty ? username : database
        self.poolSize = poolSize
    }

    /// The same server and credentials, another database (for provisioning and tests).
    package func with(database: String) -> PostgresStoreConfiguration {
        var copy = self
        copy.database = database
        return copy
    }

    var clientConfiguration: PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: .disable)
        configuration.options.maximumConnections = poolSize
        configuration.options.minimumConnections = 0
        configuration.options.additionalStartupParameters = [("statement_timeout", "\(statementTimeoutMilliseconds)")]
        return configuration
    }

    /// PostgreSQL's own `statement_timeout` for the pools' sessions: below ``answerTimeout``, so a
    /// server that answers at all ends a statement that runs or waits too long by itself. Cut only
    /// on this side, such a statement would go on in its session, holding its locks (a session
    /// waiting for a lock does not notice its client left). The watchdog is then only for a
    /// server that does not answer at all.
    var statementTimeoutMilliseconds: Int64 {
        max(answerTimeout.wholeMilliseconds * 4 / 5, 1)
    }

    /// The single writer's client: one connection, kept open (see `PostgresStore.writerClient`).
    var writerClientConfiguration: PostgresClient.Configuration {
        var configuration = clientConfiguration
        configuration.options.maximumConnections = 1
        configuration.options.minimumConnections = 1
        return configuration
    }

    var connectionConfiguration: PostgresConnection.Configuration {
        PostgresConnection.Configuration(host: host, port: port, username: username, password: password, database: database, tls: .disable)
    }
}

/// A PostgreSQL URL or pool setting the adapter cannot use; the message never contains the password.
package struct PostgresConfigurationError: Error, CustomStringConvertible, Sendable {
    package let description: String
    init(_ description: String) { self.description = description }
}
