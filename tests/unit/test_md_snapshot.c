/*
 * test_md_snapshot.c — metadata snapshots: an image written as records and
 * read back into a fresh image is the same image, field by field; a damaged
 * snapshot is refused with a reason, never half-loaded; file names are
 * Kafka's <20-digit offset>-<10-digit epoch>.checkpoint.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/md_snapshot.h"
#include "protocol/kafka_msgs.h"
#include "protocol/records.h"

/* The structs the snapshot must carry, at the size this test (and
 * md_snapshot.c) was written for (x86-64).  A failure here means a field was
 * added to the image: write it into md_snapshot.c's records, compare it in
 * images_equal() below, then update the size. */
#define EXPECT_SIZEOF_PARTITION 540
#define EXPECT_SIZEOF_BROKER 2712
#define EXPECT_SIZEOF_TOPIC 296
#define EXPECT_SIZEOF_IMAGE 694376

static struct kuuid uuid_of(uint32_t v)
{
	struct kuuid u;
	memset(u.b, 0, 16);
	u.b[0] = 0x40;
	memcpy(u.b + 12, &v, 4);
	return u;
}

/* ---- a deterministic image built the way the controller builds one ------- */

static uint64_t prng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void apply_ok(struct md_image *img, int16_t type, const void *rec, uint64_t seed)
{
	int rc = md_apply(img, type, rec);
	ck_assert_msg(rc == 0, "seed %llu: record type %d does not apply: %d", (unsigned long long)seed, type, rc);
}

static void config(struct md_image *img, int8_t rtype, const char *rname, const char *key, const char *value,
		   uint64_t seed)
{
	struct kafka_config_record c;
	kafka_config_record_init(&c);
	c.resource_type = rtype;
	c.resource_name = kstr_c(rname);
	c.name = kstr_c(key);
	c.value = kstr_c(value);
	apply_ok(img, KAFKA_METADATA_CONFIG, &c, seed);
}

