import Foundation
import Testing

@testable import FerryCore

@Suite("Recognising media and handling them")
struct RecognitionTests {
    /// A world with one stick at /dev/sdz1 whose files are `tree`.
    func world(stick tree: [String: String] = [:], device: BlockDevice = .stick()) -> FakeWorld {
        var world = FakeWorld()
        world.devices[device.devnode] = device
        let fixture = world.scratch.path + "/fixture"
        try! FileManager.default.createDirectory(atPath: fixture, withIntermediateDirectories: true)
        for (name, text) in tree { world.scratch.write("fixture/" + name, text) }
        world.mounter.serve(device.devnode, from: fixture)
        return world
    }

    func enrolledIdentity(_ world: FakeWorld, by node: String = "spooler") throws -> String {
        let identity = try StickIdentity.make(for: .stick(), nncp: world.nodes.config(of: node), at: Date())
        return String(decoding: try identity.encoded(), as: UTF8.self)
    }

    @Test("an enrolled stick is a stick, read on one read-only mount that is undone")
    func knownStick() async throws {
        var world = world()
        world.scratch.write("fixture/.ferry/identity", try enrolledIdentity(world))
        let recognition = try await MediumRecognizer(context: world.context()).recognize(devnode: "/dev/sdz1", exclusive: true)
        #expect(recognition.verdict == .stick)
        #expect(recognition.reason.hasPrefix("enrolled by spooler at "))
        #expect(world.mounter.mounts == [.init(device: "/dev/sdz1", target: world.scratch.path + "/mnt/sdz1", readOnly: true)])
        #expect(world.mounter.unmounts == [world.scratch.path + "/mnt/sdz1"])
        _ = world
    }

