import Foundation
import Testing
import VestnikCore
import VestnikModel

@Suite struct AccountAndSessionTests {
    @Test("passwords verify only with the right password; hashes are salted")
    func passwordHashing() throws {
        let hasher = PasswordHasher.fastForTests
        let hash = try hasher.hash("correct horse")
        #expect(hash.hasPrefix("scrypt$"))
        #expect(hasher.verify("correct horse", against: hash))
        #expect(!hasher.verify("correct horsE", against: hash))
        #expect(try hasher.hash("correct horse") != hash)
        #expect(!hasher.verify("x", against: "scrypt$garbage"))
        #expect(!hasher.verify("x", against: "scrypt$99999999999$8$1$AAAA$AAAA"))
    }

    @Test("tokens are long, random, and stored only as a digest")
    func tokens() {
        let a = SessionToken.generate()
        let b = SessionToken.generate()
        #expect(a != b)
        #expect(a.count >= 40)
        #expect(SessionToken.hash(a).count == 32)
        #expect(SessionToken.hash(a) != SessionToken.hash(b))
    }

    @Test("login, wrong password, revocation, logout")
    func sessionLifecycle() async throws {
        let env = try await TestEnvironment()
        let (user, password) = try await env.services.accounts.createUser(
            NewAccount(login: "Alice", displayName: "Alice"), password: "long enough pw", as: .localAdmin)
        #expect(user.login == "alice")
        #expect(password == "long enough pw")
        #expect(await errorCode { _ = try await env.services.sessions.login(login: "alice", password: "nope", deviceName: "d", address: "a") } == "invalid_credentials")
        #expect(await errorCode { _ = try await env.services.sessions.login(login: "ghost", password: "nope", deviceName: "d", address: "a") } == "invalid_credentials")
        let phone = try await env.services.sessions.login(login: "ALICE", password: password, deviceName: "Phone", address: "a")
        let laptop = try await env.services.sessions.login(login: "alice", password: password, deviceName: "Laptop", address: "a")
        let onLaptop = try await env.services.sessions.authenticate(token: laptop.token)
        #expect(try await env.services.sessions.sessions(as: onLaptop).map(\.deviceName).sorted() == ["Laptop", "Phone"])
        try await env.services.sessions.revoke(phone.session.id, as: onLaptop)
        #expect(await errorCode { _ = try await env.services.sessions.authenticate(token: phone.token) } == "unauthenticated")
        try await env.services.sessions.logout(onLaptop)
        #expect(await errorCode { _ = try await env.services.sessions.authenticate(token: laptop.token) } == "unauthenticated")
        #expect(await errorCode { _ = try await env.services.sessions.authenticate(token: "") } == "unauthenticated")
        #expect(await errorCode { _ = try await env.services.sessions.authenticate(token: String(repeating: "x", count: 5000)) } == "unauthenticated")
    }

    @Test("someone else's session cannot be revoked")
    func revokeOthersSession() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        let bob = try await env.user("bob")
        #expect(await errorCode { try await env.services.sessions.revoke(bob.sessionID, as: alice) } == "session_not_found")
        #expect(try await env.services.sessions.sessions(as: bob).map(\.id) == [bob.sessionID])
    }

    @Test("repeated failures for one account are rate limited with a retry time")
    func rateLimit() async throws {
        let env = try await TestEnvironment()
        _ = try await env.services.accounts.createUser(NewAccount(login: "alice", displayName: "A"), password: "right password", as: .localAdmin)
        for _ in 0..<3 {
            _ = await errorCode { _ = try await env.services.sessions.login(login: "alice", password: "wrong", deviceName: "d", address: "x") }
        }
        do {
            _ = try await env.services.sessions.login(login: "alice", password: "right password", deviceName: "d", address: "x")
            Issue.record("expected rate_limited")
        } catch let error as VestnikError {
            #expect(error.code == .rateLimited)
            #expect((error.retryAfter ?? 0) > 0)
        }
    }

    @Test("blocking ends sessions and prevents login; resetting a password ends sessions")
    func blockAndReset() async throws {
        let env = try await TestEnvironment()
        let (user, password) = try await env.services.accounts.createUser(
            NewAccount(login: "bob", displayName: "Bob"), password: nil, as: .localAdmin)
        let login = try await env.services.sessions.login(login: "bob", password: password, deviceName: "d", address: "a")
        _ = try await env.services.accounts.setBlocked(true, user: user.id, as: .localAdmin)
        #expect(await errorCode { _ = try await env.services.sessions.authenticate(token: login.token) } == "unauthenticated")
        #expect(await errorCode { _ = try await env.services.sessions.login(login: "bob", password: password, deviceName: "d", address: "a") } == "account_blocked")
        _ = try await env.services.accounts.setBlocked(false, user: user.id, as: .localAdmin)
        let again = try await env.services.sessions.login(login: "bob", password: password, deviceName: "d", address: "a")
        let newPassword = try await env.services.accounts.resetPassword(user: user.id, to: nil, as: .localAdmin)
        #expect(newPassword != password && newPassword.count >= 16)
        #expect(await errorCode { _ = try await env.services.sessions.authenticate(token: again.token) } == "unauthenticated")
        _ = try await env.services.sessions.login(login: "bob", password: newPassword, deviceName: "d", address: "a")
    }

    @Test("account input is validated; logins are unique; users cannot administer")
    func accountValidation() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        for bad in ["a", "Имя", "has space", String(repeating: "x", count: 40), "-dash"] {
            #expect(await errorCode { _ = try await env.services.accounts.createUser(NewAccount(login: bad, displayName: "X"), password: nil, as: .localAdmin) } == "invalid_request")
        }
        #expect(await errorCode { _ = try await env.services.accounts.createUser(NewAccount(login: "alice", displayName: "X"), password: nil, as: .localAdmin) } == "login_taken")
        #expect(await errorCode { _ = try await env.services.accounts.createUser(NewAccount(login: "ok", displayName: "X"), password: "short", as: .localAdmin) } == "invalid_request")
        #expect(await errorCode { _ = try await env.services.accounts.createUser(NewAccount(login: "ok", displayName: "X", email: "nope"), password: nil, as: .localAdmin) } == "invalid_request")
        #expect(await errorCode { _ = try await env.services.accounts.createUser(NewAccount(login: "ok", displayName: "X"), password: nil, as: alice.principal) } == "forbidden")
    }

    @Test("the directory finds colleagues by any field, case-insensitively")
    func directory() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        _ = try await env.services.accounts.createUser(
            NewAccount(login: "olga", displayName: "Ольга Петрова", email: "olga@corp.ru", department: "Бухгалтерия"), password: nil, as: .localAdmin)
        #expect(try await env.services.accounts.search("ОЛЬГА", limit: 10, as: alice.principal).map(\.0.login) == ["olga"])
        #expect(try await env.services.accounts.search("corp.ru", limit: 10, as: alice.principal).map(\.0.login) == ["olga"])
        #expect(try await env.services.accounts.search("бухгал", limit: 10, as: alice.principal).map(\.0.login) == ["olga"])
        #expect(await errorCode { _ = try await env.services.accounts.search(String(repeating: "q", count: 500), limit: 10, as: alice.principal) } == "invalid_request")
        #expect(await errorCode { _ = try await env.services.accounts.profile(.random(), as: alice.principal) } == "user_not_found")
    }
}
