/*
 * dp_pool_int.h - internals shared by the client modules (not installed).
 *
 * Threads: the pool's I/O thread owns the socket; it sends what callers
 * queue in the outbox and decodes what arrives into the inbox. The
 * caller's thread owns everything else (routing, futures, maps). The two
 * meet only under `mu`: outbox, inbox, lost, status.
 *
 * Results travel as whole messages: the I/O thread hands each RESULTS
 * message over as it came (one inbox item, one wakeup); the caller's
 * thread reads the results out of it in place and routes each as a
 * dp_got_t, a view holding a reference on its message, which is freed
 * when its last result is released. No result is decoded or allocated
 * until its owner asks for it (dp_got_take, dp_got_view).
 */
#ifndef DP_POOL_INT_H
#define DP_POOL_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "dp_msg.h"
#include "dp_wire.h"
#include "dpool.h"

#define DP_CONNECT_TIMEOUT_DEFAULT 10.0
#define DP_CLIENT_HB_MS_DEFAULT 1000
#define DP_RECONNECT_IVL_MS 10       /* first retry of a failed connect */
#define DP_RECONNECT_IVL_EMBED_MS 1  /* the same, to our embedded broker */
#define DP_RECONNECT_IVL_MAX_MS 1000 /* backing off to this */
#define DP_CLIENT_LIVENESS                                                     \
    5                         /* missed broker heartbeats: lost (a client      \
                                  may wait out a starved broker) */
#define DP_EMBED_STOP_MS 5000 /* wait for embedded daemons to exit */
#define DP_EMBED_GRACE "1"    /* seconds an embedded worker drains */
#define DP_MAX_INFLIGHT_DEFAULT 1024
#define DP_CHUNK_AUTO_MAX 256      /* adaptive chunks, at most */
#define DP_SUBMIT_MIN_JOBS 64      /* jobs per SUBMIT when chunks are small */
#define DP_CHUNK_TARGET_US 20000.0 /* a stream's chunk: ~20 ms of work */
#define DP_RETRIES_DEFAULT_CLIENT 3
#define DP_DEADLINE_MARGIN_MS 5000 /* client deadline past a time limit */
#define DP_RESUME_RETRY_MS 2000    /* resuming: a fresh socket this often */
#define DP_ACKS_MIN 256            /* first size of the pending ACK list */
#define DP_ACK_COALESCE_MS 10      /* an ACK waits this long for company */
#define DP_ACK_BATCH 4096          /* ...or until this many ids wait */

/* A received RESULTS message shared by the results routed from it
 * (dp_pool.c); caller's thread only once in the inbox. */
typedef struct dp_rmsg dp_rmsg_t;

typedef struct s_item {
    struct s_item *next;
    char *data; /* outbox: encoded message */
    size_t len;
    dp_result_t *res; /* inbox: a result made here (a refused SUBMIT's) */
    dp_rmsg_t *msg;   /* inbox: or a RESULTS message */
    /* outbox: a SUBMIT of ids seq .. seq+njobs-1; a session keeps it
     * (the I/O thread's unaccepted list) until ACCEPTED, refused, or a
     * job of it answered, to send it again after a resume */
    bool submit;
    uint64_t seq;
    uint32_t njobs;
} dp_item_t;

/* dp_got_t: one routed result: a view of it in its received message
 * (res, with a reference on msg), or one made here (made, owned); index
 * is its input's. An empty one has neither. */
typedef struct {
    dp_res_t res;      /* when msg: borrowed from it */
    dp_rmsg_t *msg;    /* a reference, or NULL */
    dp_result_t *made; /* when not msg */
    size_t index;
} dp_got_t;

/* dp_got_full: g holds a result. */
static inline bool dp_got_full(const dp_got_t *g)
{
    return g->msg || g->made;
}
/* dp_got_code: g's error code (0 = ok). */
static inline int dp_got_code(const dp_got_t *g)
{
    return g->msg ? (int)g->res.code : g->made->error;
}
/* dp_got_elapsed_us: g's run time in the child. */
static inline uint64_t dp_got_elapsed_us(const dp_got_t *g)
{
    return g->msg ? g->res.elapsed_us : g->made->elapsed_us;
}
/* dp_got_release: drop what g holds (its message's reference or its
 * made result); g is then empty. NULL-safe on an empty g. */
