// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compact.h"
#include "objstore.h"

struct cluster_store {
	struct fg_cindex idx;
	json_t *all;     /* [object, ...] for snapshots; NULL: to rebuild */
};

struct fg_objstore {
	json_t *fleet_by_key;  /* "Kind\x1fns\x1fname" -> [object, ...] */
	json_t *fleet;         /* [object, ...]; NULL: to rebuild */
	json_t *clusters;      /* id -> struct cluster_store * (as an integer) */
	json_t *snap_clusters; /* id -> [object, ...], for snapshots */
	size_t count;
};

/* ---------- changes ---------- */

void fg_changes_init(struct fg_changes *ch)
{
	memset(ch, 0, sizeof(*ch));
	ch->services = json_object();
	ch->pod_ns = json_object();
	ch->ingresses = json_object();
}

void fg_changes_reset(struct fg_changes *ch)
{
	ch->any = ch->full = ch->tls = false;
	json_object_clear(ch->services);
	json_object_clear(ch->pod_ns);
	json_object_clear(ch->ingresses);
}

void fg_changes_fini(struct fg_changes *ch)
{
	json_decref(ch->services);
	json_decref(ch->pod_ns);
	json_decref(ch->ingresses);
	memset(ch, 0, sizeof(*ch));
}

/* ---------- small helpers ---------- */

