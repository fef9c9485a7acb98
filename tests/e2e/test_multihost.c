/*
 * test_multihost.c - dpool across "hosts" on one machine: network
 * namespaces joined by a bridge.
 *
 *   NET-sw   the switch: bridge br0 and one veth per host (v-br, v-a, ...)
 *   NET-br   10.213.0.1  dpool-broker --bind tcp://0.0.0.0:5555 --curve-key
 *   NET-a    10.213.0.2  dpool-worker --name hostA -p 2
 *   NET-b    10.213.0.3  dpool-worker --name hostB -p 2
 *   NET-cl   10.213.0.4  the dpool client
 *
 * Everything runs with CURVE (issue 10): the test makes the keys with
 * `dpool keygen` (broker; client "client"; workers "hostA", "hostB", so the
 * key names are the names results carry).
 *
 * NET is "dpmh<pid>", so runs never share a name, and every link lives in
 * those namespaces: nothing touches the machine's own network, and
 * deleting the namespaces removes the bridge and the veths with them.
 * Cleanup runs in the fixture's teardown (also after a failed assert);
 * a guard process deletes the namespaces if the test process is killed
 * (Criterion timeout), and namespaces left by a dead run are removed at
 * the next start.
 *
 * Needs root and `ip netns`; skipped (with the reason) otherwise.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS_PREFIX "dpmh"
#define NS_RUN_DIR "/run/netns"
#define SUBNET_PREFIX "10.213.0."
#define PORT "5555"
#define HEARTBEAT_MS "300" /* a peer is dead after 3 missed: ~0.9 s */
#define POLL_MS 50
#define UP_MS 8000      /* broker and workers joined */
#define REJOIN_MS 20000 /* worker back after its link returns */
#define STOP_MS 3000    /* SIGTERM -> SIGKILL */
#define CMD_MS 5000     /* one ip / status command */
#define MAX_PROCS 16

enum { H_SW, H_BR, H_A, H_B, H_CL, H_N };
static const char *const s_suffix[H_N] = {"sw", "br", "a", "b", "cl"};
static const char *const s_addr[H_N] = {NULL, SUBNET_PREFIX "1",
                                        SUBNET_PREFIX "2", SUBNET_PREFIX "3",
                                        SUBNET_PREFIX "4"};

static struct {
    char ns[H_N][32];
    bool made[H_N];
    char dir[PATH_MAX];
    char ep[64];
    pid_t procs[MAX_PROCS];
    int nprocs;
    pid_t guard;
    int guard_fd;
    unsigned seq;
} N = {.guard = -1, .guard_fd = -1};

/* ---- time and processes ---- */

static long long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int s_status_code(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* s_spawn: fork+exec argv (PATH lookup) with stdout to out (NULL:
 * /dev/null) and stderr appended to DIR/log. The child dies with us. */
static pid_t s_spawn(const char *const argv[], const char *out)
{
    char log[PATH_MAX + 8];
    snprintf(log, sizeof log, "%s/log", N.dir);
    pid_t self = getpid(), pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != self)
        _exit(127);
    int in = open("/dev/null", O_RDONLY);
    int o = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e =
        open(N.dir[0] ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || o < 0 || e < 0)
        _exit(127);
    dup2(in, 0);
    dup2(o, 1);
    dup2(e, 2);
    closefrom(3);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

/* s_wait: reap pid within timeout_ms; its status code, or -1 (still
 * running, left so). */
static int s_wait(pid_t pid, int timeout_ms)
{
    long long end = s_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return s_status_code(st);
        if (r < 0)
            return -1;
        if (s_now_ms() >= end)
            return -1;
        s_sleep_ms(10);
    }
}

static int s_kill_wait(pid_t pid, int sig)
{
    kill(pid, sig);
    int rc = s_wait(pid, STOP_MS);
    if (rc < 0) {
        kill(pid, SIGKILL);
        rc = s_wait(pid, STOP_MS);
    }
    return rc;
}

