/*
 * test_storage.c — the partition log's everyday behaviour: append and read
 * back across segments, index lookups, fetch limits (high watermark,
 * max_bytes, KIP-74), timestamps, roll, retention, DeleteRecords,
 * truncation, clean reopen, leader epochs, topic id, Kafka's file names;
 * log_read_range (zero-copy Fetch) against log_read.
 */
#include "tests/unit/test_storage_common.h"

#include <dirent.h>
#include <sys/mman.h>

START_TEST(test_log_round_trip_across_segments)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	t_open(&t);
	for (int i = 0; i < 100; i++) {
		int64_t base = t_append(&t, 3, t.now + i);
		ck_assert_int_eq(base, i * 3);
	}
	ck_assert_int_eq(log_end_offset(t.l), 300);
	ck_assert_int_eq(log_written_offset(t.l), 300);
	ck_assert_int_ge(log_segment_count(t.l), 10);
	/* every segment respects log.segment.bytes */
	ck_assert_int_le(t_file_size(&t, "00000000000000000000.log"), 1024);
	ck_assert_int_eq(t_read_all(&t, 0, 300), 300);
	ck_assert_int_eq(t_read_all(&t, 0, 1 << 20), 300);
	ck_assert_int_eq(t_read_all(&t, 151, 700), 300 - 151);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_files_named_like_kafka)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	t_open(&t);
	int64_t second_base = -1;
	for (int i = 0; i < 20; i++) {
		int64_t b = t_append(&t, 3, t.now);
		if (log_segment_count(t.l) == 2 && second_base < 0)
			second_base = b;
	}
	ck_assert_int_gt(second_base, 0);
	char name[64];
	snprintf(name, sizeof(name), "%020lld.log", (long long)second_base);
	ck_assert(t_exists(&t, "00000000000000000000.log"));
	ck_assert(t_exists(&t, "00000000000000000000.index"));
	ck_assert(t_exists(&t, "00000000000000000000.timeindex"));
	ck_assert_msg(t_exists(&t, name), "missing %s", name);
	ck_assert(t_exists(&t, "leader-epoch-checkpoint"));
	/* a rolled segment's producer snapshot is named by the new base */
	snprintf(name, sizeof(name), "%020lld.snapshot", (long long)second_base);
	ck_assert_msg(t_exists(&t, name), "missing %s", name);
	t_close(&t);
	ck_assert(t_exists(&t, "tidemark-checkpoint"));
	ck_assert(t_exists(&t, ".tidemark_cleanshutdown"));
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_index_finds_offset_in_the_middle)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.index_interval_bytes = 256;
	t_open(&t);
	for (int i = 0; i < 200; i++)
		t_append(&t, 1, t.now);
	t_append(&t, 5, t.now); /* offsets 200..204 */
	for (int i = 0; i < 20; i++)
		t_append(&t, 1, t.now);
	/* the index file holds entries now (one per ~256 bytes) */
	ck_assert_int_gt(t_file_size(&t, "00000000000000000000.index"), 8 * 10);
	struct t_read r;
	int64_t first, last;
	t_read(&t, 137, log_end_offset(t.l), 1, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(t_batches(r.data, r.len, &first, &last), 1);
	ck_assert_int_eq(first, 137);
	free(r.data);
	/* an offset inside a batch returns the whole batch from its start */
	t_read(&t, 202, log_end_offset(t.l), 1, &r);
	ck_assert_int_eq(t_batches(r.data, r.len, &first, &last), 1);
	ck_assert_int_eq(first, 200);
	ck_assert_int_eq(last, 204);
	free(r.data);
	/* the same after a reopen, from the index files */
	t_close(&t);
	t_open(&t);
	t_read(&t, 137, log_end_offset(t.l), 1, &r);
	ck_assert_int_eq(t_batches(r.data, r.len, &first, &last), 1);
	ck_assert_int_eq(first, 137);
	free(r.data);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_read_limits_hw_and_max_bytes)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	for (int i = 0; i < 10; i++)
		t_append(&t, 2, t.now); /* batches at 0,2,4,...,18 */
	struct t_read r;
	int64_t first, last;
	/* high watermark 6: batches 0,2,4 only */
	t_read(&t, 0, 6, 1 << 20, &r);
	ck_assert_int_eq(t_batches(r.data, r.len, &first, &last), 3);
	ck_assert_int_eq(last, 5);
	free(r.data);
	/* at the high watermark: nothing, no error */
	t_read(&t, 6, 6, 1 << 20, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_uint_eq(r.len, 0);
	ck_assert_ptr_null(r.data);
	/* HW inside a batch: that batch is not returned */
	t_read(&t, 4, 5, 1 << 20, &r);
	ck_assert_uint_eq(r.len, 0);
	/* KIP-74: max_bytes below the first batch still returns it whole */
	t_read(&t, 0, 20, 10, &r);
	ck_assert_int_eq(t_batches(r.data, r.len, &first, &last), 1);
	size_t one = r.len;
	free(r.data);
	/* 2.5 batches worth of bytes: two whole batches */
	t_read(&t, 0, 20, one * 5 / 2, &r);
	ck_assert_int_eq(t_batches(r.data, r.len, &first, &last), 2);
	ck_assert_uint_eq(r.len, 2 * one);
	free(r.data);
	/* out of range */
	t_read(&t, 21, 30, 100, &r);
	ck_assert_int_eq(r.err, -ERANGE);
	/* at LEO: empty */
	t_read(&t, 20, 30, 100, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_uint_eq(r.len, 0);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_offset_for_timestamp)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 2048;
	t.cfg.index_interval_bytes = 128;
	t_open(&t);
	/* batch i has 4 records with timestamps 1000*i + 0..3 */
	for (int i = 1; i <= 60; i++)
		t_append(&t, 4, 1000LL * i);
	ck_assert_int_gt(log_segment_count(t.l), 2);
	int64_t off, ts;
	ck_assert_int_eq(log_offset_for_timestamp(t.l, 0, &off, &ts), 0);
	ck_assert_int_eq(off, 0);
	ck_assert_int_eq(ts, 1000);
	/* record 2 of batch 31 (offsets 120..123) */
	ck_assert_int_eq(log_offset_for_timestamp(t.l, 31002, &off, &ts), 0);
	ck_assert_int_eq(off, 122);
	ck_assert_int_eq(ts, 31002);
	/* between batches: first record of the next one */
	ck_assert_int_eq(log_offset_for_timestamp(t.l, 31500, &off, &ts), 0);
	ck_assert_int_eq(off, 124);
	ck_assert_int_eq(log_offset_for_timestamp(t.l, 61000, &off, &ts), 0);
	ck_assert_int_eq(off, -1);
	int64_t mts, moff;
	log_max_timestamp(t.l, &mts, &moff);
	ck_assert_int_eq(mts, 60003);
	ck_assert_int_eq(moff, 239);
	t_close(&t);
	t_open(&t);
	ck_assert_int_eq(log_offset_for_timestamp(t.l, 31002, &off, &ts), 0);
	ck_assert_int_eq(off, 122);
	log_max_timestamp(t.l, &mts, &moff);
	ck_assert_int_eq(mts, 60003);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_append_time_and_leader_epoch_are_stamped)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(3, 5);
	sth_build_batch(&w, &s);
	struct log_append_result res;
	ck_assert_int_eq(t_append_raw(&t, w.buf, w.len, 7, 424242, &res), 0);
	ck_assert_int_eq(res.log_append_time_ms, 424242);
	/* the caller's bytes are untouched (the log took a copy) */
	ck_assert_int_eq((int64_t)tm_load_be64(w.buf + 35), 7);
	wbuf_deinit(&w);
	struct t_read r;
	t_read(&t, 0, 10, 1000, &r);
	struct sbatch_hdr h;
	ck_assert_int_eq(sbatch_parse(r.data, r.len, &h), 0);
	ck_assert_int_eq(h.leader_epoch, 7);
	ck_assert_int_eq(h.max_timestamp, 424242);
	ck_assert(h.attributes & SBATCH_ATTR_LOG_APPEND_TIME);
	ck_assert(sbatch_crc_ok(r.data, r.len));
	free(r.data);
	ck_assert_int_eq(log_latest_epoch(t.l), 7);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_reopen_after_clean_close_keeps_everything)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1500;
	t_open(&t);
	for (int i = 0; i < 50; i++)
		t_append(&t, 2, t.now + i);
	int segs = log_segment_count(t.l);
	t_close(&t);
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 100);
	ck_assert_int_eq(log_flushed_offset(t.l), 100);
	ck_assert_int_eq(log_segment_count(t.l), segs);
	ck_assert_int_eq(t_read_all(&t, 0, 333), 100);
	/* appends continue where they stopped */
	ck_assert_int_eq(t_append(&t, 1, t.now), 100);
	ck_assert_int_eq(t_read_all(&t, 95, 333), 6);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_retention_by_size_and_time)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	t_open(&t);
	for (int i = 0; i < 80; i++)
		t_append(&t, 3, 1000 + i); /* old timestamps */
	int segs = log_segment_count(t.l);
	int64_t size = log_size_bytes(t.l);
	/* size: keep about 3 KiB */
	struct log_config c = t.cfg;
	c.retention_bytes = 3000;
	c.retention_ms = -1;
	log_set_config(t.l, &c);
	int n = log_enforce_retention(t.l, t.now);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(log_segment_count(t.l), segs - n);
	ck_assert_int_le(log_size_bytes(t.l), size);
	ck_assert_int_ge(log_size_bytes(t.l), 3000 - 1024);
	int64_t start = log_start_offset(t.l);
	ck_assert_int_gt(start, 0);
	struct t_read r;
	t_read(&t, start - 1, 1000, 100, &r);
	ck_assert_int_eq(r.err, -ERANGE);
	ck_assert_int_eq(t_read_all(&t, start, 1000), 240 - start);
	/* time: new batches are recent, old segments expire */
	for (int i = 0; i < 20; i++)
		t_append(&t, 3, t.now);
	c.retention_bytes = -1;
	c.retention_ms = 60 * 1000;
	log_set_config(t.l, &c);
	n = log_enforce_retention(t.l, t.now + 1000);
	ck_assert_int_gt(n, 0);
	int64_t ts, off;
	ck_assert_int_eq(log_offset_for_timestamp(t.l, 0, &off, &ts), 0);
	ck_assert_int_eq(ts, t.now); /* every old record is gone */
	ck_assert_int_eq(log_start_offset(t.l), off);
	/* the active segment is never deleted */
	n = log_enforce_retention(t.l, t.now + 10LL * 24 * 3600 * 1000);
	ck_assert_int_ge(log_segment_count(t.l), 1);
	ck_assert_int_eq(log_end_offset(t.l), 300);
	/* the log start offset survives a reopen */
	start = log_start_offset(t.l);
	t_close(&t);
	t_open(&t);
	ck_assert_int_eq(log_start_offset(t.l), start);
	ck_assert_int_eq(log_end_offset(t.l), 300);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_rolls_by_time)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_ms = 1000;
	t.cfg.retention_ms = -1;
	t_open(&t);
	t_append(&t, 1, 10000);
	t_append(&t, 1, 10500);
	ck_assert_int_eq(log_segment_count(t.l), 1);
	t_append(&t, 1, 11001); /* more than segment_ms after the first batch */
	ck_assert_int_eq(log_segment_count(t.l), 2);
	/* the periodic call rolls an idle active segment */
	ck_assert_int_ge(log_enforce_retention(t.l, t.now + 5000), 0);
	ck_assert_int_eq(log_segment_count(t.l), 3);
	ck_assert_int_eq(t_append(&t, 1, 11002), 3);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_delete_records)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	t_open(&t);
	for (int i = 0; i < 50; i++)
		t_append(&t, 2, t.now);
	int segs = log_segment_count(t.l);
	ck_assert_int_eq(log_delete_records(t.l, 61), 0);
	ck_assert_int_eq(log_start_offset(t.l), 61);
	ck_assert_int_lt(log_segment_count(t.l), segs);
	struct t_read r;
	t_read(&t, 60, 100, 1000, &r);
	ck_assert_int_eq(r.err, -ERANGE);
	t_read(&t, 61, 100, 1, &r);
	ck_assert_int_eq(r.err, 0);
	int64_t first, last;
	ck_assert_int_eq(t_batches(r.data, r.len, &first, &last), 1);
	ck_assert_int_eq(first, 60); /* the batch holding 61 */
	free(r.data);
	ck_assert_int_eq(log_delete_records(t.l, 101), -ERANGE);
	t_close(&t);
	t_open(&t);
	ck_assert_int_eq(log_start_offset(t.l), 61);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_truncate_to)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	t_open(&t);
	for (int i = 0; i < 60; i++)
		t_append(&t, 2, 1000 + i);
	int segs = log_segment_count(t.l);
	ck_assert_int_eq(log_assign_epoch(t.l, 3, 80), 0);
	/* offset 41 is inside batch 40..41: the batch goes whole */
	ck_assert_int_eq(log_truncate_to(t.l, 41), 0);
	ck_assert_int_eq(log_end_offset(t.l), 40);
	ck_assert_int_lt(log_segment_count(t.l), segs);
	ck_assert_int_eq(log_latest_epoch(t.l), 0);
	ck_assert_int_eq(t_read_all(&t, 0, 500), 40);
	ck_assert_int_eq(t_append(&t, 2, 5000), 40);
	int64_t mts, moff;
	log_max_timestamp(t.l, &mts, &moff);
	ck_assert_int_eq(mts, 5001);
	t_close(&t);
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 42);
	ck_assert_int_eq(t_read_all(&t, 0, 500), 42);
	/* truncating fully restarts the log at an offset */
	ck_assert_int_eq(log_truncate_fully_and_start_at(t.l, 1000), 0);
	ck_assert_int_eq(log_start_offset(t.l), 1000);
	ck_assert_int_eq(log_end_offset(t.l), 1000);
	ck_assert_int_eq(log_segment_count(t.l), 1);
	ck_assert_int_eq(t_append(&t, 1, 1), 1000);
	ck_assert(t_exists(&t, "00000000000000001000.log"));
	t_close(&t);
	t_open(&t);
	ck_assert_int_eq(log_start_offset(t.l), 1000);
	ck_assert_int_eq(log_end_offset(t.l), 1001);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_leader_epochs)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	int32_t e;
	int64_t off;
	ck_assert_int_eq(log_end_offset_for_epoch(t.l, 0, &e, &off), 0);
	ck_assert_int_eq(e, -1);
	ck_assert_int_eq(off, -1);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(5, 1);
	sth_build_batch(&w, &s);
	ck_assert_int_eq(t_append_raw(&t, w.buf, w.len, 1, -1, NULL), 0); /* 0..4 epoch 1 */
	ck_assert_int_eq(t_append_raw(&t, w.buf, w.len, 1, -1, NULL), 0); /* 5..9 epoch 1 */
	ck_assert_int_eq(t_append_raw(&t, w.buf, w.len, 3, -1, NULL), 0); /* 10..14 epoch 3 */
	ck_assert_int_eq(t_append_raw(&t, w.buf, w.len, 4, -1, NULL), 0); /* 15..19 epoch 4 */
	wbuf_deinit(&w);
	ck_assert_int_eq(log_latest_epoch(t.l), 4);
	log_end_offset_for_epoch(t.l, 4, &e, &off); /* latest: LEO */
	ck_assert_int_eq(e, 4);
	ck_assert_int_eq(off, 20);
	log_end_offset_for_epoch(t.l, 1, &e, &off);
	ck_assert_int_eq(e, 1);
	ck_assert_int_eq(off, 10);
	log_end_offset_for_epoch(t.l, 2, &e, &off); /* unknown, between: floor epoch */
	ck_assert_int_eq(e, 1);
	ck_assert_int_eq(off, 10);
	log_end_offset_for_epoch(t.l, 0, &e, &off); /* below the first */
	ck_assert_int_eq(e, 0);
	ck_assert_int_eq(off, 0);
	log_end_offset_for_epoch(t.l, 9, &e, &off); /* beyond */
	ck_assert_int_eq(e, -1);
	ck_assert_int_eq(off, -1);
	/* Kafka's text format on disk */
	t_close(&t);
	char p[512], buf[256] = { 0 };
	snprintf(p, sizeof(p), "%s/leader-epoch-checkpoint", t.dir);
	FILE *f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	ck_assert_uint_gt(n, 0);
	ck_assert_str_eq(buf, "0\n3\n1 0\n3 10\n4 15\n");
	t_open(&t);
	log_end_offset_for_epoch(t.l, 3, &e, &off);
	ck_assert_int_eq(e, 3);
	ck_assert_int_eq(off, 15);
	/* explicit assignment for a new leader term */
	ck_assert_int_eq(log_assign_epoch(t.l, 6, 20), 0);
	ck_assert_int_eq(log_latest_epoch(t.l), 6);
	log_end_offset_for_epoch(t.l, 4, &e, &off);
	ck_assert_int_eq(off, 20);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_topic_id_in_partition_metadata)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	uint8_t id[16], back[16];
	for (int i = 0; i < 16; i++)
		id[i] = (uint8_t)(i * 17 + 3);
	ck_assert_int_eq(log_read_topic_id(t.l, back), -ENOENT);
	ck_assert_int_eq(log_write_topic_id(t.l, id), 0);
	ck_assert_int_eq(log_read_topic_id(t.l, back), 0);
	ck_assert_mem_eq(id, back, 16);
	char text[23];
	log_uuid_to_base64(id, text);
	ck_assert_uint_eq(strlen(text), 22);
	/* Kafka's Uuid.toString of the same bytes */
	uint8_t known[16] = { 0x4e, 0x9a, 0x1c, 0x05, 0x6b, 0x3c, 0x4d, 0x2e,
			      0x8f, 0x10, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
	log_uuid_to_base64(known, text);
	ck_assert_str_eq(text, "TpocBWs8TS6PEKq7zN3u_w");
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_delete_removes_directory)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	t_open(&t);
	for (int i = 0; i < 30; i++)
		t_append(&t, 2, t.now);
	ck_assert_int_eq(log_delete(t.l), 0);
	t.l = NULL;
	ck_assert_int_ne(access(t.dir, F_OK), 0);
	t_teardown(&t);
}
END_TEST

