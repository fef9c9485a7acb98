/*
 * test_e2e.c - end-to-end: the real dpool-broker, dpool-worker and dpool
 * on loopback. Batches, ordering, several clients, time limits, errors,
 * usage, stdin, hostile bytes on the broker's socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_clock.h"
#include "dp_httpd.h"
#include "dp_msg.h"
#include "dp_zsock.h"
#include "dpool.h"
#include "e2e.h"

TestSuite(e2e, .init = e2e_setup, .fini = e2e_teardown, .timeout = 60);

/* 1. results come in input order although they finish out of order */
Test(e2e, map_keeps_input_order, .timeout = 30)
{
    e2e_pool(1, 2);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--format", "json", "map", "sleep",
                 "600", "50", "300", "10"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = e2e_json_lines(&r, 4);
    const long long ms[] = {600, 50, 300, 10};
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(dp_e2e_jint(l[k], "index"), k, "line %d: %s", k, l[k]);
        cr_assert(dp_e2e_jtrue(l[k], "ok"), "%s", l[k]);
        cr_assert_eq(dp_e2e_jint(l[k], "result"), ms[k], "%s", l[k]);
        cr_assert_eq(dp_e2e_jint(l[k], "attempts"), 1, "%s", l[k]);
        double el = dp_e2e_jnum(l[k], "elapsed_ms");
        cr_assert(el >= (double)ms[k] - 1 && el < (double)ms[k] + 250,
                  "elapsed_ms %.3f for sleep %lld", el, ms[k]);
        char w[16];
        cr_assert_eq(dp_e2e_jstr(l[k], "worker", w, sizeof w), 0);
        cr_assert_str_eq(w, "w0");
    }
    /* 0 held one child for 600 ms while 1, 2, 3 ran one after the other
     * on the other: the first line printed was the last to finish */
    long long p0 = dp_e2e_jint(l[0], "pid"), p1 = dp_e2e_jint(l[1], "pid");
    cr_assert_neq(p0, p1);
    cr_assert_eq(dp_e2e_jint(l[2], "pid"), p1);
    cr_assert_eq(dp_e2e_jint(l[3], "pid"), p1);
    free(l);
    dp_e2e_run_free(&r);
}

/* 2. --unordered gives completion order */
Test(e2e, unordered_gives_completion_order, .timeout = 30)
{
    e2e_pool(1, 4);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--format", "json", "--unordered",
                 "map", "sleep", "600", "50", "300", "10"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = e2e_json_lines(&r, 4);
    const long long idx[] = {3, 1, 2, 0}, ms[] = {10, 50, 300, 600};
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(dp_e2e_jint(l[k], "index"), idx[k], "line %d: %s", k,
                     l[k]);
        cr_assert_eq(dp_e2e_jint(l[k], "result"), ms[k], "%s", l[k]);
    }
    /* all four ran at once: four different children */
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++)
            cr_assert_neq(dp_e2e_jint(l[a], "pid"), dp_e2e_jint(l[b], "pid"));
    free(l);
    dp_e2e_run_free(&r);
}

/* 3. two clients at once each get exactly their own results */
#define S_CLIENT_JOBS 300
Test(e2e, concurrent_clients_get_their_own_results, .timeout = 30)
{
    e2e_pool(1, 2);
    static char words[2][S_CLIENT_JOBS][16];
    const char *argv[2][S_CLIENT_JOBS + 10];
    dp_e2e_proc_t cl[2];
    for (int c = 0; c < 2; c++) {
        int n = 0;
        const char *head[] = {"dpool",    "--broker", T.ep,
                              "--format", "json",     "--chunksize",
                              "7",        "map",      "echo"};
        for (size_t k = 0; k < sizeof head / sizeof head[0]; k++)
            argv[c][n++] = head[k];
        for (int k = 0; k < S_CLIENT_JOBS; k++) {
            snprintf(words[c][k], sizeof words[c][k], "%c%d", 'a' + c, k + 1);
            argv[c][n++] = words[c][k];
        }
        argv[c][n] = NULL;
    }
    for (int c = 0; c < 2; c++)
        cr_assert_eq(dp_e2e_spawn(&T.e, &cl[c], -1, argv[c]), 0);
    for (int c = 0; c < 2; c++) {
        int code = dp_e2e_wait(&T.e, cl[c].pid, E2E_RUN_MS);
        dp_e2e_run_t r = {.code = code,
                          .out = dp_e2e_slurp(cl[c].out),
                          .err = dp_e2e_slurp(cl[c].err)};
        cr_assert_eq(code, 0, "client %d exit %d:\n%s", c, code, r.err);
        char **l = e2e_json_lines(&r, S_CLIENT_JOBS);
        bool seen[S_CLIENT_JOBS] = {false};
        for (int k = 0; k < S_CLIENT_JOBS; k++) {
            char in[32], res[32];
            cr_assert_eq(dp_e2e_jstr(l[k], "input", in, sizeof in), 0);
            cr_assert_eq(dp_e2e_jstr(l[k], "result", res, sizeof res), 0, "%s",
                         l[k]);
            cr_assert_str_eq(in, res, "%s", l[k]);
            cr_assert_eq(in[0], 'a' + c, "client %d got %s", c, l[k]);
            long long i = dp_e2e_jint(l[k], "index");
            cr_assert_eq(i, k, "%s", l[k]);
            cr_assert_str_eq(in, words[c][k]);
            cr_assert(!seen[i]);
            seen[i] = true;
        }
        free(l);
        dp_e2e_run_free(&r);
    }
}

/* 6. a job over its time limit fails with TIMEOUT; the pool goes on */
Test(e2e, time_limit, .timeout = 30)
{
    e2e_pool(1, 2);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--format", "json", "--timeout",
                 "0.3", "map", "sleep", "5000", "10"));
    cr_assert_eq(r.code, 1, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert(r.secs < 3.0, "took %.1f s: the limit did not cut", r.secs);
    char **l = e2e_json_lines(&r, 2);
    char name[32];
    cr_assert_str_eq(e2e_errname(l[0], name, sizeof name), "TIMEOUT", "%s",
                     l[0]);
    cr_assert_eq(dp_e2e_jint(l[0], "code"), 7);
    cr_assert(dp_e2e_jtrue(l[1], "ok"), "%s", l[1]);
    cr_assert_eq(dp_e2e_jint(l[1], "result"), 10);
    free(l);
    dp_e2e_run_free(&r);

    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "map", "echo", "x"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert_str_eq(r.out, "x: x\n");
    dp_e2e_run_free(&r);
    pid_t kids[8];
    cr_assert_eq(dp_e2e_children(T.worker[0].pid, "cpu", kids, 8), 2);
}

