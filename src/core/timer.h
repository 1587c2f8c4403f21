/* The loop's clock and timers: reading the clock, deadlines from delays
 * (with timer slack), alarms that wake a coroutine, sleeping, and firing
 * what is due. timer.c defines them; the loop's timer heap is
 * loop->timers (base/heap.h).
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_CORE_TIMER_H
#define TIDE_CORE_TIMER_H

#include "core/loop.h"

#include <stdint.h>
#include <time.h>

/* What a loop timer (struct tide__timer) stands for. */
enum tide__timer_kind {
    TIDE__TIMER_HANDLE, /* a call_later/call_at handle: queue its call */
    TIDE__TIMER_WAKE,   /* a sleeping coroutine (tide__alarm): wake it */
};

/* CLOCK_MONOTONIC in ns. Inline: the loop reads it every iteration. */
static inline int64_t tide__clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* `seconds` (not NaN) in ns: rounded to the nearest (call_at(time() + d)
 * must tie exactly with call_later(d) set in the same iteration), 0 for
 * anything <= 0, INT64_MAX from 9.2e9 s (292 years) on, infinity
 * included. Inline: every delay and deadline goes through it. */
static inline int64_t tide__ns_of(double seconds)
{
    double ns = seconds * 1e9;

    return ns >= 9.2e18 ? INT64_MAX : ns <= 0 ? 0 : (int64_t)(ns + 0.5);
}

/* The loop's clock now: a fresh reading (never behind loop->now, the
 * iteration's), or the virtual time. */
int64_t tide__loop_now(const tide_loop *loop);

/* The deadline `seconds` from the moment of the call (<= 0: loop->now,
 * due at once), saturated; -EINVAL for NaN. */
int tide__deadline_in(tide_loop *loop, double seconds, int64_t *deadline);

/* A timer that wakes the current coroutine with `result` when it fires
 * (a sleep: 0; a timed wait: -ETIMEDOUT), if it is still suspended then.
 * Lives on the coroutine's stack; disarm it before the frame goes. */
struct tide__alarm {
    struct tide__timer timer;
    struct tide__coro *co;
    int result;
};

int tide__alarm_arm(tide_loop *loop, struct tide__alarm *a, int64_t deadline,
                    int result);
void tide__alarm_disarm(tide_loop *loop, struct tide__alarm *a);

/* Sleep the current coroutine until loop time `deadline` (ns). */
int tide__sleep_until(tide_loop *loop, int64_t deadline);

/* Fire every timer due at loop->now, in deadline order (ties in the order
 * set): wake alarms' coroutines, queue handles' calls. */
void tide__timers_fire(tide_loop *loop);

#endif
