/*
 * test_local.c - the local pool (dp_pool_open(NULL, ...): the client's
 * I/O thread drives dpool-worker-cpu / dpool-worker-io children over
 * socketpairs, no broker, no dpool-worker) through the C API, in this
 * process. The library runs inside the test, so an ASan build checks the
 * local pool's own code: the agent's children-and-jobs code, the broker's
 * part it does itself (checks, retries, requeues), cancel, time limits,
 * close. The children are found in /proc as children of getpid() whose
 * command line has `--child cpu` (tests/support/dp_e2e.h).
 *
 * Every test stops what it started: pools closed, no child left (checked
 * with waitid(WNOWAIT), which sees zombies too, without reaping them), the
 * default SIGPIPE disposition kept (a write to a dead child must not kill
 * the test process).
 *
 * random_faults is seeded (printed on stderr); DP_LOCAL_SEED=N replays a
 * seed (the timing of the kills is not replayed, the rounds' shapes are).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include "dp_e2e.h"
#include "dp_httpd.h"
#include "dpool.h"

#define S_KIDS_MAX 64   /* children looked at in /proc */
#define S_UP_MS 10000   /* children up, a job started (ASan: slow) */
#define S_GONE_MS 3000  /* no child left after dp_pool_close */
#define S_POLL_MS 10    /* polling step of the waits here */
#define S_WAIT_S 30.0   /* one result, at most */
#define S_ECHO_ARITY 64 /* echo takes 0 to 64 arguments */
#define S_QUICK_MS 2000 /* "quickly" */

/* ---- helpers ---- */

static uint64_t s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void s_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void s_setup(void)
{
    signal(SIGPIPE, SIG_DFL);
}

/* s_sigpipe_kept: SIGPIPE still has its default disposition (the library
 * must not change it, and no write to a dead child raised it: we are
 * still here). */
static void s_sigpipe_kept(void)
{
    struct sigaction sa;
    cr_assert_eq(sigaction(SIGPIPE, NULL, &sa), 0);
    cr_assert(sa.sa_handler == SIG_DFL, "SIGPIPE disposition changed");
}

TestSuite(local, .init = s_setup, .timeout = 60);

static dp_pool_t *s_open(int processes)
{
    dp_pool_opts_t o = {.processes = processes, .bin_dir = DP_BIN_DIR};
    dp_pool_t *p = NULL;
    int rc = dp_pool_open(NULL, &o, &p);
    cr_assert_eq(rc, 0, "dp_pool_open: %s", dp_errname(rc));
    cr_assert_not_null(p);
    cr_assert_null(dp_pool_endpoint(p), "a local pool has no endpoint");
    return p;
}

/* s_cpu_kids: the pool's cpu children (alive, not zombies). */
static int s_cpu_kids(pid_t *out, int max)
{
    return dp_e2e_children(getpid(), "cpu", out, max);
}

/* s_no_child_left: within timeout_ms this process has no child at all,
 * running or zombie (waitid with WNOWAIT reaps nothing: a zombie the
 * library forgot stays visible). */
static bool s_no_child_left(int timeout_ms)
{
    uint64_t end = s_ms() + (uint64_t)timeout_ms;
    for (;;) {
        siginfo_t si = {0};
        int rc = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
        if (rc < 0 && errno == ECHILD)
            return true;
        if (s_ms() >= end)
            return false;
        s_nap_ms(S_POLL_MS);
    }
}

static void s_assert_no_child_left(void)
{
    bool gone = s_no_child_left(S_GONE_MS);
    pid_t kids[S_KIDS_MAX];
    int n = gone ? 0 : dp_e2e_children(getpid(), NULL, kids, S_KIDS_MAX);
    cr_assert(gone, "children left after dp_pool_close: %d alive%s", n,
              n ? "" : " (zombies: not reaped)");
}

typedef struct {
    pid_t pid;
} s_sleeper_t;

/* s_find_sleeper: a cpu child inside nanosleep (running a sleep job). */
static bool s_find_sleeper(void *arg)
{
    s_sleeper_t *s = arg;
    pid_t kids[S_KIDS_MAX];
    int n = s_cpu_kids(kids, S_KIDS_MAX);
    for (int k = 0; k < n && k < S_KIDS_MAX; k++) {
        if (dp_e2e_in_sleep(kids[k])) {
            s->pid = kids[k];
            return true;
        }
    }
    return false;
}

/* s_sleeping_kid: wait for a cpu child running a sleep job. */
static pid_t s_sleeping_kid(void)
{
    s_sleeper_t s = {0};
    cr_assert(dp_e2e_wait_until(s_find_sleeper, &s, S_UP_MS),
              "no cpu child ever ran the sleep job");
    return s.pid;
}

typedef struct {
    int want;
    int n;
} s_count_t;

static bool s_count_sleepers(void *arg)
{
    s_count_t *c = arg;
    pid_t kids[S_KIDS_MAX];
    int n = s_cpu_kids(kids, S_KIDS_MAX);
    c->n = 0;
    for (int k = 0; k < n && k < S_KIDS_MAX; k++)
        c->n += dp_e2e_in_sleep(kids[k]);
    return c->n >= c->want;
}

static bool s_has_kids(void *arg)
{
    s_count_t *c = arg;
    pid_t kids[S_KIDS_MAX];
    c->n = s_cpu_kids(kids, S_KIDS_MAX);
    return c->n == c->want;
}

/* s_stat: a counter of a dp_pool_status map, -1 when absent. */
static long long s_stat(const dp_value_t *st, const char *key)
{
    const dp_value_t *v = dp_dict_get(st, key);
    if (!v)
        return -1;
    if (v->type == DP_UINT)
        return (long long)v->v.u;
    if (v->type == DP_INT)
        return v->v.i;
    return -1;
}

/* s_args: argument arrays: one value each (taken). */
static dp_value_t s_arg1(dp_value_t v)
{
    dp_value_t a = dp_array(1);
    a.v.a.items[0] = v;
    return a;
}

static dp_value_t s_argn(size_t n, uint64_t base)
{
    dp_value_t a = dp_array(n);
    for (size_t k = 0; k < n; k++)
        a.v.a.items[k] = dp_uint(base + k);
    return a;
}

static void s_free_argv(dp_value_t *argv, size_t n)
{
    for (size_t k = 0; k < n; k++)
        dp_value_clear(&argv[k]);
    free(argv);
}

/* s_echo_argv: n echo inputs, each [value]: strings and numbers. */
static dp_value_t *s_echo_argv(size_t n)
{
    dp_value_t *argv = calloc(n, sizeof *argv);
    cr_assert_not_null(argv);
    for (size_t k = 0; k < n; k++) {
        char buf[32];
        snprintf(buf, sizeof buf, "in-%zu", k);
        argv[k] = s_arg1(k % 2 ? dp_uint(k * 7919u) : dp_str(buf));
    }
    return argv;
}

/* s_run_echo: a map of n echo jobs (opts may be NULL) that must all come
 * back ok, equal to their input, in order; returns how long it took. */
static uint64_t s_run_echo(dp_pool_t *p, size_t n, const dp_map_opts_t *o)
{
    dp_value_t *argv = s_echo_argv(n);
    uint64_t t0 = s_ms();
    dp_map_t *m = NULL;
    cr_assert_eq(dp_map_array(p, "echo", argv, n, o, &m), 0);
    size_t k = 0;
    for (;; k++) {
        dp_result_t *r = NULL;
        int rc = dp_map_next_wait(m, &r, S_WAIT_S);
        if (rc == DP_ERR_EOF)
            break;
        cr_assert_eq(rc, 0, "dp_map_next: %s", dp_errname(rc));
        cr_assert_eq(r->index, k);
        cr_assert_eq(r->error, 0, "echo %zu: %s (%s)", k, dp_errname(r->error),
                     r->message);
        cr_assert(dp_value_equal(&r->value, &argv[k].v.a.items[0]),
                  "echo %zu came back different", k);
        dp_result_free(&r);
    }
    cr_assert_eq(k, n, "%zu results for %zu inputs", k, n);
    dp_map_destroy(&m);
    s_free_argv(argv, n);
    return s_ms() - t0;
}

