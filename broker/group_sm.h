/*
 * group_sm.h — the classic consumer-group state machine (JoinGroup,
 * SyncGroup, Heartbeat, LeaveGroup and their timeouts), pure: no I/O, no
 * clock, no randomness.  The caller passes the time (`now_ms`, monotonic) and
 * a seed for member ids; answers to requests that have to wait (JoinGroup
 * until the rebalance completes, SyncGroup until the leader's assignment
 * arrives) come back through struct gsm_ops callbacks, possibly from inside
 * the call that made them ready, possibly from a later call or gsm_tick().
 *
 * States, as Kafka names them (GroupMetadata.scala / ClassicGroupState):
 *
 *   Empty --join--> PreparingRebalance --all joined / timeout--> CompletingRebalance
 *     ^                 ^      |                                     |
 *     |                 |      +--no member left--> Empty            | leader SyncGroup
 *     |                 +----- join / leave / session expiry --------+
 *     |                 +----- leader join, new member, leave ----- Stable <-+
 *     +--------------------- last member gone (via PreparingRebalance) -----+
 *   Dead: deleted (DeleteGroups) or no longer coordinated here.
 *
 * Invariants:
 *   - n_members <= min(cfg.max_size, GSM_MEMBERS_HARD_MAX); pending (ids
 *     handed out by MEMBER_ID_REQUIRED, not yet joined) likewise.
 *   - leader_id is NULL or the id of a member; protocol_name is non-NULL
 *     exactly in CompletingRebalance and Stable.
 *   - each member has at most one waiting JoinGroup and one waiting
 *     SyncGroup; every waiter handed in is answered exactly once (also when
 *     its member is removed, or the group is torn down with gsm_group_abort).
 *   - n_awaiting_join counts members with a waiting JoinGroup.
 */
#ifndef TM_BROKER_GROUP_SM_H
#define TM_BROKER_GROUP_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hard bounds, whatever the configuration says (group.max.size defaults to
 * Integer.MAX_VALUE in Kafka): memory per group stays bounded. */
#define GSM_MEMBERS_HARD_MAX 10000
#define GSM_PROTOCOLS_MAX 64
#define GSM_MEMBER_METADATA_MAX_BYTES (1024 * 1024)
#define GSM_ID_MAX_BYTES 4096 /* member, instance, client ids, protocol names */
/* Kafka's GroupCoordinator.NewMemberJoinTimeoutMs. */
#define GSM_NEW_MEMBER_JOIN_TIMEOUT_MS 300000

enum gsm_state {
	GSM_EMPTY,
	GSM_PREPARING_REBALANCE,
	GSM_COMPLETING_REBALANCE,
	GSM_STABLE,
	GSM_DEAD,
};

/* "Empty", "PreparingRebalance", ... as DescribeGroups / ListGroups show them. */
const char *gsm_state_name(enum gsm_state s);

struct gsm_config {
	int32_t initial_rebalance_delay_ms; /* group.initial.rebalance.delay.ms */
	int32_t min_session_timeout_ms;     /* group.min.session.timeout.ms */
	int32_t max_session_timeout_ms;     /* group.max.session.timeout.ms */
	int32_t max_size;                   /* group.max.size */
};

struct gsm_protocol {
	char *name;
	uint8_t *metadata;
	int32_t metadata_len;
};

struct gsm_member {
	char *member_id;
	char *instance_id;  /* group.instance.id; NULL: dynamic member */
	char *client_id;
	char *client_host;
	int32_t session_timeout_ms;
	int32_t rebalance_timeout_ms;
	struct gsm_protocol *protocols; /* in the member's order of preference */
	int32_t n_protocols;
	uint8_t *assignment;
	int32_t assignment_len;
	int64_t deadline_ms;   /* session expiry (new members: join timeout) */
	bool is_new;           /* joined in the current rebalance */
	bool pending_sync;     /* must send SyncGroup before sync_deadline_ms */
	void *join_waiter;     /* non-NULL: a JoinGroup waits for the rebalance */
	void *sync_waiter;     /* non-NULL: a SyncGroup waits for the assignment */
};

struct gsm_pending {
	char *member_id;
	int64_t deadline_ms;
};

