/*
 * dp_map.c - map and as_completed over a lazy input, with a bounded
 * number of inputs in flight (read, not yet given back), so ten million
 * inputs never sit in memory. Results wait in a ring indexed by input
 * position (ordered) or a FIFO (unordered), both of max_inflight slots.
 * A slot holds a view of its result in the received message (dp_got_t):
 * nothing is decoded until dp_map_next* gives it, and dp_map_next_view
 * decodes it into the map's own dp_result_t, without an allocation.
 *
 * Every input read gets exactly one result. When the broker is lost, the
 * jobs without a result, and every input read after, get BROKER_LOST.
 * The map holds its own deadline: when no result has come for the jobs'
 * time limit plus DP_DEADLINE_MARGIN_MS while jobs are out, they all fail
 * with TIMEOUT here (and are cancelled at the broker), whatever the
 * broker and workers do. (A per-job clock would need to know when the
 * broker dispatched each job; time without any result is what a client
 * can see.)
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_clock.h"
#include "dp_msg.h"
#include "dp_pool_int.h"

struct dp_map {
    dp_pool_t *pool;
    char *type;
    dp_job_tpl_t tpl; /* dp_map_text: what every job shares, encoded */
    dp_input_fn in;
    dp_text_fn text_in; /* dp_map_text's input */
    void *in_ctx;
    const dp_value_t *argv; /* dp_map_array's inputs (borrowed) */
    size_t argc, argi;
    dp_map_opts_t o;
    size_t chunk, cap; /* jobs per SUBMIT; inputs in flight */
    bool adaptive;     /* stream with automatic chunksize */
    double job_us;     /* moving average of job run time */
    size_t read, yielded, failed;
    bool input_done, input_error, cancelled, lost;
    bool input_wait;      /* the input said DP_INPUT_WAIT */
    size_t out;           /* jobs routed, no result yet */
    uint64_t deadline_ms; /* time limit + margin; 0 = none */
    uint64_t quiet_since; /* ms: the last result, or since jobs are out */
    dp_got_t *ring;       /* ordered: slot index % cap */
    size_t ring_cap;      /* slots allocated (>= cap: dp_pool_ring_get) */
    size_t ring_used;     /* slots ever written: 0 .. ring_used-1 */
    size_t fhead, fcount; /* unordered: FIFO in ring */
    dp_wr_t batch;        /* encoded jobs not yet sent */
    uint32_t nbatch;
    uint64_t batch_id; /* first job id in batch: the SUBMIT's seq */
    /* dp_map_next_view: the result given last, kept until the next call */
    dp_got_t cur;
    dp_result_t view; /* cur decoded (when cur.msg) */
    bool viewing;     /* view.value is to be cleared */
    dp_buf_t str;     /* view's strings */
};

