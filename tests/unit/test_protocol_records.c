/*
 * test_protocol_records.c — record batch v2: a hand-built batch with a CRC
 * computed independently of Tidemark (a bitwise CRC-32C in Python over the
 * layout in Kafka's protocol guide), validation of good and bad blobs, the
 * in-place setters, and builder -> iterator round trips.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "protocol/records.h"

/*
 * One record, key null, value "hello", CreateTime 1700000000000, not
 * idempotent (producer id/epoch/sequence -1), leader epoch -1, offset 0:
 * the batch a Java producer sends for `send(new ProducerRecord(t, "hello"))`.
 */
static const uint8_t hello_batch[73] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* base offset 0 */
	0x00, 0x00, 0x00, 0x3d,                         /* batch length 61 */
	0xff, 0xff, 0xff, 0xff,                         /* leader epoch -1 */
	0x02,                                           /* magic */
	0xe6, 0x41, 0xa4, 0x4b,                         /* crc32c */
	0x00, 0x00,                                     /* attributes */
	0x00, 0x00, 0x00, 0x00,                         /* last offset delta */
	0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, /* base timestamp */
	0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, /* max timestamp */
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* producer id */
	0xff, 0xff,                                     /* producer epoch */
	0xff, 0xff, 0xff, 0xff,                         /* base sequence */
	0x00, 0x00, 0x00, 0x01,                         /* record count */
	0x16, 0x00, 0x00, 0x00, 0x01, 0x0a,             /* len 11, attr, ts, off, key null, value 5 */
	0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00,             /* "hello", no headers */
};

START_TEST(test_records_header_parse_reads_every_field)
{
	struct tm_batch_hdr h;
	ck_assert_int_eq(records_batch_header_parse(hello_batch, sizeof(hello_batch), &h), 0);
	ck_assert_int_eq(h.base_offset, 0);
	ck_assert_int_eq(h.batch_length, 61);
	ck_assert_int_eq(h.partition_leader_epoch, -1);
	ck_assert_int_eq(h.magic, 2);
	ck_assert_uint_eq(h.crc, 0xe641a44bu);
	ck_assert_int_eq(h.attributes, 0);
	ck_assert_int_eq(h.last_offset_delta, 0);
	ck_assert_int_eq(h.base_timestamp, 1700000000000LL);
	ck_assert_int_eq(h.max_timestamp, 1700000000000LL);
	ck_assert_int_eq(h.producer_id, -1);
	ck_assert_int_eq(h.producer_epoch, -1);
	ck_assert_int_eq(h.base_sequence, -1);
	ck_assert_int_eq(h.record_count, 1);
	ck_assert_int_eq(records_batch_header_parse(hello_batch, 60, &h), -EBADMSG);
}
END_TEST

START_TEST(test_records_validate_accepts_known_batch)
{
	struct records_summary s;
	ck_assert_int_eq(records_validate(hello_batch, sizeof(hello_batch), 0, &s), 0);
	ck_assert_int_eq(s.batch_count, 1);
	ck_assert_int_eq(s.record_count, 1);
	ck_assert_int_eq(s.offset_count, 1);
	ck_assert_int_eq(s.max_timestamp, 1700000000000LL);
	ck_assert_int_eq(s.compression, RECORDS_COMPRESSION_NONE);
	ck_assert(!s.transactional);
	ck_assert(!s.control);
	ck_assert_int_eq(s.first.producer_id, -1);
	ck_assert_int_eq(s.last.base_sequence, -1);
}
END_TEST

START_TEST(test_records_validate_rejects_bad_crc_every_byte)
{
	/* flipping any byte under the CRC, or the CRC itself, is corrupt */
	for (size_t i = RECORDS_OFF_CRC; i < sizeof(hello_batch); i++) {
		uint8_t b[sizeof(hello_batch)];
		memcpy(b, hello_batch, sizeof(b));
		b[i] ^= 0x01;
		ck_assert_msg(records_validate(b, sizeof(b), 0, NULL) == -EBADMSG,
			      "byte %zu flipped was accepted", i);
	}
}
END_TEST

