/* dp_msg.c - envelopes, jobs and results on the wire (see PROTOCOL.md). */
#include "dp_msg.h"

#include <stdlib.h>
#include <string.h>

#define S_JOB_FIELDS 5
#define S_RESULT_FIELDS 7
#define S_ENVELOPE_FIELDS 3

const char *dp_cmd_name(int cmd)
{
    switch (cmd) {
#define DP_CMD_NAME(name, num)                                                 \
    case num:                                                                  \
        return #name;
        DP_CMD_MAP(DP_CMD_NAME)
#undef DP_CMD_NAME
    default:
        return "?";
    }
}

int dp_msg_open(const void *data, size_t len, const dp_limits_t *lim, int *cmd,
                dp_rd_t *body)
{
    if (len > lim->max_msg_bytes)
        return DP_ERR_TOO_BIG;
    dp_rd_t r;
    dp_rd_init(&r, data, len, lim);
    uint32_t n;
    uint64_t version, c;
    int rc = dp_rd_array(&r, &n);
    if (rc)
        return rc;
    if (n != S_ENVELOPE_FIELDS)
        return DP_ERR_PROTOCOL;
    if ((rc = dp_rd_uint(&r, &version)))
        return rc;
    if (version != DP_PROTOCOL_VERSION)
        return DP_ERR_VERSION;
    if ((rc = dp_rd_uint(&r, &c)))
        return rc;
    if (c == 0 || c >= DP_CMD_MAX_)
        return DP_ERR_UNKNOWN_CMD;
    /* The body is one value and nothing may follow it. Batches are not
     * walked here: their readers check every byte as they go and call
     * dp_msg_end (walking them twice cost the broker a fifth of its
     * instructions). */
    if (c != DP_CMD_SUBMIT && c != DP_CMD_RESULTS && c != DP_CMD_JOBS) {
        dp_rd_t probe = r;
        if ((rc = dp_rd_skip(&probe)))
            return rc;
        if (dp_rd_left(&probe) != 0)
            return DP_ERR_PROTOCOL;
    }
    *cmd = (int)c;
    *body = r;
    return 0;
}

int dp_msg_end(const dp_rd_t *r)
{
    return dp_rd_left(r) == 0 ? 0 : DP_ERR_PROTOCOL;
}

static int s_u32(dp_rd_t *r, uint32_t *v)
{
    uint64_t u;
    int rc = dp_rd_uint(r, &u);
    if (rc)
        return rc;
    if (u > UINT32_MAX)
        return DP_ERR_PROTOCOL;
    *v = (uint32_t)u;
    return 0;
}

int dp_msg_read_job(dp_rd_t *r, dp_job_t *job)
{
    dp_rd_t save = *r;
    const uint8_t *start = r->p;
    uint32_t n;
    int rc = dp_rd_array(r, &n);
    if (!rc && n != S_JOB_FIELDS)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = dp_rd_uint(r, &job->id);
    if (!rc)
        rc = dp_rd_str(r, &job->type, &job->type_len);
    if (!rc) {
        dp_rd_t args = *r;
        rc = dp_rd_array(&args, &job->nargs);
        if (!rc)
            rc = dp_rd_raw(r, &job->args);
    }
    if (!rc)
        rc = s_u32(r, &job->timeout_ms);
    if (!rc)
        rc = s_u32(r, &job->retries);
    if (rc) {
        *r = save;
        return rc;
    }
    job->raw.ptr = start;
    job->raw.len = (size_t)(r->p - start);
    return 0;
}

int dp_msg_read_dispatch(dp_rd_t *r, uint32_t *attempt, dp_job_t *job)
{
    dp_rd_t save = *r;
    uint32_t two;
    int rc = dp_rd_array(r, &two);
    if (!rc && two != 2)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = s_u32(r, attempt);
    if (!rc)
        rc = dp_msg_read_job(r, job);
    if (rc)
        *r = save;
    return rc;
}

