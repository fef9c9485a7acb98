/*
 * dp_broker.c - the broker's peers, protocol handling and event loop.
 *
 * Input from the socket is never trusted: every message goes through
 * dp_msg_open; anything malformed, unknown or out of place is counted,
 * answered with ERROR and dropped. Peers that die are marked and purged
 * after the current message (never freed while in use).
 */
#include "dp_broker.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_clock.h"
#include "dp_log.h"
#include "dp_msg.h"
#include "dp_queue.h"
#include "dp_zap.h"
#include "dp_zsock.h"

#define S_NAME_MAX 64
#define S_ERRMSG_MAX 256

typedef enum { S_CLIENT, S_WORKER } s_kind_t;

typedef struct s_peer {
    unsigned char rid[DP_ROUTING_ID_MAX];
    size_t rid_len;
    s_kind_t kind;
    uint32_t no;
    uint64_t last_seen_ms;
    char name[S_NAME_MAX];
    uint32_t pid;
    bool dead;
    struct s_peer *next;
    dp_qclient_t qc; /* clients */
    dp_wr_t out;     /* clients: RESULTS being built, nout of them */
    uint32_t nout;
    dp_qworker_t qw; /* workers */
} s_peer_t;

typedef struct {
    uint64_t submitted, done, failed, requeued, lost, cancelled, bad_msgs,
        stale_results;
} s_stats_t;

struct dp_broker {
    dp_broker_cfg_t cfg;
    void *ctx;
    void *sock;
    s_peer_t *peers;
    uint32_t next_no;
    dp_queue_t q;
    s_stats_t st;
    uint64_t next_hb_ms;
    unsigned rr_start; /* rotates which worker is offered jobs first */
    dp_wr_t w;         /* scratch writer */
    /* issue 10 (dp_zap.h): CURVE/ZAP, NULL when plaintext */
    dp_zap_t *zap;
    uint64_t refused;     /* messages refused by role or revoked key */
    const char *key_name; /* the current message's worker key name */
};

dp_broker_cfg_t dp_broker_cfg_default(void)
{
    dp_broker_cfg_t c;
    memset(&c, 0, sizeof c);
    c.heartbeat_ms = DP_HEARTBEAT_MS_DEFAULT;
    c.lookahead = -1;
    c.limits = dp_limits_default();
    return c;
}

static s_peer_t *s_peer_of_client(dp_qclient_t *c)
{
    return (s_peer_t *)((char *)c - offsetof(s_peer_t, qc));
}

static s_peer_t *s_peer_of_worker(dp_qworker_t *w)
{
    return (s_peer_t *)((char *)w - offsetof(s_peer_t, qw));
}

static s_peer_t *s_peer_find(dp_broker_t *b, const void *rid, size_t len)
{
    for (s_peer_t *p = b->peers; p; p = p->next)
        if (!p->dead && p->rid_len == len && memcmp(p->rid, rid, len) == 0)
            return p;
    return NULL;
}

static void s_send(dp_broker_t *b, s_peer_t *p, dp_wr_t *w)
{
    int rc = dp_zsend(b->sock, p->rid, p->rid_len, w, ZMQ_DONTWAIT);
    if (rc && errno == EHOSTUNREACH) {
        dp_info("%s %s unreachable; dropping it",
                p->kind == S_WORKER ? "worker" : "client", p->name);
        p->dead = true;
    }
}

static void s_send_error(dp_broker_t *b, const void *rid, size_t rid_len,
                         int code, const char *msg)
{
    dp_wr_reset(&b->w);
    dp_msg_error(&b->w, code, msg);
    dp_zsend(b->sock, rid, rid_len, &b->w, ZMQ_DONTWAIT);
}

/* s_client_result: queue an encoded result for client p. */
static void s_client_raw(s_peer_t *p, const void *raw, size_t len)
{
    dp_msg_batch_add(&p->out, &p->nout, DP_CMD_RESULTS, raw, len);
    if (p->out.err)
        dp_error("out of memory queueing a result for %s", p->name);
}

/* s_client_error: queue a result the broker makes itself. */
static void s_client_error(dp_broker_t *b, s_peer_t *p, uint64_t id, int code,
                           const char *msg, uint32_t attempts)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_put_result(&w, id, (uint32_t)code, NULL, msg, "", 0, 0, attempts);
    if (!w.err)
        s_client_raw(p, w.buf.data, w.buf.len);
    dp_wr_release(&w);
    b->st.failed++;
}

static void s_flush_clients(dp_broker_t *b)
{
    for (s_peer_t *p = b->peers; p; p = p->next) {
        if (p->kind != S_CLIENT || p->nout == 0 || p->dead)
            continue;
        dp_msg_batch_close(&p->out, p->nout);
        s_send(b, p, &p->out); /* hands the buffer over: no copy */
        p->nout = 0;
    }
}

