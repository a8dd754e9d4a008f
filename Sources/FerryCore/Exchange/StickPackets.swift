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

    public var incomingCount: Int { incoming.values.reduce(0) { $0 + $1.count } }
    public var incomingBytes: UInt64 { incoming.values.reduce(0) { $0 + $1.values.reduce(0, +) } }

    public init() {}

    /// Walks `STICK/nncp`, making it when missing. Links and special files are
    /// removed, never followed; leftover `nncpxfer*` temporaries of an
    /// interrupted copy are removed; every directory and packet is given to
    /// `owner`, since the other host's NNCP user has another uid.
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
        for recipient in try nncp.entries() {
            try Task.checkCancellation()
            guard try keep(recipient, in: nncp, path: "nncp", owner: owner, packets: &packets) else { continue }
            let recipientDirectory = try nncp.subdirectory(recipient)
            for sender in try recipientDirectory.entries() {
                try Task.checkCancellation()
                let senderPath = "nncp/\(recipient)/\(sender)"
                guard try keep(sender, in: recipientDirectory, path: senderPath, owner: owner, packets: &packets) else { continue }
                let senderDirectory = try recipientDirectory.subdirectory(sender)
                for name in try senderDirectory.entries() {
                    try Task.checkCancellation()
                    let kind = try senderDirectory.kind(of: name)
                    if name.hasPrefix("nncpxfer") || (kind != .regular && kind != .directory) {
                        try senderDirectory.remove(name)
                        packets.removed.append("\(senderPath)/\(printable(name))")
                        continue
                    }
                    guard kind == .regular, Spool.isPacketName(name) else { continue }
                    if let owner { try senderDirectory.setOwner(name, to: owner) }
                    if recipient == selfID {
                        packets.incoming[sender, default: [:]][name] = try senderDirectory.size(of: name)
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

    /// Whether the directory entry `name` is a node directory to walk into.
    /// Links and special files are removed.
    private static func keep(_ name: String, in directory: SafeDirectory, path: String, owner: Account?, packets: inout StickPackets) throws
        -> Bool
    {
        switch try directory.kind(of: name) {
        case .directory:
            guard Spool.isPacketName(name) else { return false }
            if let owner { try directory.setOwner(name, to: owner) }
            return true
        case .regular, nil:
            return false
        default:
            try directory.remove(name)
            packets.removed.append("\(path)/\(printable(name))")
            return false
        }
    }
}
