/*
 * test_jstate.c - broker/dp_jstate.c (the live state of a journal) and,
 * through it, the journal as a whole: the rule of each record kind, and a
 * randomized run that appends thousands of records, compacts whenever due
 * and reopens now and then, checking after every reopen that the replayed
 * state equals the state the records describe.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_buf.h"
#include "dp_crc32c.h"
#include "dp_jstate.h"
#include "dpool.h"

#define T_OPS 20000
#define T_MAX_IDS 4096
#define T_BATCHES 8

static char s_dir[256], s_jdir[300];

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/dp_jstate_XXXXXX");
    cr_assert(mkdtemp(s_dir));
    snprintf(s_jdir, sizeof s_jdir, "%s/j", s_dir);
}

static void s_teardown(void)
{
    DIR *d = opendir(s_jdir);
    struct dirent *e;
    char path[600];
    for (e = d ? readdir(d) : NULL; e; e = readdir(d)) {
        snprintf(path, sizeof path, "%s/%s", s_jdir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(s_jdir);
    rmdir(s_dir);
}

TestSuite(jstate, .init = s_setup, .fini = s_teardown, .timeout = 120);

/* ---- a canonical text of a state: sorted lines ---- */

typedef struct {
    char **v;
    size_t n, cap;
} s_lines_t;

static void s_add(s_lines_t *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_add(s_lines_t *l, const char *fmt, ...)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        cr_assert(l->v);
    }
    va_list ap;
    va_start(ap, fmt);
    cr_assert(vasprintf(&l->v[l->n++], fmt, ap) >= 0);
    va_end(ap);
}

static int s_line_batch(void *data, const dp_jr_batch_t *b)
{
    s_add(data, "B %llu %llu %llu %d %.*s%s%.*s%s%.*s",
          (unsigned long long)b->batch, (unsigned long long)b->created_ms,
          (unsigned long long)b->ttl_ms, b->detached, (int)b->session_len,
          (const char *)b->session, b->owner_len ? " owner " : "",
          (int)b->owner_len, b->owner, b->name_len ? " name " : "",
          (int)b->name_len, b->name);
    return 0;
}

static int s_line_job(void *data, const dp_jstate_job_t *j)
{
    s_add(data, "J %llu %llu %u %u %d %08x %d %08x",
          (unsigned long long)j->batch, (unsigned long long)j->id, j->chunk,
          j->attempt, j->cancelled, dp_crc32c(0, j->raw, j->raw_len),
          j->has_result,
          j->has_result ? dp_crc32c(0, j->result, j->result_len) : 0);
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *s_text(const dp_jstate_t *s)
{
    s_lines_t l = {0};
    dp_jstate_each_batch(s, s_line_batch, &l);
    dp_jstate_each_job(s, s_line_job, &l);
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, s_cmp);
    dp_buf_t b;
    dp_buf_init(&b);
    for (size_t k = 0; k < l.n; k++) {
        dp_buf_puts(&b, l.v[k]);
        dp_buf_putc(&b, '\n');
        free(l.v[k]);
    }
    dp_buf_putc(&b, '\0');
    free(l.v);
    return dp_buf_take(&b);
}

/* ---- the rules ---- */

Test(jstate, rules_of_each_record)
{
    dp_jstate_t *s = dp_jstate_new();
    cr_assert(s);
    dp_journal_replay_t cb = dp_jstate_replay(s);
    dp_jr_batch_t b = {1, 10, 20, false, (const uint8_t *)"a", 1};
    cr_assert_eq(cb.batch(cb.data, &b), 0);
    b.batch = 2;
    cr_assert_eq(cb.batch(cb.data, &b), 0);
    b.detached = true; /* an upsert, now with an owner and a name */
    b.owner = "client:bob";
    b.owner_len = 10;
    b.name = "nightly";
    b.name_len = 7;
    cr_assert_eq(cb.batch(cb.data, &b), 0);
    dp_jr_job_t j = {1, 100, 4, (const uint8_t *)"job", 3};
    cr_assert_eq(cb.job(cb.data, &j), 0);
    j.id = 101;
    cr_assert_eq(cb.job(cb.data, &j), 0);
    j.batch = 2;
    j.id = 200;
    cr_assert_eq(cb.job(cb.data, &j), 0);
    cr_assert_eq(cb.dispatch(cb.data, 100, 2), 0);
    cr_assert_eq(cb.dispatch(cb.data, 999, 1), 0, "unknown: ignored");
    cr_assert_eq(cb.result(cb.data, 100, (const uint8_t *)"res", 3), 0);
    cr_assert_eq(cb.result(cb.data, 999, (const uint8_t *)"r", 1), 0);
    cr_assert_eq(cb.cancel(cb.data, 101), 0);
    cr_assert_eq(cb.taken(cb.data, 100), 0);
    size_t nb, nj;
    uint64_t bytes;
    dp_jstate_counts(s, &nb, &nj, &bytes);
    cr_expect_eq(nb, 2);
    cr_expect_eq(nj, 2);
    cr_expect_eq(bytes, 6);
    char *t = s_text(s);
    cr_expect(strstr(t, "B 2 10 20 1 a owner client:bob name nightly\n"), "%s",
              t);
    cr_expect(strstr(t, "B 1 10 20 0 a\n"), "%s", t);
    cr_expect(strstr(t, "J 1 101 4 0 1 "), "%s", t);
    cr_expect_null(strstr(t, "J 1 100 "));
    free(t);
    cr_assert_eq(cb.forget(cb.data, 1), 0);
    dp_jstate_counts(s, &nb, &nj, &bytes);
    cr_expect_eq(nb, 1);
    cr_expect_eq(nj, 1, "batch 2's job stays");
    dp_jstate_destroy(&s);
    cr_expect_null(s);
}

