/* Callbacks and timers: call_soon FIFO, call_later/call_at in deadline
 * order with ties in the order set, cancelling before and after a run,
 * negative/NaN/huge delays, and the hostile cases from HAZARDS.md: B14 (a
 * zero-delay timer re-armed from its own callback runs at most once per
 * iteration and starves nothing), B15 (10,000 timers, many equal deadlines,
 * a third cancelled, past-deadline timers made during a pass run on the
 * next one), B16 (a timer cancelled by another due in the same pass never
 * runs), B33/B34 (call_soon_threadsafe from several threads: FIFO per
 * thread, nothing lost, bounded stress, wakeup of a blocked loop; while
 * the loop closes, every call runs or is refused with -ESHUTDOWN).
 * Timer tests run on the virtual clock.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char order[256];

static void append_cb(void *tag)
{
    strcat(order, tag);
}

static void count_cb(void *arg)
{
    ++*(int *)arg;
}

/* ---- call_soon ----------------------------------------------------- */

static int fifo_log[200];
static int fifo_n;

static void fifo_cb(void *arg)
{
    fifo_log[fifo_n++] = (int)PINT(arg);
}

TEST(call_soon_runs_in_fifo_order)
{
    tide_loop *loop = tide_loop_new();
    tide_handle hs[200];
    fifo_n = 0;
    for (int i = 0; i < 200; i++) {
        hs[i] = tide_call_soon(loop, fifo_cb, IPTR(i));
        CHECK(hs[i] != 0);
        for (int j = 0; j < i; j++)
            CHECK(hs[j] != hs[i]);
    }
    CHECK_EQ(fifo_n, 0); /* nothing runs inside call_soon */
    CHECK_EQ(loop_stats(loop).handles, 200);
    run_once(loop);
    CHECK_EQ(fifo_n, 200);
    for (int i = 0; i < 200; i++)
        CHECK_EQ(fifo_log[i], i);
    CHECK_EQ(loop_stats(loop).handles, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct chain {
    tide_loop *loop;
};

static void schedules_c(void *arg)
{
    struct chain *c = arg;

    strcat(order, "A");
    CHECK(tide_call_soon(c->loop, append_cb, "C") != 0);
}

TEST(call_soon_from_callback_runs_after_ready_ones)
{
    tide_loop *loop = tide_loop_new();
    struct chain c = {loop};
    order[0] = '\0';
    tide_call_soon(loop, schedules_c, &c);
    tide_call_soon(loop, append_cb, "B");
    /* Two iterations are enough for the whole chain. */
    run_once(loop);
    run_once(loop);
    CHECK_STR_EQ(order, "ABC");
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(call_soon_bad_args)
{
    tide_loop *loop = tide_loop_new();
    int n = 0;
    errno = 0;
    CHECK(tide_call_soon(loop, NULL, &n) == 0);
    CHECK_ERR(errno, EINVAL);
    errno = 0;
    CHECK(tide_call_later(loop, 1.0, NULL, &n) == 0);
    CHECK_ERR(errno, EINVAL);
    errno = 0;
    CHECK(tide_call_at(loop, 1.0, NULL, &n) == 0);
    CHECK_ERR(errno, EINVAL);
    errno = 0;
    CHECK(tide_call_later(loop, NAN, count_cb, &n) == 0);
    CHECK_ERR(errno, EINVAL);
    errno = 0;
    CHECK(tide_call_at(loop, NAN, count_cb, &n) == 0);
    CHECK_ERR(errno, EINVAL);
    tide_loop_stats st = loop_stats(loop);
    CHECK_EQ(st.handles, 0);
    CHECK_EQ(st.timers, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- call_later / call_at order ------------------------------------ */

struct stamp {
    tide_loop *loop;
    const char *tag;
    double not_before;
};

static void stamp_cb(void *arg)
{
    struct stamp *s = arg;

    CHECK(tide_loop_time(s->loop) >= s->not_before - EARLY);
    strcat(order, s->tag);
}

TEST(timers_fire_in_deadline_order_ties_in_set_order)
{
    tide_loop *loop = new_virtual_loop();
    double t0 = tide_loop_time(loop);
    static const double delay[] = {3, 1, 2, 1, 1, 2, 0.5};
    static const char *tag[] = {"a", "b", "c", "d", "e", "f", "g"};
    struct stamp st[7];
    order[0] = '\0';
    for (int i = 0; i < 7; i++) {
        st[i] = (struct stamp){loop, tag[i], t0 + delay[i]};
        /* Alternate call_later and call_at: same deadlines either way. */
        tide_handle h =
            i % 2 ? tide_call_at(loop, t0 + delay[i], stamp_cb, &st[i])
                  : tide_call_later(loop, delay[i], stamp_cb, &st[i]);
        CHECK(h != 0);
    }
    CHECK_EQ(loop_stats(loop).timers, 7);
    CHECK(tide_call_later(loop, 10, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_STR_EQ(order, "gbdecfa");
    CHECK(tide_loop_time(loop) >= t0 + 10 - EARLY);
    CHECK_EQ(loop_stats(loop).timers, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct tie_round {
    tide_loop *loop;
    char got[4];
};

static void tie_a(void *arg)
{
    strcat(((struct tie_round *)arg)->got, "A");
}

static void tie_b(void *arg)
{
    strcat(((struct tie_round *)arg)->got, "B");
}

static void tie_c(void *arg)
{
    strcat(((struct tie_round *)arg)->got, "C");
}

static void *tie_rounds(void *loop)
{
    for (int i = 0; i < 300; i++) {
        /* Move the clock by odd amounts so the reading has many values. */
        CHECK_EQ(tide_sleep(0.37 + 1.23456789e-7 * i), 0);
        struct tie_round r = {loop, ""};
        double now = tide_loop_time(loop);
        CHECK(tide_call_later(loop, 0.5, tie_a, &r) != 0);
        CHECK(tide_call_at(loop, now + 0.5, tie_b, &r) != 0);
        CHECK(tide_call_later(loop, 0.5, tie_c, &r) != 0);
        CHECK_EQ(tide_sleep(1), 0);
        if (strcmp(r.got, "ABC") != 0)
            harness_fail(__FILE__, __LINE__, "round %d at %.9f: %s", i, now,
                         r.got);
    }
    return NULL;
}

TEST(call_at_now_plus_d_ties_with_call_later_d)
{
    tide_loop *loop = new_virtual_loop();
    tide_future *t = tide_create_task(loop, tie_rounds, loop);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct same_iter {
    tide_loop *loop;
    uint64_t iter[2];
    int n;
};

static void same_iter_cb(void *arg)
{
    struct same_iter *s = arg;

    s->iter[s->n++] = loop_iterations(s->loop);
}

static void set_two_apart(void *arg)
{
    struct same_iter *s = arg;

    CHECK(tide_call_later(s->loop, 0.01, same_iter_cb, s) != 0);
    harness_busy_wait(0.02);
    /* Same iteration, but the delay counts from this call: 20 ms later
     * than the first, so it fires on a later iteration. */
    CHECK(tide_call_later(s->loop, 0.01, same_iter_cb, s) != 0);
}

TEST(equal_delays_count_from_each_call)
{
    tide_loop *loop = tide_loop_new();
    struct same_iter s = {loop, {0, 0}, 0};
    CHECK(tide_call_soon(loop, set_two_apart, &s) != 0);
    CHECK(tide_call_later(loop, 0.2, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(s.n, 2);
    CHECK(s.iter[0] < s.iter[1]);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(negative_delay_and_past_deadline_run_next)
{
    tide_loop *loop = new_virtual_loop();
    double t0 = tide_loop_time(loop);
    struct stamp a = {loop, "a", t0}, b = {loop, "b", t0 + 1};
    struct stamp c = {loop, "c", t0};
    order[0] = '\0';
    CHECK(tide_call_later(loop, 1, stamp_cb, &b) != 0);
    CHECK(tide_call_later(loop, -5, stamp_cb, &a) != 0);
    CHECK(tide_call_at(loop, t0 - 100, stamp_cb, &c) != 0);
    CHECK(tide_call_later(loop, 2, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    /* a and c ran before any time passed; then b. */
    CHECK(strcmp(order, "acb") == 0 || strcmp(order, "cab") == 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct at_probe {
    tide_loop *loop;
    double when;
    double fired_at;
};

static void at_cb(void *arg)
{
    struct at_probe *p = arg;

    p->fired_at = tide_loop_time(p->loop);
}

TEST(call_at_fires_at_its_time_on_the_real_clock)
{
    tide_loop *loop = tide_loop_new();
    struct at_probe p = {loop, tide_loop_time(loop) + 0.015, -1};
    CHECK(tide_call_at(loop, p.when, at_cb, &p) != 0);
    CHECK(tide_call_at(loop, p.when + 0.005, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK(p.fired_at >= p.when - EARLY);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(huge_delays_never_fire)
{
    tide_loop *loop = new_virtual_loop();
    int n = 0;
    tide_handle h1 = tide_call_later(loop, 1e300, count_cb, &n);
    tide_handle h2 = tide_call_later(loop, INFINITY, count_cb, &n);
    tide_handle h3 = tide_call_at(loop, DBL_MAX, count_cb, &n);
    tide_handle h4 = tide_call_later(loop, 1e18, count_cb, &n);
    CHECK(h1 != 0 && h2 != 0 && h3 != 0 && h4 != 0);
    CHECK(tide_call_later(loop, 1e6, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(n, 0);
    CHECK(!isnan(tide_loop_time(loop)));
    CHECK(tide_handle_cancel(loop, h1));
    CHECK(tide_handle_cancel(loop, h2));
    CHECK(tide_handle_cancel(loop, h3));
    CHECK_EQ(loop_stats(loop).handles, 1);
    /* h4 stays armed: close drops it. */
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(n, 0);
    LEAK_GATE();
}

/* ---- cancel -------------------------------------------------------- */

TEST(cancel_before_and_after_run)
{
    tide_loop *loop = new_virtual_loop();
    tide_loop *other = tide_loop_new();
    int soon = 0, later = 0, kept = 0;
    tide_handle hs = tide_call_soon(loop, count_cb, &soon);
    tide_handle hl = tide_call_later(loop, 1, count_cb, &later);
    tide_handle hk = tide_call_later(loop, 1, count_cb, &kept);
    CHECK_EQ(loop_stats(loop).handles, 3);
    CHECK(tide_handle_cancel(loop, hs));
    CHECK(tide_handle_cancel(loop, hl));
    CHECK(!tide_handle_cancel(loop, hs)); /* twice: harmless */
    CHECK(!tide_handle_cancel(loop, hl));
    CHECK(!tide_handle_cancel(loop, 0));
    CHECK(!tide_handle_cancel(other, hk)); /* not a handle of `other` */
    tide_loop_stats st = loop_stats(loop);
    CHECK_EQ(st.handles, 1);
    CHECK_EQ(st.timers, 1);
    CHECK(tide_call_later(loop, 2, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(soon, 0);
    CHECK_EQ(later, 0);
    CHECK_EQ(kept, 1);
    CHECK(!tide_handle_cancel(loop, hk)); /* already ran */
    CHECK(!tide_handle_cancel(loop, hs));
    CHECK(!tide_handle_cancel(loop, UINT64_MAX));
    CHECK_EQ(tide_loop_close(other), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(stale_handle_does_not_cancel_a_reused_record)
{
    tide_loop *loop = tide_loop_new();
    int a = 0, b = 0;
    tide_handle ha = tide_call_soon(loop, count_cb, &a);
    run_once(loop);
    CHECK_EQ(a, 1);
    /* The record behind ha is free now, and likely reused by hb. */
    tide_handle hb = tide_call_soon(loop, count_cb, &b);
    CHECK(hb != ha);
    CHECK(!tide_handle_cancel(loop, ha));
    run_once(loop);
    CHECK_EQ(b, 1);
    tide_handle hc = tide_call_later(loop, 0.001, count_cb, &b);
    CHECK(hc != ha && hc != hb);
    CHECK(!tide_handle_cancel(loop, hb));
    CHECK(!tide_handle_cancel(loop, ha));
    CHECK_EQ(loop_stats(loop).timers, 1);
    CHECK(tide_handle_cancel(loop, hc));
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct soon_pair {
    tide_loop *loop;
    tide_handle self, other;
    int self_cancel, other_cancel;
    int other_ran;
};

static void cancels_next(void *arg)
{
    struct soon_pair *p = arg;

    p->self_cancel = tide_handle_cancel(p->loop, p->self);
    p->other_cancel = tide_handle_cancel(p->loop, p->other);
}

static void cancelled_next(void *arg)
{
    ((struct soon_pair *)arg)->other_ran = 1;
}

TEST(callback_cancels_next_ready_callback)
{
    tide_loop *loop = tide_loop_new();
    struct soon_pair p = {loop, 0, 0, -1, -1, 0};
    p.self = tide_call_soon(loop, cancels_next, &p);
    p.other = tide_call_soon(loop, cancelled_next, &p);
    run_once(loop);
    CHECK_EQ(p.self_cancel, 0); /* running: no longer pending */
    CHECK_EQ(p.other_cancel, 1);
    CHECK_EQ(p.other_ran, 0);
    run_once(loop);
    CHECK_EQ(p.other_ran, 0);
    CHECK_EQ(loop_stats(loop).handles, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- B14: zero-delay re-arm ---------------------------------------- */

struct rearm {
    tide_loop *loop;
    uint64_t last_iter;
    long runs;
    int stop;
    int use_soon;
};

static void rearm_cb(void *arg)
{
    struct rearm *r = arg;
    uint64_t it = loop_iterations(r->loop);

    if (!r->use_soon && r->runs > 0)
        CHECK(it != r->last_iter); /* at most once per iteration */
    r->last_iter = it;
    r->runs++;
    if (r->stop)
        return;
    if (r->use_soon)
        CHECK(tide_call_soon(r->loop, rearm_cb, r) != 0);
    else
        CHECK(tide_call_later(r->loop, 0, rearm_cb, r) != 0);
}

static void *three_short_sleeps(void *arg)
{
    struct rearm *r = arg;

    for (int i = 0; i < 3; i++)
        CHECK_EQ(tide_sleep(0.005), 0);
    r->stop = 1;
    return NULL;
}

static void zero_rearm(int use_soon)
{
    tide_loop *loop = tide_loop_new();
    struct rearm r = {loop, 0, 0, 0, use_soon};
    if (use_soon)
        CHECK(tide_call_soon(loop, rearm_cb, &r) != 0);
    else
        CHECK(tide_call_later(loop, 0, rearm_cb, &r) != 0);
    tide_future *t = tide_create_task(loop, three_short_sleeps, &r);
    /* The sleeping task must wake although a callback is always due. */
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(r.runs > 3);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(b14_zero_delay_rearm_does_not_starve)
{
    zero_rearm(0);
}

TEST(b14_call_soon_chain_does_not_starve)
{
    zero_rearm(1);
}

/* ---- B15: many timers, equal deadlines, cancels -------------------- */

#define B15_N 10000

struct b15_timer {
    double when;
    int seq;
    int cancelled;
    int fired;
    int spawn;
    int late_fired;
    uint64_t spawn_iter;
    tide_handle h;
};

static struct b15_timer b15[B15_N];
static tide_loop *b15_loop;
static int b15_last = -1;
static int b15_fired, b15_late;

static void b15_late_cb(void *arg)
{
    struct b15_timer *t = arg;

    CHECK(loop_iterations(b15_loop) > t->spawn_iter);
    CHECK_EQ(t->late_fired, 0);
    t->late_fired = 1;
    b15_late++;
}

static void b15_cb(void *arg)
{
    struct b15_timer *t = arg;

    CHECK(!t->cancelled);
    CHECK_EQ(t->fired, 0);
    CHECK(tide_loop_time(b15_loop) >= t->when - EARLY);
    if (b15_last >= 0) {
        struct b15_timer *p = &b15[b15_last];
        CHECK(p->when < t->when || (p->when == t->when && p->seq < t->seq));
    }
    b15_last = t->seq;
    t->fired = 1;
    b15_fired++;
    if (t->spawn) {
        t->spawn_iter = loop_iterations(b15_loop);
        double past = tide_loop_time(b15_loop) - 1;
        CHECK(tide_call_at(b15_loop, past, b15_late_cb, t) != 0);
    }
}

TEST(b15_many_timers_equal_deadlines_and_cancels)
{
    tide_loop *loop = new_virtual_loop();
    double t0 = tide_loop_time(loop);
    unsigned seed = 12345;
    int cancelled = 0, spawns = 0;
    b15_loop = loop;
    for (int i = 0; i < B15_N; i++) {
        seed = seed * 1103515245u + 12345u;
        b15[i].when = t0 + 1 + (double)((seed >> 16) % 100);
        b15[i].seq = i;
        b15[i].h = tide_call_at(loop, b15[i].when, b15_cb, &b15[i]);
        CHECK(b15[i].h != 0);
    }
    for (int i = 0; i < B15_N; i++) {
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 3 == 0) {
            CHECK(tide_handle_cancel(loop, b15[i].h));
            b15[i].cancelled = 1;
            cancelled++;
        } else if (spawns < 1000 && (seed >> 8) % 4 == 0) {
            b15[i].spawn = 1;
            spawns++;
        }
    }
    CHECK_EQ(spawns, 1000);
    tide_loop_stats st = loop_stats(loop);
    CHECK_EQ(st.handles, B15_N - cancelled);
    CHECK(tide_call_at(loop, t0 + 200, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(b15_fired, B15_N - cancelled);
    CHECK_EQ(b15_late, 1000);
    for (int i = 0; i < B15_N; i++) {
        CHECK_EQ(b15[i].fired, !b15[i].cancelled);
        CHECK_EQ(b15[i].late_fired, b15[i].spawn);
    }
    st = loop_stats(loop);
    CHECK_EQ(st.handles, 0);
    CHECK_EQ(st.timers, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- B16: cancelled in the same pass ------------------------------- */

struct pair {
    tide_loop *loop;
    tide_handle other;
    int first_ran, second_ran;
    int cancel_ret;
};

static void first_cb(void *arg)
{
    struct pair *p = arg;

    p->first_ran = 1;
    p->cancel_ret = tide_handle_cancel(p->loop, p->other);
}

static void second_cb(void *arg)
{
    struct pair *p = arg;

    p->second_ran = 1;
}

TEST(b16_timer_cancels_another_due_in_same_pass)
{
    tide_loop *loop = new_virtual_loop();
    double t0 = tide_loop_time(loop);
    struct pair *p = calloc(1, sizeof *p);
    p->loop = loop;
    CHECK(tide_call_at(loop, t0 + 1, first_cb, p) != 0);
    p->other = tide_call_at(loop, t0 + 1, second_cb, p);
    CHECK(p->other != 0);
    CHECK(tide_call_at(loop, t0 + 2, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(p->first_ran, 1);
    CHECK_EQ(p->cancel_ret, 1);
    CHECK_EQ(p->second_ran, 0);
    free(p);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct selfish {
    tide_loop *loop;
    tide_handle self;
    int runs;
};

static void selfish_cb(void *arg)
{
    struct selfish *s = arg;

    s->runs++;
    CHECK(!tide_handle_cancel(s->loop, s->self)); /* running: not pending */
    s->self = tide_call_later(s->loop, 1, selfish_cb, s);
    CHECK(s->self != 0);
    CHECK(tide_handle_cancel(s->loop, s->self));
    CHECK(!tide_handle_cancel(s->loop, s->self));
}

TEST(b16_timer_cancels_itself_rearms_and_cancels_again)
{
    tide_loop *loop = new_virtual_loop();
    struct selfish s = {loop, 0, 0};
    s.self = tide_call_later(loop, 1, selfish_cb, &s);
    CHECK(tide_call_later(loop, 10, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(s.runs, 1);
    CHECK_EQ(loop_stats(loop).timers, 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

struct race {
    tide_loop *loop;
    tide_handle h;
    int ran;
    int cancelled;
};

static void race_cb(void *arg)
{
    struct race *r = arg;

    CHECK(!r->cancelled); /* never runs after a successful cancel */
    r->ran++;
}

static void *race_task(void *arg)
{
    struct race *r = arg;

    CHECK_EQ(tide_sleep(1), 0);
    int ran_before = r->ran;
    r->cancelled = tide_handle_cancel(r->loop, r->h);
    CHECK_EQ(r->cancelled, !ran_before);
    return NULL;
}

TEST(b16_task_cancels_timer_due_in_same_tick)
{
    tide_loop *loop = new_virtual_loop();
    struct race r = {loop, 0, 0, 0};
    tide_future *t = tide_create_task(loop, race_task, &r);
    run_once(loop); /* the task's sleep is armed first */
    r.h = tide_call_later(loop, 1, race_cb, &r);
    CHECK(r.h != 0);
    CHECK_EQ(tide_run_until_complete(loop, t, NULL), 0);
    CHECK(tide_call_later(loop, 5, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    CHECK_EQ(r.ran + r.cancelled, 1);
    tide_future_release(t);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

/* ---- call_soon_threadsafe ------------------------------------------ */

struct waker {
    tide_loop *loop;
    tide_future *f;
};

static void set_f_cb(void *arg)
{
    CHECK_EQ(tide_future_set_result(arg, IPTR(3)), 0);
}

static void *wake_later(void *arg)
{
    struct waker *w = arg;

    usleep(20000);
    CHECK_EQ(tide_call_soon_threadsafe(w->loop, set_f_cb, w->f), 0);
    return NULL;
}

TEST(threadsafe_wakes_a_blocked_loop)
{
    tide_loop *loop = tide_loop_new();
    struct waker w = {loop, tide_future_new(loop)};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, wake_later, &w), 0);
    /* Nothing is ready and no timer is armed: the loop blocks in poll. */
    void *r = NULL;
    CHECK_EQ(tide_run_until_complete(loop, w.f, &r), 0);
    CHECK_EQ(PINT(r), 3);
    CHECK_EQ(pthread_join(th, NULL), 0);
    tide_future_release(w.f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(threadsafe_wakes_a_blocked_virtual_clock_loop)
{
    /* No timer, nothing ready: the virtual clock has nowhere to jump, so
     * the loop must block in poll and still wake for the thread. */
    tide_loop *loop = new_virtual_loop();
    struct waker w = {loop, tide_future_new(loop)};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, wake_later, &w), 0);
    CHECK_EQ(tide_run_until_complete(loop, w.f, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    tide_future_release(w.f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(threadsafe_bad_args)
{
    tide_loop *loop = tide_loop_new();
    int n = 0;
    CHECK_ERR(tide_call_soon_threadsafe(NULL, count_cb, &n), -EINVAL);
    CHECK_ERR(tide_call_soon_threadsafe(loop, NULL, &n), -EINVAL);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static void soon_threadsafe_from_cb(void *arg)
{
    struct waker *w = arg;

    CHECK_EQ(tide_call_soon_threadsafe(w->loop, set_f_cb, w->f), 0);
    CHECK(!tide_future_done(w->f));
}

TEST(threadsafe_from_the_loop_thread)
{
    tide_loop *loop = tide_loop_new();
    struct waker w = {loop, tide_future_new(loop)};
    CHECK_EQ(tide_call_soon_threadsafe(loop, soon_threadsafe_from_cb, &w), 0);
    CHECK(!tide_future_done(w.f));
    CHECK_EQ(tide_run_until_complete(loop, w.f, NULL), 0);
    tide_future_release(w.f);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

static int closing_rc = 1;
static int closing_n;

static void *send_during_close(void *loop)
{
    if (tide_sleep(1e9) == -ECANCELED)
        closing_rc = tide_call_soon_threadsafe(loop, count_cb, &closing_n);
    return NULL;
}

TEST(threadsafe_on_a_closing_loop_is_eshutdown)
{
    tide_loop *loop = tide_loop_new();
    tide_future *t = tide_create_task(loop, send_during_close, loop);
    run_once(loop);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_ERR(closing_rc, -ESHUTDOWN);
    CHECK_EQ(closing_n, 0);
    tide_future_release(t);
    LEAK_GATE();
}

#define PRODUCERS 4

struct item {
    int thread;
    int seq;
};

struct stress {
    tide_loop *loop;
    int per_thread;
    struct item *items[PRODUCERS];
    int next_seq[PRODUCERS];
    long total;
    long want;
    atomic_int failures;
    atomic_int go;
};

static struct stress *stress;

static void stress_cb(void *arg)
{
    struct item *it = arg;

    CHECK_EQ(it->seq, stress->next_seq[it->thread]); /* FIFO per thread */
    stress->next_seq[it->thread]++;
    if (++stress->total == stress->want)
        tide_loop_stop(stress->loop);
}

static void *producer(void *arg)
{
    struct item *items = arg;

    while (!atomic_load(&stress->go)) {
    }
    for (int i = 0; i < stress->per_thread; i++)
        if (tide_call_soon_threadsafe(stress->loop, stress_cb, &items[i]))
            atomic_fetch_add(&stress->failures, 1);
    return NULL;
}

struct blocker {
    tide_loop *loop;
    int stop;
    long runs;
};

static void blocker_cb(void *arg)
{
    struct blocker *b = arg;

    b->runs++;
    usleep(200); /* the loop is busy while producers push */
    if (!b->stop)
        CHECK(tide_call_later(b->loop, 0, blocker_cb, b) != 0);
}

static void threadsafe_stress(int per_thread, int with_blocker)
{
    tide_loop *loop = tide_loop_new();
    struct stress s = {.loop = loop, .per_thread = per_thread};
    struct blocker b = {loop, 0, 0};
    pthread_t th[PRODUCERS];
    stress = &s;
    s.want = (long)per_thread * PRODUCERS;
    for (int t = 0; t < PRODUCERS; t++) {
        s.items[t] = malloc(sizeof(struct item) * (size_t)per_thread);
        CHECK_NOT_NULL(s.items[t]);
        for (int i = 0; i < per_thread; i++)
            s.items[t][i] = (struct item){t, i};
        CHECK_EQ(pthread_create(&th[t], NULL, producer, s.items[t]), 0);
    }
    if (with_blocker)
        CHECK(tide_call_later(loop, 0, blocker_cb, &b) != 0);
    atomic_store(&s.go, 1);
    CHECK_EQ(tide_run_forever(loop), 0);
    for (int t = 0; t < PRODUCERS; t++)
        CHECK_EQ(pthread_join(th[t], NULL), 0);
    CHECK_EQ(atomic_load(&s.failures), 0);
    CHECK_EQ(s.total, s.want);
    for (int t = 0; t < PRODUCERS; t++) {
        CHECK_EQ(s.next_seq[t], per_thread);
        free(s.items[t]);
    }
    if (with_blocker)
        CHECK(b.runs > 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    LEAK_GATE();
}

TEST(threadsafe_fifo_per_thread_from_four_threads)
{
    threadsafe_stress(20000, 0);
}

TEST(b34_threadsafe_flood_while_loop_is_busy)
{
    threadsafe_stress(10000, 1);
}

struct hammer {
    tide_loop *loop;
    atomic_int stop;
    atomic_long sent;
    long ran;
};

static struct hammer *hm;

static void hammer_cb(void *arg)
{
    (void)arg;
    hm->ran++;
}

static void *hammer_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50000 && !atomic_load(&hm->stop); i++) {
        if (tide_call_soon_threadsafe(hm->loop, hammer_cb, NULL) == 0)
            atomic_fetch_add(&hm->sent, 1);
    }
    return NULL;
}

TEST(b33_threadsafe_senders_then_drain_then_close)
{
    tide_loop *loop = tide_loop_new();
    struct hammer h = {.loop = loop};
    pthread_t th[PRODUCERS];
    hm = &h;
    for (int t = 0; t < PRODUCERS; t++)
        CHECK_EQ(pthread_create(&th[t], NULL, hammer_thread, NULL), 0);
    CHECK(tide_call_later(loop, 0.02, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    atomic_store(&h.stop, 1);
    for (int t = 0; t < PRODUCERS; t++)
        CHECK_EQ(pthread_join(th[t], NULL), 0);
    CHECK(h.ran <= atomic_load(&h.sent));
    /* Everything sent before the iteration starts runs in it. */
    run_once(loop);
    CHECK_EQ(h.ran, atomic_load(&h.sent));
    CHECK(h.ran > 0);
    /* Accepted before close: they run inside close, none is dropped. */
    long before = h.ran;
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(tide_call_soon_threadsafe(loop, hammer_cb, NULL), 0);
    CHECK_EQ(tide_loop_close(loop), 0);
    CHECK_EQ(h.ran, before + 1000);
    LEAK_GATE();
}

/* HAZARDS B33: senders keep calling while the loop thread closes the
 * loop. Every call returns 0 and its callback runs, or returns
 * -ESHUTDOWN; nothing accepted is dropped. Half the rounds close with a
 * task pending (close then runs iterations for its cleanup), and the
 * number of iterations between the senders' start and close varies. */
#define B33_SENDERS 4

struct b33 {
    tide_loop *loop;
    atomic_int waiting;   /* senders at the start line */
    atomic_int go;        /* set once every sender waits */
    atomic_long accepted; /* calls that returned 0 */
    atomic_int bad_rc;    /* returns other than 0 and -ESHUTDOWN */
    atomic_long ran;      /* callbacks run (written by the loop thread) */
    atomic_int closed;    /* close returned: the cap below is off (were
                           * calls dropped, they would never run) */
};

/* The senders pause while more accepted calls than this wait to run:
 * enough to race close with plenty in flight, few enough that a round
 * stays short on two CPUs under a sanitizer. */
#define B33_IN_FLIGHT 512

static struct b33 *b33;

static void b33_cb(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&b33->ran, 1, memory_order_relaxed);
}

static void *b33_sender(void *arg)
{
    struct b33 *s = arg;

    atomic_fetch_add(&s->waiting, 1);
    while (!atomic_load(&s->go))
        sched_yield();
    for (;;) {
        while (atomic_load(&s->accepted) - atomic_load(&s->ran) >
                   B33_IN_FLIGHT &&
               !atomic_load(&s->closed))
            sched_yield();
        int rc = tide_call_soon_threadsafe(s->loop, b33_cb, NULL);
        if (rc == -ESHUTDOWN)
            break;
        if (rc != 0) {
            atomic_fetch_add(&s->bad_rc, 1);
            break;
        }
        atomic_fetch_add(&s->accepted, 1);
    }
    return NULL;
}

static void *b33_sleep_forever(void *arg)
{
    (void)arg;
    return tide_fail(tide_sleep(1e9) == -ECANCELED ? -ECANCELED : -EPROTO);
}

TEST(b33_threadsafe_senders_race_close_nothing_accepted_is_lost)
{
    double budget = 1.5 * harness_timeout_mult();
    double t0 = harness_now();
    int rounds = 0;

    while (rounds < 200 && (rounds < 20 || harness_now() - t0 < budget)) {
        struct b33 s = {.loop = tide_loop_new()};
        CHECK_NOT_NULL(s.loop);
        b33 = &s;
        /* Holds the loop record for senders that call after close. */
        tide_future *keep = tide_future_new(s.loop);
        CHECK_NOT_NULL(keep);
        tide_future *task = NULL;
        if (rounds % 2)
            CHECK_NOT_NULL(
                task = tide_create_task(s.loop, b33_sleep_forever, NULL));
        pthread_t th[B33_SENDERS];
        for (int t = 0; t < B33_SENDERS; t++)
            CHECK_EQ(pthread_create(&th[t], NULL, b33_sender, &s), 0);
        while (atomic_load(&s.waiting) < B33_SENDERS)
            sched_yield();
        atomic_store(&s.go, 1);
        /* Close while the senders are sending. */
        while (atomic_load(&s.accepted) < 2 * B33_IN_FLIGHT)
            run_once(s.loop);
        for (int i = 0; i < rounds % 3; i++)
            run_once(s.loop);
        CHECK_EQ(tide_loop_close(s.loop), 0);
        long ran_at_close = atomic_load(&s.ran);
        atomic_store(&s.closed, 1);
        for (int t = 0; t < B33_SENDERS; t++)
            CHECK_EQ(pthread_join(th[t], NULL), 0);
        CHECK_EQ(atomic_load(&s.bad_rc), 0);
        CHECK_EQ(atomic_load(&s.ran), ran_at_close); /* none after close */
        CHECK_EQ(atomic_load(&s.ran), atomic_load(&s.accepted));
        if (task) {
            CHECK(tide_future_cancelled(task));
            tide_future_release(task);
        }
        tide_future_release(keep);
        rounds++;
    }
    LEAK_GATE();
}

/* ---- HAZARDS B36: a signal storm --------------------------------------- */

/* Both written on the loop thread only: the storm aims every signal at
 * it, and the test sets b36_in_run around its runs of the loop. */
static volatile sig_atomic_t b36_in_run;
static volatile sig_atomic_t b36_signals; /* handled during a run */

static void b36_handler(int sig)
{
    (void)sig;
    if (b36_in_run)
        b36_signals = b36_signals + 1;
}

/* Signals the loop must have taken while running for the storm to count;
 * the helper sends one per usleep(50), about 800 in the test's 120 ms on
 * an idle machine (over 300 with two busy threads per CPU). */
#define B36_MIN_SIGNALS 100

struct b36 {
    tide_loop *loop;
    pthread_t loop_thread;
    atomic_int stop;
    atomic_long sent;
    long ran;
    int timers_fired, timers_early;
    int sleeps_ok, sleeps_bad;
};

static struct b36 *b36_state;

static void b36_remote_cb(void *arg)
{
    (void)arg;
    b36_state->ran++;
}

static void *b36_storm(void *arg)
{
    struct b36 *s = arg;

    for (long i = 0; !atomic_load(&s->stop); i++) {
        pthread_kill(s->loop_thread, SIGUSR2);
        if (i % 8 == 0 &&
            tide_call_soon_threadsafe(s->loop, b36_remote_cb, NULL) == 0)
            atomic_fetch_add(&s->sent, 1);
        usleep(50);
    }
    return NULL;
}

struct b36_timer {
    double deadline;
};

static void b36_timer_cb(void *arg)
{
    struct b36_timer *t = arg;

    b36_state->timers_fired++;
    if (tide_loop_time(b36_state->loop) < t->deadline - EARLY)
        b36_state->timers_early++;
}

static void *b36_sleeper(void *arg)
{
    double d = (double)PINT(arg) / 1000.0;
    double t0 = tide_loop_time(b36_state->loop);
    int rc = tide_sleep(d);

    if (rc == 0 && tide_loop_time(b36_state->loop) >= t0 + d - EARLY)
        b36_state->sleeps_ok++;
    else
        b36_state->sleeps_bad++;
    return NULL;
}

/* A helper thread sends SIGUSR2 (handler installed without SA_RESTART)
 * every 50 us, and posts call_soon_threadsafe callbacks, while 1,000
 * timers and 100 sleeping tasks run: no call returns EINTR, no timer or
 * sleep ends early, every callback sent runs. The loop keeps running
 * under the storm until it has taken B36_MIN_SIGNALS signals (at most 2 s
 * more); if a loaded machine starved the helper even so, what tide did
 * is still checked, and then the test skips, since it did not see a
 * storm. */
TEST(b36_signal_storm_changes_nothing)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = b36_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: interrupted calls fail with EINTR */
    CHECK_EQ(sigaction(SIGUSR2, &sa, NULL), 0);

    static struct b36 s;
    static struct b36_timer timers[1000];
    memset(&s, 0, sizeof s);
    b36_state = &s;
    b36_signals = 0;
    tide_loop *loop = tide_loop_new();
    s.loop = loop;
    s.loop_thread = pthread_self();
    unsigned seed = 36;
    for (int i = 0; i < 1000; i++) {
        seed = seed * 1103515245u + 12345u;
        double d = (double)(seed >> 16 & 0x3f) / 1000.0; /* 0-63 ms */
        timers[i].deadline = tide_loop_time(loop) + d;
        CHECK(tide_call_later(loop, d, b36_timer_cb, &timers[i]) != 0);
    }
    tide_future *ts[100];
    for (int i = 0; i < 100; i++)
        ts[i] = tide_create_task(loop, b36_sleeper, IPTR(i % 50));
    tide_future *all = tide_gather(ts, 100, 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, b36_storm, &s), 0);
    b36_in_run = 1;
    CHECK_EQ(tide_run_until_complete(loop, all, NULL), 0);
    /* Past the last timer, still under the storm. */
    CHECK_EQ(tide_loop_update_time(loop), 0);
    CHECK(tide_call_later(loop, 0.07, harness_stop_cb, loop) != 0);
    CHECK_EQ(tide_run_forever(loop), 0);
    /* Then on, until the loop has taken enough signals, in 10 ms slices
     * that each have a timer and a sleep of their own to disturb. */
    static struct b36_timer slice_timers[400];
    int slices = 0;
    double give_up = harness_now() + 2.0;
    while (b36_signals < B36_MIN_SIGNALS && harness_now() < give_up &&
           slices < 400) {
        struct b36_timer *t = &slice_timers[slices++];
        t->deadline = tide_loop_time(loop) + 0.01;
        CHECK(tide_call_later(loop, 0.01, b36_timer_cb, t) != 0);
        tide_future *sleeper = tide_create_task(loop, b36_sleeper, IPTR(10));
        CHECK_EQ(tide_run_until_complete(loop, sleeper, NULL), 0);
        tide_future_release(sleeper);
    }
    b36_in_run = 0;
    long signals = b36_signals;
    atomic_store(&s.stop, 1);
    CHECK_EQ(pthread_join(th, NULL), 0);
    /* Whatever was sent after the last iteration runs now. */
    for (int i = 0; i < 100 && s.ran < atomic_load(&s.sent); i++)
        run_once(loop);

    CHECK_EQ(s.timers_fired, 1000 + slices);
    CHECK_EQ(s.timers_early, 0);
    CHECK_EQ(s.sleeps_ok, 100 + slices);
    CHECK_EQ(s.sleeps_bad, 0);
    CHECK_EQ(s.ran, atomic_load(&s.sent));
    for (int i = 0; i < 100; i++)
        tide_future_release(ts[i]);
    tide_future_release(all);
    CHECK_EQ(tide_loop_close(loop), 0);
    signal(SIGUSR2, SIG_DFL);
    LEAK_GATE();
    if (signals < B36_MIN_SIGNALS)
        SKIP("the signal thread was starved: too few signals to be a storm");
}
