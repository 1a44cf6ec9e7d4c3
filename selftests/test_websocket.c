// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Upgrade and WebSocket through the proxy, with a real WebSocket client and
 * server (Debian's python3-websockets, selftests/e2e/ws_peer.py): two
 * clusters each with one WebSocket server on 127.0.0.8x, an Ingress for
 * /chat (cluster 1) with a canary by header "stage: gray" (cluster 2), the
 * proxy with two workers on their own threads, in a private network
 * namespace.
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

#include "control.h"
#include "dataplane.h"
#include "proxy.h"
#include "e2e_lib.h"
#include "test_progs.h"

#define C1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define C2 "c15d48ca9d1fd43f9bbb89c56a474843c"
#define PY "/usr/bin/python3" /* Debian's, where python3-websockets is */
#define TUNNEL_IDLE_MS 1500

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
	pid_t pids[2];
	char script[PATH_MAX];
	char cfg[PATH_MAX - 128];
} W;

static const char *const ws_addrs[2] = { "127.0.0.81", "127.0.0.82" };
static const char *const ws_names[2] = { "ws-c1", "ws-c2" };

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The control thread: mark-downs and routes for the workers. */
static void *control_loop(void *arg)
{
	struct pollfd pfd = { .fd = fg_proxy_fd(W.proxy), .events = POLLIN };

	while (!W.stop) {
		poll(&pfd, 1, 20);
		pthread_mutex_lock(&W.lock);
		fg_proxy_process(W.proxy);
		fg_proxy_sync_routes(W.proxy);
		fg_proxy_tick(W.proxy);
		pthread_mutex_unlock(&W.lock);
	}
	return NULL;
}

static int find_script(void)
{
	return e2e_script_path("ws_peer.py", W.script, sizeof(W.script));
}

static int free_port(const char *addr)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd, port = -1;

	inet_pton(AF_INET, addr, &sin.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&sin, sizeof(sin)) &&
	    !getsockname(fd, (struct sockaddr *)&sin, &len))
		port = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int start_servers(void)
{
	char ready[2][PATH_MAX], pbuf[16];
	__u64 deadline;
	int i;

	W.up_port = free_port(ws_addrs[0]);
	if (W.up_port < 0)
		return -EADDRNOTAVAIL;
	snprintf(pbuf, sizeof(pbuf), "%d", W.up_port);
	for (i = 0; i < 2; i++) {
		pid_t parent = getpid();

		snprintf(ready[i], sizeof(ready[i]), "%s/ws%d.ready", test__tmpdir(), i);
		unlink(ready[i]);
		fflush(stdout);
		W.pids[i] = fork();
		if (W.pids[i] < 0)
			return -errno;
		if (!W.pids[i]) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() != parent)
				_exit(126);
			execl(PY, PY, W.script, "server", "--addr", ws_addrs[i], "--port", pbuf,
			      "--name", ws_names[i], "--ready", ready[i], (char *)NULL);
			_exit(127);
		}
	}
	deadline = now_ms() + 15000;
	for (i = 0; i < 2; i++) {
		while (access(ready[i], F_OK)) {
			int status;

			if (waitpid(W.pids[i], &status, WNOHANG) == W.pids[i]) {
				W.pids[i] = 0;
				return -ECHILD;
			}
			if (now_ms() > deadline)
				return -ETIMEDOUT;
			usleep(20000);
		}
	}
	return 0;
}

static void stop_servers(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (W.pids[i] > 0) {
			kill(W.pids[i], SIGTERM);
			waitpid(W.pids[i], NULL, 0);
			W.pids[i] = 0;
		}
	}
}

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

#define INGRESS(name, annotations)                                             \
	"---\n"                                                                \
	"apiVersion: networking.k8s.io/v1\n"                                   \
	"kind: Ingress\n"                                                      \
	"metadata:\n"                                                          \
	"  name: " name "\n"                                                   \
	"  namespace: web-demo\n"                                              \
	annotations                                                            \
	"spec:\n"                                                              \
	"  ingressClassName: mse\n"                                            \
	"  rules:\n"                                                           \
	"  - http:\n"                                                          \
	"      paths:\n"                                                       \
	"      - path: /\n"                                                    \
	"        pathType: Prefix\n"                                           \
	"        backend:\n"                                                   \
	"          service:\n"                                                 \
	"            name: chat\n"                                             \
	"            port:\n"                                                  \
	"              number: 80\n"

