/*
 * test_e2e_faults.c - end-to-end under faults: children, workers, the
 * broker and clients killed mid-batch, SIGINT, SIGTERM drain, and the
 * embedded pools (local, and of daemons) leaving nothing behind. Real binaries
 * on loopback; the broker's heartbeat is 200 ms, so a silent peer is dead after
 * 600 ms.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"

#define S_MAX_KIDS 16
#define S_LOSS_MS 5000 /* 3 x 200 ms heartbeats, and a wide margin */

TestSuite(faults, .init = e2e_setup, .fini = e2e_teardown, .timeout = 60);

static bool s_has(const pid_t *v, int n, pid_t x)
{
    for (int k = 0; k < n; k++)
        if (v[k] == x)
            return true;
    return false;
}

/* s_spawn_client: start `dpool --broker EP --format json [extra] map
 * sleep MS...` in the background. */
static void s_spawn_client(dp_e2e_proc_t *cl, const char *const argv[])
{
    cr_assert_eq(dp_e2e_spawn(&T.e, cl, -1, argv), 0);
}

/* s_running: wait until the broker leases at least n jobs (more when a
 * worker holds some ahead of its slots) and n cpu children of worker w are
 * inside their `sleep` job. */
static void s_running(int n, pid_t w)
{
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "running", n, 1000000, E2E_UP_MS),
              "status never showed running >= %d", n);
    e2e_busy_ctx_t b = {w, n};
    cr_assert(dp_e2e_wait_until(e2e_sleeping, &b, E2E_UP_MS),
              "%d children of worker %d never all ran their job", n, (int)w);
}

/* s_spawn_daemons: s_spawn_client with DPOOL_EMBED=daemons: its embedded
 * pool is a private broker and worker (dp_embed.c), not the local pool. */
static void s_spawn_daemons(dp_e2e_proc_t *cl, const char *const argv[])
{
    setenv("DPOOL_EMBED", "daemons", 1);
    int rc = dp_e2e_spawn(&T.e, cl, -1, argv);
    unsetenv("DPOOL_EMBED");
    cr_assert_eq(rc, 0);
}

/* s_finish: wait for a background client, return its run. */
static dp_e2e_run_t s_finish(const dp_e2e_proc_t *cl, int timeout_ms)
{
    dp_e2e_run_t r = {0};
    r.code = dp_e2e_wait(&T.e, cl->pid, timeout_ms);
    r.out = dp_e2e_slurp(cl->out);
    r.err = dp_e2e_slurp(cl->err);
    return r;
}

/* s_embedded: the broker and worker an embedded client started: its
 * children that carry `--parent-pid CLIENT` (a child caught between fork
 * and exec has its parent's command line, so count only exec'd ones). */
static int s_embedded(pid_t client, pid_t *out, int max)
{
    pid_t kids[S_MAX_KIDS];
    int n = dp_e2e_children(client, NULL, kids, S_MAX_KIDS), found = 0;
    char want[16], arg[16];
    snprintf(want, sizeof want, "%d", (int)client);
    for (int k = 0; k < n && k < S_MAX_KIDS; k++) {
        if (dp_e2e_cmdline_arg(kids[k], "--parent-pid", arg, sizeof arg) ||
            strcmp(arg, want) != 0)
            continue;
        if (found < max)
            out[found] = kids[k];
        found++;
    }
    return found;
}

typedef struct {
    pid_t client;
    pid_t procs[S_MAX_KIDS * 2];
    int n;
} s_embed_ctx_t;

static bool s_embedded_up(void *arg)
{
    s_embed_ctx_t *c = arg;
    c->n = s_embedded(c->client, c->procs, S_MAX_KIDS);
    return c->n == 2;
}

/* s_embedded_running: wait until an embedded client's broker and worker
 * are up and the worker's child runs the `sleep` job; fill c->procs with
 * them and all the worker's children, and bind with the broker's
 * endpoint. */
