import Foundation
import SystemPackage
import Testing

@testable import FerryCore

/// A state message as backupsvr writes one: laptop/tank/root, s2 on drive
/// A (in the dock) and s1 on B (offsite).
func sampleState(created: String = "2026-11-30T10:00:00Z", offsiteCreated: String = "2026-11-29T10:00:00Z") -> LaptopState {
    LaptopState(
        host: "laptop",
        datasets: [
            ReceivedDataset(dataset: "laptop/tank/root", snapshot: "s2", created: created, received: created, pools: ["A"])
        ],
        drives: [
            LaptopDrive(
                pool: "A", place: .dock, since: "2026-11-01T00:00:00Z", retired: nil,
                datasets: [DriveDataset(dataset: "laptop/tank/root", snapshot: "s2", created: created)]),
            LaptopDrive(
                pool: "B", place: .offsite, since: "2026-11-20T00:00:00Z", retired: nil,
                datasets: [DriveDataset(dataset: "laptop/tank/root", snapshot: "s1", created: offsiteCreated)]),
        ], incompleteStreams: [], refused: [], verified: [])
}

/// Changes the first dataset of a state message's JSON object.
func firstDataset(_ change: @escaping @Sendable (inout [String: Any]) -> Void) -> @Sendable (inout [String: Any]) -> Void {
    { object in
        var state = object["state"] as! [String: Any]
        var datasets = state["datasets"] as! [[String: Any]]
        change(&datasets[0])
        state["datasets"] = datasets
        object["state"] = state
    }
}

/// `message` as JSON, with `change` applied to the object first.
func tampered(_ message: StateMessage, _ change: (inout [String: Any]) -> Void) throws -> [UInt8] {
    var object = try JSONSerialization.jsonObject(with: Data(message.bytes)) as! [String: Any]
    change(&object)
    return Array(try JSONSerialization.data(withJSONObject: object))
}

@Suite("State messages: what travels to ferrystate, decoded as hostile input")
struct StateMessageTests {
    let message = StateMessage(kind: .state, seq: 7, time: "2026-12-01T10:00:00Z", state: sampleState())

    @Test("a state message decodes to what was encoded")
    func roundTrip() throws {
        #expect(try StateMessage.decode(message.bytes) == message)
    }

