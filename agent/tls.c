// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TLS building blocks (tls.h): certificates, the SNI store, upstream
 * client contexts, kernel TLS. OpenSSL 3.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"

#ifndef SOL_TCP
#define SOL_TCP IPPROTO_TCP
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define MAX_NAME 256          /* a DNS name, with room for the NUL */
#define MAX_PEM (1u << 20)    /* a certificate chain or key file */

/* Mozilla's "intermediate" TLS 1.2 suites (forward secret AEADs only). */
static const char CIPHERS_12[] =
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
static const char CIPHERS_13[] =
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
static const char GROUPS[] = "X25519:P-256:P-384";
static const char FAKE_CN[] = "Fleetgate Fake Certificate";
static const char FAKE_SAN[] = "fleetgate.invalid";

struct fg_tls_cert {
	int refs;                 /* atomic */
	X509 *x509;
	STACK_OF(X509) *chain;    /* may be NULL */
	EVP_PKEY *key;
	time_t not_before, not_after;
	bool generated;
	char name[MAX_NAME];
	char subject[MAX_NAME];
	char issuer[MAX_NAME];
};

struct name_ent {
	char *name;               /* lower case; wildcards without the "*." */
	struct fg_tls_cert *cert;
	size_t order;             /* position in the entries given */
};

struct fg_tls_store {
	int refs;                 /* atomic */
	unsigned long gen;
	struct name_ent *exact, *wild;
	size_t n_exact, n_wild;
	struct fg_tls_cert *dflt;
};

/* An ALPN list in wire format; never freed once published, so a handshake
 * reading the old one while it is replaced stays valid. */
struct alpn_list {
	struct alpn_list *older; /* kept reachable, never freed */
	size_t len;
	unsigned char wire[];
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int store_idx = -1;   /* SSL ex_data: the store (owned reference) */
static int cert_idx = -1;    /* SSL ex_data: the certificate chosen (the store's) */
static unsigned char ticket_keys[80];
static SSL_CTX *server_ctx;  /* every server connection's */
static bool init_ok;
static struct alpn_list *alpn_cur; /* atomic */
static bool ktls_on;                /* atomic */
static long live_certs, live_stores; /* atomic */

/* ---------- small helpers ---------- */

static void sk_X509_pop_free_all(STACK_OF(X509) *sk)
{
	sk_X509_pop_free(sk, X509_free);
}

static void whyf(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void whyf(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

/* The reason of the oldest error OpenSSL queued in this thread ("ee key
 * too small", "bad decrypt"), and the queue cleared. */
static const char *ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	if (r)
		snprintf(buf, len, "%s", r);
	else if (e)
		snprintf(buf, len, "OpenSSL error %#lx", e);
	else
		snprintf(buf, len, "unknown OpenSSL error");
	ERR_clear_error();
	return buf;
}

static void store_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			  void *argp);
static SSL_CTX *server_ctx_new(void);

static void tls_init(void)
{
	static const unsigned char http11[] = "\x08http/1.1";
	struct alpn_list *l = malloc(sizeof(*l) + sizeof(http11) - 1);

	store_idx = SSL_get_ex_new_index(0, "fleetgate store", NULL, NULL, store_ex_free);
	cert_idx = SSL_get_ex_new_index(0, "fleetgate cert", NULL, NULL, NULL);
	/* One ticket key for the process: tickets resume on any worker and
	 * across certificate rotations; they die with the process. */
	if (!l || store_idx < 0 || cert_idx < 0 ||
	    RAND_priv_bytes(ticket_keys, sizeof(ticket_keys)) != 1) {
		free(l);
		return;
	}
	server_ctx = server_ctx_new();
	if (!server_ctx) {
		free(l);
		return;
	}
	l->older = NULL;
	l->len = sizeof(http11) - 1;
	memcpy(l->wire, http11, l->len);
	__atomic_store_n(&alpn_cur, l, __ATOMIC_RELEASE);
	init_ok = true;
}

static int ensure_init(void)
{
	pthread_once(&init_once, tls_init);
	return init_ok ? 0 : -ENOMEM;
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm = {};

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

void fg_tls_time_str(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "%lld", (long long)t);
}

static void name_str(X509_NAME *n, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long k;

	buf[0] = '\0';
	if (!b)
		return;
	/* RFC 2253 order (CN first), one line, UTF-8 kept. */
	if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		k = BIO_get_mem_data(b, &p);
		snprintf(buf, len, "%.*s", (int)(k < 0 ? 0 : k), p);
	}
	BIO_free(b);
}

/* ---------- base64 ---------- */

int fg_b64_decode(const char *in, size_t in_len, unsigned char **out, size_t *out_len)
{
	unsigned char *clean, *dec;
	size_t n = 0, i, pad = 0;
	int got;

	clean = malloc(in_len + 1);
	if (!clean)
		return -ENOMEM;
	for (i = 0; i < in_len; i++)
		if (!isspace((unsigned char)in[i]))
			clean[n++] = (unsigned char)in[i];
	if (n % 4) {
		free(clean);
		return -EINVAL;
	}
	if (n && clean[n - 1] == '=')
		pad++;
	if (n > 1 && clean[n - 2] == '=')
		pad++;
	/* '=' anywhere but the end is not base64 (EVP_DecodeBlock would take
	 * it as a zero). */
	for (i = 0; i + pad < n; i++)
		if (clean[i] == '=') {
			free(clean);
			return -EINVAL;
		}
	dec = malloc(n / 4 * 3 + 1);
	if (!dec) {
		free(clean);
		return -ENOMEM;
	}
	got = n ? EVP_DecodeBlock(dec, clean, (int)n) : 0;
	free(clean);
	if (got < 0 || (size_t)got < pad) {
		free(dec);
		return -EINVAL;
	}
	*out_len = (size_t)got - pad;
	dec[*out_len] = '\0';
	*out = dec;
	return 0;
}

