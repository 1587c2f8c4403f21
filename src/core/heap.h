/* The timer heap: a binary min-heap of timer pointers ordered by
 * (deadline, seq), so timers with equal deadlines fire in the order they
 * were set. A timer records its slot, which makes removal O(log n).
 * The array grows by doubling and never shrinks while the loop lives, so
 * arming a timer allocates nothing in steady state.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_CORE_HEAP_H
#define TIDE_CORE_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define TIDE__TIMER_IDLE UINT32_MAX /* index of a timer not in the heap */

enum tide__timer_kind {
    TIDE__TIMER_HANDLE, /* a call_later/call_at handle: queue it */
    TIDE__TIMER_WAKE,   /* a sleeping coroutine: wake it */
};

struct tide__timer {
    int64_t deadline;   /* loop time in ns */
    uint64_t seq;       /* order of arming; breaks deadline ties */
    uint32_t index;     /* slot in the heap, TIDE__TIMER_IDLE if not armed */
    uint8_t kind;       /* enum tide__timer_kind */
};

struct tide__heap {
    struct tide__timer **slots;
    uint32_t count, cap;
    uint64_t next_seq;
};

static inline void tide__timer_init(struct tide__timer *t, uint8_t kind)
{
    t->index = TIDE__TIMER_IDLE;
    t->kind = kind;
}

static inline int tide__timer_armed(const struct tide__timer *t)
{
    return t->index != TIDE__TIMER_IDLE;
}

static inline struct tide__timer *tide__heap_min(const struct tide__heap *h)
{
    return h->count ? h->slots[0] : NULL;
}

/* Arm t at `deadline`. Returns 0 or -ENOMEM (only when the array grows). */
int tide__heap_push(struct tide__heap *h, struct tide__timer *t,
                    int64_t deadline);
/* Disarm t; harmless if it is not armed. */
void tide__heap_remove(struct tide__heap *h, struct tide__timer *t);
/* Disarm and return the earliest timer (NULL if empty). */
struct tide__timer *tide__heap_pop(struct tide__heap *h);
void tide__heap_free(struct tide__heap *h);

#endif
