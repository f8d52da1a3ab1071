/*
 * io.c — the io_uring ring behind storage/io.h.
 *
 * Every SQE's user_data is the address of its struct io_op, with bit 0 set
 * on the fdatasync SQE that a write links after itself.  An operation goes
 * out as "attempts": one attempt is the SQEs prepared together (a writev of
 * what is left plus, if wanted, the linked fsync), and the operation decides
 * what to do next only once every CQE of the attempt has arrived — resubmit
 * the rest of a short transfer, requeue on -EAGAIN, resubmit a cancelled
 * fsync, or finish and run the callback.  Attempts that find the submission
 * queue full wait in a FIFO (pending_head..pending_tail) for the next flush.
 *
 * Invariant: an op is in exactly one place — the pending FIFO, in the kernel
 * with `pending` CQEs outstanding, or freed after its callback.
 *
 * The synchronous fallback.  Where io_uring cannot be set up — a container's
 * seccomp profile (Docker, Podman, RuntimeDefault) blocks io_uring_setup,
 * kernel.io_uring_disabled is 1 or 2, an old kernel, gVisor — io_new gets
 * -ENOSYS, -EPERM or -EACCES, or a ring that lacks an opcode used here or
 * cannot complete a NOP; it logs one warning per process, and the ring runs
 * without the kernel queue (TIDEMARK_IO=sync forces this, for tests).
 * Operations still queue in the pending FIFO; io_flush() performs them in
 * order with pwritev / pread / fdatasync on the calling thread, each to the
 * end (short transfers continued, -EINTR / -EAGAIN retried at most
 * IO_RETRY_MAX times in a row, a write's fsync only after all of it), moves
 * them with their result to the completed FIFO (done_head..done_tail) and
 * writes the eventfd.  io_process_completions() then runs their callbacks in
 * order, exactly as it runs CQEs, so callers see the same contract:
 * callbacks never run from the function that started the operation, the
 * fault hook sees every system call's result, io_inflight() counts the op
 * until its callback.  The invariant becomes: an op is in the pending FIFO,
 * in the completed FIFO, or freed after its callback.
 */
#include "storage/io.h"

#include <errno.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/tm_assert.h"
#include "common/tm_log.h"

#define IO_IOV_MAX 1024
#define IO_ZERO_WRITES_MAX 3
/* Fallback: consecutive -EINTR / -EAGAIN (or -ECANCELED fsync) results of one
 * system call before the op fails with that error instead of spinning the
 * loop forever. */
#define IO_RETRY_MAX 100
/* Writes up to this size (with no fsync) are performed on the loop thread
 * when the kernel has none of this ring's operations: see io_flush. */
#define IO_INLINE_MAX_DEFAULT (64 * 1024)

struct io_op {
	struct io_op *next; /* pending FIFO link (fallback: also the completed FIFO) */
	struct tm_io *io;
	enum io_op_kind kind;
	int fd;
	bool want_fsync;
	bool fsync_done;
	bool sent_data;
	bool sent_fsync;
	int pending; /* CQEs outstanding for the current attempt */
	int data_res;
	int fsync_res;
	int zero_writes;
	int iov_first; /* first iovec not yet fully transferred */
	int iovcnt;
	int64_t off;      /* file offset of the next byte to transfer */
	size_t remaining; /* bytes still to transfer */
	int64_t done;     /* bytes transferred so far */
	int64_t nop_res;
	int64_t res; /* fallback: the result the callback gets */
	io_done_fn cb;
	void *arg;
	struct iovec iov[];
};

struct tm_io {
	struct io_uring ring;
	int efd;
	unsigned inflight;
	struct io_op *pending_head;
	struct io_op *pending_tail;
	bool sync;                /* the fallback: no kernel ring */
	unsigned in_kernel;       /* ops with SQEs handed to the kernel, CQEs not all reaped */
	size_t inline_max;        /* see io_flush; 0: every op goes to the kernel */
	struct io_op *done_head;  /* performed here, callback not yet run */
	struct io_op *done_tail;
	unsigned done_count;
	io_fault_fn fault;
	void *fault_arg;
	io_notify_fn notify; /* ring: ops performed here are due (else the eventfd) */
	void *notify_arg;
};

/* TIDEMARK_IO=sync forces the fallback; TIDEMARK_IO=uring sends every
 * operation to the kernel, small writes too (io_set_inline_max(io, 0)). */
static bool io_mode_is(const char *mode)
{
	const char *v = getenv("TIDEMARK_IO");
	return v && strcmp(v, mode) == 0;
}

