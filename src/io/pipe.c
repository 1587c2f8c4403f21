/* Pipe I/O for streams: a stream over a pipe or FIFO (anything that is
 * not a socket, chosen once in tide_stream_new) reads with read(2)
 * through the calling task's op and writes with write(2) or writev(2).
 *
 * A write to a pipe whose reader has gone raises SIGPIPE, whose default
 * action ends the process, and there is no MSG_NOSIGNAL for pipes. So a
 * write here blocks SIGPIPE in the calling thread around the call, and
 * if it failed with EPIPE, takes the SIGPIPE it raised (unless one was
 * already pending before, which stays for the application): the caller
 * gets -EPIPE and the process survives, whatever the disposition. Two
 * extra system calls per write (the mask, then back), no change to the
 * process's signal dispositions.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "base/sys.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <time.h>

ssize_t tide__pipe_read(int fd, void *buf, size_t len)
{
    if (!len)
        return 0;
    struct tide__op op = {
        .kind = TIDE__OP_READ, .fd = fd, .buf = buf, .len = len, .offset = -1};
    return tide__io_run(&op, "pipe read");
}

ssize_t tide__pipe_writev(int fd, const struct iovec *iov, int n)
{
    sigset_t pipe_only, old;

    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    bool was_pending = false;
    if (sigismember(&old, SIGPIPE)) {
        sigset_t pending;
        was_pending =
            sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    }
    ssize_t r = n == 1 ? tide__sys_write(fd, iov[0].iov_base, iov[0].iov_len)
                       : writev(fd, iov, n);
    int err = errno;
    if (r < 0 && err == EPIPE && !was_pending) {
        struct timespec now = {0, 0};
        (void)sigtimedwait(&pipe_only, NULL, &now);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return r;
}
