// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Route computation: fleet and cluster objects in, a plan out. See
 * routes.h and docs/annotations.md for the semantics implemented here.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "fleetgate_hash.h"
#include "fg_regex.h"
#include "compact.h"
#include "routes.h"
#include "tls_config.h"

#define ANN_REMOTE_CLUSTERS "mse.alibabacloud.com/remote-clusters"
#define ANN_SUBSET "mse.ingress.kubernetes.io/service-subset"
#define ANN_SUBSET_LABELS "mse.ingress.kubernetes.io/subset-labels"
#define ANN_INGRESS_CLASS "kubernetes.io/ingress.class"
#define LABEL_CLUSTER "topology.istio.io/cluster"
#define LABEL_CANARY_PREFIX "opensergo.io/canary"
#define MAX_LABEL_FILTERS 8

/* ---------- small JSON helpers ---------- */

/* Walks "a.b.c" through nested objects. */
static json_t *jget(json_t *obj, const char *path)
{
	char key[128];
	const char *dot;

	while (obj && *path) {
		size_t n;

		dot = strchr(path, '.');
		n = dot ? (size_t)(dot - path) : strlen(path);
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		if (!json_is_object(obj))
			return NULL;
		obj = json_object_get(obj, key);
		path = dot ? dot + 1 : path + n;
	}
	return obj;
}

static const char *jstr(json_t *obj, const char *path)
{
	json_t *v = jget(obj, path);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* One key that may itself contain dots (label and annotation keys). */
static const char *jkey(json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *jstr_or(json_t *obj, const char *path, const char *dflt)
{
	const char *s = jstr(obj, path);

	return s ? s : dflt;
}

static const char *annotation_raw(json_t *obj, const char *key)
{
	json_t *anns = jget(obj, "metadata.annotations");
	json_t *v;

	if (!json_is_object(anns))
		return NULL;
	v = json_object_get(anns, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *fg_annotation(json_t *obj, const char *key)
{
	static const char *const prefixes[] = {
		"nginx.ingress.kubernetes.io/",
		"higress.io/",
		"mse.ingress.kubernetes.io/",
	};
	char full[256];
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		const char *v;

		snprintf(full, sizeof(full), "%s%s", prefixes[i], key);
		v = annotation_raw(obj, full);
		if (v)
			return v;
	}
	return NULL;
}

static bool is_kind(json_t *obj, const char *kind)
{
	const char *k = jstr(obj, "kind");

	return k && !strcmp(k, kind);
}

/* Bounded copy; over-long values are cut (they are names and reasons). */
static void copy(char *dst, size_t len, const char *src)
{
	size_t n = src ? strnlen(src, len - 1) : 0;

	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

static void reasonf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reasonf(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, FG_REASON_LEN, fmt, ap);
	va_end(ap);
}

/* A DNS-1123 label, as cluster ids and names are. */
static bool valid_label(const char *s)
{
	size_t n = strlen(s), i;

	if (!n || n > 63)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (!(islower(c) || isdigit(c) || (c == '-' && i && i + 1 < n)))
			return false;
	}
	return true;
}

/* Strict decimal integer. */
static bool parse_u32(const char *s, __u32 *out)
{
	unsigned long long v = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		v = v * 10 + (*s - '0');
		if (v > 0xffffffffULL)
			return false;
	}
	*out = (__u32)v;
	return true;
}

/* ---------- plan memory ---------- */

static void *grow(void *arr, size_t *cap, size_t n, size_t elem)
{
	void *p;

	if (n < *cap)
		return arr;
	*cap = *cap ? *cap * 2 : 8;
	p = realloc(arr, *cap * elem);
	if (p)
		memset((char *)p + n * elem, 0, (*cap - n) * elem);
	return p;
}

struct builder {
	const struct fg_snapshot *snap;
	const struct fg_plan_opts *opts;
	struct fg_plan *plan;
	size_t cap_gw, cap_ing, cap_routes, cap_l4, cap_targets, cap_clusters;
	json_t *served_classes; /* class -> gateway name */
	json_t *cindexes;       /* cluster id -> index (a pointer in an integer) */
	json_t *target_index;   /* target key -> index in plan->targets */
	json_t *route_index;    /* route identity -> index in plan->routes */
};

static void target_free(struct fg_target *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->n_clusters; i++)
		free(t->clusters[i].eps);
	free(t->clusters);
	free(t->req);
	free(t->key);
	free(t);
}

static void route_free_canaries(struct fg_route *r)
{
	size_t i;

	for (i = 0; i < r->n_canaries; i++)
		if (r->canaries[i].has_pattern)
			fg_regex_free(r->canaries[i].pattern);
	free(r->canaries);
	r->canaries = NULL;
	r->n_canaries = 0;
}

void fg_plan_free(struct fg_plan *plan)
{
	size_t i;

	if (!plan)
		return;
	for (i = 0; i < plan->n_gateways; i++)
		json_decref(plan->gateways[i].object);
	free(plan->gateways);
	free(plan->ingresses);
	for (i = 0; i < plan->n_routes; i++) {
		route_free_canaries(&plan->routes[i]);
		fg_route_opts_put(plan->routes[i].opts);
		free(plan->routes[i].path);
	}
	free(plan->routes);
	for (i = 0; i < plan->n_l4; i++)
		free(plan->l4[i].allow);
	free(plan->l4);
	json_decref(plan->l4_rejected);
	for (i = 0; i < plan->n_targets; i++)
		target_free(plan->targets[i]);
	free(plan->targets);
	for (i = 0; i < plan->n_clusters; i++)
		free(plan->clusters[i]);
	free(plan->clusters);
	fg_tls_plan_free(plan->tls);
	free(plan);
}

/* ---------- ordering ---------- */

/* Objects sorted by creation time, then namespace/name: older objects win
 * conflicts, as with most Kubernetes controllers. */
static int obj_order(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c;

	c = strcmp(jstr_or(x, "metadata.creationTimestamp", ""),
		   jstr_or(y, "metadata.creationTimestamp", ""));
	if (c)
		return c;
	c = strcmp(jstr_or(x, "metadata.namespace", ""), jstr_or(y, "metadata.namespace", ""));
	if (c)
		return c;
	return strcmp(jstr_or(x, "metadata.name", ""), jstr_or(y, "metadata.name", ""));
}

static json_t **sorted_of_kind(json_t *arr, const char *kind, size_t *n_out)
{
	json_t **v = NULL, *obj;
	size_t i, n = 0;

	v = calloc(json_array_size(arr) + 1, sizeof(*v));
	if (!v)
		return NULL;
	json_array_foreach(arr, i, obj)
		if (is_kind(obj, kind))
			v[n++] = obj;
	if (n)
		qsort(v, n, sizeof(*v), obj_order);
	*n_out = n;
	return v;
}

/* ---------- gateways ---------- */

static bool cluster_attached(const struct fg_plan *plan, const char *id)
{
	size_t i;

	for (i = 0; i < plan->n_clusters; i++)
		if (!strcmp(plan->clusters[i], id))
			return true;
	return false;
}

/* Why a cluster cannot be read, or NULL. */
static const char *cluster_unreadable(const struct builder *b, const char *id)
{
	json_t *e = b->snap->cluster_errors ? json_object_get(b->snap->cluster_errors, id) : NULL;

	if (json_is_string(e))
		return json_string_value(e);
	if (!b->snap->clusters || !json_object_get(b->snap->clusters, id))
		return "no objects from this cluster (no kubeconfig or config directory for it)";
	return NULL;
}

static int add_cluster(struct builder *b, const char *id)
{
	struct fg_plan *p = b->plan;
	char **v;

	if (cluster_attached(p, id))
		return 0;
	v = grow(p->clusters, &b->cap_clusters, p->n_clusters, sizeof(*v));
	if (!v)
		return -ENOMEM;
	p->clusters = v;
	p->clusters[p->n_clusters] = strdup(id);
	if (!p->clusters[p->n_clusters])
		return -ENOMEM;
	p->n_clusters++;
	return 0;
}

/* Parses the remote-clusters annotation into status.remoteClusters and
 * attaches the readable clusters. */
static int gateway_clusters(struct builder *b, json_t *obj, json_t *remote, bool attach)
{
	const char *ann = annotation_raw(obj, ANN_REMOTE_CLUSTERS);
	char *list, *save = NULL, *tok;
	int err = 0;

	if (!ann)
		return 0;
	list = strdup(ann);
	if (!list)
		return -ENOMEM;
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		const char *why;
		json_t *entry;
		char *end;

		while (isspace((unsigned char)*tok))
			tok++;
		end = tok + strlen(tok);
		while (end > tok && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (!*tok)
			continue;
		entry = json_pack("{s:s}", "clusterId", tok);
		if (!valid_label(tok)) {
			why = "invalid cluster id: must be a DNS label (lower-case letters, digits, '-', at most 63)";
		} else {
			why = cluster_unreadable(b, tok);
			if (!why && attach)
				err = add_cluster(b, tok);
		}
		if (why) {
			json_object_set_new(entry, "status", json_string("Failed"));
			json_object_set_new(entry, "reason", json_string(why));
		}
		json_array_append_new(remote, entry);
		if (err)
			break;
	}
	free(list);
	return err;
}

/* The phase of a gateway that did not fail, from the agent's state. */
static void gateway_phase(struct fg_gateway_status *gw, const struct fg_plan_opts *opts)
{
	if (!opts->dataplane_ready)
		copy(gw->phase, sizeof(gw->phase), "Pending");
	else if (!opts->listening)
		copy(gw->phase, sizeof(gw->phase), "Running");
	else if (opts->syncing && opts->syncing[0]) {
		/* A partial view would program a partial data plane: not
		 * Listening before every source has been listed. */
		copy(gw->phase, sizeof(gw->phase), "Running");
		reasonf(gw->message, "waiting for the first list of: %s", opts->syncing);
	} else
		copy(gw->phase, sizeof(gw->phase), "Listening");
}

