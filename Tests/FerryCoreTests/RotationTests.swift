import Foundation
import Testing

@testable import FerryCore

@Suite("Rotation warnings and the drive lines of status")
struct RotationPolicyTests {
    let now = try! Date("2026-11-27T12:00:00Z", strategy: .iso8601)
    let policy = RotationPolicy(FerryConfig.Rotation(rotateAfter: .seconds(14 * 86400), storeWarnPercent: 50))

    /// Fixed GUIDs, the same every run (a `hashValue` is seeded afresh each run).
    static let guids = ["a": "1111111111111111111", "b": "2222222222222222222", "c": "3333333333333333333", "r": "4444444444444444444"]

    func drive(_ pool: String, _ place: DrivePlace, since: String, behind: Int = 0) -> EnrolledDrive {
        var drive = EnrolledDrive(pool: pool, guid: Self.guids[pool]!, enrolled: "2026-01-01T00:00:00Z", place: place, since: since)
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
        let alone = policy.warnings(
            drives: [drive("a", .dock, since: "2026-11-27T00:00:00Z")], store: PacketCount(), diskBytes: nil, now: now)
        #expect(alone == ["no backup drive is offsite: every enrolled drive is here (eject one and take it away)"])
    }

    @Test("status and drive list show where each drive is, what it lacks, and its newest snapshots")
    func lines() {
        var away = drive("b", .offsite, since: "2026-11-20T00:00:00Z", behind: 2)
        away.datasets = [DriveDataset(dataset: "laptop/tank/root", snapshot: "s2", created: "2026-11-19T00:00:00Z")]
        #expect(
            StatusText.lines(away) == [
                "drive b (GUID 2222222222222222222): offsite since 2026-11-20T00:00:00Z, 2 stream(s) behind (2.0 MiB)",
                "  laptop/tank/root@s2, taken 2026-11-19T00:00:00Z",
            ])
        #expect(
            StatusText.lines(drive("a", .dock, since: "2026-11-20T00:00:00Z"))[0].hasSuffix(
                "in the dock since 2026-11-20T00:00:00Z, up to date"))
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

@Suite("A drive's plug-in, with zpool faked")
struct PlugInTests {
    static func output(_ text: String, status: Int32 = 0) -> CommandResult {
        CommandResult(status: .exited(status), standardOutput: Array(text.utf8))
    }

    static func failure(_ text: String, status: Int32 = 1) -> CommandResult {
        CommandResult(status: .exited(status), standardError: Array(text.utf8))
    }

    /// What a plug-in asks after its catch-up: the drive's space, and its
    /// scrub, which is due on a drive never scrubbed.
    static func scriptCare(_ world: FakeWorld) {
        world.runner.answer(
            Zfs.get(["used", "available"], of: ["backup-b"]), with: output("backup-b\tused\t100\t-\nbackup-b\tavailable\t900\t-\n"))
        world.runner.answer(Zpool.status(pool: "backup-b"), with: output(" scrub: none requested\n"))
        world.runner.answer(Zpool.scrub(pool: "backup-b"), with: output(""))
    }

    let drive = EnrolledDrive(
        pool: "backup-b", guid: "42", enrolled: "2026-11-01T00:00:00Z", place: .offsite, since: "2026-11-01T00:00:00Z")
    let device = BlockDevice(
        devnode: "/dev/sdq1", kernelName: "sdq1", size: 1 << 40,
        filesystem: FilesystemProbe(type: "zfs_member", label: "backup-b", uuid: "42"))

    @Test("with no drive enrolled, the drive listing asks zpool nothing, so a host without ZFS is not warned")
    func noDrivesNoZpool() async throws {
        let world = FakeWorld()
        let drives = try await DriveDock(context: world.context()).drives()
        #expect(drives.isEmpty)
        #expect(world.runner.calls.isEmpty, "\(world.runner.calls)")
    }

