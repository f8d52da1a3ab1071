/*
 * groups.c — the group coordinator's state and its durability in
 * __consumer_offsets.  See groups.h for the model, docs/groups.md for the
 * record layouts and the bounded-log scheme.
 *
 * Records (Kafka's, so kafka-dump-log and Kafka itself read them):
 *
 *   key   | int16 version | fields                       | value (null = tombstone)
 *   ------+---------------+------------------------------+-----------------------------
 *   offset|       1       | group, topic, int32 partition| int16 3 | OffsetCommitValue v3
 *   group |       2       | group                        | int16 3 | GroupMetadataValue v3
 *
 * Replaying a partition in offset order, later records win and tombstones
 * delete, which rebuilds exactly the state that was acknowledged.
 *
 * Invariants:
 *   - a group is in memory only while this node leads its partition and the
 *     partition finished loading;
 *   - an OffsetCommit is applied in memory only after its append completed,
 *     so what OffsetFetch returns is always on disk;
 *   - a snapshot (every live record of a partition rewritten at the end) is
 *     only taken when no append of that partition is in flight, so deleting
 *     the records below it loses nothing.
 */
#include "broker/groups.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "broker/partition.h"
#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"
#include "common/tm_time.h"
#include "protocol/kafka_msgs.h"
#include "protocol/records.h"

/* Rewrite a partition's live state (and drop what is below) once this many
 * bytes were appended since the last rewrite. */
#define GC_SNAPSHOT_BYTES (8 * 1024 * 1024)
#define GC_SEGMENT_BYTES "16777216"
#define GC_LOAD_READ_BYTES (1024 * 1024)
#define GC_WRITE_TIMEOUT_MS 5000          /* offsets.commit.timeout.ms */
#define GC_RECORDS_PER_BATCH 1000

enum gc_part_state { GCP_NONE, GCP_LOADING, GCP_LOADED };

struct gc_part {
	enum gc_part_state state;
	int32_t epoch;          /* leader epoch the load was for */
	uint64_t load_gen;      /* bumped on every (un)load: stale reads are ignored */
	int64_t next_offset;    /* loading: the next offset to read */
	int inflight;           /* appends in flight */
	int64_t bytes_since_snapshot;
	bool snapshotting;
};

struct tm_group_coordinator {
	struct tm_broker *b;
	struct gsm_ctx ctx;
	struct tm_map groups;        /* group id -> struct gc_group */
	struct gc_part *parts;
	int32_t n_parts;
	bool creating;
	struct topic_spec spec;
	const char *spec_keys[3];
	const char *spec_values[3];
	int64_t last_expire_ms;      /* wall clock */
	int io_inflight;             /* appends and load reads not yet called back */
	bool stopped;                /* groups_stop ran: free at the last callback */
};

static void gc_free(struct tm_group_coordinator *gc)
{
	tm_map_deinit(&gc->groups);
	free(gc->parts);
	free(gc);
}

/* Called at the end of every I/O callback: after groups_stop, the last one
 * frees the coordinator. */
static void gc_io_done(struct tm_group_coordinator *gc)
{
	gc->io_inflight--;
	if (gc->stopped && gc->io_inflight == 0)
		gc_free(gc);
}

static void answer_join(void *env, void *waiter, const struct gsm_group *g, const struct gsm_join_result *r);
static void answer_sync(void *env, void *waiter, const struct gsm_sync_result *r);
static void store_group(void *env, struct gsm_group *g, bool ack);

static const struct gsm_ops gc_ops = { answer_join, answer_sync, store_group };

/* ---- hashing ----------------------------------------------------------- */

int32_t groups_java_hash(const char *s, size_t len)
{
	uint32_t h = 0;
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		size_t n;
		uint8_t c = p[i];
		if (c < 0x80) {
			cp = c;
			n = 1;
		} else if ((c & 0xe0) == 0xc0 && i + 1 < len && (p[i + 1] & 0xc0) == 0x80) {
			cp = ((uint32_t)(c & 0x1f) << 6) | (p[i + 1] & 0x3f);
			n = 2;
		} else if ((c & 0xf0) == 0xe0 && i + 2 < len && (p[i + 1] & 0xc0) == 0x80 && (p[i + 2] & 0xc0) == 0x80) {
			cp = ((uint32_t)(c & 0x0f) << 12) | ((uint32_t)(p[i + 1] & 0x3f) << 6) | (p[i + 2] & 0x3f);
			n = 3;
		} else if ((c & 0xf8) == 0xf0 && i + 3 < len && (p[i + 1] & 0xc0) == 0x80 && (p[i + 2] & 0xc0) == 0x80 &&
			   (p[i + 3] & 0xc0) == 0x80) {
			cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(p[i + 1] & 0x3f) << 12) |
			     ((uint32_t)(p[i + 2] & 0x3f) << 6) | (p[i + 3] & 0x3f);
			n = 4;
		} else {
			cp = 0xfffd; /* Java decodes malformed input as U+FFFD */
			n = 1;
		}
		if (cp >= 0x10000) { /* a surrogate pair in UTF-16 */
			cp -= 0x10000;
			h = h * 31 + (0xd800 + (cp >> 10));
			h = h * 31 + (0xdc00 + (cp & 0x3ff));
		} else {
			h = h * 31 + cp;
		}
		i += n;
	}
	return (int32_t)h;
}

int32_t groups_partition_for(const char *id, size_t len, int32_t n_parts)
{
	int32_t h = groups_java_hash(id, len);
	/* Kafka's Utils.abs: MIN_VALUE maps to 0 */
	int32_t a = h == INT32_MIN ? 0 : (h < 0 ? -h : h);
	return n_parts > 0 ? a % n_parts : 0;
}

/* ---- small helpers ------------------------------------------------------ */

static struct tm_group_coordinator *gc_of(struct tm_broker *b)
{
	return b->groups;
}

struct gsm_ctx *groups_ctx(struct tm_broker *b)
{
	return &gc_of(b)->ctx;
}

int64_t groups_now(struct tm_broker *b)
{
	(void)b;
	return tm_mono_ms();
}

static char *kdup(struct kstr s)
{
	size_t n = s.len > 0 ? (size_t)s.len : 0;
	char *p = malloc(n + 1);
	if (!p)
		return NULL;
	if (n)
		memcpy(p, s.ptr, n);
	p[n] = 0;
	return p;
}

static struct md_topic *offsets_md_topic(struct tm_broker *b)
{
	return md_topic_by_name(&b->md, GROUPS_TOPIC, strlen(GROUPS_TOPIC));
}

static struct tm_partition *offsets_partition(struct tm_broker *b, int32_t i)
{
	return partition_get(b, kstr_c(GROUPS_TOPIC), i);
}

