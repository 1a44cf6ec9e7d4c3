// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fg-bench-fleet: the control-plane benchmark's tool (selftests/bench_cp.sh).
 * It treats fleetgate-agent as a black box: it writes config directories,
 * edits them the way an operator would (a file written under a temporary
 * name, then renamed into place) and watches the results where traffic
 * sees them: the pinned maps, and HTTP through the proxy.
 *
 * Synthetic fleet (every subcommand derives the same names and addresses
 * from N, C, E, BIG):
 *   fleet/gw.yaml             MseIngressConfig "bench-gw", C remote clusters
 *   fleet/ing-IIIIII.yaml     Ingress ing-IIIIII, host hI.bench.example, path
 *                             / (Prefix) -> Service svc-IIIIII:80; for every
 *                             tenth one also a weight canary (canary-weight
 *                             10) pinned to one cluster by subset labels.
 *                             Ingress 0 is the probe route: its main Ingress
 *                             pinned to cluster 0, its canary to cluster 1,
 *                             weight 0 (the weight edits flip it 0 <-> 100).
 *   fleet/ing-big.yaml        with BIG > 0: host big.bench.example -> big:80
 *   clusters/ID/svc-IIIIII.yaml  Service svc-IIIIII and its EndpointSlice:
 *                             E ready endpoints, port 8080
 *   clusters/ID/big.yaml      with BIG > 0: Service big, BIG endpoints
 * Endpoint addresses are distinct: 10.64.0.1 + g, g = (i * C + c) * E + k
 * (then the big Service's, then spare addresses for moved endpoints), all
 * inside 10.64.0.0/10, which the endpoint namespace answers as a whole
 * (a "local" route, one listener: `serve`).
 *
 * Subcommands (times printed in ms unless said):
 *   gen DIR N C E BIG                 write the config directory
 *   serve PORT                        the endpoints: accept, answer HTTP/1.1
 *                                     GETs with the local address, close
 *                                     on EOF (the agent's TCP probes)
 *   wait SOCK GW PIN T0 EXPECT TIMEOUT_S [AGENT_PID]
 *                                     from T0 (CLOCK_REALTIME, seconds):
 *                                     until GW is Listening, then until
 *                                     EXPECT backends are active in PIN
 *   backends PIN                      active / up backends in the maps
 *   epchange DIR PIN N C E BIG COUNT TIMEOUT_MS [big]
 *                                     COUNT one-endpoint moves, each timed
 *                                     until the moved address is in the
 *                                     Maglev ring of every target using it
 *   weight DIR N C E BIG ADDR:PORT COUNT TIMEOUT_MS
 *                                     COUNT canary weight edits (0 <-> 100)
 *                                     on the probe route, each timed until
 *                                     an HTTP request lands on the newly
 *                                     chosen cluster (run in the client
 *                                     namespace)
 *   churn DIR N C E BIG RATE SECS [PIN]
 *                                     RATE endpoint moves per second; with
 *                                     PIN, then the time until the maps
 *                                     hold the last state
 *   admin SOCK KIND                   the agent's answer to {"get": KIND}
 *   compute C E N...                  in-process: fg_plan_compute and
 *                                     fg_applier_apply on a loaded (not
 *                                     pinned, not attached) data plane
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <jansson.h>
#include <bpf/bpf.h>

#include "admin.h"
#include "apply.h"
#include "dataplane.h"
#include "log.h"
#include "routes.h"

#define NS "bench"
#define EP_PORT 8080
#define ADDR_BASE 0x0a400000u /* 10.64.0.0/10 */
#define ADDR_SPAN (1u << 22)
#define MAX_C FG_MAX_CLUSTERS

struct fleet {
	const char *dir;
	int n, c, e, big;
	char ids[MAX_C][40];
};

/* ---------- names and addresses ---------- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static int fleet_init(struct fleet *f, const char *dir, int n, int c, int e, int big)
{
	int i;

	if (n < 1 || c < 2 || c > MAX_C || e < 2 || big < 0) {
		fprintf(stderr, "fleet: want N >= 1, 2 <= C <= %d, E >= 2, BIG >= 0\n", MAX_C);
		return -EINVAL;
	}
	if ((uint64_t)n * c * e + (uint64_t)c * big + 100000 >= ADDR_SPAN - 2) {
		fprintf(stderr, "fleet: %d x %d x %d endpoints do not fit in 10.64.0.0/10\n", n, c, e);
		return -EINVAL;
	}
	f->dir = dir;
	f->n = n;
	f->c = c;
	f->e = e;
	f->big = big;
	for (i = 0; i < c; i++)
		snprintf(f->ids[i], sizeof(f->ids[i]), "c%016llx%016llx",
			 (unsigned long long)mix64(2 * i + 1), (unsigned long long)mix64(2 * i + 2));
	return 0;
}

static uint32_t g_regular(const struct fleet *f, int i, int c, int k)
{
	return ((uint32_t)i * f->c + c) * f->e + k;
}

static uint32_t g_big(const struct fleet *f, int c, int k)
{
	return (uint32_t)f->n * f->c * f->e + (uint32_t)c * f->big + k;
}

/* Spare addresses, for endpoints moved by the edits; spare s of 100000. */
static uint32_t g_spare(const struct fleet *f, int s)
{
	return g_big(f, f->c, 0) + 16 + (uint32_t)s;
}

static uint32_t addr_of(uint32_t g)
{
	return ADDR_BASE + 1 + g;
}

static void addr_str(uint32_t a, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

/* The canary cluster of Ingress i (every tenth has a canary). */
static int canary_cluster(const struct fleet *f, int i)
{
	return i == 0 ? 1 : (i / 10) % f->c;
}

static double now_s(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mono_ms(void)
{
	return now_s(CLOCK_MONOTONIC) * 1e3;
}

static void sleep_ms(double ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1e3),
			       .tv_nsec = (long)((ms - (time_t)(ms / 1e3) * 1e3) * 1e6) };

	nanosleep(&ts, NULL);
}

/* ---------- the config directory ---------- */

static int mkdirs(const char *path)
{
	char buf[PATH_MAX], *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, 0755) && errno != EEXIST ? -errno : 0;
}

/* Writes path atomically: a hidden temporary name (ignored by the agent),
 * then rename(2). *t_visible (may be NULL) gets the monotonic time just
 * before the rename, when the change becomes visible. */
typedef void (*writer_fn)(FILE *out, const struct fleet *f, const void *arg);

static int write_file(const char *dir, const char *name, writer_fn fn, const struct fleet *f,
		      const void *arg, double *t_visible)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	FILE *out;

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	out = fopen(tmp, "w");
	if (!out)
		return -errno;
	fn(out, f, arg);
	if (fclose(out))
		return -errno;
	if (t_visible)
		*t_visible = mono_ms();
	if (rename(tmp, path))
		return -errno;
	return 0;
}

