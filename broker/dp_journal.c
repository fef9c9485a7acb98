/* dp_journal.c - the append-only journal: segments, records with CRC-32C,
 * replay with torn-tail truncation, group commit in an fsync window,
 * sticky errors, full-rewrite compaction. The format and the contract are
 * in dp_journal.h. */
#include "dp_journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dp_buf.h"
#include "dp_crc32c.h"
#include "dp_log.h"
#include "dpool.h"

#define S_MAGIC "DPJOURN1"
#define S_MAGIC_LEN 8
#define S_VERSION 1u
#define S_FLAG_BASE 1u
#define S_SEG_HDR 32u
/* segment header fields: byte offsets */
#define S_SH_VERSION 8
#define S_SH_FLAGS 12
#define S_SH_SEQ 16
#define S_SH_CRC 28 /* CRC-32C of the bytes before it */
#define S_REC_HDR 12u
/* record header fields: byte offsets (the CRC covers the bytes before it,
 * then the payload) */
#define S_RH_KIND 4
#define S_RH_CRC 8
#define S_PREFIX "journal."
#define S_TMP ".tmp"
#define S_CORRUPT ".corrupt"
#define S_NAME_MAX 64
#define S_MAX_SEGMENTS 100000 /* more files than this: not ours to read */
#define S_BATCH_FIXED 28u
#define S_JOB_FIXED 20u
#define S_ID 8u
#define S_DISPATCH 12u

struct dp_journal {
    dp_journal_cfg_t cfg;
    char dir[4096];
    int dirfd, lockfd, fd; /* fd: the segment appended to */
    uint32_t seg;          /* its number */
    uint64_t seg_bytes;    /* its size as written */
    uint64_t seg_good;     /* its size at the last good commit */
    uint64_t older_bytes;  /* the other segments' sizes */
    uint64_t base_bytes;
    uint32_t nsegs;
    dp_buf_t buf;            /* records not yet written */
    uint64_t unsynced_since; /* monotonic ms of the oldest unsynced write */
    bool unsynced, compacting;
    int err;
    char errmsg[DP_JOURNAL_ERRMSG_MAX];
    dp_journal_stats_t st;
};

/* ---- little endian ---- */