struct gsm_group {
	char *group_id;
	enum gsm_state state;
	int32_t generation;
	char *protocol_type;   /* NULL: none (a group only used to store offsets) */
	char *protocol_name;   /* NULL unless CompletingRebalance / Stable */
	char *leader_id;       /* NULL: no leader */
	struct gsm_member **members; /* in join order */
	int32_t n_members, cap_members;
	struct gsm_pending *pending;
	int32_t n_pending, cap_pending;
	int32_t n_awaiting_join;
	int64_t join_deadline_ms;    /* PreparingRebalance: complete by then */
	bool initial_delay;          /* the join is an InitialDelayedJoin */
	bool new_member_added;       /* ... and a member joined during it */
	int64_t initial_remaining_ms;
	int64_t sync_deadline_ms;    /* -1: no SyncGroup expected */
	bool storing;                /* the leader's assignment is being persisted */
	int64_t state_since_ms;      /* when state last changed (now_ms of the caller) */
	void *user;                  /* the driver's per-group data */
};

/* The answer to one JoinGroup.  For the leader (members_included) the
 * caller lists every member with gsm_member_metadata(). */
struct gsm_join_result {
	int16_t error;
	int32_t generation;
	const char *member_id;      /* the id to answer with ("" on errors without one) */
	const char *protocol_type;  /* NULL: none */
	const char *protocol_name;  /* NULL: none */
	const char *leader_id;      /* NULL: none */
	bool members_included;
	bool skip_assignment;       /* JoinGroup v9: static leader rejoined a stable group */
};

struct gsm_sync_result {
	int16_t error;
	const char *protocol_type;
	const char *protocol_name;
	const uint8_t *assignment;
	int32_t assignment_len;
};

struct gsm_ops {
	/* A waiting (or immediate) JoinGroup is answered.  g is valid for the call. */
	void (*join_done)(void *env, void *waiter, const struct gsm_group *g, const struct gsm_join_result *r);
	void (*sync_done)(void *env, void *waiter, const struct gsm_sync_result *r);
	/* The group's persistent state (generation, protocol, leader, members,
	 * assignments) changed: write a GroupMetadataValue.  With `ack` (the
	 * leader's assignment) the driver must call gsm_store_done() once the
	 * write completed or failed (it may do so before returning); the
	 * SyncGroups wait for it, as in Kafka.  May be NULL (no persistence). */
	void (*store)(void *env, struct gsm_group *g, bool ack);
};

/* Shared by every group of a coordinator. */
struct gsm_ctx {
	struct gsm_config cfg;
	const struct gsm_ops *ops;
	void *env;
	uint64_t id_seed;     /* member ids are derived from seed and counter */
	uint64_t id_counter;
};

struct gsm_proto_in {
	const char *name;
	size_t name_len;
	const uint8_t *metadata;
	int32_t metadata_len;
};

/* JoinGroup, as decoded.  Strings are (pointer, length); instance_id NULL = none. */
struct gsm_join_req {
	const char *member_id;
	size_t member_id_len;
	const char *instance_id;
	size_t instance_id_len;
	const char *client_id;
	size_t client_id_len;
	const char *client_host;
	size_t client_host_len;
	const char *protocol_type;
	size_t protocol_type_len;
	int32_t session_timeout_ms;
	int32_t rebalance_timeout_ms; /* -1 (v0): the session timeout */
	const struct gsm_proto_in *protocols;
	int32_t n_protocols;
	bool require_known_member_id; /* v4+ */
	bool supports_skip_assignment; /* v9+ */
};

struct gsm_assignment_in {
	const char *member_id;
	size_t member_id_len;
	const uint8_t *assignment;
	int32_t assignment_len;
};

struct gsm_sync_req {
	int32_t generation;
	const char *member_id;
	size_t member_id_len;
	const char *instance_id;  /* NULL: none */
	size_t instance_id_len;
	const char *protocol_type; /* NULL: not sent (before v5) */
	size_t protocol_type_len;
	const char *protocol_name; /* NULL: not sent */
	size_t protocol_name_len;
	const struct gsm_assignment_in *assignments;
	int32_t n_assignments;
};

