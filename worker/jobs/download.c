/*
 * download.c - the download engine (see dp_download.h).
 *
 * Every job is one transfer record holding one curl easy handle, reused
 * across retry attempts. A record lives on exactly one of two lists:
 * `active` (waiting for its next attempt, or running inside the multi
 * handle) or `done` (finished, waiting to be reported). Reports happen only
 * at the end of dp_dl_poll, outside every curl callback, so done() may add
 * and cancel jobs freely.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dl_guard.h"
#include "dl_sink.h"
#include "dp_clock.h"
#include "dp_download.h"

/* WAIT: between attempts; RUN: in the multi handle; HASH: received whole,
 * its finish with the sink (dl_sink.h: the record stays the sink's until
 * dp_sink_collect gives its body back); DONE: on the report list. */
typedef enum { DP_DL_WAIT, DP_DL_RUN, DP_DL_HASH, DP_DL_DONE } dp_dl_state_t;

typedef struct dp_dl_xfer {
    struct dp_dl_xfer *next, *prev;
    dp_dl_t *d;
    uint64_t id;
    dp_dl_state_t state;
    CURL *easy;
    char *url;
    bool store;
    uint64_t max_bytes;
    uint64_t deadline_us, start_us, retry_at_us;
    unsigned retries_left, attempts;
    bool orphan;   /* cancelled while hashing: freed when back */
    dp_body_t sb;  /* the body on its way through the sink (sb.hex) */
    char *body; /* returned body, cap bytes, NUL kept after len */
    size_t len, cap;
    uint64_t bytes;
    int fd; /* stored body, -1 when returned */
    char path[PATH_MAX];
    long status;
    char reason[DP_DL_REASON_MAX];
    int err; /* set by a callback that aborted, then the final error */
    char errmsg[DP_DL_ERRMSG_MAX];
    char curlerr[CURL_ERROR_SIZE];
    dp_value_t result;
    char refused[DP_GUARD_ADDR_MAX]; /* address the guard refused */
    const char *refused_why;
} dp_dl_xfer_t;

struct dp_dl {
    CURLM *multi;
    dp_sink_t *sink; /* hashes bodies, writes stored ones */
    dp_dl_opts_t o;
    char *ca_file, *store_dir; /* our copies, o points at them */
    dp_dl_done_fn done;
    void *ud;
    dp_dl_xfer_t *active;                /* doubly linked */
    dp_dl_xfer_t *done_head, *done_tail; /* FIFO through next */
    size_t n;
    bool closing;
};

/* curl codes and what they mean for a job; codes not listed are network
 * errors, not retried. */
static const struct {
    CURLcode rc;
    int err;
    bool transient;
} s_curl_map[] = {
    {CURLE_UNSUPPORTED_PROTOCOL, DP_ERR_INVALID, false},
    {CURLE_URL_MALFORMAT, DP_ERR_INVALID, false},
    {CURLE_TOO_MANY_REDIRECTS, DP_ERR_LIMIT, false},
    {CURLE_FILESIZE_EXCEEDED, DP_ERR_LIMIT, false},
    {CURLE_OPERATION_TIMEDOUT, DP_ERR_TIMEOUT, false},
    {CURLE_OUT_OF_MEMORY, DP_ERR_NOMEM, false},
    {CURLE_WRITE_ERROR, DP_ERR_IO, false},
    {CURLE_SEND_ERROR, DP_ERR_NETWORK, true},
    {CURLE_RECV_ERROR, DP_ERR_NETWORK, true},
    {CURLE_GOT_NOTHING, DP_ERR_NETWORK, true},
    {CURLE_PARTIAL_FILE, DP_ERR_NETWORK, true},
    {CURLE_HTTP2, DP_ERR_NETWORK, true},
    {CURLE_HTTP2_STREAM, DP_ERR_NETWORK, true},
    {CURLE_SSL_CONNECT_ERROR, DP_ERR_TLS, false},
    {CURLE_PEER_FAILED_VERIFICATION, DP_ERR_TLS, false},
    {CURLE_SSL_CERTPROBLEM, DP_ERR_TLS, false},
    {CURLE_SSL_CIPHER, DP_ERR_TLS, false},
    {CURLE_SSL_CACERT_BADFILE, DP_ERR_TLS, false},
    {CURLE_SSL_ISSUER_ERROR, DP_ERR_TLS, false},
    {CURLE_SSL_PINNEDPUBKEYNOTMATCH, DP_ERR_TLS, false},
    {CURLE_SSL_INVALIDCERTSTATUS, DP_ERR_TLS, false},
    {CURLE_SSL_CRL_BADFILE, DP_ERR_TLS, false},
    {CURLE_SSL_ENGINE_NOTFOUND, DP_ERR_TLS, false},
    {CURLE_SSL_ENGINE_SETFAILED, DP_ERR_TLS, false},
    {CURLE_SSL_ENGINE_INITFAILED, DP_ERR_TLS, false},
    {CURLE_SSL_SHUTDOWN_FAILED, DP_ERR_TLS, false},
    {CURLE_SSL_CLIENTCERT, DP_ERR_TLS, false},
    {CURLE_USE_SSL_FAILED, DP_ERR_TLS, false},
};

