/* Context switch: the C side of the per-architecture switch.
 *
 * A suspended context is one saved stack pointer: tide__ctx_switch pushes
 * the callee-saved registers (and the FP control words) onto the current
 * stack, stores the stack pointer into *from, loads `to` and pops the same
 * registers back. ctx_x86_64.S and ctx_aarch64.S implement it; with
 * TIDE_CTX_UCONTEXT the build uses ctx_ucontext.c instead, where a context
 * is a ucontext_t. The build picks exactly one (CMake option TIDE_CTX).
 *
 * Sanitizer and valgrind fiber hooks do not live here: stack.h wraps the
 * switch with them, so this layer stays a pure register switch.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_ARCH_CTX_H
#define TIDE_ARCH_CTX_H

#include <stddef.h>
#include <ucontext.h>

#if defined(TIDE_CTX_UCONTEXT)
struct tide__ctx {
    ucontext_t uc;
};
#define TIDE__CTX_METHOD "ucontext"
#else
struct tide__ctx {
    void
        *sp; /* saved stack pointer; the registers sit on the stack above it */
};
_Static_assert(offsetof(struct tide__ctx, sp) == 0,
               "ctx_*.S expects sp first");
#if defined(__x86_64__)
#define TIDE__CTX_METHOD "asm-x86_64"
#elif defined(__aarch64__)
#define TIDE__CTX_METHOD "asm-aarch64"
#else
#error \
    "no assembly switch for this architecture: configure with -DTIDE_CTX=ucontext"
#endif
#endif

/* Prepare `c` so that the first switch to it calls entry(arg) on the stack
 * [stack, stack + size). entry must never return: a finished coroutine
 * switches away for good. stack + size must be 16-byte aligned. */
void tide__ctx_make(struct tide__ctx *c, void *stack, size_t size,
                    void (*entry)(void *), void *arg);

/* The stack pointer a suspended context resumes with: what it needs of
 * its stack is at and above it. NULL if this build cannot tell. */
#if defined(TIDE_CTX_UCONTEXT)
void *tide__ctx_sp(const struct tide__ctx *c);
#else
static inline void *tide__ctx_sp(const struct tide__ctx *c)
{
    return c->sp;
}
#endif

/* From the context a signal handler is given (its third argument): the
 * stack pointer, and the address of the instruction interrupted. NULL
 * where this file does not know the architecture's registers. */
static inline void *tide__signal_sp(void *uctx)
{
#if defined(__x86_64__)
    return (void *)((ucontext_t *)uctx)->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (void *)((ucontext_t *)uctx)->uc_mcontext.sp;
#else
    (void)uctx;
    return NULL;
#endif
}

static inline void *tide__signal_pc(void *uctx)
{
#if defined(__x86_64__)
    return (void *)((ucontext_t *)uctx)->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (void *)((ucontext_t *)uctx)->uc_mcontext.pc;
#else
    (void)uctx;
    return NULL;
#endif
}

/* Save the running context into *from and resume `to`. Returns when some
 * other context switches back to *from. */
void tide__ctx_switch(struct tide__ctx *from, struct tide__ctx *to);

#if !defined(TIDE_CTX_UCONTEXT)
/* Where a made context's first switch returns to (ctx_<arch>.S): it calls
 * entry(arg) from the registers tide__ctx_make filled in. Not a C
 * function; only its address is taken. */
void tide__ctx_trampoline(void);
#endif

#endif
