/*
 * placement.h — where a new partition's replicas go (pure: no I/O, unit-
 * tested in tests/unit/test_placement.c).
 *
 * Kafka's rules (AdminUtils.assignReplicasToBrokers):
 *   - Replicas of one partition are on distinct brokers.
 *   - Leaders (first replicas) go round-robin over the brokers, so n
 *     partitions on b brokers give each broker n/b leaderships (±1).
 *   - With broker.rack set, the broker list is first arranged rack by rack
 *     in turn (rack A's first broker, rack B's first, ..., rack A's second,
 *     ...), and each partition's followers are taken walking on from its
 *     leader, skipping brokers of racks the partition already uses while
 *     an unused rack remains.  So replicas spread over as many racks as
 *     there are, and leaders over racks too.  Brokers without a rack count
 *     as one rack of their own ("").
 *   - Without racks: brokers sorted by id, partition p's replicas are the
 *     rf brokers starting at position (first + p).
 */
#ifndef TM_BROKER_PLACEMENT_H
#define TM_BROKER_PLACEMENT_H

#include <stdint.h>

#define PLACEMENT_RACK_MAX 64

struct placement_broker {
	int32_t id;
	char rack[PLACEMENT_RACK_MAX]; /* "" = none */
};

/* Places n_parts partitions with rf replicas each over the n brokers
 * (live ones; any order); partition i's replicas go to
 * out[i * rf .. i * rf + rf - 1], leader first.  first_partition offsets the
 * round-robin (e.g. the topic's existing partition count for
 * CreatePartitions).  0, or -EINVAL when rf < 1 or rf > n (the caller
 * answers INVALID_REPLICATION_FACTOR). */
int placement_assign(const struct placement_broker *brokers, int n, int32_t n_parts, int rf, int32_t first_partition,
		     int32_t *out);

#endif
