/*
 * test_hostile.c - a stateful random protocol test against the real
 * dpool-broker (issue 8): raw clients and workers (tests/e2e/raw.h) that
 * HELLO/READY, SUBMIT (good, unknown type, duplicate id), CANCEL, STATUS,
 * BYE, vanish (close with linger 0), half of the clients as sessions that
 * acknowledge results (ACK what they got, sometimes twice; ACK ids never
 * sent, not answered yet, or another client's, at random: all harmless),
 * answer jobs ok / error / LOST /
 * REQUEUE / late / never, answer ids they were never given and send
 * CREDIT, in random order, with a 100 ms broker heartbeat.
 *
 * Invariants checked:
 *  - a live client gets exactly one result per job it sent, and none for
 *    an id it never sent (after the chaos, a well-behaved worker drains);
 *  - no job of a departed client is dispatched once the broker has had
 *    time to see it leave (S_DEPART_MS: a JOBS already on its way when the
 *    client left is allowed);
 *  - the broker answers STATUS throughout and at the end, and once
 *    everyone left its queued and running counters are 0.
 *
 * DP_HOSTILE_SECONDS sets the chaos phase (default S_SECONDS_DEFAULT; CI
 * runs >= 60 under ASan+UBSan); DP_HOSTILE_SEED replays a run (the seed is
 * printed).
 */
#include <inttypes.h>
#include <zmq.h>

#include "e2e.h"
#include "raw.h"

#define S_SECONDS_DEFAULT 20
#define S_CLIENTS 4
#define S_WORKERS 3
#define S_JOBS_MAX 4096 /* jobs one client sends in its life */
#define S_BATCH_MAX 24
#define S_DEPARTED_MAX 4096
#define S_PENDING_MAX 512 /* jobs one worker holds unanswered */
#define S_HB_MS 40        /* our peers' heartbeat (broker's is 100 ms) */
#define S_DEPART_MS 2000  /* broker sees a departure within this */
#define S_DRAIN_MS 30000  /* live clients get every result within this */
#define S_LIMIT_MS 300    /* jobs' time limit: leases run out quickly */
#define S_IDS_MAX 4096
#define S_GRACE_MS "300" /* --session-grace: a vanished session ends soon */
#define S_ACK_MAX 8      /* ids in a random ACK */

TestSuite(hostile, .init = e2e_setup, .fini = e2e_teardown, .timeout = 600);

typedef struct {
    void *s;
    uint32_t no;
    bool live;
    bool acks;     /* a session: it acknowledges its results */
    uint32_t next; /* next seq to use (ids no << 32 | seq) */
    uint8_t sent[S_JOBS_MAX];
    uint8_t results[S_JOBS_MAX];
} s_client_t;

typedef struct {
    void *s;
    bool live, good;
    uint32_t npending;
    uint64_t pending[S_PENDING_MAX];
} s_worker_t;

typedef struct {
    uint32_t no;
    uint64_t at;
} s_departed_t;

static struct {
    void *ctx, *probe; /* the probe asks STATUS */
    uint64_t rng;
    s_client_t c[S_CLIENTS];
    s_worker_t w[S_WORKERS + 1]; /* the last: the drain phase's worker */
    s_departed_t dep[S_DEPARTED_MAX];
    uint32_t ndep;
    uint64_t violations, ghost, dup, stray, dispatched, results;
    uint64_t dropped_clients, names;
    char first[256];
} H;

static uint64_t s_rand(void)
{
    /* xorshift64*: seeded, replayable */
    H.rng ^= H.rng >> 12;
    H.rng ^= H.rng << 25;
    H.rng ^= H.rng >> 27;
    return H.rng * 0x2545F4914F6CDD1DULL;
}

static uint32_t s_pick(uint32_t n)
{
    return (uint32_t)(s_rand() % n);
}

static void s_violation(const char *what, uint64_t id)
{
    if (H.violations++ == 0)
        snprintf(H.first, sizeof H.first, "%s (id %" PRIx64 ")", what, id);
}

static void s_depart(uint32_t no)
{
    if (H.ndep < S_DEPARTED_MAX)
        H.dep[H.ndep++] = (s_departed_t){no, raw_now_ms()};
}

/* s_departed_long_ago: client no left more than S_DEPART_MS ago. */
static bool s_departed_long_ago(uint32_t no, uint64_t now)
{
    for (uint32_t k = 0; k < H.ndep; k++)
        if (H.dep[k].no == no && now > H.dep[k].at + S_DEPART_MS)
            return true;
    return false;
}