/* ---------- the server context ---------- */

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	const struct alpn_list *l = __atomic_load_n(&alpn_cur, __ATOMIC_ACQUIRE);
	unsigned char *sel = NULL;

	(void)ssl;
	(void)arg;
	/* The server's list first: its order is the preference. */
	if (!l || SSL_select_next_proto(&sel, outlen, l->wire, (unsigned int)l->len, in, inlen) !=
			  OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* Names are accepted whatever they are (unknown ones get the default
 * certificate), and so recorded in the session as OpenSSL does for
 * accepted names. */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
	(void)ssl;
	(void)alert;
	(void)arg;
	return SSL_TLSEXT_ERR_OK;
}

/* Runs once the ClientHello is read, before the cipher is chosen: the
 * certificate comes from the store this connection was made with,
 * whatever was published since. The SSL takes references on the leaf,
 * key and chain (no copies). */
static int cert_cb(SSL *ssl, void *arg)
{
	struct fg_tls_store *s = SSL_get_ex_data(ssl, store_idx);
	struct fg_tls_cert *c;

	(void)arg;
	if (!s)
		return 1;
	c = fg_tls_store_lookup(s, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
	if (SSL_get_ex_data(ssl, cert_idx) == c)
		return 1; /* called again (HelloRetryRequest) */
	if (SSL_use_cert_and_key(ssl, c->x509, c->key, c->chain, 1) != 1 ||
	    !SSL_set_ex_data(ssl, cert_idx, c))
		return 0;
	return 1;
}

/* The gateway's settings, once for the process: certificates are set on
 * each connection by cert_cb, so no context per certificate (an OpenSSL 3
 * SSL_CTX costs 0.3 ms and 14 KB; 10,000 certificates would cost 3 s and
 * 140 MB). */
static SSL_CTX *server_ctx_new(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char r[160];

	if (!ctx) {
		pr_warn("tls: cannot create the server SSL context: %s\n", ossl_reason(r, sizeof(r)));
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, CIPHERS_12) ||
	    !SSL_CTX_set_ciphersuites(ctx, CIPHERS_13) ||
	    !SSL_CTX_set1_groups_list(ctx, GROUPS) ||
	    !SSL_CTX_set_dh_auto(ctx, 1) ||
	    !SSL_CTX_set_tlsext_ticket_keys(ctx, ticket_keys, sizeof(ticket_keys)) ||
	    !SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"fleetgate", 9)) {
		pr_warn("tls: cannot configure the server SSL context: %s\n",
			ossl_reason(r, sizeof(r)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
				 SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET | SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
	/* Resumption by tickets only: no session cache to lock and fill. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
	SSL_CTX_set_cert_cb(ctx, cert_cb, NULL);
	return ctx;
}

SSL_CTX *fg_tls_server_ctx(void)
{
	return ensure_init() ? NULL : server_ctx;
}

/* ---------- certificates ---------- */

static void cert_free(struct fg_tls_cert *c)
{
	X509_free(c->x509);
	sk_X509_pop_free_all(c->chain);
	EVP_PKEY_free(c->key);
	free(c);
	__atomic_sub_fetch(&live_certs, 1, __ATOMIC_RELAXED);
}

struct fg_tls_cert *fg_tls_cert_get(struct fg_tls_cert *c)
{
	if (c)
		__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void fg_tls_cert_put(struct fg_tls_cert *c)
{
	if (c && !__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL))
		cert_free(c);
}

/* OpenSSL's own checks of the pair (the security level: key sizes,
 * signature algorithms of the chain), done once here on a connection that
 * is never used rather than failing handshakes later. */
static int openssl_accepts(const struct fg_tls_cert *c, const char *crt_label, char *why,
			   size_t len)
{
	SSL *probe = SSL_new(server_ctx);
	char r[160];
	int err = 0;

	if (!probe)
		return -ENOMEM;
	if (SSL_use_cert_and_key(probe, c->x509, c->key, c->chain, 1) != 1) {
		whyf(why, len, "OpenSSL refuses the certificate in %s: %s", crt_label,
		     ossl_reason(r, sizeof(r)));
		err = -EKEYREJECTED;
	}
	SSL_free(probe);
	return err;
}

/* A certificate from its parts (taken over, also on failure). */
static int cert_build(X509 *x509, STACK_OF(X509) *chain, EVP_PKEY *key, const char *name,
		      const char *key_label, const char *crt_label, struct fg_tls_cert **out,
		      char *why, size_t len)
{
	struct fg_tls_cert *c;
	int err;

	err = ensure_init();
	if (err) {
		whyf(why, len, "TLS initialisation failed");
		goto fail;
	}
	if (X509_check_private_key(x509, key) != 1) {
		ERR_clear_error();
		whyf(why, len, "%s does not match the certificate in %s", key_label, crt_label);
		err = -EKEYREJECTED;
		goto fail;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		err = -ENOMEM;
		goto fail;
	}
	__atomic_add_fetch(&live_certs, 1, __ATOMIC_RELAXED);
	c->refs = 1;
	c->x509 = x509;
	c->chain = chain;
	c->key = key;
	snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
	name_str(X509_get_subject_name(x509), c->subject, sizeof(c->subject));
	name_str(X509_get_issuer_name(x509), c->issuer, sizeof(c->issuer));
	c->not_before = asn1_time(X509_get0_notBefore(x509));
	c->not_after = asn1_time(X509_get0_notAfter(x509));
	err = openssl_accepts(c, crt_label, why, len);
	if (err) {
		cert_free(c);
		return err;
	}
	*out = c;
	return 0;
fail:
	X509_free(x509);
	sk_X509_pop_free_all(chain);
	EVP_PKEY_free(key);
	return err;
}

static bool has_pem_line(const char *s, size_t n)
{
	return memmem(s, n, "-----BEGIN ", 11) != NULL;
}

/* The leaf and the chain from PEM text. */
static int parse_crt_pem(const char *pem, size_t n, const char *label, X509 **leaf,
			 STACK_OF(X509) **chain, char *why, size_t len)
{
	BIO *b;
	X509 *x;
	char r[160];
	int err = 0;

	*leaf = NULL;
	*chain = NULL;
	if (!has_pem_line(pem, n)) {
		whyf(why, len, "%s is not PEM (no -----BEGIN line)", label);
		return -EINVAL;
	}
	b = BIO_new_mem_buf(pem, (int)n);
	if (!b)
		return -ENOMEM;
	ERR_clear_error();
	*leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
	if (!*leaf) {
		unsigned long e = ERR_peek_last_error();

		if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
			ERR_clear_error();
			whyf(why, len, "%s has no PEM CERTIFICATE block", label);
		} else {
			whyf(why, len, "%s: the certificate cannot be parsed: %s", label,
			     ossl_reason(r, sizeof(r)));
		}
		err = -EINVAL;
		goto out;
	}
	/* The rest is the chain, in the order given. */
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		if (!*chain && !(*chain = sk_X509_new_null())) {
			X509_free(x);
			err = -ENOMEM;
			goto out;
		}
		if (!sk_X509_push(*chain, x)) {
			X509_free(x);
			err = -ENOMEM;
			goto out;
		}
	}
	{
		unsigned long e = ERR_peek_last_error();

		/* The end of the text is the only way out that is not an
		 * error. */
		if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
			whyf(why, len, "%s: chain certificate %d cannot be parsed: %s", label,
			     *chain ? sk_X509_num(*chain) + 1 : 1, ossl_reason(r, sizeof(r)));
			err = -EINVAL;
		}
		ERR_clear_error();
	}
out:
	BIO_free(b);
	if (err) {
		X509_free(*leaf);
		sk_X509_pop_free_all(*chain);
		*leaf = NULL;
		*chain = NULL;
	}
	return err;
}

