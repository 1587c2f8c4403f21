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
 * Ring setup: SINGLE_ISSUER | DEFER_TASKRUN where the kernel has them
 * (completions are made only when the loop enters the ring, in one batch:
 * W5 costs ~10% less CPU per request than with COOP_TASKRUN), else
 * SINGLE_ISSUER | COOP_TASKRUN, else COOP_TASKRUN, else neither; never
 * SQPOLL. IORING_FEAT_NODROP is required (CQ overflow is kept by the
 * kernel and flushed by the next enter). The ring starts disabled and is
 * enabled by the first thread that submits or waits, the loop's
 * (SINGLE_ISSUER binds it to that one). fd() keeps backend.h's rule: the
 * ring fd without DEFER_TASKRUN; with it, whose completions wait as task
 * work that wakes no poller of the ring fd, an eventfd registered with
 * the ring, made on the first fd() call (see ur_fd); from that call on,
 * requests are submitted as they are made (flush), not at the next wait.
 * The wake-up is a pipe, not an eventfd (see wake_open).
 * SPDX-License-Identifier: MIT
 */
#include "poll/uring.h"

#include "base/alloc.h"
#include "base/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

unsigned tide__uring_entries = 256;

#define BF_ASKED 2u     /* op->bflags: the core asked to cancel it */
#define BF_READINESS 4u /* poll, then the system call here */
#define BF_POLLING 8u   /* in the kernel as its readiness poll */
#define BF_CLOSED 16u   /* cancelled by a close of its fd */

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
struct io_uring_sqe *tide__uring_sqe(struct uring *u)
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
        case TIDE__OP_FSYNC:
            io_uring_prep_fsync(s, fd,
                                op->flags & TIDE__FSYNC_DATASYNC
                                    ? IORING_FSYNC_DATASYNC
                                    : 0);
            break;
        }
    }
    io_uring_sqe_set_data64(s, ud_of(op));
}

static int queue_op(struct uring *u, struct tide__op *op)
{
    struct io_uring_sqe *s = tide__uring_sqe(u);

    if (!s)
        return -errno;
    prep(s, op);
    return 0;
}

struct uring_fd *tide__uring_fd(struct uring *u, int fd)
{
    if ((uint32_t)fd >= u->nfds) {
        uint32_t n = u->nfds ? u->nfds : 64;
        while (n <= (uint32_t)fd)
            n *= 2;
        struct uring_fd *t = tide__realloc(u->fds, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + u->nfds, 0, (n - u->nfds) * sizeof *t);
        u->fds = t;
        u->nfds = n;
    }
    return &u->fds[fd];
}

/* The ops in the kernel on an fd are listed on its entry, so that a
 * close cancels each by user_data: a hashed lookup in the kernel, where a
 * cancel by fd walks every request of the ring (quadratic when thousands
 * of connections close). */
static void live_link(struct uring_fd *e, struct tide__op *op)
{
    op->bprev = NULL;
    op->bnext = e->live;
    if (e->live)
        e->live->bprev = op;
    e->live = op;
}

static void live_unlink(struct uring_fd *e, struct tide__op *op)
{
    if (op->bprev)
        op->bprev->bnext = op->bnext;
    else
        e->live = op->bnext;
    if (op->bnext)
        op->bnext->bprev = op->bprev;
    op->bnext = op->bprev = NULL;
}

int tide__uring_submit_plain(struct tide__backend *b, struct tide__op *op)
{
    struct uring *u = ur(b);
    struct uring_fd *e = tide__uring_fd(u, op->fd);

    if (!e)
        return -ENOMEM;
    if ((op->kind == TIDE__OP_RECV || op->kind == TIDE__OP_SEND) && op->addr)
        op->bflags = BF_READINESS | BF_POLLING;
    int err = queue_op(u, op);
    if (err < 0)
        return err;
    e->ops++;
    e->reads += op->kind == TIDE__OP_RECV || op->kind == TIDE__OP_RECVMSG;
    op->bstate = B_KERNEL;
    live_link(e, op);
    return 0;
}

/* The receives of an fd go to the kernel one at a time: the others wait
 * on its entry, in call order, each submitted when the one before ends.
 * So several tasks receiving from one fd complete in the order of their
 * calls, as on the readiness backends, and a hundred thousand receives
 * waiting on a few fds are a few requests in the kernel, whose cancel
 * lookup walks one bucket of a table of at most 256 (quadratic for
 * requests in the kernel, constant for these). */
static bool queue_behind(struct uring_fd *e, struct tide__op *op)
{
    if (!e->reads ||
        (op->kind != TIDE__OP_RECV && op->kind != TIDE__OP_RECVMSG))
        return false;
    op->bnext = NULL;
    op->bprev = e->rq_tail;
    if (e->rq_tail)
        e->rq_tail->bnext = op;
    else
        e->rq = op;
    e->rq_tail = op;
    op->bstate = B_QUEUED;
    return true;
}

