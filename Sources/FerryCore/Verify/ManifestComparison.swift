import Foundation

/// One way the drive's copy and the laptop's differ.
public struct ManifestDifference: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// On the drive, not on the laptop.
        case onlyOnDrive = "only-on-drive"
        /// On the laptop, not on the drive.
        case onlyOnLaptop = "only-on-laptop"
        /// On both, with different type, size, mode, contents or target.
        case differs
    }

    public var path: Data
    public var kind: Kind
    /// Which fields differ (type, size, mode, sha256, target).
    public var fields: [String]

    public var line: String {
        switch kind {
        case .onlyOnDrive: "\(ManifestEntry.shown(path)): only on the drive"
        case .onlyOnLaptop: "\(ManifestEntry.shown(path)): only on the laptop"
        case .differs: "\(ManifestEntry.shown(path)): differs in \(fields.joined(separator: ", "))"
        }
    }
}

/// The drive's manifest against the laptop's, in one pass over both sorted
/// lists: a summary and the first differences.
public struct ManifestComparison: Sendable, Equatable {
    /// The most differences listed; the rest are only counted.
    public static let listed = 20

    public var entries: Int
    public var fileBytes: UInt64
    public var differences: [ManifestDifference] = []
    public var differencesTotal = 0

    public init(drive: [ManifestEntry], laptop: [ManifestEntry]) {
        entries = drive.count
        fileBytes = drive.reduce(0) { $0 + ($1.type == .file ? $1.size : 0) }
        var (d, l) = (0, 0)
        while d < drive.count || l < laptop.count {
            if l == laptop.count || (d < drive.count && drive[d].path.lexicographicallyPrecedes(laptop[l].path)) {
                note(ManifestDifference(path: drive[d].path, kind: .onlyOnDrive, fields: []))
                d += 1
            } else if d == drive.count || laptop[l].path.lexicographicallyPrecedes(drive[d].path) {
                note(ManifestDifference(path: laptop[l].path, kind: .onlyOnLaptop, fields: []))
                l += 1
            } else {
                let (a, b) = (drive[d], laptop[l])
                var fields: [String] = []
                if a.type != b.type { fields.append("type") }
                if a.size != b.size { fields.append("size") }
                if a.mode != b.mode { fields.append("mode") }
                if a.sha256 != b.sha256 { fields.append("sha256") }
                if a.target != b.target { fields.append("target") }
                if !fields.isEmpty { note(ManifestDifference(path: a.path, kind: .differs, fields: fields)) }
                d += 1
                l += 1
            }
        }
    }

    private mutating func note(_ difference: ManifestDifference) {
        differencesTotal += 1
        if differences.count < Self.listed { differences.append(difference) }
    }

    public var equal: Bool { differencesTotal == 0 }
}
