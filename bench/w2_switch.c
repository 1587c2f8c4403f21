/* W2 switch: two tasks ping-pong N round trips through two capacity-1
 * queues (shared/bench/README.md). Task A puts i into ping, then gets
 * from pong; task B gets v from ping and puts v into pong. One round trip
 * is at least two task switches. Prints
 *   W2 tide ns_per_rt=... ns wall_s=... s n=... rss_kib=...
 * and exits 1 if a value comes back wrong.
 */
#include "bench.h"

#include <stdint.h>
#include <tide.h>

static tide_queue *ping, *pong;
static long n_rt;
static long wrong;

static void *task_a(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_rt; i++) {
        void *v;
        if (tide_queue_put(ping, (void *)(uintptr_t)i) < 0 ||
            tide_queue_get(pong, &v) < 0)
            return tide_fail(-EPIPE);
        if ((uintptr_t)v != (uintptr_t)i)
            wrong++;
    }
    return NULL;
}

static void *task_b(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_rt; i++) {
        void *v;
        if (tide_queue_get(ping, &v) < 0 || tide_queue_put(pong, v) < 0)
            return tide_fail(-EPIPE);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    n_rt = bench_arg_n(argc, argv, 1000000);
    tide_loop *loop = tide_loop_new();
    ping = tide_queue_new(1);
    pong = tide_queue_new(1);
    if (!loop || !ping || !pong) {
        perror("w2_switch: setup");
        return 1;
    }
    double t0 = bench_now();
    tide_future *ts[2] = {tide_create_task(loop, task_a, NULL),
                          tide_create_task(loop, task_b, NULL)};
    tide_future *both = ts[0] && ts[1] ? tide_gather(ts, 2, 0) : NULL;
    int err = both ? tide_run_until_complete(loop, both, NULL) : -ENOMEM;
    double dt = bench_now() - t0;
    if (err != 0) {
        fprintf(stderr, "w2_switch: %s\n", tide_strerror(err));
        return 1;
    }
    printf("W2 tide ns_per_rt=%.1f ns wall_s=%.3f s n=%ld rss_kib=%ld\n",
           dt * 1e9 / (double)n_rt, dt, n_rt, bench_maxrss_kib());
    fflush(stdout);
    tide_future_release(ts[0]);
    tide_future_release(ts[1]);
    tide_future_release(both);
    tide_queue_free(ping);
    tide_queue_free(pong);
    tide_loop_close(loop);
    if (wrong) {
        fprintf(stderr, "w2_switch: %ld values came back wrong\n", wrong);
        return 1;
    }
    return 0;
}