    @Test(
        "a visit that fails because the stick was pulled out is interrupted (exit 3), not failed; one whose stick stays has failed",
        arguments: [true, false])
    func pulledMidVisit(pulled: Bool) async throws {
        var world = world()
        world.scratch.write("fixture/.ferry/identity", try enrolledIdentity(world))
        if pulled { world.pulledMidVisit = ["/dev/sdz1"] }
        let context = world.context()
        // nncp-ack fails, as the NNCP commands do on a stick that has just gone.
        let nncp = try await context.nncpConfig()
        world.runner.answer(
            NNCP.ack(config: nncp.path, node: "spooler", timeout: context.config.exchange.commandTimeout).asUser("nncp"),
            with: CommandResult(status: .exited(1), standardError: Array("input/output error\n".utf8)))
        await #expect {
            _ = try await Handler(context: context).handle(devnode: "/dev/sdz1")
        } throws: { error in
            let status = (error as? FerryError)?.exitStatus
            return pulled ? status == .interrupted && "\(error)".contains("was pulled out") : status == .failed
        }
    }

    @Test(
        "a vfat or exfat stick is mounted for nncp-user with a umask that shuts others out; ext4 keeps its owners",
        arguments: [("vfat", "uid=0,gid=0,umask=0077"), ("exfat", "uid=0,gid=0,umask=0077"), ("ext4", "")])
    func ownerlessMount(type: String, options: String) async throws {
        var world = world(device: .stick(type: type))
        world.scratch.write("fixture/.ferry/identity", try enrolledIdentity(world))
        var context = world.context()
        // root: an account every machine has, so the uid and gid are known.
        context.config.nncpUser = "root"
        let recognition = try await MediumRecognizer(context: context).recognize(devnode: "/dev/sdz1", exclusive: true)
        #expect(recognition.verdict == .stick)
        #expect(world.mounter.mounts.map(\.options) == [options])
        _ = world
    }

    @Test(
        "a stick with a bad identity is unknown, and handle exits 2 having mounted it read-only only",
        arguments: [
            ([:], "/dev/sdz1:/.ferry does not exist"),
            ([".ferry/other": "x"], "/dev/sdz1:/.ferry/identity does not exist"),
            ([".ferry/identity": "not json"], "is not a ferry identity"),
            ([".ferry/identity": String(repeating: "{", count: 100 * 1024)], "is larger than 4096 bytes"),
            ([".ferry": "a file"], "/dev/sdz1:/.ferry is not a directory"),
        ] as [([String: String], String)])
    func badIdentity(tree: [String: String], reason: String) async throws {
        let world = world(stick: tree)
        let context = world.context()
        let recognition = try await MediumRecognizer(context: context).recognize(devnode: "/dev/sdz1")
        #expect(recognition.verdict == .unknown)
        #expect(recognition.reason.contains(reason))
        await #expect {
            _ = try await Handler(context: context).handle(devnode: "/dev/sdz1")
        } throws: { error in
            (error as? NotOursError)?.exitStatus == .notOurs && "\(error)".contains("was left alone")
        }
        #expect(world.mounter.mounts.allSatisfy { $0.readOnly })
    }

    @Test("a .ferry that is a symlink is refused and not followed")
    func symlinkedFerry() async throws {
        let world = world()
        world.scratch.write("elsewhere/identity", try enrolledIdentity(world))
        try FileManager.default.createSymbolicLink(
            atPath: world.scratch.path + "/fixture/.ferry", withDestinationPath: world.scratch.path + "/elsewhere")
        let recognition = try await MediumRecognizer(context: world.context()).recognize(devnode: "/dev/sdz1")
        #expect(recognition.verdict == .unknown)
        #expect(recognition.reason == "/dev/sdz1:/.ferry is a symbolic link; ferry opens nothing through a link")
    }

    @Test(
        "a medium without a stick filesystem is unknown and never mounted",
        arguments: [FilesystemProbe(), FilesystemProbe(type: "swap"), FilesystemProbe(type: "crypto_LUKS", uuid: "x")])
    func foreignFilesystem(filesystem: FilesystemProbe) async throws {
        var device = BlockDevice.stick()
        device.filesystem = filesystem
        let world = world(device: device)
        let recognition = try await MediumRecognizer(context: world.context()).recognize(devnode: "/dev/sdz1")
        #expect(recognition.verdict == .unknown)
        #expect(recognition.reason.hasPrefix("it carries "))
        #expect(world.mounter.mounts.isEmpty)
    }

    @Test("a device that cannot be inspected is a failure, exit 1")
    func missingDevice() async {
        let world = FakeWorld()
        await #expect {
            _ = try await Handler(context: world.context()).handle(devnode: "/dev/gone")
        } throws: { error in
            (error as? DeviceError)?.exitStatus == .failed && "\(error)" == "/dev/gone does not exist; was the medium pulled out?"
        }
    }

    @Test("handle refuses to run on a laptop")
    func laptopRole() async {
        let world = world()
        await #expect {
            _ = try await Handler(context: world.context(role: .laptop)).handle(devnode: "/dev/sdz1")
        } throws: { $0 is ConfigError }
        #expect(world.mounter.mounts.isEmpty)
    }

    func drive(pool: String = "backup-a", guid: String = "123456789") -> BlockDevice {
        BlockDevice(
            devnode: "/dev/sdy1", kernelName: "sdy1", size: 1 << 30,
            filesystem: FilesystemProbe(type: "zfs_member", label: pool, uuid: guid))
    }

    @Test("a ZFS pool is a drive only on backupsvr, and only when enrolled by GUID")
    func drives() async throws {
        var world = FakeWorld()
        world.devices["/dev/sdy1"] = drive()
        let context = world.context()
        let before = try await MediumRecognizer(context: context).recognize(devnode: "/dev/sdy1")
        #expect(before.verdict == .unknown)
        #expect(before.reason.contains("not an enrolled drive"))
        try context.drives.enroll(EnrolledDrive(pool: "backup-a", guid: "123456789", enrolled: "x"))
        let after = try await MediumRecognizer(context: context).recognize(devnode: "/dev/sdy1")
        #expect(after.verdict == .drive)
        #expect(after.drive?.pool == "backup-a")
        let atSpooler = try await MediumRecognizer(context: world.context(role: .spooler, as: "spooler", peer: "backupsvr")).recognize(
            devnode: "/dev/sdy1")
        #expect(atSpooler.verdict == .unknown)
        #expect(world.mounter.mounts.isEmpty)
    }

    @Test("a foreign pool with an enrolled pool's name is refused")
    func namesake() async throws {
        var world = FakeWorld()
        world.devices["/dev/sdy1"] = drive(guid: "999")
        let context = world.context()
        try context.drives.enroll(EnrolledDrive(pool: "backup-a", guid: "123456789", enrolled: "x"))
        let recognition = try await MediumRecognizer(context: context).recognize(devnode: "/dev/sdy1")
        #expect(recognition.verdict == .unknown)
        #expect(recognition.reason.contains("a foreign pool with the same name"))
    }
}

@Suite("Enrolling sticks and drives")
struct EnrolmentTests {
    func world() -> FakeWorld {
        var world = FakeWorld()
        world.devices["/dev/sdz1"] = .stick()
        try! FileManager.default.createDirectory(atPath: world.scratch.path + "/stick", withIntermediateDirectories: true)
        world.mounter.serve("/dev/sdz1", from: world.scratch.path + "/stick")
        return world
    }

