import Foundation
import VestnikModel

/// What nodes tell each other about ephemeral state (never stored).
package enum EphemeralSignal: Sendable, Hashable, Codable {
    /// A user is typing in a chat.
    case typing(chatID: ChatID, userID: UserID)
    /// A user's first connection to the sending node opened (`online`) or its last one closed.
    case presence(userID: UserID, online: Bool)
    /// The sending node is alive; nodes not heard from for a while are forgotten.
    case alive
}

/// A signal with the node that sent it.
package struct EphemeralEnvelope: Sendable, Hashable, Codable {
    package var node: String
    package var signal: EphemeralSignal
    package init(node: String, signal: EphemeralSignal) {
        self.node = node
        self.signal = signal
    }
}

/// Carries ephemeral signals to the other nodes of a deployment (PostgreSQL `NOTIFY` in cluster
/// mode; nothing on a single node). Best effort by design: typing and presence are hints.
package protocol EphemeralRelay: Sendable {
    /// This node's id, to ignore its own signals when they come back.
    var nodeID: String { get }
    func send(_ signal: EphemeralSignal) async
}
