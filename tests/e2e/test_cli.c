/*
 * test_cli.c - the `dpool` command as a user meets it (issue 9): no hang,
 * no silent loss, options that mean what they say, output a program and a
 * terminal can trust. Each test runs the real binaries, most of them
 * through /bin/sh for the pipes, always under a hard deadline: the shell
 * line runs under `timeout -s KILL` and dp_e2e_run kills it past its own
 * deadline (the test then fails instead of hanging).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_clock.h"
#include "dp_msg.h"
#include "dp_wire.h"
#include "e2e.h"

#include <zmq.h>

#define CMD_MAX 4096
#define DPOOL DP_BIN_DIR "/dpool"
#define QUICK_MS 15000 /* a run that should end at once */

static void setup(void)
{
    e2e_setup();
    unsetenv("DPOOL_BROKER");
    unsetenv("DPOOL_PROGRESS");
}

static void teardown(void)
{
    e2e_teardown();
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

/* sh: run a shell command line (printf-style) with a deadline. */
static void sh(dp_e2e_run_t *r, int timeout_ms, const char *fmt, ...)
{
    char cmd[CMD_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && n < CMD_MAX, "command too long");
    e2e_run(r, timeout_ms, ARGV("/bin/sh", "-c", cmd));
    cr_assert_neq(r->code, -1, "overran its %d ms deadline: %s\nstderr: %s",
                  timeout_ms, cmd, r->err);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int count_str(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---- 1-5: hangs and silent loss ---- */

/* A chunk bigger than the input table (2048 slots) spun forever. */
Test(cli, chunksize_over_2048_from_stdin)
{
    dp_e2e_run_t r;
    sh(&r, 60000,
       "seq 1 5000 | timeout -s KILL 50 " DPOOL
       " -p 2 --chunksize 3000 isprime | wc -l");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_eq(atoi(r.out), 5000, "lines: %s", r.out);
    dp_e2e_run_free(&r);
}

/* A line of 1 MiB or more is reported and skipped; later lines run; the
 * exit status says an input failed. */
Test(cli, long_line_skipped_rest_runs)
{
    dp_e2e_run_t r;
    sh(&r, QUICK_MS,
       "(echo 5; head -c 3000000 /dev/zero | tr '\\0' 7; echo; echo 7; "
       "echo 8) | timeout -s KILL 10 " DPOOL " -p 1 isprime");
    cr_assert_eq(r.code, 1, "exit %d; stderr %s", r.code, r.err);
    cr_assert_str_eq(r.out, "5: prime\n7: prime\n8: not prime\n");
    cr_assert(strstr(r.err, "line 2") && strstr(r.err, "skipped"), "%s", r.err);
    dp_e2e_run_free(&r);
    /* in JSON, the skipped line has its own line, in its place */
    sh(&r, QUICK_MS,
       "(echo 5; head -c 3000000 /dev/zero | tr '\\0' 7; echo; echo 7) | "
       "timeout -s KILL 10 " DPOOL " -p 1 -f json isprime");
    cr_assert_eq(r.code, 1, "exit %d; stderr %s", r.code, r.err);
    char **l = NULL;
    cr_assert_eq(dp_e2e_lines(r.out, &l), 3, "%s", r.out);
    cr_assert(strstr(l[1], "\"index\":1,") && strstr(l[1], "\"TOO_BIG\"") &&
                  strstr(l[1], "\"input\":\"stdin line 2\""),
              "%s", l[1]);
    cr_assert(strstr(l[2], "\"index\":2,") && strstr(l[2], "\"ok\":true"), "%s",
              l[2]);
    free(l);
    dp_e2e_run_free(&r);
}

/* A file hash cannot read gets its error line in its place too. */
Test(cli, unreadable_hash_file_has_its_line)
{
    dp_e2e_run_t r;
    sh(&r, QUICK_MS,
       "echo a > %s/a; " DPOOL " -p 1 -f json hash %s/a %s/nosuch %s/a",
       T.e.dir, T.e.dir, T.e.dir, T.e.dir);
    cr_assert_eq(r.code, 1, "%s", r.err);
    char **l = NULL;
    cr_assert_eq(dp_e2e_lines(r.out, &l), 3, "%s", r.out);
    cr_assert(strstr(l[1], "\"IO\"") && strstr(l[1], "No such file"), "%s",
              l[1]);
    cr_assert(strstr(l[2], "\"ok\":true"), "%s", l[2]);
    free(l);
    dp_e2e_run_free(&r);
}

/* `dpool bench` as compare.py runs it: --repeat N runs the two
 * throughput maps N times on one pool; the figures are medians, the
 * counts the last run's, failures every run's; on the local pool, whose
 * cpu slots are -p's. */
Test(cli, bench_repeat_json)
{
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "-p", "2", "bench", "--type", "isprime", "-n", "300",
                 "--repeat", "3", "--rounds", "20", "--format", "json"));
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_eq(dp_e2e_jint(r.out, "slots"), 2, "%s", r.out);
    cr_assert_eq(dp_e2e_jint(r.out, "repeat"), 3, "%s", r.out);
    cr_assert_eq(count_str(r.out, "\"jobs\":300,\"failed\":0"), 2, "%s", r.out);
    cr_assert(strstr(r.out, "\"rounds\":20,\"failed\":0"), "%s", r.out);
    dp_e2e_run_free(&r);
}

/* A million lines on stdin, the size a user pipes in: dpool exits 0,
 * every input gets exactly one line, in input order, and the answers
 * are right (78,498 primes up to 10^6). */
Test(cli, million_lines_one_line_each, .timeout = 200)
{
    dp_e2e_run_t r;
    sh(&r, 180000,
       "seq 1 1000000 | " DPOOL " isprime > %s/million; echo $?; "
       "wc -l < %s/million; grep -c ': prime$' %s/million; "
       "awk -F': ' '$1 != NR { print \"line \" NR \": \" $0; exit }' "
       "%s/million",
       T.e.dir, T.e.dir, T.e.dir, T.e.dir);
    cr_assert_str_eq(r.out, "0\n1000000\n78498\n", "stderr: %s", r.err);
    cr_assert_str_eq(r.err, "");
    dp_e2e_run_free(&r);
}

/* `| head -2` stops the batch at once, and the embedded pool's children
 * (started with --parent-pid of dpool) go with it. */
Test(cli, closed_output_stops_the_batch)
{
    dp_e2e_run_t r;
    sh(&r, 20000,
       "seq 1 2000000 | timeout -s KILL 10 sh -c 'echo $$ > %s/pid; exec " DPOOL
       " -p 2 isprime' | head -2",
       T.e.dir);
    cr_assert(strncmp(r.out, "1: not prime\n2: prime\n", 22) == 0, "%s", r.out);
    cr_assert(r.secs < 10, "took %.1f s", r.secs);
    dp_e2e_run_free(&r);
    sh(&r, QUICK_MS,
       "p=$(cat %s/pid); for i in $(seq 50); do "
       "pgrep -f -- \"--parent-pid $p( |$)\" >/dev/null || exit 0; "
       "sleep 0.1; done; pgrep -af -- \"--parent-pid $p\"; exit 1",
       T.e.dir);
    cr_assert_eq(r.code, 0, "processes left: %s", r.out);
    dp_e2e_run_free(&r);
}

/* ... and dpool's own exit status is SIGPIPE's (128 + 13). */
Test(cli, closed_output_exit_status)
{
    dp_e2e_run_t r;
    sh(&r, 20000,
       "bash -c 'seq 1 200000 | timeout -s KILL 10 " DPOOL
       " -p 1 isprime | head -1 >/dev/null; echo ${PIPESTATUS[1]}'");
    cr_assert_str_eq(r.out, "141\n", "stderr %s", r.err);
    dp_e2e_run_free(&r);
}

/* The broker is killed mid-batch: every input still gets exactly one
 * line, BROKER_LOST where no result came, and dpool exits 3. */
Test(cli, broker_lost_every_input_one_line, .timeout = 90)
{
    e2e_pool(1, 2);
    dp_e2e_run_t r;
    sh(&r, 60000,
       "(sleep 1.5; kill -9 %d) & seq 1 60 | sed 's/.*/300/' | "
       "timeout -s KILL 40 " DPOOL " -b %s -f json map sleep; echo rc=$?",
       (int)T.broker.pid, T.ep);
    cr_assert(strstr(r.out, "rc=3\n"), "%s\n%s", r.out, r.err);
    cr_assert_eq(count_lines(r.out), 61, "lines:\n%s", r.out);
    int lost = count_str(r.out, "\"BROKER_LOST\"");
    int ok = count_str(r.out, "\"ok\":true");
    cr_assert(lost > 0 && lost + ok == 60, "lost %d ok %d", lost, ok);
    for (int k = 0; k < 60; k++) { /* each index once */
        char idx[32];
        snprintf(idx, sizeof idx, "{\"index\":%d,", k);
        cr_assert_eq(count_str(r.out, idx), 1, "index %d", k);
    }
    dp_e2e_run_free(&r);
}

/* Bytes that are not UTF-8 become U+FFFD: every line is JSON. */
Test(cli, json_output_is_utf8)
{
    dp_e2e_run_t r;
    sh(&r, QUICK_MS,
       "printf 'caf\\351\\n\\377\\376x\\n' | timeout -s KILL 10 " DPOOL
       " -p 1 -f json map echo | python3 -c 'import sys, json\n"
       "for l in sys.stdin.buffer: "
       "print(json.loads(l.decode(\"utf-8\"))[\"input\"].encode("
       "\"unicode_escape\").decode())'");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "caf\\ufffd\n\\ufffd\\ufffdx\n");
    dp_e2e_run_free(&r);
}

