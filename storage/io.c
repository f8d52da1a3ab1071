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
 */
#include "storage/io.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/tm_assert.h"
#include "common/tm_log.h"

#define IO_IOV_MAX 1024
#define IO_ZERO_WRITES_MAX 3

struct io_op {
	struct io_op *next; /* pending FIFO link */
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
	io_fault_fn fault;
	void *fault_arg;
};

int io_new(unsigned entries, struct tm_io **out)
{
	if (entries == 0 || entries > 32768)
		return -EINVAL;
	struct tm_io *io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	int err = io_uring_queue_init(entries, &io->ring, 0);
	if (err < 0) {
		tm_error("storage", "io_uring_queue_init(%u) failed: %s; Tidemark needs io_uring "
			 "(Linux 5.6+, and kernel.io_uring_disabled=0)", entries, strerror(-err));
		goto err_free;
	}
	io->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (io->efd < 0) {
		err = -errno;
		tm_error("storage", "eventfd failed: %s", strerror(errno));
		goto err_exit_ring;
	}
	err = io_uring_register_eventfd(&io->ring, io->efd);
	if (err < 0) {
		tm_error("storage", "io_uring_register_eventfd failed: %s", strerror(-err));
		goto err_close_efd;
	}
	*out = io;
	return 0;

err_close_efd:
	close(io->efd);
err_exit_ring:
	io_uring_queue_exit(&io->ring);
err_free:
	free(io);
	return err;
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

static void pending_push(struct tm_io *io, struct io_op *op)
{
	op->next = NULL;
	if (io->pending_tail)
		io->pending_tail->next = op;
	else
		io->pending_head = op;
	io->pending_tail = op;
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
	if (--op->pending == 0)
		op_attempt_done(op);
}

void io_flush(struct tm_io *io)
{
	while (io->pending_head) {
		struct io_op *op = io->pending_head;
		if (!op_prepare(op)) {
			/* SQ full: hand what is prepared to the kernel, then retry */
			int n = io_uring_submit(&io->ring);
			if (n <= 0 || !op_prepare(op))
				break;
		}
		io->pending_head = op->next;
		if (!io->pending_head)
			io->pending_tail = NULL;
	}
	int n = io_uring_submit(&io->ring);
	if (n < 0 && n != -EAGAIN && n != -EBUSY && n != -EINTR)
		tm_error("storage", "io_uring_submit failed: %s", strerror(-n));
}

void io_process_completions(struct tm_io *io)
{
	uint64_t v;
	ssize_t r = read(io->efd, &v, sizeof(v));
	(void)r; /* EAGAIN when nothing was signalled: fine */
	/* One CQE at a time, consumed before its callback runs: a callback may
	 * wait on the ring itself (log_close, log_truncate_to call io_wait) and
	 * must find the queue consistent. */
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&io->ring, cqe);
		handle_cqe(io, ud, res);
	}
	io_flush(io);
}

int io_wait(struct tm_io *io, int timeout_ms)
{
	if (io->inflight == 0)
		return -EALREADY;
	io_flush(io);
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
