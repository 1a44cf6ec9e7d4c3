// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Filling request records (request_record.h) for the proxy: the strings a
 * record keeps are copied out of the request head and the plan's route at
 * the start of the request, since neither lives until its end.
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "request_record.h"
#include "routes.h"

void fg_request_record_blank(struct fg_request_record *r, const char *client)
{
	memset(r, 0, sizeof(*r));
	r->client = client ? client : "";
	r->method = r->target = r->host = r->referer = r->user_agent = "";
	r->route_host = r->route_path = r->ingress = r->canary = r->service = "";
	r->version_minor = -1;
	r->cluster_idx = -1;
}

static const char *put(struct fg_request_strings *st, size_t *off, const char *s, size_t n)
{
	char *d = st->buf + *off;

	memcpy(d, s, n);
	d[n] = '\0';
	*off += n + 1;
	return d;
}

static size_t cap_len(size_t n, size_t max)
{
	return n < max ? n : max;
}

void fg_request_record_fill(struct fg_request_record *r, struct fg_request_strings *st,
			    const char *client, const struct fg_http_request *req, bool details,
			    const struct fg_route *route)
{
	const struct fg_http_header *ref = NULL, *ua = NULL;
	size_t need = sizeof(((struct fg_canary *)0)->ingress), off = 0, tlen = 0, rlen = 0,
	       ulen = 0;

	fg_request_record_blank(r, client);
	st->slot = 0;
	if (req)
		r->version_minor = req->version_minor;
	details = details && req;
	if (details) {
		ref = fg_http_find(req, "referer");
		ua = fg_http_find(req, "user-agent");
		tlen = cap_len(req->target_len, FG_REC_TARGET_MAX);
		rlen = ref ? cap_len(ref->value_len, FG_REC_FIELD_MAX) : 0;
		ulen = ua ? cap_len(ua->value_len, FG_REC_FIELD_MAX) : 0;
		need += req->method_len + tlen + req->host_len + rlen + ulen + 5;
	}
	if (route)
		need += strlen(route->host) + strlen(route->path) + strlen(route->ingress) + 3;
	if (need > st->cap) {
		char *d = realloc(st->buf, need);

		if (!d) {
			st->cap = 0;
			free(st->buf);
			st->buf = NULL;
			return;
		}
		st->buf = d;
		st->cap = need;
	}
	if (details) {
		r->method = put(st, &off, req->method, req->method_len);
		r->target = put(st, &off, req->target, tlen);
		r->host = put(st, &off, req->host_len ? req->host : "", req->host_len);
		r->referer = put(st, &off, ref ? ref->value : "", rlen);
		r->user_agent = put(st, &off, ua ? ua->value : "", ulen);
	}
	if (route) {
		r->routed = true;
		r->route_host = put(st, &off, route->host, strlen(route->host));
		r->route_path = put(st, &off, route->path, strlen(route->path));
		r->ingress = put(st, &off, route->ingress, strlen(route->ingress));
	}
	st->slot = off;
}

void fg_request_record_canary(struct fg_request_record *r, struct fg_request_strings *st,
			      const struct fg_route *route, const struct fg_target *t)
{
	size_t i, off = st->slot;

	r->canary = "";
	if (!route || !t || t == route->target || !st->buf)
		return;
	for (i = 0; i < route->n_canaries; i++) {
		const struct fg_canary *cn = &route->canaries[i];

		if (cn->target == t) {
			r->canary = put(st, &off, cn->ingress,
					strnlen(cn->ingress, sizeof(cn->ingress) - 1));
			return;
		}
	}
}

void fg_request_strings_free(struct fg_request_strings *st)
{
	free(st->buf);
	st->buf = NULL;
	st->cap = st->slot = 0;
}
