/*
 * test_storage_recovery.c — restart after a crash: a child process appends
 * and exits without closing the log, the test damages the files the way a
 * power cut or a bad disk would, and the reopened log must keep every whole
 * batch before the damage, drop the rest, keep offsets contiguous, and
 * rebuild its indexes.
 */
#include "tests/unit/test_storage_common.h"

struct fill {
	int batches;
	int records;
};

static void child_fill(struct tctx *t, void *arg)
{
	struct fill *f = arg;
	for (int i = 0; i < f->batches; i++)
		t_append(t, f->records, 1000 + i);
}

/* Size of the last batch of the (only or last) segment file. */
static off_t last_batch_size(struct tctx *t, const char *name)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", t->dir, name);
	FILE *fp = fopen(p, "rb");
	ck_assert_ptr_nonnull(fp);
	uint8_t hdr[12];
	off_t pos = 0, last = 0;
	while (fseeko(fp, pos, SEEK_SET) == 0 && fread(hdr, 1, 12, fp) == 12) {
		last = 12 + (off_t)tm_load_be32(hdr + 8);
		pos += last;
	}
	fclose(fp);
	return last;
}

START_TEST(test_log_recovers_torn_tail)
{
	struct tctx t;
	t_setup(&t);
	struct fill f = { 20, 3 };
	t_crash_after(&t, child_fill, &f);
	const char *seg = "00000000000000000000.log";
	ck_assert(!t_exists(&t, ".tidemark_cleanshutdown"));
	off_t size = t_file_size(&t, seg), last = last_batch_size(&t, seg);
	t_set_size(&t, seg, size - last / 2); /* the last write was torn */
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 57);
	ck_assert_int_eq(t_file_size(&t, seg), size - last);
	ck_assert_int_eq(t_read_all(&t, 0, 500), 57);
	ck_assert_int_eq(t_append(&t, 1, 5), 57); /* contiguous */
	t_close(&t);
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 58);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_recovers_from_garbage_after_tail)
{
	struct tctx t;
	t_setup(&t);
	struct fill f = { 20, 3 };
	t_crash_after(&t, child_fill, &f);
	const char *seg = "00000000000000000000.log";
	off_t size = t_file_size(&t, seg);
	uint8_t junk[100];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	t_poke(&t, seg, size, junk, sizeof(junk));
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 60);
	ck_assert_int_eq(t_file_size(&t, seg), size);
	ck_assert_int_eq(t_append(&t, 2, 5), 60);
	ck_assert_int_eq(t_read_all(&t, 0, 700), 62);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_recovers_from_crc_mismatch)
{
	struct tctx t;
	t_setup(&t);
	struct fill f = { 20, 3 };
	t_crash_after(&t, child_fill, &f);
	const char *seg = "00000000000000000000.log";
	off_t size = t_file_size(&t, seg), last = last_batch_size(&t, seg);
	uint8_t flip;
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", t.dir, seg);
	int fd = open(p, O_RDWR);
	ck_assert_int_eq(pread(fd, &flip, 1, size - 5), 1);
	close(fd);
	flip ^= 0x40; /* a bit flipped inside the last batch's records */
	t_poke(&t, seg, size - 5, &flip, 1);
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 57);
	ck_assert_int_eq(t_file_size(&t, seg), size - last);
	ck_assert_int_eq(t_append(&t, 3, 5), 57);
	ck_assert_int_eq(t_read_all(&t, 0, 10000), 60);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_recovery_drops_segments_after_corruption)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	struct fill f = { 60, 3 };
	t_crash_after(&t, child_fill, &f);
	/* corrupt the first batch of the second segment */
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 180);
	int segs = log_segment_count(t.l);
	ck_assert_int_gt(segs, 3);
	t_close(&t);
	/* find the second segment's base by listing */
	struct t_read r;
	(void)r;
	char name[64];
	int64_t second = -1;
	for (int64_t b = 1; b < 180 && second < 0; b++) {
		snprintf(name, sizeof(name), "%020lld.log", (long long)b);
		if (t_exists(&t, name))
			second = b;
	}
	ck_assert_int_gt(second, 0);
	/* an unclean shutdown: no marker, recovery point at 0 */
	char p[512];
	snprintf(p, sizeof(p), "%s/.tidemark_cleanshutdown", t.dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/tidemark-checkpoint", t.dir);
	unlink(p);
	uint8_t bad = 0x7f;
	t_poke(&t, name, 30, &bad, 1); /* inside the CRC-covered header */
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), second);
	ck_assert_int_eq(log_segment_count(t.l), 2);
	ck_assert_int_eq(t_read_all(&t, 0, 4096), second);
	ck_assert_int_eq(t_append(&t, 1, 7), second);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_rebuilds_missing_or_bad_index)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.index_interval_bytes = 200;
	struct fill f = { 100, 1 };
	t_crash_after(&t, child_fill, &f);
	char p[512];
	snprintf(p, sizeof(p), "%s/00000000000000000000.index", t.dir);
	off_t before = t_file_size(&t, "00000000000000000000.index");
	ck_assert_int_gt(before, 0);
	unlink(p);
	t_open(&t);
	ck_assert_int_eq(t_file_size(&t, "00000000000000000000.index"), before);
	struct t_read r;
	int64_t first, last;
	t_read(&t, 63, 100, 1, &r);
	ck_assert_int_eq(t_batches(r.data, r.len, &first, &last), 1);
	ck_assert_int_eq(first, 63);
	free(r.data);
	t_close(&t);
	/* an index pointing past the end of the log fails the sanity check */
	uint8_t e[8] = { 0, 0, 0, 99, 0x7f, 0, 0, 0 };
	t_poke(&t, "00000000000000000000.index", 8, e, sizeof(e));
	t_open(&t);
	t_read(&t, 63, 100, 1, &r);
	ck_assert_int_eq(t_batches(r.data, r.len, &first, &last), 1);
	ck_assert_int_eq(first, 63);
	free(r.data);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_recovery_keeps_flushed_appends)
{
	/* with fsync on every append, everything acknowledged survives */
	struct tctx t;
	t_setup(&t);
	t.cfg.flush_interval_messages = 1;
	t.cfg.segment_bytes = 2048;
	struct fill f = { 40, 2 };
	t_crash_after(&t, child_fill, &f);
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 80);
	ck_assert_int_eq(log_flushed_offset(t.l), 80);
	ck_assert_int_eq(t_read_all(&t, 0, 1000), 80);
	t_teardown(&t);
}
END_TEST

