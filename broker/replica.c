/*
 * replica.c — follower fetchers and the leader's AlterPartition sender.
 * See replica.h.
 */
#include "broker/replica.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "broker/partition.h"
#include "broker/peer.h"
#include "broker/quorum.h"
#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"
#include "common/tm_time.h"
#include "storage/batch.h"

#define FETCH_VERSION 15
#define ALTER_PARTITION_VERSION 2
#define FETCH_RPC_SLACK_MS 10000     /* beyond the long-poll wait */
#define FETCHER_IDLE_FREE_MS 10000
#define ALTER_TIMEOUT_MS 5000

struct replica_fetcher {
	struct replica_fetcher *next;
	struct tm_broker *b;
	int32_t leader_id;
	char host[256];
	int port;
	struct tm_peer *peer;
	bool inflight;               /* a Fetch is out, or its appends are pending */
	int appends_pending;
	int64_t backoff_until_ms;    /* monotonic */
	int64_t last_used_ms;
};

/* ---- fetcher registry -------------------------------------------------------- */

/* The leader's endpoint for replication: the inter-broker listener, else its
 * first PLAINTEXT one. */
static const struct md_endpoint *replication_endpoint(struct tm_broker *b, int32_t id)
{
	struct md_broker *br = md_broker(&b->md, id);
	if (!br)
		return NULL;
	const char *want = b->cfg.inter_broker_listener_name;
	for (int i = 0; i < br->n_eps && want[0]; i++)
		if (!strcmp(br->eps[i].name, want) && br->eps[i].security_protocol == 0)
			return &br->eps[i];
	for (int i = 0; i < br->n_eps; i++)
		if (br->eps[i].security_protocol == 0)
			return &br->eps[i];
	return NULL;
}

static struct replica_fetcher *fetcher_for(struct tm_broker *b, int32_t leader)
{
	const struct md_endpoint *ep = replication_endpoint(b, leader);
	if (!ep)
		return NULL;
	struct replica_fetcher *f;
	for (f = b->fetchers; f; f = f->next)
		if (f->leader_id == leader)
			break;
	if (f && (strcmp(f->host, ep->host) || f->port != ep->port) && !f->inflight) {
		/* The leader came back on another address: reconnect there. */
		peer_free(f->peer);
		f->peer = NULL;
	}
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			return NULL;
		f->b = b;
		f->leader_id = leader;
		f->next = b->fetchers;
		b->fetchers = f;
	}
	if (!f->peer) {
		snprintf(f->host, sizeof(f->host), "%s", ep->host);
		f->port = ep->port;
		f->peer = peer_new(b, leader, f->host, f->port);
		if (!f->peer)
			return NULL;
		tm_info("replica", "fetching from broker %d at %s:%d", leader, f->host, f->port);
	}
	return f;
}

