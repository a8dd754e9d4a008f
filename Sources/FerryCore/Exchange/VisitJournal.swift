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
    /// Problems are reported; nothing untrusted is kept.
    func readPeer(root: SafeDirectory, peer: NNCPNode, report: inout VisitReport) {
        do {
            let directory = try root.subdirectory(StickIdentity.directory)
            guard try directory.kind(of: Journal.fileName) != nil else { return }
            let journal = try JournalReader.verify(directory: directory, nncp: nncp)
            for problem in journal.problems.prefix(5) {
                warn("journal: \(problem)", &report)
            }
            if journal.problems.count > 5 {
                warn("journal: \(journal.problems.count - 5) more problem(s); run ferry journal --verify", &report)
            }
            guard let record = journal.latestTrusted(event: "visit", nodeID: peer.id), let visit = record.decode(VisitReport.self) else {
                return
            }
            let state = PeerState(
                node: peer.name, nodeID: peer.id, seq: record.seq, time: record.time, verified: context.clock.now().rfc3339, visit: visit)
            try StateFile(Self.peerStateFile, stateDir: context.config.stateDir).write(state)
            context.logger.info("the journal brought \(peer.name)'s visit of \(record.time)", metadata: ["seq": "\(record.seq)"])
        } catch {
            warn("journal: cannot be read: \(error)", &report)
        }
    }

    /// Appends this visit's record. A journal that cannot be written is a
    /// warning: the packets still cross.
    func append(root: SafeDirectory, report: inout VisitReport) {
        do {
            let directory = try root.subdirectory(StickIdentity.directory)
            let writer = JournalWriter(directory: directory, nncp: nncp, clock: context.clock)
            let seq = try writer.append(event: "visit", role: context.config.role.rawValue, data: report)
            context.logger.info("journal record written", metadata: ["seq": "\(seq)"])
        } catch {
            warn("journal: this visit's record could not be written: \(error)", &report)
        }
    }

    private func warn(_ message: String, _ report: inout VisitReport) {
        context.logger.warning("\(message)")
        report.warnings.append(message)
    }
}
