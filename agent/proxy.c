// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The HTTP/1.1 reverse proxy: the server (listeners, accept, limits,
 * timeouts) and the API. See proxy.h, and proxy_int.h for the parts.
 *
 * Per client connection four bounded buffers:
 *   in   client -> proxy (request heads, request body bytes, pipelined
 *        requests; at most max_head bytes)
 *   upo  proxy -> upstream (the rewritten head, then body bytes); kept whole
 *        while the request is replayable (head + 64 KiB of body), so a
 *        retry can resend it
 *   rin  upstream -> proxy (response head, body bytes)
 *   out  proxy -> client (response heads, body bytes, error responses)
 * Body bytes move between them by the framers' counts: "opaque" bytes (a
 * Content-Length or chunk data left) by fg_http_framer_skip, framing bytes
 * through fg_http_framer_feed. Requests on a connection are handled one at
 * a time, so answers stay in order; pipelined bytes wait in `in`.
 *
 * Everything is level-triggered; each connection's interest set is
 * recomputed after every step from what its buffers can take. Objects
 * closed while handling a batch of events are freed after the batch.
 */
#include <dirent.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/timerfd.h>

#include "proxy_int.h"

/* ---------- the gateway's own resources ---------- */

/* Descriptors the proxy holds or has promised: two per client (itself and
 * the upstream it will need), the idle pooled upstreams, the pipes. */
unsigned px_fds_reserved(const struct fg_proxy *p)
{
	return 2 * p->n_conns + p->n_pooled + 2 * p->n_pipes;
}

bool px_fds_allow(const struct fg_proxy *p, unsigned more)
{
	return !p->fd_budget || px_fds_reserved(p) + more <= p->fd_budget;
}

unsigned px_count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n ? n - 1 : 0; /* the directory's own descriptor */
}

/* The budget follows the soft file limit, which may change under us
 * (prlimit), so it is read again on every timeout check. */
void px_fd_budget_update(struct fg_proxy *p)
{
	struct rlimit rl;
	__u64 other;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY) {
		p->fd_budget = 0;
		return;
	}
	other = (__u64)p->fd_base + p->opts.fd_reserve;
	p->fd_budget = rl.rlim_cur > other + FD_HEADROOM ? (unsigned)(rl.rlim_cur - other)
							  : FD_HEADROOM;
}

int px_pipe_open(struct conn *c, struct fg_pipe *pp)
{
	struct fg_proxy *p = c->p;
	int err;

	if (!px_fds_allow(p, 2))
		return -EMFILE; /* the copy path needs no descriptor */
	err = fg_pipe_open(pp);
	if (!err)
		p->n_pipes++;
	return err;
}

void px_pipe_close(struct fg_proxy *p, struct fg_pipe *pp)
{
	if (pp->rd >= 0)
		p->n_pipes--;
	fg_pipe_close(pp);
}

void px_sockaddr_key(const struct sockaddr_storage *ss, struct fg_addr *a, __u8 *family)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		a->v4 = ((const struct sockaddr_in *)ss)->sin_addr.s_addr;
		*family = FG_AF_INET;
		return;
	}
	memcpy(a->bytes, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	*family = FG_AF_INET6;
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a->bytes)) {
		__be32 v4 = a->v6[3];

		memset(a, 0, sizeof(*a));
		a->v4 = v4;
		*family = FG_AF_INET;
	}
}

struct client_slot **px_client_find(struct fg_proxy *p, const struct fg_addr *a, __u8 family)
{
	unsigned h = 2166136261u;
	struct client_slot **sp;
	size_t i;

	for (i = 0; i < sizeof(*a); i++)
		h = (h ^ a->bytes[i]) * 16777619u;
	h = (h ^ family) * 16777619u;
	for (sp = &p->clients[h % CLIENT_BUCKETS]; *sp; sp = &(*sp)->next)
		if ((*sp)->family == family && !memcmp(&(*sp)->addr, a, sizeof(*a)))
			break;
	return sp;
}