/* The errors that mean "io_uring is not allowed or not there", as opposed to
 * a broken setup (no memory, bad arguments) that should stop start-up. */
static bool io_uring_unavailable(int err)
{
	return err == -ENOSYS || err == -EPERM || err == -EACCES;
}

static void io_warn_fallback(const char *why)
{
	/* once per process: every event-loop thread (and test) makes a ring */
	static atomic_bool warned;
	if (atomic_exchange(&warned, true))
		return;
	tm_warn("storage", "io_uring is not available here (%s): storage falls back to synchronous "
		"pread/pwritev/fdatasync on the event loop, so every wait for the disk (fsync, reads "
		"not in the page cache) stalls all clients; allow io_uring (the container's seccomp "
		"profile, kernel.io_uring_disabled=0) for full speed", why);
}

/* Whether a ring that io_uring_setup gave us can do Tidemark's work: the
 * kernel knows every opcode used here (IORING_OP_READ came with 5.6; 5.1-5.5
 * set up rings whose reads fail with -EINVAL), and io_uring_enter is allowed
 * (a seccomp profile may block it while allowing setup).  One NOP, waited
 * for before the eventfd is registered, so nothing is signalled.  false with
 * the reason in `why`. */
static bool uring_usable(struct io_uring *ring, char *why, size_t cap)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
	if (!probe) {
		/* liburing keeps the errno to itself here */
		snprintf(why, cap, "io_uring_register cannot list the ring's operations: Linux "
			 "before 5.6, or the call is blocked");
		return false;
	}
	static const int ops[] = { IORING_OP_WRITEV, IORING_OP_READ, IORING_OP_FSYNC,
				   IORING_OP_NOP };
	bool ok = true;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		ok = ok && io_uring_opcode_supported(probe, ops[i]);
	io_uring_free_probe(probe);
	if (!ok) {
		snprintf(why, cap, "the kernel's io_uring lacks read/writev/fsync (Linux 5.6+ needed)");
		return false;
	}
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	TM_ASSERT(sqe != NULL);
	io_uring_prep_nop(sqe);
	/* a NOP completes inside io_uring_enter: no timeout needed (and none
	 * wanted: before 5.11 liburing would add a timeout SQE of its own) */
	int err;
	do
		err = io_uring_submit_and_wait(ring, 1);
	while (err == -EINTR);
	struct io_uring_cqe *cqe;
	if (err >= 0)
		err = io_uring_peek_cqe(ring, &cqe);
	if (err < 0) {
		snprintf(why, cap, "io_uring_enter: %s", strerror(-err));
		return false;
	}
	io_uring_cqe_seen(ring, cqe);
	return true;
}

int io_new(unsigned entries, struct tm_io **out)
{
	if (entries == 0 || entries > 32768)
		return -EINVAL;
	struct tm_io *io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	int err = 0;
	io->inline_max = io_mode_is("uring") ? 0 : IO_INLINE_MAX_DEFAULT;
	if (io_mode_is("sync")) {
		io_warn_fallback("TIDEMARK_IO=sync");
		io->sync = true;
	} else {
		err = io_uring_queue_init(entries, &io->ring, 0);
		char why[128];
		if (err < 0 && io_uring_unavailable(err)) {
			snprintf(why, sizeof(why), "io_uring_setup: %s", strerror(-err));
			io_warn_fallback(why);
			io->sync = true;
			err = 0;
		} else if (err < 0) {
			tm_error("storage", "io_uring_queue_init(%u) failed: %s (before Linux 5.12 the "
				 "ring counts against the locked-memory limit: raise ulimit -l)", entries,
				 strerror(-err));
			goto err_free;
		} else if (!uring_usable(&io->ring, why, sizeof(why))) {
			io_uring_queue_exit(&io->ring);
			io_warn_fallback(why);
			io->sync = true;
		}
	}
	io->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (io->efd < 0) {
		err = -errno;
		tm_error("storage", "eventfd failed: %s", strerror(errno));
		goto err_exit_ring;
	}
	if (!io->sync) {
		err = io_uring_register_eventfd(&io->ring, io->efd);
		if (err < 0) {
			tm_error("storage", "io_uring_register_eventfd failed: %s", strerror(-err));
			goto err_close_efd;
		}
	}
	*out = io;
	return 0;

err_close_efd:
	close(io->efd);
err_exit_ring:
	if (!io->sync)
		io_uring_queue_exit(&io->ring);
err_free:
	free(io);
	return err;
}

