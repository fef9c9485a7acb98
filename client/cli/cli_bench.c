/*
 * cli_bench.c - `dpool bench`, the built-in benchmark (as redis-benchmark
 * is for Redis), against --broker or an embedded pool:
 *   throughput  N tiny jobs (--type, echo by default; argument: the index)
 *               with chunksize 1, then auto-chunked: jobs/s; --repeat R
 *               runs the pair R times in turn on the one pool and shows
 *               each one's median, as a benchmark of a started Python
 *               pool measures it (compare.py)
 *   latency     --rounds sequential single-job round trips: p50, p90, p99
 *               and max in microseconds
 *   file        with --input FILE: --type over FILE's lines (one argument
 *               each), auto-chunked: jobs/s
 * A table for people, --format json for programs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dp_clock.h"

#define S_LINE_MAX 4096
#define S_REPEAT_MAX 100 /* --repeat, at most (cli_opts.c) */

typedef struct {
    const char *name;
    size_t jobs, failed, chunk;
    double secs;
} s_tput_t;

typedef struct {
    size_t rounds, failed;
    uint64_t p50, p90, p99, max;
} s_lat_t;

/* s_run_map: map over argv (n inputs) with chunksize (0 = auto). */
static int s_run_map(dp_cli_t *c, const char *type, const dp_value_t *argv,
                     size_t n, size_t chunk, s_tput_t *out)
{
    dp_map_opts_t o = {.unordered = true,
                       .chunksize = chunk,
                       .max_inflight =
                           c->max_inflight ? (size_t)c->max_inflight : 0,
                       .job = {.timeout = c->timeout, .retries = -1}};
    dp_map_t *m;
    uint64_t t0 = dp_now_us();
    int rc = dp_map_array(c->pool, type, argv, n, &o, &m);
    dp_result_t *r;
    out->jobs = 0;
    out->failed = 0;
    while (!rc && (rc = dp_map_next_view(m, &r, -1)) == 0) {
        out->jobs++; /* r is the map's (no copy per result) */
        out->failed += r->error != 0;
    }
    out->secs = (double)(dp_now_us() - t0) / 1e6;
    out->chunk = chunk;
    dp_map_destroy(&m);
    return rc == DP_ERR_EOF ? 0 : rc;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* s_median: the median of v[0..n) (n >= 1), sorting v in place. */
static double s_median(double *v, size_t n)
{
    for (size_t i = 1; i < n; i++) /* n <= S_REPEAT_MAX: insertion sort */
        for (size_t j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int s_latency(dp_cli_t *c, size_t rounds, s_lat_t *out)
{
    uint64_t *us = calloc(rounds, sizeof *us);
    if (!us)
        return DP_ERR_NOMEM;
    dp_value_t arg = dp_uint(1);
    memset(out, 0, sizeof *out);
    int rc = 0;
    for (size_t k = 0; k < rounds && !rc; k++) {
        dp_future_t *f;
        uint64_t t0 = dp_now_us();
        rc = dp_submit(c->pool, "echo", &arg, 1, NULL, &f);
        if (!rc)
            rc = dp_future_wait(f, -1);
        us[k] = dp_now_us() - t0;
        if (!rc)
            out->failed += dp_future_result(f)->error != 0;
        dp_future_destroy(&f);
        out->rounds++;
    }
    qsort(us, out->rounds, sizeof *us, s_cmp_u64);
    if (out->rounds) {
        out->p50 = us[out->rounds * 50 / 100];
        out->p90 = us[out->rounds * 90 / 100];
        out->p99 = us[out->rounds * 99 / 100];
        out->max = us[out->rounds - 1];
    }
    free(us);
    return rc;
}

/* s_inputs_index: n one-argument inputs 0..n-1. */
static dp_value_t *s_inputs_index(size_t n)
{
    dp_value_t *v = calloc(n ? n : 1, sizeof *v);
    for (size_t k = 0; v && k < n; k++) {
        v[k] = dp_array(1);
        v[k].v.a.items[0] = dp_uint(k);
    }
    return v;
}

/* s_inputs_file: one input per non-empty line of path. */
static dp_value_t *s_inputs_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1024;
    dp_value_t *v = malloc(cap * sizeof *v);
    char line[S_LINE_MAX];
    *n = 0;
    while (v && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        if (*n == cap) {
            dp_value_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv)
                break;
            v = nv;
        }
        v[*n] = dp_array(1);
        v[*n].v.a.items[0] = dp_str(line);
        (*n)++;
    }
    fclose(f);
    return v;
}

static void s_free_inputs(dp_value_t *v, size_t n)
{
    for (size_t k = 0; v && k < n; k++)
        dp_value_clear(&v[k]);
    free(v);
}

/* s_slots: cpu slots the broker counts now (workers may join after the
 * client connected, as an embedded pool's does). */
static unsigned long long s_slots(dp_cli_t *c)
{
    dp_value_t v;
    unsigned long long n = (unsigned long long)dp_pool_slots(c->pool);
    if (dp_pool_status(c->pool, &v) == 0) {
        const dp_value_t *x = dp_dict_get(&v, "cpu_slots");
        if (x && x->type == DP_UINT)
            n = x->v.u;
        dp_value_clear(&v);
    }
    return n;
}

static void s_print(dp_cli_t *c, const s_tput_t *t, size_t nt,
                    const s_lat_t *lat)
{
    unsigned long long slots = s_slots(c);
    if (c->json) {
        printf("{\"slots\":%llu,\"repeat\":%ld,\"throughput\":[", slots,
               c->bench_repeat);
        for (size_t k = 0; k < nt; k++)
            printf("%s{\"name\":\"%s\",\"jobs\":%zu,\"failed\":%zu,"
                   "\"chunksize\":%zu,\"seconds\":%.6f,\"jobs_per_s\":%.1f}",
                   k ? "," : "", t[k].name, t[k].jobs, t[k].failed, t[k].chunk,
                   t[k].secs, t[k].jobs / t[k].secs);
        printf("],\"latency_us\":{\"rounds\":%zu,\"failed\":%zu,\"p50\":%llu,"
               "\"p90\":%llu,\"p99\":%llu,\"max\":%llu}}\n",
               lat->rounds, lat->failed, (unsigned long long)lat->p50,
               (unsigned long long)lat->p90, (unsigned long long)lat->p99,
               (unsigned long long)lat->max);
        return;
    }
    printf("dpool bench: %s, %llu cpu slots\n\n",
           c->broker ? c->broker : "embedded pool", slots);
    printf("%-28s %10s %8s %10s %12s\n", "throughput", "jobs", "failed",
           "seconds", "jobs/s");
    for (size_t k = 0; k < nt; k++)
        printf("%-28s %10zu %8zu %10.3f %12.0f\n", t[k].name, t[k].jobs,
               t[k].failed, t[k].secs, t[k].jobs / t[k].secs);
    printf("\n%-28s %10s %8s %8s %8s %8s\n", "latency (echo, us)", "rounds",
           "p50", "p90", "p99", "max");
    printf("%-28s %10zu %8llu %8llu %8llu %8llu\n", "sequential round trip",
           lat->rounds, (unsigned long long)lat->p50,
           (unsigned long long)lat->p90, (unsigned long long)lat->p99,
           (unsigned long long)lat->max);
}

int dp_cli_bench(dp_cli_t *c, char **args, int nargs)
{
    (void)args;
    if (nargs > 0) {
        fprintf(stderr, "dpool: bench takes options only\n");
        return DP_EXIT_USAGE;
    }
    size_t n = (size_t)c->bench_jobs;
    dp_value_t *in = s_inputs_index(n);
    s_tput_t t[3] = {{"per job (chunksize 1)"}, {"auto-chunked"}, {"file"}};
    size_t nt = 2;
    s_lat_t lat;
    int rc = in ? 0 : DP_ERR_NOMEM;
    size_t reps = (size_t)c->bench_repeat;
    double per[S_REPEAT_MAX] = {0}, autos[S_REPEAT_MAX] = {0};
    size_t failed[2] = {0, 0}; /* over every run: one failure fails it */
    for (size_t k = 0; !rc && k < reps && k < S_REPEAT_MAX; k++) {
        rc = s_run_map(c, c->bench_type, in, n, 1, &t[0]);
        if (!rc)
            rc = s_run_map(c, c->bench_type, in, n, 0, &t[1]);
        per[k] = t[0].secs;
        autos[k] = t[1].secs;
        failed[0] += t[0].failed;
        failed[1] += t[1].failed;
    }
    if (!rc) {
        t[0].secs = s_median(per, reps);
        t[1].secs = s_median(autos, reps);
        t[0].failed = failed[0];
        t[1].failed = failed[1];
    }
    s_free_inputs(in, n);
    if (!rc && c->bench_file) {
        size_t nf = 0;
        dp_value_t *fin = s_inputs_file(c->bench_file, &nf);
        rc = fin ? s_run_map(c, c->bench_type, fin, nf, 0, &t[2]) : DP_ERR_IO;
        s_free_inputs(fin, nf);
        nt = 3;
    }
    if (!rc)
        rc = s_latency(c, (size_t)c->bench_rounds, &lat);
    if (rc) {
        fprintf(stderr, "dpool: bench: %s\n", dp_strerror(rc));
        return rc == DP_ERR_BROKER_LOST ? DP_EXIT_UNREACHABLE : DP_EXIT_FAILED;
    }
    s_print(c, t, nt, &lat);
    return t[0].failed || t[1].failed || lat.failed ? DP_EXIT_FAILED : 0;
}
