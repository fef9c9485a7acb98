/*
 * test_download.c - the download engine against the real test server
 * (tests/support/dp_httpd): bodies, digests, concurrency, retries,
 * redirects, refused schemes, limits, timeouts, cancel, stored files, safe
 * names and HTTPS.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dl_guard.h"
#include "dp_clock.h"
#include "dp_download.h"
#include "dp_httpd.h"

#define T_JOBS_MAX 64
#define T_URL_MAX 512
#define T_WAIT_S 20
#define T_POLL_MS 100
#define T_US_PER_MS 1000ULL
#define T_US_PER_S 1000000ULL
#define T_KIB 1024
#define T_NFTW_FDS 16
#define T_DIR_MAX 256

typedef struct {
    bool done;
    int err;
    char msg[DP_DL_ERRMSG_MAX];
    dp_value_t r;
} got_t;

static got_t g_got[T_JOBS_MAX];
static size_t g_ndone;
static dp_httpd_t *g_srv;
static char g_root[] = "/tmp/dp-dl-test-XXXXXX";
static char g_docroot[T_DIR_MAX];
static char g_store[T_DIR_MAX];

static void on_done(void *ud, uint64_t id, int err, const char *msg,
                    dp_value_t *r)
{
    (void)ud;
    cr_assert_lt(id, T_JOBS_MAX);
    cr_assert(!g_got[id].done, "done twice for job %llu",
              (unsigned long long)id);
    cr_assert((err == 0) == (msg == NULL));
    g_got[id].done = true;
    g_got[id].err = err;
    snprintf(g_got[id].msg, sizeof g_got[id].msg, "%s", msg ? msg : "");
    g_got[id].r = *r;
    *r = dp_nil();
    g_ndone++;
}

/* reset_got: forget every result so far (between fetches in one test). */
static void reset_got(void)
{
    for (size_t k = 0; k < T_JOBS_MAX; k++) {
        dp_value_clear(&g_got[k].r);
        g_got[k].done = false;
    }
    g_ndone = 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void write_file(const char *name, const void *p, size_t n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", g_docroot, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static void start_server(const dp_httpd_opts_t *o)
{
    g_srv = dp_httpd_start(o);
    cr_assert_not_null(g_srv, "server did not start");
}

static void setup_dirs(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    cr_assert_not_null(mkdtemp(g_root));
    snprintf(g_docroot, sizeof g_docroot, "%s/www", g_root);
    snprintf(g_store, sizeof g_store, "%s/store", g_root);
    cr_assert_eq(mkdir(g_docroot, 0700), 0);
    cr_assert_eq(mkdir(g_store, 0700), 0);
}

static void setup(void)
{
    setup_dirs();
    dp_httpd_opts_t o = {.docroot = g_docroot};
    start_server(&o);
}

static void teardown(void)
{
    pid_t pid = g_srv ? dp_httpd_pid(g_srv) : 0;
    dp_httpd_stop(&g_srv);
    if (pid > 0)
        cr_expect_eq(kill(pid, 0), -1, "server still there after stop");
    reset_got();
    nftw(g_root, rm_one, T_NFTW_FDS, FTW_DEPTH | FTW_PHYS);
    curl_global_cleanup();
}

/* url: the server's URL for path, in one of a few rotating buffers. */
static const char *url(const char *path)
{
    static char bufs[4][T_URL_MAX];
    static unsigned next;
    char *b = bufs[next++ % 4];
    cr_assert_eq(dp_httpd_url(g_srv, path, b, T_URL_MAX), 0);
    return b;
}

static void wait_all(dp_dl_t *d, size_t n)
{
    uint64_t end = dp_now_us() + T_WAIT_S * T_US_PER_S;
    while (g_ndone < n) {
        cr_assert_lt(dp_now_us(), end, "downloads hung (%zu of %zu done)",
                     g_ndone, n);
        cr_assert_eq(dp_dl_poll(d, NULL, 0, T_POLL_MS), 0);
    }
    cr_assert_eq(dp_dl_active(d), 0);
}

static uint64_t ms_from_now(uint64_t ms)
{
    return dp_now_us() + ms * T_US_PER_MS;
}

/* fetch: one job (id 0) on a fresh engine with options o (NULL =
 * defaults), optional OPTIONS map. */
static got_t *fetch_opts(const dp_dl_opts_t *o, const char *u,
                         const dp_value_t *opts, uint64_t deadline,
                         unsigned retries)
{
    dp_dl_t *d = dp_dl_new(o, on_done, NULL);
    cr_assert_not_null(d);
    dp_value_t args[2] = {dp_str(u), dp_nil()};
    if (opts)
        args[1] = *opts;
    cr_assert_eq(dp_dl_add(d, 0, args, opts ? 2 : 1, deadline, retries), 0);
    dp_value_clear(&args[0]);
    wait_all(d, 1);
    dp_dl_destroy(&d);
    cr_assert_null(d);
    return &g_got[0];
}

static got_t *fetch(const char *u, unsigned retries)
{
    return fetch_opts(NULL, u, NULL, 0, retries);
}

static const dp_value_t *field(const got_t *g, const char *key)
{
    const dp_value_t *v = dp_dict_get(&g->r, key);
    cr_assert_not_null(v, "result has no '%s'", key);
    return v;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    static const char hex[] = "0123456789abcdef";
    cr_assert(EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL));
    for (size_t k = 0; k < 32; k++) {
        out[2 * k] = hex[md[k] >> 4];
        out[2 * k + 1] = hex[md[k] & 15];
    }
    out[64] = '\0';
}

/* expect_body: a successful result whose body is exactly p[0..n). */
static void expect_body(const got_t *g, const void *p, size_t n)
{
    char hex[65];
    cr_assert_eq(g->err, 0, "error %d: %s", g->err, g->msg);
    cr_assert_eq(g->r.type, DP_MAP);
    const dp_value_t *body = field(g, "body");
    cr_assert_eq(body->type, DP_BIN);
    cr_assert_eq(body->v.s.len, n);
    cr_assert(memcmp(body->v.s.ptr, p, n) == 0, "body differs");
    cr_assert_eq(field(g, "bytes")->v.u, n);
    sha256_hex(p, n, hex);
    cr_assert_str_eq(field(g, "sha256")->v.s.ptr, hex);
    cr_assert_eq(field(g, "status")->v.u, 200);
}

static unsigned long hits(const char *key)
{
    char path[T_URL_MAX];
    snprintf(path, sizeof path, "/count?key=%s", key);
    size_t slot = T_JOBS_MAX - 1;
    dp_dl_t *d = dp_dl_new(NULL, on_done, NULL);
    dp_value_t a = dp_str(url(path));
    g_ndone = 0;
    cr_assert_eq(dp_dl_add(d, slot, &a, 1, 0, 0), 0);
    dp_value_clear(&a);
    wait_all(d, 1);
    dp_dl_destroy(&d);
    got_t *g = &g_got[slot];
    cr_assert_eq(g->err, 0, "%s", g->msg);
    unsigned long n = strtoul(field(g, "body")->v.s.ptr, NULL, 10);
    dp_value_clear(&g->r);
    g->done = false;
    return n;
}

static void *pattern(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n);
    cr_assert_not_null(p);
    dp_httpd_fill((uint64_t)seed << 32, p, n);
    return p;
}

