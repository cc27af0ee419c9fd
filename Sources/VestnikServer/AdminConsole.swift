import Foundation
import Logging
import ServiceLifecycle
import VestnikCore
import VestnikModel

/// Administration over the configured store, for `vestnik admin …`.
///
/// It opens the same store the server uses (the SQLite file in the data directory, or the
/// PostgreSQL database). Writers are serialized by the database across processes, and running
/// servers pick up the events written here (session revocations, …) within their poll interval,
/// or at once through PostgreSQL notifications. So the console works the same whether servers
/// are running or stopped. Access is exactly access to the data directory (0700) or the database
/// credentials: there is no network admin port.
package struct AdminConsole: Sendable {
    private let services: Services

    private init(services: Services) { self.services = services }

    /// Opens the store, runs `body` with a console, and closes the store again.
    package static func with<T: Sendable>(configuration: ServerConfiguration, _ body: @Sendable (AdminConsole) async throws -> T) async throws -> T {
        var logger = Logger(label: "vestnik.admin")
        logger.logLevel = .warning
        let opened = try Backend.openStore(configuration, logger: logger)
        let services = try await Backend.makeServices(store: opened.store, configuration: configuration, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for service in opened.services {
                group.addTask { try await service.run() }
            }
            defer { group.cancelAll() }
            try await opened.prepare()
            try await services.bots.adoptServerKey()
            await services.context.hub.start(after: try await opened.store.headSeq())
            return try await body(AdminConsole(services: services))
        }
    }

    /// Creates an account; returns it with its one-time password.
    package func addUser(_ account: NewAccount, password: String?) async throws -> (User, String) {
        try await services.accounts.createUser(account, password: password, as: .localAdmin)
    }

    package func listUsers() async throws -> [User] {
        try await services.accounts.listUsers(limit: 10_000, offset: 0, as: .localAdmin)
    }

    package func setBlocked(_ blocked: Bool, loginOrID: String) async throws -> User {
        let user = try await services.accounts.findUser(loginOrID, as: .localAdmin)
        return try await services.accounts.setBlocked(blocked, user: user.id, as: .localAdmin)
    }

    package func resetPassword(loginOrID: String, password: String?) async throws -> (User, String) {
        let user = try await services.accounts.findUser(loginOrID, as: .localAdmin)
        return (user, try await services.accounts.resetPassword(user: user.id, to: password, as: .localAdmin))
    }

    /// Imports accounts without passwords, all or none.
    package func importUsers(_ accounts: [NewAccount]) async throws -> [User] {
        try await services.accounts.importUsers(accounts, as: .localAdmin)
    }

    /// Opens a session for the user without a password; returns the user and the token.
    package func issueSession(loginOrID: String, deviceName: String) async throws -> (User, String) {
        let user = try await services.accounts.findUser(loginOrID, as: .localAdmin)
        return (user, try await services.sessions.issue(for: user.id, deviceName: deviceName, as: .localAdmin).token)
    }

    // MARK: Bots

    package func addBot(
        name: String, url: String, allowedData: BotAllowedData, description: String?, permissions: Set<BotPermission> = []
    ) async throws -> (BotRegistration, String) {
        try await services.bots.register(
            name: name, url: url, allowedData: allowedData, description: description, permissions: permissions, as: .localAdmin)
    }

    package func setBotPermissions(_ permissions: Set<BotPermission>, bot: String) async throws -> BotRegistration {
        try await services.bots.setPermissions(permissions, bot: bot, as: .localAdmin)
    }

    package func listBots() async throws -> [BotRegistration] {
        try await services.bots.list(as: .localAdmin)
    }

    package func setBotEnabled(_ enabled: Bool, bot: String) async throws -> BotRegistration {
        try await services.bots.setEnabled(enabled, bot: bot, as: .localAdmin)
    }

    package func rotateBotSecret(bot: String) async throws -> (User, String) {
        try await services.bots.rotateSecret(bot: bot, as: .localAdmin)
    }

    package func removeBot(bot: String) async throws -> User {
        try await services.bots.remove(bot: bot, as: .localAdmin)
    }
}
