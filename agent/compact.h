/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Member clusters' objects kept small. A fleet holds far more endpoints
 * than anything else (1,000,000 at N=10,000 Ingresses, C=10, E=10), and an
 * endpoint as a jansson tree (an object, its addresses array, a string, a
 * conditions object) costs about 1.5 KiB; the route computation reads
 * three things of it: whether it is ready, its addresses, its pod's name.
 *
 * fg_obj_compact() rewrites an EndpointSlice in place, as its source hands
 * it over: the metadata the store and the routes read (name, namespace,
 * the kubernetes.io/service-name label), its ports, and its ready
 * endpoints as one string of "ADDRESS\tPOD\n" lines under
 * FG_COMPACT_ENDPOINTS, about 20 bytes an endpoint. Endpoints that are
 * not ready are left out (nothing routes to them), so two slices that
 * route alike compare equal (json_equal) and a change the routes cannot
 * see is no change. Objects of other kinds are left as they are.
 */
#ifndef FG_COMPACT_H
#define FG_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#define FG_COMPACT_ENDPOINTS "fleetgate.io/readyEndpoints"

/* 0, or -ENOMEM (the object is then left whole, still valid). */
int fg_obj_compact(json_t *obj);

/* One ready address of a compacted EndpointSlice. Not NUL-terminated. */
struct fg_compact_ep {
	const char *addr;
	size_t addr_len;
	const char *pod; /* "" (pod_len 0) when the endpoint names none */
	size_t pod_len;
};

/* Walks a compacted slice: *pos starts as NULL; true while there is one
 * more. False at once for a slice that is not compacted. */
bool fg_compact_next(json_t *slice, const char **pos, struct fg_compact_ep *ep);
/* Is the slice compacted (read its endpoints with fg_compact_next)? */
bool fg_compact_is(json_t *slice);

/*
 * Short strings shared between objects. A fleet repeats the same few
 * values in every object (apiVersion, kind, namespace, port names, a
 * Service's name in each cluster and in its slices' labels): a jansson
 * string costs about 80 bytes, so each file of a Service and its slice
 * holds about 1 KiB of copies. fg_intern_tree() replaces every string
 * value of at most FG_INTERN_MAX bytes in a tree by one shared,
 * reference-counted copy. Strings are never modified in place
 * (json_string_set is not used on objects read from sources), so sharing
 * them changes nothing but the memory. Safe from several threads.
 */
#define FG_INTERN_MAX 64

struct fg_intern;

struct fg_intern *fg_intern_new(void);
void fg_intern_free(struct fg_intern *in);
/* 0 or -ENOMEM (the tree is then partly interned, still valid). */
int fg_intern_tree(struct fg_intern *in, json_t *v);

#endif
