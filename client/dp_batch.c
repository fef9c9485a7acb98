/*
 * dp_batch.c - detached batches, the client side (PROTOCOL.md, "Detached
 * batches"): submit a batch that runs without us, list, cancel, forget,
 * and read one's results (ATTACH) as often as wanted.
 *
 * Each call owns one short-lived connection (a DEALER of its own, no I/O
 * thread): a batch command is a question and an answer, and a reader is
 * one loop the caller drives with dp_batch_next. A reader that loses its
 * broker (silence, or ERROR UNKNOWN_PEER from a restarted one) connects
 * again on a fresh socket and ATTACHes again within its connect timeout;
 * results it has already (by id) are dropped, so each comes out once.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_clock.h"
#include "dp_keys.h"
#include "dp_msg.h"
#include "dp_pool_int.h"
#include "dp_zsock.h"
#include "dpool.h"

#define DP_BATCH_SUBMIT_JOBS 10000u /* jobs per SUBMIT a batch is cut into */
#define DP_BATCH_RETRY_MS 2000      /* a fresh socket and HELLO this often */

/* A connection for batch commands. */
typedef struct {
    void *ctx, *sock;
    const char *endpoint;
    const dp_pool_opts_t *opts;
    dp_limits_t lim;
    uint64_t hb_ms, max_msg, last_rx_ms, next_hb_ms;
    uint32_t peer_no;
    bool has_session;
    uint8_t session[DP_SESSION_BYTES];
    uint32_t flags;
    char *err; /* the caller's message buffer */
    size_t errlen;
} s_conn_t;

struct dp_batch {
    s_conn_t c;
    char *endpoint;
    dp_pool_opts_t opts;
    char *curve_key, *broker_key, *name;
    char err[256];
    uint64_t id, total;
    bool have_total;
    uint8_t *seen; /* one bit per input index */
    size_t got;
    zmq_msg_t cur; /* the RESULTS being read */
    bool cur_open;
    dp_rd_t rd;
    uint32_t nleft;
};

static double s_timeout(const dp_pool_opts_t *o)
{
    return o && o->connect_timeout > 0 ? o->connect_timeout
                                       : DP_CONNECT_TIMEOUT_DEFAULT;
}

/* s_seterr: "what" (code 0) or "what: <code's text>" as the error. */
static void s_seterr(s_conn_t *c, const char *what, int code)
{
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, code ? "%s: %s" : "%s", what,
                 dp_strerror(code));
}

static int s_send(s_conn_t *c, dp_wr_t *w)
{
    int rc = dp_zsend(c->sock, NULL, 0, w, 0) ? DP_ERR_IO : 0;
    dp_wr_release(w);
    return rc;
}

/* s_connect: a fresh socket, HELLO, and WELCOME within the connect
 * timeout (a fresh socket every DP_BATCH_RETRY_MS: a DEALER would deliver
 * every queued HELLO to a broker that comes back). */
