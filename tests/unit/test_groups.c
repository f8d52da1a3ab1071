/*
 * test_groups.c — the pure consumer-group state machine (broker/group_sm.c)
 * driven with a fake clock: what the members of a group see in their
 * JoinGroup, SyncGroup, Heartbeat and LeaveGroup answers as they join,
 * leave, go silent and come back.  Every scenario is deterministic: member
 * ids come from a fixed seed, time only moves when a test moves it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/group_sm.h"
#include "broker/groups.h"
#include "common/kerr.h"

#define MAXW 4096

struct jres {
	bool done;
	int calls;
	int16_t error;
	int32_t generation;
	char member_id[128];
	char leader[128];
	char protocol[64];
	int n_members; /* -1: members not included */
	bool skip;
};

struct sres {
	bool done;
	int calls;
	int16_t error;
	char assignment[128];
};

static struct jres J[MAXW];
static struct sres S[MAXW];
static int stores;
static bool store_ack_pending;
static bool store_manual; /* a test completes stores itself */
static int64_t now;
static struct gsm_ctx ctx;
static struct gsm_group grp;

static void on_join(void *env, void *waiter, const struct gsm_group *g, const struct gsm_join_result *r)
{
	(void)env;
	struct jres *j = waiter;
	j->done = true;
	j->calls++;
	j->error = r->error;
	j->generation = r->generation;
	snprintf(j->member_id, sizeof(j->member_id), "%s", r->member_id ? r->member_id : "");
	snprintf(j->leader, sizeof(j->leader), "%s", r->leader_id ? r->leader_id : "");
	snprintf(j->protocol, sizeof(j->protocol), "%s", r->protocol_name ? r->protocol_name : "");
	j->n_members = r->members_included ? g->n_members : -1;
	j->skip = r->skip_assignment;
}

static void on_sync(void *env, void *waiter, const struct gsm_sync_result *r)
{
	(void)env;
	struct sres *s = waiter;
	s->done = true;
	s->calls++;
	s->error = r->error;
	snprintf(s->assignment, sizeof(s->assignment), "%.*s", r->assignment_len, r->assignment ? (const char *)r->assignment : "");
}

static void on_store(void *env, struct gsm_group *g, bool ack)
{
	(void)env;
	(void)g;
	stores++;
	if (ack)
		store_ack_pending = true;
}

static const struct gsm_ops ops = { on_join, on_sync, on_store };

static void setup_with(int32_t delay_ms, int32_t max_size)
{
	if (grp.group_id) { /* a test re-configuring the fixture */
		gsm_group_abort(&ctx, &grp, TM_ERR_NOT_COORDINATOR);
		gsm_group_deinit(&grp);
	}
	memset(J, 0, sizeof(J));
	memset(S, 0, sizeof(S));
	stores = 0;
	store_ack_pending = false;
	store_manual = false;
	now = 1000000;
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg.initial_rebalance_delay_ms = delay_ms;
	ctx.cfg.min_session_timeout_ms = 6000;
	ctx.cfg.max_session_timeout_ms = 300000;
	ctx.cfg.max_size = max_size;
	ctx.ops = &ops;
	ctx.id_seed = 42;
	ck_assert_int_eq(gsm_group_init(&grp, "g1", 2, now), 0);
}

static void setup(void)
{
	setup_with(0, 1000);
}

static void teardown(void)
{
	gsm_group_abort(&ctx, &grp, TM_ERR_NOT_COORDINATOR);
	gsm_group_deinit(&grp);
}

/* A JoinGroup with protocols given as "name,name" (metadata = "m-" + name + meta_suffix). */
struct jopts {
	const char *member_id;
	const char *instance_id;
	const char *client_id;
	const char *protocols;
	const char *protocol_type;
	const char *meta_suffix;
	int32_t session_ms;
	int32_t rebalance_ms;
	bool require_known;
	bool skip_ok;
};

static char meta_buf[8][64];

static int join(int slot, struct jopts o)
{
	struct gsm_proto_in protos[8];
	int n = 0;
	char names[256];
	snprintf(names, sizeof(names), "%s", o.protocols ? o.protocols : "range");
	for (char *save = NULL, *t = strtok_r(names, ",", &save); t && n < 8; t = strtok_r(NULL, ",", &save)) {
		static char keep[8][32];
		snprintf(keep[n], sizeof(keep[n]), "%s", t);
		snprintf(meta_buf[n], sizeof(meta_buf[n]), "m-%s%s", t, o.meta_suffix ? o.meta_suffix : "");
		protos[n] = (struct gsm_proto_in){ keep[n], strlen(keep[n]), (const uint8_t *)meta_buf[n],
						   (int32_t)strlen(meta_buf[n]) };
		n++;
	}
	const char *type = o.protocol_type ? o.protocol_type : "consumer";
	const char *client = o.client_id ? o.client_id : "client";
	const char *mid = o.member_id ? o.member_id : "";
	struct gsm_join_req r = {
		.member_id = mid,
		.member_id_len = strlen(mid),
		.instance_id = o.instance_id,
		.instance_id_len = o.instance_id ? strlen(o.instance_id) : 0,
		.client_id = client,
		.client_id_len = strlen(client),
		.client_host = "/127.0.0.1",
		.client_host_len = 10,
		.protocol_type = type,
		.protocol_type_len = strlen(type),
		.session_timeout_ms = o.session_ms ? o.session_ms : 10000,
		.rebalance_timeout_ms = o.rebalance_ms ? o.rebalance_ms : 30000,
		.protocols = protos,
		.n_protocols = n,
		.require_known_member_id = o.require_known,
		.supports_skip_assignment = o.skip_ok,
	};
	J[slot] = (struct jres){ 0 };
	return gsm_join(&ctx, &grp, &r, &J[slot], now);
}

