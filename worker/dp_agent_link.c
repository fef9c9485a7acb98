/*
 * dp_agent_link.c - the agent's one broker connection (DEALER): connect,
 * READY until WELCOME (with backoff, and a warning when nothing answers),
 * heartbeats both ways, reading the broker's messages, and losing the
 * broker (missed heartbeats, SHUTDOWN): what it gave us that has not
 * started is forgotten (it requeues our leases itself) and the agent
 * reconnects.
 */
#include "dp_agent_int.h"

#include <unistd.h>

#include "dp_clock.h"
#include "dp_keys.h"
#include "dp_log.h"
#include "dp_msg.h"
#include "dp_zsock.h"

/* ---- the socket ---- */

/* s_reconnect_fast: ZeroMQ retries a failed connect after 100 ms by
 * default; an embedded worker often starts before its broker binds, so
 * retry soon and back off from there. */
static void s_reconnect_fast(void *sock)
{
    int ivl = DP_RECONNECT_MIN_MS, max = DP_RECONNECT_MAX_MS;
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &max, sizeof max);
}

/* s_await_welcome: not (or no longer) joined: send READY at once and
 * warn if no WELCOME comes within DP_CONNECT_WARN_MS. */
static void s_await_welcome(dp_agent_t *a)
{
    a->connected = false;
    a->next_ready_ms = 0;
    a->wait_since_ms = dp_now_ms();
    a->warned = false;
}

