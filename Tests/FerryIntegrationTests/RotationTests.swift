import FerryCore
import FerryDemo
import Foundation
import SystemPackage
import Testing

extension ZFSWorld {
    /// Another backup drive: a pool on its own loop device, enrolled.
    func addDrive(_ tag: String, megabytes: Int = 128) async throws -> (pool: String, device: LoopDevice) {
        let pool = "fd\(getpid())\(tag)"
        let device = try await bed.pool(pool, ownAltroot: true, megabytes: megabytes)
        let enrol = try await bed.ferry("backupsvr", "drive", "enroll", pool)
        try #require(enrol.status == 0, "\(enrol.error)")
        return (pool, device)
    }

    func eject(_ pool: String) async throws -> Run {
        let run = try await bed.ferry("backupsvr", "drive", "eject", pool)
        try #require(run.status == 0, "eject \(pool): \(run.error)")
        #expect(run.output.contains("\(pool) is safe to remove"), "\(run.output)")
        let pools = try await ZFSInventory(runner: bed.runner).importedPools()
        #expect(!pools.contains { $0.name == pool }, "an ejected drive's pool is exported")
        return run
    }

    /// What udev and systemd do when the drive is plugged in: ferry handle.
    func plugIn(_ device: LoopDevice, pool: String) async throws -> Run {
        let run = try await bed.ferry("backupsvr", "handle", device.devnode)
        bed.adoptPool(pool)
        return run
    }

    func drives() async throws -> [EnrolledDrive] {
        let list = try await bed.ferry("backupsvr", "drive", "list", "--json")
        try #require(list.status == 0, "\(list.error)")
        return try JSONDecoder().decode([EnrolledDrive].self, from: Data(list.output.utf8))
    }

    /// The snapshots of the laptop's root on `pool`.
    func rootSnapshots(on pool: String) async throws -> [String] {
        try await snapshots("\(pool)/laptop/\(laptop)/root")
    }

    func homeSnapshots(on pool: String) async throws -> [String] {
        try await snapshots("\(pool)/laptop/\(laptop)/root/home")
    }

    /// Writes a round's files, sends, and returns the laptop's new snapshot.
    func sendRound(_ round: Int) async throws -> String {
        try await write("root \(round)\n", to: "f")
        try await write("home \(round)\n", to: "h", in: "root/home")
        _ = try await send()
        return try #require(try await snapshots("\(laptop)/root").last)
    }
}

@Suite(
    "Backup-drive rotation on zfs-fuse pools, with real NNCP and ferry receive", .tags(.integration, .zfs), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly),
    .zfsAnswers)
