// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * End to end, L4: a real fleetgate-agent balancing real TCP connections
 * between two "clusters", all on veth pairs between network namespaces.
 *
 *        cli                   gw                    c1 / c2
 *   P"cg" 10.O.0.2  <->  P"gc" 10.O.0.1
 *                        P"g1" 10.O.1.1  <->  P"1g" 10.O.1.2, 10.O.1.3
 *                        P"g2" 10.O.2.1  <->  P"2g" 10.O.2.2
 *
 * P is test__prefix(), O a second octet derived from the pid (so parallel
 * runs stay apart even in their logs). The agent runs in the gw namespace
 * with XDP on its three interfaces and --listen 10.99.0.100:8080; its
 * config directory holds the fleet Service web-demo/web of type
 * LoadBalancer (port 80/TCP, balanced in XDP on 10.99.0.100:80) and, in
 * each member cluster ("c1..." and "c2..."), the Service web with one
 * EndpointSlice per server: cluster 1's 10.O.1.2:8080 and 10.O.1.3:8081,
 * cluster 2's 10.O.2.2:8080. The servers (selftests/e2e/tcp_server.py)
 * answer "This is env NAME ! ...", the client (selftests/e2e/tcp_client.py)
 * counts who answered. The test reads ids (service, backends, clusters,
 * listener counters) back from the pinned maps, as fleetgatectl does.
 *
 * The topology and the agent are set up once for all subtests; each
 * subtest sets the shares it needs (through which pods are ready), so any
 * of them can run alone.
 *
 * Everything runs twice, once per attach mode: e2e_l4 with --attach xdp
 * (native XDP on the gateway's veths; the client and cluster ends have
 * checksum offload, TSO and GSO off, as XDP_REDIRECT into a veth needs) and
 * e2e_l4_tc with --attach tc (tcx links; every veth keeps the kernel's
 * default offloads, so the program sees CHECKSUM_PARTIAL and GSO packets
 * from the client's and servers' stacks). The gateway's g1 side has a
 * second address, 10.O.1.9, and the agent runs with --snat-addr for both
 * of g1's: connections to cluster 1 leave from either, those to cluster 2
 * from g2's only address (no --snat-addr names one of its own).
 */
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <net/if.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "dataplane.h"
#include "fleetgate.h"
#include "e2e_lib.h"
#include "test_progs.h"

#define E2E_VIP "10.99.0.100"
#define E2E_VIP_PORT 80
#define E2E_HTTP_PORT 8080
#define E2E_C1 0 /* cluster, in this file */
#define E2E_C2 1
#define CLUSTER1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define CLUSTER2 "c15d48ca9d1fd43f9bbb89c56a474843c"

/* The servers, one per backend; the backend id is the index + 1. */
enum { SRV_C1A, SRV_C1B, SRV_C2A, NR_SRV };

struct e2e_server {
	const char *name; /* what it answers */
	int cluster;
	int host;         /* 10.O.<cluster + 1>.<host> */
	int port;
	pid_t pid;
};

struct e2e {
	const char *attach; /* --attach: "xdp" or "tc" */
	const char *p;
	int o; /* second octet */
	char ns_cli[32], ns_gw[32], ns_c1[32], ns_c2[32];
	bool ns_made[4];
	char pin[PATH_MAX];
	char agent_bin[PATH_MAX];
	char scripts[PATH_MAX];
	char agent_log[PATH_MAX];
	pid_t agent;
	int agent_status; /* once reaped */
	struct e2e_server srv[NR_SRV];
	struct fg_dataplane *dp;
	char cfg[PATH_MAX];
	/* read back from the maps (ids are the agent's) */
	__u32 backend_id[NR_SRV];
	__u32 cluster_idx[2];
	__u32 stats_idx;
};

struct e2e_result {
	int by_server[NR_SRV];
	int cluster1, cluster2;
	int others; /* answers from an unknown name */
	int errors;
	int total;
};

/* The agent binary and the helper scripts, found from test_progs' own
 * location (build/test_progs -> build/fleetgate-agent, selftests/e2e). */
static int find_paths(struct e2e *e)
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
	snprintf(e->scripts, sizeof(e->scripts), "%s/../selftests/e2e", exe);
	if (access(e->agent_bin, X_OK) || access(e->scripts, R_OK)) {
		/* Out-of-tree BUILD: fall back to the working directory. */
		snprintf(e->agent_bin, sizeof(e->agent_bin), "build/fleetgate-agent");
		snprintf(e->scripts, sizeof(e->scripts), "selftests/e2e");
	}
	if (access(e->agent_bin, X_OK))
		return -ENOENT;
	if (access(e->scripts, R_OK))
		return -ENOENT;
	return 0;
}

/* ---- processes ---- */

static void show_file(const char *title, const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");

	printf("---- %s (%s) ----\n", title, path);
	if (!f) {
		printf("(cannot open: %s)\n", strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f))
		fputs(line, stdout);
	fclose(f);
	printf("---- end of %s ----\n", title);
}

static bool file_has(const char *path, const char *needle)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* ---- servers ---- */

static void server_addr(const struct e2e *e, const struct e2e_server *s, char *buf,
			size_t len)
{
	snprintf(buf, len, "10.%d.%d.%d", e->o, s->cluster + 1, s->host);
}

