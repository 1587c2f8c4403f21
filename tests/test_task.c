/* Tasks: start order and no run at creation, results and tide_fail, names
 * ("Task-N" by default, set/get, options), cancellation (before start,
 * while sleeping, while awaiting a future or a task that swallows the
 * request, delivered once, swallowed by the body), tide_sleep(0) yielding
 * to every ready task, misuse (await outside a task, await self, sleep
 * NaN), B27 (a released task still runs to its end), stacks (deep-ish
 * recursion in the default 256 KiB, per-task and per-loop sizes, an
 * overflow ends a forked child by a signal with the task's name on
 * stderr), and allocation failure in tide_create_task.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"
#include "overflow.h"

#include "base/alloc.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char order[256];

static void *append(void *tag)
{
    strcat(order, tag);
    return tag;
}

static void *return_arg(void *arg)
{
    return arg;
}

static void *sleep_forever(void *arg)
{
    int rc = tide_sleep(1e9);

    if (arg)
        *(int *)arg = rc;
    return rc < 0 ? tide_fail(rc) : NULL;
}

/* ---- start order, results ------------------------------------------ */

TEST(tasks_start_later_in_creation_order)
{
    tide_loop *loop = tide_loop_new();
    order[0] = '\0';
    tide_future *a = tide_create_task(loop, append, "a");
    tide_future *b = tide_create_task(loop, append, "b");
    tide_future *c = tide_create_task(loop, append, "c");
    CHECK(a && b && c);
    CHECK_STR_EQ(order, ""); /* creating never runs the body */
    CHECK(!tide_future_done(a));
    CHECK(tide_future_is_task(a));
    CHECK(tide_future_get_loop(a) == loop);
    CHECK_EQ(loop_stats(loop).tasks, 3);
    CHECK_EQ(tide_run_until_complete(loop, c, NULL), 0);
    CHECK_STR_EQ(order, "abc");
    void *r = NULL;
    CHECK_EQ(tide_future_result(b, &r), 0);
    CHECK_STR_EQ(r, "b");
    CHECK_EQ(loop_stats(loop).tasks, 0);
    tide_future_release(a);
    tide_future_release(b);
    tide_future_release(c);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *fail_with(void *arg)
{
    return tide_fail((int)PINT(arg));
}

TEST(tide_fail_sets_the_error)
{
    tide_loop *loop = tide_loop_new();
    static const int in[] = {-ENOENT, -ETIMEDOUT, 5, 0, -ECANCELED};
    static const int out[] = {-ENOENT, -ETIMEDOUT, -EINVAL, -EINVAL,
                              -ECANCELED};
    for (int i = 0; i < 5; i++) {
        tide_future *t = tide_create_task(loop, fail_with, IPTR(in[i]));
        CHECK_EQ(tide_run_until_complete(loop, t, NULL), out[i]);
        CHECK(tide_future_done(t));
        CHECK_EQ(tide_future_result(t, NULL), out[i]);
        CHECK_ERR(tide_future_cancelled(t), out[i] == -ECANCELED);
        tide_future_release(t);
    }
    /* Outside a task it does nothing. */
    CHECK_NULL(tide_fail(-EIO));
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *check_current(void *arg)
{
    tide_future **slot = arg;

    *slot = tide_current_task();
    CHECK(tide_future_is_task(*slot));
    return NULL;
}

static void current_in_cb(void *arg)
{
    *(int *)arg = tide_current_task() == NULL;
}

TEST(current_task_is_the_task)
{
    tide_loop *loop = tide_loop_new();
    tide_future *seen = NULL;
    int cb_null = 0;
    CHECK_NULL(tide_current_task());
    tide_future *t = tide_create_task(loop, check_current, &seen);
    tide_call_soon(loop, current_in_cb, &cb_null);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(seen == t);
    CHECK_EQ(cb_null, 1);
    CHECK_NULL(tide_current_task());
    tide_future *f = tide_future_new(loop);
    CHECK(!tide_future_is_task(f));
    tide_future_release(f);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(create_task_bad_args)
{
    tide_loop *loop = tide_loop_new();
    errno = 0;
    CHECK_NULL(tide_create_task(loop, NULL, NULL));
    CHECK_ERR(errno, EINVAL);
    tide_task_options o = {0};
    o.stack_size = 1000;
    errno = 0;
    CHECK_NULL(tide_create_task_ex(loop, return_arg, NULL, &o));
    CHECK_ERR(errno, EINVAL);
    o.stack_size = (size_t)2 << 30;
    errno = 0;
    CHECK_NULL(tide_create_task_ex(loop, return_arg, NULL, &o));
    CHECK_ERR(errno, EINVAL);
    errno = 0;
    CHECK_NULL(tide_create_task_ex(loop, NULL, NULL, NULL));
    CHECK_ERR(errno, EINVAL);
    CHECK_EQ(loop_stats(loop).tasks, 0);
    tide_future *t = tide_create_task_ex(loop, return_arg, IPTR(3), NULL);
    CHECK_NOT_NULL(t);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 3);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- names --------------------------------------------------------- */

static int is_default_name(const char *s)
{
    if (!s || strncmp(s, "Task-", 5) != 0 || !s[5])
        return 0;
    for (s += 5; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

static void *rename_self(void *arg)
{
    (void)arg;
    CHECK_EQ(tide_task_set_name(tide_current_task(), "busy"), 0);
    CHECK_STR_EQ(tide_task_get_name(tide_current_task()), "busy");
    return NULL;
}

TEST(task_names)
{
    tide_loop *loop = tide_loop_new();
    tide_future *a = tide_create_task(loop, return_arg, NULL);
    tide_future *b = tide_create_task(loop, return_arg, NULL);
    const char *na = tide_task_get_name(a);
    CHECK(is_default_name(na));
    CHECK(is_default_name(tide_task_get_name(b)));
    CHECK(strcmp(na, tide_task_get_name(b)) != 0);
    char buf[16] = "worker";
    CHECK_EQ(tide_task_set_name(a, buf), 0);
    buf[0] = 'X'; /* copied */
    CHECK_STR_EQ(tide_task_get_name(a), "worker");
    CHECK_ERR(tide_task_set_name(a, NULL), -EINVAL);
    CHECK_STR_EQ(tide_task_get_name(a), "worker");
    tide_task_options o = {0};
    char nb[16] = "named";
    o.name = nb;
    tide_future *c = tide_create_task_ex(loop, rename_self, NULL, &o);
    nb[0] = 'X';
    CHECK_STR_EQ(tide_task_get_name(c), "named");
    CHECK_EQ(tide_run_until_complete(loop, c, NULL), 0);
    CHECK_STR_EQ(tide_task_get_name(c), "busy");
    /* Not a task. */
    tide_future *f = tide_future_new(loop);
    errno = 0;
    CHECK_NULL(tide_task_get_name(f));
    CHECK_ERR(errno, EINVAL);
    CHECK_ERR(tide_task_set_name(f, "x"), -EINVAL);
    CHECK_ERR(tide_task_set_name(NULL, "x"), -EINVAL);
    errno = 0;
    CHECK_NULL(tide_task_get_name(NULL));
    CHECK_ERR(errno, EINVAL);
    tide_future_release(f);
    CHECK_EQ(tide_run_until_complete(loop, b, NULL), 0);
    /* A done task keeps its name. */
    CHECK_STR_EQ(tide_task_get_name(a), "worker");
    tide_future_release(a);
    tide_future_release(b);
    tide_future_release(c);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- cancellation -------------------------------------------------- */

TEST(cancel_before_start_never_runs_the_body)
{
    tide_loop *loop = tide_loop_new();
    order[0] = '\0';
    tide_future *t = tide_create_task(loop, append, "x");
    tide_future *u = tide_create_task(loop, append, "y");
    CHECK(tide_future_cancel(t));
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(tide_future_cancelled(t));
    CHECK_ERR(tide_future_result(t, NULL), -ECANCELED);
    CHECK(!tide_future_cancel(t));
    CHECK_EQ(tide_run_until_complete(loop, u, NULL), 0);
    CHECK_STR_EQ(order, "y");
    CHECK_EQ(loop_stats(loop).tasks, 0);
    tide_future_release(t);
    tide_future_release(u);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(cancel_while_sleeping)
{
    tide_loop *loop = new_virtual_loop();
    int rc = 1;
    tide_future *t = tide_create_task(loop, sleep_forever, &rc);
    run_once(loop);
    CHECK_EQ(loop_stats(loop).timers, 1);
    CHECK(tide_future_cancel(t));
    CHECK(!tide_future_done(t)); /* a request, not a completion */
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK_ERR(rc, -ECANCELED);
    CHECK(tide_future_cancelled(t));
    CHECK_EQ(loop_stats(loop).timers, 0); /* the sleep's timer is gone */
    CHECK(!tide_future_cancel(t));
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct awaiter {
    tide_future *target;
    int await_rc;
    void *await_result;
    int after_rc;
};

static void *await_target(void *arg)
{
    struct awaiter *w = arg;

    w->await_rc = tide_await(w->target, &w->await_result);
    w->after_rc = tide_sleep(0);
    if (w->await_rc < 0)
        return tide_fail(w->await_rc);
    return IPTR(8);
}

TEST(cancel_task_awaiting_a_future_cancels_the_future)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    struct awaiter w = {f, 1, NULL, 1};
    tide_future *t = tide_create_task(loop, await_target, &w);
    run_once(loop);
    CHECK(tide_future_cancel(t));
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -ECANCELED);
    CHECK(tide_future_cancelled(f));
    CHECK_ERR(w.await_rc, -ECANCELED);
    CHECK_EQ(w.after_rc, 0); /* delivered once */
    CHECK(tide_future_cancelled(t));
    tide_future_release(t);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *swallower(void *arg)
{
    int *rc = arg;

    *rc = tide_sleep(1e9);
    return IPTR(7);
}

TEST(cancel_task_awaiting_a_task_that_swallows)
{
    tide_loop *loop = tide_loop_new();
    int inner_rc = 1;
    tide_future *b = tide_create_task(loop, swallower, &inner_rc);
    struct awaiter w = {b, 1, NULL, 1};
    tide_future *a = tide_create_task(loop, await_target, &w);
    run_once(loop);
    CHECK(tide_future_cancel(a));
    void *r = NULL;
    /* The request went to b, which returned normally: a gets b's value,
     * and the request stays pending (never lost): a's next suspension
     * returns -ECANCELED; a returns normally after that delivery, so it
     * is not cancelled (asyncio 3.12 loses the request here). */
    CHECK_EQ(tide_run_until_complete(loop, a, &r), 0);
    CHECK_EQ(PINT(r), 8);
    CHECK_ERR(inner_rc, -ECANCELED);
    CHECK_EQ(w.await_rc, 0);
    CHECK_EQ(PINT(w.await_result), 7);
    CHECK_ERR(w.after_rc, -ECANCELED); /* delivered at the next suspension */
    CHECK_EQ(tide_task_cancelling(a), 1);
    CHECK(!tide_future_cancelled(a)); /* delivered, then it returned */
    CHECK(!tide_future_cancelled(b));
    CHECK_EQ(tide_future_result(b, &r), 0);
    CHECK_EQ(PINT(r), 7);
    tide_future_release(a);
    tide_future_release(b);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *await_task_that_fails(void *arg)
{
    struct awaiter *w = arg;

    w->await_rc = tide_await(w->target, NULL);
    return IPTR(1);
}

static void *cancelled_slowly(void *arg)
{
    (void)arg;
    int rc = tide_sleep(1e9);
    CHECK_ERR(rc, -ECANCELED);
    CHECK_EQ(tide_sleep(0.001), 0); /* cleanup that suspends */
    return tide_fail(-ECANCELED);
}

TEST(cancel_awaiter_waits_for_the_awaited_task_to_finish)
{
    tide_loop *loop = tide_loop_new();
    tide_future *b = tide_create_task(loop, cancelled_slowly, NULL);
    struct awaiter w = {b, 1, NULL, 1};
    tide_future *a = tide_create_task(loop, await_task_that_fails, &w);
    run_once(loop);
    CHECK(tide_future_cancel(a));
    CHECK_EQ(tide_run_until_complete(loop, a, NULL), 0);
    /* The await returned only once b was done, with b's outcome. */
    CHECK(tide_future_done(b));
    CHECK(tide_future_cancelled(b));
    CHECK_ERR(w.await_rc, -ECANCELED);
    tide_future_release(a);
    tide_future_release(b);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *swallow_then_continue(void *arg)
{
    int *rcs = arg;

    rcs[0] = tide_sleep(1e9);
    rcs[1] = tide_sleep(0);
    rcs[2] = tide_sleep(0.001);
    return IPTR(5);
}

TEST(body_that_swallows_cancel_ends_normally)
{
    tide_loop *loop = tide_loop_new();
    int rcs[3] = {1, 1, 1};
    tide_future *t = tide_create_task(loop, swallow_then_continue, rcs);
    run_once(loop);
    CHECK(tide_future_cancel(t));
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 5);
    CHECK_ERR(rcs[0], -ECANCELED);
    CHECK_EQ(rcs[1], 0);
    CHECK_EQ(rcs[2], 0);
    CHECK(!tide_future_cancelled(t));
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *cancel_self(void *arg)
{
    int *rcs = arg;

    CHECK(tide_future_cancel(tide_current_task()));
    rcs[0] = tide_sleep(0);
    rcs[1] = tide_sleep(0);
    return NULL;
}

TEST(cancel_self_is_delivered_at_next_suspension)
{
    tide_loop *loop = tide_loop_new();
    int rcs[2] = {1, 1};
    tide_future *t = tide_create_task(loop, cancel_self, rcs);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(rcs[0], -ECANCELED);
    CHECK_EQ(rcs[1], 0);
    CHECK(!tide_future_cancelled(t));
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(cancel_done_task_is_false)
{
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, return_arg, IPTR(2));
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(!tide_future_cancel(t));
    CHECK(!tide_future_cancelled(t));
    void *r = NULL;
    CHECK_EQ(tide_future_result(t, &r), 0);
    CHECK_EQ(PINT(r), 2);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(set_result_on_a_task_is_refused_or_harmless)
{
    /* A task's outcome is its body's; completing it from outside must not
     * corrupt it. The header does not forbid it, so accept either way but
     * insist the task still ends and the loop stays sound. */
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, return_arg, IPTR(2));
    int rc = tide_future_set_result(t, IPTR(9));
    CHECK(rc == 0 || rc == -EINVAL);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(tide_future_done(t));
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct woken {
    tide_future *f;
    int await_rc;
    void *value;
    int after_rc;
};

static void *await_then_yield(void *arg)
{
    struct woken *w = arg;

    w->await_rc = tide_await(w->f, &w->value);
    w->after_rc = tide_sleep(0);
    return NULL;
}

TEST(b19_cancel_after_wakeup_is_not_lost)
{
    /* f completes (the waiter is scheduled), then the waiter is cancelled
     * before it runs. The request must be delivered exactly once: at the
     * await (f's result is then dropped) or at the next suspension. */
    tide_loop *loop = tide_loop_new();
    struct woken w = {tide_future_new(loop), 1, NULL, 1};
    tide_future *t = tide_create_task(loop, await_then_yield, &w);
    run_once(loop);
    CHECK_EQ(tide_future_set_result(w.f, IPTR(5)), 0);
    CHECK(tide_future_cancel(t));
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    if (w.await_rc == 0) {
        CHECK_EQ(PINT(w.value), 5);
        CHECK_ERR(w.after_rc, -ECANCELED);
    } else {
        CHECK_ERR(w.await_rc, -ECANCELED);
        CHECK_EQ(w.after_rc, 0);
    }
    tide_future_release(t);
    tide_future_release(w.f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct equal_sleep {
    tide_loop *loop;
    const char *tag;
    double busy;
    uint64_t woke_iter;
};

static void *equal_sleeper(void *arg)
{
    struct equal_sleep *e = arg;

    harness_busy_wait(e->busy); /* b's delay counts from a later moment */
    CHECK_EQ(tide_sleep(0.01), 0);
    e->woke_iter = loop_iterations(e->loop);
    strcat(order, e->tag);
    return NULL;
}

TEST(equal_sleeps_wake_in_the_order_they_were_set)
{
    tide_loop *loop = tide_loop_new();
    struct equal_sleep a = {loop, "a", 0.004, 0}, b = {loop, "b", 0, 0};
    order[0] = '\0';
    tide_future *ta = tide_create_task(loop, equal_sleeper, &a);
    tide_future *tb = tide_create_task(loop, equal_sleeper, &b);
    CHECK_EQ(tide_run_until_complete(loop, tb, NULL), 0);
    CHECK_STR_EQ(order, "ab");
    CHECK(a.woke_iter <= b.woke_iter);
    tide_future_release(ta);
    tide_future_release(tb);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- fairness: yielding tasks starve nothing ------------------------ */

struct pingpong {
    tide_loop *loop;
    int stop;
    long rounds;
};

static void *yield_until_stopped(void *arg)
{
    struct pingpong *p = arg;

    while (!p->stop) {
        CHECK_EQ(tide_sleep(0), 0);
        p->rounds++;
    }
    return NULL;
}

static void set_stop(void *arg)
{
    ((struct pingpong *)arg)->stop = 1;
}

TEST(yielding_tasks_do_not_starve_timers)
{
    tide_loop *loop = tide_loop_new();
    struct pingpong p = {loop, 0, 0};
    tide_future *a = tide_create_task(loop, yield_until_stopped, &p);
    tide_future *b = tide_create_task(loop, yield_until_stopped, &p);
    CHECK(tide_call_later(loop, 0.005, set_stop, &p) != 0);
    CHECK_EQ(tide_run_until_complete(loop, a, NULL), 0);
    CHECK_EQ(tide_run_until_complete(loop, b, NULL), 0);
    CHECK(p.rounds > 0);
    tide_future_release(a);
    tide_future_release(b);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *send_stop(void *arg)
{
    struct pingpong *p = arg;

    usleep(5000);
    CHECK_EQ(tide_call_soon_threadsafe(p->loop, set_stop, p), 0);
    return NULL;
}

TEST(yielding_tasks_do_not_starve_wakeups)
{
    tide_loop *loop = tide_loop_new();
    struct pingpong p = {loop, 0, 0};
    tide_future *a = tide_create_task(loop, yield_until_stopped, &p);
    tide_future *b = tide_create_task(loop, yield_until_stopped, &p);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, send_stop, &p), 0);
    CHECK_EQ(tide_run_until_complete(loop, a, NULL), 0);
    CHECK_EQ(tide_run_until_complete(loop, b, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    tide_future_release(a);
    tide_future_release(b);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- yielding, misuse ---------------------------------------------- */

static void *yield_between(void *arg)
{
    const char **tags = arg;

    strcat(order, tags[0]);
    double d = tags[2] ? strtod(tags[2], NULL) : 0;
    CHECK_EQ(tide_sleep(d), 0);
    strcat(order, tags[1]);
    return NULL;
}

static void sleep_zero_case(const char *delay)
{
    tide_loop *loop = tide_loop_new();
    const char *ta[] = {"a1", "a2", delay};
    order[0] = '\0';
    tide_future *a = tide_create_task(loop, yield_between, ta);
    tide_future *b = tide_create_task(loop, append, "b");
    tide_future *c = tide_create_task(loop, append, "c");
    CHECK_EQ(tide_run_until_complete(loop, a, NULL), 0);
    CHECK_STR_EQ(order, "a1bca2");
    tide_future_release(a);
    tide_future_release(b);
    tide_future_release(c);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(sleep_zero_lets_every_ready_task_run_first)
{
    sleep_zero_case("0");
}

TEST(sleep_negative_yields_like_zero)
{
    sleep_zero_case("-1");
}

static void *sleep_nan(void *arg)
{
    (void)arg;
    CHECK_ERR(tide_sleep(NAN), -EINVAL);
    return NULL;
}

TEST(sleep_nan_is_einval_and_outside_a_task_eperm)
{
    tide_loop *loop = tide_loop_new();
    CHECK_ERR(tide_sleep(0), -EPERM);
    CHECK_ERR(tide_sleep(1), -EPERM);
    tide_future *t = tide_create_task(loop, sleep_nan, NULL);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *sleep_in_cb_task(void *arg)
{
    (void)arg;
    return NULL;
}

static void sleep_in_cb(void *arg)
{
    *(int *)arg = tide_sleep(0);
}

TEST(sleep_in_a_callback_is_eperm)
{
    tide_loop *loop = tide_loop_new();
    int rc = 1;
    tide_call_soon(loop, sleep_in_cb, &rc);
    tide_future *t = tide_create_task(loop, sleep_in_cb_task, NULL);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(rc, -EPERM);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(await_outside_a_task)
{
    tide_loop *loop = tide_loop_new();
    tide_future *f = tide_future_new(loop);
    void *r = NULL;
    CHECK_ERR(tide_await(f, &r), -EPERM);
    CHECK_ERR(tide_await(NULL, &r), -EINVAL);
    CHECK_EQ(tide_future_set_result(f, IPTR(6)), 0);
    CHECK_EQ(tide_await(f, &r), 0); /* done: the result is there */
    CHECK_EQ(PINT(r), 6);
    CHECK_EQ(tide_await(f, NULL), 0);
    tide_future *g = tide_future_new(loop);
    CHECK_EQ(tide_future_set_error(g, -EPIPE), 0);
    CHECK_ERR(tide_await(g, NULL), -EPIPE);
    tide_future *h = tide_future_new(loop);
    CHECK(tide_future_cancel(h));
    CHECK_ERR(tide_await(h, NULL), -ECANCELED);
    tide_future_release(f);
    tide_future_release(g);
    tide_future_release(h);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct misuse {
    tide_future *foreign;
    int self_rc, null_rc, foreign_rc;
};

static void *await_misuse(void *arg)
{
    struct misuse *m = arg;

    m->self_rc = tide_await(tide_current_task(), NULL);
    m->null_rc = tide_await(NULL, NULL);
    m->foreign_rc = tide_await(m->foreign, NULL);
    return NULL;
}

TEST(await_self_null_or_foreign_is_einval)
{
    tide_loop *loop = tide_loop_new();
    tide_loop *other = tide_loop_new();
    struct misuse m = {tide_future_new(other), 1, 1, 1};
    tide_future *t = tide_create_task(loop, await_misuse, &m);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(m.self_rc, -EINVAL);
    CHECK_ERR(m.null_rc, -EINVAL);
    CHECK_ERR(m.foreign_rc, -EINVAL);
    CHECK(!tide_future_done(m.foreign));
    tide_future_release(m.foreign);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(other), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *await_chain(void *arg)
{
    long n = (long)PINT(arg);

    if (n == 0)
        return tide_fail(-ENOENT);
    tide_future *t = tide_create_task(NULL, await_chain, IPTR(n - 1));
    void *r = NULL;
    int rc = tide_await(t, &r);
    tide_future_release(t);
    /* The leaf fails; every level above it succeeds with its depth. */
    if (n == 1)
        return rc == -ENOENT ? IPTR(1) : tide_fail(-EPROTO);
    return rc == 0 && PINT(r) == n - 1 ? IPTR(n) : tide_fail(-EPROTO);
}

TEST(await_a_task_gets_its_outcome)
{
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, await_chain, IPTR(20));
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 20);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- B27: released tasks ------------------------------------------- */

static void *detached(void *arg)
{
    CHECK_EQ(tide_sleep(0.002), 0);
    ++*(int *)arg;
    return tide_fail(-EIO); /* nobody reads it: must not leak */
}

static void *sleep_longer(void *arg)
{
    (void)arg;
    CHECK_EQ(tide_sleep(0.01), 0);
    return NULL;
}

TEST(b27_released_task_runs_to_its_end)
{
    tide_loop *loop = tide_loop_new();
    int ran = 0;
    for (int i = 0; i < 10; i++) {
        tide_future *t = tide_create_task(loop, detached, &ran);
        CHECK_NOT_NULL(t);
        tide_future_release(t);
    }
    CHECK_EQ(loop_stats(loop).tasks, 10);
    tide_future *w = tide_create_task(loop, sleep_longer, NULL);
    CHECK_EQ(tide_run_until_complete(loop, w, NULL), 0);
    CHECK_EQ(ran, 10);
    CHECK_EQ(loop_stats(loop).tasks, 0);
    tide_future_release(w);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *spawn_and_forget(void *arg)
{
    for (int i = 0; i < 100; i++) {
        tide_future *t = tide_create_task(NULL, detached, arg);
        tide_future_release(t);
        if (i % 10 == 0)
            CHECK_EQ(tide_sleep(0), 0);
    }
    return NULL;
}

TEST(many_short_tasks_reuse_stacks)
{
    tide_loop *loop = tide_loop_new();
    int ran = 0;
    tide_future *t = tide_create_task(loop, spawn_and_forget, &ran);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future *w = tide_create_task(loop, sleep_longer, NULL);
    CHECK_EQ(tide_run_until_complete(loop, w, NULL), 0);
    CHECK_EQ(ran, 100);
    tide_loop_stats st = loop_stats(loop);
    CHECK_EQ(st.tasks, 0);
    CHECK_EQ(st.stacks_in_use, 0);
    tide_future_release(t);
    tide_future_release(w);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static long yields_done;

static void *yield_ten(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++)
        CHECK_EQ(tide_sleep(0), 0);
    yields_done++;
    return NULL;
}

TEST(ten_thousand_tasks_interleave)
{
    /* TSan counts every fiber as a thread, up to 8128. */
    const int n = HARNESS_TSAN ? 2000 : 10000;
    tide_loop *loop = tide_loop_new();
    yields_done = 0;
    for (int i = 0; i < n; i++) {
        tide_future *t = tide_create_task(loop, yield_ten, NULL);
        CHECK_NOT_NULL(t);
        tide_future_release(t);
    }
    tide_future *last = tide_create_task(loop, yield_ten, NULL);
    CHECK_EQ(tide_run_until_complete(loop, last, NULL), 0);
    /* FIFO: everyone created before `last` finished no later. */
    CHECK_EQ(yields_done, n + 1);
    CHECK_EQ(loop_stats(loop).tasks, 0);
    tide_future_release(last);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- stacks -------------------------------------------------------- */

static void *use_stack(void *arg)
{
    long kib = (long)PINT(arg);

    recurse(kib);
    return arg;
}

TEST(default_stack_takes_160_kib_of_recursion)
{
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, use_stack, IPTR(160));
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 160);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(per_task_stack_size)
{
    tide_loop *loop = tide_loop_new();
    tide_task_options o = {0};
    o.stack_size = 4u << 20;
    o.name = "big";
    tide_future *t = tide_create_task_ex(loop, use_stack, IPTR(2048), &o);
    CHECK_NOT_NULL(t);
    o.stack_size = 16 * 1024; /* the minimum is accepted */
    tide_future *s = tide_create_task_ex(loop, return_arg, IPTR(1), &o);
    CHECK_NOT_NULL(s);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_EQ(tide_run_until_complete(loop, s, NULL), 0);
    tide_future_release(t);
    tide_future_release(s);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(per_loop_stack_size)
{
    tide_loop *loop = tide_loop_new();
    CHECK_EQ(tide_loop_set_stack_size(loop, 4u << 20), 0);
    tide_future *t = tide_create_task(loop, use_stack, IPTR(2048));
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(stack_overflow_kills_with_a_message_naming_the_task)
{
    tide_task_options o = {0};
    o.name = "overflow-victim";
    o.stack_size = 64 * 1024;
    check_overflow_death(&o, __FILE__, __LINE__);
    LEAK_GATE();
}

/* ---- allocation failure -------------------------------------------- */

TEST(create_task_fails_cleanly_without_memory)
{
    tide_loop *loop = tide_loop_new();
    long live = tide__alloc_live();
    tide_future *probe = tide_create_task(loop, return_arg, NULL);
    int allocates = tide__alloc_live() > live;
    tide_future_release(probe);
    CHECK_EQ(tide_loop_close(loop), 0);

    int failures = 0;
    for (long n = 1; n <= 12; n++) {
        loop = tide_loop_new();
        CHECK_NOT_NULL(loop);
        order[0] = '\0';
        tide__alloc_fail_after(n);
        errno = 0;
        tide_future *t = tide_create_task(loop, append, "t");
        int e = errno;
        tide__alloc_fail_after(0);
        if (!t) {
            CHECK_ERR(e, ENOMEM);
            CHECK_EQ(loop_stats(loop).tasks, 0);
            failures++;
        }
        /* The loop is intact: a new task runs, the failed one never. */
        tide_future *u = tide_create_task(loop, append, "u");
        CHECK_EQ(tide_run_until_complete(loop, u, NULL), 0);
        if (t) {
            CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
            CHECK_STR_EQ(order, "tu");
        } else {
            CHECK_STR_EQ(order, "u");
        }
        tide_future_release(t);
        tide_future_release(u);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    if (allocates)
        CHECK(failures > 0);
    LEAK_GATE();
}

static void *named_ex(void *arg)
{
    return arg;
}

TEST(create_task_ex_with_name_fails_cleanly_without_memory)
{
    for (long n = 1; n <= 12; n++) {
        tide_loop *loop = tide_loop_new();
        tide_task_options o = {0};
        o.name = "a-rather-long-task-name-to-copy";
        tide__alloc_fail_after(n);
        errno = 0;
        tide_future *t = tide_create_task_ex(loop, named_ex, NULL, &o);
        int e = errno;
        tide__alloc_fail_after(0);
        if (!t) {
            CHECK_ERR(e, ENOMEM);
        } else {
            CHECK_STR_EQ(tide_task_get_name(t), o.name);
            CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
            tide_future_release(t);
        }
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}
