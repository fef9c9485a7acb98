/*
 * dp_agent.c - worker agent: broker link, children, job tracking.
 *
 * Jobs the broker sends wait in a local FIFO per class until a child of
 * that class has room. Every job ends in exactly one result to the broker:
 * the child's own, or one the agent makes (LOST, TIMEOUT, CANCELLED,
 * REQUEUE when draining).
 */
#include "dp_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_clock.h"
#include "dp_frame.h"
#include "dp_keys.h"
#include "dp_list.h"
#include "dp_log.h"
#include "dp_msg.h"
#include "dp_rlimit.h"
#include "dp_zsock.h"

#define S_MSG_MAX 256
#define S_ARG_MAX 32
#define S_NUM_MAX 32
#define S_TYPES_MAX 64 /* job types announced in READY, at most */

extern char **environ;

typedef struct s_child s_child_t;

/* A received JOBS frame, shared by the jobs in it. */
typedef struct {
    zmq_msg_t msg;
    uint32_t refs;
} s_frame_t;

typedef struct s_job {
    uint64_t id;
    uint32_t attempt;
    uint32_t timeout_ms; /* resolved: the job's or its type's */
    dp_class_t cls;
    s_frame_t *frame;
    const uint8_t *raw;
    size_t raw_len;
    s_child_t *child;     /* NULL while queued */
    uint32_t group;       /* the JOBS message (chunk) it came in */
    uint64_t deadline_ms; /* agent-side limit once running, else 0 */
    bool cancelled, timed_out;
    struct s_job *prev, *next; /* local queue or the child's list */
} s_job_t;

typedef struct {
    s_job_t *head, *tail;
    size_t n;
} s_jlist_t;

/* Job records come from a slab (common/dp_list.h): no malloc per job on
 * the hot path. */
#define S_SLAB_JOBS 1024

struct s_child {
    pid_t pid;
    int fd;
    dp_class_t cls;
    uint32_t cap;        /* jobs at once: 1 (cpu) or io_slots */
    s_jlist_t jobs;      /* jobs it holds, oldest first */
    uint32_t done;       /* jobs finished (max-jobs-per-child) */
    bool retiring;       /* fd closed or killed: gets no more jobs */
    bool eof;            /* its end closed: no longer polled */
    uint64_t kill_at_ms; /* SIGKILL deadline after SIGTERM, 0 = none */
    dp_framer_t in;
    s_child_t *next;
};

struct dp_agent {
    dp_agent_cfg_t cfg;
    void *ctx, *sock;
    bool connected;         /* WELCOME received on this socket */
    uint64_t wait_since_ms; /* !connected: since when (for the warning) */
    bool warned;            /* !connected: "still trying" was logged */
    uint64_t hb_ms;
    uint64_t last_rx_ms, next_hb_ms, next_ready_ms;
    uint64_t backoff_ms;
    s_child_t *children;
    s_jlist_t queue[DP_CLASS_COUNT];
    uint32_t want[DP_CLASS_COUNT]; /* children of each class to keep */
    uint64_t respawn_at_ms;
    bool draining;
    uint64_t drain_end_ms;
    uint32_t next_group;
    dp_slab_t slab; /* job records */
    dp_wr_t out;    /* RESULTS for the broker being built */
    uint32_t nout;
    dp_wr_t w;
};

/* ---- lists ---- */

static void s_push(s_jlist_t *l, s_job_t *j)
{
    DP_LIST_PUSH(l, j, false);
}

static void s_unlink(s_jlist_t *l, s_job_t *j)
{
    DP_LIST_UNLINK(l, j);
}

static s_job_t *s_job_new(dp_agent_t *a)
{
    return dp_slab_alloc(&a->slab);
}

static void s_frame_unref(s_frame_t *f);

/* s_job_free: the job's frame reference goes, the record back to the
 * free list. */
static void s_job_free(dp_agent_t *a, s_job_t *j)
{
    s_frame_unref(j->frame);
    dp_slab_free(&a->slab, j);
}

static void s_frame_unref(s_frame_t *f)
{
    if (f && --f->refs == 0) {
        zmq_msg_close(&f->msg);
        free(f);
    }
}

/* ---- results ---- */

static void s_out_raw(dp_agent_t *a, const void *raw, size_t len)
{
    dp_msg_batch_add(&a->out, &a->nout, DP_CMD_RESULTS, raw, len);
    if (a->out.err)
        dp_error("out of memory: a result is lost");
}

