/* Coroutine stacks (see stack.h for the layout and the guard budget).
 *
 * Slabs are mapped lazily, one at a time, and each slot is initialized
 * (header written, guard zone set, valgrind told) the first time it is
 * handed out, so an unused slot costs no memory. Freed stacks go back to a
 * LIFO free list and keep their touched pages: reuse is a pointer pop.
 * SPDX-License-Identifier: MIT
 */
#include "stack/stack.h"

#include "base/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct tide__slab {
    struct tide__slab *next;
    char *base; /* the mapping; slot i starts at base + page + i * slot */
    size_t map_size;
    size_t slot_size;
    unsigned fresh; /* slots handed out at least once */
    unsigned nfree; /* tide__stack_pool_trim's count of pooled slots */
};

_Thread_local struct tide__stack *tide__stack_current
    __attribute__((tls_model("initial-exec")));
static const uint64_t slab_floor_canary = TIDE__STACK_CANARY;
static void (*_Atomic describe)(const struct tide__stack *st, char *buf,
                                size_t n);

void tide__stack_set_describe(void (*fn)(const struct tide__stack *st,
                                         char *buf, size_t n))
{
    atomic_store_explicit(&describe, fn, memory_order_relaxed);
}

static size_t page_size(void)
{
    /* Any thread may fill it; they all store the same value. */
    static _Atomic size_t page;
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);

    if (!p) {
        p = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

/* Guard markers (madvise MADV_GUARD_INSTALL, Linux 6.13): a guard that
 * lives in the page table and does not split the mapping, so it costs no
 * map budget. Earlier kernels refuse the advice with EINVAL. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* 1 if guard markers work here, 0 if not, -1 before the first probe. */
static atomic_int markers_work = -1;

/* Install a marker on a scratch page and see whether the kernel really
 * refuses to read it: an emulator (QEMU user mode) may accept the advice
 * and ignore it. */
static bool probe_markers(void)
{
    size_t page = page_size();
    char *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fds[2];
    bool works = false;

    if (p == MAP_FAILED)
        return false;
    if (madvise(p, page, MADV_GUARD_INSTALL) == 0 &&
        pipe2(fds, O_CLOEXEC) == 0) {
        works = write(fds[1], p, 1) < 0 && errno == EFAULT;
        close(fds[0]);
        close(fds[1]);
    }
    munmap(p, page);
    return works;
}

static bool markers(void)
{
    int v = atomic_load_explicit(&markers_work, memory_order_relaxed);

    if (v < 0) {
        v = probe_markers();
        atomic_store_explicit(&markers_work, v, memory_order_relaxed);
    }
    return v;
}

/* Guards left in this process's budget (see stack.h): mprotect guards
 * only, unless TIDE_STACK_GUARDS caps every kind. */
static atomic_long guards_left = -1;
static atomic_bool budget_capped;

/* Read the budget's settings, once per process. */
static long budget(void)
{
    long v = atomic_load_explicit(&guards_left, memory_order_relaxed);

    if (v < 0) {
        long max = 65530;
        FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
        if (f) {
            if (fscanf(f, "%ld", &max) != 1)
                max = 65530;
            fclose(f);
        }
        long want = max / 8, expect = -1;
        /* TIDE_STACK_GUARDS=n caps guarded stacks of both kinds (tests
         * use 0 to reach the red-zone path). */
        const char *env = getenv("TIDE_STACK_GUARDS");
        if (env && *env) {
            want = strtol(env, NULL, 10);
            atomic_store_explicit(&budget_capped, true, memory_order_relaxed);
        }
        if (want < 0)
            want = 0;
        atomic_compare_exchange_strong(&guards_left, &expect, want);
        v = atomic_load_explicit(&guards_left, memory_order_relaxed);
    }
    return v;
}

static bool take_guard(void)
{
    long v = budget();

    while (v > 0) {
        if (atomic_compare_exchange_weak_explicit(&guards_left, &v, v - 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
    return false;
}

static void give_guard(void)
{
    atomic_fetch_add_explicit(&guards_left, 1, memory_order_relaxed);
}

static size_t zone_size(void);

/* Guard the zone at the bottom of `slot`; returns how (enum tide__guard). */
static uint8_t guard_zone(char *slot)
{
    budget();
    bool capped = atomic_load_explicit(&budget_capped, memory_order_relaxed);
    if (!capped && markers() &&
        madvise(slot, zone_size(), MADV_GUARD_INSTALL) == 0)
        return TIDE__GUARD_MARKER;
    if (!take_guard())
        return TIDE__GUARD_NONE;
    if ((markers() && madvise(slot, zone_size(), MADV_GUARD_INSTALL) == 0) ||
        mprotect(slot, zone_size(), PROT_NONE) == 0)
        return TIDE__GUARD_COUNTED;
    give_guard();
    return TIDE__GUARD_NONE;
}

size_t tide__stack_round(size_t bytes)
{
    size_t page = page_size();

    return (bytes + page - 1) / page * page;
}

/* The zone below each stack, and the red zone at its top (stack.h). */
static size_t zone_size(void)
{
    return tide__stack_round(TIDE__STACK_ZONE);
}

static size_t redzone_size(void)
{
    size_t r = tide__stack_round(TIDE__STACK_REDZONE);

    return r < zone_size() ? r : zone_size();
}

void tide__stack_pool_init(struct tide__stack_pool *p, size_t size)
{
    memset(p, 0, sizeof *p);
    p->size = tide__stack_round(size);
}

static size_t slot_size_of(const struct tide__stack_pool *p)
{
    /* zone + usable bytes + the page holding the header */
    return zone_size() + p->size + page_size();
}

static struct tide__slab *slab_new(struct tide__stack_pool *p, int *err)
{
    struct tide__slab *s = tide__calloc(1, sizeof *s);

    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    s->slot_size = slot_size_of(p);
    s->map_size = page_size() + s->slot_size * TIDE__SLAB_SLOTS;
    /* The first page stays PROT_NONE: slot 0 of every slab is guarded
     * against whatever lies below the slab. */
    s->base = mmap(NULL, s->map_size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s->base == MAP_FAILED)
        goto fail;
    if (mprotect(s->base + page_size(), s->map_size - page_size(),
                 PROT_READ | PROT_WRITE) < 0) {
        munmap(s->base, s->map_size);
        goto fail;
    }
    s->next = p->slabs;
    p->slabs = s;
    return s;
fail:
    tide__free(s);
    *err = -ENOMEM;
    return NULL;
}

static struct tide__stack *slot_init(struct tide__slab *slab,
                                     struct tide__stack_pool *p, unsigned i)
{
    char *slot = slab->base + page_size() + (size_t)i * slab->slot_size;
    char *top = slot + slab->slot_size;
    struct tide__stack *st = (struct tide__stack *)(void *)(top - sizeof *st);

    st->next_free = NULL;
    st->owner = NULL;
    st->slab = slab;
    st->lo = slot + zone_size();
    st->size = (size_t)((char *)st - st->lo);
    st->cold_checks = 0;
    st->canary = TIDE__STACK_CANARY;
    /* Slots are handed out in order, so the slot below is initialized. */
    st->below =
        i == 0 ? &slab_floor_canary
               : &((struct tide__stack *)(void *)(slot - sizeof *st))->canary;
    st->guarded = guard_zone(slot);

#ifdef TIDE__VALGRIND
    st->vg_id = VALGRIND_STACK_REGISTER(st->lo, st->lo + st->size);
#endif
    (void)p;
    return st;
}

struct tide__stack *tide__stack_get(struct tide__stack_pool *p, int *err)
{
    struct tide__stack *st = p->free;

    if (st) {
        p->free = st->next_free;
        p->pooled--;
        p->in_use++;
        return st;
    }
    struct tide__slab *slab = p->slabs;
    if (!slab || slab->fresh == TIDE__SLAB_SLOTS) {
        slab = slab_new(p, err);
        if (!slab)
            return NULL;
    }
    st = slot_init(slab, p, slab->fresh++);
    p->in_use++;
    return st;
}

void tide__stack_put(struct tide__stack_pool *p, struct tide__stack *st)
{
    st->next_free = p->free;
    p->free = st;
    p->in_use--;
    p->pooled++;
}

static struct tide__stack *slot_header(struct tide__slab *s, unsigned i)
{
    char *slot = s->base + page_size() + (size_t)i * s->slot_size;
    return (struct tide__stack *)(void *)(slot + s->slot_size -
                                          sizeof(struct tide__stack));
}

void tide__stack_pool_each(struct tide__stack_pool *p,
                           void (*fn)(void *owner, void *arg), void *arg)
{
    for (struct tide__slab *s = p->slabs; s; s = s->next)
        for (unsigned i = 0; i < s->fresh; i++) {
            struct tide__stack *st = slot_header(s, i);
            if (st->owner)
                fn(st->owner, arg);
        }
}

/* Unmap slab s (none of its stacks in use) and give its guards back. */
static void slab_release(struct tide__slab *s)
{
    for (unsigned i = 0; i < s->fresh; i++) {
        struct tide__stack *st = slot_header(s, i);
        if (st->guarded == TIDE__GUARD_COUNTED)
            give_guard();
#ifdef TIDE__VALGRIND
        VALGRIND_STACK_DEREGISTER(st->vg_id);
#endif
    }
    munmap(s->base, s->map_size);
    tide__free(s);
}

void tide__stack_pool_destroy(struct tide__stack_pool *p)
{
    struct tide__slab *s = p->slabs;

    while (s) {
        struct tide__slab *next = s->next;
        slab_release(s);
        s = next;
    }
    p->slabs = NULL;
    p->free = NULL;
    p->pooled = p->in_use = 0;
}

size_t tide__stack_pool_trim(struct tide__stack_pool *p, size_t keep)
{
    if (p->pooled <= keep || !p->slabs)
        return 0;
    for (struct tide__slab *s = p->slabs; s; s = s->next)
        s->nfree = 0;
    for (struct tide__stack *st = p->free; st; st = st->next_free)
        st->slab->nfree++;
    /* Mark (nfree = UINT_MAX) the slabs to let go: every stack handed out
     * is back, and the pool keeps `keep` stacks. The newest slab, which
     * hands out fresh slots, stays. */
    size_t pooled = p->pooled, released = 0;
    for (struct tide__slab *s = p->slabs->next; s && pooled > keep;
         s = s->next) {
        if (s->nfree == s->fresh && pooled - s->fresh >= keep) {
            pooled -= s->fresh;
            released += s->fresh;
            s->nfree = UINT_MAX;
        }
    }
    if (!released)
        return 0;
    struct tide__stack **link = &p->free;
    for (struct tide__stack *st = p->free; st; st = st->next_free)
        if (st->slab->nfree != UINT_MAX) {
            *link = st;
            link = &st->next_free;
        }
    *link = NULL;
    for (struct tide__slab **sl = &p->slabs; *sl;) {
        struct tide__slab *s = *sl;
        if (s->nfree == UINT_MAX) {
            *sl = s->next;
            slab_release(s);
        } else {
            sl = &s->next;
        }
    }
    p->pooled = pooled;
    return released;
}

void tide__fiber_make(struct tide__fiber *f, struct tide__stack *s,
                      void (*entry)(void *), void *arg)
{
#ifdef TIDE__ASAN
    /* The last coroutine on this stack never returned from its bottom
     * frames: their redzones are still poisoned. */
    __asan_unpoison_memory_region(s->lo, s->size);
#endif
    tide__ctx_make(&f->ctx, s->lo, s->size, entry, arg);
#ifdef TIDE__ASAN
    f->stack_lo = s->lo;
    f->stack_size = s->size;
#endif
#ifdef TIDE__TSAN
    f->tsan_fiber = __tsan_create_fiber(0);
    f->tsan_owned = true;
#endif
}

void tide__fiber_destroy(struct tide__fiber *f)
{
#ifdef TIDE__TSAN
    if (f->tsan_owned)
        __tsan_destroy_fiber(f->tsan_fiber);
    f->tsan_owned = false;
#else
    (void)f;
#endif
}

void tide__fiber_init_here(struct tide__fiber *f, struct tide__stack *s)
{
#ifdef TIDE__TSAN
    f->tsan_fiber = __tsan_get_current_fiber();
    f->tsan_owned = false;
#endif
#ifdef TIDE__ASAN
    if (s) {
        f->stack_lo = s->lo;
        f->stack_size = s->size;
        return;
    }
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &lo, &size);
        pthread_attr_destroy(&attr);
    }
    f->stack_lo = lo;
    f->stack_size = size;
#else
    (void)f;
    (void)s;
#endif
}

/* ---- overflow detection ------------------------------------------- */

static void write_str(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

/* `why` is what was found, as it ends "tide: stack overflow in X: ". */
static void die_overflow(const struct tide__stack *st, const char *why)
{
    char who[160] = "a task";

    void (*fn)(const struct tide__stack *, char *, size_t) =
        atomic_load_explicit(&describe, memory_order_relaxed);
    if (fn && st)
        fn(st, who, sizeof who);
    write_str("tide: stack overflow in ");
    write_str(who);
    write_str(": ");
    write_str(why);
    write_str(" (raise its stack_size, or the loop's with "
              "tide_loop_set_stack_size)\n");
}

void tide__stack_overflow(const struct tide__stack *st,
                          enum tide__overflow why)
{
    static const char *const what[] = {
        [TIDE__OVERFLOW_SP] = "its stack pointer is below its stack",
        [TIDE__OVERFLOW_REDZONE] = "it wrote into the red zone below its "
                                   "stack",
        [TIDE__OVERFLOW_BELOW] = "it overwrote the canary of the stack "
                                 "below its own",
    };
    if (why == TIDE__OVERFLOW_OWN) {
        /* The header is overwritten: its owner pointer cannot be
         * followed, and the culprit is whoever runs on the slot above. */
        write_str("tide: stack overflow into the stack of the task "
                  "switching away: the canary at its top is overwritten, "
                  "by an overflow of the task on the stack above it past "
                  "its guard\n");
        abort();
    }
    die_overflow(st, what[why]);
    abort();
}

/* True if every byte of [p, p + bytes) is zero (bytes: a multiple of
 * 64). 16-byte vectors (SSE2, NEON) and four accumulators, so the loads
 * do not wait for each other: about 170 ns for the 16 KiB red zone. */
typedef uint64_t tide__v2 __attribute__((vector_size(16), may_alias));

static bool all_zero(const void *p, size_t bytes)
{
    const tide__v2 *w = p;
    tide__v2 a = {0, 0}, b = a, c = a, d = a;

    for (size_t i = 0; i < bytes / sizeof *w; i += 4) {
        a |= w[i];
        b |= w[i + 1];
        c |= w[i + 2];
        d |= w[i + 3];
    }
    a |= b | c | d;
    return (a[0] | a[1]) == 0;
}

/* 1 if a page of [p, p + bytes) is resident, 0 if none, -1 if mincore
 * failed. A page written once is resident (until it is swapped out). */
static int any_resident(const char *p, size_t bytes)
{
    unsigned char vec[64];
    size_t n = bytes / page_size();

    if (n > sizeof vec || mincore((void *)(uintptr_t)p, bytes, vec) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (vec[i] & 1)
            return 1;
    return 0;
}

void tide__stack_check_unguarded(struct tide__stack *st, const char *sp)
{
    if (sp < st->lo)
        tide__stack_overflow(st, TIDE__OVERFLOW_SP);
    if (*st->below != TIDE__STACK_CANARY)
        tide__stack_overflow(st, TIDE__OVERFLOW_BELOW);
    size_t rz = redzone_size();
    if (st->cold_checks < TIDE__STACK_COLD_CHECKS) {
        int r = any_resident(st->lo - rz, rz);
        if (r > 0)
            tide__stack_overflow(st, TIDE__OVERFLOW_REDZONE);
        /* Warm now (or mincore unusable): read the pages from now on. */
        st->cold_checks =
            r < 0 ? TIDE__STACK_COLD_CHECKS : (uint8_t)(st->cold_checks + 1);
        if (r == 0)
            return;
    }
    if (!all_zero(st->lo - rz, rz))
        tide__stack_overflow(st, TIDE__OVERFLOW_REDZONE);
}

#define ALTSTACK_SIZE (64 * 1024)

static _Thread_local void *altstack;
static _Thread_local size_t altstack_size;
static pthread_key_t altstack_key;
static pthread_once_t altstack_once = PTHREAD_ONCE_INIT;

/* Thread exit: stop using our alternate stack, then unmap it. */
static void drop_altstack(void *mem)
{
    stack_t off = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};

    sigaltstack(&off, NULL);
    munmap(mem, ALTSTACK_SIZE);
}

static void make_altstack_key(void)
{
    pthread_key_create(&altstack_key, drop_altstack);
}
static struct sigaction prev_segv, prev_bus;
static atomic_int handler_installed;

/* True if sp is on this thread's alternate signal stack (a handler that
 * faults there has not overflowed the task under it). */
static bool on_altstack(const char *sp)
{
    return altstack && sp >= (char *)altstack &&
           sp < (char *)altstack + altstack_size;
}

/* "its stack pointer is N KiB below its stack", N in decimal, written
 * without the C library's formatting (this runs in a signal handler). */
static const char *sp_below(char *buf, size_t n, size_t kib)
{
    static const char head[] = "its stack pointer is ";
    static const char tail[] = " KiB below its stack (a frame wider than "
                               "the guard zone)";
    char digits[24];
    int d = 0;
    size_t len = 0;

    do {
        digits[d++] = (char)('0' + kib % 10);
        kib /= 10;
    } while (kib);
    if (n < sizeof head + sizeof digits + sizeof tail)
        return "its stack pointer is below its stack";
    memcpy(buf, head, sizeof head - 1);
    len = sizeof head - 1;
    while (d > 0)
        buf[len++] = digits[--d];
    memcpy(buf + len, tail, sizeof tail);
    return buf;
}

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
    struct tide__stack *st = tide__stack_current;

    if (st) {
        char *addr = si->si_addr, *sp = tide__signal_sp(uctx);
        size_t page = page_size();
        /* Below this task's stack within its slab (the red zone, the
         * slots below, the slab's guard page), or sp itself below it:
         * within the slab, or by any amount when the fault lies between
         * sp (less a page for a push) and the stack, so that one huge
         * frame, which leaves the slab far behind, is still an overflow. */
        bool in_slab = addr >= st->slab->base && addr < st->lo;
        bool sp_low =
            sp && sp < st->lo && !on_altstack(sp) &&
            (sp >= st->slab->base - page ||
             ((uintptr_t)addr + page >= (uintptr_t)sp && addr < st->lo));
        if (in_slab || sp_low) {
            char why[160];
            die_overflow(st, in_slab ? "it touched the guard below its stack"
                             : sp >= st->slab->base - page
                                 ? "its stack pointer is below its stack"
                                 : sp_below(why, sizeof why,
                                            (size_t)(st->lo - sp) / 1024));
            signal(sig, SIG_DFL);
            raise(sig);
            return;
        }
    }
    struct sigaction *prev = sig == SIGSEGV ? &prev_segv : &prev_bus;
    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(sig, si, uctx);
        return;
    }
    if (prev->sa_handler == SIG_IGN)
        return;
    if (prev->sa_handler != SIG_DFL) {
        prev->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL); /* re-fault with the default action: a core dump */
}

int tide__stack_thread_setup(void)
{
    if (!altstack) {
        size_t size = ALTSTACK_SIZE;
        void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
            return -ENOMEM;
        stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
        stack_t old;
        /* Keep an alternate stack the application already set. */
        if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE)) {
            munmap(mem, size);
            altstack = old.ss_sp;
            altstack_size = old.ss_size;
        } else if (sigaltstack(&ss, NULL) < 0) {
            munmap(mem, size);
            return -errno;
        } else {
            altstack = mem;
            altstack_size = size;
            pthread_once(&altstack_once, make_altstack_key);
            pthread_setspecific(altstack_key, mem);
        }
    }
    int expect = 0;
    if (atomic_compare_exchange_strong(&handler_installed, &expect, 1)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &prev_segv);
        sigaction(SIGBUS, &sa, &prev_bus);
    }
    return 0;
}
