/*
 * elect.c — the pure rules of elect.h: which leader, ISR and replica sets a
 * partition gets from an election, a controlled shutdown or a
 * reassignment.  Reads the image only; no I/O, no clock.
 */
#include "broker/elect.h"

#include <stdio.h>
#include <string.h>

#include "common/kerr.h"

void elect_change_init(struct elect_change *c)
{
	memset(c, 0, sizeof(*c));
	c->leader = -2;
	c->n_isr = -1;
	c->n_replicas = -1;
	c->n_adding = -1;
	c->n_removing = -1;
}

bool elect_change_empty(const struct elect_change *c)
{
	return c->leader == -2 && c->n_isr < 0 && c->n_replicas < 0 && c->n_adding < 0 && c->n_removing < 0;
}

void elect_change_record(const struct elect_change *c, const struct kuuid *topic_id, int32_t partition,
			 struct kafka_partition_change_record *r)
{
	kafka_partition_change_record_init(r);
	r->topic_id = *topic_id;
	r->partition_id = partition;
	r->leader = c->leader;
	r->isr = (int32_t *)c->isr;
	r->isr_count = c->n_isr;
	r->replicas = (int32_t *)c->replicas;
	r->replicas_count = c->n_replicas;
	r->adding_replicas = (int32_t *)c->adding;
	r->adding_replicas_count = c->n_adding;
	r->removing_replicas = (int32_t *)c->removing;
	r->removing_replicas_count = c->n_removing;
}

bool elect_broker_active(const struct md_image *img, int32_t id, int32_t excluded)
{
	if (id < 0 || id == excluded)
		return false;
	for (int i = 0; i < img->n_brokers; i++)
		if (img->brokers[i].id == id)
			return !img->brokers[i].fenced && !img->brokers[i].in_controlled_shutdown;
	return false;
}

/* ---- set helpers (small arrays of broker ids, order kept) ---- */

static bool set_eq(const int32_t *a, int na, const int32_t *b, int nb)
{
	return na == nb && (na == 0 || !memcmp(a, b, sizeof(int32_t) * (size_t)na));
}

/* out = a without the members of b; returns its size. */
static int set_minus(const int32_t *a, int na, const int32_t *b, int nb, int32_t *out)
{
	int n = 0;
	for (int i = 0; i < na; i++)
		if (!md_replica_in(b, nb, a[i]))
			out[n++] = a[i];
	return n;
}

/* out = a with only the members of b; returns its size. */
static int set_and(const int32_t *a, int na, const int32_t *b, int nb, int32_t *out)
{
	int n = 0;
	for (int i = 0; i < na; i++)
		if (md_replica_in(b, nb, a[i]))
			out[n++] = a[i];
	return n;
}

static bool set_covers(const int32_t *a, int na, const int32_t *b, int nb)
{
	for (int i = 0; i < nb; i++)
		if (!md_replica_in(a, na, b[i]))
			return false;
	return true;
}

/* The first of replicas (in order) that is in the ISR and active; -1 if none. */
static int32_t first_valid(const struct md_image *img, const int32_t *replicas, int n, const int32_t *isr, int n_isr,
			   int32_t excluded)
{
	for (int i = 0; i < n; i++)
		if (md_replica_in(isr, n_isr, replicas[i]) && elect_broker_active(img, replicas[i], excluded))
			return replicas[i];
	return -1;
}

static int32_t first_active(const struct md_image *img, const int32_t *replicas, int n, int32_t excluded)
{
	for (int i = 0; i < n; i++)
		if (elect_broker_active(img, replicas[i], excluded))
			return replicas[i];
	return -1;
}

/* ---- elections ---- */