struct RotationTests {
    @Test("rotation cycle: A gets s1 s2, B (away) catches up s1 s2 s3 at plug-in, A gets s3 on return; the spooler sees both drives")
    func rotationCycle() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "c")
            let stick = try await bed.enrolledStick()
            let a = world.drive
            let b = try await world.addDrive("c")
            _ = try await world.eject(b.pool)

            let s1 = try await world.sendRound(1)
            _ = try await world.trip(stick)
            let s2 = try await world.sendRound(2)
            _ = try await world.trip(stick)
            #expect(try await world.rootSnapshots(on: a) == [s1, s2])
            #expect(try await world.homeSnapshots(on: a) == [s1, s2])
            #expect(world.storedStreams().isEmpty, "A holds s1 and s2, and B can get them from A")
            var drives = try await world.drives()
            #expect(drives.map(\.pool) == [a, b.pool])
            #expect(drives[0].place == .dock && drives[0].behind?.packets == 0)
            #expect(drives[1].place == .offsite && drives[1].behind?.packets == 0)
            #expect(drives[0].datasets?.map(\.snapshot) == [s2, s2])

            let ejectA = try await world.eject(a)
            #expect(ejectA.output.contains("laptop/\(world.laptop)/root@\(s2)"), "\(ejectA.output)")
            #expect(!ejectA.output.contains("wait in the store for its return"), "A lacks nothing: \(ejectA.output)")
            #expect(ejectA.output.contains("4 stream(s)"), "A goes: s1 and s2 go back into the store for B: \(ejectA.output)")
            #expect(world.storedStreams().count == 4)
            let again = try await bed.ferry("backupsvr", "drive", "eject", a)
            #expect(again.status == 1)
            #expect(again.error.contains("\(a) is not imported: it is offsite since"), "\(again.error)")
            let unknown = try await bed.ferry("backupsvr", "drive", "eject", "nosuchpool")
            #expect(unknown.status == 1)
            #expect(unknown.error.contains("nosuchpool is not an enrolled drive (enrolled: \(a), \(b.pool)"), "\(unknown.error)")
            let seedAway = try await bed.ferry("backupsvr", "drive", "seed", b.pool, "--from", a)
            #expect(seedAway.status == 1)
            #expect(seedAway.error.contains("is not imported and healthy: plug it in first"), "\(seedAway.error)")
            let s3 = try await world.sendRound(3)
            _ = try await world.trip(stick)
            #expect(world.storedStreams().count == 6, "s3 waits for both drives")

            let plugB = try await world.plugIn(b.device, pool: b.pool)
            #expect(plugB.status == 0, "\(plugB.error)")
            #expect(plugB.error.contains("drive \(b.pool) is in the dock and caught up"), "\(plugB.error)")
            #expect(try await world.rootSnapshots(on: b.pool) == [s1, s2, s3])
            #expect(try await world.homeSnapshots(on: b.pool) == [s1, s2, s3])
            #expect(try await world.receivedFile("f", in: "\(b.pool)/laptop/\(world.laptop)/root") == "root 3\n")
            #expect(try await world.receivedFile("h", in: "\(b.pool)/laptop/\(world.laptop)/root/home") == "home 3\n")
            #expect(try await world.property("readonly", of: "\(b.pool)/laptop/\(world.laptop)/root") == "on")
            #expect(try await world.property("mounted", of: "\(b.pool)/laptop/\(world.laptop)/root") == "no")
            #expect(world.storedStreams().isEmpty, "A lacks only s3, which B holds")

            let ejectB = try await world.eject(b.pool)
            #expect(ejectB.output.contains("2 stream(s)"), "B goes: s3 goes back into the store for A: \(ejectB.output)")
            #expect(world.storedStreams().count == 2)
            let plugA = try await world.plugIn(world.driveDevice, pool: a)
            #expect(plugA.status == 0, "\(plugA.error)")
            #expect(try await world.rootSnapshots(on: a) == [s1, s2, s3])
            #expect(try await world.homeSnapshots(on: a) == [s1, s2, s3])
            #expect(try await world.receivedFile("f", in: "\(a)/laptop/\(world.laptop)/root") == "root 3\n")
            #expect(world.storedStreams().isEmpty, "every drive holds every stream")

            drives = try await world.drives()
            #expect(drives.map(\.place) == [.dock, .offsite])
            #expect(drives.map { $0.behind?.packets } == [0, 0])
            #expect(drives[1].datasets?.map(\.snapshot) == [s3, s3], "B's record from its eject")

            // The journal carries it all to the spooler.
            for host in ["backupsvr", "spooler"] {
                let visit = try await bed.ferry(host, "handle", stick.devnode)
                try #require(visit.status == 0, "\(visit.error)")
            }
            let status = try await bed.ferry("spooler", "status", "--json")
            try #require(status.status == 0, "\(status.error)")
            let report = try JSONDecoder().decode(StatusReport.self, from: Data(status.output.utf8))
            let seen = try #require(report.peer?.visit.drives)
            #expect(seen.map(\.pool) == [a, b.pool])
            #expect(seen.map(\.place) == [.dock, .offsite])
            #expect(
                seen.map { $0.datasets?.map(\.dataset) ?? [] }
                    == Array(repeating: ["laptop/\(world.laptop)/root", "laptop/\(world.laptop)/root/home"], count: 2))
            #expect(seen.map { $0.datasets?.map(\.snapshot) ?? [] } == [[s3, s3], [s3, s3]])
            #expect(seen.map { $0.behind?.packets } == [0, 0])
            let text = try await bed.ferry("spooler", "status")
            #expect(
                text.output.contains("drive \(b.pool) (GUID \(seen[1].guid)): offsite since \(seen[1].since!), up to date"),
                "\(text.output)")
        }
    }

    @Test("out-of-order delivery while B is away: A applies s2 then s3, and B gets s1 s2 s3 when it returns")
    func outOfOrderWhileAway() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "w")
            let stick = try await bed.enrolledStick()
            try await bed.sh(Tool.zfs, "set", "ferry:exclude=on", "\(world.laptop)/root/home")
            let b = try await world.addDrive("w")
            _ = try await world.eject(b.pool)
            let s1 = try await world.sendRound(1)
            _ = try await world.trip(stick)

            // s2 is held back in the laptop's outgoing spool while s3 crosses.
            let s2 = try await world.sendRound(2)
            let outgoing = "\(bed.network.spool("laptop"))/\(try bed.nodeID("spooler"))/tx"
            let held = try FileManager.default.contentsOfDirectory(atPath: outgoing).filter { !$0.hasPrefix(".") && $0 != "hdr" }
            try #require(held.count == 1)
            let aside = "\(bed.directory)/held"
            try FileManager.default.createDirectory(atPath: aside, withIntermediateDirectories: true)
            try FileManager.default.moveItem(atPath: "\(outgoing)/\(held[0])", toPath: "\(aside)/\(held[0])")
            let s3 = try await world.sendRound(3)
            _ = try await world.trip(stick)
            #expect(try await world.rootSnapshots(on: world.drive) == [s1])
            try FileManager.default.moveItem(atPath: "\(aside)/\(held[0])", toPath: "\(outgoing)/\(held[0])")
            _ = try await world.trip(stick)
            #expect(try await world.rootSnapshots(on: world.drive) == [s1, s2, s3])
            #expect(world.storedStreams().isEmpty, "A holds all three, and B can get them from A")

            let plugB = try await world.plugIn(b.device, pool: b.pool)
            #expect(plugB.status == 0, "\(plugB.error)")
            #expect(plugB.error.contains("caught up from a present drive"), "\(plugB.error)")
            #expect(try await world.rootSnapshots(on: b.pool) == [s1, s2, s3])
            #expect(try await world.receivedFile("f", in: "\(b.pool)/laptop/\(world.laptop)/root") == "root 3\n")
            #expect(world.storedStreams().isEmpty)
        }
    }

    @Test("two drives present at once both take each stream straight away, and status warns that none is offsite")
    func twoPresent() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "t")
            let stick = try await bed.enrolledStick()
            let b = try await world.addDrive("t")
            let s1 = try await world.sendRound(1)
            _ = try await world.trip(stick)
            let s2 = try await world.sendRound(2)
            _ = try await world.trip(stick)
            for pool in [world.drive, b.pool] {
                #expect(try await world.rootSnapshots(on: pool) == [s1, s2], "\(pool)")
                #expect(try await world.homeSnapshots(on: pool) == [s1, s2], "\(pool)")
            }
            #expect(world.storedStreams().isEmpty)
            let status = try await bed.ferry("backupsvr", "status", "--json")
            let report = try JSONDecoder().decode(StatusReport.self, from: Data(status.output.utf8))
            #expect(report.drives?.map(\.place) == [.dock, .dock])
            #expect(report.warnings.contains("no backup drive is offsite: every enrolled drive is here (eject one and take it away)"))

            // The warning rides in backupsvr's journal record to the spooler.
            for host in ["backupsvr", "spooler"] {
                let visit = try await bed.ferry(host, "handle", stick.devnode)
                try #require(visit.status == 0, "\(visit.error)")
            }
            let atSpooler = try await bed.ferry("spooler", "status", "--json")
            let seen = try JSONDecoder().decode(StatusReport.self, from: Data(atSpooler.output.utf8))
            #expect(
                seen.warnings.contains("backupsvr: no backup drive is offsite: every enrolled drive is here (eject one and take it away)"),
                "\(seen.warnings)")
            #expect(seen.peer?.visit.drives?.map(\.place) == [.dock, .dock])
        }
    }

    @Test("a foreign pool with an enrolled drive's name is never used: plug-in refused, streams wait, the real drive catches up")
    func foreignNamesake() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "f")
            let stick = try await bed.enrolledStick()
            try await bed.sh(Tool.zfs, "set", "ferry:exclude=on", "\(world.laptop)/root/home")
            let s1 = try await world.sendRound(1)
            _ = try await world.trip(stick)
            _ = try await world.eject(world.drive)

            // Another system's drive, its pool named like ours, is imported.
            let foreign = try await bed.pool(world.drive, ownAltroot: true)
            let s2 = try await world.sendRound(2)
            _ = try await world.trip(stick)
            #expect(try await world.snapshots("\(world.drive)/laptop/\(world.laptop)/root").isEmpty, "nothing went to the foreign pool")
            #expect(world.storedStreams().count == 1)
            let handleForeign = try await bed.ferry("backupsvr", "handle", foreign.devnode)
            #expect(handleForeign.status == 2)
            #expect(handleForeign.error.contains("a foreign pool with the same name"), "\(handleForeign.error)")
            let clash = try await bed.ferry("backupsvr", "handle", world.driveDevice.devnode)
            #expect(clash.status == 2, "\(clash.error)")
            #expect(clash.error.contains("a pool named \(world.drive) with another GUID"), "\(clash.error)")

            let destroyed = await bed.destroyPool(world.drive)
            try #require(destroyed == nil, "\(destroyed ?? "")")
            let plug = try await world.plugIn(world.driveDevice, pool: world.drive)
            #expect(plug.status == 0, "\(plug.error)")
            #expect(try await world.rootSnapshots(on: world.drive) == [s1, s2])
            #expect(world.storedStreams().isEmpty)
        }
    }

    @Test("a full drive: zfs receive's out-of-space is reported, the stream stays in the store, and a bigger drive takes it")
    func fullDrive() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "n")
            let stick = try await bed.enrolledStick(megabytes: 256)
            try await bed.sh(Tool.zfs, "set", "ferry:exclude=on", "\(world.laptop)/root/home")
            _ = try await world.eject(world.drive)
            let small = try await world.addDrive("n", megabytes: 64)
            let big = try await world.mountpoint("\(world.laptop)/root") + "/big"
            try await bed.sh("/bin/dd", "if=/dev/urandom", "of=\(big)", "bs=1M", "count=80", "status=none")
            let s1 = try await world.sendRound(1)
            _ = try await world.trip(stick)
            #expect(try await world.rootSnapshots(on: small.pool).isEmpty)
            #expect(world.storedStreams().count == 1, "the stream stays in the store")

            let again = try await world.plugIn(small.device, pool: small.pool)
            #expect(again.status == 1, "\(again.error)")
            #expect(again.error.contains("could not take 1 stream(s), which stay in the store"), "\(again.error)")
            #expect(again.error.lowercased().contains("space"), "the zfs error says why: \(again.error)")
            #expect(world.storedStreams().count == 1)
            let list = try await world.drives()
            #expect(list.first { $0.pool == small.pool }?.behind?.packets == 1)

            let plugA = try await world.plugIn(world.driveDevice, pool: world.drive)
            #expect(plugA.status == 0, "\(plugA.error)")
            #expect(try await world.rootSnapshots(on: world.drive) == [s1])
            #expect(world.storedStreams().count == 1, "still waiting for the small drive")
            let retire = try await bed.ferry("backupsvr", "drive", "retire", small.pool)
            #expect(retire.status == 0, "\(retire.error)")
            #expect(retire.output.contains("the store let go of 1 stream(s)"), "\(retire.output)")
            #expect(world.storedStreams().isEmpty)
        }
    }

    @Test("seed fills a new drive from a present one; both then take the next stream")
    func seed() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "s")
            let stick = try await bed.enrolledStick()
            let s1 = try await world.sendRound(1)
            _ = try await world.trip(stick)
            let s2 = try await world.sendRound(2)
            _ = try await world.trip(stick)
            let b = try await world.addDrive("s")
            let seed = try await bed.ferry("backupsvr", "drive", "seed", b.pool, "--from", world.drive)
            #expect(seed.status == 0, "\(seed.error)")
            #expect(seed.output.contains("2 dataset(s), 4 snapshot(s)"), "\(seed.output)")
            #expect(try await world.rootSnapshots(on: b.pool) == [s1, s2])
            #expect(try await world.homeSnapshots(on: b.pool) == [s1, s2])
            #expect(try await world.property("readonly", of: "\(b.pool)/laptop/\(world.laptop)/root") == "on")
            let twice = try await bed.ferry("backupsvr", "drive", "seed", b.pool, "--from", world.drive)
            #expect(twice.status == 1)
            #expect(twice.error.contains("holds datasets already"), "\(twice.error)")

            let s3 = try await world.sendRound(3)
            _ = try await world.trip(stick)
            for pool in [world.drive, b.pool] {
                #expect(try await world.rootSnapshots(on: pool) == [s1, s2, s3], "\(pool)")
                #expect(try await world.receivedFile("h", in: "\(pool)/laptop/\(world.laptop)/root/home") == "home 3\n")
            }
            #expect(world.storedStreams().isEmpty)
        }
    }
}

