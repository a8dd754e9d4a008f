import Foundation
import Logging
import SystemPackage

public struct SendError: FerryError {
    public enum Code: Sendable, Equatable {
        /// No dataset configured or named, a host with a slash, a
        /// destination outside the simplesnap store or not HOST/DATASET.
        case badRequest
        /// The snapshot the `ferry:sent` mark names is gone.
        case markGone
        /// zfs send or nncp-exec did not succeed.
        case sendFailed(TerminationStatus)
        case execFailed(TerminationStatus)
        /// The stream on standard input could not be read.
        case input(Errno)
        /// Some of the datasets were not sent completely.
        case incomplete
    }
    public var code: Code
    public var problem: String

    public init(_ code: Code, problem: String) {
        self.code = code
        self.problem = problem
    }

    public var description: String { problem }
}

/// What `ferry send` did for one dataset.
public struct DatasetSend: Sendable, Equatable, Codable {
    public var dataset: String
    /// The snapshots queued, in order.
    public var queued: [String]
    /// Set when the dataset was skipped or its sending stopped.
    public var error: String?
}

/// `ferry send` on a laptop: snapshots each configured dataset and its
/// children, and queues the streams for backupsvr with nncp-exec.
///
/// The last snapshot sent is the `ferry:sent` property on the dataset. It
/// moves only after nncp-exec has queued a stream. A run cut short leaves
/// its snapshot behind, and the next run sends every ferry snapshot newer
/// than the mark, in order: a stream that was queued after all arrives
/// twice, and backupsvr drops the copy.
public struct SnapshotSender: Sendable {
    public static let markProperty = "ferry:sent"
    public static let excludeProperties = ["ferry:exclude", "org.complete.simplesnap:exclude"]
    public static let snapshotPrefix = "ferry-"
    public static let handle = "zfsreceive"
    public static let niceness = "B"

    public var context: FerryContext
    public var nncp: NNCPConfig

    public init(context: FerryContext, nncp: NNCPConfig) {
        self.context = context
        self.nncp = nncp
    }

    var logger: Logger { context.logger }
    var inventory: ZFSInventory { ZFSInventory(runner: context.runner) }

    /// The host part of every destination: `[send].host`, else this node's name.
    public var host: String { context.config.send.host ?? nncp.selfName }

    private static func isDigit(_ character: Character) -> Bool { character.isASCII && character.isNumber }

    /// Whether `name` is a snapshot name ferry made: ferry-YYYYMMDDTHHMMSSZ, maybe -N.
    public static func isOwnSnapshot(_ name: String) -> Bool { order(of: name) != nil }

    /// The time stamp and counter of a ferry snapshot name, which order
    /// ferry's snapshots; nil for any other name.
    static func order(of name: String) -> (stamp: String, counter: Int)? {
        guard name.hasPrefix(snapshotPrefix) else { return nil }
        let rest = name.dropFirst(snapshotPrefix.count)
        let stamp = rest.prefix(16)
        guard stamp.count == 16, stamp.prefix(8).allSatisfy(isDigit), stamp.dropFirst(8).first == "T",
            stamp.dropFirst(9).prefix(6).allSatisfy(isDigit), stamp.last == "Z"
        else { return nil }
        let suffix = rest.dropFirst(16)
        if suffix.isEmpty { return (String(stamp), 1) }
        guard suffix.first == "-", let counter = Int(suffix.dropFirst()), counter > 1, suffix.dropFirst().allSatisfy(isDigit)
        else { return nil }
        return (String(stamp), counter)
    }

