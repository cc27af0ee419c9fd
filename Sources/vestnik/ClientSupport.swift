import ArgumentParser
import Foundation
import VestnikAPI
import VestnikCore
import VestnikKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Errors and output

/// A CLI-side failure, printed like server errors: `error: <message> (<code>)`.
struct CLIError: Error {
    var code: String
    var message: String
    /// Extra lines printed (indented) after the error line, e.g. ambiguous candidates.
    var details: [String]
    init(_ code: String, _ message: String, details: [String] = []) {
        self.code = code
        self.message = message
        self.details = details
    }
}

/// Unbuffered writes to stdout/stderr (so `tail` lines appear immediately when piped).
///
/// A closed stdout (`vestnik chats | head -1`) ends the process quietly with status 0, like other
/// Unix tools.
enum Output {
    static func line(_ text: String) {
        writeAll(Data((text + "\n").utf8), to: STDOUT_FILENO)
    }

    static func error(_ text: String) {
        writeAll(Data((text + "\n").utf8), to: STDERR_FILENO)
    }

    /// One JSON object per line, in the Vestnik JSON dialect.
    static func json(_ value: some Encodable) throws {
        var data = try VestnikJSON.encode(value)
        data.append(0x0A)
        writeAll(data, to: STDOUT_FILENO)
    }

    private static func writeAll(_ data: Data, to fd: Int32) {
        let failed = data.withUnsafeBytes { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, base + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return true
                }
                offset += n
            }
            return false
        }
        if failed, fd == STDOUT_FILENO { exit(errno == EPIPE ? 0 : 1) }
    }
}

/// Runs a command body (client or admin), turning every failure into `error: <message> (<code>)` on stderr and
/// a non-zero exit.
@discardableResult
func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as VestnikError {
        // Admin commands run Core in-process: its errors carry the same stable codes.
        Output.error("error: \(error.message) (\(error.code.rawValue))")
        throw ExitCode.failure
    } catch let error as VestnikClientError {
        Output.error("error: \(error.message) (\(error.code))")
        if error.isAuthenticationFailure, error.code != "invalid_credentials" {
            Output.error("hint: run `vestnik login` again")
        }
        throw ExitCode.failure
    } catch let error as CLIError {
        Output.error("error: \(error.message) (\(error.code))")
        for line in error.details { Output.error("  \(line)") }
        throw ExitCode.failure
    } catch let error as ExitCode {
        throw error
    } catch is CancellationError {
        throw ExitCode.failure
    } catch {
        Output.error("error: \(error) (internal_error)")
        throw ExitCode.failure
    }
}

/// `--json`: machine-readable output, one JSON object per line.
struct JSONOption: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON object per line instead of text.")
    var json = false
}

// MARK: - Credentials

/// What `vestnik login` stores: `credentials.json` in the config directory, mode 0600.
struct Credentials: Codable {
    var serverURL: String
    var token: String
    var userID: UserID
    var login: String
    var sessionID: SessionID?
}

enum CredentialStore {
    /// `$VESTNIK_CONFIG_DIR`, else `$XDG_CONFIG_HOME/vestnik`, else `~/.config/vestnik`.
    static var directory: URL {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["VESTNIK_CONFIG_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true)
        }
        if let xdg = env["XDG_CONFIG_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg, isDirectory: true).appendingPathComponent("vestnik", isDirectory: true)
        }
        return FileManager.default.homeDirectoryForCurrentUser
            .appendingPathComponent(".config", isDirectory: true)
            .appendingPathComponent("vestnik", isDirectory: true)
    }

    static var file: URL { directory.appendingPathComponent("credentials.json") }

    static func load() throws -> Credentials {
        let url = file
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CLIError("not_logged_in", "not logged in; run `vestnik login --server URL --login NAME`")
        }
        do {
            return try VestnikJSON.decode(Credentials.self, from: data)
        } catch {
            throw CLIError("bad_credentials", "cannot read \(url.path): \(error); run `vestnik login` again")
        }
    }

    /// Writes atomically: a 0600 temporary file in the 0700 directory, then rename.
    static func save(_ credentials: Credentials) throws {
        let dir = directory
        do {
            try FileManager.default.createDirectory(
                at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CLIError("config_error", "cannot create \(dir.path): \(error)")
        }
        let data = try VestnikJSON.encode(credentials)
        let target = file.path
        let temporary = dir.appendingPathComponent(".credentials.\(getpid()).tmp").path
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0o600)
        guard fd >= 0 else {
            throw CLIError("config_error", "cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        let written = data.withUnsafeBytes { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, base + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return -1
                }
                offset += n
            }
            return offset
        }
        fchmod(fd, 0o600)
        fsync(fd)
        close(fd)
        guard written == data.count, rename(temporary, target) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CLIError("config_error", "cannot write \(target): \(reason)")
        }
    }

    static func delete() {
        unlink(file.path)
    }
}