/* s_future: submit one job and wait for its result (the future is
 * returned: its result is borrowed from it). */
static dp_future_t *s_future(dp_pool_t *p, const char *type,
                             const dp_value_t *args, size_t nargs,
                             const dp_job_opts_t *jo, double wait_s)
{
    dp_future_t *f = NULL;
    int rc = dp_submit(p, type, args, nargs, jo, &f);
    cr_assert_eq(rc, 0, "dp_submit %s: %s", type, dp_errname(rc));
    rc = dp_future_wait(f, wait_s);
    cr_assert_eq(rc, 0, "no result for %s within %.1f s: %s", type, wait_s,
                 dp_errname(rc));
    cr_assert_not_null(dp_future_result(f));
    return f;
}

/* ---- 1. a map in order, status ---- */

#define S_MAP_N 2000

Test(local, map_in_order_and_status)
{
    dp_pool_t *p = s_open(2);
    cr_assert_eq(dp_pool_slots(p), 2);
    dp_value_t *argv = s_echo_argv(S_MAP_N);
    dp_map_t *m = NULL;
    cr_assert_eq(dp_map_array(p, "echo", argv, S_MAP_N, NULL, &m), 0);
    bool *seen = calloc(S_MAP_N, sizeof *seen);
    pid_t pids[4];
    int npids = 0;
    size_t k = 0;
    for (;; k++) {
        dp_result_t *r = NULL;
        int rc = dp_map_next_wait(m, &r, S_WAIT_S);
        if (rc == DP_ERR_EOF)
            break;
        cr_assert_eq(rc, 0, "dp_map_next: %s", dp_errname(rc));
        cr_assert_lt(k, (size_t)S_MAP_N, "more results than inputs");
        cr_assert_eq(r->index, k, "result %zu has index %zu", k, r->index);
        cr_assert(!seen[r->index], "index %zu twice", r->index);
        seen[r->index] = true;
        cr_assert_eq(r->error, 0, "echo %zu: %s (%s)", k, dp_errname(r->error),
                     r->message);
        cr_assert(dp_value_equal(&r->value, &argv[k].v.a.items[0]),
                  "echo %zu came back different", k);
        cr_assert_eq(r->attempts, 1u);
        bool known = false;
        for (int i = 0; i < npids; i++)
            known |= pids[i] == r->pid;
        if (!known) {
            cr_assert_lt(npids, 2, "a third child ran jobs (pid %d)", r->pid);
            pids[npids++] = r->pid;
        }
        dp_result_free(&r);
    }
    cr_assert_eq(k, (size_t)S_MAP_N);
    size_t sub, done, failed;
    dp_map_stats(m, &sub, &done, &failed);
    cr_assert_eq(sub, (size_t)S_MAP_N);
    cr_assert_eq(done, (size_t)S_MAP_N);
    cr_assert_eq(failed, 0u);
    dp_map_destroy(&m);
    /* the results came from our own children: no broker, no agent */
    pid_t kids[S_KIDS_MAX];
    int nk = s_cpu_kids(kids, S_KIDS_MAX);
    cr_assert_eq(nk, 2, "%d cpu children, want 2", nk);
    for (int i = 0; i < npids; i++)
        cr_assert(pids[i] == kids[0] || pids[i] == kids[1],
                  "pid %d is not a cpu child of ours", pids[i]);
    dp_value_t st = dp_nil();
    cr_assert_eq(dp_pool_status(p, &st), 0);
    cr_assert_eq(st.type, DP_MAP);
    cr_assert_eq(s_stat(&st, "cpu_slots"), 2);
    cr_assert_eq(s_stat(&st, "workers"), 1);
    cr_assert_eq(s_stat(&st, "queued"), 0);
    cr_assert_eq(s_stat(&st, "running"), 0);
    dp_value_clear(&st);
    cr_assert_eq(dp_pool_slots(p), 2);
    free(seen);
    s_free_argv(argv, S_MAP_N);
    dp_pool_close(&p);
    cr_assert_null(p);
    dp_pool_close(&p); /* idempotent */
    s_assert_no_child_left();
    s_sigpipe_kept();
}

/* ---- 2. a child killed mid-job ---- */

#define S_SLEEP_MS 3000

/* s_kill_sleeper: submit `sleep 3000` with retries, kill -9 the child
 * running it, wait for the result. *victim: the killed child. */
static dp_future_t *s_kill_sleeper(dp_pool_t *p, int retries, pid_t *victim)
{
    dp_value_t ms = dp_uint(S_SLEEP_MS);
    dp_job_opts_t jo = {.timeout = 0, .retries = retries};
    dp_future_t *f = NULL;
    cr_assert_eq(dp_submit(p, "sleep", &ms, 1, &jo, &f), 0);
    *victim = s_sleeping_kid();
    cr_assert_eq(kill(*victim, SIGKILL), 0);
    int rc = dp_future_wait(f, S_WAIT_S);
    cr_assert_eq(rc, 0, "no result after the kill: %s", dp_errname(rc));
    cr_assert_not_null(dp_future_result(f));
    return f;
}

Test(local, child_killed_mid_job_is_retried)
{
    dp_pool_t *p = s_open(2);
    pid_t victim;
    dp_future_t *f = s_kill_sleeper(p, 1, &victim);
    const dp_result_t *r = dp_future_result(f);
    cr_assert_eq(r->error, 0, "retries 1: %s (%s)", dp_errname(r->error),
                 r->message);
    cr_assert_eq(r->attempts, 2u, "attempts %u, want 2", r->attempts);
    cr_assert_neq(r->pid, victim, "the result names the killed child");
    cr_assert_gt(r->pid, 0);
    cr_assert_eq(r->value.type, DP_UINT);
    cr_assert_eq(r->value.v.u, (uint64_t)S_SLEEP_MS);
    dp_future_destroy(&f);
    cr_assert(!dp_e2e_alive(victim), "the killed child is alive");

    f = s_kill_sleeper(p, 0, &victim);
    r = dp_future_result(f);
    cr_assert_eq(r->error, DP_ERR_WORKER_LOST, "retries 0: %s (%s)",
                 dp_errname(r->error), r->message ? r->message : "");
    cr_assert_not_null(r->message);
    cr_assert(strstr(r->message, "signal 9"), "message: %s", r->message);
    cr_assert(strstr(r->message, "worker lost after 1 attempt"), "message: %s",
              r->message);
    char pid[32];
    snprintf(pid, sizeof pid, "child %d ", (int)victim);
    cr_assert(strstr(r->message, pid), "message does not name %d: %s",
              (int)victim, r->message);
    cr_assert_eq(r->attempts, 1u);
    dp_future_destroy(&f);

    /* the pool still runs a job, on a live child */
    dp_value_t a = dp_str("after");
    f = s_future(p, "echo", &a, 1, NULL, S_WAIT_S);
    r = dp_future_result(f);
    cr_assert_eq(r->error, 0, "%s", r->message ? r->message : "");
    cr_assert(dp_value_equal(&r->value, &a));
    cr_assert_neq(r->pid, victim);
    dp_future_destroy(&f);
    dp_value_clear(&a);
    s_count_t c = {2, 0};
    cr_assert(dp_e2e_wait_until(s_has_kids, &c, S_UP_MS),
              "the pool is not back to 2 cpu children (%d)", c.n);
    dp_pool_close(&p);
    s_assert_no_child_left();
    s_sigpipe_kept();
}

