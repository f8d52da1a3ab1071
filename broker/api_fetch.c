/*
 * api_fetch.c — Fetch for consumers: reads up to the high watermark, long
 * polls with max_wait_ms / min_bytes, and answers early when data arrives.
 *
 * One fetch is a struct fetch_op that may run several rounds: resolve the
 * partitions (by name, or by topic id from v13), start one log_read per
 * partition with data, and when every read is back either answer or — with
 * fewer than min_bytes and time left — register a waiter on each partition
 * and sleep until a high watermark moves or the deadline passes.  Partitions
 * are looked up afresh each round, so a topic deleted meanwhile is reported,
 * never touched.
 *
 * Follower fetches (replica_id >= 0, broker/replica.c) take the same path
 * with three differences: they read up to the leader's written offset, not
 * the high watermark; their first round reports the follower's position to
 * the ISR tracking (partition_follower_fetched), which may move the HW; and
 * a last_fetched_epoch that the leader's epoch history contradicts is
 * answered at once with DivergingEpoch (the follower truncates).  They wait
 * for new data rather than for the HW.
 *
 * Fetch sessions (KIP-227) are declined: session_id 0 in every answer, which
 * tells the client to keep sending full fetches; a request naming a session
 * gets FETCH_SESSION_ID_NOT_FOUND.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/api.h"
#include "broker/partition.h"
#include "broker/quorum.h"
#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"
#include "common/tm_time.h"

#define FETCH_WAIT_MS_MAX 60000

struct fetch_op;

struct fetch_part {
	struct fetch_op *op;
	struct kafka_fetch_response_partition_data *r;
	struct kstr topic;          /* by name (v < 13) */
	struct kuuid topic_id;      /* by id (v >= 13) */
	int32_t index;
	int64_t fetch_offset;
	int32_t current_leader_epoch;
	int32_t last_fetched_epoch;
	int32_t max_bytes;
	bool answer_now;            /* divergence: no waiting */
	uint8_t *data;              /* owned until the response is encoded */
	struct log_range range;     /* or where the records lie (zero copy), fd owned */
	size_t len;
	struct tm_waiter w;
};

struct fetch_op {
	struct fetch_op *prev, *next; /* the broker's waiting fetches, for shutdown */
	struct tm_req *req;
	struct kafka_fetch_request in;
	struct kafka_fetch_response out;
	struct fetch_part *parts;
	int n_parts;
	int reads_pending;
	int32_t replica_id;         /* -1: a consumer */
	int round;
	struct event *timer;
	int64_t deadline_ms;        /* monotonic */
	bool waiting;
};

static void fetch_round(struct fetch_op *op);

static void fetch_clear_waits(struct fetch_op *op)
{
	for (int i = 0; i < op->n_parts; i++)
		partition_unwait(&op->parts[i].w);
	op->waiting = false;
}

static void fetch_free_data(struct fetch_op *op)
{
	for (int i = 0; i < op->n_parts; i++) {
		struct fetch_part *fp = &op->parts[i];
		free(fp->data);
		fp->data = NULL;
		if (fp->range.fd >= 0)
			close(fp->range.fd);
		fp->range.fd = -1;
		fp->range.len = 0;
		fp->len = 0;
	}
}

/* The records of fp as the response's field: its read buffer, or a hole
 * the connection fills from the segment file (the descriptor moves to the
 * request, which closes it if the response is never sent). */
static struct kbytes fetch_records(struct fetch_op *op, struct fetch_part *fp)
{
	struct tm_req *req = op->req;
	req->b->metrics.fetch_records_bytes += fp->len;
	if (fp->data)
		return kbytes_make(fp->data, fp->len);
	if (fp->range.len == 0)
		return kbytes_make("", 0);
	req->b->metrics.fetch_sendfile_bytes += fp->range.len;
	struct tm_file_range *f = arena_alloc(&req->arena, sizeof(*f));
	if (!f) {
		fp->r->error_code = TM_ERR_KAFKA_STORAGE_ERROR;
		return kbytes_make("", 0);
	}
	f->fd = fp->range.fd;
	f->pos = fp->range.pos;
	f->next = req->files;
	req->files = f;
	fp->range.fd = -1;
	return kbytes_hole(f, fp->range.len);
}

static void fetch_unlink(struct fetch_op *op)
{
	struct tm_broker *b = op->req->b;
	if (op->prev)
		op->prev->next = op->next;
	else if (b->fetch_ops == op)
		b->fetch_ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
}

