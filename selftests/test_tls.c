// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * agent/tls.c: certificates from Secrets (and every way a Secret can be
 * wrong), host coverage, the SNI store through real handshakes on loopback
 * with an OpenSSL client, protocol versions and ALPN, rotation with an
 * established connection on the old store, concurrent lookups, upstream
 * client contexts with and without verification, kernel TLS. Certificates
 * are made at test time (EVP, and the openssl CLI / kubectl for what
 * operators hand over).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "kubectl_lib.h"
#include "test_progs.h"
#include "tls.h"

/* ---------- certificates for the tests ---------- */

struct kp {
	X509 *x;
	EVP_PKEY *k;
};

static void kp_free(struct kp *p)
{
	X509_free(p->x);
	EVP_PKEY_free(p->k);
	p->x = NULL;
	p->k = NULL;
}

/* A leaf for names (the first is also the CN), signed by ca (or itself). */
static bool mk(struct kp *out, const struct kp *ca, long nb, long na, const char *key_type,
	       const char *cn, const char *const *sans)
{
	struct fg_tls_gen_opts o = { .cn = cn, .sans = sans, .key_type = key_type,
				     .not_before = nb, .not_after = na };
	char why[FG_TLS_WHY_LEN];

	if (ca) {
		o.issuer = ca->x;
		o.issuer_key = ca->k;
	}
	if (!ASSERT_OK(fg_tls_gen_cert(&o, &out->x, &out->k, why, sizeof(why)), "gen cert")) {
		printf("gen: %s\n", why);
		return false;
	}
	return true;
}

static bool mk_ca(struct kp *out, const char *cn)
{
	struct fg_tls_gen_opts o = { .cn = cn, .ca = true };
	char why[FG_TLS_WHY_LEN];

	return ASSERT_OK(fg_tls_gen_cert(&o, &out->x, &out->k, why, sizeof(why)), "gen CA");
}

static char *pem_x509(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *s = NULL;
	long n;

	if (b && PEM_write_bio_X509(b, x) == 1) {
		n = BIO_get_mem_data(b, &p);
		s = strndup(p, (size_t)n);
	}
	BIO_free(b);
	return s;
}

static char *pem_key(EVP_PKEY *k, const char *pass)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *s = NULL;
	long n;
	int ok;

	if (!b)
		return NULL;
	if (pass)
		ok = PEM_write_bio_PrivateKey(b, k, EVP_aes_256_cbc(), (unsigned char *)pass,
					      (int)strlen(pass), NULL, NULL);
	else
		ok = PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	if (ok == 1) {
		n = BIO_get_mem_data(b, &p);
		s = strndup(p, (size_t)n);
	}
	BIO_free(b);
	return s;
}

static char *concat(const char *a, const char *b)
{
	char *s = malloc(strlen(a) + strlen(b) + 1);

	if (s)
		sprintf(s, "%s%s", a, b);
	return s;
}

static char *b64(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
	return out;
}

/* A Secret as `kubectl create secret tls` writes it (data, base64). */
static json_t *secret_of(const char *type, const char *crt, const char *key)
{
	json_t *s = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{}}", "apiVersion", "v1", "kind",
			      "Secret", "metadata", "name", "site", "namespace", "web", "data");
	json_t *data = json_object_get(s, "data");
	char *c = crt ? b64(crt) : NULL, *k = key ? b64(key) : NULL;

	if (type)
		json_object_set_new(s, "type", json_string(type));
	if (c)
		json_object_set_new(data, "tls.crt", json_string(c));
	if (k)
		json_object_set_new(data, "tls.key", json_string(k));
	free(c);
	free(k);
	return s;
}

static struct fg_tls_cert *cert_of(const struct kp *p, const char *name)
{
	char *crt = pem_x509(p->x), *key = pem_key(p->k, NULL), why[FG_TLS_WHY_LEN];
	struct fg_tls_cert *c = NULL;

	if (crt && key &&
	    !ASSERT_OK(fg_tls_cert_from_pem(crt, strlen(crt), key, strlen(key), name, &c, why,
					    sizeof(why)), "cert from PEM"))
		printf("%s: %s\n", name, why);
	free(crt);
	free(key);
	return c;
}

/* ---------- loopback connections ---------- */

struct conn {
	SSL *srv, *cli;
	int fds[2];
};

static int tcp_pair(int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), s = -1;

	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &al) ||
	    connect(c, (struct sockaddr *)&a, sizeof(a)) || (s = accept(l, NULL, NULL)) < 0) {
		int err = -errno;

		if (l >= 0)
			close(l);
		if (c >= 0)
			close(c);
		return err;
	}
	close(l);
	fcntl(s, F_SETFL, O_NONBLOCK);
	fcntl(c, F_SETFL, O_NONBLOCK);
	fds[0] = s;
	fds[1] = c;
	return 0;
}

static bool step(SSL *ssl, bool *done, bool *failed)
{
	int r, e;

	if (*done || *failed)
		return true;
	r = SSL_do_handshake(ssl);
	if (r == 1) {
		*done = true;
		return true;
	}
	e = SSL_get_error(ssl, r);
	if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
		*failed = true;
	return true;
}

/* Both ends until both finish or one fails: true when both finished. */
static bool pump(struct conn *c)
{
	bool sd = false, cd = false, sf = false, cf = false;
	int i;

	for (i = 0; i < 3000 && !(sd && cd) && !sf && !cf; i++) {
		struct pollfd p[2] = { { .fd = c->fds[0], .events = POLLIN },
				       { .fd = c->fds[1], .events = POLLIN } };

		step(c->srv, &sd, &sf);
		step(c->cli, &cd, &cf);
		if (!(sd && cd) && !sf && !cf)
			poll(p, 2, 5);
	}
	/* Let the side that did not fail see the other's alert. */
	for (i = 0; i < 20 && (sf || cf) && !(sd && cd); i++) {
		step(c->srv, &sd, &sf);
		step(c->cli, &cd, &cf);
		usleep(1000);
	}
	ERR_clear_error();
	return sd && cd && !sf && !cf;
}

static void conn_close(struct conn *c)
{
	SSL_free(c->srv);
	SSL_free(c->cli);
	if (c->fds[0] >= 0)
		close(c->fds[0]);
	if (c->fds[1] >= 0)
		close(c->fds[1]);
	memset(c, 0, sizeof(*c));
	c->fds[0] = c->fds[1] = -1;
}

/* A handshake from an OpenSSL client (cctx) sending sni to a server SSL
 * made from store. Returns whether it completed. */
