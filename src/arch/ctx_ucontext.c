/* Portable context switch on ucontext (the build-time fallback).
 *
 * Slower than the assembly switches (swapcontext saves the signal mask
 * with a system call), but it runs anywhere POSIX ucontext does; CI runs
 * the whole suite on it. makecontext passes only ints, so the entry and
 * its argument travel as 32-bit halves.
 * SPDX-License-Identifier: MIT
 */
#include "arch/ctx.h"

#include <stdint.h>

static void trampoline(unsigned eh, unsigned el, unsigned ah, unsigned al)
{
    uintptr_t e = ((uintptr_t)eh << 16 << 16) | el;
    uintptr_t a = ((uintptr_t)ah << 16 << 16) | al;

    ((void (*)(void *))e)((void *)a);
}

void tide__ctx_make(struct tide__ctx *c, void *stack, size_t size,
                    void (*entry)(void *), void *arg)
{
    uintptr_t e = (uintptr_t)entry, a = (uintptr_t)arg;

    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, (void (*)(void))trampoline, 4,
                (unsigned)(e >> 16 >> 16), (unsigned)e,
                (unsigned)(a >> 16 >> 16), (unsigned)a);
}

void *tide__ctx_sp(const struct tide__ctx *c)
{
#if defined(__x86_64__)
    return (void *)c->uc.uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (void *)c->uc.uc_mcontext.sp;
#else
    (void)c;
    return NULL;
#endif
}

void tide__ctx_switch(struct tide__ctx *from, struct tide__ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}
