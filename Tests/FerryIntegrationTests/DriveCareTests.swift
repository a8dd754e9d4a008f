import FerryCore
import FerryDemo
import Foundation
import Testing

extension ZFSWorld {
    /// backupsvr's config as `make` writes it, with `extra` lines added.
    func rewriteBackupsvrConfig(_ extra: String) throws {
        try bed.writeConfig(
            host: "backupsvr",
            extra: """
                [receive]
                senders = { laptop = "laptop" }
                \(extra)
                """)
    }

    /// The warnings of `ferry status --json` on `host`.
    func statusWarnings(_ host: String) async throws -> [String] {
        let status = try await bed.ferry(host, "status", "--json")
        try #require(status.status == 0, "\(status.error)")
        return try JSONDecoder().decode(StatusReport.self, from: Data(status.output.utf8)).warnings
    }

    /// backupsvr's visit writes its record on the stick; the spooler's reads it.
    func carryStateToSpooler(_ stick: LoopDevice) async throws {
        for host in ["backupsvr", "spooler"] {
            let visit = try await bed.ferry(host, "handle", stick.devnode)
            try #require(visit.status == 0, "\(visit.error)")
        }
    }

    /// The drive `pool` in `ferry drive list --json`, once its scrub is no
    /// longer running (a scrub of a small pool takes a second or two).
    func scrubbed(_ pool: String) async throws -> EnrolledDrive {
        for _ in 1...60 {
            let drive = try #require(try await drives().first { $0.pool == pool })
            if let scrub = drive.scrub, scrub.state != .running { return drive }
            try await Task.sleep(for: .milliseconds(500))
        }
        Issue.record("the scrub of \(pool) did not finish in 30 s")
        return try #require(try await drives().first { $0.pool == pool })
    }
}

@Suite(
    "Drives that last: retention, catch-up from a present drive, capacity and scrubs, on zfs-fuse", .tags(.integration, .zfs),
    .serialized, .enabled(if: Requirements.isRoot, Requirements.rootOnly), .zfsAnswers)
