import Foundation

/// A drive that holds a snapshot of one of the laptop's datasets.
public struct DriveHolding: Codable, Sendable, Equatable {
    public var pool: String
    public var place: DrivePlace?
    public var since: String?
    /// The newest snapshot of the dataset on it.
    public var snapshot: String
    public var created: String?
}

/// One of the laptop's datasets, as far as the laptop knows.
public struct LaptopDatasetView: Codable, Sendable, Equatable {
    /// The laptop's own name of it (`tank/root`).
    public var dataset: String
    /// HOST/DATASET, its name on backupsvr.
    public var destination: String
    /// The newest snapshot sent (`ferry:sent`).
    public var sent: String?
    /// The newest snapshot that reached backupsvr, when taken, and the
    /// drives that hold it.
    public var reached: String?
    public var reachedCreated: String?
    public var reachedPools: [String]
    /// Every drive with a snapshot of it, where that drive is.
    public var drives: [DriveHolding]
    /// The last restore drill.
    public var verified: VerifyResult?
}

/// The laptop's view (`ferry status` on a laptop): where its snapshots are,
/// from the last state message backupsvr sent.
public struct LaptopView: Codable, Sendable, Equatable {
    public var backupsvr: String
    /// The state message it comes from; nil until one has arrived.
    public var stateSeq: UInt64?
    public var stateTime: String?
    public var stateReceived: String?
    public var datasets: [LaptopDatasetView]
    public var incompleteStreams: [IncompleteStreamStatus]
    public var refused: [RefusedStream]
    public var refusedMessages: [RefusedMessage]
}

extension LaptopView {
    /// Builds the view from `known` and the `ferry:sent` marks in `marks`
    /// (local dataset to snapshot), with its warnings.
    public static func make(
        config: FerryConfig, host: String, known: KnownBackupsvrState?, marks: [String: String], verified: [VerifyResult],
        refusedMessages: [RefusedMessage], now: Date
    ) -> (view: LaptopView, warnings: [String]) {
        let state = known?.state
        let prefix = host + "/"
        var names = Set(marks.keys)
        for dataset in state?.datasets ?? [] where dataset.dataset.hasPrefix(prefix) {
            names.insert(String(dataset.dataset.dropFirst(prefix.count)))
        }
        var warnings: [String] = []
        let (datasetLimit, rotateLimit) = (config.status.datasetWarnAfter.timeInterval, config.rotation.rotateAfter.timeInterval)
        func older(_ created: String?, than limit: TimeInterval) -> Bool {
            guard let created, let date = Date(rfc3339: created) else { return true }
            return now.timeIntervalSince(date) > limit
        }
        var datasets: [LaptopDatasetView] = []
        for name in names.sorted() {
            let destination = prefix + name
            let received = state?.datasets.first { $0.dataset == destination }
            let drives = (state?.drives ?? []).filter { $0.retired == nil }.compactMap { drive in
                drive.datasets.first { $0.dataset == destination }.map {
                    DriveHolding(pool: drive.pool, place: drive.place, since: drive.since, snapshot: $0.snapshot, created: $0.created)
                }
            }
            let lastVerify = verified.filter { $0.dataset == destination }.max { $0.requested < $1.requested }
            datasets.append(
                LaptopDatasetView(
                    dataset: name, destination: destination, sent: marks[name], reached: received?.snapshot,
                    reachedCreated: received?.created, reachedPools: received?.pools ?? [], drives: drives, verified: lastVerify))
            guard state != nil else { continue }
            let newestOnDrive = drives.compactMap(\.created).max()
            if older(newestOnDrive, than: datasetLimit) {
                warnings.append(
                    newestOnDrive.map {
                        "nothing of \(name) has reached a backup drive for more than \(config.status.datasetWarnAfter.configText) (newest there taken \($0))"
                    } ?? "no snapshot of \(name) has reached a backup drive yet")
            }
            let newestOffsite = drives.filter { $0.place == .offsite }.compactMap(\.created).max()
            if older(newestOffsite, than: rotateLimit) {
                warnings.append(
                    newestOffsite.map {
                        "no offsite drive holds a snapshot of \(name) newer than \(config.rotation.rotateAfter.configText) (newest offsite taken \($0))"
                    } ?? "no offsite drive holds a snapshot of \(name) yet")
            }
        }
        if let known {
            warnings += VerifyResults.warnings(
                for: datasets.map(\.destination), results: verified, limit: config.status.verifyWarnAfter, now: now)
            warnings += known.state.refused.map { "\(known.node): \($0.line)" }
        } else {
            warnings.append(
                "no state from \(config.send.backupsvr) has reached this laptop yet: it comes back with the sticks, after backupsvr's toss")
        }
        warnings += refusedMessages.map(\.line)
        let view = LaptopView(
            backupsvr: config.send.backupsvr, stateSeq: known?.seq, stateTime: known?.time, stateReceived: known?.received,
            datasets: datasets, incompleteStreams: state?.incompleteStreams ?? [], refused: state?.refused ?? [],
            refusedMessages: refusedMessages)
        return (view, warnings)
    }

    /// The lines of `ferry status` on a laptop.
    public var lines: [String] {
        var lines: [String] = []
        if let stateSeq, let stateTime {
            lines.append("\(backupsvr)'s state, seq \(stateSeq) of \(stateTime) (arrived \(stateReceived ?? "?")):")
        } else {
            lines.append("\(backupsvr)'s state: none has arrived yet")
        }
        for dataset in datasets {
            lines.append("  \(dataset.dataset): sent \(dataset.sent.map { "@" + $0 } ?? "nothing yet")")
            if let reached = dataset.reached {
                lines.append(
                    "    reached \(backupsvr): @\(reached), taken \(dataset.reachedCreated ?? "?"), on \(dataset.reachedPools.isEmpty ? "no drive yet" : dataset.reachedPools.joined(separator: ", "))"
                )
            } else if stateSeq != nil {
                lines.append("    reached \(backupsvr): nothing yet")
            }
            for drive in dataset.drives {
                let place =
                    switch drive.place {
                    case .dock: "in the dock since \(drive.since ?? "?")"
                    case .offsite: "offsite since \(drive.since ?? "?")"
                    case nil: "not seen since its enrolment"
                    }
                lines.append("    drive \(drive.pool): @\(drive.snapshot), \(place)")
            }
            if let verified = dataset.verified { lines.append("    " + verified.line) }
        }
        for stream in incompleteStreams { lines.append("  " + stream.line) }
        for refusal in refused { lines.append("  " + refusal.line) }
        return lines
    }
}
