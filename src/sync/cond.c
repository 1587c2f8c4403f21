/* Condition: asyncio.Condition on a tide_lock (its own or a borrowed one).
 *
 * wait() releases the lock, waits in `q`, then re-acquires the lock,
 * retrying when cancelled meanwhile: the lock is held on return whatever
 * the outcome (HAZARDS B20b). The waiter stays inside `q` from its return
 * from the wait until it leaves wait(), so freeing the condition under it
 * is detected. A waiter that was notified but returns -ECANCELED (the
 * cancellation came in the same step as the notification, or while it
 * re-acquired the lock) passes one notification on, as CPython does since
 * #112202: a notify is never lost (B20a). The extra wake-up this may
 * cause is allowed by the condition-variable protocol.
 * SPDX-License-Identifier: MIT
 */
#include "tide/sync.h"

#include "base/alloc.h"
#include "core/waitq.h"

#include <errno.h>
#include <limits.h>

struct tide_condition {
    tide_lock *lock;
    bool own_lock;        /* made by tide_condition_new: free it */
    struct tide__waitq q; /* waiting for a notify; `inside`: in wait() */
    char *name;           /* tide_condition_set_name, or NULL */
};

tide_condition *tide_condition_new(tide_lock *lock)
{
    tide_condition *c = tide__malloc(sizeof *c); /* sets errno */

    if (!c)
        return NULL;
    c->own_lock = !lock;
    if (!lock && !(lock = tide_lock_new())) {
        tide__free(c);
        return NULL; /* errno from tide_lock_new */
    }
    c->lock = lock;
    tide__waitq_init(&c->q);
    c->name = NULL;
    return c;
}

void tide_condition_free(tide_condition *c)
{
    if (!c)
        return;
    tide__waitq_close(&c->q, true);
    if (c->own_lock)
        tide_lock_free(c->lock);
    tide__free(c->name);
    tide__free(c);
}

int tide_condition_set_name(tide_condition *c, const char *name)
{
    return c ? tide__set_name(&c->name, name) : -EINVAL;
}

int tide_condition_acquire(tide_condition *c)
{
    return c ? tide_lock_acquire(c->lock) : -EINVAL;
}

int tide_condition_release(tide_condition *c)
{
    return c ? tide_lock_release(c->lock) : -EINVAL;
}

bool tide_condition_locked(const tide_condition *c)
{
    return c && tide_lock_locked(c->lock);
}

static size_t notify(tide_condition *c, size_t n)
{
    size_t woken = 0;
    struct tide__qwaiter *w;

    while (woken < n && (w = tide__waitq_first(&c->q))) {
        tide__waitq_wake(w, 0);
        woken++;
    }
    return woken;
}

/* "condition 'c' (2 waiting for a notify)": anyone holding its lock may
 * notify. */
static void describe(tide_loop *loop, const struct tide__wait *w, char *buf,
                     size_t n)
{
    tide_condition *c =
        tide__container_of(tide__waitq_of(w), tide_condition, q);
    size_t len = tide__put_label(buf, n, 0, "condition", c->name, c);

    (void)loop;
    tide__appendf(buf, n, len, " (%zu waiting for a notify)", c->q.count);
}

static const struct tide__wait_kind cond_kind = {
    .what = "condition",
    .describe = describe,
};

static int wait_in(tide_loop *loop, tide_condition *c, struct tide__qwaiter *w)
{
    tide_lock *lock = c->lock; /* c may be freed while we wait */
    tide_lock_release(lock);
    int rc = tide__waitq_wait(loop, &c->q, w, NULL, &cond_kind);
    bool notified = w->woken && w->result == 0;
    bool cancelled = rc == -ECANCELED;
    if (tide__waitq_gone(w))
        return TIDE__GONE; /* freed: its own lock may be gone too */
    for (;;) {
        int err = tide_lock_acquire(lock);
        if (err == 0)
            break;
        if (err != -ECANCELED)
            return err;   /* -EBADF: the lock was freed */
        cancelled = true; /* delivered; keep trying for the lock */
    }
    if (tide__waitq_gone(w)) {
        tide_lock_release(lock); /* freed meanwhile; the lock is borrowed */
        return TIDE__GONE;
    }
    tide__waitq_leave(w);
    if (!cancelled)
        return rc;
    if (notified)
        notify(c, 1); /* pass the notification on */
    return -ECANCELED;
}

int tide_condition_wait(tide_condition *c)
{
    if (!c || !tide_lock_locked(c->lock))
        return -EINVAL;
    tide_loop *loop;
    int rc;
    struct tide__qwaiter local, *w = tide__waitq_waiter(&loop, &local, &rc);
    if (!w)
        return rc;
    rc = wait_in(loop, c, w);
    tide__wait_frame_end(w, &local);
    return rc;
}

int tide_condition_wait_for(tide_condition *c, bool (*pred)(void *arg),
                            void *arg)
{
    if (!c || !pred || !tide_lock_locked(c->lock))
        return -EINVAL;
    while (!pred(arg)) {
        int rc = tide_condition_wait(c);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int tide_condition_notify(tide_condition *c, size_t n)
{
    if (!c || !tide_lock_locked(c->lock))
        return -EINVAL;
    size_t woken = notify(c, n);
    return woken > INT_MAX ? INT_MAX : (int)woken;
}

int tide_condition_notify_all(tide_condition *c)
{
    return tide_condition_notify(c, SIZE_MAX);
}
