// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The everyday Ingress annotations in the L7 proxy, through real sockets:
 * a private network namespace, python upstreams on 127.0.0.x
 * (selftests/e2e/proxy_upstream.py, which logs every request line it
 * reads), a config directory read by the control plane, and the proxy
 * with two workers on their own threads, as the agent runs it. A second
 * gateway replica (its own data plane, control plane and proxy, from the
 * same directory) checks that a session cookie means the same endpoint
 * on every replica. Clients bind 127.0.0.x source addresses for the
 * source-range checks.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "control.h"
#include "dataplane.h"
#include "proxy.h"
#include "e2e_lib.h"
#include "test_progs.h"

#define C1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define C2 "c15d48ca9d1fd43f9bbb89c56a474843c"
#define GLOBAL_READ_MS 4000
#define N_REPLICAS 2

enum { SRV_APP, SRV_EP41, SRV_EP42, SRV_EP43, SRV_EP44, N_SERVERS };

static const struct {
	const char *addr, *name;
} servers[N_SERVERS] = {
	{ "127.0.0.11", "cluster1" },
	{ "127.0.0.41", "ep41" },
	{ "127.0.0.42", "ep42" },
	{ "127.0.0.43", "ep43" },
	{ "127.0.0.44", "ep44" },
};

/* A gateway replica: data plane, control plane, proxy, and the thread
 * that plays the agent's control thread for it. */
struct replica {
	struct fg_dataplane *dp;
	struct fg_control *control;
	struct fg_proxy *proxy;
	pthread_t thr;
	bool thr_running;
	pthread_mutex_t lock;
	__u16 port;
};

static struct {
	struct replica r[N_REPLICAS];
	volatile bool stop;
	int up_port;
	pid_t pids[N_SERVERS];
	char scripts[PATH_MAX];
	char cfg[PATH_MAX - 128];
	/* request records of replica 0 (its workers' threads write them) */
	pthread_mutex_t rec_lock;
	int rec_status[64];
	bool rec_routed[64];
	unsigned n_rec;
} T;

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---------- upstreams ---------- */

static int find_scripts(void)
{
	return e2e_script_path("proxy_upstream.py", T.scripts, sizeof(T.scripts));
}

static void server_log(int i, char *buf, size_t len)
{
	snprintf(buf, len, "%s/ann-upstream%d.log", test__tmpdir(), i);
}

static pid_t spawn_server(int i, int port, const char *ready)
{
	char pbuf[16], log[PATH_MAX];
	pid_t parent = getpid(), pid;
	int fd;

	snprintf(pbuf, sizeof(pbuf), "%d", port);
	server_log(i, log, sizeof(log));
	unlink(ready);
	unlink(log);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(126);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		dup2(fd, 0);
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	execlp("python3", "python3", T.scripts, "--addr", servers[i].addr, "--port", pbuf,
	       "--name", servers[i].name, "--ready", ready, (char *)NULL);
	_exit(127);
}

static int wait_ready(int i, const char *ready, int *port)
{
	__u64 deadline = now_ms() + 5000;
	int status;

	while (now_ms() < deadline) {
		FILE *f = fopen(ready, "r");

		if (f) {
			int ok = fscanf(f, "%d", port) == 1;

			fclose(f);
			if (ok)
				return 0;
		}
		if (waitpid(T.pids[i], &status, WNOHANG) == T.pids[i]) {
			T.pids[i] = 0;
			break;
		}
		sleep_ms(10);
	}
	printf("upstream %s did not come up\n", servers[i].addr);
	return -ETIMEDOUT;
}

static int start_servers(void)
{
	char ready[N_SERVERS][PATH_MAX];
	int i, port, err;

	for (i = 0; i < N_SERVERS; i++)
		snprintf(ready[i], sizeof(ready[i]), "%s/ann-upstream%d.ready", test__tmpdir(), i);
	/* The first picks a free port, the others take it on their own
	 * addresses: every EndpointSlice names one port. */
	T.pids[0] = spawn_server(0, 0, ready[0]);
	if (T.pids[0] < 0)
		return -errno;
	err = wait_ready(0, ready[0], &T.up_port);
	for (i = 1; !err && i < N_SERVERS; i++) {
		T.pids[i] = spawn_server(i, T.up_port, ready[i]);
		if (T.pids[i] < 0)
			return -errno;
	}
	for (i = 1; !err && i < N_SERVERS; i++)
		err = wait_ready(i, ready[i], &port);
	return err;
}