static size_t offset_key(uint8_t *buf, size_t cap, const char *topic, size_t tlen, int32_t partition)
{
	if (tlen + 5 > cap)
		return 0;
	memcpy(buf, topic, tlen);
	buf[tlen] = 0;
	tm_store_be32(buf + tlen + 1, (uint32_t)partition);
	return tlen + 5;
}

struct gc_offset *groups_offset_get(struct gc_group *g, struct kstr topic, int32_t partition)
{
	uint8_t key[MD_TOPIC_NAME_MAX + 8];
	if (topic.len < 0)
		return NULL;
	size_t n = offset_key(key, sizeof(key), topic.ptr, (size_t)topic.len, partition);
	return n ? tm_map_get(&g->offsets, key, n) : NULL;
}

static void offset_free(struct gc_offset *o)
{
	free(o->topic);
	free(o->metadata);
	free(o->key);
	free(o);
}

static void offset_delete(struct gc_group *g, const char *topic, size_t tlen, int32_t partition)
{
	uint8_t key[MD_TOPIC_NAME_MAX + 8];
	size_t n = offset_key(key, sizeof(key), topic, tlen, partition);
	struct gc_offset *o = n ? tm_map_del(&g->offsets, key, n) : NULL;
	if (o)
		offset_free(o);
}

static int offset_put(struct gc_group *g, const char *topic, size_t tlen, int32_t partition, int64_t offset,
		      int32_t leader_epoch, const char *meta, size_t mlen, int64_t commit_ms, int64_t expire_ms)
{
	uint8_t key[MD_TOPIC_NAME_MAX + 8];
	size_t n = offset_key(key, sizeof(key), topic, tlen, partition);
	if (!n)
		return -EINVAL;
	struct gc_offset *o = tm_map_get(&g->offsets, key, n);
	char *m = malloc(mlen + 1);
	if (!m)
		return -ENOMEM;
	if (mlen)
		memcpy(m, meta, mlen);
	m[mlen] = 0;
	if (!o) {
		o = calloc(1, sizeof(*o));
		if (!o) {
			free(m);
			return -ENOMEM;
		}
		o->topic = malloc(tlen + 1);
		o->key = malloc(n);
		if (o->key)
			memcpy(o->key, key, n);
		if (!o->topic || !o->key || tm_map_put(&g->offsets, o->key, n, o)) {
			free(m);
			offset_free(o);
			return -ENOMEM;
		}
		memcpy(o->topic, topic, tlen);
		o->topic[tlen] = 0;
		o->key_len = n;
		o->partition = partition;
	}
	free(o->metadata);
	o->metadata = m;
	o->offset = offset;
	o->leader_epoch = leader_epoch;
	o->commit_ms = commit_ms;
	o->expire_ms = expire_ms;
	return 0;
}

static struct gc_group *group_new(struct tm_group_coordinator *gc, const char *id, size_t len, int32_t part)
{
	struct gc_group *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	if (gsm_group_init(&g->sm, id, len, tm_mono_ms())) {
		free(g);
		return NULL;
	}
	g->sm.user = g;
	g->part = part;
	g->empty_since_ms = tm_wall_ms();
	tm_map_init(&g->offsets);
	if (tm_map_put(&gc->groups, g->sm.group_id, strlen(g->sm.group_id), g)) {
		gsm_group_deinit(&g->sm);
		tm_map_deinit(&g->offsets);
		free(g);
		return NULL;
	}
	return g;
}

/* Removes g from the coordinator and frees it; waiting requests get `error`. */
static void group_free(struct tm_group_coordinator *gc, struct gc_group *g, int16_t error)
{
	tm_map_del(&gc->groups, g->sm.group_id, strlen(g->sm.group_id));
	gsm_group_abort(&gc->ctx, &g->sm, error);
	for (size_t i = 0; i < g->offsets.cap; i++)
		if (g->offsets.slots[i].key)
			offset_free(g->offsets.slots[i].value);
	tm_map_deinit(&g->offsets);
	gsm_group_deinit(&g->sm);
	free(g);
}

static size_t offsets_count(const struct gc_group *g)
{
	return g->offsets.count;
}

/* ---- writing records ---------------------------------------------------- */

static void wr_offset_key(struct tm_wbuf *w, const char *group, struct kstr topic, int32_t partition)
{
	struct kafka_offset_commit_key k;
	kafka_offset_commit_key_init(&k);
	k.group = kstr_c(group);
	k.topic = topic;
	k.partition = partition;
	wr_i16(w, 1);
	kafka_offset_commit_key_encode(w, 1, &k);
}

static void wr_offset_value(struct tm_wbuf *w, int64_t offset, int32_t epoch, struct kstr meta, int64_t commit_ms)
{
	struct kafka_offset_commit_value v;
	kafka_offset_commit_value_init(&v);
	v.offset = offset;
	v.leader_epoch = epoch;
	v.metadata = meta.len < 0 ? kstr_c("") : meta;
	v.commit_timestamp = commit_ms;
	wr_i16(w, 3);
	kafka_offset_commit_value_encode(w, 3, &v);
}

static void wr_group_key(struct tm_wbuf *w, const char *group)
{
	struct kafka_group_metadata_key k;
	kafka_group_metadata_key_init(&k);
	k.group = kstr_c(group);
	wr_i16(w, 2);
	kafka_group_metadata_key_encode(w, 2, &k);
}

/* GroupMetadataValue v3 of g; members live in a (the caller's arena). */
static int wr_group_value(struct tm_wbuf *w, const struct gc_group *gg, struct tm_arena *a)
{
	const struct gsm_group *g = &gg->sm;
	struct kafka_group_metadata_value v;
	kafka_group_metadata_value_init(&v);
	v.protocol_type = kstr_c(g->protocol_type ? g->protocol_type : "");
	v.generation = g->generation;
	v.protocol = kstr_c(g->protocol_name);
	v.leader = kstr_c(g->leader_id);
	v.current_state_timestamp = g->state == GSM_EMPTY ? gg->empty_since_ms : tm_wall_ms();
	v.members_count = g->n_members;
	if (g->n_members) {
		v.members = arena_alloc(a, sizeof(*v.members) * (size_t)g->n_members);
		if (!v.members)
			return -ENOMEM;
	}
	for (int32_t i = 0; i < g->n_members; i++) {
		const struct gsm_member *m = g->members[i];
		struct kafka_group_metadata_value_member_metadata *mm = &v.members[i];
		memset(mm, 0, sizeof(*mm));
		mm->member_id = kstr_c(m->member_id);
		mm->group_instance_id = kstr_c(m->instance_id);
		mm->client_id = kstr_c(m->client_id);
		mm->client_host = kstr_c(m->client_host);
		mm->rebalance_timeout = m->rebalance_timeout_ms;
		mm->session_timeout = m->session_timeout_ms;
		const uint8_t *md;
		int32_t mdlen;
		gsm_member_metadata(g, m, &md, &mdlen);
		mm->subscription = kbytes_make(md ? md : (const uint8_t *)"", (size_t)mdlen);
		mm->assignment = kbytes_make(m->assignment ? m->assignment : (const uint8_t *)"",
					     (size_t)m->assignment_len);
	}
	wr_i16(w, 3);
	kafka_group_metadata_value_encode(w, 3, &v);
	return 0;
}