/* ---- 6-9: options ---- */

/* Each command refuses what it does not use, before any work. */
Test(cli, options_a_command_does_not_use)
{
    static const char *const lines[] = {
        "factor -i nums.txt 5",
        "factor -o d 5",
        "factor --algo md5 5",
        "factor -n 3 5",
        "-b tcp://127.0.0.1:9 -p 2 factor 5",
        "-b tcp://127.0.0.1:9 --io-slots 2 isprime 5",
        "--broker tcp://127.0.0.1:9 download --insecure http://x/",
        "types --timeout 1",
        "status --unordered -b tcp://127.0.0.1:9",
        "bench --fail-fast",
        "isprime --list",
        "map echo --salt s x",
        "hash --output-dir d f"};
    for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++) {
        dp_e2e_run_t r;
        sh(&r, QUICK_MS, DPOOL " %s", lines[k]);
        cr_expect_eq(r.code, 2, "dpool %s: exit %d\n%s", lines[k], r.code,
                     r.err);
        cr_expect(strstr(r.err, "does not apply") ||
                      strstr(r.err, "embedded pool only"),
                  "dpool %s: %s", lines[k], r.err);
        cr_expect(r.secs < 2, "dpool %s took %.1f s", lines[k], r.secs);
        dp_e2e_run_free(&r);
    }
    dp_e2e_run_t r; /* what a command uses it still takes */
    sh(&r, QUICK_MS, "echo abc > %s/f; " DPOOL " -p 1 hash --algo md5 %s/f",
       T.e.dir, T.e.dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "0bee89b07a248e27c83fc3d5951213c1"), "%s", r.out);
    dp_e2e_run_free(&r);
}

