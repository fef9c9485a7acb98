/*
 * dp_e2e.h - process helpers for the end-to-end tests (tests/e2e): start
 * the real dpool-broker, dpool-worker and dpool programs on loopback, run
 * the client with a deadline, read broker counters, look at processes in
 * /proc, and stop everything that was started.
 *
 * Every process started here gets PR_SET_PDEATHSIG(SIGKILL), so nothing
 * outlives a test process that Criterion kills on timeout; dp_e2e_fini
 * stops the rest (SIGINT, then SIGKILL) and removes the temp dir.
 *
 * Ownership: strings returned as char * belong to the caller (free()).
 * Timeouts are in milliseconds. Nothing here asserts: functions return
 * an error (-1) and tests decide.
 */
#ifndef DP_E2E_H
#define DP_E2E_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define DP_E2E_MAX_PROCS 64    /* processes one test may start */
#define DP_E2E_POLL_MS 50      /* wait_until polling step */
#define DP_E2E_STOP_MS 3000    /* SIGINT -> SIGKILL in dp_e2e_fini */
#define DP_E2E_HEARTBEAT "200" /* broker --heartbeat: dead after 600 ms */
#define DP_E2E_UP_MS 5000      /* broker / workers up within this */
#define DP_E2E_STATUS_MS 3000  /* one `dpool status` call */
#define DP_E2E_EP_MAX 64       /* "tcp://127.0.0.1:65535" and more */
#define DP_E2E_ARGV_MAX 32     /* arguments of a broker started here */

typedef struct {
    char bin[PATH_MAX];           /* where the three programs are */
    char dir[PATH_MAX];           /* per-test temp dir (logs, inputs) */
    pid_t pids[DP_E2E_MAX_PROCS]; /* started and not yet reaped */
    int npids;
    unsigned seq; /* numbers the log files */
} dp_e2e_t;

/* A started process and where its output goes. */
typedef struct {
    pid_t pid;
    char out[PATH_MAX], err[PATH_MAX];
} dp_e2e_proc_t;

/* What a finished client run gave. */
typedef struct {
    int code;        /* exit status, 128+N if killed by signal N, -1 if it
                        overran its deadline (then killed) */
    char *out, *err; /* its whole stdout and stderr (caller frees via
                        dp_e2e_run_free) */
    double secs;     /* wall time */
} dp_e2e_run_t;

/* dp_e2e_init: a temp dir under /tmp, programs looked up in bin_dir.
 * 0 or -1. */
int dp_e2e_init(dp_e2e_t *e, const char *bin_dir);
/* dp_e2e_fini: stop every process still tracked (SIGINT, SIGKILL after
 * DP_E2E_STOP_MS), reap them, remove the temp dir (kept when
 * $DP_E2E_KEEP is set, for reading the logs). Idempotent. Returns how
 * many logs hold a sanitizer report (printed on stderr): a daemon that
 * crashed or leaked under -DDP_SANITIZE fails the test that ran it. */
int dp_e2e_fini(dp_e2e_t *e);

/* dp_e2e_spawn: start argv (argv[0] a program name in bin_dir, or a path)
 * with stdin from stdin_fd (-1: /dev/null), stdout and stderr to files in
 * the temp dir (named in *p). The process is tracked until reaped. */
int dp_e2e_spawn(dp_e2e_t *e, dp_e2e_proc_t *p, int stdin_fd,
                 const char *const argv[]);
/* dp_e2e_wait: wait up to timeout_ms for pid to exit and reap it. Returns
 * its exit status (128+N if killed by signal N), or -1 if it is still
 * running (left running). */
int dp_e2e_wait(dp_e2e_t *e, pid_t pid, int timeout_ms);
/* dp_e2e_stop: send sig, wait up to grace_ms, then SIGKILL; reap. Returns
 * the status as dp_e2e_wait does. */
int dp_e2e_stop(dp_e2e_t *e, pid_t pid, int sig, int grace_ms);
/* dp_e2e_run: spawn argv, wait up to timeout_ms (then SIGKILL, code -1),
 * fill *r. 0 or -1 (could not start). */
int dp_e2e_run(dp_e2e_t *e, dp_e2e_run_t *r, int timeout_ms, int stdin_fd,
               const char *const argv[]);
