/*
 * test_bounds.c - the broker against peers that break the rules: raw
 * clients and workers (tests/e2e/raw.h) talking to the real dpool-broker.
 * A worker vanishing under a leaving client, leases that never come back,
 * a worker that hands every job back, a SUBMIT with a duplicate id. Under
 * -DDP_SANITIZE the broker is the sanitized build and any report in its
 * log fails the test (e2e_teardown).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <zmq.h>

#include "e2e.h"
#include "raw.h"

#define S_JOBS_MAX 64
#define S_SETTLE_MS 100 /* lets the broker see a TCP close */

TestSuite(bounds, .init = e2e_setup, .fini = e2e_teardown, .timeout = 60);

typedef struct {
    uint64_t ids[S_JOBS_MAX];
    uint32_t n;
} s_got_t;

/* s_collect: a skip callback that keeps the ids of JOBS messages. */
static void s_collect(void *arg, raw_msg_t *m)
{
    s_got_t *g = arg;
    if (m->cmd == DP_CMD_JOBS)
        g->n += raw_jobs(m, g->ids + g->n, S_JOBS_MAX - g->n);
}

/* s_wait_jobs: JOBS for worker w until it holds want ids. */
static void s_wait_jobs(void *w, s_got_t *g, uint32_t want)
{
    uint64_t end = raw_now_ms() + RAW_WAIT_MS;
    while (g->n < want && raw_now_ms() < end) {
        raw_msg_t m;
        if (raw_recv(w, 50, &m) == 1) {
            s_collect(g, &m);
            raw_msg_close(&m);
        }
    }
    cr_assert_geq(g->n, want, "worker got %u jobs, want %u", g->n, want);
}

/* s_results: read RESULTS on client c until n results came (or the
 * deadline), keep each one's code; heartbeat the workers meanwhile.
 * Returns how many came. */
static uint32_t s_results(void *c, void *const *workers, int nw, uint32_t n,
                          uint32_t *codes, int timeout_ms)
{
    uint32_t got = 0;
    uint64_t end = raw_now_ms() + (uint64_t)timeout_ms, hb = 0;
    do {
        if (raw_now_ms() >= hb) {
            for (int k = 0; k < nw; k++)
                raw_send_empty(workers[k], DP_CMD_HEARTBEAT);
            raw_send_empty(c, DP_CMD_HEARTBEAT);
            hb = raw_now_ms() + 50;
        }
        for (int k = 0; k < nw; k++) { /* drain: JOBS go unanswered */
            raw_msg_t m;
            while (raw_recv(workers[k], 0, &m) == 1)
                raw_msg_close(&m);
        }
        raw_msg_t m;
        if (raw_recv(c, timeout_ms ? 20 : 0, &m) != 1)
            continue;
        uint32_t cnt;
        if (m.cmd == DP_CMD_RESULTS && !dp_rd_array(&m.r, &cnt)) {
            for (uint32_t k = 0; k < cnt; k++) {
                dp_res_t res;
                if (dp_msg_read_result(&m.r, &res))
                    break;
                if (got < n)
                    codes[got] = res.code;
                got++;
            }
        }
        raw_msg_close(&m);
    } while (got < n && raw_now_ms() < end);
    return got;
}

/* Issue 8 item 1: a worker holding a client's jobs vanishes; the client
 * cancels everything and leaves before the broker's heartbeat sees the
 * worker gone. The CANCEL to the vanished worker fails; its leases must
 * not be requeued into the client that left (use-after-free), and none of
 * that client's jobs may reach a new worker. */
