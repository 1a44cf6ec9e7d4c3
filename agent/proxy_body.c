// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Moving bytes between the client and the upstream: buffers, framing,
 * splice(2) pipes and sockmap windows (docs/architecture.md "L7 data path").
 */
#include "proxy_int.h"

/* Bytes the client has yet to get from us: out, and what the response
 * pipe holds (sent before out, which was empty when it was filled). */
size_t px_out_pending(const struct conn *c)
{
	return buf_used(&c->out) + c->rp.len + (c->sm_barrier || c->win);
}

/* What client_flush can write now (EPOLLOUT interest). */
size_t px_out_writable(const struct conn *c)
{
	return c->sm_barrier || c->win ? 0 : buf_used(&c->out) + c->rp.len;
}

bool px_splicing(const struct conn *c)
{
	return c->p->mode != FG_L7_COPY && !c->no_splice;
}

/* The response body's next bytes can skip the buffers. */
bool px_resp_spliceable(const struct conn *c)
{
	/* An upstream socket with the verdict program is read by recv()
	 * (the psock queue), never spliced from. */
	return px_splicing(c) && (!c->tls.ssl || c->ktls_tx) && !(c->up && c->up->sk_cookie) &&
	       !(c->up && c->up->tls.ssl) &&
	       c->rs == R_BODY && !buf_used(&c->rin) &&
	       fg_http_framer_opaque(&c->rsf) >= SPLICE_MIN;
}

/* The request body's next bytes can skip the buffers: it is no longer
 * kept for a retry, and everything before them went. */
bool px_req_spliceable(const struct conn *c)
{
	return px_splicing(c) && !c->tls.ssl && c->state == C_PROXY && !c->rq_done && !c->rq_abandoned &&
	       !c->replayable && !buf_used(&c->in) && c->upo_sent == c->upo.len && c->up &&
	       c->up->fd >= 0 && !c->up->connecting && !c->up->tls.ssl && fg_http_framer_opaque(&c->rqf) >= SPLICE_MIN;
}

int px_client_read(struct conn *c)
{
	if (px_req_spliceable(c))
		return 0; /* splice_request takes them */
	for (;;) {
		size_t room = buf_room(&c->in, c->in.max);
		ssize_t n;

		if (!room)
			return 0;
		n = px_cl_recv(c, c->in.d + c->in.len, room);
		if (n > 0) {
			c->in.len += n;
			c->rx += n;
			c->activity = c->last_rx = now_ms();
			/* OpenSSL returns a record at a time: only EAGAIN says
			 * it has nothing more. */
			if ((size_t)n < room && !c->tls.ssl) {
				c->rd_ready = false; /* drained: epoll tells when more comes */
				return 0;
			}
			continue;
		}
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->rd_ready = false;
			STAT_ADD(c->p, empty_reads, 1);
			return 0;
		}
		return -errno;
	}
}