/* ---- job outcomes ---- */

static void s_send_cancel(dp_broker_t *b, s_peer_t *wp, const uint64_t *ids,
                          size_t n)
{
    dp_wr_reset(&b->w);
    dp_msg_begin(&b->w, DP_CMD_CANCEL);
    dp_wr_array(&b->w, (uint32_t)n);
    for (size_t k = 0; k < n; k++)
        dp_wr_uint(&b->w, ids[k]);
    s_send(b, wp, &b->w);
}

/* s_job_lost: a leased job's process or worker died: requeue it within
 * its retry budget, else give its client a WORKER_LOST result. */
static void s_job_lost(dp_broker_t *b, dp_bjob_t *j, const char *why)
{
    b->st.lost++;
    if (!j->client) {
        dp_queue_free_job(&b->q, j);
        return;
    }
    if ((unsigned)j->attempts <= j->retries) {
        dp_debug("job %llx lost (%s); requeued", (unsigned long long)j->id,
                 why);
        b->st.requeued++;
        dp_queue_requeue(&b->q, j);
        return;
    }
    char msg[S_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "worker lost after %u attempt%s: %s", j->attempts,
             j->attempts == 1 ? "" : "s", why);
    s_client_error(b, s_peer_of_client(j->client), j->id, DP_ERR_WORKER_LOST,
                   msg, j->attempts);
    dp_queue_free_job(&b->q, j);
}

static void s_worker_gone(dp_broker_t *b, s_peer_t *p, const char *why)
{
    char reason[S_ERRMSG_MAX];
    snprintf(reason, sizeof reason, "worker %s (pid %u) %s", p->name, p->pid,
             why);
    dp_info("%s; %zu leased jobs to requeue", reason, p->qw.leases.n);
    while (p->qw.leases.head)
        s_job_lost(b, p->qw.leases.head, reason);
    p->dead = true;
}

static void s_client_gone(dp_broker_t *b, s_peer_t *p, const char *why)
{
    size_t queued = 0, running = 0;
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        while (p->qc.queue[cls].head) {
            dp_queue_free_job(&b->q, p->qc.queue[cls].head);
            queued++;
        }
    }
    dp_queue_client_remove(&b->q, &p->qc);
    /* leased jobs: cancel them on their workers, wait for the answers */
    for (s_peer_t *w = b->peers; w; w = w->next) {
        if (w->kind != S_WORKER || w->dead)
            continue;
        size_t n = 0;
        uint64_t *ids = malloc((w->qw.leases.n + 1) * sizeof *ids);
        for (dp_bjob_t *j = w->qw.leases.head, *nx; j; j = nx) {
            nx = j->next;
            if (j->client != &p->qc)
                continue;
            dp_queue_orphan(&b->q, j);
            if (ids)
                ids[n++] = j->id;
            running++;
        }
        if (n)
            s_send_cancel(b, w, ids, n);
        free(ids);
    }
    dp_info("client %s (pid %u) %s: dropped %zu queued, cancelling %zu "
            "running",
            p->name, p->pid, why, queued, running);
    p->dead = true;
}

static void s_purge(dp_broker_t *b)
{
    for (s_peer_t **pp = &b->peers; *pp;) {
        s_peer_t *p = *pp;
        if (!p->dead) {
            pp = &p->next;
            continue;
        }
        if (p->kind == S_WORKER && p->qw.leases.n)
            s_worker_gone(b, p, "unreachable");
        if (p->kind == S_CLIENT &&
            (p->qc.running || p->qc.queue[0].n || p->qc.queue[1].n))
            s_client_gone(b, p, "unreachable");
        *pp = p->next;
        dp_wr_release(&p->out);
        free(p);
    }
}

/* ---- handlers ---- */

static void s_copy_name(char *dst, const char *s, size_t len)
{
    size_t n = len < S_NAME_MAX - 1 ? len : S_NAME_MAX - 1;
    for (size_t k = 0; k < n; k++) /* printable only: names go to logs */
        dst[k] = (s[k] >= ' ' && s[k] < 0x7f) ? s[k] : '?';
    dst[n] = '\0';
}

static uint32_t s_total_slots(const dp_broker_t *b, dp_class_t cls)
{
    uint32_t n = 0;
    for (const s_peer_t *p = b->peers; p; p = p->next)
        if (p->kind == S_WORKER && !p->dead)
            n += p->qw.capacity[cls];
    return n;
}

static void s_welcome(dp_broker_t *b, s_peer_t *p)
{
    dp_wr_reset(&b->w);
    dp_msg_begin(&b->w, DP_CMD_WELCOME);
    dp_wr_array(&b->w, 5);
    dp_wr_uint(&b->w, p->no);
    dp_wr_uint(&b->w, (uint64_t)b->cfg.heartbeat_ms);
    dp_wr_uint(&b->w, b->cfg.limits.max_msg_bytes);
    dp_wr_uint(&b->w, s_total_slots(b, DP_CLASS_CPU));
    dp_wr_uint(&b->w, s_total_slots(b, DP_CLASS_IO));
    s_send(b, p, &b->w);
}

