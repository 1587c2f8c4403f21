/* tide_run (asyncio.run): main's result and error, NULL main, main runs
 * as a task on a new loop that is the thread's loop meanwhile, leftover
 * tasks cancelled and allowed to finish their cleanup (unstarted ones
 * never run), the previous default loop restored (or none), -EBUSY from
 * inside a running loop (a task, a callback, tide_run's own main),
 * sequential runs, and allocation failure.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *return_arg(void *arg)
{
    return arg;
}

static void *fail_enoent(void *arg)
{
    (void)arg;
    CHECK_EQ(tide_sleep(0.001), 0);
    return tide_fail(-ENOENT);
}

TEST(returns_main_result)
{
    void *r = NULL;
    CHECK_EQ(tide_run(return_arg, IPTR(42), &r), 0);
    CHECK_EQ(PINT(r), 42);
    CHECK_EQ(tide_run(return_arg, IPTR(1), NULL), 0);
    LEAK_GATE();
}

TEST(returns_main_error)
{
    void *r = NULL;
    CHECK_ERR(tide_run(fail_enoent, NULL, &r), -ENOENT);
    LEAK_GATE();
}

TEST(null_main_is_einval)
{
    void *r = IPTR(3);
    CHECK_ERR(tide_run(NULL, NULL, &r), -EINVAL);
    LEAK_GATE();
}

struct seen {
    tide_loop *prev;
    tide_loop *loop;
    int running;
    int in_task;
    int child_on_loop;
};

static void *inspect(void *arg)
{
    struct seen *s = arg;

    s->loop = tide_get_event_loop();
    s->running = tide_loop_is_running(s->loop);
    s->in_task = tide_current_task() != NULL;
    tide_future *t = tide_create_task(NULL, return_arg, NULL);
    s->child_on_loop = tide_future_get_loop(t) == s->loop;
    CHECK_EQ(tide_await(t, NULL), 0);
    tide_future_release(t);
    return NULL;
}

TEST(main_runs_as_a_task_on_a_new_loop)
{
    tide_loop *prev = tide_loop_new();
    tide_set_event_loop(prev);
    struct seen s = {prev, NULL, 0, 0, 0};
    CHECK_EQ(tide_run(inspect, &s, NULL), 0);
    CHECK_NOT_NULL(s.loop);
    CHECK(s.loop != prev);
    CHECK(s.running);
    CHECK(s.in_task);
    CHECK(s.child_on_loop);
    /* The previous default is back. */
    CHECK(tide_get_event_loop() == prev);
    CHECK(!tide_loop_is_running(prev));
    CHECK_EQ(tide_loop_close(prev), 0);
    LEAK_GATE();
}

TEST(no_previous_default_stays_none)
{
    struct seen s = {NULL, NULL, 0, 0, 0};
    CHECK_EQ(tide_run(inspect, &s, NULL), 0);
    /* The run's loop is closed; a new default is made on demand and
     * works. */
    tide_loop *d = tide_get_event_loop();
    CHECK_NOT_NULL(d);
    tide_future *t = tide_create_task(d, return_arg, IPTR(2));
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(d, t, &r), 0);
    CHECK_EQ(PINT(r), 2);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(d), 0);
    LEAK_GATE();
}

struct leftovers {
    int started;
    int cleaned;
    int cleanup_rc;
    int late_ran;
};

static struct leftovers left;

static void *leftover(void *arg)
{
    (void)arg;
    left.started++;
    int rc = tide_sleep(1e9);
    if (rc == -ECANCELED) {
        left.cleanup_rc = tide_sleep(1e9); /* cleanup that suspends */
        left.cleaned++;
    }
    return rc < 0 ? tide_fail(rc) : NULL;
}

static void *late(void *arg)
{
    (void)arg;
    left.late_ran = 1;
    return NULL;
}

static void *spawn_leftovers(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        tide_future *t = tide_create_task(NULL, leftover, NULL);
        CHECK_NOT_NULL(t);
        tide_future_release(t);
    }
    CHECK_EQ(tide_sleep(0), 0); /* they start and block */
    tide_future *t = tide_create_task(NULL, late, NULL);
    tide_future_release(t); /* created, never started */
    return IPTR(9);
}

TEST(cancels_leftovers_and_lets_them_finish)
{
    memset(&left, 0, sizeof left);
    left.cleanup_rc = 1;
    void *r = NULL;
    CHECK_EQ(tide_run(spawn_leftovers, NULL, &r), 0);
    CHECK_EQ(PINT(r), 9);
    CHECK_EQ(left.started, 3);
    CHECK_EQ(left.cleaned, 3);
    CHECK_ERR(left.cleanup_rc, -ECANCELED); /* close asked again */
    CHECK_EQ(left.late_ran, 0);
    LEAK_GATE();
}

static int inner_ran;

static void *inner_main(void *arg)
{
    (void)arg;
    inner_ran = 1;
    return NULL;
}

static void *run_inside(void *arg)
{
    (void)arg;
    return IPTR(tide_run(inner_main, NULL, NULL));
}

