// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Client connections on a TLS listener (--listen-tls): the handshake
 * inside the event loop (state C_TLS), then every client read and write
 * through OpenSSL (px_cl_recv / px_cl_send, which behave like recv/send:
 * -1 with errno EAGAIN when OpenSSL wants the socket). Body bytes toward
 * such a client go through the buffers (OpenSSL encrypts them), unless the
 * kernel holds the session's transmit keys (kTLS): then splice(2) writes
 * plaintext into the socket and the kernel encrypts. Request bodies always
 * go through OpenSSL.
 *
 * OpenSSL may hold decrypted bytes the socket no longer shows as readable
 * (SSL_has_pending): they are read before waiting on epoll again. A read
 * may need a write (a TLS 1.3 key update) and a write a read: the interest
 * set follows what OpenSSL asked for.
 */
#include <openssl/err.h>

#include "proxy_int.h"

/* The error of the last SSL call with result ret, as recv/send report
 * theirs; a close_notify reads as EOF (0). */
static ssize_t ssl_result(struct px_sslio *io, int ret, bool reading)
{
	int e = SSL_get_error(io->ssl, ret);
	unsigned long ec;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		if (!reading)
			io->wr_wants_read = true;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		if (reading)
			io->rd_wants_write = true;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		/* EOF without close_notify: a truncation, reported as a
		 * reset (what came cannot be trusted as whole). */
		if (!errno)
			errno = reading ? ECONNRESET : EPIPE;
		ERR_clear_error();
		return -1;
	default:
		ec = ERR_peek_last_error();
		pr_debug("proxy: TLS: %s\n", ec ? ERR_reason_error_string(ec) : "error");
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

ssize_t px_io_recv(struct px_sslio *io, int fd, void *buf, size_t len)
{
	size_t got = 0;
	int ret;

	if (!io->ssl)
		return recv(fd, buf, len, 0);
	io->rd_wants_write = false;
	ERR_clear_error();
	ret = SSL_read_ex(io->ssl, buf, len, &got);
	if (ret > 0)
		return (ssize_t)got;
	return ssl_result(io, ret, true);
}

ssize_t px_io_send(struct px_sslio *io, int fd, const void *buf, size_t len)
{
	size_t sent = 0;
	int ret;

	if (!io->ssl)
		return send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	io->wr_wants_read = false;
	ERR_clear_error();
	ret = SSL_write_ex(io->ssl, buf, len, &sent);
	if (ret > 0)
		return (ssize_t)sent;
	return ssl_result(io, ret, false);
}

/* Decrypted bytes wait inside OpenSSL. */
bool px_io_pending(const struct px_sslio *io)
{
	return io->ssl && SSL_has_pending(io->ssl);
}

/* What epoll should watch while a handshake runs. */
unsigned px_io_hs_events(const struct px_sslio *io)
{
	return io->hs_wants_write ? EPOLLOUT : EPOLLIN;
}

/* Sends close_notify (best effort: the socket is non-blocking and the
 * connection is going anyway). */
void px_io_close_notify(struct px_sslio *io)
{
	if (!io->ssl || io->shut || !SSL_is_init_finished(io->ssl))
		return;
	io->shut = true;
	ERR_clear_error();
	SSL_shutdown(io->ssl);
	ERR_clear_error();
}

void px_io_free(struct px_sslio *io)
{
	SSL_free(io->ssl);
	io->ssl = NULL;
}

ssize_t px_cl_recv(struct conn *c, void *buf, size_t len)
{
	return px_io_recv(&c->tls, c->fd, buf, len);
}

/* With kTLS transmit the kernel encrypts what send() writes. */
ssize_t px_cl_send(struct conn *c, const void *buf, size_t len)
{
	if (c->ktls_tx)
		return send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	return px_io_send(&c->tls, c->fd, buf, len);
}

bool px_cl_pending(const struct conn *c)
{
	return px_io_pending(&c->tls);
}

/* The metrics' reason for a failed handshake (SSL_get_error's e, the
 * first OpenSSL error). */
static enum px_tls_fail fail_reason(int e, unsigned long ec)
{
	int r = ERR_GET_REASON(ec);

	if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN || !ec)
		return PX_TLS_FAIL_CLOSED;
	if (r == SSL_R_UNSUPPORTED_PROTOCOL || r == SSL_R_WRONG_VERSION_NUMBER ||
	    r == SSL_R_NO_SHARED_CIPHER || r == SSL_R_VERSION_TOO_LOW)
		return PX_TLS_FAIL_VERSION;
	/* The peer's alerts are reasons SSL_AD_REASON_OFFSET + alert. */
	if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256)
		return PX_TLS_FAIL_ALERT;
	return PX_TLS_FAIL_PROTOCOL;
}

/* The handshake's next step. Returns true on progress (done, or failed
 * and closed). */
bool px_tls_step(struct conn *c)
{
	unsigned long ec;
	int ret, e;

	ERR_clear_error();
	ret = SSL_do_handshake(c->tls.ssl);
	if (ret == 1) {
		c->state = C_HEAD;
		c->rd_ready = true; /* the request may have come with the Finished */
		c->ktls_tx = px_tls_ktls_tx(c);
		px_tls_handshake_done(c);
		return true;
	}
	e = SSL_get_error(c->tls.ssl, ret);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->tls.hs_wants_write = e == SSL_ERROR_WANT_WRITE;
		return false;
	}
	ec = ERR_peek_last_error();
	px_tls_handshake_failed(c, fail_reason(e, ec),
				e == SSL_ERROR_SYSCALL && !ec ? "connection closed" :
				ec ? ERR_reason_error_string(ec) : "handshake failed");
	ERR_clear_error();
	px_conn_close(c);
	return true;
}