static void s_setf(dp_dl_xfer_t *x, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* s_setf: record error err with a formatted message on x. */
static void s_setf(dp_dl_xfer_t *x, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->errmsg, sizeof x->errmsg, fmt, ap);
    va_end(ap);
    x->err = err;
}

void dp_dl_opts_default(dp_dl_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->max_bytes = DP_DOWNLOAD_MAX_BYTES_DEFAULT;
    o->connect_timeout_ms = DP_DL_CONNECT_TIMEOUT_MS_DEFAULT;
    o->low_speed_bytes = DP_DL_LOW_SPEED_BYTES_DEFAULT;
    o->low_speed_secs = DP_DL_LOW_SPEED_SECS_DEFAULT;
    o->max_redirects = DP_DL_MAX_REDIRECTS_DEFAULT;
}

/* ---- file names ---- */

/* s_sink_file: n more bytes of the stored body, to the sink. */
static size_t s_sink_file(dp_dl_xfer_t *x, const char *p, size_t n)
{
    int err = dp_sink_put(x->d->sink, &x->sb, p, n);
    if (err) {
        s_setf(x, err, "%s", x->sb.errmsg);
        return 0;
    }
    return n;
}

/* s_body_room: make room for n more bytes and the NUL: exactly that much
 * when `exact` (a Content-Length said how much comes), else by doubling;
 * never past the ceiling. */
static int s_body_room(dp_dl_xfer_t *x, size_t n, bool exact)
{
    if (x->cap - x->len >= n + 1)
        return 0;
    size_t cap = exact ? x->len + n + 1 : x->cap ? x->cap : DP_DL_BODY_INITIAL;
    while (cap - x->len < n + 1)
        cap *= 2;
    if (x->max_bytes < SIZE_MAX && cap > x->max_bytes + 1)
        cap = (size_t)x->max_bytes + 1;
    char *b = realloc(x->body, cap);
    if (!b) {
        s_setf(x, DP_ERR_NOMEM, "no memory for a %zu byte body", cap);
        return x->err;
    }
    x->body = b;
    x->cap = cap;
    return 0;
}

/* s_sink_mem: append n bytes to the returned body. */
static size_t s_sink_mem(dp_dl_xfer_t *x, const char *p, size_t n)
{
    if (s_body_room(x, n, false))
        return 0;
    memcpy(x->body + x->len, p, n);
    x->len += n;
    x->body[x->len] = '\0';
    return n;
}

/* s_on_body: enforce the ceiling, keep or save the bytes. */
static size_t s_on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    dp_dl_xfer_t *x = ud;
    size_t n = size * nmemb;
    if (x->bytes + n > x->max_bytes) {
        s_setf(x, DP_ERR_LIMIT, "body larger than %llu bytes",
               (unsigned long long)x->max_bytes);
        return 0;
    }
    x->bytes += n;
    return x->fd >= 0 ? s_sink_file(x, p, n) : s_sink_mem(x, p, n);
}

/* s_parse_status: keep the reason phrase of "HTTP/1.1 404 Not Found". */
static void s_parse_status(dp_dl_xfer_t *x, const char *h, size_t n)
{
    size_t k = 0;
    while (k < n && h[k] != ' ')
        k++;
    while (k < n && h[k] == ' ')
        k++;
    while (k < n && h[k] >= '0' && h[k] <= '9')
        k++;
    while (k < n && h[k] == ' ')
        k++;
    size_t r = 0;
    /* server text: keep printable ASCII only */
    while (k < n && h[k] != '\r' && h[k] != '\n' && r + 1 < sizeof x->reason) {
        x->reason[r++] = h[k] >= ' ' && h[k] <= '~' ? h[k] : '?';
        k++;
    }
    x->reason[r] = '\0';
}

/* s_on_header: note the reason phrase; refuse an oversized Content-Length
 * before any of the body arrives. */