TestSuite(download, .init = setup, .fini = teardown, .timeout = 60);

Test(download, body_identical_with_sha256)
{
    size_t n = 1024 * T_KIB + 7;
    void *p = pattern(n, 1);
    write_file("one.bin", p, n);
    got_t *g = fetch(url("/one.bin"), 0);
    expect_body(g, p, n);
    cr_assert_str_eq(field(g, "url")->v.s.ptr, url("/one.bin"));
    cr_assert_str_eq(field(g, "content_type")->v.s.ptr,
                     "application/octet-stream");
    cr_assert_eq(field(g, "elapsed_ms")->type, DP_UINT);
    free(p);
}

Test(download, empty_body)
{
    write_file("empty.txt", "", 0);
    got_t *g = fetch(url("/empty.txt"), 0);
    expect_body(g, "", 0);
    cr_assert_str_eq(field(g, "content_type")->v.s.ptr, "text/plain");
}

Test(download, forty_concurrent_files)
{
    enum { N = 40 };
    size_t n = 256 * T_KIB;
    void *p[N];
    char name[32];
    dp_dl_t *d = dp_dl_new(NULL, on_done, NULL);
    for (unsigned k = 0; k < N; k++) {
        p[k] = pattern(n, k + 100);
        snprintf(name, sizeof name, "f%u.bin", k);
        write_file(name, p[k], n);
    }
    for (unsigned k = 0; k < N; k++) {
        snprintf(name, sizeof name, "/f%u.bin", k);
        dp_value_t a = dp_str(url(name));
        cr_assert_eq(dp_dl_add(d, k, &a, 1, 0, 0), 0);
        dp_value_clear(&a);
    }
    cr_assert_eq(dp_dl_active(d), N);
    wait_all(d, N);
    for (unsigned k = 0; k < N; k++) {
        expect_body(&g_got[k], p[k], n);
        free(p[k]);
    }
    dp_dl_destroy(&d);
}

