/* FILE_READ: read a 1 GiB file through a tide file stream, 64 KiB at a
 * time (tide_stream_read), beside `cat FILE > /dev/null` in the same run,
 * on the backend TIDE_BACKEND names (io_uring, epoll, poll; else the
 * default), which it prints.
 *
 * usage: file_read [PATH] (default /tmp/tide-bench-1g). The file is made
 * once (1 GiB of a byte pattern) if it is missing or of another size, and
 * kept for later runs. Both sides read from the page cache: one cat runs
 * first, untimed, to fill it, and nothing is dropped (no root needed).
 * Then, RUNS times (env, default 3), in turn: cat; the tide stream as it
 * is (reads tried inline with preadv2 RWF_NOWAIT, the ring or the pool
 * only when one would block); the stream with every read on the pool
 * (tide__file_no_inline, and on io_uring tide__file_no_ring); on io_uring
 * also with every read on the ring (tide__file_no_inline). Prints, per
 * side, the best run:
 *   FILE_READ backend=...
 *   FILE_READ <side> gib_per_s=... wall_s=... cpu_s=...
 * then the system calls per 64 KiB of each tide side's first run (inline
 * tries, the pool's reads, io_uring_enter), and
 *   FILE_READ ratio tide/cat=... (target >= 0.80) [ring/pool=... (issue
 *   11's target >= 1.00)]
 * SIDE=<side> (env) runs that one tide side once, and no cat, for
 * counting its system calls alone: strace -c -f file_read.
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

static const char *backend = "?"; /* what the tide side ran on */

static void *read_all(void *arg)
{
    tide_stream *s = NULL;
    const void *p;
    long long total = 0;
    ssize_t n;

    (void)arg;
    backend = tide_loop_backend(NULL);
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

/* The tide sides: reads tried inline; all on the pool; all on the ring
 * (io_uring only). */
enum side { INLINE, POOL, RING, NSIDES };

static const char *const side_name[NSIDES] = {"tide", "tide_pool_only",
                                              "tide_ring_only"};

/* System calls per 64 KiB read, of one run. */
struct calls {
    double preadv2, read, enter;
};

/* One run of side: its time kept in *b, its calls in *c if not NULL.
 * -1 if the read failed. */
static int run_side(enum side side, struct best *b, struct calls *c)
{
    double chunks = (double)(SIZE / (long long)READ_SIZE);
    uint64_t k0 = tide__sys_count(TIDE__SYS_PREADV2);
    uint64_t r0 = tide__sys_count(TIDE__SYS_READ);
    uint64_t e0 = tide__sys_count(TIDE__SYS_URING_ENTER);

    tide__file_no_inline = side != INLINE;
    tide__file_no_ring = side == POOL;
    double c0 = cpu_s(RUSAGE_SELF), t0 = bench_now();
    if (tide_run(read_all, NULL, NULL) != 0) {
        fprintf(stderr, "file_read: the tide read failed\n");
        return -1;
    }
    keep(b, bench_now() - t0, cpu_s(RUSAGE_SELF) - c0);
    if (c)
        *c = (struct calls){
            (double)(tide__sys_count(TIDE__SYS_PREADV2) - k0) / chunks,
            (double)(tide__sys_count(TIDE__SYS_READ) - r0) / chunks,
            (double)(tide__sys_count(TIDE__SYS_URING_ENTER) - e0) / chunks};
    return 0;
}

static void print_calls(enum side side, const struct calls *c)
{
    printf("FILE_READ %s syscalls_per_64k: preadv2_nowait=%.3f read=%.3f "
           "io_uring_enter=%.3f\n",
           side_name[side], c->preadv2, c->read, c->enter);
}

int main(int argc, char **argv)
{
    struct best cat = {0}, tide[NSIDES] = {{0}};
    struct calls calls[NSIDES] = {{0}};
    const char *e = getenv("RUNS");
    int runs = e && atoi(e) > 0 ? atoi(e) : 3;

    if (argc > 1)
        path = argv[1];
    if (make_file() < 0) {
        perror("file_read");
        return 1;
    }
    const char *only = getenv("SIDE");
    for (int side = 0; only && side < NSIDES; side++) {
        if (strcmp(only, side_name[side]) != 0)
            continue;
        if (run_side((enum side)side, &tide[side], &calls[side]) < 0)
            return 1;
        printf("FILE_READ backend=%s\n", backend);
        print(side_name[side], &tide[side]);
        print_calls((enum side)side, &calls[side]);
        return 0;
    }
    if (only) {
        fprintf(stderr, "file_read: SIDE: tide, tide_pool_only or "
                        "tide_ring_only\n");
        return 2;
    }
    if (run_cat() < 0) {
        perror("file_read");
        return 1;
    }
    /* Which backend runs (a first run, untimed, says). */
    if (run_side(INLINE, &(struct best){0}, NULL) < 0)
        return 1;
    int nsides = strcmp(backend, "io_uring") == 0 ? NSIDES : RING;
    for (int r = 0; r < runs; r++) {
        double c0 = cpu_s(RUSAGE_CHILDREN), t0 = bench_now();
        if (run_cat() < 0)
            return 1;
        keep(&cat, bench_now() - t0, cpu_s(RUSAGE_CHILDREN) - c0);
        for (int side = 0; side < nsides; side++)
            if (run_side((enum side)side, &tide[side],
                         r == 0 ? &calls[side] : NULL) < 0)
                return 1;
    }
    printf("FILE_READ backend=%s\n", backend);
    print("cat", &cat);
    for (int side = 0; side < nsides; side++)
        print(side_name[side], &tide[side]);
    for (int side = 0; side < nsides; side++)
        print_calls((enum side)side, &calls[side]);
    printf("FILE_READ ratio tide/cat=%.2f tide_pool_only/cat=%.2f",
           cat.wall / tide[INLINE].wall, cat.wall / tide[POOL].wall);
    if (nsides == NSIDES)
        printf(" tide_ring_only/cat=%.2f ring/pool=%.2f",
               cat.wall / tide[RING].wall, tide[POOL].wall / tide[RING].wall);
    printf(" (target tide/cat >= 0.80%s)\n",
           nsides == NSIDES ? ", ring/pool >= 1.00" : "");
    return 0;
}
