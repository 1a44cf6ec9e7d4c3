// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TLS termination in the proxy, end to end on loopback in a private
 * network namespace: a config directory with Ingresses whose spec.tls
 * names Secrets (certificates generated here), the proxy with an HTTP and
 * a TLS listener and two workers on their own threads, a control thread
 * like the agent's (control plane events, mark-downs, route and
 * certificate publication), an upstream that echoes what it received
 * (selftests/e2e/proxy_upstream.py), and OpenSSL clients that check which
 * certificate they were given.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "control.h"
#include "dataplane.h"
#include "metrics.h"
#include "proxy.h"
#include "e2e_lib.h"
#include "test_progs.h"
#include "tls.h"

#define CL1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define UP_ADDR "127.0.0.91"
#define UP_TLS_ADDR "127.0.0.92"
#define UP_NAME "up.internal"
#define WS_PY "/usr/bin/python3"

static struct {
	struct fg_dataplane *dp;
	struct fg_control *control;
	struct fg_proxy *proxy;
	pthread_t thr;
	bool thr_running;
	volatile bool stop;
	pthread_mutex_t lock;
	__u16 port, tls_port;
	int up_port;
	pid_t up_pid, up_tls_pid;
	int up_tls_port;
	char up_pem[PATH_MAX], up_key[PATH_MAX]; /* the HTTPS upstream's pair */
	char dir[PATH_MAX - 256];
	char scripts[PATH_MAX - 64];
} S;

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What the agent's loop does for the proxy and the control plane. */
static void *control_loop(void *arg)
{
	struct pollfd pfd[2] = {
		{ .fd = fg_proxy_fd(S.proxy), .events = POLLIN },
		{ .fd = fg_control_fd(S.control), .events = POLLIN },
	};

	while (!S.stop) {
		poll(pfd, pfd[1].fd >= 0 ? 2 : 1, 20);
		pthread_mutex_lock(&S.lock);
		fg_control_process(S.control);
		fg_proxy_process(S.proxy);
		fg_proxy_sync_routes(S.proxy);
		fg_proxy_tick(S.proxy);
		pthread_mutex_unlock(&S.lock);
	}
	return NULL;
}

