// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <bpf/bpf.h>

#include "apply.h"
#include "configdir.h"
#include "control.h"
#include "kube.h"
#include "log.h"

struct fg_control {
	struct fg_dataplane *dp;
	struct fg_configdir *cd;
	struct fg_kube *kube;
	int epfd;             /* config directory + Kubernetes API */
	json_t *cluster_errors; /* cluster id -> why it cannot be read */
	json_t *kube_errors;  /* [{origin, reason}] for status */
	struct fg_applier *applier;
	struct fg_plan *plan;
	json_t *fleet;        /* current snapshot */
	json_t *clusters;
	json_t *first_seen;   /* gateway name -> time first seen */
	bool dataplane_ready;
	bool listening;
	char address[64];     /* the listen address, as shown in status */
	int listen_family;
	__u16 listen_port;
};

int fg_parse_listen(const char *s, struct fg_addr *addr, int *family, __u16 *port)
{
	char host[64];
	const char *colon;
	unsigned long p;
	char *end;
	size_t n;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		n = close - s - 1;
		colon = close + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		n = colon - s;
	}
	if (!n || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || !p || p > 65535 || end == colon + 1)
		return -EINVAL;
	*port = p;
	return fg_addr_parse(host, addr, family);
}

static void drop_plan(struct fg_control *c)
{
	fg_plan_free(c->plan);
	c->plan = NULL;
}

static int add_cluster_source(struct fg_kube *k, const char *spec)
{
	struct fg_kube_source_opts o = {};
	char *dup = strdup(spec), *eq, *hash;
	int err;

	if (!dup)
		return -ENOMEM;
	eq = strchr(dup, '=');
	if (!eq || eq == dup || !eq[1]) {
		pr_warn("invalid --cluster-kubeconfig '%s': expected ID=PATH[#CONTEXT]\n", spec);
		free(dup);
		return -EINVAL;
	}
	*eq = '\0';
	hash = strchr(eq + 1, '#');
	if (hash)
		*hash++ = '\0';
	o.origin = dup;
	o.kubeconfig_path = eq + 1;
	o.context = hash;
	err = fg_kube_add_source(k, &o);
	free(dup);
	return err;
}

static int open_kube(struct fg_control *c, const struct fg_control_opts *opts)
{
	const char *const *spec;
	int err;

	if (!opts->kubeconfig && !(opts->cluster_kubeconfigs && opts->cluster_kubeconfigs[0]))
		return 0;
	err = fg_kube_new(&c->kube);
	if (err)
		return err;
	if (opts->kubeconfig) {
		struct fg_kube_source_opts o = {
			.kubeconfig_path = strcmp(opts->kubeconfig, "in-cluster") ? opts->kubeconfig
										  : NULL,
			.context = opts->kube_context,
			.cluster_secrets = opts->cluster_secrets,
		};

		err = fg_kube_add_source(c->kube, &o);
		if (err)
			return err;
	}
	for (spec = opts->cluster_kubeconfigs; spec && *spec; spec++) {
		err = add_cluster_source(c->kube, *spec);
		if (err)
			return err;
	}
	return 0;
}

static int open_epoll(struct fg_control *c)
{
	struct epoll_event ev = { .events = EPOLLIN };

	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0)
		return -errno;
	if (c->cd) {
		ev.data.fd = fg_configdir_fd(c->cd);
		if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
			return -errno;
	}
	if (c->kube) {
		ev.data.fd = fg_kube_fd(c->kube);
		if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
			return -errno;
	}
	return 0;
}

int fg_control_new(struct fg_control **out, struct fg_dataplane *dp,
		   const struct fg_control_opts *opts)
{
	struct fg_applier_opts aopts = {};
	struct fg_control *c;
	bool changed;
	int err;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dp = dp;
	c->epfd = -1;
	c->fleet = json_array();
	c->clusters = json_object();
	c->first_seen = json_object();
	c->cluster_errors = json_object();
	c->kube_errors = json_array();
	if (!c->fleet || !c->clusters || !c->first_seen || !c->cluster_errors || !c->kube_errors) {
		err = -ENOMEM;
		goto err;
	}
	if (opts->listen) {
		err = fg_parse_listen(opts->listen, &aopts.listen_addr, &aopts.listen_family,
				      &aopts.listen_port);
		if (err) {
			pr_warn("invalid --listen '%s': expected ADDR:PORT or [ADDR6]:PORT\n",
				opts->listen);
			goto err;
		}
		fg_addr_str(&aopts.listen_addr, aopts.listen_family, c->address,
			    sizeof(c->address));
		c->listen_family = aopts.listen_family;
		c->listen_port = aopts.listen_port;
	}
	err = fg_applier_new(&c->applier, dp, &aopts);
	if (err)
		goto err;
	if (opts->config_dir) {
		err = fg_configdir_open(&c->cd, opts->config_dir);
		if (err) {
			pr_warn("cannot watch config directory %s: %s\n", opts->config_dir,
				strerror(-err));
			goto err;
		}
		err = fg_configdir_rescan(c->cd, &changed);
		if (err) {
			pr_warn("cannot read config directory %s: %s\n", opts->config_dir,
				strerror(-err));
			goto err;
		}
	}
	err = open_kube(c, opts);
	if (err)
		goto err;
	err = open_epoll(c);
	if (err)
		goto err;
	*out = c;
	return 0;
err:
	fg_control_free(c);
	return err;
}

