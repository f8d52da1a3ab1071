/*
 * test_protocol.c — the generated Kafka codec: every message at every
 * version round-trips (fill -> encode -> decode -> compare -> re-encode),
 * every strict prefix of an encoding is rejected, and a few hand-built byte
 * vectors derived from Kafka's protocol guide decode as Kafka means them.
 * Holes (zero-copy Fetch): an encoding with records left as holes, filled
 * in afterwards, is byte for byte the encoding with the records copied.
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
#include "protocol/records.h"
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
	ck_assert_msg(w2.len == w1.len && (w1.len == 0 || memcmp(w1.buf, w2.buf, w1.len) == 0),
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


/* ---- hand-built byte vectors (from Kafka's protocol guide, not our encoder) ---- */

/* Decodes a request frame body (header + body) into h and body. */
static void decode_request(const uint8_t *buf, size_t len, struct kafka_request_header *h,
			   void *body, struct tm_arena *a)
{
	struct tm_rd r;
	rd_init(&r, buf, len);
	ck_assert_int_eq(kafka_request_header_decode(&r, h), 0);
	ck_assert_int_eq(kafka_request_body_decode(h->api_key, h->api_version, &r, body, a), 0);
	ck_assert_msg(r.pos == len, "decoder left %zu bytes", len - r.pos);
}

/* Encodes header + body and checks the bytes equal the vector. */
static void expect_request_bytes(const struct kafka_request_header *h, const void *body,
				 const uint8_t *want, size_t len)
{
	struct tm_wbuf w;
	wbuf_init(&w);
	kafka_request_header_encode(&w, h);
	ck_assert_int_eq(kafka_request_body_encode(h->api_key, h->api_version, &w, body), 0);
	ck_assert_uint_eq(w.len, len);
	for (size_t i = 0; i < len; i++)
		ck_assert_msg(w.buf[i] == want[i], "byte %zu: 0x%02x, want 0x%02x", i, w.buf[i],
			      want[i]);
	wbuf_deinit(&w);
}

START_TEST(test_api_versions_v0_request_and_response)
{
	static const uint8_t req[] = {
		0x00, 0x12, 0x00, 0x00,             /* ApiVersions v0 */
		0x00, 0x00, 0x00, 0x01,             /* correlation id */
		0x00, 0x04, 'k', 'c', 'a', 't',     /* client id (header v1) */
	};
	struct tm_arena a;
	arena_init(&a, 0);
	struct kafka_request_header h;
	struct kafka_api_versions_request body;
	decode_request(req, sizeof(req), &h, &body, &a);
	ck_assert_int_eq(h.api_key, KAFKA_API_API_VERSIONS);
	ck_assert_int_eq(h.api_version, 0);
	ck_assert_int_eq(h.correlation_id, 1);
	ck_assert(kstr_eq(h.client_id, "kcat"));
	expect_request_bytes(&h, &body, req, sizeof(req));

	static const uint8_t resp[] = {
		0x00, 0x00, 0x00, 0x01,             /* correlation id (header v0) */
		0x00, 0x00,                         /* error code */
		0x00, 0x00, 0x00, 0x01,             /* api_keys: 1 entry */
		0x00, 0x12, 0x00, 0x00, 0x00, 0x03, /* ApiVersions 0-3 */
	};
	struct kafka_api_versions_response rs;
	kafka_api_versions_response_init(&rs);
	struct kafka_api_versions_response_api_version k = { .api_key = 18, .min_version = 0,
							     .max_version = 3 };
	rs.api_keys = &k;
	rs.api_keys_count = 1;
	struct tm_wbuf w;
	wbuf_init(&w);
	kafka_response_header_encode(&w, KAFKA_API_API_VERSIONS, 0, 1);
	kafka_api_versions_response_encode(&w, 0, &rs);
	ck_assert_uint_eq(w.len, sizeof(resp));
	ck_assert(memcmp(w.buf, resp, sizeof(resp)) == 0);
	wbuf_deinit(&w);

	struct tm_rd r;
	rd_init(&r, resp, sizeof(resp));
	int32_t corr;
	ck_assert_int_eq(kafka_response_header_decode(&r, KAFKA_API_API_VERSIONS, 0, &corr), 0);
	ck_assert_int_eq(corr, 1);
	struct kafka_api_versions_response back;
	ck_assert_int_eq(kafka_api_versions_response_decode(&r, 0, &back, &a), 0);
	ck_assert_int_eq(back.api_keys_count, 1);
	ck_assert_int_eq(back.api_keys[0].max_version, 3);
	ck_assert_int_eq(back.throttle_time_ms, 0);
	arena_deinit(&a);
}
END_TEST

START_TEST(test_api_versions_v3_request_and_response_header_v0)
{
	static const uint8_t req[] = {
		0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02,
		0x00, 0x07, 'r', 'd', 'k', 'a', 'f', 'k', 'a', /* client id: int16 length even in v2 */
		0x00,                                          /* header tagged fields */
		0x0b, 'l', 'i', 'b', 'r', 'd', 'k', 'a', 'f', 'k', 'a', /* compact "librdkafka" */
		0x06, '2', '.', '3', '.', '0',                 /* compact "2.3.0" */
		0x00,                                          /* tagged fields */
	};
	struct tm_arena a;
	arena_init(&a, 0);
	struct kafka_request_header h;
	struct kafka_api_versions_request body;
	decode_request(req, sizeof(req), &h, &body, &a);
	ck_assert_int_eq(h.api_version, 3);
	ck_assert(kstr_eq(h.client_id, "rdkafka"));
	ck_assert(kstr_eq(body.client_software_name, "librdkafka"));
	ck_assert(kstr_eq(body.client_software_version, "2.3.0"));
	expect_request_bytes(&h, &body, req, sizeof(req));

	static const uint8_t resp[] = {
		0x00, 0x00, 0x00, 0x02,             /* correlation id: header v0, no tagged fields */
		0x00, 0x00,                         /* error code */
		0x02,                               /* compact array: 1 entry */
		0x00, 0x12, 0x00, 0x00, 0x00, 0x04, 0x00, /* ApiVersions 0-4, tagged fields */
		0x00, 0x00, 0x00, 0x00,             /* throttle time */
		0x01,                               /* one tagged field */
		0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, /* FinalizedFeaturesEpoch 5 */
	};
	struct kafka_api_versions_response rs;
	kafka_api_versions_response_init(&rs);
	ck_assert_int_eq(rs.finalized_features_epoch, -1); /* schema default */
	struct kafka_api_versions_response_api_version k = { .api_key = 18, .min_version = 0,
							     .max_version = 4 };
	rs.api_keys = &k;
	rs.api_keys_count = 1;
	rs.finalized_features_epoch = 5;
	struct tm_wbuf w;
	wbuf_init(&w);
	kafka_response_header_encode(&w, KAFKA_API_API_VERSIONS, 3, 2);
	kafka_api_versions_response_encode(&w, 3, &rs);
	ck_assert_uint_eq(w.len, sizeof(resp));
	ck_assert(memcmp(w.buf, resp, sizeof(resp)) == 0);
	wbuf_deinit(&w);

	struct tm_rd r;
	rd_init(&r, resp, sizeof(resp));
	int32_t corr;
	ck_assert_int_eq(kafka_response_header_decode(&r, KAFKA_API_API_VERSIONS, 3, &corr), 0);
	ck_assert_int_eq(corr, 2);
	struct kafka_api_versions_response back;
	ck_assert_int_eq(kafka_api_versions_response_decode(&r, 3, &back, &a), 0);
	ck_assert_int_eq(back.finalized_features_epoch, 5);
	ck_assert_int_eq(back.supported_features_count, 0);
	ck_assert_uint_eq(r.pos, sizeof(resp));
	arena_deinit(&a);
}
END_TEST

