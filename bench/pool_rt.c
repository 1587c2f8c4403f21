/* POOL: the thread pool's round trip, batch and idle cost (tide/pool.h).
 *
 * 1. Back to back: one task runs N jobs (default 10^5; argv[1]
 *    overrides) one after another with tide_to_thread, each submitted as
 *    soon as the previous result is back: wall and CPU ns per round trip.
 * 2. Queued at once: N executor futures submitted in one go, then
 *    gathered: ns per job, and the loop's wake-ups (eventfd writes
 *    through the syscall seam) against the batches it took in.
 * 3. Idle: the loop sleeps for two seconds with the pool's threads idle:
 *    the process's CPU time in each (getrusage): the first holds the
 *    spins before blocking, the second should be all but zero; and the
 *    same two seconds first, before the pool has started (no_pool_*:
 *    the loop's own timer wake-ups, the baseline).
 * Prints
 *   POOL_RT tide ns_per_rt=... ns cpu_ns_per_rt=... ns wakeups=... n=...
 *   POOL_BATCH tide ns_per_job=... ns wakeups=... batches=... n=...
 *   POOL_IDLE tide idle_s=1.000 cpu_us_first_s=... us cpu_us_second_s=... us
 *             no_pool_first_s=... us no_pool_second_s=... us
 * Exits 1 if a job fails or a result is wrong.
 */
#include "bench.h"

#include "base/sys.h"
#include "core/loop.h"

#include <stdint.h>
#include <sys/resource.h>
#include <tide.h>
#include <tide/pool.h>

static long rounds;

static int add_one(void *arg, void **result)
{
    *result = (void *)((intptr_t)arg + 1);
    return 0;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void *back_to_back(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        void *v = NULL;
        int err = tide_to_thread(add_one, (void *)(intptr_t)i, &v);
        if (err < 0)
            return tide_fail(err);
        if ((intptr_t)v != i + 1)
            return tide_fail(-EIO);
    }
    return NULL;
}

/* cpu[0]: CPU time over the second right after the last job (the
 * threads' and the loop's spin before blocking included); cpu[1]: over
 * the next second. */
static void *idle(void *arg)
{
    double *cpu = arg;
    double c0 = cpu_seconds();
    int err = tide_sleep(1.0);
    double c1 = cpu_seconds();
    if (!err)
        err = tide_sleep(1.0);
    cpu[0] = c1 - c0;
    cpu[1] = cpu_seconds() - c1;
    return err < 0 ? tide_fail(err) : NULL;
}

int main(int argc, char **argv)
{
    rounds = bench_arg_n(argc, argv, 100000);
    tide_loop *loop = tide_loop_new();
    tide_future **fs = malloc((size_t)rounds * sizeof *fs);
    if (!loop || !fs) {
        perror("pool_rt: setup");
        return 1;
    }

    /* 0. the same idle seconds before the pool has started: the baseline
     * (the loop's own timer wake-ups and getrusage) */
    double base_cpu[2] = {0, 0};
    tide_future *t = tide_create_task(loop, idle, base_cpu);
    int err = t ? tide_run_until_complete(loop, t, NULL) : -errno;
    tide_future_release(t);

    /* 1. back to back (one job first, so the threads are started) */
    tide_future *warm =
        tide_run_in_executor(loop, TIDE_POOL_CPU, add_one, NULL, NULL);
    if (!err)
        err = warm ? tide_run_until_complete(loop, warm, NULL) : -errno;
    tide_future_release(warm);
    uint64_t w0 = tide__sys_count(TIDE__SYS_WAKE);
    double t0 = bench_now(), c0 = cpu_seconds();
    t = tide_create_task(loop, back_to_back, NULL);
    if (!err)
        err = t ? tide_run_until_complete(loop, t, NULL) : -errno;
    double wall = bench_now() - t0, cpu = cpu_seconds() - c0;
    tide_future_release(t);
    printf("POOL_RT tide ns_per_rt=%.1f ns cpu_ns_per_rt=%.1f ns "
           "wakeups=%llu n=%ld pool=%u\n",
           wall * 1e9 / (double)rounds, cpu * 1e9 / (double)rounds,
           (unsigned long long)(tide__sys_count(TIDE__SYS_WAKE) - w0), rounds,
           tide_pool_get_size());

    /* 2. queued at once */
    w0 = tide__sys_count(TIDE__SYS_WAKE);
    uint64_t b0 = loop->remote_batches;
    t0 = bench_now();
    for (long i = 0; i < rounds && !err; i++) {
        fs[i] = tide_run_in_executor(loop, TIDE_POOL_CPU, add_one,
                                     (void *)(intptr_t)i, NULL);
        if (!fs[i])
            err = -errno;
    }
    void **out = NULL;
    tide_future *g = err ? NULL : tide_gather(fs, (size_t)rounds, 0);
    if (!err)
        err = g ? tide_run_until_complete(loop, g, (void **)&out) : -errno;
    wall = bench_now() - t0;
    for (long i = 0; i < rounds && !err; i++)
        if ((intptr_t)out[i] != i + 1)
            err = -EIO;
    printf("POOL_BATCH tide ns_per_job=%.1f ns wakeups=%llu batches=%llu "
           "n=%ld\n",
           wall * 1e9 / (double)rounds,
           (unsigned long long)(tide__sys_count(TIDE__SYS_WAKE) - w0),
           (unsigned long long)(loop->remote_batches - b0), rounds);
    tide_future_release(g);
    for (long i = 0; i < rounds && fs[i]; i++)
        tide_future_release(fs[i]);
    free(fs);

    /* 3. idle */
    double idle_cpu[2] = {0, 0};
    t = tide_create_task(loop, idle, idle_cpu);
    if (!err)
        err = t ? tide_run_until_complete(loop, t, NULL) : -errno;
    tide_future_release(t);
    printf("POOL_IDLE tide idle_s=1.000 cpu_us_first_s=%.0f us "
           "cpu_us_second_s=%.0f us no_pool_first_s=%.0f us "
           "no_pool_second_s=%.0f us\n",
           idle_cpu[0] * 1e6, idle_cpu[1] * 1e6, base_cpu[0] * 1e6,
           base_cpu[1] * 1e6);
    tide_loop_close(loop);
    if (err) {
        fprintf(stderr, "pool_rt: %s\n", tide_strerror(err));
        return 1;
    }
    return 0;
}
