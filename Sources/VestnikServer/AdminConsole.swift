import Foundation
import Logging
import VestnikCore
import VestnikModel

/// Administration over the data directory, for `vestnik admin …`.
///
/// It opens the same store the server uses. SQLite serializes writers across processes, and the
/// running server's fan-out picks up the events written here (session revocations, …) within its
/// poll interval, so the console works the same whether the server is running or stopped. Access
/// is exactly file access to the data directory (0700): there is no network admin port.
package struct AdminConsole: Sendable {
    private let services: Services

    package init(configuration: ServerConfiguration) async throws {
        var logger = Logger(label: "vestnik.admin")
        logger.logLevel = .warning
        let store = try Backend.openStore(configuration)
        services = try await Backend.makeServices(store: store, configuration: configuration, logger: logger)
        await services.context.hub.start(after: try await store.headSeq())
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
}
