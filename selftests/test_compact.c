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
	json_t *docs = NULL, *packed;
	char *yaml = slice_yaml(&len);
	int err;

	if (!ASSERT_OK_PTR(yaml, "yaml"))
		return;
	json_set_alloc_funcs(count_malloc, count_free);
	live_bytes = 0;
	err = fg_manifest_parse(yaml, len, "slice.yaml", &docs, NULL);
	whole = live_bytes;
	if (ASSERT_OK(err, "parse")) {
		packed = fg_obj_pack(json_array_get(docs, 0));
		json_decref(docs);
		docs = NULL;
		compact = live_bytes;
		printf("an endpoint: %.0f bytes whole, %.1f packed\n", (double)whole / N_EPS,
		       (double)compact / N_EPS);
		/* About 20 bytes of text and a share of the slice's own. */
		ASSERT_LE(compact / N_EPS, 40, "bytes per endpoint, packed");
		ASSERT_TRUE(fg_compact_is(packed), "packed");
		json_decref(packed);
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

static void pack_all(json_t *docs)
{
	json_t *obj, *packed;
	size_t i;

	json_array_foreach(docs, i, obj) {
		packed = fg_obj_pack(obj);
		if (ASSERT_OK_PTR(packed, "packed"))
			json_array_set_new(docs, i, packed);
	}
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
		if (compacted) {
			pack_all(cluster);
			pack_all(slice);
		}
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

/* ---- packed Services and slices: what readers see ---- */

static json_t *parse_one_doc(const char *yaml)
{
	json_t *docs = NULL, *obj;

	if (fg_manifest_parse(yaml, strlen(yaml), "obj.yaml", &docs, NULL))
		return NULL;
	obj = json_incref(json_array_get(docs, 0));
	json_decref(docs);
	return obj;
}

static const char svc_ports_yaml[] =
	"apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n"
	"  annotations: {a: b}\n  labels: {app: web}\n"
	"spec:\n  type: ClusterIP\n  selector: {app: web}\n  ports:\n"
	"  - {name: http, port: 80, targetPort: 8080}\n"
	"  - {name: admin, port: 81, targetPort: admin-port, protocol: TCP}\n"
	"  - {name: dns, port: 53, protocol: UDP}\n";

static void subtest_packed_fields(void)
{
	static const char slice_yaml_small[] =
		"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
		"  name: web-x1\n  labels: {kubernetes.io/service-name: web}\n"
		"ports:\n- {name: http, port: 8080}\n- {name: broken, port: \"x\"}\n- {port: 9090}\n"
		"endpoints:\n- addresses: [10.0.0.1]\n  targetRef: {name: web-1}\n"
		"- addresses: [10.0.0.2]\n  conditions: {ready: false}\n"
		"- addresses: [10.0.0.3, 10.0.0.4]\n";
	json_t *svc = parse_one_doc(svc_ports_yaml), *slice = parse_one_doc(slice_yaml_small);
	json_t *psvc = NULL, *pslice = NULL;
	struct fg_packed_ports it;
	struct fg_packed_port pp;
	struct fg_compact_ep ep;
	const char *pos = NULL;
	char line[64];
	int n = 0;

	if (!ASSERT_OK_PTR(svc, "service") || !ASSERT_OK_PTR(slice, "slice"))
		goto out;
	psvc = fg_obj_pack(svc);
	pslice = fg_obj_pack(slice);
	if (!ASSERT_OK_PTR(psvc, "service packed") || !ASSERT_OK_PTR(pslice, "slice packed"))
		goto out;
	ASSERT_EQ(json_object_size(psvc), 2, "two keys: kind and the record");
	ASSERT_STREQ(json_string_value(json_object_get(psvc, "kind")), "Service", "kind kept");
	ASSERT_TRUE(fg_packed_is(psvc) && !fg_packed_is(svc), "packed or not");
	ASSERT_TRUE(fg_obj_pack(psvc) == NULL, "packing twice: nothing to do");
	/* The accessors say the same of both forms. */
	ASSERT_STREQ(fg_obj_ns(psvc), fg_obj_ns(svc), "namespace");
	ASSERT_STREQ(fg_obj_name(psvc), "web", "name");
	ASSERT_STREQ(fg_obj_ns(pslice), "default", "no namespace: default, as whole");
	ASSERT_STREQ(fg_obj_ns(slice), "default", "no namespace, whole");
	ASSERT_STREQ(fg_obj_name(pslice), "web-x1", "slice name");
	ASSERT_STREQ(fg_obj_slice_owner(pslice), "web", "owner");
	ASSERT_STREQ(fg_obj_slice_owner(slice), "web", "owner, whole");
	ASSERT_TRUE(fg_obj_slice_owner(psvc) == NULL, "a Service has no owner");

	ASSERT_TRUE(fg_packed_ports(psvc, &it), "service ports");
	ASSERT_TRUE(fg_packed_next_port(&it, &pp), "port 1");
	ASSERT_TRUE(!strcmp(pp.name, "http") && pp.port == 80 && pp.has_target &&
		    pp.target_num == 8080 && !pp.target_name && !pp.proto, "http 80 -> 8080");
	ASSERT_TRUE(fg_packed_next_port(&it, &pp), "port 2");
	ASSERT_TRUE(!strcmp(pp.name, "admin") && pp.port == 81 && pp.has_target &&
		    pp.target_name && !strcmp(pp.target_name, "admin-port") && pp.proto &&
		    !strcmp(pp.proto, "TCP"), "admin 81 -> admin-port/TCP");
	ASSERT_TRUE(fg_packed_next_port(&it, &pp), "port 3");
	ASSERT_TRUE(!strcmp(pp.name, "dns") && pp.port == 53 && !pp.has_target && pp.proto &&
		    !strcmp(pp.proto, "UDP"), "dns 53/UDP, no target");
	ASSERT_FALSE(fg_packed_next_port(&it, &pp), "three ports");
	ASSERT_FALSE(fg_packed_ports(svc, &it), "a whole object has no packed ports");

	/* A slice's ports: the one without a number is left out (no reader
	 * can use it), the unnamed one kept as "". */
	ASSERT_TRUE(fg_packed_ports(pslice, &it), "slice ports");
	while (fg_packed_next_port(&it, &pp)) {
		n++;
		if (n == 1)
			ASSERT_TRUE(!strcmp(pp.name, "http") && pp.port == 8080 && !pp.has_target,
				    "http 8080");
		if (n == 2)
			ASSERT_TRUE(!strcmp(pp.name, "") && pp.port == 9090, "unnamed 9090");
	}
	ASSERT_EQ(n, 2, "slice ports with numbers");

	/* Ready endpoints only; no pod: "". */
	n = 0;
	while (fg_compact_next(pslice, &pos, &ep)) {
		snprintf(line, sizeof(line), "%.*s/%.*s", (int)ep.addr_len, ep.addr,
			 (int)ep.pod_len, ep.pod);
		n++;
		if (n == 1)
			ASSERT_STREQ(line, "10.0.0.1/web-1", "endpoint 1");
		if (n == 3)
			ASSERT_STREQ(line, "10.0.0.4/", "endpoint 3");
	}
	ASSERT_EQ(n, 3, "three ready addresses");
	pos = NULL;
	ASSERT_FALSE(fg_compact_next(psvc, &pos, &ep), "a Service has no endpoints to walk");
out:
	json_decref(svc);
	json_decref(slice);
	json_decref(psvc);
	json_decref(pslice);
}

/* What the format cannot say stays whole: never a different meaning. */
static void subtest_not_packed(void)
{
	static const char *const whole[] = {
		"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\n"
		"endpoints: []\n",
		"apiVersion: v1\n"
		"kind: Service\nmetadata: {name: s}\nspec:\n  ports: [{name: http, port: \"80\"}]\n",
		"apiVersion: v1\n"
		"kind: Service\nmetadata: {name: s}\nspec:\n  ports: [{name: \"a\\tb\", port: 80}]\n",
		"apiVersion: v1\n"
		"kind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80, targetPort: null}]\n",
		"apiVersion: discovery.k8s.io/v1\n"
		"kind: EndpointSlice\nmetadata: {name: s, labels: {kubernetes.io/service-name: w}}\n"
		"endpoints: [{addresses: [\"a\\nb\"]}]\n",
		"apiVersion: v1\n"
		"kind: ConfigMap\nmetadata: {name: s}\n",
		"apiVersion: v1\n"
		"kind: Endpoints\nmetadata: {name: s}\n",
		"apiVersion: v1\n"
		"kind: Pod\nmetadata: {name: s}\n",
	};
	size_t i;

	for (i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		json_t *obj = parse_one_doc(whole[i]), *p;

		if (!ASSERT_OK_PTR(obj, whole[i]))
			continue;
		p = fg_obj_pack(obj);
		if (!ASSERT_TRUE(p == NULL, whole[i]))
			json_decref(p);
		json_decref(obj);
	}
}

/* A Service and a 10-endpoint slice as the fleet benchmark writes them:
 * what one file costs in jansson's allocations, whole and packed. */
static void subtest_bytes_per_service(void)
{
	static const char file[] =
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-000031\n  namespace: bench\n"
		"spec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n---\n"
		"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
		"  name: svc-000031-s1\n  namespace: bench\n  labels:\n"
		"    kubernetes.io/service-name: svc-000031\naddressType: IPv4\n"
		"ports:\n- name: http\n  port: 8080\nendpoints:\n"
		"- {addresses: [\"10.64.2.119\"], conditions: {ready: true}}\n"
		"- {addresses: [\"10.64.2.120\"], conditions: {ready: true}}\n"
		"- {addresses: [\"10.64.2.121\"], conditions: {ready: true}}\n"
		"- {addresses: [\"10.64.2.122\"], conditions: {ready: true}}\n"
		"- {addresses: [\"10.64.2.123\"], conditions: {ready: true}}\n"
		"- {addresses: [\"10.64.2.124\"], conditions: {ready: true}}\n"
		"- {addresses: [\"10.64.2.125\"], conditions: {ready: true}}\n"
		"- {addresses: [\"10.64.2.126\"], conditions: {ready: true}}\n"
		"- {addresses: [\"10.64.2.127\"], conditions: {ready: true}}\n"
		"- {addresses: [\"10.64.2.128\"], conditions: {ready: true}}\n";
	json_t *docs = NULL;
	size_t whole, packed;

	json_set_alloc_funcs(count_malloc, count_free);
	live_bytes = 0;
	if (ASSERT_OK(fg_manifest_parse(file, sizeof(file) - 1, "svc.yaml", &docs, NULL),
		      "parse")) {
		whole = live_bytes;
		pack_all(docs);
		packed = live_bytes;
		printf("a Service and its slice: %zu bytes whole, %zu packed\n", whole, packed);
		/* The bench's fleet has 100,000 of these at N=10,000 C=10. */
		ASSERT_LE(packed, 1300, "bytes packed (without malloc's own overhead)");
		ASSERT_LE(packed * 4, whole, "a quarter of the whole at most");
	}
	json_decref(docs);
	ASSERT_EQ(live_bytes, 0, "everything freed");
	json_set_alloc_funcs(malloc, free);
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
	if (test__start_subtest("packed_fields"))
		subtest_packed_fields();
	if (test__start_subtest("not_packed"))
		subtest_not_packed();
	if (test__start_subtest("bytes_per_service"))
		subtest_bytes_per_service();
}
