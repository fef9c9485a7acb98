/*
 * cli_map.c - run one job type over the command line's arguments or
 * stdin's lines (read lazily), print each result as it comes (text or
 * JSON Lines), show progress, write download bodies.
 *
 * The input text of each job is kept, by input position, until its
 * result is printed (copied into blocks, not allocated one by one).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "dp_jobtab.h"

#define S_FILE_MAX (256u * 1024 * 1024) /* hash: largest file sent */
#define S_LINE_MAX (1u << 20)           /* longest stdin line */
#define S_READ_CHUNK 65536u
#define S_LINE_LONG 4   /* s_read_line: a line skipped */
#define S_EXIT_PIPE 141 /* as if killed by SIGPIPE */
#define S_WS " \t\v\f\r"
#define S_UINT_DIGITS 20 /* digits of the largest uint64 */

#define S_TEXT_BLOCK 65536u /* input texts are kept in blocks this size */
#define S_LINE_FAST 128     /* an output line built whole, at most */

/* How a text line shows a result: decided once per batch from the job
 * type, not by comparing the type's name for every result. */
typedef enum {
    S_SHOW_VALUE,
    S_SHOW_FACTOR,
    S_SHOW_ISPRIME,
    S_SHOW_DL
} s_show_t;

/* Input texts are copied into blocks one after the other (a block per
 * S_TEXT_BLOCK bytes, not a malloc and a free per input): a block counts
 * the texts it holds that are not yet printed and is freed (or, the one
 * being filled, reused) when that reaches 0. */
typedef struct {
    size_t used, cap, live;
    char data[];
} s_block_t;

/* The input text of each job in flight, by input index, until its result
 * is printed. (A ring by index % cap is not enough: unordered results can
 * come back far out of order.) */
typedef struct {
    size_t index;
    size_t at;  /* its position among all inputs (the map's index skips
                   inputs --resume leaves out) */
    char *text; /* in blk; NULL = free slot */
    s_block_t *blk;
    bool used; /* ever held an input: a lookup probes past it */
} s_slot_t;

typedef struct {
    dp_cli_t *c;
    const char *type;
    char **args;
    int nargs, next;
    int fd;           /* inputs are this fd's lines (-1: the args) */
    const char *name; /* of fd, for messages */
    s_slot_t *inputs; /* input texts by index: open addressing over
                         tsize slots, at most half of them in use */
    s_block_t *blk;   /* the block texts are copied into now */
    size_t tsize, live;
    size_t cap, count;
    char *rbuf; /* stdin bytes read, not yet taken as lines */
    size_t roff, rlen, rcap;
    bool eof, skipping; /* skipping: the rest of an over-long line */
    size_t lineno;
    bool split;    /* factor: a line holds several numbers */
    char *pending; /* split: the line's copy, its tokens NUL-ended */
    size_t pend_off;
    bool done;       /* the input has ended: count is the total */
    size_t nread;    /* inputs read so far, --resume's skipped ones too */
    dp_joblog_t *jl; /* --joblog, or NULL */
    s_show_t show;   /* how text lines show results */
    char why[256];   /* the reason an input cannot become a job */
    /* label: names a line too long to read */
    char label[PATH_MAX];
} s_in_t;

/* s_read_fd: all of fd (at most S_FILE_MAX bytes) as a bin value; 0, or
 * an error code with the reason in why. */
static int s_read_fd(int fd, dp_value_t *out, char *why, size_t len_why)
{
    size_t len = 0, cap = S_READ_CHUNK;
    char *p = malloc(cap);
    bool failed = !p;
    while (!failed && len <= S_FILE_MAX) {
        if (len == cap) { /* up to one byte over the limit, to see it */
            size_t ncap = cap * 2 > S_FILE_MAX ? S_FILE_MAX + 1 : cap * 2;
            char *q = realloc(p, ncap);
            failed = !q;
            p = q ? q : p;
            cap = ncap;
            continue;
        }
        ssize_t n = read(fd, p + len, cap - len);
        if (n == 0)
            break;
        failed = n < 0 && errno != EINTR;
        len += n > 0 ? (size_t)n : 0;
    }
    if (failed || len > S_FILE_MAX) {
        snprintf(why, len_why, "%s",
                 failed ? strerror(errno) : "larger than the 256 MiB limit");
        free(p);
        return failed ? DP_ERR_IO : DP_ERR_TOO_BIG;
    }
    *out = dp_bin(p, len);
    free(p);
    return out->type == DP_BIN ? 0 : DP_ERR_NOMEM;
}

