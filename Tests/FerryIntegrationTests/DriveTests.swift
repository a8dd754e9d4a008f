import FerryCore
import Foundation
import Testing

@Suite(
    "Backup drives on zfs-fuse pools", .tags(.integration, .zfs), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly),
    .zfsAnswers)
struct DriveTests {
    @Test("a pool is a drive at backupsvr once enrolled by name, and handle knows it after export")
    func enrolByName() async throws {
        try await TestBed.with { bed in
            let pool = "ferryit\(getpid())a"
            let drive = try await bed.pool(pool)
            let guid = try await bed.sh(Tool.zpool, "list", "-H", "-o", "guid", pool).output.trimmingCharacters(in: .whitespacesAndNewlines)

            let unknown = try await bed.ferry("backupsvr", "handle", drive.devnode)
            #expect(unknown.status == 2)
            #expect(unknown.error.contains("which is not an enrolled drive"))

            let enrol = try await bed.ferry("backupsvr", "drive", "enroll", pool)
            #expect(enrol.status == 0, "\(enrol.error)")
            #expect(enrol.output == "enrolled backup drive \(pool) (GUID \(guid))\n")
            try await bed.sh(Tool.zpool, "export", pool)
            bed.forgetPool(pool)

            let identify = try await bed.ferry("backupsvr", "identify", "--json", drive.devnode)
            let recognition = try JSONDecoder().decode(Recognition.self, from: Data(identify.output.utf8))
            #expect(recognition.verdict == .drive)
            #expect(recognition.device.filesystem == FilesystemProbe(type: "zfs_member", label: pool, uuid: guid))
            let handle = try await bed.ferry("backupsvr", "handle", drive.devnode)
            bed.adoptPool(pool)  // the plug-in imported it
            #expect(handle.status == 0, "\(handle.error)")
            #expect(handle.error.contains("known backup drive"))
            #expect(handle.error.contains("drive \(pool) is in the dock and caught up"))
            let pools = try await ZFSInventory(runner: bed.runner).importedPools()
            #expect(pools.contains(PoolState(name: pool, guid: guid, health: "ONLINE")))

            let atSpooler = try await bed.ferry("spooler", "handle", drive.devnode)
            #expect(atSpooler.status == 2)
            #expect(atSpooler.error.contains("backup drives belong to backupsvr"))
        }
    }

    @Test("a drive enrolled by device node is listed; a foreign pool with its name is refused")
    func enrolByDeviceAndNamesake() async throws {
        try await TestBed.with { bed in
            let pool = "ferryit\(getpid())b"
            let first = try await bed.pool(pool)
            try await bed.sh(Tool.zpool, "export", pool)
            bed.forgetPool(pool)
            let enrol = try await bed.ferry("backupsvr", "drive", "enroll", first.devnode)
            #expect(enrol.status == 0, "\(enrol.error)")
            let list = try await bed.ferry("backupsvr", "drive", "list", "--json")
            let drives = try JSONDecoder().decode([EnrolledDrive].self, from: Data(list.output.utf8))
            #expect(drives.map(\.pool) == [pool])

            let foreign = try await bed.pool(pool)
            try await bed.sh(Tool.zpool, "export", pool)
            bed.forgetPool(pool)
            let before = try bed.contents(foreign)
            let handle = try await bed.ferry("backupsvr", "handle", foreign.devnode)
            #expect(handle.status == 2)
            #expect(handle.error.contains("a foreign pool with the same name"))
            #expect(try bed.contents(foreign) == before)
            let again = try await bed.ferry("backupsvr", "drive", "enroll", foreign.devnode)
            #expect(again.status == 1)
            #expect(again.error.contains("clashes with enrolled drive \(pool)"))
        }
    }
}
