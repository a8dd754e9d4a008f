/// What a stick's filesystem type, as blkid reports it (`TYPE=`), means for
/// ferry: whether files on it have Unix owners, how it is mounted for
/// nncp-user, and the largest file it can hold.
///
/// The type comes from the superblock probe, never from the label: a label
/// is whatever the stick's last owner typed.
public struct StickFilesystem: Sendable, Equatable {
    public var type: String

    public init(type: String) {
        self.type = type
    }

    /// vfat, exFAT and NTFS (ntfs3) store no Unix owners or modes: the kernel
    /// gives every file the owner and mode named at mount time, and chown(2)
    /// fails there.
    static let ownerless: Set<String> = ["vfat", "exfat", "ntfs3"]

    /// Whether files keep the owner ferry gives them (ext4); otherwise the
    /// mount itself makes nncp-user the owner of everything.
    public var keepsOwners: Bool { !Self.ownerless.contains(type) }

    /// The mount(2) data for this filesystem, ferry's own options beside the
    /// safe flags. On a filesystem without owners every file belongs to
    /// `owner` (nncp-user, or root when there is none), and `umask=0077` gives
    /// the group and others nothing: nncp-user reads and writes the stick,
    /// nobody else on the host sees inside.
    public func mountData(owner: Account?) -> String {
        guard !keepsOwners else { return "" }
        let identity = owner.map { "uid=\($0.uid),gid=\($0.gid)," } ?? ""
        return identity + "umask=0077"
    }

    /// The largest file the filesystem can hold, when it is smaller than any
    /// stick: FAT32 keeps a file's size in 32 bits, so vfat holds no file of
    /// 4 GiB or more, whatever its free space. ext2 and ext3 with 4 KiB blocks
    /// hold 2 TiB, ext4 16 TiB, exFAT and the rest more than any stick: no
    /// limit is enforced for them.
    public var largestFile: UInt64? {
        switch type {
        case "vfat": 4 * 1024 * 1024 * 1024 - 1
        case "ext2", "ext3": 2 * 1024 * 1024 * 1024 * 1024
        case "ext4": 16 * 1024 * 1024 * 1024 * 1024
        default: nil
        }
    }
}