/* s_finish: the job ends with a result the agent makes; frees the job. */
static void s_finish(dp_agent_t *a, s_job_t *j, int code, const char *msg,
                     pid_t pid)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_put_result(&w, j->id, (uint32_t)code, NULL, msg, a->cfg.child.name,
                      (uint32_t)pid, 0, j->attempt);
    if (!w.err)
        s_out_raw(a, w.buf.data, w.buf.len);
    dp_wr_release(&w);
    s_job_free(a, j);
}

static void s_flush(dp_agent_t *a)
{
    if (a->nout == 0 || !a->connected)
        return;
    dp_msg_batch_close(&a->out, a->nout);
    if (dp_zsend(a->sock, NULL, 0, &a->out, ZMQ_DONTWAIT)) /* no copy */
        dp_warn("could not send %u results: %s", a->nout,
                zmq_strerror(zmq_errno()));
    dp_wr_reset(&a->out);
    a->nout = 0;
}

/* ---- children ---- */

static void s_num(char *buf, size_t len, unsigned long long v)
{
    snprintf(buf, len, "%llu", v);
}

/* s_spawn: fork+exec `self --child CLASS` with a socketpair on fd 3. */
static s_child_t *s_spawn(dp_agent_t *a, dp_class_t cls)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        dp_error("socketpair: %s", strerror(errno));
        return NULL;
    }
    const dp_child_cfg_t *cc = &a->cfg.child;
    char iters[S_NUM_MAX], dklen[S_NUM_MAX], dlmax[S_NUM_MAX],
        maxmsg[S_NUM_MAX], ppid[S_NUM_MAX];
    s_num(iters, sizeof iters, cc->limits.hash_max_iterations);
    s_num(dklen, sizeof dklen, cc->limits.hash_max_dklen);
    s_num(dlmax, sizeof dlmax, cc->limits.download_max_bytes);
    s_num(maxmsg, sizeof maxmsg, cc->wire.max_msg_bytes);
    s_num(ppid, sizeof ppid, (unsigned long long)getpid());
    const char *argv[S_ARG_MAX] = {"dpool-worker",
                                   "--child",
                                   cls == DP_CLASS_IO ? "io" : "cpu",
                                   "--name",
                                   cc->name,
                                   "--parent-pid",
                                   ppid,
                                   "--hash-max-iterations",
                                   iters,
                                   "--hash-max-dklen",
                                   dklen,
                                   "--max-download",
                                   dlmax,
                                   "--max-msg-size",
                                   maxmsg};
    int argc = 15;
    if (cc->store_dir) {
        argv[argc++] = "--store-on-worker";
        argv[argc++] = cc->store_dir;
    }
    if (cc->ca_file) {
        argv[argc++] = "--ca-file";
        argv[argc++] = cc->ca_file;
    }
    if (cc->insecure)
        argv[argc++] = "--insecure";
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], DP_CHILD_FD);
    pid_t pid;
    int rc = posix_spawn(&pid, a->cfg.self_exe, &fa, NULL, (char *const *)argv,
                         environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    s_child_t *c = rc == 0 ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        dp_error("cannot start a child (%s): %s", a->cfg.self_exe,
                 strerror(rc ? rc : ENOMEM));
        close(sv[0]);
        return NULL;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    c->pid = pid;
    c->fd = sv[0];
    c->cls = cls;
    c->cap = cls == DP_CLASS_IO ? (uint32_t)a->cfg.io_slots : 1;
    dp_framer_init(&c->in, cc->wire.max_msg_bytes);
    c->next = a->children;
    a->children = c;
    dp_debug("started %s child %d", cls == DP_CLASS_IO ? "io" : "cpu",
             (int)pid);
    return c;
}

/* s_top_up: start children until each class has what it wants. */
static void s_top_up(dp_agent_t *a)
{
    if (a->draining || dp_now_ms() < a->respawn_at_ms)
        return;
    uint32_t have[DP_CLASS_COUNT] = {0, 0};
    for (s_child_t *c = a->children; c; c = c->next)
        if (!c->retiring)
            have[c->cls]++;
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++)
        for (; have[cls] < a->want[cls]; have[cls]++)
            if (!s_spawn(a, (dp_class_t)cls))
                return;
}

/* s_retire: no more jobs for c; closing its fd tells it to exit. */
static void s_retire(s_child_t *c)
{
    if (c->retiring)
        return;
    c->retiring = true;
    shutdown(c->fd, SHUT_WR);
}

static void s_kill(s_child_t *c, int sig)
{
    c->retiring = true;
    kill(c->pid, sig);
    if (sig == SIGTERM)
        c->kill_at_ms = dp_now_ms() + DP_KILL_GRACE_MS;
}