static size_t s_on_header(char *h, size_t size, size_t nitems, void *ud)
{
    dp_dl_xfer_t *x = ud;
    size_t n = size * nitems;
    static const char clen[] = "content-length:";
    static const char http[] = "HTTP/";
    if (n >= sizeof http - 1 && memcmp(h, http, sizeof http - 1) == 0) {
        s_parse_status(x, h, n);
        return n;
    }
    if (n < sizeof clen - 1 || strncasecmp(h, clen, sizeof clen - 1) != 0)
        return n;
    size_t k = sizeof clen - 1, d = 0;
    char digits[DP_DL_CLEN_DIGITS_MAX + 1];
    while (k < n && (h[k] == ' ' || h[k] == '\t'))
        k++;
    while (k < n && h[k] >= '0' && h[k] <= '9' && d < DP_DL_CLEN_DIGITS_MAX)
        digits[d++] = h[k++];
    digits[d] = '\0';
    if (d == 0)
        return n;
    errno = 0;
    unsigned long long v = strtoull(digits, NULL, 10);
    bool more = k < n && h[k] >= '0' && h[k] <= '9';
    if (errno == ERANGE || more || v > x->max_bytes) {
        s_setf(x, DP_ERR_LIMIT,
               "body larger than %llu bytes (Content-Length %s%s)",
               (unsigned long long)x->max_bytes, digits, more ? "..." : "");
        return 0;
    }
    /* One allocation of the announced size instead of a doubling chain
     * (each step copies and faults in fresh pages); a redirect's or a
     * lying header costs at most DP_DL_BODY_PREALLOC_MAX of address
     * space, untouched until bytes arrive. */
    if (x->fd < 0 && v > 0 &&
        s_body_room(x,
                    v < DP_DL_BODY_PREALLOC_MAX ? (size_t)v
                                                : DP_DL_BODY_PREALLOC_MAX,
                    true))
        return 0;
    return n;
}

/* ---- transfer records and their two lists ---- */

static void s_push_active(dp_dl_t *d, dp_dl_xfer_t *x)
{
    x->prev = NULL;
    x->next = d->active;
    if (d->active)
        d->active->prev = x;
    d->active = x;
}

static void s_unlink_active(dp_dl_t *d, dp_dl_xfer_t *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        d->active = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->next = x->prev = NULL;
}

/* s_finish: x is over (x->err says how); queue it for its report. */
static void s_finish(dp_dl_xfer_t *x)
{
    dp_dl_t *d = x->d;
    if (x->state == DP_DL_RUN)
        curl_multi_remove_handle(d->multi, x->easy);
    s_unlink_active(d, x);
    x->state = DP_DL_DONE;
    if (d->done_tail)
        d->done_tail->next = x;
    else
        d->done_head = x;
    d->done_tail = x;
}

static dp_dl_xfer_t *s_find(dp_dl_t *d, uint64_t id, dp_dl_xfer_t **before)
{
    for (dp_dl_xfer_t *x = d->active; x; x = x->next) {
        if (x->id == id)
            return x;
    }
    *before = NULL;
    for (dp_dl_xfer_t *x = d->done_head; x; *before = x, x = x->next) {
        if (x->id == id)
            return x;
    }
    return NULL;
}

