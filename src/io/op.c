/* One backend op for the calling task: submit, suspend, cancel, and the
 * rule for what a cancelled op returns (see tide/io.h); and the fd waits
 * (tide_wait_readable / tide_wait_writable) built on POLL ops.
 *
 * The op lives in a loop-owned slot (core/opslot.c), whose struct
 * tide__wait is what the suspended task names, so an op costs no
 * allocation and nothing of it is on the task's stack. A cancel request
 * reaching the suspended task cancels the op in the backend; the task
 * wakes only from the op's completion, so it returns only once the
 * backend has let go of the op and its buffer (HAZARDS B41).
 *
 * Compact tasks: their frames are copied away while they are suspended,
 * and a backend retrying a call could write into a buffer that is not
 * there. So a compact task (and a call outside any task) makes the system
 * call itself, and waits only for readiness (a POLL op, which carries no
 * buffer) in between.
 *
 * Fairness (HAZARDS B44): a task whose calls keep completing at once (a
 * socket that is always readable, a peer that always takes more) would
 * never suspend, and the loop would run no timer, no other task and no
 * poll meanwhile. So a task's IO_BUDGET-th call in one turn (one
 * iteration of the loop) first yields, as tide_sleep(0) does; a call
 * cancelled in that yield returns -ECANCELED having done nothing.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include "poll/ready.h"
#include "task/future.h"
#include "task/task.h"

#include <errno.h>
#include <math.h>
#include <poll.h>

static void wake_owner(tide_loop *loop, struct tide__opslot *s)
{
    tide__wake(loop, s->owner, 0);
}

static void cancel_op(tide_loop *loop, struct tide__wait *w)
{
    tide__op_cancel(loop, tide__container_of(w, struct tide__opslot, wait));
}

/* The op did something that must not be lost (bytes moved, an fd made,
 * a connection made). A readiness poll did nothing. */
static bool took_effect(const struct tide__op *op, ssize_t r)
{
    return r >= 0 && op->kind != TIDE__OP_POLL;
}

/* "sock recv on fd 5": the call and its fd (task dumps). */
static void describe_op(tide_loop *loop, const struct tide__wait *w, char *buf,
                        size_t n)
{
    const struct tide__opslot *s =
        tide__container_of(w, struct tide__opslot, wait);

    (void)loop;
    tide__appendf(buf, n, 0, "%s on fd %d", s->what, s->op.fd);
}

static const struct tide__wait_kind op_kind = {
    .what = "I/O",
    .describe = describe_op,
};

/* Suspend until in-flight s completes; then free it and return its
 * result by the cancellation rule. */
static ssize_t await_slot(tide_loop *loop, struct tide__opslot *s,
                          const char *what)
{
    struct tide__coro *co = loop->current;

    s->complete = wake_owner;
    s->owner = co;
    s->wait = (struct tide__wait){.cancel = cancel_op, .kind = &op_kind};
    s->what = what;
    int err = tide__suspend(loop, &s->wait);
    if (s->state != TIDE__OPSLOT_IDLE) {
        /* Only the op's completion wakes this task; were anything else
         * to, the slot must not be reused before the backend lets go. */
        tide__op_drop(loop, s);
        return err < 0 ? err : -ECANCELED;
    }
    ssize_t r = s->op.result;
    bool asked = s->cancelled || err == -ECANCELED;
    bool effect = took_effect(&s->op, r);
    tide__op_free(loop, s);
    if (!asked)
        return err < 0 ? err : r;
    if (effect) {
        /* The op won the race: its result is returned, and the request
         * is delivered at the next suspension (if still counted). */
        tide__task_keep_request(co);
        return r;
    }
    return -ECANCELED;
}

/* Run req in a slot: inline, or suspended until it completes. */
static ssize_t run_in_slot(tide_loop *loop, const struct tide__op *req,
                           const char *what)
{
    struct tide__opslot *s = tide__op_new(loop);

    if (!s)
        return -ENOMEM;
    uint64_t token = s->op.token;
    s->op = *req;
    s->op.token = token;
    int r = tide__op_submit(loop, s);
    if (r != 0) {
        ssize_t res = r == 1 ? s->op.result : r;
        tide__op_free(loop, s);
        return res;
    }
    return await_slot(loop, s, what);
}

static bool writes(const struct tide__op *op)
{
    return op->kind == TIDE__OP_SEND || op->kind == TIDE__OP_SENDMSG ||
           op->kind == TIDE__OP_CONNECT || op->kind == TIDE__OP_WRITE;
}