/* s_describe: how a child ended, for LOST messages. */
static void s_describe(char *buf, size_t len, pid_t pid, int status)
{
    if (WIFSIGNALED(status))
        snprintf(buf, len, "child %d killed by signal %d (%s)", (int)pid,
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "child %d exited with status %d", (int)pid,
                 WEXITSTATUS(status));
}

/* s_child_ended: answer for every job c held, then free c. */
static void s_child_ended(dp_agent_t *a, s_child_t *c, int status)
{
    char why[S_MSG_MAX];
    s_describe(why, sizeof why, c->pid, status);
    if (c->jobs.n)
        dp_info("%s with %zu job(s)", why, c->jobs.n);
    bool head = true;
    while (c->jobs.head) {
        s_job_t *j = c->jobs.head;
        s_unlink(&c->jobs, j);
        bool ran = head || c->cls == DP_CLASS_IO;
        head = false;
        if (j->timed_out) {
            char msg[S_MSG_MAX];
            snprintf(msg, sizeof msg, "time limit of %.3f s exceeded",
                     j->timeout_ms / 1000.0);
            s_finish(a, j, DP_ERR_TIMEOUT, msg, c->pid);
        } else if (j->cancelled) {
            s_finish(a, j, DP_ERR_CANCELLED, "cancelled", c->pid);
        } else if (ran) {
            s_finish(a, j, DP_ERR_LOST, why, c->pid);
        } else { /* waited behind the job that died: never started */
            s_finish(a, j, DP_ERR_REQUEUE, why, c->pid);
        }
    }
    if (c->done == 0 && !c->retiring) /* died at birth: do not spin */
        a->respawn_at_ms = dp_now_ms() + DP_RESPAWN_MIN_MS;
    for (s_child_t **pp = &a->children; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    close(c->fd);
    dp_framer_release(&c->in);
    free(c);
}

static void s_reap(dp_agent_t *a)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (s_child_t *c = a->children; c; c = c->next) {
            if (c->pid == pid) {
                s_child_ended(a, c, status);
                break;
            }
        }
    }
}

/* ---- handing out jobs ---- */

/* s_start: send child c the jobs from the head of queue q: a whole chunk
 * (the jobs of one JOBS message) for a cpu child, which runs them in
 * order; up to its free room for the io child, which runs them at once.
 * Only running jobs have a deadline. */
static int s_start(dp_agent_t *a, s_child_t *c, s_jlist_t *q)
{
    uint32_t group = q->head->group;
    size_t n = 0;
    for (s_job_t *j = q->head; j; j = j->next) {
        if (c->cls == DP_CLASS_CPU ? j->group != group
                                   : c->jobs.n + n >= c->cap)
            break; /* a cpu child takes one whole chunk */
        n++;
    }
    dp_wr_reset(&a->w);
    size_t at = dp_msg_jobs_begin(&a->w, (uint32_t)n);
    size_t k = 0;
    for (s_job_t *j = q->head; k < n; j = j->next, k++)
        dp_msg_jobs_add(&a->w, j->attempt, j->raw, j->raw_len);
    dp_msg_jobs_close(&a->w, at, (uint32_t)n);
    if (a->w.err || dp_frame_write(c->fd, a->w.buf.data, a->w.buf.len))
        return DP_ERR_IO;
    uint64_t now = dp_now_ms();
    for (k = 0; k < n; k++) {
        s_job_t *j = q->head;
        s_unlink(q, j);
        j->child = c;
        bool running = c->cls == DP_CLASS_IO || c->jobs.n == 0;
        j->deadline_ms =
            running ? now + j->timeout_ms + DP_TIMEOUT_SLACK_MS : 0;
        s_push(&c->jobs, j);
    }
    return 0;
}

static void s_assign(dp_agent_t *a)
{
    for (s_child_t *c = a->children; c; c = c->next) {
        s_jlist_t *q = &a->queue[c->cls];
        /* a cpu child takes a chunk only when idle: chunks left waiting
         * in the agent go to whichever child frees first */
        bool room = c->cls == DP_CLASS_IO ? c->jobs.n < c->cap : c->jobs.n == 0;
        if (c->retiring || !q->head || !room)
            continue;
        if (s_start(a, c, q))
            s_kill(c, SIGKILL); /* its jobs stay queued for another */
    }
}

