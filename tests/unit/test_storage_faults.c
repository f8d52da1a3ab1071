/*
 * test_storage_faults.c — the disk misbehaves: I/O errors and a full disk
 * injected into io_uring completions (io_set_fault) and into the
 * synchronous system calls (sys_set_ops).  The append in flight must fail
 * with the errno, the log must go offline and fail later calls fast, the
 * process must not crash, and short or interrupted transfers must still
 * complete correctly.
 */
#include "tests/unit/test_storage_common.h"

#include "storage/sys.h"

struct fault {
	int op;        /* IO_OP_* to hit, 0 for any */
	int res;       /* result to inject (negative errno) */
	int skip;      /* matching completions to let through first */
	int count;     /* how many to rewrite; -1 forever */
	bool halve;    /* short transfer instead of an error */
	int hits;
};

static int fault_fn(void *arg, int op, int res)
{
	struct fault *f = arg;
	if ((f->op && f->op != op) || f->count == 0 || res < 0)
		return res;
	if (f->skip > 0) {
		f->skip--;
		return res;
	}
	if (f->count > 0)
		f->count--;
	f->hits++;
	if (f->halve)
		return res > 1 ? res / 2 : res;
	return f->res;
}

static void fault_append_case(int op, int err, bool flush)
{
	struct tctx t;
	t_setup(&t);
	if (flush)
		t.cfg.flush_interval_messages = 1;
	t_open(&t);
	t_append(&t, 2, 1);
	struct fault f = { .op = op, .res = err, .count = -1 };
	io_set_fault(t.io, fault_fn, &f);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(2, 2);
	sth_build_batch(&w, &s);
	ck_assert_int_eq(t_append_raw(&t, w.buf, w.len, 0, -1, NULL), err);
	ck_assert(log_dir_offline(t.l));
	ck_assert_int_gt(f.hits, 0);
	/* later calls fail fast, no callback */
	struct log_append_result res;
	struct t_app a = { 0 };
	ck_assert_int_eq(log_append(t.l, w.buf, w.len, 0, -1, t.now, &res, t_app_cb, &a), err);
	struct t_read r;
	ck_assert_int_eq(log_read(t.l, 0, 10, 100, t_read_cb, &r), err);
	sth_drain(t.io);
	ck_assert(!a.done);
	wbuf_deinit(&w);
	io_set_fault(t.io, NULL, NULL);
	t_close(&t); /* an offline log closes without a clean marker */
	ck_assert(!t_exists(&t, ".tidemark_cleanshutdown"));
	t_open(&t);
	ck_assert(!log_dir_offline(t.l));
	ck_assert_int_ge(log_end_offset(t.l), 2);
	int64_t leo = log_end_offset(t.l);
	ck_assert_int_eq(t_append(&t, 1, 3), leo);
	t_teardown(&t);
}

START_TEST(test_write_eio_fails_append_and_takes_log_offline)
{
	fault_append_case(IO_OP_WRITE, -EIO, false);
}
END_TEST

START_TEST(test_write_enospc_fails_append_and_takes_log_offline)
{
	fault_append_case(IO_OP_WRITE, -ENOSPC, false);
}
END_TEST

START_TEST(test_fsync_eio_fails_flushed_append)
{
	fault_append_case(IO_OP_FSYNC, -EIO, true);
}
END_TEST

START_TEST(test_queued_appends_fail_with_the_error)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	struct fault f = { .op = IO_OP_WRITE, .res = -EIO, .count = -1 };
	io_set_fault(t.io, fault_fn, &f);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(1, 2);
	sth_build_batch(&w, &s);
	struct t_app a[5] = { 0 };
	struct log_append_result res;
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(log_append(t.l, w.buf, w.len, 0, -1, t.now, &res, t_app_cb, &a[i]), 0);
	wbuf_deinit(&w);
	sth_drain(t.io);
	for (int i = 0; i < 5; i++) {
		ck_assert_msg(a[i].done, "append %d never completed", i);
		ck_assert_int_eq(a[i].err, -EIO);
	}
	io_set_fault(t.io, NULL, NULL);
	t_teardown(&t);
}
END_TEST

