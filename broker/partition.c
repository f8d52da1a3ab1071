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
	if (!p->is_leader || !p->log)
		return TM_ERR_NOT_LEADER_OR_FOLLOWER;
	if (log_dir_offline(p->log))
		return TM_ERR_KAFKA_STORAGE_ERROR;
	return TM_ERR_NONE;
}

/* ---- waiters --------------------------------------------------------------- */

void partition_wait(struct tm_partition *p, struct tm_waiter *w)
{
	w->p = p;
	w->next = &p->waiters;
	w->prev = p->waiters.prev;
	p->waiters.prev->next = w;
	p->waiters.prev = w;
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

static void partition_wake_all(struct tm_partition *p)
{
	/* A woken waiter unregisters itself (and maybe others of its fetch), so
	 * always restart from the head. */
	while (p->waiters.next != &p->waiters) {
		struct tm_waiter *w = p->waiters.next;
		partition_unwait(w);
		w->wake(w);
	}
}

void partition_update_hw(struct tm_partition *p)
{
	if (!p->log)
		return;
	/* ISR of one (this node): everything written is committed. */
	int64_t hw = log_written_offset(p->log);
	if (hw > p->high_watermark) {
		p->high_watermark = hw;
		partition_wake_all(p);
	}
}

/* ---- append ---------------------------------------------------------------- */

struct append_op {
	struct tm_partition *p;
	struct log_append_result res;
	partition_append_cb cb;
	void *arg;
};

static void append_done(void *arg, int err)
{
	struct append_op *op = arg;
	struct tm_partition *p = op->p;
	if (!err && op->res.kerr != TM_ERR_NONE) {
		/* Refused before writing (producer sequence or epoch): nothing new to commit. */
		op->cb(op->arg, op->res.kerr, &op->res);
	} else if (err) {
		tm_error("partition", "%s-%d: append failed: %s; the log directory is offline, answering KAFKA_STORAGE_ERROR",
			 p->topic->name, p->index, strerror(-err));
		op->cb(op->arg, TM_ERR_KAFKA_STORAGE_ERROR, &op->res);
	} else {
		partition_update_hw(p);
		op->cb(op->arg, TM_ERR_NONE, &op->res);
	}
	free(op);
}

void partition_append(struct tm_partition *p, const uint8_t *batches, size_t len, partition_append_cb cb, void *arg)
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
	int64_t now = tm_wall_ms();
	int rc = log_append(p->log, batches, len, p->leader_epoch, p->topic->log_append_time ? now : -1, now,
			    &op->res, append_done, op);
	if (rc) {
		op->res.kerr = TM_ERR_KAFKA_STORAGE_ERROR;
		op->res.base_offset = -1;
		cb(arg, TM_ERR_KAFKA_STORAGE_ERROR, &op->res);
		free(op);
	}
}

/* ---- sync with the metadata image ------------------------------------------ */

static void partition_free(struct tm_partition *p, bool delete_data)
{
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
		return rc;
	}
	log_write_topic_id(p->log, t->id.b);
	p->high_watermark = log_written_offset(p->log);
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
			p->leader_epoch = -1;
			tt->parts[i] = p;
		}
		bool replica = md_replica_in(mp->replicas, mp->n_replicas, me);
		if (replica && !p->log)
			partition_open(b, tt, p);
		p->leader_id = mp->leader;
		bool lead = mp->leader == me && p->log;
		if (lead && (!p->is_leader || p->leader_epoch != mp->leader_epoch)) {
			log_assign_epoch(p->log, mp->leader_epoch, log_end_offset(p->log));
			tm_info("partition", "%s-%d: leader at epoch %d, log end offset %" PRId64, tt->name, i,
				mp->leader_epoch, log_end_offset(p->log));
		}
		p->is_leader = lead;
		p->leader_epoch = mp->leader_epoch;
		if (lead)
			partition_update_hw(p);
		else
			partition_wake_all(p); /* fetches waiting here must learn they lost leadership */
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

void partitions_tick(struct tm_broker *b, int64_t now_ms)
{
	for (size_t i = 0; i < b->topics.cap; i++) {
		if (!b->topics.slots[i].key)
			continue;
		struct tm_topic *tt = b->topics.slots[i].value;
		for (int32_t j = 0; j < tt->n_parts; j++) {
			struct tm_partition *p = tt->parts[j];
			if (p && p->log && !log_dir_offline(p->log))
				log_enforce_retention(p->log, now_ms);
		}
	}
}
