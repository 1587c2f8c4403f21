/* The allocation seam: every allocation tide makes goes through here.
 *
 * It counts live allocations (the leak gate every test ends with) and can
 * fail the n-th next allocation (the ENOMEM paths are tested, not hoped
 * for). The counter is a relaxed atomic because callbacks sent with
 * call_soon_threadsafe are allocated on one thread and freed on another;
 * hot paths use free lists, so the counter is off the fast path.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_BASE_ALLOC_H
#define TIDE_BASE_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

void *tide__malloc(size_t size);
void *tide__calloc(size_t n, size_t size);
void *tide__realloc(void *p, size_t size); /* p NULL: malloc; fails leave p */
void tide__free(void *p);
char *tide__strdup(const char *s);

/* Replace the string *slot owns with a copy of `name` (freeing the old
 * one): 0, -EINVAL if name is NULL, -ENOMEM (then *slot is unchanged). */
int tide__set_name(char **slot, const char *name);

/* Count `delta` allocations made (1) or freed (-1) outside tide__malloc,
 * honouring failure injection for 1. Returns false if it must fail
 * (errno is then ENOMEM). For allocators built on top (block.c). */
bool tide__alloc_count(int delta);

/* Allocations made and not yet freed, in this process. */
long tide__alloc_live(void);

/* Make the n-th allocation from now fail with ENOMEM (n = 1: the next
 * one); n <= 0 turns failure injection off. For tests. */
void tide__alloc_fail_after(long n);

/* Allocations still to come before the armed failure fires (0: none is
 * armed, or it has fired). For tests that fail the 1st, 2nd, ... until
 * a run makes fewer allocations than that. */
long tide__alloc_fail_pending(void);

#endif
