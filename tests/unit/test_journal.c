/*
 * test_journal.c - broker/dp_journal.c and common/dp_crc32c.c: CRC-32C
 * vectors, a round trip of every record kind, the directory lock, torn
 * tails (garbage appended, cut mid-record), CRC corruption, a corrupt
 * middle segment set aside, compaction bounding disk use with one old job
 * among many finished ones, a full disk (a 256 KiB tmpfs: sticky error,
 * nothing acknowledged lost, nothing unacknowledged replayed), and the
 * fsync window.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dp_buf.h"
#include "dp_crc32c.h"
#include "dp_journal.h"
#include "dpool.h"

#define T_JOB_BYTES 100u
#define T_MANY 10000u
#define T_TMPFS_OPTS "size=256k"
#define T_BIG_JOB 2048u
#define T_SEG_SMALL 4096u
#define T_COMPACT_MIN 16384u
#define T_DISK_BOUND (64u * 1024) /* compaction keeps the dir under this */

static char s_dir[256];
static bool s_mounted;

/* ---- fixture ---- */

static void s_rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    for (e = readdir(d); e; e = readdir(d)) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/dp_journal_XXXXXX");
    cr_assert(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    char j[300];
    snprintf(j, sizeof j, "%s/j", s_dir);
    if (s_mounted) {
        s_rm_dir(j);
        umount2(j, MNT_DETACH);
        s_mounted = false;
    }
    s_rm_dir(j);
    s_rm_dir(s_dir);
}

TestSuite(journal, .init = s_setup, .fini = s_teardown, .timeout = 60);

static const char *s_jdir(void)
{
    static char j[300];
    snprintf(j, sizeof j, "%s/j", s_dir);
    return j;
}

static void s_seg_path(char *out, size_t len, unsigned seg, const char *sfx)
{
    snprintf(out, len, "%s/journal.%06u%s", s_jdir(), seg, sfx);
}

static uint64_t s_dir_bytes(void)
{
    DIR *d = opendir(s_jdir());
    uint64_t n = 0;
    struct dirent *e;
    char path[600];
    for (e = d ? readdir(d) : NULL; e; e = readdir(d)) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", s_jdir(), e->d_name);
        if (strncmp(e->d_name, "journal.", 8) == 0 && stat(path, &st) == 0)
            n += (uint64_t)st.st_size;
    }
    if (d)
        closedir(d);
    return n;
}

static off_t s_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ---- a replay that writes each record as a line of text ---- */

static int s_on_batch(void *d, const dp_jr_batch_t *b)
{
    return dp_buf_printf(
        d, "batch %llu %llu %llu %d %.*s [%.*s] [%.*s]\n",
        (unsigned long long)b->batch, (unsigned long long)b->created_ms,
        (unsigned long long)b->ttl_ms, b->detached, (int)b->session_len,
        (const char *)b->session, (int)b->owner_len, b->owner, (int)b->name_len,
        b->name);
}

static int s_on_job(void *d, const dp_jr_job_t *j)
{
    uint32_t sum = dp_crc32c(0, j->raw, j->raw_len);
    return dp_buf_printf(d, "job %llu %llu %u %zu %08x\n",
                         (unsigned long long)j->batch,
                         (unsigned long long)j->id, j->chunk, j->raw_len, sum);
}

static int s_on_dispatch(void *d, uint64_t id, uint32_t attempt)
{
    return dp_buf_printf(d, "dispatch %llu %u\n", (unsigned long long)id,
                         attempt);
}

static int s_on_result(void *d, uint64_t id, const uint8_t *raw, size_t len)
{
    return dp_buf_printf(d, "result %llu %.*s\n", (unsigned long long)id,
                         (int)len, (const char *)raw);
}

static int s_on_taken(void *d, uint64_t id)
{
    return dp_buf_printf(d, "taken %llu\n", (unsigned long long)id);
}

static int s_on_cancel(void *d, uint64_t id)
{
    return dp_buf_printf(d, "cancel %llu\n", (unsigned long long)id);
}

static int s_on_forget(void *d, uint64_t id)
{
    return dp_buf_printf(d, "forget %llu\n", (unsigned long long)id);
}

