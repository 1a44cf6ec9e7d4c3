/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Inside the HTTP proxy: the state its parts share. Nothing outside
 * agent/proxy*.c includes this.
 *
 *   proxy.c           the server: listeners, accept, limits, timeouts,
 *                     the public API (proxy.h)
 *   proxy_conn.c      a client connection's state machine: heads, the
 *                     exchange with an upstream, errors, retries
 *   proxy_route.c     request routing: routes, canaries, the choice of
 *                     a cluster and an endpoint, passive health
 *   proxy_upstream.c  upstream connections and their keep-alive pool
 *   proxy_body.c      moving bytes: buffers, framing, splice, sockmap
 *   proxy_record.c    request records (metrics, access log)
 */
#ifndef FG_PROXY_INT_H
#define FG_PROXY_INT_H

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
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <pthread.h>
#include <bpf/bpf.h>
#include <openssl/ssl.h>

#include "health.h"
#include "hmap.h"
#include "http.h"
#include "log.h"
#include "proxy.h"
#include "resources.h"
#include "routes.h"
#include "splice.h"
#include "tls.h"

#define BODY_WINDOW (32 * 1024)   /* body bytes staged per buffer */
/* A TLS client's response body cannot be spliced (without kTLS): it is
 * read, copied and encrypted in user space, and a bigger window takes it
 * from the upstream in fewer reads (one per 32 KiB was a third of the
 * proxy's system calls over TLS). Buffers grow only as far as a body
 * needs, so small responses keep small buffers. */
#define TLS_BODY_WINDOW (256 * 1024)
#define REPLAY_MAX (64 * 1024)    /* request body kept for a retry */
#define LINGER_MS 2000            /* reading leftovers after our FIN */
#define MAX_EVENTS 128
#define PROCESS_ROUNDS 4
#define CHECK_EVERY_MS 100
#define POOL_BUCKETS 1024
#define CLIENT_BUCKETS 4096
#define FD_HEADROOM 2             /* a new client and its upstream */
#define ACCEPT_BATCH 64
#define PARK_MS 1000              /* a retry waits this long for a mark-down */
#define SPLICE_MIN (16 * 1024)    /* fewer opaque bytes go through the buffers */

enum tag_kind { T_LISTEN, T_CLIENT, T_UPSTREAM, T_TIMER, T_WAKE };

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
	C_TUNNEL,  /* switched protocols: bytes both ways (proxy_tunnel.c) */
	C_TLS,     /* TLS handshake (proxy_tls.c), then C_HEAD */
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
	F_TLS_VERIFY,      /* its certificate failed proxy-ssl-verify: the
			    * route's settings, not the endpoint's health */
};

/* Why a client's TLS handshake failed (metrics' reason label). */
enum px_tls_fail {
	PX_TLS_FAIL_TIMEOUT,      /* not complete within the header timeout */
	PX_TLS_FAIL_CLOSED,       /* the client closed or reset the connection */
	PX_TLS_FAIL_VERSION,      /* no protocol version in common */
	PX_TLS_FAIL_ALERT,        /* the client sent a fatal alert */
	PX_TLS_FAIL_PROTOCOL,     /* anything else OpenSSL refused (not TLS, ...) */
	PX_TLS_FAIL_INTERNAL,     /* no certificate store, no memory */
	PX_TLS_FAIL_N
};

/* A TLS session on a socket, client or upstream side (proxy_tls.c): what
 * OpenSSL last asked for, so the interest set follows it. */
struct px_sslio {
	SSL *ssl;                 /* NULL: plain TCP */
	bool hs_wants_write;      /* the handshake waits to write */
	bool rd_wants_write;      /* a read needs the socket writable */
	bool wr_wants_read;       /* a write needs the socket readable */
	bool shut;                /* close_notify sent */
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
	__u8 tls;                 /* HTTPS upstream: its own pool */
	__u32 pad;
	/* HTTPS: the client context and the name sent and verified: a
	 * connection verified for one route's settings is never reused for
	 * another's. 0 for plain TCP. */
	__u64 tls_id;
};

