/*
 * test_isr.c — the leader's follower tracking with a fake clock: high
 * watermark = minimum over the ISR, shrink after the lag time, expand once a
 * follower reaches the high watermark, maximal ISR while a change is out.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "broker/isr.h"

static const int32_t replicas3[] = { 1, 2, 3 };

/* Leader 1 of replicas {1,2,3}, all in sync, log end 100, HW 90, t=1000. */
static void start3(struct isr_state *s)
{
	isr_begin(s, 1, replicas3, 3, replicas3, 3, 100, 90, 1000);
}

START_TEST(test_hw_waits_for_every_isr_member)
{
	struct isr_state s;
	start3(&s);
	ck_assert_int_eq(s.hw, 90);
	/* Nothing heard from the followers yet: the HW does not move. */
	ck_assert(!isr_update_hw(&s, 100));
	ck_assert_int_eq(isr_on_fetch(&s, 2, 100, 1010), 0);
	ck_assert(!isr_update_hw(&s, 100)); /* follower 3 still unknown */
	ck_assert_int_eq(isr_on_fetch(&s, 3, 95, 1020), 0);
	ck_assert(isr_update_hw(&s, 100));
	ck_assert_int_eq(s.hw, 95);
	ck_assert_int_eq(isr_on_fetch(&s, 3, 100, 1030), 0);
	ck_assert(isr_update_hw(&s, 100));
	ck_assert_int_eq(s.hw, 100);
	/* The leader's own log end bounds it. */
	ck_assert_int_eq(isr_on_fetch(&s, 2, 100, 1040), 0);
	ck_assert(!isr_update_hw(&s, 100));
}
END_TEST

START_TEST(test_hw_never_moves_back)
{
	struct isr_state s;
	start3(&s);
	isr_on_fetch(&s, 2, 100, 1010);
	isr_on_fetch(&s, 3, 100, 1010);
	ck_assert(isr_update_hw(&s, 100));
	/* A follower restarting its fetches lower does not lower the HW. */
	isr_on_fetch(&s, 3, 50, 1020);
	ck_assert(!isr_update_hw(&s, 120));
	ck_assert_int_eq(s.hw, 100);
}
END_TEST

START_TEST(test_leader_alone_commits_at_its_log_end)
{
	struct isr_state s;
	int32_t just_me[] = { 1 };
	isr_begin(&s, 1, replicas3, 3, just_me, 1, 100, 0, 0);
	ck_assert(isr_update_hw(&s, 100));
	ck_assert_int_eq(s.hw, 100);
	/* Followers outside the ISR do not hold it back. */
	isr_on_fetch(&s, 2, 10, 5);
	ck_assert(isr_update_hw(&s, 110));
	ck_assert_int_eq(s.hw, 110);
}
END_TEST

START_TEST(test_unknown_replica_is_refused)
{
	struct isr_state s;
	start3(&s);
	ck_assert_int_lt(isr_on_fetch(&s, 7, 100, 1000), 0);
	ck_assert_int_lt(isr_on_fetch(&s, 1, 100, 1000), 0); /* the leader is no follower */
}
END_TEST

START_TEST(test_shrink_after_lag_time)
{
	struct isr_state s;
	int32_t out[ISR_REPLICAS_MAX];
	start3(&s);
	/* Follower 2 keeps up; follower 3 fetches but stays behind. */
	for (int64_t t = 1000; t <= 20000; t += 500) {
		isr_on_fetch(&s, 2, 100, t);
		isr_on_fetch(&s, 3, 50, t);
		isr_update_hw(&s, 100);
		int n = isr_shrink(&s, t, 10000, out);
		if (t - 1000 <= 10000) {
			ck_assert_msg(n == -1, "shrunk too early at t=%lld", (long long)t);
		} else {
			ck_assert_int_eq(n, 2);
			ck_assert_int_eq(out[0], 1);
			ck_assert_int_eq(out[1], 2);
			return;
		}
	}
	ck_abort_msg("never shrunk");
}
END_TEST

START_TEST(test_caught_up_at_previous_fetch_when_leader_moved_meanwhile)
{
	struct isr_state s;
	int32_t out[ISR_REPLICAS_MAX];
	start3(&s);
	isr_on_fetch(&s, 3, 100, 2000);     /* caught up at 2000 (leader LEO 100) */
	s.leader_leo = 150;                 /* the leader appended */
	isr_on_fetch(&s, 3, 100, 9000);     /* behind now: last caught up stays 2000 */
	s.leader_leo = 200;
	isr_on_fetch(&s, 3, 150, 12000);    /* reached the LEO of its previous fetch: caught up at 9000 */
	isr_on_fetch(&s, 2, 200, 12000);
	ck_assert_int_eq(isr_shrink(&s, 18000, 10000, out), -1);
	ck_assert_int_eq(isr_shrink(&s, 19500, 10000, out), 2); /* 19500 - 9000 > 10000 */
}
END_TEST