static void w_gateway(FILE *out, const struct fleet *f, const void *arg)
{
	int c;

	fprintf(out, "apiVersion: mse.alibabacloud.com/v1alpha1\nkind: MseIngressConfig\n"
		     "metadata:\n  name: bench-gw\n  annotations:\n"
		     "    mse.alibabacloud.com/remote-clusters: ");
	for (c = 0; c < f->c; c++)
		fprintf(out, "%s%s", c ? "," : "", f->ids[c]);
	fprintf(out, "\nspec:\n  common:\n    instance:\n      replicas: 1\n"
		     "  ingress:\n    local:\n      ingressClass: mse\n  name: mse-ingress\n");
}

static void ingress_doc(FILE *out, const struct fleet *f, const char *name, const char *host,
			const char *svc, int pin_cluster, int canary_weight)
{
	fprintf(out, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n");
	if (pin_cluster >= 0 || canary_weight >= 0) {
		fprintf(out, "  annotations:\n");
		if (pin_cluster >= 0)
			fprintf(out, "    mse.ingress.kubernetes.io/service-subset: subset-%d\n"
				     "    mse.ingress.kubernetes.io/subset-labels: |\n"
				     "      topology.istio.io/cluster %s\n",
				pin_cluster, f->ids[pin_cluster]);
		if (canary_weight >= 0)
			fprintf(out, "    nginx.ingress.kubernetes.io/canary: \"true\"\n"
				     "    nginx.ingress.kubernetes.io/canary-weight: \"%d\"\n",
				canary_weight);
	}
	fprintf(out, "  name: %s\n  namespace: " NS "\nspec:\n  ingressClassName: mse\n  rules:\n"
		     "  - host: %s\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n"
		     "        backend:\n          service:\n            name: %s\n"
		     "            port:\n              number: 80\n",
		name, host, svc);
}

struct ing_arg {
	int i;
	int weight; /* the canary's weight */
};

static void w_ingress(FILE *out, const struct fleet *f, const void *arg)
{
	const struct ing_arg *a = arg;
	char name[64], host[64], svc[32];

	snprintf(name, sizeof(name), "ing-%06d", a->i);
	snprintf(host, sizeof(host), "h%d.bench.example", a->i);
	snprintf(svc, sizeof(svc), "svc-%06d", a->i);
	ingress_doc(out, f, name, host, svc, a->i == 0 ? 0 : -1, -1);
	if (a->i % 10)
		return;
	fprintf(out, "---\n");
	snprintf(name, sizeof(name), "ing-%06d-canary", a->i);
	ingress_doc(out, f, name, host, svc, canary_cluster(f, a->i), a->weight);
}

static void w_ingress_big(FILE *out, const struct fleet *f, const void *arg)
{
	ingress_doc(out, f, "ing-big", "big.bench.example", "big", -1, -1);
}

/* One Service and its EndpointSlice in one cluster; endpoint move_k (if
 * >= 0) at address index move_g instead of its own. */
struct svc_arg {
	const char *name;
	int i;  /* -1: the big Service */
	int c;
	int move_k;
	uint32_t move_g;
};

static void w_service(FILE *out, const struct fleet *f, const void *arg)
{
	const struct svc_arg *a = arg;
	int k, n = a->i < 0 ? f->big : f->e;
	char addr[32];

	fprintf(out, "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: " NS "\n"
		     "spec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: %d\n---\n"
		     "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
		     "  name: %s-s%d\n  namespace: " NS "\n  labels:\n"
		     "    kubernetes.io/service-name: %s\naddressType: IPv4\nports:\n"
		     "- name: http\n  port: %d\nendpoints:\n",
		a->name, EP_PORT, a->name, a->c, a->name, EP_PORT);
	for (k = 0; k < n; k++) {
		uint32_t g = k == a->move_k ? a->move_g
			   : a->i < 0 ? g_big(f, a->c, k) : g_regular(f, a->i, a->c, k);

		addr_str(addr_of(g), addr, sizeof(addr));
		fprintf(out, "- addresses: [\"%s\"]\n  conditions: {ready: true}\n", addr);
	}
}

static int write_service(const struct fleet *f, int i, int c, int move_k, uint32_t move_g,
			 double *t_visible)
{
	char dir[PATH_MAX], name[32], file[48];
	struct svc_arg a = { .name = name, .i = i, .c = c, .move_k = move_k, .move_g = move_g };

	snprintf(dir, sizeof(dir), "%s/clusters/%s", f->dir, f->ids[c]);
	if (i < 0)
		snprintf(name, sizeof(name), "big");
	else
		snprintf(name, sizeof(name), "svc-%06d", i);
	snprintf(file, sizeof(file), "%s.yaml", name);
	return write_file(dir, file, w_service, f, &a, t_visible);
}

static int write_ingress(const struct fleet *f, int i, int weight, double *t_visible)
{
	char dir[PATH_MAX], file[48];
	struct ing_arg a = { .i = i, .weight = weight };

	snprintf(dir, sizeof(dir), "%s/fleet", f->dir);
	snprintf(file, sizeof(file), "ing-%06d.yaml", i);
	return write_file(dir, file, w_ingress, f, &a, t_visible);
}

static int cmd_gen(const struct fleet *f)
{
	char dir[PATH_MAX];
	int i, c, err;
	double t0 = mono_ms();

	snprintf(dir, sizeof(dir), "%s/fleet", f->dir);
	err = mkdirs(dir);
	for (c = 0; !err && c < f->c; c++) {
		snprintf(dir, sizeof(dir), "%s/clusters/%s", f->dir, f->ids[c]);
		err = mkdirs(dir);
	}
	if (err) {
		fprintf(stderr, "gen: cannot create %s: %s\n", dir, strerror(-err));
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/fleet", f->dir);
	err = write_file(dir, "gw.yaml", w_gateway, f, NULL, NULL);
	for (i = 0; !err && i < f->n; i++)
		err = write_ingress(f, i, i == 0 ? 0 : 10, NULL);
	if (!err && f->big)
		err = write_file(dir, "ing-big.yaml", w_ingress_big, f, NULL, NULL);
	for (c = 0; !err && c < f->c; c++) {
		for (i = 0; !err && i < f->n; i++)
			err = write_service(f, i, c, -1, 0, NULL);
		if (!err && f->big)
			err = write_service(f, -1, c, -1, 0, NULL);
	}
	if (err) {
		fprintf(stderr, "gen: writing under %s: %s\n", f->dir, strerror(-err));
		return 1;
	}
	printf("gen: %d Ingresses (+%d canaries), %d clusters, %llu endpoints, %d files in %.0f ms\n",
	       f->n + (f->big ? 1 : 0), (f->n + 9) / 10, f->c,
	       (unsigned long long)f->n * f->c * f->e + (unsigned long long)f->c * f->big,
	       1 + f->n + (f->big ? 1 : 0) + f->c * (f->n + (f->big ? 1 : 0)), mono_ms() - t0);
	return 0;
}

/* ---------- serve: the endpoints ---------- */

struct conn {
	int fd;
	size_t len;
	char addr[20];
	char buf[4096];
};

static int cmd_serve(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct rlimit rl = { 1 << 20, 1 << 20 };
	struct epoll_event ev, evs[256];
	int one = 1, lfd, ep, n, i;

	signal(SIGPIPE, SIG_IGN);
	if (setrlimit(RLIMIT_NOFILE, &rl)) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 65535)) {
		perror("serve: listen");
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev)) {
		perror("serve: epoll");
		return 1;
	}
	printf("serve: ready on port %d\n", port);
	fflush(stdout);
	for (;;) {
		n = epoll_wait(ep, evs, 256, -1);
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r;

			if (!c) {
				for (;;) {
					struct sockaddr_in la;
					socklen_t ll = sizeof(la);
					int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

					if (fd < 0)
						break;
					c = malloc(sizeof(*c));
					if (!c) {
						close(fd);
						continue;
					}
					c->fd = fd;
					c->len = 0;
					c->addr[0] = '\0';
					if (!getsockname(fd, (struct sockaddr *)&la, &ll))
						inet_ntop(AF_INET, &la.sin_addr, c->addr, sizeof(c->addr));
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
						close(fd);
						free(c);
					}
				}
				continue;
			}
			r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
			if (r <= 0) {
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				close(c->fd);
				free(c);
				continue;
			}
			c->len += (size_t)r;
			/* Every complete head (GETs: no bodies) gets its answer. */
			for (;;) {
				char *end = memmem(c->buf, c->len, "\r\n\r\n", 4), resp[256];
				int rl2;

				if (!end)
					break;
				rl2 = snprintf(resp, sizeof(resp),
					       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
					       "Content-Length: %zu\r\n\r\n%s\n",
					       strlen(c->addr) + 1, c->addr);
				if (write(c->fd, resp, (size_t)rl2) != rl2) {
					/* a slow or gone client: drop it */
					c->len = sizeof(c->buf);
					break;
				}
				end += 4;
				c->len -= (size_t)(end - c->buf);
				memmove(c->buf, end, c->len);
			}
			if (c->len == sizeof(c->buf)) {
				close(c->fd);
				free(c);
			}
		}
	}
}

