/*
 * test_curve.c - issue 10 end to end with the real programs: a CURVE
 * broker (keys made by `dpool keygen`) admits listed keys only, enforces
 * roles, renames results by key, drops revoked keys on SIGHUP, and a broker
 * bound beyond loopback refuses to start without keys (exit 2), checked on
 * a real non-loopback address inside a network namespace.
 */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dp_keys.h"
#include "e2e.h"
#include "raw.h"

/* temp dir paths are short; composed paths cannot overflow in practice */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define C_PATH (PATH_MAX + 64)
#define C_UP_MS 15000 /* workers join within this, on a loaded machine */

static struct {
    char keys[C_PATH], clients[C_PATH], workers[C_PATH], other[C_PATH];
    char bkey[C_PATH], bpub[C_PATH];
} K;

TestSuite(curve, .init = e2e_setup, .fini = e2e_teardown);

static void s_keygen(const char *dir, const char *name)
{
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS, ARGV("dpool", "keygen", "--out", dir, name));
    cr_assert_eq(r.code, 0, "keygen %s: %s", name, r.err);
    dp_e2e_run_free(&r);
}

/* s_make_keys: the broker's key; clients alice and admin; workers w1, w2;
 * mallory, listed nowhere. */
static void s_make_keys(void)
{
    snprintf(K.keys, sizeof K.keys, "%s/keys", T.e.dir);
    snprintf(K.clients, sizeof K.clients, "%s/keys/clients", T.e.dir);
    snprintf(K.workers, sizeof K.workers, "%s/keys/workers", T.e.dir);
    snprintf(K.other, sizeof K.other, "%s/other", T.e.dir);
    snprintf(K.bkey, sizeof K.bkey, "%s/broker.key", K.keys);
    snprintf(K.bpub, sizeof K.bpub, "%s/broker.pub", K.keys);
    s_keygen(K.keys, "broker");
    s_keygen(K.clients, "alice");
    s_keygen(K.clients, "admin");
    s_keygen(K.workers, "w1");
    s_keygen(K.workers, "w2");
    s_keygen(K.other, "mallory");
}

static const char *s_key(char *buf, const char *dir, const char *name)
{
    snprintf(buf, C_PATH, "%s/%s.key", dir, name);
    return buf;
}

/* s_stat: a counter, asked with the admin client key; -1 if no answer. */
static long long s_stat(const char *key)
{
    char admin[C_PATH];
    dp_e2e_run_t r;
    e2e_run(&r, DP_E2E_STATUS_MS,
            ARGV("dpool", "--broker", T.ep, "--connect-timeout", "1",
                 "--curve-key", s_key(admin, K.clients, "admin"),
                 "--broker-key", K.bpub, "--format", "json", "status"));
    long long v = r.code == 0 ? dp_e2e_jint(r.out, key) : -1;
    dp_e2e_run_free(&r);
    return v == LLONG_MIN ? -1 : v;
}

static bool s_wait_stat(const char *key, long long lo, long long hi, int ms)
{
    for (int t = 0; t < ms; t += DP_E2E_POLL_MS) {
        long long v = s_stat(key);
        if (v >= lo && v <= hi)
            return true;
        usleep(DP_E2E_POLL_MS * 1000);
    }
    return false;
}

/* s_broker: a CURVE broker on a free loopback port, answering. */
/* s_broker_journal: a CURVE broker, on T.ep when set (a restart) or on
 * a free port; journal: --journal DIR, or NULL for none. */
static void s_broker_journal(const char *journal)
{
    if (!T.ep[0]) {
        int port = dp_e2e_free_port();
        cr_assert_gt(port, 0);
        snprintf(T.ep, sizeof T.ep, "tcp://127.0.0.1:%d", port);
    }
    const char *jopt = journal ? "--journal" : "--log-level";
    const char *jarg = journal ? journal : "debug";
    cr_assert_eq(
        dp_e2e_spawn(&T.e, &T.broker, -1,
                     ARGV("dpool-broker", "--bind", T.ep, "--heartbeat",
                          DP_E2E_HEARTBEAT, "--curve-key", K.bkey,
                          "--client-keys", K.clients, "--worker-keys",
                          K.workers, "--log-level", "debug", jopt, jarg)),
        0);
    cr_assert(s_wait_stat("workers", 0, 0, E2E_UP_MS),
              "CURVE broker never answered (logs in %s)", T.e.dir);
}

