/*
 * test_elect.c — the pure rules behind ElectLeaders, the automatic leader
 * balance, controlled shutdown and partition reassignment (broker/elect.c),
 * driven through the metadata image: every change is applied with md_apply
 * as the controller would commit it, and the test checks what Metadata
 * would then show (leader, leader epoch, replicas, ISR).
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "broker/elect.h"
#include "broker/metadata.h"
#include "common/kerr.h"
#include "protocol/kafka_msgs.h"

static struct md_image img;
static const struct kuuid topic_id = { { 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7 } };

static void register_broker(int32_t id)
{
	struct kafka_register_broker_record r;
	kafka_register_broker_record_init(&r);
	r.broker_id = id;
	r.broker_epoch = 100 + id;
	r.end_points_count = 0;
	r.features_count = 0;
	r.log_dirs_count = 0;
	r.rack = kstr_null();
	r.fenced = false;
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_REGISTER_BROKER, &r), 0);
}

static void broker_state(int32_t id, int fenced, int shutdown)
{
	struct kafka_broker_registration_change_record r;
	kafka_broker_registration_change_record_init(&r);
	r.broker_id = id;
	r.broker_epoch = 100 + id;
	r.fenced = (int8_t)fenced;
	r.in_controlled_shutdown = (int8_t)shutdown;
	r.log_dirs_count = -1;
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_BROKER_REGISTRATION_CHANGE, &r), 0);
}

/* Adds partition `pi` of topic "t" with the given replicas, ISR and leader. */
static void add_partition(int32_t pi, const int32_t *replicas, int n, const int32_t *isr, int n_isr, int32_t leader)
{
	struct kafka_partition_record pr;
	kafka_partition_record_init(&pr);
	pr.partition_id = pi;
	pr.topic_id = topic_id;
	pr.replicas = (int32_t *)replicas;
	pr.replicas_count = n;
	pr.isr = (int32_t *)isr;
	pr.isr_count = n_isr;
	pr.adding_replicas_count = 0;
	pr.removing_replicas_count = 0;
	pr.directories_count = 0;
	pr.leader = leader;
	pr.leader_epoch = 0;
	pr.partition_epoch = 0;
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_PARTITION, &pr), 0);
}

static struct md_partition *part(int32_t pi)
{
	struct md_topic *t = md_topic_by_name(&img, "t", 1);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_lt(pi, t->n_partitions);
	return &t->parts[pi];
}

static void commit(int32_t pi, const struct elect_change *c)
{
	struct kafka_partition_change_record r;
	elect_change_record(c, &topic_id, pi, &r);
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_PARTITION_CHANGE, &r), 0);
}

/* "1,2,3" for a set, to compare in one assertion with a readable failure. */
static const char *fmt(const int32_t *set, int n)
{
	static char bufs[4][128];
	static int k;
	char *b = bufs[k++ % 4];
	b[0] = 0;
	for (int i = 0; i < n; i++)
		snprintf(b + strlen(b), 128 - strlen(b), "%s%d", i ? "," : "", set[i]);
	return b;
}

static void setup(void)
{
	md_image_init(&img);
	for (int32_t id = 1; id <= 4; id++)
		register_broker(id);
	struct kafka_topic_record t;
	kafka_topic_record_init(&t);
	t.name = kstr_c("t");
	t.topic_id = topic_id;
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_TOPIC, &t), 0);
}

static void teardown(void)
{
	md_image_deinit(&img);
}

static const int32_t R123[] = { 1, 2, 3 };
static const int32_t R23[] = { 2, 3 };
static const int32_t R1[] = { 1 };

/* ---- ElectLeaders ---- */

START_TEST(test_preferred_moves_leadership_back_and_bumps_epoch)
{
	add_partition(0, R123, 3, R123, 3, 2);
	struct elect_change c;
	ck_assert_int_eq(elect_leader(&img, part(0), ELECT_PREFERRED, &c), TM_ERR_NONE);
	ck_assert_int_eq(c.leader, 1);
	ck_assert_int_eq(c.n_isr, -1); /* the ISR is untouched */
	commit(0, &c);
	ck_assert_int_eq(part(0)->leader, 1);
	ck_assert_int_eq(part(0)->leader_epoch, 1);
	ck_assert_str_eq(fmt(part(0)->isr, part(0)->n_isr), "1,2,3");
	/* Again: nothing to do. */
	ck_assert_int_eq(elect_leader(&img, part(0), ELECT_PREFERRED, &c), TM_ERR_ELECTION_NOT_NEEDED);
}
END_TEST