struct upstream {
	struct tag tag;
	int fd;
	unsigned events;
	struct px_worker *p;
	struct conn *conn;       /* owner; NULL while pooled */
	struct pool_key key;
	__u32 backend_id, service_id, cluster_idx;
	bool connecting, reused, dead, pooled;
	bool busy;                /* counted in its pool's busy */
	/* backend-protocol HTTPS: the session; connecting stays true until
	 * its handshake is done (tcp_up: the TCP part is). */
	struct px_sslio tls;
	bool tcp_up;
	/* epoll said readable and no read has come back short or empty
	 * since: reads are tried only then (an EAGAIN per readiness, not
	 * per step). */
	bool rd_ready;
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

/* One backend's connections in one worker: the idle ones (a LIFO stack)
 * and how many are in use, to size the stack to the load. */
struct pool {
	struct pool_key key;
	struct upstream *top;
	unsigned n;               /* idle, in top */
	unsigned busy;            /* owned by a client connection now */
	unsigned peak, prev_peak; /* most busy at once, this window and the last */
	__u64 window_start;
	__u64 last_used;
	struct pool *next;
};

#define POOL_WINDOW_MS 60000      /* how long a peak of load is remembered */

struct conn {
	struct tag tag;
	int fd;
	unsigned events;
	struct px_worker *p;
	struct conn *prev, *next; /* live list (next: graveyard when dead) */
	char ip[INET6_ADDRSTRLEN];
	enum cstate state;
	bool eof, close_after, dead;
	bool rd_ready;            /* as upstream.rd_ready, for the client */
	/* When it began closing, the client had sent what was not read (a
	 * body cut short, pipelined requests): linger so that a reset does
	 * not destroy the answer on its way (px_close_or_linger). */
	bool unread_input;
	/* TLS (proxy_tls.c): the session (tls.ssl NULL on a plain listener). */
	struct px_sslio tls;
	bool ktls_tx;             /* the kernel encrypts what we write */
	__u8 ls_idx;              /* the listener it came from (srv->ls) */
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

	/* Upgrade (proxy_tunnel.c): the protocol asked for ("" when the
	 * request is not an upgrade); once switched, which halves are shut. */
	char upgrade[64];
	bool t_cl_shut, t_up_shut;
	unsigned tunnel_idle_ms;

	/* backend-protocol HTTPS: the route's client context (a reference),
	 * NULL for plain endpoints. */
	SSL_CTX *up_ctx;
	char up_sni[FG_HOST_LEN];  /* sent and verified; "" none */
	bool up_send_sni;

	/* Parked (threaded workers): no endpoint left for a retry in the
	 * rings this worker read, while a mark-down it queued waits for the
	 * control thread, whose ring rebuild may open another cluster (a
	 * failover tier). Resumed when srv->md_applied reaches park_gen. */
	bool parked;
	/* Parked before its first pick: this worker marked the target's
	 * last endpoint down itself and its rings still hold only that
	 * cluster. The head stays in c->in and is routed again on resume
	 * (head_again: counted and logged once, parked at most once). */
	bool park_head, head_again;
	__u64 head_start_ns;      /* the first routing's record start */
	int retry_cluster;        /* the failed try's cluster (avoided) */
	__u64 park_gen, park_until;
	enum fail_kind park_kind;
	char park_why[256];

	/* The route's Ingress annotations (proxy_rules.c): a reference held
	 * until the next request, the route's path in it, what the request
	 * was given by them. */
	struct fg_route_opts *ropts;
	__u8 rpath;
	bool aff_kept;           /* its session cookie named an up backend: aff_bid */
	__u32 aff_bid;
	unsigned connect_ms, read_ms, send_ms;
	unsigned long long body_limit; /* 0: none */

