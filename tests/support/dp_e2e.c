/* dp_e2e.c - process helpers for the end-to-end tests (see dp_e2e.h). */
#include "dp_e2e.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_REAP_STEP_MS 5 /* waitpid polling step */
#define S_CMDLINE_MAX 8192
#define S_NFTW_FDS 16

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void s_nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- tracking ---- */

static void s_track(dp_e2e_t *e, pid_t pid)
{
    if (e->npids < DP_E2E_MAX_PROCS)
        e->pids[e->npids++] = pid;
}

static void s_untrack(dp_e2e_t *e, pid_t pid)
{
    for (int k = 0; k < e->npids; k++) {
        if (e->pids[k] == pid) {
            e->pids[k] = e->pids[--e->npids];
            return;
        }
    }
}

int dp_e2e_init(dp_e2e_t *e, const char *bin_dir)
{
    memset(e, 0, sizeof *e);
    snprintf(e->bin, sizeof e->bin, "%s", bin_dir);
    snprintf(e->dir, sizeof e->dir, "/tmp/dpe2e-XXXXXX");
    /* Criterion may leave SIGCHLD ignored or SIGPIPE handled: reset */
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    return mkdtemp(e->dir) ? 0 : -1;
}

static int s_rm(const char *path, const struct stat *st, int flag,
                struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* s_sanitized: a sanitizer's report in any log of the test's dir (the
 * daemons' stderr): printed, and counted so the test fails. */
static int s_reports;

static int s_scan(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    char *text = dp_e2e_slurp(path);
    if (text && (strstr(text, "ERROR: AddressSanitizer") ||
                 strstr(text, "ERROR: LeakSanitizer") ||
                 strstr(text, "runtime error:"))) {
        fprintf(stderr, "e2e: sanitizer report in %s:\n%s\n", path, text);
        s_reports++;
    }
    free(text);
    return 0;
}

int dp_e2e_fini(dp_e2e_t *e)
{
    /* SIGINT: all three programs stop cleanly on it (an embedded client
     * also removes its temp dir, which it does not on SIGTERM) */
    for (int k = e->npids - 1; k >= 0; k--)
        if (e->pids[k] > 0)
            kill(e->pids[k], SIGINT);
    uint64_t end = s_now_ms() + DP_E2E_STOP_MS;
    while (e->npids > 0) {
        pid_t pid = e->pids[e->npids - 1];
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            s_untrack(e, pid);
            continue;
        }
        if (s_now_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            s_untrack(e, pid);
            continue;
        }
        s_nap(S_REAP_STEP_MS);
    }
    s_reports = 0;
    if (e->dir[0])
        nftw(e->dir, s_scan, S_NFTW_FDS, FTW_PHYS);
    if (e->dir[0] && !getenv("DP_E2E_KEEP"))
        nftw(e->dir, s_rm, S_NFTW_FDS, FTW_DEPTH | FTW_PHYS);
    else if (e->dir[0])
        fprintf(stderr, "e2e: kept %s\n", e->dir);
    e->dir[0] = '\0';
    return s_reports;
}

/* ---- processes ---- */

int dp_e2e_spawn(dp_e2e_t *e, dp_e2e_proc_t *p, int stdin_fd,
                 const char *const argv[])
{
    char path[PATH_MAX];
    const char *prog = argv[0];
    int len = strchr(prog, '/')
                  ? snprintf(path, sizeof path, "%s", prog)
                  : snprintf(path, sizeof path, "%s/%s", e->bin, prog);
    if (len < 0 || (size_t)len >= sizeof path)
        return -1;
    const char *base = strrchr(prog, '/') ? strrchr(prog, '/') + 1 : prog;
    unsigned n = ++e->seq;
    int lo = snprintf(p->out, sizeof p->out, "%s/%02u-%s.out", e->dir, n, base);
    int le = snprintf(p->err, sizeof p->err, "%s/%02u-%s.err", e->dir, n, base);
    if (lo < 0 || le < 0 || (size_t)lo >= sizeof p->out ||
        (size_t)le >= sizeof p->err)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* die with the test process, whatever happens to it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int in = stdin_fd >= 0 ? stdin_fd : open("/dev/null", O_RDONLY);
        int out = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    p->pid = pid;
    s_track(e, pid);
    return 0;
}

static int s_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

int dp_e2e_wait(dp_e2e_t *e, pid_t pid, int timeout_ms)
{
    uint64_t end = s_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            s_untrack(e, pid);
            return s_code(st);
        }
        if (r < 0) {
            s_untrack(e, pid);
            return -1;
        }
        if (s_now_ms() >= end)
            return -1;
        s_nap(S_REAP_STEP_MS);
    }
}

