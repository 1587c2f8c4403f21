/* Task groups: asyncio.TaskGroup / Trio nursery semantics.
 *
 * Each child carries an INLINE link (in a small record holding a
 * reference to the child) that, at the child's end, records a failure,
 * aborts the group on the first one (cancels the siblings and, unless the
 * owner is already leaving the block, the owner itself, once), and wakes
 * the owner waiting in tide_task_group_end when the last child is done.
 * The owner's own cancel requested by the group is withdrawn (uncancel) at
 * the end, so only a cancellation from outside is reported as one.
 * Freeing the group while the owner waits in end() is misuse, yet safe:
 * the owner's wait lives in the group, so free only marks it `freed` and
 * wakes the owner with -EBADF; end() then frees it and returns -EBADF.
 * SPDX-License-Identifier: MIT
 */
#include "task/task.h"

#include "base/alloc.h"

#include <errno.h>

struct child {
    struct tide__inline in;
    struct tide__list link; /* g->children while unfinished */
    tide_task_group *g;
    tide_future *task; /* retained until it ends */
};

struct group_wait {
    struct tide__wait wait;
    tide_task_group *g;
};

struct tide_task_group {
    tide_loop *loop;
    tide_future *owner;         /* retained */
    struct tide__list children; /* struct child, unfinished ones */
    size_t nchildren;
    int *errors;
    size_t nerrors, cap;
    int body_err;        /* the block's own failure, or 0 */
    int base_cancelling; /* owner's cancel requests at creation */
    bool aborting, exiting, ended;
    bool owner_cancelled;      /* the group cancelled its owner */
    bool freed;                /* free() ran while the owner waited in
                                * end(): end() frees it */
    struct tide__coro *waiter; /* the owner, waiting in end() */
    struct group_wait wait;    /* its wait (not on its stack: a compact
                                * task's frames move while it waits) */
};

static void destroy(tide_task_group *g)
{
    tide_future_release(g->owner);
    tide__free(g->errors);
    tide__free(g);
}

static void abort_group(tide_task_group *g)
{
    g->aborting = true;
    for (struct tide__list *it = g->children.next; it != &g->children;) {
        struct child *c = tide__container_of(it, struct child, link);
        it = it->next; /* a plain child may finish inside the cancel */
        tide_future_cancel(c->task);
    }
}

static void on_child_done(struct tide__inline *in, tide_future *task)
{
    struct child *c = tide__container_of(in, struct child, in);
    tide_task_group *g = c->g;

    tide__list_remove(&c->link);
    g->nchildren--;
    tide__future_mark_read(task); /* the group reports it */
    if (task->err && task->err != -ECANCELED) {
        if (g->nerrors == g->cap) {
            size_t cap = g->cap ? g->cap * 2 : 4;
            int *e = tide__realloc(g->errors, cap * sizeof *e);
            if (e) {
                g->errors = e;
                g->cap = cap;
            }
        }
        if (g->nerrors < g->cap)
            g->errors[g->nerrors++] = task->err;
        if (!g->aborting) {
            abort_group(g);
            if (!g->exiting && !g->owner->done) {
                g->owner_cancelled = true;
                tide_future_cancel(g->owner);
            }
        }
    }
    if (g->nchildren == 0 && g->waiter)
        tide__wake(g->loop, g->waiter, 0);
    tide_future_release(c->task);
    tide__free(c);
}

tide_task_group *tide_task_group_new(void)
{
    tide_loop *loop = tide__task_loop();

    if (!loop) {
        errno = EPERM;
        return NULL;
    }
    tide_task_group *g = tide__calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->loop = loop;
    g->owner = tide_future_retain(tide__task_of_coro(loop->current));
    tide__list_init(&g->children);
    g->base_cancelling = tide_task_cancelling(g->owner);
    return g;
}

