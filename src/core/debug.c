/* Debug mode: slow steps, pending tasks at close, reports, and the task
 * dump (on demand and on SIGQUIT/SIGUSR1).
 *
 * The loop core owns debug mode; the layer above only describes its
 * coroutines (the describe op of struct tide__coro_ops: a task's name and
 * creation site) and reports its own findings through tide__loop_report
 * (the future layer: errors never retrieved). The scheduler calls in here
 * only through loop->debug, the hooks set while debug mode is on, so a
 * loop without debug mode pays one predictable branch per step. Signals:
 * a debug loop watches SIGUSR1 and SIGQUIT in the process's registry
 * (signal.c), beside any handler the program set for them (both run), and
 * dumps in a callback on its next iteration. So a loop that is blocked
 * inside a callback does not dump until it returns: a hang where every
 * task waits (the usual kind) dumps at once.
 * SPDX-License-Identifier: MIT
 */
#include "core/signal.h"
#include "core/timer.h"
#include "core/watchdog.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DEFAULT_SLOW_NS 100000000 /* asyncio's slow_callback_duration */

static const int dump_signals[2] = {SIGUSR1, SIGQUIT};

void tide__loop_report(tide_loop *loop, const char *msg)
{
    if (loop->report)
        loop->report(loop, msg, loop->report_arg);
    else
        fprintf(stderr, "tide: %s\n", msg);
}

static void describe(tide_loop *loop, struct tide__coro *co, char *buf,
                     size_t n)
{
    if (loop->coro_ops && loop->coro_ops->describe)
        loop->coro_ops->describe(co, buf, n);
    else
        snprintf(buf, n, "coroutine %p", (void *)co);
}

/* What the scheduler calls while debug mode is on (see loop.h). */
static void step_begin(tide_loop *loop);
static void step_end(tide_loop *loop, struct tide__coro *co,
                     struct tide__call *c);
static bool stuck(tide_loop *loop);

static const struct tide__debug_hooks hooks = {
    .step_begin = step_begin,
    .step_end = step_end,
    .stuck = stuck,
};

/* A dump signal came: dump this loop's tasks (a callback on the loop). */
static void dump_on_signal(void *loop)
{
    tide_loop_dump(loop, STDERR_FILENO);
}

int tide_loop_set_debug(tide_loop *loop, bool on)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed)
        return -EINVAL;
    if (on && !loop->debug) {
        if (!loop->slow_ns)
            loop->slow_ns = DEFAULT_SLOW_NS;
        int err = tide__watch_open(loop);
        for (int i = 0; i < 2 && err == 0; i++)
            loop->dump_watch[i] =
                tide__signal_add(loop, dump_signals[i], dump_on_signal, loop,
                                 NULL, &err);
        if (err < 0) {
            tide__debug_forget(loop);
            return err;
        }
        if (loop->backend.why[0]) { /* a fallback, silent until now */
            char msg[224];
            snprintf(msg, sizeof msg, "backend %s: %s",
                     loop->backend.ops->name, loop->backend.why);
            tide__loop_report(loop, msg);
        }
    } else if (!on && loop->debug) {
        tide__debug_forget(loop);
    }
    loop->debug = on ? &hooks : NULL;
    return 0;
}

void tide__debug_forget(tide_loop *loop)
{
    tide__watch_close(loop);
    tide__deadlock_forget(loop);
    for (int i = 0; i < 2; i++) {
        tide__signal_remove(loop, loop->dump_watch[i]);
        loop->dump_watch[i] = NULL;
    }
}

bool tide_loop_get_debug(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    return loop && loop->debug;
}

int tide_loop_set_slow_callback_duration(tide_loop *loop, double seconds)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed || isnan(seconds) || seconds < 0)
        return -EINVAL;
    loop->slow_ns = tide__ns_of(seconds);
    if (!loop->slow_ns)
        loop->slow_ns = 1;
    tide__watch_set_slow(loop);
    return 0;
}

int tide_loop_set_report_handler(tide_loop *loop, tide_report_fn fn, void *arg)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed)
        return -EINVAL;
    loop->report = fn;
    loop->report_arg = arg;
    return 0;
}

void tide__debug_open(tide_loop *loop)
{
    const char *env = getenv("TIDE_DEBUG");

    if (env && *env && strcmp(env, "0") != 0)
        tide_loop_set_debug(loop, true);
}

static void step_begin(tide_loop *loop)
{
    loop->step_start = tide__clock_ns();
    tide__watch_begin(loop);
}

static void step_end(tide_loop *loop, struct tide__coro *co,
                     struct tide__call *c)
{
    int64_t took = tide__clock_ns() - loop->step_start;
    char who[256], msg[400];

    tide__watch_end(loop);
    if (took < loop->slow_ns || !loop->step_start)
        return;
    if (co)
        describe(loop, co, who, sizeof who);
    else
        snprintf(who, sizeof who, "callback %p", (void *)c);
    snprintf(msg, sizeof msg, "%s held the loop for %.3f s (slow step)", who,
             (double)took / 1e9);
    char *caught = tide__watch_trace(loop, msg); /* + where it was */
    tide__loop_report(loop, caught ? caught : msg);
    tide__free(caught);
    loop->step_start = tide__clock_ns();
}

