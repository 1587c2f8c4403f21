/* IO_PINGPONG: two tide tasks bouncing one byte over a socketpair.
 *
 * Task A sends a byte and waits for the reply; task B receives it and
 * sends it back: N round trips (default 10^5; argv[1] overrides), each
 * through tide_sock_send / tide_sock_recv on the loop's backend
 * (TIDE_BACKEND=poll picks the fallback; `io_pingpong N compact` makes
 * the two tasks compact). Prints
 *   IO_PINGPONG tide ns_per_rt=... ns cpu_ns_per_rt=... ns syscalls_per_rt=...
 * epoll_ctl=... wall_s=... s n=... backend=... (cpu_ns_per_rt: user + system
 * CPU time of the process per round trip, the figure that holds on a loaded
 * machine, where wall time mostly measures the scheduler) where
 * syscalls_per_rt counts, through tide's syscall seam, every system call tide
 * made (sends, receives, waits, registrations) divided by N, and epoll_ctl is
 * the total number of epoll_ctl calls (steady state should add none). Exits 1
 * if a call fails or a byte is wrong.
 */
#include "bench.h"

#include "base/sys.h"

#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <tide.h>
#include <tide/io.h>

static long rounds;
static int sv[2];

static void *ping(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        char c = (char)i;
        if (tide_sock_send(sv[0], &c, 1, 0) != 1)
            return tide_fail(-EIO);
        if (tide_sock_recv(sv[0], &c, 1, 0) != 1 || c != (char)(i + 1))
            return tide_fail(-EIO);
    }
    return NULL;
}

static void *pong(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        char c;
        if (tide_sock_recv(sv[1], &c, 1, 0) != 1 || c != (char)i)
            return tide_fail(-EIO);
        c = (char)(c + 1);
        if (tide_sock_send(sv[1], &c, 1, 0) != 1)
            return tide_fail(-EIO);
    }
    return NULL;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static uint64_t all_syscalls(void)
{
    uint64_t n = 0;
    for (int k = 0; k < TIDE__SYS_COUNT; k++)
        n += tide__sys_count((enum tide__sys_kind)k);
    return n;
}

int main(int argc, char **argv)
{
    rounds = bench_arg_n(argc, argv, 100000);
    bool compact = argc > 2 && strcmp(argv[2], "compact") == 0;
    tide_loop *loop = tide_loop_new();
    if (!loop ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0) {
        perror("io_pingpong: setup");
        return 1;
    }
    tide_task_options opt = {.compact = compact};
    uint64_t sys0 = all_syscalls();
    uint64_t ctl0 = tide__sys_count(TIDE__SYS_EPOLL_CTL);
    double t0 = bench_now(), c0 = cpu_seconds();
    tide_future *a = tide_create_task_ex(loop, ping, NULL, &opt);
    tide_future *b = tide_create_task_ex(loop, pong, NULL, &opt);
    tide_future *fs[2] = {a, b};
    tide_future *g = tide_gather(fs, 2, 0);
    int err = g ? tide_run_until_complete(loop, g, NULL) : -ENOMEM;
    double wall = bench_now() - t0, cpu = cpu_seconds() - c0;
    uint64_t sys = all_syscalls() - sys0;
    uint64_t ctl = tide__sys_count(TIDE__SYS_EPOLL_CTL) - ctl0;
    const char *backend = tide_loop_backend(loop);
    printf("IO_PINGPONG tide ns_per_rt=%.1f ns cpu_ns_per_rt=%.1f ns "
           "syscalls_per_rt=%.2f "
           "epoll_ctl=%llu wall_s=%.3f s n=%ld backend=%s%s\n",
           wall * 1e9 / (double)rounds, cpu * 1e9 / (double)rounds,
           (double)sys / (double)rounds, (unsigned long long)ctl, wall, rounds,
           backend, compact ? " compact" : "");
    tide_future_release(g);
    tide_future_release(a);
    tide_future_release(b);
    tide_close(sv[0]);
    tide_close(sv[1]);
    tide_loop_close(loop);
    if (err) {
        fprintf(stderr, "io_pingpong: %s\n", tide_strerror(err));
        return 1;
    }
    return 0;
}
