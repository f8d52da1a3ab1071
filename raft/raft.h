/*
 * raft.h — Tidemark's KRaft consensus core: a pure state machine.
 *
 * The core decides; the driver (broker/) does.  It performs no I/O, reads no
 * clock and draws no randomness of its own: time arrives in every event
 * (now_ms, the driver's monotonic clock), randomness comes from the seed
 * given to raft_init (a splitmix64 state kept in struct raft), and every
 * effect leaves as an action appended to a struct raft_actions that the
 * driver drains in order.  One entry point, raft_step(), like cowsql/raft.
 *
 * Semantics follow KRaft (KIP-595, KIP-630, KIP-996): epochs, pre-vote
 * before a real vote, BeginQuorumEpoch / EndQuorumEpoch, pull-based
 * replication by Fetch (fetch_offset + last_fetched_epoch; the leader
 * answers with records, a diverging epoch, or a snapshot id), FetchSnapshot
 * in chunks, check-quorum, and a high watermark that advances only over a
 * majority of voters and only once an entry of the leader's own epoch (its
 * leader-change control entry) is covered.
 *
 * What the core keeps about the log: log start offset (= snapshot end
 * offset), log end offset, the durable end reported by the driver, and an
 * epoch cache — the list of (epoch, start offset) of the entries it knows.
 * The entries' bytes live only in the driver.  When the leader answers a
 * Fetch, the core emits the response with records_from / records_end /
 * max_bytes filled and NO records: the driver attaches the batches of its
 * log whose base offsets lie in [records_from, records_end), at least one,
 * and more while they fit max_bytes.  FetchSnapshot responses likewise carry
 * (position, max_bytes) and the driver attaches the snapshot's bytes.
 *
 * Invariants the core keeps (checked by tests/sim/sim_raft.c):
 *   - at most one leader per epoch (a voter votes once per epoch, and its
 *     vote is persisted before the response leaves);
 *   - log start <= high watermark <= log end, and the high watermark never
 *     goes back while the process lives;
 *   - a follower never truncates below its high watermark;
 *   - a follower reports (by its next Fetch) only entries that are durable.
 *
 * Driver contract — actions are performed in the order they appear:
 *   RAFT_ACT_PERSIST_STATE  write and fsync quorum-state BEFORE performing
 *                           any later action (votes depend on it).
 *   RAFT_ACT_APPEND         append the entry to the log (write may complete
 *                           later); report durability with RAFT_EV_PERSISTED
 *                           carrying the end offset up to which the current
 *                           log is durable.
 *   RAFT_ACT_TRUNCATE       drop every entry at or above offset, durably,
 *                           before later actions.
 *   RAFT_ACT_SNAPSHOT_CHUNK write the chunk of the snapshot being fetched; on
 *                           `done` make it durable, discard the whole log,
 *                           start the log at the snapshot's end offset and
 *                           load the state machine from the snapshot.
 *   RAFT_ACT_COMMIT         the high watermark is now X: apply entries below
 *                           X to the metadata state machine.
 *   RAFT_ACT_SEND           send the message to node `to`.
 *   RAFT_ACT_ROLE           the node changed role (metrics, activation).
 * Pointers inside actions (payloads, snapshot bytes) borrow from the event
 * given to raft_step and stay valid only until the driver's next raft_step.
 *
 * Byte payloads are opaque to the core: a proposal is one Kafka record batch
 * holding `count` records (offsets offset .. offset+count-1).  An entry with
 * `control` set and no payload is the leader-change control batch the driver
 * encodes itself (LeaderChangeMessage with leader id and voters).
 */
#ifndef TM_RAFT_H
#define TM_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RAFT_VOTERS_MAX 16
#define RAFT_OBSERVERS_MAX 32
#define RAFT_CLUSTER_ID_MAX 64
#define RAFT_NODE_NONE (-1)
#define RAFT_EPOCHS_MAX 65536      /* epoch-cache entries kept at once */
#define RAFT_ENTRY_RECORDS_MAX 65536

enum raft_role {
	RAFT_UNATTACHED = 0, /* epoch known, no leader, no vote */
	RAFT_PROSPECTIVE,    /* asking for pre-votes; epoch not bumped */
	RAFT_CANDIDATE,      /* voted for itself in a bumped epoch */
	RAFT_LEADER,
	RAFT_FOLLOWER,       /* fetching from a known leader (voter or observer) */
	RAFT_VOTED,          /* voted for a candidate in this epoch */
	RAFT_RESIGNED,       /* former leader of this epoch, stepping aside */
};

const char *raft_role_name(enum raft_role role);

