// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * End to end, several gateway nodes: three fleetgate-agents, each with its
 * own BIRD 2, announce the same VIP over eBGP (with BFD) to a router running
 * BIRD 2, which spreads flows over them by ECMP; the fleet and its two
 * member clusters come from the test API server (selftests/kube/apiserver.py)
 * and the nodes keep Leases there, one of them writing the status back.
 *
 *   cli (10.O.0.2-.11) -- rtr (BIRD AS 65000, ECMP, L4 hash) -- bridge 10.O.1.0/24
 *                                      |            \-- apiserver.py on 10.O.1.1
 *            +-------------------------+-------------------------+
 *           g1 10.O.1.11              g2 10.O.1.12              g3 10.O.1.13
 *           (agent + BIRD AS 65010; VIP 10.O.9.1 on lo; links to both clusters:
 *            gN-kK is 10.O.<10K+N>.0/24, the node .1, the cluster .2)
 *            |                                       |
 *           k1: pods c1-a 10.O.101.2, c1-b 10.O.101.3  k2: pod c2-a 10.O.102.2
 *
 * The router learns the VIP from the nodes' BIRDs into table 100 (merge
 * paths: one multipath route). "plain" mode routes the VIP by that route
 * (hash-threshold ECMP); "resilient" mode by a resilient nexthop group
 * that selftests/e2e/resilient_sync.py builds from the same next hops in
 * table 200 (an ip rule picks the table). L4 is web-demo/tcp-echo
 * (LoadBalancer, 7000); L7 an Ingress on port 80. Pods answer with their
 * name and the node that carried the connection (selftests/e2e/bgp_pod.py),
 * clients are selftests/e2e/bgp_client.py.
 *
 * A node is killed the way a machine dies: its switch port goes dark (the
 * router's bridge port down, so no FIN or BFD "down" leaves it), then its
 * agent and BIRD get SIGKILL; only BFD tells the router.
 *
 * Subtests: announce (all three learned, REPLICAS 3/3), kubectl_status
 * (Debian's kubectl reads the Ingress ADDRESS, the MseIngressConfig's status,
 * the Service's EXTERNAL-IP and the Leases), spread (3,000 new connections:
 * each node 20-47%), kill_plain and kill_resilient (a node dies: the gap
 * until new connections succeed again, < 1 s; long-lived flows on the
 * survivors: how many moved with hash-threshold ECMP, none with the
 * resilient group; REPLICAS 2/3, then 3/3 after the restart, which is
 * announced only once the agent is ready), drain_l7 (SIGTERM under HTTP
 * load, kept-alive and new connections, then a restart: 0 failed
 * requests), unhealthy_withdraws (a node whose clusters all fail
 * withdraws, traffic goes to the others), own_check_withdraws (the VIP
 * taken off a node).
 *
 * Skips without root, ip netns, python3, nsenter, ethtool or BIRD 2.
 */
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "e2e_lib.h"
#include "kubectl_lib.h"
#include "test_progs.h"

#define NGW 3
#define CL1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define CL2 "c15d48ca9d1fd43f9bbb89c56a474843c"
#define GATEWAY "ackone-gateway"
#define LEASE_NS "fleetgate-system"
#define HTTP_PORT 80
#define L4_PORT 7000
#define POD_TCP 9000
#define POD_HTTP 8080
#define LEASE_S 2
#define DRAIN_S 2
#define N_SRC 10

struct node {
	char ns[32];
	bool made;
	char dir[PATH_MAX - 128];
	char bird_conf[PATH_MAX], bird_sock[PATH_MAX], bird_log[PATH_MAX];
	char inc[PATH_MAX], agent_log[PATH_MAX], pin[64], sock[128], port[32];
	pid_t bird, agent;
	long log_off;
};

struct pod {
	const char *name;
	int cluster; /* 1, 2 */
	int host;
	pid_t pid;
};

struct bgp_e2e {
	char t[16];
	int o;
	char ns_r[32], ns_cli[32], ns_k[2][32];
	bool made_r, made_cli, made_k[2];
	char dir[PATH_MAX - 256];
	char agent_bin[PATH_MAX], ctl_bin[PATH_MAX], scripts[PATH_MAX - 64];
	char vip[32], src[256];
	char api_base[64], kc_fleet[PATH_MAX], kc_k[2][PATH_MAX];
	char rbird_conf[PATH_MAX], rbird_sock[PATH_MAX], rbird_log[PATH_MAX];
	char sync_status[PATH_MAX];
	const char *kubectl;
	pid_t api, rbird, sync;
	struct node n[NGW];
	struct pod pods[3];
	bool resilient;
};

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (long)st.st_size;
}

