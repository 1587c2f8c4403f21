/* The io_uring backend (Linux, built with liburing): ops submitted to the
 * kernel as they are, completed from the completion queue.
 *
 * Each op in the kernel has its own pointer as user_data (the op's
 * memory stays put until its completion is reported, backend.h); a low
 * bit says it is in its readiness phase (below). Cancels and the
 * wake-up's poll carry small constants instead. Submissions only fill
 * the submission queue; wait() makes one io_uring_enter that submits
 * them all and waits (a full queue is submitted early and refilled).
 * Completions that do not fit the caller's array stay in the ring, or,
 * for ones made here, on the done list.
 *
 * Readiness phase: a datagram recv with an address (recvfrom has no
 * io_uring op) and any op the kernel answers with EAGAIN (a read or a
 * write on an O_NONBLOCK pipe or tty, HAZARDS B43) wait for a poll, then
 * make their system call here, through the seam, as the readiness
 * backends do; EAGAIN again polls again.
 *
 * Cancel sends IORING_OP_ASYNC_CANCEL for the op's user_data; the op's
 * own completion then comes with -ECANCELED, or its real result if it
 * raced to its end (B41), exactly once. A CLOSE on an fd with ops in the
 * kernel cancels them all (IORING_ASYNC_CANCEL_FD | _ALL), waits for
 * their completions (an op ended so, not cancelled by the core, reports
 * -EBADF as on the readiness backends), and closes the fd only then; one
 * count per fd number knows when. Closing the backend cancels everything
 * and waits for the kernel to let go of every buffer before the ring goes.
 *
 * Ring setup: SINGLE_ISSUER | COOP_TASKRUN where the kernel has them,
 * else COOP_TASKRUN, else neither; never SQPOLL. IORING_FEAT_NODROP is
 * required (CQ overflow is kept by the kernel and flushed by the next
 * enter). The ring starts disabled and is enabled by the first thread
 * that submits or waits, the loop's (SINGLE_ISSUER binds it to that one).
 * fd() is the ring fd, readable while completions are pending. Not
 * DEFER_TASKRUN: it breaks backend.h's rule for fd(). Its completions
 * wait as task work until the loop enters the ring, and Linux 6.18 does
 * not wake a poller of the ring fd for all of them: a poll on the wake
 * eventfd, completed by another thread's write, left poll() on the ring
 * fd asleep until its timeout (examples/embed then printed out of
 * order). A registered eventfd would be signalled, but it is readable
 * after every enter that posts anything, the loop's own included.
 * SPDX-License-Identifier: MIT
 */
#include "poll/ready.h"

#include "base/alloc.h"
#include "base/sys.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

unsigned tide__uring_entries = 256;

#define UD_WAKE 1u   /* the poll on wake_fd */
#define UD_CANCEL 2u /* a cancel request: its own result is not needed */
#define UD_SPECIAL 4096u
#define UD_POLLING 1u /* on an op's pointer: its readiness poll */

#define B_KERNEL 7  /* op->bstate: in the kernel (TIDE__B_DONE: done list) */
#define BF_ASKED 2u /* op->bflags: the core asked to cancel it */
#define BF_READINESS 4u /* poll, then the system call here */
#define BF_POLLING 8u   /* in the kernel as its readiness poll */

#define FD_CLOSING 0x80000000u /* fdops: a CLOSE waits for the count */

struct uring {
    struct io_uring ring;
    bool enabled;    /* io_uring_enable_rings done */
    bool wake_armed; /* the poll on wake_fd is in the kernel */
    size_t kernel;   /* requests in the kernel, whatever they are */
    uint32_t *fdops; /* per fd number: ops in the kernel | FD_CLOSING */
    uint32_t nfdops;
    struct tide__op *closes; /* CLOSE ops waiting, through bnext */
    struct tide__op *live;   /* ops in the kernel, through bnext/bprev */
    pthread_t issuer;        /* who enabled it: SINGLE_ISSUER binds it */
};

static struct uring *ur(struct tide__backend *b)
{
    return b->own;
}

/* ---- submission ------------------------------------------------------- */

static int enable(struct uring *u)
{
    if (u->enabled)
        return 0;
    /* liburing 2.3 leaves io_uring_enable_rings out of its exports. */
    int r = io_uring_register(u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
                              NULL, 0);
    if (r < 0)
        return r;
    u->enabled = true;
    u->issuer = pthread_self();
    return 0;
}

