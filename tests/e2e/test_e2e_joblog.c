/*
 * test_e2e_joblog.c - end-to-end `dpool --joblog / --resume / --resume-failed`
 * with the real program on an embedded pool: a run SIGKILLed mid-batch,
 * then --resume runs exactly the inputs the joblog does not have; a run
 * with failures, then --resume-failed runs exactly the failed ones, and
 * --resume after that runs nothing.
 */
#include <fcntl.h>
#include <unistd.h>

#include "e2e.h"

#define S_INPUTS 12
#define S_SLEEP_MS "300"
#define S_KILL_AFTER 3 /* joblog lines before the kill */
#define S_MAX_LINES 256

TestSuite(joblog, .init = e2e_setup, .fini = e2e_teardown, .timeout = 90);

typedef struct {
    const char *path;
    int want;
} s_lines_ctx_t;

/* s_logged: the indexes of the joblog's lines, in *seen (by index);
 * returns the number of job lines; -1 if a line is malformed. */
static int s_logged(const char *path, int *seen, int nseen, const char *status)
{
    char *text = dp_e2e_slurp(path);
    char **lines = NULL;
    int n = dp_e2e_lines(text, &lines), jobs = 0;
    for (int k = 0; k < nseen; k++)
        seen[k] = 0;
    for (int k = 1; k < n; k++) { /* line 0: the header */
        int idx = -1;
        char st[16] = "";
        if (sscanf(lines[k], "%d\t%15s", &idx, st) != 2 || idx < 0 ||
            idx >= nseen) {
            jobs = -1;
            break;
        }
        if (!status || strcmp(st, status) == 0)
            seen[idx]++;
        jobs++;
    }
    free(lines);
    free(text);
    return jobs;
}

static bool s_has_lines(void *arg)
{
    s_lines_ctx_t *c = arg;
    int seen[S_MAX_LINES];
    return s_logged(c->path, seen, S_MAX_LINES, NULL) >= c->want;
}

/* s_indexes: the "index" of each JSON line of out, counted in seen. */
static int s_indexes(char *out, int *seen, int nseen)
{
    char **lines = NULL;
    int n = dp_e2e_lines(out, &lines);
    for (int k = 0; k < nseen; k++)
        seen[k] = 0;
    for (int k = 0; k < n; k++) {
        long long idx = dp_e2e_jint(lines[k], "index");
        cr_assert(idx >= 0 && idx < nseen, "bad line: %s", lines[k]);
        seen[idx]++;
    }
    free(lines);
    return n;
}

Test(joblog, killed_run_then_resume_runs_only_what_is_missing)
{
    char jl[PATH_MAX + 16];
    snprintf(jl, sizeof jl, "%s/joblog", T.e.dir);
    const char *argv[9 + S_INPUTS + 1] = {
        "dpool", "--joblog", jl, "--format", "json", "-p", "2", "map", "sleep"};
    int argc = 9;
    for (int k = 0; k < S_INPUTS; k++)
        argv[argc++] = S_SLEEP_MS;
    argv[argc] = NULL;
    dp_e2e_proc_t cl;
    cr_assert_eq(dp_e2e_spawn(&T.e, &cl, -1, argv), 0);
    s_lines_ctx_t c = {jl, S_KILL_AFTER};
    cr_assert(dp_e2e_wait_until(s_has_lines, &c, E2E_RUN_MS),
              "the joblog never had %d lines", S_KILL_AFTER);
    cr_assert_eq(dp_e2e_stop(&T.e, cl.pid, SIGKILL, 0), 128 + SIGKILL);
    int done[S_INPUTS];
    int ndone = s_logged(jl, done, S_INPUTS, "ok");
    cr_assert(ndone >= S_KILL_AFTER && ndone < S_INPUTS, "%d lines at the kill",
              ndone);
    /* the same command with --resume */
    const char *rargv[10 + S_INPUTS + 1] = {
        "dpool", "--joblog", jl,  "--resume", "--format",
        "json",  "-p",       "2", "map",      "sleep"};
    argc = 10;
    for (int k = 0; k < S_INPUTS; k++)
        rargv[argc++] = S_SLEEP_MS;
    rargv[argc] = NULL;
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS, rargv);
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    int ran[S_INPUTS];
    int n = s_indexes(r.out, ran, S_INPUTS);
    cr_expect_eq(n, S_INPUTS - ndone, "%d ran, %d were done", n, ndone);
    for (int k = 0; k < S_INPUTS; k++)
        cr_expect_eq(ran[k] + done[k], 1,
                     "input %d: done before %d, ran now %d", k, done[k],
                     ran[k]);
    dp_e2e_run_free(&r);
    /* the joblog now has every input exactly once, all ok */
    int all[S_INPUTS];
    cr_expect_eq(s_logged(jl, all, S_INPUTS, "ok"), S_INPUTS);
    for (int k = 0; k < S_INPUTS; k++)
        cr_expect_eq(all[k], 1, "input %d logged %d times", k, all[k]);
    /* and a third run has nothing left to do */
    e2e_run(&r, E2E_RUN_MS, rargv);
    cr_expect_eq(r.code, 0);
    cr_expect_str_eq(r.out, "");
    dp_e2e_run_free(&r);
}

