import Foundation
import Logging

/// The backup drives' lifecycle on backupsvr (DESIGN.md section 4): plug-in,
/// eject, retire and seed, and what each drive holds and lacks.
///
/// Every change takes the streams lock, so it never races a `ferry receive`
/// writing to the same pools or the same store.
public struct DriveDock: Sendable {
    public var context: FerryContext

    public init(context: FerryContext) {
        self.context = context
    }

    var logger: Logger { context.logger }
    var inventory: ZFSInventory { ZFSInventory(runner: context.runner) }
    func openStore() throws -> StreamStore { try StreamStore(stateDir: context.config.stateDir) }
    var registry: DriveRegistry { context.drives }

    // MARK: Plug-in

    /// What a plug-in did.
    public struct PlugIn: Sendable, Equatable {
        public var drive: EnrolledDrive
        /// The drive had been pulled without eject, and ferry recovered it.
        public var recovered: String?
        public var outcome: StoreApplier.Outcome
    }

    /// Imports the enrolled drive on `device` by GUID, without mounting
    /// anything, and applies every stream it missed, in chain order.
    public func plugIn(_ device: BlockDevice, drive known: EnrolledDrive) async throws -> PlugIn {
        try context.config.require(.backupsvr, for: "a backup drive's plug-in")
        var recovered: String?
        // A drive pulled mid-receive leaves its pool imported with its I/O
        // suspended, and that receive holding the streams lock. With the
        // device back, `zpool clear` resumes the pool, so the receive
        // finishes and lets go of the lock. (Never a probe: on a pool whose
        // device is still gone, clear suspends it.)
        if let left = try await inventory.importedPools().first(where: { $0.guid == known.guid }), left.health == PoolState.suspended {
            recovered = "it was pulled while in use (its I/O suspended); zpool clear resumed it"
            logger.warning("drive \(known.pool) was pulled while in use; resuming it with zpool clear")
            let cleared = try await context.runner.run(Zpool.clear(pool: left.name), input: nil)
            if !cleared.status.succeeded {
                logger.warning("zpool clear \(left.name) failed (\(cleared.status)): \(cleared.errorTail(lines: 1))")
            }
        }
        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        // Read again under the lock: a status may have marked it pulled.
        let enrolled = try registry.load().first { $0.guid == known.guid } ?? known
        let label = device.filesystem.label ?? ""
        guard label == enrolled.pool else {
            throw NotOursDriveError(
                devnode: device.devnode,
                reason:
                    "it holds pool \(printable(label)) with the GUID of enrolled drive \(enrolled.pool) (\(enrolled.guid)); a renamed pool is not imported"
            )
        }
        let pools = try await inventory.importedPools()
        if let clash = pools.first(where: { $0.name == enrolled.pool && $0.guid != enrolled.guid }) {
            throw NotOursDriveError(
                devnode: device.devnode,
                reason:
                    "a pool named \(enrolled.pool) with another GUID (\(clash.guid)) is imported already; ferry will not import \(enrolled.guid) beside it"
            )
        }
        if let mine = pools.first(where: { $0.guid == enrolled.guid }), !mine.isUsable {
            recovered = "it was \(mine.health): pulled without ferry drive eject"
            logger.warning("drive \(enrolled.pool) is \(mine.health): it was pulled without eject; trying zpool clear now that it is back")
            // With the device back, the pool resumes, and an interrupted
            // receive goes on; otherwise it is exported and imported afresh.
            let cleared = try await context.runner.run(Zpool.clear(pool: enrolled.pool), input: nil)
            let after = try await inventory.importedPools().first { $0.guid == enrolled.guid }
            if !cleared.status.succeeded || after?.isUsable != true {
                logger.warning(
                    "drive \(enrolled.pool) is still \(after?.health ?? "gone"); exporting what is left of it and importing it again")
                try await exportGone(enrolled.pool)
                try await importPool(enrolled, device: device)
            }
        } else if pools.first(where: { $0.guid == enrolled.guid }) == nil {
            if enrolled.place == .dock, enrolled.pulled == nil {
                recovered = "it was never ejected: pulled without ferry drive eject, or not imported since backupsvr started"
            }
            try await importPool(enrolled, device: device)
        }
        if recovered == nil, let pulled = enrolled.pulled {
            recovered = "it was pulled without ferry drive eject (noticed \(pulled))"
        }
        if let recovered { logger.warning("drive \(enrolled.pool) recovered: \(recovered)") }
        logger.info("drive \(enrolled.pool) is imported; catching it up", metadata: ["guid": "\(enrolled.guid)"])

        let present = try await StoreApplier.presentDrives(enrolled: try registry.active(), context: context)
        let returning = PresentDrive(drive: enrolled)
        let others = present.filter { $0.drive.guid != enrolled.guid }
        var outcome = try await catchUpFromPresent(returning, sources: others)
        // And the other way: a drive in the dock that missed what only this
        // one holds (the store let go of it) catches up from it.
        for other in others { _ = try await catchUpFromPresent(other, sources: [returning]) }
        outcome.add(
            try await StoreApplier(context: context, store: try openStore()).applyPending(
                present: [returning], options: nil, inDock: others + [returning]))
        await thinPresent(others + [returning])
        let newest = try await inventory.newestSnapshots(under: enrolled.pool)
        let capacity = try? await capacity(of: enrolled.pool)
        let now = context.clock.now().rfc3339
        let docked = try registry.update(guid: enrolled.guid) { drive in
            if drive.place != .dock || recovered != nil { drive.since = now }
            drive.place = .dock
            drive.pulled = nil
            drive.datasets = newest
            drive.capacity = capacity ?? drive.capacity
        }
        try await scrubIfDue(docked)
        let saved = try registry.drive(named: enrolled.pool)
        return PlugIn(drive: saved, recovered: recovered, outcome: outcome)
    }

