import Foundation
import Hummingbird
import VestnikAPI
import VestnikCore

/// What users do with bots through the Vestnik API: read command menus, press buttons.
struct BotController {
    let services: Services

    func addRoutes(to group: RouterGroup<AuthenticatedRequestContext>) {
        group.get("chats/:chat_id/bot-commands", use: commands)
        group.post("messages/:message_id/press", use: press)
    }

    /// GET /api/v1/chats/{chat_id}/bot-commands
    @Sendable func commands(_ request: Request, context: AuthenticatedRequestContext) async throws -> BotCommandsResponse {
        let menus = try await services.bots.commands(in: try context.id("chat_id"), as: context.session)
        return BotCommandsResponse(bots: menus.map { BotCommandsResponse.Entry(bot: $0.0, commands: $0.1) })
    }

    /// POST /api/v1/messages/{message_id}/press
    @Sendable func press(_ request: Request, context: AuthenticatedRequestContext) async throws -> PressButtonResponse {
        let body = try await request.decodeJSON(PressButtonRequest.self)
        guard !body.button.isEmpty, body.button.utf8.count <= 512 else { throw VestnikError.invalid("button must be 1–512 bytes.") }
        let shown = try await services.bots.press(try context.id("message_id"), button: body.button, as: context.session)
        return PressButtonResponse(message: shown)
    }
}

extension BotCommandsResponse: ResponseEncodable {}
extension PressButtonResponse: ResponseEncodable {}