static void many_cb(void *arg, int err)
{
	int *order = arg;
	ck_assert_int_eq(err, 0);
	(*order)++;
}

START_TEST(test_log_concurrent_appends_group_commit)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.flush_interval_messages = 1;
	t.cfg.segment_bytes = 4096;
	t_open(&t);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(2, 1);
	sth_build_batch(&w, &s);
	int done = 0;
	struct log_append_result res;
	for (int i = 0; i < 200; i++) {
		ck_assert_int_eq(log_append(t.l, w.buf, w.len, 0, -1, t.now, &res, many_cb, &done), 0);
		ck_assert_int_eq(res.base_offset, i * 2);
	}
	wbuf_deinit(&w);
	ck_assert_int_eq(log_end_offset(t.l), 400);
	sth_drain(t.io);
	ck_assert_int_eq(done, 200);
	ck_assert_int_eq(log_written_offset(t.l), 400);
	ck_assert_int_eq(log_flushed_offset(t.l), 400);
	ck_assert_int_eq(t_read_all(&t, 0, 4096), 400);
	t_teardown(&t);
}
END_TEST

/* log_append_replica copies: the caller may reuse its bytes at once.  The
 * _inplace variant writes from the caller's bytes (held until the callback)
 * and never changes them; the file ends up byte for byte the same. */
