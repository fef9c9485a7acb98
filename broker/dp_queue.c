/* dp_queue.c - job records, id index, round-robin queues, leases. */
#include "dp_queue.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define S_INITIAL_BUCKETS 1024u

const char *const dp_jobstate_names[] = {"queued", "leased", "orphan", "kept"};

int dp_queue_init(dp_queue_t *q)
{
    memset(q, 0, sizeof *q);
    dp_slab_init(&q->slab, sizeof(dp_bjob_t), DP_QUEUE_SLAB_JOBS);
    q->buckets = calloc(S_INITIAL_BUCKETS, sizeof *q->buckets);
    if (!q->buckets)
        return DP_ERR_NOMEM;
    q->nbuckets = S_INITIAL_BUCKETS;
    return 0;
}

void dp_bbuf_unref(dp_bbuf_t *b)
{
    if (b && --b->refs == 0) {
        zmq_msg_close(&b->msg);
        free(b);
    }
}

void dp_queue_release(dp_queue_t *q)
{
    for (size_t k = 0; q->buckets && k < q->nbuckets; k++)
        for (dp_bjob_t *j = q->buckets[k]; j; j = j->hnext) {
            dp_bbuf_unref(j->buf);
            free(j->result);
        }
    dp_slab_release(&q->slab);
    free(q->buckets);
    free(q->heap);
    memset(q, 0, sizeof *q);
}

/* s_shrink: no job is left: give back the slabs, index and lease heap
 * beyond what an ordinary batch uses (DP_QUEUE_KEEP_SLABS), so a flood's
 * memory goes back (see malloc_trim in the broker). The index is empty:
 * every job left its bucket. */
static void s_shrink(dp_queue_t *q)
{
    dp_slab_shrink(&q->slab, DP_QUEUE_KEEP_SLABS);
    if (q->nbuckets > DP_QUEUE_KEEP_SLABS * DP_QUEUE_SLAB_JOBS) {
        dp_bjob_t **b = calloc(S_INITIAL_BUCKETS, sizeof *b);
        if (b) {
            free(q->buckets);
            q->buckets = b;
            q->nbuckets = S_INITIAL_BUCKETS;
        }
    }
    if (q->heapcap > DP_QUEUE_KEEP_SLABS * DP_QUEUE_SLAB_JOBS) {
        free(q->heap);
        q->heap = NULL;
        q->heapcap = 0;
    }
}

static size_t s_slot(const dp_queue_t *q, uint64_t id)
{
    /* ids are client_no << 32 | seq: mix both halves */
    uint64_t h = id * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 32) & (q->nbuckets - 1);
}

dp_bjob_t *dp_queue_find(const dp_queue_t *q, uint64_t id)
{
    for (dp_bjob_t *j = q->buckets[s_slot(q, id)]; j; j = j->hnext)
        if (j->id == id)
            return j;
    return NULL;
}

static void s_grow(dp_queue_t *q)
{
    size_t n = q->nbuckets * 2;
    dp_bjob_t **b = calloc(n, sizeof *b);
    if (!b)
        return; /* keep the longer chains; still correct */
    dp_bjob_t **old = q->buckets;
    size_t oldn = q->nbuckets;
    q->buckets = b;
    q->nbuckets = n;
    for (size_t k = 0; k < oldn; k++) {
        for (dp_bjob_t *j = old[k], *nx; j; j = nx) {
            nx = j->hnext;
            size_t s = s_slot(q, j->id);
            j->hnext = b[s];
            b[s] = j;
        }
    }
    free(old);
}

static void s_unindex(dp_queue_t *q, dp_bjob_t *j)
{
    dp_bjob_t **pp = &q->buckets[s_slot(q, j->id)];
    while (*pp && *pp != j)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = j->hnext;
}

static void s_push(dp_jlist_t *l, dp_bjob_t *j, bool head)
{
    DP_LIST_PUSH(l, j, head);
}

static void s_unlink(dp_jlist_t *l, dp_bjob_t *j)
{
    DP_LIST_UNLINK(l, j);
}

static void s_ring_add(dp_queue_t *q, dp_qclient_t *c, int cls)
{
    if (c->in_ring[cls] || c->paused || c->queue[cls].n == 0)
        return;
    c->in_ring[cls] = true;
    dp_qclient_t *r = q->ring[cls];
    if (!r) {
        c->rr_prev[cls] = c->rr_next[cls] = c;
        q->ring[cls] = c;
        return;
    }
    /* insert just before the next to serve: served last this round */
    c->rr_next[cls] = r;
    c->rr_prev[cls] = r->rr_prev[cls];
    r->rr_prev[cls]->rr_next[cls] = c;
    r->rr_prev[cls] = c;
}

static void s_ring_del(dp_queue_t *q, dp_qclient_t *c, int cls)
{
    if (!c->in_ring[cls])
        return;
    c->in_ring[cls] = false;
    if (c->rr_next[cls] == c) {
        q->ring[cls] = NULL;
    } else {
        c->rr_prev[cls]->rr_next[cls] = c->rr_next[cls];
        c->rr_next[cls]->rr_prev[cls] = c->rr_prev[cls];
        if (q->ring[cls] == c)
            q->ring[cls] = c->rr_next[cls];
    }
    c->rr_prev[cls] = c->rr_next[cls] = NULL;
}