static void unqueue(struct uring_fd *e, struct tide__op *op)
{
    if (op->bprev)
        op->bprev->bnext = op->bnext;
    else
        e->rq = op->bnext;
    if (op->bnext)
        op->bnext->bprev = op->bprev;
    else
        e->rq_tail = op->bprev;
    op->bnext = op->bprev = NULL;
    op->bstate = TIDE__B_IDLE;
}

/* fd's receive ended: the next queued one goes to the kernel; or (res <
 * 0: its fd is closing) every queued one ends with res. */
static void next_reads(struct tide__backend *b, struct uring_fd *e, int res,
                       struct tide__completion *out, int cap, int *n)
{
    while (e->rq && (res < 0 || !e->reads)) {
        struct tide__op *op = e->rq;
        unqueue(e, op);
        int err = res < 0 ? res : tide__uring_submit_plain(b, op);
        if (err < 0)
            tide__ready_emit(b, op, err, out, cap, n);
    }
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
    struct uring_fd *e = &ur(b)->fds[fd];
    struct tide__op *op = e->closing;

    e->ops = 0;
    e->closing = NULL;
    if (op)
        tide__ready_emit(b, op, close_now(op), out, cap, n);
}

/* op's kernel request ended with res: report it, or go on with it. */
static void complete(struct tide__backend *b, struct tide__op *op, int res,
                     bool polled, struct tide__completion *out, int cap,
                     int *n)
{
    struct uring *u = ur(b);
    bool asked = op->bflags & BF_ASKED;
    bool ending = op->bflags & (BF_ASKED | BF_CLOSED);
    ssize_t r = res;

    if (!ending && res >= 0 && polled) {
        /* Ready: the system call, here; would it block, poll again. */
        if (!tide__op_attempt(op, &r)) {
            op->bflags |= BF_POLLING;
            if (queue_op(u, op) == 0)
                return;
            r = -errno;
        }
    } else if (!ending && res == -EAGAIN && !polled &&
               op->kind != TIDE__OP_POLL && op->kind != TIDE__OP_CONNECT) {
        op->bflags |= BF_READINESS | BF_POLLING;
        if (queue_op(u, op) == 0)
            return;
        r = -errno;
    } else if (polled && res >= 0) {
        r = -ECANCELED; /* stopped while polling: nothing was done */
    } else if (op->kind == TIDE__OP_POLL && res >= 0) {
        r = res & (op->flags | POLLHUP | POLLERR | POLLRDHUP);
    }
    struct uring_fd *e = &u->fds[op->fd];
    if (op->kind == TIDE__OP_RECV || op->kind == TIDE__OP_RECVMSG)
        e->reads--;
    if (asked && r == -EINTR)
        r = -ECANCELED;
    else if (!asked && r == -ECANCELED)
        r = -EBADF; /* ended by a CLOSE or DETACH of its fd */
    live_unlink(e, op);
    if (op->kind == TIDE__OP_ACCEPT && r >= 0)
        tide__ms_renew(b, (int)r);
    tide__ready_emit(b, op, r, out, cap, n);
    next_reads(b, e, 0, out, cap, n);
    if (--e->ops == FD_CLOSING)
        fd_quiet(b, op->fd, out, cap, n);
}

/* The wake-up: a pipe, not the readiness backends' eventfd. A ring with
 * DEFER_TASKRUN signals its embedding eventfd (ur_fd) for a completion
 * made inside another eventfd's wake-up only after an RCU grace period
 * (Linux defers nested eventfd signals), so a wake from another thread or
 * a signal handler would reach an embedding program late; a pipe's does
 * not. wake() writes 8 bytes (a full pipe is already a wake); the read
 * end is polled by the ring and drained when that poll completes. */
static int wake_open(struct tide__backend *b)
{
    struct uring *u = ur(b);
    int p[2];

    if (tide__sys_pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    u->wake_rd = p[0];
    b->wake_fd = p[1];
    return 0;
}

static void wake_clear(struct uring *u)
{
    char buf[256];

    while (tide__sys_read(u->wake_rd, buf, sizeof buf) > 0 || errno == EINTR)
        ;
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
        bool over = !(cqe->flags & IORING_CQE_F_MORE);
        seen++;
        u->kernel -= over;
        if (ud < UD_SPECIAL) {
            if (ud == UD_WAKE) {
                u->wake_armed = false;
                wake_clear(u);
                *woken = true;
            }
            continue;
        }
        if (ud & UD_MS) {
            struct tide__ms *m = tide__ms_of_ud(ud);
            int fd = tide__ms_fd(m);
            tide__ms_cqe(b, m, res, cqe->flags, out, cap, n);
            if (over && --u->fds[fd].ops == FD_CLOSING)
                fd_quiet(b, fd, out, cap, n);
            continue;
        }
        struct tide__op *op = (struct tide__op *)(uintptr_t)(ud & ~1ull);
        op->bflags &= (uint8_t)~BF_POLLING; /* that request is over */
        complete(b, op, res, ud & UD_POLLING, out, cap, n);
    }
    io_uring_cq_advance(&u->ring, seen);
}