/* ---------- the pinned maps ---------- */

struct pinned {
	struct fg_dataplane *dp;
	const struct fg_maps *m;
	__u32 max_backends;
	int slab_fd;
	__u32 slab_id;
	struct fg_backend *bes; /* scan buffer */
};

static int pinned_open(struct pinned *p, const char *pin)
{
	int err;

	memset(p, 0, sizeof(*p));
	p->slab_fd = -1;
	err = fg_dp_open_pinned(&p->dp, pin);
	if (err)
		return err;
	p->m = fg_dp_maps(p->dp);
	p->max_backends = fg_dp_max_backends(p->dp);
	p->bes = calloc(p->max_backends, sizeof(*p->bes));
	return p->bes ? 0 : -ENOMEM;
}

static void pinned_close(struct pinned *p)
{
	if (p->slab_fd >= 0)
		close(p->slab_fd);
	free(p->bes);
	if (p->dp)
		fg_dp_close(p->dp, false);
}

/* The whole backends map into p->bes (batched); returns entries read. */
static long scan_backends(struct pinned *p)
{
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	const __u32 chunk = 65536;
	static __u32 *keys;
	__u32 done = 0, in, out, count;

	if (!keys)
		keys = malloc(chunk * sizeof(*keys));
	while (done < p->max_backends) {
		count = p->max_backends - done < chunk ? p->max_backends - done : chunk;
		in = done - 1;
		if (bpf_map_lookup_batch(p->m->backends, done ? &in : NULL, &out, keys,
					 p->bes + done, &count, &o) && errno != ENOENT) {
			/* No batch support: one by one. */
			__u32 k;

			for (k = done; k < done + count; k++)
				if (bpf_map_lookup_elem(p->m->backends, &k, &p->bes[k]))
					memset(&p->bes[k], 0, sizeof(p->bes[k]));
		}
		if (!count)
			break;
		done += count;
	}
	return done;
}

static void count_backends(struct pinned *p, long *active, long *up)
{
	long n = scan_backends(p), i;

	*active = *up = 0;
	for (i = 0; i < n; i++) {
		if (!(p->bes[i].flags & FG_BACKEND_F_ACTIVE))
			continue;
		(*active)++;
		if (p->bes[i].flags & FG_BACKEND_F_UP)
			(*up)++;
	}
}

static int cluster_idx(struct pinned *p, const char *id)
{
	struct fg_cluster cl;
	__u32 i;

	for (i = 0; i < FG_MAX_CLUSTERS; i++)
		if (!bpf_map_lookup_elem(p->m->clusters, &i, &cl) &&
		    (cl.flags & FG_CLUSTER_F_ACTIVE) && !strncmp(cl.name, id, sizeof(cl.name)))
			return (int)i;
	return -ENOENT;
}

/* The ring slab is the inner map of ring_slots[0]; it is replaced when it
 * grows, so its id is checked on every read. */
static int slab_fd(struct pinned *p)
{
	__u32 zero = 0, id;

	if (bpf_map_lookup_elem(p->m->ring_slots, &zero, &id))
		return -errno;
	if (p->slab_fd >= 0 && id == p->slab_id)
		return p->slab_fd;
	if (p->slab_fd >= 0)
		close(p->slab_fd);
	p->slab_fd = bpf_map_get_fd_by_id(id);
	p->slab_id = id;
	return p->slab_fd >= 0 ? p->slab_fd : -errno;
}

/* A ring or member list into buf (at most cap ids); returns its size or a
 * negative errno (-ENOENT: none). */
static long ring_read(struct pinned *p, __u32 sid, __u32 cidx, __u32 *buf, __u32 cap)
{
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	struct fg_ring_key key = { .service_id = sid, .cluster_idx = cidx };
	struct fg_ring r;
	__u32 done = 0, *keys;
	int fd = slab_fd(p);

	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(p->m->rings, &key, &r))
		return -errno;
	if (!r.size)
		return -ENOENT;
	if (r.size > cap)
		return -E2BIG;
	keys = malloc(r.size * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	while (done < r.size) {
		__u32 count = r.size - done, in = r.offset + done - 1, out;

		if (bpf_map_lookup_batch(fd, r.offset + done ? &in : NULL, &out, keys,
					 buf + done, &count, &o) || !count) {
			__u32 k;

			for (k = r.offset + done; k < r.offset + r.size; k++)
				if (bpf_map_lookup_elem(fd, &k, &buf[k - r.offset])) {
					free(keys);
					return -errno;
				}
			break;
		}
		done += count;
	}
	free(keys);
	return r.size;
}