START_TEST(test_expand_when_follower_reaches_hw)
{
	struct isr_state s;
	int32_t out[ISR_REPLICAS_MAX];
	int32_t isr12[] = { 1, 2 };
	isr_begin(&s, 1, replicas3, 3, isr12, 2, 100, 100, 0);
	isr_on_fetch(&s, 2, 100, 10);
	isr_update_hw(&s, 100);
	isr_on_fetch(&s, 3, 60, 10);
	ck_assert_int_eq(isr_expand(&s, out), -1);
	isr_on_fetch(&s, 3, 100, 20);
	ck_assert_int_eq(isr_expand(&s, out), 3);
	ck_assert_int_eq(out[2], 3);
	/* While the expansion is out, the HW counts the new member (maximal ISR). */
	isr_propose(&s, out, 3);
	isr_on_fetch(&s, 2, 130, 30);
	ck_assert(isr_update_hw(&s, 130) == false); /* 3 is at 100 = HW already */
	isr_on_fetch(&s, 3, 120, 30);
	ck_assert(isr_update_hw(&s, 130));
	ck_assert_int_eq(s.hw, 120);
	/* Committed: the follower is a member. */
	isr_update(&s, replicas3, 3, out, 3, 40);
	ck_assert(isr_contains(&s, 3));
	ck_assert_int_eq(s.n_proposed, 0);
}
END_TEST

START_TEST(test_expand_needs_the_current_epoch)
{
	struct isr_state s;
	int32_t out[ISR_REPLICAS_MAX];
	int32_t isr1[] = { 1 };
	/* New leadership at LEO 100 with a stale HW of 80. */
	isr_begin(&s, 1, replicas3, 3, isr1, 1, 100, 80, 0);
	isr_on_fetch(&s, 2, 90, 10); /* above the HW but before this epoch began */
	ck_assert_int_eq(isr_expand(&s, out), -1);
	isr_on_fetch(&s, 2, 100, 20);
	ck_assert_int_eq(isr_expand(&s, out), 2);
}
END_TEST

START_TEST(test_replica_set_change_keeps_positions)
{
	struct isr_state s;
	start3(&s);
	isr_on_fetch(&s, 2, 100, 10);
	isr_on_fetch(&s, 3, 100, 10);
	int32_t r4[] = { 1, 2, 3, 4 };
	isr_update(&s, r4, 4, replicas3, 3, 20);
	ck_assert_int_eq(s.n_f, 3);
	ck_assert(isr_update_hw(&s, 100)); /* 4 is outside the ISR: not waited for */
	ck_assert_int_eq(s.hw, 100);
	int32_t r12[] = { 1, 2 };
	isr_update(&s, r12, 2, r12, 2, 30);
	ck_assert_int_eq(s.n_f, 1);
	ck_assert(!isr_contains(&s, 3));
}
END_TEST

