import FerryCore
import FerryDemo
import Foundation
import Testing

extension ZFSWorld {
    /// backupsvr → stick → spooler → laptop: one visit at backupsvr, one at
    /// the spooler, then the LAN to the laptop, whose toss runs `ferry
    /// receive` for each restore packet.
    func returnTrip(_ stick: LoopDevice) async throws {
        let backupsvr = try await bed.ferry("backupsvr", "handle", stick.devnode)
        try #require(backupsvr.status == 0, "\(backupsvr.error)")
        let spooler = try await bed.ferry("spooler", "handle", stick.devnode)
        try #require(spooler.status == 0, "\(spooler.error)")
        try await bed.network.carry(from: "spooler", to: "laptop", through: bed.directory + "/lan-back", runner: bed.runner)
    }

    /// Every regular file under `directory` (but .zfs), by relative path, with its contents.
    static func files(at directory: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: directory)
        while let name = enumerator?.nextObject() as? String {
            if name == ".zfs" || name.hasPrefix(".zfs/") {
                enumerator?.skipDescendants()
                continue
            }
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isDirectory), !isDirectory.boolValue {
                files[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
            }
        }
        return files
    }

    func laptopStatus() async throws -> StatusReport {
        let run = try await bed.ferry("laptop", "status", "--json")
        try #require(run.status == 0, "\(run.error)")
        return try JSONDecoder().decode(StatusReport.self, from: Data(run.output.utf8))
    }
}

@Suite(
    "Restores from a backup drive back to the laptop, over real NNCP and sticks, on zfs-fuse", .tags(.integration, .zfs), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly),
    .zfsAnswers)