/* s_on_child_result: one result from child c. */
static void s_on_child_result(dp_agent_t *a, s_child_t *c, const dp_res_t *res)
{
    s_job_t *j = c->jobs.head;
    while (j && j->id != res->id)
        j = j->next;
    if (!j) {
        dp_warn("child %d answered for a job it does not hold", (int)c->pid);
        return;
    }
    bool was_head = j == c->jobs.head;
    s_unlink(&c->jobs, j);
    c->done++;
    if (was_head && c->jobs.head && c->jobs.head->deadline_ms == 0)
        c->jobs.head->deadline_ms =
            dp_now_ms() + c->jobs.head->timeout_ms + DP_TIMEOUT_SLACK_MS;
    if (j->timed_out)
        s_finish(a, j, DP_ERR_TIMEOUT, "time limit exceeded", c->pid);
    else if (j->cancelled)
        s_finish(a, j, DP_ERR_CANCELLED, "cancelled", c->pid);
    else {
        s_out_raw(a, res->raw.ptr, res->raw.len);
        s_job_free(a, j);
    }
    if (a->cfg.max_jobs_per_child > 0 && c->cls == DP_CLASS_CPU &&
        c->done >= (uint32_t)a->cfg.max_jobs_per_child)
        s_retire(c);
}

/* s_child_frame: a RESULTS frame from c; anything else means the child is
 * broken (it is killed and its jobs reported lost). */
static int s_child_frame(dp_agent_t *a, s_child_t *c, const char *data,
                         size_t len)
{
    int cmd;
    dp_rd_t r;
    uint32_t n;
    int rc = dp_msg_open(data, len, &a->cfg.child.wire, &cmd, &r);
    if (!rc && cmd != DP_CMD_RESULTS)
        rc = DP_ERR_UNKNOWN_CMD;
    if (!rc)
        rc = dp_msg_read_results(&r, &n);
    for (uint32_t k = 0; !rc && k < n; k++) {
        dp_res_t res;
        if (!(rc = dp_msg_read_result(&r, &res)))
            s_on_child_result(a, c, &res);
    }
    return rc;
}

static void s_child_readable(dp_agent_t *a, s_child_t *c)
{
    /* the fd is non-blocking: take what is there, a few chunks at most so
     * one child sending a large body does not hold up the others */
    int rc = 0;
    for (int k = 0; k < DP_AGENT_READS_PER_WAKE && !rc; k++) {
        size_t before = c->in.len - c->in.off;
        rc = dp_framer_fill(&c->in, c->fd);
        if (c->in.len - c->in.off == before)
            break;
    }
    /* dp_framer_next: 1 a frame, 0 none yet, else an error (TOO_BIG is
     * positive): a child that sends a frame we cannot read is killed, its
     * job reported lost when it is reaped, and nothing more is read */
    bool bad = false;
    while (!c->eof) {
        const char *data;
        size_t len;
        int got = dp_framer_next(&c->in, &data, &len);
        if (got == 0)
            break;
        if (got != 1 || s_child_frame(a, c, data, len)) {
            bad = true;
            break;
        }
    }
    if (bad) {
        dp_error("child %d sent a bad or oversized frame; killing it",
                 (int)c->pid);
        s_kill(c, SIGKILL);
        rc = DP_ERR_IO;
    }
    if (rc == DP_ERR_EOF || rc == DP_ERR_IO) {
        c->eof = true; /* it is exiting; SIGCHLD follows */
        c->retiring = true;
    }
}

/* ---- the broker link ---- */

static void s_send_ready(dp_agent_t *a)
{
    size_t ntypes;
    const dp_jobtype_t *types = dp_jobtab_all(&ntypes);
    const char *names[S_TYPES_MAX];
    size_t n = 0;
    for (size_t k = 0; k < ntypes && n < S_TYPES_MAX; k++)
        names[n++] = types[k].name;
    dp_wr_reset(&a->w);
    dp_msg_ready(&a->w, a->cfg.child.name, (uint32_t)getpid(),
                 a->draining ? 0 : (uint32_t)a->cfg.processes,
                 a->draining ? 0 : (uint32_t)a->cfg.io_slots, names, n);
    dp_zsend(a->sock, NULL, 0, &a->w, ZMQ_DONTWAIT);
}

/* s_reconnect_fast: ZeroMQ retries a failed connect after 100 ms by
 * default; an embedded worker often starts before its broker binds, so
 * retry soon and back off from there. */
static void s_reconnect_fast(void *sock)
{
    int ivl = DP_RECONNECT_MIN_MS, max = DP_RECONNECT_MAX_MS;
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &max, sizeof max);
}

/* s_await_welcome: not (or no longer) joined: send READY at once and
 * warn if no WELCOME comes within DP_CONNECT_WARN_MS. */
static void s_await_welcome(dp_agent_t *a)
{
    a->connected = false;
    a->next_ready_ms = 0;
    a->wait_since_ms = dp_now_ms();
    a->warned = false;
}

