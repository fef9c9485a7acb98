/*
 * dp_zsock.h - sending and receiving dpool messages on ZeroMQ sockets.
 *
 * A ROUTER message is [routing id][empty][payload]; a DEALER message is
 * [empty][payload] (the empty delimiter keeps REQ-style peers possible).
 * dp_zsend hands the writer's buffer to ZeroMQ without copying.
 */
#ifndef DP_ZSOCK_H
#define DP_ZSOCK_H

#include <stddef.h>
#include <zmq.h>

#include "dp_wire.h"

#define DP_ROUTING_ID_MAX 255

typedef struct {
    unsigned char rid[DP_ROUTING_ID_MAX];
    size_t rid_len; /* 0 on a DEALER */
    zmq_msg_t body; /* the payload frame; close with zmq_msg_close */
} dp_zmsg_t;

/* dp_zsend: send w's bytes (taken, w left empty) to rid (NULL on a
 * DEALER). flags: ZMQ_DONTWAIT or 0. 0, or DP_ERR_IO (errno set), or
 * the writer's error. */
int dp_zsend(void *sock, const void *rid, size_t rid_len, dp_wr_t *w,
             int flags);
/* dp_zrecv: receive one message; router true reads a routing id first.
 * Malformed framing (missing delimiter, extra frames) is drained and
 * reported as DP_ERR_PROTOCOL with the rid filled when known; EAGAIN and
 * EINTR come back as DP_ERR_IO with errno kept. On 0, close m->body. */
int dp_zrecv(void *sock, int router, dp_zmsg_t *m, int flags);
/* dp_zsock_linger0: set linger 0 (close never blocks). */
void dp_zsock_linger0(void *sock);

#endif