static void sync_(int slot, const char *member_id, int32_t gen, const char *const *ids, const char *const *assign,
		  int n)
{
	struct gsm_assignment_in a[16];
	for (int i = 0; i < n; i++)
		a[i] = (struct gsm_assignment_in){ ids[i], strlen(ids[i]), (const uint8_t *)assign[i],
						   (int32_t)strlen(assign[i]) };
	struct gsm_sync_req r = {
		.generation = gen,
		.member_id = member_id,
		.member_id_len = strlen(member_id),
		.assignments = a,
		.n_assignments = n,
	};
	S[slot] = (struct sres){ 0 };
	ck_assert_int_eq(gsm_sync(&ctx, &grp, &r, &S[slot], now), 0);
	if (store_ack_pending && !store_manual) {
		store_ack_pending = false;
		gsm_store_done(&ctx, &grp, grp.generation, TM_ERR_NONE, now);
	}
}

static int16_t hb(const char *member_id, int32_t gen)
{
	return gsm_heartbeat(&ctx, &grp, gen, member_id, strlen(member_id), NULL, 0, now);
}

static int16_t hb_static(const char *member_id, const char *inst, int32_t gen)
{
	return gsm_heartbeat(&ctx, &grp, gen, member_id, strlen(member_id), inst, strlen(inst), now);
}

static void advance(int64_t ms)
{
	now += ms;
	gsm_tick(&ctx, &grp, now);
}

/* One member through the v4+ handshake to Stable; returns its id in out. */
static void join_single(char *out, size_t len)
{
	ck_assert_int_eq(join(0, (struct jopts){ .require_known = true }), 0);
	ck_assert(J[0].done);
	ck_assert_int_eq(J[0].error, TM_ERR_MEMBER_ID_REQUIRED);
	snprintf(out, len, "%s", J[0].member_id);
	ck_assert_int_eq(join(1, (struct jopts){ .member_id = out, .require_known = true }), 0);
	ck_assert_msg(J[1].done, "a lone member's join completes at once with a zero initial delay");
	ck_assert_int_eq(J[1].error, TM_ERR_NONE);
	const char *ids[] = { out };
	const char *as[] = { "A0" };
	sync_(0, out, J[1].generation, ids, as, 1);
	ck_assert(S[0].done);
	ck_assert_int_eq(grp.state, GSM_STABLE);
}

START_TEST(test_groups_single_member_join_sync_heartbeat)
{
	ck_assert_int_eq(join(0, (struct jopts){ .require_known = true, .client_id = "cons" }), 0);
	ck_assert_int_eq(J[0].error, TM_ERR_MEMBER_ID_REQUIRED);
	ck_assert_msg(!strncmp(J[0].member_id, "cons-", 5), "member id %s starts with the client id", J[0].member_id);
	ck_assert_int_eq((int)strlen(J[0].member_id), 5 + 36);
	ck_assert_int_eq(grp.state, GSM_EMPTY);
	char id[128];
	snprintf(id, sizeof(id), "%s", J[0].member_id);

	ck_assert_int_eq(join(1, (struct jopts){ .member_id = id, .require_known = true, .client_id = "cons" }), 0);
	ck_assert(J[1].done);
	ck_assert_int_eq(J[1].error, TM_ERR_NONE);
	ck_assert_int_eq(J[1].generation, 1);
	ck_assert_str_eq(J[1].leader, id);
	ck_assert_str_eq(J[1].member_id, id);
	ck_assert_str_eq(J[1].protocol, "range");
	ck_assert_int_eq(J[1].n_members, 1);
	ck_assert_int_eq(grp.state, GSM_COMPLETING_REBALANCE);
	ck_assert_int_eq(hb(id, 1), TM_ERR_NONE); /* heartbeats are fine while awaiting sync */

	const char *ids[] = { id };
	const char *as[] = { "assign-0" };
	sync_(0, id, 1, ids, as, 1);
	ck_assert(S[0].done);
	ck_assert_int_eq(S[0].error, TM_ERR_NONE);
	ck_assert_str_eq(S[0].assignment, "assign-0");
	ck_assert_int_eq(grp.state, GSM_STABLE);
	ck_assert_int_eq(stores, 1);
	ck_assert_int_eq(hb(id, 1), TM_ERR_NONE);
	/* A repeated SyncGroup in Stable returns the same assignment. */
	sync_(1, id, 1, NULL, NULL, 0);
	ck_assert_str_eq(S[1].assignment, "assign-0");
}
END_TEST

