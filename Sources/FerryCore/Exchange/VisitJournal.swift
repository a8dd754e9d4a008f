import Foundation

/// What the spooler last learned of its peer from the stick journal:
/// the peer's latest verified visit record.
public struct PeerState: Codable, Sendable, Equatable {
    public var node: String
    public var nodeID: String
    public var seq: Int
    /// When the peer wrote the record.
    public var time: String
    /// When this host verified it.
    public var verified: String
    public var visit: VisitReport
}

/// A visit's part in the signed journal on the stick (DESIGN.md section 5):
/// read what the peer last wrote, then append this visit.
struct VisitJournal {
    static let peerStateFile = "peer-state.json"

    var context: FerryContext
    var nncp: NNCPConfig

    /// Verifies the journal and keeps the peer's latest trusted visit in
    /// `state-dir`, so that `ferry status` works with no stick present.
    /// Problems are reported; nothing untrusted is kept. Returns the journal
    /// as read, for `append`; throws only when the visit is cancelled.
    @discardableResult
    func readPeer(root: SafeDirectory, peer: NNCPNode, report: inout VisitReport) throws -> VerifiedJournal? {
        do {
            let directory = try root.subdirectory(StickIdentity.directory)
            guard try directory.kind(of: Journal.fileName) != nil else { return nil }
            let journal = try JournalReader.verify(directory: directory, nncp: nncp)
            keepPeerState(from: journal, peer: peer, report: &report)
            return journal
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            warn("journal: cannot be read: \(error)", &report)
            return nil
        }
    }

    private func keepPeerState(from journal: VerifiedJournal, peer: NNCPNode, report: inout VisitReport) {
        do {
            for problem in journal.problems.prefix(5) {
                warn("journal: \(problem)", &report)
            }
            let more = journal.problems.count + journal.problemsNotListed - 5
            if more > 0 {
                warn("journal: \(more) more problem(s); run ferry journal --verify", &report)
            }
            let latestVisit = journal.latestTrusted(event: "visit", nodeID: peer.id)
            if let unusable = journal.latestTrusted(event: "unusable", nodeID: peer.id),
                let note = unusable.decode(StickUnusableRecord.self), latestVisit.map({ !Self.isOlder(unusable, than: $0) }) ?? true
            {
                warn(
                    "journal: \(peer.name) could not use this stick at its visit of \(printable(unusable.time, limit: 40)): \(printable(note.problem, limit: 200))",
                    &report)
            }
            guard let record = latestVisit, let visit = record.decode(VisitReport.self) else {
                return
            }
            var damaged: String?
            let known = StateFile<PeerState>(Self.peerStateFile, stateDir: context.config.stateDir).load { damaged = $0 }
            if let damaged { warn(damaged, &report) }
            if let known, known.nodeID == peer.id, Self.isOlder(record, than: known) {
                warn(
                    "journal: \(peer.name)'s newest record on this stick (seq \(record.seq) of \(printable(record.time, limit: 40))) is older than the one already known (seq \(known.seq) of \(printable(known.time, limit: 40))): the journal was rolled back to an earlier copy; ignored",
                    &report)
                return
            }
            let state = PeerState(
                node: peer.name, nodeID: peer.id, seq: record.seq, time: record.time, verified: context.clock.now().rfc3339, visit: visit)
            try StateFile(Self.peerStateFile, stateDir: context.config.stateDir).write(state)
            context.logger.info("the journal brought \(peer.name)'s visit of \(record.time)", metadata: ["seq": "\(record.seq)"])
        } catch {
            warn("journal: the peer's state could not be kept: \(error)", &report)
        }
    }

    /// Appends this visit's record. A journal that cannot be written is a
    /// warning: the packets still cross.
    func append(root: SafeDirectory, report: inout VisitReport, verified: VerifiedJournal? = nil) {
        append(root: root, event: "visit", data: report, report: &report, verified: verified)
    }

    /// Appends a record of `event` with `data`; a failure is a warning in `report`.
    func append<T: Encodable>(root: SafeDirectory, event: String, data: T, report: inout VisitReport, verified: VerifiedJournal?) {
        do {
            let directory = try root.subdirectory(StickIdentity.directory)
            let writer = JournalWriter(directory: directory, nncp: nncp, clock: context.clock)
            let seq = try writer.append(event: event, role: context.config.role.rawValue, data: data, verified: verified)
            context.logger.info("journal record written", metadata: ["seq": "\(seq)"])
        } catch {
            warn("journal: this visit's record could not be written: \(error)", &report)
        }
    }

    /// The peer's state only moves forward. Records on different sticks
    /// have unrelated seqs, so the writer's own signed time decides; the seq
    /// only between two records of the same time.
    static func isOlder(_ record: VerifiedRecord, than known: PeerState) -> Bool {
        isOlder(record, time: known.time, seq: known.seq)
    }

    static func isOlder(_ record: VerifiedRecord, than other: VerifiedRecord) -> Bool {
        isOlder(record, time: other.time, seq: other.seq)
    }

    private static func isOlder(_ record: VerifiedRecord, time: String, seq: Int) -> Bool {
        let (new, old) = (Date(rfc3339: record.time), Date(rfc3339: time))
        guard let new, let old else { return record.time < time }
        return new < old || (new == old && record.seq < seq)
    }

    /// A journal problem is a warning of this visit, and is kept apart in
    /// the report so that `ferry status` on this host shows it too.
    private func warn(_ message: String, _ report: inout VisitReport) {
        context.logger.warning("\(message)")
        report.warnings.append(message)
        report.journalProblems = (report.journalProblems ?? []) + [message]
    }
}