START_TEST(test_header_of_unknown_newer_api_versions_still_parses)
{
	/* ApiVersions v9 (above our max): header v2 since 9 >= flexible min 3 */
	static const uint8_t req[] = {
		0x00, 0x12, 0x00, 0x09, 0x00, 0x00, 0x00, 0x07, 0xff, 0xff, 0x00,
	};
	struct tm_rd r;
	rd_init(&r, req, sizeof(req));
	struct kafka_request_header h;
	ck_assert_int_eq(kafka_request_header_decode(&r, &h), 0);
	ck_assert_int_eq(h.api_version, 9);
	ck_assert_int_eq(h.client_id.len, -1);
	ck_assert_uint_eq(r.pos, sizeof(req));
	struct kafka_api_versions_request body;
	struct tm_arena a;
	arena_init(&a, 0);
	ck_assert_int_eq(kafka_request_body_decode(18, 9, &r, &body, &a), -ENOTSUP);
	ck_assert_int_eq(kafka_request_body_decode(999, 0, &r, &body, &a), -ENOTSUP);
	ck_assert_ptr_null(kafka_api_lookup(999));
	arena_deinit(&a);
}
END_TEST

START_TEST(test_unknown_tagged_fields_are_skipped)
{
	static const uint8_t body[] = {
		0x02, 'a', 0x02, 'b',
		0x02,                   /* two tagged fields */
		0x07, 0x02, 0xaa, 0xbb, /* unknown tag 7, 2 bytes */
		0x1f, 0x00,             /* unknown tag 31, empty */
	};
	struct tm_rd r;
	rd_init(&r, body, sizeof(body));
	struct kafka_api_versions_request m;
	struct tm_arena a;
	arena_init(&a, 0);
	ck_assert_int_eq(kafka_api_versions_request_decode(&r, 3, &m, &a), 0);
	ck_assert(kstr_eq(m.client_software_name, "a"));
	ck_assert(kstr_eq(m.client_software_version, "b"));
	ck_assert_uint_eq(r.pos, sizeof(body));
	arena_deinit(&a);
}
END_TEST

START_TEST(test_metadata_v1_and_v9_requests)
{
	static const uint8_t v1[] = {
		0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, 'c',
		0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 'f', 'o', 'o', /* topics: ["foo"] */
	};
	struct tm_arena a;
	arena_init(&a, 0);
	struct kafka_request_header h;
	struct kafka_metadata_request m;
	decode_request(v1, sizeof(v1), &h, &m, &a);
	ck_assert_int_eq(h.api_key, KAFKA_API_METADATA);
	ck_assert_int_eq(m.topics_count, 1);
	ck_assert(kstr_eq(m.topics[0].name, "foo"));
	ck_assert(m.allow_auto_topic_creation); /* v4+ field: default true */
	expect_request_bytes(&h, &m, v1, sizeof(v1));

	static const uint8_t v1_all[] = {
		0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, 'c',
		0xff, 0xff, 0xff, 0xff, /* topics: null = all topics */
	};
	decode_request(v1_all, sizeof(v1_all), &h, &m, &a);
	ck_assert_int_eq(m.topics_count, -1);
	expect_request_bytes(&h, &m, v1_all, sizeof(v1_all));

	static const uint8_t v9[] = {
		0x00, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x04, 0x00, 0x01, 'c', 0x00,
		0x02, 0x04, 'f', 'o', 'o', 0x00, /* topics: [{name "foo"}] */
		0x00,                            /* allow_auto_topic_creation false */
		0x01,                            /* include_cluster_authorized_operations */
		0x00,                            /* include_topic_authorized_operations */
		0x00,                            /* tagged fields */
	};
	decode_request(v9, sizeof(v9), &h, &m, &a);
	ck_assert_int_eq(h.correlation_id, 4);
	ck_assert_int_eq(m.topics_count, 1);
	ck_assert(kstr_eq(m.topics[0].name, "foo"));
	ck_assert(!m.allow_auto_topic_creation);
	ck_assert(m.include_cluster_authorized_operations);
	ck_assert(!m.include_topic_authorized_operations);
	expect_request_bytes(&h, &m, v9, sizeof(v9));
	arena_deinit(&a);
}
END_TEST

/* the same 73-byte batch as in test_protocol_records.c (CRC from Python) */
static const uint8_t hello_batch[73] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3d, 0xff, 0xff, 0xff,
	0xff, 0x02, 0xe6, 0x41, 0xa4, 0x4b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00,
	0x01, 0x16, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
};