/* Collects records into batches of at most GC_RECORDS_PER_BATCH. */
struct gc_batcher {
	struct tm_wbuf out;
	struct records_builder rb;
	bool open;
	struct tm_wbuf k, v;
	int64_t ts;
};

static void batcher_init(struct gc_batcher *bt)
{
	memset(bt, 0, sizeof(*bt));
	wbuf_init(&bt->out);
	wbuf_init(&bt->k);
	wbuf_init(&bt->v);
	bt->ts = tm_wall_ms();
}

static void batcher_deinit(struct gc_batcher *bt)
{
	wbuf_deinit(&bt->out);
	wbuf_deinit(&bt->k);
	wbuf_deinit(&bt->v);
}

/* Adds bt->k / bt->v (v NULL-valued when tombstone) as one record. */
static int batcher_add(struct gc_batcher *bt, bool tombstone)
{
	if (bt->k.err || bt->v.err)
		return -ENOMEM;
	if (bt->open && bt->rb.count >= GC_RECORDS_PER_BATCH) {
		if (records_builder_finish(&bt->rb))
			return -ENOMEM;
		bt->open = false;
	}
	if (!bt->open) {
		struct records_batch_opts o;
		records_batch_opts_init(&o);
		records_builder_init(&bt->rb, &bt->out, &o);
		bt->open = true;
	}
	struct kbytes val = tombstone ? kbytes_null() : kbytes_make(bt->v.buf, bt->v.len);
	int rc = records_builder_add(&bt->rb, bt->ts, kbytes_make(bt->k.buf, bt->k.len), val, NULL, 0);
	wbuf_reset(&bt->k);
	wbuf_reset(&bt->v);
	return rc;
}

static int batcher_finish(struct gc_batcher *bt)
{
	if (bt->open && records_builder_finish(&bt->rb))
		return -ENOMEM;
	bt->open = false;
	return bt->out.err;
}

/* One append to a __consumer_offsets partition and what to do after it. */
struct gc_write {
	struct tm_group_coordinator *gc;
	int32_t part;
	uint64_t load_gen;
	char *group_id;
	size_t bytes;
	/* offsets to apply on success */
	struct gc_commit *commits;
	int n_commits;
	char **topics;         /* owned copies of commit topics/metadata */
	char **metas;
	bool tombstone;
	bool delete_group;
	bool snapshot;
	bool ack;              /* tell the state machine (gsm_store_done) */
	int32_t generation;
	struct gc_commit *dst; /* the caller's array: results are copied back */
	groups_write_cb cb;
	void *arg;
};

static void write_free(struct gc_write *wr)
{
	for (int i = 0; i < wr->n_commits; i++) {
		free(wr->topics[i]);
		free(wr->metas[i]);
	}
	free(wr->topics);
	free(wr->metas);
	free(wr->commits);
	free(wr->group_id);
	free(wr);
}

static void write_done(void *arg, int kerr, const struct log_append_result *res)
{
	struct gc_write *wr = arg;
	struct tm_group_coordinator *gc = wr->gc;
	if (gc->stopped) {
		for (int i = 0; wr->dst && i < wr->n_commits; i++)
			wr->dst[i].error = TM_ERR_COORDINATOR_NOT_AVAILABLE;
		if (wr->cb)
			wr->cb(gc->b, wr->arg, TM_ERR_COORDINATOR_NOT_AVAILABLE);
		write_free(wr);
		gc_io_done(gc);
		return;
	}
	struct gc_part *pt = wr->part < gc->n_parts ? &gc->parts[wr->part] : NULL;
	bool current = pt && pt->load_gen == wr->load_gen && pt->state == GCP_LOADED;
	if (pt && pt->load_gen == wr->load_gen)
		pt->inflight--;
	int16_t err = (int16_t)kerr;
	if (err == TM_ERR_NOT_LEADER_OR_FOLLOWER)
		err = TM_ERR_NOT_COORDINATOR;
	else if (err != TM_ERR_NONE)
		err = TM_ERR_COORDINATOR_NOT_AVAILABLE; /* what Kafka answers for storage errors */
	struct gc_group *g = wr->group_id && current ? tm_map_get(&gc->groups, wr->group_id, strlen(wr->group_id)) : NULL;
	if (g)
		g->inflight--;
	if (err == TM_ERR_NONE && current) {
		pt->bytes_since_snapshot += (int64_t)wr->bytes;
		if (wr->snapshot) {
			struct tm_partition *p = offsets_partition(gc->b, wr->part);
			pt->bytes_since_snapshot = 0;
			if (p && p->log && res && res->base_offset >= 0) {
				int rc = log_delete_records(p->log, res->base_offset);
				if (rc)
					tm_warn("groups", "%s-%d: could not drop records below the snapshot at %" PRId64 ": %s",
						GROUPS_TOPIC, wr->part, res->base_offset, strerror(-rc));
			}
		}
		if (g && wr->delete_group) {
			group_free(gc, g, TM_ERR_COORDINATOR_NOT_AVAILABLE);
			g = NULL;
		}
		int64_t now = tm_wall_ms();
		for (int i = 0; g && i < wr->n_commits; i++) {
			struct gc_commit *c = &wr->commits[i];
			if (c->error != TM_ERR_NONE)
				continue;
			if (wr->tombstone)
				offset_delete(g, wr->topics[i], strlen(wr->topics[i]), c->partition);
			else if (offset_put(g, wr->topics[i], strlen(wr->topics[i]), c->partition, c->offset, c->leader_epoch,
					    wr->metas[i], strlen(wr->metas[i]), now, -1))
				c->error = TM_ERR_UNKNOWN_SERVER_ERROR;
		}
	} else if (err == TM_ERR_NONE) {
		err = TM_ERR_NOT_COORDINATOR; /* the partition moved while writing */
	}
	if (err != TM_ERR_NONE) {
		for (int i = 0; i < wr->n_commits; i++)
			if (wr->commits[i].error == TM_ERR_NONE)
				wr->commits[i].error = err;
		if (wr->snapshot && pt)
			pt->snapshotting = false;
	}
	if (wr->snapshot && pt)
		pt->snapshotting = false;
	if (err != TM_ERR_NONE && wr->delete_group && g && g->sm.state == GSM_DEAD)
		g->sm.state = GSM_EMPTY; /* not deleted after all */
	if (wr->ack && g)
		gsm_store_done(&gc->ctx, &g->sm, wr->generation, err, tm_mono_ms());
	if (wr->cb)
		wr->cb(gc->b, wr->arg, err);
	write_free(wr);
	gc_io_done(gc);
}