/* ---- 3. bad jobs answered as a broker would ---- */

#define S_BAD_N 40
#define S_BAD_AT 13

Test(local, bad_jobs_answered_like_a_broker)
{
    dp_pool_t *p = s_open(2);
    /* echo: input S_BAD_AT has 65 arguments */
    dp_value_t *echo = s_echo_argv(S_BAD_N);
    dp_value_clear(&echo[S_BAD_AT]);
    echo[S_BAD_AT] = s_argn(S_ECHO_ARITY + 1, 0);
    /* sleep: input 4 has two arguments, input 7 none */
    enum { NS = 10 };
    dp_value_t *sl = calloc(NS, sizeof *sl);
    for (size_t k = 0; k < NS; k++)
        sl[k] = s_arg1(dp_uint(k));
    dp_value_clear(&sl[4]);
    sl[4] = s_argn(2, 1);
    dp_value_clear(&sl[7]);
    sl[7] = dp_array(0);
    /* an unknown type */
    dp_value_t unk[3] = {s_arg1(dp_uint(1)), s_arg1(dp_uint(2)), dp_array(0)};
    /* the three maps at once, on one pool; drained one after the other */
    dp_map_opts_t o = {.job.retries = -1, .chunksize = 4};
    dp_map_t *me = NULL, *ms = NULL, *mu = NULL;
    cr_assert_eq(dp_map_array(p, "echo", echo, S_BAD_N, &o, &me), 0);
    cr_assert_eq(dp_map_array(p, "sleep", sl, NS, &o, &ms), 0);
    cr_assert_eq(dp_map_array(p, "nosuchtype", unk, 3, &o, &mu), 0);
    dp_result_t *r = NULL;
    for (size_t k = 0; k < 3; k++) {
        cr_assert_eq(dp_map_next_wait(mu, &r, S_WAIT_S), 0);
        cr_assert_eq(r->index, k);
        cr_assert_eq(r->error, DP_ERR_UNKNOWN_TYPE, "unknown %zu: %s", k,
                     dp_errname(r->error));
        const char *want = "unknown job type 'nosuchtype'";
        cr_assert(r->message && strstr(r->message, want), "message: %s",
                  r->message ? r->message : "(null)");
        cr_assert_eq(r->pid, 0, "an unknown type went to a child");
        dp_result_free(&r);
    }
    cr_assert_eq(dp_map_next_wait(mu, &r, S_WAIT_S), DP_ERR_EOF);
    for (size_t k = 0; k < NS; k++) {
        cr_assert_eq(dp_map_next_wait(ms, &r, S_WAIT_S), 0);
        cr_assert_eq(r->index, k);
        if (k == 4 || k == 7) {
            cr_assert_eq(r->error, DP_ERR_ARITY, "sleep %zu: %s", k,
                         dp_errname(r->error));
            char want[64];
            snprintf(want, sizeof want, "sleep takes 1 to 1 arguments, got %d",
                     k == 4 ? 2 : 0);
            cr_assert(r->message && strstr(r->message, want), "message: %s",
                      r->message ? r->message : "(null)");
            cr_assert_eq(r->pid, 0);
        } else {
            cr_assert_eq(r->error, 0, "sleep %zu: %s (%s)", k,
                         dp_errname(r->error), r->message);
            cr_assert_eq(r->value.type, DP_UINT);
            cr_assert_eq(r->value.v.u, (uint64_t)k);
        }
        dp_result_free(&r);
    }
    cr_assert_eq(dp_map_next_wait(ms, &r, S_WAIT_S), DP_ERR_EOF);
    for (size_t k = 0; k < S_BAD_N; k++) {
        cr_assert_eq(dp_map_next_wait(me, &r, S_WAIT_S), 0);
        cr_assert_eq(r->index, k);
        if (k == S_BAD_AT) {
            cr_assert_eq(r->error, DP_ERR_ARITY, "echo %zu: %s", k,
                         dp_errname(r->error));
            const char *want = "echo takes 0 to 64 arguments, got 65";
            cr_assert(r->message && strstr(r->message, want), "message: %s",
                      r->message ? r->message : "(null)");
        } else {
            cr_assert_eq(r->error, 0, "echo %zu: %s (%s)", k,
                         dp_errname(r->error), r->message);
            cr_assert(dp_value_equal(&r->value, &echo[k].v.a.items[0]));
        }
        dp_result_free(&r);
    }
    cr_assert_eq(dp_map_next_wait(me, &r, S_WAIT_S), DP_ERR_EOF);
    dp_map_destroy(&me);
    dp_map_destroy(&ms);
    dp_map_destroy(&mu);
    s_free_argv(echo, S_BAD_N);
    s_free_argv(sl, NS);
    for (size_t k = 0; k < 3; k++)
        dp_value_clear(&unk[k]);
    /* a future of an unknown type beside a good one */
    dp_value_t a = dp_uint(5);
    dp_future_t *bad = s_future(p, "nosuchtype", &a, 1, NULL, S_WAIT_S);
    dp_future_t *good = s_future(p, "echo", &a, 1, NULL, S_WAIT_S);
    cr_assert_eq(dp_future_result(bad)->error, DP_ERR_UNKNOWN_TYPE);
    cr_assert_eq(dp_future_result(good)->error, 0);
    cr_assert(dp_value_equal(&dp_future_result(good)->value, &a));
    dp_future_destroy(&bad);
    dp_future_destroy(&good);
    dp_pool_close(&p);
    s_assert_no_child_left();

    /* an io-only pool: a cpu job has nowhere to run: LIMIT, at once */
    p = s_open(-1);
    cr_assert_eq(dp_pool_slots(p), 0);
    uint64_t t0 = s_ms();
    dp_future_t *f = s_future(p, "echo", &a, 1, NULL, S_WAIT_S);
    uint64_t took = s_ms() - t0;
    const dp_result_t *fr = dp_future_result(f);
    cr_assert_eq(fr->error, DP_ERR_LIMIT, "cpu job on an io-only pool: %s",
                 dp_errname(fr->error));
    cr_assert(fr->message && strstr(fr->message, "no cpu slots"), "message: %s",
              fr->message ? fr->message : "(null)");
    cr_assert_lt(took, 1000u, "LIMIT took %llu ms", (unsigned long long)took);
    dp_future_destroy(&f);
    dp_value_t *argv = s_echo_argv(20);
    dp_map_t *m = NULL;
    t0 = s_ms();
    cr_assert_eq(dp_map_array(p, "echo", argv, 20, NULL, &m), 0);
    for (size_t k = 0; k < 20; k++) {
        cr_assert_eq(dp_map_next_wait(m, &r, S_WAIT_S), 0);
        cr_assert_eq(r->index, k);
        cr_assert_eq(r->error, DP_ERR_LIMIT);
        dp_result_free(&r);
    }
    cr_assert_eq(dp_map_next_wait(m, &r, S_WAIT_S), DP_ERR_EOF);
    took = s_ms() - t0;
    cr_assert_lt(took, 1000u, "LIMITs took %llu ms", (unsigned long long)took);
    dp_map_destroy(&m);
    s_free_argv(argv, 20);
    dp_value_t st = dp_nil();
    cr_assert_eq(dp_pool_status(p, &st), 0);
    cr_assert_eq(s_stat(&st, "cpu_slots"), 0);
    dp_value_clear(&st);
    pid_t kids[S_KIDS_MAX];
    cr_assert_eq(s_cpu_kids(kids, S_KIDS_MAX), 0,
                 "an io-only pool has cpu children");
    dp_pool_close(&p);
    s_assert_no_child_left();
    s_sigpipe_kept();
}