/* ---- clients ---- */

/* s_hello_session: HELLO with a random session and ACKS; the peer number
 * or -1. */
static long s_hello_session(void *s, const char *name)
{
    dp_hello_t h = {.name = name,
                    .pid = (uint64_t)getpid(),
                    .has_session = true,
                    .flags = DP_HELLO_ACKS};
    for (int k = 0; k < DP_SESSION_BYTES; k++)
        h.session[k] = (uint8_t)s_rand();
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_hello(&w, &h);
    raw_send(s, &w);
    dp_wr_release(&w);
    raw_msg_t m;
    if (!raw_expect(s, DP_CMD_WELCOME, RAW_WAIT_MS, &m, NULL, NULL))
        return -1;
    dp_welcome_t wm;
    if (dp_msg_read_welcome(&m.r, &wm) || wm.resumed)
        wm.peer_no = 0; /* a fresh session never resumes */
    raw_msg_close(&m);
    return wm.peer_no ? (long)wm.peer_no : -1;
}

/* s_ack: ACK n ids. */
static void s_ack(s_client_t *c, const uint64_t *ids, size_t n)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_ack(&w, ids, n);
    raw_send(c->s, &w);
    dp_wr_release(&w);
}

/* s_client_ack_random: an ACK of ids it may not hold as answered: never
 * sent, sent and not answered, answered and acknowledged already, or
 * another client's; or an empty one. */
static void s_client_ack_random(s_client_t *c)
{
    uint64_t ids[S_ACK_MAX];
    uint32_t n = s_pick(S_ACK_MAX + 1);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t no = s_pick(4) ? c->no : H.c[s_pick(S_CLIENTS)].no;
        ids[k] = (uint64_t)no << 32 | s_pick(c->next + 8);
    }
    s_ack(c, ids, n);
}

/* s_client_batch_random: a detached-batch command (17-21 but
 * BATCH_LIST) on a random batch number (its own, another client's, one
 * never given, 0), a BATCHES of all, or one with a malformed body; the
 * broker answers BATCH_LIST or ERROR, and none of these touches jobs. */
static void s_client_batch_random(s_client_t *c)
{
    static const int cmds[] = {DP_CMD_BATCHES, DP_CMD_ATTACH, DP_CMD_FORGET,
                               DP_CMD_CANCEL_BATCH};
    int cmd = cmds[s_pick(4)];
    uint64_t id = s_pick(3) ? H.c[s_pick(S_CLIENTS)].no : s_pick(100);
    dp_wr_t w;
    dp_wr_init(&w);
    switch (s_pick(4)) {
    case 0:
        dp_msg_batches(&w, false, 0);
        break;
    case 1: /* malformed: a string where the id goes */
        dp_msg_begin(&w, cmd);
        dp_wr_array(&w, 1);
        dp_wr_cstr(&w, "x");
        break;
    default:
        if (cmd == DP_CMD_BATCHES)
            dp_msg_batches(&w, true, id);
        else
            dp_msg_batch_cmd(&w, cmd, id);
        break;
    }
    raw_send(c->s, &w);
    dp_wr_release(&w);
}

static void s_client_start(s_client_t *c)
{
    char name[32];
    snprintf(name, sizeof name, "hc%" PRIu64, H.names++);
    memset(c, 0, sizeof *c);
    c->s = raw_dealer(H.ctx, T.ep);
    c->acks = s_pick(2);
    long no = !c->s     ? -1
              : c->acks ? s_hello_session(c->s, name)
                        : raw_hello(c->s, name);
    if (no <= 0) {
        if (c->s)
            zmq_close(c->s);
        c->s = NULL;
        return;
    }
    c->no = (uint32_t)no;
    c->next = 1;
    c->live = true;
}

static void s_client_leave(s_client_t *c, bool bye)
{
    if (bye)
        raw_send_empty(c->s, DP_CMD_BYE);
    zmq_close(c->s);
    c->s = NULL;
    c->live = false;
    s_depart(c->no);
}

static void s_client_got(s_client_t *c, uint64_t id)
{
    uint64_t seq = id & 0xffffffffu;
    if ((id >> 32) != c->no || seq >= S_JOBS_MAX || !c->sent[seq]) {
        H.stray++;
        s_violation("a client got a result for an id it never sent", id);
        return;
    }
    if (c->results[seq]++) {
        H.dup++;
        s_violation("a job got two results", id);
    }
    H.results++;
}

