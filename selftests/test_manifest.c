// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Manifest parsing: the product documentation's YAML (MseIngressConfig and
 * the five Ingress examples) loads verbatim with the types kubectl would
 * give, plus Service/Endpoints/EndpointSlice, multi-document files, lists,
 * JSON, the scalar rules, errors with their line numbers, the limits, and
 * garbage that must fail cleanly.
 */
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "manifest.h"
#include "test_progs.h"

#define CLUSTER1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define CLUSTER2 "c15d48ca9d1fd43f9bbb89c56a474843c"

/* selftests/data/manifests, found from build/test_progs or the cwd. */
static const char *data_dir(void)
{
	static char dir[PATH_MAX];
	char self[PATH_MAX];
	ssize_t n;

	if (dir[0])
		return dir;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		snprintf(dir, sizeof(dir), "%s/../selftests/data/manifests",
			 dirname(self));
		if (!access(dir, R_OK))
			return dir;
	}
	snprintf(dir, sizeof(dir), "selftests/data/manifests");
	return dir;
}

static json_t *load(const char *name, struct fg_manifest_error *err, int *rc)
{
	char path[PATH_MAX + 64];
	json_t *docs = NULL;

	snprintf(path, sizeof(path), "%s/%s", data_dir(), name);
	*rc = fg_manifest_parse_file(path, &docs, err);
	if (*rc)
		printf("%s:%d:%d: %s\n", err->file, err->line, err->column, err->reason);
	return docs;
}

/* jget(v, "spec", "rules", "[0]", "host", NULL) */
static json_t *jget(json_t *v, ...)
{
	const char *k;
	va_list ap;

	va_start(ap, v);
	while (v && (k = va_arg(ap, const char *))) {
		if (k[0] == '[')
			v = json_array_get(v, strtoul(k + 1, NULL, 10));
		else
			v = json_object_get(v, k);
	}
	va_end(ap);
	return v;
}

static int parse_str(const char *s, const char *name, json_t **docs,
		     struct fg_manifest_error *err)
{
	if (!s)
		return -ENOMEM;
	return fg_manifest_parse(s, strlen(s), name, docs, err);
}

static void check_ingress_backend(json_t *ing, const char *path)
{
	json_t *p = jget(ing, "spec", "rules", "[0]", "http", "paths", "[0]", NULL);

	ASSERT_STREQ(json_string_value(jget(ing, "spec", "ingressClassName", NULL)),
		     "mse", "ingressClassName");
	ASSERT_STREQ(json_string_value(jget(ing, "spec", "rules", "[0]", "host", NULL)),
		     "example.com", "host");
	ASSERT_STREQ(json_string_value(jget(p, "path", NULL)), path, "path");
	ASSERT_STREQ(json_string_value(jget(p, "pathType", NULL)), "Exact", "pathType");
	ASSERT_STREQ(json_string_value(jget(p, "backend", "service", "name", NULL)),
		     "service1", "service name");
	ASSERT_TRUE(json_is_integer(jget(p, "backend", "service", "port", "number", NULL)),
		    "port number is an integer");
	ASSERT_EQ(json_integer_value(jget(p, "backend", "service", "port", "number", NULL)),
		  80, "port number");
	ASSERT_STREQ(json_string_value(jget(ing, "metadata", "namespace", NULL)),
		     "web-demo", "namespace");
}

static const char *annot(json_t *obj, const char *key)
{
	json_t *v = jget(obj, "metadata", "annotations", key, NULL);

	if (v && !json_is_string(v))
		printf("annotation %s is not a string\n", key);
	return json_string_value(v);
}

