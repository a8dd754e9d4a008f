import Foundation
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// One encrypted packet waiting in the spool for a node.
public struct QueuedPacket: Sendable, Equatable, Codable {
    public var name: String
    public var size: UInt64
    /// NNCP niceness: lower goes first (F 32, P 96, N 160, B 224).
    public var nice: UInt8
    public var queued: Date

    public init(name: String, size: UInt64, nice: UInt8, queued: Date) {
        self.name = name
        self.size = size
        self.nice = nice
        self.queued = queued
    }
}

public struct SpoolError: FerryError {
    public enum Code: Sendable, Equatable {
        /// nncp-user names no account.
        case noSuchUser
        case unreadable(Errno)
        /// It is missing, and making it (or giving it to nncp-user) failed.
        case cannotMake(Errno)
        case notDirectory
        /// It belongs to another uid than nncp-user's.
        case wrongOwner(uid: UInt32)
    }
    public var code: Code
    public var path: String
    public var problem: String

    public init(_ code: Code, path: String, problem: String) {
        self.code = code
        self.path = path
        self.problem = problem
    }

    public var description: String { "NNCP spool \(path) \(problem)" }
}

/// The NNCP spool as files: what is queued for a node, and whether the
/// spool is there and owned by the user NNCP runs as.
public struct Spool: Sendable {
    public var path: String
    /// Lists a directory's names; the test seam for errors root never gets.
    var listDirectory: @Sendable (String) throws(Errno) -> [String] = Spool.names(in:)

    public init(path: String) {
        self.path = path
    }

    /// The names in `directory`, but `.` and `..`, with the errno of a failure.
    static func names(in directory: String) throws(Errno) -> [String] {
        guard let stream = opendir(directory) else { throw Errno(rawValue: errno) }
        defer { closedir(stream) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw Errno(rawValue: errno) }
                return names
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    /// Packet names are base32 hashes: 52 characters of A-Z and 2-7.
    public static func isPacketName(_ name: String) -> Bool {
        name.utf8.count == 52 && name.utf8.allSatisfy { (65...90).contains($0) || (50...55).contains($0) }
    }

    /// The packets queued for the node with id `node`. Their niceness takes
    /// a read of each packet's header, which costs a seek per packet on a
    /// cold disk; without `readingNiceness` every packet is given the lowest.
    public func queued(for node: String, readingNiceness: Bool = true) throws -> [QueuedPacket] {
        let directory = "\(path)/\(node)/tx"
        let names: [String]
        do {
            names = try listDirectory(directory)
        } catch .noSuchFileOrDirectory {
            return []  // nothing was ever queued for the node
        } catch {
            // An empty list here would tell the visit that nothing waits.
            throw SpoolError(.unreadable(error), path: directory, problem: "cannot be listed: \(error)")
        }
        // Each packet is looked up relative to the directory's descriptor:
        // a spool path walked 10,000 times is most of a status's time.
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryFD >= 0 else {
            throw SpoolError(.unreadable(Errno(rawValue: errno)), path: directory, problem: "cannot be opened: \(Errno(rawValue: errno))")
        }
        defer { close(directoryFD) }
        var packets: [QueuedPacket] = []
        for name in names where Self.isPacketName(name) {
            var info = stat()
            var nice = UInt8.max
            if readingNiceness {
                // One open serves the stat and the header.
                let fd = openat(directoryFD, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
                guard fd >= 0 else { continue }
                defer { close(fd) }
                guard fstat(fd, &info) == 0, FileType(mode: info.st_mode) == .regular else { continue }
                nice = Self.niceness(fd)
            } else {
                guard fstatat(directoryFD, name, &info, AT_SYMLINK_NOFOLLOW) == 0, FileType(mode: info.st_mode) == .regular else {
                    continue
                }
            }
            packets.append(
                QueuedPacket(
                    name: name, size: UInt64(info.st_size), nice: nice,
                    // To the nanosecond: parts of one stream are queued within a second.
                    queued: Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec) + TimeInterval(info.st_mtim.tv_nsec) / 1e9)))
        }
        return packets
    }

    /// Whether nncp-toss has processed the packet `name` from the node with
    /// id `node` (`NODE/rx/seen/PACKET`, written by `nncp-toss -seen`).
    public func hasSeen(_ name: String, from node: String) -> Bool {
        var info = stat()
        return lstat("\(path)/\(node)/rx/seen/\(name)", &info) == 0
    }

