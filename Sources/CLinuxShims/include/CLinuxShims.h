#ifndef FERRY_CLINUXSHIMS_H
#define FERRY_CLINUXSHIMS_H

// Linux calls that glibc declares only under _GNU_SOURCE, which Swift's
// Glibc module does not define.

/// syncfs(2): writes out one filesystem, not every filesystem as sync(2) does.
int ferry_syncfs(int fd);

#endif
