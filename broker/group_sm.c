/*
 * group_sm.c — the classic consumer-group state machine; see group_sm.h.
 *
 * The rules follow Apache Kafka's GroupCoordinator (the classic protocol):
 * which JoinGroup is accepted when the group is full, the MEMBER_ID_REQUIRED
 * handshake, static members replacing their old member id, the initial
 * delayed join of an empty group, pending SyncGroups that expire after the
 * rebalance timeout, and which error a stale member sees.  Where Kafka drops
 * a superseded waiting request without an answer, Tidemark answers it with
 * REBALANCE_IN_PROGRESS so that no request hangs.
 *
 * Callbacks (struct gsm_ops) run while the group is being changed; they
 * must only record or encode the answer, never call back into this module
 * for the same group.
 */
#include "broker/group_sm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_map.h"

const char *gsm_state_name(enum gsm_state s)
{
	switch (s) {
	case GSM_EMPTY:
		return "Empty";
	case GSM_PREPARING_REBALANCE:
		return "PreparingRebalance";
	case GSM_COMPLETING_REBALANCE:
		return "CompletingRebalance";
	case GSM_STABLE:
		return "Stable";
	case GSM_DEAD:
		return "Dead";
	}
	return "Unknown";
}

/* ---- small helpers ---------------------------------------------------- */

static char *sdup(const char *s, size_t len)
{
	char *p = malloc(len + 1);
	if (!p)
		return NULL;
	if (len)
		memcpy(p, s, len);
	p[len] = 0;
	return p;
}

static uint8_t *bdup(const uint8_t *b, int32_t len)
{
	uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
	if (p && len > 0)
		memcpy(p, b, (size_t)len);
	return p;
}

static bool seq(const char *a, const char *s, size_t len)
{
	return a && strlen(a) == len && (len == 0 || memcmp(a, s, len) == 0);
}

static int32_t max_size(const struct gsm_ctx *c)
{
	int32_t m = c->cfg.max_size;
	return m > 0 && m < GSM_MEMBERS_HARD_MAX ? m : GSM_MEMBERS_HARD_MAX;
}

static void set_state(struct gsm_group *g, enum gsm_state s, int64_t now_ms)
{
	g->state = s;
	g->state_since_ms = now_ms;
}

static int find_index(const struct gsm_group *g, const char *id, size_t len)
{
	for (int32_t i = 0; i < g->n_members; i++)
		if (seq(g->members[i]->member_id, id, len))
			return i;
	return -1;
}

struct gsm_member *gsm_find_member(const struct gsm_group *g, const char *member_id, size_t len)
{
	int i = find_index(g, member_id, len);
	return i < 0 ? NULL : g->members[i];
}

static struct gsm_member *find_static(const struct gsm_group *g, const char *inst, size_t len)
{
	for (int32_t i = 0; i < g->n_members; i++)
		if (g->members[i]->instance_id && seq(g->members[i]->instance_id, inst, len))
			return g->members[i];
	return NULL;
}

static int find_pending(const struct gsm_group *g, const char *id, size_t len)
{
	for (int32_t i = 0; i < g->n_pending; i++)
		if (seq(g->pending[i].member_id, id, len))
			return i;
	return -1;
}

static void remove_pending_at(struct gsm_group *g, int i)
{
	free(g->pending[i].member_id);
	g->pending[i] = g->pending[g->n_pending - 1];
	g->n_pending--;
}

/* Kafka's isStaticMemberFenced: the instance id belongs to another member id. */
static bool static_fenced(const struct gsm_group *g, const char *inst, size_t inst_len, const char *id, size_t len)
{
	if (!inst)
		return false;
	const struct gsm_member *m = find_static(g, inst, inst_len);
	return m && !seq(m->member_id, id, len);
}

static void protocols_free(struct gsm_protocol *p, int32_t n)
{
	for (int32_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].metadata);
	}
	free(p);
}

static void member_free(struct gsm_member *m)
{
	if (!m)
		return;
	free(m->member_id);
	free(m->instance_id);
	free(m->client_id);
	free(m->client_host);
	protocols_free(m->protocols, m->n_protocols);
	free(m->assignment);
	free(m);
}

