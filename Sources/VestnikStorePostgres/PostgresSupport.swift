import Foundation
import Synchronization
import PostgresNIO
import VestnikCore

/// Translates PostgresNIO's errors into the store's vocabulary, the way the SQLite adapter does:
/// unique violations become ``StoreError/duplicate(what:)`` with the names Core relies on; a
/// connection that failed, closed or was refused (and the server's own "shutting down" / "starting
/// up" / connection-class states) becomes ``StoreError/unavailable(_:)``, which clients may retry
/// and which makes the store check whether the server is still there (decision 0014); a deadlock
/// or serialization failure becomes ``StoreError/contention(_:)``; everything else from the
/// database becomes ``StoreError/backend(_:)``. Errors that did not come from
/// PostgreSQL (a caller's own error thrown inside a transaction, cancellation) pass unchanged.
enum PostgresErrors {
    /// Constraint (or unique index) names, as created by ``PostgresMigrations``, to the `what`
    /// that ``VestnikStoreSQLite`` reports for the same constraint.
    private static let duplicateNames: [String: String] = [
        "users_login_key": "login",
        "messages_by_client_message_id": "client_message_id",
        "chats_unique_key_key": "chat",
    ]

    /// SQLSTATEs of a server that is stopping, crashed, or not accepting connections yet.
    private static let serverGoingAway: Set<String> = ["57P01", "57P02", "57P03"]

    static func translate(_ error: any Error) -> any Error {
        switch error {
        case is StoreError:
            return error
        case let error as PSQLError:
            return translate(error)
        case let error as PostgresDecodingError:
            return StoreError.backend(
                "cannot decode column \(error.columnIndex) (\(error.columnName)) as \(error.targetType): \(error.code)")
        default:
            return error
        }
    }

    private static func translate(_ error: PSQLError) -> StoreError {
        guard error.code == .server, let info = error.serverInfo else {
            // Connection-level failures: the code and underlying error, never the bound values.
            let underlying = error.underlying.map { ": \($0)" } ?? ""
            let detail = "PostgreSQL client error \(error.code)\(underlying)"
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed, .listenFailed:
                return .unavailable(detail)
            default:
                return .backend(detail)
            }
        }
        let sqlState = info[.sqlState] ?? "?????"
        let message = info[.message] ?? "unknown error"
        // Class 08: connection exception; 57P01–57P03: the server is shutting down, crashed or
        // not accepting connections yet. (Not 53300, too many connections: the server is there,
        // and replacing this node's pools would only give its connections away.)
        if sqlState.hasPrefix("08") || Self.serverGoingAway.contains(sqlState) {
            return .unavailable("PostgreSQL error \(sqlState): \(message)")
        }
        if sqlState == "57014" {  // query_canceled: statement_timeout (PostgresStoreConfiguration)
            return .unavailable("PostgreSQL cancelled a statement that ran or waited too long: \(message)")
        }
        if sqlState == "40P01" || sqlState == "40001" {  // deadlock_detected, serialization_failure
            return .contention("PostgreSQL error \(sqlState): \(message)")
        }
        if sqlState == "23505" {  // unique_violation
            let constraint = info[.constraintName] ?? message
            return .duplicate(what: duplicateNames[constraint] ?? constraint)
        }
        let constraint = info[.constraintName].map { " (constraint \($0))" } ?? ""
        // The statement text is included (it holds no values: they are bound), the binds are not.
        let statement = error.query.map { " in: \($0.sql.prefix(200))" } ?? ""
        return .backend("PostgreSQL error \(sqlState): \(message)\(constraint)\(statement)")
    }
}

/// Typed access to one result row by column position, mirroring the SQLite adapter's `SQLRow`
/// so the row mappings read the same in both adapters.
struct Columns {
    private let row: PostgresRandomAccessRow

    init(_ row: PostgresRow) { self.row = row.makeRandomAccess() }

    func text(_ i: Int) throws -> String { try row[i].decode(String.self) }
    func optionalText(_ i: Int) throws -> String? { try row[i].decode(String?.self) }
    func int(_ i: Int) throws -> Int64 { try row[i].decode(Int64.self) }
    func optionalInt(_ i: Int) throws -> Int64? { try row[i].decode(Int64?.self) }
    func bool(_ i: Int) throws -> Bool { try row[i].decode(Bool.self) }
    func texts(_ i: Int) throws -> [String] { try row[i].decode([String].self) }
    func optionalTexts(_ i: Int) throws -> [String]? { try row[i].decode([String]?.self) }
    func ints(_ i: Int) throws -> [Int64] { try row[i].decode([Int64].self) }
    func bytes(_ i: Int) throws -> Data { try row[i].decode(Data.self) }
    /// UTF-8 text stored as `BYTEA` (see ``PostgresMigrations``).
    func utf8(_ i: Int) throws -> String { String(decoding: try bytes(i), as: UTF8.self) }
    func optionalUTF8(_ i: Int) throws -> String? { try row[i].decode(Data?.self).map { String(decoding: $0, as: UTF8.self) } }
    func date(_ i: Int) throws -> Date { Date(millisecondsSince1970: try int(i)) }
}

