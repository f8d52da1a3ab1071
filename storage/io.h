/*
 * io.h — Tidemark's io_uring ring, shared by every partition log of a broker.
 *
 * One ring per event-loop thread.  Completions reach the loop through an
 * eventfd registered with io_uring_register_eventfd(): the broker adds
 * io_event_fd() to libevent (EV_READ|EV_PERSIST) and calls
 * io_process_completions() when it fires, and io_flush() once per loop turn,
 * so everything queued during a turn goes to the kernel in one
 * io_uring_submit() (batching).
 *
 * Operations (io_writev, io_read, io_fsync, io_nop) each own a heap-allocated
 * struct io_op that lives until its one callback has run; the callback gets
 * the total result.  The ring hides the untidy parts of the kernel interface:
 *   - short reads and writes are resubmitted for the rest (a read stops early
 *     only at end of file);
 *   - -EAGAIN is requeued;
 *   - an fsync asked for with a write is linked after it (IOSQE_IO_LINK), so
 *     it covers the write; a short write cancels the linked fsync, which is
 *     then resubmitted after the rest of the write;
 *   - when the submission queue is full, operations wait in a FIFO in memory
 *     and go out on the next flush;
 *   - while the kernel holds none of the ring's operations, the small writes
 *     (up to 64 KiB, no fsync) and NOPs at the head of the queue are
 *     performed by io_flush() itself with pwritev: on ext4 io_uring hands
 *     every buffered write to a worker thread, and waking it costs more than
 *     the copy (io_set_inline_max; TIDEMARK_IO=uring turns this off).
 * Callbacks run from io_process_completions() (or io_wait()), never from the
 * function that started the operation.
 *
 * Single-threaded: every call comes from the thread that created the ring.
 *
 * Fallback: where io_uring cannot be set up (io_uring_setup fails with
 * ENOSYS, EPERM or EACCES: container seccomp profiles, the
 * kernel.io_uring_disabled sysctl, old kernels, gVisor) or the environment
 * sets TIDEMARK_IO=sync, io_new logs one warning and returns a ring that
 * performs the queued operations itself, in order, with pwritev / pread /
 * fdatasync during io_flush() (so on the calling thread, blocking it).  The
 * contract above holds unchanged: callbacks run from io_process_completions()
 * or io_wait(), the eventfd signals them, short transfers are completed, a
 * write's fsync makes it durable before the callback, the fault hook sees
 * every result.  io_is_uring() tells which one runs.
 */
#ifndef TM_STORAGE_IO_H
#define TM_STORAGE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct tm_io;

enum io_op_kind { IO_OP_WRITE = 1, IO_OP_READ = 2, IO_OP_FSYNC = 3, IO_OP_NOP = 4 };

/* io_uring queue of `entries` SQEs (rounded up to a power of two by the
 * kernel) plus a non-blocking eventfd registered with it.  0 or -errno.
 * Falls back to the synchronous ring (see above) instead of failing when
 * io_uring is not available; other setup errors are returned. */
int io_new(unsigned entries, struct tm_io **out);
/* Waits for every operation in flight (their callbacks run), then frees. */
void io_free(struct tm_io *io);
int io_event_fd(const struct tm_io *io);
/* true: the kernel's io_uring; false: the synchronous fallback. */
bool io_is_uring(const struct tm_io *io);
/* Drains the eventfd and every CQE, runs callbacks, submits queued SQEs. */
void io_process_completions(struct tm_io *io);
/* io_process_completions without reading the eventfd: for a wake-up that
 * came from the notify hook, not from the eventfd (if the kernel signalled
 * it meanwhile, it stays readable and the next wake-up reads it). */
void io_process_due(struct tm_io *io);
/* Submits pending SQEs (one io_uring_submit). */
void io_flush(struct tm_io *io);
/* Submits, blocks until at least one completion arrives or timeout_ms passes,
 * then processes completions.  Returns 0, -ETIME on timeout, or -EALREADY
 * when nothing is in flight (nothing to wait for).  For shutdown paths and
 * tests; the broker's loop uses the eventfd instead. */
int io_wait(struct tm_io *io, int timeout_ms);
/* Operations started and not yet completed. */
unsigned io_inflight(const struct tm_io *io);

/* Fault injection for tests: called with each completion's result before the
 * ring acts on it; returns the result to use (e.g. -EIO, -ENOSPC, or a
 * smaller byte count for a short write).  op is IO_OP_WRITE/READ/FSYNC. */
typedef int (*io_fault_fn)(void *arg, int op, int res);
void io_set_fault(struct tm_io *io, io_fault_fn fn, void *arg);

/* The largest write io_flush() performs itself while the kernel holds none
 * of the ring's operations (64 KiB unless TIDEMARK_IO=uring); 0 sends every
 * operation to the kernel. */
void io_set_inline_max(struct tm_io *io, size_t bytes);

/* Called, on io_uring, when io_flush() has performed operations itself and
 * their callbacks are due, instead of writing the eventfd: the caller runs
 * io_process_due() soon (the broker activates its eventfd event by hand),
 * which saves the eventfd's write and read.  NULL: the eventfd. */
typedef void (*io_notify_fn)(void *arg);
void io_set_notify(struct tm_io *io, io_notify_fn fn, void *arg);

/* res: total bytes transferred, or -errno. */
typedef void (*io_done_fn)(void *arg, int64_t res);

/* Writes the buffers at file offset `off` (iov is copied; the buffers must
 * live until the callback); when `fsync` is set, an fdatasync linked after
 * the write makes it durable before the callback.  res = total bytes. */
int io_writev(struct tm_io *io, int fd, const struct iovec *iov, int iovcnt, int64_t off,
	      bool fsync, io_done_fn cb, void *arg);
/* Reads up to len bytes at off into buf (IORING_OP_READ).  res = bytes read,
 * fewer than len only at end of file. */
int io_read(struct tm_io *io, int fd, void *buf, size_t len, int64_t off, io_done_fn cb,
	    void *arg);
/* fdatasync through the ring.  res = 0. */
int io_fsync(struct tm_io *io, int fd, io_done_fn cb, void *arg);
/* Completes with `res` on a later io_process_completions() (IORING_OP_NOP):
 * how callers deliver an immediate answer without calling back re-entrantly. */
int io_nop(struct tm_io *io, int64_t res, io_done_fn cb, void *arg);

#endif
