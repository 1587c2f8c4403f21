/* W5 echo (shared/bench/README.md): tide's stream server. A task per
 * connection reads with the buffered reader (tide_stream_read, up to
 * 65536 bytes), writes it back with tide_stream_write and calls
 * tide_stream_drain after each write, as asyncio-streams does. TCP_NODELAY
 * is set on every accepted socket (tide_start_server does).
 *
 *   w5_echo PORT    serves 127.0.0.1:PORT until SIGTERM or SIGINT
 *
 * On exit it prints to stderr, in one line of key=value, the requests
 * (reads) served and, per request since the first 1,000 (the steady
 * state), the allocations (every malloc, calloc and realloc the program
 * makes: the link wraps them, see CMakeLists.txt) and the system calls
 * through src/base/sys.h's seam: recv, send, epoll_wait, epoll_ctl,
 * io_uring_enter; and the loop's iterations per request.
 * bench/w5.sh appends them to its result line.
 * SPDX-License-Identifier: MIT
 */
#include "base/sys.h"

#include "../examples/stop_signal.h"

#include <tide.h>
#include <tide/stream.h>
#include <tide/sync.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* The counts a request is charged, in the order printed. */
static const struct {
    const char *name;
    int kind; /* enum tide__sys_kind, or -1: allocations */
} counted[] = {
    {"allocs", -1},
    {"recv", TIDE__SYS_RECV},
    {"send", TIDE__SYS_SEND},
    {"epoll_wait", TIDE__SYS_EPOLL_WAIT},
    {"epoll_ctl", TIDE__SYS_EPOLL_CTL},
    {"io_uring_enter", TIDE__SYS_URING_ENTER},
};
#define NCOUNTED (sizeof counted / sizeof counted[0])

static uint64_t reads, at1000[NCOUNTED];
static uint64_t allocs; /* the server's one thread makes them all */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
    allocs++;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    allocs++;
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    allocs++;
    return __real_realloc(p, n);
}

static uint64_t count(size_t i)
{
    return counted[i].kind < 0
               ? allocs
               : tide__sys_count((enum tide__sys_kind)counted[i].kind);
}

static uint64_t iter1000; /* the loop's iterations at request 1,000 */

static uint64_t iterations(void)
{
    tide_loop_stats st;

    return tide_loop_get_stats(NULL, &st) == 0 ? st.iterations : 0;
}

static void print_counts(void)
{
    fprintf(stderr, "w5_echo: requests=%llu", (unsigned long long)reads);
    if (reads > 1000)
        fprintf(stderr, " iterations_per_req=%.4f",
                (double)(iterations() - iter1000) / (double)(reads - 1000));
    for (size_t i = 0; i < NCOUNTED && reads > 1000; i++)
        fprintf(stderr, " %s_per_req=%.4f", counted[i].name,
                (double)(count(i) - at1000[i]) / (double)(reads - 1000));
    fputc('\n', stderr);
}

static void echo(tide_stream *s, void *arg)
{
    const void *p;
    ssize_t n;
    (void)arg;

    while ((n = tide_stream_read(s, 65536, &p)) > 0) {
        if (++reads == 1000) {
            for (size_t i = 0; i < NCOUNTED; i++)
                at1000[i] = count(i);
            iter1000 = iterations();
        }
        if (tide_stream_write(s, p, (size_t)n) < 0 || tide_stream_drain(s) < 0)
            break;
    }
}

static void *serve(void *port)
{
    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", (uint16_t)atoi(port), echo, NULL,
                          NULL);
    if (!srv) {
        perror("w5_echo");
        return tide_fail(-errno);
    }
    if (stop_signal_wait() < 0)
        perror("w5_echo");
    print_counts();
    tide_server_abort(srv);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: w5_echo PORT\n");
        return 2;
    }
    if (stop_signal_block() < 0)
        return 1;
    return tide_run(serve, argv[1], NULL) == 0 ? 0 : 1;
}
