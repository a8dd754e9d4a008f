import Foundation
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Directories and files of this host (state-dir, mount-root, the stream
/// store), made and removed with ferry's own errors: the path and errno,
/// never Foundation's NSCocoaErrorDomain text.
enum LocalFiles {
    /// `mkdir -p path`: `path` gets `mode` when it is made, the directories
    /// above it 0755.
    static func createDirectory(_ path: String, mode: mode_t) throws(FileAccessError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        let components = path.split(separator: "/")
        for (index, component) in components.enumerated() {
            prefix += "/" + component
            do {
                try retryingEINTR { mkdir(prefix, index == components.count - 1 ? mode : 0o755) }
            } catch  where error == .fileExists {
            } catch {
                throw FileAccessError(path: prefix, code: .system(error))
            }
        }
        var info = stat()
        do {
            try retryingEINTR { stat(path, &info) }
        } catch {
            throw FileAccessError(path: path, code: .system(error))
        }
        guard FileType(mode: info.st_mode) == .directory else { throw FileAccessError(path: path, code: .system(.notDirectory)) }
    }

    /// Removes `path` and everything under it.
    static func removeTree(_ path: String) throws(FileAccessError) {
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw FileAccessError(path: path, foundation: error)
        }
    }
}

extension FileAccessError {
    /// Foundation's file error for `path` as ferry's: the path and the errno
    /// under it (corelibs-foundation keeps it as the underlying POSIX error).
    init(path: String, foundation error: any Error) {
        let error = error as NSError
        let posix = [error, error.userInfo[NSUnderlyingErrorKey] as? NSError].compactMap { $0 }.first { $0.domain == NSPOSIXErrorDomain }
        if let posix {
            self.init(path: path, code: .system(Errno(rawValue: Int32(posix.code))))
            return
        }
        let errno: Errno =
            switch CocoaError.Code(rawValue: error.code) {
            case .fileNoSuchFile, .fileReadNoSuchFile: .noSuchFileOrDirectory
            case .fileReadNoPermission, .fileWriteNoPermission: .permissionDenied
            case .fileWriteOutOfSpace: .noSpace
            case .fileWriteFileExists: .fileExists
            case .fileWriteVolumeReadOnly: .readOnlyFileSystem
            default: .ioError
            }
        self.init(path: path, code: .system(errno))
    }
}