static void s_broker(void)
{
    s_broker_journal(NULL);
}

/* s_worker: a worker with the key dir/name.key, calling itself "liar". */
static void s_worker(dp_e2e_proc_t *p, const char *dir, const char *name)
{
    char key[C_PATH];
    cr_assert_eq(
        dp_e2e_spawn(&T.e, p, -1,
                     ARGV("dpool-worker", "--connect", T.ep, "-p", "2",
                          "--name", "liar", "--curve-key",
                          s_key(key, dir, name), "--broker-key", K.bpub,
                          "--grace", "2", "--log-level", "debug")),
        0);
}

Test(curve, keygen_files, .timeout = 30)
{
    s_make_keys();
    struct stat st;
    char p[C_PATH];
    cr_assert_eq(stat(s_key(p, K.clients, "alice"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "keygen", "--out", K.clients, "alice"));
    cr_assert_eq(r.code, 1, "overwrote a key: %s", r.out);
    dp_e2e_run_free(&r);
    e2e_run(&r, E2E_RUN_MS, ARGV("dpool", "keygen", "../evil"));
    cr_assert_eq(r.code, 2);
    dp_e2e_run_free(&r);
    /* a secret key others can read is refused by every program */
    cr_assert_eq(chmod(s_key(p, K.clients, "alice"), 0644), 0);
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", "tcp://127.0.0.1:1", "--curve-key", p,
                 "--broker-key", K.bpub, "factor", "12"));
    cr_assert_neq(r.code, 0);
    cr_assert(strstr(r.err, "chmod 600"), "%s", r.err);
    dp_e2e_run_free(&r);
}

Test(curve, allowed_keys_run_a_batch, .timeout = 60)
{
    s_make_keys();
    s_broker();
    s_worker(&T.worker[0], K.workers, "w1");
    cr_assert(s_wait_stat("workers", 1, 1, C_UP_MS));
    char key[C_PATH];
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--curve-key",
                 s_key(key, K.clients, "alice"), "--broker-key", K.bpub,
                 "--format", "json", "factor", "12", "97", "1000001",
                 "600851475143"));
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    char **lines = e2e_json_lines(&r, 4);
    const char *want[] = {"[2,2,3]", "[97]", "[101,9901]",
                          "[71,839,1471,6857]"};
    for (int k = 0; k < 4; k++) {
        char w[64];
        cr_expect(strstr(lines[k], want[k]), "%s", lines[k]);
        /* the worker is who its key says, not the name it claims */
        cr_expect_eq(dp_e2e_jstr(lines[k], "worker", w, sizeof w), 0);
        cr_expect_str_eq(w, "w1");
    }
    free(lines);
    dp_e2e_run_free(&r);
    cr_assert_eq(s_stat("refused"), 0);
    cr_assert_eq(s_stat("bad_messages"), 0);
    cr_assert_eq(s_stat("insecure"), 0);
}

Test(curve, unknown_and_plaintext_peers_refused_at_handshake, .timeout = 60)
{
    s_make_keys();
    s_broker();
    char key[C_PATH];
    dp_e2e_run_t r;
    /* a key listed nowhere */
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--connect-timeout", "1.5",
                 "--curve-key", s_key(key, K.other, "mallory"), "--broker-key",
                 K.bpub, "factor", "12"));
    cr_assert_eq(r.code, 3, "exit %d: %s", r.code, r.err);
    dp_e2e_run_free(&r);
    /* no key at all */
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--connect-timeout", "1.5",
                 "factor", "12"));
    cr_assert_eq(r.code, 3, "exit %d: %s", r.code, r.err);
    dp_e2e_run_free(&r);
    /* a worker with an unknown key and one without a key never join */
    s_worker(&T.worker[0], K.other, "mallory");
    cr_assert_eq(dp_e2e_spawn(&T.e, &T.worker[1], -1,
                              ARGV("dpool-worker", "--connect", T.ep, "-p", "1",
                                   "--log-level", "debug")),
                 0);
    cr_assert(s_wait_stat("denied_keys", 2, LLONG_MAX, E2E_UP_MS));
    usleep(500 * 1000);
    /* nothing they sent reached the broker's message handling */
    cr_assert_eq(s_stat("workers"), 0);
    cr_assert_eq(s_stat("bad_messages"), 0);
    cr_assert_eq(s_stat("refused"), 0);
    cr_assert_eq(s_stat("submitted"), 0);
}

