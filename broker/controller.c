/*
 * controller.c — the metadata log and the operations that write it.  See
 * controller.h.
 *
 * A transaction is one record batch proposed to the Raft quorum
 * (broker/quorum.c); its callback runs once the quorum committed it and this
 * node applied it to the image.  Every node applies committed batches the
 * same way, so the image is the same everywhere.
 */
#include "broker/controller.h"
#include "broker/placement.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "broker/elect.h"
#include "broker/partition.h"
#include "common/kerr.h"
#include "common/tm_assert.h"
#include "common/tm_log.h"
#include "common/tm_time.h"
#include "protocol/records.h"
#include "broker/quorum.h"
#include "storage/log.h"

#define CTL_FRAME_VERSION 1
#define CTL_METADATA_VERSION 25    /* the feature level recorded at bootstrap */

struct ctl_op {
	struct ctl_op *next;
	ctl_fn fn;
	void *arg;
};

#define CTL_LEASES_MAX MD_BROKERS_MAX

struct ctl_lease {
	int32_t id;
	int64_t last_ms;            /* monotonic time of the last heartbeat */
};

struct tm_controller {
	struct ctl_lease leases[CTL_LEASES_MAX];
	int n_leases;
	bool fencing;               /* a fence/unfence operation is queued or running */
	bool registering;           /* a registration of this node is under way */
	bool busy;                  /* an operation is running or committing */
	struct ctl_op *head, *tail; /* waiting operations */
	ctl_commit_cb commit_cb;
	void *commit_arg;
	struct ctl_txn committing;
};

/* ---- transactions ---------------------------------------------------------- */

void ctl_txn_init(struct ctl_txn *t)
{
	memset(t, 0, sizeof(*t));
	wbuf_init(&t->values);
}

void ctl_txn_deinit(struct ctl_txn *t)
{
	wbuf_deinit(&t->values);
	free(t->lens);
	memset(t, 0, sizeof(*t));
}

int ctl_txn_add(struct ctl_txn *t, int16_t type, int16_t version, const void *record)
{
	if (t->n == t->cap) {
		int ncap = t->cap ? t->cap * 2 : 8;
		uint32_t *nl = realloc(t->lens, sizeof(*nl) * (size_t)ncap);
		if (!nl)
			return -ENOMEM;
		t->lens = nl;
		t->cap = ncap;
	}
	size_t start = t->values.len;
	wr_uvarint(&t->values, CTL_FRAME_VERSION);
	wr_uvarint(&t->values, (uint32_t)type);
	wr_uvarint(&t->values, (uint32_t)version);
	int rc = kafka_metadata_record_encode(type, version, &t->values, record);
	if (rc || t->values.err)
		return -ENOMEM;
	t->lens[t->n++] = (uint32_t)(t->values.len - start);
	return 0;
}

/* ---- applying ---------------------------------------------------------------- */

/* Decodes one framed record value and applies it. */
static int ctl_apply_value(struct tm_broker *b, const uint8_t *p, size_t len)
{
	struct tm_rd r;
	rd_init(&r, p, len);
	uint32_t frame = rd_uvarint(&r);
	uint32_t type = rd_uvarint(&r);
	uint32_t version = rd_uvarint(&r);
	if (r.err || frame != CTL_FRAME_VERSION || type > INT16_MAX || version > INT16_MAX)
		return -EBADMSG;
	const struct kafka_metadata_record_desc *d = kafka_metadata_record_lookup((int16_t)type);
	if (!d)
		return 0; /* a record type this version does not know: nothing to apply */
	struct tm_arena a;
	arena_init(&a, 0);
	void *rec = arena_alloc(&a, d->struct_size);
	int rc = -ENOMEM;
	if (rec) {
		rc = kafka_metadata_record_decode((int16_t)type, (int16_t)version, &r, rec, &a);
		if (!rc)
			rc = md_apply(&b->md, (int16_t)type, rec);
	}
	arena_deinit(&a);
	return rc;
}

