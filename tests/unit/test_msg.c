/*
 * test_msg.c - common/dp_msg.c: envelopes [version, cmd, body], jobs and
 * results written and read back, dp_res_to_result, malformed input.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dp_msg.h"

typedef struct {
    char *p;
    size_t n;
} t_bytes_t;

static t_bytes_t s_take(dp_wr_t *w)
{
    t_bytes_t b;
    int rc = dp_wr_take(w, &b.p, &b.n);
    cr_assert_eq(rc, 0, "dp_wr_take: %d", rc);
    return b;
}

/* s_open: dp_msg_open over an exact-size copy (ASAN sees overreads);
 * the copy is leaked into *keep for the body reader to borrow. */
static int s_open(const void *p, size_t n, const dp_limits_t *lim, int *cmd,
                  dp_rd_t *body, void **keep)
{
    void *c = malloc(n ? n : 1);
    cr_assert(c);
    if (n)
        memcpy(c, p, n);
    int rc = dp_msg_open(c, n, lim, cmd, body);
    if (keep)
        *keep = c;
    else
        free(c);
    return rc;
}

/* s_env: an envelope [version, cmd, body] with raw body bytes. */
static t_bytes_t s_env(uint64_t version, uint64_t cmd, const void *body,
                       size_t blen)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_wr_array(&w, 3);
    dp_wr_uint(&w, version);
    dp_wr_uint(&w, cmd);
    dp_wr_raw(&w, body, blen);
    return s_take(&w);
}

static const uint8_t s_empty_body[] = {0x90};

/* ---- envelopes ---- */

Test(envelope, accepts_every_command)
{
    dp_limits_t lim = dp_limits_default();
    for (int c = 1; c < DP_CMD_MAX_; c++) {
        dp_wr_t w;
        dp_wr_init(&w);
        dp_msg_empty(&w, c);
        t_bytes_t b = s_take(&w);
        int cmd = -1;
        dp_rd_t body;
        void *keep;
        int rc = s_open(b.p, b.n, &lim, &cmd, &body, &keep);
        cr_assert_eq(rc, 0, "cmd %d: rc %d", c, rc);
        cr_assert_eq(cmd, c);
        uint32_t n;
        cr_assert_eq(dp_rd_array(&body, &n), 0);
        cr_assert_eq(n, 0);
        cr_assert_eq(dp_rd_left(&body), 0);
        free(keep);
        free(b.p);
    }
}

Test(envelope, error_message)
{
    dp_limits_t lim = dp_limits_default();
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_error(&w, DP_ERR_ARITY, "two arguments, please");
    t_bytes_t b = s_take(&w);
    int cmd;
    dp_rd_t body;
    void *keep;
    cr_assert_eq(s_open(b.p, b.n, &lim, &cmd, &body, &keep), 0);
    cr_assert_eq(cmd, DP_CMD_ERROR);
    uint32_t n;
    uint64_t code;
    const char *s;
    size_t len;
    cr_assert_eq(dp_rd_array(&body, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(dp_rd_uint(&body, &code), 0);
    cr_assert_eq(code, DP_ERR_ARITY);
    cr_assert_eq(dp_rd_str(&body, &s, &len), 0);
    cr_assert_eq(len, strlen("two arguments, please"));
    cr_assert_eq(memcmp(s, "two arguments, please", len), 0);
    free(keep);
    free(b.p);
}

Test(envelope, wrong_version)
{
    dp_limits_t lim = dp_limits_default();
    const uint64_t bad[] = {0, 2, 255, UINT64_MAX};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        t_bytes_t b = s_env(bad[k], DP_CMD_HEARTBEAT, s_empty_body, 1);
        int cmd;
        dp_rd_t body;
        cr_assert_eq(s_open(b.p, b.n, &lim, &cmd, &body, NULL), DP_ERR_VERSION,
                     "version %llu", (unsigned long long)bad[k]);
        free(b.p);
    }
    /* a version that is not a uint at all */
    static const uint8_t neg[] = {0x93, 0xff, 0x0e, 0x90};
    int cmd;
    dp_rd_t body;
    cr_assert_eq(s_open(neg, sizeof neg, &lim, &cmd, &body, NULL),
                 DP_ERR_PROTOCOL);
}

Test(envelope, unknown_command)
{
    dp_limits_t lim = dp_limits_default();
    const uint64_t bad[] = {0, DP_CMD_MAX_, 99, 0x100000000ULL};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        t_bytes_t b = s_env(DP_PROTOCOL_VERSION, bad[k], s_empty_body, 1);
        int cmd;
        dp_rd_t body;
        cr_assert_eq(s_open(b.p, b.n, &lim, &cmd, &body, NULL),
                     DP_ERR_UNKNOWN_CMD, "cmd %llu",
                     (unsigned long long)bad[k]);
        free(b.p);
    }
}

Test(envelope, trailing_bytes_and_bad_shapes)
{
    dp_limits_t lim = dp_limits_default();
    int cmd;
    dp_rd_t body;
    /* [1, 14, []] then one more byte */
    static const uint8_t trail[] = {0x93, 0x01, 0x0e, 0x90, 0xc0};
    cr_assert_eq(s_open(trail, sizeof trail, &lim, &cmd, &body, NULL),
                 DP_ERR_PROTOCOL);
    cr_assert_eq(s_open(trail, sizeof trail - 1, &lim, &cmd, &body, NULL), 0);
    /* a fourth element after the body */
    static const uint8_t four[] = {0x94, 0x01, 0x0e, 0x90, 0x90};
    cr_assert_eq(s_open(four, sizeof four, &lim, &cmd, &body, NULL),
                 DP_ERR_PROTOCOL);
    /* no body */
    static const uint8_t two[] = {0x92, 0x01, 0x0e};
    cr_assert_eq(s_open(two, sizeof two, &lim, &cmd, &body, NULL),
                 DP_ERR_PROTOCOL);
    /* not an array: a map, a uint, a str, nothing */
    static const uint8_t map[] = {0x83, 0x01, 0x01, 0x02, 0x0e, 0x03, 0x90};
    cr_assert_eq(s_open(map, sizeof map, &lim, &cmd, &body, NULL),
                 DP_ERR_PROTOCOL);
    static const uint8_t one[] = {0x01};
    cr_assert_eq(s_open(one, 1, &lim, &cmd, &body, NULL), DP_ERR_PROTOCOL);
    static const uint8_t str[] = {0xa3, 'a', 'b', 'c'};
    cr_assert_eq(s_open(str, sizeof str, &lim, &cmd, &body, NULL),
                 DP_ERR_PROTOCOL);
    cr_assert_eq(s_open("", 0, &lim, &cmd, &body, NULL), DP_ERR_PROTOCOL);
    /* the body itself malformed */
    static const uint8_t badbody[] = {0x93, 0x01, 0x0e, 0x92, 0x01, 0xc1};
    cr_assert_eq(s_open(badbody, sizeof badbody, &lim, &cmd, &body, NULL),
                 DP_ERR_PROTOCOL);
}

