import Crypto
import Foundation
import VestnikModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Seals bot secret keys at rest with AES-GCM under a server key.
///
/// HS256 needs the raw secret, so it cannot be stored hashed; sealing it means a copy of the
/// database alone does not let anyone sign as a bot (the key lives in a file outside it). Each
/// secret is sealed with its bot's id as additional authenticated data, so someone who can write
/// the database cannot move one bot's sealed secret onto another bot.
package struct SecretBox: Sendable {
    private let key: SymmetricKey

    /// The sealing format new secrets get (``BotRecord/secretFormat``): 1 = bot id as AAD.
    package static let currentFormat = 1

    package init(key: SymmetricKey) { self.key = key }

    /// Reads the 32-byte key at `path`, creating it (mode 0600, its directory 0700) only when no
    /// file exists there.
    ///
    /// Creation is exclusive (`O_EXCL`): a file that exists but cannot be read is an error, never
    /// replaced (replacing it would make every sealed secret unusable), and of two processes
    /// creating the key at once one wins and the other reads the winner's key.
    package static func loadOrCreate(path: String) throws -> SecretBox {
        let manager = FileManager.default
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty, !manager.fileExists(atPath: directory) {
            try? manager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let key = SymmetricKey(size: .bits256)
        let bytes = key.withUnsafeBytes { Array($0) }
        let fd = createExclusively(path, mode: 0o600)
        if fd < 0 {
            let error = errno
            guard error == EEXIST else {
                throw VestnikError(.internalError, "The bot key file \(path) cannot be created (errno \(error)).")
            }
            return try load(path: path)
        }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else {
            // A half-written key must not be picked up by the next start.
            unlink(path)
            throw VestnikError(.internalError, "The bot key file \(path) cannot be written.")
        }
        return SecretBox(key: key)
    }

    /// Reads an existing key file; never creates or changes one.
    package static func load(path: String) throws -> SecretBox {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw VestnikError(.internalError, "The bot key file \(path) exists but cannot be read; it is left untouched.")
        }
        guard data.count == 32 else { throw VestnikError(.internalError, "The bot key file \(path) is not 32 bytes.") }
        return SecretBox(key: SymmetricKey(data: data))
    }

    /// Identifies the key without revealing it (HMAC of a fixed label), to detect nodes that
    /// run with different key files against one database.
    package var fingerprint: String {
        HMAC<SHA256>.authenticationCode(for: Data("vestnik server key fingerprint".utf8), using: key).prefix(16).hexString
    }

    /// A key for another purpose, derived from the server key (HKDF-SHA256 with `purpose` as the
    /// info). Every node holding the same key file derives the same key; nothing derived can be
    /// turned back into the server key.
    package func derivedKey(for purpose: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Data(purpose.utf8), outputByteCount: 32)
    }

    /// Seals a bot's secret, bound to the bot (format ``currentFormat``).
    package func seal(_ secret: String, bot: UserID) throws -> Data {
        guard let combined = try AES.GCM.seal(Data(secret.utf8), using: key, authenticating: Data(bot.description.utf8)).combined else {
            throw VestnikError(.internalError, "A secret could not be sealed.")
        }
        return combined
    }

    /// Opens a bot's sealed secret.
    /// - Parameter format: 0 for secrets sealed before migration 5 (no additional data; only the
    ///   start-up re-seal reads those), 1 for secrets bound to `bot`.
    package func open(_ sealed: Data, bot: UserID, format: Int) throws -> String {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            let plain =
                format == 0
                ? try AES.GCM.open(box, using: key)
                : try AES.GCM.open(box, using: key, authenticating: Data(bot.description.utf8))
            return String(decoding: plain, as: UTF8.self)
        } catch {
            throw VestnikError(.internalError, "A bot secret cannot be opened with this server's bot key.", cause: error)
        }
    }
}

/// `open(2)` with `O_CREAT | O_EXCL`: fails with `EEXIST` when anything (a dangling symlink
/// included) is at `path`. At file scope because `SecretBox.open` shadows the C function.
private func createExclusively(_ path: String, mode: mode_t) -> Int32 {
    open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
}
