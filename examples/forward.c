/* A TCP port forwarder: every connection to the listening port is
 * relayed to a target, both ways (tide/stream.h).
 *
 *   forward PORT HOST TARGET_PORT     listens on 127.0.0.1:PORT
 *
 * Per connection: the handler connects to HOST:TARGET_PORT (a name or an
 * address; 10 seconds at most), then a task group runs two tasks, one copying
 * client -> target, the other target -> client. An end of stream on one side
 * is passed on as a half-close (write_eof), and the other direction goes on,
 * so a client that shuts down its sending side still gets the whole answer.
 * When one direction fails (a reset, an error), the group cancels the other;
 * once both are over, both connections are closed.
 *
 * It prints nothing. SIGINT or SIGTERM closes the server, gives the
 * connections a second to finish, cancels the rest, and exits 0.
 * SPDX-License-Identifier: MIT
 */
#include <tide.h>
#include <tide/stream.h>
#include <tide/sync.h>

#include "stop_signal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct pipe {
    tide_stream *from, *to;
};

static const char *target_host;
static uint16_t target_port;

/* Copy from -> to until the end of from, then half-close to. */
static void *pump_task(void *arg)
{
    struct pipe *p = arg;
    const void *data;
    ssize_t n = 0;
    int err = 0;

    while (err == 0 && (n = tide_stream_read(p->from, 65536, &data)) > 0)
        if ((err = tide_stream_write(p->to, data, (size_t)n)) == 0)
            err = tide_stream_drain(p->to);
    err = err < 0 ? err : n < 0 ? (int)n : 0;
    if (err == 0)
        err = tide_stream_write_eof(p->to);
    return err < 0 ? tide_fail(err) : NULL;
}

static void relay(tide_stream *client, void *arg)
{
    tide_stream *target;
    (void)arg;

    tide_timeout *t = tide_timeout_begin(10.0); /* to connect, at most */
    if (!t)
        return; /* the server closes the client's connection */
    int err = tide_open_connection(target_host, target_port, 0, &target);
    if (tide_timeout_end(t, err) < 0)
        return;
    struct pipe *p = malloc(2 * sizeof *p); /* the two tasks read it */
    tide_task_group *g = p ? tide_task_group_new() : NULL;
    if (g) { /* a failure in one task cancels the other */
        p[0] = (struct pipe){client, target};
        p[1] = (struct pipe){target, client};
        tide_future_release(tide_task_group_spawn(g, pump_task, &p[0], NULL));
        tide_future_release(tide_task_group_spawn(g, pump_task, &p[1], NULL));
        tide_task_group_end(g, 0); /* both directions are over */
        tide_task_group_free(g);
    }
    free(p);
    tide_stream_close(target, 1.0);
}

static void *serve(void *port)
{
    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", (uint16_t)atoi(port), relay, NULL,
                          NULL);
    if (!srv) {
        perror("forward");
        return tide_fail(-errno);
    }
    if (stop_signal_wait() < 0)
        perror("forward");
    tide_server_close(srv, 1.0); /* every connection closed */
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: forward PORT HOST TARGET_PORT\n");
        return 2;
    }
    target_host = argv[2];
    target_port = (uint16_t)atoi(argv[3]);
    if (stop_signal_block() < 0)
        return 1;
    return tide_run(serve, argv[1], NULL) == 0 ? 0 : 1;
}
