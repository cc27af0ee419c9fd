import Foundation

/// Input rules shared by every service; each failure is an `invalid_request` naming the field.
package enum Validation {
    /// Logins: 2–32 of `a-z 0-9 . _ -`, starting with a letter or digit; stored lowercased.
    package static func login(_ raw: String) throws -> String {
        let login = raw.trimmingCharacters(in: .whitespaces).lowercased()
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789._-")
        guard (2...32).contains(login.count), login.allSatisfy({ allowed.contains($0) }),
            let first = login.first, first.isLetter || first.isNumber
        else {
            throw VestnikError.invalid("A login is 2–32 characters of a–z, 0–9, '.', '_' or '-', starting with a letter or digit.")
        }
        return login
    }

    /// Passwords: 8–1024 characters.
    package static func password(_ raw: String) throws -> String {
        guard raw.count >= 8 else { throw VestnikError.invalid("A password must be at least 8 characters long.") }
        guard raw.utf8.count <= 1024 else { throw VestnikError.invalid("A password must be at most 1024 bytes long.") }
        return raw
    }

    /// A single-line or free text field, trimmed, with no control characters except newlines in
    /// multi-line fields.
    package static func text(_ raw: String, field: String, min: Int, max: Int, multiline: Bool = false) throws -> String {
        let value = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard value.count >= min else {
            throw VestnikError.invalid(min == 1 ? "The \(field) must not be empty." : "The \(field) must be at least \(min) characters long.")
        }
        guard value.count <= max else { throw VestnikError.invalid("The \(field) must be at most \(max) characters long.") }
        let forbidden = value.unicodeScalars.contains { scalar in
            if multiline, scalar == "\n" || scalar == "\t" || scalar == "\r" { return false }
            return scalar.properties.generalCategory == .control
        }
        guard !forbidden else { throw VestnikError.invalid("The \(field) contains control characters.") }
        return value
    }

    /// A plausible email address (one `@`, a dot in the domain, no spaces).
    package static func email(_ raw: String) throws -> String {
        let value = raw.trimmingCharacters(in: .whitespaces)
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        guard value.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
            !value.contains(where: { $0.isWhitespace })
        else { throw VestnikError.invalid("The email address is not valid.") }
        return value
    }
}
