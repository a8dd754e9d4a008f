import Foundation

/// Where a backup drive is.
public enum DrivePlace: String, Codable, Sendable, Equatable {
    /// In the dock, its pool imported.
    case dock
    /// Exported and away, or pulled and not seen since.
    case offsite
}

/// The newest snapshot of one dataset on a drive.
public struct DriveDataset: Codable, Sendable, Equatable {
    /// HOST/DATASET, as it lives under the pool.
    public var dataset: String
    public var snapshot: String
    /// When the laptop took it (RFC 3339), when ZFS says.
    public var created: String?

    public init(dataset: String, snapshot: String, created: String?) {
        self.dataset = dataset
        self.snapshot = snapshot
        self.created = created
    }
}

/// A backup drive enrolled on backupsvr: one ZFS pool, known by name and
/// GUID, and what ferry last knew of it. Visit records and `ferry drive list`
/// carry the same shape, with `behind` filled in.
public struct EnrolledDrive: Codable, Sendable, Equatable {
    public var pool: String
    /// The pool GUID in decimal, as `zpool list -o guid` and blkid print it.
    public var guid: String
    public var enrolled: String
    /// Where it is; nil for a drive enrolled before ferry tracked places.
    public var place: DrivePlace?
    /// Since when it is there (RFC 3339).
    public var since: String?
    /// When it was pulled without `ferry drive eject`, if it was and has
    /// not been plugged in since.
    public var pulled: String?
    /// When it was retired: it gets no more streams and holds none back.
    public var retired: String?
    /// The newest snapshot of each dataset on it: read from the pool while
    /// it is in the dock, as of its eject while it is away.
    public var datasets: [DriveDataset]?
    /// Its size, used and free space, as last seen.
    public var capacity: DriveCapacity?
    /// Its last scrub, as last seen.
    public var scrub: ScrubResult?
    /// The streams in the store it still lacks (reports only).
    public var behind: PacketCount?

    public init(pool: String, guid: String, enrolled: String, place: DrivePlace? = nil, since: String? = nil) {
        self.pool = pool
        self.guid = guid
        self.enrolled = enrolled
        self.place = place
        self.since = since
    }

    public var isRetired: Bool { retired != nil }
}

public struct DriveError: FerryError {
    public enum Code: Sendable, Equatable {
        /// A device with no ZFS pool on it, or a pool name ZFS refuses.
        case notAPool
        case badGUID
        /// Not an enrolled drive, or one its name or GUID clashes with.
        case notEnrolled
        case clash
        case retired
        /// Not imported (or not healthy) where the work needs it.
        case notImported
        /// Imported with another GUID than the enrolled one.
        case wrongGUID
        /// The pool's I/O is suspended: it was pulled while in use.
        case suspended
        /// zpool import or export did not succeed.
        case importFailed(TerminationStatus)
        case exportFailed(TerminationStatus)
        /// A seed's `zfs send | zfs receive`, or its target, failed.
        case seedFailed
        /// A scrub still runs after eject waited for it.
        case scrubRunning
        /// `ferry drive thin` with no `[retention]` in the config.
        case noRetention
        /// A plug-in's catch-up left streams the drive could not take.
        case catchUpFailed
        /// The drive holds no such dataset or snapshot.
        case noSuchSnapshot
        /// Not a directory ferry can mount a snapshot on.
        case badDirectory
        /// The directory, or the snapshot, is mounted already.
        case mountInUse
        /// `ferry drive unmount` of a directory that is not ferry's snapshot mount.
        case notASnapshotMount
        /// A snapshot mount's clone could not be made, mounted or destroyed.
        case mountFailed(TerminationStatus)
        /// Eject of a drive with snapshots mounted.
        case snapshotsMounted
        /// drives.json cannot be read, or is not a list of drives.
        case registryUnreadable
        case registryDamaged
    }
    public var code: Code
    public var subject: String
    public var problem: String

    public init(_ code: Code, subject: String, problem: String) {
        self.code = code
        self.subject = subject
        self.problem = problem
    }

    public var description: String { "\(printable(subject)) \(problem)" }
}

/// The enrolled drives, kept in `state-dir/drives.json`.
public struct DriveRegistry: Sendable {
    public static let fileName = "drives.json"
    public var stateDir: String

    public init(stateDir: String) {
        self.stateDir = stateDir
    }

    /// A damaged registry stays where it is: read as empty, it would let
    /// the store give up streams that offsite drives still need.
    var file: StateFile<[EnrolledDrive]> { StateFile(Self.fileName, stateDir: stateDir, ifDamaged: .keep) }
    public var path: String { file.path }

    public func load() throws -> [EnrolledDrive] {
        do {
            return try file.load() ?? []
        } catch  where error.isDamaged {
            throw DriveError(
                .registryDamaged, subject: path, problem: "is damaged (not a list of drives); restore it or enroll the drives again")
        } catch {
            guard case .unreadable(let cause) = error.code else { throw error }
            throw DriveError(.registryUnreadable, subject: path, problem: "cannot be read: \(cause)")
        }
    }

    /// The drives that take streams: enrolled and not retired.
    public func active() throws -> [EnrolledDrive] {
        try load().filter { !$0.isRetired }
    }

    /// The enrolled drive with pool name `pool`, or a clear error.
    public func drive(named pool: String) throws -> EnrolledDrive {
        let drives = try load()
        guard let drive = drives.first(where: { $0.pool == pool }) else {
            let names = drives.map(\.pool).joined(separator: ", ")
            throw DriveError(
                .notEnrolled,
                subject: pool, problem: "is not an enrolled drive (enrolled: \(names.isEmpty ? "none" : names); ferry drive enroll POOL)")
        }
        return drive
    }

    /// Changes the drive with `guid` and saves the registry; returns the drive
    /// as saved.
    @discardableResult
    public func update(guid: String, _ change: (inout EnrolledDrive) -> Void) throws -> EnrolledDrive {
        var drives = try load()
        guard let index = drives.firstIndex(where: { $0.guid == guid }) else {
            throw DriveError(.notEnrolled, subject: "GUID \(guid)", problem: "is not an enrolled drive")
        }
        change(&drives[index])
        drives[index].behind = nil
        try save(drives)
        return drives[index]
    }

    /// Adds `drive`, or refuses when its name or GUID is taken by another.
    /// Returns false when exactly this drive was enrolled already.
    @discardableResult
    public func enroll(_ drive: EnrolledDrive) throws -> Bool {
        var drives = try load()
        if let index = drives.firstIndex(where: { $0.pool == drive.pool && $0.guid == drive.guid }) {
            // Enrolling a retired drive again brings it back into the fan-out.
            guard drives[index].isRetired else { return false }
            drives[index].retired = nil
            try save(drives)
            return true
        }
        if let clash = drives.first(where: { $0.pool == drive.pool || $0.guid == drive.guid }) {
            throw DriveError(
                .clash,
                subject: drive.pool,
                problem: "clashes with enrolled drive \(clash.pool) (GUID \(clash.guid)); two pools must differ in both name and GUID")
        }
        drives.append(drive)
        try save(drives)
        return true
    }

    private func save(_ drives: [EnrolledDrive]) throws {
        try file.write(drives)
    }
}
