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
        return terminalText([
            "device      \(device.devnode) (\(device.kernelName))",
            "size        \(humanSize(device.size)) (\(device.size) bytes)",
            "filesystem  type \(shown(filesystem.type)), label \(shown(filesystem.label)), uuid \(shown(filesystem.uuid))",
            "hardware    bus \(shown(hardware.bus)), serial \(shown(hardware.serial)), vendor \(shown(hardware.vendor)), model \(shown(hardware.model))",
            "usb parent  \(hardware.usbParent ? "yes" : "no")\(hardware.udevKnown ? "" : " (the udev database has no entry for this device)")",
            "verdict     \(recognition.verdict.rawValue): \(recognition.reason)",
        ])
    }
}