START_TEST(test_preferred_unavailable_when_out_of_isr_fenced_or_shutting_down)
{
	add_partition(0, R123, 3, R23, 2, 2);     /* preferred 1 not in the ISR */
	add_partition(1, R123, 3, R123, 3, 2);    /* preferred 1 fenced (below) */
	add_partition(2, R123, 3, R123, 3, 3);
	struct elect_change c;
	ck_assert_int_eq(elect_leader(&img, part(0), ELECT_PREFERRED, &c), TM_ERR_PREFERRED_LEADER_NOT_AVAILABLE);
	broker_state(1, 1, 0);
	ck_assert_int_eq(elect_leader(&img, part(1), ELECT_PREFERRED, &c), TM_ERR_PREFERRED_LEADER_NOT_AVAILABLE);
	broker_state(1, -1, 1); /* unfenced, but in controlled shutdown */
	ck_assert(!elect_broker_active(&img, 1, -1));
	ck_assert_int_eq(elect_leader(&img, part(2), ELECT_PREFERRED, &c), TM_ERR_PREFERRED_LEADER_NOT_AVAILABLE);
}
END_TEST

START_TEST(test_preferred_gives_leaderless_partition_another_isr_member)
{
	/* Kafka's PartitionChangeBuilder: with the preferred replica gone and no
	 * valid leader, the next valid replica leads. */
	add_partition(0, R123, 3, R123, 3, -1);
	broker_state(1, 1, 0);
	struct elect_change c;
	ck_assert_int_eq(elect_leader(&img, part(0), ELECT_PREFERRED, &c), TM_ERR_NONE);
	ck_assert_int_eq(c.leader, 2);
}
END_TEST

START_TEST(test_unclean_elects_outside_the_isr_only_when_no_isr_member_lives)
{
	add_partition(0, R123, 3, R1, 1, -1);     /* only 1 in sync, and it is fenced */
	add_partition(1, R123, 3, R123, 3, 1);    /* has a leader */
	add_partition(2, R123, 3, R23, 2, -1);    /* a live ISR member exists */
	broker_state(1, 1, 0);
	struct elect_change c;
	ck_assert_int_eq(elect_leader(&img, part(0), ELECT_UNCLEAN, &c), TM_ERR_NONE);
	ck_assert_int_eq(c.leader, 2);
	commit(0, &c);
	ck_assert_int_eq(part(0)->leader, 2);
	ck_assert_str_eq(fmt(part(0)->isr, part(0)->n_isr), "2");
	ck_assert_int_eq(elect_leader(&img, part(1), ELECT_UNCLEAN, &c), TM_ERR_ELECTION_NOT_NEEDED);
	ck_assert_int_eq(elect_leader(&img, part(2), ELECT_UNCLEAN, &c), TM_ERR_NONE);
	ck_assert_int_eq(c.leader, 2);
	ck_assert_int_eq(c.n_isr, -1);
}
END_TEST

START_TEST(test_unclean_without_live_replicas_is_eligible_leaders_not_available)
{
	add_partition(0, R123, 3, R1, 1, -1);
	broker_state(1, 1, 0);
	broker_state(2, 1, 0);
	broker_state(3, 1, 0);
	struct elect_change c;
	ck_assert_int_eq(elect_leader(&img, part(0), ELECT_UNCLEAN, &c), TM_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE);
	ck_assert_int_eq(elect_leader(&img, part(0), 5, &c), TM_ERR_INVALID_REQUEST);
}
END_TEST

/* ---- controlled shutdown ---- */