Test(cli, daemons_refuse_bad_log_level_and_endpoints)
{
    static const char *const lines[] = {"dpool-broker --log-level verbose",
                                        "dpool-worker --log-level loud",
                                        "dpool-broker --bind 127.0.0.1:5555",
                                        "dpool-worker -c tcp:/x:1",
                                        "dpool-worker -c tcp://127.0.0.1:99999",
                                        "dpool-broker -b inproc://x"};
    for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++) {
        dp_e2e_run_t r;
        sh(&r, QUICK_MS, "timeout -s KILL 5 " DP_BIN_DIR "/%s", lines[k]);
        cr_expect_eq(r.code, 2, "%s: exit %d\n%s", lines[k], r.code, r.err);
        dp_e2e_run_free(&r);
    }
}

/* The worker's children are programs of their own: the agent refuses
 * --child, a child program refuses to run as anything but its kind, and
 * an agent whose child programs are missing says so at start instead of
 * failing to start children forever. */
Test(cli, worker_child_programs_are_apart)
{
    static const struct {
        const char *line, *says;
        int code;
    } cases[] = {
        {"dpool-worker --child cpu", "dpool-worker-cpu", 2},
        {"dpool-worker-cpu", "--child cpu", 2},
        {"dpool-worker-cpu --child io", "--child takes cpu", 2},
        {"dpool-worker-io --child cpu", "--child takes io", 2},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dp_e2e_run_t r;
        sh(&r, QUICK_MS, "timeout -s KILL 5 " DP_BIN_DIR "/%s", cases[k].line);
        cr_expect_eq(r.code, cases[k].code, "%s: exit %d\n%s", cases[k].line,
                     r.code, r.err);
        cr_expect(strstr(r.err, cases[k].says), "%s: %s", cases[k].line, r.err);
        dp_e2e_run_free(&r);
    }
    dp_e2e_run_t r; /* an agent copied alone, without its children */
    sh(&r, QUICK_MS,
       "cp " DP_BIN_DIR "/dpool-worker %s/ && "
       "timeout -s KILL 5 %s/dpool-worker -c ipc://%s/none -p 1",
       T.e.dir, T.e.dir, T.e.dir);
    cr_expect_eq(r.code, 1, "exit %d\n%s", r.code, r.err);
    cr_expect(strstr(r.err, "dpool-worker-cpu"), "%s", r.err);
    dp_e2e_run_free(&r);
}

