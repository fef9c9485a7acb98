/*
 * dp_queue.h - the broker's job bookkeeping: job records, the id index,
 * per-client queues served round-robin, and leases held by workers.
 * No sockets here; dp_broker.c drives it.
 *
 * Ownership:
 *  - The queue owns every dp_bjob_t; dp_queue_free_job releases one.
 *  - A job borrows its encoded bytes from a dp_bbuf_t (the received SUBMIT
 *    frame, kept whole and reference-counted: the broker never copies or
 *    re-encodes a job it only forwards).
 *  - Clients (dp_qclient_t) and workers (dp_qworker_t) are owned by the
 *    broker; they embed the list heads this module manages.
 *
 * Job states and their legal moves (each function below makes one move
 * and asserts the state it starts from):
 *   QUEUED -> LEASED (dispatch) | gone (cancel, client lost)
 *   LEASED -> QUEUED (worker lost, requeue) | gone (result)
 *          -> ORPHAN (its client went away; wait for the worker's answer)
 *   ORPHAN -> gone (result or worker lost)
 *   QUEUED | LEASED -> KEPT (its result is kept until its client ACKs it:
 *          a session that resumes; dp_queue_keep) -> gone (ACK, or the
 *          session ends)
 */
#ifndef DP_QUEUE_H
#define DP_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "dp_jobtab.h"
#include "dp_list.h"
#include "dpool.h"

typedef enum {
    DP_JOB_QUEUED,
    DP_JOB_LEASED,
    DP_JOB_ORPHAN,
    DP_JOB_KEPT
} dp_jobstate_t;

extern const char *const dp_jobstate_names[];

/* A received SUBMIT frame, shared by the jobs it carries. */
typedef struct dp_bbuf {
    zmq_msg_t msg;
    uint32_t refs;
    struct dp_bbuf *next; /* a held SUBMIT: the next one of its client */
    uint32_t njobs;       /* a held SUBMIT: its job count */
} dp_bbuf_t;

typedef struct dp_bjob dp_bjob_t;

/* An intrusive doubly linked list of jobs. */
typedef struct {
    dp_bjob_t *head, *tail;
    size_t n;
} dp_jlist_t;

typedef struct dp_qclient {
    dp_jlist_t queue[DP_CLASS_COUNT]; /* waiting jobs, oldest first */
    struct dp_qclient *rr_prev[DP_CLASS_COUNT], *rr_next[DP_CLASS_COUNT];
    bool in_ring[DP_CLASS_COUNT];
    bool paused;       /* out of the rings: its results sit unread */
    size_t running;    /* leased jobs */
    size_t njobs;      /* queued and leased jobs */
    size_t bytes;      /* their DP_QUEUE_JOB_COST */
    dp_jlist_t kept;   /* KEPT jobs: results not yet acknowledged */
    size_t kept_bytes; /* their DP_QUEUE_JOB_COST + result bytes */
} dp_qclient_t;

#define DP_QUEUE_LOOKAHEAD_US 2000.0    /* work a slot may have waiting */
#define DP_QUEUE_LOOKAHEAD_MAX_JOBS 256 /* waiting jobs per slot, at most */

typedef struct dp_qworker {
    dp_jlist_t leases;                 /* jobs it holds */
    uint32_t capacity[DP_CLASS_COUNT]; /* slots it announced */
    uint32_t inflight[DP_CLASS_COUNT]; /* leases per class */
    uint32_t stuck[DP_CLASS_COUNT];    /* expired leases not yet answered:
                                          credit it does not get back */
    double avg_us[DP_CLASS_COUNT];     /* moving average of its job times */
} dp_qworker_t;

struct dp_bjob {
    uint64_t id;
    dp_bjob_t *hnext;       /* id index chain */
    dp_bjob_t *prev, *next; /* client queue or worker leases */
    dp_bbuf_t *buf;         /* holds the encoded job */
    const uint8_t *raw;     /* the encoded job inside buf */
    uint32_t raw_len;
    dp_qclient_t *client; /* NULL once orphaned */
    dp_qworker_t *worker; /* when leased */
    uint8_t cls;
    uint8_t state;
    uint8_t attempts;     /* dispatches so far */
    uint8_t retries;      /* re-dispatches allowed after loss */
    uint16_t chunk;       /* jobs per dispatch its client asked */
    uint16_t handbacks;   /* times a worker gave it back unstarted */
    uint32_t limit_ms;    /* its time limit (its own or its type's) */
    uint32_t hidx;        /* 1 + its place in the lease heap; 0 = none */
    uint64_t deadline_ms; /* when leased: the lease runs out (dp_now_ms) */
    uint8_t *result;      /* KEPT: the encoded result (owned) */
    uint32_t result_len;
};

/* What one job costs the broker: its encoded bytes (in the SUBMIT frame
 * it keeps alive) and its record. */
#define DP_QUEUE_JOB_COST(raw_len) ((size_t)(raw_len) + sizeof(dp_bjob_t))

/* Job records come from slabs and go back to a free list: no malloc per
 * job on the hot path. */
