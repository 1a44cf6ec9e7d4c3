// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The HTTP/1.1 reverse proxy, userspace copy mode. See proxy.h.
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
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <dirent.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <bpf/bpf.h>

#include "health.h"
#include "hmap.h"
#include "http.h"
#include "log.h"
#include "proxy.h"
#include "resources.h"
#include "routes.h"
#include "splice.h"

#define BODY_WINDOW (32 * 1024)   /* body bytes staged per buffer */
#define REPLAY_MAX (64 * 1024)    /* request body kept for a retry */
#define LINGER_MS 2000            /* reading leftovers after our FIN */
#define MAX_EVENTS 128
#define PROCESS_ROUNDS 4
#define CHECK_EVERY_MS 100
#define POOL_BUCKETS 1024
#define CLIENT_BUCKETS 4096
#define FD_HEADROOM 2             /* a new client and its upstream */
#define ACCEPT_BATCH 64
#define SPLICE_MIN (16 * 1024)    /* fewer opaque bytes go through the buffers */

enum tag_kind { T_LISTEN, T_CLIENT, T_UPSTREAM, T_TIMER };

#define SM_TICK_NS 1000000       /* sockmap: window and barrier checks, 1 ms */

struct tag {
	enum tag_kind kind;
	void *obj;
};

struct buf {
	char *d;
	size_t off, len, cap, max;
};

enum cstate {
	C_HEAD,    /* reading a request head */
	C_PROXY,   /* a request is being served */
	C_CLOSING, /* flushing `out`, then lingering close */
	C_LINGER,  /* FIN sent; discarding what the client still sends */
};

enum rstate { R_HEAD, R_BODY, R_DONE };

/* Why an upstream try ended without a response for the client. */
enum fail_kind {
	F_CONNECT,         /* refused, unreachable: not sent */
	F_CONNECT_TIMEOUT, /* not sent */
	F_LOCAL,           /* the gateway's own resources: not sent */
	F_SEND,            /* error while sending the request */
	F_NO_RESPONSE,     /* closed or reset before a response byte */
	F_HEAD_TIMEOUT,    /* no response head in time */
	F_INVALID_HEADER,  /* a response head we will not relay */
	F_STATUS,          /* a status the route retries (http_502, ...) */
};

/* Connections per client address (max_conns_per_client). */
struct client_slot {
	struct fg_addr addr;
	__u8 family;
	unsigned n;
	struct client_slot *next;
};

struct pool_key {
	struct fg_addr addr;
	__be16 port;
	__u8 family;
	__u8 pad;
};

struct upstream {
	struct tag tag;
	int fd;
	unsigned events;
	struct fg_proxy *p;
	struct conn *conn;       /* owner; NULL while pooled */
	struct pool_key key;
	__u32 backend_id, service_id, cluster_idx;
	bool connecting, reused, dead, pooled;
	__u64 since;             /* connect start, or time pooled */
	struct upstream *next;   /* pool stack / graveyard */
	/* sockmap mode: in fg_sk_socks (verdict program) from before the
	 * first request byte; positions as in fg_sk_state. */
	bool sk_tried;
	__u64 sk_cookie;         /* 0: not in the map (no kernel path) */
	__u64 sk_read;           /* bytes recv()'d since it joined */
	__u64 sk_kseen;          /* total_redirected accounted */
	__u64 sk_gen;            /* last window generation */
};

struct pool {
	struct pool_key key;
	struct upstream *top;
	unsigned n;
	struct pool *next;
};

struct conn {
	struct tag tag;
	int fd;
	unsigned events;
	struct fg_proxy *p;
	struct conn *prev, *next; /* live list (next: graveyard when dead) */
	char ip[INET6_ADDRSTRLEN];
	enum cstate state;
	bool eof, close_after, dead;
	struct client_slot *slot;
	__u64 head_start;        /* first byte of the current head, 0: idle */
	__u64 activity;          /* last byte from/to the client */
	__u64 last_rx;           /* last byte from the client */
	__u64 linger_start;
	unsigned served;         /* exchanges finished */
	struct buf in, out, upo, rin;

	/* the current exchange */
	bool is_head_req, req_ka;
	int version_minor;
	struct fg_http_framer rqf;
	bool rq_done;
	bool rq_abandoned;       /* the upstream stopped taking the request */
	size_t upo_sent;         /* index into upo.d */
	size_t upo_limit;        /* head + REPLAY_MAX while replayable */
	bool replayable;
	bool idempotent;         /* RFC 9110 §9.2.2 */
	bool req_sent;           /* a byte of it reached this try's upstream */
	struct fg_route_policy policy;
	unsigned attempts;
	__u32 tried[FG_NU_MAX_TRIES]; /* backends of the failed tries */
	bool fresh_retry;
	__u32 service_id;
	char service[FG_ID_LEN * 8];
	struct upstream *up;
	__u64 up_activity;
	bool up_eof;
	int up_errno;
	bool resp_bytes;         /* any byte came from the upstream */
	bool resp_head_sent;     /* the final response head went to `out` */
	bool resp_ka;
	enum rstate rs;
	struct fg_http_framer rsf;

	/* splice mode: upstream -> client (response), client -> upstream
	 * (request); opened on first use. What a pipe holds was taken from
	 * the source before anything now in out / upo past upo_sent. */
	struct fg_pipe rp, qp;
	bool no_splice;          /* a pipe could not be opened */

	/* sockmap mode (response bodies): the client is a redirect target
	 * (fg_sk_peers); a window open on up->sk_cookie sends the next
	 * opaque bytes of the response here in the kernel. */
	__u64 sk_cookie;         /* 0: not in the map */
	bool win;                /* a window is open (gen win_gen) */
	__u64 win_gen;
	/* Barrier: nothing is written to the client until its TCP stream
	 * holds sm_target bytes (fg_tcp_written): the redirected ones go
	 * through the psock's work queue. */
	bool sm_barrier;
	__u64 sm_target;

	/* request records (opts.on_request, request_record.h) */
	bool rec_open;           /* a request is under way: a record is due */
	struct fg_request_record rec;
	struct fg_request_strings rec_store; /* its strings */
	__u64 rx, tx;            /* bytes read from the client / queued to it */
	__u64 in_mark, out_mark; /* consumed / queued when the last record ended */
	__u64 hdr_mark;          /* queued before the response head */
};

/* A service's cluster ring as last read from the maps. */
struct ring_cache {
	__u64 epoch;  /* the routing epoch it was read at */
	__u32 *ring;  /* NULL: the service has none */
	__u32 size;
};

struct cache {
	struct fg_hmap rings;   /* service id -> struct ring_cache * */
	__u32 *cands;           /* scratch: the candidates of a pick */
	size_t cap_cands;
};

struct fg_proxy {
	struct fg_proxy_opts opts;
	struct fg_control *control;
	struct fg_dataplane *dp;
	int epfd, lfd;
	__u16 port;
	struct tag ltag;
	bool accept_paused;
	__u64 accept_resume;
	struct conn *conns;
	unsigned n_conns;
	unsigned n_upstreams;
	unsigned n_pooled;
	unsigned n_pipes;
	unsigned fd_base;         /* descriptors open at fg_proxy_open */
	unsigned fd_budget;       /* ours at most; 0: no limit known */
	struct client_slot *clients[CLIENT_BUCKETS];
	struct fg_local_errors local;
	struct pool *pools[POOL_BUCKETS];
	struct conn *dead_conns;
	struct upstream *dead_ups;
	struct fg_http_limits limits;
	struct fg_http_request req;   /* scratch: only used while dispatching */
	struct fg_http_response resp; /* scratch */
	char *scratch;
	size_t scratch_len;
	struct cache cache;
	__u64 rng;
	__u64 next_check;
	struct fg_proxy_counters st;
	enum fg_l7_mode mode;
	char mode_why[512];
	struct fg_sockmap *sm;
	__u64 spliced_bytes;      /* splice + sockmap */
	__u64 kernel_bytes;       /* sockmap */
	__u64 windows;            /* sockmap: windows opened */
	int tfd;                  /* sockmap: timerfd, armed while a window or
				   * a barrier is pending */
	bool tarmed;
	struct tag ttag;
};

static void conn_progress(struct conn *c);
static void dispatch(struct conn *c, __u32 bid, bool use_pool);

/* ---------- small helpers ---------- */

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static __u32 rnd(struct fg_proxy *p)
{
	/* xorshift64* */
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return (__u32)((p->rng * 0x2545F4914F6CDD1DULL) >> 32);
}

static __u32 rnd_below(struct fg_proxy *p, __u32 n)
{
	return (__u32)(((__u64)rnd(p) * n) >> 32);
}

static size_t buf_used(const struct buf *b)
{
	return b->len - b->off;
}