/* ---------- wait: start -> Listening -> programmed ---------- */

static bool has_listening(json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_object(v)) {
		x = json_object_get(v, "status");
		if (json_is_string(x) && !strcmp(json_string_value(x), "Listening"))
			return true;
		json_object_foreach(v, k, x)
			if (has_listening(x))
				return true;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if (has_listening(x))
				return true;
	}
	return false;
}

static int cmd_wait(const char *sock, const char *gw, const char *pin, double t0, long expect,
		    double timeout_s, int pid)
{
	char proc[64];

	double listening = -1, programmed = -1, t;
	long active = 0, up = 0;
	struct pinned p = {};
	bool opened = false;
	int err;

	snprintf(proc, sizeof(proc), "/proc/%d", pid);
	while ((t = now_s(CLOCK_REALTIME) - t0) < timeout_s) {
		if (pid > 0 && access(proc, F_OK)) {
			printf("wait: the agent (pid %d) exited after %.1f s\n", pid, t);
			if (opened)
				pinned_close(&p);
			return 1;
		}
		if (listening < 0) {
			json_t *req = json_pack("{s:s, s:s}", "get", "mseingressconfig", "name", gw);
			json_t *ans = fg_admin_call(sock, req, 2000, &err);

			json_decref(req);
			if (ans && has_listening(ans)) {
				listening = now_s(CLOCK_REALTIME) - t0;
				printf("wait: listening %.3f s\n", listening);
				fflush(stdout);
			}
			json_decref(ans);
		}
		if (!opened && listening >= 0 && !access(pin, F_OK)) {
			/* Quietly: the pins may still be being made. */
			int saved = dup(2), null = open("/dev/null", O_WRONLY | O_CLOEXEC);

			if (null >= 0)
				dup2(null, 2);
			opened = !pinned_open(&p, pin);
			if (saved >= 0) {
				dup2(saved, 2);
				close(saved);
			}
			if (null >= 0)
				close(null);
			if (!opened)
				pinned_close(&p);
		}
		if (opened && listening >= 0) {
			count_backends(&p, &active, &up);
			if (active >= expect) {
				programmed = now_s(CLOCK_REALTIME) - t0;
				printf("wait: programmed %.3f s (%ld active, %ld up)\n", programmed,
				       active, up);
				break;
			}
		}
		sleep_ms(listening < 0 ? 20 : 100);
	}
	if (listening < 0)
		printf("wait: listening timeout %.0f s\n", timeout_s);
	if (programmed < 0)
		printf("wait: programmed timeout %.0f s (%ld of %ld active, %ld up)\n", timeout_s,
		       active, expect, up);
	if (opened)
		pinned_close(&p);
	return programmed < 0 ? 1 : 0;
}

static int cmd_backends(const char *pin)
{
	struct pinned p;
	long active, up;
	int err = pinned_open(&p, pin);

	if (err) {
		fprintf(stderr, "backends: cannot open %s: %s\n", pin, strerror(-err));
		return 1;
	}
	count_backends(&p, &active, &up);
	printf("backends: %ld active %ld up\n", active, up);
	pinned_close(&p);
	return 0;
}

/* ---------- epchange: one endpoint moved -> in the rings ---------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void summary(const char *what, double *v, int n, int timeouts)
{
	double s[64];
	int i;

	if (!n) {
		printf("%s: none observed (%d timeouts)\n", what, timeouts);
		return;
	}
	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	printf("%s: n %d p50 %.1f max %.1f min %.1f timeouts %d all", what, n, s[(n - 1) / 2],
	       s[n - 1], s[0], timeouts);
	for (i = 0; i < n; i++)
		printf(" %.1f", v[i]);
	printf("\n");
}

#define MAX_TARGETS 8
#define RING_CAP (1u << 22)

struct move {
	int i, c, k;        /* service (-1: big), cluster, endpoint */
	uint32_t old_a, new_a;
	int cidx;
	__u32 old_id;
	__u32 sids[MAX_TARGETS];
	int n_sids;
};

static bool addr_is(const struct fg_backend *be, uint32_t a)
{
	return (be->flags & FG_BACKEND_F_ACTIVE) && be->family == FG_AF_INET &&
	       be->addr.v4 == htonl(a) && be->port == htons(EP_PORT);
}

/* Is address a in the Maglev ring of (sid, cidx)? */
static int in_ring(struct pinned *p, __u32 sid, int cidx, uint32_t a, __u32 *buf)
{
	__u32 seen[64];
	int n_seen = 0, j;
	long n = ring_read(p, sid, (__u32)cidx, buf, RING_CAP), i;

	if (n < 0)
		return n == -ENOENT ? 0 : (int)n;
	for (i = 0; i < n; i++) {
		struct fg_backend be;
		bool dup = false;

		if (buf[i] >= p->max_backends)
			continue;
		for (j = 0; j < n_seen; j++)
			if (seen[j] == buf[i])
				dup = true;
		if (dup)
			continue;
		if (n_seen < 64)
			seen[n_seen++] = buf[i];
		if (!bpf_map_lookup_elem(p->m->backends, &buf[i], &be) && addr_is(&be, a))
			return 1;
		if (n_seen >= 64)
			break; /* more distinct ids than any member list here */
	}
	/* Large services: the member list, then the ring for that id. */
	if (n_seen >= 64) {
		__u32 *mem = malloc(RING_CAP / 16 * sizeof(*mem));
		long m = mem ? ring_read(p, sid, (__u32)cidx | FG_RING_MEMBERS, mem, RING_CAP / 16) : -ENOMEM;
		__u32 want = UINT32_MAX;

		for (i = 0; i < m; i++) {
			struct fg_backend be;

			if (!bpf_map_lookup_elem(p->m->backends, &mem[i], &be) && addr_is(&be, a)) {
				want = mem[i];
				break;
			}
		}
		free(mem);
		if (want == UINT32_MAX)
			return 0;
		for (i = 0; i < n; i++)
			if (buf[i] == want)
				return 1;
	}
	return 0;
}

/* For each move: its cluster's index, the backend id of old_a, and the
 * targets whose member list in that cluster holds it (the route's, a
 * canary's). Untimed set-up: a scan of the backends map and one pass over
 * the rings map. */
