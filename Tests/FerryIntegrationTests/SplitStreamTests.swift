import Crypto
import FerryCore
import FerryDemo
import Foundation
import SystemPackage
import Testing

extension ZFSWorld {
    /// A world whose laptop splits streams above `chunk`, with `megabytes`
    /// of random data in the laptop's root (its children stay home).
    static func split(_ bed: TestBed, tag: String, chunk: String, megabytes: Int, poolMegabytes: Int = 128) async throws -> ZFSWorld {
        let world = try await make(bed, tag: tag, laptopExtra: "chunk-size = \"\(chunk)\"", poolMegabytes: poolMegabytes)
        try await bed.sh(Tool.zfs, "set", "ferry:exclude=on", "\(world.laptop)/root/home")
        try await world.fill(megabytes: megabytes)
        return world
    }

    /// Writes `megabytes` of random data to `big` in the laptop's root.
    func fill(megabytes: Int, name: String = "big") async throws {
        let path = try await mountpoint("\(laptop)/root") + "/" + name
        try await bed.sh("/bin/dd", "if=/dev/urandom", "of=\(path)", "bs=1M", "count=\(megabytes)", "status=none")
    }

    /// The SHA-256 of `name` in the laptop's root, as it is now.
    func laptopDigest(_ name: String = "big") async throws -> String {
        try fileDigest(try await mountpoint("\(laptop)/root") + "/" + name)
    }

    /// The SHA-256 of `name` in the newest snapshot of `dataset` on a drive.
    func receivedDigest(_ name: String = "big", in dataset: String) async throws -> String {
        try await throughClone(of: dataset) { try fileDigest($0 + "/" + name) }
    }

    var driveRoot: String { "\(drive)/laptop/\(laptop)/root" }

    /// The packets the laptop queued for the spooler, oldest first: each
    /// nncp-exec makes one, so a split stream's parts are in order here.
    func laptopPackets() throws -> [String] {
        let outgoing = "\(bed.network.spool("laptop"))/\(try bed.nodeID("spooler"))/tx"
        let names = try FileManager.default.contentsOfDirectory(atPath: outgoing).filter { Spool.isPacketName($0) }
        func time(_ name: String) -> Double {
            var info = stat()
            stat("\(outgoing)/\(name)", &info)
            return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        }
        return names.sorted { time($0) < time($1) }.map { "\(outgoing)/\($0)" }
    }

    func status(_ host: String) async throws -> StatusReport {
        let run = try await bed.ferry(host, "status", "--json")
        try #require(run.status == 0, "\(run.error)")
        return try JSONDecoder().decode(StatusReport.self, from: Data(run.output.utf8))
    }

    /// Trips until the drive holds `snapshot` of the root, at most `limit`;
    /// returns how many it took.
    func tripsUntilOnDrive(_ snapshot: String, stick: LoopDevice, limit: Int) async throws -> Int {
        for trip in 1...limit {
            _ = try await self.trip(stick)
            if try await snapshots(driveRoot).contains(snapshot) { return trip }
        }
        Issue.record("\(snapshot) is not on the drive after \(limit) trips")
        return limit
    }
}

func fileDigest(_ path: String) throws -> String {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    var hasher = SHA256()
    while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty { hasher.update(data: data) }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}

/// The parts `ferry send` would make of the stream in `path`, written as
/// files: the test's own splitter, so that parts can be forged and resent.
func makeParts(of path: String, chunk: Int, in directory: String) throws -> (stream: StreamID, parts: [String]) {
    let data = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    let id = StreamID.random()
    let size = chunk - PartTrailer.size
    var digests: [[UInt8]] = []
    var parts: [String] = []
    for (index, start) in stride(from: 0, to: data.count, by: size).enumerated() {
        let body = Array(data[start..<min(start + size, data.count)])
        digests.append(Array(SHA256.hash(data: body)))
        let last = start + size >= data.count
        let whole =
            last ? PartTrailer.Whole(parts: index + 1, length: UInt64(data.count), digest: PartTrailer.wholeDigest(digests)) : nil
        let trailer = PartTrailer(stream: id, part: index + 1, length: UInt64(body.count), digest: digests.last!, whole: whole)
        let file = "\(directory)/part-\(index + 1)"
        try Data(body + trailer.bytes).write(to: URL(fileURLWithPath: file))
        parts.append(file)
    }
    return (id, parts)
}

@Suite(
    "Split streams: larger than the stick, in parts, over several trips, on zfs-fuse and real NNCP", .tags(.integration, .zfs), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly),
    .zfsAnswers)