static char *buf_data(const struct buf *b)
{
	return b->d + b->off;
}

static void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

static void buf_free(struct buf *b)
{
	free(b->d);
	b->d = NULL;
	b->off = b->len = b->cap = 0;
}

/* Makes room at the end so that up to `limit` bytes (capped at max) can be
 * held; returns the room, 0 when full or out of memory. */
static size_t buf_room(struct buf *b, size_t limit)
{
	size_t used = buf_used(b);

	if (limit > b->max)
		limit = b->max;
	if (used >= limit)
		return 0;
	if (b->cap < limit) {
		char *d = realloc(b->d, limit);

		if (!d)
			return 0;
		b->d = d;
		b->cap = limit;
	}
	if (b->off && b->cap - b->len < limit - used) {
		memmove(b->d, b->d + b->off, used);
		b->off = 0;
		b->len = used;
	}
	return b->cap - b->len < limit - used ? b->cap - b->len : limit - used;
}

static int buf_append(struct buf *b, const void *data, size_t n)
{
	if (buf_room(b, buf_used(b) + n) < n)
		return -ENOSPC;
	memcpy(b->d + b->len, data, n);
	b->len += n;
	return 0;
}

static void ep_set(struct fg_proxy *p, int fd, struct tag *tag, unsigned *cur, unsigned want)
{
	struct epoll_event ev = { .events = want, .data.ptr = tag };

	if (*cur == want)
		return;
	if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev))
		pr_warn("proxy: epoll_ctl(MOD) on fd %d: %s\n", fd, strerror(errno));
	*cur = want;
}

static int ep_add(struct fg_proxy *p, int fd, struct tag *tag, unsigned events)
{
	struct epoll_event ev = { .events = events, .data.ptr = tag };

	return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static bool ieq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && !strncasecmp(s, lit, n);
}

static const char *status_text(int status)
{
	switch (status) {
	case 400: return "Bad Request";
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

static void count_status(struct fg_proxy *p, int status)
{
	int cls = status / 100;

	if (cls >= 1 && cls <= 5)
		p->st.responses[cls]++;
}

/* ---------- the gateway's own resources ---------- */

/* Descriptors the proxy holds or has promised: two per client (itself and
 * the upstream it will need), the idle pooled upstreams, the pipes. */
static unsigned fds_reserved(const struct fg_proxy *p)
{
	return 2 * p->n_conns + p->n_pooled + 2 * p->n_pipes;
}

static bool fds_allow(const struct fg_proxy *p, unsigned more)
{
	return !p->fd_budget || fds_reserved(p) + more <= p->fd_budget;
}

static unsigned count_open_fds(void)
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
static void fd_budget_update(struct fg_proxy *p)
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

static int pipe_open(struct conn *c, struct fg_pipe *pp)
{
	struct fg_proxy *p = c->p;
	int err;

	if (!fds_allow(p, 2))
		return -EMFILE; /* the copy path needs no descriptor */
	err = fg_pipe_open(pp);
	if (!err)
		p->n_pipes++;
	return err;
}

static void pipe_close(struct fg_proxy *p, struct fg_pipe *pp)
{
	if (pp->rd >= 0)
		p->n_pipes--;
	fg_pipe_close(pp);
}

static void sockaddr_key(const struct sockaddr_storage *ss, struct fg_addr *a, __u8 *family)
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

static struct client_slot **client_find(struct fg_proxy *p, const struct fg_addr *a, __u8 family)
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
static struct client_slot *client_take(struct fg_proxy *p, const struct sockaddr_storage *ss)
{
	struct client_slot **sp, *cs;
	struct fg_addr a;
	__u8 family;

	sockaddr_key(ss, &a, &family);
	sp = client_find(p, &a, family);
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

static void client_release(struct fg_proxy *p, struct client_slot *cs)
{
	struct client_slot **sp;

	if (!cs || --cs->n)
		return;
	sp = client_find(p, &cs->addr, cs->family);
	if (*sp == cs) {
		*sp = cs->next;
		free(cs);
	}
}

/* Bytes the client has yet to get from us: out, and what the response
 * pipe holds (sent before out, which was empty when it was filled). */
static size_t out_pending(const struct conn *c)
{
	return buf_used(&c->out) + c->rp.len + (c->sm_barrier || c->win);
}

/* What client_flush can write now (EPOLLOUT interest). */
static size_t out_writable(const struct conn *c)
{
	return c->sm_barrier || c->win ? 0 : buf_used(&c->out) + c->rp.len;
}

static bool splicing(const struct conn *c)
{
	return c->p->mode != FG_L7_COPY && !c->no_splice;
}

/* The response body's next bytes can skip the buffers. */
static bool resp_spliceable(const struct conn *c)
{
	/* An upstream socket with the verdict program is read by recv()
	 * (the psock queue), never spliced from. */
	return splicing(c) && !(c->up && c->up->sk_cookie) && c->rs == R_BODY && !buf_used(&c->rin) &&
	       fg_http_framer_opaque(&c->rsf) >= SPLICE_MIN;
}

/* The request body's next bytes can skip the buffers: it is no longer
 * kept for a retry, and everything before them went. */
static bool req_spliceable(const struct conn *c)
{
	return splicing(c) && c->state == C_PROXY && !c->rq_done && !c->rq_abandoned &&
	       !c->replayable && !buf_used(&c->in) && c->upo_sent == c->upo.len && c->up &&
	       c->up->fd >= 0 && !c->up->connecting && fg_http_framer_opaque(&c->rqf) >= SPLICE_MIN;
}

/* ---------- data plane caches ---------- */

/* The cluster ring of a service, NULL when it has none; reread from the
 * maps after routing state changed (the data plane's epoch). */
static const __u32 *ring_get(struct fg_proxy *p, __u32 sid, __u32 *size)
{
	__u64 epoch = fg_dp_epoch(p->dp), *v, key = sid;
	struct ring_cache *rc;

	v = fg_hmap_get(&p->cache.rings, &key);
	if (v) {
		rc = (struct ring_cache *)(uintptr_t)*v;
	} else {
		rc = calloc(1, sizeof(*rc));
		if (!rc || fg_hmap_put(&p->cache.rings, &key, (uintptr_t)rc)) {
			free(rc);
			return NULL;
		}
		rc->epoch = epoch + 1; /* not read yet */
	}
	if (rc->epoch != epoch) {
		free(rc->ring);
		rc->ring = NULL;
		rc->size = 0;
		rc->epoch = epoch;
		if (fg_dp_ring_read(p->dp, sid, FG_RING_CLUSTERS, &rc->ring, &rc->size))
			rc->ring = NULL;
	}
	*size = rc->size;
	return rc->ring;
}

static bool excluded(__u32 id, const __u32 *ex, size_t n_ex)
{
	size_t i;

	for (i = 0; i < n_ex; i++)
		if (ex[i] == id)
			return true;
	return false;
}

/* A random up member of (sid, cidx) that is not excluded. */
static bool pick_in_cluster(struct fg_proxy *p, __u32 sid, __u32 cidx, const __u32 *ex,
			    size_t n_ex, __u32 *bid)
{
	const __u32 *members;
	struct fg_backend be;
	size_t n_members, i, n = 0;

	if (fg_dp_members(p->dp, sid, cidx, &members, &n_members) || !n_members)
		return false;
	if (n_members > p->cache.cap_cands) {
		__u32 *c = realloc(p->cache.cands, n_members * sizeof(*c));

		if (!c)
			return false;
		p->cache.cands = c;
		p->cache.cap_cands = n_members;
	}
	for (i = 0; i < n_members; i++) {
		if (fg_dp_backend_view(p->dp, members[i], &be) ||
		    (be.flags & (FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP)) !=
			    (FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP) ||
		    excluded(members[i], ex, n_ex))
			continue;
		p->cache.cands[n++] = members[i];
	}
	if (!n)
		return false;
	*bid = p->cache.cands[rnd_below(p, n)];
	return true;
}

/* A backend for service sid: a random slot of its cluster ring, then a
 * random up backend of that cluster; avoid_cluster (or -1) is taken only
 * when no other cluster can serve. */
static int pick_backend(struct fg_proxy *p, __u32 sid, const __u32 *ex, size_t n_ex,
			int avoid_cluster, __u32 *bid)
{
	bool tried[FG_MAX_CLUSTERS] = {};
	const __u32 *ring;
	__u32 start, i, c, size;
	int pass, t;

	ring = ring_get(p, sid, &size);
	if (!ring || !size)
		return -ENOENT;
	for (t = 0; t < 16; t++) {
		c = ring[rnd_below(p, size)];
		if (c >= FG_MAX_CLUSTERS || (int)c == avoid_cluster)
			continue;
		if (pick_in_cluster(p, sid, c, ex, n_ex, bid))
			return 0;
		tried[c] = true;
	}
	/* Unlucky draws: every cluster of the ring once, the avoided last. */
	start = rnd_below(p, size);
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < size; i++) {
			c = ring[(start + i) % size];
			if (c >= FG_MAX_CLUSTERS || tried[c] || (!pass && (int)c == avoid_cluster))
				continue;
			tried[c] = true;
			if (pick_in_cluster(p, sid, c, ex, n_ex, bid))
				return 0;
		}
	}
	return -ENOENT;
}

static void mark_down(struct fg_proxy *p, __u32 sid, __u32 bid, const char *why)
{
	char abuf[INET6_ADDRSTRLEN];
	struct fg_backend be;
	int err;

	/* Several requests in flight can fail on the same endpoint: it is
	 * marked, and its rings rebuilt, once. */
	if (fg_dp_backend_view(p->dp, bid, &be) || !(be.flags & FG_BACKEND_F_UP))
		return;
	err = fg_dp_set_backend_up(p->dp, bid, false);
	if (err) {
		pr_debug("proxy: cannot mark backend %u down: %s\n", bid, strerror(-err));
		return;
	}
	/* Every service with this endpoint: it is down for all of them. */
	err = fg_dp_backends_changed(p->dp, &bid, 1);
	if (err)
		pr_warn("proxy: cannot rebuild the rings of backend %u: %s\n", bid, strerror(-err));
	p->st.passive_down++;
	pr_warn("proxy: backend %u (%s:%u) of cluster %s marked down (service %u): %s\n", bid,
		fg_addr_str(&be.addr, be.family, abuf, sizeof(abuf)), ntohs(be.port),
		fg_dp_cluster_name(p->dp, be.cluster_idx), sid, why);
}

/* ---------- upstream connections ---------- */

static unsigned pool_hash(const struct pool_key *k)
{
	const unsigned char *b = (const unsigned char *)k;
	unsigned h = 2166136261u;
	size_t i;

	for (i = 0; i < sizeof(*k); i++)
		h = (h ^ b[i]) * 16777619u;
	return h % POOL_BUCKETS;
}

static struct pool **pool_find(struct fg_proxy *p, const struct pool_key *k)
{
	struct pool **pp = &p->pools[pool_hash(k)];

	while (*pp && memcmp(&(*pp)->key, k, sizeof(*k)))
		pp = &(*pp)->next;
	return pp;
}

static void up_close_fd(struct upstream *u)
{
	if (u->fd >= 0) {
		if (u->sk_cookie) {
			fg_sockmap_forget(u->p->sm, u->sk_cookie);
			u->sk_cookie = 0;
		}
		close(u->fd);
		u->fd = -1;
	}
}

static void up_close(struct upstream *u)
{
	if (u->dead)
		return;
	up_close_fd(u);
	u->dead = true;
	u->conn = NULL;
	u->next = u->p->dead_ups;
	u->p->dead_ups = u;
	u->p->n_upstreams--;
}

/* Takes u out of its pool (it must be pooled). */
static void pool_unlink(struct upstream *u)
{
	struct fg_proxy *p = u->p;
	struct pool **pp = pool_find(p, &u->key), *pl = *pp;
	struct upstream **up;

	if (!pl)
		return;
	for (up = &pl->top; *up; up = &(*up)->next) {
		if (*up == u) {
			*up = u->next;
			u->next = NULL;
			pl->n--;
			p->n_pooled--;
			break;
		}
	}
	u->pooled = false;
	if (!pl->n) {
		*pp = pl->next;
		free(pl);
	}
}

static struct upstream *pool_get(struct fg_proxy *p, const struct pool_key *k)
{
	struct pool *pl = *pool_find(p, k);
	struct upstream *u;

	if (!pl || !pl->top)
		return NULL;
	u = pl->top;
	pool_unlink(u);
	return u;
}

static void pool_put(struct upstream *u)
{
	struct fg_proxy *p = u->p;
	struct pool **pp = pool_find(p, &u->key), *pl = *pp;

	if (!p->opts.pool_max_idle || (pl && pl->n >= p->opts.pool_max_idle)) {
		up_close(u);
		return;
	}
	if (!pl) {
		pl = calloc(1, sizeof(*pl));
		if (!pl) {
			up_close(u);
			return;
		}
		pl->key = u->key;
		*pp = pl;
	}
	u->conn = NULL;
	u->pooled = true;
	u->since = now_ms();
	u->next = pl->top;
	pl->top = u;
	pl->n++;
	p->n_pooled++;
	/* Watch it: an idle connection that becomes readable was closed (or
	 * spoke out of turn) and is dropped. */
	ep_set(p, u->fd, &u->tag, &u->events, EPOLLIN);
}

static void backend_sockaddr(const struct pool_key *k, struct sockaddr_storage *ss, socklen_t *len)
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

static const char *key_str(const struct pool_key *k, char *buf, size_t len)
{
	char abuf[INET6_ADDRSTRLEN];

	fg_addr_str(&k->addr, k->family, abuf, sizeof(abuf));
	snprintf(buf, len, k->family == FG_AF_INET ? "%s:%u" : "[%s]:%u", abuf, ntohs(k->port));
	return buf;
}

/* A new connection toward k. Returns it connecting (or connected), or NULL
 * with *err: local failures (fg_local_errno: no descriptor, no local port,
 * no memory) as -errno, the peer's refusal as a positive errno. */
static struct upstream *up_connect(struct fg_proxy *p, const struct pool_key *k, int *err)
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
	p->st.upstream_connects++;
	backend_sockaddr(k, &ss, &slen);
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
	p->n_upstreams++;
	return u;
}