START_TEST(test_records_validate_rejects_truncation_at_every_length)
{
	for (size_t n = 1; n < sizeof(hello_batch); n++)
		ck_assert_msg(records_validate(hello_batch, n, 0, NULL) == -EBADMSG,
			      "truncated to %zu bytes was accepted", n);
	uint8_t two[2 * sizeof(hello_batch)];
	memcpy(two, hello_batch, sizeof(hello_batch));
	memcpy(two + sizeof(hello_batch), hello_batch, sizeof(hello_batch));
	ck_assert_int_eq(records_validate(two, sizeof(two), 0, NULL), 0);
	ck_assert_int_eq(records_validate(two, sizeof(two) - 1, 0, NULL), -EBADMSG);
}
END_TEST

START_TEST(test_records_validate_old_magic_is_eproto)
{
	uint8_t b[sizeof(hello_batch)];
	memcpy(b, hello_batch, sizeof(b));
	b[RECORDS_OFF_MAGIC] = 1;
	ck_assert_int_eq(records_validate(b, sizeof(b), 0, NULL), -EPROTO);
	b[RECORDS_OFF_MAGIC] = 0;
	ck_assert_int_eq(records_validate(b, sizeof(b), 0, NULL), -EPROTO);
	b[RECORDS_OFF_MAGIC] = 7;
	ck_assert_int_eq(records_validate(b, sizeof(b), 0, NULL), -EBADMSG);
}
END_TEST

START_TEST(test_records_validate_size_limit_is_emsgsize)
{
	ck_assert_int_eq(records_validate(hello_batch, sizeof(hello_batch), 72, NULL), -EMSGSIZE);
	ck_assert_int_eq(records_validate(hello_batch, sizeof(hello_batch), 73, NULL), 0);
}
END_TEST

/* Rewrites a header field and fixes the CRC, so only the field is wrong. */
static void patch_i32_recrc(uint8_t *b, size_t len, size_t off, int32_t v)
{
	tm_store_be32(b + off, (uint32_t)v);
	tm_store_be32(b + RECORDS_OFF_CRC,
		      crc32c(0, b + RECORDS_OFF_ATTRIBUTES, len - RECORDS_OFF_ATTRIBUTES));
}

START_TEST(test_records_validate_rejects_inconsistent_counts)
{
	uint8_t b[sizeof(hello_batch)];
	memcpy(b, hello_batch, sizeof(b));
	patch_i32_recrc(b, sizeof(b), RECORDS_OFF_LAST_OFFSET_DELTA, 1);
	ck_assert_int_eq(records_validate(b, sizeof(b), 0, NULL), -EBADMSG);
	memcpy(b, hello_batch, sizeof(b));
	patch_i32_recrc(b, sizeof(b), RECORDS_OFF_RECORD_COUNT, -1);
	ck_assert_int_eq(records_validate(b, sizeof(b), 0, NULL), -EBADMSG);
	memcpy(b, hello_batch, sizeof(b));
	patch_i32_recrc(b, sizeof(b), RECORDS_OFF_RECORD_COUNT, 2);
	ck_assert_int_eq(records_validate(b, sizeof(b), 0, NULL), -EBADMSG);
	memcpy(b, hello_batch, sizeof(b));
	tm_store_be32(b + RECORDS_OFF_BATCH_LENGTH, 10); /* below the header size */
	ck_assert_int_eq(records_validate(b, sizeof(b), 0, NULL), -EBADMSG);
	tm_store_be32(b + RECORDS_OFF_BATCH_LENGTH, 0x7fffffff);
	ck_assert_int_eq(records_validate(b, sizeof(b), 0, NULL), -EBADMSG);
}
END_TEST

