/* static.c: the dashboard's static files from cfg.web_dir, on GET/HEAD of any path outside
 * /api/v1. "/" (and a folder) serves its index.html; no directory listings; hidden names, "."
 * and ".." segments are refused, and the resolved real path must lie inside the real web_dir, so
 * neither "../" (MHD has already decoded %2e%2e) nor a symlink can lead out of it. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "routes.h"

typedef struct ctype {
    const char *ext;
    const char *type;
} ctype;

static const ctype ctypes[] = {
    {".html", "text/html; charset=utf-8"},  {".htm", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"}, {".json", "application/json"},
    {".map", "application/json"},           {".svg", "image/svg+xml"},
    {".png", "image/png"},                  {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},                {".gif", "image/gif"},
    {".ico", "image/x-icon"},               {".webp", "image/webp"},
    {".woff", "font/woff"},                 {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},  {".wasm", "application/wasm"},
};

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof ctypes / sizeof ctypes[0]; i++)
            if (!strcasecmp(dot, ctypes[i].ext)) return ctypes[i].type;
    return "application/octet-stream";
}

/* Every segment a plain name: not empty (except a trailing slash), not starting with '.', no
 * backslash or control characters. */
static bool safe_url(const char *url)
{
    if (url[0] != '/') return false;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '\\' || *p == 0x7f) return false;
    for (const char *s = url + 1; *s;) {
        size_t n = strcspn(s, "/");
        if (n == 0 && s[n]) return false; /* "//" */
        if (n > 0 && s[0] == '.') return false;
        s += n;
        if (*s == '/') s++;
    }
    return true;
}

static enum MHD_Result not_found(api_req *r)
{
    return api_error(r->conn, 404, "not_found", NULL, "no such file: %.200s", r->url);
}

/* Open root/rel (a folder: its index.html) if its real path lies inside root; -1 otherwise. */
static int open_inside(const char *root, const char *rel, struct stat *sb, char *real, size_t real_len)
{
    char path[PATH_MAX * 2];
    int k = snprintf(path, sizeof path, "%s/%s", root, rel);
    if (k < 0 || (size_t)k >= sizeof path) return -1;
    char rp[PATH_MAX];
    if (!realpath(path, rp) || stat(rp, sb)) return -1;
    if (S_ISDIR(sb->st_mode)) {
        if (strlen(rp) + 12 >= sizeof rp) return -1;
        strcat(rp, "/index.html");
        char rp2[PATH_MAX];
        if (!realpath(rp, rp2) || stat(rp2, sb)) return -1;
        memcpy(rp, rp2, sizeof rp);
    }
    size_t rl = strlen(root);
    if (strncmp(rp, root, rl) || rp[rl] != '/' || !S_ISREG(sb->st_mode)) return -1;
    snprintf(real, real_len, "%s", rp);
    return open(rp, O_RDONLY | O_CLOEXEC);
}

enum MHD_Result api_static(api_req *r)
{
    if (!safe_url(r->url)) return not_found(r);
    char root[PATH_MAX];
    if (!r->d->cfg.web_dir[0] || !realpath(r->d->cfg.web_dir, root)) return not_found(r);
    struct stat sb;
    char real[PATH_MAX];
    int fd = open_inside(root, r->url + 1, &sb, real, sizeof real);
    if (fd < 0) return not_found(r);
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return not_found(r);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd64((uint64_t)sb.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    return api_queue(r->conn, 200, resp, content_type(real));
}
