/*
 * test_raft.c — targeted scenarios for the KRaft core (raft/), driven
 * through the fake cluster of tests/sim/raft_cluster.h with no random
 * faults: elections, step-down, pre-vote, divergence, check-quorum,
 * snapshots, graceful resignation, observers, DescribeQuorum.  Each test
 * also runs the cluster's invariant checks and prints the trace on failure.
 */
#include <check.h>
#include <errno.h>

#include "tests/sim/raft_cluster.h"

#define STEP_MS 5

static void assert_ok(struct sc_cluster *c)
{
	if (c->failed)
		sc_print_failure(c, stderr);
	ck_assert_msg(!c->failed, "invariant broken: %s", c->failure);
	sc_check_log_matching(c);
	if (c->failed)
		sc_print_failure(c, stderr);
	ck_assert_msg(!c->failed, "invariant broken: %s", c->failure);
}

static void cut(struct sc_cluster *c, int idx)
{
	for (int i = 0; i < SC_NODES_MAX; i++)
		c->link[idx][i] = c->link[i][idx] = false;
}

static void heal(struct sc_cluster *c)
{
	for (int a = 0; a < SC_NODES_MAX; a++)
		for (int b = 0; b < SC_NODES_MAX; b++)
			c->link[a][b] = true;
}

/* Runs until some node leads (and is not idx_not), at most max_ms; -1 if none. */
static int wait_leader(struct sc_cluster *c, int64_t max_ms, int idx_not)
{
	for (int64_t t = 0; t <= max_ms && !c->failed; t += STEP_MS) {
		int l = sc_leader(c);
		if (l >= 0 && l != idx_not)
			return l;
		sc_advance(c, STEP_MS);
	}
	return -1;
}

static int count_leaders(const struct sc_cluster *c)
{
	int n = 0;
	for (int i = 0; i < c->n; i++)
		n += c->nodes[i].up && raft_role(&c->nodes[i].r) == RAFT_LEADER;
	return n;
}

START_TEST(test_raft_single_node_elects_itself_and_commits)
{
	struct sc_cluster c;
	sc_init(&c, 1, 0, 1);
	sc_start_all(&c);
	sc_advance(&c, 1);
	ck_assert_int_eq(raft_role(&c.nodes[0].r), RAFT_LEADER);
	ck_assert_int_eq(raft_epoch(&c.nodes[0].r), 1);
	int64_t off = sc_propose(&c, 0, 1);
	ck_assert_int_eq(off, 1); /* offset 0 is the leader-change entry */
	sc_run(&c, 20, STEP_MS);
	ck_assert_int_eq(raft_high_watermark(&c.nodes[0].r), 2);
	ck_assert_int_eq(c.nodes[0].applied, 2);
	assert_ok(&c);
	sc_deinit(&c);
}
END_TEST

START_TEST(test_raft_three_nodes_elect_one_leader)
{
	struct sc_cluster c;
	sc_init(&c, 3, 0, 2);
	sc_start_all(&c);
	int l = wait_leader(&c, 5000, -1);
	ck_assert_int_ge(l, 0);
	sc_run(&c, 500, STEP_MS);
	ck_assert_int_eq(count_leaders(&c), 1);
	int32_t epoch = raft_epoch(&c.nodes[l].r);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(raft_epoch(&c.nodes[i].r), epoch);
		ck_assert_int_eq(raft_leader_id(&c.nodes[i].r), c.nodes[l].id);
		ck_assert_int_eq(raft_high_watermark(&c.nodes[i].r), 1);
	}
	/* Proposals commit everywhere; a follower's propose is refused. */
	int f = (l + 1) % 3;
	ck_assert_int_eq(sc_propose(&c, f, 1), -1);
	ck_assert_int_eq(c.nodes[f].out.propose_error, TM_ERR_NOT_LEADER_OR_FOLLOWER);
	ck_assert_int_eq(sc_propose(&c, l, 3), 1);
	ck_assert_int_eq(sc_propose(&c, l, 1), 4);
	sc_run(&c, 200, STEP_MS);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(c.nodes[i].applied, 5);
	assert_ok(&c);
	sc_deinit(&c);
}
END_TEST

