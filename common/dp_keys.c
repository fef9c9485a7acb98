/*
 * dp_keys.c - CURVE key files (see dp_keys.h).
 */
#include "dp_keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "dpool.h"

#define S_PUB_FIELD "public-key"
#define S_SEC_FIELD "secret-key"
#define S_PUB_EXT ".pub"
#define S_SEC_EXT ".key"

bool dp_keys_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > DP_KEY_NAME_MAX || name[0] == '.')
        return false;
    for (size_t k = 0; k < n; k++) {
        char c = name[k];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* s_write_file: create path exclusively with mode and write text. */
static int s_write_file(const char *path, int mode, const char *text, char *err,
                        size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return DP_ERR_IO;
    }
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int rc = (n == (ssize_t)len && fchmod(fd, (mode_t)mode) == 0) ? 0 : -1;
    if (close(fd) != 0 || rc) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(path);
        return DP_ERR_IO;
    }
    return 0;
}

int dp_keys_generate(const char *dir, const char *name, char *err,
                     size_t errlen)
{
    if (!dp_keys_name_ok(name)) {
        snprintf(err, errlen,
                 "bad key name '%s': use letters, digits, '.', '_', '-'", name);
        return DP_ERR_INVALID;
    }
    char pub[DP_KEY_Z85_LEN + 1], sec[DP_KEY_Z85_LEN + 1];
    if (zmq_curve_keypair(pub, sec) != 0) {
        snprintf(err, errlen, "this libzmq has no CURVE support: %s",
                 zmq_strerror(zmq_errno()));
        return DP_ERR_INVALID;
    }
    char kpath[PATH_MAX], ppath[PATH_MAX], text[DP_KEY_FILE_MAX];
    snprintf(kpath, sizeof kpath, "%s/%s" S_SEC_EXT, dir, name);
    snprintf(ppath, sizeof ppath, "%s/%s" S_PUB_EXT, dir, name);
    snprintf(text, sizeof text,
             "# dpool CURVE secret key '%s': keep it private (mode "
             "0600)\n" S_PUB_FIELD " = %s\n" S_SEC_FIELD " = %s\n",
             name, pub, sec);
    int rc = s_write_file(kpath, DP_KEY_SECRET_MODE, text, err, errlen);
    if (rc)
        return rc;
    snprintf(text, sizeof text,
             "# dpool CURVE public key '%s': give it to the broker "
             "(--client-keys or --worker-keys DIR)\n" S_PUB_FIELD " = %s\n",
             name, pub);
    rc = s_write_file(ppath, DP_KEY_PUBLIC_MODE, text, err, errlen);
    if (rc)
        unlink(kpath);
    return rc;
}

/* s_read: the whole (small) file into buf, NUL-terminated. fd gives the
 * mode check to the caller through st. */
static int s_read(const char *path, char *buf, size_t len, struct stat *st,
                  char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open key file %s: %s", path,
                 strerror(errno));
        return DP_ERR_IO;
    }
    size_t got = 0;
    ssize_t n = 1;
    int rc = fstat(fd, st) == 0 ? 0 : DP_ERR_IO;
    while (!rc && n > 0 && got < len - 1) {
        n = read(fd, buf + got, len - 1 - got);
        if (n < 0 && errno != EINTR)
            rc = DP_ERR_IO;
        else if (n > 0)
            got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    if (rc)
        snprintf(err, errlen, "cannot read key file %s: %s", path,
                 strerror(errno));
    else if (got >= len - 1)
        snprintf(err, errlen, "%s: too long for a key file", path);
    return rc ? rc : got >= len - 1 ? DP_ERR_INVALID : 0;
}

/* s_field: the Z85 value of "field = VALUE" in text into out; 0 when found
 * and well formed. */
static int s_field(const char *text, const char *field, char *out)
{
    size_t flen = strlen(field);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '#' && strncmp(p, field, flen) == 0) {
            p += flen;
            /* exactly one '=' between spaces: Z85 keys may start with
             * '=' or ':' themselves */
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p++ != '=')
                return DP_ERR_INVALID;
            while (*p == ' ' || *p == '\t')
                p++;
            size_t n = 0;
            while (p + n < line + len && p[n] > ' ')
                n++;
            uint8_t bin[DP_KEY_BIN_LEN];
            if (n != DP_KEY_Z85_LEN)
                return DP_ERR_INVALID;
            memcpy(out, p, n);
            out[n] = '\0';
            return zmq_z85_decode(bin, out) ? 0 : DP_ERR_INVALID;
        }
        line += len + (end ? 1 : 0);
    }
    return DP_ERR_INVALID;
}

