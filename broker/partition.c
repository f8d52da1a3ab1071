/*
 * partition.c — live partitions: opened, led, appended to, waited on.
 * See partition.h.
 */
#include "broker/partition.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "broker/replica.h"
#include "common/kerr.h"
#include "common/tm_log.h"
#include "common/tm_time.h"

/* ---- topic configs -------------------------------------------------------- */

const char *const tm_topic_config_keys[] = {
	"cleanup.policy", "compression.type", "delete.retention.ms", "file.delete.delay.ms",
	"flush.messages", "flush.ms", "index.interval.bytes", "max.message.bytes",
	"message.timestamp.type", "min.insync.replicas", "preallocate", "retention.bytes",
	"retention.ms", "segment.bytes", "segment.index.bytes", "segment.ms",
	"unclean.leader.election.enable", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
	"max.compaction.lag.ms", "message.timestamp.before.max.ms", "message.timestamp.after.max.ms",
	/* accepted and shown; replication is not throttled */
	"leader.replication.throttled.replicas", "follower.replication.throttled.replicas",
	NULL,
};

static bool parse_long(const char *v, int64_t min, int64_t *out)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < min)
		return false;
	*out = x;
	return true;
}

int topic_config_check(const char *key, const char *value, char *why, size_t why_len)
{
	int64_t x;
	bool known = false;
	for (int i = 0; tm_topic_config_keys[i]; i++)
		known |= !strcmp(tm_topic_config_keys[i], key);
	if (!known) {
		snprintf(why, why_len, "Unknown topic config name: %s", key);
		return TM_ERR_INVALID_CONFIG;
	}
	if (!value) /* deletion of an override */
		return TM_ERR_NONE;
	if (!strcmp(key, "cleanup.policy")) {
		if (strcmp(value, "delete") && strcmp(value, "compact") && strcmp(value, "compact,delete") &&
		    strcmp(value, "delete,compact")) {
			snprintf(why, why_len, "Invalid value %s for configuration cleanup.policy", value);
			return TM_ERR_INVALID_CONFIG;
		}
	} else if (!strcmp(key, "compression.type")) {
		/* Batches are stored as the producer compressed them. */
		if (strcmp(value, "producer")) {
			snprintf(why, why_len, "compression.type=%s is not supported: Tidemark stores batches as the producer compressed them (use producer)", value);
			return TM_ERR_INVALID_CONFIG;
		}
	} else if (!strcmp(key, "message.timestamp.type")) {
		if (strcmp(value, "CreateTime") && strcmp(value, "LogAppendTime")) {
			snprintf(why, why_len, "Invalid value %s for configuration message.timestamp.type", value);
			return TM_ERR_INVALID_CONFIG;
		}
	} else if (!strcmp(key, "preallocate") || !strcmp(key, "unclean.leader.election.enable")) {
		if (strcmp(value, "true") && strcmp(value, "false")) {
			snprintf(why, why_len, "Invalid value %s for configuration %s: expected true or false", value, key);
			return TM_ERR_INVALID_CONFIG;
		}
	} else if (!strcmp(key, "leader.replication.throttled.replicas") ||
		   !strcmp(key, "follower.replication.throttled.replicas")) {
		/* "" or "*" or partition:broker pairs, as Kafka validates them. */
		for (const char *c = value; *c; c++)
			if (!((*c >= '0' && *c <= '9') || *c == ':' || *c == ',' || *c == '*' || *c == ' ')) {
				snprintf(why, why_len, "Invalid value %s for configuration %s", value, key);
				return TM_ERR_INVALID_CONFIG;
			}
	} else if (!strcmp(key, "min.cleanable.dirty.ratio")) {
		char *end;
		double d = strtod(value, &end);
		if (end == value || *end || d < 0 || d > 1) {
			snprintf(why, why_len, "Invalid value %s for configuration %s", value, key);
			return TM_ERR_INVALID_CONFIG;
		}
	} else {
		int64_t min = 0;
		if (!strcmp(key, "retention.ms") || !strcmp(key, "retention.bytes"))
			min = -1;
		else if (!strcmp(key, "segment.bytes"))
			min = 14;
		else if (!strcmp(key, "flush.messages") || !strcmp(key, "segment.ms") ||
			 !strcmp(key, "min.insync.replicas"))
			min = 1;
		else if (!strcmp(key, "segment.index.bytes"))
			min = 4;
		if (!parse_long(value, min, &x)) {
			snprintf(why, why_len, "Invalid value %s for configuration %s: expected an integer >= %" PRId64,
				 value, key, min);
			return TM_ERR_INVALID_CONFIG;
		}
	}
	return TM_ERR_NONE;
}