static void s_embedded_running(s_embed_ctx_t *c, char *bind, size_t len)
{
    cr_assert(dp_e2e_wait_until(s_embedded_up, c, E2E_UP_MS),
              "found %d embedded processes, want 2", c->n);
    e2e_busy_ctx_t b = {0, 1};
    for (int k = 0; k < c->n; k++) {
        if (dp_e2e_cmdline_arg(c->procs[k], "--connect", NULL, 0) == 0)
            b.worker = c->procs[k];
        else
            dp_e2e_cmdline_arg(c->procs[k], "--bind", bind, len);
    }
    cr_assert(b.worker, "no embedded worker");
    cr_assert(dp_e2e_wait_until(e2e_sleeping, &b, E2E_UP_MS),
              "the job never started");
    c->n += dp_e2e_children(b.worker, NULL, c->procs + c->n, S_MAX_KIDS);
    cr_assert_geq(c->n, 3);
    cr_assert(strncmp(bind, "ipc:///tmp/dpool-", 17) == 0, "bind %s", bind);
}

/* 4. kill -9 of a child mid-job: the job is redone elsewhere, a new child
 * takes the dead one's place */
Test(faults, child_killed_mid_job, .timeout = 30)
{
    e2e_pool(1, 2);
    dp_e2e_proc_t cl;
    s_spawn_client(&cl, ARGV("dpool", "--broker", T.ep, "--format", "json",
                             "map", "sleep", "1500", "1500"));
    s_running(2, T.worker[0].pid);
    pid_t kids[S_MAX_KIDS];
    cr_assert_eq(dp_e2e_children(T.worker[0].pid, "cpu", kids, S_MAX_KIDS), 2);
    pid_t victim = kids[0];
    cr_assert_eq(kill(victim, SIGKILL), 0);

    dp_e2e_run_t r = s_finish(&cl, 15000);
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = e2e_json_lines(&r, 2);
    int retried = 0;
    for (int k = 0; k < 2; k++) {
        cr_assert(dp_e2e_jtrue(l[k], "ok"), "%s", l[k]);
        cr_assert_eq(dp_e2e_jint(l[k], "result"), 1500);
        long long att = dp_e2e_jint(l[k], "attempts");
        cr_assert(att == 1 || att == 2, "%s", l[k]);
        if (att == 2) {
            retried++;
            cr_assert_neq(dp_e2e_jint(l[k], "pid"), victim, "%s", l[k]);
        } else {
            cr_assert_neq(dp_e2e_jint(l[k], "pid"), victim,
                          "the killed child's job got no retry: %s", l[k]);
        }
    }
    cr_assert_eq(retried, 1, "%d jobs were retried, want 1", retried);
    free(l);
    dp_e2e_run_free(&r);
    cr_assert_geq(dp_e2e_stat(&T.e, T.ep, "requeued"), 1);
    cr_assert_eq(dp_e2e_stat(&T.e, T.ep, "failed"), 0);
    e2e_kids_ctx_t kc = {T.worker[0].pid, 2};
    cr_assert(dp_e2e_wait_until(e2e_has_kids, &kc, E2E_UP_MS),
              "the worker did not get back to 2 cpu children");
    int n = dp_e2e_children(T.worker[0].pid, "cpu", kids, S_MAX_KIDS);
    cr_assert(!s_has(kids, n, victim), "the killed child is listed");
}

/* 5. kill -9 of a whole worker mid-batch: its children die with it, its
 * jobs are redone on the other worker, every result comes exactly once */
#define S_BATCH 12
Test(faults, worker_killed_mid_batch, .timeout = 40)
{
    e2e_pool(2, 2);
    const char *argv[S_BATCH + 16];
    int n = 0;
    const char *head[] = {"dpool", "--broker",    T.ep,  "--format",
                          "json",  "--unordered", "map", "sleep"};
    for (size_t k = 0; k < sizeof head / sizeof head[0]; k++)
        argv[n++] = head[k];
    for (int k = 0; k < S_BATCH; k++)
        argv[n++] = "400";
    argv[n] = NULL;
    dp_e2e_proc_t cl;
    s_spawn_client(&cl, argv);
    /* w0 runs two jobs: kill it with its leases */
    e2e_busy_ctx_t b = {T.worker[0].pid, 2};
    cr_assert(dp_e2e_wait_until(e2e_sleeping, &b, E2E_UP_MS),
              "worker w0 never ran two jobs");
    pid_t kids[S_MAX_KIDS];
    int nk = dp_e2e_children(T.worker[0].pid, NULL, kids, S_MAX_KIDS);
    cr_assert_geq(nk, 2);
    cr_assert_eq(dp_e2e_stop(&T.e, T.worker[0].pid, SIGKILL, 1000),
                 128 + SIGKILL);
    e2e_gone_ctx_t g = {kids, nk};
    cr_assert(dp_e2e_wait_until(e2e_all_gone, &g, 3000),
              "children of the killed worker are still alive (orphans)");

    dp_e2e_run_t r = s_finish(&cl, 20000);
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = e2e_json_lines(&r, S_BATCH);
    bool seen[S_BATCH] = {false};
    int retried = 0;
    for (int k = 0; k < S_BATCH; k++) {
        cr_assert(dp_e2e_jtrue(l[k], "ok"), "%s", l[k]);
        long long i = dp_e2e_jint(l[k], "index");
        cr_assert(i >= 0 && i < S_BATCH && !seen[i], "index %lld twice", i);
        seen[i] = true;
        retried += dp_e2e_jint(l[k], "attempts") > 1;
    }
    cr_assert_geq(retried, 2, "the dead worker's running jobs were redone");
    free(l);
    dp_e2e_run_free(&r);
    cr_assert_geq(dp_e2e_stat(&T.e, T.ep, "lost"), 2);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "workers", 1, 1, S_LOSS_MS));
}