static dp_journal_replay_t s_cb(dp_buf_t *log)
{
    return (dp_journal_replay_t){s_on_batch,  s_on_job,   s_on_dispatch,
                                 s_on_result, s_on_taken, s_on_cancel,
                                 s_on_forget, log};
}

/* s_open: open the test journal with cfg, replay into *log (text). */
static dp_journal_t *s_open(const dp_journal_cfg_t *cfg, dp_buf_t *log)
{
    dp_journal_replay_t cb = s_cb(log);
    dp_journal_t *j = NULL;
    char err[256] = "";
    int rc = dp_journal_open(s_jdir(), cfg, &cb, &j, err, sizeof err);
    cr_assert_eq(rc, 0, "open: %s (%s)", dp_errname(rc), err);
    return j;
}

/* s_replayed: reopen, replay, close; the text (caller frees). */
static char *s_replayed(const dp_journal_cfg_t *cfg)
{
    dp_buf_t log;
    dp_buf_init(&log);
    dp_buf_putc(&log, '\0');
    log.len = 0;
    dp_journal_t *j = s_open(cfg, &log);
    dp_journal_close(&j);
    dp_buf_putc(&log, '\0');
    return dp_buf_take(&log);
}

static size_t s_count(const char *text, const char *word)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, word)) != NULL; p++)
        n++;
    return n;
}

static void s_job(dp_journal_t *j, uint64_t id, size_t len)
{
    uint8_t raw[T_BIG_JOB];
    cr_assert(len <= sizeof raw);
    memset(raw, (int)(id & 0xff), len);
    dp_jr_job_t job = {id >> 32, id, 1, raw, len};
    cr_assert_eq(dp_journal_job(j, &job), 0);
}

/* ---- CRC-32C ---- */

Test(journal, crc32c_vectors)
{
    cr_expect_eq(dp_crc32c(0, "123456789", 9), 0xE3069283u);
    cr_expect_eq(dp_crc32c(0, "", 0), 0u);
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof ones);
    cr_expect_eq(dp_crc32c(0, zeros, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    cr_expect_eq(dp_crc32c(0, ones, 32), 0x62A8AB43u);
    /* pieces, at every split and alignment */
    char text[100];
    for (int k = 0; k < 100; k++)
        text[k] = (char)(k * 7 + 3);
    uint32_t whole = dp_crc32c(0, text + 1, 99);
    for (size_t cut = 0; cut <= 99; cut++)
        cr_assert_eq(
            dp_crc32c(dp_crc32c(0, text + 1, cut), text + 1 + cut, 99 - cut),
            whole);
}

/* ---- round trip ---- */

static void s_write_all_kinds(dp_journal_t *j)
{
    dp_jr_batch_t b = {7,    1700000000000ull,          86400000,
                       true, (const uint8_t *)"sess-a", 6};
    cr_assert_eq(dp_journal_batch(j, &b), 0); /* as before owners */
    b.batch = 8;
    b.owner = "client:alice";
    b.owner_len = 12;
    b.name = "dpool";
    b.name_len = 5;
    cr_assert_eq(dp_journal_batch(j, &b), 0);
    uint8_t raw[T_JOB_BYTES];
    memset(raw, 0x5a, sizeof raw);
    dp_jr_job_t job = {7, (7ull << 32) | 1, 16, raw, sizeof raw};
    cr_assert_eq(dp_journal_job(j, &job), 0);
    job.id++;
    job.raw_len = 0; /* an empty blob is fine */
    cr_assert_eq(dp_journal_job(j, &job), 0);
    cr_assert_eq(dp_journal_dispatch(j, (7ull << 32) | 1, 2), 0);
    cr_assert_eq(dp_journal_result(j, (7ull << 32) | 1, "R1", 2), 0);
    cr_assert_eq(dp_journal_taken(j, (7ull << 32) | 1), 0);
    cr_assert_eq(dp_journal_cancel(j, (7ull << 32) | 2), 0);
    cr_assert_eq(dp_journal_forget(j, 7), 0);
}

#define S_ALL_KINDS_TEXT                                                       \
    "batch 7 1700000000000 86400000 1 sess-a [] []\n"                          \
    "batch 8 1700000000000 86400000 1 sess-a [client:alice] [dpool]\n"         \
    "job 7 30064771073 16 100 %08x\n"                                          \
    "job 7 30064771074 16 0 00000000\n"                                        \
    "dispatch 30064771073 2\n"                                                 \
    "result 30064771073 R1\n"                                                  \
    "taken 30064771073\n"                                                      \
    "cancel 30064771074\n"                                                     \
    "forget 7\n"

static char *s_expected_all_kinds(void)
{
    uint8_t raw[T_JOB_BYTES];
    memset(raw, 0x5a, sizeof raw);
    char *want = malloc(1024);
    snprintf(want, 1024, S_ALL_KINDS_TEXT, dp_crc32c(0, raw, sizeof raw));
    return want;
}

Test(journal, round_trip_every_kind)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    cr_expect_eq(log.len, 0, "a new journal replays nothing");
    s_write_all_kinds(j);
    cr_assert_eq(dp_journal_commit(j, 1000), 0);
    dp_journal_close(&j);
    cr_assert_null(j);
    dp_buf_release(&log);
    char *got = s_replayed(&cfg), *want = s_expected_all_kinds();
    cr_expect_str_eq(got, want);
    /* appends after a replay land after the old records */
    dp_buf_init(&log);
    j = s_open(&cfg, &log);
    cr_assert_eq(dp_journal_forget(j, 8), 0);
    dp_journal_close(&j); /* close commits what is buffered */
    dp_buf_release(&log);
    free(got);
    got = s_replayed(&cfg);
    cr_expect(strncmp(got, want, strlen(want)) == 0);
    cr_expect_str_eq(got + strlen(want), "forget 8\n");
    free(got);
    free(want);
}

