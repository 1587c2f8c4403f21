/* tide_shield: an outer future that mirrors f, whose cancellation does not
 * reach f. An INLINE link on f copies f's outcome into the outer future
 * (unless the outer was cancelled meanwhile) and then lets both go.
 * SPDX-License-Identifier: MIT
 */
#include "task/future.h"

#include "base/alloc.h"

#include <errno.h>

#undef tide_shield

struct shield {
    struct tide__inline in;
    struct tide__linger linger; /* on the loop's list until then */
    tide_future *inner, *outer; /* both retained until inner is done */
};

static void on_inner_done(struct tide__inline *in, tide_future *f)
{
    struct shield *s = tide__container_of(in, struct shield, in);

    tide__future_mark_read(f);
    tide__list_remove(&s->linger.link);
    if (!s->outer->done && !s->outer->loop->closed)
        tide__future_complete(s->outer, f->err, f->result);
    tide_future_release(s->outer);
    tide_future_release(s->inner);
    tide__free(s);
}

/* The loop closes with f pending (a plain future nobody can complete
 * now): unlink and let both go. */
static void shield_drop(struct tide__linger *l)
{
    struct shield *s = tide__container_of(l, struct shield, linger);

    tide__future_remove_node(s->inner, &s->in.node);
    tide_future_release(s->outer);
    tide_future_release(s->inner);
    tide__free(s);
}

tide_future *tide__shield_at(tide_future *f, const char *file, int line)
{
    if (!f || f == tide_current_task()) { /* a task shielding itself */
        errno = EINVAL;
        return NULL;
    }
    if (f->done)
        return tide_future_retain(f);
    tide_future *outer = tide__future_new_at(f->loop, file, line);
    if (!outer)
        return NULL;
    struct shield *s = tide__malloc(sizeof *s);
    if (!s) {
        tide_future_release(outer);
        return NULL;
    }
    s->in.node.kind = TIDE__NODE_INLINE;
    s->in.fn = on_inner_done;
    s->inner = tide_future_retain(f);
    s->outer = tide_future_retain(outer);
    s->linger.drop = shield_drop;
    tide__list_push_back(&f->loop->lingering, &s->linger.link);
    tide__future_add_node(f, &s->in.node);
    return outer;
}

tide_future *tide_shield(tide_future *f)
{
    return tide__shield_at(f, NULL, 0);
}
