/*
 * cli_map.c - run one job type over the command line's arguments or
 * stdin's lines (read lazily), print each result as it comes (text or
 * JSON Lines), show progress, write download bodies.
 *
 * The input text of each job is kept in a ring of max_inflight slots,
 * indexed by input position, until its result is printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_joblog.h"
#include "dp_clock.h"
#include "dp_download.h"

#define S_FILE_MAX (256u * 1024 * 1024) /* hash: largest file sent */
#define S_LINE_MAX (1u << 20)           /* longest stdin line */
#define S_READ_CHUNK 65536u

/* The input text of each job in flight, by input index, until its result
 * is printed. (A ring by index % cap is not enough: unordered results can
 * come back far out of order.) */
typedef struct {
    size_t index;
    size_t at;  /* its position among all inputs (dp_map's index skips
                   inputs not sent: --resume, unreadable files) */
    char *text; /* NULL = free slot */
    bool used;  /* ever held an input: a lookup probes past it */
} s_slot_t;

typedef struct {
    dp_cli_t *c;
    const char *type;
    char **args;
    int nargs, next;
    s_slot_t *inputs; /* input texts by index: open addressing over
                         tsize slots, at most cap of them in use */
    size_t tsize;
    size_t cap, count;
    char *rbuf; /* stdin bytes read, not yet taken as lines */
    size_t roff, rlen, rcap;
    bool eof;
    int bad_input;   /* exit code when an input could not be read */
    size_t nread;    /* inputs read so far */
    dp_joblog_t *jl; /* --joblog, or NULL */
} s_in_t;

/* s_file_arg: a file's content as a bin value. */
static int s_file_arg(const char *path, dp_value_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "dpool: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size > (off_t)S_FILE_MAX) {
        fprintf(stderr, "dpool: %s: larger than %u bytes\n", path, S_FILE_MAX);
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    *out = dp_bin("", 0);
    char *p = malloc(size + 1);
    size_t got = p ? fread(p, 1, size, f) : 0;
    fclose(f);
    if (!p || got != size) {
        free(p);
        fprintf(stderr, "dpool: %s: read failed\n", path);
        return -1;
    }
    free(out->v.s.ptr);
    out->v.s.ptr = p;
    out->v.s.len = size;
    return 0;
}

/* s_make_args: the job's argument array for one input text. */
static int s_make_args(s_in_t *in, const char *text, dp_value_t *args)
{
    dp_cli_t *c = in->c;
    if (strcmp(in->type, "hash") != 0) {
        *args = dp_array(1);
        args->v.a.items[0] = dp_str(text);
        return 0;
    }
    size_t n = c->pbkdf2 ? (c->dklen ? 5 : 4) : (c->dklen ? 5 : 2);
    *args = dp_array(n);
    if (s_file_arg(text, &args->v.a.items[0]))
        return -1;
    args->v.a.items[1] = dp_str(c->algo ? c->algo : "sha256");
    if (n > 2) {
        args->v.a.items[2] =
            c->pbkdf2 ? dp_uint((uint64_t)c->pbkdf2) : dp_nil();
        args->v.a.items[3] = c->salt ? dp_str(c->salt) : dp_nil();
    }
    if (c->dklen)
        args->v.a.items[4] = dp_uint((uint64_t)c->dklen);
    return 0;
}

/* Inputs are numbered 0, 1, 2, ... and each is put and taken once, so
 * input i nearly always sits in its home slot i % tsize: freed slots stay
 * marked `used` (tombstones) and are reused by later inputs. */
static void s_input_put(s_in_t *in, size_t index, size_t at, char *text)
{
    size_t k = index & (in->tsize - 1);
    while (in->inputs[k].text)
        k = (k + 1) & (in->tsize - 1);
    in->inputs[k] = (s_slot_t){index, at, text, true};
}

/* s_input_take: the text of input index (caller frees), or NULL; *at:
 * its position among all inputs. */
static char *s_input_take(s_in_t *in, size_t index, size_t *at)
{
    *at = index;
    size_t mask = in->tsize - 1, k = index & mask;
    for (size_t n = 0; n < in->tsize && in->inputs[k].used; n++) {
        if (in->inputs[k].text && in->inputs[k].index == index) {
            char *text = in->inputs[k].text;
            *at = in->inputs[k].at;
            in->inputs[k].text = NULL;
            return text;
        }
        k = (k + 1) & mask;
    }
    return NULL;
}

