/*
 * log.c — one partition's log (see log.h and docs/storage.md).
 *
 * Write path.  log_append() validates, assigns offsets and a file position,
 * copies the batches (log_append_inplace() rewrites and writes the caller's
 * own bytes instead: a borrowed op buffer, never freed here) and queues a
 * `struct log_op` on the staged FIFO.  At
 * most one write "chain" per log is in the ring at a time: the staged ops of
 * one segment (up to CHAIN_IOV_MAX buffers) become one writev, with an
 * fdatasync linked after it when any of them asked for a flush.  Because a
 * chain starts only after the previous one completed, an fsync covers every
 * byte written before it (group commit), completions arrive in offset order,
 * and "written" and "flushed" advance monotonically.  A roll queues an
 * fsync-only marker for the old segment; when the chains reach it (every
 * write of that segment done) its fsync starts beside the next segment's
 * chains instead of in front of them (a 1 GiB fsync takes seconds and would
 * stall every append behind it).  The flushed offset stops at the oldest
 * rolled segment whose fsync is still out, so older segments are durable
 * before any later fsync moves it past them, and an append or log_flush that
 * asked for an fsync is answered only once the rolled segments' fsyncs are
 * done too (with every later answer behind it).  A segment whose last write
 * already came with an fsync (flush per message) needs none.
 *
 * Failure.  A write or fsync error (or ENOSPC) marks the log offline: that
 * chain's callbacks and every staged one get the errno, later calls fail
 * fast with it, and nothing is written any more.  log_dir_offline() says so;
 * the broker (broker/node.c) then hands the node's partitions over and stops.
 *
 * Invariants: segs[] sorted by base, never empty, the last one active;
 * log_start <= flushed <= written <= leo; staged ops and the chain hold a
 * reference on their segment.
 */
#include "storage/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"
#include "storage/batch.h"
#include "storage/epoch_cache.h"
#include "storage/producer_state.h"
#include "storage/segment.h"
#include "storage/sys.h"

#define LOG_CKPT_FILE "tidemark-checkpoint"
#define LOG_CKPT_MAGIC "TMCK"
#define LOG_CKPT_SIZE 28
#define LOG_CLEAN_FILE ".tidemark_cleanshutdown"
#define LOG_META_FILE "partition.metadata"
#define CHAIN_IOV_MAX 64
/* Bytes per write chain.  A chain without an fsync stays small: the ring's
 * worker copies it into the page cache while the bytes are still in the CPU
 * cache from the append (with 8 MiB chains that copy cost 3x as much per
 * byte under workload 1, docs/benchmarks.md).  A chain that ends in an fsync
 * takes more, so one fsync covers more appends (group commit). */
#define CHAIN_BYTES_MAX (1 << 20)
#define CHAIN_FSYNC_BYTES_MAX (8 << 20)
#define LOG_SEGMENTS_MAX (1 << 20)
#define LOG_READ_HINTS 4

struct log_op {
	struct log_op *next;
	struct segment *seg; /* referenced */
	uint8_t *buf;        /* NULL for answers and fsync-only ops */
	bool borrowed;       /* buf is the caller's (log_append_inplace), not freed */
	size_t len;
	int64_t pos;
	int64_t end_offset; /* LEO once this op is applied */
	bool fsync;
	bool roll; /* the fsync of a rolled segment, run beside later chains */
	log_append_cb cb; /* NULL for internal fsyncs */
	void *arg;
};

/* A rolled segment's fsync in flight; they finish in any order, the flushed
 * offset moves past one only when it and every older one are done. */
struct log_roll_sync {
	struct log_roll_sync *next;
	struct log *l;
	struct log_op *op; /* the roll marker: holds the segment */
	bool done;
	int err;
};

struct log_chain {
	struct log *l;
	struct segment *seg;
	struct log_op *ops;
	bool fsync;
	bool has_data;
	int64_t end_pos;
	int64_t end_offset;
};

struct log_read_op {
	struct log *l;
	struct segment *seg; /* referenced; NULL for immediate answers */
	int64_t pos;         /* where the read started in seg */
	uint8_t *buf;
	int64_t max_offset;
	log_read_cb cb;
	void *arg;
};

struct log {
	struct tm_io *io;
	char *dir;
	struct log_config cfg;
	struct segment **segs;
	size_t nsegs, segs_cap;
	int64_t log_start, leo, written, flushed;
	int64_t ckpt_recovery, ckpt_start; /* as last persisted */
	int64_t unflushed_msgs;
	int64_t last_flush_ms;
	int64_t now_ms; /* the latest clock reading a caller passed in */
	struct log_op *staged_head, *staged_tail;
	struct log_chain *chain;
	struct log_roll_sync *rolls_head, *rolls_tail; /* oldest first */
	int64_t synced_after; /* fsynced by chains while rolls were out */
	/* completed ops whose callbacks wait for the rolls: a flush is answered
	 * only when it covers the rolled segments too, and every later answer
	 * waits behind it (callbacks run in offset order) */
	struct log_op *parked_head, *parked_tail;
	unsigned reads_inflight;
	/* where the last few reads ended (next offset -> segment position), so a
	 * consumer reading on skips the index lookup and header walk */
	struct {
		int64_t offset, seg_base, pos;
	} hints[LOG_READ_HINTS];
	unsigned hint_next;
	bool offline;
	int offline_err;
	struct pstate *ps;
	struct epoch_cache epochs;
};

void log_config_defaults(struct log_config *c)
{
	c->segment_bytes = 1024 * 1024 * 1024;
	c->segment_ms = 7LL * 24 * 3600 * 1000;
	c->retention_bytes = -1;
	c->retention_ms = 7LL * 24 * 3600 * 1000;
	c->flush_interval_messages = INT64_MAX;
	c->flush_interval_ms = INT64_MAX;
	c->index_interval_bytes = 4096;
	c->segment_index_bytes = 10 * 1024 * 1024;
	c->producer_id_expiration_ms = 24LL * 3600 * 1000;
}

static void config_sanitize(struct log_config *c)
{
	c->segment_bytes = TM_MAX(TM_MIN(c->segment_bytes, (int64_t)INT32_MAX), (int64_t)64);
	if (c->segment_ms <= 0)
		c->segment_ms = INT64_MAX;
	if (c->flush_interval_messages <= 0)
		c->flush_interval_messages = 1;
	if (c->flush_interval_ms < 0)
		c->flush_interval_ms = 0;
	if (c->index_interval_bytes < 0)
		c->index_interval_bytes = 0;
	if (c->segment_index_bytes < 24)
		c->segment_index_bytes = 24;
}

static struct segment *active(const struct log *l)
{
	return l->segs[l->nsegs - 1];
}

const char *log_dir(const struct log *l)
{
	return l->dir;
}

int64_t log_start_offset(const struct log *l)
{
	return l->log_start;
}

int64_t log_end_offset(const struct log *l)
{
	return l->leo;
}

int64_t log_written_offset(const struct log *l)
{
	return l->written;
}

int64_t log_flushed_offset(const struct log *l)
{
	return l->flushed;
}

bool log_dir_offline(const struct log *l)
{
	return l->offline;
}

int log_segment_count(const struct log *l)
{
	return (int)l->nsegs;
}

int64_t log_size_bytes(const struct log *l)
{
	int64_t n = 0;
	for (size_t i = 0; i < l->nsegs; i++)
		n += l->segs[i]->size;
	return n;
}

void log_max_timestamp(const struct log *l, int64_t *ts, int64_t *offset)
{
	*ts = -1;
	*offset = -1;
	for (size_t i = 0; i < l->nsegs; i++) {
		if (l->segs[i]->max_ts > *ts) {
			*ts = l->segs[i]->max_ts;
			*offset = l->segs[i]->max_ts_offset;
		}
	}
}

void log_set_config(struct log *l, const struct log_config *cfg)
{
	l->cfg = *cfg;
	config_sanitize(&l->cfg);
}

static void go_offline(struct log *l, int err, const char *what)
{
	if (l->offline)
		return;
	l->offline = true;
	l->offline_err = err < 0 ? err : -EIO;
	tm_error("storage", "%s: %s failed: %s; the log is now offline (free disk space or "
		 "replace the disk, then restart the broker)", l->dir, what, strerror(-l->offline_err));
}

/* ---- checkpoint files ---------------------------------------------------- */

static int write_checkpoint(struct log *l)
{
	uint8_t b[LOG_CKPT_SIZE] = { 0 };
	memcpy(b, LOG_CKPT_MAGIC, 4);
	tm_store_be16(b + 4, 1);
	tm_store_be64(b + 8, (uint64_t)l->flushed);
	tm_store_be64(b + 16, (uint64_t)l->log_start);
	tm_store_be32(b + 24, crc32c(0, b, 24));
	int err = sys_write_file_atomic(l->dir, LOG_CKPT_FILE, b, sizeof(b), 1);
	if (err) {
		go_offline(l, err, "writing " LOG_CKPT_FILE);
		return err;
	}
	l->ckpt_recovery = l->flushed;
	l->ckpt_start = l->log_start;
	return 0;
}

