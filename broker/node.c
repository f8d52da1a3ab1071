/*
 * node.c — start-up, the loop, shutdown.
 *
 * Storage identity, as Kafka keeps it: <log.dirs>/meta.properties holds
 * version=1, cluster.id, node.id and directory.id.  A node refuses to start
 * when the stored cluster.id or node.id disagrees with its configuration.
 *
 * Cluster id without a format step: when neither meta.properties nor
 * cluster.id gives one, the id is derived from the voter set
 * (controller.quorum.voters), so that nodes started on empty storage with the
 * same voter list agree on one cluster id without talking to each other.
 */
#include "broker/node.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "broker/api.h"
#include "broker/broker.h"
#include "broker/controller.h"
#include "broker/elect.h"
#include "broker/groups.h"
#include "broker/partition.h"
#include "broker/peer.h"
#include "broker/quorum.h"
#include "broker/replica.h"
#include "common/kerr.h"
#include "common/tm_log.h"
#include "common/tm_time.h"
#include "storage/io.h"

#define NODE_TICK_MS 100
/* Until it serves, start-up steps are polled this often instead of on the
 * tick: registering and opening the listeners each wait for a metadata
 * commit, which takes a millisecond or two, and two ticks were 200 of the
 * 220 ms from start to the first produce. */
#define NODE_START_POLL_MS 2
/* ... for this long at most: a node waiting for a quorum to form goes back
 * to the tick rather than wake 500 times a second. */
#define NODE_START_POLL_FOR_MS 3000

static void base64url16(const uint8_t in[16], char out[23])
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	int o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (int i = 0; i < 16; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			out[o++] = tbl[(acc >> (bits - 6)) & 63];
			bits -= 6;
		}
	}
	if (bits)
		out[o++] = tbl[(acc << (6 - bits)) & 63];
	out[o] = 0;
}

static void derive_cluster_id(const struct tm_config *cfg, char out[32])
{
	/* Voters sorted by id, as "id@host:port," — the same text on every node. */
	char text[TM_MAX_VOTERS * 300] = "tidemark-cluster:";
	int order[TM_MAX_VOTERS];
	for (int i = 0; i < cfg->voter_count; i++)
		order[i] = i;
	for (int i = 1; i < cfg->voter_count; i++)
		for (int j = i; j > 0 && cfg->voters[order[j]].id < cfg->voters[order[j - 1]].id; j--) {
			int t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (int i = 0; i < cfg->voter_count; i++) {
		const struct tm_voter *v = &cfg->voters[order[i]];
		size_t n = strlen(text);
		snprintf(text + n, sizeof(text) - n, "%d@%s:%d,", v->id, v->host, v->port);
	}
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL);
	base64url16(md, out);
}

/* Copies src into dst (size n), truncating; always NUL-terminates. */
static void copy_str(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);
	if (l >= n)
		l = n - 1;
	memcpy(dst, src, l);
	dst[l] = 0;
}

static int mkdir_p(const char *path)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

struct meta_props {
	char cluster_id[64];
	int32_t node_id;
	char directory_id[32];
	bool present;
};

static int meta_read(const char *dir, struct meta_props *m)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/meta.properties", dir);
	memset(m, 0, sizeof(*m));
	m->node_id = -1;
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	m->present = true;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!strncmp(line, "cluster.id=", 11))
			copy_str(m->cluster_id, sizeof(m->cluster_id), line + 11);
		else if (!strncmp(line, "node.id=", 8))
			m->node_id = (int32_t)strtol(line + 8, NULL, 10);
		else if (!strncmp(line, "directory.id=", 13))
			copy_str(m->directory_id, sizeof(m->directory_id), line + 13);
	}
	fclose(f);
	return 0;
}