#define DP_QUEUE_SLAB_JOBS 4096
/* when the queue empties, what an ordinary batch used stays: 8 slabs of
 * jobs (32,768 jobs, 3.5 MiB) and an index and lease heap that size; the
 * rest of a flood goes back. Kept pages are not first-touched again by the
 * next batch (on a VM ~10 us a page: a 20,000-job batch's 550 faults) */
#define DP_QUEUE_KEEP_SLABS 8

typedef struct {
    dp_bjob_t **buckets;
    size_t nbuckets; /* power of two */
    size_t njobs;
    dp_qclient_t *ring[DP_CLASS_COUNT]; /* next client to serve per class */
    size_t queued[DP_CLASS_COUNT];
    size_t bytes;     /* DP_QUEUE_JOB_COST of every job */
    dp_slab_t slab;   /* job records; all blocks but one given back when no
                         job is left */
    dp_bjob_t **heap; /* leases with a deadline, earliest first */
    size_t nheap, heapcap;
} dp_queue_t;

/* dp_queue_init / dp_queue_release: an empty queue; release frees every
 * job still in it. 0 or DP_ERR_NOMEM. */
int dp_queue_init(dp_queue_t *q);
void dp_queue_release(dp_queue_t *q);

/* dp_bbuf_unref: drop one reference; the last frees the frame. */
void dp_bbuf_unref(dp_bbuf_t *b);

/* dp_queue_find: the job with this id, or NULL. */
dp_bjob_t *dp_queue_find(const dp_queue_t *q, uint64_t id);
/* dp_queue_add: a new QUEUED job at the tail of its client's queue; takes a
 * reference on buf. DP_ERR_INVALID if the id is in use, DP_ERR_NOMEM. */
int dp_queue_add(dp_queue_t *q, dp_qclient_t *c, uint64_t id, dp_class_t cls,
                 uint8_t retries, dp_bbuf_t *buf, const uint8_t *raw,
                 size_t raw_len, dp_bjob_t **out);
/* dp_queue_next: pop the next job of class cls, round-robin over clients
 * (one job per client per turn), and lease it to w. NULL if none. */
dp_bjob_t *dp_queue_next(dp_queue_t *q, dp_class_t cls, dp_qworker_t *w);
/* dp_queue_peek: the job dp_queue_next would hand out, or NULL. */
const dp_bjob_t *dp_queue_peek(const dp_queue_t *q, dp_class_t cls);
/* dp_queue_take: lease to w up to max jobs of class cls, all from the
 * client whose turn it is (one chunk), then pass the turn on; *out
 * receives them in queue order. Returns how many. */
size_t dp_queue_take(dp_queue_t *q, dp_class_t cls, dp_qworker_t *w, size_t max,
                     dp_bjob_t **out);
/* dp_queue_requeue: a leased job goes back to the head of its client's
 * queue (its worker was lost or handed it back). */
void dp_queue_requeue(dp_queue_t *q, dp_bjob_t *j);
/* dp_queue_orphan: a leased job whose client is gone. */
void dp_queue_orphan(dp_queue_t *q, dp_bjob_t *j);
/* dp_queue_keep: j (QUEUED or LEASED) is answered: it leaves its queue or
 * lease and waits in its client's kept list with its result (taken: a
 * malloc'ed copy of len bytes) until dp_queue_free_job. It no longer
 * counts in the client's njobs/bytes, but in kept_bytes. */
void dp_queue_keep(dp_queue_t *q, dp_bjob_t *j, uint8_t *result, size_t len);
/* dp_queue_free_job: remove j from every list and the index, free it. */
void dp_queue_free_job(dp_queue_t *q, dp_bjob_t *j);
/* dp_queue_credit: jobs of class cls that w may still be sent when its
 * next chunk is `chunk` jobs: it may hold one chunk per slot running, plus
 * (when lookahead) `lookahead` chunks, or with lookahead < 0 a time-based
 * amount: one chunk per slot, or more when jobs are so short (w->avg_us)
 * that a chunk would keep a slot busy for less than DP_QUEUE_LOOKAHEAD_US,
 * never more than DP_QUEUE_LOOKAHEAD_MAX_JOBS per slot. */
uint64_t dp_queue_credit(const dp_qworker_t *w, dp_class_t cls, size_t chunk,
                         bool lookahead, long nchunks);
/* dp_queue_arm: give the leased job j a deadline (dp_now_ms clock); it
 * stays in the lease heap until it leaves the LEASED/ORPHAN states.
 * 0 or DP_ERR_NOMEM (then it has no deadline). O(log n). */
int dp_queue_arm(dp_queue_t *q, dp_bjob_t *j, uint64_t deadline_ms);
/* dp_queue_earliest: the leased job whose deadline comes first, or NULL. */
dp_bjob_t *dp_queue_earliest(const dp_queue_t *q);
/* dp_queue_client_pause: take c out of the rings (paused: none of its
 * jobs is handed out) or put it back. */
void dp_queue_client_pause(dp_queue_t *q, dp_qclient_t *c, bool paused);
/* dp_queue_client_remove: unlink a client from the round-robin rings. */
void dp_queue_client_remove(dp_queue_t *q, dp_qclient_t *c);

#endif /* DP_QUEUE_H */