static bool connect_to(struct conn *c, struct fg_tls_store *store, SSL_CTX *cctx, const char *sni)
{
	memset(c, 0, sizeof(*c));
	c->fds[0] = c->fds[1] = -1;
	if (!ASSERT_OK(tcp_pair(c->fds), "loopback pair"))
		return false;
	c->srv = fg_tls_new_server_ssl(store);
	c->cli = SSL_new(cctx);
	if (!ASSERT_OK_PTR(c->srv, "server SSL") || !ASSERT_OK_PTR(c->cli, "client SSL"))
		return false;
	if (sni)
		SSL_set_tlsext_host_name(c->cli, sni);
	SSL_set_fd(c->srv, c->fds[0]);
	SSL_set_fd(c->cli, c->fds[1]);
	SSL_set_connect_state(c->cli);
	return pump(c);
}

static bool xfer(SSL *from, SSL *to, const char *msg)
{
	size_t n = strlen(msg), got = 0;
	char buf[256];
	int i, r;

	if (SSL_write(from, msg, (int)n) != (int)n)
		return false;
	for (i = 0; i < 1000 && got < n; i++) {
		r = SSL_read(to, buf + got, (int)(sizeof(buf) - got));
		if (r > 0)
			got += (size_t)r;
		else if (SSL_get_error(to, r) == SSL_ERROR_WANT_READ)
			usleep(1000);
		else
			break;
	}
	ERR_clear_error();
	return got == n && !memcmp(buf, msg, n);
}

/* The certificate the client got is that of c. */
static bool served(const struct conn *cn, const struct fg_tls_cert *c)
{
	X509 *peer = SSL_get1_peer_certificate(cn->cli);
	bool same = peer && !X509_cmp(peer, fg_tls_cert_x509(c));

	X509_free(peer);
	return same;
}

static SSL_CTX *client_ctx(int min, int max)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (min) {
		/* Old protocols are off on Debian's clients too: level 0 so
		 * that it is the server that refuses them. */
		SSL_CTX_set_security_level(ctx, 0);
		SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
		SSL_CTX_set_min_proto_version(ctx, min);
		SSL_CTX_set_max_proto_version(ctx, max);
	}
	return ctx;
}

/* ---------- subtests ---------- */

static void subtest_b64(void)
{
	static const struct {
		const char *in, *out;
		int err;
	} cases[] = {
		{ "", "", 0 },
		{ "Zg==", "f", 0 },
		{ "Zm8=", "fo", 0 },
		{ "Zm9v", "foo", 0 },
		{ "Zm9v\nYmFy\n", "foobar", 0 },
		{ "Zm9", NULL, -EINVAL },
		{ "Zm=v", NULL, -EINVAL },
		{ "Zm9v!!!!", NULL, -EINVAL },
		{ "====", NULL, -EINVAL },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char *out = NULL;
		size_t n = 0;
		int err = fg_b64_decode(cases[i].in, strlen(cases[i].in), &out, &n);

		if (!ASSERT_EQ(err, cases[i].err, cases[i].in))
			continue;
		if (!err)
			ASSERT_MEMEQ(out, n, cases[i].out, strlen(cases[i].out), cases[i].in);
		free(out);
	}
}

/* Every way a Secret can be wrong, and the reason it gets. */
static void subtest_bad_secrets(void)
{
	static const char *const sans[] = { "a.example.com", NULL };
	struct kp good = {}, other = {}, old = {}, young = {}, weak = {};
	char *crt = NULL, *key = NULL, *okey = NULL, *enc = NULL, *ocrt = NULL, *oldc = NULL,
	     *oldk = NULL, *youngc = NULL, *youngk = NULL, *weakc = NULL, *weakk = NULL;
	char *chain = NULL;
	struct fg_tls_gen_opts wo = { .cn = "a.example.com", .key_type = "RSA", .rsa_bits = 1024 };
	char why[FG_TLS_WHY_LEN];
	size_t i;

	if (!mk(&good, NULL, 0, 0, NULL, "a.example.com", sans) ||
	    !mk(&other, NULL, 0, 0, NULL, "a.example.com", sans) ||
	    !mk(&old, NULL, -30L * 86400, -86400, NULL, "a.example.com", sans) ||
	    !mk(&young, NULL, 86400, 30L * 86400, NULL, "a.example.com", sans) ||
	    !ASSERT_OK(fg_tls_gen_cert(&wo, &weak.x, &weak.k, why, sizeof(why)), "weak"))
		goto out;
	crt = pem_x509(good.x);
	key = pem_key(good.k, NULL);
	okey = pem_key(other.k, NULL);
	ocrt = pem_x509(other.x);
	enc = pem_key(good.k, "secret");
	oldc = pem_x509(old.x);
	oldk = pem_key(old.k, NULL);
	youngc = pem_x509(young.x);
	youngk = pem_key(young.k, NULL);
	weakc = pem_x509(weak.x);
	weakk = pem_key(weak.k, NULL);
	chain = crt ? concat(crt, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
				  "-----END CERTIFICATE-----\n") : NULL;
	if (!ASSERT_TRUE(crt && key && okey && ocrt && enc && oldc && oldk && youngc && youngk &&
			 weakc && weakk && chain, "PEM"))
		goto out;

	{
		const char *garbled = "-----BEGIN CERTIFICATE-----\nTUlJQgo=\n-----END CERTIFICATE-----\n";
		struct {
			const char *name;
			json_t *secret;
			int err;
			const char *reason;
		} cases[] = {
			{ "opaque", secret_of("Opaque", crt, key), -EINVAL,
			  "type is Opaque, not kubernetes.io/tls" },
			{ "no type", secret_of(NULL, crt, key), -EINVAL,
			  "type is not set (Opaque), not kubernetes.io/tls" },
			{ "no tls.crt", secret_of(FG_TLS_SECRET_TYPE, NULL, key), -ENOENT,
			  "no tls.crt in data or stringData" },
			{ "no tls.key", secret_of(FG_TLS_SECRET_TYPE, crt, NULL), -ENOENT,
			  "no tls.key in data or stringData" },
			{ "not base64", secret_of(FG_TLS_SECRET_TYPE, crt, key), -EINVAL,
			  "tls.crt in data is not valid base64" },
			{ "not PEM", secret_of(FG_TLS_SECRET_TYPE, "just some text\n", key), -EINVAL,
			  "tls.crt is not PEM (no -----BEGIN line)" },
			{ "key as crt", secret_of(FG_TLS_SECRET_TYPE, key, key), -EINVAL,
			  "tls.crt has no PEM CERTIFICATE block" },
			{ "garbled crt", secret_of(FG_TLS_SECRET_TYPE, garbled, key), -EINVAL,
			  "tls.crt: the certificate cannot be parsed: " },
			{ "garbled chain", secret_of(FG_TLS_SECRET_TYPE, chain, key), -EINVAL,
			  "tls.crt: chain certificate 1 cannot be parsed: " },
			{ "crt as key", secret_of(FG_TLS_SECRET_TYPE, crt, crt), -EINVAL,
			  "tls.key has no PEM private key block" },
			{ "key not PEM", secret_of(FG_TLS_SECRET_TYPE, crt, "abc"), -EINVAL,
			  "tls.key is not PEM (no -----BEGIN line)" },
			{ "mismatch", secret_of(FG_TLS_SECRET_TYPE, crt, okey), -EKEYREJECTED,
			  "tls.key does not match the certificate in tls.crt" },
			{ "encrypted key", secret_of(FG_TLS_SECRET_TYPE, crt, enc), -EINVAL,
			  "tls.key is encrypted (fleetgate takes unencrypted keys only)" },
			{ "weak key", secret_of(FG_TLS_SECRET_TYPE, weakc, weakk), -EKEYREJECTED,
			  "OpenSSL refuses the certificate in tls.crt: ee key too small" },
		};

		/* base64 that is not: replace the value. */
		json_object_set_new(json_object_get(cases[4].secret, "data"), "tls.crt",
				    json_string("not*base64"));
		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct fg_tls_cert *c = NULL;
			int err;

			why[0] = '\0';
			err = fg_tls_cert_from_secret(cases[i].secret, &c, why, sizeof(why));
			printf("%-14s %d: %s\n", cases[i].name, err, why);
			ASSERT_EQ(err, cases[i].err, cases[i].name);
			if (!ASSERT_TRUE(!strncmp(why, cases[i].reason, strlen(cases[i].reason)),
					 cases[i].name))
				printf("%s: got '%s', want '%s...'\n", cases[i].name, why,
				       cases[i].reason);
			if (!err)
				fg_tls_cert_put(c);
			json_decref(cases[i].secret);
		}
	}

	/* Validity: parsed fine, refused by the time check. */
	{
		struct {
			const char *name, *crt, *key, *reason;
		} t[] = {
			{ "expired", oldc, oldk, "the certificate expired on " },
			{ "not yet valid", youngc, youngk, "the certificate is not valid before " },
		};

		for (i = 0; i < 2; i++) {
			json_t *s = secret_of(FG_TLS_SECRET_TYPE, t[i].crt, t[i].key);
			struct fg_tls_cert *c = NULL;

			if (ASSERT_OK(fg_tls_cert_from_secret(s, &c, why, sizeof(why)), t[i].name)) {
				ASSERT_EQ(fg_tls_cert_check_time(c, time(NULL), why, sizeof(why)),
					  -EKEYEXPIRED, t[i].name);
				if (!ASSERT_TRUE(!strncmp(why, t[i].reason, strlen(t[i].reason)),
						 t[i].name))
					printf("%s: got '%s'\n", t[i].name, why);
				fg_tls_cert_put(c);
			}
			json_decref(s);
		}
	}

	/* The good ones: data, stringData, and stringData over a bad data
	 * value (Kubernetes merges stringData over data). */
	{
		json_t *s = secret_of(FG_TLS_SECRET_TYPE, crt, key);
		struct fg_tls_cert *c = NULL;

		if (ASSERT_OK(fg_tls_cert_from_secret(s, &c, why, sizeof(why)), "data")) {
			ASSERT_STREQ(fg_tls_cert_name(c), "web/site", "name");
			ASSERT_STREQ(fg_tls_cert_subject(c), "CN=a.example.com", "subject");
			ASSERT_OK(fg_tls_cert_check_time(c, time(NULL), why, sizeof(why)), "valid now");
			ASSERT_FALSE(fg_tls_cert_generated(c), "not generated");
			fg_tls_cert_put(c);
		}
		json_object_set_new(json_object_get(s, "data"), "tls.crt", json_string("***"));
		json_object_set_new(s, "stringData", json_pack("{s:s, s:s}", "tls.crt", crt,
							      "tls.key", key));
		c = NULL;
		if (ASSERT_OK(fg_tls_cert_from_secret(s, &c, why, sizeof(why)), "stringData"))
			fg_tls_cert_put(c);
		json_decref(s);
	}
