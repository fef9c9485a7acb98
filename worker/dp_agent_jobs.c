/*
 * dp_agent_jobs.c - the agent's jobs: records taken from JOBS (or, in a
 * local agent, a client's SUBMIT), the class queues they wait in until a
 * child has room (and leave when cancelled, drained or forgotten), the
 * results the agent makes itself (LOST, TIMEOUT, CANCELLED, REQUEUE when
 * draining) and the RESULTS batch sent to the broker (or a local agent's
 * sink) each turn. It calls no other part of the agent.
 */
#include "dp_agent_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "dp_jobtab.h"
#include "dp_log.h"
#include "dp_msg.h"
#include "dp_zsock.h"

/* ---- the core ---- */

void dp_ag_core_init(dp_agent_t *a, const dp_agent_cfg_t *cfg)
{
    a->cfg = *cfg;
    dp_slab_init(&a->slab, sizeof(dp_ag_job_t), DP_AG_SLAB_JOBS);
    a->want[DP_CLASS_CPU] = (uint32_t)cfg->processes;
    a->want[DP_CLASS_IO] = cfg->io_slots > 0 ? 1 : 0;
    dp_wr_init(&a->out);
    dp_wr_init(&a->w);
}

void dp_ag_core_release(dp_agent_t *a)
{
    dp_ag_forget(a);
    dp_slab_release(&a->slab);
    dp_wr_release(&a->out);
    dp_wr_release(&a->w);
}

/* ---- records ---- */

_Static_assert(sizeof(dp_ag_job_t) == 80, "dp_ag_job_t: no padding");

static void s_frame_unref(dp_ag_frame_t *f)
{
    if (f && --f->refs == 0) {
        if (f->own)
            free(f->own);
        else
            zmq_msg_close(&f->msg);
        free(f);
    }
}

void dp_ag_job_free(dp_agent_t *a, dp_ag_job_t *j)
{
    s_frame_unref(j->frame);
    dp_slab_free(&a->slab, j);
}

/* ---- results ---- */

void dp_ag_result_raw(dp_agent_t *a, const void *raw, size_t len)
{
    dp_msg_batch_add(&a->out, &a->nout, DP_CMD_RESULTS, raw, len);
    if (a->out.err)
        dp_error("out of memory: a result is lost");
}

/* s_local_again: in a local agent, what the broker does with a job that
 * comes back: LOST runs again within its retries (else WORKER_LOST, in
 * the broker's words), REQUEUE is queued again unstarted (within
 * DP_AG_LOCAL_HANDBACKS). true when j went back to the head of its queue;
 * else *code and msg (len bytes) are its final result. */
static bool s_local_again(dp_agent_t *a, dp_ag_job_t *j, int *code,
                          const char *why, char *msg, size_t len)
{
    if (*code == DP_ERR_LOST && j->attempt <= j->retries) {
        j->attempt++;
    } else if (*code == DP_ERR_LOST) {
        *code = DP_ERR_WORKER_LOST;
        snprintf(msg, len, "worker lost after %u attempt%s: %.200s", j->attempt,
                 j->attempt == 1 ? "" : "s", why);
        return false;
    } else if (*code == DP_ERR_REQUEUE &&
               j->handbacks < DP_AG_LOCAL_HANDBACKS) {
        j->handbacks++;
    } else {
        if (*code == DP_ERR_REQUEUE) {
            *code = DP_ERR_LIMIT;
            snprintf(msg, len, "handed back unstarted %u times: %.200s",
                     (unsigned)j->handbacks + 1, why);
        }
        return false;
    }
    j->child = NULL;
    j->deadline_ms = 0;
    DP_LIST_PUSH(&a->queue[j->cls], j, true); /* it was first in line */
    return true;
}

void dp_ag_finish(dp_agent_t *a, dp_ag_job_t *j, int code, const char *msg,
                  pid_t pid)
{
    char local[DP_AG_MSG_MAX + 64];
    if (a->sink && (code == DP_ERR_LOST || code == DP_ERR_REQUEUE) &&
        !j->cancelled && !j->timed_out) {
        local[0] = '\0';
        if (s_local_again(a, j, &code, msg, local, sizeof local))
            return;
        if (local[0])
            msg = local;
    }
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_put_result(&w, j->id, (uint32_t)code, NULL, msg, a->cfg.child.name,
                      (uint32_t)pid, 0, j->attempt);
    if (!w.err)
        dp_ag_result_raw(a, w.buf.data, w.buf.len);
    dp_wr_release(&w);
    dp_ag_job_free(a, j);
}