static int meta_write(const char *dir, const char *cluster_id, int32_t node_id)
{
	char path[1200], tmp[1200];
	snprintf(path, sizeof(path), "%s/meta.properties", dir);
	snprintf(tmp, sizeof(tmp), "%s/meta.properties.tmp", dir);
	uint8_t raw[16];
	char dirid[23];
	RAND_bytes(raw, sizeof(raw));
	base64url16(raw, dirid);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "#\n#Written by Tidemark\nversion=1\ncluster.id=%s\nnode.id=%d\ndirectory.id=%s\n", cluster_id,
		node_id, dirid);
	if (fflush(f) || fsync(fileno(f))) {
		int e = -errno;
		fclose(f);
		return e;
	}
	fclose(f);
	if (rename(tmp, path))
		return -errno;
	return 0;
}

/* Settles the cluster id: stored, configured, given, or derived; and checks
 * that they agree.  Formats empty storage. */
static int storage_identity(const struct tm_config *cfg, const char *given, char out[32])
{
	int rc = mkdir_p(cfg->log_dir);
	if (rc) {
		tm_error("node", "cannot create log.dirs %s: %s", cfg->log_dir, strerror(-rc));
		return rc;
	}
	struct meta_props m;
	rc = meta_read(cfg->log_dir, &m);
	if (rc) {
		tm_error("node", "cannot read %s/meta.properties: %s", cfg->log_dir, strerror(-rc));
		return rc;
	}
	const char *want = given ? given : cfg->cluster_id[0] ? cfg->cluster_id : NULL;
	if (m.present) {
		if (m.node_id != cfg->node_id) {
			tm_error("node", "%s/meta.properties says node.id=%d but the configuration says node.id=%d; "
				 "fix node.id or point log.dirs at this node's own storage",
				 cfg->log_dir, m.node_id, cfg->node_id);
			return -EINVAL;
		}
		if (want && strcmp(want, m.cluster_id)) {
			tm_error("node", "%s/meta.properties says cluster.id=%s but the configuration says cluster.id=%s; "
				 "this storage belongs to another cluster",
				 cfg->log_dir, m.cluster_id, want);
			return -EINVAL;
		}
		copy_str(out, 32, m.cluster_id);
		return 0;
	}
	char derived[32];
	if (!want) {
		derive_cluster_id(cfg, derived);
		want = derived;
	}
	if (strlen(want) < 1 || strlen(want) > 31) {
		tm_error("node", "cluster.id '%s' is not valid (1-31 characters, e.g. 22 base64 characters)", want);
		return -EINVAL;
	}
	rc = meta_write(cfg->log_dir, want, cfg->node_id);
	if (rc) {
		tm_error("node", "cannot write %s/meta.properties: %s", cfg->log_dir, strerror(-rc));
		return rc;
	}
	tm_info("node", "formatted %s for cluster %s, node %d", cfg->log_dir, want, cfg->node_id);
	copy_str(out, 32, want);
	return 0;
}

int node_format(const struct tm_config *cfg, const char *cluster_id)
{
	char id[32];
	struct meta_props m;
	if (meta_read(cfg->log_dir, &m) == 0 && m.present) {
		fprintf(stderr, "tidemark format: %s is already formatted (cluster.id=%s, node.id=%d)\n", cfg->log_dir,
			m.cluster_id, m.node_id);
		return -EEXIST;
	}
	int rc = storage_identity(cfg, cluster_id, id);
	if (!rc)
		printf("Formatted %s: cluster.id=%s node.id=%d\n", cfg->log_dir, id, cfg->node_id);
	return rc;
}

/* EV_READ: the eventfd (the kernel's completions, or the fallback's);
 * EV_TIMEOUT: activated by io_notify for writes io_flush performed itself,
 * with nothing to read from the eventfd. */
static void io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tm_broker *b = arg;
	(void)fd;
	if (what & EV_READ)
		io_process_completions(b->io);
	else
		io_process_due(b->io);
	broker_kick_io(b);
}

static void io_notify(void *arg)
{
	struct tm_broker *b = arg;
	event_active(b->io_ev, EV_TIMEOUT, 1);
}