void px_tls_close_notify(struct conn *c)
{
	px_io_close_notify(&c->tls);
}

void px_tls_free(struct conn *c)
{
	px_io_free(&c->tls);
}

/* An HTTPS upstream's handshake, once its TCP connection is up. Returns 1
 * when done, 0 while it runs (hs_wants_write says which way), -2 when its
 * certificate failed verification, or -1, with the reason in why. */
int px_up_tls_step(struct upstream *u, char *why, size_t len)
{
	unsigned long ec;
	int ret, e;

	ERR_clear_error();
	ret = SSL_do_handshake(u->tls.ssl);
	if (ret == 1)
		return 1;
	e = SSL_get_error(u->tls.ssl, ret);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		u->tls.hs_wants_write = e == SSL_ERROR_WANT_WRITE;
		return 0;
	}
	ec = ERR_peek_last_error();
	if (e == SSL_ERROR_SSL && SSL_get_verify_result(u->tls.ssl) != X509_V_OK) {
		snprintf(why, len, "TLS handshake: certificate not verified (proxy-ssl-verify): %s",
			 X509_verify_cert_error_string(SSL_get_verify_result(u->tls.ssl)));
		ERR_clear_error();
		return -2;
	}
		snprintf(why, len, "TLS handshake: %s",
			 e == SSL_ERROR_SYSCALL && !ec ? "connection closed" :
			 ec ? ERR_reason_error_string(ec) : "failed");
	ERR_clear_error();
	return -1;
}

/* The kernel encrypts what is written to the socket (kTLS transmit). */
bool px_tls_ktls_tx(const struct conn *c)
{
#ifndef OPENSSL_NO_KTLS
	return c->tls.ssl && BIO_get_ktls_send(SSL_get_wbio(c->tls.ssl));
#else
	return false;
#endif
}

void px_tls_handshake_done(struct conn *c)
{
	struct px_worker *p = c->p;

	STAT_INC(p, tls_handshakes);
	if (c->ls_idx < FG_PROXY_MAX_LISTENERS)
		STAT_ADD(p, tls_hs[c->ls_idx][SSL_version(c->tls.ssl) == TLS1_3_VERSION], 1);
	if (SSL_session_reused(c->tls.ssl))
		STAT_INC(p, tls_resumed);
	if (c->ktls_tx)
		STAT_INC(p, tls_ktls);
	switch (SSL_version(c->tls.ssl)) {
	case TLS1_3_VERSION:
		STAT_INC(p, tls_v13);
		break;
	case TLS1_2_VERSION:
		STAT_INC(p, tls_v12);
		break;
	}
}

void px_tls_handshake_failed(struct conn *c, enum px_tls_fail reason, const char *why)
{
	struct px_worker *p = c->p;

	STAT_INC(p, tls_handshake_errors);
	if (c->ls_idx < FG_PROXY_MAX_LISTENERS && reason < PX_TLS_FAIL_N)
		STAT_ADD(p, tls_fail[c->ls_idx][reason], 1);
	pr_debug("proxy: %s: TLS handshake failed: %s\n", c->ip, why);
	/* The last reason, for fleetgatectl get proxy (one writer). */
	snprintf(p->tls_last_error, sizeof(p->tls_last_error), "%s: %s", c->ip, why);
}

/* backend-protocol HTTPS: the route's client context for this request and
 * the name sent (proxy-ssl-server-name) and checked (proxy-ssl-verify):
 * proxy-ssl-name, else the Host the endpoints get. Returns true when the
 * request was answered (502: the context could not be made). */
bool px_tls_upstream_take(struct conn *c, const struct px_routes *rt, const struct fg_route *route,
			  const struct fg_http_request *req)
{
	const struct fg_route_opts *o = route->opts;
	size_t i = (size_t)(route - rt->routes);
	char msg[FG_TLS_WHY_LEN + 64];

	SSL_CTX_free(c->up_ctx);
	c->up_ctx = NULL;
	if (!o || !o->backend_https || !rt->up_ctx || i >= rt->n_routes)
		return false;
	if (!rt->up_ctx[i] || !SSL_CTX_up_ref(rt->up_ctx[i])) {
		snprintf(msg, sizeof(msg), "cannot reach the endpoints over TLS: %s",
			 rt->up_err[i] ? rt->up_err[i] : "no client context");
		px_respond_error(c, 502, msg, true);
		return true;
	}
	c->up_ctx = rt->up_ctx[i];
	c->up_send_sni = o->proxy_ssl_server_name;
	if (o->proxy_ssl_name)
		snprintf(c->up_sni, sizeof(c->up_sni), "%s", o->proxy_ssl_name);
	else if (o->upstream_vhost)
		snprintf(c->up_sni, sizeof(c->up_sni), "%.*s", (int)strcspn(o->upstream_vhost, ":"),
			 o->upstream_vhost);
	else
		snprintf(c->up_sni, sizeof(c->up_sni), "%s", req->host_len ? req->host : "");
	return false;
}

/* A new upstream connection of an HTTPS route: its session, the handshake
 * to run once TCP is up (on_upstream). */
int px_up_tls_start(struct conn *c, struct upstream *u)
{
	u->tls.ssl = fg_tls_new_client_ssl(c->up_ctx, c->up_send_sni && c->up_sni[0] ? c->up_sni
										   : NULL,
					   c->up_sni[0] ? c->up_sni : NULL);
	if (!u->tls.ssl || !SSL_set_fd(u->tls.ssl, u->fd)) {
		px_io_free(&u->tls);
		return -ENOMEM;
	}
	SSL_set_connect_state(u->tls.ssl);
	if (!u->connecting) {
		/* TCP was up at once: the handshake starts with our write. */
		u->connecting = true;
		u->tcp_up = true;
		u->tls.hs_wants_write = true;
	}
	return 0;
}