/* 10. an unreachable broker: exit 3 soon, naming the endpoint */
Test(e2e, unreachable_broker, .timeout = 20)
{
    char ep[DP_E2E_EP_MAX];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", dp_e2e_free_port());
    dp_e2e_run_t r;
    e2e_run(&r, 10000,
            ARGV("dpool", "--broker", ep, "--connect-timeout", "0.5", "map",
                 "echo", "x"));
    cr_assert_eq(r.code, 3, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert(r.secs < 3.0, "took %.1f s", r.secs);
    cr_assert(strstr(r.err, ep), "stderr does not name %s:\n%s", ep, r.err);
    cr_assert_str_eq(r.out, "");
    dp_e2e_run_free(&r);
}

/* 11. usage errors exit 2, at once, before touching any broker (case 3,
 * `map` without a TYPE, used to connect first and exit 3 after the
 * connect timeout: fixed in fbc33ab, kept as a regression test). */
Test(e2e, usage_errors, .timeout = 30)
{
    char ep[DP_E2E_EP_MAX];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", dp_e2e_free_port());
#define S_CT "--connect-timeout", "5"
    const char *const *cases[] = {
        ARGV("dpool", "--broker", ep, S_CT, "--no-such-option", "map", "echo",
             "x"),
        ARGV("dpool", "--broker", ep, S_CT, "frobnicate", "x"),
        ARGV("dpool", "--broker", ep, S_CT, "--format", "xml", "map", "echo",
             "x"),
        ARGV("dpool", "--broker", ep, S_CT, "map"),
        ARGV("dpool", "--broker", ep, S_CT, "--timeout", "abc", "map", "echo",
             "x"),
        ARGV("dpool", "--broker", ep, S_CT, "--chunksize", "0", "map", "echo",
             "x"),
        ARGV("dpool"),
    };
#undef S_CT
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dp_e2e_run_t r;
        e2e_run(&r, 10000, cases[k]);
        cr_expect_eq(r.code, 2, "case %zu: exit %d; stderr:\n%s", k, r.code,
                     r.err);
        /* well under the 5 s connect timeout: never waited for a broker */
        cr_expect(r.secs < 3.0, "case %zu took %.2f s", k, r.secs);
        cr_expect_str_eq(r.out, "", "case %zu", k);
        cr_expect(strncmp(r.err, "dpool", 5) == 0 ||
                      strncmp(r.err, "usage", 5) == 0,
                  "case %zu: stderr says: %s", k, r.err);
        dp_e2e_run_free(&r);
    }
}

/* 12. unknown type, bad input and wrong arity fail their own jobs only */
Test(e2e, bad_jobs_fail_alone, .timeout = 30)
{
    e2e_pool(1, 2);
    dp_e2e_run_t r;
    char name[32];
    /* the CLI refuses an unknown type before any work (issue 9, item 7;
     * the broker's UNKNOWN_TYPE per job is checked through the library
     * below) */
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--format", "json", "map",
                 "nosuchtype", "x", "y"));
    cr_assert_eq(r.code, 2, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert_str_eq(r.out, "");
    dp_e2e_run_free(&r);
    char **l;

    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--format", "json", "map", "sleep",
                 "10", "abc", "20"));
    cr_assert_eq(r.code, 1, "exit %d; stderr:\n%s", r.code, r.err);
    l = e2e_json_lines(&r, 3);
    cr_assert_eq(dp_e2e_jint(l[0], "result"), 10, "%s", l[0]);
    cr_assert_str_eq(e2e_errname(l[1], name, sizeof name), "INVALID", "%s",
                     l[1]);
    cr_assert_eq(dp_e2e_jint(l[2], "result"), 20, "%s", l[2]);
    free(l);
    dp_e2e_run_free(&r);

    /* arity: the CLI always sends one argument, so use the library */
    dp_pool_t *pool = NULL;
    dp_pool_opts_t po = {.connect_timeout = 5};
    cr_assert_eq(dp_pool_open(T.ep, &po, &pool), 0);
    dp_value_t argv[3] = {dp_array(1), dp_array(2), dp_array(1)};
    argv[0].v.a.items[0] = dp_uint(10);
    argv[1].v.a.items[0] = dp_uint(1);
    argv[1].v.a.items[1] = dp_uint(2);
    argv[2].v.a.items[0] = dp_uint(20);
    dp_map_t *m = NULL;
    cr_assert_eq(dp_map_array(pool, "sleep", argv, 3, NULL, &m), 0);
    int want[3] = {0, DP_ERR_ARITY, 0};
    for (int k = 0; k < 3; k++) {
        dp_result_t *res = NULL;
        cr_assert_eq(dp_map_next(m, &res), 0);
        cr_assert_eq(res->index, (size_t)k);
        cr_assert_eq(res->error, want[k], "job %d: %s (%s)", k,
                     dp_errname(res->error), res->message);
        dp_result_free(&res);
    }
    dp_result_t *res = NULL;
    cr_assert_eq(dp_map_next(m, &res), DP_ERR_EOF);
    dp_map_destroy(&m);
    /* an unknown type fails each of its jobs alone */
    cr_assert_eq(dp_map_array(pool, "nosuchtype", argv, 2, NULL, &m), 0);
    for (int k = 0; k < 2; k++) {
        dp_result_t *res = NULL;
        cr_assert_eq(dp_map_next(m, &res), 0);
        cr_assert_eq(res->index, (size_t)k);
        cr_assert_eq(res->error, DP_ERR_UNKNOWN_TYPE, "job %d: %s", k,
                     dp_errname(res->error));
        dp_result_free(&res);
    }
    dp_map_destroy(&m);
    for (int k = 0; k < 3; k++)
        dp_value_clear(&argv[k]);
    /* echo takes at most 64 arguments */
    dp_value_t many[65];
    for (int k = 0; k < 65; k++)
        many[k] = dp_uint((uint64_t)k);
    dp_future_t *f = NULL;
    cr_assert_eq(dp_submit(pool, "echo", many, 65, NULL, &f), 0);
    cr_assert_eq(dp_future_wait(f, 10), 0);
    cr_assert_eq(dp_future_result(f)->error, DP_ERR_ARITY);
    dp_future_destroy(&f);
    cr_assert_eq(dp_submit(pool, "echo", many, 64, NULL, &f), 0);
    cr_assert_eq(dp_future_wait(f, 10), 0);
    cr_assert_eq(dp_future_result(f)->error, 0);
    cr_assert_eq(dp_future_result(f)->value.v.a.len, 64);
    dp_future_destroy(&f);
    dp_pool_close(&pool);
}

/* 13. --fail-fast: the first failure cancels the rest, quickly */
Test(e2e, fail_fast, .timeout = 30)
{
    e2e_pool(1, 1);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--format", "json", "--fail-fast",
                 "map", "sleep", "10", "nonnumber", "3000", "3000", "3000",
                 "3000"));
    cr_assert_eq(r.code, 1, "exit %d; stderr:\n%s", r.code, r.err);
    /* four 3000 ms jobs on one child would take 12 s */
    cr_assert(r.secs < 6.0, "took %.1f s: the 3000 ms jobs ran", r.secs);
    char **l = NULL;
    int n = dp_e2e_lines(r.out, &l);
    cr_assert(n >= 2 && n <= 6, "%d lines", n);
    char name[32];
    cr_assert(dp_e2e_jtrue(l[0], "ok"), "%s", l[0]);
    cr_assert_str_eq(e2e_errname(l[1], name, sizeof name), "INVALID", "%s",
                     l[1]);
    for (int k = 2; k < n; k++) {
        cr_assert_eq(dp_e2e_jint(l[k], "index"), k);
        cr_assert_str_eq(e2e_errname(l[k], name, sizeof name), "CANCELLED",
                         "%s", l[k]);
    }
    free(l);
    dp_e2e_run_free(&r);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "running", 0, 0, 3000),
              "a cancelled job still runs");
    cr_assert_eq(dp_e2e_stat(&T.e, T.ep, "queued"), 0);
}