    @Test("imports by GUID with -N and no cache file; where zpool has no -N (zfs-fuse), under a private altroot")
    func importFallback() async throws {
        let world = FakeWorld()
        let context = world.context()
        try context.drives.enroll(drive)
        let altroot = context.config.stateDir + "/altroot/backup-b"
        world.runner.answer(Zpool.listImported(), with: Self.output(""), Self.output(""), Self.output("backup-b\t42\tONLINE\n"))
        world.runner.answer(Zpool.unhealthy(), with: Self.output("all pools are healthy\n"))
        world.runner.answer(
            Zpool.importByGUID("42", searchDirectory: "/dev"), with: Self.failure("invalid option 'N'\nusage: ...\n", status: 2))
        world.runner.answer(Zpool.importByGUID("42", searchDirectory: "/dev", altroot: altroot), with: Self.output(""))
        world.runner.answer(Zfs.get(["createtxg", "creation"], of: ["backup-b"], recursive: true), with: Self.output(""))
        world.runner.answer(
            Zfs.probeReceive(options: context.config.receive.zfsReceiveOptions, target: "backup-b/ferry-probe"), with: Self.output(""))
        Self.scriptCare(world)
        let plugged = try await DriveDock(context: context).plugIn(device, drive: drive)
        #expect(
            Zpool.importByGUID("42", searchDirectory: "/dev").arguments == ["import", "-N", "-o", "cachefile=none", "-d", "/dev", "42"])
        let imports = world.runner.calls.filter { $0.arguments.first == "import" }.map(\.arguments)
        #expect(imports == [["import", "-N", "-o", "cachefile=none", "-d", "/dev", "42"], ["import", "-R", altroot, "-d", "/dev", "42"]])
        #expect(plugged.drive.place == .dock && plugged.drive.since == FixedClock().now().rfc3339)
        #expect(plugged.recovered == nil)
        #expect(try context.drives.load().first?.place == .dock)
        #expect(plugged.drive.capacity == DriveCapacity(size: 1000, used: 100, free: 900, seen: FixedClock().now().rfc3339))
        #expect(plugged.drive.scrub == ScrubResult(state: .running, started: FixedClock().now().rfc3339), "never scrubbed: due")
    }

    @Test("the newest snapshot of each dataset on a drive comes from one zfs get -r, parents first, containers left out")
    func newestSnapshots() async throws {
        let world = FakeWorld()
        let rows = """
            backup-b\tcreatetxg\t1\t-
            backup-b/laptop\tcreatetxg\t7\t-
            backup-b/laptop/root\tcreatetxg\t9\t-
            backup-b/laptop/root@s1\tcreatetxg\t14\t-
            backup-b/laptop/root@s1\tcreation\t1795757000\t-
            backup-b/laptop/root@s2\tcreatetxg\t24\t-
            backup-b/laptop/root@s2\tcreation\t1795757360\t-
            backup-b/laptop/root/home@s1\tcreatetxg\t19\t-
            backup-b/laptop/root/home@s1\tcreation\t1795757000\t-

            """
        world.runner.answer(Zfs.get(["createtxg", "creation"], of: ["backup-b"], recursive: true), with: Self.output(rows))
        let newest = try await ZFSInventory(runner: world.runner).newestSnapshots(under: "backup-b")
        #expect(
            newest == [
                DriveDataset(dataset: "laptop/root", snapshot: "s2", created: Date(timeIntervalSince1970: 1_795_757_360).rfc3339),
                DriveDataset(dataset: "laptop/root/home", snapshot: "s1", created: Date(timeIntervalSince1970: 1_795_757_000).rfc3339),
            ])
        #expect(world.runner.calls.count == 1)
    }

    @Test("a pool of the drive's name with another GUID is a clash: exit 2, and nothing is imported")
    func nameClash() async throws {
        let world = FakeWorld()
        let context = world.context()
        try context.drives.enroll(drive)
        world.runner.answer(Zpool.listImported(), with: Self.output("backup-b\t7\tONLINE\n"))
        world.runner.answer(Zpool.unhealthy(), with: Self.output("all pools are healthy\n"))
        await #expect {
            _ = try await DriveDock(context: context).plugIn(device, drive: drive)
        } throws: { error in
            (error as? FerryError)?.exitStatus == .notOurs && "\(error)".contains("a pool named backup-b with another GUID (7)")
        }
        #expect(!world.runner.calls.contains { $0.arguments.first == "import" })
    }

    @Test("a drive whose pool is suspended is resumed with zpool clear before anything else")
    func suspendedResumed() async throws {
        let world = FakeWorld()
        let context = world.context()
        var docked = drive
        docked.place = .dock
        try context.drives.enroll(docked)
        world.runner.answer(Zpool.listImported(), with: Self.output("backup-b\t42\tONLINE\n"))
        world.runner.answer(
            Zpool.unhealthy(),
            with: Self.output("  pool: backup-b\n status: One or more devices are faulted in response to IO failures.\n"),
            Self.output("all pools are healthy\n"))
        world.runner.answer(Zpool.clear(pool: "backup-b"), with: Self.output(""))
        world.runner.answer(Zfs.get(["createtxg", "creation"], of: ["backup-b"], recursive: true), with: Self.output(""))
        world.runner.answer(
            Zfs.probeReceive(options: context.config.receive.zfsReceiveOptions, target: "backup-b/ferry-probe"), with: Self.output(""))
        Self.scriptCare(world)
        let plugged = try await DriveDock(context: context).plugIn(device, drive: docked)
        #expect(plugged.recovered == "it was pulled while in use (its I/O suspended); zpool clear resumed it")
        let zpool = world.runner.calls.filter { $0.executable == Tool.zpool }.map { $0.arguments.first ?? "" }
        #expect(zpool.prefix(3) == ["list", "status", "clear"])
        #expect(!zpool.contains("export") && !zpool.contains("import"))
    }
}

@Suite("backupsvr's state, as the visit, status and drive list read it")
struct BackupsvrStateTests {
    @Test("zpool failing is a warning, and the drives are shown as last recorded")
    func poolsUnreadable() async throws {
        let world = FakeWorld()
        let context = world.context()
        let drive = EnrolledDrive(
            pool: "backup-a", guid: "42", enrolled: "2026-11-01T00:00:00Z", place: .dock, since: "2026-11-01T00:00:00Z")
        try context.drives.enroll(drive)
        world.runner.answer(Zpool.listImported(), with: PlugInTests.failure("connect: no such file or directory\n"))

        let state = try await DriveDock(context: context).backupsvrState()

        #expect(state.drives.map(\.pool) == ["backup-a"])
        #expect(state.drives[0].place == .dock)
        #expect(
            state.warnings.first
                == "could not check the backup drives' pools: zpool list failed (exit status 1): connect: no such file or directory; is the ZFS daemon running?"
        )
        #expect(state.datasets.isEmpty)
        #expect(state.streamStore == PacketCount())
    }
}