static void s_xfer_free(dp_dl_xfer_t *x)
{
    if (!x)
        return;
    if (x->easy) {
        if (x->state == DP_DL_RUN)
            curl_multi_remove_handle(x->d->multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    dp_sink_drop(x->d->sink, &x->sb); /* the sink is done with it */
    free(x->body);
    if (x->fd >= 0) { /* a stored body that did not complete */
        close(x->fd);
        unlink(x->path);
    }
    dp_value_clear(&x->result);
    free(x->url);
    free(x);
}

static dp_dl_xfer_t *s_xfer_new(dp_dl_t *d, uint64_t id, uint64_t deadline,
                                unsigned retries)
{
    dp_dl_xfer_t *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->d = d;
    x->id = id;
    x->fd = -1;
    dp_body_init(&x->sb, -1, x->path);
    x->state = DP_DL_WAIT;
    x->deadline_us = deadline;
    x->start_us = dp_now_us();
    x->retries_left = retries;
    x->max_bytes = d->o.max_bytes;
    x->result = dp_nil();
    x->easy = curl_easy_init();
    if (!x->easy) {
        s_xfer_free(x);
        return NULL;
    }
    return x;
}

/* ---- arguments ---- */

/* s_check_url: http(s) only, decided before any traffic. */
static int s_check_url(dp_dl_xfer_t *x, const dp_value_t *a)
{
    if (a->type != DP_STR || a->v.s.len == 0 ||
        strlen(a->v.s.ptr) != a->v.s.len) {
        s_setf(x, DP_ERR_INVALID, "URL must be non-empty text");
        return x->err;
    }
    if (a->v.s.len > DP_DL_URL_MAX) {
        s_setf(x, DP_ERR_INVALID, "URL longer than %d bytes", DP_DL_URL_MAX);
        return x->err;
    }
    CURLU *u = curl_url();
    char *scheme = NULL;
    CURLUcode uc =
        u ? curl_url_set(u, CURLUPART_URL, a->v.s.ptr, CURLU_NON_SUPPORT_SCHEME)
          : CURLUE_OUT_OF_MEMORY;
    if (!uc)
        uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc)
        s_setf(x, DP_ERR_INVALID, "bad URL: %s", curl_url_strerror(uc));
    else if (strcasecmp(scheme, "http") != 0 &&
             strcasecmp(scheme, "https") != 0)
        s_setf(x, DP_ERR_INVALID, "scheme '%.16s' refused: http(s) only",
               scheme);
    curl_free(scheme);
    curl_url_cleanup(u);
    if (!x->err && !(x->url = strdup(a->v.s.ptr)))
        s_setf(x, DP_ERR_NOMEM, "no memory");
    return x->err;
}

static bool s_key_is(const dp_value_t *key, const char *name)
{
    return key->type == DP_STR && key->v.s.len == strlen(name) &&
           memcmp(key->v.s.ptr, name, key->v.s.len) == 0;
}

/* s_check_options: the optional OPTIONS map (see dp_download.h). */
static int s_check_options(dp_dl_xfer_t *x, const dp_value_t *m)
{
    x->store = x->d->store_dir != NULL;
    if (!m || m->type == DP_NIL)
        return 0;
    if (m->type != DP_MAP) {
        s_setf(x, DP_ERR_INVALID, "OPTIONS must be a map");
        return x->err;
    }
    for (size_t k = 0; k < m->v.a.len && !x->err; k++) {
        const dp_value_t *key = &m->v.a.items[2 * k];
        const dp_value_t *val = &m->v.a.items[2 * k + 1];
        char why[DP_DL_ERRMSG_MAX];
        uint64_t u;
        if (s_key_is(key, "store")) {
            if (val->type != DP_BOOL)
                s_setf(x, DP_ERR_INVALID, "option store: expected a bool");
            else if (val->v.b && !x->d->store_dir)
                s_setf(x, DP_ERR_INVALID,
                       "option store: no store directory here");
            else
                x->store = val->v.b;
        } else if (s_key_is(key, "max_bytes")) {
            if (dp_job_arg_uint64(val, &u, why, sizeof why))
                s_setf(x, DP_ERR_INVALID, "option max_bytes: %s", why);
            else if (u < x->max_bytes)
                x->max_bytes = u;
        } else {
            s_setf(x, DP_ERR_INVALID, "unknown option '%.32s'",
                   key->type == DP_STR ? key->v.s.ptr : "(not text)");
        }
    }
    return x->err;
}

static int s_check_args(dp_dl_xfer_t *x, const dp_value_t *args, size_t nargs)
{
    if (nargs < 1 || nargs > DP_DL_ARG_COUNT || !args) {
        s_setf(x, DP_ERR_ARITY, "download URL [OPTIONS]: got %zu arguments",
               nargs);
        return x->err;
    }
    if (s_check_url(x, &args[DP_DL_ARG_URL]))
        return x->err;
    return s_check_options(
        x, nargs > DP_DL_ARG_OPTIONS ? &args[DP_DL_ARG_OPTIONS] : NULL);
}

/* Set an easy option unless an earlier one failed (rc in scope). */
#define S_SETOPT(e, opt, val)                                                  \
    do {                                                                       \
        if (rc == CURLE_OK)                                                    \
            rc = curl_easy_setopt(e, opt, val);                                \
    } while (0)

/* s_open_socket: CURLOPT_OPENSOCKETFUNCTION, called with the address curl
 * is about to connect to (after DNS, for every redirect and every address
 * it tries): the guard's last word on where a download goes. */
static curl_socket_t s_open_socket(void *ud, curlsocktype purpose,
                                   struct curl_sockaddr *a)
{
    dp_dl_xfer_t *x = ud;
    const char *why;
    char addr[DP_GUARD_ADDR_MAX];
    if (purpose == CURLSOCKTYPE_IPCXN &&
        !dp_guard_check(x->d->o.guard, &a->addr, addr, sizeof addr, &why)) {
        if (!x->refused[0]) {
            snprintf(x->refused, sizeof x->refused, "%s", addr);
            x->refused_why = why;
        }
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* s_guard_setup: with a guard, every connection goes through it, and no
 * proxy from the environment (http_proxy) connects on our behalf. */
static CURLcode s_guard_setup(dp_dl_xfer_t *x)
{
    CURLcode rc = CURLE_OK;
    if (!x->d->o.guard)
        return rc;
    S_SETOPT(x->easy, CURLOPT_OPENSOCKETFUNCTION, s_open_socket);
    S_SETOPT(x->easy, CURLOPT_OPENSOCKETDATA, (void *)x);
    S_SETOPT(x->easy, CURLOPT_PROXY, "");
    return rc;
}

/* s_easy_setup: the options every attempt of x shares. */
static int s_easy_setup(dp_dl_xfer_t *x)
{
    const dp_dl_opts_t *o = &x->d->o;
    CURL *e = x->easy;
    CURLcode rc = CURLE_OK;
    S_SETOPT(e, CURLOPT_URL, x->url);
    S_SETOPT(e, CURLOPT_PRIVATE, (void *)x);
    S_SETOPT(e, CURLOPT_ERRORBUFFER, x->curlerr);
    S_SETOPT(e, CURLOPT_NOSIGNAL, 1L);
    S_SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
    S_SETOPT(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    S_SETOPT(e, CURLOPT_FOLLOWLOCATION, 1L);
    S_SETOPT(e, CURLOPT_MAXREDIRS, (long)o->max_redirects);
    S_SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    S_SETOPT(e, CURLOPT_LOW_SPEED_LIMIT, o->low_speed_bytes);
    S_SETOPT(e, CURLOPT_LOW_SPEED_TIME, o->low_speed_secs);
    S_SETOPT(e, CURLOPT_WRITEFUNCTION, s_on_body);
    S_SETOPT(e, CURLOPT_WRITEDATA, (void *)x);
    S_SETOPT(e, CURLOPT_HEADERFUNCTION, s_on_header);
    S_SETOPT(e, CURLOPT_HEADERDATA, (void *)x);
    S_SETOPT(e, CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
    S_SETOPT(e, CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : DP_DL_VERIFYHOST);
    S_SETOPT(e, CURLOPT_USERAGENT, "dpool/" DPOOL_VERSION);
    S_SETOPT(e, CURLOPT_BUFFERSIZE, DP_DL_RECV_BUFFER);
    if (o->ca_file)
        S_SETOPT(e, CURLOPT_CAINFO, o->ca_file);
    if (rc == CURLE_OK)
        rc = s_guard_setup(x);
    if (rc != CURLE_OK)
        s_setf(x, DP_ERR_INTERNAL, "curl setup: %s", curl_easy_strerror(rc));
    return x->err;
}

/* ---- attempts ---- */

/* s_reset_sink: empty the body kept so far (a new attempt starts). */
static int s_reset_sink(dp_dl_xfer_t *x)
{
    dp_sink_drop(x->d->sink, &x->sb); /* an earlier attempt's bytes */
    x->bytes = 0;
    x->len = 0;
    if (x->store && x->fd < 0) {
        char base[DP_DL_NAME_MAX + 1];
        const char *dir = x->d->store_dir;
        if (dp_dl_safe_name(x->url, base, sizeof base) ||
            (x->fd = dp_dl_open_unique(dir, base, x->path, sizeof x->path)) < 0)
            s_setf(x, DP_ERR_IO, "cannot create a file in %s: %s", dir,
                   strerror(errno));
    } else if (x->fd >= 0 &&
               (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0)) {
        s_setf(x, DP_ERR_IO, "truncating %s: %s", x->path, strerror(errno));
    }
    dp_body_init(&x->sb, x->fd, x->path);
    return x->err;
}

/* s_attempt_start: put x into the multi handle for one more try. */
static void s_attempt_start(dp_dl_xfer_t *x)
{
    uint64_t now = dp_now_us();
    x->status = 0;
    x->reason[0] = '\0';
    x->curlerr[0] = '\0';
    x->refused[0] = '\0';
    x->err = 0;
    if (x->deadline_us && now >= x->deadline_us) {
        s_setf(x, DP_ERR_TIMEOUT, "deadline passed before the transfer");
        s_finish(x);
        return;
    }
    long left_ms = 0; /* curl: 0 = no total limit */
    if (x->deadline_us)
        left_ms = (long)((x->deadline_us - now + DP_DL_US_PER_MS - 1) /
                         DP_DL_US_PER_MS);
    if (s_reset_sink(x)) {
        s_finish(x);
        return;
    }
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, left_ms);
    CURLMcode mc = curl_multi_add_handle(x->d->multi, x->easy);
    if (mc != CURLM_OK) {
        s_setf(x, DP_ERR_INTERNAL, "curl: %s", curl_multi_strerror(mc));
        s_finish(x);
        return;
    }
    x->state = DP_DL_RUN;
    x->attempts++;
}

/* s_classify: set x->err for how the attempt ended; true = worth a retry.*/
static bool s_classify(dp_dl_xfer_t *x, CURLcode rc)
{
    if (x->err) /* a callback stopped it */
        return false;
    if (x->refused[0] && rc != CURLE_OK) { /* never retried */
        s_setf(x, DP_ERR_NETWORK,
               "refused address %s (%s); allow with --allow-net", x->refused,
               x->refused_why);
        return false;
    }
    if (rc == CURLE_OK) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
        if (x->status < DP_DL_HTTP_ERROR_MIN)
            return false;
        s_setf(x, DP_ERR_HTTP, "HTTP %ld%s%s", x->status,
               x->reason[0] ? " " : "", x->reason);
        return x->status >= DP_DL_HTTP_SERVER_ERROR_MIN ||
               x->status == DP_DL_HTTP_TOO_MANY_REQUESTS;
    }
    int err = DP_ERR_NETWORK;
    bool transient = false;
    for (size_t k = 0; k < sizeof s_curl_map / sizeof s_curl_map[0]; k++) {
        if (s_curl_map[k].rc == rc) {
            err = s_curl_map[k].err;
            transient = s_curl_map[k].transient;
            break;
        }
    }
    const char *text = x->curlerr[0] ? x->curlerr : curl_easy_strerror(rc);
    /* The first URL was checked, so this is where a redirect led. */
    s_setf(x, err, "%s%s",
           rc == CURLE_UNSUPPORTED_PROTOCOL ? "redirect refused: " : "", text);
    return transient;
}

static uint64_t s_backoff_ms(unsigned attempts)
{
    uint64_t ms = DP_DL_RETRY_BASE_MS;
    for (unsigned k = 1; k < attempts && ms < DP_DL_RETRY_MAX_MS; k++)
        ms *= 2;
    return ms < DP_DL_RETRY_MAX_MS ? ms : DP_DL_RETRY_MAX_MS;
}

/* ---- results ---- */

/* s_put: pair k of map m is key -> v; DP_ERR_NOMEM when the key, or v that
 * should not be nil, failed to allocate. */
static int s_put(dp_value_t *m, size_t k, const char *key, dp_value_t v,
                 bool nil_ok)
{
    m->v.a.items[2 * k] = dp_str(key);
    m->v.a.items[2 * k + 1] = v;
    if (m->v.a.items[2 * k].type == DP_NIL || (!nil_ok && v.type == DP_NIL))
        return DP_ERR_NOMEM;
    return 0;
}

/* s_take_body: the returned body as a DP_BIN, moved out of x. */
static dp_value_t s_take_body(dp_dl_xfer_t *x)
{
    if (!x->body)
        return dp_bin("", 0);
    dp_value_t v = {.type = DP_BIN};
    v.v.s.ptr = x->body; /* NUL-terminated like dp_bin's */
    v.v.s.len = x->len;
    x->body = NULL;
    x->len = x->cap = 0;
    return v;
}

/* s_close_store: close a stored body; its file stays. */
static int s_close_store(dp_dl_xfer_t *x)
{
    if (x->fd < 0)
        return 0;
    int rc = close(x->fd);
    x->fd = -1;
    if (rc != 0) {
        s_setf(x, DP_ERR_IO, "closing %s: %s", x->path, strerror(errno));
        unlink(x->path);
    }
    return x->err;
}

/* s_build_result: the result map of a successful transfer. */
static void s_build_result(dp_dl_xfer_t *x)
{
    char *url = NULL, *ctype = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ctype);
    bool stored = x->fd >= 0;
    if (s_close_store(x))
        return;
    uint64_t ms = (dp_now_us() - x->start_us) / DP_DL_US_PER_MS;
    dp_value_t r = dp_dict(DP_DL_RESULT_PAIRS);
    int rc = r.type == DP_NIL ? DP_ERR_NOMEM : 0;
    if (!rc) {
        rc |= s_put(&r, 0, "url", dp_str(url ? url : x->url), false);
        rc |= s_put(&r, 1, "status", dp_uint((uint64_t)x->status), false);
        rc |= s_put(&r, 2, "bytes", dp_uint(x->bytes), false);
        rc |= s_put(&r, 3, "sha256", dp_str(x->sb.hex), false);
        rc |= s_put(&r, 4, "content_type", ctype ? dp_str(ctype) : dp_nil(),
                    ctype == NULL);
        rc |= s_put(&r, 5, "elapsed_ms", dp_uint(ms), false);
        rc |= stored ? s_put(&r, 6, "path", dp_str(x->path), false)
                     : s_put(&r, 6, "body", s_take_body(x), false);
    }
    if (rc) {
        dp_value_clear(&r);
        if (stored)
            unlink(x->path);
        s_setf(x, DP_ERR_NOMEM, "no memory for the result");
        return;
    }
    x->result = r;
}

/* s_build_http_error: "url" and "status" beside an HTTP error. */
static void s_build_http_error(dp_dl_xfer_t *x)
{
    char *url = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
    dp_value_t r = dp_dict(DP_DL_HTTP_ERR_PAIRS);
    if (r.type == DP_NIL)
        return;
    int rc = s_put(&r, 0, "url", dp_str(url ? url : x->url), false);
    rc |= s_put(&r, 1, "status", dp_uint((uint64_t)x->status), false);
    if (rc)
        dp_value_clear(&r);
    x->result = r;
}

/* ---- the sink's end ---- */

/* s_wake: the sink finished a body: wake curl_multi_poll. */
static void s_wake(void *arg)
{
    curl_multi_wakeup(((dp_dl_t *)arg)->multi);
}

/* s_body_finish: x was received whole: the sink writes what is left and
 * finishes the hash (state HASH, still on the active list so a cancel
 * finds it); s_collect_hashed reports it. */
static void s_body_finish(dp_dl_xfer_t *x)
{
    x->state = DP_DL_HASH;
    if (x->fd < 0) {
        x->sb.mem = x->body;
        x->sb.mem_len = x->len;
    }
    dp_sink_finish(x->d->sink, &x->sb);
}

/* s_collect_hashed: finish what the sink gave back; free the orphans. */
static void s_collect_hashed(dp_dl_t *d)
{
    dp_body_t *b = dp_sink_collect(d->sink);
    while (b) {
        dp_body_t *next = b->next;
        dp_dl_xfer_t *x =
            (dp_dl_xfer_t *)(void *)((char *)b - offsetof(dp_dl_xfer_t, sb));
        if (x->orphan) {
            s_xfer_free(x);
        } else {
            if (b->err)
                s_setf(x, b->err, "%s", b->errmsg);
            else
                s_build_result(x);
            s_finish(x);
        }
        b = next;
    }
}

/* s_on_complete: an attempt ended with rc: retry later, or finish. */
static void s_on_complete(dp_dl_xfer_t *x, CURLcode rc)
{
    curl_multi_remove_handle(x->d->multi, x->easy);
    x->state = DP_DL_WAIT;
    bool transient = s_classify(x, rc);
    if (x->err && transient && x->retries_left > 0) {
        uint64_t at = dp_now_us() + s_backoff_ms(x->attempts) * DP_DL_US_PER_MS;
        if (!x->deadline_us || at < x->deadline_us) {
            x->retries_left--;
            x->retry_at_us = at;
            return;
        }
    }
    if (!x->err) {
        s_body_finish(x); /* s_collect_hashed finishes it */
        return;
    }
    if (x->err == DP_ERR_HTTP)
        s_build_http_error(x);
    s_finish(x);
}

/* ---- the engine ---- */

dp_dl_t *dp_dl_new(const dp_dl_opts_t *o, dp_dl_done_fn done, void *ud)
{
    if (!done)
        return NULL;
    dp_dl_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    if (o)
        d->o = *o;
    else
        dp_dl_opts_default(&d->o);
    d->done = done;
    d->ud = ud;
    d->ca_file = d->o.ca_file ? strdup(d->o.ca_file) : NULL;
    d->store_dir = d->o.store_dir ? strdup(d->o.store_dir) : NULL;
    d->o.ca_file = d->ca_file;
    d->o.store_dir = d->store_dir;
    d->multi = curl_multi_init();
    d->sink = d->multi ? dp_sink_new(s_wake, d) : NULL;
    if (!d->sink || (o && o->ca_file && !d->ca_file) ||
        (o && o->store_dir && !d->store_dir)) {
        dp_dl_destroy(&d);
        return NULL;
    }
    return d;
}

int dp_dl_add(dp_dl_t *d, uint64_t job_id, const dp_value_t *args, size_t nargs,
              uint64_t deadline_us, unsigned retries)
{
    dp_dl_xfer_t *before;
    if (!d)
        return DP_ERR_INVALID;
    if (d->closing)
        return DP_ERR_CANCELLED;
    if (s_find(d, job_id, &before))
        return DP_ERR_INVALID;
    dp_dl_xfer_t *x = s_xfer_new(d, job_id, deadline_us, retries);
    if (!x)
        return DP_ERR_NOMEM;
    s_push_active(d, x);
    d->n++;
    if (s_check_args(x, args, nargs) || s_easy_setup(x))
        s_finish(x);
    else
        s_attempt_start(x);
    return 0;
}

/* s_report: hand every finished job to done(), oldest first. */
static void s_report(dp_dl_t *d)
{
    dp_dl_xfer_t *x;
    while ((x = d->done_head) != NULL) {
        d->done_head = x->next;
        if (!d->done_head)
            d->done_tail = NULL;
        x->next = NULL;
        d->n--;
        dp_value_t r = x->result;
        x->result = dp_nil();
        d->done(d->ud, x->id, x->err, x->err ? x->errmsg : NULL, &r);
        s_xfer_free(x);
    }
}

int dp_dl_cancel(dp_dl_t *d, uint64_t job_id)
{
    dp_dl_xfer_t *before = NULL;
    dp_dl_xfer_t *x = d ? s_find(d, job_id, &before) : NULL;
    if (!x)
        return DP_ERR_INVALID;
    bool hashing = x->state == DP_DL_HASH;
    if (x->state != DP_DL_DONE) {
        if (x->state == DP_DL_RUN)
            curl_multi_remove_handle(d->multi, x->easy);
        if (!hashing)
            x->state = DP_DL_WAIT;
        s_unlink_active(d, x);
    } else {
        if (before)
            before->next = x->next;
        else
            d->done_head = x->next;
        if (d->done_tail == x)
            d->done_tail = before;
        x->next = NULL;
    }
    d->n--;
    dp_value_t r = dp_nil();
    d->done(d->ud, x->id, DP_ERR_CANCELLED, "cancelled", &r);
    if (hashing)
        x->orphan = true; /* the sink holds it: freed when it is back */
    else
        s_xfer_free(x);
    return 0;
}

/* s_wait_ms: how long dp_dl_poll may sleep: up to the caller's timeout,
 * less when a retry is due or a report is waiting. */
static int s_wait_ms(const dp_dl_t *d, int timeout_ms, uint64_t now)
{
    int wait = timeout_ms < 0 ? INT_MAX : timeout_ms;
    if (d->done_head)
        return 0;
    for (const dp_dl_xfer_t *x = d->active; x && wait > 0; x = x->next) {
        if (x->state != DP_DL_WAIT)
            continue;
        uint64_t ms = x->retry_at_us <= now
                          ? 0
                          : (x->retry_at_us - now + DP_DL_US_PER_MS - 1) /
                                DP_DL_US_PER_MS;
        if (ms < (uint64_t)wait)
            wait = (int)ms;
    }
    return wait;
}

/* s_start_due: start the retries whose backoff is over. */
static void s_start_due(dp_dl_t *d)
{
    uint64_t now = dp_now_us();
    dp_dl_xfer_t *next;
    for (dp_dl_xfer_t *x = d->active; x; x = next) {
        next = x->next; /* x may move to the done list */
        if (x->state == DP_DL_WAIT && x->retry_at_us <= now)
            s_attempt_start(x);
    }
}

static void s_read_info(dp_dl_t *d)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        void *p = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
        if (p)
            s_on_complete(p, msg->data.result);
    }
}

