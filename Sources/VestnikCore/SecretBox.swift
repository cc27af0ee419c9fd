import Crypto
import Foundation

/// Seals bot secret keys at rest with AES-GCM under a server key.
///
/// HS256 needs the raw secret, so it cannot be stored hashed; sealing it means a copy of the
/// database alone does not let anyone sign as a bot (the key lives in a file outside it).
package struct SecretBox: Sendable {
    private let key: SymmetricKey

    package init(key: SymmetricKey) { self.key = key }

    /// Reads the 32-byte key at `path`, creating it (mode 0600, its directory 0700) when it does
    /// not exist. With PostgreSQL the data directory may hold nothing else yet.
    package static func loadOrCreate(path: String) throws -> SecretBox {
        let manager = FileManager.default
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty, !manager.fileExists(atPath: directory) {
            try? manager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        if let data = manager.contents(atPath: path) {
            guard data.count == 32 else { throw VestnikError(.internalError, "The bot key file \(path) is not 32 bytes.") }
            return SecretBox(key: SymmetricKey(data: data))
        }
        let key = SymmetricKey(size: .bits256)
        let data = key.withUnsafeBytes { Data($0) }
        guard manager.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw VestnikError(.internalError, "The bot key file \(path) cannot be created.")
        }
        return SecretBox(key: key)
    }

    package func seal(_ secret: String) throws -> Data {
        guard let combined = try AES.GCM.seal(Data(secret.utf8), using: key).combined else {
            throw VestnikError(.internalError, "A secret could not be sealed.")
        }
        return combined
    }

    package func open(_ sealed: Data) throws -> String {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return String(decoding: try AES.GCM.open(box, using: key), as: UTF8.self)
        } catch {
            throw VestnikError(.internalError, "A bot secret cannot be opened with this server's bot key.", cause: error)
        }
    }
}
