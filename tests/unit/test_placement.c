/*
 * test_placement.c — replica placement: distinct brokers, leaders spread
 * evenly, replicas spread over racks when broker.rack is set.
 */
#include <check.h>
#include <string.h>

#include "broker/placement.h"

static void brokers(struct placement_broker *b, int n, const char *const *racks)
{
	for (int i = 0; i < n; i++) {
		b[i].id = n - i; /* given in descending order: placement must not depend on it */
		strcpy(b[i].rack, racks ? racks[i] : "");
	}
}

static const char *rack_of(const struct placement_broker *b, int n, int32_t id)
{
	for (int i = 0; i < n; i++)
		if (b[i].id == id)
			return b[i].rack;
	return NULL;
}

START_TEST(test_without_racks_round_robin_by_id)
{
	struct placement_broker b[3];
	int32_t out[6 * 3];
	brokers(b, 3, NULL);
	ck_assert_int_eq(placement_assign(b, 3, 6, 3, 0, out), 0);
	/* Partition 0: 1,2,3; partition 1: 2,3,1; ... as Tidemark always did. */
	int32_t want[] = { 1, 2, 3, 2, 3, 1, 3, 1, 2, 1, 2, 3, 2, 3, 1, 3, 1, 2 };
	for (int i = 0; i < 18; i++)
		ck_assert_int_eq(out[i], want[i]);
}
END_TEST

START_TEST(test_leaders_even_and_replicas_distinct)
{
	struct placement_broker b[5];
	int32_t out[50 * 3];
	brokers(b, 5, NULL);
	ck_assert_int_eq(placement_assign(b, 5, 50, 3, 7, out), 0);
	int leads[6] = { 0 };
	for (int p = 0; p < 50; p++) {
		int32_t *r = &out[p * 3];
		ck_assert(r[0] != r[1] && r[1] != r[2] && r[0] != r[2]);
		leads[r[0]]++;
	}
	for (int id = 1; id <= 5; id++)
		ck_assert_int_eq(leads[id], 10);
}
END_TEST

START_TEST(test_replicas_spread_over_racks)
{
	/* Two racks, three brokers in a, three in b. */
	const char *racks[] = { "a", "a", "a", "b", "b", "b" };
	struct placement_broker b[6];
	int32_t out[12 * 2];
	brokers(b, 6, racks);
	ck_assert_int_eq(placement_assign(b, 6, 12, 2, 0, out), 0);
	int leads_a = 0;
	for (int p = 0; p < 12; p++) {
		const char *r0 = rack_of(b, 6, out[p * 2]), *r1 = rack_of(b, 6, out[p * 2 + 1]);
		ck_assert_msg(strcmp(r0, r1) != 0, "partition %d has both replicas in rack %s", p, r0);
		leads_a += !strcmp(r0, "a");
	}
	ck_assert_int_eq(leads_a, 6);
}
END_TEST

START_TEST(test_three_racks_rf3_one_replica_per_rack)
{
	const char *racks[] = { "r1", "r1", "r2", "r2", "r3", "r3" };
	struct placement_broker b[6];
	int32_t out[9 * 3];
	brokers(b, 6, racks);
	ck_assert_int_eq(placement_assign(b, 6, 9, 3, 2, out), 0);
	for (int p = 0; p < 9; p++) {
		const char *x = rack_of(b, 6, out[p * 3]), *y = rack_of(b, 6, out[p * 3 + 1]),
			   *z = rack_of(b, 6, out[p * 3 + 2]);
		ck_assert(strcmp(x, y) && strcmp(y, z) && strcmp(x, z));
	}
}
END_TEST

START_TEST(test_more_replicas_than_racks_still_distinct_brokers)
{
	const char *racks[] = { "a", "a", "b" };
	struct placement_broker b[3];
	int32_t out[4 * 3];
	brokers(b, 3, racks);
	ck_assert_int_eq(placement_assign(b, 3, 4, 3, 0, out), 0);
	for (int p = 0; p < 4; p++) {
		int32_t *r = &out[p * 3];
		ck_assert(r[0] != r[1] && r[1] != r[2] && r[0] != r[2]);
	}
}
END_TEST

START_TEST(test_replication_factor_above_brokers_is_refused)
{
	struct placement_broker b[2];
	int32_t out[8];
	brokers(b, 2, NULL);
	ck_assert_int_lt(placement_assign(b, 2, 1, 3, 0, out), 0);
	ck_assert_int_lt(placement_assign(b, 2, 1, 0, 0, out), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("placement");
	TCase *tc = tcase_create("placement");
	tcase_add_test(tc, test_without_racks_round_robin_by_id);
	tcase_add_test(tc, test_leaders_even_and_replicas_distinct);
	tcase_add_test(tc, test_replicas_spread_over_racks);
	tcase_add_test(tc, test_three_racks_rf3_one_replica_per_rack);
	tcase_add_test(tc, test_more_replicas_than_racks_still_distinct_brokers);
	tcase_add_test(tc, test_replication_factor_above_brokers_is_refused);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
