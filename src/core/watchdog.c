/* The watchdog of debug mode (see watchdog.h): one thread per process,
 * started when the first debug loop opens and joined when the last one
 * closes. One for the process rather than one per loop: a program with a
 * debug loop in each of its threads gets one more thread, not twice as
 * many, and a tick costs a few loads per loop.
 *
 * Every watched loop has a slot here, in static memory, so that the
 * signal handler may read any slot at any moment. At every step the
 * loop's thread publishes in its slot when the step began, which thread
 * runs it and which coroutine: plain stores (the start with release
 * order), no lock, no system call. The watchdog wakes every quarter of
 * the threshold (at least every 250 ms); finding a step older than the
 * threshold, it leaves a request in the slot and sends the watchdog
 * signal to the loop's thread (a real-time signal, SIGRTMIN+8 unless
 * TIDE_WATCHDOG_SIGNAL says otherwise, queued with a value that tells it
 * from a signal of the program's, which goes to the handler it had).
 *
 * The handler runs on that thread, so inside the blocking step. It checks
 * that the step asked about is the one running, names its task (the
 * describe op, async-signal-safe), takes a backtrace into the slot and
 * wakes the watchdog. backtrace(3) is not async-signal-safe on paper: it
 * loads its unwinder on first use, so the watchdog calls it once before
 * any signal, after which it is usable in practice. The watchdog, a plain
 * thread, names the frames (symbols.c: dladdr and symbol tables, nothing
 * for a signal handler) and writes the report to stderr. The report
 * handler is never called from the signal nor from the watchdog (it runs
 * on the loop's thread, and need not be thread-safe): the loop's thread
 * hands it the whole report, backtrace included, when the step ends.
 * A step is reported at the threshold and once more at ten times it.
 * SPDX-License-Identifier: MIT
 */
#include "core/watchdog.h"

#include "base/alloc.h"
#include "core/loop.h"
#include "core/timer.h"
#include "core/symbols.h"

#include <errno.h>
#include <execinfo.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_WATCHED 64 /* loops watched at once */
#define MAX_FRAMES 48
#define IDLE_TICK_NS 250000000  /* the longest sleep */
#define MIN_TICK_NS 2000000     /* the shortest tick */
#define DEFAULT_SIGNAL_OFFSET 8 /* SIGRTMIN+8 */
#define TRACE_MAX 4096          /* a slow step's report, frames too */

struct tide__watch {
    /* The loop owning the slot, NULL: free. Stored last (release) when a
     * loop claims it, after the fields below are reset. */
    tide_loop *_Atomic loop;
    /* Published by the loop's thread at every step. */
    _Atomic int64_t start;           /* when the running step began, 0: none */
    _Atomic int tid;                 /* kernel id of the thread running it */
    struct tide__coro *_Atomic task; /* its coroutine, NULL: a callback */
    _Atomic int64_t slow_ns;         /* the loop's threshold */
    /* The watchdog asks with a token: the step's start, times two, plus
     * one at ten times the threshold. The handler answers with the same
     * token (release) once it has filled in the capture below; the
     * watchdog's next request (release) orders its reading of the
     * capture before the handler's next writing of it. */
    _Atomic uint64_t request;
    _Atomic uint64_t answered;
    int64_t age_ns;     /* the capture: how long the step ran */
    int nframes, first; /* frames[first] is where it was */
    void *frames[MAX_FRAMES];
    char who[192];
};

static struct tide__watch slots[MAX_WATCHED];

/* What only the watchdog thread knows of each slot. */
static struct {
    int64_t step;            /* start of the step it last saw */
    int reports;             /* requests made for it: 0, 1 or 2 */
    uint64_t asked, printed; /* tokens */
} seen[MAX_WATCHED];

/* A capture copied out of its slot, to be printed. */
struct report {
    char who[192];
    int64_t age_ns;
    bool tenfold;
    int nframes;
    void *frames[MAX_FRAMES];
};
static struct report pending[MAX_WATCHED]; /* the watchdog thread's */

/* life_lock: opening and closing (the count, the thread's start and
 * stop). scan_lock: held by the watchdog while it reads the slots and
 * sends signals, so that a loop that leaves its slot waits out a scan
 * that may have seen it. */
static pthread_mutex_t life_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t scan_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned nwatched;      /* under life_lock */
static pthread_t watchdog;     /* running while nwatched > 0 */
static int watch_signal;       /* 0: not chosen yet, -1: none */
static bool handler_installed; /* for watch_signal, never removed */
static struct sigaction prev_action;
static atomic_int wake_fd = -1; /* eventfd: the handler and stop */
static atomic_bool stopping;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static _Thread_local int cached_tid __attribute__((tls_model("initial-exec")));