/* ---------- request records (opts.on_request) ---------- */

static void client_ip(const struct sockaddr_storage *ss, char *buf, size_t len);

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* The client's bytes consumed so far; bytes queued for it so far. */
static __u64 rec_consumed(const struct conn *c)
{
	return c->rx - buf_used(&c->in);
}

static __u64 rec_queued(const struct conn *c)
{
	return c->tx + buf_used(&c->out);
}

/* A request begins: req (NULL when none could be parsed) and its route
 * (NULL: none) are copied, since the plan may change before it ends. */
static void rec_begin(struct conn *c, const struct fg_http_request *req,
		      const struct fg_route *route)
{
	if (!c->p->opts.on_request)
		return;
	c->rec_open = true;
	fg_request_record_fill(&c->rec, &c->rec_store, c->ip, req, c->p->opts.record_details,
			       route);
	c->rec.start_ns = req || !c->head_start ? now_ns() : c->head_start * 1000000ULL;
}

/* The target chosen: a canary's, or the route's own. */
static void rec_target(struct conn *c, const struct fg_route *route, const struct fg_target *t)
{
	if (!c->rec_open)
		return;
	c->rec.service = c->service;
	fg_request_record_canary(&c->rec, &c->rec_store, route, t);
}

/* A try on an upstream begins. */
static void rec_upstream(struct conn *c, const void *addr, int family, __be16 port, __u32 cidx)
{
	struct fg_request_record *r = &c->rec;

	if (!c->rec_open)
		return;
	r->cluster_idx = cidx < FG_MAX_CLUSTERS ? (int)cidx : -1;
	r->up_family = family;
	memcpy(&r->up_addr, addr, sizeof(r->up_addr));
	r->up_port = ntohs(port);
	r->attempts++;
	r->up_start_ns = now_ns();
	r->up_connect_ns = r->up_header_ns = 0;
}

/* The final response head went to `out` (hdr_mark: queued before it). */
static void rec_response(struct conn *c, int status)
{
	if (!c->rec_open)
		return;
	c->rec.status = status;
	c->rec.up_header_ns = now_ns();
	c->rec.header_bytes_out = rec_queued(c) - c->hdr_mark;
}

/* The request ends: the record goes to opts.on_request. head_bytes: of
 * the response, when the proxy made it (< 0: as recorded). */
static void rec_end(struct conn *c, int status, enum fg_request_end end, long head_bytes)
{
	struct fg_proxy *p = c->p;
	struct fg_request_record *r = &c->rec;

	if (!p->opts.on_request)
		return;
	if (!c->rec_open)
		rec_begin(c, NULL, NULL); /* its head never parsed */
	r->status = status;
	r->end = end;
	r->end_ns = now_ns();
	if (head_bytes >= 0)
		r->header_bytes_out = head_bytes;
	r->bytes_in = rec_consumed(c) - c->in_mark;
	r->bytes_out = rec_queued(c) - c->out_mark;
	c->in_mark = rec_consumed(c);
	c->out_mark = rec_queued(c);
	c->rec_open = false;
	p->opts.on_request(r, p->opts.on_request_ctx);
}