static void fmt_i64(char *buf, size_t len, int64_t v)
{
	snprintf(buf, len, "%" PRId64, v);
}

const char *topic_config_value(struct tm_broker *b, const struct md_topic *t, const char *key, char *buf,
			       size_t len, bool *is_default)
{
	const char *v = t ? md_topic_config(t, key) : NULL;
	*is_default = v == NULL;
	if (v)
		return v;
	const struct tm_config *c = &b->cfg;
	if (!strcmp(key, "cleanup.policy"))
		return t && !strcmp(t->name, "__consumer_offsets") ? "compact" : "delete";
	if (!strcmp(key, "compression.type"))
		return "producer";
	if (!strcmp(key, "delete.retention.ms"))
		return "86400000";
	if (!strcmp(key, "file.delete.delay.ms"))
		return "60000";
	if (!strcmp(key, "flush.messages"))
		fmt_i64(buf, len, c->log_flush_interval_messages);
	else if (!strcmp(key, "flush.ms"))
		fmt_i64(buf, len, c->log_flush_interval_ms);
	else if (!strcmp(key, "index.interval.bytes"))
		fmt_i64(buf, len, c->log_index_interval_bytes);
	else if (!strcmp(key, "max.message.bytes"))
		fmt_i64(buf, len, c->message_max_bytes);
	else if (!strcmp(key, "message.timestamp.type"))
		return c->log_message_timestamp_type;
	else if (!strcmp(key, "min.insync.replicas"))
		fmt_i64(buf, len, c->min_insync_replicas);
	else if (!strcmp(key, "preallocate"))
		return "false";
	else if (!strcmp(key, "retention.bytes"))
		fmt_i64(buf, len, c->log_retention_bytes);
	else if (!strcmp(key, "retention.ms"))
		fmt_i64(buf, len, c->log_retention_ms);
	else if (!strcmp(key, "segment.bytes"))
		fmt_i64(buf, len, c->log_segment_bytes);
	else if (!strcmp(key, "segment.index.bytes"))
		fmt_i64(buf, len, c->log_index_size_max_bytes);
	else if (!strcmp(key, "segment.ms"))
		fmt_i64(buf, len, c->log_roll_ms);
	else if (!strcmp(key, "unclean.leader.election.enable"))
		return c->unclean_leader_election_enable ? "true" : "false";
	else if (!strcmp(key, "min.cleanable.dirty.ratio"))
		return "0.5";
	else if (!strcmp(key, "leader.replication.throttled.replicas") ||
		 !strcmp(key, "follower.replication.throttled.replicas"))
		return "";
	else if (!strcmp(key, "min.compaction.lag.ms"))
		return "0";
	else if (!strcmp(key, "max.compaction.lag.ms"))
		fmt_i64(buf, len, INT64_MAX);
	else if (!strcmp(key, "message.timestamp.before.max.ms") || !strcmp(key, "message.timestamp.after.max.ms"))
		fmt_i64(buf, len, INT64_MAX);
	else
		return NULL;
	return buf;
}

static int64_t cfg_long(struct tm_broker *b, const struct md_topic *t, const char *key)
{
	char buf[64];
	bool dflt;
	const char *v = topic_config_value(b, t, key, buf, sizeof(buf), &dflt);
	int64_t x = 0;
	if (!v || !parse_long(v, INT64_MIN, &x))
		return 0;
	return x;
}

