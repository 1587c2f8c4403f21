/* Event: asyncio.Event. set() wakes every waiter (queued to run, never
 * run inside set) and allocates nothing. A woken waiter never touches the
 * event again, so there is nothing to pass on when it is cancelled after
 * the wake-up: its wait just returns -ECANCELED.
 * SPDX-License-Identifier: MIT
 */
#include "tide/sync.h"

#include "base/alloc.h"
#include "core/waitq.h"

#include <errno.h>

struct tide_event {
    struct tide__waitq waiters; /* tide__qwaiter.link, FIFO */
    bool is_set;
    char *name; /* tide_event_set_name, or NULL */
};

tide_event *tide_event_new(void)
{
    tide_event *ev = tide__malloc(sizeof *ev); /* sets errno */

    if (!ev)
        return NULL;
    tide__waitq_init(&ev->waiters);
    ev->is_set = false;
    ev->name = NULL;
    return ev;
}

void tide_event_free(tide_event *ev)
{
    if (!ev)
        return;
    tide__waitq_close(&ev->waiters, false); /* the woken keep their 0 */
    tide__free(ev->name);
    tide__free(ev);
}

int tide_event_set_name(tide_event *ev, const char *name)
{
    return ev ? tide__set_name(&ev->name, name) : -EINVAL;
}

int tide_event_set(tide_event *ev)
{
    if (!ev)
        return -EINVAL;
    if (!ev->is_set) {
        ev->is_set = true;
        tide__waitq_wake_all(&ev->waiters, 0);
    }
    return 0;
}

int tide_event_clear(tide_event *ev)
{
    if (!ev)
        return -EINVAL;
    ev->is_set = false;
    return 0;
}

bool tide_event_is_set(const tide_event *ev)
{
    return ev && ev->is_set;
}

/* "event 'e' (not set, 2 waiting)": anyone may set it. */
static void describe(tide_loop *loop, const struct tide__wait *w, char *buf,
                     size_t n)
{
    tide_event *ev =
        tide__container_of(tide__waitq_of(w), tide_event, waiters);
    size_t len = tide__put_label(buf, n, 0, "event", ev->name, ev);

    (void)loop;
    tide__appendf(buf, n, len, " (%s, %zu waiting)",
                  ev->is_set ? "set" : "not set", ev->waiters.count);
}

static const struct tide__wait_kind event_kind = {
    .what = "event",
    .describe = describe,
};

int tide_event_wait(tide_event *ev)
{
    if (!ev)
        return -EINVAL;
    if (ev->is_set)
        return 0;
    return tide__waitq_acquire(&ev->waiters, &event_kind, NULL, NULL, ev);
}