	/* request records (opts.on_request, request_record.h) */
	bool rec_open;           /* a request is under way: a record is due */
	struct fg_request_record rec;
	struct fg_request_strings rec_store; /* its strings */
	__u64 rx, tx;            /* bytes read from the client / queued to it */
	__u64 in_mark, out_mark; /* consumed / queued when the last record ended */
	__u64 hdr_mark;          /* queued before the response head */
};

/*
 * The routes as the workers see them: a copy of the plan's routes,
 * canaries and targets (without endpoints) with each target's service id,
 * indexed by host, immutable once published (fg_proxy_set_routes): a
 * worker keeps a reference while it uses one, and moves to a newer one at
 * its next request.
 */
/* The targets of one plan (fg_control_plan_serial) as the workers see
 * them: shared by every copy of the routes made from that plan, since
 * what changes a plan in place (a canary weight, a retry policy, the
 * gateways' phase, endpoints) never changes a target's identity or id. */
struct px_targets {
	int refs;                  /* atomic */
	unsigned long serial;      /* of the plan they were copied from */
	struct fg_target *t;       /* no clusters; service_id set */
	size_t n;
	struct fg_hmap at;         /* the plan's target pointer -> index in t */
};

struct px_routes {
	int refs;                 /* atomic */
	unsigned long gen;        /* publication number (srv->routes_gen) */
	/* The SNI store for TLS listeners (a reference; NULL without any). */
	struct fg_tls_store *tls;
	/* backend-protocol HTTPS: per route, the client context (a
	 * reference, shared by the routes of one Ingress), or why there is
	 * none (upstream_ssl_error); both NULL for plain endpoints. */
	SSL_CTX **up_ctx;
	char **up_err;
	struct fg_route *routes;  /* in match order, canaries copied */
	size_t n_routes;
	struct px_targets *tg;
	struct fg_target *targets; /* tg->t */
	size_t n_targets;
	struct fg_hmap exact;     /* hash of a host -> (first << 32 | count) in idx */
	struct fg_hmap wild;      /* hash of a wildcard's suffix -> the same */
	__u32 *idx;
	__u32 *any;               /* routes for any host, then defaults */
	size_t n_any, n_dflt;
};

/* What a worker read from the maps to choose endpoints, per service;
 * dropped whole when the routing state changed (the data plane's epoch),
 * checked only when a pick begins (px_pick_backend). */
struct svc_cache {
	__u32 *ring;              /* the cluster ring, NULL: none */
	__u32 size;
	__u32 *members[FG_MAX_CLUSTERS]; /* backend ids, read on first use */
	__u32 n_members[FG_MAX_CLUSTERS];
	bool members_read[FG_MAX_CLUSTERS];
	struct fg_hmap *aff;      /* session cookie hash -> backend id, on first use */
};

struct cache {
	__u64 epoch;
	struct fg_hmap svcs;      /* service id -> struct svc_cache * */
	struct fg_hmap backends;  /* backend id -> struct fg_backend * */
	char clusters[FG_MAX_CLUSTERS][FG_NAME_LEN]; /* names, read on first use */
	bool cluster_read[FG_MAX_CLUSTERS];
	struct fg_slab_reader slab; /* this worker's descriptor of the ring slab */
	__u32 *cands;             /* scratch: the candidates of a pick */
	size_t cap_cands;
};

/* A listening socket of a worker: one per address of the server's (the
 * HTTP one, then --listen-tls ones), each worker its own on the same port
 * (SO_REUSEPORT). */
struct px_listener {
	int fd;
	struct tag tag;           /* T_LISTEN, obj: this */
	struct px_worker *p;
	int idx;                  /* in srv->ls */
	bool tls;
};

/* An address the server listens on. */
struct px_listen_addr {
	int family;
	struct fg_addr addr;
	__u16 port;               /* asked for; bound once the first worker has it */
	bool tls;
};

/* One event loop: its listeners (SO_REUSEPORT), connections, upstream
 * pool, caches and counters. The read-only settings are copied in. */
struct px_worker {
	struct fg_proxy *srv;
	int id;
	pthread_t thread;
	bool running;
	struct fg_proxy_opts opts;
	struct fg_dataplane *dp;
	int epfd;
	struct px_listener ls[FG_PROXY_MAX_LISTENERS]; /* as srv->ls */
	int n_ls;
	bool accept_paused;
	__u64 accept_resume;
	bool listening;           /* the listener is in the epoll set */
	struct conn *conns;
	unsigned n_conns;         /* these three are read by other threads */
	unsigned n_upstreams;
	unsigned n_pooled;
	unsigned n_pipes;
	struct fg_local_errors local;
	struct pool *pools[POOL_BUCKETS];
	struct conn *dead_conns;
	struct upstream *dead_ups;
	struct fg_http_limits limits;
	struct fg_http_request req;   /* scratch: only used while dispatching */
	struct fg_http_response resp; /* scratch */
	char *scratch;
	size_t scratch_len;
	struct px_routes *routes; /* held: the newest this worker has seen */
	struct cache cache;
	__u64 rng;
	__u64 next_check;
	struct fg_proxy_counters st;
	enum fg_l7_mode mode;
	struct fg_sockmap *sm;
	__u64 spliced_bytes;      /* splice + sockmap */
	__u64 kernel_bytes;       /* sockmap */
	__u64 windows;            /* sockmap: windows opened */
	__u64 empty_reads;        /* reads that found nothing (EAGAIN) */
	char tls_last_error[160]; /* the last failed handshake */
	/* per listener: completed handshakes by version (0: 1.2, 1: 1.3),
	 * failed ones by reason (enum px_tls_fail) */
	__u64 tls_hs[FG_PROXY_MAX_LISTENERS][2];
	__u64 tls_fail[FG_PROXY_MAX_LISTENERS][PX_TLS_FAIL_N];
	__u64 md_gen;             /* srv->md_queued after its last mark-down */
	unsigned n_parked;
	int tfd;                  /* sockmap: timerfd, armed while a window or
				   * a barrier is pending */
	bool tarmed;
	struct tag ttag;
	int wake_fd;              /* eventfd: stop, drain */
	struct tag wtag;
};

/* A backend a worker saw fail, for the control thread to mark down. */
struct px_markdown {
	__u32 backend_id, service_id;
	char why[200];
};

/* The server: what the workers share. */
struct fg_proxy {
	struct fg_proxy_opts opts;
	struct fg_control *control;
	struct fg_dataplane *dp;
	struct px_worker *workers;
	int n_workers;
	bool threaded;            /* workers run on their own threads */
	int stop;                 /* atomic: workers leave their loops */
	int draining;             /* atomic: no new clients, close after answers */
	struct px_listen_addr ls[FG_PROXY_MAX_LISTENERS];
	int n_ls;
	enum fg_l7_mode mode;
	char mode_why[512];
	struct fg_sockmap *sm;
	unsigned fd_base;         /* descriptors open at fg_proxy_open */
	unsigned fd_budget;       /* atomic; all workers' at most, 0: no limit */
	pthread_mutex_t lock;     /* clients, routes, markdowns */
	struct client_slot *clients[CLIENT_BUCKETS];
	struct px_routes *routes; /* the newest published */
	unsigned long routes_gen; /* atomic: its publication number */
	unsigned long pub_plan_gen, pub_tls_gen; /* what it was made from */
	struct px_markdown *markdowns;
	size_t n_markdowns, cap_markdowns;
	int ctl_fd;               /* eventfd: markdowns wait for the control thread */
	__u64 md_queued;          /* mark-downs queued (under lock) */
	__u64 md_applied;         /* atomic: of those, applied to the maps */
	int epfd;                 /* inline: an epoll over the workers' ones */
};

/* Counters written by one worker, read by any thread. */
#define STAT_INC(p, f) __atomic_store_n(&(p)->st.f, (p)->st.f + 1, __ATOMIC_RELAXED)
#define STAT_ADD(p, f, n) __atomic_store_n(&(p)->f, (p)->f + (n), __ATOMIC_RELAXED)
#define CNT_ADD(p, f, n) __atomic_add_fetch(&(p)->f, (n), __ATOMIC_RELAXED)
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* ---------- small helpers ---------- */

static inline __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline __u32 rnd(struct px_worker *p)
{
	/* xorshift64* */
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return (__u32)((p->rng * 0x2545F4914F6CDD1DULL) >> 32);
}

static inline __u32 rnd_below(struct px_worker *p, __u32 n)
{
	return (__u32)(((__u64)rnd(p) * n) >> 32);
}

static inline size_t buf_used(const struct buf *b)
{
	return b->len - b->off;
}

static inline char *buf_data(const struct buf *b)
{
	return b->d + b->off;
}

static inline void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

static inline void buf_free(struct buf *b)
{
	free(b->d);
	b->d = NULL;
	b->off = b->len = b->cap = 0;
}

/* Makes room at the end so that up to `limit` bytes (capped at max) can be
 * held; returns the room, 0 when full or out of memory. */
static inline size_t buf_room(struct buf *b, size_t limit)
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

static inline int buf_append(struct buf *b, const void *data, size_t n)
{
	if (buf_room(b, buf_used(b) + n) < n)
		return -ENOSPC;
	memcpy(b->d + b->len, data, n);
	b->len += n;
	return 0;
}

static inline void ep_set(struct px_worker *p, int fd, struct tag *tag, unsigned *cur, unsigned want)
{
	struct epoll_event ev = { .events = want, .data.ptr = tag };

	if (*cur == want)
		return;
	if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev))
		pr_warn("proxy: epoll_ctl(MOD) on fd %d: %s\n", fd, strerror(errno));
	*cur = want;
}

