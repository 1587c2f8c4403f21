/* Hangs explained: what each waiting task waits on, who could end that
 * wait, and whether anything at all can still wake the loop.
 *
 * A suspended coroutine's wait names its kind (struct tide__wait_kind):
 * the kind describes the object and lists the coroutines that could end
 * the wait (a lock's holder, an awaited task), from the wait itself. Only
 * dumps read any of it. A dump first takes a census of the unfinished
 * coroutines (sorted pointers), so that a coroutine a primitive
 * remembers (a lock's holder) is named only while it is alive; one that
 * ended is named from the few failures debug mode remembers (a task that
 * failed and whose error nobody read), else as "a task that has ended".
 *
 * tide__deadlock_find runs when a run would wait forever in debug mode:
 * if nothing outside the tasks can wake the loop
 * (tide__loop_external_pending), it follows the wait-for edges, and
 * names the first cycle it finds, or says that every task waits on
 * something nobody will do. debug.c reports it with the task dump.
 * SPDX-License-Identifier: MIT
 */
#include "core/loop.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- text --------------------------------------------------------------- */

size_t tide__appendf(char *buf, size_t n, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (len + 1 >= n)
        return len;
    va_start(ap, fmt);
    int k = vsnprintf(buf + len, n - len, fmt, ap);
    va_end(ap);
    if (k < 0)
        return len;
    return len + (size_t)k < n ? len + (size_t)k : n - 1;
}

size_t tide__put_label(char *buf, size_t n, size_t len, const char *kind,
                       const char *name, const void *obj)
{
    if (name)
        return tide__appendf(buf, n, len, "%s '%s'", kind, name);
    return tide__appendf(buf, n, len, "%s %p", kind, obj);
}

/* ---- the census of unfinished coroutines ---------------------------------
 */

struct tide__census {
    size_t n, cap;
    struct tide__coro *co[]; /* sorted by address */
};

static void count_in(tide_loop *loop, struct tide__coro *co, void *arg)
{
    struct tide__census *c = arg;

    (void)loop;
    if (c->n < c->cap)
        c->co[c->n++] = co;
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (struct tide__coro *const *)a;
    uintptr_t y = (uintptr_t) * (struct tide__coro *const *)b;

    return x < y ? -1 : x > y;
}

int tide__census_take(tide_loop *loop)
{
    size_t cap = loop->ncoros;
    struct tide__census *c =
        tide__malloc(sizeof *c + (cap ? cap : 1) * sizeof c->co[0]);

    if (!c)
        return -ENOMEM;
    c->n = 0;
    c->cap = cap;
    tide__loop_each_coro(loop, count_in, c);
    qsort(c->co, c->n, sizeof c->co[0], by_address);
    loop->census = c;
    return 0;
}

void tide__census_drop(tide_loop *loop)
{
    tide__free(loop->census);
    loop->census = NULL;
}

/* co's index in the census, or -1. */
static long census_index(const struct tide__census *c,
                         const struct tide__coro *co)
{
    size_t lo = 0, hi = c ? c->n : 0;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->co[mid] == co)
            return (long)mid;
        if ((uintptr_t)c->co[mid] < (uintptr_t)co)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

bool tide__census_has(tide_loop *loop, const struct tide__coro *co)
{
    return census_index(loop->census, co) >= 0;
}

/* ---- failures nobody read (debug mode) -----------------------------------
 */

#define MAX_FAILURES 8

struct failure {
    const void *key; /* the task's future; NULL: a free entry */
    const struct tide__coro *co;
    int err;
    char name[64];
};

struct tide__failures {
    unsigned next; /* the entry to overwrite next */
    struct failure f[MAX_FAILURES];
};

void tide__debug_task_failed(tide_loop *loop, struct tide__coro *co,
                             const void *key, int err)
{
    if (!loop->failures &&
        !(loop->failures = tide__calloc(1, sizeof *loop->failures)))
        return; /* only a report says less */
    struct failure *f =
        &loop->failures->f[loop->failures->next++ % MAX_FAILURES];
    f->key = key;
    f->co = co;
    f->err = err;
    loop->coro_ops->name(co, f->name, sizeof f->name);
}

void tide__debug_failure_read(tide_loop *loop, const void *key)
{
    for (unsigned i = 0; loop->failures && i < MAX_FAILURES; i++)
        if (loop->failures->f[i].key == key)
            loop->failures->f[i].key = NULL;
}

