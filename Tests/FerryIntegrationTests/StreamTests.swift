import FerryCore
import FerryDemo
import Foundation
import SystemPackage
import Testing

/// A laptop pool and a backup drive on zfs-fuse, with ferry's configs for
/// the laptop (send) and backupsvr (receive into the drive).
struct ZFSWorld {
    let bed: TestBed
    let laptop: String
    let drive: String
    /// The loop device that plays the backup drive.
    let driveDevice: LoopDevice

    static func make(
        _ bed: TestBed, tag: String, receiveOptions: String? = nil, extra: String = "", laptopExtra: String = "", poolMegabytes: Int = 128
    ) async throws -> ZFSWorld {
        // Each pool under an altroot of its own: pools that share one mount
        // on top of each other.
        let laptop = "fl\(getpid())\(tag)"
        let drive = "fb\(getpid())\(tag)"
        _ = try await bed.pool(laptop, ownAltroot: true, megabytes: poolMegabytes)
        let world = ZFSWorld(
            bed: bed, laptop: laptop, drive: drive, driveDevice: try await bed.pool(drive, ownAltroot: true, megabytes: poolMegabytes))
        for dataset in ["root", "root/home", "root/tmp"] {
            try await bed.sh(Tool.zfs, "create", "\(world.laptop)/\(dataset)")
        }
        try await bed.sh(Tool.zfs, "set", "ferry:exclude=on", "\(world.laptop)/root/tmp")
        try bed.writeConfig(
            host: "laptop",
            extra: """
                [send]
                backupsvr = "backupsvr"
                host = "laptop"
                datasets = ["\(world.laptop)/root"]
                \(laptopExtra)
                """)
        try bed.writeConfig(
            host: "backupsvr",
            extra: """
                [receive]
                senders = { laptop = "laptop" }
                """ + (receiveOptions.map { "\nzfs-receive-options = \($0)" } ?? "") + "\n" + extra)
        let enrol = try await bed.ferry("backupsvr", "drive", "enroll", world.drive)
        try #require(enrol.status == 0, "\(enrol.error)")
        return world
    }

