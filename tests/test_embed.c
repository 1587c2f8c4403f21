/* Embedding: a tide loop driven from another loop, here a plain poll()
 * loop, by tide_loop_backend_fd, tide_loop_backend_timeout and
 * tide_loop_run_once. Sleeping tasks, timers in order, a task woken by
 * another thread, a dump signal, all through poll() on the fd with the
 * exposed timeout; the outer loop never spins (its wake-ups are counted)
 * and never sleeps past a due timer (exactly, on the virtual clock;
 * within a bound on the real one). Also: one iteration per call, what
 * the return value says, nesting, stop, close, debug mode, bad input.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the outer loop --------------------------------------------------- */

/* Longest poll() of the outer loop, so that a fd that never becomes
 * readable fails a CHECK instead of hanging the test. */
#define POLL_CAP_MS 2000

struct outer {
    tide_loop *loop;
    int fd;
    unsigned wakeups;  /* poll() returns */
    unsigned readable; /* ... with the fd readable */
    /* If set: the loop time of the earliest call_at timer the test armed
     * and has not seen fire (INFINITY: none). Every turn checks that
     * tide's timeout does not reach past it, however late the machine
     * runs (call_at deadlines are exact: no slack, no clock reading of
     * the test's to race). */
    double (*next_due)(void *arg);
    void *due_arg;
};

static bool poll_backend(tide_loop *loop)
{
    return strcmp(tide_loop_backend(loop), "poll") == 0;
}

static struct outer outer_for(tide_loop *loop)
{
    struct outer o = {.loop = loop, .fd = tide_loop_backend_fd(loop)};

    if (o.fd == -ENOTSUP && poll_backend(loop))
        SKIP("the poll() backend has no fd to embed by");
    CHECK(o.fd >= 0);
    return o;
}

/* Seconds to poll()'s milliseconds, rounded up as the header says. */
static int to_ms(double t)
{
    if (isinf(t) || t * 1000 >= POLL_CAP_MS)
        return POLL_CAP_MS;
    int ms = (int)(t * 1000);
    return ms < t * 1000 ? ms + 1 : ms;
}

/* One turn of the outer loop: wait as tide says, then one iteration.
 * Returns what tide_loop_run_once returns. */
static int turn(struct outer *o)
{
    double t = -1, now = tide_loop_time(o->loop);

    CHECK_EQ(tide_loop_backend_timeout(o->loop, &t), 0);
    CHECK(t >= 0);
    if (o->next_due) {
        double left = o->next_due(o->due_arg) - now;
        if (t > (left > 0 ? left : 0) + EARLY)
            harness_fail(__FILE__, __LINE__,
                         "timeout %.6f s sleeps past a timer due in %.6f s", t,
                         left);
    }
    struct pollfd p = {.fd = o->fd, .events = POLLIN};
    int n = poll(&p, 1, to_ms(t));
    CHECK(n >= 0);
    o->wakeups++;
    if (n > 0) {
        CHECK(p.revents & POLLIN);
        o->readable++;
    } else if (isinf(t)) {
        harness_fail(__FILE__, __LINE__,
                     "nothing to wait for but the fd, and it did not become "
                     "readable in %d ms",
                     POLL_CAP_MS);
    }
    int rc = tide_loop_run_once(o->loop, 0);
    CHECK(rc == 0 || rc == 1);
    return rc;
}

/* Turn until tide says nothing is left (at most `most` turns). */
static void drive(struct outer *o, unsigned most)
{
    while (turn(o))
        CHECK(o->wakeups < most);
}

static bool fd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) == 1;
}

/* A relative delay may end later by its timer slack: 2^20 ns at most. */
#define SLACK_MAX 1.048576e-3

/* The timeout is what is left of a timer of `delay` seconds set at
 * harness time `set_at`: no more than the delay and its slack, no less
 * than what is left of the delay now. */
static void check_left(tide_loop *loop, double delay, double set_at)
{
    double t = -1;

    CHECK_EQ(tide_loop_backend_timeout(loop, &t), 0);
    double left = delay - (harness_now() - set_at);
    if (t > delay + SLACK_MAX + EARLY || t < left - EARLY)
        harness_fail(__FILE__, __LINE__,
                     "timeout %.6f s for a delay of %g s with %.6f s left", t,
                     delay, left);
}

