// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The L7 data path modes (agent/splice.h): the start-up probe of each mode
 * on loopback (framed data, checksum compared), the auto choice, and the
 * proxy end to end in each mode against selftests/e2e/splice_upstream.py:
 * a 64 MiB response, a chunked response in many chunks, keep-alive
 * boundaries, an 8 MiB request body (SHA-256 compared by the upstream),
 * and an upstream that closes mid-body (the client must see the end).
 * In sockmap mode these go through the proxy's own kernel path (response
 * bodies by verdict-redirect windows; the stats check that the kernel
 * moved bytes, and the paced chunked response that every chunk did);
 * when the kernel refuses it, the sockmap_* subtests skip with the reason.
 *
 * FLEETGATE_L7_MODE is ignored here: each mode is forced in turn.
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
#include <openssl/evp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "control.h"
#include "dataplane.h"
#include "proxy.h"
#include "splice.h"
#include "test_progs.h"

#define CL "c5a1ce0123456789abcdef0123456789a"

static struct {
	struct fg_dataplane *dp;
	struct fg_control *control;
	struct fg_proxy *proxy;
	pthread_t thr;
	bool thr_running;
	volatile bool stop;
	pthread_mutex_t lock;
	__u16 port;
	int up_port;
	pid_t pid;
	char script[PATH_MAX];
	char cfg[PATH_MAX - 128];
} S;

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned char pat(__u64 i)
{
	return (unsigned char)((i * 131 + (i >> 16)) & 0xff);
}

/* ---------- probes ---------- */

static void probe_one(enum fg_l7_mode mode)
{
	struct fg_sockmap *sm = NULL;
	struct fg_splice_result r;
	int err;

	if (mode == FG_L7_SOCKMAP) {
		err = fg_sockmap_open(&sm, NULL);
		if (err) {
			test__skip("the kernel refuses the sockmap program: %s", strerror(-err));
			return;
		}
	}
	err = fg_splice_probe(mode, sm, 32 << 20, 1 << 20, 20000, &r);
	printf("probe %s: %s %.2f Gbit/s, agent %.3f s CPU, %llu windows, %llu kernel bytes %s\n",
	       fg_l7_mode_name(mode), err ? "FAILED" : "ok", r.gbps, r.agent_cpu,
	       (unsigned long long)r.windows, (unsigned long long)r.kernel_bytes, r.why);
	if (mode == FG_L7_SOCKMAP && err) {
		/* Known: rare misaligned runs under heavy load (docs/
		 * architecture.md "L7 data path"). This is what the start-up
		 * probe is for: the proxy then falls back, so not a failure. */
		test__skip("sockmap probe failed (%s): the proxy falls back to splice", r.why);
		fg_sockmap_close(sm, true);
		return;
	}
	ASSERT_OK(err, "probe");
	ASSERT_TRUE(r.ok, "intact");
	ASSERT_EQ(r.bytes, 32 << 20, "bytes");
	fg_sockmap_close(sm, true);
}

/* FLEETGATE_SPLICE_BENCH_BYTES=N (selftests/e2e/splice_bench.sh): N bytes
 * in 64 MiB messages through one mode, figures printed; skipped otherwise. */
static void bench_one(enum fg_l7_mode mode)
{
	const char *env = getenv("FLEETGATE_SPLICE_BENCH_BYTES");
	unsigned long long bytes = env ? strtoull(env, NULL, 0) : 0;
	struct fg_sockmap *sm = NULL;
	struct fg_splice_result r;
	int err;

	if (!bytes) {
		test__skip("set FLEETGATE_SPLICE_BENCH_BYTES to run it");
		return;
	}
	if (mode == FG_L7_SOCKMAP && (err = fg_sockmap_open(&sm, NULL))) {
		test__skip("the kernel refuses the sockmap program: %s", strerror(-err));
		return;
	}
	err = fg_splice_probe(mode, sm, bytes, 64ULL << 20, 120000, &r);
	fprintf(stderr,
		"bench: l7_%s %s %.2f Gbit/s, %.2f s, agent CPU %.3f s/GiB, machine CPU %.2f s/GiB, "
		"kernel-redirected %.0f%% (%llu windows, %llu repeated bytes cut) %s\n",
		fg_l7_mode_name(mode), err ? "FAILED" : "intact", r.gbps, r.seconds,
		r.agent_cpu * (1 << 30) / (r.bytes ? r.bytes : 1),
		r.system_cpu * (1 << 30) / (r.bytes ? r.bytes : 1),
		r.bytes ? 100.0 * r.kernel_bytes / r.bytes : 0.0, (unsigned long long)r.windows,
		(unsigned long long)r.repeated_bytes, r.why);
	ASSERT_OK(err, "intact");
	fg_sockmap_close(sm, true);
}

