import Foundation

/// The OpenAPI 3.1 description of the client API (`Resources/openapi.json`), served at
/// `/api/v1/openapi.json`.
enum OpenAPIDocument {
    static let data: Data? = Bundle.module.url(forResource: "openapi", withExtension: "json").flatMap { try? Data(contentsOf: $0) }
}
