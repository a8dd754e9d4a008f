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

    public init(directory: SafeDirectory, nncp: NNCPConfig, clock: any WallClock, sizeLimit: Int = Journal.sizeLimit) {
        self.directory = directory
        self.nncp = nncp
        self.clock = clock
        self.sizeLimit = sizeLimit
    }

    /// Appends one record and returns its seq. The line is written with one
    /// write(2), then the file and the directory are fsynced.
    @discardableResult
    public func append<T: Encodable>(event: String, role: String, data: T) throws -> Int {
        var file = try directory.openForAppending(Journal.fileName)
        var size = try file.size()
        if size > 0 {
            size = try setTornLineAside(file, size: size)
        }
        var (lastSeq, lastHash) = size > 0 ? try lastRecord(file, size: size) : (0, "")
        if size > sizeLimit {
            (lastSeq, lastHash) = try compact(lastSeq: lastSeq, lastHash: lastHash, role: role)
            file = try directory.openForAppending(Journal.fileName)
        }
        let line = try signedLine(
            UnsignedRecord(
                data: data, event: event, node: nncp.selfName, nodeID: nncp.selfID, prev: lastHash, role: role, seq: lastSeq + 1,
                time: clock.now().rfc3339))
        try file.append(line + [UInt8(ascii: "\n")])
        try file.sync()
        try directory.syncDirectory()
        return lastSeq + 1
    }

    private func signedLine<T: Encodable>(_ record: UnsignedRecord<T>) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let unsigned = Array(try encoder.encode(record))
        let signature = try nncp.sign(Journal.domain + unsigned)
        return unsigned.dropLast() + Journal.sigPrefix + Array(Journal.hex(signature).utf8) + Array("\"}".utf8)
    }

    /// Where the line ending before `end` starts: just after the newline
    /// before it, found by reading backwards in windows.
    private func lineStart(_ file: SafeFile, before end: Int) throws -> Int {
        var upper = end
        while upper > 0 {
            let lower = max(0, upper - Self.window)
            let bytes = try file.read(at: lower, count: upper - lower)
            if let newline = bytes.lastIndex(of: UInt8(ascii: "\n")) { return lower + newline + 1 }
            upper = lower
        }
        return 0
    }

    /// A last line without its newline was torn by a pulled stick: move it to
    /// `journal.torn` and cut the journal back to the last whole line.
    private func setTornLineAside(_ file: SafeFile, size: Int) throws -> Int {
        guard try file.read(at: size - 1, count: 1) != [UInt8(ascii: "\n")] else { return size }
        let start = try lineStart(file, before: size)
        let torn = try directory.openForAppending(Journal.tornFileName)
        var offset = start
        while offset < size {
            let bytes = try file.read(at: offset, count: min(Self.window, size - offset))
            try torn.append(bytes)
            offset += bytes.count
        }
        try torn.append([UInt8(ascii: "\n")])
        try torn.sync()
        try file.truncate(to: start)
        try file.sync()
        return start
    }

    /// The seq and hash that the next record chains to. A last line that is
    /// not a record is chained to anyway, with the seq of the last record
    /// found before it in the tail.
    private func lastRecord(_ file: SafeFile, size: Int) throws -> (seq: Int, hash: String) {
        var end = size - 1
        var hash: String?
        for _ in 0..<16 where end > 0 {
            let start = try lineStart(file, before: end)
            let length = end - start
            if hash == nil {
                var hasher = SHA256Stream()
                var offset = start
                while offset < end {
                    let bytes = try file.read(at: offset, count: min(Self.window, end - offset))
                    hasher.update(bytes)
                    offset += bytes.count
                }
                hash = hasher.finish()
            }
            if length <= Journal.lineLimit,
                let header = try? JSONDecoder().decode(RecordHeader.self, from: Data(try file.read(at: start, count: length)))
            {
                return (header.seq, hash!)
            }
            end = start - 1
        }
        return (0, hash ?? "")
    }

    /// Replaces the journal, atomically, by one signed summary that keeps the
    /// latest trusted record of each node and event with its own signature.
    private func compact(lastSeq: Int, lastHash: String, role: String) throws -> (seq: Int, hash: String) {
        let journal = try JournalReader.verify(directory: directory, nncp: nncp)
        var latest: [String: VerifiedRecord] = [:]
        for record in journal.records where record.trusted && record.event != "summary" {
            let key = record.nodeID + " " + record.event
            if (latest[key]?.seq ?? .min) <= record.seq { latest[key] = record }
        }
        let summary = SummaryData(
            replaced: journal.records.filter { !$0.fromSummary }.count, firstSeq: journal.records.first?.seq ?? 0, lastSeq: lastSeq,
            latest: latest.values.sorted { $0.seq < $1.seq }.map { String(decoding: $0.line, as: UTF8.self) })
        let line = try signedLine(
            UnsignedRecord(
                data: summary, event: "summary", node: nncp.selfName, nodeID: nncp.selfID, prev: lastHash, role: role, seq: lastSeq + 1,
                time: clock.now().rfc3339))
        try directory.writeFileAtomically(Journal.fileName, bytes: line + [UInt8(ascii: "\n")])
        return (lastSeq + 1, Journal.sha256(line))
    }
}

/// SHA-256 over bytes that arrive in pieces.
struct SHA256Stream {
    private var hasher = SHA256()

    mutating func update(_ bytes: [UInt8]) { hasher.update(data: bytes) }

    func finish() -> String { Journal.hex(hasher.finalize()) }
}
