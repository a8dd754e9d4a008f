internal import CLinuxShims
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// The kernel's read-only flag of a block device (BLKROSET).
///
/// A read-only mount alone still writes: ext4 replays a journal that needs
/// recovery even then. With the flag set, nothing reaches the medium, so the
/// first look at one whose identity has not verified changes no byte. The
/// flag is cleared when that look is unmounted, and before a read-write
/// mount (a verified stick, an enrolment).
enum DeviceWriteProtection {
    static func set(_ devnode: String, readOnly: Bool) throws(MountError) {
        let operation = readOnly ? "setting read-only" : "setting read-write"
        let fd = open(devnode, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw MountError(operation: operation, target: devnode, errno: Errno(rawValue: errno)) }
        defer { close(fd) }
        guard ferry_set_block_readonly(fd, readOnly ? 1 : 0) == 0 else {
            throw MountError(operation: operation, target: devnode, errno: Errno(rawValue: errno))
        }
    }
}
