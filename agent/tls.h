/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TLS building blocks on OpenSSL 3: certificates, the SNI store the proxy
 * hands to its connections, upstream client contexts and kernel TLS.
 *
 * Certificates (struct fg_tls_cert) are immutable and refcounted: the leaf,
 * its chain and the private key, checked by OpenSSL as a pair when they
 * are built. They come from a Kubernetes Secret of type kubernetes.io/tls,
 * from PEM files, or are generated (the self-signed "fake" certificate for
 * unknown names when no default is given).
 *
 * Every server connection comes from one SSL_CTX with the gateway's
 * settings (fg_tls_server_ctx: TLS 1.2 and 1.3 only, Mozilla
 * "intermediate"-like ciphers for 1.2, server cipher preference, ALPN from
 * fg_tls_set_alpn(), session tickets under one key per process, no session
 * cache, no compression, no renegotiation); its certificate callback puts
 * the chosen certificate on the connection (references, no copies). One
 * context for all rather than one per certificate: an OpenSSL 3 SSL_CTX
 * costs about 0.3 ms and 14 KB, which 10,000 Ingresses would multiply.
 *
 * The store (struct fg_tls_store) maps server names to certificates:
 * exact names first, then "*.suffix" wildcards (one label), else the
 * default certificate. It is immutable and refcounted too: build a new
 * one to change anything. A server SSL made by fg_tls_new_server_ssl()
 * holds a reference on its store until SSL_free(), and its certificate is
 * chosen from that store once its ClientHello is read (SNI), so publishing
 * a new store never touches connections that began on an older one.
 *
 * Threads: everything here may be called from any thread. Certificates and
 * stores are read-only after they are built; their references are atomic.
 * fg_tls_set_alpn() and fg_tls_set_ktls() are process-wide settings meant
 * to be called at start-up (they are atomic, but connections already made
 * keep what they had).
 *
 * Errors: negative errno, and a reason in why[] (never Secret contents):
 * -EINVAL bad input, -ENOENT a missing key, -EKEYREJECTED the key does not
 * match the certificate (or OpenSSL refuses the pair), -EKEYEXPIRED outside
 * the validity period, -EOPNOTSUPP no kernel TLS, -ENOMEM.
 */
#ifndef FG_TLS_H
#define FG_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define FG_TLS_WHY_LEN 256
#define FG_TLS_SECRET_TYPE "kubernetes.io/tls"

/* ---------- process-wide settings ---------- */

/*
 * ALPN protocols the servers select, in the gateway's order of preference,
 * comma-separated ("http/1.1" by default; "h2,http/1.1" once the proxy
 * speaks HTTP/2). A client that offers ALPN without any of them gets a
 * fatal no_application_protocol alert (RFC 7301); one that offers no ALPN
 * gets none. 0 or -EINVAL.
 */
int fg_tls_set_alpn(const char *list);
/* Kernel TLS on the server SSLs made from now on (fg_tls_new_server_ssl).
 * Turning it on when fg_ktls_probe() failed returns -EOPNOTSUPP. */
int fg_tls_set_ktls(bool on);

/* ---------- certificates ---------- */

struct fg_tls_cert;

/*
 * From a Secret object (JSON, as the API or a config file has it): type
 * must be kubernetes.io/tls; tls.crt and tls.key come from stringData
 * (plain) or data (base64), stringData winning as in Kubernetes. tls.crt
 * holds the leaf first, then its chain; tls.key the leaf's key (PKCS#8,
 * PKCS#1 or SEC1, not encrypted). The validity period is not checked here
 * (fg_tls_cert_check_time), nor host names (fg_tls_cert_covers).
 */
int fg_tls_cert_from_secret(json_t *secret, struct fg_tls_cert **out, char *why, size_t len);
/* From PEM text; name is what the certificate is called in reasons and
 * listings ("ns/name", a file name). */
int fg_tls_cert_from_pem(const char *crt, size_t crt_len, const char *key, size_t key_len,
			 const char *name, struct fg_tls_cert **out, char *why, size_t len);
/* From PEM files (--default-cert/--default-key). */
int fg_tls_cert_from_files(const char *crt_path, const char *key_path,
			   struct fg_tls_cert **out, char *why, size_t len);

/*
 * Key and certificate generation (EVP), for the fake certificate, the kTLS
 * probe and the tests. Defaults (zeroed fields): EC P-256, serverAuth leaf,
 * valid from one hour ago for 365 days, self-signed.
 */