void dp_ag_flush(dp_agent_t *a)
{
    if (a->nout == 0 || !(a->connected || a->sink))
        return;
    dp_msg_batch_close(&a->out, a->nout);
    if (a->sink) {
        char *data;
        size_t len;
        if (dp_wr_take(&a->out, &data, &len) == 0)
            a->sink(a->sink_arg, data, len);
        else
            dp_error("out of memory: %u results are lost", a->nout);
        dp_wr_reset(&a->out);
        a->nout = 0;
        return;
    }
    if (dp_zsend(a->sock, NULL, 0, &a->out, ZMQ_DONTWAIT)) /* no copy */
        dp_warn("could not send %u results: %s", a->nout,
                zmq_strerror(zmq_errno()));
    dp_wr_reset(&a->out);
    a->nout = 0;
}

/* ---- JOBS ---- */

/* s_job_new: a record for the job read from frame, in chunk group; t is
 * its type's row (NULL: unknown here). */
static dp_ag_job_t *s_job_new(dp_agent_t *a, dp_ag_frame_t *frame,
                              const dp_job_t *job, const dp_jobtype_t *t,
                              uint32_t attempt, uint32_t group)
{
    dp_ag_job_t *j = dp_slab_alloc(&a->slab);
    if (!j)
        return NULL;
    j->group = group;
    j->id = job->id;
    j->attempt = attempt;
    j->frame = frame;
    frame->refs++;
    j->raw = job->raw.ptr;
    j->raw_len = (uint32_t)job->raw.len; /* within a message: < 2 GiB */
    j->cls = (uint8_t)(t ? t->cls : DP_CLASS_CPU);
    j->retries = (uint8_t)(job->retries > DP_RETRIES_MAX ? DP_RETRIES_MAX
                                                         : job->retries);
    j->handbacks = 0;
    j->child = NULL;
    j->deadline_ms = 0;
    j->cancelled = j->timed_out = false;
    j->timeout_ms = job->timeout_ms ? job->timeout_ms : (t ? t->timeout_ms : 0);
    return j;
}

/* JOBS [chunk, [[attempt, job]...]]: runs of `chunk` jobs are dispatch
 * units, each for one child. */
static int s_read_jobs(dp_agent_t *a, dp_ag_frame_t *frame)
{
    int cmd;
    dp_rd_t r;
    uint32_t n;
    int rc = dp_msg_open(frame->data, frame->len, &a->cfg.child.wire, &cmd, &r);
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
        dp_ag_job_t *j =
            s_job_new(a, frame, &job, dp_jobtab_find(job.type, job.type_len),
                      attempt, group);
        if (!j)
            return DP_ERR_NOMEM;
        /* unknown types are queued too: the child answers UNKNOWN_TYPE.
         * A job of a class this worker has no slot for (an io-only
         * worker, --io-slots 0; a broker in error, or lying) would wait
         * here for ever: it goes back at once */
        if (a->draining)
            dp_ag_finish(a, j, DP_ERR_REQUEUE, "worker is stopping", 0);
        else if (!(j->cls == DP_CLASS_IO ? a->cfg.io_slots : a->cfg.processes))
            dp_ag_finish(a, j, DP_ERR_REQUEUE,
                         "no slot of the job's class on this worker", 0);
        else
            DP_LIST_PUSH(&a->queue[j->cls], j, false);
    }
    return rc ? rc : dp_msg_end(&r);
}

int dp_ag_on_jobs(dp_agent_t *a, zmq_msg_t *body)
{
    dp_ag_frame_t *f = calloc(1, sizeof *f);
    if (!f)
        return DP_ERR_NOMEM;
    zmq_msg_init(&f->msg);
    zmq_msg_move(&f->msg, body);
    f->data = zmq_msg_data(&f->msg);
    f->len = zmq_msg_size(&f->msg);
    f->refs = 1;
    int rc = s_read_jobs(a, f);
    s_frame_unref(f);
    return rc;
}

/* s_submit_job: job (from a local SUBMIT in frame, chunk group) checked
 * as the broker checks it, then queued; one it would refuse gets its
 * error result at once. */