// MARK: - Password input

enum PasswordInput {
    /// The first line of stdin, without its line break.
    static func fromStdin() throws -> String {
        guard let line = readLine(strippingNewline: true) else {
            throw CLIError("no_password", "no password on stdin")
        }
        return line
    }

    /// Prompts on stderr and reads a line from the terminal with echo off.
    static func prompt(_ text: String) throws -> String {
        FileHandle.standardError.write(Data(text.utf8))
        guard isatty(STDIN_FILENO) == 1 else { return try fromStdin() }
        var original = termios()
        guard tcgetattr(STDIN_FILENO, &original) == 0 else { return try fromStdin() }
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSANOW, &silent)
        defer {
            tcsetattr(STDIN_FILENO, TCSANOW, &original)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        return try fromStdin()
    }
}

// MARK: - Session context: client, name resolution, formatting

/// Everything a logged-in command needs: the client plus caches for names.
final class ClientSession {
    let credentials: Credentials
    let client: VestnikClient
    private var userCache: [UserID: User] = [:]
    private var chatListCache: [ChatListItem]?
    private var chatCache: [ChatID: Chat] = [:]

    init(credentials: Credentials) throws {
        guard let url = URL(string: credentials.serverURL) else {
            throw CLIError("bad_credentials", "stored server URL \(credentials.serverURL) is invalid; run `vestnik login` again")
        }
        self.credentials = credentials
        self.client = VestnikClient(serverURL: url, token: credentials.token)
    }

    /// Loads the stored credentials and runs `body`, reporting errors the CLI way.
    static func run(_ body: (ClientSession) async throws -> Void) async throws {
        try await reportingErrors {
            let session = try ClientSession(credentials: try CredentialStore.load())
            try await body(session)
        }
    }

    // MARK: Users

    /// A user given as a UUID, `login` or `@login` (exact login match, case-insensitive).
    func resolveUser(_ text: String) async throws -> UserID {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let id = UserID(trimmed) { return id }
        let login = trimmed.hasPrefix("@") ? String(trimmed.dropFirst()) : trimmed
        guard !login.isEmpty else { throw CLIError("user_not_found", "empty user name") }
        if let user = try await findUser(login: login) { return user.id }
        throw CLIError("user_not_found", "no user with login \(login)")
    }

    private func findUser(login: String) async throws -> User? {
        if let cached = userCache.values.first(where: { $0.login.caseInsensitiveCompare(login) == .orderedSame }) {
            return cached
        }
        let results = try await client.searchUsers(query: login, limit: APILimits.maxPageSize)
        for profile in results.users { userCache[profile.user.id] = profile.user }
        return results.users.first { $0.user.login.caseInsensitiveCompare(login) == .orderedSame }?.user
    }

    /// A comma-separated list of users.
    func resolveUsers(_ list: String) async throws -> [UserID] {
        var ids: [UserID] = []
        for part in list.split(separator: ",") where !part.trimmingCharacters(in: .whitespaces).isEmpty {
            let id = try await resolveUser(String(part))
            if !ids.contains(id) { ids.append(id) }
        }
        return ids
    }

    /// The user, fetched once; `nil` if the server cannot say.
    func user(_ id: UserID) async -> User? {
        if let cached = userCache[id] { return cached }
        guard let profile = try? await client.user(id) else { return nil }
        userCache[id] = profile.user
        return profile.user
    }

    func remember(_ user: User) { userCache[user.id] = user }

    /// "Alice Smirnova", falling back to the login or a short id.
    func displayName(_ id: UserID) async -> String {
        guard let user = await user(id) else { return Self.short(id) }
        return user.displayName.isEmpty ? user.login : user.displayName
    }

    func loginName(_ id: UserID) async -> String {
        await user(id)?.login ?? Self.short(id)
    }

    // MARK: Chats

    func chatList(refresh: Bool = false) async throws -> [ChatListItem] {
        if !refresh, let cached = chatListCache { return cached }
        let list = try await client.chats().chats
        chatListCache = list
        for item in list { chatCache[item.chat.id] = item.chat }
        return list
    }

