/* tide/pool.h: a thread pool for blocking work (asyncio's to_thread and
 * run_in_executor), DNS off the loop (getaddrinfo, getnameinfo), and
 * completing a future from another thread.
 *
 * The pool is one per process, shared by every loop, and started lazily:
 * its first job starts its first thread, and further threads start as
 * jobs queue up, up to the pool's size (4 by default; TIDE_POOL_SIZE=n in
 * the environment, read at the first job, or tide_pool_set_size). Idle
 * threads block (after spinning for a few tens of microseconds, so that
 * jobs that come back to back do not wait for a sleeping thread); they
 * are never killed, and they block every signal.
 *
 * Classes: each job names one (TIDE_POOL_CPU, TIDE_POOL_FILE,
 * TIDE_POOL_DNS), and at most `limit` jobs of a class run at once
 * (tide_pool_set_limit). By default CPU and file work may use every
 * thread and DNS at most half of them (at least one), so lookups that
 * hang for seconds leave threads for file and CPU work (libuv's failure:
 * four hung lookups block every file operation). With a size of 1, one
 * hung lookup holds the only thread.
 *
 * Jobs: fn(arg, &result) runs on a pool thread and returns 0 or a
 * negative errno; the result comes back to the loop that submitted the
 * job. Completions reach a loop without an allocation each, and a batch
 * of them costs the loop at most one wake-up.
 *
 * Cancellation (of the awaiting task, or of an executor future): a job
 * still queued is taken off the queue and never runs; a job already
 * running is abandoned: the caller gets -ECANCELED at once, the job runs
 * to its end on its thread (nothing is killed), and its result is then
 * passed to free_result (if not NULL; otherwise it is dropped as is:
 * give a free function when the result owns memory). Nothing is ever
 * delivered to a task or future that gave up on a job. A result that
 * came back in the same loop step as the cancel request is freed the same
 * way. Closing a loop cancels the tasks that wait on jobs and abandons
 * every job still in flight for it, so tide_loop_close never waits for
 * a hung job.
 *
 * fork(): the child starts with an empty pool (its threads are not
 * copied); jobs queued or running in the parent never complete in the
 * child, so a child must not wait on jobs its parent submitted. The pool
 * starts again in the child at its first job.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_POOL_H
#define TIDE_POOL_H

#include <tide.h>

#include <netdb.h>
#include <stddef.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The job classes. */
enum tide_pool_class {
    TIDE_POOL_CPU = 0,  /* the default: computation, anything else */
    TIDE_POOL_FILE = 1, /* file system calls */
    TIDE_POOL_DNS = 2,  /* name lookups (tide_getaddrinfo's class) */
};

/* Work for a pool thread: store the result in *result, return 0 or a
 * negative errno. */
typedef int (*tide_work_fn)(void *arg, void **result);

/* ---- Running work on the pool ----------------------------------------- */

/* asyncio's to_thread: run fn(arg, &value) on a pool thread in class
 * TIDE_POOL_CPU, and suspend the calling task until it returns. Returns
 * fn's return value, with the value fn stored in *result if result is
 * not NULL (even when fn fails: the caller then owns it); -ECANCELED if
 * the task is cancelled meanwhile (see above: the value is dropped);
 * -EINVAL if fn is NULL; -EPERM outside a task; -ENOMEM; -EAGAIN if no
 * pool thread could be started. Suspends. */
TIDE_API int tide_to_thread(tide_work_fn fn, void *arg, void **result);

/* tide_to_thread in class `cls`, with free_result (may be NULL) called
 * on a value nobody will receive (the job was abandoned, or result is
 * NULL). -EINVAL also for an unknown class. */
TIDE_API int tide_to_thread_ex(int cls, tide_work_fn fn, void *arg,
                               void (*free_result)(void *result),
                               void **result);

/* asyncio's run_in_executor: submit fn(arg, &value) in class `cls` and
 * return a new future on `loop` that completes with fn's value or error
 * (a value stored by a failing fn goes to free_result). The value is the
 * caller's once the future has it; if every reference to the future is
 * released before the job ends, it goes to free_result instead.
 * tide_future_cancel on it takes a queued job off the queue or abandons
 * a running one (see above), at once; it cannot be set by hand. Returns
 * a new reference; NULL with errno EINVAL (fn NULL, unknown class, loop
 * closed), ENOMEM or EAGAIN (no pool thread could be started). Never
 * suspends; callable outside a task (the loop's thread only). */
