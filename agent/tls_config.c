// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Ingress spec.tls resolved against Secrets (tls_config.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tls_config.h"

#define KEY_LEN (FG_ID_LEN * 5 + 2)

/* ---------- the cache ---------- */

struct cache_ent {
	json_t *obj;                /* the Secret it was made from (a reference) */
	unsigned char digest[32];   /* of what the certificate is made from */
	struct fg_tls_cert *cert;   /* NULL: err and reason say why */
	int err;
	char reason[FG_REASON_LEN];
	unsigned long round;        /* the last computation that used it */
};

struct fg_tls_cache {
	json_t *by_key;             /* "ns/name" -> struct cache_ent * (as an integer) */
	unsigned long round;
	unsigned long parses;
};

static struct cache_ent *ent_of(json_t *v)
{
	return (struct cache_ent *)(uintptr_t)json_integer_value(v);
}

static void ent_free(struct cache_ent *e)
{
	if (!e)
		return;
	json_decref(e->obj);
	fg_tls_cert_put(e->cert);
	free(e);
}

int fg_tls_cache_new(struct fg_tls_cache **out)
{
	struct fg_tls_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->by_key = json_object();
	if (!c->by_key) {
		free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void fg_tls_cache_free(struct fg_tls_cache *c)
{
	const char *k;
	json_t *v;

	if (!c)
		return;
	json_object_foreach(c->by_key, k, v)
		ent_free(ent_of(v));
	json_decref(c->by_key);
	free(c);
}

unsigned long fg_tls_cache_parses(const struct fg_tls_cache *c)
{
	return c ? c->parses : 0;
}

/* What a certificate is made from, hashed: a Secret rewritten with the
 * same content (a relist, a file touched) is no change. */
static int secret_digest(json_t *secret, unsigned char out[32])
{
	static const char *const keys[] = { "tls.crt", "tls.key" };
	json_t *data = json_object_get(secret, "data"), *sdata = json_object_get(secret, "stringData");
	const char *type = json_string_value(json_object_get(secret, "type"));
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;
	size_t i;
	int ok;

	if (!md)
		return -ENOMEM;
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(md, type ? type : "", type ? strlen(type) + 1 : 1) == 1;
	for (i = 0; ok && i < 2; i++) {
		json_t *vs[2] = { json_object_get(data, keys[i]), json_object_get(sdata, keys[i]) };
		int j;

		for (j = 0; ok && j < 2; j++) {
			const char *s = json_string_value(vs[j]);

			/* A tag per value, so that moving bytes between values
			 * changes the digest. */
			ok = EVP_DigestUpdate(md, s ? "s" : "-", 1) == 1 &&
			     (!s || EVP_DigestUpdate(md, s, json_string_length(vs[j]) + 1) == 1);
		}
	}
	ok = ok && EVP_DigestFinal_ex(md, out, &n) == 1 && n == 32;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -ENOMEM;
}

/* The certificate of a Secret, parsed once per content. */
static struct cache_ent *cache_get(struct fg_tls_cache *c, const char *key, json_t *secret)
{
	struct cache_ent *e = ent_of(json_object_get(c->by_key, key));
	unsigned char d[32];

	if (e && e->obj == secret)
		goto hit;
	if (secret_digest(secret, d))
		return NULL;
	if (e && !memcmp(e->digest, d, sizeof(d))) {
		json_decref(e->obj);
		e->obj = json_incref(secret);
		goto hit;
	}
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || json_object_set_new(c->by_key, key, json_integer((json_int_t)(uintptr_t)e))) {
			free(e);
			return NULL;
		}
	}
	json_decref(e->obj);
	fg_tls_cert_put(e->cert);
	e->cert = NULL;
	e->obj = json_incref(secret);
	memcpy(e->digest, d, sizeof(d));
	e->reason[0] = '\0';
	e->err = fg_tls_cert_from_secret(secret, &e->cert, e->reason, sizeof(e->reason));
	c->parses++;
hit:
	e->round = c->round;
	return e;
}