/* Appends bt's batches to partition `part`; takes ownership of wr. */
static void write_submit(struct tm_group_coordinator *gc, struct gc_write *wr, struct gc_batcher *bt)
{
	struct gc_part *pt = &gc->parts[wr->part];
	wr->load_gen = pt->load_gen;
	struct tm_partition *p = offsets_partition(gc->b, wr->part);
	gc->io_inflight++;
	if (batcher_finish(bt) || !p) {
		struct log_append_result none = { .base_offset = -1 };
		pt->inflight++;
		write_done(wr, p ? TM_ERR_UNKNOWN_SERVER_ERROR : TM_ERR_NOT_LEADER_OR_FOLLOWER, &none);
		return;
	}
	wr->bytes = bt->out.len;
	pt->inflight++;
	if (wr->group_id) {
		struct gc_group *g = tm_map_get(&gc->groups, wr->group_id, strlen(wr->group_id));
		if (g)
			g->inflight++;
	}
	partition_append(p, bt->out.buf, bt->out.len, -1, GC_WRITE_TIMEOUT_MS, write_done, wr);
	broker_kick_io(gc->b);
}

static struct gc_write *write_new(struct tm_group_coordinator *gc, int32_t part, const char *group_id)
{
	struct gc_write *wr = calloc(1, sizeof(*wr));
	if (!wr)
		return NULL;
	wr->gc = gc;
	wr->part = part;
	if (group_id) {
		wr->group_id = strdup(group_id);
		if (!wr->group_id) {
			free(wr);
			return NULL;
		}
	}
	return wr;
}

/* The state machine asks for the group's metadata to be persisted. */
static void store_group(void *env, struct gsm_group *sg, bool ack)
{
	struct tm_group_coordinator *gc = env;
	struct gc_group *g = sg->user;
	if (sg->state == GSM_EMPTY)
		g->empty_since_ms = tm_wall_ms();
	struct gc_write *wr = write_new(gc, g->part, g->sm.group_id);
	if (!wr) {
		tm_error("groups", "out of memory persisting group %s", g->sm.group_id);
		if (ack)
			gsm_store_done(&gc->ctx, sg, sg->generation, TM_ERR_COORDINATOR_NOT_AVAILABLE, tm_mono_ms());
		return;
	}
	wr->ack = ack;
	wr->generation = sg->generation;
	struct gc_batcher bt;
	batcher_init(&bt);
	struct tm_arena a;
	arena_init(&a, 0);
	wr_group_key(&bt.k, g->sm.group_id);
	if (wr_group_value(&bt.v, g, &a) || batcher_add(&bt, false))
		bt.out.err = -ENOMEM;
	arena_deinit(&a);
	write_submit(gc, wr, &bt);
	batcher_deinit(&bt);
}

void groups_write_offsets(struct tm_broker *b, struct gc_group *g, struct gc_commit *c, int n, bool tombstone,
			  groups_write_cb cb, void *arg)
{
	struct tm_group_coordinator *gc = gc_of(b);
	struct gc_write *wr = write_new(gc, g->part, g->sm.group_id);
	if (wr) {
		wr->commits = calloc((size_t)n + 1, sizeof(*wr->commits));
		wr->topics = calloc((size_t)n + 1, sizeof(char *));
		wr->metas = calloc((size_t)n + 1, sizeof(char *));
	}
	if (!wr || !wr->commits || !wr->topics || !wr->metas) {
		if (wr)
			write_free(wr);
		for (int i = 0; i < n; i++)
			if (c[i].error == TM_ERR_NONE)
				c[i].error = TM_ERR_COORDINATOR_NOT_AVAILABLE;
		if (cb)
			cb(b, arg, TM_ERR_COORDINATOR_NOT_AVAILABLE);
		return;
	}
	wr->n_commits = n;
	wr->tombstone = tombstone;
	struct gc_batcher bt;
	batcher_init(&bt);
	for (int i = 0; i < n; i++) {
		wr->commits[i] = c[i];
		wr->topics[i] = kdup(c[i].topic);
		wr->metas[i] = kdup(c[i].metadata);
		if (!wr->topics[i] || !wr->metas[i]) {
			bt.out.err = -ENOMEM;
			continue;
		}
		if (c[i].error != TM_ERR_NONE)
			continue;
		wr_offset_key(&bt.k, g->sm.group_id, c[i].topic, c[i].partition);
		if (!tombstone)
			wr_offset_value(&bt.v, c[i].offset, c[i].leader_epoch, c[i].metadata, bt.ts);
		if (batcher_add(&bt, tombstone))
			bt.out.err = -ENOMEM;
	}
	wr->cb = cb;
	wr->arg = arg;
	wr->dst = cb ? c : NULL; /* without a callback the caller may free c at once */
	write_submit(gc, wr, &bt);
	batcher_deinit(&bt);
}

void groups_delete_group(struct tm_broker *b, struct gc_group *g, groups_write_cb cb, void *arg)
{
	struct tm_group_coordinator *gc = gc_of(b);
	struct gc_write *wr = write_new(gc, g->part, g->sm.group_id);
	if (!wr) {
		if (cb)
			cb(b, arg, TM_ERR_COORDINATOR_NOT_AVAILABLE);
		return;
	}
	wr->delete_group = true;
	wr->cb = cb;
	wr->arg = arg;
	struct gc_batcher bt;
	batcher_init(&bt);
	for (size_t i = 0; i < g->offsets.cap; i++) {
		if (!g->offsets.slots[i].key)
			continue;
		struct gc_offset *o = g->offsets.slots[i].value;
		wr_offset_key(&bt.k, g->sm.group_id, kstr_c(o->topic), o->partition);
		batcher_add(&bt, true);
	}
	wr_group_key(&bt.k, g->sm.group_id);
	batcher_add(&bt, true);
	g->sm.state = GSM_DEAD;
	write_submit(gc, wr, &bt);
	batcher_deinit(&bt);
}