out:
	kp_free(&good);
	kp_free(&other);
	kp_free(&old);
	kp_free(&young);
	kp_free(&weak);
	free(crt);
	free(key);
	free(okey);
	free(ocrt);
	free(enc);
	free(oldc);
	free(oldk);
	free(youngc);
	free(youngk);
	free(weakc);
	free(weakk);
	free(chain);
}

static void subtest_covers(void)
{
	static const char *const sans[] = { "a.example.com", "*.wild.example.com", NULL };
	struct kp san = {}, cn = {};
	struct fg_tls_cert *c1 = NULL, *c2 = NULL;
	static const struct {
		const char *host;
		bool san, cn;
	} cases[] = {
		{ "a.example.com", true, false },
		{ "A.Example.COM", true, false },
		{ "b.example.com", false, false },
		{ "x.wild.example.com", true, false },
		{ "x.y.wild.example.com", false, false },
		{ "wild.example.com", false, false },
		{ "*.wild.example.com", true, false },
		{ "*.example.com", false, false },
		{ "cn.example.com", false, true }, /* SANs present: the CN does not count */
		{ "*.cnwild.example.com", false, true },
		{ "", false, false },
	};
	size_t i;

	if (!mk(&san, NULL, 0, 0, NULL, "cn.example.com", sans) ||
	    !mk(&cn, NULL, 0, 0, NULL, "cn.example.com", NULL))
		goto out;
	c1 = cert_of(&san, "san");
	kp_free(&cn);
	{
		struct fg_tls_gen_opts o = { .cn = "*.cnwild.example.com" };
		char why[FG_TLS_WHY_LEN];

		if (!ASSERT_OK(fg_tls_gen_cert(&o, &cn.x, &cn.k, why, sizeof(why)), "cn wildcard"))
			goto out;
	}
	c2 = cert_of(&cn, "cn");
	if (!c1 || !c2)
		goto out;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ASSERT_EQ(fg_tls_cert_covers(c1, cases[i].host), cases[i].san, cases[i].host);
		if (!strcmp(cases[i].host, "cn.example.com"))
			continue;
		ASSERT_EQ(fg_tls_cert_covers(c2, cases[i].host), cases[i].cn, cases[i].host);
	}
	/* Only a CN: it counts (as OpenSSL's and ingress-nginx's checks). */
	ASSERT_TRUE(fg_tls_cert_covers(c2, "x.cnwild.example.com"), "CN wildcard matches a name");
out:
	fg_tls_cert_put(c1);
	fg_tls_cert_put(c2);
	kp_free(&san);
	kp_free(&cn);
}