Test(journal, lock_refuses_a_second_broker)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *a = s_open(&cfg, &log), *b = NULL;
    char err[256] = "";
    int rc = dp_journal_open(s_jdir(), &cfg, NULL, &b, err, sizeof err);
    cr_expect_eq(rc, DP_ERR_IO);
    cr_expect_null(b);
    cr_expect(strstr(err, "in use by another broker"), "%s", err);
    dp_journal_close(&a);
    rc = dp_journal_open(s_jdir(), &cfg, NULL, &b, err, sizeof err);
    cr_expect_eq(rc, 0, "free again after close: %s", err);
    dp_journal_close(&b);
    dp_buf_release(&log);
}

static int s_refuse(void *d, uint64_t id)
{
    (void)d;
    (void)id;
    return DP_ERR_INTERNAL;
}

Test(journal, callback_error_stops_the_open)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    dp_journal_t *j = NULL;
    cr_assert_eq(dp_journal_open(s_jdir(), &cfg, NULL, &j, NULL, 0), 0);
    cr_assert_eq(dp_journal_taken(j, 1), 0);
    dp_journal_close(&j);
    dp_journal_replay_t cb = {.taken = s_refuse};
    char err[256] = "";
    cr_expect_eq(dp_journal_open(s_jdir(), &cfg, &cb, &j, err, sizeof err),
                 DP_ERR_INTERNAL);
    cr_expect_null(j);
    /* nothing was truncated: a plain replay still sees the record */
    char *got = s_replayed(&cfg);
    cr_expect_str_eq(got, "taken 1\n");
    free(got);
}

/* ---- torn tails and corruption ---- */

static void s_write_n_jobs(const dp_journal_cfg_t *cfg, unsigned n)
{
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(cfg, &log);
    for (unsigned k = 1; k <= n; k++)
        s_job(j, k, T_JOB_BYTES);
    cr_assert_eq(dp_journal_commit(j, 0), 0);
    dp_journal_close(&j);
    dp_buf_release(&log);
}

Test(journal, garbage_tail_is_truncated)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    s_write_n_jobs(&cfg, 10);
    char seg[600];
    s_seg_path(seg, sizeof seg, 1, "");
    off_t good = s_size(seg);
    FILE *f = fopen(seg, "ab");
    cr_assert(f);
    for (int k = 0; k < 1000; k++) /* random-looking, and a huge length */
        fputc((k * 131 + 17) & 0xff, f);
    fclose(f);
    char *got = s_replayed(&cfg);
    cr_expect_eq(s_count(got, "job "), 10, "%s", got);
    cr_expect_eq(s_size(seg), good, "the tail is cut back");
    free(got);
}

