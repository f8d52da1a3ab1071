/*
 * metadata.c — md_apply(): KRaft metadata records onto the image.  Pure: no
 * I/O, no clock.  See metadata.h.
 */
#include "broker/metadata.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/kafka_msgs.h"

void md_image_init(struct md_image *img)
{
	memset(img, 0, sizeof(*img));
	tm_map_init(&img->topics);
	tm_map_init(&img->topic_ids);
	img->applied_offset = -1;
}

static void configs_free(struct md_config *c, int n)
{
	for (int i = 0; i < n; i++) {
		free(c[i].key);
		free(c[i].value);
	}
	free(c);
}

static void topic_free(struct md_topic *t)
{
	free(t->parts);
	configs_free(t->configs, t->n_configs);
	free(t);
}

void md_image_deinit(struct md_image *img)
{
	for (size_t i = 0; i < img->topics.cap; i++)
		if (img->topics.slots[i].key)
			topic_free(img->topics.slots[i].value);
	tm_map_deinit(&img->topics);
	tm_map_deinit(&img->topic_ids);
	configs_free(img->broker_configs, img->n_broker_configs);
	memset(img, 0, sizeof(*img));
}

struct md_topic *md_topic_by_name(const struct md_image *img, const char *name, size_t len)
{
	return tm_map_get(&img->topics, name, len);
}

struct md_topic *md_topic_by_id(const struct md_image *img, const struct kuuid *id)
{
	return tm_map_get(&img->topic_ids, id->b, 16);
}

struct md_broker *md_broker(struct md_image *img, int32_t id)
{
	for (int i = 0; i < img->n_brokers; i++)
		if (img->brokers[i].id == id)
			return &img->brokers[i];
	return NULL;
}

const char *md_topic_config(const struct md_topic *t, const char *key)
{
	for (int i = 0; i < t->n_configs; i++)
		if (!strcmp(t->configs[i].key, key))
			return t->configs[i].value;
	return NULL;
}

bool md_replica_in(const int32_t *set, int n, int32_t id)
{
	for (int i = 0; i < n; i++)
		if (set[i] == id)
			return true;
	return false;
}

static int copy_set(int32_t *dst, int *n_dst, const int32_t *src, int32_t n_src)
{
	if (n_src < 0 || n_src > MD_REPLICAS_MAX)
		return -EINVAL;
	if (n_src > 0)
		memcpy(dst, src, sizeof(int32_t) * (size_t)n_src);
	*n_dst = n_src;
	return 0;
}

static int apply_topic(struct md_image *img, const struct kafka_topic_record *r)
{
	if (r->name.len <= 0 || r->name.len > MD_TOPIC_NAME_MAX)
		return -EINVAL;
	if (md_topic_by_name(img, r->name.ptr, (size_t)r->name.len) || md_topic_by_id(img, &r->topic_id))
		return -EINVAL;
	struct md_topic *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	memcpy(t->name, r->name.ptr, (size_t)r->name.len);
	t->id = r->topic_id;
	if (tm_map_put(&img->topics, t->name, strlen(t->name), t) ||
	    tm_map_put(&img->topic_ids, t->id.b, 16, t)) {
		tm_map_del(&img->topics, t->name, strlen(t->name));
		topic_free(t);
		return -ENOMEM;
	}
	img->change_seq++;
	return 0;
}

static int apply_partition(struct md_image *img, const struct kafka_partition_record *r)
{
	struct md_topic *t = md_topic_by_id(img, &r->topic_id);
	if (!t || r->partition_id < 0 || r->partition_id >= MD_PARTITIONS_MAX)
		return -EINVAL;
	if (r->partition_id >= t->n_partitions) {
		/* Partitions arrive in order; a gap is a corrupt log. */
		if (r->partition_id != t->n_partitions)
			return -EINVAL;
		struct md_partition *np = realloc(t->parts, sizeof(*np) * (size_t)(t->n_partitions + 1));
		if (!np)
			return -ENOMEM;
		t->parts = np;
		memset(&t->parts[t->n_partitions], 0, sizeof(*np));
		t->n_partitions++;
	}
	struct md_partition *p = &t->parts[r->partition_id];
	if (copy_set(p->replicas, &p->n_replicas, r->replicas, r->replicas_count) ||
	    copy_set(p->isr, &p->n_isr, r->isr, r->isr_count) ||
	    copy_set(p->adding, &p->n_adding, r->adding_replicas, r->adding_replicas_count > 0 ? r->adding_replicas_count : 0) ||
	    copy_set(p->removing, &p->n_removing, r->removing_replicas,
		     r->removing_replicas_count > 0 ? r->removing_replicas_count : 0))
		return -EINVAL;
	p->leader = r->leader;
	p->leader_epoch = r->leader_epoch;
	p->partition_epoch = r->partition_epoch;
	img->change_seq++;
	return 0;
}

