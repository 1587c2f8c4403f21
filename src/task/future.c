/* Futures: states, results, done callbacks, reference counts, and the
 * plain kind (tide_future_new).
 *
 * Completing a future never runs user code: waiters are queued on the
 * loop, user callbacks are queued as calls, in the order they were added.
 * Only INLINE nodes (the library's own bookkeeping: the combinators')
 * run inside the completing call. What differs between kinds of future
 * (cancelling, freeing, naming) goes through f->ops.
 * SPDX-License-Identifier: MIT
 */
#include "task/future.h"

#include "base/alloc.h"

#include <errno.h>
#include <stdio.h>

/* A user's done callback: on the future's list until completion, then a
 * call in the ready queue holding a reference to the future. */
struct done_cb {
    struct tide__call call;
    tide_future *f;
    void (*cb)(tide_future *f, void *arg);
    void *arg;
};

void tide__future_init(tide_future *f, tide_loop *loop,
                       const struct tide__future_ops *ops, bool tracked)
{
    f->refs = 1;
    f->ops = ops;
    f->done = false;
    f->retrieved = false;
    f->tracked = tracked;
    f->err = 0;
    f->aux = 0;
    f->cb_tail = NULL;
    f->loop = loop;
    tide__loop_ref(loop);
}

tide_future *tide__future_new_at(tide_loop *loop, const char *file, int line)
{
    loop = tide__loop_resolve(loop);
    if (!loop)
        return NULL;
    if (loop->closed) {
        errno = EINVAL;
        return NULL;
    }
    bool tracked = loop->debug;
    tide_future *f = tide__future_alloc(loop, tracked, sizeof *f, "future",
                                        file, line, tide__malloc);
    if (!f)
        return NULL;
    tide__future_init(f, loop, &tide__future_plain_ops, tracked);
    return f;
}

#undef tide_future_new

tide_future *tide_future_new(tide_loop *loop)
{
    return tide__future_new_at(loop, NULL, 0);
}

void tide__future_add_node(tide_future *f, struct tide__node *n)
{
    if (f->cb_tail) {
        n->next = f->cb_tail->next;
        f->cb_tail->next = n;
    } else {
        n->next = n;
    }
    f->cb_tail = n;
}

void tide__future_remove_node(tide_future *f, struct tide__node *n)
{
    struct tide__node *tail = f->cb_tail, *prev = tail;

    if (f->done || !tail)
        return;
    do {
        if (prev->next == n) {
            if (n == prev) {
                f->cb_tail = NULL;
            } else {
                prev->next = n->next;
                if (tail == n)
                    f->cb_tail = prev;
            }
            n->next = NULL;
            return;
        }
        prev = prev->next;
    } while (prev != tail);
}

static void done_cb_run(tide_loop *loop, struct tide__call *c, bool cancel)
{
    struct done_cb *d = tide__container_of(c, struct done_cb, call);

    (void)loop;
    if (!cancel)
        d->cb(d->f, d->arg);
    tide_future_release(d->f);
    tide__free(d);
}

void tide__future_complete(tide_future *f, int err, void *result)
{
    tide_loop *loop = f->loop;
    struct tide__node *tail = f->cb_tail, *n; /* detached: result's now */

    f->done = true;
    f->err = err;
    f->result = err ? NULL : result;
    if (!tail)
        return;
    /* An inline node may drop the last reference it holds: keep f alive
     * until the walk is over. */
    tide_future_retain(f);
    n = tail->next;
    tail->next = NULL;
    while (n) {
        struct tide__node *next = n->next;
        switch (n->kind) {
        case TIDE__NODE_WAITER: {
            struct tide__waiter *w = (struct tide__waiter *)(void *)n;
            tide__wake(loop, w->co, 0);
            break;
        }
        case TIDE__NODE_INLINE: {
            struct tide__inline *in = (struct tide__inline *)(void *)n;
            in->fn(in, f);
            break;
        }
        default: {
            struct done_cb *d =
                tide__container_of(n, struct done_cb, call.node);
            tide_future_retain(f);
            tide__call_schedule(loop, &d->call);
            break;
        }
        }
        n = next;
    }
    tide_future_release(f);
}

int tide_future_set_result(tide_future *f, void *value)
{
    if (!f || f->done || f->ops != &tide__future_plain_ops)
        return -EINVAL;
    if (f->loop->closed)
        return -ESHUTDOWN;
    tide__future_complete(f, 0, value);
    return 0;
}