/* Takes a connection slot of the client's address; NULL when it has
 * max_conns_per_client already (or no memory). */
struct client_slot *px_client_take(struct fg_proxy *p, const struct sockaddr_storage *ss)
{
	struct client_slot **sp, *cs;
	struct fg_addr a;
	__u8 family;

	px_sockaddr_key(ss, &a, &family);
	sp = px_client_find(p, &a, family);
	cs = *sp;
	if (!cs) {
		cs = calloc(1, sizeof(*cs));
		if (!cs)
			return NULL;
		cs->addr = a;
		cs->family = family;
		*sp = cs;
	}
	if (cs->n >= p->opts.max_conns_per_client)
		return NULL;
	cs->n++;
	return cs;
}

void px_client_release(struct fg_proxy *p, struct client_slot *cs)
{
	struct client_slot **sp;

	if (!cs || --cs->n)
		return;
	sp = px_client_find(p, &cs->addr, cs->family);
	if (*sp == cs) {
		*sp = cs->next;
		free(cs);
	}
}

/* ---------- events ---------- */

/* sockmap: open windows and pending barriers are checked every tick. */
void px_on_timer(struct fg_proxy *p)
{
	struct itimerspec off = {};
	struct conn *c, *next;
	__u64 ticks;
	unsigned n = 0;

	if (read(p->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		pr_debug("proxy: timerfd: %s\n", strerror(errno));
	for (c = p->conns; c; c = next) {
		next = c->next;
		if (c->dead || !(c->win || c->sm_barrier))
			continue;
		px_conn_progress(c);
		n += !c->dead && (c->win || c->sm_barrier);
	}
	if (!n && p->tarmed) {
		timerfd_settime(p->tfd, 0, &off, NULL);
		p->tarmed = false;
	}
}

/* A 503 at once and the connection closed: nothing of the client's is
 * read, so this costs no buffer. */
void px_refuse(struct fg_proxy *p, int fd, const struct sockaddr_storage *ss, const char *why)
{
	char msg[256];
	long sent;
	int n;

	n = snprintf(msg, sizeof(msg),
		     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
		     strlen(why) + 1, why);
	sent = send(fd, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent < 0)
		pr_debug("proxy: cannot refuse a connection politely: %s\n", strerror(errno));
	shutdown(fd, SHUT_WR);
	close(fd);
	p->st.refused++;
	px_count_status(p, 503);
	px_rec_refused(p, ss, sent);
}

void px_client_ip(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, len);
	} else {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], buf, len);
		else
			inet_ntop(AF_INET6, a, buf, len);
	}
}

void px_do_accept(struct fg_proxy *p)
{
	int i;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t slen = sizeof(ss);
		struct conn *c;
		int fd, one = 1;

		fd = accept4(p->lfd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* The listener stays readable: pause it
				 * rather than spin. */
				struct epoll_event ev = { .events = 0, .data.ptr = &p->ltag };

				pr_warn("proxy: accept: %s; pausing for 100 ms\n", strerror(errno));
				epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->lfd, &ev);
				p->accept_paused = true;
				p->accept_resume = now_ms() + 100;
			}
			return;
		}
		p->st.accepted++;
		if (p->n_conns >= p->opts.max_conns) {
			px_refuse(p, fd, &ss, "too many connections");
			continue;
		}
		if (!px_fds_allow(p, FD_HEADROOM)) {
			p->st.refused_fds++;
			px_refuse(p, fd, &ss,
			       "too many connections: the gateway is at its file descriptor limit");
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->slot = px_client_take(p, &ss);
		if (!c->slot) {
			free(c);
			p->st.refused_per_client++;
			px_refuse(p, fd, &ss, "too many connections from your address");
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->p = p;
		c->fd = fd;
		c->tag.kind = T_CLIENT;
		c->tag.obj = c;
		c->rp.rd = c->rp.wr = c->qp.rd = c->qp.wr = -1;
		c->in.max = p->opts.max_head;
		c->out.max = FG_HTTP_RESP_MAX_HEAD + 4096 + BODY_WINDOW;
		c->rin.max = FG_HTTP_RESP_MAX_HEAD;
		c->upo.max = 2 * p->opts.max_head + 4096 + REPLAY_MAX;
		c->state = C_HEAD;
		c->activity = c->last_rx = c->head_start = now_ms();
		if (p->sm && p->mode == FG_L7_SOCKMAP && fg_sockmap_add_peer(p->sm, fd, &c->sk_cookie))
			c->sk_cookie = 0; /* this one's responses go through user space */
		px_client_ip(&ss, c->ip, sizeof(c->ip));
		c->events = EPOLLIN;
		if (ep_add(p, fd, &c->tag, c->events)) {
			px_client_release(p, c->slot);
			close(fd);
			free(c);
			continue;
		}
		c->next = p->conns;
		if (p->conns)
			p->conns->prev = c;
		p->conns = c;
		p->n_conns++;
	}
}

