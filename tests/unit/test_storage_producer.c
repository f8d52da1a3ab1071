/*
 * test_storage_producer.c — idempotent producers: duplicates answered with
 * their original offsets, sequence gaps and stale epochs rejected, and the
 * state surviving a clean restart (snapshot) and a crash (rebuilt by
 * scanning the log, from a snapshot or from the start).
 */
#include "tests/unit/test_storage_common.h"

#define PID 4242

/* Appends a batch of n records from producer PID; returns the result. */
static struct log_append_result pappend(struct tctx *t, int16_t epoch, int32_t seq, int n)
{
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(n, 100 + (int64_t)seq);
	s.producer_id = PID;
	s.producer_epoch = epoch;
	s.base_seq = seq;
	sth_build_batch(&w, &s);
	struct log_append_result res;
	int err = t_append_raw(t, w.buf, w.len, 0, -1, &res);
	wbuf_deinit(&w);
	ck_assert_msg(err == 0, "append epoch %d seq %d: err %d", epoch, seq, err);
	return res;
}

START_TEST(test_producer_duplicate_returns_original_offsets)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	t_append(&t, 3, 1); /* 0..2, no producer */
	struct log_append_result r = pappend(&t, 0, 0, 5);
	ck_assert_int_eq(r.base_offset, 3);
	r = pappend(&t, 0, 5, 5);
	ck_assert_int_eq(r.base_offset, 8);
	r = pappend(&t, 0, 0, 5); /* a retry of the first */
	ck_assert_int_eq(r.kerr, TM_ERR_NONE);
	ck_assert(r.duplicate);
	ck_assert_int_eq(r.base_offset, 3);
	ck_assert_int_eq(r.last_offset, 7);
	ck_assert_int_eq(log_end_offset(t.l), 13);
	r = pappend(&t, 0, 5, 5);
	ck_assert(r.duplicate);
	ck_assert_int_eq(r.base_offset, 8);
	ck_assert_int_eq(t_read_all(&t, 0, 10000), 13);
	t_teardown(&t);
}
END_TEST

START_TEST(test_producer_sequence_gap_is_out_of_order)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	pappend(&t, 0, 0, 2);
	struct log_append_result r = pappend(&t, 0, 5, 1);
	ck_assert_int_eq(r.kerr, TM_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
	ck_assert(!r.duplicate);
	ck_assert_int_eq(log_end_offset(t.l), 2);
	/* only the last five batches are remembered as duplicates */
	for (int i = 0; i < 6; i++)
		pappend(&t, 0, 2 + i, 1);
	r = pappend(&t, 0, 0, 2);
	ck_assert_int_eq(r.kerr, TM_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
	r = pappend(&t, 0, 3, 1); /* still within the last five */
	ck_assert(r.duplicate);
	ck_assert_int_eq(log_end_offset(t.l), 8);
	t_teardown(&t);
}
END_TEST

START_TEST(test_producer_epoch_rules)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	pappend(&t, 3, 0, 2);
	/* a new epoch must start at sequence 0 */
	struct log_append_result r = pappend(&t, 4, 7, 1);
	ck_assert_int_eq(r.kerr, TM_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
	r = pappend(&t, 4, 0, 1);
	ck_assert_int_eq(r.kerr, TM_ERR_NONE);
	ck_assert_int_eq(r.base_offset, 2);
	/* the old epoch is fenced */
	r = pappend(&t, 3, 2, 1);
	ck_assert_int_eq(r.kerr, TM_ERR_INVALID_PRODUCER_EPOCH);
	ck_assert_int_eq(log_end_offset(t.l), 3);
	t_teardown(&t);
}
END_TEST

START_TEST(test_producer_unknown_accepts_any_sequence_and_wraps)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	struct log_append_result r = pappend(&t, 0, INT32_MAX - 1, 2);
	ck_assert_int_eq(r.kerr, TM_ERR_NONE);
	r = pappend(&t, 0, 0, 1); /* INT32_MAX wraps to 0 */
	ck_assert_int_eq(r.kerr, TM_ERR_NONE);
	ck_assert_int_eq(r.base_offset, 2);
	t_teardown(&t);
}
END_TEST

START_TEST(test_producer_batches_in_one_append_check_each_other)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(2, 1);
	s.producer_id = PID;
	s.producer_epoch = 0;
	s.base_seq = 0;
	sth_build_batch(&w, &s);
	s.base_seq = 2;
	sth_build_batch(&w, &s);
	struct log_append_result r;
	ck_assert_int_eq(t_append_raw(&t, w.buf, w.len, 0, -1, &r), 0);
	ck_assert_int_eq(r.kerr, TM_ERR_NONE);
	ck_assert_int_eq(r.last_offset, 3);
	/* seq 4 is fine, seq 9 after it is not: nothing of the append lands */
	wbuf_reset(&w);
	s.base_seq = 4;
	sth_build_batch(&w, &s);
	s.base_seq = 9;
	sth_build_batch(&w, &s);
	ck_assert_int_eq(t_append_raw(&t, w.buf, w.len, 0, -1, &r), 0);
	ck_assert_int_eq(r.kerr, TM_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
	ck_assert_int_eq(log_end_offset(t.l), 4);
	wbuf_deinit(&w);
	/* and the state was not advanced by the rejected first half */
	r = pappend(&t, 0, 4, 2);
	ck_assert_int_eq(r.kerr, TM_ERR_NONE);
	ck_assert_int_eq(r.base_offset, 4);
	t_teardown(&t);
}
END_TEST

