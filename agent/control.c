// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <bpf/bpf.h>

#include "apply.h"
#include "compact.h"
#include "configdir.h"
#include "control.h"
#include "kube.h"
#include "log.h"
#include "objstore.h"
#include "tls.h"
#include "tls_config.h"

struct fg_control {
	struct fg_dataplane *dp;
	struct fg_configdir *cd;
	struct fg_kube *kube;
	int epfd;             /* config directory + Kubernetes API */
	json_t *cluster_errors; /* cluster id -> why it cannot be read */
	json_t *kube_errors;  /* [{origin, reason}] for status */
	struct fg_applier *applier;
	struct fg_plan *plan;
	struct fg_objstore *store; /* every object, indexed, kept up to date */
	struct fg_changes ch;      /* what changed since the last computation */
	json_t *kube_prev;         /* the Kubernetes objects last seen, by key */
	char kube_state[512];      /* errors and sync of its sources, last seen */
	char syncing[512];         /* sources not listed yet */
	json_t *no_room;           /* objects the maps have no room for -> why */
	char behind[256];          /* why the maps are not what the plan says */
	struct fg_control_stats cst;
	unsigned long plan_gen;    /* atomic: fg_control_plan_gen */
	unsigned long plan_serial; /* fg_control_plan_serial */
	json_t *fleet;        /* current snapshot */
	json_t *clusters;
	json_t *first_seen;   /* gateway name -> time first seen */
	bool dataplane_ready;
	bool listening;
	char address[64];     /* the listen address, as shown in status */
	int listen_family;
	__u16 listen_port;
	/* TLS */
	struct fg_tls_cache *tls_cache;  /* parsed Secrets across plans */
	struct fg_tls_cert *tls_default; /* --default-cert, or generated on first need */
	struct fg_tls_store *tls_store;  /* the newest store (tls_lock) */
	pthread_mutex_t tls_lock;
	unsigned long tls_gen;           /* atomic: the newest store's generation */
	bool tls_wanted;                 /* someone asked for a store */
	int tls_timer;                   /* timerfd: a validity period begins or ends */
};

int fg_parse_listen(const char *s, struct fg_addr *addr, int *family, __u16 *port)
{
	char host[64];
	const char *colon;
	unsigned long p;
	char *end;
	size_t n;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		n = close - s - 1;
		colon = close + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		n = colon - s;
	}
	if (!n || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || !p || p > 65535 || end == colon + 1)
		return -EINVAL;
	*port = p;
	return fg_addr_parse(host, addr, family);
}

static void drop_plan(struct fg_control *c)
{
	fg_plan_free(c->plan);
	c->plan = NULL;
}

static int add_cluster_source(struct fg_kube *k, const char *spec)
{
	struct fg_kube_source_opts o = {};
	char *dup = strdup(spec), *eq, *hash;
	int err;

	if (!dup)
		return -ENOMEM;
	eq = strchr(dup, '=');
	if (!eq || eq == dup || !eq[1]) {
		pr_warn("invalid --cluster-kubeconfig '%s': expected ID=PATH[#CONTEXT]\n", spec);
		free(dup);
		return -EINVAL;
	}
	*eq = '\0';
	hash = strchr(eq + 1, '#');
	if (hash)
		*hash++ = '\0';
	o.origin = dup;
	o.kubeconfig_path = eq + 1;
	o.context = hash;
	err = fg_kube_add_source(k, &o);
	free(dup);
	return err;
}

static int open_kube(struct fg_control *c, const struct fg_control_opts *opts)
{
	const char *const *spec;
	int err;

	if (!opts->kubeconfig && !(opts->cluster_kubeconfigs && opts->cluster_kubeconfigs[0]))
		return 0;
	err = fg_kube_new(&c->kube);
	if (err)
		return err;
	if (opts->kubeconfig) {
		struct fg_kube_source_opts o = {
			.kubeconfig_path = strcmp(opts->kubeconfig, "in-cluster") ? opts->kubeconfig
										  : NULL,
			.context = opts->kube_context,
			.cluster_secrets = opts->cluster_secrets,
		};

		err = fg_kube_add_source(c->kube, &o);
		if (err)
			return err;
	}
	for (spec = opts->cluster_kubeconfigs; spec && *spec; spec++) {
		err = add_cluster_source(c->kube, *spec);
		if (err)
			return err;
	}
	return 0;
}

static int open_epoll(struct fg_control *c)
{
	struct epoll_event ev = { .events = EPOLLIN };

	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0)
		return -errno;
	if (c->cd) {
		ev.data.fd = fg_configdir_fd(c->cd);
		if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
			return -errno;
	}
	if (c->kube) {
		ev.data.fd = fg_kube_fd(c->kube);
		if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
			return -errno;
	}
	ev.data.fd = c->tls_timer;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
		return -errno;
	return 0;
}

/* --default-cert/--default-key, when given: refused at start when they
 * cannot serve; an expired one is only warned about (the operator's
 * choice, and failing the start would take every name down). */
static int load_default_cert(struct fg_control *c, const struct fg_control_opts *opts)
{
	char why[FG_TLS_WHY_LEN];
	int err;

	if (!opts->default_cert && !opts->default_key)
		return 0;
	if (!opts->default_cert || !opts->default_key) {
		pr_warn("the default certificate needs both a certificate and a key file\n");
		return -EINVAL;
	}
	err = fg_tls_cert_from_files(opts->default_cert, opts->default_key, &c->tls_default, why,
				     sizeof(why));
	if (err) {
		pr_warn("cannot use the default certificate %s: %s\n", opts->default_cert, why);
		return err;
	}
	if (fg_tls_cert_check_time(c->tls_default, time(NULL), why, sizeof(why)))
		pr_warn("tls: the default certificate %s: %s\n", opts->default_cert, why);
	return 0;
}

