/*
 * raft.c — the KRaft state machine behind raft.h.  Pure: no I/O, no clock,
 * no randomness but the splitmix64 state seeded by the driver.
 *
 * Roles and their timers (all deadlines are absolute, in the driver's ms):
 *
 *   role         timer                     on expiry
 *   unattached   election_deadline_ms      -> prospective (voters only)
 *   voted        election_deadline_ms      -> prospective
 *   prospective  election_deadline_ms      new pre-vote round
 *   candidate    election_deadline_ms      -> prospective (epoch kept)
 *   resigned     election_deadline_ms      -> prospective
 *   follower     fetch_deadline_ms         -> prospective (observer: unattached)
 *   leader       check-quorum window       -> resigned
 *
 * Observers (nodes outside the voter set) never campaign; unattached, they
 * ask the voters in turn with a Fetch whose error response names the leader.
 *
 * Safety lives in four places: a vote is persisted (PERSIST_STATE, which the
 * driver makes durable before later actions) before its response is sent;
 * a voter grants only a candidate whose log is at least as up to date; the
 * leader counts a replica's fetch_offset only after checking it against its
 * epoch cache, and counts its own log only up to the durable end; the high
 * watermark moves only past the leader's epoch start offset.
 */
#include "raft/raft.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/kerr.h"
#include "common/tm_assert.h"

/* ---- small helpers ------------------------------------------------------ */

