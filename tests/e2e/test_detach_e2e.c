/*
 * test_detach_e2e.c - detached batches with the real programs (issue 11):
 * dpool submit prints an id and exits; dpool results reads the batch as
 * often as wanted (one line per input, identical runs), also while jobs
 * still run and across a kill -9 of a journaling broker; dpool batches
 * counts; cancel; forget; --result-ttl frees a batch.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dp_clock.h"
#include "e2e.h"
#include "raw.h"

#define S_WAIT_MS 20000
#define S_N 40 /* inputs of a batch */

TestSuite(detach, .init = e2e_setup, .fini = e2e_teardown, .timeout = 120);

static void s_broker(int port, const char *const extra[])
{
    cr_assert_eq(
        dp_e2e_broker_with(&T.e, &T.broker, port, T.ep, sizeof T.ep, extra), 0,
        "broker did not come up (logs in %s)", T.e.dir);
}

static void s_worker(int procs)
{
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, procs, "w0", NULL), 0);
    e2e_workers_up(1);
}

/* s_file: a file in the test dir holding text, opened for reading. */
static int s_file(const char *name, const char *text)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/%s", T.e.dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert(fd >= 0);
    return fd;
}

/* s_submit: dpool submit TYPE with the inputs on stdin; the batch id. */
static unsigned long s_submit(const char *type, const char *inputs)
{
    int fd = s_file("inputs", inputs);
    dp_e2e_run_t r;
    cr_assert_eq(dp_e2e_run(&T.e, &r, S_WAIT_MS, fd,
                            ARGV("dpool", "submit", type, "-b", T.ep)),
                 0);
    close(fd);
    cr_assert_eq(r.code, 0, "submit exited %d: %s", r.code, r.err);
    char *end;
    unsigned long id = strtoul(r.out, &end, 10);
    cr_assert(id > 0 && *end == '\n', "submit printed %s", r.out);
    dp_e2e_run_free(&r);
    return id;
}

static void s_run(dp_e2e_run_t *r, const char *const argv[])
{
    e2e_run(r, S_WAIT_MS, argv);
}

/* s_numbers: "1\n2\n...n\n". */
static char *s_numbers(int n)
{
    char *s = malloc((size_t)n * 12 + 1);
    cr_assert(s);
    size_t at = 0;
    for (int k = 1; k <= n; k++)
        at += (size_t)sprintf(s + at, "%d\n", k);
    return s;
}

/* s_check_factor: out holds exactly n lines "k: [...]" for k = 0..n-1
 * in order (factor of k+1). */
static void s_check_lines(const char *out, int n)
{
    char *copy = strdup(out);
    char **lines = NULL;
    int got = dp_e2e_lines(copy, &lines);
    cr_assert_eq(got, n, "%d lines, want %d:\n%s", got, n, out);
    for (int k = 0; k < n; k++) {
        char want[16];
        snprintf(want, sizeof want, "%d: ", k);
        cr_assert(strncmp(lines[k], want, strlen(want)) == 0, "line %d is %s",
                  k, lines[k]);
    }
    free(lines);
    free(copy);
}

static char s_idbuf[24];
static const char *s_id(unsigned long id)
{
    snprintf(s_idbuf, sizeof s_idbuf, "%lu", id);
    return s_idbuf;
}

