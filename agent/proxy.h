/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The agent's HTTP/1.1 reverse proxy (the L7 listener on --listen).
 *
 * Each request is routed on its own: Host and path against the plan's
 * routes (in match order), then the route's canaries (header, then cookie,
 * then weight), then the chosen target's service in the data plane: a
 * uniformly random slot of its cluster ring, then a random healthy backend
 * of that cluster. Ring and backend lists are cached and reread only when
 * fg_dp_epoch() changes.
 *
 * Every connection has bounded buffers and both directions are framed
 * explicitly (fg_http_framer): heads, chunk-size lines and trailers always
 * pass through the agent; "opaque" body bytes (Content-Length left, chunk
 * data) are moved by count, through the buffers (copy mode), through a
 * pipe with splice(2) (splice mode) or, for response bodies, by the
 * kernel's sockmap redirect in windows of exactly the opaque bytes left
 * (sockmap mode; request bodies then use splice(2)) once at least 16 KiB
 * of them are known to follow.
 *
 * Upstream connections are kept alive in a LIFO pool per backend
 * address:port. Only an endpoint's own failures mark it down at once
 * (passive health; the active checker brings it back): a connect refused
 * or timed out, a reset/EOF before any response byte once the whole
 * request was sent. Not a failure of the gateway's own (no file
 * descriptor, no local port: counted as local errors) nor one caused by a
 * client that stalled in the middle of its body (408 to that client).
 * The route's policy (proxy-next-upstream, -tries) says which failures
 * send the request to another healthy endpoint, another cluster of the
 * same target when there is one, as long as the request (head and body up
 * to 64 KiB) could be kept to be resent; a request that reached an
 * endpoint is resent only when its method is idempotent or the route has
 * non_idempotent (nginx's rule).
 *
 * Errors a client sees: 400/414/431/501/505 (bad request head, close),
 * 404 "no route for HOST PATH", 408 (head not complete within
 * header_timeout_ms, close), 502 (upstream failed before its response head;
 * a failure mid-body closes the client connection), 503 "no healthy
 * cluster for SERVICE", "gateway out of local resources" (a local error
 * on every try) and, at accept, "too many connections" (max_conns,
 * max_conns_per_client, the file descriptor budget), 504 (no response
 * byte within upstream_timeout_ms), 408 (a request body that stalled
 * client_body_timeout_ms). Bodies are short text/plain.
 *
 * Workers: opts.workers event loops, each with its own listener on the
 * same port (SO_REUSEPORT, the kernel spreads the connections), its own
 * connections, upstream pool and caches. fg_proxy_open builds them;
 * without fg_proxy_start they run inline in fg_proxy_process (the agent's
 * thread, as tests use it); after it each runs on its own thread and
 * fg_proxy_fd / fg_proxy_process serve only what workers hand back to the
 * control thread (passive health mark-downs, which write the maps). The
 * routes reach workers as immutable snapshots (fg_proxy_sync_routes after
 * every plan change). Every function here is called from one thread, the
 * agent's.
 */
#ifndef FG_PROXY_H
#define FG_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <linux/types.h>

#include "control.h"
#include "dataplane.h"
#include "fleetgate.h"
#include "request_record.h"
#include "splice.h"

#define FG_PROXY_MAX_WORKERS 64
#define FG_PROXY_MAX_LISTENERS 9 /* the HTTP one and 8 TLS ones */

/* A TLS listener (--listen-tls). */
struct fg_proxy_listen {
	int family;
	struct fg_addr addr;
	__u16 port;              /* 0: a free one (fg_proxy_tls_port) */
};

/* A zero field takes its default (in the comment), xff apart: call
 * fg_proxy_opts_init() first to get every default. */
struct fg_proxy_opts {
	int family;              /* FG_AF_INET / FG_AF_INET6 */
	struct fg_addr addr;
	__u16 port;              /* host order; 0: a free port (fg_proxy_port) */
	unsigned header_timeout_ms;           /* 10000: whole request head */
	unsigned idle_timeout_ms;             /* 60000: keep-alive, stalled client */
	unsigned upstream_connect_timeout_ms; /* 2000 */
	unsigned upstream_timeout_ms;         /* 60000: first response byte, and
					       * between response bytes */
	/* Between two writes of the request to an upstream that does not
	 * take it (nginx's proxy_send_timeout); 0: upstream_timeout_ms. An
	 * Ingress's proxy-*-timeout annotations override these three. */
	unsigned upstream_send_timeout_ms;
	/* Request bodies larger than this get a 413 (proxy-body-size); 0:
	 * no limit. An Ingress's proxy-body-size overrides it. */
	unsigned long long max_body_size;
	unsigned max_conns;      /* 10000 client connections */
	unsigned max_conns_per_client; /* 1000 from one client address */
	/* File descriptors the proxy leaves to the rest of the agent (health
	 * probes, control plane, admin socket). It refuses new clients (503,
	 * closed) when its own descriptors would pass the soft RLIMIT_NOFILE
	 * minus those open at fg_proxy_open minus this reserve; the limit is
	 * read again every 100 ms. 320 when 0. */
	unsigned fd_reserve;
	unsigned client_body_timeout_ms; /* 60000: between two request body
					  * reads -> 408 */
	size_t max_head;         /* 32 KiB: request head -> 431 */
	bool xff;                /* true: X-Forwarded-For/-Proto, X-Real-IP */
	/* Idle upstream connections kept per backend and worker. 0 (the
	 * default): as many as were in use at once in the last minute, at
	 * least 32, within the file descriptor budget. */
	unsigned pool_max_idle;
	unsigned pool_min_idle;  /* auto sizing keeps at least this many (32) */
	unsigned pool_idle_timeout_ms; /* 30000 */
	/* How body bytes move (splice.h, docs/architecture.md "L7 data
	 * path"): FG_L7_AUTO (0) probes splice at fg_proxy_open and takes
	 * it, or copy (never sockmap); a forced mode that fails its probe
	 * falls back (sockmap -> splice -> copy), logged. fg_proxy_opts_init takes
	 * the environment variable FLEETGATE_L7_MODE (auto|sockmap|splice|
	 * copy) when set, for tests. */
	enum fg_l7_mode l7_mode;
	/* Where the sockmap object's maps are pinned (by name, next to the
	 * XDP maps); NULL: not pinned. */
	const char *pin_path;
	/* Called once at the end of every request, refusals at accept
	 * included (request_record.h), from the proxy's thread: it must not
	 * block. NULL: no records. record_details adds the request line,
	 * Referer and User-Agent (for an access log). */
	fg_request_cb on_request;
	void *on_request_ctx;
	bool record_details;
	/* TLS listeners, with the same routes (proxy.h "TLS"). */
	struct fg_proxy_listen tls_listen[FG_PROXY_MAX_LISTENERS - 1];
	unsigned n_tls_listen;
	/* Event loops (1 when 0); at most FG_PROXY_MAX_WORKERS. sockmap mode
	 * runs one. The agent passes --workers (default: the CPUs). */
	unsigned workers;
};


