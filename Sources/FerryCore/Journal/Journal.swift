import Crypto
import Foundation

/// The signed journal on the stick, `STICK/.ferry/journal` (DESIGN.md
/// section 5): JSON Lines, one record a line, each chained to the one before
/// by its SHA-256 (`prev`) and signed with the writer's NNCP key (`sig`).
///
/// A line is the record without `sig`, as sorted-keys JSON, whose closing
/// brace is replaced by `,"sig":"<128 hex>"}`. The signature covers
/// `"ferry journal v1\n"` and that JSON with its brace, so a reader checks
/// the line's own bytes and never re-encodes what it parsed.
public enum Journal {
    public static let fileName = "journal"
    public static let tornFileName = "journal.torn"
    /// Past this size an append first compacts the journal into a summary.
    public static let sizeLimit = 1 << 20
    /// A line longer than this is not a record; a reader skips it unread.
    public static let lineLimit = 1 << 20
    /// The largest seq a record may carry: the largest integer every JSON
    /// reader holds exactly. A larger one, or one below 1, makes the line not
    /// a record, so that no hostile seq can overflow the count.
    public static let seqLimit = 1 << 53
    static let domain = Array("ferry journal v1\n".utf8)
    static let sigPrefix = Array(#","sig":""#.utf8)

    static func sha256(_ bytes: some DataProtocol) -> String {
        Hex.encode(SHA256.hash(data: bytes))
    }

    /// Splits a line into the bytes its signature covers and the signature,
    /// or nil when the line does not end as a record does.
    static func split(_ line: ArraySlice<UInt8>) -> (signed: [UInt8], signature: [UInt8])? {
        let tail = sigPrefix.count + 128 + 2
        guard line.count > tail, line.last == UInt8(ascii: "}") else { return nil }
        let start = line.endIndex - tail
        guard line[start..<start + sigPrefix.count].elementsEqual(sigPrefix),
            line[line.endIndex - 2] == UInt8(ascii: "\"")
        else { return nil }
        guard let signature = Hex.decode(line[(start + sigPrefix.count)..<(line.endIndex - 2)]) else { return nil }
        return (domain + line[line.startIndex..<start] + [UInt8(ascii: "}")], signature)
    }
}

/// The fields every record has, as read.
struct RecordHeader: Decodable {
    var seq: Int
    var prev: String
    var time: String
    var node: String
    var nodeID: String
    var role: String
    var event: String

    enum CodingKeys: String, CodingKey {
        case seq, prev, time, node, role, event
        case nodeID = "node-id"
    }

    /// The header of `line`, or nil when the line is not a record.
    init?(line: some Collection<UInt8>) {
        guard let header = try? JSONDecoder().decode(RecordHeader.self, from: Data(line)),
            (1...Journal.seqLimit).contains(header.seq)
        else { return nil }
        self = header
    }
}

/// What a record carries in `data`, for decoding it alone.
private struct DataOnly<T: Decodable>: Decodable {
    var data: T
}

/// A record as written: everything but the signature.
struct UnsignedRecord<T: Encodable>: Encodable {
    var data: T
    var event: String
    var node: String
    var nodeID: String
    var prev: String
    var role: String
    var seq: Int
    var time: String

    enum CodingKeys: String, CodingKey {
        case data, event, node, prev, role, seq, time
        case nodeID = "node-id"
    }
}

/// A summary stands for the records it replaced: for each node, the raw
/// lines of its latest trusted record of each event, still signed by it.
struct SummaryData: Codable {
    var replaced: Int
    var firstSeq: Int
    var lastSeq: Int
    var latest: [String]
}

public struct JournalError: FerryError {
    public var path: String
    public var problem: String

    public var description: String { "\(printable(path)) \(problem)" }
}

/// One problem the reader found, with the line and, where known, the seq.
public struct JournalProblem: Codable, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var seq: Int?
    public var problem: String

    public var description: String {
        "line \(line)" + (seq.map { " (seq \($0))" } ?? "") + ": \(problem)"
    }
}