tide_future *tide__task_group_spawn_at(tide_task_group *g, tide_fn fn,
                                       void *arg, const tide_task_options *opt,
                                       const char *file, int line)
{
    if (!g || !fn) {
        errno = EINVAL;
        return NULL;
    }
    if (g->ended || g->aborting || g->loop->closing) {
        errno = ESHUTDOWN;
        return NULL;
    }
    struct child *c = tide__malloc(sizeof *c);
    if (!c)
        return NULL;
    tide_future *t = tide__create_task_at(g->loop, fn, arg, opt, file, line);
    if (!t) {
        tide__free(c);
        return NULL;
    }
    c->in.node.kind = TIDE__NODE_INLINE;
    c->in.fn = on_child_done;
    c->g = g;
    c->task = tide_future_retain(t);
    tide__list_push_back(&g->children, &c->link);
    g->nchildren++;
    if (t->done) /* an eager child may be over already */
        on_child_done(&c->in, t);
    else
        tide__future_add_node(t, &c->in.node);
    return t;
}

#undef tide_task_group_spawn

tide_future *tide_task_group_spawn(tide_task_group *g, tide_fn fn, void *arg,
                                   const tide_task_options *opt)
{
    return tide__task_group_spawn_at(g, fn, arg, opt, NULL, 0);
}

int tide_task_group_cancel(tide_task_group *g)
{
    if (!g)
        return -EINVAL;
    abort_group(g);
    return 0;
}

/* A cancel request reaching the owner while it waits in end(): cancel
 * the children and keep waiting for them. */
/* The group ends once its children have finished. */
static const struct tide__wait_kind end_kind = {.what = "task group end"};

static void end_cancel(tide_loop *loop, struct tide__wait *w)
{
    struct group_wait *gw = tide__container_of(w, struct group_wait, wait);

    (void)loop;
    abort_group(gw->g);
}

int tide_task_group_end(tide_task_group *g, int err)
{
    tide_loop *loop = tide__task_loop();

    if (!loop)
        return -EPERM;
    if (!g || g->ended || tide__task_of_coro(loop->current) != g->owner)
        return -EINVAL;
    g->exiting = true;
    if (err < 0) {
        if (err != -ECANCELED)
            g->body_err = err;
        abort_group(g);
    }
    /* Withdraw the group's own request before waiting, so that only a
     * request from outside interrupts the wait. */
    if (g->owner_cancelled) {
        g->owner_cancelled = false;
        tide_task_uncancel(g->owner);
    }
    while (g->nchildren > 0) {
        g->wait = (struct group_wait){.wait = {.cancel = end_cancel,
                                               .kind = &end_kind},
                                      .g = g};
        g->waiter = loop->current;
        int e = tide__suspend(loop, &g->wait.wait);
        g->waiter = NULL;
        if (g->freed) {
            /* A cancel request that came with the free is not lost: the
             * next suspension gets it. */
            if (e == -ECANCELED)
                tide__coro_cancel(loop, loop->current);
            destroy(g);
            return -EBADF;
        }
        if (e == -ECANCELED)
            abort_group(g); /* delivered while queued: same meaning */
    }
    g->ended = true;
    if (tide_task_cancelling(g->owner) > g->base_cancelling)
        return -ECANCELED;
    if (g->body_err)
        return g->body_err;
    if (g->nerrors)
        return g->errors[0];
    return 0;
}

size_t tide_task_group_errors(const tide_task_group *g, int *errs, size_t cap)
{
    if (!g)
        return 0;
    for (size_t i = 0; i < g->nerrors && i < cap && errs; i++)
        errs[i] = g->errors[i];
    return g->nerrors;
}

void tide_task_group_free(tide_task_group *g)
{
    if (!g)
        return;
    /* Children still running are cancelled and let go: the loop keeps
     * them until they finish; nothing points back at g any more. */
    while (!tide__list_empty(&g->children)) {
        struct child *c =
            tide__container_of(g->children.next, struct child, link);
        tide__list_remove(&c->link);
        tide__future_remove_node(c->task, &c->in.node);
        tide_future_cancel(c->task);
        tide_future_release(c->task);
        tide__free(c);
    }
    g->nchildren = 0;
    if (g->waiter) {
        /* The owner waits in end() (maybe already woken, not yet run), on
         * g->wait: g must outlive that wait, so end() frees it. */
        g->freed = true;
        tide__wake(g->loop, g->waiter, -EBADF);
        return;
    }
    destroy(g);
}