static s_peer_t *s_peer_new(dp_broker_t *b, const dp_zmsg_t *m, s_kind_t kind)
{
    s_peer_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    memcpy(p->rid, m->rid, m->rid_len);
    p->rid_len = m->rid_len;
    p->kind = kind;
    p->no = ++b->next_no;
    p->last_seen_ms = dp_now_ms();
    dp_wr_init(&p->out);
    p->next = b->peers;
    b->peers = p;
    return p;
}

/* HELLO [name, pid] */
static int s_on_hello(dp_broker_t *b, const dp_zmsg_t *m, s_peer_t *p,
                      dp_rd_t *r)
{
    uint32_t n;
    const char *name;
    size_t len;
    uint64_t pid;
    int rc = dp_rd_array(r, &n);
    if (!rc && n != 2)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = dp_rd_str(r, &name, &len);
    if (!rc)
        rc = dp_rd_uint(r, &pid);
    if (rc)
        return rc;
    if (p && p->kind != S_CLIENT)
        return DP_ERR_PROTOCOL;
    if (!p && !(p = s_peer_new(b, m, S_CLIENT)))
        return DP_ERR_NOMEM;
    s_copy_name(p->name, name, len);
    p->pid = (uint32_t)pid;
    dp_info("client %s (pid %u) connected as #%u", p->name, p->pid, p->no);
    s_welcome(b, p);
    return 0;
}

/* READY [name, pid, cpu_slots, io_slots, [type...]] */
static int s_on_ready(dp_broker_t *b, const dp_zmsg_t *m, s_peer_t *p,
                      dp_rd_t *r)
{
    uint32_t n, ntypes;
    const char *name;
    size_t len;
    uint64_t pid, cpu, io;
    int rc = dp_rd_array(r, &n);
    if (!rc && n != 5)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = dp_rd_str(r, &name, &len);
    if (!rc)
        rc = dp_rd_uint(r, &pid);
    if (!rc)
        rc = dp_rd_uint(r, &cpu);
    if (!rc)
        rc = dp_rd_uint(r, &io);
    if (!rc)
        rc = dp_rd_array(r, &ntypes);
    for (uint32_t k = 0; !rc && k < ntypes; k++)
        rc = dp_rd_skip(r);
    if (rc)
        return rc;
    if (cpu > UINT16_MAX || io > UINT16_MAX)
        return DP_ERR_TOO_BIG;
    if (p && p->kind != S_WORKER)
        return DP_ERR_PROTOCOL;
    if (!p && !(p = s_peer_new(b, m, S_WORKER)))
        return DP_ERR_NOMEM;
    s_copy_name(p->name, name, len);
    p->pid = (uint32_t)pid;
    p->qw.capacity[DP_CLASS_CPU] = (uint32_t)cpu;
    p->qw.capacity[DP_CLASS_IO] = (uint32_t)io;
    dp_info("worker %s (pid %u) ready: %u cpu, %u io slots", p->name, p->pid,
            (unsigned)cpu, (unsigned)io);
    s_welcome(b, p);
    return 0;
}

/* CREDIT [cpu_slots, io_slots]: the worker's capacity changed. */
static int s_on_credit(dp_broker_t *b, s_peer_t *p, dp_rd_t *r)
{
    (void)b;
    uint32_t n;
    uint64_t cpu, io;
    int rc = dp_rd_array(r, &n);
    if (!rc && n != 2)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = dp_rd_uint(r, &cpu);
    if (!rc)
        rc = dp_rd_uint(r, &io);
    if (rc)
        return rc;
    if (cpu > UINT16_MAX || io > UINT16_MAX)
        return DP_ERR_TOO_BIG;
    p->qw.capacity[DP_CLASS_CPU] = (uint32_t)cpu;
    p->qw.capacity[DP_CLASS_IO] = (uint32_t)io;
    return 0;
}

/* s_check_job: type and arity against the job table; 0 or an error code
 * with msg filled (the job gets an error result, the batch goes on). */
static int s_check_job(const dp_job_t *j, const dp_jobtype_t **type, char *msg,
                       size_t len)
{
    *type = dp_jobtype_find(j->type, j->type_len);
    if (!*type) {
        snprintf(msg, len, "unknown job type '%.*s' (see: dpool types)",
                 (int)(j->type_len > 40 ? 40 : j->type_len), j->type);
        return DP_ERR_UNKNOWN_TYPE;
    }
    if (j->nargs < (*type)->min_args || j->nargs > (*type)->max_args) {
        snprintf(msg, len, "%s takes %u to %u arguments, got %u; usage: %s",
                 (*type)->name, (*type)->min_args, (*type)->max_args, j->nargs,
                 (*type)->usage);
        return DP_ERR_ARITY;
    }
    return 0;
}

