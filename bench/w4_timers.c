/* W4 timers: N one-shot tide_call_later callbacks with LCG delays.
 *
 * As the asyncio peer does it: a main task schedules N callbacks up front,
 * delay_ms = (state >> 16) % 1000 from the README's 32-bit LCG (seed
 * 12345), each callback only counts, and the last one completes a future
 * the main task awaits. wall_s runs from the first schedule to the last
 * fire; overhead_s = wall_s - 1.0; sched_s (tide only) is the part of
 * wall_s spent scheduling. Deadlines count from the loop time of the step
 * that schedules them (as in libuv and Node), so scheduling overlaps the
 * wait. N defaults to 10^6; argv[1] overrides. Prints
 *   W4 tide wall_s=... s overhead_s=... s n=... fired=... delay_sum_ms=...
 * sched_s=... s rss_kib=... and exits 1 if fired != N, the delay sum is not
 * the README's (497964648 for 10^6, 49744245 for 10^5), or any timer fired
 * before its deadline (checked against the loop's own clock, one cheap call
 * per fire, and that clock against CLOCK_MONOTONIC at the end).
 */
#include "bench.h"

#include <stdint.h>
#include <tide.h>

static long n_timers;
static long fired;
static long early;
static double sched_time; /* loop time the deadlines were computed from */
static tide_future *all_fired;

static void on_timer(void *arg)
{
    double delay = (double)(uintptr_t)arg / 1000.0;
    if (tide_loop_time(NULL) < sched_time + delay - 1e-9)
        early++;
    if (++fired == n_timers)
        tide_future_set_result(all_fired, NULL);
}

static void *main_task(void *arg)
{
    (void)arg;
    long n = n_timers;
    all_fired = tide_future_new(NULL);
    if (all_fired == NULL)
        return tide_fail(-errno);

    uint32_t state = 12345;
    long delay_sum = 0;
    double t0 = bench_now();
    /* Every call_later in this loop step counts from the same loop time. */
    sched_time = tide_loop_time(NULL);
    for (long i = 0; i < n; i++) {
        state = state * 1664525u + 1013904223u;
        uint32_t d = (state >> 16) % 1000;
        delay_sum += d;
        if (tide_call_later(NULL, d / 1000.0, on_timer,
                            (void *)(uintptr_t)d) == 0) {
            int err = -errno;
            fprintf(stderr, "w4_timers: tide_call_later #%ld failed: %s\n", i,
                    tide_strerror(err));
            return tide_fail(err);
        }
    }
    double sched_s = bench_now() - t0;
    int err = tide_await(all_fired, NULL);
    double dt = bench_now() - t0;
    double loop_dt = tide_loop_time(NULL) - sched_time;
    if (err != 0) {
        fprintf(stderr, "w4_timers: awaiting the last fire failed: %s\n",
                tide_strerror(err));
        return tide_fail(err);
    }
    tide_future_release(all_fired);

    printf("W4 tide wall_s=%.3f s overhead_s=%.3f s n=%ld fired=%ld "
           "delay_sum_ms=%ld "
           "sched_s=%.3f s rss_kib=%ld\n",
           dt, dt - 1.0, n, fired, delay_sum, sched_s, bench_maxrss_kib());
    fflush(stdout);

    int bad = 0;
    if (fired != n) {
        fprintf(stderr, "w4_timers: fired %ld of %ld\n", fired, n);
        bad = 1;
    }
    long want = n == 1000000  ? 497964648L
                : n == 100000 ? 49744245L
                              : delay_sum;
    if (delay_sum != want) {
        fprintf(stderr, "w4_timers: delay_sum_ms %ld, want %ld\n", delay_sum,
                want);
        bad = 1;
    }
    /* The early check above trusts the loop's clock: make sure it did not
     * run ahead of the real one (sched_time was read just before t0). */
    if (loop_dt > dt + 0.002) {
        fprintf(stderr, "w4_timers: loop clock advanced %.3f s in %.3f s\n",
                loop_dt, dt);
        bad = 1;
    }
    if (early != 0) {
        fprintf(stderr, "w4_timers: %ld timers fired before their deadline\n",
                early);
        bad = 1;
    }
    return bad ? tide_fail(-EPROTO) : NULL;
}

int main(int argc, char **argv)
{
    n_timers = bench_arg_n(argc, argv, 1000000);
    tide_loop *loop = tide_loop_new();
    if (loop == NULL) {
        perror("w4_timers: tide_loop_new");
        return 1;
    }
    tide_future *main_f = tide_create_task(loop, main_task, NULL);
    if (main_f == NULL) {
        perror("w4_timers: tide_create_task");
        return 1;
    }
    int err = tide_run_until_complete(loop, main_f, NULL);
    tide_future_release(main_f);
    int cerr = tide_loop_close(loop);
    if (err != 0 || cerr != 0) {
        fprintf(stderr, "w4_timers: failed: %s\n",
                tide_strerror(err ? err : cerr));
        return 1;
    }
    return 0;
}
