/*
 * raft_cluster.h — a deterministic fake cluster that drives raft/ cores:
 * one seeded PRNG, a fake clock, a fake network (drop, delay, duplicate,
 * reorder, partitions) and a fake disk per node (entries appended but not
 * yet fsynced may be lost or torn on a crash; quorum-state and truncation
 * are durable at once, as the driver contract in raft/raft.h demands).
 *
 * It is the driver of raft.h in miniature: it performs every action in
 * order, fills Fetch / FetchSnapshot responses from its own log and
 * snapshot, applies committed entries to a toy state machine (a running
 * hash), takes snapshots, and checks the Raft invariants as it goes:
 *
 *   election safety     at most one leader per epoch
 *   leader completeness a new leader's log holds every committed entry
 *   log matching        same (offset, epoch) -> same entry and same prefix
 *   state machine       no two nodes apply different entries at an offset;
 *                       a node's applied prefix never shrinks while it runs
 *
 * The first violation is kept in c->failure with a short trace of recent
 * events; callers print it with the seed.  Header-only: shared by
 * tests/sim/sim_raft.c and tests/unit/test_raft.c.
 *
 * Snapshot bytes of the toy state machine:
 *   OFFSET SIZE DESCRIPTION
 *   0      8    end offset (big-endian)
 *   8      8    state hash after applying every entry below it
 *   16     48   filler, byte k = (hash >> 8 * (k % 8)) ^ k
 */
#ifndef TM_RAFT_CLUSTER_H
#define TM_RAFT_CLUSTER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/tm_assert.h"
#include "common/kerr.h"
#include "raft/raft.h"

#define SC_NODES_MAX 8
#define SC_TRACE_LINES 48
#define SC_SNAP_BYTES 64

struct sc_entry {
	int64_t offset;
	int32_t epoch;
	uint32_t count;
	bool control;
	bool durable;
	uint8_t *payload;
	uint32_t len;
};

struct sc_node {
	int32_t id;
	bool up;
	bool voter;
	int64_t restart_at_ms;
	struct raft r;
	struct raft_actions out;
	/* disk */
	struct sc_entry *log;
	size_t n, cap;
	int64_t log_start;
	int32_t snap_epoch;
	uint8_t snap[SC_SNAP_BYTES];
	int32_t q_epoch, q_voted, q_leader;
	int64_t fsync_at_ms; /* -1: none pending */
	/* snapshot being fetched */
	uint8_t inc[SC_SNAP_BYTES];
	/* state machine (memory: lost on crash, rebuilt from snapshot + log) */
	int64_t applied;
	uint64_t sm_hash;
	enum raft_role role;
};

struct sc_msg {
	int64_t deliver_ms;
	uint64_t seq;
	int32_t to;
	struct raft_msg m;
	char cluster_id[RAFT_CLUSTER_ID_MAX + 1];
	struct raft_entry *entries;
	uint8_t *bytes;
};

struct sc_commit {
	bool has_entry;
	int32_t epoch;
	uint32_t count;
	bool control;
	uint64_t phash;
	bool has_end;
	uint64_t hash_end;
};

struct sc_cluster {
	uint64_t prng;
	uint64_t seed;
	int64_t now_ms;
	int n;
	struct sc_node nodes[SC_NODES_MAX];
	struct raft_config cfg;
	/* network */
	struct sc_msg *q;
	size_t nq, capq;
	uint64_t seq;
	double drop_p, dup_p;
	int64_t delay_min_ms, delay_max_ms;
	bool link[SC_NODES_MAX][SC_NODES_MAX]; /* link[a][b]: a can reach b */
	int64_t fsync_delay_max_ms;
	double survive_p;  /* chance an unsynced entry survives a crash */
	/* invariants */
	int32_t *leader_of_epoch;
	size_t n_epochs;
	struct sc_commit *cm;
	size_t n_cm;
	uint64_t payload_seq;
	int64_t proposals, commits_seen;
	int64_t truncations, snapshots_installed, snapshots_taken;
	/* trace */
	char trace[SC_TRACE_LINES][120];
	unsigned trace_n;
	bool failed;
	char failure[256];
	bool quiet_trace;
};