/* s_file_arg: a file's content as a bin value; 0, or an error code with
 * the reason in why. */
static int s_file_arg(const char *path, dp_value_t *out, char *why,
                      size_t len_why)
{
    if (strcmp(path, "-") == 0)
        return s_read_fd(STDIN_FILENO, out, why, len_why);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, len_why, "%s", strerror(errno));
        return DP_ERR_IO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size > (off_t)S_FILE_MAX) {
        snprintf(why, len_why, "larger than the 256 MiB limit");
        fclose(f);
        return DP_ERR_TOO_BIG;
    }
    size_t size = (size_t)st.st_size;
    *out = dp_bin("", 0);
    char *p = malloc(size + 1);
    size_t got = p ? fread(p, 1, size, f) : 0;
    fclose(f);
    if (!p || got != size) {
        free(p);
        snprintf(why, len_why, "read failed");
        return DP_ERR_IO;
    }
    free(out->v.s.ptr);
    out->v.s.ptr = p;
    out->v.s.len = size;
    return 0;
}

/* s_make_args: a hash job's argument array for one input text (a file
 * name); 0, or an error code with the reason in why. (Every other type
 * takes the text itself: dp_map_text.) */
static int s_make_args(s_in_t *in, const char *text, dp_value_t *args,
                       char *why, size_t len_why)
{
    dp_cli_t *c = in->c;
    size_t n = c->pbkdf2 ? (c->dklen ? 5 : 4) : (c->dklen ? 5 : 2);
    *args = dp_array(n);
    if (strcmp(text, "-") == 0 && in->fd == STDIN_FILENO) {
        snprintf(why, len_why, "stdin holds the list of inputs");
        return DP_ERR_INVALID;
    }
    int rc = s_file_arg(text, &args->v.a.items[0], why, len_why);
    if (rc)
        return rc;
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

/* s_text_done: the text of a slot is printed: its block holds one less. */
static void s_text_done(s_in_t *in, s_block_t *blk)
{
    if (!blk || --blk->live > 0)
        return;
    if (blk == in->blk)
        blk->used = 0; /* the block being filled: start it again */
    else
        free(blk);
}

/* s_text_copy: text (len bytes) copied into the current block (a new one
 * when it is full), *blk its block; NULL when out of memory. */
static char *s_text_copy(s_in_t *in, const char *text, size_t len,
                         s_block_t **blk)
{
    s_block_t *b = in->blk;
    if (!b || b->cap - b->used < len + 1) {
        size_t cap = len + 1 > S_TEXT_BLOCK ? len + 1 : S_TEXT_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        *b = (s_block_t){0, cap, 0};
        if (in->blk && in->blk->live == 0)
            free(in->blk); /* nothing of it waits to be printed */
        in->blk = b;
    }
    char *p = b->data + b->used;
    memcpy(p, text, len);
    p[len] = '\0';
    b->used += len + 1;
    b->live++;
    *blk = b;
    return p;
}

/* Inputs are numbered 0, 1, 2, ... and each is put and taken once, so
 * input i nearly always sits in its home slot i % tsize: freed slots stay
 * marked `used` (tombstones) and are reused by later inputs. */
static void s_input_place(s_slot_t *t, size_t tsize, s_slot_t slot)
{
    size_t k = slot.index & (tsize - 1);
    while (t[k].text)
        k = (k + 1) & (tsize - 1);
    t[k] = slot;
    t[k].used = true;
}

/* s_input_put: keep a copy of text for input index. The table grows so
 * that at most half its slots hold a text: a free slot always exists (the
 * map may hold more inputs in flight than --max-inflight, e.g. one chunk
 * of --chunksize). */
static int s_input_put(s_in_t *in, size_t index, size_t at, const char *text,
                       size_t len)
{
    if ((in->live + 1) * 2 > in->tsize) {
        size_t tsize = in->tsize * 2;
        s_slot_t *t = calloc(tsize, sizeof *t);
        if (!t)
            return -1;
        for (size_t k = 0; k < in->tsize; k++)
            if (in->inputs[k].text)
                s_input_place(t, tsize, in->inputs[k]);
        free(in->inputs);
        in->inputs = t;
        in->tsize = tsize;
    }
    s_slot_t slot = {.index = index, .at = at};
    slot.text = s_text_copy(in, text, len, &slot.blk);
    if (!slot.text)
        return -1;
    s_input_place(in->inputs, in->tsize, slot);
    in->live++;
    return 0;
}

/* s_input_take: the text of input index, or NULL; it stays valid until
 * s_text_done(in, *blk). *at: its position among all inputs. */
static char *s_input_take(s_in_t *in, size_t index, size_t *at, s_block_t **blk)
{
    *at = index;
    *blk = NULL;
    size_t mask = in->tsize - 1, k = index & mask;
    for (size_t n = 0; n < in->tsize && in->inputs[k].used; n++) {
        if (in->inputs[k].text && in->inputs[k].index == index) {
            char *text = in->inputs[k].text;
            *at = in->inputs[k].at;
            *blk = in->inputs[k].blk;
            in->inputs[k].text = NULL;
            in->live--;
            return text;
        }
        k = (k + 1) & mask;
    }
    return NULL;
}

/* s_read_line: the next line of in->fd (NUL-terminated in place) into
 * *line: 1, 0 at the end, DP_INPUT_WAIT when no whole line is there yet
 * (never blocks, so results keep flowing while the producer is slow),
 * S_LINE_LONG for a line over S_LINE_MAX, which is skipped up to its
 * newline (the caller reports it; later lines are read as usual). */
static int s_read_line(s_in_t *in, char **line)
{
    for (;;) {
        char *start = in->rbuf + in->roff;
        size_t have = in->rlen - in->roff;
        char *nl = have ? memchr(start, '\n', have) : NULL;
        if (in->skipping && (nl || in->eof)) {
            in->roff = nl ? in->roff + (size_t)(nl - start) + 1 : in->rlen;
            in->skipping = false;
            return S_LINE_LONG;
        }
        if (in->skipping) {
            in->roff = in->rlen = 0; /* drop what came of the long line */
        } else if (nl || (in->eof && have)) {
            size_t len = nl ? (size_t)(nl - start) : have;
            in->roff += len + (nl ? 1 : 0);
            start[len] = '\0'; /* over the newline, or the spare byte */
            *line = start;
            return 1;
        } else if (in->eof) {
            return 0;
        }
        if (in->roff) { /* keep the partial line at the front */
            memmove(in->rbuf, in->rbuf + in->roff, in->rlen - in->roff);
            in->rlen -= in->roff;
            in->roff = 0;
        }
        if (in->rlen + 1 >= in->rcap) {
            if (in->rcap >= S_LINE_MAX) {
                in->skipping = true;
                in->rlen = 0;
                continue;
            }
            size_t cap = in->rcap ? in->rcap * 2 : S_READ_CHUNK;
            char *p = realloc(in->rbuf, cap);
            if (!p)
                return -1;
            in->rbuf = p;
            in->rcap = cap;
        }
        struct pollfd pf = {in->fd, POLLIN, 0};
        if (poll(&pf, 1, 0) == 0)
            return DP_INPUT_WAIT;
        ssize_t n = read(in->fd, in->rbuf + in->rlen, in->rcap - in->rlen - 1);
        if (n > 0)
            in->rlen += (size_t)n;
        else if (n == 0 || (errno != EINTR && errno != EAGAIN))
            in->eof = true;
    }
}

/* s_token: the next whitespace-separated word of the pending line, or
 * NULL (then the line is used up and freed). */
static char *s_token(s_in_t *in)
{
    char *p = in->pending + in->pend_off;
    p += strspn(p, S_WS);
    size_t n = strcspn(p, S_WS);
    if (n == 0) {
        free(in->pending);
        in->pending = NULL;
        return NULL;
    }
    in->pend_off = (size_t)(p - in->pending) + n + (p[n] ? 1 : 0);
    p[n] = '\0';
    return p;
}

/* s_next_text: the next input text: an argument, or a line (a word of a
 * line for factor, as GNU factor reads them). Lines empty or of blanks
 * only are no input; a trailing CR is dropped. 1, 0 at the end,
 * DP_INPUT_WAIT, S_LINE_LONG (a line skipped), or -1 (out of memory). */
static int s_next_text(s_in_t *in, char **text, size_t *len)
{
    for (;;) {
        if (in->pending && (*text = s_token(in))) {
            *len = strlen(*text);
            return 1;
        }
        if (in->fd < 0) {
            if (in->next >= in->nargs)
                return 0;
            *text = in->args[in->next++];
            *len = strlen(*text);
            return 1;
        }
        char *line;
        int got = s_read_line(in, &line);
        if (got == 1 || got == S_LINE_LONG)
            in->lineno++;
        if (got != 1)
            return got; /* 0, DP_INPUT_WAIT, S_LINE_LONG, -1 */
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[--n] = '\0';
        bool word = n && !strchr(S_WS, line[0]); /* not blank, surely */
        if (!word && line[strspn(line, S_WS)] == '\0')
            continue; /* blank lines are no input */
        if (!in->split) {
            *text = line;
            *len = n;
            return 1;
        }
        in->pending = strdup(line);
        in->pend_off = 0;
        if (!in->pending)
            return -1;
    }
}

/* s_bad_input: an input that cannot become a job still gets its line:
 * the map makes its result (code, why) in its place (DP_INPUT_BAD). */
static int s_bad_input(s_in_t *in, const char *label, int code, const char *why,
                       dp_value_t *args)
{
    *args = dp_array(2);
    if (args->type != DP_ARRAY)
        return -1;
    args->v.a.items[0] = dp_uint((uint64_t)code);
    args->v.a.items[1] = dp_str(why);
    return s_input_put(in, in->count++, in->nread - 1, label, strlen(label))
               ? -1
               : DP_INPUT_BAD;
}

/* s_take: the next input's text (inputs --resume leaves out are passed
 * over): 1, S_LINE_LONG (a line skipped: in->label names it, in->why
 * says why), 0 at the end, DP_INPUT_WAIT, or -1. *len: the text's
 * length. */
static int s_take(s_in_t *in, char **text, size_t *len)
{
    int got = s_next_text(in, text, len);
    while (got == 1 && dp_joblog_skip(in->jl, in->nread, *text)) {
        in->nread++; /* --resume: done in an earlier run */
        got = s_next_text(in, text, len);
    }
    if (got == 1 || got == S_LINE_LONG)
        in->nread++;
    if (got == S_LINE_LONG) {
        snprintf(in->label, sizeof in->label, "%s line %zu", in->name,
                 in->lineno);
        snprintf(in->why, sizeof in->why, "%u bytes or more; skipped",
                 S_LINE_MAX - 1);
        return got;
    }
    in->done = got <= 0;
    return got;
}

/* s_next_input: a hash job's arguments (dp_input_fn). */
static int s_next_input(void *ctx, dp_value_t *args)
{
    s_in_t *in = ctx;
    char *text;
    size_t len;
    int got = s_take(in, &text, &len);
    if (got == S_LINE_LONG)
        return s_bad_input(in, in->label, DP_ERR_TOO_BIG, in->why, args);
    if (got != 1)
        return got; /* 0 (end), DP_INPUT_WAIT, or an error */
    int code = s_make_args(in, text, args, in->why, sizeof in->why);
    if (code == 0)
        return s_input_put(in, in->count++, in->nread - 1, text, len) ? -1 : 1;
    dp_value_clear(args);
    return s_bad_input(in, text, code, in->why, args);
}

/* s_next_text_input: any other job's one argument, the text itself
 * (dp_text_fn): it goes into the SUBMIT as it is. */
static int s_next_text_input(void *ctx, const char **text, size_t *len,
                             int *code)
{
    s_in_t *in = ctx;
    char *t;
    size_t n;
    int got = s_take(in, &t, &n);
    if (got != 1 && got != S_LINE_LONG)
        return got; /* 0 (end), DP_INPUT_WAIT, or an error */
    bool bad = got == S_LINE_LONG;
    if (bad)
        n = strlen(in->label);
    if (s_input_put(in, in->count++, in->nread - 1, bad ? in->label : t, n))
        return -1;
    *text = bad ? in->why : t;
    *len = bad ? strlen(in->why) : n;
    *code = DP_ERR_TOO_BIG;
    return bad ? DP_INPUT_BAD : 1;
}

/* ---- output ---- */

/* s_utf8_len: length of the valid UTF-8 sequence at p (RFC 3629: no
 * overlongs, surrogates or code points past U+10FFFF), or 0. */
static size_t s_utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t n = c < 0x80                 ? 1
               : c >= 0xC2 && c <= 0xDF ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    for (size_t k = 1; k < n; k++) {
        unsigned char b = p[k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
            return 0;
    }
    return n;
}

/* s_utf8_fix: s with each byte that is not part of valid UTF-8 replaced
 * by U+FFFD (as Python's errors="replace" does); caller frees. */
static char *s_utf8_fix(const char *s, size_t len)
{
    static const char repl[] = "\xEF\xBF\xBD";
    char *out = malloc(3 * len + 1), *o = out;
    for (size_t k = 0; out && k < len;) {
        size_t n = s_utf8_len((const unsigned char *)s + k);
        if (n == 0 || k + n > len) {
            memcpy(o, repl, 3);
            o += 3;
            k++;
        } else {
            memcpy(o, s + k, n);
            o += n;
            k += n;
        }
    }
    if (o)
        *o = '\0';
    return out;
}

/* s_value_fix: make every string in v valid UTF-8 (JSON text must be). */
static void s_value_fix(dp_value_t *v)
{
    if (v->type == DP_STR) {
        char *fixed = s_utf8_fix(v->v.s.ptr, v->v.s.len);
        if (fixed && strcmp(fixed, v->v.s.ptr) != 0) {
            free(v->v.s.ptr);
            v->v.s.ptr = fixed;
            v->v.s.len = strlen(fixed);
        } else {
            free(fixed);
        }
    } else if (v->type == DP_ARRAY || v->type == DP_MAP) {
        size_t n = v->type == DP_MAP ? 2 * v->v.a.len : v->v.a.len;
        for (size_t k = 0; k < n; k++)
            s_value_fix(&v->v.a.items[k]);
    }
}

static void s_json_str(FILE *f, const char *s)
{
    char *fixed = s_utf8_fix(s ? s : "", s ? strlen(s) : 0);
    dp_value_t v = dp_str(fixed ? fixed : "");
    char *j = dp_value_json(&v);
    fputs(j ? j : "\"\"", f);
    free(j);
    free(fixed);
    dp_value_clear(&v);
}

/* s_put_safe: text from a worker, for a terminal: control characters
 * (C0, DEL) as \xNN, so a value cannot move the cursor, change colours
 * or fake a line. The caller holds f's lock (flockfile): bytes go out
 * through putc_unlocked, not a locked fputc each. */
static void s_put_safe(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (p && *p) {
        const unsigned char *q = p; /* a run of safe bytes: one write */
        while (*q >= 0x20 && *q != 0x7f)
            q++;
        if (q > p)
            fwrite_unlocked(p, 1, (size_t)(q - p), f);
        if (!*q)
            break;
        fprintf(f, "\\x%02x", *q);
        p = q + 1;
    }
}

/* s_put_uint: " N" (f locked by the caller). */
static void s_put_uint(FILE *f, unsigned long long v)
{
    char b[S_UINT_DIGITS + 1];
    char *p = b + sizeof b;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    *--p = ' ';
    fwrite_unlocked(p, 1, (size_t)(b + sizeof b - p), f);
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

static void s_print_error(const char *input, const dp_result_t *r)
{
    flockfile(stderr);
    fputs("dpool: ", stderr);
    s_put_safe(stderr, input);
    fprintf(stderr, ": %s: ", dp_errname(r->error));
    s_put_safe(stderr, r->message ? r->message : dp_strerror(r->error));
    fputc('\n', stderr);
    funlockfile(stderr);
}

/* s_print_text: one line per result. stdout is locked once per line and
 * written with the unlocked calls: the pool's I/O thread exists, so each
 * locked putchar/printf would pay for the lock (only this thread writes
 * stdout). */
static s_show_t s_show_of(const char *type)
{
    return strcmp(type, "factor") == 0     ? S_SHOW_FACTOR
           : strcmp(type, "isprime") == 0  ? S_SHOW_ISPRIME
           : strcmp(type, "download") == 0 ? S_SHOW_DL
                                           : S_SHOW_VALUE;
}

/* s_isprime_line: "INPUT: prime\n" or "INPUT: not prime\n" in one write
 * when the input needs no escaping and the line fits S_LINE_FAST (the
 * common line of `dpool isprime`); false: print it the long way. */
static bool s_isprime_line(const char *input, const dp_value_t *v)
{
    static const char yes[] = ": prime\n", no[] = ": not prime\n";
    char line[S_LINE_FAST];
    size_t n = 0;
    for (; input[n]; n++) {
        unsigned char ch = (unsigned char)input[n];
        if (ch < 0x20 || ch == 0x7f || n + sizeof no >= sizeof line)
            return false;
        line[n] = (char)ch;
    }
    const dp_value_t *p = v->type == DP_MAP ? dp_dict_get(v, "prime") : v;
    bool prime = p && p->type == DP_BOOL && p->v.b;
    size_t k = prime ? sizeof yes - 1 : sizeof no - 1;
    memcpy(line + n, prime ? yes : no, k);
    fwrite_unlocked(line, 1, n + k, stdout); /* only this thread writes */
    return true;
}

static void s_print_text(s_show_t show, const char *input, const dp_result_t *r)
{
    if (r->error) {
        s_print_error(input, r);
        return;
    }
    const dp_value_t *v = &r->value;
    if (show == S_SHOW_ISPRIME && s_isprime_line(input, v))
        return;
    flockfile(stdout);
    s_put_safe(stdout, input);
    putc_unlocked(':', stdout);
    if (show == S_SHOW_FACTOR && v->type == DP_ARRAY) {
        for (size_t k = 0; k < v->v.a.len; k++) {
            const dp_value_t *x = &v->v.a.items[k];
            if (x->type == DP_UINT)
                s_put_uint(stdout, (unsigned long long)x->v.u);
            else if (x->type == DP_STR) {
                putc_unlocked(' ', stdout);
                s_put_safe(stdout, x->v.s.ptr);
            }
        }
    } else if (show == S_SHOW_ISPRIME) {
        const dp_value_t *p = v->type == DP_MAP ? dp_dict_get(v, "prime") : v;
        bool prime = p && p->type == DP_BOOL && p->v.b;
        if (prime) /* our own text: nothing to make safe */
            fwrite_unlocked(" prime", 1, strlen(" prime"), stdout);
        else
            fwrite_unlocked(" not prime", 1, strlen(" not prime"), stdout);
    } else if (show == S_SHOW_DL && v->type == DP_MAP) {
        const dp_value_t *st = dp_dict_get(v, "status");
        const dp_value_t *by = dp_dict_get(v, "bytes");
        const dp_value_t *pa = dp_dict_get(v, "path");
        printf(" %llu %llu bytes -> ",
               st && st->type == DP_UINT ? (unsigned long long)st->v.u : 0,
               by && by->type == DP_UINT ? (unsigned long long)by->v.u : 0);
        s_put_safe(stdout, pa && pa->type == DP_STR ? pa->v.s.ptr : "?");
    } else if (v->type == DP_STR) {
        putchar(' ');
        s_put_safe(stdout, v->v.s.ptr);
    } else {
        char *j = dp_value_json(v); /* JSON escapes control characters */
        putchar(' ');
        s_put_safe(stdout, j ? j : "?");
        free(j);
    }
    putc_unlocked('\n', stdout);
    funlockfile(stdout);
}

static void s_print_json(const char *type, size_t at, const char *input,
                         dp_result_t *r)
{
    printf("{\"index\":%zu,\"type\":", at);
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
        s_value_fix(&r->value);
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

/* The progress line lives on stderr's last line: cleared before a result
 * is printed, drawn again after, and refreshed every DP_PROGRESS_MS while
 * nothing arrives. Once the input has ended it shows the total. */
typedef struct {
    uint64_t t0, last;
    bool drawn;  /* ever: end with a last line and a newline */
    bool shown;  /* the line is on the screen now */
    bool shared; /* stdout is a terminal too: clear before results */
    char line[160];
} s_progress_t;

static void s_progress_clear(s_progress_t *pg)
{
    if (pg->shown && pg->shared) {
        fputs("\r\033[K", stderr);
        pg->shown = false;
    }
}

/* s_progress_again: put back the line s_progress_clear took away. */
static void s_progress_again(s_progress_t *pg)
{
    if (pg->drawn && !pg->shown) {
        fprintf(stderr, "\r%s\033[K", pg->line);
        fflush(stderr);
        pg->shown = true;
    }
}

static void s_progress(dp_cli_t *c, s_progress_t *pg, dp_map_t *m,
                       const s_in_t *in, bool end)
{
    if (!c->progress) /* the clock is read only for a progress line */
        return;
    uint64_t now = dp_now_ms();
    if ((end && !pg->drawn) || (!end && now - pg->last < DP_PROGRESS_MS) ||
        now - pg->t0 < DP_PROGRESS_AFTER_MS)
        return;
    pg->last = now;
    size_t sub, done, failed;
    dp_map_stats(m, &sub, &done, &failed);
    size_t total = in->done ? in->count : 0;
    double secs = (double)(now - pg->t0) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    char tot[32], eta[48] = "";
    if (total)
        snprintf(tot, sizeof tot, "%zu", total);
    else
        snprintf(tot, sizeof tot, "%zu+", sub); /* input still coming */
    if (total && rate > 0 && done < total)
        snprintf(eta, sizeof eta, ", ETA %.0f s",
                 (double)(total - done) / rate);
    snprintf(pg->line, sizeof pg->line,
             "%zu/%s done, %zu failed, %.1f jobs/s%s", done, tot, failed, rate,
             eta);
    fprintf(stderr, "\r%s\033[K%s", pg->line, end ? "\n" : "");
    fflush(stderr);
    pg->drawn = true;
    pg->shown = !end;
}

/* ---- the batch ---- */

/* s_open_input: where the inputs come from: the arguments, --arg-file, or
 * stdin. DP_EXIT_USAGE / DP_EXIT_FAILED when that cannot be. */
static int s_open_input(s_in_t *in)
{
    dp_cli_t *c = in->c;
    in->fd = in->nargs > 0 ? -1 : STDIN_FILENO;
    in->name = "stdin";
    in->split = strcmp(in->type, "factor") == 0;
    in->show = s_show_of(in->type);
    if (!c->arg_file)
        return 0;
    if (in->nargs > 0) {
        fprintf(stderr, "dpool: give inputs as arguments or with "
                        "--arg-file, not both\n");
        return DP_EXIT_USAGE;
    }
    if (strcmp(c->arg_file, "-") == 0)
        return 0;
    in->fd = open(c->arg_file, O_RDONLY | O_CLOEXEC);
    if (in->fd < 0) {
        fprintf(stderr, "dpool: %s: %s\n", c->arg_file, strerror(errno));
        return DP_EXIT_FAILED;
    }
    in->name = c->arg_file;
    return 0;
}

/* s_emit: print one result; 0, or the errno when stdout is gone (a closed
 * pipe, a full disk: the batch is cancelled). */
static int s_emit(dp_cli_t *c, const char *type, s_in_t *in, dp_result_t *r,
                  size_t *failed)
{
    size_t at; /* its position among all inputs */
    s_block_t *blk;
    char *text = s_input_take(in, r->index, &at, &blk);
    const char *input = text ? text : "?";
    char path[4096];
    if (!r->error && in->show == S_SHOW_DL &&
        s_save_body(c, r, path, sizeof path)) {
        fprintf(stderr, "dpool: %s: cannot write under %s: %s\n", input,
                c->output_dir, strerror(errno));
        (*failed)++;
    }
    *failed += r->error != 0;
    if (c->json)
        s_print_json(type, at, input, r);
    else
        s_print_text(in->show, input, r);
    /* stdout is flushed when no result is ready (dp_cli_map), not per
     * line: one write per batch of results, not one per job */
    if (in->jl) /* the joblog line must follow output that is out */
        fflush(stdout);
    /* only this thread writes stdout: no lock needed to look */
    int err = !ferror_unlocked(stdout) ? 0 : errno ? errno : EIO;
    if (!err) /* after its output: a kill between repeats it, loses none */
        dp_joblog_write(in->jl, at, input, r, dp_joblog_now_ms());
    s_text_done(in, blk);
    return err;
}

/* s_exit_code: the exit status for how the batch ended. */
static int s_exit_code(const dp_cli_t *c, int rc, size_t failed)
{
    int code = failed ? DP_EXIT_FAILED : DP_EXIT_OK;
    if (rc == DP_ERR_CANCELLED) {
        fprintf(stderr, "dpool: interrupted; unfinished jobs cancelled\n");
        code = DP_EXIT_INTERRUPTED;
    } else if (rc == DP_ERR_BROKER_LOST) {
        fprintf(stderr, "dpool: lost the broker %s mid-batch\n",
                c->broker ? c->broker : "(embedded)");
        code = DP_EXIT_UNREACHABLE;
    } else if (rc == DP_ERR_INVALID) {
        code = DP_EXIT_FAILED; /* an input could not be read: said */
    } else if (rc != DP_ERR_EOF) {
        fprintf(stderr, "dpool: %s\n", dp_strerror(rc));
        code = DP_EXIT_FAILED;
    }
    return code;
}

/* s_type_timeout: the time limit the client holds each job to: --timeout,
 * else the type's default (so the client's own deadline applies too). */
static double s_type_timeout(const dp_cli_t *c, const char *type)
{
    if (c->timeout > 0)
        return c->timeout;
    const dp_jobtype_t *t = dp_jobtab_find(type, strlen(type));
    return t ? t->timeout_ms / 1000.0 : 0;
}

int dp_cli_map(dp_cli_t *c, const char *type, char **args, int nargs)
{
    s_in_t in = {.c = c, .type = type, .args = args, .nargs = nargs};
    int code = s_open_input(&in);
    if (code)
        return code;
    dp_map_opts_t o = {
        .unordered = c->unordered,
        .chunksize = (size_t)c->chunksize,
        .max_inflight = (size_t)c->max_inflight,
        .fail_fast = c->fail_fast,
        .job = {.timeout = s_type_timeout(c, type), .retries = (int)c->retries},
        .input_fd = in.fd};
    in.cap = o.max_inflight                  ? o.max_inflight
             : strcmp(type, "download") == 0 ? DP_MAX_INFLIGHT_CLI_IO
                                             : DP_MAX_INFLIGHT_CLI;
    o.max_inflight = in.cap;
    in.tsize = 64;
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
            free(in.inputs);
            if (in.fd > STDIN_FILENO)
                close(in.fd);
            return DP_EXIT_USAGE;
        }
    }
    /* hash sends a file's bytes: an argument array; every other type
     * the text of the input itself */
    if (!rc && strcmp(type, "hash") == 0)
        rc = dp_map(c->pool, type, s_next_input, &in, &o, &m);
    else if (!rc)
        rc = dp_map_text(c->pool, type, s_next_text_input, &in, &o, &m);
    size_t failed = 0;
    int out_gone = 0;
    s_progress_t pg = {.t0 = dp_now_ms(), .shared = isatty(STDOUT_FILENO)};
    double tick = c->progress ? DP_PROGRESS_MS / 1000.0 : -1;
    dp_result_t *r;
    while (!rc) {
        /* each result is the map's (a view, no copy) until the next */
        rc = dp_map_next_view(m, &r, 0);
        if (rc == DP_ERR_TIMEOUT) { /* about to wait: out with what we have */
            if (fflush(stdout) != 0 || ferror(stdout)) {
                out_gone = errno ? errno : EIO;
                break;
            }
            rc = dp_map_next_view(m, &r, tick);
        }
        if (rc == DP_ERR_TIMEOUT) { /* nothing yet: refresh the line */
            s_progress(c, &pg, m, &in, false);
            rc = 0;
            continue;
        }
        if (rc)
            break;
        s_progress_clear(&pg);
        out_gone = s_emit(c, type, &in, r, &failed);
        if (out_gone)
            break;
        s_progress_again(&pg);
        s_progress(c, &pg, m, &in, false);
    }
    if (m)
        s_progress(c, &pg, m, &in, true);
    if (!out_gone && (fflush(stdout) != 0 || ferror(stdout)))
        out_gone = errno ? errno : EIO;
    if (out_gone) { /* the reader left (| head): stop, as SIGPIPE would */
        dp_map_cancel(m);
        code = out_gone == EPIPE ? S_EXIT_PIPE : DP_EXIT_FAILED;
        if (code != S_EXIT_PIPE)
            fprintf(stderr, "dpool: stdout: %s\n", strerror(out_gone));
    } else {
        code = s_exit_code(c, rc, failed);
    }
    dp_map_destroy(&m);
    dp_joblog_close(&in.jl);
    for (size_t k = 0; in.inputs && k < in.tsize; k++)
        if (in.inputs[k].text && in.inputs[k].blk != in.blk)
            s_text_done(&in, in.inputs[k].blk);
    free(in.blk);
    free(in.inputs);
    free(in.rbuf);
    free(in.pending);
    if (in.fd > STDIN_FILENO)
        close(in.fd);
    return code;
}