void tide__deadlock_forget(tide_loop *loop)
{
    tide__free(loop->failures);
    loop->failures = NULL;
}

static const struct failure *failure_of(tide_loop *loop,
                                        const struct tide__coro *co)
{
    for (unsigned i = 0; loop->failures && i < MAX_FAILURES; i++) {
        const struct failure *f = &loop->failures->f[i];
        if (f->key && f->co == co)
            return f;
    }
    return NULL;
}

/* ---- names and waits ---------------------------------------------------- */

void tide__coro_name(tide_loop *loop, struct tide__coro *co, char *buf,
                     size_t n)
{
    const struct failure *f;

    if (!loop->census)
        snprintf(buf, n, "a task (whether it still runs is not known)");
    else if (tide__census_has(loop, co))
        loop->coro_ops->name(co, buf, n);
    else if ((f = failure_of(loop, co)))
        snprintf(buf, n, "%s, which failed with -%s", f->name,
                 tide_err_name(f->err));
    else
        snprintf(buf, n, "a task that has ended");
}

void tide__wait_describe(tide_loop *loop, struct tide__coro *co, char *buf,
                         size_t n)
{
    const struct tide__wait *w = co->wait;

    if (w->kind->describe)
        w->kind->describe(loop, w, buf, n);
    else
        snprintf(buf, n, "%s", w->kind->what);
}

/* ---- can anything wake the loop? -----------------------------------------
 */

/* Whether a thread other than the caller, tide's watchdog and the thread
 * pool's threads runs in this process (any of them may call
 * tide_call_soon_threadsafe; the pool's post only for the jobs a loop
 * counts in remote_expected); true if that cannot be known. */
static bool other_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    long self = syscall(SYS_gettid);
    struct dirent *e;
    bool other = false;

    if (!d)
        return true;
    while (!other && (e = readdir(d))) {
        if (e->d_name[0] == '.' || atol(e->d_name) == self)
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%.255s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = '\0';
            fclose(f);
        }
        other = strcmp(comm, "tide-watchdog\n") != 0 &&
                strcmp(comm, "tide-pool\n") != 0;
    }
    closedir(d);
    return other;
}

bool tide__loop_external_pending(tide_loop *loop)
{
    const struct tide__timer *t = tide__heap_min(&loop->timers);

    if (loop->ready.count || (t && t->deadline != INT64_MAX) ||
        loop->backend.inflight || loop->remote_expected ||
        loop->sig_handlers || loop->reaper)
        return true;
    /* Threads first, then what they posted: a thread that posts and ends
     * between the two looks would otherwise be missed by both. */
    return other_threads() || loop->remote_unrun ||
           atomic_load_explicit(&loop->remote_pending, memory_order_acquire);
}

/* ---- the wait-for graph --------------------------------------------------
 */

/* Edges from census[i] to census[j]: edge[start[i]] .. edge[start[i+1]). */
struct graph {
    tide_loop *loop;
    size_t n;
    size_t *start;
    size_t *edge;
    size_t nedges, cap;
    bool oom;
};

static bool waiting(const struct tide__coro *co)
{
    return co->state == TIDE__CORO_SUSPENDED && co->wait && !co->queued;
}

static void add_edge(struct tide__coro *co, void *arg)
{
    struct graph *g = arg;
    long j = census_index(g->loop->census, co);

    if (j < 0 || g->oom)
        return; /* ended: named in the description, not a node */
    if (g->nedges == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 16;
        size_t *e = tide__realloc(g->edge, cap * sizeof *e);
        if (!e) {
            g->oom = true;
            return;
        }
        g->edge = e;
        g->cap = cap;
    }
    g->edge[g->nedges++] = (size_t)j;
}

static int graph_build(struct graph *g)
{
    const struct tide__census *c = g->loop->census;

    g->n = c->n;
    g->start = tide__malloc((c->n + 1) * sizeof *g->start);
    if (!g->start)
        return -ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
        const struct tide__coro *co = c->co[i];
        g->start[i] = g->nedges;
        if (waiting(co) && co->wait->kind->blockers)
            co->wait->kind->blockers(g->loop, co->wait, add_edge, g);
    }
    g->start[c->n] = g->nedges;
    return g->oom ? -ENOMEM : 0;
}

