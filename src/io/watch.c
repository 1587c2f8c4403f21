/* Reader and writer callbacks (asyncio's add_reader / add_writer).
 *
 * A loop's callbacks sit in a table indexed by fd (loop->watchers, made on
 * first use and let go at close as a tide__linger). Each fd with a
 * callback has a watcher record, and each direction a POLL op in flight.
 * Its completion only schedules the direction's call; the call runs the
 * user's callback, then polls again, so the callback runs every iteration
 * while the fd stays ready (level-triggered, as asyncio's selectors).
 * Removing drops the op (the core frees it at its completion) and leaves
 * a scheduled call to find no callback. A record is freed once neither
 * direction has a callback, an op, a scheduled call or a callback
 * running.
 * SPDX-License-Identifier: MIT
 */
#include "io/io.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

struct dir {
    tide_callback cb; /* NULL: none */
    void *arg;
    struct tide__opslot *op; /* its POLL in flight, or NULL */
    struct tide__call call;  /* runs cb, scheduled when ready */
    bool scheduled;          /* call is in the ready queue */
    bool running;            /* cb is running */
    short events;            /* POLLIN or POLLOUT */
    struct watcher *w;
};

struct watcher {
    int fd;
    struct dir d[2]; /* reader, writer */
    tide_loop *loop;
};

struct tide__watchers {
    struct tide__linger linger; /* loop->lingering: dropped at close */
    tide_loop *loop;
    struct watcher **byfd;
    uint32_t n;
};

static void dir_run(tide_loop *loop, struct tide__call *c, bool cancel);

static bool idle(const struct dir *d)
{
    return !d->cb && !d->op && !d->scheduled && !d->running;
}

static void maybe_free(tide_loop *loop, struct watcher *w)
{
    if (!idle(&w->d[0]) || !idle(&w->d[1]))
        return;
    if (loop->watchers->byfd[w->fd] == w) /* else detached at a close */
        loop->watchers->byfd[w->fd] = NULL;
    tide__free(w);
}

static void schedule(tide_loop *loop, struct dir *d)
{
    if (d->scheduled)
        return;
    d->scheduled = true;
    tide__call_schedule(loop, &d->call);
}

static void on_ready(tide_loop *loop, struct tide__opslot *s)
{
    struct dir *d = s->owner;
    ssize_t r = s->op.result;

    d->op = NULL;
    tide__op_free(loop, s);
    if (r > 0)
        schedule(loop, d);
    else
        d->cb = NULL; /* the fd went away (-EBADF) or cannot be watched */
    maybe_free(loop, d->w);
}

/* Poll for d's direction. 0 (in flight or ready: scheduled), or -errno
 * (the fd cannot be watched; nothing changed). */
static int arm(tide_loop *loop, struct dir *d)
{
    struct tide__opslot *s = tide__op_new(loop);

    if (!s)
        return -ENOMEM;
    s->op.kind = TIDE__OP_POLL;
    s->op.fd = d->w->fd;
    s->op.flags = d->events;
    s->complete = on_ready;
    s->owner = d;
    int r = tide__op_submit(loop, s);
    if (r == 0) {
        d->op = s;
        return 0;
    }
    ssize_t res = r == 1 ? s->op.result : r;
    tide__op_free(loop, s);
    if (res < 0)
        return (int)res;
    schedule(loop, d);
    return 0;
}

static void dir_run(tide_loop *loop, struct tide__call *c, bool cancel)
{
    struct dir *d = tide__container_of(c, struct dir, call);

    d->scheduled = false;
    if (!cancel && d->cb) {
        d->running = true;
        d->cb(d->arg); /* may add, remove, close */
        d->running = false;
        if (d->cb && !d->op && !d->scheduled && arm(loop, d) < 0)
            d->cb = NULL;
    }
    maybe_free(loop, d->w);
}