/* A passphrase is never available: encrypted keys fail with a reason. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(bool *)u = true;
	return -1;
}

/* With the key type known (the certificate's), OpenSSL 3 tries one
 * decoder instead of all of them: 0.3 ms instead of 1.1 ms a key. NULL
 * when that does not work; the general path then says why. */
static EVP_PKEY *decode_key_as(const char *pem, size_t n, const char *type)
{
	OSSL_DECODER_CTX *dc;
	EVP_PKEY *key = NULL;
	bool asked = false;
	BIO *b;

	if (!type)
		return NULL;
	b = BIO_new_mem_buf(pem, (int)n);
	dc = OSSL_DECODER_CTX_new_for_pkey(&key, "PEM", NULL, type, EVP_PKEY_KEYPAIR, NULL, NULL);
	if (b && dc && OSSL_DECODER_CTX_set_pem_password_cb(dc, no_passphrase, &asked) == 1 &&
	    OSSL_DECODER_from_bio(dc, b) != 1) {
		EVP_PKEY_free(key);
		key = NULL;
	}
	OSSL_DECODER_CTX_free(dc);
	BIO_free(b);
	ERR_clear_error();
	return key;
}

static int parse_key_pem(const char *pem, size_t n, const char *label, const char *type,
			 EVP_PKEY **key, char *why, size_t len)
{
	bool asked = false;
	char r[160];
	BIO *b;

	*key = NULL;
	if (!has_pem_line(pem, n)) {
		whyf(why, len, "%s is not PEM (no -----BEGIN line)", label);
		return -EINVAL;
	}
	/* OpenSSL 3's decoders try whatever block they find and say
	 * "unsupported" about a certificate: say what is missing instead. */
	if (!memmem(pem, n, "PRIVATE KEY-----", 16)) {
		whyf(why, len, "%s has no PEM private key block", label);
		return -EINVAL;
	}
	*key = decode_key_as(pem, n, type);
	if (*key)
		return 0;
	b = BIO_new_mem_buf(pem, (int)n);
	if (!b)
		return -ENOMEM;
	ERR_clear_error();
	*key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, &asked);
	BIO_free(b);
	if (*key)
		return 0;
	if (asked) {
		ERR_clear_error();
		whyf(why, len, "%s is encrypted (fleetgate takes unencrypted keys only)", label);
	} else {
		unsigned long e = ERR_peek_last_error();

		if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
			ERR_clear_error();
			whyf(why, len, "%s has no PEM private key block", label);
		} else {
			whyf(why, len, "%s: the private key cannot be parsed: %s", label,
			     ossl_reason(r, sizeof(r)));
		}
	}
	return -EINVAL;
}

static int cert_from_pem(const char *crt, size_t crt_len, const char *crt_label,
			 const char *key, size_t key_len, const char *key_label, const char *name,
			 struct fg_tls_cert **out, char *why, size_t len)
{
	STACK_OF(X509) *chain;
	EVP_PKEY *pkey;
	X509 *leaf;
	int err;

	if (crt_len > MAX_PEM || key_len > MAX_PEM) {
		whyf(why, len, "%s is larger than %u bytes", crt_len > MAX_PEM ? crt_label : key_label,
		     MAX_PEM);
		return -EINVAL;
	}
	err = parse_crt_pem(crt, crt_len, crt_label, &leaf, &chain, why, len);
	if (err)
		return err;
	err = parse_key_pem(key, key_len, key_label,
			    EVP_PKEY_get0_type_name(X509_get0_pubkey(leaf)), &pkey, why, len);
	if (err) {
		X509_free(leaf);
		sk_X509_pop_free_all(chain);
		return err;
	}
	return cert_build(leaf, chain, pkey, name, key_label, crt_label, out, why, len);
}

int fg_tls_cert_from_pem(const char *crt, size_t crt_len, const char *key, size_t key_len,
			 const char *name, struct fg_tls_cert **out, char *why, size_t len)
{
	return cert_from_pem(crt, crt_len, "the certificate PEM", key, key_len, "the key PEM", name,
			     out, why, len);
}

