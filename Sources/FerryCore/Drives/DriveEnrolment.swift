import Foundation

/// Makes a backup drive known on backupsvr, by pool name and GUID.
public struct DriveEnrolment: Sendable {
    public var context: FerryContext

    public init(context: FerryContext) {
        self.context = context
    }

    /// Enrolls the pool named `target`, or the pool on the device node `target`.
    /// Returns the drive and whether it was new.
    public func enroll(_ target: String) async throws -> (drive: EnrolledDrive, new: Bool) {
        try context.config.require(.backupsvr, for: "drive enroll")
        let pool: String
        let guid: String
        if target.hasPrefix("/") {
            let device = try context.inspector.inspect(devnode: target)
            guard device.filesystem.isZFSMember, let label = device.filesystem.label, let uuid = device.filesystem.uuid else {
                throw DriveError(
                    .notAPool,
                    subject: target,
                    problem: "holds no ZFS pool (blkid TYPE is \(device.filesystem.type ?? "empty")); create the pool first")
            }
            pool = label
            guid = uuid
        } else {
            try Self.validatePoolName(target)
            pool = target
            let result = try await context.runner.run(Zpool.guid(pool: target), input: nil)
            guard result.status.succeeded else {
                throw DriveError(
                    .notImported,
                    subject: target,
                    problem: "is not an imported pool (\(result.errorTail(lines: 1))); plug the drive in, or give its device node")
            }
            guid = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard !guid.isEmpty, guid.allSatisfy(\.isNumber) else {
            throw DriveError(.badGUID, subject: target, problem: "has a GUID ferry cannot read: \(printable(guid))")
        }
        // A drive enrolled by device node may not be imported yet: its place
        // is known from its first plug-in.
        let imported = try await ZFSInventory(runner: context.runner).importedPools().contains { $0.guid == guid && $0.isUsable }
        let now = context.clock.now().rfc3339
        let drive = EnrolledDrive(pool: pool, guid: guid, enrolled: now, place: imported ? .dock : nil, since: imported ? now : nil)
        let new = try context.drives.enroll(drive)
        context.logger.info(
            new ? "enrolled backup drive" : "backup drive was already enrolled", metadata: ["pool": "\(pool)", "guid": "\(guid)"])
        return (drive, new)
    }

    /// ZFS pool names: a letter first, then letters, digits and `_-.:`.
    static func validatePoolName(_ name: String) throws(DriveError) {
        let allowed = name.unicodeScalars.allSatisfy {
            $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_-.:".unicodeScalars.contains($0))
        }
        guard let first = name.unicodeScalars.first, first.isASCII, CharacterSet.letters.contains(first), allowed, name.count <= 255 else {
            throw DriveError(.notAPool, subject: name, problem: "is not a valid ZFS pool name")
        }
    }
}
