import ArgumentParser
import Foundation
import VestnikAPI
import VestnikKit

/// `vestnik chats [--json]`
struct ChatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chats", abstract: "List your chats, newest activity first.")

    @OptionGroup var output: JSONOption

    func run() async throws {
        try await ClientSession.run { session in
            for item in try await session.chatList() {
                if output.json {
                    try Output.json(item)
                    continue
                }
                var line = "\(item.chat.id)  \(item.chat.kind.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0))"
                line += "  \(await session.chatTitle(item))"
                if item.unreadCount > 0 { line += "  (\(item.unreadCount) unread)" }
                if let last = item.lastMessage {
                    let text = last.isDeleted ? "(message deleted)" : last.text.replacingOccurrences(of: "\n", with: " ")
                    let preview = text.count > 60 ? String(text.prefix(59)) + "…" : text
                    line += "  — \(await session.displayName(last.senderID)): \(preview)"
                }
                Output.line(line)
            }
        }
    }
}

/// `vestnik chat …`
struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Create and manage chats.",
        subcommands: [
            Create.self, Show.self, Rename.self, Describe.self, Add.self, Remove.self, Promote.self, Demote.self,
            Leave.self, Members.self, Pins.self,
        ])

    /// `vestnik chat create --group NAME --members bob,carol | --channel NAME … | --personal bob | --notes`
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Create a chat and print its id.")

        @Option(help: "Create a group with this title.")
        var group: String?
        @Option(help: "Create a channel with this title.")
        var channel: String?
        @Option(help: "Open the personal chat with this user (login or id).")
        var personal: String?
        @Flag(help: "Open your notes chat.")
        var notes = false
        @Option(help: "Comma-separated members (logins or ids) of a group or channel.")
        var members: String?
        @Option(help: "Description of a group or channel.")
        var description: String?
        @OptionGroup var output: JSONOption

        func validate() throws {
            let kinds = [group != nil, channel != nil, personal != nil, notes].filter { $0 }.count
            guard kinds == 1 else {
                throw ValidationError("give exactly one of --group, --channel, --personal, --notes")
            }
            if members != nil, group == nil, channel == nil {
                throw ValidationError("--members only applies to --group and --channel")
            }
        }

        func run() async throws {
            try await ClientSession.run { session in
                let client = session.client
                var memberIDs: [UserID] = []
                if let members { memberIDs = try await session.resolveUsers(members) }
                let details: ChatDetails
                if let group {
                    details = try await client.createGroup(title: group, description: description, members: memberIDs)
                } else if let channel {
                    details = try await client.createChannel(title: channel, description: description, members: memberIDs)
                } else if let personal {
                    details = try await client.openPersonalChat(with: try await session.resolveUser(personal))
                } else {
                    details = try await client.openNotesChat()
                }
                if output.json {
                    try Output.json(details)
                } else {
                    Output.line(details.chat.id.description)
                }
            }
        }
    }

    /// `vestnik chat show CHAT`
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a chat and its members.")

        @Argument(help: "Chat id, title, or a personal chat's peer login.")
        var chat: String
        @OptionGroup var output: JSONOption

        func run() async throws {
            try await ClientSession.run { session in
                let details = try await session.client.chat(try await session.resolveChat(chat))
                if output.json {
                    try Output.json(details)
                    return
                }
                let c = details.chat
                session.remember(c)
                Output.line("\(await session.chatTitle(c.id)) (\(c.kind.rawValue))")
                Output.line("  id:          \(c.id)")
                if !c.description.isEmpty { Output.line("  description: \(c.description)") }
                Output.line("  created:     \(ClientSession.time(c.createdAt)) by \(await session.displayName(c.createdBy))")
                Output.line("  messages:    \(c.lastMessageSeq)")
                Output.line("  your role:   \(details.myRole.rawValue)")
                Output.line("  members (\(c.memberCount)):")
                for member in details.members {
                    Output.line("    \(await ChatCommand.describe(member, session: session))")
                }
            }
        }
    }

    /// `vestnik chat rename CHAT NAME`
    struct Rename: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rename", abstract: "Change a chat's title.")
        @Argument(help: "Chat id or title.") var chat: String
        @Argument(help: "The new title.") var name: String

        func run() async throws {
            try await ClientSession.run { session in
                let updated = try await session.client.updateChat(try await session.resolveChat(chat), title: name)
                Output.line("Renamed chat \(updated.id) to \"\(updated.title)\"")
            }
        }
    }

    /// `vestnik chat describe CHAT TEXT`
    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "describe", abstract: "Change a chat's description.")
        @Argument(help: "Chat id or title.") var chat: String
        @Argument(help: "The new description (empty to clear).") var text: String

        func run() async throws {
            try await ClientSession.run { session in
                let updated = try await session.client.updateChat(try await session.resolveChat(chat), description: text)
                Output.line("Updated the description of \(updated.title.isEmpty ? updated.id.description : updated.title)")
            }
        }
    }

    /// `vestnik chat add CHAT bob,carol`
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Add members to a chat.")
        @Argument(help: "Chat id or title.") var chat: String
        @Argument(help: "Comma-separated logins or user ids.") var users: String

        func run() async throws {
            try await ClientSession.run { session in
                let chatID = try await session.resolveChat(chat)
                let ids = try await session.resolveUsers(users)
                guard !ids.isEmpty else { throw CLIError("invalid_argument", "no users given") }
                let list = try await session.client.addMembers(chatID: chatID, userIDs: ids)
                Output.line("Added \(ids.count) user(s); the chat has \(list.members.count) members")
            }
        }
    }

    /// `vestnik chat remove CHAT bob`
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a member from a chat.")
        @Argument(help: "Chat id or title.") var chat: String
        @Argument(help: "Login or user id.") var user: String

        func run() async throws {
            try await ClientSession.run { session in
                let chatID = try await session.resolveChat(chat)
                let userID = try await session.resolveUser(user)
                try await session.client.removeMember(chatID: chatID, userID: userID)
                Output.line("Removed \(await session.loginName(userID))")
            }
        }
    }

    /// `vestnik chat promote CHAT bob`
    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "promote", abstract: "Make a member an admin.")
        @Argument(help: "Chat id or title.") var chat: String
        @Argument(help: "Login or user id.") var user: String

        func run() async throws {
            try await ChatCommand.setRole(.admin, chat: chat, user: user)
        }
    }

    /// `vestnik chat demote CHAT bob`
    struct Demote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "demote", abstract: "Make an admin a plain member.")
        @Argument(help: "Chat id or title.") var chat: String
        @Argument(help: "Login or user id.") var user: String

        func run() async throws {
            try await ChatCommand.setRole(.member, chat: chat, user: user)
        }
    }

    /// `vestnik chat leave CHAT`
    struct Leave: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "leave", abstract: "Leave a chat.")
        @Argument(help: "Chat id or title.") var chat: String

        func run() async throws {
            try await ClientSession.run { session in
                let chatID = try await session.resolveChat(chat)
                try await session.client.leaveChat(chatID)
                Output.line("Left chat \(chatID)")
            }
        }
    }

    /// `vestnik chat members CHAT [--json]`
    struct Members: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "members", abstract: "List a chat's members.")
        @Argument(help: "Chat id or title.") var chat: String
        @OptionGroup var output: JSONOption

        func run() async throws {
            try await ClientSession.run { session in
                let list = try await session.client.members(chatID: try await session.resolveChat(chat))
                for member in list.members {
                    if output.json {
                        try Output.json(member)
                    } else {
                        Output.line(await ChatCommand.describe(member, session: session))
                    }
                }
            }
        }
    }

    /// `vestnik chat pins CHAT [--json]`
    struct Pins: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pins", abstract: "List a chat's pinned messages.")
        @Argument(help: "Chat id or title.") var chat: String
        @OptionGroup var output: JSONOption

        func run() async throws {
            try await ClientSession.run { session in
                let list = try await session.client.pins(chatID: try await session.resolveChat(chat))
                for message in list.messages {
                    if output.json {
                        try Output.json(message)
                    } else {
                        Output.line(await session.format(message))
                    }
                }
            }
        }
    }

    static func setRole(_ role: MemberRole, chat: String, user: String) async throws {
        try await ClientSession.run { session in
            let chatID = try await session.resolveChat(chat)
            let userID = try await session.resolveUser(user)
            let member = try await session.client.setRole(chatID: chatID, userID: userID, role: role)
            Output.line("\(await session.loginName(member.userID)) is now \(member.role.rawValue)")
        }
    }

    static func describe(_ member: ChatMember, session: ClientSession) async -> String {
        let name = await session.displayName(member.userID)
        let login = await session.loginName(member.userID)
        return "\(login)  \(name)  \(member.role.rawValue)  id \(member.userID)"
    }
}