/* 15a. stdin: 20000 lines through a pipe, in order; the pipe's writer
 * is this process, so the client must read as the lines come */
#define S_LINES 20000
#define S_FIRST 100

typedef struct {
    const dp_e2e_proc_t *p;
    int want;
} s_lines_ctx_t;

static bool s_has_lines(void *arg)
{
    const s_lines_ctx_t *c = arg;
    char *s = dp_e2e_slurp(c->p->out);
    int n = 0;
    for (char *ch = s; ch && *ch; ch++)
        n += *ch == '\n';
    free(s);
    return n >= c->want;
}

static void s_write_lines(int fd, int from, int to)
{
    char buf[65536];
    size_t len = 0;
    for (int k = from; k < to; k++) {
        len += (size_t)snprintf(buf + len, sizeof buf - len, "l%d\n", k);
        if (len > sizeof buf - 32 || k + 1 == to) {
            for (size_t off = 0; off < len;) {
                ssize_t n = write(fd, buf + off, len - off);
                cr_assert(n > 0 || errno == EINTR, "write: %s",
                          strerror(errno));
                off += n > 0 ? (size_t)n : 0;
            }
            len = 0;
        }
    }
}

/* s_stdin_client: a `map echo` client reading the pipe *wfd writes to. */
static void s_stdin_client(dp_e2e_proc_t *cl, int *wfd,
                           const char *const argv[])
{
    int fds[2];
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    cr_assert_eq(dp_e2e_spawn(&T.e, cl, fds[0], argv), 0);
    close(fds[0]);
    *wfd = fds[1];
}

static void s_check_echo_lines(const dp_e2e_proc_t *cl, int total)
{
    int code = dp_e2e_wait(&T.e, cl->pid, 40000);
    char *out = dp_e2e_slurp(cl->out), *err = dp_e2e_slurp(cl->err);
    cr_assert_eq(code, 0, "exit %d; stderr:\n%s", code, err);
    char **l = NULL;
    int n = dp_e2e_lines(out, &l);
    cr_assert_eq(n, total);
    for (int k = 0; k < n; k++) {
        char want[32];
        snprintf(want, sizeof want, "l%d: l%d", k, k);
        cr_assert_str_eq(l[k], want, "line %d", k);
    }
    free(l);
    free(out);
    free(err);
}

Test(e2e, stdin_pipe_20000_in_order, .timeout = 60)
{
    e2e_pool(1, 2);
    dp_e2e_proc_t cl;
    int wfd;
    s_stdin_client(&cl, &wfd, ARGV("dpool", "--broker", T.ep, "map", "echo"));
    s_write_lines(wfd, 0, S_LINES);
    close(wfd);
    s_check_echo_lines(&cl, S_LINES);
}

/* With a small window, results stream while stdin is still open (and
 * the client reads no further ahead than the window: 100 lines written,
 * at least 100 - 10 printed). */
Test(e2e, stdin_streams_with_small_window, .timeout = 30)
{
    e2e_pool(1, 2);
    dp_e2e_proc_t cl;
    int wfd;
    s_stdin_client(&cl, &wfd,
                   ARGV("dpool", "--broker", T.ep, "--chunksize", "1",
                        "--max-inflight", "10", "map", "echo"));
    s_write_lines(wfd, 0, S_FIRST);
    s_lines_ctx_t c = {&cl, S_FIRST - 10};
    cr_assert(dp_e2e_wait_until(s_has_lines, &c, 5000),
              "results do not stream while stdin is open");
    s_write_lines(wfd, S_FIRST, 2 * S_FIRST);
    close(wfd);
    s_check_echo_lines(&cl, 2 * S_FIRST);
}

/* With the default options too, every line read from a pipe that stays
 * open is sent and answered while the client waits for more (a slow
 * producer: `tail -f log | dpool map ...`).
 * PRODUCT BUG: client/dp_map.c dp_map_next(): a stream starts with a
 * window of 2 x slots single jobs, but once the first result sets job_us
 * (s_adapt) the window becomes max_inflight (then 1024, now 4096) and the chunk
 * up to 256, so the loop keeps calling the input function (a blocking getline,
 * client/cli/cli_map.c s_next_input) and s_read_one() only sends a SUBMIT
 * when a chunk is full: the lines read after the first few sit unsent in
 * m->batch, and results already received are not printed, until 256 more
 * lines or EOF arrive. Repro: `(seq 100; sleep 3) | dpool --broker EP map
 * echo` prints 4 lines in the first 3 s (expected 100). Under load even
 * the first result can miss (it arrives for index 1 before 0). */
Test(e2e, stdin_streams_by_default, .timeout = 30)
{
    e2e_pool(1, 2);
    dp_e2e_proc_t cl;
    int wfd;
    s_stdin_client(&cl, &wfd, ARGV("dpool", "--broker", T.ep, "map", "echo"));
    s_write_lines(wfd, 0, S_FIRST);
    s_lines_ctx_t c = {&cl, S_FIRST};
    bool streamed = dp_e2e_wait_until(s_has_lines, &c, 3000);
    s_write_lines(wfd, S_FIRST, 2 * S_FIRST);
    close(wfd);
    s_check_echo_lines(&cl, 2 * S_FIRST);
    cr_assert(streamed,
              "not all %d results within 3 s of %d lines on an "
              "open stdin (see PRODUCT BUG above)",
              S_FIRST, S_FIRST);
}

/* 15b. garbage on the broker's socket: an ERROR reply, the broker lives */
static void s_hostile(void *sock, const void *const *frames, const size_t *lens,
                      int nframes, int want_code)
{
    for (int k = 0; k < nframes; k++)
        cr_assert_eq(zmq_send(sock, frames[k], lens[k],
                              k + 1 < nframes ? ZMQ_SNDMORE : 0),
                     (int)lens[k]);
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    cr_assert_eq(zmq_poll(&it, 1, 3000), 1, "no reply to garbage");
    unsigned char delim[8], body[512];
    cr_assert_eq(zmq_recv(sock, delim, sizeof delim, 0), 0,
                 "reply lacks the empty delimiter frame");
    int n = zmq_recv(sock, body, sizeof body, 0);
    cr_assert(n >= 5, "reply of %d bytes", n);
    /* [version=1, ERROR=9, [code, message]] */
    cr_assert_eq(body[0], 0x93, "reply is not a 3-array: %02x", body[0]);
    cr_assert_eq(body[1], 0x01);
    cr_assert_eq(body[2], 0x09, "reply is command %d, not ERROR", body[2]);
    cr_assert_eq(body[3], 0x92);
    if (want_code >= 0)
        cr_assert_eq(body[4], want_code, "error code %d, want %d", body[4],
                     want_code);
}