static int locate(struct pinned *p, const struct fleet *f, struct move *mv, int count,
		  __u32 *buf, const char *who)
{
	struct fg_ring_key key, next;
	void *prev = NULL;
	long nb, b;
	int j;

	for (j = 0; j < count; j++) {
		mv[j].cidx = cluster_idx(p, f->ids[mv[j].c]);
		mv[j].old_id = UINT32_MAX;
		mv[j].n_sids = 0;
		if (mv[j].cidx < 0) {
			fprintf(stderr, "%s: cluster %s not in the maps\n", who, f->ids[mv[j].c]);
			return -ENOENT;
		}
	}
	nb = scan_backends(p);
	for (b = 0; b < nb; b++)
		for (j = 0; j < count; j++)
			if (addr_is(&p->bes[b], mv[j].old_a))
				mv[j].old_id = (__u32)b;
	for (j = 0; j < count; j++)
		if (mv[j].old_id == UINT32_MAX) {
			char a[32];

			addr_str(mv[j].old_a, a, sizeof(a));
			fprintf(stderr, "%s: endpoint %s:%d not in the backends map\n", who, a, EP_PORT);
			return -ENOENT;
		}
	while (!bpf_map_get_next_key(p->m->rings, prev, &next)) {
		key = next;
		prev = &key;
		if (!(key.cluster_idx & FG_RING_MEMBERS) || key.cluster_idx == FG_RING_CLUSTERS)
			continue;
		for (j = 0; j < count; j++) {
			long n, i;

			if ((key.cluster_idx & ~FG_RING_MEMBERS) != (__u32)mv[j].cidx ||
			    mv[j].n_sids >= MAX_TARGETS)
				continue;
			n = ring_read(p, key.service_id, key.cluster_idx, buf, RING_CAP);
			for (i = 0; i < n; i++)
				if (buf[i] == mv[j].old_id) {
					mv[j].sids[mv[j].n_sids++] = key.service_id;
					break;
				}
		}
	}
	for (j = 0; j < count; j++)
		if (!mv[j].n_sids) {
			fprintf(stderr, "%s: no member list holds backend %u\n", who, mv[j].old_id);
			return -ENOENT;
		}
	return 0;
}

/* 1 when address a is in the Maglev ring of every target of move x. */
static int move_seen(struct pinned *p, const struct move *x, uint32_t a, __u32 *buf)
{
	int s, ok = 0;

	for (s = 0; s < x->n_sids; s++) {
		int r = in_ring(p, x->sids[s], x->cidx, a, buf);

		if (r < 0)
			return r;
		ok += r;
	}
	return ok == x->n_sids;
}

static int cmd_epchange(const struct fleet *f, const char *pin, int count, double timeout_ms,
			bool big)
{
	struct move mv[64];
	double lat[64];
	int n_lat = 0, timeouts = 0, j, err;
	struct pinned p;
	__u32 *buf = malloc(RING_CAP * sizeof(*buf));

	if (count > 64)
		count = 64;
	if (!buf)
		return 1;
	err = pinned_open(&p, pin);
	if (err) {
		fprintf(stderr, "epchange: cannot open %s: %s\n", pin, strerror(-err));
		free(buf);
		return 1;
	}
	for (j = 0; j < count; j++) {
		struct move *x = &mv[j];

		x->c = j % f->c;
		if (big) {
			x->i = -1;
			x->k = j;
			x->old_a = addr_of(g_big(f, x->c, x->k));
		} else {
			x->i = f->n > 1 ? 1 + (int)((long)j * (f->n - 1) / count) : 0;
			x->k = 0;
			x->old_a = addr_of(g_regular(f, x->i, x->c, x->k));
		}
		x->new_a = addr_of(g_spare(f, (big ? 1000 : 0) + j));
	}
	if (locate(&p, f, mv, count, buf, "epchange"))
		goto fail;

	for (j = 0; j < count; j++) {
		struct move *x = &mv[j];
		double t0, t;
		bool done = false;

		err = write_service(f, x->i, x->c, x->k, x->new_a - ADDR_BASE - 1, &t0);
		if (err) {
			fprintf(stderr, "epchange: write: %s\n", strerror(-err));
			goto fail;
		}
		while ((t = mono_ms() - t0) < timeout_ms) {
			int r = move_seen(&p, x, x->new_a, buf);

			if (r < 0) {
				fprintf(stderr, "epchange: reading the maps: %s\n", strerror(-r));
				goto fail;
			}
			if (r) {
				t = mono_ms() - t0; /* when the check that saw it returned */
				done = true;
				break;
			}
			sleep_ms(1);
		}
		if (done) {
			lat[n_lat++] = t;
			printf("epchange: move %d (service %d, cluster %d, %d target(s)): %.1f ms\n",
			       j, x->i, x->c, x->n_sids, t);
		} else {
			timeouts++;
			printf("epchange: move %d: not in the rings after %.0f ms\n", j, timeout_ms);
		}
		fflush(stdout);
		sleep_ms(300);
	}
	summary("epchange", lat, n_lat, timeouts);
	pinned_close(&p);
	free(buf);
	return 0;
fail:
	pinned_close(&p);
	free(buf);
	return 1;
}

/* ---------- weight: canary weight edit -> HTTP lands there ---------- */

struct http_client {
	struct sockaddr_in sa;
	int fd;
	char buf[8192];
	size_t len;
};

static int http_connect(struct http_client *h)
{
	int one = 1;
	struct timeval tv = { .tv_sec = 2 };

	if (h->fd >= 0)
		return 0;
	h->len = 0;
	h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0)
		return -errno;
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(h->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(h->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(h->fd, (struct sockaddr *)&h->sa, sizeof(h->sa))) {
		int err = -errno;

		close(h->fd);
		h->fd = -1;
		return err;
	}
	return 0;
}

static void http_close(struct http_client *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

/* GET / with Host: host; the status and the body's first line (the
 * endpoint's address). 0 or -errno. */
static int http_get(struct http_client *h, const char *host, int *status, char *body, size_t blen)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: fg-bench-fleet\r\n\r\n",
			 host), err;
	char *end, *cl;
	size_t need;

	err = http_connect(h);
	if (err)
		return err;
	if (write(h->fd, req, (size_t)n) != n)
		goto broken;
	h->len = 0;
	for (;;) {
		ssize_t r;

		h->buf[h->len] = '\0';
		end = strstr(h->buf, "\r\n\r\n");
		if (end) {
			cl = strcasestr(h->buf, "\r\ncontent-length:");
			need = (size_t)(end + 4 - h->buf) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
			if (h->len >= need)
				break;
		}
		if (h->len >= sizeof(h->buf) - 1)
			goto broken;
		r = read(h->fd, h->buf + h->len, sizeof(h->buf) - 1 - h->len);
		if (r <= 0)
			goto broken;
		h->len += (size_t)r;
	}
	*status = atoi(h->buf + 9);
	snprintf(body, blen, "%s", end + 4);
	body[strcspn(body, "\r\n")] = '\0';
	if (strcasestr(h->buf, "\r\nconnection: close"))
		http_close(h);
	return 0;
