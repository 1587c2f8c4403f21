/* A tiny HTTP/1.1 server: GET / answers a small page, anything else 404;
 * connections are kept alive as HTTP/1.1 does (until the client sends
 * "Connection: close" or closes). A task per connection, reading the
 * request head line by line (tide/stream.h).
 *
 *   http_server PORT      listens on 127.0.0.1:PORT
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
#include <string.h>
#include <strings.h>

static const char page[] = "<!doctype html>\n<title>tide</title>\n"
                           "<p>Hello from tide.</p>\n";

/* Read one request head; its status (200, 404, 400) or 0 at the end.
 * *close is set if the client asked to close. */
static int read_request(tide_stream *s, bool *close)
{
    const void *p;
    ssize_t n = tide_stream_readline(s, &p);
    int status;

    if (n <= 0)
        return 0;
    status = n >= 14 && memcmp(p, "GET / HTTP/1.", 13) == 0 ? 200
             : n >= 4 && memcmp(p, "GET ", 4) == 0          ? 404
                                                            : 400;
    size_t end = (size_t)n - 1 - (n >= 2 && ((const char *)p)[n - 2] == '\r');
    if (end >= 8 && memcmp((const char *)p + end - 8, "HTTP/1.0", 8) == 0)
        *close = true; /* HTTP/1.0 closes after one answer */
    while ((n = tide_stream_readline(s, &p)) > 2) /* headers, to "\r\n" */
        if (n >= 17 && strncasecmp(p, "connection: close", 17) == 0)
            *close = true;
    return n > 0 ? status : 0;
}

static void serve_http(tide_stream *s, void *arg)
{
    char head[160];
    bool close = false;
    int status;
    (void)arg;

    while (!close && (status = read_request(s, &close)) > 0) {
        const char *body = status == 200 ? page : "not found\n";
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 %d %s\r\nContent-Type: text/%s\r\n"
                         "Content-Length: %zu\r\n%s\r\n",
                         status, status == 200 ? "OK" : "Not Found",
                         status == 200 ? "html" : "plain", strlen(body),
                         close ? "Connection: close\r\n" : "");
        struct iovec iov[2] = {{head, (size_t)n},
                               {(void *)body, strlen(body)}};
        if (tide_stream_writev(s, iov, 2) < 0 || tide_stream_drain(s) < 0)
            break;
    }
}

static void *serve(void *port)
{
    int err = tide_cancel_on_signals(NULL, tide_current_task());
    if (err < 0)
        return tide_fail(err);
    tide_server *srv =
        tide_start_server(NULL, "127.0.0.1", (uint16_t)atoi(port), serve_http,
                          NULL, NULL);
    if (!srv) {
        perror("http_server");
        return tide_fail(-errno);
    }
    err = tide_sleep(INFINITY); /* until SIGINT or SIGTERM */
    if (err != -ECANCELED)
        fprintf(stderr, "http_server: %s\n", tide_strerror(err));
    tide_server_close(srv, 1.0); /* every connection closed */
    return err == -ECANCELED ? NULL : tide_fail(err);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: http_server PORT\n");
        return 2;
    }
    return tide_run(serve, argv[1], NULL) == 0 ? 0 : 1;
}
