// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Plan -> maps, writing only what differs from what is there.
 *
 * Ids: a cluster keeps its index, a target (route target, canary target,
 * L4 Service) its service id and an endpoint its backend id for as long as
 * they exist, so conntrack entries stay valid and health state survives a
 * configuration change. A backend is an endpoint of a cluster, shared by
 * every target that uses it (a reference count per backend), so a Service
 * used by a route and its canary costs its endpoints once.
 *
 * Per target a signature of what it was written from (shares, tiers, the
 * members of each cluster) skips an unchanged target entirely; per backend
 * the probe flags written skip an unchanged endpoint. A plan that changes
 * one endpoint writes that backend, one member list and the rings it
 * touches: O(1) map writes whatever the size of the fleet.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "apply.h"
#include "fleetgate_hash.h"
#include "hmap.h"
#include "log.h"

/* Slot 0 of services is the L7 listener's own (allowlist, counters). */
#define L7_SERVICE_ID 0

/* An endpoint: what a backend id stands for. */
struct ep_key {
	__u32 cidx;
	__u8 family;
	__u8 pad;
	__be16 port;
	struct fg_addr addr;
};

struct svc_rec {
	char *key;          /* the target's key */
	__u64 sig;          /* of what was written for it (0: nothing yet) */
	__u32 *ids;         /* its backends, sorted (references held) */
	__u32 n_ids;
	__u8 proto;
	bool http;
	bool seen;          /* in the plan being applied */
};

struct be_rec {
	__u32 refs;         /* targets holding it */
	__u32 refs_tcp;     /* ... that are TCP (probed with connects) */
	__u32 refs_http;    /* ... that are HTTP routes */
	__u8 flags;         /* probe flags written */
	bool live;          /* written and not removed */
};

struct fg_applier {
	struct fg_dataplane *dp;
	struct fg_applier_opts opts;
	__u32 max_services, max_backends;
	json_t *cluster_ids;  /* cluster id -> index */
	json_t *listener_ids; /* "addr|port|proto" -> stats idx */
	bool used_clusters[FG_MAX_CLUSTERS];
	bool used_stats[FG_MAX_LISTENERS];
	bool adopted;  /* backends came from a previous agent: swept once */
	char cluster_names[FG_MAX_CLUSTERS][FG_NAME_LEN];

	struct fg_hmap svc_by_hash;  /* hash of a target key -> service id */
	struct svc_rec **svcs;       /* by service id */
	__u32 svc_next;              /* never used ids start here */
	__u32 *svc_free;             /* released ids, reused oldest first */
	size_t n_svc_free, cap_svc_free, svc_free_head;

	/* service id -> signature of the source allowlist written for it
	 * (LoadBalancer Services' loadBalancerSourceRanges); absent: none. */
	struct fg_hmap allow_sig;
	bool allow_swept;            /* a previous agent's ranges were looked for */
	struct fg_hidx be_by_ep;     /* struct ep_key -> backend id (keys: be_keys) */
	struct ep_key *be_keys;      /* by backend id */
	struct be_rec *bes;          /* by backend id */
	__u32 be_next;
	__u32 *be_free;
	size_t n_be_free, cap_be_free, be_free_head;

	/* Filled during an apply. */
	__u32 *dirty;                /* services to rebuild */
	size_t n_dirty, cap_dirty;
	__u32 *to_free;              /* backends that lost their last reference */
	size_t n_to_free, cap_to_free;
	__u32 *wr_ids;               /* backends to write, in one batch */
	struct fg_backend *wr_vals;
	size_t n_wr, cap_wr;
	struct fg_apply_stats st;
};

/* ---------- small helpers ---------- */

static int push_u32(__u32 **arr, size_t *n, size_t *cap, __u32 v)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		__u32 *a = realloc(*arr, nc * sizeof(*a));

		if (!a)
			return -ENOMEM;
		*arr = a;
		*cap = nc;
	}
	(*arr)[(*n)++] = v;
	return 0;
}

static __u64 key_hash(const char *key)
{
	size_t n = strlen(key);

	return (__u64)fg_bytes_hash(key, n, 0x1234567u) << 32 | fg_bytes_hash(key, n, 0x89abcdefu);
}

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

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/* ---------- id allocation ---------- */

/* A fresh id first; released ones only when none is left, oldest first,
 * so an id comes back as late as possible. */
static int take_id(__u32 *next, __u32 max, __u32 *freed, size_t *n_freed, size_t *head)
{
	if (*next < max)
		return (int)(*next)++;
	if (*head < *n_freed)
		return (int)freed[(*head)++];
	return -ENOSPC;
}

static int give_id(__u32 **freed, size_t *n, size_t *cap, size_t *head, __u32 id)
{
	/* Compact what was taken before growing. */
	if (*n == *cap && *head) {
		memmove(*freed, *freed + *head, (*n - *head) * sizeof(**freed));
		*n -= *head;
		*head = 0;
	}
	return push_u32(freed, n, cap, id);
}

/* The service id of a target key, or -ENOENT. */
static int svc_lookup(const struct fg_applier *a, const char *key)
{
	__u64 h = key_hash(key), *v;

	/* Another key with the same hash moves to the next hash value. */
	while ((v = fg_hmap_get(&a->svc_by_hash, &h))) {
		if (!strcmp(a->svcs[*v]->key, key))
			return (int)*v;
		h++;
	}
	return -ENOENT;
}

static int svc_bind(struct fg_applier *a, const char *key, __u32 sid)
{
	__u64 h = key_hash(key);
	struct svc_rec *r;

	while (fg_hmap_get(&a->svc_by_hash, &h))
		h++;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->key = strdup(key);
	if (!r->key || fg_hmap_put(&a->svc_by_hash, &h, sid)) {
		free(r->key);
		free(r);
		return -ENOMEM;
	}
	a->svcs[sid] = r;
	return 0;
}

static void svc_unbind(struct fg_applier *a, __u32 sid)
{
	struct svc_rec *r = a->svcs[sid];
	__u64 h;

	if (!r)
		return;
	for (h = key_hash(r->key);; h++) {
		__u64 *v = fg_hmap_get(&a->svc_by_hash, &h);

		if (!v)
			break;
		if (*v == sid) {
			fg_hmap_del(&a->svc_by_hash, &h);
			break;
		}
	}
	free(r->key);
	free(r->ids);
	free(r);
	a->svcs[sid] = NULL;
}