struct RestoreTests {
    @Test(
        "the second of three snapshots comes back to the laptop unmounted under [restore] into, with the laptop's files; increments follow; the live dataset is untouched and never resent"
    )
    func restoreSecondOfThree() async throws {
        try await TestBed.with(handler: .ferryReceive, restores: true) { bed in
            let laptop = "fl\(getpid())r"
            // [restore] into lies under a dataset that is sent: ferry send must leave it out.
            let world = try await ZFSWorld.make(bed, tag: "r", laptopExtra: "[restore]\ninto = \"\(laptop)/root/restores\"")
            let live = "\(laptop)/root"
            try await bed.sh(Tool.zfs, "set", "ferry:exclude=on", "\(live)/home")
            let stick = try await bed.enrolledStick()
            var names: [String] = []
            var contents: [[String: Data]] = []
            for round in 1...3 {
                try await world.write("round \(round)\n", to: "r\(round)")
                try await world.write("changed in round \(round)\n", to: "common")
                _ = try await world.send()
                names.append(try #require(try await world.snapshots(live).last))
                contents.append(try ZFSWorld.files(at: try await world.mountpoint(live)))
                _ = try await world.trip(stick)
                if round == 2 {
                    // The owner keeps s2 under a name of their own, which
                    // ferry does not prune: the base of a later increment.
                    try await bed.sh(Tool.zfs, "rename", "\(live)@\(names[1])", "\(live)@kept")
                    try await bed.sh(Tool.zfs, "set", "ferry:sent=kept", live)
                    // ferry send numbers a new name after the newest ferry
                    // name it sees here, and the rename hid s2's: within the
                    // same second, s3 would take s1's name.
                    try await Task.sleep(for: .milliseconds(1100))
                }
            }
            let onDrive = try await world.snapshots("\(world.drive)/laptop/\(live)")
            try #require(onDrive == names, "\(onDrive)")
            let liveSnapshots = try await world.snapshots(live)
            let liveFiles = try ZFSWorld.files(at: try await world.mountpoint(live))

            let restore = try await bed.ferry("backupsvr", "restore", "laptop/\(live)@\(names[1])")
            try #require(restore.status == 0, "\(restore.error)")
            #expect(restore.output.contains("laptop/\(live)@\(names[1]) from \(world.drive) is queued for laptop (a full stream)"))
            try await world.returnTrip(stick)

            let target = "\(laptop)/root/restores/\(live)"
            #expect(try await world.snapshots(target) == [names[1]])
            #expect(try await world.property("mounted", of: target) == "no")
            #expect(try await world.property("canmount", of: target) == "noauto")
            #expect(try await world.property("readonly", of: target) == "on")
            #expect(try await world.property("ferry:restored", of: target) == names[1])
            let restoredFiles = try await world.throughClone(of: target) { try ZFSWorld.files(at: $0) }
            #expect(restoredFiles == contents[1], "the restore holds the laptop's own files at s2")
            #expect(try await world.snapshots(live) == liveSnapshots)
            #expect(try ZFSWorld.files(at: try await world.mountpoint(live)) == liveFiles, "the live dataset is untouched")

            let status = try await world.laptopStatus()
            let restored = try #require(status.restored)
            #expect(restored.map(\.snapshot) == [names[1]])
            #expect(restored.first?.dataset == live)
            #expect(restored.first?.into == target)
            #expect(restored.first?.from == nil)
            let text = try await bed.ferry("laptop", "status")
            #expect(text.output.contains("restored:\n  \(live)@\(names[1])"), "\(text.output)")

            // The next increment goes onto that restore.
            let increment = try await bed.ferry("backupsvr", "restore", "laptop/\(live)@\(names[2])", "--from", names[1])
            try #require(increment.status == 0, "\(increment.error)")
            #expect(increment.output.contains("(the increment from @\(names[1]))"))
            try await world.returnTrip(stick)
            #expect(try await world.snapshots(target) == [names[1], names[2]])
            #expect(try await world.throughClone(of: target) { try ZFSWorld.files(at: $0) } == contents[2])

            // With nothing restored yet, the increment starts from a local
            // copy of the live dataset's own snapshot of the same GUID.
            try await bed.sh(Tool.zfs, "destroy", "-r", target)
            let again = try await bed.ferry("backupsvr", "restore", "laptop/\(live)@\(names[2])", "--from", names[1])
            try #require(again.status == 0, "\(again.error)")
            try await world.returnTrip(stick)
            #expect(try await world.snapshots(target) == ["kept", names[2]])
            #expect(try await world.throughClone(of: target) { try ZFSWorld.files(at: $0) } == contents[2])
            #expect(try await world.property("mounted", of: target) == "no")
            #expect(try await world.snapshots(live) == liveSnapshots)
            #expect((try await world.laptopStatus().restored ?? []).map(\.from) == [nil, names[1], "kept"])

            // The next ferry send leaves the restores out, and nothing of them reaches the drive.
            try await world.write("round 4\n", to: "r4")
            let send = try await world.send()
            #expect(!send.output.contains("restores"), "\(send.output)")
            #expect(try await world.snapshots(target) == ["kept", names[2]])
            _ = try await world.trip(stick)
            #expect(!(try await world.driveListing()).contains("restores"))
            #expect(try await world.snapshots("\(world.drive)/laptop/\(live)").count == 4)
        }
    }

    @Test("a restore larger than the stick crosses in parts over several return trips, lands under the pool's ferry-restore, byte for byte")
    func restoreInParts() async throws {
        try await TestBed.with(handler: .ferryReceive, restores: true) { bed in
            let world = try await ZFSWorld.make(
                bed, tag: "q", extra: "[send]\nchunk-size = \"2MiB\"", laptopExtra: "chunk-size = \"2MiB\"")
            let live = "\(world.laptop)/root"
            try await world.fill(megabytes: 20)
            _ = try await world.send()
            let snapshot = try #require(try await world.snapshots(live).last)
            let stick = try await bed.enrolledStick(megabytes: 16)
            _ = try await world.tripsUntilOnDrive(snapshot, stick: stick, limit: 4)

            let restore = try await bed.ferry("backupsvr", "restore", "laptop/\(live)")
            try #require(restore.status == 0, "\(restore.error)")
            #expect(restore.output.contains("laptop/\(live)@\(snapshot) from \(world.drive) is queued for laptop (a full stream)"))
            let target = "\(world.laptop)/ferry-restore/\(live)"
            var trips = 0
            while trips < 5, try await world.snapshots(target).isEmpty {
                try await world.returnTrip(stick)
                trips += 1
            }
            #expect(try await world.snapshots(target) == [snapshot])
            #expect(trips >= 2, "20 MiB do not fit a 16 MiB stick at once: \(trips) trip(s)")
            #expect(try await world.property("mounted", of: target) == "no")
            #expect(try await world.property("ferry:exclude", of: "\(world.laptop)/ferry-restore") == "on")
            let big = try Data(contentsOf: URL(fileURLWithPath: try await world.mountpoint(live) + "/big"))
            let restored = try await world.throughClone(of: target) { try Data(contentsOf: URL(fileURLWithPath: $0 + "/big")) }
            #expect(restored == big)
            let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: "\(bed.directory)/laptop/state/streams")) ?? []
            #expect(leftovers.filter { $0 != "parts" }.isEmpty, "the parts are gone once received: \(leftovers)")
        }
    }

    @Test("a restore packet from a node other than backupsvr is refused with one line, and nothing is received")
    func restoreFromStrangerRefused() async throws {
        try await TestBed.with(handler: .ferryReceive, restores: true) { bed in
            let world = try await ZFSWorld.make(bed, tag: "x")
            let live = "\(world.laptop)/root"
            try await world.write("hello\n", to: "f")
            try await bed.sh(Tool.zfs, "snapshot", "\(live)@s1")
            let stream = try await world.streamFile(snapshot: "s1")
            // Over real NNCP: the spooler queues a restore for the laptop's
            // zfsrestore, and the laptop's toss runs ferry receive on it.
            try await bed.runner.check(
                Command(
                    "/bin/sh",
                    [
                        "-c",
                        "\(Tool.nncpExec) -cfg \(bed.network.config("spooler")) -noprogress laptop zfsrestore laptop/\(live) < \(stream)",
                    ]))
            let lan = bed.directory + "/lan-stranger"
            try FileManager.default.createDirectory(atPath: lan, withIntermediateDirectories: true)
            try await bed.runner.check(
                NNCP.xferSend(config: bed.network.config("spooler"), directory: lan, node: "laptop", keep: false, timeout: .seconds(60)))
            try await bed.runner.check(NNCP.xferReceive(config: bed.network.config("laptop"), directory: lan, timeout: .seconds(60)))
            let toss = try await bed.runner.run(NNCP.toss(config: bed.network.config("laptop"), timeout: .seconds(60)), input: nil)
            #expect(!toss.status.succeeded, "the handler refused the packet, so the toss reports it")
            let log = (try? String(contentsOfFile: "\(bed.directory)/laptop/log", encoding: .utf8)) ?? ""
            #expect(log.contains("which is not this laptop's backupsvr"), "\(log.suffix(2000))")
            #expect(!(try await ZFSInventory(runner: bed.runner).exists("\(world.laptop)/ferry-restore/\(live)")))
            #expect(try await world.laptopStatus().restored == [])

            // ferry receive run by hand with the spooler as sender: one line.
            let direct = try await world.receive("laptop/\(live)", from: "spooler", input: stream, at: "laptop")
            #expect(direct.status == 1)
            let lines = direct.error.split(separator: "\n").filter { $0.contains("refused") }
            #expect(lines.count == 1, "\(direct.error)")
            #expect(lines.first?.contains("a restore from spooler, which is not this laptop's backupsvr (backupsvr)") == true)
        }
    }
}