static inline int ep_add(struct px_worker *p, int fd, struct tag *tag, unsigned events)
{
	struct epoll_event ev = { .events = events, .data.ptr = tag };

	return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static inline bool ieq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && !strncasecmp(s, lit, n);
}

static inline __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ---------- the parts ---------- */

void px_abort_mid_response(struct conn *c, const char *why);
__u64 px_affinity_hash(struct px_worker *p, const struct fg_addr *addr, int family, __be16 port,
		       __u32 cidx);
int px_pick_affine(struct px_worker *p, __u32 sid, __u64 hash, __u32 *bid);
/* proxy_rules.c: the route's Ingress annotations in the request path. */
bool px_rules_request(struct conn *c, const struct fg_route *route, size_t hlen, bool has_body);
int px_rules_pick(struct conn *c, const struct fg_http_request *req, __u32 sid, __u32 *bid);
int px_rules_upstream_head(struct conn *c, const struct fg_route *route,
			   const struct fg_http_request *req, int n);
bool px_rules_body_over(struct conn *c);
size_t px_rules_response_fields(struct conn *c, char *buf, size_t len);
unsigned px_rules_wait_ms(const struct conn *c);
void px_backend_sockaddr(const struct pool_key *k, struct sockaddr_storage *ss, socklen_t *len);
void px_bad_gateway(struct conn *c, int status, const char *why);
bool px_canary_header_match(struct px_worker *p, const struct fg_canary *cn,
				const struct fg_http_header *h, bool *never);
