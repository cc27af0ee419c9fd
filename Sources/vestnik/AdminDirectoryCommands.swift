import ArgumentParser
import Foundation
import VestnikCore
import VestnikModel
import VestnikServer

extension AdminUserCommand {
    /// `vestnik admin user import [FILE]`
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create many accounts from JSON lines, all or none; they get no password.",
            discussion: """
                One object per line: {"login":"ivanov","name":"Иван Иванов","email":…,"department":…,"position":…,"admin":false}.
                Imported accounts sign in after `reset-password` or with a session from `admin session issue`.
                """)
        @OptionGroup var data: DataOptions
        @Argument(help: "A JSON-lines file (default: standard input).") var file: String?
        @Flag(help: "Print each created user as JSON.") var json = false

        /// One line of the import file.
        struct Line: Decodable {
            var login: String
            var name: String
            var email: String?
            var department: String?
            var position: String?
            var admin: Bool?
        }

        func run() async throws {
            let input = try file.map { try Data(contentsOf: URL(fileURLWithPath: $0)) } ?? FileHandle.standardInput.readDataToEndOfFile()
            var accounts: [NewAccount] = []
            for (number, line) in input.split(separator: UInt8(ascii: "\n")).enumerated() where !line.allSatisfy({ $0 == 32 || $0 == 13 }) {
                let parsed: Line
                do {
                    parsed = try VestnikJSON.decode(Line.self, from: Data(line))
                } catch {
                    throw ValidationError("line \(number + 1) is not an account object: {\"login\":…,\"name\":…}")
                }
                accounts.append(
                    NewAccount(
                        login: parsed.login, displayName: parsed.name, email: parsed.email, department: parsed.department,
                        position: parsed.position, isAdmin: parsed.admin ?? false))
            }
            let toImport = accounts
            let users = try await reportingErrors {
                try await AdminConsole.with(configuration: data.configuration()) { try await $0.importUsers(toImport) }
            }
            if json {
                for user in users { printJSONLine(user) }
            } else {
                print("imported \(users.count) accounts")
            }
        }
    }
}

/// `vestnik admin session …`
struct AdminSessionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session", abstract: "Sessions on an administrator's authority.", subcommands: [Issue.self])

    /// `vestnik admin session issue LOGIN…`
    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open a session for users without their password; prints `login<TAB>token` per user (shown once).")
        @OptionGroup var data: DataOptions
        @Argument(help: "Logins or ids.") var users: [String] = []
        @Flag(name: .customLong("stdin"), help: "Also read logins from standard input, one per line.") var fromStdin = false
        @Option(help: "Device name the sessions are shown with.") var device = "Issued by administrator"

        func run() async throws {
            var logins = users
            if fromStdin {
                while let line = readLine(strippingNewline: true) {
                    let login = line.trimmingCharacters(in: .whitespaces)
                    if !login.isEmpty { logins.append(login) }
                }
            }
            guard !logins.isEmpty else { throw ValidationError("name at least one user") }
            let requested = logins
            let device = self.device
            try await reportingErrors {
                try await AdminConsole.with(configuration: data.configuration()) { console in
                    for login in requested {
                        let (user, token) = try await console.issueSession(loginOrID: login, deviceName: device)
                        FileHandle.standardOutput.write(Data("\(user.login)\t\(token)\n".utf8))
                    }
                }
            }
        }
    }
}