static int s_open_socket(dp_agent_t *a)
{
    if (a->sock)
        zmq_close(a->sock);
    a->sock = zmq_socket(a->ctx, ZMQ_DEALER);
    if (!a->sock)
        return DP_ERR_IO;
    int one = 1, zero = 0;
    int64_t maxmsg = (int64_t)a->cfg.child.wire.max_msg_bytes;
    dp_zsock_linger0(a->sock);
    zmq_setsockopt(a->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    s_reconnect_fast(a->sock);
    zmq_setsockopt(a->sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(a->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    char kerr[DP_KEY_ERR_MAX]; /* CURVE client (dp_keys.h) */
    if (dp_keys_client(a->sock, a->cfg.curve_key, a->cfg.broker_key, kerr,
                       sizeof kerr)) {
        dp_error("%s", kerr);
        return DP_ERR_INVALID;
    }
    if (zmq_connect(a->sock, a->cfg.connect) != 0) {
        dp_error("cannot connect to %s: %s", a->cfg.connect,
                 zmq_strerror(zmq_errno()));
        return DP_ERR_INVALID;
    }
    s_await_welcome(a);
    return 0;
}

/* s_broker_lost: forget what the broker gave us that has not started (it
 * requeues our leases itself) and reconnect with backoff. */
static void s_broker_lost(dp_agent_t *a, const char *why)
{
    size_t dropped = 0;
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        while (a->queue[cls].head) {
            s_job_t *j = a->queue[cls].head;
            s_unlink(&a->queue[cls], j);
            s_job_free(a, j);
            dropped++;
        }
    }
    dp_wr_reset(&a->out);
    a->nout = 0;
    dp_warn("broker %s %s; reconnecting (%zu queued jobs dropped)",
            a->cfg.connect, why, dropped);
    a->backoff_ms = DP_RECONNECT_MIN_MS;
    s_open_socket(a);
}

/* JOBS [chunk, [[attempt, job]...]]: runs of `chunk` jobs are dispatch
 * units, each for one child. frame holds the message, moved out of the
 * socket's so the jobs can point into it. */
static int s_on_jobs(dp_agent_t *a, s_frame_t *frame)
{
    int cmd;
    dp_rd_t r;
    uint32_t n;
    int rc = dp_msg_open(zmq_msg_data(&frame->msg), zmq_msg_size(&frame->msg),
                         &a->cfg.child.wire, &cmd, &r);
    uint32_t chunk = 1;
    if (!rc)
        rc = dp_msg_read_jobs(&r, &chunk, &n);
    uint32_t group = 0;
    for (uint32_t k = 0; !rc && k < n; k++) {
        uint32_t attempt;
        dp_job_t job;
        rc = dp_msg_read_dispatch(&r, &attempt, &job);
        if (rc)
            break;
        if (k % chunk == 0)
            group = ++a->next_group; /* each chunk goes to one child */
        s_job_t *j = s_job_new(a);
        if (!j)
            return DP_ERR_NOMEM;
        j->group = group;
        const dp_jobtype_t *t = dp_jobtab_find(job.type, job.type_len);
        j->id = job.id;
        j->attempt = attempt;
        j->frame = frame;
        frame->refs++;
        j->raw = job.raw.ptr;
        j->raw_len = job.raw.len;
        j->cls = t ? t->cls : DP_CLASS_CPU;
        j->timeout_ms =
            job.timeout_ms ? job.timeout_ms : (t ? t->timeout_ms : 0);
        if (a->draining)
            s_finish(a, j, DP_ERR_REQUEUE, "worker is stopping", 0);
        else
            s_push(&a->queue[j->cls], j); /* unknown types: the child
                                              answers UNKNOWN_TYPE */
    }
    return rc ? rc : dp_msg_end(&r);
}

/* s_cancel_one: the broker cancels job id. */
static void s_cancel_one(dp_agent_t *a, uint64_t id)
{
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        for (s_job_t *j = a->queue[cls].head; j; j = j->next) {
            if (j->id == id) {
                s_unlink(&a->queue[cls], j);
                s_finish(a, j, DP_ERR_CANCELLED, "cancelled", 0);
                return;
            }
        }
    }
    for (s_child_t *c = a->children; c; c = c->next) {
        for (s_job_t *j = c->jobs.head; j; j = j->next) {
            if (j->id != id || j->cancelled)
                continue;
            j->cancelled = true;
            if (c->cls == DP_CLASS_IO) {
                dp_wr_reset(&a->w);
                dp_msg_cancel(&a->w, &id, 1);
                if (!a->w.err)
                    dp_frame_write(c->fd, a->w.buf.data, a->w.buf.len);
            } else if (j == c->jobs.head) {
                s_kill(c, SIGKILL); /* the only way to stop a kernel */
            } /* else: it has not started; answered when its turn comes */
            return;
        }
    }
}

static int s_on_cancel(dp_agent_t *a, dp_rd_t *r)
{
    uint32_t n;
    int rc = dp_msg_read_cancel(r, &n);
    for (uint32_t k = 0; !rc && k < n; k++) {
        uint64_t id;
        rc = dp_msg_read_cancel_id(r, &id);
        if (!rc)
            s_cancel_one(a, id);
    }
    return rc;
}

/* WELCOME [peer_no, hb_ms, max_msg, cpu_slots, io_slots] */
static int s_on_welcome(dp_agent_t *a, dp_rd_t *r)
{
    dp_welcome_t wm;
    int rc = dp_msg_read_welcome(r, &wm);
    if (rc)
        return rc;
    uint64_t no = wm.peer_no, hb = wm.heartbeat_ms;
    if (!a->connected && a->warned)
        dp_info("connected to %s after %.1f s", a->cfg.connect,
                (double)(dp_now_ms() - a->wait_since_ms) / DP_MS_PER_S);
    if (!a->connected)
        dp_info("joined broker %s as #%llu", a->cfg.connect,
                (unsigned long long)no);
    a->warned = false;
    a->connected = true;
    a->hb_ms = hb ? hb : DP_WORKER_HB_MS_DEFAULT;
    a->backoff_ms = DP_RECONNECT_MIN_MS;
    return 0;
}

static void s_on_broker(dp_agent_t *a, dp_zmsg_t *m)
{
    int cmd;
    dp_rd_t r;
    int rc = dp_msg_open(zmq_msg_data(&m->body), zmq_msg_size(&m->body),
                         &a->cfg.child.wire, &cmd, &r);
    if (rc) {
        dp_warn("bad message from the broker: %s", dp_strerror(rc));
        return;
    }
    a->last_rx_ms = dp_now_ms();
    switch (cmd) {
    case DP_CMD_WELCOME:
        rc = s_on_welcome(a, &r);
        break;
    case DP_CMD_JOBS: {
        s_frame_t *f = calloc(1, sizeof *f);
        if (!f) {
            rc = DP_ERR_NOMEM;
            break;
        }
        zmq_msg_init(&f->msg);
        zmq_msg_move(&f->msg, &m->body);
        f->refs = 1;
        rc = s_on_jobs(a, f);
        s_frame_unref(f);
        break;
    }
    case DP_CMD_CANCEL:
        rc = s_on_cancel(a, &r);
        break;
    case DP_CMD_ERROR: {
        dp_error_msg_t e;
        if (dp_msg_read_error(&r, &e))
            e.code = 0, e.message = "", e.message_len = 0;
        if (e.code == DP_ERR_UNKNOWN_PEER) /* the broker restarted */
            s_await_welcome(a);
        else
            dp_warn("broker says: %.*s", (int)e.message_len, e.message);
        break;
    }
    case DP_CMD_SHUTDOWN:
        s_broker_lost(a, "is shutting down");
        break;
    default:
        break; /* HEARTBEAT: liveness only */
    }
    if (rc)
        dp_warn("bad %s from the broker: %s", dp_cmd_name(cmd),
                dp_strerror(rc));
}

/* ---- timers ---- */

static void s_check_deadlines(dp_agent_t *a, uint64_t now)
{
    for (s_child_t *c = a->children; c; c = c->next) {
        if (c->kill_at_ms && now >= c->kill_at_ms) {
            dp_warn("child %d ignored SIGTERM; SIGKILL", (int)c->pid);
            c->kill_at_ms = 0;
            kill(c->pid, SIGKILL);
        }
        for (s_job_t *j = c->jobs.head; j; j = j->next) {
            if (j->timed_out || j->cancelled || j->deadline_ms == 0 ||
                now < j->deadline_ms)
                continue;
            j->timed_out = true;
            if (c->cls == DP_CLASS_CPU) {
                dp_info("job %llx over its %u ms limit; stopping child %d",
                        (unsigned long long)j->id, j->timeout_ms, (int)c->pid);
                s_kill(c, SIGTERM);
            } else {
                s_cancel_one(a, j->id); /* marks it; TIMEOUT wins */
                j->cancelled = false;
                j->timed_out = true;
            }
        }
    }
}

/* s_connect_warn: say once per wait that no WELCOME came yet (a worker
 * pointed at nothing, or refused by CURVE, is otherwise silent). */
static void s_connect_warn(dp_agent_t *a, uint64_t now)
{
    if (a->warned || now < a->wait_since_ms + DP_CONNECT_WARN_MS)
        return;
    a->warned = true;
    dp_warn("no answer from %s yet; still trying (is the broker running? "
            "with CURVE, are the keys right?)",
            a->cfg.connect);
}

static void s_link_timers(dp_agent_t *a, uint64_t now)
{
    if (!a->connected) {
        s_connect_warn(a, now);
        if (now >= a->next_ready_ms) {
            s_send_ready(a);
            a->next_ready_ms = now + a->backoff_ms;
            a->backoff_ms = a->backoff_ms * 2 > DP_RECONNECT_MAX_MS
                                ? DP_RECONNECT_MAX_MS
                                : a->backoff_ms * 2;
        }
        return;
    }
    if (now - a->last_rx_ms > a->hb_ms * DP_HEARTBEAT_LIVENESS_W) {
        s_broker_lost(a, "missed its heartbeats");
        return;
    }
    if (now >= a->next_hb_ms) {
        dp_wr_reset(&a->w);
        dp_msg_empty(&a->w, DP_CMD_HEARTBEAT);
        dp_zsend(a->sock, NULL, 0, &a->w, ZMQ_DONTWAIT);
        a->next_hb_ms = now + a->hb_ms;
    }
}

static uint64_t s_next_deadline(const dp_agent_t *a, uint64_t now)
{
    uint64_t t = now + a->hb_ms;
    if (!a->connected && a->next_ready_ms < t)
        t = a->next_ready_ms;
    if (!a->connected && !a->warned &&
        a->wait_since_ms + DP_CONNECT_WARN_MS < t)
        t = a->wait_since_ms + DP_CONNECT_WARN_MS;
    if (a->connected && a->next_hb_ms < t)
        t = a->next_hb_ms;
    if (a->connected && a->last_rx_ms + a->hb_ms * DP_HEARTBEAT_LIVENESS_W < t)
        t = a->last_rx_ms + a->hb_ms * DP_HEARTBEAT_LIVENESS_W + 1;
    if (a->respawn_at_ms > now && a->respawn_at_ms < t)
        t = a->respawn_at_ms;
    if (a->draining && a->drain_end_ms < t)
        t = a->drain_end_ms;
    for (const s_child_t *c = a->children; c; c = c->next) {
        if (c->kill_at_ms && c->kill_at_ms < t)
            t = c->kill_at_ms;
        for (const s_job_t *j = c->jobs.head; j; j = j->next)
            if (!j->timed_out && !j->cancelled && j->deadline_ms &&
                j->deadline_ms < t)
                t = j->deadline_ms;
    }
    return t > now ? t - now : 0;
}

/* ---- draining (SIGTERM) ---- */

static void s_start_drain(dp_agent_t *a)
{
    if (a->draining)
        return;
    a->draining = true;
    a->drain_end_ms = dp_now_ms() + (uint64_t)(a->cfg.drain_grace_s * 1000);
    dp_info("stopping: no new jobs; waiting up to %.1f s for running ones",
            a->cfg.drain_grace_s);
    dp_wr_reset(&a->w);
    dp_msg_credit(&a->w, 0, 0);
    dp_zsend(a->sock, NULL, 0, &a->w, ZMQ_DONTWAIT);
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        while (a->queue[cls].head) {
            s_job_t *j = a->queue[cls].head;
            s_unlink(&a->queue[cls], j);
            s_finish(a, j, DP_ERR_REQUEUE, "worker is stopping", 0);
        }
    }
    for (s_child_t *c = a->children; c; c = c->next)
        if (c->jobs.n == 0)
            s_retire(c);
}