/* s_submit_scan: check the batch's shape and ids before taking any of it:
 * a malformed batch is refused whole, so nothing is half-queued. */
static int s_submit_scan(dp_broker_t *b, s_peer_t *p, dp_rd_t r, uint32_t njobs,
                         char *msg, size_t len)
{
    for (uint32_t k = 0; k < njobs; k++) {
        dp_job_t j;
        int rc = dp_msg_read_job(&r, &j);
        if (rc) {
            snprintf(msg, len, "job %u of the batch is malformed", k);
            return rc;
        }
        if ((j.id >> 32) != p->no) {
            snprintf(msg, len,
                     "job id %llx is outside this client's "
                     "range (client #%u)",
                     (unsigned long long)j.id, p->no);
            return DP_ERR_INVALID;
        }
        if (dp_queue_find(&b->q, j.id)) {
            snprintf(msg, len, "job id %llx is already in use",
                     (unsigned long long)j.id);
            return DP_ERR_INVALID;
        }
    }
    return 0;
}

/* s_refuse: ERROR [code, message, seq, count] for a refused SUBMIT, so
 * the client can fail the jobs it sent in it (ids seq .. seq+count-1). */
static void s_refuse(dp_broker_t *b, s_peer_t *p, int code, const char *msg,
                     uint64_t seq, uint32_t count)
{
    b->st.bad_msgs++;
    dp_debug("refused a SUBMIT from %s: %s", p->name, msg);
    dp_wr_reset(&b->w);
    dp_msg_begin(&b->w, DP_CMD_ERROR);
    dp_wr_array(&b->w, 4);
    dp_wr_uint(&b->w, (uint64_t)code);
    dp_wr_cstr(&b->w, msg[0] ? msg : dp_strerror(code));
    dp_wr_uint(&b->w, seq);
    dp_wr_uint(&b->w, count);
    s_send(b, p, &b->w);
}

/* SUBMIT [seq, [job...], chunksize]: buf holds the frame (moved out of the
 * socket message so the jobs can point into it). A batch that cannot be
 * taken whole is refused whole (s_refuse). */
static int s_on_submit(dp_broker_t *b, s_peer_t *p, dp_bbuf_t *buf, char *msg,
                       size_t len)
{
    int cmd;
    dp_rd_t r;
    uint32_t n, njobs = 0;
    uint64_t seq = 0, chunk = 1;
    int rc = dp_msg_open(zmq_msg_data(&buf->msg), zmq_msg_size(&buf->msg),
                         &b->cfg.limits, &cmd, &r);
    if (!rc)
        rc = dp_rd_array(&r, &n);
    if (!rc && n != 3)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = dp_rd_uint(&r, &seq);
    dp_rd_t jobs = r;
    if (!rc) {
        dp_rd_t head = r;
        if (dp_rd_array(&head, &njobs))
            njobs = 0;
        rc = dp_rd_skip(&r);
    }
    if (!rc)
        rc = dp_rd_uint(&r, &chunk);
    if (!rc)
        rc = dp_msg_end(&r);
    r = jobs;
    if (!rc)
        rc = dp_rd_array(&r, &njobs);
    if (!rc && njobs > DP_SUBMIT_MAX_JOBS) {
        rc = DP_ERR_TOO_BIG;
        snprintf(msg, len, "%u jobs in one SUBMIT; at most %u", njobs,
                 DP_SUBMIT_MAX_JOBS);
    }
    if (!rc)
        rc = s_submit_scan(b, p, r, njobs, msg, len);
    if (rc) {
        s_refuse(b, p, rc, msg, seq, njobs);
        return 0;
    }
    chunk = chunk < 1 ? 1 : chunk > DP_CHUNK_MAX ? DP_CHUNK_MAX : chunk;
    uint32_t accepted = 0;
    for (uint32_t k = 0; k < njobs; k++) {
        dp_job_t j;
        const dp_jobtype_t *type;
        dp_msg_read_job(&r, &j); /* checked by the scan */
        b->st.submitted++;
        char why[S_ERRMSG_MAX];
        int bad = s_check_job(&j, &type, why, sizeof why);
        if (!bad && j.timeout_ms == 0 && type->timeout_ms == 0)
            bad = DP_ERR_INVALID;
        if (bad) {
            s_client_error(b, p, j.id, bad, why, 0);
            continue;
        }
        uint8_t retries =
            (uint8_t)(j.retries > DP_RETRIES_MAX ? DP_RETRIES_MAX : j.retries);
        dp_bjob_t *bj;
        rc = dp_queue_add(&b->q, &p->qc, j.id, type->cls, retries, buf,
                          j.raw.ptr, j.raw.len, &bj);
        if (!rc)
            bj->chunk = (uint16_t)chunk;
        if (rc) {
            s_client_error(b, p, j.id, rc, "could not queue the job", 0);
            continue;
        }
        accepted++;
    }
    dp_wr_reset(&b->w);
    dp_msg_begin(&b->w, DP_CMD_ACCEPTED);
    dp_wr_array(&b->w, 2);
    dp_wr_uint(&b->w, seq);
    dp_wr_uint(&b->w, accepted);
    s_send(b, p, &b->w);
    return 0;
}