/* ---------- upstream, config, proxy ---------- */

static int start_upstream(void)
{
	char ready[PATH_MAX], log[PATH_MAX], exe[1024], *slash;
	pid_t parent = getpid();
	__u64 deadline;
	ssize_t n;
	int fd;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -errno;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(S.script, sizeof(S.script), "%s/../selftests/e2e/splice_upstream.py", exe);
	if (access(S.script, R_OK))
		snprintf(S.script, sizeof(S.script), "selftests/e2e/splice_upstream.py");
	if (access(S.script, R_OK))
		return -ENOENT;
	snprintf(ready, sizeof(ready), "%s/splice_upstream.ready", test__tmpdir());
	snprintf(log, sizeof(log), "%s/splice_upstream.log", test__tmpdir());
	unlink(ready);
	fflush(stdout);
	S.pid = fork();
	if (S.pid < 0)
		return -errno;
	if (!S.pid) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(126);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("python3", "python3", S.script, "--addr", "127.0.0.61", "--port", "0",
		       "--ready", ready, (char *)NULL);
		_exit(127);
	}
	for (deadline = now_ms() + 5000; now_ms() < deadline;) {
		FILE *f = fopen(ready, "r");
		struct timespec ts = { 0, 10000000 };

		if (f) {
			int ok = fscanf(f, "%d", &S.up_port) == 1;

			fclose(f);
			if (ok)
				return 0;
		}
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

static int write_file(const char *path, const char *fmt, ...)
{
	va_list ap;
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	return fclose(f) ? -errno : 0;
}

static int write_config(void)
{
	char path[PATH_MAX + 64];
	int err;

	snprintf(S.cfg, sizeof(S.cfg), "%s/splicecfg", test__tmpdir());
	if (fg_sh("mkdir -p '%s/fleet' '%s/clusters/" CL "'", S.cfg, S.cfg))
		return -EIO;
	snprintf(path, sizeof(path), "%s/fleet/gateway.yaml", S.cfg);
	err = write_file(path,
			 "apiVersion: mse.alibabacloud.com/v1alpha1\n"
			 "kind: MseIngressConfig\n"
			 "metadata:\n"
			 "  name: ackone-gateway\n"
			 "  annotations:\n"
			 "    mse.alibabacloud.com/remote-clusters: " CL "\n"
			 "spec:\n"
			 "  ingress:\n"
			 "    local:\n"
			 "      ingressClass: mse\n"
			 "  name: mse-ingress\n"
			 "---\n"
			 "apiVersion: networking.k8s.io/v1\n"
			 "kind: Ingress\n"
			 "metadata:\n"
			 "  name: bulk\n"
			 "  namespace: web-demo\n"
			 "spec:\n"
			 "  ingressClassName: mse\n"
			 "  rules:\n"
			 "  - host: bulk.example.com\n"
			 "    http:\n"
			 "      paths:\n"
			 "      - path: /\n"
			 "        pathType: Prefix\n"
			 "        backend:\n"
			 "          service:\n"
			 "            name: bulk\n"
			 "            port:\n"
			 "              number: 80\n");
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/clusters/" CL "/apps.yaml", S.cfg);
	return write_file(path,
			  "apiVersion: v1\n"
			  "kind: Service\n"
			  "metadata:\n"
			  "  name: bulk\n"
			  "  namespace: web-demo\n"
			  "spec:\n"
			  "  type: ClusterIP\n"
			  "  ports:\n"
			  "  - name: http\n"
			  "    protocol: TCP\n"
			  "    port: 80\n"
			  "    targetPort: %d\n"
			  "---\n"
			  "apiVersion: discovery.k8s.io/v1\n"
			  "kind: EndpointSlice\n"
			  "metadata:\n"
			  "  name: bulk-abcde\n"
			  "  namespace: web-demo\n"
			  "  labels:\n"
			  "    kubernetes.io/service-name: bulk\n"
			  "addressType: IPv4\n"
			  "ports:\n"
			  "- name: http\n"
			  "  protocol: TCP\n"
			  "  port: %d\n"
			  "endpoints:\n"
			  "- addresses:\n"
			  "  - 127.0.0.61\n"
			  "  conditions:\n"
			  "    ready: true\n",
			  S.up_port, S.up_port);
}

static void *proxy_loop(void *arg)
{
	struct pollfd pfd = { .fd = fg_proxy_fd(S.proxy), .events = POLLIN };
	__u64 last = 0;

	while (!S.stop) {
		poll(&pfd, 1, 20);
		pthread_mutex_lock(&S.lock);
		fg_proxy_process(S.proxy);
		if (now_ms() - last >= 50) {
			fg_proxy_tick(S.proxy);
			last = now_ms();
		}
		pthread_mutex_unlock(&S.lock);
	}
	return NULL;
}

static int proxy_start(enum fg_l7_mode mode)
{
	struct fg_proxy_opts o;
	int err;

	fg_proxy_opts_init(&o);
	fg_addr_parse("127.0.0.1", &o.addr, &o.family);
	o.l7_mode = mode;
	o.upstream_timeout_ms = 10000;
	err = fg_proxy_open(&S.proxy, S.control, S.dp, &o);
	if (err)
		return err;
	S.port = fg_proxy_port(S.proxy);
	S.stop = false;
	err = pthread_create(&S.thr, NULL, proxy_loop, NULL);
	if (err)
		return -err;
	S.thr_running = true;
	return 0;
}

static void proxy_stop(void)
{
	if (S.thr_running) {
		S.stop = true;
		pthread_join(S.thr, NULL);
		S.thr_running = false;
	}
	fg_proxy_close(S.proxy);
	S.proxy = NULL;
}

/* ---------- a client ---------- */

struct cl {
	int fd;
	char buf[256 * 1024];
	size_t off, len;
};

static struct cl *cl_open(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(S.port) };
	struct timeval tv = { .tv_sec = 10 };
	struct cl *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sin, sizeof(sin))) {
		if (c->fd >= 0)
			close(c->fd);
		free(c);
		return NULL;
	}
	return c;
}

