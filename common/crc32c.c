/*
 * crc32c.c — reflected CRC-32C, polynomial 0x82f63b78.  The software path is
 * slice-by-1 over a table built once; the hardware path uses SSE4.2 and is
 * chosen at first call by cpuid.
 *
 * The crc32 instruction has a latency of three cycles and a throughput of
 * one, so one dependency chain runs at a third of its speed.  Long buffers
 * (a produce batch is typically 16 KiB to 1 MiB) are cut into three blocks
 * checked as independent chains and combined with the "append n zero bytes"
 * operator of the CRC, a linear map precomputed as tables for the two block
 * sizes (the method of Mark Adler's crc32c.c).
 */
#include "crc32c.h"

#include <string.h>

#define POLY 0x82f63b78u
#define CRC_LONG 8192  /* block sizes of the three-way path, powers of two */
#define CRC_SHORT 256

static uint32_t crc_table[256];
/* crc_long[k][b]: the CRC state b << 8k advanced over CRC_LONG zero bytes */
static uint32_t crc_long[4][256];
static uint32_t crc_short[4][256];
static int crc_mode; /* 0 unknown, 1 table, 2 sse4.2 */

/* 32x32 matrices over GF(2), one column per word */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;
	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat)
{
	for (int n = 0; n < 32; n++)
		square[n] = gf2_times(mat, mat[n]);
}

/* The operator appending len zero bytes (len a power of two) into op. */
static void zeros_op(uint32_t op[32], size_t len)
{
	uint32_t odd[32];
	odd[0] = POLY; /* one zero bit */
	for (int n = 1; n < 32; n++)
		odd[n] = 1u << (n - 1);
	gf2_square(op, odd);  /* two zero bits */
	gf2_square(odd, op);  /* four */
	for (;;) {
		gf2_square(op, odd); /* 8, 32, 128 ... bits */
		len >>= 1;
		if (!len)
			return;
		gf2_square(odd, op);
		len >>= 1;
		if (!len)
			break;
	}
	memcpy(op, odd, sizeof(odd));
}

static void zeros_table(uint32_t tab[4][256], size_t len)
{
	uint32_t op[32];
	zeros_op(op, len);
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 0; k < 4; k++)
			tab[k][n] = gf2_times(op, n << (8 * k));
}

static uint32_t crc_shift(uint32_t tab[4][256], uint32_t crc)
{
	return tab[0][crc & 0xff] ^ tab[1][(crc >> 8) & 0xff] ^ tab[2][(crc >> 16) & 0xff] ^ tab[3][crc >> 24];
}

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
		crc_table[i] = c;
	}
#if defined(__x86_64__)
	zeros_table(crc_long, CRC_LONG);
	zeros_table(crc_short, CRC_SHORT);
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
__attribute__((target("sse4.2"))) static uint64_t crc_hw_block3(uint64_t c, const uint8_t *p,
								     size_t block, uint32_t tab[4][256])
{
	uint64_t c1 = 0, c2 = 0;
	for (size_t i = 0; i < block; i += 8) {
		uint64_t v0, v1, v2;
		memcpy(&v0, p + i, 8);
		memcpy(&v1, p + block + i, 8);
		memcpy(&v2, p + 2 * block + i, 8);
		c = __builtin_ia32_crc32di(c, v0);
		c1 = __builtin_ia32_crc32di(c1, v1);
		c2 = __builtin_ia32_crc32di(c2, v2);
	}
	c = crc_shift(tab, (uint32_t)c) ^ (uint32_t)c1;
	return crc_shift(tab, (uint32_t)c) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;
	for (; len >= 3 * CRC_LONG; p += 3 * CRC_LONG, len -= 3 * CRC_LONG)
		c = crc_hw_block3(c, p, CRC_LONG, crc_long);
	for (; len >= 3 * CRC_SHORT; p += 3 * CRC_SHORT, len -= 3 * CRC_SHORT)
		c = crc_hw_block3(c, p, CRC_SHORT, crc_short);
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
