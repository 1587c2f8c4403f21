/* Signals: one process-wide registry for every loop's signal handlers and
 * the library's own watches (signal.h), and the signal handler itself.
 *
 * The process side. While any loop watches a signal, tide's handler
 * (on_signal) is its disposition: the first loop to watch it saves the
 * disposition there was (sigaction's old action: handler, flags, mask),
 * the last one to stop restores it. Registration runs under reg_lock;
 * the handler takes no lock.
 *
 * The handler runs in whatever thread the kernel picks and does only
 * async-signal-safe things: it walks the list of loop records (struct
 * sigrec, one per loop that watches anything), and in each whose `wanted`
 * mask has the signal it sets the signal's bit in `pending` and wakes the
 * loop's backend (an eventfd write), keeping errno. Records are never
 * freed, only handed from a loop that leaves to one that comes, and a new
 * one goes on the front of the list, whose links never change: the
 * handler can walk it while other threads register. What it must not do
 * is touch a loop that is gone: a handler counts itself in the record's
 * `busy` before it reads `wanted` a second time and touches the loop, and
 * a loop that leaves clears `wanted`, then waits for `busy` to be zero
 * before it lets its backend go (see leave()). So no loop count limits it.
 *
 * The loop side: every iteration of a loop with a record takes the
 * pending bits (tide__signal_poll, sched.c) and schedules the callback of
 * each watch of those signals, once: deliveries that come before it runs
 * are one call. A watch removed while its call is queued is freed by it.
 * SPDX-License-Identifier: MIT
 */
#include "core/signal.h"

#include "tide/signal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(NSIG - 1 <= 64, "a signal mask is one 64-bit word");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2 &&
                   ATOMIC_POINTER_LOCK_FREE == 2,
               "the signal handler needs lock-free atomics");

#define BIT(signo) (1ULL << ((signo)-1))

/* A loop's place in the registry. Memory orders: `wanted`, `busy` and the
 * handler's reads of them are sequentially consistent (leave() says why);
 * `loop` is stored before `wanted` is published and read after. */
struct tide__sigrec {
    struct tide__sigrec *next;          /* never changes once listed */
    bool taken;                         /* by a loop; under reg_lock */
    _Atomic(tide_loop *) loop;          /* the one the handler wakes */
    _Atomic unsigned long long wanted;  /* BIT(signo) of its watches */
    _Atomic unsigned long long pending; /* arrived, not yet taken */
    _Atomic unsigned long long fatal;   /* arriving ends the process */
    atomic_uint busy; /* handlers inside, between their reads of wanted */
};

struct tide__sigwatch {
    struct tide__call call; /* in the ready queue while queued */
    struct tide__list link; /* loop->sigwatches */
    tide_callback fn;
    void *arg;
    void (*drop)(void *arg);
    int signo;
    bool user;   /* the program's handler: one per signal per loop */
    bool queued; /* call is in the ready queue */
    bool gone;   /* removed while queued: its call frees it */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static struct tide__sigrec *_Atomic records; /* pushed under reg_lock */
static struct {
    unsigned loops;        /* loops watching it */
    struct sigaction held; /* the disposition before tide's */
} sigs[NSIG];              /* under reg_lock */

/* ---- the signal handler ------------------------------------------------ */

/* The armed second signal: end the process as the signal's default action
 * does. The signal is blocked while its handler runs, so the one raised
 * here is delivered, with SIG_DFL, as the handler returns. */
static void die_of(int signo)
{
    struct sigaction dfl;

    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(signo, &dfl, NULL);
    raise(signo);
}

static void on_signal(int signo)
{
    int saved_errno = errno;
    unsigned long long bit = BIT(signo);
    struct tide__sigrec *r =
        atomic_load_explicit(&records, memory_order_acquire);

    for (; r; r = r->next) {
        if (!(atomic_load_explicit(&r->wanted, memory_order_relaxed) & bit))
            continue;
        atomic_fetch_add(&r->busy, 1);
        if (atomic_load(&r->wanted) & bit) {
            if (atomic_load_explicit(&r->fatal, memory_order_relaxed) & bit)
                die_of(signo);
            /* Release: the loop's exchange of pending (acquire) comes
             * after the wake-up it causes. */
            atomic_fetch_or_explicit(&r->pending, bit, memory_order_release);
            tide_loop *loop =
                atomic_load_explicit(&r->loop, memory_order_relaxed);
            loop->backend.ops->wake(&loop->backend);
        }
        atomic_fetch_sub(&r->busy, 1);
    }
    errno = saved_errno;
}

/* ---- the process's dispositions (under reg_lock) ----------------------- */

/* Signals a handler can be set for: not the uncatchable ones, and not the
 * faults, whose handler must act where the fault happens (one that
 * returns runs the faulting instruction again; tide's stack overflow
 * report needs SIGSEGV and SIGBUS). */
static bool watchable(int signo)
{
    return signo > 0 && signo < NSIG && signo != SIGKILL && signo != SIGSTOP &&
           signo != SIGSEGV && signo != SIGBUS && signo != SIGILL &&
           signo != SIGFPE;
}

static int hold_signal(int signo)
{
    struct sigaction sa;

    if (sigs[signo].loops > 0) {
        sigs[signo].loops++;
        return 0;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    /* SA_RESTART: the program's blocking calls are not cut short by a
     * signal only tide wanted (HAZARDS B36). SA_ONSTACK: a thread's
     * alternate stack, where it has one, spares a task's stack. */
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, &sigs[signo].held) < 0)
        return -errno; /* glibc's reserved signals: EINVAL */
    sigs[signo].loops = 1;
    return 0;
}

