/*
 * dp_broker.h - dpool-broker: one ROUTER socket for clients and workers,
 * one zmq_poll loop. Queues jobs per client (round-robin), dispatches them
 * against worker credit, holds each dispatched job as a lease, forwards
 * results, and watches every peer with heartbeats. It never runs job code.
 *
 * Ownership: dp_broker_new copies what it needs from cfg (strings in cfg
 * must outlive the broker: they come from argv or the environment).
 */
#ifndef DP_BROKER_H
#define DP_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_opt.h"
#include "dp_wire.h"

#define DP_BROKER_BIND_DEFAULT "tcp://127.0.0.1:5555"
#define DP_HEARTBEAT_MS_DEFAULT 1000
#define DP_HEARTBEAT_LIVENESS 3 /* missed heartbeats before a peer is dead */
#define DP_RETRIES_DEFAULT 3
/* DP_RETRIES_MAX (a job's retries, at most) is the protocol's too */
#define DP_SHUTDOWN_LINGER_MS 500 /* time to deliver goodbyes at exit */
/* DP_SUBMIT_MAX_JOBS and DP_CHUNK_MAX are the protocol's (dp_msg.h) */
#define DP_POLL_BURST 256      /* messages read per poll wake-up */
#define DP_POLL_CLOCK_EVERY 16 /* messages between clock checks */
#define DP_JOBS_PER_MSG 4096   /* jobs in one JOBS message, at most */
#define DP_LOOKAHEAD_US                                                        \
    2000.0                        /* work a slot may have waiting, when        \
                                     jobs are short (microseconds) */
#define DP_LOOKAHEAD_MAX_JOBS 256 /* waiting jobs per slot, at most */
#define DP_AVG_WEIGHT 0.1         /* moving average of job times */
/* a lease runs out this long after the job's time limit (ms) */
#define DP_LEASE_GRACE_MS_DEFAULT 5000
/* leases a worker lets run out in a row before it is dropped */
#define DP_LEASE_EXPIRIES_MAX 3
/* times one job may be handed back unstarted (REQUEUE) */
#define DP_REQUEUE_MAX_DEFAULT 16
/* jobs a worker with credit hands back in a row before it is dropped
 * (a child dying mid-chunk hands back up to a chunk) */
#define DP_WORKER_HANDBACKS_MAX (2 * DP_CHUNK_MAX)

/* Bounds: every memory a peer can grow. Defaults keep one
 * client's share under 256 MiB and the broker under 1 GiB. */
/* jobs one client may have queued or leased */
#define DP_MAX_CLIENT_JOBS_DEFAULT 200000L
/* bytes those jobs hold (encoded jobs + records) */
#define DP_MAX_CLIENT_BYTES_DEFAULT (64L << 20)
/* bytes of SUBMITs held for a client at its share (flow control) */
#define DP_MAX_CLIENT_HELD_DEFAULT (16L << 20)
/* jobs and bytes, all clients */
#define DP_MAX_JOBS_DEFAULT 2000000L
#define DP_MAX_BYTES_DEFAULT (256L << 20)
/* bytes of SUBMITs held, all clients */
#define DP_MAX_HELD_BYTES (128u << 20)
/* messages queued per peer, each way (ZMQ_SNDHWM, ZMQ_RCVHWM) */
#define DP_HWM_DEFAULT 1000L
/* largest message from a peer that has not said HELLO/READY (bytes) */
#define DP_PREHELLO_MAX_BYTES (64u << 10)
/* retry results to a client that does not read (ms) */
#define DP_BLOCKED_RETRY_MS 10
/* file descriptors kept for the broker itself (logs, zmq's own) when
 * --max-peers is derived from the open-files limit */
#define DP_FD_RESERVE 64
#define DP_MAX_PEERS_MIN 16         /* --max-peers never derives below this */
#define DP_MAX_PEERS_AUTO_MAX 65536 /* ...nor above this */
/* a session whose client vanished is kept this long (--session-grace) */
#define DP_SESSION_GRACE_MS_DEFAULT 60000L
#define DP_RESULT_TTL_MS_DEFAULT 86400000L /* 24 h */
#define DP_MAX_BATCHES_DEFAULT 64
#define DP_MAX_BATCH_HELD_DEFAULT (256L << 20) /* bytes one batch keeps */
#define DP_MAX_BATCH_READERS_DEFAULT 16
/* bytes of an error message dp_broker_journal writes */
#define DP_BROKER_ERR_MAX 512
/* jobs freed at once that call malloc_trim */
#define DP_TRIM_JOBS 10000

typedef struct {
    dp_optlist_t binds; /* endpoints; empty = DP_BROKER_BIND_DEFAULT */
    long heartbeat_ms;
    long lookahead;      /* chunks per worker beyond its slots; -1 = by
                            time (see dp_queue_credit) */
    long lease_grace_ms; /* added to a job's time limit for its lease */
    long max_requeues;   /* REQUEUE budget of one job */
    long max_client_jobs, max_client_bytes, max_client_held;
    long max_jobs, max_bytes;
    long hwm;       /* ZMQ_SNDHWM and ZMQ_RCVHWM */
    long max_peers; /* clients + workers tracked; 0 = open-files limit
                       minus DP_FD_RESERVE */
    dp_limits_t limits;
    /* security (dp_zap.h): curve_key NULL = plaintext */
    const char *curve_key;   /* the broker's secret key file */
    const char *client_keys; /* DIR of client NAME.pub */
    const char *worker_keys; /* DIR of worker NAME.pub */
    bool insecure;           /* plaintext beyond loopback: allowed, warned */
    /* journal: NULL = none */
    const char *journal_dir;
    long fsync_ms; /* fsync window; 0 = before every ACCEPTED */
    /* sessions: how long one whose client vanished without BYE is kept */
    long session_grace_ms;
    /* detached batches (dp_batches.c) */
    long result_ttl_ms;     /* free a batch's results this long after its
                               last one */
    long max_batches;       /* detached batches one client or key holds */
    long max_batch_readers; /* readers (ATTACH) of one batch at once */
    long max_batch_held;    /* bytes of results one batch keeps; past
                               them the rest of it fails LIMIT */
} dp_broker_cfg_t;

typedef struct dp_broker dp_broker_t;

/* dp_broker_cfg_default: the defaults above. */
dp_broker_cfg_t dp_broker_cfg_default(void);
/* dp_broker_new: create the context and bind every endpoint. NULL on
 * failure (logged: which endpoint and why). */
dp_broker_t *dp_broker_new(const dp_broker_cfg_t *cfg);
/* dp_broker_journal: open and replay cfg->journal_dir, if any (before
 * serving). 0, or an error with err filled (locked by another broker,
 * unreadable, ...). */
int dp_broker_journal(dp_broker_t *b, char *err, size_t len);
/* dp_broker_run: serve until stop_fd becomes readable (a self-pipe the
 * signal handler writes). 0, or DP_ERR_IO if polling fails. */
int dp_broker_run(dp_broker_t *b, int stop_fd);
/* dp_broker_destroy: say SHUTDOWN to workers and goodbye to clients,
 * close, free; NULL-safe, clears *b. */
void dp_broker_destroy(dp_broker_t **b);

#endif /* DP_BROKER_H */
