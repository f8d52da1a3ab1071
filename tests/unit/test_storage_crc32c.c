/*
 * test_storage_crc32c.c — the CRC-32C every stored batch carries
 * (common/crc32c.c), checked against the bit-at-a-time definition of the
 * polynomial over the lengths where the fast path changes strategy: the
 * three-way blocks of 3 x 8 KiB and 3 x 256 bytes, the 8-byte words, the
 * tail bytes, every alignment, and a CRC continued across pieces.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"

/* The definition: reflected, polynomial 0x82f63b78, init and final xor ~0. */
static uint32_t crc_ref(uint32_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

static uint64_t rng_state;

static uint32_t rng(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng_state >> 33);
}

#define BUF_BYTES (3 * 8192 * 3 + 4096)

static uint8_t *random_buf(uint64_t seed)
{
	uint8_t *b = malloc(BUF_BYTES + 8);
	ck_assert_ptr_nonnull(b);
	rng_state = seed;
	for (size_t i = 0; i < BUF_BYTES + 8; i++)
		b[i] = (uint8_t)rng();
	return b;
}

START_TEST(test_crc32c_known_answers)
{
	ck_assert_uint_eq(crc32c(0, "123456789", 9), 0xe3069283u);
	ck_assert_uint_eq(crc32c(0, "", 0), 0);
	uint8_t zeros[32] = { 0 }, ones[32];
	memset(ones, 0xff, sizeof(ones));
	/* RFC 3720 (iSCSI) B.4 test vectors */
	ck_assert_uint_eq(crc32c(0, zeros, 32), 0x8a9136aau);
	ck_assert_uint_eq(crc32c(0, ones, 32), 0x62a8ab43u);
}
END_TEST

START_TEST(test_crc32c_matches_definition_at_every_block_boundary)
{
	const uint64_t seed = 0x7d3e5a01u;
	uint8_t *b = random_buf(seed);
	static const size_t around[] = { 0, 1, 7, 8, 9, 255, 256, 767, 768, 769, 1024, 8191, 8192,
					 24575, 24576, 24577, 24576 + 768, 24576 + 767, 49152, 49153,
					 49152 + 768 + 9, 73728, BUF_BYTES };
	for (size_t i = 0; i < sizeof(around) / sizeof(around[0]); i++) {
		for (size_t delta = 0; delta < 3; delta++) {
			size_t len = around[i] >= delta ? around[i] - delta : 0;
			for (size_t align = 0; align < 8; align++) {
				uint32_t want = crc_ref(0, b + align, len);
				uint32_t got = crc32c(0, b + align, len);
				ck_assert_msg(got == want, "seed %llx len %zu align %zu: %08x, want %08x",
					      (unsigned long long)seed, len, align, got, want);
			}
		}
	}
	free(b);
}
END_TEST

START_TEST(test_crc32c_random_lengths_and_continuation)
{
	const uint64_t seed = 0x51ce7u;
	uint8_t *b = random_buf(seed);
	rng_state = seed ^ 0xabcdef;
	for (int n = 0; n < 200; n++) {
		size_t len = rng() % BUF_BYTES;
		size_t split = len ? rng() % len : 0;
		size_t align = rng() % 8;
		uint32_t want = crc_ref(0, b + align, len);
		uint32_t whole = crc32c(0, b + align, len);
		uint32_t parts = crc32c(crc32c(0, b + align, split), b + align + split, len - split);
		ck_assert_msg(whole == want && parts == want,
			      "seed %llx case %d len %zu split %zu align %zu: %08x / %08x, want %08x",
			      (unsigned long long)seed, n, len, split, align, whole, parts, want);
	}
	free(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("storage_crc32c");
	TCase *tc = tcase_create("crc32c");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_crc32c_known_answers);
	tcase_add_test(tc, test_crc32c_matches_definition_at_every_block_boundary);
	tcase_add_test(tc, test_crc32c_random_lengths_and_continuation);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
