/* Fixed-size blocks for the records made by the million (tasks).
 *
 * A block is TIDE__BLOCK_SIZE bytes, carved from 64 KiB chunks and kept on
 * a per-thread free list, so creating and freeing a task costs a pointer
 * push and pop, with no lock and no malloc header. Blocks count in
 * tide__alloc_live like any allocation. A thread's free blocks go to a
 * shared list when it exits, and the next thread that runs dry takes them.
 * Memory tools see blocks as heap blocks (memcheck: allocated, freed,
 * leaked; ASan: a freed block is poisoned), and under one a freed block
 * is not reused at once (block.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_BASE_BLOCK_H
#define TIDE_BASE_BLOCK_H

#include <stddef.h>

#define TIDE__BLOCK_SIZE 128

/* A block of TIDE__BLOCK_SIZE bytes; NULL and errno ENOMEM on failure. */
void *tide__block_alloc(void);
void tide__block_free(void *p);

#endif