    /// `zpool import` by GUID, from the directory of the device node only,
    /// with nothing mounted. zfs-fuse has no `-N`; there the pool's root
    /// file system mounts under a private altroot in `state-dir` (received
    /// datasets are `canmount=noauto`, ferry's containers `canmount=off`).
    func importPool(_ drive: EnrolledDrive, device: BlockDevice) async throws {
        let directory = Self.searchDirectory(for: device.devnode)
        var result = try await context.runner.run(Zpool.importByGUID(drive.guid, searchDirectory: directory), input: nil)
        if !result.status.succeeded, String(decoding: result.standardError, as: UTF8.self).contains("invalid option 'N'") {
            let altroot = context.config.stateDir + "/altroot"
            try LocalFiles.createDirectory(altroot, mode: 0o700)
            logger.debug("this zpool has no import -N; importing under a private altroot", metadata: ["altroot": "\(altroot)"])
            result = try await context.runner.run(
                Zpool.importByGUID(drive.guid, searchDirectory: directory, altroot: altroot + "/" + drive.pool), input: nil)
        }
        guard result.status.succeeded else {
            throw DriveError(
                .importFailed(result.status), subject: drive.pool,
                problem: "could not be imported (\(result.status)): \(result.errorTail(lines: 2))")
        }
        let pools = try await inventory.importedPools()
        guard pools.contains(where: { $0.name == drive.pool && $0.guid == drive.guid && $0.isUsable }) else {
            throw DriveError(
                .notImported,
                subject: drive.pool, problem: "was imported but is not listed as healthy: \(pools.map { "\($0.name) \($0.health)" })")
        }
    }

    /// Where `zpool import -d` looks: /dev/disk/by-id when it names the
    /// device, so that the pool's vdev path stays the same when the drive
    /// comes back as another /dev/sdX (a pool suspended by a pull resumes
    /// only at its old path); else the device node's own directory.
    static func searchDirectory(for devnode: String, byID: String = "/dev/disk/by-id") -> String {
        let target = URL(fileURLWithPath: devnode).resolvingSymlinksInPath().path
        let names = (try? FileManager.default.contentsOfDirectory(atPath: byID)) ?? []
        if names.contains(where: { URL(fileURLWithPath: byID + "/" + $0).resolvingSymlinksInPath().path == target }) {
            return byID
        }
        return (devnode as NSString).deletingLastPathComponent
    }

    /// Forgets a pool whose device is gone: `zpool export -f`.
    func exportGone(_ pool: String) async throws {
        let result = try await context.runner.run(Zpool.export(pool: pool, force: true), input: nil)
        guard result.status.succeeded else {
            throw DriveError(
                .exportFailed(result.status),
                subject: pool, problem: "is faulted and could not be exported (\(result.status)): \(result.errorTail(lines: 2))")
        }
    }

    // MARK: Eject

    public struct Eject: Sendable, Equatable {
        public var drive: EnrolledDrive
        /// The streams it still lacks, which wait in the store for its return.
        public var behind: PacketCount
        /// The streams put back into the store for the drives away, which
        /// could have caught up from this one.
        public var kept = PacketCount()
    }