    @Test(
        "hostile input is refused with one line that says why",
        arguments: [
            ("not JSON", Array("\u{1b}[2Jhello".utf8), "is not a ferry state message"),
            ("empty", [], "is not a ferry state message"),
            ("a JSON array", Array("[1,2]".utf8), "not a ferry state message"),
            (
                "deeply nested", Array((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8),
                "not a ferry state message"
            ),
        ] as [(String, [UInt8], String)])
    func garbage(what: String, bytes: [UInt8], problem: String) {
        #expect(throws: StateMessageError.self, "\(what)") { try StateMessage.decode(bytes) }
        do {
            _ = try StateMessage.decode(bytes)
        } catch {
            #expect("\(error)".contains(problem), "\(what): \(error)")
            #expect(!"\(error)".contains("\n") && !"\(error)".contains("\u{1b}"), "\(what): one printable line")
        }
    }

    @Test(
        "a well-formed message with one thing wrong is refused, naming it",
        arguments: [
            ("an unknown key", { @Sendable (o: inout [String: Any]) in o["extra"] = 1 }, "unknown key extra"),
            ("another format", { @Sendable (o: inout [String: Any]) in o["ferry-state"] = 2 }, "its format is 2"),
            ("no kind", { @Sendable (o: inout [String: Any]) in o["kind"] = nil }, "lacks kind"),
            ("an unknown kind", { @Sendable (o: inout [String: Any]) in o["kind"] = "restore" }, "not a ferry state message"),
            ("a negative seq", { @Sendable (o: inout [String: Any]) in o["seq"] = -1 }, "not a ferry state message"),
            ("the wrong body", { @Sendable (o: inout [String: Any]) in o["kind"] = "verify-result" }, "must carry its body alone"),
            ("a bad time", { @Sendable (o: inout [String: Any]) in o["time"] = "yesterday" }, "time is not an RFC 3339 time"),
            ("a dataset that climbs out", firstDataset { $0["dataset"] = "laptop/../etc" }, "state.datasets.dataset is not a dataset name"),
            (
                "a snapshot name with a slash", firstDataset { $0["snapshot"] = "s1/../../x" },
                "state.datasets.snapshot is not a snapshot name"
            ),
            ("a received time that is no time", firstDataset { $0["received"] = 12 }, "state.datasets"),
            (
                "too many datasets",
                { @Sendable (o: inout [String: Any]) in
                    var state = o["state"] as! [String: Any]
                    let one = (state["datasets"] as! [[String: Any]])[0]
                    state["datasets"] = Array(repeating: one, count: 10_001)
                    o["state"] = state
                }, "state.datasets lists more than 10000 entries"
            ),
            (
                "a host that is no node name",
                { @Sendable (o: inout [String: Any]) in
                    var state = o["state"] as! [String: Any]
                    state["host"] = "lap\ntop"
                    o["state"] = state
                }, "state.host is not a node name"
            ),
        ] as [(String, @Sendable (inout [String: Any]) -> Void, String)])
    func oneThingWrong(what: String, change: @Sendable (inout [String: Any]) -> Void, problem: String) throws {
        let bytes = try tampered(message, change)
        do {
            _ = try StateMessage.decode(bytes)
            Issue.record("\(what): taken")
        } catch {
            #expect("\(error)".contains(problem), "\(what): \(error)")
        }
    }

    @Test("the fuzzer's seeds are messages ferry takes", arguments: ["state.json", "verify-request.json"])
    func seeds(name: String) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let bytes = try Data(contentsOf: root.appendingPathComponent("fuzz/state-message/" + name))
        let message = try StateMessage.decode(Array(bytes))
        #expect(message.state != nil || message.request?.manifest.entries.count == 3)
    }

    @Test("a message larger than the limit is refused before it is parsed")
    func tooLarge() {
        #expect { try StateMessage.decode(Array(repeating: 32, count: 1025), limit: 1024) } throws: {
            "\($0)".contains("larger than 1024 bytes")
        }
    }

    @Test("a verify request whose manifest is unsorted, repeats a path, or carries a bad digest is refused")
    func badManifest() throws {
        let file = ManifestEntry(path: Data("b".utf8), type: .file, size: 1, mode: 0o644, sha256: String(repeating: "a", count: 64))
        func request(_ entries: [ManifestEntry]) -> [UInt8] {
            StateMessage(
                kind: .verifyRequest, seq: 0, time: "2026-12-01T10:00:00Z",
                request: VerifyRequest(
                    requested: "2026-12-01T10:00:00Z", pool: "A",
                    manifest: Manifest(dataset: "laptop/tank/root", snapshot: "s2", entries: entries))
            ).bytes
        }
        var early = file
        early.path = Data("a".utf8)
        #expect(try StateMessage.decode(request([early, file])).request?.manifest.entries.count == 2)
        for (entries, problem) in [
            ([file, early], "not sorted"), ([file, file], "not sorted"),
            ([ManifestEntry(path: Data("c".utf8), type: .file, size: 1, mode: 0, sha256: "zz")], "64 hex digits"),
            ([ManifestEntry(path: Data(), type: .directory, size: 0, mode: 0)], "empty or too long"),
        ] as [([ManifestEntry], String)] {
            #expect { try StateMessage.decode(request(entries)) } throws: { "\($0)".contains(problem) }
        }
    }
}

/// A laptop (or backupsvr) whose NNCP knows backupsvr, the spooler and the laptop.
struct StateHandlerWorld {
    let world = FakeWorld()

    func context(_ role: Role) -> FerryContext {
        var context = world.context(role: role, as: role == .laptop ? "laptop" : "backupsvr")
        context.config.send.backupsvr = "backupsvr"
        context.config.send.host = "laptop"
        context.config.send.datasets = ["tank/root"]
        context.config.receive.senders = ["laptop": "laptop"]
        return context
    }