int dp_msg_read_result(dp_rd_t *r, dp_res_t *res)
{
    dp_rd_t save = *r;
    const uint8_t *start = r->p;
    uint32_t n;
    int rc = dp_rd_array(r, &n);
    if (!rc && n != S_RESULT_FIELDS)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = dp_rd_uint(r, &res->id);
    if (!rc)
        rc = s_u32(r, &res->code);
    if (!rc && res->code != 0) {
        /* an error carries its message as a str */
        dp_rd_t m = *r;
        const char *s;
        size_t len;
        rc = dp_rd_str(&m, &s, &len);
    }
    if (!rc)
        rc = dp_rd_raw(r, &res->value);
    if (!rc)
        rc = dp_rd_str(r, &res->worker, &res->worker_len);
    if (!rc)
        rc = s_u32(r, &res->pid);
    if (!rc)
        rc = dp_rd_uint(r, &res->elapsed_us);
    if (!rc)
        rc = s_u32(r, &res->attempt);
    if (rc) {
        *r = save;
        return rc;
    }
    res->raw.ptr = start;
    res->raw.len = (size_t)(r->p - start);
    return 0;
}

void dp_msg_begin(dp_wr_t *w, int cmd)
{
    dp_wr_array(w, S_ENVELOPE_FIELDS);
    dp_wr_uint(w, DP_PROTOCOL_VERSION);
    dp_wr_uint(w, (uint64_t)cmd);
}

void dp_msg_put_job(dp_wr_t *w, uint64_t id, const char *type,
                    const dp_value_t *args, uint32_t timeout_ms,
                    uint32_t retries)
{
    dp_wr_array(w, S_JOB_FIELDS);
    dp_wr_uint(w, id);
    dp_wr_cstr(w, type);
    if (args && args->type == DP_ARRAY)
        dp_wr_value(w, args);
    else
        dp_wr_array(w, 0);
    dp_wr_uint(w, timeout_ms);
    dp_wr_uint(w, retries);
}

void dp_msg_job_tpl(dp_job_tpl_t *t, const char *type, uint32_t timeout_ms,
                    uint32_t retries)
{
    dp_wr_init(&t->mid);
    dp_wr_init(&t->tail);
    dp_wr_cstr(&t->mid, type);
    dp_wr_array(&t->mid, 1); /* args: [arg] */
    dp_wr_uint(&t->tail, timeout_ms);
    dp_wr_uint(&t->tail, retries);
}

void dp_msg_job_tpl_release(dp_job_tpl_t *t)
{
    dp_wr_release(&t->mid);
    dp_wr_release(&t->tail);
}

void dp_msg_put_job_str(dp_wr_t *w, const dp_job_tpl_t *t, uint64_t id,
                        const char *arg, size_t len)
{
    if (t->mid.err || t->tail.err || len > UINT32_MAX) {
        w->err = w->err ? w->err : DP_ERR_NOMEM;
        return;
    }
    size_t mid = t->mid.buf.len, tail = t->tail.buf.len;
    uint8_t *p = dp_wr_room(w, 1 + DP_WIRE_UINT_MAX + mid +
                                   DP_WIRE_STR_HEAD_MAX + len + tail);
    if (!p)
        return;
    uint8_t *start = p;
    *p++ = 0x90 | S_JOB_FIELDS; /* fixarray */
    p += dp_wire_uint_at(p, id);
    memcpy(p, t->mid.buf.data, mid);
    p += mid;
    p += dp_wire_str_head_at(p, (uint32_t)len);
    memcpy(p, arg, len);
    p += len;
    memcpy(p, t->tail.buf.data, tail);
    p += tail;
    w->buf.len += (size_t)(p - start);
}