static void build_image(struct md_image *img, uint64_t seed, int n_topics)
{
	uint64_t s = seed;
	struct kafka_feature_level_record f;
	kafka_feature_level_record_init(&f);
	f.name = kstr_c("metadata.version");
	f.feature_level = 25;
	apply_ok(img, KAFKA_METADATA_FEATURE_LEVEL, &f, seed);

	for (int32_t id = 1; id <= 5; id++) {
		struct kafka_register_broker_record r;
		struct kafka_register_broker_record_broker_endpoint eps[2];
		kafka_register_broker_record_init(&r);
		memset(eps, 0, sizeof(eps));
		char host[32];
		snprintf(host, sizeof(host), "host-%d.example", id);
		eps[0].name = kstr_c("PLAINTEXT");
		eps[0].host = kstr_c(host);
		eps[0].port = (uint16_t)(9090 + id);
		eps[0].security_protocol = 0;
		eps[1].name = kstr_c("SSL");
		eps[1].host = kstr_c(host);
		eps[1].port = (uint16_t)(9190 + id);
		eps[1].security_protocol = 1;
		r.broker_id = id;
		r.broker_epoch = 100 + id;
		r.end_points = eps;
		r.end_points_count = id % 2 ? 2 : 1;
		r.rack = id == 3 ? kstr_null() : kstr_c(id % 2 ? "rack-a" : "rack-b");
		r.fenced = false;
		apply_ok(img, KAFKA_METADATA_REGISTER_BROKER, &r, seed);
	}
	/* broker 2 fenced, broker 4 in controlled shutdown */
	struct kafka_broker_registration_change_record bc;
	kafka_broker_registration_change_record_init(&bc);
	bc.broker_id = 2;
	bc.broker_epoch = 102;
	bc.fenced = 1;
	apply_ok(img, KAFKA_METADATA_BROKER_REGISTRATION_CHANGE, &bc, seed);
	kafka_broker_registration_change_record_init(&bc);
	bc.broker_id = 4;
	bc.broker_epoch = 104;
	bc.in_controlled_shutdown = 1;
	apply_ok(img, KAFKA_METADATA_BROKER_REGISTRATION_CHANGE, &bc, seed);

	config(img, MD_RESOURCE_BROKER, "", "log.retention.ms", "3600000", seed);
	config(img, MD_RESOURCE_BROKER, "", "min.insync.replicas", "2", seed);
	config(img, MD_RESOURCE_BROKER, "", "log.retention.ms", NULL, seed); /* deleted again */

	for (int i = 0; i < n_topics; i++) {
		char name[64];
		snprintf(name, sizeof(name), "topic-%04d-%llx", i, (unsigned long long)(prng_next(&s) & 0xffff));
		struct kafka_topic_record t;
		kafka_topic_record_init(&t);
		t.name = kstr_c(name);
		t.topic_id = uuid_of((uint32_t)i + 1);
		apply_ok(img, KAFKA_METADATA_TOPIC, &t, seed);
		if (i % 3 == 0)
			config(img, MD_RESOURCE_TOPIC, name, "cleanup.policy", "compact", seed);
		if (i % 5 == 0)
			config(img, MD_RESOURCE_TOPIC, name, "retention.ms", "1000", seed);
		int parts = 1 + (int)(prng_next(&s) % 6);
		for (int p = 0; p < parts; p++) {
			int32_t reps[3];
			int rf = 1 + (int)(prng_next(&s) % 3);
			for (int k = 0; k < rf; k++)
				reps[k] = 1 + (p + k) % 5;
			struct kafka_partition_record pr;
			kafka_partition_record_init(&pr);
			pr.partition_id = p;
			pr.topic_id = t.topic_id;
			pr.replicas = reps;
			pr.replicas_count = rf;
			pr.isr = reps;
			pr.isr_count = 1;
			pr.leader = reps[0];
			pr.leader_epoch = 0;
			pr.partition_epoch = 0;
			apply_ok(img, KAFKA_METADATA_PARTITION, &pr, seed);
			/* Some history: ISR grows, leadership moves, replicas shrink. */
			int changes = (int)(prng_next(&s) % 5);
			for (int c = 0; c < changes; c++) {
				struct kafka_partition_change_record pc;
				kafka_partition_change_record_init(&pc);
				pc.partition_id = p;
				pc.topic_id = t.topic_id;
				pc.isr = reps;
				pc.isr_count = rf;
				if (c == 1 && rf > 1)
					pc.leader = reps[1];
				if (c == 2) {
					pc.replicas = reps;
					pc.replicas_count = 1;
					pc.isr_count = 1;
					pc.leader = reps[0];
				}
				if (c == 3 || (c == 1 && p % 2)) {
					/* a reassignment under way (KIP-455) */
					static const int32_t adding[2] = { 4, 5 }, removing[1] = { 1 };
					pc.adding_replicas = (int32_t *)adding;
					pc.adding_replicas_count = 2;
					pc.removing_replicas = (int32_t *)removing;
					pc.removing_replicas_count = 1;
				}
				apply_ok(img, KAFKA_METADATA_PARTITION_CHANGE, &pc, seed);
			}
		}
		if (i % 7 == 6) {
			/* deleted topics must not come back */
			struct kafka_remove_topic_record rt;
			kafka_remove_topic_record_init(&rt);
			rt.topic_id = t.topic_id;
			apply_ok(img, KAFKA_METADATA_REMOVE_TOPIC, &rt, seed);
		}
	}
	struct kafka_producer_ids_record pid;
	kafka_producer_ids_record_init(&pid);
	pid.broker_id = 1;
	pid.broker_epoch = 101;
	pid.next_producer_id = 5000 + (int64_t)(prng_next(&s) % 1000);
	apply_ok(img, KAFKA_METADATA_PRODUCER_IDS, &pid, seed);
}

/* ---- comparing ------------------------------------------------------------------ */

static int configs_equal(const struct md_config *a, int na, const struct md_config *b, int nb)
{
	if (na != nb)
		return 0;
	for (int i = 0; i < na; i++) {
		int found = 0;
		for (int j = 0; j < nb && !found; j++)
			found = !strcmp(a[i].key, b[j].key) && !strcmp(a[i].value, b[j].value);
		if (!found)
			return 0;
	}
	return 1;
}

static int sets_equal(const int32_t *a, int na, const int32_t *b, int nb)
{
	return na == nb && !memcmp(a, b, sizeof(int32_t) * (size_t)na);
}