static char *read_all(const char *path, long off)
{
	size_t len = 0, cap = 8192, got;
	char *buf = malloc(cap), *tmp;
	FILE *f = fopen(path, "r");

	if (!buf || !f) {
		free(buf);
		if (f)
			fclose(f);
		return NULL;
	}
	if (off > 0)
		fseek(f, off, SEEK_SET);
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

static bool log_has(const char *path, long off, const char *needle)
{
	char *all = read_all(path, off);
	bool found = all && strstr(all, needle);

	free(all);
	return found;
}

static void show_file(const char *title, const char *path, long off)
{
	char *all = read_all(path, off);

	printf("---- %s (%s) ----\n%s", title, path, all ? all : "(cannot read)\n");
	if (all && all[0] && all[strlen(all) - 1] != '\n')
		printf("\n");
	printf("---- end of %s ----\n", title);
	free(all);
}

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

static json_t *load_json(const char *path)
{
	json_error_t jerr;

	return json_load_file(path, 0, &jerr);
}

static bool wait_file(const char *path, unsigned timeout_ms)
{
	long long deadline = e2e_now_ms() + timeout_ms;

	while (e2e_now_ms() < deadline) {
		if (access(path, F_OK) == 0)
			return true;
		e2e_sleep_ms(20);
	}
	return false;
}

/* Gateway node index (0..2) from the peer address a pod saw:
 * 10.O.<10K+N>.1. */
static int peer_node(const char *peer)
{
	int a, b, c, d;

	if (sscanf(peer, "%d.%d.%d.%d", &a, &b, &c, &d) != 4 || c < 11 || c % 10 < 1 ||
	    c % 10 > NGW)
		return -1;
	return c % 10 - 1;
}

/* ------------------------------------------------------------------ */
/* the router's view                                                   */
/* ------------------------------------------------------------------ */

/* Which nodes table 100 (what BIRD learned) routes the VIP to. */
static int learned(struct bgp_e2e *e, bool have[NGW])
{
	char *out, *p;
	int st, n = 0, i;

	memset(have, 0, NGW * sizeof(bool));
	out = e2e_capture(&st, true, "ip -n %s route show table 100 exact %s/32 2>/dev/null",
			  e->ns_r, e->vip);
	for (i = 0; out && i < NGW; i++) {
		char gw[32];

		snprintf(gw, sizeof(gw), "via 10.%d.1.%d ", e->o, 11 + i);
		p = strstr(out, gw);
		if (p) {
			have[i] = true;
			n++;
		}
	}
	free(out);
	return n;
}

/* ms until the router's learned next hops are exactly want[], or -1. */
static long wait_learned(struct bgp_e2e *e, const bool want[NGW], unsigned timeout_ms)
{
	long long t0 = e2e_now_ms();
	bool have[NGW];
	int i;

	for (;;) {
		bool same = true;

		learned(e, have);
		for (i = 0; i < NGW; i++)
			same &= have[i] == want[i];
		if (same)
			return (long)(e2e_now_ms() - t0);
		if (e2e_now_ms() - t0 > timeout_ms)
			break;
		e2e_sleep_ms(5);
	}
	printf("e2e: router: wanted next hops %d%d%d, have %d%d%d\n", want[0], want[1], want[2],
	       have[0], have[1], have[2]);
	free(e2e_capture(&i, false, "ip -n %s route show table 100; birdc -s %s show protocols",
			 e->ns_r, e->rbird_sock));
	return -1;
}

static const bool ALL[NGW] = { true, true, true };

static void want_all_but(bool want[NGW], int dead)
{
	int i;

	for (i = 0; i < NGW; i++)
		want[i] = i != dead;
}

/* The resilient group holds want[] and its buckets are spread evenly. */
static long wait_group(struct bgp_e2e *e, const bool want[NGW], unsigned timeout_ms)
{
	long long t0 = e2e_now_ms();
	json_t *st, *m;
	size_t i;

	for (;;) {
		bool ok = true, have[NGW] = {};
		char *out;
		int rc, counts[64] = {}, maxc = 0, minc = 1 << 30, k;

		st = load_json(e->sync_status);
		json_array_foreach(json_object_get(st, "members"), i, m) {
			int a, b, c, d;

			if (sscanf(json_string_value(m) ?: "", "%d.%d.%d.%d", &a, &b, &c, &d) == 4 &&
			    d >= 11 && d < 11 + NGW)
				have[d - 11] = true;
		}
		json_decref(st);
		for (k = 0; k < NGW; k++)
			ok &= have[k] == want[k];
		out = ok ? e2e_capture(&rc, true, "ip -n %s nexthop bucket show id 900 2>/dev/null",
				       e->ns_r) : NULL;
		for (char *p = out; p && (p = strstr(p, "nhid ")); p += 5) {
			int id = atoi(p + 5) - 901;

			if (id >= 0 && id < 64)
				counts[id]++;
		}
		for (k = 0; out && k < 64; k++) {
			if (!counts[k])
				continue;
			maxc = counts[k] > maxc ? counts[k] : maxc;
			minc = counts[k] < minc ? counts[k] : minc;
		}
		free(out);
		if (ok && maxc && maxc - minc <= 1)
			return (long)(e2e_now_ms() - t0);
		if (e2e_now_ms() - t0 > timeout_ms)
			break;
		e2e_sleep_ms(50);
	}
	printf("e2e: the resilient group did not settle on %d%d%d\n", want[0], want[1], want[2]);
	free(e2e_capture((int[]){0}, false, "cat %s; ip -n %s nexthop bucket show id 900 | head -5",
			 e->sync_status, e->ns_r));
	return -1;
}

/* plain: the VIP by BIRD's multipath route; resilient: by the group. */
static bool set_mode(struct bgp_e2e *e, bool resilient)
{
	fg_sh("ip -n %s rule del to %s/32 2>/dev/null", e->ns_r, e->vip);
	if (fg_sh("ip -n %s rule add to %s/32 lookup %d pref 100", e->ns_r, e->vip,
		  resilient ? 200 : 100))
		return false;
	e->resilient = resilient;
	printf("e2e: the router routes the VIP by %s\n",
	       resilient ? "a resilient nexthop group (table 200)" :
			   "BIRD's multipath route (table 100, hash-threshold)");
	return true;
}

/* ------------------------------------------------------------------ */
/* processes                                                           */
/* ------------------------------------------------------------------ */

static bool node_alive(struct node *n)
{
	int st;

	return n->agent > 0 && waitpid(n->agent, &st, WNOHANG) == 0;
}

static int bird_start(struct bgp_e2e *e, const char *ns, const char *conf, const char *sock,
		      const char *log, pid_t *pid)
{
	char *argv[] = { "ip", "netns", "exec", (char *)ns, "bird", "-f", "-c", (char *)conf, "-s",
			 (char *)sock, NULL };
	long long deadline = e2e_now_ms() + 5000;
	char *out;
	int st;

	unlink(sock);
	*pid = e2e_spawn(log, NULL, argv);
	if (*pid < 0) {
		*pid = 0;
		return -errno;
	}
	while (e2e_now_ms() < deadline) {
		out = e2e_capture(&st, true, "birdc -s %s show status 2>&1", sock);
		free(out);
		if (st == 0 && access(sock, F_OK) == 0)
			return 0;
		e2e_sleep_ms(20);
	}
	show_file("bird", log, 0);
	return -ETIMEDOUT;
}

static int agent_start(struct bgp_e2e *e, int i)
{
	struct node *n = &e->n[i];
	char netns[64], listen[48], up[32], k1[32], k2[32], c1[PATH_MAX + 64], c2[PATH_MAX + 64];
	char name[16], dur[8], drain[8];
	char *argv[] = { "nsenter", netns, e->agent_bin, "--kubeconfig", e->kc_fleet,
			 "--cluster-kubeconfig", c1, "--cluster-kubeconfig", c2, "-l", listen,
			 "-i", up, "-i", k1, "-i", k2, "-p", n->pin, "--bgp-include", n->inc,
			 "--bgp-socket", n->bird_sock, "--node-name", name, "--lease-namespace",
			 LEASE_NS, "--lease-duration", dur, "--drain-seconds", drain, NULL };
	long long deadline;
	int st;

	snprintf(netns, sizeof(netns), "--net=/run/netns/%s", n->ns);
	snprintf(listen, sizeof(listen), "%s:%d", e->vip, HTTP_PORT);
	snprintf(up, sizeof(up), "%sg%du", e->t, i + 1);
	snprintf(k1, sizeof(k1), "%sg%dk1", e->t, i + 1);
	snprintf(k2, sizeof(k2), "%sg%dk2", e->t, i + 1);
	snprintf(c1, sizeof(c1), CL1 "=%s", e->kc_k[0]);
	snprintf(c2, sizeof(c2), CL2 "=%s", e->kc_k[1]);
	snprintf(name, sizeof(name), "gw%d", i + 1);
	snprintf(dur, sizeof(dur), "%d", LEASE_S);
	snprintf(drain, sizeof(drain), "%d", DRAIN_S);
	n->log_off = file_size(n->agent_log);
	n->agent = e2e_spawn(n->agent_log, NULL, argv);
	if (n->agent < 0) {
		n->agent = 0;
		return -errno;
	}
	for (deadline = e2e_now_ms() + 15000; e2e_now_ms() < deadline; e2e_sleep_ms(20)) {
		if (log_has(n->agent_log, n->log_off, "fleetgate-agent ready") &&
		    access(n->sock, F_OK) == 0)
			return 0;
		if (waitpid(n->agent, &st, WNOHANG) == n->agent) {
			printf("e2e: agent gw%d exited early (status 0x%x)\n", i + 1, st);
			n->agent = 0;
			show_file("agent log", n->agent_log, n->log_off);
			return -ECHILD;
		}
	}
	show_file("agent log", n->agent_log, n->log_off);
	return -ETIMEDOUT;
}

/* Node i dies like a machine: its port goes dark, then SIGKILL. */
static void node_kill(struct bgp_e2e *e, int i)
{
	struct node *n = &e->n[i];

	fg_sh("ip -n %s link set %sp%d down", e->ns_r, e->t, i + 1);
	e2e_stop_child(&n->agent, SIGKILL, 2000);
	e2e_stop_child(&n->bird, SIGKILL, 2000);
}

/* A node that is not running (killed, drained) back: port up, BIRD,
 * agent. */
static int node_restart(struct bgp_e2e *e, int i)
{
	struct node *n = &e->n[i];
	int err = 0;

	fg_sh("ip -n %s link set %sp%d up", e->ns_r, e->t, i + 1);
	if (n->bird <= 0)
		err = bird_start(e, n->ns, n->bird_conf, n->bird_sock, n->bird_log, &n->bird);
	if (!err && !node_alive(n)) {
		n->agent = 0;
		err = agent_start(e, i);
	}
	return err;
}

/* fleetgatectl get mseingressconfig on node i: the REPLICAS cell. */
static void replicas(struct bgp_e2e *e, int i, char *buf, size_t len)
{
	char *out, *line, name[64] = "", status[32] = "", reps[32] = "";
	int st;

	buf[0] = '\0';
	out = e2e_capture(&st, true, "%s -p /sys/fs/bpf/%s get mseingressconfig " GATEWAY " 2>&1",
			  e->ctl_bin, e->n[i].pin + strlen("/sys/fs/bpf/"));
	line = out ? strstr(out, "\n" GATEWAY) : NULL;
	if (line && sscanf(line + 1, "%63s %31s %31s", name, status, reps) == 3)
		snprintf(buf, len, "%s", reps);
	free(out);
}

static long wait_replicas(struct bgp_e2e *e, int i, const char *want, unsigned timeout_ms)
{
	long long t0 = e2e_now_ms();
	char got[32];

	for (;;) {
		replicas(e, i, got, sizeof(got));
		if (!strcmp(got, want))
			return (long)(e2e_now_ms() - t0);
		if (e2e_now_ms() - t0 > timeout_ms)
			break;
		e2e_sleep_ms(100);
	}
	printf("e2e: gw%d: REPLICAS %s, wanted %s\n", i + 1, got, want);
	return -1;
}

/* ------------------------------------------------------------------ */
/* the fleet                                                           */
/* ------------------------------------------------------------------ */

static int api_apply(struct bgp_e2e *e, const char *cluster, const char *yaml_json)
{
	char path[PATH_MAX];
	int st;

	snprintf(path, sizeof(path), "%s/obj.json", e->dir);
	if (write_text(path, yaml_json))
		return -EIO;
	st = fg_sh("ip netns exec %s curl -sf -XPOST '%s/_test/apply?cluster=%s' "
		   "--data-binary @%s >/dev/null", e->ns_r, e->api_base, cluster, path);
	return st ? -EIO : 0;
}

static int fleet_setup(struct bgp_e2e *e)
{
	static const char *const ids[2] = { CL1, CL2 };
	char buf[4096], eps[2048];
	int k, h, err = 0;

	snprintf(buf, sizeof(buf),
		 "{\"apiVersion\":\"mse.alibabacloud.com/v1alpha1\",\"kind\":\"MseIngressConfig\","
		 "\"metadata\":{\"name\":\"" GATEWAY "\",\"annotations\":{"
		 "\"mse.alibabacloud.com/remote-clusters\":\"" CL1 "," CL2 "\"}},"
		 "\"spec\":{\"common\":{\"instance\":{\"replicas\":3,\"spec\":\"2c4g\"}},"
		 "\"ingress\":{\"local\":{\"ingressClass\":\"mse\"}},\"name\":\"mse-ingress\"}}");
	err = err ?: api_apply(e, "", buf);
	err = err ?: api_apply(e, "",
		"{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"Ingress\",\"metadata\":"
		"{\"name\":\"web-demo\",\"namespace\":\"web-demo\"},\"spec\":{\"ingressClassName\":"
		"\"mse\",\"rules\":[{\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\","
		"\"backend\":{\"service\":{\"name\":\"web\",\"port\":{\"number\":80}}}}]}}]}}");
	err = err ?: api_apply(e, "",
		"{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"tcp-echo\","
		"\"namespace\":\"web-demo\"},\"spec\":{\"type\":\"LoadBalancer\",\"ports\":[{\"name\":"
		"\"tcp\",\"protocol\":\"TCP\",\"port\":7000}]}}");
	for (k = 0; k < 2 && !err; k++) {
		static const char *const svc[2][3] = { { "web", "http", "80" },
						       { "tcp-echo", "tcp", "7000" } };
		int s;

		for (s = 0; s < 2 && !err; s++) {
			size_t off = 0;

			snprintf(buf, sizeof(buf),
				 "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":"
				 "\"%s\",\"namespace\":\"web-demo\"},\"spec\":{\"type\":\"ClusterIP\","
				 "\"selector\":{\"app\":\"%s\"},\"ports\":[{\"name\":\"%s\",\"protocol\":"
				 "\"TCP\",\"port\":%s,\"targetPort\":%d}]}}",
				 svc[s][0], svc[s][0], svc[s][1], svc[s][2], s ? POD_TCP : POD_HTTP);
			err = api_apply(e, ids[k], buf);
			eps[0] = '\0';
			for (h = 0; h < (k == 0 ? 2 : 1); h++)
				off += snprintf(eps + off, sizeof(eps) - off,
						"%s{\"addresses\":[\"10.%d.%d.%d\"],\"conditions\":"
						"{\"ready\":true,\"serving\":true,\"terminating\":false},"
						"\"targetRef\":{\"kind\":\"Pod\",\"name\":\"%s-%d-%d\","
						"\"namespace\":\"web-demo\"}}",
						h ? "," : "", e->o, 100 + k + 1, 2 + h, svc[s][0], k, h);
			snprintf(buf, sizeof(buf),
				 "{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\","
				 "\"metadata\":{\"name\":\"%s-k%d\",\"namespace\":\"web-demo\",\"labels\":"
				 "{\"kubernetes.io/service-name\":\"%s\"}},\"addressType\":\"IPv4\","
				 "\"ports\":[{\"name\":\"%s\",\"protocol\":\"TCP\",\"port\":%d}],"
				 "\"endpoints\":[%s]}",
				 svc[s][0], k, svc[s][0], svc[s][1], s ? POD_TCP : POD_HTTP, eps);
			err = err ?: api_apply(e, ids[k], buf);
		}
	}
	return err;
}

static int write_kubeconfigs(struct bgp_e2e *e)
{
	char url[128];
	int err;

	err = kubectl_write_kubeconfig(e->kc_fleet, e->api_base, NULL);
	snprintf(url, sizeof(url), "%s/clusters/" CL1, e->api_base);
	err = err ?: kubectl_write_kubeconfig(e->kc_k[0], url, NULL);
	snprintf(url, sizeof(url), "%s/clusters/" CL2, e->api_base);
	err = err ?: kubectl_write_kubeconfig(e->kc_k[1], url, NULL);
	return err;
}

static int api_start(struct bgp_e2e *e)
{
	char script[PATH_MAX], portfile[PATH_MAX], log[PATH_MAX], bind[32];
	char *argv[] = { "ip", "netns", "exec", e->ns_r, "python3", script, "--bind", bind,
			 "--port-file", portfile, "--bookmark-interval", "1", NULL };
	long long deadline = e2e_now_ms() + 10000;
	FILE *f;

	snprintf(script, sizeof(script), "%s/../kube/apiserver.py", e->scripts);
	snprintf(portfile, sizeof(portfile), "%s/api.port", e->dir);
	snprintf(log, sizeof(log), "%s/apiserver.log", e->dir);
	snprintf(bind, sizeof(bind), "10.%d.1.1", e->o);
	e->api = e2e_spawn(log, NULL, argv);
	if (e->api < 0) {
		e->api = 0;
		return -errno;
	}
	while (e2e_now_ms() < deadline) {
		int port = 0;

		f = fopen(portfile, "r");
		if (f) {
			if (fscanf(f, "%d", &port) == 1 && port > 0) {
				fclose(f);
				snprintf(e->api_base, sizeof(e->api_base), "http://10.%d.1.1:%d", e->o,
					 port);
				return 0;
			}
			fclose(f);
		}
		e2e_sleep_ms(20);
	}
	show_file("apiserver", log, 0);
	return -ETIMEDOUT;
}

/* ------------------------------------------------------------------ */
/* topology                                                            */
/* ------------------------------------------------------------------ */

static int topo_setup(struct bgp_e2e *e)
{
	const char *t = e->t;
	int o = e->o, i, k;

	if (fg_sh("ip netns add %s && ip -n %s link set lo up", e->ns_r, e->ns_r))
		return -EIO;
	e->made_r = true;
	if (fg_sh("ip netns add %s && ip -n %s link set lo up", e->ns_cli, e->ns_cli))
		return -EIO;
	e->made_cli = true;
	for (k = 0; k < 2; k++) {
		if (fg_sh("ip netns add %s && ip -n %s link set lo up", e->ns_k[k], e->ns_k[k]))
			return -EIO;
		e->made_k[k] = true;
	}
	for (i = 0; i < NGW; i++) {
		if (fg_sh("ip netns add %s && ip -n %s link set lo up", e->n[i].ns, e->n[i].ns))
			return -EIO;
		e->n[i].made = true;
	}
	/* The router: client side, the bridge toward the nodes, ECMP on the
	 * L4 hash. */
	if (fg_sh("ip netns exec %s sysctl -qw net.ipv4.ip_forward=1 "
		  "net.ipv4.fib_multipath_hash_policy=1", e->ns_r) ||
	    fg_sh("ip link add %src netns %s type veth peer name %scr netns %s", t, e->ns_r, t,
		  e->ns_cli) ||
	    fg_sh("ip -n %s addr add 10.%d.0.1/24 dev %src && ip -n %s link set %src up", e->ns_r,
		  o, t, e->ns_r, t) ||
	    fg_sh("ip -n %s link add %sbr type bridge && ip -n %s addr add 10.%d.1.1/24 dev %sbr && "
		  "ip -n %s link set %sbr up", e->ns_r, t, e->ns_r, o, t, e->ns_r, t))
		return -EIO;
	/* The clients: ten addresses. */
	if (fg_sh("ip -n %s link set %scr up && ip -n %s addr add 10.%d.0.2/24 dev %scr",
		  e->ns_cli, t, e->ns_cli, o, t))
		return -EIO;
	for (i = 3; i < 2 + N_SRC; i++)
		if (fg_sh("ip -n %s addr add 10.%d.0.%d/24 dev %scr", e->ns_cli, o, i, t))
			return -EIO;
	if (fg_sh("ip -n %s route add default via 10.%d.0.1 && "
		  "ip netns exec %s ethtool -K %scr tx off tso off gso off gro on >/dev/null",
		  e->ns_cli, o, e->ns_cli, t))
		return -EIO;
	/* The pods. */
	for (k = 0; k < 2; k++)
		for (i = 0; i < (k == 0 ? 2 : 1); i++)
			if (fg_sh("ip -n %s addr add 10.%d.%d.%d/32 dev lo", e->ns_k[k], o, 101 + k,
				  2 + i))
				return -EIO;
	/* The nodes. */
	for (i = 0; i < NGW; i++) {
		const char *g = e->n[i].ns;

		if (fg_sh("ip link add %sg%du netns %s type veth peer name %sp%d netns %s", t, i + 1,
			  g, t, i + 1, e->ns_r) ||
		    fg_sh("ip -n %s link set %sp%d master %sbr up && "
			  "ip netns exec %s ethtool -K %sp%d gro on >/dev/null", e->ns_r, t, i + 1, t,
			  e->ns_r, t, i + 1) ||
		    fg_sh("ip -n %s addr add 10.%d.1.%d/24 dev %sg%du && ip -n %s link set %sg%du up && "
			  "ip -n %s addr add %s/32 dev lo && ip -n %s route add default via 10.%d.1.1",
			  g, o, 11 + i, t, i + 1, g, t, i + 1, g, e->vip, g, o))
			return -EIO;
		for (k = 0; k < 2; k++) {
			const char *c = e->ns_k[k];
			int net = 10 * (k + 1) + i + 1;

			if (fg_sh("ip link add %sg%dk%d netns %s type veth peer name %sk%dg%d netns %s",
				  t, i + 1, k + 1, g, t, k + 1, i + 1, c) ||
			    fg_sh("ip -n %s addr add 10.%d.%d.1/24 dev %sg%dk%d && "
				  "ip -n %s link set %sg%dk%d up && "
				  "ip -n %s route add 10.%d.%d.0/24 via 10.%d.%d.2", g, o, net, t, i + 1,
				  k + 1, g, t, i + 1, k + 1, g, o, 101 + k, o, net) ||
			    fg_sh("ip -n %s addr add 10.%d.%d.2/24 dev %sk%dg%d && "
				  "ip -n %s link set %sk%dg%d up && ip netns exec %s ethtool -K "
				  "%sk%dg%d tx off tso off gso off gro on >/dev/null", c, o, net, t,
				  k + 1, i + 1, c, t, k + 1, i + 1, c, t, k + 1, i + 1))
				return -EIO;
		}
	}
	return 0;
}

static int bird_configs(struct bgp_e2e *e)
{
	char buf[4096];
	size_t off;
	int i, err;

	/* The router: what docs/operations.md shows, in a test's clothes. */
	off = snprintf(buf, sizeof(buf),
		"router id 10.%d.1.1;\n"
		"log \"%s/router-bird.msgs\" all;\n"
		"protocol device {}\n"
		"protocol bfd { interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; "
		"multiplier 3; }; }\n"
		"protocol kernel {\n\tkernel table 100;\n\tmerge paths on;\n"
		"\tipv4 { import none; export where source = RTS_BGP; };\n}\n"
		"template bgp fleetgate_node {\n\tlocal 10.%d.1.1 as 65000;\n"
		"\tipv4 { import where net = %s/32; export none; };\n"
		"\tbfd on;\n\tconnect delay time 1;\n\tconnect retry time 1;\n\terror wait time 1, 5;\n"
		"\tgraceful restart off;\n\tlong lived graceful restart off;\n}\n",
		e->o, e->dir, e->o, e->vip);
	for (i = 0; i < NGW; i++)
		off += snprintf(buf + off, sizeof(buf) - off,
				"protocol bgp gw%d from fleetgate_node { neighbor 10.%d.1.%d as 65010; }\n",
				i + 1, e->o, 11 + i);
	err = write_text(e->rbird_conf, buf);
	for (i = 0; i < NGW && !err; i++) {
		snprintf(buf, sizeof(buf),
			 "router id 10.%d.1.%d;\n"
			 "log \"%s/bird.msgs\" all;\n"
			 "protocol device {}\n"
			 "protocol bfd { interface \"*\" { min rx interval 100 ms; "
			 "min tx interval 100 ms; multiplier 3; }; }\n"
			 "include \"%s/bird.d/*.conf\";\n"
			 "protocol bgp uplink {\n\tlocal 10.%d.1.%d as 65010;\n"
			 "\tneighbor 10.%d.1.1 as 65000;\n"
			 "\tipv4 { import none; export where proto = \"fleetgate_vip4\"; };\n"
			 "\tbfd on;\n\tconnect delay time 1;\n\tconnect retry time 1;\n\terror wait time 1, 5;\n"
			 "\tgraceful restart off;\n\tlong lived graceful restart off;\n}\n",
			 e->o, 11 + i, e->n[i].dir, e->n[i].dir, e->o, 11 + i, e->o);
		err = fg_sh("mkdir -p %s/bird.d", e->n[i].dir) ? -EIO : 0;
		err = err ?: write_text(e->n[i].bird_conf, buf);
		err = err ?: (fg_sh("bird -p -c %s", e->n[i].bird_conf) ? -EINVAL : 0);
	}
	err = err ?: (fg_sh("bird -p -c %s", e->rbird_conf) ? -EINVAL : 0);
	return err;
}

static int pod_start(struct bgp_e2e *e, struct pod *p)
{
	char script[PATH_MAX], addr[32], ready[PATH_MAX], log[PATH_MAX], tcp[8], http[8];
	char *argv[] = { "ip", "netns", "exec", e->ns_k[p->cluster - 1], "python3", script,
			 (char *)p->name, addr, "--tcp", tcp, "--http", http, "--ready", ready, NULL };

	snprintf(script, sizeof(script), "%s/bgp_pod.py", e->scripts);
	snprintf(addr, sizeof(addr), "10.%d.%d.%d", e->o, 100 + p->cluster, p->host);
	snprintf(ready, sizeof(ready), "%s/%s.ready", e->dir, p->name);
	snprintf(log, sizeof(log), "%s/%s.log", e->dir, p->name);
	snprintf(tcp, sizeof(tcp), "%d", POD_TCP);
	snprintf(http, sizeof(http), "%d", POD_HTTP);
	p->pid = e2e_spawn(log, NULL, argv);
	if (p->pid < 0) {
		p->pid = 0;
		return -errno;
	}
	return wait_file(ready, 5000) ? 0 : -ETIMEDOUT;
}

static int find_paths(struct bgp_e2e *e)
{
	char exe[PATH_MAX - 128], *slash;
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
	snprintf(e->ctl_bin, sizeof(e->ctl_bin), "%s/fleetgatectl", exe);
	snprintf(e->scripts, sizeof(e->scripts), "%s/../selftests/e2e", exe);
	if (access(e->agent_bin, X_OK) || access(e->ctl_bin, X_OK) || access(e->scripts, R_OK))
		return -ENOENT;
	return 0;
}

/* ------------------------------------------------------------------ */
/* clients                                                             */
/* ------------------------------------------------------------------ */

static pid_t client_spawn(struct bgp_e2e *e, const char *log, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static pid_t client_spawn(struct bgp_e2e *e, const char *log, const char *fmt, ...)
{
	char script[PATH_MAX], args[1024], *argv[32], *save = NULL, *tok;
	int argc = 0;
	va_list ap;
	pid_t pid;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(script, sizeof(script), "%s/bgp_client.py", e->scripts);
	argv[argc++] = "ip";
	argv[argc++] = "netns";
	argv[argc++] = "exec";
	argv[argc++] = e->ns_cli;
	argv[argc++] = "python3";
	argv[argc++] = script;
	for (tok = strtok_r(args, " ", &save); tok && argc < 31; tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;
	pid = e2e_spawn(log, NULL, argv);
	return pid < 0 ? 0 : pid;
}

/* Runs a client to its end (spread); its JSON output, or NULL. */
static json_t *client_run(struct bgp_e2e *e, const char *mode_args, const char *out,
			  unsigned timeout_ms)
{
	char log[PATH_MAX];
	pid_t pid;
	int st;

	snprintf(log, sizeof(log), "%s/client.log", e->dir);
	unlink(out);
	pid = client_spawn(e, log, "%s --out %s", mode_args, out);
	if (pid <= 0)
		return NULL;
	if (!e2e_reap(pid, &st, timeout_ms)) {
		e2e_stop_child(&pid, SIGKILL, 1000);
		show_file("client", log, 0);
		return NULL;
	}
	return load_json(out);
}

struct probe_result {
	int attempts, failed;
	long gap_ms;     /* kill -> the first attempt after which all succeed */
	long first_fail, last_fail; /* ms after the kill */
};

static void probe_analyse(const char *path, long long t_kill, struct probe_result *r)
{
	json_t *doc = load_json(path), *a;
	long long last_fail_start = 0, first_ok_after = 0;
	size_t i;

	memset(r, 0, sizeof(*r));
	r->first_fail = -1;
	json_array_foreach(json_object_get(doc, "attempts"), i, a) {
		long long start = json_integer_value(json_array_get(a, 0));
		bool ok = json_is_true(json_array_get(a, 2));

		if (start < t_kill - 50)
			continue;
		r->attempts++;
		if (!ok) {
			r->failed++;
			if (r->first_fail < 0)
				r->first_fail = (long)(start - t_kill);
			if (start > last_fail_start)
				last_fail_start = start;
		}
	}
	/* The first attempt started after the last failing one began: from
	 * there on every new connection succeeds. */
	json_array_foreach(json_object_get(doc, "attempts"), i, a) {
		long long start = json_integer_value(json_array_get(a, 0));

		if (json_is_true(json_array_get(a, 2)) && start > last_fail_start &&
		    (!first_ok_after || start < first_ok_after))
			first_ok_after = start;
	}
	r->last_fail = r->failed ? (long)(last_fail_start - t_kill) : -1;
	r->gap_ms = r->failed ? (long)(first_ok_after - t_kill) : 0;
	json_decref(doc);
}

/* ------------------------------------------------------------------ */
/* subtests                                                            */
/* ------------------------------------------------------------------ */

/* Every node running and announced, the router in the mode wanted. */
static bool baseline(struct bgp_e2e *e, bool resilient)
{
	int i;

	for (i = 0; i < NGW; i++) {
		char tag[32];

		fg_sh("ip -n %s route replace 10.%d.101.0/24 via 10.%d.%d.2 && "
		      "ip -n %s route replace 10.%d.102.0/24 via 10.%d.%d.2", e->n[i].ns, e->o,
		      e->o, 11 + i, e->n[i].ns, e->o, e->o, 21 + i);
		snprintf(tag, sizeof(tag), "gw%d running", i + 1);
		if (!ASSERT_OK(node_restart(e, i), tag))
			return false;
	}
	if (!ASSERT_GE(wait_learned(e, ALL, 15000), 0, "router learned all three nodes"))
		return false;
	if (resilient != e->resilient && !ASSERT_TRUE(set_mode(e, resilient), "router mode"))
		return false;
	if (resilient && !ASSERT_GE(wait_group(e, ALL, 8000), 0, "resilient group of three"))
		return false;
	return true;
}

static void subtest_announce(struct bgp_e2e *e)
{
	char rep[32];
	long ms;
	int i;

	ms = wait_learned(e, ALL, 20000);
	printf("e2e: the router learned the VIP from all three nodes (%ld ms after the last agent "
	       "was ready)\n", ms);
	if (!ASSERT_GE(ms, 0, "three next hops"))
		return;
	free(e2e_capture(&i, false, "ip -n %s route show table 100; birdc -s %s show protocols; "
			 "birdc -s %s show bfd sessions", e->ns_r, e->rbird_sock, e->rbird_sock));
	for (i = 0; i < NGW; i++) {
		char tag[64];

		snprintf(tag, sizeof(tag), "gw%d logged the announcement", i + 1);
		ASSERT_TRUE(log_has(e->n[i].agent_log, e->n[i].log_off, "bgp: announcing the VIPs"),
			    tag);
		snprintf(tag, sizeof(tag), "gw%d REPLICAS 3/3", i + 1);
		ASSERT_GE(wait_replicas(e, i, "3/3", 8000), 0, tag);
	}
	replicas(e, 0, rep, sizeof(rep));
	free(e2e_capture(&i, false, "%s -p /sys/fs/bpf/%s get mseingressconfig", e->ctl_bin,
			 e->n[0].pin + strlen("/sys/fs/bpf/")));
}

static void subtest_kubectl_status(struct bgp_e2e *e)
{
	char version[160] = "", kc[PATH_MAX], cache[PATH_MAX], *out, *row;
	long long t0 = e2e_now_ms();
	int st;

	if (!baseline(e, false))
		return;
	e->kubectl = kubectl_find(version, sizeof(version));
	if (!e->kubectl) {
		test__skip("no kubectl (Debian package kubernetes-client; make deps)");
		return;
	}
	printf("e2e: kubectl %s: %s\n", e->kubectl, version);
	snprintf(kc, sizeof(kc), "%s", e->kc_fleet);
	snprintf(cache, sizeof(cache), "%s/kubectl-cache", e->dir);
	for (;;) {
		out = e2e_capture(&st, true, "ip netns exec %s %s --kubeconfig %s --cache-dir %s get "
				  "ingress -n web-demo web-demo -o jsonpath='{.status.loadBalancer."
				  "ingress[*].ip}' 2>&1", e->ns_r, e->kubectl, kc, cache);
		if ((out && !strcmp(out, e->vip)) || e2e_now_ms() - t0 > 8000)
			break;
		free(out);
		e2e_sleep_ms(200);
	}
	ASSERT_STREQ(out ? out : "", e->vip, "kubectl: the Ingress's status.loadBalancer");
	free(out);
	out = e2e_capture(&st, false, "ip netns exec %s %s --kubeconfig %s --cache-dir %s get ingress "
			  "-n web-demo 2>&1", e->ns_r, e->kubectl, kc, cache);
	ASSERT_EQ(st, 0, "kubectl get ingress");
	row = out ? strstr(out, "\nweb-demo ") : NULL;
	if (ASSERT_OK_PTR(out ? strstr(out, "ADDRESS") : NULL, "ADDRESS column") &&
	    ASSERT_OK_PTR(row, "the Ingress's row"))
		ASSERT_OK_PTR(strstr(row, e->vip), "kubectl get ingress shows the VIP as ADDRESS");
	free(out);
	out = e2e_capture(&st, false, "ip netns exec %s %s --kubeconfig %s --cache-dir %s get "
			  "mseingressconfig " GATEWAY " -o jsonpath='{.status.status} "
			  "{.status.remoteClusters[*].clusterId}' 2>&1", e->ns_r, e->kubectl, kc,
			  cache);
	ASSERT_STREQ(out ? out : "", "Listening " CL1 " " CL2,
		     "kubectl: the MseIngressConfig's status");
	free(out);
	out = e2e_capture(&st, false, "ip netns exec %s %s --kubeconfig %s --cache-dir %s get svc "
			  "-n web-demo tcp-echo 2>&1", e->ns_r, e->kubectl, kc, cache);
	ASSERT_OK_PTR(out ? strstr(out, e->vip) : NULL, "kubectl get svc: EXTERNAL-IP");
	free(out);
	out = e2e_capture(&st, false, "ip netns exec %s %s --kubeconfig %s --cache-dir %s get leases "
			  "-n " LEASE_NS " 2>&1", e->ns_r, e->kubectl, kc, cache);
	ASSERT_OK_PTR(out ? strstr(out, "fleetgate-node-gw3") : NULL, "the nodes' Leases");
	ASSERT_OK_PTR(out ? strstr(out, "fleetgate-status-writer") : NULL, "the writer's Lease");
	free(out);
}

static void subtest_spread(struct bgp_e2e *e)
{
	char out[PATH_MAX], args[512];
	int count[NGW] = {}, total = 0, i;
	const char *peer;
	json_t *doc, *v;

	if (!baseline(e, false))
		return;
	snprintf(out, sizeof(out), "%s/spread.json", e->dir);
	snprintf(args, sizeof(args), "spread %s %d 3000 --src %s", e->vip, L4_PORT, e->src);
	doc = client_run(e, args, out, 60000);
	if (!ASSERT_OK_PTR(doc, "3,000 new connections"))
		return;
	json_object_foreach(json_object_get(doc, "by_peer"), peer, v) {
		i = peer_node(peer);
		if (i >= 0)
			count[i] += (int)json_integer_value(v);
		total += (int)json_integer_value(v);
	}
	printf("e2e: 3,000 new L4 connections from %d client addresses: gw1 %d (%.1f%%), "
	       "gw2 %d (%.1f%%), gw3 %d (%.1f%%), errors %lld\n", N_SRC,
	       count[0], 100.0 * count[0] / 3000, count[1], 100.0 * count[1] / 3000,
	       count[2], 100.0 * count[2] / 3000,
	       (long long)json_integer_value(json_object_get(doc, "errors")));
	ASSERT_EQ(json_integer_value(json_object_get(doc, "errors")), 0, "no errors");
	ASSERT_EQ(total, 3000, "every connection answered");
	for (i = 0; i < NGW; i++) {
		char tag[64];

		snprintf(tag, sizeof(tag), "gw%d carries at least 20%%", i + 1);
		ASSERT_GE(count[i] * 100, 20 * 3000, tag);
		snprintf(tag, sizeof(tag), "gw%d carries at most 47%%", i + 1);
		ASSERT_LE(count[i] * 100, 47 * 3000, tag);
	}
	json_decref(doc);
}

/* Starts 60 long-lived L4 flows; waits until all are up. */
static pid_t flows_start(struct bgp_e2e *e, const char *status)
{
	char log[PATH_MAX];
	long long deadline = e2e_now_ms() + 8000;
	pid_t pid;

	snprintf(log, sizeof(log), "%s/flows.log", e->dir);
	unlink(status);
	pid = client_spawn(e, log, "flows %s %d 60 --src %s --status %s", e->vip, L4_PORT, e->src,
			   status);
	while (pid > 0 && e2e_now_ms() < deadline) {
		json_t *doc = load_json(status);
		size_t n = json_array_size(json_object_get(doc, "flows"));

		json_decref(doc);
		if (n == 60)
			return pid;
		e2e_sleep_ms(50);
	}
	show_file("flows", log, 0);
	e2e_stop_child(&pid, SIGKILL, 1000);
	return 0;
}

/* Of the flows: how many were on node dead and on the others, and how
 * many of each broke. */
static void flows_count(const char *status, int dead, int on[2], int broke[2])
{
	json_t *doc = load_json(status), *f;
	size_t i;

	on[0] = on[1] = broke[0] = broke[1] = 0;
	json_array_foreach(json_object_get(doc, "flows"), i, f) {
		int k = peer_node(json_string_value(json_object_get(f, "peer")) ?: "") == dead ? 0 : 1;

		on[k]++;
		if (!json_is_true(json_object_get(f, "ok")))
			broke[k]++;
	}
	json_decref(doc);
}

static void kill_node(struct bgp_e2e *e, int victim, bool resilient)
{
	char status[PATH_MAX], probe_out[PATH_MAX], log[PATH_MAX], tag[96];
	struct probe_result r;
	long long t_kill;
	pid_t flows = 0, probe = 0;
	int on[2], broke[2], i;
	bool want[NGW];
	long ms;

	if (!baseline(e, resilient))
		return;
	snprintf(status, sizeof(status), "%s/flows.json", e->dir);
	snprintf(probe_out, sizeof(probe_out), "%s/probe.json", e->dir);
	snprintf(log, sizeof(log), "%s/probe.log", e->dir);
	flows = flows_start(e, status);
	if (!ASSERT_GT(flows, 0, "60 long-lived flows"))
		return;
	unlink(probe_out);
	probe = client_spawn(e, log, "probe %s %d --src %s --out %s", e->vip, L4_PORT, e->src,
			     probe_out);
	if (!ASSERT_GT(probe, 0, "probe started"))
		goto out;
	e2e_sleep_ms(700);

	t_kill = e2e_now_ms();
	node_kill(e, victim);
	want_all_but(want, victim);
	ms = wait_learned(e, want, 3000);
	printf("e2e: gw%d died: the router (BFD) withdrew it after %ld ms\n", victim + 1, ms);
	ASSERT_GE(ms, 0, "the router withdrew the dead node");
	ASSERT_LT(ms, 1000, "withdrawn in under 1 s");
	if (resilient) {
		ms = wait_group(e, want, 3000);
		ASSERT_GE(ms, 0, "the resilient group without it");
	}
	e2e_sleep_ms(1500);
	e2e_stop_child(&probe, SIGTERM, 5000);
	if (!ASSERT_TRUE(wait_file(probe_out, 3000), "probe results"))
		goto out;
	probe_analyse(probe_out, t_kill, &r);
	printf("e2e: %s: new connections succeed again %ld ms after the kill (%d of %d attempts "
	       "failed, the first at +%ld ms, the last at +%ld ms)\n",
	       resilient ? "resilient" : "plain multipath", r.gap_ms, r.failed, r.attempts,
	       r.first_fail, r.last_fail);
	ASSERT_GT(r.attempts, 100, "probe attempts after the kill");
	ASSERT_LT(r.gap_ms, 1000, "new connections succeed again within 1 s");

	flows_count(status, victim, on, broke);
	printf("e2e: %s: long-lived flows: %d on the dead node (%d broke: full NAT, their state "
	       "died with it), %d on the survivors, %d of them broke (moved to another node)\n",
	       resilient ? "resilient" : "plain multipath", on[0], broke[0], on[1], broke[1]);
	if (resilient)
		ASSERT_EQ(broke[1], 0, "resilient hashing: no flow on a surviving node moved");
	ASSERT_EQ(on[0] + on[1], 60, "every flow had a node");

	/* Its Lease stops being renewed: the others count 2/3. */
	for (i = 0; i < NGW; i++) {
		if (i == victim)
			continue;
		snprintf(tag, sizeof(tag), "gw%d REPLICAS 2/3 after the kill", i + 1);
		ms = wait_replicas(e, i, "2/3", LEASE_S * 1000 + 4000);
		printf("e2e: gw%d shows REPLICAS 2/3 %ld ms later\n", i + 1, ms);
		ASSERT_GE(ms, 0, tag);
	}

	/* Back: it announces only when ready, and everyone counts 3/3. */
	{
		long long t0 = e2e_now_ms();
		bool saw_early = false, have[NGW];

		fg_sh("ip -n %s link set %sp%d up", e->ns_r, e->t, victim + 1);
		if (!ASSERT_OK(bird_start(e, e->n[victim].ns, e->n[victim].bird_conf,
					  e->n[victim].bird_sock, e->n[victim].bird_log,
					  &e->n[victim].bird), "BIRD restarted"))
			goto out;
		if (!ASSERT_OK(agent_start(e, victim), "agent restarted"))
			goto out;
		for (;;) {
			learned(e, have);
			if (have[victim]) {
				saw_early = !log_has(e->n[victim].agent_log, e->n[victim].log_off,
						     "bgp: announcing the VIPs");
				break;
			}
			if (e2e_now_ms() - t0 > 15000)
				break;
			e2e_sleep_ms(10);
		}
		printf("e2e: gw%d restarted: announced again %lld ms after its restart\n",
		       victim + 1, e2e_now_ms() - t0);
		ASSERT_TRUE(have[victim], "the restarted node is announced again");
		ASSERT_FALSE(saw_early, "not before its agent said it was ready");
		for (i = 0; i < NGW; i++) {
			snprintf(tag, sizeof(tag), "gw%d REPLICAS 3/3 after the restart", i + 1);
			ASSERT_GE(wait_replicas(e, i, "3/3", 8000), 0, tag);
		}
	}
out:
	e2e_stop_child(&probe, SIGKILL, 2000);
	e2e_stop_child(&flows, SIGTERM, 3000);
}

static void subtest_kill_plain(struct bgp_e2e *e)
{
	kill_node(e, 2, false);
}

static void subtest_kill_resilient(struct bgp_e2e *e)
{
	kill_node(e, 0, true);
}

static void subtest_drain_l7(struct bgp_e2e *e)
{
	char out[PATH_MAX], log[PATH_MAX];
	struct node *n = &e->n[1];
	long long t_term;
	bool want[NGW];
	json_t *doc;
	pid_t load = 0;
	int st, rc;
	long ms;

	if (!baseline(e, true))
		return;
	snprintf(out, sizeof(out), "%s/l7.json", e->dir);
	snprintf(log, sizeof(log), "%s/l7.log", e->dir);
	unlink(out);
	load = client_spawn(e, log, "l7 %s %d --src %s --out %s --keepalive 6 --new 3", e->vip,
			    HTTP_PORT, e->src, out);
	if (!ASSERT_GT(load, 0, "L7 load started"))
		return;
	e2e_sleep_ms(1500);

	/* SIGTERM: withdraw, drain, exit. */
	t_term = e2e_now_ms();
	kill(n->agent, SIGTERM);
	want_all_but(want, 1);
	ms = wait_learned(e, want, 3000);
	printf("e2e: gw2 got SIGTERM: the router dropped it after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "withdrawn on SIGTERM");
	ASSERT_GE(wait_replicas(e, 0, "2/3", 4000), 0, "gw1 REPLICAS 2/3 while gw2 drains");
	if (e2e_reap(n->agent, &st, (DRAIN_S + 5) * 1000)) {
		n->agent = 0;
		rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		printf("e2e: gw2 exited %lld ms after SIGTERM (status %d)\n", e2e_now_ms() - t_term,
		       rc);
		ASSERT_EQ(rc, 0, "drained agent's exit status");
	} else {
		ASSERT_TRUE(false, "the drained agent exits");
	}
	ASSERT_TRUE(log_has(n->agent_log, n->log_off, "bgp: withdrew the VIPs: draining"),
		    "logged the withdrawal");
	ASSERT_TRUE(log_has(n->agent_log, n->log_off, "ha: drained"), "logged the drain's end");
	e2e_sleep_ms(500);

	/* Restarted: ready, then announced; the load never stopped. */
	if (ASSERT_OK(agent_start(e, 1), "gw2 restarted"))
		ASSERT_GE(wait_learned(e, ALL, 15000), 0, "gw2 announced again");
	e2e_sleep_ms(1500);
	e2e_stop_child(&load, SIGTERM, 10000);
	doc = load_json(out);
	if (!ASSERT_OK_PTR(doc, "L7 results")) {
		show_file("l7 client", log, 0);
		return;
	}
	printf("e2e: L7 under SIGTERM and restart of gw2: %lld requests, %lld failed, %lld sent "
	       "again on a new connection after their kept-alive one failed before any response "
	       "byte (RFC 9112 9.3.1) %s, by node %s\n",
	       (long long)json_integer_value(json_object_get(doc, "total")),
	       (long long)json_integer_value(json_object_get(doc, "failed")),
	       (long long)json_integer_value(json_object_get(doc, "retried")),
	       json_dumps(json_object_get(doc, "retry_kinds"), JSON_COMPACT),
	       json_dumps(json_object_get(doc, "by_peer"), JSON_COMPACT));
	if (json_integer_value(json_object_get(doc, "failed")))
		printf("e2e: failures: %s %s\n",
		       json_dumps(json_object_get(doc, "fail_kinds"), JSON_COMPACT),
		       json_dumps(json_object_get(doc, "failures"), JSON_COMPACT));
	ASSERT_GT(json_integer_value(json_object_get(doc, "total")), 500, "requests made");
	ASSERT_EQ(json_integer_value(json_object_get(doc, "failed")), 0, "0 failed requests");
	json_decref(doc);
}

static void subtest_unhealthy_withdraws(struct bgp_e2e *e)
{
	struct node *n = &e->n[2];
	char out[PATH_MAX], args[512];
	json_t *doc, *v;
	const char *peer;
	bool want[NGW];
	int via_dead = 0;
	long ms;

	if (!baseline(e, false))
		return;
	/* gw3 loses both clusters (its links to them lead nowhere). */
	fg_sh("ip -n %s route replace unreachable 10.%d.101.0/24 && "
	      "ip -n %s route replace unreachable 10.%d.102.0/24", n->ns, e->o, n->ns, e->o);
	want_all_but(want, 2);
	ms = wait_learned(e, want, 5000);
	printf("e2e: gw3's clusters unreachable: withdrawn after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "a node without a healthy cluster withdraws");
	ASSERT_TRUE(log_has(n->agent_log, n->log_off, "withdrew the VIPs: no healthy cluster"),
		    "gw3 logged why");
	ASSERT_GE(wait_replicas(e, 0, "2/3", 4000), 0, "gw1 REPLICAS 2/3");
	snprintf(out, sizeof(out), "%s/spread-unhealthy.json", e->dir);
	snprintf(args, sizeof(args), "spread %s %d 300 --src %s", e->vip, L4_PORT, e->src);
	doc = client_run(e, args, out, 30000);
	if (ASSERT_OK_PTR(doc, "300 new connections")) {
		json_object_foreach(json_object_get(doc, "by_peer"), peer, v)
			if (peer_node(peer) == 2)
				via_dead += (int)json_integer_value(v);
		printf("e2e: 300 new connections: %s, errors %lld\n",
		       json_dumps(json_object_get(doc, "by_peer"), JSON_COMPACT),
		       (long long)json_integer_value(json_object_get(doc, "errors")));
		ASSERT_EQ(json_integer_value(json_object_get(doc, "errors")), 0, "no errors");
		ASSERT_EQ(via_dead, 0, "none through the withdrawn node");
		json_decref(doc);
	}
	fg_sh("ip -n %s route replace 10.%d.101.0/24 via 10.%d.13.2 && "
	      "ip -n %s route replace 10.%d.102.0/24 via 10.%d.23.2", n->ns, e->o, e->o, n->ns,
	      e->o, e->o);
	ms = wait_learned(e, ALL, 8000);
	printf("e2e: gw3's clusters back: announced again after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "announced again once healthy");
}

static void subtest_own_check_withdraws(struct bgp_e2e *e)
{
	struct node *n = &e->n[0];
	bool want[NGW];
	long ms;

	if (!baseline(e, false))
		return;
	/* The VIP taken off the node: L7 could not be served there. */
	fg_sh("ip -n %s addr del %s/32 dev lo", n->ns, e->vip);
	want_all_but(want, 0);
	ms = wait_learned(e, want, 4000);
	printf("e2e: the VIP removed from gw1's lo: withdrawn after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "a node failing its own check withdraws");
	ASSERT_TRUE(log_has(n->agent_log, n->log_off, "is not an address of this node"),
		    "gw1 logged why");
	fg_sh("ip -n %s addr add %s/32 dev lo", n->ns, e->vip);
	ms = wait_learned(e, ALL, 5000);
	printf("e2e: the VIP back on gw1: announced again after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "announced again");
}

/* ------------------------------------------------------------------ */
/* setup and cleanup                                                   */
/* ------------------------------------------------------------------ */

static int bgp_setup(struct bgp_e2e *e)
{
	char script[PATH_MAX], log[PATH_MAX], prefix[48];
	int err, i;

	snprintf(e->t, sizeof(e->t), "%sb", test__prefix());
	e->o = 150 + getpid() % 50;
	snprintf(e->ns_r, sizeof(e->ns_r), "%sr", e->t);
	snprintf(e->ns_cli, sizeof(e->ns_cli), "%sc", e->t);
	snprintf(e->ns_k[0], sizeof(e->ns_k[0]), "%sk1", e->t);
	snprintf(e->ns_k[1], sizeof(e->ns_k[1]), "%sk2", e->t);
	snprintf(e->dir, sizeof(e->dir), "%s/bgp", test__tmpdir());
	snprintf(e->vip, sizeof(e->vip), "10.%d.9.1", e->o);
	snprintf(e->kc_fleet, sizeof(e->kc_fleet), "%s/fleet.kubeconfig", e->dir);
	snprintf(e->kc_k[0], sizeof(e->kc_k[0]), "%s/k1.kubeconfig", e->dir);
	snprintf(e->kc_k[1], sizeof(e->kc_k[1]), "%s/k2.kubeconfig", e->dir);
	snprintf(e->rbird_conf, sizeof(e->rbird_conf), "%s/router-bird.conf", e->dir);
	snprintf(e->rbird_sock, sizeof(e->rbird_sock), "%s/router-bird.ctl", e->dir);
	snprintf(e->rbird_log, sizeof(e->rbird_log), "%s/router-bird.log", e->dir);
	snprintf(e->sync_status, sizeof(e->sync_status), "%s/sync.json", e->dir);
	e->src[0] = '\0';
	for (i = 2; i < 2 + N_SRC; i++)
		snprintf(e->src + strlen(e->src), sizeof(e->src) - strlen(e->src), "%s10.%d.0.%d",
			 i > 2 ? "," : "", e->o, i);
	for (i = 0; i < NGW; i++) {
		struct node *n = &e->n[i];

		snprintf(n->ns, sizeof(n->ns), "%sg%d", e->t, i + 1);
		snprintf(n->dir, sizeof(n->dir), "%s/gw%d", e->dir, i + 1);
		snprintf(n->bird_conf, sizeof(n->bird_conf), "%s/bird.conf", n->dir);
		snprintf(n->bird_sock, sizeof(n->bird_sock), "%s/bird.ctl", n->dir);
		snprintf(n->bird_log, sizeof(n->bird_log), "%s/bird.log", n->dir);
		snprintf(n->inc, sizeof(n->inc), "%s/bird.d/fleetgate.conf", n->dir);
		snprintf(n->agent_log, sizeof(n->agent_log), "%s/agent.log", n->dir);
		snprintf(n->pin, sizeof(n->pin), "/sys/fs/bpf/%sg%d", e->t, i + 1);
		snprintf(n->sock, sizeof(n->sock), "/run/fleetgate/%sg%d.sock", e->t, i + 1);
	}
	printf("e2e: names %s*, addresses 10.%d.0.0/16, VIP %s\n", e->t, e->o, e->vip);
	if (!ASSERT_EQ(fg_sh("mkdir -p %s", e->dir), 0, "mkdir"))
		return -EIO;
	err = topo_setup(e);
	if (!ASSERT_OK(err, "topology"))
		return err;
	err = bird_configs(e);
	if (!ASSERT_OK(err, "BIRD configurations"))
		return err;
	err = bird_start(e, e->ns_r, e->rbird_conf, e->rbird_sock, e->rbird_log, &e->rbird);
	if (!ASSERT_OK(err, "router BIRD"))
		return err;
	snprintf(script, sizeof(script), "%s/resilient_sync.py", e->scripts);
	snprintf(log, sizeof(log), "%s/sync.log", e->dir);
	snprintf(prefix, sizeof(prefix), "%s/32", e->vip);
	{
		char *argv[] = { "ip", "netns", "exec", e->ns_r, "python3", script, "--prefix", prefix,
				 "--from-table", "100", "--to-table", "200", "--group-id", "900",
				 "--buckets", "48", "--idle-timer", "1", "--status", e->sync_status,
				 NULL };

		e->sync = e2e_spawn(log, NULL, argv);
		if (!ASSERT_GT(e->sync, 0, "resilient_sync.py"))
			return -ECHILD;
	}
	if (!ASSERT_TRUE(set_mode(e, false), "router mode"))
		return -EIO;
	err = api_start(e);
	if (!ASSERT_OK(err, "apiserver.py"))
		return err;
	err = write_kubeconfigs(e);
	err = err ?: fleet_setup(e);
	if (!ASSERT_OK(err, "the fleet's objects"))
		return err;
	e->pods[0] = (struct pod){ "c1-a", 1, 2 };
	e->pods[1] = (struct pod){ "c1-b", 1, 3 };
	e->pods[2] = (struct pod){ "c2-a", 2, 2 };
	for (i = 0; i < 3; i++) {
		err = pod_start(e, &e->pods[i]);
		if (!ASSERT_OK(err, e->pods[i].name))
			return err;
	}
	for (i = 0; i < NGW; i++) {
		char tag[32];

		snprintf(tag, sizeof(tag), "gw%d BIRD", i + 1);
		err = bird_start(e, e->n[i].ns, e->n[i].bird_conf, e->n[i].bird_sock,
				 e->n[i].bird_log, &e->n[i].bird);
		if (!ASSERT_OK(err, tag))
			return err;
	}
	for (i = 0; i < NGW; i++) {
		char tag[32];

		snprintf(tag, sizeof(tag), "gw%d agent", i + 1);
		err = agent_start(e, i);
		if (!ASSERT_OK(err, tag))
			return err;
	}
	return 0;
}

static void bgp_cleanup(struct bgp_e2e *e)
{
	int i;

	for (i = 0; i < NGW; i++) {
		if (e->n[i].agent > 0)
			e2e_stop_child(&e->n[i].agent, SIGKILL, 3000);
		if (e->n[i].agent_log[0]) /* shown only on failure or with -v */
			show_file("agent log", e->n[i].agent_log, 0);
		e2e_stop_child(&e->n[i].bird, SIGKILL, 2000);
	}
	e2e_stop_child(&e->rbird, SIGKILL, 2000);
	e2e_stop_child(&e->sync, SIGKILL, 2000);
	e2e_stop_child(&e->api, SIGKILL, 2000);
	for (i = 0; i < 3; i++)
		e2e_stop_child(&e->pods[i].pid, SIGKILL, 2000);
	if (e->t[0])
		fg_sh("rm -rf /sys/fs/bpf/%sg* /run/fleetgate/%sg*.sock", e->t, e->t);
	for (i = 0; i < NGW; i++)
		if (e->n[i].made)
			fg_sh("ip netns del %s", e->n[i].ns);
	for (i = 0; i < 2; i++)
		if (e->made_k[i])
			fg_sh("ip netns del %s", e->ns_k[i]);
	if (e->made_cli)
		fg_sh("ip netns del %s", e->ns_cli);
	if (e->made_r)
		fg_sh("ip netns del %s", e->ns_r);
}

FG_TEST(e2e_bgp)
{
	static struct bgp_e2e e;
	long long t0 = e2e_now_ms(), ts;

	memset(&e, 0, sizeof(e));
	if (geteuid() != 0) {
		test__skip("needs root");
		return;
	}
	if (fg_sh("ip netns list >/dev/null 2>&1") != 0) {
		test__skip("ip netns is not available");
		return;
	}
	if (fg_sh("command -v python3 >/dev/null && command -v nsenter >/dev/null && "
		  "command -v ethtool >/dev/null && command -v curl >/dev/null") != 0) {
		test__skip("needs python3, nsenter, ethtool and curl");
		return;
	}
	if (fg_sh("command -v bird >/dev/null && command -v birdc >/dev/null") != 0) {
		test__skip("BIRD 2 is not installed (Debian package bird2; make deps)");
		return;
	}
	if (access("/dev/net/tun", R_OK | W_OK)) {
		test__skip("no /dev/net/tun");
		return;
	}
	if (find_paths(&e)) {
		test__skip("fleetgate-agent, fleetgatectl or selftests/e2e not found");
		return;
	}
	if (bgp_setup(&e) == 0) {
		printf("e2e: setup took %lld ms\n", e2e_now_ms() - t0);
#define RUN(name)                                                                  \
		if (test__start_subtest(#name)) {                                  \
			ts = e2e_now_ms();                                             \
			subtest_##name(&e);                                        \
			printf("e2e: " #name " took %lld ms\n", e2e_now_ms() - ts);   \
		}
		RUN(announce)
		RUN(kubectl_status)
		RUN(spread)
		RUN(kill_plain)
		RUN(kill_resilient)
		RUN(drain_l7)
		RUN(unhealthy_withdraws)
		RUN(own_check_withdraws)
#undef RUN
	}
	bgp_cleanup(&e);
	printf("e2e: total %lld ms\n", e2e_now_ms() - t0);
}
