import Foundation

extension VestnikClient {
    /// `GET /api/v1/chats/{chat_id}/bot-commands`: the command menus of the chat's bots.
    public func botCommands(chatID: ChatID) async throws -> BotCommandsResponse {
        try await request(.get, "/chats/\(chatID)/bot-commands")
    }

    /// `POST /api/v1/messages/{message_id}/press`: presses a button of a bot message.
    ///
    /// - Parameter button: the label, the command, or the 1-based position (bubble first).
    /// - Returns: the message the press put in the chat; nil for silent buttons.
    @discardableResult
    public func pressButton(messageID: MessageID, button: String) async throws -> Message? {
        let response: PressButtonResponse = try await request(.post, "/messages/\(messageID)/press", body: PressButtonRequest(button: button))
        return response.message
    }
}