static int apply_partition_change(struct md_image *img, const struct kafka_partition_change_record *r)
{
	struct md_topic *t = md_topic_by_id(img, &r->topic_id);
	if (!t || r->partition_id < 0 || r->partition_id >= t->n_partitions)
		return -EINVAL;
	struct md_partition *p = &t->parts[r->partition_id];
	if (r->replicas_count >= 0 && copy_set(p->replicas, &p->n_replicas, r->replicas, r->replicas_count))
		return -EINVAL;
	if (r->isr_count >= 0 && copy_set(p->isr, &p->n_isr, r->isr, r->isr_count))
		return -EINVAL;
	/* Null (-1) leaves a reassignment's adding/removing sets as they are; empty clears them. */
	if (r->adding_replicas_count >= 0 && copy_set(p->adding, &p->n_adding, r->adding_replicas, r->adding_replicas_count))
		return -EINVAL;
	if (r->removing_replicas_count >= 0 &&
	    copy_set(p->removing, &p->n_removing, r->removing_replicas, r->removing_replicas_count))
		return -EINVAL;
	/* leader -2 (the default) means "unchanged"; a new leader bumps the epoch. */
	if (r->leader != -2) {
		p->leader = r->leader;
		p->leader_epoch++;
	}
	p->partition_epoch++;
	img->change_seq++;
	return 0;
}

