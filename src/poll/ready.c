/* Ops on top of readiness, shared by epoll.c and poll.c (see ready.h).
 *
 * Invariants: an op is in at most one place (its fd's read queue, its
 * write queue, or the done list; op->bstate says which), and counts in
 * b->inflight from submit until it is reported. Nothing here allocates
 * except growing the fd table to a higher fd number than seen before.
 * SPDX-License-Identifier: MIT
 */
#include "poll/ready.h"

#include "base/alloc.h"
#include "base/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- the system call of an op ------------------------------------------ */

static ssize_t call_once(struct tide__op *op)
{
    switch (op->kind) {
    case TIDE__OP_RECV:
        return op->addr ? tide__sys_recvfrom(op->fd, op->buf, op->len,
                                             op->flags, op->addr, op->addrlen)
                        : tide__sys_recv(op->fd, op->buf, op->len, op->flags);
    case TIDE__OP_SEND:
        return op->addr ? tide__sys_sendto(op->fd, op->buf, op->len,
                                           op->flags | MSG_NOSIGNAL, op->addr,
                                           op->addr_len)
                        : tide__sys_send(op->fd, op->buf, op->len,
                                         op->flags | MSG_NOSIGNAL);
    case TIDE__OP_RECVMSG:
        return tide__sys_recvmsg(op->fd, op->msg, op->flags);
    case TIDE__OP_SENDMSG:
        return tide__sys_sendmsg(op->fd, op->msg, op->flags | MSG_NOSIGNAL);
    case TIDE__OP_READ:
        return op->offset < 0 ? tide__sys_read(op->fd, op->buf, op->len)
                              : tide__sys_pread(op->fd, op->buf, op->len,
                                                (off_t)op->offset);
    case TIDE__OP_WRITE:
        return op->offset < 0 ? tide__sys_write(op->fd, op->buf, op->len)
                              : tide__sys_pwrite(op->fd, op->buf, op->len,
                                                 (off_t)op->offset);
    case TIDE__OP_ACCEPT:
        return tide__sys_accept4(op->fd, op->addr, op->addrlen, op->flags);
    default:
        errno = EINVAL;
        return -1;
    }
}

/* A connect: the first attempt calls connect(); once it is in progress,
 * an attempt (made when the fd is writable) reads its outcome. */
static bool attempt_connect(struct tide__op *op, ssize_t *res)
{
    if (!(op->bflags & TIDE__BF_CONNECTING)) {
        if (tide__sys_connect(op->fd, op->addr, op->addr_len) == 0) {
            *res = 0;
            return true;
        }
        /* EINTR: the connect goes on asynchronously (connect(2)). */
        if (errno != EINPROGRESS && errno != EINTR && errno != EALREADY) {
            *res = -errno;
            return true;
        }
        op->bflags |= TIDE__BF_CONNECTING;
        return false;
    }
    int soerr = 0;
    socklen_t n = sizeof soerr;
    if (tide__sys_getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &soerr, &n) < 0)
        soerr = errno;
    *res = -soerr;
    return true;
}

/* A poll: what holds now, without waiting. */
static bool attempt_poll(struct tide__op *op, ssize_t *res)
{
    struct pollfd p = {.fd = op->fd, .events = (short)op->flags};
    static const struct timespec zero;
    int n;

    while ((n = tide__sys_poll(&p, 1, &zero)) < 0 && errno == EINTR)
        ;
    if (n < 0) {
        *res = -errno;
        return true;
    }
    if (p.revents & POLLNVAL) {
        *res = -EBADF;
        return true;
    }
    *res = p.revents;
    return n > 0 && p.revents;
}

bool tide__op_attempt(struct tide__op *op, ssize_t *res)
{
    ssize_t r;

    if (op->kind == TIDE__OP_CONNECT)
        return attempt_connect(op, res);
    if (op->kind == TIDE__OP_POLL)
        return attempt_poll(op, res);
    while ((r = call_once(op)) < 0 && errno == EINTR)
        ;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return false;
    *res = r < 0 ? -errno : r;
    return true;
}

/* ---- queues ------------------------------------------------------------- */

static bool write_side(const struct tide__op *op)
{
    switch (op->kind) {
    case TIDE__OP_CONNECT:
    case TIDE__OP_SEND:
    case TIDE__OP_SENDMSG:
    case TIDE__OP_WRITE:
        return true;
    case TIDE__OP_POLL:
        return !(op->flags & POLLIN);
    default:
        return false;
    }
}