Test(cli, unknown_map_type_refused_before_work)
{
    dp_e2e_run_t r;
    sh(&r, QUICK_MS, DPOOL " map nosuch 1 2");
    cr_assert_eq(r.code, 2, "%s", r.err);
    cr_assert_str_eq(r.out, "");
    cr_assert(strstr(r.err, "unknown job type 'nosuch'"), "%s", r.err);
    cr_assert(r.secs < 2, "%.1f s", r.secs);
    dp_e2e_run_free(&r);
}

Test(cli, endpoint_typos_are_usage_errors)
{
    static const char *const eps[] = {"127.0.0.1:5555", "tcp:/127.0.0.1:5555",
                                      "tcp://127.0.0.1:99999",
                                      "tcp://127.0.0.1", "inproc://x"};
    for (size_t k = 0; k < sizeof eps / sizeof eps[0]; k++) {
        dp_e2e_run_t r;
        sh(&r, QUICK_MS, DPOOL " -b '%s' factor 12", eps[k]);
        cr_expect_eq(r.code, 2, "%s: exit %d", eps[k], r.code);
        cr_expect(strstr(r.err, "tcp://HOST:PORT"), "%s: %s", eps[k], r.err);
        cr_expect(r.secs < 2, "%s: %.1f s", eps[k], r.secs);
        dp_e2e_run_free(&r);
    }
}

/* On a terminal (a pty from script(1)): the progress line is cleared
 * before each result (no result line carries it), refreshed on a timer
 * between results, and shows the total once the input has ended. */