void dp_msg_put_result(dp_wr_t *w, uint64_t id, uint32_t code,
                       const dp_value_t *value, const char *message,
                       const char *worker, uint32_t pid, uint64_t elapsed_us,
                       uint32_t attempt)
{
    dp_wr_array(w, S_RESULT_FIELDS);
    dp_wr_uint(w, id);
    dp_wr_uint(w, code);
    if (code != 0)
        dp_wr_cstr(w, message ? message : dp_strerror((int)code));
    else if (value)
        dp_wr_value(w, value);
    else
        dp_wr_nil(w);
    dp_wr_cstr(w, worker);
    dp_wr_uint(w, pid);
    dp_wr_uint(w, elapsed_us);
    dp_wr_uint(w, attempt);
}

/* Where a batch's array32 count sits: after 0x93, version, cmd, 0xdd. */
#define S_BATCH_COUNT_AT 4
#define S_BATCH_HEAD (S_BATCH_COUNT_AT + 4)
#define S_ARRAY32 0xdd

static void s_put_be32(dp_wr_t *w, size_t at, uint32_t n)
{
    unsigned char *c = (unsigned char *)w->buf.data + at;
    c[0] = (unsigned char)(n >> 24);
    c[1] = (unsigned char)(n >> 16);
    c[2] = (unsigned char)(n >> 8);
    c[3] = (unsigned char)n;
}

void dp_msg_batch_add(dp_wr_t *w, uint32_t *n, int cmd, const void *raw,
                      size_t len)
{
    if (*n == 0) {
        dp_wr_reset(w);
        dp_msg_begin(w, cmd); /* 3 one-byte fields: version, cmd < 128 */
        const unsigned char head[5] = {S_ARRAY32, 0, 0, 0, 0};
        dp_wr_raw(w, head, sizeof head);
    }
    dp_wr_raw(w, raw, len);
    (*n)++;
}

void dp_msg_batch_close(dp_wr_t *w, uint32_t n)
{
    if (w->err || w->buf.len < S_BATCH_HEAD)
        return;
    s_put_be32(w, S_BATCH_COUNT_AT, n);
}

size_t dp_msg_jobs_begin(dp_wr_t *w, uint32_t chunksize)
{
    dp_msg_begin(w, DP_CMD_JOBS);
    dp_wr_array(w, 2);
    dp_wr_uint(w, chunksize);
    const unsigned char head[5] = {S_ARRAY32, 0, 0, 0, 0};
    dp_wr_raw(w, head, sizeof head);
    return w->buf.len - 4;
}

void dp_msg_jobs_add(dp_wr_t *w, uint32_t attempt, const void *job, size_t len)
{
    dp_wr_array(w, 2);
    dp_wr_uint(w, attempt);
    dp_wr_raw(w, job, len);
}

void dp_msg_jobs_close(dp_wr_t *w, size_t at, uint32_t n)
{
    if (!w->err && at + 4 <= w->buf.len)
        s_put_be32(w, at, n);
}

int dp_msg_read_jobs(dp_rd_t *r, uint32_t *chunksize, uint32_t *n)
{
    uint32_t two;
    int rc = dp_rd_array(r, &two);
    if (!rc && two != 2)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = s_u32(r, chunksize);
    if (!rc && *chunksize == 0)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = dp_rd_array(r, n);
    return rc;
}

void dp_msg_error(dp_wr_t *w, int code, const char *message)
{
    dp_msg_begin(w, DP_CMD_ERROR);
    dp_wr_array(w, 2);
    dp_wr_uint(w, (uint64_t)code);
    dp_wr_cstr(w, message);
}

void dp_msg_empty(dp_wr_t *w, int cmd)
{
    dp_msg_begin(w, cmd);
    dp_wr_array(w, 0);
}

/* s_res_fill: res's fields into out, its worker name copied to str
 * (room for it and its NUL), its message to msg (room for the value's
 * bytes and a NUL), or, msg NULL, to a new string. */