/* Every field a reader of the image uses; why names the first difference. */
static int images_equal(const struct md_image *a, const struct md_image *b, char *why, size_t n)
{
	if (a->metadata_version != b->metadata_version)
		return snprintf(why, n, "metadata.version %d vs %d", a->metadata_version, b->metadata_version), 0;
	if (a->next_producer_id != b->next_producer_id)
		return snprintf(why, n, "next producer id %lld vs %lld", (long long)a->next_producer_id,
				(long long)b->next_producer_id), 0;
	if (a->n_brokers != b->n_brokers)
		return snprintf(why, n, "%d vs %d brokers", a->n_brokers, b->n_brokers), 0;
	for (int i = 0; i < a->n_brokers; i++) {
		const struct md_broker *x = &a->brokers[i], *y = &b->brokers[i];
		if (x->id != y->id || x->epoch != y->epoch || x->fenced != y->fenced ||
		    x->in_controlled_shutdown != y->in_controlled_shutdown || strcmp(x->rack, y->rack) ||
		    x->n_eps != y->n_eps)
			return snprintf(why, n, "broker %d differs", x->id), 0;
		for (int e = 0; e < x->n_eps; e++)
			if (strcmp(x->eps[e].name, y->eps[e].name) || strcmp(x->eps[e].host, y->eps[e].host) ||
			    x->eps[e].port != y->eps[e].port ||
			    x->eps[e].security_protocol != y->eps[e].security_protocol)
				return snprintf(why, n, "broker %d endpoint %d differs", x->id, e), 0;
	}
	if (!configs_equal(a->broker_configs, a->n_broker_configs, b->broker_configs, b->n_broker_configs))
		return snprintf(why, n, "broker configs differ"), 0;
	if (a->topics.count != b->topics.count || a->topic_ids.count != b->topic_ids.count)
		return snprintf(why, n, "%zu vs %zu topics", a->topics.count, b->topics.count), 0;
	for (size_t i = 0; i < a->topics.cap; i++) {
		if (!a->topics.slots[i].key)
			continue;
		const struct md_topic *x = a->topics.slots[i].value;
		const struct md_topic *y = md_topic_by_name(b, x->name, strlen(x->name));
		if (!y)
			return snprintf(why, n, "topic %s missing", x->name), 0;
		if (md_topic_by_id(b, &x->id) != y || memcmp(x->id.b, y->id.b, 16))
			return snprintf(why, n, "topic %s id differs", x->name), 0;
		if (!configs_equal(x->configs, x->n_configs, y->configs, y->n_configs))
			return snprintf(why, n, "topic %s configs differ", x->name), 0;
		if (x->n_partitions != y->n_partitions)
			return snprintf(why, n, "topic %s: %d vs %d partitions", x->name, x->n_partitions,
					y->n_partitions), 0;
		for (int32_t p = 0; p < x->n_partitions; p++) {
			const struct md_partition *u = &x->parts[p], *v = &y->parts[p];
			if (u->leader != v->leader || u->leader_epoch != v->leader_epoch ||
			    u->partition_epoch != v->partition_epoch ||
			    !sets_equal(u->replicas, u->n_replicas, v->replicas, v->n_replicas) ||
			    !sets_equal(u->isr, u->n_isr, v->isr, v->n_isr) ||
			    !sets_equal(u->adding, u->n_adding, v->adding, v->n_adding) ||
			    !sets_equal(u->removing, u->n_removing, v->removing, v->n_removing))
				return snprintf(why, n, "%s-%d differs", x->name, p), 0;
		}
	}
	return 1;
}

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(test_snapshot_image_fields_are_all_covered)
{
	ck_assert_msg(sizeof(struct md_partition) == EXPECT_SIZEOF_PARTITION,
		      "struct md_partition is %zu bytes, not %d: a field was added; carry it in md_snapshot.c, "
		      "compare it here, update EXPECT_SIZEOF_PARTITION",
		      sizeof(struct md_partition), EXPECT_SIZEOF_PARTITION);
	ck_assert_msg(sizeof(struct md_broker) == EXPECT_SIZEOF_BROKER,
		      "struct md_broker is %zu bytes, not %d: a field was added; carry it in md_snapshot.c, "
		      "compare it here, update EXPECT_SIZEOF_BROKER",
		      sizeof(struct md_broker), EXPECT_SIZEOF_BROKER);
	ck_assert_msg(sizeof(struct md_topic) == EXPECT_SIZEOF_TOPIC,
		      "struct md_topic is %zu bytes, not %d: a field was added; carry it in md_snapshot.c, "
		      "compare it here, update EXPECT_SIZEOF_TOPIC",
		      sizeof(struct md_topic), EXPECT_SIZEOF_TOPIC);
	ck_assert_msg(sizeof(struct md_image) == EXPECT_SIZEOF_IMAGE,
		      "struct md_image is %zu bytes, not %d: a field was added; carry it in md_snapshot.c, "
		      "compare it here, update EXPECT_SIZEOF_IMAGE",
		      sizeof(struct md_image), EXPECT_SIZEOF_IMAGE);
}
END_TEST