static int server_start(struct e2e *e, int i)
{
	struct e2e_server *s = &e->srv[i];
	char script[PATH_MAX + 32], port[16], addr[32], ready[PATH_MAX], log[PATH_MAX];
	char *argv[] = { "ip", "netns", "exec",
			 s->cluster == E2E_C1 ? e->ns_c1 : e->ns_c2, "python3", script,
			 (char *)s->name, port, addr, "--ready-file", ready, NULL };
	long long deadline;
	int status;

	snprintf(script, sizeof(script), "%s/tcp_server.py", e->scripts);
	snprintf(port, sizeof(port), "%d", s->port);
	server_addr(e, s, addr, sizeof(addr));
	snprintf(ready, sizeof(ready), "%s/%s.ready", test__tmpdir(), s->name);
	snprintf(log, sizeof(log), "%s/%s.log", test__tmpdir(), s->name);
	unlink(ready);
	s->pid = e2e_spawn(log, NULL, argv);
	if (s->pid < 0) {
		s->pid = 0;
		return -errno;
	}
	for (deadline = e2e_now_ms() + 5000; e2e_now_ms() < deadline; e2e_sleep_ms(20)) {
		if (access(ready, F_OK) == 0)
			return 0;
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			break;
		}
	}
	printf("e2e: server %s did not come up\n", s->name);
	show_file(s->name, log);
	if (s->pid)
		e2e_stop_child(&s->pid, SIGKILL, 2000);
	return -ETIMEDOUT;
}

/* ---- topology ---- */

static int topo_setup(struct e2e *e)
{
	const char *p = e->p;
	char *ns[4] = { e->ns_cli, e->ns_gw, e->ns_c1, e->ns_c2 };
	int i, o = e->o;

	for (i = 0; i < 4; i++) {
		if (fg_sh("ip netns add %s", ns[i]))
			return -EIO;
		e->ns_made[i] = true;
		if (fg_sh("ip -n %s link set lo up", ns[i]))
			return -EIO;
	}
	/* Created right inside their namespaces: the names never exist in
	 * the runner's namespace, where another run may use them. */
	if (fg_sh("ip link add %sgc netns %s type veth peer name %scg netns %s", p,
		  e->ns_gw, p, e->ns_cli) ||
	    fg_sh("ip link add %sg1 netns %s type veth peer name %s1g netns %s", p,
		  e->ns_gw, p, e->ns_c1) ||
	    fg_sh("ip link add %sg2 netns %s type veth peer name %s2g netns %s", p,
		  e->ns_gw, p, e->ns_c2))
		return -EIO;

	if (fg_sh("ip -n %s addr add 10.%d.0.1/24 dev %sgc && "
		  "ip -n %s addr add 10.%d.1.1/24 dev %sg1 && "
		  "ip -n %s addr add 10.%d.2.1/24 dev %sg2 && "
		  "ip -n %s link set %sgc up && ip -n %s link set %sg1 up && "
		  "ip -n %s link set %sg2 up",
		  e->ns_gw, o, p, e->ns_gw, o, p, e->ns_gw, o, p,
		  e->ns_gw, p, e->ns_gw, p, e->ns_gw, p))
		return -EIO;
	if (fg_sh("ip -n %s addr add 10.%d.0.2/24 dev %scg && ip -n %s link set %scg up && "
		  "ip -n %s route add default via 10.%d.0.1",
		  e->ns_cli, o, p, e->ns_cli, p, e->ns_cli, o))
		return -EIO;
	if (fg_sh("ip -n %s addr add 10.%d.1.2/24 dev %s1g && "
		  "ip -n %s addr add 10.%d.1.3/24 dev %s1g && ip -n %s link set %s1g up && "
		  "ip -n %s route add default via 10.%d.1.1",
		  e->ns_c1, o, p, e->ns_c1, o, p, e->ns_c1, p, e->ns_c1, o))
		return -EIO;
	if (fg_sh("ip -n %s addr add 10.%d.2.2/24 dev %s2g && ip -n %s link set %s2g up && "
		  "ip -n %s route add default via 10.%d.2.1",
		  e->ns_c2, o, p, e->ns_c2, p, e->ns_c2, o))
		return -EIO;
	/* The second SNAT address on the cluster 1 side. */
	if (fg_sh("ip -n %s addr add 10.%d.1.9/24 dev %sg1", e->ns_gw, o, p))
		return -EIO;
	/* TC: the kernel's default offloads stay. */
	if (!strcmp(e->attach, "tc"))
		return 0;
	/* A frame XDP_REDIRECTs into a veth is only received when the peer
	 * has XDP or GRO; and redirected TCP must carry full checksums. */
	if (fg_sh("ip netns exec %s ethtool -K %scg tx off tso off gso off gro on >/dev/null && "
		  "ip netns exec %s ethtool -K %s1g tx off tso off gso off gro on >/dev/null && "
		  "ip netns exec %s ethtool -K %s2g tx off tso off gso off gro on >/dev/null",
		  e->ns_cli, p, e->ns_c1, p, e->ns_c2, p))
		return -EIO;
	return 0;
}

