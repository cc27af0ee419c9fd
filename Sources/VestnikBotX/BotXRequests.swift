import Foundation
import VestnikCore
import VestnikModel

// Request bodies of the BotX methods, decoded with the one JSON dialect (`VestnikJSON`: snake_case
// wire keys ↔ camelCase properties; opaque bot JSON stays byte-exact, see `JSONValue`).
// Unknown keys are ignored, as eXpress does.

/// `notification` of C1/C2 and `reply` of C4, `payload` of C3.
struct BotXMessageBody: Decodable {
    var status: String?
    var body: String?
    var metadata: JSONValue?
    var opts: Options?
    var bubble: [[BotXButton]]?
    var keyboard: [[BotXButton]]?
    var mentions: [BotXMention]?

    struct Options: Decodable {
        var silentResponse: Bool?
        var buttonsAutoAdjust: Bool?
    }
}

struct BotXButton: Decodable {
    var command: String?
    var label: String
    var data: JSONValue?
    var opts: Options?

    struct Options: Decodable {
        var silent: Bool?
        var fontColor: String?
        var backgroundColor: String?
        var align: String?
        var hSize: Int?
        var showAlert: Bool?
        var alertText: String?
        var handler: String?
        var link: String?
    }

    var model: BotButton {
        BotButton(
            command: command, label: label, data: data, silent: opts?.silent ?? false, align: opts?.align, hSize: opts?.hSize,
            fontColor: opts?.fontColor, backgroundColor: opts?.backgroundColor, showAlert: opts?.showAlert, alertText: opts?.alertText,
            handler: opts?.handler, link: opts?.link)
    }
}

struct BotXMention: Decodable {
    var mentionType: String
    var mentionID: String?
    var mentionData: MentionData?

    struct MentionData: Decodable {
        var userHuid: UserID?
        var groupChatID: ChatID?
        var name: String?
    }
}

/// RFC 2397 inline file: `{"file_name","data":"data:<mime>;base64,…"}`.
struct BotXFile: Decodable {
    var fileName: String
    var data: String

    /// The attachment, or a failure when the data URL is malformed or over `limit` bytes.
    func attachment(limit: Int) throws -> Attachment {
        guard fileName.utf8.count <= 255, !fileName.isEmpty else { throw BotXFailure.malformed("file_name must be 1–255 bytes.") }
        // The name reaches clients that save the file: no directories, no control characters.
        guard !fileName.unicodeScalars.contains(where: { $0 == "/" || $0 == "\\" || $0.properties.generalCategory == .control }),
            fileName != ".", fileName != ".."
        else { throw BotXFailure.malformed("file_name must be a plain file name.") }
        guard data.utf8.count <= (limit / 3 + 1) * 4 + 256 else {
            throw BotXFailure(.contentTooLarge, "payload_too_large", "Inline files are at most \(limit / 1024) KiB.")
        }
        guard data.hasPrefix("data:"), let comma = data.firstIndex(of: ",") else { throw BotXFailure.malformed("file.data must be a data URL.") }
        let header = data[data.index(data.startIndex, offsetBy: 5)..<comma]
        guard header.hasSuffix(";base64") else { throw BotXFailure.malformed("file.data must be base64.") }
        let mime = String(header.dropLast(";base64".count)).lowercased()
        guard mime.isEmpty || Self.isMIMEType(mime) else { throw BotXFailure.malformed("file.data has an invalid media type.") }
        let base64 = String(data[data.index(after: comma)...])
        guard let decoded = Data(base64Encoded: base64) else { throw BotXFailure.malformed("file.data is not valid base64.") }
        guard decoded.count <= limit else { throw BotXFailure(.contentTooLarge, "payload_too_large", "Inline files are at most \(limit / 1024) KiB.") }
        let type =
            mime.hasPrefix("image/") ? "image" : mime.hasPrefix("video/") ? "video" : mime.hasPrefix("audio/") ? "voice" : "document"
        return Attachment(
            type: type, fileName: fileName, mimeType: mime.isEmpty ? "application/octet-stream" : mime, size: decoded.count, data: base64)
    }

    /// `type/subtype` of RFC 6838 restricted names (no parameters): it is echoed into data URLs
    /// and `Content-Type` headers, so nothing else may pass.
    static func isMIMEType(_ value: String) -> Bool {
        let parts = value.split(separator: "/", omittingEmptySubsequences: false)
        guard value.utf8.count <= 127, parts.count == 2 else { return false }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789!#$&^_.+-")
        return parts.allSatisfy { part in
            guard let first = part.first, first.isASCII, first.isLetter || first.isNumber else { return false }
            return part.allSatisfy { allowed.contains($0) }
        }
    }
}

/// `opts` at the top of C1/C4.
struct BotXSendOptions: Decodable {
    var stealthMode: Bool?
    var rawMentions: Bool?
}

/// C1/C2 `POST /api/v4/botx/notifications/direct[/sync]`.
struct BotXNotificationRequest: Decodable {
    var groupChatID: ChatID
    var notification: BotXMessageBody
    var file: BotXFile?
    var recipients: [UserID]?
    var opts: BotXSendOptions?
}

/// C4 `POST /api/v3/botx/events/reply_event`.
struct BotXReplyRequest: Decodable {
    var sourceSyncID: MessageID
    var reply: BotXMessageBody
    var file: BotXFile?
    var opts: BotXSendOptions?
}

/// C3 `POST /api/v3/botx/events/edit_event`: only the given fields change; `"file": null` removes
/// the attachment (absent keeps it).
struct BotXEditRequest: Decodable {
    var syncID: MessageID
    var payload: BotXMessageBody?
    /// nil: keep; `.some(nil)`: remove; `.some(file)`: replace.
    var file: BotXFile??

    private enum CodingKeys: String, CodingKey { case syncID, payload, file }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        syncID = try c.decode(MessageID.self, forKey: .syncID)
        payload = try c.decodeIfPresent(BotXMessageBody.self, forKey: .payload)
        if c.contains(.file) {
            file = .some(try c.decodeNil(forKey: .file) ? nil : try c.decode(BotXFile.self, forKey: .file))
        } else {
            file = nil
        }
    }
}

struct BotXSyncIDRequest: Decodable { var syncID: MessageID }
struct BotXChatRequest: Decodable { var groupChatID: ChatID }

/// C9 `POST /api/v3/botx/chats/create`.
struct BotXCreateChatRequest: Decodable {
    var name: String
    var description: String?
    var chatType: String
    var members: [UserID]
    var sharedHistory: Bool?
}

struct BotXUsersRequest: Decodable {
    var groupChatID: ChatID
    var userHuids: [UserID]
}

struct BotXEmailsRequest: Decodable { var emails: [String] }

struct BotXPinRequest: Decodable {
    var chatID: ChatID
    var syncID: MessageID?
}

/// `POST /api/v4/botx/notifications/internal`.
struct BotXInternalNotificationRequest: Decodable {
    var groupChatID: ChatID
    var data: JSONValue
    var opts: JSONValue?
    var recipients: [UserID]?
}

/// `POST /api/v3/botx/chats/stealth_set`.
struct BotXStealthRequest: Decodable {
    var groupChatID: ChatID
    var disableWeb: Bool?
    var burnIn: Int?
    var expireIn: Int?
}

/// `POST /api/v3/botx/metrics/bot_function`.
struct BotXMetricRequest: Decodable {
    var groupChatID: ChatID
    var userHuids: [UserID]
    var botFunction: String
}
