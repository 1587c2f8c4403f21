/* The half that epoll.c and poll.c share: ops run on top of readiness.
 *
 * An op's system call is tried at submit (tide__op_attempt); if it would
 * block, the op is queued on its fd (struct tide__fdent, in a table
 * indexed by fd number) on the read side or the write side, and the
 * backend is asked to watch the fd. When the backend sees the fd ready it
 * calls tide__ready_fire, which retries the queued ops in order until one
 * would block again. Completions go straight into wait()'s out[] while it
 * has room, else onto the done list, drained first by the next wait().
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_POLL_READY_H
#define TIDE_POLL_READY_H

#include "poll/backend.h"

#include <stdbool.h>

/* op->bstate */
enum {
    TIDE__B_IDLE,   /* not held by the backend */
    TIDE__B_READQ,  /* queued on its fd, read side */
    TIDE__B_WRITEQ, /* queued on its fd, write side */
    TIDE__B_DONE,   /* on the done list, result in op->result */
};

/* op->bflags */
#define TIDE__BF_CONNECTING 1u /* connect() returned EINPROGRESS */

/* How a readiness backend watches fds. */
struct tide__watch_ops {
    /* e's queues changed (an op was queued, or queues drained): make the
     * backend's interest match. 0 or -errno (EPERM: unpollable). */
    int (*watch)(struct tide__backend *b, int fd, struct tide__fdent *e);
    /* Stop watching fd. still_open: the fd number still names the file
     * that was watched (a close through tide); false when it was closed
     * behind tide's back and now names a new file. */
    void (*unwatch)(struct tide__backend *b, int fd, struct tide__fdent *e,
                    bool still_open);
};

/* Make op's system call once (EINTR retried; MSG_NOSIGNAL on sends).
 * True with *res the result (bytes, fd, revents, or -errno); false if it
 * would block (EAGAIN, or a connect in progress). */
bool tide__op_attempt(struct tide__op *op, ssize_t *res);

int tide__ready_submit(struct tide__backend *b, struct tide__op *op,
                       const struct tide__watch_ops *w);
int tide__ready_cancel(struct tide__backend *b, struct tide__op *op,
                       const struct tide__watch_ops *w);

/* fd was reported with `revents` (poll(2) bits; epoll's are the same):
 * retry its queued ops. Completions go to out[*n..cap), then the done
 * list. */
void tide__ready_fire(struct tide__backend *b, int fd, uint32_t revents,
                      struct tide__completion *out, int cap, int *n,
                      const struct tide__watch_ops *w);

/* Report op with res: into out[*n] while *n < cap, else onto the done
 * list (io_uring's backend shares the done list too). */
void tide__ready_emit(struct tide__backend *b, struct tide__op *op,
                      ssize_t res, struct tide__completion *out, int cap,
                      int *n);

/* Take op (on the done list) off it. */
void tide__ready_unlink_done(struct tide__backend *b, struct tide__op *op);

/* Move done-list completions to out[0..cap); returns how many. */
int tide__ready_take_done(struct tide__backend *b,
                          struct tide__completion *out, int cap);

/* The wake-up eventfd, shared by both backends. */
int tide__ready_wake_open(struct tide__backend *b);
void tide__ready_wake(struct tide__backend *b);
void tide__ready_wake_clear(struct tide__backend *b);

/* Free the fd table and the wake fd (ops in flight are forgotten). */
void tide__ready_free(struct tide__backend *b);

/* The fd's record, or NULL if fd is outside the table. */
static inline struct tide__fdent *tide__ready_ent(struct tide__backend *b,
                                                  int fd)
{
    return fd >= 0 && (uint32_t)fd < b->nfds ? &b->fds[fd] : NULL;
}

#endif