static int put(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whole files (a rename), as an operator's tools write them. */
static int put(const char *rel, const char *fmt, ...)
{
	char path[PATH_MAX], tmp[PATH_MAX + 32];
	va_list ap;
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/%s", S.dir, rel);
	snprintf(tmp, sizeof(tmp), "%s/.%d.tmp", S.dir, rand());
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

/* A Secret for cn (and sans) with a subject O that tells versions apart. */
static int secret(const char *name, const char *cn, const char *san, const char *org)
{
	const char *sans[] = { san, NULL };
	struct fg_tls_gen_opts o = { .cn = cn, .sans = sans };
	char why[FG_TLS_WHY_LEN], *crt = NULL, *key = NULL, rel[128];
	BIO *bc = BIO_new(BIO_s_mem()), *bk = BIO_new(BIO_s_mem());
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int err = -EIO;

	if (!bc || !bk || fg_tls_gen_cert(&o, &x, &k, why, sizeof(why)))
		goto out;
	/* The organisation marks a rotation (same names, new certificate). */
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "O", MBSTRING_ASC,
				   (const unsigned char *)org, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (!X509_sign(x, k, EVP_sha256()) || PEM_write_bio_X509(bc, x) != 1 ||
	    PEM_write_bio_PrivateKey(bk, k, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	{
		char *p;
		long n = BIO_get_mem_data(bc, &p);

		crt = malloc(4 * ((n + 2) / 3) + 1);
		if (crt)
			EVP_EncodeBlock((unsigned char *)crt, (unsigned char *)p, (int)n);
		n = BIO_get_mem_data(bk, &p);
		key = malloc(4 * ((n + 2) / 3) + 1);
		if (key)
			EVP_EncodeBlock((unsigned char *)key, (unsigned char *)p, (int)n);
	}
	if (!crt || !key)
		goto out;
	snprintf(rel, sizeof(rel), "fleet/secret-%s.yaml", name);
	err = put(rel, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: web\n"
		  "type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n", name, crt, key);
out:
	free(crt);
	free(key);
	BIO_free(bc);
	BIO_free(bk);
	X509_free(x);
	EVP_PKEY_free(k);
	return err;
}

static int ingress(const char *name, const char *host, const char *tls_secret,
		   const char *annotations)
{
	char rel[128], tls[256] = "";

	if (tls_secret)
		snprintf(tls, sizeof(tls), "  tls:\n  - hosts: [\"%s\"]\n    secretName: %s\n", host,
			 tls_secret);
	snprintf(rel, sizeof(rel), "fleet/ing-%s.yaml", name);
	return put(rel, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: %s\n"
		   "  namespace: web\n%sspec:\n  ingressClassName: mse\n%s  rules:\n"
		   "  - host: \"%s\"\n    http:\n      paths:\n      - path: /\n"
		   "        pathType: Prefix\n        backend:\n          service:\n"
		   "            name: echo\n            port:\n              number: 80\n",
		   name, annotations, tls, host);
}

/* The HTTPS upstream's certificate (self-signed for UP_NAME) as files for
 * the upstream, and as a Secret (tls.crt/tls.key and ca.crt, itself) for
 * proxy-ssl-secret. */
static int upstream_secret(void)
{
	const char *sans[] = { UP_NAME, NULL };
	struct fg_tls_gen_opts o = { .cn = UP_NAME, .sans = sans };
	char why[FG_TLS_WHY_LEN], *crt = NULL, *key = NULL;
	BIO *bc = BIO_new(BIO_s_mem()), *bk = BIO_new(BIO_s_mem());
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	FILE *f;
	int err = -EIO;

	snprintf(S.up_pem, sizeof(S.up_pem), "%s/up.pem", test__tmpdir());
	snprintf(S.up_key, sizeof(S.up_key), "%s/up.key", test__tmpdir());
	if (!bc || !bk || fg_tls_gen_cert(&o, &x, &k, why, sizeof(why)) ||
	    PEM_write_bio_X509(bc, x) != 1 ||
	    PEM_write_bio_PrivateKey(bk, k, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	f = fopen(S.up_pem, "w");
	if (!f || PEM_write_X509(f, x) != 1 || fclose(f))
		goto out;
	f = fopen(S.up_key, "w");
	if (!f || PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1 || fclose(f))
		goto out;
	{
		char *p;
		long n = BIO_get_mem_data(bc, &p);

		crt = malloc(4 * ((n + 2) / 3) + 1);
		if (crt)
			EVP_EncodeBlock((unsigned char *)crt, (unsigned char *)p, (int)n);
		n = BIO_get_mem_data(bk, &p);
		key = malloc(4 * ((n + 2) / 3) + 1);
		if (key)
			EVP_EncodeBlock((unsigned char *)key, (unsigned char *)p, (int)n);
	}
	if (crt && key)
		err = put("fleet/secret-upstream-ca.yaml",
			  "apiVersion: v1\nkind: Secret\nmetadata:\n  name: upstream-ca\n"
			  "  namespace: web\ntype: kubernetes.io/tls\ndata:\n  tls.crt: %s\n"
			  "  tls.key: %s\n  ca.crt: %s\n", crt, key, crt);
out:
	free(crt);
	free(key);
	BIO_free(bc);
	BIO_free(bk);
	X509_free(x);
	EVP_PKEY_free(k);
	return err;
}

static int https_ingress(const char *name, const char *annotations)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "fleet/ing-%s.yaml", name);
	return put(rel, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: %s\n"
		   "  namespace: web\n  annotations:\n"
		   "    nginx.ingress.kubernetes.io/backend-protocol: HTTPS\n%s"
		   "spec:\n  ingressClassName: mse\n  rules:\n"
		   "  - host: \"%s.example.com\"\n    http:\n      paths:\n      - path: /\n"
		   "        pathType: Prefix\n        backend:\n          service:\n"
		   "            name: echo-tls\n            port:\n              number: 443\n",
		   name, annotations, name);
}

/* Unverified (the default), verified against the Secret's ca.crt with
 * the right name, and with a name the certificate does not carry. */
static int https_ingresses(void)
{
	int err = https_ingress("secure", "");

	if (!err)
		err = https_ingress("verified",
				    "    nginx.ingress.kubernetes.io/proxy-ssl-verify: \"on\"\n"
				    "    nginx.ingress.kubernetes.io/proxy-ssl-secret: upstream-ca\n"
				    "    nginx.ingress.kubernetes.io/proxy-ssl-name: " UP_NAME "\n"
				    "    nginx.ingress.kubernetes.io/proxy-ssl-server-name: \"on\"\n");
	if (!err)
		err = https_ingress("wrongname",
				    "    nginx.ingress.kubernetes.io/proxy-ssl-verify: \"on\"\n"
				    "    nginx.ingress.kubernetes.io/proxy-ssl-secret: upstream-ca\n"
				    "    nginx.ingress.kubernetes.io/proxy-ssl-name: other.internal\n");
	if (!err)
		err = put("clusters/" CL1 "/echo-tls.yaml",
			  "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo-tls\n"
			  "  namespace: web\nspec:\n  ports:\n  - name: https\n    port: 443\n"
			  "    targetPort: %d\n---\napiVersion: discovery.k8s.io/v1\n"
			  "kind: EndpointSlice\nmetadata:\n  name: echo-tls-x\n  namespace: web\n"
			  "  labels:\n    kubernetes.io/service-name: echo-tls\naddressType: IPv4\n"
			  "ports:\n- name: https\n  port: %d\nendpoints:\n- addresses:\n"
			  "  - " UP_TLS_ADDR "\n  conditions:\n    ready: true\n",
			  S.up_tls_port, S.up_tls_port);
	return err;
}

static int write_config(void)
{
	int err;

	snprintf(S.dir, sizeof(S.dir), "%s/tlscfg", test__tmpdir());
	if (fg_sh("mkdir -p '%s/fleet' '%s/clusters/" CL1 "'", S.dir, S.dir))
		return -EIO;
	err = put("fleet/gw.yaml",
		  "apiVersion: mse.alibabacloud.com/v1alpha1\nkind: MseIngressConfig\n"
		  "metadata:\n  name: gw\n  annotations:\n"
		  "    mse.alibabacloud.com/remote-clusters: " CL1 "\n"
		  "spec:\n  ingress:\n    local:\n      ingressClass: mse\n");
	if (!err)
		err = put("clusters/" CL1 "/echo.yaml",
			  "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\n  namespace: web\n"
			  "spec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: %d\n---\n"
			  "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
			  "  name: echo-x\n  namespace: web\n  labels:\n"
			  "    kubernetes.io/service-name: echo\naddressType: IPv4\nports:\n"
			  "- name: http\n  port: %d\nendpoints:\n- addresses:\n  - " UP_ADDR "\n"
			  "  conditions:\n    ready: true\n", S.up_port, S.up_port);
	if (!err)
		err = secret("a-tls", "a.example.com", "a.example.com", "first");
	if (!err)
		err = secret("wild-tls", "*.wild.example.com", "*.wild.example.com", "wild");
	if (!err)
		err = ingress("a", "a.example.com", "a-tls", "");
	if (!err)
		err = ingress("wild", "*.wild.example.com", "wild-tls", "");
	if (!err)
		err = ingress("plain", "plain.example.com", NULL, "");
	/* ssl-redirect: off for a TLS host, forced for a plain one. */
	if (!err)
		err = secret("noredir-tls", "noredir.example.com", "noredir.example.com", "x");
	if (!err)
		err = ingress("noredir", "noredir.example.com", "noredir-tls",
			      "  annotations:\n    nginx.ingress.kubernetes.io/ssl-redirect: \"false\"\n");
	if (!err)
		err = ingress("force", "force.example.com", NULL,
			      "  annotations:\n"
			      "    nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"\n");
	/* TLS to the endpoints (an HTTPS upstream on UP_TLS_ADDR, its pair
	 * made by setup before it started). */
	if (!err)
		err = https_ingresses();
	return err;
}

/* ---------- the upstream ---------- */

static int find_scripts(void)
{
	return e2e_script_path("", S.scripts, sizeof(S.scripts));
}

/* An echo upstream on addr (HTTPS with the upstream pair when tls). */
static int start_upstream(const char *addr, bool tls, pid_t *pid, int *port)
{
	char ready[PATH_MAX], script[PATH_MAX + 32];
	pid_t parent = getpid();
	__u64 deadline = now_ms() + 15000;
	FILE *f;

	snprintf(ready, sizeof(ready), "%s/up-%s.ready", test__tmpdir(), addr);
	snprintf(script, sizeof(script), "%s/proxy_upstream.py", S.scripts);
	unlink(ready);
	fflush(stdout);
	*pid = fork();
	if (*pid < 0)
		return -errno;
	if (!*pid) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(126);
		if (tls)
			execlp("python3", "python3", script, "--addr", addr, "--name", "echo-tls",
			       "--ready", ready, "--tls-cert", S.up_pem, "--tls-key", S.up_key,
			       (char *)NULL);
		else
			execlp("python3", "python3", script, "--addr", addr, "--name", "echo",
			       "--ready", ready, (char *)NULL);
		_exit(127);
	}
	while (!(f = fopen(ready, "r"))) {
		if (now_ms() > deadline || waitpid(*pid, NULL, WNOHANG) == *pid)
			return -ETIMEDOUT;
		usleep(20000);
	}
	if (fscanf(f, "%d", port) != 1)
		*port = -1;
	fclose(f);
	return *port > 0 ? 0 : -EIO;
}

/* ---------- an HTTPS client ---------- */

struct tls_client {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

static void tc_close(struct tls_client *t)
{
	if (t->ssl) {
		SSL_shutdown(t->ssl);
		SSL_free(t->ssl);
	}
	if (t->fd >= 0)
		close(t->fd);
	SSL_CTX_free(t->ctx);
	memset(t, 0, sizeof(*t));
	t->fd = -1;
}

/* Connects and handshakes with SNI sni (NULL: none), no verification
 * (the test looks at the certificate itself). */
static int tc_open(struct tls_client *t, const char *sni, int max_version)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(S.tls_port) };
	struct timeval tv = { .tv_sec = 5 };

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ctx)
		return -ENOMEM;
	if (max_version)
		SSL_CTX_set_max_proto_version(t->ctx, max_version);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (t->fd < 0)
		return -errno;
	setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(t->fd, (struct sockaddr *)&sin, sizeof(sin)))
		return -errno;
	t->ssl = SSL_new(t->ctx);
	if (!t->ssl)
		return -ENOMEM;
	if (sni)
		SSL_set_tlsext_host_name(t->ssl, sni);
	SSL_set_fd(t->ssl, t->fd);
	if (SSL_connect(t->ssl) != 1) {
		ERR_clear_error();
		return -EPROTO;
	}
	return 0;
}

/* The peer certificate's subject "CN=...,O=..." (oneline form). */
static void tc_subject(struct tls_client *t, char *buf, size_t len)
{
	X509 *x = SSL_get1_peer_certificate(t->ssl);

	buf[0] = '\0';
	if (x) {
		X509_NAME_oneline(X509_get_subject_name(x), buf, (int)len);
		X509_free(x);
	}
}

/* One request on the connection; the whole response (until it has
 * Content-Length bytes of body) into buf. Returns the status. */
static int tc_request(struct tls_client *t, const char *req, char *buf, size_t len)
{
	size_t got = 0;
	int status = -1;

	if (*req && SSL_write(t->ssl, req, (int)strlen(req)) <= 0)
		return -EIO;
	while (got < len - 1) {
		int n = SSL_read(t->ssl, buf + got, (int)(len - 1 - got));
		char *eoh, *cl;

		if (n <= 0)
			break;
		got += n;
		buf[got] = '\0';
		eoh = strstr(buf, "\r\n\r\n");
		cl = strcasestr(buf, "content-length:");
		if (eoh && cl && got >= (size_t)(eoh + 4 - buf) + strtoul(cl + 15, NULL, 10))
			break;
	}
	buf[got] = '\0';
	sscanf(buf, "HTTP/1.1 %d", &status);
	return status;
}

static int https_get(const char *sni, const char *host, const char *path, char *subject,
		     size_t slen, char *buf, size_t len)
{
	struct tls_client t;
	char req[512];
	int st;

	if (tc_open(&t, sni, 0)) {
		tc_close(&t);
		return -EPROTO;
	}
	if (subject)
		tc_subject(&t, subject, slen);
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
		 host);
	st = tc_request(&t, req, buf, len);
	tc_close(&t);
	return st;
}

