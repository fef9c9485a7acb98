/* main.c - dpool-worker: options, signals, run the agent; and the agent's
 * two child programs.
 *
 * Built three times from one options table (the agent passes its children
 * one argument list and its environment, so they parse what it parsed):
 *   dpool-worker      the agent: the broker connection (ZeroMQ, CURVE)
 *   dpool-worker-cpu  with DP_WORKER_CPU, the cpu child (`--child cpu`)
 *   dpool-worker-io   with DP_WORKER_IO, the io child (`--child io`), the
 *                     only program that links the download engine and so
 *                     libcurl
 * The agent starts both from its own directory. A child speaks to its
 * agent over fd 3 only, so the child builds reference no agent code and
 * nothing of dp_keys or dp_zsock: their programs load neither libzmq's
 * library tree (~15 libraries) nor, but for the io child, libcurl's. Each
 * costs every process that loads it milliseconds of start-up, and the
 * children start on the critical path of an embedded pool's first job. */
#ifdef DP_WORKER_IO
#include <curl/curl.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "dl_guard.h"
#include "dp_agent.h"
#include "dp_keys.h"
#include "dp_log.h"
#include "dp_opt.h"

#define S_NAME_MAX 64
#if defined(DP_WORKER_IO) || defined(DP_WORKER_CPU)
#define S_CHILD_BUILD 1
#endif
#ifdef DP_WORKER_IO
#define S_PROG DP_IO_CHILD_PROG
#define S_KIND "io"
#elif defined(DP_WORKER_CPU)
#define S_PROG DP_CPU_CHILD_PROG
#define S_KIND "cpu"
#else
#define S_PROG "dpool-worker"
#endif

#ifndef S_CHILD_BUILD
static int s_sig_pipe[2] = {-1, -1};

static void s_on_signal(int sig)
{
    int saved = errno;
    char c = sig == SIGCHLD ? 'C' : 'T';
    ssize_t rc = write(s_sig_pipe[1], &c, 1);
    (void)rc;
    errno = saved;
}
#endif

#ifdef S_CHILD_BUILD
/* s_child: serve the agent on DP_CHILD_FD as its S_KIND child; returns
 * the exit status. */
static int s_child(const char *kind, dp_agent_cfg_t *cfg, long parent)
{
    if (strcmp(kind, S_KIND) != 0) {
        fprintf(stderr, S_PROG ": --child takes " S_KIND "\n");
        return 2;
    }
    /* a child leaves with its agent, and ignores the terminal's Ctrl-C:
     * the agent decides when children stop */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent > 0 && getppid() != (pid_t)parent)
        return 1;
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
#ifdef DP_WORKER_IO
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return dp_child_io_main(DP_CHILD_FD, &cfg->child);
#else
    return dp_child_cpu_main(DP_CHILD_FD, &cfg->child);
#endif
}
#endif

/* s_security: the download guard from --allow-net, set up in every
 * program: the children use it, the agent checks the list before anything
 * starts (and passes it on, s_agent_security). An embedded pool (the
 * user's own machine) allows any address. Returns -1 to go on, or the
 * exit code. */
static int s_security(dp_agent_cfg_t *cfg, dp_optlist_t *allow, bool embedded)
{
    static dp_guard_t guard;
    static const char *const everything[] = {"0.0.0.0/0", "::/0"};
    char err[DP_KEY_ERR_MAX];
    if (embedded) { /* plaintext, any address */
        /* a list from DPOOL_ALLOW_NET (an embedded agent's children get
         * one) is dp_opt's copy: kept reachable for LeakSanitizer */
        static const char *replaced;
        replaced = allow->n ? allow->v[0] : NULL;
        (void)replaced;
        cfg->curve_key = cfg->broker_key = NULL;
        allow->n = 0;
        for (size_t k = 0; k < 2; k++)
            allow->v[allow->n++] = everything[k];
    }
    if (dp_guard_init(&guard, allow->v, (size_t)allow->n, err, sizeof err)) {
        fprintf(stderr, S_PROG ": %s\n", err);
        return 2;
    }
    cfg->child.guard = &guard;
    return -1;
}