static int s_res_fill(const dp_res_t *res, const dp_limits_t *lim,
                      dp_result_t *out, char *str, char *msg)
{
    memset(out, 0, sizeof *out);
    out->id = res->id;
    out->error = (int)res->code;
    out->pid = (int)res->pid;
    out->elapsed_us = res->elapsed_us;
    out->attempts = res->attempt;
    out->worker = str;
    memcpy(str, res->worker, res->worker_len);
    str[res->worker_len] = '\0';
    dp_rd_t rd;
    dp_rd_init(&rd, res->value.ptr, res->value.len, lim);
    if (res->code == 0)
        return dp_rd_value(&rd, &out->value);
    const char *s;
    size_t len;
    int rc = dp_rd_str(&rd, &s, &len);
    if (rc)
        return rc;
    out->message = msg ? msg : malloc(len + 1);
    if (!out->message)
        return DP_ERR_NOMEM;
    memcpy(out->message, s, len);
    out->message[len] = '\0';
    return 0;
}

int dp_res_to_result(const dp_res_t *res, const dp_limits_t *lim,
                     dp_result_t **out)
{
    /* one allocation holds the result and its worker name (freed with
     * it by dp_result_free): a malloc and a free less per result */
    dp_result_t *r = malloc(sizeof *r + res->worker_len + 1);
    if (!r)
        return DP_ERR_NOMEM;
    int rc = s_res_fill(res, lim, r, (char *)(r + 1), NULL);
    if (rc) {
        dp_result_free(&r);
        return rc;
    }
    *out = r;
    return 0;
}

int dp_res_view(const dp_res_t *res, const dp_limits_t *lim, dp_result_t *out,
                dp_buf_t *str)
{
    size_t room = res->worker_len + 1 + (res->code ? res->value.len + 1 : 0);
    str->len = 0;
    if (dp_buf_reserve(str, room))
        return DP_ERR_NOMEM;
    char *msg = res->code ? str->data + res->worker_len + 1 : NULL;
    int rc = s_res_fill(res, lim, out, str->data, msg);
    if (rc)
        dp_value_clear(&out->value);
    return rc;
}

void dp_result_free(dp_result_t **r)
{
    if (!r || !*r)
        return;
    free((*r)->message);
    if ((*r)->worker != (char *)(*r + 1)) /* else part of *r */
        free((*r)->worker);
    dp_value_clear(&(*r)->value);
    free(*r);
    *r = NULL;
}

/* ---- typed messages: one writer and one reader each ---- */

#define S_HELLO_FIELDS 2
#define S_HELLO_SESSION_FIELDS 4 /* name, pid, session, flags */
#define S_WELCOME_FIELDS 7
#define S_WELCOME_MIN_FIELDS 2 /* peer_no, heartbeat_ms: what a peer needs */
#define S_READY_FIELDS 5
#define S_CREDIT_FIELDS 2
#define S_ACCEPTED_FIELDS 2
#define S_ERROR_FIELDS 2
#define S_REFUSAL_FIELDS 4
#define S_SUBMIT_FIELDS 3
#define S_SHUTDOWN_FIELDS 1
#define S_STAT_WORKER_FIELDS 7 /* dp_stat_worker_t: name ... last_seen_ms */

/* s_fields: an array of exactly n (or at least n with at_least). */
static int s_fields(dp_rd_t *r, uint32_t n, bool at_least, uint32_t *got)
{
    uint32_t k;
    int rc = dp_rd_array(r, &k);
    if (!rc && (at_least ? k < n : k != n))
        rc = DP_ERR_PROTOCOL;
    if (got)
        *got = k;
    return rc;
}

void dp_msg_hello(dp_wr_t *w, const dp_hello_t *m)
{
    dp_msg_begin(w, DP_CMD_HELLO);
    dp_wr_array(w, m->has_session ? S_HELLO_SESSION_FIELDS : S_HELLO_FIELDS);
    dp_wr_cstr(w, m->name);
    dp_wr_uint(w, m->pid);
    if (m->has_session) {
        dp_wr_bin(w, m->session, DP_SESSION_BYTES);
        dp_wr_uint(w, m->flags);
    }
}

