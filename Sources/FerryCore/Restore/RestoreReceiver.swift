import Foundation
import Logging
import SystemPackage

/// `ferry receive HOST/DATASET` on a laptop: the `zfsrestore` NNCP exec
/// handler. It takes restores from this laptop's backupsvr only, and
/// receives each under `[restore] into`, unmounted, never over a live
/// dataset: a full stream into a dataset that does not exist yet, an
/// increment onto an earlier restore of the same dataset, or onto a local
/// copy of the live dataset's own base snapshot.
public struct RestoreReceiver: Sendable {
    /// Marks a dataset as ferry's restore; the value is its snapshot.
    public static let markProperty = "ferry:restored"

    public var context: FerryContext
    public var nncp: NNCPConfig

    public init(context: FerryContext, nncp: NNCPConfig) {
        self.context = context
        self.nncp = nncp
    }

    var logger: Logger { context.logger }
    var inventory: ZFSInventory { ZFSInventory(runner: context.runner) }

    /// Checks that NNCP_SENDER is `[send].backupsvr` and that the
    /// destination is HOST/DATASET of this laptop; returns DATASET and
    /// backupsvr's name.
    public func authorize(destination: String, senderID: String?) throws(ReceiveRefusal) -> (dataset: DatasetName, sender: String) {
        guard let senderID, !senderID.isEmpty else {
            throw ReceiveRefusal(problem: "NNCP_SENDER is not set; ferry receive is run by nncp-toss as an exec handler", keepQueued: true)
        }
        let backupsvr = context.config.send.backupsvr
        guard let node = nncp.node(named: backupsvr) else {
            throw ReceiveRefusal(problem: "[send].backupsvr \(backupsvr) is not a node in \(nncp.path)", keepQueued: true)
        }
        guard node.id == senderID else {
            let name = nncp.node(id: senderID).map { $0.name == "self" ? "this laptop itself" : $0.name } ?? printable(senderID)
            throw ReceiveRefusal(
                problem: "a restore from \(name), which is not this laptop's backupsvr (\(backupsvr)); restores come from backupsvr only",
                keepQueued: true)
        }
        let host = SnapshotSender(context: context, nncp: nncp).host
        let name: DatasetName
        do {
            name = try DatasetName(destination)
        } catch {
            throw ReceiveRefusal(problem: "from \(backupsvr): \(error)", keepQueued: false)
        }
        guard name.components.count >= 2, name.components[0] == host,
            let dataset = try? DatasetName(name.components.dropFirst().joined(separator: "/"))
        else {
            throw ReceiveRefusal(problem: "from \(backupsvr): \(name) is not \(host)/DATASET, a dataset of this laptop", keepQueued: false)
        }
        return (dataset, backupsvr)
    }

    /// Receives a restore that came whole.
    @discardableResult
    public func receive(destination: String, senderID: String?, input: FileDescriptor = .standardInput) async throws -> RestoredDataset {
        try context.config.require(.laptop, for: "receive (a restore)")
        let checks = StreamReceiver(context: context, nncp: nncp)
        let dataset: DatasetName
        let header: StreamHeader
        let first: [UInt8]
        do {
            (dataset, _) = try authorize(destination: destination, senderID: senderID)
            (header, first) = try StreamReceiver.readHeader(input)
        } catch {
            checks.refused(error, senderID: senderID, destination: destination, input: input)
            throw error
        }
        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        return try await apply(header, of: dataset, input: input, first: first)
    }

    /// Receives part `part` of a split restore; once the last part is here
    /// and the whole passes its check, the restore is received from the
    /// parts, and they are removed. A restore that cannot be received then
    /// keeps its parts, and is tried again when a part of it comes again
    /// (nncp-toss keeps the packet of a handler that failed). Returns the
    /// restore when it was received.
    @discardableResult
    public func receivePart(
        destination: String, senderID: String?, stream streamText: String, part: Int, input: FileDescriptor = .standardInput
    ) async throws -> RestoredDataset? {
        try context.config.require(.laptop, for: "receive (a restore)")
        let dataset: DatasetName
        let sender: String
        let stream: StreamID
        do {
            (dataset, sender) = try authorize(destination: destination, senderID: senderID)
            stream = try StreamReceiver.streamID(streamText, from: sender)
        } catch {
            StreamReceiver(context: context, nncp: nncp).refused(
                error, senderID: senderID, destination: destination, input: input, extra: ["part": "\(part)"])
            throw error
        }
        let meta: Logger.Metadata = ["dataset": "\(dataset)", "stream": "\(stream)", "part": "\(part)"]
        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        let parts = try PartStore(store: try StreamStore(stateDir: context.config.stateDir))
        let outcome = try StreamReceiver.accept(
            part: part, of: stream, into: parts, sender: sender, senderID: senderID, dataset: dataset, input: input, context: context,
            metadata: meta)
        let incoming: IncomingStream
        let key: String
        switch outcome {
        case .complete(let complete, let completeKey):
            (incoming, key) = (complete, completeKey)
        case .duplicate(let repeated) where repeated.isComplete:
            // The packet of a part that completed a restore which could not
            // be received then (exit 1 kept it queued): try again.
            logger.info("a part of a complete restore came again; receiving the restore", metadata: meta)
            (incoming, key) = (repeated, PartStore.key(senderID: senderID ?? "", stream: stream))
        default:
            logger.info("part of a restore stored; it waits for the rest", metadata: meta)
            return nil
        }
        guard let header = incoming.header else { return nil }
        let restored = try await apply(header, of: dataset, input: try PartsReader.open(parts.partFiles(key)), first: [])
        parts.finish(key)
        return restored
    }