/* ---- randomized: journal + compaction + reopen == the model ---- */

typedef struct {
    uint64_t x;
} s_rng_t;

static uint64_t s_rand(s_rng_t *r, uint64_t n)
{
    r->x ^= r->x << 13;
    r->x ^= r->x >> 7;
    r->x ^= r->x << 17;
    return r->x % n;
}

/* s_apply: one random record, appended to j and applied to the model. */
static void s_apply(s_rng_t *r, dp_journal_t *j, dp_journal_replay_t *m,
                    uint64_t *ids, size_t *nids)
{
    uint8_t blob[256];
    size_t len = (size_t)s_rand(r, sizeof blob);
    for (size_t k = 0; k < len; k++)
        blob[k] = (uint8_t)s_rand(r, 256);
    uint64_t id = *nids ? ids[s_rand(r, *nids)] : 1;
    uint64_t op = s_rand(r, 100);
    if (op < 3) {
        char sess[16];
        int n = snprintf(sess, sizeof sess, "s%llu",
                         (unsigned long long)s_rand(r, 1000));
        dp_jr_batch_t b = {s_rand(r, T_BATCHES),  s_rand(r, 1000),
                           s_rand(r, 1000),       s_rand(r, 2) == 1,
                           (const uint8_t *)sess, (size_t)n};
        cr_assert_eq(dp_journal_batch(j, &b), 0);
        cr_assert_eq(m->batch(m->data, &b), 0);
    } else if (op < 40) {
        uint64_t nid = (s_rand(r, T_BATCHES) << 32) | s_rand(r, 1u << 20);
        if (*nids < T_MAX_IDS)
            ids[(*nids)++] = nid;
        else
            ids[s_rand(r, T_MAX_IDS)] = nid;
        dp_jr_job_t jr = {nid >> 32, nid, (uint32_t)s_rand(r, 64) + 1, blob,
                          len};
        cr_assert_eq(dp_journal_job(j, &jr), 0);
        cr_assert_eq(m->job(m->data, &jr), 0);
    } else if (op < 60) {
        uint32_t a = (uint32_t)s_rand(r, 5) + 1;
        cr_assert_eq(dp_journal_dispatch(j, id, a), 0);
        cr_assert_eq(m->dispatch(m->data, id, a), 0);
    } else if (op < 78) {
        cr_assert_eq(dp_journal_result(j, id, blob, len), 0);
        cr_assert_eq(m->result(m->data, id, blob, len), 0);
    } else if (op < 95) {
        cr_assert_eq(dp_journal_taken(j, id), 0);
        cr_assert_eq(m->taken(m->data, id), 0);
    } else if (op < 99) {
        cr_assert_eq(dp_journal_cancel(j, id), 0);
        cr_assert_eq(m->cancel(m->data, id), 0);
    } else {
        uint64_t b = s_rand(r, T_BATCHES);
        cr_assert_eq(dp_journal_forget(j, b), 0);
        cr_assert_eq(m->forget(m->data, b), 0);
    }
}

static uint64_t s_compactions, s_rotations; /* over every open */

/* s_reopen: close j, replay into a fresh state, compare with the model. */
static dp_journal_t *s_reopen(dp_journal_t *j, const dp_journal_cfg_t *cfg,
                              const dp_jstate_t *model, int round)
{
    dp_journal_stats_t st;
    dp_journal_stats(j, &st);
    s_compactions += st.compactions;
    s_rotations += st.rotations;
    dp_journal_close(&j);
    dp_jstate_t *got = dp_jstate_new();
    dp_journal_replay_t cb = dp_jstate_replay(got);
    char err[256] = "";
    cr_assert_eq(dp_journal_open(s_jdir, cfg, &cb, &j, err, sizeof err), 0,
                 "%s", err);
    char *a = s_text(model), *b = s_text(got);
    cr_assert_str_eq(b, a, "replay %d differs from the model", round);
    free(a);
    free(b);
    dp_jstate_destroy(&got);
    return j;
}

Test(jstate, random_records_compactions_and_reopens)
{
    dp_journal_cfg_t cfg = dp_journal_cfg_default();
    cfg.segment_bytes = 32768;
    cfg.compact_min_bytes = 65536;
    dp_journal_t *j = NULL;
    cr_assert_eq(dp_journal_open(s_jdir, &cfg, NULL, &j, NULL, 0), 0);
    dp_jstate_t *model = dp_jstate_new();
    dp_journal_replay_t m = dp_jstate_replay(model);
    s_rng_t r = {0x9E3779B97F4A7C15ull};
    static uint64_t ids[T_MAX_IDS];
    size_t nids = 0;
    int reopens = 0;
    for (int op = 0; op < T_OPS; op++) {
        s_apply(&r, j, &m, ids, &nids);
        if (s_rand(&r, 8) == 0)
            cr_assert_eq(dp_journal_commit(j, (uint64_t)op), 0);
        if (dp_journal_compact_due(j))
            cr_assert_eq(
                dp_journal_compact(j, dp_jstate_dump, model, (uint64_t)op), 0);
        if (s_rand(&r, 1000) == 0)
            j = s_reopen(j, &cfg, model, ++reopens);
    }
    j = s_reopen(j, &cfg, model, ++reopens);
    cr_expect_gt(s_compactions, 3, "%llu compactions",
                 (unsigned long long)s_compactions);
    cr_expect_gt(s_rotations, 3, "%llu rotations",
                 (unsigned long long)s_rotations);
    cr_expect_gt(reopens, 5);
    /* compacting the replayed state gives the same state again */
    cr_assert_eq(dp_journal_compact(j, dp_jstate_dump, model, 0), 0);
    j = s_reopen(j, &cfg, model, ++reopens);
    dp_journal_close(&j);
    dp_jstate_destroy(&model);
}
