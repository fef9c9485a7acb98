/*
 * test_session_e2e.c - sessions and resume across a broker restart, with
 * the real programs: a `dpool map` whose broker is killed (-9) mid-batch
 * and started again on the same endpoint and journal ends with exactly
 * one correct line per input and exit 0 (fsync window 0 and the
 * default; a torn journal tail appended before the restart); without a
 * journal the restarted broker does not know the session and the client
 * fails what was outstanding BROKER_LOST, as before sessions.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"

#define S_INPUTS 2000    /* jobs in the batch */
#define S_MS_MOD 7       /* input k sleeps 1 + k % S_MS_MOD ms */
#define S_DONE_FIRST 200 /* results before the kill: mid-batch */
#define S_GARBAGE 53     /* bytes appended as a torn tail */
#define S_RUN_MS 60000   /* the client's whole run, restart included */

TestSuite(session, .init = e2e_setup, .fini = e2e_teardown, .timeout = 120);

/* s_port: the port of T.ep ("tcp://127.0.0.1:PORT"). */
static int s_port(void)
{
    const char *c = strrchr(T.ep, ':');
    cr_assert(c);
    return atoi(c + 1);
}

/* s_broker: a broker on port (0: a free one) with extra arguments. */
static void s_broker(int port, const char *const extra[])
{
    cr_assert_eq(
        dp_e2e_broker_with(&T.e, &T.broker, port, T.ep, sizeof T.ep, extra), 0,
        "broker did not come up (logs in %s)", T.e.dir);
}

/* s_inputs: the batch's inputs in a file, opened for reading. */
static int s_inputs(void)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/inputs", T.e.dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int k = 0; k < S_INPUTS; k++)
        fprintf(f, "%d\n", 1 + k % S_MS_MOD);
    fclose(f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert(fd >= 0);
    return fd;
}

/* s_newest_segment: the journal segment with the highest number. */
static void s_newest_segment(const char *dir, char *path, size_t len)
{
    DIR *d = opendir(dir);
    cr_assert(d);
    char best[NAME_MAX + 1] = "";
    for (struct dirent *de = readdir(d); de; de = readdir(d)) {
        const char *n = de->d_name;
        if (strncmp(n, "journal.", 8) == 0 && !strchr(n + 8, '.') &&
            strcmp(n, best) > 0)
            snprintf(best, sizeof best, "%s", n);
    }
    closedir(d);
    cr_assert(best[0], "no journal segment in %s", dir);
    snprintf(path, len, "%s/%s", dir, best);
}

/* s_tear: append garbage to the newest segment (a torn write). */
static void s_tear(const char *dir)
{
    char seg[2 * PATH_MAX];
    s_newest_segment(dir, seg, sizeof seg);
    int fd = open(seg, O_WRONLY | O_APPEND | O_CLOEXEC);
    cr_assert(fd >= 0);
    unsigned char junk[S_GARBAGE];
    memset(junk, 0x5a, sizeof junk);
    cr_assert_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
}

/* s_check_all: exactly one line per input, in input order, each ok with
 * the input's own value. */
static void s_check_all(char *out, const char *err)
{
    char **lines = NULL;
    int n = dp_e2e_lines(out, &lines);
    cr_assert_eq(n, S_INPUTS, "%d lines for %d inputs; stderr:\n%s", n,
                 S_INPUTS, err);
    for (int k = 0; k < n; k++) {
        cr_assert_eq(dp_e2e_jint(lines[k], "index"), k, "line %d: %s", k,
                     lines[k]);
        cr_assert(dp_e2e_jtrue(lines[k], "ok"), "line %d: %s", k, lines[k]);
        cr_assert_eq(dp_e2e_jint(lines[k], "result"), 1 + k % S_MS_MOD,
                     "line %d: %s", k, lines[k]);
    }
    free(lines);
}

/* s_kill_restart: a journaling broker (fsync window fsync_ms) and a
 * worker; a batch mid-way when the broker is killed -9 (and, with tear,
 * its journal torn), then started again on the same port and journal:
 * the client ends with every line. */
static void s_kill_restart(const char *fsync_ms, bool tear)
{
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/journal", T.e.dir);
    const char *const extra[] = {"--journal", dir, "--fsync-ms", fsync_ms,
                                 NULL};
    s_broker(0, extra);
    int port = s_port();
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 2, "w0", NULL), 0);
    e2e_workers_up(1);
    int fd = s_inputs();
    dp_e2e_proc_t cl;
    cr_assert_eq(dp_e2e_spawn(&T.e, &cl, fd,
                              ARGV("dpool", "--broker", T.ep, "--format",
                                   "json", "--chunksize", "4", "map", "sleep")),
                 0);
    close(fd);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "done", S_DONE_FIRST, S_INPUTS - 1,
                               E2E_RUN_MS),
              "the batch never got going (logs in %s)", T.e.dir);
    dp_e2e_stop(&T.e, T.broker.pid, SIGKILL, DP_E2E_STOP_MS);
    if (tear)
        s_tear(dir);
    s_broker(port, extra);
    char *log = dp_e2e_slurp(T.broker.err);
    cr_expect(strstr(log, "sessions restored"), "log:\n%s", log);
    if (tear)
        cr_expect(strstr(log, "cut a torn tail"), "log:\n%s", log);
    free(log);
    cr_assert_eq(dp_e2e_wait(&T.e, cl.pid, S_RUN_MS), 0,
                 "the client did not exit 0 (logs in %s)", T.e.dir);
    char *out = dp_e2e_slurp(cl.out), *err = dp_e2e_slurp(cl.err);
    s_check_all(out, err);
    free(out);
    free(err);
    log = dp_e2e_slurp(T.broker.err);
    cr_expect(strstr(log, "resumed session"), "log:\n%s", log);
    free(log);
}

Test(session, resume_after_kill9_default_fsync)
{
    s_kill_restart("50", false);
}

Test(session, resume_after_kill9_fsync_0)
{
    s_kill_restart("0", false);
}

Test(session, resume_after_kill9_with_a_torn_tail)
{
    s_kill_restart("50", true);
}

/* Without a journal a restarted broker knows no session: WELCOME says
 * not resumed and the client fails what was outstanding BROKER_LOST
 * (exit 3), one line per input still. */
Test(session, no_journal_no_resume)
{
    s_broker(0, NULL);
    int port = s_port();
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 2, "w0", NULL), 0);
    e2e_workers_up(1);
    int fd = s_inputs();
    dp_e2e_proc_t cl;
    cr_assert_eq(dp_e2e_spawn(&T.e, &cl, fd,
                              ARGV("dpool", "--broker", T.ep, "--format",
                                   "json", "--chunksize", "4", "map", "sleep")),
                 0);
    close(fd);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "done", S_DONE_FIRST, S_INPUTS - 1,
                               E2E_RUN_MS));
    dp_e2e_stop(&T.e, T.broker.pid, SIGKILL, DP_E2E_STOP_MS);
    s_broker(port, NULL);
    cr_assert_eq(dp_e2e_wait(&T.e, cl.pid, S_RUN_MS), 3,
                 "broker lost: exit 3 (logs in %s)", T.e.dir);
    char *out = dp_e2e_slurp(cl.out);
    char **lines = NULL;
    int n = dp_e2e_lines(out, &lines);
    cr_expect_eq(n, S_INPUTS, "one line per input");
    int lost = 0;
    for (int k = 0; k < n; k++)
        lost += strstr(lines[k], "BROKER_LOST") != NULL;
    cr_expect_gt(lost, 0, "the outstanding jobs failed BROKER_LOST");
    free(lines);
    free(out);
}
