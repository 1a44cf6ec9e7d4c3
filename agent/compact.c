// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "compact.h"

#define SERVICE_NAME_LABEL "kubernetes.io/service-name"

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* A field and its terminating NUL. */
static int buf_field(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s) + 1);
}

/* A value the packed form can hold: no NUL inside, and none of the
 * endpoint lines' separators (DNS labels, IP literals and port names
 * never have them). */
static bool plain_str(json_t *v)
{
	const char *s = json_string_value(v);

	return s && strlen(s) == json_string_length(v) && !strpbrk(s, "\t\n");
}

/* The ready endpoints, one line per address. -EINVAL when one of them
 * cannot be written this way (the slice stays whole then). */
static int encode_endpoints(json_t *eps, struct buf *b)
{
	json_t *ep, *addr, *podv;
	size_t i, j;
	int err = 0;

	if (eps && !json_is_array(eps))
		return -EINVAL;
	json_array_foreach(eps, i, ep) {
		json_t *ready = json_object_get(json_object_get(ep, "conditions"), "ready");
		const char *pod = "";

		/* Unset means unknown: ready, as kube-proxy takes it. */
		if (json_is_false(ready))
			continue;
		podv = json_object_get(json_object_get(ep, "targetRef"), "name");
		if (json_is_string(podv)) {
			if (!plain_str(podv))
				return -EINVAL;
			pod = json_string_value(podv);
		}
		json_array_foreach(json_object_get(ep, "addresses"), j, addr) {
			const char *a = json_string_value(addr);

			if (!a)
				continue;
			if (!*a || !plain_str(addr))
				return -EINVAL;
			err = buf_add(b, a, strlen(a));
			if (!err)
				err = buf_add(b, "\t", 1);
			if (!err)
				err = buf_add(b, pod, strlen(pod));
			if (!err)
				err = buf_add(b, "\n", 1);
			if (err)
				return err;
		}
	}
	return 0;
}

/* A port list: its count, then four fields a port. Entries a reader
 * would skip anyway are left out: a slice's ports without a number. A
 * Service's must all be numbers (their absence means something to the
 * reader: no pack). -EINVAL: not packable. */
static int encode_ports(json_t *ports, bool service, struct buf *b)
{
	char num[32];
	json_t *p;
	size_t i, n = 0, count_at;
	int err;

	if (ports && !json_is_array(ports))
		return -EINVAL;
	/* The count is written once known: a placeholder wide enough. */
	count_at = b->len;
	err = buf_field(b, "0000000000");
	json_array_foreach(ports, i, p) {
		json_t *name = json_object_get(p, "name"), *port = json_object_get(p, "port");
		json_t *tp = json_object_get(p, "targetPort"), *proto = json_object_get(p, "protocol");

		if (err)
			return err;
		if (!json_is_object(p) || (name && !plain_str(name)) ||
		    (proto && !plain_str(proto)))
			return -EINVAL;
		if (!json_is_integer(port)) {
			if (service)
				return -EINVAL;
			continue;
		}
		err = buf_field(b, name ? json_string_value(name) : "");
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(port));
		err = err ? err : buf_field(b, num);
		if (!service || !tp) {
			err = err ? err : buf_field(b, "");
		} else if (json_is_integer(tp)) {
			snprintf(num, sizeof(num), "#%lld", (long long)json_integer_value(tp));
			err = err ? err : buf_field(b, num);
		} else if (plain_str(tp)) {
			err = err ? err : buf_add(b, "=", 1);
			err = err ? err : buf_field(b, json_string_value(tp));
		} else {
			return -EINVAL;
		}
		err = err ? err : buf_field(b, proto ? json_string_value(proto) : "");
		n++;
	}
	if (!err)
		snprintf(b->p + count_at, 11, "%010zu", n);
	return err;
}

