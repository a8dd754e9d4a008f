import Foundation
import Logging

/// Why a restore drill could not start or finish here.
public struct VerifyError: FerryError {
    public var problem: String

    public var description: String { problem }
}

/// Shows one local snapshot read-only at a private directory, through a
/// clone made for the moment: how the laptop reads the snapshot it compares
/// a drive's manifest with (on backupsvr, `SnapshotMounter` does this for a
/// drive). The clone is `POOL/ferry-verify-…`, read-only, marked with
/// `ferry:verify`, and destroyed afterwards whatever the reading did.
struct LocalSnapshotReader: Sendable {
    static let markProperty = "ferry:verify"
    var context: FerryContext

    func reading<T: Sendable>(_ dataset: String, snapshot: String, _ body: (String) async throws -> T) async throws -> T {
        let pool = String(dataset.prefix { $0 != "/" })
        let clone = pool + "/ferry-verify-" + String(UUID().uuidString.prefix(8)).lowercased()
        let directory = context.config.stateDir + "/verify/" + String(clone.split(separator: "/").last!)
        try LocalFiles.createDirectory(directory, mode: 0o700)
        // rmdir, not a removal of the tree: should the clone still be
        // mounted there, its files are the snapshot's, not ours to delete.
        defer { rmdir(directory) }
        try await context.runner.check(
            Zfs.cloneReadOnly(dataset + "@" + snapshot, to: clone, mountpoint: directory, marker: (Self.markProperty, directory)))
        let result: T
        do {
            let rows = try await ZFSInventory(runner: context.runner).properties(["mounted", "mountpoint"], of: [clone])
            if rows.first(where: { $0.property == "mounted" })?.value != "yes" {
                try await context.runner.check(Zfs.mount(clone))
            }
            let mountpoint = rows.first { $0.property == "mountpoint" }?.value ?? directory
            result = try await body(mountpoint)
        } catch {
            await destroy(clone)
            throw error
        }
        await destroy(clone)
        return result
    }

    /// Destroys the clone; ZFS may call it busy for a moment after reading.
    private func destroy(_ clone: String) async {
        for attempt in 1...20 {
            if let result = try? await context.runner.run(Zfs.destroyEmpty(clone), input: nil), result.status.succeeded { return }
            if attempt < 20 { try? await Task.sleep(for: .milliseconds(250)) }
        }
        context.logger.error("could not destroy the verify clone \(clone); destroy it by hand (zfs destroy \(clone))")
    }
}

/// The restore drill (`ferry verify HOST/DATASET`): backupsvr makes the
/// manifest of the newest snapshot on a present drive and sends it to the
/// laptop; the laptop compares it with its own snapshot and sends the
/// result back.
public struct VerifyDrill: Sendable {
    public var context: FerryContext
    public var nncp: NNCPConfig

    public init(context: FerryContext, nncp: NNCPConfig) {
        self.context = context
        self.nncp = nncp
    }

    var logger: Logger { context.logger }

    /// What `ferry verify` did on backupsvr.
    public struct Requested: Sendable {
        public var laptop: String
        public var pool: String
        public var manifest: Manifest
        public var bytes: Int
    }