/// A statement the send path runs for every message, executed as a named prepared statement:
/// PostgreSQL then parses and plans it once per connection instead of on every call (parsing and
/// planning were ~40 % of PostgreSQL's CPU time in the `group` benchmark, decision 0009).
///
/// PostgresNIO prepares statements whose name and text are static properties of their type.
/// Ours are built by `PostgresQuery` interpolation, whose text depends only on the call site
/// (every value is a bind), so each site is a type with a name of its own, whose text is learnt
/// from its first query. A query whose text differs from what its site learnt (a bug: the text
/// must be fixed), or a site whose name another site took, runs unprepared rather than under the
/// wrong statement.
///
/// The parameter types are fixed by the first execution on each connection (PostgresNIO infers
/// them from its bindings; a NULL leaves the type to the server, which takes it from the column
/// or function argument). So every bind of a site must always have the same Swift type, and an
/// optional one must go where the server can infer its type (as today: text and bytea columns,
/// the function's bytea argument).
protocol PreparedSite {
    /// Unique among sites, and short: PostgreSQL truncates names to 63 bytes.
    static var statementName: String { get }
}

struct PreparedQuery<Site: PreparedSite>: PostgresPreparedStatement {
    typealias Row = PostgresRow

    static var name: String { "vestnik_" + Site.statementName }
    static var sql: String { PreparedTexts.text(of: Site.self) ?? "" }

    let bindings: PostgresBindings

    /// Nil when `query`'s text is not the one this site prepares, or when the store tagged
    /// `store` stopped preparing this site (``stopPreparing(in:)``).
    init?(_ query: PostgresQuery, store: String) {
        guard !PreparedTexts.isStopped(Site.self, in: store), PreparedTexts.learn(query.sql, for: Site.self) else { return nil }
        bindings = query.binds
    }

    /// From now on the store tagged `store` runs this site unprepared.
    ///
    /// Called when a preparation may have failed: PostgresNIO then fails every later execution
    /// of that name on that connection, and closing the connection from inside its lease hangs
    /// the transaction (tried), so the name is not used again by this store.
    static func stopPreparing(in store: String) { PreparedTexts.stop(Site.self, in: store) }

    func makeBindings() -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) -> PostgresRow { row }

    /// Whether a failed execution may have left the statement unusable on its connection.
    ///
    /// PostgresNIO remembers a failed preparation per connection and fails every later
    /// execution of that name on it. Errors of executing a prepared statement (bad data, a
    /// constraint, a deadlock, a raised exception) cannot come from preparing it, and a lost
    /// connection (client errors, class 08, a server shutting down) takes the name with it, and a
    /// cancelled statement (57014: `statement_timeout`) was running, so it was prepared; any other
    /// server error might have come from preparing.
    static func mayHaveFailedToPrepare(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, error.code == .server, let state = error.serverInfo?[.sqlState] else { return false }
        return !["22", "23", "40", "P0", "08", "57P", "57014"].contains { state.hasPrefix($0) }
    }
}

/// The text of each prepared site, learnt from its first query, by statement name; and the
/// sites each store (by its tag) stopped preparing.
private enum PreparedTexts {
    private static let texts = Mutex<[String: (site: ObjectIdentifier, sql: String)]>([:])
    private static let stopped = Mutex<Set<String>>([])

    static func isStopped(_ site: any PreparedSite.Type, in store: String) -> Bool {
        stopped.withLock { $0.contains(store + " " + site.statementName) }
    }

    static func stop(_ site: any PreparedSite.Type, in store: String) {
        _ = stopped.withLock { $0.insert(store + " " + site.statementName) }
    }

    static func text(of site: any PreparedSite.Type) -> String? {
        texts.withLock { $0[site.statementName]?.sql }
    }

    /// True if `sql` is (now) the site's text, and the site's name is its own.
    static func learn(_ sql: String, for site: any PreparedSite.Type) -> Bool {
        texts.withLock { texts in
            if let known = texts[site.statementName] { return known.site == ObjectIdentifier(site) && known.sql == sql }
            texts[site.statementName] = (ObjectIdentifier(site), sql)
            return true
        }
    }
}

/// Runs a task's jobs on one NIO event loop: the single writer's transaction, on its
/// connection's loop.
///
/// Why: every query of a transaction is answered on its connection's event loop. On the global
/// pool, the code between two queries first wakes a pool thread, and the next query then wakes
/// the loop again: two thread wake-ups per round trip, and the single writer makes its round
/// trips one after another. With the transaction preferring the loop, the code resumes where the
/// answer arrived (`group --backend postgres`: ~560 → ~690 msg/s, decision 0009).
///
/// What runs here shares the loop with client sockets (PostgresNIO and Hummingbird both use
/// NIO's singleton group), so write bodies must not block and must not call actors (an actor
/// reached from here would run its queue on this loop). Their computing delays the loop's other
/// sockets by as long: tens of microseconds for a message, milliseconds for a bot message
/// carrying a large inline file. The loop must outlive every transaction: a job enqueued on a
/// shut-down loop is dropped and its task never resumes. The singleton group is never shut down.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
