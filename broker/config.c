/*
 * config.c — table-driven parsing of Kafka's property names into struct
 * tm_config.  Each entry says the key, its type, where it lives, and its
 * bounds; parse errors name the key and the offending value.
 */
#include "broker/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tm_log.h"

enum cfg_type { CFG_I32, CFG_I16, CFG_I64, CFG_BOOL, CFG_STR, CFG_SPECIAL, CFG_IGNORED };

struct cfg_entry {
	const char *key;
	enum cfg_type type;
	size_t off;
	size_t size;      /* for strings: buffer size */
	int64_t min, max; /* for integers */
	int64_t scale;    /* multiply the value (hours -> ms) */
};

#define F(field) offsetof(struct tm_config, field), sizeof(((struct tm_config *)0)->field)
#define I64MAX INT64_MAX

static const struct cfg_entry cfg_table[] = {
	{ "node.id", CFG_I32, F(node_id), 0, INT32_MAX, 1 },
	{ "broker.id", CFG_I32, F(node_id), 0, INT32_MAX, 1 },
	{ "process.roles", CFG_SPECIAL, 0, 0, 0, 0, 0 },
	{ "cluster.id", CFG_STR, F(cluster_id), 0, 0, 0 },
	{ "broker.rack", CFG_STR, F(rack), 0, 0, 0 },
	{ "listeners", CFG_SPECIAL, 0, 0, 0, 0, 0 },
	{ "advertised.listeners", CFG_SPECIAL, 0, 0, 0, 0, 0 },
	{ "listener.security.protocol.map", CFG_SPECIAL, 0, 0, 0, 0, 0 },
	{ "controller.listener.names", CFG_STR, F(controller_listener_names), 0, 0, 0 },
	{ "inter.broker.listener.name", CFG_STR, F(inter_broker_listener_name), 0, 0, 0 },
	{ "controller.quorum.voters", CFG_SPECIAL, 0, 0, 0, 0, 0 },
	{ "log.dirs", CFG_SPECIAL, 0, 0, 0, 0, 0 },
	{ "log.dir", CFG_SPECIAL, 0, 0, 0, 0, 0 },
	{ "num.partitions", CFG_I32, F(num_partitions), 1, 100000, 1 },
	{ "default.replication.factor", CFG_I16, F(default_replication_factor), 1, 32767, 1 },
	{ "min.insync.replicas", CFG_I32, F(min_insync_replicas), 1, 32767, 1 },
	{ "auto.create.topics.enable", CFG_BOOL, F(auto_create_topics_enable), 0, 0, 0 },
	{ "delete.topic.enable", CFG_BOOL, F(delete_topic_enable), 0, 0, 0 },
	{ "log.retention.ms", CFG_I64, F(log_retention_ms), -1, I64MAX, 1 },
	{ "log.retention.minutes", CFG_I64, F(log_retention_ms), -1, I64MAX / 60000, 60000 },
	{ "log.retention.hours", CFG_I64, F(log_retention_ms), -1, I64MAX / 3600000, 3600000 },
	{ "log.retention.bytes", CFG_I64, F(log_retention_bytes), -1, I64MAX, 1 },
	{ "log.segment.bytes", CFG_I64, F(log_segment_bytes), 1024, INT32_MAX, 1 },
	{ "log.roll.ms", CFG_I64, F(log_roll_ms), 1, I64MAX, 1 },
	{ "log.roll.hours", CFG_I64, F(log_roll_ms), 1, I64MAX / 3600000, 3600000 },
	{ "log.flush.interval.messages", CFG_I64, F(log_flush_interval_messages), 1, I64MAX, 1 },
	{ "log.flush.interval.ms", CFG_I64, F(log_flush_interval_ms), 0, I64MAX, 1 },
	{ "log.retention.check.interval.ms", CFG_I64, F(log_retention_check_interval_ms), 1, I64MAX, 1 },
	{ "log.index.interval.bytes", CFG_I32, F(log_index_interval_bytes), 0, INT32_MAX, 1 },
	{ "log.index.size.max.bytes", CFG_I32, F(log_index_size_max_bytes), 4096, INT32_MAX, 1 },
	{ "message.max.bytes", CFG_I32, F(message_max_bytes), 0, INT32_MAX, 1 },
	{ "socket.request.max.bytes", CFG_I32, F(socket_request_max_bytes), 1024, INT32_MAX, 1 },
	{ "log.message.timestamp.type", CFG_STR, F(log_message_timestamp_type), 0, 0, 0 },
	{ "compression.type", CFG_STR, F(compression_type), 0, 0, 0 },
	{ "offsets.topic.replication.factor", CFG_I16, F(offsets_topic_replication_factor), 1, 32767, 1 },
	{ "offsets.topic.num.partitions", CFG_I32, F(offsets_topic_num_partitions), 1, 1000, 1 },
	{ "offsets.retention.minutes", CFG_I64, F(offsets_retention_minutes), 1, I64MAX / 60000, 1 },
	{ "offsets.retention.check.interval.ms", CFG_I64, F(offsets_retention_check_interval_ms), 1, I64MAX, 1 },
	{ "offset.metadata.max.bytes", CFG_I32, F(offset_metadata_max_bytes), 0, INT32_MAX, 1 },
	{ "group.initial.rebalance.delay.ms", CFG_I32, F(group_initial_rebalance_delay_ms), 0, INT32_MAX, 1 },
	{ "group.min.session.timeout.ms", CFG_I32, F(group_min_session_timeout_ms), 0, INT32_MAX, 1 },
	{ "group.max.session.timeout.ms", CFG_I32, F(group_max_session_timeout_ms), 0, INT32_MAX, 1 },
	{ "group.max.size", CFG_I32, F(group_max_size), 1, INT32_MAX, 1 },
	{ "replica.lag.time.max.ms", CFG_I64, F(replica_lag_time_max_ms), 1, I64MAX, 1 },
	{ "replica.fetch.wait.max.ms", CFG_I32, F(replica_fetch_wait_max_ms), 0, INT32_MAX, 1 },
	{ "replica.fetch.min.bytes", CFG_I32, F(replica_fetch_min_bytes), 1, INT32_MAX, 1 },
	{ "replica.fetch.max.bytes", CFG_I32, F(replica_fetch_max_bytes), 1, INT32_MAX, 1 },
	{ "replica.fetch.response.max.bytes", CFG_I32, F(replica_fetch_response_max_bytes), 1, INT32_MAX, 1 },
	{ "replica.fetch.backoff.ms", CFG_I32, F(replica_fetch_backoff_ms), 0, INT32_MAX, 1 },
	{ "unclean.leader.election.enable", CFG_BOOL, F(unclean_leader_election_enable), 0, 0, 0 },
	{ "auto.leader.rebalance.enable", CFG_BOOL, F(auto_leader_rebalance_enable), 0, 0, 0 },
	{ "leader.imbalance.check.interval.seconds", CFG_I64, F(leader_imbalance_check_interval_ms), 1, I64MAX / 1000, 1000 },
	{ "leader.imbalance.per.broker.percentage", CFG_I32, F(leader_imbalance_per_broker_percentage), 0, 100, 1 },
	{ "controller.quorum.election.timeout.ms", CFG_I32, F(controller_quorum_election_timeout_ms), 1, INT32_MAX, 1 },
	{ "controller.quorum.fetch.timeout.ms", CFG_I32, F(controller_quorum_fetch_timeout_ms), 1, INT32_MAX, 1 },
	{ "metadata.log.max.record.bytes.between.snapshots", CFG_I64, F(metadata_log_max_record_bytes_between_snapshots), 1, I64MAX, 1 },
	{ "metadata.log.max.snapshot.interval.ms", CFG_I64, F(metadata_log_max_snapshot_interval_ms), 0, I64MAX, 1 },
	{ "metadata.log.segment.bytes", CFG_I64, F(metadata_log_segment_bytes), 1024, INT32_MAX, 1 },
	{ "broker.heartbeat.interval.ms", CFG_I32, F(broker_heartbeat_interval_ms), 1, INT32_MAX, 1 },
	{ "broker.session.timeout.ms", CFG_I32, F(broker_session_timeout_ms), 1, INT32_MAX, 1 },
	{ "producer.id.expiration.ms", CFG_I64, F(producer_id_expiration_ms), 1, I64MAX, 1 },
	{ "ssl.keystore.type", CFG_STR, F(ssl_keystore_type), 0, 0, 0 },
	{ "ssl.keystore.location", CFG_STR, F(ssl_keystore_location), 0, 0, 0 },
	{ "ssl.key.password", CFG_STR, F(ssl_key_password), 0, 0, 0 },
	{ "ssl.truststore.location", CFG_STR, F(ssl_truststore_location), 0, 0, 0 },
	{ "ssl.client.auth", CFG_STR, F(ssl_client_auth), 0, 0, 0 },
	{ "tidemark.http.port", CFG_I32, F(http_port), -1, 65535, 1 },
	{ "tidemark.log.level", CFG_STR, F(log_level), 0, 0, 0 },
	{ "tidemark.loopback.congestion.control", CFG_STR, F(loopback_congestion_control), 0, 0, 0 },
	/* Kafka keys without an effect here: accepted so Kafka configs run unchanged. */
	{ "num.network.threads", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "num.io.threads", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "num.recovery.threads.per.data.dir", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "num.replica.fetchers", CFG_IGNORED, 0, 0, 0, 0, 0 }, /* one fetcher per source broker */
	{ "socket.send.buffer.bytes", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "socket.receive.buffer.bytes", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "transaction.state.log.replication.factor", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "transaction.state.log.min.isr", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "share.coordinator.state.topic.replication.factor", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "share.coordinator.state.topic.min.isr", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "group.coordinator.rebalance.protocols", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "log.cleaner.enable", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "zookeeper.connection.timeout.ms", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "log.segment.delete.delay.ms", CFG_IGNORED, 0, 0, 0, 0, 0 },
	{ "ssl.endpoint.identification.algorithm", CFG_IGNORED, 0, 0, 0, 0, 0 },
};