struct fg_tls_gen_opts {
	const char *cn;            /* subject CN (NULL: none) */
	const char *const *sans;   /* DNS names, NULL-terminated (NULL: none) */
	const char *key_type;      /* "EC" (P-256) or "RSA" */
	unsigned int rsa_bits;     /* 0: 2048 */
	long not_before;           /* seconds from now (negative: past); 0: -3600 */
	long not_after;            /* seconds from now; 0: 365 days */
	bool ca;                   /* basicConstraints CA:TRUE, keyCertSign */
	X509 *issuer;              /* signer (NULL: self-signed) */
	EVP_PKEY *issuer_key;
};
int fg_tls_gen_cert(const struct fg_tls_gen_opts *o, X509 **crt, EVP_PKEY **key, char *why,
		    size_t len);
/* The fake certificate: self-signed, CN "Fleetgate Fake Certificate",
 * SAN fleetgate.invalid, a year. */
int fg_tls_cert_self_signed(struct fg_tls_cert **out, char *why, size_t len);

struct fg_tls_cert *fg_tls_cert_get(struct fg_tls_cert *c);
void fg_tls_cert_put(struct fg_tls_cert *c);

/* Read-only views, valid as long as the reference. */
X509 *fg_tls_cert_x509(const struct fg_tls_cert *c);
STACK_OF(X509) *fg_tls_cert_chain(const struct fg_tls_cert *c); /* NULL: none */
const char *fg_tls_cert_name(const struct fg_tls_cert *c);
const char *fg_tls_cert_subject(const struct fg_tls_cert *c); /* "CN=a.example.com,O=..." */
const char *fg_tls_cert_issuer(const struct fg_tls_cert *c);
time_t fg_tls_cert_not_before(const struct fg_tls_cert *c);
time_t fg_tls_cert_not_after(const struct fg_tls_cert *c);
bool fg_tls_cert_generated(const struct fg_tls_cert *c);
/* Within [notBefore, notAfter] at now: 0, else -EKEYEXPIRED with "expired
 * on 2024-01-31T12:00:00Z" or "not valid before ...". */
int fg_tls_cert_check_time(const struct fg_tls_cert *c, time_t now, char *why, size_t len);
/*
 * Whether the certificate is valid for host: a name ("a.example.com",
 * checked by X509_check_host: DNS SANs, or the CN when there are none;
 * "*.example.com" SANs match one label, no partial wildcards) or a
 * wildcard host ("*.example.com": the certificate must carry that very
 * wildcard).
 */
bool fg_tls_cert_covers(const struct fg_tls_cert *c, const char *host);
/* "2024-01-31T12:00:00Z" */
void fg_tls_time_str(time_t t, char *buf, size_t len);

/* ---------- the SNI store ---------- */

struct fg_tls_store;

struct fg_tls_store_entry {
	const char *host;          /* "a.example.com" or "*.example.com" */
	struct fg_tls_cert *cert;  /* the store takes its own reference */
};

/*
 * A store over entries (copied; a host given twice keeps its first
 * certificate) with dflt for every other name (required: the fake
 * certificate when nothing else). gen is what fg_tls_store_generation()
 * says (the control plane numbers its stores). 0, -EINVAL or -ENOMEM.
 */
int fg_tls_store_new(const struct fg_tls_store_entry *entries, size_t n,
		     struct fg_tls_cert *dflt, unsigned long gen, struct fg_tls_store **out);
struct fg_tls_store *fg_tls_store_get(struct fg_tls_store *s);
void fg_tls_store_put(struct fg_tls_store *s);
unsigned long fg_tls_store_generation(const struct fg_tls_store *s);
size_t fg_tls_store_size(const struct fg_tls_store *s);
struct fg_tls_cert *fg_tls_store_default(const struct fg_tls_store *s);
/* The certificate for a server name (case-insensitive, a trailing dot
 * ignored): exact, then wildcard, else NULL. Borrowed. */
struct fg_tls_cert *fg_tls_store_find(const struct fg_tls_store *s, const char *name);
/* The same, falling back to the default (never NULL; name may be NULL). */
struct fg_tls_cert *fg_tls_store_lookup(const struct fg_tls_store *s, const char *name);
/* Whether both stores map every name to the same certificates. */
bool fg_tls_store_same(const struct fg_tls_store *a, const struct fg_tls_store *b);

/* The server context every fg_tls_new_server_ssl() connection comes from
 * (borrowed; NULL when OpenSSL could not be set up). */