int controller_apply_batches(struct tm_broker *b, const uint8_t *buf, size_t len, int64_t hw, int64_t *next_offset)
{
	struct records_iter it;
	struct records_record rec;
	records_iter_init(&it, buf, len);
	int rc;
	while ((rc = records_iter_next(&it, &rec)) == 1) {
		int64_t batch_end = it.hdr.base_offset + it.hdr.last_offset_delta + 1;
		if (batch_end > hw)
			break; /* not committed yet */
		if (!(it.hdr.attributes & 0x20) && rec.value.len >= 0) {
			/* Control batches (leader changes) carry no metadata. */
			rc = ctl_apply_value(b, rec.value.ptr, (size_t)rec.value.len);
			if (rc) {
				tm_error("controller", "metadata record at offset %" PRId64 " does not apply (%s); "
					 "the metadata log under %s/__cluster_metadata-0 is corrupt",
					 rec.offset, strerror(-rc), b->cfg.log_dir);
				return rc;
			}
		}
		if (rec.offset + 1 > *next_offset)
			*next_offset = rec.offset + 1;
		if (rec.offset == batch_end - 1 && batch_end > *next_offset)
			*next_offset = batch_end;
	}
	if (rc < 0) {
		tm_error("controller", "cannot parse the metadata log: %s", strerror(-rc));
		return rc;
	}
	return 0;
}

/* ---- the operation queue ----------------------------------------------------- */

static void ctl_next(struct tm_broker *b)
{
	struct tm_controller *c = b->controller;
	while (!c->busy && c->head) {
		struct ctl_op *op = c->head;
		c->head = op->next;
		if (!c->head)
			c->tail = NULL;
		c->busy = true;
		op->fn(b, op->arg);
		free(op);
	}
}

void controller_run(struct tm_broker *b, ctl_fn fn, void *arg)
{
	struct tm_controller *c = b->controller;
	struct ctl_op *op = calloc(1, sizeof(*op));
	TM_ASSERT(op != NULL);
	op->fn = fn;
	op->arg = arg;
	if (c->tail)
		c->tail->next = op;
	else
		c->head = op;
	c->tail = op;
	ctl_next(b);
}

void controller_done(struct tm_broker *b)
{
	b->controller->busy = false;
	ctl_next(b);
}

static void ctl_commit_done(struct tm_broker *b, void *arg, int err)
{
	struct tm_controller *c = b->controller;
	(void)arg;
	if (err)
		tm_warn("controller", "a metadata change did not commit: %s", strerror(-err));
	ctl_txn_deinit(&c->committing);
	ctl_commit_cb cb = c->commit_cb;
	void *cb_arg = c->commit_arg;
	c->commit_cb = NULL;
	cb(b, cb_arg, err);
	controller_done(b);
}

void controller_commit(struct tm_broker *b, struct ctl_txn *t, ctl_commit_cb cb, void *arg)
{
	struct tm_controller *c = b->controller;
	TM_ASSERT(c->busy);
	TM_ASSERT(c->commit_cb == NULL);
	c->committing = *t;
	memset(t, 0, sizeof(*t));
	c->commit_cb = cb;
	c->commit_arg = arg;
	struct ctl_txn *ct = &c->committing;

	struct tm_wbuf w;
	wbuf_init(&w);
	struct records_batch_opts o;
	records_batch_opts_init(&o);
	struct records_builder rb;
	records_builder_init(&rb, &w, &o);
	int64_t now = tm_wall_ms();
	size_t at = 0;
	for (int i = 0; i < ct->n; i++) {
		records_builder_add(&rb, now, kbytes_null(), kbytes_make(ct->values.buf + at, ct->lens[i]), NULL, 0);
		at += ct->lens[i];
	}
	int rc = records_builder_finish(&rb);
	if (!rc)
		rc = quorum_propose(b, w.buf, w.len, (uint32_t)ct->n, ctl_commit_done, NULL);
	wbuf_deinit(&w);
	if (rc)
		ctl_commit_done(b, NULL, rc);
	else
		broker_kick_io(b);
}

/* ---- helpers for operations -------------------------------------------------- */

