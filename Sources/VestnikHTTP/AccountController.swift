import Foundation
import Hummingbird
import VestnikAPI
import VestnikCore

/// Login, logout, sessions, and the directory.
struct AccountController {
    let services: Services

    func addPublicRoutes(to group: RouterGroup<VestnikRequestContext>) {
        group.post("auth/login", use: login)
    }

    func addRoutes(to group: RouterGroup<AuthenticatedRequestContext>) {
        group.post("auth/logout", use: logout)
        group.get("me", use: me)
        group.get("sessions", use: listSessions)
        group.delete("sessions/:session_id", use: revokeSession)
        group.get("users", use: searchUsers)
        group.get("users/:user_id", use: profile)
    }

    /// POST /api/v1/auth/login
    @Sendable func login(_ request: Request, context: VestnikRequestContext) async throws -> LoginResponse {
        let body = try await request.decodeJSON(LoginRequest.self)
        let (token, session, user) = try await services.sessions.login(
            login: body.login, password: body.password, deviceName: body.deviceName, address: context.clientAddress)
        return LoginResponse(token: token, session: session, user: user)
    }

    /// POST /api/v1/auth/logout
    @Sendable func logout(_ request: Request, context: AuthenticatedRequestContext) async throws -> HTTPResponse.Status {
        try await services.sessions.logout(context.session)
        return .noContent
    }

    /// GET /api/v1/me
    @Sendable func me(_ request: Request, context: AuthenticatedRequestContext) async throws -> User {
        try await services.accounts.me(as: context.session.principal)
    }

    /// GET /api/v1/sessions
    @Sendable func listSessions(_ request: Request, context: AuthenticatedRequestContext) async throws -> SessionList {
        let sessions = try await services.sessions.sessions(as: context.session)
        return SessionList(sessions: sessions.map { SessionInfo(session: $0, current: $0.id == context.session.sessionID) })
    }

    /// DELETE /api/v1/sessions/{session_id}
    @Sendable func revokeSession(_ request: Request, context: AuthenticatedRequestContext) async throws -> HTTPResponse.Status {
        try await services.sessions.revoke(try context.id("session_id", as: SessionID.self), as: context.session)
        return .noContent
    }

    /// GET /api/v1/users?q=…&limit=…
    @Sendable func searchUsers(_ request: Request, context: AuthenticatedRequestContext) async throws -> UserList {
        let limit = try request.queryInt("limit", in: 1...Int64(APILimits.maxPageSize)) ?? 50
        let found = try await services.accounts.search(request.queryString("q") ?? "", limit: Int(limit), as: context.session.principal)
        return UserList(users: found.map { UserProfile(user: $0.0, presence: $0.1) })
    }

    /// GET /api/v1/users/{user_id}
    @Sendable func profile(_ request: Request, context: AuthenticatedRequestContext) async throws -> UserProfile {
        let (user, presence) = try await services.accounts.profile(try context.id("user_id", as: UserID.self), as: context.session.principal)
        return UserProfile(user: user, presence: presence)
    }
}
