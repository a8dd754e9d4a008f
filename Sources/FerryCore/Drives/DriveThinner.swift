import Foundation
import Logging

/// Applies `[retention]` to one present drive: reads every snapshot on its
/// pool with what protects it, asks the schedule what goes, and destroys
/// that, one `zfs destroy` at a time, each logged.
public struct DriveThinner: Sendable {
    public var context: FerryContext

    public init(context: FerryContext) {
        self.context = context
    }

    var logger: Logger { context.logger }

    /// What thinning a drive did, or would do.
    public struct Outcome: Sendable, Equatable, Codable {
        public var pool: String
        /// `HOST/DATASET@SNAPSHOT`, oldest first within each dataset.
        public var destroyed: [String] = []
        /// Snapshots left on the drive.
        public var kept = 0
        /// One line per `zfs destroy` that failed; the snapshot stays.
        public var failures: [String] = []
    }

    /// The properties read for every dataset and snapshot of a pool, in one
    /// `zfs get -r`: a snapshot's userrefs counts its holds, a clone's
    /// origin names the snapshot it was made from.
    static let properties = ["guid", "createtxg", "creation", "userrefs", "origin"]

    /// Thins `drive` by `policy`. `bases` are the newest snapshots of each
    /// dataset on the other drives (HOST/DATASET to snapshot names to pools):
    /// the starting points of their catch-up from this one.
    public func thin(_ drive: PresentDrive, policy: RetentionPolicy, bases: [String: [String: [String]]], dryRun: Bool) async throws
        -> Outcome
    {
        var outcome = Outcome(pool: drive.pool)
        guard !policy.isEmpty else { return outcome }
        let rows = try await snapshotRows(of: drive.pool)
        let plan = Self.plan(
            rows: rows, pool: drive.pool, policy: policy, received: try ReceivedDatasets(stateDir: context.config.stateDir).receivedGUIDs(),
            bases: bases, now: context.clock.now())
        outcome.kept = plan.kept
        for (dataset, snapshot) in plan.destroy {
            let name = "\(dataset)@\(snapshot)"
            if dryRun {
                outcome.destroyed.append(name)
                continue
            }
            let result = try await context.runner.run(Zfs.destroySnapshot(drive.pool + "/" + dataset, named: snapshot), input: nil)
            if result.status.succeeded {
                logger.info(
                    "thinned: destroyed a snapshot the retention schedule lets go",
                    metadata: ["pool": "\(drive.pool)", "snapshot": "\(printable(name))"])
                outcome.destroyed.append(name)
            } else {
                let line = "zfs destroy \(drive.pool)/\(name) failed (\(result.status)): \(result.errorTail(lines: 1))"
                logger.warning("\(line); the snapshot stays")
                outcome.failures.append(line)
                outcome.kept += 1
            }
        }
        return outcome
    }

    /// `zfs get -r` of `properties` on `pool`. A zfs without holds (no
    /// `userrefs` property) is asked again without it: there, nothing is held.
    func snapshotRows(of pool: String) async throws -> [PropertyRow] {
        let result = try await context.runner.run(Zfs.get(Self.properties, of: [pool], recursive: true), input: nil)
        if result.status.succeeded { return ZFSInventory.rows(result.output) }
        guard String(decoding: result.standardError, as: UTF8.self).contains("userrefs") else {
            throw ZFSError(.commandFailed(result.status), problem: "cannot list the snapshots of \(pool): \(result.errorTail(lines: 1))")
        }
        logger.debug("this zfs has no userrefs property, so no holds; listing the snapshots without it")
        return try await ZFSInventory(runner: context.runner).properties(
            Self.properties.filter { $0 != "userrefs" }, of: [pool], recursive: true)
    }

