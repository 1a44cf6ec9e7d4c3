// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "apply.h"
#include "fleetgate_hash.h"
#include "log.h"

/* Slot 0 of services is the L7 listener's own (allowlist, counters). */
#define L7_SERVICE_ID 0

struct fg_applier {
	struct fg_dataplane *dp;
	struct fg_applier_opts opts;
	/* string -> id dictionaries (jansson objects of integers) */
	json_t *cluster_ids;  /* cluster id -> index */
	json_t *service_ids;  /* target key -> service id */
	json_t *backend_ids;  /* "sid|cluster|addr|port" -> backend id */
	json_t *listener_ids; /* "addr|port|proto" -> stats idx */
	json_t *adopted_services; /* services map name -> id, from a previous agent */
	bool used_clusters[FG_MAX_CLUSTERS];
	bool used_services[FG_MAX_SERVICES];
	bool used_backends[FG_MAX_BACKENDS];
	bool used_stats[FG_MAX_LISTENERS];
	char cluster_names[FG_MAX_CLUSTERS][FG_NAME_LEN];
};

/* The name a target's service gets in the services map: its key, or for a
 * long key a prefix and a hash, so a restarted agent can find it again. */
static void service_name(const char *key, char *buf)
{
	size_t n = strlen(key);

	if (n < FG_NAME_LEN) {
		memcpy(buf, key, n + 1);
		return;
	}
	snprintf(buf, FG_NAME_LEN, "%.54s#%08x", key, fg_bytes_hash(key, n, 0));
}

/* A restarted agent (pins kept) takes over the ids the maps hold, so
 * conntrack entries keep pointing at the same backends. */
static void adopt(struct fg_applier *a)
{
	const struct fg_maps *maps = fg_dp_maps(a->dp);
	struct fg_listener_key lk, next;
	struct fg_listener lv;
	struct fg_cluster cl;
	struct fg_service svc;
	struct fg_backend be;
	char key[160], abuf[64];
	void *prev = NULL;
	__u32 i;

	for (i = 0; i < FG_MAX_CLUSTERS; i++) {
		if (bpf_map_lookup_elem(maps->clusters, &i, &cl) || !(cl.flags & FG_CLUSTER_F_ACTIVE))
			continue;
		cl.name[FG_NAME_LEN - 1] = '\0';
		json_object_set_new(a->cluster_ids, cl.name, json_integer(i));
		snprintf(a->cluster_names[i], FG_NAME_LEN, "%s", cl.name);
		a->used_clusters[i] = true;
	}
	for (i = 1; i < FG_MAX_SERVICES; i++) {
		if (bpf_map_lookup_elem(maps->services, &i, &svc) ||
		    !(svc.flags & FG_SERVICE_F_ACTIVE))
			continue;
		svc.name[FG_NAME_LEN - 1] = '\0';
		json_object_set_new(a->adopted_services, svc.name, json_integer(i));
		a->used_services[i] = true;
	}
	for (i = 1; i < FG_MAX_BACKENDS; i++) {
		if (bpf_map_lookup_elem(maps->backends, &i, &be) || !(be.flags & FG_BACKEND_F_ACTIVE))
			continue;
		fg_addr_str(&be.addr, be.family, abuf, sizeof(abuf));
		snprintf(key, sizeof(key), "%u|%u|%s|%u", be.service_id, be.cluster_idx, abuf,
			 ntohs(be.port));
		json_object_set_new(a->backend_ids, key, json_integer(i));
		a->used_backends[i] = true;
	}
	while (!bpf_map_get_next_key(maps->listeners, prev, &next)) {
		lk = next;
		prev = &lk;
		if (bpf_map_lookup_elem(maps->listeners, &lk, &lv))
			continue;
		fg_addr_str(&lk.vip, lk.family, abuf, sizeof(abuf));
		snprintf(key, sizeof(key), "%s|%u|%u", abuf, ntohs(lk.port), lk.proto);
		json_object_set_new(a->listener_ids, key, json_integer(lv.stats_idx));
		a->used_stats[lv.stats_idx] = true;
	}
}

int fg_applier_new(struct fg_applier **out, struct fg_dataplane *dp,
		   const struct fg_applier_opts *opts)
{
	struct fg_applier *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->dp = dp;
	a->opts = *opts;
	a->cluster_ids = json_object();
	a->service_ids = json_object();
	a->backend_ids = json_object();
	a->listener_ids = json_object();
	a->adopted_services = json_object();
	if (!a->cluster_ids || !a->service_ids || !a->backend_ids || !a->listener_ids ||
	    !a->adopted_services) {
		fg_applier_free(a);
		return -ENOMEM;
	}
	a->used_services[L7_SERVICE_ID] = true;
	adopt(a);
	*out = a;
	return 0;
}