START_TEST(test_snapshot_round_trip_rebuilds_the_image)
{
	for (uint64_t seed = 1; seed <= 20; seed++) {
		struct md_image img, back;
		md_image_init(&img);
		md_image_init(&back);
		build_image(&img, seed, (int)(seed * 7));
		struct tm_wbuf w;
		wbuf_init(&w);
		ck_assert_int_eq(md_snapshot_write(&img, 7, 1700000000000ll, 1700000001000ll, &w), 0);
		char why[200] = "";
		int64_t ts = 0;
		int rc = md_snapshot_read(w.buf, w.len, &back, &ts, why, sizeof(why));
		ck_assert_msg(rc == 0, "seed %llu: read back: %d %s", (unsigned long long)seed, rc, why);
		ck_assert_int_eq(ts, 1700000000000ll);
		ck_assert_msg(images_equal(&img, &back, why, sizeof(why)), "seed %llu: %s", (unsigned long long)seed,
			      why);
		/* and the same picture written again gives the same bytes */
		struct tm_wbuf w2;
		wbuf_init(&w2);
		ck_assert_int_eq(md_snapshot_write(&back, 7, 1700000000000ll, 1700000001000ll, &w2), 0);
		struct md_image third;
		md_image_init(&third);
		ck_assert_int_eq(md_snapshot_read(w2.buf, w2.len, &third, NULL, why, sizeof(why)), 0);
		ck_assert_msg(images_equal(&img, &third, why, sizeof(why)), "seed %llu: %s", (unsigned long long)seed,
			      why);
		md_image_deinit(&third);
		wbuf_deinit(&w2);
		wbuf_deinit(&w);
		md_image_deinit(&back);
		md_image_deinit(&img);
	}
}
END_TEST

START_TEST(test_snapshot_is_kafka_batches_header_first_footer_last)
{
	struct md_image img;
	md_image_init(&img);
	build_image(&img, 3, 2000); /* big enough for several data batches */
	struct tm_wbuf w;
	wbuf_init(&w);
	ck_assert_int_eq(md_snapshot_write(&img, 9, 5, 6, &w), 0);
	ck_assert_int_eq(records_validate(w.buf, w.len, 0, NULL), 0);
	size_t at = 0;
	int batches = 0;
	int64_t next = 0;
	struct tm_batch_hdr first, last;
	while (at < w.len) {
		struct tm_batch_hdr h;
		ck_assert_int_eq(records_batch_header_parse(w.buf + at, w.len - at, &h), 0);
		ck_assert_int_eq(h.partition_leader_epoch, 9);
		ck_assert_int_eq(h.base_offset, next); /* offsets count from 0, no gaps */
		ck_assert_int_le(h.record_count, MD_SNAPSHOT_BATCH_RECORDS);
		next = h.base_offset + h.record_count;
		if (!batches)
			first = h;
		last = h;
		batches++;
		at += (size_t)h.batch_length + 12;
	}
	ck_assert_int_gt(batches, 3);
	ck_assert(first.attributes & RECORDS_ATTR_CONTROL);
	ck_assert(last.attributes & RECORDS_ATTR_CONTROL);
	ck_assert_int_eq(first.record_count, 1);
	ck_assert_int_eq(last.record_count, 1);
	wbuf_deinit(&w);
	md_image_deinit(&img);
}
END_TEST

START_TEST(test_snapshot_empty_image_round_trips)
{
	struct md_image img, back;
	md_image_init(&img);
	md_image_init(&back);
	struct tm_wbuf w;
	wbuf_init(&w);
	ck_assert_int_eq(md_snapshot_write(&img, 1, -1, 0, &w), 0);
	char why[200];
	ck_assert_int_eq(md_snapshot_read(w.buf, w.len, &back, NULL, why, sizeof(why)), 0);
	ck_assert_int_eq(back.topics.count, 0);
	ck_assert_int_eq(back.n_brokers, 0);
	wbuf_deinit(&w);
	md_image_deinit(&back);
	md_image_deinit(&img);
}
END_TEST

static int read_fresh(const uint8_t *buf, size_t len, char *why, size_t n)
{
	struct md_image img;
	md_image_init(&img);
	int rc = md_snapshot_read(buf, len, &img, NULL, why, n);
	md_image_deinit(&img);
	return rc;
}

