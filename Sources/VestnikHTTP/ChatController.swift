import Foundation
import Hummingbird
import VestnikAPI
import VestnikCore

/// Chats, membership, reading and typing.
struct ChatController {
    let services: Services

    func addRoutes(to group: RouterGroup<AuthenticatedRequestContext>) {
        group.get("chats", use: list)
        group.post("chats", use: create)
        group.get("chats/:chat_id", use: details)
        group.patch("chats/:chat_id", use: update)
        group.get("chats/:chat_id/members", use: members)
        group.post("chats/:chat_id/members", use: addMembers)
        group.delete("chats/:chat_id/members/:user_id", use: removeMember)
        group.put("chats/:chat_id/members/:user_id/role", use: setRole)
        group.post("chats/:chat_id/leave", use: leave)
        group.post("chats/:chat_id/typing", use: typing)
        group.post("chats/:chat_id/read", use: markRead)
    }

    /// GET /api/v1/chats
    @Sendable func list(_ request: Request, context: AuthenticatedRequestContext) async throws -> ChatList {
        let rows = try await services.chats.list(as: context.session)
        return ChatList(
            chats: rows.map {
                ChatListItem(
                    chat: $0.chat, myRole: $0.member.role, peerID: $0.peerID, lastMessage: $0.lastMessage, unreadCount: $0.unreadCount,
                    readSeq: $0.member.readSeq)
            })
    }

    /// POST /api/v1/chats
    @Sendable func create(_ request: Request, context: AuthenticatedRequestContext) async throws -> EditedResponse<ChatDetails> {
        let body = try await request.decodeJSON(CreateChatRequest.self)
        let (view, created) = try await services.chats.create(
            kind: body.kind, title: body.title, description: body.description, members: body.members ?? [], as: context.session)
        return EditedResponse(status: created ? .created : .ok, response: ChatDetails(view))
    }

    /// GET /api/v1/chats/{chat_id}
    @Sendable func details(_ request: Request, context: AuthenticatedRequestContext) async throws -> ChatDetails {
        ChatDetails(try await services.chats.details(try context.id("chat_id"), as: context.session))
    }

    /// PATCH /api/v1/chats/{chat_id}
    @Sendable func update(_ request: Request, context: AuthenticatedRequestContext) async throws -> Chat {
        let body = try await request.decodeJSON(UpdateChatRequest.self)
        return try await services.chats.update(try context.id("chat_id"), title: body.title, description: body.description, as: context.session)
    }

    /// GET /api/v1/chats/{chat_id}/members
    @Sendable func members(_ request: Request, context: AuthenticatedRequestContext) async throws -> MemberList {
        MemberList(members: try await services.chats.members(try context.id("chat_id"), as: context.session))
    }

    /// POST /api/v1/chats/{chat_id}/members
    @Sendable func addMembers(_ request: Request, context: AuthenticatedRequestContext) async throws -> MemberList {
        let chatID: ChatID = try context.id("chat_id")
        let body = try await request.decodeJSON(AddMembersRequest.self)
        return MemberList(members: try await services.chats.addMembers(body.userIDs, to: chatID, as: context.session))
    }

    /// DELETE /api/v1/chats/{chat_id}/members/{user_id}
    @Sendable func removeMember(_ request: Request, context: AuthenticatedRequestContext) async throws -> HTTPResponse.Status {
        try await services.chats.removeMember(try context.id("user_id"), from: try context.id("chat_id"), as: context.session)
        return .noContent
    }

    /// PUT /api/v1/chats/{chat_id}/members/{user_id}/role
    @Sendable func setRole(_ request: Request, context: AuthenticatedRequestContext) async throws -> ChatMember {
        let chatID: ChatID = try context.id("chat_id")
        let userID: UserID = try context.id("user_id")
        let body = try await request.decodeJSON(SetRoleRequest.self)
        return try await services.chats.setRole(body.role, of: userID, in: chatID, as: context.session)
    }

    /// POST /api/v1/chats/{chat_id}/leave
    @Sendable func leave(_ request: Request, context: AuthenticatedRequestContext) async throws -> HTTPResponse.Status {
        try await services.chats.leave(try context.id("chat_id"), as: context.session)
        return .noContent
    }

    /// POST /api/v1/chats/{chat_id}/typing
    @Sendable func typing(_ request: Request, context: AuthenticatedRequestContext) async throws -> HTTPResponse.Status {
        try await services.chats.typing(in: try context.id("chat_id"), as: context.session)
        return .noContent
    }

    /// POST /api/v1/chats/{chat_id}/read
    @Sendable func markRead(_ request: Request, context: AuthenticatedRequestContext) async throws -> ReadPosition {
        let chatID: ChatID = try context.id("chat_id")
        let body = try await request.decodeJSON(MarkReadRequest.self)
        let (readSeq, unread) = try await services.messages.markRead(upTo: body.messageID, in: chatID, as: context.session)
        return ReadPosition(chatID: chatID, readSeq: readSeq, unreadCount: unread)
    }
}

extension ChatDetails {
    init(_ view: ChatDetailsView) {
        self.init(chat: view.chat, myRole: view.myRole, members: view.members)
    }
}
