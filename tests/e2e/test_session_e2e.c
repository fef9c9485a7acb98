/*
 * test_session_e2e.c - sessions and resume across a broker restart, with
 * the real programs: a `dpool map` whose broker is killed (-9) mid-batch
 * and started again on the same endpoint and journal ends with exactly
 * one correct line per input and exit 0 (fsync window 0 and the
 * default; a torn journal tail appended before the restart); without a
 * journal the restarted broker does not know the session and the client
 * fails what was outstanding BROKER_LOST, as before sessions. And the
 * protocol by hand (raw peers): a session resumed on a new connection
 * gets the same peer number and its unacknowledged results again, a
 * SUBMIT sent again is not queued twice, stray ACKs are harmless, BYE
 * ends the session.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"
#include "raw.h"

#define S_INPUTS 2000    /* jobs in the batch */
#define S_MS_MOD 7       /* input k sleeps 1 + k % S_MS_MOD ms */
#define S_DONE_FIRST 200 /* results before the kill: mid-batch */
#define S_GARBAGE 53     /* bytes appended as a torn tail */
#define S_RUN_MS 60000   /* the client's whole run, restart included */

TestSuite(session, .init = e2e_setup, .fini = e2e_teardown, .timeout = 120);

/* s_broker: a broker on port (0: a free one) with extra arguments. */
static void s_broker(int port, const char *const extra[])
{
    cr_assert_eq(
        dp_e2e_broker_with(&T.e, &T.broker, port, T.ep, sizeof T.ep, extra), 0,
        "broker did not come up (logs in %s)", T.e.dir);
}

/* s_inputs: the batch's inputs in a file, opened for reading. */
static int s_inputs(void)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/inputs", T.e.dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int k = 0; k < S_INPUTS; k++)
        fprintf(f, "%d\n", 1 + k % S_MS_MOD);
    fclose(f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert(fd >= 0);
    return fd;
}

/* s_newest_segment: the journal segment with the highest number. */
static void s_newest_segment(const char *dir, char *path, size_t len)
{
    DIR *d = opendir(dir);
    cr_assert(d);
    char best[NAME_MAX + 1] = "";
    for (struct dirent *de = readdir(d); de; de = readdir(d)) {
        const char *n = de->d_name;
        if (strncmp(n, "journal.", 8) == 0 && !strchr(n + 8, '.') &&
            strcmp(n, best) > 0)
            snprintf(best, sizeof best, "%s", n);
    }
    closedir(d);
    cr_assert(best[0], "no journal segment in %s", dir);
    snprintf(path, len, "%s/%s", dir, best);
}

/* s_tear: append garbage to the newest segment (a torn write). */
static void s_tear(const char *dir)
{
    char seg[2 * PATH_MAX];
    s_newest_segment(dir, seg, sizeof seg);
    int fd = open(seg, O_WRONLY | O_APPEND | O_CLOEXEC);
    cr_assert(fd >= 0);
    unsigned char junk[S_GARBAGE];
    memset(junk, 0x5a, sizeof junk);
    cr_assert_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
}

/* s_check_all: exactly one line per input, in input order, each ok with
 * the input's own value. */
static void s_check_all(char *out, const char *err)
{
    char **lines = NULL;
    int n = dp_e2e_lines(out, &lines);
    cr_assert_eq(n, S_INPUTS, "%d lines for %d inputs; stderr:\n%s", n,
                 S_INPUTS, err);
    for (int k = 0; k < n; k++) {
        cr_assert_eq(dp_e2e_jint(lines[k], "index"), k, "line %d: %s", k,
                     lines[k]);
        cr_assert(dp_e2e_jtrue(lines[k], "ok"), "line %d: %s", k, lines[k]);
        cr_assert_eq(dp_e2e_jint(lines[k], "result"), 1 + k % S_MS_MOD,
                     "line %d: %s", k, lines[k]);
    }
    free(lines);
}

/* s_kill_restart: a journaling broker (fsync window fsync_ms) and a
 * worker; a batch mid-way when the broker is killed -9 (and, with tear,
 * its journal torn), then started again on the same port and journal:
 * the client ends with every line. */