void groups_foreach(struct tm_broker *b, void (*fn)(struct gc_group *g, void *arg), void *arg)
{
	struct tm_group_coordinator *gc = gc_of(b);
	for (size_t i = 0; i < gc->groups.cap; i++) {
		if (!gc->groups.slots[i].key)
			continue;
		struct gc_group *g = gc->groups.slots[i].value;
		if (g->part < gc->n_parts && gc->parts[g->part].state == GCP_LOADED && g->sm.state != GSM_DEAD)
			fn(g, arg);
	}
}

/* ---- the __consumer_offsets topic ------------------------------------- */

static void create_done(struct tm_broker *b, void *arg, struct topic_spec *specs, int n)
{
	struct tm_group_coordinator *gc = arg;
	(void)n;
	gc->creating = false;
	if (specs[0].error_code && specs[0].error_code != TM_ERR_TOPIC_ALREADY_EXISTS)
		tm_warn("groups", "could not create %s: %s (error %d); consumer groups wait until it exists",
			GROUPS_TOPIC, specs[0].error_message, specs[0].error_code);
	(void)b;
}

static void ensure_topic(struct tm_group_coordinator *gc)
{
	struct tm_broker *b = gc->b;
	if (gc->creating || offsets_md_topic(b))
		return;
	int live = 0;
	for (int i = 0; i < b->md.n_brokers; i++)
		live += !b->md.brokers[i].fenced;
	if (live < 1)
		live = 1;
	memset(&gc->spec, 0, sizeof(gc->spec));
	gc->spec.name = GROUPS_TOPIC;
	gc->spec.n_parts = b->cfg.offsets_topic_num_partitions;
	gc->spec.rf = (int16_t)(b->cfg.offsets_topic_replication_factor < live ? b->cfg.offsets_topic_replication_factor
									      : live);
	gc->spec_keys[0] = "cleanup.policy";
	gc->spec_values[0] = "compact";
	gc->spec_keys[1] = "segment.bytes";
	gc->spec_values[1] = GC_SEGMENT_BYTES;
	gc->spec_keys[2] = "compression.type";
	gc->spec_values[2] = "producer";
	gc->spec.config_keys = gc->spec_keys;
	gc->spec.config_values = gc->spec_values;
	gc->spec.n_configs = 3;
	gc->creating = true;
	tm_info("groups", "creating %s with %d partitions, replication factor %d", GROUPS_TOPIC, gc->spec.n_parts,
		gc->spec.rf);
	topics_create(b, &gc->spec, 1, false, create_done, gc);
}

int16_t groups_find_coordinator(struct tm_broker *b, struct kstr group_id, int32_t *node_id)
{
	struct tm_group_coordinator *gc = gc_of(b);
	struct md_topic *t = offsets_md_topic(b);
	if (!t) {
		ensure_topic(gc);
		return TM_ERR_COORDINATOR_NOT_AVAILABLE;
	}
	int32_t part = groups_partition_for(group_id.ptr ? group_id.ptr : "", group_id.len > 0 ? (size_t)group_id.len : 0,
					    t->n_partitions);
	if (part >= t->n_partitions || t->parts[part].leader < 0)
		return TM_ERR_COORDINATOR_NOT_AVAILABLE;
	*node_id = t->parts[part].leader;
	return TM_ERR_NONE;
}

int16_t groups_lookup(struct tm_broker *b, struct kstr group_id, bool create, struct gc_group **out)
{
	struct tm_group_coordinator *gc = gc_of(b);
	*out = NULL;
	if (group_id.len <= 0)
		return TM_ERR_INVALID_GROUP_ID;
	if (group_id.len > GSM_ID_MAX_BYTES)
		return TM_ERR_INVALID_GROUP_ID;
	struct md_topic *t = offsets_md_topic(b);
	if (!t)
		return TM_ERR_NOT_COORDINATOR;
	int32_t part = groups_partition_for(group_id.ptr, (size_t)group_id.len, t->n_partitions);
	struct tm_partition *p = offsets_partition(b, part);
	if (!p || !p->is_leader || part >= gc->n_parts)
		return TM_ERR_NOT_COORDINATOR;
	if (gc->parts[part].state != GCP_LOADED)
		return TM_ERR_COORDINATOR_LOAD_IN_PROGRESS;
	struct gc_group *g = tm_map_get(&gc->groups, group_id.ptr, (size_t)group_id.len);
	if (g && g->sm.state == GSM_DEAD)
		return TM_ERR_COORDINATOR_NOT_AVAILABLE; /* being deleted */
	if (!g && create) {
		g = group_new(gc, group_id.ptr, (size_t)group_id.len, part);
		if (!g)
			return TM_ERR_COORDINATOR_NOT_AVAILABLE;
	}
	*out = g;
	return TM_ERR_NONE;
}

/* ---- loading a partition ------------------------------------------------ */

struct gc_load {
	struct tm_group_coordinator *gc;
	int32_t part;
	uint64_t load_gen;
};

static void unload_partition(struct tm_group_coordinator *gc, int32_t part, int16_t error)
{
	for (size_t i = 0; i < gc->groups.cap;) {
		if (gc->groups.slots[i].key) {
			struct gc_group *g = gc->groups.slots[i].value;
			if (g->part == part) {
				group_free(gc, g, error); /* backward-shift delete: look at slot i again */
				continue;
			}
		}
		i++;
	}
	gc->parts[part].state = GCP_NONE;
	gc->parts[part].load_gen++;
	gc->parts[part].inflight = 0;
	gc->parts[part].snapshotting = false;
}

static void apply_group_value(struct tm_group_coordinator *gc, struct gc_group *g,
			      const struct kafka_group_metadata_value *v)
{
	struct gsm_member_in *mi = NULL;
	int32_t n = v->members_count > 0 ? v->members_count : 0;
	if (n) {
		mi = calloc((size_t)n, sizeof(*mi));
		if (!mi)
			return;
	}
	for (int32_t i = 0; i < n; i++) {
		const struct kafka_group_metadata_value_member_metadata *m = &v->members[i];
		mi[i] = (struct gsm_member_in){
			m->member_id.ptr, (size_t)(m->member_id.len > 0 ? m->member_id.len : 0),
			m->group_instance_id.len >= 0 ? m->group_instance_id.ptr : NULL,
			(size_t)(m->group_instance_id.len > 0 ? m->group_instance_id.len : 0),
			m->client_id.ptr, (size_t)(m->client_id.len > 0 ? m->client_id.len : 0),
			m->client_host.ptr, (size_t)(m->client_host.len > 0 ? m->client_host.len : 0),
			m->session_timeout, m->rebalance_timeout,
			m->subscription.ptr, m->subscription.len > 0 ? m->subscription.len : 0,
			m->assignment.ptr, m->assignment.len > 0 ? m->assignment.len : 0,
		};
	}
	int rc = gsm_group_restore(&g->sm, v->protocol_type.ptr, (size_t)(v->protocol_type.len > 0 ? v->protocol_type.len : 0),
				   v->generation, v->protocol.len >= 0 ? v->protocol.ptr : NULL,
				   (size_t)(v->protocol.len > 0 ? v->protocol.len : 0), v->leader.len >= 0 ? v->leader.ptr : NULL,
				   (size_t)(v->leader.len > 0 ? v->leader.len : 0), mi, n, tm_mono_ms());
	if (rc)
		tm_error("groups", "out of memory loading group %s", g->sm.group_id);
	if (g->sm.state == GSM_EMPTY)
		g->empty_since_ms = v->current_state_timestamp > 0 ? v->current_state_timestamp : tm_wall_ms();
	(void)gc;
	free(mi);
}

