/* Barrier: asyncio.Barrier's states without its inner Condition.
 *
 * FILLING: parties arrive (count of them) and wait in `fill`; the last
 * one trips the barrier: every waiting party is granted 0 and the state
 * becomes DRAINING until they have all left (count back to 0), while
 * newcomers wait in `block` for the next cycle. reset() with parties
 * inside makes it RESETTING (they get -EPIPE) until they have left;
 * abort() makes it BROKEN (everyone gets -EPIPE) until reset(). Each
 * party that was counted leaves through leave(), whatever its outcome;
 * the last one out of a drain or a reset returns the barrier to FILLING
 * and wakes `block`. Released parties stay inside `fill` until they have
 * left, so freeing the barrier under them is detected.
 *
 * Unlike asyncio, a party cancelled while it waits breaks the barrier
 * (see tide/sync.h); one cancelled after being released just leaves.
 * SPDX-License-Identifier: MIT
 */
#include "tide/sync.h"

#include "base/alloc.h"
#include "core/waitq.h"

#include <errno.h>

enum { FILLING, DRAINING, RESETTING, BROKEN };

struct tide_barrier {
    unsigned parties;
    unsigned count; /* parties arrived and not yet left */
    int state;
    struct tide__waitq fill;  /* arrived, waiting for the trip */
    struct tide__waitq block; /* waiting for a drain or reset to end */
    char *name;               /* tide_barrier_set_name, or NULL */
};

tide_barrier *tide_barrier_new(unsigned parties)
{
    if (parties == 0) {
        errno = EINVAL;
        return NULL;
    }
    tide_barrier *b = tide__malloc(sizeof *b); /* sets errno */
    if (!b)
        return NULL;
    b->parties = parties;
    b->count = 0;
    b->state = FILLING;
    tide__waitq_init(&b->fill);
    tide__waitq_init(&b->block);
    b->name = NULL;
    return b;
}

void tide_barrier_free(tide_barrier *b)
{
    if (!b)
        return;
    tide__waitq_close(&b->fill, true);
    tide__waitq_close(&b->block, true);
    tide__free(b->name);
    tide__free(b);
}

int tide_barrier_set_name(tide_barrier *b, const char *name)
{
    return b ? tide__set_name(&b->name, name) : -EINVAL;
}

/* "barrier 'b' (2 of 3 arrived)" for those waiting for the trip (the
 * parties still to come may be any task); "barrier 'b' (draining: 2 still
 * to leave)" for those waiting to enter while a trip drains or a reset
 * runs. */
static void describe_barrier(const tide_barrier *b, bool filling, char *buf,
                             size_t n)
{
    size_t len = tide__put_label(buf, n, 0, "barrier", b->name, b);

    if (filling)
        tide__appendf(buf, n, len, " (%u of %u arrived)", b->count,
                      b->parties);
    else
        tide__appendf(buf, n, len, " (%s: %u still to leave)",
                      b->state == RESETTING ? "resetting" : "draining",
                      b->count);
}

static void describe_fill(tide_loop *loop, const struct tide__wait *w,
                          char *buf, size_t n)
{
    (void)loop;
    describe_barrier(tide__container_of(tide__waitq_of(w), tide_barrier, fill),
                     true, buf, n);
}

static void describe_block(tide_loop *loop, const struct tide__wait *w,
                           char *buf, size_t n)
{
    (void)loop;
    describe_barrier(tide__container_of(tide__waitq_of(w), tide_barrier,
                                        block),
                     false, buf, n);
}

static const struct tide__wait_kind fill_kind = {
    .what = "barrier",
    .describe = describe_fill,
};

static const struct tide__wait_kind block_kind = {
    .what = "barrier",
    .describe = describe_block,
};

/* The state left FILLING: wake those blocked if it is no longer in the
 * way (FILLING again, or BROKEN: they fail). */
static void unblock(tide_barrier *b)
{
    if (b->state == FILLING || b->state == BROKEN)
        tide__waitq_wake_all(&b->block, 0);
}

static void leave(tide_barrier *b)
{
    if (--b->count == 0) {
        if (b->state == DRAINING || b->state == RESETTING)
            b->state = FILLING;
        unblock(b);
    }
}

static int wait_in(tide_loop *loop, tide_barrier *b, unsigned *index,
                   struct tide__qwaiter *w)
{
    int rc;

    while (b->state == DRAINING || b->state == RESETTING) {
        if (!loop)
            return -EPERM;
        /* Woken with nothing granted: a woken waiter just looks again. */
        rc = tide__waitq_wait(loop, &b->block, w, NULL, &block_kind);
        if (tide__waitq_gone(w))
            return rc;
        tide__waitq_leave(w);
        if (rc < 0)
            return rc;
    }
    if (b->state == BROKEN)
        return -EPIPE;

    unsigned idx = b->count;
    if (idx + 1 == b->parties) {
        /* The last party: trip, without waiting. */
        b->state = DRAINING;
        b->count++;
        tide__waitq_wake_all(&b->fill, 0);
        leave(b);
        if (index)
            *index = idx;
        return 0;
    }
    if (!loop)
        return -EPERM;
    b->count++;
    rc = tide__waitq_wait(loop, &b->fill, w, NULL, &fill_kind);
    if (tide__waitq_gone(w))
        return rc;
    tide__waitq_leave(w);
    if (!w->woken) {
        /* Cancelled while filling: the rendezvous cannot happen. */
        b->state = BROKEN;
        tide__waitq_wake_all(&b->fill, -EPIPE);
        unblock(b);
    }
    leave(b);
    if (rc == 0 && index)
        *index = idx;
    return rc;
}

int tide_barrier_wait(tide_barrier *b, unsigned *index)
{
    if (!b)
        return -EINVAL;
    tide_loop *loop = tide__task_loop();
    struct tide__qwaiter local, *w = &local;

    if (loop && !(w = tide__wait_frame(loop, &local, sizeof local)))
        return -ENOMEM;
    int rc = wait_in(loop, b, index, w);
    tide__wait_frame_end(w, &local);
    return rc;
}

int tide_barrier_reset(tide_barrier *b)
{
    if (!b)
        return -EINVAL;
    if (b->count > 0) {
        if (b->state != RESETTING) {
            b->state = RESETTING;
            tide__waitq_wake_all(&b->fill, -EPIPE);
        }
    } else {
        b->state = FILLING;
        unblock(b);
    }
    return 0;
}

int tide_barrier_abort(tide_barrier *b)
{
    if (!b)
        return -EINVAL;
    b->state = BROKEN;
    tide__waitq_wake_all(&b->fill, -EPIPE);
    unblock(b);
    return 0;
}

unsigned tide_barrier_parties(const tide_barrier *b)
{
    return b ? b->parties : 0;
}

unsigned tide_barrier_n_waiting(const tide_barrier *b)
{
    return b && b->state == FILLING ? b->count : 0;
}

bool tide_barrier_broken(const tide_barrier *b)
{
    return b && b->state == BROKEN;
}