static uint64_t sc_rand(struct sc_cluster *c)
{
	uint64_t z = (c->prng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int64_t sc_range(struct sc_cluster *c, int64_t lo, int64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + (int64_t)(sc_rand(c) % (uint64_t)(hi - lo + 1));
}

static bool sc_chance(struct sc_cluster *c, double p)
{
	return p > 0 && (double)(sc_rand(c) >> 11) / 9007199254740992.0 < p;
}

static void sc_trace(struct sc_cluster *c, const char *fmt, ...)
{
	char *line = c->trace[c->trace_n++ % SC_TRACE_LINES];
	int k = snprintf(line, 120, "%6lld ", (long long)c->now_ms);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + k, (size_t)(120 - k), fmt, ap);
	va_end(ap);
}

static void sc_fail(struct sc_cluster *c, const char *fmt, ...)
{
	if (c->failed)
		return;
	c->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->failure, sizeof(c->failure), fmt, ap);
	va_end(ap);
	sc_trace(c, "FAIL %s", c->failure);
}

static void sc_print_failure(const struct sc_cluster *c, FILE *f)
{
	fprintf(f, "seed %llu: %s\nlast events:\n", (unsigned long long)c->seed, c->failure);
	unsigned n = c->trace_n < SC_TRACE_LINES ? c->trace_n : SC_TRACE_LINES;
	for (unsigned i = c->trace_n - n; i < c->trace_n; i++)
		fprintf(f, "  %s\n", c->trace[i % SC_TRACE_LINES]);
	fprintf(f, "nodes at %lld ms:\n", (long long)c->now_ms);
	for (int i = 0; i < c->n; i++) {
		const struct sc_node *nd = &c->nodes[i];
		if (!nd->up) {
			fprintf(f, "  node %d down\n", nd->id);
			continue;
		}
		const struct raft *r = &nd->r;
		fprintf(f, "  node %d %-11s epoch %d leader %d voted %d log [%lld, %lld) durable %lld "
			   "hw %lld applied %lld%s%s\n",
			nd->id, raft_role_name(r->role), r->epoch, r->leader_id, r->voted_id,
			(long long)r->log_start, (long long)r->log_end, (long long)r->persisted_end,
			(long long)r->hw, (long long)nd->applied,
			r->fetch_inflight ? " fetching" : "", r->snap_fetching ? " snapshot" : "");
	}
	if (!getenv("SIM_DUMP"))
		return;
	for (int i = 0; i < c->n; i++) {
		const struct sc_node *nd = &c->nodes[i];
		fprintf(f, "  node %d fsync_at %lld log:", nd->id, (long long)nd->fsync_at_ms);
		for (size_t k = 0; k < nd->n; k++)
			fprintf(f, " %lld/%d%s", (long long)nd->log[k].offset, nd->log[k].epoch,
				nd->log[k].count > 1 ? "+" : "");
		fprintf(f, "\n");
	}
}

