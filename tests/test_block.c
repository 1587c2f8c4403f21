/* The block allocator (base/block.c): blocks are distinct, counted, and
 * fail cleanly under allocation failure; a thread's free blocks outlive
 * it and serve the next thread; without a memory tool the warmest block
 * is reused first, under one (ASan, memcheck) a freed block waits in
 * quarantine, and under ASan touching a freed block is reported. The
 * memcheck side of it (a leaked task "definitely lost" where it was
 * created, a double release an invalid read) is checked by .ci/run's
 * valgrind step with tests/memcheck_probe.c.
 * SPDX-License-Identifier: MIT
 */
#include "harness.h"

#include "base/alloc.h"
#include "base/block.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>

/* Blocks are shown to a memory tool (and quarantined) under ASan and
 * memcheck; the suite runs under memcheck only, never another tool. */
static bool under_a_tool(void)
{
    return HARNESS_ASAN || HARNESS_VALGRIND;
}

TEST(blocks_are_distinct_writable_and_counted)
{
    enum { N = 1000 };
    static char *b[N];
    long live = tide__alloc_live();
    for (int i = 0; i < N; i++) {
        CHECK_NOT_NULL(b[i] = tide__block_alloc());
        CHECK_EQ((uintptr_t)b[i] % 16, 0);
        memset(b[i], i & 0xff, TIDE__BLOCK_SIZE);
    }
    CHECK_EQ(tide__alloc_live(), live + N);
    for (int i = 0; i < N; i++) {
        CHECK_EQ((unsigned char)b[i][0], i & 0xff);
        CHECK_EQ((unsigned char)b[i][TIDE__BLOCK_SIZE - 1], i & 0xff);
        for (int j = i + 1; j < N && j < i + 4; j++) /* no overlap */
            CHECK(b[j] >= b[i] + TIDE__BLOCK_SIZE ||
                  b[i] >= b[j] + TIDE__BLOCK_SIZE);
    }
    for (int i = 0; i < N; i++)
        tide__block_free(b[i]);
    tide__block_free(NULL); /* ignored */
    CHECK_EQ(tide__alloc_live(), live);
    LEAK_GATE();
}

TEST(allocation_failure_gives_null_and_enomem_and_leaks_nothing)
{
    long live = tide__alloc_live();
    tide__alloc_fail_after(1);
    errno = 0;
    CHECK_NULL(tide__block_alloc());
    CHECK_ERR(errno, ENOMEM);
    CHECK_EQ(tide__alloc_live(), live);
    void *b = tide__block_alloc(); /* one failure only */
    CHECK_NOT_NULL(b);
    tide__block_free(b);
    CHECK_EQ(tide__alloc_live(), live);
    LEAK_GATE();
}

TEST(without_a_tool_the_warmest_block_is_reused_first)
{
    if (under_a_tool())
        SKIP("a memory tool quarantines freed blocks");
    void *a = tide__block_alloc();
    CHECK_NOT_NULL(a);
    tide__block_free(a);
    void *b = tide__block_alloc();
    CHECK(b == a);
    tide__block_free(b);
    LEAK_GATE();
}

TEST(under_a_tool_a_freed_block_waits_before_reuse)
{
    if (!under_a_tool())
        SKIP("needs ASan or memcheck");
    enum { N = 1000 }; /* fewer than the quarantine holds */
    static void *b[N];
    void *freed = tide__block_alloc();
    CHECK_NOT_NULL(freed);
    tide__block_free(freed);
    for (int i = 0; i < N; i++) {
        CHECK_NOT_NULL(b[i] = tide__block_alloc());
        CHECK(b[i] != freed);
        tide__block_free(b[i]);
    }
    LEAK_GATE();
}

/* A thread frees every block it had, then exits: they go to the shared
 * list, and a new thread, whose own list is empty, starts on them. */
struct handover {
    char *lo;    /* the first thread's lowest block */
    void *taken; /* the second thread's first block */
};

static void *first_thread(void *arg)
{
    struct handover *h = arg;
    enum { N = 64 };
    void *b[N];

    for (int i = 0; i < N; i++) {
        b[i] = tide__block_alloc();
        if (!b[i])
            return NULL;
        if (!h->lo || (char *)b[i] < h->lo)
            h->lo = b[i];
    }
    for (int i = 0; i < N; i++)
        tide__block_free(b[i]);
    return NULL;
}

static void *second_thread(void *arg)
{
    struct handover *h = arg;

    h->taken = tide__block_alloc();
    tide__block_free(h->taken);
    return NULL;
}

TEST(blocks_of_a_thread_that_exited_serve_the_next_thread)
{
    struct handover h = {NULL, NULL};
    long live = tide__alloc_live();
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, first_thread, &h), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_NOT_NULL(h.lo);
    CHECK_EQ(tide__alloc_live(), live);
    CHECK_EQ(pthread_create(&t, NULL, second_thread, &h), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    /* The first thread's blocks came from a new 64 KiB chunk, handed out
     * from its low end; all of it is that thread's free list, so the
     * second thread's first block is in that chunk. */
    CHECK_NOT_NULL(h.taken);
    CHECK((char *)h.taken >= h.lo && (char *)h.taken < h.lo + 64 * 1024);
    CHECK_EQ(tide__alloc_live(), live);
    LEAK_GATE();
}

static void touch_freed_block(void *arg)
{
    (void)arg;
    volatile char *b = tide__block_alloc();
    b[0] = 1;
    tide__block_free((void *)b);
    b[8] = 2; /* ASan must stop here */
}

TEST(asan_reports_a_write_to_a_freed_block)
{
    if (!HARNESS_ASAN)
        SKIP("needs AddressSanitizer");
    char buf[8192];
    int status = harness_run_child(touch_freed_block, NULL, buf, sizeof buf);
    CHECK(!WIFEXITED(status) || WEXITSTATUS(status) != 3);
    if (!strstr(buf, "use-after-poison") || !strstr(buf, "touch_freed_block"))
        harness_fail(__FILE__, __LINE__, "ASan report: %s", buf);
    LEAK_GATE();
}