static void fetch_respond(struct fetch_op *op)
{
	fetch_unlink(op);
	fetch_clear_waits(op);
	if (op->timer)
		event_free(op->timer);
	for (int i = 0; i < op->n_parts; i++)
		op->parts[i].r->records = fetch_records(op, &op->parts[i]);
	/* Encode, then free the read buffers, then finish: finishing frees the
	 * request arena that holds op->parts. */
	struct tm_req *req = op->req;
	kafka_fetch_response_encode(&req->resp, req->hdr.api_version, &op->out);
	fetch_free_data(op);
	free(op);
	req_finish(req);
}

static void fetch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fetch_op *op = arg;
	struct tm_broker *b = op->req->b;
	(void)fd;
	(void)what;
	fetch_clear_waits(op);
	fetch_round(op); /* may answer and free op */
	broker_kick_io(b);
}

static void fetch_wake(struct tm_waiter *w)
{
	struct fetch_part *fp = w->arg;
	struct fetch_op *op = fp->op;
	if (!op->waiting)
		return;
	/* Run the next round from the loop, not from inside the append that
	 * moved the high watermark. */
	fetch_clear_waits(op);
	event_del(op->timer);
	event_active(op->timer, EV_TIMEOUT, 0);
}

static struct tm_partition *fetch_resolve(struct fetch_op *op, struct fetch_part *fp)
{
	struct tm_broker *b = op->req->b;
	struct tm_topic *t = NULL;
	if (op->req->hdr.api_version >= 13)
		t = topic_by_id(b, &fp->topic_id);
	else if (fp->topic.len > 0)
		t = topic_by_name(b, fp->topic.ptr, (size_t)fp->topic.len);
	if (!t) {
		fp->r->error_code = op->req->hdr.api_version >= 13 ? TM_ERR_UNKNOWN_TOPIC_ID : TM_ERR_UNKNOWN_TOPIC_OR_PARTITION;
		return NULL;
	}
	if (fp->index < 0 || fp->index >= t->n_parts) {
		fp->r->error_code = TM_ERR_UNKNOWN_TOPIC_OR_PARTITION;
		return NULL;
	}
	return t->parts[fp->index];
}

/* One read (or the round's own hold) is done; settles the round after the last. */
static void fetch_settle(struct fetch_op *op)
{
	if (--op->reads_pending > 0)
		return;
	/* Every read is back: enough, or wait for more? */
	size_t total = 0;
	bool errors = false;
	for (int i = 0; i < op->n_parts; i++) {
		total += op->parts[i].len;
		errors |= op->parts[i].r->error_code != TM_ERR_NONE || op->parts[i].answer_now;
	}
	int64_t now = tm_mono_ms();
	/* A fetch naming no partition has nothing to wait for: Kafka answers
	 * it at once, and the Java consumer sends one while it closes. */
	if (op->n_parts == 0 || total >= (size_t)(op->in.min_bytes > 0 ? op->in.min_bytes : 0) || errors ||
	    now >= op->deadline_ms) {
		fetch_respond(op);
		return;
	}
	fetch_free_data(op);
	op->waiting = true;
	for (int i = 0; i < op->n_parts; i++) {
		struct tm_partition *p = fetch_resolve(op, &op->parts[i]);
		if (p && op->replica_id >= 0)
			partition_wait_data(p, &op->parts[i].w);
		else if (p)
			partition_wait(p, &op->parts[i].w);
	}
	int64_t left = op->deadline_ms - now;
	struct timeval tv = { (time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000) };
	event_add(op->timer, &tv);
}

static void fetch_read_done(void *arg, int err, uint8_t *data, size_t len)
{
	struct fetch_part *fp = arg;
	if (err == -ERANGE) {
		fp->r->error_code = TM_ERR_OFFSET_OUT_OF_RANGE;
		free(data);
	} else if (err) {
		fp->r->error_code = TM_ERR_KAFKA_STORAGE_ERROR;
		free(data);
	} else {
		fp->data = data;
		fp->len = len;
	}
	fetch_settle(fp->op);
}

/* Zero copy: finds where fp's records lie instead of reading them, and the
 * connection sends them from the file.  True when that settled fp (records
 * found, nothing to read, or an error); false to read them the usual way:
 * when they are not in the page cache (sendfile on the loop would wait for
 * the disk, the ring's read waits in a kernel worker), or when no file
 * descriptor is left for the range. */
