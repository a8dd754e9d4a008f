/// One snapshot of a dataset, as `zfs get -p` shows it.
public struct SnapshotInfo: Sendable, Equatable, Codable {
    /// The part after `@`.
    public var name: String
    public var guid: UInt64
    /// The transaction group that made it: snapshots sort by this.
    public var createTXG: UInt64
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
    public var problem: String

    public var description: String { problem }
}

/// What ZFS holds, read through the `zfs` and `zpool` commands.
public struct ZFSInventory: Sendable {
    public var runner: any CommandRunner

    public init(runner: any CommandRunner) {
        self.runner = runner
    }

    /// Every imported pool, by name, with its GUID in decimal.
    public func importedPools() async throws -> [String: String] {
        let result = try await runner.run(Zpool.listImported(), input: nil)
        guard result.status.succeeded else {
            // zpool prints "no pools available" with status 0; anything else is a fault.
            throw ZFSError(problem: "zpool list failed (\(result.status)): \(result.errorTail(lines: 1)); is the ZFS daemon running?")
        }
        var pools: [String: String] = [:]
        for line in result.output.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            if fields.count == 2 { pools[String(fields[0])] = String(fields[1]) }
        }
        return pools
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
        let result = try await runner.run(Zfs.get(["guid", "createtxg"], of: [dataset], depth: 1), input: nil)
        guard result.status.succeeded else {
            let error = String(decoding: result.standardError, as: UTF8.self)
            if error.contains("does not exist") { return nil }
            throw ZFSError(problem: "cannot list the snapshots of \(dataset) (\(result.status)): \(result.errorTail(lines: 1))")
        }
        var guids: [String: UInt64] = [:]
        var txgs: [String: UInt64] = [:]
        let prefix = dataset + "@"
        for row in Self.rows(result.output) where row.dataset.hasPrefix(prefix) {
            let name = String(row.dataset.dropFirst(prefix.count))
            guard let number = UInt64(row.value) else { continue }
            if row.property == "guid" { guids[name] = number } else if row.property == "createtxg" { txgs[name] = number }
        }
        return guids.compactMap { name, guid in txgs[name].map { SnapshotInfo(name: name, guid: guid, createTXG: $0) } }
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
            throw ZFSError(problem: "cannot list \(root): \(result.errorTail(lines: 1))")
        }
        return result.output.split(separator: "\n").map(String.init)
    }

    static func rows(_ output: String) -> [PropertyRow] {
        output.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 4 else { return nil }
            return PropertyRow(dataset: String(fields[0]), property: String(fields[1]), value: String(fields[2]), source: String(fields[3]))
        }
    }
}
