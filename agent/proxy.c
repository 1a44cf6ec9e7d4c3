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
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/timerfd.h>

#include "proxy_int.h"

/* ---------- the gateway's own resources ---------- */

unsigned px_total_conns(const struct fg_proxy *srv)
{
	unsigned n = 0;
	int i;

	for (i = 0; i < srv->n_workers; i++)
		n += LOAD(srv->workers[i].n_conns);
	return n;
}

/* Descriptors the proxy holds or has promised, all workers together: two
 * per client (itself and the upstream it will need), the idle pooled
 * upstreams, the pipes. */
unsigned px_fds_reserved(const struct px_worker *p)
{
	const struct fg_proxy *srv = p->srv;
	unsigned n = 0;
	int i;

	for (i = 0; i < srv->n_workers; i++) {
		const struct px_worker *w = &srv->workers[i];

		n += 2 * LOAD(w->n_conns) + LOAD(w->n_pooled) + 2 * LOAD(w->n_pipes);
	}
	return n;
}

bool px_fds_allow(const struct px_worker *p, unsigned more)
{
	unsigned budget = LOAD(p->srv->fd_budget);

	return !budget || px_fds_reserved(p) + more <= budget;
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
void px_fd_budget_update(struct px_worker *p)
{
	struct fg_proxy *srv = p->srv;
	struct rlimit rl;
	__u64 other;
	unsigned budget;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY) {
		__atomic_store_n(&srv->fd_budget, 0, __ATOMIC_RELAXED);
		return;
	}
	other = (__u64)srv->fd_base + srv->opts.fd_reserve;
	budget = rl.rlim_cur > other + FD_HEADROOM ? (unsigned)(rl.rlim_cur - other) : FD_HEADROOM;
	__atomic_store_n(&srv->fd_budget, budget, __ATOMIC_RELAXED);
}

int px_pipe_open(struct conn *c, struct fg_pipe *pp)
{
	struct px_worker *p = c->p;
	int err;

	if (!px_fds_allow(p, 2))
		return -EMFILE; /* the copy path needs no descriptor */
	err = fg_pipe_open(pp);
	if (!err)
		CNT_ADD(p, n_pipes, 1);
	return err;
}