Test(envelope, truncated_at_every_offset)
{
    dp_limits_t lim = dp_limits_default();
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_error(&w, DP_ERR_TIMEOUT, "a message of some length");
    t_bytes_t b = s_take(&w);
    for (size_t n = 0; n < b.n; n++) {
        int cmd;
        dp_rd_t body;
        cr_assert_eq(s_open(b.p, n, &lim, &cmd, &body, NULL), DP_ERR_PROTOCOL,
                     "prefix %zu", n);
    }
    free(b.p);
}

Test(envelope, over_max_msg_bytes)
{
    dp_limits_t lim = dp_limits_default();
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_error(&w, DP_ERR_TIMEOUT, "0123456789012345678901234567890");
    t_bytes_t b = s_take(&w);
    lim.max_msg_bytes = b.n - 1;
    int cmd;
    dp_rd_t body;
    cr_assert_eq(s_open(b.p, b.n, &lim, &cmd, &body, NULL), DP_ERR_TOO_BIG);
    lim.max_msg_bytes = b.n;
    cr_assert_eq(s_open(b.p, b.n, &lim, &cmd, &body, NULL), 0);
    free(b.p);
}

Test(envelope, cmd_names)
{
    cr_assert_str_eq(dp_cmd_name(DP_CMD_HELLO), "HELLO");
    cr_assert_str_eq(dp_cmd_name(3), "SUBMIT");
    cr_assert_str_eq(dp_cmd_name(DP_CMD_STATUS_REPLY), "STATUS_REPLY");
    cr_assert_str_eq(dp_cmd_name(15), "SHUTDOWN");
    cr_assert_str_eq(dp_cmd_name(0), "?");
    cr_assert_str_eq(dp_cmd_name(DP_CMD_MAX_), "?");
    cr_assert_str_eq(dp_cmd_name(99), "?");
    cr_assert_str_eq(dp_cmd_name(-1), "?");
    for (int c = 1; c < DP_CMD_MAX_; c++)
        cr_assert_str_neq(dp_cmd_name(c), "?", "cmd %d", c);
}

/* ---- jobs ---- */

static dp_value_t s_args(void)
{
    dp_value_t a = dp_array(4);
    a.v.a.items[0] = dp_uint(42);
    a.v.a.items[1] = dp_str("x\0y");
    a.v.a.items[2] = dp_array(1);
    a.v.a.items[3] = dp_int(-5);
    return a;
}

static t_bytes_t s_one_job(uint64_t id, const char *type,
                           const dp_value_t *args, uint32_t tmo,
                           uint32_t retries)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_put_job(&w, id, type, args, tmo, retries);
    return s_take(&w);
}

