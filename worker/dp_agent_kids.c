/*
 * dp_agent_kids.c - the agent's children: spawned (`dpool-worker-cpu
 * --child cpu`, `dpool-worker-io --child io`, socketpair on fd 3), handed
 * jobs when they have room,
 * read (framed RESULTS), held to their jobs' time limits, reaped and
 * replaced. A child that dies is answered for: every job it held gets a
 * result (LOST, TIMEOUT, CANCELLED, or REQUEUE for one that never started).
 */
#include "dp_agent_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dp_clock.h"
#include "dp_frame.h"
#include "dp_log.h"
#include "dp_msg.h"

extern char **environ;

/* ---- starting and stopping ---- */

static void s_num(char *buf, size_t len, unsigned long long v)
{
    snprintf(buf, len, "%llu", v);
}

/* s_exe: the program a child of class cls runs, dpool-worker-cpu or
 * dpool-worker-io: programs of their own, not this one, so that no child
 * loads libzmq's library tree and only the io child loads libcurl's
 * (start-up time, paid by every child). */
static const char *s_exe(const dp_agent_t *a, dp_class_t cls)
{
    return cls == DP_CLASS_IO ? a->cfg.io_exe : a->cfg.cpu_exe;
}

/* s_exec: posix_spawn `PROGRAM --child CLASS` with fd on DP_CHILD_FD; 0 or
 * an errno. */
static int s_exec(dp_agent_t *a, dp_class_t cls, int fd, pid_t *pid)
{
    const dp_child_cfg_t *cc = &a->cfg.child;
    char iters[DP_AG_NUM_MAX], dklen[DP_AG_NUM_MAX], dlmax[DP_AG_NUM_MAX],
        maxmsg[DP_AG_NUM_MAX], ppid[DP_AG_NUM_MAX];
    s_num(iters, sizeof iters, cc->limits.hash_max_iterations);
    s_num(dklen, sizeof dklen, cc->limits.hash_max_dklen);
    s_num(dlmax, sizeof dlmax, cc->limits.download_max_bytes);
    s_num(maxmsg, sizeof maxmsg, cc->wire.max_msg_bytes);
    s_num(ppid, sizeof ppid, (unsigned long long)getpid());
    const char *prog =
        cls == DP_CLASS_IO ? DP_IO_CHILD_PROG : DP_CPU_CHILD_PROG;
    const char *argv[DP_AG_ARGV_MAX] = {prog,
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
    int argc = 15; /* the entries above */
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
    if (a->cfg.embedded) /* the user's own machine: downloads anywhere */
        argv[argc++] = "--embedded";
    argv[argc] = NULL;
    /* the child holds its socket, stdout and stderr, nothing else of ours: not
     * stdin (a local pool's client may be reading a pipe or terminal
     * there), not any descriptor a program using libdpool left without
     * O_CLOEXEC (a pipe kept open by a child never sees EOF) */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY,
                                     0);
    posix_spawn_file_actions_adddup2(&fa, fd, DP_CHILD_FD);
    posix_spawn_file_actions_addclosefrom_np(&fa, DP_CHILD_FD + 1);
    int rc = posix_spawn(pid, s_exe(a, cls), &fa, NULL, (char *const *)argv,
                         a->cfg.envp ? a->cfg.envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* s_spawn: a new child of class cls with a socketpair on fd 3. */
static dp_ag_child_t *s_spawn(dp_agent_t *a, dp_class_t cls)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        dp_error("socketpair: %s", strerror(errno));
        return NULL;
    }
    pid_t pid;
    int rc = s_exec(a, cls, sv[1], &pid);
    close(sv[1]);
    dp_ag_child_t *c = rc == 0 ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        dp_error("cannot start a child (%s): %s", s_exe(a, cls),
                 strerror(rc ? rc : ENOMEM));
        close(sv[0]);
        /* as for a child dying at birth: retry later, not every turn */
        a->respawn_at_ms = dp_now_ms() + DP_RESPAWN_MIN_MS;
        return NULL;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    c->pid = pid;
    c->fd = sv[0];
    c->cls = cls;
    c->cap = cls == DP_CLASS_IO ? (uint32_t)a->cfg.io_slots : 1;
    dp_framer_init(&c->in, a->cfg.child.wire.max_msg_bytes);
    /* at the tail: the oldest child, the first to be ready, is offered
     * jobs first (dp_ag_assign walks the list in order) */
    dp_ag_child_t **tail = &a->children;
    while (*tail)
        tail = &(*tail)->next;
    *tail = c;
    dp_debug("started %s child %d", cls == DP_CLASS_IO ? "io" : "cpu",
             (int)pid);
    return c;
}