/* ---------- timeouts ---------- */

void px_check_timeouts(struct fg_proxy *p)
{
	__u64 now = now_ms();
	struct conn *c, *next;
	size_t b;

	p->next_check = now + CHECK_EVERY_MS;
	px_fd_budget_update(p);
	fg_local_errors_flush(&p->local);
	if (p->accept_paused && now >= p->accept_resume) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &p->ltag };

		epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->lfd, &ev);
		p->accept_paused = false;
	}
	for (c = p->conns; c; c = next) {
		next = c->next;
		px_check_conn(c, now);
	}
	for (b = 0; b < POOL_BUCKETS; b++) {
		struct pool *pl = p->pools[b], *pn;

		for (; pl; pl = pn) {
			struct upstream *u, *un;

			pn = pl->next;
			for (u = pl->top; u; u = un) {
				un = u->next;
				if (now - u->since >= p->opts.pool_idle_timeout_ms) {
					px_pool_unlink(u); /* may free pl when it empties */
					px_up_close(u);
				}
			}
		}
	}
}

/* ---------- API ---------- */

void fg_proxy_opts_init(struct fg_proxy_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->family = FG_AF_INET;
	o->header_timeout_ms = 10000;
	o->idle_timeout_ms = 60000;
	o->upstream_connect_timeout_ms = 2000;
	o->upstream_timeout_ms = 60000;
	o->max_conns = 10000;
	o->max_conns_per_client = 1000;
	o->fd_reserve = FG_HEALTH_DEF_MAX_INFLIGHT + 64;
	o->client_body_timeout_ms = 60000;
	o->max_head = FG_HTTP_DEF_MAX_HEAD;
	o->xff = true;
	o->pool_max_idle = 32;
	o->pool_idle_timeout_ms = 30000;
	o->l7_mode = FG_L7_AUTO;
	if (getenv("FLEETGATE_L7_MODE") &&
	    fg_l7_mode_parse(getenv("FLEETGATE_L7_MODE"), &o->l7_mode))
		pr_warn("proxy: FLEETGATE_L7_MODE=%s is not auto|sockmap|splice|copy: ignored\n",
			getenv("FLEETGATE_L7_MODE"));
}

/* The mode: the one asked for if its probe passes, else the next one down
 * (sockmap -> splice -> copy); auto: fg_splice_choose (never sockmap).
 *
 * sockmap: the kernel path (bpf/sockmap.bpf.c, the window protocol of
 * splice.h) is loaded and probed end to end; when it passes, response
 * bodies move by kernel windows (sockmap_response) and request bodies by
 * splice(2) (the client sockets carry no program). */
