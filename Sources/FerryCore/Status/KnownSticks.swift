import Foundation

/// A stick this host has handled, and how full it was.
public struct StickSeen: Codable, Sendable, Equatable {
    public var uuid: String
    public var label: String
    public var lastSeen: String
    public var freeBytes: UInt64
    public var totalBytes: UInt64
}

/// The sticks this host has seen, in `state-dir/sticks.json`.
public struct KnownSticks: Sendable {
    public static let fileName = "sticks.json"
    public var stateDir: String

    public init(stateDir: String) {
        self.stateDir = stateDir
    }

    var file: StateFile<[StickSeen]> { StateFile(Self.fileName, stateDir: stateDir) }

    public func load() throws -> [StickSeen] {
        try file.load() ?? []
    }

    func saw(identity: StickIdentity, report: VisitReport) throws {
        var sticks = try load().filter { $0.uuid != identity.uuid }
        sticks.append(
            StickSeen(
                uuid: identity.uuid, label: identity.label, lastSeen: report.finished, freeBytes: report.stickFree,
                totalBytes: report.stickTotal))
        try file.write(sticks.sorted { $0.uuid < $1.uuid })
    }
}