/* ---- 4. time limits ---- */

#define S_PBKDF2_ITER 100000000ULL /* minutes of work: the limit cuts it */

Test(local, time_limit_replaces_the_child)
{
    dp_pool_t *p = s_open(1);
    /* sleep answers TIMEOUT itself at its deadline */
    dp_value_t ms = dp_uint(5000);
    dp_job_opts_t jo = {.timeout = 0.3, .retries = 0};
    uint64_t t0 = s_ms();
    dp_future_t *f = s_future(p, "sleep", &ms, 1, &jo, S_WAIT_S);
    uint64_t took = s_ms() - t0;
    const dp_result_t *r = dp_future_result(f);
    cr_assert_eq(r->error, DP_ERR_TIMEOUT, "sleep 5000 / 0.3 s: %s (%s)",
                 dp_errname(r->error), r->message ? r->message : "");
    cr_assert_lt(took, 2000u, "TIMEOUT after %llu ms",
                 (unsigned long long)took);
    cr_assert_geq(took, 250u, "TIMEOUT before the limit (%llu ms)",
                  (unsigned long long)took);
    dp_future_destroy(&f);
    dp_value_t a = dp_str("next");
    f = s_future(p, "echo", &a, 1, NULL, S_WAIT_S);
    cr_assert_eq(dp_future_result(f)->error, 0);
    cr_assert(dp_value_equal(&dp_future_result(f)->value, &a));
    dp_future_destroy(&f);

    /* PBKDF2 cannot be interrupted: the pool stops the child (SIGTERM
     * after the limit and its slack) and starts a new one */
    dp_value_t h[4] = {dp_str("password"), dp_str("sha256"),
                       dp_uint(S_PBKDF2_ITER), dp_str("salt")};
    t0 = s_ms();
    f = s_future(p, "hash", h, 4, &jo, S_WAIT_S);
    took = s_ms() - t0;
    r = dp_future_result(f);
    cr_assert_eq(r->error, DP_ERR_TIMEOUT, "PBKDF2 / 0.3 s: %s (%s)",
                 dp_errname(r->error), r->message ? r->message : "");
    cr_assert_lt(took, 2500u, "TIMEOUT after %llu ms",
                 (unsigned long long)took);
    cr_assert(r->message && strstr(r->message, "time limit of 0.300 s"),
              "message: %s", r->message ? r->message : "(null)");
    pid_t stopped = r->pid;
    cr_assert_gt(stopped, 0);
    dp_future_destroy(&f);
    for (size_t k = 0; k < 4; k++)
        dp_value_clear(&h[k]);
    f = s_future(p, "echo", &a, 1, NULL, S_WAIT_S);
    r = dp_future_result(f);
    cr_assert_eq(r->error, 0, "%s", r->message ? r->message : "");
    cr_assert(dp_value_equal(&r->value, &a));
    cr_assert_neq(r->pid, stopped, "the stopped child ran the next job");
    cr_assert(!dp_e2e_alive(stopped), "the timed-out child still runs");
    dp_future_destroy(&f);
    dp_value_clear(&a);
    dp_pool_close(&p);
    s_assert_no_child_left();
    s_sigpipe_kept();
}

/* ---- 5. cancel and destroy ---- */

#define S_DESTROY_N 200

Test(local, cancel_and_destroy)
{
    dp_pool_t *p = s_open(2);
    dp_value_t *argv = calloc(S_DESTROY_N, sizeof *argv);
    for (size_t k = 0; k < S_DESTROY_N; k++)
        argv[k] = s_arg1(dp_uint(50));
    dp_map_t *m = NULL;
    cr_assert_eq(dp_map_array(p, "sleep", argv, S_DESTROY_N, NULL, &m), 0);
    for (size_t k = 0; k < 5; k++) {
        dp_result_t *r = NULL;
        cr_assert_eq(dp_map_next_wait(m, &r, S_WAIT_S), 0);
        cr_assert_eq(r->index, k);
        cr_assert_eq(r->error, 0, "%s", r->message ? r->message : "");
        dp_result_free(&r);
    }
    uint64_t t0 = s_ms();
    dp_map_destroy(&m);
    cr_assert_null(m);
    cr_assert_lt(s_ms() - t0, (uint64_t)S_QUICK_MS);
    /* 195 x 50 ms left in the children and the queue: a map that follows
     * gets the children only if they were really stopped */
    uint64_t took = s_run_echo(p, 50, NULL);
    cr_assert_lt(took, (uint64_t)S_QUICK_MS,
                 "the next map took %llu ms: the destroyed map's jobs "
                 "still ran",
                 (unsigned long long)took);
    s_free_argv(argv, S_DESTROY_N);

    /* cancel a running job */
    dp_value_t ms = dp_uint(10000);
    dp_future_t *f = NULL;
    cr_assert_eq(dp_submit(p, "sleep", &ms, 1, NULL, &f), 0);
    pid_t victim = s_sleeping_kid();
    t0 = s_ms();
    cr_assert_eq(dp_future_cancel(f), 0);
    cr_assert_eq(dp_future_wait(f, 5), 0, "no result 5 s after cancel");
    took = s_ms() - t0;
    const dp_result_t *r = dp_future_result(f);
    cr_assert_eq(r->error, DP_ERR_CANCELLED, "%s", dp_errname(r->error));
    cr_assert_lt(took, (uint64_t)S_QUICK_MS, "CANCELLED after %llu ms",
                 (unsigned long long)took);
    cr_assert_eq(dp_future_cancel(f), 0); /* done: nothing to do */
    dp_future_destroy(&f);
    cr_assert(!dp_e2e_alive(victim), "the cancelled job's child %d lives",
              (int)victim);
    s_run_echo(p, 20, NULL);
    dp_pool_close(&p);
    s_assert_no_child_left();
    s_sigpipe_kept();
}

/* ---- 6. close with jobs running ---- */

#define S_CLOSE_JOBS 5
/* futures of a pool closed under them cannot be destroyed any more (that
 * touches the pool): kept reachable here, not leaked */
static dp_future_t *s_orphans[S_CLOSE_JOBS];

Test(local, close_with_jobs_running)
{
    dp_pool_t *p = s_open(2);
    dp_value_t ms = dp_uint(10000);
    for (int k = 0; k < S_CLOSE_JOBS; k++)
        cr_assert_eq(dp_submit(p, "sleep", &ms, 1, NULL, &s_orphans[k]), 0);
    s_count_t c = {2, 0};
    cr_assert(dp_e2e_wait_until(s_count_sleepers, &c, S_UP_MS),
              "%d of 2 children run a job", c.n);
    pid_t kids[S_KIDS_MAX];
    int nk = s_cpu_kids(kids, S_KIDS_MAX);
    cr_assert_eq(nk, 2);
    uint64_t t0 = s_ms();
    dp_pool_close(&p);
    uint64_t took = s_ms() - t0;
    cr_assert_null(p);
    cr_assert_lt(took, (uint64_t)S_QUICK_MS, "dp_pool_close took %llu ms",
                 (unsigned long long)took);
    s_assert_no_child_left();
    for (int k = 0; k < nk; k++)
        cr_assert(!dp_e2e_alive(kids[k]), "child %d survived", kids[k]);
    s_sigpipe_kept();
}

/* ---- 6b. closed while downloading ---- */

#define S_DRIPS 3

