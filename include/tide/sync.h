/* tide/sync.h: synchronization primitives and queues (asyncio's Lock,
 * Event, Condition, Semaphore, BoundedSemaphore, Barrier, Queue,
 * LifoQueue and PriorityQueue).
 *
 * Included by tide.h; may also be included on its own after it.
 *
 * Common rules:
 * - A primitive is not bound to a loop: any task of the thread that made
 *   it may use it (one thread only; none of this is thread-safe).
 * - Waits are FIFO and cost no allocation: the waiter lives on the
 *   waiting task's stack. Whatever a primitive grants (a lock, a permit,
 *   an item, a free slot) is handed to the first waiter directly, so a
 *   newcomer never barges ahead of tasks already waiting.
 * - A call that would have to wait returns -EPERM outside a task; one
 *   whose result is already there (a free lock, a set event, an item in
 *   the queue) succeeds anywhere, callbacks included. Releasing,
 *   setting, notifying and putting without waiting never suspend.
 * - Cancellation: a task cancelled while waiting gets -ECANCELED and
 *   nothing happened (no lock, no permit, no item taken or put). If the
 *   wait had just been granted when the cancellation came (both in the
 *   same loop step), the grant is passed on to the next waiter (or given
 *   back), so nothing is lost and nobody hangs.
 * - NULL arguments return -EINVAL (false, 0 for the queries); nothing
 *   aborts.
 * - Freeing a primitive that tasks still wait on is misuse, yet safe: the
 *   waiters (and those granted something who have not run yet) return
 *   -EBADF and never touch it again.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_SYNC_H
#define TIDE_SYNC_H

#include <tide.h>

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tide_lock tide_lock;           /* opaque */
typedef struct tide_event tide_event;         /* opaque */
typedef struct tide_condition tide_condition; /* opaque */
typedef struct tide_semaphore tide_semaphore; /* opaque */
typedef struct tide_barrier tide_barrier;     /* opaque */
typedef struct tide_queue tide_queue;         /* opaque */

/* ---- Lock -----------------------------------------------------------
 * asyncio.Lock: a mutual-exclusion lock with no owner (any task or
 * callback may release it). Strictly FIFO: release hands the lock to the
 * first waiter, which holds it from then on; locked() stays true across
 * the hand-off. */

/* A new unlocked lock. NULL and errno (ENOMEM). Free with tide_lock_free. */
TIDE_API tide_lock *tide_lock_new(void);

/* Free the lock. Waiters are woken with -EBADF (misuse, see the top of
 * this file). NULL is ignored. */
TIDE_API void tide_lock_free(tide_lock *lock);

/* Name the lock for task dumps and deadlock reports ("lock 'name'"
 * instead of its address). Copies name. Returns 0; -EINVAL if lock or
 * name is NULL; -ENOMEM (the old name stays). Never suspends. */
TIDE_API int tide_lock_set_name(tide_lock *lock, const char *name);

/* Acquire the lock, waiting in FIFO order while it is held. Returns 0
 * (the caller holds it); -ECANCELED if cancelled while waiting (the lock
 * is not held, and one granted at the same moment goes to the next
 * waiter); -EPERM outside a task when the lock is held; -EINVAL if lock
 * is NULL; -EBADF if the lock was freed meanwhile. Suspends if held. */
TIDE_API int tide_lock_acquire(tide_lock *lock);

/* Release the lock: the first waiter (if any) now holds it and is
 * queued to run. Returns 0; -EINVAL if lock is NULL or not locked.
 * Never suspends; callable from anywhere on the thread. */
TIDE_API int tide_lock_release(tide_lock *lock);

/* True if the lock is held (false if NULL). */
TIDE_API bool tide_lock_locked(const tide_lock *lock);

/* ---- Event ----------------------------------------------------------
 * asyncio.Event: a flag tasks can wait for. */

/* A new event, not set. NULL and errno (ENOMEM). */
TIDE_API tide_event *tide_event_new(void);

/* Free the event; waiters are woken with -EBADF. NULL is ignored. */
TIDE_API void tide_event_free(tide_event *ev);

/* Name the event for task dumps and deadlock reports ("event 'name'"
 * instead of its address). Copies name. Returns 0; -EINVAL if ev or
 * name is NULL; -ENOMEM (the old name stays). Never suspends. */
TIDE_API int tide_event_set_name(tide_event *ev, const char *name);

/* Set the flag and wake every waiter (they are queued to run; nothing
 * runs inside this call). Setting a set event does nothing. Allocates
 * nothing. Returns 0; -EINVAL if ev is NULL. */
TIDE_API int tide_event_set(tide_event *ev);

/* Clear the flag. Tasks already woken by a set still return 0. Returns
 * 0; -EINVAL if ev is NULL. */
TIDE_API int tide_event_clear(tide_event *ev);