static json_int_t tls_stat(const char *name)
{
	json_int_t v;
	json_t *j;

	pthread_mutex_lock(&S.lock);
	j = fg_proxy_stats(S.proxy);
	pthread_mutex_unlock(&S.lock);
	v = json_integer_value(json_object_get(json_object_get(j, "tls"), name));
	json_decref(j);
	return v;
}

/* ---------- subtests ---------- */

/* SNI picks the Ingress's certificate; the upstream is told https. */
static void subtest_sni(void)
{
	char subj[256], buf[16384];
	int st;

	st = https_get("a.example.com", "a.example.com", "/echo", subj, sizeof(subj), buf,
		       sizeof(buf));
	ASSERT_EQ(st, 200, "status");
	ASSERT_TRUE(strstr(subj, "CN=a.example.com") && strstr(subj, "O=first"),
		    "a.example.com's certificate");
	ASSERT_TRUE(strcasestr(buf, "X-Forwarded-Proto: https") != NULL, "upstream told https");
	if (test__verbose())
		printf("sni: %s\n", subj);
}

/* A wildcard Ingress host: its wildcard certificate for any one label. */
static void subtest_wildcard(void)
{
	char subj[256], buf[16384];

	ASSERT_EQ(https_get("x.wild.example.com", "x.wild.example.com", "/", subj, sizeof(subj),
			    buf, sizeof(buf)), 200, "status");
	ASSERT_TRUE(strstr(subj, "CN=*.wild.example.com") != NULL, "the wildcard certificate");
}