    func nncp(_ role: Role) -> NNCPConfig { world.nodes.config(of: role == .laptop ? "laptop" : "backupsvr") }

    /// Runs the handler as nncp-toss would, with `bytes` on standard input.
    func handle(_ role: Role, from sender: String, _ bytes: [UInt8]) async throws -> String {
        let path = world.scratch.path + "/input-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let input = try FileDescriptor.open(FilePath(path), .readOnly)
        defer { try? input.close() }
        return try await StateHandler(context: context(role), nncp: nncp(role)).handle(senderID: world.nodes.id(sender), input: input)
    }

    func known() -> KnownBackupsvrState? {
        StateFile<KnownBackupsvrState>(KnownBackupsvrState.fileName, stateDir: world.scratch.path + "/state").load { Issue.record("\($0)") }
    }
}

@Suite("ferry state: who may send what, and the state only moves forward")
struct StateHandlerTests {
    @Test("the laptop takes backupsvr's state, ignores an older one, and refuses the spooler's with one line, for good")
    func senders() async throws {
        let bed = StateHandlerWorld()
        let newer = StateMessage(kind: .state, seq: 5, time: "2026-12-01T10:00:00Z", state: sampleState())
        #expect(try await bed.handle(.laptop, from: "backupsvr", newer.bytes).contains("took backupsvr's state seq 5"))
        var older = newer
        older.seq = 4
        older.state?.datasets = []
        #expect(try await bed.handle(.laptop, from: "backupsvr", older.bytes).contains("ignored backupsvr's state seq 4"))
        #expect(bed.known()?.seq == 5)
        #expect(bed.known()?.state == sampleState())

        var forged = newer
        forged.seq = 99
        do {
            _ = try await bed.handle(.laptop, from: "spooler", forged.bytes)
            Issue.record("the spooler's state was taken")
        } catch let error as StateMessageError {
            #expect(error.description == "state message refused: it comes from spooler, and only backupsvr ([send].backupsvr) may send it")
            #expect(error.exitStatus == .done, "exit 0: nncp-toss drops it instead of retrying it on every toss")
        }
        #expect(bed.known()?.seq == 5)
        let refused = StateFile<[RefusedMessage]>(RefusedMessage.fileName, stateDir: bed.world.scratch.path + "/state").load {
            Issue.record("\($0)")
        }
        #expect(refused?.map(\.sender) == ["spooler"])
    }

    @Test("input past the limit is refused for good, and read in chunks, not in one buffer of the limit's size")
    func bounded() async throws {
        let bed = StateHandlerWorld()
        await #expect { try await bed.handle(.backupsvr, from: "laptop", Array(repeating: 32, count: StateMessage.limit + 10)) } throws: {
            "\($0)" == "state message refused: it is larger than \(StateMessage.limit) bytes"
        }
        let path = bed.world.scratch.path + "/small"
        FileManager.default.createFile(atPath: path, contents: Data("{}".utf8))
        let input = try FileDescriptor.open(FilePath(path), .readOnly)
        defer { try? input.close() }
        #expect(try StateHandler.read(input, upTo: StateMessage.requestLimit + 1) == Array("{}".utf8))
    }

    @Test("backupsvr takes a verify result from a configured sender for its own datasets only, and never a state message")
    func backupsvr() async throws {
        let bed = StateHandlerWorld()
        var result = VerifyResult(
            dataset: "laptop/tank/root", snapshot: "s2", pool: "A", requested: "2026-12-01T10:00:00Z", compared: "2026-12-01T11:00:00Z")
        result.equal = true
        let message = StateMessage(kind: .verifyResult, seq: 0, time: "2026-12-01T11:00:00Z", result: result)
        #expect(try await bed.handle(.backupsvr, from: "laptop", message.bytes).contains("equal"))
        #expect(VerifyResults(stateDir: bed.world.scratch.path + "/state").load() == [result])
        var other = message
        other.result?.dataset = "someone/tank/root"
        await #expect { try await bed.handle(.backupsvr, from: "laptop", other.bytes) } throws: {
            "\($0)".contains("may report only on datasets under its prefix")
        }
        await #expect { try await bed.handle(.backupsvr, from: "spooler", message.bytes) } throws: {
            "\($0)".contains("comes from spooler, which is not listed in [receive].senders")
        }
        let state = StateMessage(kind: .state, seq: 1, time: "2026-12-01T10:00:00Z", state: sampleState())
        await #expect { try await bed.handle(.backupsvr, from: "laptop", state.bytes) } throws: {
            "\($0)".contains("a state message has no business on a backupsvr")
        }
    }
}

