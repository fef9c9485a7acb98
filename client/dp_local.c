/*
 * dp_local.c - the local pool: what dp_pool_open(NULL, ...) starts. Jobs
 * run in child processes of this process (dpool-worker-cpu and
 * dpool-worker-io, the worker's own child programs), driven by the pool's
 * I/O thread with the worker agent's own code (worker/dp_agent_kids.c and
 * dp_agent_jobs.c, linked into libdpool): no broker, no agent process, no
 * ZeroMQ. A round trip wakes the I/O thread, the child and the caller; a
 * broker and a worker between them would add ten more wake-ups and two
 * process starts (README, "Local and remote pools").
 *
 * The caller's side is unchanged: the I/O thread takes the same SUBMIT,
 * CANCEL and STATUS messages from the outbox a broker would get, and hands
 * the same RESULTS and STATUS_REPLY messages to the inbox (dp_pool_wire).
 * What a broker does for a job it does here: the checks of a SUBMIT (type,
 * arity, time limit: dp_jobtab_check), a LOST job run again within its
 * retries, a REQUEUE queued again (dp_ag_finish with a sink).
 *
 * Threads: the agent and the children belong to the I/O thread, which
 * also starts every child (PR_SET_PDEATHSIG follows the thread that
 * started a child: the children go when the pool does, even if the
 * thread that opened it has ended), and stops them before it ends: cpu
 * children are killed, the io child is told to go (it removes the files
 * of unfinished downloads), all reaped. dp_local_stop runs after the
 * thread is joined. Nothing here touches signal dispositions: children are
 * reaped by pid (dp_ag_reap) once their socket closes, and writes to them
 * cannot raise SIGPIPE (dp_frame_write_many, MSG_NOSIGNAL).
 *
 * DPOOL_EMBED=daemons (or opts.daemons) starts the previous embedded
 * pool instead: a private dpool-broker and dpool-worker (dp_embed.c).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_agent_int.h"
#include "dp_clock.h"
#include "dp_jobs.h"
#include "dp_log.h"
#include "dp_msg.h"
#include "dp_pool_int.h"

#define S_NAME_MAX 64
#define S_IDLE_MS 1000    /* the longest poll with nothing due */
#define S_REAP_RETRY_MS 1 /* a child's socket closed, its exit not seen yet */

struct dp_local {
    dp_agent_t a;
    bool started; /* a is initialised */
    char cpu_exe[PATH_MAX], io_exe[PATH_MAX];
    char name[S_NAME_MAX];
    char *store_dir, *ca_file;
    char **env; /* the children's environment (s_env) */
};

extern char **environ;

/* s_env: a copy of our environment without DPOOL_* (those configure the
 * daemons: a DPOOL_STORE_DIR meant for a worker would make a child store
 * download bodies the client expects back), DPOOL_LOG excepted. NULL
 * when out of memory. */
static char **s_env(void)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; env && i < n; i++) {
        const char *e = environ[i];
        if (strncmp(e, "DPOOL_", 6) == 0 && strncmp(e, "DPOOL_LOG=", 10) != 0)
            continue;
        if (!(env[k++] = strdup(e))) {
            for (size_t j = 0; j + 1 < k; j++)
                free(env[j]);
            free(env);
            return NULL;
        }
    }
    return env;
}

/* s_sink: the agent's RESULTS batch goes to the caller's inbox. */
static void s_sink(void *arg, char *data, size_t len)
{
    dp_pool_wire((dp_pool_t *)arg, data, len);
}

/* s_status: STATUS answered as a broker would, for this pool alone. */
static void s_status(dp_pool_t *p, dp_agent_t *a)
{
    uint64_t queued = 0, running = 0, children = 0;
    for (int cls = 0; cls < DP_CLASS_COUNT; cls++)
        queued += a->queue[cls].n;
    for (dp_ag_child_t *c = a->children; c; c = c->next) {
        running += c->jobs.n;
        children++;
    }
    dp_stat_t rows[] = {{"workers", 1},
                        {"cpu_slots", (uint64_t)a->cfg.processes},
                        {"io_slots", (uint64_t)a->cfg.io_slots},
                        {"queued", queued},
                        {"running", running},
                        {"children", children}};
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_status_reply(&w, rows, sizeof rows / sizeof rows[0]);
    char *data;
    size_t len;
    if (dp_wr_take(&w, &data, &len) == 0)
        dp_pool_wire(p, data, len);
    dp_wr_release(&w);
}

/* s_cancel: CANCEL [id...]; none named: every job. */
static void s_cancel(dp_agent_t *a, dp_rd_t *r)
{
    uint32_t n;
    if (dp_msg_read_cancel(r, &n))
        return;
    if (n == 0) {
        dp_ag_cancel_all(a);
        return;
    }
    uint64_t *ids = malloc((size_t)n * sizeof *ids);
    uint32_t got = 0;
    for (; got < n; got++) {
        uint64_t id;
        if (dp_msg_read_cancel_id(r, &id))
            break;
        if (ids)
            ids[got] = id;
        else
            dp_ag_cancel(a, id); /* no memory: one walk per id */
    }
    if (ids)
        dp_ag_cancel_ids(a, ids, got);
    free(ids);
}

