// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Request routing: which route, which canary, which cluster and endpoint
 * (from the data plane's rings and backends), and passive health.
 */
#include "proxy_int.h"

/* The cluster ring of a service, NULL when it has none; reread from the
 * maps after routing state changed (the data plane's epoch). */
const __u32 *px_ring_get(struct fg_proxy *p, __u32 sid, __u32 *size)
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

bool px_excluded(__u32 id, const __u32 *ex, size_t n_ex)
{
	size_t i;

	for (i = 0; i < n_ex; i++)
		if (ex[i] == id)
			return true;
	return false;
}

/* A random up member of (sid, cidx) that is not excluded. */
bool px_pick_in_cluster(struct fg_proxy *p, __u32 sid, __u32 cidx, const __u32 *ex,
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
		    px_excluded(members[i], ex, n_ex))
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
int px_pick_backend(struct fg_proxy *p, __u32 sid, const __u32 *ex, size_t n_ex,
			int avoid_cluster, __u32 *bid)
{
	bool tried[FG_MAX_CLUSTERS] = {};
	const __u32 *ring;
	__u32 start, i, c, size;
	int pass, t;

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

void px_mark_down(struct fg_proxy *p, __u32 sid, __u32 bid, const char *why)
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

bool px_canary_header_match(struct fg_proxy *p, const struct fg_canary *cn,
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
const struct fg_target *px_choose_target(struct fg_proxy *p, const struct fg_route *r,
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

const struct fg_route *px_find_route(const struct fg_plan *plan, const char *host,
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