static int read_file(const char *path, char **buf, size_t *n, char *why, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t cap = 4096, got = 0;
	char *b = NULL, *nb;
	int err = 0;

	if (!f) {
		err = -errno;
		whyf(why, len, "cannot open %s: %s", path, strerror(-err));
		return err;
	}
	for (;;) {
		size_t k;

		if (got + 1 >= cap || !b) {
			if (!b)
				cap = 4096;
			else
				cap *= 2;
			if (cap > MAX_PEM + 1) {
				whyf(why, len, "%s is larger than %u bytes", path, MAX_PEM);
				err = -EFBIG;
				break;
			}
			nb = realloc(b, cap);
			if (!nb) {
				err = -ENOMEM;
				break;
			}
			b = nb;
		}
		k = fread(b + got, 1, cap - got - 1, f);
		got += k;
		if (k == 0) {
			if (ferror(f)) {
				err = -EIO;
				whyf(why, len, "cannot read %s", path);
			}
			break;
		}
	}
	fclose(f);
	if (err) {
		free(b);
		return err;
	}
	b[got] = '\0';
	*buf = b;
	*n = got;
	return 0;
}

int fg_tls_cert_from_files(const char *crt_path, const char *key_path,
			   struct fg_tls_cert **out, char *why, size_t len)
{
	char *crt = NULL, *key = NULL;
	size_t crt_len, key_len;
	int err;

	err = read_file(crt_path, &crt, &crt_len, why, len);
	if (!err)
		err = read_file(key_path, &key, &key_len, why, len);
	if (!err)
		err = cert_from_pem(crt, crt_len, crt_path, key, key_len, key_path, crt_path, out,
				    why, len);
	free(crt);
	if (key) {
		OPENSSL_cleanse(key, key_len);
		free(key);
	}
	return err;
}

/* A value of a Secret: stringData (plain) wins over data (base64). */
static int secret_value(json_t *secret, const char *key, unsigned char **val, size_t *n,
			char *why, size_t len)
{
	json_t *v = json_object_get(json_object_get(secret, "stringData"), key);
	int err;

	if (json_is_string(v)) {
		*n = json_string_length(v);
		*val = malloc(*n + 1);
		if (!*val)
			return -ENOMEM;
		memcpy(*val, json_string_value(v), *n + 1);
		return 0;
	}
	v = json_object_get(json_object_get(secret, "data"), key);
	if (!v || json_is_null(v)) {
		whyf(why, len, "no %s in data or stringData", key);
		return -ENOENT;
	}
	if (!json_is_string(v)) {
		whyf(why, len, "%s in data is not a string", key);
		return -EINVAL;
	}
	err = fg_b64_decode(json_string_value(v), json_string_length(v), val, n);
	if (err == -EINVAL)
		whyf(why, len, "%s in data is not valid base64", key);
	return err;
}

static void wipe_free(unsigned char *p, size_t n)
{
	if (p) {
		OPENSSL_cleanse(p, n);
		free(p);
	}
}

int fg_tls_cert_from_secret(json_t *secret, struct fg_tls_cert **out, char *why, size_t len)
{
	const char *type = json_string_value(json_object_get(secret, "type"));
	json_t *md = json_object_get(secret, "metadata");
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	const char *nm = json_string_value(json_object_get(md, "name"));
	unsigned char *crt = NULL, *key = NULL;
	size_t crt_len = 0, key_len = 0;
	char name[MAX_NAME];
	int err;

	if (!json_is_object(secret)) {
		whyf(why, len, "not an object");
		return -EINVAL;
	}
	if (!type || strcmp(type, FG_TLS_SECRET_TYPE)) {
		whyf(why, len, "type is %s, not " FG_TLS_SECRET_TYPE,
		     type ? type : "not set (Opaque)");
		return -EINVAL;
	}
	snprintf(name, sizeof(name), "%s/%s", ns && *ns ? ns : "default", nm ? nm : "");
	err = secret_value(secret, "tls.crt", &crt, &crt_len, why, len);
	if (!err)
		err = secret_value(secret, "tls.key", &key, &key_len, why, len);
	if (!err)
		err = cert_from_pem((const char *)crt, crt_len, "tls.crt", (const char *)key,
				    key_len, "tls.key", name, out, why, len);
	free(crt);
	wipe_free(key, key_len);
	return err;
}

/* ---------- generation ---------- */

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);
	int ok;

	if (!e)
		return -EINVAL;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -ENOMEM;
}

int fg_tls_gen_cert(const struct fg_tls_gen_opts *o, X509 **crt, EVP_PKEY **key, char *why,
		    size_t len)
{
	const char *kt = o->key_type ? o->key_type : "EC";
	EVP_PKEY *pkey = NULL;
	unsigned char serial[16];
	X509V3_CTX v3;
	X509_NAME *subj;
	BIGNUM *bn = NULL;
	X509 *x = NULL;
	char r[160], *san = NULL;
	size_t san_len = 0;
	int i, err = -ENOMEM;

	if (!strcmp(kt, "EC"))
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else if (!strcmp(kt, "RSA"))
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)(o->rsa_bits ? o->rsa_bits : 2048));
	else {
		whyf(why, len, "unknown key type %s", kt);
		return -EINVAL;
	}
	x = X509_new();
	subj = X509_NAME_new();
	if (!pkey || !x || !subj)
		goto fail;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f; /* positive */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) || !X509_set_version(x, 2))
		goto fail;
	if (!X509_gmtime_adj(X509_getm_notBefore(x), o->not_before ? o->not_before : -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), o->not_after ? o->not_after : 365L * 86400))
		goto fail;
	if (o->cn && !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8,
						 (const unsigned char *)o->cn, -1, -1, 0))
		goto fail;
	if (!X509_set_subject_name(x, subj) || !X509_set_pubkey(x, pkey) ||
	    !X509_set_issuer_name(x, o->issuer ? X509_get_subject_name(o->issuer) : subj))
		goto fail;
	X509V3_set_ctx(&v3, o->issuer ? o->issuer : x, x, NULL, NULL, 0);
	err = add_ext(x, &v3, NID_basic_constraints, o->ca ? "critical,CA:TRUE" : "CA:FALSE");
	if (!err)
		err = add_ext(x, &v3, NID_key_usage,
			      o->ca ? "critical,keyCertSign,cRLSign,digitalSignature"
				    : "critical,digitalSignature,keyEncipherment");
	if (!err && !o->ca)
		err = add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth");
	if (!err)
		err = add_ext(x, &v3, NID_subject_key_identifier, "hash");
	for (i = 0; !err && o->sans && o->sans[i]; i++) {
		char *n = realloc(san, san_len + strlen(o->sans[i]) + 6);

		if (!n) {
			err = -ENOMEM;
			break;
		}
		san = n;
		san_len += sprintf(san + san_len, "%sDNS:%s", san_len ? "," : "", o->sans[i]);
	}
	if (!err && san)
		err = add_ext(x, &v3, NID_subject_alt_name, san);
	if (err)
		goto fail;
	if (!X509_sign(x, o->issuer ? o->issuer_key : pkey, EVP_sha256())) {
		err = -EINVAL;
		goto fail;
	}
	X509_NAME_free(subj);
	BN_free(bn);
	free(san);
	*crt = x;
	*key = pkey;
	return 0;