static void s_kill_restart(const char *fsync_ms, bool tear)
{
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/journal", T.e.dir);
    const char *const extra[] = {"--journal", dir, "--fsync-ms", fsync_ms,
                                 NULL};
    s_broker(0, extra);
    int port = dp_e2e_ep_port(T.ep);
    cr_assert_gt(port, 0);
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 2, "w0", NULL), 0);
    e2e_workers_up(1);
    int fd = s_inputs();
    dp_e2e_proc_t cl;
    cr_assert_eq(dp_e2e_spawn(&T.e, &cl, fd,
                              ARGV("dpool", "--broker", T.ep, "--format",
                                   "json", "--chunksize", "4", "map", "sleep")),
                 0);
    close(fd);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "done", S_DONE_FIRST, S_INPUTS - 1,
                               E2E_RUN_MS),
              "the batch never got going (logs in %s)", T.e.dir);
    dp_e2e_stop(&T.e, T.broker.pid, SIGKILL, DP_E2E_STOP_MS);
    if (tear)
        s_tear(dir);
    s_broker(port, extra);
    char *log = dp_e2e_slurp(T.broker.err);
    cr_expect(strstr(log, "sessions restored"), "log:\n%s", log);
    if (tear)
        cr_expect(strstr(log, "cut a torn tail"), "log:\n%s", log);
    free(log);
    cr_assert_eq(dp_e2e_wait(&T.e, cl.pid, S_RUN_MS), 0,
                 "the client did not exit 0 (logs in %s)", T.e.dir);
    char *out = dp_e2e_slurp(cl.out), *err = dp_e2e_slurp(cl.err);
    s_check_all(out, err);
    free(out);
    free(err);
    log = dp_e2e_slurp(T.broker.err);
    cr_expect(strstr(log, "resumed session"), "log:\n%s", log);
    free(log);
}

Test(session, resume_after_kill9_default_fsync)
{
    s_kill_restart("50", false);
}

Test(session, resume_after_kill9_fsync_0)
{
    s_kill_restart("0", false);
}

Test(session, resume_after_kill9_with_a_torn_tail)
{
    s_kill_restart("50", true);
}

/* Without a journal a restarted broker knows no session: WELCOME says
 * not resumed and the client fails what was outstanding BROKER_LOST
 * (exit 3), one line per input still. */
Test(session, no_journal_no_resume)
{
    s_broker(0, NULL);
    int port = dp_e2e_ep_port(T.ep);
    cr_assert_gt(port, 0);
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 2, "w0", NULL), 0);
    e2e_workers_up(1);
    int fd = s_inputs();
    dp_e2e_proc_t cl;
    cr_assert_eq(dp_e2e_spawn(&T.e, &cl, fd,
                              ARGV("dpool", "--broker", T.ep, "--format",
                                   "json", "--chunksize", "4", "map", "sleep")),
                 0);
    close(fd);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "done", S_DONE_FIRST, S_INPUTS - 1,
                               E2E_RUN_MS));
    dp_e2e_stop(&T.e, T.broker.pid, SIGKILL, DP_E2E_STOP_MS);
    s_broker(port, NULL);
    cr_assert_eq(dp_e2e_wait(&T.e, cl.pid, S_RUN_MS), 3,
                 "broker lost: exit 3 (logs in %s)", T.e.dir);
    char *out = dp_e2e_slurp(cl.out);
    char **lines = NULL;
    int n = dp_e2e_lines(out, &lines);
    cr_expect_eq(n, S_INPUTS, "one line per input");
    int lost = 0;
    for (int k = 0; k < n; k++)
        lost += strstr(lines[k], "BROKER_LOST") != NULL;
    cr_expect_gt(lost, 0, "the outstanding jobs failed BROKER_LOST");
    free(lines);
    free(out);
}

/* ---- the protocol by hand ---- */

#define S_RAW_JOBS 3
#define S_QUIET_MS 500 /* no message expected within this */

/* s_session_hello: HELLO with session sess and ACKS on a new socket; the
 * WELCOME in *wm. */