START_TEST(test_produce_v3_and_v9_requests)
{
	static const uint8_t head3[] = {
		0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x05, 0x00, 0x01, 'p',
		0xff, 0xff,             /* transactional id: null */
		0xff, 0xff,             /* acks -1 */
		0x00, 0x00, 0x75, 0x30, /* timeout 30000 */
		0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 'f', 'o', 'o',
		0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, /* partition 0 */
		0x00, 0x00, 0x00, 0x49, /* records: 73 bytes */
	};
	static const uint8_t head9[] = {
		0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x06, 0x00, 0x01, 'p', 0x00,
		0x00,                   /* transactional id: compact null */
		0xff, 0xff, 0x00, 0x00, 0x75, 0x30,
		0x02, 0x04, 'f', 'o', 'o',
		0x02, 0x00, 0x00, 0x00, 0x00,
		0x4a,                   /* records: compact length 73 + 1 */
	};
	static const uint8_t tail9[] = { 0x00, 0x00, 0x00 }; /* partition, topic, request tags */
	uint8_t v3[sizeof(head3) + sizeof(hello_batch)];
	memcpy(v3, head3, sizeof(head3));
	memcpy(v3 + sizeof(head3), hello_batch, sizeof(hello_batch));
	uint8_t v9[sizeof(head9) + sizeof(hello_batch) + sizeof(tail9)];
	memcpy(v9, head9, sizeof(head9));
	memcpy(v9 + sizeof(head9), hello_batch, sizeof(hello_batch));
	memcpy(v9 + sizeof(head9) + sizeof(hello_batch), tail9, sizeof(tail9));

	const uint8_t *vec[2] = { v3, v9 };
	size_t len[2] = { sizeof(v3), sizeof(v9) };
	for (int i = 0; i < 2; i++) {
		struct tm_arena a;
		arena_init(&a, 0);
		struct kafka_request_header h;
		struct kafka_produce_request m;
		decode_request(vec[i], len[i], &h, &m, &a);
		ck_assert_int_eq(h.api_key, KAFKA_API_PRODUCE);
		ck_assert_int_eq(h.api_version, i == 0 ? 3 : 9);
		ck_assert(kstr_eq(h.client_id, "p"));
		ck_assert_int_eq(m.transactional_id.len, -1);
		ck_assert_int_eq(m.acks, -1);
		ck_assert_int_eq(m.timeout_ms, 30000);
		ck_assert_int_eq(m.topic_data_count, 1);
		ck_assert(kstr_eq(m.topic_data[0].name, "foo"));
		ck_assert_int_eq(m.topic_data[0].partition_data_count, 1);
		struct kafka_produce_request_partition_produce_data *pd =
			&m.topic_data[0].partition_data[0];
		ck_assert_int_eq(pd->index, 0);
		ck_assert_int_eq(pd->records.len, 73);
		struct records_summary s;
		ck_assert_int_eq(records_validate(pd->records.ptr, (size_t)pd->records.len, 0, &s),
				 0);
		ck_assert_int_eq(s.record_count, 1);
		expect_request_bytes(&h, &m, vec[i], len[i]);
		arena_deinit(&a);
	}
}
END_TEST

START_TEST(test_fetch_v4_and_v12_requests)
{
	static const uint8_t v4[] = {
		0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01, 'c',
		0xff, 0xff, 0xff, 0xff, /* replica id -1 */
		0x00, 0x00, 0x01, 0xf4, /* max wait 500 */
		0x00, 0x00, 0x00, 0x01, /* min bytes */
		0x03, 0x20, 0x00, 0x00, /* max bytes 52428800 */
		0x00,                   /* isolation level */
		0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 'f', 'o', 'o',
		0x00, 0x00, 0x00, 0x01,
		0x00, 0x00, 0x00, 0x02, /* partition 2 */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, /* fetch offset 42 */
		0x00, 0x10, 0x00, 0x00, /* partition max bytes */
	};
	static const uint8_t v12[] = {
		0x00, 0x01, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x08, 0x00, 0x01, 'c', 0x00,
		0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0xf4, 0x00, 0x00, 0x00, 0x01,
		0x03, 0x20, 0x00, 0x00, 0x01, /* read_committed */
		0x00, 0x00, 0x00, 0x00,       /* session id */
		0xff, 0xff, 0xff, 0xff,       /* session epoch -1 */
		0x02, 0x04, 'f', 'o', 'o',
		0x02, 0x00, 0x00, 0x00, 0x02,
		0x00, 0x00, 0x00, 0x05,       /* current leader epoch */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,
		0xff, 0xff, 0xff, 0xff,       /* last fetched epoch */
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* log start offset */
		0x00, 0x10, 0x00, 0x00, 0x00, /* partition max bytes, tags */
		0x00,                         /* topic tags */
		0x01,                         /* forgotten topics: empty */
		0x01,                         /* rack id "" */
		0x01, 0x00, 0x03, 0x03, 'a', 'b', /* tag 0 ClusterId = "ab" */
	};
	struct tm_arena a;
	arena_init(&a, 0);
	struct kafka_request_header h;
	struct kafka_fetch_request m;
	decode_request(v4, sizeof(v4), &h, &m, &a);
	ck_assert_int_eq(m.replica_id, -1);
	ck_assert_int_eq(m.max_wait_ms, 500);
	ck_assert_int_eq(m.max_bytes, 52428800);
	ck_assert_int_eq(m.session_epoch, -1); /* v7+ default */
	ck_assert_int_eq(m.topics_count, 1);
	ck_assert(kstr_eq(m.topics[0].topic, "foo"));
	ck_assert_int_eq(m.topics[0].partitions[0].partition, 2);
	ck_assert_int_eq(m.topics[0].partitions[0].fetch_offset, 42);
	ck_assert_int_eq(m.topics[0].partitions[0].log_start_offset, -1);
	ck_assert_int_eq(m.topics[0].partitions[0].partition_max_bytes, 1048576);
	expect_request_bytes(&h, &m, v4, sizeof(v4));

	decode_request(v12, sizeof(v12), &h, &m, &a);
	ck_assert_int_eq(h.api_version, 12);
	ck_assert_int_eq(m.isolation_level, 1);
	ck_assert(kstr_eq(m.cluster_id, "ab"));
	ck_assert_int_eq(m.topics[0].partitions[0].current_leader_epoch, 5);
	ck_assert_int_eq(m.topics[0].partitions[0].last_fetched_epoch, -1);
	ck_assert_int_eq(m.forgotten_topics_data_count, 0);
	ck_assert_int_eq(m.rack_id.len, 0);
	expect_request_bytes(&h, &m, v12, sizeof(v12));
	arena_deinit(&a);
}
END_TEST

/* ---- hostile input ---- */