/* ---- shared bodies and callbacks -------------------------------------- */

static char order[64];

static void note(char c)
{
    size_t n = strlen(order);

    CHECK(n + 1 < sizeof order);
    order[n] = c;
    order[n + 1] = '\0';
}

struct sleeper {
    double delay;
    double deadline; /* loop time it should wake at */
    double late;     /* loop time it woke at minus deadline */
    char tag;
};

static void *sleep_and_note(void *arg)
{
    struct sleeper *s = arg;
    double t0 = tide_loop_time(NULL);

    s->deadline = t0 + s->delay;
    int err = tide_sleep(s->delay);
    s->late = tide_loop_time(NULL) - s->deadline;
    note(s->tag);
    return err < 0 ? tide_fail(err) : NULL;
}

struct timed {
    tide_loop *loop;
    double deadline;
    double late;
    char tag;
    bool fired;
};

static void timed_cb(void *arg)
{
    struct timed *t = arg;

    t->late = tide_loop_time(t->loop) - t->deadline;
    t->fired = true;
    note(t->tag);
}

static void count_cb(void *arg)
{
    ++*(int *)arg;
}

static void *await_arg(void *f)
{
    void *v;
    int err = tide_await(f, &v);

    note('W');
    return err < 0 ? tide_fail(err) : v;
}

/* A thread that, after `delay` seconds, sends cb(f) to the loop:
 * complete_cb unless told otherwise. */
struct sender {
    tide_loop *loop;
    tide_future *f;
    double delay;
    tide_callback cb;
    pthread_t th;
};

static void complete_cb(void *f)
{
    CHECK_EQ(tide_future_set_result(f, IPTR(42)), 0);
}

static void stop_loop_cb(void *f)
{
    tide_loop_stop(tide_future_get_loop(f));
}

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    struct timespec ts = {0, (long)(s->delay * 1e9)};

    nanosleep(&ts, NULL);
    CHECK_EQ(tide_call_soon_threadsafe(s->loop, s->cb ? s->cb : complete_cb,
                                       s->f),
             0);
    return NULL;
}

static void start_sender(struct sender *s)
{
    CHECK_EQ(pthread_create(&s->th, NULL, sender_main, s), 0);
}

/* ---- the fd ----------------------------------------------------------- */