/* ---- the verbs -------------------------------------------------------- */

/* A close: cancel every op in the kernel on e; each then ends with
 * -EBADF (BF_CLOSED), unless the core asked first. */
static void cancel_each(struct uring *u, struct uring_fd *e)
{
    for (struct tide__op *op = e->live; op; op = op->bnext) {
        struct io_uring_sqe *s = tide__uring_sqe(u);
        op->bflags |= BF_CLOSED;
        if (!s)
            return; /* (errno) the op ends on its own */
        io_uring_prep_cancel64(s, ud_of(op), 0);
        io_uring_sqe_set_data64(s, UD_CANCEL);
    }
}

static void ur_close(struct tide__backend *b);

static int setup(struct uring *u, unsigned flags, char *why, size_t nwhy)
{
    /* A completion queue 32 times the submission queue's: the kernel
     * sizes its table of cancellable requests from it (256 buckets from
     * 8,192 entries, its most; 16 from the default 512), and every close
     * of a connection with a receive armed looks its request up there: at
     * 20,000 connections a small table made closing them quadratic. */
    struct io_uring_params p = {.flags = flags | IORING_SETUP_R_DISABLED |
                                         IORING_SETUP_CQSIZE,
                                .cq_entries = tide__uring_entries * 32};

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
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
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
    u->defer = u->ring.flags & IORING_SETUP_DEFER_TASKRUN;
    u->evfd = -1;
    u->wake_rd = -1;
    b->why[0] = 0;
    err = wake_open(b);
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
        for (uint32_t fd = 0; fd < u->nfds; fd++)
            cancel_each(u, &u->fds[fd]);
        tide__ms_cancel_all(b);
        if (u->wake_armed) {
            struct io_uring_sqe *s = tide__uring_sqe(u);
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
            unsigned over = 0;
            io_uring_for_each_cqe(&u->ring, head, cqe)
            {
                seen++;
                over += !(cqe->flags & IORING_CQE_F_MORE);
            }
            io_uring_cq_advance(&u->ring, seen);
            u->kernel -= over;
        }
    }
    tide__sys_uring_exit(&u->ring);
    tide__ms_free_all(b);
    if (b->wake_fd >= 0)
        tide__sys_close(b->wake_fd);
    if (u->wake_rd >= 0)
        tide__sys_close(u->wake_rd);
    b->wake_fd = -1;
    if (u->evfd >= 0)
        tide__sys_close(u->evfd);
    tide__free(u->fds);
    tide__free(u);
    b->own = NULL;
    b->fd = -1;
    b->done = b->done_tail = NULL;
    b->inflight = 0;
}

static int submit_close(struct tide__backend *b, struct tide__op *op)
{
    struct uring *u = ur(b);
    int dummy = 0;

    /* Its multishot's waiting ops end, what it holds goes (uring_ms.c). */
    tide__ms_fd_gone(b, op->fd, NULL, 0, &dummy);
    if ((uint32_t)op->fd < u->nfds)
        next_reads(b, &u->fds[op->fd], -EBADF, NULL, 0, &dummy);
    if (op->flags & TIDE__CLOSE_FRESH) {
        op->result = 0; /* nothing else is known of an fd here */
        return 1;
    }
    uint32_t *cnt = (uint32_t)op->fd < u->nfds ? &u->fds[op->fd].ops : NULL;
    if (!cnt || (*cnt & ~FD_CLOSING) == 0) {
        op->result = close_now(op);
        return 1;
    }
    /* Submitted at once: a detached fd is the caller's again as soon as
     * this returns, and nothing of ours may read it after. */
    cancel_each(u, &u->fds[op->fd]);
    if (tide__sys_uring_enter(&u->ring, 0, NULL) < 0)
        return -errno; /* not submitted: nothing will come */
    if ((op->flags & TIDE__CLOSE_DETACH) || (*cnt & FD_CLOSING)) {
        op->result = 0; /* its ops end with -EBADF as they come */
        return 1;
    }
    *cnt |= FD_CLOSING;
    op->bstate = B_KERNEL;
    u->fds[op->fd].closing = op;
    b->inflight++;
    return 0;
}

