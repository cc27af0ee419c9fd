import Foundation
import Logging
import VestnikModel

/// A new account as an administrator describes it.
package struct NewAccount: Sendable {
    package var login: String
    package var displayName: String
    package var email: String?
    package var department: String?
    package var position: String?
    package var isAdmin: Bool

    package init(login: String, displayName: String, email: String? = nil, department: String? = nil, position: String? = nil, isAdmin: Bool = false) {
        self.login = login
        self.displayName = displayName
        self.email = email
        self.department = department
        self.position = position
        self.isAdmin = isAdmin
    }
}

/// Accounts and the corporate directory.
package struct AccountService: Sendable {
    private let context: CoreContext
    private let hasher: PasswordHasher
    /// Nil where no logins happen (tools that only manage accounts).
    private let throttle: LoginThrottle?

    package init(context: CoreContext, hasher: PasswordHasher, throttle: LoginThrottle? = nil) {
        self.context = context
        self.hasher = hasher
        self.throttle = throttle
    }

    /// Creates an account. Returns the user and the password to hand over: `password` if given,
    /// else a generated one (shown once).
    package func createUser(_ account: NewAccount, password: String?, as principal: Principal) async throws -> (User, String) {
        try requireAdministrator(principal)
        let login = try Validation.login(account.login)
        let displayName = try Validation.text(account.displayName, field: "name", min: 1, max: 128)
        let email = try account.email.map { try Validation.email($0) }
        let department = try account.department.map { try Validation.text($0, field: "department", min: 0, max: 128) }
        let position = try account.position.map { try Validation.text($0, field: "position", min: 0, max: 128) }
        let secret = try password.map { try Validation.password($0) } ?? Self.generatePassword()
        let hash = try hasher.hash(secret)
        let user = User(
            id: .random(), login: login, displayName: displayName, email: email, department: department, position: position,
            isAdmin: account.isAdmin, isBlocked: false, createdAt: Date.millisecondNow())
        do {
            try await context.store.write { tx in
                if try await tx.user(login: login) != nil { throw StoreError.duplicate(what: "login") }
                try await tx.insertUser(UserRecord(user: user, passwordHash: hash), searchText: Self.searchText(user))
            }
        } catch StoreError.duplicate {
            throw VestnikError(.loginTaken, "The login \(login) is already taken.")
        }
        context.logger.info("user created", metadata: ["vestnik.user.id": "\(user.id)"])
        return (user, secret)
    }

    /// Creates many accounts at once, all or none (a directory import). Accounts get no password:
    /// they sign in once an administrator sets one (`reset-password`) or issues a session, so an
    /// import of thousands does not cost thousands of password hashes.
    package func importUsers(_ accounts: [NewAccount], as principal: Principal) async throws -> [User] {
        try requireAdministrator(principal)
        guard accounts.count <= Self.maxImport else {
            throw VestnikError(.payloadTooLarge, "At most \(Self.maxImport) accounts per import.")
        }
        let now = Date.millisecondNow()
        var seen = Set<String>()
        let users = try accounts.map { account -> User in
            let login = try Validation.login(account.login)
            guard seen.insert(login).inserted else { throw VestnikError(.loginTaken, "The login \(login) appears twice in the import.") }
            return User(
                id: .random(), login: login, displayName: try Validation.text(account.displayName, field: "name", min: 1, max: 128),
                email: try account.email.map { try Validation.email($0) },
                department: try account.department.map { try Validation.text($0, field: "department", min: 0, max: 128) },
                position: try account.position.map { try Validation.text($0, field: "position", min: 0, max: 128) },
                isAdmin: account.isAdmin, isBlocked: false, createdAt: now)
        }
        do {
            try await context.store.write { tx in
                for user in users {
                    if try await tx.user(login: user.login) != nil { throw StoreError.duplicate(what: "login \(user.login)") }
                    try await tx.insertUser(UserRecord(user: user, passwordHash: nil), searchText: Self.searchText(user))
                }
            }
        } catch StoreError.duplicate(let what) {
            throw VestnikError(.loginTaken, "The \(what) is already taken; nothing was imported.")
        }
        context.logger.info("users imported", metadata: ["vestnik.count": "\(users.count)"])
        return users
    }

    /// The largest import accepted in one call (one transaction).
    package static let maxImport = 100_000

    /// Lists accounts for administration, by login.
    package func listUsers(limit: Int, offset: Int, as principal: Principal) async throws -> [User] {
        try requireAdministrator(principal)
        return try await context.read { try await $0.allUsers(limit: max(1, min(limit, 10_000)), offset: max(0, offset)) }
    }

    /// Finds an account by login or id (administration).
    package func findUser(_ loginOrID: String, as principal: Principal) async throws -> User {
        try requireAdministrator(principal)
        guard loginOrID.count <= 64, !loginOrID.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw VestnikError.userNotFound
        }
        let record = try await context.read { reader -> UserRecord? in
            if let id = UserID(loginOrID) { return try await reader.user(id) }
            return try await reader.user(login: loginOrID.lowercased())
        }
        guard let record else { throw VestnikError.userNotFound }
        return record.user
    }

    /// Blocks or unblocks an account. Blocking ends all of its sessions at once.
    package func setBlocked(_ blocked: Bool, user id: UserID, as principal: Principal) async throws -> User {
        try requireAdministrator(principal)
        let (user, revoked) = try await context.write { tx, log -> (User, [SessionID]) in
            guard var user = try await tx.user(id)?.user else { throw VestnikError.userNotFound }
            user.isBlocked = blocked
            try await tx.updateUser(user, searchText: Self.searchText(user))
            var revoked: [SessionID] = []
            if blocked {
                revoked = try await tx.deleteSessions(of: id)
                for session in revoked {
                    try await log.append(.sessionRevoked(sessionID: session), to: [id], in: tx)
                }
            }
            return (user, revoked)
        }
        for session in revoked { await context.hub.closeSession(session, of: id, reason: "session_revoked") }
        context.logger.notice("user \(blocked ? "blocked" : "unblocked")", metadata: ["vestnik.user.id": "\(id)"])
        return user
    }

    /// Sets a new password (given or generated) and ends every session of the account.
    package func resetPassword(user id: UserID, to password: String?, as principal: Principal) async throws -> String {
        try requireAdministrator(principal)
        let secret = try password.map { try Validation.password($0) } ?? Self.generatePassword()
        let hash = try hasher.hash(secret)
        let (login, revoked) = try await context.write { tx, log -> (String, [SessionID]) in
            guard let record = try await tx.user(id) else { throw VestnikError.userNotFound }
            try await tx.setPasswordHash(hash, for: id)
            let revoked = try await tx.deleteSessions(of: id)
            for session in revoked {
                try await log.append(.sessionRevoked(sessionID: session), to: [id], in: tx)
            }
            return (record.user.login, revoked)
        }
        for session in revoked { await context.hub.closeSession(session, of: id, reason: "session_revoked") }
        // The user may log in with the new password at once, whatever was guessed before.
        // Best effort: the reset itself is done.
        do {
            try await throttle?.forgetFailures(of: login)
        } catch {
            context.logger.backgroundFailure("clearing login failures after a password reset failed", error)
        }
        context.logger.notice("password reset", metadata: ["vestnik.user.id": "\(id)"])
        return secret
    }

    /// The caller's own account.
    package func me(as principal: Principal) async throws -> User {
        guard let userID = principal.userID else { throw VestnikError(.invalidRequest, "Only a user has a profile.") }
        guard let record = try await context.read({ try await $0.user(userID) }) else { throw VestnikError.userNotFound }
        return record.user
    }

    /// Searches the directory (any logged-in user). Blocked accounts are listed (colleagues still
    /// need to find old conversations) and marked as blocked.
    package func search(_ query: String, limit: Int, as principal: Principal) async throws -> [(User, Presence)] {
        guard principal.userID != nil || principal == .localAdmin else { throw VestnikError(.forbidden, "Not allowed.") }
        let trimmed = query.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count <= context.limits.maxSearchLength else {
            throw VestnikError.invalid("The search text is longer than \(context.limits.maxSearchLength) characters.")
        }
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw VestnikError.invalid("The search text contains control characters.")
        }
        let boundedLimit = max(1, min(limit, context.limits.maxPageSize))
        let users = try await context.read { reader in
            trimmed.isEmpty
                ? try await reader.allUsers(limit: boundedLimit, offset: 0)
                : try await reader.searchUsers(trimmed.lowercased(), limit: boundedLimit)
        }
        var result: [(User, Presence)] = []
        for user in users { result.append((user, await context.hub.presence(of: user.id))) }
        return result
    }

    /// One directory entry.
    package func profile(_ id: UserID, as principal: Principal) async throws -> (User, Presence) {
        guard let record = try await context.read({ try await $0.user(id) }) else { throw VestnikError.userNotFound }
        return (record.user, await context.hub.presence(of: id))
    }

    private func requireAdministrator(_ principal: Principal) throws {
        switch principal {
        case .localAdmin: return
        case .user: throw VestnikError(.forbidden, "Only an administrator can do this.")
        }
    }

    /// The lowercased haystack the directory search matches against (Unicode-aware, so Cyrillic
    /// names match case-insensitively whatever the database's own collation does).
    package static func searchText(_ user: User) -> String {
        [user.login, user.displayName, user.email ?? "", user.department ?? "", user.position ?? ""]
            .joined(separator: "\u{1F}").lowercased()
    }

    /// 20 characters from an alphabet without look-alikes: about 100 bits.
    package static func generatePassword() -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var rng = SystemRandomNumberGenerator()
        return String((0..<20).map { _ in alphabet[Int(rng.next(upperBound: UInt64(alphabet.count)))] })
    }
}