/* s_run: run argv to the end (killed after timeout_ms: -1). */
static int s_run(const char *const argv[], const char *out, int timeout_ms)
{
    pid_t pid = s_spawn(argv, out);
    if (pid < 0)
        return -1;
    int rc = s_wait(pid, timeout_ms);
    if (rc < 0)
        s_kill_wait(pid, SIGKILL), rc = -1;
    return rc;
}

/* s_ip: `ip ARG...` (NULL-terminated), its exit status. */
static int s_ip(const char *arg, ...)
{
    const char *argv[32] = {"ip"};
    int n = 1;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < 31; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return s_run(argv, NULL, CMD_MS);
}

/* s_track: remember a long-running process for the teardown. */
static void s_track(pid_t pid)
{
    cr_assert(pid > 0 && N.nprocs < MAX_PROCS, "cannot start a process");
    N.procs[N.nprocs++] = pid;
}

static void s_untrack(pid_t pid)
{
    for (int k = 0; k < N.nprocs; k++)
        if (N.procs[k] == pid)
            N.procs[k] = N.procs[--N.nprocs];
}

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t len = 0, cap = 4096;
    char *s = malloc(cap);
    cr_assert(s);
    if (f) {
        size_t n;
        while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
            len += n;
            if (cap - len < 2) {
                cap *= 2;
                s = realloc(s, cap);
                cr_assert(s);
            }
        }
        fclose(f);
    }
    s[len] = '\0';
    return s;
}

/* ---- namespaces ---- */

static bool s_ns_exists(const char *name)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, NS_RUN_DIR "/%s", name);
    return access(p, F_OK) == 0;
}

/* s_remove_stale: namespaces of earlier runs whose process is gone. */
static void s_remove_stale(void)
{
    DIR *d = opendir(NS_RUN_DIR);
    if (!d)
        return;
    struct dirent *de;
    char names[64][64];
    int n = 0;
    while ((de = readdir(d)) && n < 64) {
        char *end;
        if (strlen(de->d_name) >= sizeof names[0] ||
            strncmp(de->d_name, NS_PREFIX, strlen(NS_PREFIX)) != 0)
            continue;
        long pid = strtol(de->d_name + strlen(NS_PREFIX), &end, 10);
        if (end == de->d_name + strlen(NS_PREFIX) || *end != '-' || pid <= 0 ||
            pid == getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        memcpy(names[n++], de->d_name, strlen(de->d_name) + 1);
    }
    closedir(d);
    for (int k = 0; k < n; k++)
        s_ip("netns", "del", names[k], NULL);
}

/* s_rm_dir: the temp dir and its files (kept with $DP_E2E_KEEP). */
static void s_rm_dir(void)
{
    if (!N.dir[0])
        return;
    if (getenv("DP_E2E_KEEP")) {
        fprintf(stderr, "multihost: logs kept in %s\n", N.dir);
        return;
    }
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "rm -rf '%s/keys'", N.dir);
    if (system(p) != 0)
        fprintf(stderr, "multihost: cannot remove %s/keys\n", N.dir);
    const char *files[] = {"log", "out", "status"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        snprintf(p, sizeof p, "%s/%s", N.dir, files[k]);
        unlink(p);
    }
    rmdir(N.dir);
}

/* s_guard: a process that deletes our namespaces when we die without a
 * teardown (its pipe closes). It keeps no other descriptor of ours. */
static void s_guard(void)
{
    int p[2];
    cr_assert(pipe(p) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setsid();
        dup2(p[0], 3);
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
        closefrom(4);
        char c;
        while (read(3, &c, 1) != 0 && errno == EINTR)
            ;
        for (int h = H_N - 1; h >= 0; h--) {
            if (!s_ns_exists(N.ns[h]))
                continue;
            pid_t k = fork();
            if (k == 0) {
                execlp("ip", "ip", "netns", "del", N.ns[h], (char *)NULL);
                _exit(127);
            }
            if (k > 0)
                waitpid(k, NULL, 0);
        }
        s_rm_dir();
        _exit(0);
    }
    close(p[0]);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    N.guard = pid;
    N.guard_fd = p[1];
}

