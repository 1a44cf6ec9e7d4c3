// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Upgraded connections (RFC 9110 §7.8; WebSocket, RFC 6455 §4): a request
 * with "Connection: upgrade" and an Upgrade field goes to the upstream
 * with both fields kept; when the upstream answers 101 Switching
 * Protocols, the head goes to the client and from then on the two sockets
 * are one tunnel: bytes move both ways as they come, through a pipe with
 * splice(2) in splice and sockmap modes (the same body path as responses;
 * an upstream socket in the sockmap is read with recv), through a buffer
 * in copy mode. A side that closes its sending half has that half shut
 * on the other side once what it sent went; the tunnel ends when both
 * halves are shut, on an error, or after tunnel_idle_ms without a byte
 * either way. Any other answer to an upgrade request is an ordinary
 * response and the connection stays HTTP.
 */
#include "proxy_int.h"

/* One direction: bytes read from src are written to dst. */
struct tdir {
	int src, dst;
	bool *src_ready;    /* epoll said src is readable */
	bool *src_eof;      /* src sent its FIN */
	bool *dst_shut;     /* dst's sending half shut */
	struct buf *b;      /* copy path */
	struct fg_pipe *pp; /* splice path (rd < 0: not open) */
	bool splice;
	__u64 *count;       /* bytes moved (record) */
	struct px_sslio *io_src, *io_dst; /* TLS sessions (NULL: plain) */
};

/* "Connection" lists the token "upgrade" (any of its fields). */
static bool conn_lists_upgrade(const struct fg_http_request *req)
{
	unsigned i;

	for (i = 0; i < req->n_headers; i++) {
		const struct fg_http_header *h = &req->headers[i];
		size_t pos = 0;

		if (!ieq(h->name, h->name_len, "connection"))
			continue;
		while (pos < h->value_len) {
			size_t st, en;

			while (pos < h->value_len && (h->value[pos] == ' ' || h->value[pos] == '\t' ||
						      h->value[pos] == ','))
				pos++;
			st = pos;
			while (pos < h->value_len && h->value[pos] != ',')
				pos++;
			en = pos;
			while (en > st && (h->value[en - 1] == ' ' || h->value[en - 1] == '\t'))
				en--;
			if (ieq(h->value + st, en - st, "upgrade"))
				return true;
		}
	}
	return false;
}

/* The request asks to switch protocols, and may: HTTP/1.1 (RFC 9110
 * §7.8: a 1.0 request's Upgrade is ignored) without a body (the tunnel
 * would start inside it). Its protocol goes to c->upgrade. */
bool px_upgrade_request(struct conn *c, const struct fg_http_request *req, bool has_body)
{
	const struct fg_http_header *up = fg_http_find(req, "upgrade");

	c->upgrade[0] = '\0';
	if (!up || !up->value_len || req->version_minor < 1 || has_body ||
	    up->value_len >= sizeof(c->upgrade) || !conn_lists_upgrade(req))
		return false;
	memcpy(c->upgrade, up->value, up->value_len);
	c->upgrade[up->value_len] = '\0';
	return true;
}

/* fg_http_rewrite_head ends the head with "Connection: keep-alive" (it
 * drops Upgrade, hop-by-hop): an upgrade request gets both fields back. */
int px_upgrade_head(struct conn *c, size_t *len)
{
	static const char ka[] = "Connection: keep-alive\r\n\r\n";
	size_t klen = sizeof(ka) - 1, need;
	char tail[sizeof(c->upgrade) + 64];
	int n;

	if (*len < klen || memcmp(c->upo.d + *len - klen, ka, klen))
		return -EINVAL;
	n = snprintf(tail, sizeof(tail), "Connection: upgrade\r\nUpgrade: %s\r\n\r\n", c->upgrade);
	need = *len - klen + n;
	if (need > c->upo.cap)
		return -ENOSPC;
	memcpy(c->upo.d + *len - klen, tail, n);
	*len = need;
	return 0;
}

/* The 101 for the client: the upstream's fields (Upgrade, Sec-WebSocket-*)
 * minus the other hop-by-hop ones, and "Connection: upgrade". */
static int put_switch_head(struct conn *c, const struct fg_http_response *r)
{
	struct buf *o = &c->out;
	size_t need = 64 + r->reason_len + 32;
	char line[64];
	unsigned i;
	int n;

	for (i = 0; i < r->n_headers; i++)
		need += r->headers[i].name_len + r->headers[i].value_len + 4;
	if (buf_room(o, buf_used(o) + need) < need)
		return -ENOSPC;
	n = snprintf(line, sizeof(line), "HTTP/1.1 101 ");
	buf_append(o, line, n);
	buf_append(o, r->reason, r->reason_len);
	buf_append(o, "\r\n", 2);
	for (i = 0; i < r->n_headers; i++) {
		const struct fg_http_header *h = &r->headers[i];

		if (!ieq(h->name, h->name_len, "upgrade") && px_hop_by_hop(r, h))
			continue;
		buf_append(o, h->name, h->name_len);
		buf_append(o, ": ", 2);
		buf_append(o, h->value, h->value_len);
		buf_append(o, "\r\n", 2);
	}
	buf_append(o, "Connection: upgrade\r\n\r\n", 23);
	return 0;
}

