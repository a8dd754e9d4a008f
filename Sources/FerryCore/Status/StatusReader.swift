import Foundation

/// `ferry status --json`. The field names are stable; README.md documents them.
public struct StatusReport: Codable, Sendable, Equatable {
    public struct Queue: Codable, Sendable, Equatable {
        public var node: String
        /// NNCP's niceness letter (F, P, N, B), or the number between them.
        public var nice: String
        public var packets: Int
        public var bytes: UInt64
    }

    public var role: String
    public var node: String
    public var generated: String
    /// Packets queued on this host, per recipient and niceness.
    public var queue: [Queue]
    public var sticks: [StickSeen]
    /// This host's last visit.
    public var lastVisit: VisitReport?
    /// The peer's last visit as the journal brought it, verified.
    public var peer: PeerState?
    /// backupsvr: the enrolled drives, where each is, what it holds and lacks.
    public var drives: [EnrolledDrive]?
    /// backupsvr: the newest snapshot received of each dataset.
    public var datasets: [ReceivedDataset]?
    /// backupsvr: the streams waiting in the store.
    public var streamStore: PacketCount?
    /// backupsvr: the split streams whose parts are still arriving.
    public var incompleteStreams: [IncompleteStreamStatus]?
    /// backupsvr: the restore drills' results, newest per dataset.
    public var verified: [VerifyResult]?
    /// backupsvr: the streams refused for their sender or prefix.
    public var refused: [RefusedStream]?
    /// A laptop: where its snapshots are, as backupsvr last said.
    public var laptop: LaptopView?
    /// laptop: the restores that arrived from backupsvr, oldest first.
    public var restored: [RestoredDataset]?
    public var warnings: [String]
}

/// Builds the status of this host from its spool and `state-dir`; no stick
/// needs to be present.
public struct StatusReader: Sendable {
    public var context: FerryContext
    public var nncp: NNCPConfig
    /// A stick with less than this share free is nearly full.
    static let nearlyFull = 0.1

    public init(context: FerryContext, nncp: NNCPConfig) {
        self.context = context
        self.nncp = nncp
    }

    public func report() async throws -> StatusReport {
        let config = context.config
        let now = context.clock.now()
        var warnings: [String] = []
        var queue: [StatusReport.Queue] = []
        let spool = Spool(path: nncp.spool)
        let tooBig = Set(try StateFile<[String]>("too-big.json", stateDir: config.stateDir).load() ?? [])
        var tooBigQueued: Set<String> = []
        for node in nncp.neighbours.values where node.name != "self" && node.id != nncp.selfID {
            // One pass, keeping no copy of a queue that may be 10,000 long.
            var groups: [UInt8: PacketCount] = [:]
            for packet in try spool.queued(for: node.id) {
                groups[packet.nice, default: PacketCount()].packets += 1
                groups[packet.nice, default: PacketCount()].bytes += packet.size
                if tooBig.contains(packet.name) { tooBigQueued.insert(packet.name) }
            }
            for (nice, group) in groups.sorted(by: { $0.key < $1.key }) {
                queue.append(.init(node: node.name, nice: Self.niceName(nice), packets: group.packets, bytes: group.bytes))
            }
        }
        queue.sort { ($0.node, $0.nice) < ($1.node, $1.nice) }

        let lastVisit = try VisitReport.last(stateDir: config.stateDir)
        let peer = try StateFile<PeerState>(VisitJournal.peerStateFile, stateDir: config.stateDir).load()
        let sticks = try KnownSticks(stateDir: config.stateDir).load()
        if config.role != .laptop {
            let seconds = config.status.visitWarnAfter.timeInterval
            if let finished = lastVisit.flatMap({ Self.date($0.finished) }) {
                if now.timeIntervalSince(finished) > seconds {
                    warnings.append(
                        "no stick has visited this host since \(lastVisit!.finished) (more than \(config.status.visitWarnAfter.configText))"
                    )
                }
            } else {
                warnings.append("no stick has visited this host yet")
            }
            if let peer, let time = Self.date(peer.time), now.timeIntervalSince(time) > seconds {
                warnings.append("\(peer.node) was last visited \(peer.time), more than \(config.status.visitWarnAfter.configText) ago")
            }
        }
        for stick in sticks where stick.totalBytes > 0 && Double(stick.freeBytes) < Double(stick.totalBytes) * Self.nearlyFull {
            warnings.append(
                "stick \(stick.label) (\(stick.uuid)) was nearly full at its last visit: \(humanSize(stick.freeBytes)) free")
        }
        for name in tooBigQueued.sorted() {
            warnings.append(
                "packet \(name) is larger than any stick seen; on the laptop, a smaller [send] chunk-size splits such streams (nncp-file -chunked, for plain files)"
            )
        }
        if let peer {
            warnings += peer.visit.warnings.map { "\(peer.node): \($0)" }
        }
        if let lastVisit, let failure = lastVisit.failure {
            warnings.append("the last visit (stick \(printable(lastVisit.stick, limit: 80))) could not use the stick: \(failure)")
        }
        if let lastVisit, let problems = lastVisit.journalProblems {
            warnings += problems.map { "the last visit (stick \(printable(lastVisit.stick, limit: 80))) found: \($0)" }
        }
        let backupsvr = config.role == .backupsvr ? try await DriveDock(context: context).backupsvrState() : nil
        let datasets = backupsvr?.datasets
        let datasetLimit = config.status.datasetWarnAfter.timeInterval
        for (holder, dataset) in (datasets ?? []).map({ ("", $0) }) + (peer?.visit.datasets ?? []).map({ ("\(peer!.node): ", $0) }) {
            if let created = Self.date(dataset.created), now.timeIntervalSince(created) > datasetLimit {
                warnings.append(
                    "\(holder)the newest snapshot of \(dataset.dataset) is \(dataset.snapshot) of \(dataset.created), older than \(config.status.datasetWarnAfter.configText)"
                )
            }
        }
        warnings += backupsvr?.warnings ?? []
        var laptop: LaptopView?
        if config.role == .laptop {
            let view = await laptopView(now: now)
            laptop = view.view
            warnings += view.warnings
        }
        return StatusReport(
            role: config.role.rawValue, node: nncp.selfName, generated: now.rfc3339, queue: queue, sticks: sticks, lastVisit: lastVisit,
            peer: peer, drives: backupsvr?.drives, datasets: datasets, streamStore: backupsvr?.streamStore,
            incompleteStreams: backupsvr?.incompleteStreams, verified: backupsvr?.verified, refused: backupsvr?.refused, laptop: laptop,
            restored: config.role == .laptop ? try RestoredDatasets(stateDir: config.stateDir).load() : nil, warnings: warnings)
    }

