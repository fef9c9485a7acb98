/* dp_crc32c.c - CRC-32C, slicing-by-8 (Intel's "Slicing-by-8", 2005):
 * eight 256-entry tables let the loop take 8 bytes per step. The tables
 * are built once, on first use (pthread_once: the client library is used
 * from several threads). */
#include "dp_crc32c.h"

#include <pthread.h>
#include <string.h>

#define S_POLY 0x82F63B78u /* 0x1EDC6F41, bit-reversed */
#define S_SLICES 8
#define S_TABLE 256

static uint32_t s_t[S_SLICES][S_TABLE];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_build(void)
{
    for (uint32_t n = 0; n < S_TABLE; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ S_POLY : c >> 1;
        s_t[0][n] = c;
    }
    for (uint32_t n = 0; n < S_TABLE; n++)
        for (int s = 1; s < S_SLICES; s++)
            s_t[s][n] = (s_t[s - 1][n] >> 8) ^ s_t[0][s_t[s - 1][n] & 0xff];
}

uint32_t dp_crc32c(uint32_t crc, const void *p, size_t len)
{
    const unsigned char *b = p;
    pthread_once(&s_once, s_build);
    crc = ~crc;
    while (len && ((uintptr_t)b & 7)) {
        crc = (crc >> 8) ^ s_t[0][(crc ^ *b++) & 0xff];
        len--;
    }
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, b, 4);
        memcpy(&hi, b + 4, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        lo ^= crc;
        crc = s_t[7][lo & 0xff] ^ s_t[6][(lo >> 8) & 0xff] ^
              s_t[5][(lo >> 16) & 0xff] ^ s_t[4][lo >> 24] ^ s_t[3][hi & 0xff] ^
              s_t[2][(hi >> 8) & 0xff] ^ s_t[1][(hi >> 16) & 0xff] ^
              s_t[0][hi >> 24];
        b += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ s_t[0][(crc ^ *b++) & 0xff];
    return ~crc;
}