/* submit, results twice (identical), batches, forget, results refused */
Test(detach, submit_results_batches_forget)
{
    s_broker(0, NULL);
    s_worker(2);
    char *in = s_numbers(S_N);
    unsigned long id = s_submit("factor", in);
    free(in);
    dp_e2e_run_t a, b, l, f, g;
    s_run(&a, ARGV("dpool", "results", s_id(id), "-b", T.ep));
    cr_assert_eq(a.code, 0, "results exited %d: %s", a.code, a.err);
    s_check_lines(a.out, S_N);
    cr_assert(strstr(a.out, "11: [2,2,3]\n"), "factor of 12: %s", a.out);
    s_run(&b, ARGV("dpool", "results", s_id(id), "-b", T.ep));
    cr_assert_eq(b.code, 0);
    cr_assert_str_eq(a.out, b.out, "two reads differ");
    /* unordered and JSON: one object per input */
    dp_e2e_run_t j;
    s_run(&j, ARGV("dpool", "results", s_id(id), "-u", "--format", "json", "-b",
                   T.ep));
    cr_assert_eq(j.code, 0);
    char **lines = e2e_json_lines(&j, S_N);
    free(lines);
    s_run(&l, ARGV("dpool", "batches", "--format", "json", "-b", T.ep));
    cr_assert_eq(l.code, 0, "%s", l.err);
    cr_assert_eq(dp_e2e_jint(l.out, "id"), (long long)id);
    cr_assert_eq(dp_e2e_jint(l.out, "total"), S_N);
    cr_assert_eq(dp_e2e_jint(l.out, "done"), S_N);
    cr_assert_eq(dp_e2e_jint(l.out, "queued"), 0);
    s_run(&f, ARGV("dpool", "forget", s_id(id), "-b", T.ep));
    cr_assert_eq(f.code, 0, "%s", f.err);
    s_run(&g, ARGV("dpool", "results", s_id(id), "-b", T.ep));
    cr_assert_neq(g.code, 0, "results of a forgotten batch exited 0");
    cr_assert(strstr(g.err, "no batch"), "stderr: %s", g.err);
    dp_e2e_run_t e;
    s_run(&e, ARGV("dpool", "batches", "-b", T.ep));
    cr_assert_eq(e.code, 0);
    char *copy = strdup(e.out), **rows = NULL;
    cr_assert_eq(dp_e2e_lines(copy, &rows), 1, "a batch left: %s", e.out);
    free(rows);
    free(copy);
    dp_e2e_run_t *all[] = {&a, &b, &j, &l, &f, &g, &e};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        dp_e2e_run_free(all[k]);
}

/* a failed job: exit 1, still one line per input */
Test(detach, failed_job_exit_1)
{
    s_broker(0, NULL);
    s_worker(1);
    unsigned long id = s_submit("factor", "6\nnot-a-number\n7\n");
    dp_e2e_run_t r;
    s_run(&r, ARGV("dpool", "results", s_id(id), "-b", T.ep));
    cr_assert_eq(r.code, 1, "exit %d: %s", r.code, r.err);
    s_check_lines(r.out, 3);
    dp_e2e_run_free(&r);
}

/* a reader started before the jobs finish gets them as they come */
Test(detach, reader_before_results)
{
    s_broker(0, NULL);
    s_worker(2);
    unsigned long id = s_submit("sleep", "300\n300\n300\n300\n300\n300\n");
    dp_e2e_proc_t rd;
    cr_assert_eq(dp_e2e_spawn(&T.e, &rd, -1,
                              ARGV("dpool", "results", s_id(id), "-b", T.ep)),
                 0);
    int code = dp_e2e_wait(&T.e, rd.pid, S_WAIT_MS);
    cr_assert_eq(code, 0, "reader exited %d: %s", code, dp_e2e_slurp(rd.err));
    char *out = dp_e2e_slurp(rd.out);
    s_check_lines(out, 6);
    free(out);
}

/* cancel: queued sleep jobs end CANCELLED; every input has a line */
Test(detach, cancel)
{
    s_broker(0, NULL);
    s_worker(1);
    unsigned long id = s_submit("sleep", "10000\n10000\n10000\n10000\n");
    dp_e2e_run_t c, r, c2;
    s_run(&c, ARGV("dpool", "cancel", s_id(id), "-b", T.ep));
    cr_assert_eq(c.code, 0, "%s", c.err);
    s_run(&c2, ARGV("dpool", "cancel", s_id(id), "-b", T.ep));
    cr_assert_eq(c2.code, 0, "cancel twice: %s", c2.err);
    s_run(&r, ARGV("dpool", "results", s_id(id), "-b", T.ep));
    cr_assert_eq(r.code, 1, "exit %d: %s", r.code, r.err);
    s_check_lines(r.out, 4);
    cr_assert(strstr(r.out, "CANCELLED"), "%s", r.out);
    cr_assert(r.secs < 9, "cancel did not stop the running job");
    dp_e2e_run_free(&c);
    dp_e2e_run_free(&c2);
    dp_e2e_run_free(&r);
}