static void on_dir_change(const char *origin, const char *path, json_t *old, json_t *new,
			  void *ctx);

int fg_control_new(struct fg_control **out, struct fg_dataplane *dp,
		   const struct fg_control_opts *opts)
{
	struct fg_applier_opts aopts = {};
	struct fg_control *c;
	bool changed;
	int err;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dp = dp;
	c->epfd = -1;
	pthread_mutex_init(&c->tls_lock, NULL);
	c->tls_timer = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	c->fleet = json_array();
	c->clusters = json_object();
	c->first_seen = json_object();
	c->cluster_errors = json_object();
	c->kube_errors = json_array();
	c->kube_prev = json_object();
	c->no_room = json_object();
	fg_changes_init(&c->ch);
	if (!c->fleet || !c->clusters || !c->first_seen || !c->cluster_errors || !c->kube_errors ||
	    !c->kube_prev || !c->no_room || !c->ch.services || !c->ch.pod_ns || !c->ch.ingresses ||
	    fg_objstore_new(&c->store) || fg_tls_cache_new(&c->tls_cache)) {
		err = -ENOMEM;
		goto err;
	}
	if (c->tls_timer < 0) {
		err = -errno;
		pr_warn("control: cannot create the certificate timer: %s\n", strerror(-err));
		goto err;
	}
	err = load_default_cert(c, opts);
	if (err)
		goto err;
	if (opts->listen) {
		err = fg_parse_listen(opts->listen, &aopts.listen_addr, &aopts.listen_family,
				      &aopts.listen_port);
		if (err) {
			pr_warn("invalid --listen '%s': expected ADDR:PORT or [ADDR6]:PORT\n",
				opts->listen);
			goto err;
		}
		fg_addr_str(&aopts.listen_addr, aopts.listen_family, c->address,
			    sizeof(c->address));
		c->listen_family = aopts.listen_family;
		c->listen_port = aopts.listen_port;
	}
	err = fg_applier_new(&c->applier, dp, &aopts);
	if (err)
		goto err;
	if (opts->config_dir) {
		err = fg_configdir_open(&c->cd, opts->config_dir);
		if (err) {
			pr_warn("cannot watch config directory %s: %s\n", opts->config_dir,
				strerror(-err));
			goto err;
		}
		fg_configdir_set_change_cb(c->cd, on_dir_change, c);
		err = fg_configdir_rescan(c->cd, &changed);
		if (err) {
			pr_warn("cannot read config directory %s: %s\n", opts->config_dir,
				strerror(-err));
			goto err;
		}
	}
	err = open_kube(c, opts);
	if (err)
		goto err;
	err = open_epoll(c);
	if (err)
		goto err;
	*out = c;
	return 0;
err:
	fg_control_free(c);
	return err;
}

void fg_control_free(struct fg_control *c)
{
	if (!c)
		return;
	drop_plan(c);
	fg_applier_free(c->applier);
	if (c->cd)
		fg_configdir_close(c->cd);
	fg_kube_free(c->kube);
	if (c->epfd >= 0)
		close(c->epfd);
	json_decref(c->cluster_errors);
	json_decref(c->kube_errors);
	json_decref(c->fleet);
	json_decref(c->clusters);
	json_decref(c->first_seen);
	json_decref(c->kube_prev);
	json_decref(c->no_room);
	fg_changes_fini(&c->ch);
	fg_objstore_free(c->store);
	fg_tls_store_put(c->tls_store);
	fg_tls_cert_put(c->tls_default);
	fg_tls_cache_free(c->tls_cache);
	if (c->tls_timer >= 0)
		close(c->tls_timer);
	pthread_mutex_destroy(&c->tls_lock);
	free(c);
}

int fg_control_fd(const struct fg_control *c)
{
	return c->epfd;
}

void fg_control_set_state(struct fg_control *c, bool dataplane_ready, bool listening)
{
	c->dataplane_ready = dataplane_ready;
	c->listening = listening;
}

const struct fg_plan *fg_control_plan(const struct fg_control *c)
{
	return c->plan;
}

unsigned long fg_control_plan_gen(const struct fg_control *c)
{
	return __atomic_load_n(&c->plan_gen, __ATOMIC_ACQUIRE);
}

unsigned long fg_control_plan_serial(const struct fg_control *c)
{
	return c->plan_serial;
}

static void plan_changed(struct fg_control *c)
{
	__atomic_add_fetch(&c->plan_gen, 1, __ATOMIC_RELEASE);
}

int fg_control_service_id(struct fg_control *c, const struct fg_target *t)
{
	return fg_applier_service_id(c->applier, t);
}

/* ---------- the objects, as their sources change them ---------- */

static void obj_key(char *buf, size_t len, const char *origin, json_t *obj)
{
	/* Cluster objects may be packed (compact.h). */
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	const char *name = fg_obj_name(obj);

	snprintf(buf, len, "%s\x1f%s\x1f%s\x1f%s", origin ? origin : "", kind ? kind : "",
		 fg_obj_ns(obj), name ? name : "");
}

static void store_change(struct fg_control *c, const char *origin, json_t *old, json_t *new)
{
	int err = fg_objstore_change(c->store, origin, old, new, &c->ch);

	if (err) {
		/* The index may have missed it: the next computation is whole. */
		pr_warn("control: cannot index a change: %s\n", strerror(-err));
		c->ch.full = true;
	}
}

/* A config file's objects went from old to new: the objects that kept
 * their key and content are no change. */