static void unlink_op(struct tide__fdent *e, struct tide__op *op)
{
    struct tide__op **head = op->bstate == TIDE__B_READQ ? &e->rq : &e->wq;
    struct tide__op **tail =
        op->bstate == TIDE__B_READQ ? &e->rq_tail : &e->wq_tail;
    if (op->bprev)
        op->bprev->bnext = op->bnext;
    else
        *head = op->bnext;
    if (op->bnext)
        op->bnext->bprev = op->bprev;
    else
        *tail = op->bprev;
    op->bnext = op->bprev = NULL;
    op->bstate = TIDE__B_IDLE;
}

static void enqueue(struct tide__fdent *e, struct tide__op *op)
{
    bool w = write_side(op);
    struct tide__op **head = w ? &e->wq : &e->rq;
    struct tide__op **tail = w ? &e->wq_tail : &e->rq_tail;

    op->bnext = NULL;
    op->bprev = *tail;
    if (*tail)
        (*tail)->bnext = op;
    else
        *head = op;
    *tail = op;
    op->bstate = w ? TIDE__B_WRITEQ : TIDE__B_READQ;
}

/* Report op with `res`: into out[] while there is room, else the done
 * list. */
static void emit(struct tide__backend *b, struct tide__op *op, ssize_t res,
                 struct tide__completion *out, int cap, int *n)
{
    if (out && *n < cap) {
        out[(*n)++] =
            (struct tide__completion){.token = op->token, .result = res};
        op->bstate = TIDE__B_IDLE;
        b->inflight--;
        return;
    }
    op->result = res;
    op->bnext = NULL;
    op->bprev = b->done_tail;
    if (b->done_tail)
        b->done_tail->bnext = op;
    else
        b->done = op;
    b->done_tail = op;
    op->bstate = TIDE__B_DONE;
}

int tide__ready_take_done(struct tide__backend *b,
                          struct tide__completion *out, int cap)
{
    int n = 0;

    while (b->done && n < cap) {
        struct tide__op *op = b->done;
        b->done = op->bnext;
        if (b->done)
            b->done->bprev = NULL;
        else
            b->done_tail = NULL;
        op->bnext = op->bprev = NULL;
        op->bstate = TIDE__B_IDLE;
        out[n++] = (struct tide__completion){.token = op->token,
                                             .result = op->result};
        b->inflight--;
    }
    return n;
}

static void unlink_done(struct tide__backend *b, struct tide__op *op)
{
    if (op->bprev)
        op->bprev->bnext = op->bnext;
    else
        b->done = op->bnext;
    if (op->bnext)
        op->bnext->bprev = op->bprev;
    else
        b->done_tail = op->bprev;
    op->bnext = op->bprev = NULL;
    op->bstate = TIDE__B_IDLE;
}

/* Complete every op queued on e with `res` (onto the done list). */
static void flush(struct tide__backend *b, struct tide__fdent *e, ssize_t res)
{
    struct tide__op *op;

    while ((op = e->rq) || (op = e->wq)) {
        unlink_op(e, op);
        emit(b, op, res, NULL, 0, NULL);
    }
}

/* Let the fd's record go: its queued ops end with -EBADF, the backend
 * stops watching it, and events still on their way for it are stale
 * (the generation moves on). */
static void let_go(struct tide__backend *b, int fd, struct tide__fdent *e,
                   bool still_open, const struct tide__watch_ops *w)
{
    flush(b, e, -EBADF);
    w->unwatch(b, fd, e, still_open);
    e->gen++;
    e->ready = 0;
}

/* The record for fd, growing the table to reach it. */
static struct tide__fdent *ent_make(struct tide__backend *b, int fd)
{
    if ((uint32_t)fd >= b->nfds) {
        uint32_t n = b->nfds ? b->nfds : 64;
        while (n <= (uint32_t)fd)
            n *= 2;
        struct tide__fdent *t = tide__realloc(b->fds, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + b->nfds, 0, (n - b->nfds) * sizeof *t);
        b->fds = t;
        b->nfds = n;
    }
    return &b->fds[fd];
}

