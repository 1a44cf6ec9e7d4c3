// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Compact EndpointSlices (agent/compact.h): what an endpoint costs in
 * memory once compacted (counted by jansson's allocator), and that routes
 * computed from compacted slices are those computed from whole ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "compact.h"
#include "manifest.h"
#include "routes.h"
#include "test_progs.h"

#define CL1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define N_EPS 1000

/* ---- jansson's allocations, counted ---- */

static size_t live_bytes;

static void *count_malloc(size_t n)
{
	size_t *p = malloc(n + sizeof(size_t) * 2);

	if (!p)
		return NULL;
	p[0] = n;
	live_bytes += n;
	return p + 2;
}

static void count_free(void *ptr)
{
	size_t *p = ptr;

	if (!p)
		return;
	live_bytes -= p[-2];
	free(p - 2);
}

/* A slice as kubectl shows one: N_EPS endpoints with pods, zones, nodes
 * and conditions; every tenth not ready. */
static char *slice_yaml(size_t *len)
{
	size_t cap = 400 * N_EPS + 1024, off = 0;
	char *s = malloc(cap);
	int k;

	if (!s)
		return NULL;
	off += snprintf(s + off, cap - off,
			"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
			"  name: web-abcde\n  namespace: shop\n  generation: 7\n"
			"  resourceVersion: \"123456\"\n  labels:\n"
			"    kubernetes.io/service-name: web\n"
			"    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io\n"
			"  ownerReferences:\n  - apiVersion: v1\n    kind: Service\n    name: web\n"
			"    uid: 7f0c5a3e-1111-2222-3333-444455556666\naddressType: IPv4\n"
			"ports:\n- name: http\n  port: 8080\n  protocol: TCP\nendpoints:\n");
	for (k = 0; k < N_EPS; k++)
		off += snprintf(s + off, cap - off,
				"- addresses: [\"10.1.%d.%d\"]\n"
				"  conditions: {ready: %s, serving: true, terminating: false}\n"
				"  nodeName: node-%d\n  zone: zone-a\n"
				"  targetRef: {kind: Pod, name: web-%d, namespace: shop, uid: u%d}\n",
				k / 250, k % 250 + 1, k % 10 == 9 ? "false" : "true", k % 7, k, k);
	*len = off;
	return s;
}

static void subtest_bytes_per_endpoint(void)
{
	size_t len, whole, compact;
	json_t *docs = NULL;
	char *yaml = slice_yaml(&len);
	int err;

	if (!ASSERT_OK_PTR(yaml, "yaml"))
		return;
	json_set_alloc_funcs(count_malloc, count_free);
	live_bytes = 0;
	err = fg_manifest_parse(yaml, len, "slice.yaml", &docs, NULL);
	whole = live_bytes;
	if (ASSERT_OK(err, "parse")) {
		ASSERT_OK(fg_obj_compact(json_array_get(docs, 0)), "compact");
		compact = live_bytes;
		printf("an endpoint: %.0f bytes whole, %.1f compacted\n", (double)whole / N_EPS,
		       (double)compact / N_EPS);
		/* About 20 bytes of text and a share of the slice's own. */
		ASSERT_LE(compact / N_EPS, 40, "bytes per endpoint, compacted");
		ASSERT_TRUE(fg_compact_is(json_array_get(docs, 0)), "compacted");
	}
	json_decref(docs);
	ASSERT_EQ(live_bytes, 0, "everything freed");
	json_set_alloc_funcs(malloc, free);
	free(yaml);
}

/* ---- the same routes either way ---- */

static json_t *fleet_objs(void)
{
	static const char fleet[] =
		"apiVersion: mse.alibabacloud.com/v1alpha1\nkind: MseIngressConfig\n"
		"metadata:\n  name: gw\n  annotations:\n"
		"    mse.alibabacloud.com/remote-clusters: " CL1 "\n"
		"spec:\n  ingress:\n    local:\n      ingressClass: mse\n---\n"
		"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n"
		"  namespace: shop\nspec:\n  ingressClassName: mse\n  rules:\n"
		"  - host: shop.example\n    http:\n      paths:\n      - path: /\n"
		"        pathType: Prefix\n        backend:\n          service:\n"
		"            name: web\n            port:\n              number: 80\n";
	json_t *docs = NULL;

	fg_manifest_parse(fleet, sizeof(fleet) - 1, "fleet.yaml", &docs, NULL);
	return docs;
}

static struct fg_plan *plan_for(bool compacted)
{
	static const char svc[] =
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n"
		"spec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n";
	struct fg_plan_opts opts = { .dataplane_ready = true, .listening = true,
				     .address = "10.0.0.1" };
	json_t *cluster = NULL, *slice = NULL, *clusters = json_object(), *fleet = fleet_objs();
	struct fg_snapshot snap = { .fleet = fleet, .clusters = clusters };
	struct fg_plan *plan = NULL;
	size_t len;
	char *yaml = slice_yaml(&len);

	if (yaml && !fg_manifest_parse(svc, sizeof(svc) - 1, "svc.yaml", &cluster, NULL) &&
	    !fg_manifest_parse(yaml, len, "slice.yaml", &slice, NULL)) {
		if (compacted)
			fg_obj_compact(json_array_get(slice, 0));
		json_array_extend(cluster, slice);
		json_object_set(clusters, CL1, cluster);
		if (fg_plan_compute(&snap, &opts, &plan))
			plan = NULL;
	}
	free(yaml);
	json_decref(slice);
	json_decref(cluster);
	json_decref(clusters);
	json_decref(fleet);
	return plan;
}

static void subtest_same_routes(void)
{
	struct fg_plan *whole = plan_for(false), *compact = plan_for(true);
	const struct fg_target_cluster *a, *b;
	size_t i;

	if (!ASSERT_OK_PTR(whole, "plan from whole slices") ||
	    !ASSERT_OK_PTR(compact, "plan from compacted slices"))
		goto out;
	if (!ASSERT_EQ(whole->n_routes, 1, "one route") ||
	    !ASSERT_EQ(compact->n_routes, 1, "one route, compacted") ||
	    !ASSERT_EQ(whole->routes[0].target->n_clusters, 1, "one cluster") ||
	    !ASSERT_EQ(compact->routes[0].target->n_clusters, 1, "one cluster, compacted"))
		goto out;
	a = &whole->routes[0].target->clusters[0];
	b = &compact->routes[0].target->clusters[0];
	ASSERT_EQ(a->n_eps, N_EPS - N_EPS / 10, "the ready endpoints");
	if (!ASSERT_EQ(b->n_eps, a->n_eps, "as many, compacted"))
		goto out;
	for (i = 0; i < a->n_eps; i++)
		if (!ASSERT_MEMEQ(&b->eps[i], sizeof(b->eps[i]), &a->eps[i], sizeof(a->eps[i]),
				  "the same endpoint (address, port, pod)"))
			break;
out:
	fg_plan_free(whole);
	fg_plan_free(compact);
}

/* ---- shared strings ---- */

/* 200 Service files as one cluster's config directory would hold: after
 * interning, every tree is what it was (json_equal to a copy parsed
 * apart), equal short strings are one json_t, long ones are not shared,
 * and the objects take less memory. */
static void subtest_intern(void)
{
	char yaml[512];
	json_t *docs[200], *ref = NULL, *a, *b;
	size_t before = 0, after, i;
	struct fg_intern *in;
	int n, err = 0;

	json_set_alloc_funcs(count_malloc, count_free);
	live_bytes = 0;
	in = fg_intern_new();
	if (!ASSERT_OK_PTR(in, "intern table"))
		goto out_alloc;
	for (i = 0; i < 200; i++) {
		n = snprintf(yaml, sizeof(yaml),
			     "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%zu\n"
			     "  namespace: bench\n  annotations:\n    note: \"%s\"\n"
			     "spec:\n  ports:\n  - name: http\n    port: 80\n", i % 20,
			     "a long value that is longer than sixty-four bytes, never shared here");
		docs[i] = NULL;
		err = err ? err : fg_manifest_parse(yaml, (size_t)n, "svc.yaml", &docs[i], NULL);
	}
	if (!ASSERT_OK(err, "parse"))
		goto out;
	ref = json_deep_copy(docs[7]);
	before = live_bytes;
	for (i = 0; i < 200 && !err; i++)
		err = fg_intern_tree(in, docs[i]);
	ASSERT_OK(err, "intern");
	/* The table's own share counted in: it lives as long as the store. */
	after = live_bytes;
	printf("200 Services: %zu bytes before, %zu after interning\n", before, after);
	ASSERT_LT(after, before, "less memory");
	ASSERT_TRUE(json_equal(ref, docs[7]), "the same tree");
	a = json_object_get(json_array_get(docs[7], 0), "kind");
	b = json_object_get(json_array_get(docs[123], 0), "kind");
	ASSERT_TRUE(a == b, "one shared \"Service\"");
	a = json_object_get(json_object_get(json_array_get(docs[7], 0), "metadata"), "name");
	b = json_object_get(json_object_get(json_array_get(docs[27], 0), "metadata"), "name");
	ASSERT_TRUE(a == b && !strcmp(json_string_value(a), "svc-7"), "one shared name");
	a = json_object_get(json_object_get(json_object_get(json_array_get(docs[7], 0),
							   "metadata"), "annotations"), "note");
	b = json_object_get(json_object_get(json_object_get(json_array_get(docs[8], 0),
							   "metadata"), "annotations"), "note");
	ASSERT_TRUE(a != b && json_equal(a, b), "long strings stay apart");
out:
	json_decref(ref);
	for (i = 0; i < 200; i++)
		json_decref(docs[i]);
	fg_intern_free(in);
	ASSERT_EQ(live_bytes, 0, "everything freed");
out_alloc:
	json_set_alloc_funcs(malloc, free);
}

FG_TEST(compact)
{
	if (test__start_subtest("intern"))
		subtest_intern();
	if (test__start_subtest("bytes_per_endpoint"))
		subtest_bytes_per_endpoint();
	if (test__start_subtest("same_routes"))
		subtest_same_routes();
}
