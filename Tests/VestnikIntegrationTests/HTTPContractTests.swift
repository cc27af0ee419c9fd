import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Testing
import VestnikAPI
import VestnikCore
@testable import VestnikHTTP
import VestnikKit
import VestnikModel
import VestnikServer

/// Raw HTTP against a live server: status codes, error bodies, and that bad input changes nothing.
@Suite(.timeLimit(.minutes(2)))
struct HTTPContractTests {
    struct RawResponse {
        var status: Int
        var body: Data
        var headers: HTTPHeaders
        var errorCode: String? { (try? VestnikJSON.decode(ErrorResponse.self, from: body))?.error.code }
        var requestID: String? { (try? VestnikJSON.decode(ErrorResponse.self, from: body))?.error.requestID }
    }

    static func raw(
        _ server: TestServer, _ method: HTTPMethod, _ path: String, token: String? = nil, body: Data? = nil, headers: [(String, String)] = []
    ) async throws -> RawResponse {
        var request = HTTPClientRequest(url: server.url.absoluteString + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 8 << 20)
        return RawResponse(status: Int(response.status.code), body: Data(buffer: bytes), headers: response.headers)
    }

    @Test("health, readiness, metrics and the OpenAPI document are served")
    func operational() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        #expect(try await Self.raw(server, .GET, "/healthz").status == 200)
        #expect(try await Self.raw(server, .GET, "/readyz").status == 200)
        let metrics = try await Self.raw(server, .GET, "/metrics")
        #expect(metrics.status == 200)
        #expect(String(decoding: metrics.body, as: UTF8.self).contains("vestnik_http_responses_total"))
        let openAPI = try await Self.raw(server, .GET, "/api/v1/openapi.json")
        #expect(openAPI.status == 200)
        let document = try JSONSerialization.jsonObject(with: openAPI.body) as? [String: Any]
        #expect((document?["openapi"] as? String)?.hasPrefix("3.1") == true)
        // API responses are written by Vestnik's own JSON encoder (VestnikResponseEncoder): the
        // headers Hummingbird's JSONEncoder conformance used to set, and snake_case keys.
        let (alice, _) = try await server.client("alice")
        let me = try await Self.raw(server, .GET, "/api/v1/me", token: alice.token)
        #expect(me.status == 200)
        #expect(me.headers.first(name: "Content-Type") == "application/json; charset=utf-8")
        #expect(me.headers.first(name: "Content-Length") == String(me.body.count))
        let fields = try JSONSerialization.jsonObject(with: me.body) as? [String: Any]
        #expect(fields?["login"] as? String == "alice")
        #expect(fields?["display_name"] != nil)
        // The store's write batching: the writes above (alice's account and session) show up in the
        // counters of the next scrape.
        let scraped = String(decoding: try await Self.raw(server, .GET, "/metrics").body, as: UTF8.self)
        func value(_ name: String) -> Double? {
            scraped.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        #expect((value("vestnik_store_writes_total") ?? 0) >= 1)
        #expect((value("vestnik_store_write_batches_total") ?? 0) >= 1)
        #expect((value("vestnik_store_writes_total") ?? 0) >= (value("vestnik_store_write_batches_total") ?? .infinity))
        #expect(value("vestnik_store_write_batch_reruns_total") != nil)
    }