int dp_msg_read_hello(dp_rd_t *r, dp_hello_t *m)
{
    uint32_t n;
    memset(m, 0, sizeof *m);
    int rc = s_fields(r, S_HELLO_FIELDS, true, &n);
    if (!rc && n != S_HELLO_FIELDS && n != S_HELLO_SESSION_FIELDS)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = dp_rd_str(r, &m->name, &m->name_len);
    if (!rc)
        rc = dp_rd_uint(r, &m->pid);
    if (!rc && n == S_HELLO_SESSION_FIELDS) {
        const char *sess;
        size_t len;
        rc = dp_rd_strbin(r, &sess, &len);
        if (!rc && len != DP_SESSION_BYTES)
            rc = DP_ERR_PROTOCOL;
        if (!rc)
            rc = dp_rd_uint(r, &m->flags);
        if (!rc) {
            memcpy(m->session, sess, DP_SESSION_BYTES);
            m->has_session = true;
        }
    }
    return rc;
}

void dp_msg_welcome(dp_wr_t *w, const dp_welcome_t *m)
{
    dp_msg_begin(w, DP_CMD_WELCOME);
    dp_wr_array(w, S_WELCOME_FIELDS);
    dp_wr_uint(w, m->peer_no);
    dp_wr_uint(w, m->heartbeat_ms);
    dp_wr_uint(w, m->max_msg);
    dp_wr_uint(w, m->cpu_slots);
    dp_wr_uint(w, m->io_slots);
    dp_wr_uint(w, m->resumed);
    dp_wr_uint(w, m->journal);
}

int dp_msg_read_welcome(dp_rd_t *r, dp_welcome_t *m)
{
    uint32_t n;
    memset(m, 0, sizeof *m);
    int rc = s_fields(r, S_WELCOME_MIN_FIELDS, true, &n);
    uint64_t *v[S_WELCOME_FIELDS] = {
        &m->peer_no,  &m->heartbeat_ms, &m->max_msg, &m->cpu_slots,
        &m->io_slots, &m->resumed,      &m->journal};
    for (uint32_t k = 0; !rc && k < n; k++)
        rc = k < S_WELCOME_FIELDS ? dp_rd_uint(r, v[k]) : dp_rd_skip(r);
    return rc;
}

void dp_msg_ready(dp_wr_t *w, const char *name, uint32_t pid, uint32_t cpu,
                  uint32_t io, const char *const *types, size_t ntypes)
{
    dp_msg_begin(w, DP_CMD_READY);
    dp_wr_array(w, S_READY_FIELDS);
    dp_wr_cstr(w, name);
    dp_wr_uint(w, pid);
    dp_wr_uint(w, cpu);
    dp_wr_uint(w, io);
    dp_wr_array(w, (uint32_t)ntypes);
    for (size_t k = 0; k < ntypes; k++)
        dp_wr_cstr(w, types[k]);
}

int dp_msg_read_ready(dp_rd_t *r, dp_ready_t *m)
{
    int rc = s_fields(r, S_READY_FIELDS, false, NULL);
    if (!rc)
        rc = dp_rd_str(r, &m->name, &m->name_len);
    if (!rc)
        rc = dp_rd_uint(r, &m->pid);
    if (!rc)
        rc = dp_rd_uint(r, &m->cpu_slots);
    if (!rc)
        rc = dp_rd_uint(r, &m->io_slots);
    if (!rc)
        rc = dp_rd_array(r, &m->ntypes);
    for (uint32_t k = 0; !rc && k < m->ntypes; k++) {
        const char *s;
        size_t len;
        rc = dp_rd_str(r, &s, &len);
    }
    return rc;
}

void dp_msg_credit(dp_wr_t *w, uint32_t cpu, uint32_t io)
{
    dp_msg_begin(w, DP_CMD_CREDIT);
    dp_wr_array(w, S_CREDIT_FIELDS);
    dp_wr_uint(w, cpu);
    dp_wr_uint(w, io);
}