void config_defaults(struct tm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->node_id = 1;
	c->role_broker = true;
	c->role_controller = true;
	c->listener_count = 2;
	snprintf(c->listeners[0].name, sizeof(c->listeners[0].name), "PLAINTEXT");
	snprintf(c->listeners[0].host, sizeof(c->listeners[0].host), "localhost");
	c->listeners[0].port = 9092;
	snprintf(c->listeners[1].name, sizeof(c->listeners[1].name), "CONTROLLER");
	snprintf(c->listeners[1].host, sizeof(c->listeners[1].host), "localhost");
	c->listeners[1].port = 9093;
	snprintf(c->controller_listener_names, sizeof(c->controller_listener_names), "CONTROLLER");
	c->voter_count = 1;
	c->voters[0].id = 1;
	snprintf(c->voters[0].host, sizeof(c->voters[0].host), "localhost");
	c->voters[0].port = 9093;
	snprintf(c->log_dir, sizeof(c->log_dir), "./data");
	c->num_partitions = 1;
	c->default_replication_factor = 1;
	c->min_insync_replicas = 1;
	c->auto_create_topics_enable = true;
	c->delete_topic_enable = true;
	c->log_retention_ms = 168LL * 3600 * 1000;
	c->log_retention_bytes = -1;
	c->log_segment_bytes = 1LL << 30;
	c->log_roll_ms = 168LL * 3600 * 1000;
	c->log_flush_interval_messages = INT64_MAX;
	c->log_flush_interval_ms = INT64_MAX;
	c->log_retention_check_interval_ms = 300000;
	c->log_index_interval_bytes = 4096;
	c->log_index_size_max_bytes = 10 * 1024 * 1024;
	c->message_max_bytes = 1048588;
	c->socket_request_max_bytes = 104857600;
	snprintf(c->log_message_timestamp_type, sizeof(c->log_message_timestamp_type), "CreateTime");
	snprintf(c->compression_type, sizeof(c->compression_type), "producer");
	c->offsets_topic_replication_factor = 3;
	c->offsets_topic_num_partitions = 50;
	c->offsets_retention_minutes = 10080;
	c->offsets_retention_check_interval_ms = 600000;
	c->offset_metadata_max_bytes = 4096;
	c->group_initial_rebalance_delay_ms = 3000;
	c->group_min_session_timeout_ms = 6000;
	c->group_max_session_timeout_ms = 1800000;
	c->group_max_size = INT32_MAX;
	c->replica_lag_time_max_ms = 30000;
	c->auto_leader_rebalance_enable = true;
	c->leader_imbalance_check_interval_ms = 300000;
	c->leader_imbalance_per_broker_percentage = 10;
	c->replica_fetch_wait_max_ms = 500;
	c->replica_fetch_min_bytes = 1;
	c->replica_fetch_max_bytes = 1048576;
	c->replica_fetch_response_max_bytes = 10485760;
	c->replica_fetch_backoff_ms = 1000;
	c->controller_quorum_election_timeout_ms = 1000;
	c->controller_quorum_fetch_timeout_ms = 2000;
	c->metadata_log_max_record_bytes_between_snapshots = 20 * 1024 * 1024;
	c->metadata_log_max_snapshot_interval_ms = 3600 * 1000;
	c->metadata_log_segment_bytes = 1024 * 1024 * 1024;
	c->broker_heartbeat_interval_ms = 2000;
	c->broker_session_timeout_ms = 9000;
	c->producer_id_expiration_ms = 86400000;
	snprintf(c->ssl_keystore_type, sizeof(c->ssl_keystore_type), "PEM");
	snprintf(c->ssl_client_auth, sizeof(c->ssl_client_auth), "none");
	c->http_port = -1;
	snprintf(c->log_level, sizeof(c->log_level), "INFO");
	snprintf(c->loopback_congestion_control, sizeof(c->loopback_congestion_control), "reno");
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return s;
}

