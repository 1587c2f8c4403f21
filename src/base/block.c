/* Fixed-size blocks (see block.h).
 *
 * Memory tools are told about blocks, so that they see them as they see
 * malloc's: under valgrind's memcheck (found out at run time) a block is
 * a heap block to memcheck from alloc to free (MALLOCLIKE/FREELIKE), so
 * one never freed is "definitely lost" where it was allocated, and a
 * free block is unaddressable; in an ASan build a free block is
 * poisoned. Either way the allocator opens a free block's link only
 * while it reads or writes it, and a freed block waits in a quarantine
 * (the last QUARANTINE freed on this thread) before it can be handed out
 * again, so a use after free hits unaddressable memory instead of the
 * block's next owner. Without a tool the allocator pays one predictable
 * branch per call for all this.
 * SPDX-License-Identifier: MIT
 */
#include "base/block.h"

#include "base/alloc.h"
#include "base/sanitize.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

/* Chunks grow from 64 KiB to 4 MiB as a thread keeps needing blocks, and
 * are mapped populated: faulting pages in bulk costs about two thirds of
 * faulting them one at a time, and a program with few tasks stays small. */
#define CHUNK_MIN (64 * 1024)
#define CHUNK_MAX (4 * 1024 * 1024)
/* Blocks a thread keeps back after freeing them, under a memory tool. */
#define QUARANTINE 1024

struct free_block {
    struct free_block *next;
};

static _Thread_local struct free_block *cache;
static _Thread_local bool exit_hooked;
static _Thread_local size_t next_chunk = CHUNK_MIN;
/* Under a memory tool: freed blocks, oldest first, not yet in cache. */
static _Thread_local struct free_block *held, *held_last;
static _Thread_local unsigned nheld;

/* Blocks left behind by threads that exited; under `orphans_lock`. */
static struct free_block *orphans;
static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

/* TOOL: blocks are shown to a memory tool. An ASan build always does;
 * otherwise memcheck is looked for once, before the first block exists
 * (in refill), and the answer never changes. */
#ifdef TIDE__ASAN
#define TOOL true
#elif defined(TIDE__VALGRIND)
static bool under_memcheck;
#define TOOL under_memcheck
#else
#define TOOL false
#endif

/* A free block is closed to everyone; the allocator opens its link for
 * the moment it reads or writes it. */
static void close_bytes(void *p, size_t n)
{
#ifdef TIDE__ASAN
    __asan_poison_memory_region(p, n);
#elif defined(TIDE__VALGRIND)
    VALGRIND_MAKE_MEM_NOACCESS(p, n);
#endif
    (void)p;
    (void)n;
}

static void open_bytes(void *p, size_t n)
{
#ifdef TIDE__ASAN
    __asan_unpoison_memory_region(p, n);
#elif defined(TIDE__VALGRIND)
    VALGRIND_MAKE_MEM_DEFINED(p, n);
#endif
    (void)p;
    (void)n;
}

static struct free_block *next_of(struct free_block *b)
{
    if (!TOOL)
        return b->next;
    open_bytes(b, sizeof *b);
    struct free_block *next = b->next;
    close_bytes(b, sizeof *b);
    return next;
}

static void set_next(struct free_block *b, struct free_block *next)
{
    if (!TOOL) {
        b->next = next;
        return;
    }
    open_bytes(b, sizeof *b);
    b->next = next;
    close_bytes(b, sizeof *b);
}

#if defined(TIDE__VALGRIND) && !defined(TIDE__ASAN)
static pthread_once_t tool_once = PTHREAD_ONCE_INIT;

/* Memcheck answers its own requests with -1, other tools (callgrind,
 * whose instruction counts must not include the annotations) and a
 * plain run with 0. */
static void find_tool(void)
{
    int probe = 0;

    under_memcheck =
        RUNNING_ON_VALGRIND &&
        (long)VALGRIND_MAKE_MEM_DEFINED(&probe, sizeof probe) == -1;
}
#endif