/* Brings two dynamic members (no handshake) to Stable; ids in a and b. */
static void two_members_stable(char *a, char *b)
{
	ck_assert_int_eq(join(0, (struct jopts){ .client_id = "a" }), 0);
	ck_assert(J[0].done);
	snprintf(a, 128, "%s", J[0].member_id);
	const char *ids1[] = { a };
	const char *as1[] = { "a-all" };
	sync_(0, a, 1, ids1, as1, 1);
	ck_assert_int_eq(grp.state, GSM_STABLE);

	ck_assert_int_eq(join(1, (struct jopts){ .client_id = "b" }), 0);
	ck_assert_msg(!J[1].done, "the newcomer waits for the others to rejoin");
	ck_assert_int_eq(grp.state, GSM_PREPARING_REBALANCE);
	snprintf(b, 128, "%s", grp.members[1]->member_id);
	ck_assert_int_eq(hb(a, 1), TM_ERR_REBALANCE_IN_PROGRESS);
	ck_assert_int_eq(join(2, (struct jopts){ .member_id = a, .client_id = "a" }), 0);
	ck_assert(J[1].done && J[2].done);
	ck_assert_int_eq(J[1].error, TM_ERR_NONE);
	ck_assert_int_eq(J[2].generation, 2);
	ck_assert_int_eq(J[1].generation, 2);
	ck_assert_str_eq(J[2].leader, a);
	ck_assert_str_eq(J[1].leader, a);
	ck_assert_int_eq(J[2].n_members, 2);
	ck_assert_int_eq(J[1].n_members, -1);

	sync_(1, b, 2, NULL, NULL, 0);
	ck_assert_msg(!S[1].done, "a follower's SyncGroup waits for the leader's");
	const char *ids[] = { a, b };
	const char *as[] = { "a-p0", "b-p1" };
	sync_(2, a, 2, ids, as, 2);
	ck_assert(S[1].done && S[2].done);
	ck_assert_str_eq(S[2].assignment, "a-p0");
	ck_assert_str_eq(S[1].assignment, "b-p1");
	ck_assert_int_eq(grp.state, GSM_STABLE);
}

START_TEST(test_groups_rebalance_on_join)
{
	char a[128], b[128];
	two_members_stable(a, b);
	ck_assert_int_eq(hb(a, 2), TM_ERR_NONE);
	ck_assert_int_eq(hb(b, 2), TM_ERR_NONE);
}
END_TEST

START_TEST(test_groups_three_members_split)
{
	char a[128], b[128];
	two_members_stable(a, b);
	ck_assert_int_eq(join(3, (struct jopts){ .client_id = "c" }), 0);
	ck_assert(!J[3].done);
	char c[128];
	snprintf(c, sizeof(c), "%s", grp.members[2]->member_id);
	ck_assert_int_eq(hb(b, 2), TM_ERR_REBALANCE_IN_PROGRESS);
	ck_assert_int_eq(join(4, (struct jopts){ .member_id = b, .client_id = "b" }), 0);
	ck_assert_msg(!J[4].done, "still waiting for a");
	ck_assert_int_eq(join(5, (struct jopts){ .member_id = a, .client_id = "a" }), 0);
	ck_assert(J[3].done && J[4].done && J[5].done);
	ck_assert_int_eq(J[5].n_members, 3);
	ck_assert_int_eq(J[3].generation, 3);
	const char *ids[] = { a, b, c };
	const char *as[] = { "pa", "pb", "pc" };
	sync_(3, c, 3, NULL, NULL, 0);
	sync_(5, a, 3, ids, as, 3);
	sync_(4, b, 3, NULL, NULL, 0);
	ck_assert_str_eq(S[3].assignment, "pc");
	ck_assert_str_eq(S[4].assignment, "pb");
	ck_assert_str_eq(S[5].assignment, "pa");
}
END_TEST

START_TEST(test_groups_leave_triggers_rebalance)
{
	char a[128], b[128];
	two_members_stable(a, b);
	ck_assert_int_eq(gsm_leave(&ctx, &grp, b, strlen(b), NULL, 0, now), TM_ERR_NONE);
	ck_assert_int_eq(grp.state, GSM_PREPARING_REBALANCE);
	ck_assert_int_eq(gsm_leave(&ctx, &grp, b, strlen(b), NULL, 0, now), TM_ERR_UNKNOWN_MEMBER_ID);
	ck_assert_int_eq(hb(a, 2), TM_ERR_REBALANCE_IN_PROGRESS);
	ck_assert_int_eq(join(6, (struct jopts){ .member_id = a, .client_id = "a" }), 0);
	ck_assert(J[6].done);
	ck_assert_int_eq(J[6].generation, 3);
	ck_assert_int_eq(J[6].n_members, 1);
	/* The last member leaves: the group ends Empty at the next generation. */
	ck_assert_int_eq(gsm_leave(&ctx, &grp, a, strlen(a), NULL, 0, now), TM_ERR_NONE);
	ck_assert_int_eq(grp.state, GSM_EMPTY);
	ck_assert_int_eq(grp.generation, 4);
	ck_assert_ptr_null(grp.leader_id);
}
END_TEST

START_TEST(test_groups_session_timeout_removes_member)
{
	char a[128], b[128];
	two_members_stable(a, b);
	for (int i = 0; i < 3; i++) {
		advance(3000);
		ck_assert_int_eq(hb(a, 2), TM_ERR_NONE);
	}
	advance(3000);
	/* b was silent for 12 s > its 10 s session */
	ck_assert_int_eq(grp.n_members, 1);
	ck_assert_int_eq(grp.state, GSM_PREPARING_REBALANCE);
	ck_assert_int_eq(hb(b, 2), TM_ERR_UNKNOWN_MEMBER_ID);
	ck_assert_int_eq(hb(a, 2), TM_ERR_REBALANCE_IN_PROGRESS);
	ck_assert_int_eq(join(7, (struct jopts){ .member_id = a }), 0);
	ck_assert(J[7].done);
	ck_assert_int_eq(J[7].generation, 3);
	ck_assert_int_eq(J[7].n_members, 1);
}
END_TEST

