/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Two-level backend selection: the service's cluster ring picks a cluster
 * (weighted by the route's cluster shares), then that (service, cluster)'s
 * Maglev ring picks a backend; both are hashed on the 5-tuple with their own
 * seed, modulo the ring's own size (rings live in one slab, see the rings
 * map). Attempt 0 uses the canonical seeds, so the agent and the tests can
 * predict the choice; when the chosen cluster or backend is down the next
 * attempts rehash with other seeds (the agent also rebuilds the rings
 * without it, this only covers the moment in between).
 */
#ifndef FG_BPF_LB_H
#define FG_BPF_LB_H

#include "common.h"
#include "fleetgate_hash.h"
#include "maps.bpf.h"

struct fg_choice {
	__u32 backend_id;
	__u32 cluster_idx;
	struct fg_backend *backend;
};

static __always_inline bool cluster_is_up(__u32 cluster_idx)
{
	struct fg_cluster *cl = bpf_map_lookup_elem(&clusters, &cluster_idx);

	return cl && (cl->flags & FG_CLUSTER_F_UP);
}

static __always_inline bool backend_is_up(const struct fg_backend *be)
{
	return (be->flags & (FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP)) ==
	       (FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP);
}

/* The slot of ring key that hash falls on, NULL when there is no such
 * ring (or it is empty). */
static __always_inline __u32 *ring_slot(void *slab, const struct fg_ring_key *key, __u32 hash)
{
	struct fg_ring *r = bpf_map_lookup_elem(&rings, key);
	__u32 idx;

	if (!r || !r->size)
		return NULL;
	idx = r->offset + hash % r->size;
	return bpf_map_lookup_elem(slab, &idx);
}

static __always_inline int lb_select(__u32 service_id, const struct fg_flow *flow,
				     struct fg_choice *out)
{
	struct fg_ring_key ckey = { .service_id = service_id, .cluster_idx = FG_RING_CLUSTERS };
	struct fg_ring_key rkey = { .service_id = service_id };
	__u32 zero = 0, *val;
	void *slab;
	int i;

	slab = bpf_map_lookup_elem(&ring_slots, &zero);
	if (!slab)
		return -1;

#pragma unroll
	for (i = 0; i < FG_SELECT_TRIES; i++) {
		struct fg_backend *be;

		val = ring_slot(slab, &ckey, fg_flow_hash(flow, FG_SEED_CLUSTER + i));
		if (!val || *val == FG_NONE)
			continue;
		rkey.cluster_idx = *val;
		if (!cluster_is_up(rkey.cluster_idx))
			continue;
		val = ring_slot(slab, &rkey, fg_flow_hash(flow, FG_SEED_BACKEND + i));
		if (!val || *val == FG_NONE)
			continue;
		be = bpf_map_lookup_elem(&backends, val);
		if (!be || !backend_is_up(be))
			continue;
		out->backend_id = *val;
		out->cluster_idx = rkey.cluster_idx;
		out->backend = be;
		return 0;
	}
	return -1;
}

#endif
