import Crypto
import Foundation
import Testing
import VestnikModel

@testable import VestnikBotX

/// The JWT rules of the BotX edge, with the test vectors of express-reference.md §2.0.
@Suite struct BotXTokenTests {
    let bot = UserID("24348246-6791-4ac0-9d86-b948cd6a0e46")!
    let secret = "bee001bee001bee001bee001bee001bee001"
    let vector =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiIyNDM0ODI0Ni02NzkxLTRhYzAtOWQ4Ni1iOTQ4Y2Q2YTBlNDYiLCJhdWQiOiJjdHMuZXhhbXBsZS5jb20iLCJleHAiOjE3MDAwMDAwNjAsIm5iZiI6MTcwMDAwMDAwMCwianRpIjoiMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwIiwiaWF0IjoxNzAwMDAwMDAwLCJ2ZXJzaW9uIjoyfQ.qMTw1s6IDdaBDI2Lu3pIgZcez91OWSykgXXdkta_4NA"
    var claims: BotXToken.Claims {
        .init(iss: bot.description, aud: "cts.example.com", exp: 1_700_000_060, nbf: 1_700_000_000, jti: "000000000000000000000000", iat: 1_700_000_000)
    }
    func at(_ seconds: Int64) -> Date { Date(timeIntervalSince1970: TimeInterval(seconds)) }

    @Test("signing the reference claims reproduces pybotx's token byte for byte")
    func signsTheReferenceVector() {
        #expect(BotXToken.sign(claims, secret: secret) == vector)
    }

    @Test("the reference token verifies inside its window")
    func verifiesTheReferenceVector() throws {
        let verified = try BotXToken.verify(vector, bot: bot, secret: secret, audience: "cts.example.com", now: at(1_700_000_030))
        #expect(verified == claims)
        #expect(try BotXToken.unverifiedIssuer(vector) == bot)
    }

    @Test("v1 signature matches the reference vector and is checked case-insensitively")
    func v1Signature() {
        #expect(BotXToken.v1Signature(bot: bot, secret: secret) == "5393FDE463800BB05C4271111AF68D54A4B5EC03EBE808BC2B1FCB4F91BE2DCF")
        #expect(BotXToken.isValidV1Signature("5393fde463800bb05c4271111af68d54a4b5ec03ebe808bc2b1fcb4f91be2dcf", bot: bot, secret: secret))
        #expect(!BotXToken.isValidV1Signature("5393FDE463800BB05C4271111AF68D54A4B5EC03EBE808BC2B1FCB4F91BE2DCE", bot: bot, secret: secret))
        #expect(!BotXToken.isValidV1Signature("5393", bot: bot, secret: secret))
    }

