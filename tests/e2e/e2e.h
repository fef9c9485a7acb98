/*
 * e2e.h - the fixture the end-to-end test files share: one dp_e2e_t per
 * test (Criterion forks per test), a broker and workers on loopback, and
 * small assertions over the client's JSON Lines.
 */
#ifndef E2E_H
#define E2E_H

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_e2e.h"

#define E2E_MAX_WORKERS 2
#define E2E_UP_MS 5000   /* processes join within this */
#define E2E_RUN_MS 20000 /* a client run's deadline */

/* a NULL-terminated argv literal */
#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static struct {
    dp_e2e_t e;
    char ep[DP_E2E_EP_MAX];
    dp_e2e_proc_t broker, worker[E2E_MAX_WORKERS];
} T __attribute__((unused));

static inline void e2e_setup(void)
{
    cr_assert_eq(dp_e2e_init(&T.e, DP_BIN_DIR), 0, "mkdtemp");
}

static inline void e2e_teardown(void)
{
    cr_expect_eq(dp_e2e_fini(&T.e), 0,
                 "a program reported a sanitizer error (see stderr)");
}

/* e2e_workers_up: wait until the broker counts n workers. */
static inline void e2e_workers_up(int n)
{
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "workers", n, n, E2E_UP_MS),
              "status never showed %d worker(s) (logs in %s)", n, T.e.dir);
}

/* e2e_kids_ctx_t / e2e_has_kids: a worker has exactly `want` live cpu
 * children. */
typedef struct {
    pid_t worker;
    int want;
} e2e_kids_ctx_t;

static inline bool e2e_has_kids(void *arg)
{
    e2e_kids_ctx_t *c = arg;
    pid_t kids[64];
    return dp_e2e_children(c->worker, "cpu", kids, 64) == c->want;
}

/* e2e_pool: a broker on a free port and nworkers workers of procs cpu
 * children each (named w0, w1), all joined. */
static inline void e2e_pool(int nworkers, int procs)
{
    cr_assert_eq(dp_e2e_broker(&T.e, &T.broker, 0, T.ep, sizeof T.ep), 0,
                 "broker did not come up");
    for (int k = 0; k < nworkers && k < E2E_MAX_WORKERS; k++) {
        char name[8];
        snprintf(name, sizeof name, "w%d", k);
        cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[k], T.ep, procs, name, NULL),
                     0);
    }
    e2e_workers_up(nworkers);
    /* every cpu child started (their count is what some tests watch) */
    for (int k = 0; k < nworkers && k < E2E_MAX_WORKERS; k++) {
        e2e_kids_ctx_t c = {T.worker[k].pid, procs};
        cr_assert(dp_e2e_wait_until(e2e_has_kids, &c, E2E_UP_MS),
                  "worker %d never had %d cpu children", k, procs);
    }
}

/* e2e_run: run the client, fail the test if it could not start. */
static inline void e2e_run(dp_e2e_run_t *r, int timeout_ms,
                           const char *const argv[])
{
    cr_assert_eq(dp_e2e_run(&T.e, r, timeout_ms, -1, argv), 0,
                 "cannot start %s", argv[0]);
}

/* e2e_json_lines: split a run's JSON Lines output, check the count. */
static inline char **e2e_json_lines(dp_e2e_run_t *r, int want)
{
    char **lines = NULL;
    int n = dp_e2e_lines(r->out, &lines);
    cr_assert_eq(n, want, "%d result lines, want %d; stderr:\n%s", n, want,
                 r->err);
    for (int k = 0; k < n; k++)
        cr_assert(lines[k][0] == '{', "not JSON: %s", lines[k]);
    return lines;
}

/* e2e_errname: the error name of a failed result line, "" when ok. */
static inline const char *e2e_errname(const char *line, char *buf, size_t len)
{
    if (dp_e2e_jtrue(line, "ok"))
        return "";
    if (dp_e2e_jstr(line, "name", buf, len))
        return "?";
    return buf;
}

/* e2e_busy_ctx_t / e2e_sleeping: every cpu child of a worker is inside a
 * `sleep` job (so it runs one, it is not waiting for one). */
typedef struct {
    pid_t worker;
    int want;
} e2e_busy_ctx_t;

static inline bool e2e_sleeping(void *arg)
{
    e2e_busy_ctx_t *b = arg;
    pid_t kids[64];
    int n = dp_e2e_children(b->worker, "cpu", kids, 64), busy = 0;
    for (int k = 0; k < n && k < 64; k++)
        busy += dp_e2e_in_sleep(kids[k]);
    return busy >= b->want;
}

/* e2e_gone_ctx_t / e2e_all_gone: none of the pids is alive. */
typedef struct {
    const pid_t *pids;
    int n;
} e2e_gone_ctx_t;

static inline bool e2e_all_gone(void *arg)
{
    e2e_gone_ctx_t *g = arg;
    for (int k = 0; k < g->n; k++)
        if (dp_e2e_alive(g->pids[k]))
            return false;
    return true;
}

#endif /* E2E_H */
