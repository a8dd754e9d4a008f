import Crypto
import Foundation

/// Appends signed records to a stick's journal, crash-safe and in constant
/// time: it reads only the journal's tail to find the last seq and hash.
public struct JournalWriter: Sendable {
    public var directory: SafeDirectory
    public var nncp: NNCPConfig
    public var clock: any WallClock
    public var sizeLimit: Int
    static let window = 64 << 10
    private static let newline = UInt8(ascii: "\n")

    public init(directory: SafeDirectory, nncp: NNCPConfig, clock: any WallClock, sizeLimit: Int = Journal.sizeLimit) {
        self.directory = directory
        self.nncp = nncp
        self.clock = clock
        self.sizeLimit = sizeLimit
    }

    /// Appends one record and returns its seq. The line is written with one
    /// write(2), then the file and the directory are fsynced.
    @discardableResult
    public func append<T: Encodable>(event: String, role: String, data: T, verified: VerifiedJournal? = nil) throws -> Int {
        var bytesRead = 0
        return try append(event: event, role: role, data: data, verified: verified, bytesRead: &bytesRead)
    }

    /// As `append(event:role:data:)`, and counts in `bytesRead` what it read
    /// of the journal to find where to chain, which the journal's length
    /// does not change.
    /// `verified` is this journal as the caller has just read it: a
    /// compaction then need not read it again.
    func append<T: Encodable>(event: String, role: String, data: T, verified: VerifiedJournal? = nil, bytesRead: inout Int) throws
        -> Int
    {
        // Another ferry on the same stick must not chain to the same record,
        // nor append to a journal that compaction is replacing.
        try directory.lockExclusively()
        defer { directory.unlock() }
        var file = try directory.openForAppending(Journal.fileName)
        var tail = TailReader(file: file)
        var size = try file.size()
        var beyondRepair = false
        if size > 0 {
            size = try setTornLineAside(&tail, size: size)
        }
        if size > 0 {
            (size, beyondRepair) = try setUntrustedTailAside(&tail, size: size)
        }
        var (lastSeq, lastHash) = size > 0 && !beyondRepair ? try chainPoint(&tail, size: size) : (0, "")
        bytesRead = tail.bytesRead
        if size > sizeLimit || beyondRepair {
            (lastSeq, lastHash) = try compact(
                lastSeq: beyondRepair ? nil : lastSeq, lastHash: lastHash, role: role,
                journal: verified ?? JournalReader.verify(directory: directory, nncp: nncp))
            file = try directory.openForAppending(Journal.fileName)
        }
        let line = try signedLine(
            UnsignedRecord(
                data: data, event: event, node: nncp.selfName, nodeID: nncp.selfID, prev: lastHash, role: role, seq: lastSeq + 1,
                time: clock.now().rfc3339))
        try file.append(line + [Self.newline])
        try file.sync()
        try directory.syncDirectory()
        return lastSeq + 1
    }