    @Test(
        "tokens are refused for the wrong key, audience, issuer, time, algorithm or shape",
        arguments: [
            ("wrong secret", "x", "cts.example.com", Int64(1_700_000_030), "Signature verification failed."),
            ("wrong audience", "s", "other.example.com", 1_700_000_030, "Invalid audience."),
            ("expired beyond leeway", "s", "cts.example.com", 1_700_000_066, "Signature has expired."),
            ("before nbf beyond leeway", "s", "cts.example.com", 1_699_999_994, "The token is not yet valid (nbf)."),
        ])
    func refusals(_ label: String, _ secretChoice: String, _ audience: String, _ now: Int64, _ expected: String) {
        let key = secretChoice == "s" ? secret : "wrong-secret"
        #expect(throws: BotXToken.Rejection(expected), "\(label)") {
            try BotXToken.verify(vector, bot: bot, secret: key, audience: audience, now: at(now))
        }
    }

    @Test("clock skew within the leeway is tolerated")
    func leeway() throws {
        _ = try BotXToken.verify(vector, bot: bot, secret: secret, audience: "cts.example.com", now: at(1_700_000_064))
        _ = try BotXToken.verify(vector, bot: bot, secret: secret, audience: "cts.example.com", now: at(1_699_999_996))
    }

    @Test("a token of another bot, an unsigned token and garbage are refused")
    func otherFailures() {
        let other = UserID.random()
        #expect(throws: BotXToken.Rejection("Invalid issuer.")) {
            try BotXToken.verify(vector, bot: other, secret: secret, audience: "cts.example.com", now: at(1_700_000_030))
        }
        let parts = vector.split(separator: ".")
        let none = BotXToken.base64URL(Data(#"{"alg":"none","typ":"JWT"}"#.utf8)) + "." + parts[1] + "."
        #expect(throws: BotXToken.Rejection.self) { try BotXToken.verify(none, bot: bot, secret: secret, audience: "cts.example.com", now: at(1_700_000_030)) }
        #expect(throws: BotXToken.Rejection.self) { try BotXToken.verify("a.b", bot: bot, secret: secret, audience: "cts.example.com") }
        #expect(throws: BotXToken.Rejection.self) { try BotXToken.unverifiedIssuer("not a token") }
    }

    @Test("lifetimes longer than an hour are refused for bot-minted tokens")
    func lifetime() {
        let long = BotXToken.sign(
            .init(iss: bot.description, aud: "h", exp: 1_700_100_000, nbf: 1_700_000_000, jti: "abc", iat: 1_700_000_000), secret: secret)
        #expect(throws: BotXToken.Rejection("Token lifetime too long.")) {
            try BotXToken.verify(long, bot: bot, secret: secret, audience: "h", now: at(1_700_000_010))
        }
    }

    @Test("minted tokens verify and carry v2 claims")
    func mintRoundTrip() throws {
        let now = Date()
        let token = BotXToken.mintForBot(bot: bot, audience: "127.0.0.1", secret: secret, now: now)
        let claims = try BotXToken.verify(token, bot: bot, secret: secret, audience: "127.0.0.1", now: now, allowServerToBot: true)
        #expect(claims.version == 2 && claims.exp == claims.iat + 60 && claims.jti.count == 24)
    }

    @Test("a jti is accepted once per bot")
    func replay() {
        let cache = ReplayCache(capacity: 100)
        let now = Date()
        let expiry = Int64(now.timeIntervalSince1970) + 60
        #expect(cache.use("a", bot: bot, expiresAt: expiry, now: now) == .fresh)
        #expect(cache.use("a", bot: bot, expiresAt: expiry, now: now) == .replayed)
        #expect(cache.use("a", bot: .random(), expiresAt: expiry, now: now) == .fresh)
    }

    @Test("a full replay cache refuses new tokens instead of forgetting live ones")
    func replayCacheFailsClosed() {
        let cache = ReplayCache(capacity: 4, perBotCapacity: 4)
        let now = Date()
        let expiry = Int64(now.timeIntervalSince1970) + 60
        for i in 0..<4 { #expect(cache.use("x\(i)", bot: bot, expiresAt: expiry, now: now) == .fresh) }
        #expect(cache.use("x4", bot: bot, expiresAt: expiry, now: now) == .full)
        #expect(cache.use("y", bot: .random(), expiresAt: expiry, now: now) == .full)
        // Every live jti is still remembered.
        for i in 0..<4 { #expect(cache.use("x\(i)", bot: bot, expiresAt: expiry, now: now) == .replayed) }
        // Once they expire, there is room again (and the old ids are forgotten only then).
        let later = now.addingTimeInterval(75)
        #expect(cache.use("x4", bot: bot, expiresAt: expiry + 75, now: later) == .fresh)
        #expect(cache.count == 1)
    }

    @Test("one bot filling its share of the replay cache does not lock out the others")
    func replayCachePerBotShare() {
        let cache = ReplayCache(capacity: 10, perBotCapacity: 3)
        let now = Date()
        let expiry = Int64(now.timeIntervalSince1970) + 3600
        for i in 0..<3 { #expect(cache.use("l\(i)", bot: bot, expiresAt: expiry, now: now) == .fresh) }
        #expect(cache.use("l3", bot: bot, expiresAt: expiry, now: now) == .full)
        #expect(cache.use("ok", bot: .random(), expiresAt: expiry, now: now) == .fresh)
    }

    @Test("a bot cannot mint its own v1 token: typ v1 verifies only under the server's v1 key")
    func botMintedV1IsRefused() throws {
        let serverKey = SymmetricKey(size: .bits256)
        let now = at(1_700_000_000)
        let forged = BotXToken.sign(
            .init(iss: bot.description, aud: "h", exp: 1_700_086_400, nbf: 1_700_000_000, jti: "f", iat: 1_700_000_000, typ: "v1"), secret: secret)
        #expect(throws: BotXToken.Rejection("Signature verification failed.")) {
            try BotXToken.verify(forged, bot: bot, secret: secret, audience: "h", now: now, v1Key: serverKey)
        }
        #expect(throws: BotXToken.Rejection("Signature verification failed.")) {
            try BotXToken.verify(forged, bot: bot, secret: secret, audience: "h", now: now)
        }
        let issued = BotXToken.issueV1(bot: bot, audience: "h", key: serverKey, now: now)
        let claims = try BotXToken.verify(issued, bot: bot, secret: secret, audience: "h", now: at(1_700_080_000), v1Key: serverKey)
        #expect(claims.typ == "v1" && claims.exp - claims.iat == 24 * 3600)
        #expect(throws: BotXToken.Rejection.self) {
            try BotXToken.verify(issued, bot: bot, secret: secret, audience: "h", now: now, v1Key: SymmetricKey(size: .bits256))
        }
    }

    @Test("extreme time claims are refused without trapping the process")
    func extremeTimes() {
        for (exp, nbf, iat) in [(Int64.max, Int64(1_700_000_000), Int64(1_700_000_000)), (1_700_000_060, 1_700_000_000, Int64.min),
            (1_700_000_060, Int64.min, 1_700_000_000), (Int64.min, Int64.min, Int64.min)] {
            let token = BotXToken.sign(.init(iss: bot.description, aud: "h", exp: exp, nbf: nbf, jti: "x1", iat: iat), secret: secret)
            #expect(throws: BotXToken.Rejection.self) { try BotXToken.verify(token, bot: bot, secret: secret, audience: "h", now: at(1_700_000_010)) }
        }
        // iat in the future cannot stretch the lifetime.
        let future = BotXToken.sign(
            .init(iss: bot.description, aud: "h", exp: 1_700_007_000, nbf: 1_700_000_000, jti: "x2", iat: 1_700_006_900), secret: secret)
        #expect(throws: BotXToken.Rejection("Token lifetime too long.")) {
            try BotXToken.verify(future, bot: bot, secret: secret, audience: "h", now: at(1_700_000_010))
        }
    }

    @Test("a token the server sent to a bot is not accepted as that bot's credential")
    func serverTokensAreNotCredentials() throws {
        let minted = BotXToken.mintForBot(bot: bot, audience: "h", secret: secret, now: at(1_700_000_000))
        #expect(throws: BotXToken.Rejection("Tokens sent to bots are not credentials.")) {
            try BotXToken.verify(minted, bot: bot, secret: secret, audience: "h", now: at(1_700_000_010))
        }
    }
}

