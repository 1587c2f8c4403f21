/* A tide client for tests/peers/asyncio_server.py: tide's open_connection
 * and stream calls against a server written with Python's asyncio. Each
 * check opens a connection (by name, "localhost", or by address), sends
 * the line that picks the server's behaviour, and checks what tide makes
 * of it: echoes of 1 byte to 4 MiB, lines, a half-close answered by the
 * server's end of stream, readexactly cut short by the server's close, a
 * reset while reading and while uploading (a clear -ECONNRESET or -EPIPE,
 * never a hang), an empty connection, and 100 connections at once. Each
 * check has 10 seconds.
 *
 *   tide_client PORT
 *
 * Prints one line per check; exits 0 when all pass. Public API only.
 * SPDX-License-Identifier: MIT
 */
#include <tide.h>
#include <tide/stream.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t port;
static int failures;

#define EXPECT(cond, ...)                                                   \
    do {                                                                    \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

/* Connect to the server and send the mode line: the stream, or NULL. */
static tide_stream *open_mode(const char *host, const char *mode)
{
    tide_stream *s = NULL;
    int err = tide_open_connection(host, port, 0, &s);

    EXPECT(err == 0, "connect to %s: %s", host, tide_strerror(err));
    if (s && (err = tide_stream_write(s, mode, strlen(mode))) < 0) {
        EXPECT(err == 0, "write: %s", tide_strerror(err));
        tide_stream_abort(s);
        return NULL;
    }
    return s;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7 + i / 251);
}

/* Send n bytes and read exactly n back: 0 if they are the same. */
static int round_trip(tide_stream *s, size_t n, unsigned seed)
{
    unsigned char *out = malloc(n), *back = malloc(n);
    int err = out && back ? 0 : -ENOMEM;

    if (err == 0) {
        fill(out, n, seed);
        err = tide_stream_write(s, out, n); /* queues what it cannot send */
    }
    if (err == 0)
        err = tide_stream_readexactly(s, back, n, NULL); /* sends meanwhile */
    if (err == 0 && memcmp(out, back, n) != 0)
        err = -EILSEQ;
    free(out);
    free(back);
    return err;
}

static void *echo_check(void *arg)
{
    static const size_t sizes[] = {1, 100, 4096, 65543, 1 << 20, 4 << 20};
    tide_stream *s = open_mode("localhost", "echo\n");
    const void *line;
    char buf[8];
    (void)arg;

    if (!s)
        return NULL;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int err = round_trip(s, sizes[i], (unsigned)i);
        EXPECT(err == 0, "%zu bytes: %s", sizes[i], tide_strerror(err));
    }
    EXPECT(tide_stream_write(s, "a\nbb\n", 5) == 0, "write");
    EXPECT(tide_stream_readline(s, &line) == 2 && memcmp(line, "a\n", 2) == 0,
           "first line");
    EXPECT(tide_stream_readline(s, &line) == 3 && memcmp(line, "bb\n", 3) == 0,
           "second line");
    EXPECT(tide_stream_write_eof(s) == 0, "write_eof");
    EXPECT(tide_stream_read_into(s, buf, sizeof buf) == 0, "end of stream");
    EXPECT(tide_stream_at_eof(s), "at_eof");
    EXPECT(tide_stream_close(s, 5) == 0, "close");
    return NULL;
}

static void *lines_check(void *arg)
{
    tide_stream *s = open_mode("127.0.0.1", "lines 1000\n");
    const void *line;
    char want[32];
    ssize_t n;
    (void)arg;

    for (int i = 0; s && i < 1000; i++) {
        snprintf(want, sizeof want, "line %d\n", i);
        n = tide_stream_readline(s, &line);
        EXPECT(n == (ssize_t)strlen(want) &&
                   memcmp(line, want, (size_t)n) == 0,
               "line %d: %zd", i, n);
    }
    if (s) {
        EXPECT((n = tide_stream_readline(s, &line)) == 0, "after: %zd", n);
        EXPECT(tide_stream_at_eof(s), "at_eof");
        tide_stream_close(s, 5);
    }
    return NULL;
}

static void *partial_check(void *arg)
{
    tide_stream *s = open_mode("localhost", "partial\n");
    char buf[100];
    size_t got = 0;
    (void)arg;

    if (!s)
        return NULL;
    int err = tide_stream_readexactly(s, buf, sizeof buf, &got);
    EXPECT(err == -ENODATA, "readexactly: %s", tide_strerror(err));
    EXPECT(got == 10 && memcmp(buf, "0123456789", 10) == 0, "got %zu", got);
    tide_stream_close(s, 5);
    return NULL;
}