START_TEST(test_log_replica_append_inplace_writes_the_callers_bytes)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(4, 100);
	sth_build_batch(&w, &s);
	size_t first = w.len;
	sth_build_batch(&w, &s);
	tm_store_be64(w.buf + first, 4);
	uint8_t *orig = malloc(w.len);
	ck_assert_ptr_nonnull(orig);
	memcpy(orig, w.buf, w.len);
	struct t_app a = { 0 };
	/* copying append of the first batch, then its bytes are scribbled on */
	ck_assert_int_eq(log_append_replica(t.l, w.buf, first, t.now, t_app_cb, &a), 0);
	memset(w.buf, 0xee, first);
	ck_assert(sth_run_until(t.io, &a.done));
	ck_assert_int_eq(a.err, 0);
	/* in place: the second batch is written from w.buf itself */
	struct t_app b = { 0 };
	ck_assert_int_eq(log_append_replica_inplace(t.l, w.buf + first, w.len - first, t.now, t_app_cb, &b), 0);
	ck_assert_mem_eq(w.buf + first, orig + first, w.len - first); /* untouched */
	ck_assert_int_eq(log_end_offset(t.l), 8);
	ck_assert(sth_run_until(t.io, &b.done));
	ck_assert_int_eq(b.err, 0);
	ck_assert_int_eq(log_written_offset(t.l), 8);
	wbuf_deinit(&w);
	struct t_read r;
	t_read(&t, 0, 8, 1 << 20, &r);
	ck_assert_uint_eq(r.len, first * 2);
	ck_assert_mem_eq(r.data, orig, first * 2);
	free(r.data);
	free(orig);
	/* offsets that do not continue the log are refused in place too */
	uint8_t again[4096];
	ck_assert_uint_le(first, sizeof(again));
	struct t_read r2;
	t_read(&t, 4, 8, 1 << 20, &r2);
	memcpy(again, r2.data, first);
	free(r2.data);
	ck_assert_int_eq(log_append_replica_inplace(t.l, again, first, t.now, t_app_cb, &b), -EINVAL);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_replica_append_keeps_leader_offsets)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	/* a leader's batches: offsets 0..2 epoch 5, 3..4 epoch 6 */
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(3, 10);
	sth_build_batch(&w, &s);
	size_t first = w.len;
	s.nrecords = 2;
	sth_build_batch(&w, &s);
	tm_store_be32(w.buf + 12, 5);
	tm_store_be64(w.buf + first, 3);
	tm_store_be32(w.buf + first + 12, 6);
	struct t_app a = { 0 };
	ck_assert_int_eq(log_append_replica(t.l, w.buf, w.len, t.now, t_app_cb, &a), 0);
	ck_assert(sth_run_until(t.io, &a.done));
	ck_assert_int_eq(a.err, 0);
	ck_assert_int_eq(log_end_offset(t.l), 5);
	ck_assert_int_eq(log_latest_epoch(t.l), 6);
	int32_t e;
	int64_t off;
	log_end_offset_for_epoch(t.l, 5, &e, &off);
	ck_assert_int_eq(off, 3);
	/* a batch that does not start at LEO is refused */
	ck_assert_int_eq(log_append_replica(t.l, w.buf, first, t.now, t_app_cb, &a), -EINVAL);
	wbuf_deinit(&w);
	struct t_read r;
	t_read(&t, 3, 5, 1 << 20, &r);
	struct sbatch_hdr h;
	ck_assert_int_eq(sbatch_parse(r.data, r.len, &h), 0);
	ck_assert_int_eq(h.base_offset, 3);
	ck_assert_int_eq(h.leader_epoch, 6);
	free(r.data);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_flush_policy_moves_the_recovery_point)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.flush_interval_messages = 10;
	t_open(&t);
	for (int i = 0; i < 4; i++)
		t_append(&t, 2, 1); /* 8 messages: no fsync yet */
	ck_assert_int_eq(log_written_offset(t.l), 8);
	ck_assert_int_eq(log_flushed_offset(t.l), 0);
	t_append(&t, 2, 1); /* the 10th message asks for one */
	ck_assert_int_eq(log_flushed_offset(t.l), 10);
	t_append(&t, 1, 1);
	ck_assert_int_eq(log_flushed_offset(t.l), 10);
	struct t_app a = { 0 };
	ck_assert_int_eq(log_flush(t.l, t_app_cb, &a), 0);
	ck_assert(sth_run_until(t.io, &a.done));
	ck_assert_int_eq(log_flushed_offset(t.l), 11);
	/* by time, from the periodic call */
	struct log_config c = t.cfg;
	c.flush_interval_messages = INT64_MAX;
	c.flush_interval_ms = 1000;
	log_set_config(t.l, &c);
	t_append(&t, 1, 1);
	ck_assert_int_eq(log_flushed_offset(t.l), 11);
	ck_assert_int_ge(log_enforce_retention(t.l, t.now + 5000), 0);
	sth_drain(t.io);
	ck_assert_int_eq(log_flushed_offset(t.l), 12);
	t_teardown(&t);
}
END_TEST