START_TEST(test_producer_state_survives_clean_restart)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	pappend(&t, 1, 0, 3);
	pappend(&t, 1, 3, 3);
	t_close(&t);
	ck_assert(t_exists(&t, "00000000000000000006.snapshot"));
	t_open(&t);
	struct log_append_result r = pappend(&t, 1, 3, 3);
	ck_assert(r.duplicate);
	ck_assert_int_eq(r.base_offset, 3);
	r = pappend(&t, 1, 9, 1);
	ck_assert_int_eq(r.kerr, TM_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
	r = pappend(&t, 0, 6, 1);
	ck_assert_int_eq(r.kerr, TM_ERR_INVALID_PRODUCER_EPOCH);
	r = pappend(&t, 1, 6, 1);
	ck_assert_int_eq(r.base_offset, 6);
	t_teardown(&t);
}
END_TEST

static void child_producer(struct tctx *t, void *arg)
{
	int n = *(int *)arg;
	for (int i = 0; i < n; i++)
		pappend(t, 2, i * 2, 2);
}

START_TEST(test_producer_state_rebuilt_after_crash_without_snapshot)
{
	struct tctx t;
	t_setup(&t);
	int n = 10;
	t_crash_after(&t, child_producer, &n);
	ck_assert(!t_exists(&t, "00000000000000000020.snapshot"));
	t_open(&t);
	struct log_append_result r = pappend(&t, 2, 18, 2);
	ck_assert(r.duplicate);
	ck_assert_int_eq(r.base_offset, 18);
	r = pappend(&t, 2, 22, 1);
	ck_assert_int_eq(r.kerr, TM_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
	r = pappend(&t, 2, 20, 1);
	ck_assert_int_eq(r.base_offset, 20);
	t_teardown(&t);
}
END_TEST

START_TEST(test_producer_state_rebuilt_from_roll_snapshot_and_scan)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 600;
	int n = 30;
	t_crash_after(&t, child_producer, &n);
	t_open(&t);
	ck_assert_int_gt(log_segment_count(t.l), 3);
	struct log_append_result r = pappend(&t, 2, 58, 2);
	ck_assert(r.duplicate);
	ck_assert_int_eq(r.base_offset, 58);
	r = pappend(&t, 2, 60, 1);
	ck_assert_int_eq(r.kerr, TM_ERR_NONE);
	ck_assert_int_eq(r.base_offset, 60);
	t_teardown(&t);
}
END_TEST

START_TEST(test_producer_state_follows_truncation)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	pappend(&t, 0, 0, 2);
	pappend(&t, 0, 2, 2);
	pappend(&t, 0, 4, 2);
	ck_assert_int_eq(log_truncate_to(t.l, 4), 0);
	/* the batch at 4..5 is gone: seq 4 is new again, not a duplicate */
	struct log_append_result r = pappend(&t, 0, 4, 2);
	ck_assert(!r.duplicate);
	ck_assert_int_eq(r.base_offset, 4);
	t_teardown(&t);
}
END_TEST

START_TEST(test_producer_expires_after_idle_period)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.producer_id_expiration_ms = 60 * 1000;
	t.cfg.retention_ms = -1;
	t_open(&t);
	pappend(&t, 0, 0, 2); /* timestamps around 100 ms after the epoch */
	struct log_append_result r = pappend(&t, 0, 7, 1);
	ck_assert_int_eq(r.kerr, TM_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
	ck_assert_int_ge(log_enforce_retention(t.l, 100 + 59 * 1000), 0);
	r = pappend(&t, 0, 7, 1);
	ck_assert_int_eq(r.kerr, TM_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER); /* not idle long enough */
	ck_assert_int_ge(log_enforce_retention(t.l, 200 + 61 * 1000), 0);
	r = pappend(&t, 0, 7, 1); /* forgotten: any sequence is accepted */
	ck_assert_int_eq(r.kerr, TM_ERR_NONE);
	ck_assert_int_eq(r.base_offset, 2);
	t_teardown(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("storage_producer");
	TCase *tc = tcase_create("producer");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_producer_duplicate_returns_original_offsets);
	tcase_add_test(tc, test_producer_sequence_gap_is_out_of_order);
	tcase_add_test(tc, test_producer_epoch_rules);
	tcase_add_test(tc, test_producer_unknown_accepts_any_sequence_and_wraps);
	tcase_add_test(tc, test_producer_batches_in_one_append_check_each_other);
	tcase_add_test(tc, test_producer_state_survives_clean_restart);
	tcase_add_test(tc, test_producer_state_rebuilt_after_crash_without_snapshot);
	tcase_add_test(tc, test_producer_state_rebuilt_from_roll_snapshot_and_scan);
	tcase_add_test(tc, test_producer_state_follows_truncation);
	tcase_add_test(tc, test_producer_expires_after_idle_period);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