void fg_control_free(struct fg_control *c)
{
	if (!c)
		return;
	drop_plan(c);
	fg_applier_free(c->applier);
	if (c->cd)
		fg_configdir_close(c->cd);
	fg_kube_free(c->kube);
	if (c->epfd >= 0)
		close(c->epfd);
	json_decref(c->cluster_errors);
	json_decref(c->kube_errors);
	json_decref(c->fleet);
	json_decref(c->clusters);
	json_decref(c->first_seen);
	free(c);
}

int fg_control_fd(const struct fg_control *c)
{
	return c->epfd;
}

void fg_control_set_state(struct fg_control *c, bool dataplane_ready, bool listening)
{
	c->dataplane_ready = dataplane_ready;
	c->listening = listening;
}

const struct fg_plan *fg_control_plan(const struct fg_control *c)
{
	return c->plan;
}

int fg_control_service_id(struct fg_control *c, const struct fg_target *t)
{
	return fg_applier_service_id(c->applier, t);
}

static int collect_obj(const char *origin, const char *path, json_t *obj, void *ctx)
{
	struct fg_control *c = ctx;
	json_t *arr;

	if (!origin)
		return json_array_append(c->fleet, obj) ? -ENOMEM : 0;
	arr = json_object_get(c->clusters, origin);
	if (!arr) {
		arr = json_array();
		if (!arr || json_object_set_new(c->clusters, origin, arr))
			return -ENOMEM;
	}
	return json_array_append(arr, obj) ? -ENOMEM : 0;
}

static int collect_kube(const char *origin, json_t *obj, void *ctx)
{
	return collect_obj(origin, NULL, obj, ctx);
}

static void kube_source(const char *origin, bool synced, void *ctx)
{
	struct fg_control *c = ctx;

	if (!origin)
		return;
	/* A reachable cluster with no objects is readable, only empty. */
	if (synced && !json_object_get(c->clusters, origin))
		json_object_set_new(c->clusters, origin, json_array());
	if (!synced && !json_object_get(c->cluster_errors, origin))
		json_object_set_new(c->cluster_errors, origin,
				    json_string("waiting for the first list from its API server"));
}

static void kube_error(const char *origin, const char *reason, void *ctx)
{
	struct fg_control *c = ctx;

	json_array_append_new(c->kube_errors, json_pack("{s:s, s:s}", "origin",
							origin ? origin : "fleet", "reason", reason));
	if (origin)
		json_object_set_new(c->cluster_errors, origin, json_string(reason));
}

static int snapshot(struct fg_control *c)
{
	int err;

	json_array_clear(c->fleet);
	json_object_clear(c->clusters);
	json_object_clear(c->cluster_errors);
	json_array_clear(c->kube_errors);
	if (c->cd) {
		err = fg_configdir_foreach(c->cd, collect_obj, c);
		if (err)
			return err;
	}
	if (c->kube) {
		err = fg_kube_foreach(c->kube, collect_kube, c);
		if (err)
			return err;
		fg_kube_foreach_error(c->kube, kube_error, c);
		fg_kube_foreach_source(c->kube, kube_source, c);
	}
	return 0;
}

static void note_first_seen(struct fg_control *c)
{
	size_t i;

	for (i = 0; i < c->plan->n_gateways; i++) {
		const char *name = c->plan->gateways[i].name;

		if (!json_object_get(c->first_seen, name))
			json_object_set_new(c->first_seen, name, json_integer(time(NULL)));
	}
}

