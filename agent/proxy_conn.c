// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A client connection's state machine: request heads, the exchange with
 * an upstream, error answers, retries, keep-alive and closing.
 */
#include <sys/ioctl.h>

#include "proxy_int.h"
#include "fleetgate_hash.h"

const char *px_status_text(int status)
{
	switch (status) {
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

void px_count_status(struct px_worker *p, int status)
{
	int cls = status / 100;

	if (cls >= 1 && cls <= 5)
		STAT_INC(p, responses[cls]);
}

void px_conn_close(struct conn *c)
{
	struct px_worker *p = c->p;

	if (c->dead)
		return;
	if (c->parked) {
		c->parked = false;
		p->n_parked--;
	}
	if (c->rec_open)
		px_rec_end(c, c->resp_head_sent ? c->rec.status : 499, FG_REQ_ABORTED, -1);
	if (c->up) {
		px_up_close(c->up);
		c->up = NULL;
	}
	c->win = c->sm_barrier = false;
	if (c->sk_cookie)
		fg_sockmap_forget(p->sm, c->sk_cookie);
	close(c->fd);
	c->fd = -1;
	c->dead = true;
	px_client_release(p, c->slot);
	c->slot = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = p->dead_conns;
	p->dead_conns = c;
	CNT_ADD(p, n_conns, -1);
}

void px_conn_free(struct conn *c)
{
	px_tls_free(c);
	SSL_CTX_free(c->up_ctx);
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->upo);
	buf_free(&c->rin);
	px_pipe_close(c->p, &c->rp);
	px_pipe_close(c->p, &c->qp);
	fg_request_strings_free(&c->rec_store);
	fg_route_opts_put(c->ropts);
	free(c);
}

void px_reap(struct px_worker *p)
{
	while (p->dead_conns) {
		struct conn *c = p->dead_conns;

		p->dead_conns = c->next;
		px_conn_free(c);
	}
	while (p->dead_ups) {
		struct upstream *u = p->dead_ups;

		p->dead_ups = u->next;
		free(u);
	}
}

void px_drop_upstream(struct conn *c)
{
	if (c->win)
		px_sm_window_end(c, true);
	if (c->up) {
		px_up_close(c->up);
		c->up = NULL;
	}
	c->rin.off = c->rin.len = 0;
	c->up_eof = false;
	c->up_errno = 0;
}

void px_start_closing(struct conn *c)
{
	px_drop_upstream(c);
	c->unread_input = buf_used(&c->in) || !c->rq_done;
	c->close_after = true;
	c->state = C_CLOSING;
	c->in.off = c->in.len = 0;
}

/*
 * The answer is out and the connection ends. As nginx's "lingering_close
 * on": when nothing more can come from the client (its request was read
 * whole, nothing else is buffered or queued in the socket), close at
 * once: the FIN follows the answer. Otherwise shut the sending side and
 * read what comes until the client closes (or LINGER_MS): closing with
 * unread bytes would send a reset that may destroy the answer before the
 * client read it. A TLS session lingers always (its close_notify).
 */
static void close_or_linger(struct conn *c)
{
	int queued = 0;

	if (!c->unread_input && !c->tls.ssl &&
	    (c->eof || (ioctl(c->fd, FIONREAD, &queued) == 0 && queued == 0))) {
		px_conn_close(c);
		return;
	}
	px_start_linger(c);
	px_linger_read(c);
}

/* A short text/plain answer, with more header fields (each ending in
 * CRLF; NULL: none). With close, the connection ends after it. */
void px_respond(struct conn *c, int status, const char *fields, const char *text, bool close)
{
	char head[512];
	size_t blen = strlen(text) + 1, flen = fields ? strlen(fields) : 0;
	int n;

	px_count_status(c->p, status);
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n",
		     status, px_status_text(status), blen);
	if (buf_append(&c->out, head, n) || (flen && buf_append(&c->out, fields, flen)) ||
	    buf_append(&c->out, close ? "Connection: close\r\n\r\n" : "\r\n", close ? 21 : 2) ||
	    (!c->is_head_req && (buf_append(&c->out, text, blen - 1) ||
				 buf_append(&c->out, "\n", 1))))
		close = true; /* cannot even say it: just close */
	px_rec_end(c, status, FG_REQ_ERROR, n + (long)flen + (close ? 21 : 2));
	pr_debug("proxy: %s: %d %s\n", c->ip, status, text);
	if (close) {
		px_start_closing(c);
		return;
	}
	px_drop_upstream(c);
	c->state = C_HEAD;
	c->head_start = 0;
	c->served++;
}

void px_respond_error(struct conn *c, int status, const char *text, bool close)
{
	px_respond(c, status, NULL, text, close);
}

/* The upstream failed after the response started: the client connection
 * just ends (what arrived is flushed first). */
