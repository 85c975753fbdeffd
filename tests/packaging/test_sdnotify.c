/* test_sdnotify.c: bz_sd_notify (daemon/sdnotify.c), the readiness message the unit's Type=notify
 * waits for: nothing without $NOTIFY_SOCKET, the exact text to a path socket and to an abstract
 * one ("@name"), an error (not a crash) for a socket nobody listens on or an unsupported form. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

/* Bind a datagram socket at name (a path, or "@abstract"); returns the fd. */
static int listen_at(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(name);
    memcpy(sa.sun_path, name, n);
    if (name[0] == '@') sa.sun_path[0] = '\0';
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '@' ? 0 : 1));
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, len), 0, "bind %s: %s", name, strerror(errno));
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void expect_message(int fd, const char *want)
{
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    cr_assert(n >= 0, "nothing received: %s", strerror(errno));
    buf[n] = '\0';
    cr_assert_str_eq(buf, want);
}

Test(sdnotify, nothing_without_notify_socket)
{
    unsetenv("NOTIFY_SOCKET");
    cr_assert_eq(bz_sd_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    cr_assert_eq(bz_sd_notify("READY=1"), 0);
}

Test(sdnotify, path_socket)
{
    char dir[] = "/tmp/bz-sdnotify-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = listen_at(path);
    setenv("NOTIFY_SOCKET", path, 1);
    cr_assert_eq(bz_sd_notify("READY=1\nSTATUS=listening"), 1);
    expect_message(fd, "READY=1\nSTATUS=listening");
    cr_assert_eq(bz_sd_notify("STOPPING=1"), 1);
    expect_message(fd, "STOPPING=1");
    close(fd);
    unlink(path);
    rmdir(dir);
}

Test(sdnotify, abstract_socket)
{
    char name[64];
    snprintf(name, sizeof name, "@bz-sdnotify-test-%ld", (long)getpid());
    int fd = listen_at(name);
    setenv("NOTIFY_SOCKET", name, 1);
    cr_assert_eq(bz_sd_notify("READY=1"), 1);
    expect_message(fd, "READY=1");
    close(fd);
}

Test(sdnotify, errors_are_reported_not_fatal)
{
    setenv("NOTIFY_SOCKET", "/nonexistent/boltzd/notify", 1);
    cr_assert_lt(bz_sd_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    cr_assert_lt(bz_sd_notify("READY=1"), 0);
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[0] = '/';
    longname[sizeof longname - 1] = '\0';
    setenv("NOTIFY_SOCKET", longname, 1);
    cr_assert_lt(bz_sd_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "/tmp/x", 1);
    cr_assert_lt(bz_sd_notify(NULL), 0);
}