/* s_cancel_job: cancel one of client p's jobs. */
static void s_cancel_job(dp_broker_t *b, s_peer_t *p, dp_bjob_t *j)
{
    if (j->state == DP_JOB_QUEUED) {
        s_client_error(b, p, j->id, DP_ERR_CANCELLED, "cancelled", 0);
        b->st.cancelled++;
        dp_queue_free_job(&b->q, j);
    } else if (j->state == DP_JOB_LEASED) {
        /* the worker answers with a CANCELLED result (or the real one if
         * it finished first); either is forwarded */
        s_send_cancel(b, s_peer_of_worker(j->worker), &j->id, 1);
    }
}

/* CANCEL [id...]; [] = every job of this client */
static int s_on_cancel(dp_broker_t *b, s_peer_t *p, dp_rd_t *r)
{
    uint32_t n;
    int rc = dp_rd_array(r, &n);
    if (rc)
        return rc;
    if (n == 0) {
        for (int cls = 0; cls < DP_CLASS_COUNT; cls++)
            while (p->qc.queue[cls].head)
                s_cancel_job(b, p, p->qc.queue[cls].head);
        for (s_peer_t *w = b->peers; w; w = w->next) {
            if (w->kind != S_WORKER)
                continue;
            for (dp_bjob_t *j = w->qw.leases.head; j; j = j->next)
                if (j->client == &p->qc)
                    s_cancel_job(b, p, j);
        }
        return 0;
    }
    for (uint32_t k = 0; k < n; k++) {
        uint64_t id;
        if ((rc = dp_rd_uint(r, &id)))
            return rc;
        dp_bjob_t *j = dp_queue_find(&b->q, id);
        if (j && j->client == &p->qc)
            s_cancel_job(b, p, j);
    }
    return 0;
}

/* s_on_result: one result from worker p. */
static void s_on_result(dp_broker_t *b, s_peer_t *p, const dp_res_t *res)
{
    dp_bjob_t *j = dp_queue_find(&b->q, res->id);
    if (!j || j->worker != &p->qw) {
        b->st.stale_results++; /* e.g. from before a broker restart */
        return;
    }
    if (res->code == DP_ERR_LOST) {
        char why[S_ERRMSG_MAX];
        const char *s = "child died";
        size_t len = strlen(s);
        dp_rd_t r;
        dp_rd_init(&r, res->value.ptr, res->value.len, &b->cfg.limits);
        dp_rd_str(&r, &s, &len); /* checked by dp_msg_read_result */
        snprintf(why, sizeof why, "%.*s", (int)len, s);
        s_job_lost(b, j, why);
        return;
    }
    if (res->code == DP_ERR_REQUEUE && j->client) {
        j->attempts--; /* it never started */
        dp_queue_requeue(&b->q, j);
        return;
    }
    double us = (double)res->elapsed_us, *avg = &p->qw.avg_us[j->cls];
    *avg = *avg > 0 ? *avg * (1 - DP_AVG_WEIGHT) + us * DP_AVG_WEIGHT : us;
    if (j->client) {
        /* issue 10: on CURVE the worker is who its key says it is */
        const dp_wr_t *rw = dp_zap_rename(&b->w, res, b->key_name);
        s_client_raw(s_peer_of_client(j->client),
                     rw ? (const void *)rw->buf.data : res->raw.ptr,
                     rw ? rw->buf.len : res->raw.len);
        if (res->code)
            b->st.failed++;
        else
            b->st.done++;
    }
    dp_queue_free_job(&b->q, j);
}

/* RESULTS [result...]: each well-formed result counts, up to the first
 * malformed one (then ERROR). */
static int s_on_results(dp_broker_t *b, s_peer_t *p, dp_rd_t *r)
{
    uint32_t n;
    int rc = dp_rd_array(r, &n);
    for (uint32_t k = 0; !rc && k < n; k++) {
        dp_res_t res;
        if (!(rc = dp_msg_read_result(r, &res)))
            s_on_result(b, p, &res);
    }
    return rc ? rc : dp_msg_end(r);
}