static uint64_t prng_next(struct raft *r)
{
	uint64_t z = (r->prng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int64_t random_election_timeout(struct raft *r)
{
	int64_t t = r->cfg.election_timeout_ms;
	return t + (int64_t)(prng_next(r) % (uint64_t)(t > 0 ? t : 1));
}

const char *raft_role_name(enum raft_role role)
{
	switch (role) {
	case RAFT_UNATTACHED: return "unattached";
	case RAFT_PROSPECTIVE: return "prospective";
	case RAFT_CANDIDATE: return "candidate";
	case RAFT_LEADER: return "leader";
	case RAFT_FOLLOWER: return "follower";
	case RAFT_VOTED: return "voted";
	case RAFT_RESIGNED: return "resigned";
	}
	return "unknown";
}

void raft_config_defaults(struct raft_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->node_id = RAFT_NODE_NONE;
	cfg->election_timeout_ms = 1000;
	cfg->fetch_timeout_ms = 2000;
	cfg->request_timeout_ms = 1000;
	cfg->fetch_max_wait_ms = 500;
	cfg->end_quorum_backoff_ms = 50;
	cfg->retry_backoff_ms = 20;
	cfg->fetch_max_bytes = 8 * 1024 * 1024;
	cfg->snapshot_chunk_bytes = 1024 * 1024;
	cfg->entry_bytes_max = 8 * 1024 * 1024;
}

void raft_actions_init(struct raft_actions *a)
{
	memset(a, 0, sizeof(*a));
	a->propose_offset = -1;
}

void raft_actions_reset(struct raft_actions *a)
{
	a->n = 0;
	a->err = 0;
	a->propose_offset = -1;
	a->propose_error = TM_ERR_NONE;
}

void raft_actions_deinit(struct raft_actions *a)
{
	free(a->v);
	memset(a, 0, sizeof(*a));
}

static struct raft_action *push(struct raft_actions *out, enum raft_action_type type)
{
	static struct raft_action sink; /* absorbs writes after a failed grow */
	if (out->n == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 16;
		struct raft_action *v = realloc(out->v, cap * sizeof(*v));
		if (!v) {
			out->err = -ENOMEM;
			memset(&sink, 0, sizeof(sink));
			return &sink;
		}
		out->v = v;
		out->cap = cap;
	}
	struct raft_action *a = &out->v[out->n++];
	memset(a, 0, sizeof(*a));
	a->type = type;
	return a;
}

static struct raft_msg *push_send(struct raft *r, struct raft_actions *out,
				  int32_t to, enum raft_msg_type type)
{
	struct raft_action *a = push(out, RAFT_ACT_SEND);
	a->u.send.to = to;
	a->u.send.msg.type = type;
	a->u.send.msg.from = r->cfg.node_id;
	a->u.send.msg.cluster_id = r->cfg.cluster_id;
	return &a->u.send.msg;
}

static int voter_index(const struct raft *r, int32_t id)
{
	for (uint32_t i = 0; i < r->cfg.n_voters; i++)
		if (r->cfg.voters[i] == id)
			return (int)i;
	return -1;
}

bool raft_is_voter(const struct raft *r, int32_t node_id)
{
	return voter_index(r, node_id) >= 0;
}

static bool is_voter(const struct raft *r)
{
	return r->self_voter_idx >= 0;
}

static uint32_t majority(const struct raft *r)
{
	return r->cfg.n_voters / 2 + 1;
}

static uint32_t popcount32(uint32_t v)
{
	uint32_t n = 0;
	for (; v; v &= v - 1)
		n++;
	return n;
}

static bool cluster_id_ok(const struct raft *r, const char *id)
{
	if (!id || !id[0] || !r->cfg.cluster_id[0])
		return true;
	return strncmp(id, r->cfg.cluster_id, RAFT_CLUSTER_ID_MAX + 1) == 0;
}

/* ---- the epoch cache ---------------------------------------------------- */

static int epochs_push(struct raft *r, int32_t epoch, int64_t start)
{
	if (r->n_epochs && r->epochs[r->n_epochs - 1].epoch == epoch)
		return 0;
	TM_ASSERT(!r->n_epochs || r->epochs[r->n_epochs - 1].epoch < epoch);
	if (r->n_epochs == r->cap_epochs) {
		if (r->cap_epochs >= RAFT_EPOCHS_MAX)
			return -ENOSPC;
		uint32_t cap = r->cap_epochs ? r->cap_epochs * 2 : 16;
		struct raft_epoch_start *v = realloc(r->epochs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->epochs = v;
		r->cap_epochs = cap;
	}
	r->epochs[r->n_epochs].epoch = epoch;
	r->epochs[r->n_epochs].start_offset = start;
	r->n_epochs++;
	return 0;
}

/* Epoch of the last entry, or the snapshot's epoch (0 for an empty log). */
static int32_t last_epoch(const struct raft *r)
{
	if (r->log_end > r->log_start && r->n_epochs)
		return r->epochs[r->n_epochs - 1].epoch;
	return r->snap_epoch;
}

/*
 * The largest epoch <= `epoch` in our log and the offset where it ends
 * (exclusive).  Below the epoch cache the snapshot's epoch ends at the log
 * start; an epoch older than the snapshot's is unknown (-1, log start),
 * and with no snapshot everything before the log is epoch 0 ending at 0.
 */
static void end_offset_for_epoch(const struct raft *r, int32_t epoch,
				 int32_t *epoch_out, int64_t *end_out)
{
	for (uint32_t i = r->n_epochs; i-- > 0;) {
		if (r->epochs[i].epoch <= epoch) {
			*epoch_out = r->epochs[i].epoch;
			*end_out = i + 1 < r->n_epochs ? r->epochs[i + 1].start_offset
						       : r->log_end;
			return;
		}
	}
	*epoch_out = r->snap_epoch <= epoch ? r->snap_epoch : -1;
	*end_out = r->log_start;
}

/* Drops cache entries that begin at or past `end`. */
static void epochs_truncate(struct raft *r, int64_t end)
{
	while (r->n_epochs && r->epochs[r->n_epochs - 1].start_offset >= end)
		r->n_epochs--;
}

/* Drops cache entries wholly below the log start. */
static void epochs_prune_below(struct raft *r, int64_t start)
{
	uint32_t drop = 0;
	while (drop + 1 < r->n_epochs && r->epochs[drop + 1].start_offset <= start)
		drop++;
	if (drop) {
		memmove(r->epochs, r->epochs + drop, (r->n_epochs - drop) * sizeof(*r->epochs));
		r->n_epochs -= drop;
	}
}

/* ---- role transitions --------------------------------------------------- */

static void emit_role(struct raft *r, struct raft_actions *out)
{
	struct raft_action *a = push(out, RAFT_ACT_ROLE);
	a->u.role.role = r->role;
	a->u.role.epoch = r->epoch;
	a->u.role.leader_id = r->leader_id;
}

/* Records (epoch, voted, leader); persists first when any of them changed. */
static void set_quorum_state(struct raft *r, struct raft_actions *out,
			     int32_t epoch, int32_t voted, int32_t leader)
{
	if (epoch == r->epoch && voted == r->voted_id && leader == r->leader_id)
		return;
	TM_ASSERT(epoch >= r->epoch);
	r->epoch = epoch;
	r->voted_id = voted;
	r->leader_id = leader;
	struct raft_action *a = push(out, RAFT_ACT_PERSIST_STATE);
	a->u.persist.epoch = epoch;
	a->u.persist.voted_id = voted;
	a->u.persist.leader_id = leader;
}

static struct raft_msg *fetch_resp_base(struct raft *r, struct raft_actions *out,
					int32_t to, const struct raft_fetch_req *q,
					int16_t error);

/* Every Fetch gets an answer (the wire pairs responses with requests), so
 * fetches a leader parked are answered as it steps down. */
static void answer_parked(struct raft *r, struct raft_actions *out, struct raft_replica *s)
{
	if (!s->parked)
		return;
	s->parked = false;
	fetch_resp_base(r, out, s->id, &s->parked_req, TM_ERR_NOT_LEADER_OR_FOLLOWER);
}

static void reset_role_state(struct raft *r, struct raft_actions *out)
{
	if (r->role == RAFT_LEADER) {
		for (uint32_t i = 0; i < r->cfg.n_voters; i++)
			answer_parked(r, out, &r->voter_state[i]);
		for (uint32_t i = 0; i < r->n_observers; i++)
			answer_parked(r, out, &r->observer_state[i]);
	}
	r->granted_mask = 0;
	r->rejected_mask = 0;
	r->fetch_inflight = false;
	r->fetch_not_before_ms = 0;
	r->leader_resigned = false;
	r->snap_fetching = false;
	for (uint32_t i = 0; i < r->cfg.n_voters; i++)
		r->voter_state[i].parked = false;
	r->n_observers = 0;
}

static void send_fetch(struct raft *r, struct raft_actions *out);

static void become_unattached(struct raft *r, struct raft_actions *out, int32_t epoch)
{
	int32_t voted = epoch == r->epoch ? r->voted_id : RAFT_NODE_NONE;
	set_quorum_state(r, out, epoch, voted, RAFT_NODE_NONE);
	reset_role_state(r, out);
	r->role = voted != RAFT_NODE_NONE && voted != r->cfg.node_id ? RAFT_VOTED
								     : RAFT_UNATTACHED;
	r->election_deadline_ms = r->now_ms + random_election_timeout(r);
	emit_role(r, out);
}

static void become_follower(struct raft *r, struct raft_actions *out,
			    int32_t epoch, int32_t leader)
{
	int32_t voted = epoch == r->epoch ? r->voted_id : RAFT_NODE_NONE;
	if (epoch != r->epoch || leader != r->leader_id)
		r->leader_contact_ms = -1;
	set_quorum_state(r, out, epoch, voted, leader);
	reset_role_state(r, out);
	r->role = RAFT_FOLLOWER;
	r->fetch_deadline_ms = r->now_ms + r->cfg.fetch_timeout_ms;
	emit_role(r, out);
	send_fetch(r, out);
}

static void become_voted(struct raft *r, struct raft_actions *out, int32_t candidate)
{
	set_quorum_state(r, out, r->epoch, candidate, RAFT_NODE_NONE);
	reset_role_state(r, out);
	r->role = RAFT_VOTED;
	r->election_deadline_ms = r->now_ms + random_election_timeout(r);
	emit_role(r, out);
}

static void become_leader(struct raft *r, struct raft_actions *out);
static void become_candidate(struct raft *r, struct raft_actions *out);

static void send_votes(struct raft *r, struct raft_actions *out, bool pre_vote)
{
	for (uint32_t i = 0; i < r->cfg.n_voters; i++) {
		if ((int)i == r->self_voter_idx)
			continue;
		struct raft_msg *m = push_send(r, out, r->cfg.voters[i], RAFT_MSG_VOTE_REQ);
		m->u.vote_req.candidate_epoch = pre_vote ? r->epoch + 1 : r->epoch;
		m->u.vote_req.candidate_id = r->cfg.node_id;
		m->u.vote_req.voter_id = r->cfg.voters[i];
		m->u.vote_req.last_offset_epoch = last_epoch(r);
		m->u.vote_req.last_offset = r->log_end;
		m->u.vote_req.pre_vote = pre_vote;
	}
}

static void become_prospective(struct raft *r, struct raft_actions *out)
{
	TM_ASSERT(is_voter(r));
	reset_role_state(r, out);
	r->role = RAFT_PROSPECTIVE;
	r->granted_mask = 1u << r->self_voter_idx;
	r->election_deadline_ms = r->now_ms + random_election_timeout(r);
	emit_role(r, out);
	if (popcount32(r->granted_mask) >= majority(r)) {
		become_candidate(r, out);
		return;
	}
	send_votes(r, out, true);
}

static void become_candidate(struct raft *r, struct raft_actions *out)
{
	TM_ASSERT(is_voter(r));
	set_quorum_state(r, out, r->epoch + 1, r->cfg.node_id, RAFT_NODE_NONE);
	reset_role_state(r, out);
	r->role = RAFT_CANDIDATE;
	r->granted_mask = 1u << r->self_voter_idx;
	r->election_deadline_ms = r->now_ms + random_election_timeout(r);
	emit_role(r, out);
	if (popcount32(r->granted_mask) >= majority(r)) {
		become_leader(r, out);
		return;
	}
	send_votes(r, out, false);
}

static void init_replica(struct raft_replica *s, int32_t id)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->end_offset = -1;
	s->last_fetch_ms = -1;
	s->last_caught_up_ms = -1;
	s->leader_end_at_fetch = -1;
	s->hw_sent = -1;
}

static void send_begin(struct raft *r, struct raft_actions *out, uint32_t i)
{
	struct raft_msg *m = push_send(r, out, r->cfg.voters[i], RAFT_MSG_BEGIN_EPOCH_REQ);
	m->u.begin_req.leader_id = r->cfg.node_id;
	m->u.begin_req.leader_epoch = r->epoch;
	m->u.begin_req.voter_id = r->cfg.voters[i];
	r->voter_state[i].begin_sent_ms = r->now_ms;
}

static void append_entry(struct raft *r, struct raft_actions *out,
			 const struct raft_entry *e)
{
	struct raft_action *a = push(out, RAFT_ACT_APPEND);
	a->u.append = *e;
	int rc = epochs_push(r, e->epoch, e->offset);
	if (rc)
		out->err = rc;
	r->log_end = e->offset + e->count;
}

static void become_leader(struct raft *r, struct raft_actions *out)
{
	set_quorum_state(r, out, r->epoch, r->voted_id, r->cfg.node_id);
	reset_role_state(r, out);
	r->role = RAFT_LEADER;
	r->leader_since_ms = r->now_ms;
	for (uint32_t i = 0; i < r->cfg.n_voters; i++)
		init_replica(&r->voter_state[i], r->cfg.voters[i]);
	emit_role(r, out);

	/* The leader-change control entry: once it commits, everything before
	 * it is committed too (an entry of the current epoch covers them). */
	r->epoch_start_offset = r->log_end;
	struct raft_entry e = {
		.offset = r->log_end, .epoch = r->epoch, .count = 1, .control = true,
	};
	append_entry(r, out, &e);

	for (uint32_t i = 0; i < r->cfg.n_voters; i++)
		if ((int)i != r->self_voter_idx)
			send_begin(r, out, i);
}

static void send_end_epoch(struct raft *r, struct raft_actions *out)
{
	/* Preferred successors: the voters with the longest logs first. */
	int32_t ids[RAFT_VOTERS_MAX];
	int64_t ends[RAFT_VOTERS_MAX];
	uint32_t n = 0;
	for (uint32_t i = 0; i < r->cfg.n_voters; i++) {
		if ((int)i == r->self_voter_idx)
			continue;
		int64_t end = r->role == RAFT_LEADER ? r->voter_state[i].end_offset : -1;
		uint32_t j = n++;
		while (j > 0 && ends[j - 1] < end) {
			ids[j] = ids[j - 1];
			ends[j] = ends[j - 1];
			j--;
		}
		ids[j] = r->cfg.voters[i];
		ends[j] = end;
	}
	for (uint32_t k = 0; k < n; k++) {
		struct raft_msg *m = push_send(r, out, ids[k], RAFT_MSG_END_EPOCH_REQ);
		m->u.end_req.leader_id = r->cfg.node_id;
		m->u.end_req.leader_epoch = r->epoch;
		memcpy(m->u.end_req.preferred, ids, n * sizeof(ids[0]));
		m->u.end_req.n_preferred = n;
	}
}

static void become_resigned(struct raft *r, struct raft_actions *out)
{
	TM_ASSERT(r->role == RAFT_LEADER);
	send_end_epoch(r, out);
	reset_role_state(r, out);
	r->role = RAFT_RESIGNED;
	r->election_deadline_ms = r->now_ms + random_election_timeout(r);
	emit_role(r, out);
}

/* A message showed a higher epoch: follow its leader, or wait unattached. */
static void observe_epoch(struct raft *r, struct raft_actions *out,
			  int32_t epoch, int32_t leader)
{
	TM_ASSERT(epoch > r->epoch);
	if (leader != RAFT_NODE_NONE && leader != r->cfg.node_id)
		become_follower(r, out, epoch, leader);
	else
		become_unattached(r, out, epoch);
}

/* ---- commit ------------------------------------------------------------- */

static void set_hw(struct raft *r, struct raft_actions *out, int64_t hw)
{
	if (hw <= r->hw)
		return;
	TM_ASSERT(hw <= r->log_end);
	r->hw = hw;
	struct raft_action *a = push(out, RAFT_ACT_COMMIT);
	a->u.commit_offset = hw;
}

static void respond_fetch(struct raft *r, struct raft_actions *out,
			  struct raft_replica *s, const struct raft_fetch_req *req);

static void complete_parked(struct raft *r, struct raft_actions *out, bool only_expired)
{
	for (uint32_t i = 0; i < r->cfg.n_voters; i++) {
		struct raft_replica *s = &r->voter_state[i];
		if (s->parked && (!only_expired || r->now_ms >= s->parked_deadline_ms)) {
			s->parked = false;
			respond_fetch(r, out, s, &s->parked_req);
		}
	}
	for (uint32_t i = 0; i < r->n_observers; i++) {
		struct raft_replica *s = &r->observer_state[i];
		if (s->parked && (!only_expired || r->now_ms >= s->parked_deadline_ms)) {
			s->parked = false;
			respond_fetch(r, out, s, &s->parked_req);
		}
	}
}

/* Leader: the largest offset a majority of voters hold durably. */
static void leader_update_hw(struct raft *r, struct raft_actions *out)
{
	int64_t ends[RAFT_VOTERS_MAX];
	uint32_t n = r->cfg.n_voters;
	for (uint32_t i = 0; i < n; i++)
		ends[i] = (int)i == r->self_voter_idx ? r->persisted_end
						      : r->voter_state[i].end_offset;
	for (uint32_t i = 1; i < n; i++) { /* descending insertion sort */
		int64_t v = ends[i];
		uint32_t j = i;
		while (j > 0 && ends[j - 1] < v) {
			ends[j] = ends[j - 1];
			j--;
		}
		ends[j] = v;
	}
	int64_t cand = ends[majority(r) - 1];
	if (cand > r->epoch_start_offset && cand > r->hw) {
		set_hw(r, out, cand);
		complete_parked(r, out, false);
	}
}

/* ---- sending fetches (follower/observer) ---------------------------------- */

static void send_fetch(struct raft *r, struct raft_actions *out)
{
	int32_t to = r->leader_id;
	if (r->role != RAFT_FOLLOWER) {
		/* Observer discovery: ask the voters in turn. */
		if (is_voter(r) || r->role != RAFT_UNATTACHED || !r->cfg.n_voters)
			return;
		to = r->cfg.voters[r->bootstrap_idx++ % r->cfg.n_voters];
	}
	if (r->fetch_inflight || r->now_ms < r->fetch_not_before_ms)
		return;
	if (r->snap_fetching) {
		struct raft_msg *m = push_send(r, out, to, RAFT_MSG_FETCH_SNAPSHOT_REQ);
		m->u.snap_req.replica_id = r->cfg.node_id;
		m->u.snap_req.current_leader_epoch = r->epoch;
		m->u.snap_req.snapshot_offset = r->snap_fetch_offset;
		m->u.snap_req.snapshot_epoch = r->snap_fetch_epoch;
		m->u.snap_req.position = r->snap_fetch_position;
		m->u.snap_req.max_bytes = r->cfg.snapshot_chunk_bytes;
	} else {
		/* Report only durable entries: the leader counts them. */
		if (r->persisted_end < r->log_end)
			return;
		struct raft_msg *m = push_send(r, out, to, RAFT_MSG_FETCH_REQ);
		m->u.fetch_req.replica_id = r->cfg.node_id;
		m->u.fetch_req.current_leader_epoch = r->epoch;
		m->u.fetch_req.fetch_offset = r->log_end;
		m->u.fetch_req.last_fetched_epoch = last_epoch(r);
		m->u.fetch_req.max_wait_ms = (int32_t)r->cfg.fetch_max_wait_ms;
		m->u.fetch_req.max_bytes = r->cfg.fetch_max_bytes;
	}
	r->fetch_inflight = true;
	r->fetch_sent_ms = r->now_ms;
}

/* ---- Vote ---------------------------------------------------------------- */

static bool log_up_to_date(const struct raft *r, int32_t last_epoch_c, int64_t last_offset_c)
{
	int32_t mine = last_epoch(r);
	if (last_epoch_c != mine)
		return last_epoch_c > mine;
	return last_offset_c >= r->log_end;
}

/* A follower that heard from its leader within the fetch timeout turns
 * pre-votes down (KIP-996); being a follower alone is not enough, or
 * followers of a dead leader would refuse each other forever. */
static bool has_live_leader(const struct raft *r)
{
	if (r->role == RAFT_LEADER)
		return true;
	return r->role == RAFT_FOLLOWER && !r->leader_resigned && r->leader_contact_ms >= 0 &&
	       r->now_ms - r->leader_contact_ms < r->cfg.fetch_timeout_ms;
}

static void reply_vote(struct raft *r, struct raft_actions *out, int32_t to,
		       int16_t error, bool granted, bool pre_vote)
{
	struct raft_msg *m = push_send(r, out, to, RAFT_MSG_VOTE_RESP);
	m->u.vote_resp.error = error;
	m->u.vote_resp.leader_id = r->leader_id;
	m->u.vote_resp.leader_epoch = r->epoch;
	m->u.vote_resp.vote_granted = granted;
	m->u.vote_resp.pre_vote = pre_vote;
}

static void on_vote_req(struct raft *r, struct raft_actions *out, const struct raft_msg *m)
{
	const struct raft_vote_req *q = &m->u.vote_req;
	int32_t cand = q->candidate_id;
	if (!cluster_id_ok(r, m->cluster_id)) {
		reply_vote(r, out, m->from, TM_ERR_INCONSISTENT_CLUSTER_ID, false, q->pre_vote);
		return;
	}
	if (!is_voter(r) || voter_index(r, cand) < 0 || cand == r->cfg.node_id) {
		reply_vote(r, out, m->from, TM_ERR_INCONSISTENT_VOTER_SET, false, q->pre_vote);
		return;
	}
	if (q->candidate_epoch < r->epoch) {
		reply_vote(r, out, m->from, TM_ERR_NONE, false, q->pre_vote);
		return;
	}
	bool log_ok = log_up_to_date(r, q->last_offset_epoch, q->last_offset);
	if (q->pre_vote) {
		/* A pre-vote never moves us to the epoch it proposes.  But the
		 * candidate's current epoch (one less) is real and persisted;
		 * when it is above ours we adopt it, or a node that won
		 * pre-votes and then lost the real vote could never rejoin:
		 * nobody would ever send it a message of its epoch. */
		if (q->candidate_epoch - 1 > r->epoch)
			become_unattached(r, out, q->candidate_epoch - 1);
		bool grant = log_ok && !has_live_leader(r);
		if (q->candidate_epoch == r->epoch &&
		    (r->leader_id != RAFT_NODE_NONE ||
		     (r->voted_id != RAFT_NODE_NONE && r->voted_id != cand)))
			grant = false;
		reply_vote(r, out, m->from, TM_ERR_NONE, grant, true);
		return;
	}
	if (q->candidate_epoch > r->epoch)
		become_unattached(r, out, q->candidate_epoch);
	bool grant;
	if (r->leader_id != RAFT_NODE_NONE)
		grant = false;
	else if (r->voted_id != RAFT_NODE_NONE)
		grant = r->voted_id == cand;
	else if (log_ok) {
		become_voted(r, out, cand); /* persists before the reply below */
		grant = true;
	} else
		grant = false;
	reply_vote(r, out, m->from, TM_ERR_NONE, grant, false);
}

/* A response that says its sender is not of our quorum (another cluster id,
 * another voter set) carries an epoch and a leader of that other world:
 * never adopt them. */
static bool response_is_foreign(int16_t error)
{
	return error == TM_ERR_INCONSISTENT_CLUSTER_ID || error == TM_ERR_INCONSISTENT_VOTER_SET;
}

static void on_vote_resp(struct raft *r, struct raft_actions *out, const struct raft_msg *m)
{
	const struct raft_vote_resp *p = &m->u.vote_resp;
	if (response_is_foreign(p->error))
		return;
	if (p->leader_epoch > r->epoch) {
		observe_epoch(r, out, p->leader_epoch, p->leader_id);
		return;
	}
	int idx = voter_index(r, m->from);
	if (idx < 0 || p->error != TM_ERR_NONE)
		return;
	uint32_t bit = 1u << idx;
	if (r->role == RAFT_PROSPECTIVE && p->pre_vote) {
		if (p->vote_granted) {
			r->granted_mask |= bit;
			if (popcount32(r->granted_mask) >= majority(r))
				become_candidate(r, out);
			return;
		}
		r->rejected_mask |= bit;
		/* Lost: a majority still follows a leader, or has a longer log.
		 * Go back to the leader we knew; otherwise retry after the timer. */
		if (popcount32(r->rejected_mask) >= majority(r) &&
		    r->leader_id != RAFT_NODE_NONE && r->leader_id != r->cfg.node_id)
			become_follower(r, out, r->epoch, r->leader_id);
		return;
	}
	if (r->role == RAFT_CANDIDATE && !p->pre_vote && p->leader_epoch == r->epoch) {
		if (p->vote_granted) {
			r->granted_mask |= bit;
			if (popcount32(r->granted_mask) >= majority(r))
				become_leader(r, out);
		} else {
			r->rejected_mask |= bit;
		}
	}
}

/* ---- BeginQuorumEpoch / EndQuorumEpoch ------------------------------------ */

static void reply_epoch(struct raft *r, struct raft_actions *out, int32_t to,
			enum raft_msg_type type, int16_t error)
{
	struct raft_msg *m = push_send(r, out, to, type);
	m->u.epoch_resp.error = error;
	m->u.epoch_resp.leader_id = r->leader_id;
	m->u.epoch_resp.leader_epoch = r->epoch;
}

static void on_begin_req(struct raft *r, struct raft_actions *out, const struct raft_msg *m)
{
	const struct raft_begin_epoch_req *q = &m->u.begin_req;
	int16_t err = TM_ERR_NONE;
	if (!cluster_id_ok(r, m->cluster_id))
		err = TM_ERR_INCONSISTENT_CLUSTER_ID;
	else if (voter_index(r, q->leader_id) < 0 || q->leader_id == r->cfg.node_id)
		err = TM_ERR_INCONSISTENT_VOTER_SET;
	else if (q->leader_epoch < r->epoch)
		err = TM_ERR_FENCED_LEADER_EPOCH;
	else if (q->leader_epoch > r->epoch)
		become_follower(r, out, q->leader_epoch, q->leader_id);
	else if (r->leader_id == RAFT_NODE_NONE)
		become_follower(r, out, q->leader_epoch, q->leader_id);
	else if (r->leader_id != q->leader_id)
		err = TM_ERR_INCONSISTENT_VOTER_SET; /* two leaders in one epoch */
	else if (r->role == RAFT_PROSPECTIVE)
		become_follower(r, out, q->leader_epoch, q->leader_id);
	if (err == TM_ERR_NONE && r->role == RAFT_FOLLOWER)
		r->leader_contact_ms = r->now_ms;
	reply_epoch(r, out, m->from, RAFT_MSG_BEGIN_EPOCH_RESP, err);
}

static void on_epoch_resp(struct raft *r, struct raft_actions *out, const struct raft_msg *m)
{
	const struct raft_epoch_resp *p = &m->u.epoch_resp;
	if (response_is_foreign(p->error))
		return;
	if (p->leader_epoch > r->epoch) {
		observe_epoch(r, out, p->leader_epoch, p->leader_id);
		return;
	}
	int idx = voter_index(r, m->from);
	if (r->role == RAFT_LEADER && m->type == RAFT_MSG_BEGIN_EPOCH_RESP && idx >= 0 &&
	    p->error == TM_ERR_NONE && p->leader_epoch == r->epoch)
		r->voter_state[idx].begin_acked = true;
}

static void on_end_req(struct raft *r, struct raft_actions *out, const struct raft_msg *m)
{
	const struct raft_end_epoch_req *q = &m->u.end_req;
	if (!cluster_id_ok(r, m->cluster_id)) {
		reply_epoch(r, out, m->from, RAFT_MSG_END_EPOCH_RESP, TM_ERR_INCONSISTENT_CLUSTER_ID);
		return;
	}
	if (q->leader_epoch < r->epoch) {
		reply_epoch(r, out, m->from, RAFT_MSG_END_EPOCH_RESP, TM_ERR_FENCED_LEADER_EPOCH);
		return;
	}
	if (voter_index(r, q->leader_id) < 0 || q->leader_id == r->cfg.node_id) {
		reply_epoch(r, out, m->from, RAFT_MSG_END_EPOCH_RESP, TM_ERR_INCONSISTENT_VOTER_SET);
		return;
	}
	if (q->leader_epoch > r->epoch)
		become_follower(r, out, q->leader_epoch, q->leader_id);
	if (is_voter(r)) {
		/* The best-placed successor campaigns at once, the others a
		 * little later, so the election is quick and rarely split. */
		uint32_t pos = q->n_preferred <= RAFT_VOTERS_MAX ? q->n_preferred : RAFT_VOTERS_MAX;
		for (uint32_t i = 0; i < pos; i++)
			if (q->preferred[i] == r->cfg.node_id)
				pos = i;
		int64_t when = r->now_ms + (int64_t)pos * r->cfg.end_quorum_backoff_ms;
		if (r->role == RAFT_FOLLOWER && r->leader_id == q->leader_id) {
			r->leader_resigned = true;
			if (when < r->fetch_deadline_ms)
				r->fetch_deadline_ms = when;
		} else if (r->role == RAFT_UNATTACHED || r->role == RAFT_VOTED) {
			if (when < r->election_deadline_ms)
				r->election_deadline_ms = when;
		}
	}
	reply_epoch(r, out, m->from, RAFT_MSG_END_EPOCH_RESP, TM_ERR_NONE);
}

/* ---- Fetch (leader side) -------------------------------------------------- */

static struct raft_replica *find_replica(struct raft *r, int32_t id)
{
	int idx = voter_index(r, id);
	if (idx >= 0)
		return &r->voter_state[idx];
	for (uint32_t i = 0; i < r->n_observers; i++)
		if (r->observer_state[i].id == id)
			return &r->observer_state[i];
	/* A new observer; when full, forget the one heard from least recently. */
	uint32_t slot = r->n_observers;
	if (slot == RAFT_OBSERVERS_MAX) {
		slot = 0;
		for (uint32_t i = 1; i < r->n_observers; i++)
			if (r->observer_state[i].last_fetch_ms < r->observer_state[slot].last_fetch_ms)
				slot = i;
	} else {
		r->n_observers++;
	}
	init_replica(&r->observer_state[slot], id);
	return &r->observer_state[slot];
}

static struct raft_msg *fetch_resp_base(struct raft *r, struct raft_actions *out,
					int32_t to, const struct raft_fetch_req *q,
					int16_t error)
{
	struct raft_msg *m = push_send(r, out, to, RAFT_MSG_FETCH_RESP);
	struct raft_fetch_resp *p = &m->u.fetch_resp;
	p->error = error;
	p->leader_id = r->leader_id;
	p->leader_epoch = r->epoch;
	p->high_watermark = r->role == RAFT_LEADER ? r->hw : -1;
	p->log_start_offset = r->log_start;
	p->diverging_epoch = -1;
	p->diverging_end_offset = -1;
	p->snapshot_offset = -1;
	p->snapshot_epoch = -1;
	p->fetch_offset = q->fetch_offset;
	p->last_fetched_epoch = q->last_fetched_epoch;
	p->records_from = q->fetch_offset;
	p->records_end = q->fetch_offset;
	return m;
}

/* Answers a validated fetch with records (possibly none) and the HW. */
static void respond_fetch(struct raft *r, struct raft_actions *out,
			  struct raft_replica *s, const struct raft_fetch_req *q)
{
	struct raft_msg *m = fetch_resp_base(r, out, s->id, q, TM_ERR_NONE);
	struct raft_fetch_resp *p = &m->u.fetch_resp;
	p->records_from = q->fetch_offset;
	p->records_end = r->log_end;
	int32_t max = q->max_bytes > 0 ? q->max_bytes : r->cfg.fetch_max_bytes;
	p->max_bytes = TM_MIN(max, r->cfg.fetch_max_bytes);
	s->hw_sent = r->hw;
}

static void on_fetch_req(struct raft *r, struct raft_actions *out, const struct raft_msg *m)
{
	const struct raft_fetch_req *q = &m->u.fetch_req;
	int16_t err = TM_ERR_NONE;
	if (!cluster_id_ok(r, m->cluster_id))
		err = TM_ERR_INCONSISTENT_CLUSTER_ID;
	else if (q->current_leader_epoch < r->epoch)
		err = TM_ERR_FENCED_LEADER_EPOCH;
	else if (q->current_leader_epoch > r->epoch)
		err = TM_ERR_UNKNOWN_LEADER_EPOCH;
	else if (r->role != RAFT_LEADER)
		err = TM_ERR_NOT_LEADER_OR_FOLLOWER;
	else if (q->fetch_offset < 0 || q->last_fetched_epoch < 0 ||
		 q->last_fetched_epoch > r->epoch || m->from != q->replica_id)
		err = TM_ERR_INVALID_REQUEST;
	if (err != TM_ERR_NONE) {
		fetch_resp_base(r, out, m->from, q, err);
		return;
	}

	struct raft_replica *s = find_replica(r, q->replica_id);
	bool voter = voter_index(r, q->replica_id) >= 0;
	s->last_fetch_ms = r->now_ms;
	s->begin_acked = true;
	if (s->parked) {
		/* A newer Fetch from the same replica: answer the old one first. */
		s->parked = false;
		respond_fetch(r, out, s, &s->parked_req);
	}

	if (q->fetch_offset < r->log_start) {
		struct raft_msg *rm = fetch_resp_base(r, out, s->id, q, TM_ERR_NONE);
		rm->u.fetch_resp.snapshot_offset = r->log_start;
		rm->u.fetch_resp.snapshot_epoch = r->snap_epoch;
		return;
	}
	if (q->fetch_offset > 0) {
		int32_t e;
		int64_t end;
		end_offset_for_epoch(r, q->last_fetched_epoch, &e, &end);
		if (e != q->last_fetched_epoch || end < q->fetch_offset) {
			struct raft_msg *rm = fetch_resp_base(r, out, s->id, q, TM_ERR_NONE);
			if (e < 0 || end < r->log_start) {
				/* The divergence lies inside our snapshot. */
				rm->u.fetch_resp.snapshot_offset = r->log_start;
				rm->u.fetch_resp.snapshot_epoch = r->snap_epoch;
			} else {
				rm->u.fetch_resp.diverging_epoch = e;
				rm->u.fetch_resp.diverging_end_offset = end;
			}
			return;
		}
	}

	/* The replica's log matches ours below fetch_offset, durably. */
	if (q->fetch_offset >= r->log_end)
		s->last_caught_up_ms = r->now_ms;
	else if (s->leader_end_at_fetch >= 0 && q->fetch_offset >= s->leader_end_at_fetch)
		s->last_caught_up_ms = s->last_fetch_ms;
	s->leader_end_at_fetch = r->log_end;
	if (q->fetch_offset > s->end_offset || !voter)
		s->end_offset = q->fetch_offset;
	if (voter)
		leader_update_hw(r, out);

	if (q->fetch_offset < r->log_end || s->hw_sent != r->hw) {
		respond_fetch(r, out, s, q);
		return;
	}
	int64_t wait = q->max_wait_ms > 0 ? q->max_wait_ms : 0;
	wait = TM_MIN(wait, r->cfg.fetch_max_wait_ms);
	if (wait == 0) {
		respond_fetch(r, out, s, q);
		return;
	}
	s->parked = true;
	s->parked_req = *q;
	s->parked_deadline_ms = r->now_ms + wait;
}

static void on_fetch_snapshot_req(struct raft *r, struct raft_actions *out,
				  const struct raft_msg *m)
{
	const struct raft_fetch_snapshot_req *q = &m->u.snap_req;
	int16_t err = TM_ERR_NONE;
	if (!cluster_id_ok(r, m->cluster_id))
		err = TM_ERR_INCONSISTENT_CLUSTER_ID;
	else if (q->current_leader_epoch < r->epoch)
		err = TM_ERR_FENCED_LEADER_EPOCH;
	else if (q->current_leader_epoch > r->epoch)
		err = TM_ERR_UNKNOWN_LEADER_EPOCH;
	else if (r->role != RAFT_LEADER)
		err = TM_ERR_NOT_LEADER_OR_FOLLOWER;
	else if (r->log_start == 0 || q->snapshot_offset != r->log_start ||
		 q->snapshot_epoch != r->snap_epoch)
		err = TM_ERR_SNAPSHOT_NOT_FOUND;
	else if (q->position < 0)
		err = TM_ERR_POSITION_OUT_OF_RANGE;
	if (err == TM_ERR_NONE) {
		struct raft_replica *s = find_replica(r, q->replica_id);
		s->last_fetch_ms = r->now_ms;
		s->begin_acked = true;
	}
	struct raft_msg *rm = push_send(r, out, m->from, RAFT_MSG_FETCH_SNAPSHOT_RESP);
	struct raft_fetch_snapshot_resp *p = &rm->u.snap_resp;
	p->error = err;
	p->leader_id = r->leader_id;
	p->leader_epoch = r->epoch;
	p->snapshot_offset = q->snapshot_offset;
	p->snapshot_epoch = q->snapshot_epoch;
	p->position = q->position;
	int32_t max = q->max_bytes > 0 ? q->max_bytes : r->cfg.snapshot_chunk_bytes;
	p->max_bytes = err == TM_ERR_NONE ? TM_MIN(max, r->cfg.snapshot_chunk_bytes) : 0;
}

/* ---- Fetch (follower side) ------------------------------------------------ */

static void truncate_log(struct raft *r, struct raft_actions *out, int64_t offset)
{
	TM_ASSERT(offset >= r->log_start);
	TM_ASSERT(offset >= r->hw); /* committed entries are never truncated */
	struct raft_action *a = push(out, RAFT_ACT_TRUNCATE);
	a->u.truncate_offset = offset;
	r->log_end = offset;
	if (r->persisted_end > offset)
		r->persisted_end = offset;
	epochs_truncate(r, offset);
}

/* Handles an error response: learn the leader if it names one. */
static void on_fetch_error(struct raft *r, struct raft_actions *out, int32_t leader,
			   int32_t epoch)
{
	r->fetch_inflight = false;
	r->fetch_not_before_ms = r->now_ms + r->cfg.retry_backoff_ms;
	if (epoch == r->epoch && leader != RAFT_NODE_NONE && leader != r->cfg.node_id &&
	    r->leader_id == RAFT_NODE_NONE && r->role != RAFT_CANDIDATE &&
	    r->role != RAFT_LEADER && voter_index(r, leader) >= 0)
		become_follower(r, out, epoch, leader);
}

static bool follower_expects(const struct raft *r, const struct raft_msg *m, int32_t epoch)
{
	return r->role == RAFT_FOLLOWER && r->fetch_inflight && m->from == r->leader_id &&
	       epoch == r->epoch;
}

static int append_fetched(struct raft *r, struct raft_actions *out,
			  const struct raft_fetch_resp *p)
{
	for (uint32_t i = 0; i < p->n_entries; i++) {
		const struct raft_entry *e = &p->entries[i];
		if (e->offset != r->log_end || e->count == 0 ||
		    e->count > RAFT_ENTRY_RECORDS_MAX || e->epoch < last_epoch(r) ||
		    e->epoch > r->epoch || e->epoch <= 0 || e->len > r->cfg.entry_bytes_max ||
		    (e->len && !e->payload))
			return -EBADMSG;
		append_entry(r, out, e);
	}
	return 0;
}

static void on_fetch_resp(struct raft *r, struct raft_actions *out, const struct raft_msg *m)
{
	const struct raft_fetch_resp *p = &m->u.fetch_resp;
	if (response_is_foreign(p->error))
		return;
	if (p->leader_epoch > r->epoch) {
		observe_epoch(r, out, p->leader_epoch, p->leader_id);
		return;
	}
	if (p->error != TM_ERR_NONE) {
		if (r->fetch_inflight && !r->snap_fetching)
			on_fetch_error(r, out, p->leader_id, p->leader_epoch);
		return;
	}
	if (!follower_expects(r, m, p->leader_epoch) || r->snap_fetching ||
	    p->fetch_offset != r->log_end || p->last_fetched_epoch != last_epoch(r))
		return; /* stale or duplicate: answers a position we left */
	r->fetch_inflight = false;
	r->fetch_deadline_ms = r->now_ms + r->cfg.fetch_timeout_ms;
	r->leader_contact_ms = r->now_ms;

	if (p->snapshot_offset >= 0) {
		if (p->snapshot_offset <= r->log_start || p->snapshot_offset < r->hw ||
		    p->snapshot_epoch <= 0 || p->snapshot_epoch > r->epoch)
			return;
		r->snap_fetching = true;
		r->snap_fetch_offset = p->snapshot_offset;
		r->snap_fetch_epoch = p->snapshot_epoch;
		r->snap_fetch_position = 0;
		send_fetch(r, out);
		return;
	}
	if (p->diverging_epoch >= 0) {
		int32_t e;
		int64_t end;
		end_offset_for_epoch(r, p->diverging_epoch, &e, &end);
		/* Same epoch: the logs agree up to where the shorter one ends.
		 * Otherwise cut back to the end of our own older epoch (a batch
		 * boundary of ours) and let the next Fetch narrow it down. */
		int64_t to = e == p->diverging_epoch ? TM_MIN(end, p->diverging_end_offset) : end;
		if (to < r->log_start || to < r->hw)
			return; /* would cut committed data: not a valid answer */
		if (to < r->log_end)
			truncate_log(r, out, to);
		send_fetch(r, out);
		return;
	}
	if (append_fetched(r, out, p) == 0 && p->high_watermark >= 0)
		set_hw(r, out, TM_MIN(p->high_watermark, r->log_end));
	send_fetch(r, out);
}

static void on_fetch_snapshot_resp(struct raft *r, struct raft_actions *out,
				   const struct raft_msg *m)
{
	const struct raft_fetch_snapshot_resp *p = &m->u.snap_resp;
	if (response_is_foreign(p->error))
		return;
	if (p->leader_epoch > r->epoch) {
		observe_epoch(r, out, p->leader_epoch, p->leader_id);
		return;
	}
	if (!follower_expects(r, m, p->leader_epoch) || !r->snap_fetching ||
	    p->snapshot_offset != r->snap_fetch_offset ||
	    p->snapshot_epoch != r->snap_fetch_epoch || p->position != r->snap_fetch_position)
		return;
	r->fetch_inflight = false;
	if (p->error != TM_ERR_NONE || p->size <= 0 || p->position + (int64_t)p->len > p->size ||
	    (p->len == 0 && p->position < p->size) || (p->len && !p->bytes)) {
		/* Gone or malformed: start over with a plain Fetch. */
		r->snap_fetching = false;
		r->fetch_not_before_ms = r->now_ms + r->cfg.retry_backoff_ms;
		return;
	}
	r->fetch_deadline_ms = r->now_ms + r->cfg.fetch_timeout_ms;
	r->leader_contact_ms = r->now_ms;
	bool done = p->position + (int64_t)p->len == p->size;
	struct raft_action *a = push(out, RAFT_ACT_SNAPSHOT_CHUNK);
	a->u.chunk.snapshot_offset = p->snapshot_offset;
	a->u.chunk.snapshot_epoch = p->snapshot_epoch;
	a->u.chunk.position = p->position;
	a->u.chunk.size = p->size;
	a->u.chunk.bytes = p->bytes;
	a->u.chunk.len = p->len;
	a->u.chunk.done = done;
	r->snap_fetch_position += p->len;
	if (done) {
		/* The driver now holds the snapshot and an empty log after it. */
		r->snap_fetching = false;
		r->log_start = r->log_end = r->persisted_end = p->snapshot_offset;
		r->snap_epoch = p->snapshot_epoch;
		r->n_epochs = 0;
		set_hw(r, out, p->snapshot_offset);
	}
	send_fetch(r, out);
}

/* ---- timers --------------------------------------------------------------- */

static void leader_tick(struct raft *r, struct raft_actions *out)
{
	/* Check-quorum: Kafka's window is 1.5 x the fetch timeout. */
	int64_t window = r->cfg.fetch_timeout_ms + r->cfg.fetch_timeout_ms / 2;
	if (r->now_ms - r->leader_since_ms >= window) {
		uint32_t alive = 1;
		for (uint32_t i = 0; i < r->cfg.n_voters; i++) {
			const struct raft_replica *s = &r->voter_state[i];
			if ((int)i != r->self_voter_idx && s->last_fetch_ms >= 0 &&
			    r->now_ms - s->last_fetch_ms < window)
				alive++;
		}
		if (alive < majority(r)) {
			become_resigned(r, out);
			return;
		}
	}
	complete_parked(r, out, true);
	for (uint32_t i = 0; i < r->cfg.n_voters; i++) {
		struct raft_replica *s = &r->voter_state[i];
		if ((int)i != r->self_voter_idx && !s->begin_acked &&
		    r->now_ms - s->begin_sent_ms >= r->cfg.request_timeout_ms)
			send_begin(r, out, i);
	}
}

static void tick(struct raft *r, struct raft_actions *out)
{
	switch (r->role) {
	case RAFT_LEADER:
		leader_tick(r, out);
		return;
	case RAFT_FOLLOWER:
		if (r->now_ms >= r->fetch_deadline_ms) {
			if (is_voter(r))
				become_prospective(r, out);
			else
				become_unattached(r, out, r->epoch);
			return;
		}
		break;
	case RAFT_UNATTACHED:
	case RAFT_VOTED:
	case RAFT_PROSPECTIVE:
	case RAFT_CANDIDATE:
	case RAFT_RESIGNED:
		if (is_voter(r) && r->now_ms >= r->election_deadline_ms) {
			become_prospective(r, out);
			return;
		}
		break;
	}
	if (r->fetch_inflight && r->now_ms - r->fetch_sent_ms >= r->cfg.request_timeout_ms)
		r->fetch_inflight = false; /* lost: ask again */
	send_fetch(r, out);
}

/* ---- events ---------------------------------------------------------------- */

static int on_propose(struct raft *r, const struct raft_event *ev, struct raft_actions *out)
{
	out->propose_offset = -1;
	if (r->role != RAFT_LEADER) {
		out->propose_error = TM_ERR_NOT_LEADER_OR_FOLLOWER;
		return 0;
	}
	if (ev->u.propose.len > r->cfg.entry_bytes_max) {
		out->propose_error = TM_ERR_MESSAGE_TOO_LARGE;
		return 0;
	}
	if (ev->u.propose.count == 0 || ev->u.propose.count > RAFT_ENTRY_RECORDS_MAX ||
	    (ev->u.propose.len && !ev->u.propose.payload))
		return -EINVAL;
	struct raft_entry e = {
		.offset = r->log_end,
		.epoch = r->epoch,
		.count = ev->u.propose.count,
		.payload = ev->u.propose.payload,
		.len = ev->u.propose.len,
	};
	append_entry(r, out, &e);
	out->propose_offset = e.offset;
	out->propose_error = TM_ERR_NONE;
	complete_parked(r, out, false);
	return 0;
}

static void on_persisted(struct raft *r, struct raft_actions *out, int64_t end)
{
	if (end > r->log_end)
		end = r->log_end;
	if (end <= r->persisted_end)
		return;
	r->persisted_end = end;
	if (r->role == RAFT_LEADER)
		leader_update_hw(r, out);
	else
		send_fetch(r, out);
}

static int on_snapshot_taken(struct raft *r, int64_t offset, int32_t epoch)
{
	if (offset <= r->log_start)
		return 0; /* not newer than what we have */
	if (offset > r->hw || offset > r->log_end)
		return -EINVAL;
	int32_t e;
	int64_t end;
	end_offset_for_epoch(r, epoch, &e, &end);
	/* The entry at offset-1 must carry `epoch`. */
	if (e != epoch || end < offset)
		return -EINVAL;
	for (uint32_t i = 0; i < r->n_epochs; i++)
		if (r->epochs[i].epoch == epoch && r->epochs[i].start_offset >= offset)
			return -EINVAL;
	r->log_start = offset;
	r->snap_epoch = epoch;
	if (r->persisted_end < offset)
		r->persisted_end = offset; /* the snapshot file itself is durable */
	epochs_prune_below(r, offset);
	return 0;
}

static void on_recv(struct raft *r, struct raft_actions *out, const struct raft_msg *m)
{
	switch (m->type) {
	case RAFT_MSG_VOTE_REQ: on_vote_req(r, out, m); break;
	case RAFT_MSG_VOTE_RESP: on_vote_resp(r, out, m); break;
	case RAFT_MSG_BEGIN_EPOCH_REQ: on_begin_req(r, out, m); break;
	case RAFT_MSG_BEGIN_EPOCH_RESP: on_epoch_resp(r, out, m); break;
	case RAFT_MSG_END_EPOCH_REQ: on_end_req(r, out, m); break;
	case RAFT_MSG_END_EPOCH_RESP: on_epoch_resp(r, out, m); break;
	case RAFT_MSG_FETCH_REQ: on_fetch_req(r, out, m); break;
	case RAFT_MSG_FETCH_RESP: on_fetch_resp(r, out, m); break;
	case RAFT_MSG_FETCH_SNAPSHOT_REQ: on_fetch_snapshot_req(r, out, m); break;
	case RAFT_MSG_FETCH_SNAPSHOT_RESP: on_fetch_snapshot_resp(r, out, m); break;
	}
}

#ifdef TM_DEBUG
/* Debug and simulator builds re-check the core's own invariants each step. */
static void check_invariants(const struct raft *r)
{
	TM_ASSERT(r->log_start <= r->hw);
	TM_ASSERT(r->hw <= r->log_end);
	TM_ASSERT(r->persisted_end <= r->log_end);
	TM_ASSERT(r->persisted_end >= r->log_start);
	for (uint32_t i = 1; i < r->n_epochs; i++) {
		TM_ASSERT(r->epochs[i - 1].epoch < r->epochs[i].epoch);
		TM_ASSERT(r->epochs[i - 1].start_offset < r->epochs[i].start_offset);
	}
	if (r->n_epochs)
		TM_ASSERT(r->epochs[r->n_epochs - 1].start_offset < r->log_end);
	TM_ASSERT(last_epoch(r) <= r->epoch);
	if (r->role == RAFT_LEADER) {
		TM_ASSERT(r->leader_id == r->cfg.node_id);
		TM_ASSERT(r->voted_id == r->cfg.node_id);
	}
	if (r->role == RAFT_CANDIDATE)
		TM_ASSERT(r->voted_id == r->cfg.node_id);
	if (r->role == RAFT_FOLLOWER)
		TM_ASSERT(r->leader_id != RAFT_NODE_NONE && r->leader_id != r->cfg.node_id);
}
#else
static void check_invariants(const struct raft *r)
{
	(void)r;
}
#endif

int raft_step(struct raft *r, const struct raft_event *ev, struct raft_actions *out)
{
	if (ev->now_ms > r->now_ms)
		r->now_ms = ev->now_ms;
	int rc = 0;
	if (!r->started) {
		/* A single voter wins its election without asking anyone. */
		r->started = true;
		emit_role(r, out);
		if (is_voter(r) && r->cfg.n_voters == 1 && r->role != RAFT_LEADER)
			become_prospective(r, out);
		else if (r->role == RAFT_FOLLOWER)
			send_fetch(r, out);
	}
	switch (ev->type) {
	case RAFT_EV_TICK:
		tick(r, out);
		break;
	case RAFT_EV_RECV:
		if (!ev->u.recv)
			return -EINVAL;
		on_recv(r, out, ev->u.recv);
		break;
	case RAFT_EV_PERSISTED:
		on_persisted(r, out, ev->u.persisted_end);
		break;
	case RAFT_EV_PROPOSE:
		rc = on_propose(r, ev, out);
		break;
	case RAFT_EV_SNAPSHOT_TAKEN:
		rc = on_snapshot_taken(r, ev->u.snapshot.offset, ev->u.snapshot.epoch);
		break;
	case RAFT_EV_SHUTDOWN:
		if (r->role == RAFT_LEADER)
			become_resigned(r, out);
		break;
	default:
		return -EINVAL;
	}
	check_invariants(r);
	if (rc)
		return rc;
	return out->err;
}

/* ---- init, getters ---------------------------------------------------------- */

static int check_config(const struct raft_config *cfg)
{
	if (cfg->node_id < 0 || cfg->n_voters == 0 || cfg->n_voters > RAFT_VOTERS_MAX)
		return -EINVAL;
	if (memchr(cfg->cluster_id, 0, sizeof(cfg->cluster_id)) == NULL)
		return -EINVAL;
	for (uint32_t i = 0; i < cfg->n_voters; i++) {
		if (cfg->voters[i] < 0)
			return -EINVAL;
		for (uint32_t j = 0; j < i; j++)
			if (cfg->voters[j] == cfg->voters[i])
				return -EINVAL;
	}
	if (cfg->election_timeout_ms <= 0 || cfg->fetch_timeout_ms <= 0 ||
	    cfg->request_timeout_ms <= 0 || cfg->fetch_max_wait_ms < 0 ||
	    cfg->end_quorum_backoff_ms < 0 || cfg->retry_backoff_ms < 0 ||
	    cfg->fetch_max_bytes <= 0 || cfg->snapshot_chunk_bytes <= 0 ||
	    cfg->entry_bytes_max == 0)
		return -EINVAL;
	return 0;
}

static int restore(struct raft *r, const struct raft_persisted *p)
{
	if (p->epoch < 0 || p->log_start_offset < 0 || p->log_end_offset < p->log_start_offset ||
	    p->snapshot_epoch < 0 || p->snapshot_epoch > p->epoch ||
	    (p->log_start_offset > 0) != (p->snapshot_epoch > 0) ||
	    p->n_epochs > RAFT_EPOCHS_MAX || (p->n_epochs && !p->epochs))
		return -EINVAL;
	r->epoch = p->epoch;
	r->voted_id = p->voted_id >= 0 ? p->voted_id : RAFT_NODE_NONE;
	r->leader_id = p->leader_id >= 0 ? p->leader_id : RAFT_NODE_NONE;
	r->log_start = p->log_start_offset;
	r->snap_epoch = p->snapshot_epoch;
	r->log_end = r->persisted_end = p->log_end_offset;
	r->hw = r->log_start;
	int32_t prev_epoch = p->snapshot_epoch;
	int64_t prev_start = -1;
	for (uint32_t i = 0; i < p->n_epochs; i++) {
		const struct raft_epoch_start *e = &p->epochs[i];
		if (e->epoch < prev_epoch || (i && e->epoch == prev_epoch) || e->epoch > p->epoch ||
		    e->start_offset <= prev_start)
			return -EINVAL;
		/* A checkpoint written before recovery cut a torn tail may name
		 * epochs that now start past the log end: they are gone. */
		if (e->start_offset >= p->log_end_offset)
			break;
		int rc = epochs_push(r, e->epoch, e->start_offset);
		if (rc)
			return rc;
		prev_epoch = e->epoch;
		prev_start = e->start_offset;
	}
	if (r->log_end > r->log_start &&
	    (!r->n_epochs || r->epochs[0].start_offset > r->log_start))
		return -EINVAL; /* entries whose epoch we do not know */
	epochs_prune_below(r, r->log_start);
	return 0;
}

int raft_init(struct raft *r, const struct raft_config *cfg, uint64_t seed,
	      const struct raft_persisted *restored, int64_t now_ms)
{
	memset(r, 0, sizeof(*r));
	int rc = check_config(cfg);
	if (rc)
		return rc;
	r->cfg = *cfg;
	r->self_voter_idx = voter_index(r, cfg->node_id);
	r->prng = seed;
	r->now_ms = now_ms;
	r->voted_id = RAFT_NODE_NONE;
	r->leader_id = RAFT_NODE_NONE;
	r->leader_contact_ms = -1;
	if (restored) {
		rc = restore(r, restored);
		if (rc) {
			raft_deinit(r);
			return rc;
		}
	}
	/* Roles come back from quorum-state; a leader never resumes its epoch. */
	if (r->leader_id == cfg->node_id && is_voter(r)) {
		r->role = RAFT_RESIGNED;
	} else if (r->leader_id != RAFT_NODE_NONE) {
		r->role = RAFT_FOLLOWER;
		r->fetch_deadline_ms = now_ms + cfg->fetch_timeout_ms;
	} else if (r->voted_id != RAFT_NODE_NONE && r->voted_id != cfg->node_id) {
		r->role = RAFT_VOTED;
	} else {
		r->role = RAFT_UNATTACHED;
	}
	r->election_deadline_ms = now_ms + random_election_timeout(r);
	return 0;
}

void raft_deinit(struct raft *r)
{
	free(r->epochs);
	r->epochs = NULL;
	r->n_epochs = r->cap_epochs = 0;
}

enum raft_role raft_role(const struct raft *r) { return r->role; }
int32_t raft_epoch(const struct raft *r) { return r->epoch; }
int32_t raft_leader_id(const struct raft *r) { return r->leader_id; }
int32_t raft_voted_id(const struct raft *r) { return r->voted_id; }
int64_t raft_high_watermark(const struct raft *r) { return r->hw; }
int64_t raft_log_end_offset(const struct raft *r) { return r->log_end; }
int64_t raft_log_start_offset(const struct raft *r) { return r->log_start; }

static void replica_info(const struct raft *r, const struct raft_replica *s,
			 struct raft_replica_info *o)
{
	o->replica_id = s->id;
	o->log_end_offset = s->end_offset;
	o->last_fetch_ms = s->last_fetch_ms;
	o->last_caught_up_ms = s->last_caught_up_ms;
	if (s->id == r->cfg.node_id) {
		o->log_end_offset = r->log_end;
		o->last_fetch_ms = r->now_ms;
		o->last_caught_up_ms = r->now_ms;
	}
}

void raft_describe_quorum(const struct raft *r, struct raft_quorum_info *out)
{
	memset(out, 0, sizeof(*out));
	out->leader_id = r->leader_id;
	out->leader_epoch = r->epoch;
	out->high_watermark = r->hw;
	if (r->role != RAFT_LEADER) {
		out->error = TM_ERR_NOT_LEADER_OR_FOLLOWER;
		return;
	}
	for (uint32_t i = 0; i < r->cfg.n_voters; i++)
		replica_info(r, &r->voter_state[i], &out->voters[i]);
	out->n_voters = r->cfg.n_voters;
	for (uint32_t i = 0; i < r->n_observers; i++)
		replica_info(r, &r->observer_state[i], &out->observers[i]);
	out->n_observers = r->n_observers;
}