/* poll(2) event bits and curl's names for them. */
static const struct {
    short poll;
    short curl;
} s_events[] = {
    {POLLIN, CURL_WAIT_POLLIN},
    {POLLPRI, CURL_WAIT_POLLPRI},
    {POLLOUT, CURL_WAIT_POLLOUT},
};

static short s_events_map(short bits, bool to_curl)
{
    short out = 0;
    for (size_t k = 0; k < sizeof s_events / sizeof s_events[0]; k++) {
        short from = to_curl ? s_events[k].poll : s_events[k].curl;
        if (bits & from)
            out |= to_curl ? s_events[k].curl : s_events[k].poll;
    }
    return out;
}

int dp_dl_poll(dp_dl_t *d, dp_dl_pollfd_t *extra, unsigned nextra,
               int timeout_ms)
{
    struct curl_waitfd cw[DP_DL_EXTRA_FDS_MAX];
    if (!d || nextra > DP_DL_EXTRA_FDS_MAX || (nextra && !extra))
        return DP_ERR_INVALID;
    for (unsigned k = 0; k < nextra; k++) {
        cw[k].fd = extra[k].fd;
        cw[k].events = s_events_map(extra[k].events, true);
        cw[k].revents = 0;
    }
    int wait = s_wait_ms(d, timeout_ms, dp_now_us());
    CURLMcode mc =
        curl_multi_poll(d->multi, nextra ? cw : NULL, nextra, wait, NULL);
    for (unsigned k = 0; k < nextra; k++)
        extra[k].revents = s_events_map(cw[k].revents, false);
    int running = 0;
    if (mc == CURLM_OK)
        mc = curl_multi_perform(d->multi, &running);
    s_read_info(d);
    s_collect_hashed(d);
    s_start_due(d);
    s_report(d);
    return mc == CURLM_OK ? 0 : DP_ERR_INTERNAL;
}

size_t dp_dl_active(const dp_dl_t *d)
{
    return d ? d->n : 0;
}

void dp_dl_destroy(dp_dl_t **dp)
{
    dp_dl_t *d = dp ? *dp : NULL;
    if (!d)
        return;
    d->closing = true;
    while (d->done_head || d->active)
        dp_dl_cancel(d, d->done_head ? d->done_head->id : d->active->id);
    if (d->sink) { /* the orphans come back, and are freed */
        dp_sink_wait(d->sink);
        s_collect_hashed(d);
        dp_sink_destroy(&d->sink);
    }
    if (d->multi)
        curl_multi_cleanup(d->multi);
    free(d->ca_file);
    free(d->store_dir);
    free(d);
    *dp = NULL;
}
