import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import VestnikCore
import VestnikModel

/// An error of the BotX API with its wire form: HTTP status, `reason`, and `error_data`.
package struct BotXFailure: Error, Sendable {
    package var status: HTTPResponse.Status
    package var reason: String
    package var description: String
    package var errorData: [String: JSONValue]

    package init(_ status: HTTPResponse.Status, _ reason: String, _ description: String, errorData: [String: JSONValue] = [:]) {
        self.status = status
        self.reason = reason
        self.description = description
        self.errorData = errorData
    }

    static func unverified(_ why: String) -> BotXFailure {
        BotXFailure(.unauthorized, "unverified_request", why, errorData: ["status_message": .string(why)])
    }

    static func malformed(_ why: String) -> BotXFailure { BotXFailure(.badRequest, "malformed_request", why) }

    static func unsupported(_ what: String) -> BotXFailure {
        BotXFailure(.notImplemented, "not_implemented", "\(what) is not available on this server.")
    }

    /// The error envelope: `{"status":"error","reason","errors":[],"error_data":{…}}`.
    var envelope: JSONValue {
        var data = errorData
        if data["error_description"] == nil, data["status_message"] == nil { data["error_description"] = .string(description) }
        return .object(["status": .string("error"), "reason": .string(reason), "errors": .array([]), "error_data": .object(data)])
    }
}

/// The one place where domain errors become BotX errors (status and `reason`), for the BotX
/// routes and for error callbacks of async methods. The Vestnik API has its own mapping
/// (`VestnikHTTP.ErrorMiddleware`); the envelopes differ, the domain codes are the same.
package enum BotXErrors {
    /// The BotX form of any error thrown while serving a bot.
    static func failure(for error: any Error, chatID: ChatID? = nil) -> BotXFailure {
        if let failure = error as? BotXFailure { return failure }
        if let domain = VestnikError.reaching(error) {
            return failure(code: domain.code.rawValue, message: domain.message, chatID: chatID)
        }
        switch error {
        case let error as HTTPError:
            if error.status == .contentTooLarge { return BotXFailure(.contentTooLarge, "payload_too_large", "The request body is too large.") }
            if error.status == .notFound { return BotXFailure(.notFound, "not_found", "No such BotX method.") }
            return BotXFailure(error.status, "malformed_request", error.body ?? error.status.reasonPhrase)
        case is NIOTooManyBytesError:
            return BotXFailure(.contentTooLarge, "payload_too_large", "The request body is too large.")
        case is DecodingError:
            return .malformed("The request body does not match the method's schema.")
        default:
            return BotXFailure(.internalServerError, "internal_error", "Internal error.")
        }
    }

    /// Maps a ``VestnikError`` code (as stored in callback jobs) to a BotX error.
    static func failure(code: String, message: String, chatID: ChatID?) -> BotXFailure {
        var data: [String: JSONValue] = ["error_description": .string(message)]
        if let chatID { data["group_chat_id"] = .string(chatID.description) }
        let (status, reason): (HTTPResponse.Status, String) =
            switch code {
            case VestnikError.Code.chatNotFound.rawValue: (.notFound, "chat_not_found")
            case VestnikError.Code.messageNotFound.rawValue: (.notFound, "event_not_found")
            case VestnikError.Code.userNotFound.rawValue: (.notFound, "user_not_found")
            case VestnikError.Code.notFound.rawValue: (.notFound, "not_found")
            case VestnikError.Code.notChatAdmin.rawValue, VestnikError.Code.forbidden.rawValue, VestnikError.Code.channelReadOnly.rawValue,
                VestnikError.Code.notMessageAuthor.rawValue, VestnikError.Code.accountBlocked.rawValue:
                (.forbidden, "no_permission_for_operation")
            case VestnikError.Code.recipientsEmpty.rawValue: (.badRequest, "event_recipients_list_is_empty")
            case VestnikError.Code.stealthDisabled.rawValue: (.badRequest, "stealth_mode_disabled")
            case VestnikError.Code.payloadTooLarge.rawValue: (.contentTooLarge, "payload_too_large")
            case VestnikError.Code.rateLimited.rawValue: (.tooManyRequests, "too_many_requests")
            case VestnikError.Code.messageDeleted.rawValue: (.conflict, "event_already_deleted")
            case VestnikError.Code.conflict.rawValue, VestnikError.Code.lastAdmin.rawValue: (.conflict, "conflict")
            case VestnikError.Code.unauthenticated.rawValue: (.unauthorized, "unverified_request")
            // The database is unreachable (decision 0014). Not `bot_disabled`: that is what a
            // bot answers about itself, and a disabled bot's own calls end at authentication
            // (401); eXpress names failures of its backend `error_from_messaging_service`.
            case VestnikError.Code.unavailable.rawValue: (.serviceUnavailable, "error_from_messaging_service")
            case VestnikError.Code.invalidRequest.rawValue, VestnikError.Code.invalidJSON.rawValue: (.badRequest, "malformed_request")
            default: (.internalServerError, "internal_error")
            }
        return BotXFailure(status, reason, status == .internalServerError ? "Internal error." : message, errorData: data)
    }
}

/// Turns every error on the BotX routes into a BotX error envelope, so pybotx raises its
/// documented exceptions (it picks them by status and `reason`).
struct BotXErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let failure = BotXErrors.failure(for: error)
            if failure.status == .internalServerError {
                context.logger.error("BotX request failed", metadata: ["vestnik.error": "\(error)"])
            }
            return BotXResponse.json(failure.envelope, status: failure.status)
        }
    }
}

/// JSON responses of the BotX API, in the one JSON dialect.
enum BotXResponse {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? VestnikJSON.encode(value)) ?? Data(#"{"status":"error","reason":"internal_error","errors":[],"error_data":{}}"#.utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `{"status":"ok","result":…}`.
    static func ok(_ result: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        json(.object(["status": .string("ok"), "result": result]), status: status)
    }
}