void px_abort_mid_response(struct conn *c, const char *why)
{
	pr_debug("proxy: %s: upstream failed mid-response (%s): closing\n", c->ip, why);
	if (c->rec_open)
		px_rec_end(c, c->rec.status ? c->rec.status : 502, FG_REQ_ABORTED, -1);
	px_start_closing(c);
}

void px_bad_gateway(struct conn *c, int status, const char *why)
{
	if (c->resp_head_sent) {
		px_abort_mid_response(c, why);
		return;
	}
	px_respond_error(c, status, why, true);
}

/* Drops the forwarding fields fg_http_rewrite_head added (xff off). */
size_t px_strip_forwarded(char *h, size_t len)
{
	static const char *const names[] = { "x-forwarded-for:", "x-forwarded-proto:",
					     "x-real-ip:" };
	size_t pos = 0, i;

	while (pos < len) {
		char *eol = memchr(h + pos, '\n', len - pos);
		size_t llen = eol ? (size_t)(eol - (h + pos)) + 1 : len - pos;
		bool drop = false;

		for (i = 0; i < 3; i++)
			if (llen > strlen(names[i]) &&
			    !strncasecmp(h + pos, names[i], strlen(names[i])))
				drop = true;
		if (drop) {
			memmove(h + pos, h + pos + llen, len - pos - llen);
			len -= llen;
		} else {
			pos += llen;
		}
	}
	return len;
}

void px_reset_exchange(struct conn *c)
{
	c->rq_done = false;
	c->rq_abandoned = false;
	c->upo_sent = 0;
	c->upo.off = c->upo.len = 0;
	c->replayable = true;
	c->req_sent = false;
	c->attempts = 0;
	c->fresh_retry = false;
	c->up_eof = false;
	c->up_errno = 0;
	c->resp_bytes = false;
	c->resp_head_sent = false;
	c->resp_ka = false;
	c->rs = R_HEAD;
	c->rin.off = c->rin.len = 0;
	c->upgrade[0] = '\0';
	SSL_CTX_free(c->up_ctx);
	c->up_ctx = NULL;
}