/* A name no Ingress has: the default (generated) certificate, and routing
 * by Host as on the HTTP listener (404 here). */
static void subtest_unknown_sni(void)
{
	char subj[256], buf[16384];

	ASSERT_EQ(https_get("nobody.test", "nobody.test", "/", subj, sizeof(subj), buf,
			    sizeof(buf)), 404, "no route");
	ASSERT_TRUE(strstr(subj, "Fleetgate Fake Certificate") != NULL, "the default certificate");
	/* No SNI at all: the default too. */
	ASSERT_EQ(https_get(NULL, "plain.example.com", "/", subj, sizeof(subj), buf, sizeof(buf)),
		  200, "routed by Host without SNI");
	ASSERT_TRUE(strstr(subj, "Fleetgate Fake Certificate") != NULL, "default without SNI");
}

/* Keep-alive, TLS 1.2 and 1.3, a body larger than a TLS record both ways. */
static void subtest_keepalive_and_bodies(void)
{
	static char body[300000], buf[700000];
	struct tls_client t;
	char req[512];
	int v, i, st;

	for (i = 0; i < (int)sizeof(body); i++)
		body[i] = 'a' + i % 26;
	for (v = 0; v < 2; v++) {
		if (!ASSERT_OK(tc_open(&t, "a.example.com", v ? TLS1_2_VERSION : 0), "handshake")) {
			tc_close(&t);
			return;
		}
		ASSERT_EQ(SSL_version(t.ssl), v ? TLS1_2_VERSION : TLS1_3_VERSION, "version");
		for (i = 0; i < 3; i++) {
			snprintf(req, sizeof(req),
				 "POST /echo HTTP/1.1\r\nHost: a.example.com\r\n"
				 "Content-Length: %zu\r\n\r\n", sizeof(body));
			if (SSL_write(t.ssl, req, (int)strlen(req)) <= 0 ||
			    SSL_write(t.ssl, body, sizeof(body)) <= 0) {
				ASSERT_TRUE(false, "write the request");
				break;
			}
			st = tc_request(&t, "", buf, sizeof(buf));
			ASSERT_EQ(st, 200, "status");
			ASSERT_TRUE(memmem(buf, strlen(buf), body + 1000, 5000) != NULL,
				    "the body echoed");
		}
		tc_close(&t);
	}
	ASSERT_GE(tls_stat("tls12"), 1, "TLS 1.2 counted");
	ASSERT_GE(tls_stat("tls13"), 1, "TLS 1.3 counted");
}

