// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Upstream connections: connects and the keep-alive pool per endpoint.
 */
#include "proxy_int.h"

unsigned px_pool_hash(const struct pool_key *k)
{
	const unsigned char *b = (const unsigned char *)k;
	unsigned h = 2166136261u;
	size_t i;

	for (i = 0; i < sizeof(*k); i++)
		h = (h ^ b[i]) * 16777619u;
	return h % POOL_BUCKETS;
}

struct pool **px_pool_find(struct px_worker *p, const struct pool_key *k)
{
	struct pool **pp = &p->pools[px_pool_hash(k)];

	while (*pp && memcmp(&(*pp)->key, k, sizeof(*k)))
		pp = &(*pp)->next;
	return pp;
}

void px_up_close_fd(struct upstream *u)
{
	if (u->tls.ssl) {
		px_io_close_notify(&u->tls);
		px_io_free(&u->tls);
	}
	if (u->fd >= 0) {
		if (u->sk_cookie) {
			fg_sockmap_forget(u->p->sm, u->sk_cookie);
			u->sk_cookie = 0;
		}
		close(u->fd);
		u->fd = -1;
	}
}

/* A pool, made when first needed; NULL when out of memory. */
static struct pool *pool_take(struct px_worker *p, const struct pool_key *k)
{
	struct pool **pp = px_pool_find(p, k), *pl = *pp;

	if (pl)
		return pl;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return NULL;
	pl->key = *k;
	pl->window_start = pl->last_used = now_ms();
	*pp = pl;
	return pl;
}

/* u no longer serves a client: its pool counts one fewer in use. */
static void pool_unbusy(struct upstream *u)
{
	struct pool *pl;

	if (!u->busy)
		return;
	u->busy = false;
	pl = *px_pool_find(u->p, &u->key);
	if (pl && pl->busy)
		pl->busy--;
}

/* u now serves a client (from the pool or new). */
void px_pool_busy(struct upstream *u)
{
	struct pool *pl;

	if (u->busy || u->fd < 0)
		return;
	pl = pool_take(u->p, &u->key);
	if (!pl)
		return;
	u->busy = true;
	pl->busy++;
	pl->last_used = now_ms();
	if (pl->busy > pl->peak)
		pl->peak = pl->busy;
}

/* Idle connections a pool keeps: a fixed pool_max_idle, or (0, the
 * default) as many as were in use at once lately, so that the next burst
 * like the last finds them all (nginx's keepalive, sized by itself). The
 * file descriptor budget bounds both (px_pool_put). */
unsigned px_pool_cap(const struct px_worker *p, const struct pool *pl)
{
	unsigned peak;

	if (p->opts.pool_max_idle)
		return p->opts.pool_max_idle;
	peak = pl->peak > pl->prev_peak ? pl->peak : pl->prev_peak;
	return peak > p->opts.pool_min_idle ? peak : p->opts.pool_min_idle;
}

void px_up_close(struct upstream *u)
{
	if (u->dead)
		return;
	pool_unbusy(u);
	px_up_close_fd(u);
	u->dead = true;
	u->conn = NULL;
	u->next = u->p->dead_ups;
	u->p->dead_ups = u;
	CNT_ADD(u->p, n_upstreams, -1);
}

/* Takes u out of its pool (it must be pooled). */
void px_pool_unlink(struct upstream *u)
{
	struct px_worker *p = u->p;
	struct pool *pl = *px_pool_find(p, &u->key);
	struct upstream **up;

	if (!pl)
		return;
	for (up = &pl->top; *up; up = &(*up)->next) {
		if (*up == u) {
			*up = u->next;
			u->next = NULL;
			pl->n--;
			CNT_ADD(p, n_pooled, -1);
			break;
		}
	}
	u->pooled = false;
}

struct upstream *px_pool_get(struct px_worker *p, const struct pool_key *k)
{
	struct pool *pl = *px_pool_find(p, k);
	struct upstream *u;

	if (!pl || !pl->top)
		return NULL;
	u = pl->top;
	px_pool_unlink(u);
	return u;
}