int dp_e2e_stop(dp_e2e_t *e, pid_t pid, int sig, int grace_ms)
{
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    int code = dp_e2e_wait(e, pid, grace_ms);
    if (code == -1) {
        kill(pid, SIGKILL);
        code = dp_e2e_wait(e, pid, DP_E2E_STOP_MS);
    }
    return code;
}

char *dp_e2e_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    if (!s) {
        if (f)
            fclose(f);
        return NULL;
    }
    for (size_t n; f && (n = fread(s + len, 1, cap - len - 1, f)) > 0;) {
        len += n;
        if (cap - len - 1 == 0) {
            char *t = realloc(s, cap * 2);
            if (!t)
                break;
            s = t;
            cap *= 2;
        }
    }
    if (f)
        fclose(f);
    s[len] = '\0';
    return s;
}

int dp_e2e_run(dp_e2e_t *e, dp_e2e_run_t *r, int timeout_ms, int stdin_fd,
               const char *const argv[])
{
    memset(r, 0, sizeof *r);
    dp_e2e_proc_t p;
    uint64_t t0 = s_now_ms();
    if (dp_e2e_spawn(e, &p, stdin_fd, argv))
        return -1;
    r->code = dp_e2e_wait(e, p.pid, timeout_ms);
    if (r->code == -1) {
        kill(p.pid, SIGKILL);
        dp_e2e_wait(e, p.pid, DP_E2E_STOP_MS);
    }
    r->secs = (double)(s_now_ms() - t0) / 1000.0;
    r->out = dp_e2e_slurp(p.out);
    r->err = dp_e2e_slurp(p.err);
    return 0;
}

void dp_e2e_run_free(dp_e2e_run_t *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* ---- pool ---- */

int dp_e2e_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int dp_e2e_broker(dp_e2e_t *e, dp_e2e_proc_t *p, int port, char *ep,
                  size_t eplen)
{
    return dp_e2e_broker_with(e, p, port, ep, eplen, NULL);
}

int dp_e2e_broker_with(dp_e2e_t *e, dp_e2e_proc_t *p, int port, char *ep,
                       size_t eplen, const char *const extra[])
{
    if (port == 0)
        port = dp_e2e_free_port();
    if (port <= 0)
        return -1;
    snprintf(ep, eplen, "tcp://127.0.0.1:%d", port);
    const char *argv[DP_E2E_ARGV_MAX] = {
        "dpool-broker",   "--bind",      ep,      "--heartbeat",
        DP_E2E_HEARTBEAT, "--log-level", "debug", NULL};
    int n = 7;
    for (int k = 0; extra && extra[k] && n < DP_E2E_ARGV_MAX - 1; k++)
        argv[n++] = extra[k];
    argv[n] = NULL;
    if (dp_e2e_spawn(e, p, -1, argv))
        return -1;
    uint64_t end = s_now_ms() + DP_E2E_UP_MS;
    while (s_now_ms() < end) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            s_untrack(e, p->pid);
            return -1; /* e.g. could not bind */
        }
        char *json = NULL;
        if (dp_e2e_status(e, ep, &json) == 0) {
            free(json);
            return 0;
        }
        free(json);
        s_nap(DP_E2E_POLL_MS);
    }
    return -1;
}

