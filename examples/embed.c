/* Embedding: a program with a poll() loop of its own runs tide inside it.
 * It watches tide's backend fd, waits no longer than tide's timeout, then
 * lets tide run one iteration (GLib, Qt or a game loop would do the same
 * in their own terms). Three tasks sleep; a thread hands a fourth its
 * answer with tide_call_soon_threadsafe, which makes the fd readable.
 * On the poll() backend, which has no such fd, tide does the waiting.
 */
#include <tide.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

static tide_future *answer;
static pthread_t thread;
static bool thread_started;

static void *sleeper(void *arg)
{
    double seconds = *(double *)arg;
    int err = tide_sleep(seconds);
    if (err == 0)
        printf("slept %.1f s\n", seconds);
    return err < 0 ? tide_fail(err) : NULL;
}

static void set_answer(void *text)
{
    tide_future_set_result(answer, text);
}

static void *thread_main(void *loop)
{
    struct timespec ts = {0, 400000000}; /* 0.2 s from either sleep */
    nanosleep(&ts, NULL);
    if (tide_call_soon_threadsafe(loop, set_answer, "hello") < 0)
        fprintf(stderr, "call_soon_threadsafe failed\n");
    return NULL;
}

/* Starts the thread (here, so that it counts from when the sleeps do),
 * then waits for its answer. */
static void *listener(void *loop)
{
    void *v;
    if (pthread_create(&thread, NULL, thread_main, loop) != 0)
        return tide_fail(-EAGAIN);
    thread_started = true;
    int err = tide_await(answer, &v);
    if (err == 0)
        printf("the thread says %s\n", (char *)v);
    return err < 0 ? tide_fail(err) : NULL;
}

/* tide's timeout in poll()'s milliseconds, rounded up; -1: no timeout. */
static int poll_ms(double t)
{
    int ms = t > 1e6 ? 1000000000 : (int)(t * 1e3);
    return isinf(t) ? -1 : ms < t * 1e3 ? ms + 1 : ms;
}

int main(void)
{
    static double delays[] = {0.8, 0.2, 0.6};
    tide_future *tasks[4];
    tide_loop *loop = tide_loop_new();
    if (!loop || !(answer = tide_future_new(loop)))
        return 1;
    for (int i = 0; i < 3; i++)
        if (!(tasks[i] = tide_create_task(loop, sleeper, &delays[i])))
            return 1;
    if (!(tasks[3] = tide_create_task(loop, listener, loop)))
        return 1;

    /* -ENOTSUP on the poll() backend (TIDE_BACKEND=poll): no fd stands
     * for it, so there the outer loop lets tide do the waiting. */
    int fd = tide_loop_backend_fd(loop);
    int rc = 1; /* the outer loop: until tide has nothing left to do */
    while (rc == 1) {
        double t;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (tide_loop_backend_timeout(loop, &t) < 0 ||
            (fd >= 0 && poll(&p, 1, poll_ms(t)) < 0))
            return 1;
        rc = tide_loop_run_once(loop, fd >= 0 ? 0 : t);
    }
    if (thread_started)
        pthread_join(thread, NULL);
    for (int i = 0; i < 4; i++) {
        if (tide_future_result(tasks[i], NULL) != 0)
            rc = -1;
        tide_future_release(tasks[i]);
    }
    tide_future_release(answer);
    return tide_loop_close(loop) == 0 && rc == 0 ? 0 : 1;
}