static void on_dir_change(const char *origin, const char *path, json_t *old, json_t *new,
			  void *ctx)
{
	struct fg_control *c = ctx;
	json_t *by_key = json_object(), *obj, *prev;
	const char *k;
	char key[1024];
	size_t i;

	if (!by_key) {
		c->ch.full = true;
		return;
	}
	json_array_foreach(old, i, obj) {
		obj_key(key, sizeof(key), origin, obj);
		if (json_object_get(by_key, key))
			store_change(c, origin, obj, NULL); /* a duplicate in the file */
		else
			json_object_set(by_key, key, obj);
	}
	json_array_foreach(new, i, obj) {
		obj_key(key, sizeof(key), origin, obj);
		prev = json_object_get(by_key, key);
		if (prev && json_equal(prev, obj)) {
			/* Same object: the store keeps the old copy, and so
			 * does the file's list, so that the next change of
			 * this file names the very object the store holds. */
			json_array_set(new, i, prev);
			json_object_del(by_key, key);
			continue;
		}
		store_change(c, origin, prev, obj);
		if (prev)
			json_object_del(by_key, key);
	}
	json_object_foreach(by_key, k, prev)
		store_change(c, origin, prev, NULL);
	json_decref(by_key);
	(void)path;
}

struct kube_walk {
	struct fg_control *c;
	json_t *now;
};

static int kube_obj(const char *origin, json_t *obj, void *ctx)
{
	struct kube_walk *w = ctx;
	char key[1024];
	json_t *prev;

	obj_key(key, sizeof(key), origin, obj);
	prev = json_object_get(w->c->kube_prev, key);
	if (prev != obj)
		store_change(w->c, origin, prev, obj);
	if (prev)
		json_object_del(w->c->kube_prev, key);
	return json_object_set(w->now, key, obj) ? -ENOMEM : 0;
}

static void kube_state_sig(const char *origin, bool synced, void *ctx)
{
	char *sig = ctx;
	size_t n = strlen(sig);

	snprintf(sig + n, 512 - n, "%s:%d,", origin ? origin : "", synced);
}

static void kube_err_sig(const char *origin, const char *reason, void *ctx)
{
	char *sig = ctx;
	size_t n = strlen(sig);

	snprintf(sig + n, 512 - n, "%s=%.40s,", origin ? origin : "", reason);
}

/* The Kubernetes sources' objects against those last seen: the store gets
 * the difference. */
static int kube_diff(struct fg_control *c)
{
	struct kube_walk w = { .c = c, .now = json_object() };
	char sig[512] = "";
	const char *k;
	json_t *old;
	int err;

	if (!w.now)
		return -ENOMEM;
	err = fg_kube_foreach(c->kube, kube_obj, &w);
	if (err) {
		json_decref(w.now);
		return err;
	}
	/* What is left was deleted. */
	json_object_foreach(c->kube_prev, k, old) {
		char origin[128];
		const char *sep = strchr(k, '\x1f');

		snprintf(origin, sizeof(origin), "%.*s", sep ? (int)(sep - k) : 0, k);
		store_change(c, origin[0] ? origin : NULL, old, NULL);
	}
	json_decref(c->kube_prev);
	c->kube_prev = w.now;
	/* Sources' errors and sync state are part of the clusters' status. */
	fg_kube_foreach_source(c->kube, kube_state_sig, sig);
	fg_kube_foreach_error(c->kube, kube_err_sig, sig);
	if (strcmp(sig, c->kube_state)) {
		snprintf(c->kube_state, sizeof(c->kube_state), "%s", sig);
		c->ch.full = true;
		c->ch.any = true;
	}
	return 0;
}

static void kube_source(const char *origin, bool synced, void *ctx)
{
	struct fg_control *c = ctx;

	if (!synced) {
		size_t n = strlen(c->syncing);

		snprintf(c->syncing + n, sizeof(c->syncing) - n, "%s%s%s", n ? ", " : "",
			 origin ? "cluster " : "fleet", origin ? origin : "");
	}
	if (!origin)
		return;
	/* A reachable cluster with no objects is readable, only empty. */
	if (synced && !json_object_get(c->clusters, origin))
		json_object_set_new(c->clusters, origin, json_array());
	if (!synced && !json_object_get(c->cluster_errors, origin))
		json_object_set_new(c->cluster_errors, origin,
				    json_string("waiting for the first list from its API server"));
}

static void kube_error(const char *origin, const char *reason, void *ctx)
{
	struct fg_control *c = ctx;

	json_array_append_new(c->kube_errors, json_pack("{s:s, s:s}", "origin",
							origin ? origin : "fleet", "reason", reason));
	if (origin)
		json_object_set_new(c->cluster_errors, origin, json_string(reason));
}

/* The snapshot a computation reads: the store's objects and indexes, plus
 * the Kubernetes sources' errors and empty-but-readable clusters. */
static int snapshot(struct fg_control *c, struct fg_snapshot *snap)
{
	int err;

	memset(snap, 0, sizeof(*snap));
	err = fg_objstore_snapshot(c->store, snap);
	if (err)
		return err;
	json_decref(c->fleet);
	c->fleet = json_incref(snap->fleet);
	json_object_clear(c->clusters);
	if (json_object_update(c->clusters, snap->clusters))
		return -ENOMEM;
	json_object_clear(c->cluster_errors);
	json_array_clear(c->kube_errors);
	c->syncing[0] = '\0';
	if (c->kube) {
		fg_kube_foreach_error(c->kube, kube_error, c);
		fg_kube_foreach_source(c->kube, kube_source, c);
	}
	snap->clusters = c->clusters;
	snap->cluster_errors = c->cluster_errors;
	return 0;
}