void px_pool_put(struct upstream *u)
{
	struct px_worker *p = u->p;
	struct pool *pl;

	pool_unbusy(u);
	pl = pool_take(p, &u->key);
	/* An idle connection holds a descriptor a new client may need. */
	if (!pl || pl->n >= px_pool_cap(p, pl) || !px_fds_allow(p, FD_HEADROOM + 1)) {
		px_up_close(u);
		return;
	}
	u->conn = NULL;
	u->pooled = true;
	u->since = now_ms();
	u->next = pl->top;
	pl->top = u;
	pl->n++;
	CNT_ADD(p, n_pooled, 1);
	/* Watch it: an idle connection that becomes readable was closed (or
	 * spoke out of turn) and is dropped. */
	ep_set(p, u->fd, &u->tag, &u->events, EPOLLIN);
}

/* Idle connections past pool_idle_timeout_ms are closed (the oldest sit at
 * the bottom of the stack); peaks age by window; pools unused for a window
 * go. */
void px_pool_expire(struct px_worker *p, __u64 now)
{
	size_t b;

	for (b = 0; b < POOL_BUCKETS; b++) {
		struct pool **pp = &p->pools[b];

		while (*pp) {
			struct pool *pl = *pp;
			struct upstream *u, *un;

			for (u = pl->top; u; u = un) {
				un = u->next;
				if (now - u->since >= p->opts.pool_idle_timeout_ms) {
					px_pool_unlink(u);
					px_up_close(u);
				}
			}
			if (now - pl->window_start >= POOL_WINDOW_MS) {
				pl->prev_peak = pl->peak;
				pl->peak = pl->busy;
				pl->window_start = now;
			}
			if (!pl->n && !pl->busy && now - pl->last_used >= POOL_WINDOW_MS) {
				*pp = pl->next;
				free(pl);
				continue;
			}
			pp = &pl->next;
		}
	}
}

void px_backend_sockaddr(const struct pool_key *k, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (k->family == FG_AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = k->port;
		sin->sin_addr.s_addr = k->addr.v4;
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = k->port;
		memcpy(&sin6->sin6_addr, k->addr.bytes, 16);
		*len = sizeof(*sin6);
	}
}

const char *px_key_str(const struct pool_key *k, char *buf, size_t len)
{
	char abuf[INET6_ADDRSTRLEN];

	fg_addr_str(&k->addr, k->family, abuf, sizeof(abuf));
	snprintf(buf, len, k->family == FG_AF_INET ? "%s:%u" : "[%s]:%u", abuf, ntohs(k->port));
	return buf;
}

/* A new connection toward k. Returns it connecting (or connected), or NULL
 * with *err: local failures (fg_local_errno: no descriptor, no local port,
 * no memory) as -errno, the peer's refusal as a positive errno. */
struct upstream *px_up_connect(struct px_worker *p, const struct pool_key *k, int *err)
{
	struct sockaddr_storage ss;
	struct upstream *u;
	socklen_t slen;
	int one = 1;

	u = calloc(1, sizeof(*u));
	if (!u) {
		*err = -ENOMEM;
		return NULL;
	}
	u->p = p;
	u->tag.kind = T_UPSTREAM;
	u->tag.obj = u;
	u->key = *k;
	u->fd = socket(k->family == FG_AF_INET ? AF_INET : AF_INET6,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		*err = -errno;
		free(u);
		return NULL;
	}
	setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	STAT_INC(p, upstream_connects);
	px_backend_sockaddr(k, &ss, &slen);
	u->since = now_ms();
	if (connect(u->fd, (struct sockaddr *)&ss, slen)) {
		if (errno != EINPROGRESS) {
			/* No local port (EADDRNOTAVAIL) is ours, not the peer's. */
			*err = fg_local_errno(errno) ? -errno : errno;
			close(u->fd);
			free(u);
			return NULL;
		}
		u->connecting = true;
	}
	u->events = u->connecting ? EPOLLOUT : EPOLLIN;
	if (ep_add(p, u->fd, &u->tag, u->events)) {
		*err = -errno;
		close(u->fd);
		free(u);
		return NULL;
	}
	CNT_ADD(p, n_upstreams, 1);
	return u;
}

/* A pooled connection the upstream closed while it idled reads as EOF:
 * checked before a request that may not be sent twice goes on it. */
bool px_pooled_alive(const struct upstream *u)
{
	char b;
	ssize_t n = recv(u->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}