void dp_queue_client_pause(dp_queue_t *q, dp_qclient_t *c, bool paused)
{
    c->paused = paused;
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        if (paused)
            s_ring_del(q, c, cls);
        else
            s_ring_add(q, c, cls);
    }
}

void dp_queue_client_remove(dp_queue_t *q, dp_qclient_t *c)
{
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++)
        s_ring_del(q, c, cls);
}

int dp_queue_add(dp_queue_t *q, dp_qclient_t *c, uint64_t id, dp_class_t cls,
                 uint8_t retries, dp_bbuf_t *buf, const uint8_t *raw,
                 size_t raw_len, dp_bjob_t **out)
{
    if (dp_queue_find(q, id))
        return DP_ERR_INVALID;
    dp_bjob_t *j = dp_slab_alloc(&q->slab);
    if (!j)
        return DP_ERR_NOMEM;
    j->id = id;
    j->chunk = 1;
    j->buf = buf;
    buf->refs++;
    j->raw = raw;
    j->raw_len = (uint32_t)raw_len;
    j->client = c;
    j->cls = (uint8_t)cls;
    j->retries = retries;
    j->state = DP_JOB_QUEUED;
    size_t s = s_slot(q, id);
    j->hnext = q->buckets[s];
    q->buckets[s] = j;
    if (++q->njobs > q->nbuckets)
        s_grow(q);
    s_push(&c->queue[cls], j, false);
    q->queued[cls]++;
    c->njobs++;
    c->bytes += DP_QUEUE_JOB_COST(raw_len);
    q->bytes += DP_QUEUE_JOB_COST(raw_len);
    s_ring_add(q, c, cls);
    if (out)
        *out = j;
    return 0;
}

dp_bjob_t *dp_queue_next(dp_queue_t *q, dp_class_t cls, dp_qworker_t *w)
{
    dp_bjob_t *j = NULL;
    return dp_queue_take(q, cls, w, 1, &j) ? j : NULL;
}

const dp_bjob_t *dp_queue_peek(const dp_queue_t *q, dp_class_t cls)
{
    return q->ring[cls] ? q->ring[cls]->queue[cls].head : NULL;
}

size_t dp_queue_take(dp_queue_t *q, dp_class_t cls, dp_qworker_t *w, size_t max,
                     dp_bjob_t **out)
{
    dp_qclient_t *c = q->ring[cls];
    size_t n = 0;
    if (!c)
        return 0;
    while (n < max && c->queue[cls].head) {
        dp_bjob_t *j = c->queue[cls].head;
        s_unlink(&c->queue[cls], j);
        q->queued[cls]--;
        j->state = DP_JOB_LEASED;
        j->worker = w;
        j->attempts++;
        c->running++;
        s_push(&w->leases, j, false);
        w->inflight[cls]++;
        out[n++] = j;
    }
    q->ring[cls] = c->rr_next[cls];
    if (c->queue[cls].n == 0)
        s_ring_del(q, c, cls);
    return n;
}

/* ---- the lease heap: a binary min-heap on deadline_ms ---- */

static void s_heap_set(dp_queue_t *q, size_t k, dp_bjob_t *j)
{
    q->heap[k] = j;
    j->hidx = (uint32_t)(k + 1);
}

static void s_heap_up(dp_queue_t *q, size_t k)
{
    dp_bjob_t *j = q->heap[k];
    while (k > 0) {
        size_t up = (k - 1) / 2;
        if (q->heap[up]->deadline_ms <= j->deadline_ms)
            break;
        s_heap_set(q, k, q->heap[up]);
        k = up;
    }
    s_heap_set(q, k, j);
}

static void s_heap_down(dp_queue_t *q, size_t k)
{
    dp_bjob_t *j = q->heap[k];
    for (;;) {
        size_t c = 2 * k + 1;
        if (c >= q->nheap)
            break;
        if (c + 1 < q->nheap &&
            q->heap[c + 1]->deadline_ms < q->heap[c]->deadline_ms)
            c++;
        if (j->deadline_ms <= q->heap[c]->deadline_ms)
            break;
        s_heap_set(q, k, q->heap[c]);
        k = c;
    }
    s_heap_set(q, k, j);
}

static void s_heap_del(dp_queue_t *q, dp_bjob_t *j)
{
    if (!j->hidx)
        return;
    size_t k = j->hidx - 1;
    j->hidx = 0;
    dp_bjob_t *last = q->heap[--q->nheap];
    if (last == j)
        return;
    s_heap_set(q, k, last);
    s_heap_up(q, k);
    s_heap_down(q, last->hidx - 1);
}