void px_pipe_close(struct px_worker *p, struct fg_pipe *pp)
{
	if (pp->rd >= 0)
		CNT_ADD(p, n_pipes, -1);
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

/* Under srv->lock. */
static struct client_slot **client_find(struct fg_proxy *srv, const struct fg_addr *a,
					__u8 family)
{
	unsigned h = 2166136261u;
	struct client_slot **sp;
	size_t i;

	for (i = 0; i < sizeof(*a); i++)
		h = (h ^ a->bytes[i]) * 16777619u;
	h = (h ^ family) * 16777619u;
	for (sp = &srv->clients[h % CLIENT_BUCKETS]; *sp; sp = &(*sp)->next)
		if ((*sp)->family == family && !memcmp(&(*sp)->addr, a, sizeof(*a)))
			break;
	return sp;
}

/* Takes a connection slot of the client's address (every worker's
 * connections count); NULL when it has max_conns_per_client already (or
 * no memory). */
struct client_slot *px_client_take(struct px_worker *p, const struct sockaddr_storage *ss)
{
	struct fg_proxy *srv = p->srv;
	struct client_slot **sp, *cs;
	struct fg_addr a;
	__u8 family;

	px_sockaddr_key(ss, &a, &family);
	pthread_mutex_lock(&srv->lock);
	sp = client_find(srv, &a, family);
	cs = *sp;
	if (!cs) {
		cs = calloc(1, sizeof(*cs));
		if (!cs)
			goto out;
		cs->addr = a;
		cs->family = family;
		*sp = cs;
	}
	if (cs->n >= p->opts.max_conns_per_client) {
		cs = NULL;
		goto out;
	}
	cs->n++;
out:
	pthread_mutex_unlock(&srv->lock);
	return cs;
}

void px_client_release(struct px_worker *p, struct client_slot *cs)
{
	struct fg_proxy *srv = p->srv;
	struct client_slot **sp;

	if (!cs)
		return;
	pthread_mutex_lock(&srv->lock);
	if (!--cs->n) {
		sp = client_find(srv, &cs->addr, cs->family);
		if (*sp == cs) {
			*sp = cs->next;
			free(cs);
		}
	}
	pthread_mutex_unlock(&srv->lock);
}

/* ---------- events ---------- */

/* sockmap: open windows and pending barriers are checked every tick. */
void px_on_timer(struct px_worker *p)
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
void px_refuse(struct px_worker *p, int fd, const struct sockaddr_storage *ss, const char *why,
	       bool tls)
{
	char msg[256];
	long sent = 0;
	int n;

	if (tls) {
		/* No session yet, and a handshake would cost what is being
		 * refused: closed (the client sees a reset handshake). */
		close(fd);
		STAT_INC(p, refused);
		px_rec_refused(p, ss, 0);
		return;
	}
	n = snprintf(msg, sizeof(msg),
		     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
		     strlen(why) + 1, why);
	sent = send(fd, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent < 0)
		pr_debug("proxy: cannot refuse a connection politely: %s\n", strerror(errno));
	shutdown(fd, SHUT_WR);
	close(fd);
	STAT_INC(p, refused);
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

/* accept(2) failed for want of resources: every listener of the worker
 * stays readable, so they pause rather than spin. */
static void accept_pause(struct px_worker *p, bool pause)
{
	int i;

	for (i = 0; i < p->n_ls; i++) {
		struct epoll_event ev = { .events = pause ? 0 : EPOLLIN, .data.ptr = &p->ls[i].tag };

		epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->ls[i].fd, &ev);
	}
	p->accept_paused = pause;
	if (pause)
		p->accept_resume = now_ms() + 100;
}

/* A client of a TLS listener: its session from the current certificate
 * store; the handshake runs in C_TLS. */
static int tls_accept(struct px_worker *p, struct conn *c, int ls_idx)
{
	struct px_routes *rt = px_routes_current(p);

	c->ls_idx = (__u8)ls_idx;
	c->tls.ssl = rt && rt->tls ? fg_tls_new_server_ssl(rt->tls) : NULL;
	if (!c->tls.ssl || !SSL_set_fd(c->tls.ssl, c->fd)) {
		px_tls_free(c);
		px_tls_handshake_failed(c, PX_TLS_FAIL_INTERNAL,
					rt && rt->tls ? "out of memory" : "no certificate store");
		return -ENOMEM;
	}
	SSL_set_accept_state(c->tls.ssl);
	c->state = C_TLS;
	return 0;
}

void px_do_accept(struct px_listener *l)
{
	struct px_worker *p = l->p;
	int i;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t slen = sizeof(ss);
		struct conn *c;
		int fd, one = 1;

		fd = accept4(l->fd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				pr_warn("proxy: accept: %s; pausing for 100 ms\n", strerror(errno));
				accept_pause(p, true);
			}
			return;
		}
		STAT_INC(p, accepted);
		if (px_total_conns(p->srv) >= p->opts.max_conns) {
			px_refuse(p, fd, &ss, "too many connections", l->tls);
			continue;
		}
		if (!px_fds_allow(p, FD_HEADROOM)) {
			STAT_INC(p, refused_fds);
			px_refuse(p, fd, &ss,
			       "too many connections: the gateway is at its file descriptor limit",
			       l->tls);
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
			STAT_INC(p, refused_per_client);
			px_refuse(p, fd, &ss, "too many connections from your address", l->tls);
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
		c->rd_ready = true; /* the request may have come with the handshake */
		c->activity = c->last_rx = c->head_start = now_ms();
		px_client_ip(&ss, c->ip, sizeof(c->ip));
		if (l->tls) {
			c->out.max = FG_HTTP_RESP_MAX_HEAD + 4096 + TLS_BODY_WINDOW;
			c->rin.max = TLS_BODY_WINDOW;
			if (tls_accept(p, c, l->idx)) {
				px_client_release(p, c->slot);
				close(fd);
				free(c);
				continue;
			}
		} else if (p->sm && p->mode == FG_L7_SOCKMAP &&
			   fg_sockmap_add_peer(p->sm, fd, &c->sk_cookie)) {
			c->sk_cookie = 0; /* this one's responses go through user space */
		}
		c->events = EPOLLIN;
		if (ep_add(p, fd, &c->tag, c->events)) {
			px_client_release(p, c->slot);
			px_tls_free(c);
			close(fd);
			free(c);
			continue;
		}
		c->next = p->conns;
		if (p->conns)
			p->conns->prev = c;
		p->conns = c;
		CNT_ADD(p, n_conns, 1);
	}
}

