/* The epoll backend (Linux): ops on readiness (ready.c), fds watched
 * edge-triggered.
 *
 * An fd joins the interest list the first time an op on it would block,
 * for EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLPRI|EPOLLET at once, and stays
 * there until it is closed (or detached) through tide, so a request in
 * steady state costs no epoll_ctl. Edge-triggered readiness is
 * remembered per fd (tide__fdent.ready) and used up when a retried call
 * meets EAGAIN, or when a TIDE__HINT_STREAM receive comes back short:
 * every later arrival of data makes a new edge, so the next such receive
 * waits for it without trying first. EPOLLPRI (urgent data, at whose
 * mark a TCP receive stops short with bytes still queued), EPOLLRDHUP,
 * EPOLLHUP and EPOLLERR (reported once, perhaps with the last bytes)
 * end that shortcut for the fd (TIDE__READY_STICKY). The
 * event's data is the fd number and its record's generation: an event
 * for a record let go earlier (closed through tide, or found stale when
 * its number came back from accept) is dropped (HAZARDS B01, B03).
 * EPOLL_CTL_DEL is made before a close through tide, never deferred: a
 * dup'd description would keep reporting (libuv #1099, #4323; B02).
 * An fd closed behind tide's back leaves its number registered here; the
 * record is renewed when tide accepts a new fd of that number or a
 * connect starts on it, and tide_close or tide_fd_detach are the
 * documented ways for other fds.
 * SPDX-License-Identifier: MIT
 */
#include "poll/ready.h"

#include "base/sys.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <time.h>

#define BATCH 256
#define WAKE_DATA UINT64_MAX

/* Only ever goes true -> false; a race between threads is harmless. */
static _Atomic bool have_pwait2 = true;

static int ep_watch(struct tide__backend *b, int fd, struct tide__fdent *e)
{
    if (e->registered || (!e->rq && !e->wq))
        return 0;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET,
        .data.u64 = (uint64_t)e->gen << 32 | (uint32_t)fd,
    };
    if (tide__sys_epoll_ctl(b->fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        /* EEXIST: registered by an earlier record of this number (a
         * connect renewed it); give it this record's generation. */
        if (errno != EEXIST ||
            tide__sys_epoll_ctl(b->fd, EPOLL_CTL_MOD, fd, &ev) < 0)
            return -errno;
    }
    e->registered = 1;
    return 0;
}

static void ep_unwatch(struct tide__backend *b, int fd, struct tide__fdent *e,
                       bool still_open)
{
    if (e->registered && still_open)
        tide__sys_epoll_ctl(b->fd, EPOLL_CTL_DEL, fd, NULL);
    e->registered = 0;
}

static const struct tide__watch_ops watch_ops = {ep_watch, ep_unwatch};

static int ep_open(struct tide__backend *b)
{
    b->fd = tide__sys_epoll_create1(EPOLL_CLOEXEC);
    if (b->fd < 0)
        return -errno;
    int err = tide__ready_wake_open(b);
    if (err == 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_DATA};
        if (tide__sys_epoll_ctl(b->fd, EPOLL_CTL_ADD, b->wake_fd, &ev) < 0)
            err = -errno;
    }
    if (err < 0) {
        tide__ready_free(b);
        tide__sys_close(b->fd);
        b->fd = -1;
    }
    return err;
}

static void ep_close(struct tide__backend *b)
{
    tide__ready_free(b);
    if (b->fd >= 0)
        tide__sys_close(b->fd);
    b->fd = -1;
}

static int ep_submit(struct tide__backend *b, struct tide__op *op)
{
    return tide__ready_submit(b, op, &watch_ops);
}

static int ep_cancel(struct tide__backend *b, struct tide__op *op)
{
    return tide__ready_cancel(b, op, &watch_ops);
}

static int epoll_for(struct tide__backend *b, struct epoll_event *evs,
                     int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return tide__sys_epoll_wait(b->fd, evs, BATCH, NULL, -1);
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000,
                          .tv_nsec = timeout_ns % 1000000000};
    /* epoll_pwait2 (Linux 5.11) takes ns; without it (older kernels,
     * valgrind 3.19) fall back to ms, rounded up, and stop trying. */
    if (have_pwait2) {
        int n = tide__sys_epoll_wait(b->fd, evs, BATCH, &ts, 0);
        if (n >= 0 || errno != ENOSYS)
            return n;
        have_pwait2 = false;
    }
    int64_t ms = (timeout_ns + 999999) / 1000000;
    return tide__sys_epoll_wait(b->fd, evs, BATCH, NULL,
                                ms > 1 << 30 ? 1 << 30 : (int)ms);
}

static int ep_wait(struct tide__backend *b, int64_t timeout_ns,
                   struct tide__completion *out, int cap)
{
    struct epoll_event evs[BATCH];
    int n = tide__ready_take_done(b, out, cap);

    if (n == cap)
        return n;
    int got = epoll_for(b, evs, n ? 0 : timeout_ns);
    if (got < 0)
        return n ? n : errno == EINTR ? 0 : -errno;
    for (int i = 0; i < got; i++) {
        uint64_t data = evs[i].data.u64;
        if (data == WAKE_DATA) {
            tide__ready_wake_clear(b);
            continue;
        }
        int fd = (int)(uint32_t)data;
        struct tide__fdent *e = tide__ready_ent(b, fd);
        if (!e || !e->registered || e->gen != (uint32_t)(data >> 32))
            continue; /* stale: that record was let go */
        tide__ready_fire(b, fd, evs[i].events, out, cap, &n, &watch_ops);
    }
    return n;
}

static void ep_wake(struct tide__backend *b)
{
    tide__ready_wake(b);
}

static int ep_fd(struct tide__backend *b)
{
    return b->fd;
}

const struct tide__backend_ops tide__backend_epoll = {
    .name = "epoll",
    .open = ep_open,
    .close = ep_close,
    .submit = ep_submit,
    .cancel = ep_cancel,
    .wait = ep_wait,
    .wake = ep_wake,
    .fd = ep_fd,
};
