/*
 * test_storage_io_sync.c — the synchronous fallback of storage/io.h, the
 * ring Tidemark runs on where io_uring is not allowed (container seccomp
 * profiles, kernel.io_uring_disabled, old kernels, gVisor).  main() sets
 * TIDEMARK_IO=sync before any ring exists, so every ring here (and the
 * partition logs on top, through storage/log.h) runs the fallback; some cases
 * instead block io_uring's system calls with a seccomp filter, the way a
 * container runtime does, and check that io_new falls back by itself.
 *
 * What must hold as with io_uring: callbacks never run from the function
 * that started the operation, only from io_process_completions()/io_wait();
 * the eventfd becomes readable when they are due; they run in the order the
 * operations were started; short transfers are completed; a write's fsync
 * runs after all of the write and before the callback; the fault hook sees
 * every result; io_inflight() counts an op until its callback.
 *
 * The "inline" cases run on io_uring itself (they unset TIDEMARK_IO in their
 * own forked process): the small writes and NOPs io_flush performs on the
 * calling thread while the kernel holds none of the ring's operations must
 * keep the same contract, in order with the operations that do go to the
 * kernel.
 */
#include "tests/unit/test_storage_common.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* ---- raw ring ------------------------------------------------------------ */

struct rctx {
	char root[128];
	char path[256];
	int fd;
	struct tm_io *io;
};