/* A client that speaks plain HTTP to the TLS port: a failed handshake,
 * counted, and nobody else notices. */
static void subtest_bad_handshake(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(S.tls_port) };
	struct timeval tv = { .tv_sec = 5 };
	json_int_t before = tls_stat("handshakeErrors");
	char subj[256], buf[4096];
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (ASSERT_OK(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), "connect")) {
		const char *req = "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n";

		ASSERT_EQ(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req), "send");
		while (recv(fd, buf, sizeof(buf), 0) > 0)
			;
	}
	close(fd);
	ASSERT_EQ(https_get("a.example.com", "a.example.com", "/", subj, sizeof(subj), buf,
			    sizeof(buf)), 200, "others served");
	ASSERT_GE(tls_stat("handshakeErrors") - before, 1, "counted");
}

/* The Secret replaced: new handshakes get the new certificate, a
 * connection made before keeps working. */
static void subtest_rotation(void)
{
	char subj[256], buf[16384];
	struct tls_client old;
	__u64 deadline;
	int st;

	if (!ASSERT_OK(tc_open(&old, "a.example.com", 0), "connection before"))
		goto out;
	ASSERT_OK(secret("a-tls", "a.example.com", "a.example.com", "second"), "rotate");
	deadline = now_ms() + 5000;
	do {
		usleep(50000);
		st = https_get("a.example.com", "a.example.com", "/", subj, sizeof(subj), buf,
			       sizeof(buf));
	} while (!strstr(subj, "O=second") && now_ms() < deadline);
	ASSERT_EQ(st, 200, "status");
	ASSERT_TRUE(strstr(subj, "O=second") != NULL, "the new certificate");
	ASSERT_EQ(tc_request(&old, "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n", buf,
			     sizeof(buf)), 200, "the connection made before still works");
out:
	tc_close(&old);
}