Test(joblog, resume_failed_runs_the_failed_ones_again)
{
    char jl[PATH_MAX + 16];
    snprintf(jl, sizeof jl, "%s/joblog", T.e.dir);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--joblog", jl, "--format", "json", "-p", "2",
                 "factor", "12", "-5", "30", "abc", "77"));
    cr_expect_eq(r.code, 1, "some failed");
    int seen[5];
    cr_expect_eq(s_indexes(r.out, seen, 5), 5);
    dp_e2e_run_free(&r);
    int failed[5];
    cr_assert_eq(s_logged(jl, failed, 5, "failed"), 5);
    cr_expect(failed[1] == 1 && failed[3] == 1 && failed[0] == 0);
    /* --resume-failed: only 1 and 3 run (and fail again) */
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--joblog", jl, "--resume-failed", "--format", "json",
                 "-p", "2", "factor", "12", "-5", "30", "abc", "77"));
    cr_expect_eq(r.code, 1);
    cr_expect_eq(s_indexes(r.out, seen, 5), 2, "%s", r.out);
    cr_expect(seen[1] == 1 && seen[3] == 1);
    dp_e2e_run_free(&r);
    /* input 1 fixed in the input file: it differs from the joblog's, so it
     * runs (and passes); 3 is still failed and runs again */
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--joblog", jl, "--resume-failed", "--format", "json",
                 "-p", "2", "factor", "12", "5", "30", "abc", "77"));
    cr_expect_eq(s_indexes(r.out, seen, 5), 2, "%s", r.out);
    cr_expect(seen[1] == 1 && seen[3] == 1);
    cr_expect(strstr(r.err, "1 input differs"), "%s", r.err);
    dp_e2e_run_free(&r);
    /* --resume: every input has a line: nothing runs */
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--joblog", jl, "--resume", "--format", "json", "-p",
                 "2", "factor", "12", "5", "30", "abc", "77"));
    cr_expect_eq(r.code, 0);
    cr_expect_str_eq(r.out, "");
    dp_e2e_run_free(&r);
}

Test(joblog, resume_without_joblog_is_a_usage_error)
{
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS, ARGV("dpool", "--resume", "factor", "12"));
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "need --joblog"), "%s", r.err);
    dp_e2e_run_free(&r);
    char bad[PATH_MAX + 16];
    snprintf(bad, sizeof bad, "%s/notajoblog", T.e.dir);
    FILE *f = fopen(bad, "w");
    fputs("Seq\tHost\n", f);
    fclose(f);
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--joblog", bad, "--resume", "factor", "12"));
    cr_expect_eq(r.code, 2, "exit %d: %s", r.code, r.err);
    cr_expect(strstr(r.err, "not a dpool joblog"), "%s", r.err);
    dp_e2e_run_free(&r);
}