static void node_register_done(void *arg, int err, struct tm_rd *body)
{
	struct tm_broker *b = arg;
	b->registering_remote = false;
	if (err)
		return; /* retried from the next tick */
	struct tm_arena a;
	arena_init(&a, 0);
	struct kafka_broker_registration_response r;
	if (!kafka_broker_registration_response_decode(body, 2, &r, &a)) {
		if (r.error_code)
			tm_warn("node", "registration refused by the controller: error %d; retrying", r.error_code);
		else {
			b->registered_epoch = r.broker_epoch;
			tm_info("node", "node %d registered with controller %d at broker epoch %" PRId64, b->cfg.node_id,
				quorum_leader_id(b), r.broker_epoch);
		}
	}
	arena_deinit(&a);
}

/* Sends this node's BrokerRegistration to the active controller. */
static void node_register_remote(struct tm_broker *b)
{
	struct tm_peer *leader = quorum_leader_peer(b);
	if (!leader || b->registering_remote)
		return;
	struct kafka_broker_registration_request r;
	kafka_broker_registration_request_init(&r);
	struct kafka_broker_registration_request_listener ls[TM_MAX_LISTENERS];
	struct kstr names[TM_MAX_LISTENERS], hosts[TM_MAX_LISTENERS];
	int ports[TM_MAX_LISTENERS];
	int16_t sec[TM_MAX_LISTENERS];
	int n = controller_local_endpoints(b, names, hosts, ports, sec, TM_MAX_LISTENERS);
	for (int i = 0; i < n; i++) {
		ls[i].name = names[i];
		ls[i].host = hosts[i];
		ls[i].port = (uint16_t)ports[i];
		ls[i].security_protocol = sec[i];
	}
	r.broker_id = b->cfg.node_id;
	r.cluster_id = kstr_c(b->cluster_id);
	RAND_bytes(r.incarnation_id.b, 16);
	r.listeners = ls;
	r.listeners_count = n;
	r.features_count = 0;
	r.rack = b->cfg.rack[0] ? kstr_c(b->cfg.rack) : kstr_null();
	r.log_dirs_count = 0;
	struct tm_wbuf w;
	wbuf_init(&w);
	kafka_broker_registration_request_encode(&w, 2, &r);
	if (!peer_send(leader, KAFKA_API_BROKER_REGISTRATION, 2, &w, 5000, node_register_done, b))
		b->registering_remote = true;
	wbuf_deinit(&w);
}

static void node_heartbeat_done(void *arg, int err, struct tm_rd *body)
{
	struct tm_broker *b = arg;
	b->heartbeat_inflight = false;
	if (err)
		return;
	struct tm_arena a;
	arena_init(&a, 0);
	struct kafka_broker_heartbeat_response r;
	if (!kafka_broker_heartbeat_response_decode(body, 1, &r, &a)) {
		if (r.error_code == TM_ERR_STALE_BROKER_EPOCH || r.error_code == TM_ERR_BROKER_ID_NOT_REGISTERED) {
			tm_warn("node", "the controller does not know this node's registration (error %d); registering again",
				r.error_code);
			b->registered_epoch = -1;
		}
		shutdown_heartbeat_answer(b, r.error_code == TM_ERR_NONE && r.should_shut_down);
	}
	arena_deinit(&a);
}