START_TEST(test_huge_array_count_is_rejected_without_allocating)
{
	static const uint8_t v1[] = {
		0x7f, 0xff, 0xff, 0xff, 0x00, 0x01, 'x', /* 2^31-1 topics, 7 bytes follow */
	};
	static const uint8_t v9[] = { 0xff, 0xff, 0xff, 0xff, 0x07, 0x02, 'x', 0x00 };
	struct tm_arena a;
	arena_init(&a, 4096); /* any big allocation would fail with -ENOMEM, not -EBADMSG */
	struct kafka_metadata_request m;
	struct tm_rd r;
	rd_init(&r, v1, sizeof(v1));
	ck_assert_int_eq(kafka_metadata_request_decode(&r, 1, &m, &a), -EBADMSG);
	rd_init(&r, v9, sizeof(v9));
	ck_assert_int_eq(kafka_metadata_request_decode(&r, 9, &m, &a), -EBADMSG);
	ck_assert_uint_lt(a.used_bytes, 4096);
	/* arrays of int32: a count of 1000 with 8 bytes left */
	static const uint8_t ints[] = { 0x00, 0x00, 0x03, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2 };
	int32_t *vals;
	int32_t n;
	rd_init(&r, ints, sizeof(ints));
	ck_assert_int_eq(kafka_rd_array_i32(&r, false, false, &a, &vals, &n), -EBADMSG);
	/* arrays of structs: each FetchTopic needs at least 8 bytes in v4 */
	static const uint8_t fetch[] = {
		0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	};
	struct kafka_fetch_request f;
	rd_init(&r, fetch, sizeof(fetch));
	ck_assert_int_eq(kafka_fetch_request_decode(&r, 4, &f, &a), -EBADMSG);
	ck_assert_uint_lt(a.used_bytes, 4096);
	arena_deinit(&a);
}
END_TEST

