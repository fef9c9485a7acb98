/* cli_joblog.c - the joblog of `dpool`: writing one line per finished
 * job, reading it back for --resume / --resume-failed. Format and rules in
 * cli_joblog.h. */
#include "cli_joblog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dp_buf.h"

#define S_INITIAL_SLOTS 1024u
#define S_FNV_OFFSET 0xcbf29ce484222325ull
#define S_FNV_PRIME 0x100000001b3ull

typedef enum { S_NONE, S_FAILED, S_OK } s_state_t;

/* one index the joblog has a line for (the last line wins) */
typedef struct {
    uint64_t index; /* UINT64_MAX = empty slot */
    uint64_t hash;  /* of the unescaped input */
    uint8_t state;
} s_entry_t;

struct dp_joblog {
    dp_joblog_mode_t mode;
    int fd;
    char *path;
    s_entry_t *tab; /* open addressing, power-of-two size */
    size_t tsize, n;
    size_t skipped, changed, malformed;
    bool write_failed;
};

static uint64_t s_hash(const char *s)
{
    uint64_t h = S_FNV_OFFSET;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * S_FNV_PRIME;
    return h;
}

/* ---- escaping ---- */

char *dp_joblog_escape(const char *s)
{
    dp_buf_t b;
    dp_buf_init(&b);
    int rc = dp_buf_reserve(&b, strlen(s) + 1);
    for (; !rc && *s; s++) {
        const char *e = *s == '\\'   ? "\\\\"
                        : *s == '\t' ? "\\t"
                        : *s == '\n' ? "\\n"
                        : *s == '\r' ? "\\r"
                                     : NULL;
        rc = e ? dp_buf_puts(&b, e) : dp_buf_putc(&b, *s);
    }
    if (!rc)
        rc = dp_buf_putc(&b, '\0');
    if (rc) {
        dp_buf_release(&b);
        return NULL;
    }
    return dp_buf_take(&b);
}

char *dp_joblog_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '\\' || !r[1]) {
            *w++ = *r;
            continue;
        }
        r++;
        *w++ = *r == 't' ? '\t' : *r == 'n' ? '\n' : *r == 'r' ? '\r' : *r;
    }
    *w = '\0';
    return s;
}

bool dp_joblog_logged(int error)
{
    return error != DP_ERR_CANCELLED && error != DP_ERR_BROKER_LOST &&
           error != DP_ERR_UNREACHABLE && error != DP_ERR_EOF;
}

/* ---- the index table ---- */

static s_entry_t *s_slot(dp_joblog_t *jl, uint64_t index)
{
    size_t mask = jl->tsize - 1;
    size_t k = (size_t)((index * 0x9E3779B97F4A7C15ull) >> 20) & mask;
    while (jl->tab[k].index != UINT64_MAX && jl->tab[k].index != index)
        k = (k + 1) & mask;
    return &jl->tab[k];
}

static int s_grow(dp_joblog_t *jl)
{
    size_t n = jl->tsize ? jl->tsize * 2 : S_INITIAL_SLOTS;
    s_entry_t *old = jl->tab;
    size_t oldn = jl->tsize;
    jl->tab = malloc(n * sizeof *jl->tab);
    if (!jl->tab) {
        jl->tab = old;
        return DP_ERR_NOMEM;
    }
    for (size_t k = 0; k < n; k++)
        jl->tab[k].index = UINT64_MAX;
    jl->tsize = n;
    for (size_t k = 0; k < oldn; k++)
        if (old[k].index != UINT64_MAX)
            *s_slot(jl, old[k].index) = old[k];
    free(old);
    return 0;
}

static int s_put(dp_joblog_t *jl, uint64_t index, uint64_t hash, bool ok)
{
    if ((jl->n + 1) * 2 > jl->tsize && s_grow(jl))
        return DP_ERR_NOMEM;
    s_entry_t *e = s_slot(jl, index);
    if (e->index == UINT64_MAX)
        jl->n++;
    *e = (s_entry_t){index, hash, ok ? S_OK : S_FAILED};
    return 0;
}

/* ---- reading ---- */

/* s_parse_line: one joblog line (no newline), split in place. 0 or -1. */
static int s_parse_line(dp_joblog_t *jl, char *line)
{
    char *f[DP_JOBLOG_FIELDS];
    int n = 0;
    for (char *p = line; n < DP_JOBLOG_FIELDS; n++) {
        f[n] = p;
        char *tab = n < DP_JOBLOG_FIELDS - 1 ? strchr(p, '\t') : NULL;
        if (tab) {
            *tab = '\0';
            p = tab + 1;
        } else if (n < DP_JOBLOG_FIELDS - 1) {
            return -1;
        }
    }
    char *end;
    errno = 0;
    unsigned long long index = strtoull(f[0], &end, 10);
    if (errno || end == f[0] || *end || f[0][0] == '-' ||
        index > DP_JOBLOG_INDEX_MAX)
        return -1;
    bool ok = strcmp(f[1], "ok") == 0;
    if (!ok && strcmp(f[1], "failed") != 0)
        return -1;
    return s_put(jl, index, s_hash(dp_joblog_unescape(f[7])), ok) ? -1 : 0;
}