void controller_new_topic_id(struct tm_broker *b, struct kuuid *out)
{
	do {
		RAND_bytes(out->b, 16);
	} while (kuuid_is_zero(out) || md_topic_by_id(&b->md, out));
}

int controller_place(struct tm_broker *b, int32_t n_parts, int16_t rf, int32_t first_partition, int32_t *replicas)
{
	struct placement_broker live[MD_BROKERS_MAX];
	int n = 0;
	for (int i = 0; i < b->md.n_brokers; i++) {
		const struct md_broker *br = &b->md.brokers[i];
		if (br->fenced || br->in_controlled_shutdown)
			continue;
		live[n].id = br->id;
		snprintf(live[n].rack, sizeof(live[n].rack), "%s", br->rack);
		n++;
	}
	if (rf < 1 || rf > n || rf > MD_REPLICAS_MAX)
		return TM_ERR_INVALID_REPLICATION_FACTOR;
	if (placement_assign(live, n, n_parts, rf, first_partition, replicas))
		return TM_ERR_INVALID_REPLICATION_FACTOR;
	return TM_ERR_NONE;
}

int topic_name_check(const char *name, int32_t len, char *why, size_t why_len)
{
	if (len <= 0) {
		snprintf(why, why_len, "Topic name is illegal, it can't be empty");
		return TM_ERR_INVALID_TOPIC_EXCEPTION;
	}
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
		snprintf(why, why_len, "Topic name cannot be \".\" or \"..\"");
		return TM_ERR_INVALID_TOPIC_EXCEPTION;
	}
	if (len > MD_TOPIC_NAME_MAX) {
		snprintf(why, why_len, "Topic name is illegal, it can't be longer than %d characters", MD_TOPIC_NAME_MAX);
		return TM_ERR_INVALID_TOPIC_EXCEPTION;
	}
	for (int32_t i = 0; i < len; i++) {
		char ch = name[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			  ch == '.' || ch == '_' || ch == '-';
		if (!ok) {
			snprintf(why, why_len,
				 "Topic name \"%.*s\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'",
				 (int)len, name);
			return TM_ERR_INVALID_TOPIC_EXCEPTION;
		}
	}
	return TM_ERR_NONE;
}

int controller_add_topic_records(struct tm_broker *b, struct ctl_txn *t, const char *name, int32_t n_parts,
				 int16_t rf, const int32_t *replicas, const char *const *config_keys,
				 const char *const *config_values, int n_configs, struct kuuid *id_out)
{
	struct kafka_topic_record tr;
	kafka_topic_record_init(&tr);
	tr.name = kstr_c(name);
	controller_new_topic_id(b, &tr.topic_id);
	*id_out = tr.topic_id;
	int rc = ctl_txn_add(t, KAFKA_METADATA_TOPIC, 0, &tr);
	for (int i = 0; i < n_configs && !rc; i++) {
		struct kafka_config_record cr;
		kafka_config_record_init(&cr);
		cr.resource_type = MD_RESOURCE_TOPIC;
		cr.resource_name = kstr_c(name);
		cr.name = kstr_c(config_keys[i]);
		cr.value = kstr_c(config_values[i]);
		rc = ctl_txn_add(t, KAFKA_METADATA_CONFIG, 0, &cr);
	}
	for (int32_t p = 0; p < n_parts && !rc; p++) {
		struct kafka_partition_record pr;
		kafka_partition_record_init(&pr);
		pr.partition_id = p;
		pr.topic_id = tr.topic_id;
		pr.replicas = (int32_t *)&replicas[p * rf];
		pr.replicas_count = rf;
		/* Every replica starts in sync: the logs are all empty (Kafka's rule). */
		pr.isr = pr.replicas;
		pr.isr_count = rf;
		pr.removing_replicas_count = 0;
		pr.adding_replicas_count = 0;
		pr.leader = replicas[p * rf];
		pr.leader_epoch = 0;
		pr.partition_epoch = 0;
		pr.directories_count = 0;
		rc = ctl_txn_add(t, KAFKA_METADATA_PARTITION, 0, &pr);
	}
	return rc;
}

/* ---- start / stop ------------------------------------------------------------- */