static int s_submit_job(dp_agent_t *a, dp_ag_frame_t *frame,
                        const dp_job_t *job, uint32_t group)
{
    char why[DP_AG_MSG_MAX];
    const dp_jobtype_t *t;
    uint32_t limit;
    int bad = dp_jobtab_check(job->type, job->type_len, job->nargs,
                              job->timeout_ms, &t, &limit, why, sizeof why);
    if (!bad && !(t->cls == DP_CLASS_IO ? a->cfg.io_slots : a->cfg.processes)) {
        bad = DP_ERR_LIMIT;
        snprintf(why, sizeof why, "this pool has no %s slots for %s jobs",
                 dp_jobtab_class_name(t->cls), t->name);
    }
    dp_ag_job_t *j = s_job_new(a, frame, job, t, 1, group);
    if (!j)
        return DP_ERR_NOMEM;
    if (bad) {
        dp_ag_finish(a, j, bad, why, 0);
        return 0;
    }
    j->timeout_ms = limit;
    DP_LIST_PUSH(&a->queue[j->cls], j, false);
    return 0;
}

/* s_group_by_chunk: the jobs of frame f just queued carry their index in
 * f as their group; make it the chunk's: first + index / chunk. They are
 * the last of each queue (pushed at the tail by this SUBMIT). */
static void s_group_by_chunk(dp_agent_t *a, const dp_ag_frame_t *f,
                             uint32_t first, uint64_t chunk)
{
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++)
        for (dp_ag_job_t *j = a->queue[cls].tail; j && j->frame == f;
             j = j->prev)
            j->group = first + (uint32_t)(j->group / chunk);
}

/* s_drop_frame: a SUBMIT refused after some of its jobs were queued (the
 * refusal answers every job): those do not run. */
static void s_drop_frame(dp_agent_t *a, dp_ag_frame_t *f)
{
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        dp_ag_job_t *j;
        while ((j = a->queue[cls].tail) != NULL && j->frame == f) {
            DP_LIST_UNLINK(&a->queue[cls], j);
            dp_ag_job_free(a, j);
        }
    }
}

int dp_ag_on_submit(dp_agent_t *a, char *data, size_t len)
{
    dp_ag_frame_t *f = calloc(1, sizeof *f);
    if (!f) {
        free(data);
        return DP_ERR_NOMEM;
    }
    f->own = data;
    f->data = (const uint8_t *)data;
    f->len = len;
    f->refs = 1;
    int cmd;
    dp_rd_t r;
    uint64_t seq, chunk = 1;
    uint32_t n = 0, k = 0;
    int rc = dp_msg_open(data, len, &a->cfg.child.wire, &cmd, &r);
    if (!rc && cmd != DP_CMD_SUBMIT)
        rc = DP_ERR_UNKNOWN_CMD;
    /* one pass: the chunk size follows the jobs, so each job is queued
     * with its index as its group and the groups are set once it is read
     * (walking the jobs first to reach it was an eighth of a local map's
     * instructions) */
    if (!rc)
        rc = dp_msg_read_submit_jobs(&r, &seq, &n);
    for (; !rc && k < n; k++) {
        dp_job_t job;
        rc = dp_msg_read_job(&r, &job);
        if (!rc)
            rc = s_submit_job(a, f, &job, k);
    }
    if (!rc)
        rc = dp_msg_read_submit_end(&r, &chunk);
    if (chunk < 1 || chunk > DP_CHUNK_MAX)
        chunk = chunk < 1 ? 1 : DP_CHUNK_MAX;
    if (rc) {
        s_drop_frame(a, f);
    } else {
        s_group_by_chunk(a, f, a->next_group + 1, chunk);
        if (k)
            a->next_group += 1 + (uint32_t)((k - 1) / chunk);
    }
    s_frame_unref(f);
    return rc;
}

/* ---- emptying the queues ---- */

bool dp_ag_cancel_queued(dp_agent_t *a, uint64_t id)
{
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        for (dp_ag_job_t *j = a->queue[cls].head; j; j = j->next) {
            if (j->id == id) {
                DP_LIST_UNLINK(&a->queue[cls], j);
                dp_ag_finish(a, j, DP_ERR_CANCELLED, "cancelled", 0);
                return true;
            }
        }
    }
    return false;
}

void dp_ag_requeue_queued(dp_agent_t *a, const char *why)
{
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        while (a->queue[cls].head) {
            dp_ag_job_t *j = a->queue[cls].head;
            DP_LIST_UNLINK(&a->queue[cls], j);
            dp_ag_finish(a, j, DP_ERR_REQUEUE, why, 0);
        }
    }
}

size_t dp_ag_forget(dp_agent_t *a)
{
    size_t dropped = 0;
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++) {
        while (a->queue[cls].head) {
            dp_ag_job_t *j = a->queue[cls].head;
            DP_LIST_UNLINK(&a->queue[cls], j);
            dp_ag_job_free(a, j);
            dropped++;
        }
    }
    dp_wr_reset(&a->out);
    a->nout = 0;
    return dropped;
}