static void test_seeds(void)
{
	struct fg_manifest_error err;
	json_t *docs, *d;
	int rc;

	if (test__start_subtest("seed_mseingressconfig")) {
		docs = load("seed-mseingressconfig.yaml", &err, &rc);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 1, "docs")) {
			d = json_array_get(docs, 0);
			ASSERT_STREQ(json_string_value(jget(d, "apiVersion", NULL)),
				     "mse.alibabacloud.com/v1alpha1", "apiVersion");
			ASSERT_STREQ(json_string_value(jget(d, "kind", NULL)),
				     "MseIngressConfig", "kind");
			ASSERT_STREQ(json_string_value(jget(d, "metadata", "name", NULL)),
				     "ackone-gateway", "name");
			/* commented out in the document */
			ASSERT_FALSE(jget(d, "metadata", "annotations", NULL), "no annotations");
			ASSERT_TRUE(json_is_integer(jget(d, "spec", "common", "instance", "replicas", NULL)),
				    "replicas is an integer");
			ASSERT_EQ(json_integer_value(jget(d, "spec", "common", "instance", "replicas", NULL)),
				  3, "replicas");
			ASSERT_STREQ(json_string_value(jget(d, "spec", "common", "instance", "spec", NULL)),
				     "2c4g", "instance spec");
			ASSERT_STREQ(json_string_value(jget(d, "spec", "common", "network", "vSwitches", "[0]", NULL)),
				     "${vsw-id1}", "vSwitch");
			ASSERT_FALSE(jget(d, "spec", "common", "network", "publicSLBSpec", NULL),
				     "commented-out SLB spec");
			ASSERT_STREQ(json_string_value(jget(d, "spec", "ingress", "local", "ingressClass", NULL)),
				     "mse", "ingressClass");
			ASSERT_STREQ(json_string_value(jget(d, "spec", "name", NULL)),
				     "mse-ingress", "spec.name");
		}
		json_decref(docs);
	}
	if (test__start_subtest("seed_mseingressconfig_attached")) {
		docs = load("seed-mseingressconfig-attached.yaml", &err, &rc);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 1, "docs")) {
			d = json_array_get(docs, 0);
			ASSERT_STREQ(annot(d, "mse.alibabacloud.com/remote-clusters"),
				     CLUSTER1 "," CLUSTER2, "remote-clusters");
		}
		json_decref(docs);
	}
	if (test__start_subtest("seed_ingress_demo")) {
		docs = load("seed-ingress-demo.yaml", &err, &rc);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 1, "docs")) {
			d = json_array_get(docs, 0);
			ASSERT_STREQ(json_string_value(jget(d, "apiVersion", NULL)),
				     "networking.k8s.io/v1", "apiVersion");
			ASSERT_STREQ(json_string_value(jget(d, "kind", NULL)), "Ingress", "kind");
			ASSERT_STREQ(json_string_value(jget(d, "metadata", "name", NULL)),
				     "web-demo", "name");
			check_ingress_backend(d, "/svc1");
		}
		json_decref(docs);
	}
	if (test__start_subtest("seed_ingress_cluster_one")) {
		docs = load("seed-ingress-cluster-one.yaml", &err, &rc);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 1, "docs")) {
			d = json_array_get(docs, 0);
			ASSERT_STREQ(json_string_value(jget(d, "metadata", "name", NULL)),
				     "web-demo-cluster-one", "name");
			ASSERT_EQ(json_object_size(jget(d, "metadata", "annotations", NULL)), 2,
				  "annotations");
			ASSERT_STREQ(annot(d, "mse.ingress.kubernetes.io/service-subset"),
				     "cluster-demo-1", "service-subset");
			ASSERT_STREQ(annot(d, "mse.ingress.kubernetes.io/subset-labels"),
				     "topology.istio.io/cluster " CLUSTER1 "\n", "subset-labels");
			check_ingress_backend(d, "/service1");
		}
		json_decref(docs);
	}
	if (test__start_subtest("seed_ingress_header")) {
		docs = load("seed-ingress-header.yaml", &err, &rc);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 1, "docs")) {
			d = json_array_get(docs, 0);
			ASSERT_STREQ(json_string_value(jget(d, "metadata", "name", NULL)),
				     "web-demo-cluster-second", "name");
			ASSERT_EQ(json_object_size(jget(d, "metadata", "annotations", NULL)), 5,
				  "annotations");
			ASSERT_STREQ(annot(d, "mse.ingress.kubernetes.io/service-subset"),
				     "cluster-demo-2", "service-subset");
			ASSERT_STREQ(annot(d, "mse.ingress.kubernetes.io/subset-labels"),
				     "topology.istio.io/cluster " CLUSTER2 "\n", "subset-labels");
			/* quoted "true": a string, not a bool */
			ASSERT_STREQ(annot(d, "nginx.ingress.kubernetes.io/canary"), "true", "canary");
			ASSERT_STREQ(annot(d, "nginx.ingress.kubernetes.io/canary-by-header"),
				     "stage", "canary-by-header");
			ASSERT_STREQ(annot(d, "nginx.ingress.kubernetes.io/canary-by-header-value"),
				     "gray", "canary-by-header-value");
			check_ingress_backend(d, "/service1");
		}
		json_decref(docs);
	}
	if (test__start_subtest("seed_ingress_weight")) {
		docs = load("seed-ingress-weight.yaml", &err, &rc);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 2, "docs")) {
			d = json_array_get(docs, 0);
			ASSERT_STREQ(json_string_value(jget(d, "metadata", "name", NULL)),
				     "web-demo-weight", "name 0");
			ASSERT_STREQ(annot(d, "mse.ingress.kubernetes.io/subset-labels"),
				     "topology.istio.io/cluster " CLUSTER1 "\n", "subset-labels 0");
			ASSERT_FALSE(jget(d, "metadata", "annotations",
					  "nginx.ingress.kubernetes.io/canary", NULL), "no canary 0");
			check_ingress_backend(d, "/svc1-w");
			d = json_array_get(docs, 1);
			ASSERT_STREQ(json_string_value(jget(d, "metadata", "name", NULL)),
				     "web-demo-weight-canary", "name 1");
			ASSERT_STREQ(annot(d, "mse.ingress.kubernetes.io/service-subset"),
				     "cluster-demo-2", "service-subset 1");
			ASSERT_STREQ(annot(d, "mse.ingress.kubernetes.io/subset-labels"),
				     "topology.istio.io/cluster " CLUSTER2 "\n", "subset-labels 1");
			ASSERT_STREQ(annot(d, "nginx.ingress.kubernetes.io/canary"), "true", "canary");
			/* quoted "10" stays a string */
			ASSERT_TRUE(json_is_string(jget(d, "metadata", "annotations",
							"nginx.ingress.kubernetes.io/canary-weight", NULL)),
				    "canary-weight is a string");
			ASSERT_STREQ(annot(d, "nginx.ingress.kubernetes.io/canary-weight"), "10",
				     "canary-weight");
			check_ingress_backend(d, "/svc1-w");
		}
		json_decref(docs);
	}
}

