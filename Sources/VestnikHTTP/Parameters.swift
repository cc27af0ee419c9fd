import Foundation
import Hummingbird
import VestnikAPI
import VestnikCore

extension RequestContext {
    /// A typed id from the path; a malformed id is `invalid_request`.
    func id<Tag>(_ name: String, as: Identifier<Tag>.Type = Identifier<Tag>.self) throws -> Identifier<Tag> {
        guard let raw = parameters.get(name), let id = Identifier<Tag>(raw) else {
            throw VestnikError.invalid("The \(name) in the path is not a valid id.")
        }
        return id
    }
}

extension Request {
    /// An integer query parameter within `range`, or nil when absent.
    func queryInt(_ name: String, in range: ClosedRange<Int64>) throws -> Int64? {
        guard let raw = uri.queryParameters[name[...]] else { return nil }
        guard let value = Int64(String(raw)), range.contains(value) else {
            throw VestnikError.invalid("The query parameter \(name) must be an integer in \(range.lowerBound)…\(range.upperBound).")
        }
        return value
    }

    /// A typed id query parameter, or nil when absent.
    func queryID<Tag>(_ name: String, as: Identifier<Tag>.Type = Identifier<Tag>.self) throws -> Identifier<Tag>? {
        guard let raw = uri.queryParameters[name[...]] else { return nil }
        guard let id = Identifier<Tag>(String(raw)) else { throw VestnikError.invalid("The query parameter \(name) is not a valid id.") }
        return id
    }

    func queryString(_ name: String) -> String? {
        uri.queryParameters[name[...]].map { String($0) }
    }
}

// Wire types are sent as JSON responses with the context's Vestnik encoder.
extension LoginResponse: ResponseEncodable {}
extension SessionList: ResponseEncodable {}
extension UserProfile: ResponseEncodable {}
extension UserList: ResponseEncodable {}
extension User: ResponseEncodable {}
extension ChatDetails: ResponseEncodable {}
extension ChatList: ResponseEncodable {}
extension Chat: ResponseEncodable {}
extension ChatMember: ResponseEncodable {}
extension MemberList: ResponseEncodable {}
extension ReadPosition: ResponseEncodable {}
extension Message: ResponseEncodable {}
extension MessagePage: ResponseEncodable {}
extension EditHistory: ResponseEncodable {}
extension ReactionsResponse: ResponseEncodable {}
extension ReadByResponse: ResponseEncodable {}
extension MessageList: ResponseEncodable {}
extension HealthResponse: ResponseEncodable {}
extension EventPage: ResponseEncodable {}