START_TEST(test_records_setters_keep_crc_valid)
{
	uint8_t b[sizeof(hello_batch)];
	memcpy(b, hello_batch, sizeof(b));
	ck_assert_int_eq(records_set_base_offset(b, sizeof(b), 12345), 0);
	ck_assert_int_eq(records_set_partition_leader_epoch(b, sizeof(b), 7), 0);
	ck_assert_uint_eq(tm_load_be32(b + RECORDS_OFF_CRC), 0xe641a44bu); /* unchanged */
	ck_assert_int_eq(records_validate(b, sizeof(b), 0, NULL), 0);
	struct tm_batch_hdr h;
	records_batch_header_parse(b, sizeof(b), &h);
	ck_assert_int_eq(h.base_offset, 12345);
	ck_assert_int_eq(h.partition_leader_epoch, 7);

	ck_assert_int_eq(records_set_log_append_time(b, sizeof(b), 1700000001234LL), 0);
	records_batch_header_parse(b, sizeof(b), &h);
	ck_assert_int_eq(h.attributes, RECORDS_ATTR_LOG_APPEND_TIME);
	ck_assert_int_eq(h.max_timestamp, 1700000001234LL);
	ck_assert_int_eq(h.base_timestamp, 1700000000000LL);
	ck_assert_uint_eq(h.crc, 0x72f49ab9u); /* computed independently */
	ck_assert_int_eq(records_validate(b, sizeof(b), 0, NULL), 0);
	ck_assert_int_eq(records_set_log_append_time(b, 72, 1), -EBADMSG);
}
END_TEST

START_TEST(test_records_assign_offsets_walks_batches)
{
	uint8_t two[2 * sizeof(hello_batch)];
	memcpy(two, hello_batch, sizeof(hello_batch));
	memcpy(two + sizeof(hello_batch), hello_batch, sizeof(hello_batch));
	int64_t next = 0;
	ck_assert_int_eq(records_assign_offsets(two, sizeof(two), 100, 3, &next), 0);
	ck_assert_int_eq(next, 102);
	struct tm_batch_hdr h;
	records_batch_header_parse(two + sizeof(hello_batch), sizeof(hello_batch), &h);
	ck_assert_int_eq(h.base_offset, 101);
	ck_assert_int_eq(h.partition_leader_epoch, 3);
	ck_assert_int_eq(records_validate(two, sizeof(two), 0, NULL), 0);
}
END_TEST

START_TEST(test_records_iterator_reads_known_batch)
{
	struct records_iter it;
	struct records_record rec;
	records_iter_init(&it, hello_batch, sizeof(hello_batch));
	ck_assert_int_eq(records_iter_next(&it, &rec), 1);
	ck_assert_int_eq(rec.offset, 0);
	ck_assert_int_eq(rec.timestamp, 1700000000000LL);
	ck_assert_int_eq(rec.key.len, -1);
	ck_assert_int_eq(rec.value.len, 5);
	ck_assert(memcmp(rec.value.ptr, "hello", 5) == 0);
	ck_assert_int_eq(rec.header_count, 0);
	ck_assert_int_eq(records_iter_next(&it, &rec), 0);
}
END_TEST

