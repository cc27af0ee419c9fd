import Crypto
import Foundation
import VestnikModel

extension AuthenticatedSession {
    /// A bot acting as its own user. Bots have no sessions; the nil session id only satisfies the
    /// type. Every membership and role rule then applies to bots exactly as to people.
    package static func bot(_ id: UserID) -> AuthenticatedSession {
        AuthenticatedSession(userID: id, sessionID: SessionID(UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))))
    }
}

/// A bot as administrators and the delivery service see it.
package struct BotRegistration: Sendable {
    package var user: User
    package var bot: BotRecord
    /// Deliveries still queued.
    package var pending: Int
}

/// A bot that is enabled but cannot be delivered to; `reason` becomes its visible status.
package struct BotEndpointUnusable: Error, Sendable {
    package var reason: String
}

/// What a bot asks to post.
package struct BotOutgoing: Sendable {
    /// The new message's id, chosen before it is stored: async BotX methods answer with it at once.
    package var syncID: MessageID
    package var text: String
    package var mentions: [Mention]
    package var extras: MessageExtras

    package init(syncID: MessageID, text: String, mentions: [Mention], extras: MessageExtras) {
        self.syncID = syncID
        self.text = text
        self.mentions = mentions
        self.extras = extras
    }
}

/// What the BotX edge checks a bot's tokens with.
package struct BotCredentials: Sendable {
    /// The bot's secret key: the HS256 key of the tokens the bot mints (v2) and of the v1 token
    /// request signature.
    package var secret: String
    /// The HS256 key of the v1 tokens this server issues to the bot. Derived from the server key
    /// (so the bot cannot sign such tokens itself) and bound to the bot's current secret (so
    /// rotating the secret revokes them).
    package var v1TokenKey: SymmetricKey
}

/// Which users a bot looks up (BotX `users/by_*`).
package enum BotUserQuery: Sendable {
    case id(UserID)
    case email(String)
    case login(String)
}

