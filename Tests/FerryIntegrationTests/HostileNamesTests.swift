import FerryCore
import Foundation
import Testing

/// The raw names of a directory, as readdir gives them (FileManager would
/// decode them lossily).
func rawNames(_ path: String) -> [[UInt8]] {
    guard let stream = opendir(path) else { return [] }
    defer { closedir(stream) }
    var names: [[UInt8]] = []
    while let entry = readdir(stream) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
        if name != [0x2E] && name != [0x2E, 0x2E] { names.append(name) }
    }
    return names
}

/// Calls `body` with `bytes` as a NUL-terminated path.
func withRawPath(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> Int32) -> Int32 {
    (bytes + [0]).withUnsafeBufferPointer { buffer in buffer.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
}

@Suite(
    "Hostile names and bounds in the stick's nncp tree, on real loop-device sticks", .tags(.integration), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly))
struct HostileNamesTests {
    @Test(
        "a symlink, FIFO and device node named with bytes that are not UTF-8 are removed at every level of nncp/, a directory so named is left; the log shows them escaped"
    )
    func namesThatAreNotUTF8() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let spooler = try bed.nodeID("spooler")
            let backupsvr = try bed.nodeID("backupsvr")
            let levels = ["nncp", "nncp/\(backupsvr)", "nncp/\(backupsvr)/\(spooler)"]
            try bed.tamper(stick) { root in
                try FileManager.default.createDirectory(atPath: "\(root)/\(levels[2])", withIntermediateDirectories: true)
                for level in levels {
                    let directory = Array("\(root)/\(level)/".utf8)
                    try #require(withRawPath(directory + Array("sym".utf8) + [0xFF]) { symlink("/etc/passwd", $0) } == 0)
                    try #require(withRawPath(directory + Array("fifo".utf8) + [0xFE]) { mkfifo($0, 0o600) } == 0)
                    try #require(withRawPath(directory + Array("dev".utf8) + [0xFD]) { mknod($0, S_IFCHR | 0o600, (1 << 8) | 3) } == 0)
                    try #require(withRawPath(directory + Array("dir".utf8) + [0xFF, 0x1B]) { mkdir($0, 0o700) } == 0)
                }
            }
            let handle = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(handle.status == 0, "\(handle.error)")
            let removed = try bed.lastVisit("spooler").removed
            #expect(Set(removed) == Set(levels.flatMap { ["\($0)/sym\\xFF", "\($0)/fifo\\xFE", "\($0)/dev\\xFD"] }), "\(removed)")
            for level in levels {
                #expect(handle.error.contains("removed \(level)/sym\\xFF from the stick"), "\(handle.error)")
                #expect(handle.error.contains("\(level)/dir\\xFF\\u{1B} on the stick is a directory that is not NNCP's"))
            }
            let controls = handle.error.unicodeScalars.filter { $0.value < 0x20 && $0 != "\n" }
            #expect(controls.isEmpty, "\(controls.map(\.value))")
            try bed.tamper(stick) { root in
                for level in levels {
                    let names = rawNames("\(root)/\(level)")
                    #expect(
                        !names.contains {
                            $0.starts(with: Array("sym".utf8)) || $0.starts(with: Array("fifo".utf8)) || $0.starts(with: Array("dev".utf8))
                        }, "\(level): \(names)")
                    #expect(names.contains(Array("dir".utf8) + [0xFF, 0x1B]), "\(level): \(names)")
                }
            }
            #expect(try await bed.ferry("backupsvr", "handle", stick.devnode).status == 0)
        }
    }

    /// Puts 100,001 names into `nncp/` as hard links (ext4 allows 65,000 to
    /// one inode): no inode per name, so a small stick holds them.
    func overfill(_ root: String) throws {
        let directory = root + "/nncp"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for index in 0...SafeDirectory.entryLimit {
            let source = "\(directory)/0-\(index / 60_000)"
            if index % 60_000 == 0 {
                try #require(FileManager.default.createFile(atPath: source, contents: nil))
                continue
            }
            try #require(link(source, "\(directory)/\(index)") == 0)
        }
    }

    @Test(
        "a stick of ours with 100,001 entries in nncp/ fails, and its journal tells the other host why; a stick not ours with the same gets nothing written"
    )
    func unusableStick() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            for host in ["spooler", "backupsvr"] {
                #expect(try await bed.ferry(host, "handle", stick.devnode).status == 0)
            }
            try bed.tamper(stick, overfill)
            let failed = try await bed.ferry("backupsvr", "handle", stick.devnode)
            #expect(failed.status == 1)
            #expect(failed.error.contains("holds more than 100000 entries, the most ferry lists in one directory"), "\(failed.error)")
            #expect(!failed.error.contains("safe to remove"))
            #expect(try bed.lastVisit("backupsvr").failure?.contains("holds more than 100000 entries") == true)

            let journal = try await bed.ferry("spooler", "journal", stick.devnode, "--json")
            #expect(journal.output.contains("\"unusable\""), "\(journal.output)")
            let atSpooler = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(atSpooler.status == 1)
            #expect(atSpooler.error.contains("backupsvr could not use this stick"), "\(atSpooler.error)")
            let status = try await bed.status("spooler")
            #expect(
                status.warnings.contains { $0.contains("backupsvr could not use this stick") && $0.contains("100000 entries") },
                "\(status.warnings)")
            #expect(status.warnings.contains { $0.contains("could not use the stick") })

            let stranger = try await bed.stick("stranger")
            try bed.tamper(stranger, overfill)
            let before = try await bed.sh("/usr/bin/sha256sum", stranger.image).output
            let refused = try await bed.ferry("backupsvr", "handle", stranger.devnode)
            #expect(refused.status == 2, "\(refused.error)")
            #expect(try await bed.sh("/usr/bin/sha256sum", stranger.image).output == before, "a stick not ours was written")
        }
    }

    @Test("a damaged state file: ferry status says which, moves it aside and exits 1; the next run starts it afresh")
    func damagedStateFile() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
            let file = "\(bed.directory)/spooler/state/sticks.json"
            try "{\"not\": [a list".write(toFile: file, atomically: false, encoding: .utf8)
            let status = try await bed.ferry("spooler", "status")
            #expect(status.status == 1)
            let lines = status.error.split(separator: "\n")
            #expect(lines.count == 1, "\(status.error)")
            #expect(status.error.hasPrefix("ferry: state file \(file) is damaged"), "\(status.error)")
            #expect(status.error.contains("moved aside to \(file).damaged-"))
            let aside = try FileManager.default.contentsOfDirectory(atPath: "\(bed.directory)/spooler/state").filter {
                $0.hasPrefix("sticks.json.damaged-")
            }
            #expect(aside.count == 1)
            #expect(try String(contentsOfFile: "\(bed.directory)/spooler/state/\(aside[0])", encoding: .utf8) == "{\"not\": [a list")
            #expect(try await bed.ferry("spooler", "status").status == 0)
            #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
            #expect(FileManager.default.fileExists(atPath: file))
        }
    }
}

@Suite("The ferry binary on configs that once aborted it (fuzz findings)")
struct ConfigFindingsTests {
    static let findings = repositoryRoot + "/Tests/fuzz/config"

    static var inputs: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: findings)) ?? []).sorted()
    }

    @Test("each finding gives one error line naming the file and exit 1, not a signal", arguments: inputs)
    func finding(name: String) async throws {
        let path = Self.findings + "/" + name
        let run = try await FerryBinary.run(["status", "--config", path])
        #expect(run.status == 1)
        #expect(run.error.split(separator: "\n").count == 1, "\(run.error)")
        #expect(run.error.hasPrefix("ferry: \(path) is not valid TOML at line"), "\(run.error)")
    }

    @Test("the findings are there")
    func present() {
        #expect(Self.inputs.count >= 2)
    }
}