/* WebSocket over TLS (wss://) with a real client; the upstream here is an
 * HTTP echo server, which refuses the upgrade: the refusal comes back
 * through TLS as an ordinary response. */
static void subtest_plain_listener_unchanged(void)
{
	char cmd[512], out[256] = "";
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "curl -s -o /dev/null -w '%%{http_code}' -H 'Host: plain.example.com' "
		 "http://127.0.0.1:%u/ 2>&1", S.port);
	f = popen(cmd, "r");
	if (!ASSERT_OK_PTR(f, "curl"))
		return;
	if (!fgets(out, sizeof(out), f))
		out[0] = '\0';
	pclose(f);
	ASSERT_STREQ(out, "200", "the HTTP listener serves as before");
}

/* curl (Debian's, a real client) through the TLS listener with SNI. */
static void subtest_curl(void)
{
	char cmd[512], out[256] = "";
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "curl -sk -o /dev/null -w '%%{http_code} %%{ssl_verify_result}' "
		 "--resolve a.example.com:%u:127.0.0.1 https://a.example.com:%u/ 2>&1",
		 S.tls_port, S.tls_port);
	f = popen(cmd, "r");
	if (!ASSERT_OK_PTR(f, "curl"))
		return;
	if (!fgets(out, sizeof(out), f))
		out[0] = '\0';
	pclose(f);
	ASSERT_TRUE(!strncmp(out, "200 ", 4), "curl got 200");
	if (test__verbose())
		printf("curl: %s\n", out);
}

/* A plain request, its status and the Location it got. */
static int http_get(const char *host, const char *target, char *location, size_t len)
{
	char cmd[512], out[1024] = "";
	int status = -1;
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "curl -s -o /dev/null -w '%%{http_code} %%{redirect_url}' -H 'Host: %s' "
		 "'http://127.0.0.1:%u%s' 2>&1", host, S.port, target);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (!fgets(out, sizeof(out), f))
		out[0] = '\0';
	pclose(f);
	location[0] = '\0';
	sscanf(out, "%d %1000s", &status, location);
	(void)len;
	return status;
}

/* ssl-redirect (true by default for a tls: host), turned off, forced. */
static void subtest_ssl_redirect(void)
{
	char loc[1100], want[256];

	ASSERT_EQ(http_get("a.example.com", "/x/y?z=1", loc, sizeof(loc)), 308, "TLS host");
	snprintf(want, sizeof(want), "https://a.example.com:%u/x/y?z=1", S.tls_port);
	ASSERT_STREQ(loc, want, "to https, path and query kept");
	ASSERT_EQ(http_get("noredir.example.com", "/", loc, sizeof(loc)), 200,
		  "ssl-redirect: false");
	ASSERT_EQ(http_get("plain.example.com", "/", loc, sizeof(loc)), 200, "no TLS: served");
	ASSERT_EQ(http_get("force.example.com", "/p", loc, sizeof(loc)), 308,
		  "force-ssl-redirect");
}