/* Exact, wildcard and unknown names through real handshakes. */
static void subtest_sni(void)
{
	static const char *const a_sans[] = { "a.example.com", NULL };
	static const char *const w_sans[] = { "*.example.com", NULL };
	struct kp a = {}, w = {};
	struct fg_tls_cert *ca = NULL, *cw = NULL, *fake = NULL;
	struct fg_tls_store *store = NULL;
	SSL_CTX *cctx = client_ctx(0, 0);
	long stores0 = fg_tls_live_stores();
	char why[FG_TLS_WHY_LEN];
	static const struct {
		const char *sni;
		int want; /* 0 a, 1 wildcard, 2 default */
	} cases[] = {
		{ "a.example.com", 0 },
		{ "A.EXAMPLE.COM", 0 },
		{ "b.example.com", 1 },
		{ "x.b.example.com", 2 },
		{ "example.com", 2 },
		{ "unknown.test", 2 },
		{ NULL, 2 },
	};
	size_t i;

	if (!ASSERT_OK_PTR(cctx, "client ctx") || !mk(&a, NULL, 0, 0, NULL, "a.example.com", a_sans) ||
	    !mk(&w, NULL, 0, 0, "RSA", "*.example.com", w_sans))
		goto out;
	ca = cert_of(&a, "web/a");
	cw = cert_of(&w, "web/wild");
	if (!ca || !cw || !ASSERT_OK(fg_tls_cert_self_signed(&fake, why, sizeof(why)), "fake"))
		goto out;
	ASSERT_TRUE(fg_tls_cert_generated(fake), "generated");
	ASSERT_TRUE(fg_tls_cert_covers(fake, "fleetgate.invalid"), "fake SAN");
	{
		struct fg_tls_store_entry e[] = {
			{ "a.example.com", ca }, { "*.example.com", cw }, { "A.example.com", cw },
		};

		if (!ASSERT_OK(fg_tls_store_new(e, 3, fake, 7, &store), "store"))
			goto out;
	}
	ASSERT_EQ(fg_tls_store_generation(store), 7, "generation");
	ASSERT_EQ(fg_tls_store_size(store), 2, "duplicate host dropped");
	ASSERT_TRUE(fg_tls_store_find(store, "a.example.com.") == ca, "trailing dot");
	ASSERT_TRUE(fg_tls_store_find(store, "zzz") == NULL, "find: no default");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fg_tls_cert *want = cases[i].want == 0 ? ca : cases[i].want == 1 ? cw : fake;
		const char *name = cases[i].sni ? cases[i].sni : "(no SNI)";
		struct conn c;

		ASSERT_TRUE(fg_tls_store_lookup(store, cases[i].sni) == want, name);
		if (ASSERT_TRUE(connect_to(&c, store, cctx, cases[i].sni), name)) {
			ASSERT_TRUE(served(&c, want), name);
			ASSERT_TRUE(fg_tls_ssl_cert(c.srv) == want, name);
			ASSERT_TRUE(fg_tls_ssl_store(c.srv) == store, name);
			ASSERT_EQ(SSL_version(c.srv), TLS1_3_VERSION, name);
			ASSERT_TRUE(xfer(c.cli, c.srv, "GET / HTTP/1.1\r\n\r\n"), name);
		}
		conn_close(&c);
	}
	/* A HelloRetryRequest (the client's key share is for a group the
	 * server lacks): the certificate is chosen again from the second
	 * ClientHello, the same one. */
	{
		SSL_CTX *hrr = client_ctx(0, 0);
		struct conn c;

		if (ASSERT_TRUE(SSL_CTX_set1_groups_list(hrr, "X448:P-256") == 1, "groups") &&
		    ASSERT_TRUE(connect_to(&c, store, hrr, "a.example.com"), "HRR handshake")) {
			ASSERT_TRUE(served(&c, ca), "HRR: a.example.com");
			ASSERT_EQ(SSL_get_negotiated_group(c.srv), NID_X9_62_prime256v1,
				  "P-256 after the retry");
		}
		conn_close(&c);
		SSL_CTX_free(hrr);
	}
out:
	fg_tls_store_put(store);
	ASSERT_EQ(fg_tls_live_stores(), stores0, "stores released with their connections");
	fg_tls_cert_put(ca);
	fg_tls_cert_put(cw);
	fg_tls_cert_put(fake);
	kp_free(&a);
	kp_free(&w);
	SSL_CTX_free(cctx);
}

static struct fg_tls_store *one_store(struct fg_tls_cert *c, const char *host, unsigned long gen)
{
	struct fg_tls_store_entry e = { host, c };
	struct fg_tls_store *s = NULL;

	ASSERT_OK(fg_tls_store_new(&e, 1, c, gen, &s), "store");
	return s;
}

/* TLS 1.0 and 1.1 refused, 1.2 with a forward-secret AEAD the server
 * chose, 1.3; no compression, no renegotiation. */
static void subtest_protocols(void)
{
	static const char *const sans[] = { "p.example.com", NULL };
	struct fg_tls_store *store = NULL;
	struct fg_tls_cert *c = NULL;
	struct kp k = {};
	static const struct {
		const char *name;
		int min, max;
		bool ok;
		int version;
	} cases[] = {
		{ "TLS 1.0", TLS1_VERSION, TLS1_VERSION, false, 0 },
		{ "TLS 1.1", TLS1_1_VERSION, TLS1_1_VERSION, false, 0 },
		{ "TLS 1.0-1.1", TLS1_VERSION, TLS1_1_VERSION, false, 0 },
		{ "TLS 1.2", TLS1_2_VERSION, TLS1_2_VERSION, true, TLS1_2_VERSION },
		{ "TLS 1.0-1.3", TLS1_VERSION, TLS1_3_VERSION, true, TLS1_3_VERSION },
	};
	size_t i;

	if (!mk(&k, NULL, 0, 0, NULL, "p.example.com", sans) || !(c = cert_of(&k, "p")) ||
	    !(store = one_store(c, "p.example.com", 1)))
		goto out;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		SSL_CTX *cctx = client_ctx(cases[i].min, cases[i].max);
		struct conn cn;
		bool ok = connect_to(&cn, store, cctx, "p.example.com");

		ASSERT_EQ(ok, cases[i].ok, cases[i].name);
		if (ok) {
			ASSERT_EQ(SSL_version(cn.srv), cases[i].version, cases[i].name);
			ASSERT_TRUE(SSL_get_current_compression(cn.srv) == NULL, "no compression");
		}
		conn_close(&cn);
		SSL_CTX_free(cctx);
	}
	/* TLS 1.2: the client prefers CBC and ChaCha, the server's order
	 * (AES-128-GCM first) wins; CBC is not offered by the server. */
	{
		SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
		struct conn cn;

		SSL_CTX_set_cipher_list(cctx, "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-CHACHA20-POLY1305:"
					      "ECDHE-ECDSA-AES128-GCM-SHA256");
		if (ASSERT_TRUE(connect_to(&cn, store, cctx, "p.example.com"), "TLS 1.2 ciphers"))
			ASSERT_STREQ(SSL_get_cipher_name(cn.srv), "ECDHE-ECDSA-AES128-GCM-SHA256",
				     "server's preference");
		conn_close(&cn);
		SSL_CTX_set_cipher_list(cctx, "ECDHE-ECDSA-AES128-SHA:AES128-SHA");
		ASSERT_FALSE(connect_to(&cn, store, cctx, "p.example.com"), "CBC refused");
		conn_close(&cn);
		/* Renegotiation asked by the client: refused. */
		SSL_CTX_set_cipher_list(cctx, "DEFAULT");
		if (ASSERT_TRUE(connect_to(&cn, store, cctx, "p.example.com"), "TLS 1.2 again")) {
			bool renegotiated = false;
			char buf[8];
			int j;

			ASSERT_TRUE(SSL_get_options(cn.srv) & SSL_OP_NO_RENEGOTIATION, "option");
			if (ASSERT_EQ(SSL_renegotiate(cn.cli), 1, "client asks")) {
				for (j = 0; j < 50 && !renegotiated; j++) {
					SSL_read(cn.srv, buf, sizeof(buf));
					if (SSL_do_handshake(cn.cli) == 1 &&
					    !SSL_renegotiate_pending(cn.cli))
						renegotiated = true;
					usleep(1000);
				}
				ASSERT_FALSE(renegotiated, "no renegotiation");
				ASSERT_EQ(SSL_total_renegotiations(cn.srv), 0, "server renegotiations");
			}
			ERR_clear_error();
		}
		conn_close(&cn);
		SSL_CTX_free(cctx);
	}
