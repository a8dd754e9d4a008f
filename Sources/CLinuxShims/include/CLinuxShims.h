#ifndef FERRY_CLINUXSHIMS_H
#define FERRY_CLINUXSHIMS_H

// Linux calls that glibc declares only under _GNU_SOURCE, which Swift's
// Glibc module does not define.

/// syncfs(2): writes out one filesystem, not every filesystem as sync(2) does.
int ferry_syncfs(int fd);

/// pipe2(2) with O_CLOEXEC: no child started meanwhile inherits an end.
int ferry_pipe_cloexec(int fds[2]);

/// sync_file_range(2) with SYNC_FILE_RANGE_WRITE: starts writing a range
/// out without waiting, so that the final fsync of a large file is short.
int ferry_start_writeback(int fd, long long offset, long long length);

/// sendfile(2) from the current offset of `in`: the kernel copies up to
/// `count` bytes between two files with no buffer in this process.
long ferry_sendfile(int out, int in, unsigned long count);

/// fcntl(2) F_SETPIPE_SZ: asks for a pipe buffer of `size` bytes.
int ferry_set_pipe_size(int fd, int size);

/// ioctl(2) BLKROSET: sets or clears the kernel's read-only flag of the
/// block device open at `fd`, which no filesystem (nor journal replay)
/// gets past. Swift cannot import the BLKROSET macro itself.
int ferry_set_block_readonly(int fd, int readOnly);

/// mallopt(3): glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD set to
/// `threshold` bytes, and M_ARENA_MAX to `arenas`. malloc.h is not in
/// Swift's Glibc module. Returns 1 when all three were taken.
int ferry_tune_malloc(int threshold, int arenas);

#endif
