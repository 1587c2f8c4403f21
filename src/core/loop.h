/* The loop core's internal contract: the loop record, coroutines, the
 * ready queue, suspension and wake-up (the clock and timers: timer.h).
 *
 * A coroutine (struct tide__coro) is what the loop schedules; the task
 * layer builds tasks on it. A coroutine suspends with tide__suspend(),
 * naming what it waits on (a struct tide__wait, usually on its own stack,
 * whose cancel hook delivers a cancellation request); whoever completes
 * the wait calls tide__wake(), which only queues the coroutine: nothing is
 * ever resumed inside the call that wakes it.
 *
 * Scheduling: an iteration reads the clock, moves expired timers to the
 * ready queue, then runs the entries that were ready when it began (the
 * batch). A coroutine that suspends hands off directly to the next
 * coroutine of the batch, without a detour through the loop's own
 * context; the context running the iteration (loop->sched) is resumed only
 * when the batch ends or the next entry is a callback. run_until_complete
 * called from a task or callback runs iterations on that stack (nesting):
 * loop->sched then points at the nested context.
 *
 * The core's files, each calling only those before it: pools.c (the
 * loop's stacks), compact.c (compact coroutines), coro.c (coroutines and
 * hand-offs), remote.c (call_soon_threadsafe), signal.c (signals, the
 * process's registry: signal.h), deadlock.c (what tasks
 * wait on, whether anything can wake the loop), timer.c (the clock and
 * timers, timer.h), waitq.c (the wait queue, waitq.h), debug.c (debug
 * mode), handle.c (call_soon/call_later/call_at), sched.c (iterations),
 * loop.c (the loop record), default.c (this thread's loops); errors.c
 * stands alone. Only two kinds of call go back: into default.c, for a
 * public function's NULL loop (tide__loop_resolve, which may make one)
 * and a closing loop (tide__default_forget); and into debug mode, through
 * the hooks it sets (loop->debug). The declarations below are grouped by
 * the file that defines them.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_CORE_LOOP_H
#define TIDE_CORE_LOOP_H

#include "tide.h"

#include "base/alloc.h"
#include "base/heap.h"
#include "base/list.h"
#include "poll/backend.h"
#include "stack/stack.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* ---- ready-queue entries ---------------------------------------------- */

/* What a tide__node in the ready queue stands for. */
enum tide__node_kind {
    TIDE__NODE_CORO,      /* a coroutine to resume (struct tide__coro) */
    TIDE__NODE_CALL,      /* a callback to run (struct tide__call) */
    TIDE__NODE_CORE_KINDS /* the future layer's kinds follow (future.h) */
};

/* A callback in the ready queue. run() either runs it (cancel false) or
 * only releases what it holds (cancel true: the loop is closing). */
struct tide__call {
    struct tide__node node; /* kind TIDE__NODE_CALL while queued */
    void (*run)(tide_loop *loop, struct tide__call *c, bool cancel);
};

/* ---- coroutines ------------------------------------------------------- */

enum tide__coro_state {
    TIDE__CORO_NEW,       /* created, never run, holds no stack */
    TIDE__CORO_RUNNING,   /* on the CPU (or hosting a nested run) */
    TIDE__CORO_SUSPENDED, /* in tide__suspend (maybe already queued) */
    TIDE__CORO_DONE,
};

struct tide__coro;
struct tide__wait;

/* What a kind of wait is, for task dumps and the deadlock check (debug.c,
 * deadlock.c): data that only a dump reads, so a wait costs the one store
 * of its kind. The object waited on is found from w itself (the struct
 * that embeds it: a queue waiter's queue, an await's future). */
struct tide__wait_kind {
    const char *what; /* "sleep", "await", "lock", ... */
    /* Say what w waits on, in full ("lock 'db' held by task 'b'"); NULL:
     * just `what`. Runs on the loop's thread, in a dump only. */
    void (*describe)(tide_loop *loop, const struct tide__wait *w, char *buf,
                     size_t n);
    /* Call fn on each coroutine that could end w, where that is known (a
     * lock's holder, an awaited task); NULL, or none called: nobody in
     * particular (an event anyone may set). A coroutine named here may
     * have ended: fn must check (tide__census_has). */
    void (*blockers)(tide_loop *loop, const struct tide__wait *w,
                     void (*fn)(struct tide__coro *co, void *arg), void *arg);
};

/* What a suspended coroutine waits on. cancel() delivers a cancellation
 * request: it wakes the coroutine with -ECANCELED, or forwards the request
 * (an await cancels the awaited future and keeps waiting). */
