import Foundation

/// One neighbour as ferry writes it into an NNCP configuration directory.
public struct NeighbourEntry: Sendable, Equatable {
    public var name: String
    public var id: String
    public var keys: PublicKeys
    public var via: [String] = []
    public var exec: [String: [String]] = [:]

    public init(card: NodeCard, via: [String] = [], exec: [String: [String]] = [:]) {
        self.name = card.name
        self.id = card.id
        self.keys = PublicKeys(exchpub: card.exchpub, signpub: card.signpub, noisepub: card.noisepub)
        self.via = via
        self.exec = exec
    }

    /// The files of `neigh/NAME/`, one value per line, as `nncp-cfgdir -dump`
    /// writes them.
    var files: [(path: String, text: String)] {
        var files = [("id", id), ("exchpub", keys.exchpub), ("signpub", keys.signpub), ("noisepub", keys.noisepub)]
        if !via.isEmpty { files.append(("via", via.joined(separator: "\n"))) }
        for (handle, argv) in exec.sorted(by: { $0.key < $1.key }) { files.append(("exec/" + handle, argv.joined(separator: "\n"))) }
        return files.map { ($0.0, $0.1 + "\n") }
    }
}

/// An NNCP configuration directory (the layout `nncp-cfgdir -dump` writes,
/// which NNCP 8 reads as `-cfg`). ferry adds neighbours here, and never
/// edits an HJSON file.
public struct NNCPConfigDirectory: Sendable {
    public var path: String

    /// The directory at `path`, or one line saying how to make one from an
    /// HJSON file; `configPath` is the ferry config that names it.
    public init(path: String, configPath: String) throws(PairingError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw PairingError("NNCP config \(path) does not exist; ferry init makes one")
        }
        guard isDirectory.boolValue else {
            throw PairingError(
                "NNCP config \(path) is one HJSON file, which ferry does not edit; convert it to a directory with "
                    + "nncp-cfgdir -cfg \(path) -dump \(Self.suggestedDirectory(for: path)), then set nncp-config = \"\(Self.suggestedDirectory(for: path))\" in \(configPath); nothing changed"
            )
        }
        self.path = path
    }

    static func suggestedDirectory(for file: String) -> String {
        file.hasSuffix(".hjson") ? String(file.dropLast(".hjson".count)) : file + ".d"
    }

    /// Writes `neigh/NAME/` whole, under a temporary name first and then
    /// renamed into place, so that NNCP never reads half a neighbour. The
    /// files get the owner, group and privacy of the directory itself: NNCP
    /// runs as `nncp-user`, which must read them.
    public func add(_ entry: NeighbourEntry) throws(PairingError) {
        let neigh = path + "/neigh"
        let final = neigh + "/" + entry.name
        var top = stat()
        guard stat(path, &top) == 0 else { throw failure("cannot be read", path) }
        let privateTree = top.st_mode & 0o007 == 0
        let directoryMode: mode_t = privateTree ? 0o750 : 0o755
        let fileMode: mode_t = privateTree ? 0o640 : 0o644
        if access(neigh, F_OK) != 0 {
            guard mkdir(neigh, directoryMode) == 0, chown(neigh, top.st_uid, top.st_gid) == 0 else {
                throw failure("cannot be made", neigh)
            }
        }
        guard access(final, F_OK) != 0 else { throw PairingError("\(final) exists already; nothing changed") }
        let temporary = neigh + "/.\(entry.name).new"
        try? FileManager.default.removeItem(atPath: temporary)
        do throws(PairingError) {
            try makeDirectory(temporary, mode: directoryMode, owner: top)
            if !entry.exec.isEmpty { try makeDirectory(temporary + "/exec", mode: directoryMode, owner: top) }
            for file in entry.files {
                try writeSynced(temporary + "/" + file.path, Array(file.text.utf8), mode: fileMode, owner: top)
            }
            if !entry.exec.isEmpty { try syncDirectory(temporary + "/exec") }
            try syncDirectory(temporary)
            guard rename(temporary, final) == 0 else { throw failure("cannot be put in place", final) }
            try syncDirectory(neigh)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    private func failure(_ what: String, _ path: String) -> PairingError {
        PairingError("\(path) \(what): \(String(cString: strerror(errno)))")
    }

    private func makeDirectory(_ path: String, mode: mode_t, owner: stat) throws(PairingError) {
        guard mkdir(path, mode) == 0, chmod(path, mode) == 0, chown(path, owner.st_uid, owner.st_gid) == 0 else {
            throw failure("cannot be made", path)
        }
    }

    private func writeSynced(_ path: String, _ bytes: [UInt8], mode: mode_t, owner: stat) throws(PairingError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw failure("cannot be written", path) }
        defer { close(fd) }
        do {
            try writeAll(fd, bytes[...])
        } catch {
            throw PairingError("\(path) cannot be written: \(error)")
        }
        guard fchmod(fd, mode) == 0, fchown(fd, owner.st_uid, owner.st_gid) == 0, fsync(fd) == 0 else {
            throw failure("cannot be written", path)
        }
    }

    private func syncDirectory(_ path: String) throws(PairingError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot be opened", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw failure("cannot be synced", path) }
    }
}

/// Pairing refused or failed; the line says why and what to do.
public struct PairingError: FerryError {
    public var problem: String
    public var exitStatus: ExitStatus

    public init(_ problem: String, exitStatus: ExitStatus = .failed) {
        self.problem = problem
        self.exitStatus = exitStatus
    }

    public var description: String { problem }
}