int dp_keys_load_secret(const char *path, dp_keypair_t *kp, char *err,
                        size_t errlen)
{
    char text[DP_KEY_FILE_MAX];
    struct stat st;
    memset(kp, 0, sizeof *kp);
    int rc = s_read(path, text, sizeof text, &st, err, errlen);
    if (rc)
        return rc;
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen,
                 "secret key file %s is accessible by others (mode %03o); "
                 "run: chmod 600 %s",
                 path, (unsigned)(st.st_mode & 0777), path);
        return DP_ERR_INVALID;
    }
    if (s_field(text, S_SEC_FIELD, kp->sec)) {
        snprintf(err, errlen,
                 "%s: no valid '" S_SEC_FIELD " = ...' line "
                 "(make one with: dpool keygen NAME)",
                 path);
        return DP_ERR_INVALID;
    }
    char derived[DP_KEY_Z85_LEN + 1];
    if (zmq_curve_public(derived, kp->sec) != 0) {
        snprintf(err, errlen, "%s: cannot derive the public key", path);
        return DP_ERR_INVALID;
    }
    if (!s_field(text, S_PUB_FIELD, kp->pub) && strcmp(kp->pub, derived)) {
        snprintf(err, errlen, "%s: public and secret keys do not match", path);
        return DP_ERR_INVALID;
    }
    memcpy(kp->pub, derived, sizeof derived);
    return 0;
}

int dp_keys_load_public(const char *path, char *pub, char *err, size_t errlen)
{
    char text[DP_KEY_FILE_MAX];
    struct stat st;
    int rc = s_read(path, text, sizeof text, &st, err, errlen);
    if (!rc && s_field(text, S_PUB_FIELD, pub)) {
        snprintf(err, errlen, "%s: no valid '" S_PUB_FIELD " = ...' line",
                 path);
        rc = DP_ERR_INVALID;
    }
    return rc;
}

/* s_pub_name: the NAME of "NAME.pub" into name; false for other files. */
static bool s_pub_name(const char *file, char *name)
{
    size_t n = strlen(file), e = sizeof S_PUB_EXT - 1;
    if (n <= e || n - e > DP_KEY_NAME_MAX || strcmp(file + n - e, S_PUB_EXT))
        return false;
    memcpy(name, file, n - e);
    name[n - e] = '\0';
    return dp_keys_name_ok(name);
}

int dp_keyset_load(dp_keyset_t *s, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open key directory %s: %s", dir,
                 strerror(errno));
        return DP_ERR_IO;
    }
    dp_keyset_t n = {calloc(DP_KEY_SET_MAX, sizeof(dp_keyent_t)), 0};
    int rc = n.v ? 0 : DP_ERR_NOMEM;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        dp_keyent_t *k = &n.v[n.n];
        char path[PATH_MAX], pub[DP_KEY_Z85_LEN + 1];
        if (!s_pub_name(e->d_name, k->name))
            continue;
        if (n.n >= DP_KEY_SET_MAX) {
            snprintf(err, errlen, "%s: more than %d keys", dir, DP_KEY_SET_MAX);
            rc = DP_ERR_LIMIT;
            break;
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        rc = dp_keys_load_public(path, pub, err, errlen);
        if (!rc && !zmq_z85_decode(k->key, pub))
            rc = DP_ERR_INVALID;
        if (!rc)
            n.n++;
    }
    closedir(d);
    if (rc) {
        dp_keyset_release(&n);
        return rc;
    }
    dp_keyset_release(s);
    *s = n;
    return 0;
}

const char *dp_keyset_find(const dp_keyset_t *s, const uint8_t *key)
{
    for (size_t k = 0; k < s->n; k++)
        if (memcmp(s->v[k].key, key, DP_KEY_BIN_LEN) == 0)
            return s->v[k].name;
    return NULL;
}

void dp_keyset_release(dp_keyset_t *s)
{
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

int dp_keys_server(void *sock, const dp_keypair_t *kp)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp->sec, DP_KEY_Z85_LEN) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, kp->pub, DP_KEY_Z85_LEN))
        return DP_ERR_INVALID;
    return 0;
}

int dp_keys_client(void *sock, const char *key_file, const char *server_file,
                   char *err, size_t errlen)
{
    bool have_key = key_file && key_file[0];
    bool have_server = server_file && server_file[0];
    if (!have_key && !have_server)
        return 0;
    if (have_key != have_server) {
        snprintf(err, errlen, "--curve-key and --broker-key go together");
        return DP_ERR_INVALID;
    }
    dp_keypair_t kp;
    char server[DP_KEY_Z85_LEN + 1];
    int rc = dp_keys_load_secret(key_file, &kp, err, errlen);
    if (!rc)
        rc = dp_keys_load_public(server_file, server, err, errlen);
    if (!rc &&
        (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server, DP_KEY_Z85_LEN) ||
         zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp.sec, DP_KEY_Z85_LEN) ||
         zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, kp.pub, DP_KEY_Z85_LEN))) {
        snprintf(err, errlen, "cannot set CURVE keys: %s",
                 zmq_strerror(zmq_errno()));
        rc = DP_ERR_INVALID;
    }
    memset(&kp, 0, sizeof kp);
    return rc;
}