Test(e2e, hostile_bytes, .timeout = 30)
{
    e2e_pool(1, 1);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    cr_assert_eq(zmq_connect(sock, T.ep), 0);

    /* a map32 header claiming 4 G pairs, then junk */
    static const unsigned char bigmap[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01,
                                           0x02, 0x03, 0x04, 0x05, 0x06};
    const void *f1[] = {"", bigmap};
    const size_t l1[] = {0, sizeof bigmap};
    s_hostile(sock, f1, l1, 2, -1);
    /* no empty delimiter frame at all */
    const void *f2[] = {"garbage"};
    const size_t l2[] = {7};
    s_hostile(sock, f2, l2, 1, DP_ERR_PROTOCOL);
    /* a well-formed SUBMIT [0, []] from a peer that never said HELLO */
    static const unsigned char submit[] = {0x93, 0x01, 0x03, 0x92, 0x00, 0x90};
    const void *f3[] = {"", submit};
    const size_t l3[] = {0, sizeof submit};
    s_hostile(sock, f3, l3, 2, DP_ERR_UNKNOWN_PEER);
    /* protocol version 2 */
    static const unsigned char v2[] = {0x93, 0x02, 0x0e, 0x90};
    const void *f4[] = {"", v2};
    const size_t l4[] = {0, sizeof v2};
    s_hostile(sock, f4, l4, 2, DP_ERR_VERSION);
    /* truncated str32: claims 2 GiB, has 3 bytes */
    static const unsigned char trunc[] = {0x93, 0x01, 0x01, 0x92, 0xdb, 0x7f,
                                          0xff, 0xff, 0xff, 'a',  'b',  'c'};
    const void *f5[] = {"", trunc};
    const size_t l5[] = {0, sizeof trunc};
    s_hostile(sock, f5, l5, 2, -1);
    /* 100000 nested arrays */
    static unsigned char deep[100004];
    deep[0] = 0x93;
    deep[1] = 0x01;
    deep[2] = 0x01;
    memset(deep + 3, 0x91, sizeof deep - 4);
    deep[sizeof deep - 1] = 0xc0;
    const void *f6[] = {"", deep};
    const size_t l6[] = {0, sizeof deep};
    s_hostile(sock, f6, l6, 2, -1);
    /* an empty body */
    const void *f7[] = {"", ""};
    const size_t l7[] = {0, 0};
    s_hostile(sock, f7, l7, 2, -1);
    zmq_close(sock);
    zmq_ctx_term(ctx);

    cr_assert_eq(dp_e2e_wait(&T.e, T.broker.pid, 0), -1,
                 "the broker died of garbage");
    cr_assert_geq(dp_e2e_stat(&T.e, T.ep, "bad_messages"), 7);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "map", "echo", "still", "here"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert_str_eq(r.out, "still: still\nhere: here\n");
    dp_e2e_run_free(&r);
}

/* smoke: the real factor kernel through the CLI */
Test(e2e, factor_smoke, .timeout = 30)
{
    e2e_pool(1, 2);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "factor", "12", "7"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert_str_eq(r.out, "12: 2 2 3\n7: 7\n");
    dp_e2e_run_free(&r);
}

/* A batch the broker refuses whole (here: an argument nested deeper than
 * the wire's depth limit, 32) must still end: the caller gets an error,
 * it does not wait forever.
 * PRODUCT BUG: client/dp_pool.c (the DP_CMD_ERROR branch of the reply
 * handler, ~line 303) ignores every ERROR but BROKER_LOST and
 * UNKNOWN_PEER. The broker answers a refused SUBMIT (broker/dp_broker.c
 * s_on_submit -> s_submit_scan: malformed job, TOO_BIG, ids) with ERROR
 * only, so the jobs of that SUBMIT never complete: dp_future_wait and
 * dp_map_next block forever. CLI repro: `seq 100001 | dpool --broker EP
 * --chunksize 200000 map echo` hangs (the CLI accepts --chunksize up to
 * 1000000, the broker refuses more than DP_SUBMIT_MAX_JOBS = 100000 jobs
 * per SUBMIT with TOO_BIG). */
#define S_DEEP 40
Test(e2e, refused_submit_completes, .timeout = 30)
{
    e2e_pool(1, 1);
    dp_pool_t *pool = NULL;
    dp_pool_opts_t po = {.connect_timeout = 5};
    cr_assert_eq(dp_pool_open(T.ep, &po, &pool), 0);
    dp_value_t deep = dp_array(1), *cur = &deep;
    for (int k = 1; k < S_DEEP; k++) {
        cur->v.a.items[0] = dp_array(1);
        cur = &cur->v.a.items[0];
    }
    cur->v.a.items[0] = dp_str("x");
    dp_future_t *f = NULL;
    int rc = dp_submit(pool, "echo", &deep, 1, NULL, &f);
    dp_value_clear(&deep);
    if (rc == 0) { /* refused later, by the broker: the future must end */
        rc = dp_future_wait(f, 3);
        cr_expect_eq(rc, 0,
                     "no result 3 s after a refused SUBMIT: %s "
                     "(see PRODUCT BUG above)",
                     dp_errname(rc));
        if (rc == 0)
            cr_expect_neq(dp_future_result(f)->error, 0);
        dp_future_destroy(&f);
    }
    dp_pool_close(&pool);
    /* and the broker serves the next batch */
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "map", "echo", "ok"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    dp_e2e_run_free(&r);
}

/* Credit flow: a worker holds its slots' jobs plus a small lookahead, so
 * a worker that joins late still gets work (no Celery-style prefetch
 * surprise): 8 jobs of 600 ms on one worker of 1 child; a second worker
 * joins while the batch runs and must run some of them. */
Test(e2e, late_worker_gets_work, .timeout = 40)
{
    e2e_pool(1, 1);
    dp_e2e_proc_t cl;
    cr_assert_eq(
        dp_e2e_spawn(&T.e, &cl, -1,
                     ARGV("dpool", "--broker", T.ep, "--format", "json",
                          "--unordered", "map", "sleep", "600", "600", "600",
                          "600", "600", "600", "600", "600")),
        0);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "running", 1, 8, E2E_UP_MS));
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[1], T.ep, 1, "w1", NULL), 0);
    e2e_workers_up(2);
    int st = dp_e2e_wait(&T.e, cl.pid, E2E_RUN_MS);
    cr_assert_eq(st, 0, "client exit %d", st);
    char *out = dp_e2e_slurp(cl.out);
    char **l = NULL;
    int n = dp_e2e_lines(out, &l), late = 0;
    cr_assert_eq(n, 8, "%d results", n);
    for (int k = 0; k < n; k++) {
        char who[16] = "";
        cr_assert(dp_e2e_jtrue(l[k], "ok"), "%s", l[k]);
        dp_e2e_jstr(l[k], "worker", who, sizeof who);
        late += strcmp(who, "w1") == 0;
    }
    cr_assert(late >= 2, "the late worker ran %d of 8 jobs", late);
    free(l);
    free(out);
}

