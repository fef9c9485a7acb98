/*
 * dp_embed.c - the embedded pool: a private dpool-broker and dpool-worker
 * over ipc:// in a private temp dir, started for one client and stopped
 * with it. They run in their own process group (the terminal's Ctrl-C
 * reaches only the client, which cancels and then stops them) and die
 * with the client even if it is killed (PR_SET_PDEATHSIG via
 * --parent-pid).
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dp_clock.h"
#include "dp_pool_int.h"

#define S_NUM_MAX 32
#define S_REAP_STEP_MS 1
#define S_WARGS_MAX 20

extern char **environ;

/* s_dir_of: the directory part of path into dir (len bytes), or "". */
static void s_dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    int n = slash ? (int)(slash - path) : 0;
    snprintf(dir, len, "%.*s", n, path);
}

/* dp_embed_find_bin: the dir holding prog, the first of:
 * opts->bin_dir, $DPOOL_BIN_DIR (both override), this program's own dir
 * (a build tree's bin/, or the installed dpool), the bin dir of the
 * installation this libdpool belongs to (its own path, from dladdr, plus
 * DP_LIB_TO_BINDIR: any install --prefix works), the configured
 * DP_INSTALL_BINDIR. */
int dp_embed_find_bin(const dp_pool_opts_t *o, const char *prog, char *dir,
                      size_t len)
{
    char exe[PATH_MAX], self[PATH_MAX] = "", lib[PATH_MAX] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        s_dir_of(exe, self, sizeof self);
    }
    Dl_info info;
    if (dladdr((void *)dp_embed_find_bin, &info) && info.dli_fname) {
        char where[PATH_MAX];
        s_dir_of(info.dli_fname, where, sizeof where);
        int w = snprintf(lib, sizeof lib, "%s/%s", where, DP_LIB_TO_BINDIR);
        if (w < 0 || (size_t)w >= sizeof lib)
            lib[0] = '\0';
    }
    const char *cands[] = {o ? o->bin_dir : NULL, getenv("DPOOL_BIN_DIR"), self,
                           lib, DP_INSTALL_BINDIR};
    for (size_t k = 0; k < sizeof cands / sizeof cands[0]; k++) {
        if (!cands[k] || !cands[k][0])
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", cands[k], prog);
        if (access(path, X_OK) == 0) {
            snprintf(dir, len, "%s", cands[k]);
            return 0;
        }
    }
    return DP_ERR_INVALID;
}

static pid_t s_spawn(const char *dir, const char *prog, const char **args)
{
    char path[PATH_MAX];
    int len = snprintf(path, sizeof path, "%s/%s", dir, prog);
    if (len < 0 || (size_t)len >= sizeof path)
        return -1;
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    pid_t pid = 0;
    args[0] = prog;
    int rc = posix_spawn(&pid, path, NULL, &at, (char *const *)args, environ);
    posix_spawnattr_destroy(&at);
    return rc == 0 ? pid : -1;
}

int dp_embed_start(dp_pool_t *p, const dp_pool_opts_t *o)
{
    char bin[PATH_MAX], tmpl[] = "/tmp/dpool-XXXXXX";
    if (dp_embed_find_bin(o, "dpool-broker", bin, sizeof bin)) {
        fprintf(stderr, "dpool: cannot find dpool-broker and dpool-worker "
                        "(looked beside the program, in " DP_INSTALL_BINDIR
                        "; set DPOOL_BIN_DIR to their directory)\n");
        return DP_ERR_INVALID;
    }
    if (!mkdtemp(tmpl))
        return DP_ERR_IO;
    p->tmpdir = strdup(tmpl);
    size_t len = strlen(tmpl) + sizeof "ipc:///broker";
    p->endpoint = malloc(len);
    if (!p->tmpdir || !p->endpoint)
        return DP_ERR_NOMEM;
    snprintf(p->endpoint, len, "ipc://%s/broker", tmpl);
    char ppid[S_NUM_MAX], procs[S_NUM_MAX], io[S_NUM_MAX];
    snprintf(ppid, sizeof ppid, "%d", (int)getpid());
    long ncpu = !o || !o->processes ? sysconf(_SC_NPROCESSORS_ONLN)
                : o->processes < 0  ? 0
                                    : o->processes;
    snprintf(procs, sizeof procs, "%ld", ncpu);
    snprintf(io, sizeof io, "%d", o && o->io_slots > 0 ? o->io_slots : 16);
    const char *bargs[] = {NULL,        "--bind",
                           p->endpoint, "--parent-pid",
                           ppid,        "--cleanup-dir",
                           p->tmpdir,   "--log-level",
                           "warn",      NULL};
    const char *wargs[S_WARGS_MAX] = {NULL,
                                      "--connect",
                                      p->endpoint,
                                      "--processes",
                                      procs,
                                      "--io-slots",
                                      io,
                                      "--parent-pid",
                                      ppid,
                                      "--grace",
                                      DP_EMBED_GRACE,
                                      "--log-level",
                                      "warn"};
    int nw = 13;
    /* both plaintext (private ipc dir), downloads anywhere */
    wargs[nw++] = "--embedded";
    if (o && o->insecure)
        wargs[nw++] = "--insecure";
    if (o && o->ca_file) {
        wargs[nw++] = "--ca-file";
        wargs[nw++] = o->ca_file;
    }
    if (o && o->store_dir) {
        wargs[nw++] = "--store-on-worker";
        wargs[nw++] = o->store_dir;
    }
    wargs[nw] = NULL;
    p->broker_pid = s_spawn(bin, "dpool-broker", bargs);
    p->worker_pid = s_spawn(bin, "dpool-worker", wargs);
    return p->broker_pid > 0 && p->worker_pid > 0 ? 0 : DP_ERR_IO;
}

/* s_reap: wait for pid (already sent SIGTERM) until end_ms, then SIGKILL
 * it; reap. */
static void s_reap(pid_t pid, uint64_t end_ms)
{
    if (pid <= 0)
        return;
    int status;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (dp_now_ms() >= end_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return;
        }
        struct timespec ts = {0, S_REAP_STEP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

void dp_embed_stop(dp_pool_t *p)
{
    /* both at once: neither needs the other to leave (the worker does not
     * wait for its broker, the broker settles nothing for a pool that is
     * going), so the client waits for the slower, not for the sum */
    if (p->worker_pid > 0)
        kill(p->worker_pid, SIGTERM);
    if (p->broker_pid > 0)
        kill(p->broker_pid, SIGTERM);
    uint64_t end = dp_now_ms() + DP_EMBED_STOP_MS;
    s_reap(p->worker_pid, end);
    s_reap(p->broker_pid, end);
    p->worker_pid = p->broker_pid = 0;
    if (p->tmpdir) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/broker", p->tmpdir);
        unlink(path);
        rmdir(p->tmpdir);
        free(p->tmpdir);
        p->tmpdir = NULL;
    }
}
