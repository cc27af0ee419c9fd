import Crypto
import Foundation
import Synchronization
import VestnikModel

/// HS256 JSON Web Tokens as BotX uses them (pybotx `auth.py`), in both directions.
///
/// Hand-written over swift-crypto's `HMAC<SHA256>` (decision 0004): the format is fixed and
/// small, and a JWT library would bring algorithm negotiation we must not allow anyway.
package enum BotXToken {
    /// The v2 claims. `aud` is the BotX host name (no scheme, no port).
    package struct Claims: Codable, Sendable, Equatable {
        package var iss: String
        package var aud: String
        package var exp: Int64
        package var nbf: Int64
        package var jti: String
        package var iat: Int64
        package var version: Int
        /// Set on tokens this server issues at the v1 token endpoint (reusable until `exp`).
        package var typ: String?

        package init(iss: String, aud: String, exp: Int64, nbf: Int64, jti: String, iat: Int64, version: Int = 2, typ: String? = nil) {
            self.iss = iss
            self.aud = aud
            self.exp = exp
            self.nbf = nbf
            self.jti = jti
            self.iat = iat
            self.version = version
            self.typ = typ
        }
    }

    /// Why a token was refused; the message goes to the bot in `error_data.status_message`.
    package struct Rejection: Error, Equatable, CustomStringConvertible {
        package let description: String
        init(_ description: String) { self.description = description }
    }

    /// Signs claims with the bot's secret key (the raw UTF-8 string, as pybotx does).
    ///
    /// Keys appear in pybotx's order (`iss, aud, exp, nbf, jti, iat, version`), so the reference's
    /// test vector reproduces byte for byte.
    package static func sign(_ claims: Claims, secret: String) -> String {
        sign(claims, key: SymmetricKey(data: Data(secret.utf8)))
    }

    /// Signs claims with any HS256 key (the server's v1 token key, or a bot secret).
    package static func sign(_ claims: Claims, key: SymmetricKey) -> String {
        let header = #"{"alg":"HS256","typ":"JWT"}"#
        var payload = #"{"iss":\#(quote(claims.iss)),"aud":\#(quote(claims.aud)),"exp":\#(claims.exp),"nbf":\#(claims.nbf),"#
        payload += #""jti":\#(quote(claims.jti)),"iat":\#(claims.iat),"version":\#(claims.version)"#
        if let typ = claims.typ { payload += #","typ":\#(quote(typ))"# }
        payload += "}"
        let signingInput = base64URL(Data(header.utf8)) + "." + base64URL(Data(payload.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: key)
        return signingInput + "." + base64URL(Data(mac))
    }

    /// A fresh v2 token for one request to a bot: valid 60 s from now, marked as server→bot.
    package static func mintForBot(bot: UserID, audience: String, secret: String, now: Date = Date()) -> String {
        mint(bot: bot, audience: audience, secret: secret, now: now, typ: serverToBotType)
    }

    /// A v2 token as a bot makes it for its own requests (what pybotx does); tools and tests.
    package static func mint(bot: UserID, audience: String, secret: String, now: Date = Date(), typ: String? = nil) -> String {
        let iat = Int64(now.timeIntervalSince1970)
        return sign(Claims(iss: bot.description, aud: audience, exp: iat + 60, nbf: iat, jti: randomHex(bytes: 12), iat: iat, typ: typ), secret: secret)
    }

    private static func randomHex(bytes: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in UInt8.random(in: 0...255, using: &rng) }.hexString
    }

    /// `typ` of the tokens this server sends to bots. They are signed with the bot's own secret and
    /// travel to the bot's URL (possibly plain http, through proxies and logs), so ``verify`` must
    /// never accept one as the bot's credential. PyJWT on the bot side ignores the extra claim.
    package static let serverToBotType = "cts"

    /// `typ` of the tokens the v1 endpoint issues. They are signed with the server's v1 key, not
    /// the bot's secret, so a bot cannot make one itself: only these get the 24 h lifetime and
    /// skip the single-use `jti` check.
    package static let v1Type = "v1"

    /// How long a v1 token lives (pybotx caches it and asks again after a 401).
    package static let v1Lifetime: Int64 = 24 * 3600

    /// A v1 token for `bot`, signed with the server's v1 key for that bot.
    package static func issueV1(bot: UserID, audience: String, key: SymmetricKey, now: Date = Date()) -> String {
        let iat = Int64(now.timeIntervalSince1970)
        return sign(Claims(iss: bot.description, aud: audience, exp: iat + v1Lifetime, nbf: iat, jti: randomHex(bytes: 16), iat: iat, typ: v1Type), key: key)
    }

    private struct Header: Decodable { var alg: String }

    /// The issuer claim without verifying anything (to find which bot's key to verify with).
    package static func unverifiedIssuer(_ token: String) throws -> UserID {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = base64URLDecode(parts[1]),
            let claims = try? VestnikJSON.decode(Claims.self, from: payload)
        else { throw Rejection("Malformed token.") }
        guard let bot = UserID(claims.iss) else { throw Rejection("Unknown issuer.") }
        return bot
    }

    /// Verifies a token: HS256 only, signature (constant time), issuer, audience, time window.
    ///
    /// A token whose claims say `typ: "v1"` is checked against `v1Key` (the server's key for this
    /// bot) and nothing else: signed with the bot's own secret it is refused, so a bot cannot give
    /// itself the long v1 lifetime or the exemption from the `jti` check.
    ///
    /// - Parameters:
    ///   - leeway: seconds of clock skew tolerated on `exp` and `nbf`.
    ///   - maxLifetime: longest `exp - iat` accepted for bot-minted tokens (pybotx uses 60 s).
    ///   - v1Key: the key v1 tokens of this bot are signed with; nil refuses v1 tokens.
    /// - Returns: the claims, for the replay check.
    package static func verify(
        _ token: String, bot: UserID, secret: String, audience: String, now: Date = Date(), leeway: Int64 = 5, maxLifetime: Int64 = 3600,
        allowServerToBot: Bool = false, v1Key: SymmetricKey? = nil
    ) throws -> Claims {
        guard token.utf8.count <= 4096 else { throw Rejection("Token too long.") }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = base64URLDecode(parts[0]), let payloadData = base64URLDecode(parts[1]),
            let signature = base64URLDecode(parts[2])
        else { throw Rejection("Malformed token.") }
        guard let header = try? VestnikJSON.decode(Header.self, from: headerData), header.alg == "HS256" else {
            throw Rejection("Unsupported algorithm.")
        }
        // The claims are read before the signature is checked only to pick the key; nothing in
        // them is trusted until the signature under that key verifies.
        guard let claims = try? VestnikJSON.decode(Claims.self, from: payloadData) else { throw Rejection("Malformed claims.") }
        let isV1 = claims.typ == v1Type
        let key: SymmetricKey
        if isV1 {
            guard let v1Key else { throw Rejection("Signature verification failed.") }
            key = v1Key
        } else {
            key = SymmetricKey(data: Data(secret.utf8))
        }
        let signingInput = Data((parts[0] + "." + parts[1]).utf8)
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key) else {
            throw Rejection("Signature verification failed.")
        }
        guard UserID(claims.iss) == bot else { throw Rejection("Invalid issuer.") }
        guard claims.aud == audience else { throw Rejection("Invalid audience.") }
        guard allowServerToBot || claims.typ != serverToBotType else { throw Rejection("Tokens sent to bots are not credentials.") }
        let nowSeconds = Int64(now.timeIntervalSince1970)
        // Every time claim is bounded before any arithmetic: an Int64 overflow would trap the
        // whole server, and the claims come from a third party.
        let window: Int64 = 2 * 24 * 3600
        for value in [claims.exp, claims.nbf, claims.iat] {
            guard value > nowSeconds - window, value < nowSeconds + window else { throw Rejection("Token times out of range.") }
        }
        guard nowSeconds <= claims.exp + leeway else { throw Rejection("Signature has expired.") }
        guard nowSeconds + leeway >= claims.nbf else { throw Rejection("The token is not yet valid (nbf).") }
        let lifetime = isV1 ? v1Lifetime : maxLifetime
        guard claims.exp - claims.iat <= lifetime, claims.exp >= claims.iat else { throw Rejection("Token lifetime too long.") }
        // `iat` must not lie in the future: otherwise `exp - iat` says nothing about how long the
        // token stays valid from now.
        guard claims.iat <= nowSeconds + leeway, claims.exp <= nowSeconds + lifetime + leeway else {
            throw Rejection("Token lifetime too long.")
        }
        guard (1...128).contains(claims.jti.utf8.count) else { throw Rejection("Invalid jti.") }
        return claims
    }

    /// The v1 token request signature: uppercase hex of HMAC-SHA256(key: secret, message: bot id).
    package static func v1Signature(bot: UserID, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(bot.description.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return mac.map { String(format: "%02X", $0) }.joined()
    }

    /// Constant-time check of a v1 signature (case-insensitive hex).
    package static func isValidV1Signature(_ candidate: String, bot: UserID, secret: String) -> Bool {
        let expected = Array(v1Signature(bot: bot, secret: secret).utf8)
        let given = Array(candidate.uppercased().utf8)
        guard given.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(given, expected) { difference |= a ^ b }
        return difference == 0
    }

    private static func quote(_ string: String) -> String {
        // Claims are ids, hosts and hex: JSONSerialization-free quoting with escapes for safety.
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func base64URLDecode(_ part: Substring) -> Data? {
        guard part.utf8.count <= 8192 else { return nil }
        var base64 = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}

/// Remembers token ids until they expire, so a captured bot token cannot be replayed on this
/// node.
///
/// Bounded, and fails closed: an unexpired entry is never dropped to make room (that would let
/// its token be replayed). When the cache (or one bot's share of it) is full of live entries the
/// token is refused as ``Verdict/full``, and the bot retries later; a bot minting tokens with long
/// lifetimes thus only locks itself out, never the others.
package final class ReplayCache: Sendable {
    /// What ``use(_:bot:expiresAt:now:)`` decided.
    package enum Verdict: Sendable, Equatable {
        /// First use: accept the token.
        case fresh
        /// Already used: refuse.
        case replayed
        /// No room without forgetting a live entry: refuse for now.
        case full
    }

    private struct State {
        var expiries: [String: Int64] = [:]
        var perBot: [UserID: Int] = [:]
        var lastPurge: Int64 = .min
    }

    private let state = Mutex(State())
    private let capacity: Int
    private let perBotCapacity: Int
    /// Seconds an entry outlives its token: tokens are accepted up to this leeway after `exp`.
    private let leeway: Int64 = 10

    /// - Parameters:
    ///   - capacity: live entries in all (about 40 bytes each plus the jti).
    ///   - perBotCapacity: live entries of one bot (default a tenth of `capacity`: 20,000 at
    ///     pybotx's 60 s tokens is 333 requests per second for one bot).
    package init(capacity: Int = 200_000, perBotCapacity: Int? = nil) {
        self.capacity = max(1, capacity)
        self.perBotCapacity = max(1, perBotCapacity ?? capacity / 10)
    }

    /// Records `jti` of `bot` until `expiresAt` (plus leeway).
    package func use(_ jti: String, bot: UserID, expiresAt: Int64, now: Date = Date()) -> Verdict {
        let key = bot.description + ":" + jti
        let nowSeconds = Int64(now.timeIntervalSince1970)
        return state.withLock { state in
            if let expiry = state.expiries[key] {
                if expiry + leeway >= nowSeconds { return .replayed }
                state.expiries[key] = nil
                Self.release(key, in: &state)
            }
            if state.expiries.count >= capacity || state.perBot[bot, default: 0] >= perBotCapacity {
                // Expired entries go, at most once a second: the sweep is O(n) and must not run
                // on every request of a bot that is over its share.
                if state.lastPurge < nowSeconds {
                    state.lastPurge = nowSeconds
                    let leeway = self.leeway
                    for (k, expiry) in state.expiries where expiry + leeway < nowSeconds {
                        state.expiries[k] = nil
                        Self.release(k, in: &state)
                    }
                }
                guard state.expiries.count < capacity, state.perBot[bot, default: 0] < perBotCapacity else { return .full }
            }
            state.expiries[key] = expiresAt
            state.perBot[bot, default: 0] += 1
            return .fresh
        }
    }

    /// Live entries (for tests).
    package var count: Int { state.withLock { $0.expiries.count } }

    private static func release(_ key: String, in state: inout State) {
        guard let bot = key.split(separator: ":").first.flatMap({ UserID(String($0)) }) else { return }
        let left = state.perBot[bot, default: 1] - 1
        state.perBot[bot] = left > 0 ? left : nil
    }
}