extension RestoreTests {
    @Test("a split restore that cannot land yet keeps its parts and lands when its last part's packet is tossed again")
    func splitRestoreRetried() async throws {
        try await TestBed.with(handler: .ferryReceive, restores: true) { bed in
            let world = try await ZFSWorld.make(bed, tag: "y")
            let live = "\(world.laptop)/root"
            try await bed.sh("/bin/dd", "if=/dev/urandom", "of=\(try await world.mountpoint(live))/big", "bs=64k", "count=4", "status=none")
            try await bed.sh(Tool.zfs, "snapshot", "\(live)@s1")
            let (stream, parts) = try makeParts(of: try await world.streamFile(snapshot: "s1"), chunk: 64 << 10, in: bed.directory)
            try #require(parts.count >= 3)
            // A dataset of the owner's stands where the restore goes.
            let target = "\(world.laptop)/ferry-restore/\(live)"
            try await bed.sh(Tool.zfs, "create", "-p", "-o", "canmount=noauto", target)
            var last = Run(status: -1, output: "", error: "")
            for (index, part) in parts.enumerated() {
                last = try await world.receive(
                    "laptop/\(live)", from: "backupsvr", input: part, arguments: ["--stream", "\(stream)", "--part", "\(index + 1)"],
                    at: "laptop")
                if index + 1 < parts.count { #expect(last.status == 0, "\(last.error)") }
            }
            #expect(last.status == 1, "the packet stays queued")
            #expect(last.error.contains("\(target) exists and is not a restore of ferry's; ferry never receives over it"), "\(last.error)")
            #expect(try await world.snapshots(target).isEmpty)

            try await bed.sh(Tool.zfs, "destroy", target)
            let again = try await world.receive(
                "laptop/\(live)", from: "backupsvr", input: parts.last!, arguments: ["--stream", "\(stream)", "--part", "\(parts.count)"],
                at: "laptop")
            #expect(again.status == 0, "\(again.error)")
            #expect(try await world.snapshots(target) == ["s1"])
            let big = try Data(contentsOf: URL(fileURLWithPath: try await world.mountpoint(live) + "/big"))
            #expect(try await world.throughClone(of: target) { try Data(contentsOf: URL(fileURLWithPath: $0 + "/big")) } == big)
            let left = (try? FileManager.default.contentsOfDirectory(atPath: "\(bed.directory)/laptop/state/streams/parts")) ?? []
            #expect(left.allSatisfy { $0.hasSuffix(".done") }, "\(left)")
            let late = try await world.receive(
                "laptop/\(live)", from: "backupsvr", input: parts[0], arguments: ["--stream", "\(stream)", "--part", "1"], at: "laptop")
            #expect(late.status == 0, "a late copy is dropped: \(late.error)")
            #expect(try await world.laptopStatus().restored?.count == 1)
        }
    }
}
