import Foundation

/// The rotation warnings (`[rotation]` in the config): a drive in the dock
/// too long, a drive away too long, a drive pulled without eject, no drive
/// offsite at all, a stream store that grows too big, a drive past
/// drive-warn-percent, and a scrub that found errors. `ferry status`
/// shows them, and backupsvr's visit records carry them to the spooler.
public struct RotationPolicy: Sendable {
    public var rotateAfter: Duration
    public var storeWarnPercent: Int
    public var driveWarnPercent: Int

    public init(_ config: FerryConfig.Rotation) {
        rotateAfter = config.rotateAfter
        storeWarnPercent = config.storeWarnPercent
        driveWarnPercent = config.driveWarnPercent
    }

    /// The warnings for `drives` (as `DriveDock.drives()` gives them) and a
    /// store of `store` on a filesystem of `diskBytes`, at `now`.
    public func warnings(drives: [EnrolledDrive], store: PacketCount, diskBytes: UInt64?, now: Date) -> [String] {
        var warnings: [String] = []
        let limit = rotateAfter.timeInterval
        let active = drives.filter { !$0.isRetired }
        for drive in active {
            let since = drive.since.flatMap { try? Date($0, strategy: .iso8601) }
            let long = since.map { now.timeIntervalSince($0) > limit } ?? false
            let behind = drive.behind.map { ", \($0.packets) stream(s) (\(humanSize($0.bytes))) behind" } ?? ""
            if let pulled = drive.pulled {
                warnings.append(
                    "drive \(drive.pool) was pulled without ferry drive eject (noticed \(pulled)): plug it back in so ferry checks it and catches it up\(behind)"
                )
            } else if drive.place == .dock, long {
                warnings.append(
                    "drive \(drive.pool) has been in the dock since \(drive.since!), more than \(rotateAfter.configText): it is due to go offsite (ferry drive eject \(drive.pool))"
                )
            } else if drive.place == .offsite, long {
                warnings.append(
                    "drive \(drive.pool) has been offsite since \(drive.since!), more than \(rotateAfter.configText): bring it back to catch up\(behind)"
                )
            }
        }
        for drive in active {
            if let capacity = drive.capacity, capacity.usedPercent > driveWarnPercent {
                warnings.append(
                    "drive \(drive.pool) is \(capacity.usedPercent)% full (\(humanSize(capacity.used)) of \(humanSize(capacity.size)), as of \(capacity.seen)), past drive-warn-percent \(driveWarnPercent): thin it or replace it"
                )
            }
            if let scrub = drive.scrub, scrub.errors > 0 || !scrub.files.isEmpty {
                let files = scrub.files.isEmpty ? "" : "; files with errors: \(scrub.files.prefix(5).joined(separator: ", "))"
                warnings.append(
                    "drive \(drive.pool)'s scrub (\(scrub.finished ?? scrub.started ?? "?")) found \(scrub.errors) error(s)\(files): the drive is failing; replace it"
                )
            }
        }
        if !active.isEmpty, !active.contains(where: { $0.place == .offsite }) {
            warnings.append("no backup drive is offsite: every enrolled drive is here (eject one and take it away)")
        }
        if store.packets > 0, active.isEmpty {
            warnings.append("no backup drive is enrolled: \(store.packets) stream(s) wait in the store (ferry drive enroll)")
        }
        if let diskBytes, diskBytes > 0, store.bytes * 100 > diskBytes * UInt64(storeWarnPercent) {
            warnings.append(
                "the stream store holds \(humanSize(store.bytes)), more than \(storeWarnPercent)% of its disk (\(humanSize(diskBytes))): bring the offsite drives back so it can shrink, or retire a drive that will not return"
            )
        }
        return warnings
    }
}
