/* Queues: asyncio.Queue, LifoQueue and PriorityQueue of void *, with
 * Python 3.13's shutdown.
 *
 * Storage is a ring of void * (FIFO and LIFO; capacity a power of two,
 * grown by doubling) or a binary heap of {item, seq} (priority; seq keeps
 * equal items in insertion order). Accounting, for a bounded queue:
 *     len + handed + reserved <= maxsize
 * len: items stored; handed: items given to a getter that has not run
 * yet (still counted by size(), as in asyncio); reserved: free slots
 * promised to putters that have not run yet (counted by full()). Getters
 * wait only while len == 0, putters only while full, so a put that finds
 * a getter hands it the item (no storage round trip) and a freed slot
 * goes to the first putter. Storage always has room for len + handed,
 * so a handed item a cancelled getter gives back always fits.
 * SPDX-License-Identifier: MIT
 */
#include "tide/sync.h"

#include "base/alloc.h"
#include "core/waitq.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

enum { KIND_FIFO, KIND_LIFO, KIND_PRIO };

#define INITIAL_CAP 16

struct pq_entry {
    void *item;
    int64_t seq; /* ties: lower first */
};

struct tide_queue {
    union {
        void **ring;           /* FIFO, LIFO */
        struct pq_entry *heap; /* priority */
    } s;
    size_t cap;      /* slots allocated; a power of two */
    size_t head;     /* ring: the front (FIFO) or bottom (LIFO) */
    size_t len;      /* items stored */
    size_t handed;   /* items given to getters not yet run */
    size_t reserved; /* slots promised to putters not yet run */
    size_t limit;    /* maxsize, or SIZE_MAX if unbounded */
    size_t maxsize;
    size_t unfinished; /* put, not yet task_done (join) */
    size_t gotten;     /* gotten, not yet task_done */
    int (*cmp)(const void *a, const void *b);
    int64_t back_seq;  /* next seq of a put, counting up */
    int64_t front_seq; /* next seq of a give-back, counting down */
    uint8_t kind;
    bool shutdown;
    struct tide__waitq getters; /* w.data: the item handed */
    struct tide__waitq putters; /* w.data: the item to put */
    struct tide__waitq joiners;
    char *name; /* tide_queue_set_name, or NULL */
};

static size_t entry_size(const tide_queue *q)
{
    return q->kind == KIND_PRIO ? sizeof(struct pq_entry) : sizeof(void *);
}

static tide_queue *queue_new(size_t maxsize, uint8_t kind,
                             int (*cmp)(const void *, const void *))
{
    tide_queue *q = tide__calloc(1, sizeof *q); /* sets errno */

    if (!q)
        return NULL;
    q->kind = kind;
    q->cmp = cmp;
    q->maxsize = maxsize;
    q->limit = maxsize ? maxsize : SIZE_MAX;
    q->cap = 1;
    while (q->cap < INITIAL_CAP && q->cap < q->limit)
        q->cap *= 2;
    q->s.ring = tide__malloc(q->cap * entry_size(q));
    if (!q->s.ring) {
        tide__free(q);
        return NULL;
    }
    q->front_seq = -1;
    tide__waitq_init(&q->getters);
    tide__waitq_init(&q->putters);
    tide__waitq_init(&q->joiners);
    return q;
}

tide_queue *tide_queue_new(size_t maxsize)
{
    return queue_new(maxsize, KIND_FIFO, NULL);
}

tide_queue *tide_queue_new_lifo(size_t maxsize)
{
    return queue_new(maxsize, KIND_LIFO, NULL);
}

tide_queue *tide_queue_new_priority(size_t maxsize,
                                    int (*cmp)(const void *, const void *))
{
    if (!cmp) {
        errno = EINVAL;
        return NULL;
    }
    return queue_new(maxsize, KIND_PRIO, cmp);
}

void tide_queue_free(tide_queue *q)
{
    if (!q)
        return;
    tide__waitq_close(&q->getters, true);
    tide__waitq_close(&q->putters, true);
    tide__waitq_close(&q->joiners, false); /* the woken keep their 0 */
    tide__free(q->name);
    tide__free(q->s.ring);
    tide__free(q);
}