static void topic_refresh_config(struct tm_broker *b, struct tm_topic *tt, const struct md_topic *t)
{
	struct log_config *lc = &tt->log_cfg;
	log_config_defaults(lc);
	lc->segment_bytes = cfg_long(b, t, "segment.bytes");
	lc->segment_ms = cfg_long(b, t, "segment.ms");
	lc->retention_bytes = cfg_long(b, t, "retention.bytes");
	lc->retention_ms = cfg_long(b, t, "retention.ms");
	lc->flush_interval_messages = cfg_long(b, t, "flush.messages");
	lc->flush_interval_ms = cfg_long(b, t, "flush.ms");
	lc->index_interval_bytes = (int32_t)cfg_long(b, t, "index.interval.bytes");
	lc->segment_index_bytes = (int32_t)cfg_long(b, t, "segment.index.bytes");
	char buf[64];
	bool dflt;
	const char *ts = topic_config_value(b, t, "message.timestamp.type", buf, sizeof(buf), &dflt);
	tt->log_append_time = ts && !strcmp(ts, "LogAppendTime");
	tt->max_message_bytes = (int32_t)cfg_long(b, t, "max.message.bytes");
	tt->min_insync_replicas = (int32_t)cfg_long(b, t, "min.insync.replicas");
	for (int32_t i = 0; i < tt->n_parts; i++)
		if (tt->parts[i] && tt->parts[i]->log)
			log_set_config(tt->parts[i]->log, lc);
}

/* ---- lookup ---------------------------------------------------------------- */

struct tm_topic *topic_by_name(struct tm_broker *b, const char *name, size_t len)
{
	return tm_map_get(&b->topics, name, len);
}

struct tm_topic *topic_by_id(struct tm_broker *b, const struct kuuid *id)
{
	return tm_map_get(&b->topic_ids, id->b, 16);
}

struct tm_partition *partition_get(struct tm_broker *b, struct kstr topic, int32_t index)
{
	if (topic.len <= 0)
		return NULL;
	struct tm_topic *t = topic_by_name(b, topic.ptr, (size_t)topic.len);
	if (!t || index < 0 || index >= t->n_parts)
		return NULL;
	return t->parts[index];
}

int partition_leader_error(const struct tm_partition *p)
{
	if (!p->log && p->open_err && p->leader_id == p->b->cfg.node_id)
		return TM_ERR_KAFKA_STORAGE_ERROR; /* its log could not be opened here */
	if (!p->is_leader || !p->log)
		return TM_ERR_NOT_LEADER_OR_FOLLOWER;
	if (log_dir_offline(p->log))
		return TM_ERR_KAFKA_STORAGE_ERROR;
	return TM_ERR_NONE;
}

/* ---- waiters --------------------------------------------------------------- */

static void waiter_add(struct tm_waiter *head, struct tm_partition *p, struct tm_waiter *w)
{
	w->p = p;
	w->next = head;
	w->prev = head->prev;
	head->prev->next = w;
	head->prev = w;
}

void partition_wait(struct tm_partition *p, struct tm_waiter *w)
{
	waiter_add(&p->waiters, p, w);
}

void partition_wait_data(struct tm_partition *p, struct tm_waiter *w)
{
	waiter_add(&p->data_waiters, p, w);
}

void partition_unwait(struct tm_waiter *w)
{
	if (!w->p)
		return;
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->p = NULL;
	w->next = w->prev = NULL;
}

static void wake_list(struct tm_waiter *head)
{
	/* A woken waiter unregisters itself (and maybe others of its fetch), so
	 * always restart from the head. */
	while (head->next != head) {
		struct tm_waiter *w = head->next;
		partition_unwait(w);
		w->wake(w);
	}
}

static void partition_wake_all(struct tm_partition *p)
{
	wake_list(&p->waiters);
	wake_list(&p->data_waiters);
}

/* ---- ISR ------------------------------------------------------------------- */

static const struct md_partition *md_part(const struct tm_partition *p)
{
	const struct md_topic *mt = md_topic_by_id(&p->b->md, &p->topic->id);
	if (!mt || p->index >= mt->n_partitions)
		return NULL;
	return &mt->parts[p->index];
}

int partition_isr_size(const struct tm_partition *p)
{
	const struct md_partition *mp = md_part(p);
	return mp ? mp->n_isr : 0;
}

