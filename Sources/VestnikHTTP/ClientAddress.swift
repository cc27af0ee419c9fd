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
/// Only exact addresses can be trusted (no ranges): list every proxy the nodes see.
package struct TrustedProxies: Sendable {
    private let addresses: Set<String>

    /// - Parameter addresses: IP addresses (v4 or v6), as ``normalizedAddress(_:)`` accepts them.
    /// - Returns: nil if any of them is not an IP address.
    package init?(_ addresses: [String]) {
        var normalized = Set<String>()
        for address in addresses {
            guard let value = Self.normalizedAddress(address) else { return nil }
            normalized.insert(value)
        }
        self.addresses = normalized
    }

    /// No proxy is trusted: every request's address is its socket peer's.
    package static let none = TrustedProxies(addresses: [])

    private init(addresses: Set<String>) { self.addresses = addresses }

    package var isEmpty: Bool { addresses.isEmpty }

    /// Whether a trusted proxy is on this host's loopback (then a loopback peer may be anyone).
    package var containsLoopback: Bool { addresses.contains(where: Self.isLoopback) }

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
        guard addresses.contains(peer) else { return Self.limitingKey(peer) }
        // Several header lines form one list, in order.
        let entries = values.joined(separator: ",").split(separator: ",", omittingEmptySubsequences: false)
        for entry in entries.reversed().prefix(Self.maxForwardedEntries) {
            guard let address = Self.normalizedAddress(Self.strippingPort(entry.trimmingCharacters(in: .whitespaces))) else { break }
            if !addresses.contains(address) { return Self.limitingKey(address) }
        }
        return Self.limitingKey(peer)
    }

    /// What limits count per: an IPv4 address, or the /64 network of an IPv6 address (one
    /// subscriber usually holds a whole /64, so single addresses would be free for the taking).
    package static func limitingKey(_ address: String) -> String {
        var v6 = in6_addr()
        guard address.contains(":"), !address.utf8.contains(0), inet_pton(AF_INET6, address, &v6) == 1 else { return address }
        withUnsafeMutableBytes(of: &v6) { bytes in
            for index in 8..<16 { bytes[index] = 0 }
        }
        return (withUnsafeBytes(of: &v6) { format(family: AF_INET6, $0, length: INET6_ADDRSTRLEN) } ?? address) + "/64"
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
        guard !text.isEmpty, text.utf8.count <= 64, !text.utf8.contains(0) else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { format(family: AF_INET, $0, length: INET_ADDRSTRLEN) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return bytes[12..<16].map(String.init).joined(separator: ".")
        }
        return withUnsafeBytes(of: &v6) { format(family: AF_INET6, $0, length: INET6_ADDRSTRLEN) }
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
