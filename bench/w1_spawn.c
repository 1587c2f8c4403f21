/* W1 spawn: N tide tasks, task i returning (i % 1000)^2 at once.
 *
 * The workload of shared/bench/README.md: create N tasks with
 * tide_create_task (each keeps its future alive until the end), wait for
 * all with tide_gather + tide_run_until_complete, then sum the gathered
 * results. Timing runs from just before the first create to just after the
 * sum; releasing the futures and closing the loop come after it. Prints
 *   W1 tide ns_per_task=... ns wall_s=... s n=... sum=... rss_kib=...
 * and exits 1 if the sum is not sum_{i<N} (i % 1000)^2 (332833500000 for
 * N = 10^6) or anything fails.
 */
#include "bench.h"

#include <stdint.h>
#include <tide.h>

static void *square(void *arg)
{
    uintptr_t x = (uintptr_t)arg;
    return (void *)(x * x);
}

static int fail(const char *what, int err)
{
    fprintf(stderr, "w1_spawn: %s failed: %s\n", what, tide_strerror(err));
    return 1;
}

int main(int argc, char **argv)
{
    long n = bench_arg_n(argc, argv, 1000000);
    tide_loop *loop = tide_loop_new();
    if (loop == NULL)
        return fail("tide_loop_new", -errno);

    double t0 = bench_now();
    tide_future **tasks = malloc((size_t)n * sizeof *tasks);
    if (tasks == NULL)
        return fail("malloc", -ENOMEM);
    for (long i = 0; i < n; i++) {
        tasks[i] =
            tide_create_task(loop, square, (void *)(uintptr_t)(i % 1000));
        if (tasks[i] == NULL)
            return fail("tide_create_task", -errno);
    }
    tide_future *all = tide_gather(tasks, (size_t)n, 0);
    if (all == NULL)
        return fail("tide_gather", -errno);
    void *res = NULL;
    int err = tide_run_until_complete(loop, all, &res);
    if (err != 0)
        return fail("tide_run_until_complete", err);
    void **results = res;
    unsigned long long sum = 0;
    for (long i = 0; i < n; i++)
        sum += (uintptr_t)results[i];
    double dt = bench_now() - t0;

    for (long i = 0; i < n; i++)
        tide_future_release(tasks[i]);
    tide_future_release(all);
    free(tasks);
    err = tide_loop_close(loop);
    if (err != 0)
        return fail("tide_loop_close", err);

    printf("W1 tide ns_per_task=%.1f ns wall_s=%.3f s n=%ld sum=%llu "
           "rss_kib=%ld\n",
           dt * 1e9 / (double)n, dt, n, sum, bench_maxrss_kib());
    fflush(stdout);

    unsigned long long want = 0;
    for (long i = 0; i < n; i++)
        want +=
            (unsigned long long)(i % 1000) * (unsigned long long)(i % 1000);
    if (sum != want) {
        fprintf(stderr, "w1_spawn: wrong sum %llu, want %llu\n", sum, want);
        return 1;
    }
    return 0;
}
