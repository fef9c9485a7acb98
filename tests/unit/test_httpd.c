/*
 * test_httpd.c - the test server itself (tests/support/dp_httpd): it
 * answers, serves many clients at once, stays inside its docroot, counts
 * keys, and never outlives whoever started it.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dp_clock.h"
#include "dp_download.h"
#include "dp_httpd.h"

#define T_RESP_MAX 4096
#define T_URL_MAX 256
#define T_US_PER_S 1000000ULL
#define T_WAIT_S 10
#define T_POLL_MS 50

static dp_httpd_t *g_srv;

static void setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    dp_httpd_opts_t o = {.docroot = DP_SOURCE_DIR "/tests"};
    g_srv = dp_httpd_start(&o);
    cr_assert_not_null(g_srv);
}

static void teardown(void)
{
    dp_httpd_stop(&g_srv);
    curl_global_cleanup();
}

/* raw: send req as is on a new connection, read the whole response. */
static size_t raw(const char *req, char *resp, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)dp_httpd_port(g_srv));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    size_t n = 0;
    ssize_t k;
    while (n + 1 < len && (k = recv(fd, resp + n, len - 1 - n, 0)) > 0)
        n += (size_t)k;
    resp[n] = '\0';
    close(fd);
    return n;
}

static bool alive(pid_t pid)
{
    char path[T_URL_MAX], state = '?';
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    /* pid (comm) S ...: a zombie is dead for our purpose */
    int c, paren = 0;
    while ((c = fgetc(f)) != EOF && !(c == ')' && ++paren))
        ;
    if (fscanf(f, " %c", &state) != 1)
        state = '?';
    fclose(f);
    return state != 'Z' && state != 'X';
}

TestSuite(httpd, .init = setup, .fini = teardown, .timeout = 30);

Test(httpd, answers_and_stops_by_pid)
{
    char r[T_RESP_MAX];
    cr_assert_gt(dp_httpd_port(g_srv), 0);
    pid_t pid = dp_httpd_pid(g_srv);
    cr_assert(alive(pid));
    raw("GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n", r, sizeof r);
    cr_assert(strncmp(r, "HTTP/1.1 201 ", 13) == 0, "%s", r);
    cr_assert(strstr(r, "\r\n\r\nstatus 201\n"), "%s", r);
    dp_httpd_stop(&g_srv);
    cr_assert_null(g_srv);
    cr_assert_eq(kill(pid, 0), -1);
    cr_assert_eq(errno, ESRCH);
}

Test(httpd, head_methods_and_docroot_escape)
{
    char r[T_RESP_MAX];
    raw("HEAD /redirect/0 HTTP/1.1\r\n\r\n", r, sizeof r);
    cr_assert(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    cr_assert(strstr(r, "Content-Length: 2\r\n"), "%s", r);
    cr_assert(strstr(r, "\r\n\r\n")[4] == '\0', "HEAD sent a body");
    raw("POST /redirect/0 HTTP/1.1\r\n\r\n", r, sizeof r);
    cr_assert(strncmp(r, "HTTP/1.1 405 ", 13) == 0, "%s", r);
    raw("GET /../../etc/passwd HTTP/1.1\r\n\r\n", r, sizeof r);
    cr_assert(strncmp(r, "HTTP/1.1 404 ", 13) == 0, "%s", r);
    raw("GET /CMakeLists.txt HTTP/1.1\r\n\r\n", r, sizeof r);
    cr_assert(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    raw("GET nonsense\r\n\r\n", r, sizeof r);
    cr_assert(strncmp(r, "HTTP/1.1 400 ", 13) == 0, "%s", r);
}

Test(httpd, counts_keys_and_redirects_anywhere)
{
    char r[T_RESP_MAX];
    for (int k = 0; k < 3; k++)
        raw("GET /status/404?key=a%20b HTTP/1.1\r\n\r\n", r, sizeof r);
    raw("GET /count?key=a+b HTTP/1.1\r\n\r\n", r, sizeof r);
    cr_assert(strstr(r, "\r\n\r\n3"), "%s", r);
    raw("GET /count?key=none HTTP/1.1\r\n\r\n", r, sizeof r);
    cr_assert(strstr(r, "\r\n\r\n0"), "%s", r);
    raw("GET /redirect-to?url=file%3A%2F%2F%2Fetc HTTP/1.1\r\n\r\n", r,
        sizeof r);
    cr_assert(strstr(r, "\r\nLocation: file:///etc\r\n"), "%s", r);
    cr_assert_eq(raw("GET /reset HTTP/1.1\r\n\r\n", r, sizeof r), 0);
}

static int g_done;
static void on_done(void *ud, uint64_t id, int err, const char *msg,
                    dp_value_t *r)
{
    (void)ud;
    (void)id;
    cr_assert_eq(err, 0, "%s", msg);
    dp_value_clear(r);
    g_done++;
}

Test(httpd, serves_slow_clients_concurrently)
{
    enum { N = 20 };
    char u[T_URL_MAX];
    dp_dl_t *d = dp_dl_new(NULL, on_done, NULL);
    cr_assert_eq(dp_httpd_url(g_srv, "/slow?ms=500", u, sizeof u), 0);
    uint64_t t0 = dp_now_us();
    for (int k = 0; k < N; k++) {
        dp_value_t a = dp_str(u);
        cr_assert_eq(dp_dl_add(d, (uint64_t)k, &a, 1, 0, 0), 0);
        dp_value_clear(&a);
    }
    while (g_done < N) {
        cr_assert_lt(dp_now_us() - t0, T_WAIT_S * T_US_PER_S);
        dp_dl_poll(d, NULL, 0, T_POLL_MS);
    }
    /* one after another would take N * 0.5 s */
    cr_assert_lt(dp_now_us() - t0, 2 * T_US_PER_S);
    dp_dl_destroy(&d);
}

Test(httpd, dies_with_its_parent)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        dp_httpd_t *h = dp_httpd_start(NULL);
        pid_t pid = h ? dp_httpd_pid(h) : 0;
        if (write(p[1], &pid, sizeof pid) != sizeof pid)
            _exit(1);
        _exit(0); /* never stops it */
    }
    pid_t server = 0;
    cr_assert_eq(read(p[0], &server, sizeof server), sizeof server);
    cr_assert_gt(server, 0);
    cr_assert_eq(waitpid(child, NULL, 0), child);
    uint64_t t0 = dp_now_us();
    while (alive(server)) {
        cr_assert_lt(dp_now_us() - t0, T_WAIT_S * T_US_PER_S,
                     "server outlived its parent");
        usleep(T_POLL_MS * 1000);
    }
    close(p[0]);
    close(p[1]);
}