START_TEST(test_groups_rebalance_timeout_drops_member_that_did_not_rejoin)
{
	char a[128], b[128];
	two_members_stable(a, b);
	/* The leader rejoins (e.g. new topic metadata): a rebalance starts. */
	ck_assert_int_eq(join(8, (struct jopts){ .member_id = a }), 0);
	ck_assert(!J[8].done);
	/* b keeps heartbeating but never rejoins. */
	for (int i = 0; i < 9; i++) {
		advance(3000);
		ck_assert_int_eq(hb(b, 2), TM_ERR_REBALANCE_IN_PROGRESS);
		ck_assert_msg(!J[8].done, "join answered early at +%d ms", (i + 1) * 3000);
	}
	advance(3000); /* 30 s: the rebalance timeout */
	ck_assert(J[8].done);
	ck_assert_int_eq(J[8].error, TM_ERR_NONE);
	ck_assert_int_eq(J[8].n_members, 1);
	ck_assert_int_eq(J[8].generation, 3);
	ck_assert_int_eq(hb(b, 2), TM_ERR_UNKNOWN_MEMBER_ID);
}
END_TEST

START_TEST(test_groups_static_member_rejoin_keeps_generation)
{
	ck_assert_int_eq(join(0, (struct jopts){ .instance_id = "inst-a", .client_id = "a" }), 0);
	ck_assert(J[0].done);
	char a[128];
	snprintf(a, sizeof(a), "%s", J[0].member_id);
	ck_assert_msg(!strncmp(a, "inst-a-", 7), "static member id %s starts with the instance id", a);
	const char *ids[] = { a };
	const char *as[] = { "pa" };
	sync_(0, a, 1, ids, as, 1);
	ck_assert_int_eq(grp.state, GSM_STABLE);
	int stores_before = stores;

	/* Restarted process: same instance id, no member id, same metadata. */
	ck_assert_int_eq(join(1, (struct jopts){ .instance_id = "inst-a", .client_id = "a" }), 0);
	ck_assert(J[1].done);
	ck_assert_int_eq(J[1].error, TM_ERR_NONE);
	ck_assert_int_eq(J[1].generation, 1);
	ck_assert_str_ne(J[1].member_id, a);
	ck_assert_int_eq(grp.state, GSM_STABLE);
	ck_assert_int_eq(stores, stores_before + 1);
	ck_assert_msg(strcmp(J[1].leader, J[1].member_id) != 0, "before v9 the old leader id comes back");
	char a2[128];
	snprintf(a2, sizeof(a2), "%s", J[1].member_id);
	ck_assert_int_eq(hb_static(a, "inst-a", 1), TM_ERR_FENCED_INSTANCE_ID);
	ck_assert_int_eq(hb_static(a2, "inst-a", 1), TM_ERR_NONE);
	sync_(1, a2, 1, NULL, NULL, 0);
	ck_assert_str_eq(S[1].assignment, "pa");

	/* v9: the leader learns it may skip the assignment. */
	ck_assert_int_eq(join(2, (struct jopts){ .instance_id = "inst-a", .client_id = "a", .skip_ok = true }), 0);
	ck_assert(J[2].done && J[2].skip);
	ck_assert_str_eq(J[2].leader, J[2].member_id);
	ck_assert_int_eq(J[2].n_members, 1);

	/* Changed protocols force a rebalance. */
	ck_assert_int_eq(join(3, (struct jopts){ .instance_id = "inst-a", .protocols = "roundrobin,range" }), 0);
	ck_assert_int_eq(grp.generation, 2);
	ck_assert(J[3].done);
	ck_assert_str_eq(J[3].protocol, "roundrobin");
}
END_TEST

START_TEST(test_groups_static_member_leave_by_instance_id)
{
	ck_assert_int_eq(join(0, (struct jopts){ .instance_id = "i1" }), 0);
	ck_assert(J[0].done);
	ck_assert_int_eq(gsm_leave(&ctx, &grp, "", 0, "nope", 4, now), TM_ERR_UNKNOWN_MEMBER_ID);
	ck_assert_int_eq(gsm_leave(&ctx, &grp, "x", 1, "i1", 2, now), TM_ERR_FENCED_INSTANCE_ID);
	ck_assert_int_eq(gsm_leave(&ctx, &grp, "", 0, "i1", 2, now), TM_ERR_NONE);
	ck_assert_int_eq(grp.state, GSM_EMPTY);
}
END_TEST

START_TEST(test_groups_illegal_generation)
{
	char a[128];
	join_single(a, sizeof(a));
	ck_assert_int_eq(hb(a, 0), TM_ERR_ILLEGAL_GENERATION);
	ck_assert_int_eq(hb(a, 7), TM_ERR_ILLEGAL_GENERATION);
	sync_(5, a, 9, NULL, NULL, 0);
	ck_assert(S[5].done);
	ck_assert_int_eq(S[5].error, TM_ERR_ILLEGAL_GENERATION);
	ck_assert_int_eq(gsm_validate_commit(&ctx, &grp, 3, a, strlen(a), NULL, 0, now), TM_ERR_ILLEGAL_GENERATION);
	ck_assert_int_eq(gsm_validate_commit(&ctx, &grp, 1, a, strlen(a), NULL, 0, now), TM_ERR_NONE);
}
END_TEST