static void s_net_down(void)
{
    /* processes first: a namespace lives while a process is in it */
    while (N.nprocs > 0)
        s_kill_wait(N.procs[--N.nprocs], SIGTERM);
    for (int h = H_N - 1; h >= 0; h--) {
        if (N.made[h] && s_ns_exists(N.ns[h]))
            s_ip("netns", "del", N.ns[h], NULL);
        N.made[h] = false;
    }
    if (N.guard_fd >= 0) {
        close(N.guard_fd);
        N.guard_fd = -1;
    }
    if (N.guard > 0) {
        /* it deletes what is left (nothing by now) and leaves */
        if (s_wait(N.guard, STOP_MS) < 0)
            s_kill_wait(N.guard, SIGKILL);
        N.guard = -1;
    }
    s_rm_dir();
    N.dir[0] = '\0';
}

/* s_net_up: the five namespaces, the bridge and the veths; skips the test
 * when it cannot run here. */
static void s_net_up(void)
{
    if (geteuid() != 0)
        cr_skip_test("multihost: needs root (network namespaces)");
    if (s_run((const char *const[]){"ip", "-V", NULL}, NULL, CMD_MS) != 0)
        cr_skip_test("multihost: `ip` (iproute2) not found");
    snprintf(N.dir, sizeof N.dir, "/tmp/dpool-multihost-XXXXXX");
    cr_assert(mkdtemp(N.dir), "mkdtemp: %s", strerror(errno));
    s_remove_stale();
    for (int h = 0; h < H_N; h++)
        snprintf(N.ns[h], sizeof N.ns[h], NS_PREFIX "%d-%s", (int)getpid(),
                 s_suffix[h]);
    s_guard();
    if (s_ip("netns", "add", N.ns[H_SW], NULL) != 0) {
        s_net_down(); /* no teardown after a skip */
        cr_skip_test("multihost: `ip netns add` does not work here "
                     "(no CAP_SYS_ADMIN / CAP_NET_ADMIN?)");
    }
    N.made[H_SW] = true;
    const char *sw = N.ns[H_SW];
    cr_assert_eq(s_ip("-n", sw, "link", "add", "br0", "type", "bridge", NULL),
                 0, "cannot create a bridge");
    cr_assert_eq(s_ip("-n", sw, "link", "set", "br0", "up", NULL), 0);
    for (int h = H_BR; h < H_N; h++) {
        char veth[16], cidr[32];
        snprintf(veth, sizeof veth, "v-%s", s_suffix[h]);
        snprintf(cidr, sizeof cidr, "%s/24", s_addr[h]);
        cr_assert_eq(s_ip("netns", "add", N.ns[h], NULL), 0);
        N.made[h] = true;
        cr_assert_eq(s_ip("-n", sw, "link", "add", veth, "type", "veth", "peer",
                          "name", "eth0", "netns", N.ns[h], NULL),
                     0, "cannot create veth %s", veth);
        cr_assert_eq(
            s_ip("-n", sw, "link", "set", veth, "master", "br0", "up", NULL),
            0);
        cr_assert_eq(
            s_ip("-n", N.ns[h], "addr", "add", cidr, "dev", "eth0", NULL), 0);
        cr_assert_eq(s_ip("-n", N.ns[h], "link", "set", "eth0", "up", NULL), 0);
        cr_assert_eq(s_ip("-n", N.ns[h], "link", "set", "lo", "up", NULL), 0);
    }
    snprintf(N.ep, sizeof N.ep, "tcp://%s:" PORT, s_addr[H_BR]);
}

