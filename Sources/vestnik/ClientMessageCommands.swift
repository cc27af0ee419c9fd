import ArgumentParser
import Foundation
import VestnikAPI
import VestnikKit

/// `vestnik send CHAT TEXT [--reply-to ID] [--forward ID]`
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send", abstract: "Send (or forward) a message and print its id.")

    @Argument(help: "Chat id, title, or a personal chat's peer login.")
    var chat: String
    @Argument(help: "The text (optional with --forward). `@login` and `@all` mention people.")
    var text: String?
    @Option(help: "Reply to this message id.")
    var replyTo: String?
    @Option(help: "Forward this message id into the chat.")
    var forward: String?
    @OptionGroup var output: JSONOption

    func validate() throws {
        if text == nil, forward == nil { throw ValidationError("give the message text (or --forward ID)") }
    }

    func run() async throws {
        try await ClientSession.run { session in
            let chatID = try await session.resolveChat(chat)
            let message = try await session.client.sendMessage(
                chatID: chatID, text: text, replyTo: try replyTo.map(ClientSession.messageID),
                forwardOf: try forward.map(ClientSession.messageID))
            if output.json {
                try Output.json(message)
            } else {
                Output.line(message.id.description)
            }
        }
    }
}

/// `vestnik edit MESSAGE TEXT`
struct EditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "edit", abstract: "Change the text of your message.")
    @Argument(help: "Message id.") var message: String
    @Argument(help: "The new text.") var text: String

    func run() async throws {
        try await ClientSession.run { session in
            let edited = try await session.client.editMessage(try ClientSession.messageID(message), text: text)
            Output.line("Edited \(edited.id) (version \(edited.editCount))")
        }
    }
}

/// `vestnik delete MESSAGE`
struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a message.")
    @Argument(help: "Message id.") var message: String

    func run() async throws {
        try await ClientSession.run { session in
            let tombstone = try await session.client.deleteMessage(try ClientSession.messageID(message))
            Output.line("Deleted \(tombstone.id)")
        }
    }
}

/// `vestnik react MESSAGE EMOJI [--remove]`
struct ReactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "react", abstract: "Add or remove a reaction.")
    @Argument(help: "Message id.") var message: String
    @Argument(help: "The emoji.") var emoji: String
    @Flag(help: "Remove your reaction instead.") var remove = false

    func run() async throws {
        try await ClientSession.run { session in
            let id = try ClientSession.messageID(message)
            let response =
                remove
                ? try await session.client.removeReaction(messageID: id, emoji: emoji)
                : try await session.client.addReaction(messageID: id, emoji: emoji)
            Output.line(ClientSession.reactions(response.reactions))
        }
    }
}

/// `vestnik pin MESSAGE [--remove]`
struct PinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pin", abstract: "Pin (or with --remove unpin) a message.")
    @Argument(help: "Message id.") var message: String
    @Flag(help: "Unpin instead.") var remove = false

    func run() async throws {
        try await ClientSession.run { session in
            let id = try ClientSession.messageID(message)
            if remove {
                try await session.client.unpin(messageID: id)
                Output.line("Unpinned \(id)")
            } else {
                try await session.client.pin(messageID: id)
                Output.line("Pinned \(id)")
            }
        }
    }
}

/// `vestnik unpin MESSAGE`
struct UnpinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpin", abstract: "Unpin a message.")
    @Argument(help: "Message id.") var message: String

    func run() async throws {
        try await ClientSession.run { session in
            let id = try ClientSession.messageID(message)
            try await session.client.unpin(messageID: id)
            Output.line("Unpinned \(id)")
        }
    }
}

/// `vestnik history CHAT [--limit N] [--before ID] [--json]`
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Show messages, oldest first (the newest page by default).")
    @Argument(help: "Chat id, title, or a personal chat's peer login.") var chat: String
    @Option(help: "Page size.") var limit: Int?
    @Option(help: "Messages older than this message id.") var before: String?
    @Option(help: "Messages newer than this message id.") var after: String?
    @Option(help: "Messages around this message id.") var around: String?
    @OptionGroup var output: JSONOption

    func validate() throws {
        if [before, after, around].compactMap({ $0 }).count > 1 {
            throw ValidationError("give at most one of --before, --after, --around")
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be positive") }
    }

    func run() async throws {
        try await ClientSession.run { session in
            let page = try await session.client.history(
                chatID: try await session.resolveChat(chat), before: try before.map(ClientSession.messageID),
                after: try after.map(ClientSession.messageID), around: try around.map(ClientSession.messageID),
                limit: limit)
            if !output.json, page.hasMoreBefore, let first = page.messages.first {
                Output.error("(older messages: --before \(first.id))")
            }
            for message in page.messages {
                if output.json {
                    try Output.json(message)
                } else {
                    Output.line(await session.format(message))
                }
            }
            if !output.json, page.hasMoreAfter, let last = page.messages.last {
                Output.error("(newer messages: --after \(last.id))")
            }
        }
    }
}

/// `vestnik edits MESSAGE`
struct EditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "edits", abstract: "Show every version of a message.")
    @Argument(help: "Message id.") var message: String
    @OptionGroup var output: JSONOption

    func run() async throws {
        try await ClientSession.run { session in
            let history = try await session.client.edits(messageID: try ClientSession.messageID(message))
            for version in history.versions {
                if output.json {
                    try Output.json(version)
                } else {
                    let label = version.version == 0 ? "original" : "edit \(version.version)"
                    Output.line("[\(ClientSession.time(version.editedAt))] \(label): \(version.text)")
                }
            }
        }
    }
}

/// `vestnik read CHAT`
struct ReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "read", abstract: "Mark a chat read up to its newest message.")
    @Argument(help: "Chat id, title, or a personal chat's peer login.") var chat: String

    func run() async throws {
        try await ClientSession.run { session in
            let chatID = try await session.resolveChat(chat)
            guard let newest = try await session.client.history(chatID: chatID, limit: 1).messages.last else {
                Output.line("No messages to read")
                return
            }
            let position = try await session.client.markRead(chatID: chatID, messageID: newest.id)
            Output.line("Read up to #\(position.readSeq) (\(position.unreadCount) unread)")
        }
    }
}

/// `vestnik read-by MESSAGE`
struct ReadByCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "read-by", abstract: "Show who has read a message.")
    @Argument(help: "Message id.") var message: String
    @OptionGroup var output: JSONOption

    func run() async throws {
        try await ClientSession.run { session in
            let response = try await session.client.readBy(messageID: try ClientSession.messageID(message))
            if output.json {
                try Output.json(response)
                return
            }
            for user in response.users {
                Output.line("\(await session.loginName(user))  \(await session.displayName(user))")
            }
        }
    }
}