void px_check_conn(struct conn *c, __u64 now);
void px_check_timeouts(struct px_worker *p);
void px_choose_mode(struct fg_proxy *p);
const struct fg_target *px_choose_target(struct px_worker *p, const struct fg_route *r,
					     const struct fg_http_request *req);
int px_client_flush(struct conn *c);
void px_client_ip(const struct sockaddr_storage *ss, char *buf, size_t len);
int px_client_read(struct conn *c);
void px_client_release(struct px_worker *p, struct client_slot *cs);
struct client_slot *px_client_take(struct px_worker *p, const struct sockaddr_storage *ss);
void px_conn_close(struct conn *c);
void px_conn_free(struct conn *c);
bool px_conn_lists(const struct fg_http_response *resp, const char *name, size_t nlen);
void px_conn_progress(struct conn *c);
unsigned px_count_open_fds(void);
void px_count_status(struct px_worker *p, int status);
void px_dispatch(struct conn *c, __u32 bid, bool use_pool);
void px_do_accept(struct px_listener *l);
void px_drop_upstream(struct conn *c);
bool px_excluded(__u32 id, const __u32 *ex, size_t n_ex);
void px_fd_budget_update(struct px_worker *p);
bool px_fds_allow(const struct px_worker *p, unsigned more);
unsigned px_fds_reserved(const struct px_worker *p);
void px_final_error(struct conn *c, enum fail_kind kind, const char *why);