void px_choose_mode(struct fg_proxy *p)
{
	enum fg_l7_mode want = p->opts.l7_mode, m;
	struct fg_splice_result r;
	size_t off;
	int err;

	p->mode_why[0] = '\0';
	if (want == FG_L7_AUTO) {
		p->mode = fg_splice_choose(NULL, p->mode_why, sizeof(p->mode_why));
		goto out;
	}
	if (want == FG_L7_COPY) {
		p->mode = FG_L7_COPY;
		snprintf(p->mode_why, sizeof(p->mode_why), "copy: asked for");
		goto out;
	}
	if (want == FG_L7_SOCKMAP) {
		err = fg_sockmap_open(&p->sm, p->opts.pin_path);
		if (err) {
			snprintf(p->mode_why, sizeof(p->mode_why),
				 "sockmap: cannot load the sk_skb program: %s; ", strerror(-err));
		} else {
			err = fg_splice_probe(FG_L7_SOCKMAP, p->sm, 8 << 20, 1 << 20, 3000, &r);
			snprintf(p->mode_why, sizeof(p->mode_why),
				 "sockmap: kernel probe %s (%s, %.1f Gbit/s, %llu of %llu bytes "
				 "redirected)%s",
				 err ? "failed" : "passed", err ? r.why : "8 MiB intact", r.gbps,
				 (unsigned long long)r.kernel_bytes, (unsigned long long)r.bytes,
				 err ? "; " : ": response bodies by kernel windows, request bodies "
					      "by splice(2)");
			if (!err) {
				p->mode = FG_L7_SOCKMAP;
				pr_info("proxy: sockmap: response bodies move in the kernel "
					"(sk_skb redirect windows)\n");
				goto out;
			}
			fg_sockmap_close(p->sm, true);
			p->sm = NULL;
		}
	}
	for (m = FG_L7_SPLICE;; m = FG_L7_COPY) {
		off = strlen(p->mode_why);
		if (m == FG_L7_COPY) {
			snprintf(p->mode_why + off, sizeof(p->mode_why) - off, "copy: fallback");
			break;
		}
		err = fg_splice_probe(m, NULL, 8 << 20, 1 << 20, 2000, &r);
		snprintf(p->mode_why + off, sizeof(p->mode_why) - off, "%s: probe %s (%.1f Gbit/s)%s",
			 fg_l7_mode_name(m), err ? r.why : "passed", r.gbps, err ? "; " : "");
		if (!err)
			break;
	}
	p->mode = m;
	if (m != want)
		pr_warn("proxy: --l7-mode %s: using %s (%s)\n", fg_l7_mode_name(want),
			fg_l7_mode_name(m), p->mode_why);
out:
	pr_info("proxy: L7 data path mode %s (%s)\n", fg_l7_mode_name(p->mode), p->mode_why);
}

int px_open_listener(struct fg_proxy *p)
{
	const struct fg_proxy_opts *o = &p->opts;
	struct sockaddr_storage ss = {};
	socklen_t slen;
	int one = 1, fd;

	if (o->family == FG_AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(o->port);
		sin->sin_addr.s_addr = o->addr.v4;
		slen = sizeof(*sin);
	} else if (o->family == FG_AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(o->port);
		memcpy(&sin6->sin6_addr, o->addr.bytes, 16);
		slen = sizeof(*sin6);
	} else {
		return -EAFNOSUPPORT;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* The address may reach an interface only later (a VIP). */
	if (ss.ss_family == AF_INET)
		setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	else
		setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, slen) || listen(fd, 1024)) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &slen) == 0)
		p->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
							: ((struct sockaddr_in6 *)&ss)->sin6_port);
	p->lfd = fd;
	return 0;
}

