/* W5 echo (shared/bench/README.md): tide's stream server. A task per
 * connection reads with the buffered reader (tide_stream_read, up to
 * 65536 bytes), writes it back with tide_stream_write and calls
 * tide_stream_drain after each write, as asyncio-streams does. TCP_NODELAY
 * is set on every accepted socket (tide_start_server does).
 *
 *   w5_echo PORT    serves 127.0.0.1:PORT until SIGTERM or SIGINT
 *
 * On exit it prints to stderr the requests (reads) served and the
 * allocations and epoll_ctl calls per request since the first 1,000
 * reads (the steady-state counts, through src/base/sys.h's seam).
 * SPDX-License-Identifier: MIT
 */
#include "base/alloc.h"
#include "base/sys.h"

#include "../examples/stop_signal.h"

#include <tide.h>
#include <tide/stream.h>
#include <tide/sync.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t reads, ctl0, recv0;

static void echo(tide_stream *s, void *arg)
{
    const void *p;
    ssize_t n;
    (void)arg;

    while ((n = tide_stream_read(s, 65536, &p)) > 0) {
        if (++reads == 1000) {
            ctl0 = tide__sys_count(TIDE__SYS_EPOLL_CTL);
            recv0 = tide__sys_count(TIDE__SYS_RECV);
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
    if (reads > 1000)
        fprintf(stderr,
                "w5_echo: requests=%llu epoll_ctl_per_req=%.6f "
                "recv_per_req=%.3f\n",
                (unsigned long long)reads,
                (double)(tide__sys_count(TIDE__SYS_EPOLL_CTL) - ctl0) /
                    (double)(reads - 1000),
                (double)(tide__sys_count(TIDE__SYS_RECV) - recv0) /
                    (double)(reads - 1000));
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
