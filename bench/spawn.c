/* SPAWN: start /bin/true and wait for it, N times one after another
 * (default 1000; argv[1] overrides), with tide_create_subprocess_exec
 * and tide_process_wait (issue 10's speed goal: at least as fast as
 * Python asyncio and Go's os/exec, bench/peers/spawn.py and spawn.go,
 * run beside it by bench/run.sh). Prints
 *   SPAWN tide us_per_spawn=... us n=...
 * Exits 1 if a spawn fails or /bin/true does not exit 0.
 */
#include "bench.h"

#include <tide.h>
#include <tide/process.h>

static long n;

static void *spawn_all(void *arg)
{
    const char *argv[] = {"/bin/true", NULL};
    (void)arg;

    for (long i = 0; i < n; i++) {
        tide_process *p = NULL;
        int code = -1;
        int err = tide_create_subprocess_exec(argv, NULL, &p);
        if (!err)
            err = tide_process_wait(p, &code);
        tide_process_free(p);
        if (err || code != 0)
            return tide_fail(err ? err : -EIO);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    n = bench_arg_n(argc, argv, 1000);
    double t0 = bench_now();
    int err = tide_run(spawn_all, NULL, NULL);
    double t = bench_now() - t0;
    if (err) {
        fprintf(stderr, "spawn: %s\n", tide_strerror(err));
        return 1;
    }
    printf("SPAWN tide us_per_spawn=%.1f us n=%ld\n", t / (double)n * 1e6, n);
    return 0;
}