START_TEST(test_negative_lengths_and_bad_nulls_are_rejected)
{
	struct tm_arena a;
	arena_init(&a, 0);
	struct kafka_metadata_request m;
	struct tm_rd r;
	static const uint8_t neg_count[] = { 0xff, 0xff, 0xff, 0xfe };
	rd_init(&r, neg_count, sizeof(neg_count));
	ck_assert_int_eq(kafka_metadata_request_decode(&r, 1, &m, &a), -EBADMSG);
	static const uint8_t null_v0[] = { 0xff, 0xff, 0xff, 0xff }; /* null topics only 1+ */
	rd_init(&r, null_v0, sizeof(null_v0));
	ck_assert_int_eq(kafka_metadata_request_decode(&r, 0, &m, &a), -EBADMSG);
	static const uint8_t null_name[] = { 0x00, 0x00, 0x00, 0x01, 0xff, 0xff };
	rd_init(&r, null_name, sizeof(null_name));
	ck_assert_int_eq(kafka_metadata_request_decode(&r, 1, &m, &a), -EBADMSG);
	static const uint8_t neg_str[] = { 0x00, 0x00, 0x00, 0x01, 0xff, 0xf0 };
	rd_init(&r, neg_str, sizeof(neg_str));
	ck_assert_int_eq(kafka_metadata_request_decode(&r, 1, &m, &a), -EBADMSG);
	static const uint8_t bad_varint[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	rd_init(&r, bad_varint, sizeof(bad_varint));
	ck_assert_int_eq(kafka_metadata_request_decode(&r, 9, &m, &a), -EBADMSG);
	arena_deinit(&a);
}
END_TEST

START_TEST(test_truncated_headers_are_rejected_at_every_byte)
{
	static const uint8_t v2[] = {
		0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02,
		0x00, 0x03, 'c', 'l', 'i', 0x01, 0x05, 0x01, 0xee, /* one unknown header tag */
	};
	struct kafka_request_header h;
	struct tm_rd r;
	for (size_t n = 0; n < sizeof(v2); n++) {
		rd_init(&r, v2, n);
		ck_assert_msg(kafka_request_header_decode(&r, &h) == -EBADMSG, "prefix %zu", n);
	}
	rd_init(&r, v2, sizeof(v2));
	ck_assert_int_eq(kafka_request_header_decode(&r, &h), 0);
	ck_assert(kstr_eq(h.client_id, "cli"));
	ck_assert_uint_eq(r.pos, sizeof(v2));

	/* ControlledShutdown v0 uses request header v0: no client id */
	static const uint8_t cs0[] = { 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
				       0x00, 0x00, 0x00, 0x01 };
	rd_init(&r, cs0, sizeof(cs0));
	ck_assert_int_eq(kafka_request_header_decode(&r, &h), 0);
	ck_assert_int_eq(h.client_id.len, -1);
	ck_assert_uint_eq(r.pos, 8);

	/* flexible response header (Metadata v9): correlation id + tagged fields */
	static const uint8_t rh[] = { 0x00, 0x00, 0x00, 0x2a, 0x00 };
	int32_t corr;
	for (size_t n = 0; n < sizeof(rh); n++) {
		rd_init(&r, rh, n);
		ck_assert_int_eq(kafka_response_header_decode(&r, KAFKA_API_METADATA, 9, &corr),
				 -EBADMSG);
	}
	rd_init(&r, rh, sizeof(rh));
	ck_assert_int_eq(kafka_response_header_decode(&r, KAFKA_API_METADATA, 9, &corr), 0);
	ck_assert_int_eq(corr, 42);
	struct tm_wbuf w;
	wbuf_init(&w);
	kafka_response_header_encode(&w, KAFKA_API_METADATA, 9, 42);
	ck_assert_uint_eq(w.len, sizeof(rh));
	ck_assert(memcmp(w.buf, rh, sizeof(rh)) == 0);
	wbuf_reset(&w);
	kafka_response_header_encode(&w, KAFKA_API_METADATA, 8, 42);
	ck_assert_uint_eq(w.len, 4);
	wbuf_deinit(&w);
}
END_TEST

START_TEST(test_arena_limit_gives_enomem)
{
	/* a valid Metadata v1 request with 40 topics, decoded in a tiny arena */
	struct tm_wbuf w;
	wbuf_init(&w);
	struct kafka_metadata_request_metadata_request_topic topics[40];
	for (int i = 0; i < 40; i++) {
		memset(&topics[i], 0, sizeof(topics[i]));
		topics[i].name = kstr_c("topic");
	}
	struct kafka_metadata_request m;
	kafka_metadata_request_init(&m);
	m.topics = topics;
	m.topics_count = 40;
	kafka_metadata_request_encode(&w, 1, &m);
	struct tm_arena a;
	arena_init(&a, 64);
	struct tm_rd r;
	rd_init(&r, w.buf, w.len);
	struct kafka_metadata_request back;
	ck_assert_int_eq(kafka_metadata_request_decode(&r, 1, &back, &a), -ENOMEM);
	arena_deinit(&a);
	arena_init(&a, 0);
	rd_init(&r, w.buf, w.len);
	ck_assert_int_eq(kafka_metadata_request_decode(&r, 1, &back, &a), 0);
	ck_assert_int_eq(back.topics_count, 40);
	ck_assert(kstr_eq(back.topics[39].name, "topic"));
	arena_deinit(&a);
	wbuf_deinit(&w);
}
END_TEST

START_TEST(test_garbage_never_crashes_any_decoder)
{
	/* seeded pseudo-random bodies through every decoder at every version */
	uint32_t seed = 0x5eed;
	uint8_t buf[96];
	for (size_t ci = 0; ci < N_CASES; ci++) {
		const struct tg_case *c = &tg_cases[ci];
		for (int v = c->min_version; v <= c->max_version; v++) {
			for (int round = 0; round < 8; round++) {
				for (size_t i = 0; i < sizeof(buf); i++) {
					seed = seed * 1103515245u + 12345u;
					buf[i] = (uint8_t)(seed >> 16);
					if (round & 1)
						buf[i] &= 0x03; /* small counts and lengths */
				}
				struct tm_arena a;
				arena_init(&a, 1 << 20);
				void *m = arena_alloc(&a, c->size);
				struct tm_rd r;
				rd_init(&r, buf, sizeof(buf));
				int rc = c->decode(&r, (int16_t)v, m, &a);
				ck_assert_msg(rc == 0 || rc == -EBADMSG || rc == -ENOMEM,
					      "%s v%d seed %u: rc %d", c->name, v, seed, rc);
				if (rc == 0) {
					struct tm_wbuf w;
					wbuf_init(&w);
					c->encode(&w, (int16_t)v, m);
					wbuf_deinit(&w);
				}
				arena_deinit(&a);
			}
		}
	}
}
END_TEST

START_TEST(test_api_table_matches_schemas)
{
	const struct kafka_api_desc *d = kafka_api_lookup(KAFKA_API_PRODUCE);
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(d->name, "Produce");
	ck_assert_int_eq(d->min_version, 0);
	ck_assert_int_eq(d->max_version, 11);
	ck_assert_int_eq(d->flexible_min, 9);
	d = kafka_api_lookup(KAFKA_API_API_VERSIONS);
	ck_assert_int_eq(d->flexible_min, 3);
	ck_assert(kafka_api_count() > 70);
	ck_assert_uint_eq(kafka_request_struct_size(KAFKA_API_FETCH),
			  sizeof(struct kafka_fetch_request));
	ck_assert_uint_eq(kafka_request_struct_size(-5), 0);
	ck_assert(kafka_api_is_flexible(KAFKA_API_FETCH, 12));
	ck_assert(!kafka_api_is_flexible(KAFKA_API_FETCH, 11));
	const struct kafka_metadata_record_desc *md =
		kafka_metadata_record_lookup(KAFKA_METADATA_TOPIC);
	ck_assert_ptr_nonnull(md);
	ck_assert_str_eq(md->name, "TopicRecord");
	ck_assert_uint_eq(md->struct_size, sizeof(struct kafka_topic_record));
}
END_TEST

START_TEST(test_metadata_record_dispatch_roundtrip)
{
	struct kafka_topic_record t;
	kafka_topic_record_init(&t);
	t.name = kstr_c("orders");
	for (int i = 0; i < 16; i++)
		t.topic_id.b[i] = (uint8_t)(i + 1);
	struct tm_wbuf w;
	wbuf_init(&w);
	ck_assert_int_eq(kafka_metadata_record_encode(KAFKA_METADATA_TOPIC, 0, &w, &t), 0);
	/* compact "orders", 16-byte uuid, empty tagged fields */
	ck_assert_uint_eq(w.len, 1 + 6 + 16 + 1);
	struct tm_rd r;
	rd_init(&r, w.buf, w.len);
	struct kafka_topic_record back;
	struct tm_arena a;
	arena_init(&a, 0);
	ck_assert_int_eq(kafka_metadata_record_decode(KAFKA_METADATA_TOPIC, 0, &r, &back, &a), 0);
	ck_assert(kstr_eq(back.name, "orders"));
	ck_assert(kuuid_equal(&back.topic_id, &t.topic_id));
	ck_assert_int_eq(kafka_metadata_record_decode(999, 0, &r, &back, &a), -ENOTSUP);
	arena_deinit(&a);
	wbuf_deinit(&w);
}
END_TEST

/* ---- holes: bytes the sender splices in (zero-copy Fetch) ---- */

/* Where a hole's bytes come from: the tag the encoder records. */
struct hole_src {
	const uint8_t *p;
	size_t len;
};

/* The bytes the peer would see: w's bytes with each hole filled from its
 * tag, in order.  Checks the holes are in position order, within the
 * buffer, and sum to hole_bytes.  The caller frees the result. */
static uint8_t *splice_holes(const struct tm_wbuf *w, size_t *len_out, const char *what)
{
	size_t total = w->len + w->hole_bytes, sum = 0, at = 0, o = 0;
	uint8_t *out = malloc(total ? total : 1);
	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < w->n_holes; i++) {
		const struct tm_wbuf_hole *h = &w->holes[i];
		const struct hole_src *src = h->tag;
		ck_assert_msg(h->at >= at && h->at <= w->len, "%s: hole %zu at %zu (previous %zu, len %zu)",
			      what, i, h->at, at, w->len);
		ck_assert_msg(h->len == src->len, "%s: hole %zu is %zu bytes, its source %zu", what, i,
			      h->len, src->len);
		memcpy(out + o, w->buf + at, h->at - at);
		o += h->at - at;
		if (h->len)
			memcpy(out + o, src->p, h->len);
		o += h->len;
		sum += h->len;
		at = h->at;
	}
	ck_assert_msg(sum == w->hole_bytes, "%s: holes sum to %zu, hole_bytes %zu", what, sum,
		      w->hole_bytes);
	memcpy(out + o, w->buf + at, w->len - at);
	o += w->len - at;
	ck_assert_uint_eq(o, total);
	*len_out = total;
	return out;
}

/* Compares the spliced hole encoding with the plain one, naming the first
 * differing byte. */
