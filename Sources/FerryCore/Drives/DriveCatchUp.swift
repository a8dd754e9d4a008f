import Foundation
import Logging
import SystemPackage

extension DriveDock {
    /// Brings `drive` up to date from the drives in `sources`, dataset by
    /// dataset, with a local `zfs send -I` from the first source that holds
    /// the drive's newest snapshot (or a full send and `-I` for a dataset the
    /// drive lacks). Snapshots keep their GUIDs, so the store's streams that
    /// the drive now holds count as applied. What no source can give stays
    /// for the store.
    func catchUpFromPresent(_ drive: PresentDrive, sources: [PresentDrive]) async throws -> StoreApplier.Outcome {
        var outcome = StoreApplier.Outcome()
        guard !sources.isEmpty else { return outcome }
        let options = await ReceiveOptions.probe(for: [drive], context: context)
        let applier = DriveApplier(runner: context.runner, options: options, logger: logger)
        var done: Set<String> = []
        for source in sources {
            for newest in try await inventory.newestSnapshots(under: source.pool) where !done.contains(newest.dataset) {
                let from = source.pool + "/" + newest.dataset
                let target = drive.pool + "/" + newest.dataset
                guard let available = try await inventory.snapshots(of: from), let last = available.last else { continue }
                let held = try await inventory.snapshots(of: target)
                var base = held?.last
                if let base, base.guid == last.guid {
                    done.insert(newest.dataset)
                    continue
                }
                if let known = base, !available.contains(where: { $0.guid == known.guid && $0.name == known.name }) {
                    continue  // this source thinned the drive's base away, or never had it
                }
                var made: [String] = []
                if held == nil {
                    made = try await applier.makeContainers(above: target, pool: drive.pool)
                    let first = available[0]
                    guard
                        try await copy(
                            Zfs.send(from, snapshot: first.name, from: nil), into: target, applier: applier, drive: drive, outcome: &outcome
                        )
                    else {
                        for container in made.reversed() { try await context.runner.check(Zfs.destroyEmpty(container)) }
                        continue
                    }
                    base = first
                    if first.guid == last.guid {
                        done.insert(newest.dataset)
                        continue
                    }
                }
                guard let base else { continue }
                if try await copy(
                    Zfs.sendRange(from, from: base.name, to: last.name), into: target, applier: applier, drive: drive, outcome: &outcome)
                {
                    logger.info(
                        "caught up from a present drive",
                        metadata: [
                            "dataset": "\(newest.dataset)", "from": "\(source.pool)", "pool": "\(drive.pool)",
                            "snapshot": "\(printable(last.name))",
                        ])
                    done.insert(newest.dataset)
                }
            }
        }
        return outcome
    }

    /// Runs `send | zfs receive target` and makes what arrived safe; a
    /// failure is a warning: the store's streams are tried next.
    private func copy(_ send: Command, into target: String, applier: DriveApplier, drive: PresentDrive, outcome: inout StoreApplier.Outcome)
        async throws
        -> Bool
    {
        let result = try await context.runner.pipe(send, into: applier.receiveCommand(target))
        try await applier.finish(target, preparation: .init(), received: result.succeeded)
        guard result.succeeded else {
            let line =
                "catching \(target) up from a present drive failed: zfs send \(result.producer.status), zfs receive \(result.consumer.status): \(result.consumer.errorTail(lines: 2))\(result.producer.errorTail(lines: 1))"
            logger.warning("\(line); the store's streams are tried next")
            return false
        }
        outcome.applied += 1
        return true
    }
}

extension DriveDock {
    /// Before `leaving` is exported: the store let go of streams that a
    /// drive away can get from `leaving`. Unless another drive that stays
    /// in the dock can give them, they go back into the store, one `zfs
    /// send -i` per snapshot from the away drive's newest (as recorded at its
    /// eject) on, so that a returning drive never needs a stream the store
    /// dropped. Returns what was stored.
    func keepForAway(leaving: EnrolledDrive) async throws -> PacketCount {
        let away = try registry.active().filter { $0.guid != leaving.guid && $0.place != .dock }
        guard !away.isEmpty else { return PacketCount() }
        let staying = try await StoreApplier.presentDrives(enrolled: try registry.active(), context: context)
            .filter { $0.drive.guid != leaving.guid }
        let store = try openStore()
        var kept = PacketCount()
        for newest in try await inventory.newestSnapshots(under: leaving.pool) {
            let source = leaving.pool + "/" + newest.dataset
            guard let dataset = try? DatasetName(newest.dataset), let chain = try await inventory.snapshots(of: source) else { continue }
            var stayingChains: [[SnapshotInfo]] = []
            for drive in staying { stayingChains.append(try await inventory.snapshots(of: drive.target(dataset)) ?? []) }
            for drive in away {
                let base = drive.datasets?.first { $0.dataset == newest.dataset }?.snapshot
                guard let start = base.map({ name in chain.firstIndex { $0.name == name }.map { $0 + 1 } }) ?? 0 else { continue }
                // A drive that stays and holds the base and the newest serves instead.
                if stayingChains.contains(where: { held in
                    held.contains { $0.guid == chain.last?.guid } && (base == nil || held.contains { $0.name == base })
                }) {
                    continue
                }
                for index in chain.indices where index >= start {
                    let from = index > 0 ? chain[index - 1] : nil
                    if let size = try await storeStream(
                        Zfs.send(source, snapshot: chain[index].name, from: from?.name), dataset: dataset, leaving: leaving, into: store)
                    {
                        kept.packets += 1
                        kept.bytes += size
                    }
                }
            }
        }
        if kept.packets > 0 {
            logger.info(
                "kept \(kept.packets) stream(s) (\(humanSize(kept.bytes))) in the store for the drives away: \(leaving.pool) goes and no drive that stays holds them"
            )
        }
        return kept
    }

    /// Writes `send`'s stream into the store, unless the store holds it
    /// already; returns its size when it was stored.
    private func storeStream(_ send: Command, dataset: DatasetName, leaving: EnrolledDrive, into store: StreamStore) async throws -> UInt64?
    {
        let temporary = "kept-" + UUID().uuidString
        let file = try store.create(temporary)
        defer { try? file.close() }
        // The runner closes what it is given; the store needs the file after.
        let result = try await context.runner.run(send, outputTo: try file.duplicate())
        guard result.status.succeeded else {
            store.discard(temporary)
            throw DriveError(
                .exportFailed(result.status), subject: leaving.pool,
                problem:
                    "could not keep a stream for the drives away (\(result.status)): \(result.errorTail(lines: 1)); nothing was exported")
        }
        let size = UInt64(try file.seek(offset: 0, from: .end))
        let header = try StreamHeader(parsing: try store.prefix(ofPart: temporary, count: StreamHeader.recordSize))
        let id = StoredStream.id(for: header)
        guard !store.contains(id) else {
            store.discard(temporary)
            return nil
        }
        let stream = StoredStream(
            id: id, sender: "drive \(leaving.pool)", dataset: dataset, header: header, bytes: size, received: context.clock.now().rfc3339,
            applied: [leaving.guid])
        try store.commit(stream, file: file, writtenAs: temporary)
        return size
    }
}