START_TEST(test_records_builder_iterator_roundtrip)
{
	struct tm_wbuf w;
	wbuf_init(&w);
	struct records_batch_opts o;
	records_batch_opts_init(&o);
	o.base_offset = 40;
	o.producer_id = 9000;
	o.producer_epoch = 2;
	o.base_sequence = 17;
	o.attributes = RECORDS_ATTR_TRANSACTIONAL;
	struct records_builder b;
	records_builder_init(&b, &w, &o);
	struct records_header hdrs[2] = {
		{ kstr_c("trace"), kbytes_make("abc", 3) },
		{ kstr_c("empty"), kbytes_null() },
	};
	char big[300];
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(records_builder_add(&b, 5000, kbytes_make("k0", 2), kbytes_make("v0", 2),
					     NULL, 0), 0);
	ck_assert_int_eq(records_builder_add(&b, 4990, kbytes_null(),
					     kbytes_make(big, sizeof(big)), hdrs, 2), 0);
	ck_assert_int_eq(records_builder_add(&b, 6000, kbytes_make("k2", 2), kbytes_null(), hdrs,
					     1), 0);
	ck_assert_int_eq(records_builder_finish(&b), 0);

	struct records_summary s;
	ck_assert_int_eq(records_validate(w.buf, w.len, 0, &s), 0);
	ck_assert_int_eq(s.record_count, 3);
	ck_assert_int_eq(s.max_timestamp, 6000);
	ck_assert(s.transactional);
	ck_assert_int_eq(s.first.producer_id, 9000);
	ck_assert_int_eq(s.first.producer_epoch, 2);
	ck_assert_int_eq(s.first.base_sequence, 17);
	ck_assert_int_eq(s.first.last_offset_delta, 2);

	struct records_iter it;
	struct records_record rec;
	records_iter_init(&it, w.buf, w.len);
	ck_assert_int_eq(records_iter_next(&it, &rec), 1);
	ck_assert_int_eq(rec.offset, 40);
	ck_assert_int_eq(rec.timestamp, 5000);
	ck_assert(rec.key.len == 2 && memcmp(rec.key.ptr, "k0", 2) == 0);
	ck_assert(rec.value.len == 2 && memcmp(rec.value.ptr, "v0", 2) == 0);
	ck_assert_int_eq(records_iter_next(&it, &rec), 1);
	ck_assert_int_eq(rec.offset, 41);
	ck_assert_int_eq(rec.timestamp, 4990);
	ck_assert_int_eq(rec.key.len, -1);
	ck_assert_int_eq(rec.value.len, (int)sizeof(big));
	ck_assert_int_eq(rec.header_count, 2);
	struct tm_rd hr;
	struct kstr hk;
	struct kbytes hv;
	rd_init(&hr, rec.headers.ptr, (size_t)rec.headers.len);
	ck_assert_int_eq(records_header_next(&hr, &hk, &hv), 1);
	ck_assert(kstr_eq(hk, "trace"));
	ck_assert(hv.len == 3 && memcmp(hv.ptr, "abc", 3) == 0);
	ck_assert_int_eq(records_header_next(&hr, &hk, &hv), 1);
	ck_assert(kstr_eq(hk, "empty"));
	ck_assert_int_eq(hv.len, -1);
	ck_assert_int_eq(records_header_next(&hr, &hk, &hv), 0);
	ck_assert_int_eq(records_iter_next(&it, &rec), 1);
	ck_assert_int_eq(rec.offset, 42);
	ck_assert_int_eq(rec.value.len, -1);
	ck_assert_int_eq(it.hdr.producer_id, 9000);
	ck_assert_int_eq(records_iter_next(&it, &rec), 0);
	wbuf_deinit(&w);
}
END_TEST

START_TEST(test_records_builder_matches_known_batch)
{
	struct tm_wbuf w;
	wbuf_init(&w);
	struct records_batch_opts o;
	records_batch_opts_init(&o);
	struct records_builder b;
	records_builder_init(&b, &w, &o);
	ck_assert_int_eq(records_builder_add(&b, 1700000000000LL, kbytes_null(),
					     kbytes_make("hello", 5), NULL, 0), 0);
	ck_assert_int_eq(records_builder_finish(&b), 0);
	ck_assert_uint_eq(w.len, sizeof(hello_batch));
	ck_assert(memcmp(w.buf, hello_batch, w.len) == 0);
	wbuf_deinit(&w);
}
END_TEST

