/* The loop's stacks: one pool per stack size (at most TIDE__MAX_POOLS),
 * the default size and its pool's index, and trimming the pools when the
 * loop goes idle.
 *
 * A size asked for is rounded to whole pages; once every pool is taken,
 * a size that has none gets the smallest bigger pool. The default pool's
 * index is remembered (nearly every task asks for it) and looked up again
 * after tide_loop_set_stack_size.
 * SPDX-License-Identifier: MIT
 */
#include "core/loop.h"

#include <errno.h>

#define DEFAULT_STACK (256 * 1024)
#define MIN_STACK (16 * 1024)
#define MAX_STACK ((size_t)1 << 30)

void tide__pools_init(tide_loop *loop)
{
    loop->default_stack = DEFAULT_STACK;
    loop->default_pool = -1;
}

void tide__pools_close(tide_loop *loop)
{
    for (unsigned i = 0; i < loop->npools; i++)
        tide__stack_pool_destroy(&loop->pools[i]);
}

int tide_loop_set_stack_size(tide_loop *loop, size_t bytes)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed || bytes < MIN_STACK || bytes > MAX_STACK)
        return -EINVAL;
    loop->default_stack = tide__stack_round(bytes);
    loop->default_pool = -1; /* looked up again on next use */
    return 0;
}

static int find_pool(tide_loop *loop, size_t size)
{
    if (size < MIN_STACK || size > MAX_STACK)
        return -EINVAL;
    size = tide__stack_round(size);
    for (unsigned i = 0; i < loop->npools; i++)
        if (loop->pools[i].size == size)
            return (int)i;
    if (loop->npools < TIDE__MAX_POOLS) {
        tide__stack_pool_init(&loop->pools[loop->npools], size);
        return (int)loop->npools++;
    }
    /* Every pool is taken: the smallest bigger size will do. */
    int best = -EINVAL;
    for (unsigned i = 0; i < loop->npools; i++)
        if (loop->pools[i].size >= size &&
            (best < 0 || loop->pools[i].size < loop->pools[best].size))
            best = (int)i;
    return best;
}

int tide__loop_pool(tide_loop *loop, size_t size)
{
    if (size != 0)
        return find_pool(loop, size);
    /* The default, asked for by nearly every task: remembered. */
    if (loop->default_pool < 0)
        loop->default_pool = find_pool(loop, loop->default_stack);
    return loop->default_pool;
}

void tide__loop_trim(tide_loop *loop)
{
    for (unsigned i = 0; i < loop->npools; i++) {
        struct tide__stack_pool *p = &loop->pools[i];
        size_t keep =
            p->in_use > TIDE__POOL_KEEP ? p->in_use : TIDE__POOL_KEEP;
        if (p->pooled > 2 * keep) {
            tide__stack_pool_trim(p, keep);
            /* A scan walks every pooled stack: not more than once a
             * second. */
            loop->next_trim = loop->now + 1000000000;
        }
    }
}
