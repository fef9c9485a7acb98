/*
 * dp_agent.h - the worker agent: owns the one broker connection (DEALER),
 * announces capacity per job class, hands jobs to idle children over
 * socketpairs, and watches them: a child that dies is seen at once (SIGCHLD
 * on a self-pipe), its job reported lost (the broker requeues it) and a
 * replacement started; a job over its time limit has its child killed
 * (SIGTERM, then SIGKILL after a grace period) and gets TIMEOUT.
 *
 * Ownership: cfg strings must outlive the agent (argv or environment).
 * The implementation is split by concern: see worker/dp_agent_int.h.
 */
#ifndef DP_AGENT_H
#define DP_AGENT_H

#include <stdbool.h>

#include "dp_child.h"

#define DP_AGENT_CONNECT_DEFAULT "tcp://127.0.0.1:5555"
/* the child programs, installed beside dpool-worker */
#define DP_CPU_CHILD_PROG "dpool-worker-cpu"
#define DP_IO_CHILD_PROG "dpool-worker-io"
#define DP_IO_SLOTS_DEFAULT 16
#define DP_KILL_GRACE_MS 1000 /* SIGTERM -> SIGKILL */
#define DP_TIMEOUT_SLACK_MS                                                    \
    200 /* kernels answer TIMEOUT themselves                                   \
           first; the agent kills after this */
#define DP_DRAIN_GRACE_S_DEFAULT 30.0
#define DP_RECONNECT_MIN_MS 10
#define DP_RECONNECT_MAX_MS 5000
#define DP_CONNECT_WARN_MS 2000      /* no WELCOME this long: log a warning */
#define DP_WORKER_HB_MS_DEFAULT 1000 /* until the broker names its own */
#define DP_RESPAWN_MIN_MS 100        /* a child dying at birth waits this */
#define DP_HEARTBEAT_LIVENESS_W 3    /* missed broker heartbeats: lost */
#define DP_AGENT_READS_PER_WAKE 16   /* 64 KiB reads from a child per wake */
#define DP_AGENT_BURST 256           /* broker messages read per wake-up */
#define DP_PREFETCH_DEFAULT 64       /* --prefetch: jobs a cpu child holds */

typedef struct {
    const char *connect;     /* broker endpoint */
    long processes;          /* cpu children */
    long io_slots;           /* concurrent io jobs (0: no io child) */
    long max_jobs_per_child; /* 0 = unlimited */
    long prefetch;           /* jobs a cpu child may hold when short; <2 off */
    double drain_grace_s;    /* SIGTERM: time running jobs get */
    const char *cpu_exe;     /* dpool-worker-cpu beside it: cpu children */
    const char *io_exe;      /* dpool-worker-io beside it: the io child */
    dp_child_cfg_t child;    /* passed on to the children */
    const char *curve_key;   /* our secret key file, or NULL */
    const char *broker_key;  /* the broker's public key file */
    bool embedded;           /* an embedded pool's: its broker only ever
                                shuts down with the pool; children allow
                                downloads anywhere (--embedded) */
    char *const *envp;       /* the children's environment; NULL: ours */
} dp_agent_cfg_t;

typedef struct dp_agent dp_agent_t;

/* dp_agent_new: the context and the broker socket first, so the
 * handshake runs while the children start (posix_spawn: safe beside
 * ZeroMQ's threads, as every respawn is), then the children. NULL on
 * failure (logged). */
dp_agent_t *dp_agent_new(const dp_agent_cfg_t *cfg);
/* dp_agent_run: serve until told to stop. sig_fd is a self-pipe carrying
 * one byte per signal: 'C' SIGCHLD, 'T' SIGTERM/SIGINT. Returns 0 after
 * a clean drain. */
int dp_agent_run(dp_agent_t *a, int sig_fd);
/* dp_agent_destroy: kill and reap any child left, close, free. */
void dp_agent_destroy(dp_agent_t **a);

#endif