/* A rolled segment's fsync runs beside the next segment's writes; the
 * flushed offset moves past a rolled segment only once its fsync is done. */
START_TEST(test_log_rolled_segments_are_flushed_beside_later_appends)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 2048;
	t_open(&t);
	for (int i = 0; i < 40; i++)
		t_append(&t, 4, 1); /* several rolls, no flush policy */
	sth_drain(t.io);
	int64_t flushed = log_flushed_offset(t.l);
	ck_assert_int_gt(flushed, 0);
	ck_assert_int_lt(flushed, 160);
	/* exactly the rolled segments: the active one starts there */
	char name[64];
	snprintf(name, sizeof(name), "%020lld.log", (long long)flushed);
	ck_assert_msg(t_exists(&t, name), "no segment starts at the flushed offset %lld",
		      (long long)flushed);
	/* a flush is answered once everything is durable, rolled segments too */
	for (int i = 0; i < 10; i++)
		t_append(&t, 4, 1);
	struct t_app a = { 0 };
	ck_assert_int_eq(log_flush(t.l, t_app_cb, &a), 0);
	ck_assert(sth_run_until(t.io, &a.done));
	ck_assert_int_eq(a.err, 0);
	ck_assert_int_eq(log_flushed_offset(t.l), 200);
	t_teardown(&t);

	/* an fsync per append (the metadata log): each append's answer already
	 * sees itself flushed, rolls or not */
	t_setup(&t);
	t.cfg.segment_bytes = 2048;
	t.cfg.flush_interval_messages = 1;
	t_open(&t);
	for (int i = 0; i < 40; i++) {
		t_append(&t, 4, 1);
		ck_assert_int_eq(log_flushed_offset(t.l), 4 * (i + 1));
	}
	sth_drain(t.io);
	ck_assert_int_eq(log_flushed_offset(t.l), 160);
	t_reopen_expect(&t, 160);
	t_teardown(&t);
}
END_TEST

struct flush_seen {
	struct log *l;
	bool done;
	int err;
	int64_t flushed; /* log_flushed_offset when the callback ran */
};

static void flush_seen_cb(void *arg, int err)
{
	struct flush_seen *f = arg;
	f->done = true;
	f->err = err;
	f->flushed = log_flushed_offset(f->l);
}

/* A flush answered while a large rolled segment is still being fsynced
 * (its 32 MiB take far longer than the small new segment's fsync) must wait
 * for it: the answer promises everything written so far is durable. */
START_TEST(test_log_flush_waits_for_a_rolled_segments_fsync)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 32 << 20;
	t_open(&t);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(16, 1);
	s.value_bytes = 64 << 10; /* 1 MiB a batch */
	sth_build_batch(&w, &s);
	for (int i = 0; i < 34; i++) /* rolls once, after 32 */
		ck_assert_int_eq(t_append_raw(&t, w.buf, w.len, 0, -1, NULL), 0);
	wbuf_deinit(&w);
	t_append(&t, 1, 1);
	int64_t leo = log_end_offset(t.l);
	struct flush_seen f = { .l = t.l };
	ck_assert_int_eq(log_flush(t.l, flush_seen_cb, &f), 0);
	ck_assert(sth_run_until(t.io, &f.done));
	ck_assert_int_eq(f.err, 0);
	ck_assert_int_eq(f.flushed, leo);
	t_teardown(&t);
}
END_TEST

struct nest {
	struct log *other;
	bool done;
	int err;
};

static void nest_cb(void *arg, int err)
{
	struct nest *n = arg;
	ck_assert_int_eq(err, 0);
	n->err = log_truncate_to(n->other, 2); /* waits on the ring from a callback */
	n->done = true;
}

START_TEST(test_log_truncate_from_another_logs_callback)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	struct log *b;
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/other-0", t.root);
	ck_assert_int_eq(log_open(t.io, dir, &t.cfg, t.now, &b), 0);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(1, 1);
	sth_build_batch(&w, &s);
	struct log_append_result res;
	struct t_app ab[4] = { 0 };
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(log_append(b, w.buf, w.len, 0, -1, t.now, &res, t_app_cb, &ab[i]), 0);
	struct nest n = { .other = b };
	ck_assert_int_eq(log_append(t.l, w.buf, w.len, 0, -1, t.now, &res, nest_cb, &n), 0);
	wbuf_deinit(&w);
	ck_assert(sth_run_until(t.io, &n.done));
	ck_assert_int_eq(n.err, 0);
	sth_drain(t.io);
	for (int i = 0; i < 4; i++)
		ck_assert(ab[i].done);
	ck_assert_int_eq(log_end_offset(b), 2);
	log_close(b);
	t_teardown(&t);
}
END_TEST

struct inplace_app {
	struct t_app a;
	uint8_t *buf; /* the appended bytes, freed by the test once a.done */
	size_t len;
};

/* log_append_inplace writes the caller's own bytes: they come back stamped
 * (offsets, leader epoch, LogAppendTime, CRC), and a read returns exactly
 * them; several appends from separate buffers are in flight at once, each
 * buffer released by the caller only after its own callback. */
START_TEST(test_log_append_inplace_writes_the_callers_stamped_bytes)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 2048; /* some appends roll a segment */
	t_open(&t);
	enum { N = 24 };
	struct inplace_app ap[N];
	int64_t expect_base = 0;
	for (int i = 0; i < N; i++) {
		struct tm_wbuf w;
		wbuf_init(&w);
		for (int k = 0; k < 1 + i % 3; k++) { /* one to three batches per append */
			struct sth_batch_spec s = sth_spec(1 + (i + k) % 4, 1000 + i);
			s.fill = (uint8_t)('a' + i);
			sth_build_batch(&w, &s);
		}
		memset(&ap[i], 0, sizeof(ap[i]));
		ap[i].buf = wbuf_steal(&w, &ap[i].len);
		struct log_append_result res;
		int64_t lat = i % 2 ? 5000 + i : -1;
		int rc = log_append_inplace(t.l, ap[i].buf, ap[i].len, 3, lat, t.now, &res, t_app_cb, &ap[i].a);
		ck_assert_msg(rc == 0, "append %d: %d", i, rc);
		ck_assert_int_eq(res.kerr, TM_ERR_NONE);
		ck_assert_int_eq(res.base_offset, expect_base);
		/* stamped at once, in the caller's memory */
		int64_t first, last;
		ck_assert_int_eq(t_batches(ap[i].buf, ap[i].len, &first, &last), 1 + i % 3);
		ck_assert_int_eq(first, expect_base);
		ck_assert_int_eq(last, res.last_offset);
		struct sbatch_hdr h;
		ck_assert_int_eq(sbatch_parse(ap[i].buf, ap[i].len, &h), 0);
		ck_assert_int_eq(h.leader_epoch, 3);
		if (lat >= 0) {
			ck_assert_int_eq(h.max_timestamp, lat);
			ck_assert(h.attributes & SBATCH_ATTR_LOG_APPEND_TIME);
		}
		expect_base = res.last_offset + 1;
	}
	ck_assert_int_gt(log_segment_count(t.l), 1);
	/* each buffer is released right after its own callback */
	for (int i = 0; i < N; i++) {
		ck_assert_msg(sth_run_until(t.io, &ap[i].a.done), "append %d: no callback", i);
		ck_assert_int_eq(ap[i].a.err, 0);
	}
	/* the file holds the stamped bytes of every append, in order */
	int64_t off = 0;
	for (int i = 0; i < N; i++) {
		struct t_read r;
		t_read(&t, off, expect_base, ap[i].len, &r);
		ck_assert_int_eq(r.err, 0);
		ck_assert_msg(r.len == ap[i].len && memcmp(r.data, ap[i].buf, r.len) == 0,
			      "append %d: read %zu bytes at offset %lld, appended %zu", i, r.len, (long long)off,
			      ap[i].len);
		int64_t first, last;
		t_batches(r.data, r.len, &first, &last);
		off = last + 1;
		free(r.data);
		free(ap[i].buf);
	}
	ck_assert_int_eq(off, expect_base);
	t_close(&t);
	t_open(&t); /* and after a reopen */
	ck_assert_int_eq(t_read_all(&t, 0, 4096), expect_base);
	t_teardown(&t);
}
END_TEST

