/*
 * dp_httpd.c - the test HTTP(S) server (see dp_httpd.h).
 *
 * Fork per connection keeps every route a few lines of blocking code; the
 * hit counters live in a MAP_SHARED page mapped before the fork, guarded by
 * a process-shared mutex, so all connection processes see one count.
 */
#include "dp_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    pthread_mutex_t lock;
    unsigned used;
    struct {
        char key[DP_HTTPD_KEY_MAX];
        unsigned hits;
    } keys[DP_HTTPD_KEYS_MAX];
} s_counts_t;

struct dp_httpd {
    pid_t pid;
    int port;
    bool tls;
    s_counts_t *counts;
};

/* One connection: the socket, its TLS session, what the server knows. */
typedef struct {
    int fd;
    SSL *ssl;
    const char *docroot;
    s_counts_t *counts;
} s_conn_t;

/* One parsed request. */
typedef struct {
    s_conn_t *c;
    bool head; /* HEAD: no body */
    char path[DP_HTTPD_TARGET_MAX];
    char query[DP_HTTPD_TARGET_MAX];
    unsigned hits; /* on ?key=, this one included */
} s_req_t;

typedef void (*s_route_fn)(s_req_t *r, const char *rest);

/* ---- small helpers ---- */

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / DP_HTTPD_MS_PER_S,
                          (ms % DP_HTTPD_MS_PER_S) * DP_HTTPD_NS_PER_MS};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int s_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* s_query: the percent-decoded value of name in query into out; false
 * when absent. */
static bool s_query(const char *query, const char *name, char *out,
                    size_t outlen)
{
    size_t nlen = strlen(name);
    for (const char *p = query; *p;) {
        size_t plen = strcspn(p, "&");
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t n = 0;
            for (size_t k = nlen + 1; k < plen && n + 1 < outlen; k++) {
                int c = (unsigned char)p[k];
                if (c == '%' && k + 2 < plen && s_hexval(p[k + 1]) >= 0 &&
                    s_hexval(p[k + 2]) >= 0) {
                    c = s_hexval(p[k + 1]) * 16 + s_hexval(p[k + 2]);
                    k += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                out[n++] = (char)c;
            }
            out[n] = '\0';
            return true;
        }
        p += plen + (p[plen] == '&');
    }
    return false;
}

/* s_parse_u64: the decimal text s; false unless it is all digits. */
static bool s_parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s < '0' || *s > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static uint64_t s_query_u64(const s_req_t *r, const char *name, uint64_t def)
{
    char num[DP_HTTPD_NUM_MAX];
    uint64_t v;
    if (s_query(r->query, name, num, sizeof num) && s_parse_u64(num, &v))
        return v;
    return def;
}

static unsigned s_count(s_counts_t *t, const char *key, bool bump)
{
    unsigned hits = 0;
    pthread_mutex_lock(&t->lock);
    unsigned k = 0;
    while (k < t->used && strcmp(t->keys[k].key, key) != 0)
        k++;
    if (k == t->used && bump && t->used < DP_HTTPD_KEYS_MAX) {
        snprintf(t->keys[k].key, sizeof t->keys[k].key, "%s", key);
        t->keys[k].hits = 0;
        t->used++;
    }
    if (k < t->used) {
        t->keys[k].hits += bump ? 1 : 0;
        hits = t->keys[k].hits;
    }
    pthread_mutex_unlock(&t->lock);
    return hits;
}

/* ---- connection I/O ---- */