Test(download, big_chunked_and_unsized)
{
    size_t n = 300000;
    unsigned char *p = malloc(n);
    cr_assert_not_null(p);
    dp_httpd_fill(0, p, n);
    expect_body(fetch(url("/big-chunked?bytes=300000"), 0), p, n);
    reset_got();
    expect_body(fetch(url("/big-noclen?bytes=300000"), 0), p, n);
    free(p);
}

Test(download, http_404_is_permanent)
{
    got_t *g = fetch(url("/status/404?key=nf"), 3);
    cr_assert_eq(g->err, DP_ERR_HTTP);
    cr_assert_str_eq(g->msg, "HTTP 404 Not Found");
    cr_assert_eq(field(g, "status")->v.u, 404);
    cr_assert_eq(hits("nf"), 1, "a 404 was retried");
}

Test(download, flaky_500_retried_to_success)
{
    uint64_t t0 = dp_now_us();
    got_t *g = fetch(url("/flaky?key=f1&fails=2"), 3);
    cr_assert_eq(g->err, 0, "%s", g->msg);
    cr_assert_str_eq(field(g, "body")->v.s.ptr, "ok\n");
    cr_assert_eq(hits("f1"), 3);
    /* backoff: 100 ms then 200 ms */
    cr_assert_geq(dp_now_us() - t0, (DP_DL_RETRY_BASE_MS * 3) * T_US_PER_MS);
}

Test(download, retries_exhausted)
{
    got_t *g = fetch(url("/flaky?key=f2&fails=5"), 2);
    cr_assert_eq(g->err, DP_ERR_HTTP);
    cr_assert(strstr(g->msg, "500"), "%s", g->msg);
    cr_assert_eq(hits("f2"), 3);
}

Test(download, status_429_retried)
{
    got_t *g = fetch(url("/status/429?key=t"), 1);
    cr_assert_eq(g->err, DP_ERR_HTTP);
    cr_assert_eq(hits("t"), 2);
}

Test(download, reset_is_network_and_retried)
{
    got_t *g = fetch(url("/reset?key=rs"), 2);
    cr_assert_eq(g->err, DP_ERR_NETWORK, "%d %s", g->err, g->msg);
    cr_assert_eq(hits("rs"), 3);
}

Test(download, retry_stops_at_deadline)
{
    uint64_t t0 = dp_now_us();
    got_t *g = fetch_opts(NULL, url("/status/503?key=dl"), NULL,
                          ms_from_now(250), 100);
    cr_assert_eq(g->err, DP_ERR_HTTP, "%d %s", g->err, g->msg);
    cr_assert_lt(dp_now_us() - t0, T_US_PER_S);
    cr_assert_leq(hits("dl"), 3);
}

Test(download, redirect_chain_of_3)
{
    got_t *g = fetch(url("/redirect/3"), 0);
    cr_assert_eq(g->err, 0, "%s", g->msg);
    cr_assert_str_eq(field(g, "body")->v.s.ptr, "ok");
    cr_assert_str_eq(field(g, "url")->v.s.ptr, url("/redirect/0"));
}