struct raft_config {
	int32_t node_id;
	char cluster_id[RAFT_CLUSTER_ID_MAX + 1]; /* "" accepts any */
	int32_t voters[RAFT_VOTERS_MAX];          /* static voter set */
	uint32_t n_voters;
	int64_t election_timeout_ms;    /* randomized in [t, 2t) */
	int64_t fetch_timeout_ms;       /* follower: leader silent -> prospective;
	                                   leader: 1.5x is the check-quorum window */
	int64_t request_timeout_ms;     /* resend an unanswered Fetch / Begin */
	int64_t fetch_max_wait_ms;      /* how long the leader parks an empty Fetch */
	int64_t end_quorum_backoff_ms;  /* per position in EndQuorumEpoch's list */
	int64_t retry_backoff_ms;       /* after an error response */
	int32_t fetch_max_bytes;        /* records per Fetch response */
	int32_t snapshot_chunk_bytes;   /* bytes per FetchSnapshot response */
	uint32_t entry_bytes_max;       /* largest proposal accepted */
};

/* Fills Kafka's defaults (election 1000 ms, fetch 2000 ms, ...). */
void raft_config_defaults(struct raft_config *cfg);

struct raft_epoch_start {
	int32_t epoch;
	int64_t start_offset;
};

/* What the driver restored from disk; NULL or zeroed for a fresh node. */
struct raft_persisted {
	int32_t epoch;              /* quorum-state */
	int32_t voted_id;           /* RAFT_NODE_NONE if none */
	int32_t leader_id;          /* RAFT_NODE_NONE if none */
	int64_t log_start_offset;   /* = snapshot end offset, 0 without one */
	int32_t snapshot_epoch;     /* epoch of the snapshot's last entry */
	int64_t log_end_offset;     /* after recovery; all of it durable */
	const struct raft_epoch_start *epochs; /* ascending; the first may start
	                                          below log_start, entries
	                                          starting at/after log end are
	                                          ignored (torn tail cut) */
	uint32_t n_epochs;
};

struct raft_entry {
	int64_t offset;    /* base offset */
	int32_t epoch;     /* partition leader epoch of the batch */
	uint32_t count;    /* records in the batch, >= 1 */
	bool control;      /* leader-change control batch */
	const uint8_t *payload;
	uint32_t len;
};

/* ---- messages (one per Kafka RPC half; fields map 1:1 to the wire) ---- */

enum raft_msg_type {
	RAFT_MSG_VOTE_REQ = 1,
	RAFT_MSG_VOTE_RESP,
	RAFT_MSG_BEGIN_EPOCH_REQ,
	RAFT_MSG_BEGIN_EPOCH_RESP,
	RAFT_MSG_END_EPOCH_REQ,
	RAFT_MSG_END_EPOCH_RESP,
	RAFT_MSG_FETCH_REQ,
	RAFT_MSG_FETCH_RESP,
	RAFT_MSG_FETCH_SNAPSHOT_REQ,
	RAFT_MSG_FETCH_SNAPSHOT_RESP,
};

struct raft_vote_req {
	int32_t candidate_epoch;   /* pre-vote: the epoch it would campaign in */
	int32_t candidate_id;
	int32_t voter_id;
	int32_t last_offset_epoch;
	int64_t last_offset;       /* the candidate's log end offset */
	bool pre_vote;
};

struct raft_vote_resp {
	int16_t error;
	int32_t leader_id;
	int32_t leader_epoch;      /* the responder's epoch */
	bool vote_granted;
	bool pre_vote;             /* copied from the request by the driver */
};

struct raft_begin_epoch_req {
	int32_t leader_id;
	int32_t leader_epoch;
	int32_t voter_id;
};

struct raft_end_epoch_req {
	int32_t leader_id;
	int32_t leader_epoch;
	int32_t preferred[RAFT_VOTERS_MAX]; /* PreferredCandidates, best first */
	uint32_t n_preferred;
};

/* Begin/End responses share one shape. */
struct raft_epoch_resp {
	int16_t error;
	int32_t leader_id;
	int32_t leader_epoch;
};

struct raft_fetch_req {
	int32_t replica_id;
	int32_t current_leader_epoch;
	int64_t fetch_offset;
	int32_t last_fetched_epoch;
	int32_t max_wait_ms;
	int32_t max_bytes;
};