void fg_applier_free(struct fg_applier *a)
{
	if (!a)
		return;
	json_decref(a->cluster_ids);
	json_decref(a->service_ids);
	json_decref(a->backend_ids);
	json_decref(a->listener_ids);
	json_decref(a->adopted_services);
	free(a);
}

/* Looks key up in dict; allocates the first free id of used[] when absent.
 * The new dictionary of this apply (next) gets the mapping either way. */
static int id_for(json_t *dict, json_t *next, const char *key, bool *used, int max, int first)
{
	json_t *v = json_object_get(dict, key);
	int id;

	if (json_is_integer(v)) {
		id = (int)json_integer_value(v);
	} else {
		for (id = first; id < max && used[id]; id++)
			;
		if (id == max)
			return -ENOSPC;
		used[id] = true;
	}
	if (json_object_set_new(next, key, json_integer(id)))
		return -ENOMEM;
	return id;
}

/* Ids in dict but not in next are freed; calls release for each. */
static void release_stale(json_t *dict, json_t *next, bool *used,
			  void (*release)(struct fg_applier *, int, const char *), struct fg_applier *a)
{
	const char *key;
	json_t *v;

	json_object_foreach(dict, key, v) {
		int id = (int)json_integer_value(v);

		if (json_object_get(next, key))
			continue;
		if (release)
			release(a, id, key);
		used[id] = false;
	}
}

static void release_backend(struct fg_applier *a, int id, const char *key)
{
	int err = fg_dp_del_backend(a->dp, id);

	if (err)
		pr_warn("apply: cannot remove backend %d (%s): %s\n", id, key, strerror(-err));
}

static void release_service(struct fg_applier *a, int id, const char *key)
{
	__u32 c;
	int err;

	for (c = 0; c < FG_MAX_CLUSTERS; c++)
		fg_dp_del_backend_ring(a->dp, id, c);
	err = fg_dp_del_service(a->dp, id);
	if (err)
		pr_warn("apply: cannot remove service %d (%s): %s\n", id, key, strerror(-err));
}

static void release_cluster(struct fg_applier *a, int id, const char *key)
{
	struct fg_cluster none = {};
	__u32 idx = id;

	bpf_map_update_elem(fg_dp_maps(a->dp)->clusters, &idx, &none, BPF_ANY);
	a->cluster_names[id][0] = '\0';
}

static int apply_clusters(struct fg_applier *a, const struct fg_plan *plan, json_t *next)
{
	size_t i;
	int idx, err;

	for (i = 0; i < plan->n_clusters; i++) {
		idx = id_for(a->cluster_ids, next, plan->clusters[i], a->used_clusters,
			     FG_MAX_CLUSTERS, 0);
		if (idx < 0)
			return idx;
		snprintf(a->cluster_names[idx], FG_NAME_LEN, "%s", plan->clusters[i]);
		err = fg_dp_set_cluster(a->dp, idx, plan->clusters[i], true);
		if (err)
			return err;
	}
	return 0;
}

/* Writes one endpoint as a backend of service sid, keeping its health. */
static int apply_endpoint(struct fg_applier *a, json_t *next, int sid, int cidx,
			  const struct fg_endpoint *ep, __u8 proto, bool http)
{
	const struct fg_maps *maps = fg_dp_maps(a->dp);
	struct fg_backend be = {}, old;
	char key[160], abuf[64];
	__u32 bid;
	int id;

	fg_addr_str(&ep->addr, ep->family, abuf, sizeof(abuf));
	snprintf(key, sizeof(key), "%d|%d|%s|%u", sid, cidx, abuf, ep->port);
	id = id_for(a->backend_ids, next, key, a->used_backends, FG_MAX_BACKENDS, 1);
	if (id < 0)
		return id;
	bid = id;
	be.addr = ep->addr;
	be.port = htons(ep->port);
	be.family = ep->family;
	be.service_id = sid;
	be.cluster_idx = cidx;
	be.weight = 1;
	be.flags = FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP;
	if (proto == FG_PROTO_TCP)
		be.flags |= FG_BACKEND_F_PROBE_TCP;
	if (http)
		be.flags |= FG_BACKEND_F_PROBE_HTTP;
	/* A backend the health checker marked down stays down until it
	 * passes its probes again. */
	if (!bpf_map_lookup_elem(maps->backends, &bid, &old) && (old.flags & FG_BACKEND_F_ACTIVE) &&
	    old.service_id == be.service_id && !memcmp(&old.addr, &be.addr, sizeof(be.addr)) &&
	    old.port == be.port && !(old.flags & FG_BACKEND_F_UP))
		be.flags &= ~FG_BACKEND_F_UP;
	return fg_dp_set_backend(a->dp, bid, &be);
}

