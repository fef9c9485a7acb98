/*
 * dp_zap.c - the broker's ZAP handler and role checks (see dp_zap.h).
 *
 * Why ZAP over the broker's own peer table: the handshake is where an
 * unknown key must stop, before it can send a single message (so the
 * broker's counters never see it). The role and key then travel with every
 * message as properties of its connection ("User-Id", "X-Dpool-Key"), so
 * the broker needs no extra state per peer to enforce them.
 */
#include "dp_zap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_keys.h"
#include "dp_log.h"

#define S_META_NAME_LEN 1  /* ZMTP metadata: 1-byte name length */
#define S_META_VALUE_LEN 4 /* 4-byte big-endian value length */
#define S_ROLES 2

struct dp_zap {
    void *sock;
    const char *dirs[S_ROLES]; /* from the broker's cfg (argv, env) */
    dp_keyset_t keys[S_ROLES];
    uint64_t denied;
};

static const char *const s_role_names[S_ROLES] = {DP_ZAP_ROLE_CLIENT,
                                                  DP_ZAP_ROLE_WORKER};

/* Commands each role may send (DP_CMD_* values), 0-terminated. */
static const int s_client_cmds[] = {DP_CMD_HELLO,
                                    DP_CMD_SUBMIT,
                                    DP_CMD_CANCEL,
                                    DP_CMD_STATUS,
                                    DP_CMD_BYE,
                                    DP_CMD_HEARTBEAT,
                                    DP_CMD_ACK,
                                    DP_CMD_BATCHES,
                                    DP_CMD_ATTACH,
                                    DP_CMD_FORGET,
                                    DP_CMD_CANCEL_BATCH,
                                    0};
static const int s_worker_cmds[] = {DP_CMD_READY,   DP_CMD_CREDIT,
                                    DP_CMD_RESULTS, DP_CMD_HEARTBEAT,
                                    DP_CMD_BYE,     0};

static int s_load(dp_zap_t *z)
{
    char err[DP_KEY_ERR_MAX];
    dp_keyset_t fresh[S_ROLES] = {{NULL, 0}, {NULL, 0}};
    for (int k = 0; k < S_ROLES; k++) {
        if (!z->dirs[k] || !z->dirs[k][0])
            continue;
        if (dp_keyset_load(&fresh[k], z->dirs[k], err, sizeof err)) {
            dp_error("%s keys: %s", s_role_names[k], err);
            dp_keyset_release(&fresh[0]);
            dp_keyset_release(&fresh[1]);
            return DP_ERR_INVALID;
        }
    }
    for (int k = 0; k < S_ROLES; k++) {
        dp_keyset_release(&z->keys[k]);
        z->keys[k] = fresh[k];
    }
    dp_info("CURVE keys: %zu client, %zu worker", z->keys[0].n, z->keys[1].n);
    return 0;
}