/* An SQE, submitting what is queued if the queue is full; NULL if the
 * kernel takes nothing (errno set). */
static struct io_uring_sqe *sqe_get(struct uring *u)
{
    struct io_uring_sqe *s;

    for (int tries = 0; !(s = io_uring_get_sqe(&u->ring)); tries++) {
        if (tries == 3 || tide__sys_uring_enter(&u->ring, 0, NULL) < 0) {
            if (errno == EINTR && tries < 3)
                continue;
            if (!errno)
                errno = EBUSY;
            return NULL;
        }
    }
    u->kernel++;
    return s;
}

static uint64_t ud_of(const struct tide__op *op)
{
    return (uint64_t)(uintptr_t)op |
           (op->bflags & BF_POLLING ? UD_POLLING : 0);
}

static bool write_side(const struct tide__op *op)
{
    return op->kind == TIDE__OP_SEND || op->kind == TIDE__OP_SENDMSG ||
           op->kind == TIDE__OP_WRITE || op->kind == TIDE__OP_CONNECT;
}

/* Fill an SQE for op as it stands (its op, or its readiness poll). */
static void prep(struct io_uring_sqe *s, struct tide__op *op)
{
    int fd = op->fd;

    if (op->bflags & BF_POLLING) {
        io_uring_prep_poll_add(s, fd, write_side(op) ? POLLOUT : POLLIN);
    } else {
        switch (op->kind) {
        case TIDE__OP_POLL:
            io_uring_prep_poll_add(s, fd, (unsigned)op->flags | POLLRDHUP);
            break;
        case TIDE__OP_ACCEPT:
            io_uring_prep_accept(s, fd, op->addr, op->addrlen, op->flags);
            break;
        case TIDE__OP_CONNECT:
            io_uring_prep_connect(s, fd, op->addr, op->addr_len);
            break;
        case TIDE__OP_RECV:
            io_uring_prep_recv(s, fd, op->buf, op->len, op->flags);
            break;
        case TIDE__OP_SEND:
            io_uring_prep_send(s, fd, op->buf, op->len,
                               op->flags | MSG_NOSIGNAL);
            break;
        case TIDE__OP_RECVMSG:
            io_uring_prep_recvmsg(s, fd, op->msg, (unsigned)op->flags);
            break;
        case TIDE__OP_SENDMSG:
            io_uring_prep_sendmsg(s, fd, op->msg,
                                  (unsigned)op->flags | MSG_NOSIGNAL);
            break;
        case TIDE__OP_READ:
            io_uring_prep_read(s, fd, op->buf, (unsigned)op->len,
                               op->offset < 0 ? (uint64_t)-1
                                              : (uint64_t)op->offset);
            break;
        case TIDE__OP_WRITE:
            io_uring_prep_write(s, fd, op->buf, (unsigned)op->len,
                                op->offset < 0 ? (uint64_t)-1
                                               : (uint64_t)op->offset);
            break;
        }
    }
    io_uring_sqe_set_data64(s, ud_of(op));
}

static int queue_op(struct uring *u, struct tide__op *op)
{
    struct io_uring_sqe *s = sqe_get(u);

    if (!s)
        return -errno;
    prep(s, op);
    return 0;
}

/* The count of ops in the kernel on fd's number (growing the table). */
static uint32_t *fd_count(struct uring *u, int fd)
{
    if ((uint32_t)fd >= u->nfdops) {
        uint32_t n = u->nfdops ? u->nfdops : 64;
        while (n <= (uint32_t)fd)
            n *= 2;
        uint32_t *t = tide__realloc(u->fdops, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + u->nfdops, 0, (n - u->nfdops) * sizeof *t);
        u->fdops = t;
        u->nfdops = n;
    }
    return &u->fdops[fd];
}

static void live_link(struct uring *u, struct tide__op *op)
{
    op->bprev = NULL;
    op->bnext = u->live;
    if (u->live)
        u->live->bprev = op;
    u->live = op;
}

static void live_unlink(struct uring *u, struct tide__op *op)
{
    if (op->bprev)
        op->bprev->bnext = op->bnext;
    else
        u->live = op->bnext;
    if (op->bnext)
        op->bnext->bprev = op->bprev;
    op->bnext = op->bprev = NULL;
}

