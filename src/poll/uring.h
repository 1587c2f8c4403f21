/* What the io_uring backend's two files share: its state (struct uring),
 * the per-fd table, and the calls between uring.c (the ring: submission,
 * completion, cancel, close, wait) and uring_ms.c (multishot receives and
 * accepts, and the data they bring in ahead of the reads that take it).
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_POLL_URING_H
#define TIDE_POLL_URING_H

#include "poll/ready.h"

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>

/* user_data: an op's pointer (| UD_POLLING: its readiness poll), a
 * multishot record's pointer | UD_MS, or one of the small constants. */
#define UD_WAKE 1u   /* the poll on wake_fd */
#define UD_CANCEL 2u /* a cancel request: its own result is not needed */
#define UD_SPECIAL 4096u
#define UD_POLLING 1u
#define UD_MS 2u

/* op->bstate beyond ready.h's (TIDE__B_DONE: on the done list). */
#define B_KERNEL 7 /* in the kernel */
#define B_MSWAIT 8 /* waiting on its fd's multishot record (uring_ms.c) */
#define B_QUEUED 9 /* a receive waiting behind its fd's one in the kernel */

#define FD_CLOSING 0x80000000u /* uring_fd.ops: a CLOSE waits for it */

struct tide__ms;
struct tide__ubufs;

struct uring_fd {
    uint32_t ops;             /* requests in the kernel on it | FD_CLOSING */
    uint32_t reads;           /* of them, receives into their own buffers */
    struct tide__ms *ms;      /* its multishot record, or NULL */
    struct tide__op *live;    /* ops in the kernel on it (bnext/bprev) */
    struct tide__op *closing; /* a CLOSE waiting for ops to reach 0 */
    struct tide__op *rq, *rq_tail; /* B_QUEUED receives, in call order */
};

struct uring {
    struct io_uring ring;
    bool enabled;         /* io_uring_enable_rings done */
    bool wake_armed;      /* the poll on wake_fd is in the kernel */
    bool defer;           /* set up with DEFER_TASKRUN */
    int evfd;             /* the embedding eventfd (DEFER_TASKRUN), or -1 */
    bool embedded;        /* fd() was asked for: submit at once (ur_fd) */
    int wake_rd;          /* the wake-up pipe's read end (b->wake_fd: its
                           * write end) */
    size_t kernel;        /* requests in the kernel, whatever they are */
    struct uring_fd *fds; /* indexed by fd number */
    uint32_t nfds;
    /* uring_ms.c */
    struct tide__ubufs *bufs; /* the provided buffer ring, once made */
    bool no_ms;               /* multishot receives unavailable here */
    bool no_limit;            /* nor their total (optlen) */
    bool no_msa;              /* multishot accepts unavailable here */
    struct tide__ms *ms_all;  /* every record, through all_next */
    struct tide__ms *ms_free; /* records for reuse */
    pthread_t issuer;         /* who enabled it: SINGLE_ISSUER binds it */
};

static inline struct uring *tide__ur(struct tide__backend *b)
{
    return b->own;
}

/* uring.c, for uring_ms.c: an SQE (submitting what is queued if the
 * queue is full; NULL and errno if the kernel takes nothing), counted in
 * u->kernel; fd's entry (growing the table; NULL: ENOMEM); and an op
 * submitted to the kernel as it is (0 or -errno). */
struct io_uring_sqe *tide__uring_sqe(struct uring *u);
struct uring_fd *tide__uring_fd(struct uring *u, int fd);
int tide__uring_submit_plain(struct tide__backend *b, struct tide__op *op);

/* uring_ms.c. submit: op (a RECV or POLL or ACCEPT) handled through fd's
 * multishot record: 1 completed inline (op->result), 0 waiting (its
 * completion comes out of a later wait), -errno refused, or
 * TIDE__MS_PASS: not for multishot, submit it as it is. */
#define TIDE__MS_PASS 2
int tide__ms_submit(struct tide__backend *b, struct tide__op *op);
/* backend verb take (backend.h). */
int tide__ms_take(struct tide__backend *b, struct tide__op *op);
/* op is B_MSWAIT: complete it with -ECANCELED, inline (1). */
int tide__ms_cancel(struct tide__backend *b, struct tide__op *op);
/* The record a multishot's user_data names, and a CQE for it. */
struct tide__ms *tide__ms_of_ud(uint64_t ud);
int tide__ms_fd(const struct tide__ms *m);
void tide__ms_cqe(struct tide__backend *b, struct tide__ms *m, int res,
                  unsigned flags, struct tide__completion *out, int cap,
                  int *n);
/* fd is closed, detached or renamed (any CLOSE op): its waiting ops end
 * with -EBADF, what was brought in ahead is dropped, and its multishot is
 * cancelled (the SQE is queued, not submitted). */
void tide__ms_fd_gone(struct tide__backend *b, int fd,
                      struct tide__completion *out, int cap, int *n);
/* fd was just accepted (by the kernel, for an ACCEPT): its number may
 * have named a file closed behind tide's back (close(2)), whose record
 * must not serve the new one (tide/io.h: accepted numbers are renewed).
 * tide__ms_fd_gone, its ops' completions on the done list. */
void tide__ms_renew(struct tide__backend *b, int fd);
/* Backend close: cancel every armed multishot (SQEs), then, once the
 * kernel holds nothing (after), free the records and the buffer ring. */
void tide__ms_cancel_all(struct tide__backend *b);
/* Buffers in the ring for the kernel to fill (all of them when no one
 * holds any: tests check that every one comes back). */
unsigned tide__ms_free_buffers(struct tide__backend *b);
void tide__ms_free_all(struct tide__backend *b);

#endif
