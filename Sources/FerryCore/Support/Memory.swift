internal import CLinuxShims

/// Keeps glibc's allocator from holding on to memory ferry has freed.
///
/// ferry's big buffers come and go: a list of 10,000 packet names, the
/// JSON of a state file. glibc raises its mmap threshold to the size of
/// each large block freed, so that the next ones come from the heap and
/// stay resident after they are freed, and it gives each thread that
/// allocates an arena of its own. A fixed threshold of 128 KiB and two
/// arenas keep the peak resident size near what is live. ferry waits on
/// disks and NNCP, never on malloc, so the contention this costs is not felt.
/// A refusal (another libc) costs only memory, so it is not an error.
public func tuneMemoryAllocator() {
    _ = ferry_tune_malloc(128 << 10, 2)
}