bool io_is_uring(const struct tm_io *io)
{
	return !io->sync;
}

void io_free(struct tm_io *io)
{
	if (!io)
		return;
	while (io->inflight > 0) {
		int err = io_wait(io, 1000);
		if (err == -ETIME)
			tm_warn("storage", "waiting for %u I/O operations before closing the ring",
				io->inflight);
	}
	if (!io->sync)
		io_uring_queue_exit(&io->ring);
	close(io->efd);
	free(io);
}

int io_event_fd(const struct tm_io *io)
{
	return io->efd;
}

unsigned io_inflight(const struct tm_io *io)
{
	return io->inflight;
}

void io_set_fault(struct tm_io *io, io_fault_fn fn, void *arg)
{
	io->fault = fn;
	io->fault_arg = arg;
}

void io_set_inline_max(struct tm_io *io, size_t bytes)
{
	io->inline_max = bytes;
}

void io_set_notify(struct tm_io *io, io_notify_fn fn, void *arg)
{
	io->notify = fn;
	io->notify_arg = arg;
}

static void fifo_push(struct io_op **head, struct io_op **tail, struct io_op *op)
{
	op->next = NULL;
	if (*tail)
		(*tail)->next = op;
	else
		*head = op;
	*tail = op;
}

static struct io_op *fifo_pop(struct io_op **head, struct io_op **tail)
{
	struct io_op *op = *head;
	*head = op->next;
	if (!*head)
		*tail = NULL;
	return op;
}

static void pending_push(struct tm_io *io, struct io_op *op)
{
	fifo_push(&io->pending_head, &io->pending_tail, op);
}

static void op_complete(struct io_op *op, int64_t res)
{
	struct tm_io *io = op->io;
	TM_ASSERT(io->inflight > 0);
	io->inflight--;
	io_done_fn cb = op->cb;
	void *arg = op->arg;
	free(op);
	cb(arg, res);
}

/* Prepares the SQEs of the op's next attempt; false when the SQ lacks room. */
static bool op_prepare(struct io_op *op)
{
	struct io_uring *ring = &op->io->ring;
	bool data = false, fs = false;
	switch (op->kind) {
	case IO_OP_WRITE:
		data = op->remaining > 0;
		fs = op->want_fsync && !op->fsync_done;
		break;
	case IO_OP_READ:
	case IO_OP_NOP:
		data = true;
		break;
	case IO_OP_FSYNC:
		fs = true;
		break;
	}
	unsigned need = (unsigned)data + (unsigned)fs;
	if (io_uring_sq_space_left(ring) < need)
		return false;
	op->sent_data = data;
	op->sent_fsync = fs;
	op->data_res = 0;
	op->fsync_res = 0;
	op->pending = (int)need;
	if (data) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		TM_ASSERT(sqe != NULL);
		if (op->kind == IO_OP_WRITE)
			io_uring_prep_writev(sqe, op->fd, &op->iov[op->iov_first],
					     (unsigned)(op->iovcnt - op->iov_first), (uint64_t)op->off);
		else if (op->kind == IO_OP_READ)
			io_uring_prep_read(sqe, op->fd, op->iov[0].iov_base,
					   (unsigned)op->remaining, (uint64_t)op->off);
		else
			io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
		if (fs)
			sqe->flags |= IOSQE_IO_LINK;
	}
	if (fs) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		TM_ASSERT(sqe != NULL);
		io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | 1u);
	}
	return true;
}

static void op_advance(struct io_op *op, size_t n)
{
	op->done += (int64_t)n;
	op->off += (int64_t)n;
	op->remaining -= n;
	while (n > 0 && op->iov_first < op->iovcnt) {
		struct iovec *v = &op->iov[op->iov_first];
		if (n >= v->iov_len) {
			n -= v->iov_len;
			op->iov_first++;
		} else {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= n;
			n = 0;
		}
	}
	/* skip empty iovecs so a resubmitted writev never starts on one */
	while (op->iov_first < op->iovcnt && op->iov[op->iov_first].iov_len == 0)
		op->iov_first++;
}

static bool retryable(int res)
{
	return res == -EAGAIN || res == -EINTR;
}

