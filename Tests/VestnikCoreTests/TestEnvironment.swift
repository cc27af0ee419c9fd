import Foundation
import Logging
import VestnikCore
import VestnikModel
import VestnikStoreSQLite

/// A fresh SQLite store in a temporary directory, with services over it.
struct TestEnvironment {
    let directory: URL
    let store: SQLiteStore
    let services: Services

    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try SQLiteStore(path: directory.appendingPathComponent("test.sqlite").path)
        let hub = EventHub(store: store, startingAfter: try await store.headSeq(), bufferLimit: 1000, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        services = Services(
            context: CoreContext(store: store, hub: hub, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })), hasher: .fastForTests,
            loginLimits: LoginLimits(failuresPerAccount: 3, attemptsPerAddress: 100, window: 60))
    }

    /// Creates a user and logs them in.
    func user(_ login: String, name: String? = nil) async throws -> AuthenticatedSession {
        let (_, password) = try await services.accounts.createUser(
            NewAccount(login: login, displayName: name ?? login.capitalized), password: nil, as: .localAdmin)
        let (token, _, _) = try await services.sessions.login(login: login, password: password, deviceName: "test", address: "127.0.0.1")
        return try await services.sessions.authenticate(token: token)
    }

    func group(_ title: String, by owner: AuthenticatedSession, members: [AuthenticatedSession], kind: ChatKind = .group) async throws -> ChatID {
        try await services.chats.create(kind: kind, title: title, description: nil, members: members.map(\.userID), as: owner).0.chat.id
    }

    func send(_ text: String, to chat: ChatID, as sender: AuthenticatedSession, clientID: String? = nil) async throws -> Message {
        try await services.messages.send(OutgoingMessage(text: text, clientMessageID: clientID), to: chat, as: sender).0
    }
}

/// Asserts a Vestnik error code.
func errorCode(_ body: () async throws -> Void) async -> String? {
    do {
        try await body()
        return nil
    } catch let error as VestnikError {
        return error.code.rawValue
    } catch {
        return "unexpected: \(error)"
    }
}
