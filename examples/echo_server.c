/* An echo server: every line a client sends comes back. A task per
 * connection, with a buffered reader and writer (tide/stream.h).
 *
 *   echo_server PORT      listens on 127.0.0.1:PORT
 *
 * It prints nothing. SIGINT or SIGTERM (read from a signalfd watched with
 * tide_add_reader; there is no signal API yet) closes the server, gives
 * the connections a second to finish, and exits 0.
 * SPDX-License-Identifier: MIT
 */
#include <tide.h>
#include <tide/stream.h>
#include <tide/sync.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>

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

static int sfd = -1;

static void on_signal(void *stop)
{
    tide_remove_reader(NULL, sfd); /* once is enough */
    tide_event_set(stop);
}

static void *serve(void *port)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    tide_event *stop = tide_event_new();
    tide_server *srv = tide_start_server(NULL, "127.0.0.1",
                                         (uint16_t)atoi(port), echo, NULL,
                                         NULL);
    if (sfd < 0 || !stop || !srv ||
        tide_add_reader(NULL, sfd, on_signal, stop) < 0) {
        perror("echo_server");
        return tide_fail(-1);
    }
    tide_event_wait(stop);
    tide_server_close(srv, 1.0); /* every connection closed */
    tide_close(sfd);
    tide_event_free(stop);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: echo_server PORT\n");
        return 2;
    }
    return tide_run(serve, argv[1], NULL) == 0 ? 0 : 1;
}
