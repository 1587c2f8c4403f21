/* A chat server: every line a client sends goes to every other client.
 * A task per connection reads lines and writes each into the other
 * clients' streams (tide/stream.h).
 *
 *   chat_server PORT      listens on 127.0.0.1:PORT
 *
 * A write never waits: what a client's socket does not take at once
 * waits in its stream's queue, sent by the loop in the background. So a
 * slow client cannot stall the others, and its queue is bounded: a
 * client with more than MAX_QUEUED bytes waiting is disconnected (its
 * connection reset: it sees an error, not a silently thinned chat).
 *
 * It prints nothing. SIGINT or SIGTERM (read from a signalfd watched with
 * tide_add_reader; there is no signal API yet) closes the server: the
 * handlers are cancelled, every connection is closed, it exits 0.
 * SPDX-License-Identifier: MIT
 */
#include <tide.h>
#include <tide/stream.h>
#include <tide/sync.h>

#include "stop_signal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_QUEUED (256 * 1024)

struct client {
    tide_stream *s;
    struct client *prev, *next; /* in `clients` */
};

static struct client clients = {NULL, &clients, &clients}; /* list head */

static void leave(struct client *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->next = c->prev = c; /* leaving twice is harmless */
}

/* Send line to everyone but from; drop those too slow to keep up. */
static void broadcast(struct client *from, const void *line, size_t n)
{
    struct client *c, *next;

    for (c = clients.next; c != &clients; c = next) {
        next = c->next;
        if (c == from)
            continue;
        if (tide_stream_queued(c->s) + n > MAX_QUEUED) {
            leave(c);
            tide_stream_abort(c->s); /* its reader wakes with -EBADF */
        } else if (tide_stream_write(c->s, line, n) < 0) {
            leave(c); /* gone: its reader sees that too */
        }
    }
}

static void chat(tide_stream *s, void *arg)
{
    struct client *me = malloc(sizeof *me); /* other tasks read it */
    const void *line;
    ssize_t n;
    (void)arg;

    if (!me)
        return;
    *me = (struct client){s, clients.prev, &clients};
    clients.prev->next = me;
    clients.prev = me;
    while ((n = tide_stream_readline(s, &line)) > 0)
        broadcast(me, line, (size_t)n);
    leave(me);
    free(me);
}

static void *serve(void *port)
{
    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", (uint16_t)atoi(port), chat, NULL,
                          NULL);
    if (!srv) {
        perror("chat_server");
        return tide_fail(-errno);
    }
    if (stop_signal_wait() < 0)
        perror("chat_server");
    tide_server_close(srv, 0); /* cancel the handlers, close every stream */
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: chat_server PORT\n");
        return 2;
    }
    if (stop_signal_block() < 0)
        return 1;
    return tide_run(serve, argv[1], NULL) == 0 ? 0 : 1;
}