START_TEST(test_snapshot_damage_is_refused_with_a_reason)
{
	struct md_image img;
	md_image_init(&img);
	build_image(&img, 5, 30);
	struct tm_wbuf w;
	wbuf_init(&w);
	ck_assert_int_eq(md_snapshot_write(&img, 2, 0, 0, &w), 0);
	char why[200];

	/* A flipped byte anywhere under a batch's CRC, or in its length, is
	 * caught (base offset and leader epoch precede the CRC, as in Kafka). */
	uint8_t *flip = malloc(w.len);
	for (size_t at = 0; at < w.len; at += (size_t)records_batch_size(w.buf + at, w.len - at)) {
		size_t end = at + (size_t)records_batch_size(w.buf + at, w.len - at);
		for (size_t pos = at + 8; pos < end; pos += pos < at + 24 ? 1 : 13) {
			if (pos >= at + 12 && pos < at + 16)
				continue;
			memcpy(flip, w.buf, w.len);
			flip[pos] ^= 0x5a;
			int rc = read_fresh(flip, w.len, why, sizeof(why));
			ck_assert_msg(rc == -EBADMSG, "flipping byte %zu (batch at %zu) gave %d", pos, at, rc);
		}
	}
	free(flip);
	/* a flipped byte inside a record: CRC */
	uint8_t *copy = malloc(w.len);
	memcpy(copy, w.buf, w.len);
	copy[w.len / 2] ^= 0x01;
	ck_assert_int_eq(read_fresh(copy, w.len, why, sizeof(why)), -EBADMSG);
	ck_assert_msg(strstr(why, "CRC") != NULL, "%s", why);
	/* torn: the footer is cut off */
	memcpy(copy, w.buf, w.len);
	ck_assert_int_eq(read_fresh(copy, w.len - 10, why, sizeof(why)), -EBADMSG);
	/* the footer batch missing entirely */
	size_t at = 0, prev = 0;
	while (at < w.len) {
		prev = at;
		at += (size_t)records_batch_size(w.buf + at, w.len - at);
	}
	ck_assert_int_eq(read_fresh(w.buf, prev, why, sizeof(why)), -EBADMSG);
	ck_assert_msg(strstr(why, "footer") || strstr(why, "Footer"), "%s", why);
	/* no header: start at the second batch */
	size_t second = (size_t)records_batch_size(w.buf, w.len);
	ck_assert_int_eq(read_fresh(w.buf + second, w.len - second, why, sizeof(why)), -EBADMSG);
	ck_assert_msg(strstr(why, "SnapshotHeader") != NULL, "%s", why);
	/* empty */
	ck_assert_int_eq(read_fresh(w.buf, 0, why, sizeof(why)), -EBADMSG);
	free(copy);
	wbuf_deinit(&w);
	md_image_deinit(&img);
}
END_TEST

START_TEST(test_snapshot_names_are_kafkas)
{
	char name[MD_SNAPSHOT_NAME_MAX];
	struct md_snapshot_id id = { 1234, 7 };
	md_snapshot_name(name, sizeof(name), id);
	ck_assert_str_eq(name, "00000000000000001234-0000000007.checkpoint");
	struct md_snapshot_id back;
	ck_assert_int_eq(md_snapshot_parse_name(name, &back), 0);
	ck_assert_int_eq(back.end_offset, 1234);
	ck_assert_int_eq(back.epoch, 7);
	ck_assert_int_eq(md_snapshot_parse_name("00000000000000001234-0000000007.checkpoint.part", &back), -EINVAL);
	ck_assert_int_eq(md_snapshot_parse_name("00000000000000001234.log", &back), -EINVAL);
	ck_assert_int_eq(md_snapshot_parse_name("0000000000000000123x-0000000007.checkpoint", &back), -EINVAL);
	ck_assert_int_eq(md_snapshot_parse_name("99999999999999999999-0000000007.checkpoint", &back), -EINVAL);
	ck_assert_int_eq(md_snapshot_parse_name("00000000000000001234-9999999999.checkpoint", &back), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("md_snapshot");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_snapshot_image_fields_are_all_covered);
	tcase_add_test(tc, test_snapshot_round_trip_rebuilds_the_image);
	tcase_add_test(tc, test_snapshot_is_kafka_batches_header_first_footer_last);
	tcase_add_test(tc, test_snapshot_empty_image_round_trips);
	tcase_add_test(tc, test_snapshot_damage_is_refused_with_a_reason);
	tcase_add_test(tc, test_snapshot_names_are_kafkas);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
