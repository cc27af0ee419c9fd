import Foundation
import Hummingbird
import VestnikAPI
import VestnikCore

/// Messages, history, reactions, pins, receipts.
struct MessageController {
    let services: Services
    let metrics: ServerMetrics

    func addRoutes(to group: RouterGroup<AuthenticatedRequestContext>) {
        group.get("chats/:chat_id/messages", use: history)
        group.post("chats/:chat_id/messages", use: send)
        group.get("chats/:chat_id/pins", use: pins)
        group.get("messages/:message_id", use: message)
        group.patch("messages/:message_id", use: edit)
        group.delete("messages/:message_id", use: delete)
        group.get("messages/:message_id/edits", use: edits)
        group.get("messages/:message_id/read-by", use: readBy)
        group.put("messages/:message_id/reactions/:emoji", use: addReaction)
        group.delete("messages/:message_id/reactions/:emoji", use: removeReaction)
        group.put("messages/:message_id/pin", use: pin)
        group.delete("messages/:message_id/pin", use: unpin)
    }

    /// GET /api/v1/chats/{chat_id}/messages?before|after|around=…&limit=…
    @Sendable func history(_ request: Request, context: AuthenticatedRequestContext) async throws -> MessagePage {
        let chatID: ChatID = try context.id("chat_id")
        let limit = try request.queryInt("limit", in: 1...Int64(APILimits.maxPageSize)) ?? 50
        let anchors: [HistoryAnchor] = [
            try request.queryID("before", as: MessageID.self).map(HistoryAnchor.before),
            try request.queryID("after", as: MessageID.self).map(HistoryAnchor.after),
            try request.queryID("around", as: MessageID.self).map(HistoryAnchor.around),
        ].compactMap { $0 }
        guard anchors.count <= 1 else { throw VestnikError.invalid("Give at most one of before, after and around.") }
        let page = try await services.messages.history(in: chatID, anchor: anchors.first ?? .latest, limit: Int(limit), as: context.session)
        return MessagePage(messages: page.messages, hasMoreBefore: page.hasMoreBefore, hasMoreAfter: page.hasMoreAfter)
    }

    /// POST /api/v1/chats/{chat_id}/messages
    @Sendable func send(_ request: Request, context: AuthenticatedRequestContext) async throws -> EditedResponse<Message> {
        let chatID: ChatID = try context.id("chat_id")
        let body = try await request.decodeJSON(SendMessageRequest.self)
        let (message, created) = try await services.messages.send(OutgoingMessage(body), to: chatID, as: context.session)
        if created { metrics.messagesSent.increment() }
        return EditedResponse(status: created ? .created : .ok, response: message)
    }

    /// GET /api/v1/chats/{chat_id}/pins
    @Sendable func pins(_ request: Request, context: AuthenticatedRequestContext) async throws -> MessageList {
        MessageList(messages: try await services.messages.pins(in: try context.id("chat_id"), as: context.session))
    }

    /// GET /api/v1/messages/{message_id}
    @Sendable func message(_ request: Request, context: AuthenticatedRequestContext) async throws -> Message {
        try await services.messages.message(try context.id("message_id"), as: context.session)
    }

    /// PATCH /api/v1/messages/{message_id}
    @Sendable func edit(_ request: Request, context: AuthenticatedRequestContext) async throws -> Message {
        let messageID: MessageID = try context.id("message_id")
        let body = try await request.decodeJSON(EditMessageRequest.self)
        return try await services.messages.edit(messageID, text: body.text, as: context.session)
    }

    /// DELETE /api/v1/messages/{message_id}
    @Sendable func delete(_ request: Request, context: AuthenticatedRequestContext) async throws -> Message {
        try await services.messages.delete(try context.id("message_id"), as: context.session)
    }

    /// GET /api/v1/messages/{message_id}/edits
    @Sendable func edits(_ request: Request, context: AuthenticatedRequestContext) async throws -> EditHistory {
        let messageID: MessageID = try context.id("message_id")
        return EditHistory(messageID: messageID, versions: try await services.messages.editHistory(messageID, as: context.session))
    }

    /// GET /api/v1/messages/{message_id}/read-by
    @Sendable func readBy(_ request: Request, context: AuthenticatedRequestContext) async throws -> ReadByResponse {
        let messageID: MessageID = try context.id("message_id")
        return ReadByResponse(messageID: messageID, users: try await services.messages.readBy(messageID, as: context.session))
    }

    /// PUT /api/v1/messages/{message_id}/reactions/{emoji}
    @Sendable func addReaction(_ request: Request, context: AuthenticatedRequestContext) async throws -> ReactionsResponse {
        try await react(request, context: context, add: true)
    }

    /// DELETE /api/v1/messages/{message_id}/reactions/{emoji}
    @Sendable func removeReaction(_ request: Request, context: AuthenticatedRequestContext) async throws -> ReactionsResponse {
        try await react(request, context: context, add: false)
    }

    private func react(_ request: Request, context: AuthenticatedRequestContext, add: Bool) async throws -> ReactionsResponse {
        let messageID: MessageID = try context.id("message_id")
        guard let raw = context.parameters.get("emoji") else { throw VestnikError.invalid("An emoji is required.") }
        let emoji = raw.removingPercentEncoding ?? raw
        let reactions = try await services.messages.react(emoji, on: messageID, add: add, as: context.session)
        return ReactionsResponse(messageID: messageID, reactions: reactions)
    }

    /// PUT /api/v1/messages/{message_id}/pin
    @Sendable func pin(_ request: Request, context: AuthenticatedRequestContext) async throws -> HTTPResponse.Status {
        try await services.messages.setPinned(true, message: try context.id("message_id"), as: context.session)
        return .noContent
    }

    /// DELETE /api/v1/messages/{message_id}/pin
    @Sendable func unpin(_ request: Request, context: AuthenticatedRequestContext) async throws -> HTTPResponse.Status {
        try await services.messages.setPinned(false, message: try context.id("message_id"), as: context.session)
        return .noContent
    }
}

extension OutgoingMessage {
    /// A send's body, as `POST /chats/{id}/messages` and the stream's `send` frame carry it.
    init(_ body: SendMessageRequest) {
        self.init(
            text: body.text, clientMessageID: body.clientMessageID, replyTo: body.replyTo, forwardOf: body.forwardOf,
            mentions: body.mentions ?? [])
    }
}