TEST(ebusy_inside_a_running_loop)
{
    tide_loop *loop = tide_loop_new();
    inner_ran = 0;
    tide_future *t = tide_create_task(loop, run_inside, NULL);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_ERR(PINT(r), -EBUSY);
    CHECK_EQ(inner_ran, 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void run_in_cb(void *arg)
{
    *(int *)arg = tide_run(inner_main, NULL, NULL);
}

TEST(ebusy_from_a_callback)
{
    tide_loop *loop = tide_loop_new();
    int rc = 1;
    inner_ran = 0;
    CHECK(tide_call_soon(loop, run_in_cb, &rc) != 0);
    run_once(loop);
    CHECK_ERR(rc, -EBUSY);
    CHECK_EQ(inner_ran, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(ebusy_from_run_main)
{
    void *r = NULL;
    inner_ran = 0;
    CHECK_EQ(tide_run(run_inside, NULL, &r), 0);
    CHECK_ERR(PINT(r), -EBUSY);
    CHECK_EQ(inner_ran, 0);
    LEAK_GATE();
}

TEST(sequential_runs)
{
    for (int i = 0; i < 20; i++) {
        void *r = NULL;
        CHECK_EQ(tide_run(return_arg, IPTR(i), &r), 0);
        CHECK_EQ(PINT(r), i);
    }
    CHECK_ERR(tide_run(fail_enoent, NULL, NULL), -ENOENT);
    LEAK_GATE();
}

static int oom_ran;

static void *oom_main(void *arg)
{
    (void)arg;
    oom_ran = 1;
    return IPTR(5);
}

TEST(fails_cleanly_without_memory)
{
    tide_loop *prev = tide_loop_new();
    tide_set_event_loop(prev);
    int failures = 0;
    for (long n = 1; n <= 40; n++) {
        oom_ran = 0;
        void *r = NULL;
        tide__alloc_fail_after(n);
        int rc = tide_run(oom_main, NULL, &r);
        tide__alloc_fail_after(0);
        if (rc == -ENOMEM) {
            failures++;
            CHECK_EQ(oom_ran, 0);
        } else {
            CHECK_EQ(rc, 0);
            CHECK_EQ(oom_ran, 1);
            CHECK_EQ(PINT(r), 5);
        }
        CHECK(tide_get_event_loop() == prev);
    }
    CHECK(failures > 0);
    CHECK_EQ(tide_loop_close(prev), 0);
    LEAK_GATE();
}

/* ---- HAZARDS B45: shutdown with live work ------------------------------ */

static struct {
    int cleaned;   /* kind 0: cleanup that tries to sleep 10 ms more */
    int cancelled; /* kind 1: plain cancellation */
    int failed;    /* kind 2: fails inside its cancel handler */
    int timer_ran;
} b45;

static void *b45_worker(void *arg)
{
    int kind = (int)PINT(arg);
    int rc = tide_sleep(1e9);

    if (rc != -ECANCELED)
        return tide_fail(-EPROTO);
    switch (kind) {
    case 0:
        /* Close repeats its request until the task is done: the wait is
         * cut short, the cleanup still runs to its end. */
        if (tide_sleep(0.01) == -ECANCELED)
            b45.cleaned++;
        return tide_fail(rc);
    case 1:
        b45.cancelled++;
        return tide_fail(rc);
    default:
        b45.failed++;
        return tide_fail(-EIO); /* an error raised while cancelled */
    }
}

static void b45_timer(void *arg)
{
    (void)arg;
    b45.timer_ran = 1;
}

static void *b45_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        tide_task_options o = {0};
        o.name = i == 99 ? "b45-failing" : NULL;
        tide_future *t = tide_create_task_ex(NULL, b45_worker,
                                             IPTR(i == 99 ? 2 : i % 2), &o);
        CHECK_NOT_NULL(t);
        tide_future_release(t);
    }
    CHECK(tide_call_later(NULL, 10.0, b45_timer, NULL) != 0);
    CHECK_EQ(tide_sleep(0), 0); /* every worker is now asleep */
    return IPTR(45);
}

static void b45_child(void *arg)
{
    (void)arg;
    setenv("TIDE_DEBUG", "1", 1);
    void *r = NULL;
    int err = tide_run(b45_main, NULL, &r);
    /* Exit status tells the parent what run returned. */
    if (err != 0 || PINT(r) != 45 || b45.cleaned != 50 ||
        b45.cancelled != 49 || b45.failed != 1 || b45.timer_ran)
        _exit(3);
    _exit(0);
}

/* tide_run returns main's result while 100 tasks are still asleep: each is
 * cancelled and finishes (50 with a cleanup that tries to sleep 10 ms more
 * and is cancelled again, one
 * failing with another error inside its cancel handler), the pending
 * timer is dropped, and the error nobody read is reported by name. */
TEST(b45_run_returns_with_live_work_and_reports_errors)
{
    static char buf[1 << 16];
    int status = harness_run_child(b45_child, NULL, buf, sizeof buf);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        harness_fail(__FILE__, __LINE__, "child status %#x, stderr: %s",
                     status, buf);
    if (!strstr(buf, "b45-failing") || !strstr(buf, "never retrieved"))
        harness_fail(__FILE__, __LINE__, "no report of the error: %s", buf);
    LEAK_GATE();
}
