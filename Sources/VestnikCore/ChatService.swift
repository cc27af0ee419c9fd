import Foundation
import Logging
import VestnikModel

/// Chats and membership, with the rules of each chat kind.
///
/// Anything the caller is not a member of is `chat_not_found`, exactly like a chat that does not
/// exist, so ids leak nothing.
package struct ChatService: Sendable {
    private let context: CoreContext
    /// At most one typing notification per user and chat every 3 seconds; extra ones are dropped.
    private let typingThrottle = RateLimiter(limit: 1, window: 3, maxKeys: 50_000)

    package init(context: CoreContext) { self.context = context }

    /// Creates a chat, or returns the existing one for personal and notes chats.
    /// - Returns: the chat details and whether a new chat was created.
    package func create(
        kind: ChatKind, title: String?, description: String?, members: [UserID], as caller: AuthenticatedSession
    ) async throws -> (ChatDetailsView, created: Bool) {
        let me = caller.userID
        let now = Date.millisecondNow()
        switch kind {
        case .personal:
            let others = Set(members).subtracting([me])
            guard others.count == 1, let peer = others.first, members.count <= 2 else {
                throw VestnikError.invalid("A personal chat needs exactly one other member.")
            }
            return try await Self.onceMoreAfterConflict {
                try await context.write { tx, log in
                    guard let peerRecord = try await tx.user(peer) else { throw VestnikError.userNotFound }
                    if let existing = try await tx.personalChat(between: me, and: peer) {
                        return (try await Self.details(existing, for: me, in: tx), false)
                    }
                    guard !peerRecord.user.isBlocked else { throw VestnikError(.forbidden, "That account is blocked.") }
                    let chat = Chat(
                        id: .random(), kind: .personal, title: "", description: "", createdBy: me, createdAt: now, memberCount: 2,
                        lastMessageSeq: 0, lastActivityAt: now)
                    try await tx.insertChat(chat, uniqueKey: Self.personalKey(me, peer))
                    for user in [me, peer] {
                        try await tx.insertMember(ChatMember(userID: user, role: .member, joinedAt: now, readSeq: 0), into: chat.id)
                    }
                    try await log.append(.chatCreated(chat), to: [me, peer], in: tx)
                    try await Self.announceCreated(chat, tx: tx, log: log)
                    return (try await Self.details(chat.id, for: me, in: tx), true)
                }
            }
        case .notes:
            guard members.allSatisfy({ $0 == me }) else { throw VestnikError.invalid("A notes chat has no other members.") }
            return try await Self.onceMoreAfterConflict {
                try await context.write { tx, log in
                    if let existing = try await tx.notesChat(of: me) {
                        return (try await Self.details(existing, for: me, in: tx), false)
                    }
                    let chat = Chat(
                        id: .random(), kind: .notes, title: "", description: "", createdBy: me, createdAt: now, memberCount: 1,
                        lastMessageSeq: 0, lastActivityAt: now)
                    try await tx.insertChat(chat, uniqueKey: "notes:\(me)")
                    try await tx.insertMember(ChatMember(userID: me, role: .admin, joinedAt: now, readSeq: 0), into: chat.id)
                    try await log.append(.chatCreated(chat), to: [me], in: tx)
                    return (try await Self.details(chat.id, for: me, in: tx), true)
                }
            }
        case .group, .channel:
            let title = try Validation.text(title ?? "", field: "title", min: 1, max: context.limits.maxTitleLength)
            let description = try Validation.text(
                description ?? "", field: "description", min: 0, max: context.limits.maxDescriptionLength, multiline: true)
            var invited: [UserID] = []
            for id in members where id != me && !invited.contains(id) { invited.append(id) }
            guard invited.count <= context.limits.maxMembersPerRequest else {
                throw VestnikError.invalid("At most \(context.limits.maxMembersPerRequest) members can be added at once.")
            }
            let toAdd = invited
            return try await context.write { tx, log in
                let found = try await tx.users(toAdd)
                guard found.count == toAdd.count else { throw VestnikError.userNotFound }
                guard !found.contains(where: \.isBlocked) else { throw VestnikError(.forbidden, "A blocked account cannot be added to a chat.") }
                let chat = Chat(
                    id: .random(), kind: kind, title: title, description: description, createdBy: me, createdAt: now,
                    memberCount: toAdd.count + 1, lastMessageSeq: 0, lastActivityAt: now)
                try await tx.insertChat(chat, uniqueKey: nil)
                try await tx.insertMember(ChatMember(userID: me, role: .admin, joinedAt: now, readSeq: 0), into: chat.id)
                for user in toAdd {
                    try await tx.insertMember(ChatMember(userID: user, role: .member, joinedAt: now, readSeq: 0), into: chat.id)
                }
                try await log.append(.chatCreated(chat), to: [me] + toAdd, in: tx)
                try await Self.announceCreated(chat, tx: tx, log: log)
                return (try await Self.details(chat.id, for: me, in: tx), true)
            }
        }
    }

    /// The caller's chats, most recent activity first.
    package func list(as caller: AuthenticatedSession) async throws -> [ChatListRow] {
        let rows = try await context.read { try await $0.chatList(of: caller.userID) }
        // The store already picks the newest message the caller may see; this keeps that rule
        // in Core should a store get it wrong.
        return rows.map { row in
            var row = row
            if let last = row.lastMessage, !last.isVisible(to: caller.userID) { row.lastMessage = nil }
            return row
        }
    }

    /// One chat with its members.
    package func details(_ chatID: ChatID, as caller: AuthenticatedSession) async throws -> ChatDetailsView {
        try await context.read { try await Self.details(chatID, for: caller.userID, in: $0) }
    }

    /// The members of a chat.
    package func members(_ chatID: ChatID, as caller: AuthenticatedSession) async throws -> [ChatMember] {
        try await context.read { reader in
            _ = try await Self.membership(chatID, of: caller.userID, in: reader)
            return try await reader.members(of: chatID)
        }
    }

    /// Renames a chat and/or sets its description (group and channel admins).
    package func update(_ chatID: ChatID, title: String?, description: String?, as caller: AuthenticatedSession) async throws -> Chat {
        let newTitle = try title.map { try Validation.text($0, field: "title", min: 1, max: context.limits.maxTitleLength) }
        let newDescription = try description.map {
            try Validation.text($0, field: "description", min: 0, max: context.limits.maxDescriptionLength, multiline: true)
        }
        guard newTitle != nil || newDescription != nil else { throw VestnikError.invalid("Nothing to change: give a title or a description.") }
        return try await context.write { tx, log in
            var (chat, member) = try await Self.membership(chatID, of: caller.userID, in: tx)
            try Self.requireManageable(chat, by: member)
            if let newTitle { chat.title = newTitle }
            if let newDescription { chat.description = newDescription }
            try await tx.updateChat(chat)
            try await log.append(.chatUpdated(chat), to: try await tx.memberIDs(of: chatID), in: tx)
            return chat
        }
    }

    /// Adds users to a group or channel (admins). Users already in the chat are skipped.
    package func addMembers(_ users: [UserID], to chatID: ChatID, as caller: AuthenticatedSession) async throws -> [ChatMember] {
        var unique: [UserID] = []
        for id in users where !unique.contains(id) { unique.append(id) }
        guard !unique.isEmpty else { throw VestnikError.invalid("Name at least one user to add.") }
        guard unique.count <= context.limits.maxMembersPerRequest else {
            throw VestnikError.invalid("At most \(context.limits.maxMembersPerRequest) members can be added at once.")
        }
        let toAdd = unique
        return try await context.write { tx, log in
            var (chat, member) = try await Self.membership(chatID, of: caller.userID, in: tx)
            try Self.requireManageable(chat, by: member)
            let found = try await tx.users(toAdd)
            guard found.count == toAdd.count else { throw VestnikError.userNotFound }
            guard !found.contains(where: \.isBlocked) else { throw VestnikError(.forbidden, "A blocked account cannot be added to a chat.") }
            let now = Date.millisecondNow()
            var current = Set(try await tx.memberIDs(of: chatID))
            var joined: [ChatMember] = []
            for user in toAdd where !current.contains(user) {
                // New members start with the history marked read: they joined now.
                let newMember = ChatMember(userID: user, role: .member, joinedAt: now, readSeq: chat.lastMessageSeq)
                try await tx.insertMember(newMember, into: chatID)
                current.insert(user)
                joined.append(newMember)
            }
            if !joined.isEmpty {
                chat.memberCount = current.count
                try await tx.updateChat(chat)
                try await log.append(.membersJoined(chat: chat, members: joined, by: caller.userID), to: Array(current), in: tx)
                try await BotTriggers.system(
                    BotSystemJob(
                        name: .addedToChat, chatID: chat.id, chatKind: chat.kind, userID: caller.userID,
                        members: try await BotTriggers.memberInfo(joined, tx: tx)),
                    chat: chat.id, except: caller.userID, tx: tx, log: log)
            }
            return try await tx.members(of: chatID)
        }
    }

    /// Removes a member (admins), or the caller themself (same as leaving).
    package func removeMember(_ user: UserID, from chatID: ChatID, as caller: AuthenticatedSession) async throws {
        if user == caller.userID { return try await leave(chatID, as: caller) }
        try await removeMembers([user], from: chatID, as: caller)
    }

    /// Removes several members (admins) in one transaction: all of them, or — when one is not a
    /// member or is the last admin — none.
    package func removeMembers(_ users: [UserID], from chatID: ChatID, as caller: AuthenticatedSession) async throws {
        var unique: [UserID] = []
        for id in users where !unique.contains(id) { unique.append(id) }
        guard unique.count <= context.limits.maxMembersPerRequest else {
            throw VestnikError.invalid("At most \(context.limits.maxMembersPerRequest) members can be removed at once.")
        }
        let toRemove = unique
        try await context.write { tx, log in
            let (chat, member) = try await Self.membership(chatID, of: caller.userID, in: tx)
            try Self.requireManageable(chat, by: member)
            for user in toRemove {
                guard let target = try await tx.member(user, of: chatID) else {
                    throw VestnikError(.notFound, "That user is not a member of this chat.")
                }
                if target.role == .admin {
                    let admins = try await tx.members(of: chatID).filter { $0.role == .admin }
                    guard admins.count > 1 else { throw VestnikError(.lastAdmin, "The last admin cannot be removed.") }
                }
                // Re-read: each removal changes the member count.
                guard let current = try await tx.chat(chatID) else { throw VestnikError.chatNotFound }
                try await Self.removeMembership(user, chat: current, by: caller.userID, tx: tx, log: log)
            }
        }
    }

    /// Leaves a group or channel. The last admin leaving hands admin to the longest-standing member.
    package func leave(_ chatID: ChatID, as caller: AuthenticatedSession) async throws {
        try await context.write { tx, log in
            let (chat, member) = try await Self.membership(chatID, of: caller.userID, in: tx)
            guard chat.kind == .group || chat.kind == .channel else {
                throw VestnikError(.forbidden, "You cannot leave a \(chat.kind.rawValue) chat.")
            }
            let members = try await tx.members(of: chatID)
            if member.role == .admin, !members.contains(where: { $0.role == .admin && $0.userID != caller.userID }),
                let heir = members.filter({ $0.userID != caller.userID }).min(by: { $0.joinedAt < $1.joinedAt })
            {
                try await tx.setRole(.admin, of: heir.userID, in: chatID)
                try await log.append(
                    .memberRoleChanged(chatID: chatID, userID: heir.userID, role: .admin, by: caller.userID),
                    to: members.map(\.userID), in: tx)
            }
            try await Self.removeMembership(caller.userID, chat: chat, by: caller.userID, tx: tx, log: log)
        }
    }

    /// Promotes a member to admin or demotes an admin (admins only; never the last admin).
    package func setRole(_ role: MemberRole, of user: UserID, in chatID: ChatID, as caller: AuthenticatedSession) async throws -> ChatMember {
        guard let changed = try await setRole(role, of: [user], in: chatID, as: caller).first else { throw VestnikError.chatNotFound }
        return changed
    }

    /// Gives several members one role in one transaction: all of them, or none.
    @discardableResult
    package func setRole(_ role: MemberRole, of users: [UserID], in chatID: ChatID, as caller: AuthenticatedSession) async throws -> [ChatMember] {
        guard users.count <= context.limits.maxMembersPerRequest else {
            throw VestnikError.invalid("At most \(context.limits.maxMembersPerRequest) members at once.")
        }
        return try await context.write { tx, log in
            let (chat, member) = try await Self.membership(chatID, of: caller.userID, in: tx)
            try Self.requireManageable(chat, by: member)
            var result: [ChatMember] = []
            for user in users {
                guard var target = try await tx.member(user, of: chatID) else {
                    throw VestnikError(.notFound, "That user is not a member of this chat.")
                }
                if target.role != role {
                    if role == .member {
                        let admins = try await tx.members(of: chatID).filter { $0.role == .admin }
                        guard admins.count > 1 else { throw VestnikError(.lastAdmin, "A chat must keep at least one admin.") }
                    }
                    try await tx.setRole(role, of: user, in: chatID)
                    target.role = role
                    try await log.append(
                        .memberRoleChanged(chatID: chatID, userID: user, role: role, by: caller.userID), to: try await tx.memberIDs(of: chatID),
                        in: tx)
                }
                result.append(target)
            }
            return result
        }
    }

    /// Tells the other members that the caller is typing. Ephemeral: never stored.
    package func typing(in chatID: ChatID, as caller: AuthenticatedSession) async throws {
        guard typingThrottle.acquire("\(caller.userID):\(chatID)") == nil else { return }
        let others = try await context.read { reader -> [UserID] in
            let (chat, member) = try await Self.membership(chatID, of: caller.userID, in: reader)
            guard chat.kind != .channel || member.role == .admin else {
                throw VestnikError(.channelReadOnly, "Only admins post in a channel.")
            }
            return try await reader.memberIDs(of: chatID).filter { $0 != caller.userID }
        }
        await context.hub.publishEphemeral(.typing(chatID: chatID, userID: caller.userID), to: others)
        await context.relay?.send(.typing(chatID: chatID, userID: caller.userID))
    }

    /// Runs `create` again once if it met a uniqueness conflict. Two nodes creating one personal
    /// (or notes) chat at once both find none and both insert it; the chat's unique key lets one
    /// commit and fails the other, whose second run then finds and returns the winner's chat.
    private static func onceMoreAfterConflict<T>(_ create: () async throws -> T) async throws -> T {
        do {
            return try await create()
        } catch let error as VestnikError where error.isDuplicate(of: "chat") {
            return try await create()
        }
    }

    // MARK: Rules shared with other services

    /// The chat and the caller's membership, or `chat_not_found` for non-members.
    ///
    /// Three reads: the membership as a gate, then the chat, then the membership again. Inside a
    /// write the chat read locks its row on PostgreSQL, and only the membership read after it sees
    /// what a concurrent writer (another node) committed while holding that lock: read only
    /// before, two nodes handling one member's `leave` could both find the membership and the
    /// second would decrement the member count again, and a member removed a moment ago could
    /// pass an admin check with their old role. The gate keeps non-members from taking the lock
    /// at all (anyone else could hold a chat up by guessing its id, as the batched send function
    /// also avoids).
    package static func membership(_ chatID: ChatID, of user: UserID, in reader: any StoreReader) async throws -> (Chat, ChatMember) {
        guard try await reader.member(user, of: chatID) != nil, let chat = try await reader.chat(chatID),
            let member = try await reader.member(user, of: chatID)
        else { throw VestnikError.chatNotFound }
        return (chat, member)
    }

    static func requireManageable(_ chat: Chat, by member: ChatMember) throws {
        guard chat.kind == .group || chat.kind == .channel else {
            throw VestnikError(.forbidden, "A \(chat.kind.rawValue) chat cannot be changed.")
        }
        guard member.role == .admin else { throw VestnikError(.notChatAdmin, "Only chat admins can do this.") }
    }

    static func details(_ chatID: ChatID, for user: UserID, in reader: any StoreReader) async throws -> ChatDetailsView {
        let (chat, member) = try await membership(chatID, of: user, in: reader)
        return ChatDetailsView(chat: chat, myRole: member.role, members: try await reader.members(of: chatID))
    }

    /// Tells the bots of a new chat (other than its creator) that it exists.
    private static func announceCreated(_ chat: Chat, tx: any StoreWriter, log: EventLog) async throws {
        let members = try await tx.members(of: chat.id)
        try await BotTriggers.system(
            BotSystemJob(
                name: .chatCreated, chatID: chat.id, chatKind: chat.kind, userID: chat.createdBy,
                members: try await BotTriggers.memberInfo(members, tx: tx), chatTitle: chat.title, creator: chat.createdBy),
            chat: chat.id, except: chat.createdBy, tx: tx, log: log)
    }

    private static func removeMembership(_ user: UserID, chat: Chat, by actor: UserID, tx: any StoreWriter, log: EventLog) async throws {
        // Bots hear it before the row goes, so a removed bot learns it was removed.
        let leaving = try await tx.members(of: chat.id).filter { $0.userID == user }
        try await BotTriggers.system(
            BotSystemJob(
                name: user == actor ? .leftFromChat : .deletedFromChat, chatID: chat.id, chatKind: chat.kind, userID: actor,
                members: try await BotTriggers.memberInfo(leaving, tx: tx)),
            chat: chat.id, except: actor, tx: tx, log: log)
        let recipients = try await tx.memberIDs(of: chat.id)
        try await tx.deleteMember(user, from: chat.id)
        var updated = chat
        updated.memberCount = max(0, chat.memberCount - 1)
        try await tx.updateChat(updated)
        // The leaver is among the recipients: this is the last event of the chat they get.
        try await log.append(.memberLeft(chat: updated, userID: user, by: actor), to: recipients, in: tx)
    }

    static func personalKey(_ a: UserID, _ b: UserID) -> String {
        let pair = [a.description, b.description].sorted()
        return "personal:\(pair[0]):\(pair[1])"
    }
}

/// A chat with the caller's role and its members.
package struct ChatDetailsView: Sendable, Hashable {
    package var chat: Chat
    package var myRole: MemberRole
    package var members: [ChatMember]
}