START_TEST(test_raft_stale_leader_steps_down_on_higher_epoch)
{
	struct sc_cluster c;
	sc_init(&c, 3, 0, 3);
	sc_start_all(&c);
	int l = wait_leader(&c, 5000, -1);
	ck_assert_int_ge(l, 0);
	sc_run(&c, 200, STEP_MS);
	int32_t epoch = raft_epoch(&c.nodes[l].r);
	int f = (l + 1) % 3;
	/* A real Vote from a voter whose log is as long as ours, one epoch up. */
	struct raft_msg m = {.type = RAFT_MSG_VOTE_REQ, .from = c.nodes[f].id};
	m.u.vote_req.candidate_epoch = epoch + 1;
	m.u.vote_req.candidate_id = c.nodes[f].id;
	m.u.vote_req.voter_id = c.nodes[l].id;
	m.u.vote_req.last_offset_epoch = epoch;
	m.u.vote_req.last_offset = raft_log_end_offset(&c.nodes[l].r);
	struct raft_event ev = {.type = RAFT_EV_RECV, .u.recv = &m};
	ev.now_ms = c.now_ms;
	ck_assert_int_eq(raft_step(&c.nodes[l].r, &ev, &c.nodes[l].out), 0);
	ck_assert_int_eq(raft_role(&c.nodes[l].r), RAFT_VOTED);
	ck_assert_int_eq(raft_epoch(&c.nodes[l].r), epoch + 1);
	ck_assert_int_eq(raft_voted_id(&c.nodes[l].r), c.nodes[f].id);
	/* The vote is persisted before the granting response leaves. */
	int persist_at = -1, send_at = -1;
	for (size_t k = 0; k < c.nodes[l].out.n; k++) {
		const struct raft_action *a = &c.nodes[l].out.v[k];
		if (a->type == RAFT_ACT_PERSIST_STATE && persist_at < 0)
			persist_at = (int)k;
		if (a->type == RAFT_ACT_SEND && a->u.send.msg.type == RAFT_MSG_VOTE_RESP) {
			send_at = (int)k;
			ck_assert(a->u.send.msg.u.vote_resp.vote_granted);
		}
	}
	ck_assert_int_ge(persist_at, 0);
	ck_assert_int_gt(send_at, persist_at);
	raft_actions_reset(&c.nodes[l].out);
	/* A stale leader answering a Fetch at a lower epoch is fenced too. */
	sc_run(&c, 5000, STEP_MS);
	ck_assert_int_eq(count_leaders(&c), 1);
	ck_assert_int_gt(raft_epoch(&c.nodes[sc_leader(&c)].r), epoch);
	assert_ok(&c);
	sc_deinit(&c);
}
END_TEST

START_TEST(test_raft_failed_prevote_does_not_bump_epoch)
{
	struct sc_cluster c;
	sc_init(&c, 3, 0, 4);
	sc_start_all(&c);
	int l = wait_leader(&c, 5000, -1);
	ck_assert_int_ge(l, 0);
	sc_run(&c, 200, STEP_MS);
	int32_t epoch = raft_epoch(&c.nodes[l].r);
	int f = (l + 1) % 3;
	/* Isolated, the follower times out and keeps asking for pre-votes. */
	c.link[f][0] = c.link[f][1] = c.link[f][2] = false;
	c.link[0][f] = c.link[1][f] = c.link[2][f] = false;
	sc_run(&c, 8000, STEP_MS);
	ck_assert_int_eq(raft_role(&c.nodes[f].r), RAFT_PROSPECTIVE);
	ck_assert_int_eq(raft_epoch(&c.nodes[f].r), epoch);
	/* Back on the network its pre-votes are refused (the leader is alive)
	 * and it returns to following without disturbing anyone. */
	heal(&c);
	sc_run(&c, 3000, STEP_MS);
	ck_assert_int_eq(raft_role(&c.nodes[l].r), RAFT_LEADER);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(raft_epoch(&c.nodes[i].r), epoch);
	ck_assert_int_eq(raft_role(&c.nodes[f].r), RAFT_FOLLOWER);
	assert_ok(&c);
	sc_deinit(&c);
}
END_TEST