static struct ctl_lease *ctl_lease(struct tm_controller *c, int32_t id);
static int ctl_partition_changes(struct tm_broker *b, struct ctl_txn *t, int32_t id, bool fence);

/* A broker registration to commit: this node's, or one received in a
 * BrokerRegistration request from another node. */
struct ctl_reg {
	int32_t id;
	char rack[64];
	int n_eps;
	struct kafka_register_broker_record_broker_endpoint eps[TM_MAX_LISTENERS];
	char names[TM_MAX_LISTENERS][64];
	char hosts[TM_MAX_LISTENERS][256];
	struct tm_req *req;         /* the BrokerRegistration to answer, or NULL for self */
	int64_t epoch;
};

static void ctl_reg_done(struct tm_broker *b, void *arg, int err)
{
	struct ctl_reg *g = arg;
	if (!g->req) {
		b->controller->registering = false;
		if (err) {
			tm_error("controller", "could not register node %d: %s", b->cfg.node_id, strerror(-err));
		} else {
			b->registered_epoch = g->epoch;
			tm_info("controller", "node %d registered at broker epoch %" PRId64, g->id, g->epoch);
		}
	} else {
		struct kafka_broker_registration_response out;
		kafka_broker_registration_response_init(&out);
		out.error_code = err ? TM_ERR_NOT_CONTROLLER : TM_ERR_NONE;
		out.broker_epoch = err ? -1 : g->epoch;
		if (!err)
			tm_info("controller", "node %d registered at broker epoch %" PRId64, g->id, g->epoch);
		REQ_RESPOND(g->req, broker_registration, &out);
	}
	free(g);
}

/* Commits a RegisterBrokerRecord; the first registration in the cluster's
 * life also records the metadata.version feature level. */
static void ctl_reg_run(struct tm_broker *b, void *arg)
{
	struct ctl_reg *g = arg;
	struct ctl_txn t;
	ctl_txn_init(&t);
	int rc = 0;
	if (b->md.metadata_version == 0) {
		struct kafka_feature_level_record f;
		kafka_feature_level_record_init(&f);
		f.name = kstr_c("metadata.version");
		f.feature_level = CTL_METADATA_VERSION;
		rc = ctl_txn_add(&t, KAFKA_METADATA_FEATURE_LEVEL, 0, &f);
	}
	struct kafka_register_broker_record r;
	kafka_register_broker_record_init(&r);
	r.broker_id = g->id;
	g->epoch = b->md.applied_offset + 1;
	r.broker_epoch = g->epoch;
	RAND_bytes(r.incarnation_id.b, 16);
	r.end_points = g->eps;
	r.end_points_count = g->n_eps;
	r.features_count = 0;
	r.rack = g->rack[0] ? kstr_c(g->rack) : kstr_null();
	r.fenced = false;
	r.log_dirs_count = 0;
	if (!rc)
		rc = ctl_txn_add(&t, KAFKA_METADATA_REGISTER_BROKER, 1, &r);
	if (!rc)
		rc = ctl_partition_changes(b, &t, g->id, false);
	struct ctl_lease *l = ctl_lease(b->controller, g->id);
	if (l)
		l->last_ms = tm_mono_ms();
	if (rc) {
		ctl_txn_deinit(&t);
		ctl_reg_done(b, g, rc);
		controller_done(b);
		return;
	}
	controller_commit(b, &t, ctl_reg_done, g);
}

static void ctl_reg_add_endpoint(struct ctl_reg *g, struct kstr name, struct kstr host, int port, int16_t security)
{
	if (g->n_eps >= TM_MAX_LISTENERS || name.len <= 0 || name.len >= 64 || host.len < 0 || host.len >= 256)
		return;
	int i = g->n_eps++;
	memcpy(g->names[i], name.ptr, (size_t)name.len);
	g->names[i][name.len] = 0;
	memcpy(g->hosts[i], host.ptr, (size_t)host.len);
	g->hosts[i][host.len] = 0;
	memset(&g->eps[i], 0, sizeof(g->eps[i]));
	g->eps[i].name = kstr_c(g->names[i]);
	g->eps[i].host = kstr_c(g->hosts[i]);
	g->eps[i].port = (uint16_t)port;
	g->eps[i].security_protocol = security;
}