START_TEST(test_short_writes_and_reads_complete)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 2048;
	t.cfg.flush_interval_messages = 3;
	t_open(&t);
	struct fault f = { .count = -1, .halve = true };
	io_set_fault(t.io, fault_fn, &f);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(4, 2);
	s.value_bytes = 100;
	sth_build_batch(&w, &s);
	int done = 0;
	struct t_app a[40] = { 0 };
	struct log_append_result res;
	for (int i = 0; i < 40; i++)
		ck_assert_int_eq(log_append(t.l, w.buf, w.len, 0, -1, t.now, &res, t_app_cb, &a[i]), 0);
	wbuf_deinit(&w);
	sth_drain(t.io);
	for (int i = 0; i < 40; i++) {
		ck_assert(a[i].done);
		ck_assert_int_eq(a[i].err, 0);
		done++;
	}
	ck_assert_int_gt(f.hits, 40);
	ck_assert(!log_dir_offline(t.l));
	ck_assert_int_eq(t_read_all(&t, 0, 5000), 160); /* reads are halved too */
	io_set_fault(t.io, NULL, NULL);
	t_reopen_expect(&t, 160);
	t_teardown(&t);
}
END_TEST

START_TEST(test_eagain_is_requeued)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.flush_interval_messages = 1;
	t_open(&t);
	struct fault f = { .res = -EAGAIN, .count = 3 };
	io_set_fault(t.io, fault_fn, &f);
	for (int i = 0; i < 4; i++)
		t_append(&t, 1, 1);
	ck_assert_int_eq(f.hits, 3);
	ck_assert_int_eq(log_flushed_offset(t.l), 4);
	io_set_fault(t.io, NULL, NULL);
	t_teardown(&t);
}
END_TEST

/* The fsync of a rolled segment fails: the log goes offline, the flushed
 * offset never moves past that segment, and later appends fail fast. */
START_TEST(test_rolled_segment_fsync_error_takes_log_offline)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	t_open(&t);
	struct fault f = { .op = IO_OP_FSYNC, .res = -EIO, .count = -1 };
	io_set_fault(t.io, fault_fn, &f);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(4, 1);
	sth_build_batch(&w, &s);
	struct t_app a[30] = { 0 };
	struct log_append_result res;
	int queued = 0;
	for (int i = 0; i < 30; i++) {
		if (log_append(t.l, w.buf, w.len, 0, -1, t.now, &res, t_app_cb, &a[i]) != 0)
			break;
		queued++;
		sth_drain(t.io);
	}
	wbuf_deinit(&w);
	sth_drain(t.io);
	ck_assert_int_gt(f.hits, 0);
	ck_assert(log_dir_offline(t.l));
	ck_assert_int_lt(queued, 30);
	ck_assert_int_eq(log_flushed_offset(t.l), 0);
	for (int i = 0; i < queued; i++) {
		ck_assert(a[i].done);
		ck_assert(a[i].err == 0 || a[i].err == -EIO);
	}
	io_set_fault(t.io, NULL, NULL);
	t_teardown(&t);
}
END_TEST

/* ---- the synchronous system call table ---------------------------------- */

static struct {
	int open_err;      /* fail opens of paths containing open_match */
	const char *open_match;
	int pwrite_err;
	int pwrite_skip;
	bool pwrite_short;
	int hits;
} sysf;

static int f_open(const char *path, int flags, mode_t mode)
{
	if (sysf.open_err && strstr(path, sysf.open_match)) {
		sysf.hits++;
		errno = sysf.open_err;
		return -1;
	}
	return open(path, flags, mode);
}

static ssize_t f_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (sysf.pwrite_short && n > 1) {
		sysf.hits++;
		return pwrite(fd, buf, n / 2, off);
	}
	if (sysf.pwrite_err) {
		if (sysf.pwrite_skip > 0) {
			sysf.pwrite_skip--;
		} else {
			sysf.hits++;
			errno = sysf.pwrite_err;
			return -1;
		}
	}
	return pwrite(fd, buf, n, off);
}