int tide_future_set_error(tide_future *f, int err)
{
    if (!f || f->done || err >= 0 || f->ops != &tide__future_plain_ops)
        return -EINVAL;
    if (f->loop->closed)
        return -ESHUTDOWN;
    tide__future_complete(f, err, NULL);
    return 0;
}

bool tide__future_cancel_plain(tide_future *f)
{
    if (f->done || f->loop->closed)
        return false;
    tide__future_complete(f, -ECANCELED, NULL);
    return true;
}

static void free_plain(tide_future *f)
{
    tide__future_free_record(f, tide__free);
}

void tide__future_describe_plain(tide_future *f, char *buf, size_t n)
{
    const char *file;
    int line;

    if (f->tracked && tide__track_site(f, &file, &line))
        snprintf(buf, n, "%s (created at %s:%d)", tide__track_what(f), file,
                 line);
    else
        snprintf(buf, n, "future %p", (void *)f);
}

void tide__future_describe(void *f, char *buf, size_t n)
{
    tide_future *fut = f;

    fut->ops->describe(fut, buf, n);
}

const struct tide__future_ops tide__future_plain_ops = {
    .cancel = tide__future_cancel_plain,
    .free = free_plain,
    .describe = tide__future_describe_plain,
};

bool tide_future_cancel(tide_future *f)
{
    if (!f || f->done)
        return false;
    return f->ops->cancel(f);
}

bool tide_future_done(const tide_future *f)
{
    return f && f->done;
}

bool tide_future_cancelled(const tide_future *f)
{
    return f && f->done && f->err == -ECANCELED;
}

int tide_future_result(const tide_future *f, void **value)
{
    if (!f)
        return -EINVAL;
    if (!f->done)
        return -EAGAIN;
    tide__future_mark_read((tide_future *)f); /* bookkeeping, not state */
    if (f->err)
        return f->err;
    if (value)
        *value = f->result;
    return 0;
}

int tide_future_add_done_callback(tide_future *f,
                                  void (*cb)(tide_future *f, void *arg),
                                  void *arg)
{
    if (!f || !cb)
        return -EINVAL;
    if (f->loop->closed)
        return -ESHUTDOWN;
    struct done_cb *d = tide__malloc(sizeof *d);
    if (!d)
        return -ENOMEM;
    d->call.run = done_cb_run;
    d->f = f;
    d->cb = cb;
    d->arg = arg;
    if (f->done) {
        tide_future_retain(f);
        tide__call_schedule(f->loop, &d->call);
    } else {
        d->call.node.kind = TIDE__NODE_DONE_CB;
        tide__future_add_node(f, &d->call.node);
    }
    return 0;
}

/* Debug mode: a failed future freed without anyone reading its error. */
static void report_unretrieved(tide_loop *loop, tide_future *f)
{
    char who[256], msg[400];

    f->ops->describe(f, who, sizeof who);
    snprintf(msg, sizeof msg,
             "%s failed with %d (%s): error was never "
             "retrieved",
             who, f->err, tide_strerror(f->err));
    tide__loop_report(loop, msg);
}

tide_future *tide_future_retain(tide_future *f)
{
    if (f)
        f->refs++;
    return f;
}

void tide_future_release(tide_future *f)
{
    if (!f || --f->refs > 0)
        return;
    if (__builtin_expect(f->tracked, 0)) {
        /* Debug mode keeps a freed future's memory a while, with one
         * reference, so that a second release lands here. */
        f->refs = 1;
        if (tide__track_freed(f)) {
            tide__track_report_freed(f->loop, f, "tide_future_release");
            return;
        }
    }
    /* Pending with callbacks nobody will ever run: free the records. Only
     * user callbacks can remain here: waiters and inline nodes hold a
     * reference to the future. */
    struct tide__node *tail = f->done ? NULL : f->cb_tail;
    if (tail) {
        struct tide__node *n = tail->next;
        tail->next = NULL;
        while (n) {
            struct tide__node *next = n->next;
            tide__free(tide__container_of(n, struct done_cb, call.node));
            n = next;
        }
    }
    tide_loop *loop = f->loop;
    if (loop->debug && f->done && f->err && f->err != -ECANCELED &&
        !f->retrieved)
        report_unretrieved(loop, f);
    f->ops->free(f);
    tide__loop_unref(loop);
}

tide_loop *tide_future_get_loop(const tide_future *f)
{
    return f && !f->loop->closed ? f->loop : NULL;
}