/// A drive pulled in the middle of a receive. zfs-fuse cannot show a real
/// pull: a vdev whose device vanishes wedges every write through the
/// daemon's mounts until the daemon is killed (tried with truncated and
/// resized loop devices). So the pull is what ferry sees of one: the
/// receive dies mid-stream (its handler is killed, so NNCP keeps the
/// packet, as when zfs fails on a vanished device), and the pool is gone
/// from `zpool list`, without an eject. The packet's next toss then runs
/// `ferry receive` again.
@Suite(
    "A drive pulled mid-receive, on zfs-fuse pools", .tags(.integration, .zfs), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly),
    .zfsAnswers)
struct PulledDriveTests {
    @Test("the stream stays in the store, status notices the pull, and the next plug-in recovers the drive and completes it")
    func pulledMidReceive() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "p")
            let b = try await world.addDrive("p")
            _ = try await world.eject(b.pool)
            let big = try await world.mountpoint("\(world.laptop)/root") + "/big"
            try await bed.sh("/bin/dd", "if=/dev/urandom", "of=\(big)", "bs=1M", "count=30", "status=none")
            try await world.write("pulled\n", to: "f")
            try await bed.sh(Tool.zfs, "snapshot", "\(world.laptop)/root@s1")
            let streamPath = try await world.streamFile(snapshot: "s1")
            let stream = try Data(contentsOf: URL(fileURLWithPath: streamPath))

            // ferry receive reads the stream from a FIFO that the test feeds.
            let fifo = "\(bed.directory)/stream.fifo"
            try #require(mkfifo(fifo, 0o600) == 0)
            let command = Command(
                FerryBinary.path, ["receive", "--config", bed.configPath("backupsvr"), "laptop/x"],
                environment: ["NNCP_SENDER": try bed.nodeID("laptop")], timeout: .seconds(120))
            let handlerRun = Task {
                let input = try FileDescriptor.open(FilePath(fifo), .readOnly)
                return try await bed.runner.run(command, inputFrom: input)
            }
            let writer = try FileDescriptor.open(FilePath(fifo), .writeOnly)
            let half = stream.count / 2
            _ = try writer.writeAll(stream.prefix(half))
            var receiving = false
            for _ in 0..<400 where !receiving {
                try await Task.sleep(for: .milliseconds(25))
                receiving = processes(commandLine: "\(Tool.zfs) receive").contains { $0.line.contains("\(world.drive)/laptop/x") }
            }
            try #require(receiving, "zfs receive into the drive was not seen running")
            let handler = try #require(processes(commandLine: "\(FerryBinary.path) receive").first { $0.line.contains(bed.directory) })
            // The pull: the receive dies half way, and the drive's pool is gone.
            kill(handler.pid, SIGKILL)
            try writer.close()
            let killed = try await handlerRun.value
            #expect(killed.status != .exited(0))
            for attempt in 1...20 {
                let exported = try await bed.runner.run(Command(Tool.zpool, ["export", world.drive]), input: nil)
                if exported.status.succeeded { break }
                try #require(attempt < 20, "\(exported.errorTail())")
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(try await world.snapshots("\(world.drive)/laptop/x").isEmpty)

            // NNCP kept the packet: its next toss runs the handler again.
            let again = try await world.receive("laptop/x", from: "laptop", input: streamPath)
            #expect(again.status == 0, "stored for the drives: \(again.error)")
            #expect(again.error.contains("stored for the drives that do not hold it yet"), "\(again.error)")
            #expect(world.storedStreams().count == 1)
            let parts = (try? FileManager.default.contentsOfDirectory(atPath: world.storePath))?.filter { $0.hasSuffix(".part") } ?? []
            #expect(parts.isEmpty, "the killed receive's partial file was cleared")

            let status = try await bed.ferry("backupsvr", "status", "--json")
            try #require(status.status == 0, "\(status.error)")
            let report = try JSONDecoder().decode(StatusReport.self, from: Data(status.output.utf8))
            let a = try #require(report.drives?.first { $0.pool == world.drive })
            #expect(a.place == .offsite && a.pulled != nil)
            #expect(
                report.warnings.contains { $0.hasPrefix("drive \(world.drive) was pulled without ferry drive eject") }, "\(report.warnings)"
            )

            let plug = try await world.plugIn(world.driveDevice, pool: world.drive)
            #expect(plug.status == 0, "\(plug.error)")
            #expect(plug.error.contains("recovered: it was pulled without ferry drive eject"), "\(plug.error)")
            #expect(try await world.snapshots("\(world.drive)/laptop/x") == ["s1"])
            #expect(try await world.receivedFile("f", in: "\(world.drive)/laptop/x") == "pulled\n")
            let drives = try await world.drives()
            #expect(drives.first { $0.pool == world.drive }.map { $0.place == .dock && $0.pulled == nil } == true)

            let plugB = try await world.plugIn(b.device, pool: b.pool)
            #expect(plugB.status == 0, "\(plugB.error)")
            #expect(try await world.snapshots("\(b.pool)/laptop/x") == ["s1"])
            #expect(world.storedStreams().isEmpty, "nothing lost: both drives hold the stream")
        }
    }
}

