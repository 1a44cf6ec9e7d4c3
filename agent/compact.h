/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Member clusters' objects kept small. A fleet holds far more of them than
 * anything else (at N=10,000 Ingresses, C=10, E=10: 100,000 Services and
 * as many EndpointSlices, 1,000,000 endpoints), and as jansson trees a
 * Service and its slice cost about 4.5 KiB even with the endpoints
 * compacted (every object a hash table, every key a pair). The route
 * computation reads few things of them: a Service's namespace, name and
 * ports; a slice's namespace, name, owning Service, ports and ready
 * endpoints (address and pod).
 *
 * fg_obj_pack() makes a packed copy of a cluster's Service or
 * EndpointSlice: an object of two keys, "kind" and FG_PACKED_KEY, a string
 * holding just that, NUL-separated fields:
 *
 *   namespace \0 name \0 owner \0 ports \0 { port fields } endpoints
 *
 * where ports is their count in decimal, each port is four fields (name,
 * port number, target port as "#NUMBER" or "=NAME" or "" when unset,
 * protocol or "" when unset; a slice's target is ""), and the endpoints
 * (slices; "" for a Service) are "ADDRESS\tPOD\n" lines, ready ones only:
 * nothing routes to the others, so two slices that route alike compare
 * equal (json_equal) and a change the routes cannot see is no change.
 * About 1.3 KiB a Service and slice instead of 4.5.
 *
 * Objects that hold anything the format cannot say (a value with a
 * separator in it, a port that is not a number, a slice without its
 * kubernetes.io/service-name label) are not packed and stay whole: every
 * reader takes both forms, through the accessors below.
 */
#ifndef FG_COMPACT_H
#define FG_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#define FG_PACKED_KEY "fleetgate.io/packed"

/* The packed copy of obj (a new reference), or NULL when obj stays as it
 * is: another kind, something the format cannot say, or no memory (the
 * whole object is as valid). */
json_t *fg_obj_pack(json_t *obj);
/* Is obj packed? */
bool fg_packed_is(json_t *obj);

/* An object's namespace ("default" when unset or empty), name (NULL when
 * unset) and, for an EndpointSlice, the Service that owns it (the
 * kubernetes.io/service-name label; NULL when unset): whole or packed. */
const char *fg_obj_ns(json_t *obj);
const char *fg_obj_name(json_t *obj);
const char *fg_obj_slice_owner(json_t *obj);

/* One port of a packed object. Strings are NUL-terminated. */
struct fg_packed_port {
	const char *name;        /* "" when unset */
	long long port;
	bool has_target;         /* a Service's targetPort is set */
	long long target_num;    /* ... as a number */
	const char *target_name; /* ... or as a name (NULL: a number) */
	const char *proto;       /* NULL when unset */
};

/* A walk over a packed object's ports. */
struct fg_packed_ports {
	const char *pos, *end;
	unsigned long left;
};

/* Starts a walk over obj's ports; false (and nothing to walk) when obj is
 * not packed. */
bool fg_packed_ports(json_t *obj, struct fg_packed_ports *it);
/* The next port; false when there is none left. */
bool fg_packed_next_port(struct fg_packed_ports *it, struct fg_packed_port *p);

/* One ready address of a packed EndpointSlice. Not NUL-terminated. */
struct fg_compact_ep {
	const char *addr;
	size_t addr_len;
	const char *pod; /* "" (pod_len 0) when the endpoint names none */
	size_t pod_len;
};

/* Walks a packed slice's ready endpoints: *pos starts as NULL; true while
 * there is one more. False at once for a slice that is not packed. */
bool fg_compact_next(json_t *slice, const char **pos, struct fg_compact_ep *ep);
/* Is the slice packed (read its endpoints with fg_compact_next)? */
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