    func mountpoint(_ dataset: String) async throws -> String {
        try await bed.sh(Tool.zfs, "get", "-H", "-o", "value", "mountpoint", dataset).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes `text` to the file `name` in the laptop's dataset.
    func write(_ text: String, to name: String, in dataset: String = "root") async throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: try await mountpoint("\(laptop)/\(dataset)") + "/" + name))
    }

    func send() async throws -> Run {
        let run = try await bed.ferry("laptop", "send")
        try #require(run.status == 0, "ferry send failed: \(run.error)")
        return run
    }

    /// Laptop → spooler, then one stick visit at the spooler and one at backupsvr.
    func trip(_ stick: LoopDevice) async throws -> Run {
        try await bed.carryToSpooler()
        let spooler = try await bed.ferry("spooler", "handle", stick.devnode)
        try #require(spooler.status == 0, "\(spooler.error)")
        let backupsvr = try await bed.ferry("backupsvr", "handle", stick.devnode)
        try #require(backupsvr.status == 0, "\(backupsvr.error)")
        return backupsvr
    }

    /// The snapshot names of `dataset`, oldest first.
    func snapshots(_ dataset: String) async throws -> [String] {
        try await ZFSInventory(runner: bed.runner).snapshots(of: dataset)?.map(\.name) ?? []
    }

    /// Every dataset and snapshot in the drive's pool, to show that a
    /// refusal wrote nothing.
    func driveListing() async throws -> String {
        try await bed.sh(Tool.zfs, "list", "-H", "-o", "name", "-t", "all", "-r", drive).output
    }

    func property(_ name: String, of dataset: String) async throws -> String {
        try await bed.sh(Tool.zfs, "get", "-H", "-o", "value", name, dataset).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A file of a received dataset's newest snapshot, read through a clone
    /// mounted for a moment (the dataset itself is never mounted).
    func receivedFile(_ name: String, in dataset: String) async throws -> String {
        let text = try await throughClone(of: dataset) { try? String(contentsOfFile: $0 + "/" + name, encoding: .utf8) }
        return try #require(text, "\(name) is not in the newest snapshot of \(dataset)")
    }

    /// Runs `body` on the mount point of a clone of `dataset`'s newest
    /// snapshot, mounted for a moment (the dataset itself is never mounted).
    func throughClone<T>(of dataset: String, _ body: (String) async throws -> T) async throws -> T {
        let snapshot = try #require(try await snapshots(dataset).last)
        let clone = "\(dataset.prefix { $0 != "/" })/verify"
        try await bed.sh(Tool.zfs, "clone", "-o", "mountpoint=/verify", "\(dataset)@\(snapshot)", clone)
        let value = try await body(try await mountpoint(clone))
        // zfs-fuse may call a clone busy for a moment after reading it.
        for attempt in 1...20 {
            let destroyed = try await bed.runner.run(Command(Tool.zfs, ["destroy", "-f", clone]), input: nil)
            if destroyed.status.succeeded { break }
            try #require(attempt < 20, "cannot destroy \(clone): \(destroyed.errorTail())")
            try await Task.sleep(for: .milliseconds(250))
        }
        return value
    }

    var storePath: String { "\(bed.directory)/backupsvr/state/streams" }

    /// The streams in the store: whole ones, and split ones kept as parts.
    func storedStreams() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: storePath)) ?? []).filter {
            $0.hasSuffix(".zstream") || $0.hasSuffix(".parts")
        }
    }

    /// The split streams whose parts are still arriving.
    func incompleteStreams() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: storePath + "/parts")) ?? []).filter {
            !$0.hasSuffix(".done") && !$0.hasPrefix("joined-")
        }
    }

    /// Runs `ferry receive` the way nncp-toss does: NNCP_SENDER set and the
    /// stream on standard input; at backupsvr, or at `host`.
    func receive(_ destination: String, from sender: String, input path: String, arguments: [String] = [], at host: String = "backupsvr")
        async throws -> Run
    {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly)
        let command = Command(
            FerryBinary.path, ["receive", "--config", bed.configPath(host), destination] + arguments,
            environment: ["NNCP_SENDER": try bed.nodeID(sender)], timeout: .seconds(120))
        let result = try await bed.runner.run(command, inputFrom: fd)
        guard case .exited(let status) = result.status else {
            throw CommandError(command: command, code: .failed(result.status, stderrTail: ""))
        }
        return Run(status: status, output: result.output, error: String(decoding: result.standardError, as: UTF8.self))
    }

    /// A real stream of the laptop's root, written to a file.
    func streamFile(snapshot: String) async throws -> String {
        let path = "\(bed.directory)/\(snapshot).zstream"
        try await bed.runner.check(Command("/bin/sh", ["-c", "\(Tool.zfs) send \(laptop)/root@\(snapshot) > \(path)"]))
        return path
    }
}

@Suite(
    "ZFS streams from laptop to backup drive, on zfs-fuse and real NNCP", .tags(.integration, .zfs), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly),
    .zfsAnswers)
