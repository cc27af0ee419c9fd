import Foundation
import VestnikAPI

// MARK: - Authentication and sessions

extension VestnikClient {
    /// `POST /api/v1/auth/login`: exchanges a password for a session token.
    ///
    /// On success the client starts using the returned token for every later call. The token is
    /// shown only once; persist `response.token` if you need it after the process ends.
    /// Wrong credentials throw ``VestnikClientError`` with status 401.
    @discardableResult
    public func login(login: String, password: String, deviceName: String) async throws -> LoginResponse {
        let response: LoginResponse = try await request(
            .post, "/auth/login", body: LoginRequest(login: login, password: password, deviceName: deviceName))
        setToken(response.token)
        return response
    }

    /// `POST /api/v1/auth/logout`: ends the current session on the server and forgets the token.
    ///
    /// The token is forgotten even when the server call fails (the session may then stay valid until
    /// it expires or is revoked from another device).
    public func logout() async throws {
        defer { setToken(nil) }
        try await requestVoid(.post, "/auth/logout")
    }

    /// `GET /api/v1/me`: the signed-in user.
    public func me() async throws -> User {
        try await request(.get, "/me")
    }

    /// `GET /api/v1/sessions`: the signed-in user's sessions, the current one marked.
    public func sessions() async throws -> SessionList {
        try await request(.get, "/sessions")
    }

    /// `DELETE /api/v1/sessions/{session_id}`: logs that device out. Revoking the current session
    /// ends this client's access too.
    public func revokeSession(_ sessionID: SessionID) async throws {
        try await requestVoid(.delete, "/sessions/\(sessionID)")
    }
}

// MARK: - Users

extension VestnikClient {
    /// `GET /api/v1/users?q=…&limit=…`: the directory search (login, name, e-mail, …; server-defined).
    ///
    /// - Parameter limit: Page size, at most ``APILimits/maxPageSize``; `nil` for the server default.
    public func searchUsers(query: String, limit: Int? = nil) async throws -> UserList {
        var items = [("q", query)]
        if let limit { items.append(("limit", String(limit))) }
        return try await request(.get, "/users", query: items)
    }

    /// `GET /api/v1/users/{user_id}`: one directory entry with live presence.
    public func user(_ userID: UserID) async throws -> UserProfile {
        try await request(.get, "/users/\(userID)")
    }
}

// MARK: - Chats and members

extension VestnikClient {
    /// `GET /api/v1/chats`: the caller's chats, newest activity first, with unread counts.
    public func chats() async throws -> ChatList {
        try await request(.get, "/chats")
    }

    /// `POST /api/v1/chats`: creates a chat (see ``CreateChatRequest`` for the rules per kind).
    ///
    /// For `personal` and `notes` the server returns the existing chat when there already is one
    /// (so calling this twice is harmless).
    public func createChat(_ request: CreateChatRequest) async throws -> ChatDetails {
        try await self.request(.post, "/chats", body: request)
    }

    /// Creates a group (members post, admins manage); the caller becomes its admin.
    public func createGroup(title: String, description: String? = nil, members: [UserID]) async throws -> ChatDetails {
        try await createChat(CreateChatRequest(kind: .group, title: title, description: description, members: members))
    }

    /// Creates a channel (only admins post); the caller becomes its admin.
    public func createChannel(title: String, description: String? = nil, members: [UserID]) async throws -> ChatDetails {
        try await createChat(CreateChatRequest(kind: .channel, title: title, description: description, members: members))
    }

    /// Opens the personal chat with `userID`, creating it if needed.
    public func openPersonalChat(with userID: UserID) async throws -> ChatDetails {
        try await createChat(CreateChatRequest(kind: .personal, members: [userID]))
    }

    /// Opens the caller's notes chat (a chat with themselves), creating it if needed.
    public func openNotesChat() async throws -> ChatDetails {
        try await createChat(CreateChatRequest(kind: .notes))
    }

    /// `GET /api/v1/chats/{chat_id}`: the chat, the caller's role and its members.
    public func chat(_ chatID: ChatID) async throws -> ChatDetails {
        try await request(.get, "/chats/\(chatID)")
    }

    /// `PATCH /api/v1/chats/{chat_id}`: changes the title and/or description (admins only);
    /// `nil` fields stay as they are.
    public func updateChat(_ chatID: ChatID, title: String? = nil, description: String? = nil) async throws -> Chat {
        try await request(.patch, "/chats/\(chatID)", body: UpdateChatRequest(title: title, description: description))
    }

