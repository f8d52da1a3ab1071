/*
 * elect.h — moving partition leadership and replicas on purpose: the pure
 * rules (elect.c) and the controller operations built on them
 * (api_elect.c, api_reassign.c).
 *
 * The rules are Kafka's KRaft controller's (PartitionChangeBuilder,
 * ReplicationControlManager), computed from the metadata image alone: no
 * I/O, no clock.  Each rule fills a struct elect_change, the fields of one
 * PartitionChangeRecord; the caller commits it through the controller.
 *
 *   preferred election  the first replica leads if it is active and in the ISR
 *   unclean election    a leaderless partition gets an active ISR member, else
 *                       any active replica (the ISR becomes that replica alone)
 *   controlled shutdown the broker leaves the leadership and the ISRs it shares
 *   reassignment        replicas = target + removing, adding = target - current;
 *                       complete once every target replica is in the ISR
 *
 * "Active" is Kafka's: registered, not fenced, not in controlled shutdown.
 * Invariants of a change: every set it writes holds distinct broker ids, at
 * most MD_REPLICAS_MAX; the leader it names is in the ISR it leaves (except
 * -1, no leader).
 */
#ifndef TM_BROKER_ELECT_H
#define TM_BROKER_ELECT_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/metadata.h"
#include "protocol/kafka_msgs.h"

struct tm_broker;
struct tm_req;

/* One PartitionChangeRecord's worth of change; n_* = -1 and leader = -2
 * mean "unchanged", as in the record. */
struct elect_change {
	int32_t leader;
	int32_t isr[MD_REPLICAS_MAX];
	int n_isr;
	int32_t replicas[MD_REPLICAS_MAX];
	int n_replicas;
	int32_t adding[MD_REPLICAS_MAX];
	int n_adding;
	int32_t removing[MD_REPLICAS_MAX];
	int n_removing;
};

enum { ELECT_PREFERRED = 0, ELECT_UNCLEAN = 1 };

void elect_change_init(struct elect_change *c);
bool elect_change_empty(const struct elect_change *c);
/* Points r's fields at c's sets (r lives no longer than c). */
void elect_change_record(const struct elect_change *c, const struct kuuid *topic_id, int32_t partition,
			 struct kafka_partition_change_record *r);

/* Registered, unfenced, not in controlled shutdown, and not `excluded`. */
bool elect_broker_active(const struct md_image *img, int32_t id, int32_t excluded);

/* ElectLeaders for one partition (type ELECT_PREFERRED or ELECT_UNCLEAN).
 * Returns TM_ERR_NONE with the change in *out, or ELECTION_NOT_NEEDED,
 * PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE,
 * INVALID_REQUEST (unknown type). */
int16_t elect_leader(const struct md_image *img, const struct md_partition *p, int type, struct elect_change *out);

/* Controlled shutdown of broker `id`: its leadership moves to another
 * active ISR member (with unclean_ok, to any active replica), and it leaves
 * the ISR unless it is the last member.  False when nothing changes. */
bool elect_shutdown(const struct md_image *img, const struct md_partition *p, int32_t id, bool unclean_ok,
		    struct elect_change *out);
/* unclean.leader.election.enable for topic t: its override, else the broker's. */
bool elect_unclean_allowed(const struct md_topic *t, bool broker_default);
/* Whether broker `id` leads any partition. */
bool elect_leads_any(const struct md_image *img, int32_t id);

/* Automatic preferred-leader balancing: marks in imbalanced[i] (parallel to
 * img->brokers) each broker whose share of partitions it is preferred
 * leader of but does not lead exceeds pct percent.  Returns how many. */
int elect_imbalanced_brokers(const struct md_image *img, int pct, bool imbalanced[MD_BROKERS_MAX]);
/* Whether the balance moves p's leadership back to its preferred replica:
 * that broker is marked in imbalanced[], active and in the ISR, and p is
 * not being reassigned.  The change in *out. */
bool elect_rebalance(const struct md_image *img, const struct md_partition *p, const bool imbalanced[MD_BROKERS_MAX],
		     struct elect_change *out);

/* ---- reassignment (KIP-455) ---- */
bool reassign_ongoing(const struct md_partition *p);
/* Starts (or replaces) a reassignment of p to target[0..n).  Returns
 * TM_ERR_NONE with the change (which completes at once when every target
 * replica is already in the ISR), or INVALID_REPLICA_ASSIGNMENT /
 * INVALID_REPLICATION_FACTOR with a message in why. */
int16_t reassign_start(const struct md_image *img, const struct md_partition *p, const int32_t *target, int n,
		       bool allow_rf_change, struct elect_change *out, char *why, size_t why_len);
/* Cancels p's reassignment: back to the original replicas.  Returns
 * TM_ERR_NONE, NO_REASSIGNMENT_IN_PROGRESS, or INVALID_REPLICA_ASSIGNMENT
 * when only an unclean election could give it a leader. */
int16_t reassign_cancel(const struct md_image *img, const struct md_partition *p, bool unclean_ok,
			struct elect_change *out, char *why, size_t why_len);
/* When every target replica of p's reassignment is in the ISR and one of
 * them can lead: the completing change (replicas = target, ISR without the
 * removed, a new leader if the old one was removed).  False otherwise. */
bool reassign_complete(const struct md_image *img, const struct md_partition *p, struct elect_change *out);

/* ---- controller operations (api_elect.c, api_reassign.c) ---- */
void api_elect_leaders(struct tm_req *req);
void api_alter_partition_reassignments(struct tm_req *req);
void api_list_partition_reassignments(struct tm_req *req);

/* Active controller, every tick: the automatic preferred-leader balance
 * (auto.leader.rebalance.enable) and completing reassignments. */
void leadership_tick(struct tm_broker *b, int64_t now_ms);
/* Part of leadership_tick (api_reassign.c): completes the reassignments
 * whose target replicas have all joined the ISR. */
void reassign_tick(struct tm_broker *b);

/* Active controller, for a BrokerHeartbeat with want_shut_down (or this
 * node's own controlled shutdown): starts moving the broker's leadership
 * away; true once it may stop (it leads nothing, or it is fenced). */
bool leadership_shutdown_check(struct tm_broker *b, int32_t id, int64_t epoch);

/* Broker side of controlled shutdown (Kafka's BrokerLifecycleManager).
 * shutdown_begin: on SIGTERM; false when there is nowhere to move
 * leadership to (stop at once).  While it runs, heartbeats carry
 * want_shut_down; shutdown_poll is true once the controller answered
 * should_shut_down or the bound (TM_SHUTDOWN_WAIT_MS) passed. */
#define TM_SHUTDOWN_WAIT_MS 5000
bool shutdown_begin(struct tm_broker *b, int64_t now_ms);
bool shutdown_wanted(const struct tm_broker *b);
void shutdown_heartbeat_answer(struct tm_broker *b, bool should_shut_down);
bool shutdown_poll(struct tm_broker *b, int64_t now_ms);

#endif