static void log_rejections(struct fg_control *c, const struct fg_plan *old)
{
	size_t i, j;

	for (i = 0; i < c->plan->n_ingresses; i++) {
		const struct fg_ingress_status *st = &c->plan->ingresses[i];
		bool same = false;

		if (st->accepted)
			continue;
		/* Say it once, not on every recomputation. */
		for (j = 0; old && j < old->n_ingresses; j++)
			if (!strcmp(old->ingresses[j].ns, st->ns) &&
			    !strcmp(old->ingresses[j].name, st->name) &&
			    !strcmp(old->ingresses[j].reason, st->reason))
				same = true;
		if (!same)
			pr_warn("Ingress %s/%s rejected: %s\n", st->ns, st->name, st->reason);
	}
	for (i = 0; i < c->plan->n_gateways; i++) {
		const struct fg_gateway_status *gw = &c->plan->gateways[i];

		if (!strcmp(gw->phase, "Failed"))
			pr_warn("MseIngressConfig %s: Failed: %s\n", gw->name, gw->message);
	}
}

int fg_control_recompute(struct fg_control *c)
{
	struct fg_plan_opts popts = {
		.dataplane_ready = c->dataplane_ready,
		.listening = c->listening,
		.address = c->address,
	};
	struct fg_snapshot snap;
	struct fg_plan *plan;
	int err;

	err = snapshot(c);
	if (err)
		return err;
	snap.fleet = c->fleet;
	snap.clusters = c->clusters;
	snap.cluster_errors = c->cluster_errors;
	err = fg_plan_compute(&snap, &popts, &plan);
	if (err) {
		pr_warn("cannot compute routes: %s\n", strerror(-err));
		return err;
	}
	err = fg_applier_apply(c->applier, plan);
	if (err) {
		/* The maps keep the previous plan's state where this one could
		 * not be written; the previous plan stays the one shown. */
		pr_warn("cannot write routes to the data plane: %s\n", strerror(-err));
		fg_plan_free(plan);
		return err;
	}
	{
		struct fg_plan *old = c->plan;

		c->plan = plan;
		log_rejections(c, old);
		fg_plan_free(old);
	}
	note_first_seen(c);
	pr_debug("routes: %zu routes, %zu L4 ports, %zu targets, %zu clusters\n",
		 plan->n_routes, plan->n_l4, plan->n_targets, plan->n_clusters);
	return 0;
}

int fg_control_process(struct fg_control *c)
{
	struct epoll_event evs[4];
	bool from_dir = false, from_kube = false;
	int err;

	/* Drain the wakeups; the sources are read below whatever woke us. */
	epoll_wait(c->epfd, evs, 4, 0);
	if (c->cd) {
		err = fg_configdir_process(c->cd, &from_dir);
		if (err)
			return err;
	}
	if (c->kube) {
		err = fg_kube_process(c->kube, &from_kube);
		if (err)
			return err;
	}
	return from_dir || from_kube ? fg_control_recompute(c) : 0;
}

/* ---------- admin answers ---------- */

/* kubectl's short durations: 45s, 3m15s, 25m, 5h10m, 2d4h, 9d. */
static void human_age(long secs, char *buf, size_t len)
{
	long m = secs / 60, h = secs / 3600, d = secs / 86400;

	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(buf, len, "%lds", secs);
	else if (m < 10)
		snprintf(buf, len, secs % 60 ? "%ldm%lds" : "%ldm", m, secs % 60);
	else if (h < 3)
		snprintf(buf, len, "%ldm", m);
	else if (h < 8)
		snprintf(buf, len, m % 60 ? "%ldh%ldm" : "%ldh", h, m % 60);
	else if (h < 48)
		snprintf(buf, len, "%ldh", h);
	else if (d < 8)
		snprintf(buf, len, h % 24 ? "%ldd%ldh" : "%ldd", d, h % 24);
	else
		snprintf(buf, len, "%ldd", d);
}

static time_t created_at(struct fg_control *c, const struct fg_gateway_status *gw)
{
	struct tm tm = {};
	json_t *v;

	if (gw->created[0] && strptime(gw->created, "%Y-%m-%dT%H:%M:%S", &tm))
		return timegm(&tm);
	v = json_object_get(c->first_seen, gw->name);
	return json_is_integer(v) ? (time_t)json_integer_value(v) : time(NULL);
}