START_TEST(test_raft_divergent_follower_truncates)
{
	struct sc_cluster c;
	sc_init(&c, 3, 0, 5);
	sc_start_all(&c);
	int l = wait_leader(&c, 5000, -1);
	ck_assert_int_ge(l, 0);
	sc_run(&c, 200, STEP_MS);
	int64_t base = raft_log_end_offset(&c.nodes[l].r);
	/* The old leader, cut off, appends entries nobody else gets. */
	cut(&c, l);
	for (int i = 0; i < 4; i++)
		ck_assert_int_ge(sc_propose(&c, l, 1), base);
	sc_run(&c, 50, STEP_MS);
	ck_assert_int_eq(raft_log_end_offset(&c.nodes[l].r), base + 4);
	int m = wait_leader(&c, 8000, l);
	ck_assert_int_ge(m, 0);
	ck_assert_int_gt(raft_epoch(&c.nodes[m].r), raft_epoch(&c.nodes[l].r));
	sc_propose(&c, m, 1);
	sc_run(&c, 200, STEP_MS);
	int64_t trunc_before = c.truncations;
	heal(&c);
	sc_run(&c, 3000, STEP_MS);
	ck_assert_int_gt(c.truncations, trunc_before);
	ck_assert_int_eq(raft_role(&c.nodes[l].r), RAFT_FOLLOWER);
	ck_assert_int_eq(raft_log_end_offset(&c.nodes[l].r), raft_log_end_offset(&c.nodes[m].r));
	ck_assert_int_eq(c.nodes[l].applied, c.nodes[m].applied);
	long i = sc_find(&c.nodes[l], base);
	ck_assert_int_ge(i, 0);
	ck_assert_int_eq(c.nodes[l].log[i].epoch, raft_epoch(&c.nodes[m].r));
	assert_ok(&c);
	sc_deinit(&c);
}
END_TEST

START_TEST(test_raft_check_quorum_resigns_isolated_leader)
{
	struct sc_cluster c;
	sc_init(&c, 3, 0, 6);
	sc_start_all(&c);
	int l = wait_leader(&c, 5000, -1);
	ck_assert_int_ge(l, 0);
	sc_run(&c, 200, STEP_MS);
	int32_t epoch = raft_epoch(&c.nodes[l].r);
	cut(&c, l);
	/* Within 1.5 x fetch timeout (3 s) plus slack it must give up. */
	sc_run(&c, 3200, STEP_MS);
	ck_assert_int_ne(raft_role(&c.nodes[l].r), RAFT_LEADER);
	ck_assert_int_eq(raft_epoch(&c.nodes[l].r), epoch);
	/* A proposal to it is now refused instead of hanging. */
	ck_assert_int_eq(sc_propose(&c, l, 1), -1);
	assert_ok(&c);
	sc_deinit(&c);
}
END_TEST

START_TEST(test_raft_follower_behind_log_start_fetches_snapshot)
{
	struct sc_cluster c;
	sc_init(&c, 3, 0, 7);
	c.cfg.snapshot_chunk_bytes = 16; /* 64-byte snapshot in 4 chunks */
	sc_start_all(&c);
	int l = wait_leader(&c, 5000, -1);
	ck_assert_int_ge(l, 0);
	sc_run(&c, 200, STEP_MS);
	int f = (l + 1) % 3;
	sc_crash(&c, f);
	for (int i = 0; i < 20; i++) {
		sc_propose(&c, l, 1 + (uint32_t)(i % 3));
		sc_run(&c, 20, STEP_MS);
	}
	for (int i = 0; i < 3; i++)
		if (i != f)
			ck_assert_int_eq(sc_take_snapshot(&c, i), 0);
	int64_t start = raft_log_start_offset(&c.nodes[l].r);
	ck_assert_int_gt(start, raft_log_end_offset(&c.nodes[l].r) - 5);
	sc_start(&c, f);
	sc_run(&c, 2000, STEP_MS);
	ck_assert_int_ge(c.snapshots_installed, 1);
	ck_assert_int_eq(raft_log_start_offset(&c.nodes[f].r), start);
	ck_assert_int_eq(c.nodes[f].applied, c.nodes[l].applied);
	ck_assert_int_eq(c.nodes[f].sm_hash, c.nodes[l].sm_hash);
	/* And it keeps replicating after the snapshot. */
	sc_propose(&c, l, 1);
	sc_run(&c, 200, STEP_MS);
	ck_assert_int_eq(c.nodes[f].applied, c.nodes[l].applied);
	assert_ok(&c);
	sc_deinit(&c);
}
END_TEST