    /// Waits up to `wait` for running work, exports the drive's pool and
    /// records it as offsite with what it holds.
    /// A running scrub is waited for, or with `stopScrub` stopped.
    public func eject(_ pool: String, wait: Duration, stopScrub: Bool = false, onScrub: @Sendable (String) -> Void = { _ in }) async throws
        -> Eject
    {
        try context.config.require(.backupsvr, for: "drive eject")
        let drive = try registry.drive(named: pool)
        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger, giveUpAfter: wait)
        defer { withExtendedLifetime(lock) {} }
        let pools = try await inventory.importedPools()
        guard let state = pools.first(where: { $0.guid == drive.guid }) else {
            if pools.contains(where: { $0.name == pool }) {
                throw DriveError(
                    .wrongGUID,
                    subject: pool,
                    problem:
                        "is imported with another GUID than the enrolled drive's \(drive.guid): it is not that drive; nothing was exported")
            }
            throw DriveError(
                .notImported,
                subject: pool,
                problem: drive.place == .offsite
                    ? "is not imported: it is offsite since \(drive.since ?? "?") already"
                    : "is not imported: plug it in first (ferry imports it), or it was pulled without eject")
        }
        guard state.health != PoolState.suspended else {
            throw DriveError(
                .suspended,
                subject: pool,
                problem:
                    "was pulled while in use: its pool's I/O is suspended, and an export would hang. Plug it back in (ferry handle resumes it), then eject it"
            )
        }
        var datasets = drive.datasets ?? []
        var pulled: String?
        var capacity = drive.capacity
        var scrub = drive.scrub
        var kept = PacketCount()
        if state.isUsable {
            // An export would unmount them under whoever reads them, or fail
            // half-way; the admin undoes each mount first.
            let mounts = try await SnapshotMounter(context: context).mounts(in: [pool])
            if let first = mounts.first {
                throw DriveError(
                    .snapshotsMounted, subject: pool,
                    problem:
                        "has \(mounts.count) snapshot(s) mounted (\(first.origin) at \(first.directory)); ferry drive unmount \(first.directory) first. Nothing was exported"
                )
            }
            scrub = try await settleScrub(drive, stop: stopScrub, wait: wait, say: onScrub)
            kept = try await keepForAway(leaving: drive)
            datasets = try await inventory.newestSnapshots(under: pool)
            capacity = (try? await self.capacity(of: pool)) ?? capacity
            let result = try await context.runner.run(Zpool.export(pool: pool, force: false), input: nil)
            guard result.status.succeeded else {
                throw DriveError(
                    .exportFailed(result.status),
                    subject: pool,
                    problem:
                        "could not be exported (\(result.status)): \(result.errorTail(lines: 2)); is something using a dataset on it? It is still imported: do not remove it"
                )
            }
        } else {
            logger.warning("drive \(pool) is \(state.health): it was pulled already; exporting what is left of it")
            try await exportGone(pool)
            pulled = context.clock.now().rfc3339
        }
        let now = context.clock.now().rfc3339
        let saved = try registry.update(guid: drive.guid) { drive in
            drive.place = .offsite
            drive.since = now
            drive.pulled = pulled
            drive.datasets = datasets
            drive.capacity = capacity
            drive.scrub = scrub
        }
        logger.info("drive \(pool) exported", metadata: ["guid": "\(drive.guid)", "datasets": "\(datasets.count)"])
        return Eject(drive: saved, behind: try behind(saved), kept: kept)
    }

    // MARK: Retire

    /// Retires a drive: it gets no more streams, and the store lets go of
    /// what only it was waiting for. Returns what the store released.
    public func retire(_ pool: String) async throws -> PacketCount {
        try context.config.require(.backupsvr, for: "drive retire")
        let drive = try registry.drive(named: pool)
        guard !drive.isRetired else {
            throw DriveError(.retired, subject: pool, problem: "was retired already, \(drive.retired ?? "")")
        }
        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        let before = try openStore().size()
        try registry.update(guid: drive.guid) { $0.retired = context.clock.now().rfc3339 }
        let active = try registry.active()
        if active.isEmpty {
            logger.warning("no drive is left to take streams: they stay in the store until a drive is enrolled")
        }
        try await StoreApplier(context: context, store: try openStore()).prune(enrolled: active)
        let after = try openStore().size()
        return PacketCount(packets: before.packets - after.packets, bytes: before.bytes - after.bytes)
    }

    // MARK: Seed

    public struct Seed: Sendable, Equatable {
        public var datasets = 0
        public var snapshots = 0
        public var outcome = StoreApplier.Outcome()
    }

    /// Fills the empty drive `new` from the present drive `old`, dataset by
    /// dataset with local `zfs send | zfs receive`, so that every snapshot
    /// keeps its GUID and later streams apply to both; then `new` catches up
    /// from the store like any drive.
    public func seed(_ newPool: String, from oldPool: String) async throws -> Seed {
        try context.config.require(.backupsvr, for: "drive seed")
        guard newPool != oldPool else { throw DriveError(.seedFailed, subject: newPool, problem: "cannot be seeded from itself") }
        let new = try registry.drive(named: newPool)
        let old = try registry.drive(named: oldPool)
        for drive in [new, old] where drive.isRetired {
            throw DriveError(.retired, subject: drive.pool, problem: "is retired")
        }
        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        let present = try await StoreApplier.presentDrives(enrolled: [new, old], context: context)
        for drive in [new, old] where !present.contains(where: { $0.drive.guid == drive.guid }) {
            throw DriveError(.notImported, subject: drive.pool, problem: "is not imported and healthy: plug it in first")
        }
        let existing = try await inventory.datasets(under: newPool)
        guard existing.count <= 1 else {
            throw DriveError(
                .seedFailed,
                subject: newPool,
                problem:
                    "holds datasets already (\(existing.dropFirst().prefix(3).joined(separator: ", "))); seed fills an empty drive only")
        }
        let options = await ReceiveOptions.probe(for: present, context: context)
        let applier = DriveApplier(runner: context.runner, options: options, logger: logger)
        var seed = Seed()
        for source in try await inventory.datasets(under: oldPool) where source.hasPrefix(oldPool + "/") {
            let relative = String(source.dropFirst(oldPool.count + 1))
            let snapshots = try await inventory.snapshots(of: source) ?? []
            guard !snapshots.isEmpty else { continue }  // a container: made again above the first child
            let target = newPool + "/" + relative
            let made = try await applier.makeContainers(above: target, pool: newPool)
            var base: String?
            for snapshot in snapshots {
                let result = try await context.runner.pipe(
                    Zfs.send(source, snapshot: snapshot.name, from: base), into: applier.receiveCommand(target))
                guard result.succeeded else {
                    if base == nil {
                        try await applier.finish(target, preparation: .init(madeContainers: made), received: false)
                    }
                    throw DriveError(
                        .seedFailed,
                        subject: newPool,
                        problem:
                            "seeding \(relative)@\(snapshot.name) failed: zfs send \(result.producer.status), zfs receive \(result.consumer.status): \(result.consumer.errorTail(lines: 2))\(result.producer.errorTail(lines: 1))"
                    )
                }
                base = snapshot.name
                seed.snapshots += 1
            }
            try await applier.finish(target, preparation: .init(), received: true)
            seed.datasets += 1
            logger.info("seeded", metadata: ["dataset": "\(relative)", "snapshots": "\(snapshots.count)", "pool": "\(newPool)"])
        }
        // The streams `old` held are now on `new` too (`holds`); the rest apply.
        seed.outcome = try await StoreApplier(context: context, store: try openStore()).applyPending(present: present, options: options)
        let newest = try await inventory.newestSnapshots(under: newPool)
        try registry.update(guid: new.guid) { drive in
            if drive.place != .dock { drive.since = context.clock.now().rfc3339 }
            drive.place = .dock
            drive.datasets = newest
        }
        return seed
    }

    // MARK: What each drive holds

    /// The streams in the store that `drive` lacks.
    public func behind(_ drive: EnrolledDrive) throws -> PacketCount {
        guard !drive.isRetired else { return PacketCount() }
        let lacking = try openStore().streams().filter { !$0.applied.contains(drive.guid) }
        return PacketCount(packets: lacking.count, bytes: lacking.reduce(0) { $0 + $1.bytes })
    }

    /// Whether `drive`'s pool is among `pools`, under its name and GUID,
    /// and usable.
    static func isHere(_ drive: EnrolledDrive, in pools: [PoolState]) -> Bool {
        pools.contains { $0.guid == drive.guid && $0.name == drive.pool && $0.isUsable }
    }

    /// Every enrolled drive as ferry knows it now: a drive in the dock with
    /// what its pool holds, a drive away with what it held at eject, each
    /// with what it lacks. Nothing is changed. `listed` is a pool listing
    /// just taken (`noticePulled` returns one), saving another.
    public func drives(listed: [PoolState]? = nil) async throws -> [EnrolledDrive] {
        var drives = try registry.load()
        var pools = listed
        // With no drive enrolled there is nothing to look for: a backupsvr
        // without ZFS (yet) is not told on every visit that zpool is missing.
        if pools == nil, !drives.isEmpty {
            do {
                pools = try await inventory.importedPools()
            } catch {
                logger.warning("cannot read the imported pools, so the drives are shown as last recorded: \(error)")
            }
        }
        for index in drives.indices {
            let drive = drives[index]
            let here = pools.map { Self.isHere(drive, in: $0) }
            if here == true {
                drives[index].datasets = try await inventory.newestSnapshots(under: drive.pool)
                drives[index].capacity = (try? await capacity(of: drive.pool)) ?? drive.capacity
                if let status = try? await scrubStatus(of: drive.pool) {
                    let scrub = updated(drive.scrub, with: status)
                    drives[index].scrub = scrub
                    // The first look at a finished scrub keeps its time.
                    if scrub != drive.scrub { try? registry.update(guid: drive.guid) { $0.scrub = scrub } }
                }
            } else if here == false, drive.place == .dock, !drive.isRetired {
                // Not recorded yet (another ferry holds the drives), but true.
                drives[index].pulled = drive.pulled ?? context.clock.now().rfc3339
            }
            drives[index].behind = try behind(drive)
        }
        return drives
    }

    /// The rotation warnings for `drives`, with the store's size against
    /// the disk that holds `state-dir`.
    public func warnings(for drives: [EnrolledDrive]) -> [String] {
        let streams = (try? openStore().streams()) ?? []
        let store = PacketCount(packets: streams.count, bytes: streams.reduce(0) { $0 + $1.bytes })
        let disk = try? SafeDirectory(path: context.config.stateDir).space().total
        var warnings = RotationPolicy(context.config.rotation).warnings(
            drives: drives, store: store, diskBytes: disk, now: context.clock.now())
        for drive in drives where drive.place == .dock && !drive.isRetired && drive.pulled == nil {
            guard let free = drive.capacity?.free,
                let next = streams.first(where: { !$0.applied.contains(drive.guid) && $0.bytes > free })
            else { continue }
            warnings.append(
                "the next stream for drive \(drive.pool) (\(next.dataset)@\(printable(next.header.snapshot)), \(humanSize(next.bytes))) will not fit in its \(humanSize(free)) free: thin it (ferry drive thin \(drive.pool)) or replace it"
            )
        }
        return warnings
    }

    /// Notices drives recorded in the dock whose pool is gone or faulted:
    /// pulled without eject. A faulted pool is exported, so that the drive
    /// imports cleanly when it is back; the drive is recorded as away.
    /// Skipped, and retried next time, while other work holds the drives.
    /// Returns the pools it listed, if it did, for `drives(listed:)`.
    @discardableResult
    public func noticePulled() async throws -> [PoolState]? {
        let docked = try registry.active().filter { $0.place == .dock }
        guard !docked.isEmpty else { return nil }
        guard let lock = try? await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger, giveUpAfter: .zero)
        else { return nil }
        defer { withExtendedLifetime(lock) {} }
        let pools = try await inventory.importedPools()
        for drive in docked where !Self.isHere(drive, in: pools) {
            let pool = pools.first { $0.guid == drive.guid }
            if let pool, pool.health == PoolState.suspended {
                // Its export would hang until the device is back: the
                // plug-in resumes it with zpool clear.
                logger.warning("drive \(drive.pool) was pulled without ferry drive eject while in use: its pool's I/O is suspended")
            } else if let pool {
                logger.warning(
                    "drive \(drive.pool) is \(pool.health): it was pulled without ferry drive eject; exporting what is left of it")
                try await exportGone(pool.name)
            } else {
                logger.warning("drive \(drive.pool) is not imported: it was pulled without ferry drive eject")
            }
            let now = context.clock.now().rfc3339
            try registry.update(guid: drive.guid) { drive in
                drive.place = .offsite
                drive.since = now
                drive.pulled = now
            }
        }
        return pools
    }
}

/// A zfs_member `ferry handle` leaves alone: exit status 2.
public struct NotOursDriveError: FerryError {
    public var devnode: String
    public var reason: String

    public var exitStatus: ExitStatus { .notOurs }
    public var description: String { "\(devnode) is not ours and was left alone: \(reason)" }
}