void fg_plan_update_phases(struct fg_plan *plan, const struct fg_plan_opts *opts)
{
	size_t i;

	for (i = 0; i < plan->n_gateways; i++) {
		struct fg_gateway_status *gw = &plan->gateways[i];
		json_t *st = json_object_get(gw->object, "status");

		if (!strcmp(gw->phase, "Failed"))
			continue;
		gateway_phase(gw, opts);
		json_object_set_new(st, "status", json_string(gw->phase));
		if (gw->message[0])
			json_object_set_new(st, "message", json_string(gw->message));
	}
}

static int add_gateway(struct builder *b, json_t *obj)
{
	struct fg_plan *p = b->plan;
	struct fg_gateway_status *gw, *v;
	json_t *status, *remote, *owner;
	const char *cls;
	bool failed = false;
	int err;

	v = grow(p->gateways, &b->cap_gw, p->n_gateways, sizeof(*v));
	if (!v)
		return -ENOMEM;
	p->gateways = v;
	gw = &p->gateways[p->n_gateways++];
	copy(gw->name, sizeof(gw->name), jstr(obj, "metadata.name"));
	copy(gw->created, sizeof(gw->created), jstr(obj, "metadata.creationTimestamp"));
	cls = jstr(obj, "spec.ingress.local.ingressClass");
	copy(gw->ingress_class, sizeof(gw->ingress_class), cls);

	if (!cls || !*cls) {
		failed = true;
		reasonf(gw->message, "spec.ingress.local.ingressClass is required");
	} else if ((owner = json_object_get(b->served_classes, cls))) {
		failed = true;
		reasonf(gw->message, "ingress class %s is already served by MseIngressConfig %s", cls,
			json_string_value(owner));
	}

	remote = json_array();
	err = gateway_clusters(b, obj, remote, !failed);
	if (err) {
		json_decref(remote);
		return err;
	}
	if (failed)
		copy(gw->phase, sizeof(gw->phase), "Failed");
	else
		gateway_phase(gw, b->opts);
	if (!failed && b->opts->behind && b->opts->behind[0] && !gw->message[0])
		reasonf(gw->message, "the data plane is behind the configuration: %s",
			b->opts->behind);
	if (!failed && !gw->message[0] && b->opts->no_room && json_object_size(b->opts->no_room))
		reasonf(gw->message, "%zu object(s) not programmed: no room in the data plane "
			"(fleetgatectl get ingress says which, and the flag that makes room)",
			json_object_size(b->opts->no_room));
	if (!failed)
		json_object_set_new(b->served_classes, cls, json_string(gw->name));

	gw->object = json_deep_copy(obj);
	status = json_pack("{s:s, s:o}", "status", gw->phase, "remoteClusters", remote);
	if (gw->message[0])
		json_object_set_new(status, "message", json_string(gw->message));
	json_object_set_new(gw->object, "status", status);
	return 0;
}

/* ---------- endpoints ---------- */

struct label_filter {
	char key[128];
	char value[128];
};

struct subset {
	char name[FG_ID_LEN];
	char cluster[FG_ID_LEN]; /* pinned by topology.istio.io/cluster */
	struct label_filter filters[MAX_LABEL_FILTERS];
	int n_filters;
	bool opensergo;          /* service-subset without subset-labels */
};

static void obj_key(char *buf, size_t len, const char *kind, const char *ns, const char *name)
{
	snprintf(buf, len, "%s\x1f%s\x1f%s", kind, ns, name);
}

static void cindex_free(struct fg_cindex *ci)
{
	if (!ci)
		return;
	json_decref(ci->by_key);
	json_decref(ci->slices);
	free(ci);
}

/* Adds obj under key of an index whose values are arrays. */
static int index_add(json_t *index, const char *key, json_t *obj)
{
	json_t *arr = json_object_get(index, key);

	if (!arr) {
		arr = json_array();
		if (!arr || json_object_set_new(index, key, arr))
			return -ENOMEM;
	}
	return json_array_append(arr, obj) ? -ENOMEM : 0;
}

/* The index of a cluster's objects, built on first use; NULL when the
 * cluster has no objects (or no memory). */
static const struct fg_cindex *cluster_index(struct builder *b, const char *cid)
{
	json_t *v = json_object_get(b->cindexes, cid), *objs, *obj;
	struct fg_cindex *ci;
	char key[FG_ID_LEN * 10 + 64];
	size_t i;

	if (v)
		return (const struct fg_cindex *)(uintptr_t)json_integer_value(v);
	if (b->snap->cluster_index)
		return b->snap->cluster_index(b->snap->index_ctx, cid);
	objs = json_object_get(b->snap->clusters, cid);
	if (!json_is_array(objs))
		return NULL;
	ci = calloc(1, sizeof(*ci));
	if (!ci)
		return NULL;
	ci->by_key = json_object();
	ci->slices = json_object();
	if (!ci->by_key || !ci->slices)
		goto err;
	json_array_foreach(objs, i, obj) {
		const char *kind = jstr_or(obj, "kind", ""), *ns, *name;

		ns = fg_obj_ns(obj);
		if (!strcmp(kind, "EndpointSlice")) {
			const char *owner = fg_obj_slice_owner(obj);

			if (!owner)
				continue;
			snprintf(key, sizeof(key), "%s\x1f%s", ns, owner);
			if (index_add(ci->slices, key, obj))
				goto err;
			continue;
		}
		name = fg_obj_name(obj);
		obj_key(key, sizeof(key), kind, ns, name ? name : "");
		/* The first of duplicates wins, as the linear search did. */
		if (index_add(ci->by_key, key, obj))
			goto err;
		ci->n++;
	}
	if (json_object_set_new(b->cindexes, cid, json_integer((json_int_t)(uintptr_t)ci)))
		goto err;
	return ci;
err:
	cindex_free(ci);
	return NULL;
}

static json_t *find_obj(const struct fg_cindex *ci, const char *kind, const char *ns,
			const char *name)
{
	char key[FG_ID_LEN * 10 + 64];

	obj_key(key, sizeof(key), kind, ns, name);
	return fg_index_first(json_object_get(ci->by_key, key));
}

/* Does the pod behind an endpoint belong to the subset? */
static bool pod_in_subset(const struct fg_cindex *objs, const char *ns, const char *pod,
			  const struct subset *ss)
{
	json_t *p, *labels;
	const char *k;
	json_t *v;
	int i;

	if (!ss->n_filters && !ss->opensergo)
		return true;
	if (!pod || !*pod)
		return false;
	p = find_obj(objs, "Pod", ns, pod);
	labels = p ? jget(p, "metadata.labels") : NULL;
	if (!json_is_object(labels))
		labels = NULL;
	for (i = 0; i < ss->n_filters; i++) {
		const char *have = labels ? jkey(labels, ss->filters[i].key) : NULL;

		if (!have || strcmp(have, ss->filters[i].value))
			return false;
	}
	if (!ss->opensergo)
		return true;
	if (!ss->name[0] || !strcmp(ss->name, "base")) {
		/* The base version: pods without any canary label. */
		if (!labels)
			return p != NULL;
		json_object_foreach(labels, k, v)
			if (!strncmp(k, LABEL_CANARY_PREFIX, strlen(LABEL_CANARY_PREFIX)))
				return false;
		return true;
	} else {
		char key[160];
		const char *have;

		snprintf(key, sizeof(key), "%s-%s", LABEL_CANARY_PREFIX, ss->name);
		have = labels ? jkey(labels, key) : NULL;
		return have && !strcmp(have, ss->name);
	}
}

__u32 fg_pod_hash(const char *pod)
{
	__u32 h;

	if (!pod || !*pod)
		return 0;
	h = fg_bytes_hash(pod, strlen(pod), 0x706f64u);
	return h ? h : 1;
}

static int add_endpoint(struct fg_target_cluster *tc, size_t *cap, const char *ip, __u16 port,
			const char *pod)
{
	struct fg_endpoint *ep, *v;
	int family;

	v = grow(tc->eps, cap, tc->n_eps, sizeof(*v));
	if (!v)
		return -ENOMEM;
	tc->eps = v;
	ep = &tc->eps[tc->n_eps];
	memset(ep, 0, sizeof(*ep));
	if (inet_pton(AF_INET, ip, &ep->addr.v4) == 1)
		family = FG_AF_INET;
	else if (inet_pton(AF_INET6, ip, ep->addr.bytes) == 1)
		family = FG_AF_INET6;
	else
		return 0; /* not an IP (an FQDN slice): skipped */
	ep->family = family;
	ep->port = port;
	ep->ready = true;
	ep->pod_hash = fg_pod_hash(pod);
	tc->n_eps++;
	return 0;
}

/* The Service port (by number or name) in a cluster's Service: its name and
 * target port. Returns false when the Service has no such port. */
static bool service_port(json_t *svc, __u16 number, const char *name, const char *proto,
			 const char **port_name,
			 __u16 *target_num, const char **target_name)
{
	json_t *ports, *p;
	struct fg_packed_ports it;
	struct fg_packed_port pp;
	size_t i;

	if (fg_packed_ports(svc, &it)) {
		while (fg_packed_next_port(&it, &pp)) {
			if (number ? pp.port != number : strcmp(pp.name, name))
				continue;
			if (proto && strcmp(pp.proto ? pp.proto : "TCP", proto))
				continue;
			*port_name = pp.name;
			*target_name = pp.target_name;
			if (!pp.has_target)
				*target_num = (__u16)pp.port;
			else if (!pp.target_name)
				*target_num = (__u16)pp.target_num;
			else
				*target_num = 0;
			return true;
		}
		return false;
	}
	ports = jget(svc, "spec.ports");
	json_array_foreach(ports, i, p) {
		json_t *num = json_object_get(p, "port");
		json_t *tp = json_object_get(p, "targetPort");
		const char *pname = jstr_or(p, "name", "");

		if (number ? (!json_is_integer(num) || json_integer_value(num) != number)
			   : strcmp(pname, name))
			continue;
		if (proto && strcmp(jstr_or(p, "protocol", "TCP"), proto))
			continue;
		*port_name = pname;
		*target_name = json_is_string(tp) ? json_string_value(tp) : NULL;
		if (json_is_integer(tp))
			*target_num = (__u16)json_integer_value(tp);
		else if (!tp)
			*target_num = (__u16)json_integer_value(num);
		else
			*target_num = 0;
		return true;
	}
	return false;
}

