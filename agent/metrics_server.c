// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The /metrics endpoint: a small HTTP/1.1 server on its own listening
 * socket. Everything is non-blocking and driven by the agent's event loop:
 * a scrape is read, rendered into a buffer in one go (no I/O while
 * rendering but map reads), and sent as the socket takes it. One request
 * per connection (Connection: close), a few connections at once.
 *
 * GET /metrics (HEAD too) -> 200 text/plain; version=0.0.4;
 * another path -> 404; another method -> 405.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "dataplane.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

#define MAX_CLIENTS 16
#define REQ_MAX 8192
#define CLIENT_TIMEOUT_MS 10000

struct mclient {
	int fd;
	__u64 since;
	char in[REQ_MAX];
	size_t in_len;
	char *out;        /* head + body, once answered */
	size_t out_len, out_off;
	bool answered;
};

struct fg_metrics_server {
	int lfd, epfd;
	__u16 port;
	fg_metrics_render_fn render;
	void *ctx;
	struct mclient clients[MAX_CLIENTS];
	int n_clients;
};

static __u64 mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "ADDR:PORT" or "[ADDR6]:PORT"; port 0 allowed (any free port). */
static int parse_hostport(const char *s, struct fg_addr *addr, int *family, __u16 *port)
{
	char host[64];
	const char *colon, *h = s;
	size_t hlen;
	unsigned long v;
	char *end;

	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = rb - h;
		colon = rb + 1;
	} else {
		colon = strchr(s, ':');
		if (!colon || strchr(colon + 1, ':'))
			return -EINVAL; /* IPv6 goes in brackets */
		hlen = colon - s;
	}
	if (!hlen || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	v = strtoul(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || v > 65535)
		return -EINVAL;
	*port = v;
	return fg_addr_parse(host, addr, family);
}

int fg_metrics_listen_check(const char *listen_on)
{
	struct fg_addr addr;
	int family;
	__u16 port;

	return parse_hostport(listen_on, &addr, &family, &port);
}

int fg_metrics_server_open(struct fg_metrics_server **out, const char *listen_on,
			   fg_metrics_render_fn render, void *ctx)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct fg_metrics_server *s;
	struct sockaddr_storage ss = {};
	struct fg_addr addr;
	socklen_t slen;
	int family, one = 1, err, i;
	__u16 port;

	err = parse_hostport(listen_on, &addr, &family, &port);
	if (err) {
		pr_warn("metrics: invalid address '%s': ADDR:PORT or [ADDR6]:PORT\n", listen_on);
		return err;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->render = render;
	s->ctx = ctx;
	s->lfd = s->epfd = -1;
	for (i = 0; i < MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	if (family == FG_AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = addr.v4;
		slen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr.bytes, 16);
		slen = sizeof(*sin6);
	}
	s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0) {
		err = -errno;
		goto fail;
	}
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->lfd, (struct sockaddr *)&ss, slen) || listen(s->lfd, 64)) {
		err = -errno;
		goto fail;
	}
	if (!getsockname(s->lfd, (struct sockaddr *)&ss, &slen))
		s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
							: ((struct sockaddr_in6 *)&ss)->sin6_port);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		err = -errno;
		goto fail;
	}
	ev.data.ptr = NULL; /* the listener */
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev)) {
		err = -errno;
		goto fail;
	}
	pr_info("metrics: serving /metrics on %s (port %u)\n", listen_on, s->port);
	*out = s;
	return 0;
fail:
	pr_warn("metrics: cannot listen on %s: %s\n", listen_on, strerror(-err));
	fg_metrics_server_close(s);
	return err;
}

int fg_metrics_server_fd(const struct fg_metrics_server *s)
{
	return s->epfd;
}

__u16 fg_metrics_server_port(const struct fg_metrics_server *s)
{
	return s->port;
}

static void client_close(struct fg_metrics_server *s, struct mclient *c)
{
	if (c->fd < 0)
		return;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	s->n_clients--;
}

static void do_accept(struct fg_metrics_server *s)
{
	for (;;) {
		struct epoll_event ev = { .events = EPOLLIN };
		struct mclient *c = NULL;
		int fd, i;

		fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				pr_debug("metrics: accept: %s\n", strerror(errno));
			return;
		}
		for (i = 0; i < MAX_CLIENTS && !c; i++)
			if (s->clients[i].fd < 0)
				c = &s->clients[i];
		if (!c) {
			/* A scraper at a time is the normal case: more are
			 * told to come back. */
			static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
						   "Content-Length: 0\r\nConnection: close\r\n\r\n";

			if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				pr_debug("metrics: %s\n", strerror(errno));
			close(fd);
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->since = mono_ms();
		ev.data.ptr = c;
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			c->fd = -1;
			continue;
		}
		s->n_clients++;
	}
}