/* True if the flag is set (false if NULL). */
TIDE_API bool tide_event_is_set(const tide_event *ev);

/* Wait until the flag is set. Returns 0 (at once if it is set);
 * -ECANCELED; -EPERM outside a task when not set; -EINVAL if ev is NULL;
 * -EBADF if the event was freed meanwhile. Suspends unless set. */
TIDE_API int tide_event_wait(tide_event *ev);

/* ---- Condition ------------------------------------------------------
 * asyncio.Condition: a lock plus a FIFO of tasks waiting to be notified.
 * wait() always returns with the lock held, whatever the outcome (even
 * -ECANCELED): cancellation while re-acquiring is remembered and the
 * re-acquisition is retried, so a cancelled wait never returns without
 * the lock. A notification given to a waiter that is cancelled before it
 * runs is passed on to the next waiter, never lost (CPython #112202).
 * Spurious wake-ups do not happen otherwise, but the wait_for loop is the
 * robust pattern. */

/* A new condition on `lock` (borrowed: it must outlive the condition),
 * or on a lock of its own if lock is NULL. NULL and errno (ENOMEM). */
TIDE_API tide_condition *tide_condition_new(tide_lock *lock);

/* Free the condition (and its own lock, not a borrowed one). Waiters
 * are woken with -EBADF (misuse). NULL is ignored. */
TIDE_API void tide_condition_free(tide_condition *cond);

/* Name the condition for task dumps and deadlock reports ("condition 'name'"
 * instead of its address). Copies name. Returns 0; -EINVAL if cond or
 * name is NULL; -ENOMEM (the old name stays). Never suspends. */
TIDE_API int tide_condition_set_name(tide_condition *cond, const char *name);

/* tide_lock_acquire / _release / _locked on the condition's lock. */
TIDE_API int tide_condition_acquire(tide_condition *cond);
TIDE_API int tide_condition_release(tide_condition *cond);
TIDE_API bool tide_condition_locked(const tide_condition *cond);

/* Release the lock, wait to be notified, re-acquire the lock. The lock
 * must be held (by the caller: the lock has no owner to check). Returns
 * 0 when notified; -ECANCELED if cancelled (before or after the
 * notification, or while re-acquiring); in both cases the lock is held
 * again on return. Errors that change nothing: -EINVAL (cond NULL, lock
 * not held), -EPERM (outside a task). -EBADF if the condition or its
 * lock was freed meanwhile (the lock is then not held). Suspends. */
TIDE_API int tide_condition_wait(tide_condition *cond);

/* Wait until pred(arg) is true: while it is false, tide_condition_wait.
 * The lock must be held; pred is called with it held. Returns 0 once
 * pred is true (at once, without suspending, if it already is, even
 * outside a task); otherwise the first error of tide_condition_wait (the
 * lock is held again, as there). -EINVAL if cond or pred is NULL or the
 * lock is not held. Suspends. */
TIDE_API int tide_condition_wait_for(tide_condition *cond,
                                     bool (*pred)(void *arg), void *arg);

/* Wake up to n waiters, in FIFO order (each re-acquires the lock before
 * its wait returns). The lock must be held. Returns how many were woken
 * (capped at INT_MAX); -EINVAL if cond is NULL or the lock is not held.
 * Never suspends. */
TIDE_API int tide_condition_notify(tide_condition *cond, size_t n);

/* tide_condition_notify for every waiter. */
TIDE_API int tide_condition_notify_all(tide_condition *cond);

/* ---- Semaphore ------------------------------------------------------
 * asyncio.Semaphore and BoundedSemaphore: a counter of permits. Release
 * hands a permit straight to the first waiter (the value does not go up
 * then), so the value is never negative, a newcomer never takes a permit
 * a waiter was promised, and a waiter cancelled just after being granted
 * one passes it on to the next waiter: a cancellation neither loses a
 * permit (leaving the others waiting forever) nor lets two tasks take
 * the same one. */

/* A semaphore with `value` permits. NULL and errno (ENOMEM). */
TIDE_API tide_semaphore *tide_semaphore_new(unsigned value);

/* A bounded semaphore: release never raises the value above `value`. */
TIDE_API tide_semaphore *tide_bounded_semaphore_new(unsigned value);

/* Free the semaphore; waiters are woken with -EBADF. NULL is ignored. */
TIDE_API void tide_semaphore_free(tide_semaphore *sem);

/* Name the semaphore for task dumps and deadlock reports ("semaphore 'name'"
 * instead of its address). Copies name. Returns 0; -EINVAL if sem or
 * name is NULL; -ENOMEM (the old name stays). Never suspends. */
TIDE_API int tide_semaphore_set_name(tide_semaphore *sem, const char *name);