/* A compacted slice's ready addresses (compact.h). */
static int compact_endpoints(const struct fg_cindex *objs, const char *ns, json_t *slice,
			     __u16 pnum, const struct subset *ss, struct fg_target_cluster *tc,
			     size_t *cap)
{
	char ip[INET6_ADDRSTRLEN + 8], pod[FG_HOST_LEN];
	struct fg_compact_ep ep;
	const char *pos = NULL;
	int err;

	while (fg_compact_next(slice, &pos, &ep)) {
		if (ep.addr_len >= sizeof(ip) || ep.pod_len >= sizeof(pod))
			continue; /* not an IP literal, or no pod name: as below */
		memcpy(ip, ep.addr, ep.addr_len);
		ip[ep.addr_len] = '\0';
		memcpy(pod, ep.pod, ep.pod_len);
		pod[ep.pod_len] = '\0';
		if (!pod_in_subset(objs, ns, ep.pod_len ? pod : NULL, ss))
			continue;
		err = add_endpoint(tc, cap, ip, pnum, ep.pod_len ? pod : NULL);
		if (err)
			return err;
	}
	return 0;
}

/* EndpointSlices first (as kube-proxy does), Endpoints otherwise. */
static int slice_endpoints(const struct fg_cindex *objs, const char *ns, const char *svc_name,
			   const char *port_name, const struct subset *ss,
			   struct fg_target_cluster *tc, size_t *cap, bool *found)
{
	char key[FG_ID_LEN * 10 + 64];
	json_t *list, *obj, *ep, *addr, *port;
	size_t i, j, k, m;
	int err;

	snprintf(key, sizeof(key), "%s\x1f%s", ns, svc_name);
	list = json_object_get(objs->slices, key);
	for (i = 0; i < fg_index_count(list); i++) {
		struct fg_packed_ports it;
		struct fg_packed_port pp;
		__u16 pnum = 0;

		obj = fg_index_at(list, i);

		*found = true;
		if (fg_packed_ports(obj, &it)) {
			while (fg_packed_next_port(&it, &pp))
				if (!strcmp(pp.name, port_name))
					pnum = (__u16)pp.port;
		}
		json_array_foreach(json_object_get(obj, "ports"), m, port) {
			if (!strcmp(jstr_or(port, "name", ""), port_name) &&
			    json_is_integer(json_object_get(port, "port")))
				pnum = (__u16)json_integer_value(json_object_get(port, "port"));
		}
		if (!pnum)
			continue;
		if (fg_compact_is(obj)) {
			err = compact_endpoints(objs, ns, obj, pnum, ss, tc, cap);
			if (err)
				return err;
			continue;
		}
		json_array_foreach(json_object_get(obj, "endpoints"), j, ep) {
			json_t *ready = jget(ep, "conditions.ready");
			const char *pod = jstr(ep, "targetRef.name");

			/* An unset condition means unknown: counted ready, as
			 * kube-proxy does. */
			if (json_is_false(ready))
				continue;
			if (!pod_in_subset(objs, ns, pod, ss))
				continue;
			json_array_foreach(json_object_get(ep, "addresses"), k, addr) {
				if (!json_is_string(addr))
					continue;
				err = add_endpoint(tc, cap, json_string_value(addr), pnum, pod);
				if (err)
					return err;
			}
		}
	}
	return 0;
}

static int legacy_endpoints(const struct fg_cindex *objs, const char *ns, const char *svc_name,
			    const char *port_name, const struct subset *ss,
			    struct fg_target_cluster *tc, size_t *cap)
{
	json_t *eps = find_obj(objs, "Endpoints", ns, svc_name), *sub, *addr, *port;
	size_t i, j, m;
	int err;

	if (!eps)
		return 0;
	json_array_foreach(json_object_get(eps, "subsets"), i, sub) {
		__u16 pnum = 0;

		json_array_foreach(json_object_get(sub, "ports"), m, port) {
			if (!strcmp(jstr_or(port, "name", ""), port_name) &&
			    json_is_integer(json_object_get(port, "port")))
				pnum = (__u16)json_integer_value(json_object_get(port, "port"));
		}
		if (!pnum)
			continue;
		json_array_foreach(json_object_get(sub, "addresses"), j, addr) {
			const char *ip = jstr(addr, "ip");
			const char *pod = jstr(addr, "targetRef.name");

			if (!ip || !pod_in_subset(objs, ns, pod, ss))
				continue;
			err = add_endpoint(tc, cap, ip, pnum, pod);
			if (err)
				return err;
		}
	}
	return 0;
}

/* Fills tc with the ready endpoints of ns/svc:port in one cluster. Returns
 * 1 when the cluster has the Service (and port), 0 when not, or -errno. */
static int cluster_endpoints(const struct fg_cindex *objs, const char *ns, const char *svc_name,
			     __u16 port,
			     const char *port_name, const char *proto, const struct subset *ss,
			     struct fg_target_cluster *tc)
{
	json_t *svc = find_obj(objs, "Service", ns, svc_name);
	const char *pname = NULL, *tname = NULL;
	__u16 tnum = 0;
	bool slices = false;
	size_t cap = 0;
	int err;

	if (!svc || !service_port(svc, port, port_name, proto, &pname, &tnum, &tname))
		return 0;
	err = slice_endpoints(objs, ns, svc_name, pname, ss, tc, &cap, &slices);
	if (!err && !slices)
		err = legacy_endpoints(objs, ns, svc_name, pname, ss, tc, &cap);
	if (err)
		return err;
	/* No more are added: the doubling's slack goes (a plan holds
	 * 1,100,000 endpoints at N=10,000 C=10 E=10). */
	if (tc->n_eps && cap > tc->n_eps) {
		struct fg_endpoint *v = realloc(tc->eps, tc->n_eps * sizeof(*v));

		if (v)
			tc->eps = v;
	}
	tc->ready = tc->n_eps;
	return 1;
}

/* ---------- targets ---------- */

static struct fg_target *find_target(struct builder *b, const char *key)
{
	json_t *v = json_object_get(b->target_index, key);

	return v ? b->plan->targets[json_integer_value(v)] : NULL;
}

static struct fg_target_cluster *target_cluster(struct fg_target *t, const char *cluster)
{
	size_t i;

	for (i = 0; i < t->n_clusters; i++)
		if (!strcmp(t->clusters[i].cluster, cluster))
			return &t->clusters[i];
	return NULL;
}

static struct fg_target_cluster *target_add_cluster(struct fg_target *t, size_t *cap)
{
	struct fg_target_cluster *v = grow(t->clusters, cap, t->n_clusters, sizeof(*v));

	if (!v)
		return NULL;
	t->clusters = v;
	return &t->clusters[t->n_clusters++];
}

static void target_drop_last(struct fg_target *t)
{
	free(t->clusters[t->n_clusters - 1].eps);
	memset(&t->clusters[t->n_clusters - 1], 0, sizeof(t->clusters[0]));
	t->n_clusters--;
}

struct target_req {
	const char *ns;
	const char *service;
	__u16 port;
	const char *port_name;
	const struct subset *ss;
	const struct fg_target *fallback; /* a canary's main target */
	const char *proto; /* L4: "TCP"/"UDP"; NULL: any (Ingress backends) */
};

/* Adds the clusters serving req at one tier (skipping clusters already in
 * the target). only_cluster limits it to one cluster. Returns how many
 * clusters have the Service, or -errno. */
static int add_tier(struct builder *b, struct fg_target *t, size_t *cap,
		    const struct target_req *req, const struct subset *ss, __u8 tier,
		    const char *only_cluster, const char *why_fmt)
{
	struct fg_plan *p = b->plan;
	int have = 0, r;
	size_t i;

	for (i = 0; i < p->n_clusters; i++) {
		const char *cid = p->clusters[i];
		struct fg_target_cluster *tc;
		const struct fg_cindex *objs;

		if (only_cluster && strcmp(cid, only_cluster))
			continue;
		objs = cluster_index(b, cid);
		if (!objs)
			continue;
		if (target_cluster(t, cid)) {
			/* Already in (a canary's failover to its main route):
			 * it still counts as a cluster serving the Service. */
			struct fg_target_cluster probe = {};

			r = cluster_endpoints(objs, req->ns, req->service, req->port,
					      req->port_name, req->proto, ss, &probe);
			free(probe.eps);
			if (r < 0)
				return r;
			have += r;
			continue;
		}
		tc = target_add_cluster(t, cap);
		if (!tc)
			return -ENOMEM;
		copy(tc->cluster, sizeof(tc->cluster), cid);
		r = cluster_endpoints(objs, req->ns, req->service, req->port, req->port_name,
				      req->proto, ss, tc);
		if (r < 0)
			return r;
		if (r == 0) {
			target_drop_last(t);
			continue;
		}
		have++;
		tc->tier = tier;
		tc->weight = tc->ready;
		snprintf(tc->why, sizeof(tc->why), why_fmt, tc->ready);
	}
	return have;
}

static bool subset_matches_any(struct builder *b, const struct target_req *req)
{
	struct fg_target_cluster tc = {};
	struct fg_plan *p = b->plan;
	bool any = false;
	size_t i;

	for (i = 0; i < p->n_clusters && !any; i++) {
		const struct fg_cindex *objs = cluster_index(b, p->clusters[i]);

		if (!objs)
			continue;
		if (cluster_endpoints(objs, req->ns, req->service, req->port, req->port_name,
				      req->proto, req->ss, &tc) > 0 && tc.n_eps)
			any = true;
		free(tc.eps);
		memset(&tc, 0, sizeof(tc));
	}
	return any;
}

/* What a target is computed from, kept with it so a change of its
 * endpoints recomputes it alone (fg_plan_refresh). */
struct target_priv {
	struct subset ss;
	char proto[8];
	bool has_proto;
	struct fg_target *fallback; /* a canary's main target */
};

static void target_clear_clusters(struct fg_target *t)
{
	size_t i;

	for (i = 0; i < t->n_clusters; i++)
		free(t->clusters[i].eps);
	free(t->clusters);
	t->clusters = NULL;
	t->n_clusters = 0;
}

