/*
 * dp_agent_int.h - what the worker agent's files share (not a public
 * header): the job record, the child record, the agent object, and the
 * functions one concern calls in another.
 *
 *   dp_agent.c       the life cycle, the zmq_poll loop, draining (SIGTERM)
 *   dp_agent_link.c  the broker socket: connect, READY/WELCOME, heartbeats
 *                    both ways, reading the broker's messages (JOBS and
 *                    CANCEL handed on), losing the broker, reconnecting
 *   dp_agent_kids.c  the children: spawn, hand out jobs, read results,
 *                    cancel, time limits, reap and replace
 *   dp_agent_jobs.c  job records, the class queues, the results the agent
 *                    makes and the RESULTS batch it sends
 *
 * Calls go one way, down this list: the loop calls the other three, the
 * link calls kids and jobs, kids calls jobs, jobs calls none of them.
 *
 * Ownership:
 * - Every job ends in exactly one result to the broker (the child's own or
 *   one dp_ag_finish makes), or is forgotten with the broker that sent it.
 *   A job record sits in exactly one list: a class queue (waiting) or its
 *   child's list (sent to it). Records come from the slab and are freed by
 *   dp_ag_job_free only (dp_agent_jobs.c).
 * - A job holds a reference on the JOBS frame it points into; the last
 *   reference closes it.
 * - The class queues are filled by dp_agent_jobs.c; dp_agent_kids.c takes
 *   jobs from their heads when a child has room; dp_agent_jobs.c empties
 *   them (cancel, drain, broker lost, destroy).
 * - A cpu child's list holds whole chunks in the order sent; it runs them
 *   in that order, so its head is the job running and only the head has a
 *   deadline (the next one's starts when the head's result is read). It
 *   holds one chunk, or with prefetch (jobs averaging under
 *   DP_AG_SHORT_US, c->avg_us) several, each sent as a frame of its own
 *   (results come back at the end of each frame). A job behind the head
 *   that is cancelled is answered when its turn comes; when the child
 *   dies the head is LOST and the rest REQUEUE (never started).
 * - Children are reaped only after SIGCHLD (the self-pipe's 'C' sets
 *   `reap`), not every turn.
 * - The children list is grown and shrunk by dp_agent_kids.c only: a child
 *   is freed when it is reaped (dp_ag_reap, after the poll round has read
 *   its fd; dp_ag_kids_stop), after its jobs are answered. Others walk
 *   the list and may retire or kill a child (dp_ag_retire, dp_ag_kill),
 *   never free one (Redis' freeClientAsync).
 * - The broker socket and its state (connected, heartbeats, backoff)
 *   belong to dp_agent_link.c; dp_ag_flush (dp_agent_jobs.c) sends on the
 *   socket but changes none of that state. `draining` and `drain_end_ms`
 *   belong to dp_agent.c. The others only read them.
 * - `w` is scratch: any function may reset and use it within one call.
 */
#ifndef DP_AGENT_INT_H
#define DP_AGENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zmq.h>

#include "dp_agent.h"
#include "dp_frame.h"
#include "dp_list.h"
#include "dp_msg.h"
#include "dp_zsock.h"

#define DP_AG_MSG_MAX 256    /* bytes of a result message made here */
#define DP_AG_ARGV_MAX 32    /* a child's argv entries, at most */
#define DP_AG_NUM_MAX 32     /* bytes of a number in a child's argv */
#define DP_AG_TYPES_MAX 64   /* job types announced in READY, at most */
#define DP_AG_SLAB_JOBS 1024 /* job records per slab block */
#define DP_AG_SIG_READ 64    /* signal bytes read from the self-pipe at once */
#define DP_AG_REAP_STEP_MS 1 /* dp_ag_kids_close: waiting for children */
/* Prefetch (dp_agent_kids.c): a cpu child whose recent jobs ran shorter
 * than DP_AG_SHORT_US each (a moving average of the run times its results
 * carry, weight 1/DP_AG_AVG_WEIGHT for the newest) holds queued chunks for
 * about DP_AG_PREFETCH_US of work, DP_AG_PREFETCH_MAX jobs at most, and is
 * topped up when half of that is left; otherwise it gets a chunk only when
 * idle. */