Test(bounds, worker_vanishes_under_a_leaving_client)
{
    cr_assert_eq(raw_broker(&T.e, &T.broker, T.ep, sizeof T.ep,
                            ARGV("--heartbeat", "1000")),
                 0);
    void *ctx = zmq_ctx_new();
    void *w = raw_dealer(ctx, T.ep), *c = raw_dealer(ctx, T.ep);
    cr_assert_eq(raw_ready(w, "w-vanish", 4, 0), 0);
    long no = raw_hello(c, "c-leaving");
    cr_assert_gt(no, 0);
    uint64_t seq = (uint64_t)no << 32 | 1;
    cr_assert_eq(raw_submit(c, seq, 8, NULL, "sleep", 10000, 0, 3), 0);
    s_got_t g = {0};
    s_wait_jobs(w, &g, 4);
    zmq_close(w); /* linger 0: gone at once */
    usleep(S_SETTLE_MS * 1000);
    dp_wr_t wr;
    dp_wr_init(&wr);
    dp_msg_begin(&wr, DP_CMD_CANCEL);
    dp_wr_array(&wr, 0);
    raw_send(c, &wr);
    dp_wr_release(&wr);
    raw_send_empty(c, DP_CMD_BYE);
    zmq_close(c);
    usleep(S_SETTLE_MS * 1000);
    /* a new worker must get none of the departed client's jobs */
    void *w2 = raw_dealer(ctx, T.ep);
    cr_assert_eq(raw_ready(w2, "w-new", 4, 0), 0);
    s_got_t g2 = {0};
    uint64_t end = raw_now_ms() + 2 * S_SETTLE_MS * 5;
    while (raw_now_ms() < end) {
        raw_msg_t m;
        if (raw_recv(w2, 50, &m) == 1) {
            s_collect(&g2, &m);
            raw_msg_close(&m);
        }
    }
    cr_expect_eq(g2.n, 0, "a departed client's job was dispatched (%u)", g2.n);
    void *probe = raw_dealer(ctx, T.ep);
    cr_assert_gt(raw_hello(probe, "probe"), 0, "broker not answering");
    cr_expect_eq(raw_status(probe, "queued", NULL, NULL), 0);
    cr_expect_eq(raw_status(probe, "running", NULL, NULL), 0);
    zmq_close(probe);
    zmq_close(w2);
    zmq_ctx_term(ctx);
}

/* Issue 8 item 2: a worker that takes jobs and never answers, while it
 * keeps heartbeating: the broker's lease runs out (time limit + grace),
 * the job fails TIMEOUT (no retries left), and the worker is dropped
 * after DP_LEASE_EXPIRIES_MAX expired leases. */
Test(bounds, lease_deadline_is_held_by_the_broker)
{
    cr_assert_eq(raw_broker(&T.e, &T.broker, T.ep, sizeof T.ep,
                            ARGV("--heartbeat", "200", "--lease-grace", "200")),
                 0);
    void *ctx = zmq_ctx_new();
    void *w = raw_dealer(ctx, T.ep), *c = raw_dealer(ctx, T.ep);
    cr_assert_eq(raw_ready(w, "w-silent", 65535, 0), 0);
    long no = raw_hello(c, "c-timeout");
    cr_assert_gt(no, 0);
    uint64_t seq = (uint64_t)no << 32 | 1;
    cr_assert_eq(raw_submit(c, seq, 3, NULL, "sleep", 1, 300, 0), 0);
    uint32_t codes[3];
    uint64_t t0 = raw_now_ms();
    uint32_t got = s_results(c, &w, 1, 3, codes, 5000);
    cr_assert_eq(got, 3, "%u results within 5 s", got);
    cr_expect_lt(raw_now_ms() - t0, 3000, "results took too long");
    for (int k = 0; k < 3; k++)
        cr_expect_eq(codes[k], DP_ERR_TIMEOUT, "code %u", codes[k]);
    cr_expect_eq(raw_status(c, "workers", NULL, NULL), 0,
                 "a worker whose leases all ran out is still served");
    cr_expect_eq(raw_status(c, "expired", NULL, NULL), 3);
    zmq_close(w);
    zmq_close(c);
    zmq_ctx_term(ctx);
}

/* s_handback_loop: worker w answers every job with REQUEUE until the
 * client has n results or timeout; returns the results' count. */
static uint32_t s_handback_loop(void *w, void *c, uint32_t n, uint32_t *codes,
                                int timeout_ms)
{
    uint32_t got = 0;
    uint64_t end = raw_now_ms() + (uint64_t)timeout_ms, hb = 0;
    while (got < n && raw_now_ms() < end) {
        if (raw_now_ms() >= hb) {
            raw_send_empty(c, DP_CMD_HEARTBEAT);
            hb = raw_now_ms() + S_SETTLE_MS;
        }
        raw_msg_t m;
        while (raw_recv(w, 0, &m) == 1) {
            uint64_t ids[S_JOBS_MAX];
            uint32_t k =
                m.cmd == DP_CMD_JOBS ? raw_jobs(&m, ids, S_JOBS_MAX) : 0;
            if (k)
                raw_answer(w, ids, k, DP_ERR_REQUEUE);
            raw_msg_close(&m);
        }
        zmq_pollitem_t it[2] = {{w, 0, ZMQ_POLLIN, 0}, {c, 0, ZMQ_POLLIN, 0}};
        zmq_poll(it, 2, 20);
        if (it[1].revents & ZMQ_POLLIN) {
            void *none = NULL;
            got += s_results(c, &none, 0, n - got, codes + got, 0);
        }
    }
    return got;
}