void dp_got_release(dp_got_t *g);
/* dp_got_take: g's result as a dp_result_t of the caller's (dp_result_free),
 * index set; g is emptied. A value that cannot be decoded (over the
 * decode bound, out of memory) makes an error result in its place, so
 * the input still gets its one result. 0 or DP_ERR_NOMEM. */
int dp_got_take(dp_got_t *g, const dp_limits_t *lim, dp_result_t **out);
/* dp_got_view: g's result decoded into *view (strings in str, the value
 * owned by view: dp_value_clear it), index set; g keeps its reference
 * (release it after the view is done with). A value that cannot be
 * decoded shows as an error result. Made results are not viewed: use
 * g->made. */
void dp_got_view(const dp_got_t *g, const dp_limits_t *lim, dp_result_t *view,
                 dp_buf_t *str);

/* dp_deliver_fn: hands result g (taken: g->msg's reference or g->made;
 * g->index is its input's) to the owner (`data`) of its route: a future,
 * a map. The pool calls it and knows nothing else of them. */
typedef void (*dp_deliver_fn)(void *data, dp_got_t *g);

typedef struct {
    uint64_t id; /* 0 = empty slot */
    dp_deliver_fn deliver;
    void *data; /* the owner, given to deliver */
    size_t index;
    bool tomb;
} dp_route_t;

struct dp_pool {
    char *endpoint;
    /* session: what a resume needs (PROTOCOL.md, "Sessions") */
    uint8_t session[DP_SESSION_BYTES]; /* getrandom(), once per pool */
    bool resumable; /* a broker of our own (not embedded): HELLO says ACKS,
                       results are acknowledged, a lost broker is resumed */
    char *name;
    double connect_timeout;
    char *curve_key, *broker_key;
    /* embedded pool: a local one (dp_local.c), or daemons (dp_embed.c) */
    struct dp_local *local;
    pid_t broker_pid, worker_pid;
    char *tmpdir;
    /* I/O thread side */
    void *ctx, *sock;
    pthread_t thr;
    bool thr_started;
    int wake_fd; /* eventfd: caller -> I/O thread */
    volatile sig_atomic_t interrupted;
    dp_limits_t lim;
    uint64_t hb_ms;
    dp_item_t *unacc_head, *unacc_tail; /* I/O thread: SUBMITs kept */
    uint64_t *acks;                     /* I/O thread: ids to ACK */
    size_t nacks, capacks;
    uint64_t ack_due_ms; /* I/O thread: send the ACK by then */
    bool resume;         /* I/O thread: the broker is lost; try to resume */
    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dp_item_t *out_head, *out_tail;
    dp_item_t *in_head, *in_tail;
    bool lost, stop;
    int lost_code;
    bool status_ready;
    dp_value_t status;
    int watch_fd; /* input fd the caller waits on, or -1 */
    bool fd_ready;
    /* caller side */
    uint32_t client_no;
    uint32_t next_seq;
    int cpu_slots;
    uint64_t last_result_ms; /* when the last result was routed */
    uint64_t deliver_ms;     /* when the result being delivered came */
    dp_route_t *routes;      /* id -> owner, open addressing */
    size_t nroutes, cap_routes, used_routes;
    size_t probe_max;     /* longest slot distance from home of any route */
    dp_got_t *spare_ring; /* the last map's result ring, for the next */
    size_t spare_cap, spare_used;
    uint64_t route_base; /* id - route_base is an id's home (mod cap); set
                            to the first id added to an empty table, so
                            each batch reuses the pages the last one
                            touched instead of marching on through the
                            table (a first-touched page: ~10 us here) */
};

/* dp_pool_send: queue an encoded message (taken from w) for the broker. */
int dp_pool_send(dp_pool_t *p, dp_wr_t *w);
/* dp_pool_send_submit: queue a SUBMIT (taken from w) of njobs jobs with
 * ids seq...: a resumable pool keeps it until the broker has it. */
int dp_pool_send_submit(dp_pool_t *p, dp_wr_t *w, uint64_t seq, uint32_t njobs);
/* dp_pool_next_id: a new job id (client_no << 32 | seq). */
uint64_t dp_pool_next_id(dp_pool_t *p);
/* dp_pool_pump: wait up to timeout s (< 0 forever) for results, or for
 * fd (>= 0) to become readable; route each result to its future or map.
 * 0 when something arrived (or fd is readable), DP_ERR_TIMEOUT,
 * DP_ERR_BROKER_LOST, DP_ERR_CANCELLED (interrupted). */
