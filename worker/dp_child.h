/*
 * dp_child.h - the processes that run jobs. A child is `dpool-worker-cpu
 * --child cpu` or `dpool-worker-io --child io` spawned by the agent
 * (posix_spawn: nothing that keeps running was forked after libzmq's
 * threads started), with one end of a socketpair on fd DP_CHILD_FD. It
 * never touches ZeroMQ: its program does not even load libzmq
 * (worker/main.c, CMakeLists.txt).
 *
 * Agent -> child frames (dp_frame.h): [1, JOBS, [n, [[attempt, job]...]]] and,
 * to the io child, [1, CANCEL, [id...]]. Child -> agent: [1, RESULTS,
 * [result...]], results carry the child's pid and the worker's name.
 * EOF on the fd tells a child to exit.
 *
 * cpu child: one job at a time, in order. io child: many downloads at once
 * in one curl_multi loop.
 */
#ifndef DP_CHILD_H
#define DP_CHILD_H

#include <stdbool.h>

#include "dp_jobs.h"
#include "dp_wire.h"

#define DP_CHILD_FD 3
#define DP_CHILD_FLUSH_US 1000 /* results wait at most this for company */
/* io child: allocations below this come from the heap, bytes (glibc's
 * ceiling for M_MMAP_THRESHOLD on 64 bits) ... */
#define DP_IO_MMAP_THRESHOLD (32 * 1024 * 1024)
/* ... and freed memory up to this much stays in the process, bytes */
#define DP_IO_TRIM_THRESHOLD (64 * 1024 * 1024)

typedef struct {
    const char *name;       /* worker name put in results */
    dp_job_limits_t limits; /* kernel limits */
    dp_limits_t wire;       /* decoding limits */
    const char *store_dir;  /* io: save bodies here (NULL: return them) */
    const char *ca_file;    /* io: extra CA bundle */
    bool insecure;          /* io: no TLS verification */
    /* io: where downloads may connect (dl_guard.h) */
    const struct dp_guard *guard;
} dp_child_cfg_t;

/* dp_child_cpu_main: serve cpu jobs on fd until EOF; returns the exit
 * status. */
int dp_child_cpu_main(int fd, const dp_child_cfg_t *cfg);
/* dp_child_io_main: serve io jobs on fd until EOF. */
int dp_child_io_main(int fd, const dp_child_cfg_t *cfg);

#endif
