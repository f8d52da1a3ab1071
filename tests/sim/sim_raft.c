/*
 * sim_raft.c — deterministic simulation of the KRaft core under faults.
 *
 * Each seed builds a cluster (3 or 5 voters, sometimes an observer) in the
 * fake world of raft_cluster.h and runs two phases:
 *
 *   chaos     messages dropped, duplicated, delayed and reordered; links
 *             cut one way or both (partitions) and healed; nodes crashed
 *             (unsynced log tail lost or torn) and restarted; snapshots
 *             taken; leaders shut down gracefully; proposals at random.
 *   liveness  every node up, every link healed, no more faults: a leader
 *             must be elected and proposals made to it must commit on
 *             every node within a bounded simulated time.
 *
 * Safety invariants are checked after every step (election safety, leader
 * completeness, state machine safety) and log matching every few rounds.
 * A failure prints the seed and a trace of the last events.
 *
 *   SIM_SEED=123    run that one seed (prints its trace when it fails)
 *   SIM_SEEDS=N     number of seeds (default 20000; 5000 in TM_DEBUG builds)
 *   SIM_SEED_BASE=B first seed of the run (default 1)
 */
#include <stdio.h>
#include <stdlib.h>

#include "tests/sim/raft_cluster.h"

#define DT_MS 5

struct sim_stats {
	int64_t proposals, commits, elections, truncations, snaps_taken, snaps_installed;
	int64_t crashes;
};

static void sim_cfg(struct sc_cluster *c)
{
	/* Kafka's timeouts scaled down 10x (relative sizes kept): more
	 * elections per simulated second. */
	c->cfg.election_timeout_ms = 100;
	c->cfg.fetch_timeout_ms = 200;
	c->cfg.request_timeout_ms = 100;
	c->cfg.fetch_max_wait_ms = 50;
	c->cfg.end_quorum_backoff_ms = 10;
	c->cfg.retry_backoff_ms = 10;
	c->cfg.fetch_max_bytes = (int32_t)sc_range(c, 16, 400);
	c->cfg.snapshot_chunk_bytes = (int32_t)sc_range(c, 8, 70);
	c->drop_p = (double)sc_range(c, 0, 15) / 100.0;
	c->dup_p = (double)sc_range(c, 0, 5) / 100.0;
	c->delay_min_ms = 1;
	c->delay_max_ms = sc_range(c, 2, 40);
	c->fsync_delay_max_ms = sc_range(c, 0, 3) == 0 ? sc_range(c, 20, 80) : sc_range(c, 0, 20);
	c->survive_p = 0.5;
}

static void heal_all(struct sc_cluster *c)
{
	for (int a = 0; a < SC_NODES_MAX; a++)
		for (int b = 0; b < SC_NODES_MAX; b++)
			c->link[a][b] = true;
}

static void partition(struct sc_cluster *c)
{
	if (sc_chance(c, 0.3)) {
		/* One direction of one link. */
		int a = (int)sc_range(c, 0, c->n - 1), b = (int)sc_range(c, 0, c->n - 1);
		c->link[a][b] = false;
		sc_trace(c, "link %d -> %d cut", a + 1, b + 1);
		return;
	}
	uint32_t side = (uint32_t)sc_rand(c);
	for (int a = 0; a < c->n; a++)
		for (int b = 0; b < c->n; b++)
			if (((side >> a) & 1) != ((side >> b) & 1))
				c->link[a][b] = false;
	sc_trace(c, "partition mask %x", side & ((1u << c->n) - 1));
}

