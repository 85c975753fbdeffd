/* hub.c: the generation counter that wakes live streams (see hub.h). */
#include "hub.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct hub {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t generation;
    bool down;
};

hub *hub_new(void)
{
    hub *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &attr);
    pthread_condattr_destroy(&attr);
    return h;
}

void hub_free(hub *h)
{
    if (!h) return;
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void hub_publish(hub *h)
{
    pthread_mutex_lock(&h->mu);
    h->generation++;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

uint64_t hub_generation(hub *h)
{
    pthread_mutex_lock(&h->mu);
    uint64_t g = h->generation;
    pthread_mutex_unlock(&h->mu);
    return g;
}

uint64_t hub_wait(hub *h, uint64_t seen, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    while (h->generation == seen && !h->down && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&h->cv, &h->mu, &until);
    uint64_t g = h->generation;
    pthread_mutex_unlock(&h->mu);
    return g;
}

void hub_shutdown(hub *h)
{
    pthread_mutex_lock(&h->mu);
    h->down = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

bool hub_is_shutdown(hub *h)
{
    pthread_mutex_lock(&h->mu);
    bool d = h->down;
    pthread_mutex_unlock(&h->mu);
    return d;
}