static void test_cluster_objects(void)
{
	struct fg_manifest_error err;
	json_t *docs, *d, *e;
	int rc;

	if (test__start_subtest("service")) {
		docs = load("web-demo-service.yaml", &err, &rc);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 1, "docs")) {
			d = json_array_get(docs, 0);
			ASSERT_STREQ(json_string_value(jget(d, "kind", NULL)), "Service", "kind");
			ASSERT_STREQ(json_string_value(jget(d, "metadata", "name", NULL)),
				     "service1", "name");
			ASSERT_EQ(json_integer_value(jget(d, "spec", "ports", "[0]", "port", NULL)),
				  80, "port");
			ASSERT_TRUE(json_is_integer(jget(d, "spec", "ports", "[0]", "targetPort", NULL)),
				    "targetPort is an integer");
			ASSERT_EQ(json_integer_value(jget(d, "spec", "ports", "[0]", "targetPort", NULL)),
				  8080, "targetPort");
		}
		json_decref(docs);
	}
	if (test__start_subtest("endpoints")) {
		docs = load("web-demo-endpoints.yaml", &err, &rc);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 1, "docs")) {
			d = json_array_get(docs, 0);
			e = jget(d, "subsets", "[0]", NULL);
			ASSERT_EQ(json_array_size(jget(e, "addresses", NULL)), 2, "ready");
			ASSERT_EQ(json_array_size(jget(e, "notReadyAddresses", NULL)), 1, "not ready");
			ASSERT_STREQ(json_string_value(jget(e, "notReadyAddresses", "[0]", "ip", NULL)),
				     "10.1.0.13", "not ready ip");
			ASSERT_EQ(json_integer_value(jget(e, "ports", "[0]", "port", NULL)), 8080,
				  "port");
		}
		json_decref(docs);
	}
	if (test__start_subtest("endpointslice")) {
		docs = load("web-demo-endpointslice.yaml", &err, &rc);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 1, "docs")) {
			d = json_array_get(docs, 0);
			ASSERT_STREQ(json_string_value(jget(d, "metadata", "labels",
							    "kubernetes.io/service-name", NULL)),
				     "service1", "service-name label");
			ASSERT_TRUE(json_is_true(jget(d, "metadata", "ownerReferences", "[0]",
						      "controller", NULL)), "controller");
			ASSERT_EQ(json_array_size(jget(d, "endpoints", NULL)), 3, "endpoints");
			ASSERT_TRUE(json_is_true(jget(d, "endpoints", "[0]", "conditions", "ready", NULL)),
				    "ready 0");
			ASSERT_TRUE(json_is_false(jget(d, "endpoints", "[2]", "conditions", "ready", NULL)),
				    "ready 2");
			ASSERT_STREQ(json_string_value(jget(d, "endpoints", "[2]", "addresses", "[0]", NULL)),
				     "10.1.0.13", "address 2");
			ASSERT_EQ(json_integer_value(jget(d, "ports", "[0]", "port", NULL)), 8080,
				  "port");
		}
		json_decref(docs);
	}
}