fail:
	whyf(why, len, "cannot generate a certificate: %s", ossl_reason(r, sizeof(r)));
	X509_NAME_free(subj);
	BN_free(bn);
	free(san);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return err ? err : -ENOMEM;
}

int fg_tls_cert_self_signed(struct fg_tls_cert **out, char *why, size_t len)
{
	static const char *const sans[] = { FAKE_SAN, NULL };
	struct fg_tls_gen_opts o = { .cn = FAKE_CN, .sans = sans };
	EVP_PKEY *key;
	X509 *x;
	int err;

	err = fg_tls_gen_cert(&o, &x, &key, why, len);
	if (err)
		return err;
	err = cert_build(x, NULL, key, "self-signed", "the generated key",
			 "the generated certificate", out, why, len);
	if (!err)
		(*out)->generated = true;
	return err;
}

/* ---------- certificate views ---------- */

X509 *fg_tls_cert_x509(const struct fg_tls_cert *c)
{
	return c->x509;
}

STACK_OF(X509) *fg_tls_cert_chain(const struct fg_tls_cert *c)
{
	return c->chain;
}

const char *fg_tls_cert_name(const struct fg_tls_cert *c)
{
	return c->name;
}

const char *fg_tls_cert_subject(const struct fg_tls_cert *c)
{
	return c->subject;
}

const char *fg_tls_cert_issuer(const struct fg_tls_cert *c)
{
	return c->issuer;
}

time_t fg_tls_cert_not_before(const struct fg_tls_cert *c)
{
	return c->not_before;
}

time_t fg_tls_cert_not_after(const struct fg_tls_cert *c)
{
	return c->not_after;
}

bool fg_tls_cert_generated(const struct fg_tls_cert *c)
{
	return c->generated;
}

int fg_tls_cert_check_time(const struct fg_tls_cert *c, time_t now, char *why, size_t len)
{
	char t[32];

	if (X509_cmp_time(X509_get0_notAfter(c->x509), &now) < 0) {
		fg_tls_time_str(c->not_after, t, sizeof(t));
		whyf(why, len, "the certificate expired on %s", t);
		return -EKEYEXPIRED;
	}
	if (X509_cmp_time(X509_get0_notBefore(c->x509), &now) > 0) {
		fg_tls_time_str(c->not_before, t, sizeof(t));
		whyf(why, len, "the certificate is not valid before %s", t);
		return -EKEYEXPIRED;
	}
	return 0;
}

static bool str_ieq(const unsigned char *a, size_t an, const char *b)
{
	return an == strlen(b) && !strncasecmp((const char *)a, b, an);
}

/* A wildcard host is covered by that very wildcard among the DNS SANs (or
 * the CN when there are none), which X509_check_host cannot say: it
 * matches names, not patterns. */
static bool covers_wildcard(X509 *x, const char *host)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	bool dns = false, found = false;
	X509_NAME *subj;
	int i;

	for (i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_DNS)
			continue;
		dns = true;
		if (str_ieq(ASN1_STRING_get0_data(g->d.dNSName),
			    (size_t)ASN1_STRING_length(g->d.dNSName), host))
			found = true;
	}
	GENERAL_NAMES_free(gens);
	if (dns)
		return found;
	subj = X509_get_subject_name(x);
	for (i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1); i >= 0;
	     i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) {
		ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));

		if (str_ieq(ASN1_STRING_get0_data(cn), (size_t)ASN1_STRING_length(cn), host))
			return true;
	}
	return false;
}

bool fg_tls_cert_covers(const struct fg_tls_cert *c, const char *host)
{
	if (!host || !*host)
		return false;
	if (!strncmp(host, "*.", 2))
		return covers_wildcard(c->x509, host);
	return X509_check_host(c->x509, host, strlen(host), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
			       NULL) == 1;
}

/* ---------- process-wide settings ---------- */

int fg_tls_set_alpn(const char *list)
{
	struct alpn_list *l;
	const char *p = list;
	size_t n = 0;
	int err = ensure_init();

	if (err)
		return err;
	if (!list || !*list)
		return -EINVAL;
	l = malloc(sizeof(*l) + strlen(list) + 1);
	if (!l)
		return -ENOMEM;
	while (*p) {
		size_t k = strcspn(p, ",");

		if (!k || k > 255) {
			free(l);
			return -EINVAL;
		}
		l->wire[n++] = (unsigned char)k;
		memcpy(l->wire + n, p, k);
		n += k;
		p += k;
		if (*p == ',' && !*++p) {
			free(l);
			return -EINVAL;
		}
	}
	l->len = n;
	/* The old list stays allocated: a handshake may be reading it. */
	l->older = __atomic_load_n(&alpn_cur, __ATOMIC_ACQUIRE);
	__atomic_store_n(&alpn_cur, l, __ATOMIC_RELEASE);
	return 0;
}

int fg_tls_set_ktls(bool on)
{
	if (on && fg_ktls_probe(NULL, 0) != 1)
		return -EOPNOTSUPP;
	__atomic_store_n(&ktls_on, on, __ATOMIC_RELEASE);
	return 0;
}

/* ---------- the store ---------- */