Test(cli, progress_line_on_a_terminal)
{
    dp_e2e_run_t r;
    sh(&r, 60000,
       "seq 1 6 | sed 's/.*/500/' > %s/in; "
       "timeout -s KILL 40 script -qfec '" DPOOL " -p 1 map sleep < %s/in' "
       "/dev/null",
       T.e.dir, T.e.dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    /* result lines: "500: 500"; progress: "\r...done..." then \033[K */
    char **lines = NULL;
    int n = dp_e2e_lines(r.out, &lines);
    int results = 0;
    for (int k = 0; k < n; k++) {
        size_t len = strlen(lines[k]);
        while (len && lines[k][len - 1] == '\r') /* the pty's CR LF */
            lines[k][--len] = '\0';
        char *last = strrchr(lines[k], '\r'); /* what the screen shows */
        char *shown = last ? last + 1 : lines[k];
        if (strstr(shown, "500: 500")) {
            results++;
            cr_expect(!strstr(shown, "done"), "result glued: %s", shown);
        }
    }
    cr_assert_eq(results, 6, "%s", r.out);
    free(lines);
    dp_e2e_run_free(&r);
    sh(&r, 60000,
       "timeout -s KILL 40 script -qfec '" DPOOL " -p 1 map sleep < %s/in' "
       "/dev/null",
       T.e.dir);
    int draws = count_str(r.out, " done, ");
    cr_assert(draws > 6 + 3, "%d draws for 6 results over 3 s:\n%s", draws,
              r.out);
    cr_assert(strstr(r.out, "6/6 done"), "no total: %s", r.out);
    cr_assert(!strstr(r.out, "/? done"), "%s", r.out);
    dp_e2e_run_free(&r);
}

/* ---- 13-15 ---- */

Test(cli, arg_file)
{
    dp_e2e_run_t r;
    sh(&r, QUICK_MS,
       "printf '4\\n5\\n' > %s/a; " DPOOL " -p 1 isprime -a %s/a && "
       "printf '6\\n' | " DPOOL " -p 1 isprime --arg-file -",
       T.e.dir, T.e.dir);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "4: not prime\n5: prime\n6: not prime\n");
    dp_e2e_run_free(&r);
    sh(&r, QUICK_MS, DPOOL " isprime -a %s/a 7", T.e.dir);
    cr_assert_eq(r.code, 2, "%s", r.err);
    dp_e2e_run_free(&r);
}

Test(cli, status_without_broker_and_with_one)
{
    dp_e2e_run_t r;
    sh(&r, QUICK_MS, DPOOL " status");
    cr_assert_eq(r.code, 3, "%s", r.err);
    cr_assert(strstr(r.err, "no broker"), "%s", r.err);
    cr_assert(r.secs < 2, "%.1f s", r.secs);
    dp_e2e_run_free(&r);
    e2e_pool(1, 1);
    sh(&r, QUICK_MS,
       DPOOL " -b %s status && " DPOOL " -b %s status -f json | "
             "python3 -c 'import json,sys; json.load(sys.stdin); "
             "print(\"json ok\")'",
       T.ep, T.ep);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "json ok"), "%s", r.out);
    dp_e2e_run_free(&r);
}

/* A stand-in broker that answers HELLO and STATUS the way the real one
 * will once it lists its workers (the format the client reads). */
typedef struct {
    char ep[PATH_MAX + 16];
    void *ctx, *sock;
} fake_t;

static void fake_send(fake_t *f, const zmq_msg_t *rid, int cmd,
                      const dp_value_t *body)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_wr_array(&w, 3);
    dp_wr_uint(&w, DP_PROTOCOL_VERSION);
    dp_wr_uint(&w, (uint64_t)cmd);
    dp_wr_value(&w, body);
    char *data;
    size_t len;
    cr_assert_eq(dp_wr_take(&w, &data, &len), 0);
    zmq_send(f->sock, zmq_msg_data((zmq_msg_t *)rid),
             zmq_msg_size((zmq_msg_t *)rid), ZMQ_SNDMORE);
    zmq_send(f->sock, "", 0, ZMQ_SNDMORE);
    zmq_send(f->sock, data, len, 0);
    free(data);
}

