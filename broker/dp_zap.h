/*
 * dp_zap.h - who may talk to the broker: CURVE (RFC 26) with a ZAP handler
 * (RFC 27) that admits a public key only if it is listed for a role, and
 * the per-message checks that follow from the role.
 *
 *   --client-keys DIR  DIR/NAME.pub admitted as user-id "client:NAME"
 *   --worker-keys DIR  DIR/NAME.pub admitted as user-id "worker:NAME"
 *
 * The ZAP socket (inproc://zeromq.zap.01, a REP socket in the broker's
 * context) is serviced from the broker's own zmq_poll loop: the broker adds
 * dp_zap_socket() to its poll items and calls dp_zap_handle() when it is
 * readable. Each admitted connection also carries its key (ZAP metadata
 * "X-Dpool-Key"), so a message is checked against the key lists as they are
 * now: after a reload (SIGHUP) the next message of a revoked key (and
 * heartbeats come every second) is refused and its peer dropped.
 *
 * Roles: a client key may send HELLO, SUBMIT, CANCEL, STATUS, HEARTBEAT,
 * BYE; a worker key READY, CREDIT, RESULTS, HEARTBEAT, BYE. Everything else
 * is refused (ERROR UNKNOWN_CMD) and counted by the broker.
 *
 * Ownership: dp_zap_new copies what it needs; the broker owns the handler
 * and destroys it before terminating its context.
 */
#ifndef DP_ZAP_H
#define DP_ZAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "dp_msg.h"

#define DP_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define DP_ZAP_KEY_PROP "X-Dpool-Key" /* metadata: the peer's Z85 key */
#define DP_ZAP_ROLE_CLIENT "client"
#define DP_ZAP_ROLE_WORKER "worker"
#define DP_ZAP_USER_ID_MAX 80 /* "worker:" + a key name */
#define DP_ZAP_REQ_FRAMES 7   /* frames of a CURVE ZAP request */
#define DP_ZAP_FRAME_MAX 256  /* longest ZAP frame looked at */
#define DP_ZAP_SIG_RELOAD 'H' /* self-pipe byte of SIGHUP */

typedef struct dp_zap dp_zap_t;

/* dp_zap_new: load the broker's secret key and the role directories, bind
 * the ZAP socket in ctx and make sock a CURVE server. Call before sock
 * binds. NULL on failure (logged: which file and why). */
dp_zap_t *dp_zap_new(void *ctx, void *sock, const char *curve_key,
                     const char *client_dir, const char *worker_dir);
/* dp_zap_socket: the ZAP socket for the broker's poll items (NULL-safe:
 * NULL for no handler). */
void *dp_zap_socket(const dp_zap_t *z);
/* dp_zap_handle: answer every pending ZAP request (never blocks). */
void dp_zap_handle(dp_zap_t *z);
/* dp_zap_reload: read the role directories again; on an error the old
 * lists stay (logged). 0 or the error. */
int dp_zap_reload(dp_zap_t *z);
/* dp_zap_on_signal: read one byte from the broker's signal pipe fd:
 * DP_ZAP_SIG_RELOAD reloads the keys (z may be NULL: logged) and returns
 * true (go on); any other byte returns false (stop). */
bool dp_zap_on_signal(dp_zap_t *z, int fd);
/* dp_zap_role_allows: may the peer with this user-id ("client:NAME",
 * "worker:NAME") send cmd? */
bool dp_zap_role_allows(const char *user_id, int cmd);
/* dp_zap_key_valid: is the key of the connection msg came on still listed
 * for its role? */
bool dp_zap_key_valid(const dp_zap_t *z, zmq_msg_t *msg);
/* dp_zap_check: the broker's per-message hook (z NULL: always 0). 0 when
 * msg's sender may send cmd; DP_ERR_UNKNOWN_PEER when its key was revoked
 * (drop its peer); DP_ERR_UNKNOWN_CMD when its role forbids cmd. err gets
 * a message on refusal. */
int dp_zap_check(const dp_zap_t *z, zmq_msg_t *msg, int cmd, char *err,
                 size_t errlen);
/* dp_zap_worker_name: the key name of a worker connection (borrowed from
 * msg, valid while msg is), or NULL (no CURVE, or not a worker key). */
const char *dp_zap_worker_name(const dp_zap_t *z, zmq_msg_t *msg);
/* dp_zap_rename: when name is set and differs from res's worker field, res
 * encoded again in w (reset first) with name as its worker, and w is
 * returned; else NULL (forward res->raw as it is). */
const dp_wr_t *dp_zap_rename(dp_wr_t *w, const dp_res_t *res, const char *name);
/* dp_zap_bind_is_local: true for endpoints only this machine reaches:
 * ipc://, inproc://, tcp:// on 127.0.0.0/8, [::1] or localhost. Every
 * other bind needs CURVE keys or --insecure. */
bool dp_zap_bind_is_local(const char *endpoint);
/* dp_zap_denied: handshakes refused so far (unknown or malformed keys). */
uint64_t dp_zap_denied(const dp_zap_t *z);
/* dp_zap_destroy: close and free; NULL-safe, clears *z. */
void dp_zap_destroy(dp_zap_t **z);

#endif /* DP_ZAP_H */