    /// `GET /api/v1/chats/{chat_id}/members`
    public func members(chatID: ChatID) async throws -> MemberList {
        try await request(.get, "/chats/\(chatID)/members")
    }

    /// `POST /api/v1/chats/{chat_id}/members`: adds users as plain members (admins only);
    /// returns the full member list afterwards.
    public func addMembers(chatID: ChatID, userIDs: [UserID]) async throws -> MemberList {
        try await request(.post, "/chats/\(chatID)/members", body: AddMembersRequest(userIDs: userIDs))
    }

    /// `DELETE /api/v1/chats/{chat_id}/members/{user_id}`: removes a member (admins only).
    /// To remove yourself use ``leaveChat(_:)``.
    public func removeMember(chatID: ChatID, userID: UserID) async throws {
        try await requestVoid(.delete, "/chats/\(chatID)/members/\(userID)")
    }

    /// `PUT /api/v1/chats/{chat_id}/members/{user_id}/role`: promotes or demotes a member (admins only).
    public func setRole(chatID: ChatID, userID: UserID, role: MemberRole) async throws -> ChatMember {
        try await request(.put, "/chats/\(chatID)/members/\(userID)/role", body: SetRoleRequest(role: role))
    }

    /// `POST /api/v1/chats/{chat_id}/leave`: the caller leaves the chat.
    public func leaveChat(_ chatID: ChatID) async throws {
        try await requestVoid(.post, "/chats/\(chatID)/leave")
    }

    /// `POST /api/v1/chats/{chat_id}/typing`: tells the other members the caller is typing.
    ///
    /// Ephemeral and best-effort: call it every few seconds while the user types; it is not retried.
    public func sendTyping(chatID: ChatID) async throws {
        try await requestVoid(.post, "/chats/\(chatID)/typing")
    }

    /// `POST /api/v1/chats/{chat_id}/read`: marks everything up to and including `messageID` read.
    ///
    /// The read position never moves backwards, so this is safe to repeat (and is retried on
    /// transient failures).
    public func markRead(chatID: ChatID, messageID: MessageID) async throws -> ReadPosition {
        try await request(.post, "/chats/\(chatID)/read", body: MarkReadRequest(messageID: messageID), retryable: true)
    }

    /// `GET /api/v1/chats/{chat_id}/pins`: the chat's pinned messages.
    public func pins(chatID: ChatID) async throws -> MessageList {
        try await request(.get, "/chats/\(chatID)/pins")
    }
}

// MARK: - Messages

extension VestnikClient {
    /// `GET /api/v1/chats/{chat_id}/messages`: one page of history, oldest first.
    ///
    /// Give at most one anchor: `before` (older than that message), `after` (newer than it) or
    /// `around` (centred on it). Without an anchor the newest page is returned. Passing more than
    /// one anchor throws ``VestnikClientError/Code/invalidArgument`` without contacting the server.
    ///
    /// - Parameter limit: Page size, at most ``APILimits/maxPageSize``; `nil` for the server default.
    public func history(
        chatID: ChatID, before: MessageID? = nil, after: MessageID? = nil, around: MessageID? = nil, limit: Int? = nil
    ) async throws -> MessagePage {
        var items: [(String, String)] = []
        if let before { items.append(("before", before.description)) }
        if let after { items.append(("after", after.description)) }
        if let around { items.append(("around", around.description)) }
        guard items.count <= 1 else {
            throw VestnikClientError.invalidArgument("history takes at most one of before, after and around")
        }
        if let limit { items.append(("limit", String(limit))) }
        return try await request(.get, "/chats/\(chatID)/messages", query: items)
    }

    /// `POST /api/v1/chats/{chat_id}/messages`: sends (or forwards) a message.
    ///
    /// The send is idempotent: a `clientMessageID` (a fresh UUID when you pass `nil`) goes with the
    /// request, and on transport failures, 5xx, 408 and 429 the very same request is repeated per
    /// ``Configuration/retry``; the server answers a repeat with the original message instead of a
    /// duplicate. Pass your own `clientMessageID` (at most ``APILimits/maxClientMessageIDLength``
    /// characters) to extend that guarantee across app restarts, e.g. for an outbox.
    ///
    /// - Parameters:
    ///   - text: The text (at most ``APILimits/maxMessageBytes`` UTF-8 bytes); `@login` and `@all`
    ///     become mentions. Ignored by the server when `forwardOf` is set, so may be `nil` then.
    ///   - replyTo: A message in the same chat this one answers.
    ///   - forwardOf: A message (readable by the caller) to forward into `chatID`.
    ///   - mentions: Additional explicit mentions.
    public func sendMessage(
        chatID: ChatID, text: String?, clientMessageID: String? = nil, replyTo: MessageID? = nil,
        forwardOf: MessageID? = nil, mentions: [Mention]? = nil
    ) async throws -> Message {
        let body = SendMessageRequest(
            text: text, clientMessageID: clientMessageID ?? UUID().uuidString.lowercased(), replyTo: replyTo,
            forwardOf: forwardOf, mentions: mentions)
        return try await request(.post, "/chats/\(chatID)/messages", body: body, retryable: true)
    }

