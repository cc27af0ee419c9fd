import Foundation

/// The web client's static files, held in memory and addressed by relative path.
///
/// Files are looked up in a dictionary built at start-up, never on the file system, so no request
/// path can reach anything outside the bundle. Every asset URL carries ``version``, a hash of all
/// the files, so browsers may cache assets forever and still get new ones after an upgrade.
package struct WebAssets: Sendable {
    /// One servable file.
    package struct File: Sendable {
        /// The bytes served.
        package let body: Data
        /// The `Content-Type` header value.
        package let contentType: String
        /// A strong validator: a hash of the body.
        package let etag: String
    }

    /// A short hash over every file, used in asset URLs (`/assets/<version>/app.js`).
    package let version: String
    /// The shell page with `{{ASSET_VERSION}}` replaced by ``version`` and `{{MODULE_PRELOADS}}` by a
    /// `modulepreload` link for every JavaScript file.
    package let index: File
    private let files: [String: File]

    /// Builds the table from `relative path → contents`; `index.html` is the shell page.
    ///
    /// Returns nil without an `index.html`.
    package init?(files raw: [String: Data]) {
        guard let indexBody = raw["index.html"] else { return nil }
        var hash = FNV1a()
        for path in raw.keys.sorted() {
            hash.add(Data(path.utf8))
            hash.add(raw[path] ?? Data())
        }
        let version = hash.hex
        self.version = version
        let preloads = raw.keys.filter { $0.hasSuffix(".js") }.sorted()
            .map { "<link rel=\"modulepreload\" href=\"/assets/\(version)/\($0)\">" }.joined(separator: "\n")
        let page = String(decoding: indexBody, as: UTF8.self)
            .replacingOccurrences(of: "{{MODULE_PRELOADS}}", with: preloads)
            .replacingOccurrences(of: "{{ASSET_VERSION}}", with: version)
        self.index = Self.file(Data(page.utf8), path: "index.html")
        var files: [String: File] = [:]
        for (path, body) in raw where path != "index.html" {
            files[path] = Self.file(body, path: path)
        }
        self.files = files
    }

    /// The asset at `path` (relative, `/`-separated), if it is one of the bundled files.
    package func asset(_ path: String) -> File? {
        files[path]
    }

    static func file(_ body: Data, path: String) -> File {
        var hash = FNV1a()
        hash.add(body)
        return File(body: body, contentType: contentType(path), etag: "\"\(hash.hex)\"")
    }

    /// The content type for a file name; unknown extensions are served as opaque bytes.
    static func contentType(_ path: String) -> String {
        switch path.split(separator: ".").last.map({ $0.lowercased() }) ?? "" {
        case "html": "text/html; charset=utf-8"
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "json": "application/json; charset=utf-8"
        case "webmanifest": "application/manifest+json; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        case "woff2": "font/woff2"
        case "txt": "text/plain; charset=utf-8"
        default: "application/octet-stream"
        }
    }
}

/// 64-bit FNV-1a: a cache-busting fingerprint, not a security hash (the files are our own).
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ data: Data) {
        for byte in data {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
    }

    var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