void dp_e2e_run_free(dp_e2e_run_t *r);
/* dp_e2e_slurp: a whole file as a NUL-terminated string ("" if missing);
 * caller frees. */
char *dp_e2e_slurp(const char *path);

/* dp_e2e_free_port: a loopback TCP port nobody listens on right now. */
int dp_e2e_free_port(void);
/* dp_e2e_broker: start dpool-broker on tcp://127.0.0.1:port (0: a free
 * port) with --heartbeat DP_E2E_HEARTBEAT, wait until `dpool status`
 * answers. Writes the endpoint to ep. 0 or -1. */
int dp_e2e_broker(dp_e2e_t *e, dp_e2e_proc_t *p, int port, char *ep,
                  size_t eplen);
/* dp_e2e_broker_with: dp_e2e_broker with extra arguments (NULL-ended,
 * at most DP_E2E_ARGV_MAX - 8), e.g. --journal DIR. */
int dp_e2e_broker_with(dp_e2e_t *e, dp_e2e_proc_t *p, int port, char *ep,
                       size_t eplen, const char *const extra[]);
/* dp_e2e_worker: start dpool-worker --connect ep -p procs --name name
 * --grace grace (NULL: "2") --io-slots 1; does not wait (see
 * dp_e2e_wait_stat). 0 or -1. */
int dp_e2e_worker(dp_e2e_t *e, dp_e2e_proc_t *p, const char *ep, int procs,
                  const char *name, const char *grace);

/* dp_e2e_status: `dpool --broker ep --format json status` output in *json
 * (caller frees). 0 or -1 (the command failed). */
int dp_e2e_status(dp_e2e_t *e, const char *ep, char **json);
/* dp_e2e_stat: one status counter, or -1 if the broker did not answer. */
long long dp_e2e_stat(dp_e2e_t *e, const char *ep, const char *key);

/* dp_e2e_ep_port: the port of a "tcp://HOST:PORT" endpoint, or -1. */
int dp_e2e_ep_port(const char *ep);
/* dp_e2e_wait_stat: poll until lo <= counter key <= hi, up to timeout_ms.
 * true when it got there. */
bool dp_e2e_wait_stat(dp_e2e_t *e, const char *ep, const char *key,
                      long long lo, long long hi, int timeout_ms);
/* dp_e2e_wait_until: poll cond(arg) every DP_E2E_POLL_MS up to
 * timeout_ms; true when it held. */
bool dp_e2e_wait_until(bool (*cond)(void *), void *arg, int timeout_ms);

/* ---- /proc ---- */

/* dp_e2e_children: children of parent (any thread). With kind ("cpu",
 * "io") only worker children started as `--child KIND`. Up to max pids in
 * out; returns how many there are. */
int dp_e2e_children(pid_t parent, const char *kind, pid_t *out, int max);
/* dp_e2e_alive: pid exists and is not a zombie. */
bool dp_e2e_alive(pid_t pid);
/* dp_e2e_in_sleep: pid is blocked in nanosleep (a `sleep` job runs). */
bool dp_e2e_in_sleep(pid_t pid);
/* dp_e2e_cmdline_arg: in pid's command line, the argument after `a`,
 * copied to buf (buf may be NULL with len 0: just whether it is there).
 * 0 or -1. */
int dp_e2e_cmdline_arg(pid_t pid, const char *a, char *buf, size_t len);

/* ---- output ---- */

/* dp_e2e_lines: split text in place at '\n' (no empty last line); *lines
 * is malloc'ed (caller frees the array only). Returns the count. */
int dp_e2e_lines(char *text, char ***lines);
/* dp_e2e_jint: the integer after "key": in a flat JSON line; LLONG_MIN if
 * absent. The first occurrence wins. */
long long dp_e2e_jint(const char *json, const char *key);
/* dp_e2e_jnum: the same for a number with a fraction; -1 if absent. */
double dp_e2e_jnum(const char *json, const char *key);
/* dp_e2e_jstr: the string after "key": (simple escapes undone) into buf;
 * 0 or -1. */
int dp_e2e_jstr(const char *json, const char *key, char *buf, size_t len);
/* dp_e2e_jtrue: "key":true is in the line. */
bool dp_e2e_jtrue(const char *json, const char *key);

#endif /* DP_E2E_H */