int tide_queue_set_name(tide_queue *q, const char *name)
{
    return q ? tide__set_name(&q->name, name) : -EINVAL;
}

/* ---- what its waiters wait on (task dumps) ----------------------------- */

/* "get from queue 'q' (0 of 4 items, 2 getters and 0 putters waiting)":
 * any task may put or get; the queue does not know which will. */
static void describe_wait(const char *verb, const tide_queue *q, char *buf,
                          size_t n)
{
    size_t len = tide__appendf(buf, n, 0, "%s ", verb);

    len = tide__put_label(buf, n, len, "queue", q->name, q);
    if (q->maxsize)
        len = tide__appendf(buf, n, len, " (%zu of %zu items", q->len,
                            q->maxsize);
    else
        len = tide__appendf(buf, n, len, " (%zu items", q->len);
    len = tide__appendf(buf, n, len, ", %zu getters and %zu putters waiting",
                        q->getters.count, q->putters.count);
    if (q->unfinished)
        len = tide__appendf(buf, n, len, ", %zu unfinished", q->unfinished);
    tide__appendf(buf, n, len, "%s)", q->shutdown ? ", shut down" : "");
}

static void describe_get(tide_loop *loop, const struct tide__wait *w,
                         char *buf, size_t n)
{
    (void)loop;
    describe_wait("get from",
                  tide__container_of(tide__waitq_of(w), tide_queue, getters),
                  buf, n);
}

static void describe_put(tide_loop *loop, const struct tide__wait *w,
                         char *buf, size_t n)
{
    (void)loop;
    describe_wait("put to",
                  tide__container_of(tide__waitq_of(w), tide_queue, putters),
                  buf, n);
}

static void describe_join(tide_loop *loop, const struct tide__wait *w,
                          char *buf, size_t n)
{
    (void)loop;
    describe_wait("join on",
                  tide__container_of(tide__waitq_of(w), tide_queue, joiners),
                  buf, n);
}

static const struct tide__wait_kind get_kind = {"queue get", describe_get,
                                                NULL};
static const struct tide__wait_kind put_kind = {"queue put", describe_put,
                                                NULL};
static const struct tide__wait_kind join_kind = {"queue join", describe_join,
                                                 NULL};

/* ---- storage ----------------------------------------------------------- */

/* Grow the storage to hold at least `need` items. */
static __attribute__((noinline)) int grow(tide_queue *q, size_t need)
{
    size_t cap = q->cap;
    while (cap < need) {
        if (cap > SIZE_MAX / 2 / entry_size(q))
            return -ENOMEM;
        cap *= 2;
    }
    void *p = tide__realloc(q->s.ring, cap * entry_size(q));
    if (!p)
        return -ENOMEM;
    q->s.ring = p;
    if (q->kind != KIND_PRIO && q->head + q->len > q->cap) {
        /* Unwrap: the part at the start goes after the old end. */
        size_t wrapped = q->head + q->len - q->cap;
        memcpy(q->s.ring + q->cap, q->s.ring, wrapped * sizeof(void *));
    }
    q->cap = cap;
    return 0;
}

/* Make room for `extra` more items besides len + handed. */
static inline int ensure_room(tide_queue *q, size_t extra)
{
    size_t need = q->len + q->handed + extra;

    return need <= q->cap ? 0 : grow(q, need);
}

static bool before(const tide_queue *q, const struct pq_entry *a,
                   const struct pq_entry *b)
{
    int c = q->cmp(a->item, b->item);
    return c != 0 ? c < 0 : a->seq < b->seq;
}

static __attribute__((noinline)) void heap_push(tide_queue *q, void *item,
                                                int64_t seq)
{
    struct pq_entry *h = q->s.heap;
    struct pq_entry e = {item, seq};
    size_t i = q->len++;

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(q, &e, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = e;
}

static __attribute__((noinline)) void *heap_pop(tide_queue *q)
{
    struct pq_entry *h = q->s.heap;
    void *top = h[0].item;
    struct pq_entry last = h[--q->len];
    size_t n = q->len, i = 0;

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && before(q, &h[child + 1], &h[child]))
            child++;
        if (!before(q, &h[child], &last))
            break;
        h[i] = h[child];
        i = child;
    }
    if (n)
        h[i] = last;
    return top;
}