#define DP_AG_SHORT_US 1000
#define DP_AG_PREFETCH_US 2000
#define DP_AG_PREFETCH_MAX 64
#define DP_AG_AVG_WEIGHT 8

typedef struct dp_ag_child dp_ag_child_t;

/* dp_ag_sink_fn: a local agent's results: the RESULTS message in
 * data[0..len), now the sink's (free() it). */
typedef void (*dp_ag_sink_fn)(void *arg, char *data, size_t len);

#define DP_AG_LOCAL_HANDBACKS 16 /* local: REQUEUEs of one job, at most */

/* A received JOBS frame (msg), or a local agent's SUBMIT (own: no ZeroMQ
 * call is made for it), shared by the jobs in it. */
typedef struct {
    zmq_msg_t msg;
    char *own;
    const uint8_t *data;
    size_t len;
    uint32_t refs;
} dp_ag_frame_t;

typedef struct dp_ag_job {
    /* laid out without padding (80 bytes): a batch's records are pages
     * first touched by it, ~10 us each on the reference VM */
    uint64_t id;
    dp_ag_frame_t *frame;
    const uint8_t *raw;
    dp_ag_child_t *child;          /* NULL while queued */
    uint64_t deadline_ms;          /* agent-side limit once running, else 0 */
    struct dp_ag_job *prev, *next; /* local queue or the child's list */
    uint32_t raw_len;              /* < a message's size limit (2 GiB) */
    uint32_t attempt;
    uint32_t timeout_ms; /* resolved: the job's or its type's */
    uint32_t group;      /* the JOBS message (chunk) it came in */
    uint8_t cls;         /* a dp_class_t */
    uint8_t retries;     /* the job's retry budget (local: LOST again) */
    uint8_t handbacks;   /* local: times queued again unstarted */
    bool cancelled, timed_out;
} dp_ag_job_t;

/* A list of jobs for DP_LIST_PUSH / DP_LIST_UNLINK (common/dp_list.h). */
typedef struct {
    dp_ag_job_t *head, *tail;
    size_t n;
} dp_ag_jlist_t;

struct dp_ag_child {
    pid_t pid;
    int fd;
    dp_class_t cls;
    uint32_t cap;        /* jobs at once: 1 (cpu) or io_slots */
    dp_ag_jlist_t jobs;  /* jobs it holds, oldest first */
    uint32_t done;       /* jobs finished (max-jobs-per-child) */
    uint64_t avg_us;     /* moving average of its jobs' run time, 0 = none */
    bool retiring;       /* fd closed or killed: gets no more jobs */
    bool eof;            /* its end closed: no longer polled */
    uint64_t kill_at_ms; /* SIGKILL deadline after SIGTERM, 0 = none */
    dp_framer_t in;
    dp_ag_child_t *next;
};

struct dp_agent {
    dp_agent_cfg_t cfg;
    /* the broker link (dp_agent_link.c) */
    void *ctx, *sock;
    bool connected;         /* WELCOME received on this socket */
    uint64_t wait_since_ms; /* !connected: since when (for the warning) */
    bool warned;            /* !connected: "still trying" was logged */
    uint64_t hb_ms;
    uint64_t last_rx_ms, next_hb_ms, next_ready_ms;
    uint64_t backoff_ms;
    /* the children (dp_agent_kids.c) */
    dp_ag_child_t *children;
    uint32_t want[DP_CLASS_COUNT]; /* children of each class to keep */
    bool io_used; /* an io job came: the io child is kept from then on */
    uint64_t respawn_at_ms;
    /* jobs and results (dp_agent_jobs.c) */
    dp_ag_jlist_t queue[DP_CLASS_COUNT];
    uint32_t next_group;
    dp_slab_t slab; /* job records */
    dp_wr_t out;    /* RESULTS for the broker being built */
    uint32_t nout;
    /* stopping (dp_agent.c) */
    bool draining;
    bool signalled; /* a stop signal came (a second one kills) */
    uint64_t drain_end_ms;
    bool reap; /* SIGCHLD came: dp_ag_reap this turn */
    dp_wr_t w; /* scratch writer */
    /* a local agent (client/dp_local.c: the pool's own children, no
     * broker): finished RESULTS batches go to sink, and the broker's
     * part of a job's life is done here: a LOST job runs again within
     * its retries, a REQUEUE one is queued again (dp_ag_finish) */
    dp_ag_sink_fn sink;
    void *sink_arg;
};