struct raft_fetch_resp {
	int16_t error;
	int32_t leader_id;          /* CurrentLeader */
	int32_t leader_epoch;
	int64_t high_watermark;
	int64_t log_start_offset;
	int32_t diverging_epoch;    /* -1: none */
	int64_t diverging_end_offset;
	int64_t snapshot_offset;    /* -1: none; else fetch this snapshot */
	int32_t snapshot_epoch;
	/* Copied from the request by the driver (it pairs them by correlation
	 * id); the follower acts only on a response to its current position. */
	int64_t fetch_offset;
	int32_t last_fetched_epoch;
	/* Sending side: what the driver attaches from its log. */
	int64_t records_from;
	int64_t records_end;
	int32_t max_bytes;
	/* Receiving side: the batches, in offset order. */
	const struct raft_entry *entries;
	uint32_t n_entries;
};

struct raft_fetch_snapshot_req {
	int32_t replica_id;
	int32_t current_leader_epoch;
	int64_t snapshot_offset;    /* SnapshotId.EndOffset */
	int32_t snapshot_epoch;
	int64_t position;
	int32_t max_bytes;
};

struct raft_fetch_snapshot_resp {
	int16_t error;
	int32_t leader_id;
	int32_t leader_epoch;
	int64_t snapshot_offset;
	int32_t snapshot_epoch;
	int64_t position;
	int32_t max_bytes;          /* sending side: bytes the driver may attach */
	int64_t size;               /* receiving side: whole snapshot size */
	const uint8_t *bytes;       /* receiving side: UnalignedRecords */
	uint32_t len;
};

struct raft_msg {
	enum raft_msg_type type;
	int32_t from;               /* set by the sender's core / the driver */
	const char *cluster_id;     /* NULL or "" when unknown */
	union {
		struct raft_vote_req vote_req;
		struct raft_vote_resp vote_resp;
		struct raft_begin_epoch_req begin_req;
		struct raft_end_epoch_req end_req;
		struct raft_epoch_resp epoch_resp;   /* BEGIN/END_EPOCH_RESP */
		struct raft_fetch_req fetch_req;
		struct raft_fetch_resp fetch_resp;
		struct raft_fetch_snapshot_req snap_req;
		struct raft_fetch_snapshot_resp snap_resp;
	} u;
};

/* ---- events ------------------------------------------------------------ */

enum raft_event_type {
	RAFT_EV_TICK = 1,
	RAFT_EV_RECV,
	RAFT_EV_PERSISTED,
	RAFT_EV_PROPOSE,
	RAFT_EV_SNAPSHOT_TAKEN,
	RAFT_EV_SHUTDOWN,
};

struct raft_event {
	enum raft_event_type type;
	int64_t now_ms;             /* every event carries the clock */
	union {
		const struct raft_msg *recv;
		int64_t persisted_end;  /* the log is durable below this offset */
		struct {
			const uint8_t *payload;
			uint32_t len;
			uint32_t count; /* records in the batch, >= 1 */
		} propose;
		struct {
			int64_t offset; /* end offset (exclusive) */
			int32_t epoch;  /* epoch of the entry at offset - 1 */
		} snapshot;
	} u;
};

/* ---- actions ----------------------------------------------------------- */

enum raft_action_type {
	RAFT_ACT_SEND = 1,
	RAFT_ACT_PERSIST_STATE,
	RAFT_ACT_APPEND,
	RAFT_ACT_TRUNCATE,
	RAFT_ACT_COMMIT,
	RAFT_ACT_SNAPSHOT_CHUNK,
	RAFT_ACT_ROLE,
};

struct raft_action {
	enum raft_action_type type;
	union {
		struct {
			int32_t to;
			struct raft_msg msg;
		} send;
		struct {
			int32_t epoch;
			int32_t voted_id;
			int32_t leader_id;
		} persist;
		struct raft_entry append;
		int64_t truncate_offset;
		int64_t commit_offset;  /* new high watermark */
		struct {
			int64_t snapshot_offset;
			int32_t snapshot_epoch;
			int64_t position;
			int64_t size;
			const uint8_t *bytes;
			uint32_t len;
			bool done;
		} chunk;
		struct {
			enum raft_role role;
			int32_t epoch;
			int32_t leader_id;
		} role;
	} u;
};

struct raft_actions {
	struct raft_action *v;
	size_t n;
	size_t cap;
	int err;                    /* -ENOMEM once an append failed */
	/* RAFT_EV_PROPOSE result: base offset, or -1 and an error code
	 * (TM_ERR_NOT_LEADER_OR_FOLLOWER, TM_ERR_MESSAGE_TOO_LARGE). */
	int64_t propose_offset;
	int16_t propose_error;
};

