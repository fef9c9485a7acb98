/*
 * test_journal_e2e.c - the broker's --journal with the real programs
 * (issue 11, first step): a full disk refuses SUBMITs with IO and keeps
 * serving what it acknowledged; a torn journal tail is cut at start and
 * logged; a second broker on the same journal dir is refused; the
 * session of a client that died with its broker is restored at restart
 * and dropped when its --session-grace is over (resume itself:
 * test_session_e2e.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"

#define S_TMPFS_OPTS "size=256k" /* a few thousand tiny jobs fill it */
#define S_BATCH 1000             /* inputs per filling run */
#define S_FILL_RUNS 20           /* runs before the disk must be full */
#define S_SLEEP_MS "1500"        /* jobs acknowledged before the fill */
#define S_GARBAGE 37             /* bytes appended as a torn tail */
#define S_WAIT_MS 20000
#define S_LONG_MS "10000" /* jobs that never finish within a test */
#define S_GRACE_MS "1000" /* --session-grace of a restarted broker */

static char s_mnt[PATH_MAX + 16];

static void s_teardown(void)
{
    if (T.broker.pid > 0)
        dp_e2e_stop(&T.e, T.broker.pid, SIGINT, DP_E2E_STOP_MS);
    if (s_mnt[0])
        umount2(s_mnt, MNT_DETACH);
    e2e_teardown();
}

TestSuite(journal, .init = e2e_setup, .fini = s_teardown, .timeout = 120);

/* s_journal_broker: a broker on a free port journaling in dir. */
static void s_journal_broker(const char *dir, const char *fsync_ms)
{
    cr_assert_eq(
        dp_e2e_broker_with(&T.e, &T.broker, 0, T.ep, sizeof T.ep,
                           ARGV("--journal", dir, "--fsync-ms", fsync_ms)),
        0, "journaling broker did not come up (logs in %s)", T.e.dir);
}

/* s_inputs: a file of the numbers 1..n, opened for reading. */
static int s_inputs(int n)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/inputs", T.e.dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int k = 1; k <= n; k++)
        fprintf(f, "%d\n", k);
    fclose(f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert(fd >= 0);
    return fd;
}

/* s_count: lines of out holding needle. */
static int s_count(const char *out, const char *needle)
{
    int n = 0;
    for (const char *s = strstr(out, needle); s; s = strstr(s + 1, needle))
        n++;
    return n;
}

Test(journal, full_disk_refuses_submits_and_keeps_serving)
{
    snprintf(s_mnt, sizeof s_mnt, "%s/jmnt", T.e.dir);
    cr_assert_eq(mkdir(s_mnt, 0700), 0);
    if (mount("tmpfs", s_mnt, "tmpfs", 0, S_TMPFS_OPTS) != 0) {
        s_mnt[0] = '\0';
        cr_skip_test("cannot mount a tmpfs (needs root): %s", strerror(errno));
    }
    s_journal_broker(s_mnt, "50");
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 2, "w0", NULL), 0);
    e2e_workers_up(1);
    /* acknowledged before the disk fills: must still end with results */
    dp_e2e_proc_t bg;
    cr_assert_eq(
        dp_e2e_spawn(&T.e, &bg, -1,
                     ARGV("dpool", "--broker", T.ep, "--format", "json", "map",
                          "sleep", S_SLEEP_MS, S_SLEEP_MS)),
        0);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "running", 2, 2, E2E_UP_MS));
    bool full = false;
    for (int k = 0; k < S_FILL_RUNS && !full; k++) {
        int fd = s_inputs(S_BATCH);
        dp_e2e_run_t r;
        cr_assert_eq(dp_e2e_run(&T.e, &r, E2E_RUN_MS, fd,
                                ARGV("dpool", "--broker", T.ep, "--format",
                                     "json", "isprime")),
                     0);
        close(fd);
        int ok = s_count(r.out, "\"ok\":true");
        int io = s_count(r.out, "\"name\":\"IO\"");
        cr_assert_eq(ok + io, S_BATCH, "run %d: %d ok, %d IO:\n%s", k, ok, io,
                     r.err);
        if (io) {
            full = true;
            cr_expect_neq(r.code, 0);
            cr_expect(strstr(r.out, "No space left on device"),
                      "the IO error names the cause");
        }
        dp_e2e_run_free(&r);
    }
    cr_assert(full, "the journal never filled %s", S_TMPFS_OPTS);
    /* alive, and refusing every new SUBMIT (the error is sticky) */
    cr_assert_eq(dp_e2e_stat(&T.e, T.ep, "workers"), 1, "status answers");
    cr_expect_eq(dp_e2e_stat(&T.e, T.ep, "journal_error"), 1);
    dp_e2e_run_t r;
    cr_assert_eq(dp_e2e_run(&T.e, &r, E2E_RUN_MS, -1,
                            ARGV("dpool", "--broker", T.ep, "--format", "json",
                                 "isprime", "7", "8")),
                 0);
    cr_expect_eq(s_count(r.out, "\"name\":\"IO\""), 2, "%s", r.out);
    dp_e2e_run_free(&r);
    cr_assert_eq(dp_e2e_wait(&T.e, bg.pid, S_WAIT_MS), 0,
                 "the acknowledged batch ends well");
    char *out = dp_e2e_slurp(bg.out);
    cr_expect_eq(s_count(out, "\"ok\":true"), 2, "%s", out);
    free(out);
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

