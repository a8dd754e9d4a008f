import Testing

@testable import FerryCore

@Suite("Snapshot mounts and restores: commands and names")
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

@Suite("[restore] in the config")
struct RestoreConfigTests {
    let path = "/etc/ferry/ferry.toml"

    @Test("[restore] into names where restores land; without it, each dataset's pool's ferry-restore")
    func into() throws {
        let configured = try FerryConfig.parse("role = \"laptop\"\n[restore]\ninto = \"tank/restores\"\n", path: path)
        let dataset = try DatasetName("rpool/home")
        #expect("\(configured.restore.root(for: dataset))" == "tank/restores")
        let plain = try FerryConfig.parse("role = \"laptop\"\n", path: path)
        #expect(plain.restore.into == nil)
        #expect("\(plain.restore.root(for: dataset))" == "rpool/ferry-restore")
    }

    @Test(
        "a bad [restore] value is one error line naming the file and the key",
        arguments: [
            (
                "[restore]\ninto = \"/tank/x\"\n",
                "/etc/ferry/ferry.toml: key \"restore.into\" is not a dataset name: dataset name \"/tank/x\" is an absolute path"
            ),
            ("[restore]\ninto = \"tank//x\"\n", "key \"restore.into\" is not a dataset name"),
            ("[restore]\ninto = \"tank/x@s\"\n", "key \"restore.into\" is not a dataset name: dataset name \"tank/x@s\" names a snapshot"),
            ("[restore]\ninto = 3\n", "key \"restore.into\" must be a string"),
            ("[restore]\nonto = \"tank/x\"\n", "key \"restore.onto\" is not a known setting; known here: into"),
        ])
    func badRestore(text: String, message: String) {
        #expect {
            _ = try FerryConfig.parse("role = \"laptop\"\n" + text, path: path)
        } throws: { error in
            "\(error)".contains(message) && !"\(error)".contains("\n")
        }
    }

    @Test("a restore goes to the laptop's zfsrestore handle, and in parts with the part's stream and number")
    func restoreExecArgv() {
        let whole = NNCP.exec(config: "/etc/nncp.hjson", nice: "B", node: "laptop", handle: "zfsrestore", arguments: ["laptop/tank/root"])
        #expect(whole.description == "/usr/bin/nncp-exec -cfg /etc/nncp.hjson -noprogress -nice B laptop zfsrestore laptop/tank/root")
        let part = NNCP.execPart(
            config: "/etc/nncp.hjson", nice: "B", node: "laptop", handle: RestoreSender.handle, destination: "laptop/tank/root",
            stream: "00112233445566778899aabbccddeeff", part: 2)
        #expect(
            part.arguments == [
                "-cfg", "/etc/nncp.hjson", "-noprogress", "-nice", "B", "laptop", "zfsrestore", "laptop/tank/root", "--stream",
                "00112233445566778899aabbccddeeff", "--part", "2",
            ])
    }
}