static size_t s_clamp(size_t v, size_t lo, size_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int s_slots(const dp_pool_t *p)
{
    /* sysconf reads /sys on every call: once per process is enough */
    static int ncpu;
    int n = dp_pool_slots(p);
    if (n > 0)
        return n;
    if (ncpu <= 0)
        ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    return ncpu > 0 ? ncpu : 1;
}

/* s_adapt: for a stream, size chunks so one takes about
 * DP_CHUNK_TARGET_US of a child's time, from measured job times. */
static void s_adapt(dp_map_t *m, uint64_t elapsed_us)
{
    double us = elapsed_us > 0 ? (double)elapsed_us : 1.0;
    m->job_us = m->job_us > 0 ? m->job_us * 0.9 + us * 0.1 : us;
    size_t limit = m->cap / (2 * (size_t)s_slots(m->pool));
    m->chunk = s_clamp((size_t)(DP_CHUNK_TARGET_US / m->job_us), 1,
                       limit < DP_CHUNK_AUTO_MAX ? limit : DP_CHUNK_AUTO_MAX);
}

static void s_deliver(void *data, dp_got_t *g)
{
    dp_map_t *m = data;
    m->out -= m->out > 0;
    m->quiet_since = m->pool->deliver_ms; /* read once per message */
    int code = dp_got_code(g);
    if (m->adaptive && !code)
        s_adapt(m, dp_got_elapsed_us(g));
    if (code) {
        m->failed++;
        if (m->o.fail_fast && !m->cancelled)
            dp_map_cancel(m);
    }
    size_t at =
        m->o.unordered ? (m->fhead + m->fcount++) % m->cap : g->index % m->cap;
    if (at >= m->ring_used)
        m->ring_used = at + 1;
    if (m->o.unordered) {
        m->ring[at] = *g;
    } else {
        dp_got_t *slot = &m->ring[at];
        if (dp_got_full(slot))
            dp_got_release(slot); /* never two: one result per job */
        *slot = *g;
    }
    g->msg = NULL; /* taken */
    g->made = NULL;
}

static int s_flush(dp_map_t *m)
{
    if (m->nbatch == 0)
        return 0;
    dp_wr_t w;
    dp_wr_init(&w);
    /* the dispatch unit; one SUBMIT may carry several chunks */
    dp_msg_submit(&w, m->batch_id, m->nbatch, m->batch.buf.data,
                  m->batch.buf.len,
                  (uint32_t)(m->chunk < m->nbatch ? m->chunk : m->nbatch));
    dp_wr_reset(&m->batch);
    uint32_t n = m->nbatch;
    m->nbatch = 0;
    return dp_pool_send_submit(m->pool, &w, m->batch_id, n);
}

/* s_local_result: the next input's result, made here: it is never sent.
 * msg: len bytes. */
static int s_local_result(dp_map_t *m, uint64_t id, int code, const char *msg,
                          size_t len)
{
    dp_result_t *r = calloc(1, sizeof *r);
    if (!r)
        return DP_ERR_NOMEM;
    r->id = id;
    r->error = code;
    r->message = strndup(msg, len);
    r->worker = strdup("");
    if (!r->message || !r->worker) {
        dp_result_free(&r);
        return DP_ERR_NOMEM;
    }
    r->index = m->read++;
    m->out++;
    m->pool->deliver_ms = dp_now_ms();
    dp_got_t g = {.made = r, .index = r->index};
    s_deliver(m, &g);
    return 0;
}

/* s_bad_args: a DP_INPUT_BAD input's [code, message] (args) as its
 * result. */
static int s_bad_args(dp_map_t *m, const dp_value_t *args)
{
    const dp_value_t *c = args->type == DP_ARRAY && args->v.a.len == 2
                              ? &args->v.a.items[0]
                              : NULL;
    const dp_value_t *msg = c ? c + 1 : NULL;
    bool str = msg && msg->type == DP_STR;
    return s_local_result(
        m, 0, c && c->type == DP_UINT ? (int)c->v.u : DP_ERR_INVALID,
        str ? msg->v.s.ptr : "bad input",
        str ? msg->v.s.len : strlen("bad input"));
}

/* s_input: the next input from whichever source the map reads: an
 * argument array in *args (borrowed from argv, or made by the input
 * function into own), or a text (dp_map_text) in *text, *len; on
 * DP_INPUT_BAD from a text input, *code. Returns as dp_input_fn. */
static int s_input(dp_map_t *m, dp_value_t *own, const dp_value_t **args,
                   const char **text, size_t *len, int *code)
{
    if (m->argv) { /* encoded from the caller's array: no copy */
        if (m->argi >= m->argc)
            return 0;
        *args = &m->argv[m->argi++];
        return 1;
    }
    if (m->text_in)
        return m->text_in(m->in_ctx, text, len, code);
    *args = own;
    return m->in(m->in_ctx, own);
}

/* s_read_one: take the next input and queue its job. 0 = queued,
 * DP_ERR_EOF = end of input, or an error. */
static int s_read_one(dp_map_t *m)
{
    dp_value_t own = {.type = DP_NIL}; /* dp_map's input fills it */
    const dp_value_t *args = NULL;
    const char *text = NULL;
    size_t len = 0;
    int code = DP_ERR_INVALID;
    int got = s_input(m, &own, &args, &text, &len, &code);
    if (got == DP_INPUT_WAIT) {
        dp_value_clear(&own);
        m->input_wait = true;
        return DP_ERR_EOF; /* for now: the loop stops reading */
    }
    if (got <= 0) {
        m->input_done = true;
        m->input_error = got < 0;
        dp_value_clear(&own);
        return got < 0 ? DP_ERR_INVALID : DP_ERR_EOF;
    }
    /* a result made here takes no job id: a SUBMIT's ids must run one by
     * one from its seq (PROTOCOL.md), so a gap would refuse the batch */
    int rc = 0;
    if (got == DP_INPUT_BAD) { /* args [code, message], or text */
        rc = args ? s_bad_args(m, args)
                  : s_local_result(m, 0, code > 0 ? code : DP_ERR_INVALID,
                                   text ? text : "", text ? len : 0);
        dp_value_clear(&own);
        return rc;
    }
    if (m->lost) { /* nowhere to send it: its line says so */
        dp_value_clear(&own);
        const char *why = "broker lost before this job was sent";
        return s_local_result(m, 0, DP_ERR_BROKER_LOST, why, strlen(why));
    }
    uint64_t id = dp_pool_next_id(m->pool);
    rc = dp_route_add(m->pool, id, s_deliver, m, m->read);
    const dp_job_opts_t *jo = &m->o.job;
    if (!rc) {
        if (m->nbatch == 0)
            m->batch_id = id;
        if (args)
            dp_msg_put_job(
                &m->batch, id, m->type, args,
                jo->timeout > 0 ? (uint32_t)(jo->timeout * 1000 + 0.5) : 0,
                jo->retries >= 0 ? (uint32_t)jo->retries
                                 : DP_RETRIES_DEFAULT_CLIENT);
        else /* straight into the SUBMIT: no argument array built */
            dp_msg_put_job_str(&m->batch, &m->tpl, id, text, len);
        m->nbatch++;
        m->read++;
        if (m->out++ == 0)
            m->quiet_since = dp_now_ms();
    }
    if (own.type != DP_NIL) /* a text or borrowed input has none */
        dp_value_clear(&own);
    /* small chunks still travel together: a SUBMIT holds at least
     * DP_SUBMIT_MIN_JOBS (everything is sent anyway before waiting) */
    size_t submit =
        m->chunk > DP_SUBMIT_MIN_JOBS ? m->chunk : DP_SUBMIT_MIN_JOBS;
    if (!rc && m->nbatch >= submit)
        rc = s_flush(m);
    return rc;
}

/* s_ready: the next result to give into *g (taken from its slot), if
 * there is one. */
static bool s_ready(dp_map_t *m, dp_got_t *g)
{
    dp_got_t *slot = NULL;
    if (m->o.unordered && m->fcount) {
        slot = &m->ring[m->fhead];
        m->fhead = (m->fhead + 1) % m->cap;
        /* empty: start again at slot 0, so a reader that keeps up uses
         * the ring's first slots only (its other pages are never
         * touched: on a VM a first touch costs ~10 us a page) */
        if (--m->fcount == 0)
            m->fhead = 0;
    } else if (!m->o.unordered && m->yielded < m->read) {
        slot = &m->ring[m->yielded % m->cap];
        if (!dp_got_full(slot))
            return false;
    }
    if (!slot)
        return false;
    *g = *slot;
    slot->msg = NULL; /* empty again */
    slot->made = NULL;
    m->yielded++;
    return true;
}

/* s_on_lost: the broker is gone: each job out gets BROKER_LOST now; the
 * inputs still to come get it as they are read (s_read_one). */
static void s_on_lost(dp_map_t *m)
{
    m->lost = true;
    m->nbatch = 0;
    dp_wr_reset(&m->batch);
    dp_pool_fail_routes(m->pool, m, DP_ERR_BROKER_LOST,
                        "broker lost before this job's result came", false);
}

/* s_wait_ms: how long dp_map_next_wait may wait now: until the caller's
 * end (0 = none), or the map's deadline; -1 = forever. */
static long s_wait_ms(const dp_map_t *m, uint64_t end, uint64_t now)
{
    long wait = end ? (end > now ? (long)(end - now) : 0) : -1;
    if (m->deadline_ms && m->out && !m->lost) {
        uint64_t due = m->quiet_since + m->deadline_ms;
        long d = due > now ? (long)(due - now) : 0;
        wait = wait < 0 || d < wait ? d : wait;
    }
    return wait;
}

/* s_check_deadline: fail the jobs out with TIMEOUT when no result has come
 * for the time limit plus the margin. */
static void s_check_deadline(dp_map_t *m, uint64_t now)
{
    if (!m->deadline_ms || !m->out || m->lost ||
        now < m->quiet_since + m->deadline_ms)
        return;
    dp_pool_fail_routes(m->pool, m, DP_ERR_TIMEOUT,
                        "no result within the time limit plus a margin "
                        "(the client's deadline)",
                        true);
    m->quiet_since = now;
}

/* s_wait: wait up to wait_ms (-1 forever) for results, or for the input fd
 * when the input said DP_INPUT_WAIT. */
static int s_wait(dp_map_t *m, long wait_ms)
{
    int fd = m->input_wait ? m->o.input_fd : -1;
    if (m->lost) { /* no pool to wait on: only the input */
        struct pollfd pf = {fd, POLLIN, 0};
        if (fd >= 0 && poll(&pf, 1, (int)wait_ms) < 0 && errno != EINTR)
            return DP_ERR_IO;
        return m->pool->interrupted ? DP_ERR_CANCELLED : 0;
    }
    int rc = dp_pool_pump(m->pool, wait_ms < 0 ? -1 : wait_ms / 1000.0, fd);
    if (rc == DP_ERR_CANCELLED)
        dp_map_cancel(m);
    if (rc == DP_ERR_BROKER_LOST)
        s_on_lost(m);
    return rc == DP_ERR_CANCELLED ? rc : 0;
}

static bool s_has_ready(const dp_map_t *m)
{
    if (m->o.unordered)
        return m->fcount > 0;
    return m->yielded < m->read && dp_got_full(&m->ring[m->yielded % m->cap]);
}

/* s_next: the next result into *g: dp_map_next_wait's work. */
static int s_next(dp_map_t *m, dp_got_t *g, double timeout)
{
    uint64_t end = 0; /* the clock is read only when there is a wait */
    for (;;) {
        if (s_ready(m, g))
            return 0;
        if (m->input_done && m->yielded == m->read)
            return m->lost          ? DP_ERR_BROKER_LOST
                   : m->input_error ? DP_ERR_INVALID
                                    : DP_ERR_EOF;
        /* a stream sends single jobs until the first result tells how
         * long a job takes (then s_adapt sizes the chunks) */
        size_t window = m->adaptive && m->job_us == 0 && !m->lost
                            ? 2 * (size_t)s_slots(m->pool)
                            : m->cap;
        m->input_wait = false;
        /* refill the window a chunk at a time, not one input per result:
         * a few inputs sent as they free up would travel as tiny SUBMITs
         * and tiny chunks (a message per job or two on every hop) */
        size_t out = m->read - m->yielded;
        size_t step = m->chunk < window / 2 ? m->chunk : window / 2;
        bool refill = out == 0 || (out < window && window - out >= step);
        while (refill && !m->input_done && !m->cancelled &&
               m->read - m->yielded < window) {
            if (s_read_one(m))
                break; /* end of input, or an input error (noted) */
        }
        if (m->cancelled)
            m->input_done = true;
        int rc = m->lost ? 0 : s_flush(m);
        if (rc)
            return rc;
        if (s_has_ready(m) || (m->input_done && m->yielded == m->read))
            continue;
        uint64_t now = dp_now_ms();
        if (timeout >= 0 && !end)
            end = now + (uint64_t)(timeout * 1000);
        s_check_deadline(m, now);
        long wait = s_wait_ms(m, end, now);
        if (end && wait == 0)
            return DP_ERR_TIMEOUT;
        rc = s_wait(m, wait);
        if (rc)
            return rc;
    }
}

/* s_view_drop: release the result dp_map_next_view gave last. */
static void s_view_drop(dp_map_t *m)
{
    /* a scalar (isprime's bool) holds no memory: no call for it */
    if (m->viewing && m->view.value.type >= DP_STR)
        dp_value_clear(&m->view.value);
    m->viewing = false;
    if (dp_got_full(&m->cur))
        dp_got_release(&m->cur);
}

int dp_map_next_wait(dp_map_t *m, dp_result_t **out, double timeout)
{
    *out = NULL;
    s_view_drop(m);
    dp_got_t g;
    int rc = s_next(m, &g, timeout);
    return rc ? rc : dp_got_take(&g, &m->pool->lim, out);
}

int dp_map_next_view(dp_map_t *m, dp_result_t **out, double timeout)
{
    *out = NULL;
    s_view_drop(m);
    int rc = s_next(m, &m->cur, timeout);
    if (rc)
        return rc;
    if (m->cur.made) { /* made here: it is the map's already */
        *out = m->cur.made;
        return 0;
    }
    dp_got_view(&m->cur, &m->pool->lim, &m->view, &m->str);
    m->viewing = true;
    *out = &m->view;
    return 0;
}

int dp_map_next(dp_map_t *m, dp_result_t **out)
{
    return dp_map_next_wait(m, out, -1);
}

int dp_map_cancel(dp_map_t *m)
{
    m->cancelled = true;
    m->input_done = true;
    m->nbatch = 0; /* never sent: no results owed */
    dp_wr_reset(&m->batch);
    size_t n = 0;
    dp_pool_t *p = m->pool;
    uint64_t *ids = malloc((p->nroutes + 1) * sizeof *ids);
    if (!ids)
        return DP_ERR_NOMEM;
    for (size_t k = 0; k < p->cap_routes; k++) {
        dp_route_t *r = &p->routes[k];
        if (r->id && !r->tomb && r->data == m)
            ids[n++] = r->id;
    }
    int rc = n ? dp_pool_cancel_ids(p, ids, n) : 0;
    free(ids);
    return rc;
}

static int s_new(dp_pool_t *p, const char *type, const dp_map_opts_t *o,
                 size_t known_len, dp_map_t **out)
{
    dp_map_t *m = calloc(1, sizeof *m);
    if (!m)
        return DP_ERR_NOMEM;
    m->pool = p;
    if (o)
        m->o = *o;
    else
        m->o.job.retries = -1;
    m->cap = m->o.max_inflight ? m->o.max_inflight : DP_MAX_INFLIGHT_DEFAULT;
    /* known length: len / (4 x slots), as Pool.map; a stream starts with
     * one job per chunk and adapts (s_adapt) */
    size_t quarter = 4 * (size_t)s_slots(p);
    m->adaptive = !m->o.chunksize && !known_len;
    m->chunk = m->o.chunksize ? s_clamp(m->o.chunksize, 1, DP_CHUNK_MAX)
               : known_len    ? s_clamp((known_len + quarter - 1) / quarter, 1,
                                        DP_CHUNK_MAX)
                              : 1;
    if (!m->o.max_inflight && m->chunk * quarter > m->cap)
        m->cap = m->chunk * quarter; /* every chunk may be out at once */
    if (m->chunk > m->cap)
        m->cap = m->chunk;
    if (m->o.job.timeout > 0)
        m->deadline_ms =
            (uint64_t)(m->o.job.timeout * 1000) + DP_DEADLINE_MARGIN_MS;
    m->type = strdup(type);
    dp_msg_job_tpl(
        &m->tpl, type,
        m->o.job.timeout > 0 ? (uint32_t)(m->o.job.timeout * 1000 + 0.5) : 0,
        m->o.job.retries >= 0 ? (uint32_t)m->o.job.retries
                              : DP_RETRIES_DEFAULT_CLIENT);
    m->ring = dp_pool_ring_get(p, m->cap, &m->ring_cap);
    dp_wr_init(&m->batch);
    dp_buf_init(&m->str);
    if (!m->type || !m->ring) {
        dp_map_destroy(&m);
        return DP_ERR_NOMEM;
    }
    *out = m;
    return 0;
}

int dp_map(dp_pool_t *p, const char *type, dp_input_fn in, void *in_ctx,
           const dp_map_opts_t *o, dp_map_t **out)
{
    int rc = s_new(p, type, o, 0, out);
    if (!rc) {
        (*out)->in = in;
        (*out)->in_ctx = in_ctx;
    }
    return rc;
}

int dp_map_text(dp_pool_t *p, const char *type, dp_text_fn in, void *in_ctx,
                const dp_map_opts_t *o, dp_map_t **out)
{
    int rc = s_new(p, type, o, 0, out);
    if (!rc) {
        (*out)->text_in = in;
        (*out)->in_ctx = in_ctx;
    }
    return rc;
}

int dp_map_array(dp_pool_t *p, const char *type, const dp_value_t *argv,
                 size_t n, const dp_map_opts_t *o, dp_map_t **out)
{
    int rc = s_new(p, type, o, n, out);
    if (!rc) {
        (*out)->argv = argv;
        (*out)->argc = n;
        /* the routes of the first window at once */
        rc = dp_route_reserve(p, n < (*out)->cap ? n : (*out)->cap);
        if (rc)
            dp_map_destroy(out);
    }
    return rc;
}

void dp_map_stats(const dp_map_t *m, size_t *submitted, size_t *done,
                  size_t *failed)
{
    *submitted = m->read;
    *done = m->yielded;
    *failed = m->failed;
}

void dp_map_destroy(dp_map_t **mp)
{
    if (!mp || !*mp)
        return;
    dp_map_t *m = *mp;
    dp_pool_forget(m->pool, m);
    s_view_drop(m);
    dp_buf_release(&m->str);
    /* only slots that can hold a result: the FIFO's, or the window's */
    size_t from = m->o.unordered ? m->fhead : m->yielded,
           n = m->o.unordered ? m->fcount : m->read - m->yielded;
    for (size_t k = 0; m->ring && k < n; k++)
        dp_got_release(&m->ring[(from + k) % m->cap]);
    dp_pool_ring_put(m->pool, m->ring, m->ring_cap, m->ring_used);
    free(m->type);
    dp_wr_release(&m->batch);
    dp_msg_job_tpl_release(&m->tpl);
    free(m);
    *mp = NULL;
}