static void cl_close(struct cl *c)
{
	if (c) {
		close(c->fd);
		free(c);
	}
}

static int cl_send(struct cl *c, const void *p, size_t n)
{
	const char *b = p;

	while (n) {
		ssize_t k = send(c->fd, b, n, MSG_NOSIGNAL);

		if (k <= 0)
			return k < 0 ? -errno : -EPIPE;
		b += k;
		n -= k;
	}
	return 0;
}

/* Refills the buffer: >0 bytes available, 0 EOF, -errno (-EAGAIN: the
 * 10 s receive timeout). */
static int cl_fill(struct cl *c)
{
	ssize_t n;

	if (c->off < c->len)
		return 1;
	c->off = c->len = 0;
	n = recv(c->fd, c->buf, sizeof(c->buf), 0);
	if (n < 0)
		return -errno;
	c->len = n;
	return n > 0;
}

/* Reads a line (without CRLF) into out. */
static int cl_line(struct cl *c, char *out, size_t cap)
{
	size_t n = 0;

	for (;;) {
		int r = cl_fill(c);
		char ch;

		if (r <= 0)
			return r ? r : -EPIPE;
		ch = c->buf[c->off++];
		if (ch == '\n')
			break;
		if (n + 1 < cap)
			out[n++] = ch;
	}
	if (n && out[n - 1] == '\r')
		n--;
	out[n] = '\0';
	return 0;
}

struct resp {
	int status;
	long long clen;   /* -1: none */
	bool chunked;
};