Test(curve, client_key_saying_ready_gets_no_job, .timeout = 60)
{
    s_make_keys();
    s_broker();
    /* a worker program holding a client key */
    s_worker(&T.worker[0], K.clients, "alice");
    cr_assert(s_wait_stat("refused", 1, LLONG_MAX, E2E_UP_MS),
              "READY from a client key was not refused");
    cr_assert_eq(s_stat("workers"), 0);
    char key[C_PATH];
    dp_e2e_run_t r;
    e2e_run(&r, 2000,
            ARGV("dpool", "--broker", T.ep, "--curve-key",
                 s_key(key, K.clients, "alice"), "--broker-key", K.bpub,
                 "--format", "json", "factor", "12"));
    cr_assert_eq(r.code, -1, "a job ran without a worker: %s", r.out);
    cr_assert_eq(r.out[0], '\0', "%s", r.out);
    dp_e2e_run_free(&r);
    cr_assert_eq(s_stat("running"), 0);
    cr_assert_eq(s_stat("done"), 0);
    long long submitted = s_stat("submitted");
    /* and a worker key cannot submit */
    e2e_run(&r, 3000,
            ARGV("dpool", "--broker", T.ep, "--connect-timeout", "1",
                 "--curve-key", s_key(key, K.workers, "w2"), "--broker-key",
                 K.bpub, "factor", "12"));
    cr_assert_neq(r.code, 0);
    dp_e2e_run_free(&r);
    cr_assert_eq(s_stat("submitted"), submitted);
}

Test(curve, revoked_key_dropped_on_sighup, .timeout = 60)
{
    s_make_keys();
    s_broker();
    s_worker(&T.worker[0], K.workers, "w1");
    s_worker(&T.worker[1], K.workers, "w2");
    cr_assert(s_wait_stat("workers", 2, 2, C_UP_MS));
    char pub[C_PATH];
    snprintf(pub, sizeof pub, "%s/w1.pub", K.workers);
    cr_assert_eq(unlink(pub), 0);
    cr_assert_eq(kill(T.broker.pid, SIGHUP), 0);
    cr_assert(s_wait_stat("workers", 1, 1, C_UP_MS),
              "revoked worker still counted (logs in %s)", T.e.dir);
    cr_assert_gt(s_stat("refused"), 0);
    /* the broker lives on and w2 still works; results never name w1 */
    char key[C_PATH];
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--curve-key",
                 s_key(key, K.clients, "alice"), "--broker-key", K.bpub,
                 "--format", "json", "isprime", "2", "3", "4", "5", "6", "7"));
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_null(strstr(r.out, "\"w1\""), "%s", r.out);
    dp_e2e_run_free(&r);
    cr_assert(dp_e2e_alive(T.broker.pid));
    /* a client key revoked the same way */
    snprintf(pub, sizeof pub, "%s/alice.pub", K.clients);
    cr_assert_eq(unlink(pub), 0);
    cr_assert_eq(kill(T.broker.pid, SIGHUP), 0);
    usleep(300 * 1000);
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--connect-timeout", "1",
                 "--curve-key", key, "--broker-key", K.bpub, "factor", "12"));
    cr_assert_eq(r.code, 3, "revoked client got in: %s", r.out);
    dp_e2e_run_free(&r);
}

/* ---- secure by default ---- */

static dp_e2e_run_t s_broker_run(const char *const argv[], int ms)
{
    dp_e2e_run_t r;
    e2e_run(&r, ms, argv);
    return r;
}

