import Foundation

/// Reads and verifies a journal, streaming it in chunks: a huge or hostile
/// file costs bounded memory and time (reading stops at
/// `VerifiedJournal.readLimit`), and good records are never lost because of
/// bad ones.
public enum JournalReader {
    static let chunk = 1 << 16

    /// Verifies `directory/journal` (a stick's `.ferry`); an absent journal is empty.
    public static func verify(directory: SafeDirectory, nncp: NNCPConfig) throws -> VerifiedJournal {
        guard let file = try directory.openFile(Journal.fileName) else { return VerifiedJournal() }
        var verifier = Verifier(nncp: nncp)
        var offset = 0
        var pending: [UInt8] = []
        // A line past the cap is only hashed, as the writer hashes it, so
        // that the record after it can still chain to it.
        var overlong: SHA256Stream?
        while true {
            // A SIGTERM (the stick pulled) must stop a long read at once.
            try Task.checkCancellation()
            guard offset < VerifiedJournal.readLimit, verifier.linesRead < VerifiedJournal.lineCountLimit else {
                verifier.stop(
                    "the journal is larger than \(VerifiedJournal.readLimit >> 20) MiB or \(VerifiedJournal.lineCountLimit) lines, which no honest journal is (it is compacted at \(Journal.sizeLimit >> 20) MiB); the rest was not read"
                )
                return verifier.result
            }
            let bytes = try file.read(at: offset, count: chunk)
            if bytes.isEmpty { break }
            offset += bytes.count
            var start = bytes.startIndex
            while start < bytes.endIndex {
                let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n"))
                let piece = bytes[start..<(newline ?? bytes.endIndex)]
                if overlong != nil {
                    overlong!.update(piece)
                } else if pending.count + piece.count > Journal.lineLimit {
                    overlong = SHA256Stream()
                    overlong!.update(pending[...])
                    overlong!.update(piece)
                    pending.removeAll(keepingCapacity: false)
                } else if newline == nil || !pending.isEmpty {
                    pending += piece
                }
                guard let newline else { break }
                if let hasher = overlong {
                    verifier.skipOverlong(hash: hasher.finish())
                    overlong = nil
                } else if pending.isEmpty {
                    verifier.consume(piece)
                } else {
                    verifier.consume(pending[...])
                    pending.removeAll(keepingCapacity: true)
                }
                start = newline + 1
                if verifier.linesRead % 256 == 0 { try Task.checkCancellation() }
            }
        }
        if overlong != nil || !pending.isEmpty {
            verifier.torn()
        }
        return verifier.result
    }
}

/// Checks line after line: signature, known signer, and the chain.
struct Verifier {
    let nncp: NNCPConfig
    var result = VerifiedJournal()
    private var lineNumber = 0
    var linesRead: Int { lineNumber }
    private var lastSeq: Int?
    private var lastHash: String?

    init(nncp: NNCPConfig) {
        self.nncp = nncp
    }

    private mutating func problem(_ text: String, seq: Int? = nil) {
        guard result.problems.count < VerifiedJournal.problemLimit else {
            result.problemsNotListed += 1
            return
        }
        result.problems.append(JournalProblem(line: lineNumber, seq: seq, problem: text))
    }

    mutating func skipOverlong(hash: String) {
        lineNumber += 1
        problem("is longer than \(Journal.lineLimit) bytes; not a journal record, skipped unread")
        lastHash = hash
    }

    mutating func stop(_ why: String) {
        problem(why)
        result.incomplete = true
    }

    mutating func torn() {
        lineNumber += 1
        problem("is torn (the stick was pulled mid-write); the next append sets it aside")
    }

    mutating func consume(_ line: ArraySlice<UInt8>) {
        lineNumber += 1
        defer { lastHash = Journal.sha256(line) }
        guard String(validating: line, as: UTF8.self) != nil else {
            problem("is not UTF-8 text; not a journal record")
            return
        }
        guard let (signed, signature) = Journal.split(line), let header = RecordHeader(line: line) else {
            problem("is not a journal record")
            return
        }
        var trusted = true
        if let signer = nncp.node(id: header.nodeID) {
            if !signer.isValidSignature(signature, for: signed) {
                let owner = signer.id == nncp.selfID ? "this node's" : "\(signer.name)'s"
                problem("does not verify against \(owner) signpub: edited or forged", seq: header.seq)
                trusted = false
            }
        } else {
            problem(
                "is signed by node \(printable(header.nodeID, limit: 60)) (\(printable(header.node, limit: 40))), which this host does not know",
                seq: header.seq)
            trusted = false
        }
        let first = lineNumber == 1
        let chained =
            header.event == "summary" && first
            || (first ? header.seq == 1 && header.prev.isEmpty : header.seq == (lastSeq ?? 0) + 1 && header.prev == lastHash)
        if !chained {
            problem(
                first
                    ? "does not start the journal (seq 1, or a summary): records before it were removed"
                    : "does not follow seq \(lastSeq.map(String.init) ?? "?"): a record was deleted, reordered or inserted",
                seq: header.seq)
            trusted = false
        }
        lastSeq = header.seq
        let record = VerifiedRecord(
            seq: header.seq, time: header.time, node: displayName(header), nodeID: header.nodeID, role: header.role,
            event: header.event, trusted: trusted, fromSummary: false, line: Array(line))
        result.recordCount += 1
        if result.firstSeq == nil { result.firstSeq = header.seq }
        result.add(record)
        if header.event == "summary", trusted, let summary = record.decode(SummaryData.self) {
            for embedded in summary.latest {
                consumeEmbedded(Array(embedded.utf8)[...], summarySeq: header.seq)
            }
        }
    }

    /// The writer as this host knows it: the writer's own claim is only a
    /// label, the id is what was checked.
    private func displayName(_ header: RecordHeader) -> String {
        guard let known = nncp.node(id: header.nodeID) else { return printable(header.node, limit: 40) }
        return known.id == nncp.selfID ? "this node" : known.name
    }

    /// A record carried in a summary: its own signature must verify; the
    /// summary's signature vouches for its place in the chain.
    private mutating func consumeEmbedded(_ line: ArraySlice<UInt8>, summarySeq: Int) {
        guard let (signed, signature) = Journal.split(line),
            let header = RecordHeader(line: line),
            let signer = nncp.node(id: header.nodeID),
            signer.isValidSignature(signature, for: signed)
        else {
            problem("carries a record that does not verify", seq: summarySeq)
            return
        }
        result.add(
            VerifiedRecord(
                seq: header.seq, time: header.time, node: displayName(header), nodeID: header.nodeID, role: header.role,
                event: header.event, trusted: true, fromSummary: true, line: Array(line)))
    }
}