/* s_exec_in: `ip netns exec NS DP_BIN_DIR/prog ARG...`, stdout to out. */
static pid_t s_exec_in(int h, const char *out, const char *const args[])
{
    const char *argv[64] = {"ip", "netns", "exec", N.ns[h]};
    int n = 4;
    char prog[PATH_MAX];
    snprintf(prog, sizeof prog, DP_BIN_DIR "/%s", args[0]);
    argv[n++] = prog;
    for (int k = 1; args[k] && n < 63; k++)
        argv[n++] = args[k];
    argv[n] = NULL;
    return s_spawn(argv, out);
}

/* ---- broker status ---- */

static long long s_jint(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : LLONG_MIN;
}

/* ---- CURVE keys (issue 10) ---- */

static struct {
    char dir[PATH_MAX + 8], bkey[PATH_MAX + 32], bpub[PATH_MAX + 32];
    char clients[PATH_MAX + 16], workers[PATH_MAX + 16];
    char client[PATH_MAX + 48], host_a[PATH_MAX + 48], host_b[PATH_MAX + 48];
} K;

static void s_keygen(const char *dir, const char *names)
{
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd,
             DP_BIN_DIR "/dpool keygen --out '%s' %s >/dev/null", dir, names);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void s_make_keys(void)
{
    snprintf(K.dir, sizeof K.dir, "%s/keys", N.dir);
    snprintf(K.bkey, sizeof K.bkey, "%s/broker.key", K.dir);
    snprintf(K.bpub, sizeof K.bpub, "%s/broker.pub", K.dir);
    snprintf(K.clients, sizeof K.clients, "%s/clients", K.dir);
    snprintf(K.workers, sizeof K.workers, "%s/workers", K.dir);
    snprintf(K.client, sizeof K.client, "%s/client.key", K.clients);
    snprintf(K.host_a, sizeof K.host_a, "%s/hostA.key", K.workers);
    snprintf(K.host_b, sizeof K.host_b, "%s/hostB.key", K.workers);
    s_keygen(K.dir, "broker");
    s_keygen(K.clients, "client");
    s_keygen(K.workers, "hostA hostB");
}

/* s_stat: one broker counter, asked from the client host; -1 if no
 * answer. */
static long long s_stat(const char *key)
{
    char out[PATH_MAX + 8];
    snprintf(out, sizeof out, "%s/status", N.dir);
    const char *args[] = {"dpool",  "--broker",     N.ep,   "--curve-key",
                          K.client, "--broker-key", K.bpub, "--connect-timeout",
                          "2",      "--format",     "json", "status",
                          NULL};
    pid_t pid = s_exec_in(H_CL, out, args);
    int rc = pid > 0 ? s_wait(pid, CMD_MS) : -1;
    if (pid > 0 && rc < 0)
        s_kill_wait(pid, SIGKILL);
    if (rc != 0)
        return -1;
    char *json = s_slurp(out);
    long long v = s_jint(json, key);
    free(json);
    return v == LLONG_MIN ? -1 : v;
}

static bool s_wait_stat(const char *key, long long want, int timeout_ms)
{
    long long end = s_now_ms() + timeout_ms;
    do {
        if (s_stat(key) == want)
            return true;
        s_sleep_ms(POLL_MS);
    } while (s_now_ms() < end);
    return false;
}

/* ---- the cluster ---- */

static void s_start_cluster(void)
{
    s_make_keys();
    const char *broker[] = {
        "dpool-broker",  "--bind",        "tcp://0.0.0.0:" PORT,
        "--heartbeat",   HEARTBEAT_MS,    "--curve-key",
        K.bkey,          "--client-keys", K.clients,
        "--worker-keys", K.workers,       NULL};
    s_track(s_exec_in(H_BR, NULL, broker));
    const char *wa[] = {"dpool-worker",
                        "--connect",
                        N.ep,
                        "--name",
                        "hostA",
                        "-p",
                        "2",
                        "--io-slots",
                        "1",
                        "--grace",
                        "2",
                        "--curve-key",
                        K.host_a,
                        "--broker-key",
                        K.bpub,
                        NULL};
    const char *wb[] = {"dpool-worker",
                        "--connect",
                        N.ep,
                        "--name",
                        "hostB",
                        "-p",
                        "2",
                        "--io-slots",
                        "1",
                        "--grace",
                        "2",
                        "--curve-key",
                        K.host_b,
                        "--broker-key",
                        K.bpub,
                        NULL};
    s_track(s_exec_in(H_A, NULL, wa));
    s_track(s_exec_in(H_B, NULL, wb));
    cr_assert(s_wait_stat("workers", 2, UP_MS),
              "the broker did not see both workers within %d ms (workers=%lld)",
              UP_MS, s_stat("workers"));
}