static int submit_op(struct tide__backend *b, struct tide__op *op)
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
    if (op->kind == TIDE__OP_RECV || op->kind == TIDE__OP_RECVMSG ||
        op->kind == TIDE__OP_POLL || op->kind == TIDE__OP_ACCEPT) {
        int r = tide__ms_submit(b, op);
        if (r != TIDE__MS_PASS) {
            b->inflight += r == 0;
            return r;
        }
    }
    /* A poll that holds now (or a bad fd) completes inline, as on the
     * readiness backends: tide_add_reader reports -EBADF at once. */
    ssize_t res;
    if (op->kind == TIDE__OP_POLL && tide__op_attempt(op, &res)) {
        op->result = res;
        return 1;
    }
    struct uring_fd *e = tide__uring_fd(u, op->fd);
    if (!e)
        return -ENOMEM;
    err = queue_behind(e, op) ? 0 : tide__uring_submit_plain(b, op);
    b->inflight += err == 0;
    return err;
}

/* An embedded loop (ur_fd) hands the kernel each request at once: the
 * program driving it sleeps on the fd after an iteration, and a request
 * queued during one (by a task, after the iteration's wait) would never
 * be submitted, so nothing could ever make the fd readable for it. */
static void flush(struct uring *u)
{
    if (u->embedded && io_uring_sq_ready(&u->ring))
        (void)tide__sys_uring_enter(&u->ring, 0, NULL);
}

static int ur_submit(struct tide__backend *b, struct tide__op *op)
{
    int r = submit_op(b, op);

    flush(ur(b));
    return r;
}

static int ur_take(struct tide__backend *b, struct tide__op *op)
{
    int r = tide__ms_take(b, op); /* (it may arm a multishot) */

    flush(ur(b));
    return r;
}

static int ur_cancel(struct tide__backend *b, struct tide__op *op)
{
    struct uring *u = ur(b);

    if (op->bstate == B_MSWAIT)
        return tide__ms_cancel(b, op);
    if (op->bstate == B_QUEUED) { /* never in the kernel: ends here */
        unqueue(&u->fds[op->fd], op);
        op->result = -ECANCELED;
        b->inflight--;
        return 1;
    }
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
    struct io_uring_sqe *s = tide__uring_sqe(u);
    if (s) { /* else the op ends on its own: its completion still comes */
        io_uring_prep_cancel64(s, ud_of(op), 0);
        io_uring_sqe_set_data64(s, UD_CANCEL);
    }
    flush(u);
    return 0;
}

static int64_t now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* A wait is over: the eventfd is readable again only if work is left.
 * Cleared first; then an enter runs the deferred task work, whose
 * completions signal it (as do those of the loop's own enters, so it may
 * be readable when a wait then finds nothing, which backend.h allows). */
static void evfd_rearm(struct tide__backend *b)
{
    struct uring *u = ur(b);
    uint64_t v;

    while (read(u->evfd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    (void)tide__sys_uring_enter(&u->ring, 0, NULL);
    if (b->done || io_uring_cq_ready(&u->ring))
        while (tide__sys_wake(u->evfd) < 0 && errno == EINTR)
            ;
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
        struct io_uring_sqe *s = tide__uring_sqe(u);
        if (s) {
            io_uring_prep_poll_add(s, u->wake_rd, POLLIN);
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
        if (n || woken || left == 0 || (timeout_ns > 0 && now_ns() >= end)) {
            if (u->evfd >= 0)
                evfd_rearm(b);
            flush(u);
            return n;
        }
        /* Only this backend's own completions came: wait on. */
    }
}

static void ur_wake(struct tide__backend *b)
{
    tide__ready_wake(b);
}

/* The embedding fd. Without DEFER_TASKRUN, the ring fd: readable while
 * completions are pending. With it, the kernel holds completions back as
 * task work until the loop enters the ring, and a poller of the ring fd
 * is not woken for them (a wake from another thread left poll() asleep
 * to its timeout), so the fd is an eventfd registered with the ring,
 * which the kernel signals for that task work too. It is made on the
 * first call: a loop nobody embeds pays nothing for it. */
static int ur_fd(struct tide__backend *b)
{
    struct uring *u = ur(b);

    u->embedded = true;
    flush(u);
    if (!u->defer)
        return b->fd;
    if (u->evfd < 0) {
        int fd = tide__sys_eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0)
            return -errno;
        int err = enable(u);
        if (err == 0)
            err = io_uring_register_eventfd(&u->ring, fd);
        if (err < 0) {
            tide__sys_close(fd);
            return err;
        }
        u->evfd = fd;
        evfd_rearm(b);
    }
    return u->evfd;
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
    .take = ur_take,
    .wait = ur_wait,
    .wake = ur_wake,
    .fd = ur_fd,
    .foreign = ur_foreign,
};