static uint64_t sc_fnv(const uint8_t *p, uint32_t n, uint64_t h)
{
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t sc_entry_hash(const struct sc_entry *e)
{
	uint8_t hdr[9];
	tm_store_be32(hdr, (uint32_t)e->epoch);
	tm_store_be32(hdr + 4, e->count);
	hdr[8] = e->control;
	return sc_fnv(e->payload, e->len, sc_fnv(hdr, 9, 0xcbf29ce484222325ULL));
}

/* ---- the fake disk --------------------------------------------------------- */

/* Index of the entry whose base offset is `offset`, or -1. */
static long sc_find(const struct sc_node *nd, int64_t offset)
{
	size_t lo = 0, hi = nd->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (nd->log[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nd->n && nd->log[lo].offset == offset ? (long)lo : -1;
}

static int64_t sc_log_end(const struct sc_node *nd)
{
	if (!nd->n)
		return nd->log_start;
	const struct sc_entry *e = &nd->log[nd->n - 1];
	return e->offset + e->count;
}

static void sc_drop_from(struct sc_node *nd, size_t idx)
{
	for (size_t i = idx; i < nd->n; i++)
		free(nd->log[i].payload);
	if (idx < nd->n)
		nd->n = idx;
}

static void sc_drop_below(struct sc_node *nd, int64_t offset)
{
	size_t k = 0;
	while (k < nd->n && nd->log[k].offset < offset)
		free(nd->log[k++].payload);
	memmove(nd->log, nd->log + k, (nd->n - k) * sizeof(*nd->log));
	nd->n -= k;
}

static void sc_disk_append(struct sc_cluster *c, struct sc_node *nd, const struct raft_entry *e)
{
	if (e->offset != sc_log_end(nd)) {
		sc_fail(c, "node %d: append at %lld but disk ends at %lld", nd->id,
			(long long)e->offset, (long long)sc_log_end(nd));
		return;
	}
	if (nd->n == nd->cap) {
		nd->cap = nd->cap ? nd->cap * 2 : 64;
		nd->log = realloc(nd->log, nd->cap * sizeof(*nd->log));
	}
	struct sc_entry *d = &nd->log[nd->n++];
	d->offset = e->offset;
	d->epoch = e->epoch;
	d->count = e->count;
	d->control = e->control;
	d->durable = false;
	d->len = e->len;
	d->payload = e->len ? malloc(e->len) : NULL;
	if (e->len)
		memcpy(d->payload, e->payload, e->len);
	if (nd->fsync_at_ms < 0)
		nd->fsync_at_ms = c->now_ms + sc_range(c, 0, c->fsync_delay_max_ms);
}

/* ---- the toy state machine --------------------------------------------------- */

static struct sc_commit *sc_cm_at(struct sc_cluster *c, int64_t offset)
{
	if ((size_t)offset >= c->n_cm) {
		size_t n = c->n_cm ? c->n_cm : 256;
		while (n <= (size_t)offset)
			n *= 2;
		c->cm = realloc(c->cm, n * sizeof(*c->cm));
		memset(c->cm + c->n_cm, 0, (n - c->n_cm) * sizeof(*c->cm));
		c->n_cm = n;
	}
	return &c->cm[offset];
}

static void sc_record_end(struct sc_cluster *c, struct sc_node *nd, int64_t end, uint64_t h)
{
	struct sc_commit *m = sc_cm_at(c, end);
	if (!m->has_end) {
		m->has_end = true;
		m->hash_end = h;
	} else if (m->hash_end != h) {
		sc_fail(c, "state machine safety: node %d state at %lld differs", nd->id,
			(long long)end);
	}
}

static void sc_apply(struct sc_cluster *c, struct sc_node *nd, int64_t hw)
{
	if (hw < nd->applied) {
		sc_fail(c, "node %d: commit went back %lld -> %lld", nd->id,
			(long long)nd->applied, (long long)hw);
		return;
	}
	while (nd->applied < hw && !c->failed) {
		long i = sc_find(nd, nd->applied);
		if (i < 0) {
			sc_fail(c, "node %d: committed offset %lld not in its log", nd->id,
				(long long)nd->applied);
			return;
		}
		const struct sc_entry *e = &nd->log[i];
		if (e->offset + e->count > hw) {
			sc_fail(c, "node %d: hw %lld inside a batch", nd->id, (long long)hw);
			return;
		}
		uint64_t ph = sc_entry_hash(e);
		struct sc_commit *m = sc_cm_at(c, e->offset);
		if (!m->has_entry) {
			m->has_entry = true;
			m->epoch = e->epoch;
			m->count = e->count;
			m->control = e->control;
			m->phash = ph;
			c->commits_seen++;
		} else if (m->epoch != e->epoch || m->count != e->count || m->phash != ph) {
			sc_fail(c, "state machine safety: node %d applied a different entry at %lld "
				   "(epoch %d, committed epoch %d)",
				nd->id, (long long)e->offset, e->epoch, m->epoch);
			return;
		}
		uint8_t b[8];
		tm_store_be64(b, ph);
		nd->sm_hash = sc_fnv(b, 8, nd->sm_hash ^ 0x9e3779b97f4a7c15ULL);
		nd->applied = e->offset + e->count;
		sc_record_end(c, nd, nd->applied, nd->sm_hash);
	}
}

static void sc_snap_encode(uint8_t *b, int64_t offset, uint64_t h)
{
	tm_store_be64(b, (uint64_t)offset);
	tm_store_be64(b + 8, h);
	for (int k = 0; k < SC_SNAP_BYTES - 16; k++)
		b[16 + k] = (uint8_t)((h >> (8 * (k % 8))) ^ (uint64_t)k);
}

static int sc_snap_decode(const uint8_t *b, int64_t *offset, uint64_t *h)
{
	*offset = (int64_t)tm_load_be64(b);
	*h = tm_load_be64(b + 8);
	uint8_t want[SC_SNAP_BYTES];
	sc_snap_encode(want, *offset, *h);
	return memcmp(want, b, SC_SNAP_BYTES) == 0 ? 0 : -1;
}

/* ---- the network ------------------------------------------------------------- */

static void sc_msg_free(struct sc_msg *m)
{
	if (m->entries)
		for (uint32_t i = 0; i < m->m.u.fetch_resp.n_entries; i++)
			free((void *)m->entries[i].payload);
	free(m->entries);
	free(m->bytes);
}

static void sc_enqueue(struct sc_cluster *c, const struct sc_msg *src)
{
	if (c->nq == c->capq) {
		c->capq = c->capq ? c->capq * 2 : 64;
		c->q = realloc(c->q, c->capq * sizeof(*c->q));
	}
	struct sc_msg *m = &c->q[c->nq++];
	*m = *src;
	m->seq = c->seq++;
	m->deliver_ms = c->now_ms + sc_range(c, c->delay_min_ms, c->delay_max_ms);
	m->m.cluster_id = NULL; /* re-pointed at delivery: the queue moves */
	m->entries = NULL;
	m->bytes = NULL;
	if (src->m.type == RAFT_MSG_FETCH_RESP && src->m.u.fetch_resp.n_entries) {
		uint32_t n = src->m.u.fetch_resp.n_entries;
		m->entries = malloc(n * sizeof(*m->entries));
		for (uint32_t i = 0; i < n; i++) {
			m->entries[i] = src->entries[i];
			uint8_t *p = src->entries[i].len ? malloc(src->entries[i].len) : NULL;
			if (p)
				memcpy(p, src->entries[i].payload, src->entries[i].len);
			m->entries[i].payload = p;
		}
	}
	if (src->m.type == RAFT_MSG_FETCH_SNAPSHOT_RESP && src->m.u.snap_resp.len) {
		m->bytes = malloc(src->m.u.snap_resp.len);
		memcpy(m->bytes, src->bytes, src->m.u.snap_resp.len);
	}
}

/* The driver's half of a Fetch / FetchSnapshot response: attach data. */
static void sc_send(struct sc_cluster *c, struct sc_node *nd, int32_t to,
		    const struct raft_msg *msg)
{
	struct sc_msg m;
	memset(&m, 0, sizeof(m));
	m.to = to;
	m.m = *msg;
	snprintf(m.cluster_id, sizeof(m.cluster_id), "%s", msg->cluster_id ? msg->cluster_id : "");
	struct raft_entry ents[64];
	if (msg->type == RAFT_MSG_FETCH_RESP) {
		struct raft_fetch_resp *p = &m.m.u.fetch_resp;
		uint32_t n = 0;
		int64_t bytes = 0;
		int64_t off = p->records_from;
		while (off < p->records_end && n < 64) {
			long i = sc_find(nd, off);
			if (i < 0) {
				sc_fail(c, "node %d: asked to send %lld, not in log", nd->id,
					(long long)off);
				return;
			}
			const struct sc_entry *e = &nd->log[i];
			if (n && bytes + e->len > p->max_bytes)
				break;
			ents[n].offset = e->offset;
			ents[n].epoch = e->epoch;
			ents[n].count = e->count;
			ents[n].control = e->control;
			ents[n].payload = e->payload;
			ents[n].len = e->len;
			bytes += e->len;
			n++;
			off = e->offset + e->count;
		}
		p->n_entries = n;
		m.entries = ents;
	} else if (msg->type == RAFT_MSG_FETCH_SNAPSHOT_RESP && msg->u.snap_resp.error == 0) {
		struct raft_fetch_snapshot_resp *p = &m.m.u.snap_resp;
		if (nd->log_start != p->snapshot_offset || nd->snap_epoch != p->snapshot_epoch) {
			p->error = TM_ERR_SNAPSHOT_NOT_FOUND;
		} else if (p->position > SC_SNAP_BYTES) {
			p->error = TM_ERR_POSITION_OUT_OF_RANGE;
		} else {
			p->size = SC_SNAP_BYTES;
			p->len = (uint32_t)TM_MIN((int64_t)p->max_bytes, SC_SNAP_BYTES - p->position);
			m.bytes = nd->snap + p->position;
		}
	}
	sc_enqueue(c, &m);
	if (sc_chance(c, c->dup_p))
		sc_enqueue(c, &m);
}

/* ---- performing actions ---------------------------------------------------------- */

static void sc_check_leader_complete(struct sc_cluster *c, struct sc_node *nd)
{
	for (size_t o = (size_t)nd->log_start; o < c->n_cm; o++) {
		const struct sc_commit *m = &c->cm[o];
		if (!m->has_entry)
			continue;
		long i = sc_find(nd, (int64_t)o);
		if (i < 0 || nd->log[i].epoch != m->epoch || sc_entry_hash(&nd->log[i]) != m->phash) {
			sc_fail(c, "leader completeness: leader %d (epoch %d) lacks committed "
				   "entry %zu",
				nd->id, nd->r.epoch, o);
			return;
		}
	}
}

static void sc_on_role(struct sc_cluster *c, struct sc_node *nd, const struct raft_action *a)
{
	nd->role = a->u.role.role;
	if (a->u.role.role != RAFT_LEADER)
		return;
	int32_t e = a->u.role.epoch;
	if ((size_t)e >= c->n_epochs) {
		size_t n = c->n_epochs ? c->n_epochs : 64;
		while (n <= (size_t)e)
			n *= 2;
		c->leader_of_epoch = realloc(c->leader_of_epoch, n * sizeof(int32_t));
		for (size_t i = c->n_epochs; i < n; i++)
			c->leader_of_epoch[i] = -1;
		c->n_epochs = n;
	}
	sc_trace(c, "node %d leader of epoch %d (log end %lld)", nd->id, e,
		 (long long)sc_log_end(nd));
	if (c->leader_of_epoch[e] != -1 && c->leader_of_epoch[e] != nd->id)
		sc_fail(c, "election safety: nodes %d and %d both lead epoch %d",
			c->leader_of_epoch[e], nd->id, e);
	c->leader_of_epoch[e] = nd->id;
	sc_check_leader_complete(c, nd);
}

static void sc_on_chunk(struct sc_cluster *c, struct sc_node *nd, const struct raft_action *a)
{
	if (a->u.chunk.size != SC_SNAP_BYTES || a->u.chunk.position + a->u.chunk.len > SC_SNAP_BYTES) {
		sc_fail(c, "node %d: bad snapshot chunk", nd->id);
		return;
	}
	memcpy(nd->inc + a->u.chunk.position, a->u.chunk.bytes, a->u.chunk.len);
	if (!a->u.chunk.done)
		return;
	int64_t off;
	uint64_t h;
	if (sc_snap_decode(nd->inc, &off, &h) || off != a->u.chunk.snapshot_offset) {
		sc_fail(c, "node %d: snapshot bytes corrupt after chunked transfer", nd->id);
		return;
	}
	sc_drop_from(nd, 0);
	nd->log_start = off;
	nd->snap_epoch = a->u.chunk.snapshot_epoch;
	memcpy(nd->snap, nd->inc, SC_SNAP_BYTES);
	if (off < nd->applied) {
		sc_fail(c, "node %d: snapshot at %lld below applied %lld", nd->id, (long long)off,
			(long long)nd->applied);
		return;
	}
	nd->applied = off;
	nd->sm_hash = h;
	sc_record_end(c, nd, off, h);
	c->snapshots_installed++;
	sc_trace(c, "node %d installed snapshot %lld/%d", nd->id, (long long)off,
		 a->u.chunk.snapshot_epoch);
}

static void sc_perform(struct sc_cluster *c, struct sc_node *nd)
{
	for (size_t k = 0; k < nd->out.n && !c->failed; k++) {
		const struct raft_action *a = &nd->out.v[k];
		switch (a->type) {
		case RAFT_ACT_SEND:
			sc_send(c, nd, a->u.send.to, &a->u.send.msg);
			break;
		case RAFT_ACT_PERSIST_STATE:
			nd->q_epoch = a->u.persist.epoch;
			nd->q_voted = a->u.persist.voted_id;
			nd->q_leader = a->u.persist.leader_id;
			break;
		case RAFT_ACT_APPEND:
			sc_disk_append(c, nd, &a->u.append);
			break;
		case RAFT_ACT_TRUNCATE: {
			int64_t off = a->u.truncate_offset;
			if (off < nd->applied) {
				sc_fail(c, "node %d: truncate to %lld below applied %lld", nd->id,
					(long long)off, (long long)nd->applied);
				break;
			}
			size_t i = 0;
			while (i < nd->n && nd->log[i].offset < off)
				i++;
			if (i < nd->n) {
				c->truncations++;
				sc_trace(c, "node %d truncates to %lld", nd->id, (long long)off);
			}
			sc_drop_from(nd, i);
			break;
		}
		case RAFT_ACT_COMMIT:
			sc_apply(c, nd, a->u.commit_offset);
			break;
		case RAFT_ACT_SNAPSHOT_CHUNK:
			sc_on_chunk(c, nd, a);
			break;
		case RAFT_ACT_ROLE:
			sc_on_role(c, nd, a);
			break;
		}
	}
	raft_actions_reset(&nd->out);
}

static int sc_step(struct sc_cluster *c, struct sc_node *nd, struct raft_event *ev)
{
	ev->now_ms = c->now_ms;
	int rc = raft_step(&nd->r, ev, &nd->out);
	if (rc && ev->type != RAFT_EV_SNAPSHOT_TAKEN)
		sc_fail(c, "node %d: raft_step(%d) returned %d", nd->id, ev->type, rc);
	int64_t po = nd->out.propose_offset;
	int16_t pe = nd->out.propose_error;
	sc_perform(c, nd);
	nd->out.propose_offset = po;
	nd->out.propose_error = pe;
	if (!c->failed && sc_log_end(nd) != raft_log_end_offset(&nd->r))
		sc_fail(c, "node %d: core log end %lld, disk %lld", nd->id,
			(long long)raft_log_end_offset(&nd->r), (long long)sc_log_end(nd));
	return rc;
}

/* ---- nodes: start, crash ------------------------------------------------------- */

static void sc_start(struct sc_cluster *c, int idx)
{
	struct sc_node *nd = &c->nodes[idx];
	struct raft_epoch_start eps[1024];
	uint32_t ne = 0;
	for (size_t i = 0; i < nd->n; i++)
		if ((!ne || eps[ne - 1].epoch != nd->log[i].epoch) && ne < 1024) {
			eps[ne].epoch = nd->log[i].epoch;
			eps[ne].start_offset = nd->log[i].offset;
			ne++;
		}
	struct raft_persisted p = {
		.epoch = nd->q_epoch,
		.voted_id = nd->q_voted,
		.leader_id = nd->q_leader,
		.log_start_offset = nd->log_start,
		.snapshot_epoch = nd->snap_epoch,
		.log_end_offset = sc_log_end(nd),
		.epochs = eps,
		.n_epochs = ne,
	};
	struct raft_config cfg = c->cfg;
	cfg.node_id = nd->id;
	int rc = raft_init(&nd->r, &cfg, sc_rand(c), &p, c->now_ms);
	if (rc) {
		sc_fail(c, "node %d: raft_init returned %d", nd->id, rc);
		return;
	}
	raft_actions_init(&nd->out);
	nd->up = true;
	nd->role = raft_role(&nd->r);
	/* The state machine reloads from the snapshot. */
	nd->applied = nd->log_start;
	nd->sm_hash = 0;
	if (nd->log_start > 0) {
		int64_t off;
		if (sc_snap_decode(nd->snap, &off, &nd->sm_hash) || off != nd->log_start)
			sc_fail(c, "node %d: own snapshot corrupt", nd->id);
	}
	sc_trace(c, "node %d starts: epoch %d voted %d leader %d log [%lld, %lld)", nd->id,
		 p.epoch, p.voted_id, p.leader_id, (long long)p.log_start_offset,
		 (long long)p.log_end_offset);
}

static void sc_crash(struct sc_cluster *c, int idx)
{
	struct sc_node *nd = &c->nodes[idx];
	if (!nd->up)
		return;
	/* Unsynced writes: a random prefix reached the disk, the next is torn
	 * (recovery drops it), the rest never did. */
	size_t i = 0;
	while (i < nd->n && nd->log[i].durable)
		i++;
	while (i < nd->n && sc_chance(c, c->survive_p))
		nd->log[i++].durable = true;
	sc_drop_from(nd, i);
	nd->fsync_at_ms = -1;
	raft_deinit(&nd->r);
	raft_actions_deinit(&nd->out);
	nd->up = false;
	sc_trace(c, "node %d crashes (disk log [%lld, %lld))", nd->id, (long long)nd->log_start,
		 (long long)sc_log_end(nd));
}

static void sc_init(struct sc_cluster *c, int n_voters, int n_observers, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	c->seed = seed;
	c->prng = seed * 0x2545f4914f6cdd1dULL + 1;
	c->n = n_voters + n_observers;
	raft_config_defaults(&c->cfg);
	snprintf(c->cfg.cluster_id, sizeof(c->cfg.cluster_id), "sim-cluster");
	for (int i = 0; i < n_voters; i++)
		c->cfg.voters[i] = i + 1;
	c->cfg.n_voters = (uint32_t)n_voters;
	c->delay_min_ms = 1;
	c->delay_max_ms = 5;
	c->fsync_delay_max_ms = 2;
	c->survive_p = 0.5;
	for (int a = 0; a < SC_NODES_MAX; a++)
		for (int b = 0; b < SC_NODES_MAX; b++)
			c->link[a][b] = true;
	for (int i = 0; i < c->n; i++) {
		struct sc_node *nd = &c->nodes[i];
		nd->id = i + 1;
		nd->voter = i < n_voters;
		nd->q_voted = nd->q_leader = RAFT_NODE_NONE;
		nd->fsync_at_ms = -1;
	}
}

static void sc_start_all(struct sc_cluster *c)
{
	for (int i = 0; i < c->n; i++)
		sc_start(c, i);
}

static void sc_deinit(struct sc_cluster *c)
{
	for (int i = 0; i < c->n; i++) {
		struct sc_node *nd = &c->nodes[i];
		if (nd->up) {
			raft_deinit(&nd->r);
			raft_actions_deinit(&nd->out);
		}
		sc_drop_from(nd, 0);
		free(nd->log);
	}
	for (size_t i = 0; i < c->nq; i++)
		sc_msg_free(&c->q[i]);
	free(c->q);
	free(c->cm);
	free(c->leader_of_epoch);
}

static int sc_index_of(const struct sc_cluster *c, int32_t id)
{
	return id >= 1 && id <= c->n ? id - 1 : -1;
}

/* ---- time ------------------------------------------------------------------- */

/* Delivers every message due by now, earliest first. */
static void sc_deliver(struct sc_cluster *c)
{
	for (;;) {
		size_t best = c->nq;
		for (size_t i = 0; i < c->nq; i++)
			if (c->q[i].deliver_ms <= c->now_ms &&
			    (best == c->nq || c->q[i].deliver_ms < c->q[best].deliver_ms ||
			     (c->q[i].deliver_ms == c->q[best].deliver_ms && c->q[i].seq < c->q[best].seq)))
				best = i;
		if (best == c->nq || c->failed)
			return;
		struct sc_msg m = c->q[best];
		c->q[best] = c->q[--c->nq];
		int ti = sc_index_of(c, m.to);
		int fi = sc_index_of(c, m.m.from);
		if (ti >= 0 && fi >= 0 && c->nodes[ti].up && c->link[fi][ti] &&
		    !sc_chance(c, c->drop_p)) {
			m.m.cluster_id = m.cluster_id;
			if (m.m.type == RAFT_MSG_FETCH_RESP)
				m.m.u.fetch_resp.entries = m.entries;
			if (m.m.type == RAFT_MSG_FETCH_SNAPSHOT_RESP)
				m.m.u.snap_resp.bytes = m.bytes;
			struct raft_event ev = {.type = RAFT_EV_RECV, .u.recv = &m.m};
			sc_step(c, &c->nodes[ti], &ev);
		}
		sc_msg_free(&m);
	}
}

static void sc_fsyncs(struct sc_cluster *c)
{
	for (int i = 0; i < c->n && !c->failed; i++) {
		struct sc_node *nd = &c->nodes[i];
		if (!nd->up || nd->fsync_at_ms < 0 || nd->fsync_at_ms > c->now_ms)
			continue;
		for (size_t k = 0; k < nd->n; k++)
			nd->log[k].durable = true;
		nd->fsync_at_ms = -1;
		struct raft_event ev = {.type = RAFT_EV_PERSISTED, .u.persisted_end = sc_log_end(nd)};
		sc_step(c, nd, &ev);
	}
}

/* Advances the clock by dt: messages, fsyncs, then one tick per node. */
static void sc_advance(struct sc_cluster *c, int64_t dt)
{
	c->now_ms += dt;
	sc_deliver(c);
	sc_fsyncs(c);
	for (int i = 0; i < c->n && !c->failed; i++) {
		if (!c->nodes[i].up)
			continue;
		struct raft_event ev = {.type = RAFT_EV_TICK};
		sc_step(c, &c->nodes[i], &ev);
	}
}

static void sc_run(struct sc_cluster *c, int64_t ms, int64_t dt)
{
	for (int64_t t = 0; t < ms && !c->failed; t += dt)
		sc_advance(c, dt);
}

/* The up node leading the highest epoch, or -1. */
static int sc_leader(const struct sc_cluster *c)
{
	int best = -1;
	for (int i = 0; i < c->n; i++)
		if (c->nodes[i].up && raft_role(&c->nodes[i].r) == RAFT_LEADER &&
		    (best < 0 || raft_epoch(&c->nodes[i].r) > raft_epoch(&c->nodes[best].r)))
			best = i;
	return best;
}

/* Proposes a unique payload at node idx; returns the offset or -1. */
static int64_t sc_propose(struct sc_cluster *c, int idx, uint32_t count)
{
	struct sc_node *nd = &c->nodes[idx];
	if (!nd->up)
		return -1;
	uint8_t payload[16];
	tm_store_be64(payload, ++c->payload_seq);
	tm_store_be64(payload + 8, c->seed);
	struct raft_event ev = {
		.type = RAFT_EV_PROPOSE,
		.u.propose = {.payload = payload, .len = sizeof(payload), .count = count},
	};
	sc_step(c, nd, &ev);
	if (nd->out.propose_offset >= 0)
		c->proposals++;
	return nd->out.propose_offset;
}

/* The driver takes a snapshot of its state machine at its applied offset. */
static int sc_take_snapshot(struct sc_cluster *c, int idx)
{
	struct sc_node *nd = &c->nodes[idx];
	if (!nd->up || nd->applied <= nd->log_start)
		return -1;
	int32_t epoch = -1;
	for (size_t i = 0; i < nd->n; i++)
		if (nd->log[i].offset + nd->log[i].count == nd->applied)
			epoch = nd->log[i].epoch;
	if (epoch < 0)
		return -1;
	struct raft_event ev = {
		.type = RAFT_EV_SNAPSHOT_TAKEN,
		.u.snapshot = {.offset = nd->applied, .epoch = epoch},
	};
	if (sc_step(c, nd, &ev) != 0)
		return -1;
	/* Only durable data may back a snapshot on disk; the sim's fsync is
	 * instant for this write (the snapshot file is its own fsync). */
	sc_snap_encode(nd->snap, nd->applied, nd->sm_hash);
	nd->snap_epoch = epoch;
	for (size_t i = 0; i < nd->n && nd->log[i].offset < nd->applied; i++)
		nd->log[i].durable = true;
	sc_drop_below(nd, nd->applied);
	nd->log_start = nd->applied;
	c->snapshots_taken++;
	sc_trace(c, "node %d snapshot at %lld/%d", nd->id, (long long)nd->applied, epoch);
	return 0;
}

/* ---- invariants that look at every log ------------------------------------------- */

static bool sc_same_entry(const struct sc_entry *a, const struct sc_entry *b)
{
	return a->offset == b->offset && a->epoch == b->epoch && a->count == b->count &&
	       a->control == b->control && a->len == b->len &&
	       (!a->len || memcmp(a->payload, b->payload, a->len) == 0);
}

static void sc_check_log_matching(struct sc_cluster *c)
{
	for (int a = 0; a < c->n; a++) {
		for (int b = a + 1; b < c->n && !c->failed; b++) {
			const struct sc_node *x = &c->nodes[a], *y = &c->nodes[b];
			/* The highest entry with the same offset and epoch in both... */
			long i = (long)x->n - 1, j = -1;
			for (; i >= 0; i--) {
				j = sc_find(y, x->log[i].offset);
				if (j >= 0 && y->log[j].epoch == x->log[i].epoch)
					break;
			}
			/* ...and everything below it must be identical. */
			for (; i >= 0 && j >= 0; i--, j--) {
				if (!sc_same_entry(&x->log[i], &y->log[j])) {
					sc_fail(c, "log matching: nodes %d and %d differ at %lld", x->id,
						y->id, (long long)x->log[i].offset);
					break;
				}
			}
		}
	}
	for (int a = 0; a < c->n && !c->failed; a++) {
		const struct sc_node *nd = &c->nodes[a];
		if (!nd->up)
			continue;
		int64_t hw = raft_high_watermark(&nd->r);
		if (hw > raft_log_end_offset(&nd->r) || hw < raft_log_start_offset(&nd->r))
			sc_fail(c, "node %d: hw %lld outside log [%lld, %lld)", nd->id, (long long)hw,
				(long long)raft_log_start_offset(&nd->r),
				(long long)raft_log_end_offset(&nd->r));
		if (raft_log_start_offset(&nd->r) != nd->log_start)
			sc_fail(c, "node %d: core log start %lld, disk %lld", nd->id,
				(long long)raft_log_start_offset(&nd->r), (long long)nd->log_start);
	}
}

#endif