json_t *fg_obj_pack(json_t *obj)
{
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	json_t *md = json_object_get(obj, "metadata"), *name, *owner = NULL, *ns, *out;
	bool slice;
	struct buf b = {};
	int err;

	if (!kind || fg_packed_is(obj))
		return NULL;
	slice = !strcmp(kind, "EndpointSlice");
	if (!slice && strcmp(kind, "Service"))
		return NULL;
	name = json_object_get(md, "name");
	ns = json_object_get(md, "namespace");
	if (!plain_str(name) || (ns && !json_is_null(ns) && !plain_str(ns)))
		return NULL;
	if (slice) {
		owner = json_object_get(json_object_get(md, "labels"), SERVICE_NAME_LABEL);
		if (!plain_str(owner))
			return NULL;
	}
	err = buf_field(&b, fg_obj_ns(obj));
	err = err ? err : buf_field(&b, json_string_value(name));
	err = err ? err : buf_field(&b, owner ? json_string_value(owner) : "");
	err = err ? err : encode_ports(slice ? json_object_get(obj, "ports")
					     : json_object_get(json_object_get(obj, "spec"), "ports"),
				       !slice, &b);
	if (!err && slice)
		err = encode_endpoints(json_object_get(obj, "endpoints"), &b);
	out = err ? NULL : json_object();
	if (out && (json_object_set_nocheck(out, "kind", json_object_get(obj, "kind")) ||
		    json_object_set_new_nocheck(out, FG_PACKED_KEY,
						json_stringn_nocheck(b.p, b.len)))) {
		json_decref(out);
		out = NULL;
	}
	free(b.p);
	return out;
}

/* The packed string, or NULL. */
static const char *packed(json_t *obj, const char **end)
{
	json_t *s = json_object_get(obj, FG_PACKED_KEY);

	if (!json_is_string(s))
		return NULL;
	*end = json_string_value(s) + json_string_length(s);
	return json_string_value(s);
}

/* The field after p (p inside the packed string). */
static const char *next_field(const char *p, const char *end)
{
	p += strlen(p) + 1;
	return p <= end ? p : end;
}

bool fg_packed_is(json_t *obj)
{
	const char *end;

	return packed(obj, &end) != NULL;
}

const char *fg_obj_ns(json_t *obj)
{
	const char *end, *p = packed(obj, &end), *ns;

	if (p)
		return p;
	ns = json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace"));
	return ns && *ns ? ns : "default";
}

const char *fg_obj_name(json_t *obj)
{
	const char *end, *p = packed(obj, &end);

	if (p)
		return next_field(p, end);
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
}

const char *fg_obj_slice_owner(json_t *obj)
{
	const char *end, *p = packed(obj, &end);

	if (p) {
		p = next_field(next_field(p, end), end);
		return *p ? p : NULL;
	}
	return json_string_value(json_object_get(
		json_object_get(json_object_get(obj, "metadata"), "labels"), SERVICE_NAME_LABEL));
}

/* Where the port list starts (its count field). */
static const char *ports_at(const char *p, const char *end)
{
	return next_field(next_field(next_field(p, end), end), end);
}

/* Where the endpoint lines start. */
static const char *endpoints_at(const char *p, const char *end)
{
	const char *q = ports_at(p, end);
	unsigned long n = strtoul(q, NULL, 10), i;

	q = next_field(q, end);
	for (i = 0; i < 4 * n && q < end; i++)
		q = next_field(q, end);
	return q;
}

bool fg_packed_ports(json_t *obj, struct fg_packed_ports *it)
{
	const char *end, *p = packed(obj, &end);

	memset(it, 0, sizeof(*it));
	if (!p)
		return false;
	it->pos = ports_at(p, end);
	it->end = end;
	it->left = strtoul(it->pos, NULL, 10);
	it->pos = next_field(it->pos, end);
	return true;
}

bool fg_packed_next_port(struct fg_packed_ports *it, struct fg_packed_port *port)
{
	const char *f[4];
	int i;

	if (!it->left || it->pos >= it->end)
		return false;
	for (i = 0; i < 4; i++) {
		if (it->pos >= it->end)
			return false;
		f[i] = it->pos;
		it->pos = next_field(it->pos, it->end);
	}
	it->left--;
	memset(port, 0, sizeof(*port));
	port->name = f[0];
	port->port = strtoll(f[1], NULL, 10);
	if (f[2][0] == '#') {
		port->has_target = true;
		port->target_num = strtoll(f[2] + 1, NULL, 10);
	} else if (f[2][0] == '=') {
		port->has_target = true;
		port->target_name = f[2] + 1;
	}
	port->proto = f[3][0] ? f[3] : NULL;
	return true;
}