    /// The laptop's view: backupsvr's last state, with the `ferry:sent`
    /// marks of the datasets this laptop sends.
    func laptopView(now: Date) async -> (view: LaptopView, warnings: [String]) {
        let config = context.config
        var marks: [String: String] = [:]
        var warnings: [String] = []
        if !config.send.datasets.isEmpty {
            do {
                let rows = try await ZFSInventory(runner: context.runner).properties(
                    [SnapshotSender.markProperty], of: config.send.datasets, recursive: true)
                for row in rows where row.source == "local" && !row.dataset.contains("@") { marks[row.dataset] = row.value }
            } catch {
                warnings.append("cannot read what was sent (ferry:sent): \(error)")
            }
        }
        let view = LaptopView.make(
            config: config, host: config.send.host ?? nncp.selfName,
            known: StateFile<KnownBackupsvrState>(KnownBackupsvrState.fileName, stateDir: config.stateDir).load { warnings.append($0) },
            marks: marks, verified: VerifyResults(stateDir: config.stateDir).load { warnings.append($0) },
            refusedMessages: StateFile<[RefusedMessage]>(RefusedMessage.fileName, stateDir: config.stateDir).load { warnings.append($0) }
                ?? [], now: now)
        return (view.view, warnings + view.warnings)
    }

    static func niceName(_ nice: UInt8) -> String {
        switch nice {
        case 32: "F"
        case 96: "P"
        case 160: "N"
        case 224: "B"
        default: "\(nice)"
        }
    }

    static func date(_ text: String) -> Date? {
        try? Date(text, strategy: .iso8601)
    }
}

/// The human form of `ferry status`: a compact table.
public struct StatusText {
    public var report: StatusReport

    public init(_ report: StatusReport) {
        self.report = report
    }

