/*
 * test_prefetch.c - end-to-end with prefetch active: a worker of one cpu
 * child first runs a run of `sleep 0` jobs, so the child's jobs average
 * far under 1 ms and the agent sends it several chunks at once
 * (worker/dp_agent_kids.c s_room); then jobs queued behind others in that
 * child keep every semantic they had when a child held one chunk.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "e2e.h"

#define S_WARM 40        /* sleep 0 jobs that make the child's average short */
#define S_LONG_MS "1500" /* a job long enough to act while it runs */
#define S_WAIT_MS 20000

TestSuite(prefetch, .init = e2e_setup, .fini = e2e_teardown, .timeout = 60);

/* s_warm_pool: one worker, one cpu child, its recent jobs short. */
static void s_warm_pool(void)
{
    e2e_pool(1, 1);
    const char *argv[S_WARM + 8] = {"dpool", "--broker", T.ep,   "--chunksize",
                                    "1",     "map",      "sleep"};
    int n = 7;
    for (int k = 0; k < S_WARM; k++)
        argv[n++] = "0";
    argv[n] = NULL;
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS, argv);
    cr_assert_eq(r.code, 0, "warm-up exited %d: %s", r.code, r.err);
    dp_e2e_run_free(&r);
}

/* s_one_child: the worker's only cpu child. */
static pid_t s_one_child(void)
{
    pid_t kids[8];
    cr_assert_eq(dp_e2e_children(T.worker[0].pid, "cpu", kids, 8), 1);
    return kids[0];
}

typedef struct {
    const char *path;
    int lines;
} s_lines_ctx_t;

static bool s_has_lines(void *arg)
{
    s_lines_ctx_t *c = arg;
    char *text = dp_e2e_slurp(c->path);
    int n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n >= c->lines;
}

/* a short job's result does not wait for a long job sent to the same
 * child after it: it reaches the client while the long one runs */
Test(prefetch, short_result_does_not_wait_for_long_job)
{
    s_warm_pool();
    dp_e2e_proc_t cl;
    cr_assert_eq(
        dp_e2e_spawn(&T.e, &cl, -1,
                     ARGV("dpool", "--broker", T.ep, "-u", "--chunksize", "1",
                          "--format", "json", "map", "sleep", "0", "3000")),
        0);
    s_lines_ctx_t lc = {cl.out, 1};
    cr_assert(dp_e2e_wait_until(s_has_lines, &lc, 2000),
              "the short job's result waited for the long one");
    cr_assert(dp_e2e_alive(cl.pid), "the long job ended too early");
    int code = dp_e2e_wait(&T.e, cl.pid, S_WAIT_MS);
    cr_assert_eq(code, 0);
    char *out = dp_e2e_slurp(cl.out);
    cr_assert_eq(dp_e2e_jint(out, "result"), 0, "first line: %s", out);
    free(out);
}

/* a time limit is counted from when the job starts, not from when it
 * reached the child: three 800 ms jobs with a 1 s limit all succeed */
Test(prefetch, time_limit_counts_from_start)
{
    s_warm_pool();
    dp_e2e_run_t r;
    e2e_run(&r, S_WAIT_MS,
            ARGV("dpool", "--broker", T.ep, "--chunksize", "1", "--timeout",
                 "1", "--format", "json", "map", "sleep", "800", "800", "800"));
    cr_assert_eq(r.code, 0, "exit %d: %s\n%s", r.code, r.out, r.err);
    cr_assert_geq(r.secs, 2.3, "the jobs did not run one after the other");
    char **l = e2e_json_lines(&r, 3);
    for (int k = 0; k < 3; k++)
        cr_assert(dp_e2e_jtrue(l[k], "ok"), "%s", l[k]);
    free(l);
    dp_e2e_run_free(&r);
}

/* kill -9 of a child holding prefetched jobs: one result per job, the
 * running one LOST and retried, the ones behind it re-run */
