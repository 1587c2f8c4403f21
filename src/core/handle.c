/* call_soon / call_later / call_at and their handles.
 *
 * Handle records live in chunks the loop owns (stable addresses, reused
 * through a free list, so scheduling allocates nothing in steady state).
 * A tide_handle is (index << 32 | generation); every reuse of a record
 * bumps its generation, so cancelling a handle whose callback already ran
 * simply misses: harmless by construction.
 * SPDX-License-Identifier: MIT
 */
#include "core/timer.h"

#include "base/alloc.h"

#include <errno.h>
#include <math.h>

enum {
    H_FREE,
    H_PENDING,   /* armed in the timer heap (its timer is armed), or in the
                  * ready queue (the timer fired, or there was none) */
    H_CANCELLED, /* cancelled while in the ready queue: skipped when popped */
};

static struct tide__handle *handle_at(tide_loop *loop, uint32_t index)
{
    return &loop->handle_chunks[index / TIDE__HANDLE_CHUNK]
                               [index % TIDE__HANDLE_CHUNK];
}

/* Make every id of h stale. */
static void bump(struct tide__handle *h)
{
    if (++h->gen == 0)
        h->gen = 1;
}

static void handle_free(tide_loop *loop, struct tide__handle *h)
{
    if (h->state != H_CANCELLED) {
        bump(h);
        loop->live_handles--;
    }
    h->state = H_FREE;
    h->next_free = loop->free_handles;
    loop->free_handles = h;
}

static void handle_run(tide_loop *loop, struct tide__call *c, bool cancel)
{
    struct tide__handle *h = tide__container_of(c, struct tide__handle, call);
    tide_callback cb = h->cb;
    void *arg = h->arg;

    /* Free first: the callback may schedule again (and reuse this record),
     * and cancelling its own handle from inside must be a no-op. */
    if (h->state == H_CANCELLED)
        cancel = true;
    handle_free(loop, h);
    if (!cancel)
        cb(arg);
}

static struct tide__handle *handle_new(tide_loop *loop)
{
    struct tide__handle *h = loop->free_handles;

    if (!h) {
        if (loop->nchunks >= UINT32_MAX / TIDE__HANDLE_CHUNK - 1)
            return NULL;
        void *chunks = tide__realloc(loop->handle_chunks,
                                     (loop->nchunks + 1) * sizeof(void *));
        if (!chunks)
            return NULL;
        loop->handle_chunks = chunks;
        struct tide__handle *chunk =
            tide__calloc(TIDE__HANDLE_CHUNK, sizeof *chunk);
        if (!chunk)
            return NULL;
        loop->handle_chunks[loop->nchunks] = chunk;
        uint32_t base = loop->nchunks++ * TIDE__HANDLE_CHUNK;
        for (uint32_t i = TIDE__HANDLE_CHUNK; i-- > 0;) {
            chunk[i].index = base + i;
            chunk[i].gen = 1;
            chunk[i].call.run = handle_run;
            tide__timer_init(&chunk[i].timer, TIDE__TIMER_HANDLE);
            chunk[i].next_free = loop->free_handles;
            loop->free_handles = &chunk[i];
        }
        h = loop->free_handles;
    }
    loop->free_handles = h->next_free;
    loop->live_handles++;
    return h;
}

static tide_handle id_of(const struct tide__handle *h)
{
    return (uint64_t)h->index << 32 | h->gen;
}

static tide_handle schedule(tide_loop *loop, int64_t deadline, bool timed,
                            tide_callback cb, void *arg)
{
    if (__builtin_expect(loop->debug != NULL, 0))
        tide__debug_check_arg(loop, arg, "a callback");
    struct tide__handle *h = handle_new(loop);

    if (!h) {
        errno = ENOMEM;
        return 0;
    }
    h->cb = cb;
    h->arg = arg;
    /* Due already (a delay <= 0, a deadline the loop's time has passed):
     * queued now, so it runs before anything that becomes ready after
     * this call, as the contract wants of a due timer. */
    if (timed && deadline > loop->now) {
        if (tide__heap_push(&loop->timers, &h->timer, deadline) < 0) {
            handle_free(loop, h);
            errno = ENOMEM;
            return 0;
        }
    } else {
        tide__call_schedule(loop, &h->call);
    }
    h->state = H_PENDING;
    return id_of(h);
}

tide_handle tide__call_at_ns(tide_loop *loop, int64_t deadline,
                             tide_callback cb, void *arg)
{
    return schedule(loop, deadline, true, cb, arg);
}

tide_handle tide_call_soon(tide_loop *loop, tide_callback cb, void *arg)
{
    loop = tide__loop_resolve(loop);
    if (!loop || !cb || loop->closed) {
        errno = loop ? EINVAL : errno;
        return 0;
    }
    return schedule(loop, 0, false, cb, arg);
}

tide_handle tide_call_later(tide_loop *loop, double delay, tide_callback cb,
                            void *arg)
{
    int64_t deadline;

    loop = tide__loop_resolve(loop);
    if (!loop || !cb || loop->closed || isnan(delay)) {
        errno = loop ? EINVAL : errno;
        return 0;
    }
    tide__deadline_in(loop, delay, &deadline);
    return schedule(loop, deadline, true, cb, arg);
}

tide_handle tide_call_at(tide_loop *loop, double when, tide_callback cb,
                         void *arg)
{
    loop = tide__loop_resolve(loop);
    if (!loop || !cb || loop->closed || isnan(when)) {
        errno = loop ? EINVAL : errno;
        return 0;
    }
    return schedule(loop, tide__ns_of(when), true, cb, arg);
}

bool tide_handle_cancel(tide_loop *loop, tide_handle id)
{
    uint32_t index = (uint32_t)(id >> 32), gen = (uint32_t)id;

    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed || index >= loop->nchunks * TIDE__HANDLE_CHUNK)
        return false;
    struct tide__handle *h = handle_at(loop, index);
    if (h->gen != gen || h->state != H_PENDING)
        return false;
    if (tide__timer_armed(&h->timer)) {
        tide__heap_remove(&loop->timers, &h->timer);
        handle_free(loop, h);
        return true;
    }
    /* Queued: leave it where it is (the batch count stays right) and let
     * handle_run drop it when it comes up. */
    h->state = H_CANCELLED;
    bump(h);
    loop->live_handles--;
    return true;
}

/* Loop close: every handle still armed or queued is dropped. Queued ones
 * were already dropped with the ready queue; free the chunks. */
void tide__handles_destroy(tide_loop *loop)
{
    for (uint32_t i = 0; i < loop->nchunks; i++)
        tide__free(loop->handle_chunks[i]);
    tide__free(loop->handle_chunks);
    loop->handle_chunks = NULL;
    loop->nchunks = 0;
    loop->free_handles = NULL;
    loop->live_handles = 0;
}
