/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Prometheus metrics (docs/operations.md "Metrics" lists every one).
 *
 * Four parts:
 *  - fg_expo: the text exposition format 0.0.4 (families with HELP and
 *    TYPE, label values escaped, histograms with cumulative buckets);
 *  - fg_http_stats: the HTTP request series, keyed by route host, route
 *    path, canary and cluster (never the raw request), counted at the end
 *    of each request from its record (request_record.h). One table per
 *    proxy worker, no locks; a scrape sums the tables;
 *  - fg_metrics: the agent's registry: the request records in (and on to
 *    the access log), and at scrape time everything else read where it
 *    lives: the data plane's maps, the control plane's plan, the proxy's
 *    and the prober's counters;
 *  - fg_metrics_server: GET /metrics on its own listening socket, polled
 *    from the agent's event loop, never blocking it.
 */
#ifndef FG_METRICS_H
#define FG_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "request_record.h"

/* ---------- exposition text ---------- */

struct fg_expo {
	char *buf;
	size_t len, cap;
	bool oom; /* a write failed for memory: the text is incomplete */
};

void fg_expo_init(struct fg_expo *e);
void fg_expo_free(struct fg_expo *e);
/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram):
 * every sample of the family must follow before the next family. */
void fg_expo_family(struct fg_expo *e, const char *name, const char *type, const char *help);
/* name{k1="v1",k2="v2"} value. labels: k, v pairs ending with NULL (or
 * NULL for none); values are escaped (\\, \", \n). */
void fg_expo_u64(struct fg_expo *e, const char *name, const char *const *labels, __u64 v);
void fg_expo_double(struct fg_expo *e, const char *name, const char *const *labels, double v);
/* A histogram's samples from per-bucket counts: counts[i] observations in
 * (bounds[i-1], bounds[i]], counts[n] above the last bound. Writes
 * name_bucket{...,le="B"} (cumulative, le="+Inf" last), name_sum and
 * name_count. */
void fg_expo_histogram(struct fg_expo *e, const char *name, const char *const *labels,
		       const double *bounds, size_t n, const __u64 *counts, double sum);
/* Escapes a label value into buf (NUL-terminated, cut to len); returns buf. */
const char *fg_expo_escape(const char *s, char *buf, size_t len);

/* ---------- HTTP request series ---------- */

/* Request duration buckets, seconds (Prometheus' defaults). */
#define FG_HTTP_NBOUNDS 11
extern const double fg_http_duration_bounds[FG_HTTP_NBOUNDS];
#define FG_HTTP_DEF_MAX_SERIES 4096

struct fg_http_obs {
	const char *host;    /* route host ("*": a rule without host), "" no route */
	const char *path;    /* route path, "" no route */
	const char *canary;  /* canary Ingress, "" none */
	const char *cluster; /* cluster id, "" none */
	int status;
	double seconds;
	__u64 bytes_in, bytes_out;
};

struct fg_http_stats;

/* max_series: distinct (host, path, canary, cluster) at most (0: the
 * default); beyond it requests are counted in one series with host
 * "(overflow)". */
int fg_http_stats_new(struct fg_http_stats **out, size_t max_series);
void fg_http_stats_free(struct fg_http_stats *s);
void fg_http_stats_observe(struct fg_http_stats *s, const struct fg_http_obs *o);
/* The families fleetgate_http_requests_total, _request_duration_seconds,
 * _request_bytes_total, _response_bytes_total, summed over n tables. */
int fg_http_stats_render(struct fg_expo *e, struct fg_http_stats *const *tables, size_t n);

/* ---------- the registry ---------- */

struct fg_dataplane;
struct fg_control;
struct fg_proxy;
struct fg_health;
struct fg_access_log;
struct fg_metrics;

int fg_metrics_new(struct fg_metrics **out, struct fg_dataplane *dp, struct fg_control *control,
		   struct fg_health *health);
/* Either may come later, or never (NULL). The proxy's workers get a
 * table each (-ENOMEM when one cannot be had). */
int fg_metrics_set_proxy(struct fg_metrics *m, struct fg_proxy *proxy);
void fg_metrics_set_access_log(struct fg_metrics *m, struct fg_access_log *log);
/* fg_proxy_opts.on_request, ctx the fg_metrics: counts the request and
 * writes its access log line. */
void fg_metrics_on_request(const struct fg_request_record *rec, void *ctx);
/* A config apply (fg_control_process / fg_control_recompute) returned err;
 * changed: a new plan is in force. */
void fg_metrics_config_apply(struct fg_metrics *m, int err, bool changed);
/* Follows failovers (call it on every timer tick): once a second at most,
 * and only when the data plane changed. */
void fg_metrics_tick(struct fg_metrics *m);
/* The whole exposition. Returns 0 or -errno (-ENOMEM). */
int fg_metrics_render(struct fg_metrics *m, struct fg_expo *e);
/* The cluster id of a cluster index ("" when unknown). */
const char *fg_metrics_cluster_name(struct fg_metrics *m, int cluster_idx);
void fg_metrics_free(struct fg_metrics *m);

/* ---------- the /metrics endpoint ---------- */

#define FG_METRICS_DEF_LISTEN "127.0.0.1:10254"

typedef int (*fg_metrics_render_fn)(void *ctx, struct fg_expo *e);
struct fg_metrics_server;

/* 0 when listen_on is "ADDR:PORT" or "[ADDR6]:PORT", else -EINVAL. */
int fg_metrics_listen_check(const char *listen_on);
/* Listens on "ADDR:PORT" or "[ADDR6]:PORT" (port 0: any free port). */
int fg_metrics_server_open(struct fg_metrics_server **out, const char *listen,
			   fg_metrics_render_fn render, void *ctx);
/* An epoll fd for the agent's set: readable when there is work. */
int fg_metrics_server_fd(const struct fg_metrics_server *s);
__u16 fg_metrics_server_port(const struct fg_metrics_server *s);
/* Accepts, reads requests, answers: never blocks. */
void fg_metrics_server_process(struct fg_metrics_server *s);
/* Closes connections idle for too long (call it periodically). */
void fg_metrics_server_tick(struct fg_metrics_server *s);
void fg_metrics_server_close(struct fg_metrics_server *s);
/* fg_metrics_render as an fg_metrics_render_fn (ctx: the fg_metrics). */
int fg_metrics_render_cb(void *ctx, struct fg_expo *e);

#endif
