import Crypto
import Foundation
import PostgresNIO
import Synchronization
import Testing
import VestnikCore
import VestnikModel
@testable import VestnikStorePostgres
import VestnikStoreTesting

/// Two nodes doing the same thing to the same rows at once. Each test lines both operations up
/// behind row locks a third store holds, so both have started before either can finish: what one
/// read before the lock must not decide what it writes after it (a single node's writes run one
/// batch after another and never meet this; nodes of a cluster do).
@Suite(.enabled(if: serverURL != nil, "VESTNIK_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against"), .timeLimit(.minutes(2)))
struct PostgresRacingNodesTests {
    typealias Fixture = PostgresBatchedSendTests.Fixture

    /// Two nodes (stores with their own writers) on a fresh database, and a third store that
    /// holds locks for ``racing(holder:locking:_:)``.
    func withTwoNodes(_ body: @Sendable (_ holder: PostgresStore, _ a: Fixture, _ b: Fixture) async throws -> Void) async throws {
        try await withFreshDatabase { configuration in
            try await withRunningStore(configuration) { holder in
                try await withRunningStore(configuration) { nodeA in
                    try await withRunningStore(configuration) { nodeB in
                        try await holder.migrate()
                        try await body(holder, try await Fixture(nodeA), try await Fixture(nodeB))
                    }
                }
            }
        }
    }