/* s_files_in: regular entries in dir. */
static int s_files_in(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

typedef struct {
    const char *dir;
    int want;
} s_files_t;

static bool s_files_there(void *arg)
{
    s_files_t *f = arg;
    return s_files_in(f->dir) >= f->want;
}

static dp_map_t *s_drip_map; /* outlives its pool: kept reachable */

/* A local pool closed while its io child stores downloads (a Ctrl-C in
 * `dpool download -o DIR`) leaves no partial file: the io child is told
 * to go, cancels its transfers and removes their files, before anything
 * is killed. */
Test(local, close_while_downloading_leaves_no_partial_file)
{
    dp_httpd_opts_t ho = {0};
    dp_httpd_t *h = dp_httpd_start(&ho);
    cr_assert_not_null(h);
    char url[256], dir[] = "/tmp/dp-local-dl-XXXXXX";
    dp_httpd_url(h, "/drip?bytes=600&ms=50", url, sizeof url);
    cr_assert_not_null(mkdtemp(dir));
    dp_pool_opts_t o = {
        .processes = -1, .bin_dir = DP_BIN_DIR, .store_dir = dir};
    dp_pool_t *p = NULL;
    cr_assert_eq(dp_pool_open(NULL, &o, &p), 0);
    static dp_value_t argv[S_DRIPS];
    for (int k = 0; k < S_DRIPS; k++) {
        argv[k] = dp_array(1);
        argv[k].v.a.items[0] = dp_str(url);
    }
    dp_map_opts_t mo = {.unordered = true, .job = {.retries = -1}};
    cr_assert_eq(dp_map_array(p, "download", argv, S_DRIPS, &mo, &s_drip_map),
                 0);
    dp_result_t *r = NULL;
    /* the map sends its jobs when asked for a result */
    cr_assert_eq(dp_map_next_wait(s_drip_map, &r, 0.2), DP_ERR_TIMEOUT);
    s_files_t f = {dir, S_DRIPS};
    cr_assert(dp_e2e_wait_until(s_files_there, &f, S_UP_MS),
              "the downloads never started (%d files)", s_files_in(dir));
    uint64_t t0 = s_ms();
    dp_pool_close(&p);
    cr_assert_lt(s_ms() - t0, (uint64_t)S_QUICK_MS);
    int left = s_files_in(dir);
    dp_httpd_stop(&h);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(left, 0, "%d partial file(s) left in the output dir", left);
    s_assert_no_child_left();
    s_sigpipe_kept();
}

/* ---- 7. opened by a thread that ends ---- */

typedef struct {
    dp_pool_t *pool;
    int rc;
    bool up;
    pid_t kids[2];
} s_opener_t;

static void *s_opener(void *arg)
{
    s_opener_t *o = arg;
    dp_pool_opts_t po = {.processes = 2, .bin_dir = DP_BIN_DIR};
    o->rc = dp_pool_open(NULL, &po, &o->pool);
    s_count_t c = {2, 0};
    /* the children exist before this thread ends: if they followed it
     * (PR_SET_PDEATHSIG) they would die with it */
    o->up = !o->rc && dp_e2e_wait_until(s_has_kids, &c, S_UP_MS) &&
            s_cpu_kids(o->kids, 2) == 2;
    return NULL;
}

#define S_AFTER_N 100

Test(local, opened_by_a_thread_that_ends)
{
    s_opener_t o = {0};
    pthread_t thr;
    cr_assert_eq(pthread_create(&thr, NULL, s_opener, &o), 0);
    cr_assert_eq(pthread_join(thr, NULL), 0);
    cr_assert_eq(o.rc, 0, "dp_pool_open in a thread: %s", dp_errname(o.rc));
    cr_assert(o.up, "the pool's 2 children never came up");
    dp_pool_t *p = o.pool;
    dp_value_t *argv = s_echo_argv(S_AFTER_N);
    dp_map_opts_t mo = {.job.retries = 0, .chunksize = 1};
    dp_map_t *m = NULL;
    cr_assert_eq(dp_map_array(p, "echo", argv, S_AFTER_N, &mo, &m), 0);
    for (size_t k = 0; k < S_AFTER_N; k++) {
        dp_result_t *r = NULL;
        cr_assert_eq(dp_map_next_wait(m, &r, S_WAIT_S), 0);
        cr_assert_eq(r->index, k);
        cr_assert_eq(r->error, 0, "echo %zu: %s (%s)", k, dp_errname(r->error),
                     r->message);
        cr_assert(dp_value_equal(&r->value, &argv[k].v.a.items[0]));
        cr_assert(r->pid == o.kids[0] || r->pid == o.kids[1],
                  "echo %zu ran in %d, not in a child there before the "
                  "opener ended",
                  k, r->pid);
        dp_result_free(&r);
    }
    dp_result_t *r = NULL;
    cr_assert_eq(dp_map_next_wait(m, &r, S_WAIT_S), DP_ERR_EOF);
    dp_map_destroy(&m);
    s_free_argv(argv, S_AFTER_N);
    for (int k = 0; k < 2; k++)
        cr_assert(dp_e2e_alive(o.kids[k]), "child %d died", o.kids[k]);
    dp_pool_close(&p);
    s_assert_no_child_left();
    s_sigpipe_kept();
}

/* ---- 8. random faults ---- */

#define S_ROUNDS 40
#define S_ROUNDS_MS 30000
#define S_ROUND_MS 30000 /* one round's maps, drained */
#define S_MAPS_MAX 3     /* maps open at once in a round */
#define S_ECHO_MAX 300
#define S_SLEEP_JOBS_MAX 120
#define S_SLEEP_MS_MAX 20
#define S_OVER_MS 50          /* an over-limit sleep: the limit and this */
#define S_KILLS_MAX 60        /* SIGKILLs in the whole test, at most */
#define S_KILL_GAP_MS 150     /* the killer waits up to this between tries */
#define S_KILL_SETTLE_MS 1000 /* a kill counts for a round this long */
#define S_SEED_DEFAULT 0x6c6f63616cULL

static uint64_t s_rng;

static uint64_t s_rnd(uint64_t *st)
{
    uint64_t x = *st;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *st = x;
}

/* s_pct: true with probability pct %. */
static bool s_pct(unsigned pct)
{
    return s_rnd(&s_rng) % 100 < pct;
}

static uint64_t s_below(uint64_t n)
{
    return n ? s_rnd(&s_rng) % n : 0;
}

static struct {
    atomic_bool stop;
    atomic_int kills;
    _Atomic uint64_t last_ms; /* s_ms() of the last kill */
    _Atomic pid_t last;       /* the last child killed */
    uint64_t rng;
} K;

static void *s_killer(void *arg)
{
    (void)arg;
    while (!atomic_load(&K.stop)) {
        s_nap_ms(5 + (long)(s_rnd(&K.rng) % S_KILL_GAP_MS));
        if (atomic_load(&K.kills) >= S_KILLS_MAX || s_rnd(&K.rng) % 2)
            continue;
        pid_t kids[S_KIDS_MAX];
        int n = s_cpu_kids(kids, S_KIDS_MAX);
        if (n <= 0)
            continue;
        if (n > S_KIDS_MAX)
            n = S_KIDS_MAX;
        pid_t victim = kids[s_rnd(&K.rng) % (uint64_t)n];
        atomic_store(&K.last_ms, s_ms());
        if (kill(victim, SIGKILL) == 0) {
            atomic_store(&K.last, victim);
            atomic_fetch_add(&K.kills, 1);
        }
    }
    return NULL;
}

/* s_settled: the last child killed is dead and reaped (no zombie child
 * at all), and 2 cpu children live. */
static bool s_settled(void *arg)
{
    (void)arg;
    pid_t last = atomic_load(&K.last);
    if (last > 0 && dp_e2e_alive(last))
        return false;
    siginfo_t si = {0};
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid != 0)
        return false; /* a zombie: not reaped yet */
    pid_t kids[S_KIDS_MAX];
    return s_cpu_kids(kids, S_KIDS_MAX) == 2;
}

