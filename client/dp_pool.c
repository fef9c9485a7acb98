/*
 * dp_pool.c - a client's connection to a broker: HELLO/WELCOME, the I/O
 * thread (send, receive, heartbeats, broker loss), and result routing.
 *
 * Sessions (PROTOCOL.md, "Sessions"): a pool with a broker of its own
 * names a random session in HELLO with the ACKS flag. Its I/O thread
 * keeps each SUBMIT until the broker has it (ACCEPTED, a refusal, or a
 * result of one of its jobs), acknowledges every result it receives (one ACK
 * per receiving turn), and when the broker is lost (silent, or it says it does
 * not know us) it says HELLO with the same session on a fresh socket until
 * --connect-timeout: on a WELCOME that resumed the session it sends the kept
 * SUBMITs again and goes on (the broker sends the results we have not
 * acknowledged again; ids we no longer wait for are dropped by the routing);
 * otherwise the pool is lost (BROKER_LOST). The embedded pool's broker lives
 * and dies with it: no session there.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_clock.h"
#include "dp_keys.h"
#include "dp_msg.h"
#include "dp_pool_int.h"
#include "dp_zsock.h"

#define S_ROUTES_MIN 1024u
#define S_NAME_MAX 64
#define S_UNDECODED "the result could not be decoded"

/* A RESULTS message as received, read in place by the caller's thread;
 * each result routed from it holds a reference (refs), the walk one. */
struct dp_rmsg {
    zmq_msg_t msg; /* the bytes, from a socket ... */
    char *own;     /* ... or from a local pool (dp_pool_wire): no ZeroMQ
                      call is made for it (cli_lazy.c loads libzmq only
                      when a socket is used) */
    dp_rd_t rd;    /* the body, at the first result */
    uint32_t n;    /* results in it */
    size_t refs;
};

/* A message being handled by the I/O thread: a socket's (zm) or a
 * local pool's (own, taken by whoever keeps it). */
typedef struct {
    zmq_msg_t *zm;
    char *own;
    const uint8_t *data;
    size_t len;
} s_body_t;

static void s_rmsg_free(dp_rmsg_t *rm)
{
    if (rm->own)
        free(rm->own);
    else
        zmq_msg_close(&rm->msg);
    free(rm);
}

static void s_rmsg_unref(dp_rmsg_t *rm)
{
    if (rm && --rm->refs == 0)
        s_rmsg_free(rm);
}

/* ---- routed results ---- */

void dp_got_release(dp_got_t *g)
{
    s_rmsg_unref(g->msg);
    dp_result_free(&g->made);
    g->msg = NULL;
}

/* s_made: a result made here: error code with msg, for input index. */
static dp_result_t *s_made(uint64_t id, size_t index, int code, const char *msg)
{
    dp_result_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->id = id;
    r->index = index;
    r->error = code;
    r->message = strdup(msg);
    r->worker = strdup("");
    r->value = dp_nil();
    if (!r->message || !r->worker)
        dp_result_free(&r);
    return r;
}

int dp_got_take(dp_got_t *g, const dp_limits_t *lim, dp_result_t **out)
{
    *out = g->made;
    g->made = NULL;
    if (g->msg) {
        int rc = dp_res_to_result(&g->res, lim, out);
        if (rc) /* its one result says so */
            *out = s_made(g->res.id, g->index, rc, S_UNDECODED);
    }
    if (*out)
        (*out)->index = g->index;
    dp_got_release(g);
    return *out ? 0 : DP_ERR_NOMEM;
}

void dp_got_view(const dp_got_t *g, const dp_limits_t *lim, dp_result_t *view,
                 dp_buf_t *str)
{
    int rc = dp_res_view(&g->res, lim, view, str);
    if (rc) { /* its one result says so */
        *view = (dp_result_t){.id = g->res.id, .error = rc};
        view->message = (char *)S_UNDECODED;
        view->worker = (char *)"";
    }
    view->index = g->index;
}

/* ---- routes: open addressing, linear probing, tombstones ---- */

/* s_hash: the id itself, counted from base (p->route_base). Ids are ours,
 * given one by one (dp_pool_next_id), so the jobs in flight sit in
 * consecutive slots: a batch touches only the pages its own ids span (a
 * scattering hash touched the whole table: on a VM a first-touched page
 * costs ~10 us) and walks them in order; from base, every batch that
 * starts on an empty table starts at slot 0, on pages already touched. */
static size_t s_hash(uint64_t id, uint64_t base, size_t cap)
{
    return (size_t)(id - base) & (cap - 1);
}

/* s_put_route: the slot for id from its home on (the first empty or
 * tombstone), keeping the longest distance from home so far: a lookup
 * goes no further (s_route_find), so an id that is not there (a stale or
 * a lying broker's) costs a few probes, not the walk of a run of
 * consecutive ids. */