static void expect_spliced_equal(const struct tm_wbuf *holes, const struct tm_wbuf *plain,
				 const char *what)
{
	ck_assert_msg(holes->err == 0 && plain->err == 0, "%s: encode failed", what);
	ck_assert_msg(plain->n_holes == 0 && plain->hole_bytes == 0, "%s: plain bytes made holes",
		      what);
	size_t len;
	uint8_t *s = splice_holes(holes, &len, what);
	ck_assert_msg(len == plain->len, "%s: spliced %zu bytes, plain encoding %zu", what, len,
		      plain->len);
	if (len > 0 && memcmp(s, plain->buf, len) != 0)
		for (size_t i = 0; i < len; i++)
			ck_assert_msg(s[i] == plain->buf[i], "%s: byte %zu is 0x%02x spliced, 0x%02x plain",
				      what, i, s[i], plain->buf[i]);
	free(s);
}

enum { FR_TOPICS = 2, FR_PARTS = 2 };

/* Records of partition t*FR_PARTS+p: 73, 0, 300 (two-byte varint) and 40
 * bytes; not batches, the encoder does not look inside. */
static const size_t fr_records_len[FR_TOPICS * FR_PARTS] = { 73, 0, 300, 40 };

/* A FetchResponse with 2 topics x 2 partitions; records as holes or as
 * bytes, the empty partition as a zero-length hole or as "" when
 * empty_as_hole is false. */
static void fill_fetch_response(struct kafka_fetch_response *m,
				struct kafka_fetch_response_fetchable_topic_response *topics,
				struct kafka_fetch_response_partition_data *parts,
				struct kafka_fetch_response_node_endpoint *nodes,
				struct hole_src *src, bool holes, bool empty_as_hole)
{
	kafka_fetch_response_init(m);
	m->throttle_time_ms = 7;
	m->session_id = 1234;
	m->responses = topics;
	m->responses_count = FR_TOPICS;
	memset(nodes, 0, sizeof(*nodes));
	nodes->node_id = 3;
	nodes->host = kstr_c("broker-3");
	nodes->port = 9092;
	nodes->rack = kstr_null();
	m->node_endpoints = nodes;
	m->node_endpoints_count = 1; /* a tagged field after every hole (v16+) */
	for (int t = 0; t < FR_TOPICS; t++) {
		memset(&topics[t], 0, sizeof(topics[t]));
		topics[t].topic = kstr_c(t == 0 ? "orders" : "payments");
		for (int i = 0; i < 16; i++)
			topics[t].topic_id.b[i] = (uint8_t)(t * 16 + i + 1);
		topics[t].partitions = &parts[t * FR_PARTS];
		topics[t].partitions_count = FR_PARTS;
		for (int p = 0; p < FR_PARTS; p++) {
			int k = t * FR_PARTS + p;
			struct kafka_fetch_response_partition_data *d = &parts[k];
			memset(d, 0, sizeof(*d));
			d->partition_index = p;
			d->high_watermark = 1000 + k;
			d->last_stable_offset = 900 + k;
			d->log_start_offset = k;
			d->diverging_epoch.epoch = -1;
			d->diverging_epoch.end_offset = -1;
			d->current_leader.leader_id = -1;
			d->current_leader.leader_epoch = -1;
			d->snapshot_id.end_offset = -1;
			d->snapshot_id.epoch = -1;
			if (k == 0) { /* tagged fields right after a hole (v12+) */
				d->current_leader.leader_id = 3;
				d->current_leader.leader_epoch = 9;
			}
			if (k == 2) {
				d->diverging_epoch.epoch = 4;
				d->diverging_epoch.end_offset = 77;
			}
			d->aborted_transactions_count = k == 3 ? 0 : -1;
			d->preferred_read_replica = -1;
			if (holes && (src[k].len > 0 || empty_as_hole))
				d->records = kbytes_hole(&src[k], src[k].len);
			else
				d->records = kbytes_make(src[k].len ? src[k].p : (const uint8_t *)"", src[k].len);
		}
	}
}

START_TEST(test_fetch_response_with_record_holes_splices_to_the_copied_encoding)
{
	uint8_t data[FR_TOPICS * FR_PARTS][300];
	struct hole_src src[FR_TOPICS * FR_PARTS];
	for (int k = 0; k < FR_TOPICS * FR_PARTS; k++) {
		for (size_t i = 0; i < sizeof(data[k]); i++)
			data[k][i] = (uint8_t)(k * 59 + i * 7 + 1);
		src[k].p = data[k];
		src[k].len = fr_records_len[k];
	}
	const struct kafka_api_desc *d = kafka_api_lookup(KAFKA_API_FETCH);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_ge(d->max_version, 16);
	for (int v = d->min_version; v <= d->max_version; v++) {
		for (int empty_as_hole = 0; empty_as_hole < 2; empty_as_hole++) {
			char what[64];
			snprintf(what, sizeof(what), "FetchResponse v%d, empty %s", v,
				 empty_as_hole ? "as a hole" : "as bytes");
			struct kafka_fetch_response mh, mp;
			struct kafka_fetch_response_fetchable_topic_response th[FR_TOPICS], tp[FR_TOPICS];
			struct kafka_fetch_response_partition_data ph[FR_TOPICS * FR_PARTS],
				pp[FR_TOPICS * FR_PARTS];
			struct kafka_fetch_response_node_endpoint nh, np;
			fill_fetch_response(&mh, th, ph, &nh, src, true, empty_as_hole);
			fill_fetch_response(&mp, tp, pp, &np, src, false, false);
			struct tm_wbuf wh, wp;
			wbuf_init(&wh);
			wbuf_init(&wp);
			kafka_response_header_encode(&wh, KAFKA_API_FETCH, (int16_t)v, 42);
			kafka_fetch_response_encode(&wh, (int16_t)v, &mh);
			kafka_response_header_encode(&wp, KAFKA_API_FETCH, (int16_t)v, 42);
			kafka_fetch_response_encode(&wp, (int16_t)v, &mp);

			/* one hole per partition with records, tagged with its source, in order */
			size_t want_holes = 0, want_bytes = 0;
			for (int k = 0; k < FR_TOPICS * FR_PARTS; k++) {
				if (src[k].len == 0 && !empty_as_hole)
					continue;
				ck_assert_msg(want_holes < wh.n_holes, "%s: %zu holes", what, wh.n_holes);
				ck_assert_msg(wh.holes[want_holes].tag == &src[k],
					      "%s: hole %zu is not partition %d's", what, want_holes, k);
				want_holes++;
				want_bytes += src[k].len;
			}
			ck_assert_msg(wh.n_holes == want_holes, "%s: %zu holes, want %zu", what,
				      wh.n_holes, want_holes);
			ck_assert_uint_eq(wh.hole_bytes, want_bytes);
			ck_assert_uint_eq(wh.len + wh.hole_bytes, wp.len);
			expect_spliced_equal(&wh, &wp, what);

			/* and a client decodes the spliced bytes back to the records */
			size_t len;
			uint8_t *s = splice_holes(&wh, &len, what);
			struct tm_arena a;
			arena_init(&a, 0);
			struct tm_rd r;
			rd_init(&r, s, len);
			int32_t corr;
			ck_assert_int_eq(kafka_response_header_decode(&r, KAFKA_API_FETCH, (int16_t)v, &corr), 0);
			ck_assert_int_eq(corr, 42);
			struct kafka_fetch_response back;
			int rc = kafka_fetch_response_decode(&r, (int16_t)v, &back, &a);
			ck_assert_msg(rc == 0, "%s: decode %d", what, rc);
			ck_assert_msg(r.pos == len, "%s: decode left %zu bytes", what, len - r.pos);
			ck_assert_int_eq(back.responses_count, FR_TOPICS);
			for (int t = 0; t < FR_TOPICS; t++)
				for (int p = 0; p < FR_PARTS; p++) {
					const struct kafka_fetch_response_partition_data *bp =
						&back.responses[t].partitions[p];
					int k = t * FR_PARTS + p;
					ck_assert_int_eq(bp->high_watermark, 1000 + k);
					ck_assert_msg(bp->records.len == (int32_t)src[k].len &&
							      (src[k].len == 0 ||
							       memcmp(bp->records.ptr, src[k].p, src[k].len) == 0),
						      "%s: partition %d's records came back as %d bytes", what,
						      k, bp->records.len);
					if (v >= 12 && k == 0)
						ck_assert_int_eq(bp->current_leader.leader_epoch, 9);
					if (v >= 12 && k == 2)
						ck_assert_int_eq(bp->diverging_epoch.end_offset, 77);
				}
			if (v >= 16) {
				ck_assert_int_eq(back.node_endpoints_count, 1);
				ck_assert(kstr_eq(back.node_endpoints[0].host, "broker-3"));
			}
			arena_deinit(&a);
			free(s);
			wbuf_deinit(&wh);
			wbuf_deinit(&wp);
		}
	}
}
END_TEST