struct tide__wait {
    void (*cancel)(tide_loop *loop, struct tide__wait *w);
    const struct tide__wait_kind *kind; /* for task dumps */
};

struct tide__coro_ops {
    /* Runs on the coroutine's own stack; returning ends the coroutine. */
    void (*body)(struct tide__coro *co);
    /* Called off the coroutine's stack once it is over: err is 0 after
     * body returned, or why it never started (-ECANCELED, -ENOMEM). Drops
     * whatever the loop held for it. */
    void (*finish)(tide_loop *loop, struct tide__coro *co, int err);
    /* Name it for debug reports and dumps ("task 'x' (created at f:l)").
     * Async-signal-safe: the watchdog's signal handler calls it on the
     * coroutine running under it. */
    void (*describe)(struct tide__coro *co, char *buf, size_t n);
    /* Its short name for wait-for graphs ("task 'x'"), same rules. */
    void (*name)(struct tide__coro *co, char *buf, size_t n);
    /* A counted cancel request (tide_future_cancel on its task), as
     * tide_loop_close makes on every round. */
    void (*cancel)(tide_loop *loop, struct tide__coro *co);
};

/* co->pool of a compact coroutine (see compact.c): it runs on the loop's
 * shared stack, and its frames are copied away while another compact
 * coroutine runs there. */
#define TIDE__POOL_COMPACT 0xFF

struct tide__saved;    /* compact.c */
struct tide__watchers; /* io/watch.c */
struct tide__sigrec;   /* signal.c */
struct tide__reaper;   /* io/process.c */
struct tide__sigwatch; /* signal.c */

/* Kept small: a million of these may be alive. The loop finds every
 * unfinished coroutine without a list of them: one that has not started
 * is in the ready queue, one that has started owns a stack (a compact one
 * is on the shared stack or has its frames saved). */
struct tide__coro {
    struct tide__node node;    /* ready-queue link, kind TIDE__NODE_CORO */
    struct tide__fiber fiber;  /* saved context while not running */
    struct tide__stack *stack; /* NULL until it starts */
    struct tide__wait *wait;   /* what it is suspended on, else NULL */
    struct tide__saved *saved; /* compact: its frames, once copied away */
    int16_t wake_err;          /* what tide__suspend returns (an errno) */
    uint8_t state;             /* enum tide__coro_state */
    uint8_t pool;              /* index into loop->pools, or COMPACT */
    bool queued;               /* in the ready queue now */
    bool must_cancel;          /* a cancel request not yet delivered */
    bool in_cancel;            /* its wait's cancel hook is running */
};

/* A record that holds references to itself (or to futures) until a future
 * of the loop completes: a gather's self-reference, a shield's link. A
 * plain future may never complete, so tide_loop_close, once every task
 * has finished, calls drop() on each still listed: it unlinks the record
 * from the futures it waits on and lets go of what it holds. The record
 * takes itself off the list when it no longer needs it. */
struct tide__linger {
    struct tide__list link; /* loop->lingering */
    void (*drop)(struct tide__linger *l);
};

/* ---- handles (call_soon / call_later / call_at) ------------------------ */

struct tide__handle {
    struct tide__call call;
    struct tide__timer timer; /* armed for call_later/call_at */
    tide_callback cb;
    void *arg;
    uint32_t gen;   /* bumped on every reuse: stale ids miss */
    uint32_t index; /* slot in loop->handle_chunks */
    uint8_t state;  /* handle.c: FREE, PENDING, CANCELLED */
    struct tide__handle *next_free;
};

#define TIDE__HANDLE_CHUNK 256
#define TIDE__MAX_POOLS 8

/* ---- I/O operation slots (opslot.c) ------------------------------------
 * Every op handed to the backend lives in one of these loop-owned slots
 * (chunked, so a slot never moves; a free list, so steady state allocates
 * nothing), never in a task's frames: a compact task's frames are copied
 * away while it is suspended. op.token is the slot's index and its
 * generation (bumped at every free), and a completion reaches the slot
 * only if its token still matches (a completion for a freed or reused
 * slot is dropped and counted in loop->ops_stale). */

enum tide__opslot_state {
    TIDE__OPSLOT_FREE,
    TIDE__OPSLOT_IDLE,     /* allocated, not in flight */
    TIDE__OPSLOT_INFLIGHT, /* submitted; complete() runs at its completion */
    TIDE__OPSLOT_DROPPED,  /* in flight, owner gone: freed at completion */
};