/* 7. the broker killed and restarted on the same port: the worker comes
 * back by itself and the new broker serves batches */
Test(faults, broker_restarted, .timeout = 40)
{
    e2e_pool(1, 1);
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "map", "echo", "before"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    dp_e2e_run_free(&r);
    cr_assert_eq(dp_e2e_stop(&T.e, T.broker.pid, SIGKILL, 1000), 128 + SIGKILL);
    int port = dp_e2e_ep_port(T.ep);
    cr_assert_gt(port, 0);
    char ep2[DP_E2E_EP_MAX];
    cr_assert_eq(dp_e2e_broker(&T.e, &T.broker, port, ep2, sizeof ep2), 0,
                 "no new broker on port %d", port);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "workers", 1, 1, 15000),
              "the worker did not rejoin the new broker");
    cr_assert(dp_e2e_alive(T.worker[0].pid), "the worker restarted");
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "--format", "json", "map", "echo",
                 "after"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = e2e_json_lines(&r, 1);
    char w[16];
    cr_assert_eq(dp_e2e_jstr(l[0], "worker", w, sizeof w), 0);
    cr_assert_str_eq(w, "w0");
    free(l);
    dp_e2e_run_free(&r);
}

/* 8. a client killed mid-batch: the broker notices (heartbeats), keeps
 * its session for --session-grace (it might come back), then cancels its
 * running jobs (their children are killed) and queues nothing */
Test(faults, client_killed_mid_batch, .timeout = 30)
{
    cr_assert_eq(dp_e2e_broker_with(&T.e, &T.broker, 0, T.ep, sizeof T.ep,
                                    ARGV("--session-grace", "500")),
                 0);
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 2, "w0", NULL), 0);
    e2e_workers_up(1);
    dp_e2e_proc_t cl;
    s_spawn_client(&cl, ARGV("dpool", "--broker", T.ep, "map", "sleep", "20000",
                             "20000", "20000"));
    s_running(2, T.worker[0].pid);
    pid_t kids[S_MAX_KIDS];
    int nk = dp_e2e_children(T.worker[0].pid, "cpu", kids, S_MAX_KIDS);
    cr_assert_eq(nk, 2);
    cr_assert_eq(dp_e2e_stop(&T.e, cl.pid, SIGKILL, 1000), 128 + SIGKILL);

    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "running", 0, 0, S_LOSS_MS),
              "the dead client's jobs still run");
    cr_assert_eq(dp_e2e_stat(&T.e, T.ep, "queued"), 0);
    e2e_gone_ctx_t g = {kids, nk};
    cr_assert(dp_e2e_wait_until(e2e_all_gone, &g, S_LOSS_MS),
              "the children running its jobs were not stopped");
    e2e_kids_ctx_t kc = {T.worker[0].pid, 2};
    cr_assert(dp_e2e_wait_until(e2e_has_kids, &kc, E2E_UP_MS));
    dp_e2e_run_t r;
    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "--broker", T.ep, "map", "echo", "next"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert_str_eq(r.out, "next: next\n");
    dp_e2e_run_free(&r);
}

