import Crypto
import Foundation

/// `state-dir/refused.json` on backupsvr: the streams `ferry receive`
/// refused, by sender, so that each laptop learns of its own.
struct RefusalLog: Sendable {
    static let fileName = "refused.json"
    /// The most refusals kept per sender: the newest ones.
    static let perSender = 20

    var stateDir: String
    var file: StateFile<[RefusedStream]> { StateFile(Self.fileName, stateDir: stateDir) }

    /// The refusals; a problem with the file is handed to `report`.
    func load(reporting report: (String) -> Void = { _ in }) -> [RefusedStream] { file.load(reporting: report) ?? [] }

    /// Records a refusal; the same one again changes nothing, so that a
    /// packet refused on every toss does not make a new state message each time.
    func record(sender: String, destination: String, reason: String, at time: Date) throws {
        var all = load()
        let refusal = RefusedStream(
            sender: sender, destination: printable(destination, limit: 300), reason: printable(reason, limit: 500), since: time.rfc3339)
        guard !all.contains(where: { ($0.sender, $0.destination, $0.reason) == (refusal.sender, refusal.destination, refusal.reason) })
        else { return }
        all.append(refusal)
        let mine = all.filter { $0.sender == sender }
        if mine.count > Self.perSender {
            let dropped = Set(mine.prefix(mine.count - Self.perSender).map(\.since))
            all.removeAll { $0.sender == sender && dropped.contains($0.since) }
        }
        try file.write(all)
    }
}

/// The restore drills' results, newest per dataset: `state-dir/verified.json`,
/// on backupsvr and on the laptop alike.
public struct VerifyResults: Sendable {
    static let fileName = "verified.json"
    public var stateDir: String

    public init(stateDir: String) {
        self.stateDir = stateDir
    }

    var file: StateFile<[VerifyResult]> { StateFile(Self.fileName, stateDir: stateDir) }

    /// The results; a problem with the file is handed to `report`.
    public func load(reporting report: (String) -> Void = { _ in }) -> [VerifyResult] { file.load(reporting: report) ?? [] }

    /// Keeps `result` unless a later request of the same dataset is known
    /// already (results only move forward); returns whether it was kept.
    @discardableResult
    public func record(_ result: VerifyResult) throws -> Bool {
        var all = load()
        if let index = all.firstIndex(where: { $0.dataset == result.dataset }) {
            let known = all[index]
            guard let new = Date(rfc3339: result.requested), let old = Date(rfc3339: known.requested) else { return false }
            if new < old || (new == old && known.compared != nil && result.compared == nil) { return false }
            all[index] = result
        } else {
            all.append(result)
        }
        all.sort { $0.dataset < $1.dataset }
        try file.write(all)
        return true
    }

    /// The warnings for `datasets`: each one whose last equal drill is
    /// older than `limit`, or that was never verified.
    public static func warnings(for datasets: [String], results: [VerifyResult], limit: Duration, now: Date) -> [String] {
        datasets.compactMap { dataset in
            let passed = results.first { $0.dataset == dataset && $0.equal == true }
            guard let passed, let compared = passed.compared.flatMap({ Date(rfc3339: $0) }) else {
                return "\(dataset) has not been verified yet (ferry verify \(dataset) on backupsvr)"
            }
            guard now.timeIntervalSince(compared) > limit.timeInterval else { return nil }
            return
                "\(dataset) was last verified equal \(passed.compared!), more than \(limit.configText) ago (ferry verify \(dataset) on backupsvr)"
        }
    }
}

/// On backupsvr: queues to each laptop the part of backupsvr's state that
/// concerns it, over NNCP to its `ferrystate` handle, when that part changed.
public struct LaptopStates: Sendable {
    static let sentFile = "laptop-states.json"

    /// What was last sent to one laptop.
    struct Sent: Codable, Equatable {
        var seq: UInt64
        /// Hex SHA-256 of the state sent, so that an unchanged state is not sent again.
        var digest: String
    }

    public var context: FerryContext
    public var nncp: NNCPConfig

    public init(context: FerryContext, nncp: NNCPConfig) {
        self.context = context
        self.nncp = nncp
    }

    /// The configured senders that are NNCP neighbours, with their prefixes.
    var laptops: [(name: String, prefix: DatasetName)] {
        context.config.receive.senders.sorted { $0.key < $1.key }.compactMap { sender, prefix in
            guard nncp.neighbours[sender] != nil, let prefix = try? DatasetName(prefix) else { return nil }
            return (sender, prefix)
        }
    }

    /// The state for each configured sender that is an NNCP neighbour.
    func states(from state: BackupsvrState) -> [LaptopState] {
        let config = context.config
        let refusals = RefusalLog(stateDir: config.stateDir).load()
        let verified = VerifyResults(stateDir: config.stateDir).load()
        return laptops.map { sender, prefix in
            func mine(_ name: String) -> Bool { (try? DatasetName(name))?.isWithin(prefix) ?? false }
            return LaptopState(
                host: sender, datasets: state.datasets.filter { mine($0.dataset) },
                drives: state.drives.map {
                    LaptopDrive(
                        pool: $0.pool, place: $0.place, since: $0.since, retired: $0.retired,
                        datasets: ($0.datasets ?? []).filter { mine($0.dataset) })
                },
                incompleteStreams: state.incompleteStreams.filter { $0.sender == sender || mine($0.dataset) },
                refused: refusals.filter { $0.sender == sender }, verified: verified.filter { mine($0.dataset) })
        }
    }

    /// Queues a state message to every laptop whose state changed since the
    /// last one; returns the laptops it queued for. A laptop that cannot be
    /// reached now is logged, and tried again at the next toss.
    @discardableResult
    public func queueChanged() async throws -> [String] {
        guard !laptops.isEmpty else { return [] }
        return try await queueChanged(from: try await DriveDock(context: context).backupsvrState())
    }

    /// The same, from a state the caller has read already.
    @discardableResult
    public func queueChanged(from state: BackupsvrState) async throws -> [String] {
        guard !laptops.isEmpty else { return [] }
        let file = StateFile<[String: Sent]>(Self.sentFile, stateDir: context.config.stateDir)
        var sent = file.load { context.logger.warning("\($0)") } ?? [:]
        var queued: [String] = []
        for laptop in states(from: state) {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let digest = Hex.encode(SHA256.hash(data: try encoder.encode(laptop)))
            if sent[laptop.host]?.digest == digest { continue }
            let seq = (sent[laptop.host]?.seq ?? 0) + 1
            let message = StateMessage(kind: .state, seq: seq, time: context.clock.now().rfc3339, state: laptop)
            do {
                try await context.runner.check(
                    NNCP.execState(config: nncp.path, node: laptop.host).asUser(context.config.nncpUser), input: message.bytes)
            } catch {
                context.logger.warning("could not queue the state message for \(laptop.host): \(error); the next toss tries again")
                continue
            }
            sent[laptop.host] = Sent(seq: seq, digest: digest)
            try file.write(sent)
            queued.append(laptop.host)
            context.logger.info("queued this host's state for \(laptop.host)", metadata: ["seq": "\(seq)"])
        }
        return queued
    }
}