/* kill -9 of a journaling broker: the batch and its results survive;
 * a reader attached across the restart gives each result once */
Test(detach, survives_broker_kill)
{
    char jdir[PATH_MAX + 16];
    snprintf(jdir, sizeof jdir, "%s/journal", T.e.dir);
    cr_assert_eq(mkdir(jdir, 0700), 0);
    const char *const extra[] = {"--journal", jdir, NULL};
    s_broker(0, extra);
    s_worker(2);
    unsigned long id =
        s_submit("sleep", "200\n200\n200\n200\n200\n200\n200\n200\n200\n200\n");
    dp_e2e_proc_t rd;
    cr_assert_eq(dp_e2e_spawn(&T.e, &rd, -1,
                              ARGV("dpool", "results", s_id(id), "-b", T.ep)),
                 0);
    usleep(300 * 1000);
    int port = dp_e2e_ep_port(T.ep);
    cr_assert_gt(port, 0);
    dp_e2e_stop(&T.e, T.broker.pid, SIGKILL, DP_E2E_STOP_MS);
    s_broker(port, extra);
    int code = dp_e2e_wait(&T.e, rd.pid, S_WAIT_MS);
    char *err = dp_e2e_slurp(rd.err);
    cr_assert_eq(code, 0, "reader across the restart exited %d: %s", code, err);
    free(err);
    char *out = dp_e2e_slurp(rd.out);
    s_check_lines(out, 10);
    free(out);
    dp_e2e_run_t r, l;
    s_run(&r, ARGV("dpool", "results", s_id(id), "-b", T.ep));
    cr_assert_eq(r.code, 0, "%s", r.err);
    s_check_lines(r.out, 10);
    s_run(&l, ARGV("dpool", "batches", "--format", "json", "-b", T.ep));
    cr_assert_eq(dp_e2e_jint(l.out, "id"), (long long)id, "%s", l.out);
    cr_assert_eq(dp_e2e_jint(l.out, "done"), 10, "%s", l.out);
    dp_e2e_run_free(&r);
    dp_e2e_run_free(&l);
}

/* --result-ttl: a finished batch is freed that long after its last result */
Test(detach, result_ttl)
{
    s_broker(0, ARGV("--result-ttl", "1000"));
    s_worker(1);
    unsigned long id = s_submit("factor", "10\n20\n");
    dp_e2e_run_t r;
    s_run(&r, ARGV("dpool", "results", s_id(id), "-b", T.ep));
    cr_assert_eq(r.code, 0, "%s", r.err);
    dp_e2e_run_free(&r);
    bool gone = false;
    for (int k = 0; k < 40 && !gone; k++) { /* 4 s at most */
        usleep(100 * 1000);
        dp_e2e_run_t l;
        s_run(&l, ARGV("dpool", "batches", "--format", "json", "-b", T.ep));
        gone = l.code == 0 && !strchr(l.out, '{');
        dp_e2e_run_free(&l);
    }
    cr_assert(gone, "the batch outlived its --result-ttl");
    s_run(&r, ARGV("dpool", "results", s_id(id), "-b", T.ep));
    cr_assert_eq(r.code, 2, "exit %d: %s", r.code, r.err);
    dp_e2e_run_free(&r);
}

