import ArgumentParser
import Foundation
import VestnikCore
import VestnikModel
import VestnikServer

/// `vestnik admin bot …`: BotX-compatible bots (decision 0004).
struct AdminBotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bot", abstract: "Manage BotX-compatible bots.",
        subcommands: [Add.self, List.self, SetPermissions.self, Disable.self, Enable.self, RotateSecret.self, Remove.self])

    static let allowHelp = ArgumentHelp(
        "What the bot may do beyond its own chats, comma-separated: \(BotPermission.allCases.map(\.rawValue).joined(separator: ", ")), or none.")

    static func permissions(_ raw: String) throws -> Set<BotPermission> {
        guard let parsed = BotPermission.parseList(raw) else { throw ValidationError("--allow takes \(BotPermission.allCases.map(\.rawValue).joined(separator: ", ")) or none") }
        return parsed
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a bot; prints its bot_id and secret_key (shown once).")
        @OptionGroup var data: DataOptions
        @Option(help: "Display name in the directory.") var name: String
        @Option(help: "The bot's base URL; the server POSTs to {url}/command and {url}/notification/callback.") var url: String
        @Option(name: .customLong("allowed-data"), help: "commands (default): only /commands; all: every message.")
        var allowedData: String = "commands"
        @Option var description: String?
        @Option(help: AdminBotCommand.allowHelp) var allow: String = "none"
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard let allowed = BotAllowedData(rawValue: allowedData) else { throw ValidationError("--allowed-data must be commands or all") }
            let permissions = try AdminBotCommand.permissions(allow)
            let (name, url, description) = (self.name, self.url, self.description)
            let (registration, secret) = try await reportingErrors {
                try await AdminConsole.with(configuration: data.configuration()) {
                    try await $0.addBot(name: name, url: url, allowedData: allowed, description: description, permissions: permissions)
                }
            }
            if json {
                printJSONLine(AdminBotOutput(registration, secretKey: secret))
            } else {
                print("bot_id: \(registration.user.id)")
                print("secret_key: \(secret)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List bots with their delivery status.")
        @OptionGroup var data: DataOptions
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            let bots = try await reportingErrors { try await AdminConsole.with(configuration: data.configuration()) { try await $0.listBots() } }
            for bot in bots {
                if json {
                    printJSONLine(AdminBotOutput(bot, secretKey: nil))
                } else {
                    let state = bot.bot.enabled ? "enabled" : "disabled"
                    print(
                        "\(bot.user.id)\t\(bot.user.displayName)\t\(bot.bot.url)\t\(state)\t\(bot.bot.allowedData.rawValue)\tallow: \(BotPermission.listString(bot.bot.permissions).isEmpty ? "none" : BotPermission.listString(bot.bot.permissions))\tstatus: \(bot.bot.status ?? "never contacted")\tqueued: \(bot.pending)"
                    )
                }
            }
        }
    }

    struct SetPermissions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Change what a bot may do (--allow replaces the whole set).")
        @OptionGroup var data: DataOptions
        @Argument(help: "Bot id, login or name.") var bot: String
        @Option(help: AdminBotCommand.allowHelp) var allow: String
        func run() async throws {
            let (bot, permissions) = (self.bot, try AdminBotCommand.permissions(allow))
            let updated = try await reportingErrors {
                try await AdminConsole.with(configuration: data.configuration()) { try await $0.setBotPermissions(permissions, bot: bot) }
            }
            let list = BotPermission.listString(updated.bot.permissions)
            print("\(updated.user.displayName) (\(updated.user.id)) may: \(list.isEmpty ? "none" : list)")
        }
    }

    /// `disable` and `enable`: one shape, one implementation.
    static func setEnabled(_ enabled: Bool, bot: String, data: DataOptions) async throws {
        let updated = try await reportingErrors {
            try await AdminConsole.with(configuration: data.configuration()) { try await $0.setBotEnabled(enabled, bot: bot) }
        }
        print("\(enabled ? "enabled" : "disabled") \(updated.user.displayName) (\(updated.user.id))")
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop deliveries to a bot and refuse its API calls.")
        @OptionGroup var data: DataOptions
        @Argument(help: "Bot id, login or name.") var bot: String
        func run() async throws { try await AdminBotCommand.setEnabled(false, bot: bot, data: data) }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a bot again.")
        @OptionGroup var data: DataOptions
        @Argument(help: "Bot id, login or name.") var bot: String
        func run() async throws { try await AdminBotCommand.setEnabled(true, bot: bot, data: data) }
    }

    struct RotateSecret: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rotate-secret", abstract: "Issue a new secret_key (the old one stops working).")
        @OptionGroup var data: DataOptions
        @Argument(help: "Bot id, login or name.") var bot: String
        func run() async throws {
            let bot = self.bot
            let (user, secret) = try await reportingErrors {
                try await AdminConsole.with(configuration: data.configuration()) { try await $0.rotateBotSecret(bot: bot) }
            }
            print("bot_id: \(user.id)")
            print("secret_key: \(secret)")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a bot (its past messages stay).")
        @OptionGroup var data: DataOptions
        @Argument(help: "Bot id, login or name.") var bot: String
        func run() async throws {
            let bot = self.bot
            let user = try await reportingErrors {
                try await AdminConsole.with(configuration: data.configuration()) { try await $0.removeBot(bot: bot) }
            }
            print("removed \(user.displayName) (\(user.id))")
        }
    }
}

/// `admin bot add|list --json` output (the secret only right after `add`).
struct AdminBotOutput: Encodable {
    var botID: UserID
    var name: String
    var url: String
    var allowedData: String
    var allow: [String]
    var enabled: Bool
    var status: String?
    var queued: Int
    var secretKey: String?

    init(_ registration: BotRegistration, secretKey: String?) {
        botID = registration.user.id
        name = registration.user.displayName
        url = registration.bot.url
        allowedData = registration.bot.allowedData.rawValue
        allow = registration.bot.permissions.sorted().map(\.rawValue)
        enabled = registration.bot.enabled
        status = registration.bot.status
        queued = registration.pending
        self.secretKey = secretKey
    }
}