START_TEST(test_groups_unknown_member)
{
	char a[128];
	join_single(a, sizeof(a));
	ck_assert_int_eq(hb("ghost", 1), TM_ERR_UNKNOWN_MEMBER_ID);
	ck_assert_int_eq(join(4, (struct jopts){ .member_id = "ghost", .require_known = true }), 0);
	ck_assert(J[4].done);
	ck_assert_int_eq(J[4].error, TM_ERR_UNKNOWN_MEMBER_ID);
	sync_(4, "ghost", 1, NULL, NULL, 0);
	ck_assert_int_eq(S[4].error, TM_ERR_UNKNOWN_MEMBER_ID);
	ck_assert_int_eq(gsm_validate_commit(&ctx, &grp, 1, "ghost", 5, NULL, 0, now), TM_ERR_UNKNOWN_MEMBER_ID);
	/* a commit without member and generation is refused while members are active */
	ck_assert_int_eq(gsm_validate_commit(&ctx, &grp, -1, "", 0, NULL, 0, now), TM_ERR_UNKNOWN_MEMBER_ID);
	ck_assert_int_eq(grp.state, GSM_STABLE);
}
END_TEST

START_TEST(test_groups_max_size)
{
	setup_with(0, 2);
	char a[128], b[128];
	two_members_stable(a, b);
	ck_assert_int_eq(join(9, (struct jopts){ .client_id = "c" }), 0);
	ck_assert(J[9].done);
	ck_assert_int_eq(J[9].error, TM_ERR_GROUP_MAX_SIZE_REACHED);
	ck_assert_int_eq(grp.state, GSM_STABLE);
	ck_assert_int_eq(grp.n_members, 2);
	ck_assert_int_eq(join(10, (struct jopts){ .client_id = "c", .require_known = true }), 0);
	ck_assert_int_eq(J[10].error, TM_ERR_GROUP_MAX_SIZE_REACHED);
}
END_TEST

START_TEST(test_groups_protocol_selection)
{
	/* a: roundrobin > range; b: range > roundrobin; c: roundrobin > range.
	 * All support both; votes 2:1 for roundrobin. */
	ck_assert_int_eq(join(0, (struct jopts){ .protocols = "roundrobin,range" }), 0);
	char a[128];
	snprintf(a, sizeof(a), "%s", J[0].member_id);
	ck_assert_str_eq(J[0].protocol, "roundrobin");
	ck_assert_int_eq(join(1, (struct jopts){ .protocols = "range,roundrobin" }), 0);
	ck_assert_int_eq(join(2, (struct jopts){ .protocols = "roundrobin,range,sticky" }), 0);
	ck_assert_int_eq(join(3, (struct jopts){ .member_id = a, .protocols = "roundrobin,range" }), 0);
	ck_assert(J[1].done && J[2].done && J[3].done);
	ck_assert_str_eq(J[3].protocol, "roundrobin");
	ck_assert_str_eq(J[1].protocol, "roundrobin");

	/* A member that shares no protocol with the group is refused. */
	ck_assert_int_eq(join(4, (struct jopts){ .protocols = "sticky" }), 0);
	ck_assert_int_eq(J[4].error, TM_ERR_INCONSISTENT_GROUP_PROTOCOL);
	ck_assert_int_eq(join(5, (struct jopts){ .protocol_type = "connect" }), 0);
	ck_assert_int_eq(J[5].error, TM_ERR_INCONSISTENT_GROUP_PROTOCOL);
	ck_assert_int_eq(join(6, (struct jopts){ .protocol_type = "" }), 0);
	ck_assert_int_eq(J[6].error, TM_ERR_INCONSISTENT_GROUP_PROTOCOL);
}
END_TEST

START_TEST(test_groups_protocol_selection_needs_common_protocol)
{
	ck_assert_int_eq(join(0, (struct jopts){ .protocols = "roundrobin,range" }), 0);
	char a[128];
	snprintf(a, sizeof(a), "%s", J[0].member_id);
	ck_assert_int_eq(join(1, (struct jopts){ .protocols = "range" }), 0);
	ck_assert_int_eq(join(2, (struct jopts){ .member_id = a, .protocols = "roundrobin,range" }), 0);
	ck_assert(J[1].done && J[2].done);
	ck_assert_str_eq(J[2].protocol, "range");
}
END_TEST

START_TEST(test_groups_invalid_session_timeout)
{
	ck_assert_int_eq(join(0, (struct jopts){ .session_ms = 1000 }), 0);
	ck_assert_int_eq(J[0].error, TM_ERR_INVALID_SESSION_TIMEOUT);
	ck_assert_int_eq(join(1, (struct jopts){ .session_ms = 400000 }), 0);
	ck_assert_int_eq(J[1].error, TM_ERR_INVALID_SESSION_TIMEOUT);
	ck_assert_int_eq(grp.n_members, 0);
}
END_TEST

START_TEST(test_groups_member_id_required_handshake_and_expiry)
{
	ck_assert_int_eq(join(0, (struct jopts){ .require_known = true }), 0);
	ck_assert_int_eq(J[0].error, TM_ERR_MEMBER_ID_REQUIRED);
	ck_assert_int_eq(grp.n_pending, 1);
	/* The pending id expires after the session timeout if never used. */
	advance(11000);
	ck_assert_int_eq(grp.n_pending, 0);
	char id[128];
	snprintf(id, sizeof(id), "%s", J[0].member_id);
	ck_assert_int_eq(join(1, (struct jopts){ .member_id = id, .require_known = true }), 0);
	ck_assert_int_eq(J[1].error, TM_ERR_UNKNOWN_MEMBER_ID);
}
END_TEST

