import Foundation
import Logging

/// A snapshot on a backup drive, shown read-only at a directory through a
/// clone that ferry made (`ferry drive mount`, and the restore drill).
public struct SnapshotMount: Sendable, Equatable, Codable {
    public var pool: String
    /// HOST/DATASET on the pool.
    public var dataset: String
    public var snapshot: String
    /// The clone: `POOL/ferry-mount-GUID`, the snapshot's GUID in hex.
    public var clone: String
    /// Where the snapshot's files are seen.
    public var directory: String

    /// `POOL/HOST/DATASET@SNAPSHOT`.
    public var origin: String { pool + "/" + dataset + "@" + snapshot }
}

/// Makes and removes ferry's read-only snapshot mounts on backupsvr.
///
/// The clone is ferry's own by its `ferry:mount` property, which names the
/// directory it is shown at; its name starts with `ferry-mount-`. It has no
/// snapshots, so the drive's lists, catch-up, seed and received datasets pass
/// it by; thinning keeps its origin (a clone's origin cannot be destroyed);
/// eject refuses while a drive has one. Mount and unmount take the streams
/// lock: call them without holding it.
///
/// A pool imported with an altroot (zfs-fuse has no `import -N`) mounts
/// every file system under that altroot, whatever its mountpoint says; there
/// the clone is mounted under the altroot and bound read-only onto the
/// directory.
public struct SnapshotMounter: Sendable {
    /// Marks a clone as ferry's snapshot mount; the value is the directory.
    public static let markProperty = "ferry:mount"
    public static let clonePrefix = "ferry-mount-"

    public var context: FerryContext

    public init(context: FerryContext) {
        self.context = context
    }

    var logger: Logger { context.logger }
    var inventory: ZFSInventory { ZFSInventory(runner: context.runner) }

    /// Shows `dataset@snapshot` (the newest snapshot on the drive when
    /// `snapshot` is nil) from the enrolled drive `pool` read-only at
    /// `directory`, which is made when missing and must be empty.
    public func mount(pool: String, dataset: DatasetName, snapshot: String?, at directory: String) async throws -> SnapshotMount {
        try context.config.require(.backupsvr, for: "drive mount")
        let drive = try context.drives.drive(named: pool)
        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        guard try await inventory.importedPools().contains(where: { $0.guid == drive.guid && $0.isUsable }) else {
            throw DriveError(.notImported, subject: pool, problem: "is not imported and healthy: plug it in first")
        }
        let source = dataset.under(pool)
        guard let snapshots = try await inventory.snapshots(of: source), let newest = snapshots.last else {
            throw DriveError(.noSuchSnapshot, subject: pool, problem: "holds no snapshot of \(dataset)")
        }
        let chosen: SnapshotInfo
        if let snapshot {
            guard let named = snapshots.first(where: { $0.name == snapshot }) else {
                throw DriveError(
                    .noSuchSnapshot, subject: pool,
                    problem: "holds no snapshot \(dataset)@\(printable(snapshot)) (its newest is @\(newest.name))")
            }
            chosen = named
        } else {
            chosen = newest
        }
        let target = try prepareDirectory(directory)
        let existing = try await mounts(in: [pool])
        if let there = existing.first(where: { $0.directory == target }) {
            throw DriveError(
                .mountInUse, subject: target, problem: "shows \(there.origin) already; ferry drive unmount \(target) first")
        }
        let clone = pool + "/" + Self.clonePrefix + Hex.encode(chosen.guid)
        if let twin = existing.first(where: { $0.clone == clone }) {
            throw DriveError(
                .mountInUse, subject: twin.origin,
                problem: "is mounted already at \(twin.directory); ferry drive unmount \(twin.directory) first")
        }
        let mount = SnapshotMount(pool: pool, dataset: "\(dataset)", snapshot: chosen.name, clone: clone, directory: target)
        try await context.runner.check(Zfs.cloneReadOnly(mount.origin, to: clone, mountpoint: target, marker: (Self.markProperty, target)))
        do {
            try await show(mount)
        } catch {
            await remove(mount)
            throw error
        }
        logger.info("snapshot mounted read-only", metadata: ["snapshot": "\(mount.origin)", "directory": "\(target)"])
        return mount
    }