/* Issue 8 item 3: every job handed back unstarted: each fails LIMIT after
 * its REQUEUE budget instead of going round forever. */
Test(bounds, requeue_has_a_budget)
{
    cr_assert_eq(raw_broker(&T.e, &T.broker, T.ep, sizeof T.ep,
                            ARGV("--heartbeat", "1000", "--max-requeues", "5")),
                 0);
    void *ctx = zmq_ctx_new();
    void *w = raw_dealer(ctx, T.ep), *c = raw_dealer(ctx, T.ep);
    cr_assert_eq(raw_ready(w, "w-handback", 2, 0), 0);
    long no = raw_hello(c, "c-requeue");
    cr_assert_gt(no, 0);
    uint64_t seq = (uint64_t)no << 32 | 1;
    cr_assert_eq(raw_submit(c, seq, 4, NULL, "sleep", 1, 0, 3), 0);
    uint32_t codes[4];
    uint32_t got = s_handback_loop(w, c, 4, codes, 5000);
    cr_assert_eq(got, 4, "%u results", got);
    for (int k = 0; k < 4; k++)
        cr_expect_eq(codes[k], DP_ERR_LIMIT, "code %u", codes[k]);
    cr_expect_eq(raw_status(c, "handed_back", NULL, NULL), 4 * 6);
    zmq_close(w);
    zmq_close(c);
    zmq_ctx_term(ctx);
}

/* ...and a worker that hands back everything while it has credit is
 * dropped (here the job's own budget is out of the way). */
Test(bounds, worker_handing_back_everything_is_dropped)
{
    cr_assert_eq(raw_broker(&T.e, &T.broker, T.ep, sizeof T.ep,
                            ARGV("--max-requeues", "65535")),
                 0);
    void *ctx = zmq_ctx_new();
    void *w = raw_dealer(ctx, T.ep), *c = raw_dealer(ctx, T.ep);
    cr_assert_eq(raw_ready(w, "w-handback", 2, 0), 0);
    long no = raw_hello(c, "c-requeue");
    cr_assert_gt(no, 0);
    uint64_t seq = (uint64_t)no << 32 | 1;
    cr_assert_eq(raw_submit(c, seq, 1, NULL, "sleep", 1, 0, 3), 0);
    uint32_t code;
    long long workers = 1;
    for (int k = 0; k < 15 && workers != 0; k++) {
        s_handback_loop(w, c, 1, &code, 1000);
        workers = raw_status(c, "workers", NULL, NULL);
    }
    cr_expect_eq(workers, 0, "the worker was not dropped");
    cr_expect_eq(raw_status(c, "queued", NULL, NULL), 1);
    zmq_close(w);
    zmq_close(c);
    zmq_ctx_term(ctx);
}

/* Issue 8 item 7: a SUBMIT carrying one id twice is refused whole: one
 * ERROR for the batch, nothing queued, no result per job. */
