#define _GNU_SOURCE
#include <malloc.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <linux/fs.h>
#include "CLinuxShims.h"

int ferry_syncfs(int fd) { return syncfs(fd); }

int ferry_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int ferry_start_writeback(int fd, long long offset, long long length) {
    return sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
}

long ferry_sendfile(int out, int in, unsigned long count) { return sendfile(out, in, NULL, count); }

int ferry_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }

int ferry_set_block_readonly(int fd, int readOnly) {
    int value = readOnly ? 1 : 0;
    return ioctl(fd, BLKROSET, &value);
}

int ferry_tune_malloc(int threshold, int arenas) {
    return mallopt(M_MMAP_THRESHOLD, threshold) && mallopt(M_TRIM_THRESHOLD, threshold) && mallopt(M_ARENA_MAX, arenas);
}