/* --max-batches: the next submit is refused, clearly, nothing kept */
Test(detach, max_batches)
{
    s_broker(0, ARGV("--max-batches", "1"));
    s_worker(1);
    s_submit("factor", "10\n");
    int fd = s_file("in2", "11\n");
    dp_e2e_run_t r;
    cr_assert_eq(dp_e2e_run(&T.e, &r, S_WAIT_MS, fd,
                            ARGV("dpool", "submit", "factor", "-b", T.ep)),
                 0);
    close(fd);
    cr_assert_eq(r.code, 1, "exit %d: %s", r.code, r.err);
    cr_assert(strstr(r.err, "refused"), "%s", r.err);
    dp_e2e_run_free(&r);
}

/* 20,000 kept results through the smallest --hwm (16): ATTACH paces them
 * in chunks; every input still comes once, twice in a row */
Test(detach, paced_attach_small_hwm)
{
    s_broker(0, ARGV("--hwm", "16"));
    s_worker(2);
    int n = 20000;
    char *in = s_numbers(n);
    unsigned long id = s_submit("echo", in);
    free(in);
    for (int k = 0; k < 2; k++) {
        dp_e2e_run_t r;
        e2e_run(&r, 60000, ARGV("dpool", "results", s_id(id), "-b", T.ep));
        cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
        s_check_lines(r.out, n);
        cr_assert(strstr(r.out, "19999: 20000\n"), "last line wrong");
        dp_e2e_run_free(&r);
    }
}

/* s_raw_batch: a detached batch opened by hand (HELLO DETACHED, SUBMIT
 * of n sleep jobs of ms, ACCEPTED, BYE); its number. */
static long s_raw_batch(void *ctx, uint32_t n, int64_t ms)
{
    void *s = raw_dealer(ctx, T.ep);
    cr_assert(s);
    dp_hello_t h = {.name = "rawbatch",
                    .pid = 1,
                    .has_session = true,
                    .flags = DP_HELLO_DETACHED};
    for (int k = 0; k < DP_SESSION_BYTES; k++)
        h.session[k] = (uint8_t)(rand() & 0xff);
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_hello(&w, &h);
    raw_send(s, &w);
    dp_wr_release(&w);
    raw_msg_t m;
    cr_assert(raw_expect(s, DP_CMD_WELCOME, RAW_WAIT_MS, &m, NULL, NULL));
    dp_welcome_t wm;
    cr_assert_eq(dp_msg_read_welcome(&m.r, &wm), 0);
    raw_msg_close(&m);
    raw_submit(s, wm.peer_no << 32, n, NULL, "sleep", ms, 0, 0);
    cr_assert(raw_expect(s, DP_CMD_ACCEPTED, RAW_WAIT_MS, &m, NULL, NULL));
    raw_msg_close(&m);
    raw_send_empty(s, DP_CMD_BYE);
    zmq_close(s);
    return (long)wm.peer_no;
}

static void s_raw_cmd(void *s, int cmd, uint64_t id)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_batch_cmd(&w, cmd, id);
    raw_send(s, &w);
    dp_wr_release(&w);
}

/* hostile sequences of the new messages: ATTACH then vanish, an unknown
 * batch, CANCEL_BATCH twice, a BATCHES flood, FORGET while a reader is
 * attached (it gets ERROR INVALID); the broker stays up and answers */