/* 0 with both values, -ENOENT, or -EBADMSG for a torn or corrupt file. */
static int read_checkpoint(const char *dir, int64_t *recovery, int64_t *start)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, LOG_CKPT_FILE);
	uint8_t *b;
	size_t len;
	int err = sys_read_file(p, 4096, &b, &len);
	if (err)
		return err;
	err = -EBADMSG;
	if (len == LOG_CKPT_SIZE && memcmp(b, LOG_CKPT_MAGIC, 4) == 0 && tm_load_be16(b + 4) == 1 &&
	    crc32c(0, b, 24) == tm_load_be32(b + 24)) {
		*recovery = (int64_t)tm_load_be64(b + 8);
		*start = (int64_t)tm_load_be64(b + 16);
		err = (*recovery < 0 || *start < 0) ? -EBADMSG : 0;
	}
	free(b);
	return err;
}

static int save_epochs(struct log *l)
{
	int err = epoch_cache_save(&l->epochs, l->dir);
	if (err)
		go_offline(l, err, "writing " EPOCH_CACHE_FILE);
	return err;
}

/* ---- the write pipeline -------------------------------------------------- */

static void op_free(struct log_op *op)
{
	if (!op->borrowed)
		free(op->buf);
	seg_put(op->seg);
	free(op);
}

static void staged_push(struct log *l, struct log_op *op)
{
	op->next = NULL;
	if (l->staged_tail)
		l->staged_tail->next = op;
	else
		l->staged_head = op;
	l->staged_tail = op;
}

static struct log_op *staged_pop(struct log *l)
{
	struct log_op *op = l->staged_head;
	l->staged_head = op->next;
	if (!l->staged_head)
		l->staged_tail = NULL;
	op->next = NULL;
	return op;
}

/* Appends a list of ops to the parked ones (their answers wait for the
 * rolled segments' fsyncs); a copy of bytes is no longer needed. */
static void park(struct log *l, struct log_op *first)
{
	if (l->parked_tail)
		l->parked_tail->next = first;
	else
		l->parked_head = first;
	for (struct log_op *o = first; o; o = o->next) {
		if (!o->borrowed) {
			free(o->buf);
			o->buf = NULL;
		}
		l->parked_tail = o;
	}
}

static void fail_staged(struct log *l)
{
	if (l->parked_head && l->staged_head) {
		/* answered behind the parked ones, in offset order */
		park(l, l->staged_head);
		l->staged_head = l->staged_tail = NULL;
		return;
	}
	while (l->staged_head) {
		struct log_op *op = staged_pop(l);
		if (op->cb)
			op->cb(op->arg, l->offline_err);
		op_free(op);
	}
}

static void chain_done(void *arg, int64_t res);

/* Whether a caller of this chain was promised an fsync (the log's own
 * periodic flushes promise nobody). */
static bool chain_promises_flush(const struct log_chain *c)
{
	for (const struct log_op *o = c->ops; o; o = o->next)
		if (o->fsync && o->cb)
			return true;
	return false;
}

static void chain_finish(struct log_chain *c, int err)
{
	struct log *l = c->l;
	struct segment *seg = c->seg;
	l->chain = NULL;
	if (!err && l->offline)
		err = l->offline_err; /* a rolled segment's fsync failed meanwhile */
	if (!err) {
		if (c->has_data) {
			seg->written = TM_MAX(seg->written, c->end_pos);
			seg->dirty = true;
		}
		l->written = TM_MAX(l->written, c->end_offset);
		if (c->fsync) {
			seg->dirty = false;
			if (l->rolls_head) /* an older segment is not durable yet */
				l->synced_after = TM_MAX(l->synced_after, l->written);
			else
				l->flushed = TM_MAX(l->flushed, l->written);
		}
		if (!seg->dead && (err = seg_persist_indexes(l->dir, seg)) != 0)
			go_offline(l, err, "writing an index file");
	} else {
		char what[64];
		snprintf(what, sizeof(what), "writing segment %020lld.log", (long long)seg->base);
		go_offline(l, err, what);
	}
	struct log_op *op = c->ops;
	if (c->ops && (l->parked_head || (l->rolls_head && !err && chain_promises_flush(c)))) {
		park(l, c->ops);
		free(c);
		return;
	}
	free(c);
	while (op) {
		struct log_op *next = op->next;
		if (op->cb)
			op->cb(op->arg, err);
		op_free(op);
		op = next;
	}
}

static void log_kick(struct log *l);

static void roll_sync_failed(struct log *l, struct log_roll_sync *rs, int err)
{
	char what[64];
	snprintf(what, sizeof(what), "flushing rolled segment %020lld.log", (long long)rs->op->seg->base);
	go_offline(l, err, what);
}

/* Retires the finished rolled-segment fsyncs at the head of the list, moves
 * the flushed offset past them, and once none is left answers the parked
 * ops in order. */
static void roll_syncs_settle(struct log *l)
{
	while (l->rolls_head && l->rolls_head->done) {
		struct log_roll_sync *h = l->rolls_head;
		l->rolls_head = h->next;
		if (!l->rolls_head)
			l->rolls_tail = NULL;
		if (!h->err && !l->offline) {
			h->op->seg->dirty = false;
			l->flushed = TM_MAX(l->flushed, h->op->end_offset);
		}
		op_free(h->op);
		free(h);
	}
	if (l->rolls_head)
		return;
	if (!l->offline)
		l->flushed = TM_MAX(l->flushed, l->synced_after);
	l->synced_after = 0;
	struct log_op *op = l->parked_head;
	l->parked_head = l->parked_tail = NULL;
	while (op) {
		struct log_op *next = op->next;
		if (op->cb)
			op->cb(op->arg, l->offline ? l->offline_err : 0);
		op_free(op);
		op = next;
	}
}

static void roll_sync_done(void *arg, int64_t res)
{
	struct log_roll_sync *rs = arg;
	struct log *l = rs->l;
	rs->done = true;
	rs->err = res < 0 ? (int)res : 0;
	if (rs->err) /* at once, even with an older one still out */
		roll_sync_failed(l, rs, rs->err);
	roll_syncs_settle(l);
	log_kick(l);
}

/* Starts the fsync of a rolled segment; every write of it has completed.
 * Called from log_kick, so a failure to start takes the log offline here
 * and kicks nothing. */
static void roll_sync_start(struct log *l, struct log_op *op)
{
	struct log_roll_sync *rs = calloc(1, sizeof(*rs));
	if (!rs) {
		go_offline(l, -ENOMEM, "allocating a flush");
		op_free(op);
		return;
	}
	rs->l = l;
	rs->op = op;
	if (l->rolls_tail)
		l->rolls_tail->next = rs;
	else
		l->rolls_head = rs;
	l->rolls_tail = rs;
	int err = io_fsync(l->io, op->seg->fd, roll_sync_done, rs);
	if (err) {
		rs->done = true;
		rs->err = err;
		roll_sync_failed(l, rs, err);
		roll_syncs_settle(l);
	}
}

/* Starts the next chain when none is in flight. */
static void log_kick(struct log *l)
{
	if (l->chain || !l->staged_head)
		return;
	if (l->offline) {
		fail_staged(l);
		return;
	}
	while (l->staged_head && l->staged_head->roll) {
		struct log_op *op = staged_pop(l);
		if (!op->seg->dirty) { /* its last write came with an fsync */
			op_free(op);
			continue;
		}
		roll_sync_start(l, op);
		if (l->offline) {
			fail_staged(l);
			return;
		}
	}
	if (!l->staged_head)
		return;
	struct log_chain *c = calloc(1, sizeof(*c));
	if (!c) {
		go_offline(l, -ENOMEM, "allocating a write");
		fail_staged(l);
		return;
	}
	struct iovec iov[CHAIN_IOV_MAX];
	int n = 0;
	size_t bytes = 0;
	int64_t first_pos = -1;
	struct log_op **tailp = &c->ops;
	c->l = l;
	c->seg = l->staged_head->seg;
	while (l->staged_head && l->staged_head->seg == c->seg && !l->staged_head->roll) {
		struct log_op *op = l->staged_head;
		size_t max = c->fsync || op->fsync ? CHAIN_FSYNC_BYTES_MAX : CHAIN_BYTES_MAX;
		if (op->len > 0 && (n == CHAIN_IOV_MAX || (bytes > 0 && bytes + op->len > max)))
			break;
		staged_pop(l);
		*tailp = op;
		tailp = &op->next;
		if (op->len > 0) {
			if (first_pos < 0)
				first_pos = op->pos;
			TM_ASSERT(op->pos == first_pos + (int64_t)bytes);
			iov[n].iov_base = op->buf;
			iov[n].iov_len = op->len;
			n++;
			bytes += op->len;
			c->end_pos = op->pos + (int64_t)op->len;
			c->has_data = true;
		}
		c->fsync |= op->fsync;
		c->end_offset = op->end_offset;
	}
	l->chain = c;
	int err;
	if (bytes > 0)
		err = io_writev(l->io, c->seg->fd, iov, n, first_pos, c->fsync, chain_done, c);
	else if (c->fsync)
		err = io_fsync(l->io, c->seg->fd, chain_done, c);
	else
		err = io_nop(l->io, 0, chain_done, c);
	if (err)
		chain_finish(c, err); /* out of memory: fail now rather than hang */
}

