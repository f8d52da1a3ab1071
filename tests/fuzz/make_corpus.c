/*
 * make_corpus.c — writes the fuzzer's seed corpus: one request frame body
 * (header + body) per API at its lowest and highest version, filled with
 * the round-trip test's sample values, plus Produce v3 and v9 requests that
 * carry a valid record batch.  `tests/fuzz/run.sh --make-corpus` builds and
 * runs it (after a schema change).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/bytes.h"
#include "protocol/kafka_msgs.h"
#include "protocol/records.h"
#include "test_protocol_gen.h"

static void save(const char *dir, const char *name, const struct tm_wbuf *w)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(w->buf, 1, w->len, f) != w->len) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

static const struct tg_case *find_case(const char *name)
{
	for (size_t i = 0; i < sizeof(tg_cases) / sizeof(tg_cases[0]); i++)
		if (strcmp(tg_cases[i].name, name) == 0)
			return &tg_cases[i];
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_corpus DIR\n");
		return 2;
	}
	for (size_t i = 0; i < kafka_api_count(); i++) {
		const struct kafka_api_desc *d = kafka_api_at(i);
		char cname[128];
		snprintf(cname, sizeof(cname), "%sRequest", d->name);
		const struct tg_case *c = find_case(cname);
		if (!c)
			continue;
		int16_t vs[2] = { d->min_version, d->max_version };
		for (int j = 0; j < 2; j++) {
			struct tm_arena a;
			arena_init(&a, 0);
			void *m = arena_alloc(&a, c->size);
			unsigned k = 1;
			c->fill(m, vs[j], 0, &a, &k);
			struct kafka_request_header h = { d->key, vs[j], 1000 + (int32_t)i,
							  kstr_c("tidemark-seed") };
			struct tm_wbuf w;
			wbuf_init(&w);
			kafka_request_header_encode(&w, &h);
			c->encode(&w, vs[j], m);
			char name[160];
			snprintf(name, sizeof(name), "%s-v%d", d->name, vs[j]);
			save(argv[1], name, &w);
			wbuf_deinit(&w);
			arena_deinit(&a);
		}
	}
	/* Produce with a real batch */
	struct tm_wbuf batch;
	wbuf_init(&batch);
	struct records_batch_opts o;
	records_batch_opts_init(&o);
	struct records_builder b;
	records_builder_init(&b, &batch, &o);
	struct records_header hd = { kstr_c("h"), kbytes_make("v", 1) };
	records_builder_add(&b, 1700000000000LL, kbytes_make("key", 3), kbytes_make("hello", 5),
			    &hd, 1);
	records_builder_add(&b, 1700000000001LL, kbytes_null(), kbytes_make("world", 5), NULL, 0);
	records_builder_finish(&b);
	int16_t pv[2] = { 3, 9 };
	for (int j = 0; j < 2; j++) {
		struct kafka_produce_request_partition_produce_data pd = {
			.index = 0, .records = kbytes_make(batch.buf, batch.len) };
		struct kafka_produce_request_topic_produce_data td = {
			.name = kstr_c("orders"), .partition_data = &pd, .partition_data_count = 1 };
		struct kafka_produce_request p;
		kafka_produce_request_init(&p);
		p.acks = -1;
		p.timeout_ms = 30000;
		p.topic_data = &td;
		p.topic_data_count = 1;
		struct kafka_request_header h = { KAFKA_API_PRODUCE, pv[j], 7, kstr_c("producer") };
		struct tm_wbuf w;
		wbuf_init(&w);
		kafka_request_header_encode(&w, &h);
		kafka_produce_request_encode(&w, pv[j], &p);
		char name[64];
		snprintf(name, sizeof(name), "Produce-records-v%d", pv[j]);
		save(argv[1], name, &w);
		wbuf_deinit(&w);
	}
	wbuf_deinit(&batch);
	return 0;
}