int partition_min_isr(const struct tm_partition *p)
{
	const struct md_partition *mp = md_part(p);
	int replicas = mp ? mp->n_replicas : 1;
	/* Kafka's effective minimum: never more than the replicas there are. */
	return p->topic->min_insync_replicas < replicas ? p->topic->min_insync_replicas : replicas;
}

/* Sends an ISR change to the controller unless one is out already. */
static void partition_propose_isr(struct tm_partition *p, const int32_t *isr, int n, const char *why)
{
	int64_t now = tm_mono_ms();
	if (p->alter_inflight || now < p->alter_retry_ms)
		return;
	char list[256];
	size_t off = 0;
	for (int i = 0; i < n && off < sizeof(list) - 16; i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%d", i ? "," : "", isr[i]);
	/* Retries after a refusal (e.g. a returning broker not yet unfenced) are quiet. */
	tm_log(p->alter_failures ? TM_LOG_DEBUG : TM_LOG_INFO, "partition",
	       "%s-%d: %s; asking the controller for ISR [%s] (partition epoch %d)", p->topic->name, p->index, why,
	       list, p->partition_epoch);
	isr_propose(&p->isr, isr, n);
	p->alter_inflight = true;
	if (replica_alter_partition(p, isr, n)) {
		p->alter_inflight = false;
		isr_proposal_failed(&p->isr);
		p->alter_retry_ms = now + 500;
	}
}

void partition_alter_done(struct tm_partition *p, int kerr)
{
	p->alter_inflight = false;
	p->alter_failures = kerr ? p->alter_failures + 1 : 0;
	if (kerr) {
		/* Stale partition epoch, a fenced replica, no controller: settle
		 * back to the committed ISR and try again from fresh metadata. */
		isr_proposal_failed(&p->isr);
		p->alter_retry_ms = tm_mono_ms() + 500;
		partition_update_hw(p);
	}
	/* On success the committed change arrives with the metadata (isr_update). */
}

int partition_follower_fetched(struct tm_partition *p, int32_t replica, int64_t fetch_offset)
{
	if (!p->is_leader || !p->log)
		return TM_ERR_NOT_LEADER_OR_FOLLOWER;
	int64_t now = tm_mono_ms();
	p->isr.leader_leo = log_written_offset(p->log);
	if (isr_on_fetch(&p->isr, replica, fetch_offset, now))
		return TM_ERR_NOT_LEADER_OR_FOLLOWER;
	partition_update_hw(p);
	int32_t want[ISR_REPLICAS_MAX];
	int n = isr_expand(&p->isr, want);
	if (n > 0)
		partition_propose_isr(p, want, n, "a follower caught up");
	return TM_ERR_NONE;
}

void partitions_isr_tick(struct tm_broker *b, int64_t now_ms)
{
	struct partition_cursor c = { 0 };
	for (struct tm_partition *p; (p = partitions_next(b, &c));) {
		if (!p->is_leader || !p->log || p->isr.n_isr <= 1)
			continue;
		int32_t want[ISR_REPLICAS_MAX];
		int n = isr_shrink(&p->isr, now_ms, b->cfg.replica_lag_time_max_ms, want);
		if (n > 0)
			partition_propose_isr(p, want, n, "a follower fell behind (replica.lag.time.max.ms)");
	}
}

/* ---- delayed produce (acks=all) --------------------------------------------- */

struct tm_delayed_produce {
	struct tm_delayed_produce *next;
	struct tm_partition *p;
	struct log_append_result res;
	int64_t required_offset;       /* HW must reach this (last offset + 1) */
	partition_append_cb cb;
	void *arg;
	struct event *timer;
	int kerr;                      /* set when the timer fired */
};

static void dp_finish(struct tm_delayed_produce *d, int kerr)
{
	if (d->timer)
		event_free(d->timer);
	d->cb(d->arg, kerr, &d->res);
	free(d);
}

static void dp_unlink(struct tm_delayed_produce *d)
{
	struct tm_partition *p = d->p;
	struct tm_delayed_produce **pp = &p->dp_head, *prev = NULL;
	while (*pp && *pp != d) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = d->next;
	if (p->dp_tail == d)
		p->dp_tail = prev;
	d->next = NULL;
}

static void dp_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tm_delayed_produce *d = arg;
	(void)fd;
	(void)what;
	struct tm_broker *b = d->p->b;
	dp_unlink(d);
	dp_finish(d, TM_ERR_REQUEST_TIMED_OUT);
	broker_kick_io(b);
}