/* s_stdin_line: the next line of stdin (NUL-terminated in place) into
 * *line: 1, 0 at the end, DP_INPUT_WAIT when no whole line is there yet
 * (never blocks, so results keep flowing while the producer is slow), -1
 * for a line over S_LINE_MAX. */
static int s_stdin_line(s_in_t *in, char **line)
{
    for (;;) {
        char *start = in->rbuf + in->roff;
        char *nl = in->rlen > in->roff
                       ? memchr(start, '\n', in->rlen - in->roff)
                       : NULL;
        if (nl || (in->eof && in->rlen > in->roff)) {
            size_t len = nl ? (size_t)(nl - start) : in->rlen - in->roff;
            in->roff += len + (nl ? 1 : 0);
            start[len] = '\0'; /* over the newline, or the spare byte */
            *line = start;
            return 1;
        }
        if (in->eof)
            return 0;
        if (in->roff) { /* keep the partial line at the front */
            memmove(in->rbuf, start, in->rlen - in->roff);
            in->rlen -= in->roff;
            in->roff = 0;
        }
        if (in->rlen + 1 >= in->rcap) {
            if (in->rcap >= S_LINE_MAX)
                return -1;
            size_t cap = in->rcap ? in->rcap * 2 : S_READ_CHUNK;
            char *p = realloc(in->rbuf, cap);
            if (!p)
                return -1;
            in->rbuf = p;
            in->rcap = cap;
        }
        struct pollfd pf = {STDIN_FILENO, POLLIN, 0};
        if (poll(&pf, 1, 0) == 0)
            return DP_INPUT_WAIT;
        ssize_t n =
            read(STDIN_FILENO, in->rbuf + in->rlen, in->rcap - in->rlen - 1);
        if (n > 0)
            in->rlen += (size_t)n;
        else if (n == 0 || (errno != EINTR && errno != EAGAIN))
            in->eof = true;
    }
}

static int s_next_input(void *ctx, dp_value_t *args)
{
    s_in_t *in = ctx;
    char *text;
    for (;;) {
        if (in->nargs > 0) {
            if (in->next >= in->nargs)
                return 0;
            text = in->args[in->next++];
        } else {
            int got = s_stdin_line(in, &text);
            if (got == -1) {
                fprintf(stderr, "dpool: stdin: a line over %u bytes\n",
                        S_LINE_MAX);
                return -1;
            }
            if (got != 1)
                return got; /* 0 (end) or DP_INPUT_WAIT */
            size_t n = strlen(text);
            if (n && text[n - 1] == '\r')
                text[--n] = '\0';
            if (n == 0)
                continue; /* blank lines are no input */
        }
        if (!dp_joblog_skip(in->jl, in->nread++, text))
            break; /* else --resume: done in an earlier run */
    }
    if (s_make_args(in, text, args)) {
        dp_value_clear(args);
        in->bad_input = 1; /* said on stderr; the batch goes on */
        return s_next_input(ctx, args);
    }
    s_input_put(in, in->count++, in->nread - 1, strdup(text));
    return 1;
}

/* ---- output ---- */

static void s_json_str(FILE *f, const char *s)
{
    dp_value_t v = dp_str(s ? s : "");
    char *j = dp_value_json(&v);
    fputs(j ? j : "\"\"", f);
    free(j);
    dp_value_clear(&v);
}

/* s_save_body: write a download's body under --output-dir, replace
 * "body" by "path" in the result. */