    public func send(_ requested: [String]) async throws -> [DatasetSend] {
        try context.config.require(.laptop, for: "send")
        let roots = requested.isEmpty ? context.config.send.datasets : requested
        guard !roots.isEmpty else {
            throw SendError(
                .badRequest, problem: "no datasets to send: list them in [send].datasets of \(context.config.path), or name them")
        }
        for root in roots { _ = try DatasetName(root) }
        let destinationHost = try DatasetName(host)
        guard destinationHost.components.count == 1 else {
            throw SendError(.badRequest, problem: "the host name \(host) has a slash; set [send].host")
        }
        let lock = try await HostLock.acquire(.send, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }

        var datasets: [String] = []
        for root in roots {
            let all = try await inventory.datasets(under: root)
            let excluded = Set(
                try await inventory.properties(Self.excludeProperties, of: [root], recursive: true)
                    .filter { $0.value == "on" }.map(\.dataset))
            for dataset in all where !excluded.contains(dataset) && !datasets.contains(dataset) {
                // A restore is a copy of what backupsvr holds already; sent
                // back, it would come round again as a dataset of its own.
                guard !isRestore(dataset) else {
                    logger.info("a restore from backupsvr; it is never sent back", metadata: ["dataset": "\(dataset)"])
                    continue
                }
                datasets.append(dataset)
            }
            for dataset in all where excluded.contains(dataset) {
                logger.info("excluded by its property", metadata: ["dataset": "\(dataset)"])
            }
        }
        let snapshot = try await newSnapshotName(for: datasets)
        var results: [DatasetSend] = []
        for dataset in datasets {
            results.append(await send(dataset, snapshot: snapshot))
        }
        let failed = results.filter { $0.error != nil }
        if !failed.isEmpty {
            throw SendError(
                .incomplete,
                problem: "\(failed.count) of \(results.count) datasets were not sent completely: "
                    + failed.map { "\($0.dataset): \($0.error!)" }.joined(separator: "; "))
        }
        return results
    }

    /// Whether `dataset` lies under `[restore] into` (by default its
    /// pool's ferry-restore), where restores land.
    func isRestore(_ dataset: String) -> Bool {
        guard let name = try? DatasetName(dataset) else { return false }
        return name.isWithin(context.config.restore.root(for: name))
    }