Test(job, round_trip_in_submit)
{
    dp_limits_t lim = dp_limits_default();
    dp_value_t args = s_args();
    t_bytes_t j1 = s_one_job(0x700000002ULL, "factor", &args, 1500, 3);
    t_bytes_t j2 = s_one_job(UINT64_MAX, "echo", NULL, 0, UINT32_MAX);
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_SUBMIT);
    dp_wr_array(&w, 2);
    dp_wr_uint(&w, 77);
    dp_wr_array(&w, 2);
    dp_msg_put_job(&w, 0x700000002ULL, "factor", &args, 1500, 3);
    dp_msg_put_job(&w, UINT64_MAX, "echo", NULL, 0, UINT32_MAX);
    t_bytes_t b = s_take(&w);

    int cmd;
    dp_rd_t r;
    void *keep;
    cr_assert_eq(s_open(b.p, b.n, &lim, &cmd, &r, &keep), 0);
    cr_assert_eq(cmd, DP_CMD_SUBMIT);
    uint32_t n;
    uint64_t seq;
    cr_assert_eq(dp_rd_array(&r, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(dp_rd_uint(&r, &seq), 0);
    cr_assert_eq(seq, 77);
    cr_assert_eq(dp_rd_array(&r, &n), 0);
    cr_assert_eq(n, 2);

    dp_job_t job;
    cr_assert_eq(dp_msg_read_job(&r, &job), 0);
    cr_assert_eq(job.id, 0x700000002ULL);
    cr_assert_eq(job.type_len, 6);
    cr_assert_eq(memcmp(job.type, "factor", 6), 0);
    cr_assert_eq(job.nargs, 4);
    cr_assert_eq(job.timeout_ms, 1500);
    cr_assert_eq(job.retries, 3);
    cr_assert_eq(job.raw.len, j1.n);
    cr_assert_eq(memcmp(job.raw.ptr, j1.p, j1.n), 0);
    dp_rd_t ar;
    dp_rd_init(&ar, job.args.ptr, job.args.len, &lim);
    dp_value_t got;
    cr_assert_eq(dp_rd_value(&ar, &got), 0);
    cr_assert_eq(dp_rd_left(&ar), 0);
    cr_assert(dp_value_equal(&got, &args));
    dp_value_clear(&got);

    cr_assert_eq(dp_msg_read_job(&r, &job), 0);
    cr_assert_eq(job.id, UINT64_MAX);
    cr_assert(job.type_len == 4 && memcmp(job.type, "echo", 4) == 0);
    cr_assert_eq(job.nargs, 0);
    cr_assert_eq(job.args.len, 1);
    cr_assert_eq(job.timeout_ms, 0);
    cr_assert_eq(job.retries, UINT32_MAX);
    cr_assert_eq(job.raw.len, j2.n);
    cr_assert_eq(memcmp(job.raw.ptr, j2.p, j2.n), 0);
    cr_assert_eq(dp_rd_left(&r), 0);
    cr_assert_eq(dp_msg_read_job(&r, &job), DP_ERR_PROTOCOL);

    dp_value_clear(&args);
    free(keep);
    free(b.p);
    free(j1.p);
    free(j2.p);
}

/* s_bad_job: raw bytes of one job must be refused, the reader unmoved. */
static void s_bad_job(const uint8_t *p, size_t n, const char *what)
{
    dp_limits_t lim = dp_limits_default();
    uint8_t *c = malloc(n);
    memcpy(c, p, n);
    dp_rd_t r;
    dp_rd_init(&r, c, n, &lim);
    dp_job_t job;
    int rc = dp_msg_read_job(&r, &job);
    cr_assert(rc == DP_ERR_PROTOCOL || rc == DP_ERR_TOO_BIG, "%s: rc %d", what,
              rc);
    cr_assert_eq(dp_rd_left(&r), n, "%s: reader moved", what);
    free(c);
}

Test(job, malformed_rejected)
{
    /* [1, "echo", [], 0, 0] is good; each variant breaks one thing */
    static const uint8_t good[] = {0x95, 0x01, 0xa4, 'e',  'c',
                                   'h',  'o',  0x90, 0x00, 0x00};
    dp_limits_t lim = dp_limits_default();
    dp_rd_t r;
    dp_rd_init(&r, good, sizeof good, &lim);
    dp_job_t job;
    cr_assert_eq(dp_msg_read_job(&r, &job), 0);
    cr_assert_eq(job.raw.len, sizeof good);

    static const uint8_t four[] = {0x94, 0x01, 0xa4, 'e', 'c',
                                   'h',  'o',  0x90, 0x00};
    s_bad_job(four, sizeof four, "4 fields");
    static const uint8_t six[] = {0x96, 0x01, 0xa4, 'e',  'c', 'h',
                                  'o',  0x90, 0x00, 0x00, 0x00};
    s_bad_job(six, sizeof six, "6 fields");
    static const uint8_t idstr[] = {0x95, 0xa1, '1',  0xa4, 'e', 'c',
                                    'h',  'o',  0x90, 0x00, 0x00};
    s_bad_job(idstr, sizeof idstr, "id as string");
    static const uint8_t idneg[] = {0x95, 0xff, 0xa4, 'e',  'c',
                                    'h',  'o',  0x90, 0x00, 0x00};
    s_bad_job(idneg, sizeof idneg, "negative id");
    static const uint8_t typeint[] = {0x95, 0x01, 0x05, 0x90, 0x00, 0x00};
    s_bad_job(typeint, sizeof typeint, "type as int");
    static const uint8_t typebin[] = {0x95, 0x01, 0xc4, 0x01,
                                      'e',  0x90, 0x00, 0x00};
    s_bad_job(typebin, sizeof typebin, "type as bin");
    static const uint8_t argsmap[] = {0x95, 0x01, 0xa1, 'e', 0x80, 0x00, 0x00};
    s_bad_job(argsmap, sizeof argsmap, "args as map");
    static const uint8_t argsnil[] = {0x95, 0x01, 0xa1, 'e', 0xc0, 0x00, 0x00};
    s_bad_job(argsnil, sizeof argsnil, "args nil");
    static const uint8_t tmobig[] = {0x95, 0x01, 0xa1, 'e', 0x90, 0xcf, 0,   0,
                                     0,    1,    0,    0,   0,    0,    0x00};
    s_bad_job(tmobig, sizeof tmobig, "timeout over 32 bits");
    static const uint8_t retneg[] = {0x95, 0x01, 0xa1, 'e', 0x90, 0x00, 0xff};
    s_bad_job(retneg, sizeof retneg, "negative retries");
    static const uint8_t notarr[] = {0x85, 0x01};
    s_bad_job(notarr, sizeof notarr, "map");
    for (size_t n = 1; n < sizeof good; n++)
        s_bad_job(good, n, "truncated");
}

/* ---- results ---- */

static dp_value_t s_value(void)
{
    dp_value_t m = dp_dict(2);
    m.v.a.items[0] = dp_str("factors");
    m.v.a.items[1] = dp_array(2);
    m.v.a.items[1].v.a.items[0] = dp_uint(2);
    m.v.a.items[1].v.a.items[1] = dp_uint(UINT64_MAX);
    m.v.a.items[2] = dp_str("f");
    m.v.a.items[3] = dp_float(0.25);
    return m;
}

/* s_results_open: a reader over the body of the RESULTS message in w
 * (the reader keeps pointing at the limits, hence static). */
static void *s_results_open(dp_wr_t *w, dp_rd_t *r, uint32_t *n)
{
    t_bytes_t b = s_take(w);
    static dp_limits_t lim;
    lim = dp_limits_default();
    int cmd;
    void *keep;
    cr_assert_eq(s_open(b.p, b.n, &lim, &cmd, r, &keep), 0);
    cr_assert_eq(cmd, DP_CMD_RESULTS);
    cr_assert_eq(dp_rd_array(r, n), 0);
    free(b.p);
    return keep;
}

Test(result, ok_round_trip)
{
    dp_value_t v = s_value();
    dp_wr_t one;
    dp_wr_init(&one);
    dp_msg_put_result(&one, 0x300000009ULL, 0, &v, "ignored", "node-1", 4242,
                      987654321012ULL, 2);
    t_bytes_t enc = s_take(&one);
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_RESULTS);
    dp_wr_array(&w, 2);
    dp_msg_put_result(&w, 0x300000009ULL, 0, &v, "ignored", "node-1", 4242,
                      987654321012ULL, 2);
    dp_msg_put_result(&w, 5, 0, NULL, NULL, "", 0, 0, 0);
    dp_rd_t r;
    uint32_t n;
    void *keep = s_results_open(&w, &r, &n);
    cr_assert_eq(n, 2);

    dp_res_t res;
    cr_assert_eq(dp_msg_read_result(&r, &res), 0);
    cr_assert_eq(res.id, 0x300000009ULL);
    cr_assert_eq(res.code, 0);
    cr_assert(res.worker_len == 6 && memcmp(res.worker, "node-1", 6) == 0);
    cr_assert_eq(res.pid, 4242);
    cr_assert_eq(res.elapsed_us, 987654321012ULL);
    cr_assert_eq(res.attempt, 2);
    cr_assert_eq(res.raw.len, enc.n);
    cr_assert_eq(memcmp(res.raw.ptr, enc.p, enc.n), 0);

    dp_limits_t lim = dp_limits_default();
    dp_result_t *out = NULL;
    cr_assert_eq(dp_res_to_result(&res, &lim, &out), 0);
    cr_assert(out);
    cr_assert_eq(out->index, 0);
    cr_assert_eq(out->id, 0x300000009ULL);
    cr_assert_eq(out->error, 0);
    cr_assert_null(out->message);
    cr_assert(dp_value_equal(&out->value, &v));
    cr_assert_str_eq(out->worker, "node-1");
    cr_assert_eq(out->pid, 4242);
    cr_assert_eq(out->elapsed_us, 987654321012ULL);
    cr_assert_eq(out->attempts, 2);
    dp_result_free(&out);
    cr_assert_null(out);
    dp_result_free(&out);
    dp_result_free(NULL);

    /* value NULL travels as nil */
    cr_assert_eq(dp_msg_read_result(&r, &res), 0);
    cr_assert_eq(res.id, 5);
    cr_assert_eq(dp_res_to_result(&res, &lim, &out), 0);
    cr_assert_eq(out->value.type, DP_NIL);
    cr_assert_str_eq(out->worker, "");
    cr_assert_eq(out->pid, 0);
    cr_assert_eq(out->attempts, 0);
    dp_result_free(&out);
    cr_assert_eq(dp_rd_left(&r), 0);

    dp_value_clear(&v);
    free(enc.p);
    free(keep);
}

