// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Prometheus metrics: the exposition format, the HTTP request series, and
 * the registry that renders everything else from where it lives. See
 * metrics.h; docs/operations.md "Metrics" documents every family.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "accesslog.h"
#include "control.h"
#include "dataplane.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "resources.h"
#include "routes.h"

/* ---------- exposition text ---------- */

void fg_expo_init(struct fg_expo *e)
{
	memset(e, 0, sizeof(*e));
}

void fg_expo_free(struct fg_expo *e)
{
	free(e->buf);
	memset(e, 0, sizeof(*e));
}

static bool expo_room(struct fg_expo *e, size_t n)
{
	size_t cap;
	char *b;

	if (e->oom)
		return false;
	if (e->len + n + 1 <= e->cap)
		return true;
	for (cap = e->cap ? e->cap : 16384; cap < e->len + n + 1; cap *= 2)
		;
	b = realloc(e->buf, cap);
	if (!b) {
		e->oom = true;
		return false;
	}
	e->buf = b;
	e->cap = cap;
	return true;
}

static void expo_put(struct fg_expo *e, const char *s, size_t n)
{
	if (!expo_room(e, n))
		return;
	memcpy(e->buf + e->len, s, n);
	e->len += n;
	e->buf[e->len] = '\0';
}

static void expo_puts(struct fg_expo *e, const char *s)
{
	expo_put(e, s, strlen(s));
}

