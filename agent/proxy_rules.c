// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The everyday Ingress annotations in the request path (docs/annotations.md,
 * parsed by route_opts.c): proxy-body-size, redirects and app-root, source
 * ranges, the timeouts, cookie affinity, rewrite-target and upstream-vhost.
 * Called from a few places of the connection's state machine; everything
 * the exchange needs later is copied into the conn (or held by reference:
 * c->ropts), because a worker moves to newer routes between requests.
 *
 * The order is nginx's: the body size is checked once the route is known
 * (nginx's find-config phase), then the redirects (rewrite phase, `return`),
 * then the source ranges (access phase), then the upstream is chosen.
 */
#include <ctype.h>
#include <time.h>

#include "proxy_int.h"

#define EXPAND_MAX (256 * 1024) /* a redirect URL or rewritten target */

/* nginx's $request_uri, $uri, $args, ... of the request being started. */
static void request_vars(const struct conn *c, const struct fg_http_request *req,
			 struct fg_expand_vars *v)
{
	memset(v, 0, sizeof(*v));
	v->request_uri = req->path;
	v->request_uri_len = req->target + req->target_len - req->path;
	v->uri = req->path;
	v->uri_len = req->path_len;
	v->args = req->query;
	v->args_len = req->query_len;
	v->host = req->host_len ? req->host : "";
	v->host_len = req->host_len;
	v->http_host = req->authority ? req->authority : "";
	v->http_host_len = req->authority ? req->authority_len : 0;
	v->scheme = c->tls.ssl ? "https" : "http";
}

/* fg_expand into a buffer of the size it needs (malloc'ed). */
static int expand_alloc(const char *tmpl, const struct fg_expand_vars *v, char **out)
{
	size_t cap = 1024;
	int n;

	for (;;) {
		char *buf = malloc(cap);

		if (!buf)
			return -ENOMEM;
		n = fg_expand(tmpl, v, buf, cap);
		if (n >= 0) {
			*out = buf;
			return n;
		}
		free(buf);
		if (n != -ENOSPC || cap >= EXPAND_MAX)
			return n;
		cap *= 2;
	}
}

/* The client's address, IPv4-mapped IPv6 as IPv4 (nginx matches those
 * against IPv4 ranges too). */
static bool client_addr(const struct conn *c, int *family, struct fg_addr *a)
{
	static const __u8 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, c->ip, &a->v4) == 1) {
		*family = FG_AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, c->ip, a->bytes) != 1)
		return false;
	*family = FG_AF_INET6;
	if (!memcmp(a->bytes, mapped, sizeof(mapped))) {
		memmove(a->bytes, a->bytes + 12, 4);
		memset(a->bytes + 4, 0, 12);
		*family = FG_AF_INET;
	}
	return true;
}

/* denylist first, then the allowlist (nginx's deny ...; allow ...; deny
 * all;): true when the client may go on. */
static bool source_allowed(const struct conn *c, const struct fg_route_opts *ro)
{
	struct fg_addr a;
	int family;

	if (!ro->n_allow && !ro->n_deny)
		return true;
	if (!client_addr(c, &family, &a))
		return false; /* not an address: nothing to allow */
	if (fg_cidr_match(ro->deny, ro->n_deny, family, &a))
		return false;
	return !ro->n_allow || fg_cidr_match(ro->allow, ro->n_allow, family, &a);
}

/* The timeouts and the body limit in force for this request: the route's,
 * or the proxy's. */
static void take_route(struct conn *c, const struct fg_route *route)
{
	const struct fg_proxy_opts *o = &c->p->opts;
	const struct fg_route_opts *ro = route->opts;

	fg_route_opts_put(c->ropts);
	c->ropts = fg_route_opts_get(route->opts);
	c->rpath = route->path_idx;
	c->aff_kept = false;
	c->connect_ms = ro && ro->connect_timeout_ms ? ro->connect_timeout_ms
						     : o->upstream_connect_timeout_ms;
	c->read_ms = ro && ro->read_timeout_ms ? ro->read_timeout_ms : o->upstream_timeout_ms;
	c->send_ms = ro && ro->send_timeout_ms ? ro->send_timeout_ms
		     : o->upstream_send_timeout_ms ? o->upstream_send_timeout_ms
						   : o->upstream_timeout_ms;
	c->body_limit = ro && ro->body_limit_set ? ro->body_limit : o->max_body_size;
}