/* Entries of Secrets no computation asked for this round are dropped. */
static void cache_sweep(struct fg_tls_cache *c)
{
	const char *k;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(c->by_key, tmp, k, v) {
		struct cache_ent *e = ent_of(v);

		if (e->round != c->round) {
			ent_free(e);
			json_object_del(c->by_key, k);
		}
	}
}

/* ---------- the plan's TLS ---------- */

const char *fg_tls_state_name(enum fg_tls_state s)
{
	switch (s) {
	case FG_TLS_READY:
		return "Ready";
	case FG_TLS_DEFAULT:
		return "Default";
	case FG_TLS_REJECTED:
		return "Rejected";
	case FG_TLS_NOT_COVERED:
		return "NotCovered";
	case FG_TLS_CONFLICT:
		return "Conflict";
	}
	return "?";
}

void fg_tls_plan_free(struct fg_tls_plan *tp)
{
	size_t i;

	if (!tp)
		return;
	for (i = 0; i < tp->n_hosts; i++)
		fg_tls_cert_put(tp->hosts[i].cert);
	free(tp->hosts);
	free(tp);
}

struct tbuild {
	struct fg_tls_plan *tp;
	size_t cap;
	struct fg_tls_cache *cache;
	time_t now;
	json_t *ingresses;   /* "ns/name" -> Ingress */
	json_t *secrets;     /* "ns/name" -> Secret */
	json_t *claimed;     /* host -> index of its Ready entry */
};

static void reasonf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reasonf(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, FG_REASON_LEN, fmt, ap);
	va_end(ap);
}

static const char *md_str(json_t *obj, const char *key, const char *dflt)
{
	const char *v = json_string_value(json_object_get(json_object_get(obj, "metadata"), key));

	return v && *v ? v : dflt;
}

static int index_fleet(struct tbuild *b, json_t *fleet)
{
	json_t *obj;
	size_t i;

	json_array_foreach(fleet, i, obj) {
		const char *kind = json_string_value(json_object_get(obj, "kind"));
		char key[KEY_LEN];
		json_t *idx;

		if (!kind)
			continue;
		if (!strcmp(kind, "Ingress"))
			idx = b->ingresses;
		else if (!strcmp(kind, "Secret"))
			idx = b->secrets;
		else
			continue;
		snprintf(key, sizeof(key), "%s/%s", md_str(obj, "namespace", "default"),
			 md_str(obj, "name", ""));
		/* The first one of a key is in force (the object store's
		 * rule for duplicates). */
		if (!json_object_get(idx, key) && json_object_set(idx, key, obj))
			return -ENOMEM;
	}
	return 0;
}

/* A DNS name, or "*." and one. Written back in lower case. */
static bool tls_host_ok(const char *h, char *out, size_t len)
{
	size_t n = strlen(h), i;
	const char *name = !strncmp(h, "*.", 2) ? h + 2 : h;

	if (!*name || n >= len)
		return false;
	for (i = 0; name[i]; i++) {
		unsigned char c = name[i];

		if (!(isalnum(c) || c == '-' || c == '.'))
			return false;
	}
	for (i = 0; i <= n; i++)
		out[i] = (char)tolower((unsigned char)h[i]);
	return true;
}

static struct fg_tls_host *add_host(struct tbuild *b)
{
	struct fg_tls_plan *tp = b->tp;

	if (tp->n_hosts == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 16;
		struct fg_tls_host *v = realloc(tp->hosts, cap * sizeof(*v));

		if (!v)
			return NULL;
		tp->hosts = v;
		b->cap = cap;
	}
	memset(&tp->hosts[tp->n_hosts], 0, sizeof(tp->hosts[0]));
	return &tp->hosts[tp->n_hosts++];
}