/* s_read: the lines of an existing joblog. */
static int s_read(dp_joblog_t *jl, FILE *f, char *err, size_t errlen)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool first = true;
    int rc = 0;
    for (;;) {
        len = getline(&line, &cap, f);
        if (len < 0)
            break;
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        if (first) {
            first = false;
            if (strcmp(line, DP_JOBLOG_HEADER) != 0) {
                snprintf(err, errlen,
                         "%s is not a dpool joblog (its first line is not "
                         "the header \"Index\\tStatus\\t...\")",
                         jl->path);
                rc = DP_ERR_INVALID;
                break;
            }
            if (jl->mode == DP_JOBLOG_APPEND)
                break; /* writing only: the header is all we check */
            continue;
        }
        if (len && s_parse_line(jl, line) != 0)
            jl->malformed++;
    }
    free(line);
    if (!rc && ferror(f)) {
        snprintf(err, errlen, "%s: %s", jl->path, strerror(errno));
        rc = DP_ERR_IO;
    }
    return rc;
}

/* s_check_existing: read (resume) or just check the header of an existing
 * file; make sure the next append starts on a fresh line. */
static int s_check_existing(dp_joblog_t *jl, off_t size, char *err,
                            size_t errlen)
{
    FILE *f = fopen(jl->path, "re");
    if (!f) {
        snprintf(err, errlen, "%s: %s", jl->path, strerror(errno));
        return DP_ERR_IO;
    }
    int rc = s_read(jl, f, err, errlen);
    char last = '\n';
    if (!rc && fseeko(f, size - 1, SEEK_SET) == 0 && fread(&last, 1, 1, f) &&
        last != '\n' && write(jl->fd, "\n", 1) != 1)
        rc = DP_ERR_IO; /* a line cut by a kill: end it */
    fclose(f);
    if (jl->malformed)
        fprintf(stderr, "dpool: %s: %zu malformed line%s ignored\n", jl->path,
                jl->malformed, jl->malformed == 1 ? "" : "s");
    return rc;
}

int dp_joblog_open(const char *path, dp_joblog_mode_t mode, dp_joblog_t **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    dp_joblog_t *jl = calloc(1, sizeof *jl);
    if (!jl || !(jl->path = strdup(path))) {
        free(jl);
        snprintf(err, errlen, "out of memory");
        return DP_ERR_NOMEM;
    }
    jl->mode = mode;
    jl->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    int rc = 0;
    if (jl->fd < 0 || fstat(jl->fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rc = DP_ERR_IO;
    } else if (st.st_size == 0) {
        const char *h = DP_JOBLOG_HEADER "\n";
        if (write(jl->fd, h, strlen(h)) != (ssize_t)strlen(h)) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            rc = DP_ERR_IO;
        }
    } else {
        rc = s_check_existing(jl, st.st_size, err, errlen);
    }
    if (rc) {
        dp_joblog_close(&jl);
        return rc;
    }
    *out = jl;
    return 0;
}

void dp_joblog_close(dp_joblog_t **jlp)
{
    if (!jlp || !*jlp)
        return;
    dp_joblog_t *jl = *jlp;
    if (jl->changed)
        fprintf(stderr,
                "dpool: %s: %zu input%s from the joblog's at the same "
                "index: run again\n",
                jl->path, jl->changed,
                jl->changed == 1 ? " differs" : "s differ");
    if (jl->fd >= 0)
        close(jl->fd);
    free(jl->tab);
    free(jl->path);
    free(jl);
    *jlp = NULL;
}

/* ---- during the run ---- */

bool dp_joblog_skip(dp_joblog_t *jl, size_t index, const char *input)
{
    if (!jl || jl->mode == DP_JOBLOG_APPEND || jl->n == 0)
        return false;
    s_entry_t *e = s_slot(jl, index);
    if (e->index == UINT64_MAX)
        return false;
    if (e->hash != s_hash(input)) {
        jl->changed++;
        return false;
    }
    bool skip = jl->mode == DP_JOBLOG_RESUME || e->state == S_OK;
    jl->skipped += skip;
    return skip;
}

int dp_joblog_write(dp_joblog_t *jl, size_t index, const char *input,
                    const dp_result_t *r, uint64_t now_unix_ms)
{
    if (!jl || !dp_joblog_logged(r->error))
        return 0;
    char *in = dp_joblog_escape(input ? input : "");
    char *wk = r->worker && r->worker[0] ? dp_joblog_escape(r->worker) : NULL;
    dp_buf_t b;
    dp_buf_init(&b);
    int rc = in ? 0 : DP_ERR_NOMEM;
    if (!rc)
        rc = dp_buf_printf(&b, "%zu\t%s\t%s\t%u\t%s\t%llu.%03llu\t%.6f\t%s\n",
                           index, r->error ? "failed" : "ok",
                           r->error ? dp_errname(r->error) : "-", r->attempts,
                           wk ? wk : "-",
                           (unsigned long long)(now_unix_ms / 1000),
                           (unsigned long long)(now_unix_ms % 1000),
                           (double)r->elapsed_us / 1e6, in);
    if (!rc && write(jl->fd, b.data, b.len) != (ssize_t)b.len)
        rc = DP_ERR_IO;
    if (rc && !jl->write_failed) {
        jl->write_failed = true;
        fprintf(stderr, "dpool: %s: cannot append: %s\n", jl->path,
                rc == DP_ERR_IO ? strerror(errno) : dp_strerror(rc));
    }
    dp_buf_release(&b);
    free(in);
    free(wk);
    return rc;
}

uint64_t dp_joblog_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void dp_joblog_counts(const dp_joblog_t *jl, size_t *skipped, size_t *changed)
{
    *skipped = jl ? jl->skipped : 0;
    *changed = jl ? jl->changed : 0;
}
