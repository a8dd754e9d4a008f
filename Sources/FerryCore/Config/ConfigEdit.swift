import Foundation

/// Sets single keys in ferry.toml, line by line, so that the admin's
/// comments and layout stay: pairing writes `peer`, `[send].backupsvr` and
/// `[receive].senders`, nothing else.
public struct ConfigEdit: Sendable {
    public var path: String
    public var text: String

    init(path: String, text: String) {
        self.path = path
        self.text = text
    }

    public init(path: String) throws(PairingError) {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw PairingError("\(path) cannot be read; nothing changed")
        }
        self.path = path
        self.text = text
    }

    /// A TOML basic string.
    public static func quoted(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += String(format: "\\u%04X", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A TOML inline table of strings, keys quoted and sorted.
    public static func inlineTable(_ table: [String: String]) -> String {
        table.isEmpty
            ? "{}"
            : "{ " + table.sorted { $0.key < $1.key }.map { "\(quoted($0.key)) = \(quoted($0.value))" }.joined(separator: ", ") + " }"
    }

    /// Sets `key = value` (`value` already TOML) in `table`, or at the top
    /// level when `table` is nil: an existing one-line setting is replaced,
    /// else the line goes after the table's last setting.
    public mutating func set(_ key: String, to value: String, in table: String? = nil) {
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        func header(_ line: String) -> String? {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("["), let close = trimmed.firstIndex(of: "]") else { return nil }
            return trimmed[trimmed.index(after: trimmed.startIndex)..<close].trimmingCharacters(in: .whitespaces)
        }
        var start = 0
        if let table {
            guard let found = lines.firstIndex(where: { header($0) == table }) else {
                if lines.last.map({ !$0.trimmingCharacters(in: .whitespaces).isEmpty }) ?? false { lines.append("") }
                lines += ["[\(table)]", "\(key) = \(value)"]
                text = lines.joined(separator: "\n") + "\n"
                return
            }
            start = found + 1
        }
        let end = lines[start...].firstIndex { header($0) != nil } ?? lines.count
        let line = "\(key) = \(value)"
        if let existing = lines[start..<end].firstIndex(where: { Self.setsKey($0, key) }) {
            lines[existing] = line
        } else {
            let lastSetting = lines[start..<end].lastIndex {
                !$0.trimmingCharacters(in: .whitespaces).isEmpty && !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#")
            }
            lines.insert(line, at: lastSetting.map { $0 + 1 } ?? start)
        }
        text = lines.joined(separator: "\n") + "\n"
    }

    private static func setsKey(_ line: String, _ key: String) -> Bool {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        for form in [key, quoted(key)] where trimmed.hasPrefix(form) {
            if trimmed.dropFirst(form.count).trimmingCharacters(in: .whitespaces).hasPrefix("=") { return true }
        }
        return false
    }

    /// The config the edited text gives; `check` says whether the edit took
    /// (a layout this editor does not know, such as `[receive.senders]` as a
    /// table of its own, ends up elsewhere).
    public func parsed(check: (FerryConfig) -> Bool, describing change: String) throws(PairingError) -> FerryConfig {
        let config: FerryConfig
        do {
            config = try FerryConfig.parse(text, path: path)
        } catch {
            throw PairingError("\(path) could not take \(change) (\(error)); add it by hand; nothing changed")
        }
        guard check(config) else { throw PairingError("\(path) could not take \(change); add it by hand; nothing changed") }
        return config
    }

    /// Replaces the file with the edited text: a temporary file with the
    /// original's mode and owner, synced, then renamed over it.
    public func write() throws(PairingError) {
        var original = stat()
        guard stat(path, &original) == 0 else { throw PairingError("\(path) cannot be read: \(String(cString: strerror(errno)))") }
        let temporary = path + ".ferry-new"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, original.st_mode & 0o7777)
        guard fd >= 0 else { throw PairingError("\(temporary) cannot be written: \(String(cString: strerror(errno)))") }
        var failed: String?
        do {
            try writeAll(fd, Array(text.utf8)[...])
        } catch {
            failed = "\(error)"
        }
        if failed == nil, fchmod(fd, original.st_mode & 0o7777) != 0 || fchown(fd, original.st_uid, original.st_gid) != 0 || fsync(fd) != 0
        {
            failed = String(cString: strerror(errno))
        }
        close(fd)
        if failed == nil, rename(temporary, path) != 0 { failed = String(cString: strerror(errno)) }
        if let failed {
            unlink(temporary)
            throw PairingError("\(path) cannot be rewritten: \(failed)")
        }
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }
}
