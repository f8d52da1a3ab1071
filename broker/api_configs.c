/*
 * api_configs.c — DescribeConfigs, AlterConfigs, IncrementalAlterConfigs.
 *
 * Topic configs are overrides kept in the metadata log (ConfigRecord); what
 * a topic does not override comes from the broker's settings.  Broker
 * configs are described as their static values from server.properties;
 * changing them at runtime (Kafka's dynamic broker configs) is refused with
 * a message saying so.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "broker/controller.h"
#include "broker/partition.h"
#include "common/kerr.h"
#include "common/tm_assert.h"

enum { SRC_TOPIC = 1, SRC_STATIC_BROKER = 4, SRC_DEFAULT = 5 };
enum { TYPE_BOOLEAN = 1, TYPE_STRING = 2, TYPE_INT = 3, TYPE_LONG = 5, TYPE_DOUBLE = 6, TYPE_LIST = 7 };
enum { OP_SET = 0, OP_DELETE = 1, OP_APPEND = 2, OP_SUBTRACT = 3 };

static int8_t topic_config_type(const char *key)
{
	if (!strcmp(key, "cleanup.policy") || !strcmp(key, "leader.replication.throttled.replicas") ||
	    !strcmp(key, "follower.replication.throttled.replicas"))
		return TYPE_LIST;
	if (!strcmp(key, "compression.type") || !strcmp(key, "message.timestamp.type"))
		return TYPE_STRING;
	if (!strcmp(key, "preallocate") || !strcmp(key, "unclean.leader.election.enable"))
		return TYPE_BOOLEAN;
	if (!strcmp(key, "min.cleanable.dirty.ratio"))
		return TYPE_DOUBLE;
	if (!strcmp(key, "index.interval.bytes") || !strcmp(key, "max.message.bytes") ||
	    !strcmp(key, "min.insync.replicas") || !strcmp(key, "segment.bytes") || !strcmp(key, "segment.index.bytes"))
		return TYPE_INT;
	return TYPE_LONG;
}

static bool key_wanted(const struct kafka_describe_configs_request_describe_configs_resource *q, const char *key)
{
	if (q->configuration_keys_count < 0)
		return true;
	for (int32_t i = 0; i < q->configuration_keys_count; i++)
		if (kstr_eq(q->configuration_keys[i], key))
			return true;
	return false;
}

static void add_entry(struct tm_req *req, struct kafka_describe_configs_response_describe_configs_result *res,
		      const char *key, const char *value, int8_t source, int8_t type, bool read_only, bool synonyms)
{
	struct kafka_describe_configs_response_describe_configs_resource_result *c = &res->configs[res->configs_count++];
	c->name = kstr_c(key);
	c->value = value ? kstr_c(arena_strndup(&req->arena, value, strlen(value))) : kstr_null();
	c->read_only = read_only;
	c->is_default = source == SRC_DEFAULT;
	c->config_source = source;
	c->is_sensitive = false;
	c->config_type = type;
	c->documentation = kstr_null();
	c->synonyms_count = 0;
	if (synonyms) {
		c->synonyms = arena_alloc(&req->arena, sizeof(*c->synonyms));
		if (c->synonyms) {
			c->synonyms[0].name = c->name;
			c->synonyms[0].value = c->value;
			c->synonyms[0].source = source;
			c->synonyms_count = 1;
		}
	}
}

static void describe_topic(struct tm_req *req, const struct kafka_describe_configs_request_describe_configs_resource *q,
			   struct kafka_describe_configs_response_describe_configs_result *res, bool synonyms)
{
	struct tm_broker *b = req->b;
	const struct md_topic *t = q->resource_name.len > 0
					   ? md_topic_by_name(&b->md, q->resource_name.ptr, (size_t)q->resource_name.len)
					   : NULL;
	if (!t) {
		res->error_code = TM_ERR_UNKNOWN_TOPIC_OR_PARTITION;
		res->error_message = kstr_c("The topic does not exist.");
		return;
	}
	int nk = 0;
	while (tm_topic_config_keys[nk])
		nk++;
	res->configs = arena_alloc(&req->arena, sizeof(*res->configs) * (size_t)nk);
	for (int k = 0; res->configs && k < nk; k++) {
		const char *key = tm_topic_config_keys[k];
		if (!key_wanted(q, key))
			continue;
		char buf[64];
		bool dflt;
		const char *v = topic_config_value(b, t, key, buf, sizeof(buf), &dflt);
		add_entry(req, res, key, v, dflt ? SRC_DEFAULT : SRC_TOPIC, topic_config_type(key), false, synonyms);
	}
}

static void describe_broker(struct tm_req *req, const struct kafka_describe_configs_request_describe_configs_resource *q,
			    struct kafka_describe_configs_response_describe_configs_result *res, bool synonyms)
{
	const struct tm_config *c = &req->b->cfg;
	char me[16];
	snprintf(me, sizeof(me), "%d", c->node_id);
	if (q->resource_name.len > 0 && !kstr_eq(q->resource_name, me)) {
		res->error_code = TM_ERR_INVALID_REQUEST;
		res->error_message = kstr_c("Describe the configs of a broker on that broker");
		return;
	}
	size_t n = 0;
	char value[1024];
	bool set;
	int type;
	while (config_describe(c, (int)n, value, sizeof(value), &set, &type))
		n++;
	res->configs = arena_alloc(&req->arena, sizeof(*res->configs) * (n ? n : 1));
	for (int i = 0; res->configs && i < (int)n; i++) {
		const char *key = config_describe(c, i, value, sizeof(value), &set, &type);
		if (!key[0] || !key_wanted(q, key) || strstr(key, "password"))
			continue;
		/* Settings given in server.properties, the environment or an
		 * override are STATIC_BROKER_CONFIG; the rest are defaults. */
		add_entry(req, res, key, value, set ? SRC_STATIC_BROKER : SRC_DEFAULT, (int8_t)type, true, synonyms);
	}
}

