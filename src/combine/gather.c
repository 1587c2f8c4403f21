/* gather: one future for the results of many.
 *
 * The gather record holds one INLINE link per child on the child's
 * callback list (link i's aux is i, so the link finds its gather without a
 * pointer), the children (retained) and the results array that becomes
 * the gather's value. While any child is pending the gather holds a
 * reference to itself, so its links stay valid even if every user
 * reference is gone.
 * SPDX-License-Identifier: MIT
 */
#include "task/future.h"

#include "base/alloc.h"

#include <errno.h>
#include <stdio.h>

#undef tide_gather

static const struct tide__future_ops gather_ops; /* below */

struct gather {
    struct tide_future fut;
    size_t n, pending;
    unsigned flags;
    bool cancel_requested;
    struct tide__linger linger;   /* on the loop's list while self-held */
    struct tide__call empty_done; /* n == 0: completes on the next step */
    tide_future **children;
    void **results;
    struct tide__inline links[]; /* one per child */
};

static void child_done(struct tide__inline *in, tide_future *child)
{
    struct gather *g = tide__link_owner(in, struct gather, links);
    size_t i = in->node.aux;

    tide__future_mark_read(child);
    if (child->err == 0)
        g->results[i] = child->result;
    if (!g->fut.done && child->err && !(g->flags & TIDE_RETURN_ERRORS))
        tide__future_complete(&g->fut, child->err, NULL);
    if (--g->pending > 0)
        return;
    tide__list_remove(&g->linger.link);
    if (!g->fut.done) {
        if (g->cancel_requested)
            tide__future_complete(&g->fut, -ECANCELED, NULL);
        else
            tide__future_complete(&g->fut, 0, g->results);
    }
    tide_future_release(&g->fut); /* the self-reference */
}

/* The loop closes with children still pending (plain futures nobody can
 * complete now): unlink from them and drop the self-reference. */
static void gather_drop(struct tide__linger *l)
{
    struct gather *g = tide__container_of(l, struct gather, linger);

    for (size_t i = 0; i < g->n; i++)
        if (!g->children[i]->done)
            tide__future_remove_node(g->children[i], &g->links[i].node);
    g->pending = 0;
    tide_future_release(&g->fut); /* the self-reference */
}

static void empty_done(tide_loop *loop, struct tide__call *c, bool cancel)
{
    struct gather *g = tide__container_of(c, struct gather, empty_done);

    (void)loop;
    (void)cancel;
    if (!g->fut.done)
        tide__future_complete(&g->fut, 0, NULL);
    tide_future_release(&g->fut);
}

tide_future *tide__gather_at(tide_future *const *fs, size_t n, unsigned flags,
                             const char *file, int line)
{
    if ((n && !fs) || (flags & ~TIDE_RETURN_ERRORS)) {
        errno = EINVAL;
        return NULL;
    }
    tide_loop *loop = n ? fs[0] ? fs[0]->loop : NULL : tide_get_event_loop();
    if (!loop) {
        if (n)
            errno = EINVAL;
        return NULL;
    }
    /* Made in a task, a gather of that task could only be awaited by
     * someone else; the calling task would wait for itself: refused. */
    tide_future *self = tide_current_task();
    for (size_t i = 0; i < n; i++) {
        if (!fs[i] || fs[i]->loop != loop || fs[i] == self) {
            errno = EINVAL;
            return NULL;
        }
    }
    if (loop->closed || n > UINT32_MAX ||
        n > (SIZE_MAX - sizeof(struct gather)) /
                (sizeof(struct tide__inline) + 2 * sizeof(void *))) {
        errno = EINVAL;
        return NULL;
    }
    tide_future **children = tide__malloc(n * sizeof *children);
    void **results = n ? tide__calloc(n, sizeof *results) : NULL;
    bool tracked = loop->debug != NULL;
    struct gather *g = NULL;
    if (children && (results || n == 0))
        g = tide__future_alloc(loop, tracked,
                               sizeof *g + n * sizeof g->links[0], "gather",
                               file, line, tide__malloc);
    if (!g) {
        tide__free(children);
        tide__free(results);
        return NULL;
    }
    g->children = children;
    g->results = results;
    tide__future_init(&g->fut, loop, &gather_ops, tracked);
    g->n = n;
    g->pending = 0;
    g->flags = flags;
    g->cancel_requested = false;
    g->fut.refs++; /* self-reference until every child is done */
    if (n == 0) {
        g->empty_done.run = empty_done;
        tide__call_schedule(loop, &g->empty_done);
        return &g->fut;
    }
    /* One pass: children already done count at once, in order. The
     * pending count starts at n so no child can finish the gather early. */
    g->pending = n;
    g->linger.drop = gather_drop;
    tide__list_push_back(&loop->lingering, &g->linger.link);
    for (size_t i = 0; i < n; i++) {
        g->children[i] = tide_future_retain(fs[i]);
        g->links[i].node.kind = TIDE__NODE_INLINE;
        g->links[i].node.aux = (uint32_t)i;
        g->links[i].fn = child_done;
        if (fs[i]->done)
            child_done(&g->links[i], fs[i]);
        else
            tide__future_add_node(fs[i], &g->links[i].node);
    }
    return &g->fut;
}

static bool gather_cancel(tide_future *f)
{
    struct gather *g = tide__container_of(f, struct gather, fut);

    if (f->done)
        return false;
    if (g->n == 0)
        return tide__future_cancel_plain(f);
    g->cancel_requested = true;
    /* A child's completion may free nothing here: we hold a reference to
     * every child, and the self-reference keeps g alive until the end. */
    tide_future_retain(f);
    for (size_t i = 0; i < g->n; i++)
        tide_future_cancel(g->children[i]);
    tide_future_release(f);
    return true;
}

static void gather_free(tide_future *f)
{
    struct gather *g = tide__container_of(f, struct gather, fut);

    for (size_t i = 0; i < g->n; i++)
        tide_future_release(g->children[i]);
    tide__free(g->children);
    tide__free(g->results);
    tide__future_free_record(f, tide__free);
}

/* "gather 0x... of 3, 2 pending" (task dumps); in debug mode
 * "gather (created at f.c:12) of 3, 2 pending". */
static void gather_describe(tide_future *f, char *buf, size_t n)
{
    struct gather *g = tide__container_of(f, struct gather, fut);
    const char *file;
    int line;

    if (f->tracked && tide__track_site(f, &file, &line))
        snprintf(buf, n, "gather (created at %s:%d) of %zu, %zu pending", file,
                 line, g->n, g->pending);
    else
        snprintf(buf, n, "gather %p of %zu, %zu pending", (void *)f, g->n,
                 g->pending);
}

/* Those that would complete a pending gather: its pending children's. */
static void gather_blockers(tide_future *f,
                            void (*fn)(struct tide__coro *co, void *arg),
                            void *arg)
{
    struct gather *g = tide__container_of(f, struct gather, fut);

    for (size_t i = 0; i < g->n; i++) {
        tide_future *c = g->children[i];
        if (!c->done && c->ops->blockers)
            c->ops->blockers(c, fn, arg);
    }
}

static const struct tide__future_ops gather_ops = {
    .cancel = gather_cancel,
    .free = gather_free,
    .describe = gather_describe,
    .blockers = gather_blockers,
};

tide_future *tide_gather(tide_future *const *fs, size_t n, unsigned flags)
{
    return tide__gather_at(fs, n, flags, NULL, 0);
}