int dp_ag_open_socket(dp_agent_t *a)
{
    if (a->sock)
        zmq_close(a->sock);
    a->sock = zmq_socket(a->ctx, ZMQ_DEALER);
    if (!a->sock)
        return DP_ERR_IO;
    int one = 1, zero = 0;
    int64_t maxmsg = (int64_t)a->cfg.child.wire.max_msg_bytes;
    dp_zsock_linger0(a->sock);
    zmq_setsockopt(a->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    s_reconnect_fast(a->sock);
    zmq_setsockopt(a->sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(a->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    char kerr[DP_KEY_ERR_MAX]; /* CURVE client (dp_keys.h) */
    if (dp_keys_client(a->sock, a->cfg.curve_key, a->cfg.broker_key, kerr,
                       sizeof kerr)) {
        dp_error("%s", kerr);
        return DP_ERR_INVALID;
    }
    if (zmq_connect(a->sock, a->cfg.connect) != 0) {
        dp_error("cannot connect to %s: %s", a->cfg.connect,
                 zmq_strerror(zmq_errno()));
        return DP_ERR_INVALID;
    }
    s_await_welcome(a);
    return 0;
}

/* s_broker_lost: forget what the broker gave us that has not started (it
 * requeues our leases itself) and reconnect with backoff; an embedded
 * worker told SHUTDOWN stops instead. */
static void s_broker_lost(dp_agent_t *a, const char *why, bool shutdown)
{
    size_t dropped = dp_ag_forget(a);
    if (a->cfg.embedded && shutdown) {
        /* an embedded pool's broker goes only with the pool, which stops
         * its worker and broker together: whichever hears of it first,
         * this worker stops too. Reconnecting to a broker whose socket is
         * closing held the broker's exit for its 500 ms linger (1 run in
         * ~200 of `dpool factor 1`). A silent broker (missed heartbeats)
         * may come back: the worker keeps trying, as any worker does. */
        dp_info("broker %s %s; stopping (%zu queued jobs dropped)",
                a->cfg.connect, why, dropped);
        dp_ag_start_drain(a);
        return;
    }
    /* a stopping worker is leaving anyway: not worth a warning */
    dp_log(a->draining ? DP_LOG_INFO : DP_LOG_WARN,
           "broker %s %s; reconnecting (%zu queued jobs dropped)",
           a->cfg.connect, why, dropped);
    a->backoff_ms = DP_RECONNECT_MIN_MS;
    dp_ag_open_socket(a);
}

/* ---- sending ---- */

static void s_send_ready(dp_agent_t *a)
{
    size_t ntypes;
    const dp_jobtype_t *types = dp_jobtab_all(&ntypes);
    const char *names[DP_AG_TYPES_MAX];
    size_t n = 0;
    for (size_t k = 0; k < ntypes && n < DP_AG_TYPES_MAX; k++)
        names[n++] = types[k].name;
    dp_wr_reset(&a->w);
    dp_msg_ready(&a->w, a->cfg.child.name, (uint32_t)getpid(),
                 a->draining ? 0 : (uint32_t)a->cfg.processes,
                 a->draining ? 0 : (uint32_t)a->cfg.io_slots, names, n);
    dp_zsend(a->sock, NULL, 0, &a->w, ZMQ_DONTWAIT);
}

/* s_send_empty: a command without a body (HEARTBEAT, BYE). */
static void s_send_empty(dp_agent_t *a, int cmd)
{
    dp_wr_reset(&a->w);
    dp_msg_empty(&a->w, cmd);
    dp_zsend(a->sock, NULL, 0, &a->w, ZMQ_DONTWAIT);
}

void dp_ag_send_stop_credit(dp_agent_t *a)
{
    dp_wr_reset(&a->w);
    dp_msg_credit(&a->w, 0, 0);
    dp_zsend(a->sock, NULL, 0, &a->w, ZMQ_DONTWAIT);
}

void dp_ag_say_bye(dp_agent_t *a)
{
    s_send_empty(a, DP_CMD_BYE);
}

/* ---- receiving ---- */

/* WELCOME [peer_no, hb_ms, max_msg, cpu_slots, io_slots] */
static int s_on_welcome(dp_agent_t *a, dp_rd_t *r)
{
    dp_welcome_t wm;
    int rc = dp_msg_read_welcome(r, &wm);
    if (rc)
        return rc;
    uint64_t no = wm.peer_no, hb = wm.heartbeat_ms;
    if (!a->connected && a->warned)
        dp_info("connected to %s after %.1f s", a->cfg.connect,
                (double)(dp_now_ms() - a->wait_since_ms) / DP_MS_PER_S);
    if (!a->connected)
        dp_info("joined broker %s as #%llu", a->cfg.connect,
                (unsigned long long)no);
    a->warned = false;
    a->connected = true;
    a->hb_ms = hb ? hb : DP_WORKER_HB_MS_DEFAULT;
    a->backoff_ms = DP_RECONNECT_MIN_MS;
    return 0;
}

/* CANCEL [ids...] */
static int s_on_cancel(dp_agent_t *a, dp_rd_t *r)
{
    uint32_t n;
    int rc = dp_msg_read_cancel(r, &n);
    for (uint32_t k = 0; !rc && k < n; k++) {
        uint64_t id;
        rc = dp_msg_read_cancel_id(r, &id);
        if (!rc)
            dp_ag_cancel(a, id);
    }
    return rc;
}

/* ERROR [code, msg]: UNKNOWN_PEER means the broker restarted. */
static void s_on_error(dp_agent_t *a, dp_rd_t *r)
{
    dp_error_msg_t e;
    if (dp_msg_read_error(r, &e))
        e.code = 0, e.message = "", e.message_len = 0;
    if (e.code == DP_ERR_UNKNOWN_PEER)
        s_await_welcome(a);
    else
        dp_warn("broker says: %.*s", (int)e.message_len, e.message);
}

/* s_on_broker: one message; m->body is borrowed (JOBS moves it out). */
static void s_on_broker(dp_agent_t *a, dp_zmsg_t *m)
{
    int cmd;
    dp_rd_t r;
    int rc = dp_msg_open(zmq_msg_data(&m->body), zmq_msg_size(&m->body),
                         &a->cfg.child.wire, &cmd, &r);
    if (rc) {
        dp_warn("bad message from the broker: %s", dp_strerror(rc));
        return;
    }
    a->last_rx_ms = dp_now_ms();
    switch (cmd) {
    case DP_CMD_WELCOME:
        rc = s_on_welcome(a, &r);
        break;
    case DP_CMD_JOBS:
        rc = dp_ag_on_jobs(a, &m->body);
        break;
    case DP_CMD_CANCEL:
        rc = s_on_cancel(a, &r);
        break;
    case DP_CMD_ERROR:
        s_on_error(a, &r);
        break;
    case DP_CMD_SHUTDOWN:
        s_broker_lost(a, "is shutting down", true);
        break;
    default:
        break; /* HEARTBEAT: liveness only */
    }
    if (rc)
        dp_warn("bad %s from the broker: %s", dp_cmd_name(cmd),
                dp_strerror(rc));
}

void dp_ag_read_broker(dp_agent_t *a)
{
    for (int k = 0; k < DP_AGENT_BURST; k++) {
        dp_zmsg_t m;
        int rc = dp_zrecv(a->sock, 0, &m, ZMQ_DONTWAIT);
        if (rc == DP_ERR_IO)
            return;
        if (rc == 0) {
            s_on_broker(a, &m);
            zmq_msg_close(&m.body);
        }
    }
}

/* ---- timers ---- */

/* s_connect_warn: say once per wait that no WELCOME came yet (a worker
 * pointed at nothing, or refused by CURVE, is otherwise silent). */
static void s_connect_warn(dp_agent_t *a, uint64_t now)
{
    if (a->warned || now < a->wait_since_ms + DP_CONNECT_WARN_MS)
        return;
    a->warned = true;
    dp_warn("no answer from %s yet; still trying (is the broker running? "
            "with CURVE, are the keys right?)",
            a->cfg.connect);
}

void dp_ag_link_timers(dp_agent_t *a, uint64_t now)
{
    if (!a->connected) {
        s_connect_warn(a, now);
        if (now >= a->next_ready_ms) {
            s_send_ready(a);
            a->next_ready_ms = now + a->backoff_ms;
            a->backoff_ms = a->backoff_ms * 2 > DP_RECONNECT_MAX_MS
                                ? DP_RECONNECT_MAX_MS
                                : a->backoff_ms * 2;
        }
        return;
    }
    if (now - a->last_rx_ms > a->hb_ms * DP_HEARTBEAT_LIVENESS_W) {
        s_broker_lost(a, "missed its heartbeats", false);
        return;
    }
    if (now >= a->next_hb_ms) {
        s_send_empty(a, DP_CMD_HEARTBEAT);
        a->next_hb_ms = now + a->hb_ms;
    }
}

uint64_t dp_ag_link_due(const dp_agent_t *a, uint64_t now)
{
    uint64_t t = now + a->hb_ms;
    uint64_t silent = a->last_rx_ms + a->hb_ms * DP_HEARTBEAT_LIVENESS_W;
    if (!a->connected && a->next_ready_ms < t)
        t = a->next_ready_ms;
    if (!a->connected && !a->warned &&
        a->wait_since_ms + DP_CONNECT_WARN_MS < t)
        t = a->wait_since_ms + DP_CONNECT_WARN_MS;
    if (a->connected && a->next_hb_ms < t)
        t = a->next_hb_ms;
    if (a->connected && silent < t)
        t = silent + 1;
    return t;
}