@Suite("The laptop's view and its warnings")
struct LaptopViewUnitTests {
    func view(_ state: LaptopState?, now: String, verified: [VerifyResult] = [], configure: (inout FerryConfig) -> Void = { _ in })
        -> (view: LaptopView, warnings: [String])
    {
        var config = FerryConfig(path: "/etc/ferry/ferry.toml", role: .laptop)
        configure(&config)
        let known = state.map {
            KnownBackupsvrState(node: "backupsvr", nodeID: "X", seq: 1, time: now, received: now, state: $0)
        }
        return LaptopView.make(
            config: config, host: "laptop", known: known, marks: ["tank/root": "s2"], verified: verified, refusedMessages: [],
            now: Date(rfc3339: now)!)
    }

    @Test("where each snapshot is: sent, reached backupsvr, on which drives, and where those are")
    func places() {
        let made = view(sampleState(), now: "2026-12-01T10:00:00Z").view
        #expect(made.datasets.count == 1)
        let dataset = made.datasets[0]
        #expect(dataset.sent == "s2" && dataset.reached == "s2" && dataset.reachedPools == ["A"])
        #expect(dataset.drives.map(\.pool) == ["A", "B"])
        #expect(dataset.drives.map(\.place) == [.dock, .offsite])
        #expect(dataset.drives.map(\.snapshot) == ["s2", "s1"])
        #expect(made.lines.contains("    drive B: @s1, offsite since 2026-11-20T00:00:00Z"))
    }

    @Test("nothing on a drive for dataset-warn-after, and nothing offsite newer than rotate-after, are warnings")
    func warnings() {
        let fresh = view(sampleState(), now: "2026-12-01T10:00:00Z").warnings
        #expect(!fresh.contains { $0.contains("reached a backup drive") || $0.contains("offsite drive holds") }, "\(fresh)")
        let late = view(sampleState(), now: "2026-12-20T10:00:00Z").warnings
        #expect(late.contains { $0.hasPrefix("nothing of tank/root has reached a backup drive for more than 7d") }, "\(late)")
        #expect(late.contains { $0.hasPrefix("no offsite drive holds a snapshot of tank/root newer than 14d") }, "\(late)")
        let tighter = view(sampleState(), now: "2026-12-01T10:00:00Z") { $0.rotation.rotateAfter = .seconds(86400) }.warnings
        #expect(tighter.contains { $0.hasPrefix("no offsite drive holds a snapshot of tank/root newer than 1d") }, "\(tighter)")
        var none = sampleState()
        none.drives = []
        #expect(view(none, now: "2026-12-01T10:00:00Z").warnings.contains("no offsite drive holds a snapshot of tank/root yet"))
        #expect(
            view(nil, now: "2026-12-01T10:00:00Z").warnings.contains { $0.hasPrefix("no state from backupsvr has reached this laptop yet") }
        )
    }

    @Test("a dataset never verified, or last verified equal longer ago than verify-warn-after, is a warning")
    func verifyWarnings() {
        #expect(
            view(sampleState(), now: "2026-12-01T10:00:00Z").warnings.contains {
                $0 == "laptop/tank/root has not been verified yet (ferry verify laptop/tank/root on backupsvr)"
            })
        var result = VerifyResult(
            dataset: "laptop/tank/root", snapshot: "s2", pool: "A", requested: "2026-09-01T10:00:00Z", compared: "2026-09-01T11:00:00Z")
        result.equal = true
        let old = view(sampleState(), now: "2026-12-01T10:00:00Z", verified: [result]).warnings
        #expect(old.contains { $0.hasPrefix("laptop/tank/root was last verified equal 2026-09-01T11:00:00Z, more than 90d ago") }, "\(old)")
        let recent = view(sampleState(), now: "2026-10-01T10:00:00Z", verified: [result]).warnings
        #expect(!recent.contains { $0.contains("verified") }, "\(recent)")
    }

    @Test("verify-warn-after is parsed once into a duration; a bad one is one line naming the file and the key")
    func config() throws {
        let parsed = try FerryConfig.parse("role = \"laptop\"\n[status]\nverify-warn-after = \"30d\"\n", path: "/f.toml")
        #expect(parsed.status.verifyWarnAfter == .seconds(30 * 86400))
        #expect(try FerryConfig.parse("role = \"laptop\"\n", path: "/f.toml").status.verifyWarnAfter == .seconds(90 * 86400))
        #expect { try FerryConfig.parse("role = \"laptop\"\n[status]\nverify-warn-after = \"soon\"\n", path: "/f.toml") } throws: {
            "\($0)" == "/f.toml: key \"status.verify-warn-after\" is \"soon\"; write a number and a unit, such as 90s, 30m, 6h or 14d"
        }
    }
}

