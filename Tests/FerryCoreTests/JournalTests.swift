import Crypto
import Foundation
import Testing

@testable import FerryCore

/// The process's peak resident set size so far (getrusage ru_maxrss).
func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

func randomBytes(_ count: Int) throws -> [UInt8] {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
    defer { try? handle.close() }
    return Array(try handle.read(upToCount: count) ?? Data())
}

@Suite("The signed journal")
struct JournalTests {
    let scratch = TemporaryDirectory()
    let nodes = TestNodes()

    struct Visit: Codable, Equatable {
        var packets: Int
        var note: String
    }

    func writer(_ node: String, limit: Int = Journal.sizeLimit) throws -> JournalWriter {
        JournalWriter(directory: try SafeDirectory(path: scratch.path), nncp: nodes.config(of: node), clock: FixedClock(), sizeLimit: limit)
    }

    func verify(as node: String = "spooler") throws -> VerifiedJournal {
        try JournalReader.verify(directory: SafeDirectory(path: scratch.path), nncp: nodes.config(of: node))
    }

    var path: String { scratch.path + "/journal" }

    func lines() throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func write(_ lines: [String]) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
    }

    /// Five records: backupsvr and the spooler take turns.
    func fiveRecords() throws {
        for seq in 1...5 {
            try writer(seq % 2 == 1 ? "backupsvr" : "spooler").append(
                event: "visit", role: "x", data: Visit(packets: seq * 10, note: "visit \(seq)"))
        }
    }

    @Test("records from two nodes chain and verify on either node")
    func roundTrip() throws {
        try fiveRecords()
        for reader in ["spooler", "backupsvr"] {
            let journal = try verify(as: reader)
            #expect(journal.problems.isEmpty, "\(journal.problems)")
            #expect(journal.records.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(journal.records.allSatisfy { $0.trusted })
        }
        let latest = try #require(try verify().latestTrusted(event: "visit", nodeID: nodes.id("backupsvr")))
        #expect(latest.seq == 5)
        #expect(latest.decode(Visit.self) == Visit(packets: 50, note: "visit 5"))
        #expect(try lines()[0].hasSuffix("\"}"))
        #expect(try lines()[0].contains(#""prev":"""#))
    }

    @Test("an edited number is caught at its seq, and the next record's link with it")
    func edited() throws {
        try fiveRecords()
        var all = try lines()
        all[2] = all[2].replacingOccurrences(of: #""packets":30"#, with: #""packets":31"#)
        try write(all)
        let journal = try verify()
        #expect(journal.problems.map(\.seq) == [3, 4])
        #expect(journal.problems[0].problem.contains("edited or forged"))
        #expect(journal.records.filter { !$0.trusted }.map(\.seq) == [3, 4])
        #expect(journal.records.filter(\.trusted).map(\.seq) == [1, 2, 5])
    }

    @Test("a deleted middle record is caught at the record after it")
    func deleted() throws {
        try fiveRecords()
        var all = try lines()
        all.remove(at: 2)
        try write(all)
        let journal = try verify()
        #expect(journal.problems.map(\.seq) == [4])
        #expect(journal.problems[0].problem.contains("does not follow seq 2"))
    }

    @Test("two swapped records are caught")
    func swapped() throws {
        try fiveRecords()
        var all = try lines()
        all.swapAt(1, 2)
        try write(all)
        let journal = try verify()
        #expect(journal.problems.map(\.seq) == [3, 2, 4])
        #expect(journal.records.filter(\.trusted).map(\.seq) == [1, 5])
    }

    @Test("a record signed by a node the reader does not know is reported as such")
    func stranger() throws {
        try fiveRecords()
        // The stranger knows the others' keys, so its writer chains to their
        // records; they do not know the stranger's.
        let strangers = TestNodes(["stranger"])
        var stranger = strangers.config(of: "stranger")
        stranger.neighbours.merge(nodes.config(of: "laptop").neighbours.filter { $0.key != "self" }) { mine, _ in mine }
        try JournalWriter(directory: SafeDirectory(path: scratch.path), nncp: stranger, clock: FixedClock())
            .append(event: "visit", role: "x", data: Visit(packets: 1, note: "forged"))
        let journal = try verify()
        #expect(journal.problems.map(\.seq) == [6])
        #expect(journal.problems[0].problem.contains("which this host does not know"))
        #expect(journal.latestTrusted(event: "visit", nodeID: strangers.id("stranger")) == nil)
    }

    @Test("a line torn mid-write is reported; the next append sets it aside and the journal verifies")
    func torn() throws {
        try fiveRecords()
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        let size = try handle.seekToEnd()
        try handle.truncate(atOffset: size - 40)
        try handle.close()
        let cut = whole.prefix(whole.count - 40)
        let lastNewline = try #require(cut.lastIndex(of: 0x0A))
        let journal = try verify()
        #expect(journal.records.filter(\.trusted).map(\.seq) == [1, 2, 3, 4])
        #expect(journal.problems.count == 1)
        #expect(journal.problems[0].problem.contains("torn"))
        #expect(try writer("spooler").append(event: "visit", role: "x", data: Visit(packets: 6, note: "after")) == 5)
        let repaired = try verify()
        #expect(repaired.problems.isEmpty, "\(repaired.problems)")
        #expect(repaired.records.map(\.seq) == [1, 2, 3, 4, 5])
        let tornPart = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/journal.torn"))
        #expect(tornPart == cut[(lastNewline + 1)...] + Data([0x0A]))
        let repairedBytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(repairedBytes.prefix(lastNewline + 1) == whole.prefix(lastNewline + 1), "the whole lines are kept as they were")
    }

    @Test("50 MiB of garbage, a 10 MiB line and invalid UTF-8 do not crash the reader or cost the good records; it stops at its limit")
    func garbage() throws {
        try fiveRecords()
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0xFF, 0xFE, 0x00, 0x0A]))
        try handle.write(contentsOf: Data(repeating: UInt8(ascii: "x"), count: 10 << 20) + Data([0x0A]))
        for _ in 0..<50 {
            try handle.write(contentsOf: Data(try randomBytes(1 << 20)))
        }
        try handle.close()
        let peakBefore = peakResidentBytes()
        let journal = try verify()
        // The file is over 60 MiB; a reader that held it whole would raise
        // the process's peak by far more than a few chunks.
        #expect(peakResidentBytes() - peakBefore < 24 << 20)
        #expect(journal.records.filter(\.trusted).map(\.seq) == [1, 2, 3, 4, 5])
        #expect(journal.problems.first?.problem.contains("not UTF-8") == true)
        #expect(journal.incomplete, "reading stops at \(VerifiedJournal.readLimit) bytes")
        #expect(journal.problems.last?.problem.contains("the rest was not read") == true)
        #expect(!journal.isClean)
    }

    @Test("a reader keeps the newest trusted record of each node and event, and lists records without their lines past its budget")
    func boundedListing() throws {
        let writer = try writer("backupsvr", limit: 1 << 30)
        let note = String(repeating: "n", count: 4000)
        for seq in 1...400 {
            try writer.append(event: seq % 2 == 0 ? "visit" : "drive", role: "x", data: Visit(packets: seq, note: note))
        }
        let journal = try verify()
        #expect(journal.problems.isEmpty && !journal.incomplete)
        #expect(journal.records.count == 400)
        #expect(journal.records.last?.line.isEmpty == true, "past the budget only the header is listed")
        #expect(journal.records.reduce(0) { $0 + $1.line.count } <= VerifiedJournal.listedLineBytes)
        #expect(journal.latestTrusted.map(\.seq) == [399, 400])
        #expect(journal.latestTrusted(event: "visit", nodeID: nodes.id("backupsvr"))?.decode(Visit.self)?.packets == 400)
        #expect(try journal.jsonLines().last?.contains(#""data-omitted":true"#) == true)
    }

    @Test("forged lines at the end (seq 1, seq 2^53, a copy of an old record) are set aside: the next record follows the last honest one")
    func forgedTail() throws {
        try fiveRecords()
        var all = try lines()
        let copy = all[1]
        all.append(all[4].replacingOccurrences(of: #""seq":5"#, with: #""seq":1"#))
        all.append(all[4].replacingOccurrences(of: #""seq":5"#, with: #""seq":9007199254740992"#))
        all.append(copy)
        try write(all)
        #expect(try writer("spooler").append(event: "visit", role: "x", data: Visit(packets: 6, note: "")) == 6)
        let journal = try verify()
        #expect(journal.isClean, "\(journal.problems)")
        #expect(journal.records.map(\.seq) == [1, 2, 3, 4, 5, 6])
        let torn = try String(contentsOfFile: scratch.path + "/journal.torn", encoding: .utf8)
        #expect(torn.contains(#""seq":9007199254740992"#))
        #expect(torn.contains(copy))
    }

    @Test("more forged lines at the end than the writer sets aside: the journal is compacted from its trusted records")
    func forgedTailBeyondRepair() throws {
        try fiveRecords()
        var all = try lines()
        all += Array(
            repeating: all[4].replacingOccurrences(of: #""seq":5"#, with: #""seq":6"#), count: JournalWriter.untrustedLineLimit + 1)
        try write(all)
        #expect(try writer("spooler").append(event: "visit", role: "x", data: Visit(packets: 7, note: "")) == 7)
        let journal = try verify()
        #expect(journal.isClean, "\(journal.problems)")
        #expect(journal.records.filter { !$0.fromSummary }.map(\.event) == ["summary", "visit"])
        #expect(journal.latestTrusted(event: "visit", nodeID: nodes.id("backupsvr"))?.seq == 5)
    }

    @Test("a journal that is a symlink is refused")
    func symlink() throws {
        try "x".write(toFile: scratch.path + "/elsewhere", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: scratch.path + "/elsewhere")
        #expect { _ = try verify() } throws: { ($0 as? FileAccessError)?.code == .symlink }
        #expect { try writer("spooler").append(event: "visit", role: "x", data: Visit(packets: 1, note: "")) } throws: {
            ($0 as? FileAccessError)?.code == .symlink
        }
    }

    @Test("past its size limit the journal is compacted into a signed summary that still verifies")
    func compaction() throws {
        for seq in 1...100 {
            try writer(seq % 2 == 0 ? "spooler" : "backupsvr", limit: 4096)
                .append(event: "visit", role: "x", data: Visit(packets: seq, note: String(repeating: "n", count: 100)))
        }
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        #expect(size < 3 * 4096)
        let journal = try verify()
        #expect(journal.problems.isEmpty, "\(journal.problems)")
        #expect(journal.records.contains { $0.event == "summary" })
        #expect(journal.latestTrusted(event: "visit", nodeID: nodes.id("spooler"))?.decode(Visit.self)?.packets == 100)
        #expect(journal.latestTrusted(event: "visit", nodeID: nodes.id("backupsvr"))?.decode(Visit.self)?.packets == 99)
        let summary = try #require(journal.records.first)
        #expect(summary.event == "summary")
        let data = try #require(summary.decode(SummaryData.self))
        #expect(data.lastSeq + 1 == summary.seq)
        #expect(data.firstSeq <= data.lastSeq)
        #expect(data.replaced > 0)
        #expect(journal.records.contains { $0.fromSummary && $0.trusted })
        let last = try #require(journal.records.last)
        #expect(last.seq > 100, "the seq goes on across compactions")
        #expect(last.decode(Visit.self)?.packets == 100)
    }

    @Test("garbage at the end is set aside before the next record, and the seq goes on")
    func appendAfterGarbage() throws {
        try fiveRecords()
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("not a record\n".utf8))
        try handle.close()
        #expect(try writer("spooler").append(event: "visit", role: "x", data: Visit(packets: 6, note: "")) == 6)
        let journal = try verify()
        #expect(journal.isClean, "\(journal.problems)")
        #expect(journal.records.last?.trusted == true)
        #expect(try String(contentsOfFile: scratch.path + "/journal.torn", encoding: .utf8).contains("not a record"))
    }

    @Test("a line is the sorted-keys record with its signature last, signed over the domain and the unsigned bytes")
    func lineLayout() throws {
        try writer("backupsvr").append(event: "visit", role: "backup", data: Visit(packets: 7, note: "a/b"))
        let line = try #require(try lines().first)
        let marker = try #require(line.range(of: #","sig":""#))
        let unsigned = String(line[..<marker.lowerBound]) + "}"
        let signatureHex = String(line[marker.upperBound...].dropLast(2))
        #expect(signatureHex.count == 128)
        #expect(signatureHex.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(line.hasSuffix("\"}"))
        #expect(
            unsigned
                == #"{"data":{"note":"a/b","packets":7},"event":"visit","node":""# + nodes.config(of: "backupsvr").selfName
                + #"","node-id":""# + nodes.id("backupsvr")
                + #"","prev":"","role":"backup","seq":1,"time":""# + FixedClock().date.rfc3339 + #""}"#)
        var signature: [UInt8] = []
        var digits = signatureHex.makeIterator()
        while let high = digits.next(), let low = digits.next() {
            signature.append(UInt8(String([high, low]), radix: 16)!)
        }
        let key = try Curve25519.Signing.PublicKey(rawRepresentation: nodes.publicKey("backupsvr"))
        #expect(key.isValidSignature(signature, for: Array("ferry journal v1\n".utf8) + Array(unsigned.utf8)))
        try writer("spooler").append(event: "visit", role: "spool", data: Visit(packets: 8, note: ""))
        let second = try lines()[1]
        #expect(second.contains(#""prev":"\#(Journal.sha256(Array(line.utf8)))""#))
    }

    @Test(
        "a seq that would overflow the count, or is below 1, makes the line garbage; reader and writer go on",
        arguments: ["9223372036854775807", "9007199254740993", "0", "-1"])
    func hostileSeq(seq: String) throws {
        try fiveRecords()
        var all = try lines()
        all[4] = all[4].replacingOccurrences(of: #""seq":5"#, with: #""seq":\#(seq)"#)
        try write(all)
        #expect(try writer("spooler").append(event: "visit", role: "x", data: Visit(packets: 6, note: "")) == 5)
        let journal = try verify()
        #expect(journal.isClean, "the garbage line was set aside: \(journal.problems)")
        #expect(journal.records.map(\.seq) == [1, 2, 3, 4, 5])
        #expect(journal.records.allSatisfy { $0.trusted })
        #expect(try String(contentsOfFile: scratch.path + "/journal.torn", encoding: .utf8).contains(seq))
    }

    @Test("a 10 MiB line at the end is set aside before the next record, which follows the last honest one")
    func afterOverlongLine() throws {
        try fiveRecords()
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(repeating: UInt8(ascii: "{"), count: 10 << 20) + Data([0x0A]))
        try handle.close()
        #expect(try writer("backupsvr", limit: 1 << 30).append(event: "visit", role: "x", data: Visit(packets: 6, note: "")) == 6)
        let journal = try verify()
        #expect(journal.isClean, "\(journal.problems)")
        #expect(journal.records.map(\.seq) == [1, 2, 3, 4, 5, 6])
        #expect(journal.records.allSatisfy { $0.trusted })
    }

    @Test("an append reads only the journal's tail, however long the journal is")
    func appendReadsTail() throws {
        try fiveRecords()
        let records = try Data(contentsOf: URL(fileURLWithPath: path))
        // 64 MiB of zeros before the records, as a hole that costs no disk.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 0)
        try handle.truncate(atOffset: 64 << 20)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0x0A]) + records)
        try handle.close()
        var bytesRead = 0
        let seq = try writer("spooler", limit: 1 << 30).append(
            event: "visit", role: "x", data: Visit(packets: 6, note: ""), bytesRead: &bytesRead)
        #expect(seq == 6)
        #expect(bytesRead > 0)
        #expect(bytesRead <= 4 * JournalWriter.window)
        #expect(try verify().incomplete, "a reader stops at its limit, long before the records")
    }

    @Test("a torn tail of 50 MiB is set aside only up to the line limit")
    func longTornTail() throws {
        try fiveRecords()
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        for _ in 0..<50 {
            try handle.write(contentsOf: Data(repeating: UInt8(ascii: "x"), count: 1 << 20))
        }
        try handle.close()
        #expect(try writer("spooler").append(event: "visit", role: "x", data: Visit(packets: 6, note: "")) == 6)
        let torn = try FileManager.default.attributesOfItem(atPath: scratch.path + "/journal.torn")[.size] as! Int
        #expect(torn == Journal.lineLimit + 1)
        let journal = try verify()
        #expect(journal.problems.isEmpty, "\(journal.problems)")
        #expect(journal.records.map(\.seq) == [1, 2, 3, 4, 5, 6])
    }

    @Test("compaction keeps the summary a readable line even when the latest records are large")
    func compactionOfLargeRecords() throws {
        let events = ["visit", "drive", "enroll", "note"]
        for round in 0..<8 {
            try writer(round % 2 == 0 ? "spooler" : "backupsvr", limit: 4096).append(
                event: events[round % events.count], role: "x",
                data: Visit(packets: round, note: String(repeating: "\"", count: 150 << 10)))
        }
        let journal = try verify()
        #expect(journal.problems.isEmpty, "\(journal.problems)")
        #expect(try lines().allSatisfy { $0.utf8.count <= Journal.lineLimit })
        let last = try #require(journal.latestTrusted(event: "note", nodeID: nodes.id("backupsvr")))
        #expect(last.decode(Visit.self)?.packets == 7)
    }

    @Test("two writers appending at once take turns, and the chain stays whole")
    func concurrentWriters() throws {
        let spooler = try writer("spooler")
        let backupsvr = try writer("backupsvr")
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            for round in 0..<20 {
                _ = try? (index == 0 ? spooler : backupsvr).append(event: "visit", role: "x", data: Visit(packets: round, note: ""))
            }
        }
        let journal = try verify()
        #expect(journal.problems.isEmpty, "\(journal.problems)")
        #expect(journal.records.map(\.seq) == Array(1...40))
    }
}