static void s_client_msg(s_client_t *c, raw_msg_t *m)
{
    uint32_t n;
    if (m->cmd == DP_CMD_RESULTS && !dp_rd_array(&m->r, &n)) {
        uint64_t ids[S_IDS_MAX];
        uint32_t got = 0;
        for (uint32_t k = 0; k < n; k++) {
            dp_res_t res;
            if (dp_msg_read_result(&m->r, &res))
                break;
            s_client_got(c, res.id);
            if (got < S_IDS_MAX)
                ids[got++] = res.id;
        }
        if (c->acks && got && s_pick(8)) /* sometimes late, or twice */
            s_ack(c, ids, got);
        if (c->acks && got && !s_pick(8))
            s_ack(c, ids, got);
        return;
    }
    uint64_t code = 0, seq = 0, count = 0;
    const char *msg;
    size_t len;
    if (m->cmd != DP_CMD_ERROR || dp_rd_array(&m->r, &n) ||
        dp_rd_uint(&m->r, &code) || dp_rd_str(&m->r, &msg, &len))
        return;
    if (n == 4 && !dp_rd_uint(&m->r, &seq) && !dp_rd_uint(&m->r, &count)) {
        for (uint64_t k = 0; k < count; k++) /* a refused SUBMIT */
            s_client_got(c, seq + k);
    } else if (code == DP_ERR_UNKNOWN_PEER) {
        /* the broker dropped us (we were too slow for its heartbeat):
         * no promise holds for our jobs any more */
        H.dropped_clients++;
        s_client_leave(c, false);
    }
}

static void s_client_submit(s_client_t *c)
{
    uint32_t n = 1 + s_pick(S_BATCH_MAX);
    if (c->next + n + 1 >= S_JOBS_MAX)
        return;
    uint64_t seq = (uint64_t)c->no << 32 | c->next;
    uint32_t kind = s_pick(10);
    uint64_t ids[S_BATCH_MAX + 1];
    for (uint32_t k = 0; k < n; k++)
        ids[k] = seq + k;
    const char *type = kind == 0   ? "nosuchtype"
                       : kind == 1 ? "download"
                                   : "sleep";
    if (kind == 2 && n > 1)
        ids[n - 1] = ids[n - 2]; /* a duplicate id: refused whole */
    for (uint32_t k = 0; k < n; k++)
        c->sent[c->next + k] = 1;
    c->next += n;
    raw_submit(c->s, seq, n, ids, type, 1, S_LIMIT_MS, s_pick(3));
}

static void s_client_cancel(s_client_t *c)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_CANCEL);
    uint32_t n = s_pick(2) ? 0 : 1 + s_pick(4);
    dp_wr_array(&w, n);
    for (uint32_t k = 0; k < n; k++)
        dp_wr_uint(&w, (uint64_t)c->no << 32 | (1 + s_pick(c->next)));
    raw_send(c->s, &w);
    dp_wr_release(&w);
}

/* ---- workers ---- */

static void s_worker_start(s_worker_t *w, bool good)
{
    char name[32];
    snprintf(name, sizeof name, "hw%" PRIu64, H.names++);
    memset(w, 0, sizeof *w);
    w->s = raw_dealer(H.ctx, T.ep);
    w->good = good;
    unsigned cpu = good ? 8 : s_pick(4) ? 1 + s_pick(8) : 65535;
    unsigned io = good ? 8 : s_pick(3);
    if (w->s && raw_ready_send(w->s, name, cpu, io) == 0)
        w->live = true;
}

static void s_worker_leave(s_worker_t *w, bool bye)
{
    if (bye)
        raw_send_empty(w->s, DP_CMD_BYE);
    zmq_close(w->s);
    w->s = NULL;
    w->live = false;
}

static void s_worker_jobs(s_worker_t *w, raw_msg_t *m)
{
    uint64_t ids[S_IDS_MAX], now = raw_now_ms();
    uint32_t n = raw_jobs(m, ids, S_IDS_MAX);
    H.dispatched += n;
    for (uint32_t k = 0; k < n; k++) {
        if (s_departed_long_ago((uint32_t)(ids[k] >> 32), now)) {
            H.ghost++;
            s_violation("a departed client's job was dispatched", ids[k]);
        }
        if (w->good) {
            raw_answer(w->s, &ids[k], 1, 0);
        } else if (w->npending < S_PENDING_MAX) {
            w->pending[w->npending++] = ids[k];
        }
    }
}