static void note_first_seen(struct fg_control *c)
{
	size_t i;

	for (i = 0; i < c->plan->n_gateways; i++) {
		const char *name = c->plan->gateways[i].name;

		if (!json_object_get(c->first_seen, name))
			json_object_set_new(c->first_seen, name, json_integer(time(NULL)));
	}
}

static void log_rejections(struct fg_control *c, const struct fg_plan *old)
{
	size_t i, j;

	for (i = 0; i < c->plan->n_ingresses; i++) {
		const struct fg_ingress_status *st = &c->plan->ingresses[i];
		bool same = false;

		if (st->accepted)
			continue;
		/* Say it once, not on every recomputation. */
		for (j = 0; old && j < old->n_ingresses; j++)
			if (!strcmp(old->ingresses[j].ns, st->ns) &&
			    !strcmp(old->ingresses[j].name, st->name) &&
			    !strcmp(old->ingresses[j].reason, st->reason))
				same = true;
		if (!same)
			pr_warn("Ingress %s/%s rejected: %s\n", st->ns, st->name, st->reason);
	}
	{
		const char *key;
		json_t *why;

		json_object_foreach(c->plan->l4_rejected, key, why)
			if (!old || !json_equal(why, json_object_get(old->l4_rejected, key)))
				pr_warn("%s not exposed: %s\n", key, json_string_value(why));
	}
	for (i = 0; i < c->plan->n_gateways; i++) {
		const struct fg_gateway_status *gw = &c->plan->gateways[i];

		if (!strcmp(gw->phase, "Failed"))
			pr_warn("MseIngressConfig %s: Failed: %s\n", gw->name, gw->message);
	}
}

static __u64 now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The plan in force stays, its gateways say the maps lag behind it. */
static void mark_behind(struct fg_control *c)
{
	size_t i;

	for (i = 0; c->plan && i < c->plan->n_gateways; i++) {
		struct fg_gateway_status *gw = &c->plan->gateways[i];
		json_t *st = json_object_get(gw->object, "status");

		if (!strcmp(gw->phase, "Failed"))
			continue;
		snprintf(gw->message, sizeof(gw->message),
			 "the data plane is behind the configuration: %.180s", c->behind);
		json_object_set_new(st, "message", json_string(gw->message));
	}
}

static void plan_opts(struct fg_control *c, struct fg_plan_opts *popts)
{
	memset(popts, 0, sizeof(*popts));
	popts->dataplane_ready = c->dataplane_ready;
	popts->listening = c->listening;
	popts->address = c->address;
	popts->tls_cache = c->tls_cache;
	popts->now = time(NULL);
}

/* ---------- TLS ---------- */

static struct fg_tls_cert *tls_default(struct fg_control *c)
{
	char why[FG_TLS_WHY_LEN], until[32];

	if (c->tls_default)
		return c->tls_default;
	if (fg_tls_cert_self_signed(&c->tls_default, why, sizeof(why))) {
		pr_warn("tls: cannot generate the default certificate: %s\n", why);
		return NULL;
	}
	fg_tls_time_str(fg_tls_cert_not_after(c->tls_default), until, sizeof(until));
	pr_info("tls: no default certificate given: names without one get a generated "
		"self-signed certificate (%s, until %s)\n", fg_tls_cert_subject(c->tls_default),
		until);
	return c->tls_default;
}

/* What changed in the hosts' TLS is said once, not at every computation. */
static void log_tls(const struct fg_tls_plan *now, const struct fg_tls_plan *before)
{
	size_t i, j;

	for (i = 0; now && i < now->n_hosts; i++) {
		const struct fg_tls_host *h = &now->hosts[i];
		bool same = false;

		if (!h->reason[0])
			continue;
		for (j = 0; before && j < before->n_hosts && !same; j++)
			same = !strcmp(before->hosts[j].host, h->host) &&
			       !strcmp(before->hosts[j].ingress, h->ingress) &&
			       !strcmp(before->hosts[j].reason, h->reason);
		if (!same)
			pr_warn("Ingress %s: TLS for %s: %s: %s\n", h->ingress, h->host,
				fg_tls_state_name(h->state), h->reason);
	}
}

/* The next computation when a certificate expires or becomes valid. */
static void tls_arm_timer(struct fg_control *c)
{
	struct itimerspec its = {};
	time_t t = c->plan && c->plan->tls ? c->plan->tls->next_check : 0;

	its.it_value.tv_sec = t;
	timerfd_settime(c->tls_timer, TFD_TIMER_ABSTIME, &its, NULL);
}

/* A new store when the plan's certificates differ from the newest one's. */
static void tls_publish(struct fg_control *c)
{
	struct fg_tls_store_entry *e = NULL;
	struct fg_tls_store *s = NULL, *old;
	struct fg_tls_cert *dflt;
	size_t n = 0;
	int err;

	tls_arm_timer(c);
	if (!c->tls_store && !c->tls_wanted && !(c->plan && c->plan->tls && c->plan->tls->n_hosts))
		return;
	dflt = tls_default(c);
	if (!dflt)
		return;
	err = fg_tls_plan_entries(c->plan ? c->plan->tls : NULL, &e, &n);
	if (!err)
		err = fg_tls_store_new(e, n, dflt, c->tls_gen + 1, &s);
	free(e);
	if (err) {
		pr_warn("tls: cannot build the certificate store: %s\n", strerror(-err));
		return;
	}
	if (c->tls_store && fg_tls_store_same(s, c->tls_store)) {
		fg_tls_store_put(s);
		return;
	}
	pthread_mutex_lock(&c->tls_lock);
	old = c->tls_store;
	c->tls_store = s;
	__atomic_store_n(&c->tls_gen, fg_tls_store_generation(s), __ATOMIC_RELEASE);
	pthread_mutex_unlock(&c->tls_lock);
	fg_tls_store_put(old);
	pr_info("tls: certificates for %zu name%s (store generation %lu)\n", fg_tls_store_size(s),
		fg_tls_store_size(s) == 1 ? "" : "s", fg_tls_store_generation(s));
}