/* A temporary file and a ring of whichever kind TIDEMARK_IO selects. */
static void r_open(struct rctx *r)
{
	memset(r, 0, sizeof(*r));
	tm_log_min_level = TM_LOG_ERROR;
	sth_tmpdir(r->root, sizeof(r->root));
	snprintf(r->path, sizeof(r->path), "%s/data", r->root);
	r->fd = open(r->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(r->fd, 0);
	ck_assert_int_eq(io_new(64, &r->io), 0);
}

static void r_setup(struct rctx *r)
{
	r_open(r);
	ck_assert_msg(!io_is_uring(r->io), "TIDEMARK_IO=sync must select the fallback");
}

static void r_teardown(struct rctx *r)
{
	io_free(r->io);
	close(r->fd);
	sth_rmtree(r->root);
}

static bool efd_readable(struct tm_io *io)
{
	struct pollfd p = { .fd = io_event_fd(io), .events = POLLIN };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* A trace of what happened, one letter per event: the fault hook writes
 * W/R/F for each write/read/fsync result it sees, callbacks write their tag. */
struct trace {
	char ev[512];
	int n;
};

static void trace_add(struct trace *t, char c)
{
	ck_assert_int_lt(t->n, (int)sizeof(t->ev) - 1);
	t->ev[t->n++] = c;
	t->ev[t->n] = '\0';
}

struct done {
	struct trace *trace;
	char tag;
	bool ran;
	int64_t res;
};

static void done_cb(void *arg, int64_t res)
{
	struct done *d = arg;
	ck_assert_msg(!d->ran, "callback %c ran twice", d->tag);
	d->ran = true;
	d->res = res;
	if (d->trace)
		trace_add(d->trace, d->tag);
}

struct fault {
	struct trace *trace;
	int op;      /* IO_OP_* to hit, 0 for any */
	int res;     /* error to inject, 0: none */
	int count;   /* results to rewrite, -1 forever */
	bool halve;  /* short transfers instead of an error */
	int hits;
};

static int fault_fn(void *arg, int op, int res)
{
	struct fault *f = arg;
	if (f->trace)
		trace_add(f->trace, op == IO_OP_WRITE ? 'W' : op == IO_OP_READ ? 'R' : 'F');
	if ((f->op && f->op != op) || f->count == 0 || res < 0)
		return res;
	if (f->count > 0)
		f->count--;
	f->hits++;
	if (f->halve)
		return res > 1 ? res / 2 : res;
	return f->res;
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

/* Pumps the ring until nothing is in flight (bounded). */
static void r_drain(struct rctx *r)
{
	for (int i = 0; i < 1000 && io_inflight(r->io) > 0; i++)
		(void)io_wait(r->io, 1000);
	ck_assert_uint_eq(io_inflight(r->io), 0);
}

START_TEST(test_sync_callbacks_run_only_from_process_completions)
{
	struct rctx r;
	r_setup(&r);
	uint8_t a[100], b[3000];
	fill_pattern(a, sizeof(a), 1);
	fill_pattern(b, sizeof(b), 2);
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	struct done w = { 0 }, f = { 0 }, n = { 0 };
	ck_assert_int_eq(io_writev(r.io, r.fd, iov, 2, 0, true, done_cb, &w), 0);
	ck_assert_int_eq(io_fsync(r.io, r.fd, done_cb, &f), 0);
	ck_assert_int_eq(io_nop(r.io, 42, done_cb, &n), 0);
	ck_assert(!w.ran && !f.ran && !n.ran);
	ck_assert_uint_eq(io_inflight(r.io), 3);
	ck_assert(!efd_readable(r.io));
	/* the flush performs the writes, but the callbacks wait for the loop */
	io_flush(r.io);
	ck_assert(!w.ran && !f.ran && !n.ran);
	ck_assert_uint_eq(io_inflight(r.io), 3);
	ck_assert_msg(efd_readable(r.io), "the eventfd must wake the loop after a flush");
	struct stat st;
	ck_assert_int_eq(fstat(r.fd, &st), 0);
	ck_assert_int_eq(st.st_size, 3100);
	io_process_completions(r.io);
	ck_assert(w.ran && f.ran && n.ran);
	ck_assert_int_eq(w.res, 3100);
	ck_assert_int_eq(f.res, 0);
	ck_assert_int_eq(n.res, 42);
	ck_assert_uint_eq(io_inflight(r.io), 0);
	ck_assert_msg(!efd_readable(r.io), "process_completions drains the eventfd");
	ck_assert_int_eq(io_wait(r.io, 10), -EALREADY);
	/* read back, then past the end of the file */
	uint8_t back[4000];
	struct done rd = { 0 }, eof = { 0 };
	ck_assert_int_eq(io_read(r.io, r.fd, back, sizeof(back), 0, done_cb, &rd), 0);
	ck_assert_int_eq(io_read(r.io, r.fd, back + 3500, 100, 5000, done_cb, &eof), 0);
	ck_assert(!rd.ran);
	ck_assert_int_eq(io_wait(r.io, 1000), 0);
	ck_assert(rd.ran && eof.ran);
	ck_assert_int_eq(rd.res, 3100);
	ck_assert_int_eq(eof.res, 0);
	ck_assert(memcmp(back, a, sizeof(a)) == 0);
	ck_assert(memcmp(back + sizeof(a), b, sizeof(b)) == 0);
	r_teardown(&r);
}
END_TEST

START_TEST(test_sync_callbacks_run_in_start_order)
{
	struct rctx r;
	r_setup(&r);
	struct trace tr = { 0 };
	uint8_t buf[64], rb[64];
	fill_pattern(buf, sizeof(buf), 3);
	struct iovec iov = { buf, sizeof(buf) };
	const char tags[] = "abcdefgh";
	struct done d[8];
	for (int i = 0; i < 8; i++) {
		d[i] = (struct done){ .trace = &tr, .tag = tags[i] };
		switch (i % 4) {
		case 0:
			ck_assert_int_eq(io_writev(r.io, r.fd, &iov, 1, i * 64, i == 4, done_cb, &d[i]), 0);
			break;
		case 1:
			ck_assert_int_eq(io_read(r.io, r.fd, rb, sizeof(rb), 0, done_cb, &d[i]), 0);
			break;
		case 2:
			ck_assert_int_eq(io_fsync(r.io, r.fd, done_cb, &d[i]), 0);
			break;
		default:
			ck_assert_int_eq(io_nop(r.io, i, done_cb, &d[i]), 0);
			break;
		}
	}
	r_drain(&r);
	ck_assert_str_eq(tr.ev, "abcdefgh");
	ck_assert_int_eq(d[1].res, 64); /* the read saw the write started before it */
	ck_assert(memcmp(rb, buf, sizeof(rb)) == 0);
	r_teardown(&r);
}
END_TEST

START_TEST(test_sync_short_writes_and_reads_are_completed)
{
	struct rctx r;
	r_setup(&r);
	struct trace tr = { 0 };
	struct fault f = { .trace = &tr, .count = -1, .halve = true };
	io_set_fault(r.io, fault_fn, &f);
	enum { N = 8, LEN = 1000 };
	static uint8_t bufs[N][LEN];
	struct iovec iov[N];
	for (int i = 0; i < N; i++) {
		fill_pattern(bufs[i], LEN, (unsigned)i);
		iov[i] = (struct iovec){ bufs[i], LEN };
	}
	struct done w = { .trace = &tr, .tag = 'C' };
	ck_assert_int_eq(io_writev(r.io, r.fd, iov, N, 100, true, done_cb, &w), 0);
	r_drain(&r);
	ck_assert_int_eq(w.res, N * LEN);
	ck_assert_int_gt(f.hits, 5);
	/* several write attempts, then the one fsync, then the callback */
	size_t nw = strspn(tr.ev, "W");
	ck_assert_msg(nw > 5 && strcmp(tr.ev + nw, "FC") == 0, "trace %s", tr.ev);
	static uint8_t back[N * LEN + 100];
	memset(back, 0xee, sizeof(back));
	struct done rd = { 0 };
	ck_assert_int_eq(io_read(r.io, r.fd, back, sizeof(back), 0, done_cb, &rd), 0);
	r_drain(&r);
	ck_assert_int_eq(rd.res, N * LEN + 100);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(back[i], 0); /* the hole before offset 100 */
	for (int i = 0; i < N; i++)
		ck_assert_msg(memcmp(back + 100 + i * LEN, bufs[i], LEN) == 0, "iovec %d differs", i);
	io_set_fault(r.io, NULL, NULL);
	r_teardown(&r);
}
END_TEST

START_TEST(test_sync_errors_reach_the_callback)
{
	struct rctx r;
	r_setup(&r);
	uint8_t buf[512];
	fill_pattern(buf, sizeof(buf), 4);
	struct iovec iov = { buf, sizeof(buf) };
	/* write error: no fsync attempted */
	struct trace tr = { 0 };
	struct fault f = { .trace = &tr, .op = IO_OP_WRITE, .res = -EIO, .count = 1 };
	io_set_fault(r.io, fault_fn, &f);
	struct done a = { 0 };
	ck_assert_int_eq(io_writev(r.io, r.fd, &iov, 1, 0, true, done_cb, &a), 0);
	r_drain(&r);
	ck_assert_int_eq(a.res, -EIO);
	ck_assert_str_eq(tr.ev, "W");
	/* fsync error of a write with fsync */
	tr = (struct trace){ 0 };
	f = (struct fault){ .trace = &tr, .op = IO_OP_FSYNC, .res = -ENOSPC, .count = 1 };
	struct done b = { 0 };
	ck_assert_int_eq(io_writev(r.io, r.fd, &iov, 1, 0, true, done_cb, &b), 0);
	r_drain(&r);
	ck_assert_int_eq(b.res, -ENOSPC);
	ck_assert_str_eq(tr.ev, "WF");
	/* read error; a real error from the kernel too (bad descriptor) */
	f = (struct fault){ .op = IO_OP_READ, .res = -EIO, .count = 1 };
	struct done c = { 0 }, d = { 0 }, e = { 0 };
	ck_assert_int_eq(io_read(r.io, r.fd, buf, sizeof(buf), 0, done_cb, &c), 0);
	ck_assert_int_eq(io_writev(r.io, -1, &iov, 1, 0, false, done_cb, &d), 0);
	ck_assert_int_eq(io_fsync(r.io, -1, done_cb, &e), 0);
	r_drain(&r);
	ck_assert_int_eq(c.res, -EIO);
	ck_assert_int_eq(d.res, -EBADF);
	ck_assert_int_eq(e.res, -EBADF);
	io_set_fault(r.io, NULL, NULL);
	r_teardown(&r);
}
END_TEST

START_TEST(test_sync_eagain_and_eintr_are_retried)
{
	struct rctx r;
	r_setup(&r);
	uint8_t buf[256], back[256];
	fill_pattern(buf, sizeof(buf), 5);
	struct iovec iov = { buf, sizeof(buf) };
	struct fault f = { .res = -EAGAIN, .count = 3 };
	io_set_fault(r.io, fault_fn, &f);
	struct done a = { 0 }, b = { 0 };
	ck_assert_int_eq(io_writev(r.io, r.fd, &iov, 1, 0, true, done_cb, &a), 0);
	r_drain(&r);
	ck_assert_int_eq(a.res, 256);
	ck_assert_int_eq(f.hits, 3);
	f = (struct fault){ .res = -EINTR, .count = 2 };
	ck_assert_int_eq(io_read(r.io, r.fd, back, sizeof(back), 0, done_cb, &b), 0);
	r_drain(&r);
	ck_assert_int_eq(b.res, 256);
	ck_assert_int_eq(f.hits, 2);
	ck_assert(memcmp(back, buf, sizeof(buf)) == 0);
	/* an endless -EAGAIN fails the op rather than hanging the loop */
	f = (struct fault){ .res = -EAGAIN, .count = -1 };
	struct done c = { 0 };
	ck_assert_int_eq(io_fsync(r.io, r.fd, done_cb, &c), 0);
	r_drain(&r);
	ck_assert_int_eq(c.res, -EAGAIN);
	io_set_fault(r.io, NULL, NULL);
	r_teardown(&r);
}
END_TEST

/* A callback that waits on the ring for an op it starts, the way log_close
 * or log_truncate_to do from another log's callback. */
struct reent {
	struct rctx *r;
	struct trace *trace;
	struct done inner;
	int wait_rc;
};

static void reent_cb(void *arg, int64_t res)
{
	struct reent *x = arg;
	ck_assert_int_eq(res, 0);
	trace_add(x->trace, 'A');
	x->inner = (struct done){ .trace = x->trace, .tag = 'I' };
	ck_assert_int_eq(io_fsync(x->r->io, x->r->fd, done_cb, &x->inner), 0);
	ck_assert(!x->inner.ran);
	while (!x->inner.ran) {
		x->wait_rc = io_wait(x->r->io, 1000);
		if (x->wait_rc)
			break;
	}
}

START_TEST(test_sync_callback_may_wait_on_the_ring)
{
	struct rctx r;
	r_setup(&r);
	struct trace tr = { 0 };
	struct reent x = { .r = &r, .trace = &tr };
	struct done b = { .trace = &tr, .tag = 'B' }, c = { .trace = &tr, .tag = 'C' };
	ck_assert_int_eq(io_nop(r.io, 0, reent_cb, &x), 0);
	ck_assert_int_eq(io_nop(r.io, 1, done_cb, &b), 0);
	ck_assert_int_eq(io_nop(r.io, 2, done_cb, &c), 0);
	r_drain(&r);
	ck_assert_int_eq(x.wait_rc, 0);
	/* B and C completed before I was started: they run first, in order */
	ck_assert_str_eq(tr.ev, "ABCI");
	ck_assert_int_eq(b.res, 1);
	ck_assert_int_eq(c.res, 2);
	r_teardown(&r);
}
END_TEST

/* A callback that keeps starting work and flushing must not keep one
 * io_process_completions() call busy forever: the loop gets control back. */
struct chain {
	struct tm_io *io;
	int runs;
};

static void chain_cb(void *arg, int64_t res)
{
	struct chain *c = arg;
	(void)res;
	if (++c->runs < 1000) {
		ck_assert_int_eq(io_nop(c->io, 0, chain_cb, c), 0);
		io_flush(c->io);
	}
}

START_TEST(test_sync_process_returns_to_the_loop)
{
	struct rctx r;
	r_setup(&r);
	struct chain c = { .io = r.io };
	ck_assert_int_eq(io_nop(r.io, 0, chain_cb, &c), 0);
	io_flush(r.io);
	io_process_completions(r.io);
	ck_assert_int_eq(c.runs, 1);
	ck_assert_msg(efd_readable(r.io), "work left over must keep the eventfd readable");
	io_process_completions(r.io);
	ck_assert_int_eq(c.runs, 2);
	r_drain(&r);
	ck_assert_int_eq(c.runs, 1000);
	r_teardown(&r);
}
END_TEST

START_TEST(test_sync_free_waits_for_operations_in_flight)
{
	struct rctx r;
	r_setup(&r);
	uint8_t buf[128];
	fill_pattern(buf, sizeof(buf), 6);
	struct iovec iov = { buf, sizeof(buf) };
	struct done a = { 0 }, b = { 0 };
	ck_assert_int_eq(io_writev(r.io, r.fd, &iov, 1, 0, false, done_cb, &a), 0);
	ck_assert_int_eq(io_nop(r.io, 7, done_cb, &b), 0);
	io_free(r.io);
	r.io = NULL;
	ck_assert(a.ran && b.ran);
	ck_assert_int_eq(a.res, 128);
	ck_assert_int_eq(b.res, 7);
	close(r.fd);
	sth_rmtree(r.root);
}
END_TEST

/* ---- io_uring blocked the way a container runtime blocks it --------------- */

/* Makes system call `nr` fail with `err`, as Docker's and Podman's default
 * seccomp profiles (EPERM) or gVisor (ENOSYS) do to io_uring_setup.  The
 * filter matches the system call number only: enough inside this test's
 * own process. */
static int block_syscall(long nr, int err)
{
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fp = { .len = sizeof(prog) / sizeof(prog[0]), .filter = prog };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) != 0)
		return -errno;
	return 0;
}

/* Child: blocks io_uring, makes two rings, writes and reads through one.
 * Exit codes: 0 ok, 2 seccomp unavailable, 10+ the failing step. */
static void blocked_child(long nr, int err, int log_fd)
{
	unsetenv("TIDEMARK_IO");
	dup2(log_fd, STDERR_FILENO);
	tm_log_min_level = TM_LOG_WARN;
	if (block_syscall(nr, err) != 0)
		_exit(2);
	struct tm_io *io, *io2;
	if (io_new(64, &io) != 0)
		_exit(10);
	if (io_is_uring(io))
		_exit(11);
	if (io_new(64, &io2) != 0)
		_exit(12); /* a second ring: no second warning */
	io_free(io2);
	char path[] = "/tmp/tidemark-io-blocked-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		_exit(13);
	unlink(path);
	char msg[] = "written without io_uring";
	char back[sizeof(msg)] = { 0 };
	struct iovec iov = { msg, sizeof(msg) };
	struct done w = { 0 }, rd = { 0 };
	if (io_writev(io, fd, &iov, 1, 0, true, done_cb, &w) != 0 ||
	    io_read(io, fd, back, sizeof(back), 0, done_cb, &rd) != 0)
		_exit(14);
	while (io_inflight(io) > 0)
		if (io_wait(io, 1000) != 0)
			_exit(15);
	if (w.res != (int64_t)sizeof(msg) || rd.res != (int64_t)sizeof(msg) ||
	    memcmp(back, msg, sizeof(msg)) != 0)
		_exit(16);
	io_free(io);
	_exit(0);
}

/* err_named: the warning can name the errno (liburing's probe hides it). */
static void blocked_case(long nr, const char *what, int err, bool err_named)
{
	char logpath[] = "/tmp/tidemark-io-log-XXXXXX";
	int log_fd = mkstemp(logpath);
	ck_assert_int_ge(log_fd, 0);
	unlink(logpath);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		blocked_child(nr, err, log_fd);
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "child died: status %d (%s, errno %d)", status, what, err);
	if (WEXITSTATUS(status) == 2) {
		fprintf(stderr, "seccomp filters unavailable here; blocked %s case (errno %d) not run\n",
			what, err);
		close(log_fd);
		return;
	}
	ck_assert_msg(WEXITSTATUS(status) == 0, "child failed at step %d (%s, errno %d)",
		      WEXITSTATUS(status), what, err);
	char log[4096] = { 0 };
	ssize_t n = pread(log_fd, log, sizeof(log) - 1, 0);
	close(log_fd);
	ck_assert_int_gt(n, 0);
	const char *first = strstr(log, "io_uring is not available here");
	ck_assert_msg(first != NULL, "no fallback warning in: %s", log);
	ck_assert_msg(strstr(first + 1, "io_uring is not available here") == NULL,
		      "the warning must appear once: %s", log);
	ck_assert_msg((!err_named || strstr(log, strerror(err)) != NULL) && strstr(log, what) != NULL,
		      "the warning names the cause (%s: %s): %s", what, strerror(err), log);
	ck_assert_msg(strstr(log, "ERROR") == NULL, "no error logged: %s", log);
}

