import Crypto
import Foundation
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// One entry of a snapshot's manifest, in the spirit of mtree: what the
/// restore drill compares on both sides of the gap.
public struct ManifestEntry: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case file, directory, symlink, fifo, socket, character, block
    }

    /// The path below the snapshot's root, as bytes: names are not always
    /// UTF-8. JSON carries it as base64.
    public var path: Data
    public var type: Kind
    /// Bytes of a file, or of a link's target; 0 for the rest.
    public var size: UInt64
    /// The permission bits (`st_mode & 07777`).
    public var mode: UInt32
    /// Hex SHA-256 of a file's contents.
    public var sha256: String?
    /// A link's target, as bytes; never followed.
    public var target: Data?

    public init(path: Data, type: Kind, size: UInt64, mode: UInt32, sha256: String? = nil, target: Data? = nil) {
        self.path = path
        self.type = type
        self.size = size
        self.mode = mode
        self.sha256 = sha256
        self.target = target
    }

    /// The path for a person: escaped where it is not printable UTF-8.
    public var shownPath: String { ManifestEntry.shown(path) }

    /// UTF-8 where the bytes are UTF-8, `\xNN` for each byte that is not.
    static func shown(_ bytes: Data) -> String {
        let bytes = Array(bytes)
        var text = ""
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            let length = lead < 0x80 ? 1 : lead >> 5 == 0b110 ? 2 : lead >> 4 == 0b1110 ? 3 : lead >> 3 == 0b11110 ? 4 : 0
            if length > 0, index + length <= bytes.count, let scalar = String(validating: bytes[index..<index + length], as: UTF8.self) {
                text += scalar
                index += length
            } else {
                text += "\\x" + Hex.encode([lead])
                index += 1
            }
        }
        return printable(text, limit: 300)
    }
}

/// The manifest of one snapshot: every entry under its root, sorted by path
/// bytes so that two manifests compare in one pass.
public struct Manifest: Codable, Sendable, Equatable {
    /// HOST/DATASET on backupsvr.
    public var dataset: String
    public var snapshot: String
    public var entries: [ManifestEntry]

    public init(dataset: String, snapshot: String, entries: [ManifestEntry]) {
        self.dataset = dataset
        self.snapshot = snapshot
        self.entries = entries
    }

    public var fileBytes: UInt64 { entries.reduce(0) { $0 + ($1.type == .file ? $1.size : 0) } }
}

/// Why a manifest could not be made.
public struct ManifestError: FerryError {
    public var path: String
    public var problem: String

    public var description: String { "\(printable(path, limit: 300)): \(problem)" }
}

/// Walks a directory tree (a snapshot's read-only clone) into a manifest.
/// It never follows a symbolic link: every name is opened relative to its
/// directory's descriptor with `O_NOFOLLOW`, and links are read, not opened.
/// It is bounded in entries, depth and path length, so that a hostile tree
/// costs bounded memory.
public struct ManifestWalker: Sendable {
    public static let entryLimit = 2_000_000
    public static let depthLimit = 512
    public static let pathLimit = 4096

    public var entryLimit = Self.entryLimit

    public init(entryLimit: Int = Self.entryLimit) {
        self.entryLimit = entryLimit
    }

