/* dp_jstate.c - the live state of a journal: two chained hash tables
 * (batches by id, jobs by id) of malloc'ed nodes. Rules in dp_jstate.h. */
#include "dp_jstate.h"

#include <stdlib.h>
#include <string.h>

#include "dpool.h"

typedef struct s_job {
    struct s_job *next;
    dp_jstate_job_t j;
    uint8_t *raw, *result; /* owned copies behind j.raw and j.result */
} s_job_t;

typedef struct s_batch {
    struct s_batch *next;
    dp_jr_batch_t b;
    uint8_t *session; /* owned copy behind b.session, b.owner, b.name */
} s_batch_t;

typedef struct {
    void **b; /* s_job_t * or s_batch_t * chains */
    size_t n, nb;
} s_tab_t;

struct dp_jstate {
    s_tab_t jobs, batches;
    uint64_t bytes;
};

static size_t s_slot(const s_tab_t *t, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (t->nb - 1);
}

static int s_tab_init(s_tab_t *t)
{
    t->b = calloc(DP_JSTATE_BUCKETS, sizeof *t->b);
    t->nb = DP_JSTATE_BUCKETS;
    t->n = 0;
    return t->b ? 0 : DP_ERR_NOMEM;
}

dp_jstate_t *dp_jstate_new(void)
{
    dp_jstate_t *s = calloc(1, sizeof *s);
    if (!s || s_tab_init(&s->jobs) || s_tab_init(&s->batches)) {
        dp_jstate_destroy(&s);
        return NULL;
    }
    return s;
}

/* ---- jobs ---- */

static s_job_t **s_job_ref(dp_jstate_t *s, uint64_t id)
{
    s_job_t **pp = (s_job_t **)&s->jobs.b[s_slot(&s->jobs, id)];
    while (*pp && (*pp)->j.id != id)
        pp = &(*pp)->next;
    return pp;
}

static void s_job_free(dp_jstate_t *s, s_job_t *x)
{
    s->bytes -= x->j.raw_len + x->j.result_len;
    free(x->raw);
    free(x->result);
    free(x);
}

static void s_job_del(dp_jstate_t *s, uint64_t id)
{
    s_job_t **pp = s_job_ref(s, id), *x = *pp;
    if (!x)
        return;
    *pp = x->next;
    s->jobs.n--;
    s_job_free(s, x);
}

/* s_grow_jobs: double the job buckets when chains get long (best effort:
 * on failure the chains just stay longer). */
static void s_grow_jobs(dp_jstate_t *s)
{
    s_tab_t t = {calloc(s->jobs.nb * 2, sizeof(void *)), s->jobs.n,
                 s->jobs.nb * 2};
    if (!t.b)
        return;
    for (size_t k = 0; k < s->jobs.nb; k++) {
        for (s_job_t *x = s->jobs.b[k], *nx; x; x = nx) {
            nx = x->next;
            size_t at = s_slot(&t, x->j.id);
            x->next = t.b[at];
            t.b[at] = x;
        }
    }
    free(s->jobs.b);
    s->jobs = t;
}

static uint8_t *s_copy(const uint8_t *p, size_t len)
{
    uint8_t *c = malloc(len ? len : 1);
    if (c && len)
        memcpy(c, p, len);
    return c;
}

static int s_on_job(void *data, const dp_jr_job_t *jr)
{
    dp_jstate_t *s = data;
    s_job_del(s, jr->id);
    s_job_t *x = calloc(1, sizeof *x);
    uint8_t *raw = x ? s_copy(jr->raw, jr->raw_len) : NULL;
    if (!raw) {
        free(x);
        return DP_ERR_NOMEM;
    }
    x->raw = raw;
    x->j = (dp_jstate_job_t){.batch = jr->batch,
                             .id = jr->id,
                             .chunk = jr->chunk,
                             .raw = raw,
                             .raw_len = jr->raw_len};
    s_job_t **head = (s_job_t **)&s->jobs.b[s_slot(&s->jobs, jr->id)];
    x->next = *head;
    *head = x;
    s->bytes += jr->raw_len;
    if (++s->jobs.n > s->jobs.nb)
        s_grow_jobs(s);
    return 0;
}

static int s_on_dispatch(void *data, uint64_t id, uint32_t attempt)
{
    s_job_t *x = *s_job_ref(data, id);
    if (x)
        x->j.attempt = attempt;
    return 0;
}

static int s_on_result(void *data, uint64_t id, const uint8_t *raw, size_t len)
{
    dp_jstate_t *s = data;
    s_job_t *x = *s_job_ref(s, id);
    if (!x)
        return 0; /* taken or forgotten already */
    uint8_t *c = s_copy(raw, len);
    if (!c)
        return DP_ERR_NOMEM;
    s->bytes -= x->j.result_len;
    free(x->result);
    x->result = c;
    x->j.result = c;
    x->j.result_len = len;
    x->j.has_result = true;
    s->bytes += len;
    return 0;
}

static int s_on_taken(void *data, uint64_t id)
{
    s_job_del(data, id);
    return 0;
}

static int s_on_cancel(void *data, uint64_t id)
{
    s_job_t *x = *s_job_ref(data, id);
    if (x)
        x->j.cancelled = true;
    return 0;
}

