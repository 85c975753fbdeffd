/* sdnotify.h: the systemd readiness protocol (sd_notify(3)) without libsystemd: one datagram
 * to the AF_UNIX socket named by $NOTIFY_SOCKET ("/path" or "@abstract"). The unit file
 * (systemd/boltzd.service, Type=notify) waits for "READY=1" before it counts boltzd as started. */
#ifndef BZ_SDNOTIFY_H
#define BZ_SDNOTIFY_H

/* Send state (e.g. "READY=1\nSTATUS=listening on ...") to the service manager. Returns 1 when
 * sent, 0 when $NOTIFY_SOCKET is unset (not started by systemd: nothing to do), a negative errno
 * value when it could not be sent. Never fatal: callers may ignore the result. */
int bz_sd_notify(const char *state);

#endif