/* A connection refused at accept (503 sent, sent bytes of it). */
static void rec_refused(struct fg_proxy *p, const struct sockaddr_storage *ss, long sent)
{
	struct fg_request_record r;
	char ip[INET6_ADDRSTRLEN];

	if (!p->opts.on_request)
		return;
	client_ip(ss, ip, sizeof(ip));
	fg_request_record_blank(&r, ip);
	r.status = 503;
	r.end = FG_REQ_REFUSED;
	r.bytes_out = sent > 0 ? sent : 0;
	r.start_ns = r.end_ns = now_ns();
	p->opts.on_request(&r, p->opts.on_request_ctx);
}

/* ---------- client connections ---------- */

static void conn_close(struct conn *c)
{
	struct fg_proxy *p = c->p;

	if (c->dead)
		return;
	if (c->rec_open)
		rec_end(c, c->resp_head_sent ? c->rec.status : 499, FG_REQ_ABORTED, -1);
	if (c->up) {
		up_close(c->up);
		c->up = NULL;
	}
	c->win = c->sm_barrier = false;
	if (c->sk_cookie)
		fg_sockmap_forget(p->sm, c->sk_cookie);
	close(c->fd);
	c->fd = -1;
	c->dead = true;
	client_release(p, c->slot);
	c->slot = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = p->dead_conns;
	p->dead_conns = c;
	p->n_conns--;
}

static void conn_free(struct conn *c)
{
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->upo);
	buf_free(&c->rin);
	pipe_close(c->p, &c->rp);
	pipe_close(c->p, &c->qp);
	fg_request_strings_free(&c->rec_store);
	free(c);
}

static void reap(struct fg_proxy *p)
{
	while (p->dead_conns) {
		struct conn *c = p->dead_conns;

		p->dead_conns = c->next;
		conn_free(c);
	}
	while (p->dead_ups) {
		struct upstream *u = p->dead_ups;

		p->dead_ups = u->next;
		free(u);
	}
}

/* Ends the exchange's upstream side: discards what it sent. */
static void sm_window_end(struct conn *c, bool withdraw);
static bool sm_barrier_passed(struct conn *c);
static void sm_join(struct upstream *u);

static void drop_upstream(struct conn *c)
{
	if (c->win)
		sm_window_end(c, true);
	if (c->up) {
		up_close(c->up);
		c->up = NULL;
	}
	c->rin.off = c->rin.len = 0;
	c->up_eof = false;
	c->up_errno = 0;
}

static void start_closing(struct conn *c)
{
	drop_upstream(c);
	c->close_after = true;
	c->state = C_CLOSING;
	c->in.off = c->in.len = 0;
}

/* A short text/plain answer. With close, the connection ends after it. */
static void respond_error(struct conn *c, int status, const char *text, bool close)
{
	char head[512];
	size_t blen = strlen(text) + 1;
	int n;

	count_status(c->p, status);
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
		     status, status_text(status), blen, close ? "Connection: close\r\n" : "");
	if (buf_append(&c->out, head, n) ||
	    (!c->is_head_req && (buf_append(&c->out, text, blen - 1) ||
				 buf_append(&c->out, "\n", 1))))
		close = true; /* cannot even say it: just close */
	rec_end(c, status, FG_REQ_ERROR, n);
	pr_debug("proxy: %s: %d %s\n", c->ip, status, text);
	if (close) {
		start_closing(c);
		return;
	}
	drop_upstream(c);
	c->state = C_HEAD;
	c->head_start = 0;
	c->served++;
}

/* The upstream failed after the response started: the client connection
 * just ends (what arrived is flushed first). */
static void abort_mid_response(struct conn *c, const char *why)
{
	pr_debug("proxy: %s: upstream failed mid-response (%s): closing\n", c->ip, why);
	if (c->rec_open)
		rec_end(c, c->rec.status ? c->rec.status : 502, FG_REQ_ABORTED, -1);
	start_closing(c);
}

static void bad_gateway(struct conn *c, int status, const char *why)
{
	if (c->resp_head_sent) {
		abort_mid_response(c, why);
		return;
	}
	respond_error(c, status, why, true);
}

/* ---------- routing ---------- */

static bool canary_header_match(struct fg_proxy *p, const struct fg_canary *cn,
				const struct fg_http_header *h, bool *never)
{
	*never = false;
	if (cn->header_value[0])
		return ieq(h->value, h->value_len, cn->header_value) &&
		       !strncmp(h->value, cn->header_value, h->value_len);
	/* PCRE2, unanchored, bounded work (fg_regex.h): no copy needed. */
	if (cn->has_pattern)
		return fg_regex_match(cn->pattern, h->value, h->value_len);
	if (ieq(h->value, h->value_len, "always") && !strncmp(h->value, "always", 6))
		return true;
	*never = ieq(h->value, h->value_len, "never") && !strncmp(h->value, "never", 5);
	return false;
}

/* The route's target or one of its canaries' for this request. */
static const struct fg_target *choose_target(struct fg_proxy *p, const struct fg_route *r,
					     const struct fg_http_request *req)
{
	bool never[FG_MAX_CANARIES] = {};
	double draw, acc = 0;
	size_t i;

	/* Header rules first, in the canaries' order. */
	for (i = 0; i < r->n_canaries; i++) {
		const struct fg_canary *cn = &r->canaries[i];
		const struct fg_http_header *h;

		if (!cn->header[0] || !(h = fg_http_find(req, cn->header)))
			continue;
		if (canary_header_match(p, cn, h, &never[i]))
			return cn->target;
	}
	/* Then cookies: "always" chooses, "never" excludes. */
	for (i = 0; i < r->n_canaries; i++) {
		const struct fg_canary *cn = &r->canaries[i];
		const char *v;
		size_t n;

		if (never[i] || !cn->cookie[0] || !fg_http_cookie(req, cn->cookie, &v, &n))
			continue;
		if (n == 6 && !memcmp(v, "always", 6))
			return cn->target;
		if (n == 5 && !memcmp(v, "never", 5))
			never[i] = true;
	}
	/* Then weights: consecutive slices of [0, 1); an excluded canary's
	 * slice and the remainder go to the main target. */
	draw = (double)rnd(p) / 4294967296.0;
	for (i = 0; i < r->n_canaries; i++) {
		const struct fg_canary *cn = &r->canaries[i];

		if (!cn->has_weight || !cn->weight_total)
			continue;
		acc += (double)cn->weight / cn->weight_total;
		if (draw < acc)
			return never[i] ? r->target : cn->target;
	}
	return r->target;
}

static const struct fg_route *find_route(const struct fg_plan *plan, const char *host,
					 const char *path)
{
	size_t i;

	for (i = 0; plan && i < plan->n_routes; i++) {
		const struct fg_route *r = &plan->routes[i];

		if (fg_host_matches(r->host, r->wildcard, host) &&
		    fg_path_matches(r->type, r->path, path))
			return r;
	}
	return NULL;
}

/* Drops the forwarding fields fg_http_rewrite_head added (xff off). */
static size_t strip_forwarded(char *h, size_t len)
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

static void reset_exchange(struct conn *c)
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
}

