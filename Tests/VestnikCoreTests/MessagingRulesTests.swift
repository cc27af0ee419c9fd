import Foundation
import Testing
import VestnikCore
import VestnikModel

@Suite struct MessagingRulesTests {
    @Test("a member of a channel cannot post; an admin can")
    func channelPermissions() async throws {
        let env = try await TestEnvironment()
        let admin = try await env.user("admin")
        let reader = try await env.user("reader")
        let channel = try await env.group("News", by: admin, members: [reader], kind: .channel)
        #expect(await errorCode { _ = try await env.send("hi", to: channel, as: reader) } == "channel_read_only")
        let post = try await env.send("Announcement", to: channel, as: admin)
        #expect(post.chatSeq == 1)
        // Readers can still react and read.
        _ = try await env.services.messages.react("👍", on: post.id, add: true, as: reader)
        #expect(try await env.services.messages.history(in: channel, anchor: .latest, limit: 10, as: reader).messages.count == 1)
    }

    @Test("only admins manage a group; the last admin stays")
    func groupManagement() async throws {
        let env = try await TestEnvironment()
        let owner = try await env.user("owner")
        let member = try await env.user("member")
        let outsider = try await env.user("outsider")
        let group = try await env.group("Team", by: owner, members: [member])
        #expect(await errorCode { _ = try await env.services.chats.addMembers([outsider.userID], to: group, as: member) } == "not_chat_admin")
        #expect(await errorCode { _ = try await env.services.chats.update(group, title: "Mine", description: nil, as: member) } == "not_chat_admin")
        #expect(await errorCode { _ = try await env.services.chats.setRole(.member, of: owner.userID, in: group, as: owner) } == "last_admin")
        _ = try await env.services.chats.setRole(.admin, of: member.userID, in: group, as: owner)
        _ = try await env.services.chats.addMembers([outsider.userID], to: group, as: member)
        #expect(try await env.services.chats.members(group, as: owner).count == 3)
        try await env.services.chats.removeMember(outsider.userID, from: group, as: member)
        #expect(await errorCode { _ = try await env.services.chats.details(group, as: outsider) } == "chat_not_found")
        // The last admin leaving hands admin over.
        _ = try await env.services.chats.setRole(.member, of: member.userID, in: group, as: owner)
        try await env.services.chats.leave(group, as: owner)
        #expect(try await env.services.chats.details(group, as: member).myRole == .admin)
    }

