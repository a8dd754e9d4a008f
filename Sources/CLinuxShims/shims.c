#define _GNU_SOURCE
#include <unistd.h>
#include "CLinuxShims.h"

int ferry_syncfs(int fd) { return syncfs(fd); }