/* ---- the broker link (dp_agent_link.c) ---- */

/* dp_ag_open_socket: a new DEALER to cfg.connect (the old one closed),
 * CURVE when keys are set; the agent then waits for WELCOME. 0 or an
 * error (logged). */
int dp_ag_open_socket(dp_agent_t *a);

/* dp_ag_read_broker: handle what the broker sent, DP_AGENT_BURST messages
 * at most per call. */
void dp_ag_read_broker(dp_agent_t *a);

/* dp_ag_link_timers: READY with backoff while not joined, the broker's
 * liveness and our HEARTBEAT once joined. */
void dp_ag_link_timers(dp_agent_t *a, uint64_t now);

/* dp_ag_link_due: the earliest link deadline (dp_now_ms), at most one
 * heartbeat from now. */
uint64_t dp_ag_link_due(const dp_agent_t *a, uint64_t now);

/* dp_ag_send_stop_credit: CREDIT 0 0, the broker sends no more jobs. */
void dp_ag_send_stop_credit(dp_agent_t *a);

/* dp_ag_say_bye: BYE to the broker. */
void dp_ag_say_bye(dp_agent_t *a);

/* dp_ag_start_drain: stop as on SIGTERM (dp_agent.c): no new jobs, the
 * queued ones back to the broker, the running ones get the grace. */
void dp_ag_start_drain(dp_agent_t *a);

/* ---- the children (dp_agent_kids.c) ---- */

/* dp_ag_top_up: start children until each class has what it wants (not
 * while draining, nor before a respawn pause ends). */
void dp_ag_top_up(dp_agent_t *a);
/* dp_ag_top_up_max: the same, starting `max` children at most (0: no
 * limit); true when more are wanted (call again: a local pool starts
 * one per turn, so the jobs that came meanwhile go to the first one
 * while the next starts, instead of waiting out every start: posix_spawn
 * returns only once the child has exec'd, ~1-7 ms when two children
 * start together on two cores). */
bool dp_ag_top_up_max(dp_agent_t *a, uint32_t max);

/* dp_ag_retire: no more jobs for c; closing its fd tells it to exit. */
void dp_ag_retire(dp_ag_child_t *c);

/* dp_ag_kill: signal c (it gets no more jobs); after SIGTERM, SIGKILL
 * follows DP_KILL_GRACE_MS later (dp_ag_check_deadlines). */
void dp_ag_kill(dp_ag_child_t *c, int sig);

/* dp_ag_assign: give queued jobs to children with room. */
void dp_ag_assign(dp_agent_t *a);

/* dp_ag_child_readable: read and handle what child c sent; a child that
 * sends what cannot be read is killed. */
void dp_ag_child_readable(dp_agent_t *a, dp_ag_child_t *c);

/* dp_ag_reap: reap every child that ended, answer its jobs, free it
 * (waitpid on each child's own pid: a local agent lives in a process
 * whose other children are not ours). true when a child whose fd closed
 * has not ended yet (call again soon). */
bool dp_ag_reap(dp_agent_t *a);