#define OBJ_HDR "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t\n"

static void test_scalars(void)
{
	static const char y[] = OBJ_HDR
		"data:\n"
		"  i: 42\n  neg: -7\n  plus: +3\n  hex: 0x1F\n  oct: 0o17\n  lead0: 0755\n"
		"  big: 99999999999999999999\n"
		"  f1: 1.5\n  f2: -2e3\n  f3: .5\n  f4: 1.\n"
		"  t1: true\n  t2: True\n  t3: TRUE\n  f: false\n"
		"  n1: null\n  n2: ~\n  n3:\n  n4: NULL\n"
		"  yes: yes\n  on: on\n  ver: 1.2.3\n  ip: 10.0.0.1\n  x0: 0x\n"
		"  q1: \"80\"\n  q2: 'true'\n  q3: \"\"\n  q4: 'null'\n"
		"  lit: |\n    a\n    b\n  fold: >\n    a\n    b\n  strip: |-\n    x\n"
		"  tstr: !!str 13\n  tint: !!int \"14\"\n  tfloat: !!float 3\n"
		"  tbool: !!bool \"false\"\n  tnull: !!null ''\n  nonspec: ! 15\n"
		"  custom: !foo 16\n  bin: !!binary aGk=\n"
		"  80: int key\n  true: bool key\n"
		"  anchored: &a {k: v}\n  alias: *a\n"
		"  base: &b {p: 1, q: 2}\n  m1: {<<: *b, q: 3}\n  m2: {q: 9, <<: [*b, {r: 4}]}\n";
	struct fg_manifest_error err;
	json_t *docs = NULL, *d;
	int rc;

	rc = parse_str(y, "scalars.yaml", &docs, &err);
	if (!ASSERT_OK(rc, "parse")) {
		printf("%d:%d: %s\n", err.line, err.column, err.reason);
		return;
	}
	d = jget(docs, "[0]", "data", NULL);
#define INT(k, v) ASSERT_TRUE(json_is_integer(jget(d, k, NULL)) && \
			      json_integer_value(jget(d, k, NULL)) == (v), k)
#define REAL(k, v) ASSERT_TRUE(json_is_real(jget(d, k, NULL)) && \
			       json_real_value(jget(d, k, NULL)) == (v), k)
#define STR(k, v) ASSERT_STREQ(json_string_value(jget(d, k, NULL)), v, k)
#define BOOL(k, v) ASSERT_TRUE(json_is_boolean(jget(d, k, NULL)) && \
			       json_is_true(jget(d, k, NULL)) == (v), k)
#define NUL(k) ASSERT_TRUE(json_is_null(jget(d, k, NULL)), k)
	INT("i", 42); INT("neg", -7); INT("plus", 3); INT("hex", 31); INT("oct", 15);
	INT("lead0", 755);
	REAL("big", 1e20);
	REAL("f1", 1.5); REAL("f2", -2000); REAL("f3", 0.5); REAL("f4", 1.0);
	BOOL("t1", true); BOOL("t2", true); BOOL("t3", true); BOOL("f", false);
	NUL("n1"); NUL("n2"); NUL("n3"); NUL("n4");
	/* YAML 1.2: yes/on are strings (the keys too) */
	STR("yes", "yes"); STR("on", "on"); STR("ver", "1.2.3"); STR("ip", "10.0.0.1");
	STR("x0", "0x");
	STR("q1", "80"); STR("q2", "true"); STR("q3", ""); STR("q4", "null");
	STR("lit", "a\nb\n"); STR("fold", "a b\n"); STR("strip", "x");
	STR("tstr", "13"); INT("tint", 14); REAL("tfloat", 3.0); BOOL("tbool", false);
	NUL("tnull"); STR("nonspec", "15"); STR("custom", "16"); STR("bin", "aGk=");
	STR("80", "int key"); STR("true", "bool key");
	ASSERT_STREQ(json_string_value(jget(d, "alias", "k", NULL)), "v", "alias copied");
	ASSERT_TRUE(jget(d, "alias", NULL) != jget(d, "anchored", NULL), "alias is a copy");
	ASSERT_EQ(json_integer_value(jget(d, "m1", "p", NULL)), 1, "merge p");
	ASSERT_EQ(json_integer_value(jget(d, "m1", "q", NULL)), 3, "merge: explicit wins (after)");
	ASSERT_EQ(json_integer_value(jget(d, "m2", "q", NULL)), 9, "merge: explicit wins (before)");
	ASSERT_EQ(json_integer_value(jget(d, "m2", "r", NULL)), 4, "merge list");
	ASSERT_EQ(json_object_size(jget(d, "m2", NULL)), 3, "merge size");
