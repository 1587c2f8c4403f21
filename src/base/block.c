/* Fixed-size blocks (see block.h).
 * SPDX-License-Identifier: MIT
 */
#include "base/block.h"

#include "base/alloc.h"

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

struct free_block {
    struct free_block *next;
};

static _Thread_local struct free_block *cache;
static _Thread_local bool exit_hooked;
static _Thread_local size_t next_chunk = CHUNK_MIN;

/* Blocks left behind by threads that exited; under `orphans_lock`. */
static struct free_block *orphans;
static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void give_back(void *arg)
{
    (void)arg;
    struct free_block *head = cache, *tail = head;

    if (!head)
        return;
    while (tail->next)
        tail = tail->next;
    pthread_mutex_lock(&orphans_lock);
    tail->next = orphans;
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

static int refill(void)
{
    if (!exit_hooked) {
        pthread_once(&exit_once, make_key);
        pthread_setspecific(exit_key, &exit_hooked); /* any non-NULL value */
        exit_hooked = true;
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
        struct free_block *b = (struct free_block *)(void *)
            (chunk + off - TIDE__BLOCK_SIZE);
        b->next = cache;
        cache = b;
    }
    return 0;
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
    cache = b->next;
    return b;
}

void tide__block_free(void *p)
{
    struct free_block *b = p;

    if (!b)
        return;
    tide__alloc_count(-1);
    b->next = cache;
    cache = b;
}
