/*
 * dp_broker.c - the broker's life cycle and event loop. The rest is split
 * by concern (broker/dp_broker_int.h): peers and liveness (dp_peers.c),
 * dispatch and leases (dp_dispatch.c), message handlers (dp_handlers.c).
 */
#include "dp_broker.h"
#include "dp_broker_int.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_clock.h"
#include "dp_journal.h"
#include "dp_log.h"
#include "dp_msg.h"
#include "dp_queue.h"
#include "dp_rlimit.h"
#include "dp_zap.h"
#include "dp_zsock.h"

dp_broker_cfg_t dp_broker_cfg_default(void)
{
    dp_broker_cfg_t c;
    memset(&c, 0, sizeof c);
    c.heartbeat_ms = DP_HEARTBEAT_MS_DEFAULT;
    c.lookahead = -1;
    c.lease_grace_ms = DP_LEASE_GRACE_MS_DEFAULT;
    c.max_requeues = DP_REQUEUE_MAX_DEFAULT;
    c.max_client_jobs = DP_MAX_CLIENT_JOBS_DEFAULT;
    c.max_client_bytes = DP_MAX_CLIENT_BYTES_DEFAULT;
    c.max_client_held = DP_MAX_CLIENT_HELD_DEFAULT;
    c.max_jobs = DP_MAX_JOBS_DEFAULT;
    c.max_bytes = DP_MAX_BYTES_DEFAULT;
    c.hwm = DP_HWM_DEFAULT;
    c.limits = dp_limits_default();
    c.fsync_ms = DP_JOURNAL_FSYNC_MS_DEFAULT;
    c.session_grace_ms = DP_SESSION_GRACE_MS_DEFAULT;
    c.result_ttl_ms = DP_RESULT_TTL_MS_DEFAULT;
    c.max_batches = DP_MAX_BATCHES_DEFAULT;
    c.max_batch_held = DP_MAX_BATCH_HELD_DEFAULT;
    c.max_batch_readers = DP_MAX_BATCH_READERS_DEFAULT;
    return c;
}

/* ---- life cycle ---- */

