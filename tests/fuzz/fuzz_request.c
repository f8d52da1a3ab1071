/*
 * fuzz_request.c — libFuzzer target for the request path of the codec.
 *
 * Input: one request frame body as a client sends it after the int32 size
 * (request header + body).  The target decodes the header, then the body
 * for that api key and version; when that succeeds it encodes the request
 * again, decodes the encoding and encodes once more, and aborts unless the
 * two encodings are byte-identical (a decoded message must survive its own
 * round trip).  Produce records are run through records_validate and the
 * record iterator; the body bytes are also fed to the response decoder of
 * the same api, since brokers decode responses from each other.
 *
 * Build and run: tests/fuzz/run.sh (make fuzz).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/bytes.h"
#include "protocol/kafka_msgs.h"
#include "protocol/records.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ARENA_BYTES_MAX (64u << 20)

static void check_records(const struct kafka_produce_request *m)
{
	for (int32_t t = 0; t < m->topic_data_count; t++) {
		const struct kafka_produce_request_topic_produce_data *td = &m->topic_data[t];
		for (int32_t p = 0; p < td->partition_data_count; p++) {
			struct kbytes rec = td->partition_data[p].records;
			if (rec.len <= 0)
				continue;
			struct records_summary s;
			(void)records_validate(rec.ptr, (size_t)rec.len, 1 << 20, &s);
			struct records_iter it;
			struct records_record r;
			records_iter_init(&it, rec.ptr, (size_t)rec.len);
			int rc;
			while ((rc = records_iter_next(&it, &r)) == 1 || rc == -ENOTSUP) {
				struct tm_rd hr;
				struct kstr hk;
				struct kbytes hv;
				if (rc != 1)
					continue;
				rd_init(&hr, r.headers.ptr, (size_t)r.headers.len);
				while (records_header_next(&hr, &hk, &hv) == 1)
					;
			}
		}
	}
}

static void roundtrip(const struct kafka_request_header *h, const void *body,
		      struct tm_arena *a)
{
	struct tm_wbuf w1, w2;
	wbuf_init(&w1);
	wbuf_init(&w2);
	kafka_request_header_encode(&w1, h);
	if (kafka_request_body_encode(h->api_key, h->api_version, &w1, body))
		abort();
	if (w1.err)
		goto out;
	struct tm_rd r;
	rd_init(&r, w1.buf, w1.len);
	struct kafka_request_header h2;
	if (kafka_request_header_decode(&r, &h2))
		abort();
	void *body2 = arena_alloc(a, kafka_request_struct_size(h->api_key));
	if (!body2)
		goto out;
	int rc = kafka_request_body_decode(h2.api_key, h2.api_version, &r, body2, a);
	if (rc == -ENOMEM)
		goto out;
	if (rc || r.pos != w1.len)
		abort(); /* our own encoding did not decode */
	kafka_request_header_encode(&w2, &h2);
	kafka_request_body_encode(h2.api_key, h2.api_version, &w2, body2);
	if (w2.err)
		goto out;
	if (w1.len != w2.len || memcmp(w1.buf, w2.buf, w1.len) != 0)
		abort(); /* encode(decode(encode(x))) != encode(x) */
out:
	wbuf_deinit(&w1);
	wbuf_deinit(&w2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tm_rd r;
	rd_init(&r, data, size);
	struct kafka_request_header h;
	if (kafka_request_header_decode(&r, &h))
		return 0;
	size_t sz = kafka_request_struct_size(h.api_key);
	if (!sz)
		return 0;
	size_t body_at = r.pos;
	struct tm_arena a;
	arena_init(&a, FUZZ_ARENA_BYTES_MAX);
	void *body = arena_alloc(&a, sz);
	if (body && kafka_request_body_decode(h.api_key, h.api_version, &r, body, &a) == 0) {
		if (h.api_key == KAFKA_API_PRODUCE)
			check_records(body);
		roundtrip(&h, body, &a);
	}
	void *resp = arena_alloc(&a, kafka_response_struct_size(h.api_key));
	if (resp) {
		rd_init(&r, data + body_at, size - body_at);
		if (kafka_response_body_decode(h.api_key, h.api_version, &r, resp, &a) == 0) {
			struct tm_wbuf w;
			wbuf_init(&w);
			kafka_response_body_encode(h.api_key, h.api_version, &w, resp);
			wbuf_deinit(&w);
		}
	}
	arena_deinit(&a);
	return 0;
}