/* Seeded simulation: a leader appending, followers fetching at random
 * (never ahead of the leader, never backwards except after a restart),
 * ISR changes proposed, committed or refused at random, with a fake clock.
 * After every step: the HW never moves back, never passes the leader's log
 * end, never passes a position an ISR member (committed or proposed) has
 * reported; and once every member has reported the leader's end, the HW is
 * there.  A failure names the seed and step. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void sim_one(uint64_t seed)
{
	uint64_t r = seed * 2654435761u + 1;
	int32_t replicas[] = { 1, 2, 3, 4 };
	int nrep = 2 + (int)(rng_next(&r) % 3);
	struct isr_state s;
	int64_t now = 0, leo = 0;
	isr_begin(&s, 1, replicas, nrep, replicas, nrep, 0, 0, now);
	int64_t pos[5] = { 0, 0, -1, -1, -1 }; /* what each follower last reported */
	int64_t most[5] = { 0 };                /* the most each follower ever reported */
	int64_t last_hw = s.hw;
	for (int step = 0; step < 2000; step++) {
		now += (int64_t)(rng_next(&r) % 200);
		int what = (int)(rng_next(&r) % 10);
		if (what < 3) {
			leo += 1 + (int64_t)(rng_next(&r) % 5);
		} else if (what < 8) {
			int32_t id = 2 + (int32_t)(rng_next(&r) % (uint64_t)(nrep - 1));
			int64_t at = pos[id] < 0 ? 0 : pos[id];
			at += (int64_t)(rng_next(&r) % (uint64_t)(leo - at + 1));
			s.leader_leo = leo;
			if (isr_on_fetch(&s, id, at, now))
				ck_abort_msg("seed %llu step %d: follower %d refused", (unsigned long long)seed, step, id);
			pos[id] = at;
			if (at > most[id])
				most[id] = at;
		} else if (what == 8) {
			int32_t out[ISR_REPLICAS_MAX];
			int n = (rng_next(&r) & 1) ? isr_shrink(&s, now, 1000, out) : isr_expand(&s, out);
			if (n > 0) {
				isr_propose(&s, out, n);
				if (rng_next(&r) % 3 == 0)
					isr_proposal_failed(&s);
				else if (rng_next(&r) % 2 == 0)
					isr_update(&s, replicas, nrep, out, n, now);
			}
		} else if (rng_next(&r) % 2) {
			/* A new leadership of the same leader: followers unknown again. */
			int32_t isr[ISR_REPLICAS_MAX];
			int n = s.n_isr;
			for (int i = 0; i < n; i++)
				isr[i] = s.isr[i];
			isr_begin(&s, 1, replicas, nrep, isr, n, leo, s.hw, now);
			for (int i = 2; i < 5; i++)
				pos[i] = -1;
			for (int i = 2; i < 5; i++)
				most[i] = s.hw; /* what they had before counts up to the HW only */
		} else {
			/* A follower restarts: its next fetch may come from further back. */
			int32_t id = 2 + (int32_t)(rng_next(&r) % (uint64_t)(nrep - 1));
			if (pos[id] > 0)
				pos[id] = (int64_t)(rng_next(&r) % (uint64_t)pos[id]);
		}
		isr_update_hw(&s, leo);
		/* Plain checks: Check's asserts cost a syscall each. */
		if (s.hw < last_hw)
			ck_abort_msg("seed %llu step %d: HW moved back %lld -> %lld", (unsigned long long)seed, step,
				     (long long)last_hw, (long long)s.hw);
		if (s.hw > leo)
			ck_abort_msg("seed %llu step %d: HW %lld past the leader's end %lld", (unsigned long long)seed, step,
				     (long long)s.hw, (long long)leo);
		bool all_there = true;
		for (int i = 0; i < s.n_f; i++) {
			const struct isr_follower *f = &s.f[i];
			bool member = isr_contains(&s, f->id);
			for (int k = 0; k < s.n_proposed; k++)
				member |= s.proposed[k] == f->id;
			if (!member)
				continue;
			all_there &= f->leo == leo;
			/* The HW may have been reached before a restart moved this follower back. */
			/* Nothing above what a member ever reported can be committed. */
			if (s.hw > most[f->id])
				ck_abort_msg("seed %llu step %d: HW %lld above member %d's best %lld",
					     (unsigned long long)seed, step, (long long)s.hw, f->id, (long long)most[f->id]);
		}
		if (all_there && s.hw != leo)
			ck_abort_msg("seed %llu step %d: every member at %lld but HW %lld", (unsigned long long)seed, step,
				     (long long)leo, (long long)s.hw);
		last_hw = s.hw;
	}
}

START_TEST(test_simulated_histories_keep_hw_invariants)
{
	const char *env = getenv("ISR_SIM_SEEDS");
	int seeds = env ? atoi(env) : 500;
	for (int i = 1; i <= seeds; i++)
		sim_one((uint64_t)i);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("isr");
	TCase *tc = tcase_create("isr");
	tcase_add_test(tc, test_hw_waits_for_every_isr_member);
	tcase_add_test(tc, test_hw_never_moves_back);
	tcase_add_test(tc, test_leader_alone_commits_at_its_log_end);
	tcase_add_test(tc, test_unknown_replica_is_refused);
	tcase_add_test(tc, test_shrink_after_lag_time);
	tcase_add_test(tc, test_caught_up_at_previous_fetch_when_leader_moved_meanwhile);
	tcase_add_test(tc, test_expand_when_follower_reaches_hw);
	tcase_add_test(tc, test_expand_needs_the_current_epoch);
	tcase_add_test(tc, test_replica_set_change_keeps_positions);
	tcase_add_test(tc, test_simulated_histories_keep_hw_invariants);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
