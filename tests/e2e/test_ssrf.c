/*
 * test_ssrf.c - issue 10, downloads cannot reach inside: a default worker
 * refuses every spelling of a loopback address (and a redirect to one)
 * with NETWORK naming the address; --allow-net admits the range; the
 * embedded pool (the user's own machine) allows everything.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dp_httpd.h"
#include "e2e.h"

#define S_REDIR_ADDR "127.0.0.2" /* the "outside" server of the tests */

TestSuite(ssrf, .init = e2e_setup, .fini = e2e_teardown);

/* s_redirector: a process answering every request on S_REDIR_ADDR with a
 * 302 to `to`; returns its pid, port in *port. */
static pid_t s_redirector(const char *to, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, S_REDIR_ADDR, &a.sin_addr);
    socklen_t len = sizeof a;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              listen(fd, 16) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid > 0) {
        close(fd);
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[4096], head[512];
        ssize_t n = read(c, buf, sizeof buf);
        (void)n;
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 302 Found\r\nLocation: %s\r\n"
                          "Content-Length: 0\r\nConnection: close\r\n\r\n",
                          to);
        n = write(c, head, (size_t)hl);
        close(c);
    }
}

/* s_worker_pool: a plaintext loopback broker and one worker with the
 * extra arguments given (NULL-terminated, up to 4). */
static void s_worker_pool(const char *a1, const char *a2, const char *a3,
                          const char *a4)
{
    cr_assert_eq(dp_e2e_broker(&T.e, &T.broker, 0, T.ep, sizeof T.ep), 0);
    const char *argv[] = {
        "dpool-worker", "--connect", T.ep, "-p", "1", "--log-level",
        "debug",        a1,          a2,   a3,   a4,  NULL};
    cr_assert_eq(dp_e2e_spawn(&T.e, &T.worker[0], -1, argv), 0);
    e2e_workers_up(1);
}

/* s_download: run `dpool download` over urls; the JSON lines. */
static char **s_download(dp_e2e_run_t *r, const char *broker,
                         const char *const *urls, int n)
{
    const char *argv[32] = {"dpool", "--format", "json", "--output-dir",
                            T.e.dir};
    int k = 5;
    if (broker) {
        argv[k++] = "--broker";
        argv[k++] = broker;
    }
    argv[k++] = "download";
    for (int u = 0; u < n; u++)
        argv[k++] = urls[u];
    argv[k] = NULL;
    e2e_run(r, E2E_RUN_MS, argv);
    return e2e_json_lines(r, n);
}

Test(ssrf, every_loopback_spelling_refused, .timeout = 60)
{
    dp_httpd_t *h = dp_httpd_start(NULL);
    cr_assert_not_null(h);
    int port = dp_httpd_port(h);
    char urls[7][96];
    const char *hosts[] = {"127.0.0.1", "127.1",     "2130706433", "[::1]",
                           "0.0.0.0",   "localhost", "0x7f000001"};
    const char *up[7];
    for (int k = 0; k < 7; k++) {
        snprintf(urls[k], sizeof urls[k], "http://%s:%d/status/200", hosts[k],
                 port);
        up[k] = urls[k];
    }
    s_worker_pool(NULL, NULL, NULL, NULL);
    dp_e2e_run_t r;
    char **lines = s_download(&r, T.ep, up, 7);
    dp_httpd_stop(&h);
    cr_assert_eq(r.code, 1, "exit %d", r.code);
    for (int k = 0; k < 7; k++) {
        char name[32], msg[256];
        cr_expect_str_eq(e2e_errname(lines[k], name, sizeof name), "NETWORK",
                         "%s", lines[k]);
        cr_expect_eq(dp_e2e_jstr(lines[k], "message", msg, sizeof msg), 0);
        cr_expect(strstr(msg, "refused address"), "%s: %s", hosts[k], msg);
        cr_expect(strstr(msg, "--allow-net"), "%s", msg);
    }
    cr_expect(strstr(lines[0], "127.0.0.1 (loopback)"), "%s", lines[0]);
    cr_expect(strstr(lines[3], "::1 (loopback)"), "%s", lines[3]);
    cr_expect(strstr(lines[4], "0.0.0.0 (unspecified)"), "%s", lines[4]);
    free(lines);
    dp_e2e_run_free(&r);
}

Test(ssrf, redirect_to_loopback_refused, .timeout = 60)
{
    dp_httpd_t *h = dp_httpd_start(NULL);
    cr_assert_not_null(h);
    char target[128], url[128];
    dp_httpd_url(h, "/status/200", target, sizeof target);
    int rport;
    pid_t rp = s_redirector(target, &rport);
    snprintf(url, sizeof url, "http://" S_REDIR_ADDR ":%d/go", rport);
    /* the redirector's address is admitted, the target's is not */
    s_worker_pool("--allow-net", S_REDIR_ADDR "/32", NULL, NULL);
    dp_e2e_run_t r;
    const char *urls[] = {url};
    char **lines = s_download(&r, T.ep, urls, 1);
    kill(rp, SIGKILL);
    waitpid(rp, NULL, 0);
    dp_httpd_stop(&h);
    char name[32];
    cr_assert_str_eq(e2e_errname(lines[0], name, sizeof name), "NETWORK", "%s",
                     lines[0]);
    cr_assert(strstr(lines[0], "refused address 127.0.0.1 (loopback)"), "%s",
              lines[0]);
    free(lines);
    dp_e2e_run_free(&r);
}

Test(ssrf, allow_net_admits_loopback, .timeout = 60)
{
    dp_httpd_t *h = dp_httpd_start(NULL);
    cr_assert_not_null(h);
    int port = dp_httpd_port(h);
    char target[128], url[128], urls[4][96];
    dp_httpd_url(h, "/status/200", target, sizeof target);
    int rport;
    pid_t rp = s_redirector(target, &rport);
    snprintf(url, sizeof url, "http://" S_REDIR_ADDR ":%d/go", rport);
    const char *hosts[] = {"127.0.0.1", "127.1", "2130706433", "localhost"};
    const char *up[5];
    for (int k = 0; k < 4; k++) {
        snprintf(urls[k], sizeof urls[k], "http://%s:%d/status/200", hosts[k],
                 port);
        up[k] = urls[k];
    }
    up[4] = url;
    s_worker_pool("--allow-net", "127.0.0.0/8", "--allow-net", "::1/128");
    dp_e2e_run_t r;
    char **lines = s_download(&r, T.ep, up, 5);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.out);
    for (int k = 0; k < 5; k++)
        cr_expect_eq(dp_e2e_jint(lines[k], "status"), 200, "%s", lines[k]);
    free(lines);
    dp_e2e_run_free(&r);
    /* the embedded pool is the user's own machine: everything goes */
    lines = s_download(&r, NULL, up, 1);
    cr_assert_eq(r.code, 0, "embedded: %s", lines[0]);
    free(lines);
    dp_e2e_run_free(&r);
    kill(rp, SIGKILL);
    waitpid(rp, NULL, 0);
    dp_httpd_stop(&h);
}

Test(ssrf, bad_allow_net_is_a_usage_error, .timeout = 30)
{
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS, ARGV("dpool-worker", "--allow-net", "10.0.0.0/99"));
    cr_assert_eq(r.code, 2, "exit %d: %s", r.code, r.err);
    cr_assert(strstr(r.err, "10.0.0.0/99"), "%s", r.err);
    dp_e2e_run_free(&r);
}
