/// The human form of `ferry identify`.
public struct IdentifyReport {
    public var recognition: Recognition

    public init(_ recognition: Recognition) {
        self.recognition = recognition
    }

    public var text: String {
        let device = recognition.device
        let filesystem = device.filesystem
        let hardware = device.hardware
        func shown(_ value: String?) -> String { value.map { printable($0) } ?? "-" }
        return """
            device      \(device.devnode) (\(device.kernelName))
            size        \(Self.humanSize(device.size)) (\(device.size) bytes)
            filesystem  type \(shown(filesystem.type)), label \(shown(filesystem.label)), uuid \(shown(filesystem.uuid))
            hardware    bus \(shown(hardware.bus)), serial \(shown(hardware.serial)), vendor \(shown(hardware.vendor)), model \(shown(hardware.model))
            usb parent  \(hardware.usbParent ? "yes" : "no")\(hardware.udevKnown ? "" : " (the udev database has no entry for this device)")
            verdict     \(recognition.verdict.rawValue): \(recognition.reason)
            """
    }

    public static func humanSize(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}