#undef INT
#undef REAL
#undef STR
#undef BOOL
#undef NUL
	json_decref(docs);
}

static void test_documents(void)
{
	struct fg_manifest_error err;
	json_t *docs = NULL;
	int rc;

	if (test__start_subtest("multi_doc_and_empty")) {
		static const char y[] = "# leading comment\n---\n---\n" OBJ_HDR
			"---\n# only a comment\n---\n"
			"apiVersion: v1\nkind: Service\nmetadata: {name: b}\n---\n...\n";

		rc = parse_str(y, "multi.yaml", &docs, &err);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 2, "docs")) {
			ASSERT_STREQ(json_string_value(jget(docs, "[0]", "kind", NULL)),
				     "ConfigMap", "doc 0");
			ASSERT_STREQ(json_string_value(jget(docs, "[1]", "metadata", "name", NULL)),
				     "b", "doc 1");
		}
		json_decref(docs);
	}
	if (test__start_subtest("empty_inputs")) {
		static const char *const empty[] = { "", "\n\n", "# nothing\n", "---\n",
						     "---\n...\n---\n", "~\n", " \n" };
		size_t i;

		for (i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
			rc = parse_str(empty[i], "empty.yaml", &docs, &err);
			if (!ASSERT_OK(rc, "empty input parses"))
				printf("input %zu\n", i);
			else
				ASSERT_EQ(json_array_size(docs), 0, "no objects");
			json_decref(docs);
		}
		rc = fg_manifest_parse(NULL, 0, NULL, &docs, &err);
		ASSERT_OK(rc, "NULL data");
		json_decref(docs);
		rc = parse_str("", "empty.json", &docs, &err);
		ASSERT_OK(rc, "empty json");
		json_decref(docs);
	}
	if (test__start_subtest("list_kind")) {
		static const char y[] = "apiVersion: v1\nkind: List\nitems:\n"
			"- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n"
			"- apiVersion: discovery.k8s.io/v1\n  kind: EndpointSlice\n"
			"  metadata: {name: a-1}\n"
			"- apiVersion: v1\n  kind: List\n  items:\n"
			"  - {apiVersion: v1, kind: Pod, metadata: {name: p}}\n"
			"---\napiVersion: v1\nkind: ServiceList\nitems:\n"
			"- metadata: {name: typed}\n"
			"---\napiVersion: v1\nkind: List\nitems: []\n";

		rc = parse_str(y, "list.yaml", &docs, &err);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 4, "docs")) {
			ASSERT_STREQ(json_string_value(jget(docs, "[0]", "kind", NULL)),
				     "Service", "0");
			ASSERT_STREQ(json_string_value(jget(docs, "[1]", "kind", NULL)),
				     "EndpointSlice", "1");
			ASSERT_STREQ(json_string_value(jget(docs, "[2]", "kind", NULL)),
				     "Pod", "nested list");
			ASSERT_STREQ(json_string_value(jget(docs, "[3]", "kind", NULL)),
				     "Service", "typed list item kind");
			ASSERT_STREQ(json_string_value(jget(docs, "[3]", "apiVersion", NULL)),
				     "v1", "typed list item apiVersion");
		}
		json_decref(docs);
		rc = parse_str("apiVersion: v1\nkind: List\nitems:\n- {kind: Service, metadata: {name: x}}\n",
			       "list.yaml", &docs, &err);
		ASSERT_ERR(rc, "item without apiVersion");
		ASSERT_TRUE(strstr(err.reason, "items[0]") && strstr(err.reason, "apiVersion"),
			    err.reason);
	}
	if (test__start_subtest("json")) {
		static const char j[] =
			"{\"apiVersion\": \"v1\", \"kind\": \"Service\",\n"
			" \"metadata\": {\"name\": \"service1\", \"namespace\": \"web-demo\"},\n"
			" \"spec\": {\"ports\": [{\"port\": 80, \"targetPort\": 8080}]}}\n"
			"{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\n"
			" {\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"p\"}}]}\n";

		rc = parse_str(j, "svc.json", &docs, &err);
		if (ASSERT_OK(rc, "parse") && ASSERT_EQ(json_array_size(docs), 2, "docs")) {
			ASSERT_EQ(json_integer_value(jget(docs, "[0]", "spec", "ports", "[0]",
							  "port", NULL)), 80, "port");
			ASSERT_STREQ(json_string_value(jget(docs, "[1]", "kind", NULL)),
				     "Pod", "list item");
		}
		json_decref(docs);
		/* sniffed by content, with a byte order mark */
		rc = parse_str("\xef\xbb\xbf  {\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}",
			       "pod.yaml", &docs, &err);
		if (ASSERT_OK(rc, "sniffed"))
			ASSERT_EQ(json_array_size(docs), 1, "sniffed docs");
		json_decref(docs);

		rc = parse_str("{\"apiVersion\": \"v1\",\n \"kind\": \"Pod\",\n \"kind\": \"Pod\"}",
			       "dup.json", &docs, &err);
		ASSERT_ERR(rc, "duplicate key");
		ASSERT_EQ(err.line, 3, "duplicate key line");
		ASSERT_STREQ(err.file, "dup.json", "file");
		rc = parse_str(j, "x.json", &docs, &err); /* fine */
		json_decref(docs);
		rc = parse_str("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}\n\n{\"a\": ,}",
			       "bad.json", &docs, &err);
		ASSERT_ERR(rc, "syntax error");
		ASSERT_EQ(err.line, 3, "syntax error line (second value)");
		ASSERT_TRUE(docs == NULL, "no docs on error");
		rc = parse_str("[{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}]",
			       "arr.json", &docs, &err);
		ASSERT_ERR(rc, "top-level array");
		rc = parse_str("{\"a\": \"\\u0000\"}", "nul.json", &docs, &err);
		ASSERT_ERR(rc, "NUL in string");
	}
}

