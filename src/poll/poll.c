/* The poll() backend: the portable fallback (TIDE_BACKEND=poll forces
 * it). Ops on readiness (ready.c), level-triggered: an op that waits
 * for readiness before its first try (TIDE__HINT_STREAM) is always safe
 * here, since poll(2) reports data that is already there.
 *
 * Only fds with queued ops are watched: they sit in a dense array of
 * struct pollfd (the wake-up eventfd always at index 0) and their record's
 * slot is the index + 1, so starting and stopping are O(1) (the last
 * entry fills the hole). ppoll gives the time limit nanosecond
 * resolution.
 * SPDX-License-Identifier: MIT
 */
#include "poll/ready.h"

#include "base/alloc.h"
#include "base/sys.h"

#include <errno.h>
#include <poll.h>
#include <time.h>

static void remove_slot(struct tide__backend *b, struct tide__fdent *e)
{
    struct pollfd *pfds = b->pfds;
    uint32_t i = e->slot - 1, last = --b->npfds;

    if (i != last) {
        pfds[i] = pfds[last];
        b->fds[pfds[i].fd].slot = i + 1;
    }
    e->slot = 0;
}

static int pl_watch(struct tide__backend *b, int fd, struct tide__fdent *e)
{
    short events = e->wq ? POLLOUT : 0;

    for (struct tide__op *op = e->rq; op; op = op->bnext)
        events |= op->kind == TIDE__OP_POLL ? (short)op->flags : POLLIN;
    if (!events) {
        if (e->slot)
            remove_slot(b, e);
        return 0;
    }
    if (!e->slot) {
        if (b->npfds == b->cap_pfds) {
            uint32_t cap = b->cap_pfds * 2;
            struct pollfd *p = tide__realloc(b->pfds, cap * sizeof *p);
            if (!p)
                return -ENOMEM;
            b->pfds = p;
            b->cap_pfds = cap;
        }
        struct pollfd *p = b->pfds;
        p[b->npfds] = (struct pollfd){.fd = fd};
        e->slot = ++b->npfds;
    }
    ((struct pollfd *)b->pfds)[e->slot - 1].events = events;
    return 0;
}

static void pl_unwatch(struct tide__backend *b, int fd, struct tide__fdent *e,
                       bool still_open)
{
    (void)fd;
    (void)still_open;
    if (e->slot)
        remove_slot(b, e);
}

static const struct tide__watch_ops watch_ops = {pl_watch, pl_unwatch};

static int pl_open(struct tide__backend *b)
{
    b->fd = -1;
    b->pfds = tide__malloc(16 * sizeof(struct pollfd));
    if (!b->pfds)
        return -ENOMEM;
    b->cap_pfds = 16;
    int err = tide__ready_wake_open(b);
    if (err < 0) {
        tide__free(b->pfds);
        b->pfds = NULL;
        return err;
    }
    struct pollfd *p = b->pfds;
    p[0] = (struct pollfd){.fd = b->wake_fd, .events = POLLIN};
    b->npfds = 1;
    return 0;
}

static void pl_close(struct tide__backend *b)
{
    tide__ready_free(b);
    tide__free(b->pfds);
    b->pfds = NULL;
    b->npfds = b->cap_pfds = 0;
}

static int pl_submit(struct tide__backend *b, struct tide__op *op)
{
    return tide__ready_submit(b, op, &watch_ops);
}

static int pl_cancel(struct tide__backend *b, struct tide__op *op)
{
    return tide__ready_cancel(b, op, &watch_ops);
}

static int pl_wait(struct tide__backend *b, int64_t timeout_ns,
                   struct tide__completion *out, int cap)
{
    int n = tide__ready_take_done(b, out, cap);

    if (n == cap)
        return n;
    if (n)
        timeout_ns = 0;
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000,
                          .tv_nsec = timeout_ns % 1000000000};
    struct pollfd *pfds = b->pfds;
    int got = tide__sys_poll(pfds, b->npfds, timeout_ns < 0 ? NULL : &ts);
    if (got < 0)
        return n ? n : errno == EINTR ? 0 : -errno;
    if (pfds[0].revents) {
        pfds[0].revents = 0;
        tide__ready_wake_clear(b);
    }
    /* Firing may stop watching this fd (its queues drained): the last
     * entry then moves into slot i, to be looked at next. One moved into
     * a slot already passed is simply seen on the next wait. */
    for (uint32_t i = 1; i < b->npfds;) {
        short re = pfds[i].revents;
        int fd = pfds[i].fd;
        if (!re) {
            i++;
            continue;
        }
        pfds[i].revents = 0;
        tide__ready_fire(b, fd, (uint16_t)re, out, cap, &n, &watch_ops);
        if (b->fds[fd].slot == i + 1)
            i++;
    }
    return n;
}

static void pl_wake(struct tide__backend *b)
{
    tide__ready_wake(b);
}

static int pl_fd(struct tide__backend *b)
{
    (void)b;
    return -ENOTSUP;
}

const struct tide__backend_ops tide__backend_poll = {
    .name = "poll",
    .open = pl_open,
    .close = pl_close,
    .submit = pl_submit,
    .cancel = pl_cancel,
    .wait = pl_wait,
    .wake = pl_wake,
    .fd = pl_fd,
};