/// A record that was read, and whether the reader trusts it.
public struct VerifiedRecord: Sendable, Equatable {
    public var seq: Int
    public var time: String
    public var node: String
    public var nodeID: String
    public var role: String
    public var event: String
    /// Signed by a node the reader knows, and chained to the record before.
    public var trusted: Bool
    /// Carried inside a summary record rather than on a line of its own.
    public var fromSummary: Bool
    /// The raw line; empty for a record listed by its header alone (past
    /// `VerifiedJournal.listedLineBytes`).
    public var line: [UInt8]

    /// The record's `data`, decoded as `type`.
    public func decode<T: Decodable>(_ type: T.Type) -> T? {
        try? JSONDecoder().decode(DataOnly<T>.self, from: Data(line)).data
    }
}

/// The journal as the reader sees it. It keeps what a verdict needs, not
/// every record: the newest trusted record of each node and event, the
/// counts, a capped list of problems, and a capped listing for `ferry
/// journal`. So a hostile journal costs bounded memory, and, since reading
/// stops at `readLimit` bytes or `lineCountLimit` lines, bounded time.
public struct VerifiedJournal: Sendable {
    /// At most this many problems are kept; the rest are only counted, so
    /// that a journal full of garbage costs no memory.
    public static let problemLimit = 1000
    /// An honest journal is compacted once it passes `Journal.sizeLimit`, so
    /// it never holds more than that and one more line: reading stops here.
    public static let readLimit = 2 * Journal.sizeLimit
    /// Nor does an honest journal hold more lines than this (a record takes
    /// over 300 bytes: a signature, a node id and a hash): reading stops
    /// here too.
    public static let lineCountLimit = 4_000
    /// Trusted records are listed with their lines up to this many bytes of
    /// lines, and past it by their header alone; untrusted ones always by
    /// their header alone.
    public static let listedLineBytes = Journal.sizeLimit
    /// Text fields of a listed record are cut to this many characters: an
    /// untrusted line may carry a megabyte of "time".
    static let fieldLimit = 64

    /// Every record read, in order, for showing (at most `lineCountLimit`).
    public var records: [VerifiedRecord] = []
    public var problems: [JournalProblem] = []
    public var problemsNotListed = 0
    /// Lines that were records (not counting those inside a summary).
    public var recordCount = 0
    public var firstSeq: Int?
    /// Set when reading stopped at a limit: the rest of the file is unread.
    public var incomplete = false
    /// The newest trusted record of each node and event, by `key`.
    private(set) var latest: [String: VerifiedRecord] = [:]
    private var listedBytes = 0

    public init() {}

    public var isClean: Bool { problems.isEmpty && !incomplete }

    public var trusted: [VerifiedRecord] { records.filter(\.trusted) }

    /// The newest trusted record of each node and event, oldest first.
    public var latestTrusted: [VerifiedRecord] { latest.values.sorted { $0.seq < $1.seq } }

    /// The newest trusted record of `event` written by the node `nodeID`.
    public func latestTrusted(event: String, nodeID: String) -> VerifiedRecord? {
        latest[Self.key(nodeID: nodeID, event: event)]
    }

    private static func key(nodeID: String, event: String) -> String { nodeID + "\n" + event }

    /// Takes in one record: listed (its line kept while the budget lasts),
    /// and kept whole when it is the newest trusted one of its kind.
    mutating func add(_ record: VerifiedRecord) {
        if record.trusted {
            let key = Self.key(nodeID: record.nodeID, event: record.event)
            if (latest[key]?.seq ?? .min) <= record.seq { latest[key] = record }
        }
        var listed = record
        if record.trusted, listedBytes + record.line.count <= Self.listedLineBytes {
            listedBytes += record.line.count
        } else {
            listed.line = []
        }
        if !record.trusted {
            listed.time = String(listed.time.prefix(Self.fieldLimit))
            listed.role = String(listed.role.prefix(Self.fieldLimit))
            listed.event = String(listed.event.prefix(Self.fieldLimit))
            listed.nodeID = String(listed.nodeID.prefix(Self.fieldLimit))
        }
        records.append(listed)
    }
}
