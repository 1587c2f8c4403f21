/* call_soon_threadsafe: callbacks sent to a loop from other threads.
 *
 * Senders allocate a record, append it to loop->remote_* under
 * remote_lock, and write the loop's eventfd only when the list goes from
 * empty to non-empty (remote_pending false -> true), so a flood of sends
 * costs one wake-up. The loop clears the eventfd before it takes the list,
 * so a send that lands after the take always leaves the eventfd readable:
 * no wake-up is lost. Callbacks from one thread keep their order.
 *
 * Closing (HAZARDS B33): every send either is refused or runs. Refusing
 * and taking the list happen under one hold of remote_lock, so a send
 * that got in before is in the ready queue when close starts running the
 * loop, and close keeps running it until loop->remote_unrun, the count of
 * taken callbacks not yet run, is back to zero.
 * SPDX-License-Identifier: MIT
 */
#include "core/loop.h"

#include "base/alloc.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
    r->call.node.kind = TIDE__NODE_CALL;
    r->call.node.next = NULL;
    r->cb = cb;
    r->arg = arg;

    pthread_mutex_lock(&loop->remote_lock);
    if (loop->remote_closed) {
        pthread_mutex_unlock(&loop->remote_lock);
        tide__free(r);
        return -ESHUTDOWN;
    }
    if (loop->remote_tail)
        loop->remote_tail->next = &r->call.node;
    else
        loop->remote_head = &r->call.node;
    loop->remote_tail = &r->call.node;
    bool was = atomic_exchange_explicit(&loop->remote_pending, true,
                                        memory_order_release);
    /* Write under the lock: close() takes the lock before it closes the
     * fd, so the fd is still open here. */
    if (!was) {
        uint64_t one = 1;
        /* EAGAIN: the counter is already nonzero, the loop wakes. EINTR
         * cannot happen on a nonblocking eventfd; were it to, the wake-up
         * would be lost (later senders see remote_pending): retry. */
        while (write(loop->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    pthread_mutex_unlock(&loop->remote_lock);
    return 0;
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
    uint64_t v;

    /* Clear before taking (EAGAIN: already clear). */
    while (read(loop->wake_fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&loop->remote_lock);
    struct tide__node *head = loop->remote_head;
    loop->remote_head = loop->remote_tail = NULL;
    atomic_store_explicit(&loop->remote_pending, false, memory_order_relaxed);
    pthread_mutex_unlock(&loop->remote_lock);
    queue_taken(loop, head);
}

static void on_wake(struct tide__io *io, uint32_t revents)
{
    tide_loop *loop = tide__container_of(io, tide_loop, wake_io);

    (void)revents;
    tide__remote_drain(loop);
}

int tide__remote_open(tide_loop *loop)
{
    int err = pthread_mutex_init(&loop->remote_lock, NULL);

    if (err)
        return -err;
    loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wake_fd < 0) {
        err = -errno;
        pthread_mutex_destroy(&loop->remote_lock);
        return err;
    }
    loop->wake_io.fd = loop->wake_fd;
    loop->wake_io.events = 0;
    loop->wake_io.slot = 0;
    loop->wake_io.ready = on_wake;
    err = loop->poller.ops->watch(&loop->poller, &loop->wake_io,
                                  TIDE__IO_READ);
    if (err < 0) {
        close(loop->wake_fd);
        pthread_mutex_destroy(&loop->remote_lock);
    }
    return err;
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

/* Stop watching the wake fd and close it. Nothing can be left in the
 * list: tide__remote_refuse took it and refused every later send. */
void tide__remote_close(tide_loop *loop)
{
    loop->poller.ops->watch(&loop->poller, &loop->wake_io, 0);
    close(loop->wake_fd);
    loop->wake_fd = -1;
    /* remote_lock lives until the loop record is freed: a late sender
     * still finds remote_closed set and gets -ESHUTDOWN. */
}
