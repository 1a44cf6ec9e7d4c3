// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The proxy's request records (fg_proxy_opts.on_request), in process: a
 * data plane loaded without pins, a control plane over a config directory
 * (two clusters; their endpoints are one selftests/e2e/proxy_upstream.py
 * on 127.0.0.11 and 127.0.0.21), the proxy run by a thread, raw clients.
 * Exactly one record per request, whatever ends it: pipelined requests
 * (bytes counted per request, exactly), large bodies (through pipes in
 * splice mode, FLEETGATE_L7_MODE for the others), a canary, a 404, a bad request
 * head, a client leaving before its answer (499), a connection refused at
 * accept; none for a connection that never sent a request. The records
 * also feed a metrics registry whose page promtool checks.
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <bpf/bpf.h>

#include "control.h"
#include "dataplane.h"
#include "e2e_lib.h"
#include "http.h"
#include "metrics.h"
#include "proxy.h"
#include "test_progs.h"

#define C1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define C2 "c15d48ca9d1fd43f9bbb89c56a474843c"
#define MAX_RECS 64
#define MAX_CONNS 4

struct rcopy {
	char method[16], target[128], ua[64], route_host[64], route_path[64], ingress[128],
		canary[128], service[128];
	bool routed;
	int cluster_idx, status, version_minor;
	unsigned attempts;
	enum fg_request_end end;
	__u64 bytes_in, bytes_out, hdr;
	__u64 start, up_start, up_connect, up_header, end_ns;
};

static struct {
	struct fg_dataplane *dp;
	struct fg_control *control;
	struct fg_proxy *proxy;
	struct fg_metrics *metrics;
	pthread_t thr;
	bool thr_running;
	volatile bool stop;
	pthread_mutex_t lock;
	__u16 port;
	int up_port;
	pid_t upstream;
	char cfg[PATH_MAX - 64];
	struct rcopy recs[MAX_RECS];
	int n_recs;
} R;

static void on_request(const struct fg_request_record *r, void *ctx)
{
	struct rcopy *c;

	fg_metrics_on_request(r, R.metrics);
	if (R.n_recs == MAX_RECS)
		return;
	c = &R.recs[R.n_recs++];
	snprintf(c->method, sizeof(c->method), "%s", r->method);
	snprintf(c->target, sizeof(c->target), "%s", r->target);
	snprintf(c->ua, sizeof(c->ua), "%s", r->user_agent);
	snprintf(c->route_host, sizeof(c->route_host), "%s", r->route_host);
	snprintf(c->route_path, sizeof(c->route_path), "%s", r->route_path);
	snprintf(c->ingress, sizeof(c->ingress), "%s", r->ingress);
	snprintf(c->canary, sizeof(c->canary), "%s", r->canary);
	snprintf(c->service, sizeof(c->service), "%s", r->service);
	c->routed = r->routed;
	c->cluster_idx = r->cluster_idx;
	c->status = r->status;
	c->version_minor = r->version_minor;
	c->attempts = r->attempts;
	c->end = r->end;
	c->bytes_in = r->bytes_in;
	c->bytes_out = r->bytes_out;
	c->hdr = r->header_bytes_out;
	c->start = r->start_ns;
	c->up_start = r->up_start_ns;
	c->up_connect = r->up_connect_ns;
	c->up_header = r->up_header_ns;
	c->end_ns = r->end_ns;
}

static void *proxy_loop(void *arg)
{
	struct pollfd pfd = { .fd = fg_proxy_fd(R.proxy), .events = POLLIN };
	long long last = 0;

	while (!R.stop) {
		poll(&pfd, 1, 20);
		pthread_mutex_lock(&R.lock);
		fg_proxy_process(R.proxy);
		if (e2e_now_ms() - last >= 50) {
			fg_proxy_tick(R.proxy);
			last = e2e_now_ms();
		}
		pthread_mutex_unlock(&R.lock);
	}
	return NULL;
}

/* Waits until n records arrived (2 s at most); returns how many there are. */
static int wait_recs(int n)
{
	long long deadline = e2e_now_ms() + 2000;
	int got;

	for (;;) {
		pthread_mutex_lock(&R.lock);
		got = R.n_recs;
		pthread_mutex_unlock(&R.lock);
		if (got >= n || e2e_now_ms() >= deadline)
			return got;
		e2e_sleep_ms(10);
	}
}

static void clear_recs(void)
{
	pthread_mutex_lock(&R.lock);
	R.n_recs = 0;
	pthread_mutex_unlock(&R.lock);
}