static void chain_done(void *arg, int64_t res)
{
	struct log_chain *c = arg;
	struct log *l = c->l;
	chain_finish(c, res < 0 ? (int)res : 0);
	log_kick(l);
}

static int enqueue_op(struct log *l, struct segment *seg, uint8_t *buf, bool borrowed, size_t len,
		      int64_t pos, bool fsync, bool roll, log_append_cb cb, void *arg)
{
	struct log_op *op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->seg = seg;
	seg->refs++;
	op->buf = buf;
	op->borrowed = borrowed;
	op->len = len;
	op->pos = pos;
	op->end_offset = l->leo;
	op->fsync = fsync;
	op->roll = roll;
	op->cb = cb;
	op->arg = arg;
	staged_push(l, op);
	log_kick(l);
	return 0;
}

static int enqueue_buf(struct log *l, struct segment *seg, uint8_t *buf, bool borrowed, size_t len,
		       int64_t pos, bool fsync, log_append_cb cb, void *arg)
{
	return enqueue_op(l, seg, buf, borrowed, len, pos, fsync, false, cb, arg);
}

static int enqueue(struct log *l, struct segment *seg, uint8_t *buf, size_t len, int64_t pos,
		   bool fsync, log_append_cb cb, void *arg)
{
	return enqueue_buf(l, seg, buf, false, len, pos, fsync, cb, arg);
}

/* Waits until nothing of this log is staged or in the ring. */
static void log_drain(struct log *l, bool reads_too)
{
	while (l->chain || l->staged_head || l->rolls_head || (reads_too && l->reads_inflight)) {
		log_kick(l);
		if (io_wait(l->io, 1000) == -EALREADY)
			break;
	}
}

int log_flush(struct log *l, log_append_cb cb, void *arg)
{
	if (l->offline)
		return l->offline_err;
	l->unflushed_msgs = 0;
	return enqueue(l, active(l), NULL, 0, 0, true, cb, arg);
}

/* ---- segments ------------------------------------------------------------ */