    private func signedLine<T: Encodable>(_ record: UnsignedRecord<T>) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let unsigned = Array(try encoder.encode(record))
        let signature = try nncp.sign(Journal.domain + unsigned)
        return unsigned.dropLast() + Journal.sigPrefix + Array(Hex.encode(signature).utf8) + Array("\"}".utf8)
    }

    /// Where the line ending before `end` starts: just after the newline
    /// before it, found by reading backwards in windows.
    private func lineStart(_ tail: inout TailReader, before end: Int) throws -> Int {
        var upper = end
        while upper > 0 {
            let lower = max(0, upper - Self.window)
            let bytes = try tail.read(at: lower, count: upper - lower)
            if let newline = bytes.lastIndex(of: Self.newline) { return lower + newline + 1 }
            upper = lower
        }
        return 0
    }

    /// As `lineStart`, reading no further back than `limit` bytes: nil for
    /// a longer line, which is no record.
    private func lineStart(_ tail: inout TailReader, before end: Int, within limit: Int) throws -> Int? {
        var upper = end
        while upper > 0, end - upper <= limit {
            let lower = max(0, upper - Self.window)
            let bytes = try tail.read(at: lower, count: upper - lower)
            if let newline = bytes.lastIndex(of: Self.newline) { return end - (lower + newline + 1) <= limit ? lower + newline + 1 : nil }
            upper = lower
        }
        return upper == 0 && end <= limit ? 0 : nil
    }

    /// Lines at the end that are not records this host can verify, chained
    /// to the line before them, are moved to `journal.torn` as a torn line
    /// is: a forged line (seq 1, seq 2^53, a copy of an old record) must
    /// never decide the seq or the chain of what an honest writer appends,
    /// nor make it unreadable. Returns the journal's new size; `beyondRepair`
    /// when more than `Journal.sizeLimit` bytes or `untrustedLineLimit`
    /// lines would go, and the journal is compacted from its trusted records
    /// instead.
    private func setUntrustedTailAside(_ tail: inout TailReader, size: Int) throws -> (size: Int, beyondRepair: Bool) {
        var end = size - 1
        var lines = 0
        while end >= 0 {
            guard lines < Self.untrustedLineLimit, let start = try lineStart(&tail, before: end, within: sizeLimit - (size - 1 - end))
            else { return (size, true) }
            if end - start <= Journal.lineLimit, try isTrustedLink(&tail, start: start, end: end) { break }
            lines += 1
            end = start - 1
        }
        let cut = end + 1
        guard cut < size else { return (size, false) }
        try setAside(&tail, from: cut, to: size)
        return (cut, false)
    }

    static let untrustedLineLimit = 1000

    /// Whether the line at `start..<end` is a record signed by a node this
    /// host knows, chained to the line before it as the reader checks.
    private func isTrustedLink(_ tail: inout TailReader, start: Int, end: Int) throws -> Bool {
        let line = try tail.read(at: start, count: end - start)[...]
        guard let (signed, signature) = Journal.split(line), let header = RecordHeader(line: line),
            let signer = nncp.node(id: header.nodeID), signer.isValidSignature(signature, for: signed)
        else { return false }
        guard start > 0 else { return header.event == "summary" || (header.seq == 1 && header.prev.isEmpty) }
        guard let previousStart = try lineStart(&tail, before: start - 1, within: Journal.lineLimit) else { return false }
        let previous = try tail.read(at: previousStart, count: start - 1 - previousStart)
        guard header.prev == Journal.sha256(previous) else { return false }
        return RecordHeader(line: previous).map { header.seq == $0.seq + 1 } ?? true
    }

    /// A last line without its newline was torn by a pulled stick: move it to
    /// `journal.torn` and cut the journal back to the last whole line.
    ///
    /// A torn record is never longer than a record, so only the first
    /// `Journal.lineLimit` bytes of a longer torn part are kept; and
    /// `journal.torn` starts over once it passes the journal's size limit,
    /// so that neither file grows without bound on the stick.
    private func setTornLineAside(_ tail: inout TailReader, size: Int) throws -> Int {
        guard try tail.read(at: size - 1, count: 1) != [Self.newline] else { return size }
        let start = try lineStart(&tail, before: size)
        try setAside(&tail, from: start, to: size)
        return start
    }

    /// Moves `start..<size`, the journal's end, to `journal.torn` (its first
    /// `Journal.lineLimit` bytes), and cuts the journal back to `start`.
    private func setAside(_ tail: inout TailReader, from start: Int, to size: Int) throws {
        let torn = try directory.openForAppending(Journal.tornFileName)
        if try torn.size() > sizeLimit {
            try torn.truncate(to: 0)
        }
        let end = min(size, start + Journal.lineLimit)
        var offset = start
        while offset < end {
            let bytes = try tail.read(at: offset, count: min(Self.window, end - offset))
            if bytes.isEmpty { break }
            try torn.append(bytes)
            offset += bytes.count
        }
        try torn.append([Self.newline])
        try torn.sync()
        try directory.syncDirectory()
        try tail.file.truncate(to: start)
        try tail.file.sync()
    }

    /// The seq and hash that the next record chains to: the hash of the last
    /// line, and the seq of the last record in the tail. A last line that is
    /// not a record is chained to anyway, with the seq of the last record in
    /// the 64 KiB before it, or none; the reader chains the same way.
    private func chainPoint(_ tail: inout TailReader, size: Int) throws -> (seq: Int, hash: String) {
        let end = size - 1
        let lower = max(0, end - Self.window)
        let window = try tail.read(at: lower, count: end - lower)
        let lastStart: Int
        let lastLine: [UInt8]?
        let hash: String
        if let newline = window.lastIndex(of: Self.newline) {
            lastStart = lower + newline + 1
            lastLine = Array(window[(newline + 1)...])
            hash = Journal.sha256(lastLine!)
        } else if lower == 0 {
            lastStart = 0
            lastLine = window
            hash = Journal.sha256(window)
        } else {
            // A last line longer than the window is hashed in pieces, and
            // read whole only when it is short enough to be a record.
            lastStart = try lineStart(&tail, before: lower)
            var hasher = SHA256Stream()
            var offset = lastStart
            while offset < end {
                let bytes = try tail.read(at: offset, count: min(Self.window, end - offset))
                if bytes.isEmpty { break }
                hasher.update(bytes[...])
                offset += bytes.count
            }
            hash = hasher.finish()
            lastLine = end - lastStart <= Journal.lineLimit ? try tail.read(at: lastStart, count: end - lastStart) : nil
        }
        if let lastLine, let header = RecordHeader(line: lastLine) {
            return (header.seq, hash)
        }
        guard lastStart > 0 else { return (0, hash) }
        let earlierLower = max(0, lastStart - 1 - Self.window)
        let earlier =
            earlierLower >= lower
            ? window[(earlierLower - lower)..<(lastStart - 1 - lower)]
            : try tail.read(at: earlierLower, count: lastStart - 1 - earlierLower)[...]
        var lines = earlier.split(separator: Self.newline, omittingEmptySubsequences: false)
        if earlierLower > 0 {
            lines.removeFirst()
        }
        for line in lines.reversed() {
            if let header = RecordHeader(line: line) { return (header.seq, hash) }
        }
        return (0, hash)
    }

    /// Replaces the journal, atomically, by one signed summary that keeps the
    /// latest trusted record of each node and event with its own signature.
    /// Without `lastSeq` (the end of the journal is beyond repair) the
    /// summary follows the newest trusted record.
    private func compact(lastSeq: Int?, lastHash: String, role: String, journal: VerifiedJournal) throws -> (seq: Int, hash: String) {
        let lastSeq = lastSeq ?? journal.latestTrusted.last?.seq ?? 0
        // JSON escaping at most doubles a line, so within half the line cap
        // the summary stays a line the reader reads; the newest records win.
        var budget = Journal.lineLimit / 2 - Self.window
        var kept: [VerifiedRecord] = []
        for record in journal.latestTrusted.reversed() where record.event != "summary" && record.line.count <= budget {
            budget -= record.line.count
            kept.append(record)
        }
        let summary = SummaryData(
            replaced: journal.recordCount, firstSeq: journal.firstSeq ?? 0, lastSeq: lastSeq,
            latest: kept.reversed().map { String(decoding: $0.line, as: UTF8.self) })
        let line = try signedLine(
            UnsignedRecord(
                data: summary, event: "summary", node: nncp.selfName, nodeID: nncp.selfID, prev: lastHash, role: role, seq: lastSeq + 1,
                time: clock.now().rfc3339))
        try directory.writeFileAtomically(Journal.fileName, bytes: line + [Self.newline])
        return (lastSeq + 1, Journal.sha256(line))
    }
}

/// Reads the journal at offsets and counts what it read.
private struct TailReader {
    let file: SafeFile
    var bytesRead = 0

    mutating func read(at offset: Int, count: Int) throws -> [UInt8] {
        let bytes = try file.read(at: offset, count: count)
        bytesRead += bytes.count
        return bytes
    }
}

/// SHA-256 over bytes that arrive in pieces.
struct SHA256Stream {
    private var hasher = SHA256()

    mutating func update(_ bytes: ArraySlice<UInt8>) { hasher.update(data: bytes) }

    func finish() -> String { Hex.encode(hasher.finalize()) }
}