struct tide__opslot {
    struct tide__op op;     /* what the backend sees */
    struct tide__wait wait; /* a task waiting on it (the I/O layer) */
    const char *what;       /* its call, for dumps ("sock recv") */
    /* Called once at the op's completion (op.result set), from the loop's
     * dispatch or inside tide__op_cancel: wakes or queues, runs no user
     * code. */
    void (*complete)(tide_loop *loop, struct tide__opslot *s);
    void *owner; /* complete's: a coroutine, a watcher */
    struct tide__opslot *next_free;
    uint8_t state;  /* enum tide__opslot_state */
    bool cancelled; /* tide__op_cancel was asked */
};

#define TIDE__OP_CHUNK 256

/* A fresh slot, IDLE, its op zeroed but for the token (and fd -1,
 * offset -1); NULL if a chunk cannot be allocated (ENOMEM). */
struct tide__opslot *tide__op_new(tide_loop *loop);

/* Hand s->op to the backend. 1: done inline (s->op.result; s stays
 * IDLE); 0: in flight, s->complete runs at its completion; -errno:
 * refused, s stays IDLE. */
int tide__op_submit(tide_loop *loop, struct tide__opslot *s);

/* Ask for an early end of in-flight s (once; later calls do nothing).
 * complete() still runs exactly once, maybe inside this call, with
 * -ECANCELED or the real result if the op raced to its end. */
void tide__op_cancel(tide_loop *loop, struct tide__opslot *s);

/* Give back an IDLE slot. */
void tide__op_free(tide_loop *loop, struct tide__opslot *s);

/* The owner is done with s: free it now if idle; if in flight, cancel it
 * and free it at its completion, without calling complete(). */
void tide__op_drop(tide_loop *loop, struct tide__opslot *s);

/* Hand completions to their slots (stale ones are dropped). */
void tide__op_dispatch(tide_loop *loop, const struct tide__completion *c,
                       int n);

/* Wait up to timeout_ns (-1: no limit) for completions and dispatch
 * them. */
void tide__loop_poll(tide_loop *loop, int64_t timeout_ns);

/* The calling thread cannot drive loop's backend (its io_uring ring is
 * bound to the thread that first used it: SINGLE_ISSUER): the runs and
 * close refuse with -EXDEV, nothing done. */
bool tide__loop_foreign(tide_loop *loop);

/* Free every slot (the loop is closing, the backend already closed). */
void tide__ops_destroy(tide_loop *loop);

/* ---- the loop --------------------------------------------------------- */

struct tide__debug_hooks; /* debug.c's, below */

struct tide_loop {
    struct tide__fifo ready;        /* nodes of kind CORO or CALL, FIFO */
    size_t ntodo;                   /* entries of the current batch left */
    unsigned extend;                /* hand-offs the batch may still grow by */
    const bool *run_done;           /* the innermost run's end flag, or NULL */
    struct tide__coro *eager_co;    /* running eagerly: its first suspension */
    struct tide__fiber *eager_back; /* returns here, to its creator */
    struct tide__stack *eager_back_stack;
    struct tide__coro *current; /* coroutine on the CPU, or NULL */
    struct tide__fiber *sched;  /* context running the current iteration */
    struct tide__stack *sched_stack; /* its stack (NULL: the thread's) */
    struct tide__coro *sched_owner;  /* coroutine hosting it, or NULL */
    struct tide__coro *zombie;       /* finished, its stack not yet released */
    struct tide__heap timers;
    int64_t now; /* ns, read once per iteration */
    uint64_t iterations;
    unsigned busy_iterations; /* iterations since the last poll */
    /* The I/O calls of the task now running in this turn (io/op.c's
     * budget, HAZARDS B44): whose turn, in which iteration, how many. */
    struct tide__coro *io_turn_co;
    uint64_t io_turn_iteration;
    unsigned io_turn_calls;

    const struct tide__coro_ops *coro_ops; /* the task layer's */
    size_t ncoros;                         /* unfinished coroutines */
    size_t default_stack;                  /* usable bytes for new tasks */
    int default_pool; /* its pool's index, -1: not looked up */
    struct tide__stack_pool pools[TIDE__MAX_POOLS]; /* one per stack size */
    unsigned npools;
    int64_t next_trim; /* earliest loop time to trim the pools */