Test(journal, cut_mid_record_is_truncated)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    s_write_n_jobs(&cfg, 10);
    char seg[600];
    s_seg_path(seg, sizeof seg, 1, "");
    off_t full = s_size(seg);
    cr_assert_eq(truncate(seg, full - 5), 0); /* a torn last record */
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    cr_expect_eq(s_count(log.data, "job "), 9);
    dp_journal_stats_t st;
    dp_journal_stats(j, &st);
    cr_expect_eq(st.truncated_bytes, 12 + T_JOB_BYTES + 20 - 5);
    cr_expect_eq(st.replayed_records, 9);
    s_job(j, 99, T_JOB_BYTES); /* appending goes on from the cut */
    dp_journal_close(&j);
    dp_buf_release(&log);
    char *got = s_replayed(&cfg);
    cr_expect_eq(s_count(got, "job "), 10);
    cr_expect(strstr(got, "job 0 99 "), "%s", got);
    free(got);
}

Test(journal, crc_mismatch_stops_the_replay)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    s_write_n_jobs(&cfg, 10);
    char seg[600];
    s_seg_path(seg, sizeof seg, 1, "");
    /* flip one payload byte of the 6th record */
    off_t at = 32 + 5 * (12 + 20 + T_JOB_BYTES) + 12 + 20 + 50;
    int fd = open(seg, O_RDWR);
    uint8_t c;
    cr_assert_eq(pread(fd, &c, 1, at), 1);
    c ^= 0x01;
    cr_assert_eq(pwrite(fd, &c, 1, at), 1);
    close(fd);
    char *got = s_replayed(&cfg);
    cr_expect_eq(s_count(got, "job "), 5, "%s", got);
    cr_expect_eq(s_size(seg), 32 + 5 * (12 + 20 + T_JOB_BYTES));
    free(got);
}

Test(journal, corrupt_middle_segment_sets_the_rest_aside)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    cfg.segment_bytes = 1024; /* about 7 jobs per segment */
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    for (unsigned k = 1; k <= 40; k++) {
        s_job(j, k, T_JOB_BYTES);
        cr_assert_eq(dp_journal_commit(j, 0), 0);
    }
    dp_journal_stats_t st;
    dp_journal_stats(j, &st);
    cr_assert_geq(st.segments, 4);
    dp_journal_close(&j);
    dp_buf_release(&log);
    char seg2[600], seg3[600], bad3[600];
    s_seg_path(seg2, sizeof seg2, 2, "");
    s_seg_path(seg3, sizeof seg3, 3, "");
    s_seg_path(bad3, sizeof bad3, 3, ".corrupt");
    cr_assert_eq(truncate(seg2, s_size(seg2) - 1), 0);
    char *got = s_replayed(&cfg);
    size_t n = s_count(got, "job ");
    cr_expect(n > 0 && n < 40, "%zu jobs", n);
    cr_expect_eq(s_size(seg3), -1);
    cr_expect_gt(s_size(bad3), 0, "set aside, not deleted");
    free(got);
}

Test(journal, unknown_kind_is_skipped)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    s_write_n_jobs(&cfg, 2);
    char seg[600];
    s_seg_path(seg, sizeof seg, 1, "");
    uint8_t rec[12 + 3] = {3, 0, 0, 0, 200, 0, 0, 0};
    memcpy(rec + 12, "xyz", 3);
    uint32_t crc = dp_crc32c(dp_crc32c(0, rec, 8), rec + 12, 3);
    for (int k = 0; k < 4; k++)
        rec[8 + k] = (uint8_t)(crc >> (8 * k));
    FILE *f = fopen(seg, "ab");
    fwrite(rec, 1, sizeof rec, f);
    fclose(f);
    s_write_n_jobs(&cfg, 1); /* a record after it, still replayed */
    char *got = s_replayed(&cfg);
    cr_expect_eq(s_count(got, "job "), 3, "%s", got);
    free(got);
}

/* ---- compaction ---- */

typedef struct {
    uint64_t old_id;
} s_live_t;

static int s_dump(void *data, dp_journal_t *j)
{
    s_live_t *l = data;
    dp_jr_batch_t b = {0, 1, 2, false, (const uint8_t *)"s", 1};
    int rc = dp_journal_batch(j, &b);
    uint8_t raw[T_JOB_BYTES];
    memset(raw, (int)(l->old_id & 0xff), sizeof raw);
    dp_jr_job_t job = {0, l->old_id, 1, raw, sizeof raw};
    if (!rc)
        rc = dp_journal_job(j, &job);
    if (!rc)
        rc = dp_journal_dispatch(j, l->old_id, 1);
    return rc;
}