struct err_case {
	const char *name;
	const char *text;
	int line;
	const char *reason; /* substring */
};

static void test_errors(void)
{
	static const struct err_case cases[] = {
		{ "bad_indentation",
		  "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n   namespace: y\n",
		  5, "mapping values are not allowed" },
		{ "bad_dedent",
		  "apiVersion: v1\nkind: Service\nmetadata:\n    name: x\n  namespace: y\n",
		  5, "did not find expected key" },
		{ "duplicate_key",
		  "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  labels: {}\n  name: y\n",
		  6, "duplicate key \"name\"" },
		{ "duplicate_top_key",
		  "apiVersion: v1\nkind: Service\napiVersion: v2\nmetadata: {name: x}\n",
		  3, "duplicate key \"apiVersion\"" },
		{ "missing_kind",
		  OBJ_HDR "---\n# second\napiVersion: v1\nmetadata:\n  name: x\n",
		  7, "document 2: missing kind" },
		{ "missing_apiversion",
		  "kind: Service\nmetadata:\n  name: x\n", 1, "missing apiVersion" },
		{ "missing_name",
		  "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: x\n",
		  1, "missing metadata.name" },
		{ "empty_name",
		  "apiVersion: v1\nkind: Service\nmetadata:\n  name: \"\"\n",
		  1, "missing metadata.name" },
		{ "tab_indentation",
		  "apiVersion: v1\nkind: Service\nmetadata:\n\tname: x\n",
		  4, "cannot start any token" },
		{ "not_a_mapping", OBJ_HDR "---\n- a\n- b\n", 6, "not a mapping" },
		{ "scalar_doc", "just text\n", 1, "not a mapping" },
		{ "unknown_alias", OBJ_HDR "spec: *nope\n", 5, "unknown anchor" },
		{ "bad_int_tag", OBJ_HDR "spec: !!int abc\n", 5, "!!int" },
		{ "inf", OBJ_HDR "spec: .inf\n", 5, "JSON" },
		{ "complex_key", OBJ_HDR "? [a, b]\n: c\n", 5, "mapping key" },
		{ "null_key", OBJ_HDR "~: c\n", 5, "null mapping key" },
		{ "unclosed_quote", OBJ_HDR "spec: \"abc\n", 6, "unexpected end of stream" },
		{ "nul_escape", OBJ_HDR "spec: \"a\\0b\"\n", 5, "NUL" },
		{ "bad_utf8", OBJ_HDR "spec: \xff\xfe\n", 5, "UTF-8" },
		{ "control_char", OBJ_HDR "spec: a\x01\n", 5, "control characters" },
	};
	struct fg_manifest_error err;
	json_t *docs;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct err_case *c = &cases[i];

		if (!test__start_subtest(c->name))
			continue;
		docs = (json_t *)1;
		rc = parse_str(c->text, "bad.yaml", &docs, &err);
		printf("%s -> %s:%d:%d: %s\n", c->name, err.file, err.line, err.column,
		       err.reason);
		ASSERT_EQ(rc, -EBADMSG, "rc");
		ASSERT_TRUE(docs == NULL, "docs NULL");
		ASSERT_EQ(err.line, c->line, "line");
		ASSERT_STREQ(err.file, "bad.yaml", "file");
		ASSERT_TRUE(strstr(err.reason, c->reason) != NULL, c->reason);
	}
}