/* Take a permit, waiting in FIFO order while there is none, or while a
 * woken waiter has not run yet (asyncio 3.13: it goes first, even before
 * a task that releases and re-acquires). Returns 0; -ECANCELED (no permit
 * taken); -EPERM outside a task when it would wait; -EINVAL if sem is
 * NULL; -EBADF if freed meanwhile. Suspends if locked. */
TIDE_API int tide_semaphore_acquire(tide_semaphore *sem);

/* Give a permit back: to the first waiter if there is one, else the
 * value goes up. Returns 0; -EOVERFLOW if the semaphore is bounded and
 * its value is already the initial value, or the value is UINT_MAX
 * (nothing changes); -EINVAL if sem is NULL. Never suspends. */
TIDE_API int tide_semaphore_release(tide_semaphore *sem);

/* True if an acquire would have to wait (the value is 0, or a woken
 * waiter has yet to run); false if NULL. */
TIDE_API bool tide_semaphore_locked(const tide_semaphore *sem);

/* The number of permits available now (0 if NULL). */
TIDE_API unsigned tide_semaphore_value(const tide_semaphore *sem);

/* ---- Barrier --------------------------------------------------------
 * asyncio.Barrier: `parties` tasks wait until all have arrived, then all
 * go on. States as in asyncio: filling (parties arriving), draining (the
 * released parties leaving; newcomers wait for the next cycle), resetting
 * and broken. A broken barrier makes every wait fail with -EPIPE until
 * tide_barrier_reset. Differences from asyncio, both deliberate:
 * - a party cancelled while waiting for the others breaks the barrier
 *   (threading.Barrier does so on a timeout): the waiting parties get
 *   -EPIPE, the cancelled one -ECANCELED;
 * - a party released by the barrier keeps its success (0) even if the
 *   barrier is reset or aborted before that party runs. */

/* A barrier for `parties` tasks. NULL and errno: EINVAL if parties is 0,
 * ENOMEM. */
TIDE_API tide_barrier *tide_barrier_new(unsigned parties);

/* Free the barrier; waiters are woken with -EBADF. NULL is ignored. */
TIDE_API void tide_barrier_free(tide_barrier *b);

/* Name the barrier for task dumps and deadlock reports ("barrier 'name'"
 * instead of its address). Copies name. Returns 0; -EINVAL if b or
 * name is NULL; -ENOMEM (the old name stays). Never suspends. */
TIDE_API int tide_barrier_set_name(tide_barrier *b, const char *name);

/* Arrive and wait for the other parties (waiting first, while the
 * barrier drains or resets, for the next cycle). Returns 0 and stores
 * the arrival index (0 for the first to arrive, parties - 1 for the
 * last, which does not wait) in *index if index is not NULL. Errors:
 * -EPIPE if the barrier is broken, aborted while waiting, reset while
 * waiting, or another party was cancelled; -ECANCELED (see above);
 * -EPERM outside a task unless the caller is the last party; -EINVAL if
 * b is NULL; -EBADF if freed meanwhile. Suspends unless last. */
TIDE_API int tide_barrier_wait(tide_barrier *b, unsigned *index);

/* Return the barrier to its empty filling state; parties waiting now get
 * -EPIPE (the barrier is resetting until they have left, then filling).
 * Returns 0; -EINVAL if b is NULL. Never suspends. */
TIDE_API int tide_barrier_reset(tide_barrier *b);

/* Break the barrier: waiting parties and every later wait get -EPIPE
 * until tide_barrier_reset. Returns 0; -EINVAL if b is NULL. */
TIDE_API int tide_barrier_abort(tide_barrier *b);

/* The number of parties (0 if NULL). */
TIDE_API unsigned tide_barrier_parties(const tide_barrier *b);

/* Parties waiting in the filling state (0 while draining, or if NULL). */
TIDE_API unsigned tide_barrier_n_waiting(const tide_barrier *b);

/* True if the barrier is broken (false if NULL). */
TIDE_API bool tide_barrier_broken(const tide_barrier *b);

/* ---- Queues ---------------------------------------------------------
 * asyncio.Queue, LifoQueue and PriorityQueue of void * items, with
 * Python 3.13's shutdown. The queue borrows its items: it never frees
 * them, not even in tide_queue_free or an immediate shutdown.
 *
 * A put that finds a getter waiting hands it the item directly. Until
 * that getter runs the item still counts in size() (as in asyncio, where
 * it waits in the queue) but is promised to that getter: get_nowait does
 * not take it. Likewise a slot freed while putters wait is reserved for
 * the first of them: full() stays true meanwhile. If such a getter is
 * cancelled before it runs, its item goes back to the front of the queue
 * (the next get returns it); a putter cancelled so passes its slot on and
 * its item is not put. So a cancelled get never loses an item, a
 * cancelled put never duplicates one, and no other waiter is left
 * hanging by either. Items live in a ring buffer (a binary heap for a
 * priority queue) that grows by doubling, up to maxsize; steady state
 * allocates nothing. */