Test(detach, hostile_sequences)
{
    s_broker(0, NULL);
    s_worker(1);
    void *ctx = zmq_ctx_new();
    long id = s_raw_batch(ctx, 6, 3000);
    raw_msg_t m;
    /* a reader that attaches and vanishes without BYE */
    void *r1 = raw_dealer(ctx, T.ep);
    cr_assert_gt(raw_hello(r1, "r1"), 0);
    s_raw_cmd(r1, DP_CMD_ATTACH, (uint64_t)id);
    cr_assert(raw_expect(r1, DP_CMD_BATCH_LIST, RAW_WAIT_MS, &m, NULL, NULL));
    raw_msg_close(&m);
    zmq_close(r1);
    /* a reader that stays */
    void *r2 = raw_dealer(ctx, T.ep);
    cr_assert_gt(raw_hello(r2, "r2"), 0);
    s_raw_cmd(r2, DP_CMD_ATTACH, (uint64_t)id);
    cr_assert(raw_expect(r2, DP_CMD_BATCH_LIST, RAW_WAIT_MS, &m, NULL, NULL));
    raw_msg_close(&m);
    /* unknown batches: ERROR, for every command */
    void *x = raw_dealer(ctx, T.ep);
    cr_assert_gt(raw_hello(x, "x"), 0);
    const int cmds[] = {DP_CMD_ATTACH, DP_CMD_FORGET, DP_CMD_CANCEL_BATCH};
    for (int k = 0; k < 3; k++) {
        s_raw_cmd(x, cmds[k], 999999);
        cr_assert(raw_expect(x, DP_CMD_ERROR, RAW_WAIT_MS, &m, NULL, NULL));
        raw_msg_close(&m);
    }
    /* CANCEL_BATCH twice: a row each time */
    for (int k = 0; k < 2; k++) {
        s_raw_cmd(x, DP_CMD_CANCEL_BATCH, (uint64_t)id);
        cr_assert(
            raw_expect(x, DP_CMD_BATCH_LIST, RAW_WAIT_MS, &m, NULL, NULL));
        raw_msg_close(&m);
    }
    /* a BATCHES flood, answered or dropped at --hwm, never fatal */
    for (int k = 0; k < 2000; k++) {
        dp_wr_t w;
        dp_wr_init(&w);
        dp_msg_batches(&w, k & 1, (uint64_t)id);
        raw_send(x, &w);
        dp_wr_release(&w);
    }
    for (int k = 0; k < 2000; k++) { /* drain what came, bounded */
        if (raw_recv(x, 50, &m) <= 0)
            break;
        raw_msg_close(&m);
    }
    /* FORGET while r2 reads: r2 is told */
    s_raw_cmd(x, DP_CMD_FORGET, (uint64_t)id);
    cr_assert(raw_expect(x, DP_CMD_BATCH_LIST, RAW_WAIT_MS, &m, NULL, NULL));
    raw_msg_close(&m);
    cr_assert(raw_expect(r2, DP_CMD_ERROR, RAW_WAIT_MS, &m, NULL, NULL),
              "a reader of a forgotten batch was not told");
    raw_msg_close(&m);
    s_raw_cmd(x, DP_CMD_FORGET, (uint64_t)id); /* twice: unknown now */
    cr_assert(raw_expect(x, DP_CMD_ERROR, RAW_WAIT_MS, &m, NULL, NULL));
    raw_msg_close(&m);
    zmq_close(r2);
    zmq_close(x);
    zmq_ctx_term(ctx);
    cr_assert(dp_e2e_alive(T.broker.pid), "the broker died");
    cr_assert_eq(dp_e2e_stat(&T.e, T.ep, "workers"), 1, "no status answer");
}

/* ---- --max-batch-held and dpool results --wait ---- */

#define S_BIG_N 200000           /* inputs of the big batch */
#define S_BIG_HELD "23000000"    /* fits 200,000 job records, not results */
#define S_BIG_MS 300000          /* its results' deadline: no hang */
#define S_RSS_MAX_KB (768 << 10) /* the broker's peak, generous (ASan) */
#define S_WAIT_SECS "2"          /* results --wait in the tests below */
#define S_WAIT_MARGIN_MS 8000    /* ... and what it may take beyond it */

/* s_count: occurrences of needle in s. */
static int s_count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* s_peak_kb: VmHWM of pid in kB, or -1. */
static long s_peak_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *st = dp_e2e_slurp(path);
    const char *p = strstr(st, "VmHWM:");
    long kb = p ? strtol(p + 6, NULL, 10) : -1;
    free(st);
    return kb;
}

