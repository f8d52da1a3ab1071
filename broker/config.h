/*
 * config.h — the broker's settings, under Kafka's property names.
 *
 * Sources, later ones winning: built-in defaults (a single-node cluster on
 * localhost:9092, controller on 9093, data under ./data), a
 * server.properties file, environment variables the way the apache/kafka
 * image maps them (KAFKA_NODE_ID -> node.id, KAFKA_LOG_DIRS -> log.dirs;
 * "_" becomes ".", "__" becomes "_", "___" becomes "-"), and
 * `--override key=value` arguments.
 *
 * An unknown key or an invalid value stops start-up with a message naming
 * the key.  Kafka keys that have no meaning for Tidemark (thread-pool sizes,
 * socket buffer sizes ...) are accepted with a warning so that configs
 * written for Apache Kafka work unchanged.
 */
#ifndef TM_BROKER_CONFIG_H
#define TM_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TM_MAX_LISTENERS 8
#define TM_MAX_VOTERS 16

enum tm_security { TM_SEC_PLAINTEXT, TM_SEC_SSL };

struct tm_listener {
	char name[64];     /* PLAINTEXT, CONTROLLER, SSL, INTERNAL ... */
	char host[256];    /* "" = all interfaces */
	int port;
	enum tm_security security;
};

struct tm_voter {
	int32_t id;
	char host[256];
	int port;
};

struct tm_config {
	int32_t node_id;
	bool role_broker;
	bool role_controller;
	char cluster_id[64];               /* "" = derive/format automatically */
	char rack[64];

	struct tm_listener listeners[TM_MAX_LISTENERS];
	int listener_count;
	struct tm_listener advertised[TM_MAX_LISTENERS];
	int advertised_count;
	char secmap_names[TM_MAX_LISTENERS][64]; /* listener.security.protocol.map */
	enum tm_security secmap_proto[TM_MAX_LISTENERS];
	int secmap_count;
	char controller_listener_names[128];
	char inter_broker_listener_name[64];
	struct tm_voter voters[TM_MAX_VOTERS];
	int voter_count;

	char log_dir[1024];                /* first of log.dirs */

	int32_t num_partitions;
	int16_t default_replication_factor;
	int32_t min_insync_replicas;
	bool auto_create_topics_enable;
	bool delete_topic_enable;
	int64_t log_retention_ms;
	int64_t log_retention_bytes;
	int64_t log_segment_bytes;
	int64_t log_roll_ms;
	int64_t log_flush_interval_messages;
	int64_t log_flush_interval_ms;
	int64_t log_retention_check_interval_ms;
	int32_t log_index_interval_bytes;
	int32_t log_index_size_max_bytes;
	int32_t message_max_bytes;
	int32_t socket_request_max_bytes;
	char log_message_timestamp_type[32]; /* CreateTime | LogAppendTime */
	char compression_type[32];           /* producer only is supported: stored as sent */

	int16_t offsets_topic_replication_factor;
	int32_t offsets_topic_num_partitions;
	int64_t offsets_retention_minutes;
	int64_t offsets_retention_check_interval_ms;
	int32_t offset_metadata_max_bytes;
	int32_t group_initial_rebalance_delay_ms;
	int32_t group_min_session_timeout_ms;
	int32_t group_max_session_timeout_ms;
	int32_t group_max_size;

	int64_t replica_lag_time_max_ms;
	int32_t replica_fetch_wait_max_ms;
	int32_t replica_fetch_min_bytes;
	int32_t replica_fetch_max_bytes;
	int32_t replica_fetch_response_max_bytes;
	int32_t replica_fetch_backoff_ms;
	bool unclean_leader_election_enable;
	bool auto_leader_rebalance_enable;
	int64_t leader_imbalance_check_interval_ms;   /* leader.imbalance.check.interval.seconds */
	int32_t leader_imbalance_per_broker_percentage;
	int32_t controller_quorum_election_timeout_ms;
	int32_t controller_quorum_fetch_timeout_ms;
	int64_t metadata_log_max_record_bytes_between_snapshots; /* snapshot after this many applied bytes */
	int64_t metadata_log_max_snapshot_interval_ms;           /* ... or this long (0: never by time) */
	int64_t metadata_log_segment_bytes;                      /* the metadata log's segments */
	int32_t broker_heartbeat_interval_ms;
	int32_t broker_session_timeout_ms;
	int64_t producer_id_expiration_ms;

	char ssl_keystore_type[16];
	char ssl_keystore_location[1024];    /* PEM: certificate chain + private key */
	char ssl_key_password[256];
	char ssl_truststore_location[1024];  /* PEM CA bundle for client auth */
	char ssl_client_auth[16];            /* none | requested | required */

	int http_port;                        /* tidemark.http.port: /metrics /healthz /readyz; -1 off */
	char log_level[16];
	char loopback_congestion_control[16]; /* tidemark.loopback.congestion.control; "" = the system's */

	uint8_t explicitly_set[128];          /* by config table index: given by file, env or --override */
};

/* Fills c with the defaults of `bin/tidemark` with no arguments. */
void config_defaults(struct tm_config *c);
/* Applies one key=value; returns 0, or -EINVAL with a message in err. */
int config_set(struct tm_config *c, const char *key, const char *value, char *err, size_t err_len);
/* Reads a Java-properties file (# and ! comments, key=value or key: value). */
int config_load_file(struct tm_config *c, const char *path, char *err, size_t err_len);
/* Applies KAFKA_* environment variables from envp. */
int config_load_env(struct tm_config *c, char **envp, char *err, size_t err_len);
/* Cross-field checks after everything is loaded (roles vs listeners, node id among voters ...). */
int config_validate(struct tm_config *c, char *err, size_t err_len);

/* Walks the known settings for DescribeConfigs: the i-th key (NULL past
 * the end; skipped entries give "" ), its current value as text, whether
 * it was set explicitly, and its Kafka config type (1 boolean, 2 string,
 * 3 int, 5 long, 7 list). */
const char *config_describe(const struct tm_config *c, int i, char *value, size_t value_len, bool *is_set,
			    int *type);

const struct tm_listener *config_find_listener(const struct tm_config *c, const char *name);
const struct tm_listener *config_advertised_for(const struct tm_config *c, const char *name);
bool config_is_controller_listener(const struct tm_config *c, const char *name);

#endif
