// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fg-bench-tls: a TLS load client for selftests/bench_tls.sh, with
 * OpenSSL 3. THREADS threads, one epoll loop each, keep CONCURRENCY
 * non-blocking connections in flight for SECONDS.
 *
 * -m handshake (default): each connection is a TCP connect, a full TLS
 *   handshake with a new SSL object and no session offered (so never a
 *   resumption: SSL_session_reused is checked on every one and counted),
 *   one "GET PATH" with "Connection: close", its response read to the end
 *   and on to the server's close (so the server closes first and keeps the
 *   TIME_WAIT), then close(2). The slot opens a new connection at once.
 *   Session tickets the server sends are read and thrown away (counted).
 * -m get: each connection does one handshake, then "GET PATH" again and
 *   again with keep-alive; the response bodies' bytes received within the
 *   SECONDS are the throughput.
 *
 * The client does the least a TLS 1.3 client must: no chain verification
 * (SSL_VERIFY_NONE: the CertificateVerify signature is still checked), no
 * session cache, ALPN http/1.1. The key exchange is OpenSSL's default
 * (X25519 first) unless -g says otherwise. The TLS 1.3 suites offered are
 * those of -S, by default in a browser's order: AES-128-GCM, AES-256-GCM,
 * ChaCha20-Poly1305 (OpenSSL's own default puts AES-256-GCM first, so a
 * server that follows the client's order and one that follows its own
 * would encrypt differently).
 *
 *   fg-bench-tls [-m handshake|get] [-t SECONDS] [-c CONCURRENCY]
 *                [-T THREADS] [-s SNI] [-H HOST] [-p PATH] [-v 1.2|1.3]
 *                [-g GROUPS] [-S SUITES] [-o TIMEOUT_MS] ADDR PORT
 *
 * Prints one line:
 *   tls: mode M handshakes N resumed N tickets N responses N bytes N
 *        errors_connect N errors_handshake N errors_http N timeouts N
 *        duration_us N hs_p50_us N hs_p99_us N version V cipher C group G
 *        cert_key K cert_sha256 H
 * handshakes: completed; responses: complete 200 responses; bytes: body
 * bytes received; errors_connect: socket/connect failed or refused;
 * errors_handshake: the handshake failed; errors_http: no or a bad
 * response (a status other than 200, a malformed header, chunked, a body
 * cut short); timeouts: a connection that made no progress for TIMEOUT_MS
 * (default 5000). Connections still in flight at the end count in none.
 * hs_p50/p99: from connect(2) to the end of the handshake. version,
 * cipher, group, the certificate's key (e.g. EC-prime256v1) and the first
 * 8 bytes of its SHA-256 come from the first handshake of thread 0.
 * The exit status is 0 when at least one handshake completed.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define MAX_CONC 8192
#define MAX_SAMPLES (1 << 20)
#define HDR_MAX 8192
#define RBUF_SIZE (64 * 1024)

enum mode { MODE_HANDSHAKE, MODE_GET };
enum state { ST_CONNECT, ST_HANDSHAKE, ST_WRITE, ST_HEADER, ST_BODY, ST_DRAIN };

struct slot {
	int fd;
	enum state state;
	SSL *ssl;
	long long t_open;	/* connect(2) */
	long long t_io;		/* last progress */
	size_t req_off;		/* request bytes written */
	size_t hdr_len;
	long long body_left;	/* -1: up to the close */
	char hdr[HDR_MAX];
};

struct worker {
	pthread_t th;
	int idx;
	int conc;
	int ep;
	int err;		/* setup failure, negative errno */
	struct slot *slots;
	unsigned long hs, resumed, tickets, responses, e_conn, e_hs, e_http, timeouts;
	unsigned long long bytes;
	unsigned *lat_us;	/* handshake latencies, the first MAX_SAMPLES */
	unsigned long n_lat;
	char rbuf[RBUF_SIZE];
	char version[16], cipher[64], group[32], cert_key[48], cert_fp[24];
};

static struct sockaddr_in dst;
static SSL_CTX *ctx;
static enum mode mode = MODE_HANDSHAKE;
static const char *sni = "example.com";
static const char *host;
static const char *path = "/";
static char request[1024];
static size_t request_len;
static long long t_end;
static long long timeout_ns = 5000000000LL;
static bool debug;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void ssl_errors(const char *what)
{
	if (debug) {
		fprintf(stderr, "fg-bench-tls: %s:\n", what);
		ERR_print_errors_fp(stderr);
	}
	ERR_clear_error();
}