void px_finish_exchange(struct conn *c);
bool px_hop_by_hop(const struct fg_http_response *resp, const struct fg_http_header *h);
const char *px_key_str(const struct pool_key *k, char *buf, size_t len);
void px_linger_read(struct conn *c);
void px_mark_down(struct px_worker *p, __u32 sid, __u32 bid, const char *why);
void px_markdowns_apply(struct fg_proxy *srv);
bool px_markdown_pending(const struct px_worker *p);
void px_resume_parked(struct px_worker *p, bool expire);
const struct fg_route *px_find_route(const struct px_routes *rt, const char *host,
				     const char *path);
struct px_routes *px_routes_current(struct px_worker *p);
int px_routes_publish(struct fg_proxy *srv);
bool px_routes_stale(const struct fg_proxy *srv);
void px_routes_put(struct px_routes *rt);
const struct fg_backend *px_backend(struct px_worker *p, __u32 bid);
const char *px_cluster_name(struct px_worker *p, __u32 cidx);
void px_cache_fini(struct cache *k);
bool px_may_resend(const struct conn *c);
bool px_method_idempotent(const char *m, size_t n);
void px_on_client(struct conn *c, unsigned ev);
void px_on_timer(struct px_worker *p);
void px_on_upstream(struct upstream *u, unsigned ev);
int px_open_listener(const struct px_listen_addr *la, int *fd_out, __u16 *port_out);
unsigned px_total_conns(const struct fg_proxy *srv);
size_t px_out_pending(const struct conn *c);
size_t px_out_writable(const struct conn *c);
int px_pick_backend(struct px_worker *p, __u32 sid, const __u32 *ex, size_t n_ex,
			int avoid_cluster, __u32 *bid);
bool px_pick_in_cluster(struct px_worker *p, __u32 sid, __u32 cidx, const __u32 *ex,
			    size_t n_ex, __u32 *bid);
void px_pipe_close(struct px_worker *p, struct fg_pipe *pp);
int px_pipe_open(struct conn *c, struct fg_pipe *pp);
struct pool **px_pool_find(struct px_worker *p, const struct pool_key *k);
struct upstream *px_pool_get(struct px_worker *p, const struct pool_key *k);
void px_pool_busy(struct upstream *u);
void px_pool_expire(struct px_worker *p, __u64 now);
unsigned px_pool_cap(const struct px_worker *p, const struct pool *pl);
unsigned px_pool_hash(const struct pool_key *k);
void px_pool_put(struct upstream *u);
void px_pool_unlink(struct upstream *u);
bool px_pooled_alive(const struct upstream *u);
bool px_pump_request(struct conn *c);
bool px_pump_response(struct conn *c);
int px_put_response_head(struct conn *c, const struct fg_http_response *r);
void px_reap(struct px_worker *p);
void px_rec_begin(struct conn *c, const struct fg_http_request *req,
		      const struct fg_route *route);
__u64 px_rec_consumed(const struct conn *c);
void px_rec_end(struct conn *c, int status, enum fg_request_end end, long head_bytes);
__u64 px_rec_queued(const struct conn *c);
void px_rec_refused(struct px_worker *p, const struct sockaddr_storage *ss, long sent);
void px_rec_response(struct conn *c, int status);
void px_rec_target(struct conn *c, const struct fg_route *route, const struct fg_target *t);
void px_rec_upstream(struct conn *c, const void *addr, int family, __be16 port, __u32 cidx);
void px_refuse(struct px_worker *p, int fd, const struct sockaddr_storage *ss, const char *why,
	       bool tls);