/* Only the Secrets changed (or a validity period began or ended): the
 * plan's TLS is recomputed, routes keep everything but their tls flag. */
static int recompute_tls(struct fg_control *c)
{
	struct fg_tls_plan *before;
	struct fg_snapshot snap;
	bool changed = false;
	int err;

	if (!c->plan)
		return 0;
	memset(&snap, 0, sizeof(snap));
	err = fg_objstore_snapshot(c->store, &snap);
	if (err)
		return err;
	before = c->plan->tls;
	c->plan->tls = NULL;
	err = fg_tls_plan_compute(snap.fleet, c->plan, c->tls_cache, time(NULL), &changed);
	if (err) {
		c->plan->tls = before;
		return err;
	}
	log_tls(c->plan->tls, before);
	fg_tls_plan_free(before);
	if (changed)
		plan_changed(c);
	tls_publish(c);
	return 0;
}

struct fg_tls_store *fg_control_tls_store(struct fg_control *c)
{
	struct fg_tls_store *s;

	if (!c->tls_store) {
		c->tls_wanted = true;
		tls_publish(c);
	}
	pthread_mutex_lock(&c->tls_lock);
	s = fg_tls_store_get(c->tls_store);
	pthread_mutex_unlock(&c->tls_lock);
	return s;
}

json_t *fg_control_fleet_object(struct fg_control *c, const char *kind, const char *ns,
				const char *name)
{
	return c->store ? fg_objstore_fleet_find(c->store, kind, ns, name) : NULL;
}

unsigned long fg_control_tls_gen(const struct fg_control *c)
{
	return __atomic_load_n(&c->tls_gen, __ATOMIC_ACQUIRE);
}

/* Everything from the objects: a new plan, applied whole (the applier still
 * writes only what differs). */
/* Heap in use, MiB: what each step of a full computation keeps (-v). */
static size_t heap_mib(void)
{
	struct mallinfo2 mi;

	if (fg_log_get_level() < FG_LOG_DEBUG)
		return 0;
	mi = mallinfo2();
	return (mi.uordblks + mi.hblkhd) >> 20;
}