Test(result, error_round_trip)
{
    dp_value_t v = s_value();
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_RESULTS);
    dp_wr_array(&w, 2);
    /* the value is ignored when code != 0 */
    dp_msg_put_result(&w, 11, DP_ERR_TIMEOUT, &v, "took \"too\" long", "w2", 77,
                      5000000, 3);
    dp_msg_put_result(&w, 12, DP_ERR_CANCELLED, NULL, NULL, "w2", 78, 1, 1);
    dp_rd_t r;
    uint32_t n;
    void *keep = s_results_open(&w, &r, &n);
    dp_limits_t lim = dp_limits_default();

    dp_res_t res;
    cr_assert_eq(dp_msg_read_result(&r, &res), 0);
    cr_assert_eq(res.id, 11);
    cr_assert_eq(res.code, DP_ERR_TIMEOUT);
    cr_assert_eq(res.pid, 77);
    cr_assert_eq(res.elapsed_us, 5000000);
    cr_assert_eq(res.attempt, 3);
    dp_result_t *out = NULL;
    cr_assert_eq(dp_res_to_result(&res, &lim, &out), 0);
    cr_assert_eq(out->index, 0);
    cr_assert_eq(out->id, 11);
    cr_assert_eq(out->error, DP_ERR_TIMEOUT);
    cr_assert_str_eq(out->message, "took \"too\" long");
    cr_assert_eq(out->value.type, DP_NIL);
    cr_assert_str_eq(out->worker, "w2");
    cr_assert_eq(out->pid, 77);
    cr_assert_eq(out->elapsed_us, 5000000);
    cr_assert_eq(out->attempts, 3);
    dp_result_free(&out);

    /* message NULL: the code's standard text */
    cr_assert_eq(dp_msg_read_result(&r, &res), 0);
    cr_assert_eq(dp_res_to_result(&res, &lim, &out), 0);
    cr_assert_eq(out->error, DP_ERR_CANCELLED);
    cr_assert_str_eq(out->message, dp_strerror(DP_ERR_CANCELLED));
    dp_result_free(&out);

    dp_value_clear(&v);
    free(keep);
}

static void s_bad_result(const uint8_t *p, size_t n, const char *what)
{
    dp_limits_t lim = dp_limits_default();
    uint8_t *c = malloc(n);
    memcpy(c, p, n);
    dp_rd_t r;
    dp_rd_init(&r, c, n, &lim);
    dp_res_t res;
    int rc = dp_msg_read_result(&r, &res);
    cr_assert(rc == DP_ERR_PROTOCOL || rc == DP_ERR_TOO_BIG, "%s: rc %d", what,
              rc);
    cr_assert_eq(dp_rd_left(&r), n, "%s: reader moved", what);
    free(c);
}

Test(result, malformed_rejected)
{
    /* [1, 0, nil, "w", 2, 3, 1] is good */
    static const uint8_t good[] = {0x97, 0x01, 0x00, 0xc0, 0xa1,
                                   'w',  0x02, 0x03, 0x01};
    dp_limits_t lim = dp_limits_default();
    dp_rd_t r;
    dp_rd_init(&r, good, sizeof good, &lim);
    dp_res_t res;
    cr_assert_eq(dp_msg_read_result(&r, &res), 0);
    static const uint8_t six[] = {0x96, 0x01, 0x00, 0xc0,
                                  0xa1, 'w',  0x02, 0x03};
    s_bad_result(six, sizeof six, "6 fields");
    static const uint8_t errnil[] = {0x97, 0x01, 0x07, 0xc0, 0xa1,
                                     'w',  0x02, 0x03, 0x01};
    s_bad_result(errnil, sizeof errnil, "error without a message str");
    static const uint8_t wint[] = {0x97, 0x01, 0x00, 0xc0,
                                   0x05, 0x02, 0x03, 0x01};
    s_bad_result(wint, sizeof wint, "worker as int");
    static const uint8_t pidbig[] = {0x97, 0x01, 0x00, 0xc0, 0xa1, 'w',
                                     0xcf, 0,    0,    0,    1,    0,
                                     0,    0,    0,    0x03, 0x01};
    s_bad_result(pidbig, sizeof pidbig, "pid over 32 bits");
    static const uint8_t codeneg[] = {0x97, 0x01, 0xff, 0xa1, 'm',
                                      0xa1, 'w',  0x02, 0x03, 0x01};
    s_bad_result(codeneg, sizeof codeneg, "negative code");
    for (size_t n = 1; n < sizeof good; n++)
        s_bad_result(good, n, "truncated");
}

Test(result, to_result_rejects_bad_value)
{
    /* a hand-made dp_res_t whose value slice is garbage */
    dp_limits_t lim = dp_limits_default();
    static const uint8_t bad[] = {0x92, 0x01};
    dp_res_t res = {.id = 1,
                    .code = 0,
                    .value = {bad, sizeof bad},
                    .worker = "w",
                    .worker_len = 1};
    dp_result_t *out = NULL;
    cr_assert_eq(dp_res_to_result(&res, &lim, &out), DP_ERR_PROTOCOL);
    cr_assert_null(out);
    static const uint8_t notstr[] = {0x05};
    dp_res_t res2 = {.id = 1,
                     .code = DP_ERR_FAILED,
                     .value = {notstr, sizeof notstr},
                     .worker = "w",
                     .worker_len = 1};
    cr_assert_eq(dp_res_to_result(&res2, &lim, &out), DP_ERR_PROTOCOL);
    cr_assert_null(out);
}

/* A batch built in place: envelope, array32 count patched at the end, and
 * the results readable back in order. */
Test(msg, batch_built_in_place)
{
    dp_wr_t item, batch;
    dp_wr_init(&item);
    dp_wr_init(&batch);
    uint32_t n = 0;
    for (uint64_t id = 1; id <= 3; id++) {
        dp_value_t v = dp_uint(id * 10);
        dp_wr_reset(&item);
        dp_msg_put_result(&item, id, 0, &v, NULL, "w", 7, 5, 1);
        dp_msg_batch_add(&batch, &n, DP_CMD_RESULTS, item.buf.data,
                         item.buf.len);
    }
    dp_msg_batch_close(&batch, n);
    cr_assert_eq(n, 3);
    static const dp_limits_t lim = {1 << 20, 1000, 32};
    int cmd;
    dp_rd_t r;
    uint32_t count;
    cr_assert_eq(dp_msg_open(batch.buf.data, batch.buf.len, &lim, &cmd, &r), 0);
    cr_assert_eq(cmd, DP_CMD_RESULTS);
    cr_assert_eq(dp_rd_array(&r, &count), 0);
    cr_assert_eq(count, 3);
    for (uint64_t id = 1; id <= 3; id++) {
        dp_res_t res;
        cr_assert_eq(dp_msg_read_result(&r, &res), 0);
        cr_assert_eq(res.id, id);
    }
    cr_assert_eq(dp_msg_end(&r), 0);
    dp_wr_release(&item);
    dp_wr_release(&batch);
}