Test(download, redirect_chain_of_6_refused)
{
    got_t *g = fetch(url("/redirect/6"), 0);
    cr_assert_eq(g->err, DP_ERR_LIMIT, "%d %s", g->err, g->msg);
}

Test(download, redirect_to_other_schemes_refused)
{
    static const char *const to[] = {
        "/redirect-to?url=ftp%3A%2F%2F127.0.0.1%2Fx",
        "/redirect-to?url=file%3A%2F%2F%2Fetc%2Fpasswd",
    };
    for (size_t k = 0; k < 2; k++) {
        got_t *g = fetch(url(to[k]), 2);
        cr_assert_eq(g->err, DP_ERR_INVALID, "%d %s", g->err, g->msg);
        cr_assert(strstr(g->msg, "redirect"), "%s", g->msg);
        cr_assert_eq(g->r.type, DP_NIL);
        reset_got();
    }
}

Test(download, bad_urls_invalid_before_network)
{
    static const char *const bad[] = {
        "ftp://127.0.0.1/x",
        "file:///etc/passwd",
        "gopher://h/",
        "no scheme",
        "",
        "http://",
    };
    dp_dl_t *d = dp_dl_new(NULL, on_done, NULL);
    size_t n = sizeof bad / sizeof bad[0];
    for (size_t k = 0; k < n; k++) {
        dp_value_t a = dp_str(bad[k]);
        cr_assert_eq(dp_dl_add(d, k, &a, 1, 0, 0), 0);
        dp_value_clear(&a);
    }
    dp_value_t u = dp_uint(7);
    cr_assert_eq(dp_dl_add(d, n, &u, 1, 0, 0), 0);
    cr_assert_eq(dp_dl_add(d, n + 1, NULL, 0, 0, 0), 0);
    cr_assert_eq(dp_dl_poll(d, NULL, 0, 0), 0); /* reported at once */
    cr_assert_eq(g_ndone, n + 2);
    for (size_t k = 0; k <= n; k++)
        cr_assert_eq(g_got[k].err, DP_ERR_INVALID, "%s: %d %s",
                     k < n ? bad[k] : "uint", g_got[k].err, g_got[k].msg);
    cr_assert_eq(g_got[n + 1].err, DP_ERR_ARITY);
    dp_dl_destroy(&d);
}

static int closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd); /* bound, never listened: refused */
    return ntohs(a.sin_port);
}

Test(download, refused_connection_is_network)
{
    char u[T_URL_MAX];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/x", closed_port());
    got_t *g = fetch(u, 0);
    cr_assert_eq(g->err, DP_ERR_NETWORK, "%d %s", g->err, g->msg);
    cr_assert_neq(g->msg[0], '\0');
}

Test(download, max_bytes_with_and_without_length)
{
    static const char *const paths[] = {
        "/big?bytes=100001",
        "/big-chunked?bytes=100001",
        "/big-noclen?bytes=100001",
    };
    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.max_bytes = 100000;
    for (size_t k = 0; k < 3; k++) {
        got_t *g = fetch_opts(&o, url(paths[k]), NULL, 0, 2);
        cr_assert_eq(g->err, DP_ERR_LIMIT, "%s: %d %s", paths[k], g->err,
                     g->msg);
        cr_assert(strstr(g->msg, "body larger than 100000 bytes"), "%s",
                  g->msg);
        /* with a length it is refused before any of the body */
        cr_assert_eq(strstr(g->msg, "Content-Length 100001") != NULL, k == 0,
                     "%s", g->msg);
        reset_got();
    }
    got_t *g = fetch_opts(&o, url("/big-chunked?bytes=100000"), NULL, 0, 0);
    cr_assert_eq(g->err, 0, "%s", g->msg); /* exactly the limit is fine */
}

/* A stored body over the ceiling, sent without a length (so bytes were
 * already written through the sink when it is refused): LIMIT, and no
 * file is left, whole or partial. */