struct SplitStreamTests {
    @Test("a 100 MiB snapshot crosses a 48 MiB stick in 8 MiB parts over several trips, lands byte for byte, and leaves the store empty")
    func largerThanTheStick() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.split(bed, tag: "b", chunk: "8MiB", megabytes: 100, poolMegabytes: 256)
            let digest = try await world.laptopDigest()
            let sent = try await world.send()
            #expect(sent.output.contains("queued"), "\(sent.output)")
            let snapshot = try #require(try await world.snapshots("\(world.laptop)/root").last)

            try await bed.carryToSpooler()
            let queued = try bed.queuedAtSpooler()
            #expect(queued.count >= 13, "100 MiB in parts of 8 MiB: \(queued.count) packets")
            let overhead: UInt64 = 64 << 10
            #expect(queued.allSatisfy { $0.size <= (8 << 20) + overhead }, "\(queued.map(\.size))")

            let stick = try await bed.enrolledStick(megabytes: 48)
            var spoolerSawIncomplete = false
            var trips = 0
            while trips < 8, !(try await world.snapshots(world.driveRoot).contains(snapshot)) {
                _ = try await world.trip(stick)
                trips += 1
                let backupsvr = try await world.status("backupsvr")
                if let incomplete = backupsvr.incompleteStreams?.first {
                    #expect(incomplete.dataset == "laptop/\(world.laptop)/root")
                    #expect(incomplete.partsPresent > 0)
                }
                if !(try await world.status("spooler").peer?.visit.incompleteStreams ?? []).isEmpty { spoolerSawIncomplete = true }
            }
            #expect(trips >= 3, "a 48 MiB stick carries 100 MiB in three trips or more: \(trips)")
            #expect(try await world.snapshots(world.driveRoot) == [snapshot])
            #expect(try await world.receivedDigest(in: world.driveRoot) == digest, "byte for byte")
            #expect(try await world.property("readonly", of: world.driveRoot) == "on")
            #expect(world.storedStreams().isEmpty, "the only drive holds it: \(world.storedStreams())")
            #expect(world.incompleteStreams().isEmpty)
            #expect(spoolerSawIncomplete, "the spooler's status showed the incomplete stream, through the journal")
        }
    }

    @Test("one part held back for two trips: the stream waits, status names the part, and it completes when the part comes")
    func outOfOrder() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.split(bed, tag: "o", chunk: "2MiB", megabytes: 12)
            let digest = try await world.laptopDigest()
            _ = try await world.send()
            let snapshot = try #require(try await world.snapshots("\(world.laptop)/root").last)
            let packets = try world.laptopPackets()
            try #require(packets.count >= 6, "\(packets.count) parts")
            let aside = "\(bed.directory)/held"
            try FileManager.default.moveItem(atPath: packets[1], toPath: aside)

            let stick = try await bed.enrolledStick()
            for _ in 1...2 { _ = try await world.trip(stick) }
            #expect(try await world.snapshots(world.driveRoot).isEmpty)
            let incomplete = try #require(try await world.status("backupsvr").incompleteStreams?.first)
            #expect(incomplete.missing == [2])
            #expect(incomplete.partsTotal == packets.count)
            #expect(incomplete.snapshot == snapshot)
            let text = try await bed.ferry("backupsvr", "status")
            #expect(text.output.contains("part(s) 2 missing"), "\(text.output)")

            try FileManager.default.moveItem(atPath: aside, toPath: packets[1])
            _ = try await world.trip(stick)
            #expect(try await world.snapshots(world.driveRoot) == [snapshot])
            #expect(try await world.receivedDigest(in: world.driveRoot) == digest)
            #expect(world.storedStreams().isEmpty)
            #expect(world.incompleteStreams().isEmpty)
        }
    }

    @Test("parts straight into ferry receive: any order, a duplicate, and forged, foreign or late parts refused with nothing in the pool")
    func partsRefused() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "f")
            try await world.write("split\n", to: "f")
            try await bed.sh(Tool.zfs, "snapshot", "\(world.laptop)/root@s1")
            let streamPath = try await world.streamFile(snapshot: "s1")
            let (id, parts) = try makeParts(of: streamPath, chunk: 4096, in: bed.directory)
            try #require(parts.count >= 4, "\(parts.count) parts")
            let last = parts.count
            let before = try await world.driveListing()
            func deliver(_ part: Int, file: String? = nil, to destination: String = "laptop/x", from sender: String = "laptop")
                async throws -> Run
            {
                try await world.receive(
                    destination, from: sender, input: file ?? parts[part - 1], arguments: ["--stream", "\(id)", "--part", "\(part)"])
            }
            func expectRefused(_ run: Run, status: Int32 = 0, saying words: String, _ name: String) async throws {
                #expect(run.status == status, "\(name): \(run.error)")
                #expect(run.error.contains("refused: ") && run.error.contains(words), "\(name): \(run.error)")
                #expect(!run.error.contains("Fatal error"), "\(name)")
                #expect(try await world.driveListing() == before, "\(name) reached the pool")
            }

            try await expectRefused(
                try await deliver(1, from: "spooler"), status: 1, saying: "sender spooler is not listed in [receive].senders",
                "unknown sender")
            #expect(world.incompleteStreams().isEmpty, "an unknown sender's part is not kept")
            for part in (2..<last).reversed() {
                let run = try await deliver(part)
                #expect(run.status == 0, "part \(part): \(run.error)")
            }
            let again = try await deliver(2)
            #expect(again.status == 0 && again.error.contains("this part is here already"), "\(again.error)")
            try await expectRefused(
                try await deliver(1, to: "laptop/y"), saying: "claims laptop/y, but its stream began as laptop/x", "another dataset")

            // The last part, with a wrong length, then with a wrong hash of the whole.
            let trailer = try PartTrailer(
                parsing: Array(try Data(contentsOf: URL(fileURLWithPath: parts[last - 1])).suffix(PartTrailer.size)))
            let body = Array(try Data(contentsOf: URL(fileURLWithPath: parts[last - 1])).dropLast(PartTrailer.size))
            for (name, change) in [
                ("wrong length", { (whole: inout PartTrailer.Whole) in whole.length += 1 }),
                ("wrong hash", { (whole: inout PartTrailer.Whole) in whole.digest = String(repeating: "0", count: 64) }),
            ] {
                var forged = trailer
                change(&forged.whole!)
                let file = "\(bed.directory)/forged"
                try Data(body + forged.bytes).write(to: URL(fileURLWithPath: file))
                #expect(try await deliver(1).status == 0)
                try await expectRefused(try await deliver(last, file: file), saying: "the reassembled stream fails its check", name)
            }
            let cut = "\(bed.directory)/cut"
            try Data(try Data(contentsOf: URL(fileURLWithPath: parts[last - 1])).dropLast(10)).write(to: URL(fileURLWithPath: cut))
            try await expectRefused(try await deliver(last, file: cut), saying: "the part is damaged", "a part cut short")

            let good = try await deliver(last)
            #expect(good.status == 0, "\(good.error)")
            #expect(good.error.contains("the stream is complete and passed its check"), "\(good.error)")
            #expect(try await world.snapshots("\(world.drive)/laptop/x") == ["s1"])
            #expect(try await world.receivedFile("f", in: "\(world.drive)/laptop/x") == "split\n")
            let late = try await deliver(3)
            #expect(late.status == 0 && late.error.contains("is complete or was dropped already"), "\(late.error)")
            #expect(world.storedStreams().isEmpty)
            #expect(world.incompleteStreams().isEmpty)
        }
    }

    @Test("a part lost for good: the stream stays incomplete, status says what is missing, and a fresh full send completes the chain")
    func lostPart() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.split(bed, tag: "l", chunk: "2MiB", megabytes: 12)
            _ = try await world.send()
            try await bed.carryToSpooler()
            let queued = try bed.queuedAtSpooler()
            try #require(queued.count >= 6)
            let outgoing = "\(bed.network.spool("spooler"))/\(try bed.nodeID("backupsvr"))/tx"
            try FileManager.default.removeItem(atPath: "\(outgoing)/\(queued[2].name)")

            let stick = try await bed.enrolledStick()
            for _ in 1...2 { _ = try await world.trip(stick) }
            #expect(try await world.snapshots(world.driveRoot).isEmpty)
            let incomplete = try #require(try await world.status("backupsvr").incompleteStreams?.first)
            #expect(incomplete.missing.count == 1 || (incomplete.missing.isEmpty && incomplete.lastPartMissing), "\(incomplete)")
            #expect(incomplete.partsPresent == queued.count - 1)
            let text = try await bed.ferry("backupsvr", "status")
            #expect(text.output.contains("missing") || text.output.contains("the last part has not arrived"), "\(text.output)")
            // The spooler sees the same through the journal.
            _ = try await world.trip(stick)
            #expect(try await world.status("spooler").peer?.visit.incompleteStreams?.first?.missing == incomplete.missing)

            // The laptop cannot know; its admin starts the dataset over, and
            // the next send goes in full. The lost attempt's parts are dropped.
            try await bed.sh(Tool.zfs, "inherit", "ferry:sent", "\(world.laptop)/root")
            try await world.fill(megabytes: 1, name: "more")
            let digest = try await world.laptopDigest()
            _ = try await world.send()
            let snapshot = try #require(try await world.snapshots("\(world.laptop)/root").last)
            _ = try await world.tripsUntilOnDrive(snapshot, stick: stick, limit: 3)
            #expect(try await world.receivedDigest(in: world.driveRoot) == digest)
            #expect(world.storedStreams().isEmpty)
            if incomplete.missing == [1] {
                // The spooler relays in an order of its own, so the lost packet
                // may be part 1: then the attempt's snapshot is not known, and
                // its parts wait, shown in status, blocking nothing.
                #expect(world.incompleteStreams().count == 1)
                let waiting = try await bed.ferry("backupsvr", "status")
                #expect(waiting.output.contains("incomplete stream laptop/\(world.laptop)/root@?"), "\(waiting.output)")
                #expect(waiting.output.contains("part(s) 1 missing"), "\(waiting.output)")
            } else {
                #expect(world.incompleteStreams().isEmpty, "the lost attempt's parts are dropped")
            }
        }
    }

    @Test("ferry send killed with SIGKILL between two parts: the next run and a trip leave the drive complete")
    func killedBetweenParts() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.split(bed, tag: "k", chunk: "2MiB", megabytes: 24)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: FerryBinary.path)
            process.arguments = ["send", "--config", bed.configPath("laptop")]
            process.standardError = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            var queued = 0
            for _ in 0..<1200 where queued < 2 {
                try await Task.sleep(for: .milliseconds(10))
                queued = (try? world.laptopPackets().count) ?? 0
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            // The part in flight sees its input end: nncp-exec queues it cut
            // short, and backupsvr refuses it.
            try await Task.sleep(for: .milliseconds(500))
            #expect(queued >= 2, "ferry was killed after two parts were queued")
            let killedAfter = try world.laptopPackets().count
            #expect(killedAfter < 12, "ferry was killed before the last part: \(killedAfter) packets")
            #expect(try await world.property("ferry:sent", of: "\(world.laptop)/root") == "-", "nothing is marked sent")

            try await world.fill(megabytes: 1, name: "more")
            let digest = try await world.laptopDigest("more")
            _ = try await world.send()
            let laptopSnapshots = try await world.snapshots("\(world.laptop)/root")
            let stick = try await bed.enrolledStick(megabytes: 128)
            _ = try await world.tripsUntilOnDrive(laptopSnapshots.last!, stick: stick, limit: 3)
            let onDrive = try await world.snapshots(world.driveRoot)
            #expect(onDrive.count == 2, "the snapshot cut short, then the next: \(onDrive)")
            #expect(onDrive.last == laptopSnapshots.last)
            #expect(try await world.receivedDigest("more", in: world.driveRoot) == digest)
            #expect(world.storedStreams().isEmpty)
            #expect(world.incompleteStreams().isEmpty, "the killed attempt's parts are dropped once its snapshot came again")
        }
    }

    @Test(
        "two drives, both offsite when it arrives: the reassembled stream is kept as its parts, applied to the first drive back, and the second gets it from that one"
    )
    func offsiteDrive() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.split(bed, tag: "t", chunk: "2MiB", megabytes: 12)
            let b = try await world.addDrive("t")
            _ = try await world.eject(b.pool)
            _ = try await world.eject(world.drive)
            let digest = try await world.laptopDigest()
            _ = try await world.send()
            let snapshot = try #require(try await world.snapshots("\(world.laptop)/root").last)
            let stick = try await bed.enrolledStick()
            for _ in 0..<2 { _ = try await world.trip(stick) }
            #expect(world.storedStreams().count == 1, "kept as its parts for the drives that are away: \(world.storedStreams())")
            #expect(world.storedStreams().first?.hasSuffix(".parts") == true)

            let plugged = try await world.plugIn(b.device, pool: b.pool)
            #expect(plugged.status == 0, "\(plugged.error)")
            #expect(try await world.rootSnapshots(on: b.pool) == [snapshot])
            #expect(try await world.receivedDigest(in: "\(b.pool)/laptop/\(world.laptop)/root") == digest)
            #expect(world.storedStreams().isEmpty, "the drive away can get it from the drive in the dock")

            let back = try await world.plugIn(world.driveDevice, pool: world.drive)
            #expect(back.status == 0, "\(back.error)")
            #expect(try await world.rootSnapshots(on: world.drive) == [snapshot])
            #expect(try await world.receivedDigest(in: world.driveRoot) == digest)
        }
    }
}