START_TEST(test_io_new_falls_back_when_seccomp_returns_eperm)
{
	blocked_case(__NR_io_uring_setup, "io_uring_setup", EPERM, true);
}
END_TEST

START_TEST(test_io_new_falls_back_when_io_uring_setup_is_enosys)
{
	blocked_case(__NR_io_uring_setup, "io_uring_setup", ENOSYS, true);
}
END_TEST

/* A profile that allows setting a ring up but not using it. */
START_TEST(test_io_new_falls_back_when_io_uring_enter_is_blocked)
{
	blocked_case(__NR_io_uring_enter, "io_uring_enter", EPERM, true);
}
END_TEST

START_TEST(test_io_new_falls_back_when_io_uring_register_is_blocked)
{
	blocked_case(__NR_io_uring_register, "io_uring_register", EPERM, false);
}
END_TEST

/* ---- the partition log on the fallback ----------------------------------- */

START_TEST(test_sync_log_round_trip_across_segments_and_reopen)
{
	struct tctx t;
	t_setup(&t);
	ck_assert(!io_is_uring(t.io));
	t.cfg.segment_bytes = 1024;
	t_open(&t);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(t_append(&t, 3, t.now + i), i * 3);
	ck_assert_int_eq(log_end_offset(t.l), 300);
	ck_assert_int_eq(log_written_offset(t.l), 300);
	ck_assert_int_ge(log_segment_count(t.l), 10);
	ck_assert_int_eq(t_read_all(&t, 0, 300), 300);
	ck_assert_int_eq(t_read_all(&t, 151, 1 << 20), 300 - 151);
	t_close(&t);
	ck_assert(t_exists(&t, ".tidemark_cleanshutdown"));
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 300);
	ck_assert_int_eq(t_read_all(&t, 0, 4096), 300);
	ck_assert_int_eq(t_append(&t, 1, t.now), 300);
	t_teardown(&t);
}
END_TEST

