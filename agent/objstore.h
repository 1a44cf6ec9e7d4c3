/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The fleet's and member clusters' objects, indexed, kept up to date one
 * change at a time (what the sources report), and what each change means
 * for the routes: the control plane recomputes only that.
 *
 *   fleet (origin NULL)   MseIngressConfig, Ingress, Service (LoadBalancer),
 *                         Secret (kubernetes.io/tls, for Ingress spec.tls)
 *   cluster (origin ID)   Service, Endpoints, EndpointSlice, Pod
 *
 * Every object is keyed by kind, namespace and name; when two files (or
 * sources) hold the same key, the first one added stays in force until it
 * goes (as the route computation's first-found rule had it).
 */
#ifndef FG_OBJSTORE_H
#define FG_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "routes.h"

/* What a set of changes asks of the control plane. */
struct fg_changes {
	bool any;
	bool full;          /* recompute every route: gateways, LoadBalancer
			     * Services, a cluster's Services, a cluster that
			     * gained its first or lost its last object */
	json_t *services;   /* "ns\x1fservice" -> true: their endpoints changed */
	json_t *pod_ns;     /* namespace -> true: pods changed (subsets) */
	json_t *ingresses;  /* "ns/name" -> [old or null, new or null] */
	bool tls;           /* fleet Secrets changed: Ingress TLS (tls_config.h) */
};

void fg_changes_init(struct fg_changes *ch);
void fg_changes_reset(struct fg_changes *ch);
void fg_changes_fini(struct fg_changes *ch);

struct fg_objstore;

int fg_objstore_new(struct fg_objstore **out);
void fg_objstore_free(struct fg_objstore *s);

/* One object of origin went from old to new (either NULL: added,
 * removed); both borrowed (the store takes its own references). Records
 * what it means in ch. 0 or -ENOMEM. */
int fg_objstore_change(struct fg_objstore *s, const char *origin, json_t *old, json_t *new,
		       struct fg_changes *ch);
/* A whole source's objects at once (its first list, or a resync): what it
 * holds that objs (an array) does not is removed, the rest added. */

/* The snapshot route computation reads: arrays of every object (fleet, and
 * cluster id -> array), and the per-cluster indexes (fg_snapshot's
 * cluster_index). The arrays are rebuilt only when objects changed since
 * the last call. cluster_errors is left to the caller. */
int fg_objstore_snapshot(struct fg_objstore *s, struct fg_snapshot *snap);
/* Objects held (duplicates included). */
size_t fg_objstore_count(const struct fg_objstore *s);
/* A fleet object by kind, namespace and name (the first one of the key),
 * borrowed; NULL when there is none. */
json_t *fg_objstore_fleet_find(const struct fg_objstore *s, const char *kind, const char *ns,
			       const char *name);
/* The index of one cluster, NULL when it has no object. */
const struct fg_cindex *fg_objstore_cluster(const struct fg_objstore *s, const char *cid);

/* Ingresses whose only differences are in annotations that a route holds
 * on its own (canary match and weight, proxy-next-upstream): their routes
 * can be patched without recomputing anything else. */
bool fg_ingress_route_local_change(json_t *old, json_t *new);

#endif
