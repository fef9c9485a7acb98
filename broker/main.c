/* main.c - dpool-broker: options, signals, run. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "dp_broker.h"
#include "dp_log.h"
#include "dp_zap.h"

static int s_stop_pipe[2] = {-1, -1};

static void s_on_signal(int sig)
{
    int saved = errno;
    char c = sig == SIGHUP ? DP_ZAP_SIG_RELOAD : 'x'; /* HUP: reload keys */
    ssize_t rc = write(s_stop_pipe[1], &c, 1);
    (void)rc;
    errno = saved;
}

/* s_cleanup: an embedded broker removes its client's private dir (the ipc
 * socket in it), so nothing is left even when the client was killed. */
static void s_cleanup(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/broker", dir);
    unlink(path);
    rmdir(dir);
}

/* s_security: secure by default. Returns -1 to go on, or the
 * exit code: a bind beyond loopback needs CURVE keys or --insecure. */
static int s_security(dp_broker_cfg_t *cfg, bool embedded)
{
    if (embedded) /* a private ipc dir (0700): plaintext, whatever the env */
        cfg->curve_key = cfg->client_keys = cfg->worker_keys = NULL;
    if (cfg->curve_key && !cfg->curve_key[0])
        cfg->curve_key = NULL;
    bool keys = (cfg->client_keys && cfg->client_keys[0]) ||
                (cfg->worker_keys && cfg->worker_keys[0]);
    if (cfg->curve_key && !keys) {
        fprintf(stderr, "dpool-broker: --curve-key needs --client-keys DIR "
                        "and/or --worker-keys DIR (nobody could connect)\n");
        return 2;
    }
    if (!cfg->curve_key && keys) {
        fprintf(stderr, "dpool-broker: --client-keys/--worker-keys need "
                        "--curve-key FILE (the broker's own key)\n");
        return 2;
    }
    const char *open_bind = NULL;
    for (int k = 0; k < cfg->binds.n; k++)
        if (!dp_zap_bind_is_local(cfg->binds.v[k]))
            open_bind = cfg->binds.v[k];
    if (!open_bind || cfg->curve_key)
        return -1;
    if (!cfg->insecure) {
        fprintf(stderr,
                "dpool-broker: refusing to listen on %s without encryption "
                "and authentication.\n"
                "Make keys and start with them:\n"
                "  dpool keygen --out keys broker\n"
                "  dpool keygen --out keys/clients alice\n"
                "  dpool keygen --out keys/workers w1\n"
                "  dpool-broker --bind %s --curve-key keys/broker.key \\\n"
                "      --client-keys keys/clients --worker-keys keys/workers\n"
                "(the private .key files stay with their owners; the broker "
                "needs only the .pub files), or pass --insecure to accept "
                "plaintext from anyone who can reach this port.\n",
                open_bind, open_bind);
        return 2;
    }
    dp_warn("--insecure: listening on %s without encryption or "
            "authentication: any host that reaches this port can submit "
            "jobs and pose as a worker",
            open_bind);
    return -1;
}

