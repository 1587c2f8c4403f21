/* The loop's clock and timers (see timer.h): deadlines, timer slack,
 * alarms, sleeping, firing, and the public clock functions.
 *
 * A delay counts from the moment of the call: the clock is read then, not
 * the iteration's loop->now. On the virtual clock time moves only when
 * every coroutine waits (sched.c jumps to the next deadline), and delays
 * are exact. Firing queues what is due in deadline order; nothing runs
 * inside it.
 * SPDX-License-Identifier: MIT
 */
#include "core/timer.h"

#include <errno.h>
#include <math.h>

/* Timer slack (see tide__deadline_in): a delay of d ns may end up to
 * 2^floor(log2(d / 128)) ns late (under 0.8 %), never more than 2^20 ns
 * (~1 ms); delays under 128 us are exact. */
#define SLACK_SHIFT 7
#define SLACK_MAX_SHIFT 20
#define SLACK_MAX ((int64_t)1 << SLACK_MAX_SHIFT)

/* ---- deadlines -------------------------------------------------------- */

int64_t tide__loop_now(const tide_loop *loop)
{
    if (loop->virtual_clock)
        return loop->now;
    int64_t now = tide__clock_ns();
    return now > loop->now ? now : loop->now;
}

int tide__deadline_in(tide_loop *loop, double seconds, int64_t *deadline)
{
    if (isnan(seconds))
        return -EINVAL;
    if (seconds <= 0) {
        /* Due already: on the next iteration, before anything that
         * becomes ready after this call (see tide__handoff). */
        *deadline = loop->now;
        return 0;
    }
    /* From the moment of the call, not the iteration's start. */
    int64_t now = tide__loop_now(loop);
    int64_t d = tide__ns_of(seconds);
    if (d >= INT64_MAX - now - SLACK_MAX) {
        *deadline = INT64_MAX;
        return 0;
    }
    *deadline = now + d;
    if (!loop->virtual_clock && d >= 1024 << SLACK_SHIFT) {
        /* Timer slack: round up to a power of two of at most 1/128 of
         * the delay (1 ms at most), so that timers set close together
         * with similar delays share a deadline, and one heap entry
         * (W3's sleepers, W4's timers: without it every deadline is
         * distinct and W4 pays a cache-missing heap walk per timer).
         * Never early; equal deadlines still fire in set order. */
        int shift = 63 - __builtin_clzll((uint64_t)d >> SLACK_SHIFT);
        int64_t g = (int64_t)1
                    << (shift < SLACK_MAX_SHIFT ? shift : SLACK_MAX_SHIFT);
        *deadline = (*deadline + g - 1) & ~(g - 1);
    }
    return 0;
}

/* ---- alarms and sleeping ---------------------------------------------- */

int tide__alarm_arm(tide_loop *loop, struct tide__alarm *a, int64_t deadline,
                    int result)
{
    a->co = loop->current;
    a->result = result;
    tide__timer_init(&a->timer, TIDE__TIMER_WAKE);
    return tide__heap_push(&loop->timers, &a->timer, deadline);
}

void tide__alarm_disarm(tide_loop *loop, struct tide__alarm *a)
{
    tide__heap_remove(&loop->timers, &a->timer);
}

struct sleeper {
    struct tide__wait wait;
    struct tide__alarm alarm;
};

/* "sleep, 0.250 s left" (on the virtual clock too: loop time). */
static void sleep_describe(tide_loop *loop, const struct tide__wait *w,
                           char *buf, size_t n)
{
    const struct sleeper *s = tide__container_of(w, struct sleeper, wait);
    int64_t now = loop->virtual_clock ? loop->now : tide__clock_ns();
    int64_t left = s->alarm.timer.deadline - now;

    tide__appendf(buf, n, 0, "sleep, %.3f s left",
                  left > 0 ? (double)left / 1e9 : 0.0);
}

static const struct tide__wait_kind sleep_kind = {
    .what = "sleep",
    .describe = sleep_describe,
};

static void sleep_cancel(tide_loop *loop, struct tide__wait *w)
{
    struct sleeper *s = tide__container_of(w, struct sleeper, wait);

    tide__alarm_disarm(loop, &s->alarm);
    tide__wake(loop, s->alarm.co, -ECANCELED);
}

int tide__sleep_until(tide_loop *loop, int64_t deadline)
{
    struct sleeper local, *s = tide__wait_frame(loop, &local, sizeof local);

    if (!s)
        return -ENOMEM;
    *s = (struct sleeper){
        .wait = {.cancel = sleep_cancel, .kind = &sleep_kind}};
    int err = tide__alarm_arm(loop, &s->alarm, deadline, 0);
    if (err == 0) {
        err = tide__suspend(loop, &s->wait);
        tide__alarm_disarm(loop, &s->alarm); /* cancelled while queued */
    }
    tide__wait_frame_end(s, &local);
    return err;
}

/* ---- firing ----------------------------------------------------------- */

static void fire_timer(tide_loop *loop, struct tide__timer *t)
{
    if (t->kind == TIDE__TIMER_WAKE) {
        struct tide__alarm *a =
            tide__container_of(t, struct tide__alarm, timer);
        tide__wake(loop, a->co, a->result);
    } else {
        /* A handle whose timer has fired is queued; handle.c tells the
         * two apart by whether the timer is armed. */
        struct tide__handle *h =
            tide__container_of(t, struct tide__handle, timer);
        tide__call_schedule(loop, &h->call);
    }
}

void tide__timers_fire(tide_loop *loop)
{
    struct tide__timer *t;

    while ((t = tide__heap_min(&loop->timers)) && t->deadline <= loop->now) {
        tide__heap_pop(&loop->timers);
        fire_timer(loop, t);
    }
}

/* ---- the public clock ------------------------------------------------- */

int tide_loop_update_time(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed)
        return -EINVAL;
    if (!loop->virtual_clock) {
        int64_t now = tide__clock_ns();
        if (now > loop->now)
            loop->now = now; /* never back */
    }
    return 0;
}

double tide_loop_time(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    return loop ? (double)tide__loop_now(loop) / 1e9 : 0.0;
}

int tide_loop_set_virtual_clock(tide_loop *loop, bool on)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed)
        return -EINVAL;
    if (loop->depth)
        return -EBUSY;
    loop->virtual_clock = on;
    if (!on)
        loop->now = tide__clock_ns();
    return 0;
}
