import Foundation

/// The newest snapshot backupsvr has received of one dataset, and where.
public struct ReceivedDataset: Codable, Sendable, Equatable {
    /// HOST/DATASET.
    public var dataset: String
    public var snapshot: String
    /// When the laptop took the snapshot (RFC 3339, from the stream header).
    public var created: String
    /// When backupsvr received it.
    public var received: String
    /// The drives that hold it.
    public var pools: [String]
}

/// `state-dir/received.json`: what `ferry receive` has put on the drives,
/// newest snapshot per dataset. Visit records carry it to the spooler.
public struct ReceivedDatasets: Sendable {
    public static let fileName = "received.json"
    public var stateDir: String

    public init(stateDir: String) {
        self.stateDir = stateDir
    }

    var file: StateFile<[ReceivedDataset]> { StateFile(Self.fileName, stateDir: stateDir) }
    /// `state-dir/received-snapshots.json`: HOST/DATASET to the GUIDs (in
    /// decimal) of every snapshot ferry received. Thinning destroys only
    /// these: any other snapshot on a drive is an admin's own.
    var guidFile: StateFile<[String: [String]]> { StateFile("received-snapshots.json", stateDir: stateDir) }

    /// The GUIDs of the snapshots ferry received, by HOST/DATASET.
    public func receivedGUIDs() throws -> [String: Set<UInt64>] {
        (try guidFile.load() ?? [:]).mapValues { Set($0.compactMap(UInt64.init)) }
    }

    public func load() throws -> [ReceivedDataset] {
        try file.load() ?? []
    }

    /// Records that `pool` now holds `stream`'s snapshot. The recorded
    /// snapshot gains the pool; one taken no earlier replaces the record,
    /// held by `pool` alone so far; an older one changes nothing, since the
    /// record is of the newest snapshot.
    public func record(_ stream: StoredStream, pool: String, at time: Date) throws {
        var guids = try guidFile.load() ?? [:]
        let guid = String(stream.header.toGUID)
        if guids["\(stream.dataset)", default: []].contains(guid) == false {
            guids["\(stream.dataset)", default: []].append(guid)
            try guidFile.write(guids)
        }
        var all = try load()
        let name = "\(stream.dataset)"
        let created = Date(timeIntervalSince1970: TimeInterval(stream.header.creationTime)).rfc3339
        if let index = all.firstIndex(where: { $0.dataset == name }) {
            if all[index].snapshot == stream.header.snapshot {
                if !all[index].pools.contains(pool) { all[index].pools.append(pool) }
            } else if created >= all[index].created {
                all[index] = ReceivedDataset(
                    dataset: name, snapshot: stream.header.snapshot, created: created, received: time.rfc3339, pools: [pool])
            }
        } else {
            all.append(
                ReceivedDataset(dataset: name, snapshot: stream.header.snapshot, created: created, received: time.rfc3339, pools: [pool]))
        }
        all.sort { $0.dataset < $1.dataset }
        try file.write(all)
    }
}