bool dp_ag_top_up_max(dp_agent_t *a, uint32_t max)
{
    if (a->draining || dp_now_ms() < a->respawn_at_ms)
        return false;
    uint32_t have[DP_CLASS_COUNT] = {0, 0};
    for (dp_ag_child_t *c = a->children; c; c = c->next)
        if (!c->retiring)
            have[c->cls]++;
    /* the io child starts with the first io job: a worker (or an embedded
     * pool) that never downloads does not pay for its start-up; an io-only
     * worker (--processes 0) exists to download and starts it at once */
    if (a->queue[DP_CLASS_IO].head || !a->want[DP_CLASS_CPU])
        a->io_used = true;
    uint32_t want[DP_CLASS_COUNT] = {a->want[DP_CLASS_CPU],
                                     a->io_used ? a->want[DP_CLASS_IO] : 0};
    uint32_t started = 0;
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        for (; have[cls] < want[cls]; have[cls]++) {
            if (max && started == max)
                return true;
            if (!s_spawn(a, (dp_class_t)cls))
                return false;
            started++;
        }
    }
    return false;
}

void dp_ag_top_up(dp_agent_t *a)
{
    dp_ag_top_up_max(a, 0);
}

void dp_ag_retire(dp_ag_child_t *c)
{
    if (c->retiring)
        return;
    c->retiring = true;
    shutdown(c->fd, SHUT_WR);
}

void dp_ag_kill(dp_ag_child_t *c, int sig)
{
    c->retiring = true;
    kill(c->pid, sig);
    if (sig == SIGTERM)
        c->kill_at_ms = dp_now_ms() + DP_KILL_GRACE_MS;
}

/* ---- handing out jobs ---- */

/* s_chunk_len: the jobs of the dispatch unit at the head of q: a whole
 * chunk (one JOBS message's run) for a cpu child, which runs them in
 * order; up to room for the io child, which runs them at once. */
static size_t s_chunk_len(const dp_ag_child_t *c, const dp_ag_jlist_t *q,
                          size_t room)
{
    uint32_t group = q->head->group;
    size_t n = 0;
    for (const dp_ag_job_t *j = q->head; j; j = j->next) {
        if (c->cls == DP_CLASS_CPU ? j->group != group : n >= room)
            break;
        n++;
    }
    return n;
}

/* s_room: jobs cpu child c may be sent now beyond those it holds: one
 * chunk (of any size) when idle; when its jobs are short (prefetch), enough to
 * hold about DP_AG_PREFETCH_US of work, topped up once half of that is done,
 * never past --max-jobs-per-child. 0 = none. */
static size_t s_room(const dp_agent_t *a, const dp_ag_child_t *c)
{
    size_t hold = 0;
    if (a->cfg.prefetch > 1 && c->avg_us > 0 && c->avg_us < DP_AG_SHORT_US)
        hold = DP_AG_PREFETCH_US / c->avg_us;
    if (hold > (size_t)a->cfg.prefetch)
        hold = (size_t)a->cfg.prefetch;
    if (a->cfg.max_jobs_per_child > 0) {
        size_t max = (size_t)a->cfg.max_jobs_per_child;
        size_t left = c->done < max ? max - c->done : 0;
        if (left < hold)
            hold = left;
    }
    if (c->jobs.n == 0)
        return hold > 1 ? hold : 1; /* one chunk goes whatever its size */
    if (hold < 2 || c->jobs.n > hold / 2)
        return 0;
    return hold - c->jobs.n;
}