bool px_req_spliceable(const struct conn *c);
void px_reset_exchange(struct conn *c);
bool px_resp_spliceable(const struct conn *c);
void px_respond_error(struct conn *c, int status, const char *text, bool close);
void px_respond(struct conn *c, int status, const char *fields, const char *text, bool close);
__u32 px_retry_flag(enum fail_kind kind);
size_t px_rin_limit(const struct conn *c);
const __u32 *px_ring_get(struct px_worker *p, __u32 sid, __u32 *size);
void px_sm_account(struct conn *c, __u64 total_redirected);
void px_sm_arm(struct px_worker *p);
bool px_sm_barrier_passed(struct conn *c);
void px_sm_join(struct upstream *u);
void px_sm_window_end(struct conn *c, bool withdraw);
void px_sockaddr_key(const struct sockaddr_storage *ss, struct fg_addr *a, __u8 *family);
bool px_sockmap_response(struct conn *c);
bool px_splice_request(struct conn *c);
bool px_splice_response(struct conn *c);
bool px_splicing(const struct conn *c);
void px_start_closing(struct conn *c);
void px_start_linger(struct conn *c);
void px_start_request(struct conn *c, size_t hlen);
bool px_status_retry(struct conn *c, int status);
const char *px_status_text(int status);
bool px_step_head(struct conn *c);
bool px_step_proxy(struct conn *c);
size_t px_strip_forwarded(char *h, size_t len);
bool px_upgrade_request(struct conn *c, const struct fg_http_request *req, bool has_body);
int px_upgrade_head(struct conn *c, size_t *len);
int px_tunnel_start(struct conn *c, const struct fg_http_response *r, size_t n);
bool px_tunnel_step(struct conn *c);
void px_tunnel_events(struct conn *c);
void px_tunnel_end(struct conn *c, enum fg_request_end end);
void px_tunnel_check(struct conn *c, __u64 now);
ssize_t px_io_recv(struct px_sslio *io, int fd, void *buf, size_t len);
ssize_t px_io_send(struct px_sslio *io, int fd, const void *buf, size_t len);
bool px_io_pending(const struct px_sslio *io);
void px_io_close_notify(struct px_sslio *io);
void px_io_free(struct px_sslio *io);
unsigned px_io_hs_events(const struct px_sslio *io);
ssize_t px_cl_recv(struct conn *c, void *buf, size_t len);
ssize_t px_cl_send(struct conn *c, const void *buf, size_t len);
bool px_cl_pending(const struct conn *c);
bool px_tls_step(struct conn *c);
void px_tls_close_notify(struct conn *c);
void px_tls_free(struct conn *c);
int px_up_tls_step(struct upstream *u, char *why, size_t len);
bool px_tls_upstream_take(struct conn *c, const struct px_routes *rt, const struct fg_route *route,
			  const struct fg_http_request *req);
int px_up_tls_start(struct conn *c, struct upstream *u);
bool px_tls_ktls_tx(const struct conn *c);
void px_tls_handshake_done(struct conn *c);
void px_tls_handshake_failed(struct conn *c, enum px_tls_fail reason, const char *why);
void px_up_close(struct upstream *u);
void px_up_close_fd(struct upstream *u);
struct upstream *px_up_connect(struct px_worker *p, const struct pool_key *k, int *err);
int px_up_flush(struct conn *c);
void px_up_read(struct conn *c);
void px_update_events(struct conn *c);
size_t px_upo_room(struct conn *c);
void px_upstream_failed(struct conn *c, enum fail_kind kind, int err, const char *what);
bool px_waiting_on_client(const struct conn *c);
bool px_waiting_on_upstream(const struct conn *c);

#endif /* FG_PROXY_INT_H */