static dp_value_t fake_worker(const char *name, uint64_t pid, uint64_t done)
{
    static const char *const keys[] = {"name",        "pid",     "cpu_slots",
                                       "io_slots",    "running", "done",
                                       "last_seen_ms"};
    uint64_t vals[] = {0, pid, 2, 16, 1, done, 1500};
    dp_value_t w = dp_dict(7);
    for (size_t k = 0; k < 7; k++) {
        w.v.a.items[2 * k] = dp_str(keys[k]);
        w.v.a.items[2 * k + 1] = k ? dp_uint(vals[k]) : dp_str(name);
    }
    return w;
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    for (;;) {
        zmq_msg_t rid, empty, body;
        zmq_msg_init(&rid);
        zmq_msg_init(&empty);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&rid, f->sock, 0) < 0 ||
            zmq_msg_recv(&empty, f->sock, 0) < 0 ||
            zmq_msg_recv(&body, f->sock, 0) < 0)
            break;
        dp_rd_t r;
        dp_limits_t lim = dp_limits_default();
        dp_rd_init(&r, zmq_msg_data(&body), zmq_msg_size(&body), &lim);
        uint32_t n;
        uint64_t ver = 0, cmd = 0;
        if (!dp_rd_array(&r, &n) && !dp_rd_uint(&r, &ver) &&
            !dp_rd_uint(&r, &cmd)) {
            if (cmd == DP_CMD_HELLO) {
                dp_value_t wel = dp_array(5);
                uint64_t v[] = {7, 1000, 1u << 20, 4, 32};
                for (int k = 0; k < 5; k++)
                    wel.v.a.items[k] = dp_uint(v[k]);
                fake_send(f, &rid, DP_CMD_WELCOME, &wel);
                dp_value_clear(&wel);
            } else if (cmd == DP_CMD_STATUS) {
                dp_value_t st = dp_dict(3);
                st.v.a.items[0] = dp_str("workers");
                st.v.a.items[1] = dp_uint(2);
                st.v.a.items[2] = dp_str("clients");
                st.v.a.items[3] = dp_uint(1);
                st.v.a.items[4] = dp_str("worker_list");
                st.v.a.items[5] = dp_array(2);
                st.v.a.items[5].v.a.items[0] = fake_worker("w0", 4242, 17);
                st.v.a.items[5].v.a.items[1] =
                    fake_worker("evil\033[2J", 77, 3);
                fake_send(f, &rid, DP_CMD_STATUS_REPLY, &st);
                dp_value_clear(&st);
            }
        }
        zmq_msg_close(&rid);
        zmq_msg_close(&empty);
        zmq_msg_close(&body);
    }
    return NULL;
}

Test(cli, status_lists_workers)
{
    fake_t f;
    snprintf(f.ep, sizeof f.ep, "ipc://%s/fake", T.e.dir);
    f.ctx = zmq_ctx_new();
    f.sock = zmq_socket(f.ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(f.sock, ZMQ_LINGER, &zero, sizeof zero);
    cr_assert_eq(zmq_bind(f.sock, f.ep), 0);
    pthread_t thr;
    pthread_create(&thr, NULL, fake_main, &f);
    dp_e2e_run_t r;
    sh(&r, QUICK_MS, DPOOL " -b %s status", f.ep);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "workers        2\n"), "%s", r.out);
    cr_assert(strstr(r.out, "worker"), "%s", r.out);
    cr_assert(strstr(r.out, "\nw0                       4242     2    16 "
                            "       1         17        1.5\n"),
              "%s", r.out);
    cr_assert(strstr(r.out, "evil?[2J"), "%s", r.out);
    cr_assert(!strchr(r.out, '\033'), "%s", r.out);
    dp_e2e_run_free(&r);
    sh(&r, QUICK_MS,
       DPOOL " -b %s status -f json | python3 -c 'import json,sys\n"
             "d = json.load(sys.stdin)\n"
             "print(d[\"workers\"], [(w[\"name\"], w[\"pid\"], w[\"done\"]) "
             "for w in d[\"worker_list\"]][0])'",
       f.ep);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "2 ('w0', 4242, 17)\n");
    dp_e2e_run_free(&r);
    zmq_ctx_shutdown(f.ctx); /* the thread's recv fails (ETERM): it ends */
    pthread_join(thr, NULL);
    zmq_close(f.sock);
    zmq_ctx_term(f.ctx);
}