static int apply_target(struct fg_applier *a, const struct fg_target *t, __u8 proto, bool http,
			json_t *next_services, json_t *next_backends)
{
	__u32 weights[FG_MAX_CLUSTERS] = {};
	__u8 tiers[FG_MAX_CLUSTERS] = {};
	size_t i, j;
	int sid, err;

	char name[FG_NAME_LEN];
	json_t *adopted;

	if (json_object_get(next_services, t->key))
		return 0; /* shared by several routes: done already */
	service_name(t->key, name);
	adopted = json_object_get(a->adopted_services, name);
	if (adopted && !json_object_get(a->service_ids, t->key)) {
		json_object_set(a->service_ids, t->key, adopted);
		json_object_del(a->adopted_services, name);
	}
	sid = id_for(a->service_ids, next_services, t->key, a->used_services, FG_MAX_SERVICES, 1);
	if (sid < 0)
		return sid;
	err = fg_dp_set_service(a->dp, sid, name);
	if (err)
		return err;
	for (i = 0; i < t->n_clusters; i++) {
		const struct fg_target_cluster *tc = &t->clusters[i];
		json_t *v = json_object_get(a->cluster_ids, tc->cluster);
		int cidx;

		if (!json_is_integer(v))
			continue;
		cidx = (int)json_integer_value(v);
		weights[cidx] = tc->weight;
		tiers[cidx] = tc->tier;
		for (j = 0; j < tc->n_eps; j++) {
			err = apply_endpoint(a, next_backends, sid, cidx, &tc->eps[j], proto, http);
			if (err)
				return err;
		}
	}
	err = fg_dp_set_cluster_weights(a->dp, sid, weights);
	if (!err)
		err = fg_dp_set_cluster_tiers(a->dp, sid, tiers);
	return err;
}

static int listener(struct fg_applier *a, json_t *next, __u16 port, __u8 proto, __u8 kind,
		    int sid, struct fg_listener_key *key)
{
	struct fg_listener val = { .service_id = sid, .kind = kind };
	char k[96], abuf[64];
	int idx;

	memset(key, 0, sizeof(*key));
	key->vip = a->opts.listen_addr;
	key->port = htons(port);
	key->proto = proto;
	key->family = a->opts.listen_family;
	fg_addr_str(&a->opts.listen_addr, a->opts.listen_family, abuf, sizeof(abuf));
	snprintf(k, sizeof(k), "%s|%u|%u", abuf, port, proto);
	idx = id_for(a->listener_ids, next, k, a->used_stats, FG_MAX_LISTENERS, 0);
	if (idx < 0)
		return idx;
	val.stats_idx = idx;
	return fg_dp_set_listener(a->dp, key, &val);
}

static void remove_stale_listeners(struct fg_applier *a, json_t *next)
{
	const char *k;
	json_t *v;

	json_object_foreach(a->listener_ids, k, v) {
		struct fg_listener_key key = {};
		char abuf[64];
		unsigned int port, proto;
		int family;

		if (json_object_get(next, k))
			continue;
		if (sscanf(k, "%63[^|]|%u|%u", abuf, &port, &proto) != 3 ||
		    fg_addr_parse(abuf, &key.vip, &family))
			continue;
		key.port = htons(port);
		key.proto = proto;
		key.family = family;
		fg_dp_del_listener(a->dp, &key);
		a->used_stats[json_integer_value(v)] = false;
	}
}

static int rebuild_all(struct fg_applier *a, json_t *services, json_t *next_backends)
{
	size_t n = 0, cap = json_object_size(services);
	__u32 *ids = calloc(cap ? cap : 1, sizeof(*ids));
	bool *leaving = calloc(FG_MAX_BACKENDS, sizeof(*leaving));
	const char *key;
	json_t *v;
	int err;

	if (!ids || !leaving) {
		free(ids);
		free(leaving);
		return -ENOMEM;
	}
	json_object_foreach(services, key, v)
		ids[n++] = json_integer_value(v);
	json_object_foreach(a->backend_ids, key, v)
		if (!json_object_get(next_backends, key))
			leaving[json_integer_value(v)] = true;
	err = fg_dp_rebuild_services_without(a->dp, ids, n, leaving);
	free(leaving);
	if (err)
		pr_warn("apply: cannot rebuild the rings: %s\n", strerror(-err));
	free(ids);
	return err;
}