/* s_start: send child c the dispatch units at the head of q that fit in
 * room (an idle child's first always does), DP_FRAME_WRITE_MAX frames in
 * one write.
 * Only the job it runs first gets a deadline (s_on_result starts the
 * next one's). */
static int s_start(dp_agent_t *a, dp_ag_child_t *c, dp_ag_jlist_t *q,
                   size_t room)
{
    size_t lens[DP_FRAME_WRITE_MAX];
    size_t sent = 0;
    int nf = 0;
    dp_wr_reset(&a->w);
    const dp_ag_job_t *j = q->head;
    while (j && nf < DP_FRAME_WRITE_MAX) {
        dp_ag_jlist_t rest = {(dp_ag_job_t *)j, NULL, 0};
        size_t n = s_chunk_len(c, &rest, c->cap - c->jobs.n);
        if (sent + n > room && (nf > 0 || c->jobs.n > 0))
            break; /* only an idle child takes a chunk bigger than room */
        size_t before = a->w.buf.len;
        size_t at = dp_msg_jobs_begin(&a->w, (uint32_t)n);
        for (size_t k = 0; k < n; k++, j = j->next)
            dp_msg_jobs_add(&a->w, j->attempt, j->raw, j->raw_len);
        dp_msg_jobs_close(&a->w, at, (uint32_t)n);
        lens[nf++] = a->w.buf.len - before;
        sent += n;
        if (c->cls == DP_CLASS_IO)
            break;
    }
    if (nf == 0)
        return 0;
    if (a->w.err || dp_frame_write_many(c->fd, a->w.buf.data, lens, nf))
        return DP_ERR_IO;
    uint64_t now = dp_now_ms();
    for (size_t k = 0; k < sent; k++) {
        dp_ag_job_t *h = q->head;
        DP_LIST_UNLINK(q, h);
        h->child = c;
        bool running = c->cls == DP_CLASS_IO || c->jobs.n == 0;
        h->deadline_ms =
            running ? now + h->timeout_ms + DP_TIMEOUT_SLACK_MS : 0;
        DP_LIST_PUSH(&c->jobs, h, false);
    }
    return 0;
}

void dp_ag_assign(dp_agent_t *a)
{
    for (dp_ag_child_t *c = a->children; c; c = c->next) {
        dp_ag_jlist_t *q = &a->queue[c->cls];
        /* a cpu child with long jobs takes a chunk only when idle: chunks
         * left waiting in the agent go to whichever child frees first */
        size_t room = c->cls == DP_CLASS_IO ? c->cap - c->jobs.n : s_room(a, c);
        if (c->retiring || !q->head || room == 0)
            continue;
        if (s_start(a, c, q, room))
            dp_ag_kill(c, SIGKILL); /* its jobs stay queued for another */
    }
}

/* ---- reading results ---- */

/* s_on_result: one result from child c; *now is the clock (dp_now_ms),
 * read at most once for all the results of one read (0: not yet). */
static void s_on_result(dp_agent_t *a, dp_ag_child_t *c, const dp_res_t *res,
                        uint64_t *now)
{
    dp_ag_job_t *j = c->jobs.head;
    while (j && j->id != res->id)
        j = j->next;
    if (!j) {
        dp_warn("child %d answered for a job it does not hold", (int)c->pid);
        return;
    }
    bool was_head = j == c->jobs.head;
    DP_LIST_UNLINK(&c->jobs, j);
    c->done++;
    uint64_t run_us = res->elapsed_us ? res->elapsed_us : 1;
    c->avg_us = c->avg_us == 0 ? run_us
                               : (c->avg_us * (DP_AG_AVG_WEIGHT - 1) + run_us) /
                                     DP_AG_AVG_WEIGHT;
    if (was_head && c->jobs.head && c->jobs.head->deadline_ms == 0) {
        if (*now == 0)
            *now = dp_now_ms();
        c->jobs.head->deadline_ms =
            *now + c->jobs.head->timeout_ms + DP_TIMEOUT_SLACK_MS;
    }
    /* the next job was cancelled while it waited in the child, which
     * starts it now: stopped as a running one is (the jobs behind it go
     * back unstarted). It is answered CANCELLED when the child is reaped,
     * or by its own result if that is in this read already. */
    if (was_head && c->cls == DP_CLASS_CPU && c->jobs.head &&
        c->jobs.head->cancelled && !c->retiring)
        dp_ag_kill(c, SIGKILL);
    if (j->timed_out)
        dp_ag_finish(a, j, DP_ERR_TIMEOUT, "time limit exceeded", c->pid);
    else if (j->cancelled)
        dp_ag_finish(a, j, DP_ERR_CANCELLED, "cancelled", c->pid);
    else {
        dp_ag_result_raw(a, res->raw.ptr, res->raw.len);
        dp_ag_job_free(a, j);
    }
    if (a->cfg.max_jobs_per_child > 0 && c->cls == DP_CLASS_CPU &&
        c->done >= (uint32_t)a->cfg.max_jobs_per_child)
        dp_ag_retire(c);
}

