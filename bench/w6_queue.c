/* W6 queue: one queue of capacity 1024; a producer task puts 0..N-1, a
 * consumer task gets N items and sums them (shared/bench/README.md).
 * Prints
 *   W6 tide ns_per_item=... ns wall_s=... s n=... sum=... rss_kib=...
 * and exits 1 unless sum == N(N-1)/2.
 */
#include "bench.h"

#include <stdint.h>
#include <tide.h>

static tide_queue *q;
static long n_items;
static unsigned long long sum;

static void *producer(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_items; i++)
        if (tide_queue_put(q, (void *)(uintptr_t)i) < 0)
            return tide_fail(-EPIPE);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_items; i++) {
        void *v;
        if (tide_queue_get(q, &v) < 0)
            return tide_fail(-EPIPE);
        sum += (uintptr_t)v;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    n_items = bench_arg_n(argc, argv, 1000000);
    tide_loop *loop = tide_loop_new();
    q = tide_queue_new(1024);
    if (!loop || !q) {
        perror("w6_queue: setup");
        return 1;
    }
    double t0 = bench_now();
    tide_future *ts[2] = {tide_create_task(loop, producer, NULL),
                          tide_create_task(loop, consumer, NULL)};
    tide_future *both = ts[0] && ts[1] ? tide_gather(ts, 2, 0) : NULL;
    int err = both ? tide_run_until_complete(loop, both, NULL) : -ENOMEM;
    double dt = bench_now() - t0;
    if (err != 0) {
        fprintf(stderr, "w6_queue: %s\n", tide_strerror(err));
        return 1;
    }
    printf("W6 tide ns_per_item=%.1f ns wall_s=%.3f s n=%ld sum=%llu "
           "rss_kib=%ld\n",
           dt * 1e9 / (double)n_items, dt, n_items, sum, bench_maxrss_kib());
    fflush(stdout);
    tide_future_release(ts[0]);
    tide_future_release(ts[1]);
    tide_future_release(both);
    tide_queue_free(q);
    tide_loop_close(loop);
    unsigned long long want =
        (unsigned long long)n_items * (unsigned long long)(n_items - 1) / 2;
    if (sum != want) {
        fprintf(stderr, "w6_queue: sum %llu, want %llu\n", sum, want);
        return 1;
    }
    return 0;
}