#define SUBSET(n, id)                                                          \
	"  annotations:\n"                                                     \
	"    mse.ingress.kubernetes.io/service-subset: cluster-demo-" n "\n"  \
	"    mse.ingress.kubernetes.io/subset-labels: |\n"                     \
	"      topology.istio.io/cluster " id "\n"

static int write_service(const char *dir, const char *addr)
{
	return write_file(dir, "chat.yaml",
			  "apiVersion: v1\nkind: Service\nmetadata:\n  name: chat\n"
			  "  namespace: web-demo\nspec:\n  type: ClusterIP\n  ports:\n"
			  "  - name: http\n    protocol: TCP\n    port: 80\n    targetPort: %d\n"
			  "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
			  "metadata:\n  name: chat-abcde\n  namespace: web-demo\n  labels:\n"
			  "    kubernetes.io/service-name: chat\naddressType: IPv4\nports:\n"
			  "- name: http\n  protocol: TCP\n  port: %d\nendpoints:\n"
			  "- addresses:\n  - %s\n  conditions:\n    ready: true\n",
			  W.up_port, W.up_port, addr);
}

static int write_config(void)
{
	char fleet[PATH_MAX + 16], c1[PATH_MAX + 64], c2[PATH_MAX + 64];
	int err;

	snprintf(W.cfg, sizeof(W.cfg), "%s/wscfg", test__tmpdir());
	snprintf(fleet, sizeof(fleet), "%s/fleet", W.cfg);
	snprintf(c1, sizeof(c1), "%s/clusters/" C1, W.cfg);
	snprintf(c2, sizeof(c2), "%s/clusters/" C2, W.cfg);
	if (fg_sh("mkdir -p '%s' '%s' '%s'", fleet, c1, c2))
		return -EIO;
	err = write_file(fleet, "gateway.yaml",
			 "apiVersion: mse.alibabacloud.com/v1alpha1\nkind: MseIngressConfig\n"
			 "metadata:\n  name: ackone-gateway\n  annotations:\n"
			 "    mse.alibabacloud.com/remote-clusters: " C1 "," C2 "\n"
			 "spec:\n  ingress:\n    local:\n      ingressClass: mse\n"
			 "  name: mse-ingress\n");
	if (!err)
		err = write_file(fleet, "ingresses.yaml", "%s%s",
				 INGRESS("chat", SUBSET("1", C1)),
				 INGRESS("chat-gray", SUBSET("2", C2)
					 "    nginx.ingress.kubernetes.io/canary: \"true\"\n"
					 "    nginx.ingress.kubernetes.io/canary-by-header: stage\n"
					 "    nginx.ingress.kubernetes.io/canary-by-header-value: gray\n"));
	if (!err)
		err = write_service(c1, ws_addrs[0]);
	if (!err)
		err = write_service(c2, ws_addrs[1]);
	return err;
}

/* Runs ws_peer.py with args; its last line of output into out. Returns
 * its exit status (-1: could not run). */
static int ws_run(char *out, size_t len, const char *fmt, ...)
{
	char args[1024], cmd[PATH_MAX + 1200], line[512];
	va_list ap;
	FILE *f;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "timeout 60 %s %s %s 2>&1", PY, W.script, args);
	out[0] = '\0';
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		snprintf(out, len, "%.*s", (int)strcspn(line, "\n"), line);
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_int_t stat_of(const char *name)
{
	json_int_t v;
	json_t *j;

	pthread_mutex_lock(&W.lock);
	j = fg_proxy_stats(W.proxy);
	pthread_mutex_unlock(&W.lock);
	v = json_integer_value(json_object_get(j, name));
	json_decref(j);
	return v;
}