Test(bounds, duplicate_id_in_one_submit_is_refused_whole)
{
    cr_assert_eq(raw_broker(&T.e, &T.broker, T.ep, sizeof T.ep, NULL), 0);
    void *ctx = zmq_ctx_new();
    void *c = raw_dealer(ctx, T.ep);
    long no = raw_hello(c, "c-dup");
    cr_assert_gt(no, 0);
    uint64_t seq = (uint64_t)no << 32 | 1;
    uint64_t ids[3] = {seq, seq + 1, seq + 1};
    cr_assert_eq(raw_submit(c, seq, 3, ids, "sleep", 1, 0, 3), 0);
    raw_msg_t m;
    int got = raw_recv(c, RAW_WAIT_MS, &m);
    cr_assert_eq(got, 1);
    cr_expect_eq(m.cmd, DP_CMD_ERROR, "got %s", dp_cmd_name(m.cmd));
    uint32_t n;
    uint64_t code = 0, s = 0, count = 0;
    cr_assert_eq(dp_rd_array(&m.r, &n), 0);
    cr_assert_eq(n, 4);
    const char *msg;
    size_t len;
    cr_assert_eq(dp_rd_uint(&m.r, &code), 0);
    cr_assert_eq(dp_rd_str(&m.r, &msg, &len), 0);
    cr_assert_eq(dp_rd_uint(&m.r, &s), 0);
    cr_assert_eq(dp_rd_uint(&m.r, &count), 0);
    cr_expect_eq(code, DP_ERR_INVALID);
    cr_expect_eq(s, seq);
    cr_expect_eq(count, 3);
    raw_msg_close(&m);
    cr_expect_eq(raw_status(c, "queued", NULL, NULL), 0);
    cr_expect_eq(raw_status(c, "submitted", NULL, NULL), 0);
    zmq_close(c);
    zmq_ctx_term(ctx);
}

#define S_FLOOD_ROUND 1000000u     /* jobs a round, sent without reading */
#define S_FLOOD_SUBMIT 100000u     /* jobs per SUBMIT (DP_SUBMIT_MAX_JOBS) */
#define S_FLOOD_MS 30000           /* the real client's batch ends within */
#define S_RSS_CAP_KB (320L * 1024) /* one client's share + the broker */
#define S_ECHO_JOBS 60

#if defined(__SANITIZE_ADDRESS__)
#define S_ASAN 1 /* its shadow and quarantine make RSS meaningless */
#else
#define S_ASAN 0
#endif

/* s_flood_round: S_FLOOD_ROUND echo jobs from c in SUBMITs that are
 * dropped when the socket would block; *next is the next seq. */
static void s_flood_round(void *c, uint64_t no, uint32_t *next)
{
    for (uint32_t k = 0; k < S_FLOOD_ROUND / S_FLOOD_SUBMIT; k++) {
        uint64_t seq = no << 32 | *next;
        *next += S_FLOOD_SUBMIT;
        raw_submit(c, seq, S_FLOOD_SUBMIT, NULL, "echo", 1, 0, 0);
    }
    raw_send_empty(c, DP_CMD_HEARTBEAT);
}

/* Issue 8 item 4: a client that sends 10^6 jobs a round and never reads
 * keeps the broker under its cap while a real client's batch completes;
 * when the flooder goes, queued goes back to 0 and memory is returned. */
Test(bounds, flood_without_reading_stays_bounded, .timeout = 120)
{
    cr_assert_eq(raw_broker(&T.e, &T.broker, T.ep, sizeof T.ep,
                            ARGV("--heartbeat", "200")),
                 0);
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 2, "w0", NULL), 0);
    e2e_workers_up(1);
    long base = raw_rss_kb(T.broker.pid);
    void *ctx = zmq_ctx_new();
    void *f = raw_dealer(ctx, T.ep);
    int small = 4;
    zmq_setsockopt(f, ZMQ_SNDHWM, &small, sizeof small);
    zmq_setsockopt(f, ZMQ_RCVHWM, &small, sizeof small);
    long no = raw_hello(f, "flooder");
    cr_assert_gt(no, 0);
    uint32_t next = 1;
    s_flood_round(f, (uint64_t)no, &next);
    const char *argv[S_ECHO_JOBS + 8] = {"dpool", "--broker", T.ep,  "--format",
                                         "json",  "map",      "echo"};
    char args[S_ECHO_JOBS][8];
    for (int k = 0; k < S_ECHO_JOBS; k++) {
        snprintf(args[k], sizeof args[k], "%d", k);
        argv[7 + k] = args[k];
    }
    dp_e2e_proc_t cl;
    cr_assert_eq(dp_e2e_spawn(&T.e, &cl, -1, argv), 0);
    long peak = 0;
    int code = -1;
    uint64_t end = raw_now_ms() + S_FLOOD_MS;
    while (code < 0 && raw_now_ms() < end) {
        s_flood_round(f, (uint64_t)no, &next);
        long rss = raw_rss_kb(T.broker.pid);
        peak = rss > peak ? rss : peak;
        code = dp_e2e_wait(&T.e, cl.pid, 50);
    }
    char *out = dp_e2e_slurp(cl.out);
    char **lines = NULL;
    int nl = dp_e2e_lines(out, &lines);
    free(lines);
    free(out);
    long long queued = dp_e2e_stat(&T.e, T.ep, "queued");
    zmq_close(f); /* the flooder vanishes */
    bool drained = dp_e2e_wait_stat(&T.e, T.ep, "queued", 0, 0, 5000) &&
                   dp_e2e_wait_stat(&T.e, T.ep, "running", 0, 0, 5000);
    long after = raw_rss_kb(T.broker.pid);
    fprintf(stderr,
            "flood: broker RSS %ld KiB at start, %ld KiB peak, %ld KiB after "
            "the flooder left; %lld queued during the flood; %u jobs sent\n",
            base, peak, after, queued, next - 1);
    cr_expect_eq(code, 0, "the real client did not finish (exit %d)", code);
    cr_expect_eq(nl, S_ECHO_JOBS, "%d results, want %d", nl, S_ECHO_JOBS);
    cr_expect(drained, "queued/running did not go back to 0");
    if (!S_ASAN) {
        cr_expect_lt(peak, S_RSS_CAP_KB, "broker RSS peaked at %ld KiB", peak);
        cr_expect_lt(after, base + (peak - base) / 2,
                     "memory not returned: %ld KiB after, %ld peak", after,
                     peak);
    }
    zmq_ctx_term(ctx);
}