/* ---- batches ---- */

static s_batch_t **s_batch_ref(dp_jstate_t *s, uint64_t id)
{
    s_batch_t **pp = (s_batch_t **)&s->batches.b[s_slot(&s->batches, id)];
    while (*pp && (*pp)->b.batch != id)
        pp = &(*pp)->next;
    return pp;
}

static int s_on_batch(void *data, const dp_jr_batch_t *b)
{
    dp_jstate_t *s = data;
    /* one owned copy of session, owner and name, one after the other */
    size_t n = b->session_len + b->owner_len + b->name_len;
    uint8_t *sess = malloc(n ? n : 1);
    if (!sess)
        return DP_ERR_NOMEM;
    if (b->session_len)
        memcpy(sess, b->session, b->session_len);
    if (b->owner_len)
        memcpy(sess + b->session_len, b->owner, b->owner_len);
    if (b->name_len)
        memcpy(sess + b->session_len + b->owner_len, b->name, b->name_len);
    s_batch_t **pp = s_batch_ref(s, b->batch), *x = *pp;
    if (!x) {
        if (!(x = calloc(1, sizeof *x))) {
            free(sess);
            return DP_ERR_NOMEM;
        }
        *pp = x;
        s->batches.n++;
    }
    free(x->session);
    x->session = sess;
    x->b = *b;
    x->b.session = sess;
    x->b.owner = (const char *)sess + b->session_len;
    x->b.name = x->b.owner + b->owner_len;
    return 0;
}

static int s_on_forget(void *data, uint64_t batch)
{
    dp_jstate_t *s = data;
    s_batch_t **pp = s_batch_ref(s, batch), *x = *pp;
    if (x) {
        *pp = x->next;
        s->batches.n--;
        free(x->session);
        free(x);
    }
    for (size_t k = 0; k < s->jobs.nb; k++) {
        for (s_job_t **jp = (s_job_t **)&s->jobs.b[k]; *jp;) {
            s_job_t *j = *jp;
            if (j->j.batch != batch) {
                jp = &j->next;
                continue;
            }
            *jp = j->next;
            s->jobs.n--;
            s_job_free(s, j);
        }
    }
    return 0;
}

dp_journal_replay_t dp_jstate_replay(dp_jstate_t *s)
{
    return (dp_journal_replay_t){s_on_batch,  s_on_job,   s_on_dispatch,
                                 s_on_result, s_on_taken, s_on_cancel,
                                 s_on_forget, s};
}

/* ---- walking ---- */

int dp_jstate_each_batch(const dp_jstate_t *s,
                         int (*f)(void *data, const dp_jr_batch_t *b),
                         void *data)
{
    for (size_t k = 0; k < s->batches.nb; k++)
        for (const s_batch_t *x = s->batches.b[k]; x; x = x->next) {
            int rc = f(data, &x->b);
            if (rc)
                return rc;
        }
    return 0;
}

int dp_jstate_each_job(const dp_jstate_t *s,
                       int (*f)(void *data, const dp_jstate_job_t *j),
                       void *data)
{
    for (size_t k = 0; k < s->jobs.nb; k++)
        for (const s_job_t *x = s->jobs.b[k]; x; x = x->next) {
            int rc = f(data, &x->j);
            if (rc)
                return rc;
        }
    return 0;
}

static int s_dump_batch(void *data, const dp_jr_batch_t *b)
{
    return dp_journal_batch(data, b);
}

static int s_dump_job(void *data, const dp_jstate_job_t *x)
{
    dp_journal_t *j = data;
    dp_jr_job_t jr = {x->batch, x->id, x->chunk, x->raw, x->raw_len};
    int rc = dp_journal_job(j, &jr);
    if (!rc && x->attempt)
        rc = dp_journal_dispatch(j, x->id, x->attempt);
    if (!rc && x->cancelled)
        rc = dp_journal_cancel(j, x->id);
    if (!rc && x->has_result)
        rc = dp_journal_result(j, x->id, x->result, x->result_len);
    return rc;
}

int dp_jstate_dump(void *data, dp_journal_t *j)
{
    const dp_jstate_t *s = data;
    int rc = dp_jstate_each_batch(s, s_dump_batch, j);
    return rc ? rc : dp_jstate_each_job(s, s_dump_job, j);
}

void dp_jstate_counts(const dp_jstate_t *s, size_t *batches, size_t *jobs,
                      uint64_t *bytes)
{
    *batches = s->batches.n;
    *jobs = s->jobs.n;
    *bytes = s->bytes;
}

void dp_jstate_destroy(dp_jstate_t **sp)
{
    if (!sp || !*sp)
        return;
    dp_jstate_t *s = *sp;
    for (size_t k = 0; s->jobs.b && k < s->jobs.nb; k++)
        for (s_job_t *x = s->jobs.b[k], *nx; x; x = nx) {
            nx = x->next;
            s_job_free(s, x);
        }
    for (size_t k = 0; s->batches.b && k < s->batches.nb; k++)
        for (s_batch_t *x = s->batches.b[k], *nx; x; x = nx) {
            nx = x->next;
            free(x->session);
            free(x);
        }
    free(s->jobs.b);
    free(s->batches.b);
    free(s);
    *sp = NULL;
}