START_TEST(test_groups_initial_rebalance_delay)
{
	setup_with(3000, 100);
	ck_assert_int_eq(join(0, (struct jopts){ .rebalance_ms = 10000 }), 0);
	ck_assert(!J[0].done);
	advance(1000);
	ck_assert_int_eq(join(1, (struct jopts){ .rebalance_ms = 10000 }), 0);
	advance(2000); /* 3 s: a member arrived during the delay, wait another 3 s */
	ck_assert(!J[0].done && !J[1].done);
	advance(2999);
	ck_assert(!J[0].done);
	advance(1);
	ck_assert(J[0].done && J[1].done);
	ck_assert_int_eq(J[0].generation, 1);
	ck_assert_int_eq(J[1].generation, 1);
	ck_assert_int_eq(grp.n_members, 2);
}
END_TEST

START_TEST(test_groups_pending_sync_expiry_removes_silent_follower)
{
	char a[128], b[128];
	two_members_stable(a, b);
	ck_assert_int_eq(join(10, (struct jopts){ .member_id = a, .rebalance_ms = 20000 }), 0);
	ck_assert_int_eq(join(11, (struct jopts){ .member_id = b, .rebalance_ms = 20000 }), 0);
	ck_assert(J[10].done && J[11].done);
	const char *ids[] = { a, b };
	const char *as[] = { "x", "y" };
	sync_(10, a, 3, ids, as, 2);
	ck_assert_int_eq(grp.state, GSM_STABLE);
	/* b never sends SyncGroup, though it heartbeats */
	for (int i = 0; i < 7; i++) {
		advance(3000);
		hb(a, 3);
		hb(b, 3);
	}
	ck_assert_ptr_null(gsm_find_member(&grp, b, strlen(b)));
	ck_assert_int_eq(grp.state, GSM_PREPARING_REBALANCE);
}
END_TEST

START_TEST(test_groups_commit_validation)
{
	/* An empty group takes offsets from anyone with generation -1. */
	ck_assert_int_eq(gsm_validate_commit(&ctx, &grp, -1, "", 0, NULL, 0, now), TM_ERR_NONE);
	char a[128];
	join_single(a, sizeof(a));
	ck_assert_int_eq(gsm_validate_commit(&ctx, &grp, 1, a, strlen(a), NULL, 0, now), TM_ERR_NONE);
	/* during CompletingRebalance */
	ck_assert_int_eq(join(3, (struct jopts){ .member_id = a }), 0);
	ck_assert_int_eq(grp.state, GSM_COMPLETING_REBALANCE);
	ck_assert_int_eq(gsm_validate_commit(&ctx, &grp, 2, a, strlen(a), NULL, 0, now),
			 TM_ERR_REBALANCE_IN_PROGRESS);
}
END_TEST

START_TEST(test_groups_restore_from_stored_metadata)
{
	struct gsm_member_in m[2] = {
		{ "m1", 2, NULL, 0, "c1", 2, "/h", 2, 10000, 30000, (const uint8_t *)"s1", 2, (const uint8_t *)"a1", 2 },
		{ "m2", 2, "i2", 2, "c2", 2, "/h", 2, 10000, 30000, (const uint8_t *)"s2", 2, (const uint8_t *)"a2", 2 },
	};
	ck_assert_int_eq(gsm_group_restore(&grp, "consumer", 8, 5, "range", 5, "m2", 2, m, 2, now), 0);
	ck_assert_int_eq(grp.state, GSM_STABLE);
	ck_assert_int_eq(grp.generation, 5);
	ck_assert_str_eq(grp.leader_id, "m2");
	ck_assert_int_eq(hb("m1", 5), TM_ERR_NONE);
	ck_assert_int_eq(hb_static("m2", "i2", 5), TM_ERR_NONE);
	sync_(0, "m1", 5, NULL, NULL, 0);
	ck_assert_str_eq(S[0].assignment, "a1");
	/* a member gone with the broker restart times out */
	advance(8000);
	ck_assert_int_eq(hb("m1", 5), TM_ERR_NONE);
	advance(8000);
	ck_assert_ptr_null(gsm_find_member(&grp, "m2", 2));
	ck_assert_int_eq(grp.state, GSM_PREPARING_REBALANCE);
}
END_TEST

START_TEST(test_groups_thousands_of_members)
{
	setup_with(0, 5000);
	enum { N = 3000 };
	ck_assert_int_eq(join(0, (struct jopts){ .client_id = "x" }), 0);
	ck_assert(J[0].done);
	for (int i = 1; i < N; i++)
		ck_assert_int_eq(join(i, (struct jopts){ .client_id = "x" }), 0);
	ck_assert_int_eq(grp.n_members, N);
	ck_assert_int_eq(grp.state, GSM_PREPARING_REBALANCE);
	/* members that never heartbeat and never rejoin: the leader never
	 * rejoins either, so the rebalance timeout completes with the
	 * newcomers only. */
	advance(30000);
	ck_assert_int_eq(grp.state, GSM_COMPLETING_REBALANCE);
	ck_assert_int_eq(grp.n_members, N - 1);
	int leaders = 0;
	for (int i = 1; i < N; i++) {
		ck_assert(J[i].done);
		ck_assert_int_eq(J[i].error, TM_ERR_NONE);
		leaders += J[i].n_members == N - 1;
	}
	ck_assert_int_eq(leaders, 1);
	/* nobody syncs or heartbeats: all gone after the timeouts */
	advance(30000);
	advance(30000);
	ck_assert_int_eq(grp.n_members, 0);
	ck_assert_int_eq(grp.state, GSM_EMPTY);
}
END_TEST