static void many_cb(void *arg, int err)
{
	ck_assert_int_eq(err, 0);
	(*(int *)arg)++;
}

START_TEST(test_sync_log_group_commit_with_fsync)
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
	for (int i = 0; i < 200; i++)
		ck_assert_int_eq(log_append(t.l, w.buf, w.len, 0, -1, t.now, &res, many_cb, &done), 0);
	wbuf_deinit(&w);
	ck_assert_int_eq(done, 0); /* nothing calls back from log_append */
	sth_drain(t.io);
	ck_assert_int_eq(done, 200);
	ck_assert_int_eq(log_written_offset(t.l), 400);
	ck_assert_int_eq(log_flushed_offset(t.l), 400);
	ck_assert_int_eq(t_read_all(&t, 0, 4096), 400);
	t_teardown(&t);
}
END_TEST

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

START_TEST(test_sync_log_recovers_after_crash)
{
	struct tctx t;
	t_setup(&t);
	struct fill f = { 20, 3 };
	t_crash_after(&t, child_fill, &f); /* the child's ring is the fallback too */
	const char *seg = "00000000000000000000.log";
	ck_assert(!t_exists(&t, ".tidemark_cleanshutdown"));
	off_t size = t_file_size(&t, seg);
	t_set_size(&t, seg, size - 10); /* the last write was torn */
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 57);
	ck_assert_int_eq(t_read_all(&t, 0, 500), 57);
	ck_assert_int_eq(t_append(&t, 1, 5), 57);
	t_close(&t);
	t_open(&t);
	ck_assert_int_eq(log_end_offset(t.l), 58);
	t_teardown(&t);
}
END_TEST