static void give_back(void *arg)
{
    (void)arg;
    if (held) { /* the quarantine goes too */
        set_next(held_last, cache);
        cache = held;
        held = held_last = NULL;
        nheld = 0;
    }
    struct free_block *head = cache, *tail = head, *next;

    if (!head)
        return;
    while ((next = next_of(tail)))
        tail = next;
    pthread_mutex_lock(&orphans_lock);
    set_next(tail, orphans);
    orphans = head;
    pthread_mutex_unlock(&orphans_lock);
    cache = NULL;
}

static void make_key(void)
{
    pthread_key_create(&exit_key, give_back);
}

/* Chunks of 2 MiB and more are aligned and asked to be huge pages (where
 * transparent huge pages are enabled for madvise): one fault then brings
 * in 16,384 blocks. Smaller ones are mapped populated. */
static char *map_chunk(size_t bytes)
{
    const size_t huge = 2 * 1024 * 1024;

    if (bytes < huge) {
        char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
    char *raw = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *p = (char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    munmap(p + bytes, (size_t)(raw + huge - p));
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static __attribute__((noinline)) int refill(void)
{
    if (!exit_hooked) {
        pthread_once(&exit_once, make_key);
        pthread_setspecific(exit_key, &exit_hooked); /* any non-NULL value */
        exit_hooked = true;
#if defined(TIDE__VALGRIND) && !defined(TIDE__ASAN)
        pthread_once(&tool_once, find_tool);
#endif
    }
    pthread_mutex_lock(&orphans_lock);
    cache = orphans;
    orphans = NULL;
    pthread_mutex_unlock(&orphans_lock);
    if (cache)
        return 0;
    /* Chunks are never returned: blocks may outlive every loop. They are
     * not counted as allocations themselves; their blocks are. */
    size_t bytes = next_chunk;
    char *chunk = map_chunk(bytes);
    if (!chunk)
        return -ENOMEM;
    if (next_chunk < CHUNK_MAX)
        next_chunk *= 2;
    for (size_t off = bytes; off >= TIDE__BLOCK_SIZE;
         off -= TIDE__BLOCK_SIZE) {
        struct free_block *b =
            (struct free_block *)(void *)(chunk + off - TIDE__BLOCK_SIZE);
        b->next = cache;
        cache = b;
    }
    if (TOOL)
        close_bytes(chunk, bytes);
    return 0;
}

/* Out of the free list and into the tool's view as a heap block. */
static __attribute__((noinline, cold)) void *take_shown(struct free_block *b)
{
    cache = next_of(b);
#ifdef TIDE__ASAN
    open_bytes(b, TIDE__BLOCK_SIZE);
#elif defined(TIDE__VALGRIND)
    VALGRIND_MALLOCLIKE_BLOCK(b, TIDE__BLOCK_SIZE, 0, 0);
#endif
    return b;
}

void *tide__block_alloc(void)
{
    if (!cache && refill() < 0) {
        errno = ENOMEM;
        return NULL;
    }
    /* tide__malloc(0)-style accounting without the allocation itself. */
    if (!tide__alloc_count(1))
        return NULL;
    struct free_block *b = cache;
    if (__builtin_expect(TOOL, 0))
        return take_shown(b);
    cache = b->next;
    return b;
}

/* Freed in the tool's eyes, then held back: the oldest held block goes
 * to the free list once QUARANTINE are held. */
static __attribute__((noinline, cold)) void put_shown(struct free_block *b)
{
#ifdef TIDE__ASAN
    close_bytes(b, TIDE__BLOCK_SIZE);
#elif defined(TIDE__VALGRIND)
    VALGRIND_FREELIKE_BLOCK(b, 0);
#endif
    set_next(b, NULL);
    if (held)
        set_next(held_last, b);
    else
        held = b;
    held_last = b;
    if (++nheld <= QUARANTINE)
        return;
    struct free_block *oldest = held;
    held = next_of(oldest);
    nheld--;
    set_next(oldest, cache);
    cache = oldest;
}

void tide__block_free(void *p)
{
    struct free_block *b = p;

    if (!b)
        return;
    tide__alloc_count(-1);
    if (__builtin_expect(TOOL, 0)) {
        put_shown(b);
        return;
    }
    b->next = cache;
    cache = b;
}