static json_t *answer_gateways(struct fg_control *c, const char *name)
{
	json_t *items = json_array();
	size_t i;

	for (i = 0; c->plan && i < c->plan->n_gateways; i++) {
		const struct fg_gateway_status *gw = &c->plan->gateways[i];
		char age[32];

		if (name && strcmp(name, gw->name))
			continue;
		human_age((long)(time(NULL) - created_at(c, gw)), age, sizeof(age));
		json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:O}", "name", gw->name,
						       "status", gw->phase, "age", age,
						       "object", gw->object));
	}
	if (name && !json_array_size(items)) {
		json_decref(items);
		return json_pack("{s:b, s:s}", "ok", 0, "error", "mseingressconfig not found");
	}
	return json_pack("{s:b, s:o}", "ok", 1, "items", items);
}

static bool obj_in_ns(json_t *obj, const char *kind, const char *ns, const char *svc)
{
	const char *k = json_string_value(json_object_get(obj, "kind"));
	json_t *md = json_object_get(obj, "metadata");
	const char *ons = json_string_value(json_object_get(md, "namespace"));

	if (!k || strcmp(k, kind))
		return false;
	if (strcmp(ons ? ons : "default", ns))
		return false;
	if (!svc)
		return true;
	if (!strcmp(kind, "EndpointSlice")) {
		const char *owner = json_string_value(json_object_get(
			json_object_get(md, "labels"), "kubernetes.io/service-name"));

		return owner && !strcmp(owner, svc);
	}
	return !strcmp(json_string_value(json_object_get(md, "name")) ?: "", svc);
}

/* Ready endpoints of every Service of a cluster: EndpointSlices when the
 * Service has some, Endpoints otherwise. */
static void count_cluster(json_t *objs, int *services, int *ready)
{
	json_t *svc, *o, *ep, *sub;
	size_t i, j, k;

	*services = 0;
	*ready = 0;
	json_array_foreach(objs, i, svc) {
		json_t *md = json_object_get(svc, "metadata");
		const char *ns = json_string_value(json_object_get(md, "namespace")) ?: "default";
		const char *name = json_string_value(json_object_get(md, "name"));
		bool slices = false;

		if (!name || !obj_in_ns(svc, "Service", ns, NULL))
			continue;
		(*services)++;
		json_array_foreach(objs, j, o) {
			if (!obj_in_ns(o, "EndpointSlice", ns, name))
				continue;
			slices = true;
			json_array_foreach(json_object_get(o, "endpoints"), k, ep) {
				json_t *r = json_object_get(json_object_get(ep, "conditions"), "ready");

				if (!json_is_false(r))
					*ready += json_array_size(json_object_get(ep, "addresses"));
			}
		}
		if (slices)
			continue;
		json_array_foreach(objs, j, o) {
			if (!obj_in_ns(o, "Endpoints", ns, name))
				continue;
			json_array_foreach(json_object_get(o, "subsets"), k, sub)
				*ready += json_array_size(json_object_get(sub, "addresses"));
		}
	}
}

/* Endpoints of a cluster in the backends map (one backend per endpoint),
 * and how many of them are up. */
static void count_backends(struct fg_control *c, int cidx, int *active, int *up)
{
	__u32 id, high = fg_dp_backend_high(c->dp);
	struct fg_backend be;

	*active = 0;
	*up = 0;
	for (id = 1; id < high && cidx >= 0; id++) {
		if (fg_dp_backend_view(c->dp, id, &be) || !(be.flags & FG_BACKEND_F_ACTIVE) ||
		    be.cluster_idx != (__u32)cidx)
			continue;
		(*active)++;
		if (be.flags & FG_BACKEND_F_UP)
			(*up)++;
	}
}

/* Keeps the items whose `key` equals name; an error when none does. */
static json_t *filter_named(json_t *answer, const char *key, const char *name, const char *kind)
{
	json_t *items = json_object_get(answer, "items"), *kept, *it;
	size_t i;

	if (!name || !items)
		return answer;
	kept = json_array();
	json_array_foreach(items, i, it) {
		const char *v = json_string_value(json_object_get(it, key));

		if (v && !strcmp(v, name))
			json_array_append(kept, it);
	}
	json_decref(answer);
	if (!json_array_size(kept)) {
		char msg[160];

		json_decref(kept);
		snprintf(msg, sizeof(msg), "%s %s not found", kind, name);
		return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
	}
	return json_pack("{s:b, s:o}", "ok", 1, "items", kept);
}

