/* AArch64 (AAPCS64) context switch and entry trampoline.
 *
 * Frame of a suspended context, from the saved sp upward (176 bytes):
 *
 *   sp+0   x19 x20    sp+16  x21 x22    sp+32  x23 x24    sp+48  x25 x26
 *   sp+64  x27 x28    sp+80  x29 x30    sp+96  d8  d9     sp+112 d10 d11
 *   sp+128 d12 d13    sp+144 d14 d15    sp+160 fpcr       sp+168 (pad)
 *
 * tide__ctx_switch(from = x0, to = x1) returns through x30 of the resumed
 * frame. A fresh context (ctx_make.c) holds entry in x19, arg in x20 and
 * x30 = tide__ctx_trampoline.
 * SPDX-License-Identifier: MIT
 */
        .text
        .globl  tide__ctx_switch
        .hidden tide__ctx_switch
        .type   tide__ctx_switch, %function
        .p2align 4
tide__ctx_switch:
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x0]
        ldr     x9, [x1]
        mov     sp, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        ldr     x9, [sp, #160]
        msr     fpcr, x9
        add     sp, sp, #176
        ret
        .size   tide__ctx_switch, .-tide__ctx_switch

/* First code of a new context: entry(arg). entry never returns. */
        .globl  tide__ctx_trampoline
        .hidden tide__ctx_trampoline
        .type   tide__ctx_trampoline, %function
        .p2align 4
tide__ctx_trampoline:
        mov     x29, #0
        mov     x0, x20
        blr     x19
        brk     #0
        .size   tide__ctx_trampoline, .-tide__ctx_trampoline

        .section .note.GNU-stack,"",%progbits
