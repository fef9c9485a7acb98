/* diag.c - the diagnostic kernels `sleep` and `echo` (tests, demos, bench).*/
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "dp_clock.h"
#include "dp_jobs.h"

int dp_job_sleep(const dp_job_ctx_t *ctx, const dp_value_t *args, size_t nargs,
                 dp_value_t *out, char *err, size_t errlen)
{
    uint64_t ms;
    (void)nargs;
    int rc = dp_job_arg_uint64(&args[0], &ms, err, errlen);
    if (rc)
        return rc;
    *out = dp_nil();
    uint64_t now = dp_now_us();
    /* a sleep past the end of time is cut by the deadline (or waits
     * forever without one, until the worker's own limit) */
    uint64_t end =
        ms > (UINT64_MAX - now) / 1000u ? UINT64_MAX : now + ms * 1000u;
    bool cut = ctx->deadline_us && ctx->deadline_us < end;
    if (cut)
        end = ctx->deadline_us;
    for (uint64_t now = dp_now_us(); now < end; now = dp_now_us()) {
        uint64_t left = end - now;
        struct timespec ts = {(time_t)(left / 1000000u),
                              (long)(left % 1000000u) * 1000};
        nanosleep(&ts, NULL); /* EINTR: loop recomputes what is left */
    }
    if (cut) {
        snprintf(err, errlen, "sleep %llu ms exceeds the time limit",
                 (unsigned long long)ms);
        return DP_ERR_TIMEOUT;
    }
    *out = dp_uint(ms);
    return 0;
}

int dp_job_echo(const dp_job_ctx_t *ctx, const dp_value_t *args, size_t nargs,
                dp_value_t *out, char *err, size_t errlen)
{
    (void)ctx;
    (void)err;
    (void)errlen;
    if (nargs == 0) {
        *out = dp_nil();
        return 0;
    }
    if (nargs == 1)
        return dp_value_copy(out, &args[0]);
    *out = dp_array(nargs);
    if (out->type == DP_NIL)
        return DP_ERR_NOMEM;
    for (size_t k = 0; k < nargs; k++) {
        if (dp_value_copy(&out->v.a.items[k], &args[k])) {
            dp_value_clear(out);
            return DP_ERR_NOMEM;
        }
    }
    return 0;
}