static void s_on_status(dp_broker_t *b, s_peer_t *p)
{
    size_t workers = 0, clients = 0, running = 0;
    for (s_peer_t *x = b->peers; x; x = x->next) {
        if (x->dead)
            continue;
        if (x->kind == S_WORKER) {
            workers++;
            running += x->qw.leases.n;
        } else {
            clients++;
        }
    }
    const struct {
        const char *k;
        uint64_t v;
    } rows[] = {
        {"workers", workers},
        {"clients", clients},
        {"cpu_slots", s_total_slots(b, DP_CLASS_CPU)},
        {"io_slots", s_total_slots(b, DP_CLASS_IO)},
        {"queued", b->q.queued[0] + b->q.queued[1]},
        {"running", running},
        {"submitted", b->st.submitted},
        {"done", b->st.done},
        {"failed", b->st.failed},
        {"requeued", b->st.requeued},
        {"lost", b->st.lost},
        {"cancelled", b->st.cancelled},
        {"bad_messages", b->st.bad_msgs},
        {"stale_results", b->st.stale_results},
        {"refused", b->refused},                  /* issue 10 */
        {"denied_keys", dp_zap_denied(b->zap)},   /* issue 10 */
        {"insecure", b->cfg.insecure && !b->zap}, /* issue 10 */
    };
    size_t nrows = sizeof rows / sizeof rows[0];
    dp_wr_reset(&b->w);
    dp_msg_begin(&b->w, DP_CMD_STATUS_REPLY);
    dp_wr_map(&b->w, (uint32_t)nrows);
    for (size_t k = 0; k < nrows; k++) {
        dp_wr_cstr(&b->w, rows[k].k);
        dp_wr_uint(&b->w, rows[k].v);
    }
    s_send(b, p, &b->w);
}

/* s_handle_peer: commands from a known peer; 0 or an error to report. */
static int s_handle_peer(dp_broker_t *b, dp_zmsg_t *m, s_peer_t *p, int cmd,
                         dp_rd_t *r, char *msg, size_t len)
{
    bool client = p->kind == S_CLIENT;
    switch (cmd) {
    case DP_CMD_HELLO:
        return s_on_hello(b, m, p, r);
    case DP_CMD_READY:
        return s_on_ready(b, m, p, r);
    case DP_CMD_HEARTBEAT:
        return 0;
    case DP_CMD_BYE:
        if (client)
            s_client_gone(b, p, "said bye");
        else
            s_worker_gone(b, p, "said bye");
        p->dead = true;
        return 0;
    case DP_CMD_SUBMIT:
        if (!client)
            break;
        dp_bbuf_t *buf = calloc(1, sizeof *buf);
        if (!buf)
            return DP_ERR_NOMEM;
        zmq_msg_init(&buf->msg);
        zmq_msg_move(&buf->msg, &m->body);
        buf->refs = 1;
        int rc = s_on_submit(b, p, buf, msg, len);
        dp_bbuf_unref(buf);
        return rc;
    case DP_CMD_CANCEL:
        return client ? s_on_cancel(b, p, r) : DP_ERR_UNKNOWN_CMD;
    case DP_CMD_STATUS:
        if (!client)
            break;
        s_on_status(b, p);
        return 0;
    case DP_CMD_RESULTS: {
        if (client)
            return DP_ERR_UNKNOWN_CMD;
        int rc = s_on_results(b, p, r);
        if (rc) /* its answers cannot be read: its jobs would wait forever */
            s_worker_gone(b, p, "sent malformed RESULTS");
        return rc;
    }
    case DP_CMD_CREDIT:
        return client ? DP_ERR_UNKNOWN_CMD : s_on_credit(b, p, r);
    default:
        break;
    }
    snprintf(msg, len, "command %s is not one a %s sends", dp_cmd_name(cmd),
             client ? "client" : "worker");
    return DP_ERR_UNKNOWN_CMD;
}

static void s_on_message(dp_broker_t *b, dp_zmsg_t *m)
{
    int cmd = 0;
    dp_rd_t r;
    char msg[S_ERRMSG_MAX] = "";
    s_peer_t *p = s_peer_find(b, m->rid, m->rid_len);
    int rc = dp_msg_open(zmq_msg_data(&m->body), zmq_msg_size(&m->body),
                         &b->cfg.limits, &cmd, &r);
    if (!rc && b->zap) { /* issue 10: role and revocation (dp_zap.h) */
        b->key_name = dp_zap_worker_name(b->zap, &m->body);
        rc = dp_zap_check(b->zap, &m->body, cmd, msg, sizeof msg);
        if (rc)
            b->refused++;
        if (rc == DP_ERR_UNKNOWN_PEER && p && p->kind == S_WORKER)
            s_worker_gone(b, p, "lost its key");
        else if (rc == DP_ERR_UNKNOWN_PEER && p)
            s_client_gone(b, p, "lost its key");
    }
    if (!rc && p) {
        p->last_seen_ms = dp_now_ms();
        rc = s_handle_peer(b, m, p, cmd, &r, msg, sizeof msg);
    } else if (!rc && cmd == DP_CMD_HELLO) {
        rc = s_on_hello(b, m, NULL, &r);
    } else if (!rc && cmd == DP_CMD_READY) {
        rc = s_on_ready(b, m, NULL, &r);
    } else if (!rc && cmd != DP_CMD_BYE) {
        rc = DP_ERR_UNKNOWN_PEER;
    }
    if (rc) {
        b->st.bad_msgs++;
        if (!msg[0])
            snprintf(msg, sizeof msg, "%s", dp_strerror(rc));
        dp_debug("bad %s message from %s: %s", dp_cmd_name(cmd),
                 p ? p->name : "unknown peer", msg);
        s_send_error(b, m->rid, m->rid_len, rc, msg);
    }
}