int16_t elect_leader(const struct md_image *img, const struct md_partition *p, int type, struct elect_change *out)
{
	elect_change_init(out);
	if (type == ELECT_PREFERRED) {
		int32_t preferred = p->n_replicas > 0 ? p->replicas[0] : -1;
		if (p->leader == preferred)
			return TM_ERR_ELECTION_NOT_NEEDED;
		if (md_replica_in(p->isr, p->n_isr, preferred) && elect_broker_active(img, preferred, -1)) {
			out->leader = preferred;
			return TM_ERR_NONE;
		}
		/* Kafka keeps a leader that is still valid; a partition without a
		 * valid one gets the next valid replica instead. */
		if (md_replica_in(p->isr, p->n_isr, p->leader) && elect_broker_active(img, p->leader, -1))
			return TM_ERR_PREFERRED_LEADER_NOT_AVAILABLE;
		int32_t other = first_valid(img, p->replicas, p->n_replicas, p->isr, p->n_isr, -1);
		if (other < 0 || other == p->leader)
			return TM_ERR_PREFERRED_LEADER_NOT_AVAILABLE;
		out->leader = other;
		return TM_ERR_NONE;
	}
	if (type != ELECT_UNCLEAN)
		return TM_ERR_INVALID_REQUEST;
	if (p->leader >= 0)
		return TM_ERR_ELECTION_NOT_NEEDED;
	int32_t clean = first_valid(img, p->replicas, p->n_replicas, p->isr, p->n_isr, -1);
	if (clean >= 0) {
		out->leader = clean;
		return TM_ERR_NONE;
	}
	int32_t any = first_active(img, p->replicas, p->n_replicas, -1);
	if (any < 0)
		return TM_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE;
	/* The new leader's log is the truth now: the ISR is it alone. */
	out->leader = any;
	out->isr[0] = any;
	out->n_isr = 1;
	return TM_ERR_NONE;
}

bool elect_shutdown(const struct md_image *img, const struct md_partition *p, int32_t id, bool unclean_ok,
		    struct elect_change *out)
{
	elect_change_init(out);
	bool in_isr = md_replica_in(p->isr, p->n_isr, id);
	if (p->leader != id && !in_isr)
		return false;
	int32_t isr[MD_REPLICAS_MAX];
	int n_isr = set_minus(p->isr, p->n_isr, &id, 1, isr);
	if (n_isr == 0) {
		/* The last ISR member stays: it holds every committed record. */
		isr[0] = id;
		n_isr = 1;
	}
	if (p->leader == id) {
		int32_t nl = first_valid(img, p->replicas, p->n_replicas, isr, n_isr, id);
		if (nl < 0 && unclean_ok) {
			nl = first_active(img, p->replicas, p->n_replicas, id);
			if (nl >= 0) {
				isr[0] = nl;
				n_isr = 1;
			}
		}
		out->leader = nl;
	}
	if (!set_eq(isr, n_isr, p->isr, p->n_isr)) {
		memcpy(out->isr, isr, sizeof(int32_t) * (size_t)n_isr);
		out->n_isr = n_isr;
	}
	return !elect_change_empty(out);
}

bool elect_unclean_allowed(const struct md_topic *t, bool broker_default)
{
	const char *v = md_topic_config(t, "unclean.leader.election.enable");
	return v ? !strcmp(v, "true") : broker_default;
}

bool elect_leads_any(const struct md_image *img, int32_t id)
{
	for (size_t ti = 0; ti < img->topics.cap; ti++) {
		if (!img->topics.slots[ti].key)
			continue;
		const struct md_topic *t = img->topics.slots[ti].value;
		for (int32_t pi = 0; pi < t->n_partitions; pi++)
			if (t->parts[pi].leader == id)
				return true;
	}
	return false;
}

int elect_imbalanced_brokers(const struct md_image *img, int pct, bool imbalanced[MD_BROKERS_MAX])
{
	int64_t preferred[MD_BROKERS_MAX] = { 0 };
	int64_t not_led[MD_BROKERS_MAX] = { 0 };
	for (size_t ti = 0; ti < img->topics.cap; ti++) {
		if (!img->topics.slots[ti].key)
			continue;
		const struct md_topic *t = img->topics.slots[ti].value;
		for (int32_t pi = 0; pi < t->n_partitions; pi++) {
			const struct md_partition *p = &t->parts[pi];
			if (p->n_replicas == 0)
				continue;
			for (int i = 0; i < img->n_brokers; i++)
				if (img->brokers[i].id == p->replicas[0]) {
					preferred[i]++;
					not_led[i] += p->leader != p->replicas[0];
					break;
				}
		}
	}
	int n = 0;
	for (int i = 0; i < img->n_brokers; i++) {
		imbalanced[i] = preferred[i] > 0 && not_led[i] * 100 > (int64_t)pct * preferred[i];
		n += imbalanced[i];
	}
	return n;
}

bool elect_rebalance(const struct md_image *img, const struct md_partition *p, const bool imbalanced[MD_BROKERS_MAX],
		     struct elect_change *out)
{
	elect_change_init(out);
	if (p->n_replicas == 0 || reassign_ongoing(p))
		return false;
	bool want = false;
	for (int i = 0; i < img->n_brokers; i++)
		if (img->brokers[i].id == p->replicas[0])
			want = imbalanced[i];
	/* Only a move to the preferred replica itself balances. */
	if (!want || elect_leader(img, p, ELECT_PREFERRED, out) != TM_ERR_NONE || out->leader != p->replicas[0]) {
		elect_change_init(out);
		return false;
	}
	return true;
}