    /// Where a restore of `dataset` lands: `[restore] into`/DATASET.
    public func target(for dataset: DatasetName) -> String {
        dataset.under("\(context.config.restore.root(for: dataset))")
    }

    /// Receives `header`'s stream, read from `input` after `first`, under
    /// `[restore] into`; refuses, reading the input to its end, whatever
    /// would write over a dataset ferry did not restore.
    func apply(_ header: StreamHeader, of dataset: DatasetName, input: FileDescriptor, first: [UInt8]) async throws -> RestoredDataset {
        let target = target(for: dataset)
        let meta: Logger.Metadata = ["dataset": "\(dataset)", "snapshot": "\(printable(header.snapshot))", "into": "\(target)"]
        let applier = DriveApplier(runner: context.runner, options: ReceiveOptions(configured: ["-u"]), logger: logger)
        let pool = String(target.prefix { $0 != "/" })
        var base: String?
        do {
            base = try await prepare(target, for: header, live: "\(dataset)", pool: pool, applier: applier)
        } catch {
            _ = StreamPump.drain(input)
            logger.error("\(error)", metadata: meta)
            throw error
        }
        let preparation = try await applier.prepare(target, for: header, pool: pool)
        let ends = try makePipe()
        let runner = context.runner
        let command = applier.receiveCommand(target)
        let task = Task { try await runner.run(command, inputFrom: ends.read) }
        let outcome = await StreamPump(input: input, store: nil, sinks: [ends.write]).run(first: first)
        let result = try await task.value
        var failure: String?
        if let error = outcome.readError {
            failure = "cannot read the stream: \(error)"
        } else if !header.isEnd(outcome.tail) {
            failure = "\(StreamError.truncated(expectedEndOf: header.toName, bytes: outcome.bytes))"
        } else if !result.status.succeeded {
            failure = "zfs receive into \(target) failed (\(result.status)): \(result.errorTail())"
        }
        try await applier.finish(target, preparation: preparation, received: result.status.succeeded)
        if let failure {
            let refusal = RestoreError(.refused, problem: "the restore of \(dataset)@\(printable(header.snapshot)) failed: \(failure)")
            logger.error("\(refusal)", metadata: meta)
            throw refusal
        }
        try await context.runner.check(Zfs.set(Self.markProperty, header.snapshot, on: target))
        if header.isFull { base = nil }
        let restored = RestoredDataset(
            dataset: "\(dataset)", snapshot: header.snapshot, into: target, from: base,
            created: Date(timeIntervalSince1970: TimeInterval(header.creationTime)).rfc3339, restored: context.clock.now().rfc3339,
            bytes: outcome.bytes)
        try RestoredDatasets(stateDir: context.config.stateDir).record(restored)
        logger.notice(
            "restored \(dataset)@\(printable(header.snapshot)) into \(target), unmounted and read-only",
            metadata: meta.merging(["from": "\(base ?? "(full)")", "bytes": "\(outcome.bytes)"]) { $1 })
        return restored
    }

    /// Makes `target` ready for the stream: the restore root, marked so
    /// that `ferry send` leaves it out; for an increment with nothing there
    /// yet, a local copy of the live dataset's base snapshot. Returns the
    /// base snapshot's name for an increment.
    func prepare(_ target: String, for header: StreamHeader, live: String, pool: String, applier: DriveApplier) async throws -> String? {
        let existing = try await inventory.snapshots(of: target)
        if existing != nil {
            let mark = try await inventory.properties([Self.markProperty], of: [target]).first { $0.source == "local" }
            guard mark != nil else {
                throw RestoreError(.refused, problem: "\(target) exists and is not a restore of ferry's; ferry never receives over it")
            }
        }
        let root = String(target.dropLast(live.count + 1))
        for made in try await applier.makeContainers(above: target, pool: pool) where made == root {
            try await context.runner.check(Zfs.set(SnapshotSender.excludeProperties[0], "on", on: root))
        }
        if header.isFull {
            guard existing?.isEmpty ?? true else {
                throw RestoreError(
                    .refused,
                    problem:
                        "\(target) holds an earlier restore; a full stream never goes over it (zfs rename or destroy it, then restore again)"
                )
            }
            return nil
        }
        if let existing {
            guard let newest = existing.last, newest.guid == header.fromGUID else {
                throw RestoreError(
                    .refused,
                    problem: "\(target) does not end at the increment's base (GUID \(header.fromGUID)); restore a full stream instead")
            }
            return newest.name
        }
        guard let base = try await inventory.snapshots(of: live)?.first(where: { $0.guid == header.fromGUID }) else {
            throw RestoreError(
                .refused,
                problem:
                    "\(live) has no snapshot with the increment's base GUID \(header.fromGUID) any more; restore a full stream instead (ferry restore without --from)"
            )
        }
        // The increment needs its base in the target: a local copy of the
        // live dataset's own snapshot, which never crosses the gap.
        let copy = try await context.runner.pipe(Zfs.send(live, snapshot: base.name, from: nil), into: applier.receiveCommand(target))
        try await applier.finish(target, preparation: .init(), received: copy.succeeded)
        guard copy.succeeded else {
            throw RestoreError(
                .refused,
                problem:
                    "the local copy of \(live)@\(base.name) into \(target) failed: \(copy.consumer.errorTail(lines: 1))\(copy.producer.errorTail(lines: 1))"
            )
        }
        try await context.runner.check(Zfs.set(Self.markProperty, base.name, on: target))
        return base.name
    }
}