static void ep_key_of(struct ep_key *k, __u32 cidx, const struct fg_endpoint *ep)
{
	memset(k, 0, sizeof(*k));
	k->cidx = cidx;
	k->family = (__u8)ep->family;
	k->port = htons(ep->port);
	k->addr = ep->addr;
}

/* The backend id of an endpoint, allocated when new. */
static int backend_for(struct fg_applier *a, const struct ep_key *k)
{
	long long found = fg_hidx_get(&a->be_by_ep, a->be_keys, k);
	int id;

	if (found >= 0)
		return (int)found;
	id = take_id(&a->be_next, a->max_backends, a->be_free, &a->n_be_free, &a->be_free_head);
	if (id < 0) {
		pr_warn("apply: the backends map is full (%u endpoints, --max-backends)\n",
			a->max_backends);
		return id;
	}
	a->be_keys[id] = *k;
	if (fg_hidx_put(&a->be_by_ep, a->be_keys, (__u32)id)) {
		memset(&a->be_keys[id], 0, sizeof(a->be_keys[id]));
		give_id(&a->be_free, &a->n_be_free, &a->cap_be_free, &a->be_free_head, id);
		return -ENOMEM;
	}
	memset(&a->bes[id], 0, sizeof(a->bes[id]));
	return id;
}

/* ---------- set-up and adoption ---------- */

/* A restarted agent (pins kept) takes over the ids the maps hold, so
 * conntrack entries keep pointing at the same backends. */
/* A backend as the data plane holds it: from its mirror without a
 * system call where it has one. */
static int backend_now(struct fg_applier *a, __u32 id, struct fg_backend *be)
{
	if (!fg_dp_backend_view(a->dp, id, be))
		return 0;
	return bpf_map_lookup_elem(fg_dp_maps(a->dp)->backends, &id, be) ? -errno : 0;
}

#define READ_CHUNK 65536

/* The backends map read in order, a chunk per system call: a lookup per
 * id was 1,048,576 system calls before the first plan. */
struct backend_reader {
	struct fg_backend *vals;
	__u32 *keys;
	__u32 first, n; /* ids [first, first + n) are in vals */
};

static int backend_read(struct fg_applier *a, struct backend_reader *rd, __u32 id,
			struct fg_backend *be)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	int fd = fg_dp_maps(a->dp)->backends;
	__u32 in = id - 1, next, count;

	if (rd->vals && id >= rd->first && id - rd->first < rd->n) {
		*be = rd->vals[id - rd->first];
		return 0;
	}
	if (!rd->vals) {
		rd->vals = malloc(READ_CHUNK * sizeof(*rd->vals));
		rd->keys = malloc(READ_CHUNK * sizeof(*rd->keys));
	}
	count = a->max_backends - id < READ_CHUNK ? a->max_backends - id : READ_CHUNK;
	rd->n = 0;
	/* An array's batch resumes after in: ids id .. id + count - 1. */
	if (!rd->vals || !rd->keys ||
	    bpf_map_lookup_batch(fd, id ? &in : NULL, &next, rd->keys, rd->vals, &count, &bopts) ||
	    !count || rd->keys[0] != id)
		return bpf_map_lookup_elem(fd, &id, be) ? -errno : 0;
	rd->first = id;
	rd->n = count;
	*be = rd->vals[0];
	return 0;
}

static int adopt_maps(struct fg_applier *a, struct backend_reader *rd)
{
	const struct fg_maps *maps = fg_dp_maps(a->dp);
	struct fg_listener_key lk, next;
	struct fg_listener lv;
	struct fg_cluster cl;
	struct fg_service svc;
	struct fg_backend be;
	char key[160], abuf[64];
	void *prev = NULL;
	__u32 i, high = 0;
	int err;

	for (i = 0; i < FG_MAX_CLUSTERS; i++) {
		if (bpf_map_lookup_elem(maps->clusters, &i, &cl) || !(cl.flags & FG_CLUSTER_F_ACTIVE))
			continue;
		cl.name[FG_NAME_LEN - 1] = '\0';
		json_object_set_new(a->cluster_ids, cl.name, json_integer(i));
		snprintf(a->cluster_names[i], FG_NAME_LEN, "%s", cl.name);
		a->used_clusters[i] = true;
	}
	/* Services by name: the plan's targets find theirs by service_name(). */
	for (i = 1; i < a->max_services; i++) {
		if (bpf_map_lookup_elem(maps->services, &i, &svc) ||
		    !(svc.flags & FG_SERVICE_F_ACTIVE))
			continue;
		svc.name[FG_NAME_LEN - 1] = '\0';
		err = svc_bind(a, svc.name, i);
		if (err)
			return err;
		a->svcs[i]->sig = 0;
		high = i + 1;
	}
	a->svc_next = high > 1 ? high : 1;
	for (i = 1; a->svc_next > 1 && i < a->svc_next; i++)
		if (!a->svcs[i] && give_id(&a->svc_free, &a->n_svc_free, &a->cap_svc_free,
					   &a->svc_free_head, i))
			return -ENOMEM;
	high = 0;
	for (i = 1; i < a->max_backends; i++) {
		struct ep_key k = {};

		if (backend_read(a, rd, i, &be) || !(be.flags & FG_BACKEND_F_ACTIVE))
			continue;
		k.cidx = be.cluster_idx;
		k.family = be.family;
		k.port = be.port;
		k.addr = be.addr;
		a->be_keys[i] = k;
		if (fg_hidx_put(&a->be_by_ep, a->be_keys, i))
			return -ENOMEM;
		a->bes[i].live = true;
		a->bes[i].flags = be.flags & (FG_BACKEND_F_PROBE_TCP | FG_BACKEND_F_PROBE_HTTP);
		a->adopted = true;
		high = i + 1;
	}
	a->be_next = high > 1 ? high : 1;
	for (i = 1; a->be_next > 1 && i < a->be_next; i++)
		if (!a->bes[i].live && give_id(&a->be_free, &a->n_be_free, &a->cap_be_free,
					       &a->be_free_head, i))
			return -ENOMEM;
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
	return 0;
}

static int adopt(struct fg_applier *a)
{
	struct backend_reader rd = {};
	int err = adopt_maps(a, &rd);

	free(rd.vals);
	free(rd.keys);
	return err;
}