static void s_le32(uint8_t *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

static void s_le64(uint8_t *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

static uint32_t s_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t s_rd64(const uint8_t *p)
{
    return (uint64_t)s_rd32(p) | (uint64_t)s_rd32(p + 4) << 32;
}

/* ---- errors ---- */

/* s_fail: enter the sticky failed state (the first error wins). */
static int s_fail(dp_journal_t *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_fail(dp_journal_t *j, int code, const char *fmt, ...)
{
    if (j->err)
        return j->err;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->errmsg, sizeof j->errmsg, fmt, ap);
    va_end(ap);
    j->err = code;
    dp_error("journal %s: %s", j->dir, j->errmsg);
    errno = saved;
    return code;
}

static void s_segname(char *out, size_t len, uint32_t seg, const char *sfx)
{
    snprintf(out, len, S_PREFIX "%06" PRIu32 "%s", seg, sfx);
}

static int s_fsync(dp_journal_t *j, int fd, bool dir)
{
    int rc = fsync(fd);
    if (dir)
        j->st.dir_fsyncs++;
    else
        j->st.fsyncs++;
    return rc;
}

/* ---- writing ---- */

/* s_write_all: write len bytes at p to fd. 0 or -1 (errno set). */
static int s_write_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len) {
        ssize_t n = write(fd, c, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

/* s_flush: write() the buffer to the current segment. On failure the
 * segment is cut back to its last good commit and the journal fails. */
static int s_flush(dp_journal_t *j)
{
    if (j->err)
        return j->err;
    if (j->buf.len == 0)
        return 0;
    j->st.writes++;
    if (s_write_all(j->fd, j->buf.data, j->buf.len) != 0) {
        char name[S_NAME_MAX];
        s_segname(name, sizeof name, j->seg, j->compacting ? S_TMP : "");
        int e = errno;
        if (ftruncate(j->fd, (off_t)j->seg_good) == 0)
            lseek(j->fd, (off_t)j->seg_good, SEEK_SET);
        j->seg_bytes = j->seg_good;
        j->buf.len = 0;
        errno = e;
        return s_fail(j, DP_ERR_IO, "write %s: %s", name, strerror(e));
    }
    j->seg_bytes += j->buf.len;
    j->buf.len = 0;
    return 0;
}

/* s_append: one record: header, then a fixed part and a blob. */
static int s_append(dp_journal_t *j, dp_jr_kind_t kind, const void *fixed,
                    size_t flen, const void *blob, size_t blen)
{
    if (j->err)
        return j->err;
    if (flen > j->cfg.max_record || blen > j->cfg.max_record - flen)
        return DP_ERR_LIMIT;
    uint8_t h[S_REC_HDR] = {0};
    s_le32(h, (uint32_t)(flen + blen));
    h[S_RH_KIND] = (uint8_t)kind;
    uint32_t crc = dp_crc32c(0, h, S_RH_CRC);
    crc = dp_crc32c(crc, fixed, flen);
    if (blen)
        crc = dp_crc32c(crc, blob, blen);
    s_le32(h + S_RH_CRC, crc);
    if (dp_buf_reserve(&j->buf, S_REC_HDR + flen + blen))
        return s_fail(j, DP_ERR_NOMEM, "out of memory buffering a record");
    dp_buf_put(&j->buf, h, S_REC_HDR);
    dp_buf_put(&j->buf, fixed, flen);
    if (blen)
        dp_buf_put(&j->buf, blob, blen);
    j->st.appends++;
    if (j->buf.len >= DP_JOURNAL_FLUSH_BYTES)
        return s_flush(j); /* written early; still not acknowledged */
    return 0;
}

int dp_journal_batch(dp_journal_t *j, const dp_jr_batch_t *b)
{
    if (b->session_len > DP_JOURNAL_SESSION_MAX ||
        b->owner_len > DP_JOURNAL_OWNER_MAX ||
        b->name_len > DP_JOURNAL_OWNER_MAX)
        return DP_ERR_LIMIT;
    uint8_t f[S_BATCH_FIXED] = {0};
    s_le64(f, b->batch);
    s_le64(f + 8, b->created_ms);
    s_le64(f + 16, b->ttl_ms);
    f[24] = b->detached ? 1 : 0;
    f[25] = (uint8_t)b->owner_len;
    f[26] = (uint8_t)(b->session_len & 0xff);
    f[27] = (uint8_t)(b->session_len >> 8);
    /* the blob: session, owner, then name to the record's end (a record
     * from before owners has f[25] = 0 and ends after the session) */
    uint8_t tail[DP_JOURNAL_SESSION_MAX + 2 * DP_JOURNAL_OWNER_MAX];
    size_t n = 0;
    if (b->session_len)
        memcpy(tail, b->session, b->session_len);
    n += b->session_len;
    if (b->owner_len)
        memcpy(tail + n, b->owner, b->owner_len);
    n += b->owner_len;
    if (b->name_len)
        memcpy(tail + n, b->name, b->name_len);
    n += b->name_len;
    return s_append(j, DP_JR_BATCH, f, sizeof f, tail, n);
}

int dp_journal_job(dp_journal_t *j, const dp_jr_job_t *job)
{
    uint8_t f[S_JOB_FIXED];
    s_le64(f, job->batch);
    s_le64(f + 8, job->id);
    s_le32(f + 16, job->chunk);
    return s_append(j, DP_JR_JOB, f, sizeof f, job->raw, job->raw_len);
}

int dp_journal_dispatch(dp_journal_t *j, uint64_t id, uint32_t attempt)
{
    uint8_t f[S_DISPATCH];
    s_le64(f, id);
    s_le32(f + 8, attempt);
    return s_append(j, DP_JR_DISPATCH, f, sizeof f, NULL, 0);
}

int dp_journal_result(dp_journal_t *j, uint64_t id, const void *raw, size_t len)
{
    uint8_t f[S_ID];
    s_le64(f, id);
    return s_append(j, DP_JR_RESULT, f, sizeof f, raw, len);
}

static int s_id_record(dp_journal_t *j, dp_jr_kind_t kind, uint64_t id)
{
    uint8_t f[S_ID];
    s_le64(f, id);
    return s_append(j, kind, f, sizeof f, NULL, 0);
}

int dp_journal_taken(dp_journal_t *j, uint64_t id)
{
    return s_id_record(j, DP_JR_TAKEN, id);
}

int dp_journal_cancel(dp_journal_t *j, uint64_t id)
{
    return s_id_record(j, DP_JR_CANCEL, id);
}

int dp_journal_forget(dp_journal_t *j, uint64_t batch)
{
    return s_id_record(j, DP_JR_FORGET, batch);
}

/* ---- segments ---- */

/* s_seg_create: a new segment file with its header, made as NAME.tmp and
 * (unless keep_tmp) renamed into place; returns its fd or -1. */
static int s_seg_create(dp_journal_t *j, uint32_t seg, bool base, bool keep_tmp)
{
    char tmp[S_NAME_MAX], name[S_NAME_MAX];
    s_segname(tmp, sizeof tmp, seg, S_TMP);
    s_segname(name, sizeof name, seg, "");
    int fd =
        openat(j->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        s_fail(j, DP_ERR_IO, "create %s: %s", tmp, strerror(errno));
        return -1;
    }
    uint8_t h[S_SEG_HDR] = {0};
    memcpy(h, S_MAGIC, S_MAGIC_LEN);
    s_le32(h + S_SH_VERSION, S_VERSION);
    s_le32(h + S_SH_FLAGS, base ? S_FLAG_BASE : 0);
    s_le64(h + S_SH_SEQ, seg);
    s_le32(h + S_SH_CRC, dp_crc32c(0, h, S_SH_CRC));
    const char *what = "write";
    if (s_write_all(fd, h, sizeof h) != 0)
        goto fail;
    what = "fsync";
    if (s_fsync(j, fd, false) != 0)
        goto fail;
    if (keep_tmp)
        return fd;
    what = "rename";
    if (renameat(j->dirfd, tmp, j->dirfd, name) != 0)
        goto fail;
    what = "fsync the directory of";
    if (s_fsync(j, j->dirfd, true) != 0)
        goto fail;
    return fd;
fail:
    s_fail(j, DP_ERR_IO, "%s %s: %s", what, tmp, strerror(errno));
    close(fd);
    unlinkat(j->dirfd, tmp, 0);
    return -1;
}

/* s_rotate: the current segment is full: fsync it, start the next. */
static int s_rotate(dp_journal_t *j)
{
    char name[S_NAME_MAX];
    s_segname(name, sizeof name, j->seg, "");
    if (s_fsync(j, j->fd, false) != 0)
        return s_fail(j, DP_ERR_IO, "fsync %s: %s", name, strerror(errno));
    j->unsynced = false;
    int fd = s_seg_create(j, j->seg + 1, false, false);
    if (fd < 0)
        return j->err;
    close(j->fd);
    j->fd = fd;
    j->seg++;
    j->older_bytes += j->seg_bytes;
    j->seg_bytes = j->seg_good = S_SEG_HDR;
    j->nsegs++;
    j->st.rotations++;
    return 0;
}

/* ---- commit ---- */

static int s_do_fsync(dp_journal_t *j)
{
    if (!j->unsynced)
        return 0;
    char name[S_NAME_MAX];
    s_segname(name, sizeof name, j->seg, "");
    if (s_fsync(j, j->fd, false) != 0)
        return s_fail(j, DP_ERR_IO, "fsync %s: %s", name, strerror(errno));
    j->unsynced = false;
    return 0;
}

int dp_journal_commit(dp_journal_t *j, uint64_t now_ms)
{
    if (j->err)
        return j->err;
    j->st.commits++;
    bool wrote = j->buf.len > 0 || j->seg_bytes > j->seg_good;
    int rc = 0;
    /* rotate before writing, so a failed rotation leaves nothing of this
     * commit on disk (unless records were written early, then the segment
     * runs over by this commit and rotates at the next) */
    if (!j->compacting && j->buf.len && j->seg_bytes == j->seg_good &&
        j->seg_good >= j->cfg.segment_bytes)
        rc = s_rotate(j);
    if (!rc)
        rc = s_flush(j);
    if (rc)
        return rc;
    if (wrote && !j->unsynced) {
        j->unsynced = true;
        j->unsynced_since = now_ms;
    }
    j->seg_good = j->seg_bytes;
    if (j->unsynced &&
        (j->cfg.fsync_ms <= 0 ||
         now_ms >= j->unsynced_since + (uint64_t)j->cfg.fsync_ms))
        rc = s_do_fsync(j);
    return rc;
}

uint64_t dp_journal_fsync_due(const dp_journal_t *j)
{
    if (!j->unsynced || j->err)
        return UINT64_MAX;
    return j->unsynced_since +
           (uint64_t)(j->cfg.fsync_ms > 0 ? j->cfg.fsync_ms : 0);
}

int dp_journal_tick(dp_journal_t *j, uint64_t now_ms)
{
    if (j->err)
        return j->err;
    if (j->unsynced && now_ms >= dp_journal_fsync_due(j))
        return s_do_fsync(j);
    return 0;
}

int dp_journal_sync(dp_journal_t *j, uint64_t now_ms)
{
    int rc = dp_journal_commit(j, now_ms);
    return rc ? rc : s_do_fsync(j);
}

int dp_journal_error(const dp_journal_t *j, const char **msg)
{
    if (msg)
        *msg = j->err ? j->errmsg : "";
    return j->err;
}

/* ---- replay ---- */

typedef struct {
    uint32_t *v;
    size_t n, cap;
} s_segs_t;

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* s_parse_name: "journal.NNNNNN" (digits only) -> its number. */
static bool s_parse_name(const char *name, uint32_t *seg)
{
    size_t plen = strlen(S_PREFIX);
    if (strncmp(name, S_PREFIX, plen) != 0)
        return false;
    const char *d = name + plen;
    if (!*d || strlen(d) > 10)
        return false;
    uint64_t v = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9')
            return false;
        v = v * 10 + (uint64_t)(*d - '0');
    }
    if (v == 0 || v >= UINT32_MAX)
        return false;
    *seg = (uint32_t)v;
    return true;
}

/* s_scan: the segment numbers in DIR, ascending; .tmp files removed. */
static int s_scan(dp_journal_t *j, s_segs_t *s)
{
    int fd = dup(j->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return s_fail(j, DP_ERR_IO, "read directory: %s", strerror(errno));
    }
    rewinddir(d);
    int rc = 0;
    for (;;) {
        struct dirent *e = rc ? NULL : readdir(d);
        if (!e)
            break;
        size_t len = strlen(e->d_name), tl = strlen(S_TMP);
        uint32_t seg;
        if (len > tl && strcmp(e->d_name + len - tl, S_TMP) == 0 &&
            strncmp(e->d_name, S_PREFIX, strlen(S_PREFIX)) == 0) {
            unlinkat(j->dirfd, e->d_name, 0); /* an unfinished segment */
            continue;
        }
        if (!s_parse_name(e->d_name, &seg))
            continue;
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 16;
            uint32_t *v =
                cap <= S_MAX_SEGMENTS ? realloc(s->v, cap * sizeof *v) : NULL;
            if (!v) {
                rc = s_fail(j, DP_ERR_NOMEM, "too many segments");
                break;
            }
            s->v = v;
            s->cap = cap;
        }
        s->v[s->n++] = seg;
    }
    closedir(d);
    if (s->n)
        qsort(s->v, s->n, sizeof *s->v, s_cmp_u32);
    return rc;
}

/* s_read_header: a segment's flags from its header; -1 if not valid. */
static int s_read_header(dp_journal_t *j, uint32_t seg, uint32_t *flags)
{
    char name[S_NAME_MAX];
    s_segname(name, sizeof name, seg, "");
    int fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
    uint8_t h[S_SEG_HDR];
    ssize_t n = fd >= 0 ? pread(fd, h, sizeof h, 0) : -1;
    if (fd >= 0)
        close(fd);
    if (n != (ssize_t)sizeof h || memcmp(h, S_MAGIC, S_MAGIC_LEN) != 0 ||
        s_rd32(h + S_SH_CRC) != dp_crc32c(0, h, S_SH_CRC) ||
        s_rd32(h + S_SH_VERSION) != S_VERSION || s_rd64(h + S_SH_SEQ) != seg)
        return -1;
    *flags = s_rd32(h + S_SH_FLAGS);
    return 0;
}

/* s_dispatch_record: call the callback of one record; 1 = malformed. */
static int s_dispatch_record(dp_journal_t *j, const dp_journal_replay_t *cb,
                             int kind, const uint8_t *p, uint32_t len)
{
    void *d = cb ? cb->data : NULL;
    switch (kind) {
    case DP_JR_BATCH: {
        if (len < S_BATCH_FIXED)
            return 1;
        dp_jr_batch_t b = {.batch = s_rd64(p),
                           .created_ms = s_rd64(p + 8),
                           .ttl_ms = s_rd64(p + 16),
                           .detached = (p[24] & 1) != 0,
                           .session = p + S_BATCH_FIXED,
                           .session_len = (size_t)p[26] | (size_t)p[27] << 8,
                           .owner_len = p[25]};
        size_t rest = len - S_BATCH_FIXED;
        if (b.session_len + b.owner_len > rest)
            return 1;
        b.owner = (const char *)b.session + b.session_len;
        b.name = b.owner + b.owner_len;
        b.name_len = rest - b.session_len - b.owner_len;
        if (b.name_len > DP_JOURNAL_OWNER_MAX)
            return 1;
        return cb && cb->batch ? cb->batch(d, &b) : 0;
    }
    case DP_JR_JOB: {
        if (len < S_JOB_FIXED)
            return 1;
        dp_jr_job_t job = {s_rd64(p), s_rd64(p + 8), s_rd32(p + 16),
                           p + S_JOB_FIXED, len - S_JOB_FIXED};
        return cb && cb->job ? cb->job(d, &job) : 0;
    }
    case DP_JR_DISPATCH:
        if (len != S_DISPATCH)
            return 1;
        return cb && cb->dispatch ? cb->dispatch(d, s_rd64(p), s_rd32(p + 8))
                                  : 0;
    case DP_JR_RESULT:
        if (len < S_ID)
            return 1;
        return cb && cb->result ? cb->result(d, s_rd64(p), p + S_ID, len - S_ID)
                                : 0;
    case DP_JR_TAKEN:
    case DP_JR_CANCEL:
    case DP_JR_FORGET: {
        if (len != S_ID)
            return 1;
        int (*f)(void *, uint64_t) = !cb                    ? NULL
                                     : kind == DP_JR_TAKEN  ? cb->taken
                                     : kind == DP_JR_CANCEL ? cb->cancel
                                                            : cb->forget;
        return f ? f(d, s_rd64(p)) : 0;
    }
    default:
        j->st.skipped++;
        dp_warn("journal %s: skipping a record of unknown kind %d", j->dir,
                kind);
        return 0;
    }
}

/* s_replay_map: the records of one mapped segment. *good: the offset
 * after the last good record. Returns 0, or a callback's error (< 0 is
 * never used: callbacks return dp error codes). */
static int s_replay_map(dp_journal_t *j, const dp_journal_replay_t *cb,
                        const uint8_t *m, size_t size, size_t *good)
{
    size_t off = S_SEG_HDR;
    while (size - off >= S_REC_HDR) {
        const uint8_t *h = m + off;
        uint32_t len = s_rd32(h);
        if (len > j->cfg.max_record || len > size - off - S_REC_HDR)
            break;
        uint32_t crc = dp_crc32c(0, h, S_RH_CRC);
        crc = dp_crc32c(crc, h + S_REC_HDR, len);
        if (crc != s_rd32(h + S_RH_CRC) || h[5] || h[6] || h[7])
            break;
        int rc = s_dispatch_record(j, cb, h[S_RH_KIND], h + S_REC_HDR, len);
        if (rc == 1)
            break; /* well checksummed, wrong shape: treat as corrupt */
        if (rc)
            return rc;
        off += S_REC_HDR + len;
        j->st.replayed_records++;
        j->st.replayed_bytes += S_REC_HDR + len;
    }
    *good = off;
    return 0;
}

/* s_replay_seg: replay one segment; *torn = it ended in a bad record, cut
 * off here. *size: its size after. */
static int s_replay_seg(dp_journal_t *j, const dp_journal_replay_t *cb,
                        uint32_t seg, bool *torn, uint64_t *size)
{
    char name[S_NAME_MAX];
    s_segname(name, sizeof name, seg, "");
    int fd = openat(j->dirfd, name, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int rc = s_fail(j, DP_ERR_IO, "open %s: %s", name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    size_t len = (size_t)st.st_size, good = S_SEG_HDR;
    int rc = 0;
    if (len > S_SEG_HDR) {
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            rc = s_fail(j, DP_ERR_IO, "mmap %s: %s", name, strerror(errno));
            close(fd);
            return rc;
        }
        rc = s_replay_map(j, cb, m, len, &good);
        munmap(m, len);
    }
    *torn = !rc && good < len;
    *size = rc ? len : good;
    if (*torn) {
        dp_warn("journal %s: %s: torn or corrupt record at offset %zu; "
                "truncating %zu bytes",
                j->dir, name, good, len - good);
        j->st.truncated_bytes += len - good;
        if (ftruncate(fd, (off_t)good) != 0 || fsync(fd) != 0)
            rc = s_fail(j, DP_ERR_IO, "truncate %s: %s", name, strerror(errno));
    }
    close(fd);
    return rc;
}

/* s_set_aside: rename segment seg to NAME.corrupt. */
static void s_set_aside(dp_journal_t *j, uint32_t seg)
{
    char name[S_NAME_MAX], bad[S_NAME_MAX];
    s_segname(name, sizeof name, seg, "");
    s_segname(bad, sizeof bad, seg, S_CORRUPT);
    dp_error("journal %s: %s comes after a corrupt record; set aside as %s",
             j->dir, name, bad);
    renameat(j->dirfd, name, j->dirfd, bad);
    j->st.corrupt_segments++;
}

/* s_replay: find the last BASE, drop what precedes it, replay the rest;
 * leaves the last segment open for appending (or makes the first). */
static int s_replay(dp_journal_t *j, const dp_journal_replay_t *cb)
{
    s_segs_t s = {0};
    int rc = s_scan(j, &s);
    size_t base = 0, end = s.n;
    uint32_t flags;
    for (size_t k = 0; !rc && k < s.n; k++) {
        if (s_read_header(j, s.v[k], &flags) != 0) {
            end = k; /* unreadable header: the journal ends before it */
            break;
        }
        if (flags & S_FLAG_BASE)
            base = k;
    }
    for (size_t k = end; !rc && k < s.n; k++)
        s_set_aside(j, s.v[k]);
    for (size_t k = 0; !rc && k < base; k++) { /* superseded by the BASE */
        char name[S_NAME_MAX];
        s_segname(name, sizeof name, s.v[k], "");
        unlinkat(j->dirfd, name, 0);
    }
    uint64_t size = 0;
    size_t last = base;
    for (size_t k = base; !rc && k < end; k++) {
        bool torn = false;
        rc = s_replay_seg(j, cb, s.v[k], &torn, &size);
        last = k;
        if (!rc && torn)
            for (size_t x = k + 1; x < end; x++)
                s_set_aside(j, s.v[x]);
        if (torn)
            break;
        if (k + 1 < end)
            j->older_bytes += size;
    }
    if (!rc && base < end) {
        char name[S_NAME_MAX];
        s_segname(name, sizeof name, s.v[last], "");
        j->seg = s.v[last];
        j->nsegs = (uint32_t)(last - base + 1);
        j->fd = openat(j->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (j->fd < 0)
            rc = s_fail(j, DP_ERR_IO, "open %s: %s", name, strerror(errno));
        j->seg_bytes = j->seg_good = size;
    } else if (!rc) {
        uint32_t first = s.n ? s.v[s.n - 1] + 1 : 1; /* past set-aside ones */
        j->fd = s_seg_create(j, first, true, false);
        rc = j->fd < 0 ? j->err : 0;
        j->seg = first;
        j->nsegs = 1;
        j->seg_bytes = j->seg_good = S_SEG_HDR;
    }
    if (!rc && s.n)
        s_fsync(j, j->dirfd, true);
    j->base_bytes = j->older_bytes + j->seg_bytes;
    free(s.v);
    return rc;
}

/* ---- open / close ---- */

dp_journal_cfg_t dp_journal_cfg_default(void)
{
    return (dp_journal_cfg_t){DP_JOURNAL_FSYNC_MS_DEFAULT,
                              DP_JOURNAL_SEGMENT_BYTES,
                              DP_JOURNAL_COMPACT_MIN_BYTES,
                              DP_JOURNAL_COMPACT_PCT, DP_JOURNAL_RECORD_MAX};
}

static int s_lock(dp_journal_t *j)
{
    if (mkdir(j->dir, 0700) != 0 && errno != EEXIST)
        return s_fail(j, DP_ERR_IO, "mkdir: %s", strerror(errno));
    j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0)
        return s_fail(j, DP_ERR_IO, "open: %s", strerror(errno));
    j->lockfd = openat(j->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->lockfd < 0)
        return s_fail(j, DP_ERR_IO, "open lock: %s", strerror(errno));
    if (flock(j->lockfd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(j->lockfd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        return s_fail(j, DP_ERR_IO, "in use by another broker (pid %s)",
                      pid[0] ? pid : "?");
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(j->lockfd, 0) != 0 || pwrite(j->lockfd, pid, n, 0) != n)
        dp_warn("journal %s: cannot write the lock file", j->dir);
    return 0;
}

int dp_journal_open(const char *dir, const dp_journal_cfg_t *cfg,
                    const dp_journal_replay_t *cb, dp_journal_t **out,
                    char *errmsg, size_t errlen)
{
    *out = NULL;
    if (!dir || !cfg || cfg->fsync_ms < 0 || cfg->segment_bytes < S_SEG_HDR ||
        cfg->max_record == 0 || strlen(dir) >= sizeof((dp_journal_t *)0)->dir)
        return DP_ERR_INVALID;
    dp_journal_t *j = calloc(1, sizeof *j);
    if (!j)
        return DP_ERR_NOMEM;
    j->cfg = *cfg;
    j->dirfd = j->lockfd = j->fd = -1;
    snprintf(j->dir, sizeof j->dir, "%s", dir);
    dp_buf_init(&j->buf);
    int rc = s_lock(j);
    if (!rc)
        rc = s_replay(j, cb);
    if (rc && !j->err)
        s_fail(j, rc, "replay stopped: %s", dp_strerror(rc));
    if (rc) {
        if (errmsg && errlen)
            snprintf(errmsg, errlen, "journal %s: %s", dir, j->errmsg);
        dp_journal_close(&j);
        return rc;
    }
    if (j->st.replayed_records || j->st.truncated_bytes)
        dp_info("journal %s: replayed %" PRIu64 " records (%" PRIu64
                " bytes) from %" PRIu32 " segment(s)%s",
                dir, j->st.replayed_records, j->st.replayed_bytes, j->nsegs,
                j->st.truncated_bytes ? "; cut a torn tail" : "");
    *out = j;
    return 0;
}

void dp_journal_close(dp_journal_t **jp)
{
    if (!jp || !*jp)
        return;
    dp_journal_t *j = *jp;
    if (j->fd >= 0 && !j->err && !j->compacting)
        dp_journal_sync(j, 0);
    if (j->fd >= 0)
        close(j->fd);
    if (j->lockfd >= 0)
        close(j->lockfd); /* releases the flock */
    if (j->dirfd >= 0)
        close(j->dirfd);
    dp_buf_release(&j->buf);
    free(j);
    *jp = NULL;
}

/* ---- compaction ---- */

bool dp_journal_compact_due(const dp_journal_t *j)
{
    uint64_t disk = j->older_bytes + j->seg_bytes + j->buf.len;
    uint64_t limit = j->base_bytes + j->base_bytes / 100 * j->cfg.compact_pct;
    return !j->err && disk >= j->cfg.compact_min_bytes && disk > limit;
}

/* s_drop_older: delete every segment before the new BASE seg. */
static void s_drop_older(dp_journal_t *j, uint32_t seg)
{
    s_segs_t s = {0};
    if (s_scan(j, &s) == 0)
        for (size_t k = 0; k < s.n && s.v[k] < seg; k++) {
            char name[S_NAME_MAX];
            s_segname(name, sizeof name, s.v[k], "");
            unlinkat(j->dirfd, name, 0);
        }
    free(s.v);
    s_fsync(j, j->dirfd, true);
}

int dp_journal_compact(dp_journal_t *j,
                       int (*dump)(void *data, dp_journal_t *j), void *data,
                       uint64_t now_ms)
{
    int rc = dp_journal_sync(j, now_ms);
    if (rc)
        return rc;
    uint32_t seg = j->seg + 1;
    char tmp[S_NAME_MAX], name[S_NAME_MAX];
    s_segname(tmp, sizeof tmp, seg, S_TMP);
    s_segname(name, sizeof name, seg, "");
    int fd = s_seg_create(j, seg, true, true), old = j->fd;
    if (fd < 0)
        return j->err;
    uint64_t old_bytes = j->seg_bytes;
    j->fd = fd;
    j->seg_bytes = j->seg_good = S_SEG_HDR;
    j->compacting = true;
    rc = dump(data, j);
    if (!rc)
        rc = s_flush(j);
    if (!rc && s_fsync(j, fd, false) != 0)
        rc = s_fail(j, DP_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
    if (!rc && renameat(j->dirfd, tmp, j->dirfd, name) != 0)
        rc = s_fail(j, DP_ERR_IO, "rename %s: %s", tmp, strerror(errno));
    j->compacting = false;
    if (rc) { /* back to the old segments, which are whole */
        close(fd);
        unlinkat(j->dirfd, tmp, 0);
        j->buf.len = 0;
        j->fd = old;
        j->seg_bytes = j->seg_good = old_bytes;
        return rc;
    }
    s_fsync(j, j->dirfd, true);
    close(old);
    j->seg = seg;
    s_drop_older(j, seg);
    j->seg_good = j->seg_bytes;
    j->older_bytes = 0;
    j->nsegs = 1;
    j->base_bytes = j->seg_bytes;
    j->unsynced = false;
    j->st.compactions++;
    dp_info("journal %s: compacted to %" PRIu64 " bytes", j->dir, j->seg_bytes);
    return 0;
}

void dp_journal_stats(const dp_journal_t *j, dp_journal_stats_t *st)
{
    *st = j->st;
    st->disk_bytes = j->older_bytes + j->seg_bytes;
    st->base_bytes = j->base_bytes;
    st->segments = j->nsegs;
}