    /* compact coroutines (compact.c) */
    struct tide__stack *compact_stack;   /* theirs, from the default pool */
    unsigned compact_pool;               /* which pool it came from */
    struct tide__coro *compact_occupant; /* whose frames are on it now */
    struct tide__coro *detour;           /* taken from the batch, to be
                                          * switched to by loop->sched */
    struct tide__list compact_saved;     /* tide__saved of every one */
    bool compact_default;                /* tide_loop_set_compact_tasks */

    struct tide__backend backend;
    /* I/O op slots (opslot.c) */
    struct tide__opslot *
        *op_chunks; /* TIDE__OP_CHUNK slots each, never move */
    uint32_t op_nchunks;
    struct tide__opslot *free_ops;
    size_t ops_live;                 /* slots not free */
    uint64_t ops_stale;              /* completions dropped by their token */
    struct tide__watchers *watchers; /* reader/writer callbacks (io/watch.c) */
    struct tide__list thread_link;   /* tide__thread_loops() of its maker */
    struct tide__list lingering;     /* struct tide__linger */

    struct tide__handle **handle_chunks;
    uint32_t nchunks;
    struct tide__handle *free_handles;
    size_t live_handles;

    /* call_soon_threadsafe: other threads append under remote_lock and
     * wake the backend; the loop swaps the list out under the lock. */
    pthread_mutex_t remote_lock;
    struct tide__node *remote_head, *remote_tail; /* tide__call nodes */
    atomic_bool remote_pending;  /* release: the list was appended to */
    atomic_bool remote_spinning; /* the loop spins for remote_pending
                                  * (sched.c): a send need not wake it */
    bool remote_closed;          /* under remote_lock */
    size_t remote_unrun;         /* taken into the ready queue, not yet
                                  * run (loop thread only) */
    size_t remote_expected;      /* completions other threads will still
                                  * post: pool jobs in flight (loop
                                  * thread only); while some are, the
                                  * loop spins briefly before it blocks */
    uint64_t remote_batches;     /* drains that took the list in */
    int64_t remote_last;         /* loop->now at the last drain */
    struct tide__jobs *jobs;     /* thread-pool jobs (io/pool.c), or NULL */

    /* signals (src/core/signal.c) */
    struct tide__sigrec *sigrec;  /* its place in the registry, while it
                                   * has a watch; else NULL */
    struct tide__list sigwatches; /* struct tide__sigwatch.link */
    unsigned sig_handlers;        /* the program's (they may wake it) */
    struct tide__reaper *reaper;  /* io/process.c: its children tracked
                                   * by SIGCHLD (no pidfds), or NULL */

    unsigned depth;     /* runs in progress (nesting) */
    int64_t embed_wait; /* tide_loop_run_once, for its one
                         * iteration: poll, waiting at most this
                         * (ns; INT64_MAX: no limit); else -1 */
    bool stopping;
    bool closing;
    bool closed;
    bool virtual_clock;
    unsigned refs; /* 1 while open + 1 per live future */

    /* debug mode (src/core/debug.c) */
    const struct tide__debug_hooks *debug; /* NULL: debug mode is off */
    int64_t slow_ns;    /* a step longer than this is reported */
    int64_t step_start; /* when the running step began */
    void (*report)(tide_loop *loop, const char *msg, void *arg);
    void *report_arg;
    struct tide__sigwatch *dump_watch[2]; /* SIGUSR1, SIGQUIT (signal.h) */
    struct tide__watch *watch;    /* its watchdog slot (watchdog.c), or NULL */
    struct tide__list tracked;    /* futures made in debug mode, alive */
    struct tide__list quarantine; /* and freed, kept a while (track.c) */
    size_t nquarantined;
    struct tide__census *census;     /* live coroutines, during a dump only */
    struct tide__failures *failures; /* tasks' unread failures (deadlock.c) */
    bool deadlocked; /* the run ends with -EDEADLK (deadlock.c) */
    uint64_t next_task_id;
};

/* ---- the loop record (loop.c) ------------------------------------------ */

/* A future keeps its loop's record (not its resources) alive. */
static inline void tide__loop_ref(tide_loop *loop)
{
    loop->refs++;
}
void tide__loop_unref(tide_loop *loop);

/* ---- this thread's loops (default.c) ----------------------------------- */

/* This thread's default loop if one is set; never makes one. */
tide_loop *tide__default_loop(void);

/* loop, or tide_get_event_loop() if loop is NULL (which may make one:
 * the public functions' NULL loop, the one call into default.c from the
 * files that loop.c itself calls). */
tide_loop *tide__loop_resolve(tide_loop *loop);