static int agent_start(struct e2e *e)
{
	char netns[64], ifc[3][IF_NAMESIZE + 8];
	char listen[64], snat1[32], snat2[32];
	char *argv[] = { "nsenter", netns, e->agent_bin, "-i", ifc[0], "-i", ifc[1],
			 "-i", ifc[2], "-p", e->pin, "--health-interval", "300", "-c", e->cfg,
			 "-l", listen, "--attach", (char *)e->attach, "--snat-addr", snat1,
			 "--snat-addr", snat2, NULL };
	char verdicts[PATH_MAX + 16];
	long long deadline;

	snprintf(netns, sizeof(netns), "--net=/run/netns/%s", e->ns_gw);
	snprintf(listen, sizeof(listen), "%s:%d", E2E_VIP, E2E_HTTP_PORT);
	snprintf(snat1, sizeof(snat1), "10.%d.1.1", e->o);
	snprintf(snat2, sizeof(snat2), "10.%d.1.9", e->o);
	snprintf(ifc[0], sizeof(ifc[0]), "%sgc", e->p);
	snprintf(ifc[1], sizeof(ifc[1]), "%sg1", e->p);
	snprintf(ifc[2], sizeof(ifc[2]), "%sg2", e->p);
	snprintf(verdicts, sizeof(verdicts), "%s/verdicts", e->pin);
	snprintf(e->agent_log, sizeof(e->agent_log), "%s/agent-%s.log", test__tmpdir(), e->attach);
	unlink(e->agent_log); /* "ready" must be this agent's */

	e->agent = e2e_spawn(e->agent_log, NULL, argv);
	if (e->agent < 0) {
		e->agent = 0;
		return -errno;
	}
	for (deadline = e2e_now_ms() + e2e_scaled_ms(10000); e2e_now_ms() < deadline;
	     e2e_sleep_ms(20)) {
		if (access(verdicts, F_OK) == 0 && file_has(e->agent_log, "ready"))
			return 0;
		if (waitpid(e->agent, &e->agent_status, WNOHANG) == e->agent) {
			printf("e2e: the agent exited early (status 0x%x)\n", e->agent_status);
			e->agent = 0;
			return -ECHILD;
		}
	}
	printf("e2e: the agent did not get ready within %lld s\n", e2e_scaled_ms(10000) / 1000);
	return -ETIMEDOUT;
}

/* ---- the config directory ---- */