/* A duplicate from an idempotent producer is answered with the original
 * offsets and leaves the caller's bytes as they were. */
START_TEST(test_log_append_inplace_duplicate_leaves_bytes_alone)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	t_append(&t, 2, 1);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(3, 7);
	s.producer_id = 77;
	s.producer_epoch = 0;
	s.base_seq = 0;
	sth_build_batch(&w, &s);
	uint8_t *orig = malloc(w.len);
	ck_assert_ptr_nonnull(orig);
	memcpy(orig, w.buf, w.len);
	struct log_append_result res;
	struct t_app a = { 0 };
	ck_assert_int_eq(log_append_inplace(t.l, w.buf, w.len, 0, -1, t.now, &res, t_app_cb, &a), 0);
	ck_assert(sth_run_until(t.io, &a.done));
	ck_assert_int_eq(res.base_offset, 2);
	memcpy(w.buf, orig, w.len); /* the producer retries the same batch */
	struct t_app b = { 0 };
	ck_assert_int_eq(log_append_inplace(t.l, w.buf, w.len, 0, -1, t.now, &res, t_app_cb, &b), 0);
	ck_assert(sth_run_until(t.io, &b.done));
	ck_assert_int_eq(b.err, 0);
	ck_assert(res.duplicate);
	ck_assert_int_eq(res.base_offset, 2);
	ck_assert_int_eq(res.last_offset, 4);
	ck_assert(memcmp(w.buf, orig, w.len) == 0);
	ck_assert_int_eq(log_end_offset(t.l), 5);
	free(orig);
	wbuf_deinit(&w);
	t_teardown(&t);
}
END_TEST

/* ---- log_read_range: where log_read's batches lie (zero-copy Fetch) ---- */

/* Descriptors this process has open: a test must end with as many as it
 * started with (every range's fd closed, nothing leaked by the log). */
static int t_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

/* The range's bytes, pread from its fd; NULL for an empty range. */
static uint8_t *t_range_bytes(const struct log_range *rg)
{
	if (rg->len == 0)
		return NULL;
	uint8_t *b = malloc(rg->len);
	ck_assert_ptr_nonnull(b);
	ssize_t got = pread(rg->fd, b, rg->len, rg->pos);
	ck_assert_msg(got == (ssize_t)rg->len, "pread(fd %d, %zu bytes at %lld) = %zd", rg->fd, rg->len,
		      (long long)rg->pos, got);
	return b;
}

static void t_range_close(struct log_range *rg)
{
	if (rg->fd >= 0)
		ck_assert_int_eq(close(rg->fd), 0);
	rg->fd = -1;
}

/* Appends one batch of n records with values of value_bytes; returns its
 * size in bytes. */
static size_t t_append_sized(struct tctx *t, int n, size_t value_bytes, uint8_t fill)
{
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(n, t->now);
	s.value_bytes = value_bytes;
	s.fill = fill;
	sth_build_batch(&w, &s);
	size_t size = w.len;
	struct log_append_result res;
	int err = t_append_raw(t, w.buf, w.len, 0, -1, &res);
	wbuf_deinit(&w);
	ck_assert_msg(err == 0, "append err %d", err);
	ck_assert_int_eq(res.kerr, TM_ERR_NONE);
	return size;
}

