/*
 * dp_iochild.c - the io child: many downloads at once in one curl_multi
 * loop (dp_download.h), answering each as it finishes.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_child.h"
#include "dp_clock.h"
#include "dp_download.h"
#include "dp_frame.h"
#include "dp_log.h"
#include "dp_msg.h"

/* s_pid: this process's pid, asked once (a result carries it, and a
 * syscall per result shows up in the per-job count). */
static uint32_t s_pid(void)
{
    static uint32_t pid;
    if (!pid)
        pid = (uint32_t)getpid();
    return pid;
}

/* What the child remembers of a running job to answer for it. */
typedef struct s_run {
    uint64_t id;
    uint32_t attempt;
    uint64_t t0_us;
    struct s_run *next;
} s_run_t;

typedef struct {
    int fd; /* non-blocking */
    const dp_child_cfg_t *cfg;
    s_run_t *runs;
    dp_wr_t w;
    dp_buf_t out; /* framed results not yet written: transfers go on
                     while the agent reads a large body */
    size_t out_off;
    bool broken; /* the agent is gone: stop */
} s_io_t;

/* s_write_out: write what the socket takes now. */
static void s_write_out(s_io_t *io)
{
    while (!io->broken && io->out_off < io->out.len) {
        ssize_t n = write(io->fd, io->out.data + io->out_off,
                          io->out.len - io->out_off);
        if (n > 0) {
            io->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            io->broken = true;
        }
    }
    io->out.len = io->out_off = 0;
}

/* s_answer: frame one result and write what the socket takes. The frame
 * is built whole in io->w (its length patched in front), and when nothing
 * else waits it becomes the output buffer by a swap: a returned body is
 * copied once here (into the message), not twice. */
static void s_answer(s_io_t *io, uint64_t id, uint32_t attempt, int err,
                     const char *msg, const dp_value_t *value, uint64_t us)
{
    if (io->broken)
        return;
    static const unsigned char room[DP_FRAME_HDR];
    dp_wr_reset(&io->w);
    dp_wr_raw(&io->w, room, sizeof room);
    dp_msg_begin(&io->w, DP_CMD_RESULTS);
    dp_wr_array(&io->w, 1);
    dp_msg_put_result(&io->w, id, (uint32_t)err, value, msg, io->cfg->name,
                      s_pid(), us, attempt);
    if (io->w.err) {
        io->broken = true;
        return;
    }
    size_t len = io->w.buf.len - DP_FRAME_HDR;
    unsigned char *head = (unsigned char *)io->w.buf.data;
    for (unsigned k = 0; k < DP_FRAME_HDR; k++)
        head[k] = (unsigned char)(len >> (8 * k)); /* little-endian */
    if (io->out_off == io->out.len) {
        dp_buf_t t = io->out; /* keeps its capacity for the next frame */
        io->out = io->w.buf;
        io->w.buf = t;
        io->out_off = 0;
    } else if (dp_buf_put(&io->out, io->w.buf.data, io->w.buf.len)) {
        io->broken = true;
        return;
    }
    s_write_out(io);
}

/* s_tune: a process that moves bodies of megabytes keeps the memory it
 * freed for the next body (glibc would give each one back to the kernel
 * and fault it in again, page by page). The socket buffer stays at its
 * default: a larger one lets the agent read several bodies in one turn,
 * and its batches, and the broker's and the client's buffers behind it,
 * then grow into fresh memory (measured: about twice the page faults). */
static void s_tune(void)
{
    mallopt(M_MMAP_THRESHOLD, DP_IO_MMAP_THRESHOLD);
    mallopt(M_TRIM_THRESHOLD, DP_IO_TRIM_THRESHOLD);
}

static void s_done(void *ud, uint64_t id, int err, const char *msg,
                   dp_value_t *result)
{
    s_io_t *io = ud;
    s_run_t **pp = &io->runs;
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    s_run_t *r = *pp;
    if (r)
        *pp = r->next;
    s_answer(io, id, r ? r->attempt : 0, err, msg, result,
             r ? dp_now_us() - r->t0_us : 0);
    dp_value_clear(result);
    free(r);
}

