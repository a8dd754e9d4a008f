import Foundation
import SystemPackage

/// One snapshot of a dataset, as `zfs get -p` shows it.
public struct SnapshotInfo: Sendable, Equatable, Codable {
    /// The part after `@`.
    public var name: String
    public var guid: UInt64
    /// The transaction group that made it: snapshots sort by this.
    public var createTXG: UInt64
    /// When it was taken, in seconds since 1970; a received snapshot keeps
    /// the sender's time.
    public var creation: UInt64?
}

/// One imported pool, as `zpool list` shows it.
public struct PoolState: Sendable, Equatable {
    public var name: String
    /// In decimal.
    public var guid: String
    /// ONLINE, DEGRADED, FAULTED, UNAVAIL, SUSPENDED…
    public var health: String

    public init(name: String, guid: String, health: String) {
        self.name = name
        self.guid = guid
        self.health = health
    }

    /// What `zpool status` says of a pool whose I/O stopped when its device
    /// went away; `zpool list` may still call it ONLINE (zfs-fuse does).
    public static let suspended = "SUSPENDED"

    /// Whether ZFS can read and write it: ONLINE or DEGRADED.
    public var isUsable: Bool { health == "ONLINE" || health == "DEGRADED" }
}

/// One line of `zfs get -H -p -o name,property,value,source`.
public struct PropertyRow: Sendable, Equatable {
    public var dataset: String
    public var property: String
    public var value: String
    /// "local", "default", "inherited from X", "received" or "-".
    public var source: String

    public var isSet: Bool { value != "-" && source != "-" && source != "default" }
}

public struct ZFSError: FerryError {
    public enum Code: Sendable, Equatable {
        /// A zfs or zpool query did not succeed.
        case commandFailed(TerminationStatus)
        /// A dataset stands where a stream goes, and ferry did not make it.
        case notOurs
        /// A file of the stream store could not be made, written or opened.
        case storeFile(Errno)
        /// A stream's description in the store cannot be decoded.
        case storeDamaged
        /// The stream on standard input could not be read.
        case input(Errno)
        /// No drive took the stream, and the store did not keep it.
        case notKept
    }
    public var code: Code
    public var problem: String

    public init(_ code: Code, problem: String) {
        self.code = code
        self.problem = problem
    }

    public var description: String { problem }
}

/// What ZFS holds, read through the `zfs` and `zpool` commands.
public struct ZFSInventory: Sendable {
    public var runner: any CommandRunner

    public init(runner: any CommandRunner) {
        self.runner = runner
    }

    /// Every imported pool, with its GUID and health. A pool whose I/O is
    /// suspended (its device is gone) is SUSPENDED, whatever `zpool list` says.
    public func importedPools() async throws -> [PoolState] {
        let result = try await runner.run(Zpool.listImported(), input: nil)
        guard result.status.succeeded else {
            // zpool prints "no pools available" with status 0; anything else is a fault.
            throw ZFSError(
                .commandFailed(result.status),
                problem: "zpool list failed (\(result.status)): \(result.errorTail(lines: 1)); is the ZFS daemon running?")
        }
        let pools = result.output.split(separator: "\n").compactMap { line -> PoolState? in
            let fields = line.split(separator: "\t")
            guard fields.count == 3 else { return nil }
            return PoolState(name: String(fields[0]), guid: String(fields[1]), health: String(fields[2]))
        }
        guard pools.contains(where: \.isUsable) else { return pools }
        let status = try await runner.run(Zpool.unhealthy(), input: nil)
        let suspended = status.status.succeeded ? Self.suspendedPools(status.output) : []
        return pools.map { pool in
            var pool = pool
            if suspended.contains(pool.name) { pool.health = PoolState.suspended }
            return pool
        }
    }

    /// The pools `zpool status -x` shows with I/O failures: "pool: NAME"
    /// starts each pool's block.
    static func suspendedPools(_ status: String) -> Set<String> {
        var suspended: Set<String> = []
        var current: String?
        for line in status.split(separator: "\n") {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("pool: ") {
                current = String(text.dropFirst("pool: ".count))
            } else if let name = current, text.contains("in response to IO failures") || text.contains("I/O is currently suspended") {
                suspended.insert(name)
            }
        }
        return suspended
    }