/* ---- dispatch ---- */

/* s_dispatch_to: send worker w chunks of class cls while it has credit
 * (dp_queue_credit). Consecutive whole chunks of one size travel in one
 * JOBS message; each chunk is run by one child in turn. */
static void s_dispatch_to(dp_broker_t *b, s_peer_t *w, dp_class_t cls,
                          bool lookahead)
{
    dp_bjob_t *jobs[DP_CHUNK_MAX];
    const dp_bjob_t *next;
    size_t msg_chunk = 0, at = 0;
    uint32_t njobs = 0;
    while ((next = dp_queue_peek(&b->q, cls)) != NULL) {
        size_t chunk = cls == DP_CLASS_IO ? 1 : next->chunk;
        if (dp_queue_credit(&w->qw, cls, chunk, lookahead, b->cfg.lookahead) ==
            0)
            break;
        if (njobs && (chunk != msg_chunk || njobs >= DP_JOBS_PER_MSG)) {
            dp_msg_jobs_close(&b->w, at, njobs); /* another size: send */
            s_send(b, w, &b->w);
            njobs = 0;
        }
        if (njobs == 0) {
            dp_wr_reset(&b->w);
            at = dp_msg_jobs_begin(&b->w, (uint32_t)chunk);
            msg_chunk = chunk;
        }
        size_t n = dp_queue_take(&b->q, cls, &w->qw, chunk, jobs);
        for (size_t k = 0; k < n; k++)
            dp_msg_jobs_add(&b->w, jobs[k]->attempts, jobs[k]->raw,
                            jobs[k]->raw_len);
        njobs += (uint32_t)n;
        if (n < chunk) { /* a short chunk must end its message */
            dp_msg_jobs_close(&b->w, at, njobs);
            s_send(b, w, &b->w);
            njobs = 0;
        }
    }
    if (njobs) {
        dp_msg_jobs_close(&b->w, at, njobs);
        s_send(b, w, &b->w);
    }
}

/* s_dispatch: idle slots everywhere first, then lookahead, starting at a
 * rotating worker so a small batch spreads over the pool. */
static void s_dispatch(dp_broker_t *b)
{
    size_t nworkers = 0;
    for (s_peer_t *p = b->peers; p; p = p->next)
        nworkers += p->kind == S_WORKER && !p->dead;
    if (nworkers == 0)
        return;
    b->rr_start++;
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        for (int pass = 0; pass < 2 && b->q.queued[cls]; pass++) {
            size_t k = 0, start = b->rr_start % nworkers;
            for (int round = 0; round < 2; round++) {
                k = 0;
                for (s_peer_t *p = b->peers; p; p = p->next) {
                    if (p->kind != S_WORKER || p->dead)
                        continue;
                    bool mine = round == 0 ? k >= start : k < start;
                    k++;
                    if (mine)
                        s_dispatch_to(b, p, (dp_class_t)cls, pass == 1);
                }
            }
        }
    }
}

/* ---- timers ---- */

static void s_heartbeat(dp_broker_t *b, uint64_t now)
{
    uint64_t hb = (uint64_t)b->cfg.heartbeat_ms;
    uint64_t dead_after = hb * DP_HEARTBEAT_LIVENESS;
    for (s_peer_t *p = b->peers; p; p = p->next) {
        if (p->dead)
            continue;
        if (now - p->last_seen_ms > dead_after) {
            if (p->kind == S_WORKER)
                s_worker_gone(b, p, "missed its heartbeats");
            else
                s_client_gone(b, p, "missed its heartbeats");
            continue;
        }
        dp_wr_reset(&b->w);
        dp_msg_empty(&b->w, DP_CMD_HEARTBEAT);
        s_send(b, p, &b->w);
    }
    b->next_hb_ms = now + hb;
}

/* ---- life cycle ---- */

