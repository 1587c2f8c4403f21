/* Lock: asyncio.Lock with a direct hand-off.
 *
 * Invariant: an unlocked lock has no waiters. release() with waiters
 * does not unlock: it grants the lock to the first waiter, which owns it
 * from its wake-up on, so nobody can barge in between (asyncio 3.13's
 * fairness, made strict). A waiter cancelled after being granted the
 * lock, before it ran, releases it again: to the next waiter, or to
 * nobody (HAZARDS B19, B21).
 * SPDX-License-Identifier: MIT
 */
#include "tide/sync.h"

#include "base/alloc.h"
#include "core/waitq.h"

#include <errno.h>

struct tide_lock {
    struct tide__waitq q;        /* acquirers; `inside`: granted, not run */
    bool locked;
};

tide_lock *tide_lock_new(void)
{
    tide_lock *lock = tide__malloc(sizeof *lock); /* sets errno */

    if (!lock)
        return NULL;
    tide__waitq_init(&lock->q);
    lock->locked = false;
    return lock;
}

void tide_lock_free(tide_lock *lock)
{
    if (!lock)
        return;
    tide__waitq_close(&lock->q, true);
    tide__free(lock);
}

/* Hand the lock to the first waiter, or unlock it. */
static void pass_on(tide_lock *lock)
{
    struct tide__qwaiter *w = tide__waitq_first(&lock->q);

    if (w)
        tide__waitq_wake(w, 0);
    else
        lock->locked = false;
}

static void pass_on_grant(void *lock)
{
    pass_on(lock);
}

int tide_lock_acquire(tide_lock *lock)
{
    if (!lock)
        return -EINVAL;
    if (!lock->locked) {
        lock->locked = true;
        return 0;
    }
    return tide__waitq_acquire(&lock->q, "lock", pass_on_grant, NULL, lock);
}

int tide_lock_release(tide_lock *lock)
{
    if (!lock || !lock->locked)
        return -EINVAL;
    pass_on(lock);
    return 0;
}

bool tide_lock_locked(const tide_lock *lock)
{
    return lock && lock->locked;
}