void api_describe_configs(struct tm_req *req)
{
	struct kafka_describe_configs_request in;
	if (REQ_DECODE(req, describe_configs, &in))
		return;
	struct kafka_describe_configs_response out;
	kafka_describe_configs_response_init(&out);
	int32_t n = in.resources_count > 0 ? in.resources_count : 0;
	out.results = arena_alloc(&req->arena, sizeof(*out.results) * (size_t)(n ? n : 1));
	out.results_count = out.results ? n : 0;
	for (int32_t i = 0; i < out.results_count; i++) {
		struct kafka_describe_configs_request_describe_configs_resource *q = &in.resources[i];
		struct kafka_describe_configs_response_describe_configs_result *r = &out.results[i];
		r->resource_type = q->resource_type;
		r->resource_name = q->resource_name;
		r->error_message = kstr_null();
		r->configs_count = 0;
		if (q->resource_type == MD_RESOURCE_TOPIC)
			describe_topic(req, q, r, in.include_synonyms);
		else if (q->resource_type == MD_RESOURCE_BROKER)
			describe_broker(req, q, r, in.include_synonyms);
		else {
			r->error_code = TM_ERR_INVALID_REQUEST;
			r->error_message = kstr_c("Unsupported resource type");
		}
	}
	REQ_RESPOND(req, describe_configs, &out);
}

/* ---- altering ------------------------------------------------------------------ */

/* One resource's requested change, normalised from either API. */
struct cfg_change {
	int8_t resource_type;
	struct kstr resource_name;
	int n;
	struct kstr *keys;
	struct kstr *values;       /* null: delete */
	int8_t *ops;
	bool replace_all;          /* legacy AlterConfigs: unlisted overrides are removed */
	int16_t *error_code;       /* into the response */
	struct kstr *error_message;
};

struct alter_op {
	struct tm_req *req;
	bool incremental;
	bool validate_only;
	struct cfg_change *changes;
	int n;
	struct kafka_alter_configs_response legacy;
	struct kafka_incremental_alter_configs_response inc;
};

static void alter_respond(struct alter_op *op)
{
	if (op->incremental)
		REQ_RESPOND(op->req, incremental_alter_configs, &op->inc);
	else
		REQ_RESPOND(op->req, alter_configs, &op->legacy);
	free(op);
}

static void alter_committed(struct tm_broker *b, void *arg, int err)
{
	struct alter_op *op = arg;
	(void)b;
	for (int i = 0; i < op->n; i++)
		if (err && !*op->changes[i].error_code)
			*op->changes[i].error_code = TM_ERR_NOT_CONTROLLER;
	alter_respond(op);
}

static void change_error(struct tm_req *req, struct cfg_change *c, int16_t code, const char *msg)
{
	*c->error_code = code;
	*c->error_message = kstr_c(arena_strndup(&req->arena, msg, strlen(msg)));
}