int controller_local_endpoints(struct tm_broker *b, struct kstr *names, struct kstr *hosts, int *ports,
			       int16_t *security, int max)
{
	int n = 0;
	for (int i = 0; i < b->cfg.listener_count && n < max; i++) {
		const struct tm_listener *l = &b->cfg.listeners[i];
		if (config_is_controller_listener(&b->cfg, l->name))
			continue;
		const struct tm_listener *adv = config_advertised_for(&b->cfg, l->name);
		names[n] = kstr_c(l->name);
		hosts[n] = kstr_c(adv->host[0] && strcmp(adv->host, "0.0.0.0") ? adv->host : "localhost");
		ports[n] = adv->port;
		security[n] = l->security == TM_SEC_SSL ? 1 : 0;
		n++;
	}
	return n;
}

void api_broker_registration(struct tm_req *req)
{
	struct tm_broker *b = req->b;
	struct kafka_broker_registration_request in;
	if (REQ_DECODE(req, broker_registration, &in))
		return;
	if (!quorum_is_leader(b) || !kstr_eq(in.cluster_id, b->cluster_id)) {
		struct kafka_broker_registration_response out;
		kafka_broker_registration_response_init(&out);
		out.error_code = quorum_is_leader(b) ? TM_ERR_INCONSISTENT_CLUSTER_ID : TM_ERR_NOT_CONTROLLER;
		if (out.error_code == TM_ERR_INCONSISTENT_CLUSTER_ID)
			tm_warn("controller", "node %d asked to register with cluster id %.*s, but this cluster is %s",
				in.broker_id, in.cluster_id.len > 0 ? in.cluster_id.len : 0, in.cluster_id.ptr, b->cluster_id);
		REQ_RESPOND(req, broker_registration, &out);
		return;
	}
	struct ctl_reg *g = calloc(1, sizeof(*g));
	TM_ASSERT(g != NULL);
	g->id = in.broker_id;
	g->req = req;
	if (in.rack.len > 0 && in.rack.len < (int32_t)sizeof(g->rack))
		memcpy(g->rack, in.rack.ptr, (size_t)in.rack.len);
	for (int32_t i = 0; i < in.listeners_count; i++)
		ctl_reg_add_endpoint(g, in.listeners[i].name, in.listeners[i].host, in.listeners[i].port,
				     in.listeners[i].security_protocol);
	controller_run(b, ctl_reg_run, g);
}

/* ---- leases, fencing, leader election ------------------------------------------- */

static struct ctl_lease *ctl_lease(struct tm_controller *c, int32_t id)
{
	for (int i = 0; i < c->n_leases; i++)
		if (c->leases[i].id == id)
			return &c->leases[i];
	if (c->n_leases >= CTL_LEASES_MAX)
		return NULL;
	c->leases[c->n_leases].id = id;
	c->leases[c->n_leases].last_ms = tm_mono_ms();
	return &c->leases[c->n_leases++];
}

static bool ctl_broker_live(struct tm_broker *b, int32_t id, int32_t excluded)
{
	struct md_broker *br = md_broker(&b->md, id);
	/* A broker in controlled shutdown is leaving: never a new leader. */
	return id != excluded && br && !br->fenced && !br->in_controlled_shutdown;
}

/* Adds the PartitionChangeRecords that follow from broker `id` going away
 * (fence: leaders move to another live ISR member, the broker leaves the
 * ISRs) or coming back (unfence: leaderless partitions it holds in the ISR
 * get it as leader).  Unclean election (a leader outside the ISR) only
 * with unclean.leader.election.enable. */