/* All CQEs of the attempt are in: finish, or queue the next attempt. */
static void op_attempt_done(struct io_op *op)
{
	struct tm_io *io = op->io;
	switch (op->kind) {
	case IO_OP_NOP:
		op_complete(op, op->nop_res);
		return;
	case IO_OP_FSYNC:
		if (retryable(op->fsync_res) || op->fsync_res == -ECANCELED)
			break;
		op_complete(op, op->fsync_res < 0 ? op->fsync_res : 0);
		return;
	case IO_OP_READ:
		if (retryable(op->data_res))
			break;
		if (op->data_res < 0) {
			op_complete(op, op->data_res);
			return;
		}
		if (op->data_res == 0 || (size_t)op->data_res >= op->remaining) {
			if (op->data_res > 0)
				op_advance(op, op->remaining);
			op_complete(op, op->done);
			return;
		}
		op_advance(op, (size_t)op->data_res);
		break;
	case IO_OP_WRITE:
		if (op->sent_data) {
			int r = op->data_res;
			if (retryable(r))
				break;
			if (r < 0) {
				op_complete(op, r);
				return;
			}
			if (r == 0 && ++op->zero_writes > IO_ZERO_WRITES_MAX) {
				op_complete(op, -EIO);
				return;
			}
			op_advance(op, TM_MIN((size_t)r, op->remaining));
			if (op->remaining > 0)
				break; /* the linked fsync was cancelled or is redone */
		}
		if (op->want_fsync && !op->fsync_done) {
			if (!op->sent_fsync)
				break;
			int f = op->fsync_res;
			if (retryable(f) || f == -ECANCELED)
				break;
			if (f < 0) {
				op_complete(op, f);
				return;
			}
			op->fsync_done = true;
		}
		op_complete(op, op->done);
		return;
	}
	pending_push(io, op);
}

static void handle_cqe(struct tm_io *io, uint64_t ud, int res)
{
	struct io_op *op = (struct io_op *)(uintptr_t)(ud & ~(uint64_t)1);
	bool is_fsync = ud & 1;
	if (io->fault && op->kind != IO_OP_NOP)
		res = io->fault(io->fault_arg, is_fsync ? IO_OP_FSYNC : (int)op->kind, res);
	if (is_fsync)
		op->fsync_res = res;
	else
		op->data_res = res;
	TM_ASSERT(op->pending > 0);
	if (--op->pending == 0) {
		TM_ASSERT(io->in_kernel > 0);
		io->in_kernel--;
		op_attempt_done(op);
	}
}

/* ---- the synchronous fallback ------------------------------------------- */

/* One system call's result as the ring would see it: -errno or a count,
 * passed through the fault hook like a CQE. */
static int sync_result(struct tm_io *io, int op_kind, ssize_t n)
{
	int res = n < 0 ? -errno : (int)TM_MIN(n, (ssize_t)INT32_MAX);
	if (io->fault)
		res = io->fault(io->fault_arg, op_kind, res);
	return res;
}

/* fdatasync until it succeeds, fails, or keeps being interrupted. */
static int sync_fsync(struct io_op *op)
{
	for (int retries = 0;; retries++) {
		int r = sync_result(op->io, IO_OP_FSYNC, fdatasync(op->fd));
		if ((retryable(r) || r == -ECANCELED) && retries < IO_RETRY_MAX)
			continue;
		return r < 0 ? r : 0;
	}
}

static int64_t sync_read(struct io_op *op)
{
	int retries = 0;
	while (op->remaining > 0) {
		int r = sync_result(op->io, IO_OP_READ,
				    pread(op->fd, op->iov[0].iov_base, op->remaining, (off_t)op->off));
		if (retryable(r) && retries++ < IO_RETRY_MAX)
			continue;
		if (r < 0)
			return r;
		if (r == 0)
			break; /* end of file */
		retries = 0;
		op_advance(op, TM_MIN((size_t)r, op->remaining));
	}
	return op->done;
}

static int64_t sync_write(struct io_op *op)
{
	int retries = 0;
	while (op->remaining > 0) {
		struct iovec *v = &op->iov[op->iov_first];
		int r = sync_result(op->io, IO_OP_WRITE,
				    pwritev(op->fd, v, op->iovcnt - op->iov_first, (off_t)op->off));
		if (retryable(r) && retries++ < IO_RETRY_MAX)
			continue;
		if (r < 0)
			return r;
		if (r == 0 && ++op->zero_writes > IO_ZERO_WRITES_MAX)
			return -EIO;
		retries = 0;
		op_advance(op, TM_MIN((size_t)r, op->remaining));
	}
	if (op->want_fsync) {
		int f = sync_fsync(op);
		if (f < 0)
			return f;
	}
	return op->done;
}