/* A redirect answered by the proxy: "Location: URL". */
static void redirect(struct conn *c, int status, const char *location, bool close)
{
	char *fields = NULL;

	if (asprintf(&fields, "Location: %s\r\n", location) < 0) {
		px_respond_error(c, 500, "out of memory", true);
		return;
	}
	px_respond(c, status, fields, px_status_text(status), close);
	free(fields);
}

/* A plain HTTP request for a host served with a certificate goes to https
 * (ingress-nginx's ssl-redirect, true by default for hosts of an
 * Ingress's tls:), or for any host with force-ssl-redirect; only when this
 * gateway has a TLS listener to send it to. */
static bool ssl_redirect_wanted(const struct conn *c, const struct fg_route *route)
{
	const struct fg_route_opts *ro = route->opts;

	if (c->tls.ssl || c->p->srv->n_ls < 2)
		return false;
	if (ro && ro->force_ssl_redirect)
		return true;
	return route->tls && (!ro || ro->ssl_redirect != 0);
}

/* https://HOST[:PORT]TARGET: the first TLS listener's port unless 443. */
static char *https_url(const struct conn *c, const struct fg_http_request *req)
{
	__u16 port = c->p->srv->ls[1].port;
	char pbuf[8] = "";
	char *url = NULL;

	if (port != 443)
		snprintf(pbuf, sizeof(pbuf), ":%u", port);
	if (asprintf(&url, "https://%s%s%.*s%s%.*s", req->host_len ? req->host : "", pbuf,
		     (int)req->path_len, req->path, req->query ? "?" : "",
		     req->query ? (int)req->query_len : 0, req->query ? req->query : "") < 0)
		return NULL;
	return url;
}

/*
 * Once the route of a request is known (its head parsed into c->p->req,
 * hlen bytes of c->in): takes the route's settings, and answers the
 * request itself when an annotation says so (413, a redirect, 403).
 * Returns true when it did (the head is consumed then).
 */
bool px_rules_request(struct conn *c, const struct fg_route *route, size_t hlen, bool has_body)
{
	const struct fg_http_request *req = &c->p->req;
	const struct fg_route_opts *ro = route->opts;
	bool close = has_body || c->close_after;
	struct fg_expand_vars v;
	char msg[512], *url;
	int n;

	take_route(c, route);
	if (ssl_redirect_wanted(c, route)) {
		url = https_url(c, req);
		buf_consume(&c->in, hlen);
		if (!url) {
			px_respond_error(c, 500, "out of memory", close);
			return true;
		}
		redirect(c, 308, url, close);
		free(url);
		return true;
	}
	if (c->body_limit && req->body == FG_BODY_LENGTH && req->content_length > c->body_limit) {
		/* The body is not read: the connection ends after the 413. */
		snprintf(msg, sizeof(msg), "request body of %llu bytes is over the limit of %llu "
			 "(proxy-body-size)", req->content_length, c->body_limit);
		buf_consume(&c->in, hlen);
		px_respond_error(c, 413, msg, true);
		return true;
	}
	if (!ro)
		return false;
	if (ro->redirect) {
		request_vars(c, req, &v);
		n = expand_alloc(ro->redirect, &v, &url);
		buf_consume(&c->in, hlen);
		if (n < 0) {
			px_respond_error(c, 500, "cannot build the redirect URL", close);
			return true;
		}
		redirect(c, ro->redirect_code, url, close);
		free(url);
		return true;
	}
	if (ro->app_root && req->path_len == 1 && req->path[0] == '/') {
		/* nginx: if ($uri = /) { return 302 $scheme://$http_host<app-root>; } */
		if (asprintf(&url, "%s%.*s%s",
			     !req->authority_len ? "" : c->tls.ssl ? "https://" : "http://",
			     (int)req->authority_len, req->authority ? req->authority : "",
			     ro->app_root) < 0)
			url = NULL;
		buf_consume(&c->in, hlen);
		if (!url) {
			px_respond_error(c, 500, "out of memory", close);
			return true;
		}
		redirect(c, 302, url, close);
		free(url);
		return true;
	}
	if (!source_allowed(c, ro)) {
		snprintf(msg, sizeof(msg), "client %s is not allowed by the source ranges of "
			 "Ingress %.200s", c->ip, route->ingress);
		buf_consume(&c->in, hlen);
		px_respond_error(c, 403, msg, close);
		return true;
	}
	return false;
}

/* ---------- session affinity ---------- */

