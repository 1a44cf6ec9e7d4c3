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
	/* caches */
	const struct fg_plan *plan_seen;
	__u64 epoch_seen;
	json_t *healthy;        /* gateway name -> true, from the rings */
	bool l4_healthy;
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
		LIBBPF_OPTS(bpf_xdp_query_opts, q);

		if (bpf_xdp_query(h->ifindex[i], 0, &q) == 0 && q.attach_mode == XDP_ATTACHED_NONE) {
			snprintf(h->self_why, sizeof(h->self_why),
				 "own check: XDP is no longer attached to %s", h->ifnames[i]);
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

static bool target_healthy(struct fg_ha *h, const struct fg_target *t)
{
	__u32 slots[FG_MAX_CLUSTERS], total = 0;
	int sid;

	if (!t)
		return false;
	sid = fg_control_service_id(h->control, t);
	return sid >= 0 && !fg_dp_cluster_shares(h->dp, sid, slots, &total) && total > 0;
}

static const char *ingress_class_of(const struct fg_plan *p, const char *ns_name)
{
	size_t i;
	char key[FG_ID_LEN * 6];

	for (i = 0; i < p->n_ingresses; i++) {
		snprintf(key, sizeof(key), "%s/%s", p->ingresses[i].ns, p->ingresses[i].name);
		if (!strcmp(key, ns_name))
			return p->ingresses[i].accepted ? p->ingresses[i].ingress_class : NULL;
	}
	return NULL;
}

/* Which gateways have a route with a healthy cluster; whether an L4
 * port has one. Reread only when the plan or the maps changed. */
static void refresh_health(struct fg_ha *h, const struct fg_plan *p)
{
	__u64 epoch = fg_dp_epoch(h->dp);
	size_t i, j, k;

	if (p == h->plan_seen && epoch == h->epoch_seen)
		return;
	h->plan_seen = p;
	h->epoch_seen = epoch;
	json_object_clear(h->healthy);
	h->l4_healthy = false;
	for (i = 0; i < p->n_routes; i++) {
		const struct fg_route *r = &p->routes[i];
		const char *cls = ingress_class_of(p, r->ingress);
		bool ok;

		if (!cls)
			continue;
		for (j = 0; j < p->n_gateways; j++) {
			if (strcmp(p->gateways[j].ingress_class, cls) ||
			    json_object_get(h->healthy, p->gateways[j].name))
				continue;
			ok = target_healthy(h, r->target);
			for (k = 0; !ok && k < r->n_canaries; k++)
				ok = target_healthy(h, r->canaries[k].target);
			if (ok)
				json_object_set_new(h->healthy, p->gateways[j].name, json_true());
		}
	}
	for (i = 0; i < p->n_l4 && !h->l4_healthy; i++)
		h->l4_healthy = target_healthy(h, p->l4[i].target);
}

/* Whether the node should take traffic now; why not in h->why; the
 * gateways it serves into h->serving. */
static bool evaluate(struct fg_ha *h)
{
	const struct fg_plan *p = fg_control_plan(h->control);
	bool listening = false, routed = false;
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
	refresh_health(h, p);
	for (i = 0; i < p->n_gateways; i++) {
		const struct fg_gateway_status *gw = &p->gateways[i];
		bool has_route = false;
		size_t j;

		if (strcmp(gw->phase, "Listening"))
			continue;
		listening = true;
		for (j = 0; j < p->n_routes && !has_route; j++) {
			const char *cls = ingress_class_of(p, p->routes[j].ingress);

			has_route = cls && !strcmp(cls, gw->ingress_class);
		}
		routed |= has_route || p->n_l4;
		if (json_object_get(h->healthy, gw->name) || h->l4_healthy)
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

static json_t *lease_state(struct fg_ha *h)
{
	const struct fg_plan *p = fg_control_plan(h->control);
	json_t *gws = json_array(), *ings = json_array(), *svcs = json_array(), *seen;
	json_t *classes = json_object();
	char a[INET6_ADDRSTRLEN];
	size_t i;

	fg_addr_str(&h->vip.addr, h->vip.family, a, sizeof(a));
	for (i = 0; p && i < p->n_gateways; i++) {
		const struct fg_gateway_status *gw = &p->gateways[i];
		json_t *md = json_object_get(gw->object, "metadata");
		json_t *g = json_pack("{s:s, s:O}", "name", gw->name, "status",
				      json_object_get(gw->object, "status"));
		const char *ns = json_string_value(json_object_get(md, "namespace"));

		if (ns)
			json_object_set_new(g, "namespace", json_string(ns));
		json_array_append_new(gws, g);
		if (strcmp(gw->phase, "Failed"))
			json_object_set_new(classes, gw->ingress_class, json_true());
	}
	for (i = 0; p && i < p->n_ingresses; i++) {
		const struct fg_ingress_status *st = &p->ingresses[i];

		if (!json_object_get(classes, st->ingress_class))
			continue;
		json_array_append_new(ings, json_pack("{s:s, s:s, s:b}", "namespace", st->ns, "name",
						      st->name, "accepted", st->accepted));
	}
	seen = json_object();
	for (i = 0; p && i < p->n_l4; i++) {
		char key[FG_ID_LEN * 6];

		snprintf(key, sizeof(key), "%s/%s", p->l4[i].ns, p->l4[i].name);
		if (json_object_get(seen, key))
			continue;
		json_object_set_new(seen, key, json_true());
		json_array_append_new(svcs, json_pack("{s:s, s:s}", "namespace", p->l4[i].ns,
						      "name", p->l4[i].name));
	}
	json_decref(seen);
	json_decref(classes);
	return json_pack("{s:b, s:[s], s:O, s:o, s:o, s:o}", "announced", h->announced, "vips", a,
			 "serving", h->announced ? h->serving : json_array(), "gateways", gws,
			 "ingresses", ings, "services", svcs);
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
	if (h->lease) {
		json_t *st = lease_state(h);

		if (st)
			fg_lease_publish(h->lease, st);
	}
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
	h->healthy = json_object();
	if (!h->serving || !h->healthy) {
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
	json_decref(h->serving);
	json_decref(h->healthy);
	free(h);
}