/* Keeps this node's lease with the active controller. */
static void node_heartbeat(struct tm_broker *b, int64_t now_ms)
{
	/* A controlled shutdown asks often: the node waits for the answer. */
	int64_t interval_ms = shutdown_wanted(b) ? 100 : b->cfg.broker_heartbeat_interval_ms;
	/* A heartbeat still out to a controller that is no longer the leader
	 * (frozen, dead) must not hold back the one to its successor: the lease
	 * would lapse while it times out. */
	bool stale = b->heartbeat_inflight && b->heartbeat_leader != quorum_leader_id(b);
	if ((b->heartbeat_inflight && !stale) || (!stale && now_ms - b->last_heartbeat_ms < interval_ms))
		return;
	struct tm_peer *leader = quorum_leader_peer(b);
	if (!leader)
		return;
	int timeout_ms = b->cfg.broker_session_timeout_ms / 2;
	if (timeout_ms > 5000)
		timeout_ms = 5000;
	if (timeout_ms < 200)
		timeout_ms = 200;
	struct kafka_broker_heartbeat_request r;
	kafka_broker_heartbeat_request_init(&r);
	r.broker_id = b->cfg.node_id;
	r.broker_epoch = b->registered_epoch;
	r.current_metadata_offset = quorum_applied_offset(b);
	r.want_shut_down = shutdown_wanted(b);
	r.offline_log_dirs_count = -1;
	struct tm_wbuf w;
	wbuf_init(&w);
	kafka_broker_heartbeat_request_encode(&w, 1, &r);
	if (!peer_send(leader, KAFKA_API_BROKER_HEARTBEAT, 1, &w, timeout_ms, node_heartbeat_done, b)) {
		b->heartbeat_inflight = true;
		b->heartbeat_leader = peer_node_id(leader);
		b->last_heartbeat_ms = now_ms;
	}
	wbuf_deinit(&w);
}

/* Start-up continues from the loop: once the metadata is caught up this
 * node registers, and once registered it opens its client listeners. */
static void node_maintain(struct tm_broker *b)
{
	if (b->stopping || !quorum_caught_up(b))
		return;
	if (b->registered_epoch < 0) {
		if (quorum_is_leader(b))
			controller_register_self(b);
		else
			node_register_remote(b);
		return;
	}
	node_heartbeat(b, tm_mono_ms());
	/* Serve once this node's own registration is in the image. */
	const struct md_broker *me = md_broker(&b->md, b->cfg.node_id);
	if (!me || me->epoch < b->registered_epoch || me->fenced)
		return;
	if (!b->serving) {
		if (server_start(b, false)) {
			tm_error("node", "cannot open the client listeners; stopping");
			b->stopping = true;
			event_base_loopexit(b->base, NULL);
			return;
		}
		b->serving = true;
		tm_info("node", "serving clients %" PRId64 " ms after start", tm_mono_ms() - b->started_ms);
	}
}

static void node_stop(struct tm_broker *b);
static void log_dir_tick(struct tm_broker *b, int64_t now_ms);

static void start_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tm_broker *b = arg;
	(void)fd;
	(void)what;
	node_maintain(b);
	broker_kick_io(b);
	if (b->serving || b->stopping || tm_mono_ms() - b->started_ms > NODE_START_POLL_FOR_MS)
		event_del(b->start_ev);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tm_broker *b = arg;
	(void)fd;
	(void)what;
	int64_t now = tm_wall_ms();
	if (now - b->last_retention_ms >= b->cfg.log_retention_check_interval_ms) {
		b->last_retention_ms = now;
		partitions_tick(b, now);
	}
	int64_t mono = tm_mono_ms();
	quorum_tick(b, mono);
	controller_tick(b, mono);
	replication_tick(b, mono);
	node_maintain(b);
	log_dir_tick(b, mono);
	if (shutdown_poll(b, mono))
		node_stop(b);
	groups_tick(b, mono);
	broker_kick_io(b);
}

