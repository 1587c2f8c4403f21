/* Tests of primitives that block (test_sync.c, test_queue.c): a task that
 * makes one call and records how it ended.
 *
 * op_start spawns a task running o->fn(o); when the call returns, the task
 * stores its return value in o->rc, sets o->done and appends o->tag to
 * `order`, so a test can assert who got through, in which order, and with
 * what result.
 */
#ifndef TIDE_TEST_OPS_H
#define TIDE_TEST_OPS_H

#include "harness.h"

#include <stdbool.h>
#include <string.h>

static char order[128];

struct op {
    const char *tag; /* appended to order when the call returns */
    int (*fn)(struct op *o);
    void *obj;      /* the primitive or queue */
    void *item;     /* queue put: the item; get: what came out */
    int rc;         /* 1 until the call returns */
    unsigned index; /* barrier arrival index */
    bool held;      /* condition: lock held on return */
    bool done;
    tide_future *task;
};

static void *op_main(void *arg)
{
    struct op *o = arg;

    o->rc = o->fn(o);
    o->done = true;
    strcat(order, o->tag);
    return NULL;
}

static inline void op_start(tide_loop *loop, struct op *o, const char *tag,
                            int (*fn)(struct op *), void *obj, void *item)
{
    o->tag = tag;
    o->fn = fn;
    o->obj = obj;
    o->item = item;
    o->rc = 1;
    o->done = false;
    o->task = tide_create_task(loop, op_main, o);
    CHECK_NOT_NULL(o->task);
}

static inline void release_ops(struct op *ops, int n)
{
    for (int i = 0; i < n; i++)
        tide_future_release(ops[i].task);
}

#endif