START_TEST(test_records_iterator_compressed_is_enotsup_then_continues)
{
	uint8_t two[2 * sizeof(hello_batch)];
	memcpy(two, hello_batch, sizeof(hello_batch));
	memcpy(two + sizeof(hello_batch), hello_batch, sizeof(hello_batch));
	two[RECORDS_OFF_ATTRIBUTES + 1] = RECORDS_COMPRESSION_ZSTD;
	struct records_iter it;
	struct records_record rec;
	records_iter_init(&it, two, sizeof(two));
	ck_assert_int_eq(records_iter_next(&it, &rec), -ENOTSUP);
	ck_assert_int_eq(records_iter_next(&it, &rec), 1);
	ck_assert(rec.value.len == 5);
	ck_assert_int_eq(records_iter_next(&it, &rec), 0);
	/* a partial trailing batch ends iteration, as in a fetch response */
	records_iter_init(&it, hello_batch, sizeof(hello_batch) - 1);
	ck_assert_int_eq(records_iter_next(&it, &rec), 0);
}
END_TEST

START_TEST(test_records_garbage_never_crashes)
{
	/* deterministic pseudo-random blobs; printed seed on failure */
	uint32_t seed = 12345;
	uint8_t b[256];
	for (int round = 0; round < 2000; round++) {
		size_t n = 0;
		for (; n < sizeof(b); n++) {
			seed = seed * 1103515245u + 12345u;
			b[n] = (uint8_t)(seed >> 16);
		}
		if (round % 2)
			memcpy(b, hello_batch, 21); /* plausible header, garbage after */
		n = (size_t)(seed % sizeof(b));
		int rc = records_validate(b, n, 0, NULL);
		ck_assert_msg(rc == 0 || rc == -EBADMSG || rc == -EPROTO, "round %d rc %d", round, rc);
		struct records_iter it;
		struct records_record rec;
		records_iter_init(&it, b, n);
		int steps = 0;
		while (records_iter_next(&it, &rec) == 1 && steps < 10000)
			steps++;
		ck_assert_msg(steps < 10000, "round %d: iterator did not end", round);
	}
}
END_TEST

/*
 * The record walk of records.c decodes on raw pointers.  ref_batch_records
 * is the same walk on the tm_rd cursor of common/bytes.c, one field at a
 * time: the two must agree on every record area, valid or not.
 */
static int ref_varbytes(struct tm_rd *r, struct kbytes *out)
{
	int32_t n = rd_varint(r);
	if (r->err || n < -1)
		return -1;
	if (n == -1) {
		*out = kbytes_null();
		return 0;
	}
	const uint8_t *p = rd_take(r, (size_t)n);
	if (!p)
		return -1;
	*out = kbytes_make(p, (size_t)n);
	return 0;
}

/* Parses count records from the area; 0 and out[] filled, or -1. */
static int ref_batch_records(const uint8_t *area, size_t len, int32_t count, int64_t base_offset,
			     int64_t base_ts, struct records_record *out)
{
	struct tm_rd r;
	rd_init(&r, area, len);
	for (int32_t i = 0; i < count; i++) {
		int32_t rl = rd_varint(&r);
		if (r.err || rl < 0)
			return -1;
		const uint8_t *p = rd_take(&r, (size_t)rl);
		if (!p)
			return -1;
		struct tm_rd q;
		rd_init(&q, p, (size_t)rl);
		(void)rd_i8(&q);
		int64_t ts = rd_varlong(&q);
		int32_t od = rd_varint(&q);
		if (q.err || ref_varbytes(&q, &out[i].key) || ref_varbytes(&q, &out[i].value))
			return -1;
		int32_t nh = rd_varint(&q);
		if (q.err || nh < 0)
			return -1;
		size_t hs = q.pos;
		for (int32_t k = 0; k < nh; k++) {
			struct kbytes hk, hv;
			if (ref_varbytes(&q, &hk) || hk.len < 0 || ref_varbytes(&q, &hv))
				return -1;
		}
		if (q.err || q.pos != q.len)
			return -1;
		out[i].offset = (int64_t)((uint64_t)base_offset + (uint64_t)(int64_t)od);
		out[i].timestamp = (int64_t)((uint64_t)base_ts + (uint64_t)ts);
		out[i].header_count = nh;
		out[i].headers = kbytes_make(p + hs, q.len - hs);
	}
	return rd_remaining(&r) == 0 ? 0 : -1;
}