/* Writes prefix, a hole before the field, then tagged field `tag` holding
 * [3 bytes, records a, a nested tagged field holding records b, 2 bytes],
 * then records c after it; `holes` says whether records go as holes. */
static void write_tagged_with_records(struct tm_wbuf *w, bool holes, struct hole_src *a,
				      struct hole_src *b, struct hole_src *c)
{
	static const uint8_t head[3] = { 0xa1, 0xa2, 0xa3 }, tail[2] = { 0xb1, 0xb2 };
	struct hole_src *srcs[3] = { a, b, c };
	struct kbytes kb[3];
	for (int i = 0; i < 3; i++)
		kb[i] = holes ? kbytes_hole(srcs[i], srcs[i]->len) : kbytes_make(srcs[i]->p, srcs[i]->len);
	wr_i32(w, 0x01020304);
	kafka_wr_bytes(w, true, false, kb[0]);   /* before the field: not counted in it */
	wr_uvarint(w, 1);                        /* one tagged field */
	size_t at = kafka_wr_tag_begin(w, 5);
	wr_bytes(w, head, sizeof(head));
	kafka_wr_bytes(w, true, false, kb[0]);
	size_t inner = kafka_wr_tag_begin(w, 1);
	kafka_wr_bytes(w, false, false, kb[1]);
	kafka_wr_tag_end(w, inner);
	wr_bytes(w, tail, sizeof(tail));
	kafka_wr_tag_end(w, at);
	kafka_wr_bytes(w, true, false, kb[2]);   /* after the field: not moved by it */
}