Test(prefetch, killed_child_answers_each_job_once)
{
    s_warm_pool();
    long long requeued = dp_e2e_stat(&T.e, T.ep, "requeued");
    dp_e2e_proc_t cl;
    cr_assert_eq(dp_e2e_spawn(&T.e, &cl, -1,
                              ARGV("dpool", "--broker", T.ep, "--chunksize",
                                   "1", "--format", "json", "map", "sleep",
                                   S_LONG_MS, "1", "2", "3")),
                 0);
    e2e_busy_ctx_t b = {T.worker[0].pid, 1};
    cr_assert(dp_e2e_wait_until(e2e_sleeping, &b, E2E_UP_MS),
              "the long job never started");
    pid_t victim = s_one_child();
    cr_assert_eq(kill(victim, SIGKILL), 0);
    int code = dp_e2e_wait(&T.e, cl.pid, S_WAIT_MS);
    dp_e2e_run_t r = {0};
    r.code = code;
    r.out = dp_e2e_slurp(cl.out);
    r.err = dp_e2e_slurp(cl.err);
    cr_assert_eq(r.code, 0, "exit %d: %s\n%s", r.code, r.out, r.err);
    char **l = e2e_json_lines(&r, 4);
    static const long long want[] = {1500, 1, 2, 3};
    for (int k = 0; k < 4; k++) {
        cr_assert(dp_e2e_jtrue(l[k], "ok"), "%s", l[k]);
        cr_assert_eq(dp_e2e_jint(l[k], "result"), want[k], "%s", l[k]);
        cr_assert_neq(dp_e2e_jint(l[k], "pid"), victim, "%s", l[k]);
    }
    cr_assert_eq(dp_e2e_jint(l[0], "attempts"), 2, "%s", l[0]);
    free(l);
    dp_e2e_run_free(&r);
    long long now = dp_e2e_stat(&T.e, T.ep, "requeued");
    cr_assert_geq(now - requeued, 1, "requeued %lld -> %lld", requeued, now);
    cr_assert_eq(dp_e2e_stat(&T.e, T.ep, "failed"), 0);
}

/* cancel of jobs waiting in a child behind a running one (a detached
 * batch cancelled): each job is answered CANCELLED exactly once */
Test(prefetch, cancelled_waiting_jobs_answered_once)
{
    s_warm_pool();
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/inputs", T.e.dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("10000\n1\n2\n", f);
    fclose(f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    dp_e2e_run_t s, c, r;
    cr_assert_eq(dp_e2e_run(&T.e, &s, S_WAIT_MS, fd,
                            ARGV("dpool", "submit", "sleep", "-b", T.ep)),
                 0);
    close(fd);
    cr_assert_eq(s.code, 0, "submit exited %d: %s", s.code, s.err);
    char id[32];
    snprintf(id, sizeof id, "%lu", strtoul(s.out, NULL, 10));
    e2e_busy_ctx_t b = {T.worker[0].pid, 1};
    cr_assert(dp_e2e_wait_until(e2e_sleeping, &b, E2E_UP_MS),
              "the long job never started");
    e2e_run(&c, S_WAIT_MS, ARGV("dpool", "cancel", id, "-b", T.ep));
    cr_assert_eq(c.code, 0, "%s", c.err);
    e2e_run(&r, S_WAIT_MS,
            ARGV("dpool", "results", id, "--format", "json", "-b", T.ep));
    cr_assert(r.secs < 9, "cancel did not stop the running job");
    char **l = e2e_json_lines(&r, 3);
    for (int k = 0; k < 3; k++) {
        char name[32];
        cr_assert_str_eq(e2e_errname(l[k], name, sizeof name), "CANCELLED",
                         "%s", l[k]);
    }
    free(l);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "running", 0, 0, E2E_UP_MS),
              "jobs still counted running after the cancel");
    dp_e2e_run_free(&s);
    dp_e2e_run_free(&c);
    dp_e2e_run_free(&r);
}