static int ctl_partition_changes(struct tm_broker *b, struct ctl_txn *t, int32_t id, bool fence)
{
	int rc = 0;
	for (size_t ti = 0; ti < b->md.topics.cap && !rc; ti++) {
		if (!b->md.topics.slots[ti].key)
			continue;
		struct md_topic *mt = b->md.topics.slots[ti].value;
		for (int32_t pi = 0; pi < mt->n_partitions && !rc; pi++) {
			struct md_partition *p = &mt->parts[pi];
			struct kafka_partition_change_record cr;
			kafka_partition_change_record_init(&cr);
			cr.topic_id = mt->id;
			cr.partition_id = pi;
			int32_t isr[MD_REPLICAS_MAX];
			int n_isr = 0;
			bool change = false;
			if (fence) {
				if (!md_replica_in(p->isr, p->n_isr, id))
					continue;
				for (int k = 0; k < p->n_isr; k++)
					if (p->isr[k] != id)
						isr[n_isr++] = p->isr[k];
				if (n_isr == 0)
					isr[n_isr++] = id; /* Kafka keeps the last ISR member: it has every committed record */
				if (n_isr != p->n_isr) {
					cr.isr = isr;
					cr.isr_count = n_isr;
					change = true;
				}
				if (p->leader == id) {
					int32_t nl = -1;
					for (int k = 0; k < n_isr && nl < 0; k++)
						if (ctl_broker_live(b, isr[k], id))
							nl = isr[k];
					if (nl < 0 && b->cfg.unclean_leader_election_enable)
						for (int k = 0; k < p->n_replicas && nl < 0; k++)
							if (ctl_broker_live(b, p->replicas[k], id))
								nl = p->replicas[k];
					cr.leader = nl;
					change = true;
				}
			} else if (p->leader < 0 && md_replica_in(p->isr, p->n_isr, id)) {
				cr.leader = id;
				change = true;
			}
			if (change)
				rc = ctl_txn_add(t, KAFKA_METADATA_PARTITION_CHANGE, 0, &cr);
		}
	}
	return rc;
}

struct ctl_fence {
	int32_t id;
	bool fence;
};

static void ctl_fence_done(struct tm_broker *b, void *arg, int err)
{
	struct ctl_fence *f = arg;
	b->controller->fencing = false;
	if (!err)
		tm_info("controller", "broker %d %s", f->id, f->fence ? "fenced: its lease expired; its partitions moved to other in-sync replicas" : "unfenced");
	free(f);
}

static void ctl_fence_run(struct tm_broker *b, void *arg)
{
	struct ctl_fence *f = arg;
	struct md_broker *br = md_broker(&b->md, f->id);
	if (!br || br->fenced == f->fence || !quorum_is_leader(b)) {
		b->controller->fencing = false;
		free(f);
		controller_done(b);
		return;
	}
	struct ctl_txn t;
	ctl_txn_init(&t);
	struct kafka_broker_registration_change_record r;
	kafka_broker_registration_change_record_init(&r);
	r.broker_id = f->id;
	r.broker_epoch = br->epoch;
	r.fenced = f->fence ? 1 : -1;
	r.in_controlled_shutdown = 0;
	r.log_dirs_count = -1;
	int rc = ctl_txn_add(&t, KAFKA_METADATA_BROKER_REGISTRATION_CHANGE, 0, &r);
	if (!rc && f->fence) {
		/* Mark it fenced first so elections skip it. */
		br->fenced = true;
		rc = ctl_partition_changes(b, &t, f->id, true);
		br->fenced = false;
	} else if (!rc) {
		rc = ctl_partition_changes(b, &t, f->id, false);
	}
	if (rc) {
		ctl_txn_deinit(&t);
		ctl_fence_done(b, f, rc);
		controller_done(b);
		return;
	}
	controller_commit(b, &t, ctl_fence_done, f);
}

static void ctl_fence_submit(struct tm_broker *b, int32_t id, bool fence)
{
	struct tm_controller *c = b->controller;
	if (c->fencing)
		return;
	struct ctl_fence *f = calloc(1, sizeof(*f));
	TM_ASSERT(f != NULL);
	f->id = id;
	f->fence = fence;
	c->fencing = true;
	controller_run(b, ctl_fence_run, f);
}