SSL_CTX *fg_tls_server_ctx(void);
/*
 * A server SSL whose certificate the certificate callback takes from store
 * (a new reference, released by SSL_free()). The caller attaches the socket
 * (SSL_set_fd: kernel TLS needs the socket BIO) and runs SSL_accept or
 * SSL_do_handshake as usual. NULL on failure (ENOMEM).
 */
SSL *fg_tls_new_server_ssl(struct fg_tls_store *s);
/* The store a server SSL was made from, and the certificate its handshake
 * chose (the default until the ClientHello is read). Borrowed. */
struct fg_tls_store *fg_tls_ssl_store(const SSL *ssl);
struct fg_tls_cert *fg_tls_ssl_cert(const SSL *ssl);

/* ---------- upstream (client) contexts ---------- */

/*
 * A client context for HTTPS upstreams: TLS 1.2 and 1.3, default ciphers.
 * verify false (ingress-nginx's proxy-ssl-verify off, the default): the
 * upstream's certificate is not checked. verify true: the chain must lead
 * to a certificate of ca_pem (ca.crt of proxy-ssl-secret), or to the
 * system's CAs when ca_pem is NULL. client (may be NULL) is presented when
 * the upstream asks for a client certificate (proxy-ssl-secret's tls.crt
 * and tls.key). Free with SSL_CTX_free().
 */
int fg_tls_client_ctx(bool verify, const char *ca_pem, size_t ca_len,
		      struct fg_tls_cert *client, SSL_CTX **out, char *why, size_t len);
/* ca.crt of a Secret (data, base64, or stringData) into *pem (malloc'ed,
 * NUL-terminated). -ENOENT when it has none. */
int fg_tls_secret_ca(json_t *secret, char **pem, size_t *pem_len, char *why, size_t len);
/*
 * A client SSL: sni (NULL: none; proxy-ssl-server-name) is sent in the
 * ClientHello; verify_host (NULL: none) is the name the certificate must
 * carry when the context verifies (proxy-ssl-name, else the upstream's
 * host). NULL on failure.
 */
SSL *fg_tls_new_client_ssl(SSL_CTX *ctx, const char *sni, const char *verify_host);

/* ---------- kernel TLS ---------- */

struct fg_ktls_caps {
	bool openssl;      /* libssl was built with kTLS (not OPENSSL_NO_KTLS) */
	bool ulp;          /* the kernel took TCP_ULP "tls" on a TCP socket */
	bool tx12, rx12;   /* after a TLS 1.2 handshake on loopback */
	bool tx13, rx13;   /* after a TLS 1.3 handshake on loopback */
	char why[FG_TLS_WHY_LEN];
};

/*
 * Can this process use kernel TLS? Probes once (later calls return the
 * same): OpenSSL's build, setsockopt(TCP_ULP, "tls") on a connected
 * loopback TCP socket, then real handshakes (TLS 1.2 and 1.3, AES-GCM) on
 * loopback with SSL_OP_ENABLE_KTLS, checking which directions OpenSSL put
 * in the kernel and that records sent through them decrypt. Returns 1
 * when at least sending works in the kernel, 0 when not; why says which
 * directions work, or why none does ("no kernel TLS: setsockopt(TCP_ULP,
 * \"tls\"): No such file or directory (the kernel has no CONFIG_TLS, or
 * the tls module cannot be loaded)").
 */
int fg_ktls_probe(char *why, size_t len);
/* The probe's details (probing first if needed). */
const struct fg_ktls_caps *fg_ktls_caps(void);
/* Sets SSL_OP_ENABLE_KTLS on a context (a client one, say) when the probe
 * passed; else -EOPNOTSUPP with the probe's reason. Server connections
 * get it from fg_tls_set_ktls(). */
int fg_tls_ktls_enable(SSL_CTX *ctx, char *why, size_t len);
/* After the handshake: whether OpenSSL moved sending / receiving of this
 * SSL into the kernel. */
void fg_tls_ssl_ktls(SSL *ssl, bool *tx, bool *rx);

/* ---------- helpers ---------- */

/* Base64 (standard alphabet, padding; ASCII whitespace ignored) into a
 * malloc'ed, NUL-terminated buffer. 0 or -EINVAL/-ENOMEM. */
int fg_b64_decode(const char *in, size_t in_len, unsigned char **out, size_t *out_len);
/* Live objects, for the tests' leak checks. */
long fg_tls_live_certs(void);
long fg_tls_live_stores(void);

#endif
