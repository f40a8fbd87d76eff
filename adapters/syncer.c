/* syncer.c: the durability thread (syncer.h). */
#include "syncer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct cf_syncer {
    cf_engine_t *e;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool dirty, stop;
    uint64_t synced;            /* under lock */
    uint64_t failures;          /* under lock */
    int pipe[2];                /* [0] the loop polls; [1] the thread writes */
};

static void *s_main(void *arg)
{
    cf_syncer_t *s = arg;
    int failed_after_stop = 0;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->dirty && !s->stop)
            pthread_cond_wait(&s->cond, &s->lock);
        if (!s->dirty && s->stop)
            break;
        s->dirty = false;
        pthread_mutex_unlock(&s->lock);
        uint64_t seq = 0;
        int rc = cf_engine_sync(s->e, &seq);
        pthread_mutex_lock(&s->lock);
        if (rc == 0) {
            if (seq > s->synced)
                s->synced = seq;
        } else {
            /* Not durable yet: the replies wait; try again shortly (at a
             * stop, a few times: the daemon must be able to exit). */
            s->failures++;
            s->dirty = !(s->stop && ++failed_after_stop > 3);
            pthread_mutex_unlock(&s->lock);
            const struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
            pthread_mutex_lock(&s->lock);
        }
        /* A full pipe means the loop has a report to read already. */
        ssize_t w = write(s->pipe[1], "s", 1);
        (void)w;
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

cf_syncer_t *cf_syncer_new(cf_engine_t *e)
{
    cf_syncer_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->e = e;
    if (pipe2(s->pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    int rc = pthread_create(&s->thread, NULL, s_main, s);
    if (rc != 0) {
        close(s->pipe[0]);
        close(s->pipe[1]);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        free(s);
        errno = rc;
        return NULL;
    }
    return s;
}

void cf_syncer_kick(cf_syncer_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->dirty = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

int cf_syncer_fd(const cf_syncer_t *s) { return s->pipe[0]; }

uint64_t cf_syncer_take(cf_syncer_t *s, uint64_t *failures)
{
    char buf[64];
    while (read(s->pipe[0], buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&s->lock);
    uint64_t seq = s->synced;
    if (failures)
        *failures = s->failures;
    pthread_mutex_unlock(&s->lock);
    return seq;
}

void cf_syncer_destroy(cf_syncer_t **s_p, uint64_t *ret_seq)
{
    if (!s_p || !*s_p)
        return;
    cf_syncer_t *s = *s_p;
    pthread_mutex_lock(&s->lock);
    s->dirty = true;            /* one last sync of everything committed */
    s->stop = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    if (ret_seq)
        *ret_seq = s->synced;
    close(s->pipe[0]);
    close(s->pipe[1]);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
    *s_p = NULL;
}