/* 14. SIGINT to the client: exit 130 soon, running jobs cancelled */
Test(faults, sigint_cancels, .timeout = 30)
{
    e2e_pool(1, 2);
    dp_e2e_proc_t cl;
    s_spawn_client(
        &cl, ARGV("dpool", "--broker", T.ep, "map", "sleep", "20000", "20000"));
    s_running(2, T.worker[0].pid);
    pid_t kids[S_MAX_KIDS];
    int nk = dp_e2e_children(T.worker[0].pid, "cpu", kids, S_MAX_KIDS);
    cr_assert_eq(kill(cl.pid, SIGINT), 0);
    dp_e2e_run_t r = s_finish(&cl, 5000);
    cr_assert_eq(r.code, 130, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert(strstr(r.err, "interrupted"), "stderr:\n%s", r.err);
    dp_e2e_run_free(&r);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "running", 0, 0, 3000),
              "jobs still run after the interrupt");
    cr_assert_eq(dp_e2e_stat(&T.e, T.ep, "queued"), 0);
    e2e_gone_ctx_t g = {kids, nk};
    cr_assert(dp_e2e_wait_until(e2e_all_gone, &g, 3000),
              "the children running the cancelled jobs were not stopped");
}

/* 16. SIGTERM to a worker: the running job finishes, then it leaves
 * cleanly with no child left */
Test(faults, worker_sigterm_drains, .timeout = 30)
{
    cr_assert_eq(dp_e2e_broker(&T.e, &T.broker, 0, T.ep, sizeof T.ep), 0);
    cr_assert_eq(dp_e2e_worker(&T.e, &T.worker[0], T.ep, 1, "w0", "10"), 0);
    e2e_workers_up(1);
    dp_e2e_proc_t cl;
    s_spawn_client(&cl, ARGV("dpool", "--broker", T.ep, "--format", "json",
                             "map", "sleep", "1000"));
    s_running(1, T.worker[0].pid);
    pid_t kids[S_MAX_KIDS];
    int nk = dp_e2e_children(T.worker[0].pid, NULL, kids, S_MAX_KIDS);
    cr_assert_geq(nk, 1);
    cr_assert_eq(kill(T.worker[0].pid, SIGTERM), 0);
    int code = dp_e2e_wait(&T.e, T.worker[0].pid, 5000);
    cr_assert_eq(code, 0, "worker exit %d after SIGTERM", code);
    e2e_gone_ctx_t g = {kids, nk};
    cr_assert(dp_e2e_wait_until(e2e_all_gone, &g, 2000),
              "a child outlived its worker");

    dp_e2e_run_t r = s_finish(&cl, 5000);
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = e2e_json_lines(&r, 1);
    cr_assert(dp_e2e_jtrue(l[0], "ok"), "%s", l[0]);
    cr_assert_eq(dp_e2e_jint(l[0], "result"), 1000);
    cr_assert_eq(dp_e2e_jint(l[0], "attempts"), 1, "%s", l[0]);
    free(l);
    dp_e2e_run_free(&r);
    cr_assert(dp_e2e_wait_stat(&T.e, T.ep, "workers", 0, 0, 2000));
    cr_assert_eq(dp_e2e_stat(&T.e, T.ep, "requeued"), 0);
}

/* 9. the embedded pool of daemons (DPOOL_EMBED=daemons) leaves no process
 * and no temp dir.
 * Its processes are found as the client's children: counting /tmp/dpool-*
 * or all dpool-broker processes would race with other runs on this
 * machine. */
Test(faults, embedded_leaves_nothing, .timeout = 30)
{
    dp_e2e_proc_t cl;
    s_spawn_daemons(&cl, ARGV("dpool", "-p", "1", "--format", "json", "map",
                              "sleep", "700"));
    s_embed_ctx_t ec = {.client = cl.pid};
    char bind[256] = "", dir[256];
    s_embedded_running(&ec, bind, sizeof bind);
    snprintf(dir, sizeof dir, "%s", bind + 6);
    *strrchr(dir, '/') = '\0';
    struct stat st;
    cr_assert_eq(stat(dir, &st), 0, "no %s while it runs", dir);

    dp_e2e_run_t r = s_finish(&cl, 15000);
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = e2e_json_lines(&r, 1);
    cr_assert_eq(dp_e2e_jint(l[0], "result"), 700, "%s", l[0]);
    free(l);
    dp_e2e_run_free(&r);
    /* the client waits for its pool: nothing may be left once it exited */
    for (int k = 0; k < ec.n; k++)
        cr_assert(!dp_e2e_alive(ec.procs[k]), "pid %d outlived the client",
                  (int)ec.procs[k]);
    cr_assert_neq(stat(dir, &st), 0, "%s left behind", dir);

    e2e_run(&r, E2E_RUN_MS,
            ARGV("dpool", "-p", "1", "map", "echo", "a", "b", "c"));
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    cr_assert_str_eq(r.out, "a: a\nb: b\nc: c\n");
    dp_e2e_run_free(&r);
}

