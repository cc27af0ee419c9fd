import AsyncHTTPClient
import Foundation
import Hummingbird
import Testing
import VestnikBotX
import VestnikCore
import VestnikKit
import VestnikModel
import VestnikServer

/// The fixes of the bot platform review (issue 4), through a live server.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct BotReviewTests {
    static func json(_ response: HTTPContractTests.RawResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: response.body) as? [String: Any]) ?? [:]
    }

    @Test("v1 tokens come only from the token endpoint: a bot-signed typ v1 token is refused, a rotated secret revokes issued ones")
    func v1TokensAreServerSigned() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (registration, secret) = try await server.services.bots.register(
            name: "Legacy", url: "http://127.0.0.1:9", allowedData: .commands, description: nil, as: .localAdmin)
        let botID = registration.user.id
        let now = Int64(Date().timeIntervalSince1970)
        let forged = BotXToken.sign(
            .init(iss: botID.description, aud: "127.0.0.1", exp: now + 20 * 3600, nbf: now, jti: "forged", iat: now, typ: "v1"), secret: secret)
        let refused = try await HTTPContractTests.raw(server, .GET, "/api/v3/botx/chats/list", token: forged)
        #expect(refused.status == 401 && Self.json(refused)["reason"] as? String == "unverified_request")

        let signature = BotXToken.v1Signature(bot: botID, secret: secret)
        let issued = try await HTTPContractTests.raw(server, .GET, "/api/v2/botx/bots/\(botID)/token?signature=\(signature)")
        let token = try #require(Self.json(issued)["result"] as? String)
        #expect(issued.status == 200)
        #expect(throws: BotXToken.Rejection.self, "not signed with the bot's secret") {
            try BotXToken.verify(token, bot: botID, secret: secret, audience: "127.0.0.1")
        }
        for _ in 0..<2 {
            #expect(try await HTTPContractTests.raw(server, .GET, "/api/v3/botx/chats/list", token: token).status == 200, "reusable")
        }
        _ = try await server.services.bots.rotateSecret(bot: botID.description, as: .localAdmin)
        #expect(try await HTTPContractTests.raw(server, .GET, "/api/v3/botx/chats/list", token: token).status == 401)
    }

    @Test("an edit to plain text is not sent to a commands-only bot; an edit to a command is")
    func editsRespectAllowedData() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (fake, serving, botID, _) = try await FakeBot.registered(on: server, name: "Commands", allowedData: .commands)
        defer { serving.stopLater() }
        let (alice, _) = try await server.client("alice")
        let chat = try await alice.createGroup(title: "Ops", members: [botID]).chat.id
        let plain = try await alice.sendMessage(chatID: chat, text: "plain")
        _ = try await alice.editMessage(plain.id, text: "plain but private edit")
        let command = try await alice.sendMessage(chatID: chat, text: "/deploy")
        _ = try await alice.editMessage(command.id, text: "/deploy now")
        #expect(await waitUntil(timeout: .seconds(20)) {
            await fake.deliveries.contains { String(decoding: $0.body, as: UTF8.self).contains("/deploy now") }
        })
        try await Task.sleep(for: .milliseconds(500))
        let bodies = await fake.deliveries.map { String(decoding: $0.body, as: UTF8.self) }
        #expect(!bodies.contains { $0.contains("private edit") }, "the plain edit leaked to a commands-only bot")
    }

    @Test("a system event keeps one sync_id across delivery retries")
    func systemEventSyncIDIsStable() async throws {
        let server = try await TestServer.start { $0.botFirstRetry = 0.2 }
        defer { Task { await server.stop() } }
        let fake = FakeBot()
        let port = try freeLocalPort()
        await fake.failFirst(2, of: "system:chat_created")
        let serving = await fake.serve(port: port)
        defer { serving.stopLater() }
        let (registration, _) = try await server.services.bots.register(
            name: "Retry", url: "http://127.0.0.1:\(port)", allowedData: .commands, description: nil, as: .localAdmin)
        let (alice, _) = try await server.client("alice")
        _ = try await alice.createGroup(title: "Ops", members: [registration.user.id])
        #expect(await waitUntil(timeout: .seconds(20)) { await fake.attempts(of: "system:chat_created") >= 3 })
        let ids = await fake.deliveries.filter { $0.command == "system:chat_created" }.compactMap { delivery in
            (try? JSONSerialization.jsonObject(with: delivery.body) as? [String: Any])?["sync_id"] as? String
        }
        #expect(ids.count == 3 && Set(ids).count == 1, "\(ids)")
    }

    static func status(_ server: TestServer, _ bot: UserID) async -> (String?, Int) {
        let registration = try? await server.services.bots.list(as: .localAdmin).first { $0.user.id == bot }
        return (registration?.bot.status, registration?.pending ?? -1)
    }

    @Test("a 401 from the bot is a visible misconfiguration and is retried; Retry-After of a 503 is honoured; a redirect is not success")
    func deliveryOutcomes() async throws {
        let server = try await TestServer.start { $0.botFirstRetry = 0.2 }
        defer { Task { await server.stop() } }
        let fake = FakeBot()
        let port = try freeLocalPort()
        await fake.script("/auth", [(401, nil), (401, nil)])
        await fake.script("/busy", [(503, "2")])
        await fake.script("/moved", [(302, nil)])
        let serving = await fake.serve(port: port)
        defer { serving.stopLater() }
        let (registration, _) = try await server.services.bots.register(
            name: "Policy", url: "http://127.0.0.1:\(port)", allowedData: .commands, description: nil, as: .localAdmin)
        let botID = registration.user.id
        let (alice, _) = try await server.client("alice")
        let chat = try await alice.openPersonalChat(with: botID).chat.id
        _ = try await alice.sendMessage(chatID: chat, text: "/auth")
        #expect(await waitUntil(timeout: .seconds(10)) { await Self.status(server, botID).0 == "misconfigured: http 401" })
        #expect(await waitUntil(timeout: .seconds(20)) { await fake.attempts(of: "/auth") == 3 }, "retried until accepted")

        _ = try await alice.sendMessage(chatID: chat, text: "/busy")
        #expect(await waitUntil(timeout: .seconds(20)) { await fake.attempts(of: "/busy") == 2 })
        let busy = await fake.deliveries.filter { $0.command == "/busy" }.map(\.at)
        #expect(busy.count == 2 && busy[1] - busy[0] >= .milliseconds(1900), "Retry-After: 2 honoured (first retry would be 0.2 s)")

        _ = try await alice.sendMessage(chatID: chat, text: "/moved")
        #expect(await waitUntil(timeout: .seconds(20)) { await fake.attempts(of: "/moved") == 2 }, "a 302 is retried, not taken as delivered")
        #expect(await waitUntil(timeout: .seconds(10)) { await Self.status(server, botID) == ("ok", 0) })
    }

    @Test("a job whose bot cannot be delivered to (secret unreadable) is reported and given up at the deadline")
    func unusableEndpointIsGivenUp() async throws {
        let server = try await TestServer.start {
            $0.botFirstRetry = 0.2
            $0.botMaxAge = 3
        }
        defer { Task { await server.stop() } }
        let (registration, _) = try await server.services.bots.register(
            name: "Broken", url: "http://127.0.0.1:9", allowedData: .all, description: nil, as: .localAdmin)
        let botID = registration.user.id
        try await server.services.context.store.write { tx in
            guard var bot = try await tx.bot(botID) else { return }
            bot.sealedSecret = Data(repeating: 7, count: 60)
            try await tx.updateBot(bot)
        }
        let (alice, _) = try await server.client("alice")
        let chat = try await alice.openPersonalChat(with: botID).chat.id
        _ = try await alice.sendMessage(chatID: chat, text: "hello")
        #expect(await waitUntil(timeout: .seconds(10)) { await Self.status(server, botID).0?.contains("cannot be opened") == true })
        #expect(await waitUntil(timeout: .seconds(20)) {
            let (status, pending) = await Self.status(server, botID)
            return pending == 0 && status?.hasPrefix("gave up") == true
        })
    }

    @Test("creating chats and exporting the directory need the administrator's permission")
    func permissionsAreRequired() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (registration, secret) = try await server.services.bots.register(
            name: "Plain", url: "http://127.0.0.1:9", allowedData: .commands, description: nil, as: .localAdmin)
        let botID = registration.user.id
        #expect(registration.bot.permissions.isEmpty, "new bots get no permissions")
        let (aliceClient, alice) = try await server.client("alice")
        func token() -> String { BotXToken.mint(bot: botID, audience: "127.0.0.1", secret: secret) }
        let create = Data(#"{"name":"Spam","chat_type":"group_chat","members":["\#(alice.id)"],"shared_history":false}"#.utf8)
        let refused = try await HTTPContractTests.raw(server, .POST, "/api/v3/botx/chats/create", token: token(), body: create)
        #expect(refused.status == 403 && Self.json(refused)["reason"] as? String == "chat_creation_is_prohibited")
        let export = try await HTTPContractTests.raw(server, .GET, "/api/v3/botx/users/users_as_csv?cts_user=true", token: token())
        #expect(export.status == 403 && Self.json(export)["reason"] as? String == "no_permission_for_operation")
        #expect(try await !aliceClient.chats().chats.contains { $0.chat.title == "Spam" }, "nothing was created")

        _ = try await server.services.bots.setPermissions([.createChats, .directoryExport], bot: botID.description, as: .localAdmin)
        #expect(try await HTTPContractTests.raw(server, .POST, "/api/v3/botx/chats/create", token: token(), body: create).status == 200)
        let allowed = try await HTTPContractTests.raw(server, .GET, "/api/v3/botx/users/users_as_csv?cts_user=true", token: token())
        #expect(allowed.status == 200 && String(decoding: allowed.body, as: UTF8.self).contains(alice.id.description))
        await #expect(throws: VestnikError.self) {
            _ = try await server.services.bots.register(
                name: "Creds", url: "http://user:pw@127.0.0.1:9", allowedData: .commands, description: nil, as: .localAdmin)
        }
    }

    @Test("a bot over its request rate gets a BotX 429; other bots are not affected")
    func perBotRateLimit() async throws {
        let server = try await TestServer.start { $0.botRequestsPerMinute = 3 }
        defer { Task { await server.stop() } }
        let (first, firstSecret) = try await server.services.bots.register(
            name: "Chatty", url: "http://127.0.0.1:9", allowedData: .commands, description: nil, as: .localAdmin)
        let (second, secondSecret) = try await server.services.bots.register(
            name: "Quiet", url: "http://127.0.0.1:9", allowedData: .commands, description: nil, as: .localAdmin)
        // Anyone can call the token endpoint with a bot's id: that has its own allowance and does
        // not use up the bot's.
        var tokenAnswers: [Int] = []
        for _ in 0..<4 {
            tokenAnswers.append(try await HTTPContractTests.raw(server, .GET, "/api/v2/botx/bots/\(first.user.id)/token?signature=00").status)
        }
        #expect(tokenAnswers == [401, 401, 401, 429])
        for _ in 0..<3 {
            let token = BotXToken.mint(bot: first.user.id, audience: "127.0.0.1", secret: firstSecret)
            #expect(try await HTTPContractTests.raw(server, .GET, "/api/v3/botx/chats/list", token: token).status == 200)
        }
        let token = BotXToken.mint(bot: first.user.id, audience: "127.0.0.1", secret: firstSecret)
        let limited = try await HTTPContractTests.raw(server, .GET, "/api/v3/botx/chats/list", token: token)
        #expect(limited.status == 429 && Self.json(limited)["reason"] as? String == "too_many_requests" && Self.json(limited)["status"] as? String == "error")
        let other = BotXToken.mint(bot: second.user.id, audience: "127.0.0.1", secret: secondSecret)
        #expect(try await HTTPContractTests.raw(server, .GET, "/api/v3/botx/chats/list", token: other).status == 200)
    }

    @Test("remove_user and add_admin with one unknown user change nothing")
    func membershipBatchesAreAtomic() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (registration, secret) = try await server.services.bots.register(
            name: "Admin", url: "http://127.0.0.1:9", allowedData: .commands, description: nil, as: .localAdmin)
        let botID = registration.user.id
        let (alice, _) = try await server.client("alice")
        let (_, bob) = try await server.client("bob")
        let (_, carol) = try await server.client("carol")
        let chat = try await alice.createGroup(title: "Ops", members: [botID, bob.id, carol.id]).chat.id
        _ = try await alice.setRole(chatID: chat, userID: botID, role: .admin)
        func call(_ path: String, _ users: [UserID]) async throws -> Int {
            let body = Data(#"{"group_chat_id":"\#(chat)","user_huids":[\#(users.map { "\"\($0)\"" }.joined(separator: ","))]}"#.utf8)
            return try await HTTPContractTests.raw(
                server, .POST, path, token: BotXToken.mint(bot: botID, audience: "127.0.0.1", secret: secret), body: body
            ).status
        }
        #expect(try await call("/api/v3/botx/chats/remove_user", [bob.id, .random()]) == 404)
        #expect(try await call("/api/v3/botx/chats/add_admin", [carol.id, .random()]) == 404)
        let members = try await alice.members(chatID: chat).members
        #expect(members.contains { $0.userID == bob.id }, "bob was not removed")
        #expect(members.first { $0.userID == carol.id }?.role == .member, "carol was not promoted")
        #expect(try await call("/api/v3/botx/chats/remove_user", [bob.id]) == 200)
    }
}