/* loop is closing: it is no longer this thread's default or owned loop. */
void tide__default_forget(tide_loop *loop);

/* The open loops made on this thread (tide_loop.thread_link), oldest
 * first: what tide_close tells about the fd outside a running loop. */
struct tide__list *tide__thread_loops(void);

/* ---- the loop's stacks (pools.c) --------------------------------------- */

/* A new loop's stack settings; its pools are made on first use. */
void tide__pools_init(tide_loop *loop);

/* The loop is closing: unmap every pooled stack. */
void tide__pools_close(tide_loop *loop);

/* The index of the pool for stacks of `size` usable bytes (0: the loop's
 * default); -EINVAL if the size is out of range. */
int tide__loop_pool(tide_loop *loop, size_t size);

/* The loop is about to wait: unmap pooled stacks beyond what it may soon
 * need again (at least TIDE__POOL_KEEP per pool, and as many as are in
 * use), at most once a second. */
#define TIDE__POOL_KEEP 256
void tide__loop_trim(tide_loop *loop);

/* ---- compact coroutines (compact.c) ----------------------------------- */

/* Put compact co's frames on the shared stack, first saving those of the
 * coroutine there now (which must be suspended). Called off the shared
 * stack. A coroutine that has not started only gets the stack: the caller
 * makes its first frame. 0, or -ENOMEM with nothing changed. */
int tide__compact_enter(tide_loop *loop, struct tide__coro *co);

/* Compact co is over: drop its saved frames. */
void tide__compact_forget(tide_loop *loop, struct tide__coro *co);

/* Bytes of live frames of suspended compact co (0 if running or new). */
size_t tide__compact_frames(tide_loop *loop, struct tide__coro *co);

/* Call fn on every started, unfinished compact coroutine. */
void tide__compact_each(tide_loop *loop,
                        void (*fn)(tide_loop *loop, struct tide__coro *co,
                                   void *arg),
                        void *arg);

/* The loop is closing (no compact coroutine is left): return the shared
 * stack to its pool. */
void tide__compact_close(tide_loop *loop);

/* ---- coroutines and hand-offs (coro.c) --------------------------------- */

/* The innermost loop running on this thread, or NULL. */
extern _Thread_local tide_loop *tide__running
    __attribute__((tls_model("initial-exec")));

/* The loop whose task is running now (its coroutine is on the CPU), or
 * NULL outside any task: in a callback, or outside every loop. */
static inline tide_loop *tide__task_loop(void)
{
    tide_loop *loop = tide__running;

    return loop && loop->current ? loop : NULL;
}

/* Whether the caller may wait on something of `loop`: 0 in a task of
 * loop; -EPERM outside any task; -EINVAL in a task of another loop. */
static inline int tide__in_task_of(const tide_loop *loop)
{
    tide_loop *running = tide__task_loop();

    return !running ? -EPERM : running == loop ? 0 : -EINVAL;
}

static inline void tide__ready_push(tide_loop *loop, struct tide__node *n)
{
    tide__fifo_push(&loop->ready, n);
}

static inline void tide__call_schedule(tide_loop *loop, struct tide__call *c)
{
    c->node.kind = TIDE__NODE_CALL;
    tide__fifo_push(&loop->ready, &c->node);
}

/* Register a new coroutine whose stack comes from loop->pools[pool]. It
 * starts on a later step, or at once if eager (tide__coro_run_eagerly).
 * Every coroutine of a loop has the same ops. */
void tide__coro_start(tide_loop *loop, struct tide__coro *co,
                      const struct tide__coro_ops *ops, unsigned pool,
                      bool eager);

/* Call fn on every unfinished coroutine: those not started (found in the
 * ready queue), then those started (found through their stacks). fn may
 * wake coroutines but not start or end them. */
void tide__loop_each_coro(tide_loop *loop,
                          void (*fn)(tide_loop *loop, struct tide__coro *co,
                                     void *arg),
                          void *arg);

/* Run a just-created coroutine at once, until its first suspension (or
 * its end), then come back here (asyncio's eager tasks). Only inside a
 * running loop; elsewhere the coroutine simply stays scheduled. */
void tide__coro_run_eagerly(tide_loop *loop, struct tide__coro *co);

/* Switch from the loop's context (loop->sched) to co, just taken from the
 * ready queue, starting it if it is new; back when the batch comes back
 * to the loop's context. A compact coroutine that hands off to another
 * through the loop's context (loop->detour) is followed here. */
void tide__coro_resume(tide_loop *loop, struct tide__coro *co);