/* Keeps the queue in required-offset order.  New appends go to the tail; a
 * retried idempotent batch (a duplicate of one still below the HW's reach)
 * needs an earlier offset and goes before the first that needs more, so
 * dp_complete answers it as soon as the HW allows. */
static void dp_insert(struct tm_partition *p, struct tm_delayed_produce *d)
{
	if (!p->dp_tail || p->dp_tail->required_offset <= d->required_offset) {
		if (p->dp_tail)
			p->dp_tail->next = d;
		else
			p->dp_head = d;
		p->dp_tail = d;
		return;
	}
	struct tm_delayed_produce **pp = &p->dp_head;
	while ((*pp)->required_offset <= d->required_offset)
		pp = &(*pp)->next;
	d->next = *pp;
	*pp = d;
}

/* Completes delayed produces the HW now covers (they are in offset order). */
static void dp_complete(struct tm_partition *p)
{
	while (p->dp_head && p->dp_head->required_offset <= p->high_watermark) {
		struct tm_delayed_produce *d = p->dp_head;
		p->dp_head = d->next;
		if (!p->dp_head)
			p->dp_tail = NULL;
		int kerr = partition_isr_size(p) < partition_min_isr(p) ? TM_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND
									 : TM_ERR_NONE;
		dp_finish(d, kerr);
	}
}

static void dp_fail_all(struct tm_partition *p, int kerr)
{
	while (p->dp_head) {
		struct tm_delayed_produce *d = p->dp_head;
		p->dp_head = d->next;
		dp_finish(d, kerr);
	}
	p->dp_tail = NULL;
}

void partition_update_hw(struct tm_partition *p)
{
	if (!p->log || !p->is_leader)
		return;
	if (isr_update_hw(&p->isr, log_written_offset(p->log)) && p->isr.hw > p->high_watermark) {
		p->high_watermark = p->isr.hw;
		wake_list(&p->waiters);
		dp_complete(p);
	}
}

void partition_set_follower_hw(struct tm_partition *p, int64_t leader_hw)
{
	if (!p->log || p->is_leader)
		return;
	int64_t leo = log_end_offset(p->log);
	int64_t hw = leader_hw < leo ? leader_hw : leo;
	if (hw > p->high_watermark)
		p->high_watermark = hw;
}

/* ---- append ---------------------------------------------------------------- */

struct append_op {
	struct tm_partition *p;
	struct log_append_result res;
	partition_append_cb cb;
	void *arg;
	int acks;
	int32_t timeout_ms;
	int32_t leader_epoch;
};

static void append_done(void *arg, int err)
{
	struct append_op *op = arg;
	struct tm_partition *p = op->p;
	if (!err && op->res.kerr != TM_ERR_NONE) {
		/* Refused before writing (producer sequence or epoch): nothing new to commit. */
		op->cb(op->arg, op->res.kerr, &op->res);
		free(op);
		return;
	}
	if (err) {
		tm_error("partition", "%s-%d: append failed: %s; the log directory is offline, answering KAFKA_STORAGE_ERROR",
			 p->topic->name, p->index, strerror(-err));
		op->cb(op->arg, TM_ERR_KAFKA_STORAGE_ERROR, &op->res);
		free(op);
		return;
	}
	wake_list(&p->data_waiters); /* followers waiting for data */
	partition_update_hw(p);
	/* A duplicate from an idempotent producer's retry answers with the
	 * original offsets — and, like the original, only once the HW covers
	 * them: the first attempt may not be committed yet (Kafka's rule). */
	int64_t required = op->res.last_offset + 1;
	if (op->acks != -1 || required <= p->high_watermark) {
		int kerr = TM_ERR_NONE;
		if (op->acks == -1 && !op->res.duplicate && partition_isr_size(p) < partition_min_isr(p))
			kerr = TM_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND;
		op->cb(op->arg, kerr, &op->res);
		free(op);
		return;
	}
	if (!p->is_leader || p->leader_epoch != op->leader_epoch) {
		op->cb(op->arg, TM_ERR_NOT_LEADER_OR_FOLLOWER, &op->res);
		free(op);
		return;
	}
	/* acks=all: wait for the followers. */
	struct tm_delayed_produce *d = calloc(1, sizeof(*d));
	if (!d) {
		op->cb(op->arg, TM_ERR_UNKNOWN_SERVER_ERROR, &op->res);
		free(op);
		return;
	}
	d->p = p;
	d->res = op->res;
	d->required_offset = required;
	d->cb = op->cb;
	d->arg = op->arg;
	d->timer = evtimer_new(p->b->base, dp_timeout_cb, d);
	int32_t t = op->timeout_ms > 0 ? op->timeout_ms : 0;
	struct timeval tv = { t / 1000, (t % 1000) * 1000 };
	if (d->timer)
		evtimer_add(d->timer, &tv);
	dp_insert(p, d);
	free(op);
}