/* ---- completion ------------------------------------------------------- */

static ssize_t close_now(const struct tide__op *op)
{
    if (op->flags & TIDE__CLOSE_DETACH)
        return 0;
    /* Linux frees the fd even on EINTR. */
    return tide__sys_close(op->fd) < 0 && errno != EINTR ? -errno : 0;
}

/* The last op in the kernel on fd is done: a CLOSE waiting for that
 * closes it now. */
static void fd_quiet(struct tide__backend *b, int fd,
                     struct tide__completion *out, int cap, int *n)
{
    struct uring *u = ur(b);

    u->fdops[fd] = 0;
    for (struct tide__op **p = &u->closes; *p; p = &(*p)->bnext) {
        struct tide__op *op = *p;
        if (op->fd == fd) {
            *p = op->bnext;
            op->bnext = NULL;
            tide__ready_emit(b, op, close_now(op), out, cap, n);
            return;
        }
    }
}

/* op's kernel request ended with res: report it, or go on with it. */
static void complete(struct tide__backend *b, struct tide__op *op, int res,
                     bool polled, struct tide__completion *out, int cap,
                     int *n)
{
    struct uring *u = ur(b);
    bool asked = op->bflags & BF_ASKED;
    ssize_t r = res;

    if (!asked && res >= 0 && polled) {
        /* Ready: the system call, here; would it block, poll again. */
        if (!tide__op_attempt(op, &r)) {
            op->bflags |= BF_POLLING;
            if (queue_op(u, op) == 0)
                return;
            r = -errno;
        }
    } else if (!asked && res == -EAGAIN && !polled &&
               op->kind != TIDE__OP_POLL && op->kind != TIDE__OP_CONNECT) {
        op->bflags |= BF_READINESS | BF_POLLING;
        if (queue_op(u, op) == 0)
            return;
        r = -errno;
    } else if (polled && res >= 0) {
        r = -ECANCELED; /* asked while polling: nothing was done */
    } else if (op->kind == TIDE__OP_POLL && res >= 0) {
        r = res & (op->flags | POLLHUP | POLLERR | POLLRDHUP);
    }
    uint32_t *cnt = &u->fdops[op->fd];
    if (asked && r == -EINTR)
        r = -ECANCELED;
    else if (!asked && r == -ECANCELED)
        r = -EBADF; /* ended by a CLOSE or DETACH of its fd */
    live_unlink(u, op);
    tide__ready_emit(b, op, r, out, cap, n);
    if (--*cnt == FD_CLOSING)
        fd_quiet(b, op->fd, out, cap, n);
}

static void reap(struct tide__backend *b, struct tide__completion *out,
                 int cap, int *n, bool *woken)
{
    struct uring *u = ur(b);
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;

    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        if (*n >= cap)
            break;
        uint64_t ud = cqe->user_data;
        int res = cqe->res;
        seen++;
        u->kernel--;
        if (ud < UD_SPECIAL) {
            if (ud == UD_WAKE) {
                u->wake_armed = false;
                tide__ready_wake_clear(b);
                *woken = true;
            }
            continue;
        }
        struct tide__op *op = (struct tide__op *)(uintptr_t)(ud & ~1ull);
        op->bflags &= (uint8_t)~BF_POLLING; /* that request is over */
        complete(b, op, res, ud & UD_POLLING, out, cap, n);
    }
    io_uring_cq_advance(&u->ring, seen);
}

/* ---- the verbs -------------------------------------------------------- */

static void ur_close(struct tide__backend *b);

static int setup(struct uring *u, unsigned flags, char *why, size_t nwhy)
{
    struct io_uring_params p = {.flags = flags | IORING_SETUP_R_DISABLED};

    if (tide__sys_uring_setup(tide__uring_entries, &u->ring, &p) < 0) {
        snprintf(why, nwhy, "io_uring_setup: %s", strerror(errno));
        return -errno;
    }
    if (!(p.features & IORING_FEAT_NODROP)) {
        tide__sys_uring_exit(&u->ring);
        snprintf(why, nwhy, "io_uring without IORING_FEAT_NODROP");
        return -ENOTSUP;
    }
    return 0;
}