extension PulledDriveTests {
    @Test(
        "a real pull mid-receive (the loop device made read-only) suspends the pool; status says so; plug-in resumes it and the receive completes"
    )
    func pulledForReal() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "u")
            let b = try await world.addDrive("u")
            _ = try await world.eject(b.pool)
            // Nothing of the drive is mounted: a write through a mount of a
            // suspended pool would wedge every zfs-fuse mount.
            try await bed.sh(Tool.zfs, "set", "mountpoint=none", world.drive)
            let big = try await world.mountpoint("\(world.laptop)/root") + "/big"
            try await bed.sh("/bin/dd", "if=/dev/urandom", "of=\(big)", "bs=1M", "count=30", "status=none")
            try await world.write("pulled for real\n", to: "f")
            try await bed.sh(Tool.zfs, "snapshot", "\(world.laptop)/root@s1")
            let streamPath = try await world.streamFile(snapshot: "s1")
            let stream = try Data(contentsOf: URL(fileURLWithPath: streamPath))
            let rest = "\(bed.directory)/rest.zstream"
            try Data(stream.dropFirst(stream.count / 2)).write(to: URL(fileURLWithPath: rest))

            let fifo = "\(bed.directory)/stream.fifo"
            try #require(mkfifo(fifo, 0o600) == 0)
            let command = Command(
                FerryBinary.path, ["receive", "--config", bed.configPath("backupsvr"), "laptop/x"],
                environment: ["NNCP_SENDER": try bed.nodeID("laptop")], timeout: .seconds(300))
            let handlerRun = Task {
                let input = try FileDescriptor.open(FilePath(fifo), .readOnly)
                return try await bed.runner.run(command, inputFrom: input)
            }
            let writer = try FileDescriptor.open(FilePath(fifo), .writeOnly)
            _ = try writer.writeAll(stream.prefix(stream.count / 2))
            var receiving = false
            for _ in 0..<400 where !receiving {
                try await Task.sleep(for: .milliseconds(25))
                receiving = processes(commandLine: "\(Tool.zfs) receive").contains { $0.line.contains("\(world.drive)/laptop/x") }
            }
            try #require(receiving, "zfs receive into the drive was not seen running")

            let device = world.driveDevice.devnode
            do {
                // The pull: the drive stops taking writes while the rest of
                // the stream flows in.
                try await bed.sh("/sbin/blockdev", "--setro", device)
                let feeder = Process()
                feeder.executableURL = URL(fileURLWithPath: "/bin/sh")
                feeder.arguments = ["-c", "exec /bin/cat \"$0\" > \"$1\"", rest, fifo]
                try feeder.run()
                try await Task.sleep(for: .milliseconds(200))
                try writer.close()
                var suspended = false
                for _ in 0..<240 where !suspended {
                    try await Task.sleep(for: .milliseconds(250))
                    suspended = try await ZFSInventory(runner: bed.runner).importedPools()
                        .contains { $0.name == world.drive && $0.health == PoolState.suspended }
                }
                try #require(suspended, "the pool's I/O was not suspended")

                let status = try await bed.ferry("backupsvr", "status", "--json")
                try #require(status.status == 0, "\(status.error)")
                let report = try JSONDecoder().decode(StatusReport.self, from: Data(status.output.utf8))
                #expect(report.drives?.first { $0.pool == world.drive }?.pulled != nil)
                #expect(
                    report.warnings.contains { $0.hasPrefix("drive \(world.drive) was pulled without ferry drive eject") },
                    "\(report.warnings)")

                // Plugged in again at the same place.
                try await bed.sh("/sbin/blockdev", "--setrw", device)
                let plug = try await world.plugIn(world.driveDevice, pool: world.drive)
                #expect(plug.status == 0, "\(plug.error)")
                #expect(plug.error.contains("zpool clear resumed it"), "\(plug.error)")
                feeder.waitUntilExit()
            } catch {
                _ = try? await bed.runner.run(Command("/sbin/blockdev", ["--setrw", device]), input: nil)
                _ = try? await bed.runner.run(Zpool.clear(pool: world.drive), input: nil)
                throw error
            }
            let resumed = try await handlerRun.value
            #expect(resumed.status == .exited(0), "\(resumed.errorTail(lines: 10))")
            #expect(try await world.snapshots("\(world.drive)/laptop/x") == ["s1"])
            #expect(try await world.receivedFile("f", in: "\(world.drive)/laptop/x") == "pulled for real\n")
            let plugB = try await world.plugIn(b.device, pool: b.pool)
            #expect(plugB.status == 0, "\(plugB.error)")
            #expect(try await world.snapshots("\(b.pool)/laptop/x") == ["s1"])
            #expect(world.storedStreams().isEmpty, "nothing lost: both drives hold the stream")
        }
    }
}

/// The processes whose command line starts with `prefix`, by pid.
func processes(commandLine prefix: String) -> [(pid: Int32, line: String)] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { entry in
        guard let pid = Int32(entry), let bytes = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(entry)/cmdline")) else { return nil }
        let line = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
        return line.hasPrefix(prefix) ? (pid, line) : nil
    }
}
