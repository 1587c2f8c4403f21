/* The allocation seam: counting and failure injection (see alloc.h).
 * SPDX-License-Identifier: MIT
 */
#include "base/alloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Both counters are only ever read for their own value: no other memory is
 * published through them, so relaxed ordering is enough. */
static atomic_long live;
static atomic_long fail_countdown;

static int should_fail(void)
{
    if (atomic_load_explicit(&fail_countdown, memory_order_relaxed) <= 0)
        return 0;
    if (atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed) ==
        1) {
        errno = ENOMEM;
        return 1;
    }
    return 0;
}

void *tide__malloc(size_t size)
{
    if (should_fail())
        return NULL;
    void *p = malloc(size ? size : 1);
    if (p)
        atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void *tide__calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p)
        atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void *tide__realloc(void *p, size_t size)
{
    if (!p)
        return tide__malloc(size);
    if (should_fail())
        return NULL;
    return realloc(p, size ? size : 1);
}

void tide__free(void *p)
{
    if (!p)
        return;
    atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    free(p);
}

char *tide__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = tide__malloc(n);

    if (d)
        memcpy(d, s, n);
    return d;
}

int tide__set_name(char **slot, const char *name)
{
    if (!name)
        return -EINVAL;
    char *copy = tide__strdup(name);
    if (!copy)
        return -ENOMEM;
    tide__free(*slot);
    *slot = copy;
    return 0;
}

bool tide__alloc_count(int delta)
{
    if (delta > 0 && should_fail())
        return false;
    atomic_fetch_add_explicit(&live, delta, memory_order_relaxed);
    return true;
}

long tide__alloc_live(void)
{
    return atomic_load_explicit(&live, memory_order_relaxed);
}

void tide__alloc_fail_after(long n)
{
    atomic_store_explicit(&fail_countdown, n > 0 ? n : 0,
                          memory_order_relaxed);
}

long tide__alloc_fail_pending(void)
{
    return atomic_load_explicit(&fail_countdown, memory_order_relaxed);
}