static dp_route_t *s_put_route(dp_route_t *r, size_t cap, uint64_t base,
                               uint64_t id, size_t *probe_max)
{
    size_t home = s_hash(id, base, cap), s = home;
    while (r[s].id && !r[s].tomb)
        s = (s + 1) & (cap - 1);
    size_t dist = (s - home) & (cap - 1);
    if (dist > *probe_max)
        *probe_max = dist;
    return &r[s];
}

/* s_routes_grow: room for `more` routes beyond the live ones, at most a
 * quarter full after it (so the next rehash is a quarter of the table's
 * additions away, however many tombstones come); mostly tombstones: at
 * the same size. */
static int s_routes_grow(dp_pool_t *p, size_t more)
{
    size_t cap = p->cap_routes ? p->cap_routes : S_ROUTES_MIN;
    while ((p->nroutes + more) * 4 > cap)
        cap *= 2;
    dp_route_t *r = calloc(cap, sizeof *r);
    if (!r)
        return DP_ERR_NOMEM;
    size_t probe_max = 0;
    for (size_t k = 0; k < p->cap_routes; k++) {
        dp_route_t *o = &p->routes[k];
        if (o->id && !o->tomb)
            *s_put_route(r, cap, p->route_base, o->id, &probe_max) = *o;
    }
    free(p->routes);
    p->routes = r;
    p->cap_routes = cap;
    p->used_routes = p->nroutes;
    p->probe_max = probe_max;
    return 0;
}

int dp_route_add(dp_pool_t *p, uint64_t id, dp_deliver_fn deliver, void *data,
                 size_t index)
{
    if (p->nroutes == 0) { /* the next batch's ids start at slot 0 */
        p->route_base = id;
        p->probe_max = 0;
    }
    if ((p->used_routes + 1) * 2 > p->cap_routes && s_routes_grow(p, 1))
        return DP_ERR_NOMEM;
    dp_route_t *r =
        s_put_route(p->routes, p->cap_routes, p->route_base, id, &p->probe_max);
    if (!r->id)
        p->used_routes++;
    *r = (dp_route_t){id, deliver, data, index, false};
    p->nroutes++;
    return 0;
}

static dp_route_t *s_route_find(dp_pool_t *p, uint64_t id)
{
    if (!p->cap_routes)
        return NULL;
    size_t s = s_hash(id, p->route_base, p->cap_routes);
    for (size_t k = 0; k <= p->probe_max && p->routes[s].id; k++) {
        if (p->routes[s].id == id && !p->routes[s].tomb)
            return &p->routes[s];
        s = (s + 1) & (p->cap_routes - 1);
    }
    return NULL;
}

int dp_route_reserve(dp_pool_t *p, size_t n)
{
    if ((p->used_routes + n) * 2 <= p->cap_routes)
        return 0;
    return s_routes_grow(p, n);
}

void dp_route_del(dp_pool_t *p, uint64_t id)
{
    dp_route_t *r = s_route_find(p, id);
    if (!r)
        return;
    r->tomb = true;
    r->data = NULL;
    p->nroutes--;
    /* a tombstone that ends its probe run (the next slot is empty) marks
     * nothing: empty it and the tombstones before it. Results come back
     * roughly in id order, so most go at once and the table is rarely
     * rehashed (callgrind: the rehash's calloc cost the CLI 128
     * instructions per job) */
    size_t mask = p->cap_routes - 1, s = (size_t)(r - p->routes);
    if (p->routes[(s + 1) & mask].id)
        return;
    while (p->routes[s].id && p->routes[s].tomb) {
        p->routes[s] = (dp_route_t){0};
        p->used_routes--;
        s = (s - 1) & mask;
    }
}

dp_got_t *dp_pool_ring_get(dp_pool_t *p, size_t n, size_t *cap)
{
    if (p->spare_ring && p->spare_cap >= n) {
        dp_got_t *r = p->spare_ring;
        *cap = p->spare_cap;
        p->spare_ring = NULL;
        memset(r, 0, p->spare_used * sizeof *r); /* the rest is untouched */
        return r;
    }
    *cap = n;
    return calloc(n, sizeof(dp_got_t));
}

void dp_pool_ring_put(dp_pool_t *p, dp_got_t *ring, size_t cap, size_t used)
{
    if (!ring)
        return;
    if (p->spare_ring && p->spare_cap >= cap) {
        free(ring);
        return;
    }
    free(p->spare_ring);
    p->spare_ring = ring;
    p->spare_cap = cap;
    p->spare_used = used;
}

void dp_pool_forget(dp_pool_t *p, void *owner)
{
    if (!p->nroutes) /* all answered: no walk over the whole table */
        return;
    size_t n = 0;
    uint64_t *ids = malloc((p->nroutes + 1) * sizeof *ids);
    for (size_t k = 0; k < p->cap_routes; k++) {
        dp_route_t *r = &p->routes[k];
        if (r->id && !r->tomb && r->data == owner) {
            if (ids)
                ids[n++] = r->id;
            r->tomb = true;
            r->data = NULL;
            p->nroutes--;
        }
    }
    if (n)
        dp_pool_cancel_ids(p, ids, n);
    free(ids);
}

