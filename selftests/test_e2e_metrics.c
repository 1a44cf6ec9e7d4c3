// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * End to end, metrics and access log: a real fleetgate-agent serving
 * HTTP for two clusters, its /metrics scraped with curl and checked with
 * `promtool check metrics`, and scraped by a real Prometheus server
 * (Debian's prometheus, run in the gateway's namespace with a temporary
 * config and TSDB) whose HTTP API (/api/v1/query) is asked for the
 * gateway's series, as an operator's dashboard would.
 *
 *        cli                   gw (agent, Prometheus)        c1 / c2
 *   T"cg" 10.O.0.2  <->  T"gc" 10.O.0.1 (--listen 10.O.0.1:80,
 *                                --metrics-listen default 127.0.0.1:10254)
 *                        T"g1" 10.O.1.1  <->  T"1g" 10.O.1.11
 *                        T"g2" 10.O.2.1  <->  T"2g" 10.O.2.11
 *
 * T is test__prefix() + "m", O a second octet 10 + pid % 40. The fleet:
 * Ingress web-demo/web-demo (example.com /service1 -> service1:80, both
 * clusters), its canary web-demo/web-demo-gray (header stage: gray, the
 * subset of cluster 2, failing over to the main route's clusters) and a
 * canary with no main route (rejected). Each cluster has one pod
 * (selftests/e2e/proxy_upstream.py). The pods have no default route, so
 * nothing they do leaves their namespace.
 *
 * The subtests run in order (each builds on the traffic of the previous
 * ones); the whole test takes about 20 s.
 */
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "e2e_lib.h"
#include "test_progs.h"

#define CLUSTER1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define CLUSTER2 "c15d48ca9d1fd43f9bbb89c56a474843c"
#define HTTP_PORT 80
#define POD_PORT 8080
#define METRICS "127.0.0.1:10254" /* the agent's default --metrics-listen */
#define PROM_PORT 19090
#define GRAY "web-demo/web-demo-gray"
#define N_MAIN 20
#define N_GRAY 5
#define N_404 3

struct met_e2e {
	char t[16];
	int o;
	char ns_cli[32], ns_gw[32], ns_c[2][32];
	bool ns_made[4];
	char pin[PATH_MAX], sock[PATH_MAX];
	char agent_bin[PATH_MAX], scripts[PATH_MAX];
	char cfg[PATH_MAX], agent_log[PATH_MAX], access_log[PATH_MAX];
	pid_t agent, pod[2], prom;
	bool have_prom, have_promtool;
	int gray_failovers_seen;
	char gray_service[128]; /* its name in the services map */
};

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static char *slurp(const char *path)
{
	size_t len = 0, cap = 65536, got;
	char *buf = malloc(cap), *tmp;
	FILE *f = fopen(path, "r");

	if (!buf || !f) {
		free(buf);
		if (f)
			fclose(f);
		return NULL;
	}
	while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += got;
		if (len + 1 == cap) {
			tmp = realloc(buf, cap * 2);
			if (!tmp)
				break;
			buf = tmp;
			cap *= 2;
		}
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
}

static void show_file(const char *title, const char *path)
{
	char *all = slurp(path);

	printf("---- %s (%s) ----\n%s", title, path, all ? all : "(cannot read)\n");
	printf("---- end of %s ----\n", title);
	free(all);
}

static int write_file(struct met_e2e *e, const char *rel, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int write_file(struct met_e2e *e, const char *rel, const char *fmt, ...)
{
	char path[PATH_MAX + 128], tmp[PATH_MAX + 160];
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", e->cfg, rel);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	if (fclose(f))
		return -errno;
	return rename(tmp, path) ? -errno : 0;
}

/* The agent's /metrics, scraped from inside the gateway's namespace. */
static char *scrape(struct met_e2e *e)
{
	int rc;
	char *out = e2e_capture(&rc, true, "ip netns exec %s curl -sS --max-time 5 http://%s/metrics",
				e->ns_gw, METRICS);

	if (out && rc) {
		free(out);
		return NULL;
	}
	return out;
}

/* The sum of the samples of metric `name` whose labels contain every
 * NULL-terminated `want` substring (e.g. "cluster=\"c1\""); NAN when none. */
static double metric_sum(const char *text, const char *name, ...)
{
	const char *want[8];
	double sum = NAN;
	const char *p, *arg;
	va_list ap;
	int n = 0, i;

	va_start(ap, name);
	while (n < 8 && (arg = va_arg(ap, const char *)))
		want[n++] = arg;
	va_end(ap);
	for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		size_t nl = strlen(name);
		const char *eol = strchr(p, '\n'), *sp;
		char line[1024];
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (strncmp(p, name, nl) || (p[nl] != '{' && p[nl] != ' ') || len >= sizeof(line))
			continue;
		memcpy(line, p, len);
		line[len] = '\0';
		for (i = 0; i < n; i++)
			if (!strstr(line, want[i]))
				break;
		if (i < n)
			continue;
		sp = strrchr(line, ' ');
		if (!sp)
			continue;
		sum = (isnan(sum) ? 0 : sum) + strtod(sp + 1, NULL);
	}
	return sum;
}

/* n requests from the client: curl -H "host: example.com" GW/PATH; the
 * number answered with status want. */
static int requests(struct met_e2e *e, const char *path, const char *hdr, int n, int want)
{
	char *out, *p;
	int rc, ok = 0;

	out = e2e_capture(&rc, true,
			  "ip netns exec %s sh -c 'for i in $(seq %d); do curl -s -o /dev/null "
			  "--max-time 5 -w \"%%{http_code}\\n\" -H \"host: example.com\" %s%s%s "
			  "http://10.%d.0.1:%d%s; done'",
			  e->ns_cli, n, hdr ? "-H \"" : "", hdr ? hdr : "", hdr ? "\"" : "", e->o,
			  HTTP_PORT, path);
	for (p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
		ok += atoi(p) == want;
	printf("e2e: %d x %s%s%s: %d answered %d\n", n, path, hdr ? " with " : "", hdr ? hdr : "",
	       ok, want);
	free(out);
	return ok;
}

/* Lines of the access log holding every NULL-terminated needle. */
static int log_lines(const char *path, ...)
{
	const char *want[8], *arg;
	char *all = slurp(path), *p, *eol;
	va_list ap;
	int n = 0, i, count = 0;

	va_start(ap, path);
	while (n < 8 && (arg = va_arg(ap, const char *)))
		want[n++] = arg;
	va_end(ap);
	for (p = all; p && *p; p = eol + 1) {
		eol = strchr(p, '\n');
		if (!eol)
			break;
		*eol = '\0';
		for (i = 0; i < n && strstr(p, want[i]); i++)
			;
		count += i == n;
	}
	free(all);
	return count;
}

/* ------------------------------------------------------------------ */
/* topology, pods, agent, Prometheus                                   */
/* ------------------------------------------------------------------ */

static int find_paths(struct met_e2e *e)
{
	char exe[1024], *slash;
	ssize_t n;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -errno;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	snprintf(e->agent_bin, sizeof(e->agent_bin), "%s/fleetgate-agent", exe);
	snprintf(e->scripts, sizeof(e->scripts), "%s/../selftests/e2e/proxy_upstream.py", exe);
	if (access(e->agent_bin, X_OK) || access(e->scripts, R_OK)) {
		snprintf(e->agent_bin, sizeof(e->agent_bin), "build/fleetgate-agent");
		snprintf(e->scripts, sizeof(e->scripts), "selftests/e2e/proxy_upstream.py");
	}
	return access(e->agent_bin, X_OK) || access(e->scripts, R_OK) ? -ENOENT : 0;
}

static int topo_setup(struct met_e2e *e)
{
	char *ns[4] = { e->ns_cli, e->ns_gw, e->ns_c[0], e->ns_c[1] };
	const char *t = e->t;
	int i, o = e->o;

	for (i = 0; i < 4; i++) {
		if (fg_sh("ip netns add %s", ns[i]))
			return -EIO;
		e->ns_made[i] = true;
		if (fg_sh("ip -n %s link set lo up", ns[i]))
			return -EIO;
	}
	if (fg_sh("ip link add %sgc netns %s type veth peer name %scg netns %s", t, e->ns_gw, t,
		  e->ns_cli) ||
	    fg_sh("ip link add %sg1 netns %s type veth peer name %s1g netns %s", t, e->ns_gw, t,
		  e->ns_c[0]) ||
	    fg_sh("ip link add %sg2 netns %s type veth peer name %s2g netns %s", t, e->ns_gw, t,
		  e->ns_c[1]))
		return -EIO;
	if (fg_sh("ip -n %s addr add 10.%d.0.1/24 dev %sgc && ip -n %s link set %sgc up && "
		  "ip -n %s addr add 10.%d.1.1/24 dev %sg1 && ip -n %s link set %sg1 up && "
		  "ip -n %s addr add 10.%d.2.1/24 dev %sg2 && ip -n %s link set %sg2 up",
		  e->ns_gw, o, t, e->ns_gw, t, e->ns_gw, o, t, e->ns_gw, t, e->ns_gw, o, t,
		  e->ns_gw, t))
		return -EIO;
	if (fg_sh("ip -n %s addr add 10.%d.0.2/24 dev %scg && ip -n %s link set %scg up",
		  e->ns_cli, o, t, e->ns_cli, t))
		return -EIO;
	for (i = 0; i < 2; i++)
		if (fg_sh("ip -n %s addr add 10.%d.%d.11/24 dev %s%dg && ip -n %s link set %s%dg up",
			  e->ns_c[i], o, i + 1, t, i + 1, e->ns_c[i], t, i + 1))
			return -EIO;
	return 0;
}

static int pod_start(struct met_e2e *e, int c)
{
	char addr[32], name[16], ready[PATH_MAX], log[PATH_MAX], port[8];
	char *argv[] = { "ip", "netns", "exec", e->ns_c[c], "python3", e->scripts, "--addr", addr,
			 "--port", port, "--name", name, "--ready", ready, NULL };
	long long deadline;
	int st;

	snprintf(addr, sizeof(addr), "10.%d.%d.11", e->o, c + 1);
	snprintf(name, sizeof(name), "cluster%d", c + 1);
	snprintf(port, sizeof(port), "%d", POD_PORT);
	snprintf(ready, sizeof(ready), "%s/met-pod%d.ready", test__tmpdir(), c);
	snprintf(log, sizeof(log), "%s/met-pod%d.log", test__tmpdir(), c);
	unlink(ready);
	e->pod[c] = e2e_spawn(log, NULL, argv);
	if (e->pod[c] < 0) {
		e->pod[c] = 0;
		return -ECHILD;
	}
	for (deadline = e2e_now_ms() + 5000; e2e_now_ms() < deadline; e2e_sleep_ms(20)) {
		if (access(ready, F_OK) == 0)
			return 0;
		if (waitpid(e->pod[c], &st, WNOHANG) == e->pod[c]) {
			e->pod[c] = 0;
			break;
		}
	}
	show_file("pod log", log);
	return -ETIMEDOUT;
}

static int cfg_setup(struct met_e2e *e)
{
	int c, err;

	snprintf(e->cfg, sizeof(e->cfg), "%s/met-config", test__tmpdir());
	if (fg_sh("mkdir -p %s/fleet %s/clusters/%s %s/clusters/%s", e->cfg, e->cfg, CLUSTER1,
		  e->cfg, CLUSTER2))
		return -EIO;
	err = write_file(e, "fleet/gateway.yaml",
			 "apiVersion: mse.alibabacloud.com/v1alpha1\n"
			 "kind: MseIngressConfig\n"
			 "metadata:\n"
			 "  name: ackone-gateway\n"
			 "  annotations:\n"
			 "    mse.alibabacloud.com/remote-clusters: %s,%s\n"
			 "spec:\n"
			 "  ingress:\n"
			 "    local:\n"
			 "      ingressClass: mse\n"
			 "  name: mse-ingress\n", CLUSTER1, CLUSTER2);
	err = err ?: write_file(e, "fleet/web.yaml",
				"apiVersion: networking.k8s.io/v1\n"
				"kind: Ingress\n"
				"metadata:\n"
				"  name: web-demo\n"
				"  namespace: web-demo\n"
				"spec:\n"
				"  ingressClassName: mse\n"
				"  rules:\n"
				"  - host: example.com\n"
				"    http:\n"
				"      paths:\n"
				"      - path: /service1\n"
				"        pathType: Exact\n"
				"        backend:\n"
				"          service:\n"
				"            name: service1\n"
				"            port:\n"
				"              number: 80\n");
	err = err ?: write_file(e, "fleet/gray.yaml",
				"apiVersion: networking.k8s.io/v1\n"
				"kind: Ingress\n"
				"metadata:\n"
				"  annotations:\n"
				"    mse.ingress.kubernetes.io/service-subset: cluster-demo-2\n"
				"    mse.ingress.kubernetes.io/subset-labels: |\n"
				"      topology.istio.io/cluster %s\n"
				"    nginx.ingress.kubernetes.io/canary: \"true\"\n"
				"    nginx.ingress.kubernetes.io/canary-by-header: \"stage\"\n"
				"    nginx.ingress.kubernetes.io/canary-by-header-value: \"gray\"\n"
				"  name: web-demo-gray\n"
				"  namespace: web-demo\n"
				"spec:\n"
				"  ingressClassName: mse\n"
				"  rules:\n"
				"  - host: example.com\n"
				"    http:\n"
				"      paths:\n"
				"      - path: /service1\n"
				"        pathType: Exact\n"
				"        backend:\n"
				"          service:\n"
				"            name: service1\n"
				"            port:\n"
				"              number: 80\n", CLUSTER2);
	/* A canary of a path nobody routes: rejected. */
	err = err ?: write_file(e, "fleet/orphan.yaml",
				"apiVersion: networking.k8s.io/v1\n"
				"kind: Ingress\n"
				"metadata:\n"
				"  annotations:\n"
				"    nginx.ingress.kubernetes.io/canary: \"true\"\n"
				"    nginx.ingress.kubernetes.io/canary-weight: \"10\"\n"
				"  name: orphan\n"
				"  namespace: web-demo\n"
				"spec:\n"
				"  ingressClassName: mse\n"
				"  rules:\n"
				"  - host: example.com\n"
				"    http:\n"
				"      paths:\n"
				"      - path: /nowhere\n"
				"        pathType: Exact\n"
				"        backend:\n"
				"          service:\n"
				"            name: service1\n"
				"            port:\n"
				"              number: 80\n");
	for (c = 0; c < 2 && !err; c++) {
		char rel[160];

		snprintf(rel, sizeof(rel), "clusters/%s/service1.yaml", c ? CLUSTER2 : CLUSTER1);
		err = write_file(e, rel,
				 "apiVersion: v1\n"
				 "kind: Service\n"
				 "metadata:\n"
				 "  name: service1\n"
				 "  namespace: web-demo\n"
				 "spec:\n"
				 "  type: ClusterIP\n"
				 "  ports:\n"
				 "  - name: http\n"
				 "    protocol: TCP\n"
				 "    port: 80\n"
				 "    targetPort: 8080\n"
				 "---\n"
				 "apiVersion: discovery.k8s.io/v1\n"
				 "kind: EndpointSlice\n"
				 "metadata:\n"
				 "  name: service1-%d\n"
				 "  namespace: web-demo\n"
				 "  labels:\n"
				 "    kubernetes.io/service-name: service1\n"
				 "addressType: IPv4\n"
				 "ports:\n"
				 "- name: http\n"
				 "  protocol: TCP\n"
				 "  port: %d\n"
				 "endpoints:\n"
				 "- addresses:\n"
				 "  - 10.%d.%d.11\n"
				 "  conditions:\n"
				 "    ready: true\n", c + 1, POD_PORT, e->o, c + 1);
	}
	return err;
}

static int agent_start(struct met_e2e *e, const char *const *extra)
{
	char netns[64], ifc[3][32], listen[48];
	char *argv[24] = { "nsenter", netns, e->agent_bin, "--config-dir", e->cfg, "--listen",
			   listen, "--iface", ifc[0], "--iface", ifc[1], "--iface", ifc[2],
			   "--pin-path", e->pin };
	long long deadline;
	int i, n = 15, st;

	snprintf(netns, sizeof(netns), "--net=/run/netns/%s", e->ns_gw);
	snprintf(listen, sizeof(listen), "10.%d.0.1:%d", e->o, HTTP_PORT);
	snprintf(ifc[0], sizeof(ifc[0]), "%sgc", e->t);
	snprintf(ifc[1], sizeof(ifc[1]), "%sg1", e->t);
	snprintf(ifc[2], sizeof(ifc[2]), "%sg2", e->t);
	for (i = 0; extra && extra[i] && n < 23; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	unlink(e->agent_log);
	e->agent = e2e_spawn(e->agent_log, NULL, argv);
	if (e->agent < 0) {
		e->agent = 0;
		return -ECHILD;
	}
	for (deadline = e2e_now_ms() + 10000; e2e_now_ms() < deadline; e2e_sleep_ms(50)) {
		char *log = slurp(e->agent_log);
		bool ready = log && strstr(log, "fleetgate-agent ready");

		free(log);
		if (ready)
			return 0;
		if (waitpid(e->agent, &st, WNOHANG) == e->agent) {
			printf("e2e: the agent exited early (status 0x%x)\n", st);
			e->agent = 0;
			break;
		}
	}
	show_file("agent log", e->agent_log);
	return -ETIMEDOUT;
}

/* Both endpoints up and the gateway Listening, as /metrics shows it. */
static bool wait_serving(struct met_e2e *e, unsigned timeout_ms)
{
	long long deadline = e2e_now_ms() + timeout_ms;
	char *m = NULL;

	for (;; e2e_sleep_ms(100)) {
		double up, listening;

		free(m);
		m = scrape(e);
		up = m ? metric_sum(m, "fleetgate_endpoint_up", NULL) : NAN;
		listening = m ? metric_sum(m, "fleetgate_gateway_phase", "phase=\"Listening\"", NULL)
			      : NAN;
		if (up == 2 && listening == 1)
			break;
		if (e2e_now_ms() >= deadline) {
			printf("e2e: not serving: endpoints up %g, Listening %g\n%s\n", up, listening,
			       m ? m : "(no scrape)");
			free(m);
			return false;
		}
	}
	free(m);
	return true;
}

static int prom_start(struct met_e2e *e)
{
	char cfg[PATH_MAX], data[PATH_MAX], log[PATH_MAX], a_cfg[PATH_MAX + 16],
		a_data[PATH_MAX + 32], a_listen[64];
	char *argv[] = { "ip", "netns", "exec", e->ns_gw, "prometheus", a_cfg, a_data, a_listen,
			 "--storage.tsdb.retention.time=1h", NULL };
	FILE *f;

	snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", test__tmpdir());
	snprintf(data, sizeof(data), "%s/prometheus-data", test__tmpdir());
	snprintf(log, sizeof(log), "%s/prometheus.log", test__tmpdir());
	f = fopen(cfg, "w");
	if (!f)
		return -errno;
	fprintf(f,
		"global:\n"
		"  scrape_interval: 1s\n"
		"  scrape_timeout: 1s\n"
		"scrape_configs:\n"
		"  - job_name: fleetgate\n"
		"    static_configs:\n"
		"      - targets: ['%s']\n", METRICS);
	fclose(f);
	snprintf(a_cfg, sizeof(a_cfg), "--config.file=%s", cfg);
	snprintf(a_data, sizeof(a_data), "--storage.tsdb.path=%s", data);
	snprintf(a_listen, sizeof(a_listen), "--web.listen-address=127.0.0.1:%d", PROM_PORT);
	e->prom = e2e_spawn(log, NULL, argv);
	if (e->prom < 0) {
		e->prom = 0;
		return -ECHILD;
	}
	return 0;
}

/* The value of a PromQL query returning one sample (NAN: none). */
static double prom_query(struct met_e2e *e, const char *q, bool quiet)
{
	json_error_t jerr;
	json_t *doc, *res;
	double v = NAN;
	char *out;
	int rc;

	out = e2e_capture(&rc, true,
			  "ip netns exec %s curl -sS --max-time 5 -G --data-urlencode 'query=%s' "
			  "http://127.0.0.1:%d/api/v1/query", e->ns_gw, q, PROM_PORT);
	doc = out && !rc ? json_loads(out, 0, &jerr) : NULL;
	res = json_object_get(json_object_get(doc, "data"), "result");
	if (json_is_array(res) && json_array_size(res) == 1)
		v = strtod(json_string_value(json_array_get(
				   json_object_get(json_array_get(res, 0), "value"), 1)) ?: "nan",
			   NULL);
	if (!quiet)
		printf("e2e: prometheus: %s = %g (%s)\n", q, v, out ? out : "no answer");
	json_decref(doc);
	free(out);
	return v;
}

/* Polls a query until it returns want (Prometheus scrapes every second). */
static double prom_wait(struct met_e2e *e, const char *q, double want, unsigned timeout_ms)
{
	long long deadline = e2e_now_ms() + timeout_ms;
	double v;

	for (;; e2e_sleep_ms(250)) {
		v = prom_query(e, q, true);
		if (v == want || e2e_now_ms() >= deadline)
			break;
	}
	prom_query(e, q, false);
	return v;
}

/* ------------------------------------------------------------------ */
/* subtests                                                            */
/* ------------------------------------------------------------------ */

static void subtest_scrape(struct met_e2e *e)
{
	char path[PATH_MAX], *m;
	double c1, c2;
	int rc;

	ASSERT_EQ(requests(e, "/service1", NULL, N_MAIN, 200), N_MAIN, "main route answered");
	ASSERT_EQ(requests(e, "/service1", "stage: gray", N_GRAY, 200), N_GRAY, "canary answered");
	ASSERT_EQ(requests(e, "/nothing", NULL, N_404, 404), N_404, "no route: 404");
	m = scrape(e);
	if (!ASSERT_OK_PTR(m, "scrape"))
		return;
	snprintf(path, sizeof(path), "%s/met-scrape.txt", test__tmpdir());
	{
		FILE *f = fopen(path, "w");

		if (f) {
			fputs(m, f);
			fclose(f);
		}
	}
	if (e->have_promtool) {
		rc = fg_sh("promtool check metrics < %s", path);
		ASSERT_EQ(rc, 0, "promtool check metrics");
	} else {
		printf("e2e: promtool not installed (apt-get install prometheus): not checked\n");
	}
	/* The main route, split by the clusters' pods (1:1). */
	c1 = metric_sum(m, "fleetgate_http_requests_total", "host=\"example.com\"",
			"path=\"/service1\"", "canary=\"\"", "cluster=\"" CLUSTER1 "\"",
			"status_class=\"2xx\"", NULL);
	c2 = metric_sum(m, "fleetgate_http_requests_total", "host=\"example.com\"",
			"path=\"/service1\"", "canary=\"\"", "cluster=\"" CLUSTER2 "\"",
			"status_class=\"2xx\"", NULL);
	printf("e2e: main route: %g to cluster 1, %g to cluster 2\n", c1, c2);
	ASSERT_EQ((isnan(c1) ? 0 : c1) + (isnan(c2) ? 0 : c2), N_MAIN, "main route's 2xx");
	ASSERT_EQ(metric_sum(m, "fleetgate_http_requests_total", "canary=\"" GRAY "\"",
			     "cluster=\"" CLUSTER2 "\"", "status_class=\"2xx\"", NULL),
		  N_GRAY, "canary's 2xx, all in cluster 2");
	ASSERT_EQ(metric_sum(m, "fleetgate_http_requests_total", "host=\"\"", "path=\"\"",
			     "status_class=\"4xx\"", NULL), N_404, "no route's 4xx");
	ASSERT_EQ(metric_sum(m, "fleetgate_http_request_duration_seconds_count",
			     "path=\"/service1\"", NULL), N_MAIN + N_GRAY, "durations observed");
	ASSERT_GT(metric_sum(m, "fleetgate_http_response_bytes_total", "path=\"/service1\"", NULL),
		  (N_MAIN + N_GRAY) * 100, "response bytes");
	ASSERT_GT(metric_sum(m, "fleetgate_http_request_bytes_total", "path=\"/service1\"", NULL),
		  (N_MAIN + N_GRAY) * 50, "request bytes");
	ASSERT_EQ(metric_sum(m, "fleetgate_endpoint_up", "cluster=\"" CLUSTER1 "\"",
			     "endpoint=\"10.", ":8080\"", NULL), 1, "cluster 1's endpoint up");
	ASSERT_EQ(metric_sum(m, "fleetgate_ingress_accepted", "ingress=\"web-demo\"", NULL), 1,
		  "web-demo accepted");
	ASSERT_EQ(metric_sum(m, "fleetgate_ingress_accepted", "ingress=\"orphan\"", NULL), 0,
		  "orphan rejected");
	ASSERT_EQ(metric_sum(m, "fleetgate_config_rejected_objects", NULL), 1, "one rejected");
	ASSERT_GE(metric_sum(m, "fleetgate_config_applies_total", "result=\"success\"", NULL), 1,
		  "applies counted");
	ASSERT_GE(metric_sum(m, "fleetgate_xdp_listener_packets_total", "kind=\"l7\"",
			     "protocol=\"tcp\"", NULL), (N_MAIN + N_GRAY + N_404) * 3,
		  "XDP counted the L7 listener's packets");
	ASSERT_GE(metric_sum(m, "fleetgate_xdp_packets_total", "reason=\"l7\"", NULL),
		  (N_MAIN + N_GRAY + N_404) * 3, "verdict l7");
	ASSERT_EQ(metric_sum(m, "fleetgate_service_failed_over", NULL), 0, "no failover yet");
	ASSERT_EQ(metric_sum(m, "fleetgate_http_connections_accepted_total", NULL),
		  N_MAIN + N_GRAY + N_404, "connections accepted");
	ASSERT_EQ(metric_sum(m, "fleetgate_local_errors_total", NULL), 0, "no local errors");
	ASSERT_EQ(metric_sum(m, "fleetgate_access_log_lines_total", NULL), N_MAIN + N_GRAY + N_404,
		  "access log lines");
	ASSERT_EQ(metric_sum(m, "fleetgate_access_log_dropped_total", NULL), 0, "none dropped");
	free(m);
}

static void subtest_access_log(struct met_e2e *e)
{
	char ua[] = "\"curl/";
	long long deadline = e2e_now_ms() + 2000;

	/* Written by the agent's writer thread: a moment after the answers. */
	while (log_lines(e->access_log, NULL) < N_MAIN + N_GRAY + N_404 &&
	       e2e_now_ms() < deadline)
		e2e_sleep_ms(20);
	ASSERT_EQ(log_lines(e->access_log, NULL), N_MAIN + N_GRAY + N_404, "a line per request");
	ASSERT_EQ(log_lines(e->access_log, " - - [", "\"GET /service1 HTTP/1.1\" 200 ", ua,
			    " upstream=10.", ":8080 cluster=c", " canary=- upstream_time=0.",
			    " request_time=0.", NULL), N_MAIN, "main route's lines");
	ASSERT_EQ(log_lines(e->access_log, "\"GET /service1 HTTP/1.1\" 200 ",
			    "cluster=" CLUSTER2 " canary=" GRAY " ", NULL), N_GRAY,
		  "canary lines: cluster 2, the canary named");
	ASSERT_EQ(log_lines(e->access_log, "\"GET /nothing HTTP/1.1\" 404 ",
			    " upstream=- cluster=- canary=- upstream_time=- ", NULL), N_404,
		  "404 lines");
}

static void subtest_failover(struct met_e2e *e)
{
	long long t0 = e2e_now_ms(), deadline = t0 + 8000;
	char *m = NULL, *p;
	double fo = 0;

	printf("e2e: killing cluster 2's pod (pid %d)\n", e->pod[1]);
	e2e_stop_child(&e->pod[1], SIGKILL, 2000);
	for (;; e2e_sleep_ms(100)) {
		free(m);
		m = scrape(e);
		fo = m ? metric_sum(m, "fleetgate_service_failed_over", NULL) : NAN;
		if (fo == 1 || e2e_now_ms() >= deadline)
			break;
	}
	printf("e2e: failed over after %lld ms\n", e2e_now_ms() - t0);
	if (!ASSERT_EQ(fo, 1, "one service failed over (the canary's subset)")) {
		printf("%s\n", m ? m : "");
		free(m);
		return;
	}
	for (p = m; (p = strstr(p, "\nfleetgate_service_failed_over{service=\"")); p++) {
		char *q = p + strlen("\nfleetgate_service_failed_over{service=\""), *end = strchr(q, '"');

		if (end && !strncmp(end, "\"} 1\n", 5)) {
			snprintf(e->gray_service, sizeof(e->gray_service), "%.*s", (int)(end - q), q);
			break;
		}
	}
	printf("e2e: the failed over service: %s\n", e->gray_service);
	ASSERT_EQ(metric_sum(m, "fleetgate_endpoint_up", "cluster=\"" CLUSTER2 "\"", NULL), 0,
		  "cluster 2's endpoint down");
	ASSERT_EQ(metric_sum(m, "fleetgate_service_failovers_total", NULL), 1, "one failover");
	ASSERT_EQ(metric_sum(m, "fleetgate_service_failover_tier", NULL), 1,
		  "the failed over service is on tier 1");
	ASSERT_EQ(metric_sum(m, "fleetgate_cluster_endpoints", "cluster=\"" CLUSTER2 "\"",
			     "state=\"down\"", NULL), 1, "cluster 2: one endpoint down");
	free(m);
	/* The gray requests now go to cluster 1, still on the canary. */
	ASSERT_EQ(requests(e, "/service1", "stage: gray", 3, 200), 3, "canary answered");
	for (deadline = e2e_now_ms() + 2000; e2e_now_ms() < deadline; e2e_sleep_ms(20))
		if (log_lines(e->access_log, "cluster=" CLUSTER1 " canary=" GRAY " ", NULL) >= 3)
			break;
	ASSERT_EQ(log_lines(e->access_log, "cluster=" CLUSTER1 " canary=" GRAY " ", NULL), 3,
		  "canary lines now in cluster 1");
	m = scrape(e);
	ASSERT_EQ(m ? metric_sum(m, "fleetgate_http_requests_total", "canary=\"" GRAY "\"",
				 "cluster=\"" CLUSTER1 "\"", NULL) : NAN, 3,
		  "canary's requests in cluster 1");
	free(m);
}

static void subtest_prometheus(struct met_e2e *e)
{
	char q[256];
	long long deadline = e2e_now_ms() + 15000;
	int rc = 1;

	if (!e->have_prom) {
		test__skip("prometheus is not installed (apt-get install prometheus; make deps)");
		return;
	}
	while (e2e_now_ms() < deadline) {
		char *out = e2e_capture(&rc, true,
					"ip netns exec %s curl -sf --max-time 2 http://127.0.0.1:%d/-/ready",
					e->ns_gw, PROM_PORT);
		free(out);
		if (!rc)
			break;
		e2e_sleep_ms(200);
	}
	if (!ASSERT_EQ(rc, 0, "prometheus ready")) {
		char log[PATH_MAX];

		snprintf(log, sizeof(log), "%s/prometheus.log", test__tmpdir());
		show_file("prometheus log", log);
		return;
	}
	ASSERT_EQ(prom_wait(e, "up{job=\"fleetgate\"}", 1, 10000), 1, "the agent is up for Prometheus");
	ASSERT_EQ(prom_wait(e, "sum(fleetgate_http_requests_total{host=\"example.com\","
			       "status_class=\"2xx\"})", N_MAIN + N_GRAY + 3, 10000),
		  N_MAIN + N_GRAY + 3, "2xx requests, as Prometheus sees them");
	ASSERT_EQ(prom_wait(e, "sum(fleetgate_http_requests_total{status_class=\"4xx\"})", N_404,
			    5000), N_404, "4xx requests");
	snprintf(q, sizeof(q), "sum(fleetgate_http_requests_total{canary=\"%s\"})", GRAY);
	ASSERT_EQ(prom_wait(e, q, N_GRAY + 3, 5000), N_GRAY + 3, "canary requests");
	ASSERT_EQ(prom_wait(e, "sum(fleetgate_service_failed_over)", 1, 5000), 1,
		  "a failover, as Prometheus sees it");
	ASSERT_EQ(prom_wait(e, "count(fleetgate_endpoint_up == 0)", 1, 5000), 1,
		  "one endpoint down");
	ASSERT_EQ(prom_wait(e, "sum(fleetgate_http_request_duration_seconds_count)",
			    N_MAIN + N_GRAY + N_404 + 3, 5000), N_MAIN + N_GRAY + N_404 + 3,
		  "duration histogram count");
	/* A quantile from the buckets: PromQL takes the histogram as one. */
	{
		double p99 = prom_query(e, "histogram_quantile(0.99, sum by (le) "
					   "(fleetgate_http_request_duration_seconds_bucket))", false);

		ASSERT_TRUE(p99 >= 0 && p99 <= 10, "histogram_quantile is a number of seconds");
	}
	ASSERT_GE(prom_query(e, "sum(fleetgate_xdp_packets_total{reason=\"l7\"})", false), 1,
		  "XDP verdicts");
}

static void subtest_access_log_json_stdout(struct met_e2e *e)
{
	static const char *const extra[] = { "--access-log", "-", "--access-log-format", "json",
					     "--metrics-listen", "off", NULL };
	char *log, *line, *eol;
	json_error_t jerr;
	json_t *j = NULL;
	int st;

	st = e2e_stop_child(&e->agent, SIGTERM, 5000);
	ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "agent exits 0 on SIGTERM");
	if (!ASSERT_OK(agent_start(e, extra), "agent with --access-log - (json)"))
		return;
	/* Cluster 1 serves once its endpoint is in the new agent's rings. */
	for (st = 0; st < 25; st++) {
		if (requests(e, "/service1", "User-Agent: e2e \\\"json\\\"", 1, 200) == 1)
			break;
		e2e_sleep_ms(200);
	}
	ASSERT_LT(st, 25, "answered 200");
	e2e_sleep_ms(200);
	/* stdout and stderr go to the same file here: the JSON lines are
	 * among the agent's messages. */
	log = slurp(e->agent_log);
	for (line = log; line && *line; line = eol + 1) {
		eol = strchr(line, '\n');
		if (!eol)
			break;
		*eol = '\0';
		if (!strncmp(line, "{\"time\":", 8) && strstr(line, "\"status\":200,"))
			break;
	}
	if (!ASSERT_TRUE(line && *line == '{', "a JSON line with status 200 on stdout")) {
		show_file("agent log", e->agent_log);
		free(log);
		return;
	}
	printf("e2e: %s\n", line);
	j = json_loads(line, 0, &jerr);
	if (ASSERT_OK_PTR(j, "valid JSON")) {
		ASSERT_EQ(json_integer_value(json_object_get(j, "status")), 200, "status");
		ASSERT_STREQ(json_string_value(json_object_get(j, "request")),
			     "GET /service1 HTTP/1.1", "request");
		ASSERT_STREQ(json_string_value(json_object_get(j, "http_user_agent")), "e2e \"json\"",
			     "user agent");
		ASSERT_STREQ(json_string_value(json_object_get(j, "cluster")), CLUSTER1, "cluster");
		ASSERT_STREQ(json_string_value(json_object_get(j, "host")), "example.com", "host");
		ASSERT_TRUE(json_is_real(json_object_get(j, "request_time")), "request_time");
		ASSERT_TRUE(json_is_real(json_object_get(j, "upstream_time")), "upstream_time");
	}
	json_decref(j);
	free(log);
	log = e2e_capture(&st, true, "ip netns exec %s curl -s --max-time 2 http://%s/metrics",
			  e->ns_gw, METRICS);
	ASSERT_NEQ(st, 0, "--metrics-listen off: nothing served");
	free(log);
}

/* ------------------------------------------------------------------ */
/* setup and cleanup                                                   */
/* ------------------------------------------------------------------ */

static int met_setup(struct met_e2e *e)
{
	const char *extra[] = { "--access-log", e->access_log, NULL };
	int err, c;

	snprintf(e->t, sizeof(e->t), "%sm", test__prefix());
	e->o = 10 + getpid() % 40;
	snprintf(e->ns_cli, sizeof(e->ns_cli), "%scli", e->t);
	snprintf(e->ns_gw, sizeof(e->ns_gw), "%sgw", e->t);
	snprintf(e->ns_c[0], sizeof(e->ns_c[0]), "%sc1", e->t);
	snprintf(e->ns_c[1], sizeof(e->ns_c[1]), "%sc2", e->t);
	snprintf(e->pin, sizeof(e->pin), "/sys/fs/bpf/%s", e->t);
	snprintf(e->sock, sizeof(e->sock), "/run/fleetgate/%s.sock", e->t);
	snprintf(e->agent_log, sizeof(e->agent_log), "%s/met-agent.log", test__tmpdir());
	snprintf(e->access_log, sizeof(e->access_log), "%s/met-access.log", test__tmpdir());
	printf("e2e: names %s*, addresses 10.%d.0.0/16, pins %s\n", e->t, e->o, e->pin);
	err = topo_setup(e);
	if (!ASSERT_OK(err, "topology"))
		return err;
	if (e->have_prom && !ASSERT_OK(prom_start(e), "prometheus started"))
		return -ECHILD;
	for (c = 0; c < 2; c++) {
		err = pod_start(e, c);
		if (!ASSERT_OK(err, "pod"))
			return err;
	}
	err = cfg_setup(e);
	if (!ASSERT_OK(err, "config directory"))
		return err;
	err = agent_start(e, extra);
	if (!ASSERT_OK(err, "agent start"))
		return err;
	if (!ASSERT_TRUE(wait_serving(e, 8000), "both endpoints up, gateway Listening"))
		return -ETIMEDOUT;
	return 0;
}

static void met_cleanup(struct met_e2e *e)
{
	char *ns[4] = { e->ns_cli, e->ns_gw, e->ns_c[0], e->ns_c[1] };
	int i;

	if (e->agent > 0) {
		int st = e2e_stop_child(&e->agent, SIGTERM, 5000);

		ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			    "agent exits 0 on SIGTERM");
	}
	if (e->agent_log[0] && access(e->agent_log, F_OK) == 0 && test__verbose())
		show_file("agent log", e->agent_log);
	e2e_stop_child(&e->prom, SIGTERM, 5000);
	for (i = 0; i < 2; i++)
		e2e_stop_child(&e->pod[i], SIGKILL, 2000);
	if (e->t[0])
		fg_sh("rm -rf /sys/fs/bpf/%s /run/fleetgate/%s.sock", e->t, e->t);
	for (i = 3; i >= 0; i--)
		if (e->ns_made[i])
			fg_sh("ip netns del %s", ns[i]);
}

FG_TEST(e2e_metrics)
{
	struct met_e2e e = {};
	long long t0 = e2e_now_ms();

	if (geteuid() != 0) {
		test__skip("needs root");
		return;
	}
	if (fg_sh("ip netns list >/dev/null 2>&1") != 0) {
		test__skip("ip netns is not available");
		return;
	}
	if (fg_sh("command -v python3 >/dev/null && command -v nsenter >/dev/null && "
		  "command -v curl >/dev/null") != 0) {
		test__skip("needs python3, nsenter and curl");
		return;
	}
	if (find_paths(&e)) {
		test__skip("fleetgate-agent or selftests/e2e not found");
		return;
	}
	e.have_prom = fg_sh("command -v prometheus >/dev/null") == 0;
	e.have_promtool = fg_sh("command -v promtool >/dev/null") == 0;
	if (!e.have_prom || !e.have_promtool)
		printf("e2e: prometheus/promtool not installed (Debian package prometheus, in "
		       "make deps): their checks are skipped\n");
	if (met_setup(&e) == 0) {
		printf("e2e: setup took %lld ms\n", e2e_now_ms() - t0);
		if (test__start_subtest("scrape"))
			subtest_scrape(&e);
		if (test__start_subtest("access_log"))
			subtest_access_log(&e);
		if (test__start_subtest("failover"))
			subtest_failover(&e);
		if (test__start_subtest("prometheus"))
			subtest_prometheus(&e);
		if (test__start_subtest("access_log_json_stdout"))
			subtest_access_log_json_stdout(&e);
	}
	met_cleanup(&e);
	printf("e2e: total %lld ms\n", e2e_now_ms() - t0);
}