void controller_tick(struct tm_broker *b, int64_t now_ms)
{
	struct tm_controller *c = b->controller;
	if (!c || !quorum_is_leader(b) || !quorum_caught_up(b))
		return;
	leadership_tick(b, now_ms); /* leader balance, reassignment completion (api_elect.c) */
	for (int i = 0; i < b->md.n_brokers; i++) {
		struct md_broker *br = &b->md.brokers[i];
		if (br->id == b->cfg.node_id || br->fenced)
			continue;
		struct ctl_lease *l = ctl_lease(c, br->id);
		if (l && now_ms - l->last_ms > b->cfg.broker_session_timeout_ms) {
			tm_warn("controller", "broker %d sent no heartbeat for %" PRId64 " ms (broker.session.timeout.ms=%d); fencing it",
				br->id, now_ms - l->last_ms, b->cfg.broker_session_timeout_ms);
			ctl_fence_submit(b, br->id, true);
			return;
		}
	}
}

void api_broker_heartbeat(struct tm_req *req)
{
	struct tm_broker *b = req->b;
	struct tm_controller *c = b->controller;
	struct kafka_broker_heartbeat_request in;
	if (REQ_DECODE(req, broker_heartbeat, &in))
		return;
	struct kafka_broker_heartbeat_response out;
	kafka_broker_heartbeat_response_init(&out);
	struct md_broker *br = md_broker(&b->md, in.broker_id);
	if (!quorum_is_leader(b)) {
		out.error_code = TM_ERR_NOT_CONTROLLER;
	} else if (!br) {
		out.error_code = TM_ERR_BROKER_ID_NOT_REGISTERED;
	} else if (br->epoch != in.broker_epoch) {
		out.error_code = TM_ERR_STALE_BROKER_EPOCH;
	} else {
		struct ctl_lease *l = ctl_lease(c, in.broker_id);
		if (l)
			l->last_ms = tm_mono_ms();
		out.is_caught_up = true;
		out.is_fenced = br->fenced;
		/* Controlled shutdown (api_elect.c): yes once it leads nothing. */
		out.should_shut_down = in.want_shut_down && leadership_shutdown_check(b, br->id, br->epoch);
		if (br->fenced && !in.want_fence && !in.want_shut_down)
			ctl_fence_submit(b, br->id, false);
	}
	REQ_RESPOND(req, broker_heartbeat, &out);
}

int controller_start(struct tm_broker *b)
{
	struct tm_controller *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	b->controller = c;
	return 0;
}

void controller_register_self(struct tm_broker *b)
{
	struct tm_controller *c = b->controller;
	if (c->registering)
		return;
	c->registering = true;
	struct ctl_reg *g = calloc(1, sizeof(*g));
	TM_ASSERT(g != NULL);
	g->id = b->cfg.node_id;
	snprintf(g->rack, sizeof(g->rack), "%s", b->cfg.rack);
	struct kstr names[TM_MAX_LISTENERS], hosts[TM_MAX_LISTENERS];
	int ports[TM_MAX_LISTENERS];
	int16_t sec[TM_MAX_LISTENERS];
	int n = controller_local_endpoints(b, names, hosts, ports, sec, TM_MAX_LISTENERS);
	for (int i = 0; i < n; i++)
		ctl_reg_add_endpoint(g, names[i], hosts[i], ports[i], sec[i]);
	controller_run(b, ctl_reg_run, g);
}

void controller_role_changed(struct tm_broker *b, bool leader)
{
	struct tm_controller *c = b->controller;
	if (!c)
		return;
	if (leader) {
		tm_info("controller", "node %d is the active controller", b->cfg.node_id);
		/* A new controller gives every broker a full session before fencing. */
		int64_t now = tm_mono_ms();
		for (int i = 0; i < c->n_leases; i++)
			c->leases[i].last_ms = now;
	}
	c->registering = false; /* registration may need to be redone via the new leader */
}

void controller_stop(struct tm_broker *b)
{
	struct tm_controller *c = b->controller;
	if (!c)
		return;
	while (c->head) {
		struct ctl_op *op = c->head;
		c->head = op->next;
		free(op);
	}
	ctl_txn_deinit(&c->committing);
	free(c);
	b->controller = NULL;
}