/* -ECONNRESET or -EPIPE, as a reset peer gives. */
static bool reset_error(int err)
{
    return err == -ECONNRESET || err == -EPIPE;
}

static void *reset_check(void *arg)
{
    tide_stream *s = open_mode("127.0.0.1", "reset\n");
    static char chunk[65536];
    const void *line;
    (void)arg;

    if (!s)
        return NULL;
    ssize_t n = tide_stream_readline(s, &line); /* "bye\n", or the reset */
    EXPECT(n == 4 || reset_error((int)n), "readline: %zd", n);
    n = tide_stream_readline(s, &line);
    EXPECT(n == 0 || reset_error((int)n), "after the reset: %zd", n);
    int err = 0;
    for (int i = 0; err == 0 && i < 1000; i++)
        if ((err = tide_stream_write(s, chunk, sizeof chunk)) == 0)
            err = tide_stream_drain(s);
    EXPECT(reset_error(err), "writing to a reset peer: %s",
           tide_strerror(err));
    EXPECT(reset_error(tide_stream_drain(s)), "the error sticks");
    tide_stream_close(s, 5);
    return NULL;
}

static void *reset_upload_check(void *arg)
{
    tide_stream *s = open_mode("localhost", "reset-upload\n");
    static char chunk[65536];
    int err = 0, i;
    (void)arg;

    if (!s)
        return NULL;
    for (i = 0; err == 0 && i < 256; i++) /* 16 MiB, far beyond 100000 */
        if ((err = tide_stream_write(s, chunk, sizeof chunk)) == 0)
            err = tide_stream_drain(s);
    EXPECT(reset_error(err), "after %d chunks: %s", i, tide_strerror(err));
    tide_stream_close(s, 5);
    return NULL;
}

static void *close_check(void *arg)
{
    tide_stream *s = open_mode("127.0.0.1", "close\n");
    const void *line;
    (void)arg;

    if (!s)
        return NULL;
    ssize_t n = tide_stream_readline(s, &line);
    EXPECT(n == 0, "readline: %zd", n);
    EXPECT(tide_stream_at_eof(s), "at_eof");
    tide_stream_close(s, 5);
    return NULL;
}

static void *one_of_many(void *arg)
{
    tide_stream *s = open_mode(arg ? "localhost" : "127.0.0.1", "echo\n");
    char buf[8];

    if (!s)
        return NULL;
    for (unsigned i = 0; i < 20; i++) {
        int err = round_trip(s, 100 + i, i);
        EXPECT(err == 0, "round trip %u: %s", i, tide_strerror(err));
    }
    EXPECT(tide_stream_write_eof(s) == 0, "write_eof");
    EXPECT(tide_stream_read_into(s, buf, sizeof buf) == 0, "end of stream");
    tide_stream_close(s, 5);
    return NULL;
}

static void *many_check(void *arg)
{
    tide_future *t[100];
    (void)arg;

    for (int i = 0; i < 100; i++)
        t[i] = tide_create_task(NULL, one_of_many, i % 2 ? "" : NULL);
    for (int i = 0; i < 100; i++) {
        EXPECT(t[i] && tide_await(t[i], NULL) == 0, "task %d", i);
        tide_future_release(t[i]);
    }
    return NULL;
}

static void *main_task(void *arg)
{
    static const struct {
        const char *name;
        tide_fn fn;
    } checks[] = {
        {"echo, 1 byte to 4 MiB, lines, half-close", echo_check},
        {"1000 lines, then the server's end", lines_check},
        {"readexactly cut short by the server's close", partial_check},
        {"the server resets while we read, then write", reset_check},
        {"the server resets during a 16 MiB upload", reset_upload_check},
        {"the server closes at once", close_check},
        {"100 connections at once", many_check},
    };
    (void)arg;

    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
        int before = failures;
        tide_future *t = tide_create_task(NULL, checks[i].fn, NULL);
        int err = t ? tide_wait_for(t, 10.0, NULL) : -errno;
        EXPECT(err == 0, "%s: %s", checks[i].name, tide_strerror(err));
        tide_future_release(t);
        printf("%s: %s\n", checks[i].name, failures == before ? "ok" : "FAIL");
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: tide_client PORT\n");
        return 2;
    }
    port = (uint16_t)atoi(argv[1]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    int err = tide_run(main_task, NULL, NULL);
    EXPECT(err == 0, "tide_run: %s", tide_strerror(err));
    return failures ? 1 : 0;
}