static struct tm_sys_ops faulty;

static void install_faulty(void)
{
	memset(&sysf, 0, sizeof(sysf));
	faulty = tm_sys_libc;
	faulty.open = f_open;
	faulty.pwrite = f_pwrite;
	sys_set_ops(&faulty);
}

START_TEST(test_sys_open_failure_on_roll_takes_log_offline)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 512;
	t_open(&t);
	install_faulty();
	sysf.open_err = EIO;
	sysf.open_match = ".log";
	int64_t last_ok = -1;
	int rc = 0;
	for (int i = 0; i < 20 && rc == 0; i++) {
		struct tm_wbuf w;
		wbuf_init(&w);
		struct sth_batch_spec s = sth_spec(2, 1);
		sth_build_batch(&w, &s);
		struct log_append_result res;
		rc = t_append_raw(&t, w.buf, w.len, 0, -1, &res);
		if (rc == 0)
			last_ok = res.last_offset;
		wbuf_deinit(&w);
	}
	ck_assert_int_eq(rc, -EIO);
	ck_assert(log_dir_offline(t.l));
	ck_assert_int_gt(sysf.hits, 0);
	ck_assert_int_eq(log_end_offset(t.l), last_ok + 1);
	sys_set_ops(NULL);
	t_close(&t);
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), last_ok + 1);
	t_teardown(&t);
}
END_TEST

START_TEST(test_sys_enospc_writing_index_takes_log_offline)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.index_interval_bytes = 64;
	t_open(&t);
	t_append(&t, 1, 1);
	install_faulty();
	sysf.pwrite_err = ENOSPC;
	int rc = 0;
	for (int i = 0; i < 10 && rc == 0; i++) {
		struct tm_wbuf w;
		wbuf_init(&w);
		struct sth_batch_spec s = sth_spec(1, 1);
		sth_build_batch(&w, &s);
		rc = t_append_raw(&t, w.buf, w.len, 0, -1, NULL);
		wbuf_deinit(&w);
	}
	ck_assert_int_eq(rc, -ENOSPC);
	ck_assert(log_dir_offline(t.l));
	sys_set_ops(NULL);
	t_teardown(&t);
}
END_TEST

START_TEST(test_sys_short_writes_are_retried)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.segment_bytes = 1024;
	t.cfg.index_interval_bytes = 64;
	t_open(&t);
	install_faulty();
	sysf.pwrite_short = true;
	for (int i = 0; i < 30; i++)
		t_append(&t, 2, 1);
	ck_assert_int_gt(sysf.hits, 0);
	t_close(&t); /* checkpoints, snapshot and indexes through short pwrites */
	sys_set_ops(NULL);
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 60);
	struct t_read r;
	int64_t first, last;
	t_read(&t, 33, 60, 1, &r);
	ck_assert_int_eq(t_batches(r.data, r.len, &first, &last), 1);
	ck_assert_int_eq(first, 32);
	free(r.data);
	t_teardown(&t);
}
END_TEST

START_TEST(test_open_fails_cleanly_when_directory_unusable)
{
	struct tctx t;
	t_setup(&t);
	install_faulty();
	sysf.open_err = EIO;
	sysf.open_match = "orders-0";
	struct log *l = NULL;
	ck_assert_int_eq(log_open(t.io, t.dir, &t.cfg, t.now, &l), -EIO);
	ck_assert_ptr_null(l);
	sys_set_ops(NULL);
	t_teardown(&t);
}
END_TEST

/* A ring of 2 SQEs serving three logs: operations queue in memory when the
 * submission queue is full and all complete, in order per log. */
static void order_cb(void *arg, int err)
{
	int *next = arg;
	ck_assert_int_eq(err, 0);
	(*next)++;
}

