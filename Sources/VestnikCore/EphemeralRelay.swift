import Foundation
import VestnikModel

/// What nodes tell each other about ephemeral state (never stored).
///
/// The presence versions are optional so that nodes of the previous release, which send none,
/// are still understood during a rolling upgrade (their changes are applied as they come).
package enum EphemeralSignal: Sendable, Hashable, Codable {
    /// A user is typing in a chat.
    case typing(chatID: ChatID, userID: UserID)
    /// A user's first connection to the sending node opened (`online`) or its last one closed;
    /// `version` numbers the sending node's changes (see ``ClusterPresence``).
    case presence(userID: UserID, online: Bool, version: UInt64?)
    /// The sending node is alive, its newest presence version and its heartbeat interval; a node
    /// not heard from for three of its intervals is forgotten. `beat` numbers the sender's
    /// heartbeats, so that the sender, hearing its own come back, knows when it sent that one.
    case alive(presenceVersion: UInt64?, intervalMilliseconds: Int?, beat: UInt64? = nil)
    /// Asks `node` (every node when nil) to send its roster.
    case rosterRequest(node: String?)
    /// One part of the sending node's roster: the users connected to it at `version`.
    case roster(version: UInt64, part: Int, parts: Int, users: [UserID])
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