static int s_save_body(dp_cli_t *c, dp_result_t *r, char *path, size_t len)
{
    const dp_value_t *body = dp_dict_get(&r->value, "body");
    const dp_value_t *url = dp_dict_get(&r->value, "url");
    if (!body || body->type != DP_BIN)
        return 0;
    char base[DP_DL_NAME_MAX + 1];
    if (dp_dl_safe_name(url && url->type == DP_STR ? url->v.s.ptr : "", base,
                        sizeof base))
        return -1;
    int fd = dp_dl_open_unique(c->output_dir, base, path, len);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < body->v.s.len) {
        ssize_t n = write(fd, body->v.s.ptr + off, body->v.s.len - off);
        if (n <= 0 && errno != EINTR)
            break;
        off += n > 0 ? (size_t)n : 0;
    }
    close(fd);
    if (off != body->v.s.len)
        return -1;
    /* turn the body into the path it went to */
    dp_value_t *b = (dp_value_t *)body;
    dp_value_clear(b);
    *b = dp_str(path);
    dp_value_t *key = b - 1;
    dp_value_clear(key);
    *key = dp_str("path");
    return 0;
}

static void s_print_text(const char *type, const char *input,
                         const dp_result_t *r)
{
    if (r->error) {
        fprintf(stderr, "dpool: %s: %s: %s\n", input, dp_errname(r->error),
                r->message ? r->message : dp_strerror(r->error));
        return;
    }
    const dp_value_t *v = &r->value;
    if (strcmp(type, "factor") == 0 && v->type == DP_ARRAY) {
        printf("%s:", input);
        for (size_t k = 0; k < v->v.a.len; k++) {
            const dp_value_t *x = &v->v.a.items[k];
            if (x->type == DP_UINT)
                printf(" %llu", (unsigned long long)x->v.u);
            else if (x->type == DP_STR)
                printf(" %s", x->v.s.ptr);
        }
        putchar('\n');
    } else if (strcmp(type, "isprime") == 0) {
        const dp_value_t *p = v->type == DP_MAP ? dp_dict_get(v, "prime") : v;
        bool prime = p && p->type == DP_BOOL && p->v.b;
        printf("%s: %s\n", input, prime ? "prime" : "not prime");
    } else if (strcmp(type, "download") == 0 && v->type == DP_MAP) {
        const dp_value_t *st = dp_dict_get(v, "status");
        const dp_value_t *by = dp_dict_get(v, "bytes");
        const dp_value_t *pa = dp_dict_get(v, "path");
        printf("%s: %llu %llu bytes -> %s\n", input,
               st && st->type == DP_UINT ? (unsigned long long)st->v.u : 0,
               by && by->type == DP_UINT ? (unsigned long long)by->v.u : 0,
               pa && pa->type == DP_STR ? pa->v.s.ptr : "?");
    } else if (v->type == DP_STR) {
        printf("%s: %s\n", input, v->v.s.ptr);
    } else {
        char *j = dp_value_json(v);
        printf("%s: %s\n", input, j ? j : "?");
        free(j);
    }
}

static void s_print_json(const char *type, const char *input,
                         const dp_result_t *r)
{
    printf("{\"index\":%zu,\"type\":", r->index);
    s_json_str(stdout, type);
    printf(",\"input\":");
    s_json_str(stdout, input);
    printf(",\"ok\":%s,", r->error ? "false" : "true");
    if (r->error) {
        printf("\"error\":{\"code\":%d,\"name\":\"%s\",\"message\":", r->error,
               dp_errname(r->error));
        s_json_str(stdout, r->message);
        putchar('}');
    } else {
        char *j = dp_value_json(&r->value);
        printf("\"result\":%s", j ? j : "null");
        free(j);
    }
    printf(",\"worker\":");
    s_json_str(stdout, r->worker);
    printf(",\"pid\":%d,\"elapsed_ms\":%.3f,\"attempts\":%u}\n", r->pid,
           r->elapsed_us / 1000.0, r->attempts);
}

/* ---- progress ---- */

typedef struct {
    uint64_t t0, last;
    bool shown;
} s_progress_t;

static void s_progress(dp_cli_t *c, s_progress_t *pg, dp_map_t *m, size_t total,
                       bool end)
{
    uint64_t now = dp_now_ms();
    if (!c->progress || (!end && now - pg->last < DP_PROGRESS_MS) ||
        now - pg->t0 < DP_PROGRESS_AFTER_MS)
        return;
    pg->last = now;
    size_t sub, done, failed;
    dp_map_stats(m, &sub, &done, &failed);
    double secs = (double)(now - pg->t0) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    fprintf(stderr, "\r%zu/", done);
    if (total)
        fprintf(stderr, "%zu", total);
    else
        fprintf(stderr, "?");
    fprintf(stderr, " done, %zu failed, %.1f jobs/s", failed, rate);
    if (total && rate > 0 && done < total)
        fprintf(stderr, ", ETA %.0f s", (double)(total - done) / rate);
    fprintf(stderr, "\033[K%s", end ? "\n" : "");
    pg->shown = true;
}

