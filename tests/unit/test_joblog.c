/*
 * test_joblog.c - client/cli/cli_joblog.c: escaping, the line format,
 * --resume (skips every logged input) and --resume-failed (skips only ok
 * ones), the last line winning, changed inputs run again, foreign files
 * refused, malformed lines ignored, a line cut by a kill, results that
 * get no line.
 *
 * The module is part of the `dpool` program, not of a library the tests
 * link, so it is compiled in here.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../client/cli/cli_joblog.c"

#define T_NOW_MS 1764680000123ull

static char s_dir[256], s_path[300];

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/dp_joblog_XXXXXX");
    cr_assert(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/joblog", s_dir);
}

static void s_teardown(void)
{
    unlink(s_path);
    rmdir(s_dir);
}

TestSuite(joblog, .init = s_setup, .fini = s_teardown, .timeout = 10);

static char *s_slurp(void)
{
    FILE *f = fopen(s_path, "rb");
    cr_assert(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void s_put_file(const char *text)
{
    FILE *f = fopen(s_path, "wb");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static dp_joblog_t *s_open(dp_joblog_mode_t mode)
{
    dp_joblog_t *jl = NULL;
    char err[256] = "";
    int rc = dp_joblog_open(s_path, mode, &jl, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    return jl;
}

static void s_write(dp_joblog_t *jl, size_t index, const char *input, int error)
{
    dp_result_t r = {.index = index,
                     .error = error,
                     .worker = "w0",
                     .elapsed_us = 12345,
                     .attempts = 1};
    cr_assert_eq(dp_joblog_write(jl, index, input, &r, T_NOW_MS), 0);
}

Test(joblog, escape_round_trip)
{
    const char *in = "a\tb\nc\\d\re";
    char *e = dp_joblog_escape(in);
    cr_assert_str_eq(e, "a\\tb\\nc\\\\d\\re");
    cr_expect_null(strchr(e, '\t'));
    cr_expect_null(strchr(e, '\n'));
    cr_expect_str_eq(dp_joblog_unescape(e), in);
    free(e);
    char odd[] = "x\\qy\\";
    cr_expect_str_eq(dp_joblog_unescape(odd), "xqy\\");
}

Test(joblog, lines_are_tab_separated_with_a_header)
{
    dp_joblog_t *jl = s_open(DP_JOBLOG_APPEND);
    s_write(jl, 0, "12", 0);
    s_write(jl, 1, "-5", DP_ERR_INVALID);
    s_write(jl, 2, "tab\there", 0);
    dp_joblog_close(&jl);
    cr_assert_null(jl);
    cr_expect_str_eq(s_slurp(), DP_JOBLOG_HEADER
                     "\n"
                     "0\tok\t-\t1\tw0\t1764680000.123\t0.012345\t12\n"
                     "1\tfailed\tINVALID\t1\tw0\t1764680000.123\t0.012345\t-5\n"
                     "2\tok\t-\t1\tw0\t1764680000.123\t0.012345\ttab\\there\n");
    /* a second run appends, no second header */
    jl = s_open(DP_JOBLOG_APPEND);
    s_write(jl, 3, "7", 0);
    dp_joblog_close(&jl);
    const char *t = s_slurp();
    cr_expect_eq(strstr(strstr(t, "Index") + 1, "Index"), NULL);
    cr_expect(strstr(t, "\n3\tok\t"));
}

Test(joblog, results_that_did_not_run_get_no_line)
{
    dp_joblog_t *jl = s_open(DP_JOBLOG_APPEND);
    s_write(jl, 0, "a", DP_ERR_CANCELLED);
    s_write(jl, 1, "b", DP_ERR_BROKER_LOST);
    s_write(jl, 2, "c", DP_ERR_TIMEOUT); /* it ran, and failed */
    s_write(jl, 3, "d", DP_ERR_WORKER_LOST);
    dp_joblog_close(&jl);
    const char *t = s_slurp();
    cr_expect_null(strstr(t, "\n0\t"));
    cr_expect_null(strstr(t, "\n1\t"));
    cr_expect(strstr(t, "\n2\tfailed\tTIMEOUT\t"));
    cr_expect(strstr(t, "\n3\tfailed\tWORKER_LOST\t"));
}

static void s_three_runs(void)
{
    dp_joblog_t *jl = s_open(DP_JOBLOG_APPEND);
    s_write(jl, 0, "zero", 0);
    s_write(jl, 1, "one", DP_ERR_INVALID);
    s_write(jl, 3, "three\tt", 0);
    dp_joblog_close(&jl);
}

Test(joblog, resume_skips_every_logged_input)
{
    s_three_runs();
    dp_joblog_t *jl = s_open(DP_JOBLOG_RESUME);
    cr_expect(dp_joblog_skip(jl, 0, "zero"));
    cr_expect(dp_joblog_skip(jl, 1, "one"), "failed counts as done");
    cr_expect_not(dp_joblog_skip(jl, 2, "two"), "not logged: runs");
    cr_expect(dp_joblog_skip(jl, 3, "three\tt"), "escaped input matches");
    cr_expect_not(dp_joblog_skip(jl, 4, "four"));
    size_t skipped, changed;
    dp_joblog_counts(jl, &skipped, &changed);
    cr_expect_eq(skipped, 3);
    cr_expect_eq(changed, 0);
    dp_joblog_close(&jl);
}