static void sync_perform(struct io_op *op)
{
	switch (op->kind) {
	case IO_OP_NOP:
		op->res = op->nop_res;
		break;
	case IO_OP_FSYNC:
		op->res = sync_fsync(op);
		break;
	case IO_OP_READ:
		op->res = sync_read(op);
		break;
	case IO_OP_WRITE:
		op->res = sync_write(op);
		break;
	}
}

static void sync_signal(struct tm_io *io)
{
	uint64_t one = 1;
	ssize_t r = write(io->efd, &one, sizeof(one));
	(void)r; /* EAGAIN only when the counter is near overflow: still readable */
}

/* Ring: callbacks of ops performed here are due; the notify hook, if set,
 * saves the eventfd's write now and its read in io_process_completions. */
static void here_signal(struct tm_io *io)
{
	if (io->notify)
		io->notify(io->notify_arg);
	else
		sync_signal(io);
}

static struct io_op *pending_pop(struct tm_io *io)
{
	return fifo_pop(&io->pending_head, &io->pending_tail);
}

/* Performs the op here, now, and queues it for its callback. */
static void perform_here(struct tm_io *io, struct io_op *op)
{
	sync_perform(op);
	fifo_push(&io->done_head, &io->done_tail, op);
	io->done_count++;
}

/* Performs every queued op in order and moves it to the completed FIFO. */
static void sync_flush(struct tm_io *io)
{
	bool any = false;
	while (io->pending_head) {
		perform_here(io, pending_pop(io));
		any = true;
	}
	if (any)
		sync_signal(io);
}

/* Runs the callbacks of the ops performed here so far, each unlinked before
 * its callback so a callback may wait on the ring (io_wait re-enters here).
 * Ops performed by flushes during the callbacks wait for the next call: the
 * loop returns to the event loop rather than chasing a callback that keeps
 * queueing work. */
static void done_run(struct tm_io *io)
{
	unsigned n = io->done_count;
	while (n-- > 0 && io->done_head) {
		struct io_op *op = fifo_pop(&io->done_head, &io->done_tail);
		io->done_count--;
		op_complete(op, op->res);
	}
}

static void sync_process(struct tm_io *io)
{
	uint64_t v;
	ssize_t r = read(io->efd, &v, sizeof(v));
	(void)r; /* EAGAIN when nothing was signalled: fine */
	done_run(io);
	sync_flush(io);
	if (io->done_head)
		sync_signal(io); /* left for the next wake-up: keep the eventfd readable */
}

/* Whether the op may be performed here instead of in the kernel: a NOP, or
 * a write of at most inline_max bytes with no fsync. */
static bool inline_ok(const struct tm_io *io, const struct io_op *op)
{
	if (io->inline_max == 0)
		return false;
	return op->kind == IO_OP_NOP ||
	       (op->kind == IO_OP_WRITE && !op->want_fsync && op->remaining <= io->inline_max);
}

/* Hands the queued ops to the kernel in order, except at the head of the
 * queue while the kernel has none of this ring's ops: there small writes
 * and NOPs are performed here, on the calling thread.  ext4 cannot take a
 * buffered write without blocking (IOCB_NOWAIT gives -EAGAIN), so io_uring
 * passes every such write to a worker thread, and that hand-off (the
 * worker's wake-up, then the eventfd's) costs more than copying a few KiB
 * into the page cache.  Only while the kernel holds nothing: every op
 * performed here then was started before every op in the kernel, and
 * io_process_completions runs these first, so none is overtaken by an op
 * started after it; and a loop that is busy writing (where a write may wait
 * for writeback) keeps handing its writes to the kernel. */
void io_flush(struct tm_io *io)
{
	if (io->sync) {
		sync_flush(io);
		return;
	}
	bool here = false;
	while (io->pending_head) {
		struct io_op *op = io->pending_head;
		if (io->in_kernel == 0 && inline_ok(io, op)) {
			perform_here(io, pending_pop(io));
			here = true;
			continue;
		}
		if (!op_prepare(op)) {
			/* SQ full: hand what is prepared to the kernel, then retry */
			int n = io_uring_submit(&io->ring);
			if (n <= 0 || !op_prepare(op))
				break;
		}
		pending_pop(io);
		io->in_kernel++;
	}
	if (here)
		here_signal(io);
	int n = io_uring_submit(&io->ring);
	if (n < 0 && n != -EAGAIN && n != -EBUSY && n != -EINTR)
		tm_error("storage", "io_uring_submit failed: %s", strerror(-n));
}