/* RFC 9110 §9.2.2: the methods a proxy may send again. */
bool px_method_idempotent(const char *m, size_t n)
{
	static const char *const idem[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE" };
	size_t i;

	for (i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
		if (strlen(idem[i]) == n && !memcmp(m, idem[i], n))
			return true;
	return false;
}

/*
 * No endpoint for a new request while a mark-down this worker queued
 * waits for the control thread: the worker already stopped using the
 * endpoint, but the rings that send the target's traffic to a failover
 * cluster come with the control thread's rebuild. The request waits for
 * it (as a retry does) rather than get a 503 the single-threaded gateway
 * never gave. Once per request: routed again on resume, it gets what the
 * rings then say.
 */
static bool park_head(struct conn *c)
{
	struct px_worker *p = c->p;

	if (c->head_again || !px_markdown_pending(p))
		return false;
	c->parked = c->park_head = true;
	c->park_gen = p->md_gen;
	c->park_until = now_ms() + PARK_MS;
	c->head_start_ns = c->rec_open ? c->rec.start_ns : 0;
	p->n_parked++;
	return true;
}

/* A complete head of hlen bytes is at the start of c->in (parsed into
 * p->req): route it and start the exchange. */
void px_start_request(struct conn *c, size_t hlen)
{
	struct px_worker *p = c->p;
	const struct fg_http_request *req = &p->req;
	const struct fg_route *route;
	const struct fg_target *t;
	bool has_body;
	char msg[FG_HOST_LEN + 600];
	size_t plen;
	__u32 bid;
	int sid, n;

	px_reset_exchange(c);
	c->is_head_req = req->method_len == 4 && !memcmp(req->method, "HEAD", 4);
	c->idempotent = px_method_idempotent(req->method, req->method_len);
	c->version_minor = req->version_minor;
	c->req_ka = req->keep_alive;
	/* Draining: each connection ends after its answer. */
	c->close_after = !req->keep_alive || c->eof || LOAD(c->p->srv->draining);
	has_body = !(req->body == FG_BODY_NONE ||
		     (req->body == FG_BODY_LENGTH && !req->content_length));

	plen = req->path_len < p->scratch_len ? req->path_len : p->scratch_len - 1;
	memcpy(p->scratch, req->path, plen);
	p->scratch[plen] = '\0';
	route = px_find_route(px_routes_current(p), req->host_len ? req->host : "", p->scratch);
	px_rec_begin(c, req, route);
	if (c->head_again) {
		c->head_again = false;
		if (c->rec_open)
			c->rec.start_ns = c->head_start_ns;
	}
	if (!route) {
		snprintf(msg, sizeof(msg), "no route for %s %.512s",
			 req->host_len ? req->host : "(no host)", p->scratch);
		buf_consume(&c->in, hlen);
		px_respond_error(c, 404, msg, has_body || c->close_after);
		return;
	}
	c->policy = route->policy;
	if (px_rules_request(c, route, hlen, has_body))
		return; /* answered by an annotation (413, redirect, 403) */
	if (px_tls_upstream_take(c, p->routes, route, req)) {
		buf_consume(&c->in, hlen);
		return; /* 502: no TLS context for its endpoints */
	}
	t = px_choose_target(p, route, req);
	snprintf(c->service, sizeof(c->service), "%s/%s%s%s", t->ns, t->service,
		 t->subset[0] ? " subset " : "", t->subset);
	px_rec_target(c, route, t);
	sid = t->service_id;
	if (sid <= 0 || px_rules_pick(c, req, sid, &bid)) {
		if (sid > 0 && park_head(c))
			return;
		snprintf(msg, sizeof(msg), "no healthy cluster for %s", c->service);
		buf_consume(&c->in, hlen);
		px_respond_error(c, 503, msg, has_body || c->close_after);
		return;
	}
	c->service_id = sid;

	/* The head for the upstream; the body follows it in upo. */
	c->upo.max = 2 * p->opts.max_head + 4096 + REPLAY_MAX;
	if (buf_room(&c->upo, hlen + 1024) < hlen + 1024) {
		px_respond_error(c, 500, "out of memory", true);
		return;
	}
	n = fg_http_rewrite_head(req, c->ip, c->tls.ssl ? "https" : "http", c->upo.d, c->upo.cap);
	if (n == -ENOSPC && buf_room(&c->upo, 2 * hlen + 4096) >= 2 * hlen + 4096)
		n = fg_http_rewrite_head(req, c->ip, c->tls.ssl ? "https" : "http", c->upo.d,
					 c->upo.cap);
	if (n < 0) {
		px_respond_error(c, n == -ENOSPC ? 431 : 400,
			      n == -ENOSPC ? "request head too large" : "cannot forward this request",
			      true);
		return;
	}
	if (!p->opts.xff)
		n = px_strip_forwarded(c->upo.d, n);
	n = px_rules_upstream_head(c, route, req, n);
	if (n < 0) {
		px_respond_error(c, n == -ENOSPC ? 431 : 500, "cannot rewrite this request", true);
		return;
	}
	if (px_upgrade_request(c, req, has_body)) {
		size_t len = n;

		if (px_upgrade_head(c, &len)) {
			px_respond_error(c, 431, "request head too large", true);
			return;
		}
		n = len;
	}
	c->upo.off = 0;
	c->upo.len = n;
	c->upo_limit = n + REPLAY_MAX;
	fg_http_framer_init(&c->rqf, req);
	fg_http_framer_set_filter(&c->rqf, FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED);
	c->rq_done = fg_http_framer_done(&c->rqf);
	buf_consume(&c->in, hlen); /* req points into in: not used past here */
	c->state = C_PROXY;
	c->attempts = 1;
	px_dispatch(c, bid, true);
}

/* The try's request bytes reached the upstream: may they go to another? */
bool px_may_resend(const struct conn *c)
{
	return !c->req_sent || c->idempotent || (c->policy.next_upstream & FG_NU_NON_IDEMPOTENT);
}

/* The route's proxy-next-upstream word for a failure. */
__u32 px_retry_flag(enum fail_kind kind)
{
	switch (kind) {
	case F_CONNECT_TIMEOUT:
	case F_HEAD_TIMEOUT:
		return FG_NU_TIMEOUT;
	case F_INVALID_HEADER:
		return FG_NU_INVALID_HEADER;
	case F_STATUS:
		return 0; /* decided by the caller, from the status */
	default:
		return FG_NU_ERROR;
	}
}

/* The client has to send more of its body and the upstream has all we
 * had: whatever the upstream did next, the client was the slow side. */
bool px_waiting_on_client(const struct conn *c)
{
	return !c->rq_done && !c->rq_abandoned && c->upo_sent == c->upo.len && !c->qp.len &&
	       !buf_used(&c->in);
}

void px_final_error(struct conn *c, enum fail_kind kind, const char *why)
{
	char msg[320];

	switch (kind) {
	case F_LOCAL:
		snprintf(msg, sizeof(msg), "gateway out of local resources (%s)", why);
		px_bad_gateway(c, 503, msg);
		break;
	case F_HEAD_TIMEOUT:
		px_bad_gateway(c, 504, why);
		break;
	default:
		px_bad_gateway(c, 502, why);
		break;
	}
}

/*
 * After a failed try: the next one on another backend (another cluster
 * when there is one) when the route's policy and the request allow it, or
 * the error response. Only the backend's own failures mark it down: a
 * connect refused or timed out, a close or reset before any response byte
 * once the request was complete. F_STATUS and F_INVALID_HEADER come with
 * a response head in rin that is dropped here.
 */
static bool retry_pick(struct conn *c, const char *why);

void px_upstream_failed(struct conn *c, enum fail_kind kind, int err, const char *what)
{
	struct px_worker *p = c->p;
	struct upstream *u = c->up;
	char why[256], kbuf[64];
	__u32 bid;
	int cidx;
	bool reused, own_fault, retry;

	if (!u) {
		px_final_error(c, kind, what);
		return;
	}
	bid = u->backend_id;
	cidx = (int)u->cluster_idx;
	reused = u->reused;
	snprintf(why, sizeof(why), "upstream %s %s%s%s", px_key_str(&u->key, kbuf, sizeof(kbuf)),
		 what, err ? ": " : "", err ? strerror(err) : "");
	if (kind == F_HEAD_TIMEOUT && !c->rq_done) {
		/* It stopped taking the request: what is left of it cannot
		 * be resent. */
		px_drop_upstream(c);
		px_final_error(c, kind, why);
		return;
	}
	if (kind != F_STATUS && kind != F_INVALID_HEADER && !c->rq_done && c->req_sent) {
		/* It gave up in the middle of the request body. When the
		 * client was the one keeping it waiting, the client gets the
		 * blame (408); either way the backend keeps its place. */
		bool slow_client = px_waiting_on_client(c);

		px_drop_upstream(c);
		if (slow_client) {
			STAT_INC(p, client_timeouts);
			pr_debug("proxy: %s: %s while waiting for the client's body: 408\n", c->ip, why);
			px_respond_error(c, 408, "request body not received in time", true);
		} else {
			px_bad_gateway(c, 502, why);
		}
		return;
	}
	px_drop_upstream(c);
	if ((c->resp_bytes && kind != F_STATUS && kind != F_INVALID_HEADER) || !c->replayable) {
		px_bad_gateway(c, 502, why);
		return;
	}
	if (reused && !c->fresh_retry && (kind == F_SEND || kind == F_NO_RESPONSE)) {
		/* A kept-alive connection the upstream had closed: not the
		 * backend's fault; again on a new connection, when it may be
		 * sent again. */
		if (!px_may_resend(c)) {
			STAT_INC(p, not_retried);
			px_bad_gateway(c, 502, why);
			return;
		}
		c->fresh_retry = true;
		c->req_sent = false;
		c->upo_sent = 0;
		c->resp_bytes = false;
		px_dispatch(c, bid, false);
		return;
	}
	own_fault = kind == F_CONNECT || kind == F_CONNECT_TIMEOUT ||
		    (kind == F_NO_RESPONSE || kind == F_SEND);
	if (own_fault)
		px_mark_down(p, c->service_id, bid, why);
	retry = kind == F_STATUS || (c->policy.next_upstream & px_retry_flag(kind));
	if (retry && !px_may_resend(c)) {
		STAT_INC(p, not_retried);
		pr_debug("proxy: %s: %s; not resent: the request reached it and its method is "
			 "not idempotent\n", c->ip, why);
		retry = false;
	}
	if (c->attempts <= FG_NU_MAX_TRIES)
		c->tried[c->attempts - 1] = bid;
	c->retry_cluster = cidx;
	if (retry && c->attempts < c->policy.next_upstream_tries) {
		if (retry_pick(c, why))
			return;
		if (px_markdown_pending(p)) {
			/* The control thread is about to rebuild the rings
			 * (another cluster may take over): wait for it. */
			c->parked = true;
			c->park_gen = p->md_gen;
			c->park_until = now_ms() + PARK_MS;
			c->park_kind = kind;
			snprintf(c->park_why, sizeof(c->park_why), "%s", why);
			p->n_parked++;
			return;
		}
	}
	px_final_error(c, kind, why);
}

/* Requests parked for a mark-down go on once it is in the maps, or fail
 * as they would have (expire: those parked too long). */
void px_resume_parked(struct px_worker *p, bool expire)
{
	__u64 applied = __atomic_load_n(&p->srv->md_applied, __ATOMIC_ACQUIRE), now = now_ms();
	struct conn *c, *next;

	if (!p->n_parked)
		return;
	for (c = p->conns; c; c = next) {
		next = c->next;
		if (c->dead || !c->parked)
			continue;
		if (c->park_gen > applied && !(expire && now >= c->park_until))
			continue;
		c->parked = false;
		p->n_parked--;
		if (c->park_head) {
			/* Routed again from its head, still in c->in. */
			c->park_head = false;
			c->head_again = true;
		} else if (!retry_pick(c, c->park_why)) {
			px_final_error(c, c->park_kind, c->park_why);
		}
		px_conn_progress(c);
	}
}

/* Another endpoint for the request (not one it tried, another cluster
 * than the last try's when there is one). Returns true when it went. */
static bool retry_pick(struct conn *c, const char *why)
{
	struct px_worker *p = c->p;
	__u32 bid;

	if (px_pick_backend(p, c->service_id, c->tried, c->attempts, c->retry_cluster, &bid))
		return false;
	c->attempts++;
	STAT_INC(p, retries);
	c->req_sent = false;
	c->upo_sent = 0;
	c->resp_bytes = false;
	c->rs = R_HEAD;
	pr_debug("proxy: %s: %s; retrying on backend %u\n", c->ip, why, bid);
	px_dispatch(c, bid, true);
	return true;
}

/* Gets c an upstream connection to backend bid (pooled when use_pool). */
void px_dispatch(struct conn *c, __u32 bid, bool use_pool)
{
	struct px_worker *p = c->p;
	const struct fg_backend *be = px_backend(p, bid);
	struct pool_key key = {};
	struct upstream *u = NULL;
	char kbuf[64], what[96];
	int err = 0;

	if (!be) {
		px_bad_gateway(c, 502, "backend gone");
		return;
	}
	key.addr = be->addr;
	key.port = be->port;
	key.family = be->family;
	key.tls = c->up_ctx != NULL;
	if (c->up_ctx)
		key.tls_id = fg_bytes_hash(c->up_sni, strlen(c->up_sni),
					   (__u32)(uintptr_t)c->up_ctx) ^
			     ((__u64)(uintptr_t)c->up_ctx << 16) ^ c->up_send_sni;
	px_rec_upstream(c, &key.addr, key.family, key.port, be->cluster_idx);
	while (use_pool && (u = px_pool_get(p, &key))) {
		if (c->idempotent || px_pooled_alive(u)) {
			u->reused = true;
			c->rec.up_connect_ns = c->rec.up_start_ns;
			STAT_INC(p, upstream_reuses);
			break;
		}
		px_up_close(u);
	}
	if (!u) {
		u = px_up_connect(p, &key, &err);
		if (!u && err < 0) {
			snprintf(what, sizeof(what), "connect to %s", px_key_str(&key, kbuf, sizeof(kbuf)));
			fg_local_error(&p->local, err, what);
		}
	}
	if (!u) {
		/* Failed at once: as if the connection had been made. */
		struct upstream tmp = { .key = key, .backend_id = bid, .service_id = c->service_id,
					.cluster_idx = be->cluster_idx, .fd = -1, .p = p };

		if (err > 0)
			STAT_INC(p, connect_failures);
		u = calloc(1, sizeof(*u));
		if (!u) {
			px_bad_gateway(c, 503, "gateway out of memory");
			return;
		}
		*u = tmp;
		u->tag.kind = T_UPSTREAM;
		u->tag.obj = u;
		CNT_ADD(p, n_upstreams, 1);
		c->up = u;
		if (err < 0)
			px_upstream_failed(c, F_LOCAL, -err, "could not be connected to");
		else
			px_upstream_failed(c, F_CONNECT, err, "refused the connection");
		return;
	}
	u->conn = c;
	u->backend_id = bid;
	u->service_id = c->service_id;
	u->cluster_idx = be->cluster_idx;
	c->up = u;
	c->up_activity = now_ms();
	px_pool_busy(u);
	if (c->up_ctx && !u->tls.ssl && px_up_tls_start(c, u))
		px_upstream_failed(c, F_LOCAL, ENOMEM, "TLS session");
}

/* The route sends a request answered with this status to another
 * endpoint (proxy-next-upstream http_NNN), and this one can go: nothing
 * went to the client yet, it can be resent, tries and endpoints are left.
 * When it cannot, the response is relayed as it is. */
bool px_status_retry(struct conn *c, int status)
{
	static const struct { int status; __u32 flag; } map[] = {
		{ 500, FG_NU_HTTP_500 }, { 502, FG_NU_HTTP_502 }, { 503, FG_NU_HTTP_503 },
		{ 504, FG_NU_HTTP_504 }, { 403, FG_NU_HTTP_403 }, { 404, FG_NU_HTTP_404 },
		{ 429, FG_NU_HTTP_429 },
	};
	__u32 ex[FG_NU_MAX_TRIES], bid;
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].status == status)
			break;
	if (i == sizeof(map) / sizeof(map[0]) || !(c->policy.next_upstream & map[i].flag))
		return false;
	if (!c->up || c->resp_head_sent || !c->rq_done || !c->replayable ||
	    c->attempts >= c->policy.next_upstream_tries || c->attempts > FG_NU_MAX_TRIES)
		return false;
	if (!px_may_resend(c)) {
		STAT_INC(c->p, not_retried);
		return false;
	}
	memcpy(ex, c->tried, (c->attempts - 1) * sizeof(ex[0]));
	ex[c->attempts - 1] = c->up->backend_id;
	return !px_pick_backend(c->p, c->service_id, ex, c->attempts, (int)c->up->cluster_idx, &bid);
}