static bool fetch_range(struct fetch_part *fp, struct tm_partition *p, int64_t limit, int32_t want)
{
	struct log_range rg;
	int rc = log_read_range(p->log, fp->fetch_offset, limit, (size_t)want, &rg);
	if (rc == -ERANGE) {
		fp->r->error_code = TM_ERR_OFFSET_OUT_OF_RANGE;
		return true;
	}
	if (rc == -EMFILE || rc == -ENFILE)
		return false; /* no descriptor to spare: read a copy instead */
	if (rc) {
		fp->r->error_code = TM_ERR_KAFKA_STORAGE_ERROR;
		return true;
	}
	if (rg.len > 0 && !rg.cached) {
		close(rg.fd);
		return false;
	}
	fp->range = rg;
	fp->len = rg.len;
	return true;
}

static void fetch_round(struct fetch_op *op)
{
	int32_t budget = op->in.max_bytes > 0 ? op->in.max_bytes : 0;
	bool first_with_data = true;
	op->reads_pending = 1; /* held until every read started */
	for (int i = 0; i < op->n_parts; i++) {
		struct fetch_part *fp = &op->parts[i];
		struct kafka_fetch_response_partition_data *r = fp->r;
		r->error_code = TM_ERR_NONE;
		struct tm_partition *p = fetch_resolve(op, fp);
		if (!p)
			continue;
		int kerr = partition_leader_error(p);
		if (!kerr && fp->current_leader_epoch >= 0) {
			if (fp->current_leader_epoch > p->leader_epoch)
				kerr = TM_ERR_UNKNOWN_LEADER_EPOCH;
			else if (fp->current_leader_epoch < p->leader_epoch)
				kerr = TM_ERR_FENCED_LEADER_EPOCH;
		}
		if (kerr) {
			r->error_code = (int16_t)kerr;
			r->current_leader.leader_id = p->leader_id;
			r->current_leader.leader_epoch = p->leader_epoch;
			continue;
		}
		r->log_start_offset = log_start_offset(p->log);
		if (op->replica_id >= 0 && fp->last_fetched_epoch >= 0) {
			int32_t e;
			int64_t end;
			log_end_offset_for_epoch(p->log, fp->last_fetched_epoch, &e, &end);
			if (e < fp->last_fetched_epoch || end < fp->fetch_offset) {
				r->diverging_epoch.epoch = e;
				r->diverging_epoch.end_offset = end;
				r->high_watermark = p->high_watermark;
				fp->answer_now = true;
				continue;
			}
		}
		if (fp->fetch_offset < r->log_start_offset || fp->fetch_offset > log_end_offset(p->log)) {
			r->error_code = TM_ERR_OFFSET_OUT_OF_RANGE;
			r->high_watermark = p->high_watermark; /* followers decide how to truncate from these */
			continue;
		}
		if (op->replica_id >= 0 && op->round == 0) {
			kerr = partition_follower_fetched(p, op->replica_id, fp->fetch_offset);
			if (kerr) {
				r->error_code = (int16_t)kerr;
				tm_warn("fetch", "%s-%d: fetch from broker %d, which is no replica of it", p->topic->name,
					p->index, op->replica_id);
				continue;
			}
		}
		int64_t hw = p->high_watermark;
		r->high_watermark = hw;
		r->last_stable_offset = hw;
		/* Consumers read committed data only; followers everything written. */
		int64_t limit = op->replica_id >= 0 ? log_written_offset(p->log) : hw;
		if (fp->fetch_offset >= limit)
			continue; /* nothing to read yet */
		/* KIP-74: the first partition with data may exceed the budget by
		 * one batch; the storage read returns at least one whole batch. */
		int32_t want = fp->max_bytes;
		if (want > budget)
			want = budget;
		if (want <= 0 && !first_with_data)
			continue;
		if (want <= 0)
			want = 1;
		first_with_data = false;
		budget -= want;
		if (op->req->zero_copy && fetch_range(fp, p, limit, want))
			continue;
		op->reads_pending++;
		int rc = log_read(p->log, fp->fetch_offset, limit, (size_t)want, fetch_read_done, fp);
		if (rc) {
			op->reads_pending--;
			r->error_code = TM_ERR_KAFKA_STORAGE_ERROR;
		}
	}
	op->round++;
	fetch_settle(op); /* the round's hold */
}

