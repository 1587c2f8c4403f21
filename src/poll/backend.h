/* The interface between the loop core and an I/O backend: the one place a
 * backend author reads.
 *
 * Operations. The core hands the backend a struct tide__op: a kind (recv,
 * send, accept, connect, poll, close, ...), an fd, a buffer or msghdr,
 * flags, and a 64-bit token. The backend runs it and reports its result
 * (bytes, a new fd, revents, or -errno) either at once (submit returns 1,
 * the result in op->result) or later, as a completion {token, result,
 * flags} out of wait(). The op's memory belongs to the core (a loop-owned
 * slot that never moves, never a task's stack) and stays valid, unchanged,
 * from submit until its completion is reported: the backend may keep the
 * pointer and read the op meanwhile (the buffer too), and must not touch
 * it after reporting it.
 *
 * Completions carry the token, never a pointer: the core finds the slot
 * from the token's index, checks the generation, and drops a completion
 * whose slot was freed or reused (HAZARDS B01-B04, B06-B08). The backend
 * never calls into the core; the core dispatches what wait() returned.
 *
 * Exactly one completion per submitted op, inline or from wait():
 * - cancel(op) asks for an early end. The completion still follows,
 *   exactly once, with -ECANCELED or, if the op raced to its end, with its
 *   real result (data received, a connection accepted): the caller must
 *   honour it (HAZARDS B41). cancel returns 1 if it completed the op at
 *   once (op->result set, nothing more will come), 0 if the completion
 *   comes out of a later wait().
 * - A CLOSE op completes every op still queued on its fd with -EBADF
 *   (out of a later wait), stops watching the fd, then closes it; its own
 *   result is close's. A backend that watches fds must stop watching one
 *   before it is closed (libuv #1099: a dup'd description keeps epoll
 *   reporting it).
 *
 * Readiness backends (epoll.c, poll.c, sharing ready.c) try the op's
 * system call at submit and complete it inline unless it would block;
 * then they queue it on its fd and retry it when the fd is reported
 * ready, in submission order per fd and direction. HUP and ERR count as
 * both readable and writable, so every queued op is retried and meets the
 * error or EOF in its own system call (B05). A completion backend
 * (io_uring, issue 11) submits natively; it may complete nothing inline.
 *
 * Other verbs: wait(timeout_ns, out, cap) blocks at most timeout_ns (-1:
 * no limit, 0: only look; never returns early unless it has completions
 * or was woken) and returns how many completions it wrote, or -errno;
 * wake() makes a wait in progress, or the next one, return soon: callable
 * from any thread and from a signal handler; fd() is one file descriptor
 * that is readable whenever wait(0) would find work (for embedding tide
 * in another loop; it may also be readable when a wait then finds
 * nothing), or -ENOTSUP.
 *
 * Every system call goes through the seam in base/sys.h, so tests can
 * fault it.
 * SPDX-License-Identifier: MIT
 */
#ifndef TIDE_POLL_BACKEND_H
#define TIDE_POLL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

enum tide__op_kind {
    TIDE__OP_POLL,    /* flags: POLLIN and/or POLLOUT wanted; result:
                       * revents (POLLIN, POLLOUT, POLLHUP, POLLERR,
                       * POLLRDHUP) once any wanted one or HUP/ERR holds */
    TIDE__OP_ACCEPT,  /* addr, addrlen (out, may be NULL); flags: accept4's;
                       * result: the new fd */
    TIDE__OP_CONNECT, /* addr, addr_len; result: 0 once connected */
    TIDE__OP_RECV,    /* buf, len, flags; addr/addrlen given: recvfrom */
    TIDE__OP_SEND,    /* buf, len, flags; addr given: sendto */
    TIDE__OP_RECVMSG, /* msg, flags */
    TIDE__OP_SENDMSG, /* msg, flags */
    TIDE__OP_READ,    /* buf, len, offset (< 0: the file position) */
    TIDE__OP_WRITE,   /* buf, len, offset (< 0: the file position) */
    TIDE__OP_FSYNC,   /* flags TIDE__FSYNC_DATASYNC: fdatasync, else fsync;
                       * result: 0. Completion backends only: a readiness
                       * backend refuses it (-ENOTSUP), as it would have to
                       * block the loop to make the call */
    TIDE__OP_CLOSE,   /* see above; flags TIDE__CLOSE_DETACH: stop
                       * watching the fd and complete its ops, but leave
                       * it open */
};