/* The kernel's id of the calling thread, read once per thread. */
static int thread_tid(void)
{
    if (!cached_tid)
        cached_tid = (int)syscall(SYS_gettid);
    return cached_tid;
}

/* ---- the loop's thread: publishing steps ---------------------------- */

void tide__watch_begin(tide_loop *loop)
{
    struct tide__watch *w = loop->watch;

    if (!w)
        return;
    atomic_store_explicit(&w->tid, thread_tid(), memory_order_relaxed);
    atomic_store_explicit(&w->task, loop->current, memory_order_relaxed);
    /* Release: whoever sees the start sees the thread and the task. */
    atomic_store_explicit(&w->start, loop->step_start, memory_order_release);
}

void tide__watch_end(tide_loop *loop)
{
    struct tide__watch *w = loop->watch;

    if (w)
        atomic_store_explicit(&w->start, 0, memory_order_relaxed);
}

/* Make the watchdog scan now (async-signal-safe). */
static void wake_watchdog(void)
{
    int fd = atomic_load_explicit(&wake_fd, memory_order_relaxed);
    uint64_t one = 1;

    if (fd >= 0) {
        ssize_t r = write(fd, &one, sizeof one);
        (void)r;
    }
}

void tide__watch_set_slow(tide_loop *loop)
{
    if (loop->watch) {
        atomic_store_explicit(&loop->watch->slow_ns, loop->slow_ns,
                              memory_order_relaxed);
        wake_watchdog(); /* its tick may be shorter now */
    }
}

char *tide__watch_trace(tide_loop *loop, const char *msg)
{
    struct tide__watch *w = loop->watch;

    if (!w)
        return NULL;
    uint64_t token = atomic_load_explicit(&w->answered, memory_order_acquire);
    if (!token || (int64_t)(token >> 1) != loop->step_start)
        return NULL;
    char *buf = tide__malloc(TRACE_MAX);
    if (!buf)
        return NULL;
    int len =
        snprintf(buf, TRACE_MAX, "%s; the watchdog caught it at:\n", msg);
    if (len < 0 || len >= TRACE_MAX) {
        tide__free(buf);
        return NULL;
    }
    size_t n =
        (size_t)len + tide__symbols_format(w->frames + w->first,
                                           w->nframes - w->first, buf + len,
                                           TRACE_MAX - (size_t)len);
    if (buf[n - 1] == '\n')
        buf[n - 1] = '\0'; /* a report is a message, not a line */
    return buf;
}

/* ---- the signal handler --------------------------------------------- */

static void copy(char *to, const char *from, size_t n)
{
    size_t i = 0;

    while (from[i] && i + 1 < n) {
        to[i] = from[i];
        i++;
    }
    to[i] = '\0';
}

static void capture(struct tide__watch *w, uint64_t token, void *uctx)
{
    int64_t start = (int64_t)(token >> 1);
    tide_loop *loop = atomic_load_explicit(&w->loop, memory_order_relaxed);

    /* The step asked about is the one running here, so its loop and
     * coroutine are alive (this thread is inside that step). */
    if (!loop ||
        atomic_load_explicit(&w->start, memory_order_relaxed) != start)
        return;
    struct tide__coro *co =
        atomic_load_explicit(&w->task, memory_order_relaxed);
    if (co && loop->coro_ops && loop->coro_ops->describe)
        loop->coro_ops->describe(co, w->who, sizeof w->who);
    else
        copy(w->who, co ? "a coroutine" : "a callback", sizeof w->who);
    w->age_ns = tide__clock_ns() - start;
    w->nframes = backtrace(w->frames, MAX_FRAMES);
    /* Drop the frames of the handler itself: up to the interrupted
     * instruction (the unwinder gives its exact address). */
    void *pc = tide__signal_pc(uctx);
    w->first = 0;
    for (int i = 0; i < w->nframes; i++)
        if (w->frames[i] == pc) {
            w->first = i;
            break;
        }
    atomic_store_explicit(&w->answered, token, memory_order_release);
    wake_watchdog();
}

/* A signal that is not the watchdog's goes where it went before tide
 * (the default action counts as ignoring it: tide does not end the
 * process for a signal it took over). */
static void chain(int sig, siginfo_t *si, void *uctx)
{
    if (prev_action.sa_flags & SA_SIGINFO) {
        if (prev_action.sa_sigaction)
            prev_action.sa_sigaction(sig, si, uctx);
    } else if (prev_action.sa_handler != SIG_DFL &&
               prev_action.sa_handler != SIG_IGN) {
        prev_action.sa_handler(sig);
    }
}

