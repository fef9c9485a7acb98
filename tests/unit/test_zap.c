/*
 * test_zap.c - broker/dp_zap.c without a network: which binds count as
 * local (secure by default), the command table of each role, and the
 * handler's refusal of a broker key file others can read.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_keys.h"
#include "dp_msg.h"
#include "dp_zap.h"

Test(zap, local_binds)
{
    const char *local[] = {"tcp://127.0.0.1:5555", "tcp://127.1.2.3:1",
                           "tcp://localhost:5555", "tcp://[::1]:5555",
                           "ipc:///tmp/x/broker",  "inproc://b"};
    for (size_t k = 0; k < sizeof local / sizeof local[0]; k++)
        cr_expect(dp_zap_bind_is_local(local[k]), "%s", local[k]);
    const char *open[] = {"tcp://*:5555",        "tcp://0.0.0.0:5555",
                          "tcp://[::]:5555",     "tcp://10.0.0.5:5555",
                          "tcp://eth0:5555",     "tcp://127.0.0.1.evil:1",
                          "tcp://1270.0.0.1:1",  "tcp://localhostx:1",
                          "ws://127.0.0.1:5555", "tcp://:5555"};
    for (size_t k = 0; k < sizeof open / sizeof open[0]; k++)
        cr_expect_not(dp_zap_bind_is_local(open[k]), "%s", open[k]);
}

Test(zap, roles)
{
    const int client_ok[] = {DP_CMD_HELLO,  DP_CMD_SUBMIT,    DP_CMD_CANCEL,
                             DP_CMD_STATUS, DP_CMD_HEARTBEAT, DP_CMD_BYE,
                             DP_CMD_ACK,    DP_CMD_BATCHES,   DP_CMD_ATTACH,
                             DP_CMD_FORGET, DP_CMD_CANCEL_BATCH};
    const int worker_ok[] = {DP_CMD_READY, DP_CMD_CREDIT, DP_CMD_RESULTS,
                             DP_CMD_HEARTBEAT, DP_CMD_BYE};
    for (int cmd = 0; cmd < DP_CMD_MAX_; cmd++) {
        bool c = false, w = false;
        for (size_t k = 0; k < sizeof client_ok / sizeof *client_ok; k++)
            c |= client_ok[k] == cmd;
        for (size_t k = 0; k < sizeof worker_ok / sizeof *worker_ok; k++)
            w |= worker_ok[k] == cmd;
        cr_expect_eq(dp_zap_role_allows("client:alice", cmd), c, "%s",
                     dp_cmd_name(cmd));
        cr_expect_eq(dp_zap_role_allows("worker:w1", cmd), w, "%s",
                     dp_cmd_name(cmd));
        cr_expect_not(dp_zap_role_allows("admin:x", cmd));
        cr_expect_not(dp_zap_role_allows("clientx:a", cmd));
        cr_expect_not(dp_zap_role_allows(NULL, cmd));
    }
}

Test(zap, refuses_a_readable_broker_key)
{
    char dir[] = "/tmp/dp_zap_XXXXXX", err[DP_KEY_ERR_MAX], key[64];
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(dp_keys_generate(dir, "broker", err, sizeof err), 0);
    snprintf(key, sizeof key, "%s/broker.key", dir);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_ROUTER);
    cr_assert_eq(chmod(key, 0644), 0);
    cr_assert_null(dp_zap_new(ctx, sock, key, dir, NULL));
    cr_assert_eq(chmod(key, 0600), 0);
    dp_zap_t *z = dp_zap_new(ctx, sock, key, dir, NULL);
    cr_assert_not_null(z);
    cr_assert_not_null(dp_zap_socket(z));
    cr_assert_eq(dp_zap_reload(z), 0);
    cr_assert_eq(dp_zap_denied(z), 0);
    dp_zap_destroy(&z);
    cr_assert_null(z);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
