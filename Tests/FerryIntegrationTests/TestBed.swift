import FerryCore
import FerryDemo
import Foundation
import Testing

extension Tag {
    /// Runs real parts: loop devices, mounts, NNCP, zfs-fuse, udevadm.
    @Tag static var integration: Self
    @Tag static var zfs: Self
}

enum Requirements {
    static let isRoot = geteuid() == 0
    static let rootOnly: Comment = "needs root for loop devices and mounts; CI runs as root (make test)"

    static func tool(_ path: String) -> Bool { FileManager.default.isExecutableFile(atPath: path) }

    static var zfsAnswers: Bool {
        get async { await ScratchPools.zfsAnswers(runner: SubprocessRunner()) }
    }
}

extension Trait where Self == ConditionTrait {
    /// A suite on zfs-fuse pools: runs where zfs answers, and always in CI,
    /// where a missing daemon must fail rather than skip.
    static var zfsAnswers: Self {
        .enabled("needs a running zfs-fuse (make test starts one); in CI it must be there") {
            ProcessInfo.processInfo.environment["CI"] != nil ? true : await Requirements.zfsAnswers
        }
    }
}

/// What one run of the ferry binary did.
struct Run {
    var status: Int32
    var output: String
    var error: String
}

/// The built `ferry` executable, next to the test bundle.
enum FerryBinary {
    static var path: String {
        if let override = ProcessInfo.processInfo.environment["FERRY_BINARY"] { return override }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundle.appendingPathComponent("ferry").path
    }

    /// The release build, which `make test` makes before the tests and
    /// names in FERRY_RELEASE_BINARY: the binary that ships, for the
    /// absolute bounds (a debug build costs more memory of its own).
    static var release: String? {
        if let path = ProcessInfo.processInfo.environment["FERRY_RELEASE_BINARY"], !path.isEmpty { return path }
        return path.contains("/release/") ? path : nil
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> Run {
        let result = try await SubprocessRunner().run(
            Command(path, arguments, environment: environment, timeout: .seconds(120)), input: nil)
        guard case .exited(let status) = result.status else {
            Issue.record("ferry \(arguments) ended with \(result.status): \(result.errorTail())")
            return Run(status: -1, output: result.output, error: String(decoding: result.standardError, as: UTF8.self))
        }
        return Run(status: status, output: result.output, error: String(decoding: result.standardError, as: UTF8.self))
    }
}

/// A scratch world: three NNCP nodes, a ferry config for the spooler and for
/// backupsvr, and the loop devices and pools a test makes. `tearDown` removes
/// exactly what this bed made.
final class TestBed: @unchecked Sendable {
    let directory: String
    let network: NNCPTestNetwork
    let runner = SubprocessRunner()
    private var loops: [LoopDevice] = []
    private var pools: [String] = []

    private init(directory: String, network: NNCPTestNetwork) {
        self.directory = directory
        self.network = network
    }

    /// What backupsvr runs for `zfsreceive`: a script that keeps each
    /// stream in received/, or `ferry receive` itself.
    enum Handler { case script, ferryReceive }