/* --max-jobs-per-child 2: a child is replaced after 2 jobs (like
 * maxtasksperchild), so 6 jobs on 1 child run in 3 different processes. */
Test(e2e, max_jobs_per_child, .timeout = 40)
{
    cr_assert_eq(dp_e2e_broker(&T.e, &T.broker, 0, T.ep, sizeof T.ep), 0);
    cr_assert_eq(dp_e2e_spawn(&T.e, &T.worker[0], -1,
                              ARGV("dpool-worker", "--connect", T.ep, "-p", "1",
                                   "--max-jobs-per-child", "2")),
                 0);
    e2e_workers_up(1);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--format", "json", "--chunksize",
                 "1", "map", "echo", "a", "b", "c", "d", "e", "f"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = e2e_json_lines(&r, 6);
    long long pids[6];
    int distinct = 0;
    for (int k = 0; k < 6; k++) {
        pids[k] = dp_e2e_jint(l[k], "pid");
        bool seen = false;
        for (int j = 0; j < k; j++)
            seen |= pids[j] == pids[k];
        distinct += !seen;
    }
    cr_assert_eq(distinct, 3, "6 jobs ran in %d processes", distinct);
    free(l);
    dp_e2e_run_free(&r);
}

/* --progress: a batch longer than a moment shows done/total, failures,
 * jobs/s on stderr, ending with a newline; stdout stays clean. */
Test(e2e, progress_line, .timeout = 40)
{
    e2e_pool(1, 1);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--progress", "map", "sleep", "500",
                 "500", "500", "x"));
    cr_assert_eq(r.code, 1, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert(strstr(r.err, "4/4 done, 1 failed"), "stderr:\n%s", r.err);
    cr_assert(strstr(r.err, "jobs/s"), "stderr:\n%s", r.err);
    cr_assert_null(strstr(r.out, "done"), "stdout:\n%s", r.out);
    dp_e2e_run_free(&r);
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--no-progress", "map", "sleep",
                 "500", "500", "500"));
    cr_assert_eq(r.code, 0);
    cr_assert_null(strstr(r.err, "done"), "stderr:\n%s", r.err);
    dp_e2e_run_free(&r);
}

/* --unordered with more inputs than --max-inflight: a slow job is
 * overtaken by many fast ones, and its result must still be labelled with
 * its own input (sleep returns its input, so label == result). */
Test(e2e, unordered_labels_survive_overtaking, .timeout = 40)
{
    e2e_pool(1, 2);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/inputs", T.e.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int k = 0; k < 400; k++)
        fprintf(f, "%d\n", k % 40 == 0 ? 300 + k / 40 : k % 7);
    fclose(f);
    int in = open(path, O_RDONLY);
    dp_e2e_run_t r;
    cr_assert_eq(dp_e2e_run(&T.e, &r, E2E_RUN_MS, in,
                            ARGV("dpool", "--broker", T.ep, "--format", "json",
                                 "-u", "--max-inflight", "32", "map", "sleep")),
                 0);
    close(in);
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = e2e_json_lines(&r, 400);
    bool seen[400] = {false};
    for (int k = 0; k < 400; k++) {
        char input[32];
        long long idx = dp_e2e_jint(l[k], "index");
        cr_assert(idx >= 0 && idx < 400 && !seen[idx], "%s", l[k]);
        seen[idx] = true;
        cr_assert_eq(dp_e2e_jstr(l[k], "input", input, sizeof input), 0);
        cr_assert_eq(strtoll(input, NULL, 10), dp_e2e_jint(l[k], "result"),
                     "mislabelled: %s", l[k]);
    }
    free(l);
    dp_e2e_run_free(&r);
}

/* Options from the environment (containers need no wrapper): the client
 * finds its broker, format and time limit in DPOOL_*; the command line
 * still wins. */
Test(e2e, options_from_environment, .timeout = 40)
{
    e2e_pool(1, 1);
    setenv("DPOOL_BROKER", T.ep, 1);
    setenv("DPOOL_FORMAT", "json", 1);
    setenv("DPOOL_TIMEOUT", "0.2", 1);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS, ARGV("dpool", "map", "sleep", "5000", "1"));
    cr_assert_eq(r.code, 1, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = e2e_json_lines(&r, 2);
    char name[32];
    cr_assert_str_eq(e2e_errname(l[0], name, sizeof name), "TIMEOUT");
    cr_assert(dp_e2e_jtrue(l[1], "ok"));
    free(l);
    dp_e2e_run_free(&r);
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--format", "text", "map", "echo", "hi"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert_str_eq(r.out, "hi: hi\n");
    dp_e2e_run_free(&r);
    unsetenv("DPOOL_BROKER");
    unsetenv("DPOOL_FORMAT");
    unsetenv("DPOOL_TIMEOUT");
}

/* More than one --bind: a worker on tcp:// and a client on ipc:// meet at
 * the same broker. */
Test(e2e, broker_binds_two_endpoints, .timeout = 40)
{
    char tcp[DP_E2E_EP_MAX], ipc[PATH_MAX + 32];
    snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", dp_e2e_free_port());
    snprintf(ipc, sizeof ipc, "ipc://%s/broker.sock", T.e.dir);
    cr_assert_eq(dp_e2e_spawn(&T.e, &T.broker, -1,
                              ARGV("dpool-broker", "--bind", tcp, "--bind", ipc,
                                   "--heartbeat", "200")),
                 0);
    snprintf(T.ep, sizeof T.ep, "%s", tcp);
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], tcp, 1, "w0", NULL), 0);
    e2e_workers_up(1);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", ipc, "--connect-timeout", "5", "map",
                 "echo", "via-ipc"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert_str_eq(r.out, "via-ipc: via-ipc\n");
    dp_e2e_run_free(&r);
}

/* --store-on-worker DIR: the worker saves download bodies there (a shared
 * volume) and returns the path; nothing travels back to the client. */
