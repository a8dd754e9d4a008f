import Foundation
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Mounts and unmounts media: the side effect behind every visit.
public protocol Mounter: Sendable {
    /// Mounts `device` (of filesystem `type`) on the existing directory `target`,
    /// always `nosuid,nodev,noexec,nosymfollow`. `options` is the
    /// filesystem's own mount data (`uid=...,umask=0077` on vfat), or empty.
    func mount(device: String, on target: String, type: String, readOnly: Bool, options: String) throws(MountError)
    /// Changes the mount at `target` to read-only or read-write, keeping the
    /// safe options and the filesystem's own (vfat and exfat keep `uid=`,
    /// `gid=` and `umask=` across a remount that passes none).
    func remount(_ target: String, readOnly: Bool) throws(MountError)
    /// Unmounts `target`; `lazy` detaches it even while busy (a pulled stick).
    func unmount(_ target: String, lazy: Bool) throws(MountError)
    /// Whether something is mounted on `target` now.
    func isMounted(_ target: String) -> Bool
    /// Lets `device` be written again once a read-only look at it is
    /// unmounted: the flag is the look's, and must not outlive it (a loop
    /// device keeps it for its next image; mkfs would fail on the stick).
    func allowWrites(device: String) throws(MountError)
}

extension Mounter {
    public func allowWrites(device: String) throws(MountError) {}
}

public struct MountError: FerryError {
    public var operation: String
    public var target: String
    public var errno: Errno

    public var description: String { "\(operation) \(target) failed: \(errno)" }
}

/// Mounts with mount(2) and umount2(2) directly: no mount(8) to fork, and the
/// errno comes back as it is.
public struct LinuxMounter: Mounter {
    /// MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW: nothing on a stick
    /// runs, nothing is a device, and no symlink on it is followed.
    static let safeFlags: UInt = UInt(MS_NOSUID) | UInt(MS_NODEV) | UInt(MS_NOEXEC) | UInt(MS_NOSYMFOLLOW)

    /// The filesystems whose journal a mount replays unless told `noload`.
    static let journalled: Set<String> = ["ext3", "ext4"]

    public init() {}

    /// A read-only mount is a look before anything is trusted: the device
    /// is set read-only first, and ext3/ext4 are mounted with `noload`, so
    /// no journal is replayed (the replay would write the medium, and the
    /// view would hang on a journal ferry has not checked). A read-write
    /// mount clears the device's flag, and replays the journal as it must.
    public func mount(device: String, on target: String, type: String, readOnly: Bool, options: String) throws(MountError) {
        let flags = Self.safeFlags | (readOnly ? UInt(MS_RDONLY) : 0)
        try DeviceWriteProtection.set(device, readOnly: readOnly)
        let options = readOnly && Self.journalled.contains(type) ? (options.isEmpty ? "noload" : options + ",noload") : options
        do {
            try retryingEINTR {
                options.isEmpty
                    ? Glibc.mount(device, target, type, flags, nil) : options.withCString { Glibc.mount(device, target, type, flags, $0) }
            }
        } catch {
            throw MountError(operation: "mounting \(device) on", target: target, errno: error)
        }
    }

    public func remount(_ target: String, readOnly: Bool) throws(MountError) {
        let flags = UInt(MS_REMOUNT) | Self.safeFlags | (readOnly ? UInt(MS_RDONLY) : 0)
        do {
            try retryingEINTR { Glibc.mount(nil, target, nil, flags, nil) }
        } catch {
            throw MountError(operation: "remounting \(readOnly ? "read-only" : "read-write")", target: target, errno: error)
        }
    }

    public func unmount(_ target: String, lazy: Bool) throws(MountError) {
        do {
            try retryingEINTR { umount2(target, lazy ? Int32(MNT_DETACH) : 0) }
        } catch {
            throw MountError(operation: "unmounting", target: target, errno: error)
        }
    }

    public func allowWrites(device: String) throws(MountError) {
        try DeviceWriteProtection.set(device, readOnly: false)
    }

    public func isMounted(_ target: String) -> Bool {
        guard let table = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        let escaped = target.replacingOccurrences(of: "\\", with: "\\134").replacingOccurrences(of: " ", with: "\\040")
            .replacingOccurrences(of: "\t", with: "\\011").replacingOccurrences(of: "\n", with: "\\012")
        return table.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ", maxSplits: 5)
            return fields.count > 4 && fields[4] == escaped
        }
    }
}
