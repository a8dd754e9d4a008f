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

    func say(_ line: String) {
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

    /// `role`'s config, read the way every ferry command reads it.
    private func context(_ hosts: DemoHosts, _ role: Role) throws -> FerryContext {
        FerryContext(
            config: try FerryConfig.load(path: hosts.config(role)), runner: runner, logger: Logger(label: "ferry.\(role.rawValue)"))
    }

    private func tell(scratch: String, loops: inout [LoopDevice], pools: inout [String]) async throws {
        guard await ScratchPools.zfsAnswers(runner: runner) else {
            throw DemoError(
                problem: "zfs-fuse is not answering (zpool list failed); `make demo` starts it, or run scripts/with-zfs-fuse ferry demo")
        }
        let hosts = DemoHosts(
            scratch: scratch, ferry: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"), runner: runner,
            story: self)
        say("\n1. Three fresh hosts, each a directory here: laptop, spooler (online) and backupsvr (air-gapped).")
        say("   Each runs ferry init (with --config, --nncp-config, --spool, --state-dir and --mount-root inside its directory,")
        say("   and --nncp-user \"\"): NNCP keys from nncp-cfgnew in an NNCP configuration directory, a spool, a ferry.toml.")
        for role in [Role.laptop, .spooler, .backupsvr] {
            let card = try await hosts.ferry(role, ["init", role.rawValue, "--name", role.rawValue] + hosts.initOptions(role), quiet: true)
            try card.write(toFile: hosts.cardFile(role), atomically: true, encoding: .utf8)
            say(
                "   \(role.rawValue)$ ferry init \(role.rawValue) --name \(role.rawValue)  ->  its card, \(card.split(separator: "\n").last ?? "")"
            )
        }

        say("\n2. On the LAN, the laptop and the spooler swap cards (ferry card > FILE there, ferry pair add FILE here).")
        try await hosts.ferry(.spooler, ["pair", "add", hosts.cardFile(.laptop)])
        try await hosts.ferry(.laptop, ["pair", "add", hosts.cardFile(.spooler)])

        let tag = "\(getpid())"
        let laptopPool = "demolaptop\(tag)"
        let drives = ["demodrivea\(tag)", "demodriveb\(tag)"]
        say("\n3. The laptop's ZFS pool \(laptopPool), on a 128 MiB loop device, with \(laptopPool)/root and its child home.")
        let laptopDisk = try await LoopDevice.create(image: "\(scratch)/laptop.img", megabytes: 128, ext4Label: nil, runner: runner)
        loops.append(laptopDisk)
        pools.append(laptopPool)
        try await runner.check(Zpool.create(pool: laptopPool, device: laptopDisk.devnode, altroot: "\(scratch)/laptop/altroot"))
        for dataset in ["root", "root/home"] {
            try await runner.check(Zfs.create("\(laptopPool)/\(dataset)"))
        }

        say("\n4. Two backup drives for backupsvr's USB dock: ZFS pools on drive-a.img and drive-b.img.")
        var driveDisks: [LoopDevice] = []
        for (index, pool) in drives.enumerated() {
            let disk = try await LoopDevice.create(
                image: "\(scratch)/drive-\(index == 0 ? "a" : "b").img", megabytes: 128, ext4Label: nil, runner: runner)
            loops.append(disk)
            pools.append(pool)
            driveDisks.append(disk)
            try await runner.check(Zpool.create(pool: pool, device: disk.devnode, altroot: "\(scratch)/backupsvr/altroot-\(pool)"))
            try await hosts.ferry(.backupsvr, ["drive", "enroll", pool])
        }
        _ = try await DriveDock(context: try context(hosts, .backupsvr)).eject(drives[1], wait: .seconds(60))
        say("   backupsvr$ ferry drive eject \(drives[1]): exported, safe to remove. Drive B goes offsite, empty; A stays in the dock.")

        say("\n5. A new USB stick, \(scratch)/stick.img (64 MiB ext4, label FERRY-DEMO), is enrolled once at the spooler.")
        let stick = try await LoopDevice.create(image: "\(scratch)/stick.img", megabytes: 64, ext4Label: "FERRY-DEMO", runner: runner)
        loops.append(stick)
        let blank = try await MediumRecognizer(context: try context(hosts, .spooler)).recognize(devnode: stick.devnode)
        say("   Before: ferry identify says \(blank.verdict.rawValue): \(blank.reason)")
        try await hosts.ferry(.spooler, ["enroll", stick.devnode])
        say("   It carries a signed .ferry/identity, the spooler's card, and the laptop's card in a list the spooler signed.")
        let unpaired = try await MediumRecognizer(context: try context(hosts, .backupsvr)).recognize(devnode: stick.devnode)
        say("   backupsvr does not know the spooler yet: \(unpaired.verdict.rawValue), \(unpaired.reason)")

        say("\n6. Pairing across the gap, by the stick itself. At backupsvr, without --accept, ferry only shows and exits 2:")
        try await hosts.ferry(.backupsvr, ["pair", stick.devnode], expect: 2)
        let spoolerPrint = try hosts.fingerprint(.spooler)
        say("   The admin compares \(spoolerPrint) with what the spooler's screen showed at ferry init, and accepts it:")
        try await hosts.ferry(.backupsvr, ["pair", stick.devnode, "--accept", spoolerPrint])
        say("   Back at the spooler, backupsvr's answer is taken the same way:")
        try await hosts.ferry(.spooler, ["pair", stick.devnode, "--accept", try hosts.fingerprint(.backupsvr)])
        say("   And the spooler hands backupsvr's card to the laptop (ferry card --of backupsvr > backupsvr.card):")
        let handed = try await hosts.ferry(.spooler, ["card", "--of", "backupsvr"], quiet: true)
        try handed.write(toFile: scratch + "/handed-backupsvr.card", atomically: true, encoding: .utf8)
        try await hosts.ferry(.laptop, ["pair", "add", scratch + "/handed-backupsvr.card"])
        let laptop = try context(hosts, .laptop)
        let spooler = try context(hosts, .spooler)
        let backupsvr = try context(hosts, .backupsvr)
        let carried = try await MediumRecognizer(context: backupsvr).recognize(devnode: stick.devnode)
        say("   Now backupsvr trusts the stick through the spooler's signature: \(carried.verdict.rawValue), \(carried.reason)")
        try await tellForgery(scratch: scratch, stick: stick, backupsvr: backupsvr, loops: &loops)

        let lan = scratch + "/lan"
        try FileManager.default.createDirectory(atPath: lan, withIntermediateDirectories: true)
        let network = NNCPTestNetwork(directory: scratch, configs: ["laptop": hosts.nncp(.laptop), "spooler": hosts.nncp(.spooler)])
        let round = Round(
            story: self, laptop: laptop, dataset: "\(laptopPool)/root", laptopNetwork: network, spooler: spooler, backupsvr: backupsvr,
            stick: stick, lan: lan)

        say("\n8. Round one. The laptop writes files and runs ferry send.")
        try await round.write("round one\n", dataset: "\(laptopPool)/root")
        try await round.send()
        try await round.trip()
        try await tellDrives(
            backupsvr,
            "   Drive A took the stream at the toss. B, offsite, lacks it, but can catch up from A, so the stream store keeps nothing:")

        say("\n9. The admin rotates: ferry drive eject \(drives[0]).")
        let ejectA = try await DriveDock(context: backupsvr).eject(drives[0], wait: .seconds(60))
        say(
            "   Exported with \((ejectA.drive.datasets ?? []).map { "\($0.dataset)@\($0.snapshot)" }.joined(separator: ", ")); safe to remove. Drive A goes offsite."
        )
        say(
            "   B could have caught up from A, so before the export ferry put \(ejectA.kept.packets) stream(s) (\(humanSize(ejectA.kept.bytes))) back into the store for B."
        )

        say("\n10. Round two, with no drive in the dock.")
        try await round.write("round two\n", dataset: "\(laptopPool)/root")
        try await round.send()
        try await round.trip()
        let store = try StreamStore(stateDir: backupsvr.config.stateDir).size()
        say(
            "   No drive is here, so backupsvr keeps the streams: \(store.packets) in the store (\(humanSize(store.bytes)))."
        )

        say("\n11. Drive B comes back and is plugged into the dock; udev and systemd run ferry handle \(driveDisks[1].devnode).")
        await handle(driveDisks[1].devnode, at: "backupsvr", backupsvr)
        let onB = try await ZFSInventory(runner: runner).snapshots(of: "\(drives[1])/laptop/\(laptopPool)/root")?.map(\.name) ?? []
        say(
            "   ferry imported it by GUID and applied what it missed, in order: \(drives[1])/laptop/\(laptopPool)/root has \(onB.joined(separator: ", "))."
        )
        try await tellDrives(backupsvr, "   ferry drive list:")

        say("\n12. The stick's next trip carries backupsvr's signed journal record back to the spooler.")
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
        say("\n7. A forged stick: another filesystem carrying a copy of that identity, plugged into backupsvr.")
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
        var dataset: String
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
            let sent = try await SnapshotSender(context: laptop, nncp: try await laptop.nncpConfig()).send([dataset])
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
                if let report = try? VisitReport.last(stateDir: context.config.stateDir) {
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

/// The demo's three hosts, each a directory of the scratch one, set up by
/// running the ferry binary itself, as an admin would on each host.
struct DemoHosts {
    var scratch: String
    var ferry: String
    var runner: any CommandRunner
    var story: DemoStory

    func home(_ role: Role) -> String { "\(scratch)/\(role.rawValue)" }
    func config(_ role: Role) -> String { home(role) + "/ferry.toml" }
    func nncp(_ role: Role) -> String { home(role) + "/nncp" }
    func cardFile(_ role: Role) -> String { "\(scratch)/\(role.rawValue).card" }

    func initOptions(_ role: Role) -> [String] {
        [
            "--nncp-config", nncp(role), "--spool", home(role) + "/spool", "--state-dir", home(role) + "/state", "--mount-root",
            home(role) + "/mnt", "--nncp-user", "",
        ]
    }

    func fingerprint(_ role: Role) throws -> String {
        let text = try String(contentsOfFile: cardFile(role), encoding: .utf8)
        guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("fingerprint: ") }) else {
            throw DemoError(problem: "\(cardFile(role)) has no fingerprint line")
        }
        return String(line.dropFirst("fingerprint: ".count))
    }

    /// Runs `ferry ARGUMENTS --config` as `role`, shows the command and its
    /// output (unless `quiet`), and returns the output; an exit status other
    /// than `expect` ends the demo.
    @discardableResult
    func ferry(_ role: Role, _ arguments: [String], expect: Int32 = 0, quiet: Bool = false) async throws -> String {
        let shown = arguments.map { $0.hasPrefix(scratch + "/") ? String($0.dropFirst(scratch.count + 1)) : $0 }
        if !quiet { story.say("   \(role.rawValue)$ ferry \(shown.joined(separator: " "))") }
        let result = try await runner.run(Command(ferry, arguments + ["--config", config(role)], timeout: .seconds(120)), input: nil)
        if !quiet {
            for line in result.output.split(separator: "\n") { story.say("     | \(line)") }
        }
        guard result.status == .exited(expect) else {
            throw DemoError(
                problem: "ferry \(shown.joined(separator: " ")) at \(role.rawValue) ended with \(result.status): \(result.errorTail())")
        }
        return result.output
    }
}