static int segs_push(struct log *l, struct segment *s)
{
	if (l->nsegs == l->segs_cap) {
		if (l->segs_cap >= LOG_SEGMENTS_MAX)
			return -EMFILE;
		size_t cap = l->segs_cap ? l->segs_cap * 2 : 8;
		struct segment **v = realloc(l->segs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->segs = v;
		l->segs_cap = cap;
	}
	l->segs[l->nsegs++] = s;
	return 0;
}

static void snapshot_path(char *buf, size_t cap, const char *dir, int64_t offset)
{
	snprintf(buf, cap, "%s/%020lld.snapshot", dir, (long long)offset);
}

/* Offsets named by <20 digits><ext> files in dir, sorted ascending. */
static int list_offsets(const char *dir, const char *ext, int64_t **out, size_t *n_out)
{
	DIR *d = tm_sys->opendir(dir);
	if (!d)
		return errno ? -errno : -EIO;
	int64_t *v = NULL;
	size_t n = 0, cap = 0;
	size_t elen = strlen(ext);
	struct dirent *e;
	int err = 0;
	while ((e = tm_sys->readdir(d)) != NULL) {
		const char *name = e->d_name;
		if (strlen(name) != 20 + elen || strcmp(name + 20, ext) != 0)
			continue;
		int64_t off = 0;
		bool ok = true;
		for (int i = 0; i < 20; i++) {
			if (name[i] < '0' || name[i] > '9' || off > (INT64_MAX - 9) / 10) {
				ok = false;
				break;
			}
			off = off * 10 + (name[i] - '0');
		}
		if (!ok)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			int64_t *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				err = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[n++] = off;
	}
	tm_sys->closedir(d);
	if (err) {
		free(v);
		return err;
	}
	for (size_t i = 1; i < n; i++) /* insertion sort: listings are short */
		for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			int64_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*out = v;
	*n_out = n;
	return 0;
}

static void delete_snapshots(struct log *l, int64_t below, int64_t above)
{
	int64_t *v;
	size_t n;
	if (list_offsets(l->dir, ".snapshot", &v, &n) < 0)
		return;
	char p[PATH_MAX];
	for (size_t i = 0; i < n; i++) {
		if (v[i] < below || v[i] > above) {
			snapshot_path(p, sizeof(p), l->dir, v[i]);
			(void)sys_unlink(p);
		}
	}
	free(v);
}

/* Removes the k oldest segments (never the active one). */
static void delete_front(struct log *l, size_t k, const char *why)
{
	TM_ASSERT(k < l->nsegs);
	if (k == 0)
		return;
	for (size_t i = 0; i < k; i++) {
		struct segment *s = l->segs[i];
		tm_info("storage", "%s: deleting segment %020lld.log (%lld bytes): %s", l->dir,
			(long long)s->base, (long long)s->size, why);
		seg_unlink_files(l->dir, s->base);
		seg_release(s);
	}
	memmove(l->segs, l->segs + k, (l->nsegs - k) * sizeof(*l->segs));
	l->nsegs -= k;
	l->log_start = TM_MAX(l->log_start, l->segs[0]->base);
	delete_snapshots(l, l->segs[0]->base, INT64_MAX);
	pstate_truncate_head(l->ps, l->log_start);
	if (epoch_cache_truncate_from_start(&l->epochs, l->log_start))
		(void)save_epochs(l);
}

static int log_roll(struct log *l, int64_t now_ms)
{
	struct segment *old = active(l);
	if (old->size == 0)
		return 0;
	int err = seg_finish_time_index(old);
	if (!err)
		err = seg_persist_indexes(l->dir, old);
	if (err) {
		go_offline(l, err, "writing the index of a rolled segment");
		return err;
	}
	struct segment *ns;
	err = seg_create(l->dir, l->leo, now_ms, &ns);
	if (err) {
		go_offline(l, err, "creating a segment");
		return err;
	}
	if ((err = segs_push(l, ns)) != 0) {
		seg_unlink_files(l->dir, ns->base);
		seg_release(ns);
		return err;
	}
	seg_close_index_fds(old);
	/* the rolled segment becomes durable behind its own writes, beside the
	 * new segment's */
	if ((err = enqueue_op(l, old, NULL, false, 0, 0, true, true, NULL, NULL)) != 0)
		return err;
	err = pstate_snapshot_write(l->ps, l->dir, l->leo, false);
	if (err)
		tm_warn("storage", "%s: producer snapshot at %lld not written: %s (rebuilt from "
			"the log on restart)", l->dir, (long long)l->leo, strerror(-err));
	return 0;
}

/* ---- append -------------------------------------------------------------- */

struct pundo {
	int64_t pid;
	bool present;
	struct pstate_entry e;
};

static void undo_apply(struct log *l, struct pundo *u, int n)
{
	for (int i = n - 1; i >= 0; i--)
		(void)pstate_restore(l->ps, u[i].pid, u[i].present ? &u[i].e : NULL);
}

/* Checks the producer batches against the state (applying them with an
 * undo log so several batches of one producer check against each other,
 * then undoing).  Returns a Kafka error, fills *dup for a duplicate. */
static int producer_check(struct log *l, const uint8_t *buf, size_t len, int nbatches,
			  struct pstate_batch *dup, bool *is_dup, int *sys_err)
{
	*is_dup = false;
	*sys_err = 0;
	struct pundo *undo = NULL;
	int nundo = 0, kerr = TM_ERR_NONE;
	int64_t next = l->leo;
	for (size_t pos = 0; pos < len;) {
		struct sbatch_hdr h;
		(void)sbatch_parse(buf + pos, len - pos, &h);
		pos += sbatch_total_size(&h);
		h.base_offset = next;
		next += (int64_t)h.last_offset_delta + 1;
		if (h.producer_id < 0)
			continue;
		const struct pstate_batch *d;
		kerr = pstate_check(l->ps, &h, &d);
		if (kerr != TM_ERR_NONE)
			break;
		if (d) {
			*dup = *d;
			*is_dup = true;
			break;
		}
		if (!undo && !(undo = calloc((size_t)nbatches, sizeof(*undo)))) {
			*sys_err = -ENOMEM;
			break;
		}
		bool seen = false;
		for (int i = 0; i < nundo && !seen; i++)
			seen = undo[i].pid == h.producer_id;
		if (!seen) {
			const struct pstate_entry *e = pstate_get(l->ps, h.producer_id);
			undo[nundo].pid = h.producer_id;
			undo[nundo].present = e != NULL;
			if (e)
				undo[nundo].e = *e;
			nundo++;
		}
		if (pstate_update(l->ps, &h) < 0) {
			*sys_err = -ENOMEM;
			break;
		}
	}
	undo_apply(l, undo, nundo);
	free(undo);
	return kerr;
}

static bool should_roll(const struct log *l, size_t len, int nbatches, int64_t append_last_offset,
			int64_t append_max_ts, int64_t now_ms)
{
	const struct segment *s = active(l);
	if (s->size == 0)
		return false;
	if (s->size + (int64_t)len > l->cfg.segment_bytes)
		return true;
	if (seg_index_full(s, l->cfg.segment_index_bytes, nbatches))
		return true;
	if (append_last_offset - s->base > INT32_MAX)
		return true;
	int64_t waited = s->first_ts >= 0 && append_max_ts >= 0 ? append_max_ts - s->first_ts
								: now_ms - s->created_ms;
	return waited > l->cfg.segment_ms;
}

static int answer_now(struct log *l, log_append_cb cb, void *arg)
{
	return enqueue(l, active(l), NULL, 0, 0, false, cb, arg);
}

/* log_append and log_append_inplace: with `inplace` the batches are
 * rewritten and written where they are, else from a copy. */
static int append_leader(struct log *l, const uint8_t *batches, size_t len, bool inplace,
			 int32_t leader_epoch, int64_t log_append_time_ms, int64_t now_ms,
			 struct log_append_result *res, log_append_cb cb, void *arg)
{
	if (!l || !batches || !res || !cb)
		return -EINVAL;
	if (l->offline)
		return l->offline_err;
	int nbatches = sbatch_count(batches, len);
	if (nbatches < 0)
		return -EBADMSG;
	l->now_ms = now_ms;
	memset(res, 0, sizeof(*res));
	res->kerr = TM_ERR_NONE;
	res->base_offset = res->last_offset = -1;
	res->log_append_time_ms = -1;
	res->log_start_offset = l->log_start;
	if ((int64_t)len > l->cfg.segment_bytes) {
		res->kerr = TM_ERR_RECORD_LIST_TOO_LARGE;
		return answer_now(l, cb, arg);
	}

	struct pstate_batch dup = { 0 };
	bool is_dup;
	int sys_err;
	int kerr = producer_check(l, batches, len, nbatches, &dup, &is_dup, &sys_err);
	if (sys_err)
		return sys_err;
	if (kerr != TM_ERR_NONE || is_dup) {
		res->kerr = kerr;
		if (is_dup) {
			res->duplicate = true;
			res->base_offset = dup.first_offset;
			res->last_offset = dup.last_offset;
		}
		return answer_now(l, cb, arg);
	}

	int64_t last = l->leo - 1, max_ts = -1;
	for (size_t pos = 0; pos < len;) {
		struct sbatch_hdr h;
		(void)sbatch_parse(batches + pos, len - pos, &h);
		pos += sbatch_total_size(&h);
		last += (int64_t)h.last_offset_delta + 1;
		max_ts = TM_MAX(max_ts, log_append_time_ms >= 0 ? log_append_time_ms : h.max_timestamp);
	}
	int err;
	if (should_roll(l, len, nbatches, last, max_ts, now_ms) && (err = log_roll(l, now_ms)) != 0)
		return err;
	if (leader_epoch >= 0 && leader_epoch > epoch_cache_latest(&l->epochs)) {
		if ((err = epoch_cache_assign(&l->epochs, leader_epoch, l->leo)) < 0)
			return err;
		if ((err = save_epochs(l)) != 0)
			return err;
	}

	uint8_t *buf;
	if (inplace) {
		buf = (uint8_t *)batches; /* the caller's, handed over as writable */
	} else {
		if (!(buf = malloc(len)))
			return -ENOMEM;
		memcpy(buf, batches, len);
	}
	struct segment *s = active(l);
	int64_t seg_pos = s->size, msgs = 0;
	res->base_offset = l->leo;
	for (size_t pos = 0; pos < len;) {
		struct sbatch_hdr h;
		(void)sbatch_parse(buf + pos, len - pos, &h);
		size_t size = sbatch_total_size(&h);
		sbatch_set_base(buf + pos, l->leo, leader_epoch);
		h.base_offset = l->leo;
		h.leader_epoch = leader_epoch;
		if (log_append_time_ms >= 0) {
			sbatch_set_log_append_time(buf + pos, size, log_append_time_ms);
			h.max_timestamp = log_append_time_ms;
			h.attributes |= SBATCH_ATTR_LOG_APPEND_TIME;
		}
		if (seg_index_batch(s, &h, seg_pos + (int64_t)pos, l->cfg.index_interval_bytes) < 0 ||
		    pstate_update(l->ps, &h) < 0)
			go_offline(l, -ENOMEM, "indexing an append"); /* memory is gone: stop writing */
		l->leo = sbatch_last_offset(&h) + 1;
		msgs += (int64_t)h.last_offset_delta + 1;
		pos += size;
	}
	s->size += (int64_t)len;
	if (l->offline) {
		if (!inplace)
			free(buf);
		return l->offline_err;
	}
	res->last_offset = l->leo - 1;
	res->log_append_time_ms = log_append_time_ms >= 0 ? log_append_time_ms : -1;

	l->unflushed_msgs += msgs;
	bool fsync = l->unflushed_msgs >= l->cfg.flush_interval_messages ||
		     (l->cfg.flush_interval_ms != INT64_MAX &&
		      now_ms - l->last_flush_ms >= l->cfg.flush_interval_ms);
	if (fsync) {
		l->unflushed_msgs = 0;
		l->last_flush_ms = now_ms;
	}
	err = enqueue_buf(l, s, buf, inplace, len, seg_pos, fsync, cb, arg);
	if (err) {
		if (!inplace)
			free(buf);
		go_offline(l, err, "queueing an append");
		return err;
	}
	return 0;
}

int log_append(struct log *l, const uint8_t *batches, size_t len, int32_t leader_epoch,
	       int64_t log_append_time_ms, int64_t now_ms, struct log_append_result *res,
	       log_append_cb cb, void *arg)
{
	return append_leader(l, batches, len, false, leader_epoch, log_append_time_ms, now_ms, res, cb,
			     arg);
}

int log_append_inplace(struct log *l, uint8_t *batches, size_t len, int32_t leader_epoch,
		       int64_t log_append_time_ms, int64_t now_ms, struct log_append_result *res,
		       log_append_cb cb, void *arg)
{
	return append_leader(l, batches, len, true, leader_epoch, log_append_time_ms, now_ms, res, cb,
			     arg);
}

static int append_replica(struct log *l, const uint8_t *batches, size_t len, bool inplace, int64_t now_ms,
			  log_append_cb cb, void *arg)
{
	if (!l || !batches || !cb)
		return -EINVAL;
	if (l->offline)
		return l->offline_err;
	int nbatches = sbatch_count(batches, len);
	if (nbatches < 0)
		return -EBADMSG;
	if ((int64_t)len > l->cfg.segment_bytes)
		return -EMSGSIZE;
	l->now_ms = now_ms;
	int64_t expect = l->leo, last = -1, max_ts = -1;
	for (size_t pos = 0; pos < len;) {
		struct sbatch_hdr h;
		(void)sbatch_parse(batches + pos, len - pos, &h);
		if ((pos == 0 && h.base_offset != expect) || h.base_offset < expect)
			return -EINVAL;
		expect = sbatch_last_offset(&h) + 1;
		last = expect - 1;
		max_ts = TM_MAX(max_ts, h.max_timestamp);
		pos += sbatch_total_size(&h);
	}
	int err;
	if (should_roll(l, len, nbatches, last, max_ts, now_ms) && (err = log_roll(l, now_ms)) != 0)
		return err;
	bool epochs_changed = false;
	for (size_t pos = 0; pos < len;) {
		struct sbatch_hdr h;
		(void)sbatch_parse(batches + pos, len - pos, &h);
		if (h.leader_epoch >= 0 && h.leader_epoch > epoch_cache_latest(&l->epochs))
			epochs_changed |= epoch_cache_assign(&l->epochs, h.leader_epoch, h.base_offset) > 0;
		pos += sbatch_total_size(&h);
	}
	if (epochs_changed && (err = save_epochs(l)) != 0)
		return err;
	uint8_t *buf = inplace ? (uint8_t *)batches : malloc(len); /* borrowed bytes are only read */
	if (!buf)
		return -ENOMEM;
	if (!inplace)
		memcpy(buf, batches, len);
	struct segment *s = active(l);
	int64_t seg_pos = s->size, msgs = 0;
	for (size_t pos = 0; pos < len;) {
		struct sbatch_hdr h;
		(void)sbatch_parse(buf + pos, len - pos, &h);
		if (seg_index_batch(s, &h, seg_pos + (int64_t)pos, l->cfg.index_interval_bytes) < 0 ||
		    pstate_update(l->ps, &h) < 0)
			go_offline(l, -ENOMEM, "indexing an append");
		l->leo = sbatch_last_offset(&h) + 1;
		msgs += (int64_t)h.last_offset_delta + 1;
		pos += sbatch_total_size(&h);
	}
	s->size += (int64_t)len;
	if (l->offline) {
		if (!inplace)
			free(buf);
		return l->offline_err;
	}
	l->unflushed_msgs += msgs;
	bool fsync = l->unflushed_msgs >= l->cfg.flush_interval_messages ||
		     (l->cfg.flush_interval_ms != INT64_MAX &&
		      now_ms - l->last_flush_ms >= l->cfg.flush_interval_ms);
	if (fsync) {
		l->unflushed_msgs = 0;
		l->last_flush_ms = now_ms;
	}
	err = enqueue_buf(l, s, buf, inplace, len, seg_pos, fsync, cb, arg);
	if (err) {
		if (!inplace)
			free(buf);
		go_offline(l, err, "queueing an append");
	}
	return err;
}

int log_append_replica(struct log *l, const uint8_t *batches, size_t len, int64_t now_ms,
		       log_append_cb cb, void *arg)
{
	return append_replica(l, batches, len, false, now_ms, cb, arg);
}

int log_append_replica_inplace(struct log *l, const uint8_t *batches, size_t len, int64_t now_ms,
			       log_append_cb cb, void *arg)
{
	return append_replica(l, batches, len, true, now_ms, cb, arg);
}

/* ---- read ---------------------------------------------------------------- */

static void hints_clear(struct log *l)
{
	for (unsigned i = 0; i < LOG_READ_HINTS; i++)
		l->hints[i].offset = -1;
}

static void hint_add(struct log *l, int64_t offset, int64_t seg_base, int64_t pos)
{
	unsigned i = l->hint_next++ % LOG_READ_HINTS;
	l->hints[i].offset = offset;
	l->hints[i].seg_base = seg_base;
	l->hints[i].pos = pos;
}

static void read_done(void *arg, int64_t res)
{
	struct log_read_op *op = arg;
	struct log *l = op->l;
	TM_ASSERT(l->reads_inflight > 0);
	l->reads_inflight--;
	int64_t seg_base = -1, start = op->pos;
	if (op->seg) {
		if (!op->seg->dead)
			seg_base = op->seg->base;
		seg_put(op->seg);
	}
	log_read_cb cb = op->cb;
	void *cb_arg = op->arg;
	uint8_t *buf = op->buf;
	int64_t max_offset = op->max_offset;
	bool immediate = op->seg == NULL;
	free(op);
	if (immediate || res < 0) {
		free(buf);
		cb(cb_arg, (int)res, NULL, 0);
		return;
	}
	size_t got = (size_t)res, p = 0;
	int err = 0;
	int64_t next = -1;
	while (p + SBATCH_HDR_SIZE <= got) {
		struct sbatch_hdr h;
		if (sbatch_parse(buf + p, got - p, &h) < 0) {
			if (p == 0)
				err = -EBADMSG;
			break;
		}
		size_t size = sbatch_total_size(&h);
		if (size > got - p || sbatch_last_offset(&h) >= max_offset)
			break;
		p += size;
		next = sbatch_last_offset(&h) + 1;
	}
	if (!err && p > 0 && seg_base >= 0)
		hint_add(l, next, seg_base, start + (int64_t)p);
	if (err || p == 0) {
		free(buf);
		cb(cb_arg, err, NULL, 0);
		return;
	}
	cb(cb_arg, 0, buf, p);
}

static int read_answer(struct log *l, int err, log_read_cb cb, void *arg)
{
	struct log_read_op *op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->l = l;
	op->cb = cb;
	op->arg = arg;
	int e = io_nop(l->io, err, read_done, op);
	if (e) {
		free(op);
		return e;
	}
	l->reads_inflight++;
	return 0;
}

/* Index of the segment holding offset: the last with base <= offset. */
static size_t seg_for_offset(const struct log *l, int64_t offset)
{
	size_t lo = 0, hi = l->nsegs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->segs[mid]->base <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? 0 : lo - 1;
}

/* Position of the first batch in s whose last offset >= offset, below limit.
 * 1 found (with *h), 0 none, -errno. */
static int seg_seek(const struct segment *s, int64_t offset, int64_t limit, int64_t *pos_out,
		    struct sbatch_hdr *h)
{
	int64_t pos = seg_lookup(s, offset);
	while (pos + SBATCH_HDR_SIZE <= limit) {
		int err = seg_read_header(s, pos, h);
		if (err)
			return err;
		if (sbatch_last_offset(h) >= offset) {
			*pos_out = pos;
			return 1;
		}
		pos += (int64_t)sbatch_total_size(h);
	}
	return 0;
}

/* The first batch whose last offset >= offset, searching from segment *i
 * on: 1 with *i, *pos and *h set, 0 when none, -errno from a header read. */
static int seek_first_batch(const struct log *l, int64_t offset, size_t *i, int64_t *pos,
			    struct sbatch_hdr *h)
{
	for (; *i < l->nsegs; (*i)++) {
		const struct segment *s = l->segs[*i];
		int found = seg_seek(s, TM_MAX(offset, s->base), s->written, pos, h);
		if (found)
			return found;
	}
	return 0;
}

int log_read(struct log *l, int64_t offset, int64_t max_offset, size_t max_bytes,
	     log_read_cb cb, void *arg)
{
	if (!l || !cb)
		return -EINVAL;
	if (l->offline)
		return l->offline_err;
	if (offset < l->log_start || offset > l->leo)
		return read_answer(l, -ERANGE, cb, arg);
	int64_t limit = TM_MIN(max_offset, l->written);
	if (offset >= limit)
		return read_answer(l, 0, cb, arg);
	size_t i = seg_for_offset(l, offset);
	struct segment *s = NULL;
	struct sbatch_hdr h;
	int64_t pos = 0;
	for (unsigned k = 0; k < LOG_READ_HINTS; k++) {
		s = l->segs[i];
		if (l->hints[k].offset != offset || l->hints[k].seg_base != s->base ||
		    l->hints[k].pos + SBATCH_HDR_SIZE > s->written)
			continue;
		int err = seg_read_header(s, l->hints[k].pos, &h);
		if (err == 0 && h.base_offset == offset) {
			pos = l->hints[k].pos;
			goto found;
		}
	}
	int found = seek_first_batch(l, offset, &i, &pos, &h);
	if (found <= 0)
		return read_answer(l, found, cb, arg);
	s = l->segs[i];
found:
	if (sbatch_last_offset(&h) >= limit)
		return read_answer(l, 0, cb, arg);
	size_t first = sbatch_total_size(&h);
	size_t want = TM_MAX(max_bytes, first);
	want = (size_t)TM_MIN((int64_t)want, s->written - pos);
	if (want < first)
		return read_answer(l, -EBADMSG, cb, arg); /* the file ends inside the batch */
	struct log_read_op *op = calloc(1, sizeof(*op));
	uint8_t *buf = malloc(want);
	if (!op || !buf) {
		free(op);
		free(buf);
		return -ENOMEM;
	}
	op->l = l;
	op->seg = s;
	op->pos = pos;
	op->buf = buf;
	op->max_offset = limit;
	op->cb = cb;
	op->arg = arg;
	int err = io_read(l->io, s->fd, buf, want, pos, read_done, op);
	if (err) {
		free(op);
		free(buf);
		return err;
	}
	s->refs++;
	l->reads_inflight++;
	return 0;
}

/* Position of the first batch in s at or after `from` whose last offset is
 * >= limit, or s->written when every batch from `from` on lies below it.
 * -errno from a header read. */
static int64_t seg_end_below(const struct log *l, size_t i, int64_t limit)
{
	const struct segment *s = l->segs[i];
	int64_t seg_end_offset = i + 1 < l->nsegs ? TM_MIN(l->segs[i + 1]->base, l->written) : l->written;
	if (limit >= seg_end_offset)
		return s->written;
	struct sbatch_hdr h;
	int64_t pos = 0;
	int found = seg_seek(s, limit, s->written, &pos, &h);
	if (found < 0)
		return found;
	return found ? pos : s->written;
}

/* The last index entry's position in (after, upto], or -1. */
static int64_t seg_index_boundary(const struct segment *s, int64_t after, int64_t upto)
{
	uint32_t lo = 0, hi = s->noidx; /* first entry with pos > upto */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (s->oidx[mid].pos <= upto)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || s->oidx[lo - 1].pos <= after)
		return -1;
	return s->oidx[lo - 1].pos;
}