int fg_applier_new(struct fg_applier **out, struct fg_dataplane *dp,
		   const struct fg_applier_opts *opts)
{
	struct fg_applier *a = calloc(1, sizeof(*a));
	int err;

	if (!a)
		return -ENOMEM;
	a->dp = dp;
	a->opts = *opts;
	a->max_services = fg_dp_max_services(dp);
	a->max_backends = fg_dp_max_backends(dp);
	fg_hmap_init(&a->svc_by_hash, sizeof(__u64));
	fg_hidx_init(&a->be_by_ep, sizeof(struct ep_key));
	fg_hmap_init(&a->allow_sig, sizeof(__u32));
	a->cluster_ids = json_object();
	a->listener_ids = json_object();
	/* By id; calloc'ed, so only the pages of ids in use are touched. */
	a->svcs = calloc(a->max_services, sizeof(*a->svcs));
	a->be_keys = calloc(a->max_backends, sizeof(*a->be_keys));
	a->bes = calloc(a->max_backends, sizeof(*a->bes));
	if (!a->cluster_ids || !a->listener_ids || !a->svcs || !a->be_keys || !a->bes) {
		fg_applier_free(a);
		return -ENOMEM;
	}
	a->svc_next = 1;
	a->be_next = 1;
	err = adopt(a);
	if (err) {
		fg_applier_free(a);
		return err;
	}
	*out = a;
	return 0;
}

void fg_applier_free(struct fg_applier *a)
{
	__u32 i;

	if (!a)
		return;
	for (i = 0; a->svcs && i < a->max_services; i++)
		if (a->svcs[i])
			svc_unbind(a, i);
	free(a->svcs);
	free(a->be_keys);
	free(a->bes);
	free(a->svc_free);
	free(a->be_free);
	free(a->dirty);
	free(a->to_free);
	free(a->wr_ids);
	free(a->wr_vals);
	fg_hmap_fini(&a->svc_by_hash);
	fg_hidx_fini(&a->be_by_ep);
	fg_hmap_fini(&a->allow_sig);
	json_decref(a->cluster_ids);
	json_decref(a->listener_ids);
	free(a);
}

/* ---------- clusters ---------- */

static int apply_clusters(struct fg_applier *a, const struct fg_plan *plan)
{
	json_t *next = json_object(), *v;
	const char *key;
	size_t i;
	int err = 0;

	if (!next)
		return -ENOMEM;
	for (i = 0; i < plan->n_clusters && !err; i++) {
		int idx;

		v = json_object_get(a->cluster_ids, plan->clusters[i]);
		if (json_is_integer(v)) {
			idx = (int)json_integer_value(v);
		} else {
			for (idx = 0; idx < FG_MAX_CLUSTERS && a->used_clusters[idx]; idx++)
				;
			if (idx == FG_MAX_CLUSTERS) {
				pr_warn("apply: more than %d clusters attached\n", FG_MAX_CLUSTERS);
				err = -ENOSPC;
				break;
			}
			a->used_clusters[idx] = true;
		}
		json_object_set_new(next, plan->clusters[i], json_integer(idx));
		snprintf(a->cluster_names[idx], FG_NAME_LEN, "%s", plan->clusters[i]);
		err = fg_dp_set_cluster(a->dp, idx, plan->clusters[i], true);
	}
	if (err) {
		json_decref(next);
		return err;
	}
	/* Clusters no longer attached: nothing may pick them. Their services
	 * lose those members below, and are rebuilt. */
	json_object_foreach(a->cluster_ids, key, v) {
		int idx = (int)json_integer_value(v);

		if (json_object_get(next, key))
			continue;
		fg_dp_set_cluster(a->dp, idx, NULL, false);
		a->used_clusters[idx] = false;
		a->cluster_names[idx][0] = '\0';
	}
	json_decref(a->cluster_ids);
	a->cluster_ids = next;
	return 0;
}

/* ---------- targets ---------- */

/* What a target is written from: shares, tiers and members per cluster. */
static __u64 target_sig(const __u32 *weights, const __u8 *tiers, const __u32 *ids,
			const __u32 *cidx_of, size_t n, __u8 proto, bool http)
{
	__u64 h = 1469598103934665603ULL ^ proto ^ ((__u64)http << 8);
	size_t i;

	for (i = 0; i < FG_MAX_CLUSTERS; i++)
		h = (h ^ weights[i] ^ ((__u64)tiers[i] << 32)) * 1099511628211ULL;
	for (i = 0; i < n; i++)
		h = (h ^ ids[i] ^ ((__u64)cidx_of[i] << 32)) * 1099511628211ULL;
	return h ? h : 1;
}

static void be_unref(struct fg_applier *a, __u32 id, __u8 proto, bool http)
{
	struct be_rec *b = &a->bes[id];

	if (!b->refs)
		return;
	b->refs--;
	if (proto == FG_PROTO_TCP && b->refs_tcp)
		b->refs_tcp--;
	if (http && b->refs_http)
		b->refs_http--;
	if (!b->refs)
		push_u32(&a->to_free, &a->n_to_free, &a->cap_to_free, id);
}

static void be_ref(struct fg_applier *a, __u32 id, __u8 proto, bool http)
{
	struct be_rec *b = &a->bes[id];

	b->refs++;
	if (proto == FG_PROTO_TCP)
		b->refs_tcp++;
	if (http)
		b->refs_http++;
}

/* Queues a backend whose probe flags changed, or a new one; its health
 * (FG_BACKEND_F_UP) is the prober's and is kept. */
static int queue_backend(struct fg_applier *a, __u32 id)
{
	const struct ep_key *k = &a->be_keys[id];
	struct be_rec *b = &a->bes[id];
	__u8 flags = (b->refs_tcp ? FG_BACKEND_F_PROBE_TCP : 0) |
		     (b->refs_http ? FG_BACKEND_F_PROBE_HTTP : 0);
	struct fg_backend be = {}, old;

	if (b->live && b->flags == flags)
		return 0;
	if (a->n_wr == a->cap_wr) {
		size_t nc = a->cap_wr ? a->cap_wr * 2 : 256;
		struct fg_backend *v = realloc(a->wr_vals, nc * sizeof(*v));
		__u32 *ids = v ? realloc(a->wr_ids, nc * sizeof(*ids)) : NULL;

		if (v)
			a->wr_vals = v;
		if (!ids)
			return -ENOMEM;
		a->wr_ids = ids;
		a->cap_wr = nc;
	}
	be.addr = k->addr;
	be.port = k->port;
	be.family = k->family;
	be.cluster_idx = k->cidx;
	be.weight = 1;
	be.flags = FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP | flags;
	/* The data plane's own copy: no lookup per backend. */
	if (b->live && !backend_now(a, id, &old) && (old.flags & FG_BACKEND_F_ACTIVE) &&
	    !(old.flags & FG_BACKEND_F_UP))
		be.flags &= ~FG_BACKEND_F_UP;
	a->wr_ids[a->n_wr] = id;
	a->wr_vals[a->n_wr++] = be;
	return 0;
}