/* Computes the new value of list config `key` for APPEND/SUBTRACT. */
static char *list_edit(struct tm_req *req, const char *cur, struct kstr item, bool append)
{
	char *out = arena_alloc(&req->arena, strlen(cur ? cur : "") + (size_t)(item.len > 0 ? item.len : 0) + 2);
	if (!out)
		return NULL;
	out[0] = 0;
	char tmp[512];
	snprintf(tmp, sizeof(tmp), "%s", cur ? cur : "");
	char *save = NULL;
	bool present = false;
	for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		bool same = item.len == (int32_t)strlen(t) && !memcmp(t, item.ptr, (size_t)item.len);
		present |= same;
		if (!append && same)
			continue;
		if (out[0])
			strcat(out, ",");
		strcat(out, t);
	}
	if (append && !present && item.len > 0) {
		if (out[0])
			strcat(out, ",");
		strncat(out, item.ptr, (size_t)item.len);
	}
	return out;
}

static void alter_run(struct tm_broker *b, void *arg)
{
	struct alter_op *op = arg;
	struct tm_req *req = op->req;
	struct ctl_txn t;
	ctl_txn_init(&t);
	int added = 0;
	for (int i = 0; i < op->n; i++) {
		struct cfg_change *c = &op->changes[i];
		if (c->resource_type == MD_RESOURCE_BROKER) {
			/* Removing replication throttles (kafka-reassign-partitions
			 * --verify does it) succeeds: Tidemark sets none. */
			bool throttle_removal = c->n > 0;
			for (int k = 0; k < c->n && throttle_removal; k++)
				throttle_removal = (c->ops[k] == OP_DELETE || (c->ops[k] == OP_SET && c->values[k].len < 0)) &&
						   (kstr_eq(c->keys[k], "leader.replication.throttled.rate") ||
						    kstr_eq(c->keys[k], "follower.replication.throttled.rate") ||
						    kstr_eq(c->keys[k], "replica.alter.log.dirs.io.max.bytes.per.second"));
			if (!throttle_removal)
				change_error(req, c, TM_ERR_INVALID_REQUEST,
					     "Tidemark does not change broker configs at runtime; set them in server.properties and restart");
			continue;
		}
		if (c->resource_type != MD_RESOURCE_TOPIC) {
			change_error(req, c, TM_ERR_INVALID_REQUEST, "Unsupported resource type");
			continue;
		}
		struct md_topic *mt = c->resource_name.len > 0
					      ? md_topic_by_name(&b->md, c->resource_name.ptr, (size_t)c->resource_name.len)
					      : NULL;
		if (!mt) {
			change_error(req, c, TM_ERR_UNKNOWN_TOPIC_OR_PARTITION, "The topic does not exist.");
			continue;
		}
		/* Validate every entry first: a resource changes all or nothing. */
		const char **keys = arena_alloc(&req->arena, sizeof(char *) * (size_t)(c->n + 1));
		const char **vals = arena_alloc(&req->arena, sizeof(char *) * (size_t)(c->n + 1));
		bool ok = keys && vals;
		for (int k = 0; ok && k < c->n; k++) {
			keys[k] = arena_strndup(&req->arena, c->keys[k].ptr ? c->keys[k].ptr : "", (size_t)(c->keys[k].len > 0 ? c->keys[k].len : 0));
			int8_t o = c->ops[k];
			if (o == OP_SET)
				vals[k] = c->values[k].len < 0 ? NULL : arena_strndup(&req->arena, c->values[k].ptr, (size_t)c->values[k].len);
			else if (o == OP_DELETE)
				vals[k] = NULL;
			else if ((o == OP_APPEND || o == OP_SUBTRACT) && topic_config_type(keys[k]) == TYPE_LIST) {
				char buf[64];
				bool dflt;
				vals[k] = list_edit(req, topic_config_value(b, mt, keys[k], buf, sizeof(buf), &dflt), c->values[k],
						    o == OP_APPEND);
			} else {
				char msg[200];
				snprintf(msg, sizeof(msg), "Config %s does not take operation %d", keys[k], o);
				change_error(req, c, TM_ERR_INVALID_CONFIG, msg);
				ok = false;
				break;
			}
			char why[300];
			int e = topic_config_check(keys[k], vals[k], why, sizeof(why));
			if (e) {
				change_error(req, c, (int16_t)e, why);
				ok = false;
			}
		}
		if (!ok || op->validate_only)
			continue;
		for (int k = 0; k < c->n; k++) {
			struct kafka_config_record cr;
			kafka_config_record_init(&cr);
			cr.resource_type = MD_RESOURCE_TOPIC;
			cr.resource_name = kstr_c(mt->name);
			cr.name = kstr_c(keys[k]);
			cr.value = kstr_c(vals[k]);
			ctl_txn_add(&t, KAFKA_METADATA_CONFIG, 0, &cr);
		}
		if (c->replace_all) {
			for (int k = 0; k < mt->n_configs; k++) {
				bool listed = false;
				for (int j = 0; j < c->n; j++)
					listed |= !strcmp(keys[j], mt->configs[k].key);
				if (listed)
					continue;
				struct kafka_config_record cr;
				kafka_config_record_init(&cr);
				cr.resource_type = MD_RESOURCE_TOPIC;
				cr.resource_name = kstr_c(mt->name);
				cr.name = kstr_c(mt->configs[k].key);
				cr.value = kstr_null();
				ctl_txn_add(&t, KAFKA_METADATA_CONFIG, 0, &cr);
			}
		}
		added++;
	}
	if (!added) {
		ctl_txn_deinit(&t);
		alter_respond(op);
		controller_done(b);
		return;
	}
	controller_commit(b, &t, alter_committed, op);
}