/* A batch of `sleep` jobs from the client host, --unordered, JSON. */
typedef struct {
    pid_t pid;
    char out[PATH_MAX + 8];
} s_batch_t;

static void s_batch_start(s_batch_t *b, int njobs, const char *ms)
{
    const char *args[64] = {"dpool",       "--broker", N.ep,
                            "--format",    "json",     "--unordered",
                            "--curve-key", K.client,   "--broker-key",
                            K.bpub,        "map",      "sleep"};
    int n = 12;
    for (int k = 0; k < njobs && n < 63; k++)
        args[n++] = ms;
    args[n] = NULL;
    snprintf(b->out, sizeof b->out, "%s/out", N.dir);
    b->pid = s_exec_in(H_CL, b->out, args);
    s_track(b->pid);
}

typedef struct {
    int lines, ok, per_index[64], by_a, by_b;
} s_tally_t;

static void s_tally(const char *text, s_tally_t *t)
{
    memset(t, 0, sizeof *t);
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 1023 ? len : 1023), line);
        if (len > 0) {
            t->lines++;
            long long i = s_jint(buf, "index");
            if (i >= 0 && i < 64)
                t->per_index[i]++;
            if (strstr(buf, "\"ok\":true"))
                t->ok++;
            if (strstr(buf, "\"worker\":\"hostA\""))
                t->by_a++;
            if (strstr(buf, "\"worker\":\"hostB\""))
                t->by_b++;
        }
        line += len + (nl ? 1 : 0);
    }
}

/* s_batch_end: wait for the client, check one ok result per job. */
static void s_batch_end(s_batch_t *b, int njobs, int timeout_ms, s_tally_t *t)
{
    int rc = s_wait(b->pid, timeout_ms);
    if (rc < 0)
        s_kill_wait(b->pid, SIGKILL);
    s_untrack(b->pid);
    char *text = s_slurp(b->out);
    s_tally(text, t);
    cr_assert_eq(rc, 0, "client exit %d (-1: over %d ms); output:\n%s", rc,
                 timeout_ms, text);
    cr_assert_eq(t->lines, njobs, "%d results for %d jobs:\n%s", t->lines,
                 njobs, text);
    cr_assert_eq(t->ok, njobs, "not all ok:\n%s", text);
    for (int k = 0; k < njobs; k++)
        cr_assert_eq(t->per_index[k], 1, "index %d: %d results:\n%s", k,
                     t->per_index[k], text);
    free(text);
}

static void s_fini(void)
{
    s_net_down();
}

TestSuite(multihost, .fini = s_fini);

Test(multihost, batch_spreads_over_two_hosts, .timeout = 20)
{
    s_net_up();
    s_start_cluster();
    s_batch_t b;
    s_tally_t t;
    long long t0 = s_now_ms();
    s_batch_start(&b, 20, "200");
    s_batch_end(&b, 20, 15000, &t);
    cr_assert(t.by_a > 0 && t.by_b > 0,
              "results from hostA: %d, hostB: %d (both expected)", t.by_a,
              t.by_b);
    cr_log_info("20 x sleep 200 on 2 hosts x 2 slots: %lld ms (hostA %d, "
                "hostB %d)",
                s_now_ms() - t0, t.by_a, t.by_b);
}