static int ur_open(struct tide__backend *b)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
            IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0,
    };
    struct uring *u = tide__calloc(1, sizeof *u);
    int err = -EINVAL;

    if (!u)
        return -ENOMEM;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        err = setup(u, tries[i], b->why, sizeof b->why);
        /* EINVAL: a flag this kernel does not know; try fewer. */
        if (err != -EINVAL)
            break;
    }
    if (err < 0) {
        tide__free(u);
        return err;
    }
    b->own = u;
    b->fd = u->ring.ring_fd;
    b->why[0] = 0;
    err = tide__ready_wake_open(b);
    if (err < 0)
        ur_close(b);
    return err;
}

static void ur_close(struct tide__backend *b)
{
    struct uring *u = ur(b);

    if (!u)
        return;
    /* Cancel everything, and wait (a second at most: a request the
     * kernel cannot stop) until nothing the kernel holds names a buffer
     * of ours. */
    if (u->kernel && enable(u) == 0) {
        /* One by one, by user_data: a hashed lookup each, where
         * IORING_ASYNC_CANCEL_ANY took 0.75 s for 10,000 polled recvs. */
        for (struct tide__op *op = u->live; op; op = op->bnext) {
            struct io_uring_sqe *s = sqe_get(u);
            if (!s)
                break;
            io_uring_prep_cancel64(s, ud_of(op), 0);
            io_uring_sqe_set_data64(s, UD_CANCEL);
        }
        if (u->wake_armed) {
            struct io_uring_sqe *s = sqe_get(u);
            if (s) {
                io_uring_prep_poll_remove(s, UD_WAKE);
                io_uring_sqe_set_data64(s, UD_CANCEL);
            }
        }
        for (int i = 0; i < 100 && u->kernel; i++) {
            struct __kernel_timespec ts = {.tv_nsec = 10000000};
            if (tide__sys_uring_enter(&u->ring, 1, &ts) < 0 &&
                errno != ETIME && errno != EINTR)
                break;
            struct io_uring_cqe *cqe;
            unsigned head, seen = 0;
            io_uring_for_each_cqe(&u->ring, head, cqe) seen++;
            io_uring_cq_advance(&u->ring, seen);
            u->kernel -= seen;
        }
    }
    tide__sys_uring_exit(&u->ring);
    if (b->wake_fd >= 0)
        tide__sys_close(b->wake_fd);
    b->wake_fd = -1;
    tide__free(u->fdops);
    tide__free(u);
    b->own = NULL;
    b->fd = -1;
    b->done = b->done_tail = NULL;
    b->inflight = 0;
}