/* The response is complete: the upstream goes back to the pool if it can,
 * the client to its next request. */
void px_finish_exchange(struct conn *c)
{
	struct upstream *u = c->up;
	bool reusable = u && u->fd >= 0 && c->resp_ka && c->rq_done &&
			c->upo_sent == c->upo.len && !c->qp.len && !buf_used(&c->rin) && !c->up_eof;

	px_rec_end(c, c->rec.status, FG_REQ_DONE, -1);
	c->up = NULL;
	if (u) {
		if (reusable)
			px_pool_put(u);
		else
			px_up_close(u);
	}
	buf_free(&c->rin);
	buf_free(&c->upo);
	c->served++;
	if (c->close_after || !c->rq_done) {
		px_start_closing(c);
		return;
	}
	c->state = C_HEAD;
	c->head_start = 0;
	c->activity = now_ms();
}

bool px_step_head(struct conn *c)
{
	struct px_worker *p = c->p;
	const char *why = NULL;
	size_t used = buf_used(&c->in);
	int r;

	if (c->parked)
		return false; /* its head waits for the control thread */
	if (!used) {
		if (c->eof && !px_out_pending(c))
			px_conn_close(c);
		return false;
	}
	/* A client pipelining without reading waits until it reads. */
	if (buf_used(&c->out) >= BODY_WINDOW)
		return false;
	if (!c->head_start)
		c->head_start = now_ms();
	r = fg_http_parse_request(buf_data(&c->in), used, &p->limits, &p->req, &why);
	if (r == 0) {
		if (used >= c->in.max) {
			STAT_INC(p, requests);
			c->is_head_req = false;
			px_respond_error(c, 431, "request header fields too large", true);
			return true;
		}
		if (c->eof) {
			/* A partial head, then the end: nothing to answer. */
			if (!px_out_pending(c))
				px_conn_close(c);
			else
				px_start_closing(c);
			return false;
		}
		return false;
	}
	if (!c->head_again)
		STAT_INC(p, requests);
	if (r < 0) {
		c->is_head_req = false;
		px_respond_error(c, -r, why ? why : "bad request", true);
		return true;
	}
	px_start_request(c, (size_t)r);
	return true;
}

