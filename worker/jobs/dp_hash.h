/*
 * dp_hash.h - the `hash` kernel's constants and the list of digest names
 * it accepts (for `dpool hash --list`).
 *
 * The kernel itself (hash.c), dp_job_hash, is declared in dp_jobs.h:
 *   hash DATA [ALGO [ITERATIONS SALT [DKLEN]]]
 * It answers what Python's hashlib answers for the same bytes:
 * hashlib.new(ALGO, DATA).hexdigest(), .hexdigest(DKLEN) for the shake_*
 * XOFs, or hashlib.pbkdf2_hmac(ALGO, DATA, SALT, ITERATIONS, DKLEN).hex().
 * ALGO takes Python's names (sha3_256, blake2b, shake_128, ...) or any
 * digest name OpenSSL's default library context knows, case-insensitively.
 * The names and the list (hash_names.c) are kept out of the kernel's file:
 * the `dpool` command links them without linking any kernel.
 */
#ifndef DP_HASH_H
#define DP_HASH_H

#include <stddef.h>
#include <stdio.h>

#include <openssl/types.h>

/* Positions of the kernel's arguments. */
enum {
    DP_HASH_ARG_DATA = 0,
    DP_HASH_ARG_ALGO = 1,
    DP_HASH_ARG_ITERATIONS = 2,
    DP_HASH_ARG_SALT = 3,
    DP_HASH_ARG_DKLEN = 4,
    DP_HASH_ARG_COUNT = 5
};

/* Digest used when ALGO is absent or nil. */
#define DP_HASH_DEFAULT_ALGO "sha256"
/* Longest ALGO name looked up, bytes; longer names are unknown. */
#define DP_HASH_ALGO_MAX_LEN 64
/* Bytes of an unknown ALGO name quoted back in the error message. */
#define DP_HASH_ERR_NAME_MAX 40
/* Room for one OpenSSL error string in an error message, bytes. */
#define DP_HASH_SSL_ERR_LEN 256
/* Hex digits per output byte. */
#define DP_HASH_HEX_PER_BYTE 2
/* A hex digit covers one nibble of a byte. */
#define DP_HASH_NIBBLE_BITS 4
#define DP_HASH_NIBBLE_MASK 0xfu
/* First capacity of the name list dp_hash_list grows, entries. */
#define DP_HASH_LIST_INITIAL 32

/* PBKDF2's fast path for SHA-1 and SHA-2 (hash.c). */
/* HMAC (RFC 2104): the bytes XORed into the key for the inner and the
 * outer hash. */
#define DP_HASH_HMAC_IPAD 0x36u
#define DP_HASH_HMAC_OPAD 0x5cu
/* SHA padding (FIPS 180-4 5.1): the byte after the message, and the
 * message length in bits that closes the last block, bytes: 8 for SHA-1
 * and SHA-224/256, 16 for SHA-384/512 and SHA-512/t. */
#define DP_HASH_SHA_PAD_BYTE 0x80u
#define DP_HASH_SHA_LEN_BYTES 8
#define DP_HASH_SHA512_LEN_BYTES 16
/* SHA-512/t's IV (FIPS 180-4 5.3.6): SHA-512 with its IV words XORed
 * with this, over the text "SHA-512/t". */
#define DP_HASH_SHA512T_IV_XOR 0xa5a5a5a5a5a5a5a5ULL
/* PBKDF2's block index INT(i) after the salt, bytes (RFC 8018 5.2), and
 * the most blocks it can number. */
#define DP_HASH_PBKDF2_INDEX_LEN 4
#define DP_HASH_PBKDF2_MAX_BLOCKS 0xffffffffULL

/* dp_hash_openssl_name: OpenSSL's name for Python hashlib's name (matched
 * case-insensitively; "sha3_256" gives "SHA3-256"), else name itself.
 * Returns name or a static string; nothing to free. (hash_names.c) */
const char *dp_hash_openssl_name(const char *name);

/* dp_hash_md_usable: nonzero when md has a fixed size or is an XOF (not
 * OpenSSL's "NULL" digest). md is borrowed. */
int dp_hash_md_usable(const EVP_MD *md);

/* dp_hash_list: the digest names the hash kernel accepts, one per
 * algorithm (Python's name where hashlib has one, else OpenSSL's, in lower
 * case), sorted and deduplicated. On success *names is an array of *n
 * strings owned by the caller (free with dp_hash_list_free) and 0 is
 * returned; DP_ERR_NOMEM otherwise, with *names NULL and *n 0. */
int dp_hash_list(char ***names, size_t *n);

/* dp_hash_list_free: free a list from dp_hash_list and set *names NULL.
 * NULL-safe and idempotent. */
void dp_hash_list_free(char ***names, size_t n);

/* dp_hash_list_print: write dp_hash_list's names to f, one per line.
 * Returns 0, DP_ERR_NOMEM, or DP_ERR_IO when writing fails. */
int dp_hash_list_print(FILE *f);

#endif /* DP_HASH_H */
