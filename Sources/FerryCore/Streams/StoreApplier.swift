import Logging

/// Applies what waits in the stream store to the drives that are here, in
/// chain order, and removes a stream once every enrolled drive holds it or
/// can catch up to it from a drive in the dock.
public struct StoreApplier: Sendable {
    public var context: FerryContext
    public var store: StreamStore

    public init(context: FerryContext, store: StreamStore) {
        self.context = context
        self.store = store
    }

    var logger: Logger { context.logger }

    /// The enrolled drives whose pool is imported now with the enrolled
    /// GUID. A pool of the same name with another GUID is not the drive.
    public static func presentDrives(enrolled: [EnrolledDrive], context: FerryContext) async throws -> [PresentDrive] {
        guard !enrolled.isEmpty else { return [] }
        let pools = try await ZFSInventory(runner: context.runner).importedPools()
        var present: [PresentDrive] = []
        for drive in enrolled {
            guard let pool = pools.first(where: { $0.name == drive.pool }) else { continue }
            if pool.guid != drive.guid {
                context.logger.warning(
                    "pool \(drive.pool) is imported with GUID \(pool.guid), not the enrolled drive's \(drive.guid); it is not used")
            } else if !pool.isUsable {
                context.logger.warning("drive \(drive.pool) is \(pool.health): it was pulled, or is failing; it is not used")
            } else {
                present.append(PresentDrive(drive: drive))
            }
        }
        return present
    }

    /// What one catch-up did.
    public struct Outcome: Sendable, Equatable {
        public var applied = 0
        /// One line per stream a drive could not take (out of space, a zfs
        /// error); those streams stay in the store.
        public var failures: [String] = []

        public mutating func add(_ other: Outcome) {
            applied += other.applied
            failures += other.failures
        }
    }

    /// Applies every stored stream that fits a present drive's chain, until
    /// none does, then prunes the store.
    /// `present` and `options`, when the caller has them, save asking zfs again.
    /// `inDock`: every drive in the dock, when streams go to only some of
    /// them (`present`); what they hold need not stay in the store.
    @discardableResult
    public func applyPending(
        present known: [PresentDrive]? = nil, options knownOptions: ReceiveOptions? = nil, inDock: [PresentDrive]? = nil
    ) async throws -> Outcome {
        let enrolled = try context.drives.active()
        let present = if let known { known } else { try await Self.presentDrives(enrolled: enrolled, context: context) }
        let options = if let knownOptions { knownOptions } else { await ReceiveOptions.probe(for: present, context: context) }
        var outcome = Outcome()
        for drive in present {
            outcome.add(try await catchUp(drive, options: options))
        }
        try await prune(enrolled: enrolled, present: inDock ?? present)
        return outcome
    }

    /// Applies to `drive` every stored stream it lacks, as far as its chains go.
    func catchUp(_ drive: PresentDrive, options: ReceiveOptions) async throws -> Outcome {
        let applier = DriveApplier(runner: context.runner, options: options, logger: logger)
        var outcome = Outcome()
        var failed: Set<String> = []
        var received: Set<String> = []
        var progress = true
        while progress {
            progress = false
            let streams = try store.streams().filter { !$0.applied.contains(drive.drive.guid) && !failed.contains($0.id) }
            // Parents before children, then in the order they arrived.
            for var stream in streams.sorted(by: { ($0.dataset.components.count, $0.received) < ($1.dataset.components.count, $1.received) }
            ) {
                let pending = streams.filter { $0.id != stream.id }
                let meta: Logger.Metadata = [
                    "sender": "\(stream.sender)", "dataset": "\(stream.dataset)", "snapshot": "\(printable(stream.header.snapshot))",
                    "pool": "\(drive.pool)",
                ]
                switch try await applier.readiness(of: stream.header, for: stream.dataset, on: drive, pending: pending) {
                case .holds:
                    stream.applied.append(drive.drive.guid)
                    try store.save(stream)
                    progress = true
                case .ready:
                    let target = drive.target(stream.dataset)
                    let preparation: DriveApplier.Preparation
                    do {
                        preparation = try await applier.prepare(
                            target, for: stream.header, pool: drive.pool, cleanSince: received.contains(target))
                    } catch {
                        let line = "\(target)@\(printable(stream.header.snapshot)) cannot be received now: \(error)"
                        logger.error("\(line); the stream stays in the store", metadata: meta)
                        outcome.failures.append(line)
                        failed.insert(stream.id)
                        progress = true
                        break
                    }
                    let result = try await context.runner.run(applier.receiveCommand(target), inputFrom: try store.open(stream.id))
                    try await applier.finish(target, preparation: preparation, received: result.status.succeeded)
                    guard result.status.succeeded else {
                        let line =
                            "zfs receive into \(target)@\(printable(stream.header.snapshot)) failed (\(result.status)): \(result.errorTail())"
                        logger.error("\(line); the stream stays in the store", metadata: meta)
                        outcome.failures.append(line)
                        failed.insert(stream.id)
                        progress = true
                        break
                    }
                    logger.info("received from the store", metadata: meta.merging(["bytes": "\(stream.bytes)"]) { $1 })
                    stream.applied.append(drive.drive.guid)
                    received.insert(target)
                    try ReceivedDatasets(stateDir: context.config.stateDir).record(stream, pool: drive.pool, at: context.clock.now())
                    try store.save(stream)
                    outcome.applied += 1
                    progress = true
                case .waiting, .conflict:
                    continue
                }
                break  // re-read the store: one change can make others ready
            }
        }
        return outcome
    }

    /// Removes the streams that every enrolled drive holds, or can get from
    /// a drive in `present` that holds them: a drive away whose newest
    /// snapshot of the dataset (as recorded at its eject) is on such a drive
    /// catches up from it with `zfs send -I` when both are in the dock, and
    /// thinning keeps that snapshot there. A drive with no record of the
    /// dataset gets it whole.
    func prune(enrolled: [EnrolledDrive], present: [PresentDrive] = []) async throws {
        guard !enrolled.isEmpty else { return }
        let inventory = ZFSInventory(runner: context.runner)
        var onDrive: [String: [SnapshotInfo]] = [:]
        for stream in try store.streams() {
            let lacking = enrolled.filter { !stream.applied.contains($0.guid) }
            let sources = present.filter { stream.applied.contains($0.drive.guid) }
            var replaceable = true
            for drive in lacking {
                guard !present.contains(where: { $0.drive.guid == drive.guid }) else {
                    replaceable = false  // it is here and could not take it: keep it for a retry
                    break
                }
                let base = drive.datasets?.first { $0.dataset == "\(stream.dataset)" }?.snapshot
                var found = false
                for source in sources {
                    let target = source.target(stream.dataset)
                    if onDrive[target] == nil { onDrive[target] = try await inventory.snapshots(of: target) ?? [] }
                    if base == nil || onDrive[target]!.contains(where: { $0.name == base }) {
                        found = true
                        break
                    }
                }
                if !found {
                    replaceable = false
                    break
                }
            }
            guard replaceable else { continue }
            try store.remove(stream.id)
            logger.debug(
                lacking.isEmpty
                    ? "every drive holds this stream; removed from the store"
                    : "a drive in the dock holds this stream for the drives away; removed from the store",
                metadata: ["dataset": "\(stream.dataset)"])
        }
    }
}