void api_fetch(struct tm_req *req)
{
	struct tm_broker *b = req->b;
	struct fetch_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	op->req = req;
	if (REQ_DECODE(req, fetch, &op->in)) {
		free(op);
		return;
	}
	/* The metadata quorum's own replication comes on the controller listener. */
	if (req->on_controller) {
		quorum_handle_fetch(req, &op->in);
		free(op);
		return;
	}
	kafka_fetch_response_init(&op->out);
	op->out.session_id = 0;
	op->replica_id = req->hdr.api_version >= 15 ? op->in.replica_state.replica_id : op->in.replica_id;
	if (op->replica_id < -1)
		op->replica_id = -1; /* -2 and below: debugging consumers, as Kafka treats them */
	if (req->hdr.api_version >= 7 && op->in.session_id != 0) {
		op->out.error_code = TM_ERR_FETCH_SESSION_ID_NOT_FOUND;
	}
	if (op->out.error_code) {
		op->out.responses_count = 0;
		REQ_RESPOND(req, fetch, &op->out);
		free(op);
		return;
	}
	int n = 0;
	for (int32_t t = 0; t < op->in.topics_count; t++)
		n += op->in.topics[t].partitions_count > 0 ? op->in.topics[t].partitions_count : 0;
	op->parts = arena_alloc(&req->arena, sizeof(*op->parts) * (size_t)(n ? n : 1));
	int32_t nt = op->in.topics_count > 0 ? op->in.topics_count : 0;
	op->out.responses = arena_alloc(&req->arena, sizeof(*op->out.responses) * (size_t)(nt ? nt : 1));
	if (!op->parts || !op->out.responses) {
		free(op);
		req_fail_decode(req);
		return;
	}
	op->out.responses_count = nt;
	for (int32_t t = 0; t < nt; t++) {
		struct kafka_fetch_request_fetch_topic *ft = &op->in.topics[t];
		struct kafka_fetch_response_fetchable_topic_response *tr = &op->out.responses[t];
		tr->topic = ft->topic;
		tr->topic_id = ft->topic_id;
		int32_t np = ft->partitions_count > 0 ? ft->partitions_count : 0;
		tr->partitions = arena_alloc(&req->arena, sizeof(*tr->partitions) * (size_t)(np ? np : 1));
		tr->partitions_count = tr->partitions ? np : 0;
		for (int32_t i = 0; i < tr->partitions_count; i++) {
			struct kafka_fetch_response_partition_data *r = &tr->partitions[i];
			r->partition_index = ft->partitions[i].partition;
			r->high_watermark = -1;
			r->last_stable_offset = -1;
			r->log_start_offset = -1;
			r->diverging_epoch.epoch = -1;
			r->diverging_epoch.end_offset = -1;
			r->current_leader.leader_id = -1;
			r->current_leader.leader_epoch = -1;
			r->snapshot_id.end_offset = -1;
			r->snapshot_id.epoch = -1;
			r->aborted_transactions_count = -1;
			r->preferred_read_replica = -1;
			struct fetch_part *fp = &op->parts[op->n_parts++];
			fp->op = op;
			fp->r = r;
			fp->topic = ft->topic;
			fp->topic_id = ft->topic_id;
			fp->index = ft->partitions[i].partition;
			fp->fetch_offset = ft->partitions[i].fetch_offset;
			fp->current_leader_epoch = ft->partitions[i].current_leader_epoch;
			fp->last_fetched_epoch = req->hdr.api_version >= 12 ? ft->partitions[i].last_fetched_epoch : -1;
			fp->max_bytes = ft->partitions[i].partition_max_bytes;
			fp->range.fd = -1;
			fp->w.wake = fetch_wake;
			fp->w.arg = fp;
		}
	}
	int32_t wait = op->in.max_wait_ms;
	if (wait < 0)
		wait = 0;
	if (wait > FETCH_WAIT_MS_MAX)
		wait = FETCH_WAIT_MS_MAX;
	op->deadline_ms = tm_mono_ms() + wait;
	op->timer = evtimer_new(b->base, fetch_timer_cb, op);
	TM_ASSERT(op->timer != NULL);
	op->next = b->fetch_ops;
	if (op->next)
		op->next->prev = op;
	b->fetch_ops = op;
	fetch_round(op);
}

void fetch_abort_all(struct tm_broker *b)
{
	while (b->fetch_ops) {
		struct fetch_op *op = b->fetch_ops;
		if (op->reads_pending > 0) {
			/* A storage read is still out; it finishes the op when it lands. */
			fetch_unlink(op);
			continue;
		}
		fetch_unlink(op);
		fetch_clear_waits(op);
		event_free(op->timer);
		fetch_free_data(op);
		struct tm_req *req = op->req;
		free(op);
		req->no_response = true;
		req_finish(req);
	}
}
