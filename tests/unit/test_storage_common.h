/*
 * test_storage_common.h — shared fixture of the test_storage*.c suites: a
 * temporary partition directory, a ring, and synchronous wrappers around
 * log_append / log_read that pump the ring until the callback ran.
 * Header-only (static functions) so each suite binary stays self-contained.
 */
#ifndef TM_TEST_STORAGE_COMMON_H
#define TM_TEST_STORAGE_COMMON_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/kerr.h"
#include "common/tm_log.h"
#include "storage/batch.h"
#include "storage/io.h"
#include "storage/log.h"
#include "tests/unit/helpers/storage_test.h"

struct tctx {
	char root[128];
	char dir[256];
	struct tm_io *io;
	struct log *l;
	struct log_config cfg;
	int64_t now;
};

static inline void t_setup(struct tctx *t)
{
	memset(t, 0, sizeof(*t));
	tm_log_min_level = TM_LOG_WARN;
	sth_tmpdir(t->root, sizeof(t->root));
	snprintf(t->dir, sizeof(t->dir), "%s/orders-0", t->root);
	ck_assert_int_eq(io_new(64, &t->io), 0);
	log_config_defaults(&t->cfg);
	t->now = 1700000000000LL;
}

static inline void t_open(struct tctx *t)
{
	int err = log_open(t->io, t->dir, &t->cfg, t->now, &t->l);
	ck_assert_msg(err == 0, "log_open(%s) = %d", t->dir, err);
}

static inline void t_close(struct tctx *t)
{
	if (t->l)
		log_close(t->l);
	t->l = NULL;
}

static inline void t_teardown(struct tctx *t)
{
	t_close(t);
	io_free(t->io);
	sth_rmtree(t->root);
}

struct t_app {
	bool done;
	int err;
};

static inline void t_app_cb(void *arg, int err)
{
	struct t_app *a = arg;
	a->done = true;
	a->err = err;
}

/* Appends the bytes and waits for the callback; returns the callback's err. */
static inline int t_append_raw(struct tctx *t, const uint8_t *buf, size_t len, int32_t epoch,
			       int64_t lat, struct log_append_result *res)
{
	struct t_app a = { 0 };
	struct log_append_result r;
	int rc = log_append(t->l, buf, len, epoch, lat, t->now, res ? res : &r, t_app_cb, &a);
	if (rc)
		return rc;
	ck_assert_msg(sth_run_until(t->io, &a.done), "append callback never ran");
	return a.err;
}

/* Appends one batch of n records at timestamp ts; returns its base offset. */
static inline int64_t t_append(struct tctx *t, int n, int64_t ts)
{
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(n, ts);
	sth_build_batch(&w, &s);
	struct log_append_result res;
	int err = t_append_raw(t, w.buf, w.len, 0, -1, &res);
	wbuf_deinit(&w);
	ck_assert_msg(err == 0, "append err %d", err);
	ck_assert_int_eq(res.kerr, TM_ERR_NONE);
	ck_assert_int_eq(res.last_offset - res.base_offset, n - 1);
	return res.base_offset;
}

struct t_read {
	bool done;
	int err;
	uint8_t *data;
	size_t len;
};

static inline void t_read_cb(void *arg, int err, uint8_t *data, size_t len)
{
	struct t_read *r = arg;
	r->done = true;
	r->err = err;
	r->data = data;
	r->len = len;
}

/* Reads and waits; the caller frees r->data. */
static inline void t_read(struct tctx *t, int64_t off, int64_t max_off, size_t max_bytes,
			  struct t_read *r)
{
	memset(r, 0, sizeof(*r));
	int rc = log_read(t->l, off, max_off, max_bytes, t_read_cb, r);
	ck_assert_msg(rc == 0, "log_read(%lld) = %d", (long long)off, rc);
	ck_assert_msg(sth_run_until(t->io, &r->done), "read callback never ran");
}

