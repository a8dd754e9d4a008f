import Crypto
import Foundation
import Synchronization
import SystemPackage
import Testing

@testable import FerryCore

/// Records every command and answers from a script keyed by argv. A
/// command given several answers gets them in turn, the last one for good.
/// A command with no answer is a test failure: a test says what every
/// command it causes answers, failures included.
final class FakeRunner: CommandRunner {
    private let state = Mutex<(calls: [Command], answers: [String: [CommandResult]], effects: [String: @Sendable () -> Void])>(
        ([], [:], [:]))

    func answer(_ command: Command, with results: CommandResult...) {
        state.withLock { $0.answers[command.description] = results }
    }

    /// Runs `effect` each time `command` runs, before it answers: what the
    /// real program leaves behind (the packets nncp-xfer moves).
    func onRun(_ command: Command, _ effect: @escaping @Sendable () -> Void) {
        state.withLock { $0.effects[command.description] = effect }
    }

    var calls: [Command] { state.withLock { $0.calls } }

    func run(_ command: Command, input: [UInt8]?) async throws(CommandError) -> CommandResult {
        let effect = state.withLock { $0.effects[command.description] }
        effect?()
        let answer: CommandResult? = state.withLock { state in
            state.calls.append(command)
            guard var results = state.answers[command.description], let first = results.first else { return nil }
            if results.count > 1 {
                results.removeFirst()
                state.answers[command.description] = results
            }
            return first
        }
        guard let answer else {
            Issue.record("FakeRunner: no answer scripted for \(command)")
            return CommandResult(status: .exited(127), standardError: Array("not scripted\n".utf8))
        }
        return answer
    }

    func run(_ command: Command, inputFrom input: FileDescriptor) async throws(CommandError) -> CommandResult {
        try? input.close()
        return try await run(command, input: nil)
    }

    func run(_ command: Command, outputTo output: FileDescriptor) async throws(CommandError) -> CommandResult {
        try? output.close()
        return try await run(command, input: nil)
    }

    func pipe(_ producer: Command, into consumer: Command) async throws(CommandError) -> PipelineResult {
        PipelineResult(producer: try await run(producer, input: nil), consumer: try await run(consumer, input: nil))
    }
}

extension CommandResult {
    /// Exit 0 with `text` on standard output.
    static func output(_ text: String) -> CommandResult {
        CommandResult(status: .exited(0), standardOutput: Array(text.utf8))
    }
}

/// "Mounts" by copying a fixture tree into the mount point, and records the
/// calls; unmounting removes what is there, and keeps its files' bytes by
/// path inside the mount for a test to read (`leftOnMedium`).
final class FakeMounter: Mounter {
    struct Call: Equatable {
        var device: String
        var target: String
        var readOnly: Bool
        var options = ""
    }
    private let state = Mutex<(mounts: [Call], unmounts: [String], contents: [String: String], left: [String: Data])>(
        ([], [], [:], [:]))

    /// Serves the tree at `directory` as the contents of `device`.
    func serve(_ device: String, from directory: String) {
        state.withLock { $0.contents[device] = directory }
    }

    var mounts: [Call] { state.withLock { $0.mounts } }
    var unmounts: [String] { state.withLock { $0.unmounts } }
    /// The files the last unmount found, by path inside the mount.
    var leftOnMedium: [String: Data] { state.withLock { $0.left } }

    func mount(device: String, on target: String, type: String, readOnly: Bool, options: String) throws(MountError) {
        let source = state.withLock { state in
            state.mounts.append(Call(device: device, target: target, readOnly: readOnly, options: options))
            return state.contents[device]
        }
        guard let source else { return }
        let manager = FileManager.default
        for name in (try? manager.contentsOfDirectory(atPath: source)) ?? [] {
            try? manager.copyItem(atPath: source + "/" + name, toPath: target + "/" + name)
        }
    }

    func remount(_ target: String, readOnly: Bool) throws(MountError) {
        state.withLock { state in
            if let last = state.mounts.lastIndex(where: { $0.target == target }) { state.mounts[last].readOnly = readOnly }
        }
    }

    func unmount(_ target: String, lazy: Bool) throws(MountError) {
        let manager = FileManager.default
        var left: [String: Data] = [:]
        for path in (manager.subpaths(atPath: target) ?? []) {
            if let bytes = manager.contents(atPath: target + "/" + path) { left[path] = bytes }
        }
        state.withLock { state in
            state.unmounts.append(target)
            state.left = left
        }
        for name in (try? manager.contentsOfDirectory(atPath: target)) ?? [] {
            try? manager.removeItem(atPath: target + "/" + name)
        }
    }

    func isMounted(_ target: String) -> Bool { false }
}

