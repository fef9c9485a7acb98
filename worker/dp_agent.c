/*
 * dp_agent.c - the worker agent's life cycle and event loop, and draining
 * on SIGTERM. The rest is split by concern (worker/dp_agent_int.h): the
 * broker link (dp_agent_link.c), the children (dp_agent_kids.c), jobs and
 * results (dp_agent_jobs.c).
 *
 * Jobs the broker sends wait in a local FIFO per class until a child of
 * that class has room. Every job ends in exactly one result to the broker:
 * the child's own, or one the agent makes (LOST, TIMEOUT, CANCELLED,
 * REQUEUE when draining).
 */
#include "dp_agent.h"
#include "dp_agent_int.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_clock.h"
#include "dp_log.h"
#include "dp_rlimit.h"

/* ---- draining (SIGTERM) ---- */

void dp_ag_start_drain(dp_agent_t *a)
{
    if (a->draining)
        return;
    a->draining = true;
    a->drain_end_ms = dp_now_ms() + (uint64_t)(a->cfg.drain_grace_s * 1000);
    dp_info("stopping: no new jobs; waiting up to %.1f s for running ones",
            a->cfg.drain_grace_s);
    dp_ag_send_stop_credit(a);
    dp_ag_requeue_queued(a, "worker is stopping");
    for (dp_ag_child_t *c = a->children; c; c = c->next)
        if (c->jobs.n == 0)
            dp_ag_retire(c);
}

/* s_drained: true once no child holds a job (idle ones are told to go). */
static bool s_drained(dp_agent_t *a, uint64_t now)
{
    bool busy = false;
    for (dp_ag_child_t *c = a->children; c; c = c->next) {
        if (c->jobs.n == 0)
            dp_ag_retire(c);
        else
            busy = true;
    }
    if (busy && now >= a->drain_end_ms) {
        dp_warn("grace period over; killing busy children");
        for (dp_ag_child_t *c = a->children; c; c = c->next)
            if (c->jobs.n)
                dp_ag_kill(c, SIGKILL);
        a->drain_end_ms = UINT64_MAX;
    }
    return !busy;
}

/* ---- loop ---- */

static void s_on_signals(dp_agent_t *a, int sig_fd)
{
    char buf[DP_AG_SIG_READ];
    for (;;) {
        ssize_t n = read(sig_fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (ssize_t k = 0; k < n; k++) {
            if (buf[k] == 'C') {
                a->reap = true;
            } else if (buf[k] == 'T' && a->signalled) {
                dp_warn("second stop signal: killing children now");
                a->drain_end_ms = 0;
            } else if (buf[k] == 'T') {
                /* the first signal, though an embedded worker may
                 * already drain (its broker's SHUTDOWN came first) */
                a->signalled = true;
                dp_ag_start_drain(a);
            }
        }
    }
    /* SIGCHLD ('C'): children are reaped by the loop after their fds are
     * read (freeing one here would pull it from under this poll round) */
}

/* s_timeout_ms: how long the poll may wait, to the earliest deadline. */
static long s_timeout_ms(const dp_agent_t *a, uint64_t now)
{
    uint64_t t = dp_ag_link_due(a, now);
    if (a->draining && a->drain_end_ms < t)
        t = a->drain_end_ms;
    t = dp_ag_kids_due(a, now, t);
    return (long)(t > now ? t - now : 0);
}

/* s_turn: after the poll: reap (only after a SIGCHLD: waitpid each turn
 * is a syscall per job), time limits, the link's timers, children topped
 * up and given jobs, results sent. */
static void s_turn(dp_agent_t *a)
{
    if (a->reap) {
        a->reap = false;
        dp_ag_reap(a); /* one still exiting: its SIGCHLD comes */
    }
    uint64_t now = dp_now_ms();
    dp_ag_check_deadlines(a, now);
    dp_ag_link_timers(a, now);
    dp_ag_top_up(a);
    dp_ag_assign(a);
    dp_ag_flush(a);
}

int dp_agent_run(dp_agent_t *a, int sig_fd)
{
    a->last_rx_ms = dp_now_ms();
    for (;;) {
        uint64_t now = dp_now_ms();
        if (a->draining && s_drained(a, now) && !a->children) {
            dp_ag_flush(a);
            dp_ag_say_bye(a);
            dp_info("stopped cleanly");
            return 0;
        }
        size_t nc = 0;
        for (dp_ag_child_t *c = a->children; c; c = c->next)
            nc++;
        zmq_pollitem_t items[2 + nc];
        dp_ag_child_t *who[nc + 1];
        items[0] = (zmq_pollitem_t){a->sock, 0, ZMQ_POLLIN, 0};
        items[1] = (zmq_pollitem_t){NULL, sig_fd, ZMQ_POLLIN, 0};
        int n = 2;
        for (dp_ag_child_t *c = a->children; c; c = c->next) {
            if (c->eof)
                continue;
            who[n - 2] = c;
            items[n++] = (zmq_pollitem_t){NULL, c->fd, ZMQ_POLLIN, 0};
        }
        int rc = zmq_poll(items, n, s_timeout_ms(a, now));
        if (rc < 0 && zmq_errno() != EINTR)
            return DP_ERR_IO;
        if (rc > 0 && (items[1].revents & ZMQ_POLLIN))
            s_on_signals(a, sig_fd);
        for (int k = 2; rc > 0 && k < n; k++)
            if (items[k].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                dp_ag_child_readable(a, who[k - 2]);
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN))
            dp_ag_read_broker(a);
        s_turn(a);
    }
}

/* ---- life cycle ---- */

dp_agent_t *dp_agent_new(const dp_agent_cfg_t *cfg)
{
    dp_agent_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    dp_ag_core_init(a, cfg);
    dp_rlimit_raise_nofile(); /* children and io sockets are files too */
    a->hb_ms = DP_WORKER_HB_MS_DEFAULT;
    a->backoff_ms = DP_RECONNECT_MIN_MS;
    a->ctx = zmq_ctx_new();
    if (!a->ctx || dp_ag_open_socket(a)) {
        dp_agent_destroy(&a);
        return NULL;
    }
    dp_ag_top_up(a); /* after the socket: READY travels while they start */
    dp_info("worker %s: %ld cpu children, %ld io slots, broker %s",
            cfg->child.name, cfg->processes, cfg->io_slots, cfg->connect);
    return a;
}

void dp_agent_destroy(dp_agent_t **ap)
{
    if (!ap || !*ap)
        return;
    dp_agent_t *a = *ap;
    dp_ag_kids_stop(a);
    dp_ag_core_release(a);
    if (a->sock)
        zmq_close(a->sock);
    if (a->ctx)
        zmq_ctx_term(a->ctx);
    free(a);
    *ap = NULL;
}