/* Applies one record of the partition being loaded. */
static void load_record(struct tm_group_coordinator *gc, int32_t part, const struct records_record *rec)
{
	if (rec->key.len < 2)
		return;
	struct tm_rd r;
	rd_init(&r, rec->key.ptr, (size_t)rec->key.len);
	int16_t kv = rd_i16(&r);
	struct tm_arena a;
	arena_init(&a, 0);
	if (kv == 0 || kv == 1) {
		struct kafka_offset_commit_key k;
		if (kafka_offset_commit_key_decode(&r, kv, &k, &a) || k.group.len <= 0 || k.topic.len < 0)
			goto out;
		struct gc_group *g = tm_map_get(&gc->groups, k.group.ptr, (size_t)k.group.len);
		if (rec->value.len < 0) {
			if (g)
				offset_delete(g, k.topic.ptr, (size_t)k.topic.len, k.partition);
			goto out;
		}
		struct tm_rd vr;
		rd_init(&vr, rec->value.ptr, (size_t)rec->value.len);
		int16_t vv = rd_i16(&vr);
		struct kafka_offset_commit_value v;
		if (vr.err || vv < 0 || vv > 4 || kafka_offset_commit_value_decode(&vr, vv, &v, &a))
			goto out;
		if (!g)
			g = group_new(gc, k.group.ptr, (size_t)k.group.len, part);
		if (g)
			offset_put(g, k.topic.ptr, (size_t)k.topic.len, k.partition, v.offset, v.leader_epoch,
				   v.metadata.ptr, (size_t)(v.metadata.len > 0 ? v.metadata.len : 0), v.commit_timestamp,
				   v.expire_timestamp);
	} else if (kv == 2) {
		struct kafka_group_metadata_key k;
		if (kafka_group_metadata_key_decode(&r, kv, &k, &a) || k.group.len <= 0)
			goto out;
		struct gc_group *g = tm_map_get(&gc->groups, k.group.ptr, (size_t)k.group.len);
		if (rec->value.len < 0) {
			if (g)
				group_free(gc, g, TM_ERR_COORDINATOR_NOT_AVAILABLE);
			goto out;
		}
		struct tm_rd vr;
		rd_init(&vr, rec->value.ptr, (size_t)rec->value.len);
		int16_t vv = rd_i16(&vr);
		struct kafka_group_metadata_value v;
		if (vr.err || vv < 0 || vv > 4 || kafka_group_metadata_value_decode(&vr, vv, &v, &a))
			goto out;
		if (!g)
			g = group_new(gc, k.group.ptr, (size_t)k.group.len, part);
		if (g)
			apply_group_value(gc, g, &v);
	}
	/* other key versions: KIP-848 / share-group records, not used by Tidemark */
out:
	arena_deinit(&a);
}

static void load_step(struct tm_group_coordinator *gc, int32_t part);

static void load_finish(struct tm_group_coordinator *gc, int32_t part)
{
	struct gc_part *pt = &gc->parts[part];
	pt->state = GCP_LOADED;
	size_t n = 0;
	for (size_t i = 0; i < gc->groups.cap; i++)
		if (gc->groups.slots[i].key && ((struct gc_group *)gc->groups.slots[i].value)->part == part)
			n++;
	if (n)
		tm_info("groups", "loaded %s-%d: %zu groups; this node now coordinates them", GROUPS_TOPIC, part, n);
	else
		tm_debug("groups", "loaded %s-%d: no groups yet", GROUPS_TOPIC, part);
}

static void load_cb(void *arg, int err, uint8_t *data, size_t len)
{
	struct gc_load *ld = arg;
	struct tm_group_coordinator *gc = ld->gc;
	int32_t part = ld->part;
	if (gc->stopped) {
		free(ld);
		free(data);
		gc_io_done(gc);
		return;
	}
	gc->io_inflight--;
	bool stale = part >= gc->n_parts || gc->parts[part].load_gen != ld->load_gen ||
		     gc->parts[part].state != GCP_LOADING;
	free(ld);
	if (stale) {
		free(data);
		return;
	}
	struct gc_part *pt = &gc->parts[part];
	struct tm_partition *p = offsets_partition(gc->b, part);
	if (err == -ERANGE && p && p->log) {
		pt->next_offset = log_start_offset(p->log);
		free(data);
		load_step(gc, part);
		return;
	}
	if (err) {
		tm_error("groups", "reading %s-%d at offset %" PRId64 " failed: %s; groups of this partition are unavailable",
			 GROUPS_TOPIC, part, pt->next_offset, strerror(-err));
		free(data);
		return;
	}
	int64_t next = pt->next_offset;
	size_t pos = 0;
	while (pos + RECORDS_BATCH_HEADER_BYTES <= len) {
		int64_t size = records_batch_size(data + pos, len - pos);
		if (size < RECORDS_BATCH_HEADER_BYTES || (size_t)size > len - pos)
			break;
		struct tm_batch_hdr h;
		records_batch_header_parse(data + pos, len - pos, &h);
		if (!(h.attributes & RECORDS_ATTR_CONTROL)) {
			struct records_iter it;
			records_iter_init(&it, data + pos, (size_t)size);
			struct records_record rec;
			int rc;
			while ((rc = records_iter_next(&it, &rec)) == 1)
				load_record(gc, part, &rec);
			if (rc < 0)
				tm_warn("groups", "%s-%d: skipping an unreadable batch at offset %" PRId64 " (%s)", GROUPS_TOPIC,
					part, h.base_offset, rc == -ENOTSUP ? "compressed" : "corrupt");
		}
		next = h.base_offset + h.last_offset_delta + 1;
		pos += (size_t)size;
	}
	free(data);
	if (next <= pt->next_offset) {
		load_finish(gc, part); /* nothing more below the high watermark */
		return;
	}
	pt->next_offset = next;
	load_step(gc, part);
}