static void fetcher_unlink_free(struct tm_broker *b, struct replica_fetcher *f)
{
	for (struct replica_fetcher **pp = &b->fetchers; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	struct tm_peer *peer = f->peer;
	free(f);
	if (peer)
		peer_free(peer); /* ends an outstanding fetch with -ECANCELED; it must not find f */
}

/* ---- building a fetch ---------------------------------------------------------- */

static bool follows(struct tm_broker *b, struct tm_partition *p, int32_t leader, int64_t now)
{
	return p && p->log && !p->is_leader && p->leader_id == leader && leader >= 0 && leader != b->cfg.node_id &&
	       now >= p->fetch_backoff_ms && !log_dir_offline(p->log);
}

struct fetch_ctx {
	struct replica_fetcher *f;
};

static void fetch_response(void *arg, int err, struct tm_rd *body);

/* Builds and sends one Fetch for everything this node follows from f's
 * leader.  Returns the number of partitions asked for. */
static int fetcher_send(struct replica_fetcher *f, int64_t now)
{
	struct tm_broker *b = f->b;
	struct tm_arena a;
	arena_init(&a, 0);
	int nt = 0, np_total = 0;
	for (size_t i = 0; i < b->topics.cap; i++) {
		if (!b->topics.slots[i].key)
			continue;
		struct tm_topic *tt = b->topics.slots[i].value;
		for (int32_t j = 0; j < tt->n_parts; j++)
			if (follows(b, tt->parts[j], f->leader_id, now)) {
				nt++;
				break;
			}
	}
	if (!nt) {
		arena_deinit(&a);
		return 0;
	}
	struct kafka_fetch_request r;
	kafka_fetch_request_init(&r);
	r.replica_id = b->cfg.node_id;
	r.replica_state.replica_id = b->cfg.node_id;
	r.replica_state.replica_epoch = b->registered_epoch;
	r.max_wait_ms = b->cfg.replica_fetch_wait_max_ms;
	r.min_bytes = b->cfg.replica_fetch_min_bytes;
	r.max_bytes = b->cfg.replica_fetch_response_max_bytes;
	r.isolation_level = 0;
	r.session_id = 0;
	r.session_epoch = -1;
	r.topics = arena_alloc(&a, sizeof(*r.topics) * (size_t)nt);
	r.topics_count = 0;
	r.forgotten_topics_data_count = 0;
	r.rack_id = kstr_c("");
	if (!r.topics) {
		arena_deinit(&a);
		return 0;
	}
	for (size_t i = 0; i < b->topics.cap; i++) {
		if (!b->topics.slots[i].key)
			continue;
		struct tm_topic *tt = b->topics.slots[i].value;
		int n = 0;
		for (int32_t j = 0; j < tt->n_parts; j++)
			n += follows(b, tt->parts[j], f->leader_id, now);
		if (!n)
			continue;
		struct kafka_fetch_request_fetch_topic *ft = &r.topics[r.topics_count++];
		ft->topic = kstr_c(tt->name);
		ft->topic_id = tt->id;
		ft->partitions = arena_alloc(&a, sizeof(*ft->partitions) * (size_t)n);
		ft->partitions_count = 0;
		if (!ft->partitions) {
			arena_deinit(&a);
			return 0;
		}
		for (int32_t j = 0; j < tt->n_parts; j++) {
			struct tm_partition *p = tt->parts[j];
			if (!follows(b, p, f->leader_id, now))
				continue;
			struct kafka_fetch_request_fetch_partition *fp = &ft->partitions[ft->partitions_count++];
			memset(fp, 0, sizeof(*fp));
			fp->partition = j;
			fp->current_leader_epoch = p->leader_epoch;
			fp->fetch_offset = log_end_offset(p->log);
			fp->last_fetched_epoch = log_latest_epoch(p->log);
			fp->log_start_offset = log_start_offset(p->log);
			fp->partition_max_bytes = b->cfg.replica_fetch_max_bytes;
			np_total++;
		}
	}
	struct tm_wbuf w;
	wbuf_init(&w);
	kafka_fetch_request_encode(&w, FETCH_VERSION, &r);
	arena_deinit(&a);
	struct fetch_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		wbuf_deinit(&w);
		return 0;
	}
	ctx->f = f;
	f->inflight = true;
	f->last_used_ms = now;
	int rc = peer_send(f->peer, KAFKA_API_FETCH, FETCH_VERSION, &w,
			   b->cfg.replica_fetch_wait_max_ms + FETCH_RPC_SLACK_MS, fetch_response, ctx);
	wbuf_deinit(&w);
	if (rc) {
		free(ctx);
		f->inflight = false;
		f->backoff_until_ms = now + b->cfg.replica_fetch_backoff_ms;
		return 0;
	}
	return np_total;
}

/* ---- handling the answer --------------------------------------------------------- */

struct replica_append {
	struct tm_broker *b;
	int32_t leader_id;           /* the fetcher, looked up again: it may be gone */
	struct tm_partition *p;
	int64_t leader_hw;
	int64_t leader_log_start;
	struct peer_frame *frame;    /* holds the fetched bytes the log writes from */
};

static void fetcher_settle(struct replica_fetcher *f)
{
	broker_kick_io(f->b); /* submit the appends (or the next fetch's reads) now, not at the next tick */
	if (f->appends_pending > 0)
		return;
	f->inflight = false;
	/* Straight on with the next fetch: it reports what we just wrote. */
	int64_t now = tm_mono_ms();
	if (now >= f->backoff_until_ms)
		fetcher_send(f, now);
}

static void replica_append_done(void *arg, int err)
{
	struct replica_append *ra = arg;
	struct replica_fetcher *f = ra->b->fetchers;
	while (f && f->leader_id != ra->leader_id)
		f = f->next;
	struct tm_partition *p = ra->p;
	if (err) {
		tm_error("replica", "%s-%d: cannot append replicated data: %s; the log directory is offline",
			 p->topic->name, p->index, strerror(-err));
	} else {
		partition_set_follower_hw(p, ra->leader_hw);
	}
	peer_frame_release(ra->frame);
	free(ra);
	if (f && f->appends_pending > 0) {
		f->appends_pending--;
		fetcher_settle(f);
	}
}

