/*
 * crc32c.h — CRC-32C (Castagnoli), the checksum of Kafka record batches v2.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise.
 */
#ifndef TM_CRC32C_H
#define TM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: pass 0 to start.  crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