int fg_proxy_open(struct fg_proxy **out, struct fg_control *control, struct fg_dataplane *dp,
		  const struct fg_proxy_opts *opts)
{
	struct fg_proxy_opts def;
	struct fg_proxy *p;
	char abuf[INET6_ADDRSTRLEN];
	int err;

	fg_proxy_opts_init(&def);
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->epfd = p->lfd = p->tfd = -1;
	p->control = control;
	p->dp = dp;
	p->opts = *opts;
#define DEF(f) do { if (!p->opts.f) p->opts.f = def.f; } while (0)
	DEF(family);
	DEF(header_timeout_ms);
	DEF(idle_timeout_ms);
	DEF(upstream_connect_timeout_ms);
	DEF(upstream_timeout_ms);
	DEF(max_conns);
	DEF(max_conns_per_client);
	DEF(fd_reserve);
	DEF(client_body_timeout_ms);
	DEF(max_head);
	DEF(pool_idle_timeout_ms);
#undef DEF
	if (p->opts.max_head < 1024)
		p->opts.max_head = 1024;
	if (p->opts.max_head > (1 << 20))
		p->opts.max_head = 1 << 20;
	p->limits.max_head = p->opts.max_head;
	p->scratch_len = p->opts.max_head + FG_HTTP_DEF_MAX_REQUEST_LINE + 1;
	p->scratch = malloc(p->scratch_len);
	fg_hmap_init(&p->cache.rings, sizeof(__u64));
	if (!p->scratch) {
		err = -ENOMEM;
		goto err;
	}
	fg_local_errors_init(&p->local, "proxy");
	if (getrandom(&p->rng, sizeof(p->rng), 0) != sizeof(p->rng))
		p->rng = now_ms() ^ ((__u64)getpid() << 32);
	p->rng |= 1;
	px_choose_mode(p);
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0) {
		err = -errno;
		goto err;
	}
	if (p->sm) {
		p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		p->ttag.kind = T_TIMER;
		p->ttag.obj = p;
		if (p->tfd < 0 || ep_add(p, p->tfd, &p->ttag, EPOLLIN)) {
			err = -errno;
			goto err;
		}
	}
	err = px_open_listener(p);
	if (err) {
		pr_warn("proxy: cannot listen on %s port %u: %s\n",
			fg_addr_str(&p->opts.addr, p->opts.family, abuf, sizeof(abuf)),
			p->opts.port, strerror(-err));
		goto err;
	}
	p->ltag.kind = T_LISTEN;
	p->ltag.obj = p;
	err = ep_add(p, p->lfd, &p->ltag, EPOLLIN);
	if (err)
		goto err;
	p->fd_base = px_count_open_fds();
	px_fd_budget_update(p);
	if (p->fd_budget)
		pr_debug("proxy: file descriptor budget %u (%u open at start, %u left to the "
			 "rest of the agent)\n", p->fd_budget, p->fd_base, p->opts.fd_reserve);
	pr_info("proxy: listening on %s%s%s:%u\n", p->opts.family == FG_AF_INET6 ? "[" : "",
		fg_addr_str(&p->opts.addr, p->opts.family, abuf, sizeof(abuf)),
		p->opts.family == FG_AF_INET6 ? "]" : "", p->port);
	*out = p;
	return 0;
err:
	fg_proxy_close(p);
	return err;
}

int fg_proxy_fd(const struct fg_proxy *p)
{
	return p->epfd;
}

__u16 fg_proxy_port(const struct fg_proxy *p)
{
	return p->port;
}

void fg_proxy_process(struct fg_proxy *p)
{
	struct epoll_event evs[MAX_EVENTS];
	int round, n, i;

	for (round = 0; round < PROCESS_ROUNDS; round++) {
		n = epoll_wait(p->epfd, evs, MAX_EVENTS, 0);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			struct tag *t = evs[i].data.ptr;

			switch (t->kind) {
			case T_LISTEN:
				px_do_accept(p);
				break;
			case T_CLIENT: {
				struct conn *c = t->obj;

				if (!c->dead)
					px_on_client(c, evs[i].events);
				break;
			}
			case T_UPSTREAM: {
				struct upstream *u = t->obj;

				if (!u->dead)
					px_on_upstream(u, evs[i].events);
				break;
			}
			case T_TIMER:
				px_on_timer(p);
				break;
			}
		}
		px_reap(p);
		if (n < MAX_EVENTS)
			break;
	}
	if (now_ms() >= p->next_check)
		px_check_timeouts(p);
	px_reap(p);
}