/* s_local_running: wait until the local pool of client (the default
 * embedded pool: its children are the client's own) runs the `sleep`
 * job; its cpu children into kids (up to S_MAX_KIDS), how many in *n. */
static void s_local_running(pid_t client, pid_t *kids, int *n)
{
    e2e_busy_ctx_t b = {client, 1};
    cr_assert(dp_e2e_wait_until(e2e_sleeping, &b, E2E_UP_MS),
              "the local pool of %d never ran its job", (int)client);
    *n = dp_e2e_children(client, "cpu", kids, S_MAX_KIDS);
    cr_assert_geq(*n, 1);
    pid_t any[S_MAX_KIDS];
    cr_assert_eq(dp_e2e_children(client, NULL, any, S_MAX_KIDS), *n,
                 "a local pool starts no broker or worker, only children");
}

/* 9d. the local pool: the client waits for its children when it ends,
 * they die with it when it is killed (PDEATHSIG from the thread that
 * started them), and go on SIGTERM. */
Test(faults, local_pool_leaves_nothing, .timeout = 30)
{
    dp_e2e_proc_t cl;
    s_spawn_client(&cl, ARGV("dpool", "-p", "1", "--format", "json", "map",
                             "sleep", "700"));
    pid_t kids[S_MAX_KIDS];
    int n = 0;
    s_local_running(cl.pid, kids, &n);
    dp_e2e_run_t r = s_finish(&cl, 15000);
    cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
    char **l = e2e_json_lines(&r, 1);
    cr_assert_eq(dp_e2e_jint(l[0], "result"), 700, "%s", l[0]);
    free(l);
    dp_e2e_run_free(&r);
    for (int k = 0; k < n; k++)
        cr_assert(!dp_e2e_alive(kids[k]), "child %d outlived the client",
                  (int)kids[k]);
}

Test(faults, local_pool_dies_with_client, .timeout = 30)
{
    dp_e2e_proc_t cl;
    s_spawn_client(&cl, ARGV("dpool", "-p", "2", "map", "sleep", "20000",
                             "20000", "20000"));
    pid_t kids[S_MAX_KIDS];
    int n = 0;
    s_local_running(cl.pid, kids, &n);
    cr_assert_eq(dp_e2e_stop(&T.e, cl.pid, SIGKILL, 1000), 128 + SIGKILL);
    e2e_gone_ctx_t g = {kids, n};
    cr_assert(dp_e2e_wait_until(e2e_all_gone, &g, 3000),
              "the local pool's children outlived their killed client");
}

Test(faults, local_pool_sigterm, .timeout = 30)
{
    dp_e2e_proc_t cl;
    s_spawn_client(&cl, ARGV("dpool", "-p", "1", "map", "sleep", "20000"));
    pid_t kids[S_MAX_KIDS];
    int n = 0;
    s_local_running(cl.pid, kids, &n);
    cr_assert_eq(kill(cl.pid, SIGTERM), 0);
    int code = dp_e2e_wait(&T.e, cl.pid, 5000);
    cr_assert(code == 130 || code == 143 || code == 1,
              "client exit %d after SIGTERM", code);
    e2e_gone_ctx_t g = {kids, n};
    cr_assert(dp_e2e_wait_until(e2e_all_gone, &g, 3000),
              "a child outlived its client");
}

/* s_environ_has: /proc/PID/environ holds the entry `var`. */
static bool s_environ_has(pid_t pid, const char *var)
{
    char path[64], buf[65536];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    for (size_t at = 0; at < n; at += strlen(buf + at) + 1) {
        buf[n] = '\0';
        if (strcmp(buf + at, var) == 0)
            return true;
    }
    return false;
}