    @Test("missing, malformed and revoked tokens are 401 with a stable code")
    func unauthenticated() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice")
        for token: String? in [nil, "garbage", String(repeating: "a", count: 4000)] {
            let response = try await Self.raw(server, .GET, "/api/v1/chats", token: token)
            #expect(response.status == 401)
            #expect(response.errorCode == "unauthenticated")
            #expect(response.requestID != nil)
        }
        let token = try #require(alice.token)
        try await alice.logout()
        #expect(try await Self.raw(server, .GET, "/api/v1/me", token: token).status == 401)
    }

    @Test("malformed JSON, wrong types, oversized bodies, bad ids and unknown routes get clear 4xx")
    func badInput() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice")
        let token = try #require(alice.token)
        let chat = try await alice.openNotesChat().chat
        let path = "/api/v1/chats/\(chat.id)/messages"
        let cases: [(Data?, Int, String)] = [
            (Data("{not json".utf8), 400, "invalid_json"),
            (Data("{\"text\": 5}".utf8), 400, "invalid_json"),
            (Data("[]".utf8), 400, "invalid_json"),
            (nil, 400, "invalid_json"),
            (Data("{\"text\":\"\(String(repeating: "x", count: 17 * 1024))\"}".utf8), 413, "payload_too_large"),
            (Data(repeating: 0x20, count: 200 * 1024), 413, "payload_too_large"),
            (Data("{\"text\":\"hi\",\"reply_to\":\"not-a-uuid\"}".utf8), 400, "invalid_json"),
        ]
        for (body, status, code) in cases {
            let response = try await Self.raw(server, .POST, path, token: token, body: body)
            #expect(response.status == status, "body \(body.map { String(decoding: $0.prefix(40), as: UTF8.self) } ?? "nil")")
            #expect(response.errorCode == code)
        }
        #expect(try await alice.history(chatID: chat.id).messages.isEmpty)
        #expect(try await Self.raw(server, .GET, "/api/v1/chats/not-an-id", token: token).errorCode == "invalid_request")
        #expect(try await Self.raw(server, .GET, "/api/v1/chats/\(UUID())", token: token).errorCode == "chat_not_found")
        #expect(try await Self.raw(server, .GET, "/api/v1/nope", token: token).status == 404)
        #expect(try await Self.raw(server, .GET, "/api/v1/chats/\(chat.id)/messages?limit=100000", token: token).status == 400)
        #expect(try await Self.raw(server, .GET, "/api/v1/events?since=-5", token: token).status == 400)
        #expect(try await Self.raw(server, .GET, "/api/v1/events?since=999999", token: token).errorCode == "resync_required")
        let login = try await Self.raw(server, .POST, "/api/v1/auth/login", body: Data("{\"login\":\"alice\"}".utf8))
        #expect(login.status == 400)
    }

    @Test("other users' objects are 404 and stay unchanged; forbidden actions are 403")
    func authorization() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice")
        let (bob, bobUser) = try await server.client("bob")
        let (mallory, malloryUser) = try await server.client("mallory")
        let malloryToken = try #require(mallory.token)
        let chat = try await alice.openPersonalChat(with: bobUser.id).chat
        let secret = try await alice.sendMessage(chatID: chat.id, text: "secret")
        let attempts: [(HTTPMethod, String, Data?)] = [
            (.GET, "/api/v1/chats/\(chat.id)", nil),
            (.GET, "/api/v1/chats/\(chat.id)/messages", nil),
            (.POST, "/api/v1/chats/\(chat.id)/messages", Data("{\"text\":\"hi\"}".utf8)),
            (.GET, "/api/v1/messages/\(secret.id)", nil),
            (.PATCH, "/api/v1/messages/\(secret.id)", Data("{\"text\":\"pwned\"}".utf8)),
            (.DELETE, "/api/v1/messages/\(secret.id)", nil),
            (.PUT, "/api/v1/messages/\(secret.id)/reactions/%F0%9F%91%8D", nil),
            (.PUT, "/api/v1/messages/\(secret.id)/pin", nil),
            (.GET, "/api/v1/messages/\(secret.id)/edits", nil),
            (.POST, "/api/v1/chats/\(chat.id)/members", Data("{\"user_ids\":[\"\(malloryUser.id)\"]}".utf8)),
            (.POST, "/api/v1/chats/\(chat.id)/read", Data("{\"message_id\":\"\(secret.id)\"}".utf8)),
            (.DELETE, "/api/v1/sessions/\(UUID())", nil),
        ]
        for (method, path, body) in attempts {
            let response = try await Self.raw(server, method, path, token: malloryToken, body: body)
            #expect(response.status == 404, "\(method) \(path)")
        }
        let untouched = try await alice.message(secret.id)
        #expect(untouched.text == "secret" && untouched.reactions.isEmpty && !untouched.pinned && !untouched.isDeleted)

        let channel = try await alice.createChannel(title: "News", members: [bobUser.id]).chat
        let bobToken = try #require(bob.token)
        let post = try await Self.raw(server, .POST, "/api/v1/chats/\(channel.id)/messages", token: bobToken, body: Data("{\"text\":\"x\"}".utf8))
        #expect(post.status == 403 && post.errorCode == "channel_read_only")
        let add = try await Self.raw(
            server, .POST, "/api/v1/chats/\(channel.id)/members", token: bobToken, body: Data("{\"user_ids\":[\"\(malloryUser.id)\"]}".utf8))
        #expect(add.status == 403 && add.errorCode == "not_chat_admin")
        #expect(try await alice.members(chatID: channel.id).members.count == 2)
    }

    @Test("login failures are rate limited with Retry-After")
    func loginRateLimit() async throws {
        let server = try await TestServer.start { $0.loginFailuresPerAccount = 3 }
        defer { Task { await server.stop() } }
        _ = try await server.client("alice")
        var last: RawResponse?
        for _ in 0..<4 {
            last = try await Self.raw(
                server, .POST, "/api/v1/auth/login", body: Data("{\"login\":\"alice\",\"password\":\"wrong-password\",\"device_name\":\"x\"}".utf8))
        }
        #expect(last?.status == 429)
        #expect(last?.errorCode == "rate_limited")
        #expect(Int(last?.headers.first(name: "Retry-After") ?? "") ?? 0 > 0)
    }

    /// Behind a load balancer each login may reach another node: the failures must add up over
    /// all of them, or N nodes would allow N times the guesses (decision 0017).
    @Test("failed logins on one node count on another node of the same deployment; a password reset lifts the limit")
    func loginRateLimitAcrossNodes() async throws {
        let first = try await TestServer.start { $0.loginFailuresPerAccount = 3 }
        defer { Task { await first.stop() } }
        let second = try await TestServer.start(dataDirectory: first.dataDirectory) {
            $0.databaseURL = first.databaseURL
            $0.loginFailuresPerAccount = 3
        }
        defer { Task { await second.stop() } }
        let (_, alice) = try await first.client("alice")
        func login(_ server: TestServer, _ password: String) async throws -> RawResponse {
            try await Self.raw(
                server, .POST, "/api/v1/auth/login", body: Data("{\"login\":\"alice\",\"password\":\"\(password)\",\"device_name\":\"x\"}".utf8))
        }
        var statuses: [Int] = []
        for server in [first, second, first, second] { statuses.append(try await login(server, "wrong-password").status) }
        #expect(statuses == [401, 401, 401, 429], "the third failure used up the account's three, wherever it was made")
        // While limited, even the right password is not tried (a guess would learn nothing else).
        let refused = try await login(first, "password-alice-123")
        #expect(refused.status == 429 && refused.errorCode == "rate_limited")
        #expect(Int(refused.headers.first(name: "Retry-After") ?? "") ?? 0 > 0)
        // An administrator's reset lifts the limit (on the node that reset at once; a node that
        // remembers a refusal asks the store again within 5 s: LoginThrottleTests).
        _ = try await second.services.accounts.resetPassword(user: alice.id, to: "a-new-password-1", as: .localAdmin)
        #expect(try await login(second, "a-new-password-1").status == 200)
    }

    /// Behind nginx every request comes from the proxy: without trusting it, all users would share
    /// one address's login budget; trusting anyone would let a client pick its own address.
    @Test("login attempts are limited per forwarded address behind a trusted proxy; anyone else's X-Forwarded-For is ignored")
    func loginRateLimitBehindProxy() async throws {
        let wrongPassword = Data("{\"login\":\"alice\",\"password\":\"wrong-password\",\"device_name\":\"x\"}".utf8)
        func attempt(_ server: TestServer, forwardedFor: String?) async throws -> Int {
            try await Self.raw(server, .POST, "/api/v1/auth/login", body: wrongPassword, headers: forwardedFor.map { [("X-Forwarded-For", $0)] } ?? []).status
        }
        // Not a trusted proxy: inventing a new X-Forwarded-For per attempt does not dodge the limit.
        let direct = try await TestServer.start {
            $0.loginAttemptsPerAddress = 3
            $0.loginFailuresPerAccount = 100
        }
        defer { Task { await direct.stop() } }
        _ = try await direct.client("alice")
        var statuses: [Int] = []
        for index in 0..<4 { statuses.append(try await attempt(direct, forwardedFor: "10.0.0.\(index)")) }
        #expect(statuses == [401, 401, 401, 429])

        // The test client (127.0.0.1, inside the trusted network) is the proxy: each forwarded client
        // has its own budget, and only the entry the proxy appended (the rightmost) counts, not
        // what the client wrote.
        let proxied = try await TestServer.start {
            $0.loginAttemptsPerAddress = 3
            $0.loginFailuresPerAccount = 100
            $0.trustedProxies = ["127.0.0.0/8"]
        }
        defer { Task { await proxied.stop() } }
        _ = try await proxied.client("alice")
        statuses = []
        for spoofed in ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"] {
            statuses.append(try await attempt(proxied, forwardedFor: "\(spoofed), 10.0.0.1"))
        }
        #expect(statuses == [401, 401, 401, 429])
        #expect(try await attempt(proxied, forwardedFor: "10.0.0.2") == 401)
        // An unparsable entry, or none, counts against the proxy itself (a budget of its own).
        statuses = []
        for forwarded in ["not-an-address", nil, "junk, also junk", nil] { statuses.append(try await attempt(proxied, forwardedFor: forwarded)) }
        #expect(statuses == [401, 401, 401, 429])
        #expect(try await attempt(proxied, forwardedFor: "10.0.0.3") == 401)
    }

    @Test("metrics: this host only without a token, never through a trusted proxy; with a token only for its bearer")
    func metricsAccess() async throws {
        // Through a trusted proxy on this host, the request is someone else's: refused without a token.
        let proxied = try await TestServer.start { $0.trustedProxies = ["127.0.0.1"] }
        defer { Task { await proxied.stop() } }
        let refused = try await Self.raw(proxied, .GET, "/metrics")
        #expect(refused.status == 403 && refused.errorCode == "forbidden")
        // The same for a trusted network that holds loopback; one that does not leaves this host its access.
        let proxiedNetwork = try await TestServer.start { $0.trustedProxies = ["127.0.0.0/8"] }
        defer { Task { await proxiedNetwork.stop() } }
        #expect(try await Self.raw(proxiedNetwork, .GET, "/metrics").status == 403)
        let remoteProxies = try await TestServer.start { $0.trustedProxies = ["10.0.0.0/8"] }
        defer { Task { await remoteProxies.stop() } }
        #expect(try await Self.raw(remoteProxies, .GET, "/metrics").status == 200)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vestnik-metrics-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenFile = directory.appendingPathComponent("metrics-token").path
        let token = "m-" + UUID().uuidString
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: tokenFile))
        let server = try await TestServer.start { $0.metricsTokenFile = tokenFile }
        defer { Task { await server.stop() } }
        for header in [nil, "Bearer wrong-token-wrong-token", "Bearer " + token + "x", token, "Basic " + token] {
            let response = try await Self.raw(server, .GET, "/metrics", headers: header.map { [("Authorization", $0)] } ?? [])
            #expect(response.status == 401 && response.errorCode == "unauthenticated", "\(header ?? "no header")")
        }
        let allowed = try await Self.raw(server, .GET, "/metrics", headers: [("Authorization", "Bearer " + token)])
        #expect(allowed.status == 200 && String(decoding: allowed.body, as: UTF8.self).contains("vestnik_http_responses_total"))
        #expect(try await Self.raw(server, .GET, "/metrics", headers: [("Authorization", "bearer " + token)]).status == 200)
        // Without a token: a loopback request that says it was forwarded is someone else's.
        let local = try await TestServer.start()
        defer { Task { await local.stop() } }
        #expect(try await Self.raw(local, .GET, "/metrics").status == 200)
        for header in ["X-Forwarded-For", "Forwarded", "X-Real-IP", "Via"] {
            #expect(try await Self.raw(local, .GET, "/metrics", headers: [(header, "1.1 nginx")]).status == 403, "\(header)")
        }

        // A token that is too short, or not sendable in a header, is a configuration error at start-up.
        for bad in ["short", "sixteen chars with spaces", "токен-токен-токен-токен"] {
            try Data(bad.utf8).write(to: URL(fileURLWithPath: tokenFile))
            await #expect(throws: ConfigurationError.self, "\(bad)") {
                let weak = try await TestServer.start { $0.metricsTokenFile = tokenFile }
                await weak.stop()
            }
        }
    }

    @Test("VESTNIK_TRUSTED_PROXIES is read comma-separated; a proxy that is neither an IP address nor a network stops the server from starting")
    func trustedProxyConfiguration() async throws {
        var configuration = ServerConfiguration()
        try configuration.apply(environment: ["VESTNIK_TRUSTED_PROXIES": " 10.0.0.5, ,::1 "])
        #expect(configuration.trustedProxies == ["10.0.0.5", "::1"])
        let refused = await #expect(throws: ConfigurationError.self) {
            let server = try await TestServer.start { $0.trustedProxies = ["10.0.0.5", "10.9.0.0/16", "nginx.internal", "10.0.0.1/8"] }
            await server.stop()
        }
        // The message names the entries at fault, not the good ones.
        #expect(refused?.description.hasSuffix("refused: \"nginx.internal\", \"10.0.0.1/8\"") == true)
    }

    @Test("a stream whose session check fails after subscribing is told 'revoked' only if the session is gone: expired is 4401, an outage 1011")
    func streamRecheckFailure() throws {
        let live = AuthenticatedSession(userID: UserID.random(), sessionID: .random(), expiresAt: Date().addingTimeInterval(3600))
        let lapsed = AuthenticatedSession(userID: UserID.random(), sessionID: .random(), expiresAt: Date().addingTimeInterval(-1))
        func code(_ frame: ByteBuffer) throws -> String? { try VestnikJSON.decode(ServerFrame.self, from: Data(frame.readableBytesView)).code }

        let gone = StreamGateway.recheckFailure(VestnikError(.unauthenticated, "A valid session token is required."), session: live)
        #expect(gone.code == WebSocketErrorCode(codeNumber: 4403) && gone.reason == "session_revoked")
        #expect(try code(gone.frame) == "session_revoked")

        let expired = StreamGateway.recheckFailure(VestnikError(.unauthenticated, "The session has expired. Log in again."), session: lapsed)
        #expect(expired.code == WebSocketErrorCode(codeNumber: 4401) && expired.reason == "unauthenticated")
        #expect(try code(expired.frame) == "unauthenticated")

        let outage = StreamGateway.recheckFailure(StoreError.unavailable("connection refused"), session: live)
        #expect(outage.code == .unexpectedServerError && outage.reason == "unavailable")
        #expect(try code(outage.frame) == "unavailable")
    }

    @Test("a store error that reaches the HTTP edge raw: an outage is 503 unavailable, a lost deadlock 409 conflict, anything else 500; none shows its detail")
    func rawStoreErrors() {
        let outage = ErrorMiddleware.map(StoreError.unavailable("connection refused by 10.0.0.7:5432"))
        #expect(outage.code == .unavailable)
        #expect(ErrorMiddleware.status(outage.code.category) == .serviceUnavailable)
        #expect(!outage.message.contains("10.0.0.7"), "\(outage.message)")
        for failure: StoreError in [.backend("SQLITE_CORRUPT in messages"), .duplicate(what: "messages.id")] {
            let mapped = ErrorMiddleware.map(failure)
            #expect(mapped.code == .internalError, "\(failure)")
            #expect(ErrorMiddleware.status(mapped.code.category) == .internalServerError)
            #expect(!mapped.message.contains("SQLITE") && !mapped.message.contains("messages.id"), "\(mapped.message)")
        }
        let contended = ErrorMiddleware.map(StoreError.contention("PostgreSQL error 40P01: deadlock detected on relation 16384"))
        #expect(contended.code == .conflict)
        #expect(ErrorMiddleware.status(contended.code.category) == .conflict)
        #expect(!contended.message.contains("40P01") && !contended.message.contains("16384"), "\(contended.message)")
        #expect(ErrorMiddleware.map(CancellationError()).code == .unavailable)
        // The SDK repeats an idempotent request that lost to a concurrent change, as it does a 5xx;
        // not the other 409s, which repeating cannot change.
        #expect(VestnikClientError(status: 409, code: "conflict", message: "").isTransient)
        #expect(!VestnikClientError(status: 409, code: "login_taken", message: "").isTransient)
        #expect(!VestnikClientError(status: 409, code: "message_deleted", message: "").isTransient)
    }

    @Test("VESTNIK_EVENT_LOOPS is read as 1…256; by default half the cores run the sockets, at least one")
    func eventLoopConfiguration() throws {
        var configuration = ServerConfiguration()
        #expect(configuration.eventLoops == nil)
        try configuration.apply(environment: ["VESTNIK_EVENT_LOOPS": "4"])
        #expect(configuration.eventLoops == 4)
        for bad in ["0", "257", "two", ""] {
            var refused = ServerConfiguration()
            #expect(throws: ConfigurationError.self, "\(bad)") { try refused.apply(environment: ["VESTNIK_EVENT_LOOPS": bad]) }
            #expect(refused.eventLoops == nil)
        }
        #expect([1, 2, 3, 4, 16, 64].map { ServerConfiguration.defaultEventLoops(cores: $0) } == [1, 1, 1, 2, 8, 32])
    }

    @Test("X-Forwarded-For resolution: rightmost untrusted entry, addresses normalised, bad input falls back to the peer")
    func forwardedForResolution() throws {
        let proxies = try #require(TrustedProxies(["127.0.0.1", "::1", "10.9.9.9"]))
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.7"]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["6.6.6.6, 203.0.113.7, 10.9.9.9"]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["6.6.6.6", "203.0.113.7"]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "::ffff:127.0.0.1", forwardedFor: ["2001:DB8::0001"]) == "2001:db8::/64")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.7, junk"]) == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: []) == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["10.9.9.9"]) == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "198.51.100.1", forwardedFor: ["203.0.113.7"]) == "198.51.100.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["junk, 203.0.113.7"]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.7:5678"]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["\t203.0.113.7 "]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["fe80::1%eth0"]) == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: [Array(repeating: "10.9.9.9", count: 20).joined(separator: ",")]) == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.7\u{0}"]) == "127.0.0.1")
        // IPv6 clients count per /64: one subscriber's addresses share a budget.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["[2001:db8:1:2::7]:443"]) == "2001:db8:1:2::/64")
        #expect(proxies.clientAddress(peer: "::1", forwardedFor: ["2001:db8:1:2:aaaa:bbbb:cccc:dddd"]) == "2001:db8:1:2::/64")
        #expect(proxies.clientAddress(peer: "2001:db8:9:9::5", forwardedFor: []) == "2001:db8:9:9::/64")
        #expect(TrustedProxies(["nginx.local"]) == nil)
        #expect(TrustedProxies.normalizedAddress(String(repeating: "1", count: 100)) == nil)
    }

    @Test("trusted proxies as networks: members are trusted, neighbours are not, malformed or too-wide networks are refused")
    func trustedProxyNetworks() throws {
        let proxies = try #require(TrustedProxies(["10.1.2.0/24", "fd00:1::/32", "192.0.2.128/25", "::ffff:198.51.100.0/120"]))
        // Any proxy in a range is trusted; its X-Forwarded-For names the client.
        #expect(proxies.clientAddress(peer: "10.1.2.77", forwardedFor: ["203.0.113.7"]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "::ffff:10.1.2.200", forwardedFor: ["203.0.113.7"]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "fd00:1:ffff::9", forwardedFor: ["203.0.113.7"]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "192.0.2.200", forwardedFor: ["203.0.113.7"]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "198.51.100.9", forwardedFor: ["203.0.113.7"]) == "203.0.113.7")
        // A chain of proxies inside the ranges is skipped, right to left.
        #expect(proxies.clientAddress(peer: "10.1.2.1", forwardedFor: ["6.6.6.6, 203.0.113.7, 10.1.2.9, 192.0.2.130"]) == "203.0.113.7")
        // Just outside a range: not a proxy, so its header is ignored and it counts itself.
        #expect(proxies.clientAddress(peer: "10.1.3.1", forwardedFor: ["203.0.113.7"]) == "10.1.3.1")
        #expect(proxies.clientAddress(peer: "192.0.2.127", forwardedFor: ["203.0.113.7"]) == "192.0.2.127")
        #expect(proxies.clientAddress(peer: "fd00:2::1", forwardedFor: ["203.0.113.7"]) == "fd00:2::/64")
        // An IPv4 range never matches an IPv6 address with the same leading bytes.
        #expect(proxies.clientAddress(peer: "a01:200::1", forwardedFor: ["203.0.113.7"]) == "a01:200::/64")
        #expect(!proxies.containsLoopback)
        #expect(try #require(TrustedProxies(["127.0.0.0/8"])).containsLoopback)
        #expect(try #require(TrustedProxies(["127.0.0.2"])).containsLoopback)
        #expect(try #require(TrustedProxies(["64.0.0.0/2"])).containsLoopback)
        #expect(try #require(TrustedProxies(["::/127"])).containsLoopback)
        #expect(try #require(TrustedProxies(["::ffff:127.0.0.0/104"])).containsLoopback)
        for outside in ["126.0.0.0/8", "128.0.0.0/1", "::2/127", "fd00::/8"] {
            #expect(try #require(TrustedProxies([outside])).containsLoopback == false, "\(outside)")
        }
        #expect(try #require(TrustedProxies(["10.0.0.0/8", "10.0.0.0/8", "10.0.0.5/32"])).clientAddress(peer: "10.200.0.1", forwardedFor: ["203.0.113.7"]) == "203.0.113.7")
        // Refused: host bits after the prefix, /0 (anyone could pick their address), bad lengths, names.
        for entry in ["10.1.2.1/24", "192.0.2.129/25", "11.0.0.0/7", "fd00::1/127", "0.0.0.0/0", "::/0", "10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/08x", "10.0.0.0/8/8", "/8", "nginx.local/24", "::ffff:10.0.0.0/64"] {
            #expect(TrustedProxies([entry]) == nil, "\(entry)")
        }
        #expect(TrustedProxies.invalidEntries(["10.0.0.0/8", "10.1.2.1/24", "proxy"]) == ["10.1.2.1/24", "proxy"])
    }

    @Test("random junk to every endpoint never produces a 5xx")
    func noServerErrors() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice")
        let token = try #require(alice.token)
        let chat = try await alice.openNotesChat().chat
        let message = try await alice.sendMessage(chatID: chat.id, text: "target")
        let paths = [
            "/api/v1/auth/login", "/api/v1/chats", "/api/v1/chats/\(chat.id)", "/api/v1/chats/\(chat.id)/messages",
            "/api/v1/chats/\(chat.id)/members", "/api/v1/chats/\(chat.id)/read", "/api/v1/messages/\(message.id)",
            "/api/v1/messages/\(message.id)/reactions/x", "/api/v1/chats/\(chat.id)/members/\(UUID())/role", "/api/v1/users?q=%00%ff",
            "/api/v1/events?since=abc", "/api/v1/chats/\(chat.id)/messages?before=zzz",
        ]
        let loginJunk = Data(#"{"login":"a\u0000b","password":"x\u0000","device_name":"d"}"#.utf8)
        #expect(try await Self.raw(server, .POST, "/api/v1/auth/login", body: loginJunk).status == 401)
        let bodies: [Data?] = [
            nil, Data("null".utf8), Data("{}".utf8), Data("{\"text\":null,\"kind\":\"weird\"}".utf8), Data([0xff, 0xfe, 0x00]),
            Data("{\"title\":\"\u{0000}\",\"kind\":\"group\"}".utf8), Data("{\"user_ids\":[1,2]}".utf8), Data("{\"role\":\"owner\"}".utf8),
            Data("{\"message_id\":\"\(UUID())\"}".utf8), Data("{\"kind\":\"personal\",\"members\":[]}".utf8),
        ]
        for path in paths {
            for method in [HTTPMethod.GET, .POST, .PUT, .PATCH, .DELETE] {
                for body in bodies {
                    let response = try await Self.raw(server, method, path, token: token, body: body)
                    #expect(response.status < 500, "\(method) \(path) \(body.map { String(decoding: $0, as: UTF8.self) } ?? "") → \(response.status)")
                }
            }
        }
        // DELETE on the message path is a legitimate delete; the tombstone must still be there.
        #expect(try await alice.message(message.id).id == message.id)
        #expect(try await Self.raw(server, .GET, "/readyz").status == 200)
    }
}