/* JOBS [chunksize, [[attempt, job]...]] round trip: the count is patched
 * in, each entry reads back with its attempt and its job's raw bytes. */
Test(msg, jobs_message_round_trip)
{
    dp_wr_t job, w;
    dp_wr_init(&job);
    dp_wr_init(&w);
    size_t at = dp_msg_jobs_begin(&w, 2);
    for (uint64_t id = 1; id <= 3; id++) {
        dp_value_t args = dp_array(1);
        args.v.a.items[0] = dp_uint(id);
        dp_wr_reset(&job);
        dp_msg_put_job(&job, id, "echo", &args, 0, 3);
        dp_msg_jobs_add(&w, (uint32_t)id + 10, job.buf.data, job.buf.len);
        dp_value_clear(&args);
    }
    dp_msg_jobs_close(&w, at, 3);
    static const dp_limits_t lim = {1 << 20, 1000, 32};
    int cmd;
    dp_rd_t r;
    uint32_t chunk, n;
    cr_assert_eq(dp_msg_open(w.buf.data, w.buf.len, &lim, &cmd, &r), 0);
    cr_assert_eq(cmd, DP_CMD_JOBS);
    cr_assert_eq(dp_msg_read_jobs(&r, &chunk, &n), 0);
    cr_assert_eq(chunk, 2);
    cr_assert_eq(n, 3);
    for (uint64_t id = 1; id <= 3; id++) {
        uint32_t attempt;
        dp_job_t j;
        cr_assert_eq(dp_msg_read_dispatch(&r, &attempt, &j), 0);
        cr_assert_eq(j.id, id);
        cr_assert_eq(attempt, id + 10);
        cr_assert_eq(j.nargs, 1);
    }
    cr_assert_eq(dp_msg_end(&r), 0);
    /* a chunksize of 0 is refused */
    dp_wr_reset(&w);
    at = dp_msg_jobs_begin(&w, 0);
    dp_msg_jobs_close(&w, at, 0);
    cr_assert_eq(dp_msg_open(w.buf.data, w.buf.len, &lim, &cmd, &r), 0);
    cr_assert_eq(dp_msg_read_jobs(&r, &chunk, &n), DP_ERR_PROTOCOL);
    dp_wr_release(&job);
    dp_wr_release(&w);
}

/* ---- typed messages: each writer's output reads back with its reader ---- */

/* s_typed: open w's message, check its command, leave the body in *r. */
static void *s_typed(dp_wr_t *w, int want, dp_rd_t *r)
{
    static const dp_limits_t lim = {1 << 20, 1000, 32, 10};
    t_bytes_t b = s_take(w);
    int cmd = 0;
    void *keep = NULL;
    cr_assert_eq(s_open(b.p, b.n, &lim, &cmd, r, &keep), 0);
    cr_assert_eq(cmd, want, "%s", dp_cmd_name(cmd));
    free(b.p);
    return keep;
}

Test(typed, hello_welcome_ready_credit)
{
    dp_wr_t w;
    dp_rd_t r;
    dp_wr_init(&w);
    dp_hello_t hin = {.name = "cli", .pid = 42};
    dp_msg_hello(&w, &hin);
    void *k = s_typed(&w, DP_CMD_HELLO, &r);
    dp_hello_t h;
    cr_assert_eq(dp_msg_read_hello(&r, &h), 0);
    cr_expect_eq(h.name_len, 3);
    cr_expect_eq(memcmp(h.name, "cli", 3), 0);
    cr_expect_eq(h.pid, 42);
    cr_expect(!h.has_session);
    free(k);

    dp_welcome_t in = {7, 1000, 1 << 20, 8, 2, 1, 1}, out;
    dp_msg_welcome(&w, &in);
    k = s_typed(&w, DP_CMD_WELCOME, &r);
    cr_assert_eq(dp_msg_read_welcome(&r, &out), 0);
    cr_expect_eq(memcmp(&in, &out, sizeof in), 0);
    free(k);

    const char *types[] = {"factor", "echo"};
    dp_msg_ready(&w, "wk", 9, 4, 1, types, 2);
    k = s_typed(&w, DP_CMD_READY, &r);
    dp_ready_t rd;
    cr_assert_eq(dp_msg_read_ready(&r, &rd), 0);
    cr_expect_eq(rd.cpu_slots, 4);
    cr_expect_eq(rd.io_slots, 1);
    cr_expect_eq(rd.ntypes, 2);
    free(k);

    uint64_t cpu, io;
    dp_msg_credit(&w, 0, 3);
    k = s_typed(&w, DP_CMD_CREDIT, &r);
    cr_assert_eq(dp_msg_read_credit(&r, &cpu, &io), 0);
    cr_expect_eq(cpu, 0);
    cr_expect_eq(io, 3);
    free(k);
    dp_wr_release(&w);
}