/* Whether [pos, pos + len) of fd is all in the page cache.  cachestat(2)
 * answers without reading.  Without it (kernels before 6.5): a one-byte
 * RWF_NOWAIT read of the middle and the last page, which fails with EAGAIN
 * on a missing page but also starts reading it in; true where the file
 * system cannot tell (no RWF_NOWAIT). */
static bool range_cached(int fd, int64_t pos, int64_t len)
{
	int r = sys_range_cached(fd, pos, (size_t)len);
	if (r >= 0)
		return r == 1;
	int64_t probe[2] = { pos + len / 2, pos + len - 1 };
	for (int i = 0; i < 2; i++) {
		uint8_t b;
		struct iovec iov = { &b, 1 };
		if (preadv2(fd, &iov, 1, probe[i], RWF_NOWAIT) != 1 && errno == EAGAIN)
			return false;
	}
	return true;
}

/* seg_read_header from the page cache only: -EAGAIN when (part of) the
 * header is not there, and then nothing is read, so the range's cache
 * check that follows stays honest (with cachestat; see range_cached).
 * Where the file system cannot tell, a plain read. */
static int read_header_cached(const struct segment *s, int64_t pos, struct sbatch_hdr *h)
{
	if (sys_range_cached(s->fd, pos, SBATCH_HDR_SIZE) == 0)
		return -EAGAIN;
	uint8_t hdr[SBATCH_HDR_SIZE];
	struct iovec iov = { hdr, sizeof(hdr) };
	ssize_t r = preadv2(s->fd, &iov, 1, pos, RWF_NOWAIT);
	if (r < 0 && errno != EAGAIN)
		return seg_read_header(s, pos, h);
	if (r < (ssize_t)sizeof(hdr))
		return -EAGAIN;
	return sbatch_parse(hdr, sizeof(hdr), h);
}