    /// The snapshots to destroy on `pool`, as (HOST/DATASET, snapshot), and
    /// how many stay. `rows` are `zfs get -r` of `properties` on the pool.
    static func plan(
        rows: [PropertyRow], pool: String, policy: RetentionPolicy, received: [String: Set<UInt64>], bases: [String: [String: [String]]],
        now: Date
    ) -> (destroy: [(String, String)], kept: Int) {
        struct Found {
            var guid: UInt64 = 0
            var txg: UInt64 = 0
            var creation: Int64 = 0
            var held = false
        }
        var snapshots: [String: [String: Found]] = [:]
        var origins: Set<String> = []
        for row in rows {
            guard let at = row.dataset.firstIndex(of: "@") else {
                if row.property == "origin", row.value != "-", row.value.hasPrefix(pool + "/") {
                    origins.insert(String(row.value.dropFirst(pool.count + 1)))
                }
                continue
            }
            let dataset = String(row.dataset[..<at])
            guard dataset.hasPrefix(pool + "/") else { continue }
            let relative = String(dataset.dropFirst(pool.count + 1))
            let name = String(row.dataset[row.dataset.index(after: at)...])
            var found = snapshots[relative, default: [:]][name, default: Found()]
            switch row.property {
            case "guid": found.guid = UInt64(row.value) ?? 0
            case "createtxg": found.txg = UInt64(row.value) ?? 0
            case "creation": found.creation = Int64(row.value) ?? 0
            case "userrefs": found.held = (Int(row.value) ?? 0) > 0
            default: break
            }
            snapshots[relative, default: [:]][name] = found
        }
        var destroy: [(String, String)] = []
        var total = 0
        for dataset in snapshots.keys.sorted() {
            let found = snapshots[dataset]!.sorted { $0.value.txg < $1.value.txg }
            total += found.count
            guard let schedule = policy.schedule(for: dataset) else { continue }
            let ours = received[dataset] ?? []
            let candidates = found.map { name, info in
                ThinCandidate(
                    name: name, created: info.creation, received: ours.contains(info.guid), held: info.held,
                    origin: origins.contains(dataset + "@" + name), baseFor: bases[dataset]?[name] ?? [])
            }
            destroy += schedule.destroying(candidates, now: now).map { (dataset, $0.name) }
        }
        return (destroy, total - destroy.count)
    }
}

extension DriveDock {
    /// The newest snapshot of each dataset on every active drive but
    /// `drive`: live for a drive here, as recorded at eject for one away.
    /// Thinning keeps them on `drive`, where their catch-up starts.
    func bases(except drive: EnrolledDrive, present: [PresentDrive]) async throws -> [String: [String: [String]]] {
        var bases: [String: [String: [String]]] = [:]
        for other in try registry.active() where other.guid != drive.guid {
            let datasets =
                present.contains(where: { $0.drive.guid == other.guid })
                ? try await inventory.newestSnapshots(under: other.pool) : other.datasets ?? []
            for newest in datasets {
                bases[newest.dataset, default: [:]][newest.snapshot, default: []].append(other.pool)
            }
        }
        return bases
    }

    /// Thins every drive in `present` by `[retention]`, under the streams
    /// lock the caller holds. A failure is logged and kept in the outcome:
    /// thinning never stops a receive or a catch-up.
    @discardableResult
    public func thinPresent(_ present: [PresentDrive]) async -> [DriveThinner.Outcome] {
        guard !context.config.retention.isEmpty else { return [] }
        var outcomes: [DriveThinner.Outcome] = []
        for drive in present {
            do {
                let bases = try await bases(except: drive.drive, present: present)
                outcomes.append(
                    try await DriveThinner(context: context).thin(drive, policy: context.config.retention, bases: bases, dryRun: false))
            } catch {
                logger.warning("could not thin drive \(drive.pool): \(error)")
                outcomes.append(DriveThinner.Outcome(pool: drive.pool, failures: ["\(error)"]))
            }
        }
        return outcomes
    }

    /// `ferry drive thin POOL [--dry-run]`: thins one present drive now.
    public func thin(_ pool: String, dryRun: Bool) async throws -> DriveThinner.Outcome {
        try context.config.require(.backupsvr, for: "drive thin")
        let drive = try registry.drive(named: pool)
        guard !context.config.retention.isEmpty else {
            throw DriveError(.noRetention, subject: context.config.path, problem: "has no [retention] keep: ferry keeps every snapshot")
        }
        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        let present = try await StoreApplier.presentDrives(enrolled: try registry.active(), context: context)
        guard let here = present.first(where: { $0.drive.guid == drive.guid }) else {
            throw DriveError(.notImported, subject: pool, problem: "is not imported and healthy: plug it in first")
        }
        let outcome = try await DriveThinner(context: context).thin(
            here, policy: context.config.retention, bases: try await bases(except: drive, present: present), dryRun: dryRun)
        if !dryRun {
            let newest = try await inventory.newestSnapshots(under: pool)
            try registry.update(guid: drive.guid) { $0.datasets = newest }
        }
        return outcome
    }
}
