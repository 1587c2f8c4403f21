/* A concurrent fetcher: GETs every URL given, a task each, with at most
 * K connections open at once (a semaphore), and prints one line per
 * result as it comes in, then a summary.
 *
 *   fetch [-c K] URL...       URL: http://HOST[:PORT]/PATH; K: 4
 *
 * Prints "STATUS BYTES URL" per URL (BYTES: the body's size), or
 * "error NAME URL" ("error ECONNREFUSED ..."), then "N fetched, M failed,
 * B bytes, at most C at once". Each request is HTTP/1.0 (so the body is
 * Content-Length bytes, or everything up to the server's close: never
 * chunked) and has 10 seconds. Exits 0 when every URL got an answer.
 * SPDX-License-Identifier: MIT
 */
#include <tide.h>
#include <tide/stream.h>
#include <tide/sync.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static tide_semaphore *slots; /* K connections at most */
static int open_now, most;    /* connections open, and the most at once */
static long long total;       /* body bytes, all URLs */

/* The next line of s into buf as a string (cut to size): its length, 0
 * at the end of the stream, or a negative errno. */
static ssize_t read_line(tide_stream *s, char *buf, size_t size)
{
    const void *p;
    ssize_t n = tide_stream_readline(s, &p);

    if (n > 0)
        snprintf(buf, size, "%.*s", (int)n, (const char *)p);
    return n;
}

/* GET url; its status and body size. 0 or a negative errno. */
static int get(const char *url, int *status, long long *bytes)
{
    char host[256], req[1024], line[1024];
    unsigned port = 80;
    int hl = 0, err;
    tide_stream *s;
    const void *p;
    ssize_t n = 0;

    if (sscanf(url, "http://%255[^:/]%n", host, &hl) != 1 ||
        (url[hl] == ':' &&
         (sscanf(url + hl + 1, "%u", &port) != 1 || port > 65535)))
        return -EINVAL;
    const char *path = strchr(url + 7, '/');
    if ((err = tide_open_connection(host, (uint16_t)port, 0, &s)) < 0)
        return err;
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n",
             path ? path : "/", host);
    long long want = -1; /* Content-Length, if given */
    if ((err = tide_stream_write(s, req, strlen(req))) == 0 &&
        (err = tide_stream_drain(s)) == 0) {
        n = read_line(s, line, sizeof line); /* "HTTP/1.1 200 OK" */
        err = n < 0 ? (int)n
              : n > 0 && sscanf(line, "HTTP/%*d.%*d %d", status) == 1
                  ? 0
                  : -EPROTO;
    }
    while (err == 0 && (n = read_line(s, line, sizeof line)) > 2) /* headers */
        if (strncasecmp(line, "content-length:", 15) == 0)
            want = atoll(line + 15);
    err = err < 0 ? err : n < 0 ? (int)n : 0;
    *bytes = 0;
    while (err == 0 && (want < 0 || *bytes < want)) {
        long long left = want < 0 ? 65536 : want - *bytes;
        n = tide_stream_read(s, left < 65536 ? (size_t)left : 65536, &p);
        if (n == 0 && want < 0)
            break; /* the server closed: the end of the body */
        err = n > 0 ? 0 : n < 0 ? (int)n : -ENODATA; /* cut short */
        *bytes += n > 0 ? n : 0;
    }
    tide_stream_close(s, 1.0);
    return err;
}

static void *fetch(void *url)
{
    int status = 0, err = tide_semaphore_acquire(slots);
    long long bytes = 0;

    if (err < 0)
        return tide_fail(err);
    most = ++open_now > most ? open_now : most;
    tide_timeout *t = tide_timeout_begin(10.0);
    err = t ? tide_timeout_end(t, get(url, &status, &bytes)) : -ENOMEM;
    open_now--;
    tide_semaphore_release(slots);
    if (err < 0)
        printf("error %s %s\n", tide_err_name(err), (const char *)url);
    else
        printf("%d %lld %s\n", status, bytes, (const char *)url);
    total += err < 0 ? 0 : bytes;
    return err < 0 ? tide_fail(err) : NULL;
}

static void *main_task(void *arg)
{
    char **urls = arg;
    size_t n = 0, failed = 0;

    while (urls[n])
        n++;
    tide_future **t = calloc(n, sizeof *t);
    for (size_t i = 0; t && i < n; i++)
        t[i] = tide_create_task(NULL, fetch, urls[i]);
    tide_future *all = t ? tide_gather(t, n, TIDE_RETURN_ERRORS) : NULL;
    int err = all ? tide_await(all, NULL) : -ENOMEM;
    for (size_t i = 0; t && i < n; i++) {
        failed += !t[i] || tide_future_result(t[i], NULL) < 0;
        tide_future_release(t[i]);
    }
    printf("%zu fetched, %zu failed, %lld bytes, at most %d at once\n",
           n - failed, failed, total, most);
    tide_future_release(all);
    free(t);
    return err < 0 ? tide_fail(err) : failed ? tide_fail(-EIO) : NULL;
}

int main(int argc, char **argv)
{
    int k = 4, first = 1;

    if (argc > 2 && strcmp(argv[1], "-c") == 0) {
        k = atoi(argv[2]);
        first = 3;
    }
    if (first >= argc || k < 1) {
        fprintf(stderr, "usage: fetch [-c K] URL...\n");
        return 2;
    }
    if (!(slots = tide_semaphore_new((unsigned)k)))
        return 1;
    int err = tide_run(main_task, argv + first, NULL);
    tide_semaphore_free(slots);
    return err == 0 ? 0 : 1;
}
