#if canImport(Glibc)
    import Glibc
#endif

/// Looks at a device node: the side effect behind `ferry identify` and the
/// first step of `ferry handle`.
public protocol DeviceInspector: Sendable {
    func inspect(devnode: String) throws(DeviceError) -> BlockDevice
    /// Whether the device node is still there: a medium pulled out takes
    /// its node with it.
    func isPresent(devnode: String) -> Bool
}

/// Inspects real devices with libblkid and libudev. It opens the device
/// read-only and writes nothing.
public struct SystemDeviceInspector: DeviceInspector {
    public init() {}

    public func isPresent(devnode: String) -> Bool {
        access(devnode, F_OK) == 0
    }

    public func inspect(devnode: String) throws(DeviceError) -> BlockDevice {
        var info = stat()
        guard stat(devnode, &info) == 0 else {
            let error = errno
            if error == ENOENT { throw DeviceError(devnode: devnode, code: .missing) }
            throw DeviceError(devnode: devnode, code: .probeFailed(String(cString: strerror(error))))
        }
        switch FileType(mode: info.st_mode) {
        case .blockDevice: break
        case .directory: throw DeviceError(devnode: devnode, code: .notBlockDevice("a directory"))
        case .regular: throw DeviceError(devnode: devnode, code: .notBlockDevice("a regular file"))
        default: throw DeviceError(devnode: devnode, code: .notBlockDevice("some other kind of file"))
        }
        guard let probe = BlkidProbe(path: devnode) else {
            throw DeviceError(devnode: devnode, code: .probeFailed(String(cString: strerror(errno))))
        }
        let kernelName = Self.kernelName(device: UInt64(info.st_rdev)) ?? lastComponent(of: devnode)
        let hardware = UdevLookup(kernelName: kernelName)?.hardware ?? Hardware()
        return BlockDevice(
            devnode: devnode, kernelName: kernelName, size: probe.size,
            filesystem: probe.probeFilesystem(), hardware: hardware)
    }

    /// The kernel's name for a device number, from `/sys/dev/block/MAJ:MIN`,
    /// so that `/dev/disk/by-label/X` and `/dev/sdb1` name the same device.
    private static func kernelName(device: UInt64) -> String? {
        // glibc's major() and minor() are macros, which Swift does not import.
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff)
        let minor = (device & 0xff) | ((device >> 12) & ~0xff)
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        let length = readlink("/sys/dev/block/\(major):\(minor)", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        let target = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return lastComponent(of: target)
    }
}

private func lastComponent(of path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
}
