// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Request records (opts.on_request, request_record.h): one per request.
 */
#include "proxy_int.h"

/* The client's bytes consumed so far; bytes queued for it so far. */
__u64 px_rec_consumed(const struct conn *c)
{
	return c->rx - buf_used(&c->in);
}

__u64 px_rec_queued(const struct conn *c)
{
	return c->tx + buf_used(&c->out);
}

/* A request begins: req (NULL when none could be parsed) and its route
 * (NULL: none) are copied, since the plan may change before it ends. */
void px_rec_begin(struct conn *c, const struct fg_http_request *req,
		      const struct fg_route *route)
{
	if (!c->p->opts.on_request)
		return;
	c->rec_open = true;
	fg_request_record_fill(&c->rec, &c->rec_store, c->ip, req, c->p->opts.record_details,
			       route);
	c->rec.start_ns = req || !c->head_start ? now_ns() : c->head_start * 1000000ULL;
}

/* The target chosen: a canary's, or the route's own. */
void px_rec_target(struct conn *c, const struct fg_route *route, const struct fg_target *t)
{
	if (!c->rec_open)
		return;
	c->rec.service = c->service;
	fg_request_record_canary(&c->rec, &c->rec_store, route, t);
}

/* A try on an upstream begins. */
void px_rec_upstream(struct conn *c, const void *addr, int family, __be16 port, __u32 cidx)
{
	struct fg_request_record *r = &c->rec;

	if (!c->rec_open)
		return;
	r->cluster_idx = cidx < FG_MAX_CLUSTERS ? (int)cidx : -1;
	/* The worker's copy lives as long as the worker. */
	r->cluster = px_cluster_name(c->p, cidx);
	r->up_family = family;
	memcpy(&r->up_addr, addr, sizeof(r->up_addr));
	r->up_port = ntohs(port);
	r->attempts++;
	r->up_start_ns = now_ns();
	r->up_connect_ns = r->up_header_ns = 0;
}

/* The final response head went to `out` (hdr_mark: queued before it). */
void px_rec_response(struct conn *c, int status)
{
	if (!c->rec_open)
		return;
	c->rec.status = status;
	c->rec.up_header_ns = now_ns();
	c->rec.header_bytes_out = px_rec_queued(c) - c->hdr_mark;
}

/* The request ends: the record goes to opts.on_request. head_bytes: of
 * the response, when the proxy made it (< 0: as recorded). */
void px_rec_end(struct conn *c, int status, enum fg_request_end end, long head_bytes)
{
	struct px_worker *p = c->p;
	struct fg_request_record *r = &c->rec;

	if (!p->opts.on_request)
		return;
	if (!c->rec_open)
		px_rec_begin(c, NULL, NULL); /* its head never parsed */
	r->status = status;
	r->end = end;
	r->end_ns = now_ns();
	if (head_bytes >= 0)
		r->header_bytes_out = head_bytes;
	r->bytes_in = px_rec_consumed(c) - c->in_mark;
	r->bytes_out = px_rec_queued(c) - c->out_mark;
	c->in_mark = px_rec_consumed(c);
	c->out_mark = px_rec_queued(c);
	c->rec_open = false;
	r->worker = p->id;
	if (!r->cluster)
		r->cluster = "";
	p->opts.on_request(r, p->opts.on_request_ctx);
}

/* A connection refused at accept (503 sent, sent bytes of it). */
void px_rec_refused(struct px_worker *p, const struct sockaddr_storage *ss, long sent)
{
	struct fg_request_record r;
	char ip[INET6_ADDRSTRLEN];

	if (!p->opts.on_request)
		return;
	px_client_ip(ss, ip, sizeof(ip));
	fg_request_record_blank(&r, ip);
	r.status = 503;
	r.end = FG_REQ_REFUSED;
	r.bytes_out = sent > 0 ? sent : 0;
	r.start_ns = r.end_ns = now_ns();
	r.worker = p->id;
	r.cluster = "";
	p->opts.on_request(&r, p->opts.on_request_ctx);
}