/* A group starts Empty at generation 0.  0 or -ENOMEM. */
int gsm_group_init(struct gsm_group *g, const char *group_id, size_t len, int64_t now_ms);
/* Frees everything; waiting requests must have been answered (gsm_group_abort). */
void gsm_group_deinit(struct gsm_group *g);
/* Answers every waiting JoinGroup / SyncGroup with `error` (the group moves
 * away: NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) and marks the group Dead. */
void gsm_group_abort(struct gsm_ctx *c, struct gsm_group *g, int16_t error);

/* JoinGroup.  The answer arrives through ops->join_done, now or later.
 * 0, or -ENOMEM (nothing changed; answer COORDINATOR_NOT_AVAILABLE). */
int gsm_join(struct gsm_ctx *c, struct gsm_group *g, const struct gsm_join_req *req, void *waiter,
	     int64_t now_ms);
/* SyncGroup.  The answer arrives through ops->sync_done.  0 or -ENOMEM. */
int gsm_sync(struct gsm_ctx *c, struct gsm_group *g, const struct gsm_sync_req *req, void *waiter,
	     int64_t now_ms);
/* The leader's assignment of `generation` was persisted (error
 * TM_ERR_NONE) or not (the Kafka error every waiting SyncGroup gets, and the
 * group rebalances).  Ignored when the group moved on meanwhile. */
void gsm_store_done(struct gsm_ctx *c, struct gsm_group *g, int32_t generation, int16_t error, int64_t now_ms);
/* Heartbeat: returns the Kafka error code. */
int16_t gsm_heartbeat(struct gsm_ctx *c, struct gsm_group *g, int32_t generation, const char *member_id,
		      size_t member_id_len, const char *instance_id, size_t instance_id_len, int64_t now_ms);
/* One member of a LeaveGroup (member_id "" with an instance id removes the
 * static member by instance id).  Returns the member's Kafka error code. */
int16_t gsm_leave(struct gsm_ctx *c, struct gsm_group *g, const char *member_id, size_t member_id_len,
		  const char *instance_id, size_t instance_id_len, int64_t now_ms);
/* Checks an OffsetCommit against the group (generation -1 and no member:
 * a group that only stores offsets).  A valid commit from a member counts
 * as its heartbeat.  Returns the Kafka error code. */
int16_t gsm_validate_commit(struct gsm_ctx *c, struct gsm_group *g, int32_t generation, const char *member_id,
			    size_t member_id_len, const char *instance_id, size_t instance_id_len,
			    int64_t now_ms);
/* Timers: session expiry, pending-member expiry, rebalance and sync timeouts. */
void gsm_tick(struct gsm_ctx *c, struct gsm_group *g, int64_t now_ms);
/* The earliest time gsm_tick has something to do; INT64_MAX when nothing. */
int64_t gsm_next_deadline(const struct gsm_group *g);

struct gsm_member *gsm_find_member(const struct gsm_group *g, const char *member_id, size_t len);
/* The member's metadata for the group's selected protocol (empty when none). */
void gsm_member_metadata(const struct gsm_group *g, const struct gsm_member *m, const uint8_t **data,
			 int32_t *len);
/* The protocol all members support with the most votes; NULL when the
 * group is empty or has no common protocol. */
const char *gsm_select_protocol(const struct gsm_group *g);

/* Rebuilds a group from its stored GroupMetadataValue (start-up, leader
 * change): Stable with its members when it has any, else Empty.  Session
 * timers start at now_ms.  Members hold one protocol: the selected one,
 * whose metadata is the stored subscription. */
struct gsm_member_in {
	const char *member_id;
	size_t member_id_len;
	const char *instance_id; /* NULL: none */
	size_t instance_id_len;
	const char *client_id;
	size_t client_id_len;
	const char *client_host;
	size_t client_host_len;
	int32_t session_timeout_ms;
	int32_t rebalance_timeout_ms;
	const uint8_t *subscription;
	int32_t subscription_len;
	const uint8_t *assignment;
	int32_t assignment_len;
};
int gsm_group_restore(struct gsm_group *g, const char *protocol_type, size_t protocol_type_len,
		      int32_t generation, const char *protocol_name, size_t protocol_name_len,
		      const char *leader_id, size_t leader_id_len, const struct gsm_member_in *members,
		      int32_t n_members, int64_t now_ms);

#endif