static void node_stop(struct tm_broker *b)
{
	quorum_shutdown(b);
	b->stopping = true;
	server_stop(b);
	/* A moment for EndQuorumEpoch to reach the other voters, so they elect
	 * a successor at once instead of after the fetch timeout. */
	struct timeval grace = { 0, 300 * 1000 };
	event_base_loopexit(b->base, b->quorum && b->cfg.voter_count > 1 ? &grace : NULL);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct tm_broker *b = arg;
	(void)what;
	if (b->stopping)
		return;
	/* A second signal during the controlled shutdown stops at once. */
	if (!shutdown_wanted(b)) {
		tm_info("node", "received %s; shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
		/* Controlled shutdown first (Kafka's): leadership moves to other
		 * brokers while this one still serves; the tick stops it after. */
		if (shutdown_begin(b, tm_mono_ms()))
			return;
	}
	node_stop(b);
}

/* Kafka stops a broker once every one of its log directories has failed,
 * and the controller hands its partitions to the other replicas.  A Tidemark
 * node has one log directory, so any log the storage engine took offline (a
 * write, fsync, roll, index or checkpoint that failed: a full disk, EIO) is
 * that.  Each tick looks, and then:
 *  - with other live brokers, the node asks for a controlled shutdown (its
 *    leadership and ISR memberships move to replicas that hold every
 *    acknowledged record) and stops once it is done, with exit status 1;
 *  - when its metadata log is what failed and it is the active controller
 *    (with other voters) or not serving yet, it stops at once: nothing it
 *    decides can be committed, and it cannot catch up or register; a voter
 *    that can write takes over (and fences it);
 *  - alone, it keeps serving what it can, appends answer KAFKA_STORAGE_ERROR,
 *    and it hands over as soon as another broker is live.
 * Any stop after the failure exits with status 1. */
static bool log_dir_offline_now(struct tm_broker *b)
{
	return partitions_any_log_offline(b) || quorum_log_offline(b);
}

static void log_dir_tick(struct tm_broker *b, int64_t now_ms)
{
	if (b->stopping)
		return;
	if (!b->log_dir_failed) {
		if (!log_dir_offline_now(b))
			return;
		b->log_dir_failed = true;
		tm_error("node", "the log directory %s has failed (free disk space or replace the disk, then start "
			 "the broker again)", b->cfg.log_dir);
	}
	if (quorum_log_offline(b)) {
		/* Not serving yet, it cannot catch up or register without its
		 * metadata log, and it leads nothing. */
		if (!b->serving) {
			tm_error("node", "the metadata log cannot be written before this node serves: stopping at once");
			node_stop(b);
			return;
		}
		if (quorum_is_leader(b) && b->cfg.voter_count > 1) {
			tm_error("node", "the metadata log cannot be written on the active controller: stopping at once");
			node_stop(b);
			return;
		}
	}
	if (b->log_dir_handover)
		return;
	if (shutdown_wanted(b) || shutdown_begin(b, now_ms)) {
		b->log_dir_handover = true;
		tm_error("node", "the log directory %s has failed: moving this node's partitions to the other brokers, "
			 "then stopping", b->cfg.log_dir);
		return;
	}
	if (!b->log_dir_alone_said) {
		b->log_dir_alone_said = true;
		tm_error("node", "no other live broker can take over this node's partitions yet: serving on, appends "
			 "answer KAFKA_STORAGE_ERROR; the node hands over once another broker is live");
	}
}

static int lock_dir(const char *dir)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		return -EBUSY;
	}
	return fd;
}

