/*
 * test_storage.c — the partition log's everyday behaviour: append and read
 * back across segments, index lookups, fetch limits (high watermark,
 * max_bytes, KIP-74), timestamps, roll, retention, DeleteRecords,
 * truncation, clean reopen, leader epochs, topic id, Kafka's file names.
 */
#include "tests/unit/test_storage_common.h"

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
	tcase_add_test(tc, test_log_flush_policy_moves_the_recovery_point);
	tcase_add_test(tc, test_log_truncate_from_another_logs_callback);
	tcase_add_test(tc, test_log_append_inplace_writes_the_callers_stamped_bytes);
	tcase_add_test(tc, test_log_append_inplace_duplicate_leaves_bytes_alone);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