    /// The properties of `datasets` (and everything under them with
    /// `recursive`). Missing datasets raise an error.
    public func properties(_ names: [String], of datasets: [String], recursive: Bool = false) async throws -> [PropertyRow] {
        let result = try await runner.check(Zfs.get(names, of: datasets, recursive: recursive))
        return Self.rows(result.output)
    }

    /// The snapshots of `dataset`, oldest first; nil when the dataset does
    /// not exist.
    public func snapshots(of dataset: String) async throws -> [SnapshotInfo]? {
        let result = try await runner.run(Zfs.get(["guid", "createtxg", "creation"], of: [dataset], depth: 1), input: nil)
        guard result.status.succeeded else {
            let error = String(decoding: result.standardError, as: UTF8.self)
            if error.contains("does not exist") { return nil }
            throw ZFSError(
                .commandFailed(result.status),
                problem: "cannot list the snapshots of \(dataset) (\(result.status)): \(result.errorTail(lines: 1))")
        }
        var guids: [String: UInt64] = [:]
        var txgs: [String: UInt64] = [:]
        var creations: [String: UInt64] = [:]
        let prefix = dataset + "@"
        for row in Self.rows(result.output) where row.dataset.hasPrefix(prefix) {
            let name = String(row.dataset.dropFirst(prefix.count))
            guard let number = UInt64(row.value) else { continue }
            switch row.property {
            case "guid": guids[name] = number
            case "createtxg": txgs[name] = number
            default: creations[name] = number
            }
        }
        return guids.compactMap { name, guid in
            txgs[name].map { SnapshotInfo(name: name, guid: guid, createTXG: $0, creation: creations[name]) }
        }
        .sorted { $0.createTXG < $1.createTXG }
    }

    /// Whether `dataset` exists.
    public func exists(_ dataset: String) async throws -> Bool {
        try await snapshots(of: dataset) != nil
    }

    /// The filesystems and volumes at and under `root`, parents first.
    public func datasets(under root: String) async throws -> [String] {
        let result = try await runner.run(Zfs.listDatasets(under: root), input: nil)
        guard result.status.succeeded else {
            throw ZFSError(.commandFailed(result.status), problem: "cannot list \(root): \(result.errorTail(lines: 1))")
        }
        return result.output.split(separator: "\n").map(String.init)
    }

    /// The newest snapshot of every dataset under `pool`, named relative to
    /// it (HOST/DATASET). Datasets without snapshots (containers) are left out.
    public func newestSnapshots(under pool: String) async throws -> [DriveDataset] {
        // One `zfs get -r`: it lists the snapshots too, with their dataset.
        let rows = try await properties(["createtxg", "creation"], of: [pool], recursive: true)
        var order: [String] = []
        var newest: [String: (snapshot: String, txg: UInt64)] = [:]
        var creations: [String: UInt64] = [:]
        for row in rows {
            guard let at = row.dataset.firstIndex(of: "@"), let number = UInt64(row.value) else { continue }
            if row.property == "creation" {
                creations[row.dataset] = number
                continue
            }
            let dataset = String(row.dataset[..<at])
            guard dataset.hasPrefix(pool + "/") else { continue }
            if newest[dataset] == nil { order.append(dataset) }
            if number >= newest[dataset]?.txg ?? 0 {
                newest[dataset] = (String(row.dataset[row.dataset.index(after: at)...]), number)
            }
        }
        return order.compactMap { dataset in
            newest[dataset].map { last in
                DriveDataset(
                    dataset: String(dataset.dropFirst(pool.count + 1)), snapshot: last.snapshot,
                    created: creations[dataset + "@" + last.snapshot].map { Date(timeIntervalSince1970: TimeInterval($0)).rfc3339 })
            }
        }
    }

    static func rows(_ output: String) -> [PropertyRow] {
        output.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 4 else { return nil }
            return PropertyRow(dataset: String(fields[0]), property: String(fields[1]), value: String(fields[2]), source: String(fields[3]))
        }
    }
}
