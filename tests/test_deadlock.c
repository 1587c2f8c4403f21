/* A hang explains itself: the dump names what each task waits on (a
 * lock's holder, a queue's fill, an awaited task, a barrier's count, a
 * semaphore's value), and debug mode reports a loop that nothing can wake
 * (a cycle of waits, or every task waiting on what nobody will do), with
 * the cause where the data shows it, and ends the run with -EDEADLK. It
 * says nothing while a timer, another thread or a pending post may still
 * wake the loop, nor outside debug mode. Messages are captured through
 * the report handler.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"

#include <tide.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static char reports[16384];

static void capture(tide_loop *loop, const char *msg, void *arg)
{
    (void)loop;
    (void)arg;
    size_t len = strlen(reports);
    snprintf(reports + len, sizeof reports - len, "%s\n", msg);
}

static tide_loop *debug_loop(void)
{
    tide_loop *loop = tide_loop_new();

    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    CHECK_EQ(tide_loop_set_report_handler(loop, capture, NULL), 0);
    reports[0] = '\0';
    return loop;
}

/* TSan runs a thread of its own once a thread has started (the
 * watchdog's), and so does QEMU user mode; any other thread may post: the
 * loop is then never reported, as designed, and a test that expects a
 * report skips. */
#define SKIP_IF_TSAN()                                             \
    do {                                                           \
        if (HARNESS_TSAN || harness_qemu())                        \
            SKIP("TSan's or QEMU's thread could post: nothing is " \
                 "reported");                                      \
    } while (0)

static void expect(const char *text, int line)
{
    if (!strstr(reports, text))
        harness_fail(__FILE__, line, "no \"%s\" in:\n%s", text, reports);
}

static void expect_none(const char *text, int line)
{
    if (strstr(reports, text))
        harness_fail(__FILE__, line, "\"%s\" in:\n%s", text, reports);
}

static tide_future *named(tide_loop *loop, tide_fn fn, void *arg,
                          const char *name)
{
    tide_task_options o = {.name = name};
    tide_future *t = tide_create_task_ex(loop, fn, arg, &o);

    CHECK_NOT_NULL(t);
    return t;
}

/* Close (cancelling what hangs), release, and check nothing leaked. */
static void finish(tide_loop *loop, tide_future **ts, size_t n)
{
    CHECK_EQ(tide_loop_close(loop), 0);
    for (size_t i = 0; i < n; i++)
        tide_future_release(ts[i]);
}

/* ---- cycles --------------------------------------------------------------
 */

static tide_future *task_a, *task_b;

static void *await_b(void *arg)
{
    (void)arg;
    int err = tide_await(task_b, NULL);
    return err < 0 ? tide_fail(err) : NULL;
}

static void *await_a(void *arg)
{
    (void)arg;
    int err = tide_await(task_a, NULL);
    return err < 0 ? tide_fail(err) : NULL;
}

TEST(two_tasks_awaiting_each_other_are_reported_as_a_cycle)
{
    SKIP_IF_TSAN();
    tide_loop *loop = debug_loop();
    task_a = named(loop, await_b, NULL, "worker-a");
    task_b = named(loop, await_a, NULL, "worker-b");
    CHECK_ERR(tide_run_until_complete(loop, task_a, NULL), -EDEADLK);
    if (!strstr(reports, "deadlock: task 'worker-a' waits on task "
                         "'worker-b', which waits on task 'worker-a'\n") &&
        !strstr(reports, "deadlock: task 'worker-b' waits on task "
                         "'worker-a', which waits on task 'worker-b'\n"))
        harness_fail(__FILE__, __LINE__, "no cycle in:\n%s", reports);
    expect("every task waits and nothing can wake them", __LINE__);
    expect("task 'worker-a' (created at", __LINE__); /* the dump follows */
    expect(harness_compact() ? "): waiting on task 'worker-b', compact"
                             : "): waiting on task 'worker-b', stack",
           __LINE__);
    CHECK(!tide_future_done(task_a));
    tide_future *ts[] = {task_a, task_b};
    finish(loop, ts, 2);
    LEAK_GATE();
}