#ifndef S_CHILD_BUILD
/* s_agent_security: the allow list passed on to the children through
 * DPOOL_ALLOW_NET (they parse the same options), and the CURVE key files
 * checked now rather than at each reconnect. The agent's alone: dp_keys
 * is ZeroMQ's, which the child programs do not load. Returns -1 to go on,
 * or the exit code. */
static int s_agent_security(dp_agent_cfg_t *cfg, const dp_optlist_t *allow)
{
    char err[DP_KEY_ERR_MAX];
    char joined[DP_OPT_LIST_MAX * DP_GUARD_ADDR_MAX] = "";
    for (int k = 0; k < allow->n; k++)
        snprintf(joined + strlen(joined), sizeof joined - strlen(joined),
                 "%s%s", k ? "," : "", allow->v[k]);
    setenv("DPOOL_ALLOW_NET", joined, 1);
    dp_keypair_t kp;
    char pub[DP_KEY_Z85_LEN + 1];
    bool key = cfg->curve_key && cfg->curve_key[0];
    bool bkey = cfg->broker_key && cfg->broker_key[0];
    int rc = key != bkey ? DP_ERR_INVALID : 0;
    if (rc)
        snprintf(err, sizeof err, "--curve-key and --broker-key go together");
    if (!rc && key)
        rc = dp_keys_load_secret(cfg->curve_key, &kp, err, sizeof err);
    if (!rc && bkey)
        rc = dp_keys_load_public(cfg->broker_key, pub, err, sizeof err);
    memset(&kp, 0, sizeof kp);
    if (rc) {
        fprintf(stderr, "dpool-worker: %s\n", err);
        return 2;
    }
    return -1;
}