static int cl_head(struct cl *c, struct resp *r)
{
	char line[8192];
	int err;

	memset(r, 0, sizeof(*r));
	r->clen = -1;
	err = cl_line(c, line, sizeof(line));
	if (err)
		return err;
	if (sscanf(line, "HTTP/1.%*d %d", &r->status) != 1)
		return -EPROTO;
	for (;;) {
		err = cl_line(c, line, sizeof(line));
		if (err)
			return err;
		if (!line[0])
			return 0;
		if (!strncasecmp(line, "content-length:", 15))
			r->clen = atoll(line + 15);
		if (!strncasecmp(line, "transfer-encoding:", 18) && strstr(line, "chunked"))
			r->chunked = true;
	}
}

/* Reads n body bytes checking the pattern from *pos; returns bytes read
 * (short at EOF), or -errno; *bad counts mismatches. */
static long long cl_body(struct cl *c, long long n, __u64 *pos, __u64 *bad)
{
	long long got = 0;

	while (got < n) {
		int r = cl_fill(c);
		size_t k, i;

		if (r < 0)
			return r;
		if (!r)
			break;
		k = c->len - c->off;
		if ((long long)k > n - got)
			k = n - got;
		for (i = 0; i < k; i++)
			*bad += (unsigned char)c->buf[c->off + i] != pat(*pos + i);
		*pos += k;
		c->off += k;
		got += k;
	}
	return got;
}

/* A whole response whose body is the pattern of size n. */
static int get_pattern(struct cl *c, const char *path, long long n)
{
	char req[512];
	struct resp r;
	__u64 pos = 0, bad = 0;
	long long got;
	int err;

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: bulk.example.com\r\n\r\n", path);
	err = cl_send(c, req, strlen(req));
	if (!ASSERT_OK(err, "send"))
		return err;
	err = cl_head(c, &r);
	if (!ASSERT_OK(err, "response head") || !ASSERT_EQ(r.status, 200, "status"))
		return -EPROTO;
	if (r.chunked) {
		long long total = 0;
		char line[256];

		for (;;) {
			long long sz;

			err = cl_line(c, line, sizeof(line));
			if (!ASSERT_OK(err, "chunk line"))
				return err;
			sz = strtoll(line, NULL, 16);
			if (!sz)
				break;
			got = cl_body(c, sz, &pos, &bad);
			if (!ASSERT_EQ(got, sz, "chunk data"))
				return -EPROTO;
			total += sz;
			err = cl_line(c, line, sizeof(line));
			if (!ASSERT_OK(err, "chunk CRLF") || !ASSERT_EQ(line[0], 0, "empty line"))
				return -EPROTO;
		}
		err = cl_line(c, line, sizeof(line)); /* end of trailers */
		if (!ASSERT_OK(err, "last CRLF"))
			return err;
		ASSERT_EQ(total, n, "chunked body length");
	} else {
		if (!ASSERT_EQ(r.clen, n, "content-length"))
			return -EPROTO;
		got = cl_body(c, n, &pos, &bad);
		ASSERT_EQ(got, n, "body bytes");
	}
	ASSERT_EQ(bad, 0, "body bytes that differ from the pattern");
	return bad ? -EBADMSG : 0;
}

/* ---------- end-to-end subtests ---------- */

static void e2e_big(void)
{
	struct cl *c = cl_open();
	__u64 t0 = now_ms();

	if (!ASSERT_OK_PTR(c, "connect"))
		return;
	if (!get_pattern(c, "/big?n=67108864", 64LL << 20))
		printf("64 MiB in %llu ms\n", (unsigned long long)(now_ms() - t0));
	cl_close(c);
}

static long long kernel_bytes(void)
{
	long long n;
	json_t *j;

	pthread_mutex_lock(&S.lock);
	j = fg_proxy_stats(S.proxy);
	pthread_mutex_unlock(&S.lock);
	n = json_integer_value(json_object_get(j, "kernelBytes"));
	json_decref(j);
	return n;
}