START_TEST(test_raft_graceful_shutdown_makes_fast_election)
{
	struct sc_cluster c;
	sc_init(&c, 3, 0, 8);
	sc_start_all(&c);
	int l = wait_leader(&c, 5000, -1);
	ck_assert_int_ge(l, 0);
	sc_run(&c, 200, STEP_MS);
	int32_t epoch = raft_epoch(&c.nodes[l].r);
	struct raft_event ev = {.type = RAFT_EV_SHUTDOWN};
	sc_step(&c, &c.nodes[l], &ev);
	ck_assert_int_eq(raft_role(&c.nodes[l].r), RAFT_RESIGNED);
	int64_t t0 = c.now_ms;
	int m = wait_leader(&c, 5000, l);
	ck_assert_int_ge(m, 0);
	/* Far sooner than the 2 s fetch timeout a silent leader would cost. */
	ck_assert_int_lt(c.now_ms - t0, 300);
	ck_assert_int_eq(raft_epoch(&c.nodes[m].r), epoch + 1);
	sc_crash(&c, l);
	sc_propose(&c, m, 1);
	sc_run(&c, 200, STEP_MS);
	ck_assert_int_eq(c.nodes[(l + 1) % 3 == m ? (l + 2) % 3 : (l + 1) % 3].applied,
			 c.nodes[m].applied);
	assert_ok(&c);
	sc_deinit(&c);
}
END_TEST

START_TEST(test_raft_observer_follows_and_describe_quorum)
{
	struct sc_cluster c;
	sc_init(&c, 3, 1, 9);
	sc_start_all(&c);
	int l = wait_leader(&c, 5000, -1);
	ck_assert_int_ge(l, 0);
	ck_assert_int_eq(sc_propose(&c, l, 2), 1);
	sc_run(&c, 1500, STEP_MS);
	struct sc_node *obs = &c.nodes[3];
	ck_assert(!raft_is_voter(&obs->r, obs->id));
	ck_assert_int_eq(raft_role(&obs->r), RAFT_FOLLOWER);
	ck_assert_int_eq(raft_leader_id(&obs->r), c.nodes[l].id);
	ck_assert_int_eq(obs->applied, 3);
	struct raft_quorum_info qi;
	raft_describe_quorum(&c.nodes[l].r, &qi);
	ck_assert_int_eq(qi.error, 0);
	ck_assert_int_eq(qi.leader_id, c.nodes[l].id);
	ck_assert_int_eq(qi.high_watermark, 3);
	ck_assert_int_eq(qi.n_voters, 3);
	for (uint32_t i = 0; i < qi.n_voters; i++) {
		ck_assert_int_eq(qi.voters[i].log_end_offset, 3);
		ck_assert_int_ge(qi.voters[i].last_caught_up_ms, 0);
	}
	ck_assert_int_eq(qi.n_observers, 1);
	ck_assert_int_eq(qi.observers[0].replica_id, obs->id);
	ck_assert_int_eq(qi.observers[0].log_end_offset, 3);
	raft_describe_quorum(&c.nodes[(l + 1) % 3].r, &qi);
	ck_assert_int_eq(qi.error, TM_ERR_NOT_LEADER_OR_FOLLOWER);
	assert_ok(&c);
	sc_deinit(&c);
}
END_TEST

START_TEST(test_raft_restart_keeps_vote_and_rejects_bad_state)
{
	struct raft_config cfg;
	raft_config_defaults(&cfg);
	cfg.node_id = 2;
	cfg.voters[0] = 1;
	cfg.voters[1] = 2;
	cfg.voters[2] = 3;
	cfg.n_voters = 3;
	struct raft_epoch_start eps[] = {{1, 0}, {3, 4}};
	struct raft_persisted p = {
		.epoch = 5, .voted_id = 3, .leader_id = RAFT_NODE_NONE,
		.log_end_offset = 6, .epochs = eps, .n_epochs = 2,
	};
	struct raft r;
	ck_assert_int_eq(raft_init(&r, &cfg, 42, &p, 0), 0);
	ck_assert_int_eq(raft_role(&r), RAFT_VOTED);
	ck_assert_int_eq(raft_epoch(&r), 5);
	ck_assert_int_eq(raft_voted_id(&r), 3);
	raft_deinit(&r);
	/* A checkpoint naming an epoch past the recovered log end (its
	 * entries were a torn tail) is accepted; that epoch is forgotten. */
	struct raft_epoch_start torn[] = {{1, 0}, {3, 4}, {5, 6}};
	p.epochs = torn;
	p.n_epochs = 3;
	ck_assert_int_eq(raft_init(&r, &cfg, 42, &p, 0), 0);
	ck_assert_int_eq(raft_log_end_offset(&r), 6);
	raft_deinit(&r);
	/* Epochs out of order, or entries with no known epoch: refused. */
	struct raft_epoch_start bad[] = {{3, 0}, {1, 4}};
	p.epochs = bad;
	p.n_epochs = 2;
	ck_assert_int_eq(raft_init(&r, &cfg, 42, &p, 0), -EINVAL);
	p.epochs = NULL;
	p.n_epochs = 0;
	ck_assert_int_eq(raft_init(&r, &cfg, 42, &p, 0), -EINVAL);
	cfg.n_voters = 0;
	ck_assert_int_eq(raft_init(&r, &cfg, 42, NULL, 0), -EINVAL);
}
END_TEST