static tide_lock *lock_l, *lock_m;

/* Take `first`, let the other task take its own, then want `second`. */
static void *take_both(void *arg)
{
    tide_lock **locks = arg;
    int err = tide_lock_acquire(locks[0]);
    if (err == 0 && (err = tide_sleep(0)) == 0 &&
        (err = tide_lock_acquire(locks[1])) == 0)
        tide_lock_release(locks[1]);
    tide_lock_release(locks[0]);
    return err < 0 ? tide_fail(err) : NULL;
}

TEST(a_lock_order_deadlock_names_each_lock_and_its_holder)
{
    SKIP_IF_TSAN();
    tide_loop *loop = debug_loop();
    lock_l = tide_lock_new();
    lock_m = tide_lock_new();
    CHECK_EQ(tide_lock_set_name(lock_l, "L"), 0);
    CHECK_EQ(tide_lock_set_name(lock_m, "M"), 0);
    tide_lock *lm[] = {lock_l, lock_m}, *ml[] = {lock_m, lock_l};
    tide_future *a = named(loop, take_both, lm, "worker-a");
    tide_future *b = named(loop, take_both, ml, "worker-b");
    tide_future *both[] = {a, b};
    tide_future *g = tide_gather(both, 2, 0);
    CHECK_ERR(tide_run_until_complete(loop, g, NULL), -EDEADLK);
    if (!strstr(reports, "task 'worker-a' waits on lock 'M' held by task "
                         "'worker-b', which waits on lock 'L' held by "
                         "task 'worker-a'\n") &&
        !strstr(reports, "task 'worker-b' waits on lock 'L' held by task "
                         "'worker-a', which waits on lock 'M' held by "
                         "task 'worker-b'\n"))
        harness_fail(__FILE__, __LINE__, "no lock cycle in:\n%s", reports);
    tide_future *ts[] = {a, b, g};
    finish(loop, ts, 3);
    tide_lock_free(lock_l);
    tide_lock_free(lock_m);
    LEAK_GATE();
}

/* ---- nothing can wake them ---------------------------------------------- */

static void *wait_event(void *ev)
{
    int err = tide_event_wait(ev);
    return err < 0 ? tide_fail(err) : NULL;
}

TEST(an_event_nobody_sets_is_reported_as_nothing_can_wake)
{
    SKIP_IF_TSAN();
    tide_loop *loop = debug_loop();
    tide_event *ev = tide_event_new();
    CHECK_EQ(tide_event_set_name(ev, "ready"), 0);
    tide_future *t = named(loop, wait_event, ev, "waiter");
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -EDEADLK);
    expect("deadlock: every task waits and nothing can wake them "
           "(no task ready, no timer armed, no I/O in flight, no other "
           "thread that could post)\ntide: 1 task(s), 0 ready, 0 timer(s)\n"
           "  task 'waiter' (created at ",
           __LINE__);
    expect(harness_compact()
               ? "waiting on event 'ready' (not set, 1 waiting), compact"
               : "waiting on event 'ready' (not set, 1 waiting), stack",
           __LINE__);
    expect_none("which waits on", __LINE__); /* no cycle */
    /* The run can go on once something changes. */
    CHECK_EQ(tide_event_set(ev), 0);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    finish(loop, &t, 1);
    tide_event_free(ev);
    LEAK_GATE();
}

