/*
 * placement.c — replica placement, rack-aware.  See placement.h.
 */
#include "broker/placement.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PLACEMENT_BROKERS_MAX 256

static int by_id(const void *a, const void *b)
{
	int32_t x = ((const struct placement_broker *)a)->id, y = ((const struct placement_broker *)b)->id;
	return (x > y) - (x < y);
}

static int by_rack_then_id(const void *a, const void *b)
{
	const struct placement_broker *x = a, *y = b;
	int c = strcmp(x->rack, y->rack);
	return c ? c : by_id(a, b);
}

/* Kafka's getRackAlternatedBrokerList: racks in turn, each rack's brokers by id. */
static int rack_alternated(const struct placement_broker *in, int n, struct placement_broker *out)
{
	struct placement_broker sorted[PLACEMENT_BROKERS_MAX];
	memcpy(sorted, in, sizeof(*in) * (size_t)n);
	qsort(sorted, (size_t)n, sizeof(*sorted), by_rack_then_id);
	/* rack_start[r]: index in sorted of rack r's first broker */
	int rack_start[PLACEMENT_BROKERS_MAX + 1], racks = 0;
	for (int i = 0; i < n; i++)
		if (i == 0 || strcmp(sorted[i].rack, sorted[i - 1].rack))
			rack_start[racks++] = i;
	rack_start[racks] = n;
	int m = 0;
	for (int round = 0; m < n; round++)
		for (int r = 0; r < racks; r++)
			if (rack_start[r] + round < rack_start[r + 1])
				out[m++] = sorted[rack_start[r] + round];
	return racks;
}

int placement_assign(const struct placement_broker *brokers, int n, int32_t n_parts, int rf, int32_t first_partition,
		     int32_t *out)
{
	if (rf < 1 || rf > n || n > PLACEMENT_BROKERS_MAX || n_parts < 0 || first_partition < 0)
		return -EINVAL;
	struct placement_broker list[PLACEMENT_BROKERS_MAX];
	bool any_rack = false;
	for (int i = 0; i < n; i++)
		any_rack |= brokers[i].rack[0] != '\0';
	int racks = 1;
	if (any_rack) {
		racks = rack_alternated(brokers, n, list);
	} else {
		memcpy(list, brokers, sizeof(*brokers) * (size_t)n);
		qsort(list, (size_t)n, sizeof(*list), by_id);
	}
	for (int32_t p = 0; p < n_parts; p++) {
		int32_t *r = &out[(size_t)p * (size_t)rf];
		int lead = (int)((first_partition + p) % n);
		bool used[PLACEMENT_BROKERS_MAX] = { false };
		r[0] = list[lead].id;
		used[lead] = true;
		if (!any_rack) {
			for (int k = 1; k < rf; k++)
				r[k] = list[(lead + k) % n].id;
			continue;
		}
		/* Followers: walk on from the leader, new racks first. */
		const char *racks_used[PLACEMENT_BROKERS_MAX];
		int n_racks_used = 0;
		racks_used[n_racks_used++] = list[lead].rack;
		for (int k = 1; k < rf; k++) {
			int pick = -1;
			bool want_new_rack = n_racks_used < racks;
			for (int step = 1; step < n && pick < 0; step++) {
				int c = (lead + step) % n;
				if (used[c])
					continue;
				bool rack_used = false;
				for (int u = 0; u < n_racks_used; u++)
					rack_used |= !strcmp(racks_used[u], list[c].rack);
				if (want_new_rack && rack_used)
					continue;
				pick = c;
			}
			if (pick < 0) /* unreachable: rf <= n */
				return -EINVAL;
			used[pick] = true;
			r[k] = list[pick].id;
			bool seen = false;
			for (int u = 0; u < n_racks_used; u++)
				seen |= !strcmp(racks_used[u], list[pick].rack);
			if (!seen)
				racks_used[n_racks_used++] = list[pick].rack;
		}
	}
	return 0;
}
