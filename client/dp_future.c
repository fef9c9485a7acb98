/*
 * dp_future.c - one job, one future. With a time limit the future holds
 * its own deadline: when neither its result nor any other result of the
 * pool has come for the limit plus DP_DEADLINE_MARGIN_MS since it was
 * sent, it fails with TIMEOUT here and the job is cancelled (see dp_map.c
 * for why the clock runs from the pool's last result).
 */
#include <stdlib.h>

#include "dp_clock.h"
#include "dp_msg.h"
#include "dp_pool_int.h"

struct dp_future {
    dp_pool_t *pool;
    uint64_t id;
    dp_result_t *res;
    uint64_t sent_ms, deadline_ms; /* deadline_ms 0 = none */
};

static void s_deliver(void *data, dp_got_t *g)
{
    dp_future_t *f = data;
    dp_result_free(&f->res);
    dp_got_take(g, &f->pool->lim, &f->res); /* NULL: out of memory */
}

/* s_submit_one: a SUBMIT of one job. */
static int s_submit_one(dp_pool_t *p, uint64_t id, const char *type,
                        const dp_value_t *args, size_t nargs,
                        const dp_job_opts_t *o)
{
    /* args borrowed as one array value: no copy of the arguments */
    dp_value_t arr = dp_nil();
    arr.type = DP_ARRAY;
    arr.v.a.items = (dp_value_t *)args;
    arr.v.a.len = nargs;
    dp_wr_t job, w;
    dp_wr_init(&job);
    dp_wr_init(&w);
    dp_msg_put_job(&job, id, type, &arr,
                   o && o->timeout > 0 ? (uint32_t)(o->timeout * 1000 + 0.5)
                                       : 0,
                   o && o->retries >= 0 ? (uint32_t)o->retries
                                        : DP_RETRIES_DEFAULT_CLIENT);
    int rc = job.err;
    if (!rc)
        dp_msg_submit(&w, id, 1, job.buf.data, job.buf.len, 1);
    dp_wr_release(&job);
    if (rc) {
        dp_wr_release(&w);
        return rc;
    }
    return dp_pool_send_submit(p, &w, id, 1);
}

int dp_submit(dp_pool_t *p, const char *type, const dp_value_t *args,
              size_t nargs, const dp_job_opts_t *o, dp_future_t **out)
{
    dp_future_t *f = calloc(1, sizeof *f);
    if (!f)
        return DP_ERR_NOMEM;
    f->pool = p;
    f->id = dp_pool_next_id(p);
    f->sent_ms = dp_now_ms();
    if (o && o->timeout > 0)
        f->deadline_ms = (uint64_t)(o->timeout * 1000) + DP_DEADLINE_MARGIN_MS;
    int rc = dp_route_add(p, f->id, s_deliver, f, 0);
    if (!rc)
        rc = s_submit_one(p, f->id, type, args, nargs, o);
    if (rc) {
        dp_route_del(p, f->id);
        free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* s_due: when f's deadline passes (ms), 0 = never. */
static uint64_t s_due(const dp_future_t *f)
{
    if (!f->deadline_ms)
        return 0;
    uint64_t from = f->pool->last_result_ms > f->sent_ms
                        ? f->pool->last_result_ms
                        : f->sent_ms;
    return from + f->deadline_ms;
}

int dp_future_wait(dp_future_t *f, double timeout)
{
    uint64_t end = timeout >= 0 ? dp_now_ms() + (uint64_t)(timeout * 1000) : 0;
    while (!f->res) {
        uint64_t now = dp_now_ms(), due = s_due(f);
        if (due && now >= due) {
            dp_pool_fail_routes(f->pool, f, DP_ERR_TIMEOUT,
                                "no result within the time limit plus a "
                                "margin (the client's deadline)",
                                true);
            break;
        }
        if (end && now >= end)
            return DP_ERR_TIMEOUT;
        uint64_t until = due && (!end || due < end) ? due : end;
        int rc = dp_pool_pump(f->pool, until ? (until - now) / 1000.0 : -1, -1);
        if (f->res)
            break;
        if (rc && rc != DP_ERR_TIMEOUT)
            return rc;
    }
    return 0;
}

const dp_result_t *dp_future_result(const dp_future_t *f)
{
    return f->res;
}

int dp_future_cancel(dp_future_t *f)
{
    if (f->res)
        return 0;
    return dp_pool_cancel_ids(f->pool, &f->id, 1);
}

void dp_future_destroy(dp_future_t **fp)
{
    if (!fp || !*fp)
        return;
    dp_future_t *f = *fp;
    if (!f->res)
        dp_pool_forget(f->pool, f);
    dp_result_free(&f->res);
    free(f);
    *fp = NULL;
}
