/// What ferry knows of a block device: the libblkid probe of its contents
/// and, where udev has it, the udev view of the hardware.
public struct BlockDevice: Sendable, Equatable, Codable {
    public var devnode: String
    /// The kernel's name, `sdb1` or `loop3`.
    public var kernelName: String
    public var size: UInt64
    public var filesystem: FilesystemProbe
    public var hardware: Hardware

    public init(devnode: String, kernelName: String, size: UInt64, filesystem: FilesystemProbe, hardware: Hardware = Hardware()) {
        self.devnode = devnode
        self.kernelName = kernelName
        self.size = size
        self.filesystem = filesystem
        self.hardware = hardware
    }
}

/// The libblkid superblock probe: TYPE, LABEL and UUID.
public struct FilesystemProbe: Sendable, Equatable, Codable {
    public var type: String?
    public var label: String?
    public var uuid: String?

    public init(type: String? = nil, label: String? = nil, uuid: String? = nil) {
        self.type = type
        self.label = label
        self.uuid = uuid
    }

    /// Filesystems the kernel mounts that a transfer stick may carry.
    public static let stickFilesystems: Set<String> = ["ext2", "ext3", "ext4", "vfat", "exfat", "btrfs", "xfs", "f2fs", "ntfs3"]

    public var isStickFilesystem: Bool { type.map(Self.stickFilesystems.contains) ?? false }
    public var isZFSMember: Bool { type == "zfs_member" }
}

/// The udev properties of the device and its parents.
public struct Hardware: Sendable, Equatable, Codable {
    public var bus: String?
    public var serial: String?
    public var vendor: String?
    public var model: String?
    /// Whether some parent device sits on USB (a stick, or a SATA drive in a USB dock).
    public var usbParent = false
    /// Whether the udev database had an entry for the device at all.
    public var udevKnown = false

    public init(
        bus: String? = nil, serial: String? = nil, vendor: String? = nil, model: String? = nil, usbParent: Bool = false,
        udevKnown: Bool = false
    ) {
        self.bus = bus
        self.serial = serial
        self.vendor = vendor
        self.model = model
        self.usbParent = usbParent
        self.udevKnown = udevKnown
    }
}

/// A device node that cannot be inspected.
public struct DeviceError: FerryError {
    public enum Code: Sendable, Equatable {
        case missing
        case notBlockDevice(String)
        case probeFailed(String)
    }
    public var devnode: String
    public var code: Code

    public var description: String {
        switch code {
        case .missing: "\(printable(devnode)) does not exist; was the medium pulled out?"
        case .notBlockDevice(let kind): "\(printable(devnode)) is \(kind), not a block device"
        case .probeFailed(let reason): "\(printable(devnode)) could not be probed: \(reason)"
        }
    }
}
