// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Request routing: the routes a worker sees (an immutable copy of the
 * plan's, indexed by host), which canary, which cluster and endpoint (from
 * the data plane's maps, cached per routing epoch), and passive health
 * (handed to the control thread, which alone writes the maps).
 */
#include "proxy_int.h"
#include "fleetgate_hash.h"

/* ---------- the routes (immutable copies) ---------- */

static __u64 str_hash(const char *s)
{
	size_t n = strlen(s);

	return (__u64)fg_bytes_hash(s, n, 0x6f757465u) << 32 | fg_bytes_hash(s, n, 0x726f7574u);
}

static void targets_put(struct px_targets *tg)
{
	if (!tg || __atomic_sub_fetch(&tg->refs, 1, __ATOMIC_ACQ_REL))
		return;
	free(tg->t);
	fg_hmap_fini(&tg->at);
	free(tg);
}

/* The targets of the plan in force: those of prev when it was copied from
 * the same plan (a weight edit then copies no target: at 11,000 targets
 * the copy and its index took half of the 45 ms a snapshot cost). */
static struct px_targets *targets_get(struct fg_control *control, const struct fg_plan *plan,
				      const struct px_routes *prev)
{
	unsigned long serial = fg_control_plan_serial(control);
	struct px_targets *tg;
	size_t i;

	if (prev && prev->tg && prev->tg->serial == serial) {
		__atomic_add_fetch(&prev->tg->refs, 1, __ATOMIC_ACQ_REL);
		return prev->tg;
	}
	tg = calloc(1, sizeof(*tg));
	if (!tg)
		return NULL;
	tg->refs = 1;
	tg->serial = serial;
	fg_hmap_init(&tg->at, sizeof(__u64));
	tg->t = malloc((plan->n_targets ? plan->n_targets : 1) * sizeof(*tg->t));
	if (!tg->t)
		goto err;
	for (i = 0; i < plan->n_targets; i++) {
		const struct fg_target *t = plan->targets[i];
		struct fg_target *c = &tg->t[i];
		__u64 key = (__u64)(uintptr_t)t;

		/* Who it is, not where its endpoints are: those come from
		 * the maps. */
		memcpy(c, t, sizeof(*c));
		c->clusters = NULL;
		c->n_clusters = 0;
		c->req = NULL;
		c->key = NULL; /* the plan's: not read here */
		c->service_id = fg_control_service_id(control, t);
		if (fg_hmap_put(&tg->at, &key, i))
			goto err;
	}
	tg->n = plan->n_targets;
	return tg;
err:
	targets_put(tg);
	return NULL;
}