typedef enum { S_ECHO, S_SLEEP, S_UNKNOWN } s_kind_t;

/* what the rounds saw, printed at the end (a run that saw no retry or no
 * lost job tested less than it seems) */
static struct {
    size_t results, errors[DP_ERR_COUNT_], retried, ended, destroyed;
} S;

typedef struct {
    s_kind_t kind;
    size_t n;
    dp_value_t *argv;
    bool *bad;  /* wrong arity */
    bool *over; /* a sleep past the time limit */
    bool *seen; /* result given */
    dp_map_opts_t o;
    dp_map_t *m;
    size_t got;
    size_t destroy_at; /* destroy after this many results; SIZE_MAX never */
    bool open, destroyed;
} s_rmap_t;

static const char *s_kind_type(s_kind_t k)
{
    return k == S_ECHO ? "echo" : k == S_SLEEP ? "sleep" : "nosuchtype";
}

/* s_rmap_build: a map's inputs and options, drawn from s_rng. */
static void s_rmap_build(s_rmap_t *rm)
{
    unsigned pick = (unsigned)s_below(100);
    rm->kind = pick < 55 ? S_ECHO : pick < 92 ? S_SLEEP : S_UNKNOWN;
    rm->n = 1 + s_below(rm->kind == S_SLEEP ? S_SLEEP_JOBS_MAX : S_ECHO_MAX);
    rm->o.job.timeout = s_pct(50) ? 0 : 0.05 + (double)s_below(451) / 1000.0;
    rm->argv = calloc(rm->n, sizeof *rm->argv);
    rm->bad = calloc(rm->n, sizeof *rm->bad);
    rm->over = calloc(rm->n, sizeof *rm->over);
    rm->seen = calloc(rm->n, sizeof *rm->seen);
    cr_assert(rm->argv && rm->bad && rm->over && rm->seen);
    uint64_t limit_ms = (uint64_t)(rm->o.job.timeout * 1000);
    for (size_t k = 0; k < rm->n; k++) {
        bool bad = rm->kind != S_UNKNOWN && s_pct(3);
        /* now and then a sleep past the limit: the child's TIMEOUT */
        bool over = rm->kind == S_SLEEP && !bad && limit_ms && s_pct(2);
        rm->bad[k] = bad;
        rm->over[k] = over;
        if (rm->kind == S_SLEEP) {
            uint64_t ms =
                over ? limit_ms + S_OVER_MS : s_below(S_SLEEP_MS_MAX + 1);
            rm->argv[k] =
                bad ? s_argn(s_pct(50) ? 0 : 2, 1) : s_arg1(dp_uint(ms));
        } else if (bad) {
            rm->argv[k] = s_argn(S_ECHO_ARITY + 1 + s_below(3), k);
        } else if (s_pct(5)) { /* several arguments: a list back */
            rm->argv[k] = s_argn(s_pct(30) ? 0 : 2 + s_below(4), k);
        } else {
            char buf[48];
            snprintf(buf, sizeof buf, "r%zu-%llu", k,
                     (unsigned long long)s_below(1000000));
            rm->argv[k] = s_arg1(s_pct(50) ? dp_str(buf) : dp_uint(k));
        }
    }
    rm->o.unordered = s_pct(50);
    rm->o.chunksize = s_pct(40) ? 0 : 1 + s_below(16);
    rm->o.max_inflight = s_pct(70) ? 0 : 1 + s_below(64);
    rm->o.fail_fast = s_pct(15);
    rm->o.job.retries = (int)s_below(4);
    rm->destroy_at = s_pct(15) ? s_below(rm->n + 1) : SIZE_MAX;
    rm->got = 0;
    rm->open = rm->destroyed = false;
}

static void s_rmap_free(s_rmap_t *rm)
{
    dp_map_destroy(&rm->m);
    s_free_argv(rm->argv, rm->n);
    free(rm->bad);
    free(rm->over);
    free(rm->seen);
}

/* s_rmap_check: one result of a map that runs to its end. kills: SIGKILLs
 * of children during the round so far. */
static void s_rmap_check(const s_rmap_t *rm, const dp_result_t *r, int kills,
                         const char *where)
{
    cr_assert_lt(r->index, rm->n, "%s: index %zu of %zu", where, r->index,
                 rm->n);
    cr_assert(!rm->seen[r->index], "%s: index %zu given twice", where,
              r->index);
    cr_assert(rm->o.unordered || r->index == rm->got,
              "%s: ordered map gave index %zu as result %zu", where, r->index,
              rm->got);
    const dp_map_opts_t *o = &rm->o;
    bool bad = rm->bad[r->index];
    int e = r->error;
    const char *msg = r->message ? r->message : "";
    if (e == DP_ERR_CANCELLED) {
        cr_assert(o->fail_fast, "%s: index %zu CANCELLED without fail_fast",
                  where, r->index);
        return;
    }
    if (rm->kind == S_UNKNOWN) {
        cr_assert_eq(e, DP_ERR_UNKNOWN_TYPE, "%s: index %zu: %s (%s)", where,
                     r->index, dp_errname(e), msg);
        return;
    }
    if (bad) {
        cr_assert_eq(e, DP_ERR_ARITY, "%s: index %zu (bad arity): %s (%s)",
                     where, r->index, dp_errname(e), msg);
        return;
    }
    cr_assert(r->attempts <= (unsigned)o->job.retries + 1,
              "%s: index %zu: %u attempts with retries %d", where, r->index,
              r->attempts, o->job.retries);
    cr_assert(r->attempts <= 1 || kills > 0,
              "%s: index %zu: %u attempts, no child was killed", where,
              r->index, r->attempts);
    if (e == DP_ERR_TIMEOUT) { /* the client's own deadline: attempts 0 */
        cr_assert(o->job.timeout > 0, "%s: index %zu TIMEOUT without a limit",
                  where, r->index);
        return;
    }
    cr_assert(!rm->over[r->index] || e == DP_ERR_WORKER_LOST ||
                  e == DP_ERR_LIMIT,
              "%s: index %zu: a sleep past its limit gave %s (%s)", where,
              r->index, dp_errname(e), msg);
    cr_assert_geq(r->attempts, 1u, "%s: index %zu: %s with 0 attempts", where,
                  r->index, dp_errname(e));
    if (e == DP_ERR_WORKER_LOST || e == DP_ERR_LIMIT) {
        cr_assert_gt(kills, 0, "%s: index %zu: %s (%s), no child was killed",
                     where, r->index, dp_errname(e), msg);
        return;
    }
    cr_assert_eq(e, 0, "%s: index %zu: %s (%s)", where, r->index, dp_errname(e),
                 msg);
    const dp_value_t *in = &rm->argv[r->index];
    if (rm->kind == S_SLEEP) {
        cr_assert(r->value.type == DP_UINT &&
                      r->value.v.u == in->v.a.items[0].v.u,
                  "%s: index %zu: sleep gave another value", where, r->index);
    } else {
        dp_value_t nil = dp_nil();
        const dp_value_t *want = in->v.a.len == 1   ? &in->v.a.items[0]
                                 : in->v.a.len == 0 ? &nil
                                                    : in;
        cr_assert(dp_value_equal(&r->value, want),
                  "%s: index %zu: echo gave another value", where, r->index);
    }
}