/* A new file got fd's number (tide accepted it, or a connect starts on
 * it): a record left by a file closed behind tide's back is stale. */
static void fresh_fd(struct tide__backend *b, int fd,
                     const struct tide__watch_ops *w)
{
    struct tide__fdent *e = tide__ready_ent(b, fd);

    if (e && (e->registered || e->slot) && !e->rq && !e->wq)
        let_go(b, fd, e, false, w);
}

static int submit_close(struct tide__backend *b, struct tide__op *op,
                        const struct tide__watch_ops *w)
{
    struct tide__fdent *e = tide__ready_ent(b, op->fd);

    if (op->flags & TIDE__CLOSE_FRESH) {
        fresh_fd(b, op->fd, w);
        op->result = 0;
        return 1;
    }
    if (e)
        let_go(b, op->fd, e, true, w);
    op->result = 0;
    if (!(op->flags & TIDE__CLOSE_DETACH) && tide__sys_close(op->fd) < 0 &&
        errno != EINTR) /* Linux frees the fd even on EINTR */
        op->result = -errno;
    return 1;
}

/* A hinted stream receive came back short: the socket is empty, so the
 * next hinted one waits for readiness first (TIDE__HINT_STREAM). Data
 * that comes later makes a readiness event of its own: epoll reports
 * every arrival on an edge-triggered fd, and poll(2) sees the level. */
static void note_drained(struct tide__fdent *e, const struct tide__op *op,
                         ssize_t res)
{
    if (e && (op->hint & TIDE__HINT_STREAM) && res > 0 &&
        (size_t)res < op->len && !(e->ready & TIDE__READY_STICKY))
        e->ready &= (uint8_t)~TIDE__READY_IN;
}

/* op may skip its first attempt: a hinted receive on an fd drained by
 * the last one, with no readiness seen since. (An fd not watched yet is
 * safe too: the backend learns its readiness when it starts to.) */
static bool wait_first(const struct tide__fdent *e, const struct tide__op *op)
{
    return e && (op->hint & TIDE__HINT_STREAM) &&
           !(e->ready & (TIDE__READY_IN | TIDE__READY_STICKY));
}

int tide__ready_submit(struct tide__backend *b, struct tide__op *op,
                       const struct tide__watch_ops *w)
{
    if (op->kind == TIDE__OP_FSYNC)
        return -ENOTSUP; /* it would block the loop: the pool makes it */
    op->bstate = TIDE__B_IDLE;
    op->bflags = 0;
    op->bnext = op->bprev = NULL;
    if (op->fd < 0) {
        op->result = -EBADF;
        return 1;
    }
    if (op->kind == TIDE__OP_CLOSE)
        return submit_close(b, op, w);
    if (op->kind == TIDE__OP_CONNECT)
        fresh_fd(b, op->fd, w);

    /* Behind ops already queued on the same side, wait in line (their
     * turn comes with the same readiness); else try the call now. */
    struct tide__fdent *e = tide__ready_ent(b, op->fd);
    struct tide__op *first = e ? (write_side(op) ? e->wq : e->rq) : NULL;
    bool queued =
        (first && first->kind != TIDE__OP_POLL && op->kind != TIDE__OP_POLL) ||
        wait_first(e, op);
    ssize_t res;
    if (!queued && tide__op_attempt(op, &res)) {
        op->result = res;
        note_drained(e, op, res);
        if (op->kind == TIDE__OP_ACCEPT && res >= 0)
            fresh_fd(b, (int)res, w);
        return 1;
    }
    if (!e && !(e = ent_make(b, op->fd))) {
        op->result = -ENOMEM;
        return 1;
    }
    if (op->kind != TIDE__OP_POLL)
        e->ready &=
            (uint8_t) ~(write_side(op) ? TIDE__READY_OUT : TIDE__READY_IN);
    enqueue(e, op);
    int err = w->watch(b, op->fd, e);
    if (err < 0) {
        unlink_op(e, op);
        w->watch(b, op->fd, e); /* give back what the queue asked for */
        op->result = err;
        return 1;
    }
    b->inflight++;
    return 0;
}

