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

/* A field that cannot appear in an address or a pod name (DNS labels,
 * IP literals) separates them. */
static bool plain(const char *s)
{
	return !strpbrk(s, "\t\n");
}

/* The ready endpoints, one line per address. -EINVAL when one of them
 * cannot be written this way (kept whole then). */
static int encode_endpoints(json_t *eps, struct buf *b)
{
	json_t *ep, *addr;
	size_t i, j;
	int err = 0;

	json_array_foreach(eps, i, ep) {
		json_t *ready = json_object_get(json_object_get(ep, "conditions"), "ready");
		const char *pod = json_string_value(
			json_object_get(json_object_get(ep, "targetRef"), "name"));

		/* Unset means unknown: ready, as kube-proxy takes it. */
		if (json_is_false(ready))
			continue;
		if (!pod)
			pod = "";
		if (!plain(pod))
			return -EINVAL;
		json_array_foreach(json_object_get(ep, "addresses"), j, addr) {
			const char *a = json_string_value(addr);

			if (!a)
				continue;
			if (!*a || !plain(a))
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

/* Keeps only the keys named (NULL-terminated). */
static void keep_only(json_t *obj, const char *const *keep)
{
	const char *k;
	json_t *v;
	void *tmp;
	size_t i;

	json_object_foreach_safe(obj, tmp, k, v) {
		for (i = 0; keep[i]; i++)
			if (!strcmp(k, keep[i]))
				break;
		if (!keep[i])
			json_object_del(obj, k);
	}
}

static int compact_slice(json_t *obj)
{
	static const char *const top[] = { "apiVersion", "kind", "metadata", "addressType",
					   "ports", FG_COMPACT_ENDPOINTS, NULL };
	static const char *const meta[] = { "name", "namespace", "labels", NULL };
	static const char *const labels[] = { SERVICE_NAME_LABEL, NULL };
	json_t *md = json_object_get(obj, "metadata");
	struct buf b = {};
	json_t *s;
	int err;

	err = encode_endpoints(json_object_get(obj, "endpoints"), &b);
	if (err) {
		free(b.p);
		return err == -EINVAL ? 0 : err;
	}
	s = json_stringn_nocheck(b.p ? b.p : "", b.len);
	free(b.p);
	if (!s || json_object_set_new_nocheck(obj, FG_COMPACT_ENDPOINTS, s))
		return -ENOMEM;
	keep_only(obj, top);
	if (json_is_object(md)) {
		keep_only(md, meta);
		if (json_is_object(json_object_get(md, "labels")))
			keep_only(json_object_get(md, "labels"), labels);
	}
	return 0;
}

int fg_obj_compact(json_t *obj)
{
	const char *kind = json_string_value(json_object_get(obj, "kind"));

	if (!kind || strcmp(kind, "EndpointSlice") || fg_compact_is(obj))
		return 0;
	return compact_slice(obj);
}

bool fg_compact_is(json_t *slice)
{
	return json_is_string(json_object_get(slice, FG_COMPACT_ENDPOINTS));
}

bool fg_compact_next(json_t *slice, const char **pos, struct fg_compact_ep *ep)
{
	json_t *s = json_object_get(slice, FG_COMPACT_ENDPOINTS);
	const char *p, *end, *tab, *nl;

	if (!json_is_string(s))
		return false;
	p = *pos ? *pos : json_string_value(s);
	end = json_string_value(s) + json_string_length(s);
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