/* s_rmap_end: a map at EOF: one result per input read, none missing. */
static void s_rmap_end(const s_rmap_t *rm, const char *where)
{
    size_t sub, done, failed;
    dp_map_stats(rm->m, &sub, &done, &failed);
    cr_assert_eq(done, rm->got, "%s: stats say %zu done, %zu given", where,
                 done, rm->got);
    cr_assert_eq(sub, rm->got, "%s: %zu inputs read, %zu results", where, sub,
                 rm->got);
    if (!rm->o.fail_fast)
        cr_assert_eq(rm->got, rm->n, "%s: %zu results for %zu inputs", where,
                     rm->got, rm->n);
    for (size_t k = 0; k < rm->got; k++)
        cr_assert(rm->seen[k], "%s: no result for index %zu", where, k);
}

/* s_round: run one round of 1..S_MAPS_MAX maps at once. */
static void s_round(dp_pool_t *p, int round, uint64_t seed)
{
    s_rmap_t maps[S_MAPS_MAX];
    int nm = 1 + (int)s_below(S_MAPS_MAX);
    /* a kill just before the round may hit its first jobs: the pool
     * sees a child die when it reads its socket's end */
    int kills0 = atomic_load(&K.kills) -
                 (s_ms() - atomic_load(&K.last_ms) < S_KILL_SETTLE_MS);
    char where[256];
    for (int i = 0; i < nm; i++) {
        memset(&maps[i], 0, sizeof maps[i]);
        s_rmap_build(&maps[i]);
        s_rmap_t *rm = &maps[i];
        int rc = dp_map_array(p, s_kind_type(rm->kind), rm->argv, rm->n, &rm->o,
                              &rm->m);
        cr_assert_eq(rc, 0, "seed %llu round %d: dp_map_array: %s",
                     (unsigned long long)seed, round, dp_errname(rc));
        rm->open = true;
        if (rm->destroy_at == 0) {
            S.destroyed++;
            dp_map_destroy(&rm->m);
            rm->open = false;
            rm->destroyed = true;
        }
    }
    uint64_t end = s_ms() + S_ROUND_MS;
    for (int open = nm; open > 0;) {
        open = 0;
        for (int i = 0; i < nm; i++) {
            s_rmap_t *rm = &maps[i];
            if (!rm->open)
                continue;
            snprintf(where, sizeof where,
                     "seed %llu round %d map %d (%s n=%zu %s chunk=%zu "
                     "inflight=%zu ff=%d limit=%.3f retries=%d)",
                     (unsigned long long)seed, round, i, s_kind_type(rm->kind),
                     rm->n, rm->o.unordered ? "unordered" : "ordered",
                     rm->o.chunksize, rm->o.max_inflight, rm->o.fail_fast,
                     rm->o.job.timeout, rm->o.job.retries);
            dp_result_t *r = NULL;
            int rc = dp_map_next_wait(rm->m, &r, 0.01);
            if (rc == DP_ERR_TIMEOUT) {
                open++;
                continue;
            }
            if (rc == DP_ERR_EOF) {
                s_rmap_end(rm, where);
                S.ended++;
                rm->open = false;
                continue;
            }
            cr_assert_eq(rc, 0, "%s: dp_map_next: %s", where, dp_errname(rc));
            s_rmap_check(rm, r, atomic_load(&K.kills) - kills0, where);
            S.results++;
            S.retried += r->attempts > 1;
            if (r->error > 0 && r->error < DP_ERR_COUNT_)
                S.errors[r->error]++;
            rm->seen[r->index] = true;
            rm->got++;
            dp_result_free(&r);
            if (rm->got == rm->destroy_at) {
                S.destroyed++;
                dp_map_destroy(&rm->m);
                rm->open = false;
                rm->destroyed = true;
                continue;
            }
            open++;
        }
        cr_assert_lt(s_ms(), end, "seed %llu round %d: maps not done in %d ms",
                     (unsigned long long)seed, round, S_ROUND_MS);
    }
    for (int i = 0; i < nm; i++)
        s_rmap_free(&maps[i]);
}

