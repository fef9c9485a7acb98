/*
 * raw.h - raw protocol peers for the hostile-peer tests: DEALER sockets
 * that speak dpool's protocol through common/dp_msg's writers and readers,
 * against the real dpool-broker binary. Nothing here asserts; functions
 * return -1 (or 0 for "nothing") and tests decide.
 *
 * Ownership: raw_msg_t holds one received frame (raw_msg_close frees it);
 * its reader borrows that frame.
 */
#ifndef RAW_H
#define RAW_H

#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_e2e.h"
#include "dp_msg.h"
#include "dp_zsock.h"

#define RAW_WAIT_MS 3000 /* one request's answer, at most */
#define RAW_ARGV_MAX 32

typedef struct {
    zmq_msg_t body;
    int cmd;
    dp_rd_t r; /* reads the body */
} raw_msg_t;

static dp_limits_t raw_lim;

static inline uint64_t raw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* raw_dealer: a DEALER connected to ep, linger 0. */
static inline void *raw_dealer(void *ctx, const char *ep)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    if (!s)
        return NULL;
    dp_zsock_linger0(s);
    if (zmq_connect(s, ep)) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* raw_send: send w (emptied). 0 or -1. */
static inline int raw_send(void *s, dp_wr_t *w)
{
    return dp_zsend(s, NULL, 0, w, ZMQ_DONTWAIT) ? -1 : 0;
}

static inline int raw_send_empty(void *s, int cmd)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_empty(&w, cmd);
    int rc = raw_send(s, &w);
    dp_wr_release(&w);
    return rc;
}

static inline void raw_msg_close(raw_msg_t *m)
{
    zmq_msg_close(&m->body);
}

/* raw_recv: one message within timeout_ms: 1 (m filled, close it), 0 none,
 * -1 a message that does not open. */
static inline int raw_recv(void *s, int timeout_ms, raw_msg_t *m)
{
    raw_lim = dp_limits_default();
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return 0;
    dp_zmsg_t z;
    if (dp_zrecv(s, 0, &z, ZMQ_DONTWAIT))
        return 0;
    m->body = z.body;
    if (dp_msg_open(zmq_msg_data(&m->body), zmq_msg_size(&m->body), &raw_lim,
                    &m->cmd, &m->r)) {
        zmq_msg_close(&m->body);
        return -1;
    }
    return 1;
}

/* raw_expect: wait for a message of command cmd, skipping others (which
 * go to skip(arg, m) when given). 1 or 0 (timeout). */
static inline int raw_expect(void *s, int cmd, int timeout_ms, raw_msg_t *m,
                             void (*skip)(void *, raw_msg_t *), void *arg)
{
    uint64_t end = raw_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = raw_now_ms();
        if (now >= end)
            return 0;
        int got = raw_recv(s, (int)(end - now), m);
        if (got <= 0)
            continue;
        if (m->cmd == cmd)
            return 1;
        if (skip)
            skip(arg, m);
        raw_msg_close(m);
    }
}

/* raw_hello: HELLO, wait for WELCOME: the peer number, or -1. */
static inline long raw_hello(void *s, const char *name)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_HELLO);
    dp_wr_array(&w, 2);
    dp_wr_cstr(&w, name);
    dp_wr_uint(&w, (uint64_t)getpid());
    raw_send(s, &w);
    dp_wr_release(&w);
    raw_msg_t m;
    if (!raw_expect(s, DP_CMD_WELCOME, RAW_WAIT_MS, &m, NULL, NULL))
        return -1;
    uint32_t n;
    uint64_t no = 0;
    if (dp_rd_array(&m.r, &n) || dp_rd_uint(&m.r, &no))
        no = 0;
    raw_msg_close(&m);
    return no ? (long)no : -1;
}

/* raw_ready_send: READY with cpu/io slots and no job types. */
static inline int raw_ready_send(void *s, const char *name, unsigned cpu,
                                 unsigned io)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_READY);
    dp_wr_array(&w, 5);
    dp_wr_cstr(&w, name);
    dp_wr_uint(&w, (uint64_t)getpid());
    dp_wr_uint(&w, cpu);
    dp_wr_uint(&w, io);
    dp_wr_array(&w, 0);
    int rc = raw_send(s, &w);
    dp_wr_release(&w);
    return rc;
}

/* raw_ready: READY, wait for WELCOME. 0 or -1. */
static inline int raw_ready(void *s, const char *name, unsigned cpu,
                            unsigned io)
{
    raw_ready_send(s, name, cpu, io);
    raw_msg_t m;
    if (!raw_expect(s, DP_CMD_WELCOME, RAW_WAIT_MS, &m, NULL, NULL))
        return -1;
    raw_msg_close(&m);
    return 0;
}

/* raw_submit: SUBMIT n jobs `type [arg]` with ids seq.., time limit
 * timeout_ms, retries; ids[k] = seq + k unless ids is given. */