    public var text: String {
        var lines = ["\(report.node) (\(report.role)), \(report.generated)"]
        lines.append("queue:")
        if report.queue.isEmpty { lines.append("  nothing queued") }
        for entry in report.queue {
            lines.append(
                "  \(entry.node.padding(toLength: 12, withPad: " ", startingAt: 0)) nice \(entry.nice)  \(entry.packets) packet(s)  \(humanSize(entry.bytes))"
            )
        }
        lines.append("sticks:")
        if report.sticks.isEmpty { lines.append("  none seen yet") }
        for stick in report.sticks {
            lines.append(
                "  \(stick.label) \(stick.uuid)  last seen \(stick.lastSeen)  \(humanSize(stick.freeBytes)) free of \(humanSize(stick.totalBytes))"
            )
        }
        if let visit = report.lastVisit {
            lines.append(
                "last visit: \(visit.finished): received \(visit.received.packets), sent \(visit.sent.packets), pending for \(visit.peer) \(visit.pendingForPeer.packets), stayed behind \(visit.stayedBehind.count)"
            )
        }
        if let peer = report.peer {
            let visit = peer.visit
            lines.append("\(peer.node), as its journal record seq \(peer.seq) says (verified \(peer.verified)):")
            lines.append(
                "  last visited \(peer.time): received \(visit.received.packets), acknowledged \(visit.acks), pending for \(visit.peer) \(visit.pendingForPeer.packets)"
            )
            if let backlog = visit.receiveBacklog {
                lines.append("  receive backlog: \(backlog.packets) packet(s), \(humanSize(backlog.bytes))")
            }
            for drive in visit.drives ?? [] { lines += Self.lines(drive).map { "  " + $0 } }
            for dataset in visit.datasets ?? [] { lines.append("  " + Self.line(dataset)) }
            if let store = visit.streamStore, store.packets > 0 {
                lines.append("  stream store: \(store.packets) stream(s), \(humanSize(store.bytes))")
            }
            for stream in visit.incompleteStreams ?? [] { lines.append("  " + stream.line) }
            for result in visit.verified ?? [] { lines.append("  " + result.line) }
            for refusal in visit.refused ?? [] { lines.append("  " + refusal.line) }
            if let toss = visit.lastToss {
                lines.append("  last toss \(toss.finished): \(toss.succeeded ? "ok" : "with errors (\(toss.errors.count))")")
            }
        }
        for drive in report.drives ?? [] { lines += Self.lines(drive) }
        for dataset in report.datasets ?? [] { lines.append(Self.line(dataset)) }
        if let store = report.streamStore {
            lines.append("stream store: \(store.packets) stream(s), \(humanSize(store.bytes))")
        }
        for stream in report.incompleteStreams ?? [] { lines.append(stream.line) }
        for result in report.verified ?? [] { lines.append(result.line) }
        for refusal in report.refused ?? [] { lines.append(refusal.line) }
        lines += report.laptop?.lines ?? []
        if let restored = report.restored, !restored.isEmpty {
            lines.append("restored:")
            for restore in restored {
                lines.append(
                    "  \(restore.dataset)@\(restore.snapshot) (taken \(restore.created)) into \(restore.into), \(restore.restored)"
                        + (restore.from.map { ", the increment from @\($0)" } ?? ""))
            }
        }
        lines.append(report.warnings.isEmpty ? "no warnings" : "warnings:")
        lines += report.warnings.map { "  ! \($0)" }
        return terminalText(lines)
    }

    /// A drive: where it is and since when, what it lacks, then its newest
    /// snapshot per dataset.
    public static func lines(_ drive: EnrolledDrive) -> [String] {
        var place: String
        if let retired = drive.retired {
            place = "retired \(retired)"
        } else if drive.pulled != nil {
            place = "pulled without eject, noticed \(drive.pulled!)"
        } else {
            switch drive.place {
            case .dock: place = "in the dock since \(drive.since ?? "?")"
            case .offsite: place = "offsite since \(drive.since ?? "?")"
            case nil: place = "not plugged in since its enrolment \(drive.enrolled)"
            }
        }
        if let behind = drive.behind, !drive.isRetired {
            place +=
                behind.packets == 0 ? ", up to date" : ", \(behind.packets) stream(s) behind (\(humanSize(behind.bytes)))"
        }
        var lines = ["drive \(drive.pool) (GUID \(drive.guid)): \(place)"]
        if let capacity = drive.capacity {
            lines.append(
                "  size \(humanSize(capacity.size)), used \(humanSize(capacity.used)) (\(capacity.usedPercent)%), free \(humanSize(capacity.free)), as of \(capacity.seen)"
            )
        }
        if let scrub = drive.scrub {
            let when =
                scrub.state == .running ? "running since \(scrub.started ?? "?")" : "\(scrub.state.rawValue) \(scrub.finished ?? "?")"
            let repaired = scrub.repaired.map { ", repaired \($0)" } ?? ""
            lines.append("  last scrub: \(when)\(repaired), \(scrub.errors) error(s)")
            for file in scrub.files { lines.append("    error in \(printable(file, limit: 200))") }
        }
        for dataset in drive.datasets ?? [] {
            lines.append("  \(dataset.dataset)@\(dataset.snapshot)\(dataset.created.map { ", taken \($0)" } ?? "")")
        }
        return lines
    }

    static func line(_ dataset: ReceivedDataset) -> String {
        "dataset \(dataset.dataset)@\(dataset.snapshot), taken \(dataset.created), on \(dataset.pools.joined(separator: ", "))"
    }
}