static void s_worker_msg(s_worker_t *w, raw_msg_t *m)
{
    uint32_t n;
    uint64_t code;
    if (m->cmd == DP_CMD_JOBS) {
        s_worker_jobs(w, m);
    } else if (m->cmd == DP_CMD_ERROR && !dp_rd_array(&m->r, &n) &&
               !dp_rd_uint(&m->r, &code) && code == DP_ERR_UNKNOWN_PEER) {
        /* dropped by the broker (expired leases, hand-backs): rejoin */
        w->npending = 0;
        raw_ready_send(w->s, "hw-again", 1 + s_pick(4), s_pick(2));
    }
}

/* s_worker_act: answer one held job (or an id never given) somehow. */
static void s_worker_act(s_worker_t *w)
{
    static const uint32_t codes[] = {
        0, 0, 0, DP_ERR_FAILED, DP_ERR_LOST, DP_ERR_REQUEUE, DP_ERR_CANCELLED};
    uint32_t what = s_pick(12);
    if (what == 0) {
        uint64_t id = (uint64_t)(1 + s_pick(64)) << 32 | s_pick(S_JOBS_MAX);
        raw_answer(w->s, &id, 1, codes[s_pick(7)]); /* never given */
        return;
    }
    if (what == 1) {
        dp_wr_t wr;
        dp_wr_init(&wr);
        dp_msg_begin(&wr, DP_CMD_CREDIT);
        dp_wr_array(&wr, 2);
        dp_wr_uint(&wr, s_pick(3) ? s_pick(8) : 0);
        dp_wr_uint(&wr, s_pick(3));
        raw_send(w->s, &wr);
        dp_wr_release(&wr);
        return;
    }
    if (w->npending == 0)
        return;
    uint32_t k = s_pick(w->npending);
    uint64_t id = w->pending[k];
    w->pending[k] = w->pending[--w->npending];
    if (what == 2)
        return; /* never answered: its lease runs out */
    raw_answer(w->s, &id, 1, codes[s_pick(7)]);
}

/* ---- the loop ---- */

static void s_pump(uint64_t *hb)
{
    uint64_t now = raw_now_ms();
    bool beat = now >= *hb;
    if (beat) {
        *hb = now + S_HB_MS;
        raw_send_empty(H.probe, DP_CMD_HEARTBEAT);
    }
    for (int k = 0; k < S_CLIENTS; k++) {
        s_client_t *c = &H.c[k];
        raw_msg_t m;
        if (c->live && beat)
            raw_send_empty(c->s, DP_CMD_HEARTBEAT);
        while (c->live && raw_recv(c->s, 0, &m) == 1) {
            s_client_msg(c, &m);
            raw_msg_close(&m);
        }
    }
    for (int k = 0; k <= S_WORKERS; k++) {
        s_worker_t *w = &H.w[k];
        raw_msg_t m;
        if (w->live && beat)
            raw_send_empty(w->s, DP_CMD_HEARTBEAT);
        while (w->live && raw_recv(w->s, 0, &m) == 1) {
            s_worker_msg(w, &m);
            raw_msg_close(&m);
        }
    }
}

static void s_chaos_step(void)
{
    uint32_t k = s_pick(S_CLIENTS), j = s_pick(S_WORKERS);
    s_client_t *c = &H.c[k];
    s_worker_t *w = &H.w[j];
    switch (s_pick(20)) {
    case 0:
        if (c->live)
            s_client_leave(c, s_pick(2));
        else
            s_client_start(c);
        break;
    case 1:
        if (w->live)
            s_worker_leave(w, s_pick(2));
        else
            s_worker_start(w, false);
        break;
    case 2:
        if (c->live)
            s_client_cancel(c);
        break;
    case 3:
    case 4:
    case 5:
    case 6:
        if (c->live)
            s_client_submit(c);
        break;
    case 7:
        if (c->live)
            raw_send_empty(c->s, DP_CMD_STATUS);
        break;
    case 8:
        if (c->live)
            s_client_ack_random(c);
        break;
    case 9:
        if (c->live)
            s_client_batch_random(c);
        break;
    default:
        if (w->live)
            s_worker_act(w);
        break;
    }
}

static bool s_all_answered(void)
{
    for (int k = 0; k < S_CLIENTS; k++) {
        const s_client_t *c = &H.c[k];
        for (uint32_t s = 1; c->live && s < c->next; s++)
            if (c->sent[s] && !c->results[s])
                return false;
    }
    return true;
}

/* s_probe: a STATUS counter. On a loaded machine (ASan, shared cores) our
 * loop may stall past the broker's 300 ms liveness and the probe be
 * dropped: it says HELLO again and asks once more. -1: no answer. */