static __u64 cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (__u64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int recompute_full(struct fg_control *c)
{
	struct fg_plan_opts popts;
	struct fg_snapshot snap;
	struct fg_plan *plan;
	__u64 t0 = now_us(), cpu0 = cpu_us(), cpu_fit = 0, cpu_apply = 0;
	size_t heap0 = heap_mib(), heap_plan = 0;
	int err;

	plan_opts(c, &popts);
	err = snapshot(c, &snap);
	if (err)
		return err;
	popts.syncing = c->syncing;
	err = fg_plan_compute(&snap, &popts, &plan);
	if (err) {
		pr_warn("cannot compute routes: %s\n", strerror(-err));
		return err;
	}
	/* What the maps have no room for is rejected, whole objects, the
	 * newest first; the rest is programmed. */
	json_object_clear(c->no_room);
	cpu_fit = cpu_us();
	if (fg_applier_fit(c->applier, plan, c->no_room) > 0) {
		const char *k;
		json_t *why;

		json_object_foreach(c->no_room, k, why)
			pr_warn("%s: %s\n", k, json_string_value(why));
		fg_plan_free(plan);
		popts.no_room = c->no_room;
		err = fg_plan_compute(&snap, &popts, &plan);
		if (err) {
			pr_warn("cannot compute routes: %s\n", strerror(-err));
			return err;
		}
	}
	c->cst.last_compute_us = now_us() - t0;
	cpu_apply = cpu_us();
	heap_plan = heap_mib();
	err = fg_applier_apply(c->applier, plan);
	if (err) {
		/* The maps keep the previous plan's state where this one could
		 * not be written; the previous plan stays the one routing,
		 * and its status says the data plane is behind. */
		pr_warn("cannot write routes to the data plane: %s\n", strerror(-err));
		snprintf(c->behind, sizeof(c->behind), "the last change could not be written: %s",
			 strerror(-err));
		mark_behind(c);
		fg_plan_free(plan);
		return err;
	}
	c->behind[0] = '\0';
	{
		struct fg_plan *old = c->plan;

		c->plan = plan;
		c->plan_serial++;
		plan_changed(c);
		/* Rejections seen while sources are still listing are not
		 * final: said once they are. */
		if (!c->syncing[0]) {
			log_rejections(c, old);
			log_tls(plan->tls, old ? old->tls : NULL);
		} else {
			pr_info("routes: waiting for the first list of %s\n", c->syncing);
		}
		fg_plan_free(old);
	}
	tls_publish(c);
	note_first_seen(c);
	c->cst.full++;
	c->cst.last_us = now_us() - t0;
	pr_debug("routes: %zu routes, %zu L4 ports, %zu targets, %zu clusters (%llu us; CPU: "
		 "compute %llu ms, fit %llu ms, apply %llu ms; heap MiB: %zu before, %zu with the "
		 "new plan, %zu applied, old plan freed)\n",
		 plan->n_routes, plan->n_l4, plan->n_targets, plan->n_clusters,
		 (unsigned long long)c->cst.last_us, (unsigned long long)(cpu_fit - cpu0) / 1000,
		 (unsigned long long)(cpu_apply - cpu_fit) / 1000,
		 (unsigned long long)(cpu_us() - cpu_apply) / 1000, heap0, heap_plan, heap_mib());
	return 0;
}

int fg_control_update_state(struct fg_control *c, bool dataplane_ready, bool listening)
{
	struct fg_plan_opts popts;

	fg_control_set_state(c, dataplane_ready, listening);
	/* Changes not taken yet, or no plan: everything, as before. */
	if (!c->plan || c->ch.any)
		return fg_control_recompute(c);
	plan_opts(c, &popts);
	popts.syncing = c->syncing;
	fg_plan_update_phases(c->plan, &popts);
	if (c->behind[0])
		mark_behind(c);
	plan_changed(c);
	return 0;
}

int fg_control_recompute(struct fg_control *c)
{
	int err = recompute_full(c);

	if (!err)
		fg_changes_reset(&c->ch);
	return err;
}

/* Only what the changes touch: Ingresses whose routes take the change on
 * their own, targets whose endpoints changed. Anything else, or anything
 * these cannot take, is a full computation. */
static int recompute_changes(struct fg_control *c)
{
	struct fg_plan_opts popts;
	struct fg_target **ts = NULL;
	struct fg_snapshot snap;
	const char *k;
	json_t *pair;
	size_t n = 0;
	__u64 t0 = now_us();
	int err;

	if (!c->plan || c->ch.full) {
		pr_debug("routes: full computation: %s\n",
			 c->plan ? "a change that touches every route" : "no plan yet");
		return recompute_full(c);
	}
	json_object_foreach(c->ch.ingresses, k, pair) {
		json_t *old = json_array_get(pair, 0), *new = json_array_get(pair, 1);

		if (!fg_ingress_route_local_change(old, new)) {
			pr_debug("routes: full computation: Ingress %s changed beyond what its "
				 "routes hold\n", k);
			return recompute_full(c);
		}
		err = fg_plan_patch_ingress(c->plan, new);
		if (err < 0) {
			pr_debug("routes: full computation: Ingress %s cannot be patched: %s\n", k,
				 strerror(-err));
			return recompute_full(c);
		}
		plan_changed(c);
	}
	if (c->ch.tls) {
		err = recompute_tls(c);
		if (err) {
			pr_warn("cannot recompute TLS: %s\n", strerror(-err));
			return recompute_full(c);
		}
	}
	if (json_object_size(c->ch.services) || json_object_size(c->ch.pod_ns)) {
		plan_opts(c, &popts);
		err = snapshot(c, &snap);
		if (err)
			return err;
		err = fg_plan_refresh(c->plan, &snap, &popts, c->ch.services, c->ch.pod_ns, &ts,
				      &n);
		if (err == -EAGAIN)
			return recompute_full(c);
		if (err) {
			pr_warn("cannot recompute the changed targets: %s\n", strerror(-err));
			return recompute_full(c);
		}
		err = fg_applier_apply_targets(c->applier, ts, n);
		free(ts);
		/* No room, or a write that failed: the whole computation sorts
		 * out what fits and says what does not. */
		if (err)
			return recompute_full(c);
	}
	c->cst.incremental++;
	c->cst.last_us = now_us() - t0;
	pr_debug("routes: %zu target(s) recomputed, %zu Ingress(es) patched (%llu us)\n", n,
		 json_object_size(c->ch.ingresses), (unsigned long long)c->cst.last_us);
	return 0;
}

int fg_control_process(struct fg_control *c)
{
	struct epoll_event evs[4];
	bool from_dir = false, from_kube = false;
	__u64 ticks;
	int err;

	/* Drain the wakeups; the sources are read below whatever woke us. */
	epoll_wait(c->epfd, evs, 4, 0);
	if (read(c->tls_timer, &ticks, sizeof(ticks)) == sizeof(ticks))
		c->ch.tls = c->ch.any = true;
	if (c->cd) {
		err = fg_configdir_process(c->cd, &from_dir);
		if (err)
			return err;
	}
	if (c->kube) {
		err = fg_kube_process(c->kube, &from_kube);
		if (err)
			return err;
		if (from_kube) {
			err = kube_diff(c);
			if (err)
				c->ch.full = c->ch.any = true;
		}
	}
	if (!c->ch.any)
		return 0;
	err = recompute_changes(c);
	fg_changes_reset(&c->ch);
	return err;
}

const struct fg_control_stats *fg_control_stats(const struct fg_control *c)
{
	return &c->cst;
}

/* ---------- admin answers ---------- */

/* kubectl's short durations: 45s, 3m15s, 25m, 5h10m, 2d4h, 9d. */
static void human_age(long secs, char *buf, size_t len)
{
	long m = secs / 60, h = secs / 3600, d = secs / 86400;

	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(buf, len, "%lds", secs);
	else if (m < 10)
		snprintf(buf, len, secs % 60 ? "%ldm%lds" : "%ldm", m, secs % 60);
	else if (h < 3)
		snprintf(buf, len, "%ldm", m);
	else if (h < 8)
		snprintf(buf, len, m % 60 ? "%ldh%ldm" : "%ldh", h, m % 60);
	else if (h < 48)
		snprintf(buf, len, "%ldh", h);
	else if (d < 8)
		snprintf(buf, len, h % 24 ? "%ldd%ldh" : "%ldd", d, h % 24);
	else
		snprintf(buf, len, "%ldd", d);
}

static time_t created_at(struct fg_control *c, const struct fg_gateway_status *gw)
{
	struct tm tm = {};
	json_t *v;

	if (gw->created[0] && strptime(gw->created, "%Y-%m-%dT%H:%M:%S", &tm))
		return timegm(&tm);
	v = json_object_get(c->first_seen, gw->name);
	return json_is_integer(v) ? (time_t)json_integer_value(v) : time(NULL);
}

static json_t *answer_gateways(struct fg_control *c, const char *name)
{
	json_t *items = json_array();
	size_t i;

	for (i = 0; c->plan && i < c->plan->n_gateways; i++) {
		const struct fg_gateway_status *gw = &c->plan->gateways[i];
		char age[32];

		if (name && strcmp(name, gw->name))
			continue;
		human_age((long)(time(NULL) - created_at(c, gw)), age, sizeof(age));
		json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:O}", "name", gw->name,
						       "status", gw->phase, "age", age,
						       "object", gw->object));
	}
	if (name && !json_array_size(items)) {
		json_decref(items);
		return json_pack("{s:b, s:s}", "ok", 0, "error", "mseingressconfig not found");
	}
	return json_pack("{s:b, s:o}", "ok", 1, "items", items);
}