Test(journal, compaction_bounds_disk_with_one_old_job)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    cfg.segment_bytes = T_SEG_SMALL;
    cfg.compact_min_bytes = T_COMPACT_MIN;
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    s_live_t live = {1};
    cr_assert_eq(s_dump(&live, j), 0); /* the long-lived job, in seg 1 */
    cr_assert_eq(dp_journal_commit(j, 0), 0);
    uint64_t max_disk = 0;
    for (uint64_t id = 2; id < 2 + T_MANY; id++) {
        s_job(j, id, T_JOB_BYTES);
        cr_assert_eq(dp_journal_dispatch(j, id, 1), 0);
        cr_assert_eq(dp_journal_result(j, id, "ok", 2), 0);
        cr_assert_eq(dp_journal_taken(j, id), 0);
        cr_assert_eq(dp_journal_commit(j, id), 0);
        if (dp_journal_compact_due(j))
            cr_assert_eq(dp_journal_compact(j, s_dump, &live, id), 0);
        uint64_t d = s_dir_bytes();
        max_disk = d > max_disk ? d : max_disk;
    }
    dp_journal_stats_t st;
    dp_journal_stats(j, &st);
    cr_expect_gt(st.compactions, 10);
    cr_expect_lt(max_disk, T_DISK_BOUND, "disk peaked at %llu bytes",
                 (unsigned long long)max_disk);
    char seg1[600];
    s_seg_path(seg1, sizeof seg1, 1, "");
    cr_expect_eq(s_size(seg1), -1, "the old job did not pin segment 1");
    /* the appended-but-never-compacted tail replays after the BASE */
    dp_journal_close(&j);
    dp_buf_release(&log);
    char *got = s_replayed(&cfg);
    cr_expect(strstr(got, "job 0 1 1 100 "), "%.200s", got);
    cr_expect_eq(s_count(got, "dispatch 1 1\n"), 1);
    cr_expect_lt(strlen(got), 200000);
    free(got);
}

static int s_dump_fails(void *data, dp_journal_t *j)
{
    (void)data;
    s_job(j, 12345, T_JOB_BYTES);
    return DP_ERR_INTERNAL;
}

Test(journal, failed_dump_leaves_the_journal_as_it_was)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    s_write_n_jobs(&cfg, 5);
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    cr_expect_eq(dp_journal_compact(j, s_dump_fails, NULL, 0), DP_ERR_INTERNAL);
    cr_expect_eq(dp_journal_error(j, NULL), 0, "a dump error is not sticky");
    s_job(j, 6, T_JOB_BYTES);
    dp_journal_close(&j);
    dp_buf_release(&log);
    /* a leftover .tmp (a crash mid-compaction) is removed at open */
    char tmp[600];
    s_seg_path(tmp, sizeof tmp, 9, ".tmp");
    FILE *f = fopen(tmp, "w");
    fputs("half a segment", f);
    fclose(f);
    char *got = s_replayed(&cfg);
    cr_expect_eq(s_count(got, "job "), 6, "%s", got);
    cr_expect_null(strstr(got, "12345"));
    cr_expect_eq(s_size(tmp), -1);
    free(got);
}

Test(journal, base_segment_supersedes_older_ones)
{
    /* a crash after the new BASE was renamed in, before the old segments
     * were deleted: replay starts at the BASE and deletes them */
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    s_write_n_jobs(&cfg, 5);
    char seg1[600], keep[600];
    s_seg_path(seg1, sizeof seg1, 1, "");
    snprintf(keep, sizeof keep, "%s/keep", s_dir);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp %s %s", seg1, keep);
    cr_assert_eq(system(cmd), 0);
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    s_live_t live = {77};
    cr_assert_eq(dp_journal_compact(j, s_dump, &live, 0), 0);
    dp_journal_close(&j);
    dp_buf_release(&log);
    snprintf(cmd, sizeof cmd, "cp %s %s", keep, seg1); /* seg 1 is back */
    cr_assert_eq(system(cmd), 0);
    unlink(keep);
    char *got = s_replayed(&cfg);
    cr_expect_eq(s_count(got, "job "), 1, "%s", got);
    cr_expect(strstr(got, "job 0 77 "));
    cr_expect_eq(s_size(seg1), -1);
    free(got);
}

