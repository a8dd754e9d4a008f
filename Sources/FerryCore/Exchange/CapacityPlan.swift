import Foundation

/// Which queued packets go onto the stick this time.
///
/// Packets go by niceness (lower first), then by age (older first), as many
/// as fit in the free space less a reserve. Within one niceness, once a
/// packet stays behind no younger one goes ahead of it: the parts of a split
/// stream travel in the order they were queued, and a trip never carries a
/// later part while an earlier one waits. A packet larger than the whole
/// stick can never cross on it and is set apart (it blocks nothing).
public struct CapacityPlan: Sendable, Equatable {
    public var send: [QueuedPacket] = []
    public var stayBehind: [QueuedPacket] = []
    public var tooBig: [QueuedPacket] = []
    /// Packets already on the stick from an earlier visit.
    public var alreadyOnStick: [QueuedPacket] = []

    /// What a packet takes on a filesystem: its bytes rounded up to 4 KiB
    /// blocks, and one block for its directory entry and inode.
    public static func footprint(_ size: UInt64) -> UInt64 {
        (size + 4095) / 4096 * 4096 + 4096
    }

    public init(
        queued: [QueuedPacket], onStick: Set<String>, free: UInt64, total: UInt64, reserve: UInt64, largestFile: UInt64? = nil
    ) {
        var room = free > reserve ? free - reserve : 0
        let ordered = queued.sorted { ($0.nice, $0.queued, $0.name) < ($1.nice, $1.queued, $1.name) }
        var waiting: Set<UInt8> = []
        for packet in ordered {
            if onStick.contains(packet.name) {
                alreadyOnStick.append(packet)
            } else if Self.footprint(packet.size) + reserve > total || packet.size > largestFile ?? .max {
                tooBig.append(packet)
            } else if !waiting.contains(packet.nice) && Self.footprint(packet.size) <= room {
                send.append(packet)
                room -= Self.footprint(packet.size)
            } else {
                stayBehind.append(packet)
                waiting.insert(packet.nice)
            }
        }
    }

    /// Whether nncp-xfer may copy the whole queue itself.
    public var sendsEverything: Bool { stayBehind.isEmpty && tooBig.isEmpty }

    public var sendBytes: UInt64 { send.reduce(0) { $0 + $1.size } }
}