/* Messages both ways, small and 256 KiB, on the route's cluster. */
static void subtest_echo(void)
{
	json_int_t before = stat_of("tunnels");
	char out[512];
	int rc;

	rc = ws_run(out, sizeof(out), "client --url ws://127.0.0.1:%u/chat --count 5 --size 262144 "
		    "--expect %s", W.port, ws_names[0]);
	ASSERT_EQ(rc, 0, "client");
	ASSERT_STREQ(out, "ok ws-c1", "echoed by cluster 1");
	ASSERT_GE(stat_of("tunnels") - before, 1, "counted as a tunnel");
}

/* The canary rule applies to the upgrade request. */
static void subtest_canary(void)
{
	char out[512];
	int rc;

	rc = ws_run(out, sizeof(out), "client --url ws://127.0.0.1:%u/chat --header 'stage: gray' "
		    "--expect %s", W.port, ws_names[1]);
	ASSERT_EQ(rc, 0, "client");
	ASSERT_STREQ(out, "ok ws-c2", "cluster 2 by header");
}

/* The server closes with a code: the client gets it. */
static void subtest_server_close(void)
{
	char out[512];

	ASSERT_EQ(ws_run(out, sizeof(out), "client --url ws://127.0.0.1:%u/chat --count 1 "
			 "--server-close", W.port), 0, "client");
	ASSERT_STREQ(out, "ok ws-c1 closed-by-server", "close frame relayed");
}

/* Many at once over both workers. */
static void subtest_concurrent(void)
{
	char out[512];

	ASSERT_EQ(ws_run(out, sizeof(out), "client --url ws://127.0.0.1:%u/chat --count 1 & "
			 "%s %s client --url ws://127.0.0.1:%u/chat --count 20 --size 10 & "
			 "%s %s client --url ws://127.0.0.1:%u/chat --count 20 --header 'stage: gray'"
			 "; wait", W.port, PY, W.script, W.port, PY, W.script, W.port), 0,
		  "three clients");
}

/* The same through TLS termination: wss:// to the TLS listener, the
 * tunnel's client side through OpenSSL, the canary rule still applied. */
static void subtest_wss(void)
{
	char out[512];

	ASSERT_EQ(ws_run(out, sizeof(out), "client --url wss://127.0.0.1:%u/chat --ssl-noverify "
			 "--count 5 --size 100000 --expect %s", W.tls_port, ws_names[0]), 0, "client");
	ASSERT_STREQ(out, "ok ws-c1", "echoed over TLS");
	ASSERT_EQ(ws_run(out, sizeof(out), "client --url wss://127.0.0.1:%u/chat --ssl-noverify "
			 "--header 'stage: gray' --expect %s --server-close", W.tls_port, ws_names[1]),
		  0, "canary over TLS");
	ASSERT_STREQ(out, "ok ws-c2 closed-by-server", "cluster 2, close relayed");
}

/* A tunnel with no byte either way for TUNNEL_IDLE_MS is closed. */
static void subtest_idle_timeout(void)
{
	char out[512];
	double secs = 0;
	int rc;

	rc = ws_run(out, sizeof(out), "hold --url ws://127.0.0.1:%u/chat --wait 10", W.port);
	ASSERT_EQ(rc, 0, "closed by the gateway");
	ASSERT_EQ(sscanf(out, "closed %*s after %lf s", &secs), 1, "hold's output");
	ASSERT_LT(secs, TUNNEL_IDLE_MS / 1000.0 + 3, "within the idle timeout");
	if (test__verbose())
		printf("idle: %s\n", out);
}

/* Refused upgrade (403): an ordinary response, and the connection stays
 * HTTP (a next request on it is answered). */