static size_t uvarint_len(size_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

START_TEST(test_hole_inside_tagged_field_counts_in_its_size_and_moves)
{
	/* sizes across the size varint's 1/2/3-byte steps, for the field and the
	 * nested one */
	static const size_t sizes[] = { 0,   1,   100, 114,   115,   120,   126,  127,
					128, 200, 16363, 16370, 16383, 16384, 20000 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	uint8_t *data = malloc(20000 + 16); /* sources start up to 7 bytes in */
	ck_assert_ptr_nonnull(data);
	for (size_t i = 0; i < 20000 + 16; i++)
		data[i] = (uint8_t)(i * 13 + 5);
	for (size_t i = 0; i < N; i++) {
		for (size_t j = 0; j < N; j += 3) {
			struct hole_src a = { data, sizes[i] }, b = { data + 7, sizes[j] },
					c = { data + 1, 129 };
			char what[96];
			snprintf(what, sizeof(what), "tagged field with a %zu-byte hole and a nested %zu-byte one",
				 a.len, b.len);
			struct tm_wbuf wh, wp;
			wbuf_init(&wh);
			wbuf_init(&wp);
			write_tagged_with_records(&wh, true, &a, &b, &c);
			write_tagged_with_records(&wp, false, &a, &b, &c);
			ck_assert_uint_eq(wh.n_holes, 4);
			ck_assert_ptr_eq(wh.holes[0].tag, &a);
			ck_assert_ptr_eq(wh.holes[1].tag, &a);
			ck_assert_ptr_eq(wh.holes[2].tag, &b);
			ck_assert_ptr_eq(wh.holes[3].tag, &c);
			ck_assert_uint_eq(wh.hole_bytes, 2 * a.len + b.len + c.len);
			/* the positions, from the layout: holes are not in the buffer */
			size_t inner_size = 4 + b.len;
			size_t outer_size = 3 + uvarint_len(a.len + 1) + a.len + 1 + uvarint_len(inner_size) +
					    inner_size + 2;
			size_t at0 = 4 + uvarint_len(a.len + 1);
			size_t at1 = at0 + 1 + 1 + uvarint_len(outer_size) + 3 + uvarint_len(a.len + 1);
			size_t at2 = at1 + 1 + uvarint_len(inner_size) + 4;
			ck_assert_msg(wh.holes[0].at == at0 && wh.holes[1].at == at1 && wh.holes[2].at == at2 &&
					      wh.holes[3].at == wh.len,
				      "%s: holes at %zu %zu %zu %zu, want %zu %zu %zu %zu", what, wh.holes[0].at,
				      wh.holes[1].at, wh.holes[2].at, wh.holes[3].at, at0, at1, at2, wh.len);
			expect_spliced_equal(&wh, &wp, what);

			/* the field's size as a reader sees it: every byte to the last one */
			size_t len;
			uint8_t *s = splice_holes(&wh, &len, what);
			struct tm_rd r;
			rd_init(&r, s, len);
			(void)rd_i32(&r);
			struct kbytes first;
			ck_assert_int_eq(kafka_rd_bytes(&r, true, false, &first), 0);
			ck_assert_uint_eq(rd_uvarint(&r), 1);
			ck_assert_uint_eq(rd_uvarint(&r), 5);
			uint32_t size = rd_uvarint(&r);
			ck_assert_int_eq(r.err, 0);
			ck_assert_uint_eq(size, outer_size);
			rd_skip(&r, size);
			struct kbytes last;
			ck_assert_msg(kafka_rd_bytes(&r, true, false, &last) == 0 && r.pos == len,
				      "%s: the field's size %u does not end where the next field starts",
				      what, size);
			ck_assert_uint_eq((size_t)last.len, c.len);
			ck_assert(memcmp(last.ptr, c.p, c.len) == 0);
			free(s);
			wbuf_deinit(&wh);
			wbuf_deinit(&wp);
		}
		/* a bare hole as the field's very first bytes (no length before it) */
		struct hole_src a = { data + 3, sizes[i] };
		struct tm_wbuf wh, wp;
		wbuf_init(&wh);
		wbuf_init(&wp);
		for (int holes = 0; holes < 2; holes++) {
			struct tm_wbuf *w = holes ? &wh : &wp;
			wr_uvarint(w, 1);
			size_t at = kafka_wr_tag_begin(w, 9);
			if (holes)
				wr_hole(w, a.len, &a);
			else
				wr_bytes(w, a.p, a.len);
			wr_i16(w, 0x0102);
			kafka_wr_tag_end(w, at);
		}
		ck_assert_uint_eq(wh.n_holes, 1);
		ck_assert_uint_eq(wh.holes[0].at, 2 + uvarint_len(a.len + 2));
		expect_spliced_equal(&wh, &wp, "a tagged field starting with a bare hole");
		wbuf_deinit(&wh);
		wbuf_deinit(&wp);
	}
	free(data);
}
END_TEST

START_TEST(test_wbuf_reset_forgets_holes)
{
	uint8_t bytes[300];
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)i;
	struct hole_src src[9];
	struct tm_wbuf w;
	wbuf_init(&w);
	for (int round = 0; round < 3; round++) {
		/* more holes than the first allocation holds, so the list grows */
		for (int i = 0; i < 9; i++) {
			src[i].p = bytes + i;
			src[i].len = (size_t)(i * 30);
			wr_i16(&w, (int16_t)i);
			kafka_wr_bytes(&w, round == 1, false, kbytes_hole(&src[i], src[i].len));
		}
		ck_assert_int_eq(w.err, 0);
		ck_assert_uint_eq(w.n_holes, 9);
		ck_assert_uint_eq(w.hole_bytes, 30 * (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8));
		wbuf_reset(&w);
		ck_assert_uint_eq(w.len, 0);
		ck_assert_uint_eq(w.n_holes, 0);
		ck_assert_uint_eq(w.hole_bytes, 0);
		ck_assert_int_eq(w.err, 0);
	}
	/* after a reset the next hole is the first, at the new bytes' end */
	wr_i32(&w, 7);
	kafka_wr_bytes(&w, false, false, kbytes_hole(&src[2], src[2].len));
	ck_assert_uint_eq(w.n_holes, 1);
	ck_assert_uint_eq(w.holes[0].at, 8);
	ck_assert_uint_eq(w.holes[0].len, 60);
	ck_assert_ptr_eq(w.holes[0].tag, &src[2]);
	ck_assert_uint_eq(w.hole_bytes, 60);
	/* steal drops the list (ASan's leak check sees it freed) and empties w */
	size_t len;
	uint8_t *b = wbuf_steal(&w, &len);
	ck_assert_uint_eq(len, 8);
	ck_assert_uint_eq(w.n_holes, 0);
	ck_assert_uint_eq(w.hole_bytes, 0);
	ck_assert_ptr_null(w.holes);
	free(b);
	/* and deinit frees it */
	wr_hole(&w, 5, &src[0]);
	ck_assert_uint_eq(w.n_holes, 1);
	ck_assert_uint_eq(w.holes[0].at, 0);
	wbuf_deinit(&w);
	ck_assert_ptr_null(w.holes);
	ck_assert_uint_eq(w.n_holes, 0);
	/* a failed buffer records no hole */
	w.err = -ENOMEM;
	wr_hole(&w, 5, &src[0]);
	ck_assert_uint_eq(w.n_holes, 0);
	ck_assert_uint_eq(w.hole_bytes, 0);
	wbuf_deinit(&w);
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

	TCase *tv = tcase_create("vectors");
	tcase_add_test(tv, test_api_versions_v0_request_and_response);
	tcase_add_test(tv, test_api_versions_v3_request_and_response_header_v0);
	tcase_add_test(tv, test_header_of_unknown_newer_api_versions_still_parses);
	tcase_add_test(tv, test_unknown_tagged_fields_are_skipped);
	tcase_add_test(tv, test_metadata_v1_and_v9_requests);
	tcase_add_test(tv, test_produce_v3_and_v9_requests);
	tcase_add_test(tv, test_fetch_v4_and_v12_requests);
	tcase_add_test(tv, test_api_table_matches_schemas);
	tcase_add_test(tv, test_metadata_record_dispatch_roundtrip);
	suite_add_tcase(s, tv);

	TCase *tz = tcase_create("holes");
	tcase_add_test(tz, test_fetch_response_with_record_holes_splices_to_the_copied_encoding);
	tcase_add_test(tz, test_hole_inside_tagged_field_counts_in_its_size_and_moves);
	tcase_add_test(tz, test_wbuf_reset_forgets_holes);
	suite_add_tcase(s, tz);

	TCase *th = tcase_create("hostile");
	tcase_set_timeout(th, 120);
	tcase_add_test(th, test_huge_array_count_is_rejected_without_allocating);
	tcase_add_test(th, test_negative_lengths_and_bad_nulls_are_rejected);
	tcase_add_test(th, test_truncated_headers_are_rejected_at_every_byte);
	tcase_add_test(th, test_arena_limit_gives_enomem);
	tcase_add_test(th, test_garbage_never_crashes_any_decoder);
	suite_add_tcase(s, th);
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