TEST(run_until_complete_on_a_future_nobody_sets_ends_with_edeadlk)
{
    SKIP_IF_TSAN();
    tide_loop *loop = debug_loop();
    tide_future *f = tide_future_new(loop);
    CHECK_ERR(tide_run_until_complete(loop, f, NULL), -EDEADLK);
    expect("run_until_complete waits on a future no task will complete "
           "and nothing can wake it",
           __LINE__);
    /* run_forever with no task at all waits for a post: not reported,
     * but stopped here by a callback. */
    reports[0] = '\0';
    CHECK(tide_call_soon(loop, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_STR_EQ(reports, "");
    finish(loop, &f, 1);
    LEAK_GATE();
}

static void set_event(void *ev)
{
    tide_event_set(ev);
}

TEST(not_reported_while_a_timer_is_armed)
{
    tide_loop *loop = debug_loop();
    tide_event *ev = tide_event_new();
    tide_future *t = named(loop, wait_event, ev, "waiter");
    tide_handle h = tide_call_later(loop, 0.02, set_event, ev);
    CHECK(h != 0);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_STR_EQ(reports, "");
    finish(loop, &t, 1);
    tide_event_free(ev);
    LEAK_GATE();
}

static void *post_then_wait(void *ev)
{
    int err = tide_call_soon_threadsafe(tide_get_event_loop(), set_event, ev);
    if (err == 0)
        err = tide_event_wait(ev);
    return err < 0 ? tide_fail(err) : NULL;
}

TEST(not_reported_while_a_threadsafe_call_is_pending)
{
    tide_loop *loop = debug_loop();
    tide_set_event_loop(loop);
    tide_event *ev = tide_event_new();
    tide_future *t = named(loop, post_then_wait, ev, "poster");
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_STR_EQ(reports, "");
    finish(loop, &t, 1);
    tide_event_free(ev);
    LEAK_GATE();
}

struct later {
    tide_loop *loop;
    tide_event *ev;
};

static void *post_later(void *arg)
{
    struct later *l = arg;
    usleep(30000);
    tide_call_soon_threadsafe(l->loop, set_event, l->ev);
    return NULL;
}

TEST(not_reported_while_another_thread_may_post)
{
    tide_loop *loop = debug_loop();
    tide_event *ev = tide_event_new();
    struct later l = {loop, ev};
    tide_future *t = named(loop, wait_event, ev, "waiter");
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, post_later, &l), 0);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_STR_EQ(reports, "");
    finish(loop, &t, 1);
    tide_event_free(ev);
    LEAK_GATE();
}

/* Outside debug mode the same hang blocks, as it always did, silently. */
static void hang_without_debug(void *arg)
{
    (void)arg;
    struct itimerval it = {.it_value = {.tv_usec = 200000}};
    tide_loop *loop = tide_loop_new();
    task_a = named(loop, await_b, NULL, "worker-a");
    task_b = named(loop, await_a, NULL, "worker-b");
    setitimer(ITIMER_REAL, &it, NULL); /* SIGALRM ends the child */
    tide_run_until_complete(loop, task_a, NULL);
}

TEST(outside_debug_mode_a_deadlock_just_blocks)
{
    char buf[1024];
    int status = harness_run_child(hang_without_debug, NULL, buf, sizeof buf);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGALRM);
    CHECK_STR_EQ(buf, "");
    LEAK_GATE();
}

/* ---- causes ------------------------------------------------------------- */

static void *fail_eio(void *arg)
{
    (void)arg;
    return tide_fail(-EIO); /* dies before it puts anything */
}

static void *get_one(void *q)
{
    void *item;
    int err = tide_queue_get(q, &item);
    return err < 0 ? tide_fail(err) : item;
}

TEST(a_failed_producer_is_named_as_the_likely_cause)
{
    SKIP_IF_TSAN();
    tide_loop *loop = debug_loop();
    tide_queue *q = tide_queue_new(4);
    CHECK_EQ(tide_queue_set_name(q, "jobs"), 0);
    tide_future *p = named(loop, fail_eio, NULL, "producer");
    tide_future *c = named(loop, get_one, q, "consumer");
    CHECK_ERR(tide_run_until_complete(loop, c, NULL), -EDEADLK);
    expect("waiting on get from queue 'jobs' (0 of 4 items, 1 getters and "
           "0 putters waiting)",
           __LINE__);
    expect("\n  task 'producer' failed with -EIO and nobody read the error: "
           "perhaps the cause",
           __LINE__);
    /* Once its error is read, it is nobody's mystery any more. */
    CHECK_ERR(tide_future_result(p, NULL), -EIO);
    reports[0] = '\0';
    CHECK_ERR(tide_run_until_complete(loop, c, NULL), -EDEADLK);
    expect("every task waits", __LINE__);
    expect_none("producer", __LINE__);
    tide_future *ts[] = {p, c};
    finish(loop, ts, 2);
    tide_queue_free(q);
    LEAK_GATE();
}

