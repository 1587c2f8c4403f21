/* An echo client: sends lines to an echo server and prints what comes
 * back (asyncio's tcp_echo_client, with open_connection).
 *
 *   echo_client HOST PORT [LINE...]
 *
 * HOST is a name ("localhost") or an address. Each LINE is sent with a
 * newline, and its echo read back and printed before the next is sent;
 * without LINEs the lines of stdin are sent, read on a pool thread
 * (tide_to_thread: a blocking fgets must not hold the loop). Then the
 * client half-closes (write_eof) and closes. Exits 0 when every line
 * came back, 1 on an error (printed on stderr) or an early end.
 * SPDX-License-Identifier: MIT
 */
#include <tide.h>
#include <tide/pool.h>
#include <tide/stream.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
    char **argv; /* LINEs still to send, NULL-terminated; NULL: stdin */
    char buf[4096];
};

/* A line without its newline (the last of stdin, or one too long for
 * buf: stdin's then goes in pieces, an argument is cut) gets one: the
 * server echoes lines. */
static void end_line(char *buf, size_t size)
{
    size_t n = strlen(buf);

    if (n == 0 || buf[n - 1] != '\n')
        strcpy(buf + (n < size - 1 ? n : size - 2), "\n");
}

/* On a pool thread: the next line of stdin into job->buf, or -ENODATA. */
static int read_stdin(void *arg, void **result)
{
    struct job *job = arg;
    (void)result;
    if (!fgets(job->buf, sizeof job->buf - 1, stdin))
        return -ENODATA;
    end_line(job->buf, sizeof job->buf);
    return 0;
}

/* The next line to send into job->buf: 0, or -ENODATA when there is
 * none. */
static int next_line(struct job *job)
{
    if (!job->argv)
        return tide_to_thread(read_stdin, job, NULL);
    if (!*job->argv)
        return -ENODATA;
    snprintf(job->buf, sizeof job->buf, "%s", *job->argv++);
    end_line(job->buf, sizeof job->buf);
    return 0;
}

static int talk(tide_stream *s, struct job *job)
{
    const void *echo;
    ssize_t n;
    int err;

    while ((err = next_line(job)) == 0) {
        if ((err = tide_stream_write(s, job->buf, strlen(job->buf))) < 0 ||
            (err = tide_stream_drain(s)) < 0)
            return err;
        if ((n = tide_stream_readline(s, &echo)) <= 0)
            return n < 0 ? (int)n : -ENODATA; /* the server went away */
        printf("%.*s", (int)n, (const char *)echo);
        fflush(stdout);
    }
    return err == -ENODATA ? tide_stream_write_eof(s) : err;
}

static void *client(void *arg)
{
    char **argv = arg;
    tide_stream *s;
    static struct job job; /* not on the stack: a pool thread writes it */

    job.argv = argv[3] ? &argv[3] : NULL;
    int err = tide_open_connection(argv[1], (uint16_t)atoi(argv[2]), 0, &s);
    if (err == 0) {
        err = talk(s, &job);
        int cerr = tide_stream_close(s, 5.0);
        err = err < 0 ? err : cerr;
    }
    if (err < 0)
        fprintf(stderr, "echo_client: %s %s: %s\n", argv[1], argv[2],
                tide_strerror(err));
    return err < 0 ? tide_fail(err) : NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: echo_client HOST PORT [LINE...]\n");
        return 2;
    }
    return tide_run(client, argv, NULL) == 0 ? 0 : 1;
}