    @Test("another user's chat and messages look exactly like missing ones")
    func insecureDirectObjectReferences() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        let bob = try await env.user("bob")
        let mallory = try await env.user("mallory")
        let chat = try await env.services.chats.create(kind: .personal, title: nil, description: nil, members: [bob.userID], as: alice).0.chat.id
        let secret = try await env.send("secret", to: chat, as: alice)
        let missingChat = await errorCode { _ = try await env.services.chats.details(.random(), as: mallory) }
        #expect(await errorCode { _ = try await env.services.chats.details(chat, as: mallory) } == missingChat)
        #expect(await errorCode { _ = try await env.services.messages.history(in: chat, anchor: .latest, limit: 10, as: mallory) } == "chat_not_found")
        #expect(await errorCode { _ = try await env.send("hi", to: chat, as: mallory) } == "chat_not_found")
        #expect(await errorCode { _ = try await env.services.messages.message(secret.id, as: mallory) } == "message_not_found")
        #expect(await errorCode { _ = try await env.services.messages.edit(secret.id, text: "pwned", as: mallory) } == "message_not_found")
        #expect(await errorCode { _ = try await env.services.messages.delete(secret.id, as: mallory) } == "message_not_found")
        #expect(await errorCode { _ = try await env.services.messages.react("👍", on: secret.id, add: true, as: mallory) } == "message_not_found")
        #expect(await errorCode { _ = try await env.services.messages.readBy(secret.id, as: mallory) } == "message_not_found")
        #expect(await errorCode {
            _ = try await env.services.messages.send(OutgoingMessage(text: nil, forwardOf: secret.id), to: chat, as: mallory)
        } == "chat_not_found")
        // Nothing changed.
        #expect(try await env.services.messages.message(secret.id, as: alice).text == "secret")
        #expect(try await env.services.messages.message(secret.id, as: alice).reactions.isEmpty)
    }

    @Test("a retried send with the same client_message_id returns the original")
    func idempotentSend() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        let chat = try await env.group("G", by: alice, members: [])
        let (first, created) = try await env.services.messages.send(OutgoingMessage(text: "once", clientMessageID: "k1"), to: chat, as: alice)
        let (second, createdAgain) = try await env.services.messages.send(OutgoingMessage(text: "once", clientMessageID: "k1"), to: chat, as: alice)
        #expect(created && !createdAgain)
        #expect(first.id == second.id)
        #expect(try await env.services.messages.history(in: chat, anchor: .latest, limit: 10, as: alice).messages.count == 1)
    }

    @Test("concurrent retries of one send store one message")
    func concurrentIdempotentSend() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        let chat = try await env.group("G", by: alice, members: [])
        let ids = try await withThrowingTaskGroup(of: MessageID.self) { group in
            for _ in 0..<10 {
                group.addTask { try await env.services.messages.send(OutgoingMessage(text: "x", clientMessageID: "same"), to: chat, as: alice).0.id }
            }
            var ids = Set<MessageID>()
            for try await id in group { ids.insert(id) }
            return ids
        }
        #expect(ids.count == 1)
    }

    @Test("edits keep every version; only the author edits; deleted messages are tombstones")
    func editsAndDeletes() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        let bob = try await env.user("bob")
        let chat = try await env.group("G", by: alice, members: [bob])
        let message = try await env.send("v0", to: chat, as: bob)
        _ = try await env.services.messages.edit(message.id, text: "v1", as: bob)
        let edited = try await env.services.messages.edit(message.id, text: "v2", as: bob)
        #expect(edited.editCount == 2)
        #expect(try await env.services.messages.editHistory(message.id, as: alice).map(\.text) == ["v0", "v1", "v2"])
        #expect(await errorCode { _ = try await env.services.messages.edit(message.id, text: "alice was here", as: alice) } == "not_message_author")
        // A group admin may delete anyone's message.
        let tombstone = try await env.services.messages.delete(message.id, as: alice)
        #expect(tombstone.isDeleted && tombstone.text.isEmpty)
        #expect(await errorCode { _ = try await env.services.messages.edit(message.id, text: "back", as: bob) } == "message_deleted")
        #expect(try await env.services.messages.editHistory(message.id, as: alice).isEmpty)
    }

    @Test("bad message input is rejected with clear codes and stores nothing")
    func badMessages() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        let chat = try await env.group("G", by: alice, members: [])
        #expect(await errorCode { _ = try await env.send("   ", to: chat, as: alice) } == "invalid_request")
        #expect(await errorCode { _ = try await env.send("", to: chat, as: alice) } == "invalid_request")
        #expect(await errorCode { _ = try await env.send(" \n\t\u{85}\u{A0}\u{2003}\u{3000}\r", to: chat, as: alice) } == "invalid_request")
        #expect(await errorCode { _ = try await env.send("a\u{0}b", to: chat, as: alice) } == "invalid_request")
        #expect(await errorCode { _ = try await env.send(String(repeating: "я", count: 9000), to: chat, as: alice) } == "payload_too_large")
        #expect(await errorCode { _ = try await env.send("x", to: chat, as: alice, clientID: String(repeating: "k", count: 500)) } == "invalid_request")
        #expect(await errorCode {
            _ = try await env.services.messages.send(OutgoingMessage(text: "r", replyTo: .random()), to: chat, as: alice)
        } == "invalid_request")
        #expect(await errorCode { _ = try await env.services.messages.react("not an emoji at all", on: .random(), add: true, as: alice) } == "invalid_request")
        #expect(try await env.services.messages.history(in: chat, anchor: .latest, limit: 10, as: alice).messages.isEmpty)
        // Exactly 16 KiB is fine, and so is text around whitespace-only lines.
        _ = try await env.send(String(repeating: "a", count: 16 * 1024), to: chat, as: alice)
        #expect(try await env.send("  \n  indented\u{A0}", to: chat, as: alice).text == "  \n  indented\u{A0}")
    }

    @Test("mentions come from @login and @all, only for members")
    func mentions() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        let bob = try await env.user("bob")
        _ = try await env.user("carol")
        let chat = try await env.group("G", by: alice, members: [bob])
        let message = try await env.send("@bob look, @carol is not here. @all: meeting. email@bob.ru", to: chat, as: alice)
        #expect(message.mentions == [.user(bob.userID), .all])
    }

    @Test("replies, forwards keep their origin, pins, read positions and read-by")
    func repliesForwardsPinsReceipts() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        let bob = try await env.user("bob")
        let chat = try await env.group("G", by: alice, members: [bob])
        let other = try await env.group("Other", by: bob, members: [alice])
        let original = try await env.send("original", to: chat, as: alice)
        let reply = try await env.services.messages.send(OutgoingMessage(text: "reply", replyTo: original.id), to: chat, as: bob).0
        #expect(reply.replyTo == original.id)
        let forwarded = try await env.services.messages.send(OutgoingMessage(text: nil, forwardOf: original.id), to: other, as: bob).0
        #expect(forwarded.text == "original")
        #expect(forwarded.forwardedFrom?.messageID == original.id)
        #expect(forwarded.forwardedFrom?.senderID == alice.userID)
        let again = try await env.services.messages.send(OutgoingMessage(text: nil, forwardOf: forwarded.id), to: chat, as: alice).0
        #expect(again.forwardedFrom?.messageID == original.id)

        #expect(await errorCode { try await env.services.messages.setPinned(true, message: original.id, as: bob) } == "not_chat_admin")
        try await env.services.messages.setPinned(true, message: original.id, as: alice)
        #expect(try await env.services.messages.pins(in: chat, as: bob).map(\.id) == [original.id])

        let list = try await env.services.chats.list(as: bob)
        // Bob's own reply marked everything before it read; only Alice's forward is unread.
        #expect(list.first { $0.chat.id == chat }?.unreadCount == 1)
        let (readSeq, unread) = try await env.services.messages.markRead(upTo: again.id, in: chat, as: bob)
        #expect(readSeq == again.chatSeq && unread == 0)
        // Never backwards.
        let (stillRead, _) = try await env.services.messages.markRead(upTo: original.id, in: chat, as: bob)
        #expect(stillRead == again.chatSeq)
        #expect(try await env.services.messages.readBy(original.id, as: alice) == [bob.userID])
        #expect(await errorCode { _ = try await env.services.messages.markRead(upTo: original.id, in: other, as: bob) } == "message_not_found")
    }

    @Test("personal chats are unique per pair; notes are per user")
    func personalAndNotes() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        let bob = try await env.user("bob")
        let (first, created) = try await env.services.chats.create(kind: .personal, title: nil, description: nil, members: [bob.userID], as: alice)
        let (second, createdAgain) = try await env.services.chats.create(kind: .personal, title: nil, description: nil, members: [alice.userID], as: bob)
        #expect(created && !createdAgain && first.chat.id == second.chat.id)
        #expect(await errorCode { try await env.services.chats.leave(first.chat.id, as: alice) } == "forbidden")
        #expect(await errorCode { _ = try await env.services.chats.create(kind: .personal, title: nil, description: nil, members: [], as: alice) } == "invalid_request")
        let notes = try await env.services.chats.create(kind: .notes, title: nil, description: nil, members: [], as: alice)
        let notesAgain = try await env.services.chats.create(kind: .notes, title: nil, description: nil, members: [], as: alice)
        #expect(notes.0.chat.id == notesAgain.0.chat.id && notes.1 && !notesAgain.1)
        #expect(notes.0.members.map(\.userID) == [alice.userID])
    }

    @Test("history pages backwards and forwards from any message")
    func history() async throws {
        let env = try await TestEnvironment()
        let alice = try await env.user("alice")
        let chat = try await env.group("G", by: alice, members: [])
        var sent: [Message] = []
        for i in 1...25 { sent.append(try await env.send("m\(i)", to: chat, as: alice)) }
        let latest = try await env.services.messages.history(in: chat, anchor: .latest, limit: 10, as: alice)
        #expect(latest.messages.map(\.text) == (16...25).map { "m\($0)" })
        #expect(latest.hasMoreBefore && !latest.hasMoreAfter)
        let before = try await env.services.messages.history(in: chat, anchor: .before(latest.messages[0].id), limit: 10, as: alice)
        #expect(before.messages.map(\.text) == (6...15).map { "m\($0)" })
        #expect(before.hasMoreBefore && before.hasMoreAfter)
        let oldest = try await env.services.messages.history(in: chat, anchor: .before(before.messages[0].id), limit: 10, as: alice)
        #expect(oldest.messages.map(\.text) == (1...5).map { "m\($0)" } && !oldest.hasMoreBefore)
        let after = try await env.services.messages.history(in: chat, anchor: .after(sent[19].id), limit: 10, as: alice)
        #expect(after.messages.map(\.text) == (21...25).map { "m\($0)" } && !after.hasMoreAfter)
        let around = try await env.services.messages.history(in: chat, anchor: .around(sent[12].id), limit: 6, as: alice)
        // Limit 6: two before the anchor, the anchor, three after.
        #expect(around.messages.map(\.text) == (11...16).map { "m\($0)" })
        let single = try await env.services.messages.history(in: chat, anchor: .around(sent[12].id), limit: 1, as: alice)
        #expect(single.messages.map(\.text) == ["m13"] && single.hasMoreBefore && single.hasMoreAfter)
        #expect(await errorCode { _ = try await env.services.messages.history(in: chat, anchor: .before(.random()), limit: 5, as: alice) } == "message_not_found")
    }
}

