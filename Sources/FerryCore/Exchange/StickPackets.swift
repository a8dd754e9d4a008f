import Foundation

/// The packets on a stick, in nncp-xfer's `nncp/RECIPIENT/SENDER/PACKET`
/// layout, as found when a visit starts.
public struct StickPackets: Sendable, Equatable, Codable {
    /// Packets for this node, by sender id: what nncp-xfer -rx will take.
    public var incoming: [String: [String: UInt64]] = [:]
    /// Packets from this node for the peer that are on the stick already.
    public var outgoing: Set<String> = []
    /// Packets for other recipients, by recipient id: left on the stick.
    public var foreign: [String: Int] = [:]
    /// Entries ferry removed: links, devices, leftover temporaries.
    public var removed: [String] = []
    /// Directories that are not NNCP's (not a node's, or where a packet
    /// belongs), left on the stick: nncp-xfer does not enter them.
    public var ignored: [String] = []

    public var incomingCount: Int { incoming.values.reduce(0) { $0 + $1.count } }
    public var incomingBytes: UInt64 { incoming.values.reduce(0) { $0 + $1.values.reduce(0, +) } }

    public init() {}

    /// Walks `STICK/nncp`, making it when missing. Links and special files are
    /// removed, never followed; leftover `nncpxfer*` temporaries of an
    /// interrupted copy are removed; every directory and packet is given to
    /// `owner`, since the other host's NNCP user has another uid. Names are
    /// the bytes on the stick, so one that is not UTF-8 is removed or left
    /// as any other, and shown escaped.
    public static func prepare(root: SafeDirectory, selfID: String, peerID: String, owner: Account?) throws -> (StickPackets, SafeDirectory)
    {
        var packets = StickPackets()
        if try root.kind(of: "nncp") == .symlink {
            try root.remove("nncp")
            packets.removed.append("nncp (a symbolic link)")
        }
        let nncp = try root.subdirectory("nncp", create: true, mode: 0o755)
        if let owner {
            try root.setOwner("nncp", to: owner)
            try root.allowTraversal()
        }
        for recipientName in try nncp.entryNames() {
            try Task.checkCancellation()
            guard let recipient = try nodeDirectory(recipientName, in: nncp, path: "nncp", owner: owner, packets: &packets) else {
                continue
            }
            let recipientDirectory = try nncp.subdirectory(recipientName)
            for senderName in try recipientDirectory.entryNames() {
                try Task.checkCancellation()
                let recipientPath = "nncp/\(recipient)"
                guard
                    let sender = try nodeDirectory(senderName, in: recipientDirectory, path: recipientPath, owner: owner, packets: &packets)
                else { continue }
                let senderPath = "\(recipientPath)/\(sender)"
                let senderDirectory = try recipientDirectory.subdirectory(senderName)
                for entry in try senderDirectory.entryNames() {
                    try Task.checkCancellation()
                    // One fstatat a packet: its kind, size and owner.
                    guard let status = try senderDirectory.status(of: entry) else { continue }
                    if entry.bytes.starts(with: Array("nncpxfer".utf8)) || (status.kind != .regular && status.kind != .directory) {
                        try senderDirectory.remove(entry)
                        packets.removed.append("\(senderPath)/\(entry)")
                        continue
                    }
                    if status.kind == .directory {
                        packets.ignored.append("\(senderPath)/\(entry)")
                        continue
                    }
                    guard let name = entry.string, Spool.isPacketName(name) else { continue }
                    if let owner, !status.isOwned(by: owner) { try senderDirectory.setOwner(entry, to: owner) }
                    if recipient == selfID {
                        packets.incoming[sender, default: [:]][name] = status.size
                    } else if recipient == peerID && sender == selfID {
                        packets.outgoing.insert(name)
                    } else {
                        packets.foreign[recipient, default: 0] += 1
                    }
                }
            }
        }
        return (packets, nncp)
    }

    /// The node id that the directory entry `name` is, when it is a node
    /// directory to walk into; nil otherwise. Links and special files are
    /// removed; other directories are left and listed in `ignored`.
    private static func nodeDirectory(
        _ name: EntryName, in directory: SafeDirectory, path: String, owner: Account?, packets: inout StickPackets
    ) throws -> String? {
        switch try directory.kind(of: name) {
        case .directory:
            guard let id = name.string, Spool.isPacketName(id) else {
                packets.ignored.append("\(path)/\(name)")
                return nil
            }
            if let owner { try directory.setOwner(name, to: owner) }
            return id
        case .regular, nil:
            return nil
        default:
            try directory.remove(name)
            packets.removed.append("\(path)/\(name)")
            return nil
        }
    }
}
