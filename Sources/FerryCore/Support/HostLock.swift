import Foundation
import Logging
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// An exclusive lock on one kind of work on this host, as a file in
/// `state-dir`: the NNCP spool (one visit or toss at a time), the stream
/// store (one receive or drive change at a time), a laptop's sends. The lock
/// is released when the value goes away, or when the process dies.
public final class HostLock: @unchecked Sendable {
    /// What is locked, and the file that holds the lock.
    public struct Kind: Sendable {
        public var fileName: String
        /// Said once while waiting: "another ferry is … ; waiting for it".
        public var holder: String

        /// Two sticks plugged in at once, or a second `ferry handle` for the
        /// same stick, wait their turn.
        public static let spool = Kind(fileName: "spool.lock", holder: "using the NNCP spool")
        /// `ferry receive`, drive plug-in, eject and seed change the stream
        /// store and the drives one at a time.
        public static let streams = Kind(fileName: "streams.lock", holder: "receiving streams or changing drives")
        /// Two `ferry send` runs must not snapshot and send at once.
        public static let send = Kind(fileName: "send.lock", holder: "sending snapshots")
    }

    private let fd: Int32

    private init(fd: Int32) {
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }

    /// Waits for the lock in `stateDir`, saying once that it waits; a
    /// cancelled task stops waiting, and so does `giveUpAfter` running out.
    public static func acquire(_ kind: Kind, stateDir: String, logger: Logger, giveUpAfter: Duration? = nil) async throws -> HostLock {
        try LocalFiles.createDirectory(stateDir, mode: 0o700)
        let path = stateDir + "/" + kind.fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw LockError(
                .cannotOpen(Errno(rawValue: errno)), path: path, problem: "cannot be opened: \(String(cString: strerror(errno)))")
        }
        var said = false
        let deadline = giveUpAfter.map { ContinuousClock.now + $0 }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw LockError(.cannotTake(Errno(rawValue: errno)), path: path, problem: "cannot be taken: \(reason)")
            }
            if !said {
                logger.info("another ferry is \(kind.holder); waiting for it", metadata: ["lock": "\(path)"])
                said = true
            }
            if let deadline, ContinuousClock.now >= deadline {
                close(fd)
                throw LockError(.held, path: path, problem: "is still held: another ferry is \(kind.holder); try again when it is done")
            }
            do {
                try await Task.sleep(for: .milliseconds(200))
            } catch {
                close(fd)
                throw error
            }
        }
        return HostLock(fd: fd)
    }
}

public struct LockError: FerryError {
    public enum Code: Sendable, Equatable {
        case cannotOpen(Errno)
        case cannotTake(Errno)
        /// Another ferry holds it past the wait given.
        case held
    }
    public var code: Code
    public var path: String
    public var problem: String

    public init(_ code: Code, path: String, problem: String) {
        self.code = code
        self.path = path
        self.problem = problem
    }

    public var description: String { "lock \(path) \(problem)" }
}