START_TEST(test_shutdown_moves_leadership_and_leaves_isrs)
{
	add_partition(0, R123, 3, R123, 3, 1);    /* led by 1 */
	add_partition(1, R123, 3, R123, 3, 2);    /* 1 a follower */
	add_partition(2, R123, 3, R1, 1, 1);      /* 1 the only ISR member */
	add_partition(3, R23, 2, R23, 2, 2);      /* 1 not involved */
	struct elect_change c;
	ck_assert(elect_shutdown(&img, part(0), 1, false, &c));
	commit(0, &c);
	ck_assert_int_eq(part(0)->leader, 2);
	ck_assert_str_eq(fmt(part(0)->isr, part(0)->n_isr), "2,3");
	ck_assert(elect_shutdown(&img, part(1), 1, false, &c));
	ck_assert_int_eq(c.leader, -2);
	commit(1, &c);
	ck_assert_str_eq(fmt(part(1)->isr, part(1)->n_isr), "2,3");
	/* The last ISR member keeps its place but gives up leadership. */
	ck_assert(elect_shutdown(&img, part(2), 1, false, &c));
	commit(2, &c);
	ck_assert_int_eq(part(2)->leader, -1);
	ck_assert_str_eq(fmt(part(2)->isr, part(2)->n_isr), "1");
	ck_assert(!elect_shutdown(&img, part(3), 1, false, &c));
	ck_assert(!elect_leads_any(&img, 1));
	ck_assert(elect_leads_any(&img, 2));
}
END_TEST

START_TEST(test_shutdown_with_unclean_hands_over_outside_the_isr)
{
	add_partition(0, R123, 3, R1, 1, 1);
	struct elect_change c;
	ck_assert(elect_shutdown(&img, part(0), 1, true, &c));
	commit(0, &c);
	ck_assert_int_eq(part(0)->leader, 2);
	ck_assert_str_eq(fmt(part(0)->isr, part(0)->n_isr), "2");
}
END_TEST

/* ---- automatic leader balance ---- */

START_TEST(test_imbalance_ratio_per_preferred_broker)
{
	static const int32_t R213[] = { 2, 1, 3 };
	for (int32_t pi = 0; pi < 10; pi++)
		add_partition(pi, pi < 5 ? R123 : R213, 3, R123, 3, pi < 5 ? 1 : 2);
	bool imb[MD_BROKERS_MAX];
	ck_assert_int_eq(elect_imbalanced_brokers(&img, 10, imb), 0);
	/* Broker 1 loses one of its five: 20% > 10%. */
	struct elect_change c;
	elect_change_init(&c);
	c.leader = 3;
	commit(0, &c);
	ck_assert_int_eq(elect_imbalanced_brokers(&img, 10, imb), 1);
	ck_assert(imb[0]);  /* brokers[0] is broker 1 */
	ck_assert(!imb[1]);
	ck_assert_int_eq(elect_imbalanced_brokers(&img, 20, imb), 0); /* exactly 20% is not above */
}
END_TEST

START_TEST(test_rebalance_only_to_an_in_sync_active_preferred_replica)
{
	static const int32_t T234[] = { 2, 3, 4 };
	add_partition(0, R123, 3, R123, 3, 2);    /* moves back to 1 */
	add_partition(1, R123, 3, R23, 2, 2);     /* 1 out of the ISR */
	add_partition(2, R123, 3, R123, 3, 3);    /* being reassigned (below) */
	add_partition(3, R123, 3, R123, 3, 1);    /* balanced already */
	struct elect_change c;
	char why[200];
	ck_assert_int_eq(reassign_start(&img, part(2), T234, 3, true, &c, why, sizeof(why)), TM_ERR_NONE);
	commit(2, &c);
	bool imb[MD_BROKERS_MAX];
	/* Broker 1 leads 1 of its 3; broker 2, preferred for the reassigned
	 * partition 2 (replicas now 2,3,4,1), leads none of its 1. */
	ck_assert_int_eq(elect_imbalanced_brokers(&img, 10, imb), 2);
	ck_assert(imb[0] && imb[1]);
	ck_assert(elect_rebalance(&img, part(0), imb, &c));
	ck_assert_int_eq(c.leader, 1);
	ck_assert(!elect_rebalance(&img, part(1), imb, &c));
	ck_assert(!elect_rebalance(&img, part(2), imb, &c));
	ck_assert(!elect_rebalance(&img, part(3), imb, &c));
	broker_state(1, -1, 1); /* shutting down: not a candidate */
	ck_assert(!elect_rebalance(&img, part(0), imb, &c));
}
END_TEST

/* ---- reassignment ---- */