void dp_pool_fail_routes(dp_pool_t *p, void *owner, int code, const char *msg,
                         bool cancel)
{
    size_t n = 0;
    uint64_t *ids = malloc((p->nroutes + 1) * sizeof *ids);
    p->deliver_ms = dp_now_ms();
    for (size_t k = 0; k < p->cap_routes; k++) {
        dp_route_t *rt = &p->routes[k];
        if (!rt->id || rt->tomb || rt->data != owner)
            continue;
        dp_got_t g = {.made = s_made(rt->id, rt->index, code, msg),
                      .index = rt->index};
        if (ids)
            ids[n++] = rt->id;
        rt->tomb = true;
        rt->data = NULL;
        p->nroutes--;
        if (!g.made)
            continue; /* out of memory: that input goes without a line */
        rt->deliver(owner, &g);
    }
    if (n && cancel)
        dp_pool_cancel_ids(p, ids, n);
    free(ids);
}

/* ---- caller side ---- */

uint64_t dp_pool_next_id(dp_pool_t *p)
{
    return (uint64_t)p->client_no << 32 | ++p->next_seq;
}

static void s_wake(dp_pool_t *p)
{
    uint64_t one = 1;
    ssize_t rc = write(p->wake_fd, &one, sizeof one);
    (void)rc;
}

int dp_pool_send(dp_pool_t *p, dp_wr_t *w)
{
    return dp_pool_send_submit(p, w, 0, 0);
}

int dp_pool_send_submit(dp_pool_t *p, dp_wr_t *w, uint64_t seq, uint32_t njobs)
{
    dp_item_t *it = calloc(1, sizeof *it);
    if (!it)
        return DP_ERR_NOMEM;
    it->submit = njobs > 0;
    it->seq = seq;
    it->njobs = njobs;
    int rc = dp_wr_take(w, &it->data, &it->len);
    if (rc) {
        free(it);
        return rc;
    }
    pthread_mutex_lock(&p->mu);
    if (p->out_tail)
        p->out_tail->next = it;
    else
        p->out_head = it;
    p->out_tail = it;
    pthread_mutex_unlock(&p->mu);
    s_wake(p);
    return 0;
}

int dp_pool_cancel_ids(dp_pool_t *p, const uint64_t *ids, size_t n)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_cancel(&w, ids, n);
    return dp_pool_send(p, &w);
}

void dp_pool_interrupt(dp_pool_t *p)
{
    p->interrupted = 1;
    uint64_t one = 1;
    ssize_t rc = write(p->wake_fd, &one, sizeof one);
    (void)rc;
}

