import Foundation
import VestnikHTTP

/// The browser client (`Resources/web`), read once at start-up and served from memory.
///
/// `VESTNIK_WEB_DIR` serves another directory instead (for working on the client without
/// rebuilding the binary; restart the server to pick up changes).
enum WebClientBundle {
    static let assets: WebAssets? = {
        let override = ProcessInfo.processInfo.environment["VESTNIK_WEB_DIR"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
        guard let root = override ?? Bundle.module.url(forResource: "web", withExtension: nil) else { return nil }
        return WebAssets(files: read(root))
    }()

    /// Every regular file under `root`, keyed by its `/`-separated path relative to `root`.
    static func read(_ root: URL) -> [String: Data] {
        let base = root.standardizedFileURL.resolvingSymlinksInPath().path
        guard let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else { return [:] }
        var files: [String: Data] = [:]
        for case let url as URL in enumerator {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else { continue }
            let path = url.standardizedFileURL.resolvingSymlinksInPath().path
            guard path.hasPrefix(base + "/"), let data = try? Data(contentsOf: url) else { continue }
            let relative = String(path.dropFirst(base.count + 1))
            if relative.hasPrefix(".") { continue }
            files[relative] = data
        }
        return files
    }
}