/* s_drained: true once no child holds a job (idle ones are told to go). */
static bool s_drained(dp_agent_t *a, uint64_t now)
{
    bool busy = false;
    for (s_child_t *c = a->children; c; c = c->next) {
        if (c->jobs.n == 0)
            s_retire(c);
        else
            busy = true;
    }
    if (busy && now >= a->drain_end_ms) {
        dp_warn("grace period over; killing busy children");
        for (s_child_t *c = a->children; c; c = c->next)
            if (c->jobs.n)
                s_kill(c, SIGKILL);
        a->drain_end_ms = UINT64_MAX;
    }
    return !busy;
}

/* ---- loop ---- */

static void s_on_signals(dp_agent_t *a, int sig_fd)
{
    char buf[64];
    ssize_t n;
    while ((n = read(sig_fd, buf, sizeof buf)) > 0) {
        for (ssize_t k = 0; k < n; k++) {
            if (buf[k] == 'T' && a->draining) {
                dp_warn("second stop signal: killing children now");
                a->drain_end_ms = 0;
            } else if (buf[k] == 'T') {
                s_start_drain(a);
            }
        }
    }
    /* SIGCHLD: children are reaped by the loop after their fds are read
     * (freeing one here would pull it from under this poll round) */
}

static void s_read_broker(dp_agent_t *a)
{
    for (int k = 0; k < DP_AGENT_BURST; k++) {
        dp_zmsg_t m;
        int rc = dp_zrecv(a->sock, 0, &m, ZMQ_DONTWAIT);
        if (rc == DP_ERR_IO)
            return;
        if (rc == 0) {
            s_on_broker(a, &m);
            zmq_msg_close(&m.body);
        }
    }
}