START_TEST(test_groups_large_group_sync_hands_every_member_its_assignment)
{
	setup_with(0, 5000);
	enum { N = 2000 };
	static char ids[N][128];
	static char vals[N][16];
	static const char *idp[N], *valp[N];
	ck_assert_int_eq(join(0, (struct jopts){ .client_id = "m" }), 0);
	ck_assert(J[0].done);
	snprintf(ids[0], sizeof(ids[0]), "%s", J[0].member_id);
	for (int i = 1; i < N; i++)
		ck_assert_int_eq(join(i, (struct jopts){ .client_id = "m" }), 0);
	ck_assert_int_eq(join(N, (struct jopts){ .member_id = ids[0], .client_id = "m" }), 0);
	ck_assert(J[N].done);
	ck_assert_int_eq(J[N].n_members, N);
	int32_t gen = J[N].generation;
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%s", grp.members[i]->member_id);
		snprintf(vals[i], sizeof(vals[i]), "a%d", i);
		idp[i] = ids[i];
		valp[i] = vals[i];
	}
	for (int i = 1; i < N; i++)
		sync_(i, ids[i], gen, NULL, NULL, 0);
	/* the leader's list in reverse order, with a duplicate that must not win */
	static const char *rid[N + 1], *rval[N + 1];
	for (int i = 0; i < N; i++) {
		rid[i] = idp[N - 1 - i];
		rval[i] = valp[N - 1 - i];
	}
	rid[N] = idp[1];
	rval[N] = "dup";
	struct gsm_assignment_in *a = calloc(N + 1, sizeof(*a));
	for (int i = 0; i <= N; i++)
		a[i] = (struct gsm_assignment_in){ rid[i], strlen(rid[i]), (const uint8_t *)rval[i], (int32_t)strlen(rval[i]) };
	struct gsm_sync_req r = { .generation = gen, .member_id = ids[0], .member_id_len = strlen(ids[0]),
				  .assignments = a, .n_assignments = N + 1 };
	S[0] = (struct sres){ 0 };
	ck_assert_int_eq(gsm_sync(&ctx, &grp, &r, &S[0], now), 0);
	gsm_store_done(&ctx, &grp, gen, TM_ERR_NONE, now);
	free(a);
	for (int i = 0; i < N; i++) {
		ck_assert_msg(S[i].done && S[i].error == TM_ERR_NONE, "member %d: done %d error %d", i, S[i].done,
			      S[i].error);
		ck_assert_str_eq(S[i].assignment, vals[i]);
	}
}
END_TEST

START_TEST(test_groups_oversized_metadata_refused)
{
	static char big[GSM_MEMBER_METADATA_MAX_BYTES + 10];
	memset(big, 'x', sizeof(big) - 1);
	ck_assert_int_eq(join(0, (struct jopts){ .meta_suffix = "" }), 0);
	ck_assert_int_eq(J[0].error, TM_ERR_NONE);
	struct gsm_proto_in p = { "range", 5, (const uint8_t *)big, (int32_t)sizeof(big) };
	struct gsm_join_req r = {
		.member_id = "", .client_id = "c", .client_id_len = 1, .client_host = "h", .client_host_len = 1,
		.protocol_type = "consumer", .protocol_type_len = 8, .session_timeout_ms = 10000,
		.rebalance_timeout_ms = 10000, .protocols = &p, .n_protocols = 1,
	};
	J[1] = (struct jres){ 0 };
	ck_assert_int_eq(gsm_join(&ctx, &grp, &r, &J[1], now), 0);
	ck_assert_int_eq(J[1].error, TM_ERR_INVALID_REQUEST);
	ck_assert_int_eq(grp.n_members, 1);
}
END_TEST

START_TEST(test_groups_every_waiter_answered_once)
{
	char a[128], b[128];
	two_members_stable(a, b);
	/* b's retried JoinGroup supersedes its first one */
	ck_assert_int_eq(join(20, (struct jopts){ .member_id = b, .meta_suffix = "-v2" }), 0);
	ck_assert(!J[20].done);
	ck_assert_int_eq(join(21, (struct jopts){ .member_id = b, .meta_suffix = "-v2" }), 0);
	ck_assert(J[20].done);
	ck_assert_int_eq(J[20].error, TM_ERR_REBALANCE_IN_PROGRESS);
	ck_assert(!J[21].done);
	gsm_group_abort(&ctx, &grp, TM_ERR_NOT_COORDINATOR);
	ck_assert(J[21].done);
	ck_assert_int_eq(J[21].error, TM_ERR_NOT_COORDINATOR);
	for (int i = 0; i < 32; i++) {
		ck_assert_int_le(J[i].calls, 1);
		ck_assert_int_le(S[i].calls, 1);
	}
}
END_TEST

