/* call_soon_threadsafe: callbacks sent to a loop from other threads.
 *
 * Senders allocate a record, append it to loop->remote_* under
 * remote_lock, and wake the backend only when the list goes from empty to
 * non-empty (remote_pending false -> true), so a flood of sends costs one
 * wake-up, and not even that while the loop spins for them
 * (remote_spinning: it is about to look). The loop takes the list
 * whenever it finds remote_pending set (after every wait), and a send
 * that lands after the take sets it again and wakes again: no wake-up is
 * lost. Callbacks from one thread keep their order.
 *
 * The thread pool posts its completions the same way, through
 * tide__remote_post_locked, without an allocation: the record is the
 * job's own, and the pool holds remote_lock across its own bookkeeping.
 *
 * Closing (HAZARDS B33): every send either is refused or runs. Refusing
 * and taking the list happen under one hold of remote_lock, so a send
 * that got in before is in the ready queue when close starts running the
 * loop, and close keeps running it until loop->remote_unrun, the count of
 * taken callbacks not yet run, is back to zero.
 * SPDX-License-Identifier: MIT
 */
#include "core/timer.h"

#include "base/alloc.h"

#include <errno.h>

struct remote {
    struct tide__call call;
    tide_callback cb;
    void *arg;
};

static void remote_run(tide_loop *loop, struct tide__call *c, bool cancel)
{
    struct remote *r = tide__container_of(c, struct remote, call);

    loop->remote_unrun--;
    if (!cancel)
        r->cb(r->arg);
    tide__free(r);
}

int tide_call_soon_threadsafe(tide_loop *loop, tide_callback cb, void *arg)
{
    if (!loop || !cb)
        return -EINVAL;
    struct remote *r = tide__malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    r->call.run = remote_run;
    r->cb = cb;
    r->arg = arg;

    pthread_mutex_lock(&loop->remote_lock);
    if (loop->remote_closed) {
        pthread_mutex_unlock(&loop->remote_lock);
        tide__free(r);
        return -ESHUTDOWN;
    }
    tide__remote_post_locked(loop, &r->call);
    pthread_mutex_unlock(&loop->remote_lock);
    return 0;
}

void tide__remote_post_locked(tide_loop *loop, struct tide__call *c)
{
    c->node.kind = TIDE__NODE_CALL;
    c->node.next = NULL;
    if (loop->remote_tail)
        loop->remote_tail->next = &c->node;
    else
        loop->remote_head = &c->node;
    loop->remote_tail = &c->node;
    /* seq_cst, with the load of remote_spinning after it and the loop's
     * store and load in the opposite order (sched.c): either the loop
     * sees the list appended to once it stops spinning, or this sees it
     * no longer spinning and wakes it. */
    bool was = atomic_exchange(&loop->remote_pending, true);
    /* Wake under the lock: close takes the lock (refusing sends) before
     * it closes the backend, so the backend is still open here. */
    if (!was && !atomic_load(&loop->remote_spinning))
        loop->backend.ops->wake(&loop->backend);
}

/* Queue a taken list of sent callbacks (loop thread). */
static void queue_taken(tide_loop *loop, struct tide__node *head)
{
    while (head) {
        struct tide__node *next = head->next;
        tide__ready_push(loop, head);
        loop->remote_unrun++;
        head = next;
    }
}

/* Move every sent callback to the ready queue (loop thread). */
void tide__remote_drain(tide_loop *loop)
{
    pthread_mutex_lock(&loop->remote_lock);
    struct tide__node *head = loop->remote_head;
    loop->remote_head = loop->remote_tail = NULL;
    atomic_store_explicit(&loop->remote_pending, false, memory_order_relaxed);
    pthread_mutex_unlock(&loop->remote_lock);
    if (head) {
        loop->remote_batches++;
        loop->remote_last = tide__clock_ns();
    }
    queue_taken(loop, head);
}

int tide__remote_open(tide_loop *loop)
{
    return -pthread_mutex_init(&loop->remote_lock, NULL);
}

/* Closing has begun: refuse further sends (-ESHUTDOWN) and queue every
 * send accepted so far, in one hold of the lock, so that no send can be
 * accepted and then left behind. The caller runs the loop until
 * loop->remote_unrun is zero. */
void tide__remote_refuse(tide_loop *loop)
{
    pthread_mutex_lock(&loop->remote_lock);
    loop->remote_closed = true;
    struct tide__node *head = loop->remote_head;
    loop->remote_head = loop->remote_tail = NULL;
    atomic_store_explicit(&loop->remote_pending, false, memory_order_relaxed);
    pthread_mutex_unlock(&loop->remote_lock);
    queue_taken(loop, head);
}
