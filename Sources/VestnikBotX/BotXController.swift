import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VestnikCore
import VestnikModel

/// Settings of the BotX edge.
package struct BotXOptions: Sendable {
    /// This server's BotX host name: the JWT `aud` bots send (the host of their `cts_url`) and the
    /// `from.host` and `aud` the server sends.
    package var host: String
    /// Largest request body accepted from a bot (inline files included).
    package var maxBodyBytes = 2 * 1024 * 1024
    /// Decoded bytes of one inline file.
    package var maxInlineFileBytes = 1024 * 1024
    /// BotX calls one bot may make per minute on this node (the token endpoint included);
    /// beyond it a BotX-shaped 429 `too_many_requests`.
    package var requestsPerMinute = 1200

    package init(host: String) { self.host = host }
}

/// The BotX API: what pybotx calls on its `cts_url` (reference §2). Every method authenticates the
/// bot (JWT v2, or a token from the v1 endpoint), maps the wire to Core calls, and answers with
/// BotX envelopes; errors go through ``BotXErrorMiddleware``.
package struct BotXController<Context: RequestContext>: Sendable {
    let services: Services
    let options: BotXOptions
    let replay: ReplayCache
    let limiter: RateLimiter

    package init(services: Services, options: BotXOptions, replay: ReplayCache = ReplayCache()) {
        self.services = services
        self.options = options
        self.replay = replay
        limiter = RateLimiter(limit: max(1, options.requestsPerMinute), window: 60)
    }

    /// Counts a call of `bot`; a BotX 429 when it is over ``BotXOptions/requestsPerMinute``.
    /// - Parameter key: the counter; the unauthenticated token endpoint counts separately, so
    ///   anyone knowing a bot id cannot use up the bot's allowance for its real calls.
    func throttle(_ bot: UserID, key: String = "api") throws {
        guard let wait = limiter.acquire(key + ":" + bot.description) else { return }
        let why = "Too many requests; retry in \(wait) s."
        throw BotXFailure(.tooManyRequests, "too_many_requests", why, errorData: ["status_message": .string(why), "retry_after": .int(Int64(wait))])
    }

    package func addRoutes(to router: Router<Context>) {
        let api = router.group("api").add(middleware: BotXErrorMiddleware<Context>())
        api.get("v2/botx/bots/:bot_id/token", use: token)
        api.post("v4/botx/notifications/direct", use: { try await self.notification($0, $1, sync: false) })
        api.post("v4/botx/notifications/direct/sync", use: { try await self.notification($0, $1, sync: true) })
        api.post("v4/botx/notifications/internal", use: internalNotification)
        api.post("v3/botx/events/edit_event", use: edit)
        api.post("v3/botx/events/reply_event", use: reply)
        api.post("v3/botx/events/delete_event", use: delete)
        api.post("v3/botx/events/typing", use: { try await self.typing($0, $1, started: true) })
        api.post("v3/botx/events/stop_typing", use: { try await self.typing($0, $1, started: false) })
        api.get("v3/botx/events/:sync_id/status", use: messageStatus)
        api.get("v3/botx/chats/info", use: chatInfo)
        api.get("v3/botx/chats/list", use: chatList)
        api.post("v3/botx/chats/create", use: createChat)
        api.get("v1/botx/chats/personal", use: personalChat)
        api.post("v3/botx/chats/add_user", use: addUsers)
        api.post("v3/botx/chats/remove_user", use: removeUsers)
        api.post("v3/botx/chats/add_admin", use: addAdmins)
        api.post("v3/botx/chats/pin_message", use: pin)
        api.post("v3/botx/chats/unpin_message", use: unpin)
        api.post("v3/botx/chats/stealth_set", use: stealthSet)
        api.post("v3/botx/chats/stealth_disable", use: stealthDisable)
        api.get("v3/botx/users/by_huid", use: { try await self.user($0, $1, by: "user_huid") })
        api.get("v3/botx/users/by_login", use: { try await self.user($0, $1, by: "ad_login") })
        api.get("v3/botx/users/by_email", use: { try await self.user($0, $1, by: "email") })
        api.get("v3/botx/users/by_other_id", use: { try await self.user($0, $1, by: "other_id") })
        api.post("v3/botx/users/by_email", use: usersByEmail)
        api.get("v3/botx/users/users_as_csv", use: usersCSV)
        api.post("v3/botx/metrics/bot_function", use: metric)
        api.get("v1/botx/bots/catalog", use: catalog)
        // Methods with no Vestnik feature behind them yet (decision 0004): a BotX-shaped refusal.
        for (method, path, what) in Self.unsupported {
            api.on(RouterPath(path), method: method) { request, _ -> Response in
                _ = try await self.authenticate(request)
                throw BotXFailure.unsupported(what)
            }
        }
    }

    static var unsupported: [(HTTPRequest.Method, String, String)] {
        [
            (.get, "v3/botx/files/download", "File download"), (.post, "v3/botx/files/upload", "File upload"),
            (.post, "v3/botx/chats/create_link", "Chat links"), (.post, "v3/botx/chats/create_thread", "Threads"),
            (.put, "v3/botx/users/update_profile", "Profile updates"), (.post, "v3/botx/stickers/packs", "Stickers"),
            (.get, "v3/botx/stickers/packs", "Stickers"), (.post, "v3/botx/smartapps/event", "SmartApps"),
            (.post, "v3/botx/smartapps/notification", "SmartApps"), (.post, "v4/botx/smartapps/notification", "SmartApps"),
            (.post, "v4/botx/smartapps/unread_counter", "SmartApps"), (.get, "v3/botx/smartapps/list", "SmartApps"),
            (.post, "v1/botx/smartapps/manifest", "SmartApps"), (.post, "v3/botx/smartapps/upload_file", "SmartApps"),
            (.post, "v3/botx/openid/refresh_access_token", "OpenID"),
        ]
    }

    // MARK: Authentication

    /// The bot behind `Authorization: Bearer <jwt>`; 401 `unverified_request` otherwise.
    func authenticate(_ request: Request) async throws -> UserID {
        guard let header = request.headers[.authorization], header.utf8.count <= 4200,
            let token = header.split(separator: " ").last.map(String.init), !token.isEmpty
        else { throw BotXFailure.unverified("Missing bearer token.") }
        do {
            let bot = try BotXToken.unverifiedIssuer(token)
            guard let credentials = try await services.bots.credentials(for: bot) else { throw BotXFailure.unverified("Unknown or disabled bot.") }
            let claims = try BotXToken.verify(
                token, bot: bot, secret: credentials.secret, audience: options.host, v1Key: credentials.v1TokenKey)
            // v1 tokens are issued (and signed) by this server to be reused; bot-minted ones are
            // single-use.
            if claims.typ != BotXToken.v1Type {
                switch replay.use(claims.jti, bot: bot, expiresAt: claims.exp) {
                case .fresh: break
                case .replayed: throw BotXFailure.unverified("Token already used (jti).")
                case .full:
                    throw BotXFailure(
                        .tooManyRequests, "too_many_requests", "Too many live tokens of this bot; retry shortly.",
                        errorData: ["status_message": .string("Too many live tokens of this bot; retry shortly.")])
                }
            }
            try throttle(bot)
            return bot
        } catch let rejection as BotXToken.Rejection {
            throw BotXFailure.unverified(rejection.description)
        }
    }

    /// GET /api/v2/botx/bots/{bot_id}/token?signature=SIG (v1 auth; unauthenticated by design):
    /// a 24 h token the bot sends as its Bearer, signed with the server's v1 key for the bot.
    @Sendable func token(_ request: Request, context: Context) async throws -> Response {
        guard let raw = context.parameters.get("bot_id"), let bot = UserID(raw) else { throw BotXFailure.unverified("Invalid bot signature.") }
        try throttle(bot, key: "token")
        guard let signature = request.uri.queryParameters["signature"],
            signature.count <= 128, let credentials = try await services.bots.credentials(for: bot),
            BotXToken.isValidV1Signature(String(signature), bot: bot, secret: credentials.secret)
        else { throw BotXFailure.unverified("Invalid bot signature.") }
        // Signed with the server's key for this bot, never the bot's secret: a bot cannot mint
        // such long-lived tokens itself.
        return BotXResponse.ok(.string(BotXToken.issueV1(bot: bot, audience: options.host, key: credentials.v1TokenKey)))
    }

    // MARK: Messages

    /// POST /api/v4/botx/notifications/direct (async: 202 + callback) and …/direct/sync (errors in a 200).
    func notification(_ request: Request, _ context: Context, sync: Bool) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXNotificationRequest.self, request)
        let syncID = MessageID.timeOrdered()
        do {
            let outgoing = try await outgoing(
                body.notification, file: body.file, recipients: body.recipients, opts: body.opts, syncID: syncID)
            _ = try await services.bots.send(outgoing, to: body.groupChatID, callback: !sync, as: bot)
        } catch let error as VestnikError {
            if sync {
                let failure = BotXErrors.failure(for: error, chatID: body.groupChatID)
                return BotXResponse.json(failure.envelope, status: .ok)
            }
            try await services.bots.enqueueCallback(syncID, error: error, chatID: body.groupChatID, for: bot)
        }
        return BotXResponse.ok(.object(["sync_id": .string(syncID.description)]), status: sync ? .ok : .accepted)
    }

    /// POST /api/v4/botx/notifications/internal (async: 202 + callback)
    @Sendable func internalNotification(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXInternalNotificationRequest.self, request)
        let syncID = MessageID.timeOrdered()
        do {
            try await services.bots.internalNotification(
                data: body.data, opts: body.opts ?? .emptyObject, recipients: body.recipients, in: body.groupChatID, callback: syncID, as: bot)
        } catch let error as VestnikError {
            try await services.bots.enqueueCallback(syncID, error: error, chatID: body.groupChatID, for: bot)
        }
        return BotXResponse.ok(.object(["sync_id": .string(syncID.description)]), status: .accepted)
    }

    /// POST /api/v3/botx/events/reply_event
    @Sendable func reply(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXReplyRequest.self, request)
        let outgoing = try await outgoing(body.reply, file: body.file, recipients: nil, opts: body.opts, syncID: .timeOrdered())
        _ = try await services.bots.reply(outgoing, to: body.sourceSyncID, as: bot)
        return BotXResponse.ok(.string("bot_reply_pushed"), status: .accepted)
    }

    /// POST /api/v3/botx/events/edit_event
    @Sendable func edit(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXEditRequest.self, request)
        var text: String?
        var mentions: [Mention]?
        if let payloadBody = body.payload?.body {
            let rendered = try await render(payloadBody, mentions: body.payload?.mentions ?? [])
            text = rendered.0
            mentions = rendered.1
        }
        let payload = body.payload
        let bubble = try payload?.bubble.map(buttons)
        let keyboard = try payload?.keyboard.map(buttons)
        let file = try body.file.map { try $0.map { try $0.attachment(limit: options.maxInlineFileBytes) } }
        _ = try await services.bots.edit(
            body.syncID, text: text, mentions: mentions,
            change: { extras in
                var extras = extras
                if let bubble { extras.bubble = bubble.isEmpty ? nil : bubble }
                if let keyboard { extras.keyboard = keyboard.isEmpty ? nil : keyboard }
                if let metadata = payload?.metadata { extras.metadata = metadata }
                if let silent = payload?.opts?.silentResponse { extras.silentResponse = silent }
                if let file { extras.attachments = file.map { [$0] } }
                return extras
            }, as: bot)
        return BotXResponse.ok(.string("bot_command_result_pushed"), status: .accepted)
    }

    /// POST /api/v3/botx/events/delete_event
    @Sendable func delete(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXSyncIDRequest.self, request)
        _ = try await services.messages.delete(body.syncID, as: .bot(bot))
        return BotXResponse.ok(.string("event_deleted"), status: .accepted)
    }

    /// POST /api/v3/botx/events/typing and …/stop_typing (stopping is implicit in Vestnik: typing expires)
    func typing(_ request: Request, _ context: Context, started: Bool) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXChatRequest.self, request)
        if started {
            try await services.chats.typing(in: body.groupChatID, as: .bot(bot))
        } else {
            _ = try await services.chats.details(body.groupChatID, as: .bot(bot))
        }
        return BotXResponse.ok(.string(started ? "typing_event_pushed" : "stop_typing_event_pushed"), status: .accepted)
    }

    /// GET /api/v3/botx/events/{sync_id}/status
    @Sendable func messageStatus(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        guard let raw = context.parameters.get("sync_id"), let messageID = MessageID(raw) else { throw BotXFailure.malformed("sync_id is not a UUID.") }
        let (message, sentTo, readBy) = try await services.bots.status(of: messageID, as: bot)
        // Vestnik keeps read positions, not per-user read times: the message time stands in.
        let at = BotXPayloads.date(message.createdAt)
        return BotXResponse.ok(
            .object([
                "group_chat_id": .string(message.chatID.description), "sent_to": .array(sentTo.map { .string($0.description) }),
                "read_by": .array(readBy.map { .object(["user_huid": .string($0.description), "read_at": at]) }),
                "received_by": .array(readBy.map { .object(["user_huid": .string($0.description), "received_at": at]) }),
            ]))
    }

    // MARK: Chats

    /// GET /api/v3/botx/chats/info?group_chat_id=
    @Sendable func chatInfo(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let (details, users) = try await services.bots.chatInfo(try queryID(request, "group_chat_id"), as: bot)
        return BotXResponse.ok(BotXPayloads.chat(details, users: users))
    }

    /// GET /api/v3/botx/chats/list
    @Sendable func chatList(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let chats = try await services.bots.chatList(as: bot)
        return BotXResponse.ok(
            .array(
                chats.map { chat, members in
                    .object([
                        "group_chat_id": .string(chat.id.description), "chat_type": .string(BotXPayloads.chatType(chat.kind)),
                        "name": .string(chat.title.isEmpty ? "Personal chat" : chat.title),
                        "description": chat.description.isEmpty ? .null : .string(chat.description),
                        "members": .array(members.map { .string($0.description) }), "inserted_at": BotXPayloads.date(chat.createdAt),
                        "updated_at": BotXPayloads.date(chat.lastActivityAt), "shared_history": .bool(false),
                    ])
                }))
    }

    /// POST /api/v3/botx/chats/create
    @Sendable func createChat(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXCreateChatRequest.self, request)
        let kind: ChatKind
        switch body.chatType {
        case "chat": kind = .personal
        case "group_chat": kind = .group
        case "channel": kind = .channel
        default: throw BotXFailure(.unprocessableContent, "chat_creation_error", "Chats of type \(body.chatType.prefix(32)) cannot be created.")
        }
        let members = body.members.filter { $0 != bot }
        do {
            let details = try await services.bots.createChat(
                kind: kind, title: kind == .personal ? nil : body.name, description: body.description, members: members, as: bot)
            return BotXResponse.ok(.object(["chat_id": .string(details.chat.id.description)]))
        } catch let error as VestnikError where error.code.category == .badRequest {
            throw BotXFailure(.unprocessableContent, "chat_creation_error", error.message)
        } catch let error as VestnikError where error.code.category == .forbidden {
            throw BotXFailure(.forbidden, "chat_creation_is_prohibited", error.message)
        }
    }

    /// GET /api/v1/botx/chats/personal?user_huid=
    @Sendable func personalChat(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let (details, users) = try await services.bots.personalChat(with: try queryID(request, "user_huid"), as: bot)
        return BotXResponse.ok(BotXPayloads.chat(details, users: users))
    }

    /// POST /api/v3/botx/chats/add_user
    @Sendable func addUsers(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXUsersRequest.self, request)
        _ = try await services.chats.addMembers(body.userHuids, to: body.groupChatID, as: .bot(bot))
        return BotXResponse.ok(.bool(true))
    }

    /// POST /api/v3/botx/chats/remove_user
    @Sendable func removeUsers(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXUsersRequest.self, request)
        guard body.userHuids.count <= 1000 else { throw BotXFailure.malformed("At most 1000 users at once.") }
        // One transaction: a bad id in the list changes nothing.
        if body.userHuids == [bot] {
            try await services.chats.leave(body.groupChatID, as: .bot(bot))
        } else {
            try await services.chats.removeMembers(body.userHuids, from: body.groupChatID, as: .bot(bot))
        }
        return BotXResponse.ok(.bool(true))
    }

    /// POST /api/v3/botx/chats/add_admin
    @Sendable func addAdmins(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXUsersRequest.self, request)
        guard body.userHuids.count <= 1000 else { throw BotXFailure.malformed("At most 1000 users at once.") }
        let details = try await services.chats.details(body.groupChatID, as: .bot(bot))
        guard details.chat.kind == .group || details.chat.kind == .channel else {
            throw BotXFailure(.badRequest, "chat_members_not_modifiable", "A personal chat has no admins.")
        }
        // One transaction: a bad id in the list changes nothing.
        try await services.chats.setRole(.admin, of: body.userHuids, in: body.groupChatID, as: .bot(bot))
        return BotXResponse.ok(.bool(true))
    }

    /// POST /api/v3/botx/chats/pin_message
    @Sendable func pin(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXPinRequest.self, request)
        guard let syncID = body.syncID else { throw BotXFailure.malformed("sync_id is required.") }
        let message = try await services.messages.message(syncID, as: .bot(bot))
        guard message.chatID == body.chatID else { throw VestnikError.messageNotFound }
        try await services.messages.setPinned(true, message: syncID, as: .bot(bot))
        return BotXResponse.ok(.string("message_pinned"))
    }

    /// POST /api/v3/botx/chats/unpin_message (BotX has one pin per chat: every pin goes)
    @Sendable func unpin(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXPinRequest.self, request)
        for message in try await services.messages.pins(in: body.chatID, as: .bot(bot)) {
            try await services.messages.setPinned(false, message: message.id, as: .bot(bot))
        }
        return BotXResponse.ok(.string("message_unpinned"))
    }

    /// POST /api/v3/botx/chats/stealth_set
    @Sendable func stealthSet(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXStealthRequest.self, request)
        try await services.bots.setStealth(
            StealthSettings(burnIn: body.burnIn, expireIn: body.expireIn, disableWeb: body.disableWeb ?? false), in: body.groupChatID, as: bot)
        return BotXResponse.ok(.bool(true))
    }

    /// POST /api/v3/botx/chats/stealth_disable
    @Sendable func stealthDisable(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXChatRequest.self, request)
        try await services.bots.setStealth(nil, in: body.groupChatID, as: bot)
        return BotXResponse.ok(.bool(true))
    }

    // MARK: Users

    /// GET /api/v3/botx/users/by_huid|by_login|by_email|by_other_id (`other_id` is the Vestnik login)
    func user(_ request: Request, _ context: Context, by key: String) async throws -> Response {
        _ = try await authenticate(request)
        let query: BotUserQuery
        switch key {
        case "user_huid": query = .id(try queryID(request, "user_huid"))
        case "email": query = .email(try queryString(request, "email"))
        case "other_id": query = .login(try queryString(request, "other_id"))
        default: query = .login(try queryString(request, "ad_login"))
        }
        guard let found = try await services.bots.users(query).first else { throw VestnikError.userNotFound }
        return BotXResponse.ok(BotXPayloads.user(found))
    }

    /// POST /api/v3/botx/users/by_email
    @Sendable func usersByEmail(_ request: Request, context: Context) async throws -> Response {
        _ = try await authenticate(request)
        let body = try await decode(BotXEmailsRequest.self, request)
        guard body.emails.count <= 1000 else { throw BotXFailure.malformed("At most 1000 emails at once.") }
        var users: [User] = []
        for email in body.emails { users += try await services.bots.users(.email(email)) }
        return BotXResponse.ok(.array(users.map(BotXPayloads.user)))
    }

    /// GET /api/v3/botx/users/users_as_csv?cts_user=&unregistered=&botx=
    @Sendable func usersCSV(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        var kinds = Set<UserKind>()
        if request.uri.queryParameters["cts_user"] == "true" { kinds.insert(.user) }
        if request.uri.queryParameters["botx"] == "true" { kinds.insert(.botx) }
        guard !kinds.isEmpty || request.uri.queryParameters["unregistered"] == "true" else {
            throw BotXFailure(.badRequest, "no_user_kind_selected", "Select at least one user kind.")
        }
        let header =
            "HUID,AD Login,Domain,AD E-mail,Name,Sync source,Active,Kind,User DN,Company,Department,Position,Avatar,Avatar preview,Office,Manager,Manager HUID,Manager DN,Description,Phone,Other phone,IP phone,Other IP phone,Personnel number,AD Groups,OpenID Roles"
        var csv = header + "\r\n"
        for user in try await services.bots.directory(kinds: kinds, as: bot) {
            let fields: [String] = [
                user.id.description, user.login, "", user.email ?? "", user.displayName, user.kind == .botx ? "botx" : "admin",
                user.isBlocked ? "false" : "true", BotXPayloads.userKind(user.kind), "", "", user.department ?? "", user.position ?? "",
            ] + Array(repeating: "", count: 14)
            csv += fields.map(Self.csvField).joined(separator: ",") + "\r\n"
        }
        return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: csv)))
    }

    static func csvField(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// POST /api/v3/botx/metrics/bot_function (accepted and counted in the log only)
    @Sendable func metric(_ request: Request, context: Context) async throws -> Response {
        let bot = try await authenticate(request)
        let body = try await decode(BotXMetricRequest.self, request)
        _ = try await services.chats.details(body.groupChatID, as: .bot(bot))
        context.logger.info("bot metric", metadata: ["vestnik.bot.id": "\(bot)", "vestnik.bot.function": "\(body.botFunction.prefix(64))"])
        return BotXResponse.ok(.bool(true), status: .accepted)
    }

    /// GET /api/v1/botx/bots/catalog
    @Sendable func catalog(_ request: Request, context: Context) async throws -> Response {
        _ = try await authenticate(request)
        let bots = try await services.bots.catalog()
        return BotXResponse.ok(
            .object([
                "generated_at": BotXPayloads.date(Date()),
                "bots": .array(
                    bots.map { user, bot in
                        .object([
                            "user_huid": .string(user.id.description), "name": .string(user.displayName), "description": .string(bot.description),
                            "avatar": .null, "enabled": .bool(bot.enabled && !user.isBlocked),
                        ])
                    }),
            ]))
    }

    // MARK: Helpers

    func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let buffer = try await request.body.collect(upTo: options.maxBodyBytes)
        do {
            return try VestnikJSON.decode(type, from: Data(buffer: buffer))
        } catch {
            throw BotXFailure.malformed("The request body does not match the method's schema.")
        }
    }

    func queryID<Tag>(_ request: Request, _ name: String) throws -> Identifier<Tag> {
        guard let raw = request.uri.queryParameters[name[...]], let id = Identifier<Tag>(String(raw)) else {
            throw BotXFailure.malformed("\(name) must be a UUID.")
        }
        return id
    }

    func queryString(_ request: Request, _ name: String) throws -> String {
        guard let raw = request.uri.queryParameters[name[...]], !raw.isEmpty, raw.count <= 256 else {
            throw BotXFailure.malformed("\(name) is required.")
        }
        return String(raw)
    }

    /// A bot message in domain terms: mentions rendered, buttons, metadata, file, recipients.
    func outgoing(
        _ body: BotXMessageBody, file: BotXFile?, recipients: [UserID]?, opts: BotXSendOptions?, syncID: MessageID
    ) async throws -> BotOutgoing {
        let (text, mentions) = try await render(body.body ?? "", mentions: body.mentions ?? [])
        var extras = MessageExtras()
        extras.bubble = try body.bubble.map(buttons).flatMap { $0.isEmpty ? nil : $0 }
        extras.keyboard = try body.keyboard.map(buttons).flatMap { $0.isEmpty ? nil : $0 }
        extras.metadata = body.metadata.flatMap { $0 == .emptyObject ? nil : $0 }
        extras.silentResponse = body.opts?.silentResponse == true ? true : nil
        extras.stealth = opts?.stealthMode == true ? true : nil
        if let recipients, !recipients.isEmpty {
            guard recipients.count <= 10_000 else { throw BotXFailure.malformed("Too many recipients.") }
            extras.recipients = recipients
        }
        if let file { extras.attachments = [try file.attachment(limit: options.maxInlineFileBytes)] }
        return BotOutgoing(syncID: syncID, text: text, mentions: mentions, extras: extras)
    }

    func buttons(_ rows: [[BotXButton]]) throws -> [[BotButton]] {
        guard rows.count <= 50 else { throw BotXFailure.malformed("Too many button rows.") }
        return try rows.map { row in
            guard row.count <= 20 else { throw BotXFailure.malformed("Too many buttons in a row.") }
            return try row.map { button in
                guard button.label.utf8.count <= 512, (button.command?.utf8.count ?? 0) <= 1024, (button.opts?.link?.utf8.count ?? 0) <= 2048 else {
                    throw BotXFailure.malformed("A button label, command or link is too long.")
                }
                return button.model
            }
        }
    }

    /// Replaces BotX mention placeholders (`@{mention:ID}`, `@@{mention:ID}`, `##{mention:ID}`)
    /// with readable text (`@Name`, `#Chat`, `@all`) and returns Vestnik mentions.
    func render(_ body: String, mentions: [BotXMention]) async throws -> (String, [Mention]) {
        guard !mentions.isEmpty else { return (body, []) }
        guard mentions.count <= 1000 else { throw BotXFailure.malformed("Too many mentions.") }
        var text = body
        var result: [Mention] = []
        for mention in mentions {
            guard let mentionID = mention.mentionID, mentionID.count <= 64 else { continue }
            let replacement: String
            switch mention.mentionType {
            case "user", "contact":
                guard let user = mention.mentionData?.userHuid else { continue }
                var name = mention.mentionData?.name
                if name == nil { name = try await services.bots.users(.id(user)).first?.displayName }
                replacement = "@" + (name ?? "user")
                if !result.contains(.user(user)) { result.append(.user(user)) }
            case "chat", "channel":
                replacement = "#" + (mention.mentionData?.name ?? "chat")
            case "all":
                replacement = "@all"
                if !result.contains(.all) { result.append(.all) }
            default:
                continue
            }
            for prefix in ["@@", "##", "@"] {
                text = text.replacingOccurrences(of: "\(prefix){mention:\(mentionID)}", with: replacement)
            }
        }
        return (text, result)
    }
}