/* Whether `co` runs on the shared stack, where no compact coroutine but
 * the occupant can be switched to: a copy must run elsewhere. */
static inline bool tide__on_shared_stack(const struct tide__coro *co)
{
    return co && co->pool == TIDE__POOL_COMPACT;
}

/* Leave the running coroutine `self` (dying: for good): hand off to the
 * next coroutine of the batch if there is one, else return to the loop's
 * context. */
void tide__switch_away(tide_loop *loop, struct tide__coro *self, bool dying);

/* Release the stack of loop->zombie, the coroutine that finished just
 * before the switch that resumed the caller (if any), and finish it. Every
 * context that resumes after a switch calls it first. Inline: a sleep's
 * wake-up often follows a coroutine's end. */
static inline void tide__reap(tide_loop *loop)
{
    struct tide__coro *z = loop->zombie;

    if (z) {
        loop->zombie = NULL;
        tide__fiber_destroy(&z->fiber);
        if (z->pool == TIDE__POOL_COMPACT)
            tide__compact_forget(loop, z);
        else
            tide__stack_put(&loop->pools[z->pool], z->stack);
        z->stack = NULL;
        loop->coro_ops->finish(loop, z, 0);
    }
}

/* Whether the batch may grow by one more hand-off (its own entries are
 * used up): not past a stop (it zeroes extend), nor past the end of the
 * run, nor past a timer that is due (it must fire before anything that
 * became ready after it was due). */
static inline bool tide__may_extend(const tide_loop *loop)
{
    const struct tide__timer *t = tide__heap_min(&loop->timers);

    return loop->extend != 0 && !(loop->run_done && *loop->run_done) &&
           !(t && t->deadline <= loop->now);
}

/* The common case of leaving `self` (see tide__switch_away in coro.c):
 * the next ready entry is a started coroutine within the batch or its
 * extension, and no debug mode or eager start is in the way. Switches to
 * it and returns true once self is resumed; false (nothing done) if the
 * slow path must decide. Inline: it is the heart of every hand-off. */
static inline bool tide__handoff(tide_loop *loop, struct tide__coro *self,
                                 bool dying)
{
    struct tide__node *n = loop->ready.head;

    if (__builtin_expect(loop->debug || self == loop->eager_co, 0) || !n ||
        n->kind != TIDE__NODE_CORO)
        return false;
    if (loop->ntodo == 0 && !tide__may_extend(loop))
        return false;
    struct tide__coro *co = tide__container_of(n, struct tide__coro, node);
    if (co->state == TIDE__CORO_NEW ||
        (co->pool == TIDE__POOL_COMPACT && co != loop->compact_occupant))
        return false;
    if (loop->ntodo > 0)
        loop->ntodo--;
    else
        loop->extend--;
    tide__fifo_pop(&loop->ready);
    co->queued = false;
    co->state = TIDE__CORO_RUNNING;
    loop->current = co;
    tide__fiber_switch(&self->fiber, self->stack, &co->fiber, co->stack,
                       dying);
    return true;
}

/* Suspend the current coroutine until tide__wake. `w` (may be NULL for a
 * plain yield) receives cancellation requests meanwhile; one pending at
 * the call goes to it first. Returns the wake's err, or -ECANCELED if a
 * request arrived while it was queued. Inline: it is half of every
 * hand-off. */
static inline int tide__suspend(tide_loop *loop, struct tide__wait *w)
{
    struct tide__coro *self = loop->current;

    self->wait = w;
    self->wake_err = 0;
    self->state = TIDE__CORO_SUSPENDED;
    if (__builtin_expect(self->must_cancel, 0) && w) {
        /* Requested while running: deliver at this suspension point. */
        self->must_cancel = false;
        w->cancel(loop, w);
    }
    if (!tide__handoff(loop, self, false))
        tide__switch_away(loop, self, false);
    if (__builtin_expect(loop->zombie != NULL, 0))
        tide__reap(loop);
    int err = self->wake_err;
    if (__builtin_expect(self->must_cancel, 0) && err != -EBADF) {
        /* Requested while queued to resume: delivered here. A wait that
         * was satisfied meanwhile gives back what it was granted (a
         * lock, an item: HAZARDS B19). One woken with -EBADF (what it
         * waited on was freed) must say so, or its caller would touch
         * freed memory: the request stays pending for the next one. */
        self->must_cancel = false;
        err = -ECANCELED;
    }
    return err;
}

/* Queue a suspended coroutine to resume with `err`. Harmless if it is
 * already queued or not suspended. Inline: every hand-off pays for it. */
