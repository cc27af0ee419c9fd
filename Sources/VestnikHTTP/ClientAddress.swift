import Foundation
import HTTPTypes
import Hummingbird
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The reverse proxies whose `X-Forwarded-For` is believed, and how a client's address is found.
///
/// Why: login attempts are limited per client address. Behind nginx or HAProxy every request
/// comes from the proxy, so without this all users of a deployment share one address's budget
/// (100 failed logins per 5 minutes, spent by a morning's typos) and one attacker is not told
/// apart from everyone else. With the proxies named, the address is the rightmost entry of
/// `X-Forwarded-For` that is not itself a trusted proxy: proxies append the peer they saw, so
/// entries further left are whatever the client wrote, and only the one a trusted proxy appended
/// can be believed. Anything unparsable there makes the proxy's own address count instead.
/// Requests from other peers keep their socket address, whatever headers they send.
///
/// Proxies are named by address (`10.0.0.5`) or by network (`10.0.0.0/24`, `fd00::/64`), for
/// proxies whose addresses change (containers, autoscaled load balancers) within a known range.
package struct TrustedProxies: Sendable {
    /// One address range: an address's first `prefixLength` bits.
    struct Network: Sendable, Equatable {
        /// 4 bytes for IPv4, 16 for IPv6; the bits after the prefix are zero.
        let bytes: [UInt8]
        let prefixLength: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            let whole = prefixLength / 8
            guard address[..<whole] == bytes[..<whole] else { return false }
            let rest = prefixLength % 8
            guard rest > 0 else { return true }
            let mask = UInt8(0xff) << (8 - rest)
            return address[whole] & mask == bytes[whole]
        }

        /// `10.0.0.5`, `10.0.0.0/24`, `2001:db8::/32`; nil for anything else, for a network whose
        /// address has bits set after its prefix (`10.0.0.1/24`: a typo for `/32` or for
        /// `10.0.0.0/24`, which would trust different hosts), and for a prefix of 0, which would
        /// let any client choose the address it is counted under.
        init?(_ text: String) {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let bytes = TrustedProxies.addressBytes(String(parts[0])) else { return nil }
            var prefixLength = bytes.count * 8
            if parts.count == 2 {
                let digits = parts[1]
                guard !digits.isEmpty, digits.count <= 3, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let length = Int(digits)
                else { return nil }
                // `::ffff:10.0.0.0/104` is written for IPv4 peers, which are compared as IPv4.
                let mappedIPv4 = bytes.count == 4 && parts[0].contains(":")
                prefixLength = mappedIPv4 ? length - 96 : length
                guard prefixLength >= 1, prefixLength <= bytes.count * 8 else { return nil }
            }
            let network = Network(bytes: bytes, prefixLength: prefixLength)
            guard network.masked == network.bytes else { return nil }
            self = network
        }

        fileprivate init(bytes: [UInt8], prefixLength: Int) {
            self.bytes = bytes
            self.prefixLength = prefixLength
        }

        /// The bytes with every bit after the prefix cleared.
        private var masked: [UInt8] {
            var result = bytes
            for index in result.indices {
                let bitsBefore = index * 8
                if bitsBefore >= prefixLength {
                    result[index] = 0
                } else if prefixLength - bitsBefore < 8 {
                    result[index] &= UInt8(0xff) << (8 - (prefixLength - bitsBefore))
                }
            }
            return result
        }
    }

    private let networks: [Network]

    /// - Parameter entries: IP addresses (v4 or v6) and networks in CIDR notation.
    /// - Returns: nil if any of them is neither (``invalidEntries(_:)`` names them).
    package init?(_ entries: [String]) {
        var networks: [Network] = []
        for entry in entries {
            guard let network = Network(entry) else { return nil }
            if !networks.contains(network) { networks.append(network) }
        }
        self.networks = networks
    }

    /// The entries ``init(_:)`` refuses, for the message that says which.
    package static func invalidEntries(_ entries: [String]) -> [String] {
        entries.filter { Network($0) == nil }
    }

    /// No proxy is trusted: every request's address is its socket peer's.
    package static let none = TrustedProxies(networks: [])

    private init(networks: [Network]) { self.networks = networks }

    package var isEmpty: Bool { networks.isEmpty }

    /// Whether a trusted proxy may be on this host's loopback (then a loopback peer may be anyone).
    package var containsLoopback: Bool {
        let loopbackIPv4 = Network(bytes: [127, 0, 0, 0], prefixLength: 8)
        let loopbackIPv6: [UInt8] = Array(repeating: 0, count: 15) + [1]
        return networks.contains { network in
            network.contains(loopbackIPv6) || network.contains(loopbackIPv4.bytes) || loopbackIPv4.contains(network.bytes)
        }
    }

    private func isTrusted(_ address: String) -> Bool {
        guard let bytes = Self.addressBytes(address) else { return false }
        return networks.contains { $0.contains(bytes) }
    }

    /// Whether a normalised address is this host's loopback (`127.0.0.0/8` or `::1`).
    package static func isLoopback(_ address: String) -> Bool {
        address == "::1" || (address.hasPrefix("127.") && !address.contains(":"))
    }

    /// At most this many `X-Forwarded-For` entries are looked at (a chain of proxies is short).
    static let maxForwardedEntries = 16

    /// The client's address for a request from `peer` carrying these `X-Forwarded-For` values,
    /// as ``limitingKey(_:)`` reduces it.
    package func clientAddress(peer: String, forwardedFor values: [String]) -> String {
        let peer = Self.normalizedAddress(peer) ?? peer
        guard isTrusted(peer) else { return Self.limitingKey(peer) }
        // Several header lines form one list, in order.
        let entries = values.joined(separator: ",").split(separator: ",", omittingEmptySubsequences: false)
        for entry in entries.reversed().prefix(Self.maxForwardedEntries) {
            guard let address = Self.normalizedAddress(Self.strippingPort(entry.trimmingCharacters(in: .whitespaces))) else { break }
            if !isTrusted(address) { return Self.limitingKey(address) }
        }
        return Self.limitingKey(peer)
    }

    /// What limits count per: an IPv4 address, or the /64 network of an IPv6 address (one
    /// subscriber usually holds a whole /64, so single addresses would be free for the taking).
    package static func limitingKey(_ address: String) -> String {
        guard var bytes = addressBytes(address), bytes.count == 16 else { return address }
        for index in 8..<16 { bytes[index] = 0 }
        return (bytes.withUnsafeBytes { format(family: AF_INET6, $0, length: INET6_ADDRSTRLEN) } ?? address) + "/64"
    }

    /// `1.2.3.4:5678` → `1.2.3.4`, `[2001:db8::1]:443` → `2001:db8::1` (some proxies add ports).
    static func strippingPort(_ entry: String) -> String {
        if entry.hasPrefix("["), let close = entry.firstIndex(of: "]") {
            return String(entry[entry.index(after: entry.startIndex)..<close])
        }
        if entry.filter({ $0 == ":" }).count == 1, let colon = entry.firstIndex(of: ":") {
            return String(entry[..<colon])
        }
        return entry
    }

    /// The canonical text of an IPv4 or IPv6 address (`::ffff:10.0.0.1` → `10.0.0.1`), or nil.
    package static func normalizedAddress(_ text: String) -> String? {
        guard let bytes = addressBytes(text) else { return nil }
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return bytes.withUnsafeBytes { format(family: AF_INET6, $0, length: INET6_ADDRSTRLEN) }
    }

    /// An address's bytes: 4 for IPv4 and for IPv4-mapped IPv6 (`::ffff:10.0.0.1`), which is
    /// how a dual-stack socket reports an IPv4 peer; 16 for other IPv6. Nil if it is neither.
    static func addressBytes(_ text: String) -> [UInt8]? {
        guard !text.isEmpty, text.utf8.count <= 64, !text.utf8.contains(0) else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff { return Array(bytes[12..<16]) }
        return bytes
    }

    /// `address` holds an `in_addr` or `in6_addr` (plain bytes).
    private static func format(family: Int32, _ address: UnsafeRawBufferPointer, length: Int32) -> String? {
        guard let base = address.baseAddress else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(length))
        guard inet_ntop(family, base, &buffer, socklen_t(length)) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Sets ``VestnikRequestContext/clientAddress`` from `X-Forwarded-For` for requests that come
/// through a trusted proxy (``TrustedProxies``).
struct ClientAddressMiddleware: RouterMiddleware {
    typealias Context = VestnikRequestContext
    let proxies: TrustedProxies
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!  // safe: a valid field name literal

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.forwardedClientAddress = proxies.clientAddress(peer: context.peerAddress, forwardedFor: request.headers[values: Self.forwardedFor])
        return try await next(request, context)
    }
}