static int parse_i64(const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *trim(end))
		return -EINVAL;
	*out = x;
	return 0;
}


/* "NAME://host:port"; host may be empty or [v6]. */
static int parse_endpoint(const char *s, struct tm_listener *l)
{
	const char *sep = strstr(s, "://");
	if (!sep || sep == s || (size_t)(sep - s) >= sizeof(l->name))
		return -EINVAL;
	memset(l, 0, sizeof(*l));
	memcpy(l->name, s, (size_t)(sep - s));
	const char *hp = sep + 3;
	const char *colon = strrchr(hp, ':');
	if (!colon)
		return -EINVAL;
	const char *h = hp;
	size_t hl = (size_t)(colon - hp);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl >= sizeof(l->host))
		return -EINVAL;
	memcpy(l->host, h, hl);
	int64_t port;
	if (parse_i64(colon + 1, &port) || port < 0 || port > 65535)
		return -EINVAL;
	l->port = (int)port;
	if (!strcmp(l->name, "SSL"))
		l->security = TM_SEC_SSL;
	return 0;
}

static int parse_listener_list(const char *v, struct tm_listener *out, int *count)
{
	char buf[2048];
	if (strlen(v) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", v);
	int n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		if (!*tok)
			continue;
		if (n >= TM_MAX_LISTENERS || parse_endpoint(tok, &out[n]))
			return -EINVAL;
		for (int i = 0; i < n; i++)
			if (!strcmp(out[i].name, out[n].name))
				return -EINVAL;
		n++;
	}
	*count = n;
	return 0;
}