/* Batch headers read at most past the index entry a range ends on. */
#define LOG_RANGE_HEADER_STEPS 16

int log_read_range(struct log *l, int64_t offset, int64_t max_offset, size_t max_bytes,
		   struct log_range *out)
{
	out->fd = -1;
	out->pos = 0;
	out->len = 0;
	out->cached = true;
	if (!l)
		return -EINVAL;
	if (l->offline)
		return l->offline_err;
	if (offset < l->log_start || offset > l->leo)
		return -ERANGE;
	int64_t limit = TM_MIN(max_offset, l->written);
	if (offset >= limit)
		return 0;
	size_t i = seg_for_offset(l, offset);
	struct sbatch_hdr h;
	int64_t pos = 0;
	int found = seek_first_batch(l, offset, &i, &pos, &h);
	if (found <= 0)
		return found;
	struct segment *s = l->segs[i];
	if (sbatch_last_offset(&h) >= limit)
		return 0;
	int64_t first = (int64_t)sbatch_total_size(&h);
	if (pos + first > s->written)
		return -EBADMSG; /* the file ends inside the batch */
	int64_t end_limit = seg_end_below(l, i, limit);
	if (end_limit < 0)
		return (int)end_limit;
	/* Whole batches up to cap: the first always, then to the last index
	 * entry within cap, then header by header while the next still fits. */
	int64_t cap = TM_MIN(TM_MAX(pos + (int64_t)TM_MIN(max_bytes, (size_t)INT32_MAX), pos + first), end_limit);
	int64_t end = pos + first;
	int64_t at_index = seg_index_boundary(s, end, cap);
	if (at_index > end)
		end = at_index;
	for (int k = 0; k < LOG_RANGE_HEADER_STEPS && end + SBATCH_HDR_SIZE <= cap; k++) {
		if (read_header_cached(s, end, &h) != 0)
			break;
		int64_t size = (int64_t)sbatch_total_size(&h);
		if (end + size > cap)
			break;
		end += size;
	}
	TM_ASSERT(end > pos);
	TM_ASSERT(end <= s->written);
	int fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	out->fd = fd;
	out->pos = pos;
	out->len = (size_t)(end - pos);
	/* The first page was read for its header; the rest was not touched
	 * here (read_header_cached). */
	out->cached = range_cached(fd, pos, end - pos);
	return 0;
}

/* ---- timestamps ---------------------------------------------------------- */

int log_offset_for_timestamp(struct log *l, int64_t ts, int64_t *offset_out, int64_t *ts_out)
{
	*offset_out = -1;
	*ts_out = -1;
	if (l->offline)
		return l->offline_err;
	for (size_t i = 0; i < l->nsegs; i++) {
		struct segment *s = l->segs[i];
		if (s->max_ts < ts)
			continue;
		int64_t pos = seg_lookup(s, seg_time_lookup(s, ts));
		while (pos + SBATCH_HDR_SIZE <= s->written) {
			struct sbatch_hdr h;
			int err = seg_read_header(s, pos, &h);
			if (err)
				return err;
			size_t size = sbatch_total_size(&h);
			if (h.max_timestamp >= ts && sbatch_last_offset(&h) >= l->log_start) {
				uint8_t *b = malloc(size);
				if (!b)
					return -ENOMEM;
				ssize_t r = sys_pread_full(s->fd, b, size, pos);
				int64_t off, t;
				err = r < 0 ? (int)r : (size_t)r < size ? -EBADMSG
						: sbatch_find_timestamp(b, size, ts, &off, &t);
				free(b);
				if (err == -ENOENT)
					goto next_batch;
				if (err)
					return err;
				*offset_out = TM_MAX(off, l->log_start);
				*ts_out = t;
				return 0;
			}
next_batch:
			pos += (int64_t)size;
		}
	}
	return 0;
}

/* ---- retention, deletion, truncation ------------------------------------- */

