import ArgumentParser
import Foundation
import VestnikAPI
import VestnikKit

/// `vestnik login --server URL --login alice [--password-stdin] [--device NAME]`
struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login", abstract: "Log in and store the token in the config directory.")

    @Option(help: "Server base URL, e.g. https://chat.example.com (default: the last one used).")
    var server: String?

    @Option(help: "Your login.")
    var login: String

    @Flag(help: "Read the password from the first line of stdin instead of prompting.")
    var passwordStdin = false

    @Option(help: "Device name shown in your session list.")
    var device: String?

    func run() async throws {
        try await reportingErrors {
            guard let serverText = server ?? (try? CredentialStore.load())?.serverURL else {
                throw CLIError("invalid_argument", "--server is required")
            }
            guard let url = URL(string: serverText), let scheme = url.scheme?.lowercased(),
                scheme == "http" || scheme == "https", url.host != nil
            else {
                throw CLIError("invalid_argument", "\(serverText) is not an http(s) URL")
            }
            let password = passwordStdin ? try PasswordInput.fromStdin() : try PasswordInput.prompt("Password for \(login): ")
            let deviceName = device ?? "vestnik CLI on \(ProcessInfo.processInfo.hostName)"
            let client = VestnikClient(serverURL: url, token: nil)
            let response = try await client.login(login: login, password: password, deviceName: deviceName)
            try CredentialStore.save(
                Credentials(
                    serverURL: serverText, token: response.token, userID: response.user.id, login: response.user.login,
                    sessionID: response.session.id))
            Output.line("Logged in as \(response.user.login) (\(response.user.displayName)) on \(serverText)")
        }
    }
}

/// `vestnik logout`
struct LogoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logout", abstract: "End this session on the server and forget the token.")

    func run() async throws {
        try await ClientSession.run { session in
            do {
                try await session.client.logout()
            } catch let error as VestnikClientError where error.isAuthenticationFailure {
                // Already gone on the server: just forget it locally.
            } catch {
                CredentialStore.delete()
                Output.error("the token was removed locally, but the server session may still be active")
                throw error
            }
            CredentialStore.delete()
            Output.line("Logged out")
        }
    }
}

/// `vestnik whoami`
struct WhoamiCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show the signed-in user.")

    @OptionGroup var output: JSONOption

    func run() async throws {
        try await ClientSession.run { session in
            let me = try await session.client.me()
            if output.json {
                try Output.json(me)
            } else {
                Output.line("\(me.login) (\(me.displayName))\(me.isAdmin ? " [admin]" : "") id \(me.id) on \(session.credentials.serverURL)")
            }
        }
    }
}

// MARK: - Sessions

/// `vestnik sessions [--json]`, `vestnik sessions revoke ID`
struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions", abstract: "List or revoke your login sessions.",
        subcommands: [List.self, Revoke.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List your sessions (* = this one).")

        @OptionGroup var output: JSONOption

        func run() async throws {
            try await ClientSession.run { session in
                let list = try await session.client.sessions()
                for info in list.sessions {
                    if output.json {
                        try Output.json(info)
                    } else {
                        let s = info.session
                        Output.line(
                            "\(info.current ? "*" : " ") \(s.id)  \(s.deviceName)  last seen \(ClientSession.time(s.lastSeenAt))  created \(ClientSession.time(s.createdAt))"
                        )
                    }
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Log a session out.")

        @Argument(help: "The session id (see `vestnik sessions`).")
        var id: String

        func run() async throws {
            try await ClientSession.run { session in
                guard let sessionID = SessionID(id) else {
                    throw CLIError("invalid_argument", "\(id) is not a session id")
                }
                try await session.client.revokeSession(sessionID)
                if sessionID == session.credentials.sessionID {
                    CredentialStore.delete()
                    Output.line("Revoked \(sessionID) (this session; logged out)")
                } else {
                    Output.line("Revoked \(sessionID)")
                }
            }
        }
    }
}

// MARK: - Users

/// `vestnik users search Q`, `vestnik users show LOGIN|ID`
struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "Search the directory.", subcommands: [Search.self, Show.self])

    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "search", abstract: "Find users by name or login.")

        @Argument(help: "Search text.")
        var query: String

        @Option(help: "At most this many results.")
        var limit: Int?

        @OptionGroup var output: JSONOption

        func run() async throws {
            try await ClientSession.run { session in
                let list = try await session.client.searchUsers(query: query, limit: limit)
                for profile in list.users {
                    if output.json {
                        try Output.json(profile)
                    } else {
                        Output.line(UsersCommand.describe(profile))
                    }
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one user.")

        @Argument(help: "Login or user id.")
        var user: String

        @OptionGroup var output: JSONOption

        func run() async throws {
            try await ClientSession.run { session in
                let profile = try await session.client.user(try await session.resolveUser(user))
                if output.json {
                    try Output.json(profile)
                    return
                }
                let u = profile.user
                Output.line("\(u.displayName) (@\(u.login))")
                Output.line("  id:         \(u.id)")
                if let email = u.email { Output.line("  email:      \(email)") }
                if let department = u.department { Output.line("  department: \(department)") }
                if let position = u.position { Output.line("  position:   \(position)") }
                Output.line("  presence:   \(UsersCommand.presence(profile.presence))")
                if u.isAdmin { Output.line("  admin:      yes") }
                if u.isBlocked { Output.line("  blocked:    yes") }
            }
        }
    }

    static func describe(_ profile: UserProfile) -> String {
        let u = profile.user
        return "\(u.login)  \(u.displayName)  [\(presence(profile.presence))]\(u.isBlocked ? " [blocked]" : "")  id \(u.id)"
    }

    static func presence(_ presence: Presence) -> String {
        if presence.online { return "online" }
        if let last = presence.lastSeenAt { return "last seen \(ClientSession.time(last))" }
        return "offline"
    }
}
