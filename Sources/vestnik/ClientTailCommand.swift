import ArgumentParser
import Foundation
import VestnikAPI
import VestnikKit

/// `vestnik tail [CHAT] [--json]`: follows the realtime stream, surviving disconnects and server
/// restarts (the SDK stream reconnects and resumes; reconnects are reported on stderr).
struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail", abstract: "Stream events live (Ctrl-C to stop).")

    @Argument(help: "Only events of this chat (id, title, or a personal chat's peer login).")
    var chat: String?
    @Option(help: "Replay durable events after this log position first.")
    var since: Int64?
    @Flag(help: "Also show typing and presence notices.")
    var ephemeral = false
    @OptionGroup var output: JSONOption

    func run() async throws {
        try await ClientSession.run { session in
            var filter: ChatID?
            if let chat { filter = try await session.resolveChat(chat) }
            _ = try? await session.chatList()  // warm the title cache
            var connectedOnce = false
            for try await element in session.client.stream(since: since.map(EventSeq.init)) {
                switch element {
                case .event(let sequenced):
                    guard filter == nil || sequenced.event.chatID == filter else { continue }
                    if output.json {
                        try Output.json(ServerFrame(type: .event, seq: sequenced.seq, event: sequenced.event))
                    } else {
                        Output.line(await TailCommand.describe(sequenced.event, session: session))
                    }
                case .ephemeral(let event):
                    guard ephemeral || output.json, filter == nil || event.chatID == filter else { continue }
                    if output.json {
                        try Output.json(ServerFrame(type: .ephemeral, event: event))
                    } else {
                        Output.line(await TailCommand.describe(event, session: session))
                    }
                case .ready(let seq):
                    if output.json { try Output.json(ServerFrame(type: .ready, seq: seq)) }
                    Output.error(connectedOnce ? "reconnected at #\(seq)" : "connected at #\(seq)")
                    connectedOnce = true
                case .resyncRequired:
                    if output.json { try Output.json(ServerFrame(type: .resyncRequired)) }
                    Output.error("warning: some events were missed (resync required); continuing live")
                case .reconnecting(let attempt, let delay, let reason):
                    let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
                    Output.error(
                        "disconnected: \(reason); reconnecting in \(String(format: "%.1f", seconds))s (attempt \(attempt))")
                }
            }
        }
    }

    /// One human-readable line per event.
    static func describe(_ event: ServerEvent, session: ClientSession) async -> String {
        func inChat(_ id: ChatID) async -> String { "[\(await session.chatTitle(id))]" }
        switch event {
        case .messageCreated(let message):
            return "\(await inChat(message.chatID)) \(await session.format(message))"
        case .messageEdited(let message):
            return "\(await inChat(message.chatID)) edited: \(await session.format(message))"
        case .messageDeleted(let message):
            return "\(await inChat(message.chatID)) message \(message.id) deleted"
        case .reactionsChanged(let chatID, let messageID, let reactions):
            return "\(await inChat(chatID)) reactions on \(messageID): \(ClientSession.reactions(reactions))"
        case .messagePinned(let chatID, let messageID, let by):
            return "\(await inChat(chatID)) \(await session.displayName(by)) pinned \(messageID)"
        case .messageUnpinned(let chatID, let messageID, let by):
            return "\(await inChat(chatID)) \(await session.displayName(by)) unpinned \(messageID)"
        case .receiptUpdated(let chatID, let userID, let readSeq):
            return "\(await inChat(chatID)) \(await session.displayName(userID)) read up to #\(readSeq)"
        case .chatCreated(let chat):
            session.remember(chat)
            return "\(await inChat(chat.id)) chat created (\(chat.kind.rawValue), id \(chat.id))"
        case .chatUpdated(let chat):
            session.remember(chat)
            var line = "\(await inChat(chat.id)) chat updated: title \"\(chat.title)\""
            if !chat.description.isEmpty { line += ", description \"\(chat.description)\"" }
            return line
        case .membersJoined(let chat, let members, let by):
            session.remember(chat)
            var names: [String] = []
            for member in members { names.append(await session.displayName(member.userID)) }
            let who = names.joined(separator: ", ")
            if members.map(\.userID) == [by] { return "\(await inChat(chat.id)) \(who) joined" }
            return "\(await inChat(chat.id)) \(who) added by \(await session.displayName(by))"
        case .memberLeft(let chat, let userID, let by):
            session.remember(chat)
            let who = await session.displayName(userID)
            if userID == by { return "\(await inChat(chat.id)) \(who) left" }
            return "\(await inChat(chat.id)) \(who) was removed by \(await session.displayName(by))"
        case .memberRoleChanged(let chatID, let userID, let role, let by):
            return "\(await inChat(chatID)) \(await session.displayName(userID)) is now \(role.rawValue) (by \(await session.displayName(by)))"
        case .sessionRevoked(let sessionID):
            return "session \(sessionID) was revoked"
        case .typing(let chatID, let userID):
            return "\(await inChat(chatID)) \(await session.displayName(userID)) is typing…"
        case .presenceChanged(let presence):
            return "\(await session.displayName(presence.userID)) is \(presence.online ? "online" : "offline")"
        }
    }
}
