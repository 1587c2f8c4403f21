/* Semaphore and BoundedSemaphore: asyncio's, with a direct hand-off.
 *
 * release() with waiters grants the permit to the first waiter without
 * raising the value (as asyncio 3.13's _wake_up_next lowers it at the
 * wake-up), so the bound check of a bounded semaphore (value >= bound) is
 * asyncio's. FIFO as in 3.13: while a woken waiter has not run yet
 * (granted > 0), a newcomer waits even if a permit is free (a task that
 * releases and re-acquires included); each waiter leaving acquire hands
 * free permits on to those queued. A waiter cancelled after the grant,
 * before it ran, releases the permit again (HAZARDS B19, B21).
 * SPDX-License-Identifier: MIT
 */
#include "tide/sync.h"

#include "base/alloc.h"
#include "core/waitq.h"

#include <errno.h>
#include <limits.h>

struct tide_semaphore {
    struct tide__waitq q; /* acquirers; `inside`: granted, not run */
    unsigned value;       /* permits available now */
    unsigned bound;       /* UINT_MAX unless bounded */
    unsigned granted;     /* woken waiters that have not run yet */
    char *name;           /* tide_semaphore_set_name, or NULL */
};

static tide_semaphore *sem_new(unsigned value, unsigned bound)
{
    tide_semaphore *s = tide__malloc(sizeof *s); /* sets errno */

    if (!s)
        return NULL;
    tide__waitq_init(&s->q);
    s->value = value;
    s->bound = bound;
    s->granted = 0;
    s->name = NULL;
    return s;
}

tide_semaphore *tide_semaphore_new(unsigned value)
{
    return sem_new(value, UINT_MAX);
}

tide_semaphore *tide_bounded_semaphore_new(unsigned value)
{
    return sem_new(value, value);
}

void tide_semaphore_free(tide_semaphore *s)
{
    if (!s)
        return;
    tide__waitq_close(&s->q, true);
    tide__free(s->name);
    tide__free(s);
}

int tide_semaphore_set_name(tide_semaphore *s, const char *name)
{
    return s ? tide__set_name(&s->name, name) : -EINVAL;
}

/* Give one permit to the first waiter, or to the value. */
static void pass_on(tide_semaphore *s)
{
    struct tide__qwaiter *w = tide__waitq_first(&s->q);

    if (w) {
        s->granted++;
        tide__waitq_wake(w, 0);
    } else {
        s->value++;
    }
}

/* Granted, then cancelled before it ran: the permit goes on. */
static void pass_on_grant(void *p)
{
    tide_semaphore *s = p;

    s->granted--;
    pass_on(s);
}

/* A waiter is out of acquire (granted, or cancelled): permits freed
 * while woken waiters were still to run go to those queued behind them
 * meanwhile (asyncio 3.13's `finally` in acquire). */
static void left(void *p, int rc)
{
    tide_semaphore *s = p;

    if (rc == 0)
        s->granted--;
    while (s->value > 0 && tide__waitq_first(&s->q)) {
        s->value--;
        pass_on(s);
    }
}

/* "semaphore 's' (value 0, 2 waiting)": anyone may release it. */
static void describe(tide_loop *loop, const struct tide__wait *w, char *buf,
                     size_t n)
{
    tide_semaphore *s =
        tide__container_of(tide__waitq_of(w), tide_semaphore, q);
    size_t len = tide__put_label(buf, n, 0, "semaphore", s->name, s);

    (void)loop;
    tide__appendf(buf, n, len, " (value %u, %zu waiting)", s->value,
                  s->q.count);
}

static const struct tide__wait_kind sem_kind = {
    .what = "semaphore",
    .describe = describe,
};

int tide_semaphore_acquire(tide_semaphore *s)
{
    if (!s)
        return -EINVAL;
    if (s->value > 0 && s->granted == 0) {
        s->value--;
        return 0;
    }
    return tide__waitq_acquire(&s->q, &sem_kind, pass_on_grant, left, s);
}

int tide_semaphore_release(tide_semaphore *s)
{
    if (!s)
        return -EINVAL;
    if (s->value >= s->bound)
        return -EOVERFLOW;
    pass_on(s);
    return 0;
}

bool tide_semaphore_locked(const tide_semaphore *s)
{
    return s && (s->value == 0 || s->granted > 0);
}

unsigned tide_semaphore_value(const tide_semaphore *s)
{
    return s ? s->value : 0;
}
