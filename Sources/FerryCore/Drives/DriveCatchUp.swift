import Logging

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