static int write_cfg(struct e2e *e, const char *rel, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int write_cfg(struct e2e *e, const char *rel, const char *fmt, ...)
{
	char path[PATH_MAX + 128], tmp[PATH_MAX + 160];
	va_list ap;
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/%s", e->cfg, rel);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	va_start(ap, fmt);
	if (vfprintf(f, fmt, ap) < 0)
		err = -EIO;
	va_end(ap);
	if (fclose(f) && !err)
		err = -errno;
	/* Whole files only: the agent never reads half of one. */
	if (!err && rename(tmp, path))
		err = -errno;
	return err;
}

static const char *cluster_id(int c)
{
	return c == E2E_C1 ? CLUSTER1 : CLUSTER2;
}

/* Server i's EndpointSlice, ready or not. */
static int write_slice(struct e2e *e, int i, bool ready)
{
	struct e2e_server *s = &e->srv[i];
	char rel[256], addr[32];

	server_addr(e, s, addr, sizeof(addr));
	snprintf(rel, sizeof(rel), "clusters/%s/slice-%s.yaml", cluster_id(s->cluster), s->name);
	return write_cfg(e, rel,
			 "apiVersion: discovery.k8s.io/v1\n"
			 "kind: EndpointSlice\n"
			 "metadata:\n"
			 "  name: web-%s\n"
			 "  namespace: web-demo\n"
			 "  labels:\n"
			 "    kubernetes.io/service-name: web\n"
			 "addressType: IPv4\n"
			 "ports:\n"
			 "- name: tcp\n"
			 "  protocol: TCP\n"
			 "  port: %d\n"
			 "endpoints:\n"
			 "- addresses:\n"
			 "  - %s\n"
			 "  conditions:\n"
			 "    ready: %s\n",
			 s->name, s->port, addr, ready ? "true" : "false");
}

static int cfg_setup(struct e2e *e)
{
	int c, i, err;

	snprintf(e->cfg, sizeof(e->cfg), "%s/l4config", test__tmpdir());
	if (fg_sh("mkdir -p %s/fleet %s/clusters/%s %s/clusters/%s", e->cfg, e->cfg, CLUSTER1,
		  e->cfg, CLUSTER2))
		return -EIO;
	err = write_cfg(e, "fleet/gateway.yaml",
			"apiVersion: mse.alibabacloud.com/v1alpha1\n"
			"kind: MseIngressConfig\n"
			"metadata:\n"
			"  name: l4-gateway\n"
			"  annotations:\n"
			"    mse.alibabacloud.com/remote-clusters: " CLUSTER1 "," CLUSTER2 "\n"
			"spec:\n"
			"  ingress:\n"
			"    local:\n"
			"      ingressClass: mse\n"
			"---\n"
			"apiVersion: v1\n"
			"kind: Service\n"
			"metadata:\n"
			"  name: web\n"
			"  namespace: web-demo\n"
			"spec:\n"
			"  type: LoadBalancer\n"
			"  ports:\n"
			"  - name: tcp\n"
			"    protocol: TCP\n"
			"    port: %d\n", E2E_VIP_PORT);
	for (c = 0; c < 2 && !err; c++) {
		char rel[128];

		snprintf(rel, sizeof(rel), "clusters/%s/svc.yaml", cluster_id(c));
		err = write_cfg(e, rel,
				"apiVersion: v1\n"
				"kind: Service\n"
				"metadata:\n"
				"  name: web\n"
				"  namespace: web-demo\n"
				"spec:\n"
				"  ports:\n"
				"  - name: tcp\n"
				"    protocol: TCP\n"
				"    port: %d\n"
				"    targetPort: tcp\n", E2E_VIP_PORT);
	}
	for (i = 0; i < NR_SRV && !err; i++)
		err = write_slice(e, i, true);
	return err;
}

/* The ids the agent gave the L4 service's parts, from the maps. */
static int read_ids(struct e2e *e)
{
	const struct fg_maps *m = fg_dp_maps(e->dp);
	struct fg_listener_key key = { .port = htons(E2E_VIP_PORT), .proto = FG_PROTO_TCP,
				       .family = FG_AF_INET };
	struct fg_listener lst;
	struct fg_backend be;
	struct fg_cluster cl;
	__u32 id, high = 0;
	int i, found = 0;

	inet_pton(AF_INET, E2E_VIP, &key.vip.v4);
	if (bpf_map_lookup_elem(m->listeners, &key, &lst))
		return -ENOENT;
	e->stats_idx = lst.stats_idx;
	for (id = 0; id < FG_MAX_CLUSTERS; id++) {
		if (bpf_map_lookup_elem(m->clusters, &id, &cl) || !(cl.flags & FG_CLUSTER_F_ACTIVE))
			continue;
		if (!strcmp(cl.name, CLUSTER1))
			e->cluster_idx[E2E_C1] = id;
		if (!strcmp(cl.name, CLUSTER2))
			e->cluster_idx[E2E_C2] = id;
	}
	for (id = 1; id < fg_dp_max_backends(e->dp) && found < NR_SRV && id < high + 4096; id++) {
		if (bpf_map_lookup_elem(m->backends, &id, &be) || !(be.flags & FG_BACKEND_F_ACTIVE))
			continue;
		high = id;
		for (i = 0; i < NR_SRV; i++) {
			char addr[32];
			struct in_addr a;

			server_addr(e, &e->srv[i], addr, sizeof(addr));
			inet_pton(AF_INET, addr, &a);
			if (be.addr.v4 == a.s_addr && ntohs(be.port) == e->srv[i].port) {
				e->backend_id[i] = id;
				found++;
			}
		}
	}
	return found == NR_SRV ? 0 : -ENOENT;
}

/* Shares by ready pods: cluster 1 counts its ready pods, cluster 2 one.
 * c1_pods 1: 1:1, c1_pods 2: 2:1. Waits until the cluster ring shows it. */
static int set_c1_pods(struct e2e *e, int c1_pods)
{
	long long deadline = e2e_now_ms() + 5000;
	struct fg_listener_key key = { .port = htons(E2E_VIP_PORT), .proto = FG_PROTO_TCP,
				       .family = FG_AF_INET };
	int err;

	err = write_slice(e, SRV_C1B, c1_pods > 1);
	if (err)
		return err;
	inet_pton(AF_INET, E2E_VIP, &key.vip.v4);
	while (e2e_now_ms() < deadline) {
		struct fg_listener lst;
		struct fg_service svc;

		if (!bpf_map_lookup_elem(fg_dp_maps(e->dp)->listeners, &key, &lst) &&
		    !bpf_map_lookup_elem(fg_dp_maps(e->dp)->services, &lst.service_id, &svc) &&
		    svc.cluster_weight[e->cluster_idx[E2E_C1]] == (__u32)c1_pods &&
		    svc.cluster_weight[e->cluster_idx[E2E_C2]] == 1) {
			printf("e2e: cluster 1 has %d ready pod(s), cluster 2 one\n", c1_pods);
			e2e_sleep_ms(100); /* the rings follow the weights */
			/* An endpoint that left and came back has a new id. */
			return c1_pods > 1 ? read_ids(e) : 0;
		}
		e2e_sleep_ms(20);
	}
	printf("e2e: the shares did not become %d:1 within 5 s\n", c1_pods);
	return -ETIMEDOUT;
}

static int e2e_setup(struct e2e *e)
{
	int err;

	e->p = test__prefix();
	e->o = 100 + getpid() % 100; /* never 99, the VIP's */
	snprintf(e->ns_cli, sizeof(e->ns_cli), "%scli", e->p);
	snprintf(e->ns_gw, sizeof(e->ns_gw), "%sgw", e->p);
	snprintf(e->ns_c1, sizeof(e->ns_c1), "%sc1", e->p);
	snprintf(e->ns_c2, sizeof(e->ns_c2), "%sc2", e->p);
	snprintf(e->pin, sizeof(e->pin), "/sys/fs/bpf/%s", e->p);
	printf("e2e: --attach %s, prefix %s, addresses 10.%d.0.0/16, pins %s\n", e->attach, e->p,
	       e->o, e->pin);

	err = topo_setup(e);
	if (!ASSERT_OK(err, "topology"))
		return err;
	err = cfg_setup(e);
	if (!ASSERT_OK(err, "config directory"))
		return err;
	for (int i = 0; i < NR_SRV; i++) {
		err = server_start(e, i);
		if (!ASSERT_OK(err, e->srv[i].name))
			return err;
	}
	err = agent_start(e);
	if (!ASSERT_OK(err, "agent start"))
		return err; /* e2e_cleanup shows the agent's log */
	err = fg_dp_open_pinned(&e->dp, e->pin);
	if (!ASSERT_OK(err, "fg_dp_open_pinned"))
		return err;
	for (long long deadline = e2e_now_ms() + 5000; e2e_now_ms() < deadline; e2e_sleep_ms(20))
		if (!(err = read_ids(e)))
			break;
	if (!ASSERT_OK(err, "the agent programmed the L4 service"))
		return err;
	return 0;
}

static void e2e_cleanup(struct e2e *e)
{
	char *ns[4] = { e->ns_cli, e->ns_gw, e->ns_c1, e->ns_c2 };
	int i;

	fg_dp_close(e->dp, false);
	e->dp = NULL;
	if (e->agent > 0)
		e2e_stop_child(&e->agent, SIGTERM, 5000);
	/* Into the captured log: shown on failure or with -v. */
	if (e->agent_log[0])
		show_file("agent log", e->agent_log);
	for (i = 0; i < NR_SRV; i++)
		e2e_stop_child(&e->srv[i].pid, SIGKILL, 2000);
	for (i = 3; i >= 0; i--)
		if (e->ns_made[i])
			fg_sh("ip netns del %s", ns[i]);
	/* An agent that died without cleaning up leaves its pins. */
	if (e->pin[0] && access(e->pin, F_OK) == 0)
		fg_sh("rm -rf %s", e->pin);
}

/* ---- traffic ---- */

/* Runs the client in the client namespace; false when it could not run
 * or its output does not parse (reported). */
static bool run_client(struct e2e *e, int n, struct e2e_result *r)
{
	char cmd[PATH_MAX + 256], out[4096];
	json_t *root, *answers, *v;
	json_error_t jerr;
	const char *name;
	size_t len = 0, got;
	FILE *f;
	int i, status;
	long long t0 = e2e_now_ms();

	memset(r, 0, sizeof(*r));
	snprintf(cmd, sizeof(cmd), "ip netns exec %s python3 %s/tcp_client.py %s %d %d --timeout 1 --max-time 8",
		 e->ns_cli, e->scripts, E2E_VIP, E2E_VIP_PORT, n);
	printf("+ %s\n", cmd);
	fflush(stdout);
	fflush(stderr);
	f = popen(cmd, "r");
	if (!f) {
		printf("e2e: popen: %s\n", strerror(errno));
		return false;
	}
	while (len < sizeof(out) - 1 && (got = fread(out + len, 1, sizeof(out) - 1 - len, f)) > 0)
		len += got;
	out[len] = '\0';
	status = pclose(f);
	printf("e2e: client (%llu ms): %s", (unsigned long long)(e2e_now_ms() - t0), out);
	if (status != 0) {
		printf("e2e: client exit status 0x%x\n", status);
		return false;
	}
	root = json_loads(out, 0, &jerr);
	if (!root) {
		printf("e2e: client output is not JSON: %s\n", jerr.text);
		return false;
	}
	answers = json_object_get(root, "answers");
	v = json_object_get(root, "errors");
	if (!json_is_object(answers) || !json_is_integer(v)) {
		printf("e2e: client output lacks answers/errors\n");
		json_decref(root);
		return false;
	}
	r->errors = (int)json_integer_value(v);
	json_object_foreach(answers, name, v) {
		int k = (int)json_integer_value(v);

		for (i = 0; i < NR_SRV; i++)
			if (!strcmp(name, e->srv[i].name))
				break;
		if (i == NR_SRV) {
			r->others += k;
			continue;
		}
		r->by_server[i] += k;
		if (e->srv[i].cluster == E2E_C1)
			r->cluster1 += k;
		else
			r->cluster2 += k;
	}
	r->total = r->cluster1 + r->cluster2 + r->others;
	json_decref(root);
	return true;
}

/* share of want_pct% of n, within tol_pct percentage points */
static bool share_ok(int got, int n, int want_pct, int tol_pct)
{
	return got * 100 >= (want_pct - tol_pct) * n && got * 100 <= (want_pct + tol_pct) * n;
}

static bool split_check(struct e2e *e, int n, int c1_pct, const char *tag, bool both_c1)
{
	struct e2e_result r;
	char name[96];
	bool ok = true;

	snprintf(name, sizeof(name), "%s: client ran", tag);
	if (!ASSERT_TRUE(run_client(e, n, &r), name))
		return false;
	printf("e2e: %s: cluster1 %d (%s %d, %s %d), cluster2 %d, errors %d\n", tag,
	       r.cluster1, e->srv[SRV_C1A].name, r.by_server[SRV_C1A], e->srv[SRV_C1B].name,
	       r.by_server[SRV_C1B], r.cluster2, r.errors);
	snprintf(name, sizeof(name), "%s: errors", tag);
	ok &= ASSERT_EQ(r.errors, 0, name);
	snprintf(name, sizeof(name), "%s: answers", tag);
	ok &= ASSERT_EQ(r.total, n, name);
	snprintf(name, sizeof(name), "%s: unknown answers", tag);
	ok &= ASSERT_EQ(r.others, 0, name);
	snprintf(name, sizeof(name), "%s: cluster1 share %d%%+-12%%", tag, c1_pct);
	ok &= _CHECK(!share_ok(r.cluster1, n, c1_pct, 12), name,
		     "cluster1 got %d of %d connections", r.cluster1, n);
	/* Inside cluster1, both backends (equal weights) take a share when
	 * both are ready. */
	snprintf(name, sizeof(name), "%s: cluster1 backends used", tag);
	ok &= ASSERT_TRUE(r.by_server[SRV_C1A] > 0 && (r.by_server[SRV_C1B] > 0) == both_c1, name);
	return ok;
}

/* ---- maps ---- */

static __u64 counter(struct e2e *e, int fd, __u32 idx)
{
	struct fg_counter c = {};

	if (fg_dp_read_counter(e->dp, fd, idx, &c))
		return 0;
	return c.packets;
}

static int backend_flags(struct e2e *e, __u32 id)
{
	struct fg_backend be;

	if (bpf_map_lookup_elem(fg_dp_maps(e->dp)->backends, &id, &be))
		return -errno;
	return be.flags;
}

/* Polls until backend id is up (or down); returns the ms it took, or -1
 * when timeout_ms passed first. */
static long wait_backend(struct e2e *e, __u32 id, bool up, unsigned int timeout_ms)
{
	long long t0 = e2e_now_ms(), deadline = t0 + timeout_ms;
	int flags;

	for (;;) {
		flags = backend_flags(e, id);
		if (flags >= 0 && !!(flags & FG_BACKEND_F_UP) == up)
			return (long)(e2e_now_ms() - t0);
		if (e2e_now_ms() >= deadline)
			return -1;
		e2e_sleep_ms(50);
	}
}

/* The program is attached to the gateway's interface P<suffix> in the
 * agent's mode: XDP shows in ip link; a tcx link is asked of the kernel
 * from inside the gateway's namespace. */
static bool prog_attached(struct e2e *e, const char *suffix)
{
	char name[IF_NAMESIZE + 8];
	const char *kind;
	__u32 id;

	if (strcmp(e->attach, "tc"))
		/* "prog/xdp id N" (native) or "xdpgeneric" in the link line. */
		return fg_sh("nsenter --net=/run/netns/%s ip link show %s%s | grep -q xdp",
			     e->ns_gw, e->p, suffix) == 0;
	snprintf(name, sizeof(name), "%s%s", e->p, suffix);
	id = e2e_tc_prog_id(e->ns_gw, name, &kind);
	printf("e2e: %s: %s program id %u\n", name, id ? kind : "TC", id);
	return id != 0;
}

/* ---- subtests ---- */

static void subtest_split_by_weight(struct e2e *e)
{
	if (!ASSERT_OK(set_c1_pods(e, 1), "shares 1:1"))
		return;
	split_check(e, 200, 50, "1:1", false);
	if (!ASSERT_OK(set_c1_pods(e, 2), "shares 2:1"))
		return;
	split_check(e, 300, 67, "2:1", true);
}

static void subtest_counters(struct e2e *e)
{
	const struct fg_maps *m = fg_dp_maps(e->dp);
	__u64 fwd0, rep0, nn0, lst0, be0[NR_SRV], cl0[2];
	__u64 fwd, rep, nn, lst, be, cl;
	struct e2e_result r;
	char name[64];
	int i;

	if (!ASSERT_OK(set_c1_pods(e, 2), "shares 2:1"))
		return;
	fwd0 = counter(e, m->verdicts, FG_R_FORWARD);
	rep0 = counter(e, m->verdicts, FG_R_REPLY);
	nn0 = counter(e, m->verdicts, FG_R_FIB_NO_NEIGH);
	lst0 = counter(e, m->listener_stats, e->stats_idx);
	for (i = 0; i < NR_SRV; i++)
		be0[i] = counter(e, m->backend_stats, e->backend_id[i]);
	cl0[0] = counter(e, m->cluster_stats, e->cluster_idx[E2E_C1]);
	cl0[1] = counter(e, m->cluster_stats, e->cluster_idx[E2E_C2]);

	if (!ASSERT_TRUE(run_client(e, 40, &r), "client ran"))
		return;
	ASSERT_EQ(r.errors, 0, "errors");
	ASSERT_EQ(r.total, 40, "answers");

	fwd = counter(e, m->verdicts, FG_R_FORWARD) - fwd0;
	rep = counter(e, m->verdicts, FG_R_REPLY) - rep0;
	nn = counter(e, m->verdicts, FG_R_FIB_NO_NEIGH) - nn0;
	lst = counter(e, m->listener_stats, e->stats_idx) - lst0;
	printf("e2e: verdict deltas: forward %llu, reply %llu, fib_no_neigh %llu; listener %llu\n",
	       (unsigned long long)fwd, (unsigned long long)rep, (unsigned long long)nn,
	       (unsigned long long)lst);
	/* Per connection at least SYN, ACK + data, FIN/ACK from the client,
	 * and SYN-ACK, data, FIN from the server. */
	ASSERT_GE(fwd + nn, 3 * 40, "forward (+fib_no_neigh) packets");
	ASSERT_GT(fwd, 0, "forward packets");
	ASSERT_GE(rep + nn, 2 * 40, "reply (+fib_no_neigh) packets");
	ASSERT_GT(rep, 0, "reply packets");
	ASSERT_GE(lst, 3 * 40, "listener_stats packets");
	/* Every client packet to the VIP was NATed toward a backend. */
	ASSERT_LE(lst, fwd + nn, "listener packets <= forwarded");

	for (i = 0; i < NR_SRV; i++) {
		be = counter(e, m->backend_stats, e->backend_id[i]) - be0[i];
		printf("e2e: backend %u (%s): %llu packets, %d answers\n", e->backend_id[i],
		       e->srv[i].name, (unsigned long long)be, r.by_server[i]);
		snprintf(name, sizeof(name), "backend_stats[%u] moves with its answers",
			 e->backend_id[i]);
		_CHECK(r.by_server[i] > 0 ? be < 4ULL * r.by_server[i] : be != 0, name,
		       "%llu packets for %d answers", (unsigned long long)be, r.by_server[i]);
	}
	for (i = 0; i < 2; i++) {
		cl = counter(e, m->cluster_stats, e->cluster_idx[i]) - cl0[i];
		printf("e2e: cluster %d: %llu packets\n", i, (unsigned long long)cl);
		snprintf(name, sizeof(name), "cluster_stats[%d]", i);
		ASSERT_GE(cl, 3ULL * (i == 0 ? r.cluster1 : r.cluster2), name);
		ASSERT_GT(cl, 0, name);
	}
}

static void subtest_failover(struct e2e *e)
{
	const __u32 c2_id = e->backend_id[SRV_C2A];
	struct e2e_result r;
	long ms;

	if (!ASSERT_OK(set_c1_pods(e, 2), "shares 2:1"))
		return;
	if (!ASSERT_TRUE(backend_flags(e, c2_id) & FG_BACKEND_F_UP, "cluster2 backend up"))
		return;

	e2e_stop_child(&e->srv[SRV_C2A].pid, SIGKILL, 2000);
	ms = wait_backend(e, c2_id, false, 5000);
	printf("e2e: cluster2's backend marked down after %ld ms\n", ms);
	if (!_CHECK(ms < 0, "cluster2 backend down within 5 s", "still up after 5 s"))
		return;
	if (!ASSERT_TRUE(file_has(e->agent_log, "is DOWN"), "agent logged DOWN"))
		show_file("agent log", e->agent_log);

	if (ASSERT_TRUE(run_client(e, 50, &r), "client ran (down)")) {
		ASSERT_EQ(r.errors, 0, "errors while cluster2 is down");
		ASSERT_EQ(r.cluster1, 50, "all answers from cluster1");
		ASSERT_EQ(r.cluster2, 0, "no answer from cluster2");
	}

	if (!ASSERT_OK(server_start(e, SRV_C2A), "restart cluster2's server"))
		return;
	ms = wait_backend(e, c2_id, true, 5000);
	printf("e2e: cluster2's backend marked up after %ld ms\n", ms);
	if (!_CHECK(ms < 0, "cluster2 backend up again within 5 s", "still down after 5 s"))
		return;
	split_check(e, 300, 67, "after recovery", true);
}

/* --snat-addr: connections to cluster 1 leave from both of g1's
 * addresses, those to cluster 2 from g2's own; every SYN found a port. */
static void subtest_snat_addrs(struct e2e *e)
{
	const struct fg_maps *m = fg_dp_maps(e->dp);
	__u64 st0[FG_SNAT_STAT_MAX], st[FG_SNAT_STAT_MAX], nsp0;
	struct fg_flow key, next;
	struct fg_addr a11 = {}, a19 = {}, a21 = {};
	int from11 = 0, from19 = 0, from21 = 0, other = 0;
	struct e2e_result r;
	char buf[32];
	void *prev = NULL;

	snprintf(buf, sizeof(buf), "10.%d.1.1", e->o);
	inet_pton(AF_INET, buf, &a11.v4);
	snprintf(buf, sizeof(buf), "10.%d.1.9", e->o);
	inet_pton(AF_INET, buf, &a19.v4);
	snprintf(buf, sizeof(buf), "10.%d.2.1", e->o);
	inet_pton(AF_INET, buf, &a21.v4);
	if (!ASSERT_OK(set_c1_pods(e, 2), "shares 2:1"))
		return;
	fg_dp_snat_stats(e->dp, st0);
	nsp0 = counter(e, m->verdicts, FG_R_NO_SNAT_PORT);
	if (!ASSERT_TRUE(run_client(e, 60, &r), "client ran"))
		return;
	ASSERT_EQ(r.errors, 0, "errors");
	ASSERT_EQ(r.total, 60, "answers");
	/* The backend-side tuples: SNAT address = the key's destination. */
	while (!bpf_map_get_next_key(m->reverse_nat, prev, &next)) {
		key = next;
		prev = &key;
		if (key.proto != FG_PROTO_TCP)
			continue;
		if (!memcmp(&key.dst, &a11, sizeof(a11)))
			from11++;
		else if (!memcmp(&key.dst, &a19, sizeof(a19)))
			from19++;
		else if (!memcmp(&key.dst, &a21, sizeof(a21)))
			from21++;
		else
			other++;
	}
	printf("e2e: reverse_nat tuples by SNAT address: .1.1 %d, .1.9 %d, .2.1 %d, other %d\n",
	       from11, from19, from21, other);
	ASSERT_GT(from11, 0, "cluster 1 from g1's first address");
	ASSERT_GT(from19, 0, "cluster 1 from g1's second address (--snat-addr)");
	ASSERT_GT(from21, 0, "cluster 2 from g2's address (its default)");
	ASSERT_EQ(other, 0, "no other SNAT address");
	fg_dp_snat_stats(e->dp, st);
	printf("e2e: SNAT ports: %llu fresh, %llu reclaimed, %llu reused in TIME_WAIT, %llu "
	       "exhausted\n", (unsigned long long)(st[FG_SNAT_FRESH] - st0[FG_SNAT_FRESH]),
	       (unsigned long long)(st[FG_SNAT_RECLAIMED] - st0[FG_SNAT_RECLAIMED]),
	       (unsigned long long)(st[FG_SNAT_REUSED_TW] - st0[FG_SNAT_REUSED_TW]),
	       (unsigned long long)(st[FG_SNAT_EXHAUSTED] - st0[FG_SNAT_EXHAUSTED]));
	ASSERT_GE(st[FG_SNAT_FRESH] - st0[FG_SNAT_FRESH], 60, "a fresh tuple per connection");
	ASSERT_EQ(st[FG_SNAT_REUSED_TW] - st0[FG_SNAT_REUSED_TW], 0, "none reused in TIME_WAIT");
	ASSERT_EQ(st[FG_SNAT_EXHAUSTED] - st0[FG_SNAT_EXHAUSTED], 0, "none exhausted");
	ASSERT_EQ(counter(e, m->verdicts, FG_R_NO_SNAT_PORT) - nsp0, 0, "no_snat_port");
}

static void subtest_clean_shutdown(struct e2e *e)
{
	static const char *const ifs[] = { "gc", "g1", "g2" };
	int status, i;
	char name[64];

	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "%s on %s%s before", e->attach, e->p, ifs[i]);
		ASSERT_TRUE(prog_attached(e, ifs[i]), name);
	}
	fg_dp_close(e->dp, false);
	e->dp = NULL;

	if (!ASSERT_GT(e->agent, 0, "agent running"))
		return;
	status = e2e_stop_child(&e->agent, SIGTERM, 5000);
	if (!(ASSERT_TRUE(WIFEXITED(status), "agent exited") &&
	      ASSERT_EQ(WEXITSTATUS(status), 0, "agent exit status")))
		printf("e2e: agent wait status 0x%x\n", status);
	if (!ASSERT_TRUE(file_has(e->agent_log, "fleetgate-agent stopped"), "agent logged stop"))
		show_file("agent log", e->agent_log);
	ASSERT_NEQ(access(e->pin, F_OK), 0, "pin directory removed");
	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "%s on %s%s after", e->attach, e->p, ifs[i]);
		ASSERT_FALSE(prog_attached(e, ifs[i]), name);
	}
}