#define TIDE__CLOSE_DETACH 1
/* FSYNC flag: only the data and what reading it needs (fdatasync). */
#define TIDE__FSYNC_DATASYNC 1
/* CLOSE flag: fd's number now names a new file (a compact task accepted
 * it, or starts a connect on it, with its own system call): forget what
 * was known of an old file of that number if no op waits on it, and
 * neither close nor stop watching anything else. */
#define TIDE__CLOSE_FRESH 2

/* op->hint. TIDE__HINT_STREAM (RECV only): the fd is a TCP socket, whose
 * receive returns less than asked only when it has emptied the receive
 * queue (urgent data aside), so after such a short result nothing more
 * is readable until the fd's next readiness, unless the end of the
 * stream or an error was reported already (TIDE__READY_STICKY). A
 * readiness backend then waits for that readiness before the fd's next
 * hinted RECV instead of trying the call first (which would only see
 * EAGAIN); a completion backend may ignore the hint or use it for
 * IORING_RECVSEND_POLL_FIRST. Not for Unix stream sockets: their receive
 * also stops short between two writers' data (SO_PASSCRED) and after
 * passed fds. */
#define TIDE__HINT_STREAM 1u

/* Every send and sendmsg a backend makes adds MSG_NOSIGNAL: a peer that
 * went away gives -EPIPE, never SIGPIPE. */

struct tide__op {
    /* Set by the core before submit; read-only to the backend. */
    uint8_t kind; /* enum tide__op_kind */
    int fd;
    int flags;
    void *buf;
    size_t len;
    struct msghdr *msg;
    struct sockaddr *addr; /* RECV/ACCEPT: out; SEND/CONNECT: in */
    socklen_t *addrlen;    /* RECV/ACCEPT: in-out */
    socklen_t addr_len;    /* SEND/CONNECT: length of *addr */
    int64_t offset;
    uint64_t token; /* slot index | generation << 32 */
    uint8_t hint;   /* TIDE__HINT_*: what the core knows of the fd */
    /* Inline results land here; the core fills it from a completion. */
    ssize_t result;
    /* The backend's own while the op is in flight. */
    struct tide__op *bnext, *bprev; /* readiness: fd queue or done list */
    uint8_t bstate;                 /* readiness: where it is (ready.h) */
    uint8_t bflags;                 /* readiness: connect started, ... */
};

/* A completion reported by wait(). flags are for multishot backends
 * (TIDE__COMP_MORE: more completions follow for the same token). */
struct tide__completion {
    uint64_t token;
    ssize_t result;
    uint32_t flags;
};

#define TIDE__COMP_MORE 1u

struct tide__backend;

struct tide__backend_ops {
    const char *name;
    int (*open)(struct tide__backend *b);
    /* Free everything; ops still in flight are forgotten, not completed. */
    void (*close)(struct tide__backend *b);
    /* 1: done inline (op->result set); 0: in flight; -errno: refused
     * (-ENOMEM), nothing submitted and no completion will come. */
    int (*submit)(struct tide__backend *b, struct tide__op *op);
    /* op is in flight. 1: completed inline (op->result set); 0: its one
     * completion comes out of a later wait(). */
    int (*cancel)(struct tide__backend *b, struct tide__op *op);
    /* Optional (NULL: the backend holds nothing). For a caller about to
     * make op's system call itself (a compact task, io/op.c): a backend
     * that receives ahead of reads (io_uring's multishot receives) hands
     * over what it holds for op's fd. 1: op->result set from it; 0: it
     * holds nothing, make the call; -EAGAIN: it holds nothing but is
     * receiving for the fd, so a call would jump ahead of data on its
     * way: wait for a POLLIN op (which it answers) and ask again. */
    int (*take)(struct tide__backend *b, struct tide__op *op);
    int (*wait)(struct tide__backend *b, int64_t timeout_ns,
                struct tide__completion *out, int cap);
    void (*wake)(struct tide__backend *b);
    int (*fd)(struct tide__backend *b);
    /* true if the calling thread cannot drive this backend (submit with
     * a system call, wait, close with ops in flight): io_uring's
     * SINGLE_ISSUER ring belongs to the thread that first used it. NULL:
     * any thread may, one at a time. */
    bool (*foreign)(struct tide__backend *b);
};