/* The target's clusters, tiers, weights and endpoints, from its request.
 * Returns how many clusters serve its Service (0: none), or -errno. */
static int fill_target_tiers(struct builder *b, struct fg_target *t);

static int fill_target(struct builder *b, struct fg_target *t)
{
	int r = fill_target_tiers(b, t);

	/* No more clusters are added: the doubling's slack goes (110,000
	 * target clusters of 144 bytes at N=10,000 C=10, 16 slots for 10). */
	if (r >= 0 && t->n_clusters) {
		struct fg_target_cluster *v = realloc(t->clusters, t->n_clusters * sizeof(*v));

		if (v)
			t->clusters = v;
	}
	return r;
}

static int fill_target_tiers(struct builder *b, struct fg_target *t)
{
	static const struct subset all = {};
	const struct target_priv *tp = t->req;
	struct target_req req = {
		.ns = t->ns, .service = t->service, .port = t->port, .port_name = t->port_name,
		.ss = &tp->ss, .fallback = tp->fallback,
		.proto = tp->has_proto ? tp->proto : NULL,
	};
	const struct subset *ss = &tp->ss;
	size_t cap = 0;
	int have, r;

	/* The product's rule: when no endpoint matches a subset, the route
	 * uses all endpoints of the Service. */
	if ((ss->n_filters || ss->opensergo) && !subset_matches_any(b, &req))
		ss = &all;

	if (ss->cluster[0]) {
		r = add_tier(b, t, &cap, &req, ss, 0, ss->cluster, "pinned by subset: %u ready");
	} else {
		r = add_tier(b, t, &cap, &req, ss, 0, NULL, "%u ready endpoints");
	}
	if (r < 0)
		return r;
	have = r;
	if (req.fallback) {
		size_t i;

		/* A canary falls back to its main route's clusters first. */
		for (i = 0; i < req.fallback->n_clusters; i++) {
			const struct fg_target_cluster *m = &req.fallback->clusters[i];
			struct fg_target_cluster *tc;

			if (m->tier || target_cluster(t, m->cluster))
				continue;
			tc = target_add_cluster(t, &cap);
			if (!tc)
				return -ENOMEM;
			*tc = *m;
			tc->eps = NULL;
			if (m->n_eps) {
				tc->eps = malloc(m->n_eps * sizeof(*tc->eps));
				if (!tc->eps)
					return -ENOMEM;
				memcpy(tc->eps, m->eps, m->n_eps * sizeof(*tc->eps));
			}
			tc->tier = 1;
			snprintf(tc->why, sizeof(tc->why), "failover: main route, %u ready", m->ready);
		}
	}
	/* Then any cluster serving the Service. */
	r = add_tier(b, t, &cap, &req, &all, req.fallback ? 2 : 1, NULL,
		     "failover: any cluster, %u ready");
	if (r < 0)
		return r;
	return have + r;
}

static int build_target(struct builder *b, const struct target_req *req,
			struct fg_target **out, char *reason)
{
	const struct subset *ss = req->ss;
	struct target_priv *tp;
	struct fg_target *t;
	char key[1024];
	int have, r;

	/* A canary's target also depends on its main route's (failover),
	 * which a hash of that key stands for. */
	char sel[512] = "";
	size_t off = 0;
	int f;

	for (f = 0; f < ss->n_filters && off < sizeof(sel); f++)
		off += snprintf(sel + off, sizeof(sel) - off, "%s=%s,", ss->filters[f].key,
				ss->filters[f].value);
	snprintf(key, sizeof(key), "%s/%s:%u%s/%s|%s%s|%s|%08x|%s", req->ns, req->service,
		 req->port, req->port_name ? req->port_name : "", req->proto ? req->proto : "",
		 ss->opensergo ? "opensergo:" : "", ss->name, ss->cluster,
		 req->fallback ? fg_bytes_hash(req->fallback->key, strlen(req->fallback->key), 0)
			       : 0, sel);
	t = find_target(b, key);
	if (t) {
		*out = t;
		return 0;
	}
	t = calloc(1, sizeof(*t));
	tp = calloc(1, sizeof(*tp));
	if (!t || !tp) {
		free(t);
		free(tp);
		return -ENOMEM;
	}
	t->req = tp;
	tp->ss = *ss;
	tp->fallback = (struct fg_target *)req->fallback;
	if (req->proto) {
		tp->has_proto = true;
		copy(tp->proto, sizeof(tp->proto), req->proto);
	}
	t->key = strdup(key);
	if (!t->key) {
		target_free(t);
		return -ENOMEM;
	}
	copy(t->ns, sizeof(t->ns), req->ns);
	copy(t->service, sizeof(t->service), req->service);
	copy(t->port_name, sizeof(t->port_name), req->port_name);
	copy(t->subset, sizeof(t->subset), ss->name);
	t->port = req->port;

	r = fill_target(b, t);
	if (r < 0)
		goto err;
	have = r;
	if (!have) {
		reasonf(reason, "service %s/%s%s%s not found in any attached cluster", req->ns,
			req->service, req->port_name && *req->port_name ? " port " : "",
			req->port_name ? req->port_name : "");
		target_free(t);
		return -ENOENT;
	}
	{
		struct fg_target **v = grow(b->plan->targets, &b->cap_targets, b->plan->n_targets,
					    sizeof(*v));

		if (!v) {
			r = -ENOMEM;
			goto err;
		}
		b->plan->targets = v;
		if (json_object_set_new(b->target_index, t->key,
					json_integer((json_int_t)b->plan->n_targets))) {
			r = -ENOMEM;
			goto err;
		}
		b->plan->targets[b->plan->n_targets++] = t;
	}
	*out = t;
	return 0;
err:
	target_free(t);
	return r;
}

/* ---------- ingresses ---------- */

struct path_entry {
	char host[FG_HOST_LEN];
	bool wildcard;
	char path[FG_PATH_LEN];
	enum fg_path_type type;
	bool is_default;
	char service[FG_ID_LEN * 4];
	__u16 port;
	char port_name[FG_ID_LEN];
};

static int parse_subset(struct builder *b, json_t *ing, struct subset *ss, char *reason)
{
	const char *name = annotation_raw(ing, ANN_SUBSET);
	const char *labels = annotation_raw(ing, ANN_SUBSET_LABELS);
	char *buf, *line, *save = NULL;

	memset(ss, 0, sizeof(*ss));
	if (!name && !labels)
		return 0;
	copy(ss->name, sizeof(ss->name), name);
	if (!labels) {
		ss->opensergo = true;
		return 0;
	}
	buf = strdup(labels);
	if (!buf)
		return -ENOMEM;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char key[128], val[128];
		int n;

		n = sscanf(line, " %127[^ \t:] %*[:]%127s", key, val);
		if (n != 2)
			n = sscanf(line, " %127s %127s", key, val);
		if (n == EOF || (n <= 0 && strspn(line, " \t\r") == strlen(line)))
			continue;
		if (n != 2) {
			reasonf(reason, "%s: line '%.64s' is not 'key value'", ANN_SUBSET_LABELS, line);
			free(buf);
			return -EINVAL;
		}
		if (!strcmp(key, LABEL_CLUSTER)) {
			if (!cluster_attached(b->plan, val)) {
				reasonf(reason, "%s: unknown cluster id %s (not an attached, readable cluster of any MseIngressConfig)",
					ANN_SUBSET_LABELS, val);
				free(buf);
				return -EINVAL;
			}
			copy(ss->cluster, sizeof(ss->cluster), val);
		} else if (ss->n_filters < MAX_LABEL_FILTERS) {
			copy(ss->filters[ss->n_filters].key, sizeof(ss->filters[0].key), key);
			copy(ss->filters[ss->n_filters].value, sizeof(ss->filters[0].value), val);
			ss->n_filters++;
		} else {
			reasonf(reason, "%s: more than %d labels", ANN_SUBSET_LABELS, MAX_LABEL_FILTERS);
			free(buf);
			return -EINVAL;
		}
	}
	free(buf);
	return 0;
}

static int parse_backend(json_t *backend, struct path_entry *pe, char *reason)
{
	json_t *port = jget(backend, "service.port");
	json_t *num = json_object_get(port, "number");
	const char *name = jstr(port, "name");
	const char *svc = jstr(backend, "service.name");

	if (!svc || !*svc) {
		reasonf(reason, "backend has no service.name (resource backends are not supported)");
		return -EINVAL;
	}
	copy(pe->service, sizeof(pe->service), svc);
	if (json_is_integer(num) && json_integer_value(num) > 0 && json_integer_value(num) < 65536) {
		pe->port = (__u16)json_integer_value(num);
	} else if (name && *name) {
		copy(pe->port_name, sizeof(pe->port_name), name);
	} else {
		reasonf(reason, "backend service %s has no valid port number or name", svc);
		return -EINVAL;
	}
	return 0;
}

static int parse_host(const char *host, struct path_entry *pe, char *reason)
{
	size_t i;

	pe->wildcard = false;
	if (!host) {
		pe->host[0] = '\0';
		return 0;
	}
	if (strlen(host) >= sizeof(pe->host)) {
		reasonf(reason, "host too long");
		return -EINVAL;
	}
	if (!strncmp(host, "*.", 2)) {
		pe->wildcard = true;
		host += 2;
	}
	for (i = 0; host[i]; i++) {
		unsigned char c = host[i];

		if (!(isalnum(c) || c == '-' || c == '.')) {
			reasonf(reason, "invalid host '%s'", host);
			return -EINVAL;
		}
	}
	if (!*host) {
		reasonf(reason, "invalid wildcard host");
		return -EINVAL;
	}
	for (i = 0; host[i]; i++)
		pe->host[i] = tolower((unsigned char)host[i]);
	pe->host[i] = '\0';
	return 0;
}