Test(e2e, store_on_worker, .timeout = 40)
{
    char www[PATH_MAX + 16], store[PATH_MAX + 16], file[PATH_MAX + 32];
    snprintf(www, sizeof www, "%s/www", T.e.dir);
    snprintf(store, sizeof store, "%s/store", T.e.dir);
    cr_assert_eq(mkdir(www, 0755), 0);
    cr_assert_eq(mkdir(store, 0755), 0);
    snprintf(file, sizeof file, "%s/data.bin", www);
    FILE *f = fopen(file, "wb");
    cr_assert_not_null(f);
    for (int k = 0; k < 100000; k++)
        fputc(k * 7 & 0xff, f);
    fclose(f);
    dp_httpd_opts_t ho = {.docroot = www};
    dp_httpd_t *h = dp_httpd_start(&ho);
    cr_assert_not_null(h);
    char url[256];
    dp_httpd_url(h, "/data.bin", url, sizeof url);
    cr_assert_eq(dp_e2e_broker(&T.e, &T.broker, 0, T.ep, sizeof T.ep), 0);
    cr_assert_eq(dp_e2e_spawn(&T.e, &T.worker[0], -1,
                              ARGV("dpool-worker", "--connect", T.ep, "-p", "1",
                                   "--store-on-worker", store,
                                   /* the test server is on loopback */
                                   "--allow-net", "127.0.0.0/8")),
                 0);
    e2e_workers_up(1);
    /* the io child starts with the first io job, not before */
    pid_t kids[8];
    cr_assert_eq(dp_e2e_children(T.worker[0].pid, "io", kids, 8), 0,
                 "an io child runs before any download");
    cr_assert_eq(dp_e2e_children(T.worker[0].pid, "cpu", kids, 8), 1);
    dp_e2e_run_t r;
    e2e_run(
        &r, E2E_RUN_MS,
        ARGV("dpool", "--broker", T.ep, "--format", "json", "download", url));
    dp_httpd_stop(&h);
    cr_assert_eq(dp_e2e_children(T.worker[0].pid, "io", kids, 8), 1,
                 "the io child is kept after its first download");
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char path[PATH_MAX + 64];
    cr_assert_eq(dp_e2e_jstr(r.out, "path", path, sizeof path), 0, "%s", r.out);
    cr_assert(strncmp(path, store, strlen(store)) == 0, "%s", path);
    cr_assert_null(strstr(r.out, "\"body\""), "%s", r.out);
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", file, path);
    cr_assert_eq(system(cmd), 0, "stored file differs from the served one");
    dp_e2e_run_free(&r);
}

/* s_io_child_up: the worker in arg (a pid_t) has its io child. */
static bool s_io_child_up(void *arg)
{
    pid_t kids[8];
    return dp_e2e_children(*(pid_t *)arg, "io", kids, 8) == 1;
}

/* --processes 0: an io-only worker. It has no cpu child, starts its io
 * child at once (it exists to download), and downloads; -p 0 with
 * --io-slots 0 has nothing to run and is refused. */
Test(e2e, io_only_worker, .timeout = 40)
{
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool-worker", "--connect", "tcp://127.0.0.1:9", "-p", "0",
                 "--io-slots", "0"));
    cr_assert_eq(r.code, 2, "exit %d", r.code);
    cr_assert(strstr(r.err, "nothing to run"), "%s", r.err);
    dp_e2e_run_free(&r);

    dp_httpd_opts_t ho = {0};
    dp_httpd_t *h = dp_httpd_start(&ho);
    cr_assert_not_null(h);
    char url[256];
    dp_httpd_url(h, "/status/200", url, sizeof url);
    cr_assert_eq(dp_e2e_broker(&T.e, &T.broker, 0, T.ep, sizeof T.ep), 0);
    cr_assert_eq(
        dp_e2e_spawn(&T.e, &T.worker[0], -1,
                     ARGV("dpool-worker", "--connect", T.ep, "-p", "0",
                          "--io-slots", "2", "--allow-net", "127.0.0.0/8")),
        0);
    e2e_workers_up(1);
    cr_assert(dp_e2e_wait_until(s_io_child_up, &T.worker[0].pid, E2E_UP_MS),
              "an io-only worker did not start its io child before any job");
    pid_t kids[8];
    cr_assert_eq(dp_e2e_children(T.worker[0].pid, "cpu", kids, 8), 0);
    e2e_run(
        &r, E2E_RUN_MS,
        ARGV("dpool", "--broker", T.ep, "--format", "json", "download", url));
    dp_httpd_stop(&h);
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert(strstr(r.out, "\"status\":200"), "%s", r.out);
    dp_e2e_run_free(&r);
}

/* s_router_wait: the next message of cmd on the ROUTER sock within ms
 * (others, as heartbeats, are skipped): *m to close, *r reads its body.
 * 0 or -1. */
static int s_router_wait(void *sock, int cmd, dp_zmsg_t *m, dp_rd_t *r, int ms)
{
    static dp_limits_t lim;
    lim = dp_limits_default();
    uint64_t end = dp_now_ms() + (uint64_t)ms;
    while (dp_now_ms() < end) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0 || dp_zrecv(sock, 1, m, 0))
            continue;
        int got;
        if (dp_msg_open(zmq_msg_data(&m->body), zmq_msg_size(&m->body), &lim,
                        &got, r) == 0 &&
            got == cmd)
            return 0;
        zmq_msg_close(&m->body);
    }
    return -1;
}

/* A broker (in error, or lying) that gives an io-only worker a cpu job
 * gets it back at once (REQUEUE): the worker has no child to run it, and
 * it used to keep the job queued for ever. A fake broker on a ROUTER
 * speaks to the real dpool-worker. */
