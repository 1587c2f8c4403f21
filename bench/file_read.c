/* FILE_READ: read a 1 GiB file through a tide file stream, 64 KiB at a
 * time (tide_stream_read), beside `cat FILE > /dev/null` in the same run.
 *
 * usage: file_read [PATH] (default /tmp/tide-bench-1g). The file is made
 * once (1 GiB of a byte pattern) if it is missing or of another size, and
 * kept for later runs. Both sides read from the page cache: one cat runs
 * first, untimed, to fill it, and nothing is dropped (no root needed).
 * Then, RUNS times (env, default 3), in turn: cat; the tide stream as it
 * is (reads tried inline with preadv2 RWF_NOWAIT, the pool only when one
 * would block); the tide stream with every read on the pool
 * (tide__file_no_inline). Prints, per side, the best run:
 *   FILE_READ <side> gib_per_s=... wall_s=... cpu_s=...
 * then tide's syscalls per 64 KiB (inline tries, pool reads) and
 *   FILE_READ ratio tide/cat=... (target >= 0.80)
 * Exits 1 if a read fails or a count is wrong.
 */
#include "bench.h"

#include "base/sys.h"
#include "io/io.h"

#include <tide/file.h>

#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE ((long long)1 << 30)
#define READ_SIZE ((size_t)64 * 1024)

static const char *path = "/tmp/tide-bench-1g";

static int make_file(void)
{
    struct stat st;

    if (stat(path, &st) == 0 && st.st_size == SIZE)
        return 0;
    fprintf(stderr, "file_read: making %s (1 GiB, once)\n", path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    static char block[1 << 20];
    for (size_t i = 0; i < sizeof block; i++)
        block[i] = (char)('a' + i % 26);
    for (long long done = 0; fd >= 0 && done < SIZE; done += sizeof block)
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block)
            return -1;
    return fd >= 0 && close(fd) == 0 ? 0 : -1;
}

/* CPU seconds (user + system) of this process, or of its reaped children. */
static double cpu_s(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int run_cat(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cat '%s' > /dev/null", path);
    return system(cmd) == 0 ? 0 : -1;
}

static void *read_all(void *arg)
{
    tide_stream *s = NULL;
    const void *p;
    long long total = 0;
    ssize_t n;

    (void)arg;
    int err = tide_file_stream_open(path, O_RDONLY, 0, READ_SIZE, &s);
    if (err < 0)
        return tide_fail(err);
    while ((n = tide_stream_read(s, READ_SIZE, &p)) > 0)
        total += n;
    tide_stream_close(s, 0);
    if (n < 0)
        return tide_fail((int)n);
    return total == SIZE ? NULL : tide_fail(-EIO);
}

struct best {
    double wall, cpu;
};

static void keep(struct best *b, double wall, double cpu)
{
    if (b->wall == 0 || wall < b->wall) {
        b->wall = wall;
        b->cpu = cpu;
    }
}

static void print(const char *side, const struct best *b)
{
    printf("FILE_READ %s gib_per_s=%.2f wall_s=%.3f cpu_s=%.3f\n", side,
           1.0 / b->wall, b->wall, b->cpu);
}

int main(int argc, char **argv)
{
    struct best cat = {0}, tide = {0}, pool = {0};
    const char *e = getenv("RUNS");
    int runs = e && atoi(e) > 0 ? atoi(e) : 3;
    uint64_t tries = 0, preads = 0;

    if (argc > 1)
        path = argv[1];
    if (make_file() < 0 || run_cat() < 0) {
        perror("file_read");
        return 1;
    }
    for (int r = 0; r < runs; r++) {
        double c0 = cpu_s(RUSAGE_CHILDREN), t0 = bench_now();
        if (run_cat() < 0)
            return 1;
        keep(&cat, bench_now() - t0, cpu_s(RUSAGE_CHILDREN) - c0);
        for (int mode = 0; mode < 2; mode++) {
            tide__file_no_inline = mode == 1;
            uint64_t k0 = tide__sys_count(TIDE__SYS_PREADV2);
            uint64_t r0 = tide__sys_count(TIDE__SYS_READ);
            c0 = cpu_s(RUSAGE_SELF);
            t0 = bench_now();
            if (tide_run(read_all, NULL, NULL) != 0) {
                fprintf(stderr, "file_read: the tide read failed\n");
                return 1;
            }
            keep(mode ? &pool : &tide, bench_now() - t0,
                 cpu_s(RUSAGE_SELF) - c0);
            if (r == 0 && mode == 0) {
                tries = tide__sys_count(TIDE__SYS_PREADV2) - k0;
                preads = tide__sys_count(TIDE__SYS_READ) - r0;
            }
        }
    }
    print("cat", &cat);
    print("tide", &tide);
    print("tide_pool_only", &pool);
    double chunks = (double)(SIZE / (long long)READ_SIZE);
    printf("FILE_READ tide syscalls_per_64k: preadv2_nowait=%.3f "
           "pool_pread=%.3f\n",
           (double)tries / chunks, (double)preads / chunks);
    printf("FILE_READ ratio tide/cat=%.2f tide_pool_only/cat=%.2f "
           "(target >= 0.80)\n",
           cat.wall / tide.wall, cat.wall / pool.wall);
    return 0;
}