    /// ferry-YYYYMMDDTHHMMSSZ, with -2, -3 … so that it comes after every
    /// ferry snapshot and mark of these datasets: a name sent once is never
    /// used again, even after its snapshot is pruned here, because the
    /// backup drives keep it.
    func newSnapshotName(for datasets: [String]) async throws -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let base = Self.snapshotPrefix + formatter.string(from: context.clock.now())
        var names = Set(try await inventory.properties([Self.markProperty], of: datasets).map(\.value))
        for dataset in datasets {
            for snapshot in try await inventory.snapshots(of: dataset) ?? [] { names.insert(snapshot.name) }
        }
        let latest = names.compactMap(Self.order(of:)).max { ($0.stamp, $0.counter) < ($1.stamp, $1.counter) }
        let stamp = String(base.dropFirst(Self.snapshotPrefix.count))
        guard let latest, latest.stamp >= stamp else { return base }
        // The clock has not moved past the newest name (or went back): count on from it.
        return Self.snapshotPrefix + latest.stamp + "-\(latest.counter + 1)"
    }

    func send(_ dataset: String, snapshot: String) async -> DatasetSend {
        var result = DatasetSend(dataset: dataset, queued: [])
        do {
            let mark = try await inventory.properties([Self.markProperty], of: [dataset]).first { $0.source == "local" }?.value
            try await context.runner.check(Zfs.snapshot(dataset, named: snapshot))
            let snapshots = try await inventory.snapshots(of: dataset) ?? []
            var base: SnapshotInfo?
            if let mark {
                guard let found = snapshots.first(where: { $0.name == mark }) else {
                    throw SendError(
                        .markGone,
                        problem: "its last sent snapshot \(dataset)@\(mark) is gone, so no increment can be made; "
                            + "to start again with a full stream, run `zfs inherit \(Self.markProperty) \(dataset)` "
                            + "and remove the dataset from every backup drive")
                }
                base = found
            }
            let chain = snapshots.filter { Self.isOwnSnapshot($0.name) && $0.createTXG > (base?.createTXG ?? 0) }
            let destination = host + "/" + dataset
            for next in chain {
                try await queue(dataset, snapshot: next.name, from: base?.name, destination: destination)
                try await context.runner.check(Zfs.set(Self.markProperty, next.name, on: dataset))
                result.queued.append(next.name)
                base = next
            }
            if let base {
                for old in snapshots where Self.isOwnSnapshot(old.name) && old.createTXG < base.createTXG {
                    try await context.runner.check(Zfs.destroySnapshot(dataset, named: old.name))
                }
            }
        } catch {
            result.error = "\(error)"
            logger.error("\(error)", metadata: ["dataset": "\(dataset)"])
        }
        return result
    }

    /// Where `queue` sends a stream: the node, its exec handle, and what a
    /// failure leaves to the admin.
    struct QueueTarget: Sendable {
        var node: String
        var handle: String
        /// Said after a failure: what happens next.
        var afterFailure: String
    }

    /// A laptop's streams: to backupsvr's `zfsreceive`.
    var backupsvrTarget: QueueTarget {
        QueueTarget(
            node: context.config.send.backupsvr, handle: Self.handle,
            afterFailure: "nothing is marked sent, and the next run sends it again"
        )
    }

    /// `zfs send | nncp-exec -nice B BACKUPSVR zfsreceive HOST/DATASET`, or
    /// in parts when the stream is larger than `[send] chunk-size`; to
    /// `target` instead of backupsvr when one is given (a restore).
    func queue(_ dataset: String, snapshot: String, from base: String?, destination: String, to target: QueueTarget? = nil) async throws {
        let target = target ?? backupsvrTarget
        let send = Zfs.send(dataset, snapshot: snapshot, from: base)
        if try await exceedsChunk(send, name: "\(dataset)@\(snapshot)", target: target) {
            try await queueInParts(send, name: "\(dataset)@\(snapshot)", from: base, destination: destination, target: target)
            return
        }
        let exec = NNCP.exec(
            config: nncp.path, nice: Self.niceness, node: target.node, handle: target.handle, arguments: [destination]
        ).asUser(context.config.nncpUser)
        let started = ContinuousClock.now
        let result = try await context.runner.pipe(send, into: exec)
        guard result.succeeded else {
            let which = result.producer.status.succeeded ? "nncp-exec" : "zfs send"
            let failed = result.producer.status.succeeded ? result.consumer : result.producer
            throw SendError(
                result.producer.status.succeeded ? .execFailed(failed.status) : .sendFailed(failed.status),
                problem: "\(which) failed for \(dataset)@\(snapshot) (\(failed.status)): \(failed.errorTail()); \(target.afterFailure)")
        }
        logger.info(
            "queued",
            metadata: [
                "dataset": "\(dataset)", "snapshot": "\(snapshot)", "from": "\(base ?? "(full)")", "to": "\(target.node)",
                "destination": "\(destination)", "seconds": "\((ContinuousClock.now - started).components.seconds)",
            ])
    }
}

extension SnapshotSender {
    /// Whether the stream `send` makes is larger than a chunk. Its size is
    /// not known before it is made (zfs-fuse has no `zfs send -nP`), so it
    /// is read once and counted, up to one chunk: a stream that crosses whole
    /// keeps today's path, and a larger one is read again, in parts. Killing
    /// an nncp-exec half way instead would leave its temporary file in the
    /// spool.
    func exceedsChunk(_ send: Command, name: String, target: QueueTarget) async throws -> Bool {
        let ends = try makePipe()
        let runner = context.runner
        let task = Task { try await runner.run(send, outputTo: ends.write) }
        let counted = await StreamSplitter.exceeds(context.config.send.chunkSize, input: ends.read)
        // zfs send stops on the closed pipe once it is past the chunk.
        try? ends.read.close()
        let result = try await task.value
        let exceeds: Bool
        switch counted {
        case .success(let answer): exceeds = answer
        case .failure(let error): throw SendError(.input(error), problem: "cannot read the stream of \(name): \(error)")
        }
        if !exceeds, !result.status.succeeded {
            throw SendError(
                .sendFailed(result.status),
                problem: "zfs send failed for \(name) (\(result.status)): \(result.errorTail()); \(target.afterFailure)")
        }
        return exceeds
    }

