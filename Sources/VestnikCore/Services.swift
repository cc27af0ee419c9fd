import Foundation
import Crypto
import Logging
import VestnikModel

/// Every domain service, built over one ``CoreContext``. Transports take this bundle.
package struct Services: Sendable {
    package let context: CoreContext
    package let accounts: AccountService
    package let sessions: SessionService
    package let chats: ChatService
    package let messages: MessageService
    package let sync: SyncService
    package let bots: BotService

    package init(
        context: CoreContext, hasher: PasswordHasher, loginLimits: LoginLimits,
        botSecrets: SecretBox = SecretBox(key: .init(size: .bits256))
    ) {
        self.context = context
        let throttle = LoginThrottle(
            store: context.store, limits: loginLimits, secret: botSecrets.derivedKey(for: "vestnik login attempt keys"), logger: context.logger)
        accounts = AccountService(context: context, hasher: hasher, throttle: throttle)
        sessions = SessionService(context: context, hasher: hasher, throttle: throttle)
        chats = ChatService(context: context)
        messages = MessageService(context: context)
        sync = SyncService(context: context)
        bots = BotService(context: context, box: botSecrets, chats: chats, messages: messages)
    }
}
