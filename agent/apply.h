/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Writes a plan (routes.h) into the data plane's maps, keeping ids stable
 * across plans: a cluster keeps its index, a target its service id and an
 * endpoint its backend id (one per endpoint, shared by the targets that
 * use it) for as long as they exist, so conntrack entries stay valid and
 * health state survives a configuration change. Only what differs from
 * the last apply is written; what a new plan no longer has is removed
 * (backends deactivated, rings deleted).
 */
#ifndef FG_APPLY_H
#define FG_APPLY_H

#include "dataplane.h"
#include "routes.h"

struct fg_applier;

struct fg_applier_opts {
	int listen_family;        /* FG_AF_INET / FG_AF_INET6, 0: no listener */
	struct fg_addr listen_addr;
	__u16 listen_port;        /* the HTTP (L7) listener, host order */
};

int fg_applier_new(struct fg_applier **out, struct fg_dataplane *dp,
		   const struct fg_applier_opts *opts);
void fg_applier_free(struct fg_applier *a);
int fg_applier_apply(struct fg_applier *a, const struct fg_plan *plan);
/* Only these targets of the plan changed (fg_plan_refresh): written as
 * fg_applier_apply would, nothing else looked at. -ENOENT when one was
 * never applied (apply the whole plan instead). */
int fg_applier_apply_targets(struct fg_applier *a, struct fg_target *const *targets, size_t n);

/*
 * What of the plan the maps have room for: Ingresses (oldest first) and
 * LoadBalancer Services whose targets or endpoints would not fit in the
 * services, backends or rings maps go into out ("ns/name" or "Service
 * ns/name" -> "not programmed: the backends map is full (N endpoints;
 * raise --max-backends)"). Returns how many, or -errno. Nothing is
 * written.
 */
int fg_applier_fit(struct fg_applier *a, const struct fg_plan *plan, json_t *out);

/* What the last apply did. */
struct fg_apply_stats {
	__u64 targets_written;    /* changed or new targets */
	__u64 targets_unchanged;  /* skipped: written from the same inputs */
	__u64 targets_removed;
	__u64 backends_written;
	__u64 backends_removed;
	__u64 services_rebuilt;   /* ring rebuilds asked (unchanged rings skip) */
};
const struct fg_apply_stats *fg_applier_stats(const struct fg_applier *a);
/* The service id a target was given by the last apply, or -ENOENT. */
int fg_applier_service_id(struct fg_applier *a, const struct fg_target *t);
/* The cluster index of a cluster id, or -ENOENT. */
int fg_applier_cluster_idx(struct fg_applier *a, const char *cluster);
/* Cluster index -> cluster id, or NULL. */
const char *fg_applier_cluster_name(struct fg_applier *a, __u32 idx);

#endif