static uint32_t t_rand(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

/* One (offset, max_offset, max_bytes): log_read_range's bytes are whole
 * batches from the one holding offset, below max_offset, and a prefix of
 * log_read's answer, at most `slack` bytes shorter, empty only when it is. */
static void t_expect_range_matches_read(struct tctx *t, int64_t off, int64_t max_off, size_t max_bytes,
					size_t slack, uint32_t seed)
{
	struct t_read r;
	t_read(t, off, max_off, max_bytes, &r);
	ck_assert_msg(r.err == 0, "seed %u: log_read(%lld, %lld, %zu) = %d", seed, (long long)off,
		      (long long)max_off, max_bytes, r.err);
	struct log_range rg;
	int rc = log_read_range(t->l, off, max_off, max_bytes, &rg);
	ck_assert_msg(rc == 0, "seed %u: log_read_range(%lld, %lld, %zu) = %d", seed, (long long)off,
		      (long long)max_off, max_bytes, rc);
	if (r.len == 0) {
		ck_assert_msg(rg.len == 0 && rg.fd == -1,
			      "seed %u: log_read(%lld, %lld, %zu) is empty, the range %zu bytes (fd %d)", seed,
			      (long long)off, (long long)max_off, max_bytes, rg.len, rg.fd);
		return;
	}
	ck_assert_msg(rg.len > 0 && rg.fd >= 0,
		      "seed %u: log_read(%lld, %lld, %zu) has %zu bytes, the range none (fd %d)", seed,
		      (long long)off, (long long)max_off, max_bytes, r.len, rg.fd);
	struct stat st;
	ck_assert_int_eq(fstat(rg.fd, &st), 0);
	ck_assert_int_ge(rg.pos, 0);
	ck_assert_int_le(rg.pos + (int64_t)rg.len, st.st_size);
	uint8_t *b = t_range_bytes(&rg);
	ck_assert_msg(rg.len <= r.len && memcmp(b, r.data, rg.len) == 0,
		      "seed %u: range(%lld, %lld, %zu) = %zu bytes at %lld, not a prefix of log_read's %zu",
		      seed, (long long)off, (long long)max_off, max_bytes, rg.len, (long long)rg.pos, r.len);
	ck_assert_msg(r.len - rg.len <= slack,
		      "seed %u: range(%lld, %lld, %zu) = %zu bytes, log_read %zu: more than %zu short", seed,
		      (long long)off, (long long)max_off, max_bytes, rg.len, r.len, slack);
	int64_t first, last;
	t_batches_walk(b, rg.len, true, &first, &last); /* whole, CRC-valid, in order */
	struct sbatch_hdr h;
	ck_assert_int_eq(sbatch_parse(b, rg.len, &h), 0);
	/* the batch holding off, or the next one when off lies in a gap */
	ck_assert_msg(sbatch_last_offset(&h) >= off,
		      "seed %u: range(%lld, ...) starts with batch %lld..%lld", seed, (long long)off,
		      (long long)h.base_offset, (long long)sbatch_last_offset(&h));
	ck_assert_msg(last < max_off, "seed %u: range(%lld, %lld, ...) holds offset %lld", seed,
		      (long long)off, (long long)max_off, (long long)last);
	/* up to max_bytes, or exactly the first batch when that is larger (KIP-74) */
	size_t first_size = sbatch_total_size(&h);
	ck_assert_uint_le(rg.len, max_bytes > first_size ? max_bytes : first_size);
	free(b);
	free(r.data);
	t_range_close(&rg);
}

/* Fills the log with nbatches of seeded random sizes: tiny ones, medium
 * ones, and ones larger than an index interval.  With gaps, as a follower
 * would append them from a compacted leader: up to three batches a call
 * (while under 4 KiB), up to four offsets missing before each but the first.  Returns the largest
 * batch's size. */
static size_t t_fill_varied(struct tctx *t, uint32_t *seed, int nbatches, bool gaps)
{
	size_t batch_max = 0;
	for (int i = 0; i < nbatches;) {
		int in_call = gaps ? 1 + (int)(t_rand(seed) % 3) : 1;
		struct tm_wbuf w;
		wbuf_init(&w);
		int64_t next = log_end_offset(t->l);
		for (int k = 0; k < in_call && i < nbatches && w.len < 4096; k++, i++) {
			uint32_t kind = t_rand(seed) % 10;
			struct sth_batch_spec s = sth_spec(1 + (int)(t_rand(seed) % 4), t->now);
			s.value_bytes = kind < 4 ? 1 + t_rand(seed) % 16
				      : kind < 7 ? 100 + t_rand(seed) % 200 : 1100 + t_rand(seed) % 1200;
			s.fill = (uint8_t)('a' + i % 26);
			size_t at = w.len;
			sth_build_batch(&w, &s);
			if (k > 0)
				next += t_rand(seed) % 5;
			tm_store_be64(w.buf + at, (uint64_t)next);
			next += s.nrecords;
			if (w.len - at > batch_max)
				batch_max = w.len - at;
		}
		if (gaps) {
			struct t_app a = { 0 };
			ck_assert_int_eq(log_append_replica(t->l, w.buf, w.len, t->now, t_app_cb, &a), 0);
			ck_assert(sth_run_until(t->io, &a.done));
			ck_assert_int_eq(a.err, 0);
		} else {
			ck_assert_int_eq(t_append_raw(t, w.buf, w.len, 0, -1, NULL), 0);
		}
		ck_assert_int_eq(log_end_offset(t->l), next);
		wbuf_deinit(&w);
	}
	return batch_max;
}

START_TEST(test_log_read_range_matches_log_read)
{
	static const struct {
		int64_t segment_bytes;
		int32_t index_interval_bytes;
		bool gaps;
	} cfgs[] = {
		{ 16384, 1024, false },  /* many segments, batches up to ~10 KiB */
		{ 16384, 0, true },      /* every batch indexed, offset gaps */
		{ 1 << 20, 4096, true }, /* one segment, the default interval */
	};
	static const size_t max_bytes[] = { 0, 1, 500, 1023, 3000, 4096, 20000, 1 << 20 };
	int fds = t_count_fds();
	for (size_t ci = 0; ci < sizeof(cfgs) / sizeof(cfgs[0]); ci++) {
		const uint32_t seed0 = 0x7a11u + (uint32_t)ci;
		uint32_t seed = seed0;
		struct tctx t;
		t_setup(&t);
		t.cfg.segment_bytes = cfgs[ci].segment_bytes;
		t.cfg.index_interval_bytes = cfgs[ci].index_interval_bytes;
		t_open(&t);
		size_t batch_max = t_fill_varied(&t, &seed, 120, cfgs[ci].gaps);
		ck_assert_uint_gt(batch_max, 4096);
		if (cfgs[ci].segment_bytes < 20000)
			ck_assert_int_ge(log_segment_count(t.l), 8);
		int64_t leo = log_end_offset(t.l);
		/* one index interval plus a batch: where the range may stop short */
		size_t slack = (size_t)cfgs[ci].index_interval_bytes + batch_max;
		for (int pass = 0; pass < 2; pass++) { /* the index as built, then as loaded from disk */
			for (int64_t off = 0; off <= leo; off += 1 + 2 * pass) {
				for (size_t m = 0; m < sizeof(max_bytes) / sizeof(max_bytes[0]); m++)
					t_expect_range_matches_read(&t, off, leo, max_bytes[m], slack, seed0);
				/* a random high watermark and max_bytes */
				int64_t hw = off + (int64_t)(t_rand(&seed) % (uint32_t)(leo - off + 2));
				t_expect_range_matches_read(&t, off, hw, t_rand(&seed) % 40000, slack, seed0);
			}
			t_close(&t);
			t_open(&t);
		}
		t_teardown(&t);
	}
	ck_assert_int_eq(t_count_fds(), fds);
}
END_TEST

START_TEST(test_log_read_range_gives_a_first_batch_larger_than_max_bytes_whole)
{
	int fds = t_count_fds();
	struct tctx t;
	t_setup(&t);
	t.cfg.index_interval_bytes = 1024;
	t_open(&t);
	size_t small = t_append_sized(&t, 2, 10, 's');      /* offsets 0..1 */
	size_t big = t_append_sized(&t, 3, 3000, 'b');      /* 2..4, ~9 KiB */
	size_t small2 = t_append_sized(&t, 1, 10, 't');     /* 5 */
	ck_assert_uint_gt(big, 8000);
	static const size_t max_bytes[] = { 0, 1, 61, 100, 1024, 8000 };
	for (size_t m = 0; m < sizeof(max_bytes) / sizeof(max_bytes[0]); m++) {
		for (int64_t off = 2; off <= 4; off++) {
			struct log_range rg;
			ck_assert_int_eq(log_read_range(t.l, off, 6, max_bytes[m], &rg), 0);
			ck_assert_msg(rg.len == big, "offset %lld, max_bytes %zu: %zu bytes, the batch is %zu",
				      (long long)off, max_bytes[m], rg.len, big);
			ck_assert_int_eq(rg.pos, (int64_t)small);
			uint8_t *b = t_range_bytes(&rg);
			struct sbatch_hdr h;
			ck_assert_int_eq(sbatch_parse(b, rg.len, &h), 0);
			ck_assert_int_eq(h.base_offset, 2);
			ck_assert(sbatch_crc_ok(b, rg.len));
			free(b);
			t_range_close(&rg);
		}
	}
	/* the first batch and as many whole ones after it as fit */
	struct log_range rg;
	ck_assert_int_eq(log_read_range(t.l, 0, 6, small + big - 1, &rg), 0);
	ck_assert_uint_eq(rg.len, small);
	t_range_close(&rg);
	ck_assert_int_eq(log_read_range(t.l, 0, 6, small + big, &rg), 0);
	ck_assert_uint_eq(rg.len, small + big);
	t_range_close(&rg);
	ck_assert_int_eq(log_read_range(t.l, 0, 6, 1 << 20, &rg), 0);
	ck_assert_uint_eq(rg.len, small + big + small2);
	ck_assert_int_eq(rg.pos, 0);
	t_range_close(&rg);
	t_teardown(&t);
	ck_assert_int_eq(t_count_fds(), fds);
}
END_TEST

START_TEST(test_log_read_range_stops_below_the_high_watermark)
{
	int fds = t_count_fds();
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	size_t one = 0;
	for (int i = 0; i < 10; i++)
		one = t_append_sized(&t, 2, 16, 'h'); /* batches at 0,2,4,...,18 */
	struct log_range rg;
	/* high watermark 6: batches 0,2,4 only */
	ck_assert_int_eq(log_read_range(t.l, 0, 6, 1 << 20, &rg), 0);
	ck_assert_uint_eq(rg.len, 3 * one);
	ck_assert_int_eq(rg.pos, 0);
	t_range_close(&rg);
	/* HW inside a batch: that batch is not included */
	ck_assert_int_eq(log_read_range(t.l, 0, 5, 1 << 20, &rg), 0);
	ck_assert_uint_eq(rg.len, 2 * one);
	t_range_close(&rg);
	ck_assert_int_eq(log_read_range(t.l, 4, 5, 1 << 20, &rg), 0);
	ck_assert_uint_eq(rg.len, 0);
	ck_assert_int_eq(rg.fd, -1);
	/* at or above the HW (but within the log): nothing, no error */
	for (int64_t off = 6; off <= 20; off++) {
		ck_assert_int_eq(log_read_range(t.l, off, 6, 1 << 20, &rg), 0);
		ck_assert_msg(rg.len == 0 && rg.fd == -1, "offset %lld, HW 6: %zu bytes, fd %d",
			      (long long)off, rg.len, rg.fd);
	}
	/* a HW beyond LEO limits nothing */
	ck_assert_int_eq(log_read_range(t.l, 19, 100, 1 << 20, &rg), 0);
	ck_assert_uint_eq(rg.len, one);
	ck_assert_int_eq(rg.pos, 9 * (int64_t)one);
	t_range_close(&rg);
	t_teardown(&t);

	/* over segments: the HW in a later segment does not cut an earlier one,
	 * and in the same segment it does */
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	t.cfg.index_interval_bytes = 128;
	t_open(&t);
	for (int i = 0; i < 60; i++)
		one = t_append_sized(&t, 2, 16, 'g');
	ck_assert_int_ge(log_segment_count(t.l), 4);
	int64_t leo = log_end_offset(t.l);
	for (int64_t hw = 0; hw <= leo; hw++) {
		for (int64_t off = 0; off < leo; off += 3) {
			ck_assert_int_eq(log_read_range(t.l, off, hw, 1 << 20, &rg), 0);
			struct t_read r;
			t_read(&t, off, hw, 1 << 20, &r);
			ck_assert_int_eq(r.err, 0);
			/* 2-record batches of equal size: nothing to stop short on */
			ck_assert_msg(rg.len == r.len, "offset %lld, HW %lld: range %zu bytes, log_read %zu",
				      (long long)off, (long long)hw, rg.len, r.len);
			if (rg.len > 0) {
				uint8_t *b = t_range_bytes(&rg);
				int64_t first, last;
				t_batches(b, rg.len, &first, &last);
				ck_assert_int_lt(last, hw);
				ck_assert_int_eq(first, off & ~(int64_t)1);
				ck_assert(memcmp(b, r.data, rg.len) == 0);
				free(b);
			} else {
				ck_assert_int_eq(rg.fd, -1);
				ck_assert_int_ge(off | 1, hw); /* the batch holding off reaches the HW */
			}
			free(r.data);
			t_range_close(&rg);
		}
	}
	t_teardown(&t);
	ck_assert_int_eq(t_count_fds(), fds);
}
END_TEST

/* Batches appended but not yet in the file (LEO moved, "written" not) are
 * not part of a range; once written they are. */
START_TEST(test_log_read_range_leaves_out_batches_not_yet_written)
{
	int fds = t_count_fds();
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	size_t one = 0;
	for (int i = 0; i < 5; i++)
		one = t_append_sized(&t, 2, 16, 'w'); /* 0..9 */
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(2, t.now);
	sth_build_batch(&w, &s);
	struct log_append_result res;
	struct t_app a = { 0 };
	ck_assert_int_eq(log_append(t.l, w.buf, w.len, 0, -1, t.now, &res, t_app_cb, &a), 0);
	wbuf_deinit(&w);
	ck_assert_int_eq(res.base_offset, 10);
	ck_assert(!a.done);
	ck_assert_int_eq(log_end_offset(t.l), 12);
	ck_assert_int_eq(log_written_offset(t.l), 10);
	struct log_range rg;
	ck_assert_int_eq(log_read_range(t.l, 0, 100, 1 << 20, &rg), 0);
	ck_assert_uint_eq(rg.len, 5 * one);
	t_range_close(&rg);
	for (int64_t off = 10; off <= 12; off++) { /* below LEO: no error, nothing yet */
		ck_assert_int_eq(log_read_range(t.l, off, 100, 1 << 20, &rg), 0);
		ck_assert_uint_eq(rg.len, 0);
		ck_assert_int_eq(rg.fd, -1);
	}
	ck_assert(sth_run_until(t.io, &a.done));
	ck_assert_int_eq(a.err, 0);
	ck_assert_int_eq(log_read_range(t.l, 0, 100, 1 << 20, &rg), 0);
	ck_assert_uint_eq(rg.len, 6 * one);
	t_range_close(&rg);
	ck_assert_int_eq(log_read_range(t.l, 11, 100, 1 << 20, &rg), 0);
	ck_assert_uint_eq(rg.len, one);
	ck_assert_int_eq(rg.pos, 5 * (int64_t)one);
	t_range_close(&rg);
	t_teardown(&t);
	ck_assert_int_eq(t_count_fds(), fds);
}
END_TEST

START_TEST(test_log_read_range_outside_the_log_is_erange)
{
	int fds = t_count_fds();
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	t_open(&t);
	struct log_range rg;
	/* empty log: offset 0 is LEO */
	ck_assert_int_eq(log_read_range(t.l, 0, 100, 1 << 20, &rg), 0);
	ck_assert_uint_eq(rg.len, 0);
	ck_assert_int_eq(rg.fd, -1);
	ck_assert_int_eq(log_read_range(t.l, 1, 100, 1 << 20, &rg), -ERANGE);
	ck_assert_int_eq(rg.fd, -1);
	ck_assert_int_eq(log_read_range(t.l, -1, 100, 1 << 20, &rg), -ERANGE);
	ck_assert_int_eq(rg.fd, -1);
	for (int i = 0; i < 50; i++)
		t_append(&t, 2, t.now); /* 0..99 */
	ck_assert_int_eq(log_delete_records(t.l, 61), 0);
	ck_assert_int_eq(log_start_offset(t.l), 61);
	static const int64_t outside[] = { -1, 0, 59, 60, 101, 102, INT64_MAX };
	for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
		struct t_read r;
		t_read(&t, outside[i], 1000, 1000, &r);
		ck_assert_int_eq(r.err, -ERANGE);
		rg.fd = 12345;
		int rc = log_read_range(t.l, outside[i], 1000, 1000, &rg);
		ck_assert_msg(rc == -ERANGE && rg.fd == -1 && rg.len == 0,
			      "offset %lld (log 61..100): %d, fd %d, %zu bytes", (long long)outside[i], rc,
			      rg.fd, rg.len);
	}
	/* the log start, inside batch 60..61: the batch from its start */
	ck_assert_int_eq(log_read_range(t.l, 61, 1000, 1, &rg), 0);
	uint8_t *b = t_range_bytes(&rg);
	int64_t first, last;
	ck_assert_int_eq(t_batches(b, rg.len, &first, &last), 1);
	ck_assert_int_eq(first, 60);
	free(b);
	t_range_close(&rg);
	/* LEO: nothing, no error, also with the HW above it */
	ck_assert_int_eq(log_read_range(t.l, 100, 1000, 1000, &rg), 0);
	ck_assert_uint_eq(rg.len, 0);
	ck_assert_int_eq(rg.fd, -1);
	ck_assert_int_eq(log_read_range(NULL, 0, 1000, 1000, &rg), -EINVAL);
	t_teardown(&t);
	ck_assert_int_eq(t_count_fds(), fds);
}
END_TEST