Test(cli, types_json)
{
    dp_e2e_run_t r;
    sh(&r, QUICK_MS,
       DPOOL " types -f json | python3 -c 'import json,sys\n"
             "for l in sys.stdin: d = json.loads(l); print(d[\"name\"], "
             "d[\"class\"], d[\"timeout_s\"])'");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "factor cpu 60\n"), "%s", r.out);
    cr_assert(strstr(r.out, "download io 300\n"), "%s", r.out);
    dp_e2e_run_free(&r);
}

/* Lines empty or of blanks only are skipped alike; factor reads several
 * numbers on a line, as GNU factor does. */
Test(cli, blank_lines_and_factor_words)
{
    dp_e2e_run_t r;
    sh(&r, QUICK_MS,
       "printf '5\\n   \\n\\t\\n\\n7\\r\\n' | " DPOOL " -p 1 isprime");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "5: prime\n7: prime\n");
    dp_e2e_run_free(&r);
    sh(&r, QUICK_MS,
       "printf '12 13\\n  14\\t15 \\n\\n16\\n' > %s/n; " DPOOL
       " -p 2 factor < %s/n > %s/mine; factor < %s/n | cmp - %s/mine",
       T.e.dir, T.e.dir, T.e.dir, T.e.dir, T.e.dir);
    cr_assert_eq(r.code, 0, "differs from GNU factor: %s %s", r.out, r.err);
    dp_e2e_run_free(&r);
}

Test(cli, hash_dash_is_stdin)
{
    dp_e2e_run_t r;
    sh(&r, QUICK_MS,
       "a=$(printf 'hello\\n' | " DPOOL " -p 1 hash - | cut -d' ' -f2); "
       "b=$(printf 'hello\\n' | sha256sum | cut -d' ' -f1); "
       "echo \"$a\"; test \"$a\" = \"$b\"");
    cr_assert_eq(r.code, 0, "%s %s", r.out, r.err);
    dp_e2e_run_free(&r);
}

Test(cli, unordered_text_names_each_input)
{
    dp_e2e_run_t r;
    sh(&r, QUICK_MS, DPOOL " -p 2 -u isprime 2 3 4 9 11 | sort");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "11: prime\n2: prime\n3: prime\n4: not prime\n"
                            "9: not prime\n");
    dp_e2e_run_free(&r);
}

/* Issue 10: a value cannot put raw control characters on a terminal. */
Test(cli, control_characters_escaped_in_text)
{
    dp_e2e_run_t r;
    sh(&r, QUICK_MS,
       DPOOL " -p 1 map echo \"$(printf 'a\\033[31mb\\nfake: line')\"");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(!strchr(r.out, '\033'), "raw ESC: %s", r.out);
    cr_assert_eq(count_lines(r.out), 1, "%s", r.out);
    cr_assert(strstr(r.out, "a\\x1b[31mb\\x0afake: line\n"), "%s", r.out);
    dp_e2e_run_free(&r);
}

/* Issue 8, client side: a broker with no worker sits on the jobs; the
 * client fails them TIMEOUT at --timeout plus its margin (5 s). */
Test(cli, client_deadline_without_workers, .timeout = 60)
{
    cr_assert_eq(dp_e2e_broker(&T.e, &T.broker, 0, T.ep, sizeof T.ep), 0);
    dp_e2e_run_t r;
    sh(&r, 30000,
       "timeout -s KILL 25 " DPOOL " -b %s --timeout 1 -f json map sleep 10 "
       "20",
       T.ep);
    cr_assert_eq(r.code, 1, "%s", r.err);
    cr_assert_eq(count_str(r.out, "\"TIMEOUT\""), 2, "%s", r.out);
    cr_assert(r.secs > 5.5 && r.secs < 12, "%.1f s", r.secs);
    dp_e2e_run_free(&r);
}

/* The same through the library: a future with a time limit completes
 * TIMEOUT at the limit plus the margin, not when the caller gives up. */