static void report_pending(tide_loop *loop, struct tide__coro *co, void *arg)
{
    char who[256], msg[400];

    (void)arg;
    describe(loop, co, who, sizeof who);
    snprintf(msg, sizeof msg,
             "%s was still pending when the loop closed; it is cancelled",
             who);
    tide__loop_report(loop, msg);
}

void tide__debug_close(tide_loop *loop)
{
    tide__loop_each_coro(loop, report_pending, NULL);
}

/* ---- compact tasks' one rule ---------------------------------------------
 */

void tide__debug_check_arg(tide_loop *loop, const void *arg, const char *to)
{
    struct tide__coro *co = loop->current;
    const struct tide__stack *s = loop->compact_stack;
    const char *p = arg;

    if (!co || co->pool != TIDE__POOL_COMPACT || !s || p < s->lo ||
        p >= s->lo + s->size)
        return;
    char who[256], msg[512];
    describe(loop, co, who, sizeof who);
    snprintf(msg, sizeof msg,
             "%s is compact and passed a pointer into its "
             "own stack to %s: its frames are copied away while it is "
             "suspended (pass heap memory instead)",
             who, to);
    tide__loop_report(loop, msg);
}

/* ---- the dump ----------------------------------------------------------- */

/* Bytes of the stack that have been touched: resident pages counted down
 * from the top until the first one never touched. */
static size_t high_water(const struct tide__stack *st)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *top = (char *)st->lo + st->size;
    char *lo = (char *)((uintptr_t)st->lo & ~(uintptr_t)(page - 1));
    size_t npages = (size_t)(top - lo + page - 1) / page;
    unsigned char vec[256];
    size_t touched = 0;

    /* Walk down in windows of 256 pages. */
    for (size_t done = 0; done < npages;) {
        size_t w = npages - done < 256 ? npages - done : 256;
        char *start = lo + (npages - done - w) * page;
        if (mincore(start, w * page, vec) < 0)
            break;
        for (size_t i = w; i-- > 0;) {
            if (!(vec[i] & 1))
                return touched;
            touched += page;
        }
        done += w;
    }
    return touched;
}

/* Where dump lines go: an fd (tide_loop_dump), or a stream (a report). */
struct dump {
    int fd;
    FILE *mem; /* if not NULL, instead of fd */
    int n;
    int err;
};

static void emit(struct dump *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void emit(struct dump *d, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = d->mem ? vfprintf(d->mem, fmt, ap) : vdprintf(d->fd, fmt, ap);
    va_end(ap);
    if (rc < 0 && !d->err)
        d->err = errno ? -errno : -EIO;
}

static void dump_one(tide_loop *loop, struct tide__coro *co, void *arg)
{
    struct dump *d = arg;
    char who[256];
    const char *state;

    switch (co->state) {
    case TIDE__CORO_NEW:
        state = "new";
        break;
    case TIDE__CORO_RUNNING:
        state = "running";
        break;
    default:
        state = co->queued ? "ready" : "waiting";
    }
    describe(loop, co, who, sizeof who);
    char what[512] = "";
    if (co->state == TIDE__CORO_SUSPENDED && co->wait && !co->queued) {
        memcpy(what, " on ", 5);
        tide__wait_describe(loop, co, what + 4, sizeof what - 4);
    }
    if (co->pool == TIDE__POOL_COMPACT) {
        emit(d, "  %s: %s%s, compact, frames %zu bytes\n", who, state, what,
             tide__compact_frames(loop, co));
    } else {
        size_t hw = co->stack ? high_water(co->stack) : 0;
        emit(d, "  %s: %s%s, stack %zu KiB of %zu KiB\n", who, state, what,
             hw / 1024, co->stack ? co->stack->size / 1024 : 0);
    }
    d->n++;
}

/* The dump: a header line, then one line per unfinished coroutine. */
static int dump_to(tide_loop *loop, struct dump *d)
{
    emit(d, "tide: %zu task(s), %zu ready, %zu timer(s)\n", loop->ncoros,
         loop->ready.count, loop->timers.armed);
    if (d->err)
        return d->err;
    /* Without a census (no memory) a lock's holder is not named. */
    int taken = tide__census_take(loop);
    tide__loop_each_coro(loop, dump_one, d);
    if (taken == 0)
        tide__census_drop(loop);
    return d->err ? d->err : d->n;
}

int tide_loop_dump(tide_loop *loop, int fd)
{
    struct dump d = {.fd = fd};

    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed || fd < 0)
        return -EINVAL;
    return dump_to(loop, &d);
}

/* The run would wait forever: if nothing can wake the loop, report why
 * (the wait-for cycle, or that every task waits) with the task dump, and
 * end the run (-EDEADLK). */
static bool stuck(tide_loop *loop)
{
    char *why = tide__deadlock_find(loop);
    char *text = NULL;
    size_t size = 0;

    if (!why)
        return false;
    FILE *mem = open_memstream(&text, &size);
    if (mem) {
        struct dump d = {.fd = -1, .mem = mem};
        fprintf(mem, "%s\n", why);
        dump_to(loop, &d);
        fclose(mem);
        if (size && text[size - 1] == '\n')
            text[size - 1] = '\0';
    }
    tide__loop_report(loop, text ? text : why);
    free(text); /* open_memstream's, from the C library */
    tide__free(why);
    return true;
}