START_TEST(test_raft_rejects_other_cluster_and_unknown_voters)
{
	struct raft_config cfg;
	raft_config_defaults(&cfg);
	snprintf(cfg.cluster_id, sizeof(cfg.cluster_id), "tidemark-a");
	cfg.node_id = 2;
	cfg.voters[0] = 1;
	cfg.voters[1] = 2;
	cfg.voters[2] = 3;
	cfg.n_voters = 3;
	struct raft r;
	struct raft_actions out;
	raft_actions_init(&out);
	ck_assert_int_eq(raft_init(&r, &cfg, 7, NULL, 0), 0);
	struct raft_msg m = {.type = RAFT_MSG_VOTE_REQ, .from = 1, .cluster_id = "tidemark-b"};
	m.u.vote_req.candidate_epoch = 1;
	m.u.vote_req.candidate_id = 1;
	m.u.vote_req.voter_id = 2;
	struct raft_event ev = {.type = RAFT_EV_RECV, .now_ms = 10, .u.recv = &m};
	ck_assert_int_eq(raft_step(&r, &ev, &out), 0);
	/* A candidate from outside the voter set is refused as well. */
	m.cluster_id = "tidemark-a";
	m.from = 9;
	m.u.vote_req.candidate_id = 9;
	ck_assert_int_eq(raft_step(&r, &ev, &out), 0);
	int16_t errors[2];
	int n = 0;
	for (size_t k = 0; k < out.n; k++) {
		const struct raft_action *a = &out.v[k];
		ck_assert_int_ne(a->type, RAFT_ACT_PERSIST_STATE);
		if (a->type == RAFT_ACT_SEND && a->u.send.msg.type == RAFT_MSG_VOTE_RESP) {
			ck_assert(!a->u.send.msg.u.vote_resp.vote_granted);
			ck_assert_int_lt(n, 2);
			errors[n++] = a->u.send.msg.u.vote_resp.error;
		}
	}
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(errors[0], TM_ERR_INCONSISTENT_CLUSTER_ID);
	ck_assert_int_eq(errors[1], TM_ERR_INCONSISTENT_VOTER_SET);
	ck_assert_int_eq(raft_epoch(&r), 0);
	ck_assert_int_eq(raft_role(&r), RAFT_UNATTACHED);
	raft_actions_deinit(&out);
	raft_deinit(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_raft_single_node_elects_itself_and_commits);
	tcase_add_test(tc, test_raft_three_nodes_elect_one_leader);
	tcase_add_test(tc, test_raft_stale_leader_steps_down_on_higher_epoch);
	tcase_add_test(tc, test_raft_failed_prevote_does_not_bump_epoch);
	tcase_add_test(tc, test_raft_divergent_follower_truncates);
	tcase_add_test(tc, test_raft_check_quorum_resigns_isolated_leader);
	tcase_add_test(tc, test_raft_follower_behind_log_start_fetches_snapshot);
	tcase_add_test(tc, test_raft_graceful_shutdown_makes_fast_election);
	tcase_add_test(tc, test_raft_observer_follows_and_describe_quorum);
	tcase_add_test(tc, test_raft_restart_keeps_vote_and_rejects_bad_state);
	tcase_add_test(tc, test_raft_rejects_other_cluster_and_unknown_voters);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