static void subtest_refused_upgrade(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(W.port) };
	struct timeval tv = { .tv_sec = 5 };
	char buf[8192];
	size_t got = 0;
	int fd, n, responses = 0;
	const char *req =
		"GET /reject HTTP/1.1\r\nHost: chat.example.com\r\nConnection: Upgrade\r\n"
		"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
		"GET /reject HTTP/1.1\r\nHost: chat.example.com\r\nConnection: close\r\n"
		"Upgrade: websocket\r\n\r\n";

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!ASSERT_GE(fd, 0, "socket"))
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (!ASSERT_OK(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), "connect"))
		goto out;
	ASSERT_EQ(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req), "send");
	while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
		got += n;
	buf[got] = '\0';
	for (char *s = buf; (s = strstr(s, "HTTP/1.1 403")); s++)
		responses++;
	if (test__verbose())
		printf("refused: %s\n", buf);
	ASSERT_EQ(responses, 2, "two 403s on one connection");
	ASSERT_TRUE(!strstr(buf, "HTTP/1.1 101"), "no switch");
out:
	close(fd);
}

static int setup(void)
{
	struct fg_control_opts copts = {};
	struct fg_dp_opts dopts = {};
	struct fg_proxy_opts popts;
	int err;

	err = start_servers();
	if (!ASSERT_OK(err, "websocket servers"))
		return err;
	err = write_config();
	if (!ASSERT_OK(err, "config"))
		return err;
	err = fg_dp_load(&W.dp, &dopts);
	if (err)
		return err;
	copts.config_dir = W.cfg;
	err = fg_control_new(&W.control, W.dp, &copts);
	if (!ASSERT_OK(err, "control"))
		return err;
	fg_control_set_state(W.control, true, true);
	err = fg_control_recompute(W.control);
	if (!ASSERT_OK(err, "recompute"))
		return err;
	fg_proxy_opts_init(&popts);
	fg_addr_parse("127.0.0.1", &popts.addr, &popts.family);
	popts.upstream_timeout_ms = TUNNEL_IDLE_MS;
	popts.workers = 2;
	/* wss:// through TLS termination (the generated default certificate). */
	popts.n_tls_listen = 1;
	fg_addr_parse("127.0.0.1", &popts.tls_listen[0].addr, &popts.tls_listen[0].family);
	err = fg_proxy_open(&W.proxy, W.control, W.dp, &popts);
	if (!ASSERT_OK(err, "fg_proxy_open"))
		return err;
	err = fg_proxy_start(W.proxy);
	if (!ASSERT_OK(err, "fg_proxy_start"))
		return err;
	W.port = fg_proxy_port(W.proxy);
	W.tls_port = fg_proxy_tls_port(W.proxy, 0);
	pthread_mutex_init(&W.lock, NULL);
	err = pthread_create(&W.thr, NULL, control_loop, NULL);
	if (err)
		return -err;
	W.thr_running = true;
	return 0;
}

static void teardown(void)
{
	if (W.thr_running) {
		W.stop = true;
		pthread_join(W.thr, NULL);
		pthread_mutex_destroy(&W.lock);
	}
	fg_proxy_close(W.proxy);
	fg_control_free(W.control);
	if (W.dp)
		fg_dp_close(W.dp, false);
	stop_servers();
}

static void websocket_body(void)
{
	int err;

	memset(&W, 0, sizeof(W));
	if (access(PY, X_OK) || fg_sh("%s -c 'import websockets' 2>/dev/null", PY)) {
		test__skip("%s with python3-websockets is not installed", PY);
		return;
	}
	if (find_script()) {
		test__skip("selftests/e2e/ws_peer.py not found");
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
	if (test__start_subtest("echo"))
		subtest_echo();
	if (test__start_subtest("canary"))
		subtest_canary();
	if (test__start_subtest("server_close"))
		subtest_server_close();
	if (test__start_subtest("concurrent"))
		subtest_concurrent();
	if (test__start_subtest("wss"))
		subtest_wss();
	if (test__start_subtest("refused_upgrade"))
		subtest_refused_upgrade();
	if (test__start_subtest("idle_timeout"))
		subtest_idle_timeout();
out:
	teardown();
}

FG_TEST(websocket)
{
	int ns = test__netns_private();

	if (ns < 0) {
		test__skip("no private network namespace: %s", strerror(-ns));
		return;
	}
	websocket_body();
	test__netns_restore(ns);
}