static int s_connect(s_conn_t *c)
{
    uint64_t end = dp_now_ms() + (uint64_t)(s_timeout(c->opts) * 1000);
    while (dp_now_ms() < end) {
        if (c->sock)
            zmq_close(c->sock);
        c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
        if (!c->sock)
            return DP_ERR_IO;
        dp_zsock_linger0(c->sock);
        int zero = 0;
        zmq_setsockopt(c->sock, ZMQ_RCVHWM, &zero, sizeof zero);
        char kerr[DP_KEY_ERR_MAX];
        if (dp_keys_client(c->sock, c->opts ? c->opts->curve_key : NULL,
                           c->opts ? c->opts->broker_key : NULL, kerr,
                           sizeof kerr)) {
            s_seterr(c, kerr, 0);
            return DP_ERR_INVALID;
        }
        if (zmq_connect(c->sock, c->endpoint) != 0) {
            s_seterr(c, "cannot connect to that endpoint", DP_ERR_INVALID);
            return DP_ERR_INVALID;
        }
        dp_wr_t w;
        dp_wr_init(&w);
        dp_hello_t h = {.name =
                            c->opts && c->opts->name ? c->opts->name : "dpool",
                        .pid = (uint64_t)getpid(),
                        .has_session = c->has_session,
                        .flags = c->flags};
        memcpy(h.session, c->session, DP_SESSION_BYTES);
        dp_msg_hello(&w, &h);
        if (s_send(c, &w))
            return DP_ERR_IO;
        uint64_t retry = dp_now_ms() + DP_BATCH_RETRY_MS;
        for (uint64_t now = dp_now_ms(); now < retry && now < end;
             now = dp_now_ms()) {
            zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
            uint64_t until = retry < end ? retry : end;
            if (zmq_poll(&it, 1, (long)(until - now)) <= 0)
                continue;
            dp_zmsg_t m;
            if (dp_zrecv(c->sock, 0, &m, ZMQ_DONTWAIT))
                continue;
            int cmd;
            dp_rd_t r;
            dp_welcome_t wm;
            dp_error_msg_t em;
            int rc = dp_msg_open(zmq_msg_data(&m.body), zmq_msg_size(&m.body),
                                 &c->lim, &cmd, &r);
            int refused = 0;
            if (!rc && cmd == DP_CMD_WELCOME && !dp_msg_read_welcome(&r, &wm) &&
                wm.peer_no && wm.peer_no <= UINT32_MAX) {
                c->peer_no = (uint32_t)wm.peer_no;
                c->hb_ms =
                    wm.heartbeat_ms ? wm.heartbeat_ms : DP_CLIENT_HB_MS_DEFAULT;
                c->max_msg = wm.max_msg;
                c->last_rx_ms = dp_now_ms();
                c->next_hb_ms = c->last_rx_ms + c->hb_ms;
                zmq_msg_close(&m.body);
                return 0;
            }
            if (!rc && cmd == DP_CMD_ERROR && !dp_msg_read_error(&r, &em) &&
                em.code != DP_ERR_UNKNOWN_PEER) {
                refused = (int)em.code;
                if (c->err && c->errlen)
                    snprintf(c->err, c->errlen, "the broker refused: %.*s",
                             (int)em.message_len, em.message);
            }
            zmq_msg_close(&m.body);
            if (refused)
                return refused;
        }
    }
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "no broker answered at %s", c->endpoint);
    return DP_ERR_UNREACHABLE;
}

static int s_open(s_conn_t *c, const char *endpoint, const dp_pool_opts_t *o,
                  char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->endpoint = endpoint;
    c->opts = o;
    c->err = err;
    c->errlen = errlen;
    c->lim = dp_limits_default();
    if (err && errlen)
        err[0] = '\0';
    if (!endpoint) {
        s_seterr(c, "a broker endpoint is needed (--broker or DPOOL_BROKER)",
                 0);
        return DP_ERR_INVALID;
    }
    c->ctx = zmq_ctx_new();
    return c->ctx ? 0 : DP_ERR_IO;
}

static void s_close(s_conn_t *c, bool bye)
{
    if (c->sock && bye) {
        dp_wr_t w;
        dp_wr_init(&w);
        dp_msg_empty(&w, DP_CMD_BYE);
        dp_zsend(c->sock, NULL, 0, &w, ZMQ_DONTWAIT);
        dp_wr_release(&w);
    }
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    c->sock = c->ctx = NULL;
}

/* s_recv: the next message other than HEARTBEAT within timeout_ms (-1:
 * none), sending our heartbeats meanwhile. 0 with *m (caller closes its
 * body), DP_ERR_TIMEOUT, DP_ERR_BROKER_LOST (silent for
 * DP_CLIENT_LIVENESS beats). */