TEST(backend_fd_is_the_loops_own_and_quiet_when_idle)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    if (poll_backend(loop)) {
        CHECK_EQ(tide_loop_backend_fd(loop), -ENOTSUP);
    } else {
        int fd = tide_loop_backend_fd(loop);
        CHECK(fd >= 0);
        CHECK_EQ(tide_loop_backend_fd(loop), fd); /* the same every time */
        CHECK(!fd_readable(fd));
        tide_loop *other = tide_loop_new();
        CHECK_NOT_NULL(other);
        CHECK(tide_loop_backend_fd(other) != fd);
        CHECK_EQ(tide_loop_close(other), 0);
    }
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(poll_backend_has_no_fd_and_still_runs_by_its_timeout)
{
    setenv("TIDE_BACKEND", "poll", 1);
    tide_loop *loop = tide_loop_new();
    unsetenv("TIDE_BACKEND");
    CHECK_NOT_NULL(loop);
    CHECK_STR_EQ(tide_loop_backend(loop), "poll");
    CHECK_EQ(tide_loop_backend_fd(loop), -ENOTSUP);
    int n = 0;
    double set_at = harness_now();
    CHECK(tide_call_later(loop, 0.01, count_cb, &n) != 0);
    check_left(loop, 0.01, set_at);
    while (n == 0) {
        CHECK(tide_loop_run_once(loop, 1.0) >= 0);
        CHECK(loop_iterations(loop) < 10);
    }
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- the timeout ------------------------------------------------------ */

TEST(timeout_is_zero_when_ready_else_the_earliest_timer_else_infinite)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    double t = -1;
    CHECK_EQ(tide_loop_backend_timeout(loop, &t), 0);
    CHECK(isinf(t) && t > 0);

    int n = 0;
    double set_at = harness_now();
    tide_handle late = tide_call_later(loop, 0.5, count_cb, &n);
    tide_handle early = tide_call_later(loop, 0.1, count_cb, &n);
    tide_handle mid = tide_call_later(loop, 0.3, count_cb, &n);
    CHECK(late && early && mid);
    check_left(loop, 0.1, set_at); /* the earliest */

    CHECK(tide_call_soon(loop, count_cb, &n) != 0);
    CHECK_EQ(tide_loop_backend_timeout(loop, &t), 0);
    CHECK(t == 0);
    CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    CHECK_EQ(n, 1);
    check_left(loop, 0.1, set_at);

    CHECK(tide_handle_cancel(loop, early));
    check_left(loop, 0.3, set_at);
    CHECK(tide_handle_cancel(loop, mid));
    CHECK(tide_handle_cancel(loop, late));
    CHECK_EQ(tide_loop_backend_timeout(loop, &t), 0);
    CHECK(isinf(t));

    /* A timer that can never fire is no reason to wake. */
    tide_handle never = tide_call_later(loop, 1e300, count_cb, &n);
    CHECK(never != 0);
    CHECK_EQ(tide_loop_backend_timeout(loop, &t), 0);
    CHECK(isinf(t));
    CHECK(tide_handle_cancel(loop, never));

    /* A due timer: 0. */
    CHECK(tide_call_at(loop, tide_loop_time(loop) - 1, count_cb, &n) != 0);
    CHECK_EQ(tide_loop_backend_timeout(loop, &t), 0);
    CHECK(t == 0);
    CHECK_EQ(tide_loop_run_once(loop, 0), 0);
    CHECK_EQ(n, 2);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(timeout_on_the_virtual_clock_is_zero_while_a_timer_is_armed)
{
    tide_loop *loop = new_virtual_loop();
    double t = -1;
    int n = 0;
    CHECK(tide_call_later(loop, 60, count_cb, &n) != 0);
    CHECK_EQ(tide_loop_backend_timeout(loop, &t), 0);
    CHECK(t == 0);
    double t0 = tide_loop_time(loop);
    CHECK_EQ(tide_loop_run_once(loop, 0), 0); /* jumps 60 s, fires */
    CHECK_EQ(n, 1);
    CHECK(tide_loop_time(loop) >= t0 + 60 - EARLY);
    CHECK_EQ(tide_loop_backend_timeout(loop, &t), 0);
    CHECK(isinf(t));
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* Timer slack rounds deadlines up: a wait exactly as long as the timeout
 * (never shorter: nanosleep does not return early) must find the timer
 * due, for delays with slack and without. */
TEST(waking_at_the_timeout_finds_the_timer_due)
{
    static const double delays[] = {0.0001, 0.0171, 0.0093, 0.0333, 0.001};
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
        int n = 0;
        CHECK(tide_call_later(loop, delays[i], count_cb, &n) != 0);
        double t;
        CHECK_EQ(tide_loop_backend_timeout(loop, &t), 0);
        CHECK(t >= 0 && t <= delays[i] + SLACK_MAX); /* 0: due already */
        long long ns = (long long)(t * 1e9) + 1; /* the ns truncation lost */
        struct timespec ts = {(time_t)(ns / 1000000000), ns % 1000000000};
        CHECK_EQ(nanosleep(&ts, NULL), 0);
        CHECK_EQ(tide_loop_run_once(loop, 0), 0);
        if (n != 1)
            harness_fail(__FILE__, __LINE__,
                         "delay %g: not due after the timeout %.9f s",
                         delays[i], t);
    }
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- run_once --------------------------------------------------------- */

TEST(run_once_zero_never_blocks)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    double t0 = harness_now();
    CHECK_EQ(tide_loop_run_once(loop, 0), 0); /* empty */
    struct sleeper s = {.delay = 10, .tag = 's'};
    tide_future *task = tide_create_task(loop, sleep_and_note, &s);
    CHECK_NOT_NULL(task);
    int n = 0;
    CHECK(tide_call_later(loop, 10, count_cb, &n) != 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    CHECK(harness_now() - t0 < 1.0);
    CHECK_EQ(n, 0);
    CHECK_EQ(order[0], '\0');
    CHECK_EQ(loop_stats(loop).tasks, 1); /* started and asleep */
    tide_future_release(task);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(run_once_waits_up_to_its_timeout_for_something_to_happen)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    /* Nothing at all: it waits the whole timeout. */
    double t0 = harness_now();
    CHECK_EQ(tide_loop_run_once(loop, 0.05), 0);
    CHECK(harness_now() - t0 >= 0.05 - EARLY);

    /* A timer before the timeout ends the wait, and fires. */
    int n = 0;
    t0 = harness_now();
    CHECK(tide_call_later(loop, 0.02, count_cb, &n) != 0);
    CHECK_EQ(tide_loop_run_once(loop, 5.0), 0);
    CHECK_EQ(n, 1);
    CHECK(harness_now() - t0 >= 0.02 - EARLY);
    CHECK(harness_now() - t0 < 2.0);

    /* A timer after the timeout: the wait ends at the timeout, and the
     * timer has not fired. */
    CHECK(tide_call_later(loop, 0.5, count_cb, &n) != 0);
    t0 = harness_now();
    CHECK_EQ(tide_loop_run_once(loop, 0.02), 1);
    CHECK_EQ(n, 1);
    CHECK(harness_now() - t0 >= 0.02 - EARLY);
    CHECK(harness_now() - t0 < 0.4);

    /* Something ready: no wait at all. */
    CHECK(tide_call_soon(loop, count_cb, &n) != 0);
    t0 = harness_now();
    CHECK_EQ(tide_loop_run_once(loop, 5.0), 1);
    CHECK_EQ(n, 2);
    CHECK(harness_now() - t0 < 0.4);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(run_once_infinite_waits_for_another_thread)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    tide_future *f = tide_future_new(loop);
    CHECK_NOT_NULL(f);
    struct sender s = {.loop = loop, .f = f, .delay = 0.02};
    start_sender(&s);
    double t0 = harness_now();
    CHECK_EQ(tide_loop_run_once(loop, INFINITY), 0);
    CHECK(harness_now() - t0 >= 0.01);
    CHECK(tide_future_done(f));
    CHECK_EQ(pthread_join(s.th, NULL), 0);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void requeue_cb(void *arg)
{
    void **a = arg;
    ++*(int *)a[1];
    CHECK(tide_call_soon(a[0], requeue_cb, arg) != 0);
}

static void rearm_cb(void *arg)
{
    void **a = arg;
    ++*(int *)a[1];
    CHECK(tide_call_later(a[0], 0, rearm_cb, arg) != 0);
}

static void *yield_forever(void *arg)
{
    for (;;) {
        ++*(int *)arg;
        if (tide_sleep(0) < 0)
            return NULL;
    }
}

/* HAZARDS B15/B44: what an iteration schedules runs on the next one, so a
 * self-requeueing callback, a timer re-armed with delay 0 and a yielding
 * task each run once per call, and none keeps run_once from returning.
 * (The due timer also keeps the batch from growing by hand-offs between
 * yielding tasks, which a lone yielding task would get: up to 64 steps
 * in one iteration, see sched.c.) */
TEST(run_once_runs_one_iteration_per_call)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    int calls = 0, fires = 0, steps = 0;
    void *a[2] = {loop, &calls}, *b[2] = {loop, &fires};
    CHECK(tide_call_soon(loop, requeue_cb, a) != 0);
    CHECK(tide_call_later(loop, 0, rearm_cb, b) != 0);
    tide_future *task = tide_create_task(loop, yield_forever, &steps);
    CHECK_NOT_NULL(task);
    uint64_t it0 = loop_iterations(loop);
    for (int i = 1; i <= 20; i++) {
        CHECK_EQ(tide_loop_run_once(loop, 0), 1);
        CHECK_EQ(calls, i);
        CHECK_EQ(fires, i);
        CHECK_EQ(steps, i);
    }
    CHECK_EQ(loop_iterations(loop) - it0, 20);
    tide_future_release(task);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(run_once_says_whether_anything_is_left)
{
    tide_loop *loop = new_virtual_loop();
    /* A plain future nobody will complete is nothing the loop does. */
    tide_future *plain = tide_future_new(loop);
    CHECK_NOT_NULL(plain);
    CHECK_EQ(tide_loop_run_once(loop, 0), 0);

    struct sleeper s = {.delay = 2, .tag = 'a'};
    tide_future *task = tide_create_task(loop, sleep_and_note, &s);
    CHECK_NOT_NULL(task);
    CHECK_EQ(tide_loop_run_once(loop, 0), 1); /* started, asleep */
    CHECK_EQ(tide_loop_run_once(loop, 0), 0); /* woken, finished */
    CHECK(tide_future_done(task));
    CHECK_STR_EQ(order, "a");

    /* An armed handle, a ready callback. */
    int n = 0;
    tide_handle h = tide_call_later(loop, 1, count_cb, &n);
    CHECK(h != 0);
    CHECK(tide_call_soon(loop, count_cb, &n) != 0);
    CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    CHECK(tide_handle_cancel(loop, h));
    CHECK_EQ(tide_loop_run_once(loop, 0), 0);
    CHECK_EQ(n, 1);
    tide_future_release(task);
    tide_future_release(plain);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(bad_input_is_einval_and_changes_nothing)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    int n = 0;
    CHECK(tide_call_soon(loop, count_cb, &n) != 0);
    uint64_t it0 = loop_iterations(loop);
    CHECK_EQ(tide_loop_run_once(loop, NAN), -EINVAL);
    CHECK_EQ(tide_loop_run_once(loop, -1), -EINVAL);
    CHECK_EQ(tide_loop_run_once(loop, -1e-9), -EINVAL);
    CHECK_EQ(tide_loop_run_once(loop, -INFINITY), -EINVAL);
    CHECK_EQ(tide_loop_backend_timeout(loop, NULL), -EINVAL);
    CHECK_EQ(n, 0);
    CHECK_EQ(loop_iterations(loop), it0);
    CHECK_EQ(tide_loop_run_once(loop, -0.0), 0); /* -0 is 0 */
    CHECK_EQ(n, 1);

    /* A closed loop, whose record a future keeps. */
    tide_future *keep = tide_future_new(loop);
    CHECK_NOT_NULL(keep);
    CHECK_EQ(tide_loop_close(loop), 0);
    double t = 7;
    CHECK_EQ(tide_loop_run_once(loop, 0), -EINVAL);
    CHECK_EQ(tide_loop_run_once(loop, INFINITY), -EINVAL);
    CHECK_EQ(tide_loop_backend_fd(loop), -EINVAL);
    CHECK_EQ(tide_loop_backend_timeout(loop, &t), -EINVAL);
    CHECK(t == 7);
    tide_future_release(keep);
    LEAK_GATE();
}

/* A NULL loop is tide_get_event_loop(), as everywhere in tide. */
TEST(null_loop_is_the_threads_default)
{
    tide_loop *def = tide_get_event_loop();
    CHECK_NOT_NULL(def);
    int n = 0;
    CHECK(tide_call_soon(def, count_cb, &n) != 0);
    double t = -1;
    CHECK_EQ(tide_loop_backend_timeout(NULL, &t), 0);
    CHECK(t == 0);
    CHECK_EQ(tide_loop_backend_fd(NULL), tide_loop_backend_fd(def));
    CHECK_EQ(tide_loop_run_once(NULL, 0), 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(tide_loop_close(def), 0);
    LEAK_GATE();
}

/* tide_loop_backend_timeout and the loop's own iterations wait the same
 * way: a timer that can never fire is no reason to wake, on the virtual
 * clock too (where the loop used to poll without blocking, again and
 * again, as if it could jump to it). */
TEST(a_never_firing_timer_makes_no_iteration_spin)
{
    tide_loop *loop = new_virtual_loop();
    struct sleeper s = {.delay = 1e300, .tag = 's'};
    tide_future *task = tide_create_task(loop, sleep_and_note, &s);
    CHECK_NOT_NULL(task);
    struct sender snd = {.loop = loop,
                         .f = task,
                         .delay = 0.03,
                         .cb = stop_loop_cb};
    start_sender(&snd);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(pthread_join(snd.th, NULL), 0);
    CHECK(loop_iterations(loop) <= 3); /* start, the send (and a spare) */
    CHECK(!tide_future_done(task));
    tide_future_release(task);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- nesting, stop, close, debug mode ----------------------------------- */

struct nest {
    tide_loop *loop;
    int rc;
    bool running_inside;
    int close_rc;
};

static void *nested_run_once(void *arg)
{
    struct nest *n = arg;

    note('<');
    n->rc = tide_loop_run_once(n->loop, 0);
    n->close_rc = tide_loop_close(n->loop);
    note('>');
    return NULL;
}

static void *note_b(void *arg)
{
    (void)arg;
    note('b');
    return NULL;
}

static void check_running_cb(void *arg)
{
    struct nest *n = arg;

    n->running_inside = tide_loop_is_running(n->loop);
    n->close_rc = tide_loop_close(n->loop);
}

TEST(run_once_nests_like_run_until_complete)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    struct nest n = {.loop = loop, .rc = -1};
    tide_future *a = tide_create_task(loop, nested_run_once, &n);
    tide_future *b = tide_create_task(loop, note_b, NULL);
    CHECK(a && b);
    order[0] = '\0';
    CHECK_EQ(tide_run_until_complete(loop, a, NULL), 0);
    CHECK_STR_EQ(order, "<b>"); /* b ran inside a's run_once */
    CHECK_EQ(n.rc, 1);          /* a itself is not finished then */
    CHECK_EQ(n.close_rc, -EBUSY);
    tide_future_release(a);
    tide_future_release(b);

    /* From a callback of run_once: running, close refused. */
    CHECK(!tide_loop_is_running(loop));
    CHECK(tide_call_soon(loop, check_running_cb, &n) != 0);
    CHECK_EQ(tide_loop_run_once(loop, 0), 0);
    CHECK(n.running_inside);
    CHECK_EQ(n.close_rc, -EBUSY);
    CHECK(!tide_loop_is_running(loop));
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void stop_cb(void *loop)
{
    tide_loop_stop(loop);
}

TEST(a_stop_during_run_once_ends_only_that_iteration)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    int n = 0;
    CHECK(tide_call_soon(loop, stop_cb, loop) != 0);
    CHECK(tide_call_soon(loop, count_cb, &n) != 0);
    CHECK_EQ(tide_loop_run_once(loop, 0), 0);
    CHECK_EQ(n, 1); /* the iteration's batch ran to its end */
    /* Nothing left over from the stop: the next call waits its timeout,
     * and a later run_forever runs until its own stop. */
    double t0 = harness_now();
    CHECK_EQ(tide_loop_run_once(loop, 0.03), 0);
    CHECK(harness_now() - t0 >= 0.03 - EARLY);
    CHECK(tide_call_later(loop, 0.01, count_cb, &n) != 0);
    CHECK(tide_call_later(loop, 0.02, stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(n, 2);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static char reports[1024];

static void capture(tide_loop *loop, const char *msg, void *arg)
{
    (void)loop;
    (void)arg;
    strncat(reports, msg, sizeof reports - strlen(reports) - 2);
    strcat(reports, "\n");
}

static void hog_cb(void *arg)
{
    (void)arg;
    harness_busy_wait(0.03);
}

TEST(debug_mode_reports_slow_steps_in_run_once)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    CHECK_EQ(tide_loop_set_report_handler(loop, capture, NULL), 0);
    CHECK_EQ(tide_loop_set_slow_callback_duration(loop, 0.01), 0);
    reports[0] = '\0';
    CHECK(tide_call_soon(loop, hog_cb, NULL) != 0);
    CHECK_EQ(tide_loop_run_once(loop, 0), 0);
    if (!strstr(reports, "held the loop"))
        harness_fail(__FILE__, __LINE__, "reports: %s", reports);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* A dump signal makes the fd readable; the iteration it wakes dumps and
 * leaves the fd quiet again, even with a task ready (else the outer loop
 * would spin). In a child, whose stderr (where the dump goes) is read. */
static void dump_on_signal(void *arg)
{
    (void)arg;
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    struct outer o = outer_for(loop);
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    int steps = 0;
    tide_future *task = tide_create_task(loop, yield_forever, &steps);
    CHECK_NOT_NULL(task);
    CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    CHECK(!fd_readable(o.fd));
    raise(SIGUSR1);
    CHECK(fd_readable(o.fd));
    CHECK_EQ(tide_loop_run_once(loop, 0), 1);
    CHECK(!fd_readable(o.fd));
    CHECK_EQ(tide_loop_set_debug(loop, false), 0); /* no report at close */
    tide_future_release(task);
    CHECK_EQ(tide_loop_close(loop), 0);
}

TEST(dump_signal_wakes_the_fd_and_the_iteration_clears_it)
{
    tide_loop *probe = tide_loop_new();
    CHECK_NOT_NULL(probe);
    (void)outer_for(probe); /* skips on the poll() backend */
    CHECK_EQ(tide_loop_close(probe), 0);
    char buf[2048];
    int status = harness_run_child(dump_on_signal, NULL, buf, sizeof buf);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 3 ||
        !strstr(buf, "tide: 1 task(s), 1 ready"))
        harness_fail(__FILE__, __LINE__, "child status %#x, stderr: %s",
                     (unsigned)status, buf);
    LEAK_GATE();
}

/* ---- driven by poll() ------------------------------------------------- */

/* On the virtual clock: tasks sleeping, timers, both firing in deadline
 * order at exactly their deadlines, then a task woken by another thread
 * while the outer loop waits on the fd alone. Each turn fires the next
 * deadline, so the turns are few. */
TEST(poll_loop_drives_sleeps_timers_and_a_thread_on_the_virtual_clock)
{
    tide_loop *loop = new_virtual_loop();
    struct outer o = outer_for(loop);
    order[0] = '\0';
    struct sleeper s[4] = {{.delay = 3, .tag = 'c'},
                           {.delay = 1, .tag = 'a'},
                           {.delay = 4, .tag = 'd'},
                           {.delay = 2, .tag = 'b'}};
    tide_future *tasks[4];
    for (int i = 0; i < 4; i++)
        CHECK_NOT_NULL(tasks[i] =
                           tide_create_task(loop, sleep_and_note, &s[i]));
    double t0 = tide_loop_time(loop);
    struct timed tm[3] = {{loop, t0 + 2.5, 0, 'Y', false},
                          {loop, t0 + 0.5, 0, 'X', false},
                          {loop, t0 + 2.5, 0, 'Z', false}};
    for (int i = 0; i < 3; i++)
        CHECK(tide_call_at(loop, tm[i].deadline, timed_cb, &tm[i]) != 0);
    tide_future *f = tide_future_new(loop);
    CHECK_NOT_NULL(f);
    tide_future *waiter = tide_create_task(loop, await_arg, f);
    CHECK_NOT_NULL(waiter);

    /* Timers first: the thread sends only once the outer loop waits on
     * the fd alone (the virtual clock runs them in no real time). */
    while (strlen(order) < 7)
        CHECK_EQ(turn(&o), 1);
    CHECK_STR_EQ(order, "XabYZcd");
    for (int i = 0; i < 4; i++)
        CHECK(s[i].late >= -EARLY && s[i].late <= EARLY);
    for (int i = 0; i < 3; i++)
        CHECK(tm[i].late >= -EARLY && tm[i].late <= EARLY);
    CHECK_EQ(o.wakeups, 7); /* the start, then one per deadline (6) */
    unsigned before = o.wakeups;

    struct sender snd = {.loop = loop, .f = f, .delay = 0.02};
    start_sender(&snd);
    drive(&o, before + 4);
    CHECK_EQ(o.wakeups, before + 2); /* the send, then the waiter */
    CHECK_STR_EQ(order, "XabYZcdW");
    CHECK_EQ(o.readable, 1); /* the fd woke it once: the thread's send */
    void *v;
    CHECK_EQ(tide_future_result(waiter, &v), 0);
    CHECK_EQ(PINT(v), 42);
    CHECK_EQ(pthread_join(snd.th, NULL), 0);

    for (int i = 0; i < 4; i++) {
        CHECK_EQ(tide_future_result(tasks[i], NULL), 0);
        tide_future_release(tasks[i]);
    }
    tide_future_release(waiter);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct real_clock_case {
    struct sleeper s[4];
    struct timed tm[4];
};

static double real_clock_next_due(void *arg)
{
    struct real_clock_case *c = arg;
    double next = INFINITY;

    for (int i = 0; i < 4; i++)
        if (!c->tm[i].fired && c->tm[i].deadline < next)
            next = c->tm[i].deadline;
    return next;
}

/* On the real clock: the same shape with short delays. The outer loop
 * sleeps in poll() as tide says: wake-ups stay bounded (a spin would make
 * thousands), no turn's timeout reaches past a timer not yet fired
 * (checked by turn(), exactly), and every sleep and timer ends within a
 * bound of its deadline (a loose one: the machine may be loaded; a sleep
 * until the 2 s poll cap would break it). */
TEST(poll_loop_drives_sleeps_timers_and_a_thread_on_the_real_clock)
{
    tide_loop *loop = tide_loop_new();
    CHECK_NOT_NULL(loop);
    static struct real_clock_case c = {
        .s = {{.delay = 0.15, .tag = 'c'},
              {.delay = 0.03, .tag = 'a'},
              {.delay = 0.21, .tag = 'd'},
              {.delay = 0.09, .tag = 'b'}},
    };
    struct outer o = outer_for(loop);
    o.next_due = real_clock_next_due;
    o.due_arg = &c;
    order[0] = '\0';
    tide_future *tasks[4];
    for (int i = 0; i < 4; i++)
        CHECK_NOT_NULL(tasks[i] =
                           tide_create_task(loop, sleep_and_note, &c.s[i]));
    double t0 = tide_loop_time(loop);
    static const double at[4] = {0.045, 0.075, 0.135, 0.195};
    for (int i = 0; i < 4; i++) /* between the sleeps */
        c.tm[i] = (struct timed){loop, t0 + at[i], 0, "PQRS"[i], false};
    for (int i = 0; i < 4; i++)
        CHECK(tide_call_at(loop, c.tm[i].deadline, timed_cb, &c.tm[i]) != 0);
    tide_future *f = tide_future_new(loop);
    CHECK_NOT_NULL(f);
    tide_future *waiter = tide_create_task(loop, await_arg, f);
    CHECK_NOT_NULL(waiter);
    /* The thread sends at about 120 ms, between b and c. */
    struct sender snd = {.loop = loop, .f = f, .delay = 0.12};
    start_sender(&snd);

    drive(&o, 200);
    CHECK_EQ(pthread_join(snd.th, NULL), 0);
    CHECK_EQ(strlen(order), 9);
    /* Sleeps in order, timers in order; how the two interleave, and where
     * the waiter comes, depends on how soon the tasks and the thread got
     * to run (the virtual clock test checks the whole order). */
    char sleeps[8], timers[8];
    size_t ns = 0, nt = 0;
    for (const char *p = order; *p; p++) {
        if (*p >= 'a' && *p <= 'd')
            sleeps[ns++] = *p;
        else if (*p != 'W')
            timers[nt++] = *p;
    }
    sleeps[ns] = timers[nt] = '\0';
    CHECK_STR_EQ(sleeps, "abcd");
    CHECK_STR_EQ(timers, "PQRS");
    double bound = 0.5 * harness_timeout_mult();
    for (int i = 0; i < 4; i++)
        if (c.s[i].late < -EARLY || c.s[i].late > bound)
            harness_fail(__FILE__, __LINE__, "sleep %c: %.6f s late",
                         c.s[i].tag, c.s[i].late);
    for (int i = 0; i < 4; i++)
        if (c.tm[i].late < -EARLY || c.tm[i].late > bound)
            harness_fail(__FILE__, __LINE__, "timer %c: %.6f s late",
                         c.tm[i].tag, c.tm[i].late);
    /* start, 8 deadlines, the thread; each may take a second turn (a
     * wake-up within the ms the timeout was rounded up to, or the ready
     * task it woke), and a few spare. */
    if (o.wakeups > 2 * 10 + 6)
        harness_fail(__FILE__, __LINE__, "%u wake-ups", o.wakeups);
    CHECK(o.readable >= 1 && o.readable <= 2);

    for (int i = 0; i < 4; i++) {
        CHECK_EQ(tide_future_result(tasks[i], NULL), 0);
        tide_future_release(tasks[i]);
    }
    CHECK_EQ(tide_future_result(waiter, NULL), 0);
    tide_future_release(waiter);
    tide_future_release(f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}