static int set_config(struct md_config **list, int *n, struct kstr key, struct kstr value)
{
	if (key.len <= 0 || key.len > 255 || value.len > MD_CONFIG_VALUE_MAX)
		return -EINVAL;
	for (int i = 0; i < *n; i++) {
		struct md_config *c = &(*list)[i];
		if ((int32_t)strlen(c->key) != key.len || memcmp(c->key, key.ptr, (size_t)key.len))
			continue;
		free(c->value);
		c->value = NULL;
		if (value.len < 0) { /* null value: delete the override */
			free(c->key);
			(*list)[i] = (*list)[--*n];
			return 0;
		}
		c->value = strndup(value.ptr, (size_t)value.len);
		return c->value ? 0 : -ENOMEM;
	}
	if (value.len < 0)
		return 0;
	struct md_config *nl = realloc(*list, sizeof(*nl) * (size_t)(*n + 1));
	if (!nl)
		return -ENOMEM;
	*list = nl;
	nl[*n].key = strndup(key.ptr, (size_t)key.len);
	nl[*n].value = strndup(value.ptr, (size_t)value.len);
	if (!nl[*n].key || !nl[*n].value) {
		free(nl[*n].key);
		free(nl[*n].value);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

static int apply_config(struct md_image *img, const struct kafka_config_record *r)
{
	int rc;
	if (r->resource_type == MD_RESOURCE_TOPIC) {
		struct md_topic *t = r->resource_name.len > 0
					     ? md_topic_by_name(img, r->resource_name.ptr, (size_t)r->resource_name.len)
					     : NULL;
		if (!t)
			return -EINVAL;
		rc = set_config(&t->configs, &t->n_configs, r->name, r->value);
	} else if (r->resource_type == MD_RESOURCE_BROKER) {
		rc = set_config(&img->broker_configs, &img->n_broker_configs, r->name, r->value);
	} else {
		return 0; /* other resource types (client metrics, groups) do not concern the image yet */
	}
	if (!rc)
		img->change_seq++;
	return rc;
}

static int apply_remove_topic(struct md_image *img, const struct kafka_remove_topic_record *r)
{
	struct md_topic *t = md_topic_by_id(img, &r->topic_id);
	if (!t)
		return -EINVAL;
	tm_map_del(&img->topics, t->name, strlen(t->name));
	tm_map_del(&img->topic_ids, t->id.b, 16);
	topic_free(t);
	img->change_seq++;
	return 0;
}

static int apply_register_broker(struct md_image *img, const struct kafka_register_broker_record *r)
{
	struct md_broker *b = md_broker(img, r->broker_id);
	if (!b) {
		if (img->n_brokers >= MD_BROKERS_MAX)
			return -EINVAL;
		b = &img->brokers[img->n_brokers++];
	}
	memset(b, 0, sizeof(*b));
	b->id = r->broker_id;
	b->epoch = r->broker_epoch;
	b->fenced = r->fenced;
	b->in_controlled_shutdown = r->in_controlled_shutdown;
	if (r->rack.len > 0 && (size_t)r->rack.len < sizeof(b->rack))
		memcpy(b->rack, r->rack.ptr, (size_t)r->rack.len);
	for (int32_t i = 0; i < r->end_points_count && b->n_eps < MD_ENDPOINTS_MAX; i++) {
		const struct kafka_register_broker_record_broker_endpoint *e = &r->end_points[i];
		struct md_endpoint *me = &b->eps[b->n_eps];
		if (e->name.len <= 0 || (size_t)e->name.len >= sizeof(me->name) || e->host.len < 0 ||
		    (size_t)e->host.len >= sizeof(me->host))
			return -EINVAL;
		memcpy(me->name, e->name.ptr, (size_t)e->name.len);
		memcpy(me->host, e->host.ptr, (size_t)e->host.len);
		me->port = e->port;
		me->security_protocol = e->security_protocol;
		b->n_eps++;
	}
	img->change_seq++;
	return 0;
}

static int apply_broker_change(struct md_image *img, int32_t id, int64_t epoch, int fenced, int shutdown)
{
	struct md_broker *b = md_broker(img, id);
	if (!b || b->epoch != epoch)
		return 0; /* a change for an older incarnation: nothing to do */
	if (fenced >= 0)
		b->fenced = fenced;
	if (shutdown >= 0)
		b->in_controlled_shutdown = shutdown;
	img->change_seq++;
	return 0;
}

int md_apply(struct md_image *img, int16_t type, const void *rec)
{
	switch (type) {
	case KAFKA_METADATA_TOPIC:
		return apply_topic(img, rec);
	case KAFKA_METADATA_PARTITION:
		return apply_partition(img, rec);
	case KAFKA_METADATA_PARTITION_CHANGE:
		return apply_partition_change(img, rec);
	case KAFKA_METADATA_CONFIG:
		return apply_config(img, rec);
	case KAFKA_METADATA_REMOVE_TOPIC:
		return apply_remove_topic(img, rec);
	case KAFKA_METADATA_REGISTER_BROKER:
		return apply_register_broker(img, rec);
	case KAFKA_METADATA_UNREGISTER_BROKER: {
		const struct kafka_unregister_broker_record *r = rec;
		for (int i = 0; i < img->n_brokers; i++)
			if (img->brokers[i].id == r->broker_id && img->brokers[i].epoch == r->broker_epoch) {
				img->brokers[i] = img->brokers[--img->n_brokers];
				img->change_seq++;
				break;
			}
		return 0;
	}
	case KAFKA_METADATA_FENCE_BROKER: {
		const struct kafka_fence_broker_record *r = rec;
		return apply_broker_change(img, r->id, r->epoch, 1, -1);
	}
	case KAFKA_METADATA_UNFENCE_BROKER: {
		const struct kafka_unfence_broker_record *r = rec;
		return apply_broker_change(img, r->id, r->epoch, 0, -1);
	}
	case KAFKA_METADATA_BROKER_REGISTRATION_CHANGE: {
		const struct kafka_broker_registration_change_record *r = rec;
		/* fenced: -1 unfence, 0 unchanged, 1 fence (Kafka's BrokerRegistrationFencingChange) */
		int fenced = r->fenced == 1 ? 1 : r->fenced == -1 ? 0 : -1;
		int shutdown = r->in_controlled_shutdown == 1 ? 1 : -1;
		return apply_broker_change(img, r->broker_id, r->broker_epoch, fenced, shutdown);
	}
	case KAFKA_METADATA_PRODUCER_IDS: {
		const struct kafka_producer_ids_record *r = rec;
		if (r->next_producer_id < img->next_producer_id)
			return -EINVAL;
		img->next_producer_id = r->next_producer_id;
		return 0;
	}
	case KAFKA_METADATA_FEATURE_LEVEL: {
		const struct kafka_feature_level_record *r = rec;
		if (kstr_eq(r->name, "metadata.version"))
			img->metadata_version = r->feature_level;
		return 0;
	}
	default:
		return 0; /* records the image does not track (quotas, SCRAM, ACLs, no-ops) */
	}
}
