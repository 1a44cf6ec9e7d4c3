// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Readiness, announce/withdraw, drain and the REPLICAS column (ha.h).
 */
#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "bgp.h"
#include "ha.h"
#include "lease.h"
#include "log.h"

#define SELF_CHECK_MS 1000
#define DRAIN_MIN_MS 1000

struct gw_routes;

struct fg_ha {
	struct fg_control *control;
	struct fg_dataplane *dp;
	struct fg_bgp *bgp;
	struct fg_lease *lease;
	struct fg_bgp_vip vip;
	__u16 port;
	int ifindex[16];
	char ifnames[16][IFNAMSIZ];
	int n_ifaces;
	unsigned hold_ms;
	unsigned drain_s;

	/* readiness */
	bool ready;
	char why[320];          /* why not ready ("" when ready) */
	char why_logged[320];   /* the last reason logged */
	long long ready_since;  /* ms; 0 while not ready */
	bool announced;         /* what BGP (or, without it, this node) says */
	json_t *serving;        /* gateway names, while ready */
	/* caches of the plan in force (rebuilt when the control plane says
	 * it changed) and of the rings (reread when the maps changed) */
	bool dirty;
	const struct fg_plan *plan_seen;
	struct gw_routes *gw;   /* one per gateway of the plan, in its order */
	size_t n_gw;
	__u64 epoch_seen;
	bool l4_healthy;
	json_t *lease_base;     /* gateways, ingresses, services for the Leases */
	bool lease_dirty;
	bool published_announced;
	json_t *published_serving;
	long long self_at;
	char self_why[256];
	/* drain */
	bool draining;
	long long drain_at;
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------- the node's own check ---------- */

static bool vip_is_local(const struct fg_ha *h)
{
	struct ifaddrs *ifa, *i;
	bool found = false;

	if (getifaddrs(&ifa))
		return true; /* cannot tell: do not withdraw for it */
	for (i = ifa; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		if (h->vip.family == FG_AF_INET && i->ifa_addr->sa_family == AF_INET)
			found = !memcmp(&((struct sockaddr_in *)i->ifa_addr)->sin_addr,
					&h->vip.addr.v4, 4);
		else if (h->vip.family == FG_AF_INET6 && i->ifa_addr->sa_family == AF_INET6)
			found = !memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
					h->vip.addr.bytes, 16);
	}
	freeifaddrs(ifa);
	return found;
}

/* A socket in LISTEN on VIP:port (or the wildcard address), from
 * /proc/net/tcp[6], which lists the listening sockets first: the read
 * stops at the first other one, whatever the number of connections. */