int dp_msg_read_credit(dp_rd_t *r, uint64_t *cpu, uint64_t *io)
{
    int rc = s_fields(r, S_CREDIT_FIELDS, false, NULL);
    if (!rc)
        rc = dp_rd_uint(r, cpu);
    if (!rc)
        rc = dp_rd_uint(r, io);
    return rc;
}

void dp_msg_accepted(dp_wr_t *w, uint64_t seq, uint32_t accepted)
{
    dp_msg_begin(w, DP_CMD_ACCEPTED);
    dp_wr_array(w, S_ACCEPTED_FIELDS);
    dp_wr_uint(w, seq);
    dp_wr_uint(w, accepted);
}

int dp_msg_read_accepted(dp_rd_t *r, uint64_t *seq, uint64_t *accepted)
{
    int rc = s_fields(r, S_ACCEPTED_FIELDS, false, NULL);
    if (!rc)
        rc = dp_rd_uint(r, seq);
    if (!rc)
        rc = dp_rd_uint(r, accepted);
    return rc;
}

/* s_ids: a message whose body is [id...]. */
static void s_ids(dp_wr_t *w, int cmd, const uint64_t *ids, size_t n)
{
    dp_msg_begin(w, cmd);
    dp_wr_array(w, (uint32_t)n);
    for (size_t k = 0; k < n; k++)
        dp_wr_uint(w, ids[k]);
}

void dp_msg_ack(dp_wr_t *w, const uint64_t *ids, size_t n)
{
    s_ids(w, DP_CMD_ACK, ids, n);
}

int dp_msg_read_ack(dp_rd_t *r, uint32_t *n)
{
    int rc = dp_rd_array(r, n);
    if (!rc && *n > DP_ACK_MAX_IDS)
        rc = DP_ERR_TOO_BIG;
    return rc;
}

void dp_msg_batches(dp_wr_t *w, bool one, uint64_t batch)
{
    dp_msg_begin(w, DP_CMD_BATCHES);
    dp_wr_array(w, one ? 1 : 0);
    if (one)
        dp_wr_uint(w, batch);
}

int dp_msg_read_batches(dp_rd_t *r, bool *one, uint64_t *batch)
{
    uint32_t n;
    int rc = dp_rd_array(r, &n);
    if (!rc && n > 1)
        rc = DP_ERR_PROTOCOL;
    *one = !rc && n == 1;
    *batch = 0;
    if (*one)
        rc = dp_rd_uint(r, batch);
    return rc;
}

void dp_msg_batch_cmd(dp_wr_t *w, int cmd, uint64_t batch)
{
    dp_msg_begin(w, cmd);
    dp_wr_array(w, 1);
    dp_wr_uint(w, batch);
}

int dp_msg_read_batch_cmd(dp_rd_t *r, uint64_t *batch)
{
    int rc = s_fields(r, 1, false, NULL);
    return rc ? rc : dp_rd_uint(r, batch);
}

void dp_msg_batch_list(dp_wr_t *w, const dp_batch_row_t *rows, size_t n)
{
    dp_msg_begin(w, DP_CMD_BATCH_LIST);
    dp_wr_array(w, (uint32_t)n);
    for (size_t k = 0; k < n; k++) {
        const dp_batch_row_t *x = &rows[k];
        dp_wr_array(w, DP_BATCH_ROW_FIELDS);
        dp_wr_uint(w, x->id);
        dp_wr_cstr(w, x->name ? x->name : "");
        dp_wr_uint(w, x->created_ms);
        dp_wr_uint(w, x->ttl_ms);
        dp_wr_uint(w, x->total);
        dp_wr_uint(w, x->queued);
        dp_wr_uint(w, x->running);
        dp_wr_uint(w, x->done);
        dp_wr_uint(w, x->failed);
        dp_wr_uint(w, x->readers);
    }
}

int dp_msg_read_batch_list(dp_rd_t *r, uint32_t *n)
{
    int rc = dp_rd_array(r, n);
    if (!rc && *n > DP_BATCH_LIST_MAX)
        rc = DP_ERR_TOO_BIG;
    return rc;
}