bool px_step_proxy(struct conn *c)
{
	bool moved = false;
	int r;

	if (!c->rq_done) {
		moved |= px_pump_request(c);
		if (c->state == C_PROXY)
			moved |= px_splice_request(c);
	}
	if (c->state != C_PROXY)
		return true;
	if (!c->rq_done && !c->rq_abandoned && c->eof && !buf_used(&c->in)) {
		/* The client went away in the middle of its request. */
		px_conn_close(c);
		return false;
	}
	if (c->up && c->up->fd >= 0 && !c->up->connecting) {
		r = px_up_flush(c);
		if (r < 0) {
			if (c->resp_bytes) {
				/* It answered already (an early response) and
				 * takes no more: the request's rest is dropped,
				 * the response still read. */
				c->rq_abandoned = true;
				c->upo_sent = c->upo.len;
				px_pipe_close(c->p, &c->qp);
				c->close_after = true;
			} else {
				if (fg_local_errno(-r))
					fg_local_error(&c->p->local, -r, "send to an upstream");
				px_upstream_failed(c, fg_local_errno(-r) ? F_LOCAL : F_SEND, -r,
						"failed while sending the request");
				return true;
			}
		}
		moved |= r > 0;
		moved |= px_sockmap_response(c);
		if (!c->win)
			px_up_read(c);
		moved |= px_splice_response(c);
		moved |= px_sockmap_response(c);
	}
	moved |= px_pump_response(c);
	if (c->state != C_PROXY)
		return true;
	if (c->rs == R_DONE) {
		px_finish_exchange(c);
		return true;
	}
	return moved;
}