struct StreamTests {
    @Test("snapshots sent on three runs arrive complete, in order, unmounted and read-only; excluded children stay home")
    func endToEnd() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "e")
            let stick = try await bed.enrolledStick()
            var sent: [String] = []
            for round in 1...3 {
                try await world.write("root file, round \(round)\n", to: "r\(round)")
                try await world.write("home file, round \(round)\n", to: "h\(round)", in: "root/home")
                _ = try await world.send()
                let snapshots = try await world.snapshots("\(world.laptop)/root")
                #expect(snapshots.count == 1, "older ferry snapshots are pruned once sent: \(snapshots)")
                sent.append(contentsOf: snapshots)
                #expect(try await world.property("ferry:sent", of: "\(world.laptop)/root") == snapshots.last!)
                if round == 1 { _ = try await world.trip(stick) }
            }
            // Rounds two and three cross together: their packets are tossed in
            // whatever order NNCP picks, and the store puts them in order.
            _ = try await world.trip(stick)

            let root = "\(world.drive)/laptop/\(world.laptop)/root"
            let onDrive = try await world.snapshots(root)
            #expect(onDrive == sent)
            let homeOnDrive = try await world.snapshots(root + "/home")
            #expect(homeOnDrive == sent)
            #expect(try await world.snapshots(root + "/tmp").isEmpty)
            #expect(!(try await world.driveListing()).contains("/tmp"), "ferry:exclude=on keeps root/tmp home")
            for dataset in [root, root + "/home"] {
                #expect(try await world.property("mounted", of: dataset) == "no")
                #expect(try await world.property("readonly", of: dataset) == "on")
            }
            #expect(try await world.property("canmount", of: "\(world.drive)/laptop") == "off")
            for round in 1...3 {
                #expect(try await world.receivedFile("r\(round)", in: root) == "root file, round \(round)\n")
                #expect(try await world.receivedFile("h\(round)", in: root + "/home") == "home file, round \(round)\n")
            }
            #expect(world.storedStreams().isEmpty, "the only drive holds everything, so the store is empty")

            // The next visit's journal record carries what the toss received,
            // and the spooler shows it with no stick present.
            for host in ["spooler", "backupsvr", "spooler"] {
                let visit = try await bed.ferry(host, "handle", stick.devnode)
                try #require(visit.status == 0, "\(visit.error)")
            }
            let status = try await bed.ferry("spooler", "status", "--json")
            try #require(status.status == 0, "\(status.error)")
            let report = try JSONDecoder().decode(StatusReport.self, from: Data(status.output.utf8))
            let datasets = try #require(report.peer?.visit.datasets)
            #expect(datasets.map(\.dataset) == ["laptop/\(world.laptop)/root", "laptop/\(world.laptop)/root/home"])
            #expect(datasets.allSatisfy { $0.snapshot == sent.last && $0.pools == [world.drive] })
            #expect(report.peer?.visit.streamStore == PacketCount(packets: 0, bytes: 0))
            let text = try await bed.ferry("spooler", "status")
            #expect(text.output.contains("dataset laptop/\(world.laptop)/root@\(sent.last!)"), "\(text.output)")
        }
    }

    @Test("s3 delivered before s2 waits in the store, is not refused, and lands after s2")
    func outOfOrder() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "o")
            let stick = try await bed.enrolledStick()
            let root = "\(world.drive)/laptop/\(world.laptop)/root"
            try await bed.sh(Tool.zfs, "set", "ferry:exclude=on", "\(world.laptop)/root/home")
            try await world.write("one\n", to: "f")
            _ = try await world.send()
            _ = try await world.trip(stick)
            let s1 = try await world.snapshots(root)
            #expect(s1.count == 1)

            // s2 is queued, then held back in the laptop's outgoing spool.
            try await world.write("two\n", to: "f")
            _ = try await world.send()
            let outgoing = "\(bed.network.spool("laptop"))/\(try bed.nodeID("spooler"))/tx"
            let held = try FileManager.default.contentsOfDirectory(atPath: outgoing).filter { !$0.hasPrefix(".") && $0 != "hdr" }
            try #require(held.count == 1)
            let aside = "\(bed.directory)/held"
            try FileManager.default.createDirectory(atPath: aside, withIntermediateDirectories: true)
            try FileManager.default.moveItem(atPath: "\(outgoing)/\(held[0])", toPath: "\(aside)/\(held[0])")

            try await world.write("three\n", to: "f")
            _ = try await world.send()
            _ = try await world.trip(stick)
            #expect(try await world.snapshots(root) == s1)
            #expect(world.storedStreams().count == 1)
            let rx = "\(bed.network.spool("backupsvr"))/\(try bed.nodeID("laptop"))/rx"
            let left = ((try? FileManager.default.contentsOfDirectory(atPath: rx)) ?? []).filter {
                !$0.hasPrefix(".") && $0 != "hdr" && $0 != "seen"
            }
            #expect(left.isEmpty, "the waiting stream is stored, so nncp-toss dropped its packet and will not retry it: \(left)")

            try FileManager.default.moveItem(atPath: "\(aside)/\(held[0])", toPath: "\(outgoing)/\(held[0])")
            _ = try await world.trip(stick)
            let all = try await world.snapshots(root)
            #expect(all.count == 3)
            #expect(all.first == s1.first)
            #expect(all == all.sorted(), "s1, s2, s3 in the order they were taken")
            #expect(try await world.receivedFile("f", in: root) == "three\n")
            #expect(world.storedStreams().isEmpty)
        }
    }

    @Test("bad senders, names and streams are refused with one clear line each, and nothing reaches the pool")
    func refusals() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "r")
            try await world.write("data\n", to: "f")
            try await bed.sh(Tool.zfs, "snapshot", "\(world.laptop)/root@s1")
            let stream = try await world.streamFile(snapshot: "s1")
            let size = try FileManager.default.attributesOfItem(atPath: stream)[.size] as! Int
            let truncated = "\(bed.directory)/truncated.zstream"
            try Data(try Data(contentsOf: URL(fileURLWithPath: stream)).prefix(size / 2)).write(to: URL(fileURLWithPath: truncated))
            let garbage = "\(bed.directory)/garbage"
            try Data(try randomBytes(100_000)).write(to: URL(fileURLWithPath: garbage))
            let before = try await world.driveListing()

            let cases: [(name: String, destination: String, sender: String, input: String, status: Int32, says: String)] = [
                ("unknown sender", "laptop/x", "spooler", stream, 1, "sender spooler is not listed in [receive].senders"),
                ("another host's prefix", "otherhost/x", "laptop", stream, 1, "sender laptop may write only under laptop, not otherhost/x"),
                ("../etc", "../etc", "laptop", stream, 0, "dataset name \"../etc\" has a . or .. component"),
                ("a//b", "a//b", "laptop", stream, 0, "dataset name \"a//b\" has an empty component"),
                ("a@b", "a@b", "laptop", stream, 0, "dataset name \"a@b\" names a snapshot"),
                ("not a stream", "laptop/x", "laptop", garbage, 0, "standard input is not a ZFS send stream"),
                ("truncated", "laptop/x", "laptop", truncated, 0, "is cut short after \(size / 2) bytes"),
            ]
            for refused in cases {
                let run = try await world.receive(refused.destination, from: refused.sender, input: refused.input)
                #expect(run.status == refused.status, "\(refused.name): \(run.error)")
                #expect(run.error.contains("refused: "), "\(refused.name): \(run.error)")
                #expect(run.error.contains(refused.says), "\(refused.name): \(run.error)")
                #expect(!run.error.contains("Fatal error"), "\(refused.name)")
                #expect(try await world.driveListing() == before, "\(refused.name) wrote to the pool")
                #expect(world.storedStreams().isEmpty, "\(refused.name) left a stream in the store")
            }

            // The same stream from the right sender goes through.
            let accepted = try await world.receive("laptop/x", from: "laptop", input: stream)
            #expect(accepted.status == 0, "\(accepted.error)")
            #expect(try await world.snapshots("\(world.drive)/laptop/x") == ["s1"])
            let again = try await world.receive("laptop/x", from: "laptop", input: stream)
            #expect(again.status == 0, "a stream received twice is no error: \(again.error)")
            #expect(try await world.snapshots("\(world.drive)/laptop/x") == ["s1"])
        }
    }

    @Test("ferry queue takes simplesnap's stream and DEST, strips the store prefix, and the stream lands on the drive")
    func queue() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "q")
            let stick = try await bed.enrolledStick()
            try bed.writeConfig(
                host: "laptop",
                extra: """
                    [send]
                    backupsvr = "backupsvr"
                    simplesnap-store = "tank/simplesnap"
                    """)
            try await world.write("queued\n", to: "f")
            try await bed.sh(Tool.zfs, "snapshot", "\(world.laptop)/root@__simplesnap_backups_1__")
            let stream = try await world.streamFile(snapshot: "__simplesnap_backups_1__")
            let command = Command(FerryBinary.path, ["queue", "--config", bed.configPath("laptop"), "tank/simplesnap/laptop/root"])
            let queued = try await bed.runner.run(command, inputFrom: try FileDescriptor.open(FilePath(stream), .readOnly))
            #expect(queued.status == .exited(0), "\(queued.errorTail())")
            let outside = try await bed.runner.run(
                Command(FerryBinary.path, ["queue", "--config", bed.configPath("laptop"), "other/laptop/root"]),
                inputFrom: try FileDescriptor.open(FilePath(stream), .readOnly))
            #expect(outside.status == .exited(1))
            #expect(outside.errorTail().contains("is not under the simplesnap store tank/simplesnap"))
            let garbage = "\(bed.directory)/garbage"
            try Data(try randomBytes(4096)).write(to: URL(fileURLWithPath: garbage))
            let notStream = try await bed.runner.run(command, inputFrom: try FileDescriptor.open(FilePath(garbage), .readOnly))
            #expect(notStream.status == .exited(1))
            #expect(notStream.errorTail().contains("not a ZFS send stream"))

            _ = try await world.trip(stick)
            #expect(try await world.snapshots("\(world.drive)/laptop/root") == ["__simplesnap_backups_1__"])
            #expect(try await world.receivedFile("f", in: "\(world.drive)/laptop/root") == "queued\n")
        }
    }

    @Test("a laptop send killed mid-stream leaves a state from which the next run sends a valid increment")
    func sendKilled() async throws {
        try await TestBed.with(handler: .ferryReceive) { bed in
            let world = try await ZFSWorld.make(bed, tag: "k")
            let stick = try await bed.enrolledStick(megabytes: 256)
            let root = "\(world.drive)/laptop/\(world.laptop)/root"
            try await bed.sh(Tool.zfs, "set", "ferry:exclude=on", "\(world.laptop)/root/home")
            try await world.write("first\n", to: "f")
            _ = try await world.send()
            _ = try await world.trip(stick)

            // A large file makes the next stream take a while; ferry is killed
            // with SIGKILL while zfs send runs under it.
            let big = try await world.mountpoint("\(world.laptop)/root") + "/big"
            try await bed.sh("/bin/dd", "if=/dev/urandom", "of=\(big)", "bs=1M", "count=40", "status=none")
            try await world.write("second\n", to: "f")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: FerryBinary.path)
            process.arguments = ["send", "--config", bed.configPath("laptop")]
            process.standardError = FileHandle.nullDevice
            try process.run()
            var sawSend = false
            for _ in 0..<200 where !sawSend {
                try await Task.sleep(for: .milliseconds(25))
                sawSend = childCommandLines(of: process.processIdentifier).contains { $0.hasPrefix("\(Tool.zfs) send") }
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(sawSend, "ferry was killed while zfs send ran")
            #expect(try await world.property("ferry:sent", of: "\(world.laptop)/root") == (try await world.snapshots(root)).last!)

            try await world.write("third\n", to: "f")
            _ = try await world.send()
            _ = try await world.trip(stick)
            let laptopSnapshots = try await world.snapshots("\(world.laptop)/root")
            #expect(laptopSnapshots.count == 1)
            let received = try await world.snapshots(root)
            #expect(received.last == laptopSnapshots.last, "the drive has the newest snapshot: \(received)")
            #expect(received.count == 3, "first, the one cut short, and third: \(received)")
            #expect(try await world.receivedFile("f", in: root) == "third\n")
            #expect(world.storedStreams().isEmpty)
        }
    }
}

/// The command lines of `pid`'s children, from /proc.
func childCommandLines(of pid: Int32) -> [String] {
    guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return tasks.compactMap { entry -> String? in
        guard Int32(entry) != nil, let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8) else { return nil }
        guard let close = stat.lastIndex(of: ")"), let open = stat.firstIndex(of: "(") else { return nil }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        guard fields.count > 1, Int32(fields[1]) == pid, open < close,
            let line = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(entry)/cmdline"))
        else { return nil }
        return String(decoding: line, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
    }
}