/* 200,000 isprime results cannot all be kept at 23 MB: the batch does not
 * stall (it did at --max-client-held); the jobs past the bound end LIMIT,
 * each input gets one line, results exits 1 and says why */
Test(detach, over_max_batch_held_ends, .timeout = 600)
{
    s_broker(0, ARGV("--max-batch-held", S_BIG_HELD));
    s_worker(2);
    char *in = s_numbers(S_BIG_N);
    unsigned long id = s_submit("isprime", in);
    free(in);
    dp_e2e_run_t r;
    e2e_run(&r, S_BIG_MS, ARGV("dpool", "results", s_id(id), "-b", T.ep));
    cr_assert_eq(r.code, 1, "exit %d: %s", r.code, r.err);
    s_check_lines(r.out, S_BIG_N);
    int limit = s_count(r.out, ": LIMIT: batch over --max-batch-held\n");
    cr_assert(limit > 0 && limit < S_BIG_N, "%d LIMIT lines", limit);
    cr_assert(strstr(r.out, "0: false\n1: true\n"), "first lines wrong");
    cr_assert(strstr(r.err, "failed"), "stderr: %s", r.err);
    dp_e2e_run_free(&r);
    dp_e2e_run_t l;
    s_run(&l, ARGV("dpool", "batches", "--format", "json", "-b", T.ep));
    cr_assert_eq(dp_e2e_jint(l.out, "queued"), 0, "%s", l.out);
    cr_assert_eq(dp_e2e_jint(l.out, "running"), 0, "%s", l.out);
    cr_assert_eq(dp_e2e_jint(l.out, "failed"), limit, "%s", l.out);
    dp_e2e_run_free(&l);
    long kb = s_peak_kb(T.broker.pid);
    cr_assert(kb > 0 && kb < S_RSS_MAX_KB, "broker peak %ld kB", kb);
}

/* a batch whose job records alone exceed --max-batch-held is refused at
 * submit, clearly, and nothing of it stays */
Test(detach, max_batch_held_refused_at_submit)
{
    s_broker(0, ARGV("--max-batch-held", "1000000"));
    s_worker(1);
    char *in = s_numbers(20000);
    int fd = s_file("in", in);
    free(in);
    dp_e2e_run_t r;
    cr_assert_eq(dp_e2e_run(&T.e, &r, S_WAIT_MS, fd,
                            ARGV("dpool", "submit", "isprime", "-b", T.ep)),
                 0);
    close(fd);
    cr_assert_eq(r.code, 1, "exit %d: %s", r.code, r.err);
    cr_assert(strstr(r.err, "LIMIT") && strstr(r.err, "--max-batch-held"), "%s",
              r.err);
    dp_e2e_run_free(&r);
    s_run(&r, ARGV("dpool", "batches", "--format", "json", "-b", T.ep));
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(!strchr(r.out, '{'), "a batch stayed: %s", r.out);
    dp_e2e_run_free(&r);
    s_submit("isprime", "7\n8\n"); /* a small one still fits */
}

/* results --wait with no worker: exit 124 about then, the pending count
 * on stderr, the batch goes on; with a worker --wait changes nothing */
