/* The one small interface between the loop and an I/O backend.
 *
 * Readiness style: the loop (and later the I/O layer) watches an fd for
 * read and/or write readiness through a struct tide__io it owns; wait()
 * blocks up to a timeout and calls io->ready(io, revents) for each ready
 * fd. Every backend implements every op (epoll.c, poll.c; io_uring will
 * come through the same interface). HUP and ERR are reported as both
 * readable and writable, so whoever waits is woken and sees the error
 * from its own system call.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_POLL_BACKEND_H
#define TIDE_POLL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#define TIDE__IO_READ 1u
#define TIDE__IO_WRITE 2u

struct tide__io {
    int fd;
    uint32_t events;  /* TIDE__IO_READ | TIDE__IO_WRITE now watched */
    uint32_t slot;    /* the backend's bookkeeping (poll: index + 1) */
    void (*ready)(struct tide__io *io, uint32_t revents);
};

struct tide__poller;

struct tide__backend_ops {
    const char *name;
    int (*open)(struct tide__poller *p);
    void (*close)(struct tide__poller *p);
    /* Watch io->fd for `events` (0 stops watching). Returns 0 or -errno
     * (EPERM for an unpollable fd, EBADF, ENOMEM). */
    int (*watch)(struct tide__poller *p, struct tide__io *io, uint32_t events);
    /* Block up to timeout_ns (-1: forever, 0: just look), dispatch ready
     * fds. Returns the number dispatched or -errno (EINTR is 0). */
    int (*wait)(struct tide__poller *p, int64_t timeout_ns);
};

struct tide__poller {
    const struct tide__backend_ops *ops;
    /* One fd that stands for the whole backend, or -1 if it has none
     * (poll). tide_loop_backend_fd hands it to programs that drive the
     * loop from their own, so every backend keeps this rule: it is
     * readable whenever wait(0) would dispatch something, and only then
     * (epoll: the epoll fd; an io_uring backend: the ring fd, readable
     * while completions are pending: one that holds completions back
     * until the loop enters the kernel must make the ring fd show them;
     * check IORING_SETUP_DEFER_TASKRUN against this). */
    int fd;
    struct tide__io **ios;    /* poll: watched ios, dense */
    void *pfds;               /* poll: struct pollfd[], parallel to ios */
    uint32_t count, cap;
    uint32_t watched;         /* fds watched now */
};

extern const struct tide__backend_ops tide__backend_epoll;
extern const struct tide__backend_ops tide__backend_poll;

/* Open the backend named by TIDE_BACKEND (epoll|poll), else the best one. */
int tide__poller_open(struct tide__poller *p);

#endif