static void load_step(struct tm_group_coordinator *gc, int32_t part)
{
	struct gc_part *pt = &gc->parts[part];
	struct tm_partition *p = offsets_partition(gc->b, part);
	if (!p || !p->log) {
		unload_partition(gc, part, TM_ERR_NOT_COORDINATOR);
		return;
	}
	/* Up to the log end, not the high watermark: a new leader's HW waits for
	 * its followers, while everything it holds may have been committed by
	 * the previous leader (Kafka loads to the log end too). */
	int64_t end = log_written_offset(p->log);
	if (pt->next_offset >= end) {
		load_finish(gc, part);
		return;
	}
	struct gc_load *ld = calloc(1, sizeof(*ld));
	if (!ld) {
		unload_partition(gc, part, TM_ERR_NOT_COORDINATOR);
		return;
	}
	ld->gc = gc;
	ld->part = part;
	ld->load_gen = pt->load_gen;
	gc->io_inflight++;
	int rc = log_read(p->log, pt->next_offset, end, GC_LOAD_READ_BYTES, load_cb, ld);
	if (rc) {
		gc->io_inflight--;
		free(ld);
		tm_error("groups", "cannot read %s-%d: %s; groups of this partition are unavailable", GROUPS_TOPIC, part,
			 strerror(-rc));
		return;
	}
	broker_kick_io(gc->b);
}

static void load_partition(struct tm_group_coordinator *gc, int32_t part, struct tm_partition *p)
{
	unload_partition(gc, part, TM_ERR_NOT_COORDINATOR);
	struct gc_part *pt = &gc->parts[part];
	pt->state = GCP_LOADING;
	pt->epoch = p->leader_epoch;
	pt->next_offset = log_start_offset(p->log);
	pt->bytes_since_snapshot = log_size_bytes(p->log);
	tm_debug("groups", "loading %s-%d (offsets %" PRId64 "..%" PRId64 ")", GROUPS_TOPIC, part, pt->next_offset,
		p->high_watermark);
	load_step(gc, part);
}

/* Follows leadership of __consumer_offsets partitions. */
static void sync_partitions(struct tm_group_coordinator *gc)
{
	struct md_topic *t = offsets_md_topic(gc->b);
	int32_t n = t ? t->n_partitions : 0;
	if (n > gc->n_parts) {
		struct gc_part *np = realloc(gc->parts, sizeof(*np) * (size_t)n);
		if (!np)
			return;
		memset(np + gc->n_parts, 0, sizeof(*np) * (size_t)(n - gc->n_parts));
		gc->parts = np;
		gc->n_parts = n;
	}
	for (int32_t i = 0; i < gc->n_parts; i++) {
		struct tm_partition *p = i < n ? offsets_partition(gc->b, i) : NULL;
		bool lead = p && p->is_leader && p->log && !log_dir_offline(p->log);
		struct gc_part *pt = &gc->parts[i];
		if (!lead) {
			if (pt->state != GCP_NONE) {
				tm_info("groups", "no longer leader of %s-%d: its groups move to the new coordinator",
					GROUPS_TOPIC, i);
				unload_partition(gc, i, TM_ERR_NOT_COORDINATOR);
			}
			continue;
		}
		if (pt->state == GCP_NONE || pt->epoch != p->leader_epoch)
			load_partition(gc, i, p);
	}
}

/* ---- expiry and snapshots ------------------------------------------------ */

struct gc_expire {
	struct gc_commit *c;
	int n, cap;
};

/* offsets.retention.minutes (KIP-211): an empty consumer group's offsets all
 * expire once it has been empty that long; a group without a protocol
 * (offsets only) expires each offset that long after its commit. */
bool groups_subscribed(const struct gc_group *g, struct kstr topic)
{
	for (int32_t i = 0; i < g->sm.n_members; i++) {
		const uint8_t *md;
		int32_t len;
		gsm_member_metadata(&g->sm, g->sm.members[i], &md, &len);
		if (!md || len < 6)
			continue;
		struct tm_rd r;
		rd_init(&r, md, (size_t)len);
		rd_i16(&r); /* ConsumerProtocolSubscription version */
		int32_t n = rd_i32(&r);
		for (int32_t k = 0; k < n && !r.err; k++) {
			int16_t tl = rd_i16(&r);
			const uint8_t *name = tl >= 0 ? rd_take(&r, (size_t)tl) : NULL;
			if (name && tl == topic.len && !memcmp(name, topic.ptr, (size_t)tl))
				return true;
		}
	}
	return false;
}

/* offsets.retention.minutes (KIP-211 / KIP-496):
 *   - an Empty consumer group loses all its offsets, and is removed, once it
 *     has been empty that long;
 *   - a group without a protocol (offsets only) expires each offset that
 *     long after its commit, and is removed when none is left;
 *   - an active "consumer" group expires offsets of topics no member
 *     subscribes to, that long after their commit;
 * and offsets of topics that no longer exist go at once. */
static void expire_group(struct tm_group_coordinator *gc, struct gc_group *g, int64_t now_wall)
{
	int64_t retention_ms = gc->b->cfg.offsets_retention_minutes * 60000;
	if (g->inflight || g->sm.state == GSM_DEAD)
		return;
	bool empty = g->sm.state == GSM_EMPTY;
	bool consumer = g->sm.protocol_type && !strcmp(g->sm.protocol_type, "consumer");
	bool whole = empty && g->sm.protocol_type && now_wall - g->empty_since_ms >= retention_ms;
	int n = 0;
	struct gc_commit *c = calloc(offsets_count(g) + 1, sizeof(*c));
	if (!c)
		return;
	for (size_t i = 0; i < g->offsets.cap; i++) {
		if (!g->offsets.slots[i].key)
			continue;
		struct gc_offset *o = g->offsets.slots[i].value;
		int64_t exp = o->expire_ms >= 0 ? o->expire_ms : o->commit_ms + retention_ms;
		bool gone = !md_topic_by_name(&gc->b->md, o->topic, strlen(o->topic));
		bool expired;
		if (empty)
			expired = whole || (!g->sm.protocol_type && now_wall >= exp);
		else
			expired = consumer && now_wall >= exp && !groups_subscribed(g, kstr_c(o->topic));
		if (gone || expired) {
			c[n].topic = kstr_c(o->topic);
			c[n].partition = o->partition;
			n++;
		}
	}
	if (empty && n == (int)offsets_count(g) && (whole || !g->sm.protocol_type)) {
		tm_info("groups", "group %s: empty past offsets.retention.minutes; removing it", g->sm.group_id);
		free(c);
		groups_delete_group(gc->b, g, NULL, NULL);
		return;
	}
	if (n) {
		tm_info("groups", "group %s: %d committed offsets expired (retention or deleted topic)", g->sm.group_id,
			n);
		groups_write_offsets(gc->b, g, c, n, true, NULL, NULL);
	}
	free(c);
}