void tide__io_fd_op(tide_loop *loop, int fd, int flags)
{
    struct tide__opslot *s = tide__op_new(loop);

    if (!s)
        return; /* ENOMEM: only a registration is left behind */
    s->op.kind = TIDE__OP_CLOSE;
    s->op.fd = fd;
    s->op.flags = flags;
    if (tide__op_submit(loop, s) == 0)
        tide__op_drop(loop, s); /* a completion backend finishes later */
    else
        tide__op_free(loop, s);
}

/* What loop's backend holds for req's fd (backend.h's take): 1 with *r
 * req's result, 0 (make the call), or -EAGAIN (wait for readiness). */
static int backend_take(tide_loop *loop, struct tide__op *req, ssize_t *r)
{
    const struct tide__backend_ops *ops = loop->backend.ops;

    if (!ops->take || loop->closed)
        return 0;
    int t = ops->take(&loop->backend, req);
    if (t == 1)
        *r = req->result;
    return t;
}

/* Make req's call here, waiting for readiness in between. */
static ssize_t run_here(tide_loop *loop, struct tide__op *req,
                        const char *what)
{
    /* A call of its own gives a number a new file: the backend must not
     * take it for the old one (see TIDE__CLOSE_FRESH). */
    if (loop && req->kind == TIDE__OP_CONNECT)
        tide__io_fd_op(loop, req->fd, TIDE__CLOSE_FRESH);
    for (;;) {
        ssize_t r;
        int held = loop ? backend_take(loop, req, &r) : 0;
        if (held == 1)
            return r;
        if (held == 0 && tide__op_attempt(req, &r)) {
            if (loop && req->kind == TIDE__OP_ACCEPT && r >= 0)
                tide__io_fd_op(loop, (int)r, TIDE__CLOSE_FRESH);
            return r;
        }
        if (!loop || !loop->current)
            return -EPERM;
        struct tide__op poll = {.kind = TIDE__OP_POLL,
                                .fd = req->fd,
                                .flags = writes(req) ? POLLOUT : POLLIN,
                                .offset = -1};
        r = run_in_slot(loop, &poll, what);
        if (r < 0)
            return r;
    }
}

#define IO_BUDGET 64

/* Count one call of the running task; yield first if it has made
 * IO_BUDGET in this turn. 0, or tide_sleep's error (-ECANCELED). */
static int spend_budget(tide_loop *loop)
{
    if (loop->io_turn_co != loop->current ||
        loop->io_turn_iteration != loop->iterations) {
        loop->io_turn_co = loop->current;
        loop->io_turn_iteration = loop->iterations;
        loop->io_turn_calls = 0;
    }
    if (__builtin_expect(++loop->io_turn_calls < IO_BUDGET, 1))
        return 0;
    loop->io_turn_calls = 0;
    return tide_sleep(0);
}

ssize_t tide__io_run(struct tide__op *req, const char *what)
{
    tide_loop *loop = tide__running;

    if (!loop || !loop->current)
        return run_here(loop, req, what);
    int err = spend_budget(loop);
    if (err < 0)
        return err;
    if (tide__compact_running(loop))
        return run_here(loop, req, what);
    return run_in_slot(loop, req, what);
}

static int wait_ready(int fd, short events, double timeout)
{
    struct tide__op req = {.kind = TIDE__OP_POLL,
                           .fd = fd,
                           .flags = events,
                           .offset = -1};
    ssize_t r;

    if (isnan(timeout))
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    if (tide__op_attempt(&req, &r))
        return r < 0 ? (int)r : 0;
    tide_loop *loop = tide__running;
    if (!loop || !loop->current)
        return -EPERM;
    if (timeout <= 0)
        return -ETIMEDOUT;
    const char *what = events == POLLIN ? "fd readable" : "fd writable";
    if (isinf(timeout))
        return (r = run_in_slot(loop, &req, what)) < 0 ? (int)r : 0;
    tide_timeout *scope = tide_timeout_begin(timeout);
    if (!scope)
        return -errno;
    r = run_in_slot(loop, &req, what);
    return tide_timeout_end(scope, r < 0 ? (int)r : 0);
}

int tide_wait_readable(int fd, double timeout)
{
    return wait_ready(fd, POLLIN, timeout);
}

int tide_wait_writable(int fd, double timeout)
{
    return wait_ready(fd, POLLOUT, timeout);
}