out:
	fg_tls_store_put(store);
	fg_tls_cert_put(c);
	kp_free(&k);
}

static bool alpn_case(struct fg_tls_store *store, const unsigned char *offer, unsigned int n,
		      const char *want, const char *name)
{
	SSL_CTX *cctx = client_ctx(0, 0);
	const unsigned char *sel = NULL;
	unsigned int sl = 0;
	struct conn cn;
	bool ok;

	if (offer)
		SSL_CTX_set_alpn_protos(cctx, offer, n);
	ok = connect_to(&cn, store, cctx, "p.example.com");
	if (want && ASSERT_TRUE(ok, name)) {
		SSL_get0_alpn_selected(cn.cli, &sel, &sl);
		if (!*want)
			ASSERT_EQ(sl, 0, name);
		else
			ASSERT_MEMEQ(sel, sl, want, strlen(want), name);
	}
	if (!want)
		ASSERT_FALSE(ok, name);
	conn_close(&cn);
	SSL_CTX_free(cctx);
	return ok;
}

static void subtest_alpn(void)
{
	static const char *const sans[] = { "p.example.com", NULL };
	static const unsigned char h2_h1[] = "\x02h2\x08http/1.1";
	static const unsigned char h1_h2[] = "\x08http/1.1\x02h2";
	static const unsigned char h2[] = "\x02h2";
	struct fg_tls_store *store = NULL;
	struct fg_tls_cert *c = NULL;
	struct kp k = {};

	if (!mk(&k, NULL, 0, 0, NULL, "p.example.com", sans) || !(c = cert_of(&k, "p")) ||
	    !(store = one_store(c, "p.example.com", 1)))
		goto out;
	alpn_case(store, h2_h1, sizeof(h2_h1) - 1, "http/1.1", "h2,http/1.1 -> http/1.1");
	alpn_case(store, NULL, 0, "", "no ALPN -> none");
	alpn_case(store, h2, sizeof(h2) - 1, NULL, "h2 only -> no_application_protocol");
	/* HTTP/2 later: the server's order decides. */
	if (ASSERT_OK(fg_tls_set_alpn("h2,http/1.1"), "set ALPN")) {
		alpn_case(store, h1_h2, sizeof(h1_h2) - 1, "h2", "server prefers h2");
		alpn_case(store, h2, sizeof(h2) - 1, "h2", "h2 only");
	}
	ASSERT_ERR(fg_tls_set_alpn("h2,"), "bad list");
	ASSERT_ERR(fg_tls_set_alpn(""), "empty list");
	ASSERT_OK(fg_tls_set_alpn("http/1.1"), "back to http/1.1");
	alpn_case(store, h1_h2, sizeof(h1_h2) - 1, "http/1.1", "http/1.1 again");
out:
	fg_tls_store_put(store);
	fg_tls_cert_put(c);
	kp_free(&k);
}

/* A new store for new handshakes; a connection made on the old one keeps
 * working after the old store is dropped by its publisher, and resumes on
 * the new one with its ticket. */
static void subtest_rotation(void)
{
	static const char *const sans[] = { "r.example.com", NULL };
	struct fg_tls_store *s1 = NULL, *s2 = NULL;
	struct fg_tls_cert *c1 = NULL, *c2 = NULL;
	SSL_CTX *cctx = client_ctx(0, 0);
	long stores0 = fg_tls_live_stores(), certs0 = fg_tls_live_certs();
	SSL_SESSION *sess = NULL;
	struct kp k1 = {}, k2 = {};
	struct conn old = { .fds = { -1, -1 } }, neu = { .fds = { -1, -1 } };

	if (!mk(&k1, NULL, 0, 0, NULL, "r.example.com", sans) ||
	    !mk(&k2, NULL, 0, 0, NULL, "r.example.com", sans) || !(c1 = cert_of(&k1, "v1")) ||
	    !(c2 = cert_of(&k2, "v2")) || !(s1 = one_store(c1, "r.example.com", 1)))
		goto out;
	/* TLS 1.2 for the session: its ticket comes with the handshake. */
	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	if (!ASSERT_TRUE(connect_to(&old, s1, cctx, "r.example.com"), "old handshake") ||
	    !ASSERT_TRUE(served(&old, c1), "old cert"))
		goto out;
	sess = SSL_get1_session(old.cli);
	ASSERT_TRUE(sess && SSL_SESSION_has_ticket(sess), "a session ticket");
	s2 = one_store(c2, "r.example.com", 2);
	if (!s2)
		goto out;
	ASSERT_FALSE(fg_tls_store_same(s1, s2), "different");
	/* The publisher moves to s2 and drops s1. */
	fg_tls_store_put(s1);
	s1 = NULL;
	if (ASSERT_TRUE(connect_to(&neu, s2, cctx, "r.example.com"), "new handshake"))
		ASSERT_TRUE(served(&neu, c2), "new cert");
	conn_close(&neu);
	ASSERT_TRUE(xfer(old.cli, old.srv, "still here"), "old connection, client to server");
	ASSERT_TRUE(xfer(old.srv, old.cli, "and back"), "old connection, server to client");
	/* The ticket issued under s1 resumes under s2 (one key per process). */
	{
		struct conn r = { .fds = { -1, -1 } };

		if (ASSERT_OK(tcp_pair(r.fds), "pair")) {
			r.srv = fg_tls_new_server_ssl(s2);
			r.cli = SSL_new(cctx);
			SSL_set_tlsext_host_name(r.cli, "r.example.com");
			SSL_set_session(r.cli, sess);
			SSL_set_fd(r.srv, r.fds[0]);
			SSL_set_fd(r.cli, r.fds[1]);
			SSL_set_connect_state(r.cli);
			if (ASSERT_TRUE(pump(&r), "resumption handshake"))
				ASSERT_TRUE(SSL_session_reused(r.srv), "resumed");
		}
		conn_close(&r);
	}
	ASSERT_EQ(fg_tls_live_stores(), stores0 + 2, "s1 lives while its connection does");
	conn_close(&old);
	ASSERT_EQ(fg_tls_live_stores(), stores0 + 1, "s1 gone with its last connection");
out:
	conn_close(&old);
	SSL_SESSION_free(sess);
	fg_tls_store_put(s1);
	fg_tls_store_put(s2);
	fg_tls_cert_put(c1);
	fg_tls_cert_put(c2);
	kp_free(&k1);
	kp_free(&k2);
	SSL_CTX_free(cctx);
	ASSERT_EQ(fg_tls_live_stores(), stores0, "no store left");
	ASSERT_EQ(fg_tls_live_certs(), certs0, "no certificate left");
}