static void s_say_bye(dp_agent_t *a)
{
    s_flush(a);
    dp_wr_reset(&a->w);
    dp_msg_empty(&a->w, DP_CMD_BYE);
    dp_zsend(a->sock, NULL, 0, &a->w, ZMQ_DONTWAIT);
}

int dp_agent_run(dp_agent_t *a, int sig_fd)
{
    a->last_rx_ms = dp_now_ms();
    for (;;) {
        uint64_t now = dp_now_ms();
        if (a->draining && s_drained(a, now) && !a->children) {
            s_say_bye(a);
            dp_info("stopped cleanly");
            return 0;
        }
        size_t nc = 0;
        for (s_child_t *c = a->children; c; c = c->next)
            nc++;
        zmq_pollitem_t items[2 + nc];
        s_child_t *who[nc + 1];
        items[0] = (zmq_pollitem_t){a->sock, 0, ZMQ_POLLIN, 0};
        items[1] = (zmq_pollitem_t){NULL, sig_fd, ZMQ_POLLIN, 0};
        int n = 2;
        for (s_child_t *c = a->children; c; c = c->next) {
            if (c->eof)
                continue;
            who[n - 2] = c;
            items[n++] = (zmq_pollitem_t){NULL, c->fd, ZMQ_POLLIN, 0};
        }
        int rc = zmq_poll(items, n, (long)s_next_deadline(a, now));
        if (rc < 0 && zmq_errno() != EINTR)
            return DP_ERR_IO;
        if (rc > 0 && (items[1].revents & ZMQ_POLLIN))
            s_on_signals(a, sig_fd);
        for (int k = 2; rc > 0 && k < n; k++)
            if (items[k].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                s_child_readable(a, who[k - 2]);
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN))
            s_read_broker(a);
        s_reap(a);
        now = dp_now_ms();
        s_check_deadlines(a, now);
        s_link_timers(a, now);
        s_top_up(a);
        s_assign(a);
        s_flush(a);
    }
}