static void on_signal(int sig, siginfo_t *si, void *uctx)
{
    int saved = errno;

    if (si && si->si_code == SI_QUEUE && si->si_pid == getpid() &&
        si->si_value.sival_ptr == (void *)slots) {
        int me = thread_tid();
        for (int i = 0; i < MAX_WATCHED; i++) {
            struct tide__watch *w = &slots[i];
            if (atomic_load_explicit(&w->tid, memory_order_relaxed) != me)
                continue;
            uint64_t token =
                atomic_exchange_explicit(&w->request, 0, memory_order_acquire);
            if (token)
                capture(w, token, uctx);
        }
    } else {
        chain(sig, si, uctx);
    }
    errno = saved;
}

/* ---- the watchdog thread ---------------------------------------------- */

static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static void send_signal(int tid)
{
    siginfo_t si;

    memset(&si, 0, sizeof si);
    si.si_signo = watch_signal;
    si.si_code = SI_QUEUE;
    si.si_pid = getpid();
    si.si_uid = getuid();
    si.si_value.sival_ptr = slots;
    /* ESRCH (the thread is gone) leaves nothing to do. */
    syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, watch_signal, &si);
}

/* Look at every slot: copy out the captures answered (into pending,
 * *n of them), ask for those that are due. Returns how long to sleep. */
static int64_t scan(int64_t now, int *n)
{
    int64_t wait = IDLE_TICK_NS;

    for (int i = 0; i < MAX_WATCHED; i++) {
        struct tide__watch *w = &slots[i];
        if (!atomic_load_explicit(&w->loop, memory_order_acquire))
            continue;
        int64_t slow = atomic_load_explicit(&w->slow_ns, memory_order_relaxed);
        int64_t tick = slow / 4 < MIN_TICK_NS ? MIN_TICK_NS : slow / 4;
        if (tick < wait)
            wait = tick;
        uint64_t answered =
            atomic_load_explicit(&w->answered, memory_order_acquire);
        if (answered && answered == seen[i].asked &&
            answered != seen[i].printed) {
            struct report *r = &pending[(*n)++];
            memcpy(r->who, w->who, sizeof r->who);
            r->who[sizeof r->who - 1] = '\0';
            r->age_ns = w->age_ns;
            r->tenfold = answered & 1;
            r->nframes = w->nframes - w->first;
            memcpy(r->frames, w->frames + w->first,
                   (size_t)r->nframes * sizeof *r->frames);
            seen[i].printed = answered;
        }
        int64_t start = atomic_load_explicit(&w->start, memory_order_acquire);
        if (!start)
            continue;
        if (start != seen[i].step) {
            seen[i].step = start;
            seen[i].reports = 0;
        }
        if (seen[i].reports >= 2)
            continue;
        int64_t limit = slow; /* then ten times it */
        if (seen[i].reports == 1)
            limit = slow > INT64_MAX / 10 ? INT64_MAX : slow * 10;
        int64_t due = add_sat(start, limit);
        if (now < due) {
            if (due - now < wait)
                wait = due - now;
            continue;
        }
        uint64_t token = (uint64_t)start << 1 | (seen[i].reports == 1);
        seen[i].reports++;
        seen[i].asked = token;
        atomic_store_explicit(&w->request, token, memory_order_release);
        send_signal(atomic_load_explicit(&w->tid, memory_order_relaxed));
    }
    return wait < MIN_TICK_NS ? MIN_TICK_NS : wait;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void print(const struct report *r)
{
    char buf[4096];
    int len = snprintf(buf, sizeof buf,
                       r->tenfold ? "tide: %s still holds the loop after "
                                    "%.3f s (ten times the slow step "
                                    "threshold); it is at:\n"
                                  : "tide: %s has held the loop for %.3f s "
                                    "and still holds it; it is at:\n",
                       r->who, (double)r->age_ns / 1e9);

    if (len < 0)
        return;
    if ((size_t)len >= sizeof buf)
        len = sizeof buf - 1;
    size_t n =
        (size_t)len + tide__symbols_format(r->frames, r->nframes, buf + len,
                                           sizeof buf - (size_t)len);
    write_all(STDERR_FILENO, buf, n);
}

static void *watchdog_main(void *arg)
{
    int fd = (int)(intptr_t)arg;

    while (!atomic_load_explicit(&stopping, memory_order_acquire)) {
        int n = 0;
        pthread_mutex_lock(&scan_lock);
        int64_t wait = scan(tide__clock_ns(), &n);
        pthread_mutex_unlock(&scan_lock);
        for (int i = 0; i < n; i++)
            print(&pending[i]);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)((wait + 999999) / 1000000)) > 0) {
            uint64_t v;
            ssize_t r = read(fd, &v, sizeof v);
            (void)r;
        }
    }
    return NULL;
}

/* ---- opening and closing ---------------------------------------------- */

/* TIDE_WATCHDOG_SIGNAL: unset or empty, SIGRTMIN+8; 0, none; else a
 * signal number, SIGUSR2 or a real-time one. Returns -1 for none. */