static void *hold_and_fail(void *lock)
{
    tide_lock_acquire(lock);
    return tide_fail(-EIO); /* never releases it */
}

static void *take(void *lock)
{
    int err = tide_lock_acquire(lock);
    if (err == 0)
        tide_lock_release(lock);
    return err < 0 ? tide_fail(err) : NULL;
}

TEST(a_lock_whose_holder_failed_names_the_failure)
{
    SKIP_IF_TSAN();
    tide_loop *loop = debug_loop();
    tide_lock *lock = tide_lock_new();
    tide_future *h = named(loop, hold_and_fail, lock, "holder");
    tide_future *w = named(loop, take, lock, "taker");
    CHECK_ERR(tide_run_until_complete(loop, w, NULL), -EDEADLK);
    char want[128];
    snprintf(want, sizeof want,
             "waiting on lock %p held by task 'holder', "
             "which failed with -EIO",
             (void *)lock);
    expect(want, __LINE__);
    tide_future *ts[] = {h, w};
    finish(loop, ts, 2);
    tide_lock_free(lock);
    LEAK_GATE();
}

/* ---- the dump's details --------------------------------------------------
 */

static void *sem_acquire(void *s)
{
    int err = tide_semaphore_acquire(s);
    return err < 0 ? tide_fail(err) : NULL;
}

static void *barrier_wait(void *b)
{
    int err = tide_barrier_wait(b, NULL);
    return err < 0 ? tide_fail(err) : NULL;
}

static void *put_one(void *q)
{
    int err = tide_queue_put(q, IPTR(1));
    return err < 0 ? tide_fail(err) : NULL;
}

static void *await_it(void *f)
{
    int err = tide_await(f, NULL);
    return err < 0 ? tide_fail(err) : NULL;
}

static void *sleep_long(void *arg)
{
    (void)arg;
    int err = tide_sleep(60);
    return err < 0 ? tide_fail(err) : NULL;
}

static void *hold(void *lock)
{
    int err = tide_lock_acquire(lock);
    if (err == 0)
        err = tide_sleep(60);
    tide_lock_release(lock);
    return err < 0 ? tide_fail(err) : NULL;
}

static void read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;

    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
}

/* Dump the loop into `reports` (replacing what it held); n tasks. */
static void dump_into_reports(tide_loop *loop, int n)
{
    int p[2];

    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(tide_loop_dump(loop, p[1]), n);
    close(p[1]);
    read_all(p[0], reports, sizeof reports);
    close(p[0]);
}