static int protocols_copy(const struct gsm_proto_in *in, int32_t n, struct gsm_protocol **out)
{
	struct gsm_protocol *p = calloc(n > 0 ? (size_t)n : 1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	for (int32_t i = 0; i < n; i++) {
		p[i].name = sdup(in[i].name, in[i].name_len);
		p[i].metadata = bdup(in[i].metadata, in[i].metadata_len);
		p[i].metadata_len = in[i].metadata_len > 0 ? in[i].metadata_len : 0;
		if (!p[i].name || !p[i].metadata) {
			protocols_free(p, i + 1);
			return -ENOMEM;
		}
	}
	*out = p;
	return 0;
}

static bool supported_by_all(const struct gsm_group *g, const char *name, size_t len)
{
	for (int32_t i = 0; i < g->n_members; i++) {
		const struct gsm_member *m = g->members[i];
		bool ok = false;
		for (int32_t j = 0; j < m->n_protocols && !ok; j++)
			ok = seq(m->protocols[j].name, name, len);
		if (!ok)
			return false;
	}
	return true;
}

/* Kafka's supportsProtocols: an empty group takes any non-empty type and
 * protocol list; otherwise the type must match and one of the protocols
 * must be supported by every member. */
static bool supports_protocols(const struct gsm_group *g, const struct gsm_join_req *r)
{
	if (r->protocol_type_len == 0 || r->n_protocols <= 0)
		return false;
	if (g->n_members == 0)
		return true;
	if (!g->protocol_type || !seq(g->protocol_type, r->protocol_type, r->protocol_type_len))
		return false;
	for (int32_t i = 0; i < r->n_protocols; i++)
		if (supported_by_all(g, r->protocols[i].name, r->protocols[i].name_len))
			return true;
	return false;
}

static bool member_matches(const struct gsm_member *m, const struct gsm_join_req *r)
{
	if (m->n_protocols != r->n_protocols)
		return false;
	for (int32_t i = 0; i < r->n_protocols; i++) {
		const struct gsm_protocol *p = &m->protocols[i];
		const struct gsm_proto_in *q = &r->protocols[i];
		int32_t qlen = q->metadata_len > 0 ? q->metadata_len : 0;
		if (!seq(p->name, q->name, q->name_len) || p->metadata_len != qlen)
			return false;
		if (qlen && memcmp(p->metadata, q->metadata, (size_t)qlen))
			return false;
	}
	return true;
}

const char *gsm_select_protocol(const struct gsm_group *g)
{
	if (g->n_members == 0)
		return NULL;
	/* Candidates: protocols every member supports, in the first member's
	 * order (which also breaks ties between equal vote counts). */
	const struct gsm_member *first = g->members[0];
	const char *best = NULL;
	int32_t best_votes = -1;
	for (int32_t i = 0; i < first->n_protocols; i++) {
		const char *cand = first->protocols[i].name;
		if (!supported_by_all(g, cand, strlen(cand)))
			continue;
		int32_t votes = 0;
		for (int32_t k = 0; k < g->n_members; k++) {
			/* each member votes for its most preferred candidate */
			const struct gsm_member *m = g->members[k];
			for (int32_t j = 0; j < m->n_protocols; j++) {
				const char *p = m->protocols[j].name;
				if (supported_by_all(g, p, strlen(p))) {
					if (!strcmp(p, cand))
						votes++;
					break;
				}
			}
		}
		if (votes > best_votes) {
			best = cand;
			best_votes = votes;
		}
	}
	return best;
}

void gsm_member_metadata(const struct gsm_group *g, const struct gsm_member *m, const uint8_t **data,
			 int32_t *len)
{
	*data = NULL;
	*len = 0;
	if (!g->protocol_name)
		return;
	for (int32_t i = 0; i < m->n_protocols; i++)
		if (!strcmp(m->protocols[i].name, g->protocol_name)) {
			*data = m->protocols[i].metadata;
			*len = m->protocols[i].metadata_len;
			return;
		}
}

static int32_t group_rebalance_timeout(const struct gsm_group *g)
{
	int32_t t = 0;
	for (int32_t i = 0; i < g->n_members; i++)
		if (g->members[i]->rebalance_timeout_ms > t)
			t = g->members[i]->rebalance_timeout_ms;
	return t;
}

/* Kafka's generateMemberId: clientId (or group.instance.id) + "-" + a UUID.
 * The UUID here comes from the coordinator's seed and a counter, so ids are
 * unique per coordinator run and reproducible in tests. */
static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static char *new_member_id(struct gsm_ctx *c, const char *prefix, size_t len)
{
	uint64_t x = c->id_seed ^ (c->id_counter++ * 0xd1b54a32d192ed03ULL);
	uint64_t hi = splitmix64(&x), lo = splitmix64(&x);
	if (len > GSM_ID_MAX_BYTES)
		len = GSM_ID_MAX_BYTES;
	size_t n = len + 1 + 36 + 1;
	char *id = malloc(n);
	if (!id)
		return NULL;
	snprintf(id, n, "%.*s-%08x-%04x-%04x-%04x-%012llx", (int)len, prefix, (unsigned)(hi >> 32),
		 (unsigned)(hi >> 16) & 0xffff, (unsigned)hi & 0xffff, (unsigned)(lo >> 48) & 0xffff,
		 (unsigned long long)(lo & 0xffffffffffffULL));
	return id;
}

/* ---- answering -------------------------------------------------------- */

static void answer_join_error(struct gsm_ctx *c, const struct gsm_group *g, void *waiter, int16_t err,
			      const char *member_id)
{
	struct gsm_join_result r = { .error = err, .generation = -1, .member_id = member_id ? member_id : "" };
	c->ops->join_done(c->env, waiter, g, &r);
}

static void answer_join_current(struct gsm_ctx *c, const struct gsm_group *g, void *waiter,
				const struct gsm_member *m, bool with_members)
{
	struct gsm_join_result r = {
		.error = TM_ERR_NONE,
		.generation = g->generation,
		.member_id = m->member_id,
		.protocol_type = g->protocol_type,
		.protocol_name = g->protocol_name,
		.leader_id = g->leader_id,
		.members_included = with_members,
	};
	c->ops->join_done(c->env, waiter, g, &r);
}

static void answer_sync(struct gsm_ctx *c, const struct gsm_group *g, void *waiter, int16_t err,
			const struct gsm_member *m)
{
	struct gsm_sync_result r = { .error = err };
	if (err == TM_ERR_NONE) {
		r.protocol_type = g->protocol_type;
		r.protocol_name = g->protocol_name;
		r.assignment = m->assignment;
		r.assignment_len = m->assignment_len;
	}
	c->ops->sync_done(c->env, waiter, &r);
}

/* Hands the member's waiting JoinGroup its answer (or an error). */
static void take_join_waiter(struct gsm_group *g, struct gsm_member *m, void **waiter)
{
	*waiter = m->join_waiter;
	if (m->join_waiter) {
		m->join_waiter = NULL;
		g->n_awaiting_join--;
	}
}

static void set_join_waiter(struct gsm_ctx *c, struct gsm_group *g, struct gsm_member *m, void *waiter)
{
	void *old;
	take_join_waiter(g, m, &old);
	if (old)
		answer_join_error(c, g, old, TM_ERR_REBALANCE_IN_PROGRESS, m->member_id);
	m->join_waiter = waiter;
	if (waiter)
		g->n_awaiting_join++;
}

static void store(struct gsm_ctx *c, struct gsm_group *g)
{
	if (c->ops->store)
		c->ops->store(c->env, g, false);
}

/* ---- membership ------------------------------------------------------- */

static void set_leader(struct gsm_group *g, const char *id)
{
	free(g->leader_id);
	g->leader_id = id ? sdup(id, strlen(id)) : NULL;
}

static bool is_leader(const struct gsm_group *g, const char *id)
{
	return g->leader_id && id && !strcmp(g->leader_id, id);
}

/* Removes members[i]; answers its waiting requests with UNKNOWN_MEMBER_ID. */
static void remove_member_at(struct gsm_ctx *c, struct gsm_group *g, int32_t i)
{
	struct gsm_member *m = g->members[i];
	void *jw;
	take_join_waiter(g, m, &jw);
	if (jw)
		answer_join_error(c, g, jw, TM_ERR_UNKNOWN_MEMBER_ID, "");
	if (m->sync_waiter) {
		void *sw = m->sync_waiter;
		m->sync_waiter = NULL;
		answer_sync(c, g, sw, TM_ERR_UNKNOWN_MEMBER_ID, m);
	}
	memmove(&g->members[i], &g->members[i + 1], sizeof(g->members[0]) * (size_t)(g->n_members - i - 1));
	g->n_members--;
	if (is_leader(g, m->member_id))
		set_leader(g, g->n_members ? g->members[0]->member_id : NULL);
	member_free(m);
}

static int add_member(struct gsm_group *g, struct gsm_member *m)
{
	if (g->n_members == g->cap_members) {
		int32_t cap = g->cap_members ? g->cap_members * 2 : 4;
		struct gsm_member **p = realloc(g->members, sizeof(*p) * (size_t)cap);
		if (!p)
			return -ENOMEM;
		g->members = p;
		g->cap_members = cap;
	}
	g->members[g->n_members++] = m;
	if (!g->leader_id)
		set_leader(g, m->member_id);
	return 0;
}

/* ---- rebalance -------------------------------------------------------- */

static void try_complete_join(struct gsm_ctx *c, struct gsm_group *g, int64_t now_ms);

/* Every member awaiting SyncGroup gets `err`; assignments are cleared. */
static void reset_and_propagate_error(struct gsm_ctx *c, struct gsm_group *g, int16_t err)
{
	for (int32_t i = 0; i < g->n_members; i++) {
		struct gsm_member *m = g->members[i];
		free(m->assignment);
		m->assignment = NULL;
		m->assignment_len = 0;
		if (m->sync_waiter) {
			void *w = m->sync_waiter;
			m->sync_waiter = NULL;
			answer_sync(c, g, w, err, m);
		}
	}
}

static void prepare_rebalance(struct gsm_ctx *c, struct gsm_group *g, int64_t now_ms)
{
	if (g->state == GSM_COMPLETING_REBALANCE)
		reset_and_propagate_error(c, g, TM_ERR_REBALANCE_IN_PROGRESS);
	g->sync_deadline_ms = -1;
	g->storing = false; /* a pending store's completion is ignored */
	for (int32_t i = 0; i < g->n_members; i++)
		g->members[i]->pending_sync = false;
	int32_t rt = group_rebalance_timeout(g);
	if (g->state == GSM_EMPTY) {
		/* InitialDelayedJoin: wait group.initial.rebalance.delay.ms, and
		 * again while new members keep arriving, up to the rebalance timeout. */
		int32_t delay = c->cfg.initial_rebalance_delay_ms;
		g->initial_delay = true;
		g->new_member_added = false;
		g->initial_remaining_ms = rt > delay ? rt - delay : 0;
		g->join_deadline_ms = now_ms + delay;
	} else {
		g->initial_delay = false;
		g->join_deadline_ms = now_ms + rt;
	}
	set_state(g, GSM_PREPARING_REBALANCE, now_ms);
}

static void maybe_prepare_rebalance(struct gsm_ctx *c, struct gsm_group *g, int64_t now_ms)
{
	if (g->state == GSM_STABLE || g->state == GSM_COMPLETING_REBALANCE || g->state == GSM_EMPTY)
		prepare_rebalance(c, g, now_ms);
}

static void complete_join(struct gsm_ctx *c, struct gsm_group *g, int64_t now_ms)
{
	/* Dynamic members that did not rejoin in time are dropped; static
	 * members stay (they come back under their instance id). */
	for (int32_t i = g->n_members - 1; i >= 0; i--) {
		struct gsm_member *m = g->members[i];
		if (!m->join_waiter && !m->instance_id)
			remove_member_at(c, g, i);
	}
	if (g->n_members > 0) {
		struct gsm_member *leader = g->leader_id ? gsm_find_member(g, g->leader_id, strlen(g->leader_id)) : NULL;
		if (!leader || !leader->join_waiter) {
			const char *nl = NULL;
			for (int32_t i = 0; i < g->n_members && !nl; i++)
				if (g->members[i]->join_waiter)
					nl = g->members[i]->member_id;
			if (!nl) {
				/* Only static members that have not rejoined: wait
				 * another rebalance timeout (their sessions expire
				 * meanwhile if they are gone). */
				g->initial_delay = false;
				g->join_deadline_ms = now_ms + group_rebalance_timeout(g);
				return;
			}
			set_leader(g, nl);
		}
	}
	g->generation++;
	free(g->protocol_name);
	g->protocol_name = NULL;
	g->initial_delay = false;
	if (g->n_members == 0) {
		set_leader(g, NULL);
		set_state(g, GSM_EMPTY, now_ms);
		store(c, g);
		return;
	}
	const char *p = gsm_select_protocol(g);
	g->protocol_name = p ? sdup(p, strlen(p)) : NULL;
	if (!g->protocol_name) {
		/* Out of memory (supports_protocols guarantees a candidate):
		 * fail the joins; the members retry. */
		for (int32_t i = 0; i < g->n_members; i++) {
			void *w;
			take_join_waiter(g, g->members[i], &w);
			if (w)
				answer_join_error(c, g, w, TM_ERR_COORDINATOR_NOT_AVAILABLE, g->members[i]->member_id);
		}
		g->join_deadline_ms = now_ms;
		return;
	}
	set_state(g, GSM_COMPLETING_REBALANCE, now_ms);
	for (int32_t i = 0; i < g->n_members; i++) {
		struct gsm_member *m = g->members[i];
		void *w;
		take_join_waiter(g, m, &w);
		if (w)
			answer_join_current(c, g, w, m, is_leader(g, m->member_id));
		m->deadline_ms = now_ms + m->session_timeout_ms;
		m->is_new = false;
		m->pending_sync = true;
	}
	g->sync_deadline_ms = now_ms + group_rebalance_timeout(g);
}

static void try_complete_join(struct gsm_ctx *c, struct gsm_group *g, int64_t now_ms)
{
	if (g->state != GSM_PREPARING_REBALANCE)
		return;
	if (g->initial_delay) {
		while (now_ms >= g->join_deadline_ms && g->new_member_added && g->initial_remaining_ms > 0) {
			int64_t d = c->cfg.initial_rebalance_delay_ms;
			if (d > g->initial_remaining_ms)
				d = g->initial_remaining_ms;
			g->new_member_added = false;
			g->initial_remaining_ms -= d;
			g->join_deadline_ms = now_ms + d;
		}
		if (now_ms >= g->join_deadline_ms)
			complete_join(c, g, now_ms);
		return;
	}
	bool all_joined = g->n_awaiting_join == g->n_members && g->n_pending == 0;
	if (all_joined || now_ms >= g->join_deadline_ms)
		complete_join(c, g, now_ms);
}

/* Kafka's removeMemberAndUpdateGroup. */
static void remove_member_and_update(struct gsm_ctx *c, struct gsm_group *g, int32_t i, int64_t now_ms)
{
	remove_member_at(c, g, i);
	switch (g->state) {
	case GSM_STABLE:
	case GSM_COMPLETING_REBALANCE:
		maybe_prepare_rebalance(c, g, now_ms);
		try_complete_join(c, g, now_ms);
		break;
	case GSM_PREPARING_REBALANCE:
		try_complete_join(c, g, now_ms);
		break;
	default:
		break;
	}
}

/* ---- JoinGroup -------------------------------------------------------- */

static struct gsm_member *member_new(const struct gsm_join_req *r, char *member_id, int64_t now_ms)
{
	struct gsm_member *m = calloc(1, sizeof(*m));
	if (!m)
		goto err_id;
	m->member_id = member_id;
	m->client_id = sdup(r->client_id ? r->client_id : "", r->client_id_len);
	m->client_host = sdup(r->client_host ? r->client_host : "", r->client_host_len);
	if (r->instance_id)
		m->instance_id = sdup(r->instance_id, r->instance_id_len);
	if (!m->client_id || !m->client_host || (r->instance_id && !m->instance_id))
		goto err_member;
	if (protocols_copy(r->protocols, r->n_protocols, &m->protocols))
		goto err_member;
	m->n_protocols = r->n_protocols;
	m->session_timeout_ms = r->session_timeout_ms;
	m->rebalance_timeout_ms = r->rebalance_timeout_ms;
	m->is_new = true;
	m->deadline_ms = now_ms + GSM_NEW_MEMBER_JOIN_TIMEOUT_MS;
	return m;
err_member:
	m->member_id = NULL;
	member_free(m);
err_id:
	free(member_id);
	return NULL;
}

/* Replaces the member's protocols and timeouts with the request's. */
static int member_update(struct gsm_member *m, const struct gsm_join_req *r)
{
	struct gsm_protocol *p;
	if (protocols_copy(r->protocols, r->n_protocols, &p))
		return -ENOMEM;
	protocols_free(m->protocols, m->n_protocols);
	m->protocols = p;
	m->n_protocols = r->n_protocols;
	m->session_timeout_ms = r->session_timeout_ms;
	m->rebalance_timeout_ms = r->rebalance_timeout_ms;
	return 0;
}

static int add_member_and_rebalance(struct gsm_ctx *c, struct gsm_group *g, const struct gsm_join_req *r,
				    char *member_id, void *waiter, int64_t now_ms)
{
	struct gsm_member *m = member_new(r, member_id, now_ms);
	if (!m)
		return -ENOMEM;
	if (g->n_members == 0) {
		/* The first member sets the group's protocol type. */
		char *t = sdup(r->protocol_type, r->protocol_type_len);
		if (!t) {
			member_free(m);
			return -ENOMEM;
		}
		free(g->protocol_type);
		g->protocol_type = t;
	}
	if (add_member(g, m)) {
		member_free(m);
		return -ENOMEM;
	}
	if (g->state == GSM_PREPARING_REBALANCE && g->initial_delay)
		g->new_member_added = true;
	set_join_waiter(c, g, m, waiter);
	maybe_prepare_rebalance(c, g, now_ms);
	return 0;
}

static int update_member_and_rebalance(struct gsm_ctx *c, struct gsm_group *g, struct gsm_member *m,
				       const struct gsm_join_req *r, void *waiter, int64_t now_ms)
{
	if (member_update(m, r))
		return -ENOMEM;
	set_join_waiter(c, g, m, waiter);
	maybe_prepare_rebalance(c, g, now_ms);
	return 0;
}

/* A static member rejoined without its member id: the old id is replaced
 * (and fenced); a rebalance happens only when it would change the protocol. */
static int update_static_member(struct gsm_ctx *c, struct gsm_group *g, struct gsm_member *m,
				const struct gsm_join_req *r, char *new_id, void *waiter, int64_t now_ms)
{
	char *old_leader = g->leader_id ? sdup(g->leader_id, strlen(g->leader_id)) : NULL;
	if (g->leader_id && !old_leader) {
		free(new_id);
		return -ENOMEM;
	}
	if (member_update(m, r)) {
		free(new_id);
		free(old_leader);
		return -ENOMEM;
	}
	/* Fence whatever the old incarnation is still waiting for. */
	void *jw;
	take_join_waiter(g, m, &jw);
	if (jw)
		answer_join_error(c, g, jw, TM_ERR_FENCED_INSTANCE_ID, m->member_id);
	if (m->sync_waiter) {
		void *sw = m->sync_waiter;
		m->sync_waiter = NULL;
		answer_sync(c, g, sw, TM_ERR_FENCED_INSTANCE_ID, m);
	}
	bool was_leader = is_leader(g, m->member_id);
	free(m->member_id);
	m->member_id = new_id;
	if (was_leader)
		set_leader(g, new_id);
	m->deadline_ms = now_ms + m->session_timeout_ms;

	switch (g->state) {
	case GSM_STABLE: {
		const char *sel = gsm_select_protocol(g);
		if (sel && g->protocol_name && !strcmp(sel, g->protocol_name)) {
			store(c, g);
			bool skip = was_leader && r->supports_skip_assignment;
			struct gsm_join_result res = {
				.error = TM_ERR_NONE,
				.generation = g->generation,
				.member_id = m->member_id,
				.protocol_type = g->protocol_type,
				.protocol_name = g->protocol_name,
				/* Before v9 the old leader id is returned, so a
				 * rejoining leader does not compute an assignment
				 * a stable group would not hand out. */
				.leader_id = skip ? g->leader_id : old_leader,
				.members_included = skip,
				.skip_assignment = skip,
			};
			c->ops->join_done(c->env, waiter, g, &res);
		} else {
			set_join_waiter(c, g, m, waiter);
			prepare_rebalance(c, g, now_ms);
		}
		break;
	}
	case GSM_COMPLETING_REBALANCE:
		/* The leader may already have assigned the old member id. */
		set_join_waiter(c, g, m, waiter);
		prepare_rebalance(c, g, now_ms);
		break;
	default:
		set_join_waiter(c, g, m, waiter);
		break;
	}
	free(old_leader);
	return 0;
}

static int add_pending(struct gsm_group *g, char *id, int64_t deadline_ms)
{
	if (g->n_pending == g->cap_pending) {
		int32_t cap = g->cap_pending ? g->cap_pending * 2 : 4;
		struct gsm_pending *p = realloc(g->pending, sizeof(*p) * (size_t)cap);
		if (!p)
			return -ENOMEM;
		g->pending = p;
		g->cap_pending = cap;
	}
	g->pending[g->n_pending].member_id = id;
	g->pending[g->n_pending].deadline_ms = deadline_ms;
	g->n_pending++;
	return 0;
}

static bool accept_joining(const struct gsm_ctx *c, const struct gsm_group *g, const struct gsm_member *m)
{
	switch (g->state) {
	case GSM_EMPTY:
	case GSM_DEAD:
		return true;
	case GSM_PREPARING_REBALANCE:
		return (m && m->join_waiter) || g->n_awaiting_join < max_size(c);
	case GSM_COMPLETING_REBALANCE:
	case GSM_STABLE:
		return m || g->n_members < max_size(c);
	}
	return false;
}

static bool join_req_too_big(const struct gsm_join_req *r)
{
	if (r->n_protocols > GSM_PROTOCOLS_MAX || r->member_id_len > GSM_ID_MAX_BYTES ||
	    r->instance_id_len > GSM_ID_MAX_BYTES || r->client_id_len > GSM_ID_MAX_BYTES ||
	    r->client_host_len > GSM_ID_MAX_BYTES || r->protocol_type_len > GSM_ID_MAX_BYTES)
		return true;
	int64_t total = 0;
	for (int32_t i = 0; i < r->n_protocols; i++) {
		if (r->protocols[i].name_len > GSM_ID_MAX_BYTES)
			return true;
		total += r->protocols[i].metadata_len > 0 ? r->protocols[i].metadata_len : 0;
	}
	return total > GSM_MEMBER_METADATA_MAX_BYTES;
}

static int join_new_member(struct gsm_ctx *c, struct gsm_group *g, const struct gsm_join_req *r, void *waiter,
			   int64_t now_ms)
{
	if (!supports_protocols(g, r)) {
		answer_join_error(c, g, waiter, TM_ERR_INCONSISTENT_GROUP_PROTOCOL, "");
		return 0;
	}
	const char *prefix = r->instance_id ? r->instance_id : (r->client_id ? r->client_id : "");
	size_t plen = r->instance_id ? r->instance_id_len : r->client_id_len;
	char *id = new_member_id(c, prefix, plen);
	if (!id)
		return -ENOMEM;
	if (r->instance_id) {
		struct gsm_member *old = find_static(g, r->instance_id, r->instance_id_len);
		if (old)
			return update_static_member(c, g, old, r, id, waiter, now_ms);
		return add_member_and_rebalance(c, g, r, id, waiter, now_ms);
	}
	if (r->require_known_member_id) {
		if (g->n_pending >= max_size(c)) {
			free(id);
			answer_join_error(c, g, waiter, TM_ERR_GROUP_MAX_SIZE_REACHED, "");
			return 0;
		}
		if (add_pending(g, id, now_ms + r->session_timeout_ms)) {
			free(id);
			return -ENOMEM;
		}
		answer_join_error(c, g, waiter, TM_ERR_MEMBER_ID_REQUIRED, id);
		return 0;
	}
	return add_member_and_rebalance(c, g, r, id, waiter, now_ms);
}

static int join_current_member(struct gsm_ctx *c, struct gsm_group *g, const struct gsm_join_req *r,
			       void *waiter, int64_t now_ms)
{
	if (!supports_protocols(g, r)) {
		answer_join_error(c, g, waiter, TM_ERR_INCONSISTENT_GROUP_PROTOCOL, "");
		return 0;
	}
	int pi = find_pending(g, r->member_id, r->member_id_len);
	if (pi >= 0) {
		if (r->instance_id) {
			answer_join_error(c, g, waiter, TM_ERR_UNKNOWN_MEMBER_ID, "");
			return 0;
		}
		char *id = sdup(r->member_id, r->member_id_len);
		if (!id)
			return -ENOMEM;
		int rc = add_member_and_rebalance(c, g, r, id, waiter, now_ms);
		if (rc == 0)
			remove_pending_at(g, find_pending(g, r->member_id, r->member_id_len));
		return rc;
	}
	if (static_fenced(g, r->instance_id, r->instance_id_len, r->member_id, r->member_id_len)) {
		answer_join_error(c, g, waiter, TM_ERR_FENCED_INSTANCE_ID, "");
		return 0;
	}
	struct gsm_member *m = gsm_find_member(g, r->member_id, r->member_id_len);
	if (!m || (r->instance_id && !find_static(g, r->instance_id, r->instance_id_len))) {
		answer_join_error(c, g, waiter, TM_ERR_UNKNOWN_MEMBER_ID, "");
		return 0;
	}
	switch (g->state) {
	case GSM_PREPARING_REBALANCE:
		return update_member_and_rebalance(c, g, m, r, waiter, now_ms);
	case GSM_COMPLETING_REBALANCE:
		if (member_matches(m, r)) {
			/* It missed the JoinGroup answer: repeat it. */
			answer_join_current(c, g, waiter, m, is_leader(g, m->member_id));
			return 0;
		}
		return update_member_and_rebalance(c, g, m, r, waiter, now_ms);
	case GSM_STABLE:
		if (is_leader(g, m->member_id) || !member_matches(m, r))
			return update_member_and_rebalance(c, g, m, r, waiter, now_ms);
		answer_join_current(c, g, waiter, m, false);
		return 0;
	default:
		answer_join_error(c, g, waiter, TM_ERR_UNKNOWN_MEMBER_ID, "");
		return 0;
	}
}

int gsm_join(struct gsm_ctx *c, struct gsm_group *g, const struct gsm_join_req *r, void *waiter, int64_t now_ms)
{
	if (g->state == GSM_DEAD) {
		answer_join_error(c, g, waiter, TM_ERR_COORDINATOR_NOT_AVAILABLE, "");
		return 0;
	}
	if (r->session_timeout_ms < c->cfg.min_session_timeout_ms ||
	    r->session_timeout_ms > c->cfg.max_session_timeout_ms) {
		answer_join_error(c, g, waiter, TM_ERR_INVALID_SESSION_TIMEOUT, "");
		return 0;
	}
	if (join_req_too_big(r) || r->n_protocols < 0) {
		answer_join_error(c, g, waiter, TM_ERR_INVALID_REQUEST, "");
		return 0;
	}
	struct gsm_join_req req = *r;
	if (req.rebalance_timeout_ms < 0)
		req.rebalance_timeout_ms = req.session_timeout_ms;
	bool unknown = req.member_id_len == 0;
	struct gsm_member *m = unknown ? NULL : gsm_find_member(g, req.member_id, req.member_id_len);
	int rc;
	if (!accept_joining(c, g, m)) {
		/* Kafka also drops a known member that cannot be accepted. */
		if (m) {
			int i = find_index(g, req.member_id, req.member_id_len);
			remove_member_and_update(c, g, i, now_ms);
		}
		int pi = unknown ? -1 : find_pending(g, req.member_id, req.member_id_len);
		if (pi >= 0)
			remove_pending_at(g, pi);
		answer_join_error(c, g, waiter, TM_ERR_GROUP_MAX_SIZE_REACHED, "");
		try_complete_join(c, g, now_ms);
		return 0;
	}
	rc = unknown ? join_new_member(c, g, &req, waiter, now_ms) : join_current_member(c, g, &req, waiter, now_ms);
	try_complete_join(c, g, now_ms);
	return rc;
}

/* ---- SyncGroup -------------------------------------------------------- */

/* The leader's assignment for member id, through an index of the request
 * (member id -> its first assignment) so that large groups stay linear. */
static const struct gsm_assignment_in *find_assignment(const struct tm_map *idx, const char *id)
{
	return tm_map_get(idx, id, strlen(id));
}

static int index_assignments(const struct gsm_sync_req *r, struct tm_map *idx)
{
	tm_map_init(idx);
	for (int32_t i = r->n_assignments - 1; i >= 0; i--) { /* the first one wins */
		const struct gsm_assignment_in *a = &r->assignments[i];
		if (tm_map_put(idx, a->member_id ? a->member_id : "", a->member_id_len, (void *)a)) {
			tm_map_deinit(idx);
			return -ENOMEM;
		}
	}
	return 0;
}

int gsm_sync(struct gsm_ctx *c, struct gsm_group *g, const struct gsm_sync_req *r, void *waiter, int64_t now_ms)
{
	struct gsm_sync_result err = { .error = TM_ERR_NONE };
	struct gsm_member *m = gsm_find_member(g, r->member_id, r->member_id_len);
	if (g->state == GSM_DEAD)
		err.error = TM_ERR_COORDINATOR_NOT_AVAILABLE;
	else if (static_fenced(g, r->instance_id, r->instance_id_len, r->member_id, r->member_id_len))
		err.error = TM_ERR_FENCED_INSTANCE_ID;
	else if (!m)
		err.error = TM_ERR_UNKNOWN_MEMBER_ID;
	else if (r->generation != g->generation)
		err.error = TM_ERR_ILLEGAL_GENERATION;
	else if (r->protocol_type && !seq(g->protocol_type, r->protocol_type, r->protocol_type_len))
		err.error = TM_ERR_INCONSISTENT_GROUP_PROTOCOL;
	else if (r->protocol_name && !seq(g->protocol_name, r->protocol_name, r->protocol_name_len))
		err.error = TM_ERR_INCONSISTENT_GROUP_PROTOCOL;
	else if (g->state == GSM_EMPTY)
		err.error = TM_ERR_UNKNOWN_MEMBER_ID;
	else if (g->state == GSM_PREPARING_REBALANCE)
		err.error = TM_ERR_REBALANCE_IN_PROGRESS;
	if (err.error != TM_ERR_NONE) {
		c->ops->sync_done(c->env, waiter, &err);
		return 0;
	}
	if (g->state == GSM_STABLE) {
		m->pending_sync = false;
		m->deadline_ms = now_ms + m->session_timeout_ms;
		answer_sync(c, g, waiter, TM_ERR_NONE, m);
		return 0;
	}
	/* CompletingRebalance */
	if (is_leader(g, m->member_id) && !g->storing) {
		for (int32_t i = 0; i < r->n_assignments; i++)
			if (r->assignments[i].assignment_len > GSM_MEMBER_METADATA_MAX_BYTES) {
				err.error = TM_ERR_INVALID_REQUEST;
				c->ops->sync_done(c->env, waiter, &err);
				return 0;
			}
		/* Copy every assignment first so that running out of memory
		 * leaves the group as it was. */
		struct tm_map idx;
		if (index_assignments(r, &idx))
			return -ENOMEM;
		uint8_t **copies = calloc((size_t)g->n_members + 1, sizeof(*copies));
		int32_t *lens = calloc((size_t)g->n_members + 1, sizeof(*lens));
		if (!copies || !lens) {
			free(copies);
			free(lens);
			tm_map_deinit(&idx);
			return -ENOMEM;
		}
		for (int32_t i = 0; i < g->n_members; i++) {
			const struct gsm_assignment_in *a = find_assignment(&idx, g->members[i]->member_id);
			lens[i] = a && a->assignment_len > 0 ? a->assignment_len : 0;
			copies[i] = bdup(a ? a->assignment : NULL, lens[i]);
			if (!copies[i]) {
				for (int32_t k = 0; k < i; k++)
					free(copies[k]);
				free(copies);
				free(lens);
				tm_map_deinit(&idx);
				return -ENOMEM;
			}
		}
		tm_map_deinit(&idx);
		if (m->sync_waiter) {
			void *old = m->sync_waiter;
			m->sync_waiter = NULL;
			answer_sync(c, g, old, TM_ERR_REBALANCE_IN_PROGRESS, m);
		}
		m->sync_waiter = waiter;
		m->pending_sync = false;
		for (int32_t i = 0; i < g->n_members; i++) {
			struct gsm_member *x = g->members[i];
			free(x->assignment);
			x->assignment = copies[i];
			x->assignment_len = lens[i];
		}
		free(copies);
		free(lens);
		g->storing = true;
		if (c->ops->store)
			c->ops->store(c->env, g, true); /* last: it may complete at once */
		else
			gsm_store_done(c, g, g->generation, TM_ERR_NONE, now_ms);
		return 0;
	}
	if (m->sync_waiter) {
		void *old = m->sync_waiter;
		m->sync_waiter = NULL;
		answer_sync(c, g, old, TM_ERR_REBALANCE_IN_PROGRESS, m);
	}
	m->sync_waiter = waiter;
	m->pending_sync = false;
	return 0;
}

void gsm_store_done(struct gsm_ctx *c, struct gsm_group *g, int32_t generation, int16_t error, int64_t now_ms)
{
	if (!g->storing || g->state != GSM_COMPLETING_REBALANCE || generation != g->generation)
		return;
	g->storing = false;
	if (error != TM_ERR_NONE) {
		reset_and_propagate_error(c, g, error);
		maybe_prepare_rebalance(c, g, now_ms);
		try_complete_join(c, g, now_ms);
		return;
	}
	set_state(g, GSM_STABLE, now_ms);
	for (int32_t i = 0; i < g->n_members; i++) {
		struct gsm_member *x = g->members[i];
		if (x->sync_waiter) {
			void *w = x->sync_waiter;
			x->sync_waiter = NULL;
			answer_sync(c, g, w, TM_ERR_NONE, x);
			x->deadline_ms = now_ms + x->session_timeout_ms;
		}
	}
}

/* ---- Heartbeat, LeaveGroup, OffsetCommit checks ------------------------ */

int16_t gsm_heartbeat(struct gsm_ctx *c, struct gsm_group *g, int32_t generation, const char *member_id,
		      size_t member_id_len, const char *instance_id, size_t instance_id_len, int64_t now_ms)
{
	(void)c;
	if (g->state == GSM_DEAD)
		return TM_ERR_COORDINATOR_NOT_AVAILABLE;
	if (static_fenced(g, instance_id, instance_id_len, member_id, member_id_len))
		return TM_ERR_FENCED_INSTANCE_ID;
	struct gsm_member *m = gsm_find_member(g, member_id, member_id_len);
	if (!m)
		return TM_ERR_UNKNOWN_MEMBER_ID;
	if (generation != g->generation)
		return TM_ERR_ILLEGAL_GENERATION;
	switch (g->state) {
	case GSM_EMPTY:
		return TM_ERR_UNKNOWN_MEMBER_ID;
	case GSM_PREPARING_REBALANCE:
		m->deadline_ms = now_ms + m->session_timeout_ms;
		return TM_ERR_REBALANCE_IN_PROGRESS;
	default:
		m->deadline_ms = now_ms + m->session_timeout_ms;
		return TM_ERR_NONE;
	}
}

int16_t gsm_leave(struct gsm_ctx *c, struct gsm_group *g, const char *member_id, size_t member_id_len,
		  const char *instance_id, size_t instance_id_len, int64_t now_ms)
{
	if (g->state == GSM_DEAD)
		return TM_ERR_COORDINATOR_NOT_AVAILABLE;
	if (member_id_len == 0) {
		/* Administrative removal of a static member by instance id. */
		struct gsm_member *m = instance_id ? find_static(g, instance_id, instance_id_len) : NULL;
		if (!m)
			return TM_ERR_UNKNOWN_MEMBER_ID;
		remove_member_and_update(c, g, find_index(g, m->member_id, strlen(m->member_id)), now_ms);
		return TM_ERR_NONE;
	}
	int pi = find_pending(g, member_id, member_id_len);
	if (pi >= 0) {
		remove_pending_at(g, pi);
		try_complete_join(c, g, now_ms);
		return TM_ERR_NONE;
	}
	if (static_fenced(g, instance_id, instance_id_len, member_id, member_id_len))
		return TM_ERR_FENCED_INSTANCE_ID;
	int i = find_index(g, member_id, member_id_len);
	if (i < 0)
		return TM_ERR_UNKNOWN_MEMBER_ID;
	remove_member_and_update(c, g, i, now_ms);
	return TM_ERR_NONE;
}

int16_t gsm_validate_commit(struct gsm_ctx *c, struct gsm_group *g, int32_t generation, const char *member_id,
			    size_t member_id_len, const char *instance_id, size_t instance_id_len, int64_t now_ms)
{
	(void)c;
	if (g->state == GSM_DEAD)
		return TM_ERR_COORDINATOR_NOT_AVAILABLE;
	if (generation < 0 && g->state == GSM_EMPTY)
		return TM_ERR_NONE; /* offsets only: admin clients, assign() consumers */
	struct gsm_member *m = NULL;
	if (generation >= 0 || member_id_len > 0 || instance_id) {
		if (static_fenced(g, instance_id, instance_id_len, member_id, member_id_len))
			return TM_ERR_FENCED_INSTANCE_ID;
		m = gsm_find_member(g, member_id, member_id_len);
		if (!m || (instance_id && !find_static(g, instance_id, instance_id_len)))
			return TM_ERR_UNKNOWN_MEMBER_ID;
		if (generation != g->generation)
			return TM_ERR_ILLEGAL_GENERATION;
	} else {
		return TM_ERR_UNKNOWN_MEMBER_ID;
	}
	if (g->state == GSM_COMPLETING_REBALANCE)
		return TM_ERR_REBALANCE_IN_PROGRESS;
	m->deadline_ms = now_ms + m->session_timeout_ms;
	return TM_ERR_NONE;
}

/* ---- timers ----------------------------------------------------------- */

void gsm_tick(struct gsm_ctx *c, struct gsm_group *g, int64_t now_ms)
{
	if (g->state == GSM_DEAD)
		return;
	bool removed_pending = false;
	for (int32_t i = g->n_pending - 1; i >= 0; i--)
		if (now_ms >= g->pending[i].deadline_ms) {
			remove_pending_at(g, i);
			removed_pending = true;
		}
	if (removed_pending)
		try_complete_join(c, g, now_ms);

	/* Session expiry.  A member blocked in JoinGroup or SyncGroup has its
	 * heartbeat satisfied, except a new member past the join timeout. */
	for (int32_t i = 0; i < g->n_members;) {
		struct gsm_member *m = g->members[i];
		bool waiting = !m->is_new && (m->join_waiter || m->sync_waiter);
		if (now_ms >= m->deadline_ms && !waiting) {
			remove_member_and_update(c, g, i, now_ms);
			i = 0; /* the list may have changed in more than one place */
			continue;
		}
		i++;
	}

	if ((g->state == GSM_COMPLETING_REBALANCE || g->state == GSM_STABLE) && g->sync_deadline_ms >= 0 &&
	    now_ms >= g->sync_deadline_ms) {
		g->sync_deadline_ms = -1;
		bool any = false;
		for (int32_t i = g->n_members - 1; i >= 0; i--)
			if (g->members[i]->pending_sync) {
				remove_member_at(c, g, i);
				any = true;
			}
		if (any) {
			prepare_rebalance(c, g, now_ms);
			try_complete_join(c, g, now_ms);
		}
	}
	if (g->state == GSM_PREPARING_REBALANCE && now_ms >= g->join_deadline_ms)
		try_complete_join(c, g, now_ms);
}

int64_t gsm_next_deadline(const struct gsm_group *g)
{
	int64_t t = INT64_MAX;
	if (g->state == GSM_DEAD)
		return t;
	for (int32_t i = 0; i < g->n_pending; i++)
		if (g->pending[i].deadline_ms < t)
			t = g->pending[i].deadline_ms;
	for (int32_t i = 0; i < g->n_members; i++)
		if (g->members[i]->deadline_ms < t)
			t = g->members[i]->deadline_ms;
	if (g->sync_deadline_ms >= 0 && g->sync_deadline_ms < t)
		t = g->sync_deadline_ms;
	if (g->state == GSM_PREPARING_REBALANCE && g->join_deadline_ms < t)
		t = g->join_deadline_ms;
	return t;
}

/* ---- life cycle -------------------------------------------------------- */

int gsm_group_init(struct gsm_group *g, const char *group_id, size_t len, int64_t now_ms)
{
	memset(g, 0, sizeof(*g));
	g->group_id = sdup(group_id, len);
	if (!g->group_id)
		return -ENOMEM;
	g->state = GSM_EMPTY;
	g->sync_deadline_ms = -1;
	g->state_since_ms = now_ms;
	return 0;
}

static void clear_members(struct gsm_group *g)
{
	for (int32_t i = 0; i < g->n_members; i++)
		member_free(g->members[i]);
	g->n_members = 0;
	g->n_awaiting_join = 0;
	for (int32_t i = 0; i < g->n_pending; i++)
		free(g->pending[i].member_id);
	g->n_pending = 0;
}

void gsm_group_deinit(struct gsm_group *g)
{
	for (int32_t i = 0; i < g->n_members; i++) {
		TM_ASSERT(g->members[i]->join_waiter == NULL);
		TM_ASSERT(g->members[i]->sync_waiter == NULL);
	}
	clear_members(g);
	free(g->members);
	free(g->pending);
	free(g->group_id);
	free(g->protocol_type);
	free(g->protocol_name);
	free(g->leader_id);
	memset(g, 0, sizeof(*g));
}

void gsm_group_abort(struct gsm_ctx *c, struct gsm_group *g, int16_t error)
{
	for (int32_t i = 0; i < g->n_members; i++) {
		struct gsm_member *m = g->members[i];
		void *jw;
		take_join_waiter(g, m, &jw);
		if (jw)
			answer_join_error(c, g, jw, error, m->member_id);
		if (m->sync_waiter) {
			void *sw = m->sync_waiter;
			m->sync_waiter = NULL;
			answer_sync(c, g, sw, error, m);
		}
	}
	g->state = GSM_DEAD;
}

int gsm_group_restore(struct gsm_group *g, const char *protocol_type, size_t protocol_type_len,
		      int32_t generation, const char *protocol_name, size_t protocol_name_len,
		      const char *leader_id, size_t leader_id_len, const struct gsm_member_in *members,
		      int32_t n_members, int64_t now_ms)
{
	clear_members(g);
	free(g->protocol_type);
	free(g->protocol_name);
	free(g->leader_id);
	g->protocol_type = protocol_type && protocol_type_len ? sdup(protocol_type, protocol_type_len) : NULL;
	g->protocol_name = NULL;
	g->leader_id = NULL;
	g->generation = generation;
	g->sync_deadline_ms = -1;
	if (n_members > GSM_MEMBERS_HARD_MAX)
		n_members = GSM_MEMBERS_HARD_MAX;
	for (int32_t i = 0; i < n_members && protocol_name; i++) {
		const struct gsm_member_in *in = &members[i];
		struct gsm_proto_in p = { protocol_name, protocol_name_len, in->subscription, in->subscription_len };
		struct gsm_join_req r = {
			.instance_id = in->instance_id,
			.instance_id_len = in->instance_id_len,
			.client_id = in->client_id,
			.client_id_len = in->client_id_len,
			.client_host = in->client_host,
			.client_host_len = in->client_host_len,
			.session_timeout_ms = in->session_timeout_ms,
			.rebalance_timeout_ms = in->rebalance_timeout_ms >= 0 ? in->rebalance_timeout_ms
									       : in->session_timeout_ms,
			.protocols = &p,
			.n_protocols = 1,
		};
		char *id = sdup(in->member_id, in->member_id_len);
		if (!id)
			return -ENOMEM;
		struct gsm_member *m = member_new(&r, id, now_ms);
		if (!m)
			return -ENOMEM;
		m->is_new = false;
		m->deadline_ms = now_ms + m->session_timeout_ms;
		m->assignment = bdup(in->assignment, in->assignment_len);
		m->assignment_len = in->assignment_len > 0 ? in->assignment_len : 0;
		if (!m->assignment || add_member(g, m)) {
			member_free(m);
			return -ENOMEM;
		}
	}
	if (g->n_members > 0) {
		g->protocol_name = sdup(protocol_name, protocol_name_len);
		if (!g->protocol_name)
			return -ENOMEM;
		struct gsm_member *l = leader_id ? gsm_find_member(g, leader_id, leader_id_len) : NULL;
		if (l)
			set_leader(g, l->member_id);
		set_state(g, GSM_STABLE, now_ms);
	} else {
		set_leader(g, NULL);
		set_state(g, GSM_EMPTY, now_ms);
	}
	return 0;
}