START_TEST(test_groups_sync_waits_until_assignment_is_stored)
{
	char a[128], b[128];
	two_members_stable(a, b);
	store_manual = true;
	ck_assert_int_eq(join(30, (struct jopts){ .member_id = a }), 0);
	ck_assert_int_eq(join(31, (struct jopts){ .member_id = b }), 0);
	ck_assert(J[30].done && J[31].done);
	int32_t gen = J[30].generation;
	const char *ids[] = { a, b };
	const char *as[] = { "pa", "pb" };
	sync_(31, b, gen, NULL, NULL, 0);
	sync_(30, a, gen, ids, as, 2);
	ck_assert_msg(!S[30].done && !S[31].done, "SyncGroup answered before the assignment was stored");
	ck_assert(store_ack_pending);
	ck_assert_int_eq(grp.state, GSM_COMPLETING_REBALANCE);
	gsm_store_done(&ctx, &grp, gen, TM_ERR_NONE, now);
	ck_assert(S[30].done && S[31].done);
	ck_assert_str_eq(S[31].assignment, "pb");
	ck_assert_int_eq(grp.state, GSM_STABLE);

	/* a failed write: both get the error and the group rebalances */
	store_ack_pending = false;
	ck_assert_int_eq(join(32, (struct jopts){ .member_id = a }), 0);
	ck_assert_int_eq(join(33, (struct jopts){ .member_id = b }), 0);
	gen = J[32].generation;
	sync_(33, b, gen, NULL, NULL, 0);
	sync_(32, a, gen, ids, as, 2);
	gsm_store_done(&ctx, &grp, gen, TM_ERR_NOT_COORDINATOR, now);
	ck_assert(S[32].done && S[33].done);
	ck_assert_int_eq(S[32].error, TM_ERR_NOT_COORDINATOR);
	ck_assert_int_eq(S[33].error, TM_ERR_NOT_COORDINATOR);
	ck_assert_int_eq(grp.state, GSM_PREPARING_REBALANCE);
	/* a late completion for an old generation changes nothing */
	gsm_store_done(&ctx, &grp, gen, TM_ERR_NONE, now);
	ck_assert_int_eq(grp.state, GSM_PREPARING_REBALANCE);
}
END_TEST

/* The coordinator of a group is found as Kafka finds it: Java's
 * String.hashCode (over UTF-16) and Utils.abs, modulo the partitions. */
START_TEST(test_groups_partition_matches_java_hash)
{
	ck_assert_int_eq(groups_java_hash("", 0), 0);
	ck_assert_int_eq(groups_java_hash("hello", 5), 99162322);
	ck_assert_int_eq(groups_java_hash("polygenelubricants", 18), INT32_MIN);
	ck_assert_int_eq(groups_partition_for("polygenelubricants", 18, 50), 0);
	ck_assert_int_eq(groups_java_hash("\xc3\xa9", 2), 233);              /* U+00E9 */
	ck_assert_int_eq(groups_java_hash("\xf0\x9f\x98\x80", 4), 1772899); /* U+1F600: a surrogate pair */
	ck_assert_int_eq(groups_partition_for("hello", 5, 50), 99162322 % 50);
	ck_assert_int_eq(groups_java_hash("console-consumer-12345", 22), 158455506);
	ck_assert_int_eq(groups_partition_for("console-consumer-12345", 22, 50), 6);
	ck_assert_int_eq(groups_java_hash("zzzzzzzz", 8), -1910022912); /* negative: abs() then modulo */
	ck_assert_int_eq(groups_partition_for("zzzzzzzz", 8, 50), 1910022912 % 50);
}
END_TEST

static Suite *groups_suite(void)
{
	Suite *s = suite_create("groups");
	TCase *tc = tcase_create("state machine");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_groups_single_member_join_sync_heartbeat);
	tcase_add_test(tc, test_groups_rebalance_on_join);
	tcase_add_test(tc, test_groups_three_members_split);
	tcase_add_test(tc, test_groups_leave_triggers_rebalance);
	tcase_add_test(tc, test_groups_session_timeout_removes_member);
	tcase_add_test(tc, test_groups_rebalance_timeout_drops_member_that_did_not_rejoin);
	tcase_add_test(tc, test_groups_static_member_rejoin_keeps_generation);
	tcase_add_test(tc, test_groups_static_member_leave_by_instance_id);
	tcase_add_test(tc, test_groups_illegal_generation);
	tcase_add_test(tc, test_groups_unknown_member);
	tcase_add_test(tc, test_groups_max_size);
	tcase_add_test(tc, test_groups_protocol_selection);
	tcase_add_test(tc, test_groups_protocol_selection_needs_common_protocol);
	tcase_add_test(tc, test_groups_invalid_session_timeout);
	tcase_add_test(tc, test_groups_member_id_required_handshake_and_expiry);
	tcase_add_test(tc, test_groups_initial_rebalance_delay);
	tcase_add_test(tc, test_groups_pending_sync_expiry_removes_silent_follower);
	tcase_add_test(tc, test_groups_commit_validation);
	tcase_add_test(tc, test_groups_restore_from_stored_metadata);
	tcase_add_test(tc, test_groups_thousands_of_members);
	tcase_add_test(tc, test_groups_large_group_sync_hands_every_member_its_assignment);
	tcase_add_test(tc, test_groups_oversized_metadata_refused);
	tcase_add_test(tc, test_groups_every_waiter_answered_once);
	tcase_add_test(tc, test_groups_sync_waits_until_assignment_is_stored);
	tcase_add_test(tc, test_groups_partition_matches_java_hash);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(groups_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