Test(curve, wildcard_bind_without_keys_exits_2, .timeout = 30)
{
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://*:%d", dp_e2e_free_port());
    dp_e2e_run_t r = s_broker_run(ARGV("dpool-broker", "--bind", ep), 5000);
    cr_assert_eq(r.code, 2, "exit %d: %s", r.code, r.err);
    cr_assert(strstr(r.err, "dpool keygen"), "%s", r.err);
    dp_e2e_run_free(&r);
    /* keys without --curve-key, --curve-key without key dirs: usage */
    r = s_broker_run(ARGV("dpool-broker", "--client-keys", "/tmp"), 5000);
    cr_assert_eq(r.code, 2, "%s", r.err);
    dp_e2e_run_free(&r);
}

/* The real thing: a 10.x address on a veth interface in a network
 * namespace of our own, removed by name at the end. Needs root. */
#define C_NETNS_ADDR "10.213.77.1"

static char s_ns[64];
static const char *s_ip = "/usr/sbin/ip";

static void s_ns_fini(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ip netns del %s 2>/dev/null", s_ns);
    if (s_ns[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove netns %s\n", s_ns);
    e2e_teardown();
}

Test(curve, nonloopback_bind_without_keys_exits_2, .timeout = 60,
     .fini = s_ns_fini)
{
    if (access(s_ip, X_OK) != 0)
        s_ip = "/sbin/ip";
    if (geteuid() != 0 || system("ip netns list >/dev/null 2>&1") != 0)
        cr_skip_test("needs root and ip netns");
    snprintf(s_ns, sizeof s_ns, "dpcurve%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "ip netns add %s && ip -n %s link set lo up && "
             "ip -n %s link add v0 type veth peer name v1 && "
             "ip -n %s addr add " C_NETNS_ADDR "/24 dev v0 && "
             "ip -n %s link set v0 up && ip -n %s link set v1 up",
             s_ns, s_ns, s_ns, s_ns, s_ns, s_ns);
    cr_assert_eq(system(cmd), 0);
    const char *ep = "tcp://" C_NETNS_ADDR ":5555";
    dp_e2e_run_t r =
        s_broker_run(ARGV(s_ip, "netns", "exec", s_ns,
                          DP_BIN_DIR "/dpool-broker", "--bind", ep),
                     5000);
    cr_assert_eq(r.code, 2, "exit %d: %s", r.code, r.err);
    cr_assert(strstr(r.err, "dpool keygen"), "%s", r.err);
    cr_assert(strstr(r.err, C_NETNS_ADDR), "%s", r.err);
    dp_e2e_run_free(&r);
    /* with --insecure it starts, warns, and says so in status */
    dp_e2e_proc_t b;
    cr_assert_eq(dp_e2e_spawn(&T.e, &b, -1,
                              ARGV(s_ip, "netns", "exec", s_ns,
                                   DP_BIN_DIR "/dpool-broker", "--bind", ep,
                                   "--insecure")),
                 0);
    long long insecure = -1;
    for (int t = 0; t < 50 && insecure < 0; t++) {
        r = s_broker_run(ARGV(s_ip, "netns", "exec", s_ns, DP_BIN_DIR "/dpool",
                              "--broker", ep, "--connect-timeout", "1",
                              "--format", "json", "status"),
                         3000);
        if (r.code == 0)
            insecure = dp_e2e_jint(r.out, "insecure");
        dp_e2e_run_free(&r);
    }
    cr_assert_eq(insecure, 1);
    dp_e2e_stop(&T.e, b.pid, SIGTERM, 2000);
    char *log = dp_e2e_slurp(b.err);
    cr_assert(strstr(log, "--insecure"), "%s", log);
    free(log);
    /* with keys it starts too */
    s_make_keys();
    dp_e2e_proc_t b2;
    cr_assert_eq(
        dp_e2e_spawn(&T.e, &b2, -1,
                     ARGV(s_ip, "netns", "exec", s_ns,
                          DP_BIN_DIR "/dpool-broker", "--bind", ep,
                          "--curve-key", K.bkey, "--client-keys", K.clients)),
        0);
    char admin[C_PATH];
    s_key(admin, K.clients, "admin");
    long long workers = -1;
    char last[1024] = "";
    for (int t = 0; t < 50 && workers < 0 && dp_e2e_alive(b2.pid); t++) {
        r = s_broker_run(ARGV(s_ip, "netns", "exec", s_ns, DP_BIN_DIR "/dpool",
                              "--broker", ep, "--connect-timeout", "1",
                              "--curve-key", admin, "--broker-key", K.bpub,
                              "--format", "json", "status"),
                         3000);
        if (r.code == 0)
            workers = dp_e2e_jint(r.out, "workers");
        snprintf(last, sizeof last, "exit %d: %s %s", r.code, r.out, r.err);
        dp_e2e_run_free(&r);
    }
    char *err2 = dp_e2e_slurp(b2.err);
    cr_assert_eq(workers, 0, "a CURVE broker did not answer (%s): %s", last,
                 err2);
    free(err2);
    cr_assert_eq(dp_e2e_stop(&T.e, b2.pid, SIGTERM, 2000), 0);
}

/* s_curve_hello: a raw CURVE client with key dir/name.key says HELLO with
 * session sess (ACKS); the answer's command (WELCOME or ERROR) and, for a
 * WELCOME, *wm. 0 when no answer came. */
static int s_curve_hello(void *ctx, const char *dir, const char *name,
                         const uint8_t *sess, dp_welcome_t *wm)
{
    char key[C_PATH], err[DP_KEY_ERR_MAX];
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    cr_assert(s);
    dp_zsock_linger0(s);
    cr_assert_eq(
        dp_keys_client(s, s_key(key, dir, name), K.bpub, err, sizeof err), 0,
        "%s", err);
    cr_assert_eq(zmq_connect(s, T.ep), 0);
    dp_hello_t h = {
        .name = name, .pid = 1, .has_session = true, .flags = DP_HELLO_ACKS};
    memcpy(h.session, sess, DP_SESSION_BYTES);
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_hello(&w, &h);
    cr_assert_eq(raw_send(s, &w), 0);
    dp_wr_release(&w);
    raw_msg_t m;
    int cmd = 0;
    if (raw_recv(s, RAW_WAIT_MS, &m) == 1) {
        cmd = m.cmd;
        if (cmd == DP_CMD_WELCOME)
            cr_assert_eq(dp_msg_read_welcome(&m.r, wm), 0);
        raw_msg_close(&m);
    }
    zmq_close(s); /* gone without BYE: the session waits for its grace */
    return cmd;
}

/* A session is its key's: another client key naming it is refused; its
 * own key resumes it. */
Test(curve, a_session_cannot_be_taken_by_another_key, .timeout = 60)
{
    s_make_keys();
    s_broker();
    void *ctx = zmq_ctx_new();
    uint8_t sess[DP_SESSION_BYTES];
    memset(sess, 0x42, sizeof sess);
    dp_welcome_t wm = {0};
    cr_assert_eq(s_curve_hello(ctx, K.clients, "alice", sess, &wm),
                 DP_CMD_WELCOME);
    cr_expect_eq(wm.resumed, 0);
    uint64_t no = wm.peer_no;
    cr_expect_eq(s_curve_hello(ctx, K.clients, "admin", sess, &wm),
                 DP_CMD_ERROR, "admin must not resume alice's session");
    memset(&wm, 0, sizeof wm);
    cr_assert_eq(s_curve_hello(ctx, K.clients, "alice", sess, &wm),
                 DP_CMD_WELCOME);
    cr_expect_eq(wm.resumed, 1, "alice resumes her own session");
    cr_expect_eq(wm.peer_no, no);
    zmq_ctx_term(ctx);
}

/* a detached batch is its key's: another listed key neither sees, reads
 * nor forgets it; the owner does */
Test(curve, detached_batch_belongs_to_its_key, .timeout = 60)
{
    s_make_keys();
    s_broker();
    s_worker(&T.worker[0], K.workers, "w1");
    cr_assert(s_wait_stat("workers", 1, 1, C_UP_MS));
    char key[C_PATH];
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "submit", "factor", "12", "13", "--broker", T.ep,
                 "--curve-key", s_key(key, K.clients, "alice"),
                 "--broker-key", K.bpub));
    cr_assert_eq(r.code, 0, "submit: %s", r.err);
    char id[24];
    snprintf(id, sizeof id, "%lu", strtoul(r.out, NULL, 10));
    dp_e2e_run_free(&r);
    /* admin: an empty list; results, forget, cancel: no such batch */
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "batches", "--format", "json", "--broker", T.ep,
                 "--curve-key", s_key(key, K.clients, "admin"),
                 "--broker-key", K.bpub));
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(!strchr(r.out, '{'), "admin sees alice's batch: %s", r.out);
    dp_e2e_run_free(&r);
    const char *verbs[] = {"results", "forget", "cancel"};
    for (int k = 0; k < 3; k++) {
        e2e_run(&r, E2E_RUN_MS,
                ARGV("dpool", verbs[k], id, "--broker", T.ep, "--curve-key",
                     s_key(key, K.clients, "admin"), "--broker-key", K.bpub));
        cr_assert_eq(r.code, 2, "admin %s: exit %d: %s", verbs[k], r.code,
                     r.err);
        cr_assert(strstr(r.err, "no batch"), "%s", r.err);
        dp_e2e_run_free(&r);
    }
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "results", id, "--broker", T.ep, "--curve-key",
                 s_key(key, K.clients, "alice"), "--broker-key", K.bpub));
    cr_assert_eq(r.code, 0, "alice results: %s", r.err);
    cr_assert_str_eq(r.out, "0: [2,2,3]\n1: [13]\n");
    dp_e2e_run_free(&r);
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "forget", id, "--broker", T.ep, "--curve-key",
                 s_key(key, K.clients, "alice"), "--broker-key", K.bpub));
    cr_assert_eq(r.code, 0, "alice forget: %s", r.err);
    dp_e2e_run_free(&r);
}