static int ent_cmp(const void *a, const void *b)
{
	const struct name_ent *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Lower case, one trailing dot dropped; false when it cannot be a name. */
static bool normalize(const char *in, char *out, size_t len)
{
	size_t n = in ? strlen(in) : 0, i;

	if (n && in[n - 1] == '.')
		n--;
	if (!n || n >= len)
		return false;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[n] = '\0';
	return true;
}

/* Sorts and drops the later duplicates (the first given wins). */
static size_t ents_finish(struct name_ent *v, size_t n)
{
	size_t i, k = 0;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), ent_cmp);
	for (i = 0; i < n; i++) {
		if (k && !strcmp(v[k - 1].name, v[i].name)) {
			free(v[i].name);
			fg_tls_cert_put(v[i].cert);
			continue;
		}
		v[k++] = v[i];
	}
	return k;
}

static void ents_free(struct name_ent *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		fg_tls_cert_put(v[i].cert);
	}
	free(v);
}

static void store_free(struct fg_tls_store *s)
{
	ents_free(s->exact, s->n_exact);
	ents_free(s->wild, s->n_wild);
	fg_tls_cert_put(s->dflt);
	free(s);
	__atomic_sub_fetch(&live_stores, 1, __ATOMIC_RELAXED);
}

int fg_tls_store_new(const struct fg_tls_store_entry *entries, size_t n,
		     struct fg_tls_cert *dflt, unsigned long gen, struct fg_tls_store **out)
{
	struct fg_tls_store *s;
	char name[MAX_NAME];
	size_t i;
	int err = ensure_init();

	if (err)
		return err;
	if (!dflt)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	__atomic_add_fetch(&live_stores, 1, __ATOMIC_RELAXED);
	s->refs = 1;
	s->gen = gen;
	s->dflt = fg_tls_cert_get(dflt);
	s->exact = calloc(n ? n : 1, sizeof(*s->exact));
	s->wild = calloc(n ? n : 1, sizeof(*s->wild));
	if (!s->exact || !s->wild) {
		store_free(s);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		const char *h = entries[i].host;
		bool wild = h && !strncmp(h, "*.", 2);
		struct name_ent *e;

		if (!entries[i].cert || !normalize(wild ? h + 2 : h, name, sizeof(name)) ||
		    strchr(name, '*')) {
			store_free(s);
			return -EINVAL;
		}
		e = wild ? &s->wild[s->n_wild++] : &s->exact[s->n_exact++];
		e->name = strdup(name);
		e->cert = fg_tls_cert_get(entries[i].cert);
		e->order = i;
		if (!e->name) {
			store_free(s);
			return -ENOMEM;
		}
	}
	s->n_exact = ents_finish(s->exact, s->n_exact);
	s->n_wild = ents_finish(s->wild, s->n_wild);
	*out = s;
	return 0;
}

struct fg_tls_store *fg_tls_store_get(struct fg_tls_store *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void fg_tls_store_put(struct fg_tls_store *s)
{
	if (s && !__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		store_free(s);
}

unsigned long fg_tls_store_generation(const struct fg_tls_store *s)
{
	return s->gen;
}

size_t fg_tls_store_size(const struct fg_tls_store *s)
{
	return s->n_exact + s->n_wild;
}

struct fg_tls_cert *fg_tls_store_default(const struct fg_tls_store *s)
{
	return s->dflt;
}

static struct fg_tls_cert *ents_find(const struct name_ent *v, size_t n, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, v[mid].name);

		if (!c)
			return v[mid].cert;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

struct fg_tls_cert *fg_tls_store_find(const struct fg_tls_store *s, const char *name)
{
	char n[MAX_NAME];
	struct fg_tls_cert *c;
	const char *dot;

	if (!normalize(name, n, sizeof(n)))
		return NULL;
	c = ents_find(s->exact, s->n_exact, n);
	if (c)
		return c;
	/* "*.example.com" stands for exactly one more label. */
	dot = strchr(n, '.');
	if (!dot || dot == n || !dot[1])
		return NULL;
	return ents_find(s->wild, s->n_wild, dot + 1);
}

struct fg_tls_cert *fg_tls_store_lookup(const struct fg_tls_store *s, const char *name)
{
	struct fg_tls_cert *c = name ? fg_tls_store_find(s, name) : NULL;

	return c ? c : s->dflt;
}

static bool ents_same(const struct name_ent *a, size_t an, const struct name_ent *b, size_t bn)
{
	size_t i;

	if (an != bn)
		return false;
	for (i = 0; i < an; i++)
		if (a[i].cert != b[i].cert || strcmp(a[i].name, b[i].name))
			return false;
	return true;
}

bool fg_tls_store_same(const struct fg_tls_store *a, const struct fg_tls_store *b)
{
	if (!a || !b)
		return a == b;
	return a->dflt == b->dflt && ents_same(a->exact, a->n_exact, b->exact, b->n_exact) &&
	       ents_same(a->wild, a->n_wild, b->wild, b->n_wild);
}

/* ---------- server connections ---------- */

SSL *fg_tls_new_server_ssl(struct fg_tls_store *s)
{
	SSL *ssl;

	if (!s || ensure_init())
		return NULL;
	ssl = SSL_new(server_ctx);
	if (!ssl)
		return NULL;
	if (!SSL_set_ex_data(ssl, store_idx, s)) {
		SSL_free(ssl);
		return NULL;
	}
	fg_tls_store_get(s);
	if (__atomic_load_n(&ktls_on, __ATOMIC_ACQUIRE))
		SSL_set_options(ssl, SSL_OP_ENABLE_KTLS);
	SSL_set_accept_state(ssl);
	return ssl;
}

struct fg_tls_store *fg_tls_ssl_store(const SSL *ssl)
{
	return store_idx >= 0 ? SSL_get_ex_data(ssl, store_idx) : NULL;
}

struct fg_tls_cert *fg_tls_ssl_cert(const SSL *ssl)
{
	return cert_idx >= 0 ? SSL_get_ex_data(ssl, cert_idx) : NULL;
}

/* The index's free function: SSL_free() releases the store reference of
 * a server SSL (other SSLs have none: ptr is NULL). */
static void store_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			  void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	fg_tls_store_put(ptr);
}

/* ---------- upstream (client) contexts ---------- */

static int load_ca(SSL_CTX *ctx, const char *pem, size_t n, char *why, size_t len)
{
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	BIO *b;
	X509 *x;
	char r[160];
	int got = 0;

	if (!has_pem_line(pem, n)) {
		whyf(why, len, "ca.crt is not PEM (no -----BEGIN line)");
		return -EINVAL;
	}
	b = BIO_new_mem_buf(pem, (int)n);
	if (!b)
		return -ENOMEM;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		if (X509_STORE_add_cert(st, x) != 1) {
			X509_free(x);
			BIO_free(b);
			whyf(why, len, "ca.crt: certificate %d refused: %s", got + 1,
			     ossl_reason(r, sizeof(r)));
			return -EINVAL;
		}
		X509_free(x);
		got++;
	}
	BIO_free(b);
	ERR_clear_error();
	if (!got) {
		whyf(why, len, "ca.crt has no PEM CERTIFICATE block");
		return -EINVAL;
	}
	return 0;
}