    @Test("enrolling mounts read-write, writes an identity the peer accepts, and unmounts")
    func enroll() async throws {
        let world = world()
        let outcome = try await StickEnrolment(context: world.context(role: .spooler, as: "spooler", peer: "backupsvr")).enroll(
            devnode: "/dev/sdz1", force: false)
        guard case .enrolled(let identity) = outcome else {
            Issue.record("expected a new enrolment, got \(outcome)")
            return
        }
        #expect(world.mounter.mounts.map(\.readOnly) == [false])
        #expect(world.mounter.unmounts.count == 1)
        #expect(identity.uuid == "1111-2222")
        #expect(
            try identity.verify(device: .stick(), nncp: world.nodes.config(of: "backupsvr"), trusting: "spooler", path: "x").name
                == "spooler")
    }

    @Test("a stick with an identity ferry refuses is not overwritten without --force")
    func refuseOverwrite() async throws {
        let world = world()
        world.scratch.write("stick/.ferry/identity", "garbage")
        let context = world.context()
        await #expect {
            _ = try await StickEnrolment(context: context).enroll(devnode: "/dev/sdz1", force: false)
        } throws: { "\($0)".contains("pass --force to replace it") }
    }

    @Test("enrolling on a laptop, or a medium without a stick filesystem, is refused")
    func refused() async {
        var world = world()
        world.devices["/dev/sdz1"]!.filesystem = FilesystemProbe(type: "swap")
        let context = world.context()
        await #expect {
            _ = try await StickEnrolment(context: world.context(role: .laptop)).enroll(devnode: "/dev/sdz1", force: false)
        } throws: { $0 is ConfigError }
        await #expect { _ = try await StickEnrolment(context: context).enroll(devnode: "/dev/sdz1", force: false) } throws: {
            "\($0)".contains("mkfs.ext4 -L FERRY-1")
        }
        #expect(world.mounter.mounts.isEmpty)
    }

    @Test("a drive enrolled by pool name asks zpool for its GUID")
    func drivebyName() async throws {
        let world = FakeWorld()
        world.runner.answer(
            Zpool.guid(pool: "backup-a"), with: CommandResult(status: .exited(0), standardOutput: Array("1234567890\n".utf8)))
        world.runner.answer(
            Zpool.listImported(), with: CommandResult(status: .exited(0), standardOutput: Array("backup-a\t1234567890\tONLINE\n".utf8)))
        world.runner.answer(
            Zpool.unhealthy(), with: CommandResult(status: .exited(0), standardOutput: Array("all pools are healthy\n".utf8)))
        let context = world.context()
        let (drive, new) = try await DriveEnrolment(context: context).enroll("backup-a")
        #expect(new)
        let now = FixedClock().now().rfc3339
        #expect(drive == EnrolledDrive(pool: "backup-a", guid: "1234567890", enrolled: now, place: .dock, since: now))
        #expect(world.runner.calls == [Zpool.guid(pool: "backup-a"), Zpool.listImported(), Zpool.unhealthy()])
        #expect(try context.drives.load() == [drive])
        #expect(try await DriveEnrolment(context: context).enroll("backup-a").new == false)
    }

    @Test("a pool that is not imported, a bad name, or a clashing name is refused")
    func driveRefused() async throws {
        let world = FakeWorld()
        world.runner.answer(
            Zpool.guid(pool: "backup-a"),
            with: CommandResult(status: .exited(1), standardError: Array("cannot open 'backup-a': no such pool\n".utf8)))
        let context = world.context()
        await #expect { _ = try await DriveEnrolment(context: context).enroll("backup-a") } throws: {
            ($0 as? DriveError)?.code == .notImported && "\($0)".contains("is not an imported pool")
        }
        await #expect { _ = try await DriveEnrolment(context: context).enroll("../etc") } throws: {
            ($0 as? DriveError)?.code == .notAPool && "\($0)".contains("not a valid ZFS pool name")
        }
        try context.drives.enroll(EnrolledDrive(pool: "backup-a", guid: "1", enrolled: "x"))
        #expect { try context.drives.enroll(EnrolledDrive(pool: "backup-a", guid: "2", enrolled: "x")) } throws: {
            ($0 as? DriveError)?.code == .clash && "\($0)".contains("clashes with enrolled drive")
        }
    }
}

@Suite("Stick filesystems without owners")
struct StickFilesystemTests {
    let nncp = Account(name: "nncp", uid: 102, gid: 105)

    @Test(
        "vfat, exfat and ntfs3 are mounted with nncp-user's uid and gid and umask 0077; the others need no data",
        arguments: [
            ("vfat", "uid=102,gid=105,umask=0077"), ("exfat", "uid=102,gid=105,umask=0077"), ("ntfs3", "uid=102,gid=105,umask=0077"),
            ("ext4", ""), ("xfs", ""),
        ])
    func mountData(type: String, data: String) {
        #expect(StickFilesystem(type: type).mountData(owner: nncp) == data)
        #expect(StickFilesystem(type: type).keepsOwners == data.isEmpty)
    }

    @Test("without an nncp-user the files of an ownerless stick stay root's, still shut to others")
    func noOwner() {
        #expect(StickFilesystem(type: "vfat").mountData(owner: nil) == "umask=0077")
    }

    @Test("the largest file comes from blkid's type: 4 GiB - 1 on vfat, no limit below a stick's size on exfat")
    func largestFile() {
        #expect(StickFilesystem(type: "vfat").largestFile == 4_294_967_295)
        #expect(StickFilesystem(type: "exfat").largestFile == nil)
        #expect(StickFilesystem(type: "ext4").largestFile == 16 << 40)
    }
}