static void stop_server(int i)
{
	int status;

	if (T.pids[i] <= 0)
		return;
	kill(T.pids[i], SIGKILL);
	waitpid(T.pids[i], &status, 0);
	T.pids[i] = 0;
}

/* The upstream's log has a line "REQ ADDR METHOD TARGET" for target. */
static bool upstream_got(int i, const char *method, const char *target)
{
	char log[PATH_MAX], line[4096], want[2048];
	bool found = false;
	FILE *f;

	server_log(i, log, sizeof(log));
	snprintf(want, sizeof(want), "REQ %s %s %s\n", servers[i].addr, method, target);
	f = fopen(log, "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = !strcmp(line, want);
	fclose(f);
	return found;
}

/* ---------- configuration ---------- */

static int write_file(const char *dir, const char *name, const char *fmt, ...)
{
	char path[PATH_MAX];
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	return fclose(f) ? -errno : 0;
}

static char *ingress(const char *name, const char *host, const char *path, const char *type,
		     const char *svc, const char *annotations)
{
	char *s = NULL;

	if (asprintf(&s,
		     "---\n"
		     "apiVersion: networking.k8s.io/v1\n"
		     "kind: Ingress\n"
		     "metadata:\n"
		     "  name: %s\n"
		     "  namespace: web-demo\n"
		     "  annotations:\n"
		     "%s"
		     "spec:\n"
		     "  ingressClassName: mse\n"
		     "  rules:\n"
		     "  - host: %s\n"
		     "    http:\n"
		     "      paths:\n"
		     "      - path: %s\n"
		     "        pathType: %s\n"
		     "        backend:\n"
		     "          service:\n"
		     "            name: %s\n"
		     "            port:\n"
		     "              number: 80\n",
		     name, annotations, host, path, type, svc) < 0)
		return NULL;
	return s;
}

static char *service(const char *name, const char *const *addrs)
{
	char eps[1024] = "", *s = NULL;
	size_t i, o = 0;

	for (i = 0; addrs[i]; i++)
		o += snprintf(eps + o, sizeof(eps) - o,
			      "- addresses:\n  - %s\n  conditions:\n    ready: true\n", addrs[i]);
	if (asprintf(&s,
		     "---\n"
		     "apiVersion: v1\n"
		     "kind: Service\n"
		     "metadata:\n"
		     "  name: %s\n"
		     "  namespace: web-demo\n"
		     "spec:\n"
		     "  ports:\n"
		     "  - name: http\n"
		     "    protocol: TCP\n"
		     "    port: 80\n"
		     "    targetPort: %d\n"
		     "---\n"
		     "apiVersion: discovery.k8s.io/v1\n"
		     "kind: EndpointSlice\n"
		     "metadata:\n"
		     "  name: %s-abcde\n"
		     "  namespace: web-demo\n"
		     "  labels:\n"
		     "    kubernetes.io/service-name: %s\n"
		     "addressType: IPv4\n"
		     "ports:\n"
		     "- name: http\n"
		     "  protocol: TCP\n"
		     "  port: %d\n"
		     "endpoints:\n%s",
		     name, T.up_port, name, name, T.up_port, eps) < 0)
		return NULL;
	return s;
}

#define A(k, v) "    nginx.ingress.kubernetes.io/" k ": \"" v "\"\n"

static const struct {
	const char *name, *host, *path, *type, *svc, *anns;
} ingresses[] = {
	{ "range", "range.example.com", "/", "Prefix", "app",
	  A("whitelist-source-range", "127.0.0.5/32, 10.0.0.0/8") },
	{ "deny", "deny.example.com", "/", "Prefix", "app",
	  A("denylist-source-range", "127.0.0.7") },
	{ "rewrite", "rewrite.example.com", "/something(/|$)(.*)", "ImplementationSpecific", "app",
	  A("rewrite-target", "/$2") A("use-regex", "true") },
	{ "rewrite-args", "rw2.example.com", "/api/(v[0-9]+)/(.*)", "ImplementationSpecific",
	  "app", A("rewrite-target", "/$2/$1?src=fg") },
	{ "approot", "approot.example.com", "/", "Prefix", "app", A("app-root", "/app1") },
	{ "perm", "perm.example.com", "/", "Prefix", "app",
	  A("permanent-redirect", "https://new.example.org$request_uri") },
	{ "perm308", "perm308.example.com", "/", "Prefix", "app",
	  A("permanent-redirect", "https://new.example.org/") A("permanent-redirect-code", "308") },
	{ "temp", "temp.example.com", "/", "Prefix", "app",
	  A("temporal-redirect", "http://maintenance.example.org/") },
	{ "temp307", "temp307.example.com", "/", "Prefix", "app",
	  A("temporal-redirect", "http://maintenance.example.org/")
	  A("temporal-redirect-code", "307") },
	{ "vhost", "vhost.example.com", "/", "Prefix", "app",
	  A("upstream-vhost", "internal.svc.local") },
	{ "slow", "slow.example.com", "/", "Prefix", "app", A("proxy-read-timeout", "1") },
	{ "plain", "plain.example.com", "/", "Prefix", "app", "    x: \"y\"\n" },
	{ "body", "body.example.com", "/", "Prefix", "app", A("proxy-body-size", "1k") },
	{ "sticky", "sticky.example.com", "/", "Prefix", "sticky",
	  A("affinity", "cookie") A("session-cookie-name", "route")
	  A("session-cookie-max-age", "3600") },
};

static int write_config(void)
{
	static const char *const app[] = { "127.0.0.11", NULL };
	static const char *const sticky1[] = { "127.0.0.41", "127.0.0.42", "127.0.0.43", NULL };
	static const char *const sticky2[] = { "127.0.0.44", NULL };
	char fleet[PATH_MAX + 16], c1[PATH_MAX + 64], c2[PATH_MAX + 64];
	char *all = NULL, *s1 = NULL, *s2 = NULL, *s3 = NULL;
	size_t i, len = 0;
	int err = -ENOMEM;

	snprintf(T.cfg, sizeof(T.cfg), "%s/anncfg", test__tmpdir());
	snprintf(fleet, sizeof(fleet), "%s/fleet", T.cfg);
	snprintf(c1, sizeof(c1), "%s/clusters/" C1, T.cfg);
	snprintf(c2, sizeof(c2), "%s/clusters/" C2, T.cfg);
	if (fg_sh("mkdir -p '%s' '%s' '%s'", fleet, c1, c2))
		return -EIO;
	err = write_file(fleet, "gateway.yaml",
			 "apiVersion: mse.alibabacloud.com/v1alpha1\n"
			 "kind: MseIngressConfig\n"
			 "metadata:\n"
			 "  name: ackone-gateway\n"
			 "  annotations:\n"
			 "    mse.alibabacloud.com/remote-clusters: " C1 "," C2 "\n"
			 "spec:\n"
			 "  ingress:\n"
			 "    local:\n"
			 "      ingressClass: mse\n");
	if (err)
		return err;
	err = -ENOMEM;
	for (i = 0; i < sizeof(ingresses) / sizeof(ingresses[0]); i++) {
		char *one = ingress(ingresses[i].name, ingresses[i].host, ingresses[i].path,
				    ingresses[i].type, ingresses[i].svc, ingresses[i].anns);
		char *n;

		if (!one)
			goto out;
		n = realloc(all, len + strlen(one) + 1);
		if (!n) {
			free(one);
			goto out;
		}
		all = n;
		memcpy(all + len, one, strlen(one) + 1);
		len += strlen(one);
		free(one);
	}
	s1 = service("app", app);
	s2 = service("sticky", sticky1);
	s3 = service("sticky", sticky2);
	if (!all || !s1 || !s2 || !s3)
		goto out;
	err = write_file(fleet, "ingresses.yaml", "%s", all);
	if (!err)
		err = write_file(c1, "apps.yaml", "%s%s", s1, s2);
	if (!err)
		err = write_file(c2, "apps.yaml", "%s", s3);
out:
	free(all);
	free(s1);
	free(s2);
	free(s3);
	return err;
}

/* ---------- the gateway replicas ---------- */

static void on_request(const struct fg_request_record *rec, void *ctx)
{
	pthread_mutex_lock(&T.rec_lock);
	T.rec_status[T.n_rec % 64] = rec->status;
	T.rec_routed[T.n_rec % 64] = rec->routed;
	T.n_rec++;
	pthread_mutex_unlock(&T.rec_lock);
}

static void *replica_loop(void *arg)
{
	struct replica *r = arg;
	struct pollfd pfd = { .fd = fg_proxy_fd(r->proxy), .events = POLLIN };
	__u64 last_tick = 0;

	while (!T.stop) {
		poll(&pfd, 1, 20);
		pthread_mutex_lock(&r->lock);
		fg_proxy_process(r->proxy);
		fg_proxy_sync_routes(r->proxy);
		if (now_ms() - last_tick >= 50) {
			fg_proxy_tick(r->proxy);
			last_tick = now_ms();
		}
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

static int replica_start(struct replica *r, bool records)
{
	struct fg_control_opts copts = { .config_dir = T.cfg };
	struct fg_dp_opts dopts = {};
	struct fg_proxy_opts popts;
	int err;

	err = fg_dp_load(&r->dp, &dopts);
	if (err)
		return err;
	err = fg_control_new(&r->control, r->dp, &copts);
	if (!ASSERT_OK(err, "control"))
		return err;
	fg_control_set_state(r->control, true, true);
	err = fg_control_recompute(r->control);
	if (!ASSERT_OK(err, "recompute"))
		return err;
	if (!ASSERT_OK_PTR(fg_control_plan(r->control), "plan") ||
	    !ASSERT_EQ(fg_control_plan(r->control)->n_routes,
		       sizeof(ingresses) / sizeof(ingresses[0]), "every Ingress accepted"))
		return -EINVAL;
	fg_proxy_opts_init(&popts);
	fg_addr_parse("127.0.0.1", &popts.addr, &popts.family);
	popts.port = 0;
	popts.upstream_timeout_ms = GLOBAL_READ_MS;
	popts.upstream_connect_timeout_ms = 500;
	popts.workers = 2;
	if (records) {
		popts.on_request = on_request;
		popts.on_request_ctx = NULL;
	}
	err = fg_proxy_open(&r->proxy, r->control, r->dp, &popts);
	if (!ASSERT_OK(err, "fg_proxy_open"))
		return err;
	err = fg_proxy_start(r->proxy);
	if (!ASSERT_OK(err, "fg_proxy_start"))
		return err;
	r->port = fg_proxy_port(r->proxy);
	pthread_mutex_init(&r->lock, NULL);
	err = pthread_create(&r->thr, NULL, replica_loop, r);
	if (err)
		return -err;
	r->thr_running = true;
	return 0;
}

static void replica_stop(struct replica *r)
{
	if (r->thr_running) {
		pthread_join(r->thr, NULL);
		r->thr_running = false;
		pthread_mutex_destroy(&r->lock);
	}
	fg_proxy_close(r->proxy);
	fg_control_free(r->control);
	if (r->dp)
		fg_dp_close(r->dp, false);
	memset(r, 0, sizeof(*r));
}

/* ---------- a raw HTTP client ---------- */

struct resp {
	int status;
	char head[8192];
	char body[65536];
	size_t body_len;
	bool closed;        /* the proxy closed after the response (post) */
};

static int hc_open(int replica, const char *src)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(T.r[replica].port) };
	struct sockaddr_in from = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (src && (inet_pton(AF_INET, src, &from.sin_addr) != 1 ||
		    bind(fd, (struct sockaddr *)&from, sizeof(from)))) {
		close(fd);
		return -EADDRNOTAVAIL;
	}
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		close(fd);
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static const char *field(const struct resp *r, const char *name, char *val, size_t len)
{
	const char *p = r->head;
	size_t n = strlen(name);

	while ((p = strchr(p, '\n'))) {
		p++;
		if (!strncasecmp(p, name, n) && p[n] == ':') {
			const char *v = p + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strpbrk(v, "\r\n");
			snprintf(val, len, "%.*s", e ? (int)(e - v) : (int)strlen(v), v);
			return val;
		}
	}
	return NULL;
}

/* Sends the request (whole) and reads one response with a Content-Length
 * body (the proxy's and the upstream's all have one). */
static int exchange(int fd, const char *req, size_t req_len, struct resp *r)
{
	char buf[sizeof(r->head) + sizeof(r->body)], val[32], *eoh;
	size_t len = 0, hlen, cl;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	while (req_len) {
		n = send(fd, req, req_len, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* a 413 may come before the body is taken */
		req += n;
		req_len -= n;
	}
	while (!(eoh = memmem(buf, len, "\r\n\r\n", 4))) {
		n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		len += n;
	}
	hlen = eoh - buf + 4;
	snprintf(r->head, sizeof(r->head), "%.*s", (int)hlen, buf);
	if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
		return -EPROTO;
	cl = field(r, "Content-Length", val, sizeof(val)) ? strtoul(val, NULL, 10) : 0;
	if (cl > sizeof(r->body) - 1)
		return -E2BIG;
	while (len - hlen < cl) {
		n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		len += n;
	}
	memcpy(r->body, buf + hlen, cl);
	r->body_len = cl;
	return 0;
}

/* The proxy closes the connection within ms (nothing more comes). */
static bool closed_within(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;
	ssize_t n;

	if (poll(&pfd, 1, ms) <= 0)
		return false;
	n = recv(fd, &c, 1, MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* One GET on a new connection from src (NULL: 127.0.0.1) to a replica. */
static int get_from(int replica, const char *src, const char *host, const char *target,
		    const char *extra, struct resp *r)
{
	char req[4096];
	int fd = hc_open(replica, src), err, n;

	if (fd < 0)
		return fd;
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, host,
		     extra ? extra : "");
	err = exchange(fd, req, (size_t)n, r);
	close(fd);
	return err;
}

static int get(const char *host, const char *target, struct resp *r)
{
	return get_from(0, NULL, host, target, NULL, r);
}

/* ---------- subtests ---------- */

static void subtest_source_range_403(void)
{
	struct resp r;

	if (ASSERT_OK(get_from(0, "127.0.0.5", "range.example.com", "/", NULL, &r), "allowed")) {
		ASSERT_EQ(r.status, 200, "127.0.0.5 is in the whitelist");
		ASSERT_OK_PTR(strstr(r.body, "This is env cluster1"), "proxied");
	}
	if (ASSERT_OK(get_from(0, "127.0.0.6", "range.example.com", "/", NULL, &r), "other")) {
		ASSERT_EQ(r.status, 403, "127.0.0.6 is not");
		ASSERT_OK_PTR(strstr(r.head, "Content-Type: text/plain"), "text/plain");
		ASSERT_OK_PTR(strstr(r.body, "client 127.0.0.6 is not allowed"), r.body);
	}
	if (ASSERT_OK(get_from(0, "127.0.0.7", "deny.example.com", "/", NULL, &r), "denied"))
		ASSERT_EQ(r.status, 403, "127.0.0.7 is in the denylist");
	if (ASSERT_OK(get_from(0, "127.0.0.8", "deny.example.com", "/", NULL, &r), "not denied"))
		ASSERT_EQ(r.status, 200, "127.0.0.8 is not");
	if (ASSERT_OK(get_from(0, "127.0.0.6", "plain.example.com", "/", NULL, &r), "plain"))
		ASSERT_EQ(r.status, 200, "another Ingress: no ranges");
}

static void subtest_rewrite_captures(void)
{
	struct resp r;

	if (ASSERT_OK(get("rewrite.example.com", "/something/echo?x=1", &r), "get")) {
		ASSERT_EQ(r.status, 200, "status");
		ASSERT_OK_PTR(strstr(r.body, "GET /echo?x=1\n"), "upstream got /$2 and the query");
	}
	ASSERT_TRUE(upstream_got(SRV_APP, "GET", "/echo?x=1"), "upstream log: /echo?x=1");
	if (ASSERT_OK(get("rewrite.example.com", "/SOMETHING", &r), "get"))
		ASSERT_EQ(r.status, 200, "caseless regex");
	ASSERT_TRUE(upstream_got(SRV_APP, "GET", "/"), "upstream log: $2 empty: /");
	if (ASSERT_OK(get("rewrite.example.com", "/other", &r), "get"))
		ASSERT_EQ(r.status, 404, "the regex does not match");
	/* Arguments of the target first, the request's after "&". */
	if (ASSERT_OK(get("rw2.example.com", "/api/v2/items/7?sort=asc", &r), "get"))
		ASSERT_EQ(r.status, 200, "status");
	ASSERT_TRUE(upstream_got(SRV_APP, "GET", "/items/7/v2?src=fg&sort=asc"),
		    "upstream log: /$2/$1?src=fg&sort=asc");
}

static void subtest_redirects(void)
{
	static const struct {
		const char *host, *target;
		int status;
		const char *location;
	} t[] = {
		{ "approot.example.com", "/", 302, "http://approot.example.com/app1" },
		{ "perm.example.com", "/a/b?c=1", 301, "https://new.example.org/a/b?c=1" },
		{ "perm308.example.com", "/x", 308, "https://new.example.org/" },
		{ "temp.example.com", "/x", 302, "http://maintenance.example.org/" },
		{ "temp307.example.com", "/", 307, "http://maintenance.example.org/" },
	};
	char loc[512];
	struct resp r;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char req[512];
		int fd = hc_open(0, NULL), n;

		if (!ASSERT_GE(fd, 0, "connect"))
			continue;
		/* Twice on one connection: a redirect keeps it alive. */
		n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
			     t[i].target, t[i].host);
		if (ASSERT_OK(exchange(fd, req, n, &r), t[i].host) &&
		    ASSERT_EQ(r.status, t[i].status, t[i].host) &&
		    ASSERT_OK_PTR(field(&r, "Location", loc, sizeof(loc)), t[i].host))
			ASSERT_STREQ(loc, t[i].location, t[i].host);
		if (ASSERT_OK(exchange(fd, req, n, &r), "the same connection again"))
			ASSERT_EQ(r.status, t[i].status, "kept alive");
		close(fd);
	}
	/* app-root redirects "/" only. */
	if (ASSERT_OK(get("approot.example.com", "/app1", &r), "app-root other path"))
		ASSERT_EQ(r.status, 200, "/app1 is proxied");
}

static void subtest_upstream_vhost(void)
{
	struct resp r;

	if (ASSERT_OK(get("vhost.example.com", "/echo", &r), "get")) {
		ASSERT_EQ(r.status, 200, "status");
		ASSERT_OK_PTR(strstr(r.body, "\nHost: internal.svc.local\n"), "Host upstream");
		ASSERT_TRUE(strstr(r.body, "vhost.example.com") == NULL, "not the client's");
	}
	if (ASSERT_OK(get("plain.example.com", "/echo", &r), "get"))
		ASSERT_OK_PTR(strstr(r.body, "\nHost: plain.example.com\n"), "others keep theirs");
}

static void subtest_read_timeout(void)
{
	__u64 t0 = now_ms(), took;
	struct resp r;

	if (!ASSERT_OK(get("slow.example.com", "/silent", &r), "get"))
		return;
	took = now_ms() - t0;
	ASSERT_EQ(r.status, 504, "proxy-read-timeout: 504");
	ASSERT_GE(took, 900, "not before the route's 1 s");
	ASSERT_LT(took, GLOBAL_READ_MS - 1000, "sooner than the global timeout");
	ASSERT_OK_PTR(strstr(r.body, "did not answer within 1000 ms"), r.body);
}

static int post(const char *head_extra, const char *body, size_t body_len, struct resp *r)
{
	char *req = NULL;
	int fd = hc_open(0, NULL), n, err;

	if (fd < 0)
		return fd;
	n = asprintf(&req, "POST /echo HTTP/1.1\r\nHost: body.example.com\r\n%s\r\n", head_extra);
	if (n < 0) {
		close(fd);
		return -ENOMEM;
	}
	req = realloc(req, n + body_len);
	memcpy(req + n, body, body_len);
	err = exchange(fd, req, n + body_len, r);
	if (!err)
		r->closed = closed_within(fd, 2000);
	free(req);
	close(fd);
	return err;
}

static void subtest_body_size_413(void)
{
	char body[2048], chunked[4096], hdr[64];
	size_t off = 0;
	struct resp r;
	int i;

	memset(body, 'a', sizeof(body));
	snprintf(hdr, sizeof(hdr), "Content-Length: %d\r\n", 2000);
	if (ASSERT_OK(post(hdr, body, 2000, &r), "Content-Length 2000")) {
		ASSERT_EQ(r.status, 413, "over 1k: 413");
		ASSERT_OK_PTR(strstr(r.body, "request body of 2000 bytes is over the limit of 1024"),
			      r.body);
		ASSERT_TRUE(r.closed, "closed after (the body was not read)");
	}
	snprintf(hdr, sizeof(hdr), "Content-Length: %d\r\n", 1024);
	if (ASSERT_OK(post(hdr, body, 1024, &r), "Content-Length 1024"))
		ASSERT_EQ(r.status, 200, "at the limit: proxied");
	/* Chunked: 3 chunks of 500 (1500 > 1024): 413 when the third is
	 * announced. */
	for (i = 0; i < 3; i++) {
		off += snprintf(chunked + off, sizeof(chunked) - off, "1f4\r\n");
		memset(chunked + off, 'b', 500);
		off += 500;
		off += snprintf(chunked + off, sizeof(chunked) - off, "\r\n");
	}
	off += snprintf(chunked + off, sizeof(chunked) - off, "0\r\n\r\n");
	if (ASSERT_OK(post("Transfer-Encoding: chunked\r\n", chunked, off, &r), "chunked 1500")) {
		ASSERT_EQ(r.status, 413, "chunked over 1k: 413");
		ASSERT_OK_PTR(strstr(r.body, "over the limit of 1024 bytes"), r.body);
	}
	/* Two chunks (1000): proxied, the upstream read it all. */
	off = 0;
	for (i = 0; i < 2; i++) {
		off += snprintf(chunked + off, sizeof(chunked) - off, "1f4\r\n");
		memset(chunked + off, 'c', 500);
		off += 500;
		off += snprintf(chunked + off, sizeof(chunked) - off, "\r\n");
	}
	off += snprintf(chunked + off, sizeof(chunked) - off, "0\r\n\r\n");
	if (ASSERT_OK(post("Transfer-Encoding: chunked\r\n", chunked, off, &r), "chunked 1000")) {
		ASSERT_EQ(r.status, 200, "chunked within 1k");
		ASSERT_TRUE(r.body_len > 1000, "echoed");
	}
}

/* The endpoint that answered (the upstream's name, "ep4N"). */
static const char *who(const struct resp *r, char *buf, size_t len)
{
	const char *p = strstr(r->body, "This is env ");

	if (!p || sscanf(p, "This is env %15s", buf) != 1)
		snprintf(buf, len, "?");
	return buf;
}

/* "route=VALUE" from the response's Set-Cookie, with its attributes
 * checked. */
static bool set_cookie(const struct resp *r, char *cookie, size_t len)
{
	char val[512];
	const char *v;

	if (!field(r, "Set-Cookie", val, sizeof(val)))
		return false;
	v = val;
	if (!ASSERT_TRUE(!strncmp(v, "route=", 6) && strlen(v) >= 22, v))
		return false;
	ASSERT_OK_PTR(strstr(v, "; Path=/"), "Path: the route's");
	ASSERT_OK_PTR(strstr(v, "; Max-Age=3600"), "Max-Age");
	ASSERT_OK_PTR(strstr(v, "; HttpOnly"), "HttpOnly");
	ASSERT_TRUE(strspn(v + 6, "0123456789abcdef") == 16, "a hash, not the address");
	snprintf(cookie, len, "%.22s", v);
	return true;
}

static void subtest_affinity_cookie(void)
{
	char cookie[64], cookie2[64], hdr[128], first[16], name[16], again[16];
	int i, same = 0, same2 = 0, other_replica = 0, victim = -1, distinct = 0;
	bool seen[N_SERVERS] = {};
	struct resp r;

	if (!ASSERT_OK(get("sticky.example.com", "/", &r), "first") ||
	    !ASSERT_EQ(r.status, 200, "first status") ||
	    !ASSERT_TRUE(set_cookie(&r, cookie, sizeof(cookie)), "a cookie on the first response"))
		return;
	who(&r, first, sizeof(first));
	snprintf(hdr, sizeof(hdr), "Cookie: a=b; %s\r\n", cookie);
	/* New connections: both workers of replica 0, and replica 1. */
	for (i = 0; i < 20; i++) {
		if (!ASSERT_OK(get_from(0, NULL, "sticky.example.com", "/", hdr, &r), "with cookie"))
			break;
		same += !strcmp(who(&r, name, sizeof(name)), first);
		ASSERT_TRUE(field(&r, "Set-Cookie", again, sizeof(again)) == NULL,
			    "a cookie that holds is not set again");
	}
	ASSERT_EQ(same, 20, "20 requests with the cookie: one endpoint");
	for (i = 0; i < 10; i++)
		if (!get_from(1, NULL, "sticky.example.com", "/", hdr, &r))
			other_replica += !strcmp(who(&r, name, sizeof(name)), first);
	ASSERT_EQ(other_replica, 10, "the other replica reads the same endpoint from it");
	/* Without it, requests spread (4 endpoints, 2 clusters). */
	for (i = 0; i < 30; i++)
		if (!get("sticky.example.com", "/", &r))
			for (victim = SRV_EP41; victim <= SRV_EP44; victim++)
				if (!strcmp(who(&r, name, sizeof(name)), servers[victim].name))
					seen[victim] = true;
	for (i = SRV_EP41; i <= SRV_EP44; i++)
		distinct += seen[i];
	ASSERT_GE(distinct, 2, "no cookie: spread");

	/* Its endpoint goes down: another answers, with a new cookie. */
	for (victim = SRV_EP41; victim <= SRV_EP44; victim++)
		if (!strcmp(servers[victim].name, first))
			break;
	if (!ASSERT_LE(victim, SRV_EP44, "the first endpoint is known"))
		return;
	stop_server(victim);
	if (!ASSERT_OK(get_from(0, NULL, "sticky.example.com", "/", hdr, &r), "endpoint down") ||
	    !ASSERT_EQ(r.status, 200, "retried on another endpoint"))
		return;
	ASSERT_TRUE(strcmp(who(&r, name, sizeof(name)), first) != 0, name);
	if (!ASSERT_TRUE(set_cookie(&r, cookie2, sizeof(cookie2)), "a new cookie at once"))
		return;
	ASSERT_TRUE(strcmp(cookie, cookie2) != 0, "names another endpoint");
	snprintf(first, sizeof(first), "%s", name);
	snprintf(hdr, sizeof(hdr), "Cookie: %s\r\n", cookie2);
	for (i = 0; i < 20; i++)
		if (!get_from(0, NULL, "sticky.example.com", "/", hdr, &r))
			same2 += !strcmp(who(&r, name, sizeof(name)), first);
	ASSERT_EQ(same2, 20, "sticks to the new endpoint");
}

/* Answers made by the proxy are records too (metrics, access log). */
static void subtest_records(void)
{
	unsigned n0, i;
	bool found301 = false, found403 = false;
	struct resp r;

	pthread_mutex_lock(&T.rec_lock);
	n0 = T.n_rec;
	pthread_mutex_unlock(&T.rec_lock);
	get("perm.example.com", "/", &r);
	get_from(0, "127.0.0.6", "range.example.com", "/", NULL, &r);
	for (i = 0; i < 50; i++) {
		unsigned k, n;

		pthread_mutex_lock(&T.rec_lock);
		n = T.n_rec;
		for (k = n0; k < n; k++) {
			found301 |= T.rec_status[k % 64] == 301 && T.rec_routed[k % 64];
			found403 |= T.rec_status[k % 64] == 403 && T.rec_routed[k % 64];
		}
		pthread_mutex_unlock(&T.rec_lock);
		if (found301 && found403)
			break;
		sleep_ms(10);
	}
	ASSERT_TRUE(found301, "a record for the redirect, with its route");
	ASSERT_TRUE(found403, "a record for the 403");
}

static int setup(void)
{
	int err, i;

	err = start_servers();
	if (err)
		return err;
	err = write_config();
	if (!ASSERT_OK(err, "write config"))
		return err;
	for (i = 0; i < N_REPLICAS; i++) {
		err = replica_start(&T.r[i], i == 0);
		if (err)
			return err;
	}
	return 0;
}

static void teardown(void)
{
	int i;

	T.stop = true;
	for (i = 0; i < N_REPLICAS; i++)
		replica_stop(&T.r[i]);
	for (i = 0; i < N_SERVERS; i++)
		stop_server(i);
}

FG_TEST(annotations_proxy)
{
	int ns = test__netns_private(), err;

	if (ns < 0) {
		test__skip("no private network namespace: %s", strerror(-ns));
		return;
	}
	memset(&T, 0, sizeof(T));
	pthread_mutex_init(&T.rec_lock, NULL);
	if (find_scripts()) {
		test__skip("selftests/e2e/proxy_upstream.py not found");
		goto out;
	}
	err = setup();
	if (err) {
		if (err == -EPERM || err == -ENOENT || err == -EOPNOTSUPP)
			test__skip("cannot set up: %s", strerror(-err));
		else
			ASSERT_OK(err, "setup");
		goto out;
	}
	if (test__start_subtest("source_range_403"))
		subtest_source_range_403();
	if (test__start_subtest("rewrite_captures"))
		subtest_rewrite_captures();
	if (test__start_subtest("redirects"))
		subtest_redirects();
	if (test__start_subtest("upstream_vhost"))
		subtest_upstream_vhost();
	if (test__start_subtest("read_timeout_504"))
		subtest_read_timeout();
	if (test__start_subtest("body_size_413"))
		subtest_body_size_413();
	if (test__start_subtest("records"))
		subtest_records();
	/* last: it stops one of the upstreams */
	if (test__start_subtest("affinity_cookie"))
		subtest_affinity_cookie();
out:
	teardown();
	pthread_mutex_destroy(&T.rec_lock);
	test__netns_restore(ns);
}