int fg_tls_client_ctx(bool verify, const char *ca_pem, size_t ca_len,
		      struct fg_tls_cert *client, SSL_CTX **out, char *why, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char r[160];
	int i, err;

	if (!ctx) {
		whyf(why, len, "cannot create an SSL context: %s", ossl_reason(r, sizeof(r)));
		return -ENOMEM;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		err = -EINVAL;
		whyf(why, len, "cannot configure an SSL context: %s", ossl_reason(r, sizeof(r)));
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if (verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (ca_pem) {
			err = load_ca(ctx, ca_pem, ca_len, why, len);
			if (err)
				goto fail;
		} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			err = -EINVAL;
			whyf(why, len, "cannot load the system's CA certificates: %s",
			     ossl_reason(r, sizeof(r)));
			goto fail;
		}
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (client) {
		if (SSL_CTX_use_certificate(ctx, client->x509) != 1 ||
		    SSL_CTX_use_PrivateKey(ctx, client->key) != 1) {
			err = -EKEYREJECTED;
			whyf(why, len, "OpenSSL refuses the client certificate %s: %s",
			     client->name, ossl_reason(r, sizeof(r)));
			goto fail;
		}
		for (i = 0; client->chain && i < sk_X509_num(client->chain); i++)
			if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(client->chain, i)) != 1) {
				err = -EKEYREJECTED;
				whyf(why, len, "OpenSSL refuses the client chain of %s: %s",
				     client->name, ossl_reason(r, sizeof(r)));
				goto fail;
			}
	}
	*out = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return err;
}

int fg_tls_secret_ca(json_t *secret, char **pem, size_t *pem_len, char *why, size_t len)
{
	unsigned char *v;
	size_t n;
	int err = secret_value(secret, "ca.crt", &v, &n, why, len);

	if (err)
		return err;
	*pem = (char *)v;
	*pem_len = n;
	return 0;
}

SSL *fg_tls_new_client_ssl(SSL_CTX *ctx, const char *sni, const char *verify_host)
{
	SSL *ssl = SSL_new(ctx);

	if (!ssl)
		return NULL;
	if ((sni && *sni && SSL_set_tlsext_host_name(ssl, sni) != 1) ||
	    (verify_host && *verify_host && SSL_set1_host(ssl, verify_host) != 1)) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	SSL_set_connect_state(ssl);
	return ssl;
}

/* ---------- kernel TLS ---------- */

static pthread_once_t ktls_once = PTHREAD_ONCE_INIT;
static struct fg_ktls_caps ktls_caps;