static char *repeat(const char *a, int na, const char *mid, const char *b, int nb)
{
	size_t la = strlen(a), lb = strlen(b), lm = strlen(mid);
	char *s = malloc(la * na + lm + lb * nb + 1), *p = s;
	int i;

	if (!s)
		return NULL;
	for (i = 0; i < na; i++, p += la)
		memcpy(p, a, la);
	memcpy(p, mid, lm);
	p += lm;
	for (i = 0; i < nb; i++, p += lb)
		memcpy(p, b, lb);
	*p = '\0';
	return s;
}

static void test_limits(void)
{
	struct fg_manifest_error err;
	json_t *docs = NULL;
	char *s, *t, *u;
	int rc;

	if (test__start_subtest("alias_bomb")) {
		/* 10^9 strings once expanded ("billion laughs") */
		static const char bomb[] = OBJ_HDR
			"a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
			"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
			"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
			"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
			"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
			"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
			"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
			"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
			"i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
		/* 10^4 strings: fine */
		static const char ok[] = OBJ_HDR
			"a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
			"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
			"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
			"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n";

		rc = parse_str(bomb, "bomb.yaml", &docs, &err);
		ASSERT_EQ(rc, -EBADMSG, "bomb rejected");
		ASSERT_TRUE(strstr(err.reason, "nodes") != NULL, err.reason);
		ASSERT_GE(err.line, 9, "line of the alias that overflows");
		rc = parse_str(ok, "ok.yaml", &docs, &err);
		if (ASSERT_OK(rc, "small expansion"))
			ASSERT_EQ(json_array_size(jget(docs, "[0]", "d", "[9]", "[9]", "[9]", NULL)),
				  10, "expanded");
		json_decref(docs);
	}
	if (test__start_subtest("deep_nesting")) {
		/* the mapping of the document is level 1 */
		s = repeat("[", 99, "", "]", 99);
		if (asprintf(&t, "%sspec: %s\n", OBJ_HDR, s) < 0)
			t = NULL;
		rc = parse_str(t, "deep.yaml", &docs, &err);
		ASSERT_OK(rc, "100 levels");
		json_decref(docs);
		free(s);
		free(t);
		s = repeat("[", 100, "", "]", 100);
		if (asprintf(&t, "%sspec: %s\n", OBJ_HDR, s) < 0)
			t = NULL;
		rc = parse_str(t, "deep.yaml", &docs, &err);
		ASSERT_EQ(rc, -EBADMSG, "101 levels");
		ASSERT_TRUE(strstr(err.reason, "nesting") != NULL, err.reason);
		free(s);
		free(t);
		/* very deep: rejected early, no stack overflow */
		s = repeat("- ", 200000, "x", "", 0);
		rc = parse_str(s, "deep.yaml", &docs, &err);
		ASSERT_EQ(rc, -EBADMSG, "block nesting");
		free(s);
		s = repeat("{\"a\":", 5000, "1", "}", 5000);
		rc = parse_str(s, "deep.json", &docs, &err);
		ASSERT_EQ(rc, -EBADMSG, "json nesting");
		free(s);
		s = repeat("[", 150, "", "]", 150);
		if (asprintf(&t, "{\"apiVersion\":\"v1\",\"x\":%s}", s) < 0)
			t = NULL;
		rc = parse_str(t, "deep.json", &docs, &err);
		ASSERT_EQ(rc, -EBADMSG, "json 151 levels");
		ASSERT_TRUE(strstr(err.reason, "nesting") != NULL, err.reason);
		free(s);
		free(t);
		/* an alias cannot smuggle depth in: 1 + 50 + 60 levels */
		s = repeat("[", 60, "", "]", 60);
		u = repeat("[", 50, "*a", "]", 50);
		if (asprintf(&t, "%sa: &a %s\nb: %s\n", OBJ_HDR, s, u) < 0)
			t = NULL;
		rc = parse_str(t, "deep.yaml", &docs, &err);
		ASSERT_EQ(rc, -EBADMSG, "alias depth");
		ASSERT_TRUE(strstr(err.reason, "nesting") != NULL, err.reason);
		free(s);
		free(t);
		free(u);
	}
	if (test__start_subtest("size_limit")) {
		size_t n = FG_MANIFEST_MAX_SIZE + 1;
		char path[PATH_MAX];
		FILE *f;

		s = malloc(n);
		if (!ASSERT_OK_PTR(s, "malloc"))
			return;
		memset(s, '#', n);
		rc = fg_manifest_parse(s, n, "big.yaml", &docs, &err);
		ASSERT_EQ(rc, -EFBIG, "too big");
		ASSERT_OK(fg_manifest_parse(s, n - 1, "big.yaml", &docs, &err), "just fits");
		json_decref(docs);
		snprintf(path, sizeof(path), "%s/big.yaml", test__tmpdir());
		f = fopen(path, "w");
		if (ASSERT_OK_PTR(f, "fopen")) {
			fwrite(s, 1, n, f);
			fclose(f);
			rc = fg_manifest_parse_file(path, &docs, &err);
			ASSERT_EQ(rc, -EFBIG, "file too big");
			unlink(path);
		}
		free(s);
		rc = fg_manifest_parse_file("/nonexistent/x.yaml", &docs, &err);
		ASSERT_EQ(rc, -ENOENT, "missing file");
		rc = fg_manifest_parse_file(test__tmpdir(), &docs, &err);
		ASSERT_EQ(rc, -EISDIR, "directory");
	}
}