/* Counted from the NewSessionTicket messages; the session is not kept. */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct worker *w = SSL_get_app_data(ssl);

	w->tickets++;
	return 0;
}

static void slot_close(struct slot *s)
{
	if (s->ssl)
		SSL_free(s->ssl); /* no close_notify: the server has closed */
	s->ssl = NULL;
	if (s->fd >= 0)
		close(s->fd); /* also leaves the epoll set */
	s->fd = -1;
}

static int slot_open(struct worker *w, int i)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)i };
	struct slot *s = &w->slots[i];
	int one = 1;

	s->t_open = s->t_io = now_ns();
	s->state = ST_CONNECT;
	s->ssl = NULL;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -errno;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (struct sockaddr *)&dst, sizeof(dst)) && errno != EINPROGRESS) {
		int err = -errno;

		slot_close(s);
		return err;
	}
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, s->fd, &ev)) {
		int err = -errno;

		slot_close(s);
		return err;
	}
	return 0;
}

static void want(struct worker *w, int i, bool write)
{
	struct epoll_event ev = { .events = write ? EPOLLOUT : EPOLLIN, .data.u32 = (uint32_t)i };

	epoll_ctl(w->ep, EPOLL_CTL_MOD, w->slots[i].fd, &ev);
}

static void first_handshake(struct worker *w, SSL *ssl)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0, k;
	X509 *cert = SSL_get0_peer_certificate(ssl);
	EVP_PKEY *pkey = cert ? X509_get0_pubkey(cert) : NULL;
	char gname[32] = "";
	int nid = SSL_get_negotiated_group(ssl);

	snprintf(w->version, sizeof(w->version), "%s", SSL_get_version(ssl));
	snprintf(w->cipher, sizeof(w->cipher), "%s", SSL_get_cipher_name(ssl));
	snprintf(w->group, sizeof(w->group), "%s",
		 nid ? OBJ_nid2sn(nid & ~TLSEXT_nid_unknown) : "-");
	if (pkey) {
		if (EVP_PKEY_get_group_name(pkey, gname, sizeof(gname), NULL) != 1)
			gname[0] = 0;
		snprintf(w->cert_key, sizeof(w->cert_key), "%s%s%s", EVP_PKEY_get0_type_name(pkey),
			 gname[0] ? "-" : "", gname);
	}
	if (cert && X509_digest(cert, EVP_sha256(), md, &md_len) && md_len >= 8)
		for (k = 0; k < 8; k++)
			snprintf(w->cert_fp + 2 * k, 3, "%02x", md[k]);
}

/* parse_header: the status and the body length of the header in s->hdr
 * (NUL-terminated, ends with the empty line). 0, or -EPROTO. */
static int parse_header(struct slot *s)
{
	char *line = s->hdr, *eol;
	int status;

	if (sscanf(line, "HTTP/1.%*d %d", &status) != 1 || status != 200)
		return -EPROTO;
	s->body_left = -1;
	while ((eol = strstr(line, "\r\n")) && eol != line) {
		*eol = 0;
		if (!strncasecmp(line, "content-length:", 15))
			s->body_left = strtoll(line + 15, NULL, 10);
		else if (!strncasecmp(line, "transfer-encoding:", 18))
			return -EPROTO; /* chunked: not needed here */
		line = eol + 2;
	}
	return 0;
}

/* Counts n body bytes; true when the response is complete. */
static bool body_bytes(struct worker *w, struct slot *s, long long n)
{
	w->bytes += (unsigned long long)n;
	if (s->body_left < 0)
		return false;
	s->body_left -= n;
	return s->body_left <= 0;
}

/* The response is complete: the next request (get), or on to the
 * server's close (handshake). */
static void response_done(struct worker *w, struct slot *s)
{
	w->responses++;
	if (mode == MODE_GET) {
		s->state = ST_WRITE;
		s->req_off = 0;
	} else {
		s->state = ST_DRAIN;
	}
}

/* Drives slot i as far as it goes without blocking. 1: go on; 0: done,
 * close it; negative: failed, counted. */
