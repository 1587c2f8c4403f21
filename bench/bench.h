/* bench.h: the few helpers every tide benchmark program shares.
 *
 * A monotonic clock in seconds, the process's peak RSS in KiB (the
 * getrusage ru_maxrss the peers print as rss_kib) and the optional first
 * argument that overrides N, exactly as the peer programs in
 * shared/bench/peers/ read it. Header-only: each program is one file.
 */
#ifndef TIDE_BENCH_H
#define TIDE_BENCH_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <time.h>

/* Monotonic seconds (CLOCK_MONOTONIC, as Go's time.Now and perf_counter). */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Peak resident set size of the process so far, KiB. */
static inline long bench_maxrss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

/* N from argv[1] if given (a positive integer), else `dflt`. Exits 2 on a
 * bad argument. */
static inline long bench_arg_n(int argc, char **argv, long dflt)
{
    if (argc < 2)
        return dflt;
    char *end = NULL;
    long n = strtol(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0' || n <= 0) {
        fprintf(stderr, "%s: N must be a positive integer, got '%s'\n",
                argv[0], argv[1]);
        exit(2);
    }
    return n;
}

#endif /* TIDE_BENCH_H */