void px_start_linger(struct conn *c)
{
	px_tls_close_notify(c);
	shutdown(c->fd, SHUT_WR);
	c->state = C_LINGER;
	c->linger_start = now_ms();
}

void px_linger_read(struct conn *c)
{
	char sink[4096];
	int i;

	for (i = 0; i < 16; i++) {
		ssize_t n = recv(c->fd, sink, sizeof(sink), 0);

		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		px_conn_close(c);
		return;
	}
}

void px_update_events(struct conn *c)
{
	struct px_worker *p = c->p;
	unsigned want = 0;

	if (c->state == C_TUNNEL) {
		px_tunnel_events(c);
		return;
	}
	if (c->state == C_TLS) {
		ep_set(p, c->fd, &c->tag, &c->events, px_io_hs_events(&c->tls));
		return;
	}
	if (c->state == C_LINGER) {
		want = EPOLLIN;
	} else {
		if (!c->eof && c->state != C_CLOSING && buf_used(&c->in) < c->in.max &&
		    !(px_req_spliceable(c) && c->qp.len))
			want |= EPOLLIN;
		if (px_out_writable(c))
			want |= EPOLLOUT;
		/* OpenSSL asked for the other direction. */
		if (c->tls.rd_wants_write)
			want |= EPOLLOUT;
		if (c->tls.wr_wants_read)
			want |= EPOLLIN;
	}
	ep_set(p, c->fd, &c->tag, &c->events, want);
	if (c->up && c->up->fd >= 0) {
		struct upstream *u = c->up;
		unsigned uw = 0;

		if (u->connecting) {
			uw = u->tcp_up ? px_io_hs_events(&u->tls) : EPOLLOUT;
		} else {
			if (c->upo_sent < c->upo.len || c->qp.len)
				uw |= EPOLLOUT;
			if (!c->up_eof && buf_used(&c->rin) < px_rin_limit(c))
				uw |= EPOLLIN;
			if (!c->up_eof && px_resp_spliceable(c) && !px_out_pending(c))
				uw |= EPOLLIN;
			/* An open window is watched by the timer (sockmap_response
			 * polls the upstream): level-triggered EPOLLIN would fire
			 * for an skb queued but not yet through the verdict. */
		}
		ep_set(p, u->fd, &u->tag, &u->events, uw);
	}
}