/* s_frame: a RESULTS frame from c; anything else means the child is
 * broken (it is killed and its jobs reported lost). */
static int s_frame(dp_agent_t *a, dp_ag_child_t *c, const char *data,
                   size_t len, uint64_t *now)
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
        rc = dp_msg_read_result(&r, &res);
        if (!rc)
            s_on_result(a, c, &res, now);
    }
    return rc;
}

/* s_fill: the fd is non-blocking: take what is there, a few chunks at
 * most so one child sending a large body does not hold up the others. */
static int s_fill(dp_ag_child_t *c)
{
    int rc = 0;
    for (int k = 0; k < DP_AGENT_READS_PER_WAKE && !rc; k++) {
        size_t before = c->in.len - c->in.off;
        rc = dp_framer_fill(&c->in, c->fd);
        if (c->in.len - c->in.off == before)
            break;
    }
    return rc;
}

void dp_ag_child_readable(dp_agent_t *a, dp_ag_child_t *c)
{
    int rc = s_fill(c);
    /* dp_framer_next: 1 a frame, 0 none yet, else an error (TOO_BIG is
     * positive): a child that sends a frame we cannot read is killed, its
     * job reported lost when it is reaped, and nothing more is read */
    bool bad = false;
    uint64_t now = 0; /* read once, if a deadline needs it */
    while (!c->eof) {
        const char *data;
        size_t len;
        int got = dp_framer_next(&c->in, &data, &len);
        if (got == 0)
            break;
        if (got != 1 || s_frame(a, c, data, len, &now)) {
            bad = true;
            break;
        }
    }
    if (bad) {
        dp_error("child %d sent a bad or oversized frame; killing it",
                 (int)c->pid);
        dp_ag_kill(c, SIGKILL);
        rc = DP_ERR_IO;
    }
    if (rc == DP_ERR_EOF || rc == DP_ERR_IO) {
        c->eof = true; /* it is exiting; SIGCHLD follows */
        c->retiring = true;
    }
}

/* ---- ending ---- */

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

/* s_answer: a result for every job c held; why says how c ended. */
static void s_answer(dp_agent_t *a, dp_ag_child_t *c, const char *why)
{
    bool head = true;
    while (c->jobs.head) {
        dp_ag_job_t *j = c->jobs.head;
        DP_LIST_UNLINK(&c->jobs, j);
        bool ran = head || c->cls == DP_CLASS_IO;
        head = false;
        if (j->timed_out) {
            char msg[DP_AG_MSG_MAX];
            snprintf(msg, sizeof msg, "time limit of %.3f s exceeded",
                     j->timeout_ms / 1000.0);
            dp_ag_finish(a, j, DP_ERR_TIMEOUT, msg, c->pid);
        } else if (j->cancelled) {
            dp_ag_finish(a, j, DP_ERR_CANCELLED, "cancelled", c->pid);
        } else if (ran) {
            dp_ag_finish(a, j, DP_ERR_LOST, why, c->pid);
        } else { /* waited behind the job that died: never started */
            dp_ag_finish(a, j, DP_ERR_REQUEUE, why, c->pid);
        }
    }
}