static int s_recv(s_conn_t *c, dp_zmsg_t *m, long timeout_ms)
{
    uint64_t end =
        timeout_ms < 0 ? UINT64_MAX : dp_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = dp_now_ms();
        if (now >= c->next_hb_ms) {
            dp_wr_t w;
            dp_wr_init(&w);
            dp_msg_empty(&w, DP_CMD_HEARTBEAT);
            dp_zsend(c->sock, NULL, 0, &w, ZMQ_DONTWAIT);
            dp_wr_release(&w);
            c->next_hb_ms = now + c->hb_ms;
        }
        if (now - c->last_rx_ms > c->hb_ms * DP_CLIENT_LIVENESS)
            return DP_ERR_BROKER_LOST;
        if (now >= end)
            return DP_ERR_TIMEOUT;
        uint64_t until = c->next_hb_ms < end ? c->next_hb_ms : end;
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (long)(until > now ? until - now : 0)) <= 0)
            continue;
        if (dp_zrecv(c->sock, 0, m, ZMQ_DONTWAIT))
            continue;
        c->last_rx_ms = dp_now_ms();
        return 0;
    }
}

static void s_info_of(const dp_batch_row_t *x, dp_batch_info_t *i)
{
    memset(i, 0, sizeof *i);
    i->id = x->id;
    size_t n =
        x->name_len < sizeof i->name - 1 ? x->name_len : sizeof i->name - 1;
    memcpy(i->name, x->name, n);
    i->created_ms = x->created_ms;
    i->ttl_ms = x->ttl_ms;
    i->total = x->total;
    i->queued = x->queued;
    i->running = x->running;
    i->done = x->done;
    i->failed = x->failed;
    i->readers = x->readers;
}

/* s_ask: send w, wait for BATCH_LIST (rows to *rows, *n) or ERROR. */
static int s_ask(s_conn_t *c, dp_wr_t *w, dp_batch_info_t **rows, size_t *n)
{
    int rc = s_send(c, w);
    uint64_t end = dp_now_ms() + (uint64_t)(s_timeout(c->opts) * 1000);
    while (!rc) {
        uint64_t now = dp_now_ms();
        dp_zmsg_t m;
        rc = now < end ? s_recv(c, &m, (long)(end - now)) : DP_ERR_TIMEOUT;
        if (rc)
            break;
        int cmd;
        dp_rd_t r;
        int orc = dp_msg_open(zmq_msg_data(&m.body), zmq_msg_size(&m.body),
                              &c->lim, &cmd, &r);
        if (!orc && cmd == DP_CMD_ERROR) {
            dp_error_msg_t em;
            rc = dp_msg_read_error(&r, &em) ? DP_ERR_PROTOCOL : (int)em.code;
            if (!rc)
                rc = DP_ERR_PROTOCOL;
            if (c->err && c->errlen)
                snprintf(c->err, c->errlen, "%.*s", (int)em.message_len,
                         em.message ? em.message : "");
        } else if (!orc && cmd == DP_CMD_BATCH_LIST) {
            uint32_t k = 0;
            rc = dp_msg_read_batch_list(&r, &k);
            dp_batch_info_t *v = NULL;
            if (!rc && k && !(v = calloc(k, sizeof *v)))
                rc = DP_ERR_NOMEM;
            for (uint32_t i = 0; !rc && i < k; i++) {
                dp_batch_row_t x;
                rc = dp_msg_read_batch_row(&r, &x);
                if (!rc)
                    s_info_of(&x, &v[i]);
            }
            if (rc) {
                free(v);
            } else {
                *rows = v;
                *n = k;
            }
            zmq_msg_close(&m.body);
            return rc;
        }
        zmq_msg_close(&m.body);
    }
    if (rc && c->err && c->errlen && !c->err[0])
        snprintf(c->err, c->errlen, "%s", dp_strerror(rc));
    return rc;
}

int dp_batch_list(const char *endpoint, const dp_pool_opts_t *opts, uint64_t id,
                  dp_batch_info_t **rows, size_t *n, char *err, size_t errlen)
{
    s_conn_t c;
    *rows = NULL;
    *n = 0;
    int rc = s_open(&c, endpoint, opts, err, errlen);
    if (!rc)
        rc = s_connect(&c);
    if (!rc) {
        dp_wr_t w;
        dp_wr_init(&w);
        dp_msg_batches(&w, id != 0, id);
        rc = s_ask(&c, &w, rows, n);
    }
    s_close(&c, true);
    return rc;
}