/* mutable_batches: the caller's own bytes, written in place (no copy). */
static void append_common(struct tm_partition *p, uint8_t *mutable_batches, const uint8_t *batches, size_t len,
			  int acks, int32_t timeout_ms, partition_append_cb cb, void *arg)
{
	int kerr = partition_leader_error(p);
	if (kerr) {
		struct log_append_result none = { .kerr = kerr, .base_offset = -1, .log_append_time_ms = -1 };
		cb(arg, kerr, &none);
		return;
	}
	struct append_op *op = calloc(1, sizeof(*op));
	if (!op) {
		struct log_append_result none = { .kerr = TM_ERR_UNKNOWN_SERVER_ERROR, .base_offset = -1, .log_append_time_ms = -1 };
		cb(arg, TM_ERR_UNKNOWN_SERVER_ERROR, &none);
		return;
	}
	op->p = p;
	op->cb = cb;
	op->arg = arg;
	op->acks = acks;
	op->timeout_ms = timeout_ms;
	op->leader_epoch = p->leader_epoch;
	int64_t now = tm_wall_ms();
	int64_t append_time = p->topic->log_append_time ? now : -1;
	int rc = mutable_batches ? log_append_inplace(p->log, mutable_batches, len, p->leader_epoch, append_time, now,
						      &op->res, append_done, op)
				 : log_append(p->log, batches, len, p->leader_epoch, append_time, now, &op->res,
					      append_done, op);
	if (rc) {
		op->res.kerr = TM_ERR_KAFKA_STORAGE_ERROR;
		op->res.base_offset = -1;
		cb(arg, TM_ERR_KAFKA_STORAGE_ERROR, &op->res);
		free(op);
	}
}

void partition_append(struct tm_partition *p, const uint8_t *batches, size_t len, int acks, int32_t timeout_ms,
		      partition_append_cb cb, void *arg)
{
	append_common(p, NULL, batches, len, acks, timeout_ms, cb, arg);
}

void partition_append_inplace(struct tm_partition *p, uint8_t *batches, size_t len, int acks, int32_t timeout_ms,
			      partition_append_cb cb, void *arg)
{
	append_common(p, batches, batches, len, acks, timeout_ms, cb, arg);
}

/* ---- sync with the metadata image ------------------------------------------ */

static void partition_free(struct tm_partition *p, bool delete_data)
{
	dp_fail_all(p, TM_ERR_NOT_LEADER_OR_FOLLOWER);
	partition_wake_all(p);
	if (p->log) {
		if (delete_data)
			log_delete(p->log);
		else
			log_close(p->log);
	}
	free(p);
}

static void topic_drop(struct tm_broker *b, struct tm_topic *t, bool delete_data)
{
	tm_map_del(&b->topics, t->name, strlen(t->name));
	tm_map_del(&b->topic_ids, t->id.b, 16);
	for (int32_t i = 0; i < t->n_parts; i++)
		if (t->parts[i])
			partition_free(t->parts[i], delete_data);
	free(t->parts);
	free(t);
}

