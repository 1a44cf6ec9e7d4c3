// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Ingress spec.tls in the control plane, from a config directory: Secrets
 * in fleet/ resolved per host (Ready, Default, Rejected, NotCovered,
 * Conflict) with the reason in `get ingress`, routes marked tls, the SNI
 * store the proxy would get; then single changes: a Secret rotated (a new
 * store generation, no full recomputation, one certificate parsed), a bad
 * Secret fixed, a Secret deleted, a certificate expiring on its own (the
 * timer), and a large fleet recomputed without reparsing certificates.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "control.h"
#include "dataplane.h"
#include "test_progs.h"
#include "tls.h"
#include "tls_config.h"

#define CL1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"

static char dir[PATH_MAX];

static int put(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whole files only (a rename), as an operator's tools write them. */
static int put(const char *rel, const char *fmt, ...)
{
	char path[PATH_MAX + 256], tmp[PATH_MAX + 300];
	va_list ap;
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	snprintf(tmp, sizeof(tmp), "%s/.%d.tmp", dir, rand());
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	if (fclose(f))
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	return err;
}

static int rm(const char *rel)
{
	char path[PATH_MAX + 256];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return unlink(path) ? -errno : 0;
}

/* ---------- objects ---------- */

static char *b64_of_bio(BIO *b)
{
	char *p, *out;
	long n = BIO_get_mem_data(b, &p);

	out = malloc(4 * ((n + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, (unsigned char *)p, (int)n);
	return out;
}

struct pem64 {
	char *crt, *key; /* base64 of the PEM, as a Secret's data holds them */
	char serial[64];
};

static void pem64_free(struct pem64 *p)
{
	free(p->crt);
	free(p->key);
	memset(p, 0, sizeof(*p));
}

/* A certificate for names (cn first), valid from nb to na seconds from
 * now; key_of: use that pair's key instead (a mismatch). */
static bool make(struct pem64 *out, const char *cn, const char *const *sans, long nb, long na,
		 EVP_PKEY *key_of)
{
	struct fg_tls_gen_opts o = { .cn = cn, .sans = sans, .not_before = nb, .not_after = na };
	char why[FG_TLS_WHY_LEN];
	BIO *bc = BIO_new(BIO_s_mem()), *bk = BIO_new(BIO_s_mem());
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	bool ok = false;

	if (!bc || !bk || !ASSERT_OK(fg_tls_gen_cert(&o, &x, &k, why, sizeof(why)), cn))
		goto out;
	if (PEM_write_bio_X509(bc, x) != 1 ||
	    PEM_write_bio_PrivateKey(bk, key_of ? key_of : k, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	out->crt = b64_of_bio(bc);
	out->key = b64_of_bio(bk);
	{
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(x), NULL);
		char *hex = bn ? BN_bn2hex(bn) : NULL;

		snprintf(out->serial, sizeof(out->serial), "%s", hex ? hex : "");
		OPENSSL_free(hex);
		BN_free(bn);
	}
	ok = out->crt && out->key;
out:
	BIO_free(bc);
	BIO_free(bk);
	X509_free(x);
	EVP_PKEY_free(k);
	return ok;
}

static int secret_file(const char *name, const struct pem64 *p)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "fleet/secret-%s.yaml", name);
	return put(rel, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: web\n"
		   "type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n", name, p->crt,
		   p->key);
}

/* An Ingress with one rule per host (path /, Service svc0) and a tls
 * section: tls_hosts ("" for none: the rule hosts), secret (NULL: no
 * secretName; "-": no tls at all). */
static int ingress(const char *name, const char *created, const char *const *hosts,
		   const char *tls_hosts, const char *secret)
{
	char rel[128], rules[4096] = "", tls[1024] = "";
	size_t off = 0;
	int i;

	for (i = 0; hosts[i]; i++)
		off += snprintf(rules + off, sizeof(rules) - off,
				"  - host: \"%s\"\n    http:\n      paths:\n      - path: /%s\n"
				"        pathType: Prefix\n        backend:\n          service:\n"
				"            name: svc0\n            port:\n              number: 80\n",
				hosts[i], strcmp(name, "conflict") ? "" : "other");
	if (!secret || strcmp(secret, "-")) {
		off = snprintf(tls, sizeof(tls), "  tls:\n");
		if (*tls_hosts && secret)
			snprintf(tls + off, sizeof(tls) - off, "  - hosts: [%s]\n    secretName: %s\n",
				 tls_hosts, secret);
		else if (*tls_hosts)
			snprintf(tls + off, sizeof(tls) - off, "  - hosts: [%s]\n", tls_hosts);
		else if (secret)
			snprintf(tls + off, sizeof(tls) - off, "  - secretName: %s\n", secret);
		else
			snprintf(tls + off, sizeof(tls) - off, "  - {}\n");
	}
	snprintf(rel, sizeof(rel), "fleet/ing-%s.yaml", name);
	return put(rel, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: %s\n"
		   "  namespace: web\n  creationTimestamp: \"%s\"\nspec:\n  ingressClassName: mse\n"
		   "%s  rules:\n%s", name, created, tls, rules);
}

static int base_files(void)
{
	int err = put("fleet/gw.yaml",
		      "apiVersion: mse.alibabacloud.com/v1alpha1\nkind: MseIngressConfig\n"
		      "metadata:\n  name: gw\n  annotations:\n"
		      "    mse.alibabacloud.com/remote-clusters: " CL1 "\n"
		      "spec:\n  ingress:\n    local:\n      ingressClass: mse\n");

	if (!err)
		err = put("clusters/" CL1 "/svc0.yaml",
			  "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc0\n  namespace: web\n"
			  "spec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n---\n"
			  "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
			  "  name: svc0-x\n  namespace: web\n  labels:\n"
			  "    kubernetes.io/service-name: svc0\naddressType: IPv4\nports:\n"
			  "- name: http\n  port: 8080\nendpoints:\n- addresses:\n  - 10.1.0.1\n"
			  "  conditions:\n    ready: true\n");
	return err;
}

/* ---------- looking at the outcome ---------- */

static const struct fg_tls_host *tls_host(const struct fg_plan *p, const char *ingress,
					  const char *host)
{
	char key[128];
	size_t i;

	snprintf(key, sizeof(key), "web/%s", ingress);
	for (i = 0; p && p->tls && i < p->tls->n_hosts; i++)
		if (!strcmp(p->tls->hosts[i].ingress, key) && !strcmp(p->tls->hosts[i].host, host))
			return &p->tls->hosts[i];
	return NULL;
}

static int route_tls(const struct fg_plan *p, const char *host)
{
	size_t i;

	for (i = 0; i < p->n_routes; i++)
		if (!strcmp(p->routes[i].host, host))
			return p->routes[i].tls;
	return -1;
}

static bool state_is(const struct fg_plan *p, const char *ing, const char *host,
		     enum fg_tls_state st, const char *reason_start)
{
	const struct fg_tls_host *h = tls_host(p, ing, host);
	char tag[160];

	snprintf(tag, sizeof(tag), "%s %s", ing, host);
	if (!ASSERT_OK_PTR(h, tag))
		return false;
	if (!ASSERT_STREQ(fg_tls_state_name(h->state), fg_tls_state_name(st), tag) ||
	    !ASSERT_TRUE(!strncmp(h->reason, reason_start, strlen(reason_start)), tag)) {
		printf("%s: %s: '%s'\n", tag, fg_tls_state_name(h->state), h->reason);
		return false;
	}
	return true;
}

/* The serial of the certificate the store gives a name. */
static void store_serial(struct fg_control *c, const char *name, char *buf, size_t len)
{
	struct fg_tls_store *s = fg_control_tls_store(c);
	struct fg_tls_cert *cert = s ? fg_tls_store_lookup(s, name) : NULL;
	BIGNUM *bn = cert ? ASN1_INTEGER_to_BN(X509_get_serialNumber(fg_tls_cert_x509(cert)), NULL)
			  : NULL;
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	if (cert && fg_tls_cert_generated(cert))
		snprintf(buf, len, "generated");
	else
		snprintf(buf, len, "%s", hex ? hex : "");
	OPENSSL_free(hex);
	BN_free(bn);
	fg_tls_store_put(s);
}

static bool settle(struct fg_control *c, unsigned long long full0, unsigned long long inc0)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int i;

	for (i = 0; i < 500; i++) {
		const struct fg_control_stats *st;

		fg_control_process(c);
		st = fg_control_stats(c);
		if (st->full > full0 || st->incremental > inc0)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

static json_t *admin(struct fg_control *c, const char *get, const char *name)
{
	json_t *req = json_pack("{s:s}", "get", get), *ans;

	if (name)
		json_object_set_new(req, "name", json_string(name));
	ans = fg_control_admin(req, c);
	json_decref(req);
	return ans;
}

static json_t *ingress_item(struct fg_control *c, const char *name)
{
	json_t *ans = admin(c, "ingress", name), *it;

	it = json_incref(json_array_get(json_object_get(ans, "items"), 0));
	json_decref(ans);
	return it;
}

/* ---------- subtests ---------- */

static struct fg_dataplane *dp_load(void)
{
	struct fg_dp_opts dopts = { .max_services = 1024, .max_backends = 4096, .max_rings = 4096 };
	struct fg_dataplane *dp = NULL;

	if (!ASSERT_OK(fg_dp_load(&dp, &dopts), "data plane"))
		return NULL;
	return dp;
}

static void subtest_config_dir(void)
{
	static const char *const a_sans[] = { "a.example.com", "a2.example.com", NULL };
	static const char *const a_other[] = { "a.example.com", NULL };
	static const char *const w_sans[] = { "*.wild.example.com", NULL };
	static const char *const b_sans[] = { "bad.example.com", NULL };
	static const char *const e_sans[] = { "exp.example.com", NULL };
	struct fg_control_opts copts = { .listen = "10.0.0.1:80" };
	struct pem64 a = {}, a2 = {}, a3 = {}, w = {}, bad = {}, good_bad = {}, exp = {}, other = {};
	struct fg_dataplane *dp = NULL;
	struct fg_control *c = NULL;
	const struct fg_plan *p;
	unsigned long long full0, inc0;
	unsigned long gen, plan_gen, parses;
	char serial[64];
	int err;

	snprintf(dir, sizeof(dir), "%s/tls-ctl", test__tmpdir());
	if (!ASSERT_OK(fg_sh("mkdir -p %s/fleet %s/clusters/%s", dir, dir, CL1), "mkdir"))
		return;
	if (!make(&a, "a.example.com", a_sans, 0, 0, NULL) ||
	    !make(&a2, "a.example.com", a_sans, 0, 0, NULL) ||
	    !make(&a3, "a.example.com", a_other, 0, 0, NULL) ||
	    !make(&w, "*.wild.example.com", w_sans, 0, 0, NULL) ||
	    !make(&other, "other", NULL, 0, 0, NULL) ||
	    !make(&good_bad, "bad.example.com", b_sans, 0, 0, NULL) ||
	    !make(&exp, "exp.example.com", e_sans, -30L * 86400, -3600, NULL))
		goto out;
	{
		/* bad: the certificate of good_bad with another key. */
		struct fg_tls_gen_opts o = { .cn = "x" };
		char why[FG_TLS_WHY_LEN];
		EVP_PKEY *k = NULL;
		X509 *x = NULL;

		if (!ASSERT_OK(fg_tls_gen_cert(&o, &x, &k, why, sizeof(why)), "other key") ||
		    !make(&bad, "bad.example.com", b_sans, 0, 0, k)) {
			X509_free(x);
			EVP_PKEY_free(k);
			goto out;
		}
		X509_free(x);
		EVP_PKEY_free(k);
	}
	err = base_files();
	if (!err)
		err = secret_file("site-a", &a);
	if (!err)
		err = secret_file("wild", &w);
	if (!err)
		err = secret_file("bad", &bad);
	if (!err)
		err = secret_file("expired", &exp);
	if (!err)
		err = secret_file("site-a3", &a3);
	if (!err)
		err = secret_file("unused", &other);
	if (!err)
		err = ingress("a", "2024-01-01T00:00:00Z", (const char *[]){ "a.example.com", NULL },
			      "a.example.com", "site-a");
	if (!err)
		err = ingress("wild", "2024-01-01T00:00:01Z",
			      (const char *[]){ "x.wild.example.com", "*.wild.example.com", NULL },
			      "\"*.wild.example.com\"", "wild");
	if (!err)
		err = ingress("bad", "2024-01-01T00:00:02Z", (const char *[]){ "bad.example.com", NULL },
			      "", "bad");
	if (!err)
		err = ingress("nc", "2024-01-01T00:00:03Z",
			      (const char *[]){ "nc.example.com", "a2.example.com", NULL },
			      "nc.example.com, a2.example.com", "site-a");
	if (!err)
		err = ingress("missing", "2024-01-01T00:00:04Z",
			      (const char *[]){ "m.example.com", NULL }, "", "nope");
	if (!err)
		err = ingress("dflt", "2024-01-01T00:00:05Z", (const char *[]){ "d.example.com", NULL },
			      "d.example.com", NULL);
	if (!err)
		err = ingress("plain", "2024-01-01T00:00:06Z",
			      (const char *[]){ "plain.example.com", NULL }, "", "-");
	if (!err)
		err = ingress("expired", "2024-01-01T00:00:07Z",
			      (const char *[]){ "exp.example.com", NULL }, "", "expired");
	if (!err)
		err = ingress("conflict", "2024-01-01T00:00:08Z",
			      (const char *[]){ "a.example.com", NULL }, "", "site-a3");
	if (!ASSERT_OK(err, "config files"))
		goto out;
	dp = dp_load();
	if (!dp)
		goto out;
	copts.config_dir = dir;
	if (!ASSERT_OK(fg_control_new(&c, dp, &copts), "control"))
		goto out;
	fg_control_set_state(c, true, true);
	ASSERT_EQ(fg_control_tls_gen(c), 0, "no store before the first plan");
	if (!ASSERT_OK(fg_control_recompute(c), "first computation"))
		goto out;
	p = fg_control_plan(c);
	ASSERT_EQ(p->n_ingresses, 9, "Ingresses");
	for (size_t i = 0; i < p->n_ingresses; i++)
		ASSERT_TRUE(p->ingresses[i].accepted, p->ingresses[i].name);

	state_is(p, "a", "a.example.com", FG_TLS_READY, "");
	state_is(p, "wild", "*.wild.example.com", FG_TLS_READY, "");
	state_is(p, "bad", "bad.example.com", FG_TLS_REJECTED,
		 "Secret web/bad: tls.key does not match the certificate in tls.crt");
	state_is(p, "nc", "nc.example.com", FG_TLS_NOT_COVERED,
		 "the certificate of Secret web/site-a does not cover nc.example.com");
	state_is(p, "nc", "a2.example.com", FG_TLS_READY, "");
	state_is(p, "missing", "m.example.com", FG_TLS_REJECTED, "Secret web/nope: not found");
	state_is(p, "dflt", "d.example.com", FG_TLS_DEFAULT, "");
	state_is(p, "expired", "exp.example.com", FG_TLS_REJECTED,
		 "Secret web/expired: the certificate expired on ");
	state_is(p, "conflict", "a.example.com", FG_TLS_CONFLICT,
		 "a.example.com already has the certificate of Secret web/site-a (Ingress web/a)");
	ASSERT_TRUE(tls_host(p, "plain", "plain.example.com") == NULL, "no tls, no entry");

	ASSERT_EQ(route_tls(p, "a.example.com"), 1, "route a");
	ASSERT_EQ(route_tls(p, "x.wild.example.com"), 1, "route under the wildcard");
	ASSERT_EQ(route_tls(p, "wild.example.com"), 1, "the wildcard route");
	ASSERT_EQ(route_tls(p, "bad.example.com"), 0, "route of a rejected Secret");
	ASSERT_EQ(route_tls(p, "nc.example.com"), 0, "route of a host not covered");
	ASSERT_EQ(route_tls(p, "a2.example.com"), 1, "route of the covered host");
	ASSERT_EQ(route_tls(p, "m.example.com"), 0, "route of a missing Secret");
	ASSERT_EQ(route_tls(p, "d.example.com"), 1, "default certificate asked for");
	ASSERT_EQ(route_tls(p, "plain.example.com"), 0, "no tls");
	ASSERT_EQ(route_tls(p, "exp.example.com"), 0, "expired");

	/* The store the proxy gets. */
	ASSERT_EQ(fg_control_tls_gen(c), 1, "first store");
	store_serial(c, "a.example.com", serial, sizeof(serial));
	ASSERT_STREQ(serial, a.serial, "a.example.com: site-a");
	store_serial(c, "A2.example.com", serial, sizeof(serial));
	ASSERT_STREQ(serial, a.serial, "a2.example.com: site-a");
	store_serial(c, "y.wild.example.com", serial, sizeof(serial));
	ASSERT_STREQ(serial, w.serial, "wildcard");
	store_serial(c, "bad.example.com", serial, sizeof(serial));
	ASSERT_STREQ(serial, "generated", "rejected: the generated default");
	store_serial(c, "nc.example.com", serial, sizeof(serial));
	ASSERT_STREQ(serial, "generated", "not covered: the default");

	/* What fleetgatectl shows. */
	{
		json_t *it = ingress_item(c, "bad"), *tls = json_object_get(it, "tls");

		ASSERT_TRUE(json_is_true(json_object_get(it, "accepted")), "bad: still accepted");
		ASSERT_STREQ(json_string_value(json_object_get(tls, "reason")),
			     "host bad.example.com: Secret web/bad: tls.key does not match the "
			     "certificate in tls.crt", "get ingress bad");
		ASSERT_EQ(json_integer_value(json_object_get(tls, "ready")), 0, "bad: none ready");
		json_decref(it);
		it = ingress_item(c, "nc");
		tls = json_object_get(it, "tls");
		ASSERT_EQ(json_integer_value(json_object_get(tls, "hosts")), 2, "nc: hosts");
		ASSERT_EQ(json_integer_value(json_object_get(tls, "ready")), 1, "nc: ready");
		json_decref(it);
		it = ingress_item(c, "a");
		ASSERT_STREQ(json_string_value(json_object_get(json_object_get(it, "tls"), "reason")),
			     "", "a: nothing wrong");
		json_decref(it);
		it = ingress_item(c, "plain");
		ASSERT_TRUE(json_object_get(it, "tls") == NULL, "plain: no tls field");
		json_decref(it);
	}
	{
		json_t *ans = admin(c, "certificates", NULL), *items = json_object_get(ans, "items");
		json_t *last = json_array_get(items, json_array_size(items) - 1);

		ASSERT_EQ(json_array_size(items), 10, "9 hosts and the default");
		ASSERT_STREQ(json_string_value(json_object_get(last, "host")), "(default)", "default");
		ASSERT_STREQ(json_string_value(json_object_get(last, "state")), "Generated", "state");
		ASSERT_EQ(json_integer_value(json_object_get(ans, "generation")), 1, "generation");
		json_decref(ans);
		ans = admin(c, "certificates", "a.example.com");
		items = json_object_get(ans, "items");
		ASSERT_EQ(json_array_size(items), 2, "a.example.com: Ready and Conflict");
		ASSERT_STREQ(json_string_value(json_object_get(json_array_get(items, 0), "issuer")),
			     "CN=a.example.com", "issuer");
		json_decref(ans);
	}

	/* Rotation: site-a gets a new certificate. Only TLS is recomputed,
	 * one Secret parsed, a new generation. */
	{
		struct fg_tls_store *before = fg_control_tls_store(c);

		full0 = fg_control_stats(c)->full;
		inc0 = fg_control_stats(c)->incremental;
		gen = fg_control_tls_gen(c);
		parses = 0;
		if (ASSERT_OK(secret_file("site-a", &a2), "rotate") &&
		    ASSERT_TRUE(settle(c, full0, inc0), "recomputed")) {
			ASSERT_EQ(fg_control_stats(c)->full, full0, "no full computation");
			ASSERT_EQ(fg_control_tls_gen(c), gen + 1, "new generation");
			store_serial(c, "a.example.com", serial, sizeof(serial));
			ASSERT_STREQ(serial, a2.serial, "the new certificate");
			/* The old store still answers for connections on it. */
			if (before)
				ASSERT_TRUE(fg_tls_store_lookup(before, "a.example.com") != NULL,
					    "old store alive");
		}
		fg_tls_store_put(before);
	}
	/* The same content rewritten: no new generation. */
	gen = fg_control_tls_gen(c);
	full0 = fg_control_stats(c)->full;
	inc0 = fg_control_stats(c)->incremental;
	if (ASSERT_OK(secret_file("unused", &other), "rewrite unchanged"))
		settle(c, full0, inc0);
	ASSERT_EQ(fg_control_tls_gen(c), gen, "same certificates, same store");

	/* The bad Secret fixed: its host is served, its route turns tls. */
	plan_gen = fg_control_plan_gen(c);
	full0 = fg_control_stats(c)->full;
	inc0 = fg_control_stats(c)->incremental;
	if (ASSERT_OK(secret_file("bad", &good_bad), "fix bad") &&
	    ASSERT_TRUE(settle(c, full0, inc0), "recomputed")) {
		p = fg_control_plan(c);
		state_is(p, "bad", "bad.example.com", FG_TLS_READY, "");
		ASSERT_EQ(route_tls(p, "bad.example.com"), 1, "route turns tls");
		ASSERT_NEQ(fg_control_plan_gen(c), plan_gen, "routes republished");
		ASSERT_EQ(fg_control_tls_gen(c), gen + 1, "new generation");
		store_serial(c, "bad.example.com", serial, sizeof(serial));
		ASSERT_STREQ(serial, good_bad.serial, "its certificate");
	}
	/* Deleted: not found, the default again. */
	gen = fg_control_tls_gen(c);
	full0 = fg_control_stats(c)->full;
	inc0 = fg_control_stats(c)->incremental;
	if (ASSERT_OK(rm("fleet/secret-wild.yaml"), "delete wild") &&
	    ASSERT_TRUE(settle(c, full0, inc0), "recomputed")) {
		p = fg_control_plan(c);
		state_is(p, "wild", "*.wild.example.com", FG_TLS_REJECTED,
			 "Secret web/wild: not found");
		ASSERT_EQ(route_tls(p, "x.wild.example.com"), 0, "route no longer tls");
		ASSERT_EQ(fg_control_tls_gen(c), gen + 1, "new generation");
		store_serial(c, "y.wild.example.com", serial, sizeof(serial));
		ASSERT_STREQ(serial, "generated", "the default");
	}
	/* An Ingress's tls section removed: a full computation, its host
	 * leaves the store. */
	full0 = fg_control_stats(c)->full;
	inc0 = fg_control_stats(c)->incremental;
	if (ASSERT_OK(ingress("nc", "2024-01-01T00:00:03Z",
			      (const char *[]){ "nc.example.com", "a2.example.com", NULL }, "", "-"),
		      "nc without tls") &&
	    ASSERT_TRUE(settle(c, full0, inc0), "recomputed")) {
		p = fg_control_plan(c);
		ASSERT_TRUE(tls_host(p, "nc", "a2.example.com") == NULL, "a2 gone");
		store_serial(c, "a2.example.com", serial, sizeof(serial));
		ASSERT_STREQ(serial, "generated", "a2: the default");
	}
	(void)parses;
out:
	fg_control_free(c);
	if (dp)
		fg_dp_close(dp, true);
	pem64_free(&a);
	pem64_free(&a2);
	pem64_free(&a3);
	pem64_free(&w);
	pem64_free(&bad);
	pem64_free(&good_bad);
	pem64_free(&exp);
	pem64_free(&other);
}

/* A certificate that expires while the agent runs: the timer recomputes
 * TLS at its notAfter, the host is rejected, a new store goes out. Then
 * one that becomes valid. */
static void subtest_expiry_timer(void)
{
	static const char *const sans[] = { "soon.example.com", NULL };
	static const char *const lsans[] = { "late.example.com", NULL };
	struct fg_control_opts copts = { .listen = "10.0.0.1:80" };
	struct pem64 soon = {}, late = {};
	struct fg_dataplane *dp = NULL;
	struct fg_control *c = NULL;
	char serial[64];
	unsigned long gen;
	int err, i;

	snprintf(dir, sizeof(dir), "%s/tls-timer", test__tmpdir());
	if (!ASSERT_OK(fg_sh("mkdir -p %s/fleet %s/clusters/%s", dir, dir, CL1), "mkdir") ||
	    !make(&soon, "soon.example.com", sans, 0, 2, NULL) ||
	    !make(&late, "late.example.com", lsans, 2, 3600, NULL))
		goto out;
	err = base_files();
	if (!err)
		err = secret_file("soon", &soon);
	if (!err)
		err = secret_file("late", &late);
	if (!err)
		err = ingress("soon", "2024-01-01T00:00:00Z", (const char *[]){ "soon.example.com", NULL },
			      "", "soon");
	if (!err)
		err = ingress("late", "2024-01-01T00:00:01Z", (const char *[]){ "late.example.com", NULL },
			      "", "late");
	if (!ASSERT_OK(err, "config files") || !(dp = dp_load()))
		goto out;
	copts.config_dir = dir;
	if (!ASSERT_OK(fg_control_new(&c, dp, &copts), "control"))
		goto out;
	fg_control_set_state(c, true, true);
	if (!ASSERT_OK(fg_control_recompute(c), "first computation"))
		goto out;
	state_is(fg_control_plan(c), "soon", "soon.example.com", FG_TLS_READY, "");
	state_is(fg_control_plan(c), "late", "late.example.com", FG_TLS_REJECTED,
		 "Secret web/late: the certificate is not valid before ");
	ASSERT_GT(fg_control_plan(c)->tls->next_check, 0, "a check is due");
	gen = fg_control_tls_gen(c);
	/* Nothing changes in the directory: only the clock. */
	for (i = 0; i < 80; i++) {
		const struct fg_tls_host *h, *l;

		fg_control_process(c);
		h = tls_host(fg_control_plan(c), "soon", "soon.example.com");
		l = tls_host(fg_control_plan(c), "late", "late.example.com");
		if (h && h->state == FG_TLS_REJECTED && l && l->state == FG_TLS_READY)
			break;
		usleep(50 * 1000);
	}
	state_is(fg_control_plan(c), "soon", "soon.example.com", FG_TLS_REJECTED,
		 "Secret web/soon: the certificate expired on ");
	state_is(fg_control_plan(c), "late", "late.example.com", FG_TLS_READY, "");
	ASSERT_GT(fg_control_tls_gen(c), gen, "new store");
	store_serial(c, "late.example.com", serial, sizeof(serial));
	ASSERT_STREQ(serial, late.serial, "late one served");
	store_serial(c, "soon.example.com", serial, sizeof(serial));
	ASSERT_STREQ(serial, "generated", "expired one not served");
out:
	fg_control_free(c);
	if (dp)
		fg_dp_close(dp, true);
	pem64_free(&soon);
	pem64_free(&late);
}

/* N Ingresses, each with its own Secret: the first plan parses N
 * certificates, a full recomputation none, one Secret changed one. */
static void subtest_many(void)
{
	const int n = 1000;
	struct fg_control_opts copts = { .listen = "10.0.0.1:80" };
	struct fg_dataplane *dp = NULL;
	struct fg_control *c = NULL;
	struct pem64 *certs = calloc(n, sizeof(*certs));
	unsigned long long full0, inc0;
	struct fg_tls_store *s;
	char host[64], sec[32], name[32];
	int i, err = 0;
	struct timespec t0, t1;

	snprintf(dir, sizeof(dir), "%s/tls-many", test__tmpdir());
	if (!ASSERT_OK_PTR(certs, "alloc") ||
	    !ASSERT_OK(fg_sh("mkdir -p %s/fleet %s/clusters/%s", dir, dir, CL1), "mkdir"))
		goto out;
	err = base_files();
	for (i = 0; i < n && !err; i++) {
		const char *sans[] = { host, NULL };

		snprintf(host, sizeof(host), "h%d.example.com", i);
		snprintf(sec, sizeof(sec), "s%d", i);
		snprintf(name, sizeof(name), "i%d", i);
		if (!make(&certs[i], host, sans, 0, 0, NULL)) {
			err = -ENOMEM;
			break;
		}
		err = secret_file(sec, &certs[i]);
		if (!err)
			err = ingress(name, "2024-01-01T00:00:00Z", (const char *[]){ host, NULL }, "",
				      sec);
	}
	if (!ASSERT_OK(err, "config files") || !(dp = dp_load()))
		goto out;
	copts.config_dir = dir;
	if (!ASSERT_OK(fg_control_new(&c, dp, &copts), "control"))
		goto out;
	fg_control_set_state(c, true, true);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!ASSERT_OK(fg_control_recompute(c), "first computation"))
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%d Ingresses with TLS: first computation %.1f ms\n", n,
	       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	s = fg_control_tls_store(c);
	if (ASSERT_OK_PTR(s, "store"))
		ASSERT_EQ(fg_tls_store_size(s), (size_t)n, "every host in the store");
	fg_tls_store_put(s);
	/* Every Secret is parsed once; the count is in the cache, reached
	 * through the plan's certificates: each host has its own. */
	for (i = 0; i < n; i += n / 10) {
		snprintf(host, sizeof(host), "h%d.example.com", i);
		snprintf(name, sizeof(name), "i%d", i);
		ASSERT_TRUE(state_is(fg_control_plan(c), name, host, FG_TLS_READY, ""), host);
	}
	{
		struct fg_tls_cert *before = fg_tls_cert_get(fg_control_plan(c)->tls->hosts[1].cert);

		/* A new Ingress: a full computation, the same certificates. */
		full0 = fg_control_stats(c)->full;
		inc0 = fg_control_stats(c)->incremental;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (ASSERT_OK(ingress("extra", "2024-01-02T00:00:00Z",
				      (const char *[]){ "extra.example.com", NULL }, "", "-"), "extra") &&
		    ASSERT_TRUE(settle(c, full0, inc0), "recomputed")) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			printf("full recomputation: %.1f ms\n",
			       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
			ASSERT_GT(fg_control_stats(c)->full, full0, "full");
			ASSERT_TRUE(fg_control_plan(c)->tls->hosts[1].cert == before,
				    "not reparsed: the same certificate object");
		}
		fg_tls_cert_put(before);
	}
	/* One Secret edited: TLS only. */
	full0 = fg_control_stats(c)->full;
	inc0 = fg_control_stats(c)->incremental;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (ASSERT_OK(secret_file("s3", &certs[4]), "s3 gets h4's certificate") &&
	    ASSERT_TRUE(settle(c, full0, inc0), "recomputed")) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("one Secret changed: %.1f ms\n",
		       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
		ASSERT_EQ(fg_control_stats(c)->full, full0, "no full computation");
		state_is(fg_control_plan(c), "i3", "h3.example.com", FG_TLS_NOT_COVERED,
			 "the certificate of Secret web/s3 does not cover h3.example.com");
	}
out:
	fg_control_free(c);
	if (dp)
		fg_dp_close(dp, true);
	for (i = 0; certs && i < n; i++)
		pem64_free(&certs[i]);
	free(certs);
}

/* The cache directly: hits by object, then by content; misses count. */
static void subtest_cache(void)
{
	static const char *const sans[] = { "c.example.com", NULL };
	struct fg_tls_cache *cache = NULL;
	struct pem64 k = {};
	struct fg_plan plan = {};
	struct fg_ingress_status st = { .ns = "web", .name = "i", .accepted = true };
	json_t *fleet = NULL, *ing, *sec, *sec2;
	char *ing_s = NULL;

	if (!make(&k, "c.example.com", sans, 0, 0, NULL) ||
	    !ASSERT_OK(fg_tls_cache_new(&cache), "cache"))
		goto out;
	ing = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:[{s:[s], s:s}]}}", "apiVersion",
			"networking.k8s.io/v1", "kind", "Ingress", "metadata", "name", "i",
			"namespace", "web", "spec", "tls", "hosts", "c.example.com", "secretName", "s");
	sec = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
			"Secret", "metadata", "name", "s", "namespace", "web", "type",
			FG_TLS_SECRET_TYPE, "data", "tls.crt", k.crt, "tls.key", k.key);
	fleet = json_pack("[oo]", ing, sec);
	plan.ingresses = &st;
	plan.n_ingresses = 1;
	if (!ASSERT_OK(fg_tls_plan_compute(fleet, &plan, cache, 0, NULL), "first"))
		goto out;
	ASSERT_EQ(fg_tls_cache_parses(cache), 1, "parsed once");
	ASSERT_STREQ(fg_tls_state_name(plan.tls->hosts[0].state), "Ready", "ready");
	ASSERT_OK(fg_tls_plan_compute(fleet, &plan, cache, 0, NULL), "same objects");
	ASSERT_EQ(fg_tls_cache_parses(cache), 1, "hit by object");
	/* A copy (a relist, a file rewritten): hit by content. */
	sec2 = json_deep_copy(sec);
	json_array_set_new(fleet, 1, sec2);
	ASSERT_OK(fg_tls_plan_compute(fleet, &plan, cache, 0, NULL), "copy");
	ASSERT_EQ(fg_tls_cache_parses(cache), 1, "hit by content");
	/* Objects are never edited in place: a change is a new object. */
	sec2 = json_deep_copy(sec2);
	json_object_set_new(json_object_get(sec2, "data"), "tls.key", json_string("eA=="));
	json_array_set_new(fleet, 1, sec2);
	ASSERT_OK(fg_tls_plan_compute(fleet, &plan, cache, 0, NULL), "changed");
	ASSERT_EQ(fg_tls_cache_parses(cache), 2, "parsed again");
	ASSERT_STREQ(fg_tls_state_name(plan.tls->hosts[0].state), "Rejected", "bad key");
	ASSERT_STREQ(plan.tls->hosts[0].reason, "Secret web/s: tls.key is not PEM (no -----BEGIN line)",
		     "reason");
	/* Without a cache (routes tests, the fuzzer): the same answers. */
	ASSERT_OK(fg_tls_plan_compute(fleet, &plan, NULL, 0, NULL), "no cache");
	ASSERT_STREQ(fg_tls_state_name(plan.tls->hosts[0].state), "Rejected", "no cache: same");
out:
	fg_tls_plan_free(plan.tls);
	json_decref(fleet);
	fg_tls_cache_free(cache);
	free(ing_s);
	pem64_free(&k);
}

FG_TEST(tls_control)
{
	if (test__start_subtest("cache"))
		subtest_cache();
	if (test__start_subtest("config_dir"))
		subtest_config_dir();
	if (test__start_subtest("expiry_timer"))
		subtest_expiry_timer();
	if (test__start_subtest("many"))
		subtest_many();
}