/* backend-protocol HTTPS: the request reaches the HTTPS upstream; with
 * proxy-ssl-verify against the Secret's ca.crt; a name the certificate
 * does not carry fails verification (502), nothing else does. */
static void subtest_backend_https(void)
{
	char subj[256], buf[16384];

	ASSERT_EQ(https_get("secure.example.com", "secure.example.com", "/echo", subj, sizeof(subj),
			    buf, sizeof(buf)), 200, "unverified (default)");
	ASSERT_TRUE(strstr(buf, "echo-tls") != NULL, "answered by the HTTPS upstream");
	ASSERT_EQ(https_get("verified.example.com", "verified.example.com", "/echo", subj,
			    sizeof(subj), buf, sizeof(buf)), 200, "verified with ca.crt");
	ASSERT_EQ(https_get("wrongname.example.com", "wrongname.example.com", "/echo", subj,
			    sizeof(subj), buf, sizeof(buf)), 502, "verification failed");
	ASSERT_TRUE(strstr(buf, "certificate") != NULL, "the 502 says why");
	if (test__verbose())
		printf("wrong name: %.300s\n", buf);
	/* Plain HTTP on the HTTP listener reaches it too. */
	{
		char loc[1100];

		ASSERT_EQ(http_get("secure.example.com", "/", loc, sizeof(loc)), 200,
			  "from the HTTP listener");
	}
}

/* The TLS metrics (docs/operations.md), in the exposition text, after
 * the handshakes and failures above. */
static void subtest_metrics(void)
{
	struct fg_metrics *m = NULL;
	struct fg_expo e;
	char want[256];

	fg_expo_init(&e);
	if (!ASSERT_OK(fg_metrics_new(&m, S.dp, S.control, NULL), "metrics"))
		return;
	pthread_mutex_lock(&S.lock);
	ASSERT_OK(fg_metrics_set_proxy(m, S.proxy), "set proxy");
	ASSERT_OK(fg_metrics_render(m, &e), "render");
	pthread_mutex_unlock(&S.lock);
	if (!ASSERT_FALSE(e.oom, "complete"))
		goto out;
	snprintf(want, sizeof(want),
		 "fleetgate_tls_handshakes_total{listener=\"127.0.0.1:%u\",version=\"TLSv1.3\"} ",
		 S.tls_port);
	ASSERT_TRUE(strstr(e.buf, want) != NULL, "handshakes by listener and version");
	snprintf(want, sizeof(want),
		 "fleetgate_tls_handshake_errors_total{listener=\"127.0.0.1:%u\",reason=\"protocol\"} ",
		 S.tls_port);
	ASSERT_TRUE(strstr(e.buf, want) != NULL, "failures by reason");
	ASSERT_TRUE(strstr(e.buf, "fleetgate_tls_certificate_expiry_timestamp_seconds{"
				  "namespace=\"web\",secret=\"a-tls\",host=\"a.example.com\"} ") != NULL,
		    "a.example.com's certificate expiry");
	ASSERT_TRUE(strstr(e.buf, "host=\"(default)\"") != NULL, "the default certificate");
	if (test__verbose()) {
		char *p = strstr(e.buf, "# HELP fleetgate_tls_handshakes_total");

		printf("%.1500s\n", p ? p : "(no TLS metrics)");
	}
out:
	fg_expo_free(&e);
	fg_metrics_free(m);
}

/* ---------- setup ---------- */