void px_routes_put(struct px_routes *rt)
{
	size_t i, j;

	if (!rt || __atomic_sub_fetch(&rt->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (i = 0; i < rt->n_routes; i++) {
		struct fg_route *r = &rt->routes[i];

		for (j = 0; j < r->n_canaries; j++)
			if (r->canaries[j].has_pattern)
				fg_regex_free(r->canaries[j].pattern);
		free(r->canaries);
		fg_route_opts_put(r->opts);
		free(r->path);
	}
	fg_tls_store_put(rt->tls);
	for (i = 0; rt->up_ctx && i < rt->n_routes; i++) {
		/* Routes of one Ingress share a context: one reference each. */
		SSL_CTX_free(rt->up_ctx[i]);
		free(rt->up_err[i]);
	}
	free(rt->up_ctx);
	free(rt->up_err);
	free(rt->routes);
	targets_put(rt->tg);
	free(rt->idx);
	free(rt->any);
	fg_hmap_fini(&rt->exact);
	fg_hmap_fini(&rt->wild);
	free(rt);
}

static long target_index(const struct px_targets *tg, const struct fg_target *t)
{
	__u64 key = (__u64)(uintptr_t)t, *v = fg_hmap_get(&tg->at, &key);

	return v ? (long)*v : -1;
}

/* Groups the route indexes of one kind by the hash of their host. */
static int index_hosts(struct px_routes *rt, struct fg_hmap *m, bool wildcard, size_t *pos)
{
	size_t i, n = 0;

	/* counts, then slots: (first << 32 | count) */
	for (i = 0; i < rt->n_routes; i++) {
		const struct fg_route *r = &rt->routes[i];
		__u64 h, *v;

		if (r->is_default || !r->host[0] || r->wildcard != wildcard)
			continue;
		h = str_hash(r->host);
		v = fg_hmap_get(m, &h);
		if (fg_hmap_put(m, &h, v ? *v + 1 : 1))
			return -ENOMEM;
		n++;
	}
	for (i = fg_hmap_next(m, 0); i < m->cap; i = fg_hmap_next(m, i + 1)) {
		__u64 *v = fg_hmap_val(m, i), count = *v;

		*v = (__u64)*pos << 32;
		*pos += count;
	}
	for (i = 0; i < rt->n_routes; i++) {
		const struct fg_route *r = &rt->routes[i];
		__u64 h, *v;

		if (r->is_default || !r->host[0] || r->wildcard != wildcard)
			continue;
		h = str_hash(r->host);
		v = fg_hmap_get(m, &h);
		rt->idx[(*v >> 32) + (*v & 0xffffffffu)] = (__u32)i;
		(*v)++;
	}
	(void)n;
	return 0;
}

/* A copy of the plan's routes for the workers; run by the thread that owns
 * the plan (the control plane's). */
static int upstream_ctxs(struct px_routes *rt, struct fg_control *control);

static struct px_routes *routes_build(struct fg_control *control, unsigned long gen,
				      const struct px_routes *prev)
{
	const struct fg_plan *plan = fg_control_plan(control);
	struct px_routes *rt = calloc(1, sizeof(*rt));
	size_t i, j, pos = 0;

	if (!rt)
		return NULL;
	rt->refs = 1;
	rt->gen = gen;
	fg_hmap_init(&rt->exact, sizeof(__u64));
	fg_hmap_init(&rt->wild, sizeof(__u64));
	if (!plan)
		return rt;
	rt->tg = targets_get(control, plan, prev);
	rt->routes = calloc(plan->n_routes ? plan->n_routes : 1, sizeof(*rt->routes));
	rt->idx = calloc(plan->n_routes ? plan->n_routes : 1, sizeof(*rt->idx));
	rt->any = calloc(plan->n_routes ? plan->n_routes : 1, sizeof(*rt->any));
	if (!rt->tg || !rt->routes || !rt->idx || !rt->any)
		goto err;
	rt->targets = rt->tg->t;
	rt->n_targets = rt->tg->n;
	for (i = 0; i < plan->n_routes; i++) {
		const struct fg_route *r = &plan->routes[i];
		struct fg_route *c = &rt->routes[i];
		long ti = target_index(rt->tg, r->target);

		*c = *r;
		/* The plan's path goes with the plan: a copy of its own. */
		c->path = strdup(r->path);
		if (!c->path)
			goto err;
		c->opts = fg_route_opts_get(r->opts); /* shared, immutable */
		c->canaries = NULL;
		c->n_canaries = 0;
		c->target = ti >= 0 ? &rt->targets[ti] : NULL;
		rt->n_routes = i + 1;
		if (!r->n_canaries)
			continue;
		c->canaries = calloc(r->n_canaries, sizeof(*c->canaries));
		if (!c->canaries)
			goto err;
		for (j = 0; j < r->n_canaries; j++) {
			struct fg_canary *cn = &c->canaries[j];

			*cn = r->canaries[j];
			cn->has_pattern = false;
			ti = target_index(rt->tg, r->canaries[j].target);
			cn->target = ti >= 0 ? &rt->targets[ti] : c->target;
			if (r->canaries[j].has_pattern) {
				if (fg_regex_dup(&cn->pattern, r->canaries[j].pattern))
					goto err;
				cn->has_pattern = true;
			}
			c->n_canaries = j + 1;
		}
	}
	if (index_hosts(rt, &rt->exact, false, &pos) || index_hosts(rt, &rt->wild, true, &pos) ||
	    upstream_ctxs(rt, control))
		goto err;
	/* Any host, then the default backends: the plan's order. */
	for (i = 0; i < rt->n_routes; i++)
		if (!rt->routes[i].is_default && !rt->routes[i].host[0])
			rt->any[rt->n_any++] = (__u32)i;
	for (i = 0; i < rt->n_routes; i++)
		if (rt->routes[i].is_default)
			rt->any[rt->n_any + rt->n_dflt++] = (__u32)i;
	return rt;
err:
	px_routes_put(rt);
	return NULL;
}

/* The client context of an Ingress with backend-protocol HTTPS: verify
 * or not, against proxy-ssl-secret's ca.crt (else the system's CAs),
 * presenting its certificate when it has one. NULL with why. */
static SSL_CTX *upstream_ctx(struct fg_control *control, const struct fg_route_opts *o,
			     char *why, size_t len)
{
	struct fg_tls_cert *client = NULL;
	char *ca = NULL, ns[FG_ID_LEN * 5 + 2], *name;
	size_t ca_len = 0;
	SSL_CTX *ctx = NULL;
	json_t *secret = NULL;

	if (o->proxy_ssl_secret) {
		snprintf(ns, sizeof(ns), "%s", o->proxy_ssl_secret);
		name = strchr(ns, '/');
		*name++ = '\0';
		secret = fg_control_fleet_object(control, "Secret", ns, name);
		if (!secret) {
			snprintf(why, len, "proxy-ssl-secret %s: no such Secret", o->proxy_ssl_secret);
			return NULL;
		}
		if (fg_tls_secret_ca(secret, &ca, &ca_len, why, len) && o->proxy_ssl_verify) {
			/* verify against nothing would fail every handshake */
			return NULL;
		}
		/* A client certificate only when the Secret holds one. */
		if (fg_tls_cert_from_secret(secret, &client, why, len))
			client = NULL;
	}
	if (fg_tls_client_ctx(o->proxy_ssl_verify, ca, ca_len, client, &ctx, why, len))
		ctx = NULL;
	free(ca);
	fg_tls_cert_put(client);
	return ctx;
}

/* Client contexts for the routes whose Ingress asks for HTTPS. */
static int upstream_ctxs(struct px_routes *rt, struct fg_control *control)
{
	size_t i, j;

	rt->up_ctx = calloc(rt->n_routes ? rt->n_routes : 1, sizeof(*rt->up_ctx));
	rt->up_err = calloc(rt->n_routes ? rt->n_routes : 1, sizeof(*rt->up_err));
	if (!rt->up_ctx || !rt->up_err)
		return -ENOMEM;
	for (i = 0; i < rt->n_routes; i++) {
		const struct fg_route_opts *o = rt->routes[i].opts;
		char why[FG_TLS_WHY_LEN] = "";

		if (!o || !o->backend_https)
			continue;
		for (j = 0; j < i; j++)
			if (rt->routes[j].opts == o)
				break;
		if (j < i) {
			if (rt->up_ctx[j] && SSL_CTX_up_ref(rt->up_ctx[j]))
				rt->up_ctx[i] = rt->up_ctx[j];
			else if (rt->up_err[j])
				rt->up_err[i] = strdup(rt->up_err[j]);
			continue;
		}
		rt->up_ctx[i] = upstream_ctx(control, o, why, sizeof(why));
		if (!rt->up_ctx[i]) {
			pr_warn("proxy: Ingress %s: no TLS to its endpoints: %s\n", rt->routes[i].ingress,
				why);
			rt->up_err[i] = strdup(why);
		}
	}
	return 0;
}

/* Publishes a new copy (control thread). */
/* The plan or (with TLS listeners) the certificates changed since the
 * last publication. */
bool px_routes_stale(const struct fg_proxy *srv)
{
	if (!srv->control)
		return false;
	if (!srv->routes || fg_control_plan_gen(srv->control) != srv->pub_plan_gen)
		return true;
	return srv->n_ls > 1 && fg_control_tls_gen(srv->control) != srv->pub_tls_gen;
}

int px_routes_publish(struct fg_proxy *srv)
{
	unsigned long plan_gen = fg_control_plan_gen(srv->control);
	unsigned long tls_gen = fg_control_tls_gen(srv->control);
	unsigned long gen = srv->routes_gen + 1;
	struct timespec t0, t1;
	struct px_routes *rt, *old;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	/* Only this thread replaces srv->routes: reading it unlocked is safe. */
	rt = routes_build(srv->control, gen, srv->routes);
	if (!rt)
		return -ENOMEM;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
	pr_debug("proxy: routes %lu: %zu routes, %zu targets copied in %.1f ms CPU\n", gen,
		 rt->n_routes, rt->n_targets,
		 (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	/* The store is made on demand (the generated certificate only when
	 * a TLS listener needs it). */
	if (srv->n_ls > 1) {
		rt->tls = fg_control_tls_store(srv->control);
		if (!rt->tls)
			pr_warn("proxy: no certificate store: TLS clients will be refused\n");
	}
	pthread_mutex_lock(&srv->lock);
	old = srv->routes;
	srv->routes = rt;
	srv->pub_plan_gen = plan_gen;
	srv->pub_tls_gen = tls_gen;
	__atomic_store_n(&srv->routes_gen, gen, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&srv->lock);
	px_routes_put(old);
	return 0;
}

/* The newest routes for this worker: a reference it keeps until a newer
 * copy is out. Without threads the worker builds the copy itself when the
 * plan changed (it runs on the control plane's thread then). */
struct px_routes *px_routes_current(struct px_worker *p)
{
	struct fg_proxy *srv = p->srv;

	if (!srv->threaded && px_routes_stale(srv))
		px_routes_publish(srv);
	if (!p->routes || p->routes->gen != __atomic_load_n(&srv->routes_gen, __ATOMIC_ACQUIRE)) {
		struct px_routes *rt;

		pthread_mutex_lock(&srv->lock);
		rt = srv->routes;
		if (rt)
			__atomic_add_fetch(&rt->refs, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&srv->lock);
		px_routes_put(p->routes);
		p->routes = rt;
	}
	return p->routes;
}

static const struct fg_route *match_in(const struct px_routes *rt, const __u32 *idx, size_t n,
				       const char *host, const char *path, bool exact)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct fg_route *r = &rt->routes[idx[i]];

		if (exact ? strcmp(r->host, host) != 0 : !fg_host_matches(r->host, r->wildcard, host))
			continue;
		if (fg_route_path_matches(r, path))
			return r;
	}
	return NULL;
}

/* The plan's first matching route: exact host, then wildcard, then any
 * host, then default backends (routes.c route_order). */
const struct fg_route *px_find_route(const struct px_routes *rt, const char *host,
				     const char *path)
{
	const struct fg_route *r = NULL;
	const char *dot;
	__u64 h, *v;

	if (!rt)
		return NULL;
	if (*host) {
		h = str_hash(host);
		v = fg_hmap_get(&rt->exact, &h);
		if (v)
			r = match_in(rt, rt->idx + (*v >> 32), *v & 0xffffffffu, host, path, true);
		dot = strchr(host, '.');
		if (!r && dot && dot[1]) {
			h = str_hash(dot + 1);
			v = fg_hmap_get(&rt->wild, &h);
			if (v)
				r = match_in(rt, rt->idx + (*v >> 32), *v & 0xffffffffu, host, path,
					     false);
		}
	}
	if (!r)
		r = match_in(rt, rt->any, rt->n_any + rt->n_dflt, host, path, false);
	return r;
}

/* ---------- endpoints, from the maps ---------- */

static void cache_clear(struct cache *k)
{
	size_t i, c;

	for (i = fg_hmap_next(&k->svcs, 0); i < k->svcs.cap; i = fg_hmap_next(&k->svcs, i + 1)) {
		struct svc_cache *sc = (struct svc_cache *)(uintptr_t)*fg_hmap_val(&k->svcs, i);

		free(sc->ring);
		for (c = 0; c < FG_MAX_CLUSTERS; c++)
			free(sc->members[c]);
		if (sc->aff)
			fg_hmap_fini(sc->aff);
		free(sc->aff);
		free(sc);
	}
	fg_hmap_clear(&k->svcs);
	for (i = fg_hmap_next(&k->backends, 0); i < k->backends.cap;
	     i = fg_hmap_next(&k->backends, i + 1))
		free((void *)(uintptr_t)*fg_hmap_val(&k->backends, i));
	fg_hmap_clear(&k->backends);
	memset(k->cluster_read, 0, sizeof(k->cluster_read));
}

void px_cache_fini(struct cache *k)
{
	cache_clear(k);
	fg_hmap_fini(&k->svcs);
	fg_hmap_fini(&k->backends);
	free(k->cands);
	fg_dp_slab_reader_close(&k->slab);
}

/* Everything read before the routing state last changed is dropped. */
static void cache_check(struct px_worker *p)
{
	__u64 epoch = fg_dp_epoch(p->dp);

	if (p->cache.epoch == epoch)
		return;
	cache_clear(&p->cache);
	p->cache.epoch = epoch;
}

static struct svc_cache *svc_get(struct px_worker *p, __u32 sid)
{
	__u64 key = sid, *v;
	struct svc_cache *sc;

	v = fg_hmap_get(&p->cache.svcs, &key);
	if (v)
		return (struct svc_cache *)(uintptr_t)*v;
	sc = calloc(1, sizeof(*sc));
	if (!sc || fg_hmap_put(&p->cache.svcs, &key, (uintptr_t)sc)) {
		free(sc);
		return NULL;
	}
	if (fg_dp_ring_read_shared(p->dp, &p->cache.slab, sid, FG_RING_CLUSTERS, &sc->ring,
				   &sc->size))
		sc->ring = NULL;
	return sc;
}

/* A backend as the maps hold it (cached); NULL when it is not active. */
const struct fg_backend *px_backend(struct px_worker *p, __u32 bid)
{
	__u64 key = bid, *v;
	struct fg_backend *be;

	v = fg_hmap_get(&p->cache.backends, &key);
	if (v)
		return (const struct fg_backend *)(uintptr_t)*v;
	be = malloc(sizeof(*be));
	if (!be)
		return NULL;
	if (bpf_map_lookup_elem(fg_dp_maps(p->dp)->backends, &bid, be) ||
	    !(be->flags & FG_BACKEND_F_ACTIVE)) {
		free(be);
		return NULL;
	}
	if (fg_hmap_put(&p->cache.backends, &key, (uintptr_t)be)) {
		free(be);
		return NULL;
	}
	return be;
}

/* A cluster's name (its id in the fleet), "" when unknown. */
const char *px_cluster_name(struct px_worker *p, __u32 cidx)
{
	struct fg_cluster cl;

	if (cidx >= FG_MAX_CLUSTERS)
		return "";
	if (!p->cache.cluster_read[cidx]) {
		p->cache.clusters[cidx][0] = '\0';
		if (!bpf_map_lookup_elem(fg_dp_maps(p->dp)->clusters, &cidx, &cl) &&
		    (cl.flags & FG_CLUSTER_F_ACTIVE))
			snprintf(p->cache.clusters[cidx], FG_NAME_LEN, "%.*s", FG_NAME_LEN - 1,
				 cl.name);
		p->cache.cluster_read[cidx] = true;
	}
	return p->cache.clusters[cidx];
}

/* The cluster ring of a service, NULL when it has none. */
const __u32 *px_ring_get(struct px_worker *p, __u32 sid, __u32 *size)
{
	struct svc_cache *sc = svc_get(p, sid);

	*size = sc ? sc->size : 0;
	return sc ? sc->ring : NULL;
}

bool px_excluded(__u32 id, const __u32 *ex, size_t n_ex)
{
	size_t i;

	for (i = 0; i < n_ex; i++)
		if (ex[i] == id)
			return true;
	return false;
}

/* Every backend of (sid, cidx), up or down: read on first use. */
static void members_read(struct px_worker *p, struct svc_cache *sc, __u32 sid, __u32 cidx)
{
	if (sc->members_read[cidx])
		return;
	if (fg_dp_ring_read_shared(p->dp, &p->cache.slab, sid, cidx | FG_RING_MEMBERS,
				   &sc->members[cidx], &sc->n_members[cidx]))
		sc->n_members[cidx] = 0;
	sc->members_read[cidx] = true;
}

/* A random up member of (sid, cidx) that is not excluded. */
bool px_pick_in_cluster(struct px_worker *p, __u32 sid, __u32 cidx, const __u32 *ex,
			size_t n_ex, __u32 *bid)
{
	struct svc_cache *sc = svc_get(p, sid);
	size_t i, n = 0;

	if (!sc || cidx >= FG_MAX_CLUSTERS)
		return false;
	members_read(p, sc, sid, cidx);
	if (!sc->n_members[cidx])
		return false;
	if (sc->n_members[cidx] > p->cache.cap_cands) {
		__u32 *c = realloc(p->cache.cands, sc->n_members[cidx] * sizeof(*c));

		if (!c)
			return false;
		p->cache.cands = c;
		p->cache.cap_cands = sc->n_members[cidx];
	}
	for (i = 0; i < sc->n_members[cidx]; i++) {
		__u32 id = sc->members[cidx][i];
		const struct fg_backend *be = px_backend(p, id);

		if (!be || !(be->flags & FG_BACKEND_F_UP) || px_excluded(id, ex, n_ex))
			continue;
		p->cache.cands[n++] = id;
	}
	if (!n)
		return false;
	*bid = p->cache.cands[rnd_below(p, n)];
	return true;
}

/* A backend for service sid: a random slot of its cluster ring, then a
 * random up backend of that cluster; avoid_cluster (or -1) is taken only
 * when no other cluster can serve. */
int px_pick_backend(struct px_worker *p, __u32 sid, const __u32 *ex, size_t n_ex,
		    int avoid_cluster, __u32 *bid)
{
	bool tried[FG_MAX_CLUSTERS] = {};
	const __u32 *ring;
	__u32 start, i, c, size;
	int pass, t;

	/* What the cache holds stays valid until the next pick: callers
	 * keep px_backend()'s pointer that long. */
	cache_check(p);
	ring = px_ring_get(p, sid, &size);
	if (!ring || !size)
		return -ENOENT;
	for (t = 0; t < 16; t++) {
		c = ring[rnd_below(p, size)];
		if (c >= FG_MAX_CLUSTERS || (int)c == avoid_cluster)
			continue;
		if (px_pick_in_cluster(p, sid, c, ex, n_ex, bid))
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
			if (px_pick_in_cluster(p, sid, c, ex, n_ex, bid))
				return 0;
		}
	}
	return -ENOENT;
}

/* ---------- session affinity ---------- */

/*
 * What a session cookie names (affinity: cookie): a 64-bit hash of the
 * endpoint's cluster, address and port. Names, not indexes or ids, so
 * that every worker and every gateway replica reads the same endpoint
 * from the same cookie.
 */
__u64 px_affinity_hash(struct px_worker *p, const struct fg_addr *addr, int family, __be16 port,
		       __u32 cidx)
{
	char key[FG_NAME_LEN + INET6_ADDRSTRLEN + 16], abuf[INET6_ADDRSTRLEN];
	int n;

	n = snprintf(key, sizeof(key), "%s|%s|%u", px_cluster_name(p, cidx),
		     fg_addr_str(addr, family, abuf, sizeof(abuf)), ntohs(port));
	if (n < 0 || (size_t)n >= sizeof(key))
		n = (int)strlen(key);
	return (__u64)fg_bytes_hash(key, n, 0x61666631u) << 32 | fg_bytes_hash(key, n, 0x61666632u);
}

/* The endpoint a cookie hash names among the backends of service sid's
 * clusters that serve now (those in its cluster ring), when it is up:
 * 0, or -ENOENT (then the request is balanced as any other). */
int px_pick_affine(struct px_worker *p, __u32 sid, __u64 hash, __u32 *bid)
{
	const struct fg_backend *be;
	struct svc_cache *sc;
	__u32 i, j, c;
	__u64 *v;

	cache_check(p);
	sc = svc_get(p, sid);
	if (!sc || !sc->ring)
		return -ENOENT;
	if (!sc->aff) {
		/* Built once per routing epoch: cookie hash -> backend id. */
		bool seen[FG_MAX_CLUSTERS] = {};

		sc->aff = malloc(sizeof(*sc->aff));
		if (!sc->aff)
			return -ENOENT;
		fg_hmap_init(sc->aff, sizeof(__u64));
		for (i = 0; i < sc->size; i++) {
			c = sc->ring[i];
			if (c >= FG_MAX_CLUSTERS || seen[c])
				continue;
			seen[c] = true;
			members_read(p, sc, sid, c);
			for (j = 0; j < sc->n_members[c]; j++) {
				__u32 id = sc->members[c][j];
				__u64 h;

				be = px_backend(p, id);
				if (!be)
					continue;
				h = px_affinity_hash(p, &be->addr, be->family, be->port,
						     be->cluster_idx);
				fg_hmap_put(sc->aff, &h, id);
			}
		}
	}
	v = fg_hmap_get(sc->aff, &hash);
	if (!v)
		return -ENOENT;
	be = px_backend(p, (__u32)*v);
	if (!be || !(be->flags & FG_BACKEND_F_UP))
		return -ENOENT;
	*bid = (__u32)*v;
	return 0;
}

/* ---------- passive health ---------- */

/* Marks a backend down in the maps and rebuilds the rings of every
 * service that has it (control thread). */
static void markdown_apply(struct fg_proxy *srv, const struct px_markdown *m)
{
	char abuf[INET6_ADDRSTRLEN];
	struct fg_backend be;
	int err;

	/* Several requests in flight can fail on the same endpoint: it is
	 * marked, and its rings rebuilt, once. */
	if (bpf_map_lookup_elem(fg_dp_maps(srv->dp)->backends, &m->backend_id, &be) ||
	    !(be.flags & FG_BACKEND_F_ACTIVE) || !(be.flags & FG_BACKEND_F_UP))
		return;
	err = fg_dp_set_backend_up(srv->dp, m->backend_id, false);
	if (err) {
		pr_debug("proxy: cannot mark backend %u down: %s\n", m->backend_id, strerror(-err));
		return;
	}
	/* Every service with this endpoint: it is down for all of them. */
	err = fg_dp_backends_changed(srv->dp, &m->backend_id, 1);
	if (err)
		pr_warn("proxy: cannot rebuild the rings of backend %u: %s\n", m->backend_id,
			strerror(-err));
	pr_warn("proxy: backend %u (%s:%u) of cluster %s marked down (service %u): %s\n",
		m->backend_id, fg_addr_str(&be.addr, be.family, abuf, sizeof(abuf)),
		ntohs(be.port), fg_dp_cluster_name(srv->dp, be.cluster_idx), m->service_id, m->why);
}

void px_mark_down(struct px_worker *p, __u32 sid, __u32 bid, const char *why)
{
	struct fg_proxy *srv = p->srv;
	struct px_markdown m = { .backend_id = bid, .service_id = sid };
	struct fg_backend *be;
	__u64 key = bid, *v, one = 1;

	/* This worker stops using it at once. */
	v = fg_hmap_get(&p->cache.backends, &key);
	be = v ? (struct fg_backend *)(uintptr_t)*v : NULL;
	if (be && !(be->flags & FG_BACKEND_F_UP))
		return; /* said already */
	if (be)
		be->flags &= ~FG_BACKEND_F_UP;
	STAT_INC(p, passive_down);
	snprintf(m.why, sizeof(m.why), "%s", why);
	if (!srv->threaded) {
		markdown_apply(srv, &m);
		return;
	}
	/* The control thread alone writes the maps. */
	pthread_mutex_lock(&srv->lock);
	if (srv->n_markdowns == srv->cap_markdowns) {
		size_t cap = srv->cap_markdowns ? srv->cap_markdowns * 2 : 16;
		struct px_markdown *a = realloc(srv->markdowns, cap * sizeof(*a));

		if (a) {
			srv->markdowns = a;
			srv->cap_markdowns = cap;
		}
	}
	if (srv->n_markdowns < srv->cap_markdowns) {
		srv->markdowns[srv->n_markdowns++] = m;
		p->md_gen = ++srv->md_queued;
	}
	pthread_mutex_unlock(&srv->lock);
	if (write(srv->ctl_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_debug("proxy: cannot wake the control thread: %s\n", strerror(errno));
}

/* The control thread's share: the markdowns the workers queued. */
void px_markdowns_apply(struct fg_proxy *srv)
{
	struct px_markdown *ms;
	__u64 v, gen, one = 1;
	size_t n, i;

	if (read(srv->ctl_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_debug("proxy: eventfd: %s\n", strerror(errno));
	pthread_mutex_lock(&srv->lock);
	ms = srv->markdowns;
	n = srv->n_markdowns;
	gen = srv->md_queued;
	srv->markdowns = NULL;
	srv->n_markdowns = srv->cap_markdowns = 0;
	pthread_mutex_unlock(&srv->lock);
	for (i = 0; i < n; i++)
		markdown_apply(srv, &ms[i]);
	free(ms);
	if (!n)
		return;
	/* Requests parked for these rings go on (px_resume_parked). */
	__atomic_store_n(&srv->md_applied, gen, __ATOMIC_RELEASE);
	for (i = 0; i < (size_t)srv->n_workers; i++)
		if (write(srv->workers[i].wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			pr_debug("proxy: cannot wake worker %zu: %s\n", i, strerror(errno));
}

bool px_markdown_pending(const struct px_worker *p)
{
	return p->srv->threaded && p->md_gen > __atomic_load_n(&p->srv->md_applied, __ATOMIC_ACQUIRE);
}

/* ---------- canaries ---------- */

bool px_canary_header_match(struct px_worker *p, const struct fg_canary *cn,
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
const struct fg_target *px_choose_target(struct px_worker *p, const struct fg_route *r,
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
		if (px_canary_header_match(p, cn, h, &never[i]))
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


