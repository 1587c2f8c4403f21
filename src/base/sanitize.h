/* What the build is instrumented with, and the memory tools tide tells
 * about its own memory.
 *
 * TIDE__ASAN and TIDE__TSAN are set when the compiler instruments for
 * AddressSanitizer or ThreadSanitizer (gcc says so with __SANITIZE_*__,
 * clang with __has_feature). TIDE__VALGRIND is set when valgrind's
 * headers are there: their client requests are compiled in and cost a
 * few instructions each (they do nothing unless the program runs under
 * valgrind), so callers keep them off hot paths or behind a flag read
 * once. Used by the block allocator, the stacks and the compact frames.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_BASE_SANITIZE_H
#define TIDE_BASE_SANITIZE_H

#include <stddef.h>

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

#ifdef TIDE__TSAN
/* A happens-before edge from every release of addr to later acquires. */
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#endif

#ifdef TIDE__ASAN
/* Poisoned memory is reported when touched ("use-after-poison"). */
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define TIDE__VALGRIND 1
#endif
#endif

#endif