/* dp_ag_kids_close: a gentler dp_ag_kids_stop: cpu children are killed
 * (they hold nothing to clean up, a kernel cannot be asked to stop, and
 * SIGKILL ends them faster than their exit), and so is an idle io child;
 * an io child with downloads is told to go (EOF: it cancels them and
 * removes the files of unfinished bodies) and waited for up to grace_ms;
 * then dp_ag_kids_stop. */
void dp_ag_kids_close(dp_agent_t *a, uint64_t grace_ms);

/* dp_ag_kids_stop: SIGKILL every child, wait for each, answer its jobs,
 * free it. */
void dp_ag_kids_stop(dp_agent_t *a);

/* dp_ag_cancel_all: every job, queued or held, is cancelled (a local
 * pool's CANCEL of all its jobs). dp_ag_cancel_ids: jobs ids[0..n), as
 * dp_ag_cancel does each, in one walk of the queues and children (ids
 * not held are ignored). */
void dp_ag_cancel_all(dp_agent_t *a);
void dp_ag_cancel_ids(dp_agent_t *a, const uint64_t *ids, size_t n);

/* dp_ag_check_deadlines: SIGKILL after an ignored SIGTERM; jobs over their
 * time limit: stop a cpu child, cancel in the io child. */
void dp_ag_check_deadlines(dp_agent_t *a, uint64_t now);

/* dp_ag_kids_due: t, or an earlier child deadline (respawn, SIGKILL, a
 * running job's time limit). */
uint64_t dp_ag_kids_due(const dp_agent_t *a, uint64_t now, uint64_t t);

/* dp_ag_cancel: job id is cancelled wherever it is: answered at once if
 * queued; else the io child is told, a cpu child running it is killed,
 * one waiting in a child is answered when its turn comes. */
void dp_ag_cancel(dp_agent_t *a, uint64_t id);

/* ---- jobs and results (dp_agent_jobs.c) ---- */

/* dp_ag_core_init / dp_ag_core_release: the job records, queues, result
 * batch and children wanted, without any broker link (dp_agent_new adds
 * the link; a local agent has none). */
void dp_ag_core_init(dp_agent_t *a, const dp_agent_cfg_t *cfg);
void dp_ag_core_release(dp_agent_t *a);

/* dp_ag_job_free: the job's frame reference goes, the record back to the
 * slab. */
void dp_ag_job_free(dp_agent_t *a, dp_ag_job_t *j);

/* dp_ag_result_raw: queue an encoded result (a child's) for the broker. */
void dp_ag_result_raw(dp_agent_t *a, const void *raw, size_t len);

/* dp_ag_finish: the job ends with a result the agent makes; frees j. */
void dp_ag_finish(dp_agent_t *a, dp_ag_job_t *j, int code, const char *msg,
                  pid_t pid);

/* dp_ag_flush: send the queued results, once joined. */
void dp_ag_flush(dp_agent_t *a);

/* dp_ag_on_jobs: JOBS from the broker; body is moved out (the jobs point
 * into it). */
int dp_ag_on_jobs(dp_agent_t *a, zmq_msg_t *body);

/* dp_ag_on_submit: a local agent's SUBMIT [seq, [job...], chunksize]
 * (a client's, PROTOCOL.md) in data[0..len), taken (free()d when its last
 * job is). Each job starts at attempt 1. */
int dp_ag_on_submit(dp_agent_t *a, char *data, size_t len);

/* dp_ag_cancel_queued: if job id waits in a queue, answer it CANCELLED
 * and return true. */
bool dp_ag_cancel_queued(dp_agent_t *a, uint64_t id);

/* dp_ag_requeue_queued: answer every queued job REQUEUE (drain). */
void dp_ag_requeue_queued(dp_agent_t *a, const char *why);

/* dp_ag_forget: drop the queued jobs and unsent results (the broker is
 * gone, or the agent is); returns how many jobs were dropped. */
size_t dp_ag_forget(dp_agent_t *a);

#endif /* DP_AGENT_INT_H */