TIDE_API tide_future *tide_run_in_executor(tide_loop *loop, int cls,
                                           tide_work_fn fn, void *arg,
                                           void (*free_result)(void *));

/* ---- The pool's size and limits -------------------------------------- */

/* Set the most threads the pool may have (1 to 256). Lowering it lets
 * surplus threads end once they are idle (running jobs finish). Returns
 * 0; -EINVAL if n is 0 or above 256. Any thread. */
TIDE_API int tide_pool_set_size(unsigned n);

/* The pool's size: the last tide_pool_set_size, else TIDE_POOL_SIZE from
 * the environment (if it is a valid size), else 4. Any thread. */
TIDE_API unsigned tide_pool_get_size(void);

/* At most n jobs of class cls run at once (n larger than the size: no
 * limit but the size); n = 0 goes back to the default (see above).
 * Returns 0; -EINVAL for an unknown class. Any thread. */
TIDE_API int tide_pool_set_limit(int cls, unsigned n);

/* The limit in force for cls now; 0 for an unknown class. */
TIDE_API unsigned tide_pool_get_limit(int cls);

/* ---- DNS --------------------------------------------------------------
 * Lookups run on the pool's DNS class; numeric hosts (and services) are
 * resolved inline, without a thread. Resolver failures are negative
 * errnos: EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY and EAI_SERVICE give
 * -ENOENT (no such name); EAI_AGAIN and EAI_FAIL -EHOSTUNREACH (no
 * answer); EAI_FAMILY -EAFNOSUPPORT; EAI_SOCKTYPE -ESOCKTNOSUPPORT;
 * EAI_BADFLAGS -EINVAL; EAI_MEMORY -ENOMEM; EAI_OVERFLOW -ENOSPC;
 * EAI_SYSTEM the errno it carries. A cancelled lookup returns
 * -ECANCELED at once; its thread may go on, and what it finds is freed
 * when it ends. */

/* getaddrinfo(3) for tasks: node and service as getaddrinfo takes them
 * (either may be NULL, not both), hints may be NULL. Stores the list in
 * *res (free it with freeaddrinfo). Returns 0; the errors above;
 * -EINVAL if res is NULL or both names are; -ECANCELED; -EPERM outside a
 * task (unless resolved inline); -ENOMEM. Suspends unless resolved
 * inline. The strings and hints are copied: they may go when the call
 * returns. */
TIDE_API int tide_getaddrinfo(const char *node, const char *service,
                              const struct addrinfo *hints,
                              struct addrinfo **res);

/* getnameinfo(3) for tasks: host (hostlen bytes) and serv (servlen) as
 * getnameinfo fills them (either may be NULL with its length 0, not
 * both). With NI_NUMERICHOST and NI_NUMERICSERV in flags it is answered
 * inline. Returns 0; the errors above; -EINVAL (sa NULL, salen too big,
 * no buffer); -ECANCELED; -EPERM outside a task (unless inline);
 * -ENOMEM. Suspends unless inline. The buffers are written only when 0
 * is returned. */
TIDE_API int tide_getnameinfo(const struct sockaddr *sa, socklen_t salen,
                              char *host, size_t hostlen, char *serv,
                              size_t servlen, int flags);

/* ---- Completing a future from another thread ------------------------- */

/* From any thread: complete plain future f with value (or err, a
 * negative errno) on its loop's thread, soon, waking the loop if it
 * waits: as tide_future_set_result / _set_error would there (if f is
 * done by then, nothing happens). Returns 0; -EINVAL if f is NULL, or
 * err is not negative; -ESHUTDOWN once f's loop has begun closing;
 * -ENOMEM. f must stay alive until it is done: hold a reference on the
 * loop's thread (the awaiting task's own) and release it there. */
TIDE_API int tide_future_set_result_threadsafe(tide_future *f, void *value);
TIDE_API int tide_future_set_error_threadsafe(tide_future *f, int err);

#ifdef __cplusplus
}
#endif

#endif /* TIDE_POOL_H */
