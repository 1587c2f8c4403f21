/* The poll() backend: the portable fallback (TIDE_BACKEND=poll forces it).
 *
 * Watched fds sit in a dense array of struct pollfd with a parallel array
 * of io pointers; io->slot is the index + 1 (0: not watched), so watching
 * and unwatching are O(1) (the last entry fills the hole).
 * SPDX-License-Identifier: MIT
 */
#include "poll/backend.h"

#include "base/alloc.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

static int pl_open(struct tide__poller *p)
{
    p->fd = -1;
    return 0;
}

static void pl_close(struct tide__poller *p)
{
    tide__free(p->ios);
    tide__free(p->pfds);
    p->ios = NULL;
    p->pfds = NULL;
    p->count = p->cap = 0;
}

static short mask_of(uint32_t events)
{
    return (short)((events & TIDE__IO_READ ? POLLIN : 0) |
                   (events & TIDE__IO_WRITE ? POLLOUT : 0));
}

static int pl_watch(struct tide__poller *p, struct tide__io *io,
                    uint32_t events)
{
    struct pollfd *pfds = p->pfds;

    if (events == io->events)
        return 0;
    if (io->fd < 0)
        return -EBADF;
    if (!events) {
        uint32_t i = io->slot - 1, last = --p->count;
        p->ios[i] = p->ios[last];
        pfds[i] = pfds[last];
        p->ios[i]->slot = i + 1;
        io->slot = 0;
        io->events = 0;
        p->watched--;
        return 0;
    }
    if (!io->events) {
        if (p->count == p->cap) {
            uint32_t cap = p->cap ? p->cap * 2 : 16;
            void *a = tide__realloc(p->ios, cap * sizeof *p->ios);
            if (!a)
                return -ENOMEM;
            p->ios = a;
            void *b = tide__realloc(p->pfds, cap * sizeof(struct pollfd));
            if (!b)
                return -ENOMEM;
            p->pfds = b;
            pfds = b;
            p->cap = cap;
        }
        io->slot = ++p->count;
        p->ios[io->slot - 1] = io;
        pfds[io->slot - 1].fd = io->fd;
        p->watched++;
    }
    pfds[io->slot - 1].events = mask_of(events);
    pfds[io->slot - 1].revents = 0;
    io->events = events;
    return 0;
}

static int pl_wait(struct tide__poller *p, int64_t timeout_ns)
{
    struct pollfd *pfds = p->pfds;
    int ms = timeout_ns < 0 ? -1
           : timeout_ns > (int64_t)1 << 50 ? 1 << 30
           : (int)((timeout_ns + 999999) / 1000000);
    int n = poll(pfds, p->count, ms);

    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    /* Walk a snapshot count: callbacks may watch or unwatch meanwhile;
     * an io moved into a visited slot is simply seen next time. */
    int done = 0;
    for (uint32_t i = 0; i < p->count && done < n; i++) {
        short re = pfds[i].revents;
        if (!re)
            continue;
        pfds[i].revents = 0;
        done++;
        struct tide__io *io = p->ios[i];
        uint32_t r = 0;
        if (re & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
            r |= TIDE__IO_READ;
        if (re & (POLLOUT | POLLHUP | POLLERR | POLLNVAL))
            r |= TIDE__IO_WRITE;
        r &= io->events;
        if (r)
            io->ready(io, r);
    }
    return n;
}

const struct tide__backend_ops tide__backend_poll = {
    .name = "poll",
    .open = pl_open,
    .close = pl_close,
    .watch = pl_watch,
    .wait = pl_wait,
};