/* ---- a full disk ---- */

Test(journal, full_disk_is_sticky_and_loses_nothing_acknowledged)
{
    cr_assert_eq(mkdir(s_jdir(), 0700), 0);
    if (mount("tmpfs", s_jdir(), "tmpfs", 0, T_TMPFS_OPTS) != 0)
        cr_skip_test("cannot mount a tmpfs (%s): not root?", strerror(errno));
    s_mounted = true;
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    cfg.fsync_ms = 0;
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    unsigned acked = 0, k;
    int rc = 0;
    for (k = 1; k < 100000 && !rc; k++) {
        s_job(j, k, T_BIG_JOB);
        rc = dp_journal_commit(j, k);
        if (!rc)
            acked = k; /* the broker would send ACCEPTED now */
    }
    cr_assert_eq(rc, DP_ERR_IO, "the disk never filled");
    cr_expect_gt(acked, 50);
    const char *msg;
    cr_expect_eq(dp_journal_error(j, &msg), DP_ERR_IO);
    cr_expect(strstr(msg, "No space left"), "%s", msg);
    /* sticky: nothing more is taken or reported written */
    uint8_t raw[8] = {0};
    dp_jr_job_t job = {0, 999999, 1, raw, sizeof raw};
    cr_expect_eq(dp_journal_job(j, &job), DP_ERR_IO);
    cr_expect_eq(dp_journal_commit(j, k), DP_ERR_IO);
    cr_expect_eq(dp_journal_tick(j, k + 1000), DP_ERR_IO);
    cr_expect_eq(dp_journal_fsync_due(j), UINT64_MAX);
    cr_expect_not(dp_journal_compact_due(j));
    dp_journal_close(&j);
    dp_buf_release(&log);
    /* every acknowledged job is there, and none of the refused ones */
    char *got = s_replayed(&cfg);
    cr_expect_eq(s_count(got, "job "), acked, "%zu replayed, %u acked",
                 s_count(got, "job "), acked);
    char last[64];
    snprintf(last, sizeof last, "job 0 %u ", acked + 1);
    cr_expect_null(strstr(got, last));
    free(got);
}

Test(journal, rotation_on_a_full_disk_fails_cleanly)
{
    cr_assert_eq(mkdir(s_jdir(), 0700), 0);
    if (mount("tmpfs", s_jdir(), "tmpfs", 0, T_TMPFS_OPTS) != 0)
        cr_skip_test("cannot mount a tmpfs (%s): not root?", strerror(errno));
    s_mounted = true;
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    cfg.segment_bytes = 8192;
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    unsigned acked = 0;
    int rc = 0;
    for (unsigned k = 1; k < 100000 && !rc; k++) {
        s_job(j, k, T_BIG_JOB);
        rc = dp_journal_commit(j, k);
        if (!rc)
            acked = k;
    }
    cr_assert_eq(rc, DP_ERR_IO);
    dp_journal_close(&j);
    dp_buf_release(&log);
    char *got = s_replayed(&cfg);
    /* the failed rotation came before the commit's write */
    cr_expect_eq(s_count(got, "job "), acked, "%zu replayed, %u acked",
                 s_count(got, "job "), acked);
    free(got);
}

static int s_dump_all(void *data, dp_journal_t *j)
{
    unsigned n = *(unsigned *)data;
    for (unsigned k = 1; k <= n; k++) {
        uint8_t raw[T_BIG_JOB];
        memset(raw, (int)(k & 0xff), sizeof raw);
        dp_jr_job_t job = {0, k, 1, raw, sizeof raw};
        int rc = dp_journal_job(j, &job);
        if (rc)
            return rc;
    }
    return 0;
}

