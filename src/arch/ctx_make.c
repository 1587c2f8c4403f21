/* Building the first frame of a context for the assembly switches.
 *
 * tide__ctx_make writes, at the top of a new stack, the frame that
 * tide__ctx_switch pops (see the tables atop ctx_x86_64.S and
 * ctx_aarch64.S), so that the first switch "returns" into the trampoline
 * with entry and arg in callee-saved registers. Not built with ucontext.
 * SPDX-License-Identifier: MIT
 */
#include "arch/ctx.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
void tide__ctx_make(struct tide__ctx *c, void *stack, size_t size,
                    void (*entry)(void *), void *arg)
{
    void **top = (void **)((char *)stack + size);
    void **sp = top - 10; /* 8 saved slots + 16 bytes of slack */
    uint64_t ctl = 0x1F80u | ((uint64_t)0x037Fu << 32); /* mxcsr, fcw */

    memcpy(&sp[0], &ctl, sizeof ctl);
    sp[1] = NULL;                                    /* r15 */
    sp[2] = NULL;                                    /* r14 */
    sp[3] = NULL;                                    /* r13 */
    sp[4] = arg;                                     /* r12 */
    sp[5] = (void *)(uintptr_t)entry;                /* rbx */
    sp[6] = NULL;                                    /* rbp */
    sp[7] = (void *)(uintptr_t)tide__ctx_trampoline; /* return address */
    sp[8] = NULL; /* trampoline's rsp: 16-byte aligned */
    sp[9] = NULL;
    c->sp = sp;
}
#elif defined(__aarch64__)
void tide__ctx_make(struct tide__ctx *c, void *stack, size_t size,
                    void (*entry)(void *), void *arg)
{
    char *top = (char *)stack + size;
    void **sp = (void **)(top - 176);

    memset(sp, 0, 176);
    sp[0] = (void *)(uintptr_t)entry;                 /* x19 */
    sp[1] = arg;                                      /* x20 */
    sp[11] = (void *)(uintptr_t)tide__ctx_trampoline; /* x30 */
    c->sp = sp;
}
#endif