int dp_pool_pump(dp_pool_t *p, double timeout, int fd);
/* dp_pool_ring_get / dp_pool_ring_put: a map's ring of at least n empty
 * slots (*cap: how many), and its return with that cap and how many of
 * its first slots were ever written (`used`: only those are cleared for
 * the next map, the others were never touched): the pool keeps the largest one
 * given back (all its slots empty) for the next map, whose pages are then
 * touched already (a 20,000-job map's ring is 2 MiB: ~500 first-touched pages,
 * ~5 ms here, every map). Caller's thread. */
dp_got_t *dp_pool_ring_get(dp_pool_t *p, size_t n, size_t *cap);
void dp_pool_ring_put(dp_pool_t *p, dp_got_t *ring, size_t cap, size_t used);
/* dp_route_add / dp_route_del: the routing table, caller thread only. */
int dp_route_add(dp_pool_t *p, uint64_t id, dp_deliver_fn deliver, void *data,
                 size_t index);
void dp_route_del(dp_pool_t *p, uint64_t id);
/* dp_route_reserve: room for n more routes, so a batch that adds them
 * grows the table once, not once per doubling. */
int dp_route_reserve(dp_pool_t *p, size_t n);
/* dp_pool_cancel_ids: send CANCEL for ids (n = 0: all of ours). */
int dp_pool_cancel_ids(dp_pool_t *p, const uint64_t *ids, size_t n);
/* dp_pool_forget: drop every route whose data is owner, cancelling
 * those jobs at the broker. */
void dp_pool_forget(dp_pool_t *p, void *owner);
/* dp_pool_fail_routes: drop every route whose data is owner and deliver
 * to each a result failed with code and msg (made here: the job's own
 * never came); cancel the jobs at the broker when cancel is set. */
void dp_pool_fail_routes(dp_pool_t *p, void *owner, int code, const char *msg,
                         bool cancel);

/* The I/O thread's side of the caller's waits (a broker's loop, dp_pool.c,
 * or a local pool's, dp_local.c): dp_pool_io_watch, the caller's input
 * fd to poll (-1: none); dp_pool_io_fd_ready, it is readable (the caller
 * is woken); dp_pool_io_woken, the wake fd was readable (drained; an
 * interrupted caller is woken); dp_pool_io_outbox, the messages the
 * caller queued, taken (the I/O thread frees each item); dp_pool_io_stopping,
 * dp_pool_close asks the thread to end. */
int dp_pool_io_watch(dp_pool_t *p);
void dp_pool_io_fd_ready(dp_pool_t *p);
void dp_pool_io_woken(dp_pool_t *p);
dp_item_t *dp_pool_io_outbox(dp_pool_t *p);
bool dp_pool_io_stopping(dp_pool_t *p);

/* dp_pool_wire: a message in data[0..len) (taken) as if the broker had
 * sent it: RESULTS to the inbox, STATUS_REPLY, ERROR (the local pool's
 * way in, dp_local.c). I/O thread only. */
void dp_pool_wire(dp_pool_t *p, char *data, size_t len);

/* dp_embed_start / dp_embed_stop: the private broker and worker
 * (DPOOL_EMBED=daemons). */
int dp_embed_start(dp_pool_t *p, const dp_pool_opts_t *o);
void dp_embed_stop(dp_pool_t *p);
/* dp_embed_find_bin: the directory holding program prog (opts->bin_dir,
 * $DPOOL_BIN_DIR, this program's dir, libdpool's install's, the
 * configured one) into dir; 0 or DP_ERR_INVALID. */
int dp_embed_find_bin(const dp_pool_opts_t *o, const char *prog, char *dir,
                      size_t len);

/* dp_local_start: the local pool (dp_local.c): the agent's state and the
 * I/O thread that drives it and starts the children. dp_local_stop,
 * after that thread is joined: the children killed and reaped, all
 * freed. */
int dp_local_start(dp_pool_t *p, const dp_pool_opts_t *o);
void dp_local_stop(dp_pool_t *p);

#endif