void fg_proxy_tick(struct fg_proxy *p)
{
	px_check_timeouts(p);
	px_reap(p);
}

void fg_proxy_close(struct fg_proxy *p)
{
	size_t b, i;

	if (!p)
		return;
	while (p->conns)
		px_conn_close(p->conns);
	for (b = 0; b < POOL_BUCKETS; b++) {
		while (p->pools[b]) {
			struct upstream *u = p->pools[b]->top;

			px_pool_unlink(u);
			px_up_close(u);
		}
	}
	px_reap(p);
	if (p->lfd >= 0)
		close(p->lfd);
	if (p->epfd >= 0)
		close(p->epfd);
	if (p->tfd >= 0)
		close(p->tfd);
	for (i = fg_hmap_next(&p->cache.rings, 0); i < p->cache.rings.cap;
	     i = fg_hmap_next(&p->cache.rings, i + 1)) {
		struct ring_cache *rc = (struct ring_cache *)(uintptr_t)*fg_hmap_val(&p->cache.rings, i);

		free(rc->ring);
		free(rc);
	}
	fg_hmap_fini(&p->cache.rings);
	free(p->cache.cands);
	free(p->scratch);
	fg_sockmap_close(p->sm, true);
	free(p);
}

enum fg_l7_mode fg_proxy_mode(const struct fg_proxy *p)
{
	return p->mode;
}

const char *fg_proxy_mode_why(const struct fg_proxy *p)
{
	return p->mode_why;
}

void fg_proxy_counters(const struct fg_proxy *p, struct fg_proxy_counters *out)
{
	*out = p->st;
	out->local_errors = p->local.total;
}

json_t *fg_proxy_stats(const struct fg_proxy *p)
{
	const struct fg_proxy_counters *s = &p->st;
	json_t *j;

	j = json_pack("{s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
			 " s:I, s:i, s:i, s:i, s:s, s:s, s:I, s:I, s:I}",
			 "requests", (json_int_t)s->requests, "responses",
			 "1xx", (json_int_t)s->responses[1], "2xx", (json_int_t)s->responses[2],
			 "3xx", (json_int_t)s->responses[3], "4xx", (json_int_t)s->responses[4],
			 "5xx", (json_int_t)s->responses[5],
			 "upstreamConnects", (json_int_t)s->upstream_connects,
			 "upstreamReuses", (json_int_t)s->upstream_reuses,
			 "retries", (json_int_t)s->retries,
			 "connectFailures", (json_int_t)s->connect_failures,
			 "passiveDown", (json_int_t)s->passive_down,
			 "timeouts", (json_int_t)s->timeouts,
			 "accepted", (json_int_t)s->accepted,
			 "refused", (json_int_t)s->refused,
			 "connections", (int)p->n_conns,
			 "upstreams", (int)p->n_upstreams,
			 "idleUpstreams", (int)p->n_pooled,
			 "mode", fg_l7_mode_name(p->mode),
			 "modeReason", p->mode_why,
			 "splicedBytes", (json_int_t)p->spliced_bytes,
			 "kernelBytes", (json_int_t)p->kernel_bytes,
			 "kernelWindows", (json_int_t)p->windows);
	if (!j)
		return NULL;
	json_object_set_new(j, "refusedPerClient", json_integer((json_int_t)s->refused_per_client));
	json_object_set_new(j, "refusedFds", json_integer((json_int_t)s->refused_fds));
	json_object_set_new(j, "clientTimeouts", json_integer((json_int_t)s->client_timeouts));
	json_object_set_new(j, "notRetried", json_integer((json_int_t)s->not_retried));
	json_object_set_new(j, "localErrors", fg_local_errors_json(&p->local));
	json_object_set_new(j, "fdBudget", json_integer(p->fd_budget));
	json_object_set_new(j, "fdsReserved", json_integer(px_fds_reserved(p)));
	json_object_set_new(j, "maxConnsPerClient", json_integer(p->opts.max_conns_per_client));
	return j;
}