struct fg_proxy;

void fg_proxy_opts_init(struct fg_proxy_opts *opts);
/* Opens the listening socket (SO_REUSEADDR) and the proxy's epoll fd. */
int fg_proxy_open(struct fg_proxy **out, struct fg_control *control, struct fg_dataplane *dp,
		  const struct fg_proxy_opts *opts);
/* An epoll fd (level-triggered) for the agent's own epoll set: readable
 * when fg_proxy_process has work. */
int fg_proxy_fd(const struct fg_proxy *p);
/* The port listened on (host order). */
__u16 fg_proxy_port(const struct fg_proxy *p);
/* The port of TLS listener i (opts.tls_listen[i]). */
__u16 fg_proxy_tls_port(const struct fg_proxy *p, unsigned i);
/* Handles the ready events without blocking; checks timeouts too. */
void fg_proxy_process(struct fg_proxy *p);
/* Timeouts (header, idle, connect, upstream, pool); call it periodically. */
void fg_proxy_tick(struct fg_proxy *p);
/* Runs each worker on its own thread (see above). */
int fg_proxy_start(struct fg_proxy *p);
/* Gives the workers the plan's routes when they changed (threaded only;
 * inline workers look for themselves). */
void fg_proxy_sync_routes(struct fg_proxy *p);
int fg_proxy_workers(const struct fg_proxy *p);
/* No new clients; idle keep-alive connections closed, the others after
 * their answer. */
void fg_proxy_drain(struct fg_proxy *p);
/* Client connections open, every worker's. */
unsigned fg_proxy_connections(const struct fg_proxy *p);
/* Closes every connection and the listener. NULL is fine. */
void fg_proxy_close(struct fg_proxy *p);

struct fg_proxy_counters {
	__u64 requests;          /* request heads received (valid or not) */
	__u64 responses[6];      /* by status class: [1] 1xx .. [5] 5xx */
	__u64 upstream_connects; /* new upstream connections attempted */
	__u64 upstream_reuses;   /* requests sent on a pooled connection */
	__u64 retries;           /* requests resent to another backend */
	__u64 connect_failures;
	__u64 passive_down;      /* backends marked down by the proxy */
	__u64 timeouts;          /* header, upstream and connect timeouts */
	__u64 accepted;
	__u64 refused;           /* every refusal below, and over max_conns */
	__u64 refused_per_client; /* over max_conns_per_client */
	__u64 refused_fds;       /* near the file descriptor budget */
	__u64 client_timeouts;   /* request bodies that stalled (408) */
	__u64 not_retried;       /* failures not retried: the request had
				  * reached an endpoint and is not idempotent */
	__u64 local_errors;      /* upstream connects that failed for a
				  * reason of the gateway's own */
	__u64 tunnels;           /* upgraded connections (101 relayed) */
	__u64 tls_handshakes;    /* completed, on TLS listeners */
	__u64 tls_handshake_errors;
	__u64 tls_resumed;       /* of the completed: session resumed */
	__u64 tls_v12, tls_v13;  /* of the completed: by version */
	__u64 tls_ktls;          /* of the completed: kTLS transmit */
};

void fg_proxy_counters(const struct fg_proxy *p, struct fg_proxy_counters *out);
/* The mode in use (never FG_L7_AUTO) and why it was chosen. */
enum fg_l7_mode fg_proxy_mode(const struct fg_proxy *p);
const char *fg_proxy_mode_why(const struct fg_proxy *p);

/* Counters and gauges (connections, idle pooled upstreams) as JSON, for the
 * admin socket: also "mode" (sockmap|splice|copy), "modeReason",
 * "splicedBytes" (body bytes that did not pass through user space),
 * "kernelBytes" (of those, moved by the sockmap redirect) and
 * "kernelWindows" (sockmap windows opened). New reference. */
json_t *fg_proxy_stats(const struct fg_proxy *p);

#endif