/* s_ended: answer for every job c held, then free c. */
static void s_ended(dp_agent_t *a, dp_ag_child_t *c, int status)
{
    char why[DP_AG_MSG_MAX];
    s_describe(why, sizeof why, c->pid, status);
    if (c->jobs.n)
        dp_info("%s with %zu job(s)", why, c->jobs.n);
    s_answer(a, c, why);
    if (c->done == 0 && !c->retiring) /* died at birth: do not spin */
        a->respawn_at_ms = dp_now_ms() + DP_RESPAWN_MIN_MS;
    for (dp_ag_child_t **pp = &a->children; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    close(c->fd);
    dp_framer_release(&c->in);
    free(c);
}

bool dp_ag_reap(dp_agent_t *a)
{
    bool pending = false;
    for (dp_ag_child_t *c = a->children, *nx; c; c = nx) {
        nx = c->next; /* s_ended frees c */
        int status = 0;
        pid_t pid = waitpid(c->pid, &status, WNOHANG);
        if (pid == c->pid || (pid < 0 && errno == ECHILD))
            s_ended(a, c, status); /* ECHILD: reaped by SIG_IGN */
        else if (c->eof)
            pending = true;
    }
    return pending;
}

void dp_ag_kids_close(dp_agent_t *a, uint64_t grace_ms)
{
    for (dp_ag_child_t *c = a->children; c; c = c->next) {
        /* a cpu child has nothing to clean up, a kernel cannot be asked
         * to stop, and SIGKILL ends it faster than its exit; so does an
         * idle io child */
        if (c->cls == DP_CLASS_CPU || c->jobs.n == 0)
            dp_ag_kill(c, SIGKILL);
        else
            dp_ag_retire(c); /* EOF: it cancels and cleans up */
    }
    uint64_t end = dp_now_ms() + grace_ms;
    while (a->children && dp_now_ms() < end) {
        dp_ag_reap(a);
        if (a->children) {
            struct timespec ts = {0, DP_AG_REAP_STEP_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    dp_ag_kids_stop(a); /* whoever is left */
}

void dp_ag_kids_stop(dp_agent_t *a)
{
    for (dp_ag_child_t *c = a->children; c; c = c->next)
        kill(c->pid, SIGKILL);
    while (a->children) {
        int status;
        dp_ag_child_t *c = a->children;
        waitpid(c->pid, &status, 0);
        s_ended(a, c, status);
    }
}

/* ---- cancel and time limits ---- */

/* s_cancel_io: tell the io child c to cancel job id. */
static void s_cancel_io(dp_agent_t *a, dp_ag_child_t *c, uint64_t id)
{
    dp_wr_reset(&a->w);
    dp_msg_cancel(&a->w, &id, 1);
    if (!a->w.err)
        dp_frame_write(c->fd, a->w.buf.data, a->w.buf.len);
}

/* s_cancel_held: the io child is told, a cpu child running the job is
 * killed, a job waiting in a child is answered when its turn comes. */
static void s_cancel_held(dp_agent_t *a, uint64_t id)
{
    for (dp_ag_child_t *c = a->children; c; c = c->next) {
        for (dp_ag_job_t *j = c->jobs.head; j; j = j->next) {
            if (j->id != id || j->cancelled)
                continue;
            j->cancelled = true;
            if (c->cls == DP_CLASS_IO) {
                s_cancel_io(a, c, id);
            } else if (j == c->jobs.head) {
                dp_ag_kill(c, SIGKILL); /* the only way to stop a kernel */
            } /* else: it has not started; answered when its turn comes */
            return;
        }
    }
}

void dp_ag_cancel(dp_agent_t *a, uint64_t id)
{
    if (!dp_ag_cancel_queued(a, id))
        s_cancel_held(a, id);
}

static int s_cmp_id(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* s_named: id is in sorted[0..n), or every id is (sorted NULL). */
static bool s_named(const uint64_t *sorted, size_t n, uint64_t id)
{
    return !sorted || bsearch(&id, sorted, n, sizeof id, s_cmp_id);
}

/* s_cancel_named: every job whose id s_named finds is cancelled, in one
 * walk of the queues and the children (dp_ag_cancel per id walks them
 * once per id: a map of 30,000 queued jobs destroyed would take 10^9
 * steps). */
static void s_cancel_named(dp_agent_t *a, const uint64_t *sorted, size_t nids)
{
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        for (dp_ag_job_t *j = a->queue[cls].head, *nx; j; j = nx) {
            nx = j->next;
            if (!s_named(sorted, nids, j->id))
                continue;
            DP_LIST_UNLINK(&a->queue[cls], j);
            dp_ag_finish(a, j, DP_ERR_CANCELLED, "cancelled", 0);
        }
    }
    for (dp_ag_child_t *c = a->children; c; c = c->next) {
        /* the io child is told in one CANCEL; a cpu child running its
         * head is stopped, the jobs behind are answered when it is */
        uint64_t *ids = c->cls == DP_CLASS_IO && c->jobs.n
                            ? malloc(c->jobs.n * sizeof *ids)
                            : NULL;
        size_t n = 0;
        for (dp_ag_job_t *j = c->jobs.head; j; j = j->next) {
            if (j->cancelled || !s_named(sorted, nids, j->id))
                continue;
            j->cancelled = true;
            if (ids)
                ids[n++] = j->id;
            else if (c->cls == DP_CLASS_IO) /* no memory: one by one */
                s_cancel_io(a, c, j->id);
            else if (j == c->jobs.head)
                dp_ag_kill(c, SIGKILL);
        }
        if (n) {
            dp_wr_reset(&a->w);
            dp_msg_cancel(&a->w, ids, n);
            if (!a->w.err)
                dp_frame_write(c->fd, a->w.buf.data, a->w.buf.len);
        }
        free(ids);
    }
}

void dp_ag_cancel_all(dp_agent_t *a)
{
    s_cancel_named(a, NULL, 0);
}

void dp_ag_cancel_ids(dp_agent_t *a, const uint64_t *ids, size_t n)
{
    uint64_t *sorted = n > 1 ? malloc(n * sizeof *sorted) : NULL;
    if (!sorted) { /* one id, or no memory: one walk per id */
        for (size_t k = 0; k < n; k++)
            dp_ag_cancel(a, ids[k]);
        return;
    }
    memcpy(sorted, ids, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, s_cmp_id);
    s_cancel_named(a, sorted, n);
    free(sorted);
}

void dp_ag_check_deadlines(dp_agent_t *a, uint64_t now)
{
    for (dp_ag_child_t *c = a->children; c; c = c->next) {
        if (c->kill_at_ms && now >= c->kill_at_ms) {
            dp_warn("child %d ignored SIGTERM; SIGKILL", (int)c->pid);
            c->kill_at_ms = 0;
            kill(c->pid, SIGKILL);
        }
        /* only a cpu child's head runs (and has a deadline): the jobs
         * prefetched behind it are not walked each turn */
        for (dp_ag_job_t *j = c->jobs.head; j;
             j = c->cls == DP_CLASS_CPU ? NULL : j->next) {
            if (j->timed_out || j->cancelled || j->deadline_ms == 0 ||
                now < j->deadline_ms)
                continue;
            j->timed_out = true;
            if (c->cls == DP_CLASS_CPU) {
                dp_info("job %llx over its %u ms limit; stopping child %d",
                        (unsigned long long)j->id, j->timeout_ms, (int)c->pid);
                dp_ag_kill(c, SIGTERM);
            } else {
                dp_ag_cancel(a, j->id); /* marks it; TIMEOUT wins */
                j->cancelled = false;
                j->timed_out = true;
            }
        }
    }
}

uint64_t dp_ag_kids_due(const dp_agent_t *a, uint64_t now, uint64_t t)
{
    if (a->respawn_at_ms > now && a->respawn_at_ms < t)
        t = a->respawn_at_ms;
    for (const dp_ag_child_t *c = a->children; c; c = c->next) {
        if (c->kill_at_ms && c->kill_at_ms < t)
            t = c->kill_at_ms;
        for (const dp_ag_job_t *j = c->jobs.head; j;
             j = c->cls == DP_CLASS_CPU ? NULL : j->next) /* head only */
            if (!j->timed_out && !j->cancelled && j->deadline_ms &&
                j->deadline_ms < t)
                t = j->deadline_ms;
    }
    return t;
}
