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

    private func say(_ line: String) {
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
        say("ferry demo: a scratch directory at \(scratch)")
        do {
            try await tell(scratch: scratch, loops: &loops)
        } catch {
            await cleanUp(scratch: scratch, loops: loops)
            throw error
        }
        await cleanUp(scratch: scratch, loops: loops)
        say("\nThe demo is over; its loop devices are detached\(keepScratch ? "" : " and its scratch directory is gone").")
    }

    private func cleanUp(scratch: String, loops: [LoopDevice]) async {
        for loop in loops.reversed() {
            try? await loop.detach(runner: runner)
        }
        if !keepScratch { try? FileManager.default.removeItem(atPath: scratch) }
    }

    private func context(_ role: Role, nncpConfig: String, scratch: String) -> FerryContext {
        var config = FerryConfig(path: "\(scratch)/\(role.rawValue)/ferry.toml", role: role)
        config.nncpConfig = nncpConfig
        config.nncpUser = ""
        config.peer = role == .spooler ? "backupsvr" : "spooler"
        config.stateDir = "\(scratch)/\(role.rawValue)/state"
        config.mountRoot = "\(scratch)/\(role.rawValue)/mnt"
        return FerryContext(config: config, runner: runner, logger: Logger(label: "ferry.\(role.rawValue)"))
    }

    private func tell(scratch: String, loops: inout [LoopDevice]) async throws {
        say("\n1. Three NNCP nodes, made with nncp-cfgnew: laptop, spooler (online) and backupsvr (air-gapped).")
        let handler = "\(scratch)/receive.sh"
        try """
        #!/bin/sh
        # The demo's stand-in for `ferry receive`: keeps the stream.
        exec /bin/cat > \(scratch)/received
        """.write(toFile: handler, atomically: false, encoding: .utf8)
        chmod(handler, 0o755)
        let network = try await NNCPTestNetwork.create(
            in: scratch,
            nodes: [
                .init(name: "laptop", via: ["backupsvr": ["spooler"]]),
                .init(name: "spooler"),
                .init(name: "backupsvr", exec: ["zfsreceive": [handler]]),
            ],
            runner: runner)
        let spooler = context(.spooler, nncpConfig: network.config("spooler"), scratch: scratch)
        let backupsvr = context(.backupsvr, nncpConfig: network.config("backupsvr"), scratch: scratch)
        say("   Each knows the others' public keys; the laptop reaches backupsvr only via the spooler.")

        say("\n2. A new USB stick is plugged into the spooler: \(scratch)/stick.img, 64 MiB ext4, label FERRY-DEMO.")
        let stick = try await LoopDevice.create(image: "\(scratch)/stick.img", megabytes: 64, ext4Label: "FERRY-DEMO", runner: runner)
        loops.append(stick)
        let blank = try await MediumRecognizer(context: spooler).recognize(devnode: stick.devnode)
        say("   ferry identify \(stick.devnode): \(blank.verdict.rawValue): \(blank.reason)")
        await handle(stick.devnode, at: "spooler", spooler)

        say("\n3. The admin enrolls it once, at the spooler: ferry enroll \(stick.devnode)")
        if case .enrolled(let identity) = try await StickEnrolment(context: spooler).enroll(devnode: stick.devnode, force: false) {
            say("   .ferry/identity now names filesystem \(identity.uuid), signed with \(identity.enrollerName)'s NNCP key.")
        }
        await handle(stick.devnode, at: "spooler", spooler)

        say("\n4. The stick is carried to backupsvr, which has never seen it.")
        let carried = try await MediumRecognizer(context: backupsvr).recognize(devnode: stick.devnode)
        say("   ferry identify: \(carried.verdict.rawValue): \(carried.reason)")
        say("   backupsvr trusts it through the spooler's signpub in its own NNCP config: no second enrolment.")
        await handle(stick.devnode, at: "backupsvr", backupsvr)

        say("\n5. A forged stick: another filesystem carrying a copy of that identity.")
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

        try await tellExchange(scratch: scratch, network: network, stick: stick, spooler: spooler, backupsvr: backupsvr)
        try await tellDrive(scratch: scratch, backupsvr: backupsvr, loops: &loops)

        say("\nNot shown here yet: ferry send and ferry receive carry real ZFS snapshots onto the drive")
        say("(they work today; see README.md). Drive rotation comes next, its state carried back by the journal.")
    }

    private func tellExchange(scratch: String, network: NNCPTestNetwork, stick: LoopDevice, spooler: FerryContext, backupsvr: FerryContext)
        async throws
    {
        say(
            "\n6. The laptop queues a 2 MiB stream for backupsvr (nncp-exec ... zfsreceive laptop/root); it reaches the spooler over the LAN."
        )
        let random = FileHandle(forReadingAtPath: "/dev/urandom")
        let stream = Array(try random?.read(upToCount: 2 << 20) ?? Data())
        try random?.close()
        try await runner.check(
            NNCP.exec(config: network.config("laptop"), nice: "B", node: "backupsvr", handle: "zfsreceive", arguments: ["laptop/root"]),
            input: stream)
        let lan = scratch + "/lan"
        try FileManager.default.createDirectory(atPath: lan, withIntermediateDirectories: true)
        try await runner.check(
            NNCP.xferSend(config: network.config("laptop"), directory: lan, node: "spooler", keep: false, timeout: .seconds(60)))
        try await runner.check(NNCP.xferReceive(config: network.config("spooler"), directory: lan, timeout: .seconds(60)))
        try await runner.check(NNCP.toss(config: network.config("spooler"), timeout: .seconds(60)))
        say("   The spooler holds it encrypted for backupsvr; it cannot read it.")

        for (step, host, context) in [("7", "spooler", spooler), ("8", "backupsvr", backupsvr), ("9", "spooler", spooler)] {
            await handle(stick.devnode, at: host, context)
            guard let report = StateFile.read(VisitReport.self, name: "last-visit.json", stateDir: context.config.stateDir) else {
                continue
            }
            say(
                "   \(step). \(host): received \(report.received.packets) packet(s), acknowledged \(report.acks), sent \(report.sent.packets) (\(IdentifyReport.humanSize(report.sent.bytes))), still queued for \(report.peer): \(report.pendingForPeer.packets)"
            )
        }
        let received = FileManager.default.contents(atPath: scratch + "/received")
        say("   backupsvr's handler got the stream \(received == Data(stream) ? "byte for byte" : "DAMAGED OR NOT AT ALL").")
        say("   The spooler kept its copy until backupsvr's ACK came back on the stick, so a lost stick loses nothing.")
        if let peer = StateFile.read(PeerState.self, name: VisitJournal.peerStateFile, stateDir: spooler.config.stateDir) {
            say(
                "   From the signed journal on the stick, the spooler now knows backupsvr's visit of \(peer.time) (record seq \(peer.seq), verified against backupsvr's NNCP key): received \(peer.visit.received.packets), acknowledged \(peer.visit.acks)."
            )
        }
    }

    private func tellDrive(scratch: String, backupsvr: FerryContext, loops: inout [LoopDevice]) async throws {
        say("\n10. A backup drive in backupsvr's USB dock: a ZFS pool on \(scratch)/drive-a.img.")
        guard (try? await runner.run(Command(Tool.zpool, ["list", "-H"], timeout: .seconds(10)), input: nil))?.status.succeeded == true
        else {
            say("   zfs-fuse is not answering here, so this part is skipped. `make demo` starts it.")
            return
        }
        let drive = try await LoopDevice.create(image: "\(scratch)/drive-a.img", megabytes: 128, ext4Label: nil, runner: runner)
        loops.append(drive)
        let pool = "ferrydemo\(getpid())"
        try await runner.check(Zpool.create(pool: pool, device: drive.devnode, altroot: "\(scratch)/altroot"))
        try await runner.check(Zpool.export(pool: pool))
        let before = try await MediumRecognizer(context: backupsvr).recognize(devnode: drive.devnode)
        say("   ferry identify \(drive.devnode): \(before.verdict.rawValue): \(before.reason)")
        let (enrolled, _) = try await DriveEnrolment(context: backupsvr).enroll(drive.devnode)
        say("   ferry drive enroll \(drive.devnode): pool \(enrolled.pool), GUID \(enrolled.guid)")
        await handle(drive.devnode, at: "backupsvr", backupsvr)
    }

    /// Runs `ferry handle` as the host would, and tells the outcome.
    private func handle(_ devnode: String, at host: String, _ context: FerryContext) async {
        do {
            let recognition = try await Handler(context: context).handle(devnode: devnode)
            say("   \(host): ferry handle \(devnode) -> exit 0: \(recognition.verdict.rawValue), \(recognition.reason); safe to remove")
        } catch let error as FerryError {
            say("   \(host): ferry handle \(devnode) -> exit \(error.exitStatus.rawValue): \(error)")
        } catch {
            say("   \(host): ferry handle \(devnode) -> exit 1: \(error)")
        }
    }
}