static int s_run_agent(dp_agent_cfg_t *cfg, long parent)
{
    if (parent > 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != (pid_t)parent)
            return 0;
    }
    if (pipe2(s_sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return 1;
    struct sigaction sa = {.sa_handler = s_on_signal,
                           .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    dp_agent_t *a = dp_agent_new(cfg);
    if (!a)
        return 1;
    int rc = dp_agent_run(a, s_sig_pipe[0]);
    dp_agent_destroy(&a);
    return rc ? 1 : 0;
}

/* s_check_children: the child programs the agent will start are there:
 * an installation without them is said at once, not by a child failing
 * to start every DP_RESPAWN_MIN_MS. Returns -1 to go on, or the exit
 * code. */
static int s_check_children(const dp_agent_cfg_t *cfg)
{
    const char *exe[] = {cfg->processes > 0 ? cfg->cpu_exe : NULL,
                         cfg->io_slots > 0 ? cfg->io_exe : NULL};
    for (size_t k = 0; k < sizeof exe / sizeof exe[0]; k++) {
        if (exe[k] && access(exe[k], X_OK) != 0) {
            fprintf(stderr,
                    S_PROG ": cannot run %s: %s (the child programs "
                           "are installed beside " S_PROG ")\n",
                    exe[k], strerror(errno));
            return 1;
        }
    }
    return -1;
}

/* s_beside: the path of program name in self's directory, written to
 * path (the children are installed beside the agent). */
static const char *s_beside(const char *self, const char *name, char *path,
                            size_t len)
{
    const char *slash = strrchr(self, '/');
    int n = slash ? (int)(slash - self) + 1 : 0;
    snprintf(path, len, "%.*s%s", n, self, name);
    return path;
}
#endif

int main(int argc, char **argv)
{
    static char host[S_NAME_MAX];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "worker");
    host[sizeof host - 1] = '\0';
    static char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
#ifndef S_CHILD_BUILD
    static char cpu_exe[PATH_MAX], io_exe[PATH_MAX];
#endif
    dp_agent_cfg_t cfg = {
        .connect = DP_AGENT_CONNECT_DEFAULT,
        .processes = sysconf(_SC_NPROCESSORS_ONLN),
        .io_slots = DP_IO_SLOTS_DEFAULT,
        .drain_grace_s = DP_DRAIN_GRACE_S_DEFAULT,
        .prefetch = DP_PREFETCH_DEFAULT,
#ifndef S_CHILD_BUILD
        .cpu_exe = s_beside(self, DP_CPU_CHILD_PROG, cpu_exe, sizeof cpu_exe),
        .io_exe = s_beside(self, DP_IO_CHILD_PROG, io_exe, sizeof io_exe),
#endif
        .child = {.name = host,
                  .limits = {DP_HASH_MAX_ITERATIONS_DEFAULT,
                             DP_HASH_MAX_DKLEN_DEFAULT,
                             DP_DOWNLOAD_MAX_BYTES_DEFAULT},
                  .wire = dp_limits_default()},
    };
    long parent = 0, iters = (long)cfg.child.limits.hash_max_iterations,
         dklen = (long)cfg.child.limits.hash_max_dklen,
         dlmax = (long)cfg.child.limits.download_max_bytes,
         maxmsg = (long)cfg.child.wire.max_msg_bytes;
    const char *child = NULL, *level = NULL;
    bool help = false, version = false, embedded = false;
    /* static: its strings may point into dp_opt's copy of DPOOL_ALLOW_NET,
     * kept for the life of the program (and reachable, for LeakSanitizer) */
    static dp_optlist_t allow;
    const dp_opt_t opts[] = {
        {"connect", 'c', "DPOOL_BROKER", DP_OPT_STR, &cfg.connect, 0, 0,
         "ENDPOINT", "broker to serve (default " DP_AGENT_CONNECT_DEFAULT ")"},
        {"processes", 'p', "DPOOL_PROCESSES", DP_OPT_LONG, &cfg.processes, 0,
         4096, "N", "cpu child processes (default: cores; 0: io only)"},
        {"io-slots", 0, "DPOOL_IO_SLOTS", DP_OPT_LONG, &cfg.io_slots, 0, 4096,
         "N", "downloads at once in the io child (16; 0: none)"},
        {"name", 'n', "DPOOL_NAME", DP_OPT_STR, &cfg.child.name, 0, 0, "NAME",
         "name shown in results and logs (default: host name)"},
        {"max-jobs-per-child", 0, "DPOOL_MAX_JOBS_PER_CHILD", DP_OPT_LONG,
         &cfg.max_jobs_per_child, 0, LONG_MAX, "N",
         "replace a child after N jobs (0: never)"},
        {"prefetch", 0, "DPOOL_PREFETCH", DP_OPT_LONG, &cfg.prefetch, 0, 4096,
         "N", "jobs a cpu child may hold when they are short (64; 0: off)"},
        {"grace", 0, "DPOOL_GRACE", DP_OPT_DOUBLE, &cfg.drain_grace_s, 0, 0,
         "SECONDS", "on SIGTERM, time running jobs get to finish (30)"},
        {"hash-max-iterations", 0, "DPOOL_HASH_MAX_ITERATIONS", DP_OPT_LONG,
         &iters, 1, LONG_MAX, "N", "PBKDF2 iteration ceiling"},
        {"hash-max-dklen", 0, "DPOOL_HASH_MAX_DKLEN", DP_OPT_LONG, &dklen, 1,
         LONG_MAX, "BYTES", "PBKDF2 derived key ceiling"},
        {"max-download", 0, "DPOOL_MAX_DOWNLOAD", DP_OPT_LONG, &dlmax, 1,
         LONG_MAX, "BYTES", "largest download body (256 MiB)"},
        {"store-on-worker", 0, "DPOOL_STORE_DIR", DP_OPT_STR,
         &cfg.child.store_dir, 0, 0, "DIR",
         "save download bodies here instead of returning them"},
        {"ca-file", 0, "DPOOL_CA_FILE", DP_OPT_STR, &cfg.child.ca_file, 0, 0,
         "FILE", "extra CA certificates for https downloads"},
        {"insecure", 0, "DPOOL_INSECURE", DP_OPT_FLAG, &cfg.child.insecure, 0,
         0, NULL, "do not verify TLS certificates (unsafe)"},
        {"max-msg-size", 0, "DPOOL_MAX_MSG_SIZE", DP_OPT_LONG, &maxmsg, 1024,
         1L << 31, "BYTES", "largest message accepted"},
        {"log-level", 0, "DPOOL_LOG", DP_OPT_STR, &level, 0, 0, "LEVEL",
         "error, warn, info or debug (info)"},
        /* CURVE to the broker, where downloads may connect */
        {"curve-key", 0, "DPOOL_CURVE_KEY", DP_OPT_STR, &cfg.curve_key, 0, 0,
         "FILE", "CURVE: this worker's secret key file (dpool keygen)"},
        {"broker-key", 0, "DPOOL_BROKER_KEY", DP_OPT_STR, &cfg.broker_key, 0, 0,
         "FILE", "CURVE: the broker's public key file"},
        {"allow-net", 0, "DPOOL_ALLOW_NET", DP_OPT_LIST, &allow, 0, 0, "CIDR",
         "downloads may reach this private/loopback range (repeatable)"},
        {"embedded", 0, NULL, DP_OPT_FLAG, &embedded, 0, 0, NULL, NULL},
        {"child", 0, NULL, DP_OPT_STR, &child, 0, 0, "KIND", NULL},
        {"parent-pid", 0, NULL, DP_OPT_LONG, &parent, 0, 1L << 30, "PID", NULL},
        {"version", 'V', NULL, DP_OPT_FLAG, &version, 0, 0, NULL,
         "print the version"},
        {"help", 'h', NULL, DP_OPT_HELP, &help, 0, 0, NULL, "this help"},
        {NULL, 0, NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    int code =
        dp_opt_daemon(opts, argc, argv, S_PROG,
                      "Run dpool jobs from a broker in forked child processes.",
                      &help, &version);
    if (code >= 0)
        return code;
    cfg.child.limits.hash_max_iterations = (uint64_t)iters;
    cfg.child.limits.hash_max_dklen = (uint64_t)dklen;
    cfg.child.limits.download_max_bytes = (uint64_t)dlmax;
    cfg.child.wire.max_msg_bytes = (size_t)maxmsg;
    dp_log_init(child ? "dpool-worker-child" : "dpool-worker", level);
    cfg.embedded = embedded;
#ifdef S_CHILD_BUILD
    if (!child) {
        fprintf(stderr, S_PROG ": runs as dpool-worker's " S_KIND
                               " child only (--child " S_KIND ")\n");
        return 2;
    }
    code = s_security(&cfg, &allow, embedded);
    return code >= 0 ? code : s_child(child, &cfg, parent);
#else
    if (child) {
        fprintf(stderr, S_PROG
                ": --child: the children are the programs " DP_CPU_CHILD_PROG
                " and " DP_IO_CHILD_PROG "\n");
        return 2;
    }
    if (!cfg.processes && !cfg.io_slots) {
        fprintf(stderr, S_PROG ": --processes 0 and --io-slots 0: nothing "
                               "to run\n");
        return 2;
    }
    code = s_security(&cfg, &allow, embedded);
    if (code < 0)
        code = s_agent_security(&cfg, &allow);
    if (code < 0)
        code = s_check_children(&cfg);
    if (code >= 0)
        return code;
    if (cfg.child.insecure)
        dp_warn("--insecure: TLS certificates of download hosts are NOT "
                "verified");
    return s_run_agent(&cfg, parent);
#endif
}