/* s_refuse: SUBMIT seq (njobs jobs) could not be taken whole (out of
 * memory): an ERROR refusing it, as a broker's. */
static void s_refuse(dp_pool_t *p, int code, uint64_t seq, uint32_t njobs)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_refusal(&w, code, "the local pool could not take the batch", seq,
                   njobs);
    char *data;
    size_t len;
    if (dp_wr_take(&w, &data, &len) == 0)
        dp_pool_wire(p, data, len);
    dp_wr_release(&w);
}

/* s_message: one message of the caller's (taken). */
static void s_message(dp_pool_t *p, dp_agent_t *a, char *data, size_t len)
{
    int cmd;
    dp_rd_t r;
    if (dp_msg_open(data, len, &p->lim, &cmd, &r)) {
        free(data);
        return;
    }
    if (cmd == DP_CMD_SUBMIT) {
        uint64_t seq = 0;
        uint32_t njobs = 0;
        dp_msg_peek_submit(&r, &seq, &njobs);
        int rc = dp_ag_on_submit(a, data, len); /* data taken */
        if (rc) /* refused as a broker refuses one: each job gets the
                   error (one queued already is answered once: the
                   client keeps the first result of an id) */
            s_refuse(p, rc, seq, njobs);
        return;
    }
    if (cmd == DP_CMD_CANCEL)
        s_cancel(a, &r);
    else if (cmd == DP_CMD_STATUS)
        s_status(p, a);
    /* BYE, HEARTBEAT: nothing to do; no ACK is sent (not resumable) */
    free(data);
}

/* s_outbox: every message queued by the caller. */
static void s_outbox(dp_pool_t *p, dp_agent_t *a)
{
    dp_item_t *it = dp_pool_io_outbox(p);
    for (dp_item_t *nx; it; it = nx) {
        nx = it->next;
        s_message(p, a, it->data, it->len);
        free(it);
    }
}

/* s_wait: poll the wake fd, the caller's input fd and the children until
 * something is ready or the agent's next deadline; what is ready is
 * handled (not waiting at all when `more` children are to start). false
 * when the pool is to stop. */
static bool s_wait(dp_pool_t *p, dp_agent_t *a, bool more)
{
    size_t nc = 0;
    for (dp_ag_child_t *c = a->children; c; c = c->next)
        nc++;
    struct pollfd fds[2 + nc];
    dp_ag_child_t *who[nc + 1];
    int watch = dp_pool_io_watch(p);
    fds[0] = (struct pollfd){p->wake_fd, POLLIN, 0};
    fds[1] = (struct pollfd){watch, POLLIN, 0}; /* -1: ignored by poll */
    int n = 2;
    for (dp_ag_child_t *c = a->children; c; c = c->next) {
        if (c->eof)
            continue;
        who[n - 2] = c;
        fds[n++] = (struct pollfd){c->fd, POLLIN, 0};
    }
    uint64_t now = dp_now_ms();
    uint64_t due = dp_ag_kids_due(a, now, now + S_IDLE_MS);
    if (a->reap && due > now + S_REAP_RETRY_MS)
        due = now + S_REAP_RETRY_MS;
    if (more) /* children still to start: only look, do not wait */
        due = now;
    int rc = poll(fds, (nfds_t)n, (int)(due > now ? due - now : 0));
    if (rc < 0 && errno != EINTR)
        return false;
    if (rc > 0 && watch >= 0 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)))
        dp_pool_io_fd_ready(p);
    if (rc > 0 && (fds[0].revents & POLLIN))
        dp_pool_io_woken(p);
    for (int k = 2; rc > 0 && k < n; k++) {
        if (!fds[k].revents)
            continue;
        dp_ag_child_readable(a, who[k - 2]);
        if (who[k - 2]->eof)
            a->reap = true; /* its exit follows: waitpid by pid */
    }
    return !dp_pool_io_stopping(p);
}

static void *s_main(void *arg)
{
    dp_pool_t *p = arg;
    dp_agent_t *a = &p->local->a;
    bool more = dp_ag_top_up_max(a, 1); /* here: the children are ours */
    while (s_wait(p, a, more)) {
        s_outbox(p, a);
        if (a->reap)
            a->reap = dp_ag_reap(a);
        dp_ag_check_deadlines(a, dp_now_ms());
        dp_ag_assign(a); /* to those started, before the next starts */
        more = dp_ag_top_up_max(a, 1);
        dp_ag_assign(a);
        dp_ag_flush(a);
    }
    /* here, before this thread ends: the children die with it
     * (PR_SET_PDEATHSIG). cpu children killed, the io child told to go:
     * it removes the files of unfinished downloads */
    dp_ag_kids_close(a, DP_KILL_GRACE_MS);
    return NULL;
}

