import Foundation

/// What `ferry enroll` did.
public enum EnrolmentOutcome: Sendable, Equatable {
    case enrolled(StickIdentity)
    case alreadyEnrolled(StickIdentity, by: String)
}

public struct EnrolmentError: FerryError {
    public var devnode: String
    public var problem: String

    public var description: String { "\(printable(devnode)) \(problem)" }
}

/// Makes a stick known: writes a signed `.ferry/identity` on it.
public struct StickEnrolment: Sendable {
    public var context: FerryContext

    public init(context: FerryContext) {
        self.context = context
    }

    /// Enrolls the stick at `devnode`. An identity that already verifies is
    /// kept; one that does not is replaced only when `force` is set.
    public func enroll(devnode: String, force: Bool) async throws -> EnrolmentOutcome {
        try context.config.require(.spooler, .backupsvr, for: "enroll")
        let device = try context.inspector.inspect(devnode: devnode)
        guard device.filesystem.isStickFilesystem else {
            let found = device.filesystem.type.map { "a \(printable($0)) filesystem" } ?? "no filesystem"
            throw EnrolmentError(
                devnode: devnode,
                problem:
                    "carries \(found); a stick needs one of \(FilesystemProbe.stickFilesystems.sorted().joined(separator: ", ")) (for example: mkfs.ext4 -L FERRY-1 \(devnode))"
            )
        }
        guard let uuid = device.filesystem.uuid, !uuid.isEmpty else {
            throw EnrolmentError(devnode: devnode, problem: "has a filesystem without a UUID; ferry knows sticks by their UUID")
        }
        let nncp = try await context.nncpConfig()
        let lock = try await HostLock.acquire(.spool, stateDir: context.config.stateDir, logger: context.logger)
        defer { withExtendedLifetime(lock) {} }
        return try await withMountedMedium(device, readOnly: false, context: context) { root in
            if try root.kind(of: StickIdentity.directory) != nil {
                do {
                    let existing = try MediumRecognizer.readIdentity(root: root)
                    let enroller = try existing.verify(
                        device: device, nncp: nncp, trusting: context.config.peer, path: MediumRecognizer.identityPath(root))
                    if !force {
                        leaveCards(in: try root.subdirectory(StickIdentity.directory), nncp: nncp)
                        return .alreadyEnrolled(existing, by: enroller.name)
                    }
                } catch let error as FerryError where error.exitStatus == .notOurs || error is FileAccessError {
                    guard force else {
                        throw EnrolmentError(
                            devnode: devnode, problem: "already holds an identity that ferry refuses (\(error)); pass --force to replace it"
                        )
                    }
                    if try root.kind(of: StickIdentity.directory) == .symlink {
                        throw EnrolmentError(devnode: devnode, problem: "has a .ferry that is a symbolic link; remove it by hand first")
                    }
                }
            }
            let identity = try StickIdentity.make(for: device, nncp: nncp, at: context.clock.now())
            let directory = try root.subdirectory(StickIdentity.directory, create: true)
            try directory.writeFileAtomically(StickIdentity.fileName, bytes: try identity.encoded())
            do {
                try JournalWriter(directory: directory, nncp: nncp, clock: context.clock)
                    .append(event: "enroll", role: context.config.role.rawValue, data: identity)
            } catch {
                context.logger.warning("the stick is enrolled, but its journal could not be started: \(error)")
            }
            leaveCards(in: directory, nncp: nncp)
            context.logger.info(
                "enrolled stick",
                metadata: [
                    "device": "\(devnode)", "uuid": "\(uuid)", "label": "\(printable(identity.label))", "by": "\(identity.enrollerName)",
                ])
            return .enrolled(identity)
        }
    }

    /// Leaves this node's card on the stick, and on the spooler the cards
    /// of the laptops paired here with the signed list that introduces
    /// them (DESIGN.md section 8): the stick carries the introductions
    /// across the gap.
    /// A failure here is a warning, as the journal's is: the stick is
    /// enrolled, and `ferry enroll` again leaves the cards.
    private func leaveCards(in ferry: SafeDirectory, nncp: NNCPConfig) {
        do {
            let own = try NodeCard.make(name: nncp.selfName, role: context.config.role, nncp: nncp)
            let laptops =
                context.config.role == .spooler
                ? CardStore(stateDir: context.config.stateDir).all().filter {
                    $0.role == Role.laptop.rawValue && nncp.neighbours[$0.name]?.id == $0.id
                } : []
            try StickCards.write(own: own, introducing: laptops, nncp: nncp, in: ferry)
            context.logger.info(
                "left this node's card on the stick", metadata: ["introduces": "\(laptops.map(\.name).joined(separator: ","))"])
        } catch {
            context.logger.warning("the stick is enrolled, but this node's card could not be left on it: \(error)")
        }
    }
}
