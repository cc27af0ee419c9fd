import Foundation
import Testing
import VestnikCore
import VestnikKit
import VestnikModel

/// Real pybotx 0.77 bots (Tests/pybotx) against a live server, with users driven through
/// VestnikKit. Skipped (with a message) when the venv is missing; `.ci/run` always provides it.
@Suite(.serialized, .timeLimit(.minutes(5)), .enabled(if: PybotxEnvironment.python != nil, "pybotx venv missing (VESTNIK_PYBOTX_PYTHON)"))
struct BotXPybotxTests {
    /// Registers a bot the way `vestnik admin bot add` does.
    static func register(
        _ server: TestServer, name: String, port: Int, allowed: BotAllowedData = .commands, permissions: Set<BotPermission> = []
    ) async throws -> (UserID, String) {
        let (registration, secret) = try await server.services.bots.register(
            name: name, url: "http://127.0.0.1:\(port)", allowedData: allowed, description: "\(name) (test)", permissions: permissions,
            as: .localAdmin)
        return (registration.user.id, secret)
    }

    static func startEcho(_ server: TestServer, allowed: BotAllowedData = .all) async throws -> (UserID, PythonBot) {
        let port = try freeLocalPort()
        let (botID, secret) = try await register(server, name: "Echo", port: port, allowed: allowed)
        let process = try PythonBot(
            ["-m", "uvicorn", "echo_bot:app", "--host", "127.0.0.1", "--port", String(port), "--log-level", "warning"], bot: botID,
            secret: secret, server: server.url, port: port)
        return (botID, process)
    }

