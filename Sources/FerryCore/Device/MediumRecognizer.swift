import Foundation

/// What a medium is to this host.
public enum Verdict: String, Codable, Sendable {
    case stick, drive, unknown
}

/// The verdict on one medium and the facts behind it.
public struct Recognition: Sendable, Codable, Equatable {
    public var device: BlockDevice
    public var verdict: Verdict
    /// Why: who enrolled the stick, which drive it is, or why it is not ours.
    public var reason: String
    public var identity: StickIdentity?
    public var drive: EnrolledDrive?
}

/// Tells a known stick or a known drive from anything else.
///
/// A stick is read on a read-only mount; nothing on a medium that fails the
/// checks is ever written.
public struct MediumRecognizer: Sendable {
    public var context: FerryContext

    public init(context: FerryContext) {
        self.context = context
    }

    /// Recognises the medium at `devnode`. `exclusive` says the caller holds
    /// the spool lock and may use the medium's own mount point; otherwise
    /// (`ferry identify`) a private one is used beside it.
    public func recognize(devnode: String, exclusive: Bool = false) async throws -> Recognition {
        let device = try context.inspector.inspect(devnode: devnode)
        if let decided = try classify(device) { return decided }
        let nncp = try await context.nncpConfig()
        return try await withMountedMedium(device, readOnly: true, context: context, exclusive: exclusive) { root in
            try check(root: root, device: device, nncp: nncp)
        }
    }

    /// The verdict on a medium that needs no mount: a drive, or anything
    /// that is not a stick's filesystem. Nil for a possible stick.
    public func classify(_ device: BlockDevice) throws -> Recognition? {
        let filesystem = device.filesystem
        if filesystem.isZFSMember {
            return try recognizeDrive(device)
        }
        guard filesystem.isStickFilesystem else {
            let what =
                filesystem.type.map { "a \(printable($0)) filesystem, which ferry does not use" } ?? "no filesystem that libblkid knows"
            return Recognition(device: device, verdict: .unknown, reason: "it carries \(what)")
        }
        return nil
    }

    /// Reads and verifies the identity of the stick mounted at `root`.
    public func check(root: SafeDirectory, device: BlockDevice, nncp: NNCPConfig) throws -> Recognition {
        do {
            let identity = try Self.readIdentity(root: root)
            let enroller = try identity.verify(
                device: device, nncp: nncp, trusting: context.config.peer, path: Self.identityPath(root))
            return Recognition(
                device: device, verdict: .stick,
                reason:
                    "enrolled by \(enroller.id == nncp.selfID ? "this node" : enroller.name) at \(printable(identity.enrolled, limit: 40))",
                identity: identity)
        } catch let error as FerryError where error.exitStatus == .notOurs || error is FileAccessError {
            return Recognition(device: device, verdict: .unknown, reason: "\(error)")
        }
    }

    static func identityPath(_ root: SafeDirectory) -> String {
        "\(root.path)/\(StickIdentity.directory)/\(StickIdentity.fileName)"
    }

    /// Reads `.ferry/identity` without following any link, within its size limit.
    static func readIdentity(root: SafeDirectory) throws -> StickIdentity {
        guard let kind = try root.kind(of: StickIdentity.directory) else {
            throw IdentityError(
                path: "\(root.path)/\(StickIdentity.directory)", problem: "does not exist: the stick is not enrolled (ferry enroll DEVNODE)"
            )
        }
        guard kind == .directory else {
            throw IdentityError(
                path: "\(root.path)/\(StickIdentity.directory)",
                problem: kind == .symlink ? "is a symbolic link; ferry opens nothing through a link" : "is not a directory")
        }
        let directory = try root.subdirectory(StickIdentity.directory)
        guard try directory.kind(of: StickIdentity.fileName) != nil else {
            throw IdentityError(path: identityPath(root), problem: "does not exist: the stick is not enrolled (ferry enroll DEVNODE)")
        }
        let bytes = try directory.readFile(StickIdentity.fileName, limit: StickIdentity.sizeLimit)
        return try StickIdentity.decode(bytes, path: identityPath(root))
    }

    private func recognizeDrive(_ device: BlockDevice) throws -> Recognition {
        let pool = device.filesystem.label ?? ""
        let guid = device.filesystem.uuid ?? ""
        guard context.config.role == .backupsvr else {
            return Recognition(
                device: device, verdict: .unknown, reason: "it holds ZFS pool \(printable(pool)); backup drives belong to backupsvr")
        }
        let enrolled = try context.drives.load()
        if let drive = enrolled.first(where: { $0.guid == guid }) {
            if let retired = drive.retired {
                return Recognition(
                    device: device, verdict: .unknown,
                    reason: "it holds \(drive.pool) (GUID \(drive.guid)), a backup drive retired \(retired); ferry leaves it alone",
                    drive: drive)
            }
            return Recognition(
                device: device, verdict: .drive, reason: "enrolled backup drive \(drive.pool) (GUID \(drive.guid))", drive: drive)
        }
        if let namesake = enrolled.first(where: { $0.pool == pool }) {
            return Recognition(
                device: device, verdict: .unknown,
                reason:
                    "it holds a pool named \(printable(pool)) with GUID \(printable(guid)), but the enrolled \(namesake.pool) has GUID \(namesake.guid): a foreign pool with the same name"
            )
        }
        return Recognition(
            device: device, verdict: .unknown,
            reason: "it holds ZFS pool \(printable(pool)) (GUID \(printable(guid))), which is not an enrolled drive (ferry drive enroll)")
    }
}
