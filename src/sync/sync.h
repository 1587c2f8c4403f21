/* The sync layer's internal header: what every primitive builds on (the
 * wait queue, core/waitq.h, and the allocation seam).
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_SYNC_SYNC_H
#define TIDE_SYNC_SYNC_H

#include "tide.h"
#include "tide/sync.h"

#include "base/alloc.h"
#include "core/waitq.h"

#include <errno.h>

/* The running loop if a task is running (a wait is possible), else NULL. */
static inline tide_loop *tide__sync_task_loop(void)
{
    tide_loop *loop = tide__running;

    return loop && loop->current ? loop : NULL;
}

#endif