/* Ready endpoints of one slice (packed or whole) or Endpoints object. */
static int ready_in(json_t *o)
{
	struct fg_compact_ep cep;
	const char *pos = NULL;
	json_t *ep, *sub;
	size_t k;
	int n = 0;

	if (fg_compact_is(o)) {
		while (fg_compact_next(o, &pos, &cep))
			n++;
		return n;
	}
	json_array_foreach(json_object_get(o, "endpoints"), k, ep) {
		json_t *r = json_object_get(json_object_get(ep, "conditions"), "ready");

		if (!json_is_false(r))
			n += (int)json_array_size(json_object_get(ep, "addresses"));
	}
	json_array_foreach(json_object_get(o, "subsets"), k, sub)
		n += (int)json_array_size(json_object_get(sub, "addresses"));
	return n;
}

/* Ready endpoints of every Service of a cluster: EndpointSlices when the
 * Service has some, Endpoints otherwise. Through the store's index, one
 * lookup per Service: a scan of the cluster's objects per Service took
 * minutes at 10,000 Services and held the control thread meanwhile. */
static void count_cluster(const struct fg_cindex *ci, int *services, int *ready)
{
	static const char svc_prefix[] = "Service\x1f";
	char key[FG_ID_LEN * 10 + 64];
	const char *k;
	json_t *v, *list;
	size_t i;

	*services = 0;
	*ready = 0;
	if (!ci)
		return;
	json_object_foreach(ci->by_key, k, v) {
		json_t *svc = fg_index_first(v);
		const char *name = fg_obj_name(svc), *ns = fg_obj_ns(svc);

		if (strncmp(k, svc_prefix, sizeof(svc_prefix) - 1) || !name)
			continue;
		(*services)++;
		snprintf(key, sizeof(key), "%s\x1f%s", ns, name);
		list = json_object_get(ci->slices, key);
		for (i = 0; i < fg_index_count(list); i++)
			*ready += ready_in(fg_index_at(list, i));
		if (fg_index_count(list))
			continue;
		snprintf(key, sizeof(key), "Endpoints\x1f%s\x1f%s", ns, name);
		list = fg_index_first(json_object_get(ci->by_key, key));
		if (list)
			*ready += ready_in(list);
	}
}

/* Endpoints of a cluster in the backends map (one backend per endpoint),
 * and how many of them are up. */
static void count_backends(struct fg_control *c, int cidx, int *active, int *up)
{
	__u32 id, high = fg_dp_backend_high(c->dp);
	struct fg_backend be;

	*active = 0;
	*up = 0;
	for (id = 1; id < high && cidx >= 0; id++) {
		if (fg_dp_backend_view(c->dp, id, &be) || !(be.flags & FG_BACKEND_F_ACTIVE) ||
		    be.cluster_idx != (__u32)cidx)
			continue;
		(*active)++;
		if (be.flags & FG_BACKEND_F_UP)
			(*up)++;
	}
}

/* Keeps the items whose `key` equals name; an error when none does. */
static json_t *filter_named(json_t *answer, const char *key, const char *name, const char *kind)
{
	json_t *items = json_object_get(answer, "items"), *kept, *it;
	size_t i;

	if (!name || !items)
		return answer;
	kept = json_array();
	json_array_foreach(items, i, it) {
		const char *v = json_string_value(json_object_get(it, key));

		if (v && !strcmp(v, name))
			json_array_append(kept, it);
	}
	json_decref(answer);
	if (!json_array_size(kept)) {
		char msg[160];

		json_decref(kept);
		snprintf(msg, sizeof(msg), "%s %s not found", kind, name);
		return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
	}
	return json_pack("{s:b, s:o}", "ok", 1, "items", kept);
}

static json_t *answer_clusters(struct fg_control *c)
{
	json_t *items = json_array(), *listed = json_object();
	size_t i, j;

	for (i = 0; c->plan && i < c->plan->n_gateways; i++) {
		json_t *remote = json_object_get(json_object_get(c->plan->gateways[i].object,
								 "status"), "remoteClusters");
		json_t *entry;

		json_array_foreach(remote, j, entry) {
			const char *id = json_string_value(json_object_get(entry, "clusterId"));
			const char *failed = json_string_value(json_object_get(entry, "reason"));
			int services = 0, ready = 0, active = 0, up = 0;

			if (!id || json_object_get(listed, id))
				continue;
			json_object_set_new(listed, id, json_true());
			count_cluster(fg_objstore_cluster(c->store, id), &services, &ready);
			count_backends(c, fg_applier_cluster_idx(c->applier, id), &active, &up);
			json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i}",
				"id", id, "state", failed ? "Failed" : "Ready",
				"reason", failed ? failed : "", "services", services,
				"readyEndpoints", ready, "routedEndpoints", active,
				"healthyEndpoints", up));
		}
	}
	json_decref(listed);
	return json_pack("{s:b, s:o}", "ok", 1, "items", items);
}