int fg_applier_apply(struct fg_applier *a, const struct fg_plan *plan)
{
	json_t *next_clusters = json_object(), *next_services = json_object();
	json_t *next_backends = json_object(), *next_listeners = json_object();
	struct fg_listener_key lkey;
	size_t i, j;
	int err;

	if (!next_clusters || !next_services || !next_backends || !next_listeners) {
		err = -ENOMEM;
		goto out;
	}
	err = apply_clusters(a, plan, next_clusters);
	if (err)
		goto out;
	/* Clusters no longer attached must not be used by any ring. */
	{
		json_t *swap = a->cluster_ids;

		release_stale(a->cluster_ids, next_clusters, a->used_clusters, release_cluster, a);
		a->cluster_ids = next_clusters;
		next_clusters = swap;
	}
	for (i = 0; i < plan->n_routes && !err; i++) {
		const struct fg_route *r = &plan->routes[i];

		err = apply_target(a, r->target, FG_PROTO_TCP, true, next_services, next_backends);
		for (j = 0; j < r->n_canaries && !err; j++)
			err = apply_target(a, r->canaries[j].target, FG_PROTO_TCP, true,
					   next_services, next_backends);
	}
	for (i = 0; i < plan->n_l4 && !err; i++)
		err = apply_target(a, plan->l4[i].target, plan->l4[i].proto, false, next_services,
				   next_backends);
	if (err)
		goto out;

	/* The rings come once every backend they reference is written, and
	 * without the endpoints that are gone; those are removed after. */
	err = rebuild_all(a, next_services, next_backends);
	if (err)
		goto out;
	release_stale(a->backend_ids, next_backends, a->used_backends, release_backend, a);
	json_decref(a->backend_ids);
	a->backend_ids = next_backends;
	next_backends = NULL;
	if (a->opts.listen_family) {
		for (i = 0; i < plan->n_l4 && !err; i++) {
			int sid = fg_applier_service_id(a, plan->l4[i].target);
			json_t *v = json_object_get(next_services, plan->l4[i].target->key);

			sid = json_is_integer(v) ? (int)json_integer_value(v) : sid;
			if (plan->l4[i].port == a->opts.listen_port &&
			    plan->l4[i].proto == FG_PROTO_TCP) {
				pr_warn("apply: Service %s/%s port %u clashes with the HTTP listener; ignored\n",
					plan->l4[i].ns, plan->l4[i].name, plan->l4[i].port);
				continue;
			}
			err = listener(a, next_listeners, plan->l4[i].port, plan->l4[i].proto,
				       FG_LISTENER_L4, sid, &lkey);
		}
		if (!err && a->opts.listen_port)
			err = listener(a, next_listeners, a->opts.listen_port, FG_PROTO_TCP,
				       FG_LISTENER_L7, L7_SERVICE_ID, &lkey);
		if (err)
			goto out;
	}
	remove_stale_listeners(a, next_listeners);
	release_stale(a->service_ids, next_services, a->used_services, release_service, a);
	/* Services a previous agent left that this plan does not have. */
	release_stale(a->adopted_services, next_services, a->used_services, release_service, a);
	json_object_clear(a->adopted_services);
	json_decref(a->service_ids);
	json_decref(a->listener_ids);
	a->service_ids = next_services;
	a->listener_ids = next_listeners;
	next_services = next_listeners = NULL;
out:
	json_decref(next_clusters);
	json_decref(next_services);
	json_decref(next_backends);
	json_decref(next_listeners);
	return err;
}

int fg_applier_service_id(struct fg_applier *a, const struct fg_target *t)
{
	json_t *v = json_object_get(a->service_ids, t->key);

	return json_is_integer(v) ? (int)json_integer_value(v) : -ENOENT;
}

int fg_applier_cluster_idx(struct fg_applier *a, const char *cluster)
{
	json_t *v = json_object_get(a->cluster_ids, cluster);

	return json_is_integer(v) ? (int)json_integer_value(v) : -ENOENT;
}

const char *fg_applier_cluster_name(struct fg_applier *a, __u32 idx)
{
	if (idx >= FG_MAX_CLUSTERS || !a->cluster_names[idx][0])
		return NULL;
	return a->cluster_names[idx];
}