/* Every (host, path) of an Ingress; returns count or -errno with reason. */
static int ingress_paths(json_t *ing, struct path_entry **out, char *reason)
{
	json_t *rules = jget(ing, "spec.rules"), *rule, *paths, *path;
	json_t *dflt = jget(ing, "spec.defaultBackend");
	struct path_entry *v = NULL, *nv;
	size_t n = 0, cap = 0, i, j;
	int err;

	json_array_foreach(rules, i, rule) {
		const char *host = jstr(rule, "host");

		paths = jget(rule, "http.paths");
		json_array_foreach(paths, j, path) {
			const char *p = jstr_or(path, "path", "/");
			const char *type = jstr(path, "pathType");
			struct path_entry *pe;

			nv = grow(v, &cap, n, sizeof(*v));
			if (!nv) {
				err = -ENOMEM;
				goto err;
			}
			v = nv;
			pe = &v[n++];
			memset(pe, 0, sizeof(*pe));
			err = parse_host(host, pe, reason);
			if (err)
				goto err;
			if (!type) {
				reasonf(reason, "path %s has no pathType", p);
				err = -EINVAL;
				goto err;
			}
			if (!strcmp(type, "Exact"))
				pe->type = FG_PATH_EXACT;
			else if (!strcmp(type, "Prefix"))
				pe->type = FG_PATH_PREFIX;
			else if (!strcmp(type, "ImplementationSpecific"))
				pe->type = FG_PATH_IMPL;
			else {
				reasonf(reason, "path %s: unknown pathType %s", p, type);
				err = -EINVAL;
				goto err;
			}
			if (p[0] != '/' || strlen(p) >= sizeof(pe->path)) {
				reasonf(reason, "path '%.64s' must start with '/'", p);
				err = -EINVAL;
				goto err;
			}
			copy(pe->path, sizeof(pe->path), p);
			err = parse_backend(json_object_get(path, "backend"), pe, reason);
			if (err)
				goto err;
		}
	}
	if (dflt) {
		struct path_entry *pe;

		nv = grow(v, &cap, n, sizeof(*v));
		if (!nv) {
			err = -ENOMEM;
			goto err;
		}
		v = nv;
		pe = &v[n++];
		memset(pe, 0, sizeof(*pe));
		pe->is_default = true;
		pe->type = FG_PATH_PREFIX;
		copy(pe->path, sizeof(pe->path), "/");
		err = parse_backend(dflt, pe, reason);
		if (err)
			goto err;
	}
	if (!n) {
		reasonf(reason, "no rules with http paths and no defaultBackend");
		free(v);
		return -EINVAL;
	}
	*out = v;
	return (int)n;
err:
	free(v);
	return err;
}

static void route_key(char *buf, size_t len, const char *host, bool wildcard, const char *path,
		      enum fg_path_type type, bool is_default)
{
	snprintf(buf, len, "%s\x1f%d\x1f%s\x1f%d\x1f%d", host, wildcard, path, (int)type,
		 is_default);
}

static struct fg_route *find_route(struct builder *b, const struct path_entry *pe)
{
	char key[FG_HOST_LEN + FG_PATH_LEN + 32];
	json_t *v;

	route_key(key, sizeof(key), pe->host, pe->wildcard, pe->path, pe->type, pe->is_default);
	v = json_object_get(b->route_index, key);
	return v ? &b->plan->routes[json_integer_value(v)] : NULL;
}

static struct fg_ingress_status *add_ingress_status(struct builder *b, json_t *ing,
						    const char *cls, bool canary)
{
	struct fg_plan *p = b->plan;
	struct fg_ingress_status *st, *v;

	v = grow(p->ingresses, &b->cap_ing, p->n_ingresses, sizeof(*v));
	if (!v)
		return NULL;
	p->ingresses = v;
	st = &p->ingresses[p->n_ingresses++];
	copy(st->ns, sizeof(st->ns), jstr_or(ing, "metadata.namespace", "default"));
	copy(st->name, sizeof(st->name), jstr(ing, "metadata.name"));
	copy(st->ingress_class, sizeof(st->ingress_class), cls);
	st->canary = canary;
	return st;
}

static const char *ingress_class(json_t *ing)
{
	const char *cls = jstr(ing, "spec.ingressClassName");

	return cls ? cls : annotation_raw(ing, ANN_INGRESS_CLASS);
}

static const struct {
	const char *word;
	__u32 bit;
} next_upstream_words[] = {
	{ "error", FG_NU_ERROR },
	{ "timeout", FG_NU_TIMEOUT },
	{ "invalid_header", FG_NU_INVALID_HEADER },
	{ "http_500", FG_NU_HTTP_500 },
	{ "http_502", FG_NU_HTTP_502 },
	{ "http_503", FG_NU_HTTP_503 },
	{ "http_504", FG_NU_HTTP_504 },
	{ "http_403", FG_NU_HTTP_403 },
	{ "http_404", FG_NU_HTTP_404 },
	{ "http_429", FG_NU_HTTP_429 },
	{ "non_idempotent", FG_NU_NON_IDEMPOTENT },
};
#define N_NEXT_UPSTREAM_WORDS (sizeof(next_upstream_words) / sizeof(next_upstream_words[0]))

bool fg_next_upstream_parse(const char *s, __u32 *out, char *bad, size_t bad_len)
{
	__u32 nu = 0;
	bool off = false, any = false;

	while (*s) {
		size_t n, i;

		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		n = strcspn(s, " \t,");
		if (!n)
			break;
		any = true;
		if (n == 3 && !strncmp(s, "off", 3)) {
			off = true;
		} else {
			for (i = 0; i < N_NEXT_UPSTREAM_WORDS; i++)
				if (strlen(next_upstream_words[i].word) == n &&
				    !strncmp(s, next_upstream_words[i].word, n))
					break;
			if (i == N_NEXT_UPSTREAM_WORDS) {
				snprintf(bad, bad_len, "%.*s", (int)(n < 64 ? n : 64), s);
				return false;
			}
			nu |= next_upstream_words[i].bit;
		}
		s += n;
	}
	if (!any || (off && nu)) {
		snprintf(bad, bad_len, "%s", any ? "off with other values" : "(empty)");
		return false;
	}
	*out = off ? 0 : nu;
	return true;
}

void fg_next_upstream_str(__u32 nu, char *buf, size_t len)
{
	size_t i, o = 0;

	buf[0] = '\0';
	if (!nu) {
		snprintf(buf, len, "off");
		return;
	}
	for (i = 0; i < N_NEXT_UPSTREAM_WORDS && o < len; i++)
		if (nu & next_upstream_words[i].bit)
			o += snprintf(buf + o, len - o, "%s%s", o ? " " : "",
				      next_upstream_words[i].word);
}

/* The Ingress's proxy policy annotations (docs/annotations.md). */
static int parse_policy(json_t *ing, struct fg_route_policy *pol, char *reason)
{
	const char *nu = fg_annotation(ing, "proxy-next-upstream");
	const char *tries = fg_annotation(ing, "proxy-next-upstream-tries");
	char bad[72];

	pol->next_upstream = FG_NU_DEFAULT;
	pol->next_upstream_tries = FG_NU_DEFAULT_TRIES;
	if (nu && !fg_next_upstream_parse(nu, &pol->next_upstream, bad, sizeof(bad))) {
		reasonf(reason, "proxy-next-upstream '%.64s': '%s' is not one of error, timeout, "
			"invalid_header, http_500, http_502, http_503, http_504, http_403, "
			"http_404, http_429, non_idempotent, off", nu, bad);
		return -EINVAL;
	}
	if (tries) {
		if (!parse_u32(tries, &pol->next_upstream_tries) ||
		    pol->next_upstream_tries > FG_NU_MAX_TRIES) {
			reasonf(reason, "proxy-next-upstream-tries '%.32s' is not an integer from 0 "
				"to %d", tries, FG_NU_MAX_TRIES);
			return -EINVAL;
		}
		/* 0 is ingress-nginx's "no limit": as many as we ever try. */
		if (!pol->next_upstream_tries)
			pol->next_upstream_tries = FG_NU_MAX_TRIES;
	}
	return 0;
}

/* The Ingress's everyday annotations (route_opts.c), for its paths. */
static int parse_opts(json_t *ing, const struct path_entry *pes, int n,
		      struct fg_route_opts **opts, char *reason)
{
	const char *paths[64];
	int i;

	for (i = 0; i < n && i < 64; i++)
		paths[i] = pes[i].path;
	return fg_route_opts_parse(ing, paths, (size_t)i, opts, reason);
}