    /// With `stateBack`, traffic flows back too: backupsvr reaches the
    /// laptop via the spooler, and both offer `ferrystate` (`ferry state`).
    /// With `restores`, backupsvr reaches the laptop through the spooler,
    /// the laptop runs `ferry receive` for `zfsrestore`, and both offer
    /// `ferrystate`, as pairing sets them up.
    static func with<T>(
        handler choice: Handler = .script, stateBack: Bool = false, restores: Bool = false, _ body: (TestBed) async throws -> T
    ) async throws -> T {
        var template = Array("/tmp/ferry-it.XXXXXX".utf8CString)
        let directory = String(cString: mkdtemp(&template)!)
        let handler = directory + "/handler.sh"
        try """
        #!/bin/sh
        # The test's NNCP exec handler: keeps each stream in received/, and
        # fails while the file handler-fails exists. There is no PATH here.
        [ -e \(directory)/handler-fails ] && exit 1
        /bin/mkdir -p \(directory)/received
        exec /bin/cat > "\(directory)/received/$(/bin/date +%s%N)"
        """.write(toFile: handler, atomically: false, encoding: .utf8)
        chmod(handler, 0o755)
        func state(_ host: String) -> [String: [String]] {
            // A laptop that takes restores has backupsvr as a neighbour, and
            // backupsvr then sends it its state too, as after pairing.
            stateBack || restores ? ["ferrystate": [FerryBinary.path, "state", "--config", "\(directory)/\(host)/ferry.toml"]] : [:]
        }
        let network = try await NNCPTestNetwork.create(
            in: directory,
            nodes: [
                .init(
                    name: "laptop", via: ["backupsvr": ["spooler"]],
                    exec: state("laptop").merging(
                        restores ? ["zfsrestore": [FerryBinary.path, "receive", "--config", "\(directory)/laptop/ferry.toml"]] : [:]
                    ) { $1 }),
                .init(name: "spooler"),
                .init(
                    name: "backupsvr", via: stateBack || restores ? ["laptop": ["spooler"]] : [:],
                    exec: [
                        "zfsreceive": choice == .script
                            ? [handler] : [FerryBinary.path, "receive", "--config", "\(directory)/backupsvr/ferry.toml"]
                    ].merging(state("backupsvr")) { $1 }),
            ],
            runner: SubprocessRunner())
        let bed = TestBed(directory: directory, network: network)
        for host in ["spooler", "backupsvr"] {
            try bed.writeConfig(host: host)
        }
        do {
            let value = try await body(bed)
            await bed.tearDown()
            return value
        } catch {
            await bed.tearDown()
            throw error
        }
    }

    func configPath(_ host: String) -> String { "\(directory)/\(host)/ferry.toml" }