/* ---- reassignment ---- */

bool reassign_ongoing(const struct md_partition *p)
{
	return p->n_adding > 0 || p->n_removing > 0;
}

/* The proposed sets of a partition under change, before they are diffed
 * against the image into an elect_change. */
struct plan {
	int32_t replicas[MD_REPLICAS_MAX];
	int n_replicas;
	int32_t isr[MD_REPLICAS_MAX];
	int n_isr;
	int32_t adding[MD_REPLICAS_MAX];
	int n_adding;
	int32_t removing[MD_REPLICAS_MAX];
	int n_removing;
	int32_t leader;
};

/* Completes the plan's reassignment when every target replica is in its
 * ISR and one of them can lead.  Returns whether it did. */
static bool plan_complete(const struct md_image *img, struct plan *pl)
{
	if (pl->n_adding == 0 && pl->n_removing == 0)
		return false;
	int32_t target[MD_REPLICAS_MAX];
	int n_target = set_minus(pl->replicas, pl->n_replicas, pl->removing, pl->n_removing, target);
	if (n_target == 0 || !set_covers(pl->isr, pl->n_isr, target, n_target))
		return false;
	int32_t isr[MD_REPLICAS_MAX];
	int n_isr = set_and(pl->isr, pl->n_isr, target, n_target, isr);
	int32_t leader = pl->leader;
	if (!md_replica_in(target, n_target, leader) || !elect_broker_active(img, leader, -1))
		leader = first_valid(img, target, n_target, isr, n_isr, -1);
	if (leader < 0)
		return false; /* nobody could lead the new set yet: wait */
	memcpy(pl->replicas, target, sizeof(int32_t) * (size_t)n_target);
	pl->n_replicas = n_target;
	memcpy(pl->isr, isr, sizeof(int32_t) * (size_t)n_isr);
	pl->n_isr = n_isr;
	pl->n_adding = 0;
	pl->n_removing = 0;
	pl->leader = leader;
	return true;
}

/* The change from p to the plan; a leader outside the plan's ISR is replaced. */
static void plan_diff(const struct md_image *img, const struct md_partition *p, struct plan *pl,
		      struct elect_change *out)
{
	elect_change_init(out);
	if (!md_replica_in(pl->isr, pl->n_isr, pl->leader) || !md_replica_in(pl->replicas, pl->n_replicas, pl->leader)) {
		int32_t nl = first_valid(img, pl->replicas, pl->n_replicas, pl->isr, pl->n_isr, -1);
		pl->leader = nl;
	}
	if (pl->leader != p->leader)
		out->leader = pl->leader;
	if (!set_eq(pl->isr, pl->n_isr, p->isr, p->n_isr)) {
		memcpy(out->isr, pl->isr, sizeof(int32_t) * (size_t)pl->n_isr);
		out->n_isr = pl->n_isr;
	}
	if (!set_eq(pl->replicas, pl->n_replicas, p->replicas, p->n_replicas)) {
		memcpy(out->replicas, pl->replicas, sizeof(int32_t) * (size_t)pl->n_replicas);
		out->n_replicas = pl->n_replicas;
	}
	if (!set_eq(pl->adding, pl->n_adding, p->adding, p->n_adding)) {
		memcpy(out->adding, pl->adding, sizeof(int32_t) * (size_t)pl->n_adding);
		out->n_adding = pl->n_adding;
	}
	if (!set_eq(pl->removing, pl->n_removing, p->removing, p->n_removing)) {
		memcpy(out->removing, pl->removing, sizeof(int32_t) * (size_t)pl->n_removing);
		out->n_removing = pl->n_removing;
	}
}

/* p as it was before its reassignment started (the adding replicas gone). */
static void plan_original(const struct md_partition *p, struct plan *pl)
{
	memset(pl, 0, sizeof(*pl));
	pl->n_replicas = set_minus(p->replicas, p->n_replicas, p->adding, p->n_adding, pl->replicas);
	pl->n_isr = set_minus(p->isr, p->n_isr, p->adding, p->n_adding, pl->isr);
	pl->leader = p->leader;
}