static void note_time(struct tbuild *b, const struct fg_tls_cert *c)
{
	time_t nb = fg_tls_cert_not_before(c), na = fg_tls_cert_not_after(c), t = 0;

	if (b->now < nb)
		t = nb;
	else if (b->now <= na)
		t = na + 1;
	if (t && (!b->tp->next_check || t < b->tp->next_check))
		b->tp->next_check = t;
}

/* One host of a spec.tls item, with the Secret's outcome (e, NULL when
 * there is no secretName; why: the Secret cannot be used). */
static int tls_host(struct tbuild *b, const char *ingress, const char *host, const char *secret,
		    const struct cache_ent *e, const char *why)
{
	struct fg_tls_host *h = add_host(b);
	json_t *prev;

	if (!h)
		return -ENOMEM;
	snprintf(h->host, sizeof(h->host), "%s", host);
	snprintf(h->ingress, sizeof(h->ingress), "%s", ingress);
	snprintf(h->secret, sizeof(h->secret), "%s", secret ? secret : "");
	if (e && e->cert)
		h->cert = fg_tls_cert_get(e->cert);
	if (!secret) {
		h->state = FG_TLS_DEFAULT;
		return 0;
	}
	if (why) {
		h->state = FG_TLS_REJECTED;
		reasonf(h->reason, "Secret %s: %s", secret, why);
		return 0;
	}
	if (!fg_tls_cert_covers(e->cert, host)) {
		h->state = FG_TLS_NOT_COVERED;
		reasonf(h->reason, "the certificate of Secret %s does not cover %s (DNS names, or "
			"the CN without them); it gets the default certificate", secret, host);
		return 0;
	}
	prev = json_object_get(b->claimed, host);
	if (prev) {
		const struct fg_tls_host *p = &b->tp->hosts[json_integer_value(prev)];

		if (p->cert != h->cert) {
			h->state = FG_TLS_CONFLICT;
			reasonf(h->reason, "%s already has the certificate of Secret %s (Ingress %s)",
				host, p->secret, p->ingress);
			return 0;
		}
	} else if (json_object_set_new(b->claimed, host,
				       json_integer((json_int_t)(b->tp->n_hosts - 1)))) {
		return -ENOMEM;
	}
	h->state = FG_TLS_READY;
	return 0;
}

/* The hosts an item covers: its own, or the Ingress's rule hosts. */
static json_t *item_hosts(json_t *ing, json_t *item)
{
	json_t *hosts = json_object_get(item, "hosts"), *out, *rule, *h;
	size_t i;

	if (json_array_size(hosts))
		return json_incref(hosts);
	out = json_array();
	json_array_foreach(json_object_get(json_object_get(ing, "spec"), "rules"), i, rule) {
		const char *host = json_string_value(json_object_get(rule, "host"));
		size_t j;
		bool dup = false;

		if (!host || !*host)
			continue;
		json_array_foreach(out, j, h)
			if (!strcmp(json_string_value(h), host))
				dup = true;
		if (!dup)
			json_array_append_new(out, json_string(host));
	}
	return out;
}

