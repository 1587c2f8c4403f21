/* Lock: asyncio.Lock with a direct hand-off.
 *
 * Invariant: an unlocked lock has no waiters. release() with waiters
 * does not unlock: it grants the lock to the first waiter, which owns it
 * from its wake-up on, so nobody can barge in between (asyncio 3.13's
 * fairness, made strict). A waiter cancelled after being granted the
 * lock, before it ran, releases it again: to the next waiter, or to
 * nobody (HAZARDS B19, B21). The lock remembers which task took it, for
 * task dumps and the deadlock check: its waiters wait on that task.
 * SPDX-License-Identifier: MIT
 */
#include "tide/sync.h"

#include "base/alloc.h"
#include "core/waitq.h"

#include <errno.h>

struct tide_lock {
    struct tide__waitq q; /* acquirers; `inside`: granted, not run */
    bool locked;
    struct tide__coro *holder; /* who took it (NULL: not a task); may
                                * have ended since (dumps check) */
    char *name;                /* tide_lock_set_name, or NULL */
};

tide_lock *tide_lock_new(void)
{
    tide_lock *lock = tide__malloc(sizeof *lock); /* sets errno */

    if (!lock)
        return NULL;
    tide__waitq_init(&lock->q);
    lock->locked = false;
    lock->holder = NULL;
    lock->name = NULL;
    return lock;
}

void tide_lock_free(tide_lock *lock)
{
    if (!lock)
        return;
    tide__waitq_close(&lock->q, true);
    tide__free(lock->name);
    tide__free(lock);
}

int tide_lock_set_name(tide_lock *lock, const char *name)
{
    return lock ? tide__set_name(&lock->name, name) : -EINVAL;
}

/* Hand the lock to the first waiter, or unlock it. */
static void pass_on(tide_lock *lock)
{
    struct tide__qwaiter *w = tide__waitq_first(&lock->q);

    if (w) {
        lock->holder = w->co;
        tide__waitq_wake(w, 0);
    } else {
        lock->locked = false;
        lock->holder = NULL;
    }
}

static void pass_on_grant(void *lock)
{
    pass_on(lock);
}

static tide_lock *lock_of(const struct tide__wait *w)
{
    return tide__container_of(tide__waitq_of(w), tide_lock, q);
}

static void describe(tide_loop *loop, const struct tide__wait *w, char *buf,
                     size_t n)
{
    tide_lock *lock = lock_of(w);
    size_t len = tide__put_label(buf, n, 0, "lock", lock->name, lock);

    if (!lock->holder) {
        tide__appendf(buf, n, len, " held outside any task");
        return;
    }
    len = tide__appendf(buf, n, len, " held by ");
    tide__coro_name(loop, lock->holder, buf + len, n - len);
}

static void blockers(tide_loop *loop, const struct tide__wait *w,
                     void (*fn)(struct tide__coro *co, void *arg), void *arg)
{
    tide_lock *lock = lock_of(w);

    (void)loop;
    if (lock->holder)
        fn(lock->holder, arg);
}

static const struct tide__wait_kind lock_kind = {
    .what = "lock",
    .describe = describe,
    .blockers = blockers,
};

int tide_lock_acquire(tide_lock *lock)
{
    if (!lock)
        return -EINVAL;
    if (!lock->locked) {
        tide_loop *loop = tide__task_loop();
        lock->locked = true;
        lock->holder = loop ? loop->current : NULL;
        return 0;
    }
    return tide__waitq_acquire(&lock->q, &lock_kind, pass_on_grant, NULL,
                               lock);
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