START_TEST(test_reassign_adds_then_completes_when_target_in_sync)
{
	static const int32_t T234[] = { 2, 3, 4 };
	add_partition(0, R123, 3, R123, 3, 1);
	struct elect_change c;
	char why[200];
	ck_assert_int_eq(reassign_start(&img, part(0), T234, 3, true, &c, why, sizeof(why)), TM_ERR_NONE);
	commit(0, &c);
	struct md_partition *p = part(0);
	ck_assert_str_eq(fmt(p->replicas, p->n_replicas), "2,3,4,1");
	ck_assert_str_eq(fmt(p->adding, p->n_adding), "4");
	ck_assert_str_eq(fmt(p->removing, p->n_removing), "1");
	ck_assert_int_eq(p->leader, 1);
	ck_assert_int_eq(p->leader_epoch, 0);
	ck_assert(reassign_ongoing(p));
	/* 4 is not in sync yet: nothing to complete. */
	ck_assert(!reassign_complete(&img, p, &c));
	/* The leader adds 4 to the ISR (AlterPartition); the reassignment completes. */
	static const int32_t ISR1234[] = { 1, 2, 3, 4 };
	struct elect_change grow;
	elect_change_init(&grow);
	memcpy(grow.isr, ISR1234, sizeof(ISR1234));
	grow.n_isr = 4;
	commit(0, &grow);
	ck_assert(reassign_complete(&img, p, &c));
	commit(0, &c);
	ck_assert_str_eq(fmt(p->replicas, p->n_replicas), "2,3,4");
	ck_assert_str_eq(fmt(p->isr, p->n_isr), "2,3,4");
	ck_assert_int_eq(p->n_adding, 0);
	ck_assert_int_eq(p->n_removing, 0);
	ck_assert_int_eq(p->leader, 2);         /* 1 was removed: the first in-sync target leads */
	ck_assert_int_eq(p->leader_epoch, 1);
	ck_assert(!reassign_ongoing(p));
}
END_TEST

START_TEST(test_reassign_shrink_completes_at_once)
{
	static const int32_t T23[] = { 2, 3 };
	add_partition(0, R123, 3, R123, 3, 1);
	struct elect_change c;
	char why[200];
	ck_assert_int_eq(reassign_start(&img, part(0), T23, 2, true, &c, why, sizeof(why)), TM_ERR_NONE);
	commit(0, &c);
	struct md_partition *p = part(0);
	ck_assert_str_eq(fmt(p->replicas, p->n_replicas), "2,3");
	ck_assert_str_eq(fmt(p->isr, p->n_isr), "2,3");
	ck_assert_int_eq(p->leader, 2);
	ck_assert(!reassign_ongoing(p));
	/* The same assignment again changes nothing. */
	ck_assert_int_eq(reassign_start(&img, p, T23, 2, true, &c, why, sizeof(why)), TM_ERR_NONE);
	ck_assert(elect_change_empty(&c));
}
END_TEST

START_TEST(test_reassign_refuses_bad_assignments)
{
	static const int32_t DUP[] = { 1, 1 };
	static const int32_t UNKNOWN[] = { 1, 9 };
	static const int32_t T12[] = { 1, 2 };
	add_partition(0, R123, 3, R123, 3, 1);
	struct elect_change c;
	char why[200];
	ck_assert_int_eq(reassign_start(&img, part(0), DUP, 2, true, &c, why, sizeof(why)), TM_ERR_INVALID_REPLICA_ASSIGNMENT);
	ck_assert_msg(strstr(why, "broker 1 more than once"), "message: %s", why);
	ck_assert_int_eq(reassign_start(&img, part(0), UNKNOWN, 2, true, &c, why, sizeof(why)), TM_ERR_INVALID_REPLICA_ASSIGNMENT);
	ck_assert_msg(strstr(why, "broker 9, but no such broker is registered"), "message: %s", why);
	ck_assert_int_eq(reassign_start(&img, part(0), T12, 0, true, &c, why, sizeof(why)), TM_ERR_INVALID_REPLICA_ASSIGNMENT);
	ck_assert_int_eq(reassign_start(&img, part(0), T12, 2, false, &c, why, sizeof(why)), TM_ERR_INVALID_REPLICATION_FACTOR);
	ck_assert(elect_change_empty(&c));
}
END_TEST