int px_client_flush(struct conn *c)
{
	if (c->win || !px_sm_barrier_passed(c))
		return 0; /* the kernel's bytes first */
	if (c->rp.len) {
		ssize_t n = fg_pipe_drain(&c->rp, c->fd);

		if (n < 0)
			return (int)n;
		if (n > 0)
			c->activity = now_ms();
		if (c->rp.len)
			return 0;
	}
	while (buf_used(&c->out)) {
		ssize_t n = px_cl_send(c, buf_data(&c->out), buf_used(&c->out));

		if (n > 0) {
			buf_consume(&c->out, n);
			c->tx += n;
			c->activity = now_ms();
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return n < 0 ? -errno : -EPIPE;
	}
	/* Idle and empty: give the memory back. */
	if (c->state == C_HEAD && c->out.cap > 4096)
		buf_free(&c->out);
	return 0;
}

/* Sends upo to the upstream; returns >0 when bytes went, 0, or -errno. */
int px_up_flush(struct conn *c)
{
	struct upstream *u = c->up;
	int moved = 0;

	if (u && u->fd >= 0 && !u->connecting && c->qp.len) {
		ssize_t n = fg_pipe_drain(&c->qp, u->fd);

		if (n < 0)
			return (int)n;
		if (n > 0) {
			c->up_activity = now_ms();
			c->req_sent = true;
			moved = 1;
		}
		if (c->qp.len)
			return moved;
	}
	if (u && u->fd >= 0 && !u->connecting && !u->sk_tried)
		px_sm_join(u);
	while (u && u->fd >= 0 && !u->connecting && c->upo_sent < c->upo.len) {
		ssize_t n = px_io_send(&u->tls, u->fd, c->upo.d + c->upo_sent,
				       c->upo.len - c->upo_sent);

		if (n > 0) {
			c->upo_sent += n;
			c->up_activity = now_ms();
			c->req_sent = true;
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

/* How much body is staged at a time for c's response. */
static size_t body_window(const struct conn *c)
{
	return c->tls.ssl && !c->ktls_tx ? TLS_BODY_WINDOW : BODY_WINDOW;
}

size_t px_rin_limit(const struct conn *c)
{
	if (c->win)
		return 0; /* the kernel has the upstream's bytes */
	if (c->rs == R_HEAD)
		return FG_HTTP_RESP_MAX_HEAD;
	if (c->rs == R_BODY && px_resp_spliceable(c))
		return 0; /* splice_response takes them */
	return c->rs == R_BODY ? body_window(c) : 0;
}

void px_up_read(struct conn *c)
{
	struct upstream *u = c->up;

	if (u && px_io_pending(&u->tls))
		u->rd_ready = true; /* decrypted bytes epoll cannot see */
	while (u && u->fd >= 0 && !u->connecting && !c->up_eof && u->rd_ready) {
		size_t room = buf_room(&c->rin, px_rin_limit(c));
		ssize_t n;

		if (!room)
			return;
		n = px_io_recv(&u->tls, u->fd, c->rin.d + c->rin.len, room);
		if (n > 0 && u->sk_cookie && fg_sockmap_broken(c->p->sm, u->sk_cookie)) {
			/* The verdict program met repeated TCP bytes it could
			 * not cut: these may hold them. End the exchange. */
			pr_warn("proxy: %s: sockmap: repeated upstream bytes not removed: "
				"closing the upstream\n", c->ip);
			n = -1;
			errno = EPROTO;
		}
		if (n > 0) {
			c->rin.len += n;
			u->sk_read += n;
			c->resp_bytes = true;
			c->up_activity = now_ms();
			if ((size_t)n < room && !u->tls.ssl) {
				u->rd_ready = false;
				return;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			u->rd_ready = false;
			STAT_ADD(c->p, empty_reads, 1);
			return;
		}
		c->up_eof = true;
		c->up_errno = n < 0 ? errno : 0;
		/* Nothing more will come: stop watching it now. */
		px_up_close_fd(u);
	}
}

/* Room in upo for body bytes; drops replayability when the body outgrows
 * what a retry may resend. */
size_t px_upo_room(struct conn *c)
{
	size_t room;

	if (c->replayable) {
		/* upo.off stays 0 while replayable */
		if (c->upo.len < c->upo_limit)
			return buf_room(&c->upo, c->upo_limit);
		if (c->upo_sent < c->upo.len)
			return 0;
		c->replayable = false;
	}
	/* Not replayable: what was sent can go (upo.off follows upo_sent). */
	if (c->upo_sent > c->upo.off)
		buf_consume(&c->upo, c->upo_sent - c->upo.off);
	room = buf_room(&c->upo, BODY_WINDOW); /* may compact */
	c->upo_sent = c->upo.off;
	return room;
}

/* Request body: in -> upo, by the request framer. Returns true on progress. */
bool px_pump_request(struct conn *c)
{
	bool moved = false;

	while (!c->rq_done && !c->rq_abandoned && buf_used(&c->in)) {
		size_t room = px_upo_room(c), avail = buf_used(&c->in), k, out_len;
		unsigned long long opaque;

		if (!room)
			break;
		if (avail > room)
			avail = room;
		opaque = fg_http_framer_opaque(&c->rqf);
		if (opaque) {
			k = avail < opaque ? avail : (size_t)opaque;
			fg_http_framer_skip(&c->rqf, k);
			memcpy(c->upo.d + c->upo.len, buf_data(&c->in), k);
			out_len = k;
		} else {
			bool done;
			long r;

			/* Framing bytes: the trailer fields a sender may not
			 * set there (Content-Length, Host, ...) are dropped. */
			if (room <= FG_HTTP_FRAMER_OUT_SLACK)
				break;
			if (avail > room - FG_HTTP_FRAMER_OUT_SLACK)
				avail = room - FG_HTTP_FRAMER_OUT_SLACK;
			r = fg_http_framer_feed_out(&c->rqf, buf_data(&c->in), avail,
						    c->upo.d + c->upo.len, &out_len, &done);
			if (r < 0) {
				px_bad_gateway(c, 400, "malformed chunked request body");
				return true;
			}
			k = r;
			if (px_rules_body_over(c))
				return true; /* a chunk took it past proxy-body-size */
		}
		c->upo.len += out_len;
		buf_consume(&c->in, k);
		c->rq_done = fg_http_framer_done(&c->rqf);
		if (!k)
			break;
		moved = true;
	}
	return moved;
}

bool px_conn_lists(const struct fg_http_response *resp, const char *name, size_t nlen)
{
	unsigned i;

	for (i = 0; i < resp->n_headers; i++) {
		const struct fg_http_header *h = &resp->headers[i];
		size_t pos = 0;

		if (!ieq(h->name, h->name_len, "connection"))
			continue;
		while (pos < h->value_len) {
			size_t st, en;

			while (pos < h->value_len && (h->value[pos] == ',' || h->value[pos] == ' ' ||
						      h->value[pos] == '\t'))
				pos++;
			st = pos;
			while (pos < h->value_len && h->value[pos] != ',')
				pos++;
			en = pos;
			while (en > st && (h->value[en - 1] == ' ' || h->value[en - 1] == '\t'))
				en--;
			if (en - st == nlen && !strncasecmp(h->value + st, name, nlen))
				return true;
		}
	}
	return false;
}

bool px_hop_by_hop(const struct fg_http_response *resp, const struct fg_http_header *h)
{
	return ieq(h->name, h->name_len, "connection") || ieq(h->name, h->name_len, "keep-alive") ||
	       ieq(h->name, h->name_len, "proxy-connection") ||
	       ieq(h->name, h->name_len, "upgrade") ||
	       (!ieq(h->name, h->name_len, "transfer-encoding") &&
		!ieq(h->name, h->name_len, "content-length") &&
		px_conn_lists(resp, h->name, h->name_len));
}

/* The response head for the client, from p->resp. */
int px_put_response_head(struct conn *c, const struct fg_http_response *r)
{
	struct buf *o = &c->out;
	size_t need = 64 + r->reason_len + 64;
	/* An HTTP/1.0 client gets a chunked body de-chunked, until close. */
	bool dechunk = !r->interim && r->body == FG_BODY_CHUNKED && c->version_minor == 0;
	char line[64], extra[4096];
	size_t elen = r->interim ? 0 : px_rules_response_fields(c, extra, sizeof(extra));
	unsigned i;
	int n;

	need += elen;
	for (i = 0; i < r->n_headers; i++)
		need += r->headers[i].name_len + r->headers[i].value_len + 4;
	if (buf_room(o, buf_used(o) + need) < need)
		return -ENOSPC;
	n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", r->status);
	buf_append(o, line, n);
	buf_append(o, r->reason, r->reason_len);
	buf_append(o, "\r\n", 2);
	for (i = 0; i < r->n_headers; i++) {
		const struct fg_http_header *h = &r->headers[i];

		if (px_hop_by_hop(r, h))
			continue;
		if (dechunk && (ieq(h->name, h->name_len, "transfer-encoding") ||
				ieq(h->name, h->name_len, "trailer")))
			continue;
		buf_append(o, h->name, h->name_len);
		buf_append(o, ": ", 2);
		buf_append(o, h->value, h->value_len);
		buf_append(o, "\r\n", 2);
	}
	buf_append(o, extra, elen); /* the session cookie */
	if (!r->interim) {
		if (c->close_after)
			buf_append(o, "Connection: close\r\n", 19);
		else if (c->version_minor == 0)
			buf_append(o, "Connection: keep-alive\r\n", 24);
	}
	buf_append(o, "\r\n", 2);
	return 0;
}

/* Response: rin -> out. Returns true on progress. */
bool px_pump_response(struct conn *c)
{
	struct px_worker *p = c->p;
	struct fg_http_response *r = &p->resp;
	bool moved = false;

	while (c->rs == R_HEAD) {
		size_t used = buf_used(&c->rin);
		const char *why = NULL;
		int n;

		if (!used) {
			if (c->up_eof)
				px_upstream_failed(c, F_NO_RESPONSE, c->up_errno,
						c->up_errno ? "reset before responding"
							    : "closed before responding");
			return moved;
		}
		n = fg_http_parse_response(buf_data(&c->rin), used, c->is_head_req, r, &why);
		if (n == 0) {
			if (used >= FG_HTTP_RESP_MAX_HEAD)
				px_bad_gateway(c, 502, "upstream response head too large");
			else if (c->up_eof)
				px_bad_gateway(c, 502, "upstream closed in the middle of its response head");
			return true;
		}
		if (n < 0) {
			char msg[200];

			snprintf(msg, sizeof(msg), "sent an invalid response: %s",
				 why ? why : "malformed");
			px_upstream_failed(c, F_INVALID_HEADER, 0, msg);
			return true;
		}
		if (r->interim) {
			if (r->status == 101) {
				if (!c->upgrade[0]) {
					px_bad_gateway(c, 502, "upstream switched protocols unasked");
					return true;
				}
				if (px_tunnel_start(c, r, n))
					return moved; /* wait for the client to drain out */
				return true;
			}
			/* 100 Continue and friends go to HTTP/1.1 clients. */
			if (c->version_minor >= 1 && px_put_response_head(c, r))
				return moved; /* wait for the client to drain out */
			buf_consume(&c->rin, n);
			moved = true;
			continue;
		}
		if (px_status_retry(c, r->status)) {
			char msg[64];

			snprintf(msg, sizeof(msg), "answered %d", r->status);
			px_upstream_failed(c, F_STATUS, 0, msg);
			return true;
		}
		/* A response before the whole request went: no reuse, and
		 * the rest of the request cannot be told from a next one. */
		if (!c->rq_done || r->body == FG_BODY_CLOSE ||
		    (r->body == FG_BODY_CHUNKED && c->version_minor == 0))
			c->close_after = true;
		c->hdr_mark = px_rec_queued(c);
		if (px_put_response_head(c, r))
			return moved;
		px_count_status(p, r->status);
		px_rec_response(c, r->status);
		c->resp_head_sent = true;
		c->resp_ka = r->keep_alive && r->body != FG_BODY_CLOSE;
		fg_http_framer_init_response(&c->rsf, r);
		/* RFC 9112 §6.1: no chunked coding to an HTTP/1.0 client. */
		if (r->body == FG_BODY_CHUNKED && c->version_minor == 0)
			fg_http_framer_set_filter(&c->rsf, FG_FRAMER_DECHUNK);
		buf_consume(&c->rin, n);
		c->rs = fg_http_framer_done(&c->rsf) ? R_DONE : R_BODY;
		moved = true;
	}
	while (c->rs == R_BODY && buf_used(&c->rin)) {
		size_t room = buf_room(&c->out, body_window(c)), avail = buf_used(&c->rin), k, out_len;
		unsigned long long opaque;

		if (!room)
			break;
		if (avail > room)
			avail = room;
		opaque = fg_http_framer_opaque(&c->rsf);
		if (opaque) {
			k = avail < opaque ? avail : (size_t)opaque;
			fg_http_framer_skip(&c->rsf, k);
			memcpy(c->out.d + c->out.len, buf_data(&c->rin), k);
			out_len = k;
		} else {
			bool done;
			long n;

			/* Framing bytes; for an HTTP/1.0 client only the chunk
			 * data goes on (a close-delimited body). */
			if (room <= FG_HTTP_FRAMER_OUT_SLACK)
				break;
			if (avail > room - FG_HTTP_FRAMER_OUT_SLACK)
				avail = room - FG_HTTP_FRAMER_OUT_SLACK;
			n = fg_http_framer_feed_out(&c->rsf, buf_data(&c->rin), avail,
						    c->out.d + c->out.len, &out_len, &done);
			if (n < 0) {
				px_abort_mid_response(c, "malformed chunked response body");
				return true;
			}
			k = n;
		}
		c->out.len += out_len;
		buf_consume(&c->rin, k);
		moved = true;
		if (fg_http_framer_done(&c->rsf))
			c->rs = R_DONE;
		else if (!k)
			break;
	}
	if (c->rs == R_BODY && !buf_used(&c->rin) && c->up_eof) {
		if (c->rsf.body == FG_BODY_CLOSE) {
			c->rs = R_DONE;
			c->close_after = true;
		} else {
			px_abort_mid_response(c, "upstream closed mid-body");
		}
		return true;
	}
	return moved;
}

/* splice mode: response body bytes upstream -> pipe -> client. Returns true
 * on progress. */
bool px_splice_response(struct conn *c)
{
	struct upstream *u = c->up;
	bool moved = false;

	while (u && u->fd >= 0 && !u->connecting && !c->up_eof && u->rd_ready &&
	       px_resp_spliceable(c) && !buf_used(&c->out)) {
		unsigned long long opaque = fg_http_framer_opaque(&c->rsf);
		ssize_t n;

		if (c->rp.len) {
			n = fg_pipe_drain(&c->rp, c->fd);
			if (n > 0)
				c->activity = now_ms();
			if (n < 0 || c->rp.len)
				break; /* client_flush reports the error */
		}
		if (c->rp.rd < 0 && px_pipe_open(c, &c->rp)) {
			c->no_splice = true;
			break;
		}
		n = fg_pipe_fill(&c->rp, u->fd, opaque > (1ULL << 30) ? (1UL << 30) : (size_t)opaque);
		if (n == -EAGAIN) {
			u->rd_ready = false;
			STAT_ADD(c->p, empty_reads, 1);
			break;
		}
		if (n <= 0) {
			c->up_eof = true;
			c->up_errno = n < 0 ? (int)-n : 0;
			px_up_close_fd(u);
			moved = true;
			break;
		}
		fg_http_framer_skip(&c->rsf, n);
		STAT_ADD(c->p, spliced_bytes, n);
		c->tx += n;
		c->resp_bytes = true;
		c->up_activity = now_ms();
		moved = true;
		if (fg_http_framer_done(&c->rsf))
			c->rs = R_DONE;
		n = fg_pipe_drain(&c->rp, c->fd);
		if (n > 0)
			c->activity = now_ms();
	}
	return moved;
}

/* splice mode: request body bytes client -> pipe -> upstream. */
bool px_splice_request(struct conn *c)
{
	bool moved = false;

	while (c->rd_ready && px_req_spliceable(c) && !c->qp.len) {
		unsigned long long opaque = fg_http_framer_opaque(&c->rqf);
		ssize_t n;

		if (c->qp.rd < 0 && px_pipe_open(c, &c->qp)) {
			c->no_splice = true;
			break;
		}
		n = fg_pipe_fill(&c->qp, c->fd, opaque > (1ULL << 30) ? (1UL << 30) : (size_t)opaque);
		if (n == -EAGAIN) {
			c->rd_ready = false;
			STAT_ADD(c->p, empty_reads, 1);
			break;
		}
		if (n <= 0) {
			c->eof = true;
			moved = true;
			break;
		}
		fg_http_framer_skip(&c->rqf, n);
		STAT_ADD(c->p, spliced_bytes, n);
		c->rx += n;
		c->activity = c->last_rx = now_ms();
		c->rq_done = fg_http_framer_done(&c->rqf);
		moved = true;
		n = fg_pipe_drain(&c->qp, c->up->fd);
		if (n > 0) {
			c->up_activity = now_ms();
			c->req_sent = true;
		}
		if (n < 0)
			break; /* up_flush reports it */
	}
	return moved;
}

/* ---------- sockmap mode: response bodies by kernel windows ----------
 *
 * docs/architecture.md "L7 data path". The rules:
 *  - a window opens only when the agent has read everything the program
 *    passed on the upstream (its position is the program's), nothing the
 *    agent wrote to the client is still in `out`, and covers exactly the
 *    opaque bytes left (Content-Length rest, or the current chunk's data);
 *  - while it is open the agent neither reads the upstream nor writes the
 *    client;
 *  - it ends when the program says so (closed), or is withdrawn
 *    (fg_sockmap_withdraw) when its fate is unknown: the upstream is
 *    readable before the program adopted it, or closed;
 *  - after it the client gets nothing from the agent until its TCP stream
 *    holds what the kernel redirected (the barrier). */

void px_sm_arm(struct px_worker *p)
{
	struct itimerspec its = { .it_interval = { 0, SM_TICK_NS }, .it_value = { 0, SM_TICK_NS } };

	if (p->tfd >= 0 && !p->tarmed && !timerfd_settime(p->tfd, 0, &its, NULL))
		p->tarmed = true;
}

/* The kernel moved k more bytes of the response to the client. */
void px_sm_account(struct conn *c, __u64 total_redirected)
{
	struct upstream *u = c->up;
	__u64 k = total_redirected - u->sk_kseen;

	if (!k)
		return;
	u->sk_kseen = total_redirected;
	fg_http_framer_skip(&c->rsf, k);
	STAT_ADD(c->p, kernel_bytes, k);
	STAT_ADD(c->p, spliced_bytes, k);
	c->tx += k;
	c->sm_target += k;
	c->sm_barrier = true;
	c->resp_bytes = true;
	c->up_activity = c->activity = now_ms();
	/* R_DONE only once the window is over (sm_window_end). */
	if (!c->win && fg_http_framer_done(&c->rsf))
		c->rs = R_DONE;
}

void px_sm_window_end(struct conn *c, bool withdraw)
{
	struct upstream *u = c->up;
	struct fg_sk_state st;
	int err;

	c->win = false;
	if (!u || !u->sk_cookie)
		return;
	if (withdraw)
		err = fg_sockmap_withdraw(c->p->sm, u->sk_cookie, u->fd, &st);
	else
		err = fg_sockmap_state(c->p->sm, u->sk_cookie, &st);
	if (err) {
		/* Cannot know what the kernel moved: this exchange cannot go
		 * on correctly. */
		pr_warn("proxy: %s: sockmap window state: %s\n", c->ip, strerror(-err));
		fg_sockmap_forget(c->p->sm, u->sk_cookie);
		u->sk_cookie = 0;
		c->close_after = true;
		c->up_eof = true;
		c->up_errno = -err;
		px_up_close_fd(u);
		return;
	}
	px_sm_account(c, st.total_redirected);
	if (!withdraw)
		fg_sockmap_withdraw(c->p->sm, u->sk_cookie, u->fd, &st); /* tidy: no entry left */
	if (c->rs == R_BODY && fg_http_framer_done(&c->rsf))
		c->rs = R_DONE;
}

/* The client's stream holds what the kernel redirected to it. */
bool px_sm_barrier_passed(struct conn *c)
{
	__u64 w;

	if (!c->sm_barrier)
		return true;
	if (fg_tcp_written(c->fd, &w))
		return false;
	if (w < c->sm_target)
		return false;
	c->sm_barrier = false;
	return true;
}

/* Puts the upstream into the verdict map before it carries a byte. */
void px_sm_join(struct upstream *u)
{
	struct px_worker *p = u->p;
	int err;

	if (!p->sm || u->sk_tried || u->connecting || u->fd < 0 || u->tls.ssl)
		return;
	u->sk_tried = true;
	err = fg_sockmap_add(p->sm, u->fd, &u->sk_cookie);
	if (err) {
		pr_debug("proxy: cannot add an upstream socket to the sockhash: %s\n",
			 strerror(-err));
		u->sk_cookie = 0;
	}
}

/* Checks the open window, or opens one. Returns true on progress. */
bool px_sockmap_response(struct conn *c)
{
	struct upstream *u = c->up;
	struct px_worker *p = c->p;
	struct fg_sk_state st;
	unsigned long long opaque;
	int err;

	if (!p->sm || !c->sk_cookie || !u || !u->sk_cookie || u->fd < 0 || u->connecting)
		return false;
	if (c->win) {
		struct pollfd pfd = { .fd = u->fd, .events = POLLIN | POLLRDHUP };
		__u64 before = u->sk_kseen;

		err = fg_sockmap_state(p->sm, u->sk_cookie, &st);
		if (err == -EAGAIN)
			return false;
		if (err || (st.gen == c->win_gen && st.closed)) {
			px_sm_window_end(c, false);
			return true;
		}
		if (st.gen == c->win_gen) {
			px_sm_account(c, st.total_redirected); /* progress */
			if (fg_http_framer_done(&c->rsf)) {
				/* All of it, `closed` not visible yet. */
				px_sm_window_end(c, true);
				return true;
			}
		}
		if (poll(&pfd, 1, 0) > 0 &&
		    ((pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) || st.gen != c->win_gen)) {
			/* Closed, or readable before the program adopted
			 * the window (a byte passed before it, or one the
			 * program is about to see): withdraw it. */
			px_sm_window_end(c, true);
			return true;
		}
		return u->sk_kseen != before;
	}
	if (c->rs != R_BODY || c->rsf.body == FG_BODY_CLOSE || buf_used(&c->rin) ||
	    buf_used(&c->out) || c->rp.len || c->up_eof)
		return false;
	opaque = fg_http_framer_opaque(&c->rsf);
	if (opaque < SPLICE_MIN)
		return false;
	/* Only where the agent is: everything passed has been read. */
	err = fg_sockmap_state(p->sm, u->sk_cookie, &st);
	if (err || st.passed + st.total_redirected != u->sk_read + u->sk_kseen)
		return false;
	if (!c->sm_barrier && fg_tcp_written(c->fd, &c->sm_target))
		return false;
	c->win_gen = ++u->sk_gen;
	err = fg_sockmap_window(p->sm, u->sk_cookie, c->win_gen, u->sk_read + u->sk_kseen, opaque,
				c->sk_cookie);
	if (err)
		return false;
	c->win = true;
	STAT_ADD(p, windows, 1);
	px_sm_arm(p);
	return true;
}