/* "1@host:9093,2@host:9093" */
static int parse_voters(const char *v, struct tm_config *c)
{
	char buf[4096];
	if (strlen(v) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", v);
	int n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		if (!*tok)
			continue;
		char *at = strchr(tok, '@');
		char *colon = strrchr(tok, ':');
		if (n >= TM_MAX_VOTERS || !at || !colon || colon < at)
			return -EINVAL;
		*at = 0;
		*colon = 0;
		int64_t id, port;
		if (parse_i64(tok, &id) || id < 0 || id > INT32_MAX)
			return -EINVAL;
		if (parse_i64(colon + 1, &port) || port <= 0 || port > 65535)
			return -EINVAL;
		char *host = at + 1;
		size_t hl = strlen(host);
		if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
			host[hl - 1] = 0;
			host++;
		}
		if (strlen(host) >= sizeof(c->voters[n].host) || !*host)
			return -EINVAL;
		for (int i = 0; i < n; i++)
			if (c->voters[i].id == id)
				return -EINVAL;
		c->voters[n].id = (int32_t)id;
		snprintf(c->voters[n].host, sizeof(c->voters[n].host), "%s", host);
		c->voters[n].port = (int)port;
		n++;
	}
	if (n == 0)
		return -EINVAL;
	c->voter_count = n;
	return 0;
}

/* listener.security.protocol.map: "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL" */
static int parse_secmap(struct tm_config *c, const char *v)
{
	char buf[2048];
	if (strlen(v) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", v);
	c->secmap_count = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		char *colon = strchr(tok, ':');
		if (!colon || c->secmap_count >= TM_MAX_LISTENERS)
			return -EINVAL;
		*colon = 0;
		const char *proto = trim(colon + 1);
		if (strcmp(proto, "PLAINTEXT") && strcmp(proto, "SSL"))
			return -ENOTSUP;
		tok = trim(tok);
		if (strlen(tok) >= sizeof(c->secmap_names[0]))
			return -EINVAL;
		snprintf(c->secmap_names[c->secmap_count], sizeof(c->secmap_names[0]), "%s", tok);
		c->secmap_proto[c->secmap_count] = strcmp(proto, "SSL") ? TM_SEC_PLAINTEXT : TM_SEC_SSL;
		c->secmap_count++;
	}
	return 0;
}