Test(journal, compaction_on_a_full_disk_keeps_the_old_segments)
{
    cr_assert_eq(mkdir(s_jdir(), 0700), 0);
    if (mount("tmpfs", s_jdir(), "tmpfs", 0, T_TMPFS_OPTS) != 0)
        cr_skip_test("cannot mount a tmpfs (%s): not root?", strerror(errno));
    s_mounted = true;
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    unsigned live = 80; /* 80 x 2 KiB: a second copy does not fit */
    for (unsigned k = 1; k <= live; k++)
        s_job(j, k, T_BIG_JOB);
    cr_assert_eq(dp_journal_commit(j, 0), 0);
    int rc = dp_journal_compact(j, s_dump_all, &live, 0);
    cr_expect_eq(rc, DP_ERR_IO);
    const char *msg;
    cr_expect_eq(dp_journal_error(j, &msg), DP_ERR_IO);
    cr_expect(strstr(msg, "No space left"), "%s", msg);
    dp_journal_close(&j);
    dp_buf_release(&log);
    char *got = s_replayed(&cfg);
    cr_expect_eq(s_count(got, "job "), live, "%s", got);
    free(got);
    char tmp[600];
    s_seg_path(tmp, sizeof tmp, 2, ".tmp");
    cr_expect_eq(s_size(tmp), -1, "the half-made BASE is gone");
}

Test(journal, bad_segment_header_ends_the_journal)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    cfg.segment_bytes = 1024;
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    for (unsigned k = 1; k <= 30; k++) { /* several segments */
        s_job(j, k, T_JOB_BYTES);
        cr_assert_eq(dp_journal_commit(j, 0), 0);
    }
    dp_journal_close(&j);
    dp_buf_release(&log);
    char seg3[600], bad3[600];
    s_seg_path(seg3, sizeof seg3, 3, "");
    s_seg_path(bad3, sizeof bad3, 3, ".corrupt");
    cr_assert_gt(s_size(seg3), 0);
    int fd = open(seg3, O_RDWR);
    cr_assert_eq(pwrite(fd, "X", 1, 0), 1); /* the magic */
    close(fd);
    char *got = s_replayed(&cfg);
    size_t n = s_count(got, "job ");
    cr_expect(n > 0 && n < 30, "%zu", n);
    cr_expect_gt(s_size(bad3), 0);
    free(got);
    /* appending goes on in a new segment after the set-aside ones */
    s_write_n_jobs(&cfg, 1);
    got = s_replayed(&cfg);
    cr_expect_eq(s_count(got, "job "), n + 1);
    free(got);
}

Test(journal, dir_that_is_a_file_is_an_error)
{
    FILE *f = fopen(s_jdir(), "w");
    cr_assert(f);
    fclose(f);
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    dp_journal_t *j = NULL;
    char err[256] = "";
    cr_expect_eq(dp_journal_open(s_jdir(), &cfg, NULL, &j, err, sizeof err),
                 DP_ERR_IO);
    cr_expect_null(j);
    cr_expect(strstr(err, "Not a directory"), "%s", err);
    unlink(s_jdir());
}

/* ---- a broker killed mid-write ---- */

/* s_writer: append and commit forever, telling the parent (over fd) the
 * last id each successful commit covered. Killed by the parent. */
static void s_writer(int fd)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    cfg.segment_bytes = 65536; /* rotations happen during the run too */
    dp_journal_t *j = NULL;
    if (dp_journal_open(s_jdir(), &cfg, NULL, &j, NULL, 0))
        _exit(1);
    for (uint64_t id = 1;; id++) {
        uint8_t raw[T_JOB_BYTES + 64];
        memset(raw, (int)(id & 0xff), sizeof raw);
        dp_jr_job_t job = {0, id, 1, raw, T_JOB_BYTES + id % 64};
        if (dp_journal_job(j, &job) || dp_journal_commit(j, id))
            _exit(1);
        if (write(fd, &id, sizeof id) != sizeof id)
            _exit(1);
    }
}

Test(journal, kill_9_loses_nothing_committed)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        s_writer(p[1]);
    }
    close(p[1]);
    uint64_t acked = 0, id;
    while (acked < 3000 && read(p[0], &id, sizeof id) == sizeof id)
        acked = id;
    kill(pid, SIGKILL);
    while (read(p[0], &id, sizeof id) == sizeof id)
        acked = id; /* what it said before it died */
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st), "the writer failed on its own");
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    char *got = s_replayed(&cfg);
    size_t n = s_count(got, "job ");
    cr_expect_geq(n, acked, "%zu replayed, %llu committed", n,
                  (unsigned long long)acked);
    cr_expect_leq(n, acked + 1, "at most the commit it was in");
    /* in order, none missing */
    char want[64];
    snprintf(want, sizeof want, "job 0 %llu ", (unsigned long long)acked);
    cr_expect(strstr(got, want));
    free(got);
}