broken:
	http_close(h);
	return -EPIPE;
}

/* The cluster of an endpoint address of Service 0; -1 otherwise. */
static int cluster_of_svc0(const struct fleet *f, const char *body)
{
	struct in_addr ia;
	uint32_t g;

	if (inet_pton(AF_INET, body, &ia) != 1)
		return -1;
	g = ntohl(ia.s_addr) - ADDR_BASE - 1;
	if (g >= (uint32_t)(f->c * f->e))
		return -1;
	return (int)(g / f->e);
}

static int cmd_weight(const struct fleet *f, const char *target, int count, double timeout_ms)
{
	struct http_client h = { .fd = -1 };
	const char *host = "h0.bench.example";
	double lat[64], t0, t;
	int n_lat = 0, timeouts = 0, j, st, cl, err, weight = 0;
	char body[128], addr[64], *colon;

	snprintf(addr, sizeof(addr), "%s", target);
	colon = strrchr(addr, ':');
	if (!colon)
		return 2;
	*colon = '\0';
	h.sa.sin_family = AF_INET;
	h.sa.sin_port = htons((uint16_t)atoi(colon + 1));
	inet_pton(AF_INET, addr, &h.sa.sin_addr);
	if (count > 64)
		count = 64;
	/* Weight 0: the route answers from cluster 0 (ten in a row) before
	 * the first edit. */
	err = write_ingress(f, 0, 0, &t0);
	if (err) {
		fprintf(stderr, "weight: write: %s\n", strerror(-err));
		return 1;
	}
	for (j = 0;;) {
		err = http_get(&h, host, &st, body, sizeof(body));
		j = !err && st == 200 && cluster_of_svc0(f, body) == 0 ? j + 1 : 0;
		if (j == 10)
			break;
		if (mono_ms() - t0 > (timeout_ms > 30000 ? timeout_ms : 30000)) {
			printf("weight: the probe route does not answer from cluster 0 (%s, status %d, %s)\n",
			       err ? strerror(-err) : "ok", err ? 0 : st, err ? "" : body);
			return 1;
		}
		sleep_ms(j ? 1 : 10);
	}
	for (j = 0; j < count; j++) {
		/* The slowest single request of the edit, and how many: when
		 * it is most of the edit's time, the delay is on the request's
		 * path (proxy, upstream connect), not in the control plane. */
		double slow = 0, r0;
		int n_req = 0;
		bool done = false;
		int want;

		weight = weight ? 0 : 100;
		want = weight ? 1 : 0;
		err = write_ingress(f, 0, weight, &t0);
		if (err) {
			fprintf(stderr, "weight: write: %s\n", strerror(-err));
			return 1;
		}
		while ((t = mono_ms() - t0) < timeout_ms) {
			r0 = mono_ms();
			err = http_get(&h, host, &st, body, sizeof(body));
			if (mono_ms() - r0 > slow)
				slow = mono_ms() - r0;
			n_req++;
			cl = !err && st == 200 ? cluster_of_svc0(f, body) : -1;
			if (cl == want) {
				/* The answer came after the plan changed: an
				 * upper bound, within one request. */
				t = mono_ms() - t0;
				done = true;
				break;
			}
			sleep_ms(2);
		}
		if (done) {
			lat[n_lat++] = t;
			printf("weight: edit %d (canary weight -> %d): %.1f ms (%d requests, the slowest %.1f ms)\n",
			       j, weight, t, n_req, slow);
		} else {
			timeouts++;
			printf("weight: edit %d (canary weight -> %d): not seen after %.0f ms\n", j,
			       weight, timeout_ms);
		}
		fflush(stdout);
		sleep_ms(300);
	}
	http_close(&h);
	summary("weight", lat, n_lat, timeouts);
	return 0;
}

/* ---------- churn: RATE endpoint moves per second ---------- */

/* RATE writes per second for SECS: Service i in cluster c, endpoint 1,
 * moved to a spare address and back (16 Services in turn), so every write
 * is a real change. With PIN, then: how long after the last write the
 * data plane holds the last state of all 16 (nothing lost, nothing
 * stale). */
static int cmd_churn(const struct fleet *f, double rate, double secs, const char *pin)
{
	enum { SET = 16 };
	bool moved[SET] = {};
	struct move mv[SET];
	double t0, period = 1e3 / rate, next, late = 0, t_last = 0, t;
	__u32 *buf = NULL;
	struct pinned p = {};
	bool watch = false;
	long done = 0;
	int err, s;

	for (s = 0; s < SET; s++) {
		struct move *x = &mv[s];

		x->i = f->n > SET + 1 ? 1 + s * ((f->n - 1) / SET) : (f->n > 1 ? 1 + s % (f->n - 1) : 0);
		x->c = s % f->c;
		x->k = 1;
		/* Found by endpoint 2 (or 0), which nothing here moves. */
		x->old_a = addr_of(g_regular(f, x->i, x->c, f->e > 2 ? 2 : 0));
	}
	if (pin) {
		buf = malloc(RING_CAP * sizeof(*buf));
		watch = buf && !pinned_open(&p, pin) && !locate(&p, f, mv, SET, buf, "churn");
		if (!watch)
			printf("churn: cannot watch the data plane; convergence not measured\n");
	}
	printf("churn: ready\n");
	fflush(stdout);
	t0 = next = mono_ms();
	while (mono_ms() - t0 < secs * 1e3) {
		struct move *x = &mv[done % SET];

		s = (int)(done % SET);
		moved[s] = !moved[s];
		err = write_service(f, x->i, x->c, x->k,
				    moved[s] ? g_spare(f, 2000 + s) : g_regular(f, x->i, x->c, x->k),
				    &t_last);
		if (err) {
			fprintf(stderr, "churn: write: %s\n", strerror(-err));
			goto out;
		}
		done++;
		next += period;
		if (next > mono_ms())
			sleep_ms(next - mono_ms());
		else
			late = mono_ms() - next;
	}
	printf("churn: %ld changes in %.1f s (%.1f/s), behind by %.1f ms at the end\n", done,
	       (mono_ms() - t0) / 1e3, done / ((mono_ms() - t0) / 1e3), late);
	if (watch) {
		int seen = 0;

		while ((t = mono_ms() - t_last) < 60000) {
			seen = 0;
			for (s = 0; s < SET; s++) {
				uint32_t want = addr_of(moved[s] ? g_spare(f, 2000 + s)
							 : g_regular(f, mv[s].i, mv[s].c, 1));
				int r = move_seen(&p, &mv[s], want, buf);

				if (r < 0)
					break;
				seen += r;
			}
			if (seen == SET)
				break;
			sleep_ms(5);
		}
		if (seen == SET)
			printf("churn: converged %.1f ms after the last change (the last state of all %d Services in the rings)\n",
			       mono_ms() - t_last, SET);
		else
			printf("churn: not converged %.0f ms after the last change (%d of %d Services in their last state)\n",
			       t, seen, SET);
	}
out:
	if (pin)
		pinned_close(&p);
	free(buf);
	return 0;
}

