import Testing

@testable import FerryCore

@Suite("Snapshot mounts: commands, and the names an admin types")
struct SnapshotMountTests {
    @Test("a snapshot mount's clone is read-only, never mounted on import, and marked with its directory")
    func cloneArgv() {
        let command = Zfs.cloneReadOnly(
            "backup-a/laptop/tank/root@s2", to: "backup-a/ferry-mount-00ff", mountpoint: "/mnt/look", marker: ("ferry:mount", "/mnt/look"))
        #expect(
            command.description
                == "/usr/sbin/zfs clone -o canmount=noauto -o readonly=on -o mountpoint=/mnt/look -o ferry:mount=/mnt/look backup-a/laptop/tank/root@s2 backup-a/ferry-mount-00ff"
        )
        #expect(command.timeout != nil)
        #expect(Zfs.mount("backup-a/ferry-mount-00ff").description == "/usr/sbin/zfs mount backup-a/ferry-mount-00ff")
        #expect(Zfs.unmount("backup-a/ferry-mount-00ff").description == "/usr/sbin/zfs unmount backup-a/ferry-mount-00ff")
    }

    @Test("a clone mounted under an altroot is bound onto the directory read-only, and nothing on it runs")
    func bindArgv() {
        let command = Mount.bindReadOnly("/var/lib/ferry/altroot/backup-a/mnt/look", on: "/mnt/look")
        #expect(command.executable == "/usr/bin/mount")
        #expect(command.arguments == ["-o", "bind,ro,nosuid,nodev,noexec", "/var/lib/ferry/altroot/backup-a/mnt/look", "/mnt/look"])
    }

    @Test(
        "HOST/DATASET[@SNAPSHOT] parses into a dataset and an optional snapshot",
        arguments: [
            ("laptop/tank/root", "laptop/tank/root", nil as String?),
            ("laptop/tank/root@ferry-2026-12-01", "laptop/tank/root", "ferry-2026-12-01"),
        ])
    func snapshotNames(text: String, dataset: String, snapshot: String?) throws {
        let parsed = try SnapshotName.parse(text)
        #expect("\(parsed.dataset)" == dataset)
        #expect(parsed.snapshot == snapshot)
    }

    @Test(
        "a name that is not HOST/DATASET[@SNAPSHOT] is one error line",
        arguments: [
            ("laptop", "is not HOST/DATASET[@SNAPSHOT]"), ("laptop/tank@", "has a snapshot name ZFS does not allow"),
            ("laptop/tank@a@b", "has a snapshot name ZFS does not allow"), ("/laptop/tank", "is an absolute path"),
            ("laptop//tank", "has an empty component"),
        ])
    func badSnapshotNames(text: String, problem: String) {
        #expect {
            try SnapshotName.parse(text)
        } throws: { error in
            "\(error)".contains(problem) && !"\(error)".contains("\n")
        }
    }
}