/* s_one: a command [batch] answered by that batch's row. */
static int s_one(const char *endpoint, const dp_pool_opts_t *opts, int cmd,
                 uint64_t id, dp_batch_info_t *info, char *err, size_t errlen)
{
    s_conn_t c;
    int rc = s_open(&c, endpoint, opts, err, errlen);
    if (!rc)
        rc = s_connect(&c);
    dp_batch_info_t *rows = NULL;
    size_t n = 0;
    if (!rc) {
        dp_wr_t w;
        dp_wr_init(&w);
        dp_msg_batch_cmd(&w, cmd, id);
        rc = s_ask(&c, &w, &rows, &n);
    }
    if (!rc && n != 1)
        rc = DP_ERR_PROTOCOL;
    if (!rc && info)
        *info = rows[0];
    free(rows);
    s_close(&c, true);
    return rc;
}

int dp_batch_cancel(const char *endpoint, const dp_pool_opts_t *opts,
                    uint64_t id, dp_batch_info_t *info, char *err,
                    size_t errlen)
{
    return s_one(endpoint, opts, DP_CMD_CANCEL_BATCH, id, info, err, errlen);
}

int dp_batch_forget(const char *endpoint, const dp_pool_opts_t *opts,
                    uint64_t id, dp_batch_info_t *info, char *err,
                    size_t errlen)
{
    return s_one(endpoint, opts, DP_CMD_FORGET, id, info, err, errlen);
}

/* s_wait_accepted: ACCEPTED for each of the n SUBMITs sent, or the first
 * refusal. */
static int s_wait_accepted(s_conn_t *c, size_t n)
{
    size_t answered = 0;
    while (answered < n) {
        dp_zmsg_t m;
        int rc = s_recv(c, &m, -1);
        if (rc) {
            s_seterr(c, "the broker went away before accepting the batch", rc);
            return rc;
        }
        int cmd;
        dp_rd_t r;
        rc = dp_msg_open(zmq_msg_data(&m.body), zmq_msg_size(&m.body), &c->lim,
                         &cmd, &r);
        uint64_t seq, acc;
        dp_error_msg_t em;
        if (!rc && cmd == DP_CMD_ACCEPTED &&
            !dp_msg_read_accepted(&r, &seq, &acc))
            answered++;
        else if (!rc && cmd == DP_CMD_ERROR && !dp_msg_read_error(&r, &em)) {
            if (c->err && c->errlen)
                snprintf(c->err, c->errlen,
                         "the broker refused the batch: "
                         "%s: %.*s",
                         dp_errname((int)em.code), (int)em.message_len,
                         em.message);
            zmq_msg_close(&m.body);
            return em.code ? (int)em.code : DP_ERR_PROTOCOL;
        }
        zmq_msg_close(&m.body);
    }
    return 0;
}