static void drop_all(struct tide__linger *l)
{
    struct tide__watchers *ws =
        tide__container_of(l, struct tide__watchers, linger);
    for (uint32_t fd = 0; fd < ws->n; fd++) {
        struct watcher *w = ws->byfd[fd];
        if (!w)
            continue;
        for (int i = 0; i < 2; i++)
            if (w->d[i].op)
                tide__op_drop(w->loop, w->d[i].op);
        tide__free(w);
    }
    ws->loop->watchers = NULL;
    tide__free(ws->byfd);
    tide__free(ws);
}

/* The record for fd on loop, made if `make`; NULL if none (or ENOMEM). */
static struct watcher *watcher_of(tide_loop *loop, int fd, bool make)
{
    struct tide__watchers *ws = loop->watchers;

    if (!ws) {
        if (!make || !(ws = tide__calloc(1, sizeof *ws)))
            return NULL;
        ws->linger.drop = drop_all;
        ws->loop = loop;
        tide__list_push_back(&loop->lingering, &ws->linger.link);
        loop->watchers = ws;
    }
    if ((uint32_t)fd < ws->n && ws->byfd[fd])
        return ws->byfd[fd];
    if (!make)
        return NULL;
    if ((uint32_t)fd >= ws->n) {
        uint32_t n = ws->n ? ws->n : 64;
        while (n <= (uint32_t)fd)
            n *= 2;
        struct watcher **t = tide__realloc(ws->byfd, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + ws->n, 0, (n - ws->n) * sizeof *t);
        ws->byfd = t;
        ws->n = n;
    }
    struct watcher *w = tide__calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->fd = fd;
    w->loop = loop;
    for (int i = 0; i < 2; i++) {
        w->d[i].w = w;
        w->d[i].events = i ? POLLOUT : POLLIN;
        w->d[i].call.run = dir_run;
    }
    ws->byfd[fd] = w;
    return w;
}

static int add(tide_loop *loop, int fd, int which, tide_callback cb, void *arg)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed || !cb)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    struct watcher *w = watcher_of(loop, fd, true);
    if (!w)
        return -ENOMEM;
    struct dir *d = &w->d[which];
    tide_callback was = d->cb;
    d->cb = cb;
    d->arg = arg;
    if (was || d->op || d->scheduled || d->running)
        return 0; /* replaced; its poll goes on */
    int err = arm(loop, d);
    if (err < 0) {
        d->cb = NULL;
        maybe_free(loop, w);
        return err == -EPERM ? -EINVAL : err;
    }
    return 0;
}

static int remove_dir(tide_loop *loop, int fd, int which)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed)
        return -EINVAL;
    struct watcher *w = fd >= 0 ? watcher_of(loop, fd, false) : NULL;
    if (!w || !w->d[which].cb)
        return 0;
    struct dir *d = &w->d[which];
    d->cb = NULL;
    if (d->op) {
        tide__op_drop(loop, d->op);
        d->op = NULL;
    }
    maybe_free(loop, w);
    return 1;
}

int tide_add_reader(tide_loop *loop, int fd, tide_callback cb, void *arg)
{
    return add(loop, fd, 0, cb, arg);
}

int tide_add_writer(tide_loop *loop, int fd, tide_callback cb, void *arg)
{
    return add(loop, fd, 1, cb, arg);
}

int tide_remove_reader(tide_loop *loop, int fd)
{
    return remove_dir(loop, fd, 0);
}

int tide_remove_writer(tide_loop *loop, int fd)
{
    return remove_dir(loop, fd, 1);
}

void tide__watch_forget(tide_loop *loop, int fd)
{
    remove_dir(loop, fd, 0);
    remove_dir(loop, fd, 1);
    /* A record still held by a call the old file's readiness scheduled
     * (or by its callback, running) leaves the table: a callback added
     * for a new file of this number gets a record of its own, armed on
     * its own readiness, and the old call finds no callback and frees
     * the old record (HAZARDS B01). */
    struct watcher *w = watcher_of(loop, fd, false);
    if (w)
        loop->watchers->byfd[fd] = NULL;
}