    /// Forwards `messageID` into `chatID` (idempotent and retried like ``sendMessage(chatID:text:clientMessageID:replyTo:forwardOf:mentions:)``).
    public func forwardMessage(_ messageID: MessageID, to chatID: ChatID, clientMessageID: String? = nil) async throws -> Message {
        try await sendMessage(chatID: chatID, text: nil, clientMessageID: clientMessageID, forwardOf: messageID)
    }

    /// `GET /api/v1/messages/{message_id}`: the message as it is now (tombstone if deleted).
    public func message(_ messageID: MessageID) async throws -> Message {
        try await request(.get, "/messages/\(messageID)")
    }

    /// `PATCH /api/v1/messages/{message_id}`: replaces the text of one of the caller's messages.
    public func editMessage(_ messageID: MessageID, text: String) async throws -> Message {
        try await request(.patch, "/messages/\(messageID)", body: EditMessageRequest(text: text))
    }

    /// `DELETE /api/v1/messages/{message_id}`: deletes a message; returns the tombstone
    /// (`deletedAt` set, empty text).
    @discardableResult
    public func deleteMessage(_ messageID: MessageID) async throws -> Message {
        try await request(.delete, "/messages/\(messageID)")
    }

    /// `GET /api/v1/messages/{message_id}/edits`: every version of the text, the original first.
    public func edits(messageID: MessageID) async throws -> EditHistory {
        try await request(.get, "/messages/\(messageID)/edits")
    }

    /// `GET /api/v1/messages/{message_id}/read-by`: who has read the message.
    public func readBy(messageID: MessageID) async throws -> ReadByResponse {
        try await request(.get, "/messages/\(messageID)/read-by")
    }

    /// `PUT /api/v1/messages/{message_id}/reactions/{emoji}`: adds the caller's reaction
    /// (adding it twice changes nothing). Returns all reactions afterwards.
    @discardableResult
    public func addReaction(messageID: MessageID, emoji: String) async throws -> ReactionsResponse {
        try await request(.put, "/messages/\(messageID)/reactions/\(Self.percentEncode(emoji))")
    }

    /// `DELETE /api/v1/messages/{message_id}/reactions/{emoji}`: removes the caller's reaction.
    /// Returns all reactions afterwards.
    @discardableResult
    public func removeReaction(messageID: MessageID, emoji: String) async throws -> ReactionsResponse {
        try await request(.delete, "/messages/\(messageID)/reactions/\(Self.percentEncode(emoji))")
    }

    /// `PUT /api/v1/messages/{message_id}/pin`: pins the message in its chat.
    public func pin(messageID: MessageID) async throws {
        try await requestVoid(.put, "/messages/\(messageID)/pin")
    }

    /// `DELETE /api/v1/messages/{message_id}/pin`: unpins the message.
    public func unpin(messageID: MessageID) async throws {
        try await requestVoid(.delete, "/messages/\(messageID)/pin")
    }
}

// MARK: - Event log (HTTP catch-up)

extension VestnikClient {
    /// `GET /api/v1/events?since=…&limit=…`: durable events after `since`, oldest first.
    ///
    /// Pass `page.next` as `since` for the following page while `page.hasMore`. When `since` is
    /// older than the server keeps, this throws ``VestnikClientError`` with
    /// ``VestnikClientError/isResyncRequired`` (HTTP 410): refetch chats and history and continue
    /// from the current head. For live updates prefer ``stream(since:configuration:)``.
    ///
    /// With `since: nil` the page is empty and `next` is the server's current head: fetch a
    /// snapshot (chats, history) after that and continue from `next`.
    public func events(since: EventSeq?, limit: Int? = nil) async throws -> EventPage {
        var items: [(String, String)] = []
        if let since { items.append(("since", since.description)) }
        if let limit { items.append(("limit", String(limit))) }
        return try await request(.get, "/events", query: items)
    }
}