static void answer(struct fg_metrics_server *s, struct mclient *c, int status, const char *reason,
		   const char *ctype, const char *extra, const char *body, size_t blen,
		   bool head_only)
{
	char head[512];
	int n;

	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		     "Connection: close\r\n\r\n", status, reason, ctype, blen, extra ? extra : "");
	c->out = malloc(n + (head_only ? 0 : blen));
	if (!c->out) {
		client_close(s, c);
		return;
	}
	memcpy(c->out, head, n);
	if (!head_only)
		memcpy(c->out + n, body, blen);
	c->out_len = n + (head_only ? 0 : blen);
	c->answered = true;
}

static void answer_text(struct fg_metrics_server *s, struct mclient *c, int status,
			const char *reason, const char *extra, const char *body, bool head_only)
{
	answer(s, c, status, reason, "text/plain; charset=utf-8", extra, body, strlen(body),
	       head_only);
}

static void handle_request(struct fg_metrics_server *s, struct mclient *c)
{
	struct fg_http_request req;
	const char *why = NULL;
	bool head;
	int r;

	r = fg_http_parse_request(c->in, c->in_len, NULL, &req, &why);
	if (r == 0) {
		if (c->in_len == sizeof(c->in))
			answer_text(s, c, 431, "Request Header Fields Too Large", NULL,
				    "request head too large\n", false);
		return; /* more to come */
	}
	if (r < 0) {
		answer_text(s, c, 400, "Bad Request", NULL, "bad request\n", false);
		return;
	}
	head = req.method_len == 4 && !memcmp(req.method, "HEAD", 4);
	if (!(req.method_len == 3 && !memcmp(req.method, "GET", 3)) && !head) {
		answer_text(s, c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
			    "only GET /metrics\n", false);
		return;
	}
	if (req.path_len != 8 || memcmp(req.path, "/metrics", 8)) {
		answer_text(s, c, 404, "Not Found", NULL, "only /metrics is here\n", head);
		return;
	}
	{
		struct fg_expo e;
		int err;

		fg_expo_init(&e);
		err = s->render(s->ctx, &e);
		if (err) {
			pr_warn("metrics: cannot render the metrics: %s\n", strerror(-err));
			answer_text(s, c, 500, "Internal Server Error", NULL,
				    "cannot render the metrics\n", head);
		} else {
			answer(s, c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL,
			       e.buf ? e.buf : "", e.len, head);
		}
		fg_expo_free(&e);
	}
}

static void client_io(struct fg_metrics_server *s, struct mclient *c)
{
	while (!c->answered) {
		ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);

		if (n > 0) {
			c->in_len += n;
			handle_request(s, c);
			if (c->fd < 0)
				return;
			if (!c->answered && c->in_len == sizeof(c->in))
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		client_close(s, c); /* closed before asking */
		return;
	}
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			c->out_off += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };

			epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
			return;
		}
		break;
	}
	shutdown(c->fd, SHUT_WR);
	client_close(s, c);
}

void fg_metrics_server_process(struct fg_metrics_server *s)
{
	struct epoll_event evs[MAX_CLIENTS + 1];
	int n, i;

	n = epoll_wait(s->epfd, evs, MAX_CLIENTS + 1, 0);
	for (i = 0; i < n; i++) {
		struct mclient *c = evs[i].data.ptr;

		if (!c)
			do_accept(s);
		else if (c->fd >= 0)
			client_io(s, c);
	}
}

void fg_metrics_server_tick(struct fg_metrics_server *s)
{
	__u64 now = mono_ms();
	int i;

	if (!s)
		return;
	for (i = 0; i < MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0 && now - s->clients[i].since >= CLIENT_TIMEOUT_MS)
			client_close(s, &s->clients[i]);
}

void fg_metrics_server_close(struct fg_metrics_server *s)
{
	int i;

	if (!s)
		return;
	for (i = 0; i < MAX_CLIENTS; i++)
		client_close(s, &s->clients[i]);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->epfd >= 0)
		close(s->epfd);
	free(s);
}