static int main_ingress(struct builder *b, json_t *ing, struct fg_ingress_status *st)
{
	struct fg_route_opts *opts = NULL;
	struct fg_route_policy policy;
	struct path_entry *pes = NULL;
	struct fg_target *targets[64];
	struct subset ss;
	int n, i, err;

	err = parse_subset(b, ing, &ss, st->reason);
	if (err)
		return err == -ENOMEM ? err : 0;
	if (parse_policy(ing, &policy, st->reason))
		return 0;
	n = ingress_paths(ing, &pes, st->reason);
	if (n < 0)
		return n == -ENOMEM ? n : 0;
	if (n > 64) {
		reasonf(st->reason, "more than 64 paths in one Ingress");
		goto out;
	}
	err = parse_opts(ing, pes, n, &opts, st->reason);
	if (err) {
		err = err == -ENOMEM ? err : 0;
		goto out;
	}
	/* Validate everything before the first route is added: an Ingress is
	 * taken whole or not at all. */
	for (i = 0; i < n; i++) {
		struct target_req req = {
			.ns = st->ns, .service = pes[i].service, .port = pes[i].port,
			.port_name = pes[i].port_name, .ss = &ss,
		};
		struct fg_route *other = find_route(b, &pes[i]);
		int j;

		if (other) {
			reasonf(st->reason, "host '%s%s' path %s (%s) is already routed by Ingress %s",
				pes[i].wildcard ? "*." : "", pes[i].host, pes[i].path,
				fg_path_type_name(pes[i].type), other->ingress);
			goto out;
		}
		for (j = 0; j < i; j++) {
			if (!strcmp(pes[j].host, pes[i].host) && pes[j].wildcard == pes[i].wildcard &&
			    !strcmp(pes[j].path, pes[i].path) && pes[j].type == pes[i].type &&
			    pes[j].is_default == pes[i].is_default) {
				reasonf(st->reason, "path %s appears twice for host '%s'",
					pes[i].path, pes[i].host);
				goto out;
			}
		}
		err = build_target(b, &req, &targets[i], st->reason);
		if (err == -ENOMEM)
			goto out;
		if (err) {
			err = 0;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		struct fg_route *r, *v;

		v = grow(b->plan->routes, &b->cap_routes, b->plan->n_routes, sizeof(*v));
		if (!v) {
			err = -ENOMEM;
			goto out;
		}
		b->plan->routes = v;
		r = &b->plan->routes[b->plan->n_routes++];
		copy(r->host, sizeof(r->host), pes[i].host);
		r->wildcard = pes[i].wildcard;
		r->path = strdup(pes[i].path);
		if (!r->path) {
			err = -ENOMEM;
			goto out;
		}
		r->type = pes[i].type;
		r->is_default = pes[i].is_default;
		r->policy = policy;
		r->opts = fg_route_opts_get(opts);
		r->path_idx = (__u8)i;
		snprintf(r->ingress, sizeof(r->ingress), "%s/%s", st->ns, st->name);
		r->target = targets[i];
		{
			char key[FG_HOST_LEN + FG_PATH_LEN + 32];

			route_key(key, sizeof(key), r->host, r->wildcard, r->path, r->type,
				  r->is_default);
			if (json_object_set_new(b->route_index, key,
						json_integer((json_int_t)(b->plan->n_routes - 1)))) {
				err = -ENOMEM;
				goto out;
			}
		}
	}
	st->accepted = true;
out:
	fg_route_opts_put(opts);
	free(pes);
	return err;
}

static int parse_canary(struct builder *b, json_t *ing, struct fg_canary *c, char *reason)
{
	const char *header = fg_annotation(ing, "canary-by-header");
	const char *value = fg_annotation(ing, "canary-by-header-value");
	const char *pattern = fg_annotation(ing, "canary-by-header-pattern");
	const char *cookie = fg_annotation(ing, "canary-by-cookie");
	const char *weight = fg_annotation(ing, "canary-weight");
	const char *total = fg_annotation(ing, "canary-weight-total");
	int rc;

	memset(c, 0, sizeof(*c));
	copy(c->header, sizeof(c->header), header);
	copy(c->header_value, sizeof(c->header_value), value);
	copy(c->cookie, sizeof(c->cookie), cookie);
	if ((value || pattern) && !header) {
		reasonf(reason, "canary-by-header-value/pattern needs canary-by-header");
		return -EINVAL;
	}
	if (header && !*header) {
		reasonf(reason, "canary-by-header is empty");
		return -EINVAL;
	}
	c->weight_total = 100;
	if (total && (!parse_u32(total, &c->weight_total) || !c->weight_total)) {
		reasonf(reason, "canary-weight-total '%.32s' is not a positive integer", total);
		return -EINVAL;
	}
	if (weight) {
		if (!parse_u32(weight, &c->weight)) {
			reasonf(reason, "canary-weight '%.32s' is not an integer", weight);
			return -EINVAL;
		}
		if (c->weight > c->weight_total) {
			reasonf(reason, "canary-weight %u is over canary-weight-total %u", c->weight,
				c->weight_total);
			return -EINVAL;
		}
		c->has_weight = true;
	}
	if (pattern && !value) {
		char msg[FG_REGEX_ERR_LEN];

		/* PCRE2, like ingress-nginx (fg_regex.h). */
		copy(c->header_pattern, sizeof(c->header_pattern), pattern);
		rc = fg_regex_compile(&c->pattern, pattern, msg, sizeof(msg));
		if (rc == -ENOMEM)
			return rc;
		if (rc) {
			reasonf(reason, "canary-by-header-pattern '%.64s' is not a valid regex: %s",
				pattern, msg);
			return -EINVAL;
		}
		c->has_pattern = true;
	}
	return 0;
}

/* Two canaries of a route conflict when the same request would match both
 * by the same rule: same header and value (or both header-only), or same
 * cookie. Weights must not add up past the whole. */
static const char *canary_conflict(const struct fg_route *r, const struct fg_canary *c)
{
	double share = c->has_weight ? (double)c->weight / c->weight_total : 0;
	size_t i;

	for (i = 0; i < r->n_canaries; i++) {
		const struct fg_canary *o = &r->canaries[i];

		if (c->header[0] && !strcasecmp(o->header, c->header) &&
		    !strcmp(o->header_value, c->header_value) &&
		    !strcmp(o->header_pattern, c->header_pattern))
			return o->ingress;
		if (c->cookie[0] && !strcmp(o->cookie, c->cookie))
			return o->ingress;
		if (o->has_weight)
			share += (double)o->weight / o->weight_total;
	}
	if (share > 1.0 + 1e-9)
		return "(weights over 100%)";
	return NULL;
}

static int canary_ingress(struct builder *b, json_t *ing, struct fg_ingress_status *st)
{
	struct path_entry *pes = NULL;
	struct fg_target *targets[64];
	struct fg_route *routes[64];
	struct fg_canary proto;
	struct subset ss;
	int n, i, err = 0;

	err = parse_subset(b, ing, &ss, st->reason);
	if (err)
		return err == -ENOMEM ? err : 0;
	err = parse_canary(b, ing, &proto, st->reason);
	if (err)
		return err == -ENOMEM ? err : 0;
	n = ingress_paths(ing, &pes, st->reason);
	if (n < 0) {
		err = n == -ENOMEM ? n : 0;
		goto out;
	}
	if (n > 64) {
		reasonf(st->reason, "more than 64 paths in one Ingress");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct target_req req = {
			.ns = st->ns, .service = pes[i].service, .port = pes[i].port,
			.port_name = pes[i].port_name, .ss = &ss,
		};
		const char *who;
		int j;

		routes[i] = find_route(b, &pes[i]);
		for (j = 0; routes[i] && j < i; j++) {
			if (routes[j] == routes[i]) {
				reasonf(st->reason, "path %s appears twice for host '%s'",
					pes[i].path, pes[i].host);
				goto out;
			}
		}
		if (!routes[i]) {
			reasonf(st->reason, "canary: no non-canary Ingress routes host '%s%s' path %s (%s)",
				pes[i].wildcard ? "*." : "", pes[i].host, pes[i].path,
				fg_path_type_name(pes[i].type));
			goto out;
		}
		if (routes[i]->n_canaries == FG_MAX_CANARIES) {
			reasonf(st->reason, "route already has %d canaries", FG_MAX_CANARIES);
			goto out;
		}
		who = canary_conflict(routes[i], &proto);
		if (who) {
			reasonf(st->reason, "canary conflicts with canary %s on path %s", who,
				pes[i].path);
			goto out;
		}
		req.fallback = routes[i]->target;
		err = build_target(b, &req, &targets[i], st->reason);
		if (err == -ENOMEM)
			goto out;
		if (err) {
			err = 0;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		struct fg_canary *c;

		/* One more each time: a canary is 1.4 KiB, and most routes
		 * with canaries have one (1,000 of them at N=10,000). */
		c = realloc(routes[i]->canaries, (routes[i]->n_canaries + 1) * sizeof(*c));
		if (!c) {
			err = -ENOMEM;
			goto out;
		}
		routes[i]->canaries = c;
		c = &routes[i]->canaries[routes[i]->n_canaries];
		memset(c, 0, sizeof(*c));
		*c = proto;
		if (proto.has_pattern) {
			/* Each route owns its compiled copy. */
			err = fg_regex_dup(&c->pattern, proto.pattern);
			if (err) {
				c->has_pattern = false;
				goto out;
			}
		}
		snprintf(c->ingress, sizeof(c->ingress), "%s/%s", st->ns, st->name);
		c->target = targets[i];
		routes[i]->n_canaries++;
	}
	st->accepted = true;
out:
	if (proto.has_pattern)
		fg_regex_free(proto.pattern);
	free(pes);
	return err;
}

static bool canary_flag(json_t *ing, bool *canary, char *reason)
{
	const char *v = fg_annotation(ing, "canary");

	*canary = false;
	if (!v)
		return true;
	if (!strcmp(v, "true")) {
		*canary = true;
		return true;
	}
	if (!strcmp(v, "false"))
		return true;
	reasonf(reason, "canary annotation '%.32s' is neither \"true\" nor \"false\"", v);
	return false;
}

static int ingresses(struct builder *b)
{
	json_t **ings;
	size_t n, i;
	int pass, err = 0;

	ings = sorted_of_kind(b->snap->fleet, "Ingress", &n);
	if (!ings)
		return -ENOMEM;
	/* Main Ingresses first, so canaries find their route whatever the
	 * order of creation. */
	for (pass = 0; pass < 2 && !err; pass++) {
		for (i = 0; i < n && !err; i++) {
			const char *cls = ingress_class(ings[i]);
			struct fg_ingress_status *st;
			char reason[FG_REASON_LEN] = "";
			bool canary;
			bool ok = canary_flag(ings[i], &canary, reason);

			if (ok && (int)canary != pass)
				continue;
			if (!ok && pass == 1)
				continue;
			st = add_ingress_status(b, ings[i], cls, canary);
			if (!st) {
				err = -ENOMEM;
				break;
			}
			if (!ok) {
				copy(st->reason, sizeof(st->reason), reason);
				continue;
			}
			if (!cls) {
				reasonf(st->reason, "no ingress class (spec.ingressClassName or the kubernetes.io/ingress.class annotation)");
				continue;
			}
			if (!json_object_get(b->served_classes, cls)) {
				reasonf(st->reason, "ingress class %s is not served by any MseIngressConfig", cls);
				continue;
			}
			if (b->opts->no_room) {
				char key[FG_ID_LEN * 5 + 2];
				json_t *why;

				snprintf(key, sizeof(key), "%s/%s", st->ns, st->name);
				why = json_object_get(b->opts->no_room, key);
				if (why) {
					copy(st->reason, sizeof(st->reason), json_string_value(why));
					continue;
				}
			}
			err = canary ? canary_ingress(b, ings[i], st) : main_ingress(b, ings[i], st);
		}
	}
	free(ings);
	return err;
}

/* ---------- L4 ---------- */

#define ANN_LB_SOURCE_RANGES "service.beta.kubernetes.io/load-balancer-source-ranges"

/* A LoadBalancer Service's source ranges: spec.loadBalancerSourceRanges,
 * else (as Kubernetes reads them) the annotation's comma-separated list.
 * -EINVAL with reason for an element that is no CIDR. */
static int lb_source_ranges(json_t *svc, struct fg_cidr **out, size_t *n, char *reason)
{
	json_t *ranges = jget(svc, "spec.loadBalancerSourceRanges"), *r;
	const char *ann = annotation_raw(svc, ANN_LB_SOURCE_RANGES);
	char *list = NULL, bad[96];
	size_t i, len = 0;
	int err;

	*out = NULL;
	*n = 0;
	if (json_array_size(ranges)) {
		json_array_foreach(ranges, i, r) {
			const char *v = json_string_value(r);

			len += (v ? strlen(v) : 0) + 1;
		}
		list = calloc(1, len + 1);
		if (!list)
			return -ENOMEM;
		json_array_foreach(ranges, i, r) {
			const char *v = json_string_value(r);

			/* A non-string element is an empty one: refused below. */
			if (i)
				strcat(list, ",");
			strcat(list, v && !strchr(v, ',') ? v : "");
		}
		err = fg_cidr_list_parse(list, out, n, bad, sizeof(bad));
		free(list);
		if (err == -EINVAL)
			reasonf(reason, "spec.loadBalancerSourceRanges: %s", bad);
		return err;
	}
	if (!ann || !*ann)
		return 0;
	err = fg_cidr_list_parse(ann, out, n, bad, sizeof(bad));
	if (err == -EINVAL)
		reasonf(reason, "%s: %s", ANN_LB_SOURCE_RANGES, bad);
	return err;
}

static int l4_services(struct builder *b)
{
	static const struct subset all = {};
	json_t **svcs, *port;
	size_t n, i, j;
	int err = 0;

	svcs = sorted_of_kind(b->snap->fleet, "Service", &n);
	if (!svcs)
		return -ENOMEM;
	for (i = 0; i < n && !err; i++) {
		const char *ns = jstr_or(svcs[i], "metadata.namespace", "default");
		const char *name = jstr_or(svcs[i], "metadata.name", "");
		char key[FG_ID_LEN * 5 + 16], why[FG_REASON_LEN];
		struct fg_cidr *allow;
		size_t n_allow;

		if (strcmp(jstr_or(svcs[i], "spec.type", ""), "LoadBalancer"))
			continue;
		snprintf(key, sizeof(key), "Service %s/%s", ns, name);
		if (b->opts->no_room && json_object_get(b->opts->no_room, key))
			continue;
		/* A range that cannot be read: the Service is not exposed
		 * at all (never to every source). */
		err = lb_source_ranges(svcs[i], &allow, &n_allow, why);
		if (err == -EINVAL) {
			err = 0;
			if (!b->plan->l4_rejected)
				b->plan->l4_rejected = json_object();
			if (!b->plan->l4_rejected ||
			    json_object_set_new(b->plan->l4_rejected, key, json_string(why)))
				err = -ENOMEM;
			continue;
		}
		if (err)
			break;
		json_array_foreach(jget(svcs[i], "spec.ports"), j, port) {
			json_t *num = json_object_get(port, "port");
			const char *proto = jstr_or(port, "protocol", "TCP");
			struct target_req req = { .ns = ns, .service = name, .ss = &all,
						  .proto = proto };
			char reason[FG_REASON_LEN];
			struct fg_l4_port *lp, *v;
			struct fg_target *t;

			if (!json_is_integer(num) || json_integer_value(num) <= 0 ||
			    json_integer_value(num) > 65535 ||
			    (strcmp(proto, "TCP") && strcmp(proto, "UDP")))
				continue;
			req.port = (__u16)json_integer_value(num);
			err = build_target(b, &req, &t, reason);
			if (err == -ENOMEM)
				break;
			if (err) {
				err = 0;
				continue;
			}
			v = grow(b->plan->l4, &b->cap_l4, b->plan->n_l4, sizeof(*v));
			if (!v) {
				err = -ENOMEM;
				break;
			}
			b->plan->l4 = v;
			lp = &b->plan->l4[b->plan->n_l4++];
			copy(lp->ns, sizeof(lp->ns), ns);
			copy(lp->name, sizeof(lp->name), name);
			lp->proto = strcmp(proto, "UDP") ? FG_PROTO_TCP : FG_PROTO_UDP;
			lp->port = req.port;
			lp->target = t;
			if (n_allow) {
				lp->allow = malloc(n_allow * sizeof(*allow));
				if (!lp->allow) {
					err = -ENOMEM;
					break;
				}
				memcpy(lp->allow, allow, n_allow * sizeof(*allow));
				lp->n_allow = n_allow;
			}
		}
		free(allow);
	}
	free(svcs);
	return err;
}

/* ---------- match order ---------- */

static int route_order(const void *a, const void *b)
{
	const struct fg_route *x = a, *y = b;
	bool xe, ye;
	int c;

	/* Default backends last; exact hosts before wildcards before any. */
	if (x->is_default != y->is_default)
		return x->is_default - y->is_default;
	c = (!x->host[0] ? 2 : x->wildcard) - (!y->host[0] ? 2 : y->wildcard);
	if (c)
		return c;
	c = strcmp(x->host, y->host);
	if (c)
		return c;
	/* Exact paths first, then the longest prefix; regex paths are
	 * prefixes here, ordered by length (ingress-nginx's order). */
	xe = x->type == FG_PATH_EXACT && !fg_route_is_regex(x);
	ye = y->type == FG_PATH_EXACT && !fg_route_is_regex(y);
	if (xe != ye)
		return xe ? -1 : 1;
	c = (int)strlen(y->path) - (int)strlen(x->path);
	if (c)
		return c;
	return strcmp(x->path, y->path);
}

/* A computed plan's arrays to their size: a refresh or a patch never adds
 * routes or Ingresses (10,000 routes of 1.6 KiB had 16,384 slots). */
static void plan_shrink(struct fg_plan *p)
{
	void *v;

	if (p->n_routes && (v = realloc(p->routes, p->n_routes * sizeof(*p->routes))))
		p->routes = v;
	if (p->n_ingresses &&
	    (v = realloc(p->ingresses, p->n_ingresses * sizeof(*p->ingresses))))
		p->ingresses = v;
}

int fg_plan_compute(const struct fg_snapshot *snap, const struct fg_plan_opts *opts,
		    struct fg_plan **out)
{
	struct builder b = { .snap = snap, .opts = opts };
	json_t **gws;
	size_t n, i;
	int err = 0;

	b.plan = calloc(1, sizeof(*b.plan));
	b.served_classes = json_object();
	b.cindexes = json_object();
	b.target_index = json_object();
	b.route_index = json_object();
	if (!b.plan || !b.served_classes || !b.cindexes || !b.target_index || !b.route_index) {
		err = -ENOMEM;
		goto out;
	}
	gws = sorted_of_kind(snap->fleet, "MseIngressConfig", &n);
	if (!gws) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n && !err; i++)
		err = add_gateway(&b, gws[i]);
	free(gws);
	if (!err)
		err = ingresses(&b);
	if (!err)
		err = l4_services(&b);
	if (!err)
		err = fg_tls_plan_compute(snap->fleet, b.plan, opts->tls_cache, (time_t)opts->now,
					  NULL);
	if (!err)
		err = fg_routes_enforce_regex(b.plan->routes, b.plan->n_routes);
	if (!err && b.plan->n_routes)
		qsort(b.plan->routes, b.plan->n_routes, sizeof(*b.plan->routes), route_order);
	if (!err)
		plan_shrink(b.plan);
out:
	json_decref(b.served_classes);
	if (b.cindexes) {
		const char *k;
		json_t *v;

		json_object_foreach(b.cindexes, k, v)
			cindex_free((struct fg_cindex *)(uintptr_t)json_integer_value(v));
		json_decref(b.cindexes);
	}
	json_decref(b.target_index);
	json_decref(b.route_index);
	if (err) {
		fg_plan_free(b.plan);
		return err;
	}
	*out = b.plan;
	return 0;
}

/* ---------- matching helpers ---------- */

/* ---------- incremental changes ---------- */

static void free_cindexes(json_t *cindexes)
{
	const char *k;
	json_t *v;

	if (!cindexes)
		return;
	json_object_foreach(cindexes, k, v)
		cindex_free((struct fg_cindex *)(uintptr_t)json_integer_value(v));
	json_decref(cindexes);
}

static bool target_affected(const struct fg_target *t, json_t *services, json_t *pod_ns)
{
	const struct target_priv *tp = t->req;
	char key[FG_ID_LEN * 6];

	if (!tp)
		return false;
	snprintf(key, sizeof(key), "%s\x1f%s", t->ns, t->service);
	if (services && json_object_get(services, key))
		return true;
	return pod_ns && (tp->ss.n_filters || tp->ss.opensergo) && json_object_get(pod_ns, t->ns);
}

int fg_plan_refresh(struct fg_plan *plan, const struct fg_snapshot *snap,
		    const struct fg_plan_opts *opts, json_t *services, json_t *pod_ns,
		    struct fg_target ***out, size_t *n_out)
{
	struct builder b = { .snap = snap, .opts = opts, .plan = plan };
	struct fg_target **done = NULL;
	json_t *marked_set = NULL;
	bool *marked = NULL, more;
	char ptr[32];
	size_t i, n = 0;
	int pass, r, err = 0;

	*out = NULL;
	*n_out = 0;
	if (!plan->n_targets)
		return 0;
	marked = calloc(plan->n_targets, sizeof(*marked));
	done = calloc(plan->n_targets, sizeof(*done));
	b.cindexes = json_object();
	if (!marked || !done || !b.cindexes) {
		err = -ENOMEM;
		goto out;
	}
	marked_set = json_object();
	if (!marked_set) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < plan->n_targets; i++) {
		marked[i] = target_affected(plan->targets[i], services, pod_ns);
		if (marked[i]) {
			snprintf(ptr, sizeof(ptr), "%p", (void *)plan->targets[i]);
			json_object_set_new(marked_set, ptr, json_true());
		}
	}
	/* A canary follows its main target: refreshed after it. */
	do {
		more = false;
		for (i = 0; i < plan->n_targets; i++) {
			const struct target_priv *tp = plan->targets[i]->req;

			if (marked[i] || !tp || !tp->fallback)
				continue;
			snprintf(ptr, sizeof(ptr), "%p", (void *)tp->fallback);
			if (!json_object_get(marked_set, ptr))
				continue;
			marked[i] = more = true;
			snprintf(ptr, sizeof(ptr), "%p", (void *)plan->targets[i]);
			json_object_set_new(marked_set, ptr, json_true());
		}
	} while (more);
	/* Main targets first, then the canaries on them. */
	for (pass = 0; pass < 2 && !err; pass++) {
		for (i = 0; i < plan->n_targets && !err; i++) {
			struct fg_target *t = plan->targets[i];
			const struct target_priv *tp = t->req;

			if (!marked[i] || (pass == 0) != !tp->fallback)
				continue;
			target_clear_clusters(t);
			r = fill_target(&b, t);
			if (r < 0)
				err = r;
			else if (r == 0)
				err = -EAGAIN; /* no cluster serves it: a full computation */
			else
				done[n++] = t;
		}
	}
out:
	free_cindexes(b.cindexes);
	json_decref(marked_set);
	free(marked);
	if (err) {
		free(done);
		return err;
	}
	*out = done;
	*n_out = n;
	return 0;
}

