/* The event loop: new/close, run_until_complete, run_forever, stop,
 * is_running, time, the virtual clock, nesting (nest_asyncio: a run from a
 * task or a callback while the loop runs, other tasks keep running), close
 * on a running loop (-EBUSY), close cancelling pending tasks and letting
 * their cleanup run, the per-thread default loop, stats and the small
 * library-level functions (switch method, strerror, backend).
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- shared bodies ------------------------------------------------- */

static void *return_arg(void *arg)
{
    return arg;
}

static void *fail_enoent(void *arg)
{
    (void)arg;
    return tide_fail(-ENOENT);
}

static void *yield_n(void *arg)
{
    long n = (long)(intptr_t)arg;

    for (long i = 0; i < n; i++)
        CHECK_EQ(tide_sleep(0), 0);
    return arg;
}

static void set_result_cb(void *f)
{
    CHECK_EQ(tide_future_set_result(f, IPTR(9)), 0);
}

static void count_cb(void *arg)
{
    ++*(int *)arg;
}

/* ---- new / close / run_until_complete ------------------------------ */

TEST(new_loop_is_empty_and_closes)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    tide_loop_stats st = loop_stats(loop);
    CHECK_EQ(st.tasks, 0);
    CHECK_EQ(st.ready, 0);
    CHECK_EQ(st.timers, 0);
    CHECK_EQ(st.handles, 0);
    CHECK_EQ(st.stacks_in_use, 0);
    CHECK(!tide_loop_is_running(loop));
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(many_loops_at_once)
{
    tide_loop *loops[16];
    for (int i = 0; i < 16; i++) {
        loops[i] = tide_loop_new();
        CHECK_NOT_NULL(loops[i]);
    }
    for (int i = 0; i < 16; i++) {
        tide_future *t = tide_create_task(loops[i], return_arg, IPTR(i));
        void *r = NULL;
        CHECK_EQ(tide_run_until_complete(loops[i], t, &r), 0);
        CHECK_EQ(PINT(r), i);
        tide_future_release(t);
    }
    for (int i = 15; i >= 0; i--)
        CHECK_EQ(tide_loop_close(loops[i]), 0);
    LEAK_GATE();
}

TEST(run_until_complete_returns_result)
{
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, return_arg, IPTR(42));
    CHECK_NOT_NULL(t);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 42);
    CHECK(tide_future_done(t));
    /* Already done: returns at once, result NULL is allowed. */
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(run_until_complete_returns_error)
{
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, fail_enoent, NULL);
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -ENOENT);
    CHECK_ERR(tide_future_result(t, NULL), -ENOENT);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(run_until_complete_plain_future_set_by_callback)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    CHECK_NOT_NULL(f);
    CHECK(tide_call_soon(loop, set_result_cb, f) != 0);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, f, &r), 0);
    CHECK_EQ(PINT(r), 9);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(run_until_complete_bad_args)
{
    tide_loop *loop = tide_loop_new();
    tide_loop *other = tide_loop_new();
    CHECK_ERR(tide_run_until_complete(loop, NULL, NULL), -EINVAL);
    tide_future *f = tide_future_new(other);
    CHECK_ERR(tide_run_until_complete(loop, f, NULL), -EINVAL);
    CHECK(!tide_future_done(f));
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(other), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(stop_before_done_gives_eintr)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    CHECK(tide_call_soon(loop, harness_stop_cb, loop) != 0);
    CHECK_ERR(tide_run_until_complete(loop, f, NULL), -EINTR);
    CHECK(!tide_future_done(f));
    CHECK(!tide_loop_is_running(loop));
    /* The loop is usable again and the stop request is spent. */
    CHECK(tide_call_soon(loop, set_result_cb, f) != 0);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, f, &r), 0);
    CHECK_EQ(PINT(r), 9);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(stop_when_not_running_is_harmless)
{
    tide_loop *loop = tide_loop_new();
    tide_loop_stop(loop);
    tide_loop_stop(loop);
    tide_future *t = tide_create_task(loop, yield_n, IPTR(5));
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 5);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- run_forever / stop -------------------------------------------- */

static char order[64];

static void append_cb(void *tag)
{
    strcat(order, tag);
}