Test(typed, cancel_error_refusal_submit)
{
    dp_wr_t w;
    dp_rd_t r;
    dp_wr_init(&w);
    const uint64_t ids[] = {5, 1ULL << 40};
    dp_msg_cancel(&w, ids, 2);
    void *k = s_typed(&w, DP_CMD_CANCEL, &r);
    uint32_t n;
    uint64_t id;
    cr_assert_eq(dp_msg_read_cancel(&r, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(dp_msg_read_cancel_id(&r, &id), 0);
    cr_expect_eq(id, 5);
    cr_assert_eq(dp_msg_read_cancel_id(&r, &id), 0);
    cr_expect_eq(id, 1ULL << 40);
    free(k);

    dp_error_msg_t e;
    dp_msg_refusal(&w, DP_ERR_LIMIT, "full", 100, 3);
    k = s_typed(&w, DP_CMD_ERROR, &r);
    cr_assert_eq(dp_msg_read_error(&r, &e), 0);
    cr_expect(e.refusal);
    cr_expect_eq(e.code, DP_ERR_LIMIT);
    cr_expect_eq(e.seq, 100);
    cr_expect_eq(e.count, 3);
    free(k);
    dp_msg_error(&w, DP_ERR_UNKNOWN_PEER, "who?");
    k = s_typed(&w, DP_CMD_ERROR, &r);
    cr_assert_eq(dp_msg_read_error(&r, &e), 0);
    cr_expect(!e.refusal);
    cr_expect_eq(e.message_len, 4);
    free(k);

    /* SUBMIT: the peek reads the head only; the reader the whole shape */
    dp_msg_begin(&w, DP_CMD_SUBMIT);
    dp_wr_array(&w, 3);
    dp_wr_uint(&w, 77);
    dp_wr_array(&w, 1);
    dp_value_t args = dp_array(0);
    dp_msg_put_job(&w, 77, "echo", &args, 0, 3);
    dp_value_clear(&args);
    dp_wr_uint(&w, 1);
    k = s_typed(&w, DP_CMD_SUBMIT, &r);
    uint64_t seq = 0, chunk = 0;
    uint32_t njobs = 0;
    cr_assert_eq(dp_msg_peek_submit(&r, &seq, &njobs), 0);
    cr_expect_eq(seq, 77);
    cr_expect_eq(njobs, 1);
    dp_rd_t jobs;
    cr_assert_eq(dp_msg_read_submit(&r, &seq, &njobs, &chunk, &jobs), 0);
    cr_expect_eq(chunk, 1);
    dp_job_t j;
    cr_assert_eq(dp_msg_read_job(&jobs, &j), 0);
    cr_expect_eq(j.id, 77);
    free(k);
    dp_wr_release(&w);
}

/* STATUS_REPLY with worker_list: the counters, then one map per worker */
Test(typed, status_reply_workers)
{
    dp_wr_t w;
    dp_rd_t r;
    dp_wr_init(&w);
    const dp_stat_t rows[] = {{"workers", 2}, {"done", 9}};
    const dp_stat_worker_t ws[] = {{"w0", 11, 4, 16, 1, 7, 250},
                                   {"w1", 12, 2, 0, 0, 2, 0}};
    dp_msg_status_reply_workers(&w, rows, 2, ws, 2);
    void *k = s_typed(&w, DP_CMD_STATUS_REPLY, &r);
    dp_value_t v;
    cr_assert_eq(dp_rd_value(&r, &v), 0);
    cr_assert_eq(v.type, DP_MAP);
    cr_expect_eq(dp_dict_get(&v, "workers")->v.u, 2);
    cr_expect_eq(dp_dict_get(&v, "done")->v.u, 9);
    const dp_value_t *l = dp_dict_get(&v, "worker_list");
    cr_assert(l && l->type == DP_ARRAY && l->v.a.len == 2);
    const dp_value_t *w0 = &l->v.a.items[0];
    cr_assert_eq(w0->type, DP_MAP);
    cr_expect_str_eq(dp_dict_get(w0, "name")->v.s.ptr, "w0");
    const char *keys[] = {"pid",     "cpu_slots", "io_slots",
                          "running", "done",      "last_seen_ms"};
    const uint64_t want[] = {11, 4, 16, 1, 7, 250};
    for (size_t n = 0; n < sizeof want / sizeof want[0]; n++) {
        const dp_value_t *x = dp_dict_get(w0, keys[n]);
        cr_assert(x && x->type == DP_UINT, "%s", keys[n]);
        cr_expect_eq(x->v.u, want[n], "%s", keys[n]);
    }
    cr_expect_str_eq(dp_dict_get(&l->v.a.items[1], "name")->v.s.ptr, "w1");
    dp_value_clear(&v);
    free(k);

    dp_msg_status_reply_workers(&w, rows, 2, NULL, 0); /* none: [] */
    k = s_typed(&w, DP_CMD_STATUS_REPLY, &r);
    cr_assert_eq(dp_rd_value(&r, &v), 0);
    l = dp_dict_get(&v, "worker_list");
    cr_assert(l && l->type == DP_ARRAY && l->v.a.len == 0);
    dp_value_clear(&v);
    free(k);
    dp_wr_release(&w);
}

/* ---- the client's messages: HELLO with a session, WELCOME, SUBMIT,
 * ACCEPTED, ACK ---- */

/* s_bytes_of: w's message as bytes (w is left empty). */
static t_bytes_t s_bytes_of(dp_wr_t *w)
{
    return s_take(w);
}

/* s_body: open b (an exact-size copy kept in *keep), leave its body. */
static int s_body(const t_bytes_t *b, size_t n, int *cmd, dp_rd_t *r,
                  void **keep)
{
    static const dp_limits_t lim = {1 << 20, 1000, 32, 10};
    return s_open(b->p, n, &lim, cmd, r, keep);
}

Test(client_msgs, hello_with_session_round_trip)
{
    dp_wr_t w;
    dp_rd_t r;
    dp_wr_init(&w);
    dp_hello_t in = {
        .name = "map", .pid = 7, .has_session = true, .flags = DP_HELLO_ACKS};
    for (int k = 0; k < DP_SESSION_BYTES; k++)
        in.session[k] = (uint8_t)(0xf0 + k);
    dp_msg_hello(&w, &in);
    void *keep = s_typed(&w, DP_CMD_HELLO, &r);
    dp_hello_t out;
    cr_assert_eq(dp_msg_read_hello(&r, &out), 0);
    cr_expect(out.has_session);
    cr_expect_eq(out.flags, DP_HELLO_ACKS);
    cr_expect_eq(out.pid, 7);
    cr_expect_eq(memcmp(out.session, in.session, DP_SESSION_BYTES), 0);
    cr_expect_eq(dp_msg_end(&r), 0);
    free(keep);
    dp_wr_release(&w);
}

/* s_hello_body: HELLO with a hand-made body (to feed wrong shapes). */
static int s_read_hello_body(void (*fill)(dp_wr_t *w))
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_HELLO);
    fill(&w);
    t_bytes_t b = s_bytes_of(&w);
    int cmd;
    dp_rd_t r;
    void *keep = NULL;
    int rc = s_body(&b, b.n, &cmd, &r, &keep);
    dp_hello_t h;
    if (!rc)
        rc = dp_msg_read_hello(&r, &h);
    free(keep);
    free(b.p);
    return rc;
}

static void s_hello_short_session(dp_wr_t *w)
{
    dp_wr_array(w, 4);
    dp_wr_cstr(w, "x");
    dp_wr_uint(w, 1);
    dp_wr_bin(w, "abc", 3); /* not 16 bytes */
    dp_wr_uint(w, 1);
}

static void s_hello_flags_str(dp_wr_t *w)
{
    dp_wr_array(w, 4);
    dp_wr_cstr(w, "x");
    dp_wr_uint(w, 1);
    dp_wr_bin(w, "0123456789abcdef", 16);
    dp_wr_cstr(w, "acks");
}

static void s_hello_three(dp_wr_t *w)
{
    dp_wr_array(w, 3);
    dp_wr_cstr(w, "x");
    dp_wr_uint(w, 1);
    dp_wr_bin(w, "0123456789abcdef", 16);
}

static void s_hello_pid_str(dp_wr_t *w)
{
    dp_wr_array(w, 2);
    dp_wr_cstr(w, "x");
    dp_wr_cstr(w, "1");
}

