import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// An exclusive lock on this host's NNCP spool, held by one visit or toss
/// at a time: two sticks plugged in at once, or a second `ferry handle` for
/// the same stick, wait their turn. The lock is released when the value goes
/// away, or when the process dies.
public final class SpoolLock: @unchecked Sendable {
    public static let fileName = "spool.lock"
    private let fd: Int32

    private init(fd: Int32) {
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }

    /// Waits for the lock in `stateDir`, saying once that it waits; a
    /// cancelled task stops waiting.
    public static func acquire(stateDir: String, logger: Logger) async throws -> SpoolLock {
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = stateDir + "/" + fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw SpoolError(path: path, problem: "lock cannot be opened: \(String(cString: strerror(errno)))")
        }
        var said = false
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw SpoolError(path: path, problem: "lock cannot be taken: \(reason)")
            }
            if !said {
                logger.info("another ferry is using the NNCP spool; waiting for it", metadata: ["lock": "\(path)"])
                said = true
            }
            do {
                try await Task.sleep(for: .milliseconds(200))
            } catch {
                close(fd)
                throw error
            }
        }
        return SpoolLock(fd: fd)
    }
}