Test(cli, future_deadline_without_workers, .timeout = 60)
{
    cr_assert_eq(dp_e2e_broker(&T.e, &T.broker, 0, T.ep, sizeof T.ep), 0);
    dp_pool_t *pool = NULL;
    dp_pool_opts_t po = {.connect_timeout = 5};
    cr_assert_eq(dp_pool_open(T.ep, &po, &pool), 0);
    dp_value_t arg = dp_uint(10);
    dp_job_opts_t jo = {.timeout = 0.5, .retries = -1};
    dp_future_t *f = NULL;
    cr_assert_eq(dp_submit(pool, "sleep", &arg, 1, &jo, &f), 0);
    cr_assert_eq(dp_future_wait(f, 1.0), DP_ERR_TIMEOUT); /* not yet */
    uint64_t t0 = dp_now_ms();
    cr_assert_eq(dp_future_wait(f, 30.0), 0);
    uint64_t waited = dp_now_ms() - t0;
    cr_assert_eq(dp_future_result(f)->error, DP_ERR_TIMEOUT, "%s",
                 dp_errname(dp_future_result(f)->error));
    cr_assert(waited > 3500 && waited < 8000, "waited %llu ms",
              (unsigned long long)waited);
    dp_future_destroy(&f);
    dp_pool_close(&pool);
}

/* man_has: the man page text holds \fB--name\fR (with its dashes written
 * "\-" or "-"). */
static bool man_has(const char *man, const char *name)
{
    char *plain = strdup(man), *o = plain;
    for (const char *p = man; *p; p++) {
        if (p[0] == '\\' && p[1] == '-')
            continue; /* "\-" is "-" */
        *o++ = *p;
    }
    *o = '\0';
    char want[128];
    snprintf(want, sizeof want, "\\fB--%s\\fR", name);
    bool found = strstr(plain, want) != NULL;
    free(plain);
    return found;
}

/* The man pages name every option --help shows. */
Test(cli, man_pages_match_help)
{
    static const char *const progs[][2] = {
        {"dpool", DP_SOURCE_DIR "/client/cli/dpool.1"},
        {"dpool-broker", DP_SOURCE_DIR "/broker/dpool-broker.1"},
        {"dpool-worker", DP_SOURCE_DIR "/worker/dpool-worker.1"}};
    for (size_t k = 0; k < 3; k++) {
        dp_e2e_run_t r;
        sh(&r, QUICK_MS,
           DP_BIN_DIR "/%s --help | grep -o -- '--[a-z][a-z0-9-]*' | "
                      "sort -u | cut -c3-",
           progs[k][0]);
        char *man = dp_e2e_slurp(progs[k][1]);
        char **names = NULL;
        int n = dp_e2e_lines(r.out, &names);
        cr_expect(n > 5, "%s --help: %d options", progs[k][0], n);
        for (int j = 0; j < n; j++)
            cr_expect(man_has(man, names[j]), "%s lacks --%s", progs[k][1],
                      names[j]);
        free(names);
        free(man);
        dp_e2e_run_free(&r);
    }
}

/* An embedded pool of daemons (DPOOL_EMBED=daemons) stops its worker and
 * broker together; whichever sees the other go first, a clean run prints
 * nothing on stderr (the worker used to warn "broker ... is shutting
 * down" when the broker's goodbye beat its own SIGTERM). Twenty runs: the
 * race showed in ~1 of 5. The local pool (even runs) is quiet too. */
Test(cli, embedded_stop_is_quiet)
{
    for (int k = 0; k < 20; k++) {
        dp_e2e_run_t r;
        if (k % 2)
            setenv("DPOOL_EMBED", "daemons", 1);
        e2e_run(&r, QUICK_MS, ARGV("dpool", "factor", "12"));
        unsetenv("DPOOL_EMBED");
        cr_assert_eq(r.code, 0, "run %d: exit %d", k, r.code);
        cr_assert_str_eq(r.out, "12: 2 2 3\n");
        cr_assert_str_eq(r.err, "", "run %d printed on stderr:\n%s", k, r.err);
        dp_e2e_run_free(&r);
    }
}
