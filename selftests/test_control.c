// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The control plane on a config directory and a data plane loaded without
 * pins: a fleet of N Ingresses (one Service each, E endpoints in each of
 * two clusters, every tenth with a weight canary pinned to cluster 2),
 * then single changes. An endpoint change recomputes only its target, a
 * canary weight edit patches its routes, a new Ingress recomputes
 * everything; each lands in the maps (or the plan) and costs what it
 * touches, not what the fleet holds.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "control.h"
#include "dataplane.h"
#include "test_progs.h"

#define CL1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define CL2 "c15d48ca9d1fd43f9bbb89c56a474843c"

static char dir[PATH_MAX];

static int put(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whole files only (a rename), as an operator's tools write them. */
static int put(const char *rel, const char *fmt, ...)
{
	char path[PATH_MAX + 256], tmp[PATH_MAX + 300];
	va_list ap;
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	snprintf(tmp, sizeof(tmp), "%s/.%d.tmp", dir, rand());
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	if (fclose(f))
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	return err;
}

/* Ingress 0 as the bench's probe route writes it: the main Ingress pinned
 * to cluster 1 and its canary pinned to cluster 2, in one file. */
static int probe_ingress_file(int weight)
{
	static const char doc[] =
		"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  annotations:\n"
		"    mse.ingress.kubernetes.io/service-subset: subset-%d\n"
		"    mse.ingress.kubernetes.io/subset-labels: |\n"
		"      topology.istio.io/cluster %s\n%s"
		"  name: %s\n  namespace: web\nspec:\n  ingressClassName: mse\n  rules:\n"
		"  - host: h0.example.com\n    http:\n      paths:\n      - path: /\n"
		"        pathType: Prefix\n        backend:\n          service:\n"
		"            name: svc0\n            port:\n              number: 80\n";
	char main_doc[1024], canary_doc[1024], weight_ann[160];

	snprintf(main_doc, sizeof(main_doc), doc, 0, CL1, "", "ing0");
	snprintf(weight_ann, sizeof(weight_ann),
		 "    nginx.ingress.kubernetes.io/canary: \"true\"\n"
		 "    nginx.ingress.kubernetes.io/canary-weight: \"%d\"\n", weight);
	snprintf(canary_doc, sizeof(canary_doc), doc, 1, CL2, weight_ann, "can0");
	return put("fleet/ing0.yaml", "%s---\n%s", main_doc, canary_doc);
}

static int ingress_file(int i, int weight)
{
	char rel[64];
	int err;

	if (i == 0 && weight >= 0)
		return probe_ingress_file(weight);

	snprintf(rel, sizeof(rel), "fleet/ing%d.yaml", i);
	err = put(rel,
		  "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ing%d\n"
		  "  namespace: web\nspec:\n  ingressClassName: mse\n  rules:\n  - host: h%d.example.com\n"
		  "    http:\n      paths:\n      - path: /\n        pathType: Prefix\n"
		  "        backend:\n          service:\n            name: svc%d\n"
		  "            port:\n              number: 80\n", i, i, i);
	if (err || weight < 0)
		return err;
	snprintf(rel, sizeof(rel), "fleet/can%d.yaml", i);
	return put(rel,
		   "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: can%d\n"
		   "  namespace: web\n  annotations:\n    nginx.ingress.kubernetes.io/canary: \"true\"\n"
		   "    nginx.ingress.kubernetes.io/canary-weight: \"%d\"\n"
		   "    mse.ingress.kubernetes.io/service-subset: pinned\n"
		   "    mse.ingress.kubernetes.io/subset-labels: |\n"
		   "      topology.istio.io/cluster " CL2 "\n"
		   "spec:\n  ingressClassName: mse\n  rules:\n  - host: h%d.example.com\n"
		   "    http:\n      paths:\n      - path: /\n        pathType: Prefix\n"
		   "        backend:\n          service:\n            name: svc%d\n"
		   "            port:\n              number: 80\n", i, weight, i, i);
}

/* Service i in cluster c, e endpoints; the first one's last octet moved by
 * shift (an endpoint change). */
static int service_file(int i, int c, int e, int shift)
{
	char rel[128], eps[4096] = "";
	size_t off = 0;
	int k;

	for (k = 0; k < e; k++)
		off += snprintf(eps + off, sizeof(eps) - off,
				"- addresses:\n  - 10.%d.%d.%d\n  conditions:\n    ready: true\n",
				c + 1, (i * 16 + k) / 200, (i * 16 + k) % 200 + 1 + (k ? 0 : shift));
	snprintf(rel, sizeof(rel), "clusters/%s/svc%d.yaml", c ? CL2 : CL1, i);
	return put(rel,
		   "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc%d\n  namespace: web\n"
		   "spec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n---\n"
		   "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
		   "  name: svc%d-x\n  namespace: web\n  labels:\n    kubernetes.io/service-name: svc%d\n"
		   "addressType: IPv4\nports:\n- name: http\n  port: 8080\nendpoints:\n%s",
		   i, i, i, eps);
}

static bool backend_at(struct fg_dataplane *dp, const char *addr)
{
	struct in_addr a;
	struct fg_backend be;
	__u32 id;

	inet_pton(AF_INET, addr, &a);
	for (id = 1; id < fg_dp_backend_high(dp); id++)
		if (!fg_dp_backend_view(dp, id, &be) && (be.flags & FG_BACKEND_F_ACTIVE) &&
		    be.addr.v4 == a.s_addr)
			return true;
	return false;
}

static const struct fg_route *route_for(const struct fg_plan *p, const char *host)
{
	size_t i;

	for (i = 0; i < p->n_routes; i++)
		if (!strcmp(p->routes[i].host, host))
			return &p->routes[i];
	return NULL;
}

/* Processes events for up to turns x 10 ms: true as soon as the control
 * plane did any computation. */
static bool settle_for(struct fg_control *c, unsigned long long full0, unsigned long long inc0,
		       int turns)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int i;

	for (i = 0; i < turns; i++) {
		const struct fg_control_stats *st;

		fg_control_process(c);
		st = fg_control_stats(c);
		if (st->full > full0 || st->incremental > inc0)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/* Processes events until the control plane has done `want` more
 * computations of the kind asked (or 3 s pass). */
static bool settle(struct fg_control *c, unsigned long long full0, unsigned long long inc0,
		   bool want_full)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int i;

	for (i = 0; i < 300; i++) {
		const struct fg_control_stats *st;

		fg_control_process(c);
		st = fg_control_stats(c);
		if (want_full ? st->full > full0 : st->incremental > inc0)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/* `get clusters`: every cluster's Services (packed slices, and the one
 * with Endpoints only) and their ready endpoints, from the store's index. */
static void clusters_check(struct fg_control *c, int n, int e)
{
	json_t *req = json_pack("{s:s}", "get", "clusters"), *ans, *it;
	char tag[64];
	size_t i;
	int seen = 0;

	ans = fg_control_admin(req, c);
	json_decref(req);
	json_array_foreach(json_object_get(ans, "items"), i, it) {
		const char *id = json_string_value(json_object_get(it, "id")) ?: "";
		bool one = !strcmp(id, CL1);

		seen++;
		snprintf(tag, sizeof(tag), "get clusters: %s Services", one ? "cluster1" : "cluster2");
		ASSERT_EQ(json_integer_value(json_object_get(it, "services")), n + one, tag);
		snprintf(tag, sizeof(tag), "get clusters: %s ready endpoints",
			 one ? "cluster1" : "cluster2");
		ASSERT_EQ(json_integer_value(json_object_get(it, "readyEndpoints")),
			  (json_int_t)n * e + (one ? 3 : 0), tag);
	}
	ASSERT_EQ(seen, 2, "get clusters: two clusters");
	json_decref(ans);
}

static void fleet_body(int n, int e)
{
	struct fg_dp_opts dopts = { .max_services = 8192, .max_backends = 131072,
				    .max_rings = 65536 };
	struct fg_control_opts copts = { .listen = "10.0.0.1:80" };
	const struct fg_control_stats *st;
	struct fg_dataplane *dp = NULL;
	struct fg_control *c = NULL;
	unsigned long long full0, inc0;
	const struct fg_route *r;
	char addr[32];
	int i, err = 0;

	snprintf(dir, sizeof(dir), "%s/ctl-%d", test__tmpdir(), n);
	if (!ASSERT_OK(fg_sh("mkdir -p %s/fleet %s/clusters/%s %s/clusters/%s", dir, dir, CL1, dir,
			     CL2), "mkdir"))
		return;
	err = put("fleet/gw.yaml",
		  "apiVersion: mse.alibabacloud.com/v1alpha1\nkind: MseIngressConfig\n"
		  "metadata:\n  name: gw\n  annotations:\n"
		  "    mse.alibabacloud.com/remote-clusters: " CL1 "," CL2 "\n"
		  "spec:\n  ingress:\n    local:\n      ingressClass: mse\n");
	for (i = 0; i < n && !err; i++) {
		/* Ingress 0's canary starts at weight 0, as the bench's probe
		 * route does. */
		err = ingress_file(i, i % 10 ? -1 : i ? 10 : 0);
		if (!err)
			err = service_file(i, 0, e, 0);
		if (!err)
			err = service_file(i, 1, e, 0);
	}
	/* A Service with Endpoints only (no slice), in cluster 1. */
	if (!err)
		err = put("clusters/" CL1 "/legacy.yaml",
			  "apiVersion: v1\nkind: Service\nmetadata:\n  name: legacy\n  namespace: web\n"
			  "spec:\n  ports:\n  - name: http\n    port: 80\n---\n"
			  "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: legacy\n"
			  "  namespace: web\nsubsets:\n- addresses:\n  - ip: 10.9.0.1\n"
			  "  - ip: 10.9.0.2\n  - ip: 10.9.0.3\n  ports:\n  - name: http\n    port: 80\n");
	if (!ASSERT_OK(err, "config files"))
		return;
	copts.config_dir = dir;
	if (!ASSERT_OK(fg_dp_load(&dp, &dopts), "data plane"))
		return;
	if (!ASSERT_OK(fg_control_new(&c, dp, &copts), "control"))
		goto out;
	fg_control_set_state(c, true, true);
	if (!ASSERT_OK(fg_control_recompute(c), "first computation"))
		goto out;
	st = fg_control_stats(c);
	printf("N=%d: first computation %.1f ms (routes %.1f ms)\n", n, st->last_us / 1000.0,
	       st->last_compute_us / 1000.0);
	ASSERT_EQ(fg_control_plan(c)->n_routes, (size_t)n, "routes");
	clusters_check(c, n, e);

	/* One endpoint of service 1 in cluster 1 moves. */
	full0 = st->full;
	inc0 = st->incremental;
	if (!ASSERT_OK(service_file(1, 0, e, 100), "endpoint change"))
		goto out;
	if (ASSERT_TRUE(settle(c, full0, inc0, false), "an incremental computation")) {
		st = fg_control_stats(c);
		printf("N=%d: one endpoint changed: %.2f ms\n", n, st->last_us / 1000.0);
		ASSERT_EQ(st->full, full0, "no full computation");
		snprintf(addr, sizeof(addr), "10.1.0.%d", 16 + 1 + 100);
		ASSERT_TRUE(backend_at(dp, addr), "the new endpoint is a backend");
		snprintf(addr, sizeof(addr), "10.1.0.%d", 16 + 1);
		ASSERT_FALSE(backend_at(dp, addr), "the old one is gone");
	}

	/* The file rewritten as it was (as a sync tool does): no change, and
	 * the objects in force stay those the next change replaces. */
	full0 = fg_control_stats(c)->full;
	inc0 = fg_control_stats(c)->incremental;
	if (!ASSERT_OK(ingress_file(0, 0), "the same file again"))
		goto out;
	ASSERT_FALSE(settle_for(c, full0, inc0, 30), "no computation for the same objects");

	/* A canary's weight goes 0 -> 100 -> 0 -> 100 -> 0: its routes are
	 * patched every time, a weight of 0 included (the route keeps the
	 * canary). */
	{
		static const int weights[] = { 100, 0, 100, 0 };
		size_t w;

		for (w = 0; w < 4; w++) {
			full0 = fg_control_stats(c)->full;
			inc0 = fg_control_stats(c)->incremental;
			if (!ASSERT_OK(ingress_file(0, weights[w]), "canary weight edit"))
				goto out;
			if (!ASSERT_TRUE(settle(c, full0, inc0, false), "an incremental computation"))
				continue;
			st = fg_control_stats(c);
			printf("N=%d: canary weight -> %d: %.2f ms, full %llu -> %llu\n", n,
			       weights[w], st->last_us / 1000.0, full0,
			       (unsigned long long)st->full);
			ASSERT_EQ(st->full, full0, "a weight edit is no full computation");
			r = route_for(fg_control_plan(c), "h0.example.com");
			if (ASSERT_OK_PTR(r, "route") && ASSERT_EQ(r->n_canaries, 1, "canary"))
				ASSERT_EQ(r->canaries[0].weight, (__u32)weights[w], "new weight");
		}
	}
	full0 = fg_control_stats(c)->full;
	inc0 = fg_control_stats(c)->incremental;
	if (!ASSERT_OK(ingress_file(0, 35), "canary weight edit"))
		goto out;
	if (ASSERT_TRUE(settle(c, full0, inc0, false), "an incremental computation")) {
		st = fg_control_stats(c);
		printf("N=%d: canary weight edited: %.2f ms\n", n, st->last_us / 1000.0);
		ASSERT_EQ(st->full, full0, "no full computation");
		r = route_for(fg_control_plan(c), "h0.example.com");
		if (ASSERT_OK_PTR(r, "route") && ASSERT_EQ(r->n_canaries, 1, "canary"))
			ASSERT_EQ(r->canaries[0].weight, 35, "new weight");
	}

	/* A bad weight: the whole computation rejects that canary, the rest
	 * keeps working. */
	full0 = fg_control_stats(c)->full;
	inc0 = fg_control_stats(c)->incremental;
	if (!ASSERT_OK(ingress_file(0, 150), "bad weight"))
		goto out;
	if (ASSERT_TRUE(settle(c, full0, inc0, true), "a full computation")) {
		r = route_for(fg_control_plan(c), "h0.example.com");
		if (ASSERT_OK_PTR(r, "main route kept"))
			ASSERT_EQ(r->n_canaries, 0, "the bad canary is out");
		ASSERT_EQ(fg_control_plan(c)->n_routes, (size_t)n, "every route kept");
	}

	/* A new Ingress: everything is recomputed. */
	full0 = fg_control_stats(c)->full;
	inc0 = fg_control_stats(c)->incremental;
	err = service_file(n, 0, e, 0);
	if (!err)
		err = ingress_file(n, -1);
	if (ASSERT_OK(err, "new Ingress") &&
	    ASSERT_TRUE(settle(c, full0, inc0, true), "a full computation"))
		ASSERT_EQ(fg_control_plan(c)->n_routes, (size_t)n + 1, "one more route");
out:
	fg_control_free(c);
	fg_dp_close(dp, true);
}

/* A fleet bigger than the backends map: the newest Ingresses are rejected,
 * whole, with the limit and the flag named; the rest is programmed; room
 * made later lets them in. */
static void subtest_no_room(void)
{
	struct fg_dp_opts dopts = { .max_services = 1024, .max_backends = 64, .max_rings = 4096 };
	struct fg_control_opts copts = { .listen = "10.0.0.1:80" };
	struct fg_dataplane *dp = NULL;
	struct fg_control *c = NULL;
	const struct fg_plan *p;
	unsigned long long full0;
	size_t i, accepted = 0, rejected = 0;
	char rel[64], path[PATH_MAX + 64];
	int err = 0;

	snprintf(dir, sizeof(dir), "%s/ctl-noroom", test__tmpdir());
	if (!ASSERT_OK(fg_sh("mkdir -p %s/fleet %s/clusters/%s %s/clusters/%s", dir, dir, CL1, dir,
			     CL2), "mkdir"))
		return;
	err = put("fleet/gw.yaml",
		  "apiVersion: mse.alibabacloud.com/v1alpha1\nkind: MseIngressConfig\n"
		  "metadata:\n  name: gw\n  annotations:\n"
		  "    mse.alibabacloud.com/remote-clusters: " CL1 "," CL2 "\n"
		  "spec:\n  ingress:\n    local:\n      ingressClass: mse\n");
	/* 12 Ingresses x 2 clusters x 4 endpoints = 96 > 63 backends. */
	for (i = 0; i < 12 && !err; i++) {
		err = ingress_file((int)i, -1);
		if (!err)
			err = service_file((int)i, 0, 4, 0);
		if (!err)
			err = service_file((int)i, 1, 4, 0);
	}
	if (!ASSERT_OK(err, "config files"))
		return;
	copts.config_dir = dir;
	if (!ASSERT_OK(fg_dp_load(&dp, &dopts), "data plane"))
		return;
	if (!ASSERT_OK(fg_control_new(&c, dp, &copts), "control"))
		goto out;
	fg_control_set_state(c, true, true);
	if (!ASSERT_OK(fg_control_recompute(c), "computation"))
		goto out;
	p = fg_control_plan(c);
	for (i = 0; i < p->n_ingresses; i++) {
		if (p->ingresses[i].accepted) {
			accepted++;
			continue;
		}
		rejected++;
		ASSERT_TRUE(strstr(p->ingresses[i].reason, "backends map is full") &&
			    strstr(p->ingresses[i].reason, "--max-backends"),
			    p->ingresses[i].reason);
	}
	printf("12 Ingresses, room for 63 endpoints: %zu accepted, %zu rejected\n", accepted,
	       rejected);
	ASSERT_EQ(accepted, 7, "those that fit (7 x 8 = 56 endpoints)");
	ASSERT_EQ(rejected, 5, "the others");
	ASSERT_EQ(p->n_routes, accepted, "their routes programmed");
	ASSERT_TRUE(strstr(p->gateways[0].message, "not programmed") != NULL,
		    "the gateway's status says so");
	ASSERT_STREQ(p->gateways[0].phase, "Listening", "and keeps serving");

	/* Room made: the rejected ones come in. */
	full0 = fg_control_stats(c)->full;
	for (i = 0; i < 6; i++) {
		snprintf(rel, sizeof(rel), "fleet/ing%zu.yaml", i);
		snprintf(path, sizeof(path), "%s/%s", dir, rel);
		unlink(path);
	}
	if (ASSERT_TRUE(settle(c, full0, 0, true), "recomputed")) {
		p = fg_control_plan(c);
		ASSERT_EQ(p->n_routes, 6, "the 6 left all fit");
	}
out:
	fg_control_free(c);
	fg_dp_close(dp, true);
}

FG_TEST(control)
{
	if (test__start_subtest("no_room"))
		subtest_no_room();
	if (test__start_subtest("incremental_n100"))
		fleet_body(100, 4);
	if (test__start_subtest("incremental_n2000"))
		fleet_body(2000, 4);
}