static void release_signal(int signo)
{
    struct sigaction now;

    if (--sigs[signo].loops > 0)
        return;
    /* A disposition the program set over tide's meanwhile stays. */
    if (sigaction(signo, NULL, &now) == 0 && !(now.sa_flags & SA_SIGINFO) &&
        now.sa_handler == on_signal)
        sigaction(signo, &sigs[signo].held, NULL);
}

/* fork() holds reg_lock, so that a child never inherits it held by a
 * thread it does not have (HAZARDS B37). */
static void lock_for_fork(void)
{
    pthread_mutex_lock(&reg_lock);
}

static void unlock_after_fork(void)
{
    pthread_mutex_unlock(&reg_lock);
}

static void register_fork_handlers(void)
{
    pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
}

/* ---- a loop's record (under reg_lock) ---------------------------------- */

/* Give the loop a record: a free one, else a new one (plain calloc, never
 * freed: a handler may be reading any record at any time, so records are
 * the process's, not counted as the library's live allocations). */
static int join(tide_loop *loop)
{
    struct tide__sigrec *r =
        atomic_load_explicit(&records, memory_order_relaxed);

    while (r && r->taken)
        r = r->next;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return -ENOMEM;
        r->next = atomic_load_explicit(&records, memory_order_relaxed);
        atomic_store_explicit(&records, r, memory_order_release);
    }
    r->taken = true;
    atomic_store_explicit(&r->pending, 0, memory_order_relaxed);
    atomic_store_explicit(&r->fatal, 0, memory_order_relaxed);
    atomic_store_explicit(&r->loop, loop, memory_order_relaxed);
    loop->sigrec = r;
    return 0;
}

/* The loop's last watch is gone (wanted is 0): once no handler is inside
 * the record, nothing touches the loop through it. Each side writes, then
 * reads the other's word, all in one total order (seq_cst): a handler
 * whose increment of busy comes before the load below is waited for; one
 * whose increment comes after it reads wanted after the store of 0 here,
 * and leaves the loop alone. A handler that loaded wanted before the
 * store can only be in that short window, so the wait is bounded, even
 * under a storm of signals. */
static void leave(tide_loop *loop)
{
    struct tide__sigrec *r = loop->sigrec;

    atomic_store(&r->wanted, 0);
    while (atomic_load(&r->busy))
        sched_yield();
    atomic_store_explicit(&r->loop, NULL, memory_order_relaxed);
    r->taken = false;
    loop->sigrec = NULL;
}

/* ---- watches (loop thread) --------------------------------------------- */

static struct tide__sigwatch *first_watch(tide_loop *loop, int signo,
                                          bool user_only)
{
    struct tide__list *l;

    for (l = loop->sigwatches.next; l != &loop->sigwatches; l = l->next) {
        struct tide__sigwatch *w =
            tide__container_of(l, struct tide__sigwatch, link);
        if (w->signo == signo && (w->user || !user_only))
            return w;
    }
    return NULL;
}

static void watch_run(tide_loop *loop, struct tide__call *c, bool cancel)
{
    struct tide__sigwatch *w =
        tide__container_of(c, struct tide__sigwatch, call);

    (void)loop;
    w->queued = false;
    if (w->gone)
        tide__free(w);
    else if (!cancel)
        w->fn(w->arg); /* may remove w */
}