    func nodeID(_ name: String) throws -> String {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: network.config(name)))) as! [String: Any]
        return (json["self"] as! [String: Any])["id"] as! String
    }

    /// The laptop queues `payload` for backupsvr's handler, and the packet
    /// reaches the spooler through a directory (nncp-xfer), tossed there into
    /// the queue for backupsvr.
    func laptopSends(_ payload: [UInt8], nice: String = "B") async throws {
        try await runner.check(
            NNCP.exec(config: network.config("laptop"), nice: nice, node: "backupsvr", handle: "zfsreceive", arguments: ["laptop/root"]),
            input: payload)
        try await carryToSpooler()
    }

    /// What the laptop queued reaches the spooler through a directory
    /// (nncp-xfer), and is tossed there into the queue for backupsvr.
    func carryToSpooler() async throws {
        try await network.carry(from: "laptop", to: "spooler", through: directory + "/lan", runner: runner)
    }

    /// What the spooler holds for the laptop reaches it through a directory,
    /// and the laptop tosses it: its `ferrystate` handler runs.
    func carryToLaptop() async throws {
        try await network.carry(from: "spooler", to: "laptop", through: directory + "/lan", runner: runner)
    }

    /// What the spooler still keeps queued for backupsvr.
    func queuedAtSpooler() throws -> [QueuedPacket] {
        try Spool(path: network.spool("spooler")).queued(for: nodeID("backupsvr"))
    }

    /// The streams backupsvr's handler received, oldest first.
    func received() throws -> [Data] {
        let directory = self.directory + "/received"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        return try names.map { try Data(contentsOf: URL(fileURLWithPath: directory + "/" + $0)) }
    }

    /// `host`'s report of its last visit.
    func lastVisit(_ host: String) throws -> VisitReport {
        try JSONDecoder().decode(
            VisitReport.self, from: Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(host)/state/last-visit.json")))
    }

    /// An ext4 stick enrolled at the spooler.
    func enrolledStick(_ name: String = "stick", megabytes: Int = 64) async throws -> LoopDevice {
        let stick = try await stick(name, megabytes: megabytes)
        let enrol = try await ferry("spooler", "enroll", stick.devnode)
        try #require(enrol.status == 0, "enroll failed: \(enrol.error)")
        return stick
    }

    /// Writes `host`'s ferry.toml: its NNCP config, its peer, state and
    /// mounts inside the bed, and `extra` lines.
    func writeConfig(host: String, nncpUser: String = "", extra: String = "") throws {
        let text = """
            role = "\(host)"
            nncp-config = "\(network.config(host))"
            nncp-user = "\(nncpUser)"
            peer = "\(host == "spooler" ? "backupsvr" : "spooler")"
            state-dir = "\(directory)/\(host)/state"
            mount-root = "\(directory)/\(host)/mnt"
            \(extra)
            """
        try text.write(toFile: configPath(host), atomically: false, encoding: .utf8)
    }

    /// Runs `ferry` as `host` would.
    func ferry(_ host: String, _ arguments: String...) async throws -> Run {
        try await FerryBinary.run(arguments + ["--config", configPath(host)])
    }

    /// A fresh ext4 stick (or a blank device when `label` is nil) on a loop device.
    func stick(_ name: String, label: String? = "FERRY-1", megabytes: Int = 64) async throws -> LoopDevice {
        let loop = try await LoopDevice.create(image: "\(directory)/\(name).img", megabytes: megabytes, ext4Label: label, runner: runner)
        loops.append(loop)
        return loop
    }

    /// A ZFS pool on a fresh loop device, imported under the bed's altroot,
    /// or under an altroot of its own.
    func pool(_ name: String, ownAltroot: Bool = false, megabytes: Int = 128) async throws -> LoopDevice {
        let loop = try await stick(name + "-\(loops.count)", label: nil, megabytes: megabytes)
        pools.append(name)  // before create: a create that fails halfway can leave the pool
        try await runner.check(
            Zpool.create(pool: name, device: loop.devnode, altroot: "\(directory)/altroot" + (ownAltroot ? "-\(name)" : "")))
        return loop
    }

    func forgetPool(_ name: String) { pools.removeAll { $0 == name } }

    /// A pool imported by ferry (a drive's plug-in), destroyed at the end.
    func adoptPool(_ name: String) {
        if !pools.contains(name) { pools.append(name) }
    }

    /// Runs a test-only tool, and fails the test when it fails.
    @discardableResult
    func sh(_ executable: String, _ arguments: String...) async throws -> CommandResult {
        try await runner.check(Command(executable, arguments, timeout: .seconds(60)))
    }

    /// Mounts `loop` read-write at a private place for `body` to tamper with.
    func tamper(_ loop: LoopDevice, _ body: (String) throws -> Void) throws {
        let target = "\(directory)/tamper"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let mounter = LinuxMounter()
        try mounter.mount(device: loop.devnode, on: target, type: "ext4", readOnly: false, options: "")
        defer { try? mounter.unmount(target, lazy: false) }
        try body(target)
    }

    /// `host`'s `ferry status --json`.
    func status(_ host: String) async throws -> StatusReport {
        let run = try await ferry(host, "status", "--json")
        #expect(run.status == 0, "\(run.error)")
        return try JSONDecoder().decode(StatusReport.self, from: Data(run.output.utf8))
    }

    /// The last line of the journal at `path` with one signature digit
    /// flipped: it parses as a record, and does not verify.
    static func forgedCopyOfLastLine(_ path: String) throws -> String {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").last.map(String.init))
        return String(line.dropLast(3)) + (line.dropLast(2).last == "0" ? "1" : "0") + "\"}"
    }

    /// The image's bytes, to show that a run changed nothing on the medium.
    func contents(_ loop: LoopDevice) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: loop.image))
    }

    /// Destroys `pool` if it is imported; nil when it is gone.
    @discardableResult
    func destroyPool(_ pool: String) async -> String? {
        await ScratchPools.destroy(pool, runner: runner)
    }

    private func tearDown() async {
        let mounter = LinuxMounter()
        for host in ["spooler", "backupsvr"] {
            for loop in loops {
                let target = "\(directory)/\(host)/mnt/\(URL(fileURLWithPath: loop.devnode).lastPathComponent)"
                if mounter.isMounted(target) { try? mounter.unmount(target, lazy: true) }
            }
        }
        for pool in pools {
            // A pool left behind would fail later runs, which reuse names.
            if let problem = await destroyPool(pool) { Issue.record("TestBed leaked a pool: \(problem)") }
        }
        for loop in loops.reversed() {
            try? await loop.detach(runner: runner)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