static int64_t seg_largest_ts(const struct segment *s)
{
	if (s->max_ts >= 0)
		return s->max_ts;
	struct stat st;
	if (tm_sys->fstat(s->fd, &st) < 0)
		return INT64_MAX; /* unknown: keep it */
	return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

int log_delete_records(struct log *l, int64_t before_offset)
{
	if (l->offline)
		return l->offline_err;
	if (before_offset > l->leo || before_offset < 0)
		return -ERANGE;
	if (before_offset <= l->log_start)
		return 0;
	l->log_start = before_offset;
	size_t k = 0;
	while (k + 1 < l->nsegs && l->segs[k + 1]->base <= before_offset)
		k++;
	delete_front(l, k, "below the log start offset (DeleteRecords)");
	pstate_truncate_head(l->ps, l->log_start);
	if (epoch_cache_truncate_from_start(&l->epochs, l->log_start))
		(void)save_epochs(l);
	return write_checkpoint(l);
}

int log_enforce_retention(struct log *l, int64_t now_ms)
{
	if (l->offline)
		return l->offline_err;
	l->now_ms = now_ms;
	size_t k = 0;
	if (l->cfg.retention_ms >= 0) {
		while (k + 1 < l->nsegs && now_ms - seg_largest_ts(l->segs[k]) > l->cfg.retention_ms)
			k++;
	}
	size_t ks = 0;
	if (l->cfg.retention_bytes >= 0) {
		int64_t diff = log_size_bytes(l) - l->cfg.retention_bytes;
		while (ks + 1 < l->nsegs && diff - l->segs[ks]->size >= 0) {
			diff -= l->segs[ks]->size;
			ks++;
		}
	}
	int deleted = (int)TM_MAX(k, ks);
	if (deleted > 0)
		delete_front(l, (size_t)deleted, k >= ks ? "retention.ms" : "retention.bytes");
	struct segment *s = active(l);
	if (s->size > 0 && l->cfg.segment_ms != INT64_MAX && now_ms - s->created_ms > l->cfg.segment_ms) {
		int err = log_roll(l, now_ms);
		if (err)
			return err;
	}
	if (l->cfg.flush_interval_ms != INT64_MAX && l->leo > l->flushed &&
	    now_ms - l->last_flush_ms >= l->cfg.flush_interval_ms) {
		l->last_flush_ms = now_ms;
		l->unflushed_msgs = 0;
		int err = enqueue(l, active(l), NULL, 0, 0, true, NULL, NULL);
		if (err)
			return err;
	}
	pstate_expire(l->ps, now_ms, l->cfg.producer_id_expiration_ms);
	if (l->flushed != l->ckpt_recovery || l->log_start != l->ckpt_start) {
		int err = write_checkpoint(l);
		if (err)
			return err;
	}
	return deleted;
}

/* Recomputes next_offset / max timestamp of s from its last index entry to
 * its end (headers only).  0, or -EBADMSG when a header there is bad. */
static int seg_walk_tail(struct segment *s)
{
	s->next_offset = s->base;
	struct sbatch_hdr h;
	if (s->size > 0) {
		int err = seg_read_header(s, 0, &h);
		if (err)
			return err;
		s->first_ts = h.max_timestamp;
	}
	struct seg_scan sc;
	seg_scan_init(&sc, s->fd, s->last_index_pos, s->size);
	int64_t pos;
	int r;
	while ((r = seg_scan_next(&sc, false, &h, &pos, NULL)) == 1) {
		if (h.max_timestamp > s->max_ts) {
			s->max_ts = h.max_timestamp;
			s->max_ts_offset = sbatch_last_offset(&h);
		}
		s->next_offset = sbatch_last_offset(&h) + 1;
	}
	seg_scan_deinit(&sc);
	return r;
}

static int load_producer_state(struct log *l);

static int truncate_fully(struct log *l, int64_t offset)
{
	hints_clear(l);
	for (size_t i = 0; i < l->nsegs; i++) {
		seg_unlink_files(l->dir, l->segs[i]->base);
		seg_release(l->segs[i]);
	}
	l->nsegs = 0;
	struct segment *s;
	int err = seg_create(l->dir, offset, l->now_ms, &s);
	if (err) {
		go_offline(l, err, "creating a segment");
		return err;
	}
	(void)segs_push(l, s); /* the array has room: it held at least one */
	l->log_start = l->leo = l->written = l->flushed = offset;
	epoch_cache_clear(&l->epochs);
	if ((err = save_epochs(l)) != 0)
		return err;
	pstate_clear(l->ps);
	delete_snapshots(l, INT64_MAX, INT64_MAX);
	return write_checkpoint(l);
}

int log_truncate_fully_and_start_at(struct log *l, int64_t offset)
{
	if (l->offline)
		return l->offline_err;
	if (offset < 0)
		return -EINVAL;
	log_drain(l, true);
	if (l->offline)
		return l->offline_err;
	tm_info("storage", "%s: truncating fully, restarting at offset %lld", l->dir, (long long)offset);
	return truncate_fully(l, offset);
}

int log_truncate_to(struct log *l, int64_t offset)
{
	if (l->offline)
		return l->offline_err;
	if (offset < 0)
		return -EINVAL;
	log_drain(l, true);
	if (l->offline)
		return l->offline_err;
	if (offset >= l->leo) {
		/* No batch to drop, but an epoch that began here holds no record
		 * (a leadership that never wrote): forget it too, as the epoch
		 * history must end with the last batch's epoch for a follower's
		 * divergence check to settle. */
		if (epoch_cache_truncate_from_end(&l->epochs, offset))
			return save_epochs(l);
		return 0;
	}
	if (offset < l->segs[0]->base)
		return truncate_fully(l, offset);
	hints_clear(l);
	size_t i = seg_for_offset(l, offset);
	while (l->nsegs > i + 1) {
		struct segment *d = l->segs[--l->nsegs];
		seg_unlink_files(l->dir, d->base);
		seg_release(d);
	}
	struct segment *s = active(l);
	struct sbatch_hdr h;
	int64_t pos = s->size;
	int err = seg_seek(s, offset, s->size, &pos, &h);
	if (err < 0)
		goto err_offline;
	if (err == 0)
		pos = s->size;
	tm_info("storage", "%s: truncating to offset %lld (segment %020lld.log at position %lld)",
		l->dir, (long long)offset, (long long)s->base, (long long)pos);
	if ((err = sys_ftruncate(s->fd, pos)) != 0)
		goto err_offline;
	s->size = s->written = pos;
	seg_truncate_indexes(s, pos, offset);
	if ((err = seg_walk_tail(s)) < 0)
		goto err_offline;
	if ((err = seg_open_index_fds(l->dir, s)) != 0 || (err = seg_persist_indexes(l->dir, s)) != 0)
		goto err_offline;
	l->leo = l->written = s->next_offset;
	l->flushed = TM_MIN(l->flushed, l->leo);
	l->log_start = TM_MIN(l->log_start, l->leo);
	if (epoch_cache_truncate_from_end(&l->epochs, l->leo) && (err = save_epochs(l)) != 0)
		return err;
	delete_snapshots(l, -1, l->leo);
	if ((err = load_producer_state(l)) != 0)
		goto err_offline;
	return write_checkpoint(l);

err_offline:
	go_offline(l, err, "truncating the log");
	return err;
}

/* ---- epochs, topic id ---------------------------------------------------- */

int log_assign_epoch(struct log *l, int32_t epoch, int64_t start_offset)
{
	if (l->offline)
		return l->offline_err;
	int r = epoch_cache_assign(&l->epochs, epoch, start_offset);
	if (r <= 0)
		return r;
	return save_epochs(l);
}

int log_end_offset_for_epoch(const struct log *l, int32_t epoch, int32_t *epoch_out,
			     int64_t *end_offset_out)
{
	epoch_cache_end_offset_for(&l->epochs, epoch, l->leo, epoch_out, end_offset_out);
	return 0;
}

int32_t log_latest_epoch(const struct log *l)
{
	return epoch_cache_latest(&l->epochs);
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void log_uuid_to_base64(const uint8_t uuid[16], char out[23])
{
	int o = 0;
	for (int i = 0; i < 16; i += 3) {
		uint32_t v = (uint32_t)uuid[i] << 16;
		if (i + 1 < 16)
			v |= (uint32_t)uuid[i + 1] << 8;
		if (i + 2 < 16)
			v |= uuid[i + 2];
		int chars = i + 2 < 16 ? 4 : 2; /* 16 = 5*3 + 1: the last group has 1 byte */
		for (int c = 0; c < chars; c++)
			out[o++] = b64url[(v >> (18 - 6 * c)) & 63];
	}
	out[o] = '\0';
}

int log_uuid_from_base64(const char *s, size_t len, uint8_t uuid[16])
{
	if (len != 22)
		return -EINVAL;
	uint8_t bits[22];
	for (size_t i = 0; i < 22; i++) {
		const char *p = memchr(b64url, s[i], 64);
		if (!p || s[i] == '\0')
			return -EINVAL;
		bits[i] = (uint8_t)(p - b64url);
	}
	int o = 0;
	for (size_t i = 0; i < 22; i += 4) {
		uint32_t v = 0;
		size_t n = TM_MIN((size_t)4, 22 - i);
		for (size_t c = 0; c < 4; c++)
			v = (v << 6) | (c < n ? bits[i + c] : 0);
		uuid[o++] = (uint8_t)(v >> 16);
		if (n == 4) {
			uuid[o++] = (uint8_t)(v >> 8);
			uuid[o++] = (uint8_t)v;
		}
	}
	return 0;
}

int log_write_topic_id(struct log *l, const uint8_t uuid[16])
{
	char id[23], text[64];
	log_uuid_to_base64(uuid, id);
	int n = snprintf(text, sizeof(text), "version: 0\ntopic_id: %s\n", id);
	return sys_write_file_atomic(l->dir, LOG_META_FILE, text, (size_t)n, 1);
}

int log_read_topic_id(struct log *l, uint8_t uuid[16])
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", l->dir, LOG_META_FILE);
	uint8_t *buf;
	size_t len;
	int err = sys_read_file(p, 4096, &buf, &len);
	if (err)
		return err;
	err = -EBADMSG;
	const char *t = (const char *)buf;
	const char *v = strstr(t, "version: 0\n");
	const char *id = strstr(t, "topic_id: ");
	if (v == t && id) {
		id += strlen("topic_id: ");
		size_t n = strcspn(id, "\r\n");
		if (log_uuid_from_base64(id, n, uuid) == 0)
			err = 0;
	}
	free(buf);
	return err;
}

/* ---- open, recovery, close ----------------------------------------------- */

/* Scans a segment with CRC checks, rebuilding its indexes and the epoch
 * cache; cuts the file at the first torn or corrupt batch.  Returns 1 when
 * it cut, 0 when whole, -errno on I/O error. */
static int recover_segment(struct log *l, struct segment *s, bool *epochs_changed)
{
	seg_reset_indexes(s);
	struct seg_scan sc;
	seg_scan_init(&sc, s->fd, 0, s->size);
	struct sbatch_hdr h;
	int64_t pos, valid = 0, expect = s->base;
	const uint8_t *body;
	int r;
	while ((r = seg_scan_next(&sc, true, &h, &pos, &body)) == 1) {
		if (h.base_offset < expect) {
			r = -EBADMSG;
			break;
		}
		if (seg_index_batch(s, &h, pos, l->cfg.index_interval_bytes) < 0) {
			r = -ENOMEM;
			break;
		}
		if (h.leader_epoch >= 0 && h.leader_epoch > epoch_cache_latest(&l->epochs))
			*epochs_changed |= epoch_cache_assign(&l->epochs, h.leader_epoch, h.base_offset) > 0;
		expect = sbatch_last_offset(&h) + 1;
		valid = pos + (int64_t)sbatch_total_size(&h);
	}
	seg_scan_deinit(&sc);
	if (r < 0 && r != -EBADMSG) {
		tm_error("storage", "%s: reading segment %020lld.log during recovery failed: %s",
			 l->dir, (long long)s->base, strerror(-r));
		return r;
	}
	int cut = 0;
	if (valid < s->size) {
		tm_warn("storage", "%s: segment %020lld.log: dropping %lld bytes from position %lld "
			"(torn or corrupt batch after an unclean shutdown)", l->dir,
			(long long)s->base, (long long)(s->size - valid), (long long)valid);
		int err = sys_ftruncate(s->fd, valid);
		if (err) {
			tm_error("storage", "%s: cannot truncate segment %020lld.log: %s", l->dir,
				 (long long)s->base, strerror(-err));
			return err;
		}
		s->size = s->written = valid;
		cut = 1;
	}
	int err = seg_persist_indexes(l->dir, s);
	if (!err && s->size > 0)
		err = sys_fsync(s->fd);
	if (err) {
		tm_error("storage", "%s: writing the rebuilt index of %020lld failed: %s", l->dir,
			 (long long)s->base, strerror(-err));
		return err;
	}
	return cut;
}

static int load_producer_state(struct log *l)
{
	pstate_clear(l->ps);
	int64_t *snaps;
	size_t nsnaps;
	int err = list_offsets(l->dir, ".snapshot", &snaps, &nsnaps);
	if (err)
		return err;
	int64_t from = l->segs[0]->base;
	char p[PATH_MAX];
	for (size_t i = nsnaps; i-- > 0;) {
		snapshot_path(p, sizeof(p), l->dir, snaps[i]);
		if (snaps[i] > l->leo) {
			(void)sys_unlink(p);
			continue;
		}
		err = pstate_snapshot_read(l->ps, p, snaps[i]);
		if (err == 0) {
			from = TM_MAX(from, snaps[i]);
			break;
		}
		tm_warn("storage", "%s: ignoring producer snapshot %020lld.snapshot: %s", l->dir,
			(long long)snaps[i], strerror(-err));
		(void)sys_unlink(p);
	}
	free(snaps);
	err = 0;
	for (size_t i = 0; i < l->nsegs && !err; i++) {
		struct segment *s = l->segs[i];
		if (s->next_offset <= from)
			continue;
		struct seg_scan sc;
		seg_scan_init(&sc, s->fd, from > s->base ? seg_lookup(s, from) : 0, s->size);
		struct sbatch_hdr h;
		int64_t pos;
		int r;
		while ((r = seg_scan_next(&sc, false, &h, &pos, NULL)) == 1) {
			if (h.base_offset >= from && h.producer_id >= 0 && pstate_update(l->ps, &h) < 0) {
				r = -ENOMEM;
				break;
			}
		}
		seg_scan_deinit(&sc);
		if (r < 0)
			err = r;
	}
	pstate_truncate_head(l->ps, l->log_start);
	return err;
}

static void log_free(struct log *l)
{
	for (size_t i = 0; i < l->nsegs; i++)
		seg_release(l->segs[i]);
	free(l->segs);
	pstate_free(l->ps);
	epoch_cache_deinit(&l->epochs);
	free(l->dir);
	free(l);
}

/* Removes leftovers: *.tmp files, and index files whose .log is gone. */
static void remove_strays(struct log *l, const int64_t *bases, size_t n)
{
	static const char *const exts[] = { ".index", ".timeindex" };
	char p[PATH_MAX];
	for (size_t e = 0; e < TM_ARRAY_LEN(exts); e++) {
		int64_t *v;
		size_t nv;
		if (list_offsets(l->dir, exts[e], &v, &nv) < 0)
			continue;
		for (size_t i = 0; i < nv; i++) {
			bool found = false;
			for (size_t j = 0; j < n && !found; j++)
				found = bases[j] == v[i];
			if (!found && seg_path(p, sizeof(p), l->dir, v[i], exts[e]) == 0)
				(void)sys_unlink(p);
		}
		free(v);
	}
	DIR *d = tm_sys->opendir(l->dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = tm_sys->readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0 &&
		    snprintf(p, sizeof(p), "%s/%s", l->dir, de->d_name) < (int)sizeof(p))
			(void)sys_unlink(p);
	}
	tm_sys->closedir(d);
}