/* The range's fd is a dup: when the log deletes the segment (DeleteRecords,
 * retention, deleting the partition) the bytes stay readable through it. */
START_TEST(test_log_read_range_fd_outlives_the_deleted_segment)
{
	int fds = t_count_fds();
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	t.cfg.retention_ms = -1;
	t_open(&t);
	for (int i = 0; i < 60; i++)
		t_append(&t, 2, t.now); /* 0..119, many segments */
	ck_assert_int_ge(log_segment_count(t.l), 6);
	struct log_range rg[3];
	uint8_t *want[3];
	int64_t first, last;

	/* DeleteRecords past the first segments */
	ck_assert_int_eq(log_read_range(t.l, 0, 1000, 1 << 20, &rg[0]), 0);
	want[0] = t_range_bytes(&rg[0]);
	ck_assert_int_gt(t_batches(want[0], rg[0].len, &first, &last), 1);
	ck_assert_int_eq(first, 0);
	ck_assert_int_eq(log_delete_records(t.l, last + 5), 0);
	ck_assert(!t_exists(&t, "00000000000000000000.log"));

	/* retention by size: every segment but the active one */
	int64_t start = log_start_offset(t.l);
	ck_assert_int_eq(log_read_range(t.l, start, 1000, 1 << 20, &rg[1]), 0);
	want[1] = t_range_bytes(&rg[1]);
	struct log_config c = t.cfg;
	c.retention_bytes = 1;
	log_set_config(t.l, &c);
	ck_assert_int_gt(log_enforce_retention(t.l, t.now), 0);
	ck_assert_int_eq(log_segment_count(t.l), 1);
	ck_assert_int_gt(log_start_offset(t.l), start);

	/* the whole partition */
	start = log_start_offset(t.l);
	ck_assert_int_eq(log_read_range(t.l, start, 1000, 1 << 20, &rg[2]), 0);
	want[2] = t_range_bytes(&rg[2]);
	ck_assert_int_eq(log_delete(t.l), 0);
	t.l = NULL;
	ck_assert_int_ne(access(t.dir, F_OK), 0);

	for (int i = 0; i < 3; i++) {
		struct stat st;
		ck_assert_int_eq(fstat(rg[i].fd, &st), 0);
		ck_assert_msg(st.st_nlink == 0, "range %d: its file still has %lu links", i,
			      (unsigned long)st.st_nlink);
		uint8_t *b = t_range_bytes(&rg[i]);
		ck_assert_msg(memcmp(b, want[i], rg[i].len) == 0, "range %d: bytes changed", i);
		ck_assert_int_gt(t_batches(b, rg[i].len, &first, &last), 0);
		free(b);
		free(want[i]);
		t_range_close(&rg[i]);
	}
	t_teardown(&t);
	ck_assert_int_eq(t_count_fds(), fds);
}
END_TEST