/* RFC 9110 §9.2.2: the methods a proxy may send again. */
static bool method_idempotent(const char *m, size_t n)
{
	static const char *const idem[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE" };
	size_t i;

	for (i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
		if (strlen(idem[i]) == n && !memcmp(m, idem[i], n))
			return true;
	return false;
}

/* A complete head of hlen bytes is at the start of c->in (parsed into
 * p->req): route it and start the exchange. */
static void start_request(struct conn *c, size_t hlen)
{
	struct fg_proxy *p = c->p;
	const struct fg_http_request *req = &p->req;
	const struct fg_route *route;
	const struct fg_target *t;
	bool has_body;
	char msg[FG_HOST_LEN + 600];
	size_t plen;
	__u32 bid;
	int sid, n;

	reset_exchange(c);
	c->is_head_req = req->method_len == 4 && !memcmp(req->method, "HEAD", 4);
	c->idempotent = method_idempotent(req->method, req->method_len);
	c->version_minor = req->version_minor;
	c->req_ka = req->keep_alive;
	c->close_after = !req->keep_alive || c->eof;
	has_body = !(req->body == FG_BODY_NONE ||
		     (req->body == FG_BODY_LENGTH && !req->content_length));

	plen = req->path_len < p->scratch_len ? req->path_len : p->scratch_len - 1;
	memcpy(p->scratch, req->path, plen);
	p->scratch[plen] = '\0';
	route = find_route(fg_control_plan(p->control), req->host_len ? req->host : "",
			   p->scratch);
	rec_begin(c, req, route);
	if (!route) {
		snprintf(msg, sizeof(msg), "no route for %s %.512s",
			 req->host_len ? req->host : "(no host)", p->scratch);
		buf_consume(&c->in, hlen);
		respond_error(c, 404, msg, has_body || c->close_after);
		return;
	}
	c->policy = route->policy;
	t = choose_target(p, route, req);
	snprintf(c->service, sizeof(c->service), "%s/%s%s%s", t->ns, t->service,
		 t->subset[0] ? " subset " : "", t->subset);
	rec_target(c, route, t);
	sid = fg_control_service_id(p->control, t);
	if (sid < 0 || pick_backend(p, sid, NULL, 0, -1, &bid)) {
		snprintf(msg, sizeof(msg), "no healthy cluster for %s", c->service);
		buf_consume(&c->in, hlen);
		respond_error(c, 503, msg, has_body || c->close_after);
		return;
	}
	c->service_id = sid;

	/* The head for the upstream; the body follows it in upo. */
	c->upo.max = 2 * p->opts.max_head + 4096 + REPLAY_MAX;
	if (buf_room(&c->upo, hlen + 1024) < hlen + 1024) {
		respond_error(c, 500, "out of memory", true);
		return;
	}
	n = fg_http_rewrite_head(req, c->ip, "http", c->upo.d, c->upo.cap);
	if (n == -ENOSPC && buf_room(&c->upo, 2 * hlen + 4096) >= 2 * hlen + 4096)
		n = fg_http_rewrite_head(req, c->ip, "http", c->upo.d, c->upo.cap);
	if (n < 0) {
		respond_error(c, n == -ENOSPC ? 431 : 400,
			      n == -ENOSPC ? "request head too large" : "cannot forward this request",
			      true);
		return;
	}
	if (!p->opts.xff)
		n = strip_forwarded(c->upo.d, n);
	c->upo.off = 0;
	c->upo.len = n;
	c->upo_limit = n + REPLAY_MAX;
	fg_http_framer_init(&c->rqf, req);
	fg_http_framer_set_filter(&c->rqf, FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED);
	c->rq_done = fg_http_framer_done(&c->rqf);
	buf_consume(&c->in, hlen); /* req points into in: not used past here */
	c->state = C_PROXY;
	c->attempts = 1;
	dispatch(c, bid, true);
}

/* The try's request bytes reached the upstream: may they go to another? */
static bool may_resend(const struct conn *c)
{
	return !c->req_sent || c->idempotent || (c->policy.next_upstream & FG_NU_NON_IDEMPOTENT);
}

/* The route's proxy-next-upstream word for a failure. */
static __u32 retry_flag(enum fail_kind kind)
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
static bool waiting_on_client(const struct conn *c)
{
	return !c->rq_done && !c->rq_abandoned && c->upo_sent == c->upo.len && !c->qp.len &&
	       !buf_used(&c->in);
}

static void final_error(struct conn *c, enum fail_kind kind, const char *why)
{
	char msg[320];

	switch (kind) {
	case F_LOCAL:
		snprintf(msg, sizeof(msg), "gateway out of local resources (%s)", why);
		bad_gateway(c, 503, msg);
		break;
	case F_HEAD_TIMEOUT:
		bad_gateway(c, 504, why);
		break;
	default:
		bad_gateway(c, 502, why);
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
static void upstream_failed(struct conn *c, enum fail_kind kind, int err, const char *what)
{
	struct fg_proxy *p = c->p;
	struct upstream *u = c->up;
	char why[256], kbuf[64];
	__u32 bid;
	int cidx;
	bool reused, own_fault, retry;

	if (!u) {
		final_error(c, kind, what);
		return;
	}
	bid = u->backend_id;
	cidx = (int)u->cluster_idx;
	reused = u->reused;
	snprintf(why, sizeof(why), "upstream %s %s%s%s", key_str(&u->key, kbuf, sizeof(kbuf)),
		 what, err ? ": " : "", err ? strerror(err) : "");
	if (kind == F_HEAD_TIMEOUT && !c->rq_done) {
		/* It stopped taking the request: what is left of it cannot
		 * be resent. */
		drop_upstream(c);
		final_error(c, kind, why);
		return;
	}
	if (kind != F_STATUS && kind != F_INVALID_HEADER && !c->rq_done && c->req_sent) {
		/* It gave up in the middle of the request body. When the
		 * client was the one keeping it waiting, the client gets the
		 * blame (408); either way the backend keeps its place. */
		bool slow_client = waiting_on_client(c);

		drop_upstream(c);
		if (slow_client) {
			p->st.client_timeouts++;
			pr_debug("proxy: %s: %s while waiting for the client's body: 408\n", c->ip, why);
			respond_error(c, 408, "request body not received in time", true);
		} else {
			bad_gateway(c, 502, why);
		}
		return;
	}
	drop_upstream(c);
	if ((c->resp_bytes && kind != F_STATUS && kind != F_INVALID_HEADER) || !c->replayable) {
		bad_gateway(c, 502, why);
		return;
	}
	if (reused && !c->fresh_retry && (kind == F_SEND || kind == F_NO_RESPONSE)) {
		/* A kept-alive connection the upstream had closed: not the
		 * backend's fault; again on a new connection, when it may be
		 * sent again. */
		if (!may_resend(c)) {
			p->st.not_retried++;
			bad_gateway(c, 502, why);
			return;
		}
		c->fresh_retry = true;
		c->req_sent = false;
		c->upo_sent = 0;
		c->resp_bytes = false;
		dispatch(c, bid, false);
		return;
	}
	own_fault = kind == F_CONNECT || kind == F_CONNECT_TIMEOUT ||
		    (kind == F_NO_RESPONSE || kind == F_SEND);
	if (own_fault)
		mark_down(p, c->service_id, bid, why);
	retry = kind == F_STATUS || (c->policy.next_upstream & retry_flag(kind));
	if (retry && !may_resend(c)) {
		p->st.not_retried++;
		pr_debug("proxy: %s: %s; not resent: the request reached it and its method is "
			 "not idempotent\n", c->ip, why);
		retry = false;
	}
	if (c->attempts <= FG_NU_MAX_TRIES)
		c->tried[c->attempts - 1] = bid;
	if (retry && c->attempts < c->policy.next_upstream_tries &&
	    !pick_backend(p, c->service_id, c->tried, c->attempts, cidx, &bid)) {
		c->attempts++;
		p->st.retries++;
		c->req_sent = false;
		c->upo_sent = 0;
		c->resp_bytes = false;
		c->rs = R_HEAD;
		pr_debug("proxy: %s: %s; retrying on backend %u\n", c->ip, why, bid);
		dispatch(c, bid, true);
		return;
	}
	final_error(c, kind, why);
}

/* A pooled connection the upstream closed while it idled reads as EOF:
 * checked before a request that may not be sent twice goes on it. */
static bool pooled_alive(const struct upstream *u)
{
	char b;
	ssize_t n = recv(u->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Gets c an upstream connection to backend bid (pooled when use_pool). */
static void dispatch(struct conn *c, __u32 bid, bool use_pool)
{
	struct fg_proxy *p = c->p;
	struct fg_backend bev, *be = &bev;
	struct pool_key key = {};
	struct upstream *u = NULL;
	char kbuf[64], what[96];
	int err = 0;

	if (fg_dp_backend_view(p->dp, bid, &bev)) {
		bad_gateway(c, 502, "backend gone");
		return;
	}
	key.addr = be->addr;
	key.port = be->port;
	key.family = be->family;
	rec_upstream(c, &key.addr, key.family, key.port, be->cluster_idx);
	while (use_pool && (u = pool_get(p, &key))) {
		if (c->idempotent || pooled_alive(u)) {
			u->reused = true;
			c->rec.up_connect_ns = c->rec.up_start_ns;
			p->st.upstream_reuses++;
			break;
		}
		up_close(u);
	}
	if (!u) {
		u = up_connect(p, &key, &err);
		if (!u && err < 0) {
			snprintf(what, sizeof(what), "connect to %s", key_str(&key, kbuf, sizeof(kbuf)));
			fg_local_error(&p->local, err, what);
		}
	}
	if (!u) {
		/* Failed at once: as if the connection had been made. */
		struct upstream tmp = { .key = key, .backend_id = bid, .service_id = c->service_id,
					.cluster_idx = be->cluster_idx, .fd = -1, .p = p };

		if (err > 0)
			p->st.connect_failures++;
		u = calloc(1, sizeof(*u));
		if (!u) {
			bad_gateway(c, 503, "gateway out of memory");
			return;
		}
		*u = tmp;
		u->tag.kind = T_UPSTREAM;
		u->tag.obj = u;
		p->n_upstreams++;
		c->up = u;
		if (err < 0)
			upstream_failed(c, F_LOCAL, -err, "could not be connected to");
		else
			upstream_failed(c, F_CONNECT, err, "refused the connection");
		return;
	}
	u->conn = c;
	u->backend_id = bid;
	u->service_id = c->service_id;
	u->cluster_idx = be->cluster_idx;
	c->up = u;
	c->up_activity = now_ms();
}

/* ---------- moving bytes ---------- */

static int client_read(struct conn *c)
{
	if (req_spliceable(c))
		return 0; /* splice_request takes them */
	for (;;) {
		size_t room = buf_room(&c->in, c->in.max);
		ssize_t n;

		if (!room)
			return 0;
		n = recv(c->fd, c->in.d + c->in.len, room, 0);
		if (n > 0) {
			c->in.len += n;
			c->rx += n;
			c->activity = c->last_rx = now_ms();
			if ((size_t)n < room)
				return 0;
			continue;
		}
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
}

static int client_flush(struct conn *c)
{
	if (c->win || !sm_barrier_passed(c))
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
		ssize_t n = send(c->fd, buf_data(&c->out), buf_used(&c->out),
				 MSG_NOSIGNAL | MSG_DONTWAIT);

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
static int up_flush(struct conn *c)
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
		sm_join(u);
	while (u && u->fd >= 0 && !u->connecting && c->upo_sent < c->upo.len) {
		ssize_t n = send(u->fd, c->upo.d + c->upo_sent, c->upo.len - c->upo_sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

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

static size_t rin_limit(const struct conn *c)
{
	if (c->win)
		return 0; /* the kernel has the upstream's bytes */
	if (c->rs == R_HEAD)
		return FG_HTTP_RESP_MAX_HEAD;
	if (c->rs == R_BODY && resp_spliceable(c))
		return 0; /* splice_response takes them */
	return c->rs == R_BODY ? BODY_WINDOW : 0;
}

static void up_read(struct conn *c)
{
	struct upstream *u = c->up;

	while (u && u->fd >= 0 && !u->connecting && !c->up_eof) {
		size_t room = buf_room(&c->rin, rin_limit(c));
		ssize_t n;

		if (!room)
			return;
		n = recv(u->fd, c->rin.d + c->rin.len, room, 0);
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
			if ((size_t)n < room)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		c->up_eof = true;
		c->up_errno = n < 0 ? errno : 0;
		/* Nothing more will come: stop watching it now. */
		up_close_fd(u);
	}
}

/* Room in upo for body bytes; drops replayability when the body outgrows
 * what a retry may resend. */
static size_t upo_room(struct conn *c)
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
static bool pump_request(struct conn *c)
{
	bool moved = false;

	while (!c->rq_done && !c->rq_abandoned && buf_used(&c->in)) {
		size_t room = upo_room(c), avail = buf_used(&c->in), k, out_len;
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
				bad_gateway(c, 400, "malformed chunked request body");
				return true;
			}
			k = r;
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

static bool conn_lists(const struct fg_http_response *resp, const char *name, size_t nlen)
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

static bool hop_by_hop(const struct fg_http_response *resp, const struct fg_http_header *h)
{
	return ieq(h->name, h->name_len, "connection") || ieq(h->name, h->name_len, "keep-alive") ||
	       ieq(h->name, h->name_len, "proxy-connection") ||
	       ieq(h->name, h->name_len, "upgrade") ||
	       (!ieq(h->name, h->name_len, "transfer-encoding") &&
		!ieq(h->name, h->name_len, "content-length") &&
		conn_lists(resp, h->name, h->name_len));
}

/* The response head for the client, from p->resp. */
static int put_response_head(struct conn *c, const struct fg_http_response *r)
{
	struct buf *o = &c->out;
	size_t need = 64 + r->reason_len + 64;
	/* An HTTP/1.0 client gets a chunked body de-chunked, until close. */
	bool dechunk = !r->interim && r->body == FG_BODY_CHUNKED && c->version_minor == 0;
	char line[64];
	unsigned i;
	int n;

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

		if (hop_by_hop(r, h))
			continue;
		if (dechunk && (ieq(h->name, h->name_len, "transfer-encoding") ||
				ieq(h->name, h->name_len, "trailer")))
			continue;
		buf_append(o, h->name, h->name_len);
		buf_append(o, ": ", 2);
		buf_append(o, h->value, h->value_len);
		buf_append(o, "\r\n", 2);
	}
	if (!r->interim) {
		if (c->close_after)
			buf_append(o, "Connection: close\r\n", 19);
		else if (c->version_minor == 0)
			buf_append(o, "Connection: keep-alive\r\n", 24);
	}
	buf_append(o, "\r\n", 2);
	return 0;
}

/* The route sends a request answered with this status to another
 * endpoint (proxy-next-upstream http_NNN), and this one can go: nothing
 * went to the client yet, it can be resent, tries and endpoints are left.
 * When it cannot, the response is relayed as it is. */
static bool status_retry(struct conn *c, int status)
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
	if (!may_resend(c)) {
		c->p->st.not_retried++;
		return false;
	}
	memcpy(ex, c->tried, (c->attempts - 1) * sizeof(ex[0]));
	ex[c->attempts - 1] = c->up->backend_id;
	return !pick_backend(c->p, c->service_id, ex, c->attempts, (int)c->up->cluster_idx, &bid);
}

/* Response: rin -> out. Returns true on progress. */
static bool pump_response(struct conn *c)
{
	struct fg_proxy *p = c->p;
	struct fg_http_response *r = &p->resp;
	bool moved = false;

	while (c->rs == R_HEAD) {
		size_t used = buf_used(&c->rin);
		const char *why = NULL;
		int n;

		if (!used) {
			if (c->up_eof)
				upstream_failed(c, F_NO_RESPONSE, c->up_errno,
						c->up_errno ? "reset before responding"
							    : "closed before responding");
			return moved;
		}
		n = fg_http_parse_response(buf_data(&c->rin), used, c->is_head_req, r, &why);
		if (n == 0) {
			if (used >= FG_HTTP_RESP_MAX_HEAD)
				bad_gateway(c, 502, "upstream response head too large");
			else if (c->up_eof)
				bad_gateway(c, 502, "upstream closed in the middle of its response head");
			return true;
		}
		if (n < 0) {
			char msg[200];

			snprintf(msg, sizeof(msg), "sent an invalid response: %s",
				 why ? why : "malformed");
			upstream_failed(c, F_INVALID_HEADER, 0, msg);
			return true;
		}
		if (r->interim) {
			if (r->status == 101) {
				bad_gateway(c, 502, "upstream switched protocols");
				return true;
			}
			/* 100 Continue and friends go to HTTP/1.1 clients. */
			if (c->version_minor >= 1 && put_response_head(c, r))
				return moved; /* wait for the client to drain out */
			buf_consume(&c->rin, n);
			moved = true;
			continue;
		}
		if (status_retry(c, r->status)) {
			char msg[64];

			snprintf(msg, sizeof(msg), "answered %d", r->status);
			upstream_failed(c, F_STATUS, 0, msg);
			return true;
		}
		/* A response before the whole request went: no reuse, and
		 * the rest of the request cannot be told from a next one. */
		if (!c->rq_done || r->body == FG_BODY_CLOSE ||
		    (r->body == FG_BODY_CHUNKED && c->version_minor == 0))
			c->close_after = true;
		c->hdr_mark = rec_queued(c);
		if (put_response_head(c, r))
			return moved;
		count_status(p, r->status);
		rec_response(c, r->status);
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
		size_t room = buf_room(&c->out, BODY_WINDOW), avail = buf_used(&c->rin), k, out_len;
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
				abort_mid_response(c, "malformed chunked response body");
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
			abort_mid_response(c, "upstream closed mid-body");
		}
		return true;
	}
	return moved;
}

/* splice mode: response body bytes upstream -> pipe -> client. Returns true
 * on progress. */
static bool splice_response(struct conn *c)
{
	struct upstream *u = c->up;
	bool moved = false;

	while (u && u->fd >= 0 && !u->connecting && !c->up_eof && resp_spliceable(c) &&
	       !buf_used(&c->out)) {
		unsigned long long opaque = fg_http_framer_opaque(&c->rsf);
		ssize_t n;

		if (c->rp.len) {
			n = fg_pipe_drain(&c->rp, c->fd);
			if (n > 0)
				c->activity = now_ms();
			if (n < 0 || c->rp.len)
				break; /* client_flush reports the error */
		}
		if (c->rp.rd < 0 && pipe_open(c, &c->rp)) {
			c->no_splice = true;
			break;
		}
		n = fg_pipe_fill(&c->rp, u->fd, opaque > (1ULL << 30) ? (1UL << 30) : (size_t)opaque);
		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			c->up_eof = true;
			c->up_errno = n < 0 ? (int)-n : 0;
			up_close_fd(u);
			moved = true;
			break;
		}
		fg_http_framer_skip(&c->rsf, n);
		c->p->spliced_bytes += n;
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
static bool splice_request(struct conn *c)
{
	bool moved = false;

	while (req_spliceable(c) && !c->qp.len) {
		unsigned long long opaque = fg_http_framer_opaque(&c->rqf);
		ssize_t n;

		if (c->qp.rd < 0 && pipe_open(c, &c->qp)) {
			c->no_splice = true;
			break;
		}
		n = fg_pipe_fill(&c->qp, c->fd, opaque > (1ULL << 30) ? (1UL << 30) : (size_t)opaque);
		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			c->eof = true;
			moved = true;
			break;
		}
		fg_http_framer_skip(&c->rqf, n);
		c->p->spliced_bytes += n;
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

static void sm_arm(struct fg_proxy *p)
{
	struct itimerspec its = { .it_interval = { 0, SM_TICK_NS }, .it_value = { 0, SM_TICK_NS } };

	if (p->tfd >= 0 && !p->tarmed && !timerfd_settime(p->tfd, 0, &its, NULL))
		p->tarmed = true;
}

/* The kernel moved k more bytes of the response to the client. */
static void sm_account(struct conn *c, __u64 total_redirected)
{
	struct upstream *u = c->up;
	__u64 k = total_redirected - u->sk_kseen;

	if (!k)
		return;
	u->sk_kseen = total_redirected;
	fg_http_framer_skip(&c->rsf, k);
	c->p->kernel_bytes += k;
	c->p->spliced_bytes += k;
	c->tx += k;
	c->sm_target += k;
	c->sm_barrier = true;
	c->resp_bytes = true;
	c->up_activity = c->activity = now_ms();
	/* R_DONE only once the window is over (sm_window_end). */
	if (!c->win && fg_http_framer_done(&c->rsf))
		c->rs = R_DONE;
}

static void sm_window_end(struct conn *c, bool withdraw)
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
		up_close_fd(u);
		return;
	}
	sm_account(c, st.total_redirected);
	if (!withdraw)
		fg_sockmap_withdraw(c->p->sm, u->sk_cookie, u->fd, &st); /* tidy: no entry left */
	if (c->rs == R_BODY && fg_http_framer_done(&c->rsf))
		c->rs = R_DONE;
}

/* The client's stream holds what the kernel redirected to it. */
static bool sm_barrier_passed(struct conn *c)
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
static void sm_join(struct upstream *u)
{
	struct fg_proxy *p = u->p;
	int err;

	if (!p->sm || u->sk_tried || u->connecting || u->fd < 0)
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
static bool sockmap_response(struct conn *c)
{
	struct upstream *u = c->up;
	struct fg_proxy *p = c->p;
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
			sm_window_end(c, false);
			return true;
		}
		if (st.gen == c->win_gen) {
			sm_account(c, st.total_redirected); /* progress */
			if (fg_http_framer_done(&c->rsf)) {
				/* All of it, `closed` not visible yet. */
				sm_window_end(c, true);
				return true;
			}
		}
		if (poll(&pfd, 1, 0) > 0 &&
		    ((pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) || st.gen != c->win_gen)) {
			/* Closed, or readable before the program adopted
			 * the window (a byte passed before it, or one the
			 * program is about to see): withdraw it. */
			sm_window_end(c, true);
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
	p->windows++;
	sm_arm(p);
	return true;
}

/* The response is complete: the upstream goes back to the pool if it can,
 * the client to its next request. */
static void finish_exchange(struct conn *c)
{
	struct upstream *u = c->up;
	bool reusable = u && u->fd >= 0 && c->resp_ka && c->rq_done &&
			c->upo_sent == c->upo.len && !c->qp.len && !buf_used(&c->rin) && !c->up_eof;

	rec_end(c, c->rec.status, FG_REQ_DONE, -1);
	c->up = NULL;
	if (u) {
		if (reusable)
			pool_put(u);
		else
			up_close(u);
	}
	buf_free(&c->rin);
	buf_free(&c->upo);
	c->served++;
	if (c->close_after || !c->rq_done) {
		start_closing(c);
		return;
	}
	c->state = C_HEAD;
	c->head_start = 0;
	c->activity = now_ms();
}

static bool step_head(struct conn *c)
{
	struct fg_proxy *p = c->p;
	const char *why = NULL;
	size_t used = buf_used(&c->in);
	int r;

	if (!used) {
		if (c->eof && !out_pending(c))
			conn_close(c);
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
			p->st.requests++;
			c->is_head_req = false;
			respond_error(c, 431, "request header fields too large", true);
			return true;
		}
		if (c->eof) {
			/* A partial head, then the end: nothing to answer. */
			if (!out_pending(c))
				conn_close(c);
			else
				start_closing(c);
			return false;
		}
		return false;
	}
	p->st.requests++;
	if (r < 0) {
		c->is_head_req = false;
		respond_error(c, -r, why ? why : "bad request", true);
		return true;
	}
	start_request(c, (size_t)r);
	return true;
}

static bool step_proxy(struct conn *c)
{
	bool moved = false;
	int r;

	if (!c->rq_done) {
		moved |= pump_request(c);
		if (c->state == C_PROXY)
			moved |= splice_request(c);
	}
	if (c->state != C_PROXY)
		return true;
	if (!c->rq_done && !c->rq_abandoned && c->eof && !buf_used(&c->in)) {
		/* The client went away in the middle of its request. */
		conn_close(c);
		return false;
	}
	if (c->up && c->up->fd >= 0 && !c->up->connecting) {
		r = up_flush(c);
		if (r < 0) {
			if (c->resp_bytes) {
				/* It answered already (an early response) and
				 * takes no more: the request's rest is dropped,
				 * the response still read. */
				c->rq_abandoned = true;
				c->upo_sent = c->upo.len;
				pipe_close(c->p, &c->qp);
				c->close_after = true;
			} else {
				if (fg_local_errno(-r))
					fg_local_error(&c->p->local, -r, "send to an upstream");
				upstream_failed(c, fg_local_errno(-r) ? F_LOCAL : F_SEND, -r,
						"failed while sending the request");
				return true;
			}
		}
		moved |= r > 0;
		moved |= sockmap_response(c);
		if (!c->win)
			up_read(c);
		moved |= splice_response(c);
		moved |= sockmap_response(c);
	}
	moved |= pump_response(c);
	if (c->state != C_PROXY)
		return true;
	if (c->rs == R_DONE) {
		finish_exchange(c);
		return true;
	}
	return moved;
}

static void start_linger(struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
	c->state = C_LINGER;
	c->linger_start = now_ms();
}

static void linger_read(struct conn *c)
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
		conn_close(c);
		return;
	}
}

static void update_events(struct conn *c)
{
	struct fg_proxy *p = c->p;
	unsigned want = 0;

	if (c->state == C_LINGER) {
		want = EPOLLIN;
	} else {
		if (!c->eof && c->state != C_CLOSING && buf_used(&c->in) < c->in.max &&
		    !(req_spliceable(c) && c->qp.len))
			want |= EPOLLIN;
		if (out_writable(c))
			want |= EPOLLOUT;
	}
	ep_set(p, c->fd, &c->tag, &c->events, want);
	if (c->up && c->up->fd >= 0) {
		struct upstream *u = c->up;
		unsigned uw = 0;

		if (u->connecting) {
			uw = EPOLLOUT;
		} else {
			if (c->upo_sent < c->upo.len || c->qp.len)
				uw |= EPOLLOUT;
			if (!c->up_eof && buf_used(&c->rin) < rin_limit(c))
				uw |= EPOLLIN;
			if (!c->up_eof && resp_spliceable(c) && !out_pending(c))
				uw |= EPOLLIN;
			/* An open window is watched by the timer (sockmap_response
			 * polls the upstream): level-triggered EPOLLIN would fire
			 * for an skb queued but not yet through the verdict. */
		}
		ep_set(p, u->fd, &u->tag, &u->events, uw);
	}
}

static void conn_progress(struct conn *c)
{
	int guard;

	for (guard = 0; guard < 64 && !c->dead; guard++) {
		bool moved = false;

		if (out_pending(c)) {
			int err = client_flush(c);

			if (err) {
				conn_close(c);
				return;
			}
		}
		switch (c->state) {
		case C_HEAD:
			moved = step_head(c);
			break;
		case C_PROXY:
			moved = step_proxy(c);
			break;
		case C_CLOSING:
			if (!out_pending(c)) {
				start_linger(c);
				linger_read(c);
			}
			break;
		case C_LINGER:
			break;
		}
		if (!moved)
			break;
	}
	if (!c->dead)
		update_events(c);
}

/* ---------- events ---------- */

static void on_client(struct conn *c, unsigned ev)
{
	if (ev & EPOLLERR) {
		conn_close(c);
		return;
	}
	if (c->state == C_LINGER) {
		linger_read(c);
		return;
	}
	if (ev & EPOLLHUP) {
		/* Both ways shut: nobody left to answer. */
		conn_close(c);
		return;
	}
	if ((ev & EPOLLIN) && client_read(c)) {
		conn_close(c);
		return;
	}
	conn_progress(c);
}

static void on_upstream(struct upstream *u, unsigned ev)
{
	struct conn *c = u->conn;

	if (!c) {
		/* Pooled and readable: closed by the upstream, or it sent
		 * something unasked. Either way it cannot be reused. */
		pool_unlink(u);
		up_close(u);
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
					 key_str(&u->key, kbuf, sizeof(kbuf)));
				fg_local_error(&c->p->local, err, what);
				upstream_failed(c, F_LOCAL, err, "could not be connected to");
			} else {
				c->p->st.connect_failures++;
				upstream_failed(c, F_CONNECT, err, "connect failed");
			}
			conn_progress(c);
			return;
		}
		if (!(ev & EPOLLOUT))
			return;
		u->connecting = false;
		c->up_activity = now_ms();
		if (c->rec_open)
			c->rec.up_connect_ns = now_ns();
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		up_read(c);
	if ((ev & (EPOLLERR | EPOLLHUP)) && u->fd >= 0 && !c->up_eof) {
		/* Could not read it all (rin full): the error is reported
		 * over and over until the fd goes, so it goes now. */
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		c->up_eof = true;
		c->up_errno = err ? err : ECONNRESET;
		up_close_fd(u);
	}
	conn_progress(c);
}

/* sockmap: open windows and pending barriers are checked every tick. */
static void on_timer(struct fg_proxy *p)
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
		conn_progress(c);
		n += !c->dead && (c->win || c->sm_barrier);
	}
	if (!n && p->tarmed) {
		timerfd_settime(p->tfd, 0, &off, NULL);
		p->tarmed = false;
	}
}

/* A 503 at once and the connection closed: nothing of the client's is
 * read, so this costs no buffer. */
static void refuse(struct fg_proxy *p, int fd, const struct sockaddr_storage *ss, const char *why)
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
	count_status(p, 503);
	rec_refused(p, ss, sent);
}

static void client_ip(const struct sockaddr_storage *ss, char *buf, size_t len)
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

static void do_accept(struct fg_proxy *p)
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
			refuse(p, fd, &ss, "too many connections");
			continue;
		}
		if (!fds_allow(p, FD_HEADROOM)) {
			p->st.refused_fds++;
			refuse(p, fd, &ss,
			       "too many connections: the gateway is at its file descriptor limit");
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->slot = client_take(p, &ss);
		if (!c->slot) {
			free(c);
			p->st.refused_per_client++;
			refuse(p, fd, &ss, "too many connections from your address");
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
		client_ip(&ss, c->ip, sizeof(c->ip));
		c->events = EPOLLIN;
		if (ep_add(p, fd, &c->tag, c->events)) {
			client_release(p, c->slot);
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

/* The exchange waits for the upstream (not for the client): it has request
 * bytes it does not take, or the whole request and no answer yet, or
 * response body to send while the client is keeping up. */
static bool waiting_on_upstream(const struct conn *c)
{
	if (c->upo_sent < c->upo.len || c->qp.len)
		return true;
	if (c->rs == R_HEAD)
		return c->rq_done || c->rq_abandoned;
	return c->rs == R_BODY && !out_pending(c);
}

static void check_conn(struct conn *c, __u64 now)
{
	const struct fg_proxy_opts *o = &c->p->opts;
	struct upstream *u = c->up;

	switch (c->state) {
	case C_HEAD:
		if (c->head_start && now - c->head_start >= o->header_timeout_ms) {
			c->p->st.timeouts++;
			c->is_head_req = false;
			respond_error(c, 408, "request header timeout", true);
			conn_progress(c);
		} else if (now - c->activity >= o->idle_timeout_ms &&
			   (!buf_used(&c->in) || out_pending(c))) {
			/* idle keep-alive, or a client that stopped reading */
			conn_close(c);
		}
		break;
	case C_PROXY:
		if (u && u->connecting && now - u->since >= o->upstream_connect_timeout_ms) {
			c->p->st.timeouts++;
			c->p->st.connect_failures++;
			upstream_failed(c, F_CONNECT_TIMEOUT, ETIMEDOUT, "connect");
			conn_progress(c);
		} else if (u && c->rs == R_HEAD && waiting_on_upstream(c) &&
			   now - c->up_activity >= o->upstream_timeout_ms) {
			char msg[128];

			c->p->st.timeouts++;
			snprintf(msg, sizeof(msg), "did not answer within %u ms",
				 o->upstream_timeout_ms);
			upstream_failed(c, F_HEAD_TIMEOUT, 0, msg);
			conn_progress(c);
		} else if (c->rs == R_HEAD && !c->resp_bytes && waiting_on_client(c) &&
			   now - c->last_rx >= o->client_body_timeout_ms) {
			/* nginx's client_body_timeout: the client's fault, not
			 * the upstream's that waits for the rest. */
			c->p->st.client_timeouts++;
			c->p->st.timeouts++;
			respond_error(c, 408, "request body not received in time", true);
			conn_progress(c);
		} else if (c->rs == R_BODY && waiting_on_upstream(c) &&
			   now - c->up_activity >= o->upstream_timeout_ms) {
			c->p->st.timeouts++;
			abort_mid_response(c, "upstream stalled");
			conn_progress(c);
		} else if (now - c->activity >= o->idle_timeout_ms &&
			   (out_pending(c) || (!c->rq_done && !buf_used(&c->in)))) {
			conn_close(c); /* the client stalled */
		}
		break;
	case C_CLOSING:
		if (now - c->activity >= o->idle_timeout_ms)
			conn_close(c);
		break;
	case C_LINGER:
		if (now - c->linger_start >= LINGER_MS)
			conn_close(c);
		break;
	}
}

static void check_timeouts(struct fg_proxy *p)
{
	__u64 now = now_ms();
	struct conn *c, *next;
	size_t b;

	p->next_check = now + CHECK_EVERY_MS;
	fd_budget_update(p);
	fg_local_errors_flush(&p->local);
	if (p->accept_paused && now >= p->accept_resume) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &p->ltag };

		epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->lfd, &ev);
		p->accept_paused = false;
	}
	for (c = p->conns; c; c = next) {
		next = c->next;
		check_conn(c, now);
	}
	for (b = 0; b < POOL_BUCKETS; b++) {
		struct pool *pl = p->pools[b], *pn;

		for (; pl; pl = pn) {
			struct upstream *u, *un;

			pn = pl->next;
			for (u = pl->top; u; u = un) {
				un = u->next;
				if (now - u->since >= p->opts.pool_idle_timeout_ms) {
					pool_unlink(u); /* may free pl when it empties */
					up_close(u);
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
static void choose_mode(struct fg_proxy *p)
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

static int open_listener(struct fg_proxy *p)
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
	choose_mode(p);
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
	err = open_listener(p);
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
	p->fd_base = count_open_fds();
	fd_budget_update(p);
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
				do_accept(p);
				break;
			case T_CLIENT: {
				struct conn *c = t->obj;

				if (!c->dead)
					on_client(c, evs[i].events);
				break;
			}
			case T_UPSTREAM: {
				struct upstream *u = t->obj;

				if (!u->dead)
					on_upstream(u, evs[i].events);
				break;
			}
			case T_TIMER:
				on_timer(p);
				break;
			}
		}
		reap(p);
		if (n < MAX_EVENTS)
			break;
	}
	if (now_ms() >= p->next_check)
		check_timeouts(p);
	reap(p);
}

void fg_proxy_tick(struct fg_proxy *p)
{
	check_timeouts(p);
	reap(p);
}

void fg_proxy_close(struct fg_proxy *p)
{
	size_t b, i;

	if (!p)
		return;
	while (p->conns)
		conn_close(p->conns);
	for (b = 0; b < POOL_BUCKETS; b++) {
		while (p->pools[b]) {
			struct upstream *u = p->pools[b]->top;

			pool_unlink(u);
			up_close(u);
		}
	}
	reap(p);
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
	json_object_set_new(j, "fdsReserved", json_integer(fds_reserved(p)));
	json_object_set_new(j, "maxConnsPerClient", json_integer(p->opts.max_conns_per_client));
	return j;
}