static struct tide__sigwatch *add_watch(tide_loop *loop, int signo,
                                        tide_callback fn, void *arg,
                                        void (*drop)(void *arg), bool user,
                                        int *err)
{
    if (!watchable(signo) || !fn || loop->closed) {
        *err = -EINVAL;
        return NULL;
    }
    struct tide__sigwatch *w = tide__calloc(1, sizeof *w);
    if (!w) {
        *err = -ENOMEM;
        return NULL;
    }
    w->call.run = watch_run;
    w->fn = fn;
    w->arg = arg;
    w->drop = drop;
    w->signo = signo;
    w->user = user;
    pthread_once(&fork_once, register_fork_handlers);
    pthread_mutex_lock(&reg_lock);
    *err = loop->sigrec ? 0 : join(loop);
    if (*err == 0 && !first_watch(loop, signo, false)) {
        *err = hold_signal(signo);
        if (*err == 0) /* publishes r->loop too (see struct tide__sigrec) */
            atomic_fetch_or(&loop->sigrec->wanted, BIT(signo));
    }
    if (*err < 0 && loop->sigrec && tide__list_empty(&loop->sigwatches))
        leave(loop);
    pthread_mutex_unlock(&reg_lock);
    if (*err < 0) {
        tide__free(w);
        return NULL;
    }
    tide__list_push_back(&loop->sigwatches, &w->link);
    if (user)
        loop->sig_handlers++;
    return w;
}

struct tide__sigwatch *tide__signal_add(tide_loop *loop, int signo,
                                        tide_callback fn, void *arg,
                                        void (*drop)(void *arg), int *err)
{
    return add_watch(loop, signo, fn, arg, drop, false, err);
}

void tide__signal_remove(tide_loop *loop, struct tide__sigwatch *w)
{
    if (!w)
        return;
    int signo = w->signo;
    tide__list_remove(&w->link);
    pthread_mutex_lock(&reg_lock);
    struct tide__sigrec *r = loop->sigrec;
    if (w->user) {
        loop->sig_handlers--;
        atomic_fetch_and(&r->fatal, ~BIT(signo));
    }
    if (!first_watch(loop, signo, false)) {
        atomic_fetch_and(&r->wanted, ~BIT(signo));
        /* A delivery not taken yet goes with the signal's last watch. */
        atomic_fetch_and(&r->pending, ~BIT(signo));
        release_signal(signo);
    }
    if (tide__list_empty(&loop->sigwatches))
        leave(loop);
    pthread_mutex_unlock(&reg_lock);
    if (w->drop)
        w->drop(w->arg);
    if (w->queued)
        w->gone = true;
    else
        tide__free(w);
}

int tide__signal_set_handler(tide_loop *loop, int signo, tide_callback fn,
                             void *arg, void (*drop)(void *arg))
{
    int err;
    struct tide__sigwatch *w;

    if (!watchable(signo) || !fn || loop->closed)
        return -EINVAL;
    w = first_watch(loop, signo, true);
    if (!w)
        return add_watch(loop, signo, fn, arg, drop, true, &err) ? 0 : err;
    /* Replaced: the new handler is the one a queued call runs. */
    void (*old_drop)(void *) = w->drop;
    void *old_arg = w->arg;
    atomic_fetch_and(&loop->sigrec->fatal, ~BIT(signo));
    w->fn = fn;
    w->arg = arg;
    w->drop = drop;
    if (old_drop)
        old_drop(old_arg);
    return 0;
}

void tide__signal_arm_fatal(tide_loop *loop, int signo, tide_callback fn)
{
    struct tide__sigwatch *w = first_watch(loop, signo, true);

    if (w && w->fn == fn)
        atomic_fetch_or(&loop->sigrec->fatal, BIT(signo));
}

void tide__signal_poll(tide_loop *loop)
{
    struct tide__sigrec *r = loop->sigrec;
    struct tide__list *l;

    if (!atomic_load_explicit(&r->pending, memory_order_relaxed))
        return;
    unsigned long long got =
        atomic_exchange_explicit(&r->pending, 0, memory_order_acquire);
    for (l = loop->sigwatches.next; l != &loop->sigwatches; l = l->next) {
        struct tide__sigwatch *w =
            tide__container_of(l, struct tide__sigwatch, link);
        if ((got & BIT(w->signo)) && !w->queued) {
            w->queued = true;
            tide__call_schedule(loop, &w->call);
        }
    }
}

void tide__signal_close(tide_loop *loop)
{
    while (!tide__list_empty(&loop->sigwatches))
        tide__signal_remove(loop,
                            tide__container_of(loop->sigwatches.next,
                                               struct tide__sigwatch, link));
}

/* ---- the public calls -------------------------------------------------- */

int tide_add_signal_handler(tide_loop *loop, int signo, tide_callback cb,
                            void *arg)
{
    loop = tide__loop_resolve(loop);
    if (!loop)
        return -EINVAL;
    return tide__signal_set_handler(loop, signo, cb, arg, NULL);
}

int tide_remove_signal_handler(tide_loop *loop, int signo)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed || !watchable(signo))
        return -EINVAL;
    struct tide__sigwatch *w = first_watch(loop, signo, true);
    tide__signal_remove(loop, w);
    return w != NULL;
}
