import Foundation
import Logging
import Testing

@testable import FerryCore

@Suite("State files in state-dir")
struct StateFileTests {
    let scratch = TemporaryDirectory()

    @Test("a damaged file is moved aside and named in one line, and the next write starts afresh beside it")
    func damagedSetAside() throws {
        scratch.write("acknowledged.json", "{\"peer\": [\"A\"")
        let file = StateFile<[String: Set<String>]>("acknowledged.json", stateDir: scratch.path)
        var line = ""
        #expect(file.load { line = $0 } == nil)
        #expect(
            line.hasPrefix("state file \(scratch.path)/acknowledged.json is damaged (not the JSON ferry writes); it was moved aside to "))
        #expect(!line.contains("\n"))
        let aside = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.hasPrefix("acknowledged.json.damaged-") }
        #expect(aside.count == 1)
        #expect(try String(contentsOfFile: scratch.path + "/" + aside[0], encoding: .utf8) == "{\"peer\": [\"A\"")
        #expect(try file.load() == nil, "once aside, the file is missing, not damaged")
        try file.write(["peer": ["B"]])
        #expect(try file.load() == ["peer": ["B"]])
    }

    @Test("ReceivedDatasets.record and KnownSticks.saw fail on a damaged file rather than replace it with the one new entry")
    func neverOverwrittenSilently() throws {
        let damaged = "[{\"dataset\": \"laptop/tank\""
        scratch.write(ReceivedDatasets.fileName, damaged)
        scratch.write(KnownSticks.fileName, damaged)
        let header = try StreamHeader(parsing: beginRecord(toGUID: 1, fromGUID: 0, name: "tank/root@s1"))
        let stream = StoredStream(
            id: StoredStream.id(for: header), sender: "L", dataset: try DatasetName("laptop/tank/root"), header: header, bytes: 1,
            received: "2026-12-01T00:00:00Z", applied: [])
        #expect(throws: StateFileError.self) {
            try ReceivedDatasets(stateDir: scratch.path).record(stream, pool: "a", at: Date())
        }
        let identity = StickIdentity(version: 1, uuid: "u", label: "L", enroller: "E", enrollerName: "e", enrolled: "2026-12-01T00:00:00Z")
        #expect(throws: StateFileError.self) {
            try KnownSticks(stateDir: scratch.path).saw(
                identity: identity, report: VisitReport(role: "spooler", node: "s", peer: "b", stick: "L u", started: ""))
        }
        for name in [ReceivedDatasets.fileName, KnownSticks.fileName] {
            let aside = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.hasPrefix(name + ".damaged-") }
            #expect(aside.count == 1, "\(name)")
            #expect(try String(contentsOfFile: scratch.path + "/" + aside[0], encoding: .utf8) == damaged)
        }
    }

    @Test("a damaged drive registry stays where it is and is refused, in one line")
    func damagedRegistryKept() throws {
        scratch.write(DriveRegistry.fileName, "not json")
        #expect {
            _ = try DriveRegistry(stateDir: scratch.path).load()
        } throws: { error in
            "\(error)" == "\(scratch.path)/drives.json is damaged (not a list of drives); restore it or enroll the drives again"
        }
        #expect(try String(contentsOfFile: scratch.path + "/drives.json", encoding: .utf8) == "not json")
    }

    @Test("a state-dir that cannot be made is named with its errno, not Foundation's error", arguments: ["file/state", "file"])
    func unusableStateDir(relative: String) async throws {
        scratch.write("file", "x")
        let stateDir = scratch.path + "/" + relative
        // The path of the directory that could not be made, and why.
        func named(_ error: any Error) -> Bool {
            let text = "\(error)"
            return text.contains("/file") && text.contains("Not a directory") && !text.contains("NSCocoaErrorDomain")
        }
        #expect {
            try StateFile<[String]>("too-big.json", stateDir: stateDir).write(["x"])
        } throws: { error in
            "\(error)".hasPrefix("state file \(stateDir)/too-big.json cannot be written: ") && named(error)
        }
        await #expect {
            _ = try await HostLock.acquire(.spool, stateDir: stateDir, logger: .init(label: "test"))
        } throws: { named($0) }
        #expect { _ = try StreamStore(stateDir: stateDir) } throws: { named($0) }
    }
}
