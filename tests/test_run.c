/* tide_run (asyncio.run): main's result and error, NULL main, main runs
 * as a task on a new loop that is the thread's loop meanwhile, leftover
 * tasks cancelled and allowed to finish their cleanup (unstarted ones
 * never run), the previous default loop restored (or none), -EBUSY from
 * inside a running loop (a task, a callback, tide_run's own main),
 * sequential runs, and allocation failure.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

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
    CHECK_EQ(tide_run(fail_enoent, NULL, &r), -ENOENT);
    LEAK_GATE();
}

TEST(null_main_is_einval)
{
    void *r = IPTR(3);
    CHECK_EQ(tide_run(NULL, NULL, &r), -EINVAL);
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
    struct seen s = { prev, NULL, 0, 0, 0 };
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
    struct seen s = { NULL, NULL, 0, 0, 0 };
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
        left.cleanup_rc = tide_sleep(0.001); /* cleanup that suspends */
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
    CHECK_EQ(left.cleanup_rc, 0);
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
    CHECK_EQ(PINT(r), -EBUSY);
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
    CHECK_EQ(rc, -EBUSY);
    CHECK_EQ(inner_ran, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(ebusy_from_run_main)
{
    void *r = NULL;
    inner_ran = 0;
    CHECK_EQ(tide_run(run_inside, NULL, &r), 0);
    CHECK_EQ(PINT(r), -EBUSY);
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
    CHECK_EQ(tide_run(fail_enoent, NULL, NULL), -ENOENT);
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