static void *s_session_hello(void *ctx, const uint8_t *sess, dp_welcome_t *wm)
{
    void *s = raw_dealer(ctx, T.ep);
    cr_assert(s);
    dp_hello_t h = {
        .name = "raw", .pid = 1, .has_session = true, .flags = DP_HELLO_ACKS};
    memcpy(h.session, sess, DP_SESSION_BYTES);
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_hello(&w, &h);
    cr_assert_eq(raw_send(s, &w), 0);
    dp_wr_release(&w);
    raw_msg_t m;
    cr_assert(raw_expect(s, DP_CMD_WELCOME, RAW_WAIT_MS, &m, NULL, NULL));
    cr_assert_eq(dp_msg_read_welcome(&m.r, wm), 0);
    raw_msg_close(&m);
    return s;
}

/* s_results: collect result ids (their low 32 bits as a bit set) until
 * want of them came or quiet_ms passed without any; how many came. */
static int s_results(void *s, int want, int quiet_ms, unsigned *seen)
{
    int got = 0;
    raw_msg_t m;
    while (got < want || want == 0) {
        raw_send_empty(s, DP_CMD_HEARTBEAT);
        int rc = raw_recv(s, quiet_ms, &m);
        if (rc == 0)
            break;
        if (rc < 0)
            continue;
        uint32_t n;
        if (m.cmd == DP_CMD_RESULTS && dp_msg_read_results(&m.r, &n) == 0) {
            for (uint32_t k = 0; k < n; k++) {
                dp_res_t res;
                if (dp_msg_read_result(&m.r, &res))
                    break;
                *seen |= 1u << (res.id & 31);
                got++;
            }
        }
        raw_msg_close(&m);
    }
    return got;
}

/* s_close_sent: close s once what it queued is sent (raw sockets have
 * linger 0, which may drop an ACK sent just before the close: the
 * broker then rightly sends that result again, and the test failed now
 * and then under load). Still no BYE: the peer vanishes. */
static void s_close_sent(void *s)
{
    int linger = RAW_WAIT_MS;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(s);
}

static void s_send_ack(void *s, const uint64_t *ids, size_t n)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_ack(&w, ids, n);
    cr_assert_eq(raw_send(s, &w), 0);
    dp_wr_release(&w);
}

Test(session, raw_resume_semantics)
{
    s_broker(0, ARGV("--heartbeat", "2000")); /* raw peers beat rarely */
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 2, "w0", NULL), 0);
    e2e_workers_up(1);
    void *ctx = zmq_ctx_new();
    uint8_t sess[DP_SESSION_BYTES];
    for (int k = 0; k < DP_SESSION_BYTES; k++)
        sess[k] = (uint8_t)(k * 37 + 11);
    dp_welcome_t wm;
    void *c = s_session_hello(ctx, sess, &wm);
    cr_expect_eq(wm.resumed, 0, "a new session");
    uint64_t no = wm.peer_no, seq = no << 32 | 1;
    cr_assert_eq(raw_submit(c, seq, S_RAW_JOBS, NULL, "echo", 7, 0, 3), 0);
    unsigned seen = 0;
    cr_assert_eq(s_results(c, S_RAW_JOBS, RAW_WAIT_MS, &seen), S_RAW_JOBS);
    /* stray ACKs: never sent, another client's, not ours to free */
    const uint64_t stray[] = {no << 32 | 999, (no + 7) << 32 | 1, 0, seq};
    s_send_ack(c, stray, 3);
    s_send_ack(c, stray + 3, 1); /* the first result: taken */
    s_send_ack(c, stray + 3, 1); /* twice */
    s_close_sent(c);             /* vanish: no BYE */

    c = s_session_hello(ctx, sess, &wm);
    cr_expect_eq(wm.resumed, 1, "the session is known");
    cr_expect_eq(wm.peer_no, no, "same peer number");
    seen = 0;
    cr_expect_eq(s_results(c, 0, S_QUIET_MS, &seen), S_RAW_JOBS - 1,
                 "the unacknowledged results come again");
    cr_expect_eq(seen, 0xcu, "ids 2 and 3, not 1 (%#x)", seen);
    /* the SUBMIT of the kept ids again: accepted, not queued twice */
    cr_assert_eq(raw_submit(c, seq + 1, S_RAW_JOBS - 1, NULL, "echo", 7, 0, 3),
                 0);
    raw_msg_t m;
    cr_assert(raw_expect(c, DP_CMD_ACCEPTED, RAW_WAIT_MS, &m, NULL, NULL));
    uint64_t aseq = 0, accepted = 0;
    cr_assert_eq(dp_msg_read_accepted(&m.r, &aseq, &accepted), 0);
    raw_msg_close(&m);
    cr_expect_eq(aseq, seq + 1);
    cr_expect_eq(accepted, S_RAW_JOBS - 1);
    seen = 0;
    cr_expect_eq(s_results(c, 0, S_QUIET_MS, &seen), 0, "nothing ran again");
    const uint64_t rest[] = {seq + 1, seq + 2};
    s_send_ack(c, rest, 2);
    s_close_sent(c);

    c = s_session_hello(ctx, sess, &wm);
    cr_expect_eq(wm.resumed, 1);
    seen = 0;
    cr_expect_eq(s_results(c, 0, S_QUIET_MS, &seen), 0, "all acknowledged");
    cr_assert_eq(raw_send_empty(c, DP_CMD_BYE), 0);
    zmq_close(c);

    c = s_session_hello(ctx, sess, &wm); /* BYE ended it */
    cr_expect_eq(wm.resumed, 0, "BYE ends a session");
    cr_expect_neq(wm.peer_no, no);
    raw_send_empty(c, DP_CMD_BYE);
    zmq_close(c);
    zmq_ctx_term(ctx);
}