/* s_dup: a copy of s (NULL stays NULL); false when out of memory. */
static bool s_dup(const char *s, char **out)
{
    *out = s ? strdup(s) : NULL;
    return !s || *out;
}

/* s_programs: the child programs' paths, found as the embedded daemons
 * are (dp_embed_find_bin). 0 or DP_ERR_INVALID (said on stderr). */
static int s_programs(struct dp_local *l, const dp_pool_opts_t *o, bool cpu,
                      bool io)
{
    char bin[PATH_MAX];
    if (dp_embed_find_bin(o, DP_CPU_CHILD_PROG, bin, sizeof bin)) {
        fprintf(stderr, "dpool: cannot find " DP_CPU_CHILD_PROG
                        " (looked beside the program, in " DP_INSTALL_BINDIR
                        "; set DPOOL_BIN_DIR to its directory)\n");
        return DP_ERR_INVALID;
    }
    int c = snprintf(l->cpu_exe, sizeof l->cpu_exe, "%.*s/%s", PATH_MAX / 2,
                     bin, DP_CPU_CHILD_PROG);
    int i = snprintf(l->io_exe, sizeof l->io_exe, "%.*s/%s", PATH_MAX / 2, bin,
                     DP_IO_CHILD_PROG);
    if (c < 0 || i < 0 || strlen(bin) >= PATH_MAX / 2)
        return DP_ERR_INVALID;
    const char *need[] = {cpu ? l->cpu_exe : NULL, io ? l->io_exe : NULL};
    for (size_t k = 0; k < 2; k++) {
        if (need[k] && access(need[k], X_OK) != 0) {
            fprintf(stderr, "dpool: cannot run %s: %s\n", need[k],
                    strerror(errno));
            return DP_ERR_INVALID;
        }
    }
    return 0;
}

int dp_local_start(dp_pool_t *p, const dp_pool_opts_t *o)
{
    struct dp_local *l = calloc(1, sizeof *l);
    if (!l)
        return DP_ERR_NOMEM;
    p->local = l;
    long ncpu = !o || !o->processes ? sysconf(_SC_NPROCESSORS_ONLN)
                : o->processes < 0  ? 0
                                    : o->processes;
    long io = o && o->io_slots > 0 ? o->io_slots : DP_IO_SLOTS_DEFAULT;
    int rc = s_programs(l, o, ncpu > 0, io > 0);
    if (rc)
        return rc;
    if (gethostname(l->name, sizeof l->name) != 0)
        snprintf(l->name, sizeof l->name, "local");
    l->name[sizeof l->name - 1] = '\0';
    if (!s_dup(o ? o->store_dir : NULL, &l->store_dir) ||
        !s_dup(o ? o->ca_file : NULL, &l->ca_file) || !(l->env = s_env()))
        return DP_ERR_NOMEM;
    dp_agent_cfg_t cfg = {
        .processes = ncpu,
        .io_slots = io,
        .prefetch = DP_PREFETCH_DEFAULT,
        .cpu_exe = l->cpu_exe,
        .io_exe = l->io_exe,
        .embedded = true, /* the children: plaintext, downloads anywhere */
        .envp = l->env,
        .child = {.name = l->name,
                  .limits = {DP_HASH_MAX_ITERATIONS_DEFAULT,
                             DP_HASH_MAX_DKLEN_DEFAULT,
                             DP_DOWNLOAD_MAX_BYTES_DEFAULT},
                  .wire = p->lim,
                  .store_dir = l->store_dir,
                  .ca_file = l->ca_file,
                  .insecure = o && o->insecure},
    };
    dp_ag_core_init(&l->a, &cfg);
    l->started = true;
    l->a.sink = s_sink;
    l->a.sink_arg = p;
    /* the agent's code logs what a worker's operator wants to know; in a
     * user's program only warnings and errors, unless DPOOL_LOG says */
    dp_log_cap(DP_LOG_WARN);
    p->client_no = 1;
    p->hb_ms = DP_CLIENT_HB_MS_DEFAULT;
    p->cpu_slots = (int)ncpu;
    if (pthread_create(&p->thr, NULL, s_main, p) != 0)
        return DP_ERR_NOMEM;
    p->thr_started = true;
    return 0;
}

void dp_local_stop(dp_pool_t *p)
{
    struct dp_local *l = p->local;
    if (!l)
        return;
    if (l->started) {
        dp_ag_kids_stop(&l->a); /* none, unless the thread never ran */
        dp_ag_core_release(&l->a);
    }
    free(l->store_dir);
    free(l->ca_file);
    for (size_t k = 0; l->env && l->env[k]; k++)
        free(l->env[k]);
    free(l->env);
    free(l);
    p->local = NULL;
}