/* Returns the mapped protocol of listener `name`, or -1 when unmapped. */
static int security_of(const struct tm_config *c, const char *name)
{
	for (int i = 0; i < c->secmap_count; i++)
		if (!strcmp(c->secmap_names[i], name))
			return (int)c->secmap_proto[i];
	return -1;
}

static int set_special(struct tm_config *c, const char *key, const char *v)
{
	if (!strcmp(key, "process.roles")) {
		c->role_broker = strstr(v, "broker") != NULL;
		c->role_controller = strstr(v, "controller") != NULL;
		char buf[128];
		snprintf(buf, sizeof(buf), "%s", v);
		char *save = NULL;
		for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			t = trim(t);
			if (strcmp(t, "broker") && strcmp(t, "controller"))
				return -EINVAL;
		}
		return (c->role_broker || c->role_controller) ? 0 : -EINVAL;
	}
	if (!strcmp(key, "listeners"))
		return parse_listener_list(v, c->listeners, &c->listener_count);
	if (!strcmp(key, "advertised.listeners"))
		return parse_listener_list(v, c->advertised, &c->advertised_count);
	if (!strcmp(key, "listener.security.protocol.map"))
		return parse_secmap(c, v);
	if (!strcmp(key, "controller.quorum.voters"))
		return parse_voters(v, c);
	if (!strcmp(key, "log.dirs") || !strcmp(key, "log.dir")) {
		/* Tidemark keeps all partitions in one directory: the first. */
		size_t n = strcspn(v, ",");
		if (n == 0 || n >= sizeof(c->log_dir))
			return -EINVAL;
		memcpy(c->log_dir, v, n);
		c->log_dir[n] = 0;
		return 0;
	}
	return -EINVAL;
}

int config_set(struct tm_config *c, const char *key, const char *value, char *err, size_t err_len)
{
	char vbuf[4096];
	if (strlen(value) >= sizeof(vbuf)) {
		snprintf(err, err_len, "config %s: value too long", key);
		return -EINVAL;
	}
	snprintf(vbuf, sizeof(vbuf), "%s", value);
	char *v = trim(vbuf);
	for (size_t i = 0; i < sizeof(cfg_table) / sizeof(cfg_table[0]); i++) {
		const struct cfg_entry *e = &cfg_table[i];
		if (strcmp(e->key, key))
			continue;
		char *field = (char *)c + e->off;
		int64_t x;
		if (i < sizeof(c->explicitly_set))
			c->explicitly_set[i] = 1;
		switch (e->type) {
		case CFG_IGNORED:
			tm_warn("config", "%s=%s has no effect in Tidemark; ignored", key, v);
			return 0;
		case CFG_SPECIAL: {
			int rc = set_special(c, key, v);
			if (rc) {
				snprintf(err, err_len, "config %s: invalid value '%s'%s", key, v,
					 rc == -ENOTSUP ? " (supported security protocols: PLAINTEXT, SSL)" : "");
				return -EINVAL;
			}
			return 0;
		}
		case CFG_BOOL:
			if (!strcasecmp(v, "true"))
				*(bool *)field = true;
			else if (!strcasecmp(v, "false"))
				*(bool *)field = false;
			else {
				snprintf(err, err_len, "config %s: expected true or false, got '%s'", key, v);
				return -EINVAL;
			}
			return 0;
		case CFG_STR:
			if (strlen(v) >= e->size) {
				snprintf(err, err_len, "config %s: value too long", key);
				return -EINVAL;
			}
			memcpy(field, v, strlen(v) + 1);
			return 0;
		case CFG_I16:
		case CFG_I32:
		case CFG_I64:
			if (parse_i64(v, &x) || x < e->min || x > e->max) {
				snprintf(err, err_len, "config %s: expected an integer in [%" PRId64 ", %" PRId64 "], got '%s'",
					 key, e->min, e->max, v);
				return -EINVAL;
			}
			if (x > 0)
				x *= e->scale;
			if (e->type == CFG_I16)
				*(int16_t *)field = (int16_t)x;
			else if (e->type == CFG_I32)
				*(int32_t *)field = (int32_t)x;
			else
				*(int64_t *)field = x;
			return 0;
		}
	}
	snprintf(err, err_len, "config: unknown setting '%s'", key);
	return -EINVAL;
}