/* ---------- timeouts ---------- */

/* Draining (fg_proxy_drain): the listener stays (clients whose routers
 * have not yet heard the withdrawal still arrive) but every connection
 * ends after its answer (Connection: close), idle keep-alive ones at once,
 * as nginx does on a graceful stop. */
static void drain(struct px_worker *p)
{
	struct conn *c, *next;

	for (c = p->conns; c; c = next) {
		next = c->next;
		if (c->dead)
			continue;
		c->close_after = true;
		/* Idle between two requests; a new connection whose first
		 * request has yet to come is served. */
		if (c->served && c->state == C_HEAD && !buf_used(&c->in) && !px_out_pending(c))
			px_conn_close(c);
	}
}

void px_check_timeouts(struct px_worker *p)
{
	__u64 now = now_ms();
	struct conn *c, *next;

	p->next_check = now + CHECK_EVERY_MS;
	px_fd_budget_update(p);
	fg_local_errors_flush(&p->local);
	if (LOAD(p->srv->draining))
		drain(p);
	if (p->accept_paused && now >= p->accept_resume)
		accept_pause(p, false);
	for (c = p->conns; c; c = next) {
		next = c->next;
		px_check_conn(c, now);
	}
	px_resume_parked(p, true);
	px_pool_expire(p, now);
}

/* ---------- workers ---------- */

