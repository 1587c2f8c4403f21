/* The timer heap: a binary min-heap ordered by (deadline, seq), where
 * timers with the same deadline share one entry.
 *
 * Many timers share a deadline (sleeps started in one iteration with one
 * delay; W3's million sleepers have a single deadline), so the heap holds
 * "leaders": the first timer of a deadline, followed by a FIFO of the
 * timers set later with that same deadline. A small direct-mapped table
 * remembers recent leaders by deadline, so arming is O(1) when it hits
 * and O(log n) otherwise. Order stays exact: a leader's followers were
 * all set before any later leader of the same deadline was made (a leader
 * only stops taking followers when it leaves the table), and equal-
 * deadline leaders are ordered by seq. Popping or removing a leader that
 * has followers promotes the first follower into the same heap slot with
 * the same key: O(1), no sifting.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_BASE_HEAP_H
#define TIDE_BASE_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define TIDE__TIMER_IDLE UINT32_MAX           /* not armed */
#define TIDE__TIMER_FOLLOWER (UINT32_MAX - 1) /* armed behind a leader */
#define TIDE__HEAP_RECENT 1024 /* leaders remembered by deadline */

struct tide__timer {
    int64_t deadline; /* loop time in ns */
    uint64_t seq;     /* leaders: order of arming, breaks deadline ties */
    struct tide__timer *next, *prev; /* followers: circular via the leader */
    uint32_t index; /* heap slot, TIDE__TIMER_FOLLOWER or _IDLE */
    uint8_t kind;   /* what it stands for: its owner's business */
};

struct tide__heap {
    struct tide__timer **slots; /* leaders */
    uint32_t count, cap;        /* leaders in slots */
    size_t armed;               /* every armed timer, followers too */
    uint64_t next_seq;
    struct tide__timer *recent[TIDE__HEAP_RECENT];
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

/* The earliest timer (a leader), or NULL. */
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