/* ---- the batch ---- */

int dp_cli_map(dp_cli_t *c, const char *type, char **args, int nargs)
{
    s_in_t in = {.c = c, .type = type, .args = args, .nargs = nargs};
    dp_map_opts_t o = {
        .unordered = c->unordered,
        .chunksize = (size_t)c->chunksize,
        .max_inflight = (size_t)c->max_inflight,
        .fail_fast = c->fail_fast,
        .job = {.timeout = c->timeout, .retries = (int)c->retries},
        .input_fd = STDIN_FILENO};
    in.cap = o.max_inflight ? o.max_inflight : DP_MAX_INFLIGHT_CLI;
    o.max_inflight = in.cap;
    for (in.tsize = 1; in.tsize < 2 * in.cap; in.tsize *= 2)
        ;
    in.inputs = calloc(in.tsize, sizeof *in.inputs);
    dp_map_t *m = NULL;
    int rc = in.inputs ? 0 : DP_ERR_NOMEM;
    if (!rc && c->joblog) {
        char err[512];
        dp_joblog_mode_t mode = c->resume_failed ? DP_JOBLOG_RESUME_FAILED
                                : c->resume      ? DP_JOBLOG_RESUME
                                                 : DP_JOBLOG_APPEND;
        if (dp_joblog_open(c->joblog, mode, &in.jl, err, sizeof err)) {
            fprintf(stderr, "dpool: --joblog %s\n", err);
            rc = DP_ERR_INVALID;
            in.bad_input = DP_EXIT_USAGE;
        }
    }
    if (!rc)
        rc = dp_map(c->pool, type, s_next_input, &in, &o, &m);
    size_t failed = 0;
    s_progress_t pg = {dp_now_ms(), 0, false};
    dp_result_t *r;
    while (!rc && (rc = dp_map_next(m, &r)) == 0) {
        char *text = s_input_take(&in, r->index, &r->index);
        const char *input = text ? text : "?";
        char path[4096];
        if (!r->error && strcmp(type, "download") == 0 &&
            s_save_body(c, r, path, sizeof path)) {
            fprintf(stderr, "dpool: %s: cannot write under %s: %s\n", input,
                    c->output_dir, strerror(errno));
            failed++;
        }
        failed += r->error != 0;
        if (c->json)
            s_print_json(type, input, r);
        else
            s_print_text(type, input, r);
        fflush(stdout);
        dp_joblog_write(in.jl, r->index, input, r, dp_joblog_now_ms());
        dp_result_free(&r);
        free(text);
        s_progress(c, &pg, m, (size_t)nargs, false);
    }
    if (m && pg.shown)
        s_progress(c, &pg, m, (size_t)nargs, true);
    int code = failed || in.bad_input ? DP_EXIT_FAILED : DP_EXIT_OK;
    if (in.bad_input == DP_EXIT_USAGE) /* a joblog it cannot use */
        code = DP_EXIT_USAGE;
    dp_joblog_close(&in.jl);
    if (rc == DP_ERR_CANCELLED) {
        fprintf(stderr, "dpool: interrupted; unfinished jobs cancelled\n");
        code = DP_EXIT_INTERRUPTED;
    } else if (rc == DP_ERR_BROKER_LOST) {
        fprintf(stderr, "dpool: lost the broker %s mid-batch\n",
                c->broker ? c->broker : "(embedded)");
        code = DP_EXIT_UNREACHABLE;
    } else if (rc != DP_ERR_EOF && rc != DP_ERR_INVALID) {
        fprintf(stderr, "dpool: %s\n", dp_strerror(rc));
        code = DP_EXIT_FAILED;
    }
    dp_map_destroy(&m);
    for (size_t k = 0; in.inputs && k < in.tsize; k++)
        free(in.inputs[k].text);
    free(in.inputs);
    free(in.rbuf);
    return code;
}
