/* file_copy SRC DST: copy a file through tide's file calls (tide/file.h),
 * 1 MiB at a time, with a progress line on stderr (updated in place with
 * \r, at most ten times a second) and a last line with the bytes copied,
 * the time and the rate. DST is created (mode 0644) or truncated.
 * SPDX-License-Identifier: MIT
 */
#include <tide/file.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNK (1 << 20)

static const char *const *names; /* argv: SRC, DST */

static int copy(int in, int out, char *buf, long long size)
{
    double t0 = tide_loop_time(NULL), shown = 0;
    long long done = 0;
    ssize_t n;

    while ((n = tide_file_read(in, buf, CHUNK)) > 0) {
        ssize_t w = tide_file_write(out, buf, (size_t)n);
        if (w < 0)
            return (int)w;
        if (w < n)
            return -EIO;
        done += n;
        double now = tide_loop_time(NULL);
        if (now - shown >= 0.1) {
            shown = now;
            fprintf(stderr, "\r%s: %lld of %lld bytes (%.0f%%)", names[1],
                    done, size,
                    size ? 100.0 * (double)done / (double)size : 0);
        }
    }
    if (n < 0)
        return (int)n;
    double t = tide_loop_time(NULL) - t0;
    fprintf(stderr, "\r%s: %lld bytes in %.3f s (%.1f MiB/s)\n", names[1],
            done, t, t > 0 ? (double)done / t / (1 << 20) : 0);
    return 0;
}

static void *main_task(void *arg)
{
    struct stat st;
    char *buf = malloc(CHUNK);
    (void)arg;

    if (!buf)
        return tide_fail(-ENOMEM);
    int err, in = tide_file_open(names[0], O_RDONLY, 0), out = -1;
    if ((err = in) >= 0 && (err = tide_file_fstat(in, &st)) == 0 &&
        (err = out = tide_file_open(names[1], O_WRONLY | O_CREAT | O_TRUNC,
                                    0644)) >= 0)
        err = copy(in, out, buf, (long long)st.st_size);
    if (out >= 0 && (out = tide_file_close(out)) < 0 && err >= 0)
        err = out; /* a close can report a write error */
    if (in >= 0)
        tide_file_close(in);
    free(buf);
    return err < 0 ? tide_fail(err) : NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: file_copy SRC DST\n");
        return 2;
    }
    names = (const char *const *)argv + 1;
    int err = tide_run(main_task, NULL, NULL);
    if (err < 0)
        fprintf(stderr, "file_copy: %s\n", tide_strerror(err));
    return err < 0;
}