/* ---------- concurrency ---------- */

#define N_THREADS 4
#define N_HOSTS 64

struct shared {
	pthread_mutex_t lock;
	struct fg_tls_store *cur;  /* the published store */
	struct fg_tls_cert *certs[2];
	bool stop;
	long bad, lookups, ssls;
};

/* Store g maps every host to certs[g % 2]: a lookup that sees a store
 * must see one certificate throughout it. */
static void *reader(void *arg)
{
	struct shared *sh = arg;
	char host[64];
	int i;

	while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
		struct fg_tls_store *s;
		struct fg_tls_cert *want;
		SSL *ssl;

		pthread_mutex_lock(&sh->lock);
		s = fg_tls_store_get(sh->cur);
		pthread_mutex_unlock(&sh->lock);
		want = sh->certs[fg_tls_store_generation(s) % 2];
		for (i = 0; i < N_HOSTS; i++) {
			snprintf(host, sizeof(host), "h%d.example.com", i);
			if (fg_tls_store_lookup(s, host) != want)
				__atomic_add_fetch(&sh->bad, 1, __ATOMIC_RELAXED);
			snprintf(host, sizeof(host), "x.w%d.example.com", i);
			if (fg_tls_store_lookup(s, host) != want)
				__atomic_add_fetch(&sh->bad, 1, __ATOMIC_RELAXED);
		}
		__atomic_add_fetch(&sh->lookups, 2 * N_HOSTS, __ATOMIC_RELAXED);
		ssl = fg_tls_new_server_ssl(s);
		if (ssl) {
			__atomic_add_fetch(&sh->ssls, 1, __ATOMIC_RELAXED);
			SSL_free(ssl);
		}
		fg_tls_store_put(s);
	}
	return NULL;
}

static struct fg_tls_store *many_store(struct shared *sh, unsigned long gen)
{
	struct fg_tls_store_entry e[2 * N_HOSTS];
	char names[2 * N_HOSTS][64];
	struct fg_tls_store *s = NULL;
	int i;

	for (i = 0; i < N_HOSTS; i++) {
		snprintf(names[2 * i], 64, "h%d.example.com", i);
		snprintf(names[2 * i + 1], 64, "*.w%d.example.com", i);
		e[2 * i] = (struct fg_tls_store_entry){ names[2 * i], sh->certs[gen % 2] };
		e[2 * i + 1] = (struct fg_tls_store_entry){ names[2 * i + 1], sh->certs[gen % 2] };
	}
	if (fg_tls_store_new(e, 2 * N_HOSTS, sh->certs[(gen + 1) % 2], gen, &s))
		return NULL;
	return s;
}

static void subtest_concurrent(void)
{
	static const char *const sans[] = { "c.example.com", NULL };
	struct shared sh = { .lock = PTHREAD_MUTEX_INITIALIZER };
	long stores0 = fg_tls_live_stores();
	pthread_t th[N_THREADS];
	struct kp k0 = {}, k1 = {};
	int i, n_th = 0;
	unsigned long g;

	if (!mk(&k0, NULL, 0, 0, NULL, "c.example.com", sans) ||
	    !mk(&k1, NULL, 0, 0, NULL, "c.example.com", sans) ||
	    !(sh.certs[0] = cert_of(&k0, "c0")) || !(sh.certs[1] = cert_of(&k1, "c1")) ||
	    !(sh.cur = many_store(&sh, 1)))
		goto out;
	for (i = 0; i < N_THREADS; i++)
		if (!pthread_create(&th[i], NULL, reader, &sh))
			n_th++;
	ASSERT_EQ(n_th, N_THREADS, "threads");
	/* Publish 200 stores while they read. */
	for (g = 2; g < 202; g++) {
		struct fg_tls_store *s = many_store(&sh, g), *old;

		if (!ASSERT_OK_PTR(s, "new store"))
			break;
		pthread_mutex_lock(&sh.lock);
		old = sh.cur;
		sh.cur = s;
		pthread_mutex_unlock(&sh.lock);
		fg_tls_store_put(old);
		usleep(200);
	}
	__atomic_store_n(&sh.stop, true, __ATOMIC_RELEASE);
	for (i = 0; i < n_th; i++)
		pthread_join(th[i], NULL);
	printf("%ld lookups, %ld SSLs, %ld wrong\n", sh.lookups, sh.ssls, sh.bad);
	ASSERT_EQ(sh.bad, 0, "every lookup saw one store");
	ASSERT_GT(sh.lookups, 0, "lookups ran");
out:
	fg_tls_store_put(sh.cur);
	fg_tls_cert_put(sh.certs[0]);
	fg_tls_cert_put(sh.certs[1]);
	kp_free(&k0);
	kp_free(&k1);
	ASSERT_EQ(fg_tls_live_stores(), stores0, "every store freed");
}

/* ---------- upstream client contexts ---------- */

static bool upstream(struct fg_tls_store *store, SSL_CTX *cctx, const char *sni,
		     const char *verify_host, long *verify_result, char *sni_seen)
{
	struct conn c = { .fds = { -1, -1 } };
	bool ok = false;

	if (!ASSERT_OK(tcp_pair(c.fds), "pair"))
		return false;
	c.srv = fg_tls_new_server_ssl(store);
	c.cli = fg_tls_new_client_ssl(cctx, sni, verify_host);
	if (ASSERT_OK_PTR(c.srv, "server") && ASSERT_OK_PTR(c.cli, "client")) {
		SSL_set_fd(c.srv, c.fds[0]);
		SSL_set_fd(c.cli, c.fds[1]);
		ok = pump(&c);
		*verify_result = SSL_get_verify_result(c.cli);
		snprintf(sni_seen, 256, "%s",
			 SSL_get_servername(c.srv, TLSEXT_NAMETYPE_host_name) ?: "");
		if (ok)
			ok = xfer(c.cli, c.srv, "GET /");
	}
	conn_close(&c);
	return ok;
}