struct DriveCareTests {
    @Test(
        "keep = 3: seven sends with A in the dock and B away leave A the three newest and the store empty; B catches up from A, not the store, and thins to the same three; a swap keeps what B needs"
    )
    func keepThree() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "k", extra: "[retention]\nkeep = \"3\"")
            let stick = try await bed.enrolledStick()
            let a = world.drive
            let b = try await world.addDrive("k")
            _ = try await world.eject(b.pool)
            var sent: [String] = []
            for round in 1...7 {
                sent.append(try await world.sendRound(round))
                _ = try await world.trip(stick)
                #expect(world.storedStreams().isEmpty, "A holds round \(round), and B can get it from A: the store keeps nothing")
            }
            let newest = Array(sent.suffix(3))
            #expect(try await world.rootSnapshots(on: a) == newest)
            #expect(try await world.homeSnapshots(on: a) == newest)
            #expect(try await world.snapshots("\(world.laptop)/root").last == sent.last)
            #expect(try await world.receivedFile("f", in: "\(a)/laptop/\(world.laptop)/root") == "root 7\n")
            #expect(try await world.receivedFile("h", in: "\(a)/laptop/\(world.laptop)/root/home") == "home 7\n")

            let plugB = try await world.plugIn(b.device, pool: b.pool)
            #expect(plugB.status == 0, "\(plugB.error)")
            #expect(plugB.error.contains("caught up from a present drive"), "\(plugB.error)")
            #expect(try await world.rootSnapshots(on: b.pool) == newest)
            #expect(try await world.homeSnapshots(on: b.pool) == newest)
            #expect(try await world.receivedFile("f", in: "\(b.pool)/laptop/\(world.laptop)/root") == "root 7\n")
            #expect(try await world.property("readonly", of: "\(b.pool)/laptop/\(world.laptop)/root") == "on")

            // A swap with one bay: B goes, round 8 reaches A alone, then A
            // goes too. The store takes back what only A held for B.
            _ = try await world.eject(b.pool)
            sent.append(try await world.sendRound(8))
            _ = try await world.trip(stick)
            #expect(world.storedStreams().isEmpty)
            let ejectA = try await world.eject(a)
            #expect(ejectA.output.contains("2 stream(s)"), "\(ejectA.output)")
            #expect(world.storedStreams().count == 2, "round 8 of root and home, for B")
            let again = try await world.plugIn(b.device, pool: b.pool)
            #expect(again.status == 0, "\(again.error)")
            #expect(try await world.rootSnapshots(on: b.pool) == Array(sent.suffix(3)))
            #expect(world.storedStreams().isEmpty, "every drive holds round 8")
        }
    }

    @Test("a held snapshot, an admin's own snapshot and a clone's origin survive ferry drive thin; --dry-run destroys nothing")
    func protections() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "p")
            let stick = try await bed.enrolledStick()
            let a = world.drive
            var sent: [String] = []
            for round in 1...4 {
                sent.append(try await world.sendRound(round))
                _ = try await world.trip(stick)
            }
            let root = "\(a)/laptop/\(world.laptop)/root"
            try await bed.sh(Tool.zfs, "hold", "ferrytest", "\(root)@\(sent[0])")
            try await bed.sh(Tool.zfs, "clone", "-o", "mountpoint=none", "\(root)@\(sent[1])", "\(a)/adminclone")
            try await bed.sh(Tool.zfs, "snapshot", "\(root)@admin")
            try world.rewriteBackupsvrConfig("[retention]\nkeep = \"1\"")

            let dry = try await bed.ferry("backupsvr", "drive", "thin", a, "--dry-run")
            #expect(dry.status == 0, "\(dry.error)")
            #expect(dry.output.contains("would destroy \(a)/laptop/\(world.laptop)/root@\(sent[2])"), "\(dry.output)")
            #expect(try await world.rootSnapshots(on: a) == sent + ["admin"], "a dry run destroys nothing")

            let thin = try await bed.ferry("backupsvr", "drive", "thin", a)
            #expect(thin.status == 0, "\(thin.error)")
            #expect(thin.output.contains("4 snapshot(s) destroyed"), "root's third, home's first three: \(thin.output)")
            #expect(try await world.rootSnapshots(on: a) == [sent[0], sent[1], sent[3], "admin"])
            #expect(try await world.homeSnapshots(on: a) == [sent[3]])
            try await bed.sh(Tool.zfs, "release", "ferrytest", "\(root)@\(sent[0])")
            try await bed.sh(Tool.zfs, "destroy", "\(a)/adminclone")
        }
    }

    @Test(
        "a drive past drive-warn-percent, and a stream that will not fit on a full drive: warnings at backupsvr and, after a trip, at the spooler; the other drive still gets it"
    )
    func capacity() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "f", extra: "[rotation]\ndrive-warn-percent = 50")
            let stick = try await bed.enrolledStick()
            let full = try await world.addDrive("f", megabytes: 64)
            // Fill the small drive with a dataset of its own, to the last block.
            try await bed.sh(Tool.zfs, "create", "-o", "mountpoint=/filler", "\(full.pool)/filler")
            let filler = try await world.mountpoint("\(full.pool)/filler")
            _ = try await bed.runner.run(
                Command(
                    "/bin/sh", ["-c", "dd if=/dev/urandom of=\(filler)/fill bs=1M count=200 2>/dev/null; sync"], timeout: .seconds(120)),
                input: nil)
            try await world.write(String(repeating: "x", count: 8 << 20), to: "big")
            let s1 = try await world.sendRound(1)
            _ = try await world.trip(stick)
            #expect(try await world.rootSnapshots(on: world.drive) == [s1], "a full drive does not stop the other")
            #expect(try await world.rootSnapshots(on: full.pool).isEmpty)

            let here = try await world.statusWarnings("backupsvr")
            #expect(here.contains { $0.hasPrefix("drive \(full.pool) is ") && $0.contains("past drive-warn-percent 50") }, "\(here)")
            #expect(here.contains { $0.hasPrefix("the next stream for drive \(full.pool)") && $0.contains("will not fit") }, "\(here)")
            try await world.carryStateToSpooler(stick)
            let there = try await world.statusWarnings("spooler")
            #expect(there.contains { $0.contains("drive \(full.pool) is ") && $0.contains("past drive-warn-percent 50") }, "\(there)")
            #expect(there.contains { $0.contains("the next stream for drive \(full.pool)") }, "\(there)")
            let list = try await world.drives()
            #expect(list.allSatisfy { $0.capacity.map { $0.size > 0 && $0.used + $0.free == $0.size } ?? false }, "\(list)")
        }
    }

    @Test("a scrub starts on plug-in when due and not when not; its result in drive list --json and at the spooler")
    func scrubOnPlugIn() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "s")
            let stick = try await bed.enrolledStick()
            _ = try await world.sendRound(1)
            _ = try await world.trip(stick)
            _ = try await world.eject(world.drive)
            let plug = try await world.plugIn(world.driveDevice, pool: world.drive)
            #expect(plug.status == 0, "\(plug.error)")
            let first = try await world.scrubbed(world.drive)
            let scrub = try #require(first.scrub)
            #expect(scrub.state == .completed && scrub.errors == 0 && scrub.started != nil && scrub.finished != nil, "\(scrub)")

            _ = try await world.eject(world.drive)
            let again = try await world.plugIn(world.driveDevice, pool: world.drive)
            #expect(again.status == 0, "\(again.error)")
            #expect(try await world.scrubbed(world.drive).scrub?.started == scrub.started, "scrubbed within scrub-after: not again")

            try await world.carryStateToSpooler(stick)
            let status = try await bed.ferry("spooler", "status", "--json")
            let report = try JSONDecoder().decode(StatusReport.self, from: Data(status.output.utf8))
            #expect(report.peer?.visit.drives?.first?.scrub?.state == .completed, "\(status.output)")
        }
    }

    @Test("garbage written over a data block: ferry drive scrub finds it, and both hosts warn")
    func corruption() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "x")
            let stick = try await bed.enrolledStick()
            let marker = "FERRY-ROT-MARKER-"
            try await world.write(String(repeating: marker, count: (1 << 20) / marker.count), to: "rot")
            _ = try await world.sendRound(1)
            _ = try await world.trip(stick)
            // Every copy of the marker on the drive's device, found by
            // reading the image; garbage goes over each through the device.
            let image = try Data(contentsOf: URL(fileURLWithPath: world.driveDevice.image))
            let pattern = Data(String(repeating: marker, count: 16).utf8)
            var offsets: [Int] = []
            var from = image.startIndex
            while let range = image.range(of: pattern, in: from..<image.endIndex) {
                offsets.append(range.lowerBound)
                from = range.lowerBound + (256 << 10)
                if from >= image.endIndex { break }
            }
            try #require(!offsets.isEmpty, "the marker is on the drive")
            for offset in offsets {
                let block = offset / 4096
                _ = try await bed.runner.check(
                    Command(
                        "/bin/dd",
                        [
                            "if=/dev/urandom", "of=\(world.driveDevice.devnode)", "bs=4096", "seek=\(block)", "count=4", "conv=notrunc",
                            "oflag=direct",
                        ],
                        timeout: .seconds(30)))
            }
            let start = try await bed.ferry("backupsvr", "drive", "scrub", world.drive)
            #expect(start.status == 0, "\(start.error)")
            let drive = try await world.scrubbed(world.drive)
            #expect((drive.scrub?.errors ?? 0) > 0, "\(String(describing: drive.scrub))")
            let here = try await world.statusWarnings("backupsvr")
            #expect(here.contains { $0.contains("drive \(world.drive)'s scrub") && $0.contains("error(s)") }, "\(here)")
            try await world.carryStateToSpooler(stick)
            let there = try await world.statusWarnings("spooler")
            #expect(there.contains { $0.contains("drive \(world.drive)'s scrub") }, "\(there)")
            _ = try? await bed.runner.run(Zpool.clear(pool: world.drive), input: nil)
        }
    }
}