static int step(struct worker *w, int i)
{
	struct slot *s = &w->slots[i];
	int r, err;

	s->t_io = now_ns();
	if (s->state == ST_CONNECT) {
		socklen_t len = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
			w->e_conn++;
			return -ECONNREFUSED;
		}
		s->ssl = SSL_new(ctx);
		if (!s->ssl || !SSL_set_fd(s->ssl, s->fd) ||
		    !SSL_set_tlsext_host_name(s->ssl, sni)) {
			ssl_errors("SSL_new");
			w->e_hs++;
			return -ENOMEM;
		}
		SSL_set_app_data(s->ssl, w);
		SSL_set_connect_state(s->ssl);
		s->state = ST_HANDSHAKE;
	}
	if (s->state == ST_HANDSHAKE) {
		r = SSL_do_handshake(s->ssl);
		if (r != 1) {
			err = SSL_get_error(s->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				want(w, i, err == SSL_ERROR_WANT_WRITE);
				return 1;
			}
			ssl_errors("handshake");
			w->e_hs++;
			return -EPROTO;
		}
		if (w->n_lat < MAX_SAMPLES)
			w->lat_us[w->n_lat++] = (unsigned)((now_ns() - s->t_open) / 1000);
		if (SSL_session_reused(s->ssl))
			w->resumed++;
		if (w->hs++ == 0)
			first_handshake(w, s->ssl);
		s->state = ST_WRITE;
		s->req_off = 0;
	}
	for (;;) {
		switch (s->state) {
		case ST_WRITE:
			r = SSL_write(s->ssl, request + s->req_off, (int)(request_len - s->req_off));
			if (r <= 0)
				break;
			s->req_off += (size_t)r;
			if (s->req_off < request_len)
				continue;
			s->state = ST_HEADER;
			s->hdr_len = 0;
			continue;
		case ST_HEADER: {
			char *end;
			long long rest;

			r = SSL_read(s->ssl, s->hdr + s->hdr_len, (int)(HDR_MAX - 1 - s->hdr_len));
			if (r <= 0)
				break;
			s->hdr_len += (size_t)r;
			s->hdr[s->hdr_len] = 0;
			end = strstr(s->hdr, "\r\n\r\n");
			if (!end) {
				if (s->hdr_len == HDR_MAX - 1) {
					w->e_http++;
					return -EMSGSIZE;
				}
				continue;
			}
			rest = (long long)(s->hdr + s->hdr_len - (end + 4));
			end[2] = 0; /* the header ends with its last "\r\n" */
			if (parse_header(s)) {
				if (debug)
					fprintf(stderr, "fg-bench-tls: bad response: %.80s\n", s->hdr);
				w->e_http++;
				return -EPROTO;
			}
			s->state = ST_BODY;
			if (s->body_left == 0 || (rest > 0 && body_bytes(w, s, rest)))
				response_done(w, s);
			continue;
		}
		case ST_BODY:
			r = SSL_read(s->ssl, w->rbuf, (int)(s->body_left > 0 && s->body_left < RBUF_SIZE ?
							     s->body_left : RBUF_SIZE));
			if (r <= 0)
				break;
			if (body_bytes(w, s, r))
				response_done(w, s);
			continue;
		case ST_DRAIN:
			/* Up to the server's close_notify or FIN; nothing
			 * more is expected. */
			r = SSL_read(s->ssl, w->rbuf, RBUF_SIZE);
			if (r <= 0)
				break;
			w->e_http++;
			return -EPROTO;
		default:
			return -EINVAL;
		}
		/* SSL_write/SSL_read did not go on: why? */
		err = SSL_get_error(s->ssl, r);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
			want(w, i, err == SSL_ERROR_WANT_WRITE);
			return 1;
		}
		if (err == SSL_ERROR_ZERO_RETURN) {
			/* the server closed (SSL_OP_IGNORE_UNEXPECTED_EOF:
			 * with or without close_notify) */
			ERR_clear_error();
			if (s->state == ST_DRAIN)
				return 0;
			if (s->state == ST_BODY && s->body_left < 0) {
				w->responses++;
				return 0;
			}
			if (mode == MODE_GET && s->state == ST_HEADER && s->hdr_len == 0)
				return 0; /* closed between two responses */
		} else {
			ssl_errors(s->state == ST_WRITE ? "write" : "read");
		}
		if (debug)
			fprintf(stderr, "fg-bench-tls: connection ended in state %d, SSL error %d\n",
				s->state, err);
		w->e_http++;
		return -ECONNRESET;
	}
}

