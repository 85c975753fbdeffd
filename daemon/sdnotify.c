/* sdnotify.c: see sdnotify.h. The protocol is one SOCK_DGRAM message of "KEY=VALUE" lines to
 * the socket in $NOTIFY_SOCKET; a leading '@' names a Linux abstract socket. */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int bz_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0]) return 0;
    if (!state) return -EINVAL;
    size_t plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return -EAFNOSUPPORT; /* vsock and other forms are not used for system services */
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@') sa.sun_path[0] = '\0'; /* abstract namespace: no terminating NUL counted */
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/' ? 1 : 0));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    size_t n = strlen(state);
    ssize_t sent;
    do sent = sendto(fd, state, n, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    while (sent < 0 && errno == EINTR);
    int err = sent < 0 ? errno : 0;
    close(fd);
    if (err) return -err;
    return (size_t)sent == n ? 1 : -EMSGSIZE;
}