/* One pass over what is ready; waits up to timeout_ms for something. */
static void worker_run(struct px_worker *p, int timeout_ms)
{
	struct epoll_event evs[MAX_EVENTS];
	int round, n, i;

	for (round = 0; round < PROCESS_ROUNDS; round++) {
		n = epoll_wait(p->epfd, evs, MAX_EVENTS, round ? 0 : timeout_ms);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			struct tag *t = evs[i].data.ptr;

			switch (t->kind) {
			case T_LISTEN:
				px_do_accept(t->obj);
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
			case T_WAKE: {
				__u64 v;

				if (read(p->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					pr_debug("proxy: eventfd: %s\n", strerror(errno));
				if (LOAD(p->srv->draining))
					drain(p);
				px_resume_parked(p, false);
				break;
			}
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

static void *worker_main(void *arg)
{
	struct px_worker *p = arg;

	while (!LOAD(p->srv->stop)) {
		__u64 now = now_ms();

		worker_run(p, p->next_check > now ? (int)(p->next_check - now) : 0);
	}
	return NULL;
}

static void worker_fini(struct px_worker *p)
{
	size_t b;

	while (p->conns)
		px_conn_close(p->conns);
	for (b = 0; b < POOL_BUCKETS; b++) {
		while (p->pools[b]) {
			struct pool *pl = p->pools[b];

			while (pl->top) {
				struct upstream *u = pl->top;

				px_pool_unlink(u);
				px_up_close(u);
			}
			p->pools[b] = pl->next;
			free(pl);
		}
	}
	px_reap(p);
	for (b = 0; b < (size_t)p->n_ls; b++)
		if (p->ls[b].fd >= 0)
			close(p->ls[b].fd);
	if (p->epfd >= 0)
		close(p->epfd);
	if (p->tfd >= 0)
		close(p->tfd);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	px_cache_fini(&p->cache);
	px_routes_put(p->routes);
	free(p->scratch);
}

static int worker_init(struct fg_proxy *srv, int id)
{
	struct px_worker *p = &srv->workers[id];
	int err, i;

	p->srv = srv;
	p->id = id;
	p->epfd = p->tfd = p->wake_fd = -1;
	for (i = 0; i < FG_PROXY_MAX_LISTENERS; i++)
		p->ls[i].fd = -1;
	p->opts = srv->opts;
	p->dp = srv->dp;
	p->mode = srv->mode;
	p->sm = srv->sm;
	p->limits.max_head = p->opts.max_head;
	p->scratch_len = p->opts.max_head + FG_HTTP_DEF_MAX_REQUEST_LINE + 1;
	p->scratch = malloc(p->scratch_len);
	fg_hmap_init(&p->cache.svcs, sizeof(__u64));
	fg_hmap_init(&p->cache.backends, sizeof(__u64));
	p->cache.epoch = ~0ULL;
	p->cache.slab.fd = -1;
	if (!p->scratch)
		return -ENOMEM;
	fg_local_errors_init(&p->local, "proxy");
	if (getrandom(&p->rng, sizeof(p->rng), 0) != sizeof(p->rng))
		p->rng = now_ms() ^ ((__u64)getpid() << 32) ^ ((__u64)id << 16);
	p->rng |= 1;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		return -errno;
	if (p->sm) {
		p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		p->ttag.kind = T_TIMER;
		p->ttag.obj = p;
		if (p->tfd < 0 || ep_add(p, p->tfd, &p->ttag, EPOLLIN))
			return -errno;
	}
	p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	p->wtag.kind = T_WAKE;
	p->wtag.obj = p;
	if (p->wake_fd < 0 || ep_add(p, p->wake_fd, &p->wtag, EPOLLIN))
		return -errno;
	for (i = 0; i < srv->n_ls; i++) {
		struct px_listen_addr *la = &srv->ls[i];
		struct px_listener *l = &p->ls[i];
		char abuf[INET6_ADDRSTRLEN];
		__u16 port;

		/* The first worker binds (a free port when 0), the others the
		 * same port. */
		err = px_open_listener(la, &l->fd, &port);
		if (err) {
			pr_warn("proxy: cannot listen on %s%s%s:%u%s: %s\n",
				la->family == FG_AF_INET6 ? "[" : "",
				fg_addr_str(&la->addr, la->family, abuf, sizeof(abuf)),
				la->family == FG_AF_INET6 ? "]" : "", la->port,
				la->tls ? " (TLS)" : "", strerror(-err));
			return err;
		}
		la->port = port;
		p->n_ls = i + 1;
		l->p = p;
		l->idx = i;
		l->tls = la->tls;
		l->tag.kind = T_LISTEN;
		l->tag.obj = l;
		err = ep_add(p, l->fd, &l->tag, EPOLLIN);
		if (err)
			return err;
	}
	p->listening = true;
	return 0;
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
	o->pool_max_idle = 0; /* auto: px_pool_cap */
	o->pool_min_idle = 32;
	o->pool_idle_timeout_ms = 30000;
	o->l7_mode = FG_L7_AUTO;
	o->workers = 1;
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

int px_open_listener(const struct px_listen_addr *la, int *fd_out, __u16 *port_out)
{
	struct sockaddr_storage ss = {};
	socklen_t slen;
	int one = 1, fd;

	if (la->family == FG_AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(la->port);
		sin->sin_addr.s_addr = la->addr.v4;
		slen = sizeof(*sin);
	} else if (la->family == FG_AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(la->port);
		memcpy(&sin6->sin6_addr, la->addr.bytes, 16);
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
	/* One listener per worker on the same port: the kernel spreads the
	 * connections (SO_REUSEPORT). */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, slen) || listen(fd, 1024)) {
		int err = -errno;

		close(fd);
		return err;
	}
	*port_out = la->port;
	if (getsockname(fd, (struct sockaddr *)&ss, &slen) == 0)
		*port_out = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
							 : ((struct sockaddr_in6 *)&ss)->sin6_port);
	*fd_out = fd;
	return 0;
}

int fg_proxy_open(struct fg_proxy **out, struct fg_control *control, struct fg_dataplane *dp,
		  const struct fg_proxy_opts *opts)
{
	struct fg_proxy_opts def;
	struct fg_proxy *srv;
	char abuf[INET6_ADDRSTRLEN];
	int err, i;

	fg_proxy_opts_init(&def);
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->ctl_fd = srv->epfd = -1;
	pthread_mutex_init(&srv->lock, NULL);
	srv->control = control;
	srv->dp = dp;
	srv->opts = *opts;
#define DEF(f) do { if (!srv->opts.f) srv->opts.f = def.f; } while (0)
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
	DEF(pool_min_idle);
	DEF(workers);
#undef DEF
	if (srv->opts.max_head < 1024)
		srv->opts.max_head = 1024;
	if (srv->opts.max_head > (1 << 20))
		srv->opts.max_head = 1 << 20;
	if (srv->opts.workers > FG_PROXY_MAX_WORKERS)
		srv->opts.workers = FG_PROXY_MAX_WORKERS;
	px_choose_mode(srv);
	/* The sockmap windows are one worker's business. */
	if (srv->mode == FG_L7_SOCKMAP && srv->opts.workers > 1) {
		pr_info("proxy: sockmap mode runs one worker\n");
		srv->opts.workers = 1;
	}
	srv->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	srv->workers = calloc(srv->opts.workers, sizeof(*srv->workers));
	if (srv->ctl_fd < 0 || srv->epfd < 0 || !srv->workers) {
		err = srv->ctl_fd < 0 || srv->epfd < 0 ? -errno : -ENOMEM;
		goto err;
	}
	srv->ls[0] = (struct px_listen_addr){ .family = srv->opts.family, .addr = srv->opts.addr,
					      .port = srv->opts.port };
	srv->n_ls = 1;
	for (i = 0; i < (int)srv->opts.n_tls_listen && srv->n_ls < FG_PROXY_MAX_LISTENERS; i++) {
		const struct fg_proxy_listen *tl = &srv->opts.tls_listen[i];

		srv->ls[srv->n_ls++] = (struct px_listen_addr){ .family = tl->family,
			.addr = tl->addr, .port = tl->port, .tls = true };
	}
	for (i = 0; i < (int)srv->opts.workers; i++) {
		srv->n_workers = i + 1;
		err = worker_init(srv, i);
		if (err)
			goto err;
		{
			struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

			if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->workers[i].epfd, &ev)) {
				err = -errno;
				goto err;
			}
		}
	}
	srv->fd_base = px_count_open_fds();
	px_fd_budget_update(&srv->workers[0]);
	if (srv->fd_budget)
		pr_debug("proxy: file descriptor budget %u (%u open at start, %u left to the "
			 "rest of the agent)\n", srv->fd_budget, srv->fd_base, srv->opts.fd_reserve);
	for (i = 0; i < srv->n_ls; i++)
		pr_info("proxy: listening on %s%s%s:%u%s (%d worker%s)\n",
			srv->ls[i].family == FG_AF_INET6 ? "[" : "",
			fg_addr_str(&srv->ls[i].addr, srv->ls[i].family, abuf, sizeof(abuf)),
			srv->ls[i].family == FG_AF_INET6 ? "]" : "", srv->ls[i].port,
			srv->ls[i].tls ? " (TLS)" : "", srv->n_workers, srv->n_workers > 1 ? "s" : "");
	*out = srv;
	return 0;
err:
	fg_proxy_close(srv);
	return err;
}

int fg_proxy_start(struct fg_proxy *srv)
{
	int i, err;

	err = px_routes_publish(srv);
	if (err)
		return err;
	srv->threaded = true;
	for (i = 0; i < srv->n_workers; i++) {
		struct px_worker *p = &srv->workers[i];

		err = -pthread_create(&p->thread, NULL, worker_main, p);
		if (err) {
			pr_warn("proxy: cannot start worker %d: %s\n", i, strerror(-err));
			return err;
		}
		p->running = true;
	}
	return 0;
}

void fg_proxy_sync_routes(struct fg_proxy *srv)
{
	if (srv && srv->threaded && px_routes_stale(srv))
		px_routes_publish(srv);
}

int fg_proxy_workers(const struct fg_proxy *srv)
{
	return srv->n_workers;
}

void fg_proxy_drain(struct fg_proxy *srv)
{
	__u64 one = 1;
	int i;

	__atomic_store_n(&srv->draining, 1, __ATOMIC_RELEASE);
	for (i = 0; i < srv->n_workers; i++)
		if (write(srv->workers[i].wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			pr_debug("proxy: cannot wake worker %d: %s\n", i, strerror(errno));
}

unsigned fg_proxy_connections(const struct fg_proxy *srv)
{
	return px_total_conns(srv);
}

int fg_proxy_fd(const struct fg_proxy *srv)
{
	return srv->threaded ? srv->ctl_fd : srv->epfd;
}

__u16 fg_proxy_port(const struct fg_proxy *srv)
{
	return srv->ls[0].port;
}

__u16 fg_proxy_tls_port(const struct fg_proxy *srv, unsigned i)
{
	return (int)i + 1 < srv->n_ls ? srv->ls[i + 1].port : 0;
}

void fg_proxy_process(struct fg_proxy *srv)
{
	int i;

	if (srv->threaded) {
		px_markdowns_apply(srv);
		return;
	}
	for (i = 0; i < srv->n_workers; i++)
		worker_run(&srv->workers[i], 0);
}

void fg_proxy_tick(struct fg_proxy *srv)
{
	int i;

	if (srv->threaded) {
		px_markdowns_apply(srv);
		return;
	}
	for (i = 0; i < srv->n_workers; i++) {
		px_check_timeouts(&srv->workers[i]);
		px_reap(&srv->workers[i]);
	}
}

void fg_proxy_close(struct fg_proxy *srv)
{
	__u64 one = 1;
	int i;

	if (!srv)
		return;
	__atomic_store_n(&srv->stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < srv->n_workers; i++) {
		struct px_worker *p = &srv->workers[i];

		if (!p->running)
			continue;
		if (write(p->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			pr_debug("proxy: cannot wake worker %d: %s\n", i, strerror(errno));
		pthread_join(p->thread, NULL);
		p->running = false;
	}
	if (srv->threaded)
		px_markdowns_apply(srv);
	for (i = 0; i < srv->n_workers; i++)
		worker_fini(&srv->workers[i]);
	free(srv->workers);
	px_routes_put(srv->routes);
	free(srv->markdowns);
	if (srv->ctl_fd >= 0)
		close(srv->ctl_fd);
	if (srv->epfd >= 0)
		close(srv->epfd);
	fg_sockmap_close(srv->sm, true);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

enum fg_l7_mode fg_proxy_mode(const struct fg_proxy *srv)
{
	return srv->mode;
}

const char *fg_proxy_mode_why(const struct fg_proxy *srv)
{
	return srv->mode_why;
}

#define SUM(f) do { __u64 s_ = 0; for (i = 0; i < srv->n_workers; i++) { \
	s_ += LOAD(srv->workers[i].st.f); } out->f = s_; } while (0)

void fg_proxy_counters(const struct fg_proxy *srv, struct fg_proxy_counters *out)
{
	int i, k;

	memset(out, 0, sizeof(*out));
	SUM(requests);
	for (k = 0; k < 6; k++)
		for (i = 0; i < srv->n_workers; i++)
			out->responses[k] += LOAD(srv->workers[i].st.responses[k]);
	SUM(upstream_connects);
	SUM(upstream_reuses);
	SUM(retries);
	SUM(connect_failures);
	SUM(passive_down);
	SUM(timeouts);
	SUM(accepted);
	SUM(refused);
	SUM(refused_per_client);
	SUM(refused_fds);
	SUM(client_timeouts);
	SUM(not_retried);
	SUM(tunnels);
	SUM(tls_handshakes);
	SUM(tls_handshake_errors);
	SUM(tls_resumed);
	SUM(tls_v12);
	SUM(tls_v13);
	SUM(tls_ktls);
	for (i = 0; i < srv->n_workers; i++)
		out->local_errors += LOAD(srv->workers[i].local.total);
}

#undef SUM

/* The workers' local errors together. */
static json_t *local_errors_json(const struct fg_proxy *srv)
{
	struct fg_local_errors sum;
	int i, k;

	fg_local_errors_init(&sum, "proxy");
	for (i = 0; i < srv->n_workers; i++) {
		const struct fg_local_errors *le = &srv->workers[i].local;

		sum.total += LOAD(le->total);
		for (k = 0; k < 5; k++)
			sum.by_errno[k] += LOAD(le->by_errno[k]);
		if (LOAD(le->total) && !sum.last_what[0]) {
			sum.last_errno = LOAD(le->last_errno);
			memcpy(sum.last_what, le->last_what, sizeof(sum.last_what));
			sum.last_what[sizeof(sum.last_what) - 1] = '\0';
		}
	}
	return fg_local_errors_json(&sum);
}

/* Each TLS listener's handshakes by version and failures by reason, every
 * worker's together. */
static json_t *tls_listeners_json(const struct fg_proxy *srv)
{
	static const char *const reasons[PX_TLS_FAIL_N] = {
		[PX_TLS_FAIL_TIMEOUT] = "timeout", [PX_TLS_FAIL_CLOSED] = "closed",
		[PX_TLS_FAIL_VERSION] = "protocol_version", [PX_TLS_FAIL_ALERT] = "alert",
		[PX_TLS_FAIL_PROTOCOL] = "protocol", [PX_TLS_FAIL_INTERNAL] = "internal",
	};
	json_t *arr = json_array();
	char abuf[INET6_ADDRSTRLEN], name[INET6_ADDRSTRLEN + 16];
	int l, w, r;

	for (l = 1; arr && l < srv->n_ls; l++) {
		const struct px_listen_addr *la = &srv->ls[l];
		__u64 v12 = 0, v13 = 0;
		json_t *errs = json_object();

		snprintf(name, sizeof(name), la->family == FG_AF_INET6 ? "[%s]:%u" : "%s:%u",
			 fg_addr_str(&la->addr, la->family, abuf, sizeof(abuf)), la->port);
		for (w = 0; w < srv->n_workers; w++) {
			v12 += LOAD(srv->workers[w].tls_hs[l][0]);
			v13 += LOAD(srv->workers[w].tls_hs[l][1]);
		}
		for (r = 0; errs && r < PX_TLS_FAIL_N; r++) {
			__u64 n = 0;

			for (w = 0; w < srv->n_workers; w++)
				n += LOAD(srv->workers[w].tls_fail[l][r]);
			json_object_set_new(errs, reasons[r], json_integer((json_int_t)n));
		}
		json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:o}", "listener", name,
						     "tls12", (json_int_t)v12, "tls13",
						     (json_int_t)v13, "errors", errs));
	}
	return arr;
}

json_t *fg_proxy_stats(const struct fg_proxy *srv)
{
	struct fg_proxy_counters st, *s = &st;
	__u64 conns = 0, ups = 0, pooled = 0, spliced = 0, kernel = 0, windows = 0;
	json_t *j;
	int i;

	fg_proxy_counters(srv, &st);
	for (i = 0; i < srv->n_workers; i++) {
		const struct px_worker *w = &srv->workers[i];

		conns += LOAD(w->n_conns);
		ups += LOAD(w->n_upstreams);
		pooled += LOAD(w->n_pooled);
		spliced += LOAD(w->spliced_bytes);
		kernel += LOAD(w->kernel_bytes);
		windows += LOAD(w->windows);
	}
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
			 "connections", (int)conns,
			 "upstreams", (int)ups,
			 "idleUpstreams", (int)pooled,
			 "mode", fg_l7_mode_name(srv->mode),
			 "modeReason", srv->mode_why,
			 "splicedBytes", (json_int_t)spliced,
			 "kernelBytes", (json_int_t)kernel,
			 "kernelWindows", (json_int_t)windows);
	if (!j)
		return NULL;
	json_object_set_new(j, "refusedPerClient", json_integer((json_int_t)s->refused_per_client));
	json_object_set_new(j, "refusedFds", json_integer((json_int_t)s->refused_fds));
	json_object_set_new(j, "clientTimeouts", json_integer((json_int_t)s->client_timeouts));
	json_object_set_new(j, "notRetried", json_integer((json_int_t)s->not_retried));
	json_object_set_new(j, "tunnels", json_integer((json_int_t)s->tunnels));
	if (srv->n_ls > 1) {
		const char *last = "";

		for (i = 0; i < srv->n_workers; i++)
			if (srv->workers[i].tls_last_error[0])
				last = srv->workers[i].tls_last_error;
		json_object_set_new(j, "tls", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
			"handshakes", (json_int_t)s->tls_handshakes,
			"handshakeErrors", (json_int_t)s->tls_handshake_errors,
			"resumed", (json_int_t)s->tls_resumed,
			"tls12", (json_int_t)s->tls_v12,
			"tls13", (json_int_t)s->tls_v13,
			"ktls", (json_int_t)s->tls_ktls,
			"lastError", last));
		json_object_set_new(json_object_get(j, "tls"), "listeners", tls_listeners_json(srv));
	}
	json_object_set_new(j, "localErrors", local_errors_json(srv));
	json_object_set_new(j, "fdBudget", json_integer(LOAD(srv->fd_budget)));
	json_object_set_new(j, "fdsReserved",
			    json_integer(srv->n_workers ? px_fds_reserved(&srv->workers[0]) : 0));
	json_object_set_new(j, "maxConnsPerClient", json_integer(srv->opts.max_conns_per_client));
	json_object_set_new(j, "workers", json_integer(srv->n_workers));
	{
		__u64 empty = 0;

		for (i = 0; i < srv->n_workers; i++)
			empty += LOAD(srv->workers[i].empty_reads);
		json_object_set_new(j, "emptyReads", json_integer((json_int_t)empty));
	}
	{
		json_t *per = json_array();

		for (i = 0; per && i < srv->n_workers; i++) {
			const struct px_worker *w = &srv->workers[i];

			json_array_append_new(per, json_pack("{s:I, s:I, s:i, s:i}",
				"accepted", (json_int_t)LOAD(w->st.accepted),
				"requests", (json_int_t)LOAD(w->st.requests),
				"connections", (int)LOAD(w->n_conns),
				"idleUpstreams", (int)LOAD(w->n_pooled)));
		}
		json_object_set_new(j, "perWorker", per);
	}
	json_object_set_new(j, "draining", json_boolean(LOAD(srv->draining)));
	return j;
}