/// Bots: registration (administrators), the outbox (the delivery service), button presses and
/// command menus (users), and everything a bot does through the BotX API (bots).
///
/// Bots act through the same chat and message services as users (see
/// ``AuthenticatedSession/bot(_:)``), so authorization stays in one place: a bot touches only the
/// chats it is a member of, and anything else is `chat_not_found` / `message_not_found`.
package struct BotService: Sendable {
    private let context: CoreContext
    private let box: SecretBox
    private let chats: ChatService
    private let messages: MessageService

    package init(context: CoreContext, box: SecretBox, chats: ChatService, messages: MessageService) {
        self.context = context
        self.box = box
        self.chats = chats
        self.messages = messages
    }

    // MARK: Administration

    /// Registers a bot: a directory entry of kind `botx` plus its endpoint and a new secret key.
    /// - Returns: the registration and the secret key (shown once; stored sealed).
    /// - Parameter permissions: what the bot may do beyond its own chats (none by default).
    package func register(
        name: String, url: String, allowedData: BotAllowedData, description: String?, permissions: Set<BotPermission> = [],
        as principal: Principal
    ) async throws -> (BotRegistration, secret: String) {
        try requireAdministrator(principal)
        let name = try Validation.text(name, field: "name", min: 1, max: 128)
        let description = try Validation.text(description ?? "", field: "description", min: 0, max: context.limits.maxDescriptionLength)
        let url = try validateURL(url)
        let secret = Self.generateSecret()
        let id = UserID.random()
        let sealed = try box.seal(secret, bot: id)
        let now = Date.millisecondNow()
        let user = User(
            id: id, login: "bot-" + id.description.replacingOccurrences(of: "-", with: "").prefix(12), displayName: name,
            position: description.isEmpty ? nil : description, createdAt: now, kind: .botx)
        let bot = BotRecord(
            id: id, url: url, sealedSecret: sealed, allowedData: allowedData, enabled: true, description: description, status: nil,
            statusAt: nil, commands: [], createdAt: now, permissions: permissions)
        try await context.write { tx, _ in
            try await tx.insertUser(UserRecord(user: user, passwordHash: nil), searchText: AccountService.searchText(user))
            try await tx.insertBot(bot)
        }
        context.logger.info("bot registered", metadata: ["vestnik.bot.id": "\(id)"])
        return (BotRegistration(user: user, bot: bot, pending: 0), secret)
    }

    /// Every bot with its queue length.
    package func list(as principal: Principal) async throws -> [BotRegistration] {
        try requireAdministrator(principal)
        return try await context.read { reader in
            var result: [BotRegistration] = []
            for bot in try await reader.bots() {
                guard let user = try await reader.user(bot.id)?.user else { continue }
                result.append(BotRegistration(user: user, bot: bot, pending: try await reader.pendingBotJobs(of: bot.id)))
            }
            return result
        }
    }

    /// Enables or disables a bot. A disabled bot gets no deliveries and its API calls are refused.
    package func setEnabled(_ enabled: Bool, bot reference: String, as principal: Principal) async throws -> BotRegistration {
        try await update(bot: reference, as: principal) { $0.enabled = enabled }
    }

    /// Replaces what a bot may do beyond its own chats.
    package func setPermissions(_ permissions: Set<BotPermission>, bot reference: String, as principal: Principal) async throws -> BotRegistration {
        try await update(bot: reference, as: principal) { $0.permissions = permissions }
    }

    private func update(bot reference: String, as principal: Principal, _ change: @escaping @Sendable (inout BotRecord) -> Void) async throws
        -> BotRegistration
    {
        try requireAdministrator(principal)
        return try await context.write { tx, _ in
            var (user, bot) = try await Self.find(reference, in: tx)
            change(&bot)
            try await tx.updateBot(bot)
            return BotRegistration(user: user, bot: bot, pending: try await tx.pendingBotJobs(of: bot.id))
        }
    }

    /// Issues a new secret key; the old one stops working at once.
    package func rotateSecret(bot reference: String, as principal: Principal) async throws -> (User, secret: String) {
        try requireAdministrator(principal)
        let secret = Self.generateSecret()
        let box = self.box
        let user = try await context.write { tx, _ in
            var (user, bot) = try await Self.find(reference, in: tx)
            bot.sealedSecret = try box.seal(secret, bot: bot.id)
            bot.secretFormat = SecretBox.currentFormat
            try await tx.updateBot(bot)
            return user
        }
        context.logger.notice("bot secret rotated", metadata: ["vestnik.bot.id": "\(user.id)"])
        return (user, secret)
    }

    /// Removes a bot: no more deliveries or API access. Its user stays (blocked) so history still
    /// names the sender.
    package func remove(bot reference: String, as principal: Principal) async throws -> User {
        try requireAdministrator(principal)
        return try await context.write { tx, _ in
            var (user, bot) = try await Self.find(reference, in: tx)
            try await tx.deleteBot(bot.id)
            user.isBlocked = true
            try await tx.updateUser(user, searchText: AccountService.searchText(user))
            bot.enabled = false
            return user
        }
    }

    private static func find(_ reference: String, in reader: any StoreReader) async throws -> (User, BotRecord) {
        guard reference.count <= 128 else { throw VestnikError(.notFound, "No such bot.") }
        var candidate: UserID? = UserID(reference)
        if candidate == nil {
            if let user = try await reader.user(login: reference.lowercased())?.user {
                candidate = user.id
            } else {
                for bot in try await reader.bots() {
                    if try await reader.user(bot.id)?.user.displayName == reference {
                        candidate = bot.id
                        break
                    }
                }
            }
        }
        guard let id = candidate, let bot = try await reader.bot(id), let user = try await reader.user(id)?.user else {
            throw VestnikError(.notFound, "No such bot.")
        }
        return (user, bot)
    }

    // MARK: Server key

    /// Binds the database to this node's server key, then re-seals secrets of older formats
    /// (bound to their bot id). Runs once the schema is migrated, before serving, and in the
    /// admin console.
    ///
    /// The first node to run records the key's fingerprint; a node (or admin command) holding a
    /// different key is refused here instead of sealing secrets no other node can open.
    package func adoptServerKey() async throws {
        let box = self.box
        let logger = context.logger
        try await context.write { tx, _ in
            let recorded = try await tx.claimServerKeyFingerprint(box.fingerprint, name: "bot-secrets")
            guard recorded == box.fingerprint else {
                throw VestnikError(
                    .internalError,
                    "The bot key file does not match this database (fingerprint \(box.fingerprint), the database expects \(recorded)): every node and the admin CLI must use the same --bot-key-file."
                )
            }
            // In id order, so two nodes starting at once lock the bots in the same order.
            let outdated = try await tx.bots().filter { $0.secretFormat < SecretBox.currentFormat }.sorted { $0.id.description < $1.id.description }
            for candidate in outdated {
                // Read again, locked: the list above takes no locks, and writing back a row read
                // before a concurrent rotation, disabling or permission change (on another
                // node, or the admin console) would undo it.
                guard var bot = try await tx.bot(candidate.id), bot.secretFormat < SecretBox.currentFormat else { continue }
                guard let secret = try? box.open(bot.sealedSecret, bot: bot.id, format: bot.secretFormat) else {
                    // Sealed under a lost key: unusable either way; `rotate-secret` fixes it.
                    logger.warning("bot secret cannot be opened; rotate it", metadata: ["vestnik.bot.id": "\(bot.id)"])
                    continue
                }
                bot.sealedSecret = try box.seal(secret, bot: bot.id)
                bot.secretFormat = SecretBox.currentFormat
                try await tx.updateBot(bot)
            }
        }
    }

    // MARK: Authentication (BotX edge)

    /// The keys of an enabled bot, to verify its tokens; nil for unknown or disabled bots.
    package func credentials(for bot: UserID) async throws -> BotCredentials? {
        guard let record = try await Self.activeBot(bot, in: context) else { return nil }
        let secret = try box.open(record.sealedSecret, bot: record.id, format: record.secretFormat)
        let mac = HMAC<SHA256>.authenticationCode(for: Data((bot.description + "\n" + secret).utf8), using: v1Base)
        return BotCredentials(secret: secret, v1TokenKey: SymmetricKey(data: Data(mac)))
    }

    private var v1Base: SymmetricKey { box.derivedKey(for: "vestnik botx v1 token key") }

    /// The bot's record if it may act and be delivered to: enabled, and its user not blocked (an
    /// administrator blocking the account stops the bot like `bot disable` does).
    private static func activeBot(_ bot: UserID, in context: CoreContext) async throws -> BotRecord? {
        try await context.read { reader -> BotRecord? in
            guard let record = try await reader.bot(bot), record.enabled, let user = try await reader.user(bot), !user.user.isBlocked else {
                return nil
            }
            return record
        }
    }

    // MARK: Outbox (delivery service)

    /// Leases due jobs; jobs of `busyBots` stay queued.
    /// - Parameter checkFirst: look with a read first and skip the write when nothing is due
    ///   (the idle poll); a commit that just queued jobs skips the look.
    package func claimJobs(
        limit: Int, perBot: Int = 4, lease: TimeInterval, skipping busyBots: [UserID], checkFirst: Bool = false
    ) async throws -> [BotJobRecord] {
        let now = Date.millisecondNow()
        if checkFirst, try await !context.read({ try await $0.hasDueBotJobs(now: now) }) { return [] }
        return try await context.write { tx, _ in
            try await tx.claimBotJobs(now: now, leaseUntil: now.addingTimeInterval(lease), limit: limit, perBot: perBot, skipping: busyBots)
        }
    }

    /// Gives leased jobs back unattempted: due now, attempts unchanged (a node shutting down).
    package func releaseJobs(_ jobs: [BotJobRecord]) async throws {
        guard !jobs.isEmpty else { return }
        let now = Date.millisecondNow()
        try await context.write { tx, _ in
            for job in jobs { try await tx.rescheduleBotJob(job.id, attempts: job.attempts, at: now, error: "released at shutdown") }
        }
    }

    /// Where and with which key to deliver to a bot; nil if it is gone or disabled.
    /// - Throws: ``BotEndpointUnusable`` when the bot is active but cannot be delivered to (its
    ///   secret does not open with this server's key, its URL does not parse): a state an
    ///   operator must fix, which the delivery service retries and reports, and gives up on after
    ///   the usual deadline. Store failures throw as ``VestnikError``.
    package func endpoint(of bot: UserID) async throws -> (url: String, secret: String, record: BotRecord)? {
        guard let record = try await Self.activeBot(bot, in: context) else { return nil }
        guard let url = URL(string: record.url), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host != nil
        else { throw BotEndpointUnusable(reason: "invalid bot url") }
        let secret: String
        do {
            secret = try box.open(record.sealedSecret, bot: record.id, format: record.secretFormat)
        } catch {
            throw BotEndpointUnusable(reason: "bot secret cannot be opened with this server's key (rotate it)")
        }
        return (record.url, secret, record)
    }

    /// Records a delivery outcome: the job is removed (delivered, rejected or abandoned) or
    /// retried at `retryAt`; the bot's visible status becomes `status`.
    package func finish(_ job: BotJobRecord, retryAt: Date?, status: String) async throws {
        let now = Date.millisecondNow()
        try await context.write { tx, _ in
            if let retryAt {
                try await tx.rescheduleBotJob(job.id, attempts: job.attempts + 1, at: retryAt, error: status)
            } else {
                try await tx.deleteBotJob(job.id)
            }
            if var bot = try await tx.bot(job.botID), bot.status != status || (bot.statusAt.map { now.timeIntervalSince($0) > 60 } ?? true) {
                bot.status = status
                bot.statusAt = now
                try await tx.updateBot(bot)
            }
        }
    }

    /// Stores the command menu a bot reported from `/status`.
    package func setCommands(_ commands: [BotCommand], status: String, of botID: UserID) async throws {
        let now = Date.millisecondNow()
        try await context.write { tx, _ in
            guard var bot = try await tx.bot(botID) else { return }
            bot.commands = Array(commands.prefix(200))
            bot.status = status
            bot.statusAt = now
            try await tx.updateBot(bot)
        }
    }

    /// Every enabled bot (for menu refreshes).
    package func enabledBots() async throws -> [BotRecord] {
        try await context.read { try await $0.bots() }.filter(\.enabled)
    }

    // MARK: Users

    /// The command menus of the bots in a chat the caller is a member of.
    package func commands(in chatID: ChatID, as caller: AuthenticatedSession) async throws -> [(User, [BotCommand])] {
        try await context.read { reader in
            _ = try await ChatService.membership(chatID, of: caller.userID, in: reader)
            var result: [(User, [BotCommand])] = []
            for bot in try await reader.botMembers(of: chatID) where bot.enabled {
                if let user = try await reader.user(bot.id)?.user { result.append((user, bot.commands)) }
            }
            return result
        }
    }

    /// Presses a button of a bot message: the bot receives a command with the button's `data`,
    /// the message's `metadata` and `source_sync_id`. A button that is not silent also appears in
    /// the chat as the caller's message.
    /// - Parameter button: the label, the command, or the 1-based position (bubble first, row by row).
    /// - Returns: the message shown in the chat, if any.
    package func press(_ messageID: MessageID, button reference: String, as caller: AuthenticatedSession) async throws -> Message? {
        let (message, chat, reader) = try await context.read { try await MessageService.visibleMessage(messageID, for: caller.userID, in: $0) }
        guard !message.isDeleted else { throw VestnikError(.messageDeleted, "The message was deleted.") }
        let buttons = (message.bubble ?? []).flatMap { $0 } + (message.keyboard ?? []).flatMap { $0 }
        let found =
            Int(reference).flatMap { $0 >= 1 && $0 <= buttons.count ? buttons[$0 - 1] : nil }
            ?? buttons.first(where: { $0.label == reference }) ?? buttons.first(where: { $0.command == reference })
        guard let button = found else { throw VestnikError(.notFound, "The message has no such button.") }
        guard button.handler != "client" else { throw VestnikError.invalid("That button is handled by the client (it opens a link).") }
        let body = button.command ?? button.label
        let silentPressID = MessageID.timeOrdered()
        let messages = self.messages
        let maxQueuedJobs = context.limits.maxQueuedBotJobs
        // Refused early where a read can tell: a write that throws makes its whole batch run again.
        if !button.silent { _ = try messages.checkPostable(body, in: chat, by: reader) }
        guard try await context.read({ try await Self.canReceivePress(from: message.senderID, in: chat.id, reader: $0) }) else {
            throw VestnikError(.botUnavailable, "The bot is not available.")
        }
        return try await context.write { tx, log -> Message? in
            // Everything is checked again under the chat's lock, and the press is shown and
            // delivered in this one transaction: a member removed or demoted (or the message
            // deleted, the bot disabled) since the read above, on any node, must not press as
            // before (bots decide admin commands by `is_admin`), and a refused press leaves no
            // command in the chat with nobody to answer it.
            var (current, lockedChat, member) = try await MessageService.messageToChange(messageID, for: caller.userID, in: tx)
            guard !current.isDeleted else { throw VestnikError(.messageDeleted, "The message was deleted.") }
            guard try await Self.canReceivePress(from: message.senderID, in: chat.id, reader: tx), let user = try await tx.user(caller.userID)?.user
            else { throw VestnikError(.botUnavailable, "The bot is not available.") }
            // A bot whose queue is full would not get the press (the event log drops it): refused,
            // rather than a command shown in the chat (or a silent press) nobody will answer.
            guard try await tx.pendingBotJobs(of: message.senderID) < maxQueuedJobs else {
                throw VestnikError(.botUnavailable, "The bot is not available: it has too many undelivered requests.")
            }
            // A visible press is an ordinary message of the user; its id is the command's sync_id.
            // The bot is not also sent it as a plain message: the press is the delivery.
            let shown = button.silent ? nil : try await messages.post(text: body, in: &lockedChat, by: member, tx: tx, log: log)
            let job = BotCommandJob(
                syncID: shown?.id ?? silentPressID, chatID: chat.id, chatKind: chat.kind,
                sender: BotSender(
                    userID: user.id, login: user.login, name: user.displayName, isAdmin: member.role == .admin, isCreator: chat.createdBy == user.id),
                body: body, data: button.data ?? .emptyObject, metadata: current.metadata ?? .emptyObject, sourceSyncID: message.id,
                attachments: [])
            try await log.enqueue(.command(job), for: message.senderID, in: tx)
            return shown
        }
    }

    /// Whether the sender of a bot message can take a button press now: it is an enabled bot that
    /// is still a member of the chat.
    private static func canReceivePress(from botID: UserID, in chatID: ChatID, reader: some StoreReader) async throws -> Bool {
        guard let bot = try await reader.bot(botID), bot.enabled else { return false }
        return try await reader.member(bot.id, of: chatID) != nil
    }

    // MARK: Bot-facing (the BotX API)

    /// Posts a bot message into a chat the bot is a member of.
    /// - Parameter callback: also queue the success callback of an async BotX method, in the same
    ///   transaction: a committed message always gets its callback, a failed one never a success.
    package func send(
        _ outgoing: BotOutgoing, to chatID: ChatID, replyTo: MessageID? = nil, callback: Bool = false, as bot: UserID
    ) async throws -> Message {
        let text = try validate(outgoing)
        return try await context.write { tx, log in
            var (chat, member) = try await ChatService.membership(chatID, of: bot, in: tx)
            guard chat.kind != .channel || member.role == .admin else {
                throw VestnikError(.channelReadOnly, "Only admins post in a channel.")
            }
            if let replyTo {
                guard let original = try await tx.message(replyTo), original.chatID == chatID, original.isVisible(to: bot) else {
                    throw VestnikError.messageNotFound
                }
            }
            let members = try await tx.memberIDs(of: chatID)
            var extras = outgoing.extras
            if let recipients = extras.recipients {
                let memberSet = Set(members)
                let kept = recipients.filter { memberSet.contains($0) && $0 != bot }
                guard !kept.isEmpty else { throw VestnikError(.recipientsEmpty, "None of the recipients is a member of the chat.") }
                extras.recipients = Array(Set(kept)).sorted()
            }
            let mentions = outgoing.mentions.filter { mention in
                if case .user(let id) = mention { return members.contains(id) }
                return true
            }
            var stealth: StealthSettings?
            if extras.stealth == true {
                stealth = try await tx.stealth(of: chatID)
                guard stealth != nil else { throw VestnikError(.stealthDisabled, "Stealth mode is off in this chat.") }
            }
            var draft = Message(
                id: outgoing.syncID, chatID: chatID, chatSeq: 0, senderID: bot, text: text, replyTo: replyTo, mentions: mentions, createdAt: Date())
            draft.extras = extras
            let message = try await MessageService.append(draft, to: &chat, by: member, members: members, tx: tx, log: log)
            if let lifetime = stealth?.lifetime {
                try await tx.setExpiry(message.createdAt.addingTimeInterval(TimeInterval(lifetime)), of: message.id)
            }
            if callback {
                try await log.enqueue(.callback(BotCallbackJob(syncID: message.id, errorCode: nil, errorMessage: nil, chatID: chatID)), for: bot, in: tx)
            }
            return message
        }
    }

    /// Replies to a message (the reply goes to that message's chat).
    package func reply(_ outgoing: BotOutgoing, to source: MessageID, as bot: UserID) async throws -> Message {
        let chatID = try await context.read { try await MessageService.visibleMessage(source, for: bot, in: $0).1.id }
        return try await send(outgoing, to: chatID, replyTo: source, as: bot)
    }

    /// Changes the bot's own message: the text (when given) and the extras `change` computes.
    package func edit(
        _ messageID: MessageID, text newText: String?, mentions: [Mention]?, change: @escaping @Sendable (MessageExtras) -> MessageExtras,
        as bot: UserID
    ) async throws -> Message {
        if let newText { _ = try validate(BotOutgoing(syncID: messageID, text: newText, mentions: [], extras: MessageExtras())) }
        let limits = context.limits
        return try await context.write { tx, log in
            let (message, _, _) = try await MessageService.messageToChange(messageID, for: bot, in: tx)
            guard message.senderID == bot else { throw VestnikError(.notMessageAuthor, "Only the author can edit a message.") }
            guard !message.isDeleted else { throw VestnikError(.messageDeleted, "A deleted message cannot be edited.") }
            if let newText, newText != message.text {
                let members = try await tx.memberIDs(of: message.chatID)
                let resolved = mentions?.filter { if case .user(let id) = $0 { members.contains(id) } else { true } } ?? message.mentions
                guard
                    try await tx.recordEdit(
                        of: messageID, text: newText, mentions: Array(resolved.prefix(limits.maxMembersPerRequest)), version: message.editCount + 1,
                        at: Date.millisecondNow())
                else { throw VestnikError(.messageDeleted, "A deleted message cannot be edited.") }
            }
            let extras = change(message.extras)
            if extras != message.extras {
                try Self.checkExtras(extras, limits: limits)
                guard try await tx.setExtras(extras, of: messageID) else {
                    throw VestnikError(.messageDeleted, "A deleted message cannot be edited.")
                }
            }
            guard let updated = try await tx.message(messageID) else { throw VestnikError.messageNotFound }
            if updated != message {
                try await log.append(
                    .messageEdited(updated), to: MessageService.audience(of: updated, members: try await tx.memberIDs(of: message.chatID)), in: tx)
            }
            return updated
        }
    }

    /// Queues the callback of an async method (the bot waits for it, by default up to 60 s).
    package func enqueueCallback(_ syncID: MessageID, error: VestnikError?, chatID: ChatID?, for bot: UserID) async throws {
        try await context.write { tx, log in
            try await log.enqueue(
                .callback(BotCallbackJob(syncID: syncID, errorCode: error?.code.rawValue, errorMessage: error?.message, chatID: chatID)),
                for: bot, in: tx)
        }
    }

    /// A chat the bot is in, with its members' directory entries.
    package func chatInfo(_ chatID: ChatID, as bot: UserID) async throws -> (ChatDetailsView, [User]) {
        try await context.read { reader in
            let details = try await ChatService.details(chatID, for: bot, in: reader)
            return (details, try await reader.users(details.members.map(\.userID)))
        }
    }

    /// The bot's chats with their member ids.
    package func chatList(as bot: UserID) async throws -> [(Chat, [UserID])] {
        try await context.read { reader in
            var result: [(Chat, [UserID])] = []
            for row in try await reader.chatList(of: bot) { result.append((row.chat, try await reader.memberIDs(of: row.chat.id))) }
            return result
        }
    }

    /// The personal chat between the bot and a user, if it exists.
    package func personalChat(with user: UserID, as bot: UserID) async throws -> (ChatDetailsView, [User]) {
        let chatID = try await context.read { try await $0.personalChat(between: bot, and: user) }
        guard let chatID else { throw VestnikError.chatNotFound }
        return try await chatInfo(chatID, as: bot)
    }

    /// Directory lookups for bots (active and blocked accounts alike, as BotX does).
    package func users(_ query: BotUserQuery) async throws -> [User] {
        try await context.read { reader in
            switch query {
            case .id(let id):
                return try await reader.user(id).map { [$0.user] } ?? []
            case .login(let login):
                guard login.count <= 64 else { return [] }
                return try await reader.user(login: login.lowercased()).map { [$0.user] } ?? []
            case .email(let email):
                // ASCII case folding, as both stores' indexed `lower(email)`.
                let needle = String(String.UnicodeScalarView(email.unicodeScalars.map { scalar in
                    (65...90).contains(scalar.value) ? Unicode.Scalar(UInt8(scalar.value + 32)) : scalar
                }))
                guard needle.utf8.count <= 256, !needle.isEmpty else { return [] }
                return try await reader.users(email: needle, limit: 50)
            }
        }
    }

    /// Directory entries of the given kinds (BotX `users_as_csv`); needs `directory-export`.
    package func directory(kinds: Set<UserKind>, as bot: UserID) async throws -> [User] {
        try await requirePermission(.directoryExport, of: bot)
        return try await context.read { try await $0.allUsers(limit: 100_000, offset: 0) }.filter { kinds.contains($0.kind) }
    }

    /// Creates a chat on behalf of a bot (BotX `chats/create`); needs `create-chats`. The bot
    /// becomes its creator and first admin, as a user would.
    package func createChat(
        kind: ChatKind, title: String?, description: String?, members: [UserID], as bot: UserID
    ) async throws -> ChatDetailsView {
        try await requirePermission(.createChats, of: bot)
        return try await chats.create(kind: kind, title: title, description: description, members: members, as: .bot(bot)).0
    }

    /// Refuses (`forbidden`) unless the administrator granted the bot `permission`.
    private func requirePermission(_ permission: BotPermission, of bot: UserID) async throws {
        let granted = try await context.read { try await $0.bot(bot)?.permissions.contains(permission) } ?? false
        guard granted else {
            throw VestnikError(.forbidden, "This bot is not allowed to \(permission.rawValue.replacingOccurrences(of: "-", with: " ")).")
        }
    }

    /// Every registered bot with its directory entry (BotX bot catalog).
    package func catalog() async throws -> [(User, BotRecord)] {
        try await context.read { reader in
            var result: [(User, BotRecord)] = []
            for bot in try await reader.bots() {
                if let user = try await reader.user(bot.id)?.user { result.append((user, bot)) }
            }
            return result
        }
    }

    /// Delivery and read state of the bot's message: members it was sent to, and who read it.
    package func status(of messageID: MessageID, as bot: UserID) async throws -> (Message, sentTo: [UserID], readBy: [UserID]) {
        try await context.read { reader in
            let (message, chat, _) = try await MessageService.visibleMessage(messageID, for: bot, in: reader)
            let audience = MessageService.audience(of: message, members: try await reader.memberIDs(of: chat.id)).filter { $0 != message.senderID }
            let readers = Set(try await reader.readers(of: chat.id, atLeast: message.chatSeq))
            return (message, audience.sorted(), audience.filter { readers.contains($0) }.sorted())
        }
    }

    /// Passes data from one bot to the other bots of a chat (BotX internal notification).
    /// - Parameter recipients: bot ids; nil means every other bot in the chat.
    /// - Parameter callback: the sync id of the method's success callback, queued in the same
    ///   transaction as the deliveries.
    package func internalNotification(
        data: JSONValue, opts: JSONValue, recipients: [UserID]?, in chatID: ChatID, callback: MessageID? = nil, as bot: UserID
    ) async throws {
        try await context.write { tx, log in
            let (chat, _) = try await ChatService.membership(chatID, of: bot, in: tx)
            let targets = try await tx.botMembers(of: chatID).filter { candidate in
                candidate.enabled && candidate.id != bot && (recipients?.contains(candidate.id) ?? true)
            }
            guard !targets.isEmpty else { throw VestnikError(.recipientsEmpty, "No bot in the chat can receive it.") }
            let job = BotSystemJob(name: .internalBotNotification, chatID: chatID, chatKind: chat.kind, userID: bot, data: data, opts: opts)
            for target in targets { try await log.enqueue(.system(job), for: target.id, in: tx) }
            if let callback {
                try await log.enqueue(.callback(BotCallbackJob(syncID: callback, errorCode: nil, errorMessage: nil, chatID: chatID)), for: bot, in: tx)
            }
        }
    }

    /// Turns stealth on (with settings) or off (nil) in a group or channel the bot administers.
    package func setStealth(_ settings: StealthSettings?, in chatID: ChatID, as bot: UserID) async throws {
        if let settings {
            for value in [settings.burnIn, settings.expireIn].compactMap({ $0 }) {
                guard (1...31_536_000).contains(value) else { throw VestnikError.invalid("burn_in and expire_in are 1 s … 1 year.") }
            }
        }
        try await context.write { tx, _ in
            let (chat, member) = try await ChatService.membership(chatID, of: bot, in: tx)
            try ChatService.requireManageable(chat, by: member)
            try await tx.setStealth(settings, for: chatID)
        }
    }

    /// Deletes stealth messages whose lifetime ended (for everyone, as tombstones).
    /// - Returns: how many went.
    @discardableResult
    package func expireStealthMessages(limit: Int = 200) async throws -> Int {
        let due = try await context.read { try await $0.expiredMessages(before: Date.millisecondNow(), limit: limit) }
        for messageID in due {
            try await context.write { tx, log in
                guard let listed = try await tx.message(messageID) else { return try await tx.setExpiry(nil, of: messageID) }
                // The chat's lock first, then the message again: every node sweeps, and a user's
                // delete, pin or reaction (which take that lock, see
                // ``MessageService/messageToChange(_:for:in:)``) may have committed meanwhile;
                // deciding on the unlocked read would log the deletion twice or miss a reaction.
                _ = try await tx.chat(listed.chatID)
                guard let message = try await tx.message(messageID), !message.isDeleted else {
                    return try await tx.setExpiry(nil, of: messageID)
                }
                try await MessageService.tombstone(message, in: tx)
                guard let deleted = try await tx.message(messageID) else { return }
                try await log.append(
                    .messageDeleted(deleted), to: MessageService.audience(of: message, members: try await tx.memberIDs(of: message.chatID)), in: tx)
            }
        }
        return due.count
    }

    // MARK: Helpers

    private func validate(_ outgoing: BotOutgoing) throws -> String {
        let text = outgoing.text
        guard text.utf8.count <= context.limits.maxMessageBytes else {
            throw VestnikError(.payloadTooLarge, "A message is at most \(context.limits.maxMessageBytes / 1024) KiB of text.")
        }
        guard !text.unicodeScalars.contains(where: { $0.value == 0 }) else { throw VestnikError.invalid("A message must not contain NUL characters.") }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || !(outgoing.extras.attachments ?? []).isEmpty
            || outgoing.extras.bubble != nil
        else { throw VestnikError.invalid("A message needs text or a file.") }
        try Self.checkExtras(outgoing.extras, limits: context.limits)
        return text
    }

    /// Bounds what a bot may attach to one message: inline files, buttons, and the encoded size
    /// of metadata, bubble and keyboard (stored, and echoed back with every press).
    private static func checkExtras(_ extras: MessageExtras, limits: CoreLimits) throws {
        let size = (extras.attachments ?? []).reduce(0) { $0 + $1.size }
        guard size <= limits.maxInlineFileBytes else {
            throw VestnikError(.payloadTooLarge, "Inline files are at most \(limits.maxInlineFileBytes / 1024) KiB per message.")
        }
        let buttons = (extras.bubble ?? []).flatMap { $0 } + (extras.keyboard ?? []).flatMap { $0 }
        guard buttons.count <= 100 else { throw VestnikError.invalid("A message has at most 100 buttons.") }
        let encoded =
            try (extras.metadata.map { try VestnikJSON.encode($0).count } ?? 0) + (extras.bubble.map { try VestnikJSON.encode($0).count } ?? 0)
            + (extras.keyboard.map { try VestnikJSON.encode($0).count } ?? 0)
        guard encoded <= limits.maxBotExtrasBytes else {
            throw VestnikError(.payloadTooLarge, "Metadata, bubble and keyboard are at most \(limits.maxBotExtrasBytes / 1024) KiB together.")
        }
    }

    private func validateURL(_ raw: String) throws -> String {
        let trimmed = raw.trimmingCharacters(in: .whitespaces)
        guard trimmed.count <= context.limits.maxBotURLLength, let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", url.host != nil
        else { throw VestnikError.invalid("The bot URL must be an http(s) URL.") }
        // Credentials in the URL would be stored in clear and sent with every delivery.
        guard url.user == nil, url.password == nil else { throw VestnikError.invalid("The bot URL must not contain a user name or password.") }
        return trimmed.hasSuffix("/") ? String(trimmed.dropLast()) : trimmed
    }

    private func requireAdministrator(_ principal: Principal) throws {
        guard principal == .localAdmin else { throw VestnikError(.forbidden, "Only an administrator can do this.") }
    }

    /// 32 hex characters (128 bits), the form eXpress issues.
    static func generateSecret() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }.hexString
    }
}