Test(e2e, job_of_a_class_without_slots_goes_back, .timeout = 30)
{
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_ROUTER);
    dp_zsock_linger0(sock);
    snprintf(T.ep, sizeof T.ep, "tcp://127.0.0.1:%d", dp_e2e_free_port());
    cr_assert_eq(zmq_bind(sock, T.ep), 0);
    cr_assert_eq(dp_e2e_spawn(&T.e, &T.worker[0], -1,
                              ARGV("dpool-worker", "--connect", T.ep, "-p", "0",
                                   "--io-slots", "1")),
                 0);
    dp_zmsg_t m;
    dp_rd_t r;
    cr_assert_eq(s_router_wait(sock, DP_CMD_READY, &m, &r, 10000), 0,
                 "no READY from the worker");
    unsigned char rid[DP_ROUTING_ID_MAX];
    size_t rid_len = m.rid_len;
    memcpy(rid, m.rid, rid_len);
    zmq_msg_close(&m.body);
    dp_wr_t w, job;
    dp_wr_init(&w);
    dp_wr_init(&job);
    dp_welcome_t wm = {.peer_no = 1,
                       .heartbeat_ms = 1000,
                       .max_msg = 1 << 20,
                       .cpu_slots = 0,
                       .io_slots = 1};
    dp_msg_welcome(&w, &wm);
    cr_assert_eq(dp_zsend(sock, rid, rid_len, &w, 0), 0);
    dp_value_t args = dp_array(1);
    args.v.a.items[0] = dp_str("7");
    dp_msg_put_job(&job, 42, "isprime", &args, 0, 0);
    dp_value_clear(&args);
    dp_wr_reset(&w);
    size_t at = dp_msg_jobs_begin(&w, 1);
    dp_msg_jobs_add(&w, 1, job.buf.data, job.buf.len);
    dp_msg_jobs_close(&w, at, 1);
    cr_assert_eq(dp_zsend(sock, rid, rid_len, &w, 0), 0);
    cr_assert_eq(s_router_wait(sock, DP_CMD_RESULTS, &m, &r, 5000), 0,
                 "the cpu job was not answered");
    uint32_t n = 0;
    dp_res_t res;
    cr_assert_eq(dp_msg_read_results(&r, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(dp_msg_read_result(&r, &res), 0);
    cr_assert_eq(res.id, 42);
    cr_assert_eq(res.code, DP_ERR_REQUEUE, "%s", dp_errname((int)res.code));
    zmq_msg_close(&m.body);
    dp_wr_release(&w);
    dp_wr_release(&job);
    cr_assert_eq(dp_e2e_stop(&T.e, T.worker[0].pid, SIGTERM, 5000), 0);
    zmq_close(sock);
    zmq_ctx_term(ctx);
}

/* `dpool download` on an embedded (local) pool starts its io child and
 * no cpu child (nothing of a download runs there) unless -p asks for
 * some: the client's own children are one io child, nothing else. */
Test(e2e, embedded_download_has_no_cpu_children, .timeout = 40)
{
    dp_httpd_opts_t ho = {0};
    dp_httpd_t *h = dp_httpd_start(&ho);
    cr_assert_not_null(h);
    char url[256], out[PATH_MAX + 8];
    dp_httpd_url(h, "/slow?ms=3000", url, sizeof url);
    snprintf(out, sizeof out, "%s/out", T.e.dir);
    cr_assert_eq(mkdir(out, 0755), 0);
    dp_e2e_proc_t cli;
    cr_assert_eq(
        dp_e2e_spawn(&T.e, &cli, -1, ARGV("dpool", "download", "-o", out, url)),
        0);
    cr_assert(dp_e2e_wait_until(s_io_child_up, &cli.pid, E2E_UP_MS),
              "no io child under dpool %d", (int)cli.pid);
    pid_t kids[8];
    cr_assert_eq(dp_e2e_children(cli.pid, "cpu", kids, 8), 0);
    cr_assert_eq(dp_e2e_children(cli.pid, NULL, kids, 8), 1,
                 "no broker, no worker: the io child alone");
    cr_assert_eq(dp_e2e_wait(&T.e, cli.pid, E2E_RUN_MS), 0);
    dp_httpd_stop(&h);
}

/* An embedded pool's worker (--embedded) stops when its broker shuts
 * down (the pool is closing) instead of reconnecting: a reconnect to the
 * closing broker held the broker's exit for its linger (500 ms), now and
 * then, at the end of a `dpool` run. A worker without --embedded keeps
 * trying (it outlives a broker restart). */
Test(e2e, embedded_worker_stops_with_its_broker, .timeout = 40)
{
    cr_assert_eq(dp_e2e_broker(&T.e, &T.broker, 0, T.ep, sizeof T.ep), 0);
    cr_assert_eq(dp_e2e_spawn(&T.e, &T.worker[0], -1,
                              ARGV("dpool-worker", "--connect", T.ep, "-p", "1",
                                   "--embedded")),
                 0);
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[1], T.ep, 1, "plain", NULL), 0);
    e2e_workers_up(2);
    cr_assert_eq(dp_e2e_stop(&T.e, T.broker.pid, SIGTERM, 5000), 0);
    cr_assert_eq(dp_e2e_wait(&T.e, T.worker[0].pid, 10000), 0,
                 "the embedded worker did not stop with its broker");
    cr_assert_eq(dp_e2e_wait(&T.e, T.worker[1].pid, 1000), -1,
                 "a standalone worker left with its broker");
}

/* dp_map_text's input for the tests below: texts[k], "BAD" as an input
 * that cannot become a job (DP_INPUT_BAD, RANGE). */
typedef struct {
    const char *const *texts;
    size_t n, next;
} s_texts_t;

static int s_text_in(void *ctx, const char **text, size_t *len, int *code)
{
    s_texts_t *t = ctx;
    if (t->next == t->n)
        return 0;
    const char *s = t->texts[t->next++];
    if (strcmp(s, "BAD") == 0) {
        *text = "not this one";
        *len = strlen(*text);
        *code = DP_ERR_RANGE;
        return DP_INPUT_BAD;
    }
    *text = s;
    *len = strlen(s);
    return 1;
}

/* dp_map_text sends each text as the job's one argument; dp_map_next_view
 * gives borrowed results (values, error messages, worker names, results
 * made by the map) and mixes with dp_map_next_wait, in input order */
Test(e2e, map_text_and_next_view, .timeout = 30)
{
    e2e_pool(1, 2);
    dp_pool_t *pool = NULL;
    dp_pool_opts_t po = {.connect_timeout = 5};
    cr_assert_eq(dp_pool_open(T.ep, &po, &pool), 0);
    const char *in[] = {"7", "12", "BAD", "abc", "97", "18446744073709551629"};
    s_texts_t t = {in, 6, 0};
    dp_map_t *m = NULL;
    cr_assert_eq(dp_map_text(pool, "isprime", s_text_in, &t, NULL, &m), 0);
    const int want_err[] = {0, 0, DP_ERR_RANGE, DP_ERR_INVALID, 0, 0};
    const bool want_prime[] = {true, false, false, false, true, true};
    for (size_t k = 0; k < 6; k++) {
        dp_result_t *r = NULL, *own = NULL;
        if (k % 2) { /* every other one the caller's own */
            cr_assert_eq(dp_map_next_wait(m, &own, -1), 0);
            r = own;
        } else {
            cr_assert_eq(dp_map_next_view(m, &r, -1), 0);
        }
        cr_assert_eq(r->index, k);
        cr_assert_eq(r->error, want_err[k], "input %zu: %s (%s)", k,
                     dp_errname(r->error), r->message ? r->message : "");
        if (k == 2)
            cr_assert_str_eq(r->message, "not this one");
        if (k == 3)
            cr_assert(r->message && strstr(r->message, "abc"), "%s",
                      r->message ? r->message : "(null)");
        if (!r->error) {
            const dp_value_t *v = &r->value;
            if (v->type == DP_MAP) /* past 2^64: {"prime": bool, ...} */
                v = dp_dict_get(v, "prime");
            cr_assert(v && v->type == DP_BOOL, "input %zu", k);
            cr_assert_eq(v->v.b, want_prime[k], "input %zu", k);
            cr_assert_str_eq(r->worker, "w0");
            cr_assert_eq(r->attempts, 1u);
        }
        dp_result_free(&own);
    }
    dp_result_t *r = NULL;
    cr_assert_eq(dp_map_next_view(m, &r, -1), DP_ERR_EOF);
    cr_assert_null(r);
    dp_map_destroy(&m);

    /* a value that needs memory (factor's list) viewed and changed by the
     * caller: the map frees it; unordered, every input once */
    const char *f[] = {"12", "97", "1001", "BAD", "4096", "30"};
    t = (s_texts_t){f, 6, 0};
    dp_map_opts_t o = {.unordered = true, .job.retries = -1};
    cr_assert_eq(dp_map_text(pool, "factor", s_text_in, &t, &o, &m), 0);
    bool seen[6] = {false};
    for (int k = 0; k < 6; k++) {
        cr_assert_eq(dp_map_next_view(m, &r, -1), 0);
        cr_assert(r->index < 6 && !seen[r->index]);
        seen[r->index] = true;
        cr_assert_eq(r->error, r->index == 3 ? DP_ERR_RANGE : 0);
        if (r->index == 0) {
            cr_assert_eq(r->value.type, DP_ARRAY);
            cr_assert_eq(r->value.v.a.len, 3u); /* 2 2 3 */
            dp_value_clear(&r->value);
            r->value = dp_str("the caller's now"); /* the map frees it */
        }
    }
    cr_assert_eq(dp_map_next_view(m, &r, -1), DP_ERR_EOF);
    dp_map_destroy(&m);
    dp_pool_close(&pool);
}