int fg_plan_patch_ingress(struct fg_plan *plan, json_t *ing)
{
	const char *ns = jstr_or(ing, "metadata.namespace", "default");
	const char *name = jstr_or(ing, "metadata.name", "");
	char who[FG_ID_LEN * 5 + 2], reason[FG_REASON_LEN];
	struct fg_ingress_status *st = NULL;
	bool canary;
	size_t i, j;
	int patched = 0;

	snprintf(who, sizeof(who), "%s/%s", ns, name);
	for (i = 0; i < plan->n_ingresses; i++)
		if (!strcmp(plan->ingresses[i].ns, ns) && !strcmp(plan->ingresses[i].name, name))
			st = &plan->ingresses[i];
	if (!st || !st->accepted || !canary_flag(ing, &canary, reason) || canary != st->canary)
		return -EAGAIN;
	if (!canary) {
		struct fg_route_policy pol;

		if (parse_policy(ing, &pol, reason))
			return -EAGAIN;
		for (i = 0; i < plan->n_routes; i++) {
			if (strcmp(plan->routes[i].ingress, who))
				continue;
			plan->routes[i].policy = pol;
			patched = 1;
		}
		return patched;
	}
	for (i = 0; i < plan->n_routes; i++) {
		struct fg_route *r = &plan->routes[i];

		for (j = 0; j < r->n_canaries; j++) {
			struct fg_canary *c = &r->canaries[j], next, saved;
			const char *conflict;

			if (strcmp(c->ingress, who))
				continue;
			if (parse_canary(NULL, ing, &next, reason))
				return -EAGAIN;
			/* Checked against the route's other canaries. */
			saved = *c;
			memset(c, 0, sizeof(*c));
			conflict = canary_conflict(r, &next);
			*c = saved;
			if (conflict) {
				if (next.has_pattern)
					fg_regex_free(next.pattern);
				return -EAGAIN;
			}
			if (c->has_pattern)
				fg_regex_free(c->pattern);
			copy(next.ingress, sizeof(next.ingress), c->ingress);
			next.target = c->target;
			*c = next;
			patched = 1;
		}
	}
	return patched;
}