static void subtest_client_ctx(void)
{
	static const char *const sans[] = { "up.web.svc", NULL };
	struct kp ca = {}, other_ca = {}, leaf = {};
	struct fg_tls_cert *lc = NULL;
	struct fg_tls_store *store = NULL;
	SSL_CTX *off = NULL, *on = NULL, *wrong = NULL;
	char *ca_pem = NULL, *other_pem = NULL, *pem = NULL, why[FG_TLS_WHY_LEN], sni[256];
	size_t pem_len = 0;
	json_t *secret = NULL;
	long vr;

	if (!mk_ca(&ca, "Test Upstream CA") || !mk_ca(&other_ca, "Other CA") ||
	    !mk(&leaf, &ca, 0, 0, NULL, "up.web.svc", sans) || !(lc = cert_of(&leaf, "up")) ||
	    !(store = one_store(lc, "up.web.svc", 1)))
		goto out;
	ca_pem = pem_x509(ca.x);
	other_pem = pem_x509(other_ca.x);
	/* ca.crt from a Secret, as proxy-ssl-secret holds it. */
	secret = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:{s:s}}", "apiVersion", "v1", "kind",
			   "Secret", "metadata", "name", "upstream-ca", "namespace", "web", "type",
			   FG_TLS_SECRET_TYPE, "stringData", "ca.crt", ca_pem);
	if (!ASSERT_OK(fg_tls_secret_ca(secret, &pem, &pem_len, why, sizeof(why)), "ca.crt"))
		goto out;
	json_object_del(secret, "stringData");
	{
		char *none = NULL;
		size_t nn = 0;

		ASSERT_EQ(fg_tls_secret_ca(secret, &none, &nn, why, sizeof(why)), -ENOENT,
			  "no ca.crt");
		free(none);
	}
	ASSERT_STREQ(why, "no ca.crt in data or stringData", "no ca.crt reason");
	if (!ASSERT_OK(fg_tls_client_ctx(false, NULL, 0, NULL, &off, why, sizeof(why)), "off") ||
	    !ASSERT_OK(fg_tls_client_ctx(true, pem, pem_len, NULL, &on, why, sizeof(why)), "on") ||
	    !ASSERT_OK(fg_tls_client_ctx(true, other_pem, strlen(other_pem), NULL, &wrong, why,
					 sizeof(why)), "other CA"))
		goto out;
	/* Off (ingress-nginx's default): anything goes, the result says
	 * what a check would have found. */
	ASSERT_TRUE(upstream(store, off, NULL, NULL, &vr, sni), "verify off");
	ASSERT_STREQ(sni, "", "no SNI unless asked");
	ASSERT_TRUE(upstream(store, off, "up.web.svc", NULL, &vr, sni), "verify off, SNI");
	ASSERT_STREQ(sni, "up.web.svc", "SNI sent (proxy-ssl-server-name)");
	/* On, with the Secret's CA. */
	ASSERT_TRUE(upstream(store, on, "up.web.svc", "up.web.svc", &vr, sni), "verify on");
	ASSERT_EQ(vr, X509_V_OK, "chain and name verified");
	ASSERT_FALSE(upstream(store, on, "up.web.svc", "other.web.svc", &vr, sni), "wrong name");
	ASSERT_EQ(vr, X509_V_ERR_HOSTNAME_MISMATCH, "hostname mismatch");
	ASSERT_FALSE(upstream(store, wrong, "up.web.svc", "up.web.svc", &vr, sni), "other CA");
	ASSERT_EQ(vr, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "unknown issuer");
	/* Bad CA bundles. */
	{
		SSL_CTX *x = NULL;

		ASSERT_EQ(fg_tls_client_ctx(true, "garbage", 7, NULL, &x, why, sizeof(why)), -EINVAL,
			  "ca not PEM");
		ASSERT_STREQ(why, "ca.crt is not PEM (no -----BEGIN line)", "reason");
		SSL_CTX_free(x);
	}
	/* A client certificate for mutual TLS. */
	{
		SSL_CTX *m = NULL;

		if (ASSERT_OK(fg_tls_client_ctx(true, pem, pem_len, lc, &m, why, sizeof(why)),
			      "with client cert"))
			ASSERT_TRUE(SSL_CTX_get0_certificate(m) != NULL, "client cert set");
		SSL_CTX_free(m);
	}
out:
	json_decref(secret);
	free(ca_pem);
	free(other_pem);
	free(pem);
	SSL_CTX_free(off);
	SSL_CTX_free(on);
	SSL_CTX_free(wrong);
	fg_tls_store_put(store);
	fg_tls_cert_put(lc);
	kp_free(&ca);
	kp_free(&other_ca);
	kp_free(&leaf);
}

/* PEM files as operators make them with the openssl CLI (RSA, a CA and a
 * chain), and Secrets as kubectl writes them. */
static void subtest_files_and_kubectl(void)
{
	const char *d = test__tmpdir();
	struct fg_tls_cert *c = NULL;
	char why[FG_TLS_WHY_LEN], path[512], kver[128];
	const char *kubectl;

	if (!ASSERT_OK(fg_sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key "
			     "-out ca.crt -subj /CN=ops-ca -days 30 && "
			     "openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr "
			     "-subj /CN=files.example.com && "
			     "printf 'subjectAltName=DNS:files.example.com\\n' > ext && "
			     "openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
			     "-days 30 -extfile ext -out leaf.crt && cat leaf.crt ca.crt > chain.crt",
			     d), "openssl CLI"))
		return;
	snprintf(path, sizeof(path), "%s/chain.crt", d);
	{
		char key[512];

		snprintf(key, sizeof(key), "%s/leaf.key", d);
		if (ASSERT_OK(fg_tls_cert_from_files(path, key, &c, why, sizeof(why)), "files")) {
			ASSERT_TRUE(fg_tls_cert_covers(c, "files.example.com"), "covers");
			ASSERT_STREQ(fg_tls_cert_issuer(c), "CN=ops-ca", "issuer");
			ASSERT_EQ(sk_X509_num(fg_tls_cert_chain(c)), 1, "the CA as chain");
			fg_tls_cert_put(c);
			c = NULL;
		} else {
			printf("files: %s\n", why);
		}
		snprintf(key, sizeof(key), "%s/ca.key", d);
		ASSERT_EQ(fg_tls_cert_from_files(path, key, &c, why, sizeof(why)), -EKEYREJECTED,
			  "wrong key file");
		ASSERT_TRUE(strstr(why, "does not match the certificate in") != NULL, why);
		snprintf(key, sizeof(key), "%s/missing.key", d);
		ASSERT_EQ(fg_tls_cert_from_files(path, key, &c, why, sizeof(why)), -ENOENT,
			  "missing file");
		ASSERT_TRUE(strstr(why, "cannot open") && strstr(why, "No such file"), why);
	}
	kubectl = kubectl_find(kver, sizeof(kver));
	if (!kubectl) {
		printf("no kubectl: the Secret as kubectl writes it is not checked\n");
		return;
	}
	if (!ASSERT_OK(fg_sh("cd %s && %s create secret tls files -n web --cert chain.crt "
			     "--key leaf.key --dry-run=client -o json > secret.json", d, kubectl),
		       "kubectl create secret tls"))
		return;
	snprintf(path, sizeof(path), "%s/secret.json", d);
	{
		json_t *s = json_load_file(path, 0, NULL);

		if (ASSERT_OK_PTR(s, "secret.json") &&
		    ASSERT_OK(fg_tls_cert_from_secret(s, &c, why, sizeof(why)), "kubectl's Secret")) {
			ASSERT_STREQ(fg_tls_cert_name(c), "web/files", "name");
			ASSERT_TRUE(fg_tls_cert_covers(c, "files.example.com"), "covers");
			fg_tls_cert_put(c);
		}
		json_decref(s);
	}
}