/* the CLI keeps each input's text until its line is printed (in blocks,
 * dpool's cli_map.c): long inputs, many blocks, out of order, each
 * printed once with its own text */
Test(e2e, cli_unordered_long_inputs_each_once, .timeout = 60)
{
    e2e_pool(1, 2);
    char path[sizeof T.e.dir + 16];
    snprintf(path, sizeof path, "%s/long.txt", T.e.dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    enum { N = 3000, W = 300 }; /* 900 KB of input: many 64 KiB blocks */
    for (int k = 0; k < N; k++) {
        fprintf(f, "%d-", k);
        for (int c = 0; c < W; c++)
            fputc('a' + (k + c) % 26, f);
        fputc('\n', f);
    }
    fclose(f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    dp_e2e_run_t r;
    cr_assert_eq(
        dp_e2e_run(&T.e, &r, E2E_RUN_MS * 4, fd,
                   ARGV("dpool", "--broker", T.ep, "-u", "map", "echo")),
        0);
    close(fd);
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = NULL;
    int n = dp_e2e_lines(r.out, &l);
    cr_assert_eq(n, N, "%d lines", n);
    static bool seen[N];
    memset(seen, 0, sizeof seen);
    for (int k = 0; k < n; k++) {
        /* "K-xyz...: K-xyz..." (echo gives its argument back) */
        char *colon = strstr(l[k], ": ");
        cr_assert(colon, "%s", l[k]);
        *colon = '\0';
        cr_assert_str_eq(l[k], colon + 2);
        char *end;
        long idx = strtol(l[k], &end, 10);
        cr_assert(*end == '-' && idx >= 0 && idx < N && !seen[idx], "%s", l[k]);
        seen[idx] = true;
        cr_assert_eq((int)strlen(strchr(l[k], '-') + 1), W, "%s", l[k]);
    }
    free(l);
    dp_e2e_run_free(&r);
}

/* A fake broker for the test below: WELCOME to the HELLO, then to each
 * SUBMIT a RESULTS answering every job with one value too costly to
 * decode (S_HUGE nested empty arrays: ~24 bytes decoded for each byte on
 * the wire, over the decode bound), until `want` jobs are answered. */
#define S_HUGE 200000u
typedef struct {
    void *sock;
    uint32_t want, answered;
} s_fake_t;

static void s_fake_answer(s_fake_t *f, dp_zmsg_t *m)
{
    int cmd;
    dp_rd_t r;
    dp_limits_t lim = dp_limits_default();
    if (dp_msg_open(zmq_msg_data(&m->body), zmq_msg_size(&m->body), &lim, &cmd,
                    &r))
        return;
    dp_wr_t w;
    dp_wr_init(&w);
    if (cmd == DP_CMD_HELLO) {
        dp_welcome_t wm = {.peer_no = 7,
                           .heartbeat_ms = 1000,
                           .max_msg = DP_MAX_MSG_BYTES_DEFAULT,
                           .cpu_slots = 2};
        dp_msg_welcome(&w, &wm);
        dp_zsend(f->sock, m->rid, m->rid_len, &w, 0);
        return;
    }
    uint64_t seq;
    uint32_t n;
    if (cmd != DP_CMD_SUBMIT || dp_msg_read_submit_jobs(&r, &seq, &n))
        return;
    dp_value_t huge = dp_array(S_HUGE);
    for (uint32_t k = 0; k < S_HUGE; k++)
        huge.v.a.items[k] = dp_array(0);
    dp_wr_t res;
    dp_wr_init(&res);
    for (uint32_t k = 0; k < n; k++)
        dp_msg_put_result(&res, seq + k, 0, &huge, NULL, "fake", 1, 1, 1);
    dp_value_clear(&huge);
    dp_msg_results(&w, n, res.buf.data, res.buf.len);
    dp_wr_release(&res);
    dp_zsend(f->sock, m->rid, m->rid_len, &w, 0);
    f->answered += n;
}

static void *s_fake_broker(void *arg)
{
    s_fake_t *f = arg;
    uint64_t end = dp_now_ms() + 20000;
    while (f->answered < f->want && dp_now_ms() < end) {
        zmq_pollitem_t it = {f->sock, 0, ZMQ_POLLIN, 0};
        dp_zmsg_t m;
        if (zmq_poll(&it, 1, 100) <= 0 || dp_zrecv(f->sock, 1, &m, 0))
            continue;
        s_fake_answer(f, &m);
        zmq_msg_close(&m.body);
    }
    return NULL;
}

/* a result whose value the client cannot decode (over the decode bound)
 * still answers its input, as an error result, whether it is viewed
 * (dp_map_next_view) or taken (dp_map_next_wait): nothing waits for it */
Test(e2e, undecodable_result_is_an_error_result, .timeout = 30)
{
    void *ctx = zmq_ctx_new();
    s_fake_t f = {zmq_socket(ctx, ZMQ_ROUTER), 2, 0};
    dp_zsock_linger0(f.sock);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", dp_e2e_free_port());
    cr_assert_eq(zmq_bind(f.sock, ep), 0);
    pthread_t thr;
    cr_assert_eq(pthread_create(&thr, NULL, s_fake_broker, &f), 0);
    dp_pool_t *pool = NULL;
    dp_pool_opts_t po = {.connect_timeout = 5};
    cr_assert_eq(dp_pool_open(ep, &po, &pool), 0);
    const char *in[] = {"7", "11"};
    s_texts_t t = {in, 2, 0};
    dp_map_t *m = NULL;
    cr_assert_eq(dp_map_text(pool, "isprime", s_text_in, &t, NULL, &m), 0);
    dp_result_t *r = NULL, *own = NULL;
    cr_assert_eq(dp_map_next_view(m, &r, 10), 0);
    cr_assert_eq(r->index, 0u);
    cr_assert_eq(r->error, DP_ERR_TOO_BIG, "%s", dp_errname(r->error));
    cr_assert(r->message && strstr(r->message, "decoded"));
    cr_assert_eq(dp_map_next_wait(m, &own, 10), 0);
    cr_assert_eq(own->index, 1u);
    cr_assert_eq(own->error, DP_ERR_TOO_BIG, "%s", dp_errname(own->error));
    dp_result_free(&own);
    cr_assert_eq(dp_map_next_view(m, &r, 10), DP_ERR_EOF);
    dp_map_destroy(&m);
    dp_pool_close(&pool);
    pthread_join(thr, NULL);
    zmq_close(f.sock);
    zmq_ctx_term(ctx);
}
