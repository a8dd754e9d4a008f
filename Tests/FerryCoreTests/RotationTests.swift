import Foundation
import Testing

@testable import FerryCore

@Suite("Rotation warnings and the drive lines of status")
struct RotationPolicyTests {
    let now = try! Date("2026-11-27T12:00:00Z", strategy: .iso8601)
    let policy = RotationPolicy(FerryConfig.Rotation(rotateAfter: "14d", storeWarnPercent: 50))

    func drive(_ pool: String, _ place: DrivePlace, since: String, behind: Int = 0) -> EnrolledDrive {
        var drive = EnrolledDrive(pool: pool, guid: "\(pool.hashValue.magnitude)", enrolled: "2026-01-01T00:00:00Z", place: place, since: since)
        drive.behind = PacketCount(packets: behind, bytes: UInt64(behind) << 20)
        return drive
    }

    @Test("a fresh rotation has no warnings")
    func quiet() {
        let drives = [drive("a", .dock, since: "2026-11-20T00:00:00Z"), drive("b", .offsite, since: "2026-11-20T00:00:00Z", behind: 3)]
        #expect(policy.warnings(drives: drives, store: PacketCount(packets: 3, bytes: 3 << 20), diskBytes: 1 << 40, now: now).isEmpty)
    }

    @Test("the dock drive is due to go offsite, and the offsite drive is overdue, after rotate-after")
    func due() {
        let drives = [drive("a", .dock, since: "2026-11-01T00:00:00Z"), drive("b", .offsite, since: "2026-11-01T00:00:00Z", behind: 3)]
        let warnings = policy.warnings(drives: drives, store: PacketCount(), diskBytes: nil, now: now)
        #expect(
            warnings == [
                "drive a has been in the dock since 2026-11-01T00:00:00Z, more than 14d: it is due to go offsite (ferry drive eject a)",
                "drive b has been offsite since 2026-11-01T00:00:00Z, more than 14d: bring it back to catch up, 3 stream(s) (3.0 MiB) behind",
            ])
    }

    @Test("no drive offsite, a pulled drive, and a store over its share of the disk are warned about; retired drives are not")
    func faults() {
        var pulled = drive("c", .offsite, since: "2026-11-27T11:00:00Z")
        pulled.pulled = "2026-11-27T11:00:00Z"
        var retired = drive("r", .offsite, since: "2025-01-01T00:00:00Z")
        retired.retired = "2026-02-01T00:00:00Z"
        let warnings = policy.warnings(
            drives: [drive("a", .dock, since: "2026-11-27T00:00:00Z"), pulled, retired], store: PacketCount(packets: 2, bytes: 600),
            diskBytes: 1000, now: now)
        #expect(warnings.count == 2)
        #expect(warnings[0].hasPrefix("drive c was pulled without ferry drive eject (noticed 2026-11-27T11:00:00Z)"))
        #expect(warnings[1].hasPrefix("the stream store holds 600 B, more than 50% of its disk"))
        let alone = policy.warnings(drives: [drive("a", .dock, since: "2026-11-27T00:00:00Z")], store: PacketCount(), diskBytes: nil, now: now)
        #expect(alone == ["no backup drive is offsite: every enrolled drive is here (eject one and take it away)"])
    }

    @Test("status and drive list show where each drive is, what it lacks, and its newest snapshots")
    func lines() {
        var away = drive("b", .offsite, since: "2026-11-20T00:00:00Z", behind: 2)
        away.datasets = [DriveDataset(dataset: "laptop/tank/root", snapshot: "s2", created: "2026-11-19T00:00:00Z")]
        #expect(
            StatusText.lines(away) == [
                "drive b (GUID \(away.guid)): offsite since 2026-11-20T00:00:00Z, 2 stream(s) behind (2.0 MiB)",
                "  laptop/tank/root@s2, taken 2026-11-19T00:00:00Z",
            ])
        #expect(StatusText.lines(drive("a", .dock, since: "2026-11-20T00:00:00Z"))[0].hasSuffix("in the dock since 2026-11-20T00:00:00Z, up to date"))
    }

    @Test("zpool status -x: a pool with I/O failures is suspended, one with other trouble is not")
    func suspended() {
        let status = """
              pool: drive-a
             state: ONLINE
            status: One or more devices are faulted in response to IO failures.
            action: Make sure the affected devices are connected, then run 'zpool clear'.
            errors: 2 data errors, use '-v' for a list

              pool: drive-b
             state: DEGRADED
            status: One or more devices could not be opened.
            """
        #expect(ZFSInventory.suspendedPools(status) == ["drive-a"])
        #expect(ZFSInventory.suspendedPools("all pools are healthy\n").isEmpty)
    }

    @Test("import looks in /dev/disk/by-id when it names the device, else in the device's directory")
    func searchDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/ferry-byid-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(DriveDock.searchDirectory(for: "/dev/null", byID: directory) == "/dev")
        try FileManager.default.createSymbolicLink(atPath: directory + "/usb-Dock_Disk_1234-0:0", withDestinationPath: "/dev/null")
        #expect(DriveDock.searchDirectory(for: "/dev/null", byID: directory) == directory)
    }

    @Test("a visit record from before rotation, with only pool, guid and enrolled, still decodes")
    func oldRecords() throws {
        let old = #"[{"pool":"a","guid":"1","enrolled":"2026-01-01T00:00:00Z"}]"#
        let drives = try JSONDecoder().decode([EnrolledDrive].self, from: Data(old.utf8))
        #expect(drives == [EnrolledDrive(pool: "a", guid: "1", enrolled: "2026-01-01T00:00:00Z")])
        #expect(StatusText.lines(drives[0]) == ["drive a (GUID 1): not plugged in since its enrolment 2026-01-01T00:00:00Z"])
    }
}