static void chaos_round(struct sc_cluster *c, struct sim_stats *st)
{
	for (int i = 0; i < c->n; i++) {
		struct sc_node *nd = &c->nodes[i];
		if (!nd->up && c->now_ms >= nd->restart_at_ms)
			sc_start(c, i);
	}
	if (sc_chance(c, 0.004)) {
		int i = (int)sc_range(c, 0, c->n - 1);
		if (c->nodes[i].up) {
			sc_crash(c, i);
			c->nodes[i].restart_at_ms = c->now_ms + sc_range(c, 10, 600);
			st->crashes++;
		}
	}
	if (sc_chance(c, 0.004)) {
		/* Leaders hold the interesting unsynced state: crash them most. */
		int l = sc_leader(c);
		if (l >= 0) {
			sc_crash(c, l);
			c->nodes[l].restart_at_ms = c->now_ms + sc_range(c, 10, 400);
			st->crashes++;
		}
	}
	if (sc_chance(c, 0.003))
		partition(c);
	if (sc_chance(c, 0.006)) {
		heal_all(c);
		sc_trace(c, "network healed");
	}
	if (sc_chance(c, 0.3)) {
		int i = (int)sc_range(c, 0, c->n - 1);
		sc_propose(c, i, (uint32_t)sc_range(c, 1, 3));
	}
	if (sc_chance(c, 0.01))
		sc_take_snapshot(c, (int)sc_range(c, 0, c->n - 1));
	if (sc_chance(c, 0.001)) {
		int l = sc_leader(c);
		if (l >= 0) {
			struct raft_event ev = {.type = RAFT_EV_SHUTDOWN};
			sc_trace(c, "node %d shuts down gracefully", l + 1);
			sc_step(c, &c->nodes[l], &ev);
			sc_run(c, 20, DT_MS);
			sc_crash(c, l);
			c->nodes[l].restart_at_ms = c->now_ms + sc_range(c, 10, 600);
		}
	}
}

/* The leader every up node agrees on (same epoch, same leader id), or -1. */
static int stable_leader(const struct sc_cluster *c)
{
	int l = sc_leader(c);
	if (l < 0)
		return -1;
	for (int i = 0; i < c->n; i++) {
		const struct raft *r = &c->nodes[i].r;
		if (!c->nodes[i].up || raft_epoch(r) != raft_epoch(&c->nodes[l].r) ||
		    raft_leader_id(r) != c->nodes[l].id)
			return -1;
	}
	return l;
}

/* Every node up and applied through `end`. */
static bool all_applied(const struct sc_cluster *c, int64_t end)
{
	for (int i = 0; i < c->n; i++)
		if (!c->nodes[i].up || c->nodes[i].applied < end)
			return false;
	return true;
}