/* Walks the batches of a read answer: count, first base, last offset; checks
 * that every batch is whole, CRC-valid and follows the previous one (with
 * gaps_ok, only comes after it: a compacted log or a follower's offsets). */
static inline int t_batches_walk(const uint8_t *p, size_t len, bool gaps_ok, int64_t *first, int64_t *last)
{
	size_t pos = 0;
	int n = 0;
	*first = *last = -1;
	while (pos < len) {
		struct sbatch_hdr h;
		ck_assert_int_eq(sbatch_parse(p + pos, len - pos, &h), 0);
		size_t size = sbatch_total_size(&h);
		ck_assert_uint_le(size, len - pos);
		ck_assert_msg(sbatch_crc_ok(p + pos, size), "CRC of batch at %lld",
			      (long long)h.base_offset);
		if (n == 0)
			*first = h.base_offset;
		else if (gaps_ok)
			ck_assert_int_gt(h.base_offset, *last);
		else
			ck_assert_int_eq(h.base_offset, *last + 1);
		*last = sbatch_last_offset(&h);
		pos += size;
		n++;
	}
	return n;
}

static inline int t_batches(const uint8_t *p, size_t len, int64_t *first, int64_t *last)
{
	return t_batches_walk(p, len, false, first, last);
}

static inline bool t_exists(const struct tctx *t, const char *name)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", t->dir, name);
	return access(p, F_OK) == 0;
}

static inline off_t t_file_size(const struct tctx *t, const char *name)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", t->dir, name);
	return stat(p, &st) == 0 ? st.st_size : -1;
}

/* Reads every offset from `from` to LEO with reads of max_bytes, checking
 * contiguity; returns the number of records seen. */
static inline int64_t t_read_all(struct tctx *t, int64_t from, size_t max_bytes)
{
	int64_t off = from, seen = 0;
	int64_t leo = log_end_offset(t->l);
	while (off < leo) {
		struct t_read r;
		t_read(t, off, leo, max_bytes, &r);
		ck_assert_int_eq(r.err, 0);
		int64_t first, last;
		int n = t_batches(r.data, r.len, &first, &last);
		ck_assert_msg(n > 0, "empty read at offset %lld of %lld", (long long)off, (long long)leo);
		ck_assert_int_le(first, off);
		ck_assert_int_ge(last, off);
		seen += last - off + 1;
		off = last + 1;
		free(r.data);
	}
	return seen;
}

/* Closes and reopens the log: it must come back with exactly n records
 * (offsets 0..n-1), every one readable. */
static inline void t_reopen_expect(struct tctx *t, int64_t n)
{
	t_close(t);
	t_open(t);
	ck_assert_int_eq(log_end_offset(t->l), n);
	ck_assert_int_eq(t_read_all(t, 0, 5000), n);
}

/* Simulates a crash: a child process opens the log with its own ring, runs
 * fn (appends...), and exits without closing anything.  The parent's log
 * must not be open. */
typedef void (*t_child_fn)(struct tctx *t, void *arg);

static inline void t_crash_after(struct tctx *t, t_child_fn fn, void *arg)
{
	ck_assert_ptr_null(t->l);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct tm_io *io;
		if (io_new(64, &io) != 0)
			_exit(3);
		t->io = io;
		t_open(t);
		fn(t, arg);
		sth_drain(io);
		_exit(0);
	}
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "crash child failed: %d", status);
}

/* Truncates or extends dir/name to size bytes. */
static inline void t_set_size(const struct tctx *t, const char *name, off_t size)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", t->dir, name);
	ck_assert_int_eq(truncate(p, size), 0);
}

/* Writes bytes into dir/name at off. */
static inline void t_poke(const struct tctx *t, const char *name, off_t off, const void *b, size_t n)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", t->dir, name);
	int fd = open(p, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, b, n, off), (ssize_t)n);
	close(fd);
}

#endif
