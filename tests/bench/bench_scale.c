/*
 * bench_scale.c - the broker at scale (issue 12): the real dpool-broker
 * with W simulated workers of S slots each (raw DEALER sockets in this
 * process that answer every job at once) and J queued echo jobs from C
 * simulated clients. Prints, per tenth of the queue drained, the
 * dispatch rate (jobs the workers received) and the broker's RSS, so "dispatch
 * cost per job is flat as the queue grows" is read off one table.
 *
 *   build/tests/bench_scale [--jobs N] [--workers W] [--slots S]
 *       [--clients C] [--deadline SECONDS] [-- broker options...]
 *
 * Defaults: 10,000,000 jobs, 100 workers x 10 slots, 10 clients, 900 s.
 * Broker options after "--" (e.g. raised queue caps) are passed as they
 * are. The broker is started from DP_BIN_DIR on a free loopback port and
 * stopped by pid; every wait has the deadline. Not part of ctest.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "dp_clock.h"
#include "dp_e2e.h"
#include "dp_msg.h"
#include "dp_zsock.h"

#define S_SUBMIT_JOBS 100000 /* jobs per SUBMIT */
#define S_WINDOW 4           /* SUBMITs in flight per client */
#define S_MAX_PEERS 1024
#define S_ARGS_MAX 64
#define S_TENTHS 10

typedef struct {
    void *sock;
    uint32_t no;      /* client: peer number from WELCOME */
    uint64_t next;    /* client: next job number to submit */
    uint64_t target;  /* client: jobs it submits */
    uint64_t got;     /* client: results received */
    unsigned pending; /* client: SUBMITs not yet ACCEPTED */
} s_peer_t;

static long s_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static void *s_dealer(void *ctx, const char *ep)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero);
    dp_zsock_linger0(s);
    if (zmq_connect(s, ep) != 0) {
        fprintf(stderr, "connect %s: %s\n", ep, zmq_strerror(zmq_errno()));
        exit(1);
    }
    return s;
}

static void s_send(void *sock, dp_wr_t *w)
{
    if (dp_zsend(sock, NULL, 0, w, 0) != 0) {
        fprintf(stderr, "send: %s\n", strerror(errno));
        exit(1);
    }
}

static void s_ready(void *sock, unsigned k, unsigned slots)
{
    char name[32];
    snprintf(name, sizeof name, "sim-%u", k);
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_READY);
    dp_wr_array(&w, 5);
    dp_wr_cstr(&w, name);
    dp_wr_uint(&w, 1000 + k);
    dp_wr_uint(&w, slots);
    dp_wr_uint(&w, 0);
    dp_wr_array(&w, 1);
    dp_wr_cstr(&w, "echo");
    s_send(sock, &w);
    dp_wr_release(&w);
}

static void s_hello(void *sock, unsigned k)
{
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_HELLO);
    dp_wr_array(&w, 2);
    dp_wr_cstr(&w, "bench-client");
    dp_wr_uint(&w, 2000 + k);
    s_send(sock, &w);
    dp_wr_release(&w);
}

/* s_submit: the client's next SUBMIT of up to S_SUBMIT_JOBS echo jobs. */
static void s_submit(s_peer_t *c)
{
    uint64_t n = c->target - c->next;
    if (n > S_SUBMIT_JOBS)
        n = S_SUBMIT_JOBS;
    if (n == 0)
        return;
    uint64_t seq = (uint64_t)c->no << 32 | (c->next + 1);
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_SUBMIT);
    dp_wr_array(&w, 3);
    dp_wr_uint(&w, seq);
    dp_wr_array(&w, (uint32_t)n);
    for (uint64_t k = 0; k < n; k++) {
        dp_value_t args = dp_array(1);
        args.v.a.items[0] = dp_uint(k);
        dp_msg_put_job(&w, seq + k, "echo", &args, 0, 3);
        dp_value_clear(&args);
    }
    dp_wr_uint(&w, 1);
    s_send(c->sock, &w);
    dp_wr_release(&w);
    c->next += n;
    c->pending++;
}

/* s_on_jobs: answer every job of a JOBS message at once. */
static uint64_t s_on_jobs(void *sock, dp_rd_t *r, unsigned k)
{
    uint32_t chunk, n;
    if (dp_msg_read_jobs(r, &chunk, &n))
        return 0;
    dp_wr_t w;
    dp_wr_init(&w);
    dp_msg_begin(&w, DP_CMD_RESULTS);
    dp_wr_array(&w, n);
    dp_value_t v = dp_nil();
    for (uint32_t j = 0; j < n; j++) {
        uint32_t attempt;
        dp_job_t job;
        if (dp_msg_read_dispatch(r, &attempt, &job)) {
            fprintf(stderr, "malformed JOBS\n");
            exit(1);
        }
        dp_msg_put_result(&w, job.id, 0, &v, NULL, "sim", 1000 + k, 1, attempt);
    }
    s_send(sock, &w);
    dp_wr_release(&w);
    return n;
}