static void e2e_chunked(void)
{
	struct cl *c = cl_open();
	long long kb;

	if (!ASSERT_OK_PTR(c, "connect"))
		return;
	/* 2000 chunks of 3000 bytes (under SPLICE_MIN: through the buffers),
	 * then 40 chunks of 100 KiB (spliced). */
	get_pattern(c, "/chunked?n=6000000&c=3000", 6000000);
	get_pattern(c, "/chunked?n=4096000&c=102400", 4096000);
	/* 4 chunks of 8 MiB, sent in one go: sockmap opens a window inside
	 * a chunk when it catches up with the upstream, the next chunk-size
	 * line closes it (the skb crossing the end is passed whole). */
	get_pattern(c, "/chunked?n=33554432&c=8388608", 33554432);
	/* The same from a slower upstream (each chunk-size line alone, then
	 * 20 ms): every chunk's data goes by a window of exactly its size. */
	kb = kernel_bytes();
	get_pattern(c, "/chunked?n=33554432&c=8388608&pause=20", 33554432);
	if (fg_proxy_mode(S.proxy) == FG_L7_SOCKMAP)
		ASSERT_GT(kernel_bytes() - kb, 16LL << 20, "chunk data redirected by the kernel");
	cl_close(c);
}

static void e2e_keepalive(void)
{
	struct cl *c = cl_open();
	char line[256];
	struct resp r;
	int i, err;

	if (!ASSERT_OK_PTR(c, "connect"))
		return;
	for (i = 0; i < 3; i++) {
		char req[256];

		if (get_pattern(c, "/big?n=3000000", 3000000))
			break;
		snprintf(req, sizeof(req), "GET /id?k=%d HTTP/1.1\r\nHost: bulk.example.com\r\n\r\n",
			 i);
		if (!ASSERT_OK(cl_send(c, req, strlen(req)), "send id"))
			break;
		err = cl_head(c, &r);
		if (!ASSERT_OK(err, "id head") || !ASSERT_EQ(r.status, 200, "id status"))
			break;
		err = cl_line(c, line, sizeof(line));
		snprintf(req, sizeof(req), "id %d", i);
		if (!ASSERT_OK(err, "id body") || !ASSERT_EQ(strcmp(line, req), 0, "right answer"))
			break;
		if (get_pattern(c, "/chunked?n=500000&c=65536", 500000))
			break;
	}
	cl_close(c);
}