/* The readiness backends' per-fd record (ready.c): the ops queued on the
 * fd, and what the backend knows of its readiness. */
struct tide__fdent {
    struct tide__op *rq, *rq_tail; /* read side: recv, accept, POLLIN */
    struct tide__op *wq, *wq_tail; /* write side: send, connect, POLLOUT */
    uint32_t gen;                  /* bumped when the fd is let go */
    uint32_t slot;                 /* poll: index + 1 in pfds; 0: none */
    uint8_t registered;            /* epoll: in the interest list */
    uint8_t ready;                 /* TIDE__READY_* seen, not yet used up
                                    * (epoll: edge-triggered) */
};

#define TIDE__READY_IN 1u
#define TIDE__READY_OUT 2u
/* A short receive no longer shows the fd drained (TIDE__HINT_STREAM):
 * urgent data was reported (POLLPRI: a TCP receive stops short at the
 * urgent mark), or the end of the stream or an error (POLLRDHUP,
 * POLLHUP, POLLERR: readable for good, and an edge-triggered backend
 * reports it once, maybe in the same event as the last bytes). For the
 * rest of the fd's record. */
#define TIDE__READY_STICKY 4u

struct tide__backend {
    const struct tide__backend_ops *ops;
    /* One fd that stands for the whole backend, or -1 if it has none
     * (poll). tide_loop_backend_fd hands it to programs that drive the
     * loop from their own, so every backend keeps this rule: it is
     * readable whenever wait(0) would dispatch something, and only then
     * (epoll: the epoll fd; an io_uring backend: the ring fd, readable
     * while completions are pending: one that holds completions back
     * until the loop enters the kernel must make the ring fd show them;
     * check IORING_SETUP_DEFER_TASKRUN against this). */
    int fd;
    int wake_fd;     /* eventfd wake() writes; a signal
                      * handler may write it too */
    size_t inflight; /* ops submitted, not yet reported */
    void *own;       /* a backend's own state (io_uring: its ring) */
    /* Set by tide__backend_open when it fell back from the backend asked
     * for or preferred, or ignored TIDE_BACKEND: what failed, for debug
     * mode to say (choose.c). */
    char why[192];
    /* Readiness backends (ready.c). */
    struct tide__fdent *fds; /* indexed by fd number */
    uint32_t nfds;
    struct tide__op *done, *done_tail; /* completed, not yet reported */
    void *pfds;                        /* poll: struct pollfd[] */
    uint32_t npfds, cap_pfds;
};

extern const struct tide__backend_ops tide__backend_epoll;
extern const struct tide__backend_ops tide__backend_poll;
#ifdef TIDE_HAVE_URING
extern const struct tide__backend_ops tide__backend_uring;
/* Ring entries the io_uring backend asks for (tests make it small). */
extern unsigned tide__uring_entries;
/* 0 if io_uring can run in this process, else -errno and why[] (n bytes)
 * says what is missing (uring_probe.c: asked once, a lasting answer
 * kept). */
int tide__uring_probe(char *why, size_t n);
/* Tests: forget the kept answer, so the next loop asks again; and the
 * file read for kernel.io_uring_disabled. Not while loops are made on
 * other threads. */
void tide__uring_probe_forget(void);
extern const char *tide__uring_disabled_path;
#endif

/* Open the backend named by TIDE_BACKEND (io_uring|epoll|poll), else the
 * default: io_uring where the build has it and it runs here (not under
 * valgrind), else epoll, else poll (choose.c). An io_uring that cannot
 * be set up (ENOSYS, EPERM, a disabled sysctl, a missing feature, a
 * memlock limit, EMFILE) falls back to epoll, and b->why says why. */
int tide__backend_open(struct tide__backend *b);

/* Open a given backend (tests run the contract against each). */
int tide__backend_open_with(struct tide__backend *b,
                            const struct tide__backend_ops *ops);

#endif
