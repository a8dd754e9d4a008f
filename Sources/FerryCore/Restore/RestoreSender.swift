import Foundation
import Logging

public struct RestoreError: FerryError {
    public enum Code: Sendable, Equatable {
        /// No sender in `[receive].senders` writes under the dataset.
        case noSender
        /// No present drive holds the snapshot, or the base named.
        case notHere
        /// The base is not older than the snapshot restored.
        case badBase
        /// What arrived at the laptop cannot be received there.
        case refused
    }
    public var code: Code
    public var problem: String

    public init(_ code: Code, problem: String) {
        self.code = code
        self.problem = problem
    }

    public var description: String { problem }
}

/// What `ferry restore` queued.
public struct RestoreQueued: Sendable, Equatable {
    /// The laptop's NNCP node it goes to.
    public var node: String
    public var pool: String
    /// HOST/DATASET@SNAPSHOT.
    public var snapshot: String
    /// The increment's base, or nil for a full stream.
    public var base: String?
}

/// `ferry restore HOST/DATASET[@SNAPSHOT]` on backupsvr: a stream of that
/// snapshot from a present drive, queued with nncp-exec for the `zfsrestore`
/// handle of the laptop that sent it (the node `[receive].senders` lets
/// write under HOST/DATASET). It crosses like any packet, in parts above
/// `[send] chunk-size`, encrypted to the laptop: the spooler cannot read it.
public struct RestoreSender: Sendable {
    public static let handle = "zfsrestore"

    public var context: FerryContext
    public var nncp: NNCPConfig

    public init(context: FerryContext, nncp: NNCPConfig) {
        self.context = context
        self.nncp = nncp
    }

    var logger: Logger { context.logger }

    /// Queues `dataset@snapshot` (the newest on the present drives when nil)
    /// for its laptop: the increment from `base` when the admin knows the
    /// laptop still has that snapshot, else the whole snapshot.
    public func restore(_ dataset: DatasetName, snapshot: String?, from base: String?) async throws -> RestoreQueued {
        try context.config.require(.backupsvr, for: "restore")
        let senders = context.config.receive.senders.sorted { $0.key < $1.key }
        guard let node = senders.first(where: { (try? DatasetName($0.value)).map(dataset.isWithin) ?? false })?.key else {
            throw RestoreError(
                .noSender,
                problem:
                    "no sender in [receive].senders of \(context.config.path) writes under \(dataset): a restore goes back to the laptop that sent the dataset"
            )
        }
        guard nncp.node(named: node) != nil else {
            throw RestoreError(.noSender, problem: "sender \(node) of [receive].senders is not a node in \(nncp.path)")
        }
        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        let inventory = ZFSInventory(runner: context.runner)
        var candidates: [(drive: PresentDrive, snapshots: [SnapshotInfo])] = []
        for drive in try await StoreApplier.presentDrives(enrolled: try context.drives.load(), context: context) {
            if let snapshots = try await inventory.snapshots(of: drive.target(dataset)), !snapshots.isEmpty {
                candidates.append((drive, snapshots))
            }
        }
        let chosen: (drive: PresentDrive, snapshot: SnapshotInfo)
        if let snapshot {
            guard let found = candidates.lazy.compactMap({ c in c.snapshots.first { $0.name == snapshot }.map { (c.drive, $0) } }).first
            else {
                throw RestoreError(
                    .notHere,
                    problem:
                        "no drive in the dock holds \(dataset)@\(printable(snapshot)); plug in one that does (ferry drive list shows what each holds)"
                )
            }
            chosen = found
        } else {
            guard
                let found = candidates.compactMap({ c in c.snapshots.last.map { (drive: c.drive, snapshot: $0) } })
                    .max(by: { ($0.snapshot.creation ?? 0) < ($1.snapshot.creation ?? 0) })
            else {
                throw RestoreError(
                    .notHere,
                    problem: "no drive in the dock holds \(dataset); plug in one that does (ferry drive list shows what each holds)")
            }
            chosen = found
        }
        let source = chosen.drive.target(dataset)
        if let base {
            let snapshots = candidates.first { $0.drive == chosen.drive }?.snapshots ?? []
            guard let found = snapshots.first(where: { $0.name == base }) else {
                throw RestoreError(
                    .notHere, problem: "\(chosen.drive.pool) holds no \(dataset)@\(printable(base)) to send an increment from")
            }
            guard found.createTXG < chosen.snapshot.createTXG else {
                throw RestoreError(
                    .badBase, problem: "\(dataset)@\(printable(base)) is not older than @\(chosen.snapshot.name); an increment goes forward"
                )
            }
        }
        let target = SnapshotSender.QueueTarget(
            node: node, handle: Self.handle, afterFailure: "nothing was queued whole; run ferry restore again")
        try await SnapshotSender(context: context, nncp: nncp).queue(
            source, snapshot: chosen.snapshot.name, from: base, destination: "\(dataset)", to: target)
        let queued = RestoreQueued(node: node, pool: chosen.drive.pool, snapshot: "\(dataset)@\(chosen.snapshot.name)", base: base)
        logger.info(
            "restore queued",
            metadata: ["snapshot": "\(queued.snapshot)", "from": "\(base ?? "(full)")", "pool": "\(queued.pool)", "to": "\(node)"])
        return queued
    }
}