/* Issue 8 item 5: beyond --max-peers a new peer is refused cleanly (ERROR
 * LIMIT, not tracked) while those already in are served; a place freed is
 * taken again. */
Test(bounds, max_peers_refuses_new_peers_cleanly)
{
    cr_assert_eq(raw_broker(&T.e, &T.broker, T.ep, sizeof T.ep,
                            ARGV("--max-peers", "3")),
                 0);
    void *ctx = zmq_ctx_new();
    void *c[3];
    for (int k = 0; k < 3; k++) {
        c[k] = raw_dealer(ctx, T.ep);
        cr_assert_gt(raw_hello(c[k], "in"), 0, "peer %d refused", k);
    }
    void *x = raw_dealer(ctx, T.ep);
    cr_assert_eq(raw_ready_send(x, "one-too-many", 4, 0), 0);
    raw_msg_t m;
    cr_assert_eq(raw_recv(x, RAW_WAIT_MS, &m), 1);
    uint32_t n;
    uint64_t code = 0;
    cr_expect_eq(m.cmd, DP_CMD_ERROR, "got %s", dp_cmd_name(m.cmd));
    cr_expect_eq(dp_rd_array(&m.r, &n), 0);
    cr_expect_eq(dp_rd_uint(&m.r, &code), 0);
    cr_expect_eq(code, DP_ERR_LIMIT);
    raw_msg_close(&m);
    cr_expect_eq(raw_status(c[0], "clients", NULL, NULL), 3);
    cr_expect_eq(raw_status(c[0], "workers", NULL, NULL), 0);
    cr_expect_eq(raw_status(c[0], "refused_peers", NULL, NULL), 1);
    raw_send_empty(c[2], DP_CMD_BYE);
    zmq_close(c[2]);
    for (int k = 0; k < 50 && raw_status(c[0], "clients", NULL, NULL) != 2; k++)
        usleep(S_SETTLE_MS * 100);
    cr_expect_gt(raw_hello(x, "now-in"), 0, "a freed place was not taken");
    zmq_close(x);
    zmq_close(c[0]);
    zmq_close(c[1]);
    zmq_ctx_term(ctx);
}

#define S_CONNS 2000
#define S_SOFT_NOFILE 1024

/* s_tcp_connect: a plain TCP connection to the broker's port, or -1. */
static int s_tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Issue 8 item 5: a broker started with a soft open-files limit of 1024
 * raises it, and with 2,000 connections open a real client still runs
 * its batch. */