int config_load_file(struct tm_config *c, const char *path, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, err_len, "config: cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	char line[8192];
	int lineno = 0;
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = trim(line);
		if (!*s || *s == '#' || *s == '!')
			continue;
		size_t k = strcspn(s, "=:");
		if (!s[k]) {
			snprintf(err, err_len, "config %s:%d: expected key=value", path, lineno);
			rc = -EINVAL;
			break;
		}
		s[k] = 0;
		rc = config_set(c, trim(s), trim(s + k + 1), err, err_len);
		if (rc)
			break;
	}
	fclose(f);
	return rc;
}

int config_load_env(struct tm_config *c, char **envp, char *err, size_t err_len)
{
	/* Variables the apache/kafka image uses for itself, not for settings. */
	static const char *const skip[] = { "KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS",
					    "KAFKA_LOG4J_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_JMX_OPTS",
					    "KAFKA_DEBUG", "KAFKA_VERSION", "KAFKA_HOME" };
	for (char **e = envp; e && *e; e++) {
		if (strncmp(*e, "KAFKA_", 6))
			continue;
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		size_t nl = (size_t)(eq - *e);
		bool skipped = false;
		for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
			if (strlen(skip[i]) == nl && !strncmp(*e, skip[i], nl))
				skipped = true;
		if (skipped)
			continue;
		char key[256];
		size_t o = 0;
		for (size_t i = 6; i < nl && o + 1 < sizeof(key); i++) {
			char ch = (*e)[i];
			if (ch == '_') {
				size_t run = 1;
				while (i + run < nl && (*e)[i + run] == '_')
					run++;
				key[o++] = run == 1 ? '.' : run == 2 ? '_' : '-';
				i += run - 1;
			} else {
				key[o++] = (char)tolower((unsigned char)ch);
			}
		}
		key[o] = 0;
		int rc = config_set(c, key, eq + 1, err, err_len);
		if (rc)
			return rc;
	}
	return 0;
}

const struct tm_listener *config_find_listener(const struct tm_config *c, const char *name)
{
	for (int i = 0; i < c->listener_count; i++)
		if (!strcmp(c->listeners[i].name, name))
			return &c->listeners[i];
	return NULL;
}

const struct tm_listener *config_advertised_for(const struct tm_config *c, const char *name)
{
	for (int i = 0; i < c->advertised_count; i++)
		if (!strcmp(c->advertised[i].name, name))
			return &c->advertised[i];
	return config_find_listener(c, name);
}

bool config_is_controller_listener(const struct tm_config *c, const char *name)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", c->controller_listener_names);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (!strcmp(trim(t), name))
			return true;
	return false;
}