int dp_batch_submit(const char *endpoint, const dp_pool_opts_t *opts,
                    const char *type, const dp_value_t *argv, size_t n,
                    uint64_t *id, char *err, size_t errlen)
{
    s_conn_t c;
    *id = 0;
    int rc = s_open(&c, endpoint, opts, err, errlen);
    if (!rc && (n == 0 || n > UINT32_MAX)) {
        s_seterr(&c, "a batch holds 1 to 2^32-1 inputs", 0);
        rc = DP_ERR_INVALID;
    }
    if (!rc &&
        getrandom(c.session, sizeof c.session, 0) != (ssize_t)sizeof c.session)
        rc = DP_ERR_IO;
    c.has_session = true;
    c.flags = DP_HELLO_ACKS | DP_HELLO_DETACHED;
    if (!rc)
        rc = s_connect(&c);
    dp_wr_t jobs, w;
    dp_wr_init(&jobs);
    dp_wr_init(&w);
    size_t max = c.max_msg > 4096 ? (size_t)c.max_msg - 1024 : 1u << 20;
    for (size_t k = 0; !rc && k < n;) {
        uint64_t seq = (uint64_t)c.peer_no << 32 | k;
        uint32_t nj = 0;
        dp_wr_reset(&jobs);
        while (k < n && nj < DP_BATCH_SUBMIT_JOBS) {
            size_t before = jobs.buf.len;
            dp_msg_put_job(&jobs, (uint64_t)c.peer_no << 32 | k, type, &argv[k],
                           0, 3);
            if (jobs.buf.len > max && nj) {
                jobs.buf.len = before; /* the next SUBMIT takes it */
                break;
            }
            nj++;
            k++;
        }
        if (jobs.err) {
            rc = DP_ERR_NOMEM;
            break;
        }
        dp_wr_reset(&w);
        dp_msg_submit(&w, seq, nj, jobs.buf.data, jobs.buf.len, 1);
        rc = dp_zsend(c.sock, NULL, 0, &w, 0) ? DP_ERR_IO : 0;
        /* one SUBMIT at a time: a batch larger than the client's share
         * waits for room (held) instead of piling up past the broker's
         * held-SUBMIT bound and being refused */
        if (!rc)
            rc = s_wait_accepted(&c, 1);
    }
    dp_wr_release(&jobs);
    dp_wr_release(&w);
    if (!rc) {
        *id = c.peer_no;
    } else if (c.sock && c.peer_no) { /* nothing half-submitted stays */
        char keep[256]; /* the refusal's words, not FORGET's answer */
        snprintf(keep, sizeof keep, "%s", c.err ? c.err : "");
        dp_wr_t f;
        dp_wr_init(&f);
        dp_msg_batch_cmd(&f, DP_CMD_FORGET, c.peer_no);
        dp_batch_info_t *rows = NULL;
        size_t nrows = 0;
        s_ask(&c, &f, &rows, &nrows); /* answered BATCH_LIST: it is gone */
        free(rows);
        if (c.err && c.errlen)
            snprintf(c.err, c.errlen, "%s", keep);
    }
    s_close(&c, rc == 0); /* BYE detaches the batch: it runs on */
    return rc;
}

/* ---- readers ---- */

static int s_attach(dp_batch_t *b)
{
    int rc = s_connect(&b->c);
    if (rc)
        return rc;
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_batch_cmd(&w, DP_CMD_ATTACH, b->id);
    return s_send(&b->c, &w);
}

void dp_batch_close(dp_batch_t **bp)
{
    dp_batch_t *b = bp ? *bp : NULL;
    if (!b)
        return;
    if (b->cur_open)
        zmq_msg_close(&b->cur);
    s_close(&b->c, true);
    free(b->seen);
    free(b->endpoint);
    free(b->curve_key);
    free(b->broker_key);
    free(b->name);
    free(b);
    *bp = NULL;
}

static char *s_dup(const char *s, int *rc)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *rc = DP_ERR_NOMEM;
    return d;
}

int dp_batch_attach(const char *endpoint, const dp_pool_opts_t *opts,
                    uint64_t id, dp_batch_t **out, char *err, size_t errlen)
{
    *out = NULL;
    dp_batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return DP_ERR_NOMEM;
    int rc = 0;
    b->endpoint = s_dup(endpoint, &rc);
    if (opts)
        b->opts = *opts;
    b->opts.curve_key = b->curve_key = s_dup(b->opts.curve_key, &rc);
    b->opts.broker_key = b->broker_key = s_dup(b->opts.broker_key, &rc);
    b->opts.name = b->name = s_dup(b->opts.name, &rc);
    b->id = id;
    if (!rc)
        rc = s_open(&b->c, b->endpoint, &b->opts, b->err, sizeof b->err);
    if (!rc)
        rc = s_attach(b);
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s", b->err[0] ? b->err : dp_strerror(rc));
        dp_batch_close(&b);
        return rc;
    }
    *out = b;
    return 0;
}

uint64_t dp_batch_total(const dp_batch_t *b)
{
    return b->have_total ? b->total : 0;
}

const char *dp_batch_error(const dp_batch_t *b)
{
    return b->err;
}