void px_conn_progress(struct conn *c)
{
	int guard;

	for (guard = 0; guard < 64 && !c->dead; guard++) {
		bool moved = false;

		if (px_out_pending(c)) {
			int err = px_client_flush(c);

			if (err) {
				px_conn_close(c);
				return;
			}
		}
		switch (c->state) {
		case C_HEAD:
			moved = px_step_head(c);
			break;
		case C_PROXY:
			moved = px_step_proxy(c);
			break;
		case C_CLOSING:
			if (!px_out_pending(c))
				close_or_linger(c);
			break;
		case C_LINGER:
			break;
		case C_TUNNEL:
			moved = px_tunnel_step(c);
			break;
		case C_TLS:
			moved = px_tls_step(c);
			break;
		}
		/* OpenSSL may hold decrypted bytes epoll cannot see. */
		if (!c->dead && (c->state == C_HEAD || c->state == C_PROXY) && px_cl_pending(c) &&
		    buf_used(&c->in) < c->in.max && !px_req_spliceable(c)) {
			size_t before = buf_used(&c->in);

			c->rd_ready = true;
			if (px_client_read(c)) {
				px_conn_close(c);
				return;
			}
			moved |= buf_used(&c->in) != before || c->eof;
		}
		if (!moved)
			break;
	}
	if (!c->dead)
		px_update_events(c);
}

void px_on_client(struct conn *c, unsigned ev)
{
	if (ev & EPOLLERR) {
		px_conn_close(c);
		return;
	}
	if (c->state == C_LINGER) {
		px_linger_read(c);
		return;
	}
	if (c->state == C_TUNNEL || c->state == C_TLS) {
		/* Reading says what happened: data, FIN or the error. */
		c->rd_ready = true;
		px_conn_progress(c);
		return;
	}
	if ((ev & EPOLLOUT) && c->tls.rd_wants_write)
		c->rd_ready = true; /* the read OpenSSL could not finish */
	if (ev & EPOLLHUP) {
		/* Both ways shut: nobody left to answer. */
		px_conn_close(c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP))
		c->rd_ready = true;
	if ((ev & EPOLLIN) || ((ev & EPOLLOUT) && c->tls.rd_wants_write)) {
		if (px_client_read(c)) {
			px_conn_close(c);
			return;
		}
	}
	px_conn_progress(c);
}