static void partition_backoff(struct tm_partition *p, int64_t ms)
{
	p->fetch_backoff_ms = tm_mono_ms() + ms;
}

/* The leader says our log diverged from its at `div`: drop our suffix. */
static void replica_truncate(struct tm_partition *p, int32_t div_epoch, int64_t div_end)
{
	int64_t leo = log_end_offset(p->log);
	int64_t to;
	if (div_epoch < 0 || div_end < 0) {
		/* The leader has no epoch as old as ours: keep only what was committed. */
		to = p->high_watermark;
	} else {
		int32_t e;
		int64_t end;
		log_end_offset_for_epoch(p->log, div_epoch, &e, &end);
		to = e < 0 ? p->high_watermark : (end < div_end ? end : div_end);
	}
	if (to > leo)
		to = leo;
	if (to < log_start_offset(p->log))
		to = log_start_offset(p->log);
	tm_info("replica", "%s-%d: log diverged from the leader's (its epoch %d ends at %" PRId64
		"); truncating from %" PRId64 " to %" PRId64,
		p->topic->name, p->index, div_epoch, div_end, leo, to);
	int rc = log_truncate_to(p->log, to);
	if (rc) {
		tm_error("replica", "%s-%d: truncation failed: %s", p->topic->name, p->index, strerror(-rc));
		partition_backoff(p, p->b->cfg.replica_fetch_backoff_ms);
	}
	if (p->high_watermark > log_end_offset(p->log))
		p->high_watermark = log_end_offset(p->log);
}

/* Skips leading batches we already hold; checks CRCs.  Returns the offset in
 * buf where new data starts, or -1 when the bytes do not fit our log. */
static int64_t replica_check_batches(struct tm_partition *p, const uint8_t *buf, size_t len, size_t *start)
{
	int64_t leo = log_end_offset(p->log);
	size_t pos = 0;
	*start = len;
	bool found = false;
	while (pos < len) {
		struct sbatch_hdr h;
		if (sbatch_parse(buf + pos, len - pos, &h))
			return -1;
		size_t sz = sbatch_total_size(&h);
		if (sz > len - pos || !sbatch_crc_ok(buf + pos, sz))
			return -1;
		if (!found && sbatch_last_offset(&h) >= leo) {
			if (h.base_offset != leo)
				return -1;
			*start = pos;
			found = true;
		}
		pos += sz;
	}
	return 0;
}

static void replica_partition(struct replica_fetcher *f, struct tm_partition *p,
			      struct kafka_fetch_response_partition_data *d)
{
	struct tm_broker *b = f->b;
	switch (d->error_code) {
	case TM_ERR_NONE:
		break;
	case TM_ERR_OFFSET_OUT_OF_RANGE: {
		int64_t leo = log_end_offset(p->log);
		if (d->log_start_offset >= 0 && leo < d->log_start_offset) {
			tm_info("replica", "%s-%d: our log ends at %" PRId64 ", before the leader's log start %" PRId64
				"; starting over there", p->topic->name, p->index, leo, d->log_start_offset);
			log_truncate_fully_and_start_at(p->log, d->log_start_offset);
			p->high_watermark = d->log_start_offset;
		} else if (d->high_watermark >= 0 && leo > d->high_watermark) {
			replica_truncate(p, -1, -1);
		} else {
			partition_backoff(p, b->cfg.replica_fetch_backoff_ms);
		}
		return;
	}
	default:
		/* Not the leader (any more), a stale or newer leader epoch, an
		 * unknown topic: wait for the metadata to catch up. */
		tm_debug("replica", "%s-%d: fetch from broker %d: error %d", p->topic->name, p->index, f->leader_id,
			 d->error_code);
		partition_backoff(p, b->cfg.replica_fetch_backoff_ms < 500 ? b->cfg.replica_fetch_backoff_ms : 500);
		return;
	}
	if (d->diverging_epoch.epoch >= 0 || d->diverging_epoch.end_offset >= 0) {
		replica_truncate(p, d->diverging_epoch.epoch, d->diverging_epoch.end_offset);
		return;
	}
	if (d->log_start_offset > log_start_offset(p->log) && d->log_start_offset <= log_end_offset(p->log))
		log_delete_records(p->log, d->log_start_offset); /* the leader's retention or DeleteRecords */
	size_t len = d->records.len > 0 ? (size_t)d->records.len : 0;
	size_t start = 0;
	if (len && replica_check_batches(p, d->records.ptr, len, &start)) {
		tm_warn("replica", "%s-%d: the leader's answer does not continue our log at %" PRId64 "; fetching again",
			p->topic->name, p->index, log_end_offset(p->log));
		partition_backoff(p, 100);
		return;
	}
	if (start >= len) {
		partition_set_follower_hw(p, d->high_watermark);
		return;
	}
	struct replica_append *ra = calloc(1, sizeof(*ra));
	if (!ra)
		return;
	ra->b = b;
	ra->leader_id = f->leader_id;
	ra->p = p;
	ra->leader_hw = d->high_watermark;
	/* The log writes straight from the response's frame, which ra keeps.
	 * Counted before the call: a callback run at once must not find the
	 * fetcher idle and send the next fetch while this answer is walked. */
	ra->frame = peer_frame_hold(f->peer);
	f->appends_pending++;
	int rc = ra->frame ? log_append_replica_inplace(p->log, d->records.ptr + start, len - start, tm_wall_ms(),
							 replica_append_done, ra)
			   : log_append_replica(p->log, d->records.ptr + start, len - start, tm_wall_ms(),
						replica_append_done, ra);
	if (rc) {
		f->appends_pending--;
		peer_frame_release(ra->frame);
		free(ra);
		tm_error("replica", "%s-%d: cannot append replicated data at %" PRId64 ": %s", p->topic->name, p->index,
			 log_end_offset(p->log), strerror(-rc));
		partition_backoff(p, b->cfg.replica_fetch_backoff_ms);
		return;
	}
}