bool fg_path_matches(enum fg_path_type type, const char *pattern, const char *path)
{
	size_t n;

	if (type == FG_PATH_EXACT)
		return !strcmp(pattern, path);
	/* Prefix: element-wise; a trailing '/' in the pattern is ignored. */
	n = strlen(pattern);
	while (n > 1 && pattern[n - 1] == '/')
		n--;
	if (n == 1 && pattern[0] == '/')
		return path[0] == '/';
	if (strncmp(pattern, path, n))
		return false;
	return path[n] == '\0' || path[n] == '/';
}

bool fg_host_matches(const char *pattern, bool wildcard, const char *host)
{
	const char *dot;

	if (!pattern[0])
		return true;
	if (!wildcard)
		return !strcasecmp(pattern, host);
	/* "*.example.com" matches "a.example.com", not "a.b.example.com" nor
	 * "example.com". */
	dot = strchr(host, '.');
	if (!dot || dot == host)
		return false;
	return !strcasecmp(dot + 1, pattern);
}

const char *fg_path_type_name(enum fg_path_type type)
{
	switch (type) {
	case FG_PATH_EXACT:
		return "Exact";
	case FG_PATH_PREFIX:
		return "Prefix";
	default:
		return "ImplementationSpecific";
	}
}

/* ---------- display ---------- */

static json_t *target_json(const struct fg_target *t)
{
	json_t *clusters = json_array();
	__u32 tier_total[256] = {};
	size_t i;

	for (i = 0; i < t->n_clusters; i++)
		tier_total[t->clusters[i].tier] += t->clusters[i].weight;
	for (i = 0; i < t->n_clusters; i++) {
		const struct fg_target_cluster *c = &t->clusters[i];
		__u32 tot = tier_total[c->tier];

		json_array_append_new(clusters,
			json_pack("{s:s, s:i, s:I, s:I, s:f, s:s}", "cluster", c->cluster,
				  "tier", (int)c->tier, "weight", (json_int_t)c->weight,
				  "ready", (json_int_t)c->ready,
				  "share", tot ? 100.0 * c->weight / tot : 0.0, "why", c->why));
	}
	return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "namespace", t->ns, "service",
			 t->service, "port", (json_int_t)t->port, "portName", t->port_name,
			 "subset", t->subset, "clusters", clusters);
}

/* What the route's everyday annotations set (route_opts.c), for
 * `fleetgatectl get routes -o json`. */
static json_t *opts_json(const struct fg_route *r)
{
	const struct fg_route_opts *o = r->opts;
	json_t *j = json_object();

	if (!j)
		return NULL;
	if (fg_route_is_regex(r))
		json_object_set_new(j, "pathRegex", json_true());
	if (o->n_allow)
		json_object_set_new(j, "allowRanges", json_integer((json_int_t)o->n_allow));
	if (o->n_deny)
		json_object_set_new(j, "denyRanges", json_integer((json_int_t)o->n_deny));
	if (o->rewrite_target)
		json_object_set_new(j, "rewriteTarget", json_string(o->rewrite_target));
	if (o->app_root)
		json_object_set_new(j, "appRoot", json_string(o->app_root));
	if (o->redirect)
		json_object_set_new(j, "redirect", json_pack("{s:s, s:i}", "url", o->redirect,
							     "code", o->redirect_code));
	if (o->upstream_vhost)
		json_object_set_new(j, "upstreamVhost", json_string(o->upstream_vhost));
	if (o->connect_timeout_ms)
		json_object_set_new(j, "connectTimeoutMs", json_integer(o->connect_timeout_ms));
	if (o->read_timeout_ms)
		json_object_set_new(j, "readTimeoutMs", json_integer(o->read_timeout_ms));
	if (o->send_timeout_ms)
		json_object_set_new(j, "sendTimeoutMs", json_integer(o->send_timeout_ms));
	if (o->body_limit_set)
		json_object_set_new(j, "bodyLimit", json_integer((json_int_t)o->body_limit));
	if (o->affinity)
		json_object_set_new(j, "affinityCookie", json_string(o->cookie_name));
	return j;
}

json_t *fg_plan_routes_json(const struct fg_plan *plan)
{
	json_t *arr = json_array();
	size_t i, j;

	for (i = 0; i < plan->n_routes; i++) {
		const struct fg_route *r = &plan->routes[i];
		json_t *canaries = json_array(), *rj;
		char host[FG_HOST_LEN + 2];

		snprintf(host, sizeof(host), "%s%s", r->wildcard ? "*." : "", r->host[0] ? r->host : "*");
		for (j = 0; j < r->n_canaries; j++) {
			const struct fg_canary *c = &r->canaries[j];
			json_t *cj = json_pack("{s:s, s:o}", "ingress", c->ingress, "target",
					       target_json(c->target));

			if (c->header[0])
				json_object_set_new(cj, "header", json_string(c->header));
			if (c->header_value[0])
				json_object_set_new(cj, "headerValue", json_string(c->header_value));
			if (c->has_pattern)
				json_object_set_new(cj, "headerPattern", json_string(c->header_pattern));
			if (c->cookie[0])
				json_object_set_new(cj, "cookie", json_string(c->cookie));
			if (c->has_weight) {
				json_object_set_new(cj, "weight", json_integer(c->weight));
				json_object_set_new(cj, "weightTotal", json_integer(c->weight_total));
			}
			json_array_append_new(canaries, cj);
		}
		rj = json_pack("{s:s, s:s, s:s, s:b, s:s, s:o, s:o}",
			"host", host, "path", r->path, "pathType", fg_path_type_name(r->type),
			"default", r->is_default, "ingress", r->ingress,
			"target", target_json(r->target), "canaries", canaries);
		if (rj && r->opts)
			json_object_set_new(rj, "annotations", opts_json(r));
		json_array_append_new(arr, rj);
	}
	return arr;
}

json_t *fg_plan_ingresses_json(const struct fg_plan *plan, const char *address)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < plan->n_ingresses; i++) {
		const struct fg_ingress_status *st = &plan->ingresses[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:b}", "namespace", st->ns, "name",
				      st->name, "class", st->ingress_class, "canary", st->canary,
				      "accepted", st->accepted);

		if (st->accepted && address && *address)
			json_object_set_new(o, "loadBalancer",
					    json_pack("{s:[{s:s}]}", "ingress", "ip", address));
		if (!st->accepted)
			json_object_set_new(o, "reason", json_string(st->reason));
		json_array_append_new(arr, o);
	}
	return arr;
}
