/* Futures: the record every kind of future shares, its kinds' ops, and
 * the hooks the task and combinator layers build on (tasks: task.h).
 *
 * A future's callbacks are a circular singly linked list of tide__node
 * (cb_tail points at the last; its next is the first), in the order added:
 * WAITER nodes wake a coroutine, INLINE nodes run internal bookkeeping at
 * completion (the combinators': never user code), DONE_CB nodes are
 * user callbacks, moved to the ready queue. Completion detaches the whole
 * list first, so a callback can never see or change the list it came
 * from.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_TASK_FUTURE_H
#define TIDE_TASK_FUTURE_H

#include "core/loop.h"

/* What a tide__node on a future's callback list stands for. */
enum tide__future_node_kind {
    TIDE__NODE_WAITER = TIDE__NODE_CORE_KINDS, /* wake a coroutine
                                                * (struct tide__waiter) */
    TIDE__NODE_INLINE,  /* internal bookkeeping run at completion */
    TIDE__NODE_DONE_CB, /* a user's done callback: becomes a CALL */
};

/* What a kind of future does beyond the shared record: every future
 * points at its kind's ops. Plain futures' are future.c's
 * (tide__future_plain_ops); every other kind defines its own in its own
 * file (task.c, gather.c), so future.c names no kind but its own. */
struct tide__future_ops {
    /* Request cancellation of pending f; true if the request was made. */
    bool (*cancel)(tide_future *f);
    /* The last reference is gone: free f and what it holds. */
    void (*free)(tide_future *f);
    /* Name f in a report ("future 0x...", "task 'x' (created at f:l)"). */
    void (*describe)(tide_future *f, char *buf, size_t n);
    /* Call fn on each coroutine that would complete pending f: a task's
     * own, a gather's pending children's; NULL: none known (a plain
     * future, which anyone may set). For task dumps only. */
    void (*blockers)(tide_future *f,
                     void (*fn)(struct tide__coro *co, void *arg), void *arg);
};

/* Kept at 40 bytes, so that a task still fits in a block (base/block.h):
 * a future's callbacks and its result are never there at once. */
struct tide_future {
    uint32_t refs;
    bool done;
    bool retrieved; /* its outcome was read (debug reports) */
    bool tracked;   /* made in debug mode: its memory is from
                     * tide__track_alloc */
    int err;        /* when done: 0 or a negative errno; a
                     * running task's tide_fail value */
    uint32_t aux;   /* the kind's: a task's cancel count */
    const struct tide__future_ops *ops; /* its kind */
    union {
        struct tide__node *cb_tail; /* while pending: callbacks, above */
        void *result;               /* once done: its value (NULL if failed) */
    };
    tide_loop *loop; /* referenced; resources gone once closed */
};

/* A waiter on a future's list: wakes `co` when the future completes. */
struct tide__waiter {
    struct tide__node node; /* kind TIDE__NODE_WAITER */
    struct tide__coro *co;
};

/* Internal bookkeeping run at completion, inside the completing call. */
struct tide__inline {
    struct tide__node node; /* kind TIDE__NODE_INLINE; aux is free */
    void (*fn)(struct tide__inline *in, tide_future *f);
};

/* The record of `type` whose array of links, member `links`, holds `in`
 * at index in->node.aux (a combinator's one link per future). */
#define tide__link_owner(in, type, links) \
    tide__container_of((in) - (in)->node.aux, type, links[0])

/* A plain future's ops: cancel completes it with -ECANCELED, free frees
 * the record, describe says "future <address>". */
extern const struct tide__future_ops tide__future_plain_ops;
/* Cancel a pending plain future (the base behaviour). */
bool tide__future_cancel_plain(tide_future *f);
/* Describe f as a plain future does: "future <address>", or, made in
 * debug mode, "future (created at file:line)" ("gather ..." for a
 * gather: what it was made as). */
void tide__future_describe_plain(tide_future *f, char *buf, size_t n);

/* f's outcome has been read: its error (if any) is nobody's mystery now
 * (debug mode's reports of unread failures and hang causes). */
static inline void tide__future_mark_read(tide_future *f)
{
    f->retrieved = true;
    if (__builtin_expect(f->err != 0 && f->loop->debug != NULL, 0))
        tide__debug_failure_read(f->loop, f);
}

/* f->ops->describe for the tracker's reports (f is a tide_future). */
void tide__future_describe(void *f, char *buf, size_t n);

/* tracked: f's memory came from tide__future_alloc with tracked true. */
void tide__future_init(tide_future *f, tide_loop *loop,
                       const struct tide__future_ops *ops, bool tracked);

/* Memory for the record of a future, `size` bytes with its struct
 * tide_future first. Tracked (pass loop->debug, and the same to init):
 * from tide__track_alloc, which records `what` it is and where it was
 * made, so that debug mode can report it if it is never released, or
 * released twice. Else from untracked(size). NULL (ENOMEM). Inline:
 * tasks are made on a hot path, and untracked is then a direct call. */
static inline void *tide__future_alloc(tide_loop *loop, bool tracked,
                                       size_t size, const char *what,
                                       const char *file, int line,
                                       void *(*untracked)(size_t size))
{
    if (__builtin_expect(tracked, 0))
        return tide__track_alloc(loop, size, what, file, line,
                                 tide__future_describe);
    return untracked(size);
}

/* Give back the memory of f's record the way it was had. */
static inline void tide__future_free_record(tide_future *f,
                                            void (*untracked_free)(void *p))
{
    if (__builtin_expect(f->tracked, 0))
        tide__track_free(f->loop, f);
    else
        untracked_free(f);
}

/* Complete f (err 0: with result) and schedule its callbacks. f must be
 * pending. */
void tide__future_complete(tide_future *f, int err, void *result);
/* Add n to pending f's callbacks; take it off again (harmless if it is
 * not there, or f is done: the list is gone). */
void tide__future_add_node(tide_future *f, struct tide__node *n);
void tide__future_remove_node(tide_future *f, struct tide__node *n);

#endif
