/* Futures: the record every future kind shares, and the hooks the task
 * and combinator layers build on.
 *
 * A future's callbacks are a circular singly linked list of tide__node
 * (cb_tail points at the last; its next is the first), in the order added:
 * WAITER nodes wake a coroutine, INLINE nodes run internal bookkeeping at
 * completion (gather, as_completed: never user code), DONE_CB nodes are
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
    TIDE__NODE_INLINE,   /* internal bookkeeping run at completion */
    TIDE__NODE_DONE_CB,  /* a user's done callback: becomes a CALL */
};

enum tide__future_kind {
    TIDE__FUTURE_PLAIN,
    TIDE__FUTURE_TASK,
    TIDE__FUTURE_GATHER,
};

struct tide_future {
    uint32_t refs;
    uint8_t kind;               /* enum tide__future_kind */
    bool done;
    bool retrieved;             /* its outcome was read (debug reports) */
    int err;                    /* when done: 0 or a negative errno; a
                                 * running task's tide_fail value */
    uint32_t aux;               /* kind-specific: a task's cancel count */
    void *result;               /* when done without error */
    tide_loop *loop;            /* referenced; resources gone once closed */
    struct tide__node *cb_tail; /* callbacks, see above */
};

/* A waiter on a future's list: wakes `co` when the future completes. */
struct tide__waiter {
    struct tide__node node;     /* kind TIDE__NODE_WAITER */
    struct tide__coro *co;
};

/* Internal bookkeeping run at completion, inside the completing call. */
struct tide__inline {
    struct tide__node node;     /* kind TIDE__NODE_INLINE; aux is free */
    void (*fn)(struct tide__inline *in, tide_future *f);
};

/* Kind-specific behaviour: cancel() (tasks, gathers) and free(). */
struct tide__future_ops {
    bool (*cancel)(tide_future *f);
    void (*free)(tide_future *f);
};

void tide__future_init(tide_future *f, tide_loop *loop, uint8_t kind);
/* Complete f (err 0: with result) and schedule its callbacks. f must be
 * pending. */
void tide__future_complete(tide_future *f, int err, void *result);
void tide__future_add_node(tide_future *f, struct tide__node *n);
void tide__future_remove_node(tide_future *f, struct tide__node *n);
/* Cancel a pending plain future (the base behaviour). */
bool tide__future_cancel_plain(tide_future *f);

/* What tasks carry beyond the block: made on demand (a name) or at
 * creation when the creation site is known (TIDE_DEBUG builds of the
 * caller pass __FILE__/__LINE__ through tide__create_task_at). */
struct tide__task_info {
    char *name;                 /* NULL: "Task-<id>" */
    const char *file;           /* creation site, or NULL */
    int line;
    tide_timeout *scope;        /* innermost open timeout scope */
    /* Set by the timeout layer with the first scope: frees the scopes
     * still open when the body returns (a misuse, reported in debug
     * mode). */
    void (*drop_scopes)(tide_future *task);
};

const struct tide__task_info *tide__task_info(tide_future *task);
/* The task's info record, made if needed; NULL (ENOMEM) if it cannot be. */
struct tide__task_info *tide__task_info_make(tide_future *task);
tide_future *tide__task_of_coro(struct tide__coro *co);

/* A timeout scope withdraws its own request (after tide_task_uncancel):
 * if it had not been delivered, or came back pending from an await whose
 * future swallowed it, it is dropped. Only when no other request was made
 * since the scope began (the caller checks the count). */
void tide__task_withdraw_pending(tide_future *task);

/* Describe a task for reports: its name and, if known, creation site. */
void tide__task_describe(tide_future *task, char *buf, size_t n);

/* Per-kind hooks, defined by task.c and gather.c. */
extern const struct tide__future_ops tide__task_ops;
extern const struct tide__future_ops tide__gather_ops;

#endif
