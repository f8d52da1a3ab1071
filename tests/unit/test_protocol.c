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
