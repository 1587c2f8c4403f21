/* Intrusive containers, header-only: a circular doubly linked list and a
 * singly linked FIFO of tide__node.
 *
 * A removed list link is left self-linked, so removing twice is harmless:
 * waker and waiter may both unlink the same waiter. The FIFO is what the
 * ready queue and a future's callback list are made of; one tide__node can
 * sit in one FIFO at a time. A node's kind says what it stands for; the
 * layers that own FIFOs define the kinds (core/loop.h, task/future.h).
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_BASE_LIST_H
#define TIDE_BASE_LIST_H

#include <stddef.h>
#include <stdint.h>

#define tide__container_of(p, type, member) \
    ((type *)(void *)((char *)(p)-offsetof(type, member)))

struct tide__list {
    struct tide__list *next, *prev;
};

static inline void tide__list_init(struct tide__list *l)
{
    l->next = l->prev = l;
}

static inline int tide__list_empty(const struct tide__list *l)
{
    return l->next == l;
}

static inline void tide__list_push_back(struct tide__list *head,
                                        struct tide__list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void tide__list_remove(struct tide__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

struct tide__node {
    struct tide__node *next;
    uint8_t kind; /* what it stands for: its owner's business */
    uint32_t aux; /* free for the node's owner (an index) */
};

/* FIFO of nodes: O(1) push at the tail and pop at the head. */
struct tide__fifo {
    struct tide__node *head, *tail;
    size_t count;
};

static inline void tide__fifo_push(struct tide__fifo *q, struct tide__node *n)
{
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->count++;
}

static inline struct tide__node *tide__fifo_pop(struct tide__fifo *q)
{
    struct tide__node *n = q->head;

    if (n) {
        q->head = n->next;
        if (!q->head)
            q->tail = NULL;
        q->count--;
    }
    return n;
}

/* Unlink n from q if it is there (O(n)); returns 1 if it was. */
static inline int tide__fifo_remove(struct tide__fifo *q, struct tide__node *n)
{
    struct tide__node *prev = NULL;

    for (struct tide__node *it = q->head; it; prev = it, it = it->next) {
        if (it != n)
            continue;
        if (prev)
            prev->next = n->next;
        else
            q->head = n->next;
        if (q->tail == n)
            q->tail = prev;
        q->count--;
        n->next = NULL;
        return 1;
    }
    return 0;
}

#endif
