/* W3 sleepers: N tide tasks each sleeping 1.0 s at once (W3M: N = 10^6).
 *
 * As the peers do it (asyncio.run(main)): a main task reads the peak RSS
 * with the loop up and no tasks yet (base_kib), starts the clock, creates
 * N tasks that each tide_sleep(1.0), gathers them and awaits the gather,
 * then stops the clock and reads the peak RSS again. b_per_task is
 * (rss_kib - base_kib) * 1024 / N. N defaults to 100000; argv[1]
 * overrides it. Prints
 *   W3 tide wall_s=... s n=... rss_kib=... base_kib=... b_per_task=... B
 * and exits 1 if a sleep fails or the whole run took less than 1.0 s
 * (a sleep that returned early).
 *
 * `w3_sleepers N compact` makes the sleepers compact tasks (one shared
 * stack, frames copied away while asleep; see src/core/compact.c) and
 * prints "W3C" instead of "W3".
 */
#include "bench.h"

#include <tide.h>

static long n_tasks;
static bool compact;

static void *sleeper(void *arg)
{
    (void)arg;
    int err = tide_sleep(1.0);
    return err != 0 ? tide_fail(err) : NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    long n = n_tasks;
    long base = bench_maxrss_kib();

    tide_task_options opt = {.compact = compact};
    double t0 = bench_now();
    tide_future **tasks = malloc((size_t)n * sizeof *tasks);
    if (tasks == NULL)
        return tide_fail(-ENOMEM);
    for (long i = 0; i < n; i++) {
        tasks[i] = tide_create_task_ex(NULL, sleeper, NULL, &opt);
        if (tasks[i] == NULL) {
            int err = -errno;
            fprintf(stderr, "w3_sleepers: tide_create_task #%ld failed: %s\n",
                    i, tide_strerror(err));
            return tide_fail(err);
        }
    }
    tide_future *all = tide_gather(tasks, (size_t)n, 0);
    if (all == NULL)
        return tide_fail(-errno);
    int err = tide_await(all, NULL);
    double dt = bench_now() - t0;
    long rss = bench_maxrss_kib();
    if (err != 0) {
        fprintf(stderr, "w3_sleepers: awaiting the gather failed: %s\n",
                tide_strerror(err));
        return tide_fail(err);
    }

    printf("%s tide wall_s=%.3f s n=%ld rss_kib=%ld base_kib=%ld "
           "b_per_task=%.0f B\n",
           compact ? "W3C" : "W3", dt, n, rss, base,
           (double)(rss - base) * 1024.0 / (double)n);
    fflush(stdout);

    for (long i = 0; i < n; i++)
        tide_future_release(tasks[i]);
    tide_future_release(all);
    free(tasks);
    if (dt < 1.0) {
        fprintf(stderr,
                "w3_sleepers: done after %.3f s, before the 1.0 s sleeps\n",
                dt);
        return tide_fail(-EPROTO);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    n_tasks = bench_arg_n(argc, argv, 100000);
    if (argc > 2 && strcmp(argv[2], "compact") == 0)
        compact = true;
    else if (argc > 2) {
        fprintf(stderr, "usage: w3_sleepers [N [compact]]\n");
        return 2;
    }
    tide_loop *loop = tide_loop_new();
    if (loop == NULL) {
        perror("w3_sleepers: tide_loop_new");
        return 1;
    }
    tide_future *main_f = tide_create_task(loop, main_task, NULL);
    if (main_f == NULL) {
        perror("w3_sleepers: tide_create_task");
        return 1;
    }
    int err = tide_run_until_complete(loop, main_f, NULL);
    tide_future_release(main_f);
    int cerr = tide_loop_close(loop);
    if (err != 0 || cerr != 0) {
        fprintf(stderr, "w3_sleepers: failed: %s\n",
                tide_strerror(err ? err : cerr));
        return 1;
    }
    return 0;
}
