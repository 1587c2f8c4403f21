/* as_completed: hand back futures in the order they complete.
 *
 * Each pending future carries an INLINE link of the iterator (aux is its
 * index); completion appends the index to `order` and wakes the one task
 * waiting in next(), if any. Futures done at creation are appended in the
 * order given. Freeing the iterator unlinks what is still linked and
 * wakes a waiter with -EBADF, which then returns without touching it.
 * SPDX-License-Identifier: MIT
 */
#include "task/task.h"

#include "base/alloc.h"

#include <errno.h>
#include <stdlib.h>

struct ac_wait {
    struct tide__wait wait;
    struct tide__coro *co;
};

struct tide_as_completed {
    tide_loop *loop;
    size_t n;
    size_t ndone;               /* entries of order filled */
    size_t handed;              /* entries of order handed out */
    tide_future **fs;           /* retained */
    size_t *order;              /* indexes in completion order */
    struct ac_wait *waiter;     /* the task in next(), if any */
    struct tide__coro *checked; /* the last caller of next() that ... */
    bool holds_checked;         /* ... is (true) or is not among fs */
    struct ac_wait slot;        /* its wait (not on its stack: a compact
                                 * task's frames move while it waits) */
    struct tide__inline links[];
};

static void on_done(struct tide__inline *in, tide_future *f)
{
    tide_as_completed *it = tide__link_owner(in, tide_as_completed, links);

    (void)f;
    it->order[it->ndone++] = in->node.aux;
    if (it->waiter)
        tide__wake(it->loop, it->waiter->co, 0);
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * *(tide_future *const *const *)a;
    uintptr_t y = (uintptr_t) * *(tide_future *const *const *)b;

    if (x != y)
        return x < y ? -1 : 1;
    /* The same future: the earlier position first. */
    return *(tide_future *const *const *)a < *(tide_future *const *const *)b
               ? -1
               : 1;
}

/* dup[j] = fs[j] appeared before j. O(n log n): a sorted array of
 * pointers into fs (their own order breaks ties). False: no memory. */
static bool mark_duplicates(tide_future *const *fs, size_t n, bool *dup)
{
    tide_future *const **p = tide__malloc(n * sizeof *p);

    if (!p)
        return false;
    for (size_t j = 0; j < n; j++)
        p[j] = &fs[j];
    qsort(p, n, sizeof *p, by_address);
    for (size_t k = 1; k < n; k++)
        if (*p[k] == *p[k - 1])
            dup[p[k] - fs] = true;
    tide__free(p);
    return true;
}

tide_as_completed *tide_as_completed_new(tide_future *const *fs, size_t n)
{
    if (n && !fs) {
        errno = EINVAL;
        return NULL;
    }
    tide_loop *loop = n && fs[0] ? fs[0]->loop : NULL;
    for (size_t i = 0; i < n; i++) {
        if (!fs[i] || fs[i]->loop != loop) {
            errno = EINVAL;
            return NULL;
        }
    }
    if (n > UINT32_MAX ||
        n > (SIZE_MAX - sizeof(tide_as_completed)) /
                (sizeof(struct tide__inline) + 2 * sizeof(void *))) {
        errno = EINVAL;
        return NULL;
    }
    tide_as_completed *it = tide__malloc(sizeof *it + n * sizeof it->links[0]);
    if (!it)
        return NULL;
    it->fs = tide__malloc(n * sizeof *it->fs);
    it->order = tide__malloc(n * sizeof *it->order);
    if (!it->fs || !it->order) {
        tide__free(it->fs);
        tide__free(it->order);
        tide__free(it);
        return NULL;
    }
    it->loop = loop;
    it->ndone = it->handed = 0;
    it->waiter = NULL;
    it->checked = NULL;
    it->holds_checked = false;
    /* A future given twice is handed out once, as asyncio (which iterates
     * a set) does: keep the first of each. */
    size_t m = 0;
    bool *dup = n > 1 ? tide__calloc(n, sizeof *dup) : NULL;
    if (n > 1 && (!dup || !mark_duplicates(fs, n, dup))) {
        tide__free(dup);
        tide__free(it->fs);
        tide__free(it->order);
        tide__free(it);
        errno = ENOMEM;
        return NULL;
    }
    for (size_t j = 0; j < n; j++) {
        if (dup && dup[j])
            continue;
        size_t i = m++;
        it->fs[i] = tide_future_retain(fs[j]);
        it->links[i].node.kind = TIDE__NODE_INLINE;
        it->links[i].node.aux = (uint32_t)i;
        it->links[i].fn = on_done;
        if (fs[j]->done)
            it->order[it->ndone++] = i;
        else
            tide__future_add_node(fs[j], &it->links[i].node);
    }
    tide__free(dup);
    it->n = m;
    return it;
}

/* Futures handed out one by one: any of the pending may be next. */
static const struct tide__wait_kind ac_kind = {.what = "as_completed"};

static void ac_cancel(tide_loop *loop, struct tide__wait *w)
{
    struct ac_wait *a = tide__container_of(w, struct ac_wait, wait);

    tide__wake(loop, a->co, -ECANCELED);
}

int tide_as_completed_next(tide_as_completed *it, tide_future **next)
{
    if (!it || !next)
        return -EINVAL;
    for (;;) {
        if (it->handed < it->ndone) {
            *next = it->fs[it->order[it->handed++]];
            return 1;
        }
        if (it->handed == it->n)
            return 0;
        int err = tide__in_task_of(it->loop);
        if (err < 0)
            return err;
        tide_loop *loop = it->loop;
        if (it->waiter)
            return -EBUSY;
        if (it->checked != loop->current) {
            /* Waiting for itself would never end. */
            tide_future *self = tide__task_of_coro(loop->current);
            it->checked = loop->current;
            it->holds_checked = false;
            for (size_t i = 0; i < it->n; i++)
                it->holds_checked |= it->fs[i] == self;
        }
        if (it->holds_checked)
            return -EINVAL;
        it->slot =
            (struct ac_wait){.wait = {.cancel = ac_cancel, .kind = &ac_kind},
                             .co = loop->current};
        it->waiter = &it->slot;
        err = tide__suspend(loop, &it->slot.wait);
        if (err == -EBADF)
            return err; /* the iterator was freed meanwhile */
        it->waiter = NULL;
        if (err < 0)
            return err;
    }
}

void tide_as_completed_free(tide_as_completed *it)
{
    if (!it)
        return;
    if (it->waiter)
        tide__wake(it->loop, it->waiter->co, -EBADF);
    for (size_t i = 0; i < it->n; i++) {
        if (!it->fs[i]->done)
            tide__future_remove_node(it->fs[i], &it->links[i].node);
        tide_future_release(it->fs[i]);
    }
    tide__free(it->fs);
    tide__free(it->order);
    tide__free(it);
}