static void s_deadline(struct timespec *ts, double timeout)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    double whole;
    double frac = modf(timeout, &whole);
    ts->tv_sec += (time_t)whole;
    ts->tv_nsec += (long)(frac * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* s_route: result g (its id: id) to the owner of its route; a result
 * nobody waits for (a cancelled job's late answer, one had already) is
 * released. */
static void s_route(dp_pool_t *p, uint64_t id, dp_got_t *g)
{
    dp_route_t *rt = s_route_find(p, id);
    if (!rt) {
        dp_got_release(g);
        return;
    }
    void *data = rt->data;
    dp_deliver_fn deliver = rt->deliver;
    g->index = rt->index;
    if (g->made)
        g->made->index = rt->index;
    dp_route_del(p, id);
    deliver(data, g);
}

/* s_route_msg: every result of a RESULTS message to its owner: each takes
 * a reference on the message, read in place (nothing decoded here). */
static void s_route_msg(dp_pool_t *p, dp_rmsg_t *rm)
{
    p->last_result_ms = p->deliver_ms = dp_now_ms(); /* once a message */
    rm->refs = 1;                                    /* the walk's own */
    for (uint32_t k = 0; k < rm->n; k++) {
        dp_got_t g = {.msg = rm};
        if (dp_msg_read_result(&rm->rd, &g.res))
            break; /* the results before it still count */
        rm->refs++;
        s_route(p, g.res.id, &g);
    }
    s_rmsg_unref(rm);
}

int dp_pool_pump(dp_pool_t *p, double timeout, int fd)
{
    struct timespec ts;
    if (timeout >= 0)
        s_deadline(&ts, timeout);
    pthread_mutex_lock(&p->mu);
    p->watch_fd = fd;
    p->fd_ready = false;
    pthread_mutex_unlock(&p->mu);
    if (fd >= 0)
        s_wake(p); /* the I/O thread starts watching fd */
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while (!p->in_head && !p->lost && !p->interrupted && !p->fd_ready) {
        if (timeout < 0) {
            pthread_cond_wait(&p->cv, &p->mu);
        } else if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
            rc = DP_ERR_TIMEOUT;
            break;
        }
    }
    dp_item_t *in = p->in_head;
    p->in_head = p->in_tail = NULL;
    bool lost = p->lost;
    p->watch_fd = -1;
    pthread_mutex_unlock(&p->mu);
    for (dp_item_t *nx; in; in = nx) {
        nx = in->next;
        if (in->msg) {
            s_route_msg(p, in->msg);
        } else {
            dp_got_t g = {.made = in->res};
            p->last_result_ms = p->deliver_ms = dp_now_ms();
            s_route(p, in->res->id, &g);
        }
        free(in);
        rc = 0;
    }
    if (p->interrupted)
        return DP_ERR_CANCELLED;
    return lost ? DP_ERR_BROKER_LOST : rc; /* routed results stay given */
}

/* ---- I/O thread ---- */

/* s_inbox_add: a made result r (taken) or a RESULTS message rm (taken)
 * onto the list head..tail for the caller's thread. */
static void s_inbox_add(dp_item_t **head, dp_item_t **tail, dp_result_t *r,
                        dp_rmsg_t *rm)
{
    dp_item_t *it = calloc(1, sizeof *it);
    if (!it) {
        dp_result_free(&r);
        if (rm)
            s_rmsg_free(rm);
        return;
    }
    it->res = r;
    it->msg = rm;
    if (*tail)
        (*tail)->next = it;
    else
        *head = it;
    *tail = it;
}

/* s_inbox_push: hand a list of results to the caller's thread. */
static void s_inbox_push(dp_pool_t *p, dp_item_t *head, dp_item_t *tail)
{
    if (!head)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->in_tail)
        p->in_tail->next = head;
    else
        p->in_head = head;
    p->in_tail = tail;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void s_set_lost(dp_pool_t *p, int code)
{
    pthread_mutex_lock(&p->mu);
    if (!p->lost) {
        p->lost = true;
        p->lost_code = code;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* s_broker_lost: the broker is gone or does not know us: a session tries
 * to resume (s_io_main), any other pool is lost. */
static void s_broker_lost(dp_pool_t *p)
{
    if (p->resumable)
        p->resume = true;
    else
        s_set_lost(p, DP_ERR_BROKER_LOST);
}

/* ---- the unaccepted SUBMITs and the ACKs of a session ---- */

/* s_unacc_drop: forget kept SUBMIT it (prev is the one before it). */
static void s_unacc_drop(dp_pool_t *p, dp_item_t *prev, dp_item_t *it)
{
    if (prev)
        prev->next = it->next;
    else
        p->unacc_head = it->next;
    if (p->unacc_tail == it)
        p->unacc_tail = prev;
    free(it->data);
    free(it);
}

/* s_unacc_seq: the broker has the SUBMIT of seq (ACCEPTED, refused). */
static void s_unacc_seq(dp_pool_t *p, uint64_t seq)
{
    for (dp_item_t *prev = NULL, *it = p->unacc_head; it;
         prev = it, it = it->next) {
        if (it->seq == seq) {
            s_unacc_drop(p, prev, it);
            return;
        }
    }
}

/* s_unacc_answered: job id has a result, so the broker took its SUBMIT
 * (a broker answers no job of a SUBMIT it did not take, and with a
 * journal dispatches none before storing it): the kept copy is not
 * needed again. This also covers an ACCEPTED the broker dropped because
 * its queue to us was full. Results come roughly in order: the SUBMIT is
 * near the head. */
static void s_unacc_answered(dp_pool_t *p, uint64_t id)
{
    for (dp_item_t *prev = NULL, *it = p->unacc_head; it;
         prev = it, it = it->next) {
        if (id >= it->seq && id - it->seq < it->njobs) {
            s_unacc_drop(p, prev, it);
            return;
        }
    }
}

/* s_ack_add: id's result arrived: acknowledge it this turn. */
static void s_ack_add(dp_pool_t *p, uint64_t id)
{
    if (p->nacks == 0)
        p->ack_due_ms = dp_now_ms() + DP_ACK_COALESCE_MS;
    if (p->nacks == p->capacks) {
        size_t cap = p->capacks ? 2 * p->capacks : DP_ACKS_MIN;
        uint64_t *v = realloc(p->acks, cap * sizeof *v);
        if (!v)
            return; /* unacknowledged: the broker sends it again at most */
        p->acks = v;
        p->capacks = cap;
    }
    p->acks[p->nacks++] = id;
}

/* s_send_acks: one ACK (or a few, DP_ACK_MAX_IDS each) for the turn. */
static void s_send_acks(dp_pool_t *p)
{
    for (size_t at = 0; at < p->nacks; at += DP_ACK_MAX_IDS) {
        size_t n =
            p->nacks - at < DP_ACK_MAX_IDS ? p->nacks - at : DP_ACK_MAX_IDS;
        dp_wr_t w;
        dp_wr_init(&w);
        dp_msg_ack(&w, p->acks + at, n);
        dp_zsend(p->sock, NULL, 0, &w, 0);
    }
    p->nacks = 0;
}

/* s_on_results: hand a RESULTS message (body, whose contents are taken;
 * r reads its body) to the caller's thread whole: it reads the results
 * in place. A session first notes each id: ACK it, and its SUBMIT is
 * taken. */
static void s_on_results(dp_pool_t *p, s_body_t *body, dp_rd_t *r)
{
    uint32_t n;
    if (dp_msg_read_results(r, &n))
        return;
    size_t at = (size_t)(r->p - body->data);
    if (p->resumable) {
        dp_rd_t ids = *r;
        dp_res_t res;
        for (uint32_t k = 0; k < n && !dp_msg_read_result(&ids, &res); k++) {
            s_ack_add(p, res.id);
            s_unacc_answered(p, res.id);
        }
    }
    dp_rmsg_t *rm = malloc(sizeof *rm);
    if (!rm)
        return;          /* out of memory: the map's deadline fails them */
    rm->own = body->own; /* no copy of the bytes */
    body->own = NULL;
    if (!rm->own) {
        zmq_msg_init(&rm->msg);
        zmq_msg_move(&rm->msg, body->zm);
    }
    const uint8_t *data =
        rm->own ? (const uint8_t *)rm->own : zmq_msg_data(&rm->msg); /* moved */
    dp_rd_init(&rm->rd, data + at, body->len - at, &p->lim);
    rm->n = n;
    rm->refs = 0;
    dp_item_t *head = NULL, *tail = NULL;
    s_inbox_add(&head, &tail, NULL, rm);
    s_inbox_push(p, head, tail);
}

/* s_on_error: ERROR [code, message] or, for a refused SUBMIT, [code,
 * message, seq, count]: its jobs (ids seq .. seq+count-1, as clients
 * number batches by their first id) each get the error as their result. */
static void s_on_error(dp_pool_t *p, dp_rd_t *r)
{
    dp_error_msg_t e;
    if (dp_msg_read_error(r, &e))
        return;
    if (e.code == DP_ERR_BROKER_LOST || e.code == DP_ERR_UNKNOWN_PEER) {
        s_broker_lost(p);
        return;
    }
    if (!e.refusal || e.count > DP_SUBMIT_MAX_JOBS)
        return;
    s_unacc_seq(p, e.seq);
    dp_item_t *head = NULL, *tail = NULL;
    char *msg = strndup(e.message, e.message_len);
    for (uint64_t k = 0; msg && k < e.count; k++) {
        dp_result_t *res = s_made(e.seq + k, 0, (int)e.code, msg);
        if (!res)
            break;
        s_inbox_add(&head, &tail, res, NULL);
    }
    free(msg);
    s_inbox_push(p, head, tail);
}

static void s_on_message(dp_pool_t *p, s_body_t *body)
{
    int cmd;
    dp_rd_t r;
    if (dp_msg_open(body->data, body->len, &p->lim, &cmd, &r))
        return;
    if (cmd == DP_CMD_RESULTS) {
        s_on_results(p, body, &r);
    } else if (cmd == DP_CMD_ACCEPTED) {
        uint64_t seq, n;
        if (p->resumable && dp_msg_read_accepted(&r, &seq, &n) == 0)
            s_unacc_seq(p, seq);
    } else if (cmd == DP_CMD_STATUS_REPLY) {
        dp_value_t v;
        if (dp_rd_value(&r, &v) == 0) {
            pthread_mutex_lock(&p->mu);
            dp_value_clear(&p->status);
            p->status = v;
            p->status_ready = true;
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
        }
    } else if (cmd == DP_CMD_ERROR) {
        s_on_error(p, &r);
    }
}

/* s_on_zmsg: a message received on the socket (closed by the caller). */
static void s_on_zmsg(dp_pool_t *p, zmq_msg_t *m)
{
    s_body_t b = {m, NULL, zmq_msg_data(m), zmq_msg_size(m)};
    s_on_message(p, &b);
}

void dp_pool_wire(dp_pool_t *p, char *data, size_t len)
{
    s_body_t b = {NULL, data, (const uint8_t *)data, len};
    s_on_message(p, &b);
    free(b.own); /* unless kept */
}

/* s_send_copy: send data[0..len) and keep it. */
static void s_send_copy(dp_pool_t *p, const char *data, size_t len)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_wr_raw(&w, data, len);
    dp_zsend(p->sock, NULL, 0, &w, 0);
}

static void s_send_outbox(dp_pool_t *p)
{
    dp_item_t *it = dp_pool_io_outbox(p);
    for (dp_item_t *nx; it; it = nx) {
        nx = it->next;
        if (p->resumable && it->submit) { /* kept until the broker has it */
            s_send_copy(p, it->data, it->len);
            it->next = NULL;
            if (p->unacc_tail)
                p->unacc_tail->next = it;
            else
                p->unacc_head = it;
            p->unacc_tail = it;
            continue;
        }
        dp_wr_t w;
        dp_wr_init(&w);
        w.buf.data = it->data; /* hand the bytes over without a copy */
        w.buf.len = w.buf.cap = it->len;
        dp_zsend(p->sock, NULL, 0, &w, 0);
        free(it);
    }
}

/* ---- connecting: sockets, HELLO, WELCOME ---- */

/* s_socket: a fresh DEALER connected to the endpoint (CURVE when keys
 * are set) in p->sock, the old one closed. 0, DP_ERR_IO, DP_ERR_INVALID. */
static int s_socket(dp_pool_t *p)
{
    if (p->sock)
        zmq_close(p->sock);
    p->sock = zmq_socket(p->ctx, ZMQ_DEALER);
    if (!p->sock)
        return DP_ERR_IO;
    int zero = 0, ivl = DP_RECONNECT_IVL_MS, ivl_max = DP_RECONNECT_IVL_MAX_MS;
    if (p->tmpdir)
        ivl = DP_RECONNECT_IVL_EMBED_MS;
    dp_zsock_linger0(p->sock);
    /* a broker may not have bound yet: retry soon (ZeroMQ's default waits
     * 100 ms) and back off from there. ZeroMQ adds up to one interval of
     * jitter; the embedded broker, started with us, binds within a few
     * ms, so its first retries are 1-2 ms apart, not 10-20. */
    zmq_setsockopt(p->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(p->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    zmq_setsockopt(p->sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(p->sock, ZMQ_RCVHWM, &zero, sizeof zero);
    /* CURVE client (dp_keys.h); the embedded pool stays plaintext */
    char kerr[DP_KEY_ERR_MAX];
    if (p->tmpdir == NULL && dp_keys_client(p->sock, p->curve_key,
                                            p->broker_key, kerr, sizeof kerr)) {
        fprintf(stderr, "dpool: %s\n", kerr);
        return DP_ERR_INVALID;
    }
    if (zmq_connect(p->sock, p->endpoint) != 0)
        return DP_ERR_INVALID;
    return 0;
}

/* s_hello: HELLO (with our session when resumable) on p->sock. */
static int s_hello(dp_pool_t *p)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_hello_t h = {.name = p->name ? p->name : "dpool",
                    .pid = (uint64_t)getpid(),
                    .has_session = p->resumable,
                    .flags = DP_HELLO_ACKS};
    memcpy(h.session, p->session, DP_SESSION_BYTES);
    dp_msg_hello(&w, &h);
    return dp_zsend(p->sock, NULL, 0, &w, 0) ? DP_ERR_IO : 0;
}

/* s_welcome: wait for WELCOME on p->sock until end (dp_now_ms) or until
 * the pool is stopped. 0 with *wm filled, DP_ERR_UNREACHABLE (none came),
 * DP_ERR_CANCELLED (stopped). Other messages are dropped. */
static int s_welcome(dp_pool_t *p, uint64_t end, dp_welcome_t *wm)
{
    for (uint64_t now = dp_now_ms(); now < end; now = dp_now_ms()) {
        zmq_pollitem_t it[2] = {{p->sock, 0, ZMQ_POLLIN, 0},
                                {NULL, p->wake_fd, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 2, (long)(end - now)) <= 0)
            continue;
        if (it[1].revents & ZMQ_POLLIN) {
            dp_pool_io_woken(p);
            if (dp_pool_io_stopping(p))
                return DP_ERR_CANCELLED;
        }
        dp_zmsg_t m;
        if (!(it[0].revents & ZMQ_POLLIN) ||
            dp_zrecv(p->sock, 0, &m, ZMQ_DONTWAIT))
            continue;
        int cmd;
        dp_rd_t r;
        int rc = dp_msg_open(zmq_msg_data(&m.body), zmq_msg_size(&m.body),
                             &p->lim, &cmd, &r);
        if (!rc && cmd == DP_CMD_WELCOME)
            rc = dp_msg_read_welcome(&r, wm);
        bool got = !rc && cmd == DP_CMD_WELCOME && wm->peer_no <= UINT32_MAX;
        zmq_msg_close(&m.body);
        if (got)
            return 0;
    }
    return DP_ERR_UNREACHABLE;
}

/* s_resume: the broker is lost: HELLO with our session on a fresh socket
 * (again every DP_RESUME_RETRY_MS) until the connect timeout. 0: resumed,
 * the kept SUBMITs are sent again. Else the pool is lost: no WELCOME
 * (UNREACHABLE), or one that did not resume (a broker that forgot us or
 * never knew us: BROKER_LOST), or it was stopped (CANCELLED). */
static int s_resume(dp_pool_t *p)
{
    uint64_t end = dp_now_ms() + (uint64_t)(p->connect_timeout * 1000);
    p->nacks = 0; /* the new broker sends what they were for again */
    int rc = DP_ERR_UNREACHABLE;
    for (uint64_t now = dp_now_ms(); now < end; now = dp_now_ms()) {
        rc = s_socket(p);
        if (!rc)
            rc = s_hello(p);
        if (rc)
            return rc;
        uint64_t until = now + DP_RESUME_RETRY_MS;
        dp_welcome_t wm;
        rc = s_welcome(p, until < end ? until : end, &wm);
        if (rc == DP_ERR_CANCELLED)
            return rc;
        if (rc)
            continue;
        if (!wm.resumed || wm.peer_no != p->client_no)
            return DP_ERR_BROKER_LOST;
        for (dp_item_t *it = p->unacc_head; it; it = it->next)
            s_send_copy(p, it->data, it->len);
        return 0;
    }
    return rc;
}

int dp_pool_io_watch(dp_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    int watch = p->fd_ready ? -1 : p->watch_fd;
    pthread_mutex_unlock(&p->mu);
    return watch;
}

void dp_pool_io_fd_ready(dp_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->fd_ready = true; /* the caller's input can be read */
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void dp_pool_io_woken(dp_pool_t *p)
{
    uint64_t v;
    ssize_t rc = read(p->wake_fd, &v, sizeof v);
    (void)rc;
    if (p->interrupted) { /* the caller waits for it on cv */
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

dp_item_t *dp_pool_io_outbox(dp_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    dp_item_t *it = p->out_head;
    p->out_head = p->out_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    return it;
}

bool dp_pool_io_stopping(dp_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    bool stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    return stop;
}

static void *s_io_main(void *arg)
{
    dp_pool_t *p = arg;
    uint64_t last_rx = dp_now_ms(), next_hb = last_rx + p->hb_ms;
    for (;;) {
        if (p->resume) {
            p->resume = false;
            int rc = s_resume(p);
            if (rc && rc != DP_ERR_CANCELLED) {
                p->resumable = false; /* once lost, lost for good */
                s_set_lost(p, DP_ERR_BROKER_LOST);
            }
            last_rx = dp_now_ms();
            next_hb = last_rx + p->hb_ms;
        }
        uint64_t now = dp_now_ms();
        uint64_t due =
            p->nacks && p->ack_due_ms < next_hb ? p->ack_due_ms : next_hb;
        long wait = due > now ? (long)(due - now) : 0;
        int watch = dp_pool_io_watch(p);
        zmq_pollitem_t items[3] = {{p->sock, 0, ZMQ_POLLIN, 0},
                                   {NULL, p->wake_fd, ZMQ_POLLIN, 0},
                                   {NULL, watch, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, watch >= 0 ? 3 : 2, wait);
        if (n > 0 && watch >= 0 &&
            (items[2].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
            dp_pool_io_fd_ready(p);
        if (n < 0 && zmq_errno() != EINTR)
            break;
        if (n > 0 && (items[1].revents & ZMQ_POLLIN))
            dp_pool_io_woken(p);
        bool stop = dp_pool_io_stopping(p);
        if (!p->resume)
            s_send_outbox(p);
        if (stop)
            break;
        dp_zmsg_t m;
        while (!p->resume &&
               dp_zrecv(p->sock, 0, &m, ZMQ_DONTWAIT) != DP_ERR_IO) {
            last_rx = dp_now_ms();
            s_on_zmsg(p, &m.body);
            zmq_msg_close(&m.body);
        }
        now = dp_now_ms();
        if (p->nacks && !p->resume &&
            (now >= p->ack_due_ms || p->nacks >= DP_ACK_BATCH))
            s_send_acks(p); /* coalesced: one ACK per 10 ms at most */
        if (now - last_rx > p->hb_ms * DP_CLIENT_LIVENESS)
            s_broker_lost(p);
        if (now >= next_hb) {
            dp_wr_t w;
            dp_wr_init(&w);
            dp_msg_empty(&w, DP_CMD_HEARTBEAT);
            dp_zsend(p->sock, NULL, 0, &w, ZMQ_DONTWAIT);
            next_hb = now + p->hb_ms;
        }
    }
    return NULL;
}

/* ---- open and close ---- */

/* s_connect: socket, HELLO, WELCOME within the connect timeout, then the
 * I/O thread. */
static int s_connect(dp_pool_t *p)
{
    p->ctx = zmq_ctx_new();
    if (!p->ctx)
        return DP_ERR_IO;
    int rc = s_socket(p);
    if (!rc)
        rc = s_hello(p);
    dp_welcome_t wm;
    if (!rc)
        rc = s_welcome(p, dp_now_ms() + (uint64_t)(p->connect_timeout * 1000),
                       &wm);
    if (rc)
        return rc == DP_ERR_CANCELLED ? DP_ERR_UNREACHABLE : rc;
    p->client_no = (uint32_t)wm.peer_no;
    p->hb_ms = wm.heartbeat_ms ? wm.heartbeat_ms : DP_CLIENT_HB_MS_DEFAULT;
    p->cpu_slots = wm.cpu_slots > INT_MAX ? INT_MAX : (int)wm.cpu_slots;
    if (pthread_create(&p->thr, NULL, s_io_main, p) != 0)
        return DP_ERR_NOMEM;
    p->thr_started = true;
    return 0;
}

/* s_keep_opts: what a resume needs later (a fresh socket, HELLO). */
static int s_keep_opts(dp_pool_t *p, const dp_pool_opts_t *o)
{
    p->connect_timeout = o && o->connect_timeout > 0
                             ? o->connect_timeout
                             : DP_CONNECT_TIMEOUT_DEFAULT;
    if (o && o->name && !(p->name = strdup(o->name)))
        return DP_ERR_NOMEM;
    if (o && o->curve_key && !(p->curve_key = strdup(o->curve_key)))
        return DP_ERR_NOMEM;
    if (o && o->broker_key && !(p->broker_key = strdup(o->broker_key)))
        return DP_ERR_NOMEM;
    return 0;
}

/* s_daemons: an embedded pool of daemons (a private broker and worker)
 * rather than a local one: opts.daemons or DPOOL_EMBED=daemons. */
static bool s_daemons(const dp_pool_opts_t *o)
{
    const char *env = getenv("DPOOL_EMBED");
    return (o && o->daemons) || (env && strcmp(env, "daemons") == 0);
}

int dp_pool_open(const char *endpoint, const dp_pool_opts_t *opts,
                 dp_pool_t **out)
{
    *out = NULL;
    dp_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return DP_ERR_NOMEM;
    p->lim = dp_limits_default();
    p->watch_fd = -1;
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = p->wake_fd < 0 ? DP_ERR_IO : s_keep_opts(p, opts);
    if (!rc && !endpoint && !s_daemons(opts)) { /* the local pool */
        rc = dp_local_start(p, opts);
        if (rc)
            dp_pool_close(&p);
        *out = p;
        return rc;
    }
    /* the embedded daemons are spawned before any ZeroMQ thread exists */
    if (!rc && !endpoint)
        rc = dp_embed_start(p, opts);
    else if (!rc && !(p->endpoint = strdup(endpoint)))
        rc = DP_ERR_NOMEM;
    /* a broker of our own: a session that resumes (the embedded one dies
     * with us) */
    if (!rc && endpoint &&
        getrandom(p->session, sizeof p->session, 0) ==
            (ssize_t)sizeof p->session)
        p->resumable = true;
    if (!rc)
        rc = s_connect(p);
    if (rc) {
        dp_pool_close(&p);
        return rc;
    }
    *out = p;
    return 0;
}

void dp_pool_close(dp_pool_t **pp)
{
    if (!pp || !*pp)
        return;
    dp_pool_t *p = *pp;
    if (p->thr_started) {
        if (p->nroutes)
            dp_pool_cancel_ids(p, NULL, 0);
        dp_wr_t w;
        dp_wr_init(&w);
        dp_msg_empty(&w, DP_CMD_BYE);
        dp_pool_send(p, &w);
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_mutex_unlock(&p->mu);
        s_wake(p);
        pthread_join(p->thr, NULL);
    }
    if (p->sock)
        zmq_close(p->sock);
    if (p->ctx)
        zmq_ctx_term(p->ctx);
    dp_local_stop(p);
    dp_embed_stop(p);
    for (dp_item_t *it = p->out_head, *nx; it; it = nx) {
        nx = it->next;
        free(it->data);
        free(it);
    }
    for (dp_item_t *it = p->in_head, *nx; it; it = nx) {
        nx = it->next;
        dp_result_free(&it->res);
        if (it->msg)
            s_rmsg_free(it->msg);
        free(it);
    }
    while (p->unacc_head)
        s_unacc_drop(p, NULL, p->unacc_head);
    free(p->acks);
    free(p->name);
    free(p->curve_key);
    free(p->broker_key);
    dp_value_clear(&p->status);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->routes);
    free(p->spare_ring);
    free(p->endpoint);
    free(p);
    *pp = NULL;
}

const char *dp_pool_endpoint(const dp_pool_t *p)
{
    return p->endpoint;
}

int dp_pool_slots(const dp_pool_t *p)
{
    return p->cpu_slots;
}

int dp_pool_status(dp_pool_t *p, dp_value_t *out)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_empty(&w, DP_CMD_STATUS);
    pthread_mutex_lock(&p->mu);
    p->status_ready = false;
    pthread_mutex_unlock(&p->mu);
    int rc = dp_pool_send(p, &w);
    if (rc)
        return rc;
    struct timespec ts;
    s_deadline(&ts, (double)(p->hb_ms * DP_CLIENT_LIVENESS) / 1000.0);
    pthread_mutex_lock(&p->mu);
    while (!p->status_ready && !p->lost && rc == 0)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
            rc = DP_ERR_TIMEOUT;
    if (p->status_ready) {
        *out = p->status;
        p->status = dp_nil();
        rc = 0;
    } else if (!rc) {
        rc = DP_ERR_BROKER_LOST;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}