/* With sending in the kernel, bytes spliced from a pipe straight into the
 * socket go out as TLS records: the proxy's splice path for bodies. */
static bool splice_body(struct conn *cn)
{
	static const char body[] = "a response body that never passed through OpenSSL";
	size_t n = sizeof(body) - 1, got = 0;
	char buf[128];
	int p[2], i, r;
	bool ok;

	if (pipe(p))
		return false;
	ok = write(p[1], body, n) == (ssize_t)n &&
	     splice(p[0], NULL, cn->fds[0], NULL, n, SPLICE_F_MOVE) == (ssize_t)n;
	close(p[0]);
	close(p[1]);
	for (i = 0; ok && i < 1000 && got < n; i++) {
		r = SSL_read(cn->cli, buf + got, (int)(sizeof(buf) - got));
		if (r > 0)
			got += (size_t)r;
		else if (SSL_get_error(cn->cli, r) == SSL_ERROR_WANT_READ)
			usleep(1000);
		else
			break;
	}
	ERR_clear_error();
	return ok && got == n && !memcmp(buf, body, n);
}

/* Kernel TLS: the probe says why not here; where the kernel has it (the
 * vm-test kernel) handshakes move send (and for TLS 1.2 receive) into
 * it and records still arrive. */
static void subtest_ktls(void)
{
	static const char *const sans[] = { "k.example.com", NULL };
	const struct fg_ktls_caps *caps;
	struct fg_tls_store *store = NULL;
	struct fg_tls_cert *c = NULL;
	char why[FG_TLS_WHY_LEN];
	struct kp k = {};
	int ok, v;

	ok = fg_ktls_probe(why, sizeof(why));
	caps = fg_ktls_caps();
	printf("kTLS probe: %d: %s\n", ok, why);
	ASSERT_TRUE(caps->openssl, "Debian's OpenSSL has kTLS");
	ASSERT_STREQ(why, caps->why, "why");
	if (!ok) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

		ASSERT_EQ(fg_tls_set_ktls(true), -EOPNOTSUPP, "cannot turn it on");
		ASSERT_EQ(fg_tls_ktls_enable(ctx, why, sizeof(why)), -EOPNOTSUPP, "ctx");
		ASSERT_FALSE(SSL_CTX_get_options(ctx) & SSL_OP_ENABLE_KTLS, "ctx option not set");
		SSL_CTX_free(ctx);
		if (!caps->ulp)
			ASSERT_TRUE(strstr(why, "TCP_ULP") != NULL, "the reason names TCP_ULP");
		test__skip("%s", why);
		return;
	}
	if (!mk(&k, NULL, 0, 0, NULL, "k.example.com", sans) || !(c = cert_of(&k, "k")) ||
	    !(store = one_store(c, "k.example.com", 1)) ||
	    !ASSERT_OK(fg_tls_set_ktls(true), "kTLS on"))
		goto out;
	for (v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
		SSL_CTX *cctx = client_ctx(0, 0);
		bool tx = false, rx = false;
		struct conn cn;

		SSL_CTX_set_min_proto_version(cctx, v);
		SSL_CTX_set_max_proto_version(cctx, v);
		/* AES-GCM: what every kTLS kernel has. */
		SSL_CTX_set_cipher_list(cctx, "ECDHE-ECDSA-AES128-GCM-SHA256");
		SSL_CTX_set_ciphersuites(cctx, "TLS_AES_128_GCM_SHA256");
		if (ASSERT_TRUE(connect_to(&cn, store, cctx, "k.example.com"), "handshake")) {
			fg_tls_ssl_ktls(cn.srv, &tx, &rx);
			printf("TLS 1.%d: kernel send %d, receive %d\n", v - TLS1_VERSION, tx, rx);
			ASSERT_TRUE(tx, "send in the kernel");
			ASSERT_EQ(rx, v == TLS1_2_VERSION ? caps->rx12 : caps->rx13,
				  "receive as probed");
			ASSERT_TRUE(xfer(cn.srv, cn.cli, "HTTP/1.1 200 OK\r\n\r\n"), "kernel sends");
			ASSERT_TRUE(xfer(cn.cli, cn.srv, "GET / HTTP/1.1\r\n\r\n"), "receives");
			if (tx)
				ASSERT_TRUE(splice_body(&cn), "a body spliced into the socket");
		}
		conn_close(&cn);
		SSL_CTX_free(cctx);
	}
out:
	fg_tls_set_ktls(false);
	fg_tls_store_put(store);
	fg_tls_cert_put(c);
	kp_free(&k);
}

FG_TEST(tls)
{
	if (test__start_subtest("base64"))
		subtest_b64();
	if (test__start_subtest("bad_secrets"))
		subtest_bad_secrets();
	if (test__start_subtest("covers"))
		subtest_covers();
	if (test__start_subtest("sni"))
		subtest_sni();
	if (test__start_subtest("protocols"))
		subtest_protocols();
	if (test__start_subtest("alpn"))
		subtest_alpn();
	if (test__start_subtest("rotation"))
		subtest_rotation();
	if (test__start_subtest("concurrent"))
		subtest_concurrent();
	if (test__start_subtest("client_ctx"))
		subtest_client_ctx();
	if (test__start_subtest("files_and_kubectl"))
		subtest_files_and_kubectl();
	if (test__start_subtest("ktls"))
		subtest_ktls();
}