    /// The sorted entries under `root`, not counting `root` itself.
    public func entries(under root: String) throws(ManifestError) -> [ManifestEntry] {
        let fd: Int32
        do {
            fd = try retryingEINTR { open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        } catch {
            throw ManifestError(path: root, problem: "cannot be opened as a directory: \(error)")
        }
        var entries: [ManifestEntry] = []
        defer { close(fd) }
        try walk(fd, prefix: [], depth: 0, root: root, into: &entries)
        entries.sort { $0.path.lexicographicallyPrecedes($1.path) }
        return entries
    }

    private func walk(_ directory: Int32, prefix: [UInt8], depth: Int, root: String, into entries: inout [ManifestEntry])
        throws(ManifestError)
    {
        guard depth < Self.depthLimit else {
            throw ManifestError(path: root, problem: "is nested deeper than \(Self.depthLimit) directories")
        }
        for name in try names(in: directory, shownAs: root + "/" + ManifestEntry.shown(Data(prefix))) {
            let path = prefix.isEmpty ? name : prefix + [UInt8(ascii: "/")] + name
            let shown = root + "/" + ManifestEntry.shown(Data(path))
            guard path.count <= Self.pathLimit else {
                throw ManifestError(path: shown, problem: "a path longer than \(Self.pathLimit) bytes")
            }
            guard entries.count < entryLimit else {
                throw ManifestError(path: root, problem: "holds more than \(entryLimit) entries, the most a manifest lists")
            }
            let cName = name + [0]
            var info = stat()
            let found = cName.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { fstatat(directory, $0.baseAddress!, &info, AT_SYMLINK_NOFOLLOW) }
            }
            guard found == 0 else {
                throw ManifestError(path: shown, problem: "cannot be read: \(Errno(rawValue: errno))")
            }
            let mode = UInt32(info.st_mode) & 0o7777
            switch info.st_mode & S_IFMT {
            case S_IFREG:
                let (size, digest) = try hash(name, in: directory, shownAs: shown)
                entries.append(ManifestEntry(path: Data(path), type: .file, size: size, mode: mode, sha256: digest))
            case S_IFDIR:
                entries.append(ManifestEntry(path: Data(path), type: .directory, size: 0, mode: mode))
                let child = cName.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) {
                        openat(directory, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    }
                }
                guard child >= 0 else { throw ManifestError(path: shown, problem: "cannot be opened: \(Errno(rawValue: errno))") }
                defer { close(child) }
                try walk(child, prefix: path, depth: depth + 1, root: root, into: &entries)
            case S_IFLNK:
                var target = [UInt8](repeating: 0, count: Self.pathLimit + 1)
                let count = cName.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) { name in
                        target.withUnsafeMutableBufferPointer { readlinkat(directory, name.baseAddress!, $0.baseAddress!, $0.count) }
                    }
                }
                guard count >= 0, count <= Self.pathLimit else {
                    throw ManifestError(path: shown, problem: "a link whose target cannot be read or is too long")
                }
                entries.append(
                    ManifestEntry(path: Data(path), type: .symlink, size: UInt64(count), mode: mode, target: Data(target.prefix(count))))
            default:
                let kind: ManifestEntry.Kind =
                    switch info.st_mode & S_IFMT {
                    case S_IFIFO: .fifo
                    case S_IFSOCK: .socket
                    case S_IFCHR: .character
                    default: .block
                    }
                entries.append(ManifestEntry(path: Data(path), type: kind, size: 0, mode: mode))
            }
        }
    }

    /// The names in `directory` (raw bytes, NUL-terminated in C), without
    /// "." and "..".
    private func names(in directory: Int32, shownAs shown: String) throws(ManifestError) -> [[UInt8]] {
        let copy = dup(directory)
        guard copy >= 0, let stream = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            throw ManifestError(path: shown, problem: "cannot be listed: \(Errno(rawValue: errno))")
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [[UInt8]] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: UInt8.self, capacity: 256) { Array(UnsafeBufferPointer(start: $0, count: strlen($0))) }
            }
            if name == [46] || name == [46, 46] { continue }
            names.append(name)
            guard names.count <= entryLimit else {
                throw ManifestError(path: shown, problem: "holds more than \(entryLimit) entries, the most a manifest lists")
            }
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// The size and hex SHA-256 of the regular file `name`, opened without
    /// following a link and checked to be the file that was listed.
    private func hash(_ name: [UInt8], in directory: Int32, shownAs shown: String) throws(ManifestError) -> (UInt64, String) {
        let fd = (name + [0]).withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                openat(directory, $0.baseAddress!, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            }
        }
        guard fd >= 0 else { throw ManifestError(path: shown, problem: "cannot be opened: \(Errno(rawValue: errno))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw ManifestError(path: shown, problem: "changed while it was read")
        }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total: UInt64 = 0
        while true {
            let count: Int
            do {
                count = try readFully(fd, into: &buffer)
            } catch {
                throw ManifestError(path: shown, problem: "cannot be read: \(error)")
            }
            if count == 0 { break }
            hasher.update(data: buffer[..<count])
            total += UInt64(count)
            if count < buffer.count { break }
        }
        return (total, Hex.encode(hasher.finalize()))
    }
}