static int write_cfg(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int write_cfg(const char *rel, const char *fmt, ...)
{
	char path[PATH_MAX];
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", R.cfg, rel);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	return fclose(f) ? -errno : 0;
}

#define INGRESS(name, host, path, type, ann)                                   \
	"---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n"    \
	"  name: " name "\n  namespace: web-demo\n" ann                         \
	"spec:\n  ingressClassName: mse\n  rules:\n  - host: " host "\n"        \
	"    http:\n      paths:\n      - path: " path "\n"                     \
	"        pathType: " type "\n        backend:\n          service:\n"    \
	"            name: service1\n            port:\n              number: 80\n"
#define SUBSET(n, id)                                                          \
	"  annotations:\n"                                                     \
	"    mse.ingress.kubernetes.io/service-subset: cluster-demo-" n "\n"  \
	"    mse.ingress.kubernetes.io/subset-labels: |\n"                     \
	"      topology.istio.io/cluster " id "\n"

static int write_config(int port)
{
	static const char svc[] =
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: service1\n  namespace: web-demo\n"
		"spec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: %d\n---\n"
		"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
		"  name: service1-x\n  namespace: web-demo\n  labels:\n"
		"    kubernetes.io/service-name: service1\naddressType: IPv4\n"
		"ports:\n- name: http\n  port: %d\nendpoints:\n- addresses:\n  - %s\n"
		"  conditions:\n    ready: true\n";
	int err;

	snprintf(R.cfg, sizeof(R.cfg), "%s/records-cfg", test__tmpdir());
	if (fg_sh("mkdir -p %s/fleet %s/clusters/%s %s/clusters/%s", R.cfg, R.cfg, C1, R.cfg, C2))
		return -EIO;
	err = write_cfg("fleet/gateway.yaml",
			"apiVersion: mse.alibabacloud.com/v1alpha1\nkind: MseIngressConfig\n"
			"metadata:\n  name: ackone-gateway\n  annotations:\n"
			"    mse.alibabacloud.com/remote-clusters: " C1 "," C2 "\n"
			"spec:\n  ingress:\n    local:\n      ingressClass: mse\n"
			"  name: mse-ingress\n");
	err = err ?: write_cfg("fleet/ingresses.yaml", "%s",
			       INGRESS("web", "example.com", "/service1", "Exact", SUBSET("1", C1))
			       INGRESS("gray", "example.com", "/service1", "Exact",
				       SUBSET("2", C2)
				       "    nginx.ingress.kubernetes.io/canary: \"true\"\n"
				       "    nginx.ingress.kubernetes.io/canary-by-header: \"stage\"\n"
				       "    nginx.ingress.kubernetes.io/canary-by-header-value: \"gray\"\n")
			       INGRESS("api", "api.example.com", "/", "Prefix", ""));
	err = err ?: write_cfg("clusters/" C1 "/svc.yaml", svc, port, port, "127.0.0.11");
	err = err ?: write_cfg("clusters/" C2 "/svc.yaml", svc, port, port, "127.0.0.21");
	return err;
}

static int start_upstream(int *port)
{
	char ready[PATH_MAX], log[PATH_MAX], script[PATH_MAX];
	char *argv[] = { "python3", script, "--addr", "127.0.0.11,127.0.0.21", "--port", "0",
			 "--name", "up", "--ready", ready, NULL };
	long long deadline;
	FILE *f;

	snprintf(script, sizeof(script), "selftests/e2e/proxy_upstream.py");
	if (access(script, R_OK)) {
		char exe[PATH_MAX - 64], *slash;
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

		if (n <= 0)
			return -ENOENT;
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		snprintf(script, sizeof(script), "%s/../selftests/e2e/proxy_upstream.py", exe);
		if (access(script, R_OK))
			return -ENOENT;
	}
	snprintf(ready, sizeof(ready), "%s/records-up.ready", test__tmpdir());
	snprintf(log, sizeof(log), "%s/records-up.log", test__tmpdir());
	unlink(ready);
	R.upstream = e2e_spawn(log, NULL, argv);
	if (R.upstream < 0) {
		R.upstream = 0;
		return -ECHILD;
	}
	for (deadline = e2e_now_ms() + 5000; e2e_now_ms() < deadline; e2e_sleep_ms(20)) {
		f = fopen(ready, "r");
		if (f) {
			int ok = fscanf(f, "%d", port) == 1 && *port > 0;

			fclose(f);
			if (ok)
				return 0;
		}
	}
	return -ETIMEDOUT;
}

static int client(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(R.port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 3 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* Reads n whole responses (Content-Length bodies); their sizes and head
 * sizes in len[] and head[]. Returns how many were read. */
static int read_responses(int fd, int n, size_t *len, size_t *head, int *status)
{
	static char buf[1 << 20];
	size_t have = 0, off = 0;
	int got = 0;

	while (got < n) {
		struct fg_http_response resp;
		const char *why;
		int h = fg_http_parse_response(buf + off, have - off, false, &resp, &why);

		if (h > 0 && have - off >= (size_t)h + resp.content_length) {
			head[got] = h;
			len[got] = h + resp.content_length;
			status[got] = resp.status;
			off += len[got];
			got++;
			continue;
		}
		if (h < 0 || have == sizeof(buf))
			break;
		{
			ssize_t r = recv(fd, buf + have, sizeof(buf) - have, 0);

			if (r <= 0)
				break;
			have += r;
		}
	}
	return got;
}

static int setup(void)
{
	struct fg_control_opts copts = {};
	struct fg_dp_opts dopts = {};
	struct fg_proxy_opts popts;
	int err, port;

	err = start_upstream(&port);
	if (err)
		return err;
	R.up_port = port;
	err = write_config(port);
	if (!ASSERT_OK(err, "config"))
		return err;
	err = fg_dp_load(&R.dp, &dopts);
	if (err)
		return err;
	copts.config_dir = R.cfg;
	err = fg_control_new(&R.control, R.dp, &copts);
	if (!ASSERT_OK(err, "control"))
		return err;
	fg_control_set_state(R.control, true, true);
	err = fg_control_recompute(R.control);
	if (!ASSERT_OK(err, "recompute"))
		return err;
	err = fg_metrics_new(&R.metrics, R.dp, R.control, NULL);
	if (!ASSERT_OK(err, "metrics"))
		return err;
	fg_proxy_opts_init(&popts);
	fg_addr_parse("127.0.0.1", &popts.addr, &popts.family);
	popts.port = 0;
	popts.header_timeout_ms = 1000;
	popts.max_conns = MAX_CONNS;
	popts.on_request = on_request;
	popts.record_details = true;
	err = fg_proxy_open(&R.proxy, R.control, R.dp, &popts);
	if (!ASSERT_OK(err, "fg_proxy_open"))
		return err;
	fg_metrics_set_proxy(R.metrics, R.proxy);
	R.port = fg_proxy_port(R.proxy);
	pthread_mutex_init(&R.lock, NULL);
	err = -pthread_create(&R.thr, NULL, proxy_loop, NULL);
	if (err)
		return err;
	R.thr_running = true;
	return 0;
}

static void teardown(void)
{
	if (R.thr_running) {
		R.stop = true;
		pthread_join(R.thr, NULL);
	}
	fg_proxy_close(R.proxy);
	fg_metrics_free(R.metrics);
	fg_control_free(R.control);
	if (R.dp)
		fg_dp_close(R.dp, false);
	e2e_stop_child(&R.upstream, SIGTERM, 2000);
}

static const struct rcopy *find(const char *what, bool (*pred)(const struct rcopy *))
{
	int i;

	for (i = 0; i < R.n_recs; i++)
		if (pred(&R.recs[i]))
			return &R.recs[i];
	printf("no record: %s\n", what);
	return NULL;
}

static bool is_main(const struct rcopy *r) { return r->status == 200 && !r->canary[0]; }
static bool is_gray(const struct rcopy *r) { return r->status == 200 && r->canary[0]; }

static bool times_ok(const struct rcopy *r)
{
	return r->start && r->start <= r->up_start && r->up_start <= r->up_connect &&
	       r->up_connect <= r->up_header && r->up_header <= r->end_ns;
}

static void subtest_pipelined(void)
{
	static const char req1[] = "GET /service1?a=1 HTTP/1.1\r\nHost: example.com\r\n"
				   "User-Agent: t1\r\n\r\n";
	static const char req2[] = "GET /service1 HTTP/1.1\r\nHost: example.com\r\n"
				   "stage: gray\r\n\r\n";
	char both[256];
	size_t len[2], head[2];
	int status[2], fd;
	const struct rcopy *a, *b;

	clear_recs();
	fd = client();
	if (!ASSERT_GE(fd, 0, "connect"))
		return;
	snprintf(both, sizeof(both), "%s%s", req1, req2);
	ASSERT_EQ(send(fd, both, strlen(both), 0), (long)strlen(both), "both sent at once");
	ASSERT_EQ(read_responses(fd, 2, len, head, status), 2, "two responses");
	ASSERT_EQ(wait_recs(2), 2, "two records");
	pthread_mutex_lock(&R.lock);
	a = find("main", is_main);
	b = find("canary", is_gray);
	if (ASSERT_OK_PTR(a, "main route's record")) {
		ASSERT_STREQ(a->method, "GET", "method");
		ASSERT_STREQ(a->target, "/service1?a=1", "target");
		ASSERT_EQ(a->version_minor, 1, "HTTP/1.1");
		ASSERT_STREQ(a->ua, "t1", "User-Agent");
		ASSERT_TRUE(a->routed, "routed");
		ASSERT_STREQ(a->route_host, "example.com", "route host");
		ASSERT_STREQ(a->route_path, "/service1", "route path");
		ASSERT_STREQ(a->ingress, "web-demo/web", "ingress");
		ASSERT_STREQ(a->canary, "", "no canary");
		ASSERT_STREQ(a->service, "web-demo/service1 subset cluster-demo-1", "service");
		ASSERT_GE(a->cluster_idx, 0, "a cluster");
		ASSERT_EQ(a->attempts, 1, "one try");
		ASSERT_EQ(a->end, FG_REQ_DONE, "done");
		ASSERT_EQ(a->bytes_in, strlen(req1), "bytes in: its own request only");
		ASSERT_EQ(a->bytes_out, len[0], "bytes out: its response");
		ASSERT_EQ(a->hdr, head[0], "its response head");
		ASSERT_TRUE(times_ok(a), "start <= upstream start <= connect <= head <= end");
	}
	if (ASSERT_OK_PTR(b, "canary's record")) {
		ASSERT_STREQ(b->canary, "web-demo/gray", "canary named");
		ASSERT_STREQ(b->ingress, "web-demo/web", "the route's Ingress");
		ASSERT_EQ(b->bytes_in, strlen(req2), "bytes in");
		ASSERT_EQ(b->bytes_out, len[1], "bytes out");
		ASSERT_TRUE(a && b->cluster_idx >= 0 && b->cluster_idx != a->cluster_idx,
			    "the other cluster");
		ASSERT_TRUE(times_ok(b), "times in order");
	}
	pthread_mutex_unlock(&R.lock);
	close(fd);
	e2e_sleep_ms(50);
	ASSERT_EQ(wait_recs(3), 2, "closing an idle connection makes no record");
}

/* A 300 KB body each way: past what the proxy keeps for a retry, so (in
 * splice mode) both move through pipes, and still counted exactly. */
static void subtest_large_bodies(void)
{
	static char body[300000];
	char head[256];
	size_t len[1], hlen[1], sent = 0, total;
	int status[1], fd, n;
	const struct rcopy *r;

	memset(body, 'x', sizeof(body));
	n = snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: api.example.com\r\n"
		     "Content-Length: %zu\r\n\r\n", sizeof(body));
	total = n + sizeof(body);
	clear_recs();
	fd = client();
	if (!ASSERT_GE(fd, 0, "connect"))
		return;
	ASSERT_EQ(send(fd, head, n, 0), n, "head sent");
	while (sent < sizeof(body)) {
		ssize_t k = send(fd, body + sent, sizeof(body) - sent, 0);

		if (k <= 0)
			break;
		sent += k;
	}
	ASSERT_EQ(sent, sizeof(body), "body sent");
	ASSERT_EQ(read_responses(fd, 1, len, hlen, status), 1, "response read");
	ASSERT_EQ(status[0], 200, "200");
	ASSERT_GT(len[0], sizeof(body), "the body echoed");
	close(fd);
	ASSERT_EQ(wait_recs(1), 1, "a record");
	pthread_mutex_lock(&R.lock);
	r = R.n_recs ? &R.recs[0] : NULL;
	if (ASSERT_OK_PTR(r, "record")) {
		ASSERT_EQ(r->status, 200, "status");
		ASSERT_EQ(r->bytes_in, total, "bytes in, the body included");
		ASSERT_EQ(r->bytes_out, len[0], "bytes out, the body included");
		ASSERT_EQ(r->hdr, hlen[0], "head bytes");
	}
	pthread_mutex_unlock(&R.lock);
}

static bool is_404(const struct rcopy *r) { return r->status == 404; }
static bool is_400(const struct rcopy *r) { return r->status == 400; }
static bool is_499(const struct rcopy *r) { return r->status == 499; }
static bool is_503(const struct rcopy *r) { return r->status == 503; }

static void subtest_errors(void)
{
	static const char r404[] = "GET /x HTTP/1.1\r\nHost: nowhere.example.com\r\n\r\n";
	size_t len[1], head[1];
	int status[1], fd;
	const struct rcopy *r;

	clear_recs();
	fd = client();
	if (!ASSERT_GE(fd, 0, "connect"))
		return;
	send(fd, r404, strlen(r404), 0);
	ASSERT_EQ(read_responses(fd, 1, len, head, status), 1, "404 read");
	close(fd);
	fd = client();
	if (!ASSERT_GE(fd, 0, "connect"))
		return;
	send(fd, "BAD\r\n\r\n", 7, 0);
	read_responses(fd, 1, len + 0, head, status);
	close(fd);
	ASSERT_EQ(wait_recs(2), 2, "two records");
	pthread_mutex_lock(&R.lock);
	r = find("404", is_404);
	if (ASSERT_OK_PTR(r, "404's record")) {
		ASSERT_FALSE(r->routed, "not routed");
		ASSERT_EQ(r->end, FG_REQ_ERROR, "answered by the gateway");
		ASSERT_EQ(r->attempts, 0, "no upstream");
		ASSERT_EQ(r->cluster_idx, -1, "no cluster");
		ASSERT_STREQ(r->target, "/x", "target");
		ASSERT_EQ(r->bytes_in, strlen(r404), "bytes in");
	}
	r = find("400", is_400);
	if (ASSERT_OK_PTR(r, "400's record")) {
		ASSERT_EQ(r->version_minor, -1, "no request line");
		ASSERT_STREQ(r->method, "", "no method");
		ASSERT_GT(r->bytes_out, 0, "the 400 counted");
	}
	pthread_mutex_unlock(&R.lock);
}

static void subtest_client_left(void)
{
	static const char req[] = "POST /echo HTTP/1.1\r\nHost: api.example.com\r\n"
				  "Content-Length: 100\r\n\r\n0123456789";
	const struct rcopy *r;
	int fd;

	clear_recs();
	fd = client();
	if (!ASSERT_GE(fd, 0, "connect"))
		return;
	/* 10 of the 100 body bytes, then gone. */
	send(fd, req, strlen(req), 0);
	e2e_sleep_ms(200);
	close(fd);
	ASSERT_EQ(wait_recs(1), 1, "a record");
	pthread_mutex_lock(&R.lock);
	r = find("499", is_499);
	if (ASSERT_OK_PTR(r, "499's record")) {
		ASSERT_EQ(r->end, FG_REQ_ABORTED, "aborted");
		ASSERT_EQ(r->attempts, 1, "it reached an upstream");
		ASSERT_EQ(r->up_header, 0, "no response head");
		ASSERT_STREQ(r->route_host, "api.example.com", "route host");
		ASSERT_STREQ(r->route_path, "/", "route path");
		ASSERT_EQ(r->bytes_in, strlen(req), "what it sent");
	}
	pthread_mutex_unlock(&R.lock);
}

static void subtest_refused(void)
{
	int fds[MAX_CONNS], i, fd;
	size_t len[1], head[1];
	int status[1] = { 0 };
	const struct rcopy *r;

	clear_recs();
	for (i = 0; i < MAX_CONNS; i++)
		fds[i] = client();
	e2e_sleep_ms(100); /* accepted */
	fd = client();
	if (ASSERT_GE(fd, 0, "connect")) {
		ASSERT_EQ(read_responses(fd, 1, len, head, status), 1, "an answer");
		ASSERT_EQ(status[0], 503, "503");
		close(fd);
	}
	for (i = 0; i < MAX_CONNS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	e2e_sleep_ms(100);
	ASSERT_EQ(wait_recs(1), 1, "one record: the refusal, none for the idle ones");
	pthread_mutex_lock(&R.lock);
	r = find("refused", is_503);
	if (ASSERT_OK_PTR(r, "refusal's record")) {
		ASSERT_EQ(r->end, FG_REQ_REFUSED, "refused");
		ASSERT_EQ(r->bytes_out, len[0], "its 503");
		ASSERT_FALSE(r->routed, "not routed");
	}
	pthread_mutex_unlock(&R.lock);
}

/* Per-CPU counters of every endpoint set to 1 packet and 10 bytes per
 * CPU: the page must show their sums. */
static int set_endpoint_counters(void)
{
	int ncpus = fg_dp_ncpus(R.dp), c;
	struct fg_counter *v = calloc(ncpus, sizeof(*v));
	__u32 id;

	if (!v)
		return -ENOMEM;
	for (c = 0; c < ncpus; c++) {
		v[c].packets = 1;
		v[c].bytes = 10;
	}
	for (id = 0; id < fg_dp_backend_high(R.dp); id++)
		if (bpf_map_update_elem(fg_dp_maps(R.dp)->backend_stats, &id, v, 0)) {
			free(v);
			return -errno;
		}
	free(v);
	return ncpus;
}

static void subtest_metrics_page(void)
{
	char path[PATH_MAX], want[256];
	struct fg_expo e;
	int ncpus;
	FILE *f;

	ncpus = set_endpoint_counters();
	ASSERT_GT(ncpus, 0, "endpoint counters set");
	fg_expo_init(&e);
	pthread_mutex_lock(&R.lock);
	ASSERT_OK(fg_metrics_render(R.metrics, &e), "render");
	pthread_mutex_unlock(&R.lock);
	if (!ASSERT_OK_PTR(e.buf, "a page"))
		return;
	ASSERT_TRUE(strstr(e.buf, "\nfleetgate_http_requests_total{host=\"example.com\","
				  "path=\"/service1\",canary=\"web-demo/gray\",cluster=\"" C2 "\","
				  "status_class=\"2xx\"} 1\n") != NULL, "canary series");
	ASSERT_TRUE(strstr(e.buf, "\nfleetgate_http_requests_total{host=\"api.example.com\","
				  "path=\"/\",canary=\"\",cluster=\"") != NULL, "api series");
	ASSERT_TRUE(strstr(e.buf, "status_class=\"4xx\"} ") != NULL, "4xx (404, 400, 499)");
	ASSERT_TRUE(strstr(e.buf, "\nfleetgate_http_connections_refused_total{reason=\"max_conns\"} 1\n")
		    != NULL, "refusal counted");
	ASSERT_TRUE(strstr(e.buf, "\nfleetgate_endpoint_up{cluster=\"" C1 "\",endpoint=\"127.0.0.11:")
		    != NULL, "endpoint up");
	snprintf(want, sizeof(want), "\nfleetgate_xdp_endpoint_packets_total{cluster=\"%s\","
		 "endpoint=\"127.0.0.21:%d\"} %d\n", C2, R.up_port, ncpus);
	ASSERT_TRUE(strstr(e.buf, want) != NULL, "endpoint packets: the CPUs' sum");
	snprintf(want, sizeof(want), "\nfleetgate_xdp_endpoint_bytes_total{cluster=\"%s\","
		 "endpoint=\"127.0.0.11:%d\"} %d\n", C1, R.up_port, 10 * ncpus);
	ASSERT_TRUE(strstr(e.buf, want) != NULL, "endpoint bytes: the CPUs' sum");
	snprintf(path, sizeof(path), "%s/records-metrics.txt", test__tmpdir());
	f = fopen(path, "w");
	if (f) {
		fputs(e.buf, f);
		fclose(f);
	}
	if (fg_sh("command -v promtool >/dev/null 2>&1") == 0)
		ASSERT_EQ(fg_sh("promtool check metrics < %s", path), 0, "promtool check metrics");
	else
		printf("promtool not installed: the page is not checked\n");
	fg_expo_free(&e);
}

FG_TEST(metrics_records)
{
	int ns = test__netns_private(), err;

	if (ns < 0) {
		test__skip("no private network namespace: %s", strerror(-ns));
		return;
	}
	memset(&R, 0, sizeof(R));
	err = setup();
	if (err) {
		if (err == -EPERM || err == -ENOENT || err == -EOPNOTSUPP)
			test__skip("cannot set up: %s", strerror(-err));
		else
			ASSERT_OK(err, "setup");
		goto out;
	}
	if (test__start_subtest("pipelined"))
		subtest_pipelined();
	if (test__start_subtest("large_bodies"))
		subtest_large_bodies();
	if (test__start_subtest("errors"))
		subtest_errors();
	if (test__start_subtest("client_left"))
		subtest_client_left();
	if (test__start_subtest("refused"))
		subtest_refused();
	if (test__start_subtest("metrics_page"))
		subtest_metrics_page();
out:
	teardown();
	test__netns_restore(ns);
}
