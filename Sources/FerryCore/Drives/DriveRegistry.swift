import Foundation

/// A backup drive enrolled on backupsvr: one ZFS pool, known by name and GUID.
public struct EnrolledDrive: Codable, Sendable, Equatable {
    public var pool: String
    /// The pool GUID in decimal, as `zpool list -o guid` and blkid print it.
    public var guid: String
    public var enrolled: String

    public init(pool: String, guid: String, enrolled: String) {
        self.pool = pool
        self.guid = guid
        self.enrolled = enrolled
    }
}

public struct DriveError: FerryError {
    public var subject: String
    public var problem: String

    public var description: String { "\(printable(subject)) \(problem)" }
}

/// The enrolled drives, kept in `state-dir/drives.json`.
public struct DriveRegistry: Sendable {
    public static let fileName = "drives.json"
    public var stateDir: String

    public init(stateDir: String) {
        self.stateDir = stateDir
    }

    public var path: String { stateDir + "/" + Self.fileName }

    public func load() throws -> [EnrolledDrive] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        do {
            let directory = try SafeDirectory(path: stateDir)
            let bytes = try directory.readFile(Self.fileName, limit: 1 << 20)
            return try JSONDecoder().decode([EnrolledDrive].self, from: Data(bytes))
        } catch let error as FileAccessError {
            throw DriveError(subject: path, problem: "cannot be read: \(error)")
        } catch {
            throw DriveError(subject: path, problem: "is damaged (not a list of drives); restore it or enroll the drives again")
        }
    }

    /// Adds `drive`, or refuses when its name or GUID is taken by another.
    /// Returns false when exactly this drive was enrolled already.
    @discardableResult
    public func enroll(_ drive: EnrolledDrive) throws -> Bool {
        var drives = try load()
        if drives.contains(where: { $0.pool == drive.pool && $0.guid == drive.guid }) { return false }
        if let clash = drives.first(where: { $0.pool == drive.pool || $0.guid == drive.guid }) {
            throw DriveError(
                subject: drive.pool,
                problem: "clashes with enrolled drive \(clash.pool) (GUID \(clash.guid)); two pools must differ in both name and GUID")
        }
        drives.append(drive)
        try save(drives)
        return true
    }

    private func save(_ drives: [EnrolledDrive]) throws {
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try SafeDirectory(path: stateDir).writeFileAtomically(Self.fileName, bytes: Array(try encoder.encode(drives)), mode: 0o600)
    }
}