/* A cycle, as census indexes in wait order, into path (n entries); its
 * length, or 0 if there is none. Depth-first, without recursion: state 0
 * unseen, 1 on the current path, 2 done. */
static size_t find_cycle(const struct graph *g, size_t *path)
{
    unsigned char *state = tide__calloc(g->n ? g->n : 1, 1);
    size_t *next = tide__malloc((g->n ? g->n : 1) * sizeof *next);
    size_t found = 0;

    if (!state || !next)
        goto out;
    for (size_t root = 0; root < g->n && !found; root++) {
        if (state[root])
            continue;
        size_t depth = 0;
        path[depth++] = root;
        state[root] = 1;
        next[root] = g->start[root];
        while (depth && !found) {
            size_t v = path[depth - 1];
            if (next[v] == g->start[v + 1]) {
                state[v] = 2;
                depth--;
                continue;
            }
            size_t w = g->edge[next[v]++];
            if (state[w] == 0) {
                state[w] = 1;
                next[w] = g->start[w];
                path[depth++] = w;
            } else if (state[w] == 1) {
                size_t from = 0; /* the cycle is path[from..depth) */
                while (path[from] != w)
                    from++;
                found = depth - from;
                memmove(path, path + from, found * sizeof *path);
            }
        }
    }
out:
    tide__free(state);
    tide__free(next);
    return found;
}

/* "task 'a' waits on task 'b', which waits on lock 'L' held by task 'a'":
 * a hop whose wait names a single coroutine runs on with ", which waits
 * on"; after one that names several (a gather), the next is named. */
static size_t put_cycle(tide_loop *loop, const struct graph *g,
                        const size_t *path, size_t len, char *buf, size_t n,
                        size_t used)
{
    char part[512];

    for (size_t i = 0; i < len; i++) {
        struct tide__coro *co = loop->census->co[path[i]];
        bool single =
            i > 0 && g->start[path[i - 1] + 1] - g->start[path[i - 1]] == 1;
        if (!single) {
            loop->coro_ops->name(co, part, sizeof part);
            used = tide__appendf(buf, n, used, "%s%s waits on ", i ? "; " : "",
                                 part);
        } else {
            used = tide__appendf(buf, n, used, ", which waits on ");
        }
        tide__wait_describe(loop, co, part, sizeof part);
        used = tide__appendf(buf, n, used, "%s", part);
    }
    return used;
}

/* Failures nobody read: perhaps why the others wait (a producer that
 * died leaves its queue's getters waiting; the queue cannot say so). */
static size_t put_failures(tide_loop *loop, char *buf, size_t n, size_t len)
{
    for (unsigned i = 0; loop->failures && i < MAX_FAILURES; i++) {
        const struct failure *f = &loop->failures->f[i];
        if (f->key)
            len = tide__appendf(buf, n, len,
                                "\n  %s failed with -%s and nobody read "
                                "the error: perhaps the cause",
                                f->name, tide_err_name(f->err));
    }
    return len;
}

#define MSG_SIZE 4096

char *tide__deadlock_find(tide_loop *loop)
{
    bool run_waits = loop->run_done && !*loop->run_done;

    if ((!loop->ncoros && !run_waits) || tide__loop_external_pending(loop))
        return NULL;
    char *msg = tide__malloc(MSG_SIZE);
    if (!msg)
        return NULL;
    size_t len = tide__appendf(msg, MSG_SIZE, 0, "deadlock: ");
    struct graph g = {.loop = loop};
    size_t *path = NULL, cycle = 0;
    if (tide__census_take(loop) == 0 && graph_build(&g) == 0 &&
        (path = tide__malloc((g.n ? g.n : 1) * sizeof *path)))
        cycle = find_cycle(&g, path);
    if (cycle) {
        len = put_cycle(loop, &g, path, cycle, msg, MSG_SIZE, len);
        len = tide__appendf(msg, MSG_SIZE, len, "\n");
    }
    len = tide__appendf(
        msg, MSG_SIZE, len,
        "%s and nothing can wake %s (no task ready, no "
        "timer armed, no I/O in flight, no other thread "
        "that could post)",
        loop->ncoros ? "every task waits"
                     : "run_until_complete waits on a future no task will "
                       "complete",
        loop->ncoros ? "them" : "it");
    put_failures(loop, msg, MSG_SIZE, len);
    tide__free(path);
    tide__free(g.start);
    tide__free(g.edge);
    tide__census_drop(loop);
    return msg;
}