void px_on_upstream(struct upstream *u, unsigned ev)
{
	struct conn *c = u->conn;

	if (!c) {
		/* Pooled and readable: closed by the upstream, or it sent
		 * something unasked. Either way it cannot be reused. */
		px_pool_unlink(u);
		px_up_close(u);
		return;
	}
	if (c->state == C_TUNNEL) {
		u->rd_ready = true;
		px_conn_progress(c);
		return;
	}
	if (u->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len))
			err = errno;
		if (!err && (ev & (EPOLLERR | EPOLLHUP)))
			err = ECONNREFUSED;
		if (err) {
			if (fg_local_errno(err)) {
				char kbuf[64], what[96];

				snprintf(what, sizeof(what), "connect to %s",
					 px_key_str(&u->key, kbuf, sizeof(kbuf)));
				fg_local_error(&c->p->local, err, what);
				px_upstream_failed(c, F_LOCAL, err, "could not be connected to");
			} else {
				STAT_INC(c->p, connect_failures);
				px_upstream_failed(c, F_CONNECT, err, "connect failed");
			}
			px_conn_progress(c);
			return;
		}
		if (!u->tcp_up && !(ev & EPOLLOUT))
			return;
		u->tcp_up = true;
		if (u->tls.ssl) {
			char why[300];
			int r = px_up_tls_step(u, why, sizeof(why));

			if (!r) {
				px_update_events(c);
				return;
			}
			if (r < 0) {
				if (r == -1)
					STAT_INC(c->p, connect_failures);
				px_upstream_failed(c, r == -2 ? F_TLS_VERIFY : F_CONNECT, 0, why);
				px_conn_progress(c);
				return;
			}
		}
		u->connecting = false;
		c->up_activity = now_ms();
		if (c->rec_open)
			c->rec.up_connect_ns = now_ns();
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
		u->rd_ready = true;
		px_up_read(c);
	}
	if ((ev & (EPOLLERR | EPOLLHUP)) && u->fd >= 0 && !c->up_eof) {
		/* Could not read it all (rin full): the error is reported
		 * over and over until the fd goes, so it goes now. */
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		c->up_eof = true;
		c->up_errno = err ? err : ECONNRESET;
		px_up_close_fd(u);
	}
	px_conn_progress(c);
}

/* The exchange waits for the upstream (not for the client): it has request
 * bytes it does not take, or the whole request and no answer yet, or
 * response body to send while the client is keeping up. */
bool px_waiting_on_upstream(const struct conn *c)
{
	if (c->upo_sent < c->upo.len || c->qp.len)
		return true;
	if (c->rs == R_HEAD)
		return c->rq_done || c->rq_abandoned;
	return c->rs == R_BODY && !px_out_pending(c);
}

void px_check_conn(struct conn *c, __u64 now)
{
	const struct fg_proxy_opts *o = &c->p->opts;
	struct upstream *u = c->up;

	switch (c->state) {
	case C_HEAD:
		if (c->head_start && now - c->head_start >= o->header_timeout_ms) {
			STAT_INC(c->p, timeouts);
			c->is_head_req = false;
			px_respond_error(c, 408, "request header timeout", true);
			px_conn_progress(c);
		} else if (now - c->activity >= o->idle_timeout_ms &&
			   (!buf_used(&c->in) || px_out_pending(c))) {
			/* idle keep-alive, or a client that stopped reading */
			px_conn_close(c);
		}
		break;
	case C_PROXY:
		if (u && u->connecting && now - u->since >= c->connect_ms) {
			STAT_INC(c->p, timeouts);
			STAT_INC(c->p, connect_failures);
			px_upstream_failed(c, F_CONNECT_TIMEOUT, ETIMEDOUT, "connect");
			px_conn_progress(c);
		} else if (u && c->rs == R_HEAD && px_waiting_on_upstream(c) &&
			   now - c->up_activity >= px_rules_wait_ms(c)) {
			char msg[128];

			STAT_INC(c->p, timeouts);
			snprintf(msg, sizeof(msg), "did not answer within %u ms",
				 px_rules_wait_ms(c));
			px_upstream_failed(c, F_HEAD_TIMEOUT, 0, msg);
			px_conn_progress(c);
		} else if (c->rs == R_HEAD && !c->resp_bytes && px_waiting_on_client(c) &&
			   now - c->last_rx >= o->client_body_timeout_ms) {
			/* nginx's client_body_timeout: the client's fault, not
			 * the upstream's that waits for the rest. */
			STAT_INC(c->p, client_timeouts);
			STAT_INC(c->p, timeouts);
			px_respond_error(c, 408, "request body not received in time", true);
			px_conn_progress(c);
		} else if (c->rs == R_BODY && px_waiting_on_upstream(c) &&
			   now - c->up_activity >= px_rules_wait_ms(c)) {
			STAT_INC(c->p, timeouts);
			px_abort_mid_response(c, "upstream stalled");
			px_conn_progress(c);
		} else if (now - c->activity >= o->idle_timeout_ms &&
			   (px_out_pending(c) || (!c->rq_done && !buf_used(&c->in)))) {
			px_conn_close(c); /* the client stalled */
		}
		break;
	case C_CLOSING:
		if (now - c->activity >= o->idle_timeout_ms)
			px_conn_close(c);
		break;
	case C_LINGER:
		if (now - c->linger_start >= LINGER_MS)
			px_conn_close(c);
		break;
	case C_TUNNEL:
		px_tunnel_check(c, now);
		break;
	case C_TLS:
		if (now - c->head_start >= o->header_timeout_ms) {
			STAT_INC(c->p, timeouts);
			px_tls_handshake_failed(c, PX_TLS_FAIL_TIMEOUT, "handshake not complete in time");
			px_conn_close(c);
		}
		break;
	}
}