    /// backupsvr: makes the manifest of `destination`'s newest snapshot on
    /// a drive in the dock and queues it for the laptop that sends it.
    public func request(_ destination: String) async throws -> Requested {
        try context.config.require(.backupsvr, for: "verify")
        let dataset: DatasetName
        do {
            dataset = try DatasetName(destination)
        } catch {
            throw VerifyError(problem: "\(error)")
        }
        let senders = context.config.receive.senders
        guard
            let laptop = senders.keys.sorted().first(where: { (try? DatasetName(senders[$0]!)).map(dataset.isWithin) ?? false })
        else {
            throw VerifyError(problem: "no sender in [receive].senders of \(context.config.path) sends \(dataset)")
        }
        let state = try await DriveDock(context: context).backupsvrState()
        let holders = state.drives.filter { $0.place == .dock && !$0.isRetired && $0.pulled == nil }
            .compactMap { drive in drive.datasets?.first { $0.dataset == "\(dataset)" }.map { (drive.pool, $0) } }
            .sorted { ($0.1.created ?? "") > ($1.1.created ?? "") }
        guard let (pool, _) = holders.first else {
            throw VerifyError(problem: "no drive in the dock holds \(dataset); plug in a drive that does, then run ferry verify again")
        }
        let now = context.clock.now().rfc3339
        let manifest = try await SnapshotMounter(context: context).reading(pool: pool, dataset: dataset, snapshot: nil) { mount in
            Manifest(dataset: "\(dataset)", snapshot: mount.snapshot, entries: try ManifestWalker().entries(under: mount.directory))
        }
        let message = StateMessage(
            kind: .verifyRequest, seq: 0, time: now, request: VerifyRequest(requested: now, pool: pool, manifest: manifest))
        let bytes = message.bytes
        guard bytes.count <= StateMessage.requestLimit else {
            throw VerifyError(
                problem:
                    "the manifest of \(dataset)@\(manifest.snapshot) takes \(bytes.count) bytes, more than the \(StateMessage.requestLimit) a laptop reads"
            )
        }
        try await context.runner.check(NNCP.execState(config: nncp.path, node: laptop).asUser(context.config.nncpUser), input: bytes)
        try VerifyResults(stateDir: context.config.stateDir).record(
            VerifyResult(dataset: "\(dataset)", snapshot: manifest.snapshot, pool: pool, requested: now))
        logger.info(
            "queued the manifest for \(laptop)",
            metadata: ["dataset": "\(dataset)", "snapshot": "\(manifest.snapshot)", "entries": "\(manifest.entries.count)"])
        return Requested(laptop: laptop, pool: pool, manifest: manifest, bytes: bytes.count)
    }

    /// The laptop: compares `request`'s manifest with this laptop's own
    /// snapshot of the same name, or else with its kept mark snapshot.
    public func compare(_ request: VerifyRequest, host: String) async -> VerifyResult {
        let manifest = request.manifest
        var result = VerifyResult(
            dataset: manifest.dataset, snapshot: manifest.snapshot, pool: request.pool, requested: request.requested,
            compared: context.clock.now().rfc3339)
        do {
            let local = try localDataset(manifest.dataset, host: host)
            let snapshots = try await ZFSInventory(runner: context.runner).snapshots(of: local) ?? []
            let mark = try await ZFSInventory(runner: context.runner).properties([SnapshotSender.markProperty], of: [local])
                .first { $0.source == "local" }?.value
            guard
                let chosen = snapshots.first(where: { $0.name == manifest.snapshot })?.name
                    ?? mark.flatMap({ mark in
                        snapshots.first { $0.name == mark }?.name
                    })
            else {
                throw VerifyError(problem: "this laptop holds neither \(local)@\(manifest.snapshot) nor a kept mark snapshot")
            }
            let entries = try await LocalSnapshotReader(context: context).reading(local, snapshot: chosen) {
                try ManifestWalker().entries(under: $0)
            }
            let comparison = ManifestComparison(drive: manifest.entries, laptop: entries)
            result.laptopSnapshot = chosen
            result.equal = comparison.equal
            result.entries = comparison.entries
            result.fileBytes = comparison.fileBytes
            result.differences = comparison.differences
            result.differencesTotal = comparison.differencesTotal
        } catch {
            result.problem = printable("\(error)", limit: 500)
        }
        result.compared = context.clock.now().rfc3339
        return result
    }

    /// The laptop's own name of HOST/DATASET: DATASET, which must lie under
    /// one of `[send] datasets`, so that a request reads nothing else.
    func localDataset(_ destination: String, host: String) throws -> String {
        guard destination.hasPrefix(host + "/"), let local = try? DatasetName(String(destination.dropFirst(host.count + 1))),
            context.config.send.datasets.contains(where: { (try? DatasetName($0)).map(local.isWithin) ?? false })
        else {
            throw VerifyError(problem: "\(printable(destination)) is not one of this laptop's datasets ([send] datasets under \(host)/)")
        }
        return "\(local)"
    }
}