static int setup(void)
{
	struct fg_control_opts copts = {};
	struct fg_dp_opts dopts = { .max_services = 1024, .max_backends = 4096,
				    .max_rings = 4096 };
	struct fg_proxy_opts popts;
	int err;

	err = start_upstream(UP_ADDR, false, &S.up_pid, &S.up_port);
	if (!ASSERT_OK(err, "upstream"))
		return err;
	/* The HTTPS upstream's pair is written by write_config (upstream_secret)
	 * first: its port is needed by the Service, so the pair comes first. */
	snprintf(S.dir, sizeof(S.dir), "%s/tlscfg", test__tmpdir());
	if (fg_sh("mkdir -p '%s/fleet'", S.dir) || upstream_secret())
		return -EIO;
	err = start_upstream(UP_TLS_ADDR, true, &S.up_tls_pid, &S.up_tls_port);
	if (!ASSERT_OK(err, "HTTPS upstream"))
		return err;
	err = write_config();
	if (!ASSERT_OK(err, "config"))
		return err;
	err = fg_dp_load(&S.dp, &dopts);
	if (err)
		return err;
	copts.config_dir = S.dir;
	err = fg_control_new(&S.control, S.dp, &copts);
	if (!ASSERT_OK(err, "control"))
		return err;
	fg_control_set_state(S.control, true, true);
	err = fg_control_recompute(S.control);
	if (!ASSERT_OK(err, "recompute"))
		return err;
	fg_proxy_opts_init(&popts);
	fg_addr_parse("127.0.0.1", &popts.addr, &popts.family);
	popts.workers = 2;
	popts.n_tls_listen = 1;
	fg_addr_parse("127.0.0.1", &popts.tls_listen[0].addr, &popts.tls_listen[0].family);
	err = fg_proxy_open(&S.proxy, S.control, S.dp, &popts);
	if (!ASSERT_OK(err, "fg_proxy_open"))
		return err;
	err = fg_proxy_start(S.proxy);
	if (!ASSERT_OK(err, "fg_proxy_start"))
		return err;
	S.port = fg_proxy_port(S.proxy);
	S.tls_port = fg_proxy_tls_port(S.proxy, 0);
	if (!ASSERT_GT(S.tls_port, 0, "TLS port"))
		return -EINVAL;
	pthread_mutex_init(&S.lock, NULL);
	err = pthread_create(&S.thr, NULL, control_loop, NULL);
	if (err)
		return -err;
	S.thr_running = true;
	return 0;
}

static void teardown(void)
{
	if (S.thr_running) {
		S.stop = true;
		pthread_join(S.thr, NULL);
		pthread_mutex_destroy(&S.lock);
	}
	fg_proxy_close(S.proxy);
	fg_control_free(S.control);
	if (S.dp)
		fg_dp_close(S.dp, false);
	if (S.up_pid > 0) {
		kill(S.up_pid, SIGTERM);
		waitpid(S.up_pid, NULL, 0);
	}
	if (S.up_tls_pid > 0) {
		kill(S.up_tls_pid, SIGTERM);
		waitpid(S.up_tls_pid, NULL, 0);
	}
}

static void proxy_tls_body(void)
{
	int err;

	memset(&S, 0, sizeof(S));
	if (find_scripts()) {
		test__skip("selftests/e2e not found");
		return;
	}
	err = setup();
	if (err) {
		if (err == -EPERM || err == -EOPNOTSUPP)
			test__skip("cannot set up: %s", strerror(-err));
		else
			ASSERT_OK(err, "setup");
		goto out;
	}
	if (test__start_subtest("sni"))
		subtest_sni();
	if (test__start_subtest("wildcard"))
		subtest_wildcard();
	if (test__start_subtest("unknown_sni"))
		subtest_unknown_sni();
	if (test__start_subtest("keepalive_and_bodies"))
		subtest_keepalive_and_bodies();
	if (test__start_subtest("bad_handshake"))
		subtest_bad_handshake();
	if (test__start_subtest("curl"))
		subtest_curl();
	if (test__start_subtest("plain_listener"))
		subtest_plain_listener_unchanged();
	if (test__start_subtest("ssl_redirect"))
		subtest_ssl_redirect();
	if (test__start_subtest("backend_https"))
		subtest_backend_https();
	if (test__start_subtest("rotation"))
		subtest_rotation();
	if (test__start_subtest("metrics"))
		subtest_metrics();
out:
	teardown();
}

FG_TEST(proxy_tls)
{
	int ns = test__netns_private();

	if (ns < 0) {
		test__skip("no private network namespace: %s", strerror(-ns));
		return;
	}
	proxy_tls_body();
	test__netns_restore(ns);
}