int main(int argc, char **argv)
{
    dp_broker_cfg_t cfg = dp_broker_cfg_default();
    bool help = false, version = false, embedded = false;
    const char *level = NULL, *cleanup = NULL;
    long parent = 0, max_msg = (long)cfg.limits.max_msg_bytes;
    const dp_opt_t opts[] = {
        {"bind", 'b', "DPOOL_BIND", DP_OPT_LIST, &cfg.binds, 0, 0, "ENDPOINT",
         "listen here (repeatable; default " DP_BROKER_BIND_DEFAULT ")"},
        {"heartbeat", 0, "DPOOL_HEARTBEAT_MS", DP_OPT_LONG, &cfg.heartbeat_ms,
         50, 600000, "MS",
         "heartbeat interval; a peer is dead after 3 missed (1000)"},
        {"lookahead", 0, "DPOOL_LOOKAHEAD", DP_OPT_LONG, &cfg.lookahead, -1,
         1000000, "N",
         "chunks a worker may hold beyond its slots (-1: "
         "auto, about 2 ms of work per slot)"},
        {"lease-grace", 0, "DPOOL_LEASE_GRACE_MS", DP_OPT_LONG,
         &cfg.lease_grace_ms, 0, 86400000, "MS",
         "a lease runs out this long after the job's time limit (5000)"},
        {"max-requeues", 0, "DPOOL_MAX_REQUEUES", DP_OPT_LONG,
         &cfg.max_requeues, 0, UINT16_MAX, "N",
         "times a job may be handed back unstarted (16)"},
        {"max-client-jobs", 0, "DPOOL_MAX_CLIENT_JOBS", DP_OPT_LONG,
         &cfg.max_client_jobs, 1, 100000000, "N",
         "jobs one client may have queued or running; more wait (200000)"},
        {"max-client-bytes", 0, "DPOOL_MAX_CLIENT_BYTES", DP_OPT_LONG,
         &cfg.max_client_bytes, 1L << 20, 1L << 40, "BYTES",
         "bytes those jobs may hold; more wait (64 MiB)"},
        {"max-client-held", 0, "DPOOL_MAX_CLIENT_HELD", DP_OPT_LONG,
         &cfg.max_client_held, 0, 1L << 40, "BYTES",
         "SUBMITs held for a client at its share; beyond, refused (16 MiB)"},
        {"max-jobs", 0, "DPOOL_MAX_JOBS", DP_OPT_LONG, &cfg.max_jobs, 1,
         1000000000, "N", "jobs queued or running, all clients (2000000)"},
        {"max-bytes", 0, "DPOOL_MAX_BYTES", DP_OPT_LONG, &cfg.max_bytes,
         1L << 20, 1L << 42, "BYTES",
         "bytes those jobs may hold, all clients (256 MiB)"},
        {"hwm", 0, "DPOOL_HWM", DP_OPT_LONG, &cfg.hwm, 16, 1000000, "N",
         "messages queued per peer each way (1000)"},
        {"max-peers", 0, "DPOOL_MAX_PEERS", DP_OPT_LONG, &cfg.max_peers, 0,
         10000000, "N",
         "clients and workers served; more are refused (0: open-files "
         "limit - 64, at most 65536)"},
        {"max-msg-size", 0, "DPOOL_MAX_MSG_SIZE", DP_OPT_LONG, &max_msg, 1024,
         1L << 31, "BYTES", "largest message accepted"},
        /* the journal (broker/dp_journal.h) */
        {"journal", 0, "DPOOL_JOURNAL", DP_OPT_STR, &cfg.journal_dir, 0, 0,
         "DIR", "keep accepted jobs in a journal in DIR (one broker per DIR)"},
        {"fsync-ms", 0, "DPOOL_FSYNC_MS", DP_OPT_LONG, &cfg.fsync_ms, 0, 60000,
         "MS", "journal fsync window; 0: fsync before every ACCEPTED (50)"},
        {"session-grace", 0, "DPOOL_SESSION_GRACE_MS", DP_OPT_LONG,
         &cfg.session_grace_ms, 0, 86400000L * 30, "MS",
         "keep a session whose client vanished without BYE this long, its "
         "jobs running and results kept (60000)"},
        {"result-ttl", 0, "DPOOL_RESULT_TTL_MS", DP_OPT_LONG,
         &cfg.result_ttl_ms, 1, 86400000L * 365, "MS",
         "free a detached batch's results this long after its last result "
         "(86400000: 24 h)"},
        {"max-batches", 0, "DPOOL_MAX_BATCHES", DP_OPT_LONG, &cfg.max_batches,
         1, 1000000, "N", "detached batches one client name or key holds (64)"},
        {"max-batch-readers", 0, "DPOOL_MAX_BATCH_READERS", DP_OPT_LONG,
         &cfg.max_batch_readers, 1, 10000, "N",
         "readers (dpool results) of one batch at once (16)"},
        {"max-batch-held", 0, "DPOOL_MAX_BATCH_HELD", DP_OPT_LONG,
         &cfg.max_batch_held, 1L << 16, 1L << 40, "BYTES",
         "results one detached batch keeps; a SUBMIT that cannot fit is "
         "refused, past it the rest fails LIMIT (256 MiB)"},
        {"log-level", 0, "DPOOL_LOG", DP_OPT_STR, &level, 0, 0, "LEVEL",
         "error, warn, info or debug (info)"},
        /* CURVE, ZAP, secure by default (dp_zap.h) */
        {"curve-key", 0, "DPOOL_CURVE_KEY", DP_OPT_STR, &cfg.curve_key, 0, 0,
         "FILE", "CURVE: the broker's secret key file (dpool keygen)"},
        {"client-keys", 0, "DPOOL_CLIENT_KEYS", DP_OPT_STR, &cfg.client_keys, 0,
         0, "DIR", "CURVE: admit clients whose NAME.pub is in DIR"},
        {"worker-keys", 0, "DPOOL_WORKER_KEYS", DP_OPT_STR, &cfg.worker_keys, 0,
         0, "DIR", "CURVE: admit workers whose NAME.pub is in DIR"},
        {"insecure", 0, NULL, DP_OPT_FLAG, &cfg.insecure, 0, 0, NULL,
         "allow plaintext on a non-loopback bind (unsafe; warned)"},
        {"embedded", 0, NULL, DP_OPT_FLAG, &embedded, 0, 0, NULL, NULL},
        {"parent-pid", 0, NULL, DP_OPT_LONG, &parent, 0, 1L << 30, "PID", NULL},
        {"cleanup-dir", 0, NULL, DP_OPT_STR, &cleanup, 0, 0, "DIR", NULL},
        {"version", 'V', NULL, DP_OPT_FLAG, &version, 0, 0, NULL,
         "print the version"},
        {"help", 'h', NULL, DP_OPT_HELP, &help, 0, 0, NULL, "this help"},
        {NULL, 0, NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    int code = dp_opt_daemon(opts, argc, argv, "dpool-broker",
                             "Queue dpool jobs and dispatch them to workers.",
                             &help, &version);
    if (code >= 0)
        return code;
    cfg.limits.max_msg_bytes = (size_t)max_msg;
    dp_log_init("dpool-broker", level);
    if (parent > 0) {
        /* embedded: leave when the client that started us does */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != (pid_t)parent)
            return 0;
    }
    /* --cleanup-dir is the embedded pool's private dir: embedded too */
    code = s_security(&cfg, embedded || cleanup != NULL);
    if (code >= 0)
        return code;
    if (pipe2(s_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return 1;
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* reload CURVE keys */
    signal(SIGPIPE, SIG_IGN);
    dp_broker_t *b = dp_broker_new(&cfg);
    if (!b)
        return 1;
    char err[DP_BROKER_ERR_MAX] = "";
    if (cfg.journal_dir && cfg.journal_dir[0] &&
        dp_broker_journal(b, err, sizeof err) != 0) {
        fprintf(stderr, "dpool-broker: %s\n",
                err[0] ? err : "cannot open the journal");
        dp_broker_destroy(&b);
        return 2;
    }
    int rc = dp_broker_run(b, s_stop_pipe[0]);
    dp_info("stopping");
    dp_broker_destroy(&b);
    if (cleanup)
        s_cleanup(cleanup);
    return rc ? 1 : 0;
}
