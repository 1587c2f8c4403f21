/* The cancellation and time rules of the contract (issue 7): an accepted
 * cancel request is never lost, close asks until every task is done,
 * timeout scopes convert only their own request, delays count from the
 * call, due timers are not starved by hand-offs; and the core's other
 * asyncio behaviours: semaphore FIFO order, as_completed over a repeated
 * future, a task waiting on itself, leaks at close.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "core/timer.h"  /* white box: deadlines */
#include "task/future.h" /* white box: the run's completion flag */

#include <errno.h>
#include <math.h>
#include <stdio.h>

/* ---- a request is never lost ------------------------------------------ */

static void *cancel_self_and_return(void *arg)
{
    (void)arg;
    CHECK(tide_future_cancel(tide_current_task()));
    return IPTR(5); /* no suspension: the request is still pending */
}

TEST(task_that_cancels_itself_and_returns_ends_cancelled)
{
    tide_loop *loop = new_virtual_loop();
    tide_future *t = tide_create_task(loop, cancel_self_and_return, NULL);
    void *r = IPTR(1);
    CHECK_ERR(tide_run_until_complete(loop, t, &r), -ECANCELED);
    CHECK(tide_future_cancelled(t));
    CHECK_EQ(PINT(r), 1); /* the value was dropped */
    CHECK_EQ(tide_task_cancelling(t), 1);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *cancel_uncancel_sleep(void *arg)
{
    int *rc = arg;
    tide_future *self = tide_current_task();

    CHECK(tide_future_cancel(self));
    CHECK_EQ(tide_task_uncancel(self), 0); /* withdrawn: nothing pending */
    *rc = tide_sleep(0);
    return IPTR(6);
}

/* The count reaching 0 drops the request not yet delivered (3.13). */
TEST(uncancel_to_zero_drops_the_pending_request)
{
    tide_loop *loop = new_virtual_loop();
    int rc = 1;
    tide_future *t = tide_create_task(loop, cancel_uncancel_sleep, &rc);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(rc, 0);
    CHECK_EQ(PINT(r), 6);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *swallow(void *arg)
{
    (void)arg;
    int rc = tide_sleep(1e9);
    CHECK_ERR(rc, -ECANCELED);
    return IPTR(7); /* returns normally despite the request */
}

struct fwd {
    tide_future *target;
    int how; /* 0 await, 1 wait_for, 2 await then return at once */
    int rc;
    void *value;
    int next_rc;
};

static void *await_swallower(void *arg)
{
    struct fwd *w = arg;

    if (w->how == 1)
        w->rc = tide_wait_for(w->target, 100.0, &w->value);
    else
        w->rc = tide_await(w->target, &w->value);
    if (w->how == 2)
        return IPTR(8); /* the pending request makes this cancelled */
    w->next_rc = tide_sleep(10.0);
    return IPTR(8);
}

/* The request forwarded to the awaited task, which swallowed it: the
 * await returns its value, and the request is delivered at the next
 * suspension (asyncio 3.12 loses it). Through tide_await, tide_wait_for
 * and a return without a further suspension. */
TEST(forwarded_request_that_was_swallowed_stays_pending)
{
    for (int how = 0; how < 3; how++) {
        tide_loop *loop = new_virtual_loop();
        tide_future *b = tide_create_task(loop, swallow, NULL);
        struct fwd w = {b, how, 1, NULL, 1};
        tide_future *a = tide_create_task(loop, await_swallower, &w);
        run_once(loop);
        CHECK(tide_future_cancel(a));
        void *r = NULL;
        int rc = tide_run_until_complete(loop, a, &r);
        CHECK_EQ(w.rc, 0);
        CHECK_EQ(PINT(w.value), 7);
        CHECK_EQ(tide_task_cancelling(a), 1);
        if (how == 2) {
            CHECK_ERR(rc, -ECANCELED);
            CHECK(tide_future_cancelled(a));
        } else {
            CHECK_ERR(w.next_rc, -ECANCELED);
            CHECK_EQ(rc, 0); /* delivered; then it returned normally */
            CHECK_EQ(PINT(r), 8);
        }
        tide_future_release(a);
        tide_future_release(b);
        CHECK_EQ(tide_loop_close(loop), 0);
    }
    LEAK_GATE();
}

static void *fail_when_cancelled(void *arg)
{
    (void)arg;
    tide_sleep(1e9);
    return tide_fail(-EIO); /* an error raised while cancelled */
}

static void *await_gather(void *arg)
{
    struct fwd *w = arg;

    w->rc = tide_await(w->target, NULL);
    w->next_rc = tide_sleep(0);
    return NULL;
}

/* A gather that fails with a child's error does not absorb the request. */
TEST(gather_failing_with_a_child_error_does_not_absorb_the_request)
{
    tide_loop *loop = new_virtual_loop();
    tide_future *c = tide_create_task(loop, fail_when_cancelled, NULL);
    tide_future *g = tide_gather(&c, 1, 0);
    struct fwd w = {g, 0, 1, NULL, 1};
    tide_future *a = tide_create_task(loop, await_gather, &w);
    run_once(loop);
    CHECK(tide_future_cancel(a));
    tide_run_until_complete(loop, a, NULL);
    CHECK_ERR(w.rc, -EIO);
    CHECK_ERR(w.next_rc, -ECANCELED);
    tide_future_release(a);
    tide_future_release(g);
    tide_future_release(c);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- closing asks until the task is done -------------------------------- */

struct stubborn {
    int rounds;     /* cancellations caught */
    int cancelling; /* tide_task_cancelling seen at the first one */
    int timeouts;
    int kind; /* 0: catches 5 cancellations; 1: retries on timeout */
};

static void *stubborn_body(void *arg)
{
    struct stubborn *s = arg;

    if (s->kind == 1) {
        /* Retries on timeout: a scope firing in the same iteration as
         * the close's request must not turn that request into a timeout. */
        for (int i = 0; i < 1000; i++) {
            tide_timeout *t = tide_timeout_begin(0.0);
            CHECK_NOT_NULL(t);
            int err = tide_timeout_end(t, tide_sleep(1e9));
            if (err == -ETIMEDOUT) {
                s->timeouts++;
                continue;
            }
            CHECK_ERR(err, -ECANCELED);
            s->cancelling = tide_task_cancelling(tide_current_task());
            return tide_fail(err);
        }
        return IPTR(-1);
    }
    while (s->rounds < 5) {
        int rc = tide_sleep(1e9);
        if (rc != -ECANCELED)
            return tide_fail(-EPROTO);
        if (s->rounds++ == 0)
            s->cancelling = tide_task_cancelling(tide_current_task());
    }
    return NULL;
}

TEST(close_repeats_its_counted_request_until_the_task_is_done)
{
    tide_loop *loop = new_virtual_loop();
    struct stubborn s = {0, 0, 0, 0};
    tide_future *t = tide_create_task(loop, stubborn_body, &s);
    run_once(loop);
    CHECK_EQ(tide_loop_close(loop), 0); /* does not hang */
    CHECK_EQ(s.rounds, 5);
    CHECK_EQ(s.cancelling, 1); /* the close's request counts */
    CHECK(tide_task_cancelling(t) >= 5);
    CHECK(tide_future_done(t));
    CHECK_EQ(tide_future_result(t, NULL), 0);
    tide_future_release(t);
    LEAK_GATE();
}

TEST(close_is_not_turned_into_a_timeout_by_a_scope)
{
    for (int virt = 0; virt < 2; virt++) {
        tide_loop *loop = virt ? new_virtual_loop() : tide_loop_new();
        struct stubborn s = {0, 0, 0, 1};
        tide_future *t = tide_create_task(loop, stubborn_body, &s);
        run_once(loop);
        CHECK_EQ(tide_loop_close(loop), 0);
        CHECK(tide_future_cancelled(t));
        CHECK(s.cancelling >= 1);
        CHECK(s.timeouts < 1000);
        tide_future_release(t);
    }
    LEAK_GATE();
}

/* A scope converts only its own request: an outside cancel in the same
 * iteration as the scope's deadline stays -ECANCELED. */
static void *scope_and_outside(void *arg)
{
    int *rc = arg;
    tide_timeout *t = tide_timeout_begin(1.0);
    *rc = tide_timeout_end(t, tide_sleep(10.0));
    return NULL;
}

static void cancel_cb(void *arg)
{
    tide_future_cancel(arg);
}

TEST(scope_converts_only_its_own_request)
{
    tide_loop *loop = new_virtual_loop();
    int rc = 1;
    tide_future *t = tide_create_task(loop, scope_and_outside, &rc);
    run_once(loop); /* the scope is open, its deadline 1 s away */
    CHECK(tide_call_at(loop, tide_loop_time(loop) + 1.0, cancel_cb, t));
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK_ERR(rc, -ECANCELED);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- time counts from the call ------------------------------------------ */

struct late {
    tide_loop *loop;
    double set_at, fired_at;
};

static void late_cb(void *arg)
{
    struct late *l = arg;

    l->fired_at = harness_now();
}

static void busy_then_call_later(void *arg)
{
    struct late *l = arg;

    harness_busy_wait(0.05);
    l->set_at = harness_now();
    CHECK(tide_call_later(l->loop, 0.02, late_cb, l));
}

TEST(call_later_counts_from_the_call)
{
    tide_loop *loop = tide_loop_new();
    struct late l = {loop, 0, 0};
    CHECK(tide_call_soon(loop, busy_then_call_later, &l));
    CHECK(tide_call_later(loop, 0.2, harness_stop_cb, loop));
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK(l.fired_at > 0);
    CHECK(l.fired_at - l.set_at >= 0.02 - 1e-4);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *busy_scope(void *arg)
{
    double *elapsed = arg;

    harness_busy_wait(0.05);
    double t0 = harness_now();
    tide_timeout *t = tide_timeout_begin(0.02);
    int rc = tide_timeout_end(t, tide_sleep(10.0));
    *elapsed = harness_now() - t0;
    CHECK_ERR(rc, -ETIMEDOUT);
    return NULL;
}

TEST(timeout_scope_counts_from_the_call)
{
    tide_loop *loop = tide_loop_new();
    double elapsed = 0;
    tide_future *t = tide_create_task(loop, busy_scope, &elapsed);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(elapsed >= 0.02 - 1e-4);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- due timers are not starved by hand-offs ---------------------------- */

static struct {
    int switches; /* hand-offs so far */
    int fired_at; /* the count when the timer ran, or -1 */
    int scope_at; /* the count when the scope cancelled, or -1 */
} starve;

static void mark_fired(void *arg)
{
    (void)arg;
    starve.fired_at = starve.switches;
}

static void *ping(void *arg)
{
    int id = (int)PINT(arg);

    for (int i = 0; i < 500; i++) {
        if (id == 0 && i == 10)
            CHECK(tide_call_later(NULL, 0, mark_fired, NULL));
        starve.switches++;
        CHECK_EQ(tide_sleep(0), 0);
    }
    return NULL;
}

TEST(a_due_timer_fires_before_later_hand_offs)
{
    tide_loop *loop = tide_loop_new();
    starve.switches = 0;
    starve.fired_at = -1;
    tide_future *t[2];
    for (int i = 0; i < 2; i++)
        t[i] = tide_create_task(loop, ping, IPTR(i));
    tide_future *g = tide_gather(t, 2, 0);
    CHECK_EQ(tide_run_until_complete(loop, g, NULL), 0);
    /* Set at hand-off 20 or 21 (task 0's 11th turn): it runs before
     * either task gets another turn past the current batch. */
    CHECK(starve.fired_at >= 20);
    CHECK(starve.fired_at <= 23);
    tide_future_release(g);
    for (int i = 0; i < 2; i++)
        tide_future_release(t[i]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void *zero_scope(void *arg)
{
    (void)arg;
    tide_timeout *t = tide_timeout_begin(0.0);
    int rc = 0;
    while (rc == 0 && starve.switches < 1000) {
        starve.switches++;
        rc = tide_sleep(0);
    }
    starve.scope_at = starve.switches;
    CHECK_ERR(tide_timeout_end(t, rc), -ETIMEDOUT);
    return NULL;
}

static void *yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000 && starve.scope_at < 0; i++)
        tide_sleep(0);
    return NULL;
}

TEST(a_zero_timeout_scope_fires_on_the_next_iteration)
{
    tide_loop *loop = tide_loop_new();
    starve.switches = 0;
    starve.scope_at = -1;
    tide_future *t[2] = {tide_create_task(loop, zero_scope, NULL),
                         tide_create_task(loop, yielder, NULL)};
    tide_future *g = tide_gather(t, 2, 0);
    CHECK_EQ(tide_run_until_complete(loop, g, NULL), 0);
    CHECK(starve.scope_at >= 1);
    CHECK(starve.scope_at <= 2);
    tide_future_release(g);
    tide_future_release(t[0]);
    tide_future_release(t[1]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- semaphore FIFO (CPython 3.13's test_acquire_fifo_order_2) ---------- */

static struct {
    tide_semaphore *sem;
    int order[8];
    int n;
} fifo;

static void *sem_c1(void *arg)
{
    (void)arg;
    CHECK_EQ(tide_semaphore_acquire(fifo.sem), 0);
    fifo.order[fifo.n++] = 1;
    return NULL;
}

static void *sem_c2(void *arg)
{
    (void)arg;
    CHECK_EQ(tide_semaphore_acquire(fifo.sem), 0);
    fifo.order[fifo.n++] = 2;
    CHECK_EQ(tide_semaphore_release(fifo.sem), 0);
    CHECK_EQ(tide_semaphore_acquire(fifo.sem), 0); /* behind c3 */
    fifo.order[fifo.n++] = 4;
    return NULL;
}

static void *sem_c3(void *arg)
{
    (void)arg;
    CHECK_EQ(tide_semaphore_acquire(fifo.sem), 0);
    fifo.order[fifo.n++] = 3;
    return NULL;
}

static void *sem_main(void *arg)
{
    (void)arg;
    tide_future *t[3] = {tide_create_task(NULL, sem_c1, NULL),
                         tide_create_task(NULL, sem_c2, NULL),
                         tide_create_task(NULL, sem_c3, NULL)};
    CHECK_EQ(tide_sleep(0), 0);
    CHECK_EQ(tide_semaphore_release(fifo.sem), 0);
    CHECK_EQ(tide_semaphore_release(fifo.sem), 0);
    tide_future *g = tide_gather(t, 3, 0);
    CHECK_EQ(tide_await(g, NULL), 0);
    tide_future_release(g);
    for (int i = 0; i < 3; i++)
        tide_future_release(t[i]);
    return NULL;
}

TEST(semaphore_woken_waiters_run_before_a_releaser_that_reacquires)
{
    fifo.sem = tide_semaphore_new(1);
    fifo.n = 0;
    CHECK_EQ(tide_run(sem_main, NULL, NULL), 0);
    CHECK_EQ(fifo.n, 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(fifo.order[i], i + 1);
    CHECK_EQ(tide_semaphore_value(fifo.sem), 0); /* c1, c3 kept theirs */
    CHECK(tide_semaphore_locked(fifo.sem));
    tide_semaphore_free(fifo.sem);
    LEAK_GATE();
}

/* ---- as_completed over a repeated future ---------------------------------
 */

static void *ac_dups(void *arg)
{
    (void)arg;
    tide_future *a = tide_future_new(NULL), *b = tide_future_new(NULL);
    tide_future *fs[5] = {a, b, a, a, b};
    tide_as_completed *it = tide_as_completed_new(fs, 5);
    CHECK_NOT_NULL(it);
    CHECK_EQ(tide_future_set_result(b, IPTR(2)), 0);
    tide_future *next = NULL;
    CHECK_EQ(tide_as_completed_next(it, &next), 1);
    CHECK(next == b);
    CHECK_EQ(tide_future_set_result(a, IPTR(1)), 0);
    CHECK_EQ(tide_as_completed_next(it, &next), 1);
    CHECK(next == a);
    CHECK_EQ(tide_as_completed_next(it, &next), 0); /* each once */
    tide_as_completed_free(it);
    /* Done before the iterator is made, given twice: once too. */
    tide_future *d[3] = {a, a, b};
    it = tide_as_completed_new(d, 3);
    CHECK_EQ(tide_as_completed_next(it, &next), 1);
    CHECK(next == a);
    CHECK_EQ(tide_as_completed_next(it, &next), 1);
    CHECK(next == b);
    CHECK_EQ(tide_as_completed_next(it, &next), 0);
    tide_as_completed_free(it);
    tide_future_release(a);
    tide_future_release(b);
    return NULL;
}

TEST(as_completed_hands_out_a_repeated_future_once)
{
    CHECK_EQ(tide_run(ac_dups, NULL, NULL), 0);
    LEAK_GATE();
}

/* ---- waiting on oneself
 * ----------------------------------------------------- */

static void *wait_on_self(void *arg)
{
    (void)arg;
    tide_future *self = tide_current_task();
    tide_future *other = tide_future_new(NULL);
    tide_future *fs[2] = {other, self};
    size_t nd = 9, np = 9;

    CHECK_ERR(tide_await(self, NULL), -EINVAL);
    CHECK_ERR(tide_wait_for(self, 1.0, NULL), -EINVAL);
    for (int when = TIDE_FIRST_COMPLETED; when <= TIDE_ALL_COMPLETED; when++)
        CHECK_ERR(tide_wait(fs, 2, when, 1.0, NULL, &nd, NULL, &np), -EINVAL);
    tide_as_completed *it = tide_as_completed_new(fs, 2);
    tide_future *next = NULL;
    CHECK_ERR(tide_as_completed_next(it, &next), -EINVAL);
    tide_as_completed_free(it);
    errno = 0;
    CHECK_NULL(tide_gather(fs, 2, 0));
    CHECK_ERR(errno, EINVAL);
    errno = 0;
    CHECK_NULL(tide_shield(self));
    CHECK_ERR(errno, EINVAL);
    tide_future_release(other);
    return IPTR(3);
}

TEST(waiting_on_oneself_is_refused_at_once)
{
    tide_loop *loop = new_virtual_loop();
    double t0 = tide_loop_time(loop);
    tide_future *t = tide_create_task(loop, wait_on_self, NULL);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 3);
    CHECK(tide_loop_time(loop) == t0); /* nothing waited */
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- leaks at close
 * ---------------------------------------------------------- */

TEST(gather_and_shield_over_a_pending_future_are_freed_at_close)
{
    for (int round = 0; round < 1000; round++) {
        tide_loop *loop = tide_loop_new();
        tide_future *f = tide_future_new(loop);
        tide_future *g = tide_gather(&f, 1, 0);
        tide_future *s = tide_shield(f);
        tide_future *fs[2] = {f, g};
        tide_future *gg = tide_gather(fs, 2, TIDE_RETURN_ERRORS);
        CHECK_NOT_NULL(g);
        CHECK_NOT_NULL(s);
        CHECK_NOT_NULL(gg);
        if (round % 2) { /* released before or after the close */
            tide_future_release(gg);
            tide_future_release(s);
        }
        CHECK_EQ(tide_loop_close(loop), 0);
        CHECK(!tide_future_done(g));
        tide_future_release(g);
        tide_future_release(f);
        if (round % 2 == 0) {
            CHECK(!tide_future_done(s));
            tide_future_release(gg);
            tide_future_release(s);
        }
    }
    LEAK_GATE();
}

static void *return_with_scope_open(void *arg)
{
    (void)arg;
    tide_timeout *outer = tide_timeout_begin(5.0);
    tide_timeout *inner = tide_timeout_begin(1.0);
    CHECK_NOT_NULL(outer);
    CHECK_NOT_NULL(inner);
    return IPTR(4); /* neither ended: a misuse */
}

static void count_report(tide_loop *loop, const char *msg, void *arg)
{
    (void)loop;
    if (strstr(msg, "timeout scope still open"))
        ++*(int *)arg;
}

TEST(task_returning_with_a_scope_open_frees_it_and_debug_reports)
{
    tide_loop *loop = new_virtual_loop();
    int reports = 0;
    CHECK_EQ(tide_loop_set_debug(loop, true), 0);
    CHECK_EQ(tide_loop_set_report_handler(loop, count_report, &reports), 0);
    tide_future *t = tide_create_task(loop, return_with_scope_open, NULL);
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, t, &r), 0);
    CHECK_EQ(PINT(r), 4);
    CHECK_EQ(reports, 2);
    CHECK_EQ(loop_stats(loop).handles, 0); /* the deadlines are gone */
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- a nested run restores the outer run's completion flag ---------------
 */

struct nest {
    tide_loop *loop;
    tide_future *outer;
    bool flag_ok;
};

static void *short_task(void *arg)
{
    (void)arg;
    return IPTR(1);
}

static void *nested_runner(void *arg)
{
    struct nest *n = arg;
    tide_future *c = tide_create_task(n->loop, short_task, NULL);

    CHECK_EQ(tide_run_until_complete(n->loop, c, NULL), 0);
    tide_future_release(c); /* its flag must not be read after this */
    /* White box: the hot path reads this flag to stop extending a batch
     * past the end of the run; it must be the outer run's again. */
    n->flag_ok = n->loop->run_done == &n->outer->done;
    for (int i = 0; i < 200; i++)
        tide_sleep(0); /* hand-offs that read it */
    return NULL;
}

static void *other_yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        tide_sleep(0);
    return NULL;
}

TEST(nested_run_restores_the_outer_completion_flag)
{
    tide_loop *loop = tide_loop_new();
    struct nest n = {loop, NULL, false};
    tide_future *t[2] = {tide_create_task(loop, nested_runner, &n),
                         tide_create_task(loop, other_yielder, NULL)};
    n.outer = tide_gather(t, 2, 0);
    CHECK_EQ(tide_run_until_complete(loop, n.outer, NULL), 0);
    CHECK(n.flag_ok);
    tide_future_release(n.outer);
    tide_future_release(t[0]);
    tide_future_release(t[1]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- timer slack -----------------------------------------------------------
 */

/* White box: a relative deadline is rounded up by less than 1/128 of the
 * delay and at most 2^20 ns, never down; short delays and the virtual
 * clock are exact. */
TEST(timer_slack_is_bounded_and_never_early)
{
    tide_loop *loop = tide_loop_new();
    static const double delays[] = {50e-6, 1e-4, 1e-3, 0.01, 0.1, 1.0, 60.0};
    for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
        int64_t before = tide__loop_now(loop), d = 0;
        CHECK_EQ(tide__deadline_in(loop, delays[i], &d), 0);
        int64_t after = tide__loop_now(loop);
        int64_t want = (int64_t)(delays[i] * 1e9 + 0.5);
        CHECK(d >= before + want);
        int64_t slack = want / 128 < (1 << 20) ? want / 128 : (1 << 20);
        CHECK(d <= after + want + slack);
        if (delays[i] <= 1e-4)
            CHECK(d <= after + want); /* exact */
    }
    CHECK_EQ(tide_loop_close(loop), 0);
    tide_loop *v = new_virtual_loop();
    int64_t d = 0, now = tide__loop_now(v);
    CHECK_EQ(tide__deadline_in(v, 1.0, &d), 0);
    CHECK_EQ(d, now + 1000000000);
    CHECK_EQ(tide_loop_close(v), 0);
    LEAK_GATE();
}

/* ---- a wait whose object was freed, then a cancel before it ran ----------
 */

struct freed_it {
    tide_as_completed *it;
    tide_future *task;
    int next_rc, later_rc;
};

static void free_then_cancel(void *arg)
{
    struct freed_it *f = arg;

    tide_as_completed_free(f->it);      /* wakes the waiter with -EBADF */
    CHECK(tide_future_cancel(f->task)); /* while it is queued */
}

static void *next_on_freed(void *arg)
{
    struct freed_it *f = arg;
    tide_future *next = NULL;

    f->next_rc = tide_as_completed_next(f->it, &next);
    f->later_rc = tide_sleep(1.0);
    return NULL;
}

/* -EBADF wins (the iterator is gone: the caller must not touch it) and
 * the request stays pending for the next suspension. */
TEST(freed_wait_then_cancel_reports_ebadf_and_keeps_the_request)
{
    tide_loop *loop = new_virtual_loop();
    tide_future *p = tide_future_new(loop);
    struct freed_it f = {tide_as_completed_new(&p, 1), NULL, 1, 1};
    f.task = tide_create_task(loop, next_on_freed, &f);
    run_once(loop);
    CHECK(tide_call_soon(loop, free_then_cancel, &f));
    CHECK_EQ(tide_run_until_complete(loop, f.task, NULL), 0);
    CHECK_ERR(f.next_rc, -EBADF);
    CHECK_ERR(f.later_rc, -ECANCELED);
    tide_future_release(f.task);
    tide_future_release(p);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}