static void expo_printf(struct fg_expo *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void expo_printf(struct fg_expo *e, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		expo_put(e, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Label values: \\, \" and \n; HELP text: \\ and \n. */
static void expo_escaped(struct fg_expo *e, const char *s, bool quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *rep = NULL;

		if (*s == '\\')
			rep = "\\\\";
		else if (*s == '\n')
			rep = "\\n";
		else if (*s == '"' && quote)
			rep = "\\\"";
		if (!rep)
			continue;
		expo_put(e, run, s - run);
		expo_puts(e, rep);
		run = s + 1;
	}
	expo_put(e, run, s - run);
}

const char *fg_expo_escape(const char *s, char *buf, size_t len)
{
	struct fg_expo e;

	fg_expo_init(&e);
	expo_escaped(&e, s, true);
	snprintf(buf, len, "%s", e.buf ? e.buf : "");
	fg_expo_free(&e);
	return buf;
}

void fg_expo_family(struct fg_expo *e, const char *name, const char *type, const char *help)
{
	expo_puts(e, "# HELP ");
	expo_puts(e, name);
	expo_put(e, " ", 1);
	expo_escaped(e, help, false);
	expo_puts(e, "\n# TYPE ");
	expo_puts(e, name);
	expo_put(e, " ", 1);
	expo_puts(e, type);
	expo_put(e, "\n", 1);
}

static void expo_name_labels(struct fg_expo *e, const char *name, const char *const *labels,
			     const char *extra_k, const char *extra_v)
{
	bool any = false;

	expo_puts(e, name);
	for (; labels && labels[0]; labels += 2) {
		expo_puts(e, any ? "," : "{");
		expo_puts(e, labels[0]);
		expo_puts(e, "=\"");
		expo_escaped(e, labels[1] ? labels[1] : "", true);
		expo_put(e, "\"", 1);
		any = true;
	}
	if (extra_k) {
		expo_puts(e, any ? "," : "{");
		expo_puts(e, extra_k);
		expo_puts(e, "=\"");
		expo_puts(e, extra_v);
		expo_put(e, "\"", 1);
		any = true;
	}
	if (any)
		expo_put(e, "}", 1);
	expo_put(e, " ", 1);
}

static void expo_value(struct fg_expo *e, double v)
{
	if (isnan(v))
		expo_puts(e, "NaN");
	else if (isinf(v))
		expo_puts(e, v > 0 ? "+Inf" : "-Inf");
	else
		expo_printf(e, "%.15g", v);
}

void fg_expo_u64(struct fg_expo *e, const char *name, const char *const *labels, __u64 v)
{
	expo_name_labels(e, name, labels, NULL, NULL);
	expo_printf(e, "%llu\n", (unsigned long long)v);
}

void fg_expo_double(struct fg_expo *e, const char *name, const char *const *labels, double v)
{
	expo_name_labels(e, name, labels, NULL, NULL);
	expo_value(e, v);
	expo_put(e, "\n", 1);
}

void fg_expo_histogram(struct fg_expo *e, const char *name, const char *const *labels,
		       const double *bounds, size_t n, const __u64 *counts, double sum)
{
	char metric[160], le[32];
	__u64 cum = 0;
	size_t i;

	snprintf(metric, sizeof(metric), "%s_bucket", name);
	for (i = 0; i <= n; i++) {
		cum += counts[i];
		if (i < n)
			snprintf(le, sizeof(le), "%g", bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		expo_name_labels(e, metric, labels, "le", le);
		expo_printf(e, "%llu\n", (unsigned long long)cum);
	}
	snprintf(metric, sizeof(metric), "%s_sum", name);
	fg_expo_double(e, metric, labels, sum);
	snprintf(metric, sizeof(metric), "%s_count", name);
	fg_expo_u64(e, metric, labels, cum);
}

/* ---------- HTTP request series ---------- */

const double fg_http_duration_bounds[FG_HTTP_NBOUNDS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

#define HTTP_HASH 1024

struct series {
	struct series *next; /* hash chain */
	unsigned hash;
	const char *host, *path, *canary, *cluster; /* in str */
	__u64 by_class[6];   /* [1] 1xx .. [5] 5xx, [0] anything else */
	__u64 buckets[FG_HTTP_NBOUNDS + 1];
	double sum;
	__u64 bytes_in, bytes_out;
	char str[];
};

struct fg_http_stats {
	struct series *tab[HTTP_HASH];
	struct series **order; /* first seen first: a stable output order */
	size_t n, cap, max;
	struct series *overflow;
};

int fg_http_stats_new(struct fg_http_stats **out, size_t max_series)
{
	struct fg_http_stats *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->max = max_series ? max_series : FG_HTTP_DEF_MAX_SERIES;
	*out = s;
	return 0;
}

void fg_http_stats_free(struct fg_http_stats *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++)
		free(s->order[i]);
	free(s->order);
	free(s->overflow);
	free(s);
}

static unsigned key_hash(const char *const k[4])
{
	unsigned h = 2166136261u;
	int i;

	for (i = 0; i < 4; i++) {
		const unsigned char *c;

		for (c = (const unsigned char *)k[i]; *c; c++)
			h = (h ^ *c) * 16777619u;
		h = (h ^ 0xff) * 16777619u;
	}
	return h;
}

static struct series *series_make(const char *const k[4], unsigned hash)
{
	size_t len[4], total = 0;
	struct series *se;
	char *p;
	int i;

	for (i = 0; i < 4; i++)
		total += (len[i] = strlen(k[i])) + 1;
	se = calloc(1, sizeof(*se) + total);
	if (!se)
		return NULL;
	se->hash = hash;
	p = se->str;
	for (i = 0; i < 4; i++) {
		memcpy(p, k[i], len[i] + 1);
		if (i == 0)
			se->host = p;
		else if (i == 1)
			se->path = p;
		else if (i == 2)
			se->canary = p;
		else
			se->cluster = p;
		p += len[i] + 1;
	}
	return se;
}

static struct series *series_get(struct fg_http_stats *s, const char *host, const char *path,
				 const char *canary, const char *cluster)
{
	const char *k[4] = { host ? host : "", path ? path : "", canary ? canary : "",
			     cluster ? cluster : "" };
	unsigned h = key_hash(k);
	struct series *se;

	for (se = s->tab[h % HTTP_HASH]; se; se = se->next)
		if (se->hash == h && !strcmp(se->host, k[0]) && !strcmp(se->path, k[1]) &&
		    !strcmp(se->canary, k[2]) && !strcmp(se->cluster, k[3]))
			return se;
	if (s->n >= s->max || (s->n == s->cap && s->n >= 1024 * 1024))
		goto overflow;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		struct series **o = realloc(s->order, cap * sizeof(*o));

		if (!o)
			goto overflow;
		s->order = o;
		s->cap = cap;
	}
	se = series_make(k, h);
	if (!se)
		goto overflow;
	se->next = s->tab[h % HTTP_HASH];
	s->tab[h % HTTP_HASH] = se;
	s->order[s->n++] = se;
	return se;
overflow:
	if (!s->overflow) {
		const char *ok[4] = { "(overflow)", "", "", "" };

		s->overflow = series_make(ok, 0);
	}
	return s->overflow;
}

void fg_http_stats_observe(struct fg_http_stats *s, const struct fg_http_obs *o)
{
	struct series *se = series_get(s, o->host, o->path, o->canary, o->cluster);
	int cls = o->status / 100;
	size_t b;

	if (!se)
		return;
	se->by_class[cls >= 1 && cls <= 5 ? cls : 0]++;
	for (b = 0; b < FG_HTTP_NBOUNDS && o->seconds > fg_http_duration_bounds[b]; b++)
		;
	se->buckets[b]++;
	se->sum += o->seconds;
	se->bytes_in += o->bytes_in;
	se->bytes_out += o->bytes_out;
}

static void series_add(struct series *d, const struct series *s)
{
	size_t i;

	for (i = 0; i < 6; i++)
		d->by_class[i] += s->by_class[i];
	for (i = 0; i <= FG_HTTP_NBOUNDS; i++)
		d->buckets[i] += s->buckets[i];
	d->sum += s->sum;
	d->bytes_in += s->bytes_in;
	d->bytes_out += s->bytes_out;
}

int fg_http_stats_render(struct fg_expo *e, struct fg_http_stats *const *tables, size_t n)
{
	static const char *const classes[6] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };
	struct fg_http_stats *sum = NULL;
	const struct fg_http_stats *t;
	struct series **all;
	size_t i, j, n_all;
	int err;

	if (n == 1) {
		t = tables[0];
	} else {
		/* One table per worker: added up series by series. */
		err = fg_http_stats_new(&sum, (size_t)-1);
		if (err)
			return err;
		for (i = 0; i < n; i++) {
			for (j = 0; j < tables[i]->n; j++) {
				const struct series *s = tables[i]->order[j];
				struct series *d = series_get(sum, s->host, s->path, s->canary,
							      s->cluster);
				if (d)
					series_add(d, s);
			}
			if (tables[i]->overflow) {
				struct series *d = series_get(sum, "(overflow)", "", "", "");

				if (d)
					series_add(d, tables[i]->overflow);
			}
		}
		t = sum;
	}
	n_all = t->n + (t->overflow != NULL);
	all = calloc(n_all ? n_all : 1, sizeof(*all));
	if (!all) {
		fg_http_stats_free(sum);
		return -ENOMEM;
	}
	memcpy(all, t->order, t->n * sizeof(*all));
	if (t->overflow)
		all[t->n] = t->overflow;

	fg_expo_family(e, "fleetgate_http_requests_total", "counter",
		       "HTTP requests answered, by route (Ingress rule host and path), canary "
		       "Ingress, cluster of the last upstream try and status class.");
	for (i = 0; i < n_all; i++) {
		const struct series *s = all[i];

		for (j = 0; j < 6; j++) {
			const char *l[] = { "host", s->host, "path", s->path, "canary", s->canary,
					    "cluster", s->cluster, "status_class", classes[j], NULL };

			if (s->by_class[j])
				fg_expo_u64(e, "fleetgate_http_requests_total", l, s->by_class[j]);
		}
	}
	fg_expo_family(e, "fleetgate_http_request_duration_seconds", "histogram",
		       "Time from a request's head received to its response queued whole "
		       "(or cut), seconds.");
	for (i = 0; i < n_all; i++) {
		const struct series *s = all[i];
		const char *l[] = { "host", s->host, "path", s->path, "canary", s->canary,
				    "cluster", s->cluster, NULL };

		fg_expo_histogram(e, "fleetgate_http_request_duration_seconds", l,
				  fg_http_duration_bounds, FG_HTTP_NBOUNDS, s->buckets, s->sum);
	}
	fg_expo_family(e, "fleetgate_http_request_bytes_total", "counter",
		       "Bytes read from clients for their requests (heads and bodies).");
	for (i = 0; i < n_all; i++) {
		const struct series *s = all[i];
		const char *l[] = { "host", s->host, "path", s->path, "canary", s->canary,
				    "cluster", s->cluster, NULL };

		fg_expo_u64(e, "fleetgate_http_request_bytes_total", l, s->bytes_in);
	}
	fg_expo_family(e, "fleetgate_http_response_bytes_total", "counter",
		       "Bytes of responses sent to clients (heads and bodies).");
	for (i = 0; i < n_all; i++) {
		const struct series *s = all[i];
		const char *l[] = { "host", s->host, "path", s->path, "canary", s->canary,
				    "cluster", s->cluster, NULL };

		fg_expo_u64(e, "fleetgate_http_response_bytes_total", l, s->bytes_out);
	}
	free(all);
	fg_http_stats_free(sum);
	return e->oom ? -ENOMEM : 0;
}

/* ---------- the registry ---------- */

/* A service's failover state, by its name in the services map. */
struct svc_state {
	struct svc_state *next;
	char name[FG_NAME_LEN];
	bool live;          /* in the current plan */
	__u64 pass;         /* the last pass that saw it */
	bool failed_over;   /* its ring serves clusters of a tier > 0 */
	int tier;           /* the tier its ring serves, -1: empty ring */
	__u64 failovers;    /* times it went from tier 0 to a higher one */
	__u32 slots[FG_MAX_CLUSTERS], total;
};

#define SVC_HASH 1024
#define FAILOVER_SLICE 2048 /* services read per tick while a pass runs */

struct fg_metrics {
	struct fg_dataplane *dp;
	struct fg_control *control;
	struct fg_health *health;
	struct fg_proxy *proxy;
	struct fg_access_log *log;
	/* One table per proxy worker, each under its own lock: a worker
	 * takes only its own (uncontended but while a scrape renders). */
	struct fg_http_stats *http[FG_PROXY_MAX_WORKERS];
	pthread_mutex_t http_lock[FG_PROXY_MAX_WORKERS];
	int n_http;
	time_t start;

	/* cluster ids by index, reread when the data plane changed */
	char clusters[FG_MAX_CLUSTERS][FG_NAME_LEN];
	__u32 cluster_flags[FG_MAX_CLUSTERS];
	__u64 cl_epoch;
	bool cl_valid;

	/* failovers */
	struct svc_state *svc[SVC_HASH];
	__u64 svc_epoch;
	__u64 svc_tick_ms;  /* the last update from fg_metrics_tick */
	bool svc_valid;
	bool svc_running;   /* a pass over the plan's targets is under way */
	__u64 svc_pass;
	size_t svc_pos;     /* its next target */

	/* config applies */
	__u64 applies_ok, applies_failed;
	double last_apply;  /* unix seconds of the last attempt, 0: none */
	bool last_ok;

};

/* Tables for n workers (never fewer than there are). */
static int http_tables(struct fg_metrics *m, int n)
{
	int err;

	if (n > FG_PROXY_MAX_WORKERS)
		n = FG_PROXY_MAX_WORKERS;
	while (m->n_http < n) {
		err = fg_http_stats_new(&m->http[m->n_http], 0);
		if (err)
			return err;
		pthread_mutex_init(&m->http_lock[m->n_http], NULL);
		m->n_http++;
	}
	return 0;
}

int fg_metrics_new(struct fg_metrics **out, struct fg_dataplane *dp, struct fg_control *control,
		   struct fg_health *health)
{
	struct fg_metrics *m = calloc(1, sizeof(*m));
	int err;

	if (!m)
		return -ENOMEM;
	m->dp = dp;
	m->control = control;
	m->health = health;
	m->start = time(NULL);
	err = http_tables(m, 1);
	if (err) {
		fg_metrics_free(m);
		return err;
	}
	*out = m;
	return 0;
}

int fg_metrics_set_proxy(struct fg_metrics *m, struct fg_proxy *proxy)
{
	m->proxy = proxy;
	return proxy ? http_tables(m, fg_proxy_workers(proxy)) : 0;
}

void fg_metrics_set_access_log(struct fg_metrics *m, struct fg_access_log *log)
{
	m->log = log;
}

void fg_metrics_free(struct fg_metrics *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < SVC_HASH; i++)
		while (m->svc[i]) {
			struct svc_state *s = m->svc[i];

			m->svc[i] = s->next;
			free(s);
		}
	for (i = 0; i < (size_t)m->n_http; i++) {
		fg_http_stats_free(m->http[i]);
		pthread_mutex_destroy(&m->http_lock[i]);
	}
	free(m);
}