static int ingress_tls(struct tbuild *b, const struct fg_ingress_status *st)
{
	char key[KEY_LEN], skey[KEY_LEN], host[FG_HOST_LEN + 2], why[FG_REASON_LEN];
	json_t *ing, *items, *item;
	size_t i;
	int err = 0;

	snprintf(key, sizeof(key), "%s/%s", st->ns, st->name);
	ing = json_object_get(b->ingresses, key);
	items = json_object_get(json_object_get(ing, "spec"), "tls");
	json_array_foreach(items, i, item) {
		const char *sname = json_string_value(json_object_get(item, "secretName"));
		json_t *hosts = item_hosts(ing, item), *hv;
		const struct cache_ent *e = NULL;
		const char *bad = NULL;
		size_t j;

		if (!hosts)
			return -ENOMEM;
		if (sname && !*sname)
			sname = NULL;
		if (sname) {
			json_t *secret;

			snprintf(skey, sizeof(skey), "%s/%s", st->ns, sname);
			secret = json_object_get(b->secrets, skey);
			if (!secret) {
				bad = "not found";
			} else {
				e = cache_get(b->cache, skey, secret);
				if (!e) {
					json_decref(hosts);
					return -ENOMEM;
				}
				if (!e->cert) {
					bad = e->reason;
				} else {
					note_time(b, e->cert);
					if (fg_tls_cert_check_time(e->cert, b->now, why, sizeof(why)))
						bad = why;
				}
			}
		}
		json_array_foreach(hosts, j, hv) {
			const char *h = json_string_value(hv);

			if (!h || !tls_host_ok(h, host, sizeof(host))) {
				struct fg_tls_host *x = add_host(b);

				if (!x) {
					err = -ENOMEM;
					break;
				}
				snprintf(x->host, sizeof(x->host), "%.*s", FG_HOST_LEN, h ? h : "");
				snprintf(x->ingress, sizeof(x->ingress), "%s", key);
				snprintf(x->secret, sizeof(x->secret), "%s", sname ? skey : "");
				x->state = FG_TLS_REJECTED;
				reasonf(x->reason, "spec.tls[%zu].hosts[%zu] is not a host name", i, j);
				continue;
			}
			err = tls_host(b, key, host, sname ? skey : NULL, e, bad);
			if (err)
				break;
		}
		json_decref(hosts);
		if (err)
			return err;
	}
	return 0;
}

/* Whether a route's host is served with a certificate by intent. */
static bool route_tls(json_t *served, const struct fg_route *r)
{
	char key[FG_HOST_LEN + 4];
	const char *dot;

	if (!r->host[0])
		return false;
	if (r->wildcard) {
		snprintf(key, sizeof(key), "*.%s", r->host);
		return json_object_get(served, key) != NULL;
	}
	if (json_object_get(served, r->host))
		return true;
	dot = strchr(r->host, '.');
	if (!dot || !dot[1])
		return false;
	snprintf(key, sizeof(key), "*.%s", dot + 1);
	return json_object_get(served, key) != NULL;
}

static int mark_routes(struct fg_plan *plan, bool *changed)
{
	json_t *served = json_object();
	size_t i;

	if (!served)
		return -ENOMEM;
	for (i = 0; i < plan->tls->n_hosts; i++) {
		const struct fg_tls_host *h = &plan->tls->hosts[i];

		if ((h->state == FG_TLS_READY || h->state == FG_TLS_DEFAULT) &&
		    json_object_set_new(served, h->host, json_true())) {
			json_decref(served);
			return -ENOMEM;
		}
	}
	for (i = 0; i < plan->n_routes; i++) {
		bool t = route_tls(served, &plan->routes[i]);

		if (t != plan->routes[i].tls && changed)
			*changed = true;
		plan->routes[i].tls = t;
	}
	json_decref(served);
	return 0;
}

int fg_tls_plan_compute(json_t *fleet, struct fg_plan *plan, struct fg_tls_cache *cache,
			time_t now, bool *routes_changed)
{
	struct fg_tls_cache *own = NULL;
	struct tbuild b = { .now = now ? now : time(NULL) };
	size_t i;
	int err;

	if (routes_changed)
		*routes_changed = false;
	if (!cache) {
		err = fg_tls_cache_new(&own);
		if (err)
			return err;
		cache = own;
	}
	cache->round++;
	b.cache = cache;
	b.tp = calloc(1, sizeof(*b.tp));
	b.ingresses = json_object();
	b.secrets = json_object();
	b.claimed = json_object();
	err = -ENOMEM;
	if (!b.tp || !b.ingresses || !b.secrets || !b.claimed)
		goto out;
	err = index_fleet(&b, fleet);
	for (i = 0; !err && i < plan->n_ingresses; i++) {
		const struct fg_ingress_status *st = &plan->ingresses[i];

		if (st->accepted && !st->canary)
			err = ingress_tls(&b, st);
	}
	if (err)
		goto out;
	fg_tls_plan_free(plan->tls);
	plan->tls = b.tp;
	b.tp = NULL;
	err = mark_routes(plan, routes_changed);
	cache_sweep(cache);
out:
	fg_tls_plan_free(b.tp);
	json_decref(b.ingresses);
	json_decref(b.secrets);
	json_decref(b.claimed);
	fg_tls_cache_free(own);
	return err;
}