static long long s_probe(void *probe, const char *key)
{
    long long v = raw_status(probe, key, NULL, NULL);
    if (v < 0 && raw_hello(probe, "probe") > 0) {
        H.dropped_clients++;
        v = raw_status(probe, key, NULL, NULL);
    }
    return v;
}

static uint64_t s_seed(void)
{
    const char *env = getenv("DP_HOSTILE_SEED");
    if (env && *env)
        return strtoull(env, NULL, 0);
    return (uint64_t)raw_now_ms() * 0x9E3779B97F4A7C15ULL | 1;
}

static long s_seconds(void)
{
    const char *env = getenv("DP_HOSTILE_SECONDS");
    char *end = NULL;
    long v = env ? strtol(env, &end, 10) : 0;
    return env && end != env && v > 0 ? v : S_SECONDS_DEFAULT;
}

Test(hostile, random_peers_cannot_break_the_broker)
{
    uint64_t seed = s_seed();
    long secs = s_seconds();
    H.rng = seed;
    fprintf(stderr, "hostile: seed 0x%" PRIx64 " (DP_HOSTILE_SEED), %ld s\n",
            seed, secs);
    cr_assert_eq(
        raw_broker(&T.e, &T.broker, T.ep, sizeof T.ep,
                   ARGV("--heartbeat", "100", "--lease-grace", "300",
                        "--max-requeues", "8", "--session-grace", S_GRACE_MS)),
        0);
    H.ctx = zmq_ctx_new();
    void *probe = raw_dealer(H.ctx, T.ep);
    H.probe = probe;
    cr_assert_gt(raw_hello(probe, "probe"), 0);
    for (int k = 0; k < S_CLIENTS; k++)
        s_client_start(&H.c[k]);
    for (int k = 0; k < S_WORKERS; k++)
        s_worker_start(&H.w[k], false);
    uint64_t hb = 0, end = raw_now_ms() + (uint64_t)secs * 1000, beat = 0;
    while (raw_now_ms() < end) {
        for (int k = 0; k < 8; k++)
            s_chaos_step();
        s_pump(&hb);
        if (raw_now_ms() >= beat) { /* the broker stays responsive */
            cr_assert_geq(s_probe(probe, "queued"), 0,
                          "broker stopped answering (seed 0x%" PRIx64 ")",
                          seed);
            beat = raw_now_ms() + 1000;
        }
        usleep(1000);
    }
    /* drain: the hostile workers go, one good worker answers everything */
    for (int k = 0; k < S_WORKERS; k++)
        if (H.w[k].live)
            s_worker_leave(&H.w[k], s_pick(2));
    s_worker_start(&H.w[S_WORKERS], true);
    uint64_t drain = raw_now_ms() + S_DRAIN_MS;
    while (!s_all_answered() && raw_now_ms() < drain) {
        s_pump(&hb);
        usleep(1000);
    }
    bool answered = s_all_answered();
    for (int k = 0; k < S_CLIENTS; k++)
        if (H.c[k].live)
            s_client_leave(&H.c[k], true);
    s_worker_leave(&H.w[S_WORKERS], true);
    fprintf(stderr,
            "hostile: %" PRIu64 " dispatched, %" PRIu64 " results, %" PRIu64
            " clients dropped by the broker\n",
            H.dispatched, H.results, H.dropped_clients);
    cr_expect(answered,
              "a live client's job got no result (seed 0x%" PRIx64 ")", seed);
    cr_expect_eq(H.violations, 0,
                 "%" PRIu64 " violations (ghost %" PRIu64 ", dup %" PRIu64
                 ", stray %" PRIu64 "); first: %s (seed 0x%" PRIx64 ")",
                 H.violations, H.ghost, H.dup, H.stray, H.first, seed);
    /* everyone left: nothing queued or running, the broker still answers */
    uint64_t settle = raw_now_ms() + S_DEPART_MS * 2;
    long long queued = -1, running = -1;
    while (raw_now_ms() < settle) {
        raw_send_empty(probe, DP_CMD_HEARTBEAT);
        queued = s_probe(probe, "queued");
        running = s_probe(probe, "running");
        if (queued == 0 && running == 0)
            break;
        usleep(50000);
    }
    cr_expect_eq(queued, 0, "queued %lld at the end", queued);
    cr_expect_eq(running, 0, "running %lld at the end", running);
    zmq_close(probe);
    zmq_ctx_term(H.ctx);
}