static void snapshot_partition(struct tm_group_coordinator *gc, int32_t part)
{
	struct gc_part *pt = &gc->parts[part];
	struct gc_write *wr = write_new(gc, part, NULL);
	if (!wr)
		return;
	wr->snapshot = true;
	struct gc_batcher bt;
	batcher_init(&bt);
	struct tm_arena a;
	arena_init(&a, 0);
	size_t records = 0;
	for (size_t i = 0; i < gc->groups.cap; i++) {
		if (!gc->groups.slots[i].key)
			continue;
		struct gc_group *g = gc->groups.slots[i].value;
		if (g->part != part || g->sm.state == GSM_DEAD)
			continue;
		if (g->sm.protocol_type || g->sm.n_members) {
			wr_group_key(&bt.k, g->sm.group_id);
			if (wr_group_value(&bt.v, g, &a) || batcher_add(&bt, false))
				bt.out.err = -ENOMEM;
			records++;
		}
		for (size_t k = 0; k < g->offsets.cap; k++) {
			if (!g->offsets.slots[k].key)
				continue;
			struct gc_offset *o = g->offsets.slots[k].value;
			wr_offset_key(&bt.k, g->sm.group_id, kstr_c(o->topic), o->partition);
			wr_offset_value(&bt.v, o->offset, o->leader_epoch, kstr_c(o->metadata), o->commit_ms);
			if (batcher_add(&bt, false))
				bt.out.err = -ENOMEM;
			records++;
		}
	}
	arena_deinit(&a);
	if (records == 0) {
		/* nothing live: a tombstone-free empty snapshot still marks the cut */
		wr_group_key(&bt.k, "");
		batcher_add(&bt, true);
	}
	tm_info("groups", "%s-%d: rewriting %zu live records so older ones can be dropped", GROUPS_TOPIC, part, records);
	pt->snapshotting = true;
	write_submit(gc, wr, &bt);
	batcher_deinit(&bt);
}

/* ---- answers to waiting requests (encoded by api_groups.c) ------------ */

static void answer_join(void *env, void *waiter, const struct gsm_group *g, const struct gsm_join_result *r)
{
	(void)env;
	api_groups_join_done(waiter, g, r);
}

static void answer_sync(void *env, void *waiter, const struct gsm_sync_result *r)
{
	(void)env;
	api_groups_sync_done(waiter, r);
}

/* ---- life cycle ----------------------------------------------------------- */

int groups_start(struct tm_broker *b)
{
	struct tm_group_coordinator *gc = calloc(1, sizeof(*gc));
	if (!gc)
		return -ENOMEM;
	gc->b = b;
	gc->ctx.cfg.initial_rebalance_delay_ms = b->cfg.group_initial_rebalance_delay_ms;
	gc->ctx.cfg.min_session_timeout_ms = b->cfg.group_min_session_timeout_ms;
	gc->ctx.cfg.max_session_timeout_ms = b->cfg.group_max_session_timeout_ms;
	gc->ctx.cfg.max_size = b->cfg.group_max_size;
	gc->ctx.ops = &gc_ops;
	gc->ctx.env = gc;
	/* member ids must not repeat across restarts: seed from the clocks and node */
	gc->ctx.id_seed = (uint64_t)tm_wall_ms() * 1000003u ^ (uint64_t)tm_mono_ns() ^ ((uint64_t)b->cfg.node_id << 48);
	tm_map_init(&gc->groups);
	gc->last_expire_ms = tm_wall_ms();
	b->groups = gc;
	sync_partitions(gc);
	return 0;
}

void groups_stop(struct tm_broker *b)
{
	struct tm_group_coordinator *gc = b->groups;
	if (!gc)
		return;
	for (int32_t i = 0; i < gc->n_parts; i++)
		unload_partition(gc, i, TM_ERR_COORDINATOR_NOT_AVAILABLE);
	/* groups of partitions never tracked (should be none) */
	for (size_t i = 0; i < gc->groups.cap;) {
		if (gc->groups.slots[i].key) {
			group_free(gc, gc->groups.slots[i].value, TM_ERR_COORDINATOR_NOT_AVAILABLE);
			continue;
		}
		i++;
	}
	b->groups = NULL;
	if (gc->io_inflight > 0)
		gc->stopped = true; /* the last callback frees it */
	else
		gc_free(gc);
}

void groups_tick(struct tm_broker *b, int64_t now_ms)
{
	struct tm_group_coordinator *gc = b->groups;
	if (!gc)
		return;
	sync_partitions(gc);
	for (size_t i = 0; i < gc->groups.cap;) {
		if (!gc->groups.slots[i].key) {
			i++;
			continue;
		}
		struct gc_group *g = gc->groups.slots[i].value;
		if (g->part >= gc->n_parts || gc->parts[g->part].state != GCP_LOADED) {
			i++;
			continue;
		}
		if (gsm_next_deadline(&g->sm) <= now_ms)
			gsm_tick(&gc->ctx, &g->sm, now_ms);
		/* A join that only got MEMBER_ID_REQUIRED created the group; once
		 * the pending id expired it holds nothing. */
		size_t before = gc->groups.count;
		groups_maybe_drop(b, g);
		if (gc->groups.count == before)
			i++;
	}
	int64_t wall = tm_wall_ms();
	if (wall - gc->last_expire_ms >= b->cfg.offsets_retention_check_interval_ms) {
		gc->last_expire_ms = wall;
		for (size_t i = 0; i < gc->groups.cap;) {
			struct gc_group *g = gc->groups.slots[i].key ? gc->groups.slots[i].value : NULL;
			size_t before = gc->groups.count;
			if (g && g->part < gc->n_parts && gc->parts[g->part].state == GCP_LOADED && g->sm.state != GSM_DEAD)
				expire_group(gc, g, wall);
			if (gc->groups.count == before)
				i++;
		}
	}
	for (int32_t i = 0; i < gc->n_parts; i++) {
		struct gc_part *pt = &gc->parts[i];
		if (pt->state == GCP_LOADED && !pt->snapshotting && pt->inflight == 0 &&
		    pt->bytes_since_snapshot >= GC_SNAPSHOT_BYTES)
			snapshot_partition(gc, i);
	}
}

void groups_maybe_drop(struct tm_broker *b, struct gc_group *g)
{
	if (g->sm.state == GSM_EMPTY && g->sm.n_members == 0 && g->sm.n_pending == 0 && !g->sm.protocol_type &&
	    offsets_count(g) == 0 && g->inflight == 0)
		group_free(gc_of(b), g, TM_ERR_COORDINATOR_NOT_AVAILABLE);
}