int tide__ready_cancel(struct tide__backend *b, struct tide__op *op,
                       const struct tide__watch_ops *w)
{
    if (op->bstate == TIDE__B_READQ || op->bstate == TIDE__B_WRITEQ) {
        struct tide__fdent *e = &b->fds[op->fd];
        unlink_op(e, op);
        w->watch(b, op->fd, e);
        b->inflight--;
        op->result = -ECANCELED;
        return 1;
    }
    if (op->bstate == TIDE__B_DONE) {
        /* Finished before the cancel: the real result wins, inline. */
        unlink_done(b, op);
        b->inflight--;
        return 1;
    }
    return 0; /* already reported: its completion is in the core's batch */
}

/* Retry the ops of one side of e: polls by this event's revents, system
 * calls while the side is ready (until one would block). */
static void fire_queue(struct tide__backend *b, struct tide__fdent *e,
                       bool wside, uint32_t revents,
                       struct tide__completion *out, int cap, int *n,
                       const struct tide__watch_ops *w)
{
    uint8_t bit = wside ? TIDE__READY_OUT : TIDE__READY_IN;
    struct tide__op *op = wside ? e->wq : e->rq;

    while (op) {
        struct tide__op *next = op->bnext;
        ssize_t res;
        if (op->kind == TIDE__OP_POLL) {
            uint32_t got = revents & ((uint32_t)op->flags | POLLHUP | POLLERR |
                                      POLLRDHUP);
            if (revents & POLLNVAL) {
                unlink_op(e, op);
                emit(b, op, -EBADF, out, cap, n);
            } else if (got) {
                unlink_op(e, op);
                emit(b, op, (ssize_t)got, out, cap, n);
            }
        } else if (e->ready & bit) {
            if (tide__op_attempt(op, &res)) {
                unlink_op(e, op);
                note_drained(e, op, res);
                emit(b, op, res, out, cap, n);
                if (op->kind == TIDE__OP_ACCEPT && res >= 0)
                    fresh_fd(b, (int)res, w);
            } else {
                e->ready &= (uint8_t)~bit; /* used up: wait for an edge */
            }
        }
        op = next;
    }
}

void tide__ready_fire(struct tide__backend *b, int fd, uint32_t revents,
                      struct tide__completion *out, int cap, int *n,
                      const struct tide__watch_ops *w)
{
    struct tide__fdent *e = tide__ready_ent(b, fd);

    if (!e)
        return;
    if (revents & (POLLIN | POLLHUP | POLLERR | POLLRDHUP | POLLNVAL))
        e->ready |= TIDE__READY_IN;
    if (revents & (POLLOUT | POLLHUP | POLLERR | POLLNVAL))
        e->ready |= TIDE__READY_OUT;
    if (revents & (POLLPRI | POLLRDHUP | POLLHUP | POLLERR))
        e->ready |= TIDE__READY_STICKY; /* until let_go */
    bool had = e->rq || e->wq;
    if (e->rq)
        fire_queue(b, e, false, revents, out, cap, n, w);
    if (e->wq)
        fire_queue(b, e, true, revents, out, cap, n, w);
    if (had && !e->rq && !e->wq)
        w->watch(b, fd, e);
}

void tide__ready_emit(struct tide__backend *b, struct tide__op *op,
                      ssize_t res, struct tide__completion *out, int cap,
                      int *n)
{
    emit(b, op, res, out, cap, n);
}

void tide__ready_unlink_done(struct tide__backend *b, struct tide__op *op)
{
    unlink_done(b, op);
}

/* ---- wake-up ------------------------------------------------------------ */

int tide__ready_wake_open(struct tide__backend *b)
{
    b->wake_fd = tide__sys_eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return b->wake_fd < 0 ? -errno : 0;
}

void tide__ready_wake(struct tide__backend *b)
{
    /* EAGAIN: the counter is already nonzero, the loop wakes anyway.
     * EINTR cannot happen on a nonblocking eventfd; retried if it did. */
    while (tide__sys_wake(b->wake_fd) < 0 && errno == EINTR)
        ;
}

void tide__ready_wake_clear(struct tide__backend *b)
{
    uint64_t v;

    while (tide__sys_read(b->wake_fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
}

void tide__ready_free(struct tide__backend *b)
{
    if (b->wake_fd >= 0)
        tide__sys_close(b->wake_fd);
    b->wake_fd = -1;
    tide__free(b->fds);
    b->fds = NULL;
    b->nfds = 0;
    b->done = b->done_tail = NULL;
    b->inflight = 0;
}
