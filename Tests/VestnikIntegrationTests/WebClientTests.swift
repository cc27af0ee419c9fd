import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The browser client as served by `vestnik serve`: the shell page, versioned assets, caching,
/// security headers, client routes, and that no path escapes the bundle.
@Suite(.timeLimit(.minutes(2)))
struct WebClientTests {
    typealias Raw = HTTPContractTests.RawResponse

    static func get(_ server: TestServer, _ path: String, method: HTTPMethod = .GET, headers: [(String, String)] = []) async throws -> Raw {
        var request = HTTPClientRequest(url: server.url.absoluteString + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 8 << 20)
        return Raw(status: Int(response.status.code), body: Data(buffer: bytes), headers: response.headers)
    }

    /// The asset version the shell page links to.
    static func assetVersion(_ page: Raw) throws -> String {
        let html = String(decoding: page.body, as: UTF8.self)
        let marker = "/assets/"
        let start = try #require(html.range(of: marker)).upperBound
        let end = try #require(html[start...].firstIndex(of: "/"))
        return String(html[start..<end])
    }

    @Test("the shell page is served at / with a strict CSP, no framing and no-cache")
    func shellPage() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let page = try await Self.get(server, "/")
        #expect(page.status == 200)
        #expect(page.headers.first(name: "Content-Type") == "text/html; charset=utf-8")
        #expect(page.headers.first(name: "Cache-Control") == "no-cache")
        #expect(page.headers.first(name: "ETag") != nil)
        #expect(page.headers.first(name: "X-Frame-Options") == "DENY")
        #expect(page.headers.first(name: "X-Content-Type-Options") == "nosniff")
        let csp = try #require(page.headers.first(name: "Content-Security-Policy"))
        #expect(csp.contains("script-src 'self'"))
        #expect(csp.contains("style-src 'self'"))
        #expect(csp.contains("frame-ancestors 'none'"))
        #expect(csp.contains("default-src 'none'"))
        #expect(csp.contains("connect-src 'self' ws://127.0.0.1:\(server.port) wss://127.0.0.1:\(server.port)"))
        #expect(!csp.contains("unsafe"))
        let html = String(decoding: page.body, as: UTF8.self)
        #expect(!html.contains("{{ASSET_VERSION}}"))
        #expect(!html.contains("<script>"))  // no inline script
        let version = try Self.assetVersion(page)
        #expect(version.count == 16)
        #expect(html.contains("/assets/\(version)/js/app.js"))
        #expect(html.contains("<link rel=\"modulepreload\" href=\"/assets/\(version)/js/views/chat.js\">"))
        #expect(!html.contains("{{MODULE_PRELOADS}}"))
    }

    @Test("client routes load the shell page; other unknown paths stay JSON 404s")
    func clientRoutes() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        for path in ["/login", "/chat/abc123", "/chat/abc/def"] {
            let page = try await Self.get(server, path)
            #expect(page.status == 200, "\(path)")
            #expect(page.headers.first(name: "Content-Type") == "text/html; charset=utf-8", "\(path)")
        }
        for path in ["/nope", "/settings", "/api/v1/nope", "/index.html.bak"] {
            let response = try await Self.get(server, path)
            #expect(response.status == 404, "\(path)")
            #expect(response.errorCode == "not_found", "\(path)")
        }
    }

    @Test("versioned assets have their content types and are immutable; an old version is not")
    func assets() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let version = try Self.assetVersion(try await Self.get(server, "/"))
        let expected = [
            "js/app.js": "text/javascript; charset=utf-8", "js/views/chat.js": "text/javascript; charset=utf-8",
            "app.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml",
        ]
        for (path, type) in expected {
            let asset = try await Self.get(server, "/assets/\(version)/\(path)")
            #expect(asset.status == 200, "\(path)")
            #expect(asset.headers.first(name: "Content-Type") == type, "\(path)")
            #expect(asset.headers.first(name: "Cache-Control") == "public, max-age=31536000, immutable", "\(path)")
            #expect(asset.headers.first(name: "Content-Security-Policy") != nil, "\(path)")
            #expect(!asset.body.isEmpty)
        }
        let stale = try await Self.get(server, "/assets/0000000000000000/app.css")
        #expect(stale.status == 200)
        #expect(stale.headers.first(name: "Cache-Control") == "no-cache")
    }

    @Test("ETags answer 304; HEAD answers headers without a body")
    func conditionalAndHead() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let page = try await Self.get(server, "/")
        let version = try Self.assetVersion(page)
        let asset = try await Self.get(server, "/assets/\(version)/app.css")
        let etag = try #require(asset.headers.first(name: "ETag"))
        let again = try await Self.get(server, "/assets/\(version)/app.css", headers: [("If-None-Match", etag)])
        #expect(again.status == 304)
        #expect(again.body.isEmpty)
        let pageETag = try #require(page.headers.first(name: "ETag"))
        #expect(try await Self.get(server, "/", headers: [("If-None-Match", pageETag)]).status == 304)

        let head = try await Self.get(server, "/assets/\(version)/app.css", method: .HEAD)
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect(head.headers.first(name: "Content-Type") == "text/css; charset=utf-8")
        #expect(head.headers.first(name: "Content-Length") == String(asset.body.count))
        let headPage = try await Self.get(server, "/", method: .HEAD)
        #expect(headPage.status == 200)
        #expect(headPage.body.isEmpty)
    }

    @Test("no asset path escapes the bundle")
    func traversal() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let version = try Self.assetVersion(try await Self.get(server, "/"))
        let attempts = [
            "../openapi.json", "../../Package.swift", "js/../../openapi.json", "%2e%2e/openapi.json", "%2e%2e%2fopenapi.json",
            "..%2f..%2fetc%2fpasswd", "/etc/passwd", "./app.css", "js%5C..%5Capp.css", "..", ".", "",
            "index.html", "nonexistent.js", "js",
        ]
        for attempt in attempts {
            let response = try await Self.get(server, "/assets/\(version)/\(attempt)")
            #expect(response.status == 404, "\(attempt) → \(response.status)")
            #expect(!String(decoding: response.body, as: UTF8.self).contains("\"openapi\""), "\(attempt)")
        }
    }

    @Test("the API keeps its own CSP and no-store")
    func apiHeadersUnchanged() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let health = try await Self.get(server, "/healthz")
        #expect(health.headers.first(name: "Content-Security-Policy") == "default-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'none'")
        #expect(health.headers.first(name: "Cache-Control") == "no-store")
    }
}
