import FerryCore
import Foundation
import Logging

public struct DemoError: FerryError {
    public var problem: String

    public init(problem: String) {
        self.problem = problem
    }

    public var description: String { problem }
}

/// `ferry demo`: the story so far, told on this one machine with real parts
/// in a scratch directory that it removes afterwards.
public struct DemoStory: Sendable {
    public var keepScratch: Bool
    var runner: any CommandRunner = SubprocessRunner()

    public init(keepScratch: Bool) {
        self.keepScratch = keepScratch
    }

    fileprivate func say(_ line: String) {
        print(line)
        fflush(nil)
    }

    public func run() async throws {
        guard geteuid() == 0 else {
            throw DemoError(problem: "ferry demo needs root: it attaches loop devices and mounts them (try: sudo make demo)")
        }
        var template = Array("/tmp/ferry-demo.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw DemoError(problem: "could not make a scratch directory in /tmp") }
        let scratch = String(cString: made)
        var loops: [LoopDevice] = []
        var pools: [String] = []
        say("ferry demo: a scratch directory at \(scratch)")
        do {
            try await tell(scratch: scratch, loops: &loops, pools: &pools)
        } catch {
            await cleanUp(scratch: scratch, loops: loops, pools: pools)
            throw error
        }
        await cleanUp(scratch: scratch, loops: loops, pools: pools)
        say("\nThe demo is over; its pools are gone, its loop devices detached\(keepScratch ? "" : " and its scratch directory removed").")
    }

    /// Destroys the demo's pools that are imported (an ejected drive is not),
    /// and detaches its loop devices.
    private func cleanUp(scratch: String, loops: [LoopDevice], pools: [String]) async {
        for pool in pools.reversed() {
            if let problem = await ScratchPools.destroy(pool, runner: runner) { say("ferry demo: \(problem)") }
        }
        for loop in loops.reversed() {
            try? await loop.detach(runner: runner)
        }
        if !keepScratch { try? FileManager.default.removeItem(atPath: scratch) }
    }

    /// Writes `role`'s ferry.toml in the scratch directory and reads it back
    /// the way every ferry command does.
    private func context(_ role: Role, nncpConfig: String, scratch: String, extra: String = "") throws -> FerryContext {
        let directory = "\(scratch)/\(role.rawValue)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let peer = role == .spooler ? "backupsvr" : "spooler"
        try """
        role = "\(role.rawValue)"
        nncp-config = "\(nncpConfig)"
        nncp-user = ""
        peer = "\(peer)"
        state-dir = "\(directory)/state"
        mount-root = "\(directory)/mnt"
        \(extra)
        """.write(toFile: "\(directory)/ferry.toml", atomically: false, encoding: .utf8)
        let config = try FerryConfig.load(path: "\(directory)/ferry.toml")
        return FerryContext(config: config, runner: runner, logger: Logger(label: "ferry.\(role.rawValue)"))
    }

    private func tell(scratch: String, loops: inout [LoopDevice], pools: inout [String]) async throws {
        guard await ScratchPools.zfsAnswers(runner: runner) else {
            throw DemoError(
                problem: "zfs-fuse is not answering (zpool list failed); `make demo` starts it, or run scripts/with-zfs-fuse ferry demo")
        }
        let ferry = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        say("\n1. Three NNCP nodes, made with nncp-cfgnew: laptop, spooler (online) and backupsvr (air-gapped).")
        let network = try await NNCPTestNetwork.create(
            in: scratch,
            nodes: [
                .init(name: "laptop", via: ["backupsvr": ["spooler"]]),
                .init(name: "spooler"),
                .init(name: "backupsvr", exec: ["zfsreceive": [ferry, "receive", "--config", "\(scratch)/backupsvr/ferry.toml"]]),
            ],
            runner: runner)
        say("   Each knows the others' public keys; the laptop reaches backupsvr only via the spooler.")
        say("   backupsvr runs `ferry receive` for the laptop's streams (its NNCP exec handler `zfsreceive`).")

        let tag = "\(getpid())"
        let laptopPool = "demolaptop\(tag)"
        let drives = ["demodrivea\(tag)", "demodriveb\(tag)"]
        say("\n2. The laptop's ZFS pool \(laptopPool), on a 128 MiB loop device, with \(laptopPool)/root and its child home.")
        let laptopDisk = try await LoopDevice.create(image: "\(scratch)/laptop.img", megabytes: 128, ext4Label: nil, runner: runner)
        loops.append(laptopDisk)
        pools.append(laptopPool)
        try await runner.check(Zpool.create(pool: laptopPool, device: laptopDisk.devnode, altroot: "\(scratch)/laptop/altroot"))
        for dataset in ["root", "root/home"] {
            try await runner.check(Zfs.create("\(laptopPool)/\(dataset)"))
        }
        let laptop = try context(
            .laptop, nncpConfig: network.config("laptop"), scratch: scratch,
            extra: "[send]\nbackupsvr = \"backupsvr\"\nhost = \"laptop\"\ndatasets = [\"\(laptopPool)/root\"]")
        let spooler = try context(.spooler, nncpConfig: network.config("spooler"), scratch: scratch)
        let backupsvr = try context(
            .backupsvr, nncpConfig: network.config("backupsvr"), scratch: scratch,
            extra: "[receive]\nsenders = { laptop = \"laptop\" }")

        say("\n3. Two backup drives for backupsvr's USB dock: ZFS pools on drive-a.img and drive-b.img.")
        var driveDisks: [LoopDevice] = []
        for (index, pool) in drives.enumerated() {
            let disk = try await LoopDevice.create(
                image: "\(scratch)/drive-\(index == 0 ? "a" : "b").img", megabytes: 128, ext4Label: nil, runner: runner)
            loops.append(disk)
            pools.append(pool)
            driveDisks.append(disk)
            try await runner.check(Zpool.create(pool: pool, device: disk.devnode, altroot: "\(scratch)/backupsvr/altroot-\(pool)"))
            let (enrolled, _) = try await DriveEnrolment(context: backupsvr).enroll(pool)
            say("   ferry drive enroll \(pool): GUID \(enrolled.guid), on \(disk.devnode)")
        }
        _ = try await DriveDock(context: backupsvr).eject(drives[1], wait: .seconds(60))
        say("   ferry drive eject \(drives[1]): exported, safe to remove. Drive B goes offsite, empty; A stays in the dock.")

        say("\n4. A new USB stick, \(scratch)/stick.img (64 MiB ext4, label FERRY-DEMO), is enrolled once at the spooler.")
        let stick = try await LoopDevice.create(image: "\(scratch)/stick.img", megabytes: 64, ext4Label: "FERRY-DEMO", runner: runner)
        loops.append(stick)
        let blank = try await MediumRecognizer(context: spooler).recognize(devnode: stick.devnode)
        say("   Before: ferry identify says \(blank.verdict.rawValue): \(blank.reason)")
        if case .enrolled(let identity) = try await StickEnrolment(context: spooler).enroll(devnode: stick.devnode, force: false) {
            say("   ferry enroll: .ferry/identity names filesystem \(identity.uuid), signed with \(identity.enrollerName)'s NNCP key.")
        }
        let carried = try await MediumRecognizer(context: backupsvr).recognize(devnode: stick.devnode)
        say("   backupsvr has never seen it, and trusts it through the spooler's signature: \(carried.verdict.rawValue), \(carried.reason)")
        try await tellForgery(scratch: scratch, stick: stick, backupsvr: backupsvr, loops: &loops)

        let lan = scratch + "/lan"
        try FileManager.default.createDirectory(atPath: lan, withIntermediateDirectories: true)
        let round = Round(
            story: self, laptop: laptop, laptopNetwork: network, spooler: spooler, backupsvr: backupsvr, stick: stick, lan: lan)

        say("\n6. Round one. The laptop writes files and runs ferry send.")
        try await round.write("round one\n", dataset: "\(laptopPool)/root")
        try await round.send()
        try await round.trip()
        try await tellDrives(
            backupsvr, "   Drive A took the stream at the toss; B, offsite, lacks it, so it waits in backupsvr's stream store:")

        say("\n7. The admin rotates: ferry drive eject \(drives[0]).")
        let ejectA = try await DriveDock(context: backupsvr).eject(drives[0], wait: .seconds(60))
        say(
            "   Exported with \((ejectA.drive.datasets ?? []).map { "\($0.dataset)@\($0.snapshot)" }.joined(separator: ", ")); safe to remove. Drive A goes offsite."
        )

        say("\n8. Round two, with no drive in the dock.")
        try await round.write("round two\n", dataset: "\(laptopPool)/root")
        try await round.send()
        try await round.trip()
        let store = try StreamStore(stateDir: backupsvr.config.stateDir).size()
        say(
            "   No drive is here, so backupsvr keeps the streams: \(store.packets) in the store (\(humanSize(store.bytes)))."
        )

        say("\n9. Drive B comes back and is plugged into the dock; udev and systemd run ferry handle \(driveDisks[1].devnode).")
        await handle(driveDisks[1].devnode, at: "backupsvr", backupsvr)
        let onB = try await ZFSInventory(runner: runner).snapshots(of: "\(drives[1])/laptop/\(laptopPool)/root")?.map(\.name) ?? []
        say(
            "   ferry imported it by GUID and applied what it missed, in order: \(drives[1])/laptop/\(laptopPool)/root has \(onB.joined(separator: ", "))."
        )
        try await tellDrives(backupsvr, "   ferry drive list:")

        say("\n10. The stick's next trip carries backupsvr's signed journal record back to the spooler.")
        await handle(stick.devnode, at: "backupsvr", backupsvr)
        await handle(stick.devnode, at: "spooler", spooler)
        say("   ferry status at the spooler, which never sees the drives, now reads:")
        let status = try await StatusReader(context: spooler, nncp: try await spooler.nncpConfig()).report()
        for line in StatusText(status).text.split(separator: "\n") { say("   | \(line)") }
    }

    /// `ferry drive list`, indented.
    private func tellDrives(_ backupsvr: FerryContext, _ heading: String) async throws {
        say(heading)
        for drive in try await DriveDock(context: backupsvr).drives() {
            for line in StatusText.lines(drive) { say("     \(line)") }
        }
    }

    private func tellForgery(scratch: String, stick: LoopDevice, backupsvr: FerryContext, loops: inout [LoopDevice]) async throws {
        say("\n5. A forged stick: another filesystem carrying a copy of that identity, plugged into backupsvr.")
        let forged = try await LoopDevice.create(image: "\(scratch)/forged.img", megabytes: 64, ext4Label: "FERRY-DEMO", runner: runner)
        loops.append(forged)
        let stickDevice = try backupsvr.inspector.inspect(devnode: stick.devnode)
        let copied = try await withMountedMedium(stickDevice, readOnly: true, context: backupsvr) { root in
            try root.subdirectory(StickIdentity.directory).readFile(StickIdentity.fileName, limit: StickIdentity.sizeLimit)
        }
        let forgedDevice = try backupsvr.inspector.inspect(devnode: forged.devnode)
        try await withMountedMedium(forgedDevice, readOnly: false, context: backupsvr) { root in
            try root.subdirectory(StickIdentity.directory, create: true).writeFileAtomically(StickIdentity.fileName, bytes: copied)
        }
        await handle(forged.devnode, at: "backupsvr", backupsvr)
    }

    /// One backup round: the laptop sends, the stick visits the spooler and
    /// then backupsvr, whose toss runs `ferry receive`.
    private struct Round {
        var story: DemoStory
        var laptop: FerryContext
        var laptopNetwork: NNCPTestNetwork
        var spooler: FerryContext
        var backupsvr: FerryContext
        var stick: LoopDevice
        var lan: String

        func write(_ text: String, dataset: String) async throws {
            let mountpoint = try await story.runner.check(Zfs.mountpoint(of: dataset)).output.trimmingCharacters(
                in: .whitespacesAndNewlines)
            try Data(text.utf8).write(to: URL(fileURLWithPath: mountpoint + "/notes.txt"))
        }

        func send() async throws {
            let sent = try await SnapshotSender(context: laptop, nncp: try await laptop.nncpConfig()).send([])
            for dataset in sent {
                story.say(
                    "   ferry send: \(dataset.dataset)@\(dataset.queued.joined(separator: ", @")) queued for backupsvr (nncp-exec, via the spooler)"
                )
            }
            try await laptopNetwork.carry(from: "laptop", to: "spooler", through: lan, runner: story.runner)
            story.say("   Over the LAN the packets reach the spooler, which holds them encrypted for backupsvr: it cannot read them.")
        }

        func trip() async throws {
            for (host, context) in [("spooler", spooler), ("backupsvr", backupsvr)] {
                await story.handle(stick.devnode, at: host, context)
                if let report = VisitReport.last(stateDir: context.config.stateDir) {
                    story.say(
                        "     received \(report.received.packets) packet(s), acknowledged \(report.acks), sent \(report.sent.packets) (\(humanSize(report.sent.bytes))), still queued for \(report.peer): \(report.pendingForPeer.packets)"
                    )
                }
            }
        }
    }

    /// Runs `ferry handle` as the host would, and tells the outcome.
    fileprivate func handle(_ devnode: String, at host: String, _ context: FerryContext) async {
        do {
            let recognition = try await Handler(context: context).handle(devnode: devnode)
            let done = recognition.verdict == .drive ? "caught up, stays in the dock" : "safe to remove"
            say("   \(host): ferry handle \(devnode) -> exit 0: \(recognition.verdict.rawValue), \(recognition.reason); \(done)")
        } catch let error as FerryError {
            say("   \(host): ferry handle \(devnode) -> exit \(error.exitStatus.rawValue): \(error)")
        } catch {
            say("   \(host): ferry handle \(devnode) -> exit 1: \(error)")
        }
    }
}
