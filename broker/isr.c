/*
 * isr.c — follower positions, high watermark, ISR shrink and expand.
 * See isr.h.
 */
#include "broker/isr.h"

#include <errno.h>
#include <string.h>

static bool in_set(const int32_t *set, int n, int32_t id)
{
	for (int i = 0; i < n; i++)
		if (set[i] == id)
			return true;
	return false;
}

static struct isr_follower *follower(struct isr_state *s, int32_t id)
{
	for (int i = 0; i < s->n_f; i++)
		if (s->f[i].id == id)
			return &s->f[i];
	return NULL;
}

static int clamp(int n)
{
	return n < 0 ? 0 : n > ISR_REPLICAS_MAX ? ISR_REPLICAS_MAX : n;
}

void isr_begin(struct isr_state *s, int32_t leader, const int32_t *replicas, int n_replicas, const int32_t *isr,
	       int n_isr, int64_t leader_leo, int64_t hw, int64_t now_ms)
{
	memset(s, 0, sizeof(*s));
	s->leader_id = leader;
	s->leader_leo = leader_leo;
	s->hw = hw < leader_leo ? hw : leader_leo;
	s->epoch_start_offset = leader_leo;
	n_replicas = clamp(n_replicas);
	for (int i = 0; i < n_replicas; i++) {
		if (replicas[i] == leader)
			continue;
		struct isr_follower *f = &s->f[s->n_f++];
		f->id = replicas[i];
		f->leo = -1;
		f->last_caught_up_ms = in_set(isr, n_isr, replicas[i]) ? now_ms : INT64_MIN / 2;
		f->last_fetch_ms = INT64_MIN / 2;
		f->last_fetch_leader_leo = -1;
	}
	isr_update(s, replicas, n_replicas, isr, n_isr, now_ms);
}

void isr_update(struct isr_state *s, const int32_t *replicas, int n_replicas, const int32_t *isr, int n_isr,
		int64_t now_ms)
{
	n_replicas = clamp(n_replicas);
	n_isr = clamp(n_isr);
	/* Keep positions of followers still assigned; add new ones, drop gone ones. */
	struct isr_follower f[ISR_REPLICAS_MAX];
	int n_f = 0;
	for (int i = 0; i < n_replicas; i++) {
		if (replicas[i] == s->leader_id)
			continue;
		struct isr_follower *old = follower(s, replicas[i]);
		if (old) {
			f[n_f] = *old;
		} else {
			f[n_f] = (struct isr_follower){ .id = replicas[i], .leo = -1,
							.last_caught_up_ms = INT64_MIN / 2,
							.last_fetch_ms = INT64_MIN / 2, .last_fetch_leader_leo = -1 };
		}
		/* A member newly admitted counts as caught up from now on. */
		if (in_set(isr, n_isr, replicas[i]) && !in_set(s->isr, s->n_isr, replicas[i]) &&
		    f[n_f].last_caught_up_ms < now_ms)
			f[n_f].last_caught_up_ms = now_ms;
		n_f++;
	}
	memcpy(s->f, f, sizeof(f[0]) * (size_t)n_f);
	s->n_f = n_f;
	s->n_isr = 0;
	s->isr[s->n_isr++] = s->leader_id;
	for (int i = 0; i < n_isr; i++)
		if (isr[i] != s->leader_id && follower(s, isr[i]))
			s->isr[s->n_isr++] = isr[i];
	s->n_proposed = 0;
}

bool isr_contains(const struct isr_state *s, int32_t id)
{
	return in_set(s->isr, s->n_isr, id);
}

int isr_on_fetch(struct isr_state *s, int32_t id, int64_t fetch_offset, int64_t now_ms)
{
	struct isr_follower *f = follower(s, id);
	if (!f)
		return -ENOENT;
	if (fetch_offset >= s->leader_leo)
		f->last_caught_up_ms = now_ms;
	else if (f->last_fetch_leader_leo >= 0 && fetch_offset >= f->last_fetch_leader_leo &&
		 f->last_fetch_ms > f->last_caught_up_ms)
		f->last_caught_up_ms = f->last_fetch_ms;
	f->leo = fetch_offset;
	f->last_fetch_ms = now_ms;
	f->last_fetch_leader_leo = s->leader_leo;
	return 0;
}

bool isr_update_hw(struct isr_state *s, int64_t leader_leo)
{
	s->leader_leo = leader_leo;
	int64_t min = leader_leo;
	for (int i = 0; i < s->n_f; i++) {
		const struct isr_follower *f = &s->f[i];
		bool counts = in_set(s->isr, s->n_isr, f->id) ||
			      (s->n_proposed > 0 && in_set(s->proposed, s->n_proposed, f->id));
		if (!counts)
			continue;
		if (f->leo < 0)
			return false; /* not heard from yet: the HW waits */
		if (f->leo < min)
			min = f->leo;
	}
	if (min > s->hw) {
		s->hw = min;
		return true;
	}
	return false;
}

int isr_shrink(const struct isr_state *s, int64_t now_ms, int64_t lag_ms, int32_t *out)
{
	int n = 0;
	bool dropped = false;
	for (int i = 0; i < s->n_isr; i++) {
		int32_t id = s->isr[i];
		if (id != s->leader_id) {
			const struct isr_follower *f = follower((struct isr_state *)s, id);
			if (!f || now_ms - f->last_caught_up_ms > lag_ms) {
				dropped = true;
				continue;
			}
		}
		out[n++] = id;
	}
	return dropped ? n : -1;
}

int isr_expand(const struct isr_state *s, int32_t *out)
{
	int n = 0;
	for (int i = 0; i < s->n_isr; i++)
		out[n++] = s->isr[i];
	bool added = false;
	for (int i = 0; i < s->n_f; i++) {
		const struct isr_follower *f = &s->f[i];
		if (in_set(s->isr, s->n_isr, f->id) || f->leo < 0)
			continue;
		if (f->leo >= s->hw && f->leo >= s->epoch_start_offset) {
			out[n++] = f->id;
			added = true;
		}
	}
	return added ? n : -1;
}

void isr_propose(struct isr_state *s, const int32_t *isr, int n)
{
	n = clamp(n);
	memcpy(s->proposed, isr, sizeof(isr[0]) * (size_t)n);
	s->n_proposed = n;
}

void isr_proposal_failed(struct isr_state *s)
{
	s->n_proposed = 0;
}