    /// `zfs send`, cut into parts of at most `[send] chunk-size`, each queued
    /// with `nncp-exec ... zfsreceive HOST/DATASET --stream ID --part N`.
    func queueInParts(_ send: Command, name: String, from base: String?, destination: String, target: QueueTarget) async throws {
        let ends = try makePipe()
        let runner = context.runner
        let producer = Task { try await runner.run(send, outputTo: ends.write) }
        let splitter = partSplitter(destination: destination, target: target) {
            let result = try await producer.value
            guard result.status.succeeded else {
                throw SendError(
                    .sendFailed(result.status),
                    problem: "zfs send failed for \(name) (\(result.status)): \(result.errorTail()); \(target.afterFailure)")
            }
        }
        let started = ContinuousClock.now
        let outcome: StreamSplitter.Outcome
        do {
            outcome = try await splitter.split(ends.read, first: [])
        } catch {
            try? ends.read.close()
            _ = try? await producer.value
            throw error
        }
        try? ends.read.close()
        logger.info(
            "queued in parts",
            metadata: [
                "snapshot": "\(name)", "from": "\(base ?? "(full)")", "to": "\(target.node)",
                "destination": "\(destination)",
                "stream": "\(splitter.stream)", "parts": "\(outcome.parts)", "bytes": "\(outcome.bytes)",
                "seconds": "\((ContinuousClock.now - started).components.seconds)",
            ])
    }

    /// Splits a stream for `destination` into parts queued with nncp-exec.
    func partSplitter(destination: String, target: QueueTarget? = nil, ended: @escaping @Sendable () async throws -> Void = {})
        -> StreamSplitter
    {
        let runner = context.runner
        let target = target ?? backupsvrTarget
        let (config, node, handle, user) = (nncp.path, target.node, target.handle, context.config.nncpUser)
        let stream = StreamID.random()
        return StreamSplitter(
            chunkSize: context.config.send.chunkSize, stream: stream,
            queuePart: { number, input in
                let exec = NNCP.execPart(
                    config: config, nice: Self.niceness, node: node, handle: handle, destination: destination, stream: "\(stream)",
                    part: number)
                return try await runner.run(exec.asUser(user), inputFrom: input)
            }, ended: ended)
    }
}

/// `ferry queue DEST`: simplesnap's `--receivecmd`. The stream on standard
/// input goes to backupsvr with nncp-exec, through ferry only to check its
/// header first.
public struct StreamQueue: Sendable {
    public var context: FerryContext
    public var nncp: NNCPConfig

    public init(context: FerryContext, nncp: NNCPConfig) {
        self.context = context
        self.nncp = nncp
    }

    /// The destination from simplesnap's argument: the store prefix
    /// (`[send].simplesnap-store`) stripped, leaving HOST/DATASET.
    public func destination(_ argument: String) throws -> DatasetName {
        var text = argument
        if let store = context.config.send.simplesnapStore, !store.isEmpty {
            guard text.hasPrefix(store + "/") else {
                throw SendError(
                    .badRequest, problem: "\(printable(argument)) is not under the simplesnap store \(store) ([send].simplesnap-store)")
            }
            text = String(text.dropFirst(store.count + 1))
        }
        let name = try DatasetName(text)
        guard name.components.count >= 2 else {
            throw SendError(.badRequest, problem: "\(printable(text)) is not HOST/DATASET")
        }
        return name
    }

    public func queue(_ argument: String, input: FileDescriptor = .standardInput) async throws {
        try context.config.require(.laptop, for: "queue")
        let destination = try destination(argument)
        let first = try StreamPump.readPrefix(input, count: StreamHeader.recordSize)
        let header = try StreamHeader(parsing: first)
        // Standard input cannot be read twice, so a stream's size is never
        // known before it is sent: every stream goes in the part format, a
        // small one as a single part, so that none is ever larger than
        // `[send] chunk-size`.
        let splitter = SnapshotSender(context: context, nncp: nncp).partSplitter(destination: "\(destination)")
        let outcome = try await splitter.split(input, first: first)
        context.logger.info(
            "queued",
            metadata: [
                "destination": "\(destination)", "snapshot": "\(printable(header.toName))", "bytes": "\(outcome.bytes)",
                "parts": "\(outcome.parts)", "stream": "\(splitter.stream)",
            ])
    }
}