dp_broker_t *dp_broker_new(const dp_broker_cfg_t *cfg)
{
    dp_broker_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->cfg = *cfg;
    dp_wr_init(&b->w);
    if (dp_queue_init(&b->q))
        goto fail;
    b->ctx = zmq_ctx_new();
    b->sock = b->ctx ? zmq_socket(b->ctx, ZMQ_ROUTER) : NULL;
    if (!b->sock)
        goto fail;
    int one = 1, zero = 0;
    int64_t maxmsg = (int64_t)cfg->limits.max_msg_bytes;
    zmq_setsockopt(b->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(b->sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(b->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    dp_zsock_linger0(b->sock);
    if (cfg->curve_key && /* issue 10: CURVE server + ZAP, before binding */
        !(b->zap = dp_zap_new(b->ctx, b->sock, cfg->curve_key, cfg->client_keys,
                              cfg->worker_keys)))
        goto fail;
    dp_optlist_t binds = cfg->binds;
    if (binds.n == 0)
        binds.v[binds.n++] = DP_BROKER_BIND_DEFAULT;
    for (int k = 0; k < binds.n; k++) {
        if (zmq_bind(b->sock, binds.v[k]) != 0) {
            dp_error("cannot bind %s: %s", binds.v[k],
                     zmq_strerror(zmq_errno()));
            goto fail;
        }
        dp_info("listening on %s", binds.v[k]);
    }
    return b;
fail:
    dp_broker_destroy(&b);
    return NULL;
}

static uint64_t s_poll_timeout(const dp_broker_t *b)
{
    uint64_t now = dp_now_ms();
    return b->next_hb_ms > now ? b->next_hb_ms - now : 0;
}

int dp_broker_run(dp_broker_t *b, int stop_fd)
{
    b->next_hb_ms = dp_now_ms() + (uint64_t)b->cfg.heartbeat_ms;
    for (;;) {
        zmq_pollitem_t items[3] = {{b->sock, 0, ZMQ_POLLIN, 0},
                                   {NULL, stop_fd, ZMQ_POLLIN, 0},
                                   {dp_zap_socket(b->zap), 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, b->zap ? 3 : 2, (long)s_poll_timeout(b));
        if (n < 0 && zmq_errno() != EINTR) {
            dp_error("poll: %s", zmq_strerror(zmq_errno()));
            return DP_ERR_IO;
        }
        if (n > 0 && (items[1].revents & ZMQ_POLLIN) &&
            !dp_zap_on_signal(b->zap, stop_fd)) /* SIGHUP: reload keys */
            return 0;
        if (n > 0 && (items[2].revents & ZMQ_POLLIN)) /* issue 10 */
            dp_zap_handle(b->zap);
        for (int k = 0; n > 0 && k < DP_POLL_BURST; k++) {
            dp_zmsg_t m;
            int rc = dp_zrecv(b->sock, 1, &m, ZMQ_DONTWAIT);
            if (rc == DP_ERR_IO)
                break; /* EAGAIN: drained */
            if (rc == DP_ERR_PROTOCOL) {
                b->st.bad_msgs++;
                if (m.rid_len)
                    s_send_error(b, m.rid, m.rid_len, rc,
                                 "bad framing: expected [empty][message]");
                continue;
            }
            s_on_message(b, &m);
            zmq_msg_close(&m.body);
        }
        uint64_t now = dp_now_ms();
        if (now >= b->next_hb_ms)
            s_heartbeat(b, now);
        s_purge(b);
        s_dispatch(b);
        s_flush_clients(b);
        s_purge(b);
    }
}

void dp_broker_destroy(dp_broker_t **bp)
{
    if (!bp || !*bp)
        return;
    dp_broker_t *b = *bp;
    if (b->sock) {
        int linger = DP_SHUTDOWN_LINGER_MS;
        zmq_setsockopt(b->sock, ZMQ_LINGER, &linger, sizeof linger);
        for (s_peer_t *p = b->peers; p; p = p->next) {
            if (p->dead)
                continue;
            dp_wr_reset(&b->w);
            if (p->kind == S_WORKER) {
                dp_msg_begin(&b->w, DP_CMD_SHUTDOWN);
                dp_wr_array(&b->w, 1);
                dp_wr_cstr(&b->w, "broker stopping");
            } else {
                dp_msg_error(&b->w, DP_ERR_BROKER_LOST, "broker stopping");
            }
            dp_zsend(b->sock, p->rid, p->rid_len, &b->w, ZMQ_DONTWAIT);
        }
        zmq_close(b->sock);
    }
    dp_zap_destroy(&b->zap); /* issue 10 */
    if (b->ctx)
        zmq_ctx_term(b->ctx);
    while (b->peers) {
        s_peer_t *p = b->peers;
        b->peers = p->next;
        dp_wr_release(&p->out);
        free(p);
    }
    dp_queue_release(&b->q);
    dp_wr_release(&b->w);
    free(b);
    *bp = NULL;
}