Test(download, store_dir_over_max_bytes_leaves_no_file)
{
    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.store_dir = g_store;
    o.max_bytes = 300000;
    got_t *g = fetch_opts(&o, url("/big-noclen?bytes=400000"), NULL, 0, 0);
    cr_assert_eq(g->err, DP_ERR_LIMIT, "%d %s", g->err, g->msg);
    DIR *dir = opendir(g_store);
    cr_assert_not_null(dir);
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        cr_assert(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0,
                  "left behind: %s", e->d_name);
    closedir(dir);
}

Test(download, drip_hits_deadline_without_hanging)
{
    uint64_t t0 = dp_now_us();
    got_t *g = fetch_opts(NULL, url("/drip?bytes=60&ms=1000"), NULL,
                          ms_from_now(1500), 3);
    cr_assert_eq(g->err, DP_ERR_TIMEOUT, "%d %s", g->err, g->msg);
    cr_assert_lt(dp_now_us() - t0, 4 * T_US_PER_S);
}

Test(download, low_speed_aborts)
{
    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.low_speed_bytes = 1000;
    o.low_speed_secs = 1;
    uint64_t t0 = dp_now_us();
    got_t *g = fetch_opts(&o, url("/drip?bytes=60&ms=500"), NULL, 0, 0);
    cr_assert_eq(g->err, DP_ERR_TIMEOUT, "%d %s", g->err, g->msg);
    cr_assert_lt(dp_now_us() - t0, 5 * T_US_PER_S);
}

Test(download, deadline_already_passed)
{
    got_t *g = fetch_opts(NULL, url("/slow?ms=10"), NULL, dp_now_us() - 1, 0);
    cr_assert_eq(g->err, DP_ERR_TIMEOUT);
}

Test(download, cancel_reports_cancelled)
{
    dp_dl_t *d = dp_dl_new(NULL, on_done, NULL);
    dp_value_t a = dp_str(url("/slow?ms=5000"));
    cr_assert_eq(dp_dl_add(d, 1, &a, 1, 0, 0), 0);
    cr_assert_eq(dp_dl_add(d, 2, &a, 1, 0, 0), 0);
    cr_assert_eq(dp_dl_add(d, 2, &a, 1, 0, 0), DP_ERR_INVALID); /* dup */
    dp_value_clear(&a);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(dp_dl_poll(d, NULL, 0, T_POLL_MS), 0);
    cr_assert_eq(g_ndone, 0);
    cr_assert_eq(dp_dl_cancel(d, 1), 0);
    cr_assert(g_got[1].done);
    cr_assert_eq(g_got[1].err, DP_ERR_CANCELLED);
    cr_assert_eq(dp_dl_cancel(d, 1), DP_ERR_INVALID);
    cr_assert_eq(dp_dl_active(d), 1);
    dp_dl_destroy(&d); /* cancels job 2 */
    cr_assert(g_got[2].done);
    cr_assert_eq(g_got[2].err, DP_ERR_CANCELLED);
    cr_assert_eq(g_ndone, 2);
}

Test(download, poll_wakes_on_extra_fd)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    dp_dl_t *d = dp_dl_new(NULL, on_done, NULL);
    dp_dl_pollfd_t fd = {.fd = p[0], .events = POLLIN};
    cr_assert_eq(write(p[1], "x", 1), 1);
    uint64_t t0 = dp_now_us();
    cr_assert_eq(dp_dl_poll(d, &fd, 1, 5000), 0);
    cr_assert_lt(dp_now_us() - t0, T_US_PER_S);
    cr_assert(fd.revents & POLLIN);
    dp_dl_destroy(&d);
    close(p[0]);
    close(p[1]);
}

static bool read_all(const char *path, const void *want, size_t n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    char *buf = malloc(n + 1);
    size_t got = fread(buf, 1, n + 1, f);
    fclose(f);
    bool same = got == n && memcmp(buf, want, n) == 0;
    free(buf);
    return same;
}