static int run_seed(uint64_t seed, int64_t chaos_ms, struct sim_stats *st, bool verbose)
{
	struct sc_cluster c;
	uint64_t shape = seed * 0x9e3779b97f4a7c15ULL;
	int voters = (shape >> 33) % 2 ? 5 : 3;
	int observers = voters == 3 && (shape >> 40) % 3 == 0 ? 1 : 0;
	sc_init(&c, voters, observers, seed);
	sim_cfg(&c);
	sc_start_all(&c);

	int64_t round = 0;
	while (c.now_ms < chaos_ms && !c.failed) {
		chaos_round(&c, st);
		sc_advance(&c, DT_MS);
		if (++round % 16 == 0)
			sc_check_log_matching(&c);
	}

	/* Liveness: heal everything and stop the faults. */
	heal_all(&c);
	c.drop_p = c.dup_p = 0;
	for (int i = 0; i < c.n; i++)
		if (!c.nodes[i].up)
			sc_start(&c, i);
	sc_trace(&c, "faults stop; all nodes up");
	int l = -1;
	for (int64_t t = 0; t < 5000 && !c.failed && l < 0; t += DT_MS) {
		sc_advance(&c, DT_MS);
		l = stable_leader(&c);
	}
	/* A leader elected during the faults may still resign by check-quorum
	 * for what happened before they stopped: let one window pass. */
	sc_run(&c, 3 * c.cfg.fetch_timeout_ms, DT_MS);
	l = -1;
	for (int64_t t = 0; t < 5000 && !c.failed && l < 0; t += DT_MS) {
		sc_advance(&c, DT_MS);
		l = stable_leader(&c);
	}
	if (!c.failed && l < 0)
		sc_fail(&c, "liveness: no leader all nodes follow 5 s after the faults stopped");
	int64_t last_end = -1;
	int64_t offs[5];
	uint64_t first_seq = c.payload_seq + 1;
	for (int k = 0; k < 5 && !c.failed; k++) {
		uint32_t count = (uint32_t)sc_range(&c, 1, 3);
		int64_t off = sc_propose(&c, l, count);
		offs[k] = off;
		if (off < 0)
			sc_fail(&c, "liveness: leader %d (%s, epoch %d) refused a proposal: error %d",
				l + 1, raft_role_name(raft_role(&c.nodes[l].r)),
				raft_epoch(&c.nodes[l].r), c.nodes[l].out.propose_error);
		last_end = off + count;
		sc_run(&c, 10, DT_MS);
	}
	int64_t waited = 0;
	while (!c.failed && !all_applied(&c, last_end) && waited < 15000) {
		sc_advance(&c, DT_MS);
		waited += DT_MS;
	}
	if (!c.failed && !all_applied(&c, last_end))
		sc_fail(&c, "liveness: proposals up to %lld not applied everywhere 15 s later",
			(long long)last_end);
	/* What committed at those offsets is exactly what was proposed. */
	for (int k = 0; k < 5 && !c.failed; k++) {
		const struct sc_node *ln = &c.nodes[l];
		long i = sc_find(ln, offs[k]);
		const struct sc_commit *m = (size_t)offs[k] < c.n_cm ? &c.cm[offs[k]] : NULL;
		if (i < 0 || !m || !m->has_entry || ln->log[i].len != 16 ||
		    tm_load_be64(ln->log[i].payload) != first_seq + (uint64_t)k ||
		    m->phash != sc_entry_hash(&ln->log[i]))
			sc_fail(&c, "liveness: proposal %d at offset %lld is not what committed", k,
				(long long)offs[k]);
	}
	if (!c.failed)
		sc_check_log_matching(&c);

	st->proposals += c.proposals;
	st->commits += c.commits_seen;
	st->truncations += c.truncations;
	st->snaps_taken += c.snapshots_taken;
	st->snaps_installed += c.snapshots_installed;
	for (size_t e = 0; e < c.n_epochs; e++)
		st->elections += c.leader_of_epoch[e] >= 0;
	int failed = c.failed;
	if (failed || verbose) {
		if (failed) {
			fprintf(stderr, "sim_raft: FAILED (%d voters, %d observers; rerun with SIM_SEED=%llu)\n",
				voters, observers, (unsigned long long)seed);
			sc_print_failure(&c, stderr);
		} else {
			fprintf(stderr, "seed %llu ok: %lld proposals, %lld commits\n",
				(unsigned long long)seed, (long long)c.proposals,
				(long long)c.commits_seen);
		}
	}
	sc_deinit(&c);
	return failed;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	return strtoull(v, NULL, 10);
}

int main(void)
{
#ifdef TM_DEBUG
	uint64_t seeds = env_u64("SIM_SEEDS", 5000);
#else
	uint64_t seeds = env_u64("SIM_SEEDS", 20000);
#endif
	uint64_t base = env_u64("SIM_SEED_BASE", 1);
	int64_t chaos_ms = (int64_t)env_u64("SIM_CHAOS_MS", 4000);
	struct sim_stats st = {0};
	const char *one = getenv("SIM_SEED");
	if (one && *one) {
		int f = run_seed(strtoull(one, NULL, 10), chaos_ms, &st, true);
		printf("sim_raft: seed %s %s\n", one, f ? "FAILED" : "passed");
		return f;
	}
	uint64_t failed = 0, ran = 0;
	for (uint64_t s = base; s < base + seeds && failed < 3; s++) {
		ran++;
		failed += (uint64_t)run_seed(s, chaos_ms, &st, false);
	}
	printf("sim_raft: %llu seeds from %llu, %lld elections, %lld proposals, %lld commits, "
	       "%lld crashes, %lld truncations, %lld snapshots taken, %lld installed\n",
	       (unsigned long long)seeds, (unsigned long long)base, (long long)st.elections,
	       (long long)st.proposals, (long long)st.commits, (long long)st.crashes,
	       (long long)st.truncations, (long long)st.snaps_taken, (long long)st.snaps_installed);
	printf("sim_raft: %llu passed, %llu failed\n", (unsigned long long)(ran - failed),
	       (unsigned long long)failed);
	return failed ? 1 : 0;
}