/* A FIFO queue holding at most `maxsize` items (0: unbounded). NULL and
 * errno (ENOMEM). Free with tide_queue_free. */
TIDE_API tide_queue *tide_queue_new(size_t maxsize);

/* A LIFO queue (a stack): get returns the item put last. */
TIDE_API tide_queue *tide_queue_new_lifo(size_t maxsize);

/* A priority queue: get returns the smallest item by cmp(a, b) (< 0 if
 * a comes first; a and b are the items themselves, as void *). Equal
 * items come out in the order they were put (an item given back by a
 * cancelled getter comes before its equals). NULL and errno: EINVAL if
 * cmp is NULL, ENOMEM. */
TIDE_API tide_queue *tide_queue_new_priority(size_t maxsize,
                                             int (*cmp)(const void *a,
                                                        const void *b));

/* Free the queue; its items are not freed (they are the caller's).
 * Waiters, and getters handed an item who have not run yet, are woken
 * with -EBADF (misuse). NULL is ignored. */
TIDE_API void tide_queue_free(tide_queue *q);

/* Name the queue for task dumps and deadlock reports ("queue 'name'"
 * instead of its address). Copies name. Returns 0; -EINVAL if q or
 * name is NULL; -ENOMEM (the old name stays). Never suspends. */
TIDE_API int tide_queue_set_name(tide_queue *q, const char *name);

/* Put an item, waiting in FIFO order while the queue is full. Returns 0;
 * -ESHUTDOWN if the queue is shut down (before or while waiting; the
 * item is not put); -ECANCELED (not put); -ENOMEM if the storage could
 * not grow (not put); -EPERM outside a task when full; -EINVAL if q is
 * NULL; -EBADF if freed meanwhile. Suspends if full. */
TIDE_API int tide_queue_put(tide_queue *q, void *item);

/* Put without waiting. Returns 0; -EAGAIN if full; -ESHUTDOWN; -ENOMEM;
 * -EINVAL if q is NULL. */
TIDE_API int tide_queue_put_nowait(tide_queue *q, void *item);

/* Take an item, waiting in FIFO order while there is none. Returns 0
 * with the item in *item; -ESHUTDOWN once the queue is shut down and
 * empty (at once for an immediate shutdown); -ECANCELED (nothing taken);
 * -EPERM outside a task when empty; -EINVAL if q or item is NULL; -EBADF
 * if freed meanwhile. Suspends if empty. */
TIDE_API int tide_queue_get(tide_queue *q, void **item);

/* Take without waiting. Returns 0 and the item; -EAGAIN if no item is
 * available (none, or all promised to getters that have not run yet);
 * -ESHUTDOWN if shut down and empty; -EINVAL if q or item is NULL. */
TIDE_API int tide_queue_get_nowait(tide_queue *q, void **item);

/* Items in the queue (0 if NULL), including those handed to a getter
 * that has not run yet. */
TIDE_API size_t tide_queue_size(const tide_queue *q);

/* True if size() is 0 (true if NULL). */
TIDE_API bool tide_queue_empty(const tide_queue *q);

/* True if a put would have to wait (false if unbounded or NULL). */
TIDE_API bool tide_queue_full(const tide_queue *q);

/* The maxsize given at creation (0: unbounded, or NULL). */
TIDE_API size_t tide_queue_maxsize(const tide_queue *q);

/* Tell the queue that an item gotten earlier has been processed. When
 * every item put has been processed, join waiters are released. Returns
 * 0; -EINVAL if q is NULL or called more times than items were gotten.
 * Never suspends. */
TIDE_API int tide_queue_task_done(tide_queue *q);

/* Wait until every item put has been gotten and marked done. Returns 0
 * (at once if so already); -ECANCELED; -EPERM outside a task if items
 * are unfinished; -EINVAL if q is NULL; -EBADF if freed meanwhile.
 * Suspends unless nothing is unfinished. */
TIDE_API int tide_queue_join(tide_queue *q);

/* Shut the queue down (Python 3.13): puts fail with -ESHUTDOWN from now
 * on, and waiting putters are woken with it. Graceful (immediate false):
 * gets still return the items left, then fail with -ESHUTDOWN; waiting
 * getters (the queue is empty) get it now. Immediate: the items left are
 * dropped (not freed; drain them with get_nowait first if they own
 * memory), each counted as done for join (which may release join
 * waiters), and every get fails with -ESHUTDOWN from now on. Returns 0;
 * -EINVAL if q is NULL. Shutting down twice is harmless. Never
 * suspends. */
TIDE_API int tide_queue_shutdown(tide_queue *q, bool immediate);

#ifdef __cplusplus
}
#endif
#endif /* TIDE_SYNC_H */
