/*
 * test_broker_config.c — Kafka property names parse into the broker's
 * settings; bad ones stop start-up naming the key.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/config.h"

START_TEST(test_config_defaults_are_a_single_node_on_localhost)
{
	struct tm_config c;
	char err[256] = "";
	config_defaults(&c);
	ck_assert_int_eq(config_validate(&c, err, sizeof(err)), 0);
	ck_assert_int_eq(c.listeners[0].port, 9092);
	ck_assert_int_eq(c.listeners[1].port, 9093);
	ck_assert_str_eq(c.log_dir, "./data");
	ck_assert(c.role_broker && c.role_controller);
	ck_assert_int_eq(c.voter_count, 1);
}
END_TEST

START_TEST(test_config_parses_kafka_names_and_scales_units)
{
	struct tm_config c;
	char err[256] = "";
	config_defaults(&c);
	ck_assert_int_eq(config_set(&c, "log.retention.hours", "2", err, sizeof(err)), 0);
	ck_assert_int_eq(c.log_retention_ms, 2LL * 3600 * 1000);
	ck_assert_int_eq(config_set(&c, "listeners", "PLAINTEXT://0.0.0.0:19092,CONTROLLER://[::1]:19093", err, sizeof(err)), 0);
	ck_assert_int_eq(c.listener_count, 2);
	ck_assert_str_eq(c.listeners[1].host, "::1");
	ck_assert_int_eq(config_set(&c, "controller.quorum.voters", "1@a:9093,2@b:9093,3@c:9093", err, sizeof(err)), 0);
	ck_assert_int_eq(c.voter_count, 3);
	ck_assert_str_eq(c.voters[2].host, "c");
	ck_assert_int_eq(config_set(&c, "auto.create.topics.enable", "FALSE", err, sizeof(err)), 0);
	ck_assert(!c.auto_create_topics_enable);
	/* Kafka-only knobs are accepted (with a warning), not fatal. */
	ck_assert_int_eq(config_set(&c, "num.network.threads", "3", err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_config_rejects_unknown_and_invalid_naming_the_key)
{
	struct tm_config c;
	char err[256] = "";
	config_defaults(&c);
	ck_assert_int_ne(config_set(&c, "log.retension.ms", "1", err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "log.retension.ms"));
	ck_assert_int_ne(config_set(&c, "num.partitions", "zero", err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "num.partitions"));
	ck_assert_int_ne(config_set(&c, "num.partitions", "0", err, sizeof(err)), 0);
	ck_assert_int_ne(config_set(&c, "listeners", "PLAINTEXT//x:1", err, sizeof(err)), 0);
	ck_assert_int_ne(config_set(&c, "controller.quorum.voters", "1@a:99999", err, sizeof(err)), 0);
	ck_assert_int_ne(config_set(&c, "listener.security.protocol.map", "X:SASL_SSL", err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_config_loopback_congestion_control)
{
	struct tm_config c;
	char err[256] = "";
	config_defaults(&c);
	ck_assert_str_eq(c.loopback_congestion_control, "reno");
	ck_assert_int_eq(config_set(&c, "tidemark.loopback.congestion.control", "", err, sizeof(err)), 0);
	ck_assert_str_eq(c.loopback_congestion_control, ""); /* the system's for every connection */
	ck_assert_int_eq(config_set(&c, "tidemark.loopback.congestion.control", "bbr", err, sizeof(err)), 0);
	ck_assert_str_eq(c.loopback_congestion_control, "bbr");
	/* 15 characters is the kernel's longest name (TCP_CA_NAME_MAX 16) */
	ck_assert_int_eq(config_set(&c, "tidemark.loopback.congestion.control", "abcdefghijklmnop", err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "tidemark.loopback.congestion.control"));
	ck_assert_str_eq(c.loopback_congestion_control, "bbr");
}
END_TEST

START_TEST(test_config_validate_refuses_node_not_among_voters)
{
	struct tm_config c;
	char err[256] = "";
	config_defaults(&c);
	ck_assert_int_eq(config_set(&c, "node.id", "7", err, sizeof(err)), 0);
	ck_assert_int_ne(config_validate(&c, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "controller.quorum.voters"));
}
END_TEST

START_TEST(test_config_env_maps_like_the_kafka_image)
{
	struct tm_config c;
	char err[256] = "";
	config_defaults(&c);
	char *env[] = { "KAFKA_NUM_PARTITIONS=4", "KAFKA_LOG_DIRS=/tmp/x", "KAFKA_HEAP_OPTS=-Xmx1G", "PATH=/bin", NULL };
	ck_assert_int_eq(config_load_env(&c, env, err, sizeof(err)), 0);
	ck_assert_int_eq(c.num_partitions, 4);
	ck_assert_str_eq(c.log_dir, "/tmp/x");
}
END_TEST

START_TEST(test_config_file_with_comments_and_colons)
{
	char path[] = "/tmp/tm-config-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	const char *text = "# comment\n! also comment\n\nnode.id = 1\nnum.partitions: 3\nlog.dirs=/var/tm,/ignored\n";
	ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	struct tm_config c;
	char err[256] = "";
	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), 0);
	ck_assert_int_eq(c.num_partitions, 3);
	ck_assert_str_eq(c.log_dir, "/var/tm");
	unlink(path);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("broker_config");
	TCase *tc = tcase_create("config");
	tcase_add_test(tc, test_config_defaults_are_a_single_node_on_localhost);
	tcase_add_test(tc, test_config_parses_kafka_names_and_scales_units);
	tcase_add_test(tc, test_config_rejects_unknown_and_invalid_naming_the_key);
	tcase_add_test(tc, test_config_loopback_congestion_control);
	tcase_add_test(tc, test_config_validate_refuses_node_not_among_voters);
	tcase_add_test(tc, test_config_env_maps_like_the_kafka_image);
	tcase_add_test(tc, test_config_file_with_comments_and_colons);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