/* s_take: the next result of the open RESULTS not seen before, or NULL. */
static int s_take(dp_batch_t *b, dp_result_t **out)
{
    while (b->nleft) {
        b->nleft--;
        dp_res_t res;
        int rc = dp_msg_read_result(&b->rd, &res);
        if (rc) {
            b->nleft = 0;
            return rc;
        }
        uint64_t idx = res.id & 0xffffffffu;
        if ((res.id >> 32) != b->id || idx >= b->total)
            continue; /* not ours, or past what ATTACH told */
        if (b->seen[idx / 8] & (1u << (idx % 8)))
            continue; /* had it: sent live and again from the kept list */
        rc = dp_res_to_result(&res, &b->c.lim, out);
        if (rc)
            return rc;
        b->seen[idx / 8] |= (uint8_t)(1u << (idx % 8));
        (*out)->index = (size_t)idx;
        b->got++;
        return 0;
    }
    return 0;
}

/* s_on_list: the batch's row: how many results to wait for. */
static int s_on_list(dp_batch_t *b, dp_rd_t *r)
{
    uint32_t n;
    dp_batch_row_t x;
    int rc = dp_msg_read_batch_list(r, &n);
    if (!rc && n != 1)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = dp_msg_read_batch_row(r, &x);
    if (rc)
        return rc;
    if (!b->have_total) {
        if (x.total > UINT32_MAX)
            return DP_ERR_PROTOCOL;
        b->seen = calloc(x.total / 8 + 1, 1);
        if (!b->seen)
            return DP_ERR_NOMEM;
        b->total = x.total;
        b->have_total = true;
    }
    return 0;
}

int dp_batch_next(dp_batch_t *b, dp_result_t **out, double timeout)
{
    *out = NULL;
    uint64_t end =
        timeout < 0 ? UINT64_MAX : dp_now_ms() + (uint64_t)(timeout * 1000);
    for (;;) {
        int rc = s_take(b, out);
        if (rc || *out)
            return rc;
        if (b->cur_open) {
            zmq_msg_close(&b->cur);
            b->cur_open = false;
        }
        if (b->have_total && b->got >= b->total)
            return 0; /* all of them: *out NULL */
        uint64_t now = dp_now_ms();
        if (now >= end)
            return DP_ERR_TIMEOUT;
        dp_zmsg_t m;
        rc = s_recv(&b->c, &m, end == UINT64_MAX ? -1 : (long)(end - now));
        if (rc == DP_ERR_BROKER_LOST) { /* a restart: attach again */
            rc = s_attach(b);
            if (rc)
                return rc;
            continue;
        }
        if (rc)
            return rc;
        int cmd;
        dp_rd_t r;
        rc = dp_msg_open(zmq_msg_data(&m.body), zmq_msg_size(&m.body),
                         &b->c.lim, &cmd, &r);
        dp_error_msg_t em;
        if (!rc && cmd == DP_CMD_RESULTS && b->have_total) {
            uint32_t n;
            zmq_msg_init(&b->cur);
            zmq_msg_move(&b->cur, &m.body); /* small ones move their bytes */
            b->cur_open = true;
            int c2;
            if (dp_msg_open(zmq_msg_data(&b->cur), zmq_msg_size(&b->cur),
                            &b->c.lim, &c2, &b->rd) == 0 &&
                dp_msg_read_results(&b->rd, &n) == 0)
                b->nleft = n;
        } else if (!rc && cmd == DP_CMD_BATCH_LIST) {
            rc = s_on_list(b, &r);
        } else if (!rc && cmd == DP_CMD_ERROR && !dp_msg_read_error(&r, &em)) {
            if (em.code == DP_ERR_UNKNOWN_PEER) { /* a restarted broker */
                zmq_msg_close(&m.body);
                rc = s_attach(b);
                if (rc)
                    return rc;
                continue;
            }
            snprintf(b->err, sizeof b->err, "%.*s", (int)em.message_len,
                     em.message);
            rc = em.code ? (int)em.code : DP_ERR_PROTOCOL;
        }
        zmq_msg_close(&m.body);
        if (rc)
            return rc;
    }
}