/* s_batch_ok: `dpool isprime 1..n` through the broker exits 0. */
static void s_batch_ok(int n)
{
    int fd = s_inputs(n);
    dp_e2e_run_t r;
    cr_assert_eq(dp_e2e_run(&T.e, &r, E2E_RUN_MS, fd,
                            ARGV("dpool", "--broker", T.ep, "isprime")),
                 0);
    close(fd);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect_eq(s_count(r.out, "\n"), n);
    dp_e2e_run_free(&r);
}

Test(journal, torn_tail_is_cut_at_start)
{
    char dir[PATH_MAX + 16], seg[2 * PATH_MAX];
    snprintf(dir, sizeof dir, "%s/journal", T.e.dir);
    s_journal_broker(dir, "50");
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 1, "w0", NULL), 0);
    e2e_workers_up(1);
    s_batch_ok(50);
    cr_expect_gt(dp_e2e_stat(&T.e, T.ep, "journal_bytes"), 0);
    cr_expect_gt(dp_e2e_stat(&T.e, T.ep, "journal_commits"), 0);
    cr_expect_eq(dp_e2e_stat(&T.e, T.ep, "journal_error"), 0);
    cr_assert_eq(dp_e2e_stop(&T.e, T.broker.pid, SIGINT, DP_E2E_STOP_MS), 0);
    s_newest_segment(dir, seg, sizeof seg);
    int fd = open(seg, O_WRONLY | O_APPEND | O_CLOEXEC);
    cr_assert(fd >= 0);
    unsigned char junk[S_GARBAGE];
    memset(junk, 0xa5, sizeof junk);
    cr_assert_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    dp_e2e_stop(&T.e, T.worker[0].pid, SIGINT, DP_E2E_STOP_MS);
    s_journal_broker(dir, "50");
    char *log = dp_e2e_slurp(T.broker.err);
    cr_expect(strstr(log, "cut a torn tail"), "log:\n%s", log);
    cr_expect(strstr(log, "truncating 37 bytes"), "log:\n%s", log);
    free(log);
    cr_expect_eq(dp_e2e_stat(&T.e, T.ep, "journal_truncated"), 37);
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 1, "w0", NULL), 0);
    e2e_workers_up(1);
    s_batch_ok(50);
}

Test(journal, second_broker_on_the_same_dir_is_refused)
{
    char dir[PATH_MAX + 16], ep[DP_E2E_EP_MAX];
    snprintf(dir, sizeof dir, "%s/journal", T.e.dir);
    s_journal_broker(dir, "0");
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", dp_e2e_free_port());
    dp_e2e_run_t r;
    cr_assert_eq(
        dp_e2e_run(&T.e, &r, E2E_RUN_MS, -1,
                   ARGV("dpool-broker", "--bind", ep, "--journal", dir)),
        0);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "in use by another broker"), "%s", r.err);
    dp_e2e_run_free(&r);
    cr_expect_eq(dp_e2e_stat(&T.e, T.ep, "workers"), 0, "the first lives");
}

Test(journal, sessions_of_gone_clients_end_after_their_grace)
{
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/journal", T.e.dir);
    s_journal_broker(dir, "0");
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 1, "w0", NULL), 0);
    e2e_workers_up(1);
    dp_e2e_proc_t cl; /* one runs, the others wait: none finishes */
    cr_assert_eq(
        dp_e2e_spawn(&T.e, &cl, -1,
                     ARGV("dpool", "--broker", T.ep, "map", "sleep", S_LONG_MS,
                          S_LONG_MS, S_LONG_MS, S_LONG_MS, S_LONG_MS)),
        0);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "running", 1, 5, E2E_UP_MS));
    dp_e2e_stop(&T.e, T.broker.pid, SIGKILL, DP_E2E_STOP_MS);
    dp_e2e_stop(&T.e, cl.pid, SIGKILL, DP_E2E_STOP_MS);
    dp_e2e_stop(&T.e, T.worker[0].pid, SIGKILL, DP_E2E_STOP_MS);
    cr_assert_eq(dp_e2e_broker_with(&T.e, &T.broker, 0, T.ep, sizeof T.ep,
                                    ARGV("--journal", dir, "--fsync-ms", "0",
                                         "--session-grace", S_GRACE_MS)),
                 0);
    char *log = dp_e2e_slurp(T.broker.err);
    cr_expect(strstr(log, "1 sessions restored"), "log:\n%s", log);
    free(log);
    long long queued = dp_e2e_stat(&T.e, T.ep, "queued");
    cr_expect_gt(queued, 0, "its jobs wait for it (%lld)", queued);
    cr_expect_eq(dp_e2e_stat(&T.e, T.ep, "sessions_away"), 1);
    cr_expect_eq(dp_e2e_stat(&T.e, T.ep, "journal"), 1);
    cr_expect(dp_e2e_wait_stat(&T.e, T.ep, "queued", 0, 0, S_WAIT_MS),
              "the session's jobs are dropped after its grace");
    log = dp_e2e_slurp(T.broker.err);
    cr_expect(strstr(log, "did not come back within its --session-grace"),
              "log:\n%s", log);
    free(log);
}