int dp_msg_read_batch_row(dp_rd_t *r, dp_batch_row_t *x)
{
    uint32_t got;
    int rc = s_fields(r, DP_BATCH_ROW_FIELDS, true, &got);
    uint64_t *u[] = {&x->created_ms, &x->ttl_ms,  &x->total,
                     &x->queued,     &x->running, &x->done,
                     &x->failed,     &x->readers};
    if (!rc)
        rc = dp_rd_uint(r, &x->id);
    if (!rc)
        rc = dp_rd_str(r, &x->name, &x->name_len);
    for (size_t k = 0; !rc && k < sizeof u / sizeof u[0]; k++)
        rc = dp_rd_uint(r, u[k]);
    for (uint32_t k = DP_BATCH_ROW_FIELDS; !rc && k < got; k++)
        rc = dp_rd_skip(r); /* fields a later broker adds */
    return rc;
}

void dp_msg_cancel(dp_wr_t *w, const uint64_t *ids, size_t n)
{
    s_ids(w, DP_CMD_CANCEL, ids, n);
}

int dp_msg_read_cancel(dp_rd_t *r, uint32_t *n)
{
    return dp_rd_array(r, n);
}

int dp_msg_read_cancel_id(dp_rd_t *r, uint64_t *id)
{
    return dp_rd_uint(r, id);
}

void dp_msg_refusal(dp_wr_t *w, int code, const char *message, uint64_t seq,
                    uint32_t count)
{
    dp_msg_begin(w, DP_CMD_ERROR);
    dp_wr_array(w, S_REFUSAL_FIELDS);
    dp_wr_uint(w, (uint64_t)code);
    dp_wr_cstr(w, message);
    dp_wr_uint(w, seq);
    dp_wr_uint(w, count);
}

int dp_msg_read_error(dp_rd_t *r, dp_error_msg_t *m)
{
    uint32_t n;
    memset(m, 0, sizeof *m);
    int rc = dp_rd_array(r, &n);
    if (!rc && n != S_ERROR_FIELDS && n != S_REFUSAL_FIELDS)
        rc = DP_ERR_PROTOCOL;
    if (!rc)
        rc = dp_rd_uint(r, &m->code);
    if (!rc)
        rc = dp_rd_str(r, &m->message, &m->message_len);
    if (!rc && n == S_REFUSAL_FIELDS) {
        m->refusal = true;
        rc = dp_rd_uint(r, &m->seq);
        if (!rc)
            rc = dp_rd_uint(r, &m->count);
    }
    return rc;
}

void dp_msg_shutdown(dp_wr_t *w, const char *reason)
{
    dp_msg_begin(w, DP_CMD_SHUTDOWN);
    dp_wr_array(w, S_SHUTDOWN_FIELDS);
    dp_wr_cstr(w, reason);
}

/* s_status_rows: the counters of a STATUS_REPLY map, key then value. */
static void s_status_rows(dp_wr_t *w, const dp_stat_t *rows, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        dp_wr_cstr(w, rows[k].key);
        dp_wr_uint(w, rows[k].value);
    }
}

void dp_msg_status_reply(dp_wr_t *w, const dp_stat_t *rows, size_t n)
{
    dp_msg_begin(w, DP_CMD_STATUS_REPLY);
    dp_wr_map(w, (uint32_t)n);
    s_status_rows(w, rows, n);
}

/* s_stat_uint: one key: uint pair of a map. */
static void s_stat_uint(dp_wr_t *w, const char *key, uint64_t value)
{
    dp_wr_cstr(w, key);
    dp_wr_uint(w, value);
}