static int s_send(s_conn_t *c, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w;
        if (c->ssl) {
            int k = SSL_write(c->ssl, b, n > INT_MAX ? INT_MAX : (int)n);
            w = k > 0 ? k : -1;
        } else {
            w = send(c->fd, b, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
        }
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static ssize_t s_recv(s_conn_t *c, void *p, size_t n)
{
    if (c->ssl) {
        int k = SSL_read(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
        return k > 0 ? k : -1;
    }
    ssize_t r;
    do
        r = recv(c->fd, p, n, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

static const struct {
    int status;
    const char *reason;
} s_reasons[] = {
    {200, "OK"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {400, "Bad Request"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {418, "I'm a teapot"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

static const char *s_reason(int status)
{
    for (size_t k = 0; k < sizeof s_reasons / sizeof s_reasons[0]; k++) {
        if (s_reasons[k].status == status)
            return s_reasons[k].reason;
    }
    return "Status";
}

/* s_head: the status line and headers; clen < 0 = no Content-Length;
 * extra is more header lines, each ending in CRLF. */
static int s_head(s_req_t *r, int status, const char *ctype, long long clen,
                  const char *extra)
{
    char h[DP_HTTPD_RESP_HEAD_MAX];
    char len[DP_HTTPD_NUM_MAX + sizeof "Content-Length: \r\n"] = "";
    if (clen >= 0)
        snprintf(len, sizeof len, "Content-Length: %lld\r\n", clen);
    int n = snprintf(h, sizeof h,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s"
                     "Connection: close\r\n\r\n",
                     status, s_reason(status), ctype, len, extra);
    if (n < 0 || (size_t)n >= sizeof h)
        return -1;
    return s_send(r->c, h, (size_t)n);
}

static void s_respond(s_req_t *r, int status, const char *extra,
                      const char *body)
{
    size_t n = strlen(body);
    if (s_head(r, status, "text/plain", (long long)n, extra) == 0 && !r->head)
        s_send(r->c, body, n);
}

/* ---- routes ---- */

static void s_route_status(s_req_t *r, const char *rest)
{
    uint64_t st;
    char body[DP_HTTPD_NUM_MAX + sizeof "status \n"];
    if (!s_parse_u64(rest, &st) || st < DP_HTTPD_STATUS_MIN ||
        st > DP_HTTPD_STATUS_MAX) {
        s_respond(r, DP_HTTP_BAD_REQUEST, "", "bad status\n");
        return;
    }
    snprintf(body, sizeof body, "status %d\n", (int)st);
    s_respond(r, (int)st, "", body);
}

static void s_route_redirect(s_req_t *r, const char *rest)
{
    uint64_t n;
    char loc[DP_HTTPD_NUM_MAX + sizeof "Location: /redirect/\r\n"];
    if (!s_parse_u64(rest, &n)) {
        s_respond(r, DP_HTTP_BAD_REQUEST, "", "bad count\n");
        return;
    }
    if (n == 0) {
        s_respond(r, DP_HTTP_OK, "", "ok");
        return;
    }
    snprintf(loc, sizeof loc, "Location: /redirect/%llu\r\n",
             (unsigned long long)(n - 1));
    s_respond(r, DP_HTTP_FOUND, loc, "redirect\n");
}

static void s_route_redirect_to(s_req_t *r, const char *rest)
{
    char url[DP_HTTPD_TARGET_MAX];
    char loc[DP_HTTPD_TARGET_MAX + sizeof "Location: \r\n"];
    (void)rest;
    if (!s_query(r->query, "url", url, sizeof url) || strpbrk(url, "\r\n")) {
        s_respond(r, DP_HTTP_BAD_REQUEST, "", "need url\n");
        return;
    }
    snprintf(loc, sizeof loc, "Location: %s\r\n", url);
    s_respond(r, DP_HTTP_FOUND, loc, "redirect\n");
}

static void s_route_slow(s_req_t *r, const char *rest)
{
    (void)rest;
    s_sleep_ms((long)s_query_u64(r, "ms", 0));
    s_respond(r, DP_HTTP_OK, "", "slow\n");
}

static void s_route_drip(s_req_t *r, const char *rest)
{
    (void)rest;
    uint64_t n = s_query_u64(r, "bytes", DP_HTTPD_DRIP_BYTES_DEFAULT);
    long ms = (long)s_query_u64(r, "ms", DP_HTTPD_DRIP_MS_DEFAULT);
    if (s_head(r, DP_HTTP_OK, "application/octet-stream", (long long)n, "") ||
        r->head)
        return;
    for (uint64_t k = 0; k < n; k++) {
        s_sleep_ms(ms);
        if (s_send(r->c, "x", 1))
            return;
    }
}

/* s_big: n generated bytes, plain or as chunks. */
static void s_route_reset(s_req_t *r, const char *rest)
{
    (void)rest;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(r->c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(r->c->fd);
    _exit(0);
}

static void s_big(s_req_t *r, bool chunked, bool with_len)
{
    uint64_t n = s_query_u64(r, "bytes", 0);
    char buf[DP_HTTPD_CHUNK];
    char size[DP_HTTPD_NUM_MAX];
    if (s_head(r, DP_HTTP_OK, "application/octet-stream",
               with_len ? (long long)n : -1,
               chunked ? "Transfer-Encoding: chunked\r\n" : "") ||
        r->head)
        return;
    /* cut=M: the first `fails` hits on the key stop after M bytes */
    uint64_t end = r->hits <= s_query_u64(r, "fails", 0)
                       ? s_query_u64(r, "cut", n)
                       : n;
    for (uint64_t off = 0; off < n;) {
        if (off >= end)
            s_route_reset(r, "");
        size_t k = n - off < sizeof buf ? (size_t)(n - off) : sizeof buf;
        if (end < n && end - off < k)
            k = (size_t)(end - off);
        dp_httpd_fill(off, buf, k);
        int sl = snprintf(size, sizeof size, "%zx\r\n", k);
        if ((chunked && s_send(r->c, size, (size_t)sl)) ||
            s_send(r->c, buf, k) ||
            (chunked && s_send(r->c, "\r\n", sizeof "\r\n" - 1)))
            return;
        off += k;
    }
    if (chunked)
        s_send(r->c, "0\r\n\r\n", sizeof "0\r\n\r\n" - 1);
}

static void s_route_big(s_req_t *r, const char *rest)
{
    (void)rest;
    s_big(r, false, true);
}

static void s_route_big_chunked(s_req_t *r, const char *rest)
{
    (void)rest;
    s_big(r, true, false);
}

static void s_route_big_noclen(s_req_t *r, const char *rest)
{
    (void)rest;
    s_big(r, false, false);
}

static void s_route_flaky(s_req_t *r, const char *rest)
{
    (void)rest;
    if (r->hits <= s_query_u64(r, "fails", 0))
        s_respond(r, DP_HTTP_SERVER_ERROR, "", "flaky\n");
    else
        s_respond(r, DP_HTTP_OK, "", "ok\n");
}

static void s_route_count(s_req_t *r, const char *rest)
{
    char key[DP_HTTPD_KEY_MAX];
    char body[DP_HTTPD_NUM_MAX];
    (void)rest;
    if (!s_query(r->query, "key", key, sizeof key)) {
        s_respond(r, DP_HTTP_BAD_REQUEST, "", "need key\n");
        return;
    }
    snprintf(body, sizeof body, "%u", s_count(r->c->counts, key, false));
    s_respond(r, DP_HTTP_OK, "", body);
}

static const struct {
    const char *ext;
    const char *type;
} s_types[] = {
    {".txt", "text/plain"},        {".html", "text/html"},
    {".json", "application/json"}, {".css", "text/css"},
    {".png", "image/png"},         {".gz", "application/gzip"},
};

static const char *s_ctype(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t k = 0; dot && k < sizeof s_types / sizeof s_types[0]; k++) {
        if (strcmp(dot, s_types[k].ext) == 0)
            return s_types[k].type;
    }
    return "application/octet-stream";
}

/* s_route_file: a file under the docroot; no ".." anywhere. */
static void s_route_file(s_req_t *r, const char *rest)
{
    char full[PATH_MAX];
    char buf[DP_HTTPD_CHUNK];
    struct stat st;
    (void)rest;
    int n = r->c->docroot
                ? snprintf(full, sizeof full, "%s%s", r->c->docroot, r->path)
                : -1;
    int fd = -1;
    if (n < 0 || (size_t)n >= sizeof full || strstr(r->path, "..") ||
        (fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 ||
        fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        s_respond(r, DP_HTTP_NOT_FOUND, "", "not found\n");
        return;
    }
    if (s_head(r, DP_HTTP_OK, s_ctype(full), (long long)st.st_size, "") == 0 &&
        !r->head) {
        ssize_t k;
        while ((k = read(fd, buf, sizeof buf)) > 0 &&
               s_send(r->c, buf, (size_t)k) == 0)
            ;
    }
    close(fd);
}

/* Routes by path: exact match, or prefix match when prefix is set (the
 * handler then gets what follows it). The last row catches the rest. */
static const struct {
    const char *path;
    bool prefix;
    s_route_fn fn;
} s_routes[] = {
    {"/status/", true, s_route_status},
    {"/redirect/", true, s_route_redirect},
    {"/redirect-to", false, s_route_redirect_to},
    {"/slow", false, s_route_slow},
    {"/drip", false, s_route_drip},
    {"/big", false, s_route_big},
    {"/big-chunked", false, s_route_big_chunked},
    {"/big-noclen", false, s_route_big_noclen},
    {"/reset", false, s_route_reset},
    {"/flaky", false, s_route_flaky},
    {"/count", false, s_route_count},
    {"", true, s_route_file},
};

static void s_dispatch(s_req_t *r)
{
    char key[DP_HTTPD_KEY_MAX];
    if (strcmp(r->path, "/count") != 0 &&
        s_query(r->query, "key", key, sizeof key))
        r->hits = s_count(r->c->counts, key, true);
    for (size_t k = 0; k < sizeof s_routes / sizeof s_routes[0]; k++) {
        size_t plen = strlen(s_routes[k].path);
        if (s_routes[k].prefix ? strncmp(r->path, s_routes[k].path, plen) == 0
                               : strcmp(r->path, s_routes[k].path) == 0) {
            s_routes[k].fn(r, r->path + plen);
            return;
        }
    }
}

/* ---- one connection ---- */

/* s_read_head: read until the blank line ending the head. 0 = read,
 * 1 = too large, -1 = connection failed. */
static int s_read_head(s_conn_t *c, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    while (n + 1 < cap) {
        ssize_t k = s_recv(c, buf + n, cap - 1 - n);
        if (k <= 0)
            return -1;
        n += (size_t)k;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            return 0;
    }
    return 1;
}

/* s_parse_line: "METHOD /path?query HTTP/1.x" into r; false if bad. */
static bool s_parse_line(const char *buf, s_req_t *r, bool *allowed)
{
    size_t mlen = strcspn(buf, " \r\n");
    const char *t = buf + mlen;
    if (*t != ' ')
        return false;
    t++;
    size_t tlen = strcspn(t, " \r\n");
    static const char version[] = "HTTP/1.";
    if (t[tlen] != ' ' ||
        strncmp(t + tlen + 1, version, sizeof version - 1) != 0 || t[0] != '/')
        return false;
    size_t plen = strcspn(t, "?");
    if (plen > tlen)
        plen = tlen;
    size_t qlen = plen < tlen ? tlen - plen - 1 : 0;
    if (plen >= sizeof r->path || qlen >= sizeof r->query)
        return false;
    memcpy(r->path, t, plen);
    r->path[plen] = '\0';
    memcpy(r->query, t + plen + (qlen ? 1 : 0), qlen);
    r->query[qlen] = '\0';
    r->head = mlen == sizeof "HEAD" - 1 && strncmp(buf, "HEAD", mlen) == 0;
    *allowed =
        r->head || (mlen == sizeof "GET" - 1 && strncmp(buf, "GET", mlen) == 0);
    return true;
}

static void s_serve(s_conn_t *c, SSL_CTX *ctx)
{
    struct timeval tv = {DP_HTTPD_IO_TIMEOUT_MS / DP_HTTPD_MS_PER_S,
                         (DP_HTTPD_IO_TIMEOUT_MS % DP_HTTPD_MS_PER_S) *
                             DP_HTTPD_US_PER_MS};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (ctx) {
        if (!(c->ssl = SSL_new(ctx)) || SSL_set_fd(c->ssl, c->fd) != 1 ||
            SSL_accept(c->ssl) != 1)
            return;
    }
    static s_req_t r; /* big; one per process */
    char buf[DP_HTTPD_HEAD_MAX];
    bool allowed = false;
    r.c = c;
    int rc = s_read_head(c, buf, sizeof buf);
    if (rc < 0)
        return;
    if (rc > 0)
        s_respond(&r, DP_HTTP_HEAD_TOO_LARGE, "", "head too large\n");
    else if (!s_parse_line(buf, &r, &allowed))
        s_respond(&r, DP_HTTP_BAD_REQUEST, "", "bad request\n");
    else if (!allowed)
        s_respond(&r, DP_HTTP_METHOD_NOT_ALLOWED, "", "GET or HEAD\n");
    else
        s_dispatch(&r);
    if (c->ssl)
        SSL_shutdown(c->ssl);
}

/* s_server: the accept loop of the server process; never returns. */
static void s_server(int lfd, SSL_CTX *ctx, const char *docroot,
                     s_counts_t *counts)
{
    struct sigaction sa = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_flags = SA_NOCLDWAIT; /* connection processes reap themselves */
    sigaction(SIGCHLD, &sa, NULL);
    pid_t self = getpid();
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED)
                s_sleep_ms(DP_HTTPD_ACCEPT_RETRY_MS);
            continue;
        }
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != self)
                _exit(0);
            close(lfd);
            s_conn_t c = {.fd = fd, .docroot = docroot, .counts = counts};
            s_serve(&c, ctx);
            close(fd);
            _exit(0);
        }
        close(fd);
    }
}

/* ---- the server object ---- */

static SSL_CTX *s_tls_ctx(const dp_httpd_opts_t *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || !o->key_file ||
        SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* s_listen: a listening socket on 127.0.0.1, ephemeral port in *port. */
static int s_listen(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    int one = 1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(fd, DP_HTTPD_BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static s_counts_t *s_counts_new(void)
{
    pthread_mutexattr_t ma;
    s_counts_t *t = mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return NULL;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&t->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    return t;
}

dp_httpd_t *dp_httpd_start(const dp_httpd_opts_t *o)
{
    static const dp_httpd_opts_t none = {0};
    o = o ? o : &none;
    dp_httpd_t *h = calloc(1, sizeof *h);
    SSL_CTX *ctx = NULL;
    int lfd = -1;
    if (!h || !(h->counts = s_counts_new()))
        goto fail;
    h->tls = o->cert_file != NULL;
    if ((h->tls && !(ctx = s_tls_ctx(o))) || (lfd = s_listen(&h->port)) < 0)
        goto fail;
    pid_t parent = getpid();
    fflush(NULL); /* nothing buffered gets written twice */
    h->pid = fork();
    if (h->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        s_server(lfd, ctx, o->docroot, h->counts);
    }
    if (h->pid < 0)
        goto fail;
    close(lfd);
    SSL_CTX_free(ctx);
    return h;
fail:
    if (lfd >= 0)
        close(lfd);
    SSL_CTX_free(ctx);
    if (h && h->counts)
        munmap(h->counts, sizeof *h->counts);
    free(h);
    return NULL;
}

int dp_httpd_port(const dp_httpd_t *h)
{
    return h->port;
}

pid_t dp_httpd_pid(const dp_httpd_t *h)
{
    return h->pid;
}

int dp_httpd_url(const dp_httpd_t *h, const char *path, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s://127.0.0.1:%d%s", h->tls ? "https" : "http",
                     h->port, path);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

void dp_httpd_stop(dp_httpd_t **hp)
{
    dp_httpd_t *h = hp ? *hp : NULL;
    if (!h)
        return;
    kill(h->pid, SIGKILL);
    while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    munmap(h->counts, sizeof *h->counts);
    free(h);
    *hp = NULL;
}

void dp_httpd_fill(uint64_t offset, void *buf, size_t n)
{
    unsigned char *p = buf;
    for (size_t k = 0; k < n; k++) {
        uint64_t x = offset + k; /* a 64-bit mix: no short period */
        x ^= x >> DP_HTTPD_MIX_SHIFT;
        x *= DP_HTTPD_MIX_MUL;
        x ^= x >> DP_HTTPD_MIX_SHIFT;
        p[k] = (unsigned char)x;
    }
}

/* ---- certificates ---- */

/* Extensions of the generated certificates: the CA's, the server's
 * (NULL = none). */
static const struct {
    int nid;
    const char *ca, *leaf;
} s_exts[] = {
    {NID_basic_constraints, "critical,CA:TRUE", "critical,CA:FALSE"},
    {NID_key_usage, "critical,keyCertSign,cRLSign",
     "critical,digitalSignature"},
    {NID_ext_key_usage, NULL, "serverAuth"},
    {NID_subject_alt_name, NULL, "DNS:localhost,IP:127.0.0.1"},
    {NID_subject_key_identifier, "hash", "hash"},
    {NID_authority_key_identifier, NULL, "keyid:always"},
};

static int s_add_exts(X509 *x, X509 *issuer)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    for (size_t k = 0; k < sizeof s_exts / sizeof s_exts[0]; k++) {
        const char *value = issuer ? s_exts[k].leaf : s_exts[k].ca;
        if (!value)
            continue;
        X509_EXTENSION *e =
            X509V3_EXT_conf_nid(NULL, &v3, s_exts[k].nid, value);
        int ok = e && X509_add_ext(x, e, -1) == 1;
        X509_EXTENSION_free(e);
        if (!ok)
            return -1;
    }
    return 0;
}

/* s_cert: a certificate for key named cn, signed by issuer with ikey, or
 * self-signed (a CA) when issuer is NULL. */
static X509 *s_cert(EVP_PKEY *key, const char *cn, long serial, X509 *issuer,
                    EVP_PKEY *ikey)
{
    X509 *x = X509_new();
    if (!x)
        return NULL;
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME *iname = issuer ? X509_get_subject_name(issuer) : name;
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial) != 1 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -DP_HTTPD_CERT_BACKDATE_S) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), DP_HTTPD_CERT_VALID_S) ||
        X509_set_pubkey(x, key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)cn, -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, iname) != 1 || s_add_exts(x, issuer) ||
        X509_sign(x, issuer ? ikey : key, EVP_sha256()) <= 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int s_write_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -1;
    int ok = PEM_write_X509(f, x) == 1;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int s_write_key(const char *path, EVP_PKEY *k)
{
    int fd =
        open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, DP_HTTPD_KEY_MODE);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int s_join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    return n < 0 || n >= PATH_MAX ? -1 : 0;
}

int dp_httpd_make_certs(const char *dir, dp_httpd_certs_t *out)
{
    EVP_PKEY *cakey = EVP_EC_gen("P-256");
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *ca = NULL, *leaf = NULL;
    int rc = -1;
    if (!cakey || !key || s_join(out->ca_file, dir, "ca.pem") ||
        s_join(out->cert_file, dir, "server.pem") ||
        s_join(out->key_file, dir, "server.key"))
        goto out;
    ca = s_cert(cakey, "dpool test CA", DP_HTTPD_CA_SERIAL, NULL, NULL);
    leaf =
        ca ? s_cert(key, "localhost", DP_HTTPD_LEAF_SERIAL, ca, cakey) : NULL;
    if (leaf && s_write_cert(out->ca_file, ca) == 0 &&
        s_write_cert(out->cert_file, leaf) == 0 &&
        s_write_key(out->key_file, key) == 0)
        rc = 0;
out:
    X509_free(leaf);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(cakey);
    return rc;
}
