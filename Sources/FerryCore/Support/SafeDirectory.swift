internal import CLinuxShims
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// What went wrong while touching a file on an untrusted medium.
public struct FileAccessError: FerryError {
    public enum Code: Sendable, Equatable {
        case symlink
        case notRegularFile
        case notDirectory
        case tooLarge(limit: Int)
        /// A directory holding more names than ferry lists.
        case tooManyEntries(limit: Int)
        case badName
        case system(Errno)
    }
    public var path: String
    public var code: Code

    public var description: String {
        switch code {
        case .symlink: "\(printable(path)) is a symbolic link; ferry opens nothing through a link"
        case .notRegularFile: "\(printable(path)) is not a regular file"
        case .notDirectory: "\(printable(path)) is not a directory"
        case .tooLarge(let limit): "\(printable(path)) is larger than \(limit) bytes"
        case .tooManyEntries(let limit): "\(printable(path)) holds more than \(limit) entries, the most ferry lists in one directory"
        case .badName: "\(printable(path)) is not a plain file name"
        case .system(let errno): "\(printable(path)): \(errno)"
        }
    }
}

/// An open directory on a medium that is not trusted.
///
/// Every name is resolved relative to this directory's descriptor with
/// `O_NOFOLLOW`, so a symbolic link on the medium is never followed, even
/// where the `nosymfollow` mount option is missing. The descriptor closes
/// with the value.
public final class SafeDirectory: @unchecked Sendable {
    /// The path shown in errors.
    public let path: String
    /// The path as the kernel resolves it, for the tools ferry runs on it.
    public let realPath: String
    let fd: Int32

