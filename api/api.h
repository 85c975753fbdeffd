/* api.h: the HTTP API of `boltzd serve` (DESIGN.md "HTTP API", prefix /api/v1) on
 * libmicrohttpd: a route table, one handler file per resource, one error-reply function. */
#ifndef BZ_API_H
#define BZ_API_H

#include "bz_error.h"
#include "daemon.h"

typedef struct api_server api_server;

/* Listen on d->cfg.listen_host:port (port 0 picks a free one; *bound_port gets it). */
int api_start(bz_daemon *d, api_server **out, int *bound_port, bz_err *e);
/* Wait up to timeout_ms for the live streams to end (they end themselves once the hub is shut
 * down), so that stopping the server does not cut a stream mid-event. */
void api_wait_streams(int timeout_ms);
/* Stop accepting, end streams (the hub is shut down first), join threads. */
void api_stop(api_server *s);

#endif