/* Pages of fd in [pos, pos + len) that are in the page cache, by mincore
 * (which, unlike a RWF_NOWAIT read, starts no readahead). */
static size_t t_pages_cached(int fd, int64_t pos, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	int64_t from = pos / page * page;
	size_t span = (size_t)(pos + (int64_t)len - from);
	void *m = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, from);
	ck_assert(m != MAP_FAILED);
	size_t n = (span + (size_t)page - 1) / (size_t)page, in = 0;
	unsigned char *vec = malloc(n);
	ck_assert_ptr_nonnull(vec);
	ck_assert_int_eq(mincore(m, span, vec), 0);
	for (size_t i = 0; i < n; i++)
		in += vec[i] & 1;
	free(vec);
	munmap(m, span);
	return in;
}

/* Drops [pos, pos + len) of fd from the page cache; false when the kernel
 * keeps it anyway. */
static bool t_drop_pages(int fd, int64_t pos, size_t len)
{
	ck_assert_int_eq(posix_fadvise(fd, pos, (off_t)len, POSIX_FADV_DONTNEED), 0);
	return t_pages_cached(fd, pos, len) == 0;
}

START_TEST(test_log_read_range_reports_whether_pages_are_cached)
{
	int fds = t_count_fds();
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	for (int i = 0; i < 8; i++)
		t_append_sized(&t, 4, 1000, 'c'); /* ~4 KiB a batch, 32 KiB in all */
	struct log_range rg;
	ck_assert_int_eq(log_read_range(t.l, 0, 100, 1 << 20, &rg), 0);
	ck_assert_uint_gt(rg.len, 8 * 4000);
	ck_assert_msg(rg.cached, "just appended, yet not in the page cache");
	long page = sysconf(_SC_PAGESIZE);
	/* No readahead on this file (the fd shares the log's open file): the
	 * batch headers log_read_range preads would otherwise pull in the very
	 * pages it then probes, now or a moment later, and the answer would
	 * depend on timing. */
	ck_assert_int_eq(posix_fadvise(rg.fd, 0, 0, POSIX_FADV_RANDOM), 0);
	/* durable first: only clean pages can be dropped */
	struct t_app a = { 0 };
	ck_assert_int_eq(log_flush(t.l, t_app_cb, &a), 0);
	ck_assert(sth_run_until(t.io, &a.done));
	ck_assert_int_eq(a.err, 0);
	if (!t_drop_pages(rg.fd, rg.pos, rg.len)) {
		fprintf(stderr, "test_log_read_range_reports_whether_pages_are_cached: the page cache "
				"keeps the segment after POSIX_FADV_DONTNEED here; cold part skipped\n");
		t_range_close(&rg);
		t_teardown(&t);
		ck_assert_int_eq(t_count_fds(), fds);
		return;
	}
	struct log_range cold;
	ck_assert_int_eq(log_read_range(t.l, 0, 100, 1 << 20, &cold), 0);
	/* headers past the index entry are read only from the cache: the
	 * range may end sooner, and is still not cached */
	ck_assert_uint_gt(cold.len, 0);
	ck_assert_uint_le(cold.len, rg.len);
	ck_assert_msg(!cold.cached, "dropped from the page cache, yet reported cached");
	t_range_close(&cold);
	/* a read through the ring brings them back */
	struct t_read r;
	t_read(&t, 0, 100, 1 << 20, &r);
	ck_assert_uint_eq(r.len, rg.len);
	free(r.data);
	ck_assert_uint_eq(t_pages_cached(rg.fd, rg.pos, rg.len), (rg.len + (size_t)page - 1) / (size_t)page);
	ck_assert_int_eq(log_read_range(t.l, 0, 100, 1 << 20, &cold), 0);
	ck_assert(cold.cached);
	t_range_close(&cold);
	/* the far end counts too: only the last page gone */
	int64_t end = rg.pos + (int64_t)rg.len;
	int64_t last_page = (end - 1) / page * page;
	ck_assert(t_drop_pages(rg.fd, last_page, (size_t)page)); /* whole pages only */
	ck_assert_uint_gt(t_pages_cached(rg.fd, rg.pos, (size_t)page), 0);
	ck_assert_int_eq(log_read_range(t.l, 0, 100, 1 << 20, &cold), 0);
	ck_assert_msg(!cold.cached, "last page dropped, yet reported cached");
	t_range_close(&cold);
	t_range_close(&rg);
	t_teardown(&t);
	ck_assert_int_eq(t_count_fds(), fds);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("storage");
	TCase *tc = tcase_create("log");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_log_round_trip_across_segments);
	tcase_add_test(tc, test_log_files_named_like_kafka);
	tcase_add_test(tc, test_log_index_finds_offset_in_the_middle);
	tcase_add_test(tc, test_log_read_limits_hw_and_max_bytes);
	tcase_add_test(tc, test_log_offset_for_timestamp);
	tcase_add_test(tc, test_log_append_time_and_leader_epoch_are_stamped);
	tcase_add_test(tc, test_log_reopen_after_clean_close_keeps_everything);
	tcase_add_test(tc, test_log_retention_by_size_and_time);
	tcase_add_test(tc, test_log_rolls_by_time);
	tcase_add_test(tc, test_log_rolled_segments_are_flushed_beside_later_appends);
	tcase_add_test(tc, test_log_flush_waits_for_a_rolled_segments_fsync);
	tcase_add_test(tc, test_log_delete_records);
	tcase_add_test(tc, test_log_truncate_to);
	tcase_add_test(tc, test_log_leader_epochs);
	tcase_add_test(tc, test_log_topic_id_in_partition_metadata);
	tcase_add_test(tc, test_log_delete_removes_directory);
	tcase_add_test(tc, test_log_concurrent_appends_group_commit);
	tcase_add_test(tc, test_log_replica_append_keeps_leader_offsets);
	tcase_add_test(tc, test_log_replica_append_inplace_writes_the_callers_bytes);
	tcase_add_test(tc, test_log_flush_policy_moves_the_recovery_point);
	tcase_add_test(tc, test_log_truncate_from_another_logs_callback);
	tcase_add_test(tc, test_log_append_inplace_writes_the_callers_stamped_bytes);
	tcase_add_test(tc, test_log_append_inplace_duplicate_leaves_bytes_alone);
	suite_add_tcase(s, tc);
	TCase *tr = tcase_create("read_range");
	tcase_set_timeout(tr, 60);
	tcase_add_test(tr, test_log_read_range_matches_log_read);
	tcase_add_test(tr, test_log_read_range_gives_a_first_batch_larger_than_max_bytes_whole);
	tcase_add_test(tr, test_log_read_range_stops_below_the_high_watermark);
	tcase_add_test(tr, test_log_read_range_leaves_out_batches_not_yet_written);
	tcase_add_test(tr, test_log_read_range_outside_the_log_is_erange);
	tcase_add_test(tr, test_log_read_range_fd_outlives_the_deleted_segment);
	tcase_add_test(tr, test_log_read_range_reports_whether_pages_are_cached);
	suite_add_tcase(s, tr);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
