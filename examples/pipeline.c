/* pipeline.c: `seq 100000 | grep 7 | wc -l` as three child processes,
 * with tide streams between them.
 *
 * Each program's stdin and stdout that face another are pipes, whose
 * parent ends are tide streams; a task copies seq's output into grep's
 * input, another grep's output into wc's, and main reads wc's answer.
 * A copy ends with write_eof, which closes the next program's stdin, so
 * each one sees end of input in turn. Prints the count alone on a line
 * (CI compares it with the shell's) and exits with wc's status.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <tide.h>
#include <tide/process.h>

struct hop {
    tide_stream *from, *to;
};

static void *copy(void *arg) /* from -> to, until end of stream */
{
    struct hop *h = arg;
    char buf[16384];
    ssize_t n;
    int err = 0;

    while (!err && (n = tide_stream_read_into(h->from, buf, sizeof buf)) > 0)
        if ((err = tide_stream_write(h->to, buf, (size_t)n)) == 0)
            err = tide_stream_drain(h->to);
    if (!err && n < 0)
        err = (int)n;
    if (err) /* the program upstream must not wait on a full pipe */
        tide_stream_close(h->from, 0);
    int eof = tide_stream_write_eof(h->to);
    return err || eof ? tide_fail(err ? err : eof) : NULL;
}

static void *main_task(void *arg)
{
    const char *seq[] = {"seq", "100000", NULL};
    const char *grep[] = {"grep", "7", NULL};
    const char *wc[] = {"wc", "-l", NULL};
    const char *const *argv[] = {seq, grep, wc};
    tide_process *p[3] = {NULL, NULL, NULL};
    tide_process_options o = {.stdout_mode = TIDE_STDIO_PIPE};
    int err = 0, code = 0;
    (void)arg;

    for (int i = 0; i < 3 && !err; i++) {
        o.stdin_mode = i ? TIDE_STDIO_PIPE : TIDE_STDIO_DEVNULL;
        err = tide_create_subprocess_exec(argv[i], &o, &p[i]);
    }
    static struct hop hops[2]; /* not on a (maybe compact) stack */
    tide_future *t[2] = {NULL, NULL};
    for (int i = 0; i < 2 && !err; i++) {
        hops[i] = (struct hop){tide_process_stdout(p[i]),
                               tide_process_stdin(p[i + 1])};
        if (!(t[i] = tide_create_task(NULL, copy, &hops[i])))
            err = -ENOMEM;
    }
    char answer[32] = "";
    ssize_t n = err ? 0
                    : tide_stream_read_into(tide_process_stdout(p[2]), answer,
                                            sizeof answer - 1);
    if (n < 0)
        err = (int)n;
    for (int i = 0; i < 2; i++) {
        int e = t[i] ? tide_await(t[i], NULL) : 0;
        err = err ? err : e;
        tide_future_release(t[i]);
    }
    for (int i = 0; i < 3; i++) {
        int e = p[i] ? tide_process_wait(p[i], &code) : 0;
        err = err ? err : e;
        tide_process_free(p[i]);
    }
    long count = -1;
    if (!err && sscanf(answer, "%ld", &count) == 1)
        printf("%ld\n", count);
    return err ? tide_fail(err) : (void *)(intptr_t)code;
}

int main(void)
{
    void *code = NULL;
    int err = tide_run(main_task, NULL, &code);

    if (err < 0)
        fprintf(stderr, "pipeline: %s\n", tide_strerror(err));
    return err < 0 ? 1 : (int)(intptr_t)code;
}