Test(bounds, two_thousand_connections_with_soft_limit_1024, .timeout = 90)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2 * S_CONNS + 256)
        cr_skip_test("hard open-files limit %lu is too low",
                     (unsigned long)rl.rlim_max);
    rl.rlim_cur = rl.rlim_max; /* the test holds the connections too */
    setrlimit(RLIMIT_NOFILE, &rl);
    int port = dp_e2e_free_port();
    snprintf(T.ep, sizeof T.ep, "tcp://127.0.0.1:%d", port);
    char bin[PATH_MAX + 16], nofile[64];
    snprintf(bin, sizeof bin, "%s/dpool-broker", T.e.bin);
    snprintf(nofile, sizeof nofile, "--nofile=%d:%lu", S_SOFT_NOFILE,
             (unsigned long)rl.rlim_max);
    cr_assert_eq(dp_e2e_spawn(&T.e, &T.broker, -1,
                              ARGV("/usr/bin/prlimit", nofile, "--", bin,
                                   "--bind", T.ep, "--heartbeat", "200")),
                 0);
    cr_assert_eq(raw_broker_up(T.ep), 0);
    static int fds[S_CONNS];
    int open_ok = 0;
    for (int k = 0; k < S_CONNS; k++) {
        fds[k] = s_tcp_connect(port);
        open_ok += fds[k] >= 0;
    }
    cr_expect_eq(open_ok, S_CONNS, "only %d connections opened", open_ok);
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 2, "w0", NULL), 0);
    e2e_workers_up(1);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--format", "json", "map", "echo",
                 "a", "b", "c", "d", "e", "f", "g", "h"));
    cr_expect_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **lines = NULL;
    cr_expect_eq(dp_e2e_lines(r.out, &lines), 8);
    free(lines);
    dp_e2e_run_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)T.broker.pid);
    char *limits = dp_e2e_slurp(path);
    const char *at = strstr(limits, "Max open files");
    long soft = at ? strtol(at + strlen("Max open files"), NULL, 10) : -1;
    cr_expect_gt(soft, S_SOFT_NOFILE, "broker soft limit still %ld", soft);
    free(limits);
    for (int k = 0; k < S_CONNS; k++)
        if (fds[k] >= 0)
            close(fds[k]);
}

#define S_CHILD_MAX 65536              /* the worker's --max-msg-size here */
#define S_ECHO_LEN (S_CHILD_MAX - 100) /* its job fits, its result not */
#define S_LONG_NAME 200

/* Issue 8 item 8: a child whose frame is over the agent's limit (here an
 * echo result that the long worker name pushes past --max-msg-size) is
 * killed at once and its job reported LOST: retried, then WORKER_LOST,
 * long before the job's 30 s time limit would have ended it. */
Test(bounds, child_with_an_oversized_frame_is_killed, .timeout = 60)
{
    cr_assert_eq(raw_broker(&T.e, &T.broker, T.ep, sizeof T.ep,
                            ARGV("--heartbeat", "200")),
                 0);
    static char name[S_LONG_NAME + 1], arg[S_ECHO_LEN + 1];
    memset(name, 'n', S_LONG_NAME);
    memset(arg, 'x', S_ECHO_LEN);
    char max[16];
    snprintf(max, sizeof max, "%d", S_CHILD_MAX);
    cr_assert_eq(
        dp_e2e_spawn(&T.e, &T.worker[0], -1,
                     ARGV("dpool-worker", "--connect", T.ep, "-p", "1",
                          "--io-slots", "1", "--name", name, "--max-msg-size",
                          max, "--log-level", "debug")),
        0);
    e2e_workers_up(1);
    dp_e2e_run_t r;
    uint64_t t0 = raw_now_ms();
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--format", "json", "--timeout",
                 "30", "--retries", "1", "map", "echo", arg));
    uint64_t took = raw_now_ms() - t0;
    char **lines = NULL;
    int n = dp_e2e_lines(r.out, &lines);
    cr_assert_eq(n, 1, "%d lines; stderr:\n%s", n, r.err);
    char buf[32];
    cr_expect_str_eq(e2e_errname(lines[0], buf, sizeof buf), "WORKER_LOST",
                     "%.200s", lines[0]);
    cr_expect_lt(took, 15000, "took %llu ms", (unsigned long long)took);
    free(lines);
    dp_e2e_run_free(&r);
    char *log = dp_e2e_slurp(T.worker[0].err);
    cr_expect(strstr(log, "bad or oversized frame") != NULL,
              "the agent never killed the child");
    free(log);
}