START_TEST(test_full_submission_queue_queues_in_memory)
{
	struct tctx t;
	t_setup(&t);
	io_free(t.io);
	ck_assert_int_eq(io_new(2, &t.io), 0);
	io_set_inline_max(t.io, 0); /* every write to the kernel: the queue fills */
	t.cfg.flush_interval_messages = 2;
	t.cfg.segment_bytes = 1024;
	struct log *logs[3];
	char dir[300];
	for (int i = 0; i < 3; i++) {
		snprintf(dir, sizeof(dir), "%s/t-%d", t.root, i);
		ck_assert_int_eq(log_open(t.io, dir, &t.cfg, t.now, &logs[i]), 0);
	}
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(1, 1);
	sth_build_batch(&w, &s);
	int done[3] = { 0 };
	struct log_append_result res;
	for (int n = 0; n < 50; n++)
		for (int i = 0; i < 3; i++)
			ck_assert_int_eq(log_append(logs[i], w.buf, w.len, 0, -1, t.now, &res, order_cb,
						    &done[i]), 0);
	wbuf_deinit(&w);
	struct t_read r[3];
	for (int i = 0; i < 3; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		ck_assert_int_eq(log_read(logs[i], 0, 50, 100, t_read_cb, &r[i]), 0);
	}
	sth_drain(t.io);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(done[i], 50);
		ck_assert_int_eq(log_flushed_offset(logs[i]), 50);
		ck_assert(r[i].done);
		free(r[i].data);
		log_close(logs[i]);
	}
	t_teardown(&t);
}
END_TEST

/* An in-place append that fails: the callback gets the errno, and the
 * caller's buffer stays the caller's (the log never frees it). */
START_TEST(test_write_eio_fails_inplace_append_buffer_stays_callers)
{
	struct tctx t;
	t_setup(&t);
	t_open(&t);
	struct fault f = { .op = IO_OP_WRITE, .res = -EIO, .count = -1 };
	io_set_fault(t.io, fault_fn, &f);
	struct tm_wbuf w, w2;
	wbuf_init(&w);
	wbuf_init(&w2);
	struct sth_batch_spec s = sth_spec(2, 2);
	sth_build_batch(&w, &s);
	sth_build_batch(&w2, &s);
	struct log_append_result res;
	struct t_app a = { 0 }, b = { 0 };
	ck_assert_int_eq(log_append_inplace(t.l, w.buf, w.len, 0, -1, t.now, &res, t_app_cb, &a), 0);
	ck_assert_int_eq(log_append_inplace(t.l, w2.buf, w2.len, 0, -1, t.now, &res, t_app_cb, &b), 0);
	ck_assert(sth_run_until(t.io, &a.done));
	ck_assert(sth_run_until(t.io, &b.done));
	ck_assert_int_eq(a.err, -EIO);
	ck_assert_int_eq(b.err, -EIO);
	ck_assert(log_dir_offline(t.l));
	ck_assert_int_eq(log_append_inplace(t.l, w.buf, w.len, 0, -1, t.now, &res, t_app_cb, &a), -EIO);
	wbuf_deinit(&w); /* under ASan: a double free if the log had freed them */
	wbuf_deinit(&w2);
	io_set_fault(t.io, NULL, NULL);
	t_teardown(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("storage_faults");
	TCase *tc = tcase_create("faults");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_write_eio_fails_append_and_takes_log_offline);
	tcase_add_test(tc, test_write_eio_fails_inplace_append_buffer_stays_callers);
	tcase_add_test(tc, test_write_enospc_fails_append_and_takes_log_offline);
	tcase_add_test(tc, test_fsync_eio_fails_flushed_append);
	tcase_add_test(tc, test_rolled_segment_fsync_error_takes_log_offline);
	tcase_add_test(tc, test_queued_appends_fail_with_the_error);
	tcase_add_test(tc, test_short_writes_and_reads_complete);
	tcase_add_test(tc, test_eagain_is_requeued);
	tcase_add_test(tc, test_sys_open_failure_on_roll_takes_log_offline);
	tcase_add_test(tc, test_sys_enospc_writing_index_takes_log_offline);
	tcase_add_test(tc, test_sys_short_writes_are_retried);
	tcase_add_test(tc, test_open_fails_cleanly_when_directory_unusable);
	tcase_add_test(tc, test_full_submission_queue_queues_in_memory);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
