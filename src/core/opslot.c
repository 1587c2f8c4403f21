/* I/O operation slots and the dispatch of completions (see loop.h).
 *
 * The loop owns every op it hands the backend: slots in chunks of
 * TIDE__OP_CHUNK that never move, with a free list, so steady state
 * allocates nothing. The backend reports completions by token; dispatch
 * finds the slot by the token's index and delivers only if the whole
 * token (generation included) still matches and the slot is in flight.
 * Completions only wake or queue (complete() runs no user code), so a
 * batch is dispatched without anything it names changing under it; the
 * token check is what keeps it so for completions of freed or reused
 * slots all the same (HAZARDS B01, B03, B06).
 * SPDX-License-Identifier: MIT
 */
#include "core/loop.h"

#include "base/alloc.h"

#include <string.h>

#define POLL_BATCH 64
#define GEN_ONE ((uint64_t)1 << 32)

static int add_chunk(tide_loop *loop)
{
    uint32_t c = loop->op_nchunks;
    struct tide__opslot **chunks =
        tide__realloc(loop->op_chunks, (c + 1) * sizeof *chunks);
    if (!chunks)
        return -ENOMEM;
    loop->op_chunks = chunks;
    struct tide__opslot *slots = tide__calloc(TIDE__OP_CHUNK, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    chunks[c] = slots;
    loop->op_nchunks = c + 1;
    /* Push in reverse so slots come out in index order. */
    for (uint32_t i = TIDE__OP_CHUNK; i-- > 0;) {
        struct tide__opslot *s = &slots[i];
        s->op.token = GEN_ONE | ((uint64_t)c * TIDE__OP_CHUNK + i);
        s->next_free = loop->free_ops;
        loop->free_ops = s;
    }
    return 0;
}

struct tide__opslot *tide__op_new(tide_loop *loop)
{
    if (!loop->free_ops && add_chunk(loop) < 0)
        return NULL;
    struct tide__opslot *s = loop->free_ops;
    loop->free_ops = s->next_free;
    uint64_t token = s->op.token;
    memset(&s->op, 0, sizeof s->op);
    s->op.token = token;
    s->op.fd = -1;
    s->op.offset = -1;
    s->complete = NULL;
    s->owner = NULL;
    s->next_free = NULL;
    s->state = TIDE__OPSLOT_IDLE;
    s->cancelled = false;
    loop->ops_live++;
    return s;
}

void tide__op_free(tide_loop *loop, struct tide__opslot *s)
{
    /* The next use of the slot has a new token: completions still on
     * their way for this one miss it. */
    s->op.token += GEN_ONE;
    s->state = TIDE__OPSLOT_FREE;
    s->next_free = loop->free_ops;
    loop->free_ops = s;
    loop->ops_live--;
}

int tide__op_submit(tide_loop *loop, struct tide__opslot *s)
{
    int r = loop->backend.ops->submit(&loop->backend, &s->op);

    if (r == 0)
        s->state = TIDE__OPSLOT_INFLIGHT;
    return r;
}

/* The op is over (op.result set): tell its owner, or free it. */
static void finish(tide_loop *loop, struct tide__opslot *s)
{
    if (s->state == TIDE__OPSLOT_DROPPED) {
        tide__op_free(loop, s);
        return;
    }
    s->state = TIDE__OPSLOT_IDLE;
    s->complete(loop, s);
}

void tide__op_cancel(tide_loop *loop, struct tide__opslot *s)
{
    if (s->cancelled || (s->state != TIDE__OPSLOT_INFLIGHT &&
                         s->state != TIDE__OPSLOT_DROPPED))
        return;
    s->cancelled = true;
    if (loop->backend.ops->cancel(&loop->backend, &s->op) == 1)
        finish(loop, s);
}

void tide__op_drop(tide_loop *loop, struct tide__opslot *s)
{
    if (s->state == TIDE__OPSLOT_IDLE) {
        tide__op_free(loop, s);
        return;
    }
    s->state = TIDE__OPSLOT_DROPPED;
    tide__op_cancel(loop, s);
}

void tide__op_dispatch(tide_loop *loop, const struct tide__completion *c,
                       int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t index = (uint32_t)c[i].token;
        uint64_t chunk = index / TIDE__OP_CHUNK;
        struct tide__opslot *s =
            chunk < loop->op_nchunks
                ? &loop->op_chunks[chunk][index % TIDE__OP_CHUNK]
                : NULL;
        if (!s || s->op.token != c[i].token ||
            (s->state != TIDE__OPSLOT_INFLIGHT &&
             s->state != TIDE__OPSLOT_DROPPED)) {
            loop->ops_stale++;
            continue;
        }
        s->op.result = c[i].result;
        if (c[i].flags & TIDE__COMP_MORE) {
            if (s->state == TIDE__OPSLOT_INFLIGHT)
                s->complete(loop, s); /* multishot: more follow */
            continue;
        }
        finish(loop, s);
    }
}

void tide__loop_poll(tide_loop *loop, int64_t timeout_ns)
{
    struct tide__completion c[POLL_BATCH];
    int n = loop->backend.ops->wait(&loop->backend, timeout_ns, c, POLL_BATCH);

    while (n > 0) {
        tide__op_dispatch(loop, c, n);
        if (n < POLL_BATCH)
            break;
        n = loop->backend.ops->wait(&loop->backend, 0, c, POLL_BATCH);
    }
}

void tide__ops_destroy(tide_loop *loop)
{
    for (uint32_t i = 0; i < loop->op_nchunks; i++)
        tide__free(loop->op_chunks[i]);
    tide__free(loop->op_chunks);
    loop->op_chunks = NULL;
    loop->op_nchunks = 0;
    loop->free_ops = NULL;
    loop->ops_live = 0;
}
