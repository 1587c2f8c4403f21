/* The epoll backend (Linux). Level-triggered; the io pointer travels in
 * the event's data. EPOLL_CTL_DEL is issued at once when watching stops,
 * never deferred (a later close of the fd must not leave it registered:
 * libuv #1099, #4323).
 * SPDX-License-Identifier: MIT
 */
#include "poll/backend.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define BATCH 256

/* Only ever goes true -> false; a race between threads is harmless. */
static _Atomic bool have_pwait2 = true;

static int ep_open(struct tide__poller *p)
{
    p->fd = epoll_create1(EPOLL_CLOEXEC);
    return p->fd < 0 ? -errno : 0;
}

static void ep_close(struct tide__poller *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

static int ep_watch(struct tide__poller *p, struct tide__io *io,
                    uint32_t events)
{
    struct epoll_event ev;
    int op;

    if (events == io->events)
        return 0;
    memset(&ev, 0, sizeof ev);
    ev.data.ptr = io;
    ev.events = (events & TIDE__IO_READ ? EPOLLIN : 0) |
                (events & TIDE__IO_WRITE ? EPOLLOUT : 0);
    op = !events ? EPOLL_CTL_DEL : io->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(p->fd, op, io->fd, &ev) < 0)
        return -errno;
    if (!io->events)
        p->watched++;
    else if (!events)
        p->watched--;
    io->events = events;
    return 0;
}

static int ep_wait(struct tide__poller *p, int64_t timeout_ns)
{
    struct epoll_event evs[BATCH];
    int n;

    if (timeout_ns < 0) {
        n = epoll_wait(p->fd, evs, BATCH, -1);
    } else {
        struct timespec ts = {.tv_sec = timeout_ns / 1000000000,
                              .tv_nsec = timeout_ns % 1000000000};
        /* epoll_pwait2 (Linux 5.11) takes ns; without it (older kernels,
         * valgrind 3.19) fall back to ms, rounded up, and stop trying. */
        n = -1;
        errno = ENOSYS;
        if (have_pwait2)
            n = epoll_pwait2(p->fd, evs, BATCH, &ts, NULL);
        if (n < 0 && errno == ENOSYS) {
            have_pwait2 = false;
            int64_t ms = (timeout_ns + 999999) / 1000000;
            n = epoll_wait(p->fd, evs, BATCH, ms > 1 << 30 ? 1 << 30 : (int)ms);
        }
    }
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        struct tide__io *io = evs[i].data.ptr;
        uint32_t e = evs[i].events, r = 0;
        if (e & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
            r |= TIDE__IO_READ;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            r |= TIDE__IO_WRITE;
        r &= io->events; /* a callback earlier in this batch may have stopped it */
        if (r)
            io->ready(io, r);
    }
    return n;
}

const struct tide__backend_ops tide__backend_epoll = {
    .name = "epoll",
    .open = ep_open,
    .close = ep_close,
    .watch = ep_watch,
    .wait = ep_wait,
};

int tide__poller_open(struct tide__poller *p)
{
    const char *want = getenv("TIDE_BACKEND");

    memset(p, 0, sizeof *p);
    p->fd = -1;
    p->ops = &tide__backend_epoll;
    if (want && strcmp(want, "poll") == 0)
        p->ops = &tide__backend_poll;
    int err = p->ops->open(p);
    if (err < 0 && p->ops == &tide__backend_epoll && err != -EMFILE &&
        err != -ENFILE) {
        p->ops = &tide__backend_poll;
        err = p->ops->open(p);
    }
    return err;
}
