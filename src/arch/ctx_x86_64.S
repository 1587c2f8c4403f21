/* x86-64 System V context switch and entry trampoline.
 *
 * Frame of a suspended context, from the saved sp upward (8 bytes each):
 *
 *   sp+0   mxcsr (low 4 bytes), x87 control word (bytes 4-5)
 *   sp+8   r15      sp+16  r14      sp+24  r13      sp+32  r12
 *   sp+40  rbx      sp+48  rbp      sp+56  return address
 *
 * tide__ctx_switch(from = rdi, to = rsi): only callee-saved state is kept;
 * the caller already saved everything else. A fresh context (ctx_make.c)
 * holds entry in rbx, arg in r12 and returns into tide__ctx_trampoline.
 * SPDX-License-Identifier: MIT
 */
        .text
        .globl  tide__ctx_switch
        .hidden tide__ctx_switch
        .type   tide__ctx_switch, @function
        .p2align 4
tide__ctx_switch:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   tide__ctx_switch, .-tide__ctx_switch

/* First code of a new context: call entry(arg) with a 16-byte aligned
 * stack. entry never returns; ud2 traps if it does. */
        .globl  tide__ctx_trampoline
        .hidden tide__ctx_trampoline
        .type   tide__ctx_trampoline, @function
        .p2align 4
tide__ctx_trampoline:
        .cfi_startproc
        .cfi_undefined rip
        movq    %r12, %rdi
        callq   *%rbx
        ud2
        .cfi_endproc
        .size   tide__ctx_trampoline, .-tide__ctx_trampoline

        .section .note.GNU-stack,"",@progbits
