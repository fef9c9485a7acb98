/* dp_child.c - the cpu child: decode a job, run its kernel, answer. */
#include "dp_child.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dp_clock.h"
#include "dp_frame.h"
#include "dp_log.h"
#include "dp_msg.h"

/* s_pid: this process's pid, asked once (a result carries it, and a
 * syscall per result shows up in the per-job count). */
static uint32_t s_pid(void)
{
    static uint32_t pid;
    if (!pid)
        pid = (uint32_t)getpid();
    return pid;
}

#define S_ERR_MAX 512
#define S_SCALAR_ARGS 8 /* arguments decoded without allocation, at most */

/* s_run: run one job into w (a RESULTS entry), started at t0 (dp_now_us);
 * returns when it ended. The clock is read once per job: jobs run back to
 * back, so one's end is the next one's start (a read costs ~37 ns on a
 * KVM guest, a tenth of a tiny isprime job). */
static uint64_t s_run(const dp_child_cfg_t *cfg, const dp_job_t *job,
                      uint32_t attempt, dp_wr_t *w, uint64_t t0)
{
    char err[S_ERR_MAX];
    err[0] = '\0'; /* not the whole array: this runs per tiny job */
    dp_value_t args = dp_nil(), out = dp_nil();
    /* numeric arguments (isprime's, factor's) decode into here, with no
     * allocation; others into `args` */
    dp_value_t scalars[S_SCALAR_ARGS];
    const dp_value_t *argv = NULL;
    size_t argc = 0;
    const dp_jobtype_t *t = dp_jobtab_find(job->type, job->type_len);
    dp_job_fn run = dp_job_kernel(t);
    int rc = 0;
    if (!run) {
        rc = DP_ERR_UNKNOWN_TYPE;
        snprintf(err, sizeof err, "job type '%.*s' does not run here",
                 (int)job->type_len, job->type);
    } else if (job->nargs < t->min_args || job->nargs > t->max_args) {
        rc = DP_ERR_ARITY;
        snprintf(err, sizeof err, "usage: %s", t->usage);
    } else {
        dp_rd_t r;
        dp_rd_init(&r, job->args.ptr, job->args.len, &cfg->wire);
        rc = dp_rd_scalars(&r, scalars, S_SCALAR_ARGS, &argc);
        if (rc == 0) {
            argv = scalars;
        } else if (rc == 1 && (rc = dp_rd_value(&r, &args)) == 0) {
            argv = args.v.a.items;
            argc = args.v.a.len;
        }
        if (rc)
            snprintf(err, sizeof err, "arguments do not decode");
    }
    if (!rc) {
        uint32_t limit = job->timeout_ms ? job->timeout_ms : t->timeout_ms;
        dp_job_ctx_t ctx = {t0 + (uint64_t)limit * 1000u, &cfg->limits};
        rc = run(&ctx, argv, argc, &out, err, sizeof err);
        if (rc && !err[0])
            snprintf(err, sizeof err, "%s", dp_strerror(rc));
    }
    uint64_t end = dp_now_us();
    dp_msg_put_result(w, job->id, (uint32_t)rc, &out, err, cfg->name,
                      s_pid(), end - t0, attempt);
    dp_value_clear(&args);
    dp_value_clear(&out);
    return end;
}

/* s_flush: send the results gathered in body (n of them) as one frame. */
static int s_flush(int fd, dp_wr_t *body, uint32_t *n, dp_wr_t *w)
{
    if (*n == 0)
        return 0;
    dp_wr_reset(w);
    dp_msg_results(w, *n, body->buf.data, body->buf.len);
    dp_wr_reset(body);
    *n = 0;
    if (w->err || dp_frame_write(fd, w->buf.data, w->buf.len))
        return DP_ERR_IO;
    return 0;
}

/* s_batch: run every job of a JOBS frame in order. Results go back in
 * frames of their own, gathered for at most DP_CHILD_FLUSH_US so tiny
 * jobs do not cost a write each, and the agent still sees progress (and
 * starts the next job's clock) about as each finishes. */
static int s_batch(int fd, const dp_child_cfg_t *cfg, const char *data,
                   size_t len, dp_wr_t *w, dp_wr_t *body)
{
    int cmd;
    dp_rd_t r;
    uint32_t n, nres = 0;
    int rc = dp_msg_open(data, len, &cfg->wire, &cmd, &r);
    uint32_t chunk;
    if (!rc && cmd != DP_CMD_JOBS)
        rc = DP_ERR_UNKNOWN_CMD;
    if (!rc)
        rc = dp_msg_read_jobs(&r, &chunk, &n); /* all of it is ours */
    uint64_t last = dp_now_us(), now = last;
    for (uint32_t k = 0; !rc && k < n; k++) {
        uint32_t attempt;
        dp_job_t job;
        rc = dp_msg_read_dispatch(&r, &attempt, &job);
        if (rc)
            break;
        now = s_run(cfg, &job, attempt, body, now);
        if (k + 1 == n && dp_msg_end(&r))
            rc = DP_ERR_PROTOCOL; /* answered, then reported below */
        nres++;
        if (now - last >= DP_CHILD_FLUSH_US || k + 1 == n) {
            if (s_flush(fd, body, &nres, w))
                return DP_ERR_IO;
            now = last = dp_now_us(); /* the write is not the next job's */
        }
    }
    if (rc)
        dp_error("bad frame from the agent: %s", dp_strerror(rc));
    return rc;
}

int dp_child_cpu_main(int fd, const dp_child_cfg_t *cfg)
{
    dp_framer_t f;
    dp_wr_t w, body;
    dp_framer_init(&f, cfg->wire.max_msg_bytes);
    dp_wr_init(&w);
    dp_wr_init(&body);
    int status = 0;
    for (;;) {
        const char *data;
        size_t len;
        int got = dp_framer_next(&f, &data, &len);
        if (got != 0 && got != 1) { /* TOO_BIG is positive */
            status = 1;
            break;
        }
        if (got == 1) {
            if (s_batch(fd, cfg, data, len, &w, &body)) {
                status = 1;
                break;
            }
            continue;
        }
        int rc = dp_framer_fill(&f, fd);
        if (rc == DP_ERR_EOF)
            break; /* the agent asks us to leave */
        if (rc) {
            status = 1;
            break;
        }
    }
    dp_framer_release(&f);
    dp_wr_release(&w);
    dp_wr_release(&body);
    return status;
}
