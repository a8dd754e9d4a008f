/// A ZFS dataset name that ferry accepts from a sender or a config:
/// components of letters, digits and `_-.:`, separated by single slashes.
/// No `..`, no `@` or `%`, no empty component, nothing absolute.
public struct DatasetName: Sendable, Hashable, Codable, CustomStringConvertible, Comparable {
    /// ZFS's own limit on a full name (ZFS_MAX_DATASET_NAME_LEN - 1).
    public static let maxLength = 255
    public let components: [Substring]
    public var description: String { components.joined(separator: "/") }

    public init(_ text: String) throws(DatasetNameError) {
        guard !text.isEmpty else { throw DatasetNameError(name: text, problem: "is empty") }
        guard !text.hasPrefix("/") else { throw DatasetNameError(name: text, problem: "is an absolute path") }
        guard text.utf8.count <= Self.maxLength else {
            throw DatasetNameError(name: text, problem: "is longer than \(Self.maxLength) bytes")
        }
        guard !text.contains("@") else { throw DatasetNameError(name: text, problem: "names a snapshot (has @)") }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        for part in parts {
            guard !part.isEmpty else { throw DatasetNameError(name: text, problem: "has an empty component (// or a trailing /)") }
            guard part != "." && part != ".." else { throw DatasetNameError(name: text, problem: "has a . or .. component") }
            guard Self.isValidComponent(part) else {
                throw DatasetNameError(name: text, problem: "has characters ZFS does not allow (only letters, digits and _-.: )")
            }
        }
        components = parts
    }

    /// Letters, digits and `_-.:`, and not `.` or `..`.
    public static func isValidComponent(_ part: Substring) -> Bool {
        !part.isEmpty && part != "." && part != ".."
            && part.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":")
            }
    }

    /// Whether this name is `prefix` or lies under it.
    public func isWithin(_ prefix: DatasetName) -> Bool {
        components.count >= prefix.components.count && Array(components.prefix(prefix.components.count)) == prefix.components
    }

    /// This name under `parent`: `POOL` + `laptop/tank/root`.
    public func under(_ parent: String) -> String { parent + "/" + description }

    public var parent: DatasetName? {
        components.count > 1 ? try? DatasetName(components.dropLast().joined(separator: "/")) : nil
    }

    public static func < (lhs: DatasetName, rhs: DatasetName) -> Bool { lhs.description < rhs.description }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

public struct DatasetNameError: FerryError {
    public var name: String
    public var problem: String

    public var description: String { "dataset name \"\(printable(name))\" \(problem)" }
}

/// `HOST/DATASET[@SNAPSHOT]` as an admin types it at backupsvr.
public enum SnapshotName {
    /// The dataset and, when one is named, the snapshot; one clear error for
    /// a name that is not HOST/DATASET or a snapshot name ZFS would refuse.
    public static func parse(_ text: String) throws(DatasetNameError) -> (dataset: DatasetName, snapshot: String?) {
        let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        let dataset = try DatasetName(String(parts[0]))
        guard dataset.components.count >= 2 else {
            throw DatasetNameError(name: text, problem: "is not HOST/DATASET[@SNAPSHOT]")
        }
        guard parts.count == 2 else { return (dataset, nil) }
        guard DatasetName.isValidComponent(parts[1]) else {
            throw DatasetNameError(name: text, problem: "has a snapshot name ZFS does not allow (only letters, digits and _-.: )")
        }
        return (dataset, String(parts[1]))
    }
}
