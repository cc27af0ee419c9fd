import Foundation
import Logging
import ServiceLifecycle
import VestnikCore
import VestnikModel
import VestnikStorePostgres
import VestnikStoreSQLite

/// An opened store plus what it needs to run.
package struct OpenedStore: Sendable {
    package let store: any Store
    /// A label for logs and the benchmark ("sqlite", "postgres").
    package let kind: String
    /// Services the store needs running (the PostgreSQL connection pool); start them first.
    package let services: [any Service]
    /// Brings the schema up to date; run once the services are running, before serving.
    package let prepare: @Sendable () async throws -> Void
    /// Waits for new-event notifications from other nodes and calls the closure for each;
    /// nil when the store has no such channel (SQLite: only this machine writes, polling suffices).
    package let listen: (@Sendable (_ onListening: @Sendable @escaping () async -> Void, _ onNotify: @Sendable @escaping (EventSeq) async -> Void) async throws -> Void)?
    /// Typing and presence between nodes; nil on a single node.
    package let relay: ClusterRelay?
}

/// Ephemeral signals between nodes over PostgreSQL `NOTIFY` (see `EphemeralRelay`).
package struct ClusterRelay: EphemeralRelay {
    package let nodeID: String
    let store: PostgresStore
    let logger: Logger

    package func send(_ signal: EphemeralSignal) async {
        do {
            let payload = String(decoding: try VestnikJSON.encode(EphemeralEnvelope(node: nodeID, signal: signal)), as: UTF8.self)
            try await store.notify(signal: payload)
        } catch {
            // Best effort: typing and presence are hints; a lost one is corrected by the next.
            logger.debug("relay send failed", metadata: ["vestnik.error": "\(error)"])
        }
    }

    /// Listens for other nodes' signals until cancelled or the connection drops.
    func listen(
        onListening: @Sendable @escaping () async -> Void, _ onEnvelope: @Sendable @escaping (EphemeralEnvelope) async -> Void
    ) async throws {
        try await store.listenForSignals(onListening: onListening) { payload in
            // This node's own signals come back too: its heartbeat shows the listener works.
            guard let envelope = try? VestnikJSON.decode(EphemeralEnvelope.self, from: Data(payload.utf8)) else { return }
            await onEnvelope(envelope)
        }
    }
}

/// Chooses and opens the configured store.
package enum Backend {
    package static func openStore(_ configuration: ServerConfiguration, logger: Logger) throws -> OpenedStore {
        if let url = configuration.databaseURL {
            let sizes = ServerConfiguration.databasePoolSizeRange
            guard sizes.contains(configuration.databasePoolSize) else {
                throw ConfigurationError("the PostgreSQL pool size must be \(sizes.lowerBound)…\(sizes.upperBound) connections")
            }
            var storeConfiguration = try PostgresStoreConfiguration(url: url, poolSize: configuration.databasePoolSize)
            storeConfiguration.answerTimeout = configuration.databaseAnswerTimeout
            let store = PostgresStore(configuration: storeConfiguration, logger: logger)
            return OpenedStore(
                store: store, kind: "postgres", services: [store], prepare: { try await store.migrate() },
                listen: { onListening, onNotify in
                    try await store.listenForEvents(onListening: onListening, onNotify)
                },
                relay: ClusterRelay(nodeID: UUID().uuidString.lowercased(), store: store, logger: logger))
        }
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        if !fileManager.fileExists(atPath: configuration.dataDirectory, isDirectory: &isDirectory) {
            try fileManager.createDirectory(
                atPath: configuration.dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } else if !isDirectory.boolValue {
            throw ConfigurationError("the data directory \(configuration.dataDirectory) is not a directory")
        }
        let store = try SQLiteStore(path: configuration.databasePath)
        try? fileManager.setAttributes([.posixPermissions: 0o600], ofItemAtPath: configuration.databasePath)
        return OpenedStore(store: store, kind: "sqlite", services: [], prepare: {}, listen: nil, relay: nil)
    }

    /// The domain services over a store (with its own fan-out hub).
    package static func makeServices(
        store: any Store, configuration: ServerConfiguration, logger: Logger, relay: (any EphemeralRelay)? = nil
    ) async throws -> Services {
        // The live position is set before the server starts (see `buildApplication`), when the
        // store is known to be reachable and migrated.
        let hub = EventHub(store: store, startingAfter: nil, bufferLimit: configuration.streamBufferLimit, logger: logger)
        // Nodes of a cluster and the admin CLI must share one key; a per-machine default would
        // quietly give each its own.
        guard configuration.databaseURL == nil || configuration.botKeyFile != nil else {
            throw ConfigurationError(
                "with PostgreSQL, --bot-key-file (VESTNIK_BOT_KEY_FILE) is required: every node and the admin CLI must use the same bot key file")
        }
        var limits = CoreLimits()
        limits.maxInlineFileBytes = configuration.botInlineFileBytes
        limits.sessionLifetime = configuration.sessionLifetime
        let context = CoreContext(store: store, hub: hub, limits: limits, logger: logger, relay: relay)
        return Services(
            context: context,
            hasher: configuration.fastPasswordHashing ? .fastForTests : .standard,
            loginLimits: LoginLimits(
                failuresPerAccount: configuration.loginFailuresPerAccount, attemptsPerAddress: configuration.loginAttemptsPerAddress,
                window: configuration.loginWindow),
            botSecrets: try SecretBox.loadOrCreate(path: configuration.effectiveBotKeyFile))
    }
}
