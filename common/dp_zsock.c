#include "dp_zsock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void s_free(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int dp_zsend(void *sock, const void *rid, size_t rid_len, dp_wr_t *w, int flags)
{
    char *data;
    size_t len;
    int rc = dp_wr_take(w, &data, &len);
    if (rc)
        return rc;
    if (rid && zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | flags) < 0) {
        free(data);
        return DP_ERR_IO;
    }
    if (zmq_send(sock, "", 0, ZMQ_SNDMORE | flags) < 0) {
        free(data);
        return DP_ERR_IO;
    }
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, data, len, s_free, NULL) != 0) {
        free(data);
        return DP_ERR_NOMEM;
    }
    if (zmq_msg_send(&msg, sock, flags) < 0) {
        zmq_msg_close(&msg);
        return DP_ERR_IO;
    }
    return 0;
}

static int s_more(void *sock)
{
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    return more;
}

static void s_drain(void *sock)
{
    while (s_more(sock)) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        zmq_msg_recv(&f, sock, 0);
        zmq_msg_close(&f);
    }
}

int dp_zrecv(void *sock, int router, dp_zmsg_t *m, int flags)
{
    m->rid_len = 0;
    zmq_msg_init(&m->body);
    if (router) {
        int n = zmq_recv(sock, m->rid, sizeof m->rid, flags);
        if (n < 0) {
            zmq_msg_close(&m->body);
            return DP_ERR_IO;
        }
        m->rid_len = (size_t)n > sizeof m->rid ? sizeof m->rid : (size_t)n;
        flags = 0; /* the rest of a message is there once its first is */
    }
    /* delimiter */
    if (router && !s_more(sock))
        goto bad;
    if (zmq_msg_recv(&m->body, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&m->body);
        errno = e;
        return DP_ERR_IO;
    }
    if (zmq_msg_size(&m->body) != 0 || !s_more(sock))
        goto bad;
    if (zmq_msg_recv(&m->body, sock, 0) < 0)
        goto bad;
    if (s_more(sock))
        goto bad;
    return 0;
bad:
    s_drain(sock);
    zmq_msg_close(&m->body);
    return DP_ERR_PROTOCOL;
}

void dp_zsock_linger0(void *sock)
{
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
}