static int partition_open(struct tm_broker *b, struct tm_topic *t, struct tm_partition *p)
{
	char dir[2048];
	snprintf(dir, sizeof(dir), "%s/%s-%d", b->cfg.log_dir, t->name, p->index);
	int rc = log_open(b->io, dir, &t->log_cfg, tm_wall_ms(), &p->log);
	if (rc) {
		tm_error("partition", "cannot open the log of %s-%d in %s: %s", t->name, p->index, dir, strerror(-rc));
		p->log = NULL;
		p->open_err = rc;
		return rc;
	}
	p->open_err = 0;
	log_write_topic_id(p->log, t->id.b);
	/* Committed as far as we know: nothing beyond the log start until a
	 * leader (or this node's own leadership with its ISR) says more. */
	p->high_watermark = log_start_offset(p->log);
	return 0;
}

static int topic_sync(struct tm_broker *b, struct tm_topic *tt, const struct md_topic *t)
{
	topic_refresh_config(b, tt, t);
	if (t->n_partitions > tt->n_parts) {
		struct tm_partition **np = realloc(tt->parts, sizeof(*np) * (size_t)t->n_partitions);
		if (!np)
			return -ENOMEM;
		tt->parts = np;
		for (int32_t i = tt->n_parts; i < t->n_partitions; i++)
			np[i] = NULL;
		tt->n_parts = t->n_partitions;
	}
	int32_t me = b->cfg.node_id;
	for (int32_t i = 0; i < t->n_partitions; i++) {
		const struct md_partition *mp = &t->parts[i];
		struct tm_partition *p = tt->parts[i];
		if (!p) {
			p = calloc(1, sizeof(*p));
			if (!p)
				return -ENOMEM;
			p->b = b;
			p->topic = tt;
			p->index = i;
			p->waiters.next = p->waiters.prev = &p->waiters;
			p->data_waiters.next = p->data_waiters.prev = &p->data_waiters;
			p->leader_epoch = -1;
			p->partition_epoch = -1;
			tt->parts[i] = p;
		}
		bool replica = md_replica_in(mp->replicas, mp->n_replicas, me);
		if (replica && !p->log)
			partition_open(b, tt, p);
		if (!replica)
			p->open_err = 0;
		if (!replica && p->log) {
			/* Reassigned away from this node: its copy goes, as Kafka's
			 * StopReplica with deletion does. */
			tm_info("partition", "%s-%d: no longer a replica on this node; deleting its log", tt->name, i);
			dp_fail_all(p, TM_ERR_NOT_LEADER_OR_FOLLOWER);
			partition_wake_all(p);
			struct log *l = p->log;
			p->log = NULL;
			p->is_leader = false;
			p->high_watermark = 0;
			log_delete(l);
		}
		p->leader_id = mp->leader;
		bool lead = mp->leader == me && p->log;
		bool new_epoch = p->leader_epoch != mp->leader_epoch;
		bool new_pepoch = p->partition_epoch != mp->partition_epoch;
		if (p->is_leader && (!lead || new_epoch)) {
			/* Leadership lost or restarted: acks=all waiters cannot be
			 * completed by this leadership any more. */
			dp_fail_all(p, TM_ERR_NOT_LEADER_OR_FOLLOWER);
			p->alter_inflight = false;
		}
		if (lead && (!p->is_leader || new_epoch)) {
			int64_t leo = log_end_offset(p->log);
			log_assign_epoch(p->log, mp->leader_epoch, leo);
			isr_begin(&p->isr, me, mp->replicas, mp->n_replicas, mp->isr, mp->n_isr,
				  log_written_offset(p->log), p->high_watermark, tm_mono_ms());
			p->isr.epoch_start_offset = leo;
			p->alter_retry_ms = 0;
			tm_info("partition", "%s-%d: leader at epoch %d, log end offset %" PRId64 ", high watermark %" PRId64 ", ISR of %d",
				tt->name, i, mp->leader_epoch, leo, p->high_watermark, mp->n_isr);
		} else if (lead && new_pepoch) {
			isr_update(&p->isr, mp->replicas, mp->n_replicas, mp->isr, mp->n_isr, tm_mono_ms());
		} else if (!lead && replica && p->log && (p->is_leader || new_epoch)) {
			tm_info("partition", "%s-%d: follower of %d at epoch %d, log end offset %" PRId64, tt->name, i,
				mp->leader, mp->leader_epoch, log_end_offset(p->log));
			p->fetch_backoff_ms = 0;
		}
		p->is_leader = lead;
		p->leader_epoch = mp->leader_epoch;
		p->partition_epoch = mp->partition_epoch;
		if (lead) {
			partition_update_hw(p);
			dp_complete(p); /* an ISR that shrank may settle waiters */
			wake_list(&p->data_waiters);
		} else {
			partition_wake_all(p); /* fetches waiting here must learn they lost leadership */
		}
	}
	return 0;
}