Test(download, store_dir_never_overwrites)
{
    size_t n = 100 * T_KIB;
    void *p = pattern(n, 7);
    write_file("data.bin", p, n);
    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.store_dir = g_store;
    char want[PATH_MAX];
    for (unsigned k = 0; k < 2; k++) {
        got_t *g = fetch_opts(&o, url("/data.bin?x=1"), NULL, 0, 0);
        cr_assert_eq(g->err, 0, "%s", g->msg);
        cr_assert_null(dp_dict_get(&g->r, "body"));
        snprintf(want, sizeof want, k ? "%s/data.bin.1" : "%s/data.bin",
                 g_store);
        cr_assert_str_eq(field(g, "path")->v.s.ptr, want);
        cr_assert(read_all(want, p, n));
        reset_got();
    }
    /* the first file is intact after the second download */
    snprintf(want, sizeof want, "%s/data.bin", g_store);
    cr_assert(read_all(want, p, n));
    free(p);
}

/* A stored body cut by a reset after 100,000 of 300,000 bytes, then
 * retried whole: the file and the digest are the second attempt's alone
 * (the sink's blocks of the first attempt are dropped, the file emptied). */
Test(download, store_dir_partial_body_retried_whole)
{
    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.store_dir = g_store;
    size_t n = 300000;
    got_t *g = fetch_opts(
        &o, url("/big?bytes=300000&cut=100000&fails=1&key=cut1"), NULL, 0, 2);
    cr_assert_eq(g->err, 0, "%s", g->msg);
    cr_assert_eq(hits("cut1"), 2, "the cut attempt was not retried");
    void *p = malloc(n);
    dp_httpd_fill(0, p, n);
    char hex[65];
    sha256_hex(p, n, hex);
    cr_assert_str_eq(field(g, "sha256")->v.s.ptr, hex);
    cr_assert_eq(field(g, "bytes")->v.u, n);
    cr_assert(read_all(field(g, "path")->v.s.ptr, p, n));
    free(p);
}

Test(download, store_dir_failed_download_leaves_no_file)
{
    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.store_dir = g_store;
    got_t *g = fetch_opts(&o, url("/status/404"), NULL, 0, 0);
    cr_assert_eq(g->err, DP_ERR_HTTP);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/404", g_store);
    cr_assert_eq(access(path, F_OK), -1);
}

Test(download, job_options)
{
    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.store_dir = g_store;
    write_file("o.txt", "hello", 5);
    dp_value_t m = dp_dict(1);
    m.v.a.items[0] = dp_str("store");
    m.v.a.items[1] = dp_bool(false);
    got_t *g = fetch_opts(&o, url("/o.txt"), &m, 0, 0);
    expect_body(g, "hello", 5); /* returned despite store_dir */
    reset_got();
    dp_value_clear(&m.v.a.items[1]);
    m.v.a.items[1] = dp_bool(true);
    g = fetch_opts(NULL, url("/o.txt"), &m, 0, 0); /* no store_dir */
    cr_assert_eq(g->err, DP_ERR_INVALID, "%s", g->msg);
    reset_got();
    dp_value_clear(&m.v.a.items[0]);
    m.v.a.items[0] = dp_str("max_bytes");
    m.v.a.items[1] = dp_uint(4);
    g = fetch_opts(NULL, url("/o.txt"), &m, 0, 0);
    cr_assert_eq(g->err, DP_ERR_LIMIT, "%s", g->msg);
    reset_got();
    dp_value_clear(&m.v.a.items[0]);
    m.v.a.items[0] = dp_str("bogus");
    g = fetch_opts(NULL, url("/o.txt"), &m, 0, 0);
    cr_assert_eq(g->err, DP_ERR_INVALID, "%s", g->msg);
    dp_value_clear(&m);
}