@Suite struct EmojiRuleTests {
    @Test("reactions accept single emoji, including sequences, and reject text", arguments: [
        ("👍", true), ("❤️", true), ("👍🏽", true), ("👨‍👩‍👧", true), ("🇷🇺", true), ("1️⃣", true), ("❤", true),
        ("lol", false), ("a", false), ("1", false), ("👍👍", false), ("", false), (" ", false), ("<b>", false),
    ])
    func emoji(_ pair: (String, Bool)) {
        #expect(MessageService.isEmoji(pair.0, maxBytes: 64) == pair.1)
    }

    @Test("random identifiers are version-4 UUIDs that round-trip through their text and do not repeat")
    func randomIdentifiers() throws {
        let ids = (0..<1000).map { _ in MessageID.random() }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            let text = id.description
            #expect(Array(text)[14] == "4")
            #expect("89ab".contains(Array(text)[19]))
            #expect(MessageID(text) == id)
            #expect(UUID(uuidString: text) == id.uuid)
        }
    }

    @Test("time-ordered identifiers are version-7 UUIDs carrying their millisecond, sort by it, and do not repeat")
    func timeOrderedIdentifiers() throws {
        let moment = Date(timeIntervalSince1970: 1_796_000_000.123)
        let ids = (0..<1000).map { _ in MessageID.timeOrdered(at: moment) }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            let text = id.description
            #expect(Array(text)[14] == "7")
            #expect("89ab".contains(Array(text)[19]))
            #expect(MessageID(text) == id)
            // The first 48 bits are the Unix time in milliseconds.
            let milliseconds = withUnsafeBytes(of: id.uuid) { raw in raw.prefix(6).reduce(Int64(0)) { $0 << 8 | Int64($1) } }
            #expect(milliseconds == 1_796_000_000_123)
        }
        let later = MessageID.timeOrdered(at: moment.addingTimeInterval(0.001))
        #expect(ids.allSatisfy { $0.description < later.description }, "a later millisecond sorts after, as text too")
        #expect(MessageID.timeOrdered(at: Date(timeIntervalSince1970: -5)).description.hasPrefix("00000000-0000-7"))
    }
}