static void fetch_response(void *arg, int err, struct tm_rd *body)
{
	struct fetch_ctx *ctx = arg;
	if (err == -ECANCELED) {
		free(ctx); /* the fetcher is being freed */
		return;
	}
	struct replica_fetcher *f = ctx->f;
	free(ctx);
	struct tm_broker *b = f->b;
	int64_t now = tm_mono_ms();
	f->appends_pending = 1; /* held while the answer is walked */
	if (err) {
		tm_debug("replica", "fetch from broker %d failed: %s", f->leader_id, strerror(-err));
		f->backoff_until_ms = now + (b->cfg.replica_fetch_backoff_ms < 200 ? b->cfg.replica_fetch_backoff_ms : 200);
	} else {
		struct tm_arena a;
		arena_init(&a, 0);
		struct kafka_fetch_response r;
		if (kafka_fetch_response_decode(body, FETCH_VERSION, &r, &a)) {
			tm_warn("replica", "undecodable fetch answer from broker %d", f->leader_id);
			f->backoff_until_ms = now + b->cfg.replica_fetch_backoff_ms;
		} else if (r.error_code) {
			tm_debug("replica", "fetch from broker %d: error %d", f->leader_id, r.error_code);
			f->backoff_until_ms = now + b->cfg.replica_fetch_backoff_ms;
		} else {
			for (int32_t t = 0; t < r.responses_count; t++) {
				struct kafka_fetch_response_fetchable_topic_response *tr = &r.responses[t];
				struct tm_topic *tt = topic_by_id(b, &tr->topic_id);
				for (int32_t i = 0; tt && i < tr->partitions_count; i++) {
					struct kafka_fetch_response_partition_data *d = &tr->partitions[i];
					if (d->partition_index < 0 || d->partition_index >= tt->n_parts)
						continue;
					struct tm_partition *p = tt->parts[d->partition_index];
					/* Leadership may have moved while the fetch was out. */
					if (!follows(b, p, f->leader_id, now))
						continue;
					replica_partition(f, p, d);
				}
			}
		}
		arena_deinit(&a);
	}
	f->appends_pending--;
	fetcher_settle(f);
}

/* ---- tick / stop ------------------------------------------------------------------ */

void replication_tick(struct tm_broker *b, int64_t now_ms)
{
	if (b->stopping)
		return;
	/* Which leaders do we follow? */
	struct partition_cursor c = { 0 };
	for (struct tm_partition *p; (p = partitions_next(b, &c));) {
		if (!p->log || p->is_leader || p->leader_id < 0 || p->leader_id == b->cfg.node_id ||
		    log_dir_offline(p->log))
			continue; /* an offline log fetches nothing: no fetcher made, idle and freed each tick */
		struct replica_fetcher *f = fetcher_for(b, p->leader_id);
		if (f && !f->inflight && now_ms >= f->backoff_until_ms)
			fetcher_send(f, now_ms);
	}
	for (struct replica_fetcher *f = b->fetchers, *next; f; f = next) {
		next = f->next;
		if (f->peer)
			peer_tick(f->peer, now_ms);
		if (!f->inflight && now_ms - f->last_used_ms > FETCHER_IDLE_FREE_MS)
			fetcher_unlink_free(b, f);
	}
	partitions_isr_tick(b, now_ms);
}

