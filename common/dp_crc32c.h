/*
 * dp_crc32c.h - CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected
 * 0x82F63B78), the checksum of iSCSI, ext4 metadata, LevelDB and Kafka
 * records. Table-driven (slicing-by-8), no dependency: dpool links no
 * zlib of its own, and CRC-32C catches more of the burst errors a torn or
 * bit-rotted disk write makes than zlib's CRC-32.
 */
#ifndef DP_CRC32C_H
#define DP_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* dp_crc32c: extend crc (0 to start) over len bytes at p. The result of
 * one call can be passed back in to checksum data given in pieces:
 * dp_crc32c(dp_crc32c(0, a, n), b, m) == dp_crc32c(0, a||b, n + m).
 * CRC-32C("123456789") is 0xE3069283. */
uint32_t dp_crc32c(uint32_t crc, const void *p, size_t len);

#endif
