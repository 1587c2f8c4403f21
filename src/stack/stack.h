/* Coroutine stacks: slabs, pooling, guard zones, overflow detection, and
 * the fiber-aware context switch.
 *
 * A stack is one slot of a slab: one mmap holding TIDE__SLAB_SLOTS stacks
 * (MAP_NORESERVE: a page costs memory only once touched). Below each
 * stack lies a guard zone. Where the kernel has guard markers (Linux
 * 6.13, madvise MADV_GUARD_INSTALL: kept in the page table, the mapping
 * is not split) every stack gets one. Elsewhere a guard is an mprotect,
 * which splits the mapping, and Linux caps a process at
 * vm.max_map_count mappings (65530 by default), so only the first stacks
 * of the process are guarded (a budget of max_map_count / 8); later
 * stacks keep the same layout with the zone unprotected, a red zone
 * checked at every switch away from the stack. Either way an overflow
 * that is caught ends the process with a message naming the task
 * (README, "Stack overflow" says which ones can be caught).
 *
 * Slot layout, low to high: [zone: TIDE__STACK_ZONE bytes][usable stack]
 * [struct tide__stack header, 64 bytes at the very top]. The zone is one
 * madvise or mprotect, whatever its width, so a wide guard costs no more
 * map entries than a page. Unguarded, its top TIDE__STACK_REDZONE bytes (just
 * below lo) are the red zone, never touched by a task that stays in its stack;
 * every page of it is checked whenever the task switches away. While the
 * slot is cold (its first TIDE__STACK_COLD_CHECKS checks) the check asks
 * the kernel whether any red-zone page is resident (mincore: one system
 * call, and the pages stay unmapped); after that it reads every word,
 * which must be zero (the pages then map the kernel's shared zero page: no
 * memory, but one page-table entry each, which is why a cold slot, as
 * each of a million new tasks has, does not read them). The rest of the
 * zone is slack that nothing checks. The header's canary is its highest
 * word, the first thing an overflow out of the slot above would hit past
 * that slot's zone.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_STACK_H
#define TIDE_STACK_H

#include "arch/ctx.h"
#include "base/sanitize.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIDE__SLAB_SLOTS 64
#define TIDE__STACK_CANARY 0x7469646563616e61ull /* "tidecana" */
/* The zone below every stack: 64 KiB, the guard GCC's stack clash
 * protection assumes on AArch64 (on x86-64 it probes every 4 KiB), and
 * a frame up to that size that skips its probes (code built without
 * -fstack-clash-protection) still faults in it. Rounded up to a page. */
#define TIDE__STACK_ZONE (64 * 1024)
/* The part of an unguarded zone checked at every switch: 4 pages. */
#define TIDE__STACK_REDZONE (16 * 1024)
/* Checks of a slot's red zone made by residency before it is read. */
#define TIDE__STACK_COLD_CHECKS 16

struct tide__slab;

enum tide__guard {
    TIDE__GUARD_NONE,    /* the red zone is checked at every switch */
    TIDE__GUARD_MARKER,  /* guard markers, outside the budget */
    TIDE__GUARD_COUNTED, /* a guard taken from the budget */
};

struct tide__stack {
    struct tide__stack *next_free; /* pool free list */
    struct tide__slab *slab;
    char *lo;              /* lowest usable byte */
    size_t size;           /* usable bytes, up to this header */
    void *owner;           /* the coroutine running on it, or NULL */
    const uint64_t *below; /* canary of the slot below (or a
                            * constant one for a slab's first) */
    unsigned vg_id;        /* valgrind stack id */
    uint8_t guarded;       /* enum tide__guard: how the zone
                            * below lo is guarded */
    uint8_t cold_checks;   /* red-zone checks by residency so far,
                            * up to TIDE__STACK_COLD_CHECKS */
    uint64_t canary;       /* TIDE__STACK_CANARY; highest word */
};
_Static_assert(sizeof(struct tide__stack) == 64 &&
                   offsetof(struct tide__stack, canary) == 56,
               "stack header is 64 bytes, the canary last");

/* Stacks of one usable size, for one loop. */
struct tide__stack_pool {
    size_t size;              /* usable bytes of every stack here */
    struct tide__stack *free; /* LIFO: the warmest stack first */
    struct tide__slab *slabs; /* every slab, for unmapping */
    size_t in_use, pooled;
};

/* A context plus, under ASan, the bounds of the stack it runs on. */
struct tide__fiber {
    struct tide__ctx ctx;
#ifdef TIDE__ASAN
    const void *stack_lo;
    size_t stack_size;
#endif
#ifdef TIDE__TSAN
    void *tsan_fiber;
    bool tsan_owned; /* made by fiber_make: destroyed by fiber_destroy */
#endif
};

/* The usable size actually given for a request: page-rounded. */
size_t tide__stack_round(size_t bytes);