START_TEST(test_sync_log_short_writes_and_reads_complete)
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
	struct t_app a[40] = { 0 };
	struct log_append_result res;
	for (int i = 0; i < 40; i++)
		ck_assert_int_eq(log_append(t.l, w.buf, w.len, 0, -1, t.now, &res, t_app_cb, &a[i]), 0);
	wbuf_deinit(&w);
	sth_drain(t.io);
	for (int i = 0; i < 40; i++) {
		ck_assert_msg(a[i].done, "append %d never completed", i);
		ck_assert_int_eq(a[i].err, 0);
	}
	ck_assert_int_gt(f.hits, 40);
	ck_assert(!log_dir_offline(t.l));
	ck_assert_int_eq(t_read_all(&t, 0, 5000), 160);
	io_set_fault(t.io, NULL, NULL);
	t_reopen_expect(&t, 160);
	t_teardown(&t);
}
END_TEST

START_TEST(test_sync_log_write_error_takes_log_offline)
{
	struct tctx t;
	t_setup(&t);
	t.cfg.flush_interval_messages = 1;
	t_open(&t);
	t_append(&t, 2, 1);
	struct fault f = { .op = IO_OP_FSYNC, .res = -EIO, .count = -1 };
	io_set_fault(t.io, fault_fn, &f);
	struct tm_wbuf w;
	wbuf_init(&w);
	struct sth_batch_spec s = sth_spec(2, 2);
	sth_build_batch(&w, &s);
	ck_assert_int_eq(t_append_raw(&t, w.buf, w.len, 0, -1, NULL), -EIO);
	wbuf_deinit(&w);
	ck_assert(log_dir_offline(t.l));
	ck_assert_int_gt(f.hits, 0);
	io_set_fault(t.io, NULL, NULL);
	t_close(&t);
	t_open(&t);
	ck_assert(!log_dir_offline(t.l));
	int64_t leo = log_end_offset(t.l);
	ck_assert_int_ge(leo, 2);
	ck_assert_int_eq(t_append(&t, 1, 3), leo);
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

START_TEST(test_sync_log_truncate_from_another_logs_callback)
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

/* ---- io_uring with small writes performed by io_flush ---------------- */

static bool i_setup(struct rctx *r)
{
	unsetenv("TIDEMARK_IO"); /* this forked test only */
	r_open(r);
	if (!io_is_uring(r->io)) {
		fprintf(stderr, "io_uring unavailable here: inline case skipped\n");
		r_teardown(r);
		return false;
	}
	return true;
}

static off_t file_size(int fd)
{
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	return st.st_size;
}

/* The file holds exactly `want` at `off`. */
static void assert_file_holds(int fd, const uint8_t *want, size_t len, off_t off)
{
	uint8_t *back = malloc(len);
	ck_assert_ptr_nonnull(back);
	ck_assert_int_eq(pread(fd, back, len, off), (ssize_t)len);
	ck_assert(memcmp(back, want, len) == 0);
	free(back);
}

START_TEST(test_inline_small_write_is_performed_by_flush)
{
	struct rctx r;
	if (!i_setup(&r))
		return;
	uint8_t buf[100];
	fill_pattern(buf, sizeof(buf), 7);
	struct iovec iov = { buf, sizeof(buf) };
	struct done w = { 0 };
	ck_assert_int_eq(io_writev(r.io, r.fd, &iov, 1, 0, false, done_cb, &w), 0);
	ck_assert_int_eq(file_size(r.fd), 0);
	io_flush(r.io);
	/* written by the flush itself; the callback still waits for the loop */
	ck_assert_int_eq(file_size(r.fd), 100);
	ck_assert(!w.ran);
	ck_assert_uint_eq(io_inflight(r.io), 1);
	ck_assert_msg(efd_readable(r.io), "the eventfd must wake the loop after a flush");
	io_process_completions(r.io);
	ck_assert(w.ran);
	ck_assert_int_eq(w.res, 100);
	ck_assert_uint_eq(io_inflight(r.io), 0);
	assert_file_holds(r.fd, buf, sizeof(buf), 0);
	/* io_wait does not block on a CQE that will never come */
	struct done n = { 0 };
	ck_assert_int_eq(io_nop(r.io, 5, done_cb, &n), 0);
	ck_assert_int_eq(io_wait(r.io, 10000), 0);
	ck_assert(n.ran);
	ck_assert_int_eq(n.res, 5);
	r_teardown(&r);
}
END_TEST

/* Small writes, a large one, a write with fsync, a read and NOPs in one
 * flush.  The kernel completes its ops in any order (a NOP before the large
 * write started ahead of it), so the ring promises no order among them; the
 * ops the flush performed itself, at the head of the queue, run first and in
 * order, and every op completes once with its result. */
START_TEST(test_inline_ops_run_before_the_kernels)
{
	struct rctx r;
	if (!i_setup(&r))
		return;
	struct trace tr = { 0 };
	static uint8_t big[256 * 1024], small[512], rb[512];
	fill_pattern(big, sizeof(big), 8);
	fill_pattern(small, sizeof(small), 9);
	struct iovec bi = { big, sizeof(big) }, si = { small, sizeof(small) };
	const char tags[] = "abcdefghij";
	struct done d[10];
	for (int i = 0; i < 10; i++)
		d[i] = (struct done){ .trace = &tr, .tag = tags[i] };
	int64_t off = 0;
	ck_assert_int_eq(io_writev(r.io, r.fd, &si, 1, off, false, done_cb, &d[0]), 0);
	off += (int64_t)sizeof(small);
	ck_assert_int_eq(io_nop(r.io, 1, done_cb, &d[1]), 0);
	ck_assert_int_eq(io_writev(r.io, r.fd, &bi, 1, off, false, done_cb, &d[2]), 0);
	off += (int64_t)sizeof(big);
	ck_assert_int_eq(io_writev(r.io, r.fd, &si, 1, off, false, done_cb, &d[3]), 0);
	off += (int64_t)sizeof(small);
	ck_assert_int_eq(io_nop(r.io, 4, done_cb, &d[4]), 0);
	ck_assert_int_eq(io_writev(r.io, r.fd, &si, 1, off, true, done_cb, &d[5]), 0);
	off += (int64_t)sizeof(small);
	/* the kernel may run a read beside the writes before it: read what
	 * the flush has already written */
	ck_assert_int_eq(io_read(r.io, r.fd, rb, sizeof(rb), 0, done_cb, &d[6]), 0);
	io_flush(r.io);
	/* a flush from inside the loop's turn: more small writes, behind the kernel's */
	ck_assert_int_eq(io_writev(r.io, r.fd, &si, 1, off, false, done_cb, &d[7]), 0);
	off += (int64_t)sizeof(small);
	ck_assert_int_eq(io_nop(r.io, 8, done_cb, &d[8]), 0);
	ck_assert_int_eq(io_writev(r.io, r.fd, &si, 1, off, false, done_cb, &d[9]), 0);
	off += (int64_t)sizeof(small);
	r_drain(&r);
	ck_assert_int_eq(tr.n, 10);
	ck_assert_msg(strncmp(tr.ev, "ab", 2) == 0, "trace %s", tr.ev);
	for (int i = 0; i < 10; i++)
		ck_assert_msg(strchr(tr.ev, tags[i]), "%c missing from %s", tags[i], tr.ev);
	ck_assert_int_eq(d[1].res, 1);
	ck_assert_int_eq(d[4].res, 4);
	ck_assert_int_eq(d[8].res, 8);
	ck_assert_int_eq(d[2].res, (int64_t)sizeof(big));
	ck_assert_int_eq(d[5].res, (int64_t)sizeof(small));
	ck_assert_int_eq(d[6].res, (int64_t)sizeof(small));
	ck_assert(memcmp(rb, small, sizeof(small)) == 0);
	ck_assert_int_eq(file_size(r.fd), off);
	/* the ring idle again: the next small write is the flush's own */
	struct done e = { 0 };
	ck_assert_int_eq(io_writev(r.io, r.fd, &si, 1, off, false, done_cb, &e), 0);
	io_flush(r.io);
	ck_assert_int_eq(file_size(r.fd), off + (int64_t)sizeof(small));
	r_drain(&r);
	ck_assert(e.ran);
	r_teardown(&r);
}
END_TEST

/* A callback of a write performed by the flush starts a small write and a
 * large one and flushes: the small one, performed by the first flush, is
 * not overtaken by the large one the kernel completes meanwhile. */
struct starter {
	struct rctx *r;
	struct trace *trace;
	struct done small, big;
	struct iovec si, bi;
};

static void starter_cb(void *arg, int64_t res)
{
	struct starter *x = arg;
	ck_assert_int_gt(res, 0);
	trace_add(x->trace, 'S');
	x->small = (struct done){ .trace = x->trace, .tag = 's' };
	x->big = (struct done){ .trace = x->trace, .tag = 'b' };
	ck_assert_int_eq(io_writev(x->r->io, x->r->fd, &x->si, 1, 0, false, done_cb, &x->small), 0);
	io_flush(x->r->io);
	ck_assert_int_eq(io_writev(x->r->io, x->r->fd, &x->bi, 1, 4096, false, done_cb, &x->big), 0);
	io_flush(x->r->io);
}

START_TEST(test_inline_write_from_a_callback_keeps_its_place)
{
	struct rctx r;
	if (!i_setup(&r))
		return;
	struct trace tr = { 0 };
	static uint8_t big[1024 * 1024], small[64];
	struct starter x = { .r = &r, .trace = &tr, .si = { small, sizeof(small) },
			     .bi = { big, sizeof(big) } };
	ck_assert_int_eq(io_writev(r.io, r.fd, &x.si, 1, 0, false, starter_cb, &x), 0);
	for (int i = 0; i < 200 && io_inflight(r.io) > 0; i++) {
		io_process_completions(r.io);
		io_flush(r.io);
		usleep(1000); /* the large write completes in the kernel meanwhile */
	}
	r_drain(&r);
	ck_assert_str_eq(tr.ev, "Ssb");
	ck_assert_int_eq(x.big.res, (int64_t)sizeof(big));
	r_teardown(&r);
}
END_TEST

/* With a notify hook the flush calls it instead of writing the eventfd,
 * and io_process_due runs the callbacks without reading the eventfd. */
static void count_notify(void *arg)
{
	(*(int *)arg)++;
}

START_TEST(test_inline_notify_hook_replaces_the_eventfd)
{
	struct rctx r;
	if (!i_setup(&r))
		return;
	int notified = 0;
	io_set_notify(r.io, count_notify, &notified);
	uint8_t buf[300];
	fill_pattern(buf, sizeof(buf), 11);
	struct iovec iov = { buf, sizeof(buf) };
	struct done w = { 0 };
	ck_assert_int_eq(io_writev(r.io, r.fd, &iov, 1, 0, false, done_cb, &w), 0);
	io_flush(r.io);
	ck_assert_int_eq(notified, 1);
	ck_assert_msg(!efd_readable(r.io), "the hook replaces the eventfd's write");
	ck_assert(!w.ran);
	io_process_due(r.io);
	ck_assert(w.ran);
	ck_assert_int_eq(w.res, 300);
	assert_file_holds(r.fd, buf, sizeof(buf), 0);
	/* the kernel's own completions still come through the eventfd */
	static uint8_t big[256 * 1024];
	struct iovec bi = { big, sizeof(big) };
	struct done b = { 0 };
	ck_assert_int_eq(io_writev(r.io, r.fd, &bi, 1, 300, true, done_cb, &b), 0);
	io_flush(r.io);
	ck_assert_int_eq(notified, 1);
	for (int i = 0; i < 100 && !b.ran; i++) { /* the write's CQE, then its fsync's */
		struct pollfd p = { .fd = io_event_fd(r.io), .events = POLLIN };
		ck_assert_int_eq(poll(&p, 1, 10000), 1);
		io_process_completions(r.io);
	}
	ck_assert(b.ran);
	ck_assert_int_eq(b.res, (int64_t)sizeof(big));
	io_set_notify(r.io, NULL, NULL);
	r_teardown(&r);
}
END_TEST

/* Short and failed writes performed by the flush: completed, or the errno
 * reaches the callback, and the fault hook sees every result. */
START_TEST(test_inline_short_and_failed_writes)
{
	struct rctx r;
	if (!i_setup(&r))
		return;
	uint8_t buf[4000];
	fill_pattern(buf, sizeof(buf), 10);
	struct iovec iov = { buf, sizeof(buf) };
	struct fault f = { .count = -1, .halve = true };
	io_set_fault(r.io, fault_fn, &f);
	struct done a = { 0 };
	ck_assert_int_eq(io_writev(r.io, r.fd, &iov, 1, 0, false, done_cb, &a), 0);
	io_flush(r.io);
	ck_assert_int_eq(file_size(r.fd), 4000); /* every half, by the flush */
	r_drain(&r);
	ck_assert_int_eq(a.res, 4000);
	ck_assert_int_gt(f.hits, 5);
	assert_file_holds(r.fd, buf, sizeof(buf), 0);
	f = (struct fault){ .op = IO_OP_WRITE, .res = -ENOSPC, .count = 1 };
	struct done b = { 0 }, c = { 0 };
	ck_assert_int_eq(io_writev(r.io, r.fd, &iov, 1, 4000, false, done_cb, &b), 0);
	ck_assert_int_eq(io_writev(r.io, r.fd, &iov, 1, 8000, false, done_cb, &c), 0);
	r_drain(&r);
	ck_assert_int_eq(b.res, -ENOSPC);
	ck_assert_int_eq(c.res, 4000);
	io_set_fault(r.io, NULL, NULL);
	r_teardown(&r);
}
END_TEST

int main(void)
{
	/* before any ring exists; Check's forked test processes inherit it */
	if (setenv("TIDEMARK_IO", "sync", 1) != 0) {
		perror("setenv");
		return 1;
	}
	Suite *s = suite_create("storage_io_sync");
	TCase *tc = tcase_create("ring");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sync_callbacks_run_only_from_process_completions);
	tcase_add_test(tc, test_sync_callbacks_run_in_start_order);
	tcase_add_test(tc, test_sync_short_writes_and_reads_are_completed);
	tcase_add_test(tc, test_sync_errors_reach_the_callback);
	tcase_add_test(tc, test_sync_eagain_and_eintr_are_retried);
	tcase_add_test(tc, test_sync_callback_may_wait_on_the_ring);
	tcase_add_test(tc, test_sync_process_returns_to_the_loop);
	tcase_add_test(tc, test_sync_free_waits_for_operations_in_flight);
	tcase_add_test(tc, test_io_new_falls_back_when_seccomp_returns_eperm);
	tcase_add_test(tc, test_io_new_falls_back_when_io_uring_setup_is_enosys);
	tcase_add_test(tc, test_io_new_falls_back_when_io_uring_enter_is_blocked);
	tcase_add_test(tc, test_io_new_falls_back_when_io_uring_register_is_blocked);
	suite_add_tcase(s, tc);
	TCase *tl = tcase_create("log");
	tcase_set_timeout(tl, 60);
	tcase_add_test(tl, test_sync_log_round_trip_across_segments_and_reopen);
	tcase_add_test(tl, test_sync_log_group_commit_with_fsync);
	tcase_add_test(tl, test_sync_log_recovers_after_crash);
	tcase_add_test(tl, test_sync_log_short_writes_and_reads_complete);
	tcase_add_test(tl, test_sync_log_write_error_takes_log_offline);
	tcase_add_test(tl, test_sync_log_truncate_from_another_logs_callback);
	suite_add_tcase(s, tl);
	TCase *ti = tcase_create("inline");
	tcase_set_timeout(ti, 60);
	tcase_add_test(ti, test_inline_small_write_is_performed_by_flush);
	tcase_add_test(ti, test_inline_ops_run_before_the_kernels);
	tcase_add_test(ti, test_inline_write_from_a_callback_keeps_its_place);
	tcase_add_test(ti, test_inline_short_and_failed_writes);
	tcase_add_test(ti, test_inline_notify_hook_replaces_the_eventfd);
	suite_add_tcase(s, ti);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