TEST(run_forever_stops_after_current_iteration)
{
    tide_loop *loop = tide_loop_new();
    order[0] = '\0';
    tide_call_soon(loop, append_cb, "a");
    tide_call_soon(loop, harness_stop_cb, loop);
    tide_call_soon(loop, append_cb, "b");
    CHECK_EQ(tide_run_forever(loop), 0);
    /* Everything that was ready in the stopping iteration ran. */
    CHECK_STR_EQ(order, "ab");
    CHECK(!tide_loop_is_running(loop));
    CHECK_EQ(loop_stats(loop).handles, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct spinner {
    tide_loop *loop;
    int runs;
    int stop_at;
};

static void spin_cb(void *arg)
{
    struct spinner *s = arg;

    s->runs++;
    if (s->runs == s->stop_at)
        tide_loop_stop(s->loop);
    else
        CHECK(tide_call_soon(s->loop, spin_cb, s) != 0);
}

TEST(stop_from_self_rescheduling_callback)
{
    tide_loop *loop = tide_loop_new();
    struct spinner s = {loop, 0, 1000};
    CHECK(tide_call_soon(loop, spin_cb, &s) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(s.runs, 1000);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *stopper_task(void *loop)
{
    CHECK_EQ(tide_sleep(0), 0);
    tide_loop_stop(loop);
    return NULL;
}

TEST(run_forever_stopped_by_task)
{
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, stopper_task, loop);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK(tide_future_done(t));
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static int resumed_after_stop;

static void *stop_then_yield(void *loop)
{
    tide_loop_stop(loop);
    CHECK_EQ(tide_sleep(0), 0);
    resumed_after_stop = 1;
    return NULL;
}

TEST(stop_returns_before_a_yielding_task_resumes)
{
    tide_loop *loop = tide_loop_new();
    resumed_after_stop = 0;
    tide_future *t = tide_create_task(loop, stop_then_yield, loop);
    CHECK_EQ(tide_run_forever(loop), 0);
    /* sleep(0) resumes on a later step, after the stopping iteration. */
    CHECK_EQ(resumed_after_stop, 0);
    CHECK(!tide_future_done(t));
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_EQ(resumed_after_stop, 1);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static int late_started;

static void *late_body(void *arg)
{
    (void)arg;
    late_started = 1;
    return NULL;
}

static void *spawn_and_return(void *loop)
{
    tide_future *t = tide_create_task(loop, late_body, NULL);
    tide_future_release(t);
    return NULL;
}

TEST(run_until_complete_returns_before_later_steps)
{
    tide_loop *loop = tide_loop_new();
    late_started = 0;
    tide_future *t = tide_create_task(loop, spawn_and_return, loop);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    /* The task made in t's last step starts on a later step: the run
     * returned first. */
    CHECK_EQ(late_started, 0);
    CHECK_EQ(loop_stats(loop).tasks, 1);
    run_once(loop);
    CHECK_EQ(late_started, 1);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- is_running / time / virtual clock ----------------------------- */

struct running_probe {
    tide_loop *loop;
    int in_task;
    int in_cb;
};

static void probe_cb(void *arg)
{
    struct running_probe *p = arg;

    p->in_cb = tide_loop_is_running(p->loop) ? 1 : -1;
}

static void *probe_task(void *arg)
{
    struct running_probe *p = arg;

    p->in_task = tide_loop_is_running(p->loop) ? 1 : -1;
    CHECK(tide_get_event_loop() == p->loop);
    return NULL;
}

TEST(is_running_inside_tasks_and_callbacks)
{
    tide_loop *loop = tide_loop_new();
    struct running_probe p = {loop, 0, 0};
    CHECK(!tide_loop_is_running(loop));
    tide_call_soon(loop, probe_cb, &p);
    tide_future *t = tide_create_task(loop, probe_task, &p);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_EQ(p.in_task, 1);
    CHECK_EQ(p.in_cb, 1);
    CHECK(!tide_loop_is_running(loop));
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct time_probe {
    tide_loop *loop;
    double before, after;
};

static void time_cb(void *arg)
{
    struct time_probe *p = arg;

    p->before = tide_loop_time(p->loop);
    harness_busy_wait(0.01);
    p->after = tide_loop_time(p->loop);
}

/* tide_loop_time is the monotonic clock now, as asyncio's loop.time():
 * a step's own computation shows in it. */
TEST(loop_time_is_the_clock_now)
{
    tide_loop *loop = tide_loop_new();
    struct time_probe p = {loop, 0, 0};
    double t0 = tide_loop_time(loop);
    CHECK(!isnan(t0));
    tide_call_soon(loop, time_cb, &p);
    run_once(loop);
    CHECK(p.before >= t0);
    CHECK(p.after >= p.before + 0.01);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double mono = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    double lt = tide_loop_time(loop); /* read after mono: the same clock */
    CHECK(lt >= mono - 1e-6);
    CHECK(lt <= mono + 0.5);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct long_step {
    tide_loop *loop;
    bool update;
    double elapsed;
};

static void *busy_then_sleep(void *arg)
{
    struct long_step *s = arg;

    harness_busy_wait(0.06); /* a long stretch of computation */
    if (s->update)
        CHECK_EQ(tide_loop_update_time(s->loop), 0);
    double t0 = harness_now();
    CHECK_EQ(tide_sleep(0.01), 0);
    s->elapsed = harness_now() - t0;
    return NULL;
}

/* HAZARDS B18: a delay counts from the moment of the call (asyncio's,
 * Go's and Tokio's rule), so a sleep after a long step still lasts its
 * whole delay, with or without tide_loop_update_time. */
TEST(b18_long_step_then_sleep_with_and_without_update_time)
{
    for (int update = 0; update < 2; update++) {
        tide_loop *loop = tide_loop_new();
        struct long_step s = {loop, update != 0, -1};
        tide_future *t = tide_create_task(loop, busy_then_sleep, &s);
        CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
        CHECK(s.elapsed >= 0.01 - 1e-4);
        tide_future_release(t);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    tide_loop *v = new_virtual_loop();
    double t0 = tide_loop_time(v);
    harness_busy_wait(0.002);
    CHECK_EQ(tide_loop_update_time(v), 0); /* the virtual clock stays */
    CHECK(tide_loop_time(v) == t0);
    tide_future *keep = tide_future_new(v);
    CHECK_EQ(tide_loop_close(v), 0);
    CHECK_ERR(tide_loop_update_time(v), -EINVAL);
    tide_future_release(keep);
    LEAK_GATE();
}

static void *sleep_and_time(void *loop)
{
    double t0 = tide_loop_time(loop);
    CHECK_EQ(tide_sleep(0.02), 0);
    double t1 = tide_loop_time(loop);
    CHECK(t1 >= t0 + 0.02 - EARLY);
    return NULL;
}

TEST(real_sleep_does_not_return_early)
{
    tide_loop *loop = tide_loop_new();
    double start = harness_now();
    tide_future *t = tide_create_task(loop, sleep_and_time, loop);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    /* Loop time counts from the iteration that started the sleep, which
     * began after `start`. */
    CHECK(harness_now() - start >= 0.02 - 1e-4);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *long_sleep(void *loop)
{
    double t0 = tide_loop_time(loop);
    CHECK_EQ(tide_sleep(3600), 0);
    double t1 = tide_loop_time(loop);
    CHECK(t1 >= t0 + 3600 - EARLY);
    CHECK(t1 < t0 + 3601);
    return NULL;
}

TEST(virtual_clock_jumps_to_next_deadline)
{
    tide_loop *loop = new_virtual_loop();
    double start = harness_now();
    tide_future *t = tide_create_task(loop, long_sleep, loop);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(harness_now() - start < 2.0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *set_clock_while_running(void *loop)
{
    CHECK_ERR(tide_loop_set_virtual_clock(loop, true), -EBUSY);
    return NULL;
}

TEST(virtual_clock_refused_while_running)
{
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, set_clock_while_running, loop);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_set_virtual_clock(loop, true), 0);
    CHECK_EQ(tide_loop_set_virtual_clock(loop, false), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- nesting (nest_asyncio) ---------------------------------------- */

struct nest {
    tide_loop *loop;
    int ticks;
    int ticks_at_nest;
    int ticks_in_inner;
    int inner_done;
    int depth;
};

static void *ticker(void *arg)
{
    struct nest *n = arg;

    for (int i = 0; i < 50; i++) {
        n->ticks++;
        if (tide_sleep(0) < 0)
            break;
    }
    return NULL;
}

static void *inner(void *arg)
{
    struct nest *n = arg;

    for (int i = 0; i < 5; i++)
        CHECK_EQ(tide_sleep(0), 0);
    CHECK_EQ(tide_sleep(0.001), 0);
    n->ticks_in_inner = n->ticks;
    n->inner_done = 1;
    return IPTR(7);
}

static void *outer(void *arg)
{
    struct nest *n = arg;
    tide_future *self = tide_current_task();
    tide_future *t = tide_create_task(NULL, inner, n);

    CHECK_NOT_NULL(t);
    CHECK(tide_future_get_loop(t) == n->loop);
    n->ticks_at_nest = n->ticks;
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(n->loop, t, &r), 0);
    CHECK_EQ(PINT(r), 7);
    CHECK(n->inner_done);
    CHECK(tide_loop_is_running(n->loop));
    CHECK(tide_current_task() == self);
    tide_future_release(t);
    /* After the nested run the task still suspends and resumes normally. */
    CHECK_EQ(tide_sleep(0), 0);
    return IPTR(1);
}

TEST(nested_run_from_task_lets_others_run)
{
    tide_loop *loop = tide_loop_new();
    struct nest n = {.loop = loop};
    tide_future *tk = tide_create_task(loop, ticker, &n);
    tide_future *o = tide_create_task(loop, outer, &n);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, o, &r), 0);
    CHECK_EQ(PINT(r), 1);
    /* The ticker kept running while outer was inside the nested run. */
    CHECK(n.ticks_in_inner > n.ticks_at_nest);
    CHECK_EQ(tide_run_until_complete(loop, tk, NULL), 0);
    CHECK_EQ(n.ticks, 50);
    tide_future_release(tk);
    tide_future_release(o);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void nest_cb(void *arg)
{
    struct nest *n = arg;
    tide_future *t = tide_create_task(n->loop, inner, n);

    n->ticks_at_nest = n->ticks;
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(n->loop, t, &r), 0);
    CHECK_EQ(PINT(r), 7);
    CHECK(tide_current_task() == NULL);
    n->depth = 1;
    tide_future_release(t);
}

TEST(nested_run_from_callback_lets_others_run)
{
    tide_loop *loop = tide_loop_new();
    struct nest n = {.loop = loop};
    tide_future *tk = tide_create_task(loop, ticker, &n);
    CHECK(tide_call_soon(loop, nest_cb, &n) != 0);
    CHECK_EQ(tide_run_until_complete(loop, tk, NULL), 0);
    CHECK_EQ(n.depth, 1);
    CHECK(n.inner_done);
    CHECK(n.ticks_in_inner > n.ticks_at_nest);
    tide_future_release(tk);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *nest_deeper(void *arg)
{
    struct nest *n = arg;

    if (n->depth++ < 3) {
        tide_future *t = tide_create_task(n->loop, nest_deeper, n);
        void *r = NULL;
        CHECK_EQ(tide_run_until_complete(n->loop, t, &r), 0);
        tide_future_release(t);
        return IPTR(PINT(r) + 1);
    }
    CHECK_EQ(tide_sleep(0.001), 0);
    return IPTR(100);
}

TEST(nested_runs_three_deep)
{
    tide_loop *loop = tide_loop_new();
    struct nest n = {.loop = loop};
    tide_future *tk = tide_create_task(loop, ticker, &n);
    tide_future *t = tide_create_task(loop, nest_deeper, &n);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 103);
    CHECK_EQ(tide_run_until_complete(loop, tk, NULL), 0);
    tide_future_release(tk);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct nested_forever {
    tide_loop *loop;
    int forever_rc;
    int returned;
};

static void *run_forever_inside(void *arg)
{
    struct nested_forever *s = arg;

    s->forever_rc = tide_run_forever(s->loop);
    s->returned = 1;
    return IPTR(3);
}

static void *stop_later(void *arg)
{
    struct nested_forever *s = arg;

    for (int i = 0; i < 3; i++)
        CHECK_EQ(tide_sleep(0), 0);
    CHECK(!s->returned);
    tide_loop_stop(s->loop);
    return NULL;
}

TEST(stop_ends_only_the_innermost_run)
{
    tide_loop *loop = tide_loop_new();
    struct nested_forever s = {loop, -1, 0};
    tide_future *a = tide_create_task(loop, run_forever_inside, &s);
    tide_future *b = tide_create_task(loop, stop_later, &s);
    void *r = NULL;
    /* The outer run is not stopped: it returns a's result, not -EINTR. */
    CHECK_EQ(tide_run_until_complete(loop, a, &r), 0);
    CHECK_EQ(PINT(r), 3);
    CHECK_EQ(s.forever_rc, 0);
    CHECK(tide_future_done(b));
    tide_future_release(a);
    tide_future_release(b);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct inner_stop {
    tide_loop *loop;
    tide_future *never;
    int rc;
};

static void *nested_on_never(void *arg)
{
    struct inner_stop *s = arg;

    s->rc = tide_run_until_complete(s->loop, s->never, NULL);
    return IPTR(4);
}

static void *stop_once(void *arg)
{
    struct inner_stop *s = arg;

    CHECK_EQ(tide_sleep(0.001), 0);
    tide_loop_stop(s->loop);
    return NULL;
}

TEST(stop_gives_eintr_to_the_nested_run_only)
{
    tide_loop *loop = tide_loop_new();
    struct inner_stop s = {loop, tide_future_new(loop), 1};
    tide_future *a = tide_create_task(loop, nested_on_never, &s);
    tide_future *b = tide_create_task(loop, stop_once, &s);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, a, &r), 0);
    CHECK_EQ(PINT(r), 4);
    CHECK_ERR(s.rc, -EINTR);
    CHECK(!tide_future_done(s.never));
    CHECK(tide_future_done(b));
    tide_future_release(a);
    tide_future_release(b);
    tide_future_release(s.never);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- close --------------------------------------------------------- */

static void *close_inside(void *loop)
{
    CHECK_ERR(tide_loop_close(loop), -EBUSY);
    CHECK(tide_loop_is_running(loop));
    CHECK_EQ(tide_sleep(0), 0);
    return IPTR(5);
}

static void close_cb(void *loop)
{
    CHECK_ERR(tide_loop_close(loop), -EBUSY);
}

TEST(close_on_running_loop_is_ebusy)
{
    tide_loop *loop = tide_loop_new();
    CHECK(tide_call_soon(loop, close_cb, loop) != 0);
    tide_future *t = tide_create_task(loop, close_inside, loop);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 5);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct victim {
    int started;
    int sleep_rc;
    int cleanup_rc;
    int cleaned;
};

static void *victim_body(void *arg)
{
    struct victim *v = arg;

    v->started = 1;
    v->sleep_rc = tide_sleep(1e9);
    if (v->sleep_rc == -ECANCELED) {
        /* Cleanup that suspends: close asks again, on every round, until
         * the task has finished, so the wait is cut short but the
         * cleanup runs to its end. */
        v->cleanup_rc = tide_sleep(5.0);
        v->cleaned = 1;
        return tide_fail(-ECANCELED);
    }
    return NULL;
}

static void *never_started(void *arg)
{
    ((struct victim *)arg)->started = 1;
    return NULL;
}

TEST(close_cancels_pending_tasks_and_runs_cleanup)
{
    tide_loop *loop = tide_loop_new();
    struct victim v = {0, 1, 1, 0}, u = {0, 1, 1, 0};
    tide_future *t = tide_create_task(loop, victim_body, &v);
    run_once(loop);
    CHECK_EQ(v.started, 1);
    tide_future *w = tide_create_task(loop, never_started, &u);
    CHECK_EQ(loop_stats(loop).tasks, 2);
    tide_future_release(t); /* the loop keeps its own reference */
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_ERR(v.sleep_rc, -ECANCELED);
    CHECK_ERR(v.cleanup_rc, -ECANCELED); /* close asked again */
    CHECK_EQ(v.cleaned, 1);
    CHECK_EQ(u.started, 0); /* not started: cancelled without running */
    CHECK(tide_future_done(w));
    CHECK(tide_future_cancelled(w));
    CHECK_ERR(tide_future_result(w, NULL), -ECANCELED);
    tide_future_release(w);
    LEAK_GATE();
}

static void *swallow_and_return(void *arg)
{
    struct victim *v = arg;

    v->sleep_rc = tide_sleep(1e9);
    v->cleaned = 1;
    return IPTR(11);
}

TEST(close_task_that_swallows_cancel_keeps_its_result)
{
    tide_loop *loop = tide_loop_new();
    struct victim v = {0, 1, 1, 0};
    tide_future *t = tide_create_task(loop, swallow_and_return, &v);
    run_once(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_ERR(v.sleep_rc, -ECANCELED);
    CHECK(tide_future_done(t));
    CHECK(!tide_future_cancelled(t));
    void *r = NULL;
    CHECK_EQ(tide_future_result(t, &r), 0);
    CHECK_EQ(PINT(r), 11);
    tide_future_release(t);
    LEAK_GATE();
}

static void *await_forever(void *f)
{
    return tide_fail(tide_await(f, NULL) == -ECANCELED ? -ECANCELED : -EPROTO);
}

TEST(close_cancels_future_awaited_by_task)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    tide_future *t = tide_create_task(loop, await_forever, f);
    run_once(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK(tide_future_cancelled(f));
    CHECK(tide_future_cancelled(t));
    CHECK_ERR(tide_future_result(t, NULL), -ECANCELED);
    tide_future_release(t);
    tide_future_release(f);
    LEAK_GATE();
}

static int spawned_in_cleanup_ran;

static void *spawned_in_cleanup(void *arg)
{
    (void)arg;
    spawned_in_cleanup_ran = 1;
    return NULL;
}

static void *cleanup_spawns(void *arg)
{
    struct victim *v = arg;

    v->sleep_rc = tide_sleep(1e9);
    /* Cleanup makes a new task: close must cancel it too and not hang. */
    tide_future *t = tide_create_task(NULL, spawned_in_cleanup, NULL);
    CHECK_NOT_NULL(t);
    tide_future_release(t);
    t = tide_create_task(NULL, victim_body, v + 1);
    CHECK_NOT_NULL(t);
    tide_future_release(t);
    v->cleaned = 1;
    return NULL;
}

TEST(close_cancels_tasks_made_during_close)
{
    tide_loop *loop = tide_loop_new();
    struct victim v[2] = {{0, 1, 1, 0}, {0, 1, 1, 0}};
    spawned_in_cleanup_ran = 0;
    tide_future *t = tide_create_task(loop, cleanup_spawns, v);
    run_once(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_ERR(v[0].sleep_rc, -ECANCELED);
    CHECK_EQ(v[0].cleaned, 1);
    /* Made during close: cancelled before they start, so never run. */
    CHECK_EQ(spawned_in_cleanup_ran, 0);
    CHECK_EQ(v[1].started, 0);
    CHECK(tide_future_done(t));
    tide_future_release(t);
    LEAK_GATE();
}

TEST(close_drops_callbacks_and_timers)
{
    tide_loop *loop = tide_loop_new();
    int n = 0;
    CHECK(tide_call_soon(loop, count_cb, &n) != 0);
    CHECK(tide_call_later(loop, 0.5, count_cb, &n) != 0);
    CHECK(tide_call_later(loop, 100.0, count_cb, &n) != 0);
    CHECK(tide_call_at(loop, tide_loop_time(loop) + 5, count_cb, &n) != 0);
    tide_loop_stats st = loop_stats(loop);
    CHECK_EQ(st.handles, 4);
    CHECK_EQ(st.timers, 3);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(n, 0);
    LEAK_GATE();
}

TEST(close_leaves_done_futures_readable)
{
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, return_arg, IPTR(77));
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    void *r = NULL;
    CHECK(tide_future_done(t));
    CHECK_EQ(tide_future_result(t, &r), 0);
    CHECK_EQ(PINT(r), 77);
    CHECK_NULL(tide_future_get_loop(t));
    CHECK(tide_future_is_task(t));
    tide_future_release(t);
    LEAK_GATE();
}

/* ---- default loop -------------------------------------------------- */

TEST(get_event_loop_makes_and_keeps_a_default)
{
    tide_loop *d = tide_get_event_loop();
    CHECK_NOT_NULL(d);
    CHECK(tide_get_event_loop() == d);
    tide_future *t = tide_create_task(NULL, return_arg, IPTR(4));
    CHECK(tide_future_get_loop(t) == d);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(NULL, t, &r), 0);
    CHECK_EQ(PINT(r), 4);
    tide_future_release(t);
    /* Closing the default loop clears the default. */
    CHECK_EQ(tide_loop_close(d), 0);
    tide_loop *d2 = tide_get_event_loop();
    CHECK_NOT_NULL(d2);
    t = tide_create_task(NULL, return_arg, IPTR(5));
    CHECK(tide_future_get_loop(t) == d2);
    CHECK_EQ(tide_run_until_complete(d2, t, &r), 0);
    CHECK_EQ(PINT(r), 5);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(d2), 0);
    LEAK_GATE();
}

TEST(set_event_loop_sets_and_clears_the_default)
{
    tide_loop *loop = tide_loop_new();
    tide_set_event_loop(loop);
    CHECK(tide_get_event_loop() == loop);
    int n = 0;
    CHECK(tide_call_soon(NULL, count_cb, &n) != 0);
    CHECK_EQ(loop_stats(loop).handles, 1);
    tide_future *f = tide_future_new(NULL);
    CHECK(tide_future_get_loop(f) == loop);
    run_once(loop);
    CHECK_EQ(n, 1);
    tide_set_event_loop(NULL);
    tide_loop *d = tide_get_event_loop();
    CHECK_NOT_NULL(d);
    CHECK(d != loop); /* loop is still alive, so d is another loop */
    CHECK_EQ(tide_loop_close(d), 0);
    tide_future_release(f);
    tide_set_event_loop(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    /* Cleared by the close: a fresh default works. */
    d = tide_get_event_loop();
    CHECK_NOT_NULL(d);
    tide_future *t = tide_create_task(d, return_arg, NULL);
    CHECK_EQ(tide_run_until_complete(d, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(d), 0);
    LEAK_GATE();
}

static void *get_loop_in_task(void *loop)
{
    CHECK(tide_get_event_loop() == loop);
    tide_future *t = tide_create_task(NULL, return_arg, NULL);
    CHECK(tide_future_get_loop(t) == loop);
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    return NULL;
}

TEST(running_loop_wins_over_the_default)
{
    tide_loop *def = tide_loop_new();
    tide_loop *loop = tide_loop_new();
    tide_set_event_loop(def);
    tide_future *t = tide_create_task(loop, get_loop_in_task, loop);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(tide_get_event_loop() == def);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(tide_loop_close(def), 0);
    LEAK_GATE();
}

static void *thread_default_loop(void *arg)
{
    (void)arg;
    tide_loop *d = tide_get_event_loop();
    CHECK_NOT_NULL(d);
    tide_future *t = tide_create_task(d, yield_n, IPTR(3));
    CHECK_EQ(tide_run_until_complete(d, t, NULL), 0);
    tide_future_release(t);
    return d; /* never closed: freed at thread exit */
}

TEST(default_loop_is_per_thread_and_freed_at_exit)
{
    tide_loop *mine = tide_get_event_loop();
    pthread_t th;
    void *theirs = NULL;
    CHECK_EQ(pthread_create(&th, NULL, thread_default_loop, NULL), 0);
    CHECK_EQ(pthread_join(th, &theirs), 0);
    CHECK(theirs != NULL && theirs != (void *)mine);
    CHECK_EQ(tide_loop_close(mine), 0);
    LEAK_GATE(); /* the thread's loop is gone with its thread */
}

static void *run_in_thread(void *arg)
{
    long base = (long)PINT(arg);
    void *r = NULL;

    for (int i = 0; i < 20; i++) {
        int rc = tide_run(yield_n, IPTR(base + i), &r);
        if (rc != 0 || PINT(r) != base + i)
            return IPTR(-1);
    }
    return IPTR(1);
}

TEST(loops_on_several_threads_at_once)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, run_in_thread, IPTR(i * 3 + 1)),
                 0);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        CHECK_EQ(pthread_join(th[i], &r), 0);
        CHECK_EQ(PINT(r), 1);
    }
    LEAK_GATE();
}

/* ---- stats and settings -------------------------------------------- */

static void *sleep_a_while(void *arg)
{
    (void)arg;
    return tide_sleep(10) == 0 ? NULL : tide_fail(-EPROTO);
}

TEST(stats_count_what_the_loop_holds)
{
    SKIP_IF_COMPACT("tasks share one stack");
    tide_loop *loop = new_virtual_loop();
    int n = 0;
    CHECK_ERR(tide_loop_get_stats(loop, NULL), -EINVAL);
    tide_future *a = tide_create_task(loop, sleep_a_while, NULL);
    tide_future *b = tide_create_task(loop, sleep_a_while, NULL);
    CHECK(tide_call_soon(loop, count_cb, &n) != 0);
    CHECK(tide_call_later(loop, 1, count_cb, &n) != 0);
    tide_loop_stats st = loop_stats(loop);
    CHECK_EQ(st.tasks, 2);
    CHECK_EQ(st.ready, 3);
    CHECK_EQ(st.handles, 2);
    CHECK_EQ(st.timers, 1);
    CHECK_EQ(st.stacks_in_use, 0);
    uint64_t it0 = st.iterations;
    run_once(loop);
    st = loop_stats(loop);
    CHECK_EQ(st.tasks, 2);
    CHECK_EQ(st.ready, 0);
    CHECK_EQ(st.handles, 1);
    CHECK_EQ(st.timers, 3); /* two sleeps and one call_later */
    CHECK_EQ(st.stacks_in_use, 2);
    CHECK(st.iterations > it0);
    CHECK_EQ(tide_run_until_complete(loop, b, NULL), 0);
    CHECK_EQ(tide_run_until_complete(loop, a, NULL), 0);
    st = loop_stats(loop);
    CHECK_EQ(n, 2);
    CHECK_EQ(st.tasks, 0);
    CHECK_EQ(st.timers, 0);
    CHECK_EQ(st.handles, 0);
    CHECK_EQ(st.stacks_in_use, 0);
    tide_future_release(a);
    tide_future_release(b);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(set_stack_size_bounds)
{
    tide_loop *loop = tide_loop_new();
    CHECK_ERR(tide_loop_set_stack_size(loop, 16 * 1024 - 1), -EINVAL);
    CHECK_ERR(tide_loop_set_stack_size(loop, 0), -EINVAL);
    CHECK_ERR(tide_loop_set_stack_size(loop, ((size_t)1 << 30) + 1), -EINVAL);
    CHECK_EQ(tide_loop_set_stack_size(loop, 16 * 1024), 0);
    CHECK_EQ(tide_loop_set_stack_size(loop, (size_t)1 << 30), 0);
    CHECK_EQ(tide_loop_set_stack_size(loop, 100000), 0); /* rounded up */
    tide_future *t = tide_create_task(loop, yield_n, IPTR(2));
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(library_strings)
{
    const char *m = tide_switch_method();
    CHECK_NOT_NULL(m);
    CHECK(strcmp(m, "asm-x86_64") == 0 || strcmp(m, "asm-aarch64") == 0 ||
          strcmp(m, "ucontext") == 0);
    CHECK_STR_EQ(tide_strerror(-ECANCELED), "operation canceled");
    CHECK_NOT_NULL(tide_strerror(-EINVAL));
    CHECK_NOT_NULL(tide_strerror(0));
    CHECK_NOT_NULL(tide_strerror(12345));
    CHECK_NOT_NULL(tide_strerror(-99999));
    CHECK(strlen(tide_strerror(-ENOMEM)) > 0);
    LEAK_GATE();
}

TEST(backend_name_and_forced_poll)
{
    /* Set first: the library may read the variable once per process. */
    CHECK_EQ(setenv("TIDE_BACKEND", "poll", 1), 0);
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    CHECK_STR_EQ(tide_loop_backend(loop), "poll");
    tide_future *t = tide_create_task(loop, sleep_and_time, loop);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    unsetenv("TIDE_BACKEND");
    loop = tide_loop_new();
    const char *b = tide_loop_backend(loop);
    CHECK_NOT_NULL(b);
    CHECK(strcmp(b, "io_uring") == 0 || strcmp(b, "epoll") == 0 ||
          strcmp(b, "poll") == 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- allocation failure -------------------------------------------- */

TEST(loop_new_fails_cleanly_without_memory)
{
    int failures = 0;
    for (long n = 1; n < 64; n++) {
        tide__alloc_fail_after(n);
        errno = 0;
        tide_loop *loop = tide_loop_new();
        int e = errno;
        tide__alloc_fail_after(0);
        if (!loop) {
            CHECK_ERR(e, ENOMEM);
            failures++;
            continue;
        }
        tide_future *t = tide_create_task(loop, return_arg, NULL);
        CHECK_NOT_NULL(t);
        CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
        tide_future_release(t);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    CHECK(failures > 0); /* a loop allocates something */
    LEAK_GATE();
}

/* ---- HAZARDS B37: fork with a live loop ----------------------------------
 */

static tide_loop *b37_parent_loop;
static atomic_int b37_woken;

static void *b37_child_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        if (tide_sleep(0.005) != 0)
            return tide_fail(-EPROTO);
    return IPTR(37);
}

static void b37_wake_cb(void *arg)
{
    (void)arg;
    atomic_store(&b37_woken, 1);
    tide_loop_stop(b37_parent_loop);
}

static void *b37_sender(void *arg)
{
    (void)arg;
    usleep(20000);
    tide_call_soon_threadsafe(b37_parent_loop, b37_wake_cb, NULL);
    return NULL;
}

/* The child of a process with a live default loop gets a loop of its own
 * from tide_get_event_loop() and runs it (100 ms of sleeps) while the
 * parent waits for a cross-thread wake-up: the child takes none of the
 * parent's events, the parent wakes at once. */
TEST(b37_fork_child_gets_a_loop_of_its_own)
{
    tide_loop *loop = tide_get_event_loop();
    CHECK_NOT_NULL(loop);
    b37_parent_loop = loop;
    atomic_store(&b37_woken, 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        tide_loop *mine = tide_get_event_loop();
        if (!mine || mine == b37_parent_loop)
            _exit(4);
        void *r = NULL;
        if (tide_run_until_complete(
                mine, tide_create_task(mine, b37_child_main, NULL), &r) != 0 ||
            PINT(r) != 37)
            _exit(5);
        _exit(0);
    }
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, b37_sender, NULL), 0);
    double t0 = harness_now();
    CHECK(tide_call_later(loop, 2.0, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(atomic_load(&b37_woken));
    CHECK(harness_now() - t0 < 1.0);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}
