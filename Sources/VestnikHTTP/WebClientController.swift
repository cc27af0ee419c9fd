import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VestnikCore

/// Serves the browser client: the shell page at `/` and at client routes, and versioned assets.
///
/// - `GET|HEAD /`, `/login`, `/chat/**`: the shell page, `Cache-Control: no-cache`
///   (revalidated by ETag), so a new release is picked up on the next load.
/// - `GET|HEAD /assets/<version>/<path>`: a bundled file, `immutable` for a year when `<version>`
///   is the current one. An old version still gets the current file, but only briefly cached.
/// - Anything else is the API's usual JSON 404.
///
/// The page gets a Content-Security-Policy allowing scripts, styles and connections only to this
/// server; user content is rendered by the client as text, never as markup.
struct WebClientController {
    let assets: WebAssets

    /// Client-side routes that load the shell page (the client reads the path itself).
    static let pageRoutes: [RouterPath] = ["/", "/login", "/chat/**"]

    func addRoutes(to router: Router<VestnikRequestContext>) {
        for path in Self.pageRoutes {
            router.get(path, use: page)
            router.head(path, use: page)
        }
        router.get("/assets/:version/**", use: asset)
        router.head("/assets/:version/**", use: asset)
    }

    /// GET /  (and client routes) — the shell page.
    @Sendable func page(_ request: Request, context: VestnikRequestContext) async throws -> Response {
        var headers = Self.pageHeaders(host: request.head.authority)
        headers[.cacheControl] = "no-cache"
        return respond(assets.index, request: request, headers: headers)
    }

    /// GET /assets/{version}/{path…} — one bundled file.
    @Sendable func asset(_ request: Request, context: VestnikRequestContext) async throws -> Response {
        let version = context.parameters.get("version") ?? ""
        let path = context.parameters.getCatchAll().joined(separator: "/")
        // The table has only plain relative paths, so `..`, `%2e%2e`, `//` and absolute paths
        // simply miss; refuse them explicitly anyway so the intent is visible.
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !segments.isEmpty, !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." || $0.contains("\\") || $0.contains("%") }),
            let file = assets.asset(path)
        else {
            throw VestnikError(.notFound, "No such file.")
        }
        var headers: HTTPFields = [:]
        headers[.cacheControl] = version == assets.version ? "public, max-age=31536000, immutable" : "no-cache"
        return respond(file, request: request, headers: headers)
    }

    private func respond(_ file: WebAssets.File, request: Request, headers extra: HTTPFields) -> Response {
        var headers = extra
        headers[.contentType] = file.contentType
        headers[.eTag] = file.etag
        if let match = request.headers[.ifNoneMatch], match.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == file.etag }) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentLength] = String(file.body.count)
        if request.method == .head {
            return Response(status: .ok, headers: headers, body: .init())
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: file.body)))
    }

    /// The page's security policy: everything from this origin only, the stream on this host,
    /// no inline script or style, no framing.
    static func pageHeaders(host: String?) -> HTTPFields {
        var connect = "'self'"
        // Chrome and Firefox match ws: against 'self', older engines do not: name the host too,
        // but only when it is a plain host[:port] (it is echoed into a header).
        if let host, !host.isEmpty, host.count <= 255,
            host.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || ".-:[]".unicodeScalars.contains($0) })
        {
            connect += " ws://\(host) wss://\(host)"
        }
        var headers: HTTPFields = [:]
        headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
            + "connect-src \(connect); manifest-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
        return headers
    }
}