static inline int raw_submit(void *s, uint64_t seq, uint32_t n,
                             const uint64_t *ids, const char *type, int64_t arg,
                             uint32_t timeout_ms, uint32_t retries)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_SUBMIT);
    dp_wr_array(&w, 3);
    dp_wr_uint(&w, seq);
    dp_wr_array(&w, n);
    dp_value_t args = dp_array(1);
    args.v.a.items[0] = dp_int(arg);
    for (uint32_t k = 0; k < n; k++)
        dp_msg_put_job(&w, ids ? ids[k] : seq + k, type, &args, timeout_ms,
                       retries);
    dp_value_clear(&args);
    dp_wr_uint(&w, 1);
    int rc = raw_send(s, &w);
    dp_wr_release(&w);
    return rc;
}

/* raw_ids: the ids of a CANCEL or the ids (and attempts) of a JOBS body,
 * up to max; returns how many. */
static inline uint32_t raw_jobs(raw_msg_t *m, uint64_t *ids, uint32_t max)
{
    uint32_t chunk, n, got = 0;
    if (dp_msg_read_jobs(&m->r, &chunk, &n))
        return 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t attempt;
        dp_job_t j;
        if (dp_msg_read_dispatch(&m->r, &attempt, &j))
            break;
        if (got < max)
            ids[got++] = j.id;
    }
    return got;
}

/* raw_results: RESULTS from a worker: one result per id with code. */
static inline int raw_answer(void *s, const uint64_t *ids, uint32_t n,
                             uint32_t code)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_RESULTS);
    dp_wr_array(&w, n);
    dp_value_t v = dp_int(1);
    for (uint32_t k = 0; k < n; k++)
        dp_msg_put_result(&w, ids[k], code, &v,
                          code == DP_ERR_LOST ? "child died" : "raw error",
                          "raw", (uint32_t)getpid(), 1, 1);
    int rc = raw_send(s, &w);
    dp_wr_release(&w);
    return rc;
}

/* raw_status: one counter from a STATUS round trip on a HELLO'd client
 * socket; skipped messages go to skip. -1 when no answer. */
static inline long long raw_status(void *s, const char *key,
                                   void (*skip)(void *, raw_msg_t *), void *arg)
{
    if (raw_send_empty(s, DP_CMD_STATUS))
        return -1;
    raw_msg_t m;
    if (!raw_expect(s, DP_CMD_STATUS_REPLY, RAW_WAIT_MS, &m, skip, arg))
        return -1;
    long long v = -1;
    uint32_t n;
    if (!dp_rd_map(&m.r, &n)) {
        for (uint32_t k = 0; k < n; k++) {
            const char *name;
            size_t len;
            uint64_t x;
            if (dp_rd_str(&m.r, &name, &len))
                break;
            if (len != strlen(key) || memcmp(name, key, len) != 0) {
                if (dp_rd_skip(&m.r)) /* worker_list is not a counter */
                    break;
                continue;
            }
            if (dp_rd_uint(&m.r, &x))
                break;
            v = (long long)x;
        }
    }
    raw_msg_close(&m);
    return v;
}

static inline int raw_broker_up(const char *ep);

/* raw_broker: start dpool-broker on a free loopback port with the extra
 * options (NULL-terminated) and wait until a STATUS answers. 0 or -1. */
static inline int raw_broker(dp_e2e_t *e, dp_e2e_proc_t *p, char *ep,
                             size_t eplen, const char *const extra[])
{
    int port = dp_e2e_free_port();
    if (port <= 0)
        return -1;
    snprintf(ep, eplen, "tcp://127.0.0.1:%d", port);
    const char *argv[RAW_ARGV_MAX] = {"dpool-broker", "--bind", ep,
                                      "--log-level", "info"};
    int n = 5;
    for (int k = 0; extra && extra[k] && n < RAW_ARGV_MAX - 1; k++)
        argv[n++] = extra[k];
    argv[n] = NULL;
    if (dp_e2e_spawn(e, p, -1, argv))
        return -1;
    return raw_broker_up(ep);
}

/* raw_broker_up: wait until a broker at ep answers HELLO. 0 or -1. */
static inline int raw_broker_up(const char *ep)
{
    void *ctx = zmq_ctx_new();
    int rc = -1;
    uint64_t end = raw_now_ms() + DP_E2E_UP_MS;
    while (rc && raw_now_ms() < end) {
        void *s = raw_dealer(ctx, ep);
        if (s && raw_hello(s, "probe") > 0)
            rc = 0;
        if (s) {
            raw_send_empty(s, DP_CMD_BYE);
            zmq_close(s);
        }
    }
    zmq_ctx_term(ctx);
    return rc;
}

/* raw_rss_kb: VmRSS of pid in KiB, or -1. */
static inline long raw_rss_kb(pid_t pid)
{
    char path[64], *text;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    text = dp_e2e_slurp(path);
    const char *at = text ? strstr(text, "VmRSS:") : NULL;
    long kb = at ? strtol(at + 6, NULL, 10) : -1;
    free(text);
    return kb;
}

#endif /* RAW_H */
