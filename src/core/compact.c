/* Compact coroutines: many tasks, one stack, frames copied while asleep.
 *
 * A compact coroutine (tide_task_options.compact) does not own a stack:
 * every compact coroutine of a loop runs on one shared stack, taken from
 * the loop's default pool when the first one starts. Only one of them has
 * its frames there at a time, the occupant. To run another, the loop
 * copies the occupant's live frames (from its saved stack pointer to the
 * top, usually a few hundred bytes) into a tide__saved record and copies
 * the other's saved frames back to the very addresses they came from, so
 * every pointer into them is right again when it resumes. A sleeping
 * compact task therefore costs the bytes its frames use instead of at
 * least one page of its own stack: the way a million sleepers fit in a
 * fraction of the memory (docs/benchmarks.md, W3M).
 *
 * The price, and the rules that follow from it:
 * - while a compact coroutine is suspended its stack is not addressable:
 *   nobody may keep a pointer into its locals across its suspensions.
 *   tide's own waits obey this through tide__wait_frame (loop.h); a
 *   program must too (no &local handed to another task);
 * - the copy happens off the shared stack, so a switch between two
 *   compact coroutines goes through the loop's own context (coro.c:
 *   loop->detour), without ending the batch;
 * - nothing may keep a compact coroutine's frames live on the shared
 *   stack while others need it: a nested run it asks for runs on a
 *   borrowed stack (sched.c: run_borrowed), and a task it starts eagerly
 *   is only scheduled.
 * The occupant's record, if it has one, keeps its capacity for the next
 * copy; records are freed when their coroutine ends, and the shared stack
 * goes back to its pool when no compact coroutine is left. The shared
 * stack has no owner in its pool's eyes: the loop finds compact
 * coroutines through their records and the occupant
 * (tide__compact_each).
 * SPDX-License-Identifier: MIT
 */
#include "core/loop.h"

#include <errno.h>
#include <string.h>

struct tide__saved {
    struct tide__list link; /* in loop->compact_saved */
    struct tide__coro *co;
    char *sp;        /* where the frames go back to */
    size_t len, cap; /* bytes saved; room in data[] */
    _Alignas(16) char data[];
};

/* The frames at [sp, top) become reachable again for a plain copy: ASan
 * still has the redzones of whichever frames were there poisoned, and
 * memcheck calls memory below a stack's last stack pointer unaddressable. */
static void make_copyable(char *sp, size_t len)
{
#ifdef TIDE__ASAN
    __asan_unpoison_memory_region(sp, len);
#endif
#ifdef TIDE__VALGRIND
    VALGRIND_MAKE_MEM_UNDEFINED(sp, len);
#endif
    (void)sp;
    (void)len;
}

static char *stack_top(const struct tide__stack *s)
{
    return s->lo + s->size;
}

/* Frames just copied away at [sp, sp + len) are overwritten with a pattern
 * in debug mode and under ASan, so that a read through a pointer into a
 * suspended compact task's frames (the rule above, broken) sees garbage
 * at once instead of stale values that happen to be right. */
static void scribble(tide_loop *loop, char *sp, size_t len)
{
#ifndef TIDE__ASAN
    if (!loop->debug)
        return;
#endif
    (void)loop;
    memset(sp, 0xA5, len);
}

/* Copy the suspended occupant's frames into its record. */
static int save(tide_loop *loop, struct tide__coro *occ)
{
    char *sp = tide__ctx_sp(&occ->fiber.ctx);
    char *top = stack_top(loop->compact_stack);
    struct tide__saved *sv = occ->saved;

    if (!sp || sp < loop->compact_stack->lo || sp > top)
        return -ENOTSUP; /* this build cannot tell where the frames are */
    size_t len = (size_t)(top - sp);
    if (!sv || sv->cap < len) {
        size_t cap = (len + 63) & ~(size_t)63;
        struct tide__saved *nsv = tide__malloc(sizeof *nsv + cap);
        if (!nsv)
            return -ENOMEM;
        nsv->co = occ;
        nsv->cap = cap;
        if (sv) {
            tide__list_remove(&sv->link);
            tide__free(sv);
        }
        tide__list_push_back(&loop->compact_saved, &nsv->link);
        occ->saved = sv = nsv;
    }
#ifdef TIDE__ASAN
    __asan_unpoison_memory_region(sp, len);
#endif
    memcpy(sv->data, sp, len);
    sv->sp = sp;
    sv->len = len;
    return 0;
}

int tide__compact_enter(tide_loop *loop, struct tide__coro *co)
{
    struct tide__coro *occ = loop->compact_occupant;
    int err = 0;

    if (occ == co)
        return 0;
    if (!loop->compact_stack) {
        int pool = tide__loop_pool(loop, 0);
        if (pool < 0)
            return pool;
        loop->compact_stack = tide__stack_get(&loop->pools[pool], &err);
        if (!loop->compact_stack)
            return err;
        loop->compact_pool = (unsigned)pool;
    }
    if (occ) {
        err = save(loop, occ);
        if (err < 0)
            return err;
        scribble(loop, occ->saved->sp, occ->saved->len);
        loop->compact_occupant = NULL;
    }
    co->stack = loop->compact_stack;
    if (co->state != TIDE__CORO_NEW) {
        struct tide__saved *sv = co->saved;
        make_copyable(sv->sp, sv->len);
        memcpy(sv->sp, sv->data, sv->len);
    }
    loop->compact_occupant = co;
    return 0;
}

void tide__compact_forget(tide_loop *loop, struct tide__coro *co)
{
    if (loop->compact_occupant == co)
        loop->compact_occupant = NULL;
    if (co->saved) {
        tide__list_remove(&co->saved->link);
        tide__free(co->saved);
        co->saved = NULL;
    }
    /* The last one is over: the shared stack goes back to its pool. */
    if (!loop->compact_occupant && tide__list_empty(&loop->compact_saved))
        tide__compact_close(loop);
}

size_t tide__compact_frames(tide_loop *loop, struct tide__coro *co)
{
    if (co->state != TIDE__CORO_SUSPENDED)
        return 0;
    if (co != loop->compact_occupant)
        return co->saved ? co->saved->len : 0;
    char *sp = tide__ctx_sp(&co->fiber.ctx);
    return sp ? (size_t)(stack_top(loop->compact_stack) - sp) : 0;
}

void tide__compact_each(tide_loop *loop,
                        void (*fn)(tide_loop *loop, struct tide__coro *co,
                                   void *arg),
                        void *arg)
{
    struct tide__coro *occ = loop->compact_occupant;

    for (struct tide__list *l = loop->compact_saved.next;
         l != &loop->compact_saved; l = l->next) {
        struct tide__coro *co =
            tide__container_of(l, struct tide__saved, link)->co;
        if (co->state != TIDE__CORO_DONE)
            fn(loop, co, arg);
    }
    if (occ && !occ->saved && occ->state != TIDE__CORO_DONE)
        fn(loop, occ, arg);
}

int tide_loop_set_compact_tasks(tide_loop *loop, bool on)
{
    loop = tide__loop_resolve(loop);
    if (!loop || loop->closed)
        return -EINVAL;
    loop->compact_default = on;
    return 0;
}

bool tide_loop_get_compact_tasks(tide_loop *loop)
{
    loop = tide__loop_resolve(loop);
    return loop && loop->compact_default;
}

void tide__compact_close(tide_loop *loop)
{
    if (loop->compact_stack) {
        tide__stack_put(&loop->pools[loop->compact_pool], loop->compact_stack);
        loop->compact_stack = NULL;
    }
    loop->compact_occupant = NULL;
}