static inline void tide__wake(tide_loop *loop, struct tide__coro *co, int err)
{
    if (co->state != TIDE__CORO_SUSPENDED || co->queued)
        return;
    co->wait = NULL;
    co->wake_err = (int16_t)err;
    co->queued = true;
    tide__fifo_push(&loop->ready, &co->node);
}

/* Yield: requeue the current coroutine behind everything ready. Returns 0
 * or -ECANCELED. */
int tide__yield(tide_loop *loop);

/* Request cancellation of co (see tide__wait). False if co is done. */
bool tide__coro_cancel(tide_loop *loop, struct tide__coro *co);

/* Where the bookkeeping of a wait lives (its struct tide__wait and all
 * that others reach through it while the coroutine is suspended): the
 * waiting function's own frame, `local`, except in a compact coroutine,
 * whose frames are copied away while it is suspended; there it is
 * allocated, and NULL means -ENOMEM. Give it back with
 * tide__wait_frame_end once the wait is over. */
static inline bool tide__compact_running(const tide_loop *loop)
{
    return __builtin_expect(loop->current->pool == TIDE__POOL_COMPACT, 0);
}

static inline void *tide__wait_frame(tide_loop *loop, void *local, size_t size)
{
    return tide__compact_running(loop) ? tide__malloc(size) : local;
}

static inline void tide__wait_frame_end(void *frame, void *local)
{
    if (frame != local)
        tide__free(frame);
}

/* ---- iterations (sched.c) ---------------------------------------------- */

/* Run iterations until done(arg) is true (NULL: until stopped). Returns 0,
 * or -EINTR if tide_loop_stop ended it first. If done_flag is not NULL it
 * turns true exactly when done(arg) does, and is what the hot path reads
 * to stop extending a batch past the end of the run. */
int tide__loop_run(tide_loop *loop, bool (*done)(void *arg), void *arg,
                   const bool *done_flag);

/* How long the next iteration may wait for I/O, in ns: 0 if anything is
 * ready (or the run is stopping), the time left to the earliest timer
 * (its slack included: it fires then), or -1 if no timer will ever fire.
 * On the virtual clock 0 while a timer is armed: the iteration jumps to
 * it. What run_once waits and what tide_loop_backend_timeout reports. */
int64_t tide__loop_wait_ns(const tide_loop *loop);

/* A done() for tide__loop_run that ends it after one iteration: arg is a
 * bool, true at the call ("first"). */
bool tide__one_iteration(void *arg);

/* ---- call_soon_threadsafe (remote.c) ----------------------------------- */

/* Make the wake fd and watch it. 0 or -errno. */
int tide__remote_open(tide_loop *loop);

/* Move every sent callback to the ready queue (loop thread). */
void tide__remote_drain(tide_loop *loop);

/* Closing has begun: refuse further sends, queue those accepted. */
void tide__remote_refuse(tide_loop *loop);

/* Append c to the sent callbacks, waking the loop if the list was
 * empty; the caller holds loop->remote_lock. For records that other
 * threads post without an allocation (the thread pool's completions): it
 * does not check remote_closed (whoever posts knows the loop still takes
 * them: see io/pool.c), and c->run must decrement loop->remote_unrun
 * (every taken entry counts there until it has run). */
void tide__remote_post_locked(tide_loop *loop, struct tide__call *c);

/* ---- handles (handle.c) ------------------------------------------------ */

/* call_at with a deadline in loop ns (INT64_MAX: never fires). */
tide_handle tide__call_at_ns(tide_loop *loop, int64_t deadline,
                             tide_callback cb, void *arg);

/* Loop close: free the handle records. */
void tide__handles_destroy(tide_loop *loop);

/* ---- debug mode (debug.c) ---------------------------------------------- */

/* What the scheduler calls while debug mode is on (loop->debug): through
 * these pointers, so that debug.c, which walks the coroutines to report
 * on them, sits above the scheduler instead of beside it. */
struct tide__debug_hooks {
    void (*step_begin)(tide_loop *loop);
    /* A step ends: a coroutine's (co) or a callback's (c). */
    void (*step_end)(tide_loop *loop, struct tide__coro *co,
                     struct tide__call *c);
    /* The run would wait forever (no timer will fire): true if debug
     * mode found that nothing can wake the loop and reported it; the
     * run then ends with -EDEADLK (deadlock.c). */
    bool (*stuck)(tide_loop *loop);
};