static void clusters_refresh(struct fg_metrics *m)
{
	__u64 epoch = fg_dp_epoch(m->dp);
	int fd = fg_dp_maps(m->dp)->clusters;
	__u32 i;

	if (m->cl_valid && m->cl_epoch == epoch)
		return;
	for (i = 0; i < FG_MAX_CLUSTERS; i++) {
		struct fg_cluster cl;

		m->clusters[i][0] = '\0';
		m->cluster_flags[i] = 0;
		if (bpf_map_lookup_elem(fd, &i, &cl) || !(cl.flags & FG_CLUSTER_F_ACTIVE))
			continue;
		memcpy(m->clusters[i], cl.name, FG_NAME_LEN);
		m->clusters[i][FG_NAME_LEN - 1] = '\0';
		m->cluster_flags[i] = cl.flags;
	}
	m->cl_epoch = epoch;
	m->cl_valid = true;
}

const char *fg_metrics_cluster_name(struct fg_metrics *m, int idx)
{
	if (idx < 0 || idx >= FG_MAX_CLUSTERS)
		return "";
	clusters_refresh(m);
	return m->clusters[idx];
}

void fg_metrics_on_request(const struct fg_request_record *r, void *ctx)
{
	struct fg_metrics *m = ctx;
	/* Called on the proxy workers' threads: the record names its
	 * cluster (the lookup is for records made elsewhere, tests). */
	const char *cluster = r->cluster ? r->cluster : fg_metrics_cluster_name(m, r->cluster_idx);
	int w = r->worker >= 0 && r->worker < m->n_http ? r->worker : 0;
	struct fg_http_obs o = {
		.host = r->routed ? (r->route_host[0] ? r->route_host : "*") : "",
		.path = r->routed ? r->route_path : "",
		.canary = r->canary,
		.cluster = cluster,
		.status = r->status,
		.seconds = r->end_ns > r->start_ns ? (double)(r->end_ns - r->start_ns) / 1e9 : 0,
		.bytes_in = r->bytes_in,
		.bytes_out = r->bytes_out,
	};

	pthread_mutex_lock(&m->http_lock[w]);
	fg_http_stats_observe(m->http[w], &o);
	pthread_mutex_unlock(&m->http_lock[w]);
	if (m->log)
		fg_access_log_record(m->log, r, cluster);
}