void replication_stop(struct tm_broker *b)
{
	while (b->fetchers)
		fetcher_unlink_free(b, b->fetchers);
}

/* ---- AlterPartition (leader -> controller) -------------------------------------------- */

struct alter_ctx {
	struct tm_broker *b;
	struct kuuid topic_id;
	int32_t index;
	int32_t leader_epoch;
};

static void alter_response(void *arg, int err, struct tm_rd *body)
{
	struct alter_ctx *ctx = arg;
	struct tm_broker *b = ctx->b;
	struct tm_topic *tt = err == -ECANCELED ? NULL : topic_by_id(b, &ctx->topic_id);
	struct tm_partition *p = tt && ctx->index < tt->n_parts ? tt->parts[ctx->index] : NULL;
	int kerr = TM_ERR_NONE;
	if (err) {
		kerr = TM_ERR_REQUEST_TIMED_OUT;
	} else {
		struct tm_arena a;
		arena_init(&a, 0);
		struct kafka_alter_partition_response r;
		if (kafka_alter_partition_response_decode(body, ALTER_PARTITION_VERSION, &r, &a)) {
			kerr = TM_ERR_UNKNOWN_SERVER_ERROR;
		} else if (r.error_code) {
			kerr = r.error_code;
		} else {
			for (int32_t t = 0; t < r.topics_count; t++)
				for (int32_t i = 0; i < r.topics[t].partitions_count; i++)
					if (r.topics[t].partitions[i].partition_index == ctx->index)
						kerr = r.topics[t].partitions[i].error_code;
		}
		arena_deinit(&a);
	}
	if (p && p->is_leader && p->leader_epoch == ctx->leader_epoch) {
		if (kerr)
			tm_log(p->alter_failures ? TM_LOG_DEBUG : TM_LOG_INFO, "partition",
			       "%s-%d: the controller refused the ISR change (error %d); retrying from fresh metadata",
			       p->topic->name, p->index, kerr);
		partition_alter_done(p, kerr);
	}
	free(ctx);
}

int replica_alter_partition(struct tm_partition *p, const int32_t *isr, int n)
{
	struct tm_broker *b = p->b;
	struct kafka_alter_partition_request r;
	struct kafka_alter_partition_request_topic_data td;
	struct kafka_alter_partition_request_partition_data pd;
	kafka_alter_partition_request_init(&r);
	memset(&td, 0, sizeof(td));
	memset(&pd, 0, sizeof(pd));
	r.broker_id = b->cfg.node_id;
	r.broker_epoch = b->registered_epoch;
	r.topics = &td;
	r.topics_count = 1;
	td.topic_name = kstr_c(p->topic->name);
	td.topic_id = p->topic->id;
	td.partitions = &pd;
	td.partitions_count = 1;
	pd.partition_index = p->index;
	pd.leader_epoch = p->leader_epoch;
	pd.new_isr = (int32_t *)isr;
	pd.new_isr_count = n;
	pd.new_isr_with_epochs_count = 0;
	pd.leader_recovery_state = 0;
	pd.partition_epoch = p->partition_epoch;
	struct tm_wbuf w;
	wbuf_init(&w);
	kafka_alter_partition_request_encode(&w, ALTER_PARTITION_VERSION, &r);
	struct alter_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		wbuf_deinit(&w);
		return -ENOMEM;
	}
	ctx->b = b;
	ctx->topic_id = p->topic->id;
	ctx->index = p->index;
	ctx->leader_epoch = p->leader_epoch;
	int rc;
	if (quorum_is_leader(b)) {
		rc = alter_partition_local(b, w.buf, w.len, ALTER_PARTITION_VERSION, alter_response, ctx);
	} else {
		struct tm_peer *ctl = quorum_leader_peer(b);
		rc = ctl ? peer_send(ctl, KAFKA_API_ALTER_PARTITION, ALTER_PARTITION_VERSION, &w, ALTER_TIMEOUT_MS,
				     alter_response, ctx)
			 : -ENOTCONN;
	}
	wbuf_deinit(&w);
	if (rc)
		free(ctx);
	return rc;
}