dp_zap_t *dp_zap_new(void *ctx, void *sock, const char *curve_key,
                     const char *client_dir, const char *worker_dir)
{
    char err[DP_KEY_ERR_MAX];
    dp_keypair_t kp;
    if (dp_keys_load_secret(curve_key, &kp, err, sizeof err)) {
        dp_error("%s", err);
        return NULL;
    }
    dp_zap_t *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    z->dirs[0] = client_dir;
    z->dirs[1] = worker_dir;
    if (s_load(z))
        goto fail;
    z->sock = zmq_socket(ctx, ZMQ_REP);
    int zero = 0;
    if (!z->sock ||
        zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(z->sock, DP_ZAP_ENDPOINT) != 0) {
        dp_error("cannot start the ZAP handler: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (dp_keys_server(sock, &kp)) {
        dp_error("cannot make the broker socket a CURVE server: %s",
                 zmq_strerror(zmq_errno()));
        goto fail;
    }
    dp_info("CURVE on: broker public key %s", kp.pub);
    memset(&kp, 0, sizeof kp);
    return z;
fail:
    memset(&kp, 0, sizeof kp);
    dp_zap_destroy(&z);
    return NULL;
}

void *dp_zap_socket(const dp_zap_t *z)
{
    return z ? z->sock : NULL;
}

int dp_zap_reload(dp_zap_t *z)
{
    if (!z)
        return 0;
    int rc = s_load(z);
    if (rc)
        dp_error("key reload failed; the previous keys stay in force");
    return rc;
}

bool dp_zap_on_signal(dp_zap_t *z, int fd)
{
    char c = 0;
    ssize_t n = read(fd, &c, 1);
    if (n != 1 || c != DP_ZAP_SIG_RELOAD)
        return false;
    if (z)
        dp_zap_reload(z);
    else
        dp_info("SIGHUP: no CURVE keys to reload");
    return true;
}

/* s_send: one ZAP reply frame. */
static void s_send(void *sock, const void *p, size_t len, bool more)
{
    zmq_send(sock, p, len, more ? ZMQ_SNDMORE : 0);
}

/* s_metadata: ZMTP metadata with one property, DP_ZAP_KEY_PROP = key. */
static size_t s_metadata(unsigned char *out, const char *key)
{
    size_t nlen = strlen(DP_ZAP_KEY_PROP), vlen = strlen(key), at = 0;
    out[at++] = (unsigned char)nlen;
    memcpy(out + at, DP_ZAP_KEY_PROP, nlen);
    at += nlen;
    for (int k = S_META_VALUE_LEN - 1; k >= 0; k--)
        out[at++] = (unsigned char)(vlen >> (8 * k));
    memcpy(out + at, key, vlen);
    return at + vlen;
}

/* s_reply: status 200 with user-id and key, or 400. */
static void s_reply(dp_zap_t *z, zmq_msg_t *reqid, const char *user_id,
                    const char *key)
{
    unsigned char meta[DP_ZAP_FRAME_MAX];
    size_t mlen = key ? s_metadata(meta, key) : 0;
    s_send(z->sock, "1.0", 3, true);
    s_send(z->sock, zmq_msg_data(reqid), zmq_msg_size(reqid), true);
    s_send(z->sock, user_id ? "200" : "400", 3, true);
    const char *text = user_id ? "OK" : "key not listed for any role";
    s_send(z->sock, text, strlen(text), true);
    s_send(z->sock, user_id ? user_id : "", user_id ? strlen(user_id) : 0,
           true);
    s_send(z->sock, meta, mlen, false);
}

/* s_decide: the user-id for CURVE key `key` (32 bytes), into uid; false
 * when the key is not listed. */
static bool s_decide(const dp_zap_t *z, const uint8_t *key, char *uid,
                     size_t len)
{
    for (int k = 0; k < S_ROLES; k++) {
        const char *name = dp_keyset_find(&z->keys[k], key);
        if (name) {
            snprintf(uid, len, "%s:%s", s_role_names[k], name);
            return true;
        }
    }
    return false;
}

/* s_one: read and answer one request; false when none is pending. */
static bool s_one(dp_zap_t *z)
{
    zmq_msg_t f[DP_ZAP_REQ_FRAMES];
    int n = 0, kept = 0, more = 1;
    bool ok = true;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, z->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&part);
            ok = false;
            break;
        }
        more = zmq_msg_more(&part);
        n++;
        if (kept < DP_ZAP_REQ_FRAMES) {
            zmq_msg_init(&f[kept]);
            zmq_msg_move(&f[kept++], &part);
        }
        zmq_msg_close(&part);
    }
    if (n == 0)
        return false;
    char uid[DP_ZAP_USER_ID_MAX], z85[DP_KEY_Z85_LEN + 1];
    bool admit = false;
    if (ok && n == DP_ZAP_REQ_FRAMES && zmq_msg_size(&f[5]) == 5 &&
        memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
        zmq_msg_size(&f[6]) == DP_KEY_BIN_LEN) {
        const uint8_t *key = zmq_msg_data(&f[6]);
        admit = s_decide(z, key, uid, sizeof uid) &&
                zmq_z85_encode(z85, key, DP_KEY_BIN_LEN) != NULL;
        if (!admit)
            dp_warn("refused a connection from %.*s: its key %s is not "
                    "listed",
                    (int)zmq_msg_size(&f[3]), (char *)zmq_msg_data(&f[3]),
                    zmq_z85_encode(z85, key, DP_KEY_BIN_LEN) ? z85 : "?");
    }
    if (!admit)
        z->denied++;
    if (kept >= 2)
        s_reply(z, &f[1], admit ? uid : NULL, admit ? z85 : NULL);
    for (int k = 0; k < kept; k++)
        zmq_msg_close(&f[k]);
    return true;
}

void dp_zap_handle(dp_zap_t *z)
{
    while (z && s_one(z))
        ;
}