static bool kbytes_same(struct kbytes a, struct kbytes b)
{
	return a.len == b.len && (a.len <= 0 || a.ptr == b.ptr);
}

START_TEST(test_records_walk_matches_cursor_reference_on_mutations)
{
	/* records whose lengths and deltas take 1, 2 and 3 varint bytes */
	static uint8_t big[20000];
	memset(big, 'v', sizeof(big));
	struct records_header hdrs[2] = {
		{ kstr_c("h"), kbytes_make(big, 200) },
		{ kstr_c("nul"), kbytes_null() },
	};
	struct tm_wbuf w;
	wbuf_init(&w);
	struct records_batch_opts o;
	records_batch_opts_init(&o);
	o.base_offset = 1000;
	struct records_builder b;
	records_builder_init(&b, &w, &o);
	enum { N = 8 };
	for (int i = 0; i < N; i++) {
		size_t vlen = (size_t[]){ 0, 5, 63, 64, 100, 8191, 8192, 20000 }[i];
		struct kbytes key = i % 3 ? kbytes_make(big, (size_t)i * 40) : kbytes_null();
		ck_assert_int_eq(records_builder_add(&b, 1700000000000LL + i * 100000, key,
						     kbytes_make(big, vlen), hdrs, i % 3), 0);
	}
	ck_assert_int_eq(records_builder_finish(&b), 0);
	ck_assert_int_eq(records_validate(w.buf, w.len, 0, NULL), 0);
	size_t area = RECORDS_BATCH_HEADER_BYTES;
	uint8_t *m = malloc(w.len);
	ck_assert_ptr_nonnull(m);
	uint32_t seed = 777;
	int agreed_ok = 0, agreed_bad = 0;
	for (int round = 0; round < 6000; round++) {
		memcpy(m, w.buf, w.len);
		/* mutate a few bytes, mostly near record boundaries where the
		 * varints are, then make the CRC valid again so that only the
		 * record walk can reject the batch */
		int flips = 1 + (int)(round % 3);
		for (int f = 0; f < flips; f++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = area + (seed >> 8) % (round % 2 ? 64 : w.len - area);
			seed = seed * 1103515245u + 12345u;
			m[at] = (uint8_t)(round % 5 == 0 ? 0x80 | (seed >> 16) : seed >> 16);
		}
		tm_store_be32(m + RECORDS_OFF_CRC,
			      crc32c(0, m + RECORDS_OFF_ATTRIBUTES, w.len - RECORDS_OFF_ATTRIBUTES));
		struct records_record want[N], got;
		int ref = ref_batch_records(m + area, w.len - area, N, 1000, 1700000000000LL, want);
		int rc = records_validate(m, w.len, 0, NULL);
		ck_assert_msg((rc == 0) == (ref == 0), "round %d: validate %d, reference %d", round, rc, ref);
		if (ref != 0) {
			agreed_bad++;
			continue;
		}
		agreed_ok++;
		struct records_iter it;
		records_iter_init(&it, m, w.len);
		for (int i = 0; i < N; i++) {
			ck_assert_int_eq(records_iter_next(&it, &got), 1);
			ck_assert_int_eq(got.offset, want[i].offset);
			ck_assert_int_eq(got.timestamp, want[i].timestamp);
			ck_assert(kbytes_same(got.key, want[i].key));
			ck_assert(kbytes_same(got.value, want[i].value));
			ck_assert_int_eq(got.header_count, want[i].header_count);
			ck_assert(kbytes_same(got.headers, want[i].headers));
		}
		ck_assert_int_eq(records_iter_next(&it, &got), 0);
	}
	/* both outcomes were exercised */
	ck_assert_int_gt(agreed_ok, 100);
	ck_assert_int_gt(agreed_bad, 100);
	free(m);
	wbuf_deinit(&w);
}
END_TEST