void tide__stack_pool_init(struct tide__stack_pool *p, size_t size);
/* Unmap every slab; every stack must be back in the pool. */
void tide__stack_pool_destroy(struct tide__stack_pool *p);
/* A stack for a coroutine about to start; NULL and -ENOMEM in *err. */
struct tide__stack *tide__stack_get(struct tide__stack_pool *p, int *err);
void tide__stack_put(struct tide__stack_pool *p, struct tide__stack *s);
/* Unmap whole slabs of the pool whose stacks are all pooled, as long as
 * at least `keep` pooled stacks remain: a burst of tasks does not keep its
 * stacks' memory forever. O(pooled stacks + slabs). Returns how many
 * stacks went. */
size_t tide__stack_pool_trim(struct tide__stack_pool *p, size_t keep);

/* Call fn(owner, arg) for every stack of the pool that has an owner. fn
 * must not take or return stacks. */
void tide__stack_pool_each(struct tide__stack_pool *p,
                           void (*fn)(void *owner, void *arg), void *arg);

/* Prepare f to run entry(arg) on s. */
void tide__fiber_make(struct tide__fiber *f, struct tide__stack *s,
                      void (*entry)(void *), void *arg);
/* Record that f runs on the current thread's own stack (or on s). */
void tide__fiber_init_here(struct tide__fiber *f, struct tide__stack *s);
/* Forget a fiber made by tide__fiber_make, once nothing runs on it. */
void tide__fiber_destroy(struct tide__fiber *f);

/* The running stack of this thread (NULL: the thread's own stack). The
 * overflow handler reads it; the switch below keeps it current. */
extern _Thread_local struct tide__stack *tide__stack_current
    __attribute__((tls_model("initial-exec")));

/* How to describe the task on stack `st` (NULL: the running one) in an
 * overflow message (set by the task layer; must be async-signal-safe).
 * Threads may set it at once. */
void tide__stack_set_describe(void (*fn)(const struct tide__stack *st,
                                         char *buf, size_t n));

/* Install the overflow handler (SIGSEGV/SIGBUS on an alternate stack) for
 * the calling thread. Idempotent. Returns 0 or a negative errno. */
int tide__stack_thread_setup(void);

/* What a check found (tide__stack_overflow's message says it). */
enum tide__overflow {
    TIDE__OVERFLOW_SP,      /* the stack pointer is below the stack */
    TIDE__OVERFLOW_REDZONE, /* a word of the red zone is not zero */
    TIDE__OVERFLOW_BELOW,   /* the canary of the slot below is broken */
    TIDE__OVERFLOW_OWN,     /* this slot's own canary is broken */
};

/* Print the overflow message for the task on `st` and abort. */
_Noreturn void tide__stack_overflow(const struct tide__stack *st,
                                    enum tide__overflow why);

/* The unguarded half of tide__stack_check (out of line: it reads the
 * whole red zone). `sp` is the stack pointer of the switching code. */
void tide__stack_check_unguarded(struct tide__stack *st, const char *sp);

/* Die with the overflow message if `st` (the stack being left) has
 * overflowed, or been overflowed into: its own canary broken (every
 * stack: the slot above may be guarded and have jumped its guard, and a
 * broken header is not to be trusted, `guarded` included), and for an
 * unguarded stack also sp below its bottom, a page of its red zone
 * written, or the canary of the slot below broken. A guarded stack needs
 * no more: its overflow faults on the guard zone at once. */
static inline void tide__stack_check(struct tide__stack *st)
{
    if (__builtin_expect(st->canary != TIDE__STACK_CANARY, 0))
        tide__stack_overflow(st, TIDE__OVERFLOW_OWN);
    if (__builtin_expect(st->guarded, 1))
        return;
    /* The stack pointer itself: the address of a local would do, but
     * under ASan's detect_stack_use_after_return locals live elsewhere. */
    const char *sp;
#if defined(__x86_64__)
    __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
#elif defined(__aarch64__)
    __asm__ volatile("mov %0, sp" : "=r"(sp));
#else
    sp = __builtin_frame_address(0);
#endif
    tide__stack_check_unguarded(st, sp);
}

/* Switch from the running fiber to `to`, which runs on stack `to_stack`
 * (NULL: a thread's own stack). `dying` means the running fiber never
 * resumes (its stack may be reused). */
static inline void tide__fiber_switch(struct tide__fiber *from,
                                      struct tide__stack *from_stack,
                                      struct tide__fiber *to,
                                      struct tide__stack *to_stack,
                                      bool dying);

#ifdef TIDE__TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif
#ifdef TIDE__ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
                                    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old,
                                     size_t *size_old);
#endif

static inline void tide__fiber_switch(struct tide__fiber *from,
                                      struct tide__stack *from_stack,
                                      struct tide__fiber *to,
                                      struct tide__stack *to_stack, bool dying)
{
    if (from_stack)
        tide__stack_check(from_stack);
    tide__stack_current = to_stack;
#ifdef TIDE__TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
#ifdef TIDE__ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(dying ? NULL : &fake, to->stack_lo,
                                   to->stack_size);
    tide__ctx_switch(&from->ctx, &to->ctx);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    (void)dying;
    tide__ctx_switch(&from->ctx, &to->ctx);
#endif
    tide__stack_current = from_stack;
}

#endif