Test(local, random_faults, .timeout = 120)
{
    const char *env = getenv("DP_LOCAL_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : S_SEED_DEFAULT;
    if (!seed)
        seed = S_SEED_DEFAULT;
    fprintf(stderr, "random_faults: seed %llu (DP_LOCAL_SEED=%llu replays)\n",
            (unsigned long long)seed, (unsigned long long)seed);
    s_rng = seed;
    K.rng = seed ^ 0x9E3779B97F4A7C15ULL;
    atomic_store(&K.stop, false);
    atomic_store(&K.kills, 0);
    atomic_store(&K.last_ms, 0);
    atomic_store(&K.last, 0);
    dp_pool_t *p = s_open(2);
    pthread_t killer;
    cr_assert_eq(pthread_create(&killer, NULL, s_killer, NULL), 0);
    uint64_t end = s_ms() + S_ROUNDS_MS;
    int round = 0;
    for (; round < S_ROUNDS && s_ms() < end; round++)
        s_round(p, round, seed);
    atomic_store(&K.stop, true);
    pthread_join(killer, NULL);
    /* the last child killed is reaped and replaced before the plain map
     * (whose jobs have no retry) */
    cr_assert(dp_e2e_wait_until(s_settled, NULL, S_UP_MS),
              "the pool did not get back to 2 live cpu children");
    fprintf(stderr,
            "random_faults: %d rounds, %d children killed; %zu maps ended, "
            "%zu destroyed early; %zu results: %zu retried, LOST %zu, "
            "TIMEOUT %zu, CANCELLED %zu, ARITY %zu, UNKNOWN_TYPE %zu, "
            "LIMIT %zu\n",
            round, atomic_load(&K.kills), S.ended, S.destroyed, S.results,
            S.retried, S.errors[DP_ERR_WORKER_LOST], S.errors[DP_ERR_TIMEOUT],
            S.errors[DP_ERR_CANCELLED], S.errors[DP_ERR_ARITY],
            S.errors[DP_ERR_UNKNOWN_TYPE], S.errors[DP_ERR_LIMIT]);
    cr_assert_gt(atomic_load(&K.kills), 0, "the killer killed nothing");
    cr_assert_geq(round, 5, "only %d rounds", round);
    /* the pool is whole again: a plain map, every job on its first try */
    dp_map_opts_t o = {.job.retries = 0};
    s_run_echo(p, 300, &o);
    dp_pool_close(&p);
    s_assert_no_child_left();
    s_sigpipe_kept();
}

/* ---- 9. more hostile sequences ---- */

/* dp_map_cancel mid-map, then dp_map_next to EOF: one result per input
 * read (ok or CANCELLED), none twice; ordered and unordered. */
static void s_cancel_drain(dp_pool_t *p, bool unordered)
{
    enum { N = 100 };
    dp_value_t *argv = calloc(N, sizeof *argv);
    for (size_t k = 0; k < N; k++)
        argv[k] = s_arg1(dp_uint(30));
    dp_map_opts_t o = {
        .unordered = unordered, .chunksize = 1, .job.retries = 0};
    dp_map_t *m = NULL;
    cr_assert_eq(dp_map_array(p, "sleep", argv, N, &o, &m), 0);
    bool seen[N] = {false};
    size_t got = 0, cancelled = 0;
    uint64_t t0 = 0;
    for (;;) {
        dp_result_t *r = NULL;
        int rc = dp_map_next_wait(m, &r, S_WAIT_S);
        if (rc == DP_ERR_EOF)
            break;
        cr_assert_eq(rc, 0, "%s", dp_errname(rc));
        cr_assert_lt(r->index, (size_t)N);
        cr_assert(!seen[r->index], "index %zu twice", r->index);
        cr_assert(unordered || r->index == got);
        seen[r->index] = true;
        got++;
        if (r->error == DP_ERR_CANCELLED)
            cancelled++;
        else
            cr_assert_eq(r->error, 0, "index %zu: %s (%s)", r->index,
                         dp_errname(r->error), r->message);
        dp_result_free(&r);
        if (got == 3) {
            t0 = s_ms();
            cr_assert_eq(dp_map_cancel(m), 0);
            cr_assert_eq(dp_map_cancel(m), 0); /* twice: harmless */
        }
    }
    uint64_t took = s_ms() - t0;
    size_t sub, done, failed;
    dp_map_stats(m, &sub, &done, &failed);
    cr_assert_eq(sub, got, "%zu read, %zu results", sub, got);
    cr_assert_eq(done, got);
    for (size_t k = 0; k < got; k++)
        cr_assert(seen[k], "no result for index %zu", k);
    cr_assert_gt(cancelled, 0u, "nothing was cancelled");
    cr_assert_lt(took, (uint64_t)S_QUICK_MS, "EOF %llu ms after cancel",
                 (unsigned long long)took);
    dp_result_t *r = NULL;
    cr_assert_eq(dp_map_next_wait(m, &r, 1), DP_ERR_EOF, "EOF again");
    dp_map_destroy(&m);
    s_free_argv(argv, N);
}

Test(local, map_cancel_then_drain)
{
    dp_pool_t *p = s_open(2);
    s_cancel_drain(p, false);
    s_run_echo(p, 20, NULL);
    s_cancel_drain(p, true);
    s_run_echo(p, 20, NULL);
    dp_pool_close(&p);
    s_assert_no_child_left();
    s_sigpipe_kept();
}

/* status asked again and again while a map of many short jobs and a few
 * thousand futures are out: it answers, quickly, with sane counters */
#define S_FLOOD_N 10000
#define S_FLOOD_FUTURES 2000

Test(local, status_during_flood, .timeout = 120)
{
    dp_pool_t *p = s_open(2);
    dp_future_t **fs = calloc(S_FLOOD_FUTURES, sizeof *fs);
    dp_value_t *fargs = s_echo_argv(S_FLOOD_FUTURES);
    for (size_t k = 0; k < S_FLOOD_FUTURES; k++)
        cr_assert_eq(dp_submit(p, "echo", fargs[k].v.a.items, 1, NULL, &fs[k]),
                     0);
    dp_value_t *argv = s_echo_argv(S_FLOOD_N);
    dp_map_opts_t o = {.unordered = true, .job.retries = -1};
    dp_map_t *m = NULL;
    cr_assert_eq(dp_map_array(p, "echo", argv, S_FLOOD_N, &o, &m), 0);
    bool *seen = calloc(S_FLOOD_N, sizeof *seen);
    size_t got = 0, asked = 0;
    for (;;) {
        dp_result_t *r = NULL;
        int rc = dp_map_next_wait(m, &r, S_WAIT_S);
        if (rc == DP_ERR_EOF)
            break;
        cr_assert_eq(rc, 0, "%s", dp_errname(rc));
        cr_assert(!seen[r->index], "index %zu twice", r->index);
        seen[r->index] = true;
        cr_assert_eq(r->error, 0, "%s", r->message ? r->message : "");
        cr_assert(dp_value_equal(&r->value, &argv[r->index].v.a.items[0]));
        dp_result_free(&r);
        if (++got % 500 == 0) {
            uint64_t t0 = s_ms();
            dp_value_t st = dp_nil();
            cr_assert_eq(dp_pool_status(p, &st), 0);
            cr_assert_lt(s_ms() - t0, 1000u, "status took %llu ms",
                         (unsigned long long)(s_ms() - t0));
            cr_assert_eq(s_stat(&st, "workers"), 1);
            cr_assert_eq(s_stat(&st, "cpu_slots"), 2);
            long long q = s_stat(&st, "queued"), run = s_stat(&st, "running");
            cr_assert(q >= 0 && run >= 0);
            cr_assert_leq(q + run, (long long)(S_FLOOD_N + S_FLOOD_FUTURES));
            cr_assert_leq(s_stat(&st, "children"), 3);
            dp_value_clear(&st);
            asked++;
        }
    }
    cr_assert_eq(got, (size_t)S_FLOOD_N);
    cr_assert_gt(asked, 0u);
    dp_map_destroy(&m);
    for (size_t k = 0; k < S_FLOOD_FUTURES; k++) {
        cr_assert_eq(dp_future_wait(fs[k], S_WAIT_S), 0);
        const dp_result_t *r = dp_future_result(fs[k]);
        cr_assert_eq(r->error, 0);
        cr_assert(dp_value_equal(&r->value, &fargs[k].v.a.items[0]),
                  "future %zu", k);
        dp_future_destroy(&fs[k]);
    }
    free(fs);
    free(seen);
    s_free_argv(argv, S_FLOOD_N);
    s_free_argv(fargs, S_FLOOD_FUTURES);
    dp_pool_close(&p);
    s_assert_no_child_left();
    s_sigpipe_kept();
}

/* A cpu child whose jobs are short gets jobs ahead (prefetch). A long job
 * sent ahead behind a running one, then cancelled, must not run in full
 * when its turn comes: dp_future_cancel says queued jobs are dropped and
 * running ones killed, and the child would be held for the whole job. */
#define S_HEAD_MS 1000
#define S_BEHIND_MS 10000

Test(local, cancel_of_a_prefetched_job)
{
    dp_pool_t *p = s_open(1);
    s_run_echo(p, 200, NULL); /* the child's jobs are short: prefetch on */
    dp_value_t head = dp_uint(S_HEAD_MS), behind = dp_uint(S_BEHIND_MS);
    dp_future_t *fh = NULL, *fb = NULL;
    cr_assert_eq(dp_submit(p, "sleep", &head, 1, NULL, &fh), 0);
    s_sleeping_kid();
    cr_assert_eq(dp_submit(p, "sleep", &behind, 1, NULL, &fb), 0);
    /* fb is sent to the busy child ahead (status: 2 running, none
     * queued), else this test shows nothing */
    uint64_t t0 = s_ms();
    bool ahead = false;
    while (!ahead && s_ms() - t0 < S_HEAD_MS / 2) {
        dp_value_t st = dp_nil();
        cr_assert_eq(dp_pool_status(p, &st), 0);
        ahead = s_stat(&st, "running") == 2 && s_stat(&st, "queued") == 0;
        dp_value_clear(&st);
    }
    cr_assert(ahead, "the second job was not sent ahead to the child");
    cr_assert_eq(dp_future_cancel(fb), 0);
    cr_assert_eq(dp_future_wait(fh, S_WAIT_S), 0);
    cr_assert_eq(dp_future_result(fh)->error, 0);
    cr_assert_eq(dp_future_wait(fb, S_WAIT_S), 0);
    uint64_t took = s_ms() - t0;
    const dp_result_t *r = dp_future_result(fb);
    cr_assert_eq(r->error, DP_ERR_CANCELLED, "%s", dp_errname(r->error));
    /* cr_expect: on failure the test still frees what it made */
    cr_expect_lt(took, (uint64_t)(S_HEAD_MS + S_QUICK_MS),
                 "the cancelled job's CANCELLED came %llu ms after the "
                 "cancel: it ran in full behind the first",
                 (unsigned long long)took);
    dp_future_destroy(&fh);
    dp_future_destroy(&fb);
    /* and the child is free for the next job at once */
    t0 = s_ms();
    s_run_echo(p, 5, NULL);
    cr_assert_lt(s_ms() - t0, (uint64_t)S_QUICK_MS);
    dp_pool_close(&p);
    s_assert_no_child_left();
    s_sigpipe_kept();
}
