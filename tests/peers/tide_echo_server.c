/* A tide echo server for tests/peers/asyncio_client.py: every byte a
 * client sends comes back (any size, no framing), and when the client
 * half-closes, the server sends what is left and half-closes too.
 *
 *   tide_echo_server      listens on 127.0.0.1, on a port the system
 *                         picks, and prints that port on stdout
 *
 * SIGINT or SIGTERM closes the server and it exits 0, once every
 * connection's handler has returned (1 if one still runs a second later).
 * Public API only (tide.h, tide/stream.h), and the examples' signalfd stopgap
 * (examples/stop_signal.h). SPDX-License-Identifier: MIT
 */
#include <tide.h>
#include <tide/stream.h>

#include "stop_signal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>

static void echo(tide_stream *s, void *arg)
{
    const void *data;
    ssize_t n;
    (void)arg;

    while ((n = tide_stream_read(s, 65536, &data)) > 0)
        if (tide_stream_write(s, data, (size_t)n) < 0 ||
            tide_stream_drain(s) < 0)
            return; /* a reset client: the server closes the stream */
    if (n == 0)
        tide_stream_write_eof(s); /* the client half-closed: so do we */
}

static void *serve(void *arg)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    (void)arg;

    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", 0, echo, NULL, NULL);
    if (!srv || tide_server_sockname(srv, (struct sockaddr *)&a, &len) < 0) {
        perror("tide_echo_server");
        return tide_fail(-EIO);
    }
    printf("%u\n", (unsigned)ntohs(a.sin_port));
    fflush(stdout);
    int err = stop_signal_wait();
    if (err == 0)
        err = tide_server_close(srv, 1.0); /* -ETIMEDOUT: a handler hung */
    return err < 0 ? tide_fail(err) : NULL;
}

int main(void)
{
    if (stop_signal_block() < 0)
        return 1;
    return tide_run(serve, NULL, NULL) == 0 ? 0 : 1;
}