/* The queued backends in one batch, before anything refers to them. */
static int flush_backends(struct fg_applier *a)
{
	size_t i;
	int err;

	if (!a->n_wr)
		return 0;
	err = fg_dp_set_backends(a->dp, a->wr_ids, a->wr_vals, a->n_wr);
	for (i = 0; !err && i < a->n_wr; i++) {
		struct be_rec *b = &a->bes[a->wr_ids[i]];

		b->live = true;
		b->flags = a->wr_vals[i].flags & (FG_BACKEND_F_PROBE_TCP | FG_BACKEND_F_PROBE_HTTP);
	}
	if (!err)
		a->st.backends_written += a->n_wr;
	a->n_wr = 0;
	return err;
}

/* One target: its service, shares and tiers, members per cluster. */
static int apply_target(struct fg_applier *a, const struct fg_target *t, __u8 proto, bool http)
{
	__u32 weights[FG_MAX_CLUSTERS] = {}, *ids = NULL, *cidx_of = NULL, *members = NULL;
	__u8 tiers[FG_MAX_CLUSTERS] = {};
	bool has_cluster[FG_MAX_CLUSTERS] = {};
	size_t n = 0, cap = 0, i, j;
	struct svc_rec *r;
	char name[FG_NAME_LEN];
	__u64 sig;
	int sid, err = 0;
	__u32 c;

	sid = svc_lookup(a, t->key);
	if (sid < 0) {
		/* A previous agent's service for this target goes by name. */
		service_name(t->key, name);
		sid = strcmp(name, t->key) ? svc_lookup(a, name) : -ENOENT;
		if (sid >= 0) {
			svc_unbind(a, sid);
			err = svc_bind(a, t->key, sid);
			if (err)
				return err;
		}
	}
	if (sid >= 0 && a->svcs[sid]->seen)
		return 0; /* shared by several routes: done already */
	if (sid < 0) {
		sid = take_id(&a->svc_next, a->max_services, a->svc_free, &a->n_svc_free,
			      &a->svc_free_head);
		if (sid < 0) {
			pr_warn("apply: the services map is full (%u targets, --max-services)\n",
				a->max_services);
			return sid;
		}
		err = svc_bind(a, t->key, sid);
		if (err)
			return err;
	}
	r = a->svcs[sid];
	r->seen = true;

	for (i = 0; i < t->n_clusters; i++) {
		const struct fg_target_cluster *tc = &t->clusters[i];
		json_t *v = json_object_get(a->cluster_ids, tc->cluster);

		if (!json_is_integer(v))
			continue;
		c = (__u32)json_integer_value(v);
		weights[c] = tc->weight;
		tiers[c] = tc->tier;
		has_cluster[c] = true;
		if (n + tc->n_eps > cap) {
			size_t nc = (n + tc->n_eps) * 2;
			__u32 *ni = realloc(ids, nc * sizeof(*ni));
			__u32 *nc2 = ni ? realloc(cidx_of, nc * sizeof(*nc2)) : NULL;

			if (!ni || !nc2) {
				free(ni ? ni : ids);
				free(cidx_of);
				return -ENOMEM;
			}
			ids = ni;
			cidx_of = nc2;
			cap = nc;
		}
		for (j = 0; j < tc->n_eps; j++) {
			struct ep_key k;
			int id;

			ep_key_of(&k, c, &tc->eps[j]);
			id = backend_for(a, &k);
			if (id < 0) {
				err = id;
				goto out;
			}
			ids[n] = id;
			cidx_of[n] = c;
			n++;
		}
	}
	sig = target_sig(weights, tiers, ids, cidx_of, n, proto, http);
	if (sig == r->sig && proto == r->proto && http == r->http) {
		a->st.targets_unchanged++;
		goto out;
	}
	a->st.targets_written++;
	/* References: new ones first, so a backend moving between targets
	 * never drops to zero on the way. */
	for (i = 0; i < n; i++)
		be_ref(a, ids[i], proto, http);
	for (i = 0; i < r->n_ids; i++)
		be_unref(a, r->ids[i], r->proto, r->http);
	for (i = 0; i < n && !err; i++)
		err = queue_backend(a, ids[i]);
	if (!err)
		err = flush_backends(a);
	if (err)
		goto out;
	service_name(t->key, name);
	if (!r->sig) {
		err = fg_dp_set_service(a->dp, sid, name);
		if (err)
			goto out;
	}
	err = fg_dp_set_cluster_weights(a->dp, sid, weights);
	if (!err)
		err = fg_dp_set_cluster_tiers(a->dp, sid, tiers);
	/* Members per cluster, including clusters it no longer has. */
	members = malloc((n ? n : 1) * sizeof(*members));
	if (!members) {
		err = -ENOMEM;
		goto out;
	}
	for (c = 0; c < FG_MAX_CLUSTERS && !err; c++) {
		size_t m = 0;

		for (i = 0; i < n; i++)
			if (cidx_of[i] == c)
				members[m++] = ids[i];
		if (m || !has_cluster[c])
			err = fg_dp_set_members(a->dp, sid, c, members, m);
		else
			err = fg_dp_set_members(a->dp, sid, c, NULL, 0);
	}
	if (err)
		goto out;
	/* Keep the ids, sorted, as the references this target holds. */
	free(r->ids);
	qsort(ids, n, sizeof(*ids), cmp_u32);
	r->ids = ids;
	r->n_ids = (__u32)n;
	ids = NULL;
	r->sig = sig;
	r->proto = proto;
	r->http = http;
	err = push_u32(&a->dirty, &a->n_dirty, &a->cap_dirty, sid);
out:
	free(ids);
	free(cidx_of);
	free(members);
	return err;
}

/* ---------- source allowlists (L4) ---------- */

/* include/fleetgate.h's key: service id, then the address, IPv4
 * v4-mapped, so one trie serves both families. */
static void allow_key(struct fg_allow_key *k, __u32 sid, const struct fg_cidr *c)
{
	memset(k, 0, sizeof(*k));
	k->service_id = htonl(sid);
	if (c->family == FG_AF_INET) {
		k->addr[10] = k->addr[11] = 0xff;
		memcpy(&k->addr[12], &c->addr.v4, 4);
		k->prefixlen = 32 + 96 + c->prefix;
	} else {
		memcpy(k->addr, c->addr.bytes, 16);
		k->prefixlen = 32 + c->prefix;
	}
}

