// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The applier against a real data plane (loaded, not pinned): plans of
 * synthetic fleets (N Ingresses, each with its own Service of E endpoints
 * in each of C clusters), then one change, counting the map writes and
 * ring publications it costs. The cost of a change must not grow with the
 * fleet: the same change on a fleet ten times larger writes the same.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <bpf/bpf.h>

#include "apply.h"
#include "dataplane.h"
#include "routes.h"
#include "test_progs.h"

#define CL1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define CL2 "c15d48ca9d1fd43f9bbb89c56a474843c"

static json_t *gateway(void)
{
	return json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:{s:{s:s}}}}",
			 "apiVersion", "mse.alibabacloud.com/v1alpha1", "kind", "MseIngressConfig",
			 "metadata", "name", "gw", "annotations",
			 "mse.alibabacloud.com/remote-clusters", CL1 "," CL2,
			 "spec", "ingress", "local", "ingressClass", "mse");
}

static json_t *ingress(int i)
{
	char name[32], host[64], svc[32];

	snprintf(name, sizeof(name), "ing%d", i);
	snprintf(host, sizeof(host), "h%d.example.com", i);
	snprintf(svc, sizeof(svc), "svc%d", i);
	return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:[{s:s, s:{s:[{s:s, s:s, s:{s:{s:s, s:{s:i}}}}]}}]}}",
			 "apiVersion", "networking.k8s.io/v1", "kind", "Ingress",
			 "metadata", "name", name, "namespace", "web",
			 "spec", "ingressClassName", "mse", "rules", "host", host, "http", "paths",
			 "path", "/", "pathType", "Prefix", "backend", "service", "name", svc,
			 "port", "number", 80);
}

static json_t *service(int i)
{
	char svc[32];

	snprintf(svc, sizeof(svc), "svc%d", i);
	return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:[{s:s, s:i, s:i}]}}",
			 "apiVersion", "v1", "kind", "Service", "metadata", "name", svc,
			 "namespace", "web", "spec", "ports", "name", "http", "port", 80,
			 "targetPort", 8080);
}

/* Service i's slice in cluster c: e endpoints 10.(c+1).x.y, distinct for
 * every (service, endpoint). */
static json_t *slice(int i, int c, int e, int moved)
{
	json_t *eps = json_array();
	char name[48], svc[32], addr[32];
	int k;

	for (k = 0; k < e; k++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", c + 1 + (k == 0 ? moved : 0),
			 (i * 16 + k) / 250, (i * 16 + k) % 250 + 1);
		json_array_append_new(eps, json_pack("{s:[s], s:{s:b}}", "addresses", addr,
						     "conditions", "ready", 1));
	}
	snprintf(name, sizeof(name), "svc%d-%d", i, c);
	snprintf(svc, sizeof(svc), "svc%d", i);
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:[{s:s, s:i}], s:o}",
			 "apiVersion", "discovery.k8s.io/v1", "kind", "EndpointSlice",
			 "metadata", "name", name, "namespace", "web", "labels",
			 "kubernetes.io/service-name", svc, "addressType", "IPv4",
			 "ports", "name", "http", "port", 8080, "endpoints", eps);
}

/* A fleet of n Ingresses; moved shifts service 0's first endpoint in
 * cluster 1 to another address (one endpoint changes). */
static int fleet(int n, int e, int moved, struct fg_snapshot *snap)
{
	const char *ids[2] = { CL1, CL2 };
	int i, c;

	snap->fleet = json_array();
	snap->clusters = json_object();
	snap->cluster_errors = NULL;
	json_array_append_new(snap->fleet, gateway());
	for (i = 0; i < n; i++)
		json_array_append_new(snap->fleet, ingress(i));
	for (c = 0; c < 2; c++) {
		json_t *objs = json_array();

		for (i = 0; i < n; i++) {
			json_array_append_new(objs, service(i));
			json_array_append_new(objs, slice(i, c, e, i == 0 && c == 0 ? moved : 0));
		}
		json_object_set_new(snap->clusters, ids[c], objs);
	}
	return 0;
}

static void snap_free(struct fg_snapshot *snap)
{
	json_decref(snap->fleet);
	json_decref(snap->clusters);
}

struct cost {
	__u64 map_writes, ring_writes;
	struct fg_apply_stats st;
};

/* Applies the fleet, then the fleet with one endpoint moved; the cost of
 * the second apply. */
