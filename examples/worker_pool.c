/* worker_pool.c: N workers on a bounded queue, a producer, join, shutdown.
 *
 * The producer puts jobs into a queue of at most 2 (it waits while the
 * queue is full); each worker gets a job, "works" (yields), marks it done.
 * join() returns once every job is done; shutdown() then makes the
 * workers' next get fail with -ESHUTDOWN, which ends them. The output is
 * deterministic: tide runs ready tasks in FIFO order.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <tide.h>
#include <tide/sync.h>

#define NWORKERS 3
#define NJOBS 7

static void *worker(void *arg)
{
    tide_queue *q = arg;
    tide_future *self = tide_current_task();
    void *job;
    int err, done = 0;

    while ((err = tide_queue_get(q, &job)) == 0) {
        printf("%s: job %ld\n", tide_task_get_name(self), (long)(intptr_t)job);
        err = tide_sleep(0); /* the work: let the others run */
        tide_queue_task_done(q);
        if (err < 0)
            return tide_fail(err);
        done++;
    }
    if (err != -ESHUTDOWN) /* the queue was shut down: the normal end */
        return tide_fail(err);
    printf("%s: %d jobs, stopping\n", tide_task_get_name(self), done);
    return NULL;
}

static void *main_task(void *unused)
{
    tide_future *workers[NWORKERS] = {NULL};
    tide_queue *q = tide_queue_new(2);
    int err = q ? 0 : -errno;

    (void)unused;
    for (int i = 0; i < NWORKERS && err == 0; i++) {
        tide_task_options opt = {.name =
                                     (const char *[]){"w1", "w2", "w3"}[i]};
        if (!(workers[i] = tide_create_task_ex(NULL, worker, q, &opt)))
            err = -errno;
    }
    for (intptr_t job = 1; job <= NJOBS && err == 0; job++)
        err = tide_queue_put(q, (void *)job); /* waits while full */
    if (err == 0)
        err = tide_queue_join(q);
    if (err == 0)
        printf("all %d jobs done\n", NJOBS);
    if (q)
        tide_queue_shutdown(q, false);
    for (int i = 0; i < NWORKERS; i++) {
        if (workers[i] && err == 0)
            err = tide_await(workers[i], NULL);
        tide_future_release(workers[i]);
    }
    tide_queue_free(q); /* after the workers are done with it */
    return err < 0 ? tide_fail(err) : NULL;
}

int main(void)
{
    int err = tide_run(main_task, NULL, NULL);
    if (err < 0) {
        fprintf(stderr, "worker_pool: %s\n", tide_strerror(err));
        return 1;
    }
    return 0;
}
