/* An echo server: every line a client sends comes back. A task per
 * connection, with a buffered reader and writer (tide/stream.h).
 *
 *   echo_server PORT      listens on 127.0.0.1:PORT
 *
 * It prints nothing. SIGINT or SIGTERM cancels the main task, as Ctrl-C
 * does under asyncio.run (tide_cancel_on_signals): it closes the server,
 * gives the connections a second to finish, and exits 0.
 * SPDX-License-Identifier: MIT
 */
#include <tide.h>
#include <tide/signal.h>
#include <tide/stream.h>
#include <tide/sync.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void echo(tide_stream *s, void *arg)
{
    const void *line;
    ssize_t n;
    (void)arg;

    while ((n = tide_stream_readline(s, &line)) > 0)
        if (tide_stream_write(s, line, (size_t)n) < 0 ||
            tide_stream_drain(s) < 0)
            break;
}

static void *serve(void *port)
{
    int err = tide_cancel_on_signals(NULL, tide_current_task());
    if (err < 0)
        return tide_fail(err);
    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", (uint16_t)atoi(port), echo, NULL,
                          NULL);
    if (!srv) {
        perror("echo_server");
        return tide_fail(-errno);
    }
    err = tide_sleep(INFINITY); /* until SIGINT or SIGTERM */
    if (err != -ECANCELED)
        fprintf(stderr, "echo_server: %s\n", tide_strerror(err));
    tide_server_close(srv, 1.0); /* every connection closed */
    return err == -ECANCELED ? NULL : tide_fail(err);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: echo_server PORT\n");
        return 2;
    }
    return tide_run(serve, argv[1], NULL) == 0 ? 0 : 1;
}
