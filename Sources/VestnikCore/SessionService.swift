import Foundation
import Logging
import VestnikModel

/// A request's verified identity.
package struct AuthenticatedSession: Sendable, Hashable {
    package var userID: UserID
    package var sessionID: SessionID
    /// When the session stops being valid; nil for principals that do not expire (bots acting
    /// through the server). Long-lived connections check it (a stream outlives its request).
    package var expiresAt: Date?

    package init(userID: UserID, sessionID: SessionID, expiresAt: Date? = nil) {
        self.userID = userID
        self.sessionID = sessionID
        self.expiresAt = expiresAt
    }
    package var principal: Principal { .user(userID, session: sessionID) }
}

/// Login, token verification, and a user's own sessions.
package struct SessionService: Sendable {
    private let context: CoreContext
    private let hasher: PasswordHasher
    private let throttle: LoginThrottle
    private let hashingPool: BlockingWorkPool

    package init(context: CoreContext, hasher: PasswordHasher, throttle: LoginThrottle) {
        self.context = context
        self.hasher = hasher
        self.throttle = throttle
        hashingPool = BlockingWorkPool(
            label: "vestnik.password-hashing", width: ProcessInfo.processInfo.activeProcessorCount, maxWaiting: 256)
    }

    /// Verifies a login and password and opens a session bound to `deviceName`.
    ///
    /// Unknown logins, wrong passwords and blocked accounts cost the same scrypt time; only a
    /// correct password for a blocked account learns that it is blocked.
    package func login(login rawLogin: String, password: String, deviceName rawDevice: String, address: String) async throws -> (token: String, session: Session, user: User) {
        let login = rawLogin.trimmingCharacters(in: .whitespaces).lowercased()
        guard !login.isEmpty, login.count <= 64, !password.isEmpty, password.utf8.count <= 1024,
            !login.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw VestnikError(.invalidCredentials, "Wrong login or password.")
        }
        let deviceName = try Validation.text(
            rawDevice.isEmpty ? "Unnamed device" : rawDevice, field: "device name", min: 1, max: context.limits.maxDeviceNameLength)
        // Counted before any work, for every node together (decision 0017); a success gives
        // the attempt back.
        // A saturated hashing pool refuses before anything is counted (counting and giving back
        // would be four durable writes for nothing, when the server is busiest).
        if hashingPool.isSaturated { throw Self.busyWithLogins }
        let attempt = try await throttle.begin(login: login, address: address)
        let hasher = self.hasher
        let record: UserRecord?
        let matches: Bool
        do {
            record = try await context.read { try await $0.user(login: login) }
            let stored = record?.passwordHash
            matches = try await hashingPool.run {
                guard let stored else {
                    hasher.burnVerification(password)
                    return false
                }
                return hasher.verify(password, against: stored)
            }
        } catch {
            // No answer about the password: the attempt does not count.
            await throttle.giveBack(attempt)
            if error is BlockingWorkPool.Saturated { throw Self.busyWithLogins }
            throw error
        }
        guard let record, matches else {
            if let record { context.logger.info("login failed", metadata: ["vestnik.user.id": "\(record.user.id)"]) }
            throw VestnikError(.invalidCredentials, "Wrong login or password.")
        }
        guard !record.user.isBlocked else {
            throw VestnikError(.accountBlocked, "This account is blocked. Contact your administrator.")
        }
        // The right password: failures are forgotten before the session is stored, so that a
        // failure to store it does not leave the user's own login counted against them.
        await throttle.succeeded(attempt)
        let stored = record.passwordHash

        let token = SessionToken.generate()
        let now = Date.millisecondNow()
        let session = Session(
            id: .random(), userID: record.user.id, deviceName: deviceName, createdAt: now, lastSeenAt: now,
            expiresAt: now.addingTimeInterval(context.limits.sessionLifetime))
        // The account is read again, locked, in the transaction that stores the session: a
        // password reset or a block committed since the check above (on this node or another,
        // while scrypt ran) deletes the account's sessions under that lock, so a session stored
        // after it, from the old password or for the blocked account, would outlive it.
        let refused = try await context.store.write { tx -> VestnikError? in
            guard let current = try await tx.user(record.user.id), current.passwordHash == stored else {
                return VestnikError(.invalidCredentials, "Wrong login or password.")
            }
            guard !current.user.isBlocked else {
                return VestnikError(.accountBlocked, "This account is blocked. Contact your administrator.")
            }
            try await tx.insertSession(SessionRecord(session: session, tokenHash: SessionToken.hash(token)))
            return nil
        }
        if let refused { throw refused }
        context.logger.info("login", metadata: ["vestnik.user.id": "\(record.user.id)", "vestnik.session.id": "\(session.id)"])
        return (token, session, record.user)
    }

    /// Opens a session for `user` without a password, on an administrator's authority (service
    /// accounts, kiosks, load tests, a first sign-in after a directory import). The token is shown
    /// once; like any session it is stored only as a hash and can be revoked.
    package func issue(for user: UserID, deviceName rawDevice: String, as principal: Principal) async throws -> (token: String, session: Session) {
        guard case .localAdmin = principal else { throw VestnikError(.forbidden, "Only an administrator can do this.") }
        let deviceName = try Validation.text(rawDevice, field: "device name", min: 1, max: context.limits.maxDeviceNameLength)
        let token = SessionToken.generate()
        let now = Date.millisecondNow()
        let session = Session(
            id: .random(), userID: user, deviceName: deviceName, createdAt: now, lastSeenAt: now,
            expiresAt: now.addingTimeInterval(context.limits.sessionLifetime))
        try await context.store.write { tx in
            guard let record = try await tx.user(user) else { throw VestnikError.userNotFound }
            guard !record.user.isBlocked else { throw VestnikError(.accountBlocked, "This account is blocked.") }
            try await tx.insertSession(SessionRecord(session: session, tokenHash: SessionToken.hash(token)))
        }
        context.logger.info("session issued by administrator", metadata: ["vestnik.user.id": "\(user)", "vestnik.session.id": "\(session.id)"])
        return (token, session)
    }

    /// Resolves a bearer token to its live session, or throws `unauthenticated`.
    package func authenticate(token: String) async throws -> AuthenticatedSession {
        guard !token.isEmpty, token.utf8.count <= SessionToken.maxLength else { throw Self.unauthenticated }
        let hash = SessionToken.hash(token)
        let found = try await context.storeCall { try await $0.authenticationRecord(tokenHash: hash) }
        guard let found, case let record = found.session, ConstantTime.equal(record.tokenHash, hash), !found.userBlocked else {
            throw Self.unauthenticated
        }
        let now = Date.millisecondNow()
        guard record.session.expiresAt > now else { throw VestnikError(.unauthenticated, "The session has expired. Log in again.") }
        if now.timeIntervalSince(record.session.lastSeenAt) > 60 {
            // Best effort: a failed touch must not fail the request it rides on.
            do {
                try await context.store.write { tx in try await tx.touchSession(record.session.id, at: now) }
            } catch {
                context.logger.backgroundFailure("session touch failed", error)
            }
        }
        return AuthenticatedSession(userID: record.session.userID, sessionID: record.session.id, expiresAt: record.session.expiresAt)
    }

    /// The caller's sessions, newest first.
    package func sessions(as caller: AuthenticatedSession) async throws -> [Session] {
        try await context.read { try await $0.sessions(of: caller.userID) }
    }

    /// Ends one of the caller's sessions (any device). Other users' sessions are `session_not_found`.
    package func revoke(_ id: SessionID, as caller: AuthenticatedSession) async throws {
        let deleted = try await context.write { tx, log -> Bool in
            guard try await tx.deleteSession(id, of: caller.userID) else { return false }
            try await log.append(.sessionRevoked(sessionID: id), to: [caller.userID], in: tx)
            return true
        }
        guard deleted else { throw VestnikError(.sessionNotFound, "Session not found.") }
        await context.hub.closeSession(id, of: caller.userID, reason: "session_revoked")
    }

    /// Ends the caller's current session.
    package func logout(_ caller: AuthenticatedSession) async throws {
        try await revoke(caller.sessionID, as: caller)
    }

    /// Deletes sessions past their expiry (housekeeping).
    package func deleteExpired() async throws -> Int {
        try await context.store.write { tx in try await tx.deleteExpiredSessions(before: Date.millisecondNow()) }
    }

    /// Deletes the login counts whose attempts were all spent (housekeeping); returns how many.
    package func pruneLoginAttempts() async throws -> Int {
        try await throttle.prune()
    }

    static let unauthenticated = VestnikError(.unauthenticated, "A valid session token is required.")
    static let busyWithLogins = VestnikError(.rateLimited, "The server is busy with logins. Try again in a few seconds.", retryAfter: 2)
}