START_TEST(test_records_validate_rejects_malformed_record_varints)
{
	/* hello_batch's record with its fields replaced, CRC recomputed */
	static const struct {
		const char *why;
		uint8_t rec[16];
		size_t len;
	} cases[] = {
		{ "length says 12, fields take 11", { 0x18, 0, 0, 0, 1, 0x0a, 'h', 'e', 'l', 'l', 'o', 0, 0 }, 13 },
		{ "offset delta of 6 groups", { 0x16, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0, 1, 0, 0 }, 12 },
		{ "key length -2", { 0x0a, 0, 0, 0, 0x03, 0x00 }, 6 },
		{ "header key null", { 0x10, 0, 0, 0, 1, 1, 0x02, 0x01, 0x00 }, 9 },
		{ "value runs past the record", { 0x0c, 0, 0, 0, 1, 0x0a, 'h' }, 7 },
		{ "empty record", { 0x00 }, 1 },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		uint8_t b[RECORDS_BATCH_HEADER_BYTES + 16];
		memcpy(b, hello_batch, RECORDS_BATCH_HEADER_BYTES);
		memcpy(b + RECORDS_BATCH_HEADER_BYTES, cases[c].rec, cases[c].len);
		size_t total = RECORDS_BATCH_HEADER_BYTES + cases[c].len;
		tm_store_be32(b + RECORDS_OFF_BATCH_LENGTH, (uint32_t)(total - RECORDS_BATCH_OVERHEAD_BYTES));
		tm_store_be32(b + RECORDS_OFF_CRC,
			      crc32c(0, b + RECORDS_OFF_ATTRIBUTES, total - RECORDS_OFF_ATTRIBUTES));
		ck_assert_msg(records_validate(b, total, 0, NULL) == -EBADMSG, "%s", cases[c].why);
		struct records_iter it;
		struct records_record rec;
		records_iter_init(&it, b, total);
		ck_assert_msg(records_iter_next(&it, &rec) == -EBADMSG, "iterator: %s", cases[c].why);
	}
	/* the same layout with consistent fields is accepted */
	uint8_t ok[RECORDS_BATCH_HEADER_BYTES + 12];
	memcpy(ok, hello_batch, sizeof(ok));
	ck_assert_int_eq(records_validate(ok, sizeof(ok), 0, NULL), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("protocol_records");
	TCase *tc = tcase_create("records");
	tcase_add_test(tc, test_records_header_parse_reads_every_field);
	tcase_add_test(tc, test_records_validate_accepts_known_batch);
	tcase_add_test(tc, test_records_validate_rejects_bad_crc_every_byte);
	tcase_add_test(tc, test_records_validate_rejects_truncation_at_every_length);
	tcase_add_test(tc, test_records_validate_old_magic_is_eproto);
	tcase_add_test(tc, test_records_validate_size_limit_is_emsgsize);
	tcase_add_test(tc, test_records_validate_rejects_inconsistent_counts);
	tcase_add_test(tc, test_records_setters_keep_crc_valid);
	tcase_add_test(tc, test_records_assign_offsets_walks_batches);
	tcase_add_test(tc, test_records_iterator_reads_known_batch);
	tcase_add_test(tc, test_records_builder_iterator_roundtrip);
	tcase_add_test(tc, test_records_builder_matches_known_batch);
	tcase_add_test(tc, test_records_iterator_compressed_is_enotsup_then_continues);
	tcase_add_test(tc, test_records_garbage_never_crashes);
	tcase_add_test(tc, test_records_walk_matches_cursor_reference_on_mutations);
	tcase_add_test(tc, test_records_validate_rejects_malformed_record_varints);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