    /// The packets from the node with id `node` that the spool holds,
    /// received (`rx/`) or tossed (`rx/seen/`). An unreadable directory
    /// counts as empty.
    public func receivedNames(from node: String) -> Set<String> {
        let received = (try? listDirectory("\(path)/\(node)/rx")) ?? []
        let seen = (try? listDirectory("\(path)/\(node)/rx/seen")) ?? []
        return Set((received + seen).filter(Self.isPacketName))
    }

    /// Packets received from any node and not yet tossed (`NODE/rx/PACKET`).
    public func receiveBacklog() -> PacketCount {
        var backlog = PacketCount()
        let nodes = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        for node in nodes where Self.isPacketName(node) {
            let directory = "\(path)/\(node)/rx"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where Self.isPacketName(name) {
                var info = stat()
                guard lstat("\(directory)/\(name)", &info) == 0, FileType(mode: info.st_mode) == .regular else { continue }
                backlog.packets += 1
                backlog.bytes += UInt64(info.st_size)
            }
        }
        return backlog
    }

    /// Whether any node's `rx/` holds a packet not yet tossed: what a toss
    /// would work on. A directory that cannot be listed counts as holding
    /// one, so that the toss runs and NNCP says what is wrong.
    public func holdsUntossed() -> Bool {
        let nodes: [String]
        do {
            nodes = try listDirectory(path)
        } catch {
            return true
        }
        for node in nodes where Self.isPacketName(node) {
            do {
                if try listDirectory("\(path)/\(node)/rx").contains(where: Self.isPacketName) { return true }
            } catch .noSuchFileOrDirectory {
                continue
            } catch {
                return true
            }
        }
        return false
    }

    /// The niceness from the header of the encrypted packet open at `fd`: 8 bytes of magic, then
    /// the niceness as an XDR uint8 (4 bytes, big-endian). Unreadable: last.
    static func niceness(_ fd: Int32) -> UInt8 {
        var header = [UInt8](repeating: 0, count: 12)
        guard (try? readFully(fd, into: &header, offset: 0)) == 12, header.starts(with: Array("NNCPE".utf8)) else { return .max }
        return header[11]
    }

    /// Makes the spool when it is missing (first run), owned by `user`, and
    /// refuses a spool owned by someone else with the command that fixes it.
    public func prepare(owner user: String) throws(SpoolError) {
        let account = user.isEmpty ? nil : Account(name: user)
        if !user.isEmpty, account == nil {
            throw SpoolError(
                .noSuchUser, path: path, problem: "cannot be used: nncp-user \(user) does not exist (create it, or set nncp-user)")
        }
        var info = stat()
        if stat(path, &info) != 0 {
            guard errno == ENOENT else {
                throw SpoolError(
                    .unreadable(Errno(rawValue: errno)), path: path, problem: "cannot be read: \(String(cString: strerror(errno)))")
            }
            guard mkdir(path, 0o700) == 0 else {
                throw SpoolError(
                    .cannotMake(Errno(rawValue: errno)), path: path,
                    problem: "is missing and cannot be made: \(String(cString: strerror(errno)))")
            }
            if let account, chown(path, account.uid, account.gid) != 0 {
                throw SpoolError(
                    .cannotMake(Errno(rawValue: errno)), path: path,
                    problem: "was made but cannot be given to \(user): \(String(cString: strerror(errno)))")
            }
            return
        }
        guard FileType(mode: info.st_mode) == .directory else {
            throw SpoolError(.notDirectory, path: path, problem: "is not a directory")
        }
        if let account, info.st_uid != account.uid {
            throw SpoolError(
                .wrongOwner(uid: info.st_uid),
                path: path,
                problem:
                    "is owned by uid \(info.st_uid), but NNCP commands run as \(user) (uid \(account.uid)); fix it with: chown -R \(user): \(path)"
            )
        }
    }
}

/// A local user account, from the password database.
public struct Account: Sendable, Equatable {
    public var name: String
    public var uid: uid_t
    public var gid: gid_t

    public init(name: String, uid: uid_t, gid: gid_t) {
        self.name = name
        self.uid = uid
        self.gid = gid
    }

    public init?(name: String) {
        guard let entry = getpwnam(name) else { return nil }
        self.name = name
        self.uid = entry.pointee.pw_uid
        self.gid = entry.pointee.pw_gid
    }
}

extension PacketCount {
    init(_ queued: [QueuedPacket]) {
        self.init(packets: queued.count, bytes: queued.reduce(0) { $0 + $1.size })
    }
}
