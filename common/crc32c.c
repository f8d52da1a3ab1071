/*
 * crc32c.c — reflected CRC-32C, polynomial 0x82f63b78.  The software path is
 * slice-by-1 over a table built once; the hardware path uses SSE4.2 and is
 * chosen at first call by cpuid.
 */
#include "crc32c.h"

#include <string.h>

static uint32_t crc_table[256];
static int crc_mode; /* 0 unknown, 1 table, 2 sse4.2 */

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc_mode = __builtin_cpu_supports("sse4.2") ? 2 : 1;
#else
	crc_mode = 1;
#endif
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (!crc_mode)
		crc_init();
	crc = ~crc;
#if defined(__x86_64__)
	if (crc_mode == 2)
		return ~crc_hw(crc, buf, len);
#endif
	return ~crc_sw(crc, buf, len);
}
