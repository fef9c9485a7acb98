/*
 * dp_keys.h - CURVE key files (ZeroMQ RFC 26) and the sockets that use them.
 *
 * A key pair is two text files made by `dpool keygen NAME`:
 *   NAME.key  (mode 0600)   # comment line
 *                           public-key = <40 Z85 chars>
 *                           secret-key = <40 Z85 chars>
 *   NAME.pub                # comment line
 *                           public-key = <40 Z85 chars>
 * Lines starting with '#' and blank lines are ignored. A secret key file
 * that its group or others may read is refused (like ssh). The broker
 * admits the public keys found as DIR/NAME.pub (dp_keyset_load) and names
 * the peer NAME.
 *
 * Ownership: a dp_keyset_t owns its entries (dp_keyset_release frees
 * them); names it returns are borrowed until the next load or release.
 */
#ifndef DP_KEYS_H
#define DP_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_KEY_Z85_LEN 40 /* a 32-byte key in Z85, without the NUL */
#define DP_KEY_BIN_LEN 32
#define DP_KEY_NAME_MAX 64   /* key names: [A-Za-z0-9._-], at most this */
#define DP_KEY_FILE_MAX 4096 /* a key file is never longer than this */
#define DP_KEY_SET_MAX 4096  /* keys in one directory, at most */
#define DP_KEY_SECRET_MODE 0600
#define DP_KEY_PUBLIC_MODE 0644
#define DP_KEY_ERR_MAX 512 /* room for an error message */

typedef struct {
    char pub[DP_KEY_Z85_LEN + 1];
    char sec[DP_KEY_Z85_LEN + 1]; /* "" when only the public key is known */
} dp_keypair_t;

typedef struct {
    char name[DP_KEY_NAME_MAX + 1];
    uint8_t key[DP_KEY_BIN_LEN];
} dp_keyent_t;

typedef struct {
    dp_keyent_t *v;
    size_t n;
} dp_keyset_t;

/* dp_keys_name_ok: true when name is a usable key name (1..64 characters
 * of [A-Za-z0-9._-], not starting with '.'). */
bool dp_keys_name_ok(const char *name);
/* dp_keys_generate: a new key pair written to dir/name.key (0600, created
 * exclusively: an existing key is never overwritten) and dir/name.pub.
 * 0, or DP_ERR_INVALID / DP_ERR_IO with a message in err. */
int dp_keys_generate(const char *dir, const char *name, char *err,
                     size_t errlen);
/* dp_keys_load_secret: read a .key file into kp (both keys). Refuses a file
 * readable by group or others (DP_ERR_INVALID, err says chmod 600). */
int dp_keys_load_secret(const char *path, dp_keypair_t *kp, char *err,
                        size_t errlen);
/* dp_keys_load_public: the public key of a .pub (or .key) file, Z85 into
 * pub (DP_KEY_Z85_LEN + 1 bytes). */
int dp_keys_load_public(const char *path, char *pub, char *err, size_t errlen);
/* dp_keyset_load: every dir/NAME.pub into s (replacing what s held only on
 * success). 0, or an error with err filled (a bad file is an error: a
 * typo must not silently revoke a key). */
int dp_keyset_load(dp_keyset_t *s, const char *dir, char *err, size_t errlen);
/* dp_keyset_find: the name of binary key `key` in s, or NULL. */
const char *dp_keyset_find(const dp_keyset_t *s, const uint8_t *key);
/* dp_keyset_release: free s's entries; s is left empty. */
void dp_keyset_release(dp_keyset_t *s);
/* dp_keys_server: make zmq socket sock a CURVE server with kp. 0 or
 * DP_ERR_INVALID. */
int dp_keys_server(void *sock, const dp_keypair_t *kp);
/* dp_keys_client: load the secret key file and the server's public key
 * file and make sock a CURVE client of that server (before connecting).
 * Both paths NULL (or "") leave sock plaintext; one without the other is
 * DP_ERR_INVALID. 0 or an error with err filled. */
int dp_keys_client(void *sock, const char *key_file, const char *server_file,
                   char *err, size_t errlen);

#endif /* DP_KEYS_H */
