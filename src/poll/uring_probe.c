/* Can io_uring run in this process? Asked of the kernel once, for the
 * facts every loop shares; each loop's own ring setup (uring.c) can still
 * fail (EMFILE, a memlock limit's ENOMEM) and is then its own fallback.
 *
 * What the io_uring backend needs, and so what is asked, in order:
 * kernel.io_uring_disabled not 2 (1 lets only a group in: setup then says
 * EPERM); io_uring_setup itself (ENOSYS: no io_uring; EPERM: seccomp, as
 * container profiles have it, or that sysctl); IORING_SETUP_R_DISABLED
 * and IORING_REGISTER_ENABLE_RINGS (Linux 5.10: rings start disabled so
 * the loop's thread is the one SINGLE_ISSUER binds); IORING_FEAT_NODROP
 * (5.5: no completion is lost to CQ overflow); IORING_FEAT_EXT_ARG (5.11:
 * the wait's time limit rides on the enter, where liburing would
 * otherwise post a timeout CQE of its own); and every opcode uring.c
 * submits, by IORING_REGISTER_PROBE. (Multishot receives and accepts are
 * uring_ms.c's to find out: it falls back to single ones without them.)
 *
 * A lasting answer (yes, or ENOSYS, EPERM, a missing feature) is kept for
 * the life of the process: loop creation then costs one atomic load here.
 * A passing one (EMFILE, ENFILE, ENOMEM, EAGAIN, EINTR) is not: the next
 * loop asks again. TIDE__URING_FAIL=EPERM|ENOSYS|ENOMEM|EMFILE (internal,
 * for CI's fallback step) makes the answer that error without asking.
 * SPDX-License-Identifier: MIT
 */
#include "poll/backend.h"

#include "base/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tide__uring_disabled_path = "/proc/sys/kernel/io_uring_disabled";

/* The opcodes uring.c submits: a backend that submits a new one adds it
 * here. */
static const struct {
    unsigned char op;
    const char *name;
} needed_ops[] = {
    {IORING_OP_POLL_ADD, "POLL_ADD"}, {IORING_OP_POLL_REMOVE, "POLL_REMOVE"},
    {IORING_OP_ACCEPT, "ACCEPT"},     {IORING_OP_CONNECT, "CONNECT"},
    {IORING_OP_RECV, "RECV"},         {IORING_OP_SEND, "SEND"},
    {IORING_OP_RECVMSG, "RECVMSG"},   {IORING_OP_SENDMSG, "SENDMSG"},
    {IORING_OP_READ, "READ"},         {IORING_OP_WRITE, "WRITE"},
    {IORING_OP_FSYNC, "FSYNC"},       {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
};

/* 0: not asked yet, or asked with a passing answer; 1: yes; < 0: no,
 * with this errno, for good; KEEPING: a thread is writing why_kept. The
 * thread that moves 0 to KEEPING writes why_kept, then stores the answer
 * (release); a reader that loads an answer (acquire) reads why_kept
 * after it, which is never written again. A thread that finds KEEPING
 * asks the kernel itself. No lock: a child forked while another thread
 * asked must not inherit one held (HAZARDS B37). */
#define KEEPING 2
static _Atomic int answer;
static char why_kept[96];

static bool passing(int err)
{
    return err == -EMFILE || err == -ENFILE || err == -ENOMEM ||
           err == -EAGAIN || err == -EINTR;
}

/* kernel.io_uring_disabled, or 0 where the kernel has no such sysctl
 * (before Linux 6.6). Plain libc, not the seam: a test's fault armed for
 * its own file opens must not land here. */
static int sysctl_disabled(void)
{
    char c = '0';
    int fd = open(tide__uring_disabled_path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    if (read(fd, &c, 1) != 1)
        c = '0';
    close(fd);
    return c >= '0' && c <= '9' ? c - '0' : 0;
}

static int forced_failure(void)
{
    static const struct {
        const char *name;
        int err;
    } names[] = {
        {"EPERM", EPERM},   {"ENOSYS", ENOSYS}, {"ENOMEM", ENOMEM},
        {"EMFILE", EMFILE}, {"EINVAL", EINVAL},
    };
    const char *e = getenv("TIDE__URING_FAIL");

    if (!e || !*e)
        return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(e, names[i].name) == 0)
            return -names[i].err;
    return -EPERM; /* any other value: refused, as seccomp refuses */
}

/* What an enabled probe ring says of the features and ops. */
static int ask_ring(struct io_uring *ring, unsigned features, char *why,
                    size_t n)
{
    if (!(features & IORING_FEAT_NODROP)) {
        snprintf(why, n, "no IORING_FEAT_NODROP (Linux 5.5)");
        return -ENOTSUP;
    }
    if (!(features & IORING_FEAT_EXT_ARG)) {
        snprintf(why, n, "no IORING_FEAT_EXT_ARG (Linux 5.11)");
        return -ENOTSUP;
    }
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (!p) {
        snprintf(why, n, "no IORING_REGISTER_PROBE (Linux 5.6)");
        return -ENOTSUP;
    }
    for (size_t i = 0; i < sizeof needed_ops / sizeof needed_ops[0]; i++) {
        if (!io_uring_opcode_supported(p, needed_ops[i].op)) {
            snprintf(why, n, "no IORING_OP_%s", needed_ops[i].name);
            io_uring_free_probe(p);
            return -ENOTSUP;
        }
    }
    io_uring_free_probe(p);
    int r = io_uring_register(ring->ring_fd, IORING_REGISTER_ENABLE_RINGS,
                              NULL, 0);
    if (r < 0) {
        snprintf(why, n, "no IORING_REGISTER_ENABLE_RINGS (Linux 5.10)");
        return -ENOTSUP;
    }
    return 0;
}

static int ask_kernel(char *why, size_t n)
{
    int err = forced_failure();

    if (err < 0) {
        snprintf(why, n, "io_uring_setup: %s (TIDE__URING_FAIL)",
                 strerror(-err));
        return err;
    }
    int disabled = sysctl_disabled();
    if (disabled >= 2) {
        snprintf(why, n, "kernel.io_uring_disabled=%d", disabled);
        return -EPERM;
    }
    struct io_uring ring;
    struct io_uring_params p = {.flags = IORING_SETUP_R_DISABLED};
    if (tide__sys_uring_setup(4, &ring, &p) < 0) {
        err = -errno;
        snprintf(why, n, "io_uring_setup: %s%s", strerror(errno),
                 err == -EPERM && disabled == 1
                     ? " (kernel.io_uring_disabled=1)"
                     : "");
        return err;
    }
    err = ask_ring(&ring, p.features, why, n);
    tide__sys_uring_exit(&ring);
    return err;
}

int tide__uring_probe(char *why, size_t n)
{
    int a = atomic_load_explicit(&answer, memory_order_acquire);

    if (a == 1)
        return 0;
    if (a < 0) {
        snprintf(why, n, "%s", why_kept);
        return a;
    }
    char said[sizeof why_kept] = "";
    int err = ask_kernel(said, sizeof said);
    snprintf(why, n, "%s", said);
    if (err < 0 && passing(err))
        return err;
    int unasked = 0;
    if (atomic_compare_exchange_strong_explicit(&answer, &unasked, KEEPING,
                                                memory_order_acq_rel,
                                                memory_order_relaxed)) {
        memcpy(why_kept, said, sizeof why_kept);
        atomic_store_explicit(&answer, err < 0 ? err : 1,
                              memory_order_release);
    }
    return err;
}

void tide__uring_probe_forget(void)
{
    atomic_store_explicit(&answer, 0, memory_order_relaxed);
}