static void e2e_upload(void)
{
	const size_t n = 8 << 20;
	unsigned char *body = malloc(n), md[32];
	char req[256], line[256], hex[65];
	struct cl *c = cl_open();
	struct resp r;
	unsigned i;
	size_t k;

	if (!ASSERT_OK_PTR(c, "connect") || !ASSERT_OK_PTR(body, "malloc"))
		goto out;
	for (k = 0; k < n; k++)
		body[k] = pat(k * 7 + 3);
	EVP_Digest(body, n, md, NULL, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	snprintf(req, sizeof(req),
		 "POST /upload HTTP/1.1\r\nHost: bulk.example.com\r\nContent-Length: %zu\r\n\r\n", n);
	if (!ASSERT_OK(cl_send(c, req, strlen(req)), "send head") ||
	    !ASSERT_OK(cl_send(c, body, n), "send body"))
		goto out;
	if (!ASSERT_OK(cl_head(c, &r), "head") || !ASSERT_EQ(r.status, 200, "status"))
		goto out;
	if (!ASSERT_OK(cl_line(c, line, sizeof(line)), "answer"))
		goto out;
	snprintf(req, sizeof(req), "%zu %s", n, hex);
	if (!ASSERT_EQ(strcmp(line, req), 0, "upstream got the body intact"))
		printf("upstream: '%s'\nexpected: '%s'\n", line, req);
out:
	free(body);
	cl_close(c);
}

static void e2e_cut(void)
{
	struct cl *c = cl_open();
	const char *req = "GET /cut?n=20000000 HTTP/1.1\r\nHost: bulk.example.com\r\n\r\n";
	__u64 pos = 0, bad = 0, t0 = now_ms();
	struct resp r;
	long long got;

	if (!ASSERT_OK_PTR(c, "connect"))
		return;
	if (!ASSERT_OK(cl_send(c, req, strlen(req)), "send") || !ASSERT_OK(cl_head(c, &r), "head"))
		goto out;
	ASSERT_EQ(r.clen, 20000000, "content-length");
	got = cl_body(c, r.clen, &pos, &bad);
	/* The upstream sent half and closed: the client sees the end (EOF or
	 * reset), not a hang (the receive timeout would give -EAGAIN). */
	ASSERT_GE(got, 0, "ended by EOF, not a timeout");
	ASSERT_LT(got, 20000000, "short");
	ASSERT_EQ(bad, 0, "what came is right");
	ASSERT_LT(now_ms() - t0, 5000, "promptly");
out:
	cl_close(c);
}

/* FLEETGATE_SPLICE_BENCH_BYTES=N (selftests/e2e/splice_bench.sh): one
 * response of N bytes through the proxy in this mode, timed, with the
 * proxy thread's CPU time. */
static void e2e_bench(enum fg_l7_mode mode)
{
	const char *env = getenv("FLEETGATE_SPLICE_BENCH_BYTES");
	long long n = env ? atoll(env) : 0;
	struct timespec c0, c1;
	clockid_t cid;
	char path[64];
	struct cl *c;
	__u64 t0, t1;
	json_t *j;
	long long kb = 0;

	if (n <= 0) {
		test__skip("set FLEETGATE_SPLICE_BENCH_BYTES to run it");
		return;
	}
	if (mode == FG_L7_AUTO) {
		test__skip("auto is splice (see splice_bench_proxy)");
		return;
	}
	c = cl_open();
	if (!ASSERT_OK_PTR(c, "connect"))
		return;
	if (pthread_getcpuclockid(S.thr, &cid))
		cid = CLOCK_PROCESS_CPUTIME_ID;
	snprintf(path, sizeof(path), "/big?n=%lld", n);
	pthread_mutex_lock(&S.lock);
	j = fg_proxy_stats(S.proxy);
	pthread_mutex_unlock(&S.lock);
	kb = -(long long)json_integer_value(json_object_get(j, "kernelBytes"));
	json_decref(j);
	clock_gettime(cid, &c0);
	t0 = now_ms();
	if (get_pattern(c, path, n))
		goto out;
	t1 = now_ms();
	clock_gettime(cid, &c1);
	pthread_mutex_lock(&S.lock);
	j = fg_proxy_stats(S.proxy);
	pthread_mutex_unlock(&S.lock);
	kb += json_integer_value(json_object_get(j, "kernelBytes"));
	json_decref(j);
	printf("bench: proxy_%s intact %.2f Gbit/s, %.2f s, proxy CPU %.3f s/GiB, "
	       "kernel-redirected %.0f%%\n", fg_l7_mode_name(mode),
	       n * 8.0 / ((t1 - t0 ? t1 - t0 : 1) / 1000.0) / 1e9, (t1 - t0) / 1000.0,
	       ((c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9) * (1 << 30) / n,
	       kb * 100.0 / n);
out:
	cl_close(c);
}

static void e2e_stats(enum fg_l7_mode want)
{
	json_t *j;
	const char *mode;

	pthread_mutex_lock(&S.lock);
	j = fg_proxy_stats(S.proxy);
	pthread_mutex_unlock(&S.lock);
	if (!ASSERT_OK_PTR(j, "stats"))
		return;
	mode = json_string_value(json_object_get(j, "mode"));
	printf("mode %s (%s), splicedBytes %lld, kernelBytes %lld in %lld windows\n",
	       mode ? mode : "?", json_string_value(json_object_get(j, "modeReason")),
	       (long long)json_integer_value(json_object_get(j, "splicedBytes")),
	       (long long)json_integer_value(json_object_get(j, "kernelBytes")),
	       (long long)json_integer_value(json_object_get(j, "kernelWindows")));
	ASSERT_OK_PTR(mode, "mode in stats");
	if (mode && want != FG_L7_AUTO)
		ASSERT_EQ(strcmp(mode, fg_l7_mode_name(want)), 0, "mode shown");
	/* splice moves every opaque byte past the first SPLICE_MIN; sockmap
	 * loses windows to a fast sender (the rest is copied), so only ask
	 * that the kernel moved some. */
	if (mode && !strcmp(mode, "splice"))
		ASSERT_GT(json_integer_value(json_object_get(j, "splicedBytes")), 64 << 20,
			  "bodies skipped user space");
	/* sockmap: the responses above really went through kernel windows. */
	if (mode && !strcmp(mode, "sockmap"))
		ASSERT_GT(json_integer_value(json_object_get(j, "kernelBytes")), 0,
			  "response bytes redirected by the kernel");
	json_decref(j);
}

static void e2e_mode(enum fg_l7_mode mode)
{
	static const char *const names[] = { "big_64m", "chunked", "keepalive", "upload_8m",
					     "upstream_cut", "stats", "bench_proxy" };
	char name[64];
	enum fg_l7_mode shown = mode;
	int i, err;

	err = proxy_start(mode);
	if (!ASSERT_OK(err, "proxy"))
		return;
	/* sockmap: the proxy's own kernel path when its start-up probe
	 * passed; else it fell back (to splice) and these subtests say so. */
	if (mode == FG_L7_SOCKMAP)
		shown = fg_proxy_mode(S.proxy);
	for (i = 0; i < 7; i++) {
		snprintf(name, sizeof(name), "%s_%s", fg_l7_mode_name(mode), names[i]);
		if (!test__start_subtest(name))
			continue;
		if (mode == FG_L7_SOCKMAP && shown != FG_L7_SOCKMAP) {
			test__skip("the kernel refused the sockmap path: %s",
				   fg_proxy_mode_why(S.proxy));
			continue;
		}
		switch (i) {
		case 0: e2e_big(); break;
		case 1: e2e_chunked(); break;
		case 2: e2e_keepalive(); break;
		case 3: e2e_upload(); break;
		case 4: e2e_cut(); break;
		case 5: e2e_stats(shown); break;
		case 6: e2e_bench(mode); break;
		}
	}
	proxy_stop();
}

static void splice_body(void)
{
	struct fg_control_opts copts = {};
	struct fg_dp_opts dopts = {};
	char why[512];
	int err;

	memset(&S, 0, sizeof(S));
	pthread_mutex_init(&S.lock, NULL);
	if (test__start_subtest("probe_copy"))
		probe_one(FG_L7_COPY);
	if (test__start_subtest("probe_splice"))
		probe_one(FG_L7_SPLICE);
	if (test__start_subtest("probe_sockmap"))
		probe_one(FG_L7_SOCKMAP);
	if (test__start_subtest("bench_copy"))
		bench_one(FG_L7_COPY);
	if (test__start_subtest("bench_splice"))
		bench_one(FG_L7_SPLICE);
	if (test__start_subtest("bench_sockmap"))
		bench_one(FG_L7_SOCKMAP);
	if (test__start_subtest("auto_choice")) {
		enum fg_l7_mode m = fg_splice_choose(NULL, why, sizeof(why));

		printf("auto: %s (%s)\n", fg_l7_mode_name(m), why);
		ASSERT_NEQ(m, FG_L7_AUTO, "a mode");
		ASSERT_GT(strlen(why), 0, "a reason");
	}
	err = start_upstream();
	if (err) {
		test__skip("cannot start selftests/e2e/splice_upstream.py: %s", strerror(-err));
		goto out;
	}
	err = write_config();
	if (!ASSERT_OK(err, "config"))
		goto out;
	err = fg_dp_load(&S.dp, &dopts);
	if (err) {
		test__skip("cannot load the data plane: %s", strerror(-err));
		goto out;
	}
	copts.config_dir = S.cfg;
	err = fg_control_new(&S.control, S.dp, &copts);
	if (!ASSERT_OK(err, "control"))
		goto out;
	fg_control_set_state(S.control, true, true);
	if (!ASSERT_OK(fg_control_recompute(S.control), "recompute"))
		goto out;
	e2e_mode(FG_L7_COPY);
	e2e_mode(FG_L7_SPLICE);
	e2e_mode(FG_L7_SOCKMAP);
	e2e_mode(FG_L7_AUTO);
out:
	fg_control_free(S.control);
	if (S.dp)
		fg_dp_close(S.dp, false);
	if (S.pid > 0) {
		kill(S.pid, SIGKILL);
		waitpid(S.pid, NULL, 0);
	}
	pthread_mutex_destroy(&S.lock);
}

/* In a private network namespace: the proxy, its upstreams and clients
 * meet nothing else. */
FG_TEST(splice)
{
	int ns = test__netns_private();

	if (ns < 0) {
		test__skip("no private network namespace: %s", strerror(-ns));
		return;
	}
	splice_body();
	test__netns_restore(ns);
}
