import FerryCore

// The commands only `ferry demo` and the integration tests run, built here
// as FerryCore builds its own in Commands/ExternalCommands.swift: nothing
// that udev starts can make pools or loop devices.

extension Tool {
    public static let losetup = "/usr/sbin/losetup"
    public static let mkfsExt4 = "/usr/sbin/mkfs.ext4"
}

extension Zpool {
    /// Lists the pools, to see whether zfs answers at all (zfs-fuse is a
    /// daemon that may not be running).
    public static func probe() -> Command {
        Command(Tool.zpool, ["list", "-H"], timeout: .seconds(20))
    }

    /// Creates a pool on one device, mounted under `altroot`.
    public static func create(pool: String, device: String, altroot: String) -> Command {
        Command(Tool.zpool, ["create", "-f", "-R", altroot, pool, device], timeout: .seconds(120))
    }

    public static func destroy(pool: String) -> Command {
        Command(Tool.zpool, ["destroy", "-f", pool], timeout: .seconds(300))
    }
}

extension Zfs {
    /// A plain, mounted file system: the laptop's data.
    public static func create(_ dataset: String) -> Command {
        Command(Tool.zfs, ["create", dataset], timeout: .seconds(60))
    }

    /// Prints where `dataset` is mounted.
    public static func mountpoint(of dataset: String) -> Command {
        Command(Tool.zfs, ["get", "-H", "-o", "value", "mountpoint", dataset], timeout: .seconds(60))
    }
}

/// Loop devices and scratch filesystems.
public enum LoopSetup {
    public static func attach(image: String) -> Command {
        Command(Tool.losetup, ["--find", "--show", image], timeout: .seconds(30))
    }

    public static func detach(device: String) -> Command {
        Command(Tool.losetup, ["--detach", device], timeout: .seconds(30))
    }

    public static func makeExt4(image: String, label: String) -> Command {
        Command(Tool.mkfsExt4, ["-q", "-F", "-L", label, image], timeout: .seconds(60))
    }
}