/// What each answer of a bot means for a delivery (decision 0004, "Delivery outcomes").
@Suite struct DeliveryOutcomeTests {
    static let bodyDisabled = Data(#"{"status":"error","reason":"bot_disabled","errors":[],"error_data":{"status_message":"x"}}"#.utf8)

    @Test(
        "answers map to delivered, rejected, misconfigured or retried",
        arguments: [
            (200, nil, Data(), BotDeliverer.Outcome.delivered),
            (202, nil, Data(), .delivered),
            (302, nil, Data(), .misconfigured("http 302 (redirect)")),
            (301, nil, Data(), .misconfigured("http 301 (redirect)")),
            (400, nil, Data(), .rejected(400)),
            (422, nil, Data(), .rejected(422)),
            (401, nil, Data(), .misconfigured("http 401")),
            (403, nil, Data(), .misconfigured("http 403")),
            (404, nil, Data(), .misconfigured("http 404")),
            (503, nil, bodyDisabled, .misconfigured("http 503 bot_disabled")),
            (503, "7", Data(), .failed("http 503", retryAfter: 7)),
            (503, "soon", Data(), .failed("http 503", retryAfter: nil)),
            (429, "2", Data(), .failed("http 429", retryAfter: 2)),
            (500, nil, Data(), .failed("http 500", retryAfter: nil)),
        ] as [(Int, String?, Data, BotDeliverer.Outcome)])
    func outcomes(_ status: Int, _ retryAfter: String?, _ body: Data, _ expected: BotDeliverer.Outcome) {
        #expect(BotDeliverer.outcome(status: status, retryAfter: retryAfter, body: body) == expected)
    }
}

/// Inline files from bots: names and media types that reach clients are checked.
@Suite struct InlineFileTests {
    @Test(
        "bad file names and media types are refused",
        arguments: [
            ("../etc/passwd", "text/plain"), ("a\nb.txt", "text/plain"), ("..", "text/plain"), ("ok.txt", "text/html;charset=utf-8"),
            ("ok.txt", "text"), ("ok.txt", "text/plain\r\nX-Evil: 1"), ("ok.txt", "/plain"),
        ])
    func refused(_ name: String, _ mime: String) {
        let file = BotXFile(fileName: name, data: "data:\(mime);base64,aGk=")
        #expect(throws: BotXFailure.self) { try file.attachment(limit: 1024) }
    }

    @Test("a plain name and media type pass")
    func accepted() throws {
        let attachment = try BotXFile(fileName: "report 2024.csv", data: "data:text/csv;base64,aGk=").attachment(limit: 1024)
        #expect(attachment.mimeType == "text/csv" && attachment.size == 2 && attachment.type == "document")
        #expect(try BotXFile(fileName: "x.bin", data: "data:;base64,aGk=").attachment(limit: 1024).mimeType == "application/octet-stream")
        #expect(try BotXFile(fileName: "p.svg", data: "data:image/svg+xml;base64,aGk=").attachment(limit: 1024).type == "image")
    }
}