int dp_e2e_worker(dp_e2e_t *e, dp_e2e_proc_t *p, const char *ep, int procs,
                  const char *name, const char *grace)
{
    char n[16];
    snprintf(n, sizeof n, "%d", procs);
    const char *argv[] = {"dpool-worker", "--connect", ep,
                          "-p",           n,           "--name",
                          name,           "--grace",   grace ? grace : "2",
                          "--io-slots",   "1",         "--log-level",
                          "debug",        NULL};
    return dp_e2e_spawn(e, p, -1, argv);
}

int dp_e2e_status(dp_e2e_t *e, const char *ep, char **json)
{
    const char *argv[] = {"dpool", "--broker", ep,     "--connect-timeout",
                          "1",     "--format", "json", "status",
                          NULL};
    dp_e2e_run_t r;
    *json = NULL;
    if (dp_e2e_run(e, &r, DP_E2E_STATUS_MS, -1, argv))
        return -1;
    int rc = r.code == 0 && r.out && r.out[0] == '{' ? 0 : -1;
    *json = r.out;
    r.out = NULL;
    dp_e2e_run_free(&r);
    return rc;
}

long long dp_e2e_stat(dp_e2e_t *e, const char *ep, const char *key)
{
    char *json = NULL;
    long long v = -1;
    if (dp_e2e_status(e, ep, &json) == 0) {
        v = dp_e2e_jint(json, key);
        if (v == LLONG_MIN)
            v = -1;
    }
    free(json);
    return v;
}

bool dp_e2e_wait_stat(dp_e2e_t *e, const char *ep, const char *key,
                      long long lo, long long hi, int timeout_ms)
{
    uint64_t end = s_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        long long v = dp_e2e_stat(e, ep, key);
        if (v >= lo && v <= hi && v >= 0)
            return true;
        if (s_now_ms() >= end)
            return false;
        s_nap(DP_E2E_POLL_MS);
    }
}

bool dp_e2e_wait_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
    uint64_t end = s_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (cond(arg))
            return true;
        if (s_now_ms() >= end)
            return false;
        s_nap(DP_E2E_POLL_MS);
    }
}

/* ---- /proc ---- */

/* s_cmdline: pid's NUL-separated arguments into buf; their byte count, or
 * -1. */
static ssize_t s_cmdline(pid_t pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* s_has_pair: the NUL-separated args hold `a` followed by `b` (or just a
 * when b is NULL). */
static bool s_has_pair(const char *args, size_t n, const char *a, const char *b)
{
    for (size_t off = 0; off < n; off += strlen(args + off) + 1) {
        if (strcmp(args + off, a) != 0)
            continue;
        if (!b)
            return true;
        size_t nx = off + strlen(args + off) + 1;
        if (nx < n && strcmp(args + nx, b) == 0)
            return true;
    }
    return false;
}

/* s_stat_line: /proc/pid/stat after the comm's ')' into buf; 0 or -1. */
static int s_stat_line(pid_t pid, char *buf, size_t len)
{
    char path[64], raw[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, raw, sizeof raw - 1);
    close(fd);
    if (n <= 0)
        return -1;
    raw[n] = '\0';
    char *paren = strrchr(raw, ')'); /* comm may hold spaces */
    if (!paren || paren[1] != ' ')
        return -1;
    snprintf(buf, len, "%s", paren + 2);
    return 0;
}

/* s_state: the state letter of pid, or 0 if there is none. */
static char s_state(pid_t pid)
{
    char buf[512];
    return s_stat_line(pid, buf, sizeof buf) ? 0 : buf[0];
}

/* s_ppid: the parent of pid, or -1. */
static pid_t s_ppid(pid_t pid)
{
    char buf[512];
    if (s_stat_line(pid, buf, sizeof buf) || !buf[0] || buf[1] != ' ')
        return -1;
    return (pid_t)strtol(buf + 2, NULL, 10);
}

int dp_e2e_children(pid_t parent, const char *kind, pid_t *out, int max)
{
    /* no /proc/PID/task/TID/children on every kernel: scan ppids */
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int count = 0;
    for (struct dirent *de; (de = readdir(d));) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || s_ppid((pid_t)pid) != parent ||
            !dp_e2e_alive((pid_t)pid))
            continue;
        char args[S_CMDLINE_MAX];
        ssize_t n = s_cmdline((pid_t)pid, args, sizeof args);
        if (kind && (n < 0 || !s_has_pair(args, (size_t)n, "--child", kind)))
            continue;
        if (count < max)
            out[count] = (pid_t)pid;
        count++;
    }
    closedir(d);
    return count;
}