/* ---- the fsync window ---- */

Test(journal, fsync_ms_zero_syncs_every_commit)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    cfg.fsync_ms = 0;
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    dp_journal_stats_t st0, st;
    dp_journal_stats(j, &st0);
    for (unsigned k = 1; k <= 5; k++) {
        s_job(j, k, T_JOB_BYTES);
        cr_assert_eq(dp_journal_commit(j, 100), 0);
        cr_expect_eq(dp_journal_fsync_due(j), UINT64_MAX, "nothing unsynced");
    }
    cr_assert_eq(dp_journal_commit(j, 100), 0); /* nothing new: no fsync */
    dp_journal_stats(j, &st);
    cr_expect_eq(st.fsyncs - st0.fsyncs, 5);
    cr_expect_eq(st.writes - st0.writes, 5);
    dp_journal_close(&j);
    dp_buf_release(&log);
}

Test(journal, fsync_window_defers_and_bounds_the_fsync)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    cfg.fsync_ms = 50;
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    dp_journal_stats_t st0, st;
    dp_journal_stats(j, &st0);
    cr_expect_eq(dp_journal_fsync_due(j), UINT64_MAX);
    s_job(j, 1, T_JOB_BYTES);
    cr_assert_eq(dp_journal_commit(j, 1000), 0);
    dp_journal_stats(j, &st);
    cr_expect_eq(st.writes - st0.writes, 1, "written at once");
    cr_expect_eq(st.fsyncs, st0.fsyncs, "fsync deferred");
    cr_expect_eq(dp_journal_fsync_due(j), 1050);
    /* more commits within the window share the one fsync */
    s_job(j, 2, T_JOB_BYTES);
    cr_assert_eq(dp_journal_commit(j, 1030), 0);
    cr_expect_eq(dp_journal_fsync_due(j), 1050, "the oldest write counts");
    cr_assert_eq(dp_journal_tick(j, 1049), 0);
    dp_journal_stats(j, &st);
    cr_expect_eq(st.fsyncs, st0.fsyncs);
    cr_assert_eq(dp_journal_tick(j, 1050), 0);
    dp_journal_stats(j, &st);
    cr_expect_eq(st.fsyncs - st0.fsyncs, 1);
    cr_expect_eq(dp_journal_fsync_due(j), UINT64_MAX);
    /* a commit past an overdue deadline syncs itself (a late loop) */
    s_job(j, 3, T_JOB_BYTES);
    cr_assert_eq(dp_journal_commit(j, 2000), 0);
    s_job(j, 4, T_JOB_BYTES);
    cr_assert_eq(dp_journal_commit(j, 2060), 0);
    dp_journal_stats(j, &st);
    cr_expect_eq(st.fsyncs - st0.fsyncs, 2);
    /* sync forces it */
    s_job(j, 5, T_JOB_BYTES);
    cr_assert_eq(dp_journal_sync(j, 2061), 0);
    dp_journal_stats(j, &st);
    cr_expect_eq(st.fsyncs - st0.fsyncs, 3);
    dp_journal_close(&j);
    dp_buf_release(&log);
    char *got = s_replayed(&cfg);
    cr_expect_eq(s_count(got, "job "), 5);
    free(got);
}

Test(journal, limits_are_refused_without_failing)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    cfg.max_record = 64;
    dp_buf_t log;
    dp_buf_init(&log);
    dp_journal_t *j = s_open(&cfg, &log);
    uint8_t raw[100] = {0};
    dp_jr_job_t job = {0, 1, 1, raw, sizeof raw};
    cr_expect_eq(dp_journal_job(j, &job), DP_ERR_LIMIT);
    uint8_t name[300] = {0};
    dp_jr_batch_t b = {1, 0, 0, false, name, sizeof name};
    cr_expect_eq(dp_journal_batch(j, &b), DP_ERR_LIMIT);
    cr_expect_eq(dp_journal_error(j, NULL), 0);
    cr_expect_eq(dp_journal_taken(j, 1), 0);
    dp_journal_close(&j);
    dp_buf_release(&log);
}