static bool vip_listening(const struct fg_ha *h)
{
	bool v6 = h->vip.family == FG_AF_INET6;
	char line[512], want[40], any[40];
	const __u32 *w = (const __u32 *)h->vip.addr.bytes;
	bool found = false;
	FILE *f;

	f = fopen(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", "re");
	if (!f)
		return true; /* cannot tell */
	if (v6) {
		snprintf(want, sizeof(want), "%08X%08X%08X%08X:%04X", w[0], w[1], w[2], w[3],
			 h->port);
		snprintf(any, sizeof(any), "%032X:%04X", 0, h->port);
	} else {
		snprintf(want, sizeof(want), "%08X:%04X", h->vip.addr.v4, h->port);
		snprintf(any, sizeof(any), "%08X:%04X", 0, h->port);
	}
	while (!found && fgets(line, sizeof(line), f)) {
		char local[64], remote[64];
		unsigned st;

		if (sscanf(line, " %*u: %63s %63s %x", local, remote, &st) != 3)
			continue; /* the header */
		if (st != 0x0A)
			break;
		found = !strcmp(local, want) || !strcmp(local, any);
	}
	fclose(f);
	return found;
}

static void self_check(struct fg_ha *h)
{
	char a[INET6_ADDRSTRLEN];
	int i;

	if (mono_ms() - h->self_at < SELF_CHECK_MS)
		return;
	h->self_at = mono_ms();
	h->self_why[0] = '\0';
	fg_addr_str(&h->vip.addr, h->vip.family, a, sizeof(a));
	for (i = 0; i < h->n_ifaces; i++) {
		/* In the mode the data plane attached it with (XDP or TC). */
		enum fg_attach mode = fg_dp_attach_mode(h->dp, h->ifindex[i]);

		if (mode != FG_ATTACH_NONE && !fg_dp_attached_prog_id(h->ifindex[i], mode)) {
			snprintf(h->self_why, sizeof(h->self_why),
				 "own check: the program (%s) is no longer attached to %s",
				 fg_attach_name(mode), h->ifnames[i]);
			return;
		}
	}
	if (!vip_is_local(h)) {
		snprintf(h->self_why, sizeof(h->self_why),
			 "own check: the VIP %s is not an address of this node (add it to lo: "
			 "ip addr add %s/%d dev lo)", a, a, h->vip.family == FG_AF_INET ? 32 : 128);
		return;
	}
	if (!vip_listening(h))
		snprintf(h->self_why, sizeof(h->self_why),
			 "own check: nothing listens on %s port %u", a, h->port);
}

/* ---------- routes and their health ---------- */

struct gw_routes {
	const struct fg_target **t; /* its routes' targets and canaries' */
	size_t n, cap;
	bool has_route;
	bool healthy;
};

static int push_target(struct gw_routes *g, const struct fg_target *t)
{
	if (!t)
		return 0;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 8;
		const struct fg_target **v = realloc(g->t, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		g->t = v;
		g->cap = cap;
	}
	g->t[g->n++] = t;
	return 0;
}

static void drop_structure(struct fg_ha *h)
{
	size_t i;

	for (i = 0; i < h->n_gw; i++)
		free(h->gw[i].t);
	free(h->gw);
	h->gw = NULL;
	h->n_gw = 0;
	json_decref(h->lease_base);
	h->lease_base = NULL;
}

/*
 * What a new plan means here, once per plan (O(routes + Ingresses)): each
 * gateway's route targets, and what the Leases publish of it.
 */
static int build_structure(struct fg_ha *h, const struct fg_plan *p)
{
	json_t *cls_gw = json_object(), *ing_cls = json_object(), *v;
	json_t *gws = json_array(), *ings = json_array(), *svcs = json_array(), *seen = json_object();
	char key[FG_ID_LEN * 6];
	size_t i, j;
	int err = -ENOMEM;

	drop_structure(h);
	h->gw = calloc(p->n_gateways ? p->n_gateways : 1, sizeof(*h->gw));
	if (!h->gw || !cls_gw || !ing_cls || !gws || !ings || !svcs || !seen)
		goto out;
	h->n_gw = p->n_gateways;
	for (i = 0; i < p->n_gateways; i++) {
		const struct fg_gateway_status *gw = &p->gateways[i];
		json_t *md = json_object_get(gw->object, "metadata");
		const char *ns = json_string_value(json_object_get(md, "namespace"));
		json_t *g = json_pack("{s:s, s:O}", "name", gw->name, "status",
				      json_object_get(gw->object, "status"));

		if (ns)
			json_object_set_new(g, "namespace", json_string(ns));
		json_array_append_new(gws, g);
		if (strcmp(gw->phase, "Failed"))
			json_object_set_new(cls_gw, gw->ingress_class, json_integer((json_int_t)i));
	}
	for (i = 0; i < p->n_ingresses; i++) {
		const struct fg_ingress_status *st = &p->ingresses[i];

		if (!json_object_get(cls_gw, st->ingress_class))
			continue;
		json_array_append_new(ings, json_pack("{s:s, s:s, s:b}", "namespace", st->ns, "name",
						      st->name, "accepted", st->accepted));
		if (!st->accepted)
			continue;
		snprintf(key, sizeof(key), "%s/%s", st->ns, st->name);
		json_object_set_new(ing_cls, key, json_string(st->ingress_class));
	}
	for (i = 0; i < p->n_routes; i++) {
		const struct fg_route *r = &p->routes[i];
		const char *cls = json_string_value(json_object_get(ing_cls, r->ingress));
		struct gw_routes *g;

		v = cls ? json_object_get(cls_gw, cls) : NULL;
		if (!v)
			continue;
		g = &h->gw[json_integer_value(v)];
		g->has_route = true;
		if (push_target(g, r->target))
			goto out;
		for (j = 0; j < r->n_canaries; j++)
			if (push_target(g, r->canaries[j].target))
				goto out;
	}
	for (i = 0; i < p->n_l4; i++) {
		snprintf(key, sizeof(key), "%s/%s", p->l4[i].ns, p->l4[i].name);
		if (json_object_get(seen, key))
			continue;
		json_object_set_new(seen, key, json_true());
		json_array_append_new(svcs, json_pack("{s:s, s:s}", "namespace", p->l4[i].ns,
						      "name", p->l4[i].name));
	}
	h->lease_base = json_pack("{s:O, s:O, s:O}", "gateways", gws, "ingresses", ings,
				  "services", svcs);
	err = h->lease_base ? 0 : -ENOMEM;
out:
	json_decref(cls_gw);
	json_decref(ing_cls);
	json_decref(gws);
	json_decref(ings);
	json_decref(svcs);
	json_decref(seen);
	if (err)
		drop_structure(h);
	return err;
}

static bool target_healthy(struct fg_ha *h, const struct fg_target *t)
{
	__u32 slots[FG_MAX_CLUSTERS], total = 0;
	int sid = fg_control_service_id(h->control, t);

	return sid >= 0 && !fg_dp_cluster_shares(h->dp, sid, slots, &total) && total > 0;
}

/* Which gateways have a route with a healthy cluster, and whether an L4
 * port has one: read from the live rings, again only when the maps
 * changed (a health change, a new plan applied). Each stops at the first
 * healthy target. */
static void refresh_health(struct fg_ha *h, const struct fg_plan *p, bool force)
{
	__u64 epoch = fg_dp_epoch(h->dp);
	size_t i, j;

	if (!force && epoch == h->epoch_seen)
		return;
	h->epoch_seen = epoch;
	for (i = 0; i < h->n_gw; i++) {
		h->gw[i].healthy = false;
		for (j = 0; j < h->gw[i].n && !h->gw[i].healthy; j++)
			h->gw[i].healthy = target_healthy(h, h->gw[i].t[j]);
	}
	h->l4_healthy = false;
	for (i = 0; i < p->n_l4 && !h->l4_healthy; i++)
		h->l4_healthy = target_healthy(h, p->l4[i].target);
}

/* Whether the node should take traffic now; why not in h->why; the
 * gateways it serves into h->serving. O(gateways) when nothing changed. */
static bool evaluate(struct fg_ha *h)
{
	const struct fg_plan *p = fg_control_plan(h->control);
	bool listening = false, routed = false, rebuilt = false;
	size_t i;

	json_array_clear(h->serving);
	h->why[0] = '\0';
	if (h->draining) {
		snprintf(h->why, sizeof(h->why), "draining");
		return false;
	}
	if (!p) {
		snprintf(h->why, sizeof(h->why), "no routes computed yet");
		return false;
	}
	if (h->dirty || p != h->plan_seen || p->n_gateways != h->n_gw) {
		if (build_structure(h, p)) {
			snprintf(h->why, sizeof(h->why), "out of memory");
			return false;
		}
		h->plan_seen = p;
		h->dirty = false;
		h->lease_dirty = true;
		rebuilt = true;
	}
	refresh_health(h, p, rebuilt);
	for (i = 0; i < p->n_gateways; i++) {
		const struct fg_gateway_status *gw = &p->gateways[i];

		if (strcmp(gw->phase, "Listening"))
			continue;
		listening = true;
		routed |= h->gw[i].has_route || p->n_l4;
		if (h->gw[i].healthy || h->l4_healthy)
			json_array_append_new(h->serving, json_string(gw->name));
	}
	if (!listening) {
		snprintf(h->why, sizeof(h->why), "no MseIngressConfig is Listening%s%s%s",
			 p->n_gateways ? " (" : "", p->n_gateways ? p->gateways[0].phase : "",
			 p->n_gateways ? ")" : "");
		return false;
	}
	if (!routed) {
		snprintf(h->why, sizeof(h->why), "no route: no accepted Ingress and no "
			 "LoadBalancer Service");
		return false;
	}
	if (!json_array_size(h->serving)) {
		snprintf(h->why, sizeof(h->why), "no healthy cluster: every endpoint of every "
			 "route is down");
		return false;
	}
	self_check(h);
	if (h->self_why[0]) {
		snprintf(h->why, sizeof(h->why), "%s", h->self_why);
		json_array_clear(h->serving);
		return false;
	}
	return true;
}

/* ---------- what the other nodes and the status writer see ---------- */

/* Published again only when something in it changed. */
static void publish(struct fg_ha *h)
{
	char a[INET6_ADDRSTRLEN];
	json_t *st;

	if (!h->lease || !h->lease_base)
		return;
	if (!h->lease_dirty && h->published_announced == h->announced &&
	    json_equal(h->published_serving, h->serving))
		return;
	fg_addr_str(&h->vip.addr, h->vip.family, a, sizeof(a));
	st = json_deep_copy(h->lease_base);
	if (!st)
		return;
	json_object_set_new(st, "announced", json_boolean(h->announced));
	json_object_set_new(st, "vips", json_pack("[s]", a));
	json_object_set_new(st, "serving", h->announced ? json_deep_copy(h->serving) : json_array());
	fg_lease_publish(h->lease, st);
	json_decref(h->published_serving);
	h->published_serving = json_deep_copy(h->serving);
	h->published_announced = h->announced;
	h->lease_dirty = false;
}

void fg_ha_plan_changed(struct fg_ha *h)
{
	if (h)
		h->dirty = true;
}

void fg_ha_update(struct fg_ha *h)
{
	long long now = mono_ms();
	bool ready = evaluate(h), announce;

	if (ready) {
		if (!h->ready_since)
			h->ready_since = now;
		h->why_logged[0] = '\0';
	} else {
		h->ready_since = 0;
	}
	h->ready = ready;
	announce = ready && now - h->ready_since >= h->hold_ms;
	if (announce != h->announced) {
		const char *reason = announce ? "ready: a gateway is Listening with a healthy "
						"cluster" : h->why;

		if (!h->bgp)
			pr_info("ha: %s: %s\n", announce ? "serving" : "not serving", reason);
		if (!h->bgp || !fg_bgp_set(h->bgp, announce, reason))
			h->announced = announce;
		if (!announce)
			snprintf(h->why_logged, sizeof(h->why_logged), "%s", h->why);
	} else if (!ready && strcmp(h->why, h->why_logged)) {
		/* Say once why the node does not take traffic. */
		pr_info("ha: not announcing: %s\n", h->why);
		snprintf(h->why_logged, sizeof(h->why_logged), "%s", h->why);
	}
	if (h->bgp) {
		fg_bgp_set(h->bgp, h->announced, h->announced ? "ready" : h->why);
		fg_bgp_tick(h->bgp);
	}
	publish(h);
}

/* ---------- lifecycle ---------- */

int fg_ha_new(struct fg_ha **out, const struct fg_ha_opts *o, struct fg_control *control,
	      struct fg_dataplane *dp)
{
	struct fg_ha *h;
	int err, i;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->control = control;
	h->dp = dp;
	h->hold_ms = o->hold_ms ? o->hold_ms : 1000;
	h->drain_s = o->drain_s;
	h->serving = json_array();
	h->dirty = true;
	if (!h->serving) {
		err = -ENOMEM;
		goto err;
	}
	if (!o->listen) {
		pr_warn("ha: BGP and Leases need --listen (the VIP to announce)\n");
		err = -EINVAL;
		goto err;
	}
	err = fg_parse_listen(o->listen, &h->vip.addr, &h->vip.family, &h->port);
	if (err) {
		pr_warn("ha: invalid --listen '%s'\n", o->listen);
		goto err;
	}
	for (i = 0; i < o->n_ifaces && i < 16; i++) {
		h->ifindex[i] = o->ifindex[i];
		snprintf(h->ifnames[i], sizeof(h->ifnames[i]), "%s", o->ifnames[i]);
	}
	h->n_ifaces = i;
	if (o->bgp_include) {
		struct fg_bgp_opts bo = {
			.include_path = o->bgp_include,
			.socket_path = o->bgp_socket,
			.device = o->bgp_device,
		};

		err = fg_bgp_new(&h->bgp, &bo, &h->vip, 1);
		if (err)
			goto err;
	}
	if (o->node_name) {
		struct fg_lease_opts lo = {
			.kubeconfig = o->kubeconfig,
			.context = o->kube_context,
			.namespace = o->lease_namespace,
			.node_name = o->node_name,
			.duration_s = o->lease_duration_s,
		};

		err = fg_lease_new(&h->lease, &lo);
		if (err)
			goto err;
	}
	*out = h;
	return 0;
err:
	fg_ha_free(h);
	return err;
}

bool fg_ha_drain_start(struct fg_ha *h, const char *why)
{
	if (!h || !h->bgp || h->draining)
		return false;
	h->draining = true;
	h->drain_at = mono_ms();
	pr_info("ha: %s: withdrawing the VIPs, then serving what still arrives for up to %u s\n",
		why, h->drain_s);
	fg_ha_update(h);
	return h->drain_s > 0;
}

bool fg_ha_draining(const struct fg_ha *h)
{
	return h && h->draining;
}

bool fg_ha_drain_done(struct fg_ha *h, int open_conns)
{
	long long t = mono_ms() - h->drain_at;
	long long min = (long long)h->drain_s * 1000 < DRAIN_MIN_MS ? (long long)h->drain_s * 1000
								     : DRAIN_MIN_MS;

	if (t >= (long long)h->drain_s * 1000) {
		pr_info("ha: drained: %u s passed%s\n", h->drain_s,
			open_conns > 0 ? ", closing the connections left" : "");
		return true;
	}
	if (t >= min && open_conns == 0) {
		pr_info("ha: drained: no connection left after %lld ms\n", t);
		return true;
	}
	return false;
}

/* ---------- admin ---------- */

static int desired_replicas(json_t *obj)
{
	json_t *v = json_object_get(json_object_get(json_object_get(json_object_get(obj, "spec"),
		"common"), "instance"), "replicas");

	if (json_is_integer(v))
		return (int)json_integer_value(v);
	if (json_is_string(v))
		return atoi(json_string_value(v));
	return -1;
}

void fg_ha_admin(struct fg_ha *h, json_t *request, json_t *answer)
{
	const char *get = json_string_value(json_object_get(request, "get"));
	json_t *items = json_object_get(answer, "items"), *it;
	size_t i;

	if (!h || !get || !json_is_true(json_object_get(answer, "ok")))
		return;
	if (!strcmp(get, "status")) {
		json_object_set_new(answer, "ready", json_pack("{s:b, s:s, s:b, s:b}", "ready",
			h->ready, "why", h->why, "announced", h->announced, "draining", h->draining));
		if (h->bgp)
			json_object_set_new(answer, "bgp", fg_bgp_status(h->bgp));
		if (h->lease)
			json_object_set_new(answer, "lease", fg_lease_status(h->lease));
		return;
	}
	if (strcmp(get, "mseingressconfig"))
		return;
	json_array_foreach(items, i, it) {
		const char *name = json_string_value(json_object_get(it, "name"));
		int desired = desired_replicas(json_object_get(it, "object")), live;
		bool serving = false;
		json_t *v;
		size_t j;
		char buf[48], d[16], l[16];

		json_array_foreach(h->serving, j, v)
			serving |= name && !strcmp(json_string_value(v) ?: "", name);
		if (h->lease)
			live = fg_lease_replicas(h->lease, name ? name : "");
		else
			live = h->announced && serving ? 1 : 0;
		if (desired >= 0)
			snprintf(d, sizeof(d), "%d", desired);
		else
			snprintf(d, sizeof(d), "-");
		if (live >= 0)
			snprintf(l, sizeof(l), "%d", live);
		else
			snprintf(l, sizeof(l), "?");
		snprintf(buf, sizeof(buf), "%s/%s", l, d);
		json_object_set_new(it, "replicas", json_string(buf));
		json_object_set_new(it, "liveReplicas", json_integer(live));
		json_object_set_new(it, "desiredReplicas", json_integer(desired));
		json_object_set_new(it, "replicasFrom", json_string(h->lease ? "leases" : "this node"));
		json_object_set_new(it, "announced", json_boolean(h->announced && serving));
	}
}

void fg_ha_free(struct fg_ha *h)
{
	if (!h)
		return;
	fg_bgp_free(h->bgp);   /* withdraw first, */
	fg_lease_free(h->lease); /* then say goodbye to the other nodes */
	drop_structure(h);
	json_decref(h->serving);
	json_decref(h->published_serving);
	free(h);
}
