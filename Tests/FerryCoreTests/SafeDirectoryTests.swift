import Foundation
import Testing

@testable import FerryCore

@Suite("Files on an untrusted medium")
struct SafeDirectoryTests {
    let scratch = TemporaryDirectory()

    @Test("a directory that is a symlink is refused")
    func symlinkDirectory() throws {
        scratch.write("outside/identity", "{}")
        try FileManager.default.createSymbolicLink(atPath: scratch.path + "/.ferry", withDestinationPath: scratch.path + "/outside")
        let root = try SafeDirectory(path: scratch.path)
        #expect(try root.kind(of: ".ferry") == .symlink)
        #expect { _ = try root.subdirectory(".ferry") } throws: { ($0 as? FileAccessError)?.code == .symlink }
        #expect { _ = try root.subdirectory(".ferry", create: true) } throws: { ($0 as? FileAccessError)?.code == .symlink }
    }

    @Test("a file that is a symlink is never read or written through")
    func symlinkFile() throws {
        scratch.write("secret", "secret")
        try FileManager.default.createSymbolicLink(atPath: scratch.path + "/identity", withDestinationPath: scratch.path + "/secret")
        let root = try SafeDirectory(path: scratch.path)
        #expect { _ = try root.readFile("identity", limit: 100) } throws: { ($0 as? FileAccessError)?.code == .symlink }
        #expect { try root.writeFileAtomically("identity", bytes: [1]) } throws: { ($0 as? FileAccessError)?.code == .symlink }
        #expect(try String(contentsOfFile: scratch.path + "/secret", encoding: .utf8) == "secret")
    }

    @Test("a directory with 100,001 entries is refused, and the error says the limit is on entries")
    func tooManyEntries() throws {
        scratch.write("nncp/first", "")
        let directory = scratch.path + "/nncp"
        for index in 1...SafeDirectory.entryLimit {
            let fd = open("\(directory)/\(index)", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            try #require(fd >= 0)
            close(fd)
        }
        let root = try SafeDirectory(path: directory)
        #expect { _ = try root.entries() } throws: { error in
            let description = "\(error)"
            return description == "\(directory) holds more than 100000 entries, the most ferry lists in one directory"
                && !description.contains("bytes")
        }
    }

    @Test("a FIFO is refused at once rather than read")
    func fifo() throws {
        #expect(mkfifo(scratch.path + "/identity", 0o644) == 0)
        let root = try SafeDirectory(path: scratch.path)
        #expect { _ = try root.readFile("identity", limit: 100) } throws: { ($0 as? FileAccessError)?.code == .notRegularFile }
    }

    @Test("a file over the limit is refused")
    func tooLarge() throws {
        scratch.write("identity", String(repeating: "x", count: 100 * 1024))
        let root = try SafeDirectory(path: scratch.path)
        #expect { _ = try root.readFile("identity", limit: 4096) } throws: { ($0 as? FileAccessError)?.code == .tooLarge(limit: 4096) }
        #expect(try root.readFile("identity", limit: 200 * 1024).count == 100 * 1024)
    }

    @Test("names that climb or nest are refused", arguments: ["..", ".", "", "a/b", "../etc"])
    func badNames(name: String) throws {
        let root = try SafeDirectory(path: scratch.path)
        #expect { _ = try root.readFile(name, limit: 10) } throws: { ($0 as? FileAccessError)?.code == .badName }
    }

    @Test("an atomic write replaces the file and leaves no temporary behind")
    func atomicWrite() throws {
        let root = try SafeDirectory(path: scratch.path)
        try root.writeFileAtomically("state", bytes: Array("one".utf8))
        try root.writeFileAtomically("state", bytes: Array("two".utf8))
        #expect(try root.readFile("state", limit: 10) == Array("two".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == ["state"])
    }

    @Test("a copy in lands whole under its name, over a leftover temporary, and leaves no temporary behind")
    func copyIn() throws {
        let packet = Array("NNCPE".utf8) + [0, 0, 6] + (0..<20_000).map { UInt8(truncatingIfNeeded: $0) }
        scratch.write("spool/.keep", "")
        _ = FileManager.default.createFile(atPath: scratch.path + "/spool/P", contents: Data(packet))
        scratch.write("stick/nncpxfer.ferry.P", "left by a killed copy")
        let stick = try SafeDirectory(path: scratch.path + "/stick")
        #expect(try stick.copyIn(from: scratch.path + "/spool/P", as: "P", owner: nil, magic: StickVisit.packetMagic))
        #expect(FileManager.default.contents(atPath: scratch.path + "/stick/P") == Data(packet))
        #expect(try stick.entries() == ["P"])
    }

    @Test("a copy in passes over a source that is gone or is no NNCP packet, and writes nothing")
    func copyInPassesOver() throws {
        scratch.write("spool/junk", "not a packet at all")
        scratch.write("stick/.keep", "")
        let stick = try SafeDirectory(path: scratch.path + "/stick")
        #expect(try !stick.copyIn(from: scratch.path + "/spool/junk", as: "J", owner: nil, magic: StickVisit.packetMagic))
        #expect(try !stick.copyIn(from: scratch.path + "/spool/gone", as: "G", owner: nil, magic: StickVisit.packetMagic))
        #expect(try stick.entries() == [".keep"])
    }

    @Test("untrusted text is shown on one line, escaped and capped")
    func printableText() {
        #expect(printable("FERRY\n-1\u{1B}[2J") == "FERRY\\n-1\\u{1B}[2J")
        #expect(printable(String(repeating: "a", count: 500), limit: 10) == "aaaaaaaaaa…")
    }
}
