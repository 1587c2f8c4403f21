/* Tasks: what the timeout and combinator layers need of a task beyond
 * its future (task.c defines them).
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_TASK_TASK_H
#define TIDE_TASK_TASK_H

#include "task/future.h"

/* What tasks carry beyond the block, made on demand (a name, a timeout
 * scope). Where a task was created is known in debug mode: its record
 * then comes from the tracker (tide__future_alloc), which keeps the
 * __FILE__/__LINE__ that the tide_create_task macros pass along. */
struct tide__task_info {
    char *name;          /* NULL: "Task-<id>" */
    tide_timeout *scope; /* innermost open timeout scope */
    /* Set by the timeout layer with the first scope: frees the scopes
     * still open when the body returns (a misuse, reported in debug
     * mode). */
    void (*drop_scopes)(tide_future *task);
};

/* The task's info record, made if needed; NULL (ENOMEM) if it cannot be. */
struct tide__task_info *tide__task_info_make(tide_future *task);
tide_future *tide__task_of_coro(struct tide__coro *co);

/* A cancel request reached the call the task is in, and the call did
 * its work anyway (an awaited future swallowed it; an I/O op completed):
 * the call returns its result and the request, if still counted, stays
 * pending for the task's next suspension (DESIGN: never lost). */
void tide__task_keep_request(struct tide__coro *co);

/* A timeout scope withdraws its own request (after tide_task_uncancel):
 * if it had not been delivered, or came back pending from an await whose
 * future swallowed it, it is dropped. Only when no other request was made
 * since the scope began (the caller checks the count). */
void tide__task_withdraw_pending(tide_future *task);

/* Describe a task for reports: its name and, if known, creation site. */
void tide__task_describe(tide_future *task, char *buf, size_t n);

#endif
