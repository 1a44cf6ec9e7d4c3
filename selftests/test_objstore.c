// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The object store (agent/objstore.h): keys with one object and with
 * several (the first added stays in force until it goes), EndpointSlices
 * by Service, packed and whole objects alike, and the snapshot arrays.
 */
#include <string.h>
#include <jansson.h>

#include "compact.h"
#include "objstore.h"
#include "test_progs.h"

#define CL "c7fb82a1b2c3d4e5f60718293a4b5c6d7"

static json_t *svc(const char *name, int port, bool packed)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:[{s:s, s:i}]}}", "apiVersion", "v1",
			      "kind", "Service", "metadata", "name", name, "namespace", "shop",
			      "spec", "ports", "name", "http", "port", port), *p;

	if (!packed || !o)
		return o;
	p = fg_obj_pack(o);
	json_decref(o);
	return p;
}

static json_t *slice(const char *name, const char *owner, bool packed)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:[{s:s, s:i}], s:[{s:[s]}]}",
			      "apiVersion", "discovery.k8s.io/v1", "kind", "EndpointSlice",
			      "metadata", "name", name, "namespace", "shop", "labels",
			      "kubernetes.io/service-name", owner, "ports", "name", "http", "port",
			      8080, "endpoints", "addresses", "10.0.0.1"), *p;

	if (!packed || !o)
		return o;
	p = fg_obj_pack(o);
	json_decref(o);
	return p;
}

static json_t *first(const struct fg_cindex *ci, const char *key)
{
	return ci ? fg_index_first(json_object_get(ci->by_key, key)) : NULL;
}

static void run(bool packed)
{
	json_t *a = svc("web", 80, packed), *b = svc("web", 81, packed);
	json_t *s1 = slice("web-1", "web", packed), *s2 = slice("web-2", "web", packed);
	struct fg_objstore *s = NULL;
	const struct fg_cindex *ci;
	struct fg_snapshot snap = {};
	struct fg_changes ch;
	json_t *list;

	fg_changes_init(&ch);
	if (!ASSERT_OK_PTR(a, "a") || !ASSERT_OK_PTR(b, "b") || !ASSERT_OK_PTR(s1, "s1") ||
	    !ASSERT_OK_PTR(s2, "s2") || !ASSERT_OK(fg_objstore_new(&s), "store"))
		goto out;
	ASSERT_OK(fg_objstore_change(s, CL, NULL, a, &ch), "add a");
	ASSERT_OK(fg_objstore_change(s, CL, NULL, b, &ch), "add b, the same key");
	ASSERT_OK(fg_objstore_change(s, CL, NULL, s1, &ch), "add slice 1");
	ASSERT_OK(fg_objstore_change(s, CL, NULL, s2, &ch), "add slice 2");
	ASSERT_TRUE(ch.full, "a Service: everything recomputed");
	ASSERT_TRUE(json_object_get(ch.services, "shop\x1fweb") != NULL, "web's endpoints changed");
	ASSERT_EQ(fg_objstore_count(s), 4, "four objects");
	ci = fg_objstore_cluster(s, CL);
	if (!ASSERT_OK_PTR(ci, "the cluster's index"))
		goto out;
	ASSERT_TRUE(first(ci, "Service\x1fshop\x1fweb") == a, "the first added is in force");
	list = json_object_get(ci->slices, "shop\x1fweb");
	ASSERT_EQ(fg_index_count(list), 2, "two slices");
	ASSERT_TRUE(fg_index_at(list, 0) == s1 && fg_index_at(list, 1) == s2, "in order");
	ASSERT_TRUE(fg_index_at(list, 2) == NULL, "no third");
	ASSERT_OK(fg_objstore_snapshot(s, &snap), "snapshot");
	ASSERT_EQ(json_array_size(json_object_get(snap.clusters, CL)), 4, "all four in the array");

	ASSERT_OK(fg_objstore_change(s, CL, a, NULL, &ch), "remove a");
	ASSERT_TRUE(first(ci, "Service\x1fshop\x1fweb") == b, "then b");
	ASSERT_FALSE(json_is_array(json_object_get(ci->by_key, "Service\x1fshop\x1fweb")),
		     "one object again: held as itself");
	ASSERT_OK(fg_objstore_change(s, CL, s1, NULL, &ch), "remove slice 1");
	list = json_object_get(ci->slices, "shop\x1fweb");
	ASSERT_TRUE(fg_index_count(list) == 1 && fg_index_first(list) == s2, "slice 2 left");
	ASSERT_OK(fg_objstore_change(s, CL, s1, NULL, &ch), "remove slice 1 again");
	ASSERT_EQ(fg_objstore_count(s), 2, "removing what is gone changes nothing");
	ASSERT_OK(fg_objstore_snapshot(s, &snap), "snapshot");
	ASSERT_EQ(json_array_size(json_object_get(snap.clusters, CL)), 2, "two in the array");
	ASSERT_OK(fg_objstore_change(s, CL, b, NULL, &ch), "remove b");
	ASSERT_OK(fg_objstore_change(s, CL, s2, NULL, &ch), "remove slice 2");
	ASSERT_TRUE(fg_objstore_cluster(s, CL) == NULL, "an empty cluster goes");

	/* The fleet's objects: the same rule. */
	ASSERT_OK(fg_objstore_change(s, NULL, NULL, a, &ch), "fleet a");
	ASSERT_OK(fg_objstore_change(s, NULL, NULL, b, &ch), "fleet b");
	ASSERT_TRUE(fg_objstore_fleet_find(s, "Service", "shop", "web") == a, "fleet: a first");
	ASSERT_OK(fg_objstore_change(s, NULL, a, NULL, &ch), "fleet: remove a");
	ASSERT_TRUE(fg_objstore_fleet_find(s, "Service", "shop", "web") == b, "fleet: then b");
	ASSERT_OK(fg_objstore_snapshot(s, &snap), "snapshot");
	ASSERT_EQ(json_array_size(snap.fleet), 1, "one fleet object");
out:
	fg_objstore_free(s);
	fg_changes_fini(&ch);
	json_decref(a);
	json_decref(b);
	json_decref(s1);
	json_decref(s2);
}

FG_TEST(objstore)
{
	if (test__start_subtest("duplicates_whole"))
		run(false);
	if (test__start_subtest("duplicates_packed"))
		run(true);
}