/* A local pool's children get the client's environment without DPOOL_*
 * (those configure daemons: DPOOL_STORE_DIR would make downloads land on
 * disk), DPOOL_LOG excepted, and no descriptor of the client's beyond
 * 0-3 (stdin is /dev/null). */
Test(faults, local_pool_children_environment, .timeout = 30)
{
    setenv("DPOOL_STORE_DIR", "/nonexistent", 1);
    setenv("DPOOL_LOG", "warn", 1);
    setenv("DP_TEST_MARK", "1", 1);
    dp_e2e_proc_t cl;
    s_spawn_client(&cl, ARGV("dpool", "-p", "1", "map", "sleep", "20000"));
    unsetenv("DPOOL_STORE_DIR");
    unsetenv("DPOOL_LOG");
    unsetenv("DP_TEST_MARK");
    pid_t kids[S_MAX_KIDS];
    int n = 0;
    s_local_running(cl.pid, kids, &n);
    cr_expect(s_environ_has(cl.pid, "DPOOL_STORE_DIR=/nonexistent"),
              "the control: the client has it");
    cr_expect(s_environ_has(kids[0], "DP_TEST_MARK=1"));
    cr_expect(s_environ_has(kids[0], "DPOOL_LOG=warn"));
    cr_expect(!s_environ_has(kids[0], "DPOOL_STORE_DIR=/nonexistent"));
    char path[64], target[256] = "";
    snprintf(path, sizeof path, "/proc/%d/fd/0", (int)kids[0]);
    cr_expect(readlink(path, target, sizeof target - 1) > 0);
    cr_expect_str_eq(target, "/dev/null");
    snprintf(path, sizeof path, "/proc/%d/fd/4", (int)kids[0]);
    cr_expect(access(path, F_OK) != 0, "the child holds a descriptor 4");
    int code = dp_e2e_stop(&T.e, cl.pid, SIGTERM, 5000);
    cr_assert(code == 130 || code == 143 || code == 1,
              "client exit %d after SIGTERM", code);
}

/* 9b. an embedded client killed with SIGKILL: its broker, worker and the
 * worker's children die with it (PDEATHSIG). Its temp dir cannot be
 * removed by anyone then; the test removes it. */
Test(faults, embedded_dies_with_client, .timeout = 30)
{
    dp_e2e_proc_t cl;
    s_spawn_daemons(&cl, ARGV("dpool", "-p", "1", "map", "sleep", "20000"));
    s_embed_ctx_t ec = {.client = cl.pid};
    char bind[256] = "";
    s_embedded_running(&ec, bind, sizeof bind);
    cr_assert_eq(dp_e2e_stop(&T.e, cl.pid, SIGKILL, 1000), 128 + SIGKILL);
    e2e_gone_ctx_t g = {ec.procs, ec.n};
    cr_assert(dp_e2e_wait_until(e2e_all_gone, &g, 3000),
              "the embedded pool outlived its killed client");
    unlink(bind + 6);
    *strrchr(bind, '/') = '\0';
    rmdir(bind + 6);
}

/* 9c. SIGTERM to an embedded client (what timeout(1), CI runners and
 * service managers send): the pool stops and its temp dir goes. Before
 * fbc33ab the client had a SIGINT handler only and left /tmp/dpool-XXXXXX
 * with its socket behind; kept as a regression test. */
Test(faults, embedded_sigterm_cleans_up, .timeout = 30)
{
    dp_e2e_proc_t cl;
    s_spawn_daemons(&cl, ARGV("dpool", "-p", "1", "map", "sleep", "20000"));
    s_embed_ctx_t ec = {.client = cl.pid};
    char bind[256] = "";
    s_embedded_running(&ec, bind, sizeof bind);
    cr_assert_eq(kill(cl.pid, SIGTERM), 0);
    int code = dp_e2e_wait(&T.e, cl.pid, 5000);
    e2e_gone_ctx_t g = {ec.procs, ec.n};
    bool gone = dp_e2e_wait_until(e2e_all_gone, &g, 3000);
    /* remove what is left before asserting, so no run leaks a dir */
    bool left = unlink(bind + 6) == 0;
    *strrchr(bind, '/') = '\0';
    left |= rmdir(bind + 6) == 0;
    cr_assert(code == 130 || code == 143 || code == 1,
              "client exit %d after SIGTERM", code);
    cr_assert(gone, "the embedded pool outlived its client");
    cr_assert(!left, "%s left behind", bind + 6);
}
