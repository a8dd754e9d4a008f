internal import CBlkid

/// A libblkid low-level probe of one device or image, freed with the value.
///
/// It reads the superblock straight from the device, so it also works when
/// the udev database knows nothing of the device.
struct BlkidProbe: ~Copyable {
    private let probe: OpaquePointer

    /// Opens `path` read-only for probing (`blkid_new_probe_from_filename`).
    init?(path: String) {
        guard let probe = blkid_new_probe_from_filename(path) else { return nil }
        self.probe = probe
    }

    deinit { blkid_free_probe(probe) }

    /// The size in bytes (`blkid_probe_get_size`).
    var size: UInt64 {
        let size = blkid_probe_get_size(probe)
        return size > 0 ? UInt64(size) : 0
    }

    /// Probes the superblocks (`blkid_do_safeprobe`). Nothing found, or two
    /// filesystems that contradict each other, both give an empty result.
    func probeFilesystem() -> FilesystemProbe {
        blkid_probe_enable_superblocks(probe, 1)
        blkid_probe_set_superblocks_flags(probe, BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE)
        guard blkid_do_safeprobe(probe) == 0 else { return FilesystemProbe() }
        return FilesystemProbe(type: value("TYPE"), label: value("LABEL"), uuid: value("UUID"))
    }

    /// One probed value (`blkid_probe_lookup_value`).
    private func value(_ name: String) -> String? {
        var data: UnsafePointer<CChar>?
        var length = 0
        guard blkid_probe_lookup_value(probe, name, &data, &length) == 0, let data else { return nil }
        return String(cString: data)
    }
}