dp_broker_t *dp_broker_new(const dp_broker_cfg_t *cfg)
{
    dp_broker_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->cfg = *cfg;
    long nofile = dp_rlimit_raise_nofile();
    if (b->cfg.max_peers <= 0) { /* each peer's connection is a file */
        long n = nofile > DP_FD_RESERVE + DP_MAX_PEERS_MIN
                     ? nofile - DP_FD_RESERVE
                     : DP_MAX_PEERS_MIN;
        b->cfg.max_peers =
            n > DP_MAX_PEERS_AUTO_MAX ? DP_MAX_PEERS_AUTO_MAX : n;
    }
    dp_info("open files: %ld; at most %ld peers", nofile, b->cfg.max_peers);
    dp_wr_init(&b->w);
    if (dp_queue_init(&b->q))
        goto fail;
    b->ctx = zmq_ctx_new();
    b->sock = b->ctx ? zmq_socket(b->ctx, ZMQ_ROUTER) : NULL;
    if (!b->sock)
        goto fail;
    int one = 1;
    int64_t maxmsg = (int64_t)cfg->limits.max_msg_bytes;
    zmq_setsockopt(b->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    int hwm = (int)cfg->hwm;
    zmq_setsockopt(b->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    dp_zsock_linger0(b->sock);
    if (cfg->curve_key && /* CURVE server + ZAP, before binding */
        !(b->zap = dp_zap_new(b->ctx, b->sock, cfg->curve_key, cfg->client_keys,
                              cfg->worker_keys)))
        goto fail;
    dp_optlist_t binds = cfg->binds;
    if (binds.n == 0)
        binds.v[binds.n++] = DP_BROKER_BIND_DEFAULT;
    for (int k = 0; k < binds.n; k++) {
        if (zmq_bind(b->sock, binds.v[k]) != 0) {
            dp_error("cannot bind %s: %s", binds.v[k],
                     zmq_strerror(zmq_errno()));
            goto fail;
        }
        dp_info("listening on %s", binds.v[k]);
    }
    return b;
fail:
    dp_broker_destroy(&b);
    return NULL;
}

/* s_poll_timeout: until the next heartbeat or the earliest lease
 * deadline (the top of the lease heap), whichever comes first. */
static uint64_t s_poll_timeout(const dp_broker_t *b)
{
    uint64_t now = dp_now_ms(), at = b->next_hb_ms;
    if (b->blocked && now + DP_BLOCKED_RETRY_MS < at)
        at = now + DP_BLOCKED_RETRY_MS;
    const dp_bjob_t *j = dp_queue_earliest(&b->q);
    if (j && j->deadline_ms < at)
        at = j->deadline_ms;
    uint64_t due = dp_bk_journal_due(b); /* the fsync window */
    if (due < at)
        at = due;
    return at > now ? at - now : 0;
}

int dp_broker_journal(dp_broker_t *b, char *err, size_t len)
{
    return dp_bk_journal_open(b, err, len);
}

int dp_broker_run(dp_broker_t *b, int stop_fd)
{
    b->next_hb_ms = dp_now_ms() + (uint64_t)b->cfg.heartbeat_ms;
    for (;;) {
        zmq_pollitem_t items[3] = {{b->sock, 0, ZMQ_POLLIN, 0},
                                   {NULL, stop_fd, ZMQ_POLLIN, 0},
                                   {dp_zap_socket(b->zap), 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, b->zap ? 3 : 2, (long)s_poll_timeout(b));
        if (n < 0 && zmq_errno() != EINTR) {
            dp_error("poll: %s", zmq_strerror(zmq_errno()));
            return DP_ERR_IO;
        }
        if (n > 0 && (items[1].revents & ZMQ_POLLIN) &&
            !dp_zap_on_signal(b->zap, stop_fd)) /* SIGHUP: reload keys */
            return 0;
        if (n > 0 && (items[2].revents & ZMQ_POLLIN))
            dp_zap_handle(b->zap);
        for (int k = 0; n > 0 && k < DP_POLL_BURST; k++) {
            if (k && (k % DP_POLL_CLOCK_EVERY) == 0 &&
                dp_now_ms() >= b->next_hb_ms)
                break; /* a flood must not starve the heartbeats */
            dp_zmsg_t m;
            int rc = dp_zrecv(b->sock, 1, &m, ZMQ_DONTWAIT);
            if (rc == DP_ERR_IO)
                break; /* EAGAIN: drained */
            if (rc == DP_ERR_PROTOCOL) {
                b->st.bad_msgs++;
                if (m.rid_len)
                    dp_bk_send_error(b, m.rid, m.rid_len, rc,
                                     "bad framing: expected [empty][message]");
                continue;
            }
            dp_bk_on_message(b, &m);
            zmq_msg_close(&m.body);
        }
        uint64_t now = dp_now_ms();
        if (now >= b->next_hb_ms)
            dp_bk_heartbeat(b, now);
        dp_bk_expire(b, now);
        dp_bk_purge(b);
        dp_bk_release_held(b);
        dp_bk_journal_turn(b, dp_now_ms()); /* nothing runs unstored */
        dp_bk_dispatch(b);
        dp_bk_flush_clients(b);
        dp_bk_purge(b);
        if (b->trim) { /* a flood went: give its pages back */
            malloc_trim(0);
            b->trim = false;
        }
    }
}

void dp_broker_destroy(dp_broker_t **bp)
{
    if (!bp || !*bp)
        return;
    dp_broker_t *b = *bp;
    if (b->sock) {
        int linger = DP_SHUTDOWN_LINGER_MS;
        zmq_setsockopt(b->sock, ZMQ_LINGER, &linger, sizeof linger);
        for (dp_peer_t *p = b->peers; p; p = p->next) {
            if (p->dead)
                continue;
            dp_wr_reset(&b->w);
            if (p->kind == DP_PEER_WORKER) {
                dp_msg_shutdown(&b->w, "broker stopping");
            } else {
                dp_msg_error(&b->w, DP_ERR_BROKER_LOST, "broker stopping");
            }
            dp_zsend(b->sock, p->rid, p->rid_len, &b->w, ZMQ_DONTWAIT);
        }
        zmq_close(b->sock);
    }
    dp_bk_journal_close(b); /* commits and fsyncs */
    dp_zap_destroy(&b->zap);
    if (b->ctx)
        zmq_ctx_term(b->ctx);
    while (b->peers) {
        dp_peer_t *p = b->peers;
        b->peers = p->next;
        dp_wr_release(&p->out);
        free(p);
    }
    dp_queue_release(&b->q);
    dp_wr_release(&b->w);
    free(b);
    *bp = NULL;
}