static const char *str_at(json_t *obj, const char *a, const char *b)
{
	json_t *v = json_object_get(obj, a);

	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static const char *kind_of(json_t *obj)
{
	const char *k = str_at(obj, "kind", NULL);

	return k ? k : "";
}

/* Cluster objects may be packed (compact.h): read through its accessors. */
static const char *ns_of(json_t *obj)
{
	return fg_obj_ns(obj);
}

static const char *name_of(json_t *obj)
{
	const char *n = fg_obj_name(obj);

	return n ? n : "";
}

static const char *slice_owner(json_t *obj)
{
	return fg_obj_slice_owner(obj);
}

static int mark(json_t *set, const char *key)
{
	return json_object_set_new(set, key, json_true()) ? -ENOMEM : 0;
}

/* An index's value is the object itself when its key has one, an array of
 * them (first added first) when it has more: a one-element array per key
 * cost 128 bytes for each of 200,000 objects at N=10,000 C=10. Readers
 * take both (fg_index_first, fg_index_count, fg_index_at in routes.h). */
static int list_add(json_t *index, const char *key, json_t *obj)
{
	json_t *v = json_object_get(index, key), *arr;

	if (!v)
		return json_object_set_nocheck(index, key, obj) ? -ENOMEM : 0;
	if (json_is_array(v))
		return json_array_append(v, obj) ? -ENOMEM : 0;
	arr = json_array();
	if (!arr || json_array_append(arr, v) || json_array_append(arr, obj) ||
	    json_object_set_new_nocheck(index, key, arr)) {
		json_decref(arr);
		return -ENOMEM;
	}
	return 0;
}

/* Removes obj (that very object) from the list at key; true when found. */
static bool list_del(json_t *index, const char *key, json_t *obj)
{
	json_t *v = json_object_get(index, key), *e;
	size_t i;

	if (v == obj) {
		json_object_del(index, key);
		return true;
	}
	if (!json_is_array(v))
		return false;
	json_array_foreach(v, i, e) {
		if (e != obj)
			continue;
		json_array_remove(v, i);
		if (json_array_size(v) == 1) {
			/* Back to the object itself. */
			e = json_incref(json_array_get(v, 0));
			if (json_object_set_new_nocheck(index, key, e))
				json_decref(e); /* the array stays: still valid */
		}
		return true;
	}
	return false;
}

static void obj_key(char *buf, size_t len, json_t *obj)
{
	snprintf(buf, len, "%s\x1f%s\x1f%s", kind_of(obj), ns_of(obj), name_of(obj));
}

/* ---------- the store ---------- */

int fg_objstore_new(struct fg_objstore **out)
{
	struct fg_objstore *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->fleet_by_key = json_object();
	s->clusters = json_object();
	if (!s->fleet_by_key || !s->clusters) {
		fg_objstore_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

static void cluster_store_free(struct cluster_store *cs)
{
	if (!cs)
		return;
	json_decref(cs->idx.by_key);
	json_decref(cs->idx.slices);
	json_decref(cs->all);
	free(cs);
}

void fg_objstore_free(struct fg_objstore *s)
{
	const char *k;
	json_t *v;

	if (!s)
		return;
	json_object_foreach(s->clusters, k, v)
		cluster_store_free((struct cluster_store *)(uintptr_t)json_integer_value(v));
	json_decref(s->clusters);
	json_decref(s->fleet_by_key);
	json_decref(s->fleet);
	json_decref(s->snap_clusters);
	free(s);
}

static struct cluster_store *cluster_get(struct fg_objstore *s, const char *cid, bool create)
{
	json_t *v = json_object_get(s->clusters, cid);
	struct cluster_store *cs;

	if (v)
		return (struct cluster_store *)(uintptr_t)json_integer_value(v);
	if (!create)
		return NULL;
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	cs->idx.by_key = json_object();
	cs->idx.slices = json_object();
	if (!cs->idx.by_key || !cs->idx.slices ||
	    json_object_set_new(s->clusters, cid, json_integer((json_int_t)(uintptr_t)cs))) {
		cluster_store_free(cs);
		return NULL;
	}
	return cs;
}

/* What an object of a cluster going or coming means for the routes. */
static int cluster_effect(json_t *obj, struct fg_changes *ch)
{
	const char *kind = kind_of(obj);
	char key[512];

	if (!strcmp(kind, "EndpointSlice")) {
		const char *owner = slice_owner(obj);

		if (!owner)
			return 0;
		snprintf(key, sizeof(key), "%s\x1f%s", ns_of(obj), owner);
		return mark(ch->services, key);
	}
	if (!strcmp(kind, "Endpoints")) {
		snprintf(key, sizeof(key), "%s\x1f%s", ns_of(obj), name_of(obj));
		return mark(ch->services, key);
	}
	if (!strcmp(kind, "Pod"))
		return mark(ch->pod_ns, ns_of(obj));
	/* A Service (ports, presence) decides which routes are accepted. */
	if (!strcmp(kind, "Service"))
		ch->full = true;
	return 0;
}

static int cluster_change(struct fg_objstore *s, const char *cid, json_t *old, json_t *new,
			  struct fg_changes *ch)
{
	struct cluster_store *cs = cluster_get(s, cid, new != NULL);
	size_t before = cs ? cs->idx.n : 0;
	char key[512];
	int err = 0;

	if (!cs)
		return new ? -ENOMEM : 0;
	if (old) {
		bool found;

		if (!strcmp(kind_of(old), "EndpointSlice")) {
			const char *owner = slice_owner(old);

			snprintf(key, sizeof(key), "%s\x1f%s", ns_of(old), owner ? owner : "");
			found = list_del(cs->idx.slices, key, old);
		} else {
			obj_key(key, sizeof(key), old);
			found = list_del(cs->idx.by_key, key, old);
		}
		if (found) {
			cs->idx.n--;
			s->count--;
			err = cluster_effect(old, ch);
		}
	}
	if (new && !err) {
		if (!strcmp(kind_of(new), "EndpointSlice")) {
			const char *owner = slice_owner(new);

			snprintf(key, sizeof(key), "%s\x1f%s", ns_of(new), owner ? owner : "");
			err = list_add(cs->idx.slices, key, new);
		} else {
			obj_key(key, sizeof(key), new);
			err = list_add(cs->idx.by_key, key, new);
		}
		if (!err) {
			cs->idx.n++;
			s->count++;
			err = cluster_effect(new, ch);
		}
	}
	/* A cluster that gets its first object, or loses its last, changes
	 * the gateway's status and the clusters routes may use. */
	if ((before == 0) != (cs->idx.n == 0))
		ch->full = true;
	json_decref(cs->all);
	cs->all = NULL;
	json_decref(s->snap_clusters);
	s->snap_clusters = NULL;
	if (!cs->idx.n) {
		json_object_del(s->clusters, cid);
		cluster_store_free(cs);
	}
	return err;
}

static int fleet_effect(json_t *old, json_t *new, struct fg_changes *ch)
{
	json_t *any = new ? new : old;
	const char *kind = kind_of(any);
	char key[512];

	if (!strcmp(kind, "Ingress")) {
		json_t *pair = json_pack("[OO]", old ? old : json_null(), new ? new : json_null());

		snprintf(key, sizeof(key), "%s/%s", ns_of(any), name_of(any));
		/* Several changes of one Ingress: its first old, its last new. */
		if (json_object_get(ch->ingresses, key)) {
			json_t *prev = json_object_get(ch->ingresses, key);

			json_array_set(pair, 0, json_array_get(prev, 0));
		}
		return pair && !json_object_set_new(ch->ingresses, key, pair) ? 0 : -ENOMEM;
	}
	/* A Secret changes which certificates serve which hosts, nothing
	 * else (an Ingress's spec.tls is part of the Ingress). */
	if (!strcmp(kind, "Secret")) {
		ch->tls = true;
		return 0;
	}
	/* Gateways, LoadBalancer Services, anything else: everything. */
	ch->full = true;
	return 0;
}

json_t *fg_objstore_fleet_find(const struct fg_objstore *s, const char *kind, const char *ns,
			       const char *name)
{
	char key[512];

	snprintf(key, sizeof(key), "%s\x1f%s\x1f%s", kind, ns, name);
	return fg_index_first(json_object_get(s->fleet_by_key, key));
}

static int fleet_change(struct fg_objstore *s, json_t *old, json_t *new, struct fg_changes *ch)
{
	char key[512];
	int err = 0;

	if (old) {
		obj_key(key, sizeof(key), old);
		if (list_del(s->fleet_by_key, key, old))
			s->count--;
		else
			old = NULL;
	}
	if (new) {
		obj_key(key, sizeof(key), new);
		err = list_add(s->fleet_by_key, key, new);
		if (err)
			return err;
		s->count++;
	}
	json_decref(s->fleet);
	s->fleet = NULL;
	if (old || new)
		err = fleet_effect(old, new, ch);
	return err;
}

int fg_objstore_change(struct fg_objstore *s, const char *origin, json_t *old, json_t *new,
		       struct fg_changes *ch)
{
	if (old == new)
		return 0;
	ch->any = true;
	return origin ? cluster_change(s, origin, old, new, ch) : fleet_change(s, old, new, ch);
}

size_t fg_objstore_count(const struct fg_objstore *s)
{
	return s->count;
}

const struct fg_cindex *fg_objstore_cluster(const struct fg_objstore *s, const char *cid)
{
	json_t *v = json_object_get(s->clusters, cid);

	return v ? &((struct cluster_store *)(uintptr_t)json_integer_value(v))->idx : NULL;
}

static const struct fg_cindex *index_cb(void *ctx, const char *cid)
{
	return fg_objstore_cluster(ctx, cid);
}

static int append_lists(json_t *arr, json_t *index)
{
	const char *k;
	json_t *v;

	json_object_foreach(index, k, v)
		if (json_is_array(v) ? json_array_extend(arr, v) : json_array_append(arr, v))
			return -ENOMEM;
	return 0;
}

int fg_objstore_snapshot(struct fg_objstore *s, struct fg_snapshot *snap)
{
	const char *cid;
	json_t *v;

	if (!s->fleet) {
		s->fleet = json_array();
		if (!s->fleet || append_lists(s->fleet, s->fleet_by_key))
			return -ENOMEM;
	}
	if (!s->snap_clusters) {
		s->snap_clusters = json_object();
		if (!s->snap_clusters)
			return -ENOMEM;
		json_object_foreach(s->clusters, cid, v) {
			struct cluster_store *cs = (struct cluster_store *)(uintptr_t)json_integer_value(v);

			if (!cs->all) {
				cs->all = json_array();
				if (!cs->all || append_lists(cs->all, cs->idx.by_key) ||
				    append_lists(cs->all, cs->idx.slices))
					return -ENOMEM;
			}
			if (json_object_set(s->snap_clusters, cid, cs->all))
				return -ENOMEM;
		}
	}
	snap->fleet = s->fleet;
	snap->clusters = s->snap_clusters;
	snap->cluster_index = index_cb;
	snap->index_ctx = s;
	return 0;
}

/* ---------- Ingress changes a route can take on its own ---------- */

static const char *const route_local[] = {
	"canary-weight", "canary-weight-total", "canary-by-header", "canary-by-header-value",
	"canary-by-header-pattern", "canary-by-cookie", "proxy-next-upstream",
	"proxy-next-upstream-tries",
};

static bool local_annotation(const char *key)
{
	static const char *const prefixes[] = { "nginx.ingress.kubernetes.io/", "higress.io/",
						"mse.ingress.kubernetes.io/" };
	size_t i, j;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t n = strlen(prefixes[i]);

		if (strncmp(key, prefixes[i], n))
			continue;
		for (j = 0; j < sizeof(route_local) / sizeof(route_local[0]); j++)
			if (!strcmp(key + n, route_local[j]))
				return true;
	}
	return false;
}

/* A copy without what the comparison ignores: bookkeeping metadata and the
 * route-local annotations. */
static json_t *shape(json_t *ing)
{
	json_t *c = json_deep_copy(ing), *md, *anns, *v;
	const char *k;
	void *tmp;

	if (!c)
		return NULL;
	md = json_object_get(c, "metadata");
	json_object_del(md, "resourceVersion");
	json_object_del(md, "generation");
	json_object_del(md, "managedFields");
	json_object_del(c, "status");
	anns = json_object_get(md, "annotations");
	json_object_foreach_safe(anns, tmp, k, v)
		if (local_annotation(k))
			json_object_del(anns, k);
	return c;
}

bool fg_ingress_route_local_change(json_t *old, json_t *new)
{
	json_t *a, *b;
	bool same;

	if (!old || !new || json_is_null(old) || json_is_null(new))
		return false;
	a = shape(old);
	b = shape(new);
	same = a && b && json_equal(a, b);
	json_decref(a);
	json_decref(b);
	return same;
}