final class FakeInspector: DeviceInspector {
    let devices: [String: BlockDevice]
    /// Device nodes that are there at ferry's first look only, as the node
    /// of a stick pulled out mid-visit is.
    let pulledMidVisit: Set<String>
    private let looks = Mutex<[String: Int]>([:])

    init(devices: [String: BlockDevice], pulledMidVisit: Set<String> = []) {
        self.devices = devices
        self.pulledMidVisit = pulledMidVisit
    }

    func isPresent(devnode: String) -> Bool {
        guard devices[devnode] != nil else { return false }
        guard pulledMidVisit.contains(devnode) else { return true }
        return looks.withLock { looks in
            looks[devnode, default: 0] += 1
            return looks[devnode] == 1
        }
    }

    func inspect(devnode: String) throws(DeviceError) -> BlockDevice {
        guard let device = devices[devnode] else { throw DeviceError(devnode: devnode, code: .missing) }
        return device
    }
}

struct FixedClock: WallClock {
    var date = Date(timeIntervalSince1970: 1_790_000_000)
    func now() -> Date { date }
}

struct FixedNNCP: NNCPConfigSource {
    var config: NNCPConfig
    func load(path: String, configKey: String?) async throws -> NNCPConfig { config }
}

/// Three nodes' worth of keys, and each node's view of the others.
struct TestNodes {
    var seeds: [String: [UInt8]] = [:]

    init(_ names: [String] = ["spooler", "backupsvr", "laptop"]) {
        for name in names { seeds[name] = Array(Curve25519.Signing.PrivateKey().rawRepresentation) }
    }

    /// The NNCP id: BLAKE2b-256 of the signing key, as NNCP makes it.
    func id(_ name: String) -> String { Base32.encode(Blake2b.hash(publicKey(name))) }

    func publicKey(_ name: String) -> [UInt8] {
        Array(try! Curve25519.Signing.PrivateKey(rawRepresentation: seeds[name]!).publicKey.rawRepresentation)
    }

    /// `name`'s NNCP config: it knows every other node, and itself as "self".
    func config(of name: String) -> NNCPConfig {
        var neighbours: [String: NNCPNode] = ["self": NNCPNode(name: "self", id: id(name), signPublicKey: publicKey(name))]
        for other in seeds.keys where other != name {
            neighbours[other] = NNCPNode(name: other, id: id(other), signPublicKey: publicKey(other))
        }
        // Stand-ins for the exchange and noise keys: 32 bytes each, as NNCP's.
        let keys = PublicKeys(
            exchpub: Base32.encode(Array(SHA256.hash(data: publicKey(name) + [1]))), signpub: Base32.encode(publicKey(name)),
            noisepub: Base32.encode(Array(SHA256.hash(data: publicKey(name) + [2]))))
        return NNCPConfig(
            path: "/etc/nncp-\(name).hjson", spool: "/var/spool/nncp", log: "", selfID: id(name), selfKeys: keys,
            signingSeed: seeds[name]!, neighbours: neighbours)
    }
}

/// A private temporary directory, removed with the value.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array((NSTemporaryDirectory() + "/ferry-test.XXXXXX").utf8CString)
        path = String(cString: mkdtemp(&template)!)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ relative: String, _ text: String) {
        let full = path + "/" + relative
        try! FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: full, contents: Data(text.utf8))
    }
}

extension BlockDevice {
    static func stick(_ devnode: String = "/dev/sdz1", uuid: String = "1111-2222", label: String = "FERRY-1", type: String = "ext4")
        -> BlockDevice
    {
        BlockDevice(
            devnode: devnode, kernelName: String(devnode.split(separator: "/").last!), size: 64 << 20,
            filesystem: FilesystemProbe(type: type, label: label, uuid: uuid))
    }
}

/// A context whose every side effect is a fake.
struct FakeWorld {
    let scratch = TemporaryDirectory()
    let runner = FakeRunner()
    let mounter = FakeMounter()
    var devices: [String: BlockDevice] = [:]
    var pulledMidVisit: Set<String> = []
    var nodes = TestNodes()

    func context(role: Role = .backupsvr, as node: String = "backupsvr", peer: String = "spooler") -> FerryContext {
        var config = FerryConfig(path: "/etc/ferry/ferry.toml", role: role)
        config.peer = peer
        config.stateDir = scratch.path + "/state"
        config.mountRoot = scratch.path + "/mnt"
        return FerryContext(
            config: config, runner: runner, inspector: FakeInspector(devices: devices, pulledMidVisit: pulledMidVisit), mounter: mounter,
            clock: FixedClock(), nncpSource: FixedNNCP(config: nodes.config(of: node)))
    }
}
