/* hub.h: wakes the live streams (SSE) when a worker has committed new observables or a job
 * changed status. A single generation counter under a mutex and condition variable: cheap to
 * publish, and a waiter simply re-reads the store after waking. */
#ifndef BZ_HUB_H
#define BZ_HUB_H

#include <stdbool.h>
#include <stdint.h>

typedef struct hub hub;

hub *hub_new(void);
void hub_free(hub *h);
/* Something changed (new records or a status): bump the generation, wake every waiter. */
void hub_publish(hub *h);
uint64_t hub_generation(hub *h);
/* Block until the generation differs from seen, the hub shuts down, or timeout_ms passes;
 * returns the current generation. */
uint64_t hub_wait(hub *h, uint64_t seen, int timeout_ms);
/* Wake all waiters for good (daemon shutdown). */
void hub_shutdown(hub *h);
bool hub_is_shutdown(hub *h);

#endif