    /// Runs `operations` at once (each on its own node) while `holder` holds the row locks that
    /// `locking` takes (by reading rows in a write), released once all of them wait for a lock
    /// (or after 10 s: a write that does not wait then runs ahead, and the test sees its effect);
    /// their outcomes in order. The locks are released on every path out, so a failure here
    /// cannot leave the operations waiting forever.
    func racing<T: Sendable>(
        holder: PostgresStore, locking: @escaping @Sendable (any StoreWriter) async throws -> Void, _ operations: [@Sendable () async throws -> T]
    ) async throws -> [Result<T, VestnikError>] {
        let locked = AsyncStream.makeStream(of: Void.self)
        let release = Atomic<Bool>(false)
        let holding = Task {
            defer { locked.continuation.finish() }
            try await holder.write { tx in
                try await locking(tx)
                locked.continuation.yield()
                while !release.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(2)) }
            }
        }
        var holds = false
        for await _ in locked.stream {
            holds = true
            break
        }
        guard holds else {
            try await holding.value  // the holder failed before it held anything: its error
            throw CancellationError()
        }
        return try await withThrowingTaskGroup(of: (Int, Result<T, VestnikError>).self) { group in
            defer { release.store(true, ordering: .relaxed) }
            for (index, operation) in operations.enumerated() {
                group.addTask {
                    do {
                        return (index, .success(try await operation()))
                    } catch let error as VestnikError {
                        return (index, .failure(error))
                    } catch {
                        return (index, .failure(VestnikError(.internalError, "unexpected: \(error)")))
                    }
                }
            }
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                let waiting = try await holder.read { tx in
                    try await (tx as? PostgresAccess)?.rows(
                        "SELECT count(*)::int8 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    ).first.map { try Columns($0).int(0) } ?? 0
                }
                if waiting >= operations.count { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            release.store(true, ordering: .relaxed)
            try await holding.value
            var outcomes = [Result<T, VestnikError>?](repeating: nil, count: operations.count)
            for try await (index, outcome) in group { outcomes[index] = outcome }
            return outcomes.compactMap { $0 }
        }
    }

    /// Two nodes handle one member's `leave` at once (a double tap, two devices): the second
    /// must find the membership gone once it holds the chat's lock, not act on what it read
    /// before (it would decrement the member count a second time and log a second departure).
    @Test("two nodes handling one member's leave at once: one succeeds, the other finds no membership; the member count drops once")
    func concurrentLeaveOnTwoNodes() async throws {
        try await withTwoNodes { holder, a, b in
            let alice = try await a.user("alice"), bob = try await a.user("bob"), carol = try await a.user("carol")
            let chat = try await a.group([alice, bob, carol])
            // The fixture's chat counts no members; give it its real count.
            try await holder.write { tx in
                guard var stored = try await tx.chat(chat) else { return }
                stored.memberCount = 3
                try await tx.updateChat(stored)
            }
            let start = try await holder.headSeq()
            let outcomes = try await racing(holder: holder, locking: { _ = try await $0.chat(chat) }, [
                { @Sendable in try await a.chats.leave(chat, as: carol) }, { @Sendable in try await b.chats.leave(chat, as: carol) },
            ])
            let succeeded = outcomes.filter { if case .success = $0 { true } else { false } }.count
            #expect(succeeded == 1)
            #expect(outcomes.contains { if case .failure(let error) = $0 { error.code == .chatNotFound } else { false } })
            #expect(try await holder.read { try await $0.chat(chat) }?.memberCount == 2)
            let departures = try await holder.committedEvents(after: start, through: try await holder.headSeq(), limit: 100).filter {
                if case .memberLeft = $0.event { true } else { false }
            }
            #expect(departures.count == 1)
        }
    }

    /// Two nodes edit one message at once (the author on two devices): the second edit must
    /// build on the first, not take the same version number (a conflict) from a stale read.
    @Test("two nodes editing one message at once: both edits are kept, as versions 1 and 2")
    func concurrentEditsOnTwoNodes() async throws {
        try await withTwoNodes { holder, a, b in
            let alice = try await a.user("alice"), bob = try await a.user("bob")
            let chat = try await a.group([alice, bob])
            let (sent, _) = try await a.messages.send(OutgoingMessage(text: "draft"), to: chat, as: alice)
            let outcomes = try await racing(holder: holder, locking: { _ = try await $0.chat(chat) }, [
                { @Sendable in try await a.messages.edit(sent.id, text: "from a", as: alice) },
                { @Sendable in try await b.messages.edit(sent.id, text: "from b", as: alice) },
            ])
            let edited = outcomes.compactMap { try? $0.get() }
            #expect(edited.count == 2)
            #expect(Set(edited.map(\.editCount)) == [1, 2])
            let stored = try #require(try await holder.read { try await $0.message(sent.id) })
            #expect(stored.editCount == 2)
            #expect(stored.text == edited.first { $0.editCount == 2 }?.text)
        }
    }

    /// Two users open their personal chat at once on two nodes: both find none and both insert
    /// it; the chat's unique key fails one of them, whose second run returns the other's chat.
    @Test("two nodes creating one personal chat at once: both get the same chat, one of them created it")
    func concurrentPersonalChatOnTwoNodes() async throws {
        try await withTwoNodes { holder, a, b in
            let alice = try await a.user("alice"), bob = try await a.user("bob")
            // Each creation reads (and locks) its peer's user row first.
            let outcomes = try await racing(
                holder: holder, locking: { tx in
                    _ = try await tx.user(alice.userID)
                    _ = try await tx.user(bob.userID)
                },
                [
                    { @Sendable in try await a.chats.create(kind: .personal, title: nil, description: nil, members: [bob.userID], as: alice) },
                    { @Sendable in try await b.chats.create(kind: .personal, title: nil, description: nil, members: [alice.userID], as: bob) },
                ])
            let created = outcomes.compactMap { try? $0.get() }
            #expect(created.count == 2)
            #expect(Set(created.map(\.0.chat.id)).count == 1)
            #expect(created.filter(\.created).count == 1)
        }
    }

    /// A login checks the password (scrypt, up to seconds under load) between reading the account
    /// and storing the session. A password reset committed in between, on another node, deletes
    /// the account's sessions: the login must then fail, not store a session the reset missed.
    @Test("a login racing a password reset on another node: the old password opens no session that outlives the reset")
    func loginRacingPasswordReset() async throws {
        try await withTwoNodes { holder, a, _ in
            let alice = try await a.user("alice")
            let hasher = PasswordHasher.fastForTests
            let (old, new) = (try hasher.hash("old password 1"), try hasher.hash("new password 2"))
            try await holder.write { try await $0.setPasswordHash(old, for: alice.userID) }
            // The reset (the holder's transaction) has written the new hash and deleted the
            // sessions, and commits once the login waits for the account's row.
            let outcomes = try await racing(
                holder: holder,
                locking: { tx in
                    _ = try await tx.user(alice.userID)
                    try await tx.setPasswordHash(new, for: alice.userID)
                    _ = try await tx.deleteSessions(of: alice.userID)
                },
                [{ @Sendable in try await a.sessions.login(login: "alice", password: "old password 1", deviceName: "phone", address: "10.0.0.1").session.id }])
            guard case .failure(let error) = outcomes[0] else {
                Issue.record("the old password opened a session after the reset")
                return
            }
            #expect(error.code == .invalidCredentials)
            #expect(try await holder.read { try await $0.sessions(of: alice.userID) }.isEmpty)
        }
    }

    /// Login limits hold for the whole cluster only if two nodes counting one key at once cannot
    /// both see room for one more (decision 0017).
    @Test("two nodes counting the last allowed login attempt of one account at once: one is counted, the other refused")
    func loginAttemptsCountedOnceAcrossNodes() async throws {
        try await withTwoNodes { holder, a, b in
            let limit = AttemptLimit(count: 2, window: 600)
            let key = AttemptKey.account("alice", keyedBy: SymmetricKey(size: .bits256))
            // The holder's attempt is the first of two, counted in a transaction that keeps the
            // row locked; the nodes race for the second.
            let outcomes = try await racing(
                holder: holder,
                locking: { tx in
                    try await (tx as? PostgresAccess)?.rows(
                        "INSERT INTO login_attempts (key_hash, spent_until) VALUES (\(key.hex), \(Date().millisecondsSince1970 + 300_000))")
                },
                [a.store, b.store].map { node in
                    { @Sendable in try await node.countAttempt(under: key, limit: limit, at: nil).isCounted }
                })
            let counted = outcomes.compactMap { try? $0.get() }
            #expect(counted.count == 2, "both nodes answered")
            #expect(counted.filter { $0 }.count == 1, "exactly one of the two was counted")
            #expect(try await !holder.countAttempt(under: key, limit: limit, at: nil).isCounted, "the limit is used up")
        }
    }
}