void fg_metrics_config_apply(struct fg_metrics *m, int err, bool changed)
{
	if (!m || (!err && !changed))
		return;
	if (err)
		m->applies_failed++;
	else
		m->applies_ok++;
	m->last_ok = !err;
	m->last_apply = (double)time(NULL);
}

/* ---------- failovers ---------- */

static struct svc_state *svc_get(struct fg_metrics *m, const char *name)
{
	unsigned h = 2166136261u;
	struct svc_state *s;
	const char *c;

	for (c = name; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	for (s = m->svc[h % SVC_HASH]; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->tier = -1;
	s->next = m->svc[h % SVC_HASH];
	m->svc[h % SVC_HASH] = s;
	return s;
}

/* Every service of the plan: which tier its live cluster ring serves. A
 * ring over clusters of a tier above 0 is a failover (the route's own
 * clusters have no healthy endpoint left). A pass starts when the data
 * plane changed and reads at most `limit` targets per call (0: all): at
 * 11,000 services a whole pass is a system call each, 25 ms of the
 * control thread, which an endpoint change must not wait behind. Until a
 * pass ends, services keep what the last one saw. */
static void failover_step(struct fg_metrics *m, size_t limit)
{
	const struct fg_plan *plan = fg_control_plan(m->control);
	__u64 epoch = fg_dp_epoch(m->dp);
	int fd = fg_dp_maps(m->dp)->services;
	size_t n = plan ? plan->n_targets : 0, end;
	struct svc_state *s;
	size_t i;

	if (!m->svc_running) {
		if (m->svc_valid && m->svc_epoch == epoch)
			return;
		m->svc_running = true;
		m->svc_epoch = epoch;
		m->svc_pass++;
		m->svc_pos = 0;
	}
	end = limit && n - m->svc_pos > limit ? m->svc_pos + limit : n;
	for (i = m->svc_pos; i < end; i++) {
		struct fg_service svc;
		__u32 slots[FG_MAX_CLUSTERS], total = 0, sid;
		int id = fg_control_service_id(m->control, plan->targets[i]), c, tier = -1;
		bool failed;

		if (id < 0)
			continue;
		sid = (__u32)id;
		if (bpf_map_lookup_elem(fd, &sid, &svc) || !(svc.flags & FG_SERVICE_F_ACTIVE))
			continue;
		svc.name[FG_NAME_LEN - 1] = '\0';
		s = svc_get(m, svc.name);
		if (!s || s->pass == m->svc_pass)
			continue;
		s->pass = m->svc_pass;
		if (fg_dp_cluster_shares(m->dp, sid, slots, &total))
			continue;
		for (c = 0; c < FG_MAX_CLUSTERS; c++)
			if (slots[c] && (tier < 0 || svc.cluster_tier[c] < tier))
				tier = svc.cluster_tier[c];
		failed = total && tier > 0;
		if (failed && !s->failed_over)
			s->failovers++;
		s->failed_over = failed;
		s->tier = total ? tier : -1;
		memcpy(s->slots, slots, sizeof(slots));
		s->total = total;
		s->live = true;
	}
	m->svc_pos = end;
	if (end < n)
		return;
	for (i = 0; i < SVC_HASH; i++)
		for (s = m->svc[i]; s; s = s->next)
			if (s->pass != m->svc_pass)
				s->live = false;
	m->svc_running = false;
	m->svc_valid = true;
}

/* The whole of it, for a scrape. */
static void failover_update(struct fg_metrics *m)
{
	do
		failover_step(m, 0);
	while (m->svc_running);
}

/* A failover is followed within a second or so: a pass starts at most once
 * a second after a change (and runs whole at every scrape), FAILOVER_SLICE
 * services a tick, so 11,000 services take 6 ticks. */
void fg_metrics_tick(struct fg_metrics *m)
{
	struct timespec ts;
	__u64 now;

	if (!m)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (m->svc_running) {
		failover_step(m, FAILOVER_SLICE);
		return;
	}
	if (m->svc_valid && now - m->svc_tick_ms < 1000)
		return;
	m->svc_tick_ms = now;
	failover_step(m, FAILOVER_SLICE);
}

/* ---------- rendering ---------- */

static const char *const errno_names[5] = { "EMFILE", "ENFILE", "ENOBUFS", "ENOMEM",
					    "EADDRNOTAVAIL" };

static __u64 jint(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ? (__u64)json_integer_value(v) : 0;
}

static void counter1(struct fg_expo *e, const char *name, const char *help, __u64 v)
{
	fg_expo_family(e, name, "counter", help);
	fg_expo_u64(e, name, NULL, v);
}

static void gauge1(struct fg_expo *e, const char *name, const char *help, double v)
{
	fg_expo_family(e, name, "gauge", help);
	fg_expo_double(e, name, NULL, v);
}

/* The TLS listeners (docs/operations.md "Metrics"): handshakes by listener
 * and version, failures by listener and reason, and each certificate's
 * notAfter. */
static void render_tls(struct fg_metrics *m, struct fg_expo *e, json_t *tls,
		       const struct fg_proxy_counters *c)
{
	json_t *ls = json_object_get(tls, "listeners"), *l, *v, *ans, *req;
	const char *reason;
	size_t i;

	fg_expo_family(e, "fleetgate_tls_handshakes_total", "counter",
		       "TLS handshakes completed, by listener and version.");
	json_array_foreach(ls, i, l) {
		const char *name = json_string_value(json_object_get(l, "listener"));
		const char *l12[] = { "listener", name, "version", "TLSv1.2", NULL };
		const char *l13[] = { "listener", name, "version", "TLSv1.3", NULL };

		fg_expo_u64(e, "fleetgate_tls_handshakes_total", l12,
			    jint(l, "tls12"));
		fg_expo_u64(e, "fleetgate_tls_handshakes_total", l13,
			    jint(l, "tls13"));
	}
	fg_expo_family(e, "fleetgate_tls_handshake_errors_total", "counter",
		       "TLS handshakes that failed, by listener and reason (timeout, closed, "
		       "protocol_version, alert, protocol, internal).");
	json_array_foreach(ls, i, l) {
		const char *name = json_string_value(json_object_get(l, "listener"));

		json_object_foreach(json_object_get(l, "errors"), reason, v) {
			const char *lb[] = { "listener", name, "reason", reason, NULL };

			fg_expo_u64(e, "fleetgate_tls_handshake_errors_total", lb,
				    (__u64)json_integer_value(v));
		}
	}
	counter1(e, "fleetgate_tls_sessions_resumed_total",
		 "Completed TLS handshakes that resumed a session (ticket).", c->tls_resumed);
	counter1(e, "fleetgate_tls_ktls_connections_total",
		 "Completed TLS handshakes whose transmit keys went to the kernel (kTLS).",
		 c->tls_ktls);
	/* Certificates: what get certificates shows, on this (the control)
	 * thread. */
	req = json_pack("{s:s}", "get", "certificates");
	ans = req ? fg_control_admin(req, m->control) : NULL;
	json_decref(req);
	fg_expo_family(e, "fleetgate_tls_certificate_expiry_timestamp_seconds", "gauge",
		       "notAfter of each certificate in use (Unix time), by the Secret and host "
		       "it serves; host \"(default)\" for the default certificate.");
	json_array_foreach(json_object_get(ans, "items"), i, l) {
		const char *secret = json_string_value(json_object_get(l, "secret"));
		const char *slash = secret ? strchr(secret, '/') : NULL;
		char ns[128] = "";
		const char *lb[] = { "namespace", ns, "secret", slash ? slash + 1 : secret ? secret : "",
				     "host", json_string_value(json_object_get(l, "host")), NULL };

		if (!json_is_integer(json_object_get(l, "notAfterUnix")) || !lb[5])
			continue;
		if (slash)
			snprintf(ns, sizeof(ns), "%.*s", (int)(slash - secret), secret);
		fg_expo_double(e, "fleetgate_tls_certificate_expiry_timestamp_seconds", lb,
			       (double)json_integer_value(json_object_get(l, "notAfterUnix")));
	}
	json_decref(ans);
}

static void render_proxy(struct fg_metrics *m, struct fg_expo *e)
{
	struct fg_proxy_counters c;
	json_t *st;
	__u64 upstreams, idle;

	if (!m->proxy)
		return;
	fg_proxy_counters(m->proxy, &c);
	st = fg_proxy_stats(m->proxy);
	upstreams = jint(st, "upstreams");
	idle = jint(st, "idleUpstreams");
	counter1(e, "fleetgate_http_connections_accepted_total",
		 "Client connections accepted by the HTTP listener.", c.accepted);
	fg_expo_family(e, "fleetgate_http_connections_refused_total", "counter",
		       "Client connections refused at accept with a 503, by the limit they hit.");
	{
		const char *l1[] = { "reason", "max_conns", NULL };
		const char *l2[] = { "reason", "per_client", NULL };
		const char *l3[] = { "reason", "fd_budget", NULL };
		__u64 other = c.refused - c.refused_per_client - c.refused_fds;

		fg_expo_u64(e, "fleetgate_http_connections_refused_total", l1,
			    c.refused >= c.refused_per_client + c.refused_fds ? other : 0);
		fg_expo_u64(e, "fleetgate_http_connections_refused_total", l2, c.refused_per_client);
		fg_expo_u64(e, "fleetgate_http_connections_refused_total", l3, c.refused_fds);
	}
	gauge1(e, "fleetgate_http_client_connections", "Client connections open.",
	       (double)jint(st, "connections"));
	fg_expo_family(e, "fleetgate_http_upstream_connections", "gauge",
		       "Upstream connections open: serving a request, or idle in the pool.");
	{
		const char *l1[] = { "state", "active", NULL };
		const char *l2[] = { "state", "idle", NULL };

		fg_expo_u64(e, "fleetgate_http_upstream_connections", l1,
			    upstreams > idle ? upstreams - idle : 0);
		fg_expo_u64(e, "fleetgate_http_upstream_connections", l2, idle);
	}
	counter1(e, "fleetgate_http_upstream_connects_total",
		 "New upstream connections attempted.", c.upstream_connects);
	counter1(e, "fleetgate_http_upstream_reuses_total",
		 "Requests sent on a pooled (kept-alive) upstream connection.", c.upstream_reuses);
	counter1(e, "fleetgate_http_upstream_connect_errors_total",
		 "Upstream connects refused, unreachable or timed out (the endpoint's failures; "
		 "the gateway's own are fleetgate_local_errors_total).", c.connect_failures);
	counter1(e, "fleetgate_http_upstream_retries_total",
		 "Requests sent again to another endpoint after a failed try (proxy-next-upstream).",
		 c.retries);
	counter1(e, "fleetgate_http_requests_not_retried_total",
		 "Failed tries not sent again because the request had reached the endpoint and its "
		 "method is not idempotent.", c.not_retried);
	counter1(e, "fleetgate_http_client_body_timeouts_total",
		 "Requests answered 408 because the client stalled in the middle of its body.",
		 c.client_timeouts);
	counter1(e, "fleetgate_http_timeouts_total",
		 "Timeouts: request head, upstream connect, upstream response, client body.",
		 c.timeouts);
	counter1(e, "fleetgate_http_passive_markdowns_total",
		 "Endpoints the proxy marked down at once after a failed connect or no response.",
		 c.passive_down);
	counter1(e, "fleetgate_http_spliced_bytes_total",
		 "Body bytes that did not pass through user space (splice or sockmap).",
		 jint(st, "splicedBytes"));
	counter1(e, "fleetgate_http_kernel_bytes_total",
		 "Response body bytes redirected in the kernel (sockmap mode).",
		 jint(st, "kernelBytes"));
	gauge1(e, "fleetgate_http_fd_budget",
	       "File descriptors the proxy may hold (from the soft RLIMIT_NOFILE); 0: no limit.",
	       (double)jint(st, "fdBudget"));
	counter1(e, "fleetgate_http_tunnels_total",
		 "Upgraded connections (WebSocket and other Upgrade): 101 relayed, then tunnelled.",
		 c.tunnels);
	gauge1(e, "fleetgate_http_workers", "Proxy event loops (threads).",
	       (double)jint(st, "workers"));
	if (json_object_get(st, "tls"))
		render_tls(m, e, json_object_get(st, "tls"), &c);
	json_decref(st);
}

static void render_local_errors(struct fg_metrics *m, struct fg_expo *e)
{
	const struct fg_local_errors *h = m->health ? fg_health_local_errors(m->health) : NULL;
	json_t *st = m->proxy ? fg_proxy_stats(m->proxy) : NULL;
	json_t *pl = json_object_get(st, "localErrors");
	int i;

	fg_expo_family(e, "fleetgate_local_errors_total", "counter",
		       "Probes and upstream connects that failed for a reason of the gateway's own "
		       "(no file descriptor, no memory, no buffer, no local port): no endpoint is "
		       "marked down for them.");
	for (i = 0; i < 5; i++) {
		const char *lp[] = { "component", "proxy", "errno", errno_names[i], NULL };
		const char *lh[] = { "component", "health", "errno", errno_names[i], NULL };

		if (m->proxy)
			fg_expo_u64(e, "fleetgate_local_errors_total", lp, jint(pl, errno_names[i]));
		if (h)
			fg_expo_u64(e, "fleetgate_local_errors_total", lh, h->by_errno[i]);
	}
	json_decref(st);
}

static void render_access_log(struct fg_metrics *m, struct fg_expo *e)
{
	struct fg_access_log_stats st;

	if (!m->log)
		return;
	fg_access_log_stats(m->log, &st);
	counter1(e, "fleetgate_access_log_lines_total", "Access log lines queued for writing.",
		 st.lines);
	counter1(e, "fleetgate_access_log_dropped_total",
		 "Access log lines dropped because the buffer was full (the file did not keep up).",
		 st.dropped);
	counter1(e, "fleetgate_access_log_write_errors_bytes_total",
		 "Access log bytes the file refused (a write failed).", st.write_errors);
}

static void render_config(struct fg_metrics *m, struct fg_expo *e)
{
	static const char *const phases[] = { "Pending", "Running", "Listening", "Failed" };
	const struct fg_plan *plan = fg_control_plan(m->control);
	size_t i, j, rejected = 0;

	fg_expo_family(e, "fleetgate_config_applies_total", "counter",
		       "Plans computed from the fleet's objects and written to the data plane, by "
		       "result.");
	{
		const char *l1[] = { "result", "success", NULL };
		const char *l2[] = { "result", "failure", NULL };

		fg_expo_u64(e, "fleetgate_config_applies_total", l1, m->applies_ok);
		fg_expo_u64(e, "fleetgate_config_applies_total", l2, m->applies_failed);
	}
	if (m->last_apply > 0) {
		gauge1(e, "fleetgate_config_last_apply_success",
		       "1 when the last apply succeeded, 0 when it failed.", m->last_ok);
		gauge1(e, "fleetgate_config_last_apply_timestamp_seconds",
		       "Unix time of the last apply.", m->last_apply);
	}
	if (!plan)
		return;
	fg_expo_family(e, "fleetgate_ingress_accepted", "gauge",
		       "1 for an Ingress the gateway serves, 0 for one it rejected (fleetgatectl get "
		       "ingress says why).");
	for (i = 0; i < plan->n_ingresses; i++) {
		const struct fg_ingress_status *ig = &plan->ingresses[i];
		const char *l[] = { "namespace", ig->ns, "ingress", ig->name, NULL };

		fg_expo_u64(e, "fleetgate_ingress_accepted", l, ig->accepted);
		rejected += !ig->accepted;
	}
	fg_expo_family(e, "fleetgate_config_rejected_objects", "gauge",
		       "Objects of the fleet's configuration the gateway rejects, by kind.");
	{
		const char *l[] = { "kind", "Ingress", NULL };

		fg_expo_u64(e, "fleetgate_config_rejected_objects", l, rejected);
	}
	fg_expo_family(e, "fleetgate_gateway_phase", "gauge",
		       "1 for the phase each gateway (MseIngressConfig) is in.");
	for (i = 0; i < plan->n_gateways; i++) {
		const struct fg_gateway_status *gw = &plan->gateways[i];

		for (j = 0; j < sizeof(phases) / sizeof(phases[0]); j++) {
			const char *l[] = { "gateway", gw->name, "phase", phases[j], NULL };

			fg_expo_u64(e, "fleetgate_gateway_phase", l, !strcmp(gw->phase, phases[j]));
		}
	}
}

/* Sums of a per-CPU counter array's entries [0, n): batch lookups of 1024
 * entries (a scrape over many endpoints costs a few system calls, not one
 * per endpoint), entry by entry where batches are refused. */
static struct fg_counter *read_counters(struct fg_metrics *m, int fd, __u32 n)
{
	struct fg_counter *sum = calloc(n ? n : 1, sizeof(*sum)), *vals;
	int ncpus = fg_dp_ncpus(m->dp), c;
	__u32 chunk = 1024, *keys, done = 0, i;

	if (!sum)
		return NULL;
	vals = calloc((size_t)chunk * ncpus, sizeof(*vals));
	keys = calloc(chunk, sizeof(*keys));
	while (vals && keys && done < n) {
		LIBBPF_OPTS(bpf_map_batch_opts, bopts);
		__u32 in = done, out = 0, count = n - done < chunk ? n - done : chunk;
		int err;

		err = bpf_map_lookup_batch(fd, done ? &in : NULL, &out, keys, vals, &count, &bopts);
		if ((err && errno != ENOENT) || !count)
			break;
		for (i = 0; i < count; i++) {
			if (keys[i] >= n)
				continue;
			for (c = 0; c < ncpus; c++) {
				sum[keys[i]].packets += vals[(size_t)i * ncpus + c].packets;
				sum[keys[i]].bytes += vals[(size_t)i * ncpus + c].bytes;
			}
		}
		done = keys[count - 1] + 1;
		if (err)
			break; /* ENOENT: the end of the map */
	}
	for (i = done; i < n; i++)
		fg_dp_read_counter(m->dp, fd, i, &sum[i]);
	free(vals);
	free(keys);
	return sum;
}

/* One endpoint: its backend entries (one per service using it in older
 * data models) merged. */
struct ep {
	__u32 cluster;
	__u8 family;
	struct fg_addr addr;
	__u16 port;
	bool up;
	__u64 packets, bytes;
};

static int ep_cmp(const void *a, const void *b)
{
	const struct ep *x = a, *y = b;

	if (x->cluster != y->cluster)
		return x->cluster < y->cluster ? -1 : 1;
	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	return memcmp(&x->addr, &y->addr, sizeof(x->addr));
}

static void ep_str(const struct ep *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	fg_addr_str(&p->addr, p->family, a, sizeof(a));
	snprintf(buf, len, p->family == FG_AF_INET6 ? "[%s]:%u" : "%s:%u", a, p->port);
}

static void render_endpoints(struct fg_metrics *m, struct fg_expo *e)
{
	const struct fg_maps *maps = fg_dp_maps(m->dp);
	__u32 up[FG_MAX_CLUSTERS] = {}, down[FG_MAX_CLUSTERS] = {};
	struct ep *eps = NULL;
	size_t n = 0, cap = 0, i, k;
	char buf[INET6_ADDRSTRLEN + 16];
	__u32 id, high = fg_dp_backend_high(m->dp);
	struct fg_counter *cnts = read_counters(m, maps->backend_stats, high);
	int c;

	/* The backends as this process wrote them (it is their only writer,
	 * health included): no system call but for the counters. */
	for (id = 0; id < high; id++) {
		struct fg_counter cnt = cnts ? cnts[id] : (struct fg_counter){};
		struct fg_backend bv, *be = &bv;

		if (fg_dp_backend_view(m->dp, id, &bv) || !(be->flags & FG_BACKEND_F_ACTIVE) ||
		    be->cluster_idx >= FG_MAX_CLUSTERS)
			continue;
		if (n == cap) {
			struct ep *x = realloc(eps, (cap = cap ? 2 * cap : 256) * sizeof(*x));

			if (!x)
				break;
			eps = x;
		}
		eps[n] = (struct ep){ .cluster = be->cluster_idx, .family = be->family,
				      .addr = be->addr, .port = ntohs(be->port),
				      .up = !!(be->flags & FG_BACKEND_F_UP),
				      .packets = cnt.packets, .bytes = cnt.bytes };
		n++;
	}
	qsort(eps, n, sizeof(*eps), ep_cmp);
	for (i = 0, k = 0; i < n; i++) {
		if (k && !ep_cmp(&eps[k - 1], &eps[i])) {
			eps[k - 1].up |= eps[i].up;
			eps[k - 1].packets += eps[i].packets;
			eps[k - 1].bytes += eps[i].bytes;
			continue;
		}
		eps[k++] = eps[i];
	}
	n = k;
	fg_expo_family(e, "fleetgate_endpoint_up", "gauge",
		       "1 while an endpoint passes its health checks (backends map flag UP), 0 while "
		       "it is marked down.");
	for (i = 0; i < n; i++) {
		const char *l[] = { "cluster", fg_metrics_cluster_name(m, eps[i].cluster),
				    "endpoint", buf, NULL };

		ep_str(&eps[i], buf, sizeof(buf));
		fg_expo_u64(e, "fleetgate_endpoint_up", l, eps[i].up);
		if (eps[i].up)
			up[eps[i].cluster]++;
		else
			down[eps[i].cluster]++;
	}
	fg_expo_family(e, "fleetgate_cluster_endpoints", "gauge",
		       "Endpoints of each cluster, by health state.");
	for (c = 0; c < FG_MAX_CLUSTERS; c++) {
		const char *lu[] = { "cluster", m->clusters[c], "state", "up", NULL };
		const char *ld[] = { "cluster", m->clusters[c], "state", "down", NULL };

		if (!m->clusters[c][0])
			continue;
		fg_expo_u64(e, "fleetgate_cluster_endpoints", lu, up[c]);
		fg_expo_u64(e, "fleetgate_cluster_endpoints", ld, down[c]);
	}
	fg_expo_family(e, "fleetgate_xdp_endpoint_packets_total", "counter",
		       "Packets XDP sent to an endpoint (L4 Services).");
	for (i = 0; i < n; i++) {
		const char *l[] = { "cluster", fg_metrics_cluster_name(m, eps[i].cluster),
				    "endpoint", buf, NULL };

		ep_str(&eps[i], buf, sizeof(buf));
		fg_expo_u64(e, "fleetgate_xdp_endpoint_packets_total", l, eps[i].packets);
	}
	fg_expo_family(e, "fleetgate_xdp_endpoint_bytes_total", "counter",
		       "Bytes XDP sent to an endpoint (L4 Services).");
	for (i = 0; i < n; i++) {
		const char *l[] = { "cluster", fg_metrics_cluster_name(m, eps[i].cluster),
				    "endpoint", buf, NULL };

		ep_str(&eps[i], buf, sizeof(buf));
		fg_expo_u64(e, "fleetgate_xdp_endpoint_bytes_total", l, eps[i].bytes);
	}
	free(eps);
	free(cnts);
}

static void render_clusters(struct fg_metrics *m, struct fg_expo *e)
{
	const struct fg_maps *maps = fg_dp_maps(m->dp);
	struct fg_counter cnt[FG_MAX_CLUSTERS] = {};
	int c;

	clusters_refresh(m);
	fg_expo_family(e, "fleetgate_cluster_up", "gauge",
		       "1 while a member cluster can be read and used, 0 otherwise.");
	for (c = 0; c < FG_MAX_CLUSTERS; c++) {
		const char *l[] = { "cluster", m->clusters[c], NULL };

		if (!m->clusters[c][0])
			continue;
		fg_expo_u64(e, "fleetgate_cluster_up", l, !!(m->cluster_flags[c] & FG_CLUSTER_F_UP));
		fg_dp_read_counter(m->dp, maps->cluster_stats, c, &cnt[c]);
	}
	fg_expo_family(e, "fleetgate_xdp_cluster_packets_total", "counter",
		       "Packets XDP sent to a cluster's endpoints (L4 Services).");
	for (c = 0; c < FG_MAX_CLUSTERS; c++) {
		const char *l[] = { "cluster", m->clusters[c], NULL };

		if (m->clusters[c][0])
			fg_expo_u64(e, "fleetgate_xdp_cluster_packets_total", l, cnt[c].packets);
	}
	fg_expo_family(e, "fleetgate_xdp_cluster_bytes_total", "counter",
		       "Bytes XDP sent to a cluster's endpoints (L4 Services).");
	for (c = 0; c < FG_MAX_CLUSTERS; c++) {
		const char *l[] = { "cluster", m->clusters[c], NULL };

		if (m->clusters[c][0])
			fg_expo_u64(e, "fleetgate_xdp_cluster_bytes_total", l, cnt[c].bytes);
	}
}

static void render_failovers(struct fg_metrics *m, struct fg_expo *e)
{
	struct svc_state *s;
	char share_help[] = "Share of a service's new connections and requests each cluster gets "
			    "now (its slots in the live cluster ring).";
	size_t i;
	int c;

	failover_update(m);
	clusters_refresh(m);
	fg_expo_family(e, "fleetgate_service_failed_over", "gauge",
		       "1 while a service's traffic goes to clusters of a failover tier above 0 "
		       "(its own clusters have no healthy endpoint).");
	for (i = 0; i < SVC_HASH; i++)
		for (s = m->svc[i]; s; s = s->next) {
			const char *l[] = { "service", s->name, NULL };

			if (s->live)
				fg_expo_u64(e, "fleetgate_service_failed_over", l, s->failed_over);
		}
	fg_expo_family(e, "fleetgate_service_failover_tier", "gauge",
		       "The failover tier a service's traffic goes to (0: its own clusters); absent "
		       "while no cluster can serve it.");
	for (i = 0; i < SVC_HASH; i++)
		for (s = m->svc[i]; s; s = s->next) {
			const char *l[] = { "service", s->name, NULL };

			if (s->live && s->tier >= 0)
				fg_expo_u64(e, "fleetgate_service_failover_tier", l, s->tier);
		}
	fg_expo_family(e, "fleetgate_service_failovers_total", "counter",
		       "Times a service's traffic moved to a higher failover tier.");
	for (i = 0; i < SVC_HASH; i++)
		for (s = m->svc[i]; s; s = s->next) {
			const char *l[] = { "service", s->name, NULL };

			fg_expo_u64(e, "fleetgate_service_failovers_total", l, s->failovers);
		}
	fg_expo_family(e, "fleetgate_service_cluster_share_ratio", "gauge", share_help);
	for (i = 0; i < SVC_HASH; i++)
		for (s = m->svc[i]; s; s = s->next)
			for (c = 0; c < FG_MAX_CLUSTERS && s->live && s->total; c++) {
				const char *l[] = { "service", s->name, "cluster", m->clusters[c],
						    NULL };

				if (s->slots[c] && m->clusters[c][0])
					fg_expo_double(e, "fleetgate_service_cluster_share_ratio", l,
						       (double)s->slots[c] / s->total);
			}
}

static const char *verdict_action(int r)
{
	if (fg_reason_is_drop(r))
		return "drop";
	if (r == FG_R_FORWARD || r == FG_R_REPLY)
		return "redirect";
	return "pass";
}

static void render_xdp(struct fg_metrics *m, struct fg_expo *e)
{
	const struct fg_maps *maps = fg_dp_maps(m->dp);
	struct fg_counter v[FG_R_MAX] = {};
	struct fg_listener_key keys[256], key, *kp = NULL;
	struct fg_listener vals[256];
	struct fg_counter lc[256];
	size_t n = 0, i;
	int r;

	for (r = 0; r < FG_R_MAX; r++)
		fg_dp_read_counter(m->dp, maps->verdicts, r, &v[r]);
	fg_expo_family(e, "fleetgate_xdp_packets_total", "counter",
		       "Packets the XDP program handled, by verdict reason and action "
		       "(docs/maps.md \"Counters\").");
	for (r = 0; r < FG_R_MAX; r++) {
		const char *l[] = { "reason", fg_reason_name(r), "action", verdict_action(r), NULL };

		fg_expo_u64(e, "fleetgate_xdp_packets_total", l, v[r].packets);
	}
	fg_expo_family(e, "fleetgate_xdp_bytes_total", "counter",
		       "Bytes the XDP program handled, by verdict reason and action.");
	for (r = 0; r < FG_R_MAX; r++) {
		const char *l[] = { "reason", fg_reason_name(r), "action", verdict_action(r), NULL };

		fg_expo_u64(e, "fleetgate_xdp_bytes_total", l, v[r].bytes);
	}
	/* Listeners: the gateway has a few (--listen and the LoadBalancer
	 * ports); the first 256 are shown. */
	while (n < 256 && !bpf_map_get_next_key(maps->listeners, kp, &key)) {
		kp = &keys[n];
		keys[n] = key;
		if (bpf_map_lookup_elem(maps->listeners, &key, &vals[n]))
			continue;
		memset(&lc[n], 0, sizeof(lc[n]));
		fg_dp_read_counter(m->dp, maps->listener_stats, vals[n].stats_idx, &lc[n]);
		n++;
	}
	for (i = 0; i < 2; i++) {
		const char *name = i ? "fleetgate_xdp_listener_bytes_total"
				     : "fleetgate_xdp_listener_packets_total";
		size_t j;

		fg_expo_family(e, name, "counter",
			       i ? "Bytes XDP counted for a listener (L4: balanced; L7: to the proxy)."
				 : "Packets XDP counted for a listener (L4: balanced; L7: to the "
				   "proxy).");
		for (j = 0; j < n; j++) {
			char a[INET6_ADDRSTRLEN], lst[INET6_ADDRSTRLEN + 16];
			const char *l[] = { "listener", lst, "protocol",
					    keys[j].proto == FG_PROTO_UDP ? "udp" : "tcp", "kind",
					    vals[j].kind == FG_LISTENER_L7 ? "l7" : "l4", NULL };

			fg_addr_str(&keys[j].vip, keys[j].family, a, sizeof(a));
			snprintf(lst, sizeof(lst), keys[j].family == FG_AF_INET6 ? "[%s]:%u" : "%s:%u",
				 a, ntohs(keys[j].port));
			fg_expo_u64(e, name, l, i ? lc[j].bytes : lc[j].packets);
		}
	}
}

int fg_metrics_render(struct fg_metrics *m, struct fg_expo *e)
{
	int err, i;

	gauge1(e, "fleetgate_start_time_seconds", "Unix time the agent started.",
	       (double)m->start);
	for (i = 0; i < m->n_http; i++)
		pthread_mutex_lock(&m->http_lock[i]);
	err = fg_http_stats_render(e, m->http, m->n_http);
	for (i = 0; i < m->n_http; i++)
		pthread_mutex_unlock(&m->http_lock[i]);
	if (err)
		return err;
	render_proxy(m, e);
	render_local_errors(m, e);
	render_access_log(m, e);
	render_config(m, e);
	render_clusters(m, e);
	render_endpoints(m, e);
	render_failovers(m, e);
	render_xdp(m, e);
	return e->oom ? -ENOMEM : 0;
}

int fg_metrics_render_cb(void *ctx, struct fg_expo *e)
{
	return fg_metrics_render(ctx, e);
}