int16_t reassign_start(const struct md_image *img, const struct md_partition *p, const int32_t *target, int n,
		       bool allow_rf_change, struct elect_change *out, char *why, size_t why_len)
{
	elect_change_init(out);
	if (n <= 0) {
		snprintf(why, why_len, "The manual partition assignment includes an empty replica list.");
		return TM_ERR_INVALID_REPLICA_ASSIGNMENT;
	}
	if (n > MD_REPLICAS_MAX) {
		snprintf(why, why_len, "The manual partition assignment has %d replicas; at most %d are supported.", n,
			 MD_REPLICAS_MAX);
		return TM_ERR_INVALID_REPLICA_ASSIGNMENT;
	}
	for (int i = 0; i < n; i++) {
		if (md_replica_in(target, i, target[i])) {
			snprintf(why, why_len, "The manual partition assignment includes the broker %d more than once.",
				 target[i]);
			return TM_ERR_INVALID_REPLICA_ASSIGNMENT;
		}
		bool known = false;
		for (int k = 0; k < img->n_brokers && !known; k++)
			known = img->brokers[k].id == target[i];
		if (!known) {
			snprintf(why, why_len,
				 "The manual partition assignment includes broker %d, but no such broker is registered.",
				 target[i]);
			return TM_ERR_INVALID_REPLICA_ASSIGNMENT;
		}
	}
	struct plan pl;
	plan_original(p, &pl);
	if (!allow_rf_change && n != pl.n_replicas) {
		snprintf(why, why_len, "The replication factor is changed from %d to %d", pl.n_replicas, n);
		return TM_ERR_INVALID_REPLICATION_FACTOR;
	}
	int32_t current[MD_REPLICAS_MAX];
	int n_current = pl.n_replicas;
	memcpy(current, pl.replicas, sizeof(current));
	pl.n_removing = set_minus(current, n_current, target, n, pl.removing);
	pl.n_adding = set_minus(target, n, current, n_current, pl.adding);
	if (n + pl.n_removing > MD_REPLICAS_MAX) {
		snprintf(why, why_len, "The reassignment would hold %d replicas at once; at most %d are supported.",
			 n + pl.n_removing, MD_REPLICAS_MAX);
		return TM_ERR_INVALID_REPLICA_ASSIGNMENT;
	}
	memcpy(pl.replicas, target, sizeof(int32_t) * (size_t)n);
	memcpy(pl.replicas + n, pl.removing, sizeof(int32_t) * (size_t)pl.n_removing);
	pl.n_replicas = n + pl.n_removing;
	plan_complete(img, &pl);
	plan_diff(img, p, &pl, out);
	return TM_ERR_NONE;
}

int16_t reassign_cancel(const struct md_image *img, const struct md_partition *p, bool unclean_ok,
			struct elect_change *out, char *why, size_t why_len)
{
	elect_change_init(out);
	if (!reassign_ongoing(p)) {
		snprintf(why, why_len, "No reassignment is in progress for this partition.");
		return TM_ERR_NO_REASSIGNMENT_IN_PROGRESS;
	}
	struct plan pl;
	plan_original(p, &pl);
	if (pl.n_isr == 0) {
		int32_t any = first_active(img, pl.replicas, pl.n_replicas, -1);
		if (!unclean_ok || any < 0) {
			snprintf(why, why_len, "Unable to revert the partition assignment because it would require an unclean leader election.");
			return TM_ERR_INVALID_REPLICA_ASSIGNMENT;
		}
		pl.isr[0] = any;
		pl.n_isr = 1;
		pl.leader = any;
	}
	plan_diff(img, p, &pl, out);
	return TM_ERR_NONE;
}

bool reassign_complete(const struct md_image *img, const struct md_partition *p, struct elect_change *out)
{
	elect_change_init(out);
	if (!reassign_ongoing(p))
		return false;
	struct plan pl;
	memset(&pl, 0, sizeof(pl));
	memcpy(pl.replicas, p->replicas, sizeof(pl.replicas));
	pl.n_replicas = p->n_replicas;
	memcpy(pl.isr, p->isr, sizeof(pl.isr));
	pl.n_isr = p->n_isr;
	memcpy(pl.adding, p->adding, sizeof(pl.adding));
	pl.n_adding = p->n_adding;
	memcpy(pl.removing, p->removing, sizeof(pl.removing));
	pl.n_removing = p->n_removing;
	pl.leader = p->leader;
	if (!plan_complete(img, &pl))
		return false;
	plan_diff(img, p, &pl, out);
	return true;
}