    /// Opens `path`, which must be a real directory, not a link to one.
    /// Errors name the directory `shownAs` (for example `/dev/sdb1:`), or `path`.
    public init(path: String, shownAs: String? = nil) throws(FileAccessError) {
        self.path = shownAs ?? path
        self.realPath = path
        do {
            fd = try retryingEINTR { open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        } catch {
            throw Self.classify(error, path: path)
        }
    }

    private init(fd: Int32, path: String, realPath: String) {
        self.fd = fd
        self.path = path
        self.realPath = realPath
    }

    deinit { close(fd) }

    func child(_ name: String) throws(FileAccessError) -> String {
        try child(EntryName(name))
    }

    /// The path of `name` here, as errors show it (escaped); throws unless
    /// `name` is a plain name in this directory.
    func child(_ name: EntryName) throws(FileAccessError) -> String {
        let full = path.hasSuffix("/") ? path + name.description : path + "/" + name.description
        guard name.isPlain else {
            throw FileAccessError(path: full, code: .badName)
        }
        return full
    }

    private static func classify(_ error: Errno, path: String) -> FileAccessError {
        switch error {
        case .tooManySymbolicLinkLevels: FileAccessError(path: path, code: .symlink)
        case .notDirectory: FileAccessError(path: path, code: .notDirectory)
        default: FileAccessError(path: path, code: .system(error))
        }
    }

    /// The kind of the entry `name`, without following a link; nil when absent.
    public func kind(of name: String) throws(FileAccessError) -> FileType? {
        try kind(of: EntryName(name))
    }

    /// The kind of the entry `name`, without following a link; nil when absent.
    public func kind(of name: EntryName) throws(FileAccessError) -> FileType? {
        try status(of: name)?.kind
    }

    /// What one fstatat(2) of the entry `name` says, without following a
    /// link: its kind, size and owner. Nil when it is absent.
    public func status(of name: EntryName) throws(FileAccessError) -> EntryStatus? {
        let full = try child(name)
        var info = stat()
        do {
            try retryingEINTR { name.withCString { fstatat(fd, $0, &info, AT_SYMLINK_NOFOLLOW) } }
        } catch {
            if error == .noSuchFileOrDirectory { return nil }
            throw FileAccessError(path: full, code: .system(error))
        }
        return EntryStatus(kind: FileType(mode: info.st_mode), size: UInt64(info.st_size), uid: info.st_uid, gid: info.st_gid)
    }

    /// Opens the subdirectory `name`, creating it with `mode` when `create` is set.
    public func subdirectory(_ name: String, create: Bool = false, mode: mode_t = 0o755) throws(FileAccessError) -> SafeDirectory {
        try subdirectory(EntryName(name), create: create, mode: mode)
    }

    /// Opens the subdirectory `name`, creating it with `mode` when `create` is set.
    public func subdirectory(_ name: EntryName, create: Bool = false, mode: mode_t = 0o755) throws(FileAccessError) -> SafeDirectory {
        let full = try child(name)
        if create {
            do {
                try retryingEINTR { name.withCString { mkdirat(fd, $0, mode) } }
            } catch  where error == .fileExists {
                // An existing entry is checked by the open below.
            } catch {
                throw FileAccessError(path: full, code: .system(error))
            }
        }
        if try kind(of: name) == .symlink {
            throw FileAccessError(path: full, code: .symlink)
        }
        do {
            let child = try retryingEINTR { name.withCString { openat(fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) } }
            // realPath is for tools ferry runs on directories it names
            // itself; a name that is not UTF-8 shows there escaped.
            return SafeDirectory(fd: child, path: full, realPath: realPath + "/" + (name.string ?? name.description))
        } catch {
            throw Self.classify(error, path: full)
        }
    }

    /// Reads the regular file `name` whole, refusing anything over `limit` bytes.
    public func readFile(_ name: String, limit: Int) throws(FileAccessError) -> [UInt8] {
        let full = try child(name)
        let file: Int32
        do {
            // O_NONBLOCK keeps a FIFO planted on the medium from hanging the open.
            file = try retryingEINTR { openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY) }
        } catch {
            throw Self.classify(error, path: full)
        }
        defer { close(file) }
        var info = stat()
        do {
            try retryingEINTR { fstat(file, &info) }
        } catch {
            throw FileAccessError(path: full, code: .system(error))
        }
        guard FileType(mode: info.st_mode) == .regular else {
            throw FileAccessError(path: full, code: .notRegularFile)
        }
        guard info.st_size <= limit else {
            throw FileAccessError(path: full, code: .tooLarge(limit: limit))
        }
        // Room for what fstat says plus one byte, to notice a file that grows
        // past its size (or the limit) while it is read.
        var bytes = [UInt8](repeating: 0, count: min(limit, Int(info.st_size)) + 1)
        let filled: Int
        do {
            filled = try readFully(file, into: &bytes)
        } catch {
            throw FileAccessError(path: full, code: .system(error))
        }
        guard filled < bytes.count, filled <= limit else {
            throw FileAccessError(path: full, code: .tooLarge(limit: limit))
        }
        return Array(bytes[..<filled])
    }

    /// Replaces the file `name` with `bytes` so that a crash leaves either
    /// the old file or the new one: write a temporary file, fsync it, rename
    /// it over `name`, then fsync the directory.
    public func writeFileAtomically(_ name: String, bytes: [UInt8], mode: mode_t = 0o644) throws(FileAccessError) {
        let full = try child(name)
        if try kind(of: name) == .symlink {
            throw FileAccessError(path: full, code: .symlink)
        }
        let temporary = ".\(name).new"
        _ = unlinkat(fd, temporary, 0)
        let file: Int32
        do {
            file = try retryingEINTR { openat(fd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) }
        } catch {
            throw FileAccessError(path: full, code: .system(error))
        }
        var isOpen = true
        do throws(Errno) {
            try writeAll(file, bytes[...])
            try retryingEINTR { fsync(file) }
            isOpen = false
            try closeOnce(file)
            try retryingEINTR { renameat(fd, temporary, fd, name) }
            try retryingEINTR { fsync(fd) }
        } catch {
            if isOpen { close(file) }
            _ = unlinkat(fd, temporary, 0)
            throw FileAccessError(path: full, code: .system(error))
        }
    }
}

/// A directory entry as fstatat(2) sees it.
public struct EntryStatus: Sendable, Equatable {
    public var kind: FileType
    public var size: UInt64
    public var uid: uid_t
    public var gid: gid_t