/* splitmix64 */
static uint64_t rnd(uint64_t *st)
{
	uint64_t z = (*st += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static bool parse_survives(const char *buf, size_t len, const char *name)
{
	struct fg_manifest_error err;
	json_t *docs = (json_t *)1;
	int rc;

	rc = fg_manifest_parse(buf, len, name, &docs, &err);
	if (rc == 0) {
		bool ok = json_is_array(docs);

		json_decref(docs);
		return ok;
	}
	return rc < 0 && docs == NULL && err.reason[0];
}

static void test_garbage(void)
{
	static const char *const seeds[] = {
		"seed-ingress-weight.yaml", "seed-mseingressconfig.yaml",
		"web-demo-endpointslice.yaml",
	};
	static const char alphabet[] = "-:[]{}&*!|>'\"#\n ,?%@`\t~0x1.";
	char buf[8192], path[PATH_MAX + 64];
	uint64_t st = 42;
	int i, j, bad = 0, n;
	size_t len, k;
	FILE *f;

	/* random bytes */
	for (i = 0; i < 2000; i++) {
		len = rnd(&st) % 512;
		for (k = 0; k < len; k++)
			buf[k] = (char)rnd(&st);
		bad += !parse_survives(buf, len, i & 1 ? "g.json" : "g.yaml");
	}
	/* random YAML punctuation */
	for (i = 0; i < 5000; i++) {
		len = rnd(&st) % 256;
		for (k = 0; k < len; k++)
			buf[k] = alphabet[rnd(&st) % (sizeof(alphabet) - 1)];
		bad += !parse_survives(buf, len, "p.yaml");
	}
	/* every prefix and byte flips of real manifests */
	for (j = 0; j < (int)(sizeof(seeds) / sizeof(seeds[0])); j++) {
		snprintf(path, sizeof(path), "%s/%s", data_dir(), seeds[j]);
		f = fopen(path, "r");
		if (!ASSERT_OK_PTR(f, path))
			continue;
		n = (int)fread(buf, 1, sizeof(buf), f);
		fclose(f);
		for (i = 0; i <= n; i++)
			bad += !parse_survives(buf, i, "prefix.yaml");
		for (i = 0; i < 3000 && n > 0; i++) {
			char save;

			k = rnd(&st) % n;
			save = buf[k];
			buf[k] = (i & 1) ? alphabet[rnd(&st) % (sizeof(alphabet) - 1)]
					 : (char)rnd(&st);
			bad += !parse_survives(buf, n, "flip.yaml");
			buf[k] = save;
		}
	}
	ASSERT_EQ(bad, 0, "inconsistent results");
}

FG_TEST(manifest)
{
	test_seeds();
	test_cluster_objects();
	if (test__start_subtest("scalars"))
		test_scalars();
	test_documents();
	test_errors();
	test_limits();
	if (test__start_subtest("garbage"))
		test_garbage();
}