static __u64 allow_signature(const struct fg_cidr *v, size_t n)
{
	__u32 h1 = (__u32)n, h2 = ~(__u32)n;
	size_t i;

	for (i = 0; i < n; i++) {
		__u8 b[18];

		memcpy(b, v[i].addr.bytes, 16);
		b[16] = v[i].family;
		b[17] = v[i].prefix;
		h1 = fg_bytes_hash(b, sizeof(b), h1);
		h2 = fg_bytes_hash(b, sizeof(b), h2 ^ 0x616c6c6fu);
	}
	return (__u64)h1 << 32 | h2;
}

/* Adds the ranges of service sid (before its listener says to check). */
static int allow_write(struct fg_applier *a, __u32 sid, const struct fg_cidr *v, size_t n)
{
	int fd = fg_dp_maps(a->dp)->allowlists;
	struct fg_allow_key k;
	__u8 one = 1;
	size_t i;

	for (i = 0; i < n; i++) {
		allow_key(&k, sid, &v[i]);
		if (bpf_map_update_elem(fd, &k, &one, BPF_ANY)) {
			int err = -errno;

			pr_warn("apply: cannot write source range %zu of service %u into the "
				"allowlist: %s\n", i, sid, strerror(-err));
			return err;
		}
	}
	return 0;
}

/* Removes service sid's ranges that are not in v (all with n == 0), once
 * its listener no longer needs them. */
static int allow_prune(struct fg_applier *a, __u32 sid, const struct fg_cidr *v, size_t n)
{
	int fd = fg_dp_maps(a->dp)->allowlists;
	struct fg_allow_key k, next, want;
	void *prev = NULL;
	size_t i;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		bool keep = false;

		k = next;
		prev = &k;
		if (ntohl(k.service_id) != sid)
			continue;
		for (i = 0; i < n && !keep; i++) {
			allow_key(&want, sid, &v[i]);
			keep = !memcmp(&want, &k, sizeof(k));
		}
		if (keep)
			continue;
		if (bpf_map_delete_elem(fd, &k) && errno != ENOENT) {
			int err = -errno;

			pr_warn("apply: cannot remove a source range of service %u from the "
				"allowlist: %s\n", sid, strerror(-err));
			return err;
		}
		prev = NULL; /* the walk starts again after a delete */
	}
	return 0;
}

/* Once, after the first plan's listeners are written: ranges a previous
 * agent left (--keep-pins) for services that have none now. */
static int allow_sweep(struct fg_applier *a)
{
	int fd = fg_dp_maps(a->dp)->allowlists;
	struct fg_allow_key k, next;
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		__u32 sid;

		k = next;
		prev = &k;
		sid = ntohl(k.service_id);
		if (sid == L7_SERVICE_ID || fg_hmap_get(&a->allow_sig, &sid))
			continue;
		if (bpf_map_delete_elem(fd, &k) && errno != ENOENT)
			return -errno;
		prev = NULL;
	}
	a->allow_swept = true;
	return 0;
}

/* ---------- listeners ---------- */

/* allow: the listener checks its service's allowlist (1) or not (0);
 * -1 keeps what the data plane has. */