/* ---- life cycle ---- */

dp_agent_t *dp_agent_new(const dp_agent_cfg_t *cfg)
{
    dp_agent_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->cfg = *cfg;
    dp_slab_init(&a->slab, sizeof(s_job_t), S_SLAB_JOBS);
    dp_rlimit_raise_nofile(); /* children and io sockets are files too */
    a->hb_ms = DP_WORKER_HB_MS_DEFAULT;
    a->backoff_ms = DP_RECONNECT_MIN_MS;
    a->want[DP_CLASS_CPU] = (uint32_t)cfg->processes;
    a->want[DP_CLASS_IO] = cfg->io_slots > 0 ? 1 : 0;
    dp_wr_init(&a->out);
    dp_wr_init(&a->w);
    s_top_up(a); /* children first: no ZeroMQ thread exists yet */
    a->ctx = zmq_ctx_new();
    if (!a->ctx || s_open_socket(a)) {
        dp_agent_destroy(&a);
        return NULL;
    }
    dp_info("worker %s: %ld cpu children, %ld io slots, broker %s",
            cfg->child.name, cfg->processes, cfg->io_slots, cfg->connect);
    return a;
}

void dp_agent_destroy(dp_agent_t **ap)
{
    if (!ap || !*ap)
        return;
    dp_agent_t *a = *ap;
    for (s_child_t *c = a->children; c; c = c->next)
        kill(c->pid, SIGKILL);
    while (a->children) {
        int status;
        s_child_t *c = a->children;
        waitpid(c->pid, &status, 0);
        s_child_ended(a, c, status);
    }
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        while (a->queue[cls].head) {
            s_job_t *j = a->queue[cls].head;
            s_unlink(&a->queue[cls], j);
            s_job_free(a, j);
        }
    }
    dp_slab_release(&a->slab);
    if (a->sock)
        zmq_close(a->sock);
    if (a->ctx)
        zmq_ctx_term(a->ctx);
    dp_wr_release(&a->out);
    dp_wr_release(&a->w);
    free(a);
    *ap = NULL;
}
