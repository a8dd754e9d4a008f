import Foundation

/// A number of packets (or streams) and their bytes.
public struct PacketCount: Codable, Sendable, Equatable {
    public var packets = 0
    public var bytes: UInt64 = 0

    public init(packets: Int = 0, bytes: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
    }
}

/// `bytes` in binary units, one decimal: "1.5 MiB".
public func humanSize(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}