static bool parse_hex64(const char *s, size_t n, __u64 *out)
{
	__u64 v = 0;
	size_t i;

	if (n != 16)
		return false;
	for (i = 0; i < n; i++) {
		int d = isdigit((unsigned char)s[i]) ? s[i] - '0'
			: s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;

		if (d < 0)
			return false;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return true;
}

/*
 * The backend for the request's target (service sid): the one its session
 * cookie names when that one is up and serves the target now, else one
 * by the target's cluster shares (px_pick_backend). The cookie is (re)set
 * on the response when the request had none that held.
 */
int px_rules_pick(struct conn *c, const struct fg_http_request *req, __u32 sid, __u32 *bid)
{
	const struct fg_route_opts *ro = c->ropts;
	const char *val;
	size_t len;
	__u64 h;

	if (ro && ro->affinity && fg_http_cookie(req, ro->cookie_name, &val, &len) &&
	    parse_hex64(val, len, &h) && !px_pick_affine(c->p, sid, h, bid)) {
		c->aff_kept = true;
		c->aff_bid = *bid;
		return 0;
	}
	return px_pick_backend(c->p, sid, NULL, 0, -1, bid);
}

static bool backend_up(struct px_worker *p, __u32 bid)
{
	const struct fg_backend *be = px_backend(p, bid);

	return be && (be->flags & FG_BACKEND_F_UP);
}

/* The cookie's Path: the annotation's, else the route's path when it is
 * one a cookie can carry (a regex path may not be: then "/"). */
static const char *cookie_path(const struct conn *c)
{
	const struct fg_route_opts *ro = c->ropts;
	const char *p;

	if (ro->cookie_path)
		return ro->cookie_path;
	if (c->rpath >= ro->n_paths || !(p = ro->paths[c->rpath].path) || p[0] != '/')
		return "/";
	if (p[strcspn(p, " ;,\"\t\r\n")])
		return "/";
	return p;
}

/*
 * Header fields the proxy adds to the final response head of this
 * exchange, written into buf: the session cookie. Returns their length
 * (0: none, or buf too small, which a cookie within the annotations'
 * limits never is).
 */
size_t px_rules_response_fields(struct conn *c, char *buf, size_t len)
{
	const struct fg_route_opts *ro = c->ropts;
	const struct upstream *u = c->up;
	char expires[64] = "", max_age[32] = "";
	int n;

	if (!ro || !ro->affinity || !u)
		return 0;
	/* The cookie stays while its endpoint answers, or failed but is
	 * still up (a retry elsewhere moves it only with
	 * session-cookie-change-on-failure); an endpoint marked down by this
	 * request's failure gets the session a new one at once. */
	if (c->aff_kept && (u->backend_id == c->aff_bid ||
			    (!ro->aff_change_on_failure && backend_up(c->p, c->aff_bid))))
		return 0;
	if (ro->cookie_expires >= 0) {
		time_t t = time(NULL) + (time_t)ro->cookie_expires;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(expires, sizeof(expires), "; Expires=%a, %d %b %Y %H:%M:%S GMT", &tm);
	}
	if (ro->cookie_max_age >= 0)
		snprintf(max_age, sizeof(max_age), "; Max-Age=%lld", ro->cookie_max_age);
	n = snprintf(buf, len, "Set-Cookie: %s=%016llx; Path=%s%s%s%s%s%s; HttpOnly\r\n",
		     ro->cookie_name,
		     (unsigned long long)px_affinity_hash(c->p, &u->key.addr, u->key.family,
							   u->key.port, u->cluster_idx),
		     cookie_path(c), expires, max_age, ro->cookie_secure ? "; Secure" : "",
		     ro->cookie_samesite ? "; SameSite=" : "",
		     ro->cookie_samesite ? ro->cookie_samesite : "");
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* ---------- the request head for the upstream ---------- */

/* Replaces head[off, off + old_len) with s[0, len): the head is the n
 * bytes at the start of upo (upo.len is not set yet). Returns the new n. */
static int head_replace(struct conn *c, int n, size_t off, size_t old_len, const char *s,
			size_t len)
{
	size_t nn = (size_t)n - old_len + len;

	if (nn > INT_MAX || buf_room(&c->upo, nn) < nn)
		return -ENOSPC;
	memmove(c->upo.d + off + len, c->upo.d + off + old_len, (size_t)n - off - old_len);
	memcpy(c->upo.d + off, s, len);
	return (int)nn;
}

/* nginx's rewrite: the whole URI becomes the target, the request's
 * arguments appended ("?" or "&"), unless the target ends with "?". */
static int rewrite(struct conn *c, const struct fg_route *route, const struct fg_http_request *req,
		   int n)
{
	const struct fg_route_opts *ro = c->ropts;
	size_t ov[2 * 10];
	struct fg_expand_vars v;
	char *t = NULL, *full = NULL;
	const char *sp, *end, *lead;
	bool no_args;
	int len, pairs, r;

	pairs = fg_regex_match_groups(ro->paths[route->path_idx].re, req->path, req->path_len, ov,
				      10);
	if (pairs <= 0)
		return n; /* matched when routed: only a limit could say no now */
	request_vars(c, req, &v);
	v.subject = req->path;
	v.ovector = ov;
	v.n_pairs = pairs;
	len = expand_alloc(ro->rewrite_target, &v, &t);
	if (len < 0)
		return len;
	no_args = len && t[len - 1] == '?';
	if (no_args)
		t[--len] = '\0'; /* nginx: a trailing "?" drops the request's arguments */
	lead = t[0] == '/' ? "" : "/";
	if (!no_args && req->query_len)
		r = asprintf(&full, "%s%s%c%.*s", lead, t, strchr(t, '?') ? '&' : '?',
			     (int)req->query_len, req->query);
	else
		r = asprintf(&full, "%s%s", lead, t);
	if (r < 0)
		full = NULL;
	free(t);
	if (!full)
		return -ENOMEM;
	/* "METHOD SP target SP HTTP/1.1\r\n", as fg_http_rewrite_head wrote it. */
	sp = memchr(c->upo.d, ' ', (size_t)n);
	end = sp ? memmem(sp + 1, (size_t)n - (sp + 1 - c->upo.d), " HTTP/1.1\r\n", 11) : NULL;
	if (!end) {
		free(full);
		return -EINVAL;
	}
	n = head_replace(c, n, sp + 1 - c->upo.d, end - (sp + 1), full, strlen(full));
	free(full);
	return n;
}

/* upstream-vhost: the Host field's value, or a Host field when there is
 * none (HTTP/1.0). */
static int vhost(struct conn *c, const char *host, int n)
{
	const char *d = c->upo.d, *line = memchr(d, '\n', (size_t)n);
	char field[FG_HOST_LEN + 16];

	while (line && (size_t)(line + 1 - d) < (size_t)n) {
		const char *l = line + 1, *eol = memchr(l, '\n', (size_t)n - (l - d));

		if (!eol || eol == l + 1)
			break; /* the empty line: no Host */
		if (eol - l > 5 && !strncasecmp(l, "host:", 5))
			return head_replace(c, n, l + 5 - d, eol - 1 - (l + 5), field,
					    (size_t)snprintf(field, sizeof(field), " %s", host));
		line = eol;
	}
	line = memchr(d, '\n', (size_t)n);
	if (!line)
		return -EINVAL;
	return head_replace(c, n, line + 1 - d, 0, field,
			    (size_t)snprintf(field, sizeof(field), "Host: %s\r\n", host));
}

/* The head fg_http_rewrite_head wrote for the upstream (n bytes at the
 * start of upo), with the route's rewrite-target and upstream-vhost.
 * Returns its new length or -errno. */
int px_rules_upstream_head(struct conn *c, const struct fg_route *route,
			   const struct fg_http_request *req, int n)
{
	const struct fg_route_opts *ro = c->ropts;

	if (!ro)
		return n;
	if (ro->rewrite_target && fg_route_is_regex(route))
		n = rewrite(c, route, req, n);
	if (n >= 0 && ro->upstream_vhost)
		n = vhost(c, ro->upstream_vhost, n);
	return n;
}

/* ---------- during the exchange ---------- */

/* The request body grew past the limit (chunked: as soon as a chunk-size
 * line announces it): 413, and the request goes no further. */
bool px_rules_body_over(struct conn *c)
{
	char msg[160];

	if (!c->body_limit || fg_http_framer_announced(&c->rqf) <= c->body_limit)
		return false;
	if (c->resp_head_sent) {
		px_abort_mid_response(c, "request body over the limit (proxy-body-size)");
		return true;
	}
	snprintf(msg, sizeof(msg), "request body over the limit of %llu bytes (proxy-body-size)",
		 c->body_limit);
	px_respond_error(c, 413, msg, true);
	return true;
}

/* How long the exchange may wait on its upstream now: nginx's
 * proxy_send_timeout while the upstream does not take the request,
 * proxy_read_timeout while we wait for its bytes. */
unsigned px_rules_wait_ms(const struct conn *c)
{
	return c->upo_sent < c->upo.len || c->qp.len ? c->send_ms : c->read_ms;
}