    /// Whether `account` owns the entry already, so that a chown would change nothing.
    public func isOwned(by account: Account) -> Bool { uid == account.uid && gid == account.gid }
}

/// The kind of a directory entry, from `st_mode`.
public enum FileType: Sendable, Equatable {
    case regular, directory, symlink, blockDevice, other

    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symlink
        case S_IFBLK: self = .blockDevice
        default: self = .other
        }
    }
}

extension SafeDirectory {
    /// The most entries ferry lists in one directory of a medium.
    public static let entryLimit = 100_000

    /// The names in this directory, without "." and "..", as the bytes the
    /// kernel gives: a name that is not UTF-8 is still the entry it names.
    public func entryNames() throws(FileAccessError) -> [EntryName] {
        let copy = dup(fd)
        guard copy >= 0, let stream = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            throw FileAccessError(path: path, code: .system(Errno(rawValue: errno)))
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [EntryName] = []
        while let entry = readdir(stream) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if bytes == [0x2E] || bytes == [0x2E, 0x2E] { continue }
            names.append(EntryName(bytes: bytes))
            if names.count > Self.entryLimit {
                throw FileAccessError(path: path, code: .tooManyEntries(limit: Self.entryLimit))
            }
        }
        return names
    }

    /// The names in this directory that are UTF-8 text, for directories
    /// where ferry looks only for names it chose itself (`.card`, `.json`);
    /// the others are left out. Where every entry matters (the stick's
    /// `nncp/`), use `entryNames()`.
    public func entries() throws(FileAccessError) -> [String] {
        try entryNames().compactMap(\.string)
    }

    /// Removes the entry `name` (a file, a link itself, or an empty directory).
    public func remove(_ name: String) throws(FileAccessError) {
        try remove(EntryName(name))
    }

    /// Removes the entry `name` (a file, a link itself, or an empty directory).
    public func remove(_ name: EntryName) throws(FileAccessError) {
        let full = try child(name)
        let isDirectory = try kind(of: name) == .directory
        do {
            try retryingEINTR { name.withCString { unlinkat(fd, $0, isDirectory ? AT_REMOVEDIR : 0) } }
        } catch  where error == .noSuchFileOrDirectory {
        } catch {
            throw FileAccessError(path: full, code: .system(error))
        }
    }

    /// Gives the entry `name` to `account`, without following a link.
    public func setOwner(_ name: String, to account: Account) throws(FileAccessError) {
        try setOwner(EntryName(name), to: account)
    }

    /// Gives the entry `name` to `account`, without following a link.
    public func setOwner(_ name: EntryName, to account: Account) throws(FileAccessError) {
        let full = try child(name)
        do {
            try retryingEINTR { name.withCString { fchownat(fd, $0, account.uid, account.gid, AT_SYMLINK_NOFOLLOW) } }
        } catch {
            throw FileAccessError(path: full, code: .system(error))
        }
    }

    /// Lets every user pass through this directory (o+x), as nncp-user must
    /// to reach `nncp/` on a stick whose top directory is root's alone.
    public func allowTraversal() throws(FileAccessError) {
        var info = stat()
        do {
            try retryingEINTR { fstat(fd, &info) }
            if info.st_mode & 0o001 == 0 {
                try retryingEINTR { fchmod(fd, (info.st_mode & 0o7777) | 0o001) }
            }
        } catch {
            throw FileAccessError(path: path, code: .system(error))
        }
    }

    /// The size in bytes of the entry `name`, without following a link.
    public func size(of name: String) throws(FileAccessError) -> UInt64 {
        try size(of: EntryName(name))
    }

    /// The size in bytes of the entry `name`, without following a link.
    public func size(of name: EntryName) throws(FileAccessError) -> UInt64 {
        let full = try child(name)
        var info = stat()
        do {
            try retryingEINTR { name.withCString { fstatat(fd, $0, &info, AT_SYMLINK_NOFOLLOW) } }
        } catch {
            throw FileAccessError(path: full, code: .system(error))
        }
        return UInt64(info.st_size)
    }

    /// Free bytes (for an unprivileged writer) and total bytes of the filesystem.
    public func space() throws(FileAccessError) -> (free: UInt64, total: UInt64) {
        var info = statvfs()
        do {
            try retryingEINTR { fstatvfs(fd, &info) }
        } catch {
            throw FileAccessError(path: path, code: .system(error))
        }
        return (UInt64(info.f_bavail) * UInt64(info.f_frsize), UInt64(info.f_blocks) * UInt64(info.f_frsize))
    }

    /// Writes everything cached for this filesystem to the medium (syncfs).
    public func syncFilesystem() throws(FileAccessError) {
        do {
            try retryingEINTR { ferry_syncfs(fd) }
        } catch {
            throw FileAccessError(path: path, code: .system(error))
        }
    }

    /// Copies the local file at `source` into this directory as `name`,
    /// through a temporary `nncpxfer.*` name renamed into place, and gives
    /// it to `owner`. Nothing is fsynced: the caller syncs the filesystem
    /// once (syncfs) before it says the copies are there, as one fsync a
    /// file would cost a stick tens of milliseconds each. Writeback starts
    /// as each file is done, so that the final sync is short. An interrupted
    /// copy leaves only the temporary, whose name no nncp-xfer -rx takes
    /// for a packet and the next visit removes.
    ///
    /// Returns false, copying nothing, when `source` is gone or does not
    /// start with `magic`. `chunkDone` runs after each chunk copied.
    public func copyIn(
        from source: String, as name: String, owner: Account?, magic: [UInt8], chunkDone: () -> Void = {}
    ) throws(FileAccessError) -> Bool {
        let full = try child(name)
        let input = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard input >= 0 else {
            if errno == ENOENT { return false }
            throw FileAccessError(path: source, code: .system(Errno(rawValue: errno)))
        }
        defer { close(input) }
        var head = [UInt8](repeating: 0, count: magic.count)
        do {
            guard try readFully(input, into: &head, offset: 0) == magic.count, head == magic else { return false }
        } catch {
            throw FileAccessError(path: source, code: .system(error))
        }
        let temporary = "nncpxfer.ferry.\(name)"
        let output: Int32
        do {
            output = try createExclusively(temporary)
        } catch {
            throw FileAccessError(path: full, code: .system(error))
        }
        var isOpen = true
        do throws(Errno) {
            while true {
                // A packet can take minutes to copy: a SIGTERM stops it here.
                if Task.isCancelled { throw Errno.canceled }
                let count = try retryingEINTR { ferry_sendfile(output, input, Self.copyChunk) }
                if count == 0 { break }
                chunkDone()
            }
            if let owner { try retryingEINTR { fchown(output, owner.uid, owner.gid) } }
            _ = ferry_start_writeback(output, 0, 0)
            isOpen = false
            try closeOnce(output)
            try retryingEINTR { renameat(fd, temporary, fd, name) }
        } catch {
            if isOpen { close(output) }
            _ = unlinkat(fd, temporary, 0)
            throw FileAccessError(path: full, code: .system(error))
        }
        return true
    }

    /// What one sendfile(2) copies at most: a SIGTERM waits no longer.
    static let copyChunk: UInt = 8 << 20

    /// A new file `name`, open for writing; a leftover of that name, from a
    /// copy killed midway, is removed first.
    private func createExclusively(_ name: String) throws(Errno) -> Int32 {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        do {
            return try retryingEINTR { openat(fd, name, flags, 0o644) }
        } catch  where error == .fileExists {
            _ = unlinkat(fd, name, 0)
            return try retryingEINTR { openat(fd, name, flags, 0o644) }
        }
    }
}

extension SafeDirectory {
    /// Takes an exclusive flock(2) on this directory, waiting for any other
    /// holder, so that two writers on one medium take turns.
    public func lockExclusively() throws(FileAccessError) {
        do {
            try retryingEINTR { flock(fd, LOCK_EX) }
        } catch {
            throw FileAccessError(path: path, code: .system(error))
        }
    }

    /// Releases the lock taken by `lockExclusively()`.
    public func unlock() {
        flock(fd, LOCK_UN)
    }
}