static int submit_close(struct tide__backend *b, struct tide__op *op)
{
    struct uring *u = ur(b);
    uint32_t *cnt = (uint32_t)op->fd < u->nfdops ? &u->fdops[op->fd] : NULL;

    if (op->flags & TIDE__CLOSE_FRESH) {
        op->result = 0; /* nothing is known of an fd here */
        return 1;
    }
    if (!cnt || (*cnt & ~FD_CLOSING) == 0) {
        op->result = close_now(op);
        return 1;
    }
    /* The cancel names the fd: the kernel must see it before the caller
     * closes the number (tide_close closes it right after a DETACH). */
    struct io_uring_sqe *s = sqe_get(u);
    if (!s)
        return -errno;
    io_uring_prep_cancel_fd(s, op->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(s, UD_CANCEL);
    if (tide__sys_uring_enter(&u->ring, 0, NULL) < 0)
        return -errno; /* not submitted: nothing will come */
    if ((op->flags & TIDE__CLOSE_DETACH) || (*cnt & FD_CLOSING)) {
        op->result = 0; /* its ops end with -EBADF as they come */
        return 1;
    }
    *cnt |= FD_CLOSING;
    op->bstate = B_KERNEL;
    op->bnext = u->closes;
    u->closes = op;
    b->inflight++;
    return 0;
}

static int ur_submit(struct tide__backend *b, struct tide__op *op)
{
    struct uring *u = ur(b);

    op->bstate = TIDE__B_IDLE;
    op->bflags = 0;
    op->bnext = op->bprev = NULL;
    if (op->fd < 0) {
        op->result = -EBADF;
        return 1;
    }
    int err = enable(u);
    if (err < 0)
        return err;
    if (op->kind == TIDE__OP_CLOSE)
        return submit_close(b, op);
    /* A poll that holds now (or a bad fd) completes inline, as on the
     * readiness backends: tide_add_reader reports -EBADF at once. */
    ssize_t res;
    if (op->kind == TIDE__OP_POLL && tide__op_attempt(op, &res)) {
        op->result = res;
        return 1;
    }
    uint32_t *cnt = fd_count(u, op->fd);
    if (!cnt)
        return -ENOMEM;
    if ((op->kind == TIDE__OP_RECV || op->kind == TIDE__OP_SEND) && op->addr)
        op->bflags = BF_READINESS | BF_POLLING;
    err = queue_op(u, op);
    if (err < 0)
        return err;
    ++*cnt;
    op->bstate = B_KERNEL;
    live_link(u, op);
    b->inflight++;
    return 0;
}

static int ur_cancel(struct tide__backend *b, struct tide__op *op)
{
    struct uring *u = ur(b);

    if (op->bstate == TIDE__B_DONE) {
        /* Finished before the cancel: the real result wins, inline. */
        tide__ready_unlink_done(b, op);
        b->inflight--;
        return 1;
    }
    if (op->bstate != B_KERNEL || op->kind == TIDE__OP_CLOSE ||
        (op->bflags & BF_ASKED))
        return 0;
    op->bflags |= BF_ASKED;
    struct io_uring_sqe *s = sqe_get(u);
    if (s) { /* else the op ends on its own: its completion still comes */
        io_uring_prep_cancel64(s, ud_of(op), 0);
        io_uring_sqe_set_data64(s, UD_CANCEL);
    }
    return 0;
}

static int64_t now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int ur_wait(struct tide__backend *b, int64_t timeout_ns,
                   struct tide__completion *out, int cap)
{
    struct uring *u = ur(b);
    int n = tide__ready_take_done(b, out, cap);
    bool woken = false;
    int64_t end = timeout_ns > 0 ? now_ns() + timeout_ns : 0;
    int err;

    if (n == cap)
        return n;
    if ((err = enable(u)) < 0)
        return n ? n : err;
    if (!u->wake_armed) {
        struct io_uring_sqe *s = sqe_get(u);
        if (s) {
            io_uring_prep_poll_add(s, b->wake_fd, POLLIN);
            io_uring_sqe_set_data64(s, UD_WAKE);
            u->wake_armed = true;
        }
    }
    for (;;) {
        int64_t left = timeout_ns < 0    ? -1
                       : timeout_ns == 0 ? 0
                                         : end - now_ns();
        if (n || io_uring_cq_ready(&u->ring) || (left < 0 && timeout_ns >= 0))
            left = 0;
        struct __kernel_timespec ts = {.tv_sec = left / 1000000000,
                                       .tv_nsec = left % 1000000000};
        int r = tide__sys_uring_enter(&u->ring, left == 0 ? 0 : 1,
                                      left < 0 ? NULL : &ts);
        if (r < 0 && errno != ETIME && errno != EBUSY) {
            if (errno == EINTR)
                woken = true; /* a signal: let the loop see to it */
            else
                return n ? n : -errno;
        }
        reap(b, out, cap, &n, &woken);
        if (n || woken || left == 0 || (timeout_ns > 0 && now_ns() >= end))
            return n;
        /* Only this backend's own completions came: wait on. */
    }
}

static void ur_wake(struct tide__backend *b)
{
    tide__ready_wake(b);
}

static int ur_fd(struct tide__backend *b)
{
    return b->fd;
}

/* SINGLE_ISSUER bound the ring to another thread: every enter here
 * would fail with EEXIST. */
static bool ur_foreign(struct tide__backend *b)
{
    struct uring *u = ur(b);

    return u->enabled && (u->ring.flags & IORING_SETUP_SINGLE_ISSUER) &&
           !pthread_equal(u->issuer, pthread_self());
}

const struct tide__backend_ops tide__backend_uring = {
    .name = "io_uring",
    .open = ur_open,
    .close = ur_close,
    .submit = ur_submit,
    .cancel = ur_cancel,
    .wait = ur_wait,
    .wake = ur_wake,
    .fd = ur_fd,
    .foreign = ur_foreign,
};