/* The upstream switched protocols (its head is the first n bytes of rin):
 * the tunnel starts. Returns -ENOSPC while out has no room for the head. */
int px_tunnel_start(struct conn *c, const struct fg_http_response *r, size_t n)
{
	struct px_worker *p = c->p;

	if (!c->rq_done) {
		/* A 101 before the request ended: the rest of it cannot be
		 * told from the new protocol's bytes. */
		px_bad_gateway(c, 502, "upstream switched protocols in the middle of the request");
		return 0;
	}
	c->hdr_mark = px_rec_queued(c);
	if (put_switch_head(c, r))
		return -ENOSPC;
	px_count_status(p, 101);
	px_rec_response(c, 101);
	c->resp_head_sent = true;
	buf_consume(&c->rin, n);
	c->state = C_TUNNEL;
	c->rs = R_BODY;
	c->tunnel_idle_ms = c->read_ms; /* the route's proxy-read-timeout, or the proxy's */
	c->up_eof = false;
	c->t_cl_shut = c->t_up_shut = false;
	/* Bytes the client sent after its request (pipelined frames) and
	 * those after the 101 head are the tunnel's first. */
	c->in.max = BODY_WINDOW > c->in.max ? BODY_WINDOW : c->in.max;
	c->rin.max = BODY_WINDOW;
	c->up->rd_ready = true;
	c->rd_ready = true;
	STAT_INC(p, tunnels);
	return 0;
}

static size_t tdir_pending(const struct tdir *d)
{
	return buf_used(d->b) + d->pp->len;
}

/* Writes what d holds to dst. Returns >0 when bytes went, 0 when dst is
 * full (or nothing was held), -errno. */