@Suite("The manifest walker and the comparison, on a plain directory")
struct ManifestTests {
    @Test("files, directories, links (never followed), a FIFO and a name that is not UTF-8, sorted by path bytes")
    func walk() throws {
        let scratch = TemporaryDirectory()
        scratch.write("tree/b/inner", "inner\n")
        scratch.write("tree/a", "hello\n")
        let tree = scratch.path + "/tree"
        symlink("/etc/passwd", tree + "/link")
        symlink("b", tree + "/dirlink")
        mkfifo(tree + "/fifo", 0o600)
        let odd: [UInt8] = Array((tree + "/caf").utf8) + [0xE9, 0]
        let fd = odd.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o640) } }
        close(fd)
        chmod(tree + "/a", 0o600)
        let entries = try ManifestWalker().entries(under: tree)
        #expect(entries.map(\.shownPath) == ["a", "b", "b/inner", "caf\\xe9", "dirlink", "fifo", "link"])
        #expect(entries[0].type == .file && entries[0].size == 6 && entries[0].mode == 0o600)
        #expect(entries[0].sha256 == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        #expect(entries[3].path == Data(Array("caf".utf8) + [0xE9]))
        #expect(entries[4].type == .symlink && entries[4].target == Data("b".utf8), "a link to a directory is not walked into")
        #expect(entries[5].type == .fifo, "a FIFO is listed, never opened")
        #expect(entries[6].type == .symlink && entries[6].target == Data("/etc/passwd".utf8) && entries[6].sha256 == nil)
        #expect(throws: ManifestError.self) { try ManifestWalker(entryLimit: 3).entries(under: tree) }
    }

    @Test("the comparison lists the first differences and counts the rest")
    func comparison() {
        func file(_ name: String, _ digest: Character = "a", mode: UInt32 = 0o644) -> ManifestEntry {
            ManifestEntry(path: Data(name.utf8), type: .file, size: 1, mode: mode, sha256: String(repeating: digest, count: 64))
        }
        #expect(ManifestComparison(drive: [file("a"), file("b")], laptop: [file("a"), file("b")]).equal)
        let mixed = ManifestComparison(
            drive: [file("a"), file("b", "b"), file("d")], laptop: [file("a", mode: 0o600), file("b"), file("c")])
        #expect(
            mixed.differences.map(\.line) == [
                "a: differs in mode", "b: differs in sha256", "c: only on the laptop", "d: only on the drive",
            ])
        let many = ManifestComparison(drive: (0..<30).map { file("f\($0)") }, laptop: [])
        #expect(many.differences.count == 20 && many.differencesTotal == 30)
    }
}
