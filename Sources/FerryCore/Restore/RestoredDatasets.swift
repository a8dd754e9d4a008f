import Foundation

/// One restore that arrived on a laptop.
public struct RestoredDataset: Codable, Sendable, Equatable {
    /// The laptop's dataset it is a copy of (`tank/root`).
    public var dataset: String
    public var snapshot: String
    /// Where it landed, under `[restore] into`.
    public var into: String
    /// The snapshot the increment started from, or nil for a full stream.
    public var from: String?
    /// When the laptop took the snapshot (RFC 3339, from the stream header).
    public var created: String
    /// When it arrived here.
    public var restored: String
    public var bytes: UInt64
}

/// `state-dir/restored.json` on a laptop: every restore that arrived,
/// oldest first, for `ferry status`.
public struct RestoredDatasets: Sendable {
    public static let fileName = "restored.json"
    public var stateDir: String

    public init(stateDir: String) {
        self.stateDir = stateDir
    }

    var file: StateFile<[RestoredDataset]> { StateFile(Self.fileName, stateDir: stateDir) }

    public func load() throws -> [RestoredDataset] {
        try file.load() ?? []
    }

    public func record(_ restored: RestoredDataset) throws {
        try file.write(try load() + [restored])
    }
}
