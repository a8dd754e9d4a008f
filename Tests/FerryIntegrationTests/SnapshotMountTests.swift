import FerryCore
import FerryDemo
import Foundation
import Testing

@Suite(
    "Snapshot mounts on a backup drive, on zfs-fuse", .tags(.integration, .zfs), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly),
    .zfsAnswers)
struct SnapshotMountTests {
    @Test("drive mount shows a snapshot read-only; eject refuses meanwhile; unmount leaves nothing mounted and no clone")
    func mountAndUnmount() async throws {
        try await TestBed.with { bed in
            // A drive as ferry leaves it: received datasets, imported under an
            // altroot as zfs-fuse imports every drive.
            let pool = "fm\(getpid())m"
            _ = try await bed.pool(pool, ownAltroot: true)
            let dataset = "\(pool)/laptop/tank/root"
            try await bed.sh(Tool.zfs, "create", "-p", dataset)
            let live = try await bed.sh(Tool.zfs, "get", "-H", "-o", "value", "mountpoint", dataset).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            try "first\n".write(toFile: live + "/a", atomically: false, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: live + "/sub", withIntermediateDirectories: false)
            try "deep\n".write(toFile: live + "/sub/b", atomically: false, encoding: .utf8)
            try await bed.sh(Tool.zfs, "snapshot", dataset + "@s1")
            try "second\n".write(toFile: live + "/a", atomically: false, encoding: .utf8)
            try await bed.sh(Tool.zfs, "snapshot", dataset + "@s2")
            try await bed.sh(Tool.zfs, "set", "readonly=on", dataset)
            try await bed.sh(Tool.zfs, "unmount", dataset)
            try bed.writeConfig(host: "backupsvr", extra: "[receive]\nsenders = { laptop = \"laptop\" }\n")
            let enrol = try await bed.ferry("backupsvr", "drive", "enroll", pool)
            try #require(enrol.status == 0, "\(enrol.error)")

            let look = bed.directory + "/look"
            let mount = try await bed.ferry("backupsvr", "drive", "mount", pool, "laptop/tank/root@s1", look)
            try #require(mount.status == 0, "\(mount.error)")
            #expect(mount.output.contains("\(dataset)@s1 is mounted read-only at \(look)"), "\(mount.output)")
            #expect(LinuxMounter().isMounted(look))
            #expect(try String(contentsOfFile: look + "/a", encoding: .utf8) == "first\n")
            #expect(try String(contentsOfFile: look + "/sub/b", encoding: .utf8) == "deep\n")
            #expect(!FileManager.default.createFile(atPath: look + "/new", contents: Data("x".utf8)), "the mount is read-only")
            #expect(throws: (any Error).self) { try "changed\n".write(toFile: look + "/a", atomically: false, encoding: .utf8) }
            #expect(try String(contentsOfFile: look + "/a", encoding: .utf8) == "first\n")

            let again = try await bed.ferry("backupsvr", "drive", "mount", pool, "laptop/tank/root@s1", bed.directory + "/look2")
            #expect(again.status == 1)
            #expect(again.error.contains("is mounted already at \(look)"), "\(again.error)")
            let eject = try await bed.ferry("backupsvr", "drive", "eject", pool)
            #expect(eject.status == 1)
            #expect(eject.error.contains("ferry drive unmount \(look) first. Nothing was exported"), "\(eject.error)")
            #expect(eject.error.split(separator: "\n").count == 1)
            let foreign = try await bed.ferry("backupsvr", "drive", "unmount", bed.directory)
            #expect(foreign.status == 1)
            #expect(foreign.error.contains("is not a snapshot mount of ferry's"), "\(foreign.error)")

            let unmount = try await bed.ferry("backupsvr", "drive", "unmount", look)
            #expect(unmount.status == 0, "\(unmount.error)")
            #expect(!LinuxMounter().isMounted(look))
            let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
            #expect(!mounts.contains("ferry-mount-"), "nothing of the clone stays mounted")
            let listing = try await bed.sh(Tool.zfs, "list", "-H", "-o", "name", "-t", "all", "-r", pool).output
            #expect(!listing.contains("ferry-mount-"), "\(listing)")
            #expect(listing.contains("\(dataset)@s1") && listing.contains("\(dataset)@s2"))

            // Without @SNAP: the newest on the drive.
            let newest = try await bed.ferry("backupsvr", "drive", "mount", pool, "laptop/tank/root", look)
            try #require(newest.status == 0, "\(newest.error)")
            #expect(try String(contentsOfFile: look + "/a", encoding: .utf8) == "second\n")
            let undo = try await bed.ferry("backupsvr", "drive", "unmount", look)
            #expect(undo.status == 0, "\(undo.error)")
            #expect(!LinuxMounter().isMounted(look))
            let missing = try await bed.ferry("backupsvr", "drive", "mount", pool, "laptop/tank/root@nope", look)
            #expect(missing.status == 1)
            #expect(missing.error.contains("holds no snapshot laptop/tank/root@nope (its newest is @s2)"), "\(missing.error)")
            let after = try await bed.sh(Tool.zfs, "list", "-H", "-o", "name", "-t", "all", "-r", pool).output
            #expect(!after.contains("ferry-mount-"))
            let eject2 = try await bed.ferry("backupsvr", "drive", "eject", pool)
            #expect(eject2.status == 0, "\(eject2.error)")
            bed.forgetPool(pool)
        }
    }
}