static int open_segments(struct log *l, int64_t ckpt_start, int64_t recovery, bool clean,
			 int64_t now_ms)
{
	int64_t *bases;
	size_t n;
	int err = list_offsets(l->dir, ".log", &bases, &n);
	if (err) {
		tm_error("storage", "%s: cannot list the log directory: %s", l->dir, strerror(-err));
		return err;
	}
	remove_strays(l, bases, n);
	bool *index_ok = calloc(n ? n : 1, sizeof(bool));
	if (!index_ok) {
		free(bases);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct segment *s;
		if ((err = seg_open(l->dir, bases[i], now_ms, &s, &index_ok[i])) != 0)
			goto out;
		if ((err = segs_push(l, s)) != 0) {
			seg_release(s);
			goto out;
		}
	}
	if (l->nsegs == 0) {
		struct segment *s;
		if ((err = seg_create(l->dir, ckpt_start, now_ms, &s)) != 0)
			goto out;
		if ((err = segs_push(l, s)) != 0) {
			seg_release(s);
			goto out;
		}
		index_ok[0] = true;
	}
	/* recovery starts at the segment holding the recovery point */
	size_t first_scan = l->nsegs;
	if (!clean || recovery < 0)
		first_scan = recovery < 0 ? 0 : seg_for_offset(l, recovery);
	bool epochs_changed = false;
	for (size_t i = 0; i < l->nsegs; i++) {
		struct segment *s = l->segs[i];
		bool last = i + 1 == l->nsegs;
		if (i < first_scan && index_ok[i]) {
			if (last) {
				if (seg_walk_tail(s) == 0)
					continue;
				tm_warn("storage", "%s: segment %020lld.log has a bad batch header "
					"after a clean shutdown; recovering it", l->dir, (long long)s->base);
			} else {
				s->next_offset = l->segs[i + 1]->base;
				continue;
			}
		}
		int r = recover_segment(l, s, &epochs_changed);
		if (r < 0) {
			err = r;
			goto out;
		}
		if (r == 1 || s->next_offset > (last ? INT64_MAX : l->segs[i + 1]->base)) {
			/* everything after a cut is gone: offsets must stay contiguous */
			while (l->nsegs > i + 1) {
				struct segment *d = l->segs[--l->nsegs];
				tm_warn("storage", "%s: deleting segment %020lld.log after the truncated one",
					l->dir, (long long)d->base);
				seg_unlink_files(l->dir, d->base);
				seg_release(d);
			}
		}
	}
	for (size_t i = 0; i + 1 < l->nsegs; i++)
		seg_close_index_fds(l->segs[i]);
	err = seg_open_index_fds(l->dir, active(l));
	if (err)
		goto out;
	l->leo = active(l)->next_offset;
	if (epochs_changed && (err = save_epochs(l)) != 0)
		goto out;
out:
	free(index_ok);
	free(bases);
	return err;
}

int log_open(struct tm_io *io, const char *dir, const struct log_config *cfg, int64_t now_ms,
	     struct log **out)
{
	struct log *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->io = io;
	l->now_ms = now_ms;
	hints_clear(l);
	epoch_cache_init(&l->epochs);
	if (cfg)
		l->cfg = *cfg;
	else
		log_config_defaults(&l->cfg);
	config_sanitize(&l->cfg);
	int err = -ENOMEM;
	if (!(l->dir = strdup(dir)) || pstate_new(&l->ps) < 0)
		goto err_free;
	err = sys_mkdir_p(dir, 0755);
	if (err) {
		tm_error("storage", "cannot create log directory %s: %s", dir, strerror(-err));
		goto err_free;
	}
	int64_t recovery = -1, ckpt_start = 0;
	err = read_checkpoint(dir, &recovery, &ckpt_start);
	if (err == -EBADMSG)
		tm_warn("storage", "%s: %s is corrupt; recovering every segment", dir, LOG_CKPT_FILE);
	else if (err && err != -ENOENT)
		tm_warn("storage", "%s: cannot read %s: %s", dir, LOG_CKPT_FILE, strerror(-err));
	if (err)
		recovery = -1, ckpt_start = 0;
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, LOG_CLEAN_FILE);
	bool clean = sys_unlink(p) == 0;
	err = epoch_cache_load(&l->epochs, dir);
	if (err == -EBADMSG)
		tm_warn("storage", "%s: %s is malformed; rebuilding the epoch cache from the log", dir,
			EPOCH_CACHE_FILE);
	else if (err) {
		tm_error("storage", "%s: cannot read %s: %s", dir, EPOCH_CACHE_FILE, strerror(-err));
		goto err_free;
	}
	if (err == -EBADMSG)
		recovery = -1; /* rescan everything to rebuild it */
	if ((err = open_segments(l, ckpt_start, recovery, clean, now_ms)) != 0)
		goto err_free;
	l->log_start = TM_MIN(TM_MAX(ckpt_start, l->segs[0]->base), l->leo);
	l->written = l->flushed = l->leo;
	bool changed = epoch_cache_truncate_from_end(&l->epochs, l->leo);
	changed |= epoch_cache_truncate_from_start(&l->epochs, l->log_start);
	if (changed && (err = epoch_cache_save(&l->epochs, dir)) != 0) {
		tm_error("storage", "%s: cannot write %s: %s", dir, EPOCH_CACHE_FILE, strerror(-err));
		goto err_free;
	}
	if ((err = load_producer_state(l)) != 0) {
		tm_error("storage", "%s: rebuilding producer state failed: %s", dir, strerror(-err));
		goto err_free;
	}
	l->last_flush_ms = now_ms;
	if ((err = write_checkpoint(l)) != 0)
		goto err_free;
	tm_info("storage", "%s: opened%s, offsets %lld..%lld in %zu segment(s)", dir,
		clean ? " after a clean shutdown" : recovery < 0 ? "" : " after recovery",
		(long long)l->log_start, (long long)l->leo, l->nsegs);
	*out = l;
	return 0;

err_free:
	log_free(l);
	return err;
}

static void log_persist_clean(struct log *l)
{
	struct segment *s = active(l);
	int err = seg_finish_time_index(s);
	if (!err)
		err = seg_persist_indexes(l->dir, s);
	for (size_t i = 0; i < l->nsegs && !err; i++)
		if (l->segs[i]->dirty || i + 1 == l->nsegs)
			err = sys_fsync(l->segs[i]->fd);
	if (!err && s->idx_fd >= 0)
		err = sys_fsync(s->idx_fd);
	if (!err && s->tidx_fd >= 0)
		err = sys_fsync(s->tidx_fd);
	if (err) {
		go_offline(l, err, "flushing at close");
		return;
	}
	l->flushed = l->written;
	err = pstate_snapshot_write(l->ps, l->dir, l->leo, true);
	if (err) {
		go_offline(l, err, "writing the producer snapshot at close");
		return;
	}
	delete_snapshots(l, l->segs[0]->base, l->leo);
	if (write_checkpoint(l) != 0)
		return;
	err = sys_write_file_atomic(l->dir, LOG_CLEAN_FILE, "", 0, 1);
	if (err)
		tm_warn("storage", "%s: clean shutdown marker not written: %s (the next start "
			"recovers the active segment)", l->dir, strerror(-err));
}

void log_close(struct log *l)
{
	if (!l)
		return;
	log_drain(l, true);
	if (!l->offline)
		log_persist_clean(l);
	log_free(l);
}

int log_delete(struct log *l)
{
	if (!l)
		return 0;
	log_drain(l, true);
	char *dir = strdup(l->dir);
	log_free(l);
	if (!dir)
		return -ENOMEM;
	int err = sys_remove_dir(dir);
	if (err)
		tm_error("storage", "cannot remove log directory %s: %s", dir, strerror(-err));
	free(dir);
	return err;
}