static struct cfg_change *changes_alloc(struct tm_req *req, int n)
{
	return arena_alloc(&req->arena, sizeof(struct cfg_change) * (size_t)(n ? n : 1));
}

void api_alter_configs(struct tm_req *req)
{
	struct kafka_alter_configs_request in;
	if (REQ_DECODE(req, alter_configs, &in))
		return;
	struct alter_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	op->req = req;
	op->validate_only = in.validate_only;
	kafka_alter_configs_response_init(&op->legacy);
	int n = in.resources_count > 0 ? in.resources_count : 0;
	op->n = n;
	op->changes = changes_alloc(req, n);
	op->legacy.responses = arena_alloc(&req->arena, sizeof(*op->legacy.responses) * (size_t)(n ? n : 1));
	op->legacy.responses_count = n;
	for (int i = 0; i < n; i++) {
		struct kafka_alter_configs_request_alter_configs_resource *q = &in.resources[i];
		struct kafka_alter_configs_response_alter_configs_resource_response *r = &op->legacy.responses[i];
		struct cfg_change *c = &op->changes[i];
		r->resource_type = q->resource_type;
		r->resource_name = q->resource_name;
		r->error_message = kstr_null();
		c->resource_type = q->resource_type;
		c->resource_name = q->resource_name;
		c->n = q->configs_count > 0 ? q->configs_count : 0;
		c->keys = arena_alloc(&req->arena, sizeof(struct kstr) * (size_t)(c->n + 1));
		c->values = arena_alloc(&req->arena, sizeof(struct kstr) * (size_t)(c->n + 1));
		c->ops = arena_alloc(&req->arena, (size_t)(c->n + 1));
		for (int k = 0; k < c->n; k++) {
			c->keys[k] = q->configs[k].name;
			c->values[k] = q->configs[k].value;
			c->ops[k] = OP_SET;
		}
		c->replace_all = true;
		c->error_code = &r->error_code;
		c->error_message = &r->error_message;
	}
	controller_run(req->b, alter_run, op);
}

void api_incremental_alter_configs(struct tm_req *req)
{
	struct kafka_incremental_alter_configs_request in;
	if (REQ_DECODE(req, incremental_alter_configs, &in))
		return;
	struct alter_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	op->req = req;
	op->incremental = true;
	op->validate_only = in.validate_only;
	kafka_incremental_alter_configs_response_init(&op->inc);
	int n = in.resources_count > 0 ? in.resources_count : 0;
	op->n = n;
	op->changes = changes_alloc(req, n);
	op->inc.responses = arena_alloc(&req->arena, sizeof(*op->inc.responses) * (size_t)(n ? n : 1));
	op->inc.responses_count = n;
	for (int i = 0; i < n; i++) {
		struct kafka_incremental_alter_configs_request_alter_configs_resource *q = &in.resources[i];
		struct kafka_incremental_alter_configs_response_alter_configs_resource_response *r = &op->inc.responses[i];
		struct cfg_change *c = &op->changes[i];
		r->resource_type = q->resource_type;
		r->resource_name = q->resource_name;
		r->error_message = kstr_null();
		c->resource_type = q->resource_type;
		c->resource_name = q->resource_name;
		c->n = q->configs_count > 0 ? q->configs_count : 0;
		c->keys = arena_alloc(&req->arena, sizeof(struct kstr) * (size_t)(c->n + 1));
		c->values = arena_alloc(&req->arena, sizeof(struct kstr) * (size_t)(c->n + 1));
		c->ops = arena_alloc(&req->arena, (size_t)(c->n + 1));
		for (int k = 0; k < c->n; k++) {
			c->keys[k] = q->configs[k].name;
			c->values[k] = q->configs[k].value;
			c->ops[k] = q->configs[k].config_operation;
		}
		c->error_code = &r->error_code;
		c->error_message = &r->error_message;
	}
	controller_run(req->b, alter_run, op);
}