Test(joblog, resume_failed_runs_failed_and_missing)
{
    s_three_runs();
    dp_joblog_t *jl = s_open(DP_JOBLOG_RESUME_FAILED);
    cr_expect(dp_joblog_skip(jl, 0, "zero"));
    cr_expect_not(dp_joblog_skip(jl, 1, "one"), "failed: runs again");
    cr_expect_not(dp_joblog_skip(jl, 2, "two"));
    cr_expect(dp_joblog_skip(jl, 3, "three\tt"));
    /* it succeeds this time: the later line wins */
    s_write(jl, 1, "one", 0);
    dp_joblog_close(&jl);
    jl = s_open(DP_JOBLOG_RESUME_FAILED);
    cr_expect(dp_joblog_skip(jl, 1, "one"));
    dp_joblog_close(&jl);
}

Test(joblog, changed_input_runs_again)
{
    s_three_runs();
    dp_joblog_t *jl = s_open(DP_JOBLOG_RESUME);
    cr_expect_not(dp_joblog_skip(jl, 0, "ZERO"), "another input, same index");
    cr_expect(dp_joblog_skip(jl, 1, "one"));
    size_t skipped, changed;
    dp_joblog_counts(jl, &skipped, &changed);
    cr_expect_eq(skipped, 1);
    cr_expect_eq(changed, 1);
    dp_joblog_close(&jl);
}

Test(joblog, append_mode_never_skips)
{
    s_three_runs();
    dp_joblog_t *jl = s_open(DP_JOBLOG_APPEND);
    cr_expect_not(dp_joblog_skip(jl, 0, "zero"));
    cr_expect_not(dp_joblog_skip(NULL, 0, "zero"));
    dp_joblog_close(&jl);
}

Test(joblog, foreign_file_is_refused)
{
    s_put_file("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\t"
               "Signal\tCommand\n1\t:\t0\t0\t0\t0\t0\t0\techo 1\n");
    dp_joblog_t *jl = NULL;
    char err[256] = "";
    cr_expect_eq(dp_joblog_open(s_path, DP_JOBLOG_RESUME, &jl, err, sizeof err),
                 DP_ERR_INVALID);
    cr_expect_null(jl);
    cr_expect(strstr(err, "not a dpool joblog"), "%s", err);
    cr_expect_eq(dp_joblog_open(s_path, DP_JOBLOG_APPEND, &jl, err, sizeof err),
                 DP_ERR_INVALID, "never appended to either");
}

Test(joblog, malformed_lines_are_ignored)
{
    s_put_file(DP_JOBLOG_HEADER "\n"
                                "0\tok\t-\t1\tw\t1.0\t0.1\ta\n"
                                "garbage\n"
                                "-1\tok\t-\t1\tw\t1.0\t0.1\tb\n"
                                "99999999999999999999\tok\t-\t1\tw\t1\t0\tc\n"
                                "2\tmaybe\t-\t1\tw\t1.0\t0.1\td\n"
                                "3\tok\t-\t1\n"
                                "\n"
                                "4\tok\t-\t1\tw\t1.0\t0.1\te\n");
    dp_joblog_t *jl = s_open(DP_JOBLOG_RESUME);
    cr_expect(dp_joblog_skip(jl, 0, "a"));
    cr_expect_not(dp_joblog_skip(jl, 2, "d"));
    cr_expect_not(dp_joblog_skip(jl, 3, ""));
    cr_expect(dp_joblog_skip(jl, 4, "e"));
    cr_expect_eq(jl->malformed, 5);
    dp_joblog_close(&jl);
}

Test(joblog, a_line_cut_by_a_kill_is_ended)
{
    s_put_file(DP_JOBLOG_HEADER "\n"
                                "0\tok\t-\t1\tw\t1.0\t0.1\ta\n"
                                "1\tok\t-\t1\tw\t1.0"); /* cut */
    dp_joblog_t *jl = s_open(DP_JOBLOG_RESUME);
    cr_expect(dp_joblog_skip(jl, 0, "a"));
    cr_expect_not(dp_joblog_skip(jl, 1, "b"));
    s_write(jl, 1, "b", 0);
    dp_joblog_close(&jl);
    cr_expect(strstr(s_slurp(), "\t1.0\n1\tok\t-\t1\tw0\t"), "%s", s_slurp());
    jl = s_open(DP_JOBLOG_RESUME);
    cr_expect(dp_joblog_skip(jl, 1, "b"));
    dp_joblog_close(&jl);
}

Test(joblog, many_indexes)
{
    dp_joblog_t *jl = s_open(DP_JOBLOG_APPEND);
    char in[32];
    for (size_t k = 0; k < 20000; k += 2) {
        snprintf(in, sizeof in, "in%zu", k);
        s_write(jl, k, in, k % 4 ? DP_ERR_INVALID : 0);
    }
    dp_joblog_close(&jl);
    jl = s_open(DP_JOBLOG_RESUME_FAILED);
    size_t run = 0;
    for (size_t k = 0; k < 20000; k++) {
        snprintf(in, sizeof in, "in%zu", k);
        run += !dp_joblog_skip(jl, k, in);
    }
    cr_expect_eq(run, 15000, "odd ones missing, half the even ones failed");
    dp_joblog_close(&jl);
}

Test(joblog, unwritable_path_is_an_error)
{
    dp_joblog_t *jl = NULL;
    char err[256] = "";
    cr_expect_eq(dp_joblog_open("/nonexistent/dir/joblog", DP_JOBLOG_APPEND,
                                &jl, err, sizeof err),
                 DP_ERR_IO);
    cr_expect(strstr(err, "No such file"), "%s", err);
}