bool dp_zap_role_allows(const char *user_id, int cmd)
{
    const int *cmds = NULL;
    if (!user_id)
        return false;
    if (strncmp(user_id, DP_ZAP_ROLE_CLIENT ":", sizeof DP_ZAP_ROLE_CLIENT) ==
        0)
        cmds = s_client_cmds;
    else if (strncmp(user_id, DP_ZAP_ROLE_WORKER ":",
                     sizeof DP_ZAP_ROLE_WORKER) == 0)
        cmds = s_worker_cmds;
    for (; cmds && *cmds; cmds++)
        if (*cmds == cmd)
            return true;
    return false;
}

bool dp_zap_key_valid(const dp_zap_t *z, zmq_msg_t *msg)
{
    const char *uid = zmq_msg_gets(msg, "User-Id");
    const char *z85 = zmq_msg_gets(msg, DP_ZAP_KEY_PROP);
    uint8_t key[DP_KEY_BIN_LEN];
    if (!uid || !z85 || strlen(z85) != DP_KEY_Z85_LEN ||
        !zmq_z85_decode(key, z85))
        return false;
    for (int k = 0; k < S_ROLES; k++) {
        size_t rl = strlen(s_role_names[k]);
        if (strncmp(uid, s_role_names[k], rl) || uid[rl] != ':')
            continue;
        const char *name = dp_keyset_find(&z->keys[k], key);
        return name && strcmp(name, uid + rl + 1) == 0;
    }
    return false;
}

int dp_zap_check(const dp_zap_t *z, zmq_msg_t *msg, int cmd, char *err,
                 size_t errlen)
{
    if (!z)
        return 0;
    const char *uid = zmq_msg_gets(msg, "User-Id");
    if (!dp_zap_key_valid(z, msg)) {
        snprintf(err, errlen, "key %s is no longer admitted",
                 uid ? uid : "(none)");
        return DP_ERR_UNKNOWN_PEER;
    }
    if (!dp_zap_role_allows(uid, cmd)) {
        snprintf(err, errlen, "command %s is not allowed for %s",
                 dp_cmd_name(cmd), uid);
        return DP_ERR_UNKNOWN_CMD;
    }
    return 0;
}

const char *dp_zap_worker_name(const dp_zap_t *z, zmq_msg_t *msg)
{
    if (!z)
        return NULL;
    const char *uid = zmq_msg_gets(msg, "User-Id");
    size_t rl = sizeof DP_ZAP_ROLE_WORKER - 1;
    if (!uid || strncmp(uid, DP_ZAP_ROLE_WORKER, rl) || uid[rl] != ':')
        return NULL;
    return uid + rl + 1;
}

uint64_t dp_zap_denied(const dp_zap_t *z)
{
    return z ? z->denied : 0;
}

void dp_zap_destroy(dp_zap_t **zp)
{
    if (!zp || !*zp)
        return;
    dp_zap_t *z = *zp;
    if (z->sock)
        zmq_close(z->sock);
    for (int k = 0; k < S_ROLES; k++)
        dp_keyset_release(&z->keys[k]);
    free(z);
    *zp = NULL;
}

const dp_wr_t *dp_zap_rename(dp_wr_t *w, const dp_res_t *res, const char *name)
{
    if (!name || (res->worker_len == strlen(name) &&
                  memcmp(res->worker, name, res->worker_len) == 0))
        return NULL; /* already right: forwarded without a copy */
    dp_wr_reset(w);
    dp_msg_put_result_as(w, res, name);
    return w->err ? NULL : w;
}

/* s_local_host: the host part of a tcp endpoint is loopback. */
static bool s_local_host(const char *h, size_t len)
{
    static const char *const local[] = {"localhost", "[::1]", "::1"};
    for (size_t k = 0; k < sizeof local / sizeof local[0]; k++)
        if (len == strlen(local[k]) && strncmp(h, local[k], len) == 0)
            return true;
    /* 127.0.0.0/8 written as a dotted quad */
    if (len < sizeof "127.0.0.0" - 1 || strncmp(h, "127.", 4) != 0)
        return false;
    int dots = 0;
    for (size_t k = 0; k < len; k++) {
        if (h[k] == '.')
            dots++;
        else if (h[k] < '0' || h[k] > '9')
            return false;
    }
    return dots == 3;
}

bool dp_zap_bind_is_local(const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) == 0 ||
        strncmp(endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return false; /* other transports: assume they reach out */
    const char *h = endpoint + 6, *colon = strrchr(h, ':');
    if (!colon || colon == h)
        return false;
    return s_local_host(h, (size_t)(colon - h));
}