static int listener(struct fg_applier *a, json_t *next, __u16 port, __u8 proto, __u8 kind,
		    int sid, int allow)
{
	struct fg_listener val = { .service_id = sid, .kind = kind,
				   .flags = allow > 0 ? FG_LISTENER_F_ALLOWLIST : 0 };
	struct fg_listener_key key = {};
	char k[96], abuf[64];
	json_t *v;
	int idx;

	key.vip = a->opts.listen_addr;
	key.port = htons(port);
	key.proto = proto;
	key.family = a->opts.listen_family;
	fg_addr_str(&a->opts.listen_addr, a->opts.listen_family, abuf, sizeof(abuf));
	snprintf(k, sizeof(k), "%s|%u|%u", abuf, port, proto);
	v = json_object_get(a->listener_ids, k);
	if (json_is_integer(v)) {
		idx = (int)json_integer_value(v);
	} else {
		for (idx = 0; idx < FG_MAX_LISTENERS && a->used_stats[idx]; idx++)
			;
		if (idx == FG_MAX_LISTENERS)
			return -ENOSPC;
		a->used_stats[idx] = true;
	}
	if (json_object_set_new(next, k, json_integer(idx)))
		return -ENOMEM;
	val.stats_idx = idx;
	{
		struct fg_listener cur;

		/* allow < 0: the allowlist flag is the data plane's, kept. */
		if (!bpf_map_lookup_elem(fg_dp_maps(a->dp)->listeners, &key, &cur) &&
		    cur.service_id == val.service_id && cur.kind == val.kind &&
		    cur.stats_idx == val.stats_idx &&
		    (allow < 0 || (cur.flags & FG_LISTENER_F_ALLOWLIST) == val.flags))
			return 0;
	}
	return fg_dp_set_listener(a->dp, &key, &val);
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

/* An L4 listener and its source allowlist: ranges added before the
 * listener checks them, removed after it stops (or needs fewer), so no
 * moment lets every source in or keeps an allowed one out. */
static int l4_listener(struct fg_applier *a, json_t *next, const struct fg_l4_port *lp, __u32 sid)
{
	__u64 sig = allow_signature(lp->allow, lp->n_allow), *cur = fg_hmap_get(&a->allow_sig, &sid);
	bool changed = cur ? *cur != sig : lp->n_allow > 0;
	int err = 0;

	if (changed)
		err = allow_write(a, sid, lp->allow, lp->n_allow);
	if (!err)
		err = listener(a, next, lp->port, lp->proto, FG_LISTENER_L4, (int)sid,
			       lp->n_allow > 0);
	if (err || !changed)
		return err;
	err = allow_prune(a, sid, lp->allow, lp->n_allow);
	if (err)
		return err;
	if (lp->n_allow)
		return fg_hmap_put(&a->allow_sig, &sid, sig);
	fg_hmap_del(&a->allow_sig, &sid);
	return 0;
}

static int apply_listeners(struct fg_applier *a, const struct fg_plan *plan)
{
	json_t *next = json_object();
	size_t i;
	int err = 0;

	if (!next)
		return -ENOMEM;
	if (a->opts.listen_family) {
		for (i = 0; i < plan->n_l4 && !err; i++) {
			int sid = fg_applier_service_id(a, plan->l4[i].target);

			if (plan->l4[i].port == a->opts.listen_port &&
			    plan->l4[i].proto == FG_PROTO_TCP) {
				pr_warn("apply: Service %s/%s port %u clashes with the HTTP listener; ignored\n",
					plan->l4[i].ns, plan->l4[i].name, plan->l4[i].port);
				continue;
			}
			if (sid < 0)
				continue;
			err = l4_listener(a, next, &plan->l4[i], (__u32)sid);
		}
		if (!err && a->opts.listen_port)
			err = listener(a, next, a->opts.listen_port, FG_PROTO_TCP, FG_LISTENER_L7,
				       L7_SERVICE_ID, -1);
		if (!err && !a->allow_swept)
			err = allow_sweep(a);
	}
	if (err) {
		json_decref(next);
		return err;
	}
	remove_stale_listeners(a, next);
	json_decref(a->listener_ids);
	a->listener_ids = next;
	return 0;
}

/* ---------- the whole plan ---------- */

/* Targets of the last apply that this plan does not have. */
static int release_services(struct fg_applier *a)
{
	__u32 sid;
	size_t i;
	int err;

	for (sid = 1; sid < a->svc_next; sid++) {
		struct svc_rec *r = a->svcs[sid];

		if (!r || r->seen)
			continue;
		for (i = 0; i < r->n_ids; i++)
			be_unref(a, r->ids[i], r->proto, r->http);
		err = fg_dp_del_service(a->dp, sid);
		if (err)
			pr_warn("apply: cannot remove service %u (%s): %s\n", sid, r->key,
				strerror(-err));
		/* Its listener went first: its source ranges can go. */
		if (fg_hmap_get(&a->allow_sig, &sid) && !allow_prune(a, sid, NULL, 0))
			fg_hmap_del(&a->allow_sig, &sid);
		svc_unbind(a, sid);
		give_id(&a->svc_free, &a->n_svc_free, &a->cap_svc_free, &a->svc_free_head, sid);
		a->st.targets_removed++;
	}
	return 0;
}

/* Backends nobody holds any more: removed once no ring has them. */
static void release_backends(struct fg_applier *a)
{
	size_t i;

	for (i = 0; i < a->n_to_free; i++) {
		__u32 id = a->to_free[i];
		struct be_rec *b = &a->bes[id];
		int err;

		if (b->refs || !b->live)
			continue;
		err = fg_dp_del_backend(a->dp, id);
		if (err)
			pr_warn("apply: cannot remove backend %u: %s\n", id, strerror(-err));
		fg_hidx_del(&a->be_by_ep, a->be_keys, &a->be_keys[id]);
		memset(&a->be_keys[id], 0, sizeof(a->be_keys[id]));
		b->live = false;
		b->flags = 0;
		give_id(&a->be_free, &a->n_be_free, &a->cap_be_free, &a->be_free_head, id);
		a->st.backends_removed++;
	}
	a->n_to_free = 0;
}

/* Marks the targets the plan has (known ones only): the others are
 * dropped by release_services. */
static int mark_plan_targets(struct fg_applier *a, const struct fg_plan *plan)
{
	size_t i;

	for (i = 0; i < plan->n_targets; i++) {
		int sid = svc_lookup(a, plan->targets[i]->key);
		char name[FG_NAME_LEN];

		if (sid < 0) {
			/* a previous agent's, found by name */
			service_name(plan->targets[i]->key, name);
			sid = strcmp(name, plan->targets[i]->key) ? svc_lookup(a, name) : -ENOENT;
		}
		if (sid >= 0)
			a->svcs[sid]->seen = true;
	}
	return 0;
}

/* Listeners of L4 Services the plan no longer has, before their service
 * ids go. */
static void release_stale_listeners(struct fg_applier *a, const struct fg_plan *plan)
{
	json_t *keep = json_object();
	char k[96], abuf[64];
	size_t i;

	if (!keep || !a->opts.listen_family) {
		json_decref(keep);
		return;
	}
	fg_addr_str(&a->opts.listen_addr, a->opts.listen_family, abuf, sizeof(abuf));
	for (i = 0; i < plan->n_l4; i++) {
		snprintf(k, sizeof(k), "%s|%u|%u", abuf, plan->l4[i].port, plan->l4[i].proto);
		json_object_set_new(keep, k, json_true());
	}
	if (a->opts.listen_port) {
		snprintf(k, sizeof(k), "%s|%u|%u", abuf, a->opts.listen_port, FG_PROTO_TCP);
		json_object_set_new(keep, k, json_true());
	}
	remove_stale_listeners(a, keep);
	{
		const char *key;
		json_t *v;
		void *tmp;

		json_object_foreach_safe(a->listener_ids, tmp, key, v)
			if (!json_object_get(keep, key))
				json_object_del(a->listener_ids, key);
	}
	json_decref(keep);
}

/* Slots the plan's rings may need at most: reserved in one step. */
static __u64 plan_slots(struct fg_applier *a, const struct fg_plan *plan)
{
	__u64 slots = 0;
	size_t i, j, k;

	for (i = 0; i < plan->n_targets; i++) {
		const struct fg_target *t = plan->targets[i];

		if (svc_lookup(a, t->key) >= 0)
			continue; /* counted in the slab already */
		slots += fg_dp_cluster_ring_size(t->n_clusters);
		for (j = 0; j < t->n_clusters; j++) {
			k = t->clusters[j].n_eps;
			slots += k + (k ? fg_dp_backend_ring_size(a->dp, k) : 0);
		}
	}
	return slots;
}

int fg_applier_apply(struct fg_applier *a, const struct fg_plan *plan)
{
	size_t i, j;
	__u32 sid;
	int err;

	memset(&a->st, 0, sizeof(a->st));
	for (sid = 1; sid < a->svc_next; sid++)
		if (a->svcs[sid])
			a->svcs[sid]->seen = false;
	a->n_dirty = 0;
	err = apply_clusters(a, plan);
	if (err)
		return err;
	/* What this plan drops goes first: its ids are free for what it
	 * adds (a full map takes a swap of Ingresses). Nothing routes to a
	 * dropped target any more: its listener goes with it. */
	err = mark_plan_targets(a, plan);
	if (err)
		return err;
	release_stale_listeners(a, plan);
	release_services(a);
	release_backends(a);
	for (sid = 1; sid < a->svc_next; sid++)
		if (a->svcs[sid])
			a->svcs[sid]->seen = false;
	err = fg_dp_ring_reserve(a->dp, plan_slots(a, plan));
	if (err)
		return err;
	for (i = 0; i < plan->n_routes && !err; i++) {
		const struct fg_route *r = &plan->routes[i];

		err = apply_target(a, r->target, FG_PROTO_TCP, true);
		for (j = 0; j < r->n_canaries && !err; j++)
			err = apply_target(a, r->canaries[j].target, FG_PROTO_TCP, true);
	}
	for (i = 0; i < plan->n_l4 && !err; i++)
		err = apply_target(a, plan->l4[i].target, plan->l4[i].proto, false);
	if (err)
		return err;
	/* Rings once every backend they reference is written, and without
	 * the endpoints that are gone; those are removed after. */
	err = fg_dp_rebuild_services(a->dp, a->dirty, a->n_dirty);
	if (err) {
		pr_warn("apply: cannot rebuild the rings: %s\n", strerror(-err));
		return err;
	}
	a->st.services_rebuilt = a->n_dirty;
	err = apply_listeners(a, plan);
	if (err)
		return err;
	if (a->adopted) {
		/* What a previous agent left and this plan does not use. */
		__u32 id;

		for (id = 1; id < a->be_next; id++)
			if (a->bes[id].live && !a->bes[id].refs)
				push_u32(&a->to_free, &a->n_to_free, &a->cap_to_free, id);
		a->adopted = false;
	}
	release_backends(a);
	return 0;
}

int fg_applier_apply_targets(struct fg_applier *a, struct fg_target *const *targets, size_t n)
{
	size_t i;
	int err = 0;

	memset(&a->st, 0, sizeof(a->st));
	a->n_dirty = 0;
	for (i = 0; i < n; i++) {
		int sid = svc_lookup(a, targets[i]->key);

		if (sid < 0)
			return -ENOENT; /* not applied before: a full apply */
		a->svcs[sid]->seen = false;
	}
	for (i = 0; i < n && !err; i++) {
		struct svc_rec *r = a->svcs[svc_lookup(a, targets[i]->key)];

		err = apply_target(a, targets[i], r->proto, r->http);
	}
	if (!err)
		err = fg_dp_rebuild_services(a->dp, a->dirty, a->n_dirty);
	if (err) {
		pr_warn("apply: cannot write the changed targets: %s\n", strerror(-err));
		return err;
	}
	a->st.services_rebuilt = a->n_dirty;
	release_backends(a);
	return 0;
}

/* ---------- what fits ---------- */

struct fit {
	struct fg_applier *a;
	json_t *seen_targets;   /* key -> true: counted */
	struct fg_hmap seen_eps; /* struct ep_key -> 1: counted */
	__u64 free_svc, free_be, free_rings;
};

/* The new ids and ring entries a target would take (0 when it is known or
 * counted already); counts it when it fits. Returns false when not. */
static bool fit_target(struct fit *f, const struct fg_target *t, const char **full)
{
	struct fg_applier *a = f->a;
	__u64 new_eps = 0, rings = 1;
	size_t i, j;

	if (json_object_get(f->seen_targets, t->key))
		return true;
	for (i = 0; i < t->n_clusters; i++) {
		json_t *v = json_object_get(a->cluster_ids, t->clusters[i].cluster);

		rings += 2;
		for (j = 0; j < t->clusters[i].n_eps; j++) {
			struct ep_key k;

			ep_key_of(&k, json_is_integer(v) ? (__u32)json_integer_value(v) : 0xffff,
				  &t->clusters[i].eps[j]);
			if (fg_hidx_get(&a->be_by_ep, a->be_keys, &k) < 0 && !fg_hmap_get(&f->seen_eps, &k))
				new_eps++;
		}
	}
	if (svc_lookup(a, t->key) < 0) {
		if (!f->free_svc) {
			*full = "the services map is full (%u route targets and L4 Services; "
				"raise --max-services)";
			return false;
		}
		if (f->free_rings < rings) {
			*full = "the rings map is full (%u rings; raise --max-rings)";
			return false;
		}
	}
	if (new_eps > f->free_be) {
		*full = "the backends map is full (%u endpoints; raise --max-backends)";
		return false;
	}
	/* It fits: what it takes is taken. */
	json_object_set_new(f->seen_targets, t->key, json_true());
	if (svc_lookup(a, t->key) < 0) {
		f->free_svc--;
		f->free_rings -= rings;
	}
	f->free_be -= new_eps;
	for (i = 0; i < t->n_clusters; i++) {
		json_t *v = json_object_get(a->cluster_ids, t->clusters[i].cluster);

		for (j = 0; j < t->clusters[i].n_eps; j++) {
			struct ep_key k;

			ep_key_of(&k, json_is_integer(v) ? (__u32)json_integer_value(v) : 0xffff,
				  &t->clusters[i].eps[j]);
			if (fg_hidx_get(&a->be_by_ep, a->be_keys, &k) < 0)
				fg_hmap_put(&f->seen_eps, &k, 1);
		}
	}
	return true;
}

/* What makes two endpoint lists of one cluster the same backends. */
static __u64 eps_sig(const struct fg_target_cluster *tc)
{
	__u64 h = fg_bytes_hash(tc->cluster, strlen(tc->cluster), 0x5eed);
	size_t i;

	for (i = 0; i < tc->n_eps; i++) {
		const struct fg_endpoint *ep = &tc->eps[i];
		__u32 x = fg_bytes_hash(&ep->addr, sizeof(ep->addr),
					(__u32)ep->family << 16 | ep->port);

		h = (h ^ x) * 1099511628211ULL;
	}
	return h;
}

static bool same_eps(const struct fg_target_cluster *a, const struct fg_target_cluster *b)
{
	size_t i;

	if (a->n_eps != b->n_eps || strcmp(a->cluster, b->cluster))
		return false;
	for (i = 0; i < a->n_eps; i++)
		if (a->eps[i].family != b->eps[i].family || a->eps[i].port != b->eps[i].port ||
		    memcmp(&a->eps[i].addr, &b->eps[i].addr, sizeof(a->eps[i].addr)))
			return false;
	return true;
}

/* Room for every target as if each were new and its endpoints new (a
 * list of endpoints shared by several targets, a route's and its
 * canary's, counted once): then nothing is cut, and the count per
 * endpoint (a hash map of every endpoint of the fleet on a first apply,
 * 0.5 s CPU at 1,000,000) is not needed. */
static bool fits_whole(const struct fg_plan *plan, const struct fit *f)
{
	struct fg_hmap lists; /* signature -> a list counted */
	__u64 rings = 0, eps = 0;
	bool fits = true;
	size_t i, j;

	if (plan->n_targets > f->free_svc)
		return false;
	fg_hmap_init(&lists, sizeof(__u64));
	for (i = 0; i < plan->n_targets && fits; i++) {
		const struct fg_target *t = plan->targets[i];

		rings += 1 + 2 * (__u64)t->n_clusters;
		for (j = 0; j < t->n_clusters; j++) {
			const struct fg_target_cluster *tc = &t->clusters[j];
			__u64 sig = eps_sig(tc), *v = fg_hmap_get(&lists, &sig);

			if (v && same_eps((const struct fg_target_cluster *)(uintptr_t)*v, tc))
				continue;
			/* Another list of the same signature is counted
			 * again: more than needed, never less. */
			if (!v && fg_hmap_put(&lists, &sig, (uintptr_t)tc))
				fits = false;
			eps += tc->n_eps;
		}
		fits = fits && rings <= f->free_rings && eps <= f->free_be;
	}
	fg_hmap_fini(&lists);
	return fits;
}

static void no_room(struct fg_applier *a, json_t *out, const char *key, const char *fmt)
{
	char why[FG_REASON_LEN];
	__u32 cap = strstr(fmt, "services") ? a->max_services
		    : strstr(fmt, "rings") ? fg_dp_max_rings(a->dp) : a->max_backends;

	snprintf(why, sizeof(why), "not programmed: ");
	snprintf(why + strlen(why), sizeof(why) - strlen(why), fmt, cap);
	json_object_set_new(out, key, json_string(why));
}

int fg_applier_fit(struct fg_applier *a, const struct fg_plan *plan, json_t *out)
{
	struct fit f = { .a = a };
	struct fg_ring_stats rs;
	json_t *by_ingress;
	__u64 used_svc = 0;
	size_t i, j;
	__u32 sid;
	int rejected = 0;

	/* What the plan drops is released before it adds anything: those
	 * services, and the backends only they hold, count as free. */
	json_t *keep = json_object();
	__u64 freed_be = 0;

	if (!keep)
		return -ENOMEM;
	for (i = 0; i < plan->n_targets; i++)
		json_object_set_new(keep, plan->targets[i]->key, json_true());
	{
		struct fg_hmap stale_refs;

		fg_hmap_init(&stale_refs, sizeof(__u32));
		for (sid = 1; sid < a->svc_next; sid++) {
			struct svc_rec *r = a->svcs[sid];
			__u32 k;

			if (!r)
				continue;
			if (json_object_get(keep, r->key)) {
				used_svc++;
				continue;
			}
			for (k = 0; k < r->n_ids; k++) {
				__u64 *v = fg_hmap_get(&stale_refs, &r->ids[k]);

				fg_hmap_put(&stale_refs, &r->ids[k], v ? *v + 1 : 1);
			}
		}
		for (i = fg_hmap_next(&stale_refs, 0); i < stale_refs.cap;
		     i = fg_hmap_next(&stale_refs, i + 1)) {
			__u32 id = *(const __u32 *)fg_hmap_key(&stale_refs, i);

			if (*fg_hmap_val(&stale_refs, i) >= a->bes[id].refs)
				freed_be++;
		}
		fg_hmap_fini(&stale_refs);
	}
	json_decref(keep);
	fg_dp_ring_stats(a->dp, &rs);
	f.free_svc = a->max_services - 1 - used_svc;
	f.free_be = a->max_backends - 1 - (a->be_by_ep.n - freed_be);
	f.free_rings = fg_dp_max_rings(a->dp) > 2 * rs.rings ? fg_dp_max_rings(a->dp) - 2 * rs.rings
							     : 0;
	fg_hmap_init(&f.seen_eps, sizeof(struct ep_key));
	by_ingress = NULL;
	if (fits_whole(plan, &f))
		goto out;
	f.seen_targets = json_object();
	by_ingress = json_object();
	if (!f.seen_targets || !by_ingress) {
		rejected = -ENOMEM;
		goto out;
	}
	/* Each accepted Ingress's targets (its routes', or a canary's). */
	for (i = 0; i < plan->n_routes; i++) {
		const struct fg_route *r = &plan->routes[i];
		json_t *list;

		list = json_object_get(by_ingress, r->ingress);
		if (!list) {
			list = json_array();
			json_object_set_new(by_ingress, r->ingress, list);
		}
		json_array_append_new(list, json_integer((json_int_t)(uintptr_t)r->target));
		for (j = 0; j < r->n_canaries; j++) {
			list = json_object_get(by_ingress, r->canaries[j].ingress);
			if (!list) {
				list = json_array();
				json_object_set_new(by_ingress, r->canaries[j].ingress, list);
			}
			json_array_append_new(list,
				json_integer((json_int_t)(uintptr_t)r->canaries[j].target));
		}
	}
	/* Older first (the plan's order): what was there keeps its place. */
	for (i = 0; i < plan->n_ingresses; i++) {
		const struct fg_ingress_status *st = &plan->ingresses[i];
		char key[FG_ID_LEN * 5 + 2];
		const char *full = NULL;
		json_t *list, *v;
		size_t k;
		bool ok = true;

		if (!st->accepted)
			continue;
		snprintf(key, sizeof(key), "%s/%s", st->ns, st->name);
		list = json_object_get(by_ingress, key);
		json_array_foreach(list, k, v)
			if (!fit_target(&f, (const struct fg_target *)(uintptr_t)json_integer_value(v),
					&full))
				ok = false;
		if (!ok) {
			no_room(a, out, key, full);
			rejected++;
		}
	}
	for (i = 0; i < plan->n_l4; i++) {
		const char *full = NULL;
		char key[FG_ID_LEN * 5 + 16];

		if (fit_target(&f, plan->l4[i].target, &full))
			continue;
		snprintf(key, sizeof(key), "Service %s/%s", plan->l4[i].ns, plan->l4[i].name);
		no_room(a, out, key, full);
		rejected++;
	}
out:
	json_decref(f.seen_targets);
	json_decref(by_ingress);
	fg_hmap_fini(&f.seen_eps);
	return rejected;
}

const struct fg_apply_stats *fg_applier_stats(const struct fg_applier *a)
{
	return &a->st;
}

int fg_applier_service_id(struct fg_applier *a, const struct fg_target *t)
{
	return svc_lookup(a, t->key);
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