bool fg_compact_is(json_t *slice)
{
	const char *k = json_string_value(json_object_get(slice, "kind"));

	return k && !strcmp(k, "EndpointSlice") && fg_packed_is(slice);
}

bool fg_compact_next(json_t *slice, const char **pos, struct fg_compact_ep *ep)
{
	const char *p, *end, *tab, *nl;

	if (!*pos) {
		if (!fg_compact_is(slice))
			return false;
		p = packed(slice, &end);
		*pos = endpoints_at(p, end);
	}
	p = *pos;
	end = p + strlen(p);
	if (p >= end)
		return false;
	nl = memchr(p, '\n', end - p);
	if (!nl)
		nl = end;
	tab = memchr(p, '\t', nl - p);
	if (!tab)
		tab = nl;
	ep->addr = p;
	ep->addr_len = tab - p;
	ep->pod = tab < nl ? tab + 1 : nl;
	ep->pod_len = nl - ep->pod;
	*pos = nl < end ? nl + 1 : end;
	return true;
}

/* ---------- shared short strings ---------- */

struct fg_intern {
	pthread_mutex_t lock;
	json_t *table;     /* value -> the shared string */
	size_t prune_at;   /* table size that triggers the next prune */
};

struct fg_intern *fg_intern_new(void)
{
	struct fg_intern *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	in->table = json_object();
	if (!in->table) {
		free(in);
		return NULL;
	}
	pthread_mutex_init(&in->lock, NULL);
	in->prune_at = 65536;
	return in;
}

void fg_intern_free(struct fg_intern *in)
{
	if (!in)
		return;
	json_decref(in->table);
	pthread_mutex_destroy(&in->lock);
	free(in);
}

/* Strings only the table holds go, so values of objects long gone do not
 * pile up; the table may then double before the next prune. */
static void intern_prune(struct fg_intern *in)
{
	const char *k;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(in->table, tmp, k, v)
		if (v->refcount == 1)
			json_object_del(in->table, k);
	in->prune_at = 2 * json_object_size(in->table);
	if (in->prune_at < 65536)
		in->prune_at = 65536;
}

/* The shared copy of s (a new reference), or NULL: keep s. */
static json_t *intern_one(struct fg_intern *in, json_t *s)
{
	const char *val = json_string_value(s);
	size_t len = json_string_length(s);
	json_t *shared;

	/* The table's keys are C strings: one with a NUL inside stays. */
	if (len > FG_INTERN_MAX || strlen(val) != len)
		return NULL;
	pthread_mutex_lock(&in->lock);
	shared = json_object_get(in->table, val);
	if (!shared) {
		if (json_object_size(in->table) >= in->prune_at)
			intern_prune(in);
		if (!json_object_set_nocheck(in->table, val, s))
			shared = s;
	}
	if (shared)
		json_incref(shared);
	pthread_mutex_unlock(&in->lock);
	return shared;
}

int fg_intern_tree(struct fg_intern *in, json_t *v)
{
	const char *k;
	json_t *e, *shared;
	size_t i;
	int err = 0;

	if (json_is_object(v)) {
		json_object_foreach(v, k, e) {
			if (!json_is_string(e)) {
				err = fg_intern_tree(in, e) ? -ENOMEM : err;
				continue;
			}
			shared = intern_one(in, e);
			/* Replacing a key's value keeps the walk's place. */
			if (shared && shared != e && json_object_set_new_nocheck(v, k, shared))
				err = -ENOMEM;
			else if (shared == e)
				json_decref(shared);
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e) {
			if (!json_is_string(e)) {
				err = fg_intern_tree(in, e) ? -ENOMEM : err;
				continue;
			}
			shared = intern_one(in, e);
			if (shared && shared != e && json_array_set_new(v, i, shared))
				err = -ENOMEM;
			else if (shared == e)
				json_decref(shared);
		}
	}
	return err;
}