/* Adds each cluster's live share (from the cluster ring in the maps) to a
 * target's JSON. */
static void add_effective(struct fg_control *c, const struct fg_target *t, json_t *tj)
{
	__u32 slots[FG_MAX_CLUSTERS], total = 0;
	int sid = fg_applier_service_id(c->applier, t);
	json_t *cl;
	size_t i;

	if (sid < 0 || fg_dp_cluster_shares(c->dp, sid, slots, &total))
		total = 0;
	json_object_set_new(tj, "serviceId", json_integer(sid));
	json_array_foreach(json_object_get(tj, "clusters"), i, cl) {
		const char *id = json_string_value(json_object_get(cl, "cluster"));
		int idx = id ? fg_applier_cluster_idx(c->applier, id) : -1;
		double eff = (idx >= 0 && total) ? 100.0 * slots[idx] / total : 0.0;

		json_object_set_new(cl, "effective", json_real(eff));
	}
}

static json_t *answer_routes(struct fg_control *c)
{
	json_t *items = c->plan ? fg_plan_routes_json(c->plan) : json_array();
	json_t *rj, *cj;
	size_t i, j;

	json_array_foreach(items, i, rj) {
		const struct fg_route *r = &c->plan->routes[i];

		add_effective(c, r->target, json_object_get(rj, "target"));
		json_array_foreach(json_object_get(rj, "canaries"), j, cj)
			add_effective(c, r->canaries[j].target, json_object_get(cj, "target"));
	}
	return json_pack("{s:b, s:o}", "ok", 1, "items", items);
}

/* Ingresses with spec.tls get "tls": hosts, how many are served with a
 * certificate, and what is wrong with the others. */
static json_t *answer_ingresses(struct fg_control *c)
{
	json_t *items = c->plan ? fg_plan_ingresses_json(c->plan, c->listening ? c->address : "")
				: json_array();
	json_t *it;
	size_t i;

	json_array_foreach(items, i, it) {
		char key[FG_ID_LEN * 5 + 2], reason[FG_REASON_LEN];
		size_t hosts, ready;

		snprintf(key, sizeof(key), "%s/%s",
			 json_string_value(json_object_get(it, "namespace")),
			 json_string_value(json_object_get(it, "name")));
		if (fg_tls_plan_ingress(c->plan->tls, key, reason, sizeof(reason), &hosts, &ready))
			json_object_set_new(it, "tls", json_pack("{s:I, s:I, s:s}", "hosts",
				(json_int_t)hosts, "ready", (json_int_t)ready, "reason", reason));
	}
	return json_pack("{s:b, s:o}", "ok", 1, "items", items);
}

static json_t *answer_certificates(struct fg_control *c)
{
	json_t *items = fg_tls_plan_json(c->plan ? c->plan->tls : NULL, c->tls_default);

	return json_pack("{s:b, s:o, s:I}", "ok", 1, "items", items, "generation",
			 (json_int_t)fg_control_tls_gen(c));
}

static void add_error(const char *path, const struct fg_manifest_error *err, void *ctx)
{
	json_array_append_new(ctx, json_pack("{s:s, s:i, s:s}", "file", path, "line", err->line,
					     "reason", err->reason));
}

static json_t *answer_status(struct fg_control *c)
{
	json_t *errors = json_array();

	if (c->cd)
		fg_configdir_foreach_error(c->cd, add_error, errors);
	return json_pack("{s:b, s:s, s:b, s:b, s:o, s:O, s:i, s:i, s:i, s:{s:I, s:I, s:I, s:I},"
			 " s:I}", "ok", 1, "address",
			 c->address, "dataplaneReady", c->dataplane_ready, "listening",
			 c->listening, "configErrors", errors, "kubeErrors", c->kube_errors, "routes",
			 c->plan ? (int)c->plan->n_routes : 0, "l4Ports",
			 c->plan ? (int)c->plan->n_l4 : 0, "clusters",
			 c->plan ? (int)c->plan->n_clusters : 0, "computations",
			 "full", (json_int_t)c->cst.full, "incremental", (json_int_t)c->cst.incremental,
			 "lastMicroseconds", (json_int_t)c->cst.last_us,
			 "lastComputeMicroseconds", (json_int_t)c->cst.last_compute_us,
			 "objects", (json_int_t)fg_objstore_count(c->store));
}

json_t *fg_control_admin(json_t *request, void *ctx)
{
	struct fg_control *c = ctx;
	const char *get = json_string_value(json_object_get(request, "get"));
	const char *name = json_string_value(json_object_get(request, "name"));

	if (!get)
		return json_pack("{s:b, s:s}", "ok", 0, "error", "missing \"get\"");
	if (!strcmp(get, "mseingressconfig"))
		return answer_gateways(c, name);
	if (!strcmp(get, "ingress"))
		return filter_named(answer_ingresses(c), "name", name, "ingress");
	if (!strcmp(get, "clusters"))
		return filter_named(answer_clusters(c), "id", name, "cluster");
	if (!strcmp(get, "routes"))
		return filter_named(answer_routes(c), "host", name, "routes for host");
	if (!strcmp(get, "status"))
		return answer_status(c);
	if (!strcmp(get, "certificates"))
		return filter_named(answer_certificates(c), "host", name, "certificate for host");
	return json_pack("{s:b, s:s}", "ok", 0, "error", "unknown kind");
}