    @Test("echo bot: /echo, plain text, buttons, edit, reply, delete, file, system events, menu")
    func echoRoundTrips() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, aliceUser) = try await server.client("alice")
        let (bob, bobUser) = try await server.client("bob")
        let (botID, echo) = try await Self.startEcho(server)
        defer { echo.stop() }

        // A personal chat with the bot: the bot greets (system:chat_created) once it is up.
        let chat = try await alice.openPersonalChat(with: botID).chat.id
        let greeting = try await waitForMessage(alice, in: chat, timeout: .seconds(40)) { $0.senderID == botID && $0.text.hasPrefix("Hi! I am an echo bot") }
        #expect(greeting != nil, "no greeting; bot log: \(echo.stderr.suffix(2000))")

        // The command menu from the bot's /status reaches clients.
        var menu: [BotCommand] = []
        _ = try await waitUntil(timeout: .seconds(15)) {
            menu = try await alice.botCommands(chatID: chat).bots.first?.commands ?? []
            return !menu.isEmpty
        }
        #expect(menu.contains { $0.body == "/echo" && $0.description == "Send back the received message body" })
        #expect(!menu.contains { $0.body == "/choose" }, "invisible commands are not offered")

        // /echo hi comes back as "hi".
        let command = try await alice.sendMessage(chatID: chat, text: "/echo hi")
        let echoed = try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text == "hi" }
        #expect(echoed != nil)
        #expect(echoed.map { $0.createdAt >= command.createdAt } == true)

        // allowed_data=all: plain text reaches the default handler.
        _ = try await alice.sendMessage(chatID: chat, text: "just text")
        #expect(try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text == "echo: just text" } != nil)

        // Buttons: bubble + keyboard with metadata; a press carries data, metadata and source_sync_id.
        _ = try await alice.sendMessage(chatID: chat, text: "/buttons")
        let offer = try #require(try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text == "Choose a pill" })
        #expect(offer.bubble?.first?.map(\.label) == ["Red", "Blue"])
        #expect(offer.bubble?.first?.first?.data == .object(["pill": .string("red")]))
        #expect(offer.keyboard?.first?.first?.label == "Echo")
        #expect(offer.metadata == .object(["round": .int(1), "camelCase": .string("kept")]))
        let silent = try await alice.pressButton(messageID: offer.id, button: "Red")
        #expect(silent == nil, "pybotx buttons are silent by default")
        let chose = try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text.hasPrefix("chose red") }
        #expect(chose?.text == "chose red round 1 kept from \(offer.id)")
        // A non-silent keyboard button shows the press as the user's message.
        let shown = try await alice.pressButton(messageID: offer.id, button: "Echo")
        #expect(shown?.text == "/echo keyboard" && shown?.senderID == aliceUser.id)
        #expect(try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text == "keyboard" } != nil)

        // Edit, reply and delete from the bot reach the user.
        _ = try await alice.sendMessage(chatID: chat, text: "/edit")
        let edited = try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text == "final" }
        #expect(edited?.editCount == 1 && edited?.metadata == .object(["edited": .bool(true)]))
        let replyCommand = try await alice.sendMessage(chatID: chat, text: "/reply")
        let reply = try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text == "a reply" }
        #expect(reply?.replyTo == replyCommand.id)
        _ = try await alice.sendMessage(chatID: chat, text: "/delete")
        let deletedNote = try #require(try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text.hasPrefix("deleted ") })
        let deletedID = try #require(MessageID(String(deletedNote.text.dropFirst("deleted ".count))))
        #expect(try await alice.message(deletedID).isDeleted)

        // Inline file.
        _ = try await alice.sendMessage(chatID: chat, text: "/file")
        let file = try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text == "here is a file" }
        let attachment = try #require(file?.attachments?.first)
        #expect(attachment.fileName == "hello.txt" && attachment.mimeType == "text/plain" && attachment.size == 12)
        #expect(attachment.data.flatMap { Data(base64Encoded: $0) } == Data("hello, file\n".utf8))

        // The user's edits and deletes reach the bot as system events.
        let mine = try await alice.sendMessage(chatID: chat, text: "typo")
        _ = try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text == "echo: typo" }
        _ = try await alice.editMessage(mine.id, text: "fixed")
        #expect(try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text == "saw edit: fixed" } != nil)
        try await alice.deleteMessage(mine.id)
        #expect(try await waitForMessage(alice, in: chat) { $0.senderID == botID && $0.text == "saw delete of 1" } != nil)

        // A group with the bot: chat_created, added/removed members, recipients.
        let group = try await alice.createGroup(title: "Team", members: [bobUser.id, botID]).chat.id
        #expect(try await waitForMessage(alice, in: group) { $0.senderID == botID && $0.text == "Hi! I am an echo bot in 'Team'" } != nil)
        let (_, carol) = try await server.client("carol")
        _ = try await alice.addMembers(chatID: group, userIDs: [carol.id])
        #expect(try await waitForMessage(alice, in: group) { $0.senderID == botID && $0.text == "added 1" } != nil)
        try await alice.removeMember(chatID: group, userID: carol.id)
        #expect(try await waitForMessage(alice, in: group) { $0.senderID == botID && $0.text == "removed 1" } != nil)
        _ = try await alice.sendMessage(chatID: group, text: "/whisper")
        #expect(try await waitForMessage(alice, in: group) { $0.senderID == botID && $0.text == "just for you" } != nil)
        let bobSees = try await bob.history(chatID: group, limit: 100).messages
        #expect(!bobSees.contains { $0.text == "just for you" }, "recipients: only Alice sees it")
    }

    @Test("notifier bot creates a group chat with users and posts into it")
    func notifier() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, aliceUser) = try await server.client("alice")
        let (bob, bobUser) = try await server.client("bob")
        let port = try freeLocalPort()
        let (botID, secret) = try await Self.register(server, name: "Monitoring", port: port, permissions: [.createChats])
        let notifier = try PythonBot(
            ["notifier.py"], bot: botID, secret: secret, server: server.url, port: port,
            extra: ["USERS": "\(aliceUser.id),\(bobUser.id)"])
        defer { notifier.stop() }
        let status = await notifier.waitForExit(timeout: .seconds(90))
        #expect(status == 0, "notifier failed: \(notifier.lines.joined(separator: "\n"))\n\(notifier.stderr.suffix(3000))")
        for client in [alice, bob] {
            let row = try #require(try await client.chats().chats.first { $0.chat.title == "Incidents" })
            #expect(row.chat.kind == .group && row.chat.description == "Monitoring alerts")
            #expect(try await waitForMessage(client, in: row.chat.id) { $0.senderID == botID && $0.text == "Disk almost full on db-1" } != nil)
        }
    }

    @Test("every implemented BotX method and the documented pybotx exceptions")
    func exerciser() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, aliceUser) = try await server.client("alice", email: "alice@example.com")
        let (_, bobUser) = try await server.client("bob")
        let (echoID, echo) = try await Self.startEcho(server)
        defer { echo.stop() }
        let port = try freeLocalPort()
        let (botID, secret) = try await Self.register(server, name: "Exerciser", port: port, permissions: [.createChats, .directoryExport])
        // A group of Alice's where the exerciser is a plain member (not an admin).
        let foreign = try await alice.createGroup(title: "Alice's", members: [botID]).chat.id
        let script = try PythonBot(
            ["exerciser.py"], bot: botID, secret: secret, server: server.url, port: port,
            extra: [
                "ALICE": aliceUser.id.description, "ALICE_EMAIL": "alice@example.com", "ALICE_LOGIN": "alice",
                "BOB": bobUser.id.description, "FOREIGN_CHAT": foreign.description, "ECHO_BOT_ID": echoID.description,
            ])
        defer { script.stop() }
        let status = await script.waitForExit(timeout: .seconds(180))
        let failed = script.checks.filter { $0["ok"] != "true" }
        #expect(status == 0 && failed.isEmpty, "failed checks: \(failed)\n\(script.stderr.suffix(3000))")
        #expect(script.checks.count >= 40)
        // What the user sees of it: the mention rendered, the edit, the file, the internal notification.
        let chat = try #require(try await alice.chats().chats.first { $0.chat.title == "Exercise" }?.chat.id)
        let page = try await alice.history(chatID: chat, limit: 100).messages
        let hello = try #require(page.first { $0.senderID == botID && $0.text.hasPrefix("Hello") })
        #expect(hello.text == "Hello, edited" && hello.bubble?.first?.first?.label == "Acknowledge")
        #expect(hello.metadata == .object(["ticket": .string("INC-1")]))
        #expect(page.contains { $0.attachments?.first?.fileName == "report.csv" })
        let ping = page.first { $0.text.hasPrefix("Ping") }
        #expect(ping?.text == "Ping @Alice and @all" && ping?.mentions == [.user(aliceUser.id), .all])
        #expect(page.contains { $0.text == "only alice" && $0.recipients == [aliceUser.id] })
        #expect(try await waitForMessage(alice, in: chat) { $0.senderID == echoID && $0.text == "internal: {'alert': 'db-1'}" } != nil)
        // Stealth: the message sent with expire_in = 1 s disappears for everyone.
        let stealthID = try #require(script.checks.first { $0["check"] == "send stealth" }.flatMap { MessageID($0["detail"] ?? "") })
        #expect(try await waitUntil(timeout: .seconds(10)) { try await alice.message(stealthID).isDeleted })
    }
}