#define S_PACE_JOBS 40

/* s_collect: append the ids of the results that come to ids[n..max)
 * until quiet_ms pass without any; the new count. */
static size_t s_collect(void *s, int quiet_ms, uint64_t *ids, size_t n,
                        size_t max)
{
    raw_msg_t m;
    for (;;) {
        raw_send_empty(s, DP_CMD_HEARTBEAT);
        int rc = raw_recv(s, quiet_ms, &m);
        if (rc == 0)
            return n;
        if (rc < 0)
            continue;
        uint32_t k;
        if (m.cmd == DP_CMD_RESULTS && dp_msg_read_results(&m.r, &k) == 0) {
            for (uint32_t j = 0; j < k; j++) {
                dp_res_t res;
                if (dp_msg_read_result(&m.r, &res))
                    break;
                if (n < max)
                    ids[n++] = res.id;
            }
        }
        raw_msg_close(&m);
    }
}
#define S_PACE_ROUNDS 200 /* ACK rounds before giving up */

/* Kept results count against --max-client-held: a session that does not
 * acknowledge has its dispatch paused (jobs wait, queued), and each ACK
 * lets it go on until every job is answered. */
Test(session, unacknowledged_results_pause_the_session)
{
    s_broker(0, ARGV("--heartbeat", "2000", "--max-client-held", "0"));
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 2, "w0", NULL), 0);
    e2e_workers_up(1);
    void *ctx = zmq_ctx_new();
    uint8_t sess[DP_SESSION_BYTES];
    memset(sess, 0x77, sizeof sess);
    dp_welcome_t wm;
    void *c = s_session_hello(ctx, sess, &wm);
    uint64_t seq = wm.peer_no << 32 | 1;
    cr_assert_eq(raw_submit(c, seq, S_PACE_JOBS, NULL, "echo", 1, 0, 3), 0);
    uint64_t got[S_PACE_JOBS * 2];
    size_t ngot = s_collect(c, S_QUIET_MS, got, 0, S_PACE_JOBS * 2);
    cr_expect_lt(ngot, S_PACE_JOBS, "paused before the end (%zu)", ngot);
    cr_expect_gt(dp_e2e_stat(&T.e, T.ep, "queued"), 0, "the rest waits");
    cr_expect_gt(dp_e2e_stat(&T.e, T.ep, "kept_results"), 0);
    size_t acked = 0; /* ACK exactly what came, round after round */
    int total = (int)ngot;
    for (int round = 0; round < S_PACE_ROUNDS && total < S_PACE_JOBS; round++) {
        if (ngot > acked)
            s_send_ack(c, got + acked, ngot - acked);
        acked = ngot;
        ngot = s_collect(c, S_QUIET_MS / 5, got, ngot, S_PACE_JOBS * 2);
        total = (int)ngot;
    }
    cr_expect_eq(total, S_PACE_JOBS, "every job answered once ACKed");
    raw_send_empty(c, DP_CMD_BYE);
    zmq_close(c);
    zmq_ctx_term(ctx);
}