    /// A chat given as a UUID, a title (case-insensitive, exact), a personal chat's peer login, or
    /// `notes`. Ambiguous names fail listing the candidates.
    func resolveChat(_ text: String) async throws -> ChatID {
        let name = text.trimmingCharacters(in: .whitespaces)
        if let id = ChatID(name) { return id }
        let chats = try await chatList()
        var matches = chats.filter { $0.chat.title.caseInsensitiveCompare(name) == .orderedSame }
        let login = name.hasPrefix("@") ? String(name.dropFirst()) : name
        if chats.contains(where: { $0.chat.kind == .personal }), !login.isEmpty,
            let peer = try? await findUser(login: login)
        {
            matches += chats.filter { $0.chat.kind == .personal && $0.peerID == peer.id }
        }
        if matches.isEmpty, name.caseInsensitiveCompare("notes") == .orderedSame {
            matches = chats.filter { $0.chat.kind == .notes }
        }
        var seen = Set<ChatID>()
        matches = matches.filter { seen.insert($0.chat.id).inserted }
        switch matches.count {
        case 1: return matches[0].chat.id
        case 0: throw CLIError("chat_not_found", "no chat named \"\(name)\" (see `vestnik chats`)")
        default:
            var candidates: [String] = []
            for item in matches {
                candidates.append("\(item.chat.id)  \(item.chat.kind.rawValue)  \(await chatTitle(item))")
            }
            throw CLIError(
                "ambiguous_chat", "\"\(name)\" matches \(matches.count) chats; give one of these ids", details: candidates)
        }
    }

    /// How a chat is called in output: its title, the peer's name for personal chats, "Notes".
    func chatTitle(_ item: ChatListItem) async -> String {
        if item.chat.kind == .personal, let peer = item.peerID {
            return "@\(await loginName(peer))"
        }
        return await chatTitle(item.chat)
    }

    func chatTitle(_ chat: Chat) async -> String {
        if chat.kind == .personal, let item = chatListCache?.first(where: { $0.chat.id == chat.id }), let peer = item.peerID {
            return "@\(await loginName(peer))"
        }
        if !chat.title.isEmpty { return chat.title }
        return chat.kind == .notes ? "Notes" : Self.short(chat.id)
    }

    /// The chat's title by id (fetched once).
    func chatTitle(_ id: ChatID) async -> String {
        if let chat = chatCache[id] { return await chatTitle(chat) }
        if let details = try? await client.chat(id) {
            chatCache[id] = details.chat
            if details.chat.kind == .personal,
                let peer = details.members.first(where: { $0.userID != credentials.userID })?.userID
            {
                return "@\(await loginName(peer))"
            }
            return await chatTitle(details.chat)
        }
        return Self.short(id)
    }

    func remember(_ chat: Chat) { chatCache[chat.id] = chat }

    /// A message id argument.
    static func messageID(_ text: String) throws -> MessageID {
        guard let id = MessageID(text.trimmingCharacters(in: .whitespaces)) else {
            throw CLIError("invalid_argument", "\(text) is not a message id")
        }
        return id
    }

    // MARK: Formatting

    static func short<T>(_ id: Identifier<T>) -> String { String(id.description.prefix(8)) }

    /// `[12:03] Alice Smirnova: hi (id …)`
    func format(_ message: Message) async -> String {
        var line = "[\(Self.time(message.createdAt))] \(await displayName(message.senderID)): "
        if let origin = message.forwardedFrom {
            line += "[forwarded from \(await displayName(origin.senderID))] "
        }
        if let reply = message.replyTo {
            line += "[reply to \(Self.short(reply))] "
        }
        if message.isDeleted {
            line += "(message deleted)"
        } else {
            line += message.text.replacingOccurrences(of: "\n", with: "\n    ")
        }
        if message.editedAt != nil, !message.isDeleted { line += " (edited)" }
        if !message.reactions.isEmpty { line += " [\(Self.reactions(message.reactions))]" }
        if message.pinned { line += " [pinned]" }
        for attachment in message.attachments ?? [] { line += " [file \(attachment.fileName), \(attachment.size) bytes]" }
        line += " (id \(message.id))"
        // Bot buttons, numbered as `vestnik press MESSAGE N` takes them.
        var number = 0
        for (title, rows) in [("buttons", message.bubble ?? []), ("keyboard", message.keyboard ?? [])] where !rows.isEmpty {
            let labels = rows.map { row in
                row.map { button -> String in
                    number += 1
                    return "[\(number)] \(button.label)"
                }.joined(separator: "  ")
            }
            line += "\n    \(title): " + labels.joined(separator: " | ")
        }
        return line
    }

    static func reactions(_ reactions: [ReactionSummary]) -> String {
        reactions.isEmpty ? "no reactions" : reactions.map { "\($0.emoji) \($0.count)" }.joined(separator: ", ")
    }

    /// `12:03` today, `2024-05-01 12:03` otherwise, local time.
    static func time(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = .current
        formatter.dateFormat = Calendar.current.isDateInToday(date) ? "HH:mm" : "yyyy-MM-dd HH:mm"
        return formatter.string(from: date)
    }
}
