/*
 * bench_journal.c - the journal's cost, without a broker: how many records
 * per second broker/dp_journal.c takes, and how many fsyncs that costs,
 * for --fsync-ms 0 and the default window.
 *
 * Two workloads, each for a fixed time:
 *   submit:    SUBMITs of B tiny jobs (JOB records of 40 bytes, the size
 *              of an encoded `echo 1`), one commit per SUBMIT, as the
 *              broker's group commit would do with one SUBMIT per turn;
 *   lifecycle: the whole life of each job, JOB + DISPATCH + RESULT + TAKEN,
 *              one commit per turn of T jobs; compaction runs when due.
 * Then the cost of a restart: replaying a journal of B_REPLAY_JOBS queued
 * tiny jobs.
 * The loop calls dp_journal_tick() at dp_journal_fsync_due(), as the
 * broker's poll timeout would.
 *
 *   tests/bench/bench_journal.sh [DIR] [SECONDS]   (builds and runs this)
 *
 * DIR must be on the disk to measure (not a tmpfs: fsync is free there).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_clock.h"
#include "dp_journal.h"
#include "dp_log.h"

#define B_JOB_BYTES 40
#define B_RESULT_BYTES 40
#define B_REPLAY_JOBS 1000000
#define B_REPLAY_BATCH 1000

typedef struct {
    const char *name;
    long fsync_ms;
    unsigned batch; /* jobs per commit */
    bool lifecycle;
} b_case_t;

static int b_dump(void *data, dp_journal_t *j)
{
    (void)data;
    (void)j;
    return 0; /* nothing stays live in this benchmark */
}

static void b_rm(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static int b_run(const char *base, const b_case_t *c, double secs)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/bench_journal.%d", base, (int)getpid());
    b_rm(dir);
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    cfg.fsync_ms = c->fsync_ms;
    dp_journal_t *j;
    char err[256];
    if (dp_journal_open(dir, &cfg, NULL, &j, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uint8_t job[B_JOB_BYTES], res[B_RESULT_BYTES];
    memset(job, 0x91, sizeof job);
    memset(res, 0x92, sizeof res);
    uint64_t t0 = dp_now_us(), end = t0 + (uint64_t)(secs * 1e6), id = 0;
    uint64_t jobs = 0, now_us = t0;
    int rc = 0;
    while (!rc && now_us < end) {
        for (unsigned k = 0; !rc && k < c->batch; k++, id++) {
            dp_jr_job_t jr = {1, id, 1, job, sizeof job};
            rc = dp_journal_job(j, &jr);
            if (!rc && c->lifecycle)
                rc = dp_journal_dispatch(j, id, 1);
            if (!rc && c->lifecycle)
                rc = dp_journal_result(j, id, res, sizeof res);
            if (!rc && c->lifecycle)
                rc = dp_journal_taken(j, id);
        }
        now_us = dp_now_us();
        uint64_t now = now_us / 1000;
        if (!rc)
            rc = dp_journal_commit(j, now);
        if (!rc && now >= dp_journal_fsync_due(j))
            rc = dp_journal_tick(j, now);
        if (!rc && dp_journal_compact_due(j))
            rc = dp_journal_compact(j, b_dump, NULL, now);
        jobs += c->batch;
    }
    double el = (double)(dp_now_us() - t0) / 1e6;
    dp_journal_stats_t st;
    dp_journal_stats(j, &st);
    dp_journal_close(&j);
    b_rm(dir);
    if (rc) {
        fprintf(stderr, "%s: journal error %d\n", c->name, rc);
        return 1;
    }
    printf("%-34s %10.0f %11.0f %9.0f %8" PRIu64 " %8.1f %6" PRIu64 "\n",
           c->name, (double)jobs / el, (double)st.appends / el,
           (double)st.commits / el, st.fsyncs, (double)st.fsyncs / el,
           st.compactions);
    return 0;
}

static int b_count(void *data, const dp_jr_job_t *j)
{
    (void)j;
    (*(uint64_t *)data)++;
    return 0;
}

/* b_replay: write B_REPLAY_JOBS jobs, close, time the open (replay). */
static int b_replay(const char *base)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/bench_journal.%d", base, (int)getpid());
    b_rm(dir);
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    dp_journal_t *j;
    char err[256];
    uint8_t job[B_JOB_BYTES];
    memset(job, 0x91, sizeof job);
    if (dp_journal_open(dir, &cfg, NULL, &j, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = 0;
    for (uint64_t id = 0; !rc && id < B_REPLAY_JOBS; id++) {
        dp_jr_job_t jr = {1, id, 1, job, sizeof job};
        rc = dp_journal_job(j, &jr);
        if (!rc && id % B_REPLAY_BATCH == 0)
            rc = dp_journal_commit(j, dp_now_ms());
    }
    dp_journal_stats_t st;
    dp_journal_stats(j, &st);
    dp_journal_close(&j);
    uint64_t n = 0, t0 = dp_now_us();
    dp_journal_replay_t cb = {.job = b_count, .data = &n};
    if (!rc)
        rc = dp_journal_open(dir, &cfg, &cb, &j, err, sizeof err);
    double el = (double)(dp_now_us() - t0) / 1e6;
    dp_journal_close(&j);
    b_rm(dir);
    if (rc || n != B_REPLAY_JOBS) {
        fprintf(stderr, "replay: error %d, %llu jobs\n", rc,
                (unsigned long long)n);
        return 1;
    }
    printf("replay of %d queued jobs (%.1f MB): %.3f s, %.0f records/s\n",
           B_REPLAY_JOBS, (double)st.disk_bytes / 1e6, el, (double)n / el);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    double secs = argc > 2 ? strtod(argv[2], NULL) : 2.0;
    if (secs <= 0)
        secs = 2.0;
    dp_log_init("bench_journal", "warn");
    const b_case_t cases[] = {
        {"submit 1 job/commit, fsync-ms 0", 0, 1, false},
        {"submit 1 job/commit, fsync-ms 50", 50, 1, false},
        {"submit 100 jobs/commit, fsync-ms 0", 0, 100, false},
        {"submit 100 jobs/commit, fsync-ms 50", 50, 100, false},
        {"lifecycle 1 job/commit, fsync-ms 0", 0, 1, true},
        {"lifecycle 1 job/commit, fsync-ms 50", 50, 1, true},
        {"lifecycle 256 jobs/commit, fsync-ms 0", 0, 256, true},
        {"lifecycle 256 jobs/commit, fsync-ms 50", 50, 256, true},
    };
    printf("journal in %s, %.1f s per case\n", dir, secs);
    printf("%-34s %10s %11s %9s %8s %8s %6s\n", "case", "jobs/s", "records/s",
           "commits/s", "fsyncs", "fsyncs/s", "compact");
    int bad = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        bad |= b_run(dir, &cases[k], secs);
    bad |= b_replay(dir);
    return bad;
}