static void s_add(s_io_t *io, dp_dl_t *dl, const dp_job_t *job,
                  uint32_t attempt)
{
    dp_value_t args = dp_nil();
    dp_rd_t r;
    dp_rd_init(&r, job->args.ptr, job->args.len, &io->cfg->wire);
    s_run_t *run = calloc(1, sizeof *run);
    int rc = run ? dp_rd_value(&r, &args) : DP_ERR_NOMEM;
    if (!rc) {
        const dp_jobtype_t *t = dp_jobtab_find(job->type, job->type_len);
        uint32_t limit =
            job->timeout_ms ? job->timeout_ms : (t ? t->timeout_ms : 0);
        run->id = job->id;
        run->attempt = attempt;
        run->t0_us = dp_now_us();
        run->next = io->runs;
        io->runs = run;
        rc = dp_dl_add(dl, job->id, args.v.a.items, args.v.a.len,
                       run->t0_us + (uint64_t)limit * 1000u, job->retries);
        if (rc) {
            io->runs = run->next;
        } else {
            run = NULL;
        }
    }
    free(run);
    if (rc)
        s_answer(io, job->id, attempt, rc, "download could not start", NULL, 0);
    dp_value_clear(&args);
}

/* s_frame: JOBS or CANCEL from the agent. */
static int s_frame(s_io_t *io, dp_dl_t *dl, const char *data, size_t len)
{
    int cmd;
    dp_rd_t r;
    uint32_t n;
    uint32_t chunk;
    int rc = dp_msg_open(data, len, &io->cfg->wire, &cmd, &r);
    if (!rc && cmd == DP_CMD_JOBS)
        rc = dp_msg_read_jobs(&r, &chunk, &n); /* all run at once here */
    else if (!rc)
        rc = dp_msg_read_cancel(&r, &n);
    for (uint32_t k = 0; !rc && k < n; k++) {
        if (cmd == DP_CMD_CANCEL) {
            uint64_t id;
            rc = dp_msg_read_cancel_id(&r, &id);
            if (!rc)
                dp_dl_cancel(dl, id);
            continue;
        }
        uint32_t attempt;
        dp_job_t job;
        rc = dp_msg_read_dispatch(&r, &attempt, &job);
        if (!rc)
            s_add(io, dl, &job, attempt);
    }
    return rc ? rc : dp_msg_end(&r);
}

int dp_child_io_main(int fd, const dp_child_cfg_t *cfg)
{
    s_io_t io = {.fd = fd, .cfg = cfg};
    dp_wr_init(&io.w);
    dp_buf_init(&io.out);
    dp_dl_opts_t o;
    dp_dl_opts_default(&o);
    o.max_bytes = cfg->limits.download_max_bytes;
    o.insecure = cfg->insecure;
    o.ca_file = cfg->ca_file;
    o.store_dir = cfg->store_dir;
    o.guard = cfg->guard;
    dp_dl_t *dl = dp_dl_new(&o, s_done, &io);
    if (!dl)
        return 1;
    dp_framer_t f;
    dp_framer_init(&f, cfg->wire.max_msg_bytes);
    int status = 0;
    s_tune();
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (!io.broken) {
        bool pending = io.out_off < io.out.len;
        dp_dl_pollfd_t extra = {fd, (short)(POLLIN | (pending ? POLLOUT : 0)),
                                0};
        if (dp_dl_poll(dl, &extra, 1, -1)) {
            status = 1;
            break;
        }
        if (extra.revents & POLLOUT)
            s_write_out(&io);
        if (!(extra.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        int rc = dp_framer_fill(&f, fd);
        bool bad = false;
        for (;;) {
            const char *data;
            size_t len;
            int got = dp_framer_next(&f, &data, &len);
            if (got == 0)
                break;
            if (got != 1 || s_frame(&io, dl, data, len)) {
                bad = true; /* TOO_BIG is positive: any other value */
                break;
            }
        }
        if (bad || rc) {
            status = rc == DP_ERR_EOF ? 0 : 1;
            break;
        }
    }
    /* the agent still reads after closing its end: finish writing */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    s_write_out(&io);
    io.broken = true; /* no answers after this: the agent left */
    dp_dl_destroy(&dl);
    dp_framer_release(&f);
    dp_wr_release(&io.w);
    dp_buf_release(&io.out);
    return status;
}