int partitions_sync(struct tm_broker *b)
{
	/* Topics gone from the image: delete their data. */
	for (size_t i = 0; i < b->topics.cap; i++) {
		if (!b->topics.slots[i].key)
			continue;
		struct tm_topic *tt = b->topics.slots[i].value;
		struct md_topic *t = md_topic_by_id(&b->md, &tt->id);
		if (!t) {
			tm_info("partition", "topic %s deleted; removing its %d partition logs", tt->name, tt->n_parts);
			topic_drop(b, tt, true);
			i = (size_t)-1; /* the map changed under us: rescan */
		}
	}
	int rc = 0;
	for (size_t i = 0; i < b->md.topics.cap; i++) {
		if (!b->md.topics.slots[i].key)
			continue;
		const struct md_topic *t = b->md.topics.slots[i].value;
		struct tm_topic *tt = topic_by_id(b, &t->id);
		if (!tt) {
			tt = calloc(1, sizeof(*tt));
			if (!tt)
				return -ENOMEM;
			memcpy(tt->name, t->name, sizeof(tt->name));
			tt->id = t->id;
			tt->internal = !strcmp(t->name, "__consumer_offsets");
			if (tm_map_put(&b->topics, tt->name, strlen(tt->name), tt) ||
			    tm_map_put(&b->topic_ids, tt->id.b, 16, tt)) {
				tm_map_del(&b->topics, tt->name, strlen(tt->name));
				free(tt);
				return -ENOMEM;
			}
		}
		int r = topic_sync(b, tt, t);
		if (r)
			rc = r;
	}
	return rc;
}

void partitions_close_all(struct tm_broker *b)
{
	for (;;) {
		struct tm_topic *tt = NULL;
		for (size_t i = 0; i < b->topics.cap && !tt; i++)
			if (b->topics.slots[i].key)
				tt = b->topics.slots[i].value;
		if (!tt)
			break;
		topic_drop(b, tt, false);
	}
}

struct tm_partition *partitions_next(struct tm_broker *b, struct partition_cursor *c)
{
	for (; c->slot < b->topics.cap; c->slot++, c->index = 0) {
		if (!b->topics.slots[c->slot].key)
			continue;
		struct tm_topic *tt = b->topics.slots[c->slot].value;
		while (c->index < tt->n_parts) {
			struct tm_partition *p = tt->parts[c->index++];
			if (p)
				return p;
		}
	}
	return NULL;
}

/* A log that could not be opened counts, unless the process ran out of
 * descriptors or memory: the directory is fine then. */
static bool open_failed_on_disk(int err)
{
	return err && err != -EMFILE && err != -ENFILE && err != -ENOMEM;
}

bool partitions_any_log_offline(struct tm_broker *b)
{
	struct partition_cursor c = { 0 };
	for (struct tm_partition *p; (p = partitions_next(b, &c));)
		if (p->log ? log_dir_offline(p->log) : open_failed_on_disk(p->open_err))
			return true;
	return false;
}

void partitions_tick(struct tm_broker *b, int64_t now_ms)
{
	struct partition_cursor c = { 0 };
	for (struct tm_partition *p; (p = partitions_next(b, &c));)
		if (p->log && !log_dir_offline(p->log))
			log_enforce_retention(p->log, now_ms);
}