/* ---------- compute: in-process ---------- */

static json_t *j_ingress(const struct fleet *f, int i, bool canary)
{
	char name[64], host[64], svc[32];
	json_t *ing;

	snprintf(name, sizeof(name), canary ? "ing-%06d-canary" : "ing-%06d", i);
	snprintf(host, sizeof(host), "h%d.bench.example", i);
	snprintf(svc, sizeof(svc), "svc-%06d", i);
	ing = json_pack("{s:s, s:s, s:{s:s, s:s, s:{}}, s:{s:s, s:[{s:s, s:{s:[{s:s, s:s, s:{s:{s:s, s:{s:i}}}}]}}]}}",
			"apiVersion", "networking.k8s.io/v1", "kind", "Ingress",
			"metadata", "name", name, "namespace", NS, "annotations",
			"spec", "ingressClassName", "mse", "rules", "host", host, "http", "paths",
			"path", "/", "pathType", "Prefix", "backend", "service", "name", svc,
			"port", "number", 80);
	if (canary) {
		json_t *an = json_object_get(json_object_get(ing, "metadata"), "annotations");
		char labels[128];
		int c = canary_cluster(f, i);

		snprintf(labels, sizeof(labels), "topology.istio.io/cluster %s\n", f->ids[c]);
		json_object_set_new(an, "mse.ingress.kubernetes.io/service-subset",
				    json_sprintf("subset-%d", c));
		json_object_set_new(an, "mse.ingress.kubernetes.io/subset-labels", json_string(labels));
		json_object_set_new(an, "nginx.ingress.kubernetes.io/canary", json_string("true"));
		json_object_set_new(an, "nginx.ingress.kubernetes.io/canary-weight", json_string("10"));
	}
	return ing;
}

static json_t *j_service(int i)
{
	char svc[32];

	snprintf(svc, sizeof(svc), "svc-%06d", i);
	return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:[{s:s, s:i, s:i}]}}",
			 "apiVersion", "v1", "kind", "Service", "metadata", "name", svc,
			 "namespace", NS, "spec", "ports", "name", "http", "port", 80,
			 "targetPort", EP_PORT);
}

static json_t *j_slice(const struct fleet *f, int i, int c)
{
	json_t *eps = json_array();
	char name[48], svc[32], addr[32];
	int k;

	for (k = 0; k < f->e; k++) {
		addr_str(addr_of(g_regular(f, i, c, k)), addr, sizeof(addr));
		json_array_append_new(eps, json_pack("{s:[s], s:{s:b}}", "addresses", addr,
						     "conditions", "ready", 1));
	}
	snprintf(name, sizeof(name), "svc-%06d-s%d", i, c);
	snprintf(svc, sizeof(svc), "svc-%06d", i);
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:[{s:s, s:i}], s:o}",
			 "apiVersion", "discovery.k8s.io/v1", "kind", "EndpointSlice",
			 "metadata", "name", name, "namespace", NS, "labels",
			 "kubernetes.io/service-name", svc, "addressType", "IPv4",
			 "ports", "name", "http", "port", EP_PORT, "endpoints", eps);
}

static void j_fleet(const struct fleet *f, struct fg_snapshot *snap)
{
	char remote[MAX_C * 40] = "";
	json_t *gw;
	int i, c;

	for (c = 0; c < f->c; c++)
		snprintf(remote + strlen(remote), sizeof(remote) - strlen(remote), "%s%s",
			 c ? "," : "", f->ids[c]);
	gw = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:{s:{s:s}}}}",
		       "apiVersion", "mse.alibabacloud.com/v1alpha1", "kind", "MseIngressConfig",
		       "metadata", "name", "bench-gw", "annotations",
		       "mse.alibabacloud.com/remote-clusters", remote,
		       "spec", "ingress", "local", "ingressClass", "mse");
	snap->fleet = json_array();
	snap->clusters = json_object();
	snap->cluster_errors = NULL;
	json_array_append_new(snap->fleet, gw);
	for (i = 0; i < f->n; i++) {
		json_array_append_new(snap->fleet, j_ingress(f, i, false));
		if (i % 10 == 0)
			json_array_append_new(snap->fleet, j_ingress(f, i, true));
	}
	for (c = 0; c < f->c; c++) {
		json_t *objs = json_array();

		for (i = 0; i < f->n; i++) {
			json_array_append_new(objs, j_service(i));
			json_array_append_new(objs, j_slice(f, i, c));
		}
		json_object_set_new(snap->clusters, f->ids[c], objs);
	}
}

static long rss_kib(void)
{
	char line[256];
	long v = -1;
	FILE *s = fopen("/proc/self/status", "r");

	while (s && fgets(line, sizeof(line), s))
		if (!strncmp(line, "VmRSS:", 6))
			v = atol(line + 6);
	if (s)
		fclose(s);
	return v;
}