static void *run(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];
	long long last_sweep = now_ns(), t;
	int i, n, k;

	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (w->ep < 0) {
		w->err = -errno;
		return NULL;
	}
	for (i = 0; i < w->conc; i++)
		if (slot_open(w, i))
			w->e_conn++;
	while ((t = now_ns()) < t_end) {
		n = epoll_wait(w->ep, evs, 256, 50);
		for (k = 0; k < n; k++) {
			struct slot *s;

			i = (int)evs[k].data.u32;
			s = &w->slots[i];
			if (s->fd < 0)
				continue;
			if (step(w, i) > 0)
				continue;
			slot_close(s);
			if (now_ns() < t_end && slot_open(w, i))
				w->e_conn++;
		}
		t = now_ns();
		if (t - last_sweep < 100000000LL)
			continue;
		last_sweep = t;
		for (i = 0; i < w->conc; i++) {
			struct slot *s = &w->slots[i];

			if (s->fd >= 0 && t - (mode == MODE_GET ? s->t_io : s->t_open) > timeout_ns) {
				if (debug)
					fprintf(stderr, "fg-bench-tls: timeout in state %d\n", s->state);
				w->timeouts++;
				slot_close(s);
			}
			if (s->fd < 0 && slot_open(w, i)) /* a failed socket()/connect() retries here */
				w->e_conn++;
		}
	}
	for (i = 0; i < w->conc; i++)
		slot_close(&w->slots[i]);
	close(w->ep);
	return NULL;
}

static int cmp_u(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr, "usage: fg-bench-tls [-m handshake|get] [-t SECONDS] [-c CONCURRENCY] "
			"[-T THREADS] [-s SNI] [-H HOST] [-p PATH] [-v 1.2|1.3] [-g GROUPS] "
			"[-S SUITES] [-o TIMEOUT_MS] ADDR PORT\n");
	exit(2);
}

static int setup_ctx(int version, const char *groups, const char *suites)
{
	static const unsigned char alpn[] = "\x08http/1.1";

	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return -ENOMEM;
	if (!SSL_CTX_set_min_proto_version(ctx, version) ||
	    !SSL_CTX_set_max_proto_version(ctx, version) ||
	    (groups && !SSL_CTX_set1_groups_list(ctx, groups)) ||
	    !SSL_CTX_set_ciphersuites(ctx, suites) ||
	    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1))
		return -EINVAL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* A server's EOF without close_notify ends a response like one with
	 * it (Connection: close), rather than as an error. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Tickets are counted by the callback and never stored nor offered:
	 * each connection is a new SSL object with no session set. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, new_session);
	return 0;
}

