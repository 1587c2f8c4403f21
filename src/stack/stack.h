/* Coroutine stacks: slabs, pooling, guard pages, overflow detection, and
 * the fiber-aware context switch.
 *
 * A stack is one slot of a slab: one mmap holding TIDE__SLAB_SLOTS stacks
 * (MAP_NORESERVE: a page costs memory only once touched). Linux caps a
 * process at vm.max_map_count mappings (65530 by default) and a guard page
 * splits a mapping, so only the first stacks of the process get a
 * PROT_NONE guard page each (a budget of max_map_count / 8); later stacks
 * keep the same layout with an unprotected red zone, and overflow into it
 * is caught by a canary check at every switch away from a stack. Either
 * way an overflow ends the process with a message naming the task.
 *
 * Slot layout, low to high: [guard or red zone: 1 page][usable stack]
 * [struct tide__stack header, 64 bytes at the very top]. The header's
 * canary is its highest word, the first thing an overflow of the slot
 * above would hit.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_STACK_H
#define TIDE_STACK_H

#include "arch/ctx.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__SANITIZE_ADDRESS__)
#define TIDE__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TIDE__ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define TIDE__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TIDE__TSAN 1
#endif
#endif

#define TIDE__SLAB_SLOTS 64
#define TIDE__STACK_CANARY 0x7469646563616e61ull /* "tidecana" */

struct tide__slab;

struct tide__stack {
    struct tide__stack *next_free; /* pool free list */
    struct tide__slab *slab;
    char *lo;                      /* lowest usable byte */
    size_t size;                   /* usable bytes, up to this header */
    void *owner;                   /* the coroutine running on it, or NULL */
    const uint64_t *below;         /* canary of the slot below (or a
                                    * constant one for a slab's first) */
    unsigned vg_id;                /* valgrind stack id */
    bool guarded;                  /* the page below lo is PROT_NONE */
    uint64_t canary;               /* TIDE__STACK_CANARY; highest word */
};
_Static_assert(sizeof(struct tide__stack) == 64 &&
               offsetof(struct tide__stack, canary) == 56,
               "stack header is 64 bytes, the canary last");

/* Stacks of one usable size, for one loop. */
struct tide__stack_pool {
    size_t size;                   /* usable bytes of every stack here */
    struct tide__stack *free;      /* LIFO: the warmest stack first */
    struct tide__slab *slabs;      /* every slab, for unmapping */
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
    bool tsan_owned;   /* made by fiber_make: destroyed by fiber_destroy */
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

/* How to describe the running task in an overflow message (set by the
 * task layer; must be async-signal-safe). Threads may set it at once. */
void tide__stack_set_describe(void (*fn)(char *buf, size_t n));

/* Install the overflow handler (SIGSEGV/SIGBUS on an alternate stack) for
 * the calling thread. Idempotent. Returns 0 or a negative errno. */
int tide__stack_thread_setup(void);

/* Print the overflow message for the running task and abort. */
_Noreturn void tide__stack_overflow(const struct tide__stack *st);

/* Die with the overflow message if `st` (the stack being left) has
 * overflowed: sp below its bottom, its own canary or the canary of the
 * slot below it broken. A guarded stack needs no check: its overflow
 * faults on the guard page at once, and the canary at its top is checked
 * by the unguarded slot above, the only one that could reach it. */
static inline void tide__stack_check(const struct tide__stack *st)
{
    if (st->guarded)
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
    if (__builtin_expect(sp < st->lo ||
                         st->canary != TIDE__STACK_CANARY ||
                         *st->below != TIDE__STACK_CANARY, 0))
        tide__stack_overflow(st);
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
void __sanitizer_start_switch_fiber(void **fake_stack_save,
                                    const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old,
                                     size_t *size_old);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

static inline void tide__fiber_switch(struct tide__fiber *from,
                                      struct tide__stack *from_stack,
                                      struct tide__fiber *to,
                                      struct tide__stack *to_stack,
                                      bool dying)
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