Test(client_msgs, hello_wrong_types)
{
    cr_expect_eq(s_read_hello_body(s_hello_short_session), DP_ERR_PROTOCOL);
    cr_expect_eq(s_read_hello_body(s_hello_flags_str), DP_ERR_PROTOCOL);
    cr_expect_eq(s_read_hello_body(s_hello_three), DP_ERR_PROTOCOL);
    cr_expect_eq(s_read_hello_body(s_hello_pid_str), DP_ERR_PROTOCOL);
}

/* s_every_cut: each proper prefix of msg fails to open or to read. */
static void s_every_cut(dp_wr_t *w, int (*read)(dp_rd_t *r))
{
    t_bytes_t b = s_bytes_of(w);
    for (size_t n = 0; n < b.n; n++) {
        int cmd;
        dp_rd_t r;
        void *keep = NULL;
        int rc = s_body(&b, n, &cmd, &r, &keep);
        if (!rc)
            rc = read(&r);
        cr_expect_neq(rc, 0, "a cut at %zu of %zu bytes was read", n, b.n);
        free(keep);
    }
    free(b.p);
}

static int s_rd_hello(dp_rd_t *r)
{
    dp_hello_t h;
    int rc = dp_msg_read_hello(r, &h);
    return rc ? rc : dp_msg_end(r);
}

static int s_rd_welcome(dp_rd_t *r)
{
    dp_welcome_t m;
    int rc = dp_msg_read_welcome(r, &m);
    return rc ? rc : dp_msg_end(r);
}

static int s_rd_accepted(dp_rd_t *r)
{
    uint64_t seq, n;
    int rc = dp_msg_read_accepted(r, &seq, &n);
    return rc ? rc : dp_msg_end(r);
}

static int s_rd_ack(dp_rd_t *r)
{
    uint32_t n;
    uint64_t id;
    int rc = dp_msg_read_ack(r, &n);
    for (uint32_t k = 0; !rc && k < n; k++)
        rc = dp_msg_read_cancel_id(r, &id);
    return rc ? rc : dp_msg_end(r);
}

static int s_rd_submit(dp_rd_t *r)
{
    uint64_t seq, chunk;
    uint32_t n;
    dp_rd_t jobs;
    int rc = dp_msg_read_submit(r, &seq, &n, &chunk, &jobs);
    for (uint32_t k = 0; !rc && k < n; k++) {
        dp_job_t j;
        rc = dp_msg_read_job(&jobs, &j);
    }
    return rc; /* dp_msg_read_submit checked the body's end */
}

Test(client_msgs, truncated_at_every_offset)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_hello_t h = {.name = "cut", .pid = 3, .has_session = true, .flags = 3};
    dp_msg_hello(&w, &h);
    s_every_cut(&w, s_rd_hello);
    dp_welcome_t wm = {1ULL << 31, 1000, 1 << 20, 4, 2, 1, 0};
    dp_msg_welcome(&w, &wm);
    s_every_cut(&w, s_rd_welcome);
    dp_msg_accepted(&w, 1ULL << 33, 500);
    s_every_cut(&w, s_rd_accepted);
    const uint64_t ids[] = {1, 1ULL << 40, 77};
    dp_msg_ack(&w, ids, 3);
    s_every_cut(&w, s_rd_ack);
    dp_wr_t jobs;
    dp_wr_init(&jobs);
    dp_value_t args = dp_array(0);
    dp_msg_put_job(&jobs, 9, "echo", &args, 0, 3);
    dp_msg_put_job(&jobs, 10, "echo", &args, 100, 0);
    dp_value_clear(&args);
    dp_msg_submit(&w, 9, 2, jobs.buf.data, jobs.buf.len, 2);
    s_every_cut(&w, s_rd_submit);
    dp_wr_release(&jobs);
    dp_wr_release(&w);
}

Test(client_msgs, welcome_old_and_new)
{
    dp_wr_t w;
    dp_rd_t r;
    dp_wr_init(&w);
    /* a 5-field WELCOME (an older broker): resumed and journal are 0 */
    dp_msg_begin(&w, DP_CMD_WELCOME);
    dp_wr_array(&w, 5);
    for (int k = 1; k <= 5; k++)
        dp_wr_uint(&w, (uint64_t)k);
    void *keep = s_typed(&w, DP_CMD_WELCOME, &r);
    dp_welcome_t m;
    cr_assert_eq(dp_msg_read_welcome(&r, &m), 0);
    cr_expect_eq(m.peer_no, 1);
    cr_expect_eq(m.io_slots, 5);
    cr_expect_eq(m.resumed, 0);
    cr_expect_eq(m.journal, 0);
    free(keep);
    /* a wrong type in a field is refused */
    dp_msg_begin(&w, DP_CMD_WELCOME);
    dp_wr_array(&w, 7);
    for (int k = 1; k <= 5; k++)
        dp_wr_uint(&w, (uint64_t)k);
    dp_wr_cstr(&w, "yes");
    dp_wr_uint(&w, 1);
    keep = s_typed(&w, DP_CMD_WELCOME, &r);
    cr_expect_eq(dp_msg_read_welcome(&r, &m), DP_ERR_PROTOCOL);
    free(keep);
    dp_wr_release(&w);
}