static int compute_one(int n, int c, int e, double *compute_ms)
{
	struct fg_plan_opts popts = { .dataplane_ready = true, .listening = true,
				      .address = "10.78.0.1" };
	struct fg_applier_opts aopts = { .listen_port = 80 };
	struct fg_dp_opts dopts = {};
	struct fg_snapshot snap = {};
	struct fg_dataplane *dp = NULL;
	struct fg_applier *a = NULL;
	struct fg_plan *plan = NULL, *p2 = NULL;
	struct fleet f;
	double t, t_compute = 1e18, t_apply, t_compute2, t_apply2, t_gen;
	long rss1;
	long endpoints = (long)n * c * e;
	json_t *ep0;
	char addr[32];
	int err, rep;

	err = fleet_init(&f, "", n, c, e, 0);
	if (err)
		return err;
	t = mono_ms();
	j_fleet(&f, &snap);
	t_gen = mono_ms() - t;
	/* The plan: best of up to three (one when it takes over 2 s). */
	for (rep = 0; rep < 3; rep++) {
		struct fg_plan *pl = NULL;

		t = mono_ms();
		err = fg_plan_compute(&snap, &popts, &pl);
		t = mono_ms() - t;
		if (err) {
			fprintf(stderr, "compute: N=%d: fg_plan_compute: %s\n", n, strerror(-err));
			goto out;
		}
		if (t < t_compute)
			t_compute = t;
		if (plan)
			fg_plan_free(pl);
		else
			plan = pl;
		if (t > 2000)
			break;
	}
	rss1 = rss_kib();
	*compute_ms = t_compute;
	printf("bench: cp_compute_n%d %.1f ms\n", n, t_compute);
	printf("info: compute N=%d C=%d E=%d: %zu routes, %zu targets, %ld endpoints; objects built in %.0f ms; RSS %ld MiB with objects and plan\n",
	       n, c, e, plan->n_routes, plan->n_targets, endpoints, t_gen, rss1 / 1024);

	fg_addr_parse("10.78.0.1", &aopts.listen_addr, &aopts.listen_family);
	dopts.max_backends = (__u32)(endpoints + 4096);
	if (dopts.max_backends < 1024)
		dopts.max_backends = 1024;
	dopts.max_services = (__u32)(plan->n_targets + 4096);
	dopts.max_rings = (__u32)(plan->n_targets * (2 * c + 1) + 4096);
	err = fg_dp_load(&dp, &dopts);
	if (err) {
		fprintf(stderr, "compute: N=%d: fg_dp_load: %s\n", n, strerror(-err));
		goto out;
	}
	err = fg_applier_new(&a, dp, &aopts);
	if (err)
		goto out;
	t = mono_ms();
	err = fg_applier_apply(a, plan);
	t_apply = mono_ms() - t;
	if (err) {
		fprintf(stderr, "compute: N=%d: fg_applier_apply: %s\n", n, strerror(-err));
		goto out;
	}
	printf("bench: cp_apply_full_n%d %.1f ms\n", n, t_apply);

	/* One endpoint moved, by the full path: a whole recomputation, then
	 * an apply that writes what differs (what any change costs an agent
	 * that recomputes everything). */
	ep0 = json_array_get(json_object_get(json_array_get(
		json_object_get(snap.clusters, f.ids[0]), 3), "endpoints"), 0);
	addr_str(addr_of(g_spare(&f, 0)), addr, sizeof(addr));
	json_array_set_new(json_object_get(ep0, "addresses"), 0, json_string(addr));
	t = mono_ms();
	err = fg_plan_compute(&snap, &popts, &p2);
	t_compute2 = mono_ms() - t;
	if (err)
		goto out;
	t = mono_ms();
	err = fg_applier_apply(a, p2);
	t_apply2 = mono_ms() - t;
	if (err)
		goto out;
	printf("bench: cp_full_recompute_apply_n%d %.1f ms\n", n, t_compute2 + t_apply2);
	printf("info: one endpoint moved at N=%d, the full path: fg_plan_compute %.1f ms + fg_applier_apply %.1f ms (%llu targets written, %llu backends written)\n",
	       n, t_compute2, t_apply2, (unsigned long long)fg_applier_stats(a)->targets_written,
	       (unsigned long long)fg_applier_stats(a)->backends_written);
out:
	fg_plan_free(plan);
	fg_plan_free(p2);
	fg_applier_free(a);
	if (dp)
		fg_dp_close(dp, true);
	json_decref(snap.fleet);
	json_decref(snap.clusters);
	fflush(stdout);
	return err;
}

static int cmd_compute(int c, int e, int argc, char **argv)
{
	double prev = 0, cur = 0;
	int prev_n = 0, i, n;

	for (i = 0; i < argc; i++) {
		n = atoi(argv[i]);
		if (compute_one(n, c, e, &cur)) {
			printf("info: compute N=%d failed; stopping the growth curve there\n", n);
			return 1;
		}
		if (prev > 0)
			printf("bench: cp_compute_n%d ratio %.2f vs n%d (x%.0f Ingresses)\n", n,
			       cur / prev, prev_n, (double)n / prev_n);
		prev = cur;
		prev_n = n;
	}
	return 0;
}

/* ---------- admin: one request to the admin socket ---------- */

static int cmd_admin(const char *sock, const char *get)
{
	json_t *req = json_pack("{s:s}", "get", get), *ans;
	char *txt;
	int err = 0;

	ans = fg_admin_call(sock, req, 10000, &err);
	json_decref(req);
	if (!ans) {
		fprintf(stderr, "admin: %s: %s\n", sock, strerror(-err));
		return 1;
	}
	txt = json_dumps(ans, JSON_COMPACT);
	printf("%s\n", txt ? txt : "");
	free(txt);
	json_decref(ans);
	return 0;
}

/* ---------- main ---------- */

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s gen DIR N C E BIG\n"
		"       %s serve PORT\n"
		"       %s wait SOCK GW PIN T0 EXPECT TIMEOUT_S [AGENT_PID]\n"
		"       %s backends PIN\n"
		"       %s epchange DIR PIN N C E BIG COUNT TIMEOUT_MS [big]\n"
		"       %s weight DIR N C E BIG ADDR:PORT COUNT TIMEOUT_MS\n"
		"       %s churn DIR N C E BIG RATE SECS [PIN]\n"
		"       %s compute C E N...\n"
		"       %s admin SOCK KIND\n",
		prog, prog, prog, prog, prog, prog, prog, prog, prog);
}

int main(int argc, char **argv)
{
	struct fleet f;
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	fg_log_setup_libbpf();
	if (!strcmp(cmd, "gen") && argc == 7) {
		if (fleet_init(&f, argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6])))
			return 2;
		return cmd_gen(&f);
	}
	if (!strcmp(cmd, "serve") && argc == 3)
		return cmd_serve(atoi(argv[2]));
	if (!strcmp(cmd, "wait") && (argc == 8 || argc == 9))
		return cmd_wait(argv[2], argv[3], argv[4], atof(argv[5]), atol(argv[6]),
				atof(argv[7]), argc == 9 ? atoi(argv[8]) : 0);
	if (!strcmp(cmd, "backends") && argc == 3)
		return cmd_backends(argv[2]);
	if (!strcmp(cmd, "epchange") && (argc == 10 || argc == 11)) {
		if (fleet_init(&f, argv[2], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7])))
			return 2;
		return cmd_epchange(&f, argv[3], atoi(argv[8]), atof(argv[9]),
				    argc == 11 && !strcmp(argv[10], "big"));
	}
	if (!strcmp(cmd, "weight") && argc == 10) {
		if (fleet_init(&f, argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6])))
			return 2;
		return cmd_weight(&f, argv[7], atoi(argv[8]), atof(argv[9]));
	}
	if (!strcmp(cmd, "churn") && (argc == 9 || argc == 10)) {
		if (fleet_init(&f, argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6])))
			return 2;
		return cmd_churn(&f, atof(argv[7]), atof(argv[8]), argc == 10 ? argv[9] : NULL);
	}
	if (!strcmp(cmd, "admin") && argc == 4)
		return cmd_admin(argv[2], argv[3]);
	if (!strcmp(cmd, "compute") && argc >= 5)
		return cmd_compute(atoi(argv[2]), atoi(argv[3]), argc - 4, argv + 4);
	usage(argv[0]);
	return 2;
}
