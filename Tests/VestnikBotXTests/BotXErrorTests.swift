import Testing
import VestnikCore
import VestnikModel

@testable import VestnikBotX

/// How domain and store errors reach a bot (status and `reason`, which pybotx picks its
/// exceptions by).
@Suite struct BotXErrorTests {
    @Test("an unreachable database is 503 error_from_messaging_service, not bot_disabled, and its detail stays in the log")
    func unreachableDatabase() {
        let outage = StoreError.unavailable("connection refused by 10.0.0.7:5432")
        for error: any Error in [outage, outage.mapped("Internal error.")] {
            let failure = BotXErrors.failure(for: error)
            #expect(failure.status == .serviceUnavailable, "\(error)")
            #expect(failure.reason == "error_from_messaging_service", "\(error)")
            #expect(!failure.description.contains("10.0.0.7"), "\(failure.description)")
        }
    }

    @Test("a request cut off by the server's shutdown is 503, as at the HTTP edge")
    func shutdown() {
        let failure = BotXErrors.failure(for: CancellationError())
        #expect(failure.status == .serviceUnavailable && failure.reason == "error_from_messaging_service")
    }

    @Test("a store failure that is not an outage is 500 internal_error without its detail")
    func storeBackendFailure() {
        let failure = BotXErrors.failure(for: StoreError.backend("SQLITE_CORRUPT in messages"))
        #expect(failure.status == .internalServerError)
        #expect(failure.reason == "internal_error")
        #expect(failure.description == "Internal error.")
    }

    @Test("domain errors keep their BotX reasons")
    func domainErrors() {
        let chat = ChatID.random()
        let missing = BotXErrors.failure(for: VestnikError(.chatNotFound, "No such chat."), chatID: chat)
        #expect(missing.status == .notFound && missing.reason == "chat_not_found")
        #expect(missing.errorData["group_chat_id"] == .string(chat.description))
        let forbidden = BotXErrors.failure(for: VestnikError(.notChatAdmin, "Only admins."))
        #expect(forbidden.status == .forbidden && forbidden.reason == "no_permission_for_operation")
    }
}