    /// Unmounts ferry's snapshot mount at `directory` and destroys its
    /// clone; refuses anything that is not one.
    @discardableResult
    public func unmount(_ directory: String) async throws -> SnapshotMount {
        try context.config.require(.backupsvr, for: "drive unmount")
        let target = Self.normalized(directory)
        let lock = try await HostLock.acquire(.streams, stateDir: context.config.stateDir, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        let pools = try await inventory.importedPools().filter(\.isUsable).map(\.name)
        guard let mount = try await mounts(in: pools).first(where: { $0.directory == target }) else {
            throw DriveError(
                .notASnapshotMount, subject: target,
                problem: "is not a snapshot mount of ferry's (ferry drive mount) on an imported drive; nothing was unmounted")
        }
        try await hide(mount)
        logger.info("snapshot unmounted", metadata: ["snapshot": "\(mount.origin)", "directory": "\(target)"])
        return mount
    }

    /// Mounts `dataset@snapshot` at a private directory in state-dir, runs
    /// `body` on it, and removes the mount again, whatever `body` did.
    public func reading<T: Sendable>(
        pool: String, dataset: DatasetName, snapshot: String?, _ body: (SnapshotMount) async throws -> T
    ) async throws -> T {
        let directory = context.config.stateDir + "/mounts/" + UUID().uuidString
        let mount = try await self.mount(pool: pool, dataset: dataset, snapshot: snapshot, at: directory)
        let result: T
        do {
            result = try await body(mount)
        } catch {
            _ = try? await unmount(mount.directory)
            try? FileManager.default.removeItem(atPath: mount.directory)
            throw error
        }
        try await unmount(mount.directory)
        try? FileManager.default.removeItem(atPath: mount.directory)
        return result
    }

    /// ferry's snapshot mounts on `pools`, found by their mark.
    public func mounts(in pools: [String]) async throws -> [SnapshotMount] {
        guard !pools.isEmpty else { return [] }
        let rows = try await inventory.properties([Self.markProperty, "origin"], of: pools, recursive: true)
        var origins: [String: String] = [:]
        for row in rows where row.property == "origin" { origins[row.dataset] = row.value }
        return rows.compactMap { row in
            guard row.property == Self.markProperty, row.source == "local", !row.dataset.contains("@"),
                let slash = row.dataset.firstIndex(of: "/"), let origin = origins[row.dataset], let at = origin.firstIndex(of: "@")
            else { return nil }
            let pool = String(row.dataset[..<slash])
            let dataset = origin[..<at]
            guard dataset.hasPrefix(pool + "/") else { return nil }
            return SnapshotMount(
                pool: pool, dataset: String(dataset.dropFirst(pool.count + 1)), snapshot: String(origin[origin.index(after: at)...]),
                clone: row.dataset, directory: row.value)
        }
    }

    /// The clone's files at the directory: mounted by zfs (a clone may come
    /// mounted already), and bound there when an altroot put them elsewhere.
    func show(_ mount: SnapshotMount) async throws {
        var state = try await mountState(of: mount.clone)
        if !state.mounted {
            try await context.runner.check(Zfs.mount(mount.clone))
            state = try await mountState(of: mount.clone)
        }
        if state.mountpoint != mount.directory {
            try await context.runner.check(Mount.bindReadOnly(state.mountpoint, on: mount.directory))
        }
    }

    /// Undoes `show` and destroys the clone; fails when something stays.
    func hide(_ mount: SnapshotMount) async throws {
        let state = try await mountState(of: mount.clone)
        if state.mountpoint != mount.directory, context.mounter.isMounted(mount.directory) {
            try context.mounter.unmount(mount.directory, lazy: false)
        }
        if state.mounted { try await context.runner.check(Zfs.unmount(mount.clone)) }
        // zfs-fuse may call a clone busy for a moment after its unmount.
        for attempt in 1...Self.destroyAttempts {
            let result = try await context.runner.run(Zfs.destroyEmpty(mount.clone), input: nil)
            if result.status.succeeded { return }
            guard attempt < Self.destroyAttempts, result.errorTail(lines: 1).contains("busy") else {
                throw DriveError(
                    .mountFailed(result.status), subject: mount.clone,
                    problem: "could not be destroyed (\(result.status)): \(result.errorTail(lines: 1))")
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    static let destroyAttempts = 10

    /// Best effort after a failed mount: nothing of it should stay.
    func remove(_ mount: SnapshotMount) async {
        do {
            try await hide(mount)
        } catch {
            logger.warning("could not remove the failed mount's clone: \(error)", metadata: ["clone": "\(mount.clone)"])
        }
    }

    func mountState(of clone: String) async throws -> (mounted: Bool, mountpoint: String) {
        let rows = try await inventory.properties(["mounted", "mountpoint"], of: [clone])
        let mounted = rows.first { $0.property == "mounted" }?.value == "yes"
        return (mounted, rows.first { $0.property == "mountpoint" }?.value ?? "")
    }

    /// `directory` made when missing, as an absolute path without symlinks;
    /// refused when it is not an empty directory or something is mounted there.
    func prepareDirectory(_ directory: String) throws -> String {
        guard directory.hasPrefix("/") else {
            throw DriveError(.badDirectory, subject: directory, problem: "is not an absolute path")
        }
        do {
            try LocalFiles.createDirectory(directory, mode: 0o700)
        } catch {
            throw DriveError(.badDirectory, subject: directory, problem: "is not a directory and cannot be made one: \(error)")
        }
        let target = Self.normalized(directory)
        guard (try? FileManager.default.contentsOfDirectory(atPath: target))?.isEmpty == true else {
            throw DriveError(
                .badDirectory, subject: target, problem: "is not an empty directory; a snapshot is mounted only on an empty one")
        }
        guard !context.mounter.isMounted(target) else {
            throw DriveError(.mountInUse, subject: target, problem: "has something mounted on it already")
        }
        return target
    }

    static func normalized(_ directory: String) -> String {
        URL(fileURLWithPath: directory).standardizedFileURL.resolvingSymlinksInPath().path
    }
}