/* Descriptors: one per segment, per connection, and one per partition of
 * each Fetch answer waiting to be sent (zero copy).  The soft limit is often
 * 1024; the hard one is what the operator allowed, so take all of it. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		tm_warn("node", "open files limit stays at %llu: %s", (unsigned long long)was, strerror(errno));
}

int node_run(const struct tm_config *cfg)
{
	struct tm_broker *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->cfg = *cfg;
	b->started_ms = tm_mono_ms();
	b->last_retention_ms = tm_wall_ms();
	md_image_init(&b->md);
	tm_map_init(&b->topics);
	tm_map_init(&b->topic_ids);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();

	int rc = storage_identity(cfg, NULL, b->cluster_id);
	if (rc)
		goto err_free;
	int lock_fd = lock_dir(cfg->log_dir);
	if (lock_fd < 0) {
		tm_error("node", "cannot lock %s: %s; is another tidemark using this directory?", cfg->log_dir,
			 lock_fd == -EBUSY ? "it is locked" : strerror(-lock_fd));
		rc = lock_fd;
		goto err_free;
	}
	/* epoll's change list: the adds and removals of one loop turn reach
	 * epoll_ctl once, at the next epoll_wait, and an addition removed in
	 * the same turn never does (a response written in the turn that queued
	 * it, server.c conn_write_soon).  libevent's caveat, fds shared through
	 * dup(), does not apply: the broker never dups a descriptor. */
	struct event_config *evcfg = event_config_new();
	if (evcfg) {
		event_config_set_flag(evcfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		b->base = event_base_new_with_config(evcfg);
		event_config_free(evcfg);
	}
	if (!b->base) {
		rc = -ENOMEM;
		goto err_unlock;
	}
	rc = io_new(1024, &b->io);
	if (rc) {
		tm_error("node", "cannot set up storage I/O: %s%s", strerror(-rc),
			 rc == -ENOMEM ? " (raise the locked-memory limit, ulimit -l, for the io_uring ring)" : "");
		goto err_base;
	}
	tm_info("node", "storage I/O: %s", io_is_uring(b->io) ? "io_uring" : "synchronous fallback (io_uring unavailable)");
	b->io_ev = event_new(b->base, io_event_fd(b->io), EV_READ | EV_PERSIST, io_cb, b);
	event_add(b->io_ev, NULL);
	if (b->io_ev)
		io_set_notify(b->io, io_notify, b);

	b->registered_epoch = -1;
	rc = controller_start(b);
	if (rc)
		goto err_io;
	rc = quorum_start(b);
	if (rc)
		goto err_controller;
	rc = groups_start(b);
	if (rc)
		goto err_quorum;
	rc = server_start(b, true);
	if (rc)
		goto err_groups;
	rc = metrics_http_start(b);
	if (rc)
		goto err_server;

	b->tick_ev = event_new(b->base, -1, EV_PERSIST, tick_cb, b);
	struct timeval tv = { 0, NODE_TICK_MS * 1000 };
	event_add(b->tick_ev, &tv);
	b->start_ev = event_new(b->base, -1, EV_PERSIST, start_poll_cb, b);
	struct timeval start_tv = { 0, NODE_START_POLL_MS * 1000 };
	event_add(b->start_ev, &start_tv);
	b->sigint_ev = evsignal_new(b->base, SIGINT, signal_cb, b);
	b->sigterm_ev = evsignal_new(b->base, SIGTERM, signal_cb, b);
	event_add(b->sigint_ev, NULL);
	event_add(b->sigterm_ev, NULL);

	node_maintain(b);
	tm_info("node", "Tidemark %s node %d started (cluster %s, data in %s) in %" PRId64 " ms", TM_VERSION,
		cfg->node_id, b->cluster_id, cfg->log_dir, tm_mono_ms() - b->started_ms);
	event_base_dispatch(b->base);

	event_free(b->tick_ev);
	event_free(b->start_ev);
	event_free(b->sigint_ev);
	event_free(b->sigterm_ev);
	/* A failure the last tick did not see yet counts too. */
	b->log_dir_failed = b->log_dir_failed || log_dir_offline_now(b);
	rc = b->log_dir_failed ? -EIO : 0;
	fetch_abort_all(b);
	metrics_http_stop(b);
err_server:
	server_stop(b);
	server_close_connections(b);
	server_free_tls(b);
err_groups:
	groups_stop(b);
err_quorum:
	quorum_stop(b);
err_controller:
	controller_stop(b);
	replication_stop(b);
	partitions_close_all(b);
err_io:
	if (b->dns)
		evdns_base_free(b->dns, 1);
	if (b->io_ev) {
		io_set_notify(b->io, NULL, NULL); /* io_free's waits use the eventfd */
		event_free(b->io_ev);
	}
	io_free(b->io);
err_base:
	event_base_free(b->base);
err_unlock:
	close(lock_fd);
err_free:
	tm_map_deinit(&b->topics);
	tm_map_deinit(&b->topic_ids);
	md_image_deinit(&b->md);
	if (!rc)
		tm_info("node", "stopped cleanly");
	else if (b->log_dir_failed)
		tm_error("node", "stopped: the log directory %s has failed", cfg->log_dir);
	free(b);
	return rc;
}
