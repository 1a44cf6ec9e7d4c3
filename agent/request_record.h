/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One HTTP request as the proxy saw it, handed over once when the request
 * ends (fg_proxy_opts.on_request): what the metrics and the access log are
 * made from. Every pointer is valid only during the callback; strings are
 * never NULL ("" when unknown).
 *
 * Times are CLOCK_MONOTONIC nanoseconds; 0 means "did not happen" (no
 * upstream was tried, no response head came).
 */
#ifndef FG_REQUEST_RECORD_H
#define FG_REQUEST_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "fleetgate.h"

enum fg_request_end {
	FG_REQ_DONE = 0,  /* the response went to the client whole */
	FG_REQ_ERROR,     /* the gateway answered itself (404, 502, 503, 408, ...) */
	FG_REQ_ABORTED,   /* cut short: the upstream failed mid-response, or the
			   * client left before its answer (status 499 then) */
	FG_REQ_REFUSED,   /* refused at accept: 503, nothing of it read */
};

struct fg_request_record {
	const char *client;      /* the client's address, as text */
	/* The request line and two fields, filled only when
	 * fg_proxy_opts.record_details is set (the access log). */
	const char *method;      /* "" when no request line was parsed */
	const char *target;      /* request-target as received (at most 4 KiB) */
	int version_minor;       /* HTTP/1.x; -1 when no request line was parsed */
	const char *host;        /* Host, as routed (lower case, no port) */
	const char *referer;
	const char *user_agent;
	/* The route (the Ingress rule, not the raw request), so that label
	 * values stay bounded. routed is false for 404s and for what never
	 * got that far (bad requests, refusals). */
	bool routed;
	const char *route_host;  /* the rule's host; "" for a rule without one */
	const char *route_path;  /* the rule's path */
	const char *ingress;     /* namespace/name of the Ingress of the route */
	const char *canary;      /* namespace/name of the canary Ingress that
				  * took the request, "" when none did */
	const char *service;     /* namespace/service[ subset S] */
	/* The upstream of the last try; cluster_idx -1 when none was tried.
	 * cluster: its name as the proxy read it; NULL (a record built
	 * elsewhere) makes the metrics look the index up themselves, which
	 * only the control thread may do. */
	int cluster_idx;
	const char *cluster;
	int worker;              /* the proxy worker that served it */
	int up_family;           /* FG_AF_INET / FG_AF_INET6 */
	struct fg_addr up_addr;
	__u16 up_port;           /* host order */
	unsigned attempts;       /* upstream tries (0: none) */
	int status;              /* sent to the client (499: none, it left) */
	enum fg_request_end end;
	__u64 bytes_in;          /* read from the client for this request */
	__u64 bytes_out;         /* queued to the client for it (head + body) */
	__u64 header_bytes_out;  /* of those, the response head */
	__u64 start_ns;          /* the request head complete (or the accept) */
	__u64 up_start_ns;       /* the last try's upstream chosen */
	__u64 up_connect_ns;     /* its connection established (or reused) */
	__u64 up_header_ns;      /* its response head received */
	__u64 end_ns;            /* the response done (queued whole) or cut */
};

typedef void (*fg_request_cb)(const struct fg_request_record *rec, void *ctx);

/* What the proxy uses to fill records (request_record.c). */
struct fg_http_request;
struct fg_route;
struct fg_target;

/* Where a record's strings live between its start and its end: one buffer
 * per connection, grown as needed and reused. */
struct fg_request_strings {
	char *buf;
	size_t cap;
	size_t slot; /* free room kept for the canary's name */
};

#define FG_REC_TARGET_MAX 4096 /* request-target bytes kept */
#define FG_REC_FIELD_MAX 1024  /* Referer, User-Agent bytes kept */

/* Every string "", no upstream, version_minor -1. */
void fg_request_record_blank(struct fg_request_record *r, const char *client);
/* Starts a record: blank, then the request's line, Host, Referer and
 * User-Agent (req may be NULL; only with details) and the route's host,
 * path and Ingress (route may be NULL) copied into st. Without memory the
 * strings stay "". */
void fg_request_record_fill(struct fg_request_record *r, struct fg_request_strings *st,
			    const char *client, const struct fg_http_request *req, bool details,
			    const struct fg_route *route);
/* The target chosen for the route: r->canary names the canary Ingress
 * when it is one of the route's canaries' (copied into st). */
void fg_request_record_canary(struct fg_request_record *r, struct fg_request_strings *st,
			      const struct fg_route *route, const struct fg_target *t);
void fg_request_strings_free(struct fg_request_strings *st);

#endif