START_TEST(test_reassign_cancel_restores_original_replicas)
{
	static const int32_t T234[] = { 2, 3, 4 };
	add_partition(0, R123, 3, R123, 3, 1);
	struct elect_change c;
	char why[200];
	ck_assert_int_eq(reassign_cancel(&img, part(0), false, &c, why, sizeof(why)), TM_ERR_NO_REASSIGNMENT_IN_PROGRESS);
	ck_assert_int_eq(reassign_start(&img, part(0), T234, 3, true, &c, why, sizeof(why)), TM_ERR_NONE);
	commit(0, &c);
	ck_assert_int_eq(reassign_cancel(&img, part(0), false, &c, why, sizeof(why)), TM_ERR_NONE);
	commit(0, &c);
	struct md_partition *p = part(0);
	/* The original members, in the reassignment's order (Kafka's
	 * PartitionReassignmentRevert): the record kept no other. */
	ck_assert_str_eq(fmt(p->replicas, p->n_replicas), "2,3,1");
	ck_assert_str_eq(fmt(p->isr, p->n_isr), "1,2,3");
	ck_assert(!reassign_ongoing(p));
	ck_assert_int_eq(p->leader, 1);
}
END_TEST

START_TEST(test_reassign_waits_while_no_target_can_lead)
{
	static const int32_t T4[] = { 4 };
	add_partition(0, R123, 3, R123, 3, 1);
	struct elect_change c;
	char why[200];
	ck_assert_int_eq(reassign_start(&img, part(0), T4, 1, true, &c, why, sizeof(why)), TM_ERR_NONE);
	commit(0, &c);
	static const int32_t ISR14[] = { 1, 4 };
	struct elect_change grow;
	elect_change_init(&grow);
	memcpy(grow.isr, ISR14, sizeof(ISR14));
	grow.n_isr = 2;
	commit(0, &grow);
	broker_state(4, 1, 0); /* the only target is fenced */
	ck_assert(!reassign_complete(&img, part(0), &c));
	broker_state(4, -1, 0);
	ck_assert(reassign_complete(&img, part(0), &c));
	commit(0, &c);
	ck_assert_int_eq(part(0)->leader, 4);
	ck_assert_str_eq(fmt(part(0)->replicas, part(0)->n_replicas), "4");
}
END_TEST

START_TEST(test_image_keeps_reassignment_sets_on_null_and_clears_on_empty)
{
	static const int32_t T234[] = { 2, 3, 4 };
	add_partition(0, R123, 3, R123, 3, 1);
	struct elect_change c;
	char why[200];
	ck_assert_int_eq(reassign_start(&img, part(0), T234, 3, true, &c, why, sizeof(why)), TM_ERR_NONE);
	commit(0, &c);
	struct elect_change leader_only;
	elect_change_init(&leader_only);
	leader_only.leader = 2;
	commit(0, &leader_only);
	ck_assert_str_eq(fmt(part(0)->adding, part(0)->n_adding), "4");
	struct elect_change clear;
	elect_change_init(&clear);
	clear.n_adding = 0;
	clear.n_removing = 0;
	commit(0, &clear);
	ck_assert(!reassign_ongoing(part(0)));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("elect");
	TCase *tc = tcase_create("rules");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_preferred_moves_leadership_back_and_bumps_epoch);
	tcase_add_test(tc, test_preferred_unavailable_when_out_of_isr_fenced_or_shutting_down);
	tcase_add_test(tc, test_preferred_gives_leaderless_partition_another_isr_member);
	tcase_add_test(tc, test_unclean_elects_outside_the_isr_only_when_no_isr_member_lives);
	tcase_add_test(tc, test_unclean_without_live_replicas_is_eligible_leaders_not_available);
	tcase_add_test(tc, test_shutdown_moves_leadership_and_leaves_isrs);
	tcase_add_test(tc, test_shutdown_with_unclean_hands_over_outside_the_isr);
	tcase_add_test(tc, test_imbalance_ratio_per_preferred_broker);
	tcase_add_test(tc, test_rebalance_only_to_an_in_sync_active_preferred_replica);
	tcase_add_test(tc, test_reassign_adds_then_completes_when_target_in_sync);
	tcase_add_test(tc, test_reassign_shrink_completes_at_once);
	tcase_add_test(tc, test_reassign_refuses_bad_assignments);
	tcase_add_test(tc, test_reassign_cancel_restores_original_replicas);
	tcase_add_test(tc, test_reassign_waits_while_no_target_can_lead);
	tcase_add_test(tc, test_image_keeps_reassignment_sets_on_null_and_clears_on_empty);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