int fg_tls_plan_entries(const struct fg_tls_plan *tp, struct fg_tls_store_entry **out,
			size_t *n)
{
	struct fg_tls_store_entry *v;
	size_t i, k = 0;

	v = calloc(tp && tp->n_hosts ? tp->n_hosts : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; tp && i < tp->n_hosts; i++)
		if (tp->hosts[i].state == FG_TLS_READY)
			v[k++] = (struct fg_tls_store_entry){ tp->hosts[i].host, tp->hosts[i].cert };
	*out = v;
	*n = k;
	return 0;
}

bool fg_tls_plan_ingress(const struct fg_tls_plan *tp, const char *ingress, char *reason,
			 size_t len, size_t *n_hosts, size_t *n_ready)
{
	size_t i, hosts = 0, ready = 0, bad = 0;

	if (len)
		reason[0] = '\0';
	for (i = 0; tp && i < tp->n_hosts; i++) {
		const struct fg_tls_host *h = &tp->hosts[i];

		if (strcmp(h->ingress, ingress))
			continue;
		hosts++;
		if (h->state == FG_TLS_READY || h->state == FG_TLS_DEFAULT) {
			ready++;
			continue;
		}
		if (!bad++ && len)
			snprintf(reason, len, "host %s: %s", h->host, h->reason);
	}
	if (bad > 1 && len) {
		size_t n = strlen(reason);

		snprintf(reason + n, len - n, " (and %zu more)", bad - 1);
	}
	if (n_hosts)
		*n_hosts = hosts;
	if (n_ready)
		*n_ready = ready;
	return hosts > 0;
}

static json_t *cert_json(const char *host, const char *ingress, const char *secret,
			 const struct fg_tls_cert *c, const char *state, const char *reason)
{
	char nb[32] = "", na[32] = "";
	json_t *o;

	if (c) {
		fg_tls_time_str(fg_tls_cert_not_before(c), nb, sizeof(nb));
		fg_tls_time_str(fg_tls_cert_not_after(c), na, sizeof(na));
	}
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "host", host, "ingress",
		      ingress, "secret", secret, "subject", c ? fg_tls_cert_subject(c) : "",
		      "issuer", c ? fg_tls_cert_issuer(c) : "", "notBefore", nb, "notAfter", na,
		      "state", state, "reason", reason);
	/* For the metrics' expiry gauge. */
	if (o && c)
		json_object_set_new(o, "notAfterUnix",
				    json_integer((json_int_t)fg_tls_cert_not_after(c)));
	return o;
}

json_t *fg_tls_plan_json(const struct fg_tls_plan *tp, const struct fg_tls_cert *dflt)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; tp && i < tp->n_hosts; i++) {
		const struct fg_tls_host *h = &tp->hosts[i];
		/* Default hosts show the certificate they get. */
		const struct fg_tls_cert *c = h->state == FG_TLS_DEFAULT ? dflt : h->cert;

		json_array_append_new(arr, cert_json(h->host, h->ingress, h->secret, c,
						     fg_tls_state_name(h->state), h->reason));
	}
	if (dflt)
		json_array_append_new(arr, cert_json("(default)", "", fg_tls_cert_name(dflt), dflt,
						     fg_tls_cert_generated(dflt) ? "Generated"
										 : "Default", ""));
	return arr;
}