void io_process_completions(struct tm_io *io)
{
	if (io->sync) {
		sync_process(io);
		return;
	}
	uint64_t v;
	ssize_t r = read(io->efd, &v, sizeof(v));
	(void)r; /* EAGAIN when nothing was signalled: fine */
	io_process_due(io);
}

void io_process_due(struct tm_io *io)
{
	if (io->sync) {
		sync_process(io);
		return;
	}
	/* Ops performed here precede every op in the kernel (io_flush), so
	 * their callbacks run first, and no CQE is reaped while one of them
	 * (performed by a flush from a callback) still waits for its own. */
	done_run(io);
	/* One CQE at a time, consumed before its callback runs: a callback may
	 * wait on the ring itself (log_close, log_truncate_to call io_wait) and
	 * must find the queue consistent. */
	struct io_uring_cqe *cqe;
	while (!io->done_head && io_uring_peek_cqe(&io->ring, &cqe) == 0) {
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&io->ring, cqe);
		handle_cqe(io, ud, res);
	}
	if (io->done_head)
		here_signal(io); /* left for the next wake-up */
	io_flush(io);
}

int io_wait(struct tm_io *io, int timeout_ms)
{
	if (io->inflight == 0)
		return -EALREADY;
	io_flush(io);
	if (io->sync) {
		/* every op in flight is now performed: nothing to block on */
		sync_process(io);
		return 0;
	}
	if (io->done_head) {
		/* performed here: their callbacks are due, nothing to block on */
		io_process_completions(io);
		return 0;
	}
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = {
		.tv_sec = timeout_ms / 1000,
		.tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
	};
	int err = io_uring_wait_cqe_timeout(&io->ring, &cqe, &ts);
	if (err == -ETIME)
		return -ETIME;
	io_process_completions(io);
	return 0;
}

static struct io_op *op_new(struct tm_io *io, enum io_op_kind kind, int fd, int iovcnt,
			    io_done_fn cb, void *arg)
{
	struct io_op *op = calloc(1, sizeof(*op) + (size_t)iovcnt * sizeof(struct iovec));
	if (!op)
		return NULL;
	op->io = io;
	op->kind = kind;
	op->fd = fd;
	op->iovcnt = iovcnt;
	op->cb = cb;
	op->arg = arg;
	return op;
}

static void op_start(struct io_op *op)
{
	op->io->inflight++;
	pending_push(op->io, op);
}

int io_writev(struct tm_io *io, int fd, const struct iovec *iov, int iovcnt, int64_t off,
	      bool fsync, io_done_fn cb, void *arg)
{
	if (iovcnt < 0 || iovcnt > IO_IOV_MAX || off < 0 || !cb)
		return -EINVAL;
	struct io_op *op = op_new(io, IO_OP_WRITE, fd, iovcnt, cb, arg);
	if (!op)
		return -ENOMEM;
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++) {
		op->iov[i] = iov[i];
		total += iov[i].iov_len;
	}
	op->remaining = total;
	op->off = off;
	op->want_fsync = fsync;
	if (total == 0 && !fsync) {
		op->kind = IO_OP_NOP;
		op->nop_res = 0;
	}
	op_advance(op, 0);
	op_start(op);
	return 0;
}

int io_read(struct tm_io *io, int fd, void *buf, size_t len, int64_t off, io_done_fn cb,
	    void *arg)
{
	if (off < 0 || len > 0x7fffffffu || !cb)
		return -EINVAL;
	struct io_op *op = op_new(io, IO_OP_READ, fd, 1, cb, arg);
	if (!op)
		return -ENOMEM;
	op->iov[0].iov_base = buf;
	op->iov[0].iov_len = len;
	op->remaining = len;
	op->off = off;
	if (len == 0) {
		op->kind = IO_OP_NOP;
		op->nop_res = 0;
	}
	op_start(op);
	return 0;
}

int io_fsync(struct tm_io *io, int fd, io_done_fn cb, void *arg)
{
	if (!cb)
		return -EINVAL;
	struct io_op *op = op_new(io, IO_OP_FSYNC, fd, 0, cb, arg);
	if (!op)
		return -ENOMEM;
	op_start(op);
	return 0;
}

int io_nop(struct tm_io *io, int64_t res, io_done_fn cb, void *arg)
{
	if (!cb)
		return -EINVAL;
	struct io_op *op = op_new(io, IO_OP_NOP, -1, 0, cb, arg);
	if (!op)
		return -ENOMEM;
	op->nop_res = res;
	op_start(op);
	return 0;
}