START_TEST(test_log_recovery_rebuilds_epoch_cache_tail)
{
	struct tctx t;
	t_setup(&t);
	struct fill f = { 5, 1 };
	t_crash_after(&t, child_fill, &f);
	/* the checkpoint lost its latest epoch: rebuilt from the batches */
	char p[512];
	snprintf(p, sizeof(p), "%s/leader-epoch-checkpoint", t.dir);
	FILE *fp = fopen(p, "w");
	ck_assert_ptr_nonnull(fp);
	fputs("0\n0\n", fp);
	fclose(fp);
	t_open(&t);
	ck_assert_int_eq(log_latest_epoch(t.l), 0);
	int32_t e;
	int64_t off;
	log_end_offset_for_epoch(t.l, 0, &e, &off);
	ck_assert_int_eq(off, 5);
	t_teardown(&t);
}
END_TEST

/* Cuts the segment at many seeded positions: the reopened log always keeps
 * exactly the whole batches before the cut. */
START_TEST(test_log_recovers_any_cut_point)
{
	struct tctx t;
	t_setup(&t);
	struct fill f = { 12, 2 };
	t_crash_after(&t, child_fill, &f);
	const char *seg = "00000000000000000000.log";
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", t.dir, seg);
	off_t size = t_file_size(&t, seg);
	if (size <= 0 || size > (1 << 20))
		ck_abort_msg("segment size %lld", (long long)size);
	uint8_t *orig = malloc((size_t)size);
	int fd = open(p, O_RDONLY);
	ck_assert_int_eq(pread(fd, orig, (size_t)size, 0), size);
	close(fd);
	off_t batch = size / 12; /* all batches have the same size */
	unsigned seed = 12345;
	for (int round = 0; round < 25; round++) {
		seed = seed * 1103515245u + 12345u;
		off_t cut = (off_t)(seed % (unsigned)size);
		fd = open(p, O_WRONLY | O_TRUNC);
		ck_assert_int_eq(pwrite(fd, orig, (size_t)cut, 0), cut);
		close(fd);
		t_open(&t);
		int64_t want = (int64_t)(cut / batch) * 2;
		ck_assert_msg(log_end_offset(t.l) == want, "seed round %d cut %lld: LEO %lld want %lld",
			      round, (long long)cut, (long long)log_end_offset(t.l), (long long)want);
		ck_assert_int_eq(t_read_all(&t, 0, 300), want);
		/* leave no clean marker behind: the next round is a crash again */
		struct log *l = t.l;
		t.l = NULL;
		log_close(l);
		char m[512];
		snprintf(m, sizeof(m), "%s/.tidemark_cleanshutdown", t.dir);
		unlink(m);
		snprintf(m, sizeof(m), "%s/tidemark-checkpoint", t.dir);
		unlink(m);
	}
	free(orig);
	t_teardown(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("storage_recovery");
	TCase *tc = tcase_create("recovery");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_log_recovers_torn_tail);
	tcase_add_test(tc, test_log_recovers_from_garbage_after_tail);
	tcase_add_test(tc, test_log_recovers_from_crc_mismatch);
	tcase_add_test(tc, test_log_recovery_drops_segments_after_corruption);
	tcase_add_test(tc, test_log_rebuilds_missing_or_bad_index);
	tcase_add_test(tc, test_log_recovery_keeps_flushed_appends);
	tcase_add_test(tc, test_log_recovery_rebuilds_epoch_cache_tail);
	tcase_add_test(tc, test_log_recovers_any_cut_point);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