int dp_queue_arm(dp_queue_t *q, dp_bjob_t *j, uint64_t deadline_ms)
{
    assert(j->state != DP_JOB_QUEUED);
    if (j->hidx) {
        j->deadline_ms = deadline_ms;
        s_heap_up(q, j->hidx - 1);
        s_heap_down(q, j->hidx - 1);
        return 0;
    }
    if (q->nheap == q->heapcap) {
        size_t cap = q->heapcap ? q->heapcap * 2 : S_INITIAL_BUCKETS;
        dp_bjob_t **h = realloc(q->heap, cap * sizeof *h);
        if (!h)
            return DP_ERR_NOMEM;
        q->heap = h;
        q->heapcap = cap;
    }
    j->deadline_ms = deadline_ms;
    q->heap[q->nheap++] = j;
    s_heap_up(q, q->nheap - 1);
    return 0;
}

dp_bjob_t *dp_queue_earliest(const dp_queue_t *q)
{
    return q->nheap ? q->heap[0] : NULL;
}

static void s_unlease(dp_queue_t *q, dp_bjob_t *j)
{
    s_heap_del(q, j);
    dp_qworker_t *w = j->worker;
    s_unlink(&w->leases, j);
    w->inflight[j->cls]--;
    j->worker = NULL;
}

void dp_queue_requeue(dp_queue_t *q, dp_bjob_t *j)
{
    assert(j->state == DP_JOB_LEASED);
    s_unlease(q, j);
    j->client->running--;
    j->state = DP_JOB_QUEUED;
    s_push(&j->client->queue[j->cls], j, true);
    q->queued[j->cls]++;
    s_ring_add(q, j->client, j->cls);
}

void dp_queue_orphan(dp_queue_t *q, dp_bjob_t *j)
{
    (void)q;
    assert(j->state == DP_JOB_LEASED);
    j->client->running--;
    j->client->njobs--;
    j->client->bytes -= DP_QUEUE_JOB_COST(j->raw_len);
    j->client = NULL;
    j->state = DP_JOB_ORPHAN;
}

/* s_leave: j leaves its queue or lease (QUEUED or LEASED) and its
 * client's counts. */
static void s_leave(dp_queue_t *q, dp_bjob_t *j)
{
    if (j->state == DP_JOB_QUEUED) {
        s_unlink(&j->client->queue[j->cls], j);
        q->queued[j->cls]--;
        if (j->client->queue[j->cls].n == 0)
            s_ring_del(q, j->client, j->cls);
    } else {
        j->client->running--;
        s_unlease(q, j);
    }
    j->client->njobs--;
    j->client->bytes -= DP_QUEUE_JOB_COST(j->raw_len);
}

void dp_queue_keep(dp_queue_t *q, dp_bjob_t *j, uint8_t *result, size_t len)
{
    assert(j->state == DP_JOB_QUEUED || j->state == DP_JOB_LEASED);
    s_leave(q, j);
    j->state = DP_JOB_KEPT;
    j->result = result;
    j->result_len = (uint32_t)len;
    s_push(&j->client->kept, j, false);
    j->client->kept_bytes += DP_QUEUE_JOB_COST(j->raw_len) + len;
}

void dp_queue_free_job(dp_queue_t *q, dp_bjob_t *j)
{
    switch (j->state) {
    case DP_JOB_QUEUED:
    case DP_JOB_LEASED:
        s_leave(q, j);
        break;
    case DP_JOB_ORPHAN:
        s_unlease(q, j);
        break;
    case DP_JOB_KEPT:
        s_unlink(&j->client->kept, j);
        j->client->kept_bytes -= DP_QUEUE_JOB_COST(j->raw_len) + j->result_len;
        break;
    }
    q->bytes -= DP_QUEUE_JOB_COST(j->raw_len);
    s_unindex(q, j);
    q->njobs--;
    dp_bbuf_unref(j->buf);
    free(j->result);
    dp_slab_free(&q->slab, j);
    if (q->njobs == 0)
        s_shrink(q);
}

uint64_t dp_queue_credit(const dp_qworker_t *w, dp_class_t cls, size_t chunk,
                         bool lookahead, long nchunks)
{
    uint64_t slots = w->capacity[cls];
    uint64_t allowed = slots * chunk;
    if (lookahead && nchunks >= 0) {
        allowed += (uint64_t)nchunks * chunk;
    } else if (lookahead) {
        uint64_t per_slot = chunk;
        double avg = w->avg_us[cls];
        if (avg > 0 && avg * (double)chunk < DP_QUEUE_LOOKAHEAD_US) {
            double want = DP_QUEUE_LOOKAHEAD_US / avg;
            per_slot = want > DP_QUEUE_LOOKAHEAD_MAX_JOBS
                           ? DP_QUEUE_LOOKAHEAD_MAX_JOBS
                           : (uint64_t)want;
            if (per_slot < chunk)
                per_slot = chunk;
        }
        allowed += slots * per_slot;
    }
    if (slots == 0)
        return 0;
    uint64_t held = (uint64_t)w->inflight[cls] + w->stuck[cls];
    return held >= allowed ? 0 : allowed - held;
}