Test(download, safe_names)
{
    static const struct {
        const char *url, *name;
    } cases[] = {
        {"http://h/../../etc/passwd", "passwd"},
        {"http://h/.hidden", "hidden"},
        {"http://h/a%2Fb", "a_b"},
        {"http://h/dir/file.tar.gz?x=1#frag", "file.tar.gz"},
        {"http://h/a..b", "a.b"},
        {"http://h/we%20ird%00name", "we_ird_name"},
        {"http://h/..", NULL},
        {"http://h/", NULL},
        {"http://h", NULL},
        {"http://h/...", NULL},
    };
    char out[DP_DL_NAME_MAX + 1];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cr_assert_eq(dp_dl_safe_name(cases[k].url, out, sizeof out), 0);
        if (cases[k].name) {
            cr_assert_str_eq(out, cases[k].name, "%s", cases[k].url);
            continue;
        }
        cr_assert_eq(strlen(out), DP_DL_HASH_NAME_HEX, "%s -> %s", cases[k].url,
                     out);
        cr_assert_eq(strspn(out, "0123456789abcdef"), DP_DL_HASH_NAME_HEX);
    }
    char longurl[600] = "http://h/";
    memset(longurl + 9, 'a', 500);
    longurl[509] = '\0';
    cr_assert_eq(dp_dl_safe_name(longurl, out, sizeof out), 0);
    cr_assert_eq(strlen(out), DP_DL_NAME_MAX);
    cr_assert_eq(dp_dl_safe_name("http://h/x", out, 8), DP_ERR_INVALID);
}

