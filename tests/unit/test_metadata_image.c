/*
 * test_metadata_image.c — the pure metadata state machine: records applied
 * in order build the picture Metadata answers with; records that contradict
 * it are refused, not half-applied.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "broker/metadata.h"
#include "protocol/kafka_msgs.h"

static struct kuuid uuid_of(uint8_t v)
{
	struct kuuid u;
	memset(u.b, v, 16);
	return u;
}

static void add_topic(struct md_image *img, const char *name, uint8_t id, int parts)
{
	struct kafka_topic_record t;
	kafka_topic_record_init(&t);
	t.name = kstr_c(name);
	t.topic_id = uuid_of(id);
	ck_assert_int_eq(md_apply(img, KAFKA_METADATA_TOPIC, &t), 0);
	for (int p = 0; p < parts; p++) {
		int32_t replicas[2] = { 1, 2 };
		struct kafka_partition_record pr;
		kafka_partition_record_init(&pr);
		pr.partition_id = p;
		pr.topic_id = t.topic_id;
		pr.replicas = replicas;
		pr.replicas_count = 2;
		pr.isr = replicas;
		pr.isr_count = 2;
		pr.leader = replicas[p % 2];
		pr.leader_epoch = 0;
		pr.partition_epoch = 0;
		ck_assert_int_eq(md_apply(img, KAFKA_METADATA_PARTITION, &pr), 0);
	}
}

START_TEST(test_image_topic_and_partitions)
{
	struct md_image img;
	md_image_init(&img);
	add_topic(&img, "orders", 7, 3);
	struct md_topic *t = md_topic_by_name(&img, "orders", 6);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(t->n_partitions, 3);
	ck_assert_int_eq(t->parts[1].leader, 2);
	struct kuuid id = uuid_of(7);
	ck_assert_ptr_eq(md_topic_by_id(&img, &id), t);
	md_image_deinit(&img);
}
END_TEST

START_TEST(test_image_refuses_duplicate_topic_and_orphan_partition)
{
	struct md_image img;
	md_image_init(&img);
	add_topic(&img, "a", 1, 1);
	struct kafka_topic_record t;
	kafka_topic_record_init(&t);
	t.name = kstr_c("a");
	t.topic_id = uuid_of(2);
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_TOPIC, &t), -EINVAL);
	struct kafka_partition_record pr;
	kafka_partition_record_init(&pr);
	pr.topic_id = uuid_of(9);
	pr.partition_id = 0;
	pr.replicas_count = 0;
	pr.isr_count = 0;
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_PARTITION, &pr), -EINVAL);
	md_image_deinit(&img);
}
END_TEST

START_TEST(test_image_partition_change_bumps_epochs_only_on_leader_change)
{
	struct md_image img;
	md_image_init(&img);
	add_topic(&img, "a", 1, 1);
	struct kafka_partition_change_record c;
	kafka_partition_change_record_init(&c);
	c.topic_id = uuid_of(1);
	c.partition_id = 0;
	int32_t isr[1] = { 1 };
	c.isr = isr;
	c.isr_count = 1;
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_PARTITION_CHANGE, &c), 0);
	struct md_partition *p = &md_topic_by_name(&img, "a", 1)->parts[0];
	ck_assert_int_eq(p->n_isr, 1);
	ck_assert_int_eq(p->leader_epoch, 0);
	ck_assert_int_eq(p->partition_epoch, 1);
	c.isr_count = -1;
	c.leader = 2;
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_PARTITION_CHANGE, &c), 0);
	ck_assert_int_eq(p->leader, 2);
	ck_assert_int_eq(p->leader_epoch, 1);
	md_image_deinit(&img);
}
END_TEST

START_TEST(test_image_configs_set_and_delete)
{
	struct md_image img;
	md_image_init(&img);
	add_topic(&img, "a", 1, 1);
	struct kafka_config_record cr;
	kafka_config_record_init(&cr);
	cr.resource_type = MD_RESOURCE_TOPIC;
	cr.resource_name = kstr_c("a");
	cr.name = kstr_c("retention.ms");
	cr.value = kstr_c("1000");
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_CONFIG, &cr), 0);
	struct md_topic *t = md_topic_by_name(&img, "a", 1);
	ck_assert_str_eq(md_topic_config(t, "retention.ms"), "1000");
	cr.value = kstr_null();
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_CONFIG, &cr), 0);
	ck_assert_ptr_null(md_topic_config(t, "retention.ms"));
	md_image_deinit(&img);
}
END_TEST

START_TEST(test_image_remove_topic)
{
	struct md_image img;
	md_image_init(&img);
	add_topic(&img, "a", 1, 2);
	add_topic(&img, "b", 2, 1);
	struct kafka_remove_topic_record r;
	kafka_remove_topic_record_init(&r);
	r.topic_id = uuid_of(1);
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_REMOVE_TOPIC, &r), 0);
	ck_assert_ptr_null(md_topic_by_name(&img, "a", 1));
	ck_assert_ptr_nonnull(md_topic_by_name(&img, "b", 1));
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_REMOVE_TOPIC, &r), -EINVAL);
	md_image_deinit(&img);
}
END_TEST

START_TEST(test_image_producer_ids_never_go_back)
{
	struct md_image img;
	md_image_init(&img);
	struct kafka_producer_ids_record r;
	kafka_producer_ids_record_init(&r);
	r.next_producer_id = 1000;
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_PRODUCER_IDS, &r), 0);
	r.next_producer_id = 500;
	ck_assert_int_eq(md_apply(&img, KAFKA_METADATA_PRODUCER_IDS, &r), -EINVAL);
	ck_assert_int_eq(img.next_producer_id, 1000);
	md_image_deinit(&img);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metadata_image");
	TCase *tc = tcase_create("image");
	tcase_add_test(tc, test_image_topic_and_partitions);
	tcase_add_test(tc, test_image_refuses_duplicate_topic_and_orphan_partition);
	tcase_add_test(tc, test_image_partition_change_bumps_epochs_only_on_leader_change);
	tcase_add_test(tc, test_image_configs_set_and_delete);
	tcase_add_test(tc, test_image_remove_topic);
	tcase_add_test(tc, test_image_producer_ids_never_go_back);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