int main(int argc, char **argv)
{
	int secs = 10, conc = 64, threads = 2, version = TLS1_3_VERSION, opt, i, err;
	const char *groups = NULL;
	const char *suites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
	struct worker *ws;
	unsigned long hs = 0, resumed = 0, tickets = 0, responses = 0, e_conn = 0, e_hs = 0;
	unsigned long e_http = 0, tmo = 0, n_lat = 0;
	unsigned long long bytes = 0;
	unsigned *all;
	long long t0, t1;

	while ((opt = getopt(argc, argv, "m:t:c:T:s:H:p:v:g:S:o:d")) != -1) {
		switch (opt) {
		case 'm':
			if (!strcmp(optarg, "handshake"))
				mode = MODE_HANDSHAKE;
			else if (!strcmp(optarg, "get"))
				mode = MODE_GET;
			else
				usage();
			break;
		case 't': secs = atoi(optarg); break;
		case 'c': conc = atoi(optarg); break;
		case 'T': threads = atoi(optarg); break;
		case 's': sni = optarg; break;
		case 'H': host = optarg; break;
		case 'p': path = optarg; break;
		case 'v':
			if (!strcmp(optarg, "1.3"))
				version = TLS1_3_VERSION;
			else if (!strcmp(optarg, "1.2"))
				version = TLS1_2_VERSION;
			else
				usage();
			break;
		case 'g': groups = optarg; break;
		case 'S': suites = optarg; break;
		case 'o': timeout_ns = atoll(optarg) * 1000000LL; break;
		case 'd': debug = true; break;
		default: usage();
		}
	}
	if (argc - optind != 2 || secs <= 0 || conc <= 0 || threads <= 0 || threads > conc ||
	    conc > MAX_CONC || timeout_ns <= 0)
		usage();
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)atoi(argv[optind + 1]));
	if (inet_pton(AF_INET, argv[optind], &dst.sin_addr) != 1) {
		fprintf(stderr, "fg-bench-tls: %s: not an IPv4 address\n", argv[optind]);
		return 2;
	}
	if (!host)
		host = sni;
	request_len = (size_t)snprintf(request, sizeof(request),
				       "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fg-bench-tls\r\n%s\r\n",
				       path, host,
				       mode == MODE_HANDSHAKE ? "Connection: close\r\n" : "");
	if (request_len >= sizeof(request)) {
		fprintf(stderr, "fg-bench-tls: path or host too long\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	err = setup_ctx(version, groups, suites);
	if (err) {
		fprintf(stderr, "fg-bench-tls: cannot set up the client context (groups %s, suites %s): %s\n",
			groups ? groups : "default", suites, strerror(-err));
		ERR_print_errors_fp(stderr);
		return 1;
	}

	ws = calloc((size_t)threads, sizeof(*ws));
	if (!ws)
		return 1;
	t0 = now_ns();
	t_end = t0 + secs * 1000000000LL;
	for (i = 0; i < threads; i++) {
		ws[i].idx = i;
		ws[i].conc = conc / threads + (i < conc % threads);
		ws[i].slots = calloc((size_t)ws[i].conc, sizeof(struct slot));
		ws[i].lat_us = malloc(MAX_SAMPLES * sizeof(unsigned));
		if (!ws[i].slots || !ws[i].lat_us) {
			fprintf(stderr, "fg-bench-tls: out of memory\n");
			return 1;
		}
		for (int k = 0; k < ws[i].conc; k++)
			ws[i].slots[k].fd = -1;
		err = pthread_create(&ws[i].th, NULL, run, &ws[i]);
		if (err) {
			fprintf(stderr, "fg-bench-tls: cannot start thread %d: %s\n", i, strerror(err));
			return 1;
		}
	}
	for (i = 0; i < threads; i++)
		pthread_join(ws[i].th, NULL);
	t1 = now_ns();
	for (i = 0; i < threads; i++) {
		if (ws[i].err) {
			fprintf(stderr, "fg-bench-tls: thread %d: epoll_create1: %s\n", i,
				strerror(-ws[i].err));
			return 1;
		}
		hs += ws[i].hs;
		resumed += ws[i].resumed;
		tickets += ws[i].tickets;
		responses += ws[i].responses;
		bytes += ws[i].bytes;
		e_conn += ws[i].e_conn;
		e_hs += ws[i].e_hs;
		e_http += ws[i].e_http;
		tmo += ws[i].timeouts;
		n_lat += ws[i].n_lat;
	}
	all = malloc((n_lat ? n_lat : 1) * sizeof(unsigned));
	if (!all)
		return 1;
	n_lat = 0;
	for (i = 0; i < threads; i++) {
		memcpy(all + n_lat, ws[i].lat_us, ws[i].n_lat * sizeof(unsigned));
		n_lat += ws[i].n_lat;
	}
	qsort(all, n_lat, sizeof(unsigned), cmp_u);
	for (i = 0; i < threads && !ws[i].version[0]; i++)
		;
	if (i == threads)
		i = 0;
	printf("tls: mode %s handshakes %lu resumed %lu tickets %lu responses %lu bytes %llu "
	       "errors_connect %lu errors_handshake %lu errors_http %lu timeouts %lu "
	       "duration_us %lld hs_p50_us %u hs_p99_us %u version %s cipher %s group %s "
	       "cert_key %s cert_sha256 %s\n",
	       mode == MODE_GET ? "get" : "handshake", hs, resumed, tickets, responses, bytes,
	       e_conn, e_hs, e_http, tmo, (t1 - t0) / 1000,
	       n_lat ? all[n_lat / 2] : 0, n_lat ? all[n_lat * 99 / 100] : 0,
	       ws[i].version[0] ? ws[i].version : "-", ws[i].cipher[0] ? ws[i].cipher : "-",
	       ws[i].group[0] ? ws[i].group : "-", ws[i].cert_key[0] ? ws[i].cert_key : "-",
	       ws[i].cert_fp[0] ? ws[i].cert_fp : "-");
	return hs ? 0 : 1;
}