Test(client_msgs, submit_accepted_ack_round_trip)
{
    dp_wr_t w, jobs;
    dp_rd_t r;
    dp_wr_init(&w);
    dp_wr_init(&jobs);
    dp_value_t args = dp_array(1);
    args.v.a.items[0] = dp_uint(97);
    const uint64_t seq = 5ULL << 32 | 1;
    for (uint64_t k = 0; k < 3; k++)
        dp_msg_put_job(&jobs, seq + k, "isprime", &args, 0, 3);
    dp_value_clear(&args);
    dp_msg_submit(&w, seq, 3, jobs.buf.data, jobs.buf.len, 2);
    void *keep = s_typed(&w, DP_CMD_SUBMIT, &r);
    uint64_t s = 0, chunk = 0;
    uint32_t n = 0;
    dp_rd_t jr;
    cr_assert_eq(dp_msg_peek_submit(&r, &s, &n), 0);
    cr_expect_eq(s, seq);
    cr_expect_eq(n, 3);
    cr_assert_eq(dp_msg_read_submit(&r, &s, &n, &chunk, &jr), 0);
    cr_expect_eq(chunk, 2);
    for (uint64_t k = 0; k < 3; k++) {
        dp_job_t j;
        cr_assert_eq(dp_msg_read_job(&jr, &j), 0);
        cr_expect_eq(j.id, seq + k);
        cr_expect_eq(j.type_len, 7);
        cr_expect_eq(j.nargs, 1);
    }
    free(keep);
    dp_wr_release(&jobs);

    dp_msg_accepted(&w, seq, 3);
    keep = s_typed(&w, DP_CMD_ACCEPTED, &r);
    uint64_t a = 0;
    cr_assert_eq(dp_msg_read_accepted(&r, &s, &a), 0);
    cr_expect_eq(s, seq);
    cr_expect_eq(a, 3);
    free(keep);

    const uint64_t ids[] = {seq, seq + 2};
    dp_msg_ack(&w, ids, 2);
    keep = s_typed(&w, DP_CMD_ACK, &r);
    cr_assert_eq(dp_msg_read_ack(&r, &n), 0);
    cr_assert_eq(n, 2);
    uint64_t id = 0;
    cr_assert_eq(dp_msg_read_cancel_id(&r, &id), 0);
    cr_expect_eq(id, seq);
    cr_assert_eq(dp_msg_read_cancel_id(&r, &id), 0);
    cr_expect_eq(id, seq + 2);
    free(keep);

    /* wrong types: ACCEPTED of a string, ACK of a string id */
    dp_msg_begin(&w, DP_CMD_ACCEPTED);
    dp_wr_array(&w, 2);
    dp_wr_cstr(&w, "1");
    dp_wr_uint(&w, 1);
    keep = s_typed(&w, DP_CMD_ACCEPTED, &r);
    cr_expect_eq(dp_msg_read_accepted(&r, &s, &a), DP_ERR_PROTOCOL);
    free(keep);
    dp_msg_begin(&w, DP_CMD_ACK);
    dp_wr_array(&w, 1);
    dp_wr_cstr(&w, "1");
    keep = s_typed(&w, DP_CMD_ACK, &r);
    cr_assert_eq(dp_msg_read_ack(&r, &n), 0);
    cr_expect_eq(dp_msg_read_cancel_id(&r, &id), DP_ERR_PROTOCOL);
    free(keep);
    dp_wr_release(&w);
}

Test(client_msgs, ack_over_its_bound)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_ACK);
    dp_wr_array(&w, DP_ACK_MAX_IDS + 1);
    for (uint32_t k = 0; k <= DP_ACK_MAX_IDS; k++)
        dp_wr_uint(&w, k);
    t_bytes_t b = s_bytes_of(&w);
    dp_limits_t lim = dp_limits_default();
    int cmd;
    dp_rd_t r;
    void *keep = NULL;
    cr_assert_eq(s_open(b.p, b.n, &lim, &cmd, &r, &keep), 0);
    uint32_t n;
    cr_expect_eq(dp_msg_read_ack(&r, &n), DP_ERR_TOO_BIG);
    free(keep);
    free(b.p);
    dp_wr_release(&w);
}

/* ---- detached batches: BATCHES, BATCH_LIST, ATTACH, FORGET,
 * CANCEL_BATCH ---- */

Test(typed, batch_messages)
{
    dp_wr_t w;
    dp_rd_t r;
    dp_wr_init(&w);
    bool one = true;
    uint64_t id = 9;
    dp_msg_batches(&w, false, 0);
    void *keep = s_typed(&w, DP_CMD_BATCHES, &r);
    cr_assert_eq(dp_msg_read_batches(&r, &one, &id), 0);
    cr_expect(!one);
    free(keep);
    dp_msg_batches(&w, true, 42);
    keep = s_typed(&w, DP_CMD_BATCHES, &r);
    cr_assert_eq(dp_msg_read_batches(&r, &one, &id), 0);
    cr_expect(one);
    cr_expect_eq(id, 42);
    free(keep);
    const int cmds[] = {DP_CMD_ATTACH, DP_CMD_FORGET, DP_CMD_CANCEL_BATCH};
    for (int k = 0; k < 3; k++) {
        dp_msg_batch_cmd(&w, cmds[k], 7 + (uint64_t)k);
        keep = s_typed(&w, cmds[k], &r);
        cr_assert_eq(dp_msg_read_batch_cmd(&r, &id), 0);
        cr_expect_eq(id, 7 + (uint64_t)k);
        free(keep);
    }
    dp_batch_row_t rows[2] = {
        {.id = 3, .name = "dpool", .created_ms = 1700000000000ull,
         .ttl_ms = 86400000, .total = 10, .queued = 1, .running = 2,
         .done = 6, .failed = 1, .readers = 2},
        {.id = 4, .name = "x"},
    };
    dp_msg_batch_list(&w, rows, 2);
    keep = s_typed(&w, DP_CMD_BATCH_LIST, &r);
    uint32_t n = 0;
    cr_assert_eq(dp_msg_read_batch_list(&r, &n), 0);
    cr_assert_eq(n, 2);
    dp_batch_row_t x;
    cr_assert_eq(dp_msg_read_batch_row(&r, &x), 0);
    cr_expect_eq(x.id, 3);
    cr_expect_eq(x.name_len, 5);
    cr_expect(memcmp(x.name, "dpool", 5) == 0);
    cr_expect_eq(x.created_ms, 1700000000000ull);
    cr_expect_eq(x.ttl_ms, 86400000);
    cr_expect_eq(x.total, 10);
    cr_expect_eq(x.queued, 1);
    cr_expect_eq(x.running, 2);
    cr_expect_eq(x.done, 6);
    cr_expect_eq(x.failed, 1);
    cr_expect_eq(x.readers, 2);
    cr_assert_eq(dp_msg_read_batch_row(&r, &x), 0);
    cr_expect_eq(x.id, 4);
    cr_assert_eq(dp_msg_end(&r), 0);
    free(keep);
    /* malformed: BATCHES of two ids, ATTACH of a string, a short row */
    dp_msg_begin(&w, DP_CMD_BATCHES);
    dp_wr_array(&w, 2);
    dp_wr_uint(&w, 1);
    dp_wr_uint(&w, 2);
    keep = s_typed(&w, DP_CMD_BATCHES, &r);
    cr_expect_eq(dp_msg_read_batches(&r, &one, &id), DP_ERR_PROTOCOL);
    free(keep);
    dp_msg_begin(&w, DP_CMD_ATTACH);
    dp_wr_array(&w, 1);
    dp_wr_cstr(&w, "7");
    keep = s_typed(&w, DP_CMD_ATTACH, &r);
    cr_expect_neq(dp_msg_read_batch_cmd(&r, &id), 0);
    free(keep);
    dp_msg_begin(&w, DP_CMD_BATCH_LIST);
    dp_wr_array(&w, 1);
    dp_wr_array(&w, 3);
    dp_wr_uint(&w, 1);
    dp_wr_cstr(&w, "a");
    dp_wr_uint(&w, 2);
    keep = s_typed(&w, DP_CMD_BATCH_LIST, &r);
    cr_assert_eq(dp_msg_read_batch_list(&r, &n), 0);
    cr_expect_eq(dp_msg_read_batch_row(&r, &x), DP_ERR_PROTOCOL);
    free(keep);
    dp_wr_release(&w);
}