/* the owner is journaled: after kill -9 and a restart another key still
 * neither sees nor reads the batch, and the owner reads it whole */
Test(curve, detached_batch_owner_survives_a_restart, .timeout = 90)
{
    s_make_keys();
    char dir[C_PATH], key[C_PATH];
    snprintf(dir, sizeof dir, "%s/journal", T.e.dir);
    s_broker_journal(dir);
    s_worker(&T.worker[0], K.workers, "w1");
    cr_assert(s_wait_stat("workers", 1, 1, C_UP_MS));
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "submit", "factor", "12", "13", "--broker", T.ep,
                 "--curve-key", s_key(key, K.clients, "alice"),
                 "--broker-key", K.bpub));
    cr_assert_eq(r.code, 0, "submit: %s", r.err);
    char id[24];
    snprintf(id, sizeof id, "%lu", strtoul(r.out, NULL, 10));
    dp_e2e_run_free(&r);
    cr_assert(s_wait_stat("kept_results", 2, 2, C_UP_MS), "never done");
    cr_assert_eq(kill(T.broker.pid, SIGKILL), 0);
    dp_e2e_wait(&T.e, T.broker.pid, DP_E2E_STOP_MS);
    s_broker_journal(dir);
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "batches", "--format", "json", "--broker", T.ep,
                 "--curve-key", s_key(key, K.clients, "admin"),
                 "--broker-key", K.bpub));
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(!strchr(r.out, '{'), "admin sees alice's batch: %s", r.out);
    dp_e2e_run_free(&r);
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "results", id, "--broker", T.ep, "--curve-key",
                 s_key(key, K.clients, "admin"), "--broker-key", K.bpub));
    cr_assert_eq(r.code, 2, "admin results: exit %d: %s", r.code, r.err);
    dp_e2e_run_free(&r);
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "batches", "--format", "json", "--broker", T.ep,
                 "--curve-key", s_key(key, K.clients, "alice"),
                 "--broker-key", K.bpub));
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "\"dpool\""), "the name is journaled: %s", r.out);
    dp_e2e_run_free(&r);
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "results", id, "--broker", T.ep, "--curve-key",
                 s_key(key, K.clients, "alice"), "--broker-key", K.bpub));
    cr_assert_eq(r.code, 0, "alice results: %s", r.err);
    cr_assert_str_eq(r.out, "0: [2,2,3]\n1: [13]\n");
    dp_e2e_run_free(&r);
}