int config_validate(struct tm_config *c, char *err, size_t err_len)
{
	for (int i = 0; i < c->listener_count; i++) {
		int sec = security_of(c, c->listeners[i].name);
		if (sec >= 0)
			c->listeners[i].security = (enum tm_security)sec;
		else if (c->secmap_count && !config_is_controller_listener(c, c->listeners[i].name) &&
			 strcmp(c->listeners[i].name, "PLAINTEXT") && strcmp(c->listeners[i].name, "SSL")) {
			snprintf(err, err_len,
				 "config listeners: listener %s has no entry in listener.security.protocol.map",
				 c->listeners[i].name);
			return -EINVAL;
		}
	}
	for (int i = 0; i < c->advertised_count; i++) {
		if (!config_find_listener(c, c->advertised[i].name)) {
			snprintf(err, err_len, "config advertised.listeners: %s is not in listeners",
				 c->advertised[i].name);
			return -EINVAL;
		}
	}
	if (c->role_controller) {
		bool has = false;
		for (int i = 0; i < c->listener_count; i++)
			has |= config_is_controller_listener(c, c->listeners[i].name);
		if (!has) {
			snprintf(err, err_len,
				 "config controller.listener.names: none of '%s' is in listeners, but process.roles has controller",
				 c->controller_listener_names);
			return -EINVAL;
		}
		bool voter = false;
		for (int i = 0; i < c->voter_count; i++)
			voter |= c->voters[i].id == c->node_id;
		if (!voter) {
			snprintf(err, err_len,
				 "config controller.quorum.voters: node.id %d is not among the voters, but process.roles has controller",
				 c->node_id);
			return -EINVAL;
		}
	}
	if (c->role_broker) {
		bool has = false;
		for (int i = 0; i < c->listener_count; i++)
			has |= !config_is_controller_listener(c, c->listeners[i].name);
		if (!has) {
			snprintf(err, err_len, "config listeners: process.roles has broker but every listener is a controller listener");
			return -EINVAL;
		}
	}
	if (strcmp(c->log_message_timestamp_type, "CreateTime") &&
	    strcmp(c->log_message_timestamp_type, "LogAppendTime")) {
		snprintf(err, err_len, "config log.message.timestamp.type: expected CreateTime or LogAppendTime");
		return -EINVAL;
	}
	if (strcasecmp(c->ssl_keystore_type, "PEM")) {
		snprintf(err, err_len, "config ssl.keystore.type: only PEM is supported");
		return -EINVAL;
	}
	if (strcmp(c->ssl_client_auth, "none") && strcmp(c->ssl_client_auth, "requested") &&
	    strcmp(c->ssl_client_auth, "required")) {
		snprintf(err, err_len, "config ssl.client.auth: expected none, requested or required");
		return -EINVAL;
	}
	if (!strcasecmp(c->log_level, "debug"))
		tm_log_min_level = TM_LOG_DEBUG;
	else if (!strcasecmp(c->log_level, "warn"))
		tm_log_min_level = TM_LOG_WARN;
	else if (!strcasecmp(c->log_level, "error"))
		tm_log_min_level = TM_LOG_ERROR;
	return 0;
}

static int config_print_listeners(char *out, size_t len, const struct tm_listener *ls, int n)
{
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%s://%s:%d", i ? "," : "", ls[i].name, ls[i].host, ls[i].port);
	return 0;
}

const char *config_describe(const struct tm_config *c, int i, char *value, size_t value_len, bool *is_set,
			    int *type)
{
	if (i < 0 || (size_t)i >= sizeof(cfg_table) / sizeof(cfg_table[0]))
		return NULL;
	const struct cfg_entry *e = &cfg_table[i];
	*is_set = (size_t)i < sizeof(c->explicitly_set) && c->explicitly_set[i];
	value[0] = 0;
	const char *field = (const char *)c + e->off;
	switch (e->type) {
	case CFG_IGNORED:
		return "";
	case CFG_BOOL:
		*type = 1;
		snprintf(value, value_len, "%s", *(const bool *)field ? "true" : "false");
		return e->key;
	case CFG_STR:
		*type = 2;
		snprintf(value, value_len, "%s", field);
		return e->key;
	case CFG_I16:
		*type = 3;
		snprintf(value, value_len, "%d", *(const int16_t *)field);
		return e->key;
	case CFG_I32:
		*type = 3;
		snprintf(value, value_len, "%d", *(const int32_t *)field);
		return e->key;
	case CFG_I64:
		*type = 5;
		if (e->scale != 1)
			return ""; /* .hours/.minutes aliases: the .ms key describes the value */
		snprintf(value, value_len, "%" PRId64, *(const int64_t *)field);
		return e->key;
	case CFG_SPECIAL:
		*type = 7;
		if (!strcmp(e->key, "process.roles"))
			snprintf(value, value_len, "%s", c->role_broker && c->role_controller ? "broker,controller"
							  : c->role_broker		     ? "broker"
											     : "controller");
		else if (!strcmp(e->key, "listeners"))
			config_print_listeners(value, value_len, c->listeners, c->listener_count);
		else if (!strcmp(e->key, "advertised.listeners"))
			config_print_listeners(value, value_len, c->advertised, c->advertised_count);
		else if (!strcmp(e->key, "log.dirs")) {
			*type = 2;
			snprintf(value, value_len, "%s", c->log_dir);
		} else if (!strcmp(e->key, "controller.quorum.voters")) {
			size_t o = 0;
			for (int v = 0; v < c->voter_count && o < value_len; v++)
				o += (size_t)snprintf(value + o, value_len - o, "%s%d@%s:%d", v ? "," : "", c->voters[v].id,
						      c->voters[v].host, c->voters[v].port);
		} else
			return "";
		return e->key;
	}
	return "";
}
