/*
 * test_observe.c - end-to-end: what an operator sees. `dpool status`
 * lists the broker's live workers (STATUS_REPLY worker_list), and a
 * worker pointed at an endpoint where nothing answers says so in its log.
 */
#include <unistd.h>

#include "e2e.h"

TestSuite(observe, .init = e2e_setup, .fini = e2e_teardown, .timeout = 60);

#define S_BATCH 12          /* jobs run before asking for the status */
#define S_PROCS 2           /* cpu children of the worker */
#define S_SEEN_MAX_MS 10000 /* a live worker was heard from within this */
#define S_WARN_WAIT_MS 5000 /* DP_CONNECT_WARN_MS (2 s) and some slack */
/* a worker retrying for a while reconnects up to DP_RECONNECT_MAX_MS (5 s)
 * apart: a broker that comes up late is joined within this */
#define S_LATE_JOIN_MS 12000

/* the status lists the worker that ran a batch: its name, pid, slots, and
 * a `done` of at least the batch; `workers` stays the count */
Test(observe, status_lists_live_workers, .timeout = 40)
{
    e2e_pool(1, S_PROCS);
    char n[S_BATCH][8];
    const char *argv[S_BATCH + 6] = {"dpool", "--broker", T.ep, "map", "echo"};
    for (int k = 0; k < S_BATCH; k++) {
        snprintf(n[k], sizeof n[k], "%d", k);
        argv[5 + k] = n[k];
    }
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS, argv);
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    dp_e2e_run_free(&r);

    char *json = NULL;
    cr_assert_eq(dp_e2e_status(&T.e, T.ep, &json), 0, "status: %s", json);
    cr_assert_eq(dp_e2e_jint(json, "workers"), 1, "%s", json);
    const char *wl = strstr(json, "\"worker_list\":[{");
    cr_assert(wl, "no worker_list of maps: %s", json);
    char name[16];
    cr_assert_eq(dp_e2e_jstr(wl, "name", name, sizeof name), 0, "%s", wl);
    cr_assert_str_eq(name, "w0");
    cr_assert_eq(dp_e2e_jint(wl, "pid"), T.worker[0].pid, "%s", wl);
    cr_assert_eq(dp_e2e_jint(wl, "cpu_slots"), S_PROCS, "%s", wl);
    cr_assert_eq(dp_e2e_jint(wl, "io_slots"), 1, "%s", wl);
    cr_assert_geq(dp_e2e_jint(wl, "done"), S_BATCH, "%s", wl);
    cr_assert_eq(dp_e2e_jint(wl, "running"), 0, "%s", wl);
    long long seen = dp_e2e_jint(wl, "last_seen_ms");
    cr_assert(seen >= 0 && seen < S_SEEN_MAX_MS, "%s", wl);
    cr_assert_null(strstr(wl + 1, "\"worker_list\""), "one list: %s", json);
    free(json);
}

typedef struct {
    const char *path;
    const char *text;
} s_log_ctx_t;

static bool s_log_has(void *arg)
{
    const s_log_ctx_t *c = arg;
    char *log = dp_e2e_slurp(c->path);
    bool has = strstr(log, c->text) != NULL;
    free(log);
    return has;
}

/* a worker whose endpoint has no broker warns once after DP_CONNECT_WARN_MS,
 * and says "connected" when a broker comes up there after all */
Test(observe, worker_warns_when_nobody_answers, .timeout = 40)
{
    int port = dp_e2e_free_port();
    cr_assert_gt(port, 0);
    snprintf(T.ep, sizeof T.ep, "tcp://127.0.0.1:%d", port);
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 1, "w0", NULL), 0);
    s_log_ctx_t warn = {T.worker[0].err, "still trying"};
    cr_assert(dp_e2e_wait_until(s_log_has, &warn, S_WARN_WAIT_MS),
              "no warning in the worker's log (%s)", T.worker[0].err);
    char *log = dp_e2e_slurp(T.worker[0].err), want[DP_E2E_EP_MAX * 2];
    snprintf(want, sizeof want, "warn: no answer from %s yet; still trying",
             T.ep);
    cr_assert(strstr(log, want), "want \"%s\" in:\n%s", want, log);
    free(log);

    cr_assert_eq(dp_e2e_broker(&T.e, &T.broker, port, T.ep, sizeof T.ep), 0,
                 "broker did not come up");
    s_log_ctx_t ok = {T.worker[0].err, "info: connected to "};
    cr_assert(dp_e2e_wait_until(s_log_has, &ok, S_LATE_JOIN_MS),
              "no \"connected\" in the worker's log (%s)", T.worker[0].err);
    log = dp_e2e_slurp(T.worker[0].err);
    const char *w = strstr(log, "still trying");
    cr_assert_null(strstr(w + 1, "still trying"), "warned twice:\n%s", log);
    free(log);
    e2e_workers_up(1);
    cr_assert_eq(dp_e2e_stop(&T.e, T.worker[0].pid, SIGINT, DP_E2E_STOP_MS), 0);
}