/* hostA loses its link mid-batch: its jobs go to hostB after heartbeat
 * loss, each job gives one result; the link returns, hostA rejoins and
 * takes work again. */
Test(multihost, link_cut_requeues_then_worker_rejoins, .timeout = 38)
{
    s_net_up();
    s_start_cluster();

    s_batch_t b;
    s_tally_t t;
    s_batch_start(&b, 16, "1000");
    /* cut once hostA has finished a job (so it holds more: running ones
     * and its lookahead) and the batch is far from done */
    long long end = s_now_ms() + 10000;
    bool cut = false;
    while (!cut && s_now_ms() < end) {
        char *text = s_slurp(b.out);
        s_tally(text, &t);
        free(text);
        if (t.by_a > 0) {
            cr_assert_lt(t.lines, 12, "batch nearly done before the cut");
            cr_assert_eq(
                s_ip("-n", N.ns[H_SW], "link", "set", "v-a", "down", NULL), 0,
                "cannot cut hostA's link");
            cut = true;
        } else {
            s_sleep_ms(POLL_MS);
        }
    }
    cr_assert(cut, "hostA gave no result within 10 s");
    long long t_cut = s_now_ms();
    s_batch_end(&b, 16, 20000, &t);
    cr_log_info("batch done %lld ms after the cut (hostA %d, hostB %d)",
                s_now_ms() - t_cut, t.by_a, t.by_b);
    cr_assert_gt(s_stat("requeued"), 0, "no job was requeued");
    cr_assert(s_wait_stat("workers", 1, 5000),
              "the broker still counts hostA (workers=%lld)",
              s_stat("workers"));

    cr_assert_eq(s_ip("-n", N.ns[H_SW], "link", "set", "v-a", "up", NULL), 0);
    long long t_up = s_now_ms();
    cr_assert(s_wait_stat("workers", 2, REJOIN_MS),
              "hostA did not rejoin within %d ms of its link returning",
              REJOIN_MS);
    cr_log_info("hostA rejoined %lld ms after its link returned",
                s_now_ms() - t_up);

    s_batch_start(&b, 20, "200");
    s_batch_end(&b, 20, 15000, &t);
    cr_assert_gt(t.by_a, 0, "hostA took no job after rejoining (hostB %d)",
                 t.by_b);
}

/* Secure by default across hosts: without keys the broker refuses to
 * listen on its 10.x address (exit 2), and a worker with a key the broker
 * does not list never joins. */
Test(multihost, plaintext_refused_across_hosts, .timeout = 30)
{
    s_net_up();
    const char *plain[] = {"dpool-broker", "--bind", "tcp://0.0.0.0:" PORT,
                           NULL};
    pid_t pid = s_exec_in(H_BR, NULL, plain);
    cr_assert_eq(s_wait(pid, CMD_MS), 2, "a keyless broker did not exit 2");
    s_start_cluster();
    char rogue[PATH_MAX + 16];
    snprintf(rogue, sizeof rogue, "%s/rogue", N.dir);
    s_keygen(rogue, "hostC");
    char rkey[PATH_MAX + 32];
    snprintf(rkey, sizeof rkey, "%s/hostC.key", rogue);
    const char *wc[] = {"dpool-worker", "--connect",    N.ep,   "--curve-key",
                        rkey,           "--broker-key", K.bpub, NULL};
    s_track(s_exec_in(H_CL, NULL, wc));
    const char *wd[] = {"dpool-worker", "--connect", N.ep, NULL};
    s_track(s_exec_in(H_CL, NULL, wd));
    s_sleep_ms(1500);
    cr_assert_eq(s_stat("workers"), 2);
    cr_assert_geq(s_stat("denied_keys"), 1);
    cr_assert_eq(s_stat("bad_messages"), 0);
    snprintf(rogue, sizeof rogue, "rm -rf '%s/rogue'", N.dir);
    cr_assert_eq(system(rogue), 0);
}