/* Store at the back (room was ensured). */
static inline void store(tide_queue *q, void *item)
{
    if (q->kind == KIND_PRIO)
        heap_push(q, item, q->back_seq++);
    else
        q->s.ring[(q->head + q->len++) & (q->cap - 1)] = item;
}

/* Store where the next get finds it first (room is there: see the top). */
static void store_front(tide_queue *q, void *item)
{
    if (q->kind == KIND_PRIO) {
        heap_push(q, item, q->front_seq--);
    } else if (q->kind == KIND_LIFO) {
        store(q, item);
    } else {
        q->head = (q->head - 1) & (q->cap - 1);
        q->s.ring[q->head] = item;
        q->len++;
    }
}

static inline void *take(tide_queue *q)
{
    void *item;

    if (q->kind == KIND_PRIO)
        return heap_pop(q);
    if (q->kind == KIND_LIFO)
        return q->s.ring[(q->head + --q->len) & (q->cap - 1)];
    item = q->s.ring[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    return item;
}

/* ---- putting and getting ----------------------------------------------- */

static inline bool is_full(const tide_queue *q)
{
    return q->len + q->handed + q->reserved >= q->limit;
}

/* Give an item to the first getter; false if none waits. */
static inline bool hand(tide_queue *q, void *item)
{
    struct tide__qwaiter *g = tide__waitq_first(&q->getters);

    if (!g)
        return false;
    g->data = item;
    q->handed++;
    tide__waitq_wake(g, 0);
    return true;
}

/* Put an item there is room for (not full, or a slot reserved for it). */
static inline int do_put(tide_queue *q, void *item)
{
    if (!hand(q, item)) { /* a waiting getter takes it without storage */
        int err = ensure_room(q, 1);
        if (err < 0)
            return err;
        store(q, item);
    }
    q->unfinished++;
    return 0;
}

/* A slot may have been freed: promise it to the first putter. */
static inline void slot_freed(tide_queue *q)
{
    struct tide__qwaiter *p;

    if (!tide__waitq_empty(&q->putters) && !is_full(q)) {
        p = tide__waitq_first(&q->putters);
        q->reserved++;
        tide__waitq_wake(p, 0);
    }
}

int tide_queue_put_nowait(tide_queue *q, void *item)
{
    if (!q)
        return -EINVAL;
    if (q->shutdown)
        return -ESHUTDOWN;
    if (is_full(q))
        return -EAGAIN;
    return do_put(q, item);
}

/* Wait for room, then use the granted slot or pass it on. Inlined into
 * tide_queue_put with w in its frame (the W2/W6 hot path), and into
 * put_wait_compact with w allocated (tide__wait_frame). */
static inline __attribute__((always_inline)) int put_wait(
    tide_loop *loop, tide_queue *q, void *item, struct tide__qwaiter *w)
{
    int rc = tide__waitq_wait(loop, &q->putters, w, item, &put_kind);
    if (tide__waitq_gone(w))
        return rc;
    tide__waitq_leave(w);
    if (!w->woken || w->result != 0)
        return rc; /* cancelled while waiting; -ESHUTDOWN */
    q->reserved--; /* our slot: use it or pass it on */
    if (rc == 0) {
        rc = q->shutdown ? -ESHUTDOWN : do_put(q, item);
        if (rc == 0)
            return 0;
    }
    slot_freed(q);
    return rc;
}

static __attribute__((noinline)) int put_wait_compact(tide_loop *loop,
                                                      tide_queue *q,
                                                      void *item)
{
    struct tide__qwaiter *w = tide__malloc(sizeof *w);

    if (!w)
        return -ENOMEM;
    int rc = put_wait(loop, q, item, w);
    tide__free(w);
    return rc;
}

int tide_queue_put(tide_queue *q, void *item)
{
    if (!q)
        return -EINVAL;
    if (q->shutdown)
        return -ESHUTDOWN;
    if (!is_full(q))
        return do_put(q, item);
    tide_loop *loop = tide__task_loop();
    if (!loop)
        return -EPERM;
    if (tide__compact_running(loop))
        return put_wait_compact(loop, q, item);
    struct tide__qwaiter w;
    return put_wait(loop, q, item, &w);
}

/* An item was taken from storage by a get. */
static inline void *took(tide_queue *q, void *item)
{
    q->gotten++;
    slot_freed(q);
    return item;
}

int tide_queue_get_nowait(tide_queue *q, void **item)
{
    if (!q || !item)
        return -EINVAL;
    if (q->len) {
        *item = took(q, take(q));
        return 0;
    }
    return q->shutdown ? -ESHUTDOWN : -EAGAIN;
}

/* Wait for an item, then take the one handed over or give it back (see
 * put_wait). */
static inline __attribute__((always_inline)) int get_wait(
    tide_loop *loop, tide_queue *q, void **item, struct tide__qwaiter *w)
{
    int rc = tide__waitq_wait(loop, &q->getters, w, NULL, &get_kind);
    if (tide__waitq_gone(w))
        return rc;
    tide__waitq_leave(w);
    if (!w->woken || w->result != 0)
        return rc; /* nothing handed: cancelled, shut down */
    q->handed--;
    if (rc == 0) {
        *item = took(q, w->data);
        return 0;
    }
    /* Handed an item, then cancelled before running: give it back. */
    if (!hand(q, w->data))
        store_front(q, w->data);
    return rc;
}

static __attribute__((noinline)) int get_wait_compact(tide_loop *loop,
                                                      tide_queue *q,
                                                      void **item)
{
    struct tide__qwaiter *w = tide__malloc(sizeof *w);

    if (!w)
        return -ENOMEM;
    int rc = get_wait(loop, q, item, w);
    tide__free(w);
    return rc;
}

int tide_queue_get(tide_queue *q, void **item)
{
    if (!q || !item)
        return -EINVAL;
    if (q->len) {
        *item = took(q, take(q));
        return 0;
    }
    if (q->shutdown)
        return -ESHUTDOWN;
    tide_loop *loop = tide__task_loop();
    if (!loop)
        return -EPERM;
    if (tide__compact_running(loop))
        return get_wait_compact(loop, q, item);
    struct tide__qwaiter w;
    return get_wait(loop, q, item, &w);
}

/* ---- state, join, shutdown ---------------------------------------------- */

size_t tide_queue_size(const tide_queue *q)
{
    return q ? q->len + q->handed : 0;
}

bool tide_queue_empty(const tide_queue *q)
{
    return tide_queue_size(q) == 0;
}

bool tide_queue_full(const tide_queue *q)
{
    return q && is_full(q);
}

size_t tide_queue_maxsize(const tide_queue *q)
{
    return q ? q->maxsize : 0;
}

static void finish_one(tide_queue *q)
{
    if (q->unfinished > 0 && --q->unfinished == 0)
        tide__waitq_wake_all(&q->joiners, 0);
}

int tide_queue_task_done(tide_queue *q)
{
    if (!q || q->gotten == 0)
        return -EINVAL;
    q->gotten--;
    finish_one(q);
    return 0;
}

int tide_queue_join(tide_queue *q)
{
    if (!q)
        return -EINVAL;
    if (q->unfinished == 0)
        return 0;
    return tide__waitq_acquire(&q->joiners, &join_kind, NULL, NULL, q);
}

int tide_queue_shutdown(tide_queue *q, bool immediate)
{
    if (!q)
        return -EINVAL;
    q->shutdown = true;
    if (immediate) {
        while (q->len) {
            take(q);
            finish_one(q);
        }
        /* Items handed to getters that have not run are dropped too. */
        for (struct tide__list *l = q->getters.inside.next;
             l != &q->getters.inside; l = l->next) {
            struct tide__qwaiter *g =
                tide__container_of(l, struct tide__qwaiter, link);
            if (g->woken && g->result == 0) {
                g->result = -ESHUTDOWN;
                g->data = NULL;
                q->handed--;
                finish_one(q);
            }
        }
    }
    tide__waitq_wake_all(&q->getters, -ESHUTDOWN);
    tide__waitq_wake_all(&q->putters, -ESHUTDOWN);
    return 0;
}