/* A connected TCP pair on loopback, non-blocking. */
static int tcp_pair(int fds[2], char *why, size_t len)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = -1, c = -1, s = -1, err;

	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &al) ||
	    connect(c, (struct sockaddr *)&a, sizeof(a)) ||
	    (s = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		err = -errno;
		whyf(why, len, "cannot make a loopback TCP connection: %s", strerror(-err));
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

/* Drives both ends of an in-process handshake (non-blocking sockets). */
static bool pump_handshake(SSL *srv, SSL *cli)
{
	bool sd = false, cd = false;
	int i;

	for (i = 0; i < 2000 && !(sd && cd); i++) {
		struct pollfd p[2] = { { .fd = SSL_get_fd(srv), .events = POLLIN },
				       { .fd = SSL_get_fd(cli), .events = POLLIN } };
		int r;

		if (!sd) {
			r = SSL_do_handshake(srv);
			if (r == 1)
				sd = true;
			else if (SSL_get_error(srv, r) != SSL_ERROR_WANT_READ &&
				 SSL_get_error(srv, r) != SSL_ERROR_WANT_WRITE)
				return false;
		}
		if (!cd) {
			r = SSL_do_handshake(cli);
			if (r == 1)
				cd = true;
			else if (SSL_get_error(cli, r) != SSL_ERROR_WANT_READ &&
				 SSL_get_error(cli, r) != SSL_ERROR_WANT_WRITE)
				return false;
		}
		if (!(sd && cd))
			poll(p, 2, 10);
	}
	return sd && cd;
}

/* Sends msg from one end and reads it at the other. */
static bool echo(SSL *from, SSL *to, const char *msg)
{
	char buf[64];
	size_t n = strlen(msg), got = 0;
	int i, r;

	if (SSL_write(from, msg, (int)n) != (int)n)
		return false;
	for (i = 0; i < 500 && got < n; i++) {
		struct pollfd p = { .fd = SSL_get_fd(to), .events = POLLIN };

		r = SSL_read(to, buf + got, (int)(sizeof(buf) - got));
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (SSL_get_error(to, r) != SSL_ERROR_WANT_READ)
			return false;
		poll(&p, 1, 10);
	}
	return got == n && !memcmp(buf, msg, n);
}

/* One handshake at version v with kTLS asked on the server side. */
static int ktls_try(int v, struct fg_tls_cert *cert, bool *tx, bool *rx, char *why, size_t len)
{
	SSL_CTX *cctx = NULL;
	SSL *srv = NULL, *cli = NULL;
	int fds[2] = { -1, -1 }, err;
	char r[160];

	*tx = *rx = false;
	err = tcp_pair(fds, why, len);
	if (err)
		return err;
	err = -ENOMEM;
	cctx = SSL_CTX_new(TLS_client_method());
	srv = SSL_new(server_ctx);
	if (!cctx || !srv)
		goto out;
	if (SSL_use_cert_and_key(srv, cert->x509, cert->key, NULL, 1) != 1) {
		whyf(why, len, "cannot set up the probe's certificate: %s", ossl_reason(r, sizeof(r)));
		err = -EINVAL;
		goto out;
	}
	cli = SSL_new(cctx);
	if (!cli)
		goto out;
	/* AES-GCM: what every kTLS kernel has. */
	if (!SSL_set_min_proto_version(cli, v) || !SSL_set_max_proto_version(cli, v) ||
	    !SSL_set_cipher_list(cli, "ECDHE-ECDSA-AES128-GCM-SHA256") ||
	    !SSL_set_ciphersuites(cli, "TLS_AES_128_GCM_SHA256") ||
	    !SSL_set_fd(srv, fds[0]) || !SSL_set_fd(cli, fds[1])) {
		whyf(why, len, "cannot set up the probe's connection: %s", ossl_reason(r, sizeof(r)));
		err = -EINVAL;
		goto out;
	}
	SSL_set_options(srv, SSL_OP_ENABLE_KTLS);
	SSL_set_accept_state(srv);
	SSL_set_connect_state(cli);
	if (!pump_handshake(srv, cli)) {
		whyf(why, len, "the probe's handshake failed: %s", ossl_reason(r, sizeof(r)));
		err = -EPROTO;
		goto out;
	}
	*tx = BIO_get_ktls_send(SSL_get_wbio(srv));
	*rx = BIO_get_ktls_recv(SSL_get_rbio(srv));
	/* What the kernel encrypts must decrypt at the peer, and the other
	 * way. */
	if (!echo(srv, cli, "fleetgate ktls probe, server to client") ||
	    !echo(cli, srv, "fleetgate ktls probe, client to server")) {
		whyf(why, len, "records through kernel TLS did not arrive intact");
		*tx = *rx = false;
		err = -EPROTO;
		goto out;
	}
	err = 0;
out:
	ERR_clear_error();
	SSL_free(srv);
	SSL_free(cli);
	SSL_CTX_free(cctx);
	close(fds[0]);
	close(fds[1]);
	return err;
}

static void ktls_probe_run(void)
{
	struct fg_ktls_caps *k = &ktls_caps;
	struct fg_tls_cert *cert = NULL;
	char why[FG_TLS_WHY_LEN] = "";
	int fds[2], err;

#ifdef OPENSSL_NO_KTLS
	snprintf(k->why, sizeof(k->why),
		 "no kernel TLS: this OpenSSL was built without it (OPENSSL_NO_KTLS)");
	return;
#endif
	k->openssl = true;
	if (tcp_pair(fds, why, sizeof(why))) {
		snprintf(k->why, sizeof(k->why), "no kernel TLS: %s", why);
		return;
	}
	/* The kernel loads the tls module on demand here (tcp-ulp-tls). */
	if (setsockopt(fds[0], SOL_TCP, TCP_ULP, "tls", sizeof("tls"))) {
		err = errno;
		snprintf(k->why, sizeof(k->why),
			 "no kernel TLS: setsockopt(TCP_ULP, \"tls\"): %s%s", strerror(err),
			 err == ENOENT ? " (the kernel has no CONFIG_TLS, or the tls module "
					 "cannot be loaded)" : "");
		close(fds[0]);
		close(fds[1]);
		return;
	}
	close(fds[0]);
	close(fds[1]);
	k->ulp = true;
	if (fg_tls_cert_self_signed(&cert, why, sizeof(why))) {
		snprintf(k->why, sizeof(k->why), "kernel TLS not probed: %s", why);
		return;
	}
	if (ktls_try(TLS1_2_VERSION, cert, &k->tx12, &k->rx12, why, sizeof(why)) ||
	    ktls_try(TLS1_3_VERSION, cert, &k->tx13, &k->rx13, why, sizeof(why))) {
		fg_tls_cert_put(cert);
		snprintf(k->why, sizeof(k->why), "no kernel TLS: %s", why);
		return;
	}
	fg_tls_cert_put(cert);
	if (!k->tx12 && !k->tx13)
		snprintf(k->why, sizeof(k->why),
			 "no kernel TLS: the kernel takes the TLS ULP but OpenSSL did not move "
			 "any direction into it after the handshake");
	else
		snprintf(k->why, sizeof(k->why),
			 "kernel TLS: TLS 1.2 %s, TLS 1.3 %s",
			 k->tx12 && k->rx12 ? "send and receive" : k->tx12 ? "send only" : "none",
			 k->tx13 && k->rx13 ? "send and receive" : k->tx13 ? "send only" : "none");
}

int fg_ktls_probe(char *why, size_t len)
{
	const struct fg_ktls_caps *k = fg_ktls_caps();

	whyf(why, len, "%s", k->why);
	return k->tx12 || k->tx13;
}

const struct fg_ktls_caps *fg_ktls_caps(void)
{
	pthread_once(&ktls_once, ktls_probe_run);
	return &ktls_caps;
}

int fg_tls_ktls_enable(SSL_CTX *ctx, char *why, size_t len)
{
	if (fg_ktls_probe(why, len) != 1)
		return -EOPNOTSUPP;
	SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
	return 0;
}

void fg_tls_ssl_ktls(SSL *ssl, bool *tx, bool *rx)
{
	BIO *w = SSL_get_wbio(ssl), *r = SSL_get_rbio(ssl);

	if (tx)
		*tx = w && BIO_get_ktls_send(w);
	if (rx)
		*rx = r && BIO_get_ktls_recv(r);
}

/* ---------- live objects ---------- */

long fg_tls_live_certs(void)
{
	return __atomic_load_n(&live_certs, __ATOMIC_RELAXED);
}

long fg_tls_live_stores(void)
{
	return __atomic_load_n(&live_stores, __ATOMIC_RELAXED);
}