static int tdir_flush(struct tdir *d)
{
	int moved = 0;

	if (d->pp->len) {
		ssize_t n = fg_pipe_drain(d->pp, d->dst);

		if (n < 0 && n != -EAGAIN)
			return (int)n;
		if (n > 0)
			moved = 1;
		if (d->pp->len)
			return moved;
	}
	while (buf_used(d->b)) {
		ssize_t n = d->io_dst ? px_io_send(d->io_dst, d->dst, buf_data(d->b), buf_used(d->b)) :
			    send(d->dst, buf_data(d->b), buf_used(d->b), MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			buf_consume(d->b, n);
			moved = 1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return n < 0 ? -errno : -EPIPE;
	}
	return moved;
}

/* Reads from src into d (when d is empty for splice, has room for copy).
 * Returns >0 when bytes came, 0, -errno. */
static int tdir_fill(struct conn *c, struct tdir *d)
{
	if (d->io_src && px_io_pending(d->io_src))
		*d->src_ready = true; /* decrypted bytes wait in OpenSSL */
	if (!*d->src_ready || *d->src_eof)
		return 0;
	if (d->splice && !buf_used(d->b)) {
		ssize_t n;

		if (d->pp->rd < 0 && px_pipe_open(c, d->pp))
			d->splice = false; /* no descriptor: the buffer will do */
		if (d->splice) {
			if (d->pp->len)
				return 0;
			n = fg_pipe_fill(d->pp, d->src, 1 << 20);
			if (n > 0) {
				*d->count += n;
				STAT_ADD(c->p, spliced_bytes, n);
				return 1;
			}
			if (n == -EAGAIN) {
				*d->src_ready = false;
				STAT_ADD(c->p, empty_reads, 1);
				return 0;
			}
			if (n == 0) {
				*d->src_eof = true;
				return 1;
			}
			return (int)n;
		}
	}
	for (;;) {
		size_t room = buf_room(d->b, BODY_WINDOW);
		ssize_t n;

		if (!room)
			return 0;
		n = d->io_src ? px_io_recv(d->io_src, d->src, d->b->d + d->b->len, room) :
				recv(d->src, d->b->d + d->b->len, room, 0);
		if (n > 0) {
			d->b->len += n;
			*d->count += n;
			if ((size_t)n < room && !d->io_src)
				*d->src_ready = false;
			return 1;
		}
		if (n == 0) {
			*d->src_eof = true;
			return 1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			*d->src_ready = false;
			STAT_ADD(c->p, empty_reads, 1);
			return 0;
		}
		return -errno;
	}
}

/* Moves what can move in one direction. Returns true on progress; on an
 * error the tunnel is closed (c->dead). */
static bool tdir_step(struct conn *c, struct tdir *d)
{
	bool moved = false;
	int r, guard;

	for (guard = 0; guard < 16; guard++) {
		r = tdir_flush(d);
		if (r < 0)
			goto fail;
		moved |= r > 0;
		if (tdir_pending(d))
			break; /* dst is full: EPOLLOUT */
		if (*d->src_eof) {
			if (!*d->dst_shut) {
				if (d->io_dst)
					px_io_close_notify(d->io_dst);
				shutdown(d->dst, SHUT_WR);
				*d->dst_shut = true;
				moved = true;
			}
			break;
		}
		r = tdir_fill(c, d);
		if (r < 0)
			goto fail;
		if (!r)
			break;
		moved = true;
	}
	return moved;
fail:
	pr_debug("proxy: %s: tunnel closed: %s\n", c->ip, strerror(-r));
	px_tunnel_end(c, FG_REQ_ABORTED);
	return false;
}

static void dirs(struct conn *c, struct tdir *to_up, struct tdir *to_cl)
{
	struct upstream *u = c->up;
	bool splice = px_splicing(c);

	*to_up = (struct tdir){ .src = c->fd, .dst = u->fd, .src_ready = &c->rd_ready,
				.src_eof = &c->eof, .dst_shut = &c->t_up_shut, .b = &c->in,
				.pp = &c->qp, .splice = splice && !c->tls.ssl && !u->tls.ssl,
				.count = &c->rx, .io_src = c->tls.ssl ? &c->tls : NULL,
				.io_dst = u->tls.ssl ? &u->tls : NULL };
	/* The verdict program's socket is read from its queue (recv). */
	*to_cl = (struct tdir){ .src = u->fd, .dst = c->fd, .src_ready = &u->rd_ready,
				.src_eof = &c->up_eof, .dst_shut = &c->t_cl_shut, .b = &c->rin,
				.pp = &c->rp,
				.splice = splice && !u->sk_cookie && !u->tls.ssl && (!c->tls.ssl || c->ktls_tx),
				.count = &c->tx, .io_src = u->tls.ssl ? &u->tls : NULL,
				.io_dst = c->tls.ssl && !c->ktls_tx ? &c->tls : NULL };
}

/* One pass both ways. Returns true on progress. */
bool px_tunnel_step(struct conn *c)
{
	struct tdir to_up, to_cl;
	bool moved;

	if (!c->up || c->up->fd < 0) {
		px_tunnel_end(c, FG_REQ_ABORTED);
		return false;
	}
	dirs(c, &to_up, &to_cl);
	moved = tdir_step(c, &to_up);
	if (c->dead)
		return false;
	/* The 101 head goes first (client_flush). */
	if (!buf_used(&c->out)) {
		moved |= tdir_step(c, &to_cl);
		if (c->dead)
			return false;
	}
	if (moved)
		c->activity = c->up_activity = now_ms();
	if (c->t_up_shut && c->t_cl_shut) {
		px_tunnel_end(c, FG_REQ_DONE);
		return false;
	}
	return moved;
}

/* Interest sets of both sockets. */
void px_tunnel_events(struct conn *c)
{
	struct upstream *u = c->up;
	struct tdir to_up, to_cl;
	unsigned cw = 0, uw = 0;

	if (!u || u->fd < 0)
		return;
	dirs(c, &to_up, &to_cl);
	if (!c->eof && !tdir_pending(&to_up))
		cw |= EPOLLIN;
	if (tdir_pending(&to_cl) || buf_used(&c->out))
		cw |= EPOLLOUT;
	if (!c->up_eof && !tdir_pending(&to_cl) && !buf_used(&c->out))
		uw |= EPOLLIN;
	if (tdir_pending(&to_up))
		uw |= EPOLLOUT;
	ep_set(c->p, c->fd, &c->tag, &c->events, cw);
	ep_set(c->p, u->fd, &u->tag, &u->events, uw);
}

/* The tunnel is over: its record ends (status 101, bytes both ways) and
 * both connections close. */
void px_tunnel_end(struct conn *c, enum fg_request_end end)
{
	if (c->dead)
		return;
	if (c->rec_open)
		px_rec_end(c, 101, end, -1);
	px_conn_close(c);
}

void px_tunnel_check(struct conn *c, __u64 now)
{
	if (now - c->activity >= c->tunnel_idle_ms && now - c->up_activity >= c->tunnel_idle_ms) {
		pr_debug("proxy: %s: tunnel idle for %u ms: closed\n", c->ip, c->tunnel_idle_ms);
		STAT_INC(c->p, timeouts);
		px_tunnel_end(c, FG_REQ_DONE);
	}
}