bool dp_e2e_alive(pid_t pid)
{
    char st = s_state(pid);
    return st != 0 && st != 'Z' && st != 'X';
}

bool dp_e2e_in_sleep(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/wchan", (int)pid);
    char *w = dp_e2e_slurp(path);
    bool yes = w && strstr(w, "nanosleep") != NULL;
    free(w);
#if defined(__x86_64__)
    if (!yes) { /* wchan hidden: the syscall number (35, 230) tells */
        snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
        char *s = dp_e2e_slurp(path);
        long nr = s && s[0] ? strtol(s, NULL, 10) : -1;
        yes = nr == 35 || nr == 230;
        free(s);
    }
#endif
    return yes;
}

int dp_e2e_cmdline_arg(pid_t pid, const char *a, char *buf, size_t len)
{
    char args[S_CMDLINE_MAX];
    ssize_t n = s_cmdline(pid, args, sizeof args);
    for (size_t off = 0; n > 0 && off < (size_t)n;
         off += strlen(args + off) + 1) {
        size_t nx = off + strlen(args + off) + 1;
        if (strcmp(args + off, a) == 0 && nx < (size_t)n) {
            snprintf(buf, len, "%s", args + nx);
            return 0;
        }
    }
    return -1;
}

/* ---- output ---- */

int dp_e2e_lines(char *text, char ***lines)
{
    size_t cap = 64;
    int n = 0;
    *lines = malloc(cap * sizeof **lines);
    for (char *s = text; *lines && s && *s;) {
        char *nl = strchr(s, '\n');
        if (nl)
            *nl = '\0';
        if ((size_t)n == cap) {
            char **t = realloc(*lines, cap * 2 * sizeof **lines);
            if (!t)
                break;
            *lines = t;
            cap *= 2;
        }
        (*lines)[n++] = s;
        s = nl ? nl + 1 : NULL;
    }
    return n;
}

static const char *s_jfind(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = json ? strstr(json, pat) : NULL;
    return p ? p + strlen(pat) : NULL;
}

long long dp_e2e_jint(const char *json, const char *key)
{
    const char *p = s_jfind(json, key);
    if (!p)
        return LLONG_MIN;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    return end == p || errno ? LLONG_MIN : v;
}

double dp_e2e_jnum(const char *json, const char *key)
{
    const char *p = s_jfind(json, key);
    if (!p)
        return -1;
    char *end;
    double v = strtod(p, &end);
    return end == p ? -1 : v;
}

int dp_e2e_jstr(const char *json, const char *key, char *buf, size_t len)
{
    const char *p = s_jfind(json, key);
    if (!p || *p != '"' || len == 0)
        return -1;
    size_t n = 0;
    for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1])
            p++;
        if (n + 1 < len)
            buf[n++] = *p;
    }
    buf[n] = '\0';
    return *p == '"' ? 0 : -1;
}

bool dp_e2e_jtrue(const char *json, const char *key)
{
    const char *p = s_jfind(json, key);
    return p && strncmp(p, "true", 4) == 0;
}

int dp_e2e_ep_port(const char *ep)
{
    const char *c = strrchr(ep, ':');
    return c ? atoi(c + 1) : -1;
}