Test(detach, results_wait)
{
    s_broker(0, NULL);
    unsigned long id = s_submit("isprime", "7\n8\n9\n");
    dp_e2e_run_t r;
    uint64_t t0 = dp_now_ms();
    s_run(&r, ARGV("dpool", "results", s_id(id), "--wait", S_WAIT_SECS, "-b",
                   T.ep));
    uint64_t took = dp_now_ms() - t0;
    cr_assert_eq(r.code, 124, "exit %d: %s", r.code, r.err);
    cr_assert(took >= 2000 && took < 2000 + S_WAIT_MARGIN_MS, "%llu ms",
              (unsigned long long)took);
    cr_assert(strstr(r.err, "3 of 3 still pending"), "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "");
    dp_e2e_run_free(&r);
    s_worker(1);
    s_run(&r, ARGV("dpool", "results", s_id(id), "-w", "30", "-b", T.ep));
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_assert_str_eq(r.out, "0: true\n1: false\n2: false\n");
    dp_e2e_run_free(&r);
    s_run(&r, ARGV("dpool", "results", s_id(id), "-w", S_WAIT_SECS, "-b",
                   T.ep)); /* complete: no effect */
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_assert_str_eq(r.out, "0: true\n1: false\n2: false\n");
    dp_e2e_run_free(&r);
}

/* s_done_at_least: the batch's done count reached want (dpool batches). */
static bool s_done_at_least(void *arg)
{
    long long want = *(long long *)arg;
    dp_e2e_run_t l;
    s_run(&l, ARGV("dpool", "batches", "--format", "json", "-b", T.ep));
    bool ok = dp_e2e_jint(l.out, "done") >= want;
    dp_e2e_run_free(&l);
    return ok;
}

/* a journaling broker restarted with a smaller --max-batch-held replays a
 * batch whose kept results are over it: its jobs left end LIMIT at once
 * (no worker needed), its kept ones are read as before */
Test(detach, max_batch_held_after_restart, .timeout = 180)
{
    char jdir[PATH_MAX + 16];
    snprintf(jdir, sizeof jdir, "%s/journal", T.e.dir);
    cr_assert_eq(mkdir(jdir, 0700), 0);
    s_broker(0, ARGV("--journal", jdir, "--fsync-ms", "0"));
    s_worker(1);
    /* 2,000 instant jobs, then 4 that sleep past the test */
    size_t cap = 2000 * 2 + 4 * 10 + 1, at = 0;
    char *in = malloc(cap);
    cr_assert(in);
    for (int k = 0; k < 2000; k++)
        at += (size_t)snprintf(in + at, cap - at, "0\n");
    for (int k = 0; k < 4; k++)
        at += (size_t)snprintf(in + at, cap - at, "3600000\n");
    unsigned long id = s_submit("sleep", in);
    free(in);
    long long want = 2000;
    cr_assert(dp_e2e_wait_until(s_done_at_least, &want, 60000),
              "the instant jobs never finished");
    int port = dp_e2e_ep_port(T.ep);
    dp_e2e_stop(&T.e, T.worker[0].pid, SIGKILL, DP_E2E_STOP_MS);
    dp_e2e_stop(&T.e, T.broker.pid, SIGKILL, DP_E2E_STOP_MS);
    s_broker(port, ARGV("--journal", jdir, "--max-batch-held", "65536"));
    dp_e2e_run_t r;
    s_run(&r, ARGV("dpool", "results", s_id(id), "--wait", "20", "-b", T.ep));
    cr_assert_eq(r.code, 1, "exit %d: %s", r.code, r.err);
    s_check_lines(r.out, 2004);
    cr_assert_eq(s_count(r.out, ": LIMIT: batch over --max-batch-held\n"), 4,
                 "%s", strstr(r.out, "1999: "));
    dp_e2e_run_free(&r);
}

/* s_raw_open: HELLO DETACHED by hand on a new socket (*s); the batch's
 * number. */
static uint64_t s_raw_open(void *ctx, void **s)
{
    *s = raw_dealer(ctx, T.ep);
    cr_assert(*s);
    dp_hello_t h = {.name = "rawheld",
                    .pid = 1,
                    .has_session = true,
                    .flags = DP_HELLO_DETACHED};
    for (int k = 0; k < DP_SESSION_BYTES; k++)
        h.session[k] = (uint8_t)(rand() & 0xff);
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_hello(&w, &h);
    raw_send(*s, &w);
    dp_wr_release(&w);
    raw_msg_t m;
    cr_assert(raw_expect(*s, DP_CMD_WELCOME, RAW_WAIT_MS, &m, NULL, NULL));
    dp_welcome_t wm;
    cr_assert_eq(dp_msg_read_welcome(&m.r, &wm), 0);
    raw_msg_close(&m);
    return wm.peer_no;
}

/* s_settled: no batch has a job queued or running (dpool batches). */
static bool s_settled(void *arg)
{
    (void)arg;
    dp_e2e_run_t l;
    s_run(&l, ARGV("dpool", "batches", "--format", "json", "-b", T.ep));
    bool ok =
        l.code == 0 && !strstr(l.out, "\"queued\":1") &&
        !strstr(l.out, "\"queued\":2") && !strstr(l.out, "\"queued\":3") &&
        !strstr(l.out, "\"queued\":4") && !strstr(l.out, "\"queued\":5") &&
        !strstr(l.out, "\"queued\":6") && !strstr(l.out, "\"queued\":7") &&
        !strstr(l.out, "\"queued\":8") && !strstr(l.out, "\"queued\":9") &&
        !strstr(l.out, "\"running\":1") && !strstr(l.out, "\"running\":2");
    dp_e2e_run_free(&l);
    return ok;
}

#define S_HELD_JOBS 560 /* fit 64 KiB as records, not as results */

/* batches over a tiny --max-batch-held while readers attach, one is
 * forgotten and one cancelled mid-way, and a SUBMIT comes after the
 * bound: nothing hangs, the broker stays up and every batch settles */
Test(detach, max_batch_held_hostile, .timeout = 180)
{
    s_broker(0, ARGV("--max-batch-held", "65536"));
    s_worker(2);
    void *ctx = zmq_ctx_new();
    void *s[4];
    uint64_t no[4];
    raw_msg_t m;
    for (int k = 0; k < 4; k++) {
        no[k] = s_raw_open(ctx, &s[k]);
        raw_submit(s[k], no[k] << 32, S_HELD_JOBS, NULL, "sleep", 20, 0, 0);
        cr_assert(
            raw_expect(s[k], DP_CMD_ACCEPTED, RAW_WAIT_MS, &m, NULL, NULL));
        raw_msg_close(&m);
    }
    void *x = raw_dealer(ctx, T.ep);
    cr_assert_gt(raw_hello(x, "x"), 0);
    s_raw_cmd(x, DP_CMD_ATTACH, no[0]);
    s_raw_cmd(x, DP_CMD_FORGET, no[1]);
    s_raw_cmd(x, DP_CMD_CANCEL_BATCH, no[2]);
    /* more of batch 3 after it may be over: refused (the records alone
     * exceed it now) or its jobs end LIMIT; either way answered */
    raw_submit(s[3], no[3] << 32 | S_HELD_JOBS, S_HELD_JOBS, NULL, "sleep", 0,
               0, 0);
    cr_assert(raw_expect(s[3], DP_CMD_ERROR, RAW_WAIT_MS, &m, NULL, NULL),
              "a SUBMIT past --max-batch-held was not refused");
    raw_msg_close(&m);
    for (int k = 0; k < 4; k++) {
        raw_send_empty(s[k], DP_CMD_BYE);
        zmq_close(s[k]);
    }
    cr_assert(dp_e2e_wait_until(s_settled, NULL, 60000),
              "a batch over --max-batch-held never settled");
    dp_e2e_run_t r;
    s_run(&r, ARGV("dpool", "results", s_id((unsigned long)no[0]), "--wait",
                   "20", "-b", T.ep));
    cr_assert_eq(r.code, 1, "exit %d: %s", r.code, r.err);
    s_check_lines(r.out, S_HELD_JOBS);
    cr_assert(strstr(r.out, ": LIMIT: batch over --max-batch-held\n"), "%s",
              r.out);
    dp_e2e_run_free(&r);
    zmq_close(x);
    zmq_ctx_term(ctx);
    cr_assert(dp_e2e_alive(T.broker.pid), "the broker died");
    cr_assert_eq(dp_e2e_stat(&T.e, T.ep, "workers"), 1, "no status answer");
}