static json_t *answer_clusters(struct fg_control *c)
{
	json_t *items = json_array(), *listed = json_object();
	size_t i, j;

	for (i = 0; c->plan && i < c->plan->n_gateways; i++) {
		json_t *remote = json_object_get(json_object_get(c->plan->gateways[i].object,
								 "status"), "remoteClusters");
		json_t *entry;

		json_array_foreach(remote, j, entry) {
			const char *id = json_string_value(json_object_get(entry, "clusterId"));
			const char *failed = json_string_value(json_object_get(entry, "reason"));
			int services = 0, ready = 0, active = 0, up = 0;

			if (!id || json_object_get(listed, id))
				continue;
			json_object_set_new(listed, id, json_true());
			count_cluster(json_object_get(c->clusters, id), &services, &ready);
			count_backends(c, fg_applier_cluster_idx(c->applier, id), &active, &up);
			json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i}",
				"id", id, "state", failed ? "Failed" : "Ready",
				"reason", failed ? failed : "", "services", services,
				"readyEndpoints", ready, "routedEndpoints", active,
				"healthyEndpoints", up));
		}
	}
	json_decref(listed);
	return json_pack("{s:b, s:o}", "ok", 1, "items", items);
}

/* Adds each cluster's live share (from the cluster ring in the maps) to a
 * target's JSON. */
static void add_effective(struct fg_control *c, const struct fg_target *t, json_t *tj)
{
	__u32 slots[FG_MAX_CLUSTERS], total = 0;
	int sid = fg_applier_service_id(c->applier, t);
	json_t *cl;
	size_t i;

	if (sid < 0 || fg_dp_cluster_shares(c->dp, sid, slots, &total))
		total = 0;
	json_object_set_new(tj, "serviceId", json_integer(sid));
	json_array_foreach(json_object_get(tj, "clusters"), i, cl) {
		const char *id = json_string_value(json_object_get(cl, "cluster"));
		int idx = id ? fg_applier_cluster_idx(c->applier, id) : -1;
		double eff = (idx >= 0 && total) ? 100.0 * slots[idx] / total : 0.0;

		json_object_set_new(cl, "effective", json_real(eff));
	}
}

static json_t *answer_routes(struct fg_control *c)
{
	json_t *items = c->plan ? fg_plan_routes_json(c->plan) : json_array();
	json_t *rj, *cj;
	size_t i, j;

	json_array_foreach(items, i, rj) {
		const struct fg_route *r = &c->plan->routes[i];

		add_effective(c, r->target, json_object_get(rj, "target"));
		json_array_foreach(json_object_get(rj, "canaries"), j, cj)
			add_effective(c, r->canaries[j].target, json_object_get(cj, "target"));
	}
	return json_pack("{s:b, s:o}", "ok", 1, "items", items);
}

static json_t *answer_ingresses(struct fg_control *c)
{
	json_t *items = c->plan ? fg_plan_ingresses_json(c->plan, c->listening ? c->address : "")
				: json_array();

	return json_pack("{s:b, s:o}", "ok", 1, "items", items);
}

static void add_error(const char *path, const struct fg_manifest_error *err, void *ctx)
{
	json_array_append_new(ctx, json_pack("{s:s, s:i, s:s}", "file", path, "line", err->line,
					     "reason", err->reason));
}

static json_t *answer_status(struct fg_control *c)
{
	json_t *errors = json_array();

	if (c->cd)
		fg_configdir_foreach_error(c->cd, add_error, errors);
	return json_pack("{s:b, s:s, s:b, s:b, s:o, s:O, s:i, s:i, s:i}", "ok", 1, "address",
			 c->address, "dataplaneReady", c->dataplane_ready, "listening",
			 c->listening, "configErrors", errors, "kubeErrors", c->kube_errors, "routes",
			 c->plan ? (int)c->plan->n_routes : 0, "l4Ports",
			 c->plan ? (int)c->plan->n_l4 : 0, "clusters",
			 c->plan ? (int)c->plan->n_clusters : 0);
}

json_t *fg_control_admin(json_t *request, void *ctx)
{
	struct fg_control *c = ctx;
	const char *get = json_string_value(json_object_get(request, "get"));
	const char *name = json_string_value(json_object_get(request, "name"));

	if (!get)
		return json_pack("{s:b, s:s}", "ok", 0, "error", "missing \"get\"");
	if (!strcmp(get, "mseingressconfig"))
		return answer_gateways(c, name);
	if (!strcmp(get, "ingress"))
		return filter_named(answer_ingresses(c), "name", name, "ingress");
	if (!strcmp(get, "clusters"))
		return filter_named(answer_clusters(c), "id", name, "cluster");
	if (!strcmp(get, "routes"))
		return filter_named(answer_routes(c), "host", name, "routes for host");
	if (!strcmp(get, "status"))
		return answer_status(c);
	return json_pack("{s:b, s:s}", "ok", 0, "error", "unknown kind");
}