void dp_msg_status_reply_workers(dp_wr_t *w, const dp_stat_t *rows, size_t n,
                                 const dp_stat_worker_t *workers,
                                 size_t nworkers)
{
    dp_msg_begin(w, DP_CMD_STATUS_REPLY);
    dp_wr_map(w, (uint32_t)n + 1);
    s_status_rows(w, rows, n);
    dp_wr_cstr(w, "worker_list");
    dp_wr_array(w, (uint32_t)nworkers);
    for (size_t k = 0; k < nworkers; k++) {
        const dp_stat_worker_t *x = &workers[k];
        dp_wr_map(w, S_STAT_WORKER_FIELDS);
        dp_wr_cstr(w, "name");
        dp_wr_cstr(w, x->name);
        s_stat_uint(w, "pid", x->pid);
        s_stat_uint(w, "cpu_slots", x->cpu_slots);
        s_stat_uint(w, "io_slots", x->io_slots);
        s_stat_uint(w, "running", x->running);
        s_stat_uint(w, "done", x->done);
        s_stat_uint(w, "last_seen_ms", x->last_seen_ms);
    }
}

void dp_msg_submit(dp_wr_t *w, uint64_t seq, uint32_t njobs, const void *jobs,
                   size_t len, uint32_t chunk)
{
    dp_msg_begin(w, DP_CMD_SUBMIT);
    dp_wr_array(w, S_SUBMIT_FIELDS);
    dp_wr_uint(w, seq);
    dp_wr_array(w, njobs);
    dp_wr_raw(w, jobs, len);
    dp_wr_uint(w, chunk);
}

int dp_msg_peek_submit(const dp_rd_t *r, uint64_t *seq, uint32_t *njobs)
{
    dp_rd_t p = *r;
    int rc = s_fields(&p, S_SUBMIT_FIELDS, false, NULL);
    if (!rc)
        rc = dp_rd_uint(&p, seq);
    if (!rc && dp_rd_array(&p, njobs))
        *njobs = 0; /* dp_msg_read_submit says what is wrong */
    return rc;
}

int dp_msg_read_submit(dp_rd_t *r, uint64_t *seq, uint32_t *njobs,
                       uint64_t *chunk, dp_rd_t *jobs)
{
    int rc = s_fields(r, S_SUBMIT_FIELDS, false, NULL);
    if (!rc)
        rc = dp_rd_uint(r, seq);
    dp_rd_t at = *r;
    if (!rc)
        rc = dp_rd_skip(r);
    if (!rc)
        rc = dp_rd_uint(r, chunk);
    if (!rc)
        rc = dp_msg_end(r);
    if (!rc)
        rc = dp_rd_array(&at, njobs);
    if (!rc)
        *jobs = at;
    return rc;
}

int dp_msg_read_submit_jobs(dp_rd_t *r, uint64_t *seq, uint32_t *njobs)
{
    dp_rd_t p = *r;
    int rc = s_fields(&p, S_SUBMIT_FIELDS, false, NULL);
    if (!rc)
        rc = dp_rd_uint(&p, seq);
    if (!rc)
        rc = dp_rd_array(&p, njobs);
    if (!rc)
        *r = p;
    return rc;
}

int dp_msg_read_submit_end(dp_rd_t *r, uint64_t *chunk)
{
    int rc = dp_rd_uint(r, chunk);
    return rc ? rc : dp_msg_end(r);
}

void dp_msg_results(dp_wr_t *w, uint32_t n, const void *raw, size_t len)
{
    dp_msg_begin(w, DP_CMD_RESULTS);
    dp_wr_array(w, n);
    dp_wr_raw(w, raw, len);
}

int dp_msg_read_results(dp_rd_t *r, uint32_t *n)
{
    return dp_rd_array(r, n);
}

/* ---- a forwarded result under another worker name ---- */

void dp_msg_put_result_as(dp_wr_t *w, const dp_res_t *res, const char *worker)
{
    dp_wr_array(w, S_RESULT_FIELDS);
    dp_wr_uint(w, res->id);
    dp_wr_uint(w, res->code);
    dp_wr_raw(w, res->value.ptr, res->value.len); /* value or message */
    dp_wr_cstr(w, worker);
    dp_wr_uint(w, res->pid);
    dp_wr_uint(w, res->elapsed_us);
    dp_wr_uint(w, res->attempt);
}