static int choose_signal(void)
{
    const char *env = getenv("TIDE_WATCHDOG_SIGNAL");

    if (!env || !*env)
        return SIGRTMIN + DEFAULT_SIGNAL_OFFSET;
    char *end;
    long v = strtol(env, &end, 10);
    if (*end == '\0' && v == 0)
        return -1;
    if (*end == '\0' && (v == SIGUSR2 || (v >= SIGRTMIN && v <= SIGRTMAX)))
        return (int)v;
    fprintf(stderr,
            "tide: TIDE_WATCHDOG_SIGNAL=%s is neither 0, SIGUSR2 "
            "(%d) nor a real-time signal (%d to %d): the watchdog is off\n",
            env, SIGUSR2, SIGRTMIN, SIGRTMAX);
    return -1;
}

static void install_handler(void)
{
    struct sigaction sa;
    void *warm[4];

    backtrace(warm, 4); /* loads the unwinder: see the top of the file */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(watch_signal, &sa, &prev_action);
    handler_installed = true;
}

static int start_thread(void)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    if (fd < 0)
        return -errno;
    atomic_store(&stopping, false);
    atomic_store(&wake_fd, fd);
    /* Every signal blocked in the watchdog: the program's go to its own
     * threads, and the watchdog's own only to loops' threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc =
        pthread_create(&watchdog, NULL, watchdog_main, (void *)(intptr_t)fd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        pthread_setname_np(watchdog, "tide-watchdog"); /* ps, gdb, tests */
    if (rc) {
        atomic_store(&wake_fd, -1);
        close(fd);
        return -rc;
    }
    return 0;
}

static void stop_thread(void)
{
    int fd = atomic_load(&wake_fd);

    atomic_store_explicit(&stopping, true, memory_order_release);
    wake_watchdog();
    pthread_join(watchdog, NULL);
    atomic_store(&wake_fd, -1);
    close(fd);
}

/* fork: the child has no watchdog thread, and its copies of the parent's
 * loops are left alone (see loop.c), so it starts afresh. */
static void before_fork(void)
{
    pthread_mutex_lock(&life_lock);
    pthread_mutex_lock(&scan_lock);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&scan_lock);
    pthread_mutex_unlock(&life_lock);
}

static void after_fork_child(void)
{
    cached_tid = 0;
    for (int i = 0; i < MAX_WATCHED; i++)
        atomic_store(&slots[i].loop, NULL);
    if (nwatched) {
        close(atomic_load(&wake_fd));
        atomic_store(&wake_fd, -1);
    }
    nwatched = 0;
    pthread_mutex_unlock(&scan_lock);
    pthread_mutex_unlock(&life_lock);
}

static void register_fork_handlers(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

int tide__watch_open(tide_loop *loop)
{
    struct tide__watch *w = NULL;
    int err = 0;

    if (loop->watch)
        return 0;
    pthread_once(&fork_once, register_fork_handlers);
    pthread_mutex_lock(&life_lock);
    if (!watch_signal)
        watch_signal = choose_signal();
    for (int i = 0; watch_signal > 0 && i < MAX_WATCHED && !w; i++)
        if (!atomic_load(&slots[i].loop))
            w = &slots[i];
    if (!w)
        goto out; /* off, or every slot taken: this loop goes unwatched */
    if (!handler_installed)
        install_handler();
    if (nwatched == 0 && (err = start_thread()) < 0)
        goto out;
    nwatched++;
    atomic_store(&w->start, 0);
    atomic_store(&w->tid, 0);
    atomic_store(&w->task, NULL);
    atomic_store(&w->slow_ns, loop->slow_ns);
    atomic_store(&w->request, 0);
    atomic_store(&w->answered, 0);
    atomic_store_explicit(&w->loop, loop, memory_order_release);
    loop->watch = w;
    wake_watchdog(); /* to take the new slot's tick into account */
out:
    pthread_mutex_unlock(&life_lock);
    return err;
}

void tide__watch_close(tide_loop *loop)
{
    struct tide__watch *w = loop->watch;

    if (!w)
        return;
    loop->watch = NULL;
    pthread_mutex_lock(&life_lock);
    if (atomic_load(&w->loop) == loop) { /* not dropped by a fork */
        atomic_store(&w->loop, NULL);
        atomic_store(&w->start, 0);
        atomic_store(&w->request, 0);
        /* A scan that saw the slot may be sending it a signal: wait it
         * out, so that none is sent once this returns. */
        pthread_mutex_lock(&scan_lock);
        pthread_mutex_unlock(&scan_lock);
        if (--nwatched == 0)
            stop_thread();
    }
    pthread_mutex_unlock(&life_lock);
}