TEST(the_dump_shows_each_primitive_s_details)
{
    tide_loop *loop = debug_loop();
    tide_semaphore *s = tide_semaphore_new(0);
    tide_barrier *b = tide_barrier_new(3);
    tide_queue *q = tide_queue_new(1);
    tide_lock *lock = tide_lock_new();
    tide_condition *c = tide_condition_new(NULL);
    CHECK_EQ(tide_semaphore_set_name(s, "slots"), 0);
    CHECK_EQ(tide_barrier_set_name(b, "start"), 0);
    CHECK_EQ(tide_queue_set_name(q, "out"), 0);
    CHECK_EQ(tide_lock_set_name(lock, "db"), 0);
    CHECK_EQ(tide_condition_set_name(c, "cv"), 0);
    CHECK_EQ(tide_queue_put_nowait(q, IPTR(7)), 0); /* full */
    tide_future *ts[9];
    size_t n = 0;
    ts[n++] = named(loop, sem_acquire, s, "sem");
    ts[n++] = named(loop, barrier_wait, b, "bar");
    ts[n++] = named(loop, put_one, q, "put");
    ts[n++] = named(loop, hold, lock, "owner");
    ts[n++] = named(loop, take, lock, "want");
    ts[n++] = named(loop, sleep_long, NULL, "sleepy");
    tide_future *pair[] = {ts[3], ts[5]};
    int gline = __LINE__ + 1;
    tide_future *g = tide_gather(pair, 2, 0);
    ts[n++] = g;
    ts[n++] = named(loop, await_it, g, "gatherer");
    ts[n++] = named(loop, await_it, ts[5], "awaiter");
    drain(loop);
    dump_into_reports(loop, 8);
    expect("'sem' (created at", __LINE__);
    expect("waiting on semaphore 'slots' (value 0, 1 waiting)", __LINE__);
    expect("waiting on barrier 'start' (1 of 3 arrived)", __LINE__);
    expect("waiting on put to queue 'out' (1 of 1 items, 0 getters and 1 "
           "putters waiting, 1 unfinished)",
           __LINE__);
    expect("waiting on lock 'db' held by task 'owner'", __LINE__);
    const char *sl = strstr(reports, "waiting on sleep, ");
    double left = 0;
    CHECK(sl && sscanf(sl, "waiting on sleep, %lf s left", &left) == 1);
    CHECK(left > 50 && left <= 60.01); /* 60 s, less what has passed */
    char want[256];
    snprintf(want, sizeof want,
             "waiting on gather (created at %s:%d) of 2, 2 pending", __FILE__,
             gline);
    expect(want, __LINE__);
    expect("'awaiter' (created at", __LINE__);
    expect("waiting on task 'sleepy'", __LINE__);
    CHECK_EQ(tide_loop_close(loop), 0);
    for (size_t i = 0; i < n; i++)
        tide_future_release(ts[i]);
    tide_semaphore_free(s);
    tide_barrier_free(b);
    tide_queue_free(q);
    tide_lock_free(lock);
    tide_condition_free(c);
    LEAK_GATE();
}

static void *cond_wait(void *c)
{
    int err = tide_condition_acquire(c);
    if (err == 0) {
        err = tide_condition_wait(c);
        tide_condition_release(c);
    }
    return err < 0 ? tide_fail(err) : NULL;
}

TEST(a_condition_waiter_is_described_and_unnamed_ones_by_address)
{
    SKIP_IF_TSAN();
    tide_loop *loop = debug_loop();
    tide_condition *c = tide_condition_new(NULL);
    tide_future *t = named(loop, cond_wait, c, "cw");
    CHECK_ERR(tide_run_until_complete(loop, t, NULL), -EDEADLK);
    char want[128];
    snprintf(want, sizeof want,
             "waiting on condition %p (1 waiting for a notify)", (void *)c);
    expect(want, __LINE__);
    finish(loop, &t, 1);
    tide_condition_free(c);
    LEAK_GATE();
}

TEST(set_name_rejects_bad_input_and_keeps_the_old_name_without_memory)
{
    tide_lock *lock = tide_lock_new();
    CHECK_ERR(tide_lock_set_name(NULL, "x"), -EINVAL);
    CHECK_ERR(tide_lock_set_name(lock, NULL), -EINVAL);
    CHECK_ERR(tide_event_set_name(NULL, "x"), -EINVAL);
    CHECK_ERR(tide_condition_set_name(NULL, "x"), -EINVAL);
    CHECK_ERR(tide_semaphore_set_name(NULL, "x"), -EINVAL);
    CHECK_ERR(tide_barrier_set_name(NULL, "x"), -EINVAL);
    CHECK_ERR(tide_queue_set_name(NULL, "x"), -EINVAL);
    CHECK_EQ(tide_lock_set_name(lock, "old"), 0);
    tide__alloc_fail_after(1);
    CHECK_ERR(tide_lock_set_name(lock, "new"), -ENOMEM);
    tide__alloc_fail_after(0);

    tide_loop *loop = debug_loop();
    tide_future *h = named(loop, hold, lock, "owner");
    tide_future *w = named(loop, take, lock, "want");
    drain(loop);
    dump_into_reports(loop, 2);
    expect("waiting on lock 'old' held by task 'owner'", __LINE__);
    CHECK_EQ(tide_lock_set_name(lock, "again"), 0); /* replaces, no leak */
    tide_future *ts[] = {h, w};
    finish(loop, ts, 2);
    tide_lock_free(lock);
    LEAK_GATE();
}
