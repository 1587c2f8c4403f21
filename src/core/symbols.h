/* Naming code addresses, for the backtraces of the watchdog (watchdog.c).
 *
 * A frame is named from the dynamic symbols (dladdr: what a shared library
 * exports, and an executable's own functions when it is linked with
 * -rdynamic) or, failing that, from its file's full symbol table (.symtab,
 * which the linker keeps unless the file is stripped; it holds static
 * functions and hidden ones too). Failing both, the frame is given as an
 * offset into its file, which `addr2line -f -e FILE OFFSET` names.
 * Opens and maps files: never called from a signal handler.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_CORE_SYMBOLS_H
#define TIDE_CORE_SYMBOLS_H

#include <stddef.h>

/* Write one line per frame into buf: "    #i name+0xoff (file)\n", or
 * "    #i file+0xoff\n" where no name is known. frames[0] is the exact
 * address of an instruction, the others return addresses (named by the
 * call before them). NUL-terminated, cut at cap; returns the length. */
size_t tide__symbols_format(void *const *frames, int n, char *buf, size_t cap);

#endif