void tide__debug_open(tide_loop *loop);   /* TIDE_DEBUG in the environment */
void tide__debug_close(tide_loop *loop);  /* report tasks still pending */
void tide__debug_forget(tide_loop *loop); /* drop its dump watches */
/* Report a compact task passing `arg`, a pointer into its own stack, to
 * `to` ("a new task", "a callback"): README, "Compact tasks". */
void tide__debug_check_arg(tide_loop *loop, const void *arg, const char *to);
/* Hand a debug report to the loop's report handler (stderr by default). */
void tide__loop_report(tide_loop *loop, const char *msg);

/* ---- debug mode's record of futures (track.c) -------------------------- */

/* Memory for a future record of `size` bytes made while its loop is in
 * debug mode, with a header in front that says `what` it is ("task")
 * and where it was made (file NULL: not known), and lists it on the
 * loop. describe names a live one in tide__track_report_live. NULL
 * (ENOMEM) on failure. */
void *tide__track_alloc(tide_loop *loop, size_t size, const char *what,
                        const char *file, int line,
                        void (*describe)(void *obj, char *buf, size_t n));
/* Free it: it waits in the quarantine, readable and marked freed, until
 * QUARANTINE more have been freed after it, or the loop record goes. */
void tide__track_free(tide_loop *loop, void *obj);
bool tide__track_freed(const void *obj);
/* What it was made as, and where; false if that is not known. Both are
 * plain reads (async-signal-safe). */
const char *tide__track_what(const void *obj);
bool tide__track_site(const void *obj, const char **file, int *line);
/* Report `call` ("tide_future_release") made on obj, already freed. */
void tide__track_report_freed(tide_loop *loop, const void *obj,
                              const char *call);
/* Report every one still alive (close, in debug mode). */
void tide__track_report_live(tide_loop *loop);
/* Free the quarantine (the loop record goes). */
void tide__track_flush(tide_loop *loop);
/* ---- hangs: what tasks wait on, deadlocks (deadlock.c) ------------------ */

/* Whether anything but the loop's own tasks may still wake it: ready
 * work, a pending or possible call_soon_threadsafe (another thread in the
 * process, tide's watchdog and pool threads aside, may send one), a pool
 * job in flight (remote_expected), an op in flight (which
 * includes every fd a task or a reader/writer callback watches), a
 * signal handler the program set (tide_add_signal_handler). Whatever
 * new may wake a loop (an executor, signals, child processes) must be
 * added here, or debug mode reports hangs that are not. */
bool tide__loop_external_pending(tide_loop *loop);

/* Whether co is unfinished, by the census a dump takes (false if there is
 * none, or it could not be taken). */
bool tide__census_has(tide_loop *loop, const struct tide__coro *co);

/* Write co's short name ("task 'x'") if it is unfinished; else what is
 * known of it: "task 'x', which failed with -EIO" if it failed and nobody
 * read the error, or "a task that has ended". */
void tide__coro_name(tide_loop *loop, struct tide__coro *co, char *buf,
                     size_t n);

/* Append printf-style to buf (n bytes, len used); returns the new length,
 * never past n - 1. */
size_t tide__appendf(char *buf, size_t n, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Append a primitive's label: "lock 'db'" if named, else "lock 0x...". */
size_t tide__put_label(char *buf, size_t n, size_t len, const char *kind,
                       const char *name, const void *obj);

/* Debug mode: the task of co (future `key`) failed with err; remembered
 * (a few, the latest) until its error is read (tide__debug_failure_read),
 * to name it as the cause of a hang. */
void tide__debug_task_failed(tide_loop *loop, struct tide__coro *co,
                             const void *key, int err);
void tide__debug_failure_read(tide_loop *loop, const void *key);

/* What suspended co waits on, in full ("lock 'db' held by task 'b'"). */
void tide__wait_describe(tide_loop *loop, struct tide__coro *co, char *buf,
                         size_t n);

/* Take (and drop) the census of unfinished coroutines. Take returns
 * -ENOMEM if it cannot (names then say less). */
int tide__census_take(tide_loop *loop);
void tide__census_drop(tide_loop *loop);

/* The loop would wait forever: NULL if anything may still wake it (or
 * memory runs out); else the report, allocated: the wait-for cycle if
 * there is one, that nothing can wake the tasks, and failures nobody read
 * that may be the cause. */
char *tide__deadlock_find(tide_loop *loop);

/* Drop the remembered failures (debug mode ends, or the loop closes). */
void tide__deadlock_forget(tide_loop *loop);

#endif