static int s_recv_cmd(void *sock, dp_zmsg_t *m, dp_rd_t *r, int *cmd)
{
    if (dp_zrecv(sock, 0, m, ZMQ_DONTWAIT) != 0)
        return -1;
    static dp_limits_t lim; /* r keeps a pointer to it */
    lim = dp_limits_default();
    if (dp_msg_open(zmq_msg_data(&m->body), zmq_msg_size(&m->body), &lim, cmd,
                    r) != 0) {
        zmq_msg_close(&m->body);
        return -1;
    }
    return 0;
}

static uint64_t s_flag_u(int argc, char **argv, int *k)
{
    if (*k + 1 >= argc) {
        fprintf(stderr, "%s needs a value\n", argv[*k]);
        exit(2);
    }
    return strtoull(argv[++*k], NULL, 10);
}

int main(int argc, char **argv)
{
    uint64_t jobs = 10000000, workers = 100, slots = 10, clients = 10;
    uint64_t deadline_s = 900;
    char *bargs[S_ARGS_MAX];
    int nb = 0;
    char ep[64], port[16];
    dp_e2e_t e;
    if (dp_e2e_init(&e, DP_BIN_DIR) != 0)
        return 1;
    snprintf(port, sizeof port, "%d", dp_e2e_free_port());
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%s", port);
    char bin[4200];
    snprintf(bin, sizeof bin, "%s/dpool-broker", DP_BIN_DIR);
    bargs[nb++] = bin;
    bargs[nb++] = "--bind";
    bargs[nb++] = ep;
    bargs[nb++] = "--log-level";
    bargs[nb++] = "warn";
    for (int k = 1; k < argc; k++) {
        if (strcmp(argv[k], "--jobs") == 0)
            jobs = s_flag_u(argc, argv, &k);
        else if (strcmp(argv[k], "--workers") == 0)
            workers = s_flag_u(argc, argv, &k);
        else if (strcmp(argv[k], "--slots") == 0)
            slots = s_flag_u(argc, argv, &k);
        else if (strcmp(argv[k], "--clients") == 0)
            clients = s_flag_u(argc, argv, &k);
        else if (strcmp(argv[k], "--deadline") == 0)
            deadline_s = s_flag_u(argc, argv, &k);
        else if (strcmp(argv[k], "--") == 0)
            while (++k < argc && nb < S_ARGS_MAX - 1)
                bargs[nb++] = argv[k];
        else {
            fprintf(stderr,
                    "usage: %s [--jobs N] [--workers W] [--slots S] "
                    "[--clients C] [--deadline S] [-- broker opts]\n",
                    argv[0]);
            return 2;
        }
    }
    bargs[nb] = NULL;
    if (workers + clients > S_MAX_PEERS || clients == 0 || workers == 0) {
        fprintf(stderr, "at most %d peers, at least one of each\n",
                S_MAX_PEERS);
        return 2;
    }
    pid_t broker = fork();
    if (broker == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(bin, bargs);
        _exit(127);
    }
    uint64_t t_end = dp_now_ms() + deadline_s * 1000;
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, S_MAX_PEERS + 16);
    s_peer_t *cl = calloc(clients, sizeof *cl);
    s_peer_t *wk = calloc(workers, sizeof *wk);
    zmq_pollitem_t *items = calloc(clients + workers, sizeof *items);
    int code = 1;

    /* 1. clients connect and fill the queue (no worker yet) */
    for (unsigned k = 0; k < clients; k++) {
        cl[k].sock = s_dealer(ctx, ep);
        cl[k].target = jobs / clients + (k < jobs % clients);
        s_hello(cl[k].sock, k);
        items[k] = (zmq_pollitem_t){cl[k].sock, 0, ZMQ_POLLIN, 0};
    }
    uint64_t t0 = dp_now_ms(), submitted_acc = 0, welcomed = 0;
    bool filling = true;
    uint64_t done = 0, total_dispatched = 0;
    int tenth = 0;
    uint64_t t_tenth = 0, done_tenth = 0;
    long rss_full = 0;
    printf("broker at scale: %llu jobs from %llu clients, %llu workers x "
           "%llu slots\n",
           (unsigned long long)jobs, (unsigned long long)clients,
           (unsigned long long)workers, (unsigned long long)slots);
    fflush(stdout);
    while (dp_now_ms() < t_end) {
        unsigned npoll = (unsigned)(clients + (filling ? 0 : workers));
        if (zmq_poll(items, (int)npoll, 100) < 0 && zmq_errno() != EINTR)
            break;
        for (unsigned k = 0; k < clients; k++) {
            dp_zmsg_t m;
            dp_rd_t r;
            int cmd;
            while (s_recv_cmd(cl[k].sock, &m, &r, &cmd) == 0) {
                if (cmd == DP_CMD_WELCOME) {
                    uint32_t n;
                    uint64_t no;
                    dp_rd_array(&r, &n);
                    dp_rd_uint(&r, &no);
                    cl[k].no = (uint32_t)no;
                    welcomed++;
                    for (int s = 0; s < S_WINDOW; s++)
                        s_submit(&cl[k]);
                } else if (cmd == DP_CMD_ACCEPTED) {
                    uint32_t n;
                    uint64_t seq, acc;
                    dp_rd_array(&r, &n);
                    dp_rd_uint(&r, &seq);
                    dp_rd_uint(&r, &acc);
                    submitted_acc += acc;
                    cl[k].pending--;
                    s_submit(&cl[k]);
                } else if (cmd == DP_CMD_RESULTS) {
                    uint32_t n;
                    dp_rd_array(&r, &n);
                    cl[k].got += n;
                    done += n;
                } else if (cmd == DP_CMD_HEARTBEAT) {
                    dp_wr_t w;
                    dp_wr_init(&w);
                    dp_msg_empty(&w, DP_CMD_HEARTBEAT);
                    s_send(cl[k].sock, &w);
                    dp_wr_release(&w);
                } else if (cmd == DP_CMD_ERROR) {
                    fprintf(stderr, "client %u: broker sent ERROR\n", k);
                }
                zmq_msg_close(&m.body);
            }
        }
        if (filling && submitted_acc >= jobs) {
            rss_full = s_rss_kb(broker);
            printf("queued %llu jobs in %.1f s; broker RSS %.1f MiB "
                   "(%.0f bytes per queued job)\n",
                   (unsigned long long)jobs, (dp_now_ms() - t0) / 1000.0,
                   rss_full / 1024.0, rss_full * 1024.0 / (double)jobs);
            printf("%6s %12s %12s %12s\n", "queue", "jobs/s", "us/job",
                   "RSS MiB");
            fflush(stdout);
            filling = false;
            for (unsigned k = 0; k < workers; k++) {
                wk[k].sock = s_dealer(ctx, ep);
                s_ready(wk[k].sock, k, (unsigned)slots);
                items[clients + k] =
                    (zmq_pollitem_t){wk[k].sock, 0, ZMQ_POLLIN, 0};
            }
            t_tenth = dp_now_ms();
            done_tenth = 0;
        }
        for (unsigned k = 0; !filling && k < workers; k++) {
            dp_zmsg_t m;
            dp_rd_t r;
            int cmd;
            while (s_recv_cmd(wk[k].sock, &m, &r, &cmd) == 0) {
                if (cmd == DP_CMD_JOBS)
                    total_dispatched += s_on_jobs(wk[k].sock, &r, k);
                else if (cmd == DP_CMD_HEARTBEAT) {
                    dp_wr_t w;
                    dp_wr_init(&w);
                    dp_msg_empty(&w, DP_CMD_HEARTBEAT);
                    s_send(wk[k].sock, &w);
                    dp_wr_release(&w);
                }
                zmq_msg_close(&m.body);
            }
        }
        while (!filling && tenth < S_TENTHS &&
               total_dispatched >= jobs * (uint64_t)(tenth + 1) / S_TENTHS) {
            uint64_t now = dp_now_ms();
            uint64_t n = total_dispatched - done_tenth;
            double s = (double)(now - t_tenth) / 1000.0;
            printf("%5d%% %12.0f %12.2f %12.1f\n", 100 - 10 * tenth,
                   s > 0 ? (double)n / s : 0, n ? s * 1e6 / (double)n : 0,
                   s_rss_kb(broker) / 1024.0);
            fflush(stdout);
            tenth++;
            t_tenth = now;
            done_tenth = total_dispatched;
        }
        if (done >= jobs) {
            code = 0;
            break;
        }
    }
    if (code)
        fprintf(stderr,
                "deadline passed: %llu of %llu results (accepted %llu, "
                "clients welcomed %llu)\n",
                (unsigned long long)done, (unsigned long long)jobs,
                (unsigned long long)submitted_acc,
                (unsigned long long)welcomed);
    else
        printf("all %llu results in %.1f s; broker RSS at the end %.1f MiB\n",
               (unsigned long long)done, (dp_now_ms() - t0) / 1000.0,
               s_rss_kb(broker) / 1024.0);
    for (unsigned k = 0; k < clients; k++)
        zmq_close(cl[k].sock);
    for (unsigned k = 0; k < workers; k++)
        if (wk[k].sock)
            zmq_close(wk[k].sock);
    zmq_ctx_term(ctx);
    kill(broker, SIGTERM);
    waitpid(broker, NULL, 0);
    free(cl);
    free(wk);
    free(items);
    dp_e2e_fini(&e);
    return code;
}
