/*
 * isr.h — the partition leader's view of its followers: their log end
 * offsets, when each last caught up, the high watermark, and which replicas
 * should leave or join the in-sync replica set.  Pure: no I/O, no clock (the
 * caller passes monotonic milliseconds), so it is unit-tested with a fake
 * clock (tests/unit/test_isr.c).
 *
 * Kafka's rules (Partition.scala, Replica.scala):
 *   - A follower's fetch at offset O tells the leader the follower holds
 *     everything below O: its log end offset (LEO) becomes O.
 *   - It "caught up" at the fetch time when O reached the leader's LEO as
 *     of that fetch; when O only reached the leader's LEO as of its previous
 *     fetch, it caught up at the previous fetch's time.
 *   - High watermark = minimum LEO over the ISR (the leader's own LEO
 *     included).  While an ISR change is in flight to the controller the
 *     "maximal" ISR (committed plus proposed members) counts, so the HW never
 *     relies on a replica the controller has not yet admitted nor forgets
 *     one it has not yet removed.  The HW never moves backwards, and does
 *     not move while any ISR member's LEO is unknown (a new leader waits to
 *     hear from its followers).
 *   - Shrink: an ISR follower that has not caught up for lag_ms leaves.
 *   - Expand: a follower outside the ISR joins once its LEO reached the HW
 *     and the start of the leader's current epoch.
 *
 * Invariants: f[] holds every replica except the leader; isr[] always holds
 * the leader; hw <= leader_leo.
 */
#ifndef TM_BROKER_ISR_H
#define TM_BROKER_ISR_H

#include <stdbool.h>
#include <stdint.h>

#define ISR_REPLICAS_MAX 32

struct isr_follower {
	int32_t id;
	int64_t leo;                    /* -1: not heard from since this leadership began */
	int64_t last_caught_up_ms;
	int64_t last_fetch_ms;
	int64_t last_fetch_leader_leo;
};

struct isr_state {
	int32_t leader_id;
	int64_t leader_leo;
	int64_t hw;
	int64_t epoch_start_offset;     /* leader's LEO when its current epoch began */
	int32_t isr[ISR_REPLICAS_MAX];  /* committed by the controller */
	int n_isr;
	int32_t proposed[ISR_REPLICAS_MAX]; /* ISR change in flight; valid when n_proposed > 0 */
	int n_proposed;
	struct isr_follower f[ISR_REPLICAS_MAX];
	int n_f;
};

/* Starts a leadership: replicas and committed ISR from the metadata, the
 * leader's LEO and HW so far.  ISR followers count as caught up now, the
 * others as never. */
void isr_begin(struct isr_state *s, int32_t leader, const int32_t *replicas, int n_replicas, const int32_t *isr,
	       int n_isr, int64_t leader_leo, int64_t hw, int64_t now_ms);
/* The controller committed a new ISR (or replica set) for the same
 * leadership: follower positions are kept; any proposal is settled. */
void isr_update(struct isr_state *s, const int32_t *replicas, int n_replicas, const int32_t *isr, int n_isr,
		int64_t now_ms);
bool isr_contains(const struct isr_state *s, int32_t id);
/* A follower fetched at fetch_offset.  0, or -ENOENT when id is no follower. */
int isr_on_fetch(struct isr_state *s, int32_t id, int64_t fetch_offset, int64_t now_ms);
/* Recomputes the HW after the leader's LEO or a follower moved; returns
 * true when it advanced. */
bool isr_update_hw(struct isr_state *s, int64_t leader_leo);
/* The ISR without followers lagging more than lag_ms: count into out, or
 * -1 when nobody lags. */
int isr_shrink(const struct isr_state *s, int64_t now_ms, int64_t lag_ms, int32_t *out);
/* The ISR plus followers that caught up: count into out, or -1 when none. */
int isr_expand(const struct isr_state *s, int32_t *out);
/* Records an ISR change sent to the controller (maximal ISR until settled). */
void isr_propose(struct isr_state *s, const int32_t *isr, int n);
/* The proposal failed: back to the committed ISR. */
void isr_proposal_failed(struct isr_state *s);

#endif
