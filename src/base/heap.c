/* The timer heap (see heap.h). Sift operations move slot pointers and
 * keep each leader's index current; followers never move in the heap.
 * SPDX-License-Identifier: MIT
 */
#include "base/heap.h"

#include "base/alloc.h"

#include <errno.h>

static inline int less(const struct tide__timer *a,
                       const struct tide__timer *b)
{
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    return a->seq < b->seq;
}

static inline struct tide__timer **recent_slot(struct tide__heap *h,
                                               int64_t deadline)
{
    uint64_t k = (uint64_t)deadline * 0x9E3779B97F4A7C15ull;
    return &h->recent[k >> 54]; /* 10 bits: TIDE__HEAP_RECENT entries */
}
_Static_assert(TIDE__HEAP_RECENT == 1024, "recent_slot takes 10 bits");

static void sift_up(struct tide__heap *h, uint32_t i)
{
    struct tide__timer *t = h->slots[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        struct tide__timer *p = h->slots[parent];
        if (!less(t, p))
            break;
        h->slots[i] = p;
        p->index = i;
        i = parent;
    }
    h->slots[i] = t;
    t->index = i;
}

static void sift_down(struct tide__heap *h, uint32_t i)
{
    struct tide__timer *t = h->slots[i];
    uint32_t n = h->count;

    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && less(h->slots[c + 1], h->slots[c]))
            c++;
        if (!less(h->slots[c], t))
            break;
        h->slots[i] = h->slots[c];
        h->slots[i]->index = i;
        i = c;
    }
    h->slots[i] = t;
    t->index = i;
}

int tide__heap_push(struct tide__heap *h, struct tide__timer *t,
                    int64_t deadline)
{
    struct tide__timer **r = recent_slot(h, deadline);
    struct tide__timer *lead = *r;

    t->deadline = deadline;
    if (lead && lead->deadline == deadline) {
        /* Join the leader's FIFO: after every follower it already has. */
        t->index = TIDE__TIMER_FOLLOWER;
        t->seq = lead->seq;
        t->next = lead;
        t->prev = lead->prev;
        lead->prev->next = t;
        lead->prev = t;
        h->armed++;
        return 0;
    }
    if (h->count == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        void *s = tide__realloc(h->slots, (size_t)cap * sizeof *h->slots);
        if (!s)
            return -ENOMEM;
        h->slots = s;
        h->cap = cap;
    }
    t->seq = h->next_seq++;
    t->next = t->prev = t;
    h->slots[h->count] = t;
    sift_up(h, h->count++);
    h->armed++;
    *r = t;
    return 0;
}

void tide__heap_remove(struct tide__heap *h, struct tide__timer *t)
{
    uint32_t i = t->index;

    if (i == TIDE__TIMER_IDLE)
        return;
    h->armed--;
    t->index = TIDE__TIMER_IDLE;
    if (i == TIDE__TIMER_FOLLOWER) {
        t->prev->next = t->next;
        t->next->prev = t->prev;
        return;
    }
    struct tide__timer **r = recent_slot(h, t->deadline);
    if (t->next != t) {
        /* Promote the first follower into t's slot: same key, no sift. */
        struct tide__timer *f = t->next;
        f->prev = t->prev;
        t->prev->next = f;
        f->index = i;
        h->slots[i] = f;
        if (*r == t)
            *r = f;
        return;
    }
    if (*r == t)
        *r = NULL;
    struct tide__timer *last = h->slots[--h->count];
    if (last == t)
        return;
    h->slots[i] = last;
    last->index = i;
    if (i > 0 && less(last, h->slots[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

struct tide__timer *tide__heap_pop(struct tide__heap *h)
{
    struct tide__timer *t = tide__heap_min(h);

    if (t)
        tide__heap_remove(h, t);
    return t;
}

void tide__heap_free(struct tide__heap *h)
{
    tide__free(h->slots);
    h->slots = NULL;
    h->count = h->cap = 0;
    h->armed = 0;
    for (size_t i = 0; i < TIDE__HEAP_RECENT; i++)
        h->recent[i] = NULL;
}