void raft_actions_init(struct raft_actions *a);
void raft_actions_reset(struct raft_actions *a); /* n = 0, keeps memory */
void raft_actions_deinit(struct raft_actions *a);

/* ---- DescribeQuorum ---------------------------------------------------- */

struct raft_replica_info {
	int32_t replica_id;
	int64_t log_end_offset;         /* -1 unknown */
	int64_t last_fetch_ms;          /* -1 never */
	int64_t last_caught_up_ms;      /* -1 never */
};

struct raft_quorum_info {
	int16_t error;                  /* NOT_LEADER_OR_FOLLOWER off the leader */
	int32_t leader_id;
	int32_t leader_epoch;
	int64_t high_watermark;
	struct raft_replica_info voters[RAFT_VOTERS_MAX];
	uint32_t n_voters;
	struct raft_replica_info observers[RAFT_OBSERVERS_MAX];
	uint32_t n_observers;
};

/* ---- the state (caller memory; fields are private to raft.c) ------------ */

struct raft_replica {
	int32_t id;
	int64_t end_offset;             /* acknowledged by its last valid Fetch */
	int64_t last_fetch_ms;
	int64_t last_caught_up_ms;
	int64_t leader_end_at_fetch;    /* our log end at its previous fetch */
	int64_t hw_sent;
	bool begin_acked;
	int64_t begin_sent_ms;
	bool parked;
	int64_t parked_deadline_ms;
	struct raft_fetch_req parked_req;
};

struct raft {
	struct raft_config cfg;
	int self_voter_idx;             /* -1: observer */
	uint64_t prng;
	bool started;
	int64_t now_ms;

	enum raft_role role;
	int32_t epoch;
	int32_t voted_id;
	int32_t leader_id;

	int64_t log_start;              /* = snapshot end offset */
	int32_t snap_epoch;             /* 0 without a snapshot */
	int64_t log_end;
	int64_t persisted_end;
	int64_t hw;
	struct raft_epoch_start *epochs;
	uint32_t n_epochs;
	uint32_t cap_epochs;

	int64_t election_deadline_ms;   /* unattached/voted/prospective/candidate/resigned */
	uint32_t granted_mask;          /* by voter index */
	uint32_t rejected_mask;

	/* follower (and observer) */
	int64_t fetch_deadline_ms;      /* leader silent past this -> election */
	bool fetch_inflight;
	int64_t fetch_sent_ms;
	int64_t fetch_not_before_ms;    /* retry backoff after an error */
	bool leader_resigned;           /* got EndQuorumEpoch from our leader */
	int64_t leader_contact_ms;      /* last good answer from the leader; -1 none */
	bool snap_fetching;
	int64_t snap_fetch_offset;
	int32_t snap_fetch_epoch;
	int64_t snap_fetch_position;
	uint32_t bootstrap_idx;         /* observer leader discovery */

	/* leader */
	int64_t epoch_start_offset;
	int64_t leader_since_ms;
	struct raft_replica voter_state[RAFT_VOTERS_MAX];
	struct raft_replica observer_state[RAFT_OBSERVERS_MAX];
	uint32_t n_observers;
};

/*
 * raft_init — prepares r for node cfg->node_id.  `restored` is what the
 * driver read back from quorum-state and its log (NULL for a fresh node).
 * Returns 0, -EINVAL for a bad config or restored state, -ENOMEM.
 * A node restored as leader of its epoch comes back Resigned.
 */
int raft_init(struct raft *r, const struct raft_config *cfg, uint64_t seed,
	      const struct raft_persisted *restored, int64_t now_ms);
void raft_deinit(struct raft *r);

/*
 * raft_step — feeds one event; appends the resulting actions to `out`
 * (it does not clear it).  Returns 0, -EINVAL for a malformed event from
 * the driver (messages from the network are never an error: bad ones are
 * answered or dropped), or -ENOMEM when an action could not be recorded —
 * then the core and the driver disagree and the driver must stop.
 */
int raft_step(struct raft *r, const struct raft_event *ev, struct raft_actions *out);

enum raft_role raft_role(const struct raft *r);
int32_t raft_epoch(const struct raft *r);
int32_t raft_leader_id(const struct raft *r);
int32_t raft_voted_id(const struct raft *r);
int64_t raft_high_watermark(const struct raft *r);
int64_t raft_log_end_offset(const struct raft *r);
int64_t raft_log_start_offset(const struct raft *r);
bool raft_is_voter(const struct raft *r, int32_t node_id);
/* The leader's view for DescribeQuorum; other nodes get an error code. */
void raft_describe_quorum(const struct raft *r, struct raft_quorum_info *out);

#endif