static int change_cost(int n, int e, struct cost *out)
{
	struct fg_plan_opts popts = { .dataplane_ready = true, .listening = true,
				      .address = "10.0.0.1" };
	struct fg_applier_opts aopts = { .listen_family = FG_AF_INET, .listen_port = 80 };
	struct fg_dp_opts dopts = { .max_services = 4096, .max_backends = 65536,
				    .max_rings = 65536 };
	struct fg_dataplane *dp = NULL;
	struct fg_applier *a = NULL;
	struct fg_snapshot s1 = {}, s2 = {};
	struct fg_plan *p1 = NULL, *p2 = NULL;
	struct fg_ring_stats before, after;
	int err;

	fg_addr_parse("10.0.0.1", &aopts.listen_addr, &aopts.listen_family);
	err = fg_dp_load(&dp, &dopts);
	if (err)
		return err;
	err = fg_applier_new(&a, dp, &aopts);
	if (!err)
		err = fleet(n, e, 0, &s1);
	if (!err)
		err = fleet(n, e, 100, &s2);
	if (!err)
		err = fg_plan_compute(&s1, &popts, &p1);
	if (!err)
		err = fg_plan_compute(&s2, &popts, &p2);
	if (!err)
		err = fg_applier_apply(a, p1);
	if (err)
		goto out;
	fg_dp_ring_stats(dp, &before);
	err = fg_applier_apply(a, p2);
	fg_dp_ring_stats(dp, &after);
	out->map_writes = after.map_writes - before.map_writes;
	out->ring_writes = after.ring_writes - before.ring_writes;
	out->st = *fg_applier_stats(a);
out:
	fg_plan_free(p1);
	fg_plan_free(p2);
	snap_free(&s1);
	snap_free(&s2);
	fg_applier_free(a);
	fg_dp_close(dp, true);
	return err;
}

static void subtest_one_endpoint_is_o1(void)
{
	struct cost small = {}, big = {};

	if (!ASSERT_OK(change_cost(20, 4, &small), "20 Ingresses"))
		return;
	if (!ASSERT_OK(change_cost(200, 4, &big), "200 Ingresses"))
		return;
	printf("one endpoint moved: N=20: %llu map writes, %llu rings; N=200: %llu map writes, "
	       "%llu rings\n", (unsigned long long)small.map_writes,
	       (unsigned long long)small.ring_writes, (unsigned long long)big.map_writes,
	       (unsigned long long)big.ring_writes);
	ASSERT_EQ(big.map_writes, small.map_writes, "map writes do not grow with the fleet");
	ASSERT_EQ(big.ring_writes, small.ring_writes, "ring writes do not grow with the fleet");
	ASSERT_LE(small.map_writes, 12, "a handful of writes");
	ASSERT_EQ(big.st.targets_written, 1, "one target written");
	ASSERT_EQ(big.st.targets_unchanged, 199, "the others skipped");
	ASSERT_EQ(big.st.backends_written, 1, "one backend written");
	ASSERT_EQ(big.st.backends_removed, 1, "one removed");
}

/* Re-applying the same plan writes nothing. */
static void subtest_same_plan_writes_nothing(void)
{
	struct fg_plan_opts popts = { .dataplane_ready = true, .listening = true,
				      .address = "10.0.0.1" };
	struct fg_applier_opts aopts = { .listen_port = 80 };
	struct fg_dp_opts dopts = { .max_services = 4096, .max_backends = 65536,
				    .max_rings = 65536 };
	struct fg_ring_stats before, after;
	struct fg_dataplane *dp = NULL;
	struct fg_applier *a = NULL;
	struct fg_snapshot s = {};
	struct fg_plan *p = NULL;

	fg_addr_parse("10.0.0.1", &aopts.listen_addr, &aopts.listen_family);
	if (!ASSERT_OK(fg_dp_load(&dp, &dopts), "load"))
		return;
	if (!ASSERT_OK(fg_applier_new(&a, dp, &aopts), "applier"))
		goto out;
	fleet(50, 3, 0, &s);
	if (!ASSERT_OK(fg_plan_compute(&s, &popts, &p), "plan") ||
	    !ASSERT_OK(fg_applier_apply(a, p), "first apply"))
		goto out;
	fg_dp_ring_stats(dp, &before);
	ASSERT_OK(fg_applier_apply(a, p), "again");
	fg_dp_ring_stats(dp, &after);
	ASSERT_EQ(after.map_writes - before.map_writes, 0, "no map write");
	ASSERT_EQ(fg_applier_stats(a)->targets_unchanged, 50, "every target unchanged");
out:
	fg_plan_free(p);
	snap_free(&s);
	fg_applier_free(a);
	fg_dp_close(dp, true);
}

FG_TEST(apply)
{
	if (test__start_subtest("one_endpoint_is_o1"))
		subtest_one_endpoint_is_o1();
	if (test__start_subtest("same_plan_writes_nothing"))
		subtest_same_plan_writes_nothing();
}