Test(download, open_unique_numbers_and_refuses)
{
    char path[PATH_MAX], want[PATH_MAX];
    for (unsigned k = 0; k < 3; k++) {
        int fd = dp_dl_open_unique(g_store, "x", path, sizeof path);
        cr_assert_geq(fd, 0);
        cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
        snprintf(want, sizeof want, k ? "%s/x.%u" : "%s/x", g_store, k);
        cr_assert_str_eq(path, want);
    }
    cr_assert_eq(dp_dl_open_unique(g_store, ".x", path, sizeof path), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(dp_dl_open_unique(g_store, "a/b", path, sizeof path), -1);
    cr_assert_eq(dp_dl_open_unique(g_store, "x", path, 8), -1);
    cr_assert_eq(errno, ENAMETOOLONG);
}

/* ---- HTTPS ---- */

static dp_httpd_certs_t g_certs;

static void setup_tls(void)
{
    setup_dirs();
    cr_assert_eq(dp_httpd_make_certs(g_root, &g_certs), 0);
    write_file("s.txt", "secret", 6);
    dp_httpd_opts_t o = {.docroot = g_docroot,
                         .cert_file = g_certs.cert_file,
                         .key_file = g_certs.key_file};
    start_server(&o);
}

Test(https, verification, .init = setup_tls, .fini = teardown, .timeout = 60)
{
    const char *u = url("/s.txt");
    cr_assert(strncmp(u, "https://", 8) == 0);
    got_t *g = fetch(u, 2);
    cr_assert_eq(g->err, DP_ERR_TLS, "%d %s", g->err, g->msg);
    reset_got();

    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.ca_file = g_certs.ca_file;
    expect_body(fetch_opts(&o, u, NULL, 0, 0), "secret", 6);
    reset_got();

    dp_dl_opts_default(&o);
    o.insecure = true;
    expect_body(fetch_opts(&o, u, NULL, 0, 0), "secret", 6);
}

/* ---- issue 10: the engine with a guard (dl_guard.h) ---- */

/* A guard refuses the loopback test server on the address curl connects
 * to, in any spelling and after a redirect, and is not retried. */
Test(download, guard_refuses_loopback_spellings)
{
    dp_guard_t g;
    char err[128];
    cr_assert_eq(dp_guard_init(&g, NULL, 0, err, sizeof err), 0);
    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.guard = &g;
    int port = dp_httpd_port(g_srv);
    const char *hosts[] = {"127.0.0.1", "127.1", "2130706433", "localhost",
                           "0.0.0.0"};
    for (size_t k = 0; k < sizeof hosts / sizeof hosts[0]; k++) {
        char u[T_URL_MAX];
        snprintf(u, sizeof u, "http://%s:%d/status/200", hosts[k], port);
        reset_got();
        got_t *gt = fetch_opts(&o, u, NULL, 0, 3);
        cr_expect_eq(gt->err, DP_ERR_NETWORK, "%s: %s", hosts[k], gt->msg);
        cr_expect(strstr(gt->msg, "refused address"), "%s", gt->msg);
        cr_expect_eq(dp_httpd_port(g_srv), port);
    }
    /* admitted: the same request goes through */
    const char *allow[] = {"127.0.0.0/8"};
    cr_assert_eq(dp_guard_init(&g, allow, 1, err, sizeof err), 0);
    reset_got();
    got_t *gt = fetch_opts(&o, url("/status/200"), NULL, 0, 0);
    cr_assert_eq(gt->err, 0, "%s", gt->msg);
}

/* Stored bodies are written and hashed on the engine's sink thread, in
 * blocks, while the other transfers go on: each digest is the body's own,
 * and each file is whole. */
Test(download, stored_bodies_hashed_beside_transfers)
{
    enum { N = 8 };
    size_t n = 2048 * T_KIB + 3;
    void *p[N];
    char name[32], u[64];
    for (unsigned k = 0; k < N; k++) {
        p[k] = pattern(n, 100 + k);
        snprintf(name, sizeof name, "h%u.bin", k);
        write_file(name, p[k], n);
    }
    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.store_dir = g_store;
    dp_dl_t *d = dp_dl_new(&o, on_done, NULL);
    cr_assert_not_null(d);
    for (unsigned k = 0; k < N; k++) {
        snprintf(u, sizeof u, "/h%u.bin", k);
        dp_value_t a = dp_str(url(u));
        cr_assert_eq(dp_dl_add(d, k, &a, 1, 0, 0), 0);
        dp_value_clear(&a);
    }
    wait_all(d, N);
    dp_dl_destroy(&d);
    for (unsigned k = 0; k < N; k++) {
        got_t *g = &g_got[k];
        cr_assert_eq(g->err, 0, "job %u: %s", k, g->msg);
        char hex[65];
        sha256_hex(p[k], n, hex);
        cr_assert_str_eq(field(g, "sha256")->v.s.ptr, hex, "job %u", k);
        cr_assert(read_all(field(g, "path")->v.s.ptr, p[k], n));
        free(p[k]);
    }
}

/* Cancels and the engine's end while bodies are being hashed: every job
 * is reported once (on_done checks), a cancelled job leaves no file, and
 * the records the sink still holds are freed when it gives them back
 * or stops (ASan checks in CI). Which jobs are hashing at the cancel is
 * up to the timing; each case is valid. */
Test(download, cancel_and_destroy_while_hashing)
{
    enum { N = 8 };
    size_t n = 8192 * T_KIB;
    void *p = pattern(n, 9);
    write_file("c.bin", p, n);
    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.store_dir = g_store;
    dp_dl_t *d = dp_dl_new(&o, on_done, NULL);
    cr_assert_not_null(d);
    dp_value_t a = dp_str(url("/c.bin"));
    for (unsigned k = 0; k < N; k++)
        cr_assert_eq(dp_dl_add(d, k, &a, 1, 0, 0), 0);
    dp_value_clear(&a);
    uint64_t end = dp_now_us() + T_WAIT_S * T_US_PER_S;
    while (g_ndone == 0) { /* the first answer: others are mid-way */
        cr_assert_lt(dp_now_us(), end, "no download finished");
        cr_assert_eq(dp_dl_poll(d, NULL, 0, 1), 0);
    }
    for (unsigned k = 0; k < N / 2; k++)
        if (!g_got[k].done)
            cr_assert_eq(dp_dl_cancel(d, k), 0);
    dp_dl_destroy(&d); /* cancels the rest, whatever they are doing */
    cr_assert_eq(g_ndone, N);
    size_t files = 0;
    for (unsigned k = 0; k < N; k++) {
        got_t *g = &g_got[k];
        cr_assert(g->err == 0 || g->err == DP_ERR_CANCELLED, "job %u: %s", k,
                  g->msg);
        if (!g->err) {
            cr_assert(read_all(field(g, "path")->v.s.ptr, p, n));
            files++;
        }
    }
    DIR *dir = opendir(g_store);
    cr_assert_not_null(dir);
    size_t left = 0;
    for (struct dirent *e; (e = readdir(dir));)
        left += e->d_name[0] != '.';
    closedir(dir);
    cr_assert_eq(left, files, "%zu files in the store, %zu jobs done", left,
                 files);
    free(p);
}
