import Crypto
import Foundation
import _CryptoExtras

/// Hashes and verifies passwords with scrypt (memory-hard).
///
/// The stored form is self-describing — `scrypt$N$r$p$salt$hash` in base64 — so parameters can be
/// raised later without breaking existing hashes.
package struct PasswordHasher: Sendable {
    package var cost: Int
    package var blockSize: Int
    package var parallelism: Int

    /// N=2^15, r=8, p=1: 32 MiB and roughly 0.1 s per hash here, the interactive-login setting.
    package static let standard = PasswordHasher(cost: 1 << 15, blockSize: 8, parallelism: 1)
    /// Cheap parameters for tests only (never for real accounts).
    package static let fastForTests = PasswordHasher(cost: 1 << 10, blockSize: 8, parallelism: 1)

    package init(cost: Int, blockSize: Int, parallelism: Int) {
        self.cost = cost
        self.blockSize = blockSize
        self.parallelism = parallelism
    }

    package func hash(_ password: String) throws -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = rng.next() }
        let derived = try derive(password, salt: salt, cost: cost, blockSize: blockSize, parallelism: parallelism)
        return "scrypt$\(cost)$\(blockSize)$\(parallelism)$\(Data(salt).base64EncodedString())$\(Data(derived).base64EncodedString())"
    }

    /// Whether `password` matches `stored`, compared in constant time. Malformed hashes never match.
    package func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "scrypt",
            let cost = Int(parts[1]), let blockSize = Int(parts[2]), let parallelism = Int(parts[3]),
            cost >= 2, cost <= 1 << 20, blockSize >= 1, blockSize <= 32, parallelism >= 1, parallelism <= 16,
            let salt = Data(base64Encoded: String(parts[4])), let expected = Data(base64Encoded: String(parts[5])),
            let derived = try? derive(password, salt: Array(salt), cost: cost, blockSize: blockSize, parallelism: parallelism)
        else { return false }
        return ConstantTime.equal(derived, Array(expected))
    }

    /// Spends the same time as a real verification, so unknown logins are not distinguishable by timing.
    package func burnVerification(_ password: String) {
        _ = try? derive(password, salt: Array(repeating: 0, count: 16), cost: cost, blockSize: blockSize, parallelism: parallelism)
    }

    private func derive(_ password: String, salt: [UInt8], cost: Int, blockSize: Int, parallelism: Int) throws -> [UInt8] {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8), salt: salt, outputByteCount: 32, rounds: cost, blockSize: blockSize,
            parallelism: parallelism, maxMemory: nil)
        return key.withUnsafeBytes { Array($0) }
    }
}

/// Comparisons whose time does not depend on where the inputs differ.
package enum ConstantTime {
    package static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}

/// Session tokens: 256 random bits shown once, stored only as SHA-256.
package enum SessionToken {
    /// A new token in base64url without padding (43 characters), prefixed so it is recognisable in
    /// secret scanners.
    package static func generate() -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = rng.next() }
        let base64 = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return "vst_" + base64
    }

    /// The stored form. Lookup by hash, so comparing is an index equality on a digest: an attacker
    /// learns nothing from timing because they do not control the digest's prefix.
    package static func hash(_ token: String) -> [UInt8] {
        Array(SHA256.hash(data: Data(token.utf8)))
    }

    /// Tokens longer than this are rejected before hashing.
    package static let maxLength = 256
}
