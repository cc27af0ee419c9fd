import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing
import VestnikKit

/// The served OpenAPI document and the server agree: every documented operation is routed.
@Suite(.timeLimit(.minutes(2)))
struct OpenAPIDocumentTests {
    @Test("every documented path and method reaches a handler (never 'No such endpoint' or 405)")
    func documentedRoutesExist() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let (alice, _) = try await server.client("alice")
        let token = try #require(alice.token)
        let document = try await HTTPContractTests.raw(server, .GET, "/api/v1/openapi.json")
        let root = try #require(try JSONSerialization.jsonObject(with: document.body) as? [String: Any])
        let paths = try #require(root["paths"] as? [String: [String: Any]])
        #expect(paths.count >= 25)
        var checked = 0
        for (path, operations) in paths where path != "/api/v1/stream" {
            let concrete = path.replacingOccurrences(of: "\\{emoji\\}", with: "%F0%9F%91%8D", options: .regularExpression)
                .replacingOccurrences(of: "\\{[a-z_]+\\}", with: UUID().uuidString.lowercased(), options: .regularExpression)
            for method in operations.keys {
                guard let httpMethod = ["get": HTTPMethod.GET, "post": .POST, "put": .PUT, "patch": .PATCH, "delete": .DELETE][method] else {
                    continue
                }
                let response = try await HTTPContractTests.raw(server, httpMethod, concrete, token: token, body: Data("{}".utf8))
                let message = (try? JSONSerialization.jsonObject(with: response.body) as? [String: [String: String]])?["error"]?["message"]
                #expect(response.status != 405 && message != "No such endpoint.", "\(method.uppercased()) \(path) → \(response.status)")
                #expect(response.status < 500, "\(method.uppercased()) \(path) → \(response.status)")
                checked += 1
            }
        }
        #expect(checked >= 30)
    }
}
