import Foundation
import Logging
import VestnikCore
import VestnikStoreSQLite

/// Opens the configured store, creating the data directory (0700) if needed.
package enum Backend {
    package static func openStore(_ configuration: ServerConfiguration) throws -> any Store {
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
        return store
    }

    /// The domain services over a store (with its own fan-out hub).
    package static func makeServices(store: any Store, configuration: ServerConfiguration, logger: Logger) async throws -> Services {
        // The live position is set before the server starts (see `buildApplication`), when the
        // store is known to be reachable and migrated.
        let hub = EventHub(store: store, startingAfter: nil, bufferLimit: configuration.streamBufferLimit, logger: logger)
        let context = CoreContext(store: store, hub: hub, logger: logger)
        return Services(
            context: context,
            hasher: configuration.fastPasswordHashing ? .fastForTests : .standard,
            accountLimiter: RateLimiter(limit: configuration.loginFailuresPerAccount, window: configuration.loginWindow),
            addressLimiter: RateLimiter(limit: configuration.loginAttemptsPerAddress, window: configuration.loginWindow))
    }
}
