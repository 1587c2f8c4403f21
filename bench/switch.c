/* SWITCH: two tide tasks handing the CPU to each other with tide_sleep(0).
 *
 * Tasks A and B each call tide_sleep(0) N/2 times; with both ready, every
 * sleep(0) of one runs the other next, so the run is N hand-offs (task ->
 * loop -> other task). The tasks check that they really alternate. Timing
 * runs from creating the two tasks to the end of run_until_complete on
 * their gather; ns_per_switch = wall / N. N defaults to 10^6 (rounded up
 * to even); argv[1] overrides. Prints
 *   SWITCH tide ns_per_switch=... ns wall_s=... s n=... rss_kib=...
 * and exits 1 if a sleep fails or the tasks did not strictly alternate.
 */
#include "bench.h"

#include <stdint.h>
#include <tide.h>

static long rounds;      /* sleeps per task: N / 2 */
static int last = -1;    /* which task ran last */
static long out_of_turn; /* times a task ran twice in a row */

static void *player(void *arg)
{
    int me = (int)(uintptr_t)arg;
    for (long i = 0; i < rounds; i++) {
        if (last == me)
            out_of_turn++;
        last = me;
        int err = tide_sleep(0);
        if (err != 0)
            return tide_fail(err);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long n = bench_arg_n(argc, argv, 1000000);
    /* `switch N compact`: the two are compact tasks (row SWITCHC): each
     * hand-off copies their frames through the loop's context. */
    bool compact = argc > 2 && strcmp(argv[2], "compact") == 0;
    if (argc > 2 && !compact) {
        fprintf(stderr, "usage: switch [N [compact]]\n");
        return 2;
    }
    tide_task_options opt = {.compact = compact};
    n += n % 2;
    rounds = n / 2;
    tide_loop *loop = tide_loop_new();
    if (loop == NULL) {
        perror("switch: tide_loop_new");
        return 1;
    }

    double t0 = bench_now();
    tide_future *ts[2];
    for (int i = 0; i < 2; i++) {
        ts[i] = tide_create_task_ex(loop, player, (void *)(uintptr_t)i, &opt);
        if (ts[i] == NULL) {
            perror("switch: tide_create_task");
            return 1;
        }
    }
    tide_future *both = tide_gather(ts, 2, 0);
    if (both == NULL) {
        perror("switch: tide_gather");
        return 1;
    }
    int err = tide_run_until_complete(loop, both, NULL);
    double dt = bench_now() - t0;
    if (err != 0) {
        fprintf(stderr, "switch: failed: %s\n", tide_strerror(err));
        return 1;
    }
    tide_future_release(ts[0]);
    tide_future_release(ts[1]);
    tide_future_release(both);
    tide_loop_close(loop);

    printf("%s tide ns_per_switch=%.1f ns wall_s=%.3f s n=%ld rss_kib=%ld\n",
           compact ? "SWITCHC" : "SWITCH", dt * 1e9 / (double)n, dt, n,
           bench_maxrss_kib());
    fflush(stdout);
    if (out_of_turn != 0) {
        fprintf(stderr, "switch: %ld hand-offs went back to the same task\n",
                out_of_turn);
        return 1;
    }
    return 0;
}
