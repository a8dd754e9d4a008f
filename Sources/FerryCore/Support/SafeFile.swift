import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A regular file on an untrusted medium, opened without following a link,
/// for reading in chunks or appending. The descriptor closes with the value.
public final class SafeFile: @unchecked Sendable {
    public let path: String
    let fd: Int32

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    private func fail(_ error: Errno) -> FileAccessError { FileAccessError(path: path, code: .system(error)) }

    public func size() throws(FileAccessError) -> Int {
        var info = stat()
        do {
            try retryingEINTR { fstat(fd, &info) }
        } catch {
            throw fail(error)
        }
        return Int(info.st_size)
    }

    /// Up to `count` bytes from `offset`.
    public func read(at offset: Int, count: Int) throws(FileAccessError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        do {
            let filled = try readFully(fd, into: &bytes, offset: offset)
            return Array(bytes[..<filled])
        } catch {
            throw fail(error)
        }
    }

    /// Writes all of `bytes` at the end (the file is open for appending).
    public func append(_ bytes: [UInt8]) throws(FileAccessError) {
        do {
            try writeAll(fd, bytes[...])
        } catch {
            throw fail(error)
        }
    }

    public func truncate(to length: Int) throws(FileAccessError) {
        do {
            try retryingEINTR { ftruncate(fd, off_t(length)) }
        } catch {
            throw fail(error)
        }
    }

    public func sync() throws(FileAccessError) {
        do {
            try retryingEINTR { fsync(fd) }
        } catch {
            throw fail(error)
        }
    }
}

extension SafeDirectory {
    /// Opens the regular file `name` for reading; nil when it does not exist.
    public func openFile(_ name: String) throws(FileAccessError) -> SafeFile? {
        try open(name, flags: O_RDONLY, create: false)
    }

    /// Opens the regular file `name` for appending, making it when missing.
    public func openForAppending(_ name: String) throws(FileAccessError) -> SafeFile {
        try open(name, flags: O_RDWR | O_APPEND, create: true)!
    }

    /// fsync of the directory itself, so that a new or renamed entry lasts.
    public func syncDirectory() throws(FileAccessError) {
        do {
            try retryingEINTR { fsync(fd) }
        } catch {
            throw FileAccessError(path: path, code: .system(error))
        }
    }

    private func open(_ name: String, flags: Int32, create: Bool) throws(FileAccessError) -> SafeFile? {
        let full = try child(name)
        let file: Int32
        do {
            file = try retryingEINTR {
                openat(fd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | (create ? O_CREAT : 0), 0o644)
            }
        } catch {
            if error == .noSuchFileOrDirectory, !create { return nil }
            if error == .tooManySymbolicLinkLevels { throw FileAccessError(path: full, code: .symlink) }
            throw FileAccessError(path: full, code: .system(error))
        }
        let opened = SafeFile(fd: file, path: full)
        var info = stat()
        guard fstat(file, &info) == 0, FileType(mode: info.st_mode) == .regular else {
            throw FileAccessError(path: full, code: .notRegularFile)
        }
        return opened
    }
}