static void e2e_l4_run(const char *attach)
{
	struct e2e e = {
		.attach = attach,
		.srv = {
			[SRV_C1A] = { "cluster1", E2E_C1, 2, 8080 },
			[SRV_C1B] = { "cluster1b", E2E_C1, 3, 8081 },
			[SRV_C2A] = { "cluster2", E2E_C2, 2, 8080 },
		},
	};
	long long t0 = e2e_now_ms();
	int err;

	if (geteuid() != 0) {
		test__skip("needs root");
		return;
	}
	if (fg_sh("ip netns list >/dev/null 2>&1") != 0) {
		test__skip("ip netns is not available");
		return;
	}
	if (fg_sh("command -v python3 >/dev/null && command -v nsenter >/dev/null && "
		  "command -v ethtool >/dev/null") != 0) {
		test__skip("needs python3, nsenter and ethtool");
		return;
	}
	err = find_paths(&e);
	if (err) {
		test__skip("fleetgate-agent or selftests/e2e not found");
		return;
	}
	if (e2e_setup(&e) == 0) {
		printf("e2e: setup took %llu ms\n", (unsigned long long)(e2e_now_ms() - t0));
		if (test__start_subtest("split_by_weight"))
			subtest_split_by_weight(&e);
		if (test__start_subtest("counters"))
			subtest_counters(&e);
		if (test__start_subtest("failover"))
			subtest_failover(&e);
		if (test__start_subtest("snat_addrs"))
			subtest_snat_addrs(&e);
		if (test__start_subtest("clean_shutdown"))
			subtest_clean_shutdown(&e);
	}
	/* Still inside the last subtest: a failed cleanup fails it too. */
	e2e_cleanup(&e);
	printf("e2e: total %llu ms\n", (unsigned long long)(e2e_now_ms() - t0));
}

FG_TEST(e2e_l4)
{
	e2e_l4_run("xdp");
}

FG_TEST(e2e_l4_tc)
{
	e2e_l4_run("tc");
}
