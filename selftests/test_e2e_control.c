// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * End to end, control plane: a real fleetgate-agent driven only by its
 * config directory (MseIngressConfig, a fleet Service of type LoadBalancer,
 * the member clusters' Services and EndpointSlices), balancing real TCP
 * connections between two "clusters" on veth pairs between namespaces, and
 * inspected with fleetgatectl, exactly as an operator would.
 *
 *        cli                   gw                    c1 / c2
 *   T"cg" 10.O.0.2  <->  T"gc" 10.O.0.1 (--listen 10.O.0.1:8080)
 *                        T"g1" 10.O.1.1  <->  T"1g" 10.O.1.2, .3
 *                        T"g2" 10.O.2.1  <->  T"2g" 10.O.2.2, .3, .4
 *
 * T is test__prefix() + "x" (so names never meet test_e2e_l4's), O a second
 * octet 200 + pid % 50 (test_e2e_l4 uses 100..199). The fleet Service
 * web-demo/tcp-echo (LoadBalancer, 7000/TCP) is balanced by XDP on the
 * gateway's own address 10.O.0.1:7000 over the pods of the clusters'
 * Service web-demo/tcp-echo (7000 -> targetPort 8080, port name "tcp"):
 * cluster 1 "c7fb82..." has two pods (10.O.1.2, 10.O.1.3), cluster 2
 * "c15d48..." one (10.O.2.2; .3 and .4 are used when it scales up). Every
 * pod is a selftests/e2e/tcp_server.py answering with its name.
 *
 * The topology and the agent are set up once; every subtest first brings
 * the config directory and the pods back to that baseline and waits for the
 * rings to show it, so any subtest can run alone. restart_keeps_flows stops
 * the agent for good and so runs last.
 *
 * e2e_control runs the agent as an operator would, without --attach: on
 * veths "auto" picks TC (tcx links), and the veths keep the kernel's
 * default offloads. e2e_control_xdp (names T = prefix + "y") runs status,
 * split_by_pod_count and restart_keeps_flows again with --attach xdp, the
 * client and cluster ends' offloads off as XDP_REDIRECT into a veth needs.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "dataplane.h"
#include "e2e_lib.h"
#include "test_progs.h"

#define CLUSTER1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define CLUSTER2 "c15d48ca9d1fd43f9bbb89c56a474843c"
#define GATEWAY "ackone-gateway"
#define HTTP_PORT 8080   /* --listen port (the L7 listener) */
#define L4_PORT 7000     /* web-demo/tcp-echo, LoadBalancer */
#define ECHO_PORT 7001   /* web-demo/line-echo, restart_keeps_flows only */
#define POD_PORT 8080    /* tcp_server.py in the pods */
#define ECHO_POD_PORT 9000

enum { C1, C2 }; /* cluster index in this file */
static const char *const cluster_ids[] = { CLUSTER1, CLUSTER2 };

enum { SRV_1A, SRV_1B, SRV_2A, SRV_2B, SRV_2C, SRV_E1, SRV_E2, NR_SRV };

struct ctl_server {
	const char *name; /* what it answers */
	int cluster;
	int host;         /* 10.O.<cluster + 1>.<host> */
	int port;
	bool echo;        /* control_echo.py server instead of tcp_server.py */
	pid_t pid;
};

struct ctl_e2e {
	const char *attach; /* --attach, or NULL: the default (auto) */
	char t[16];       /* name tag: test__prefix() + "x" (+ "y" with --attach xdp) */
	int o;            /* second octet */
	char ns_cli[32], ns_gw[32], ns_c1[32], ns_c2[32];
	bool ns_made[4];
	char pin[PATH_MAX];
	char sock[PATH_MAX];
	char agent_bin[PATH_MAX], ctl_bin[PATH_MAX], scripts[PATH_MAX];
	char cfg[PATH_MAX];     /* the config directory */
	char agent_log[PATH_MAX];
	char listen_addr[32];   /* 10.O.0.1 */
	pid_t agent;
	int agent_status;
	long agent_log_off;     /* where the running agent's log starts */
	struct ctl_server srv[NR_SRV];
	int c2_pods;            /* pods in cluster 2's EndpointSlice */
	bool c2_svc;            /* cluster 2's svc.yaml present */
	pid_t echo_client;
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (long)st.st_size;
}

/* Reads the whole file (NUL-terminated, malloc'ed) from offset off. */
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

/* The first line at or after off holding needle, copied into line (may be
 * NULL); false when there is none. */
static bool log_find(const char *path, long off, const char *needle, char *line, size_t len)
{
	char *all = read_all(path, off), *p, *eol;
	bool found = false;

	if (!all)
		return false;
	for (p = all; *p && !found; p = eol ? eol + 1 : p + strlen(p)) {
		eol = strchr(p, '\n');
		if (eol)
			*eol = '\0';
		if (strstr(p, needle)) {
			found = true;
			if (line)
				snprintf(line, len, "%s", p);
		}
		if (!eol)
			break;
	}
	free(all);
	return found;
}

static int log_count(const char *path, long off, const char *needle)
{
	char *all = read_all(path, off), *p;
	int n = 0;

	for (p = all; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(all);
	return n;
}

/* Lines "...FILE:LINE: REASON" (a parse error of FILE) after off. */
static int log_count_parse_errors(const char *path, long off, const char *file)
{
	char *all = read_all(path, off), *p, needle[64];
	int n = 0;

	snprintf(needle, sizeof(needle), "/%s:", file);
	for (p = all; p && (p = strstr(p, needle)); p += strlen(needle))
		if (isdigit((unsigned char)p[strlen(needle)]))
			n++;
	free(all);
	return n;
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

/* Writes content to DIR/rel through a temporary name and a rename, as a
 * config-management tool does. */
static int cfg_write(struct ctl_e2e *e, const char *rel, const char *content)
{
	char path[PATH_MAX + 64], tmp[PATH_MAX + 80];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", e->cfg, rel);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	if (fputs(content, f) < 0) {
		fclose(f);
		return -EIO;
	}
	if (fclose(f))
		return -errno;
	if (rename(tmp, path))
		return -errno;
	printf("e2e: wrote %s\n", rel);
	return 0;
}

static int cfg_unlink(struct ctl_e2e *e, const char *rel)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", e->cfg, rel);
	if (unlink(path) && errno != ENOENT)
		return -errno;
	printf("e2e: removed %s\n", rel);
	return 0;
}

/* ------------------------------------------------------------------ */
/* processes                                                           */
/* ------------------------------------------------------------------ */

/* fleetgatectl -o json ARGS, parsed; NULL (reported unless quiet) on
 * failure. */
static json_t *ctl_json(struct ctl_e2e *e, bool quiet, const char *args)
{
	json_error_t jerr;
	json_t *doc;
	char *out;
	int status;

	out = e2e_capture(&status, quiet, "%s -p %s -o json %s 2>&1", e->ctl_bin, e->pin, args);
	if (!out)
		return NULL;
	doc = status == 0 ? json_loads(out, 0, &jerr) : NULL;
	if (!doc && !quiet)
		printf("e2e: fleetgatectl %s: exit %d, not JSON: %s\n", args, status, out);
	free(out);
	return doc;
}

/* fleetgatectl status as an operator on the gateway runs it: from the
 * agent's network namespace, where a cls_bpf filter (kernels without tcx
 * links) can be asked for by ifindex. */
static json_t *ctl_status_json(struct ctl_e2e *e)
{
	json_error_t jerr;
	json_t *doc;
	char *out;
	int status;

	out = e2e_capture(&status, false, "nsenter --net=/run/netns/%s %s -p %s -o json status 2>&1",
			  e->ns_gw, e->ctl_bin, e->pin);
	if (!out)
		return NULL;
	doc = status == 0 ? json_loads(out, 0, &jerr) : NULL;
	if (!doc)
		printf("e2e: fleetgatectl status: exit %d, not JSON: %s\n", status, out);
	free(out);
	return doc;
}

static bool attach_is_xdp(const struct ctl_e2e *e)
{
	return e->attach && !strcmp(e->attach, "xdp");
}

/* The mode fleetgatectl status must show for the gateway's veths. */
static const char *attach_want(const struct ctl_e2e *e)
{
	if (attach_is_xdp(e))
		return "xdp-native";
	return e2e_kernel_has_tcx() ? "tcx" : "tc-cls";
}

/* ------------------------------------------------------------------ */
/* paths, servers, topology, agent                                     */
/* ------------------------------------------------------------------ */

static int find_paths(struct ctl_e2e *e)
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
	snprintf(e->ctl_bin, sizeof(e->ctl_bin), "%s/fleetgatectl", exe);
	snprintf(e->scripts, sizeof(e->scripts), "%s/../selftests/e2e", exe);
	if (access(e->agent_bin, X_OK) || access(e->ctl_bin, X_OK) || access(e->scripts, R_OK)) {
		snprintf(e->agent_bin, sizeof(e->agent_bin), "build/fleetgate-agent");
		snprintf(e->ctl_bin, sizeof(e->ctl_bin), "build/fleetgatectl");
		snprintf(e->scripts, sizeof(e->scripts), "selftests/e2e");
	}
	if (access(e->agent_bin, X_OK) || access(e->ctl_bin, X_OK))
		return -ENOENT;
	if (access(e->scripts, R_OK))
		return -ENOENT;
	return 0;
}

static void pod_addr(const struct ctl_e2e *e, int cluster, int host, char *buf, size_t len)
{
	snprintf(buf, len, "10.%d.%d.%d", e->o, cluster + 1, host);
}

static int server_start(struct ctl_e2e *e, int i)
{
	struct ctl_server *s = &e->srv[i];
	char script[PATH_MAX + 32], port[16], addr[32], ready[PATH_MAX], log[PATH_MAX];
	char *argv_tcp[] = { "ip", "netns", "exec", s->cluster == C1 ? e->ns_c1 : e->ns_c2,
			     "python3", script, (char *)s->name, port, addr,
			     "--ready-file", ready, NULL };
	char *argv_echo[] = { "ip", "netns", "exec", s->cluster == C1 ? e->ns_c1 : e->ns_c2,
			      "python3", script, "server", (char *)s->name, port, addr,
			      "--ready-file", ready, NULL };
	long long deadline;
	int status;

	if (s->pid > 0)
		return 0;
	snprintf(script, sizeof(script), "%s/%s", e->scripts,
		 s->echo ? "control_echo.py" : "tcp_server.py");
	snprintf(port, sizeof(port), "%d", s->port);
	pod_addr(e, s->cluster, s->host, addr, sizeof(addr));
	snprintf(ready, sizeof(ready), "%s/%s.ready", test__tmpdir(), s->name);
	snprintf(log, sizeof(log), "%s/%s.log", test__tmpdir(), s->name);
	unlink(ready);
	s->pid = e2e_spawn(log, NULL, s->echo ? argv_echo : argv_tcp);
	if (s->pid < 0) {
		s->pid = 0;
		return -errno;
	}
	for (deadline = e2e_now_ms() + e2e_scaled_ms(5000); e2e_now_ms() < deadline;
	     e2e_sleep_ms(10)) {
		if (access(ready, F_OK) == 0)
			return 0;
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			break;
		}
	}
	printf("e2e: server %s did not come up\n", s->name);
	show_file(s->name, log, 0);
	if (s->pid)
		e2e_stop_child(&s->pid, SIGKILL, 2000);
	return -ETIMEDOUT;
}

static int topo_setup(struct ctl_e2e *e)
{
	const char *t = e->t;
	char *ns[4] = { e->ns_cli, e->ns_gw, e->ns_c1, e->ns_c2 };
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
		  e->ns_c1) ||
	    fg_sh("ip link add %sg2 netns %s type veth peer name %s2g netns %s", t, e->ns_gw, t,
		  e->ns_c2))
		return -EIO;
	if (fg_sh("ip -n %s addr add 10.%d.0.1/24 dev %sgc && "
		  "ip -n %s addr add 10.%d.1.1/24 dev %sg1 && "
		  "ip -n %s addr add 10.%d.2.1/24 dev %sg2 && "
		  "ip -n %s link set %sgc up && ip -n %s link set %sg1 up && "
		  "ip -n %s link set %sg2 up",
		  e->ns_gw, o, t, e->ns_gw, o, t, e->ns_gw, o, t, e->ns_gw, t, e->ns_gw, t,
		  e->ns_gw, t))
		return -EIO;
	if (fg_sh("ip -n %s addr add 10.%d.0.2/24 dev %scg && ip -n %s link set %scg up && "
		  "ip -n %s route add default via 10.%d.0.1",
		  e->ns_cli, o, t, e->ns_cli, t, e->ns_cli, o))
		return -EIO;
	if (fg_sh("ip -n %s addr add 10.%d.1.2/24 dev %s1g && "
		  "ip -n %s addr add 10.%d.1.3/24 dev %s1g && ip -n %s link set %s1g up && "
		  "ip -n %s route add default via 10.%d.1.1",
		  e->ns_c1, o, t, e->ns_c1, o, t, e->ns_c1, t, e->ns_c1, o))
		return -EIO;
	if (fg_sh("ip -n %s addr add 10.%d.2.2/24 dev %s2g && "
		  "ip -n %s addr add 10.%d.2.3/24 dev %s2g && "
		  "ip -n %s addr add 10.%d.2.4/24 dev %s2g && ip -n %s link set %s2g up && "
		  "ip -n %s route add default via 10.%d.2.1",
		  e->ns_c2, o, t, e->ns_c2, o, t, e->ns_c2, o, t, e->ns_c2, t, e->ns_c2, o))
		return -EIO;
	/* TC (auto on veths): the kernel's default offloads stay. */
	if (!e->attach || strcmp(e->attach, "xdp"))
		return 0;
	/* A frame XDP_REDIRECTs into a veth is only received when the peer
	 * has XDP or GRO; and redirected TCP must carry full checksums. */
	if (fg_sh("ip netns exec %s ethtool -K %scg tx off tso off gso off gro on >/dev/null && "
		  "ip netns exec %s ethtool -K %s1g tx off tso off gso off gro on >/dev/null && "
		  "ip netns exec %s ethtool -K %s2g tx off tso off gso off gro on >/dev/null",
		  e->ns_cli, t, e->ns_c1, t, e->ns_c2, t))
		return -EIO;
	return 0;
}

static bool agent_alive(struct ctl_e2e *e)
{
	if (e->agent <= 0)
		return false;
	if (waitpid(e->agent, &e->agent_status, WNOHANG) == e->agent) {
		printf("e2e: the agent died (wait status 0x%x)\n", e->agent_status);
		e->agent = 0;
		show_file("agent log", e->agent_log, e->agent_log_off);
		return false;
	}
	return true;
}

static int agent_start(struct ctl_e2e *e, bool keep_pins)
{
	char netns[64], ifc[3][IF_NAMESIZE + 8], listen[48];
	char *argv[] = { "nsenter", netns, e->agent_bin, "-c", e->cfg, "-l", listen,
			 "-i", ifc[0], "-i", ifc[1], "-i", ifc[2], "-p", e->pin,
			 NULL, NULL, NULL, NULL };
	int argc = 15;

	if (e->attach) {
		argv[argc++] = "--attach";
		argv[argc++] = (char *)e->attach;
	}
	if (keep_pins)
		argv[argc++] = "--keep-pins";
	long long deadline;

	snprintf(netns, sizeof(netns), "--net=/run/netns/%s", e->ns_gw);
	snprintf(listen, sizeof(listen), "%s:%d", e->listen_addr, HTTP_PORT);
	snprintf(ifc[0], sizeof(ifc[0]), "%sgc", e->t);
	snprintf(ifc[1], sizeof(ifc[1]), "%sg1", e->t);
	snprintf(ifc[2], sizeof(ifc[2]), "%sg2", e->t);

	e->agent_log_off = file_size(e->agent_log);
	printf("e2e: starting the agent%s (log %s from byte %ld)\n",
	       keep_pins ? " with --keep-pins" : "", e->agent_log, e->agent_log_off);
	e->agent = e2e_spawn(e->agent_log, NULL, argv);
	if (e->agent < 0) {
		e->agent = 0;
		return -errno;
	}
	for (deadline = e2e_now_ms() + e2e_scaled_ms(10000); e2e_now_ms() < deadline;
	     e2e_sleep_ms(20)) {
		if (log_find(e->agent_log, e->agent_log_off, "fleetgate-agent ready", NULL, 0) &&
		    access(e->sock, F_OK) == 0)
			return 0;
		if (waitpid(e->agent, &e->agent_status, WNOHANG) == e->agent) {
			printf("e2e: the agent exited early (status 0x%x)\n", e->agent_status);
			e->agent = 0;
			show_file("agent log", e->agent_log, e->agent_log_off);
			return -ECHILD;
		}
	}
	printf("e2e: the agent did not get ready within %lld s\n", e2e_scaled_ms(10000) / 1000);
	show_file("agent log", e->agent_log, e->agent_log_off);
	return -ETIMEDOUT;
}

/* SIGTERM; the exit status (0 expected) or -1. */
static int agent_stop(struct ctl_e2e *e)
{
	int status = e2e_stop_child(&e->agent, SIGTERM, 5000);

	if (status == -1)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ------------------------------------------------------------------ */
/* the config directory                                                */
/* ------------------------------------------------------------------ */

static const char gateway_yaml[] =
	"apiVersion: mse.alibabacloud.com/v1alpha1\n"
	"kind: MseIngressConfig\n"
	"metadata:\n"
	"  name: " GATEWAY "\n"
	"  annotations:\n"
	"    mse.alibabacloud.com/remote-clusters: " CLUSTER1 "," CLUSTER2 "\n"
	"spec:\n"
	"  common:\n"
	"    instance:\n"
	"      replicas: 3\n"
	"      spec: 2c4g\n"
	"    network:\n"
	"      vSwitches:\n"
	"        - vsw-2zeb1m3xo7yv8cqp0mzqk\n"
	"  ingress:\n"
	"    local:\n"
	"      ingressClass: mse\n"
	"  name: mse-ingress\n";

static void fleet_lb_yaml(char *buf, size_t len, const char *name, int port)
{
	snprintf(buf, len,
		 "apiVersion: v1\n"
		 "kind: Service\n"
		 "metadata:\n"
		 "  name: %s\n"
		 "  namespace: web-demo\n"
		 "spec:\n"
		 "  type: LoadBalancer\n"
		 "  ports:\n"
		 "  - name: tcp\n"
		 "    protocol: TCP\n"
		 "    port: %d\n",
		 name, port);
}

static void svc_yaml(char *buf, size_t len, const char *name, const char *port_name,
		     int port, int target)
{
	snprintf(buf, len,
		 "apiVersion: v1\n"
		 "kind: Service\n"
		 "metadata:\n"
		 "  name: %s\n"
		 "  namespace: web-demo\n"
		 "spec:\n"
		 "  type: ClusterIP\n"
		 "  selector:\n"
		 "    app: %s\n"
		 "  ports:\n"
		 "  - name: %s\n"
		 "    protocol: TCP\n"
		 "    port: %d\n"
		 "    targetPort: %d\n",
		 name, name, port_name, port, target);
}

/* An EndpointSlice of service name with the pods 10.O.<c+1>.<first..> */
static void eps_yaml(struct ctl_e2e *e, char *buf, size_t len, int cluster, const char *name,
		     const char *port_name, int port, int first_host, int n_pods)
{
	char addr[32];
	size_t off;
	int i;

	off = snprintf(buf, len,
		       "apiVersion: discovery.k8s.io/v1\n"
		       "kind: EndpointSlice\n"
		       "metadata:\n"
		       "  name: %s-%c%c7k2p\n"
		       "  namespace: web-demo\n"
		       "  labels:\n"
		       "    kubernetes.io/service-name: %s\n"
		       "    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io\n"
		       "addressType: IPv4\n"
		       "ports:\n"
		       "- name: %s\n"
		       "  protocol: TCP\n"
		       "  port: %d\n"
		       "endpoints:\n",
		       name, 'a' + cluster, 'x', name, port_name, port);
	for (i = 0; i < n_pods && off < len; i++) {
		pod_addr(e, cluster, first_host + i, addr, sizeof(addr));
		off += snprintf(buf + off, len - off,
				"- addresses:\n"
				"  - %s\n"
				"  conditions:\n"
				"    ready: true\n"
				"    serving: true\n"
				"    terminating: false\n"
				"  nodeName: node-%c\n"
				"  targetRef:\n"
				"    kind: Pod\n"
				"    name: %s-7d9c6b5f4-%c%d\n"
				"    namespace: web-demo\n",
				addr, 'a' + i, name, 'a' + cluster, i);
	}
}

static int write_cluster_svc(struct ctl_e2e *e, int c)
{
	char rel[128], buf[1024];

	snprintf(rel, sizeof(rel), "clusters/%s/svc.yaml", cluster_ids[c]);
	svc_yaml(buf, sizeof(buf), "tcp-echo", "tcp", L4_PORT, POD_PORT);
	return cfg_write(e, rel, buf);
}

static int write_cluster_eps(struct ctl_e2e *e, int c, int n_pods)
{
	char rel[128], buf[4096];

	snprintf(rel, sizeof(rel), "clusters/%s/eps.yaml", cluster_ids[c]);
	eps_yaml(e, buf, sizeof(buf), c, "tcp-echo", "tcp", POD_PORT, 2, n_pods);
	return cfg_write(e, rel, buf);
}

static int cfg_setup(struct ctl_e2e *e)
{
	char path[PATH_MAX + 64], buf[1024];
	int c, err;

	/* One per run (e2e_control and e2e_control_xdp share the tmpdir). */
	snprintf(e->cfg, sizeof(e->cfg), "%s/config-%s", test__tmpdir(), e->t);
	for (c = 0; c < 2; c++) {
		snprintf(path, sizeof(path), "%s/clusters/%s", e->cfg, cluster_ids[c]);
		if (fg_sh("mkdir -p %s %s/fleet", path, e->cfg))
			return -EIO;
	}
	err = cfg_write(e, "fleet/gateway.yaml", gateway_yaml);
	fleet_lb_yaml(buf, sizeof(buf), "tcp-echo", L4_PORT);
	err = err ?: cfg_write(e, "fleet/l4.yaml", buf);
	err = err ?: write_cluster_svc(e, C1);
	err = err ?: write_cluster_svc(e, C2);
	err = err ?: write_cluster_eps(e, C1, 2);
	err = err ?: write_cluster_eps(e, C2, 1);
	if (!err) {
		e->c2_svc = true;
		e->c2_pods = 1;
	}
	return err;
}

/* ------------------------------------------------------------------ */
/* what the data plane does                                            */
/* ------------------------------------------------------------------ */

/* Service id of the L4 listener on port, from `fleetgatectl listeners`. */
static int l4_service_id(struct ctl_e2e *e, int port, bool quiet)
{
	json_t *doc = ctl_json(e, quiet, "listeners"), *it;
	int sid = -ENOENT;
	size_t i;

	json_array_foreach(json_object_get(doc, "items"), i, it) {
		if (json_integer_value(json_object_get(it, "port")) == port &&
		    !strcmp(json_string_value(json_object_get(it, "kind")) ?: "", "l4"))
			sid = (int)json_integer_value(json_object_get(it, "service_id"));
	}
	json_decref(doc);
	return sid;
}

struct ring_view {
	int weight[2];
	int slots[2];
	int up[2]; /* backends up in the cluster's backend ring */
};

static bool ring_read(struct ctl_e2e *e, int port, struct ring_view *v, bool quiet)
{
	json_t *doc, *it, *br, *be;
	char args[64];
	size_t i, j;
	int sid, c;

	memset(v, 0, sizeof(*v));
	sid = l4_service_id(e, port, quiet);
	if (sid < 0)
		return false;
	snprintf(args, sizeof(args), "rings %d", sid);
	doc = ctl_json(e, quiet, args);
	if (!doc)
		return false;
	json_array_foreach(json_object_get(json_object_get(doc, "cluster_ring"), "clusters"), i, it) {
		const char *name = json_string_value(json_object_get(it, "name")) ?: "";

		for (c = 0; c < 2; c++) {
			if (strcmp(name, cluster_ids[c]))
				continue;
			v->weight[c] = (int)json_integer_value(json_object_get(it, "weight"));
			v->slots[c] = (int)json_integer_value(json_object_get(it, "slots"));
		}
	}
	json_array_foreach(json_object_get(doc, "backend_rings"), i, br) {
		const char *name = json_string_value(json_object_get(br, "cluster")) ?: "";

		for (c = 0; c < 2; c++) {
			if (strcmp(name, cluster_ids[c]))
				continue;
			json_array_foreach(json_object_get(br, "backends"), j, be)
				if (!strcmp(json_string_value(json_object_get(be, "state")) ?: "", "up"))
					v->up[c]++;
		}
	}
	json_decref(doc);
	return true;
}

/* Cluster c of the ring has want healthy pods taking traffic (0: none). */
static bool ring_has(const struct ring_view *v, int c, int want)
{
	if (!want)
		return v->slots[c] == 0;
	return v->weight[c] == want && v->slots[c] > 0 && v->up[c] == want;
}

/* Polls the rings of the L4 service on port until cluster 1 and 2 take
 * traffic from w1 and w2 healthy pods. Returns the ms it took, or -1. */
static long wait_ring(struct ctl_e2e *e, int port, int w1, int w2, unsigned int timeout_ms)
{
	long long t0 = e2e_now_ms(), deadline = t0 + timeout_ms;
	struct ring_view v;
	bool ok;

	for (;;) {
		ok = ring_read(e, port, &v, true) && ring_has(&v, C1, w1) && ring_has(&v, C2, w2);
		if (ok)
			return (long)(e2e_now_ms() - t0);
		if (e2e_now_ms() >= deadline)
			break;
		e2e_sleep_ms(10);
	}
	printf("e2e: port %d: wanted %d:%d pods in the rings; last seen weights %d:%d, slots %d:%d, up %d:%d\n",
	       port, w1, w2, v.weight[C1], v.weight[C2], v.slots[C1], v.slots[C2], v.up[C1],
	       v.up[C2]);
	ring_read(e, port, &v, false); /* into the log */
	return -1;
}

/* The config and pods of the baseline: cluster 1 two pods, cluster 2 one,
 * all up, and the rings showing it. */
static bool baseline(struct ctl_e2e *e)
{
	long ms;
	int i;

	if (!ASSERT_TRUE(agent_alive(e), "agent running"))
		return false;
	for (i = SRV_1A; i <= SRV_2A; i++)
		if (!ASSERT_OK(server_start(e, i), e->srv[i].name))
			return false;
	if (!e->c2_svc) {
		if (!ASSERT_OK(write_cluster_svc(e, C2), "restore cluster2 svc.yaml"))
			return false;
		e->c2_svc = true;
	}
	if (e->c2_pods != 1) {
		if (!ASSERT_OK(write_cluster_eps(e, C2, 1), "cluster2 back to one pod"))
			return false;
		e->c2_pods = 1;
	}
	ms = wait_ring(e, L4_PORT, 2, 1, 5000);
	return _CHECK(ms < 0, "baseline: rings 2:1", "the rings did not show 2:1 pods within 5 s");
}

/* The data plane's verdict counters (drop/pass/tx reasons), into the log:
 * why connections failed. */
static void show_counters(struct ctl_e2e *e, const char *why)
{
	char *out;
	int rc;

	printf("e2e: verdict counters (%s):\n", why);
	out = e2e_capture(&rc, false, "%s -p %s counters 2>&1", e->ctl_bin, e->pin);
	free(out);
}

/* ------------------------------------------------------------------ */
/* traffic                                                             */
/* ------------------------------------------------------------------ */

struct ctl_result {
	int by_server[NR_SRV];
	int cluster[2];
	int others;
	int errors;
	int total;
};

static int server_by_name(struct ctl_e2e *e, const char *name)
{
	int i;

	for (i = 0; i < NR_SRV; i++)
		if (!strcmp(name, e->srv[i].name))
			return i;
	return -1;
}

static bool run_client(struct ctl_e2e *e, int port, int n, struct ctl_result *r)
{
	json_t *root, *answers, *v;
	json_error_t jerr;
	const char *name;
	long long t0 = e2e_now_ms();
	char *out;
	int status, i;

	memset(r, 0, sizeof(*r));
	out = e2e_capture(&status, true,
		      "ip netns exec %s python3 %s/tcp_client.py %s %d %d --timeout 1 --max-time %lld",
		      e->ns_cli, e->scripts, e->listen_addr, port, n, e2e_scaled_ms(10000) / 1000);
	if (!out)
		return false;
	printf("e2e: client, %d connections to %s:%d (%lld ms): %s", n, e->listen_addr, port,
	       e2e_now_ms() - t0, out);
	root = status == 0 ? json_loads(out, 0, &jerr) : NULL;
	free(out);
	if (!root) {
		printf("e2e: client failed (exit %d) or printed no JSON\n", status);
		return false;
	}
	answers = json_object_get(root, "answers");
	r->errors = (int)json_integer_value(json_object_get(root, "errors"));
	json_object_foreach(answers, name, v) {
		int k = (int)json_integer_value(v);

		i = server_by_name(e, name);
		if (i < 0) {
			r->others += k;
			continue;
		}
		r->by_server[i] += k;
		r->cluster[e->srv[i].cluster] += k;
	}
	r->total = r->cluster[C1] + r->cluster[C2] + r->others;
	json_decref(root);
	return true;
}

static bool share_ok(int got, int n, int want_pct, int tol_pct)
{
	return got * 100 >= (want_pct - tol_pct) * n && got * 100 <= (want_pct + tol_pct) * n;
}

/* n connections; cluster 1 must take c1_pct% (+-10 points) of them, with
 * no error, and every pod in the list must answer some. */
static bool split_check(struct ctl_e2e *e, int n, int c1_pct, const char *tag,
			const int *pods, int n_pods)
{
	struct ctl_result r;
	char name[128];
	bool ok = true;
	int i;

	snprintf(name, sizeof(name), "%s: client ran", tag);
	if (!ASSERT_TRUE(run_client(e, L4_PORT, n, &r), name))
		return false;
	printf("e2e: %s: cluster1 %d (%d%%), cluster2 %d (%d%%), errors %d; per pod:", tag,
	       r.cluster[C1], r.cluster[C1] * 100 / n, r.cluster[C2], r.cluster[C2] * 100 / n,
	       r.errors);
	for (i = 0; i < NR_SRV; i++)
		if (r.by_server[i])
			printf(" %s %d", e->srv[i].name, r.by_server[i]);
	printf("\n");
	snprintf(name, sizeof(name), "%s: errors", tag);
	ok &= ASSERT_EQ(r.errors, 0, name);
	if (r.errors)
		show_counters(e, name);
	snprintf(name, sizeof(name), "%s: answers", tag);
	ok &= ASSERT_EQ(r.total, n, name);
	snprintf(name, sizeof(name), "%s: unknown answers", tag);
	ok &= ASSERT_EQ(r.others, 0, name);
	snprintf(name, sizeof(name), "%s: cluster1 share %d%% +-10", tag, c1_pct);
	ok &= _CHECK(!share_ok(r.cluster[C1], n, c1_pct, 10), name,
		     "cluster1 got %d of %d connections", r.cluster[C1], n);
	snprintf(name, sizeof(name), "%s: cluster2 share %d%% +-10", tag, 100 - c1_pct);
	ok &= _CHECK(!share_ok(r.cluster[C2], n, 100 - c1_pct, 10), name,
		     "cluster2 got %d of %d connections", r.cluster[C2], n);
	for (i = 0; i < n_pods; i++) {
		snprintf(name, sizeof(name), "%s: pod %s answered", tag, e->srv[pods[i]].name);
		ok &= ASSERT_GT(r.by_server[pods[i]], 0, name);
	}
	return ok;
}

static const int baseline_pods[] = { SRV_1A, SRV_1B, SRV_2A };

/* control_watch.py in the background: new connections one after another
 * for duration seconds; returns once it has run for 0.3 s (or failed). */
static pid_t watch_start(struct ctl_e2e *e, const char *out, double duration)
{
	char script[PATH_MAX + 32], vip[32], port[16], dur[32], ready[PATH_MAX + 8];
	char *argv[] = { "ip", "netns", "exec", e->ns_cli, "python3", script, vip, port,
			 "--duration", dur, "--ready-file", ready, NULL };
	long long deadline;
	int status;
	pid_t pid;

	snprintf(script, sizeof(script), "%s/control_watch.py", e->scripts);
	snprintf(vip, sizeof(vip), "%s", e->listen_addr);
	snprintf(port, sizeof(port), "%d", L4_PORT);
	snprintf(dur, sizeof(dur), "%.2f", duration);
	snprintf(ready, sizeof(ready), "%s.ready", out);
	unlink(out);
	unlink(ready);
	pid = e2e_spawn(out, NULL, argv);
	if (pid <= 0)
		return pid;
	for (deadline = e2e_now_ms() + 5000; e2e_now_ms() < deadline; e2e_sleep_ms(5)) {
		if (access(ready, F_OK) == 0)
			return pid;
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	printf("e2e: the watcher did not start\n");
	show_file("watcher", out, 0);
	e2e_stop_child(&pid, SIGKILL, 1000);
	return -1;
}

struct watch_event {
	long long t;
	int srv;     /* -1: error */
	char what[48];
};

/* Waits for the watcher and loads its events (malloc'ed into *evs). */
static int watch_finish(struct ctl_e2e *e, pid_t *pid, const char *out, struct watch_event **evs)
{
	json_t *doc = NULL, *ev;
	json_error_t jerr;
	char *all, *line;
	int status, n = 0;
	size_t i;

	*evs = NULL;
	if (!e2e_reap(*pid, &status, 15000)) {
		e2e_stop_child(pid, SIGKILL, 1000);
		printf("e2e: the watcher did not finish\n");
		return -1;
	}
	*pid = 0;
	all = read_all(out, 0);
	line = all ? strchr(all, '{') : NULL;
	if (line)
		doc = json_loads(line, JSON_DISABLE_EOF_CHECK, &jerr);
	if (!doc) {
		printf("e2e: watcher output (status 0x%x) is not JSON: %s\n", status, all ?: "");
		free(all);
		return -1;
	}
	free(all);
	*evs = calloc(json_array_size(json_object_get(doc, "events")) + 1, sizeof(**evs));
	json_array_foreach(json_object_get(doc, "events"), i, ev) {
		const char *who = json_string_value(json_array_get(ev, 1)) ?: "?";

		(*evs)[n].t = json_integer_value(json_array_get(ev, 0));
		(*evs)[n].srv = who[0] == '!' ? -1 : server_by_name(e, who);
		snprintf((*evs)[n].what, sizeof((*evs)[n].what), "%s", who);
		n++;
	}
	json_decref(doc);
	return n;
}

/* Around time t (ms, CLOCK_MONOTONIC): when did the last "bad" connection
 * start (an error, or an answer from cluster bad_cluster), and how many
 * connections were made before and after t. */
struct watch_summary {
	int before, after;         /* connections */
	int c2_before;             /* answers from cluster2 before t */
	int bad_after;             /* bad connections after t */
	int errors_after;
	long last_bad_ms;          /* relative to t, -1 none */
	long first_good_c2_ms;     /* first cluster2 answer after t, -1 none */
	int after_cutoff;          /* connections after the last bad one */
};

static void watch_summarize(struct ctl_e2e *e, const struct watch_event *evs, int n, long long t,
			    int bad_cluster, struct watch_summary *s)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->last_bad_ms = -1;
	s->first_good_c2_ms = -1;
	for (i = 0; i < n; i++) {
		bool err = evs[i].srv < 0;
		bool bad = err || (bad_cluster >= 0 && e->srv[evs[i].srv].cluster == bad_cluster);

		if (evs[i].t < t) {
			s->before++;
			if (!err && e->srv[evs[i].srv].cluster == C2)
				s->c2_before++;
			continue;
		}
		s->after++;
		if (err)
			s->errors_after++;
		if (!err && e->srv[evs[i].srv].cluster == C2 && s->first_good_c2_ms < 0)
			s->first_good_c2_ms = (long)(evs[i].t - t);
		if (bad) {
			s->bad_after++;
			s->last_bad_ms = (long)(evs[i].t - t);
			s->after_cutoff = 0;
		} else {
			s->after_cutoff++;
		}
	}
}

static void watch_print(const struct watch_event *evs, int n, long long t)
{
	int i, runs = 0;

	/* Collapsed runs: "+120ms..+340ms cluster1-a x12". */
	for (i = 0; i < n; i++) {
		int j = i;

		while (j + 1 < n && !strcmp(evs[j + 1].what, evs[i].what))
			j++;
		if (runs++ < 60)
			printf("e2e:   %+lldms..%+lldms %s x%d\n", evs[i].t - t, evs[j].t - t,
			       evs[i].what, j - i + 1);
		i = j;
	}
}

/* ------------------------------------------------------------------ */
/* subtests                                                            */
/* ------------------------------------------------------------------ */

static void subtest_status(struct ctl_e2e *e)
{
	char *out, *line, name[64] = "", status[32] = "", age[32] = "";
	json_t *doc, *remote, *want, *it;
	int rc, c;
	size_t i;

	if (!baseline(e))
		return;
	out = e2e_capture(&rc, false, "%s -p %s get mseingressconfig %s 2>&1", e->ctl_bin, e->pin,
		      GATEWAY);
	if (!ASSERT_OK_PTR(out, "fleetgatectl ran"))
		return;
	ASSERT_EQ(rc, 0, "get mseingressconfig exit status");
	ASSERT_TRUE(strstr(out, "NAME") && strstr(out, "STATUS") && strstr(out, "AGE"),
		    "NAME STATUS AGE header");
	line = strstr(out, GATEWAY);
	if (ASSERT_OK_PTR(line, "gateway listed"))
		sscanf(line, "%63s %31s %*s %31s", name, status, age); /* NAME STATUS REPLICAS AGE */
	free(out);
	ASSERT_STREQ(name, GATEWAY, "NAME");
	printf("e2e: gateway %s status %s (age %s)%s\n", name, status, age,
	       !strcmp(status, "Running") ? ": the HTTP listener is not open (yet)" : "");
	_CHECK(strcmp(status, "Running") && strcmp(status, "Listening"), "STATUS Running or Listening",
	       "status '%s'", status);
	ASSERT_TRUE(age[0] != '\0', "AGE shown");

	doc = ctl_json(e, false, "get mseingressconfig " GATEWAY);
	if (ASSERT_OK_PTR(doc, "get mseingressconfig -o json")) {
		remote = json_object_get(json_object_get(doc, "status"), "remoteClusters");
		want = json_pack("[{s:s},{s:s}]", "clusterId", CLUSTER1, "clusterId", CLUSTER2);
		if (!ASSERT_TRUE(json_equal(remote, want), "status.remoteClusters")) {
			char *s = json_dumps(remote, JSON_COMPACT);

			printf("e2e: status.remoteClusters is %s\n", s ?: "(null)");
			free(s);
		}
		ASSERT_STREQ(json_string_value(json_object_get(json_object_get(doc, "status"),
							       "status")),
			     status, "status.status as in the table");
		json_decref(want);
		json_decref(doc);
	}

	/* The data plane's summary: each interface in the mode the agent
	 * chose, attached in the kernel (asked through the pinned links), its
	 * address as the SNAT source; the SNAT ranges. */
	doc = ctl_status_json(e);
	if (ASSERT_OK_PTR(doc, "status -o json")) {
		json_t *ifs = json_object_get(doc, "interfaces");
		json_t *sn = json_object_get(doc, "snat");
		char want[32];

		ASSERT_EQ(json_array_size(ifs), 3, "status: three interfaces");
		json_array_foreach(ifs, i, it) {
			const char *n = json_string_value(json_object_get(it, "name")) ?: "?";

			printf("e2e: status: %s %s %s prog %lld\n", n,
			       json_string_value(json_object_get(it, "attach")) ?: "?",
			       json_string_value(json_object_get(it, "kernel")) ?: "?",
			       (long long)json_integer_value(json_object_get(it, "prog_id")));
			ASSERT_STREQ(json_string_value(json_object_get(it, "attach")), attach_want(e),
				     "status: attach mode");
			ASSERT_STREQ(json_string_value(json_object_get(it, "kernel")), "attached",
				     "status: attached in the kernel");
			ASSERT_GT(json_integer_value(json_object_get(it, "prog_id")), 0,
				  "status: program id");
			if (!strcmp(n + strlen(e->t), "g1")) {
				snprintf(want, sizeof(want), "10.%d.1.1", e->o);
				ASSERT_STREQ(json_string_value(json_array_get(
						     json_object_get(it, "snat_v4"), 0)), want,
					     "status: g1's SNAT address");
			}
		}
		ASSERT_GE(json_array_size(json_object_get(sn, "port_ranges")), 1,
			  "status: SNAT port ranges");
		ASSERT_EQ(json_integer_value(json_object_get(sn, "time_wait_s")), 60,
			  "status: SNAT TIME_WAIT");
		json_decref(doc);
	}

	out = e2e_capture(&rc, false, "%s -p %s get clusters 2>&1", e->ctl_bin, e->pin);
	free(out);
	ASSERT_EQ(rc, 0, "get clusters exit status");
	doc = ctl_json(e, false, "get clusters");
	if (!ASSERT_OK_PTR(doc, "get clusters -o json"))
		return;
	for (c = 0; c < 2; c++) {
		bool found = false;
		char tag[96];

		json_array_foreach(json_object_get(doc, "items"), i, it) {
			if (strcmp(json_string_value(json_object_get(it, "id")) ?: "", cluster_ids[c]))
				continue;
			found = true;
			snprintf(tag, sizeof(tag), "cluster%d state", c + 1);
			ASSERT_STREQ(json_string_value(json_object_get(it, "state")), "Ready", tag);
			snprintf(tag, sizeof(tag), "cluster%d ready endpoints", c + 1);
			ASSERT_EQ(json_integer_value(json_object_get(it, "readyEndpoints")),
				  c == C1 ? 2 : 1, tag);
			snprintf(tag, sizeof(tag), "cluster%d healthy endpoints", c + 1);
			ASSERT_EQ(json_integer_value(json_object_get(it, "healthyEndpoints")),
				  c == C1 ? 2 : 1, tag);
		}
		snprintf(tag, sizeof(tag), "cluster%d listed", c + 1);
		ASSERT_TRUE(found, tag);
	}
	ASSERT_EQ(json_array_size(json_object_get(doc, "items")), 2, "two clusters");
	json_decref(doc);
}

static void subtest_split_by_pod_count(struct ctl_e2e *e)
{
	if (!baseline(e))
		return;
	split_check(e, 300, 67, "2:1 pods", baseline_pods, 3);
}

static void subtest_scale_shifts_ratio(struct ctl_e2e *e)
{
	static const int pods[] = { SRV_1A, SRV_1B, SRV_2A, SRV_2B, SRV_2C };
	json_t *doc, *it;
	long long t0;
	long ms;
	size_t i;

	if (!baseline(e))
		return;
	if (!ASSERT_OK(server_start(e, SRV_2B), "start cluster2-b") ||
	    !ASSERT_OK(server_start(e, SRV_2C), "start cluster2-c"))
		return;
	t0 = e2e_now_ms();
	if (!ASSERT_OK(write_cluster_eps(e, C2, 3), "cluster2 EndpointSlice with 3 pods"))
		return;
	e->c2_pods = 3;
	ms = wait_ring(e, L4_PORT, 2, 3, 3000);
	if (ms >= 0)
		ms = (long)(e2e_now_ms() - t0);
	printf("e2e: rings at 2:3 pods %ld ms after the rename\n", ms);
	if (!_CHECK(ms < 0, "rings 2:3", "not within 3 s"))
		return;
	_CHECK(ms > 1000, "rings 2:3 within 1 s", "took %ld ms", ms);
	doc = ctl_json(e, false, "get clusters");
	json_array_foreach(json_object_get(doc, "items"), i, it)
		if (!strcmp(json_string_value(json_object_get(it, "id")) ?: "", CLUSTER2))
			ASSERT_EQ(json_integer_value(json_object_get(it, "readyEndpoints")), 3,
				  "get clusters: cluster2 ready endpoints");
	json_decref(doc);
	split_check(e, 300, 40, "2:3 pods", pods, 5);
}

static void subtest_service_deleted_failover(struct ctl_e2e *e)
{
	char rel[128], out[PATH_MAX];
	struct watch_event *evs = NULL;
	struct watch_summary s;
	long long t0;
	pid_t w;
	long ms;
	int n;

	if (!baseline(e))
		return;
	snprintf(rel, sizeof(rel), "clusters/%s/svc.yaml", CLUSTER2);
	snprintf(out, sizeof(out), "%s/watch-svc.json", test__tmpdir());

	/* Delete cluster2's Service while connections keep coming. */
	w = watch_start(e, out, 1.8);
	if (!ASSERT_GT(w, 0, "watcher started"))
		return;
	t0 = e2e_now_ms();
	ASSERT_OK(cfg_unlink(e, rel), "delete cluster2 svc.yaml");
	e->c2_svc = false;
	ms = wait_ring(e, L4_PORT, 2, 0, 3000);
	printf("e2e: cluster2 out of the ring %ld ms after the delete\n", ms);
	_CHECK(ms < 0 || ms > 1000, "cluster2 out of the ring within 1 s", "took %ld ms", ms);
	n = watch_finish(e, &w, out, &evs);
	if (ASSERT_GT(n, 0, "watcher events")) {
		watch_summarize(e, evs, n, t0, C2, &s);
		watch_print(evs, n, t0);
		printf("e2e: delete: %d connections before (%d to cluster2), %d after: last to cluster2 at %+ld ms, %d errors\n",
		       s.before, s.c2_before, s.after, s.last_bad_ms, s.errors_after);
		ASSERT_GT(s.c2_before, 0, "cluster2 answered before the delete");
		if (!ASSERT_EQ(s.errors_after, 0, "no error across the delete"))
			show_counters(e, "errors across the delete");
		_CHECK(s.last_bad_ms > 1000, "cluster2 cut off within 1 s", "last answer at %+ld ms",
		       s.last_bad_ms);
		ASSERT_GT(s.after_cutoff, 20, "connections to cluster1 after the cut-off");
	}
	free(evs);
	evs = NULL;
	split_check(e, 100, 100, "Service deleted in cluster2", (const int[]){ SRV_1A, SRV_1B }, 2);

	/* And back. */
	w = watch_start(e, out, 1.8);
	if (!ASSERT_GT(w, 0, "watcher started"))
		return;
	t0 = e2e_now_ms();
	ASSERT_OK(write_cluster_svc(e, C2), "put cluster2 svc.yaml back");
	e->c2_svc = true;
	ms = wait_ring(e, L4_PORT, 2, 1, 3000);
	printf("e2e: cluster2 back in the ring %ld ms after the write\n", ms);
	_CHECK(ms < 0 || ms > 1000, "cluster2 back in the ring within 1 s", "took %ld ms", ms);
	n = watch_finish(e, &w, out, &evs);
	if (ASSERT_GT(n, 0, "watcher events")) {
		watch_summarize(e, evs, n, t0, -1, &s);
		watch_print(evs, n, t0);
		printf("e2e: restore: first cluster2 answer at %+ld ms, %d errors\n",
		       s.first_good_c2_ms, s.errors_after);
		if (!ASSERT_EQ(s.errors_after, 0, "no error across the restore"))
			show_counters(e, "errors across the restore");
		_CHECK(s.first_good_c2_ms < 0 || s.first_good_c2_ms > 1000,
		       "cluster2 answers again within 1 s", "first answer at %+ld ms",
		       s.first_good_c2_ms);
	}
	free(evs);
	split_check(e, 300, 67, "Service restored", baseline_pods, 3);
}

static void subtest_pods_die_failover(struct ctl_e2e *e)
{
	char out[PATH_MAX];
	struct watch_event *evs = NULL;
	struct watch_summary s;
	long long t0;
	long ms, off;
	pid_t w;
	int n;

	if (!baseline(e))
		return;
	snprintf(out, sizeof(out), "%s/watch-pods.json", test__tmpdir());
	off = file_size(e->agent_log);

	w = watch_start(e, out, 2.8);
	if (!ASSERT_GT(w, 0, "watcher started"))
		return;
	t0 = e2e_now_ms();
	e2e_stop_child(&e->srv[SRV_2A].pid, SIGKILL, 2000);
	printf("e2e: killed cluster2's only pod (%s)\n", e->srv[SRV_2A].name);
	ms = wait_ring(e, L4_PORT, 2, 0, 3000);
	printf("e2e: cluster2 out of the ring %lld ms after the kill\n",
	       ms < 0 ? -1 : e2e_now_ms() - t0);
	n = watch_finish(e, &w, out, &evs);
	if (ASSERT_GT(n, 0, "watcher events")) {
		watch_summarize(e, evs, n, t0, C2, &s);
		watch_print(evs, n, t0);
		printf("e2e: FAILOVER TIME %ld ms (last error or cluster2 answer after the kill); "
		       "%d errors, %d connections after the kill, %d after the cut-off\n",
		       s.last_bad_ms < 0 ? 0 : s.last_bad_ms, s.errors_after, s.after,
		       s.after_cutoff);
		ASSERT_GT(s.c2_before, 0, "cluster2 answered before the kill");
		/* 2 failed probes 250 ms apart, plus one interval of slack. */
		_CHECK(s.last_bad_ms > 1000, "failover within 1 s", "last error at %+ld ms",
		       s.last_bad_ms);
		ASSERT_GT(s.after_cutoff, 40, "connections to cluster1 after the cut-off");
	}
	free(evs);
	evs = NULL;
	if (!_CHECK(ms < 0, "cluster2 out of the ring", "still in after 3 s"))
		return;
	ASSERT_TRUE(log_find(e->agent_log, off, "is DOWN", NULL, 0),
		    "agent logged the backend DOWN");
	split_check(e, 100, 100, "cluster2's pod dead", (const int[]){ SRV_1A, SRV_1B }, 2);

	/* The pod comes back. */
	w = watch_start(e, out, 2.5);
	if (!ASSERT_GT(w, 0, "watcher started"))
		return;
	if (!ASSERT_OK(server_start(e, SRV_2A), "restart cluster2's pod"))
		return;
	t0 = e2e_now_ms();
	ms = wait_ring(e, L4_PORT, 2, 1, 3000);
	printf("e2e: cluster2 back in the ring %ld ms after its pod listens\n", ms);
	n = watch_finish(e, &w, out, &evs);
	if (ASSERT_GT(n, 0, "watcher events")) {
		watch_summarize(e, evs, n, t0, -1, &s);
		watch_print(evs, n, t0);
		printf("e2e: RECOVERY TIME %ld ms (first cluster2 answer after the pod listens), %d errors\n",
		       s.first_good_c2_ms, s.errors_after);
		if (!ASSERT_EQ(s.errors_after, 0, "no error across the recovery"))
			show_counters(e, "errors across the recovery");
		_CHECK(s.first_good_c2_ms < 0 || s.first_good_c2_ms > 1500,
		       "cluster2 answers again within 1.5 s", "first answer at %+ld ms",
		       s.first_good_c2_ms);
	}
	free(evs);
	if (!_CHECK(ms < 0, "cluster2 back in the ring", "still out after 3 s"))
		return;
	split_check(e, 300, 67, "after recovery", baseline_pods, 3);
}

/* The lowest descriptor number pid has free: the one its next socket
 * would get. A limit at it leaves the process no descriptor at all, even
 * where one closed below the highest left a hole. */
static int lowest_free_fd(pid_t pid)
{
	static bool used[65536];
	char path[64];
	struct dirent *de;
	DIR *dir;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	memset(used, 0, sizeof(used));
	while ((de = readdir(dir))) {
		n = atoi(de->d_name);
		if (de->d_name[0] != '.' && n >= 0 && n < (int)(sizeof(used) / sizeof(used[0])))
			used[n] = true;
	}
	closedir(dir);
	for (n = 0; n < (int)(sizeof(used) / sizeof(used[0])) && used[n]; n++)
		;
	return n;
}

/* hold_conns.py's status once it wrote it: its counts. */
static bool hold_status(const char *path, unsigned int timeout_ms, json_t **doc)
{
	long long deadline = e2e_now_ms() + timeout_ms;
	json_error_t jerr;

	while (e2e_now_ms() < deadline) {
		*doc = json_load_file(path, 0, &jerr);
		if (*doc)
			return true;
		e2e_sleep_ms(50);
	}
	return false;
}

/*
 * Issue: started by hand (soft limit 1,024 files), 1,100 idle HTTP clients
 * exhausted the agent's descriptors; the prober then took its own EMFILE
 * for failed probes and marked every backend down, L4 included. Now the
 * proxy refuses clients at its budget (the limit is read again, so
 * prlimit on the running agent counts), and a probe that cannot get a
 * socket marks nothing down.
 */
static void subtest_fd_limit_keeps_backends(struct ctl_e2e *e)
{
	char status_path[PATH_MAX], log[PATH_MAX], netns[64], n_arg[16], srcs[128], port[16];
	char *argv[] = { "nsenter", netns, "python3", NULL, e->listen_addr, port, n_arg,
			 "--src", srcs, "--status", status_path, "--hold", "30", NULL };
	char script[PATH_MAX + 32];
	json_t *st = NULL, *proxy = NULL;
	struct ring_view v;
	pid_t holder = 0;
	long off;
	int rc, fds;
	char *out, *limits;

	if (!baseline(e))
		return;
	limits = e2e_capture(&rc, true, "prlimit --pid %d --nofile --raw --noheadings -o SOFT,HARD",
			     (int)e->agent);
	if (!ASSERT_TRUE(limits && rc == 0, "the agent's file limit"))
		goto out;
	printf("e2e: the agent's file limit (soft, hard): %s", limits);
	snprintf(status_path, sizeof(status_path), "%s/hold-status.json", test__tmpdir());
	snprintf(log, sizeof(log), "%s/hold.log", test__tmpdir());
	snprintf(script, sizeof(script), "%s/hold_conns.py", e->scripts);
	argv[3] = script;
	snprintf(netns, sizeof(netns), "--net=/run/netns/%s", e->ns_cli);
	snprintf(n_arg, sizeof(n_arg), "%d", 1100);
	snprintf(port, sizeof(port), "%d", HTTP_PORT);
	snprintf(srcs, sizeof(srcs), "10.%d.0.2,10.%d.0.3,10.%d.0.4", e->o, e->o, e->o);
	unlink(status_path);
	if (!ASSERT_OK(fg_sh("ip -n %s addr add 10.%d.0.3/24 dev %scg && "
			     "ip -n %s addr add 10.%d.0.4/24 dev %scg",
			     e->ns_cli, e->o, e->t, e->ns_cli, e->o, e->t), "client addresses"))
		goto out;
	off = file_size(e->agent_log);

	/* The soft limit of an agent started from a Debian shell. Only the
	 * soft one: raising a hard limit back needs CAP_SYS_RESOURCE. */
	if (!ASSERT_OK(fg_sh("prlimit --pid %d --nofile=1024:", (int)e->agent), "prlimit 1024"))
		goto out;
	e2e_sleep_ms(300); /* the proxy reads the limit every 100 ms */
	holder = e2e_spawn(log, NULL, argv);
	if (!ASSERT_GT(holder, 0, "client holding 1,100 connections"))
		goto out;
	if (!ASSERT_TRUE(hold_status(status_path, 20000, &st), "client status")) {
		show_file("hold_conns", log, 0);
		goto out;
	}
	out = json_dumps(st, JSON_COMPACT);
	printf("e2e: 1,100 idle clients at a limit of 1,024 files: %s\n", out ? out : "?");
	free(out);
	ASSERT_GT(json_integer_value(json_object_get(st, "refused")), 0, "some clients refused");
	ASSERT_GT(json_integer_value(json_object_get(st, "held")), 100, "many clients admitted");
	/* Several probe rounds (250 ms) with the clients held: a backend
	 * marked down shows within two. */
	e2e_sleep_ms(1500);
	if (!ASSERT_TRUE(agent_alive(e), "agent running"))
		goto out;
	ASSERT_TRUE(ring_read(e, L4_PORT, &v, false) && ring_has(&v, C1, 2) && ring_has(&v, C2, 1),
		    "every backend still up while the clients are held");
	ASSERT_FALSE(log_find(e->agent_log, off, "is DOWN", NULL, 0), "no backend logged DOWN");
	split_check(e, 300, 67, "clients held at the file limit", baseline_pods, 3);
	proxy = ctl_json(e, true, "get proxy");
	{
		json_t *it = json_array_get(json_object_get(proxy, "items"), 0);

		ASSERT_GT(json_integer_value(json_object_get(it, "refusedFds")), 0,
			  "get proxy counts refusals at the budget");
		ASSERT_GT(json_integer_value(json_object_get(it, "fdBudget")), 0, "budget shown");
	}
	json_decref(proxy);
	proxy = NULL;

	/* Tighter still: no descriptor left at all. The probes cannot get a
	 * socket: local errors, nothing marked down, L4 keeps flowing. */
	/* The kernel gives the lowest free number, so the limit goes there,
	 * not to the count of what is open: a descriptor closed below the
	 * highest (a client, a probe) is a hole a probe would take. Another
	 * may close meanwhile: the limit follows until the prober meets
	 * EMFILE (at most 5 s). */
	for (int tries = 0; tries < 10; tries++) {
		fds = lowest_free_fd(e->agent);
		if (!ASSERT_GT(fds, 0, "agent's lowest free descriptor"))
			goto out;
		if (!ASSERT_OK(fg_sh("prlimit --pid %d --nofile=%d:", (int)e->agent, fds),
			       "prlimit to the lowest free descriptor"))
			goto out;
		e2e_sleep_ms(500);
		if (log_find(e->agent_log, off, "no backend is marked down for it", NULL, 0))
			break;
	}
	e2e_sleep_ms(1000);
	ASSERT_TRUE(ring_read(e, L4_PORT, &v, false) && ring_has(&v, C1, 2) && ring_has(&v, C2, 1),
		    "every backend still up without a descriptor to probe with");
	ASSERT_FALSE(log_find(e->agent_log, off, "is DOWN", NULL, 0), "no backend logged DOWN");
	ASSERT_TRUE(log_find(e->agent_log, off, "no backend is marked down for it", NULL, 0),
		    "the prober logged its local error");
	split_check(e, 300, 67, "no descriptor left", baseline_pods, 3);

out:
	if (limits) {
		unsigned long long soft = 0, hard = 0;

		if (sscanf(limits, "%llu %llu", &soft, &hard) == 2)
			fg_sh("prlimit --pid %d --nofile=%llu:", (int)e->agent, soft);
		free(limits);
	}
	if (holder > 0)
		e2e_stop_child(&holder, SIGTERM, 3000);
	fg_sh("ip -n %s addr del 10.%d.0.3/24 dev %scg; ip -n %s addr del 10.%d.0.4/24 dev %scg",
	      e->ns_cli, e->o, e->t, e->ns_cli, e->o, e->t);
	json_decref(st);
	/* Afterwards: the proxy takes clients again and counts what the
	 * prober met. */
	e2e_sleep_ms(300);
	out = e2e_capture(&rc, true, "ip netns exec %s curl -s -m 3 -o /dev/null -w '%%{http_code}' "
			  "http://%s:%d/", e->ns_cli, e->listen_addr, HTTP_PORT);
	ASSERT_TRUE(out && !strcmp(out, "404"), "HTTP answers again (404: no route here)");
	free(out);
	proxy = ctl_json(e, true, "get proxy");
	{
		json_t *it = json_array_get(json_object_get(proxy, "items"), 0);
		json_t *le = json_object_get(json_object_get(it, "health"), "localErrors");

		ASSERT_GT(json_integer_value(json_object_get(le, "EMFILE")), 0,
			  "get proxy: the prober's EMFILE counted as local errors");
	}
	json_decref(proxy);
}

/* A line "...NAME:LINE: REASON" of the agent's log after off. */
static bool log_parse_error(struct ctl_e2e *e, long off, const char *file, unsigned int timeout_ms,
			    int *line_no, char *reason, size_t len)
{
	long long deadline = e2e_now_ms() + timeout_ms;
	char needle[64], line[512], *p;
	int n = 0;

	snprintf(needle, sizeof(needle), "/%s:", file);
	for (;;) {
		if (log_find(e->agent_log, off, needle, line, sizeof(line))) {
			p = strstr(line, needle) + strlen(needle);
			if (sscanf(p, "%d: %n", line_no, &n) == 1 && n > 0 && p[n]) {
				snprintf(reason, len, "%s", p + n);
				printf("e2e: agent log: %s\n", line);
				return true;
			}
		}
		if (e2e_now_ms() >= deadline)
			return false;
		e2e_sleep_ms(20);
	}
}

static void subtest_bad_yaml_keeps_routes(struct ctl_e2e *e)
{
	static const char broken[] =
		"apiVersion: v1\n"
		"kind: Service\n"
		"metadata:\n"
		"  name: broken\n"
		"  namespace: web-demo\n"
		"spec:\n"
		"  type: LoadBalancer\n"
		"  ports:\n"
		"  - port: 7002\n"
		"   protocol: TCP\n"   /* bad indentation */
		"  selector: {app: [broken\n";
	static const char fixed[] =
		"apiVersion: v1\n"
		"kind: Service\n"
		"metadata:\n"
		"  name: broken\n"
		"  namespace: web-demo\n"
		"spec:\n"
		"  type: ClusterIP\n"
		"  ports:\n"
		"  - port: 7002\n"
		"    protocol: TCP\n";
	static const char broken_l4[] =
		"apiVersion: v1\n"
		"kind: Service\n"
		"metadata:\n"
		"  name: tcp-echo\n"
		"  namespace: web-demo\n"
		"spec:\n"
		"  type: LoadBalancer\n"
		"  ports: [{name: tcp, port: 7000\n";
	char reason[256], buf[1024];
	int line = 0;
	long off;

	if (!baseline(e))
		return;

	/* A new broken file: reported, nothing else changes. */
	off = file_size(e->agent_log);
	if (!ASSERT_OK(cfg_write(e, "fleet/broken.yaml", broken), "write broken.yaml"))
		return;
	if (ASSERT_TRUE(log_parse_error(e, off, "broken.yaml", 1000, &line, reason, sizeof(reason)),
			"agent logged broken.yaml:LINE: REASON within 1 s")) {
		printf("e2e: broken.yaml: line %d: %s\n", line, reason);
		ASSERT_TRUE(line >= 9 && line <= 12, "the line is where the YAML breaks (9..12)");
	} else {
		show_file("agent log", e->agent_log, off);
	}
	ASSERT_TRUE(agent_alive(e), "agent still running");
	ASSERT_GE(wait_ring(e, L4_PORT, 2, 1, 1000), 0, "rings unchanged");
	split_check(e, 300, 67, "with broken.yaml", baseline_pods, 3);

	/* Fixed: no new error, still the same routes. */
	off = file_size(e->agent_log);
	if (!ASSERT_OK(cfg_write(e, "fleet/broken.yaml", fixed), "fix broken.yaml"))
		return;
	e2e_sleep_ms(300);
	ASSERT_EQ(log_count_parse_errors(e->agent_log, off, "broken.yaml"), 0,
		  "no parse error for the fixed file");
	if (log_find(e->agent_log, off, "broken.yaml", buf, sizeof(buf)))
		printf("e2e: agent log after the fix: %s\n", buf);
	ASSERT_GE(wait_ring(e, L4_PORT, 2, 1, 1000), 0, "rings unchanged after the fix");
	split_check(e, 300, 67, "broken.yaml fixed", baseline_pods, 3);
	ASSERT_OK(cfg_unlink(e, "fleet/broken.yaml"), "remove broken.yaml");

	/* A good file going bad keeps its objects: the L4 listener stays. */
	off = file_size(e->agent_log);
	if (!ASSERT_OK(cfg_write(e, "fleet/l4.yaml", broken_l4), "break l4.yaml"))
		return;
	if (!ASSERT_TRUE(log_parse_error(e, off, "l4.yaml", 1000, &line, reason, sizeof(reason)),
			 "agent logged l4.yaml:LINE: REASON"))
		show_file("agent log", e->agent_log, off);
	ASSERT_TRUE(log_find(e->agent_log, off, "keeping the 1 object(s)", NULL, 0),
		    "agent keeps l4.yaml's last good objects");
	ASSERT_GE(l4_service_id(e, L4_PORT, false), 0, "L4 listener still there");
	split_check(e, 300, 67, "with l4.yaml broken", baseline_pods, 3);
	fleet_lb_yaml(buf, sizeof(buf), "tcp-echo", L4_PORT);
	ASSERT_OK(cfg_write(e, "fleet/l4.yaml", buf), "restore l4.yaml");
	ASSERT_GE(wait_ring(e, L4_PORT, 2, 1, 1000), 0, "rings after l4.yaml is restored");
}

/* The echo client's status file, parsed. */
static bool echo_status(const char *path, int *echoed, int *errors, long *max_gap,
			char *peer, size_t len)
{
	json_error_t jerr;
	json_t *doc = json_load_file(path, 0, &jerr);

	if (!doc)
		return false;
	*echoed = (int)json_integer_value(json_object_get(doc, "echoed"));
	*errors = (int)json_integer_value(json_object_get(doc, "errors"));
	*max_gap = (long)json_integer_value(json_object_get(doc, "max_gap_ms"));
	if (peer)
		snprintf(peer, len, "%s / %s: %s",
			 json_string_value(json_object_get(doc, "peer")) ?: "",
			 json_string_value(json_object_get(doc, "local")) ?: "",
			 json_string_value(json_object_get(doc, "error")) ?: "");
	json_decref(doc);
	return true;
}

/* Waits until the echo client has echoed at least want lines since it
 * started (false on an error or a timeout). */
static bool echo_wait(const char *path, int want, unsigned int timeout_ms, int *echoed)
{
	long long deadline = e2e_now_ms() + timeout_ms;
	int errors = 0;
	long gap;

	*echoed = 0;
	for (;;) {
		if (echo_status(path, echoed, &errors, &gap, NULL, 0) && (errors || *echoed >= want))
			return !errors;
		if (e2e_now_ms() >= deadline)
			return false;
		e2e_sleep_ms(20);
	}
}

/* The program is attached to T<suffix>, as the kernel sees it: XDP in the
 * link line; a tcx link asked from inside the gateway's namespace. */
static bool prog_attached(struct ctl_e2e *e, const char *suffix)
{
	char name[IF_NAMESIZE + 8];
	const char *kind;

	if (attach_is_xdp(e))
		return fg_sh("ip -n %s link show %s%s | grep -q xdp", e->ns_gw, e->t, suffix) == 0;
	snprintf(name, sizeof(name), "%s%s", e->t, suffix);
	return e2e_tc_prog_id(e->ns_gw, name, &kind) != 0;
}

static int echo_config(struct ctl_e2e *e)
{
	char buf[4096], rel[128];
	int c, err;

	fleet_lb_yaml(buf, sizeof(buf), "line-echo", ECHO_PORT);
	err = cfg_write(e, "fleet/echo.yaml", buf);
	for (c = 0; c < 2 && !err; c++) {
		size_t off;

		svc_yaml(buf, sizeof(buf), "line-echo", "echo", ECHO_PORT, ECHO_POD_PORT);
		off = strlen(buf);
		off += snprintf(buf + off, sizeof(buf) - off, "---\n");
		eps_yaml(e, buf + off, sizeof(buf) - off, c, "line-echo", "echo", ECHO_POD_PORT, 2, 1);
		snprintf(rel, sizeof(rel), "clusters/%s/echo.yaml", cluster_ids[c]);
		err = cfg_write(e, rel, buf);
	}
	return err;
}

static void subtest_restart_keeps_flows(struct ctl_e2e *e)
{
	static const char *const ifs[] = { "gc", "g1", "g2" };
	char script[PATH_MAX + 32], vip[32], port[16], status_file[PATH_MAX], log[PATH_MAX];
	char *argv[] = { "ip", "netns", "exec", e->ns_cli, "python3", script, "client", vip, port,
			 "--interval", "0.1", "--status-file", status_file, NULL };
	char peer[256], tag[64], *out, *p;
	int echoed0, echoed1, echoed2, errors, rc, i, sid0, sid1;
	struct ctl_result r;
	long long t_stop;
	long gap;

	if (!baseline(e))
		return;

	/* This agent started without --keep-pins: restart it with. */
	rc = agent_stop(e);
	ASSERT_EQ(rc, 0, "first agent exit status");
	if (!ASSERT_OK(agent_start(e, true), "agent start with --keep-pins"))
		return;
	if (!ASSERT_GE(wait_ring(e, L4_PORT, 2, 1, 3000), 0, "rings 2:1 after the restart"))
		return;

	/* A second L4 Service whose pods echo lines, for a long-lived flow. */
	if (!ASSERT_OK(server_start(e, SRV_E1), "echo pod in cluster1") ||
	    !ASSERT_OK(server_start(e, SRV_E2), "echo pod in cluster2") ||
	    !ASSERT_OK(echo_config(e), "line-echo config"))
		return;
	if (!ASSERT_GE(wait_ring(e, ECHO_PORT, 1, 1, 3000), 0, "line-echo rings 1:1"))
		return;

	snprintf(script, sizeof(script), "%s/control_echo.py", e->scripts);
	snprintf(vip, sizeof(vip), "%s", e->listen_addr);
	snprintf(port, sizeof(port), "%d", ECHO_PORT);
	snprintf(status_file, sizeof(status_file), "%s/echo-client.json", test__tmpdir());
	snprintf(log, sizeof(log), "%s/echo-client.log", test__tmpdir());
	unlink(status_file);
	e->echo_client = e2e_spawn(log, NULL, argv);
	if (!ASSERT_GT(e->echo_client, 0, "echo client started"))
		return;
	if (!ASSERT_TRUE(echo_wait(status_file, 3, 3000, &echoed0), "long-lived flow echoes")) {
		show_file("echo client", log, 0);
		show_file("echo client status", status_file, 0);
		return;
	}
	echo_status(status_file, &echoed0, &errors, &gap, peer, sizeof(peer));
	printf("e2e: long-lived flow up: %s, %d lines echoed\n", peer, echoed0);

	/* Agent gone, pins kept: the data plane runs on. */
	sid0 = l4_service_id(e, ECHO_PORT, false);
	t_stop = e2e_now_ms();
	rc = agent_stop(e);
	ASSERT_EQ(rc, 0, "--keep-pins agent exit status");
	ASSERT_TRUE(log_find(e->agent_log, e->agent_log_off, "stopped (pins kept)", NULL, 0),
		    "agent logged stopped (pins kept)");
	for (i = 0; i < 3; i++) {
		snprintf(tag, sizeof(tag), "%s stays on %s%s", attach_want(e), e->t, ifs[i]);
		ASSERT_TRUE(prog_attached(e, ifs[i]), tag);
	}
	ASSERT_EQ(access(e->pin, F_OK), 0, "pins kept");
	if (e2e_now_ms() - t_stop < 1200)
		e2e_sleep_ms(1200 - (e2e_now_ms() - t_stop));
	echo_status(status_file, &echoed1, &errors, &gap, peer, sizeof(peer));
	printf("e2e: %lld ms without an agent: %d more lines echoed, %d errors (%s)\n",
	       e2e_now_ms() - t_stop, echoed1 - echoed0, errors, peer);
	ASSERT_EQ(errors, 0, "flow errors without an agent");
	ASSERT_GE(echoed1 - echoed0, 8, "lines echoed in 1.2 s without an agent");
	if (ASSERT_TRUE(run_client(e, L4_PORT, 30, &r), "new connections without an agent")) {
		ASSERT_EQ(r.errors, 0, "new connections without an agent: errors");
		ASSERT_EQ(r.total, 30, "new connections without an agent: answers");
	}

	/* A new agent adopts the pinned maps and links. */
	if (!ASSERT_OK(agent_start(e, false), "agent restart on the kept pins"))
		return;
	ASSERT_EQ(log_count(e->agent_log, e->agent_log_off,
			    attach_is_xdp(e)   ? "adopted the XDP link" :
			    e2e_kernel_has_tcx()   ? "adopted the TC (tcx) link" :
						 "replaced the TC (cls_bpf) filter"),
		  3, "new agent adopted the three pinned links");
	ASSERT_GE(wait_ring(e, L4_PORT, 2, 1, 3000), 0, "rings 2:1 under the new agent");
	ASSERT_GE(wait_ring(e, ECHO_PORT, 1, 1, 1000), 0, "line-echo rings under the new agent");
	sid1 = l4_service_id(e, ECHO_PORT, false);
	ASSERT_EQ(sid1, sid0, "line-echo keeps its service id across the restart");
	e2e_sleep_ms(600);
	echo_status(status_file, &echoed2, &errors, &gap, peer, sizeof(peer));
	printf("e2e: under the new agent: %d more lines echoed, %d errors, longest gap %ld ms (%s)\n",
	       echoed2 - echoed1, errors, gap, peer);
	ASSERT_EQ(errors, 0, "flow errors across the restart");
	ASSERT_GE(echoed2 - echoed1, 5, "lines echoed under the new agent");
	split_check(e, 300, 67, "new connections under the new agent", baseline_pods, 3);

	/* The flow's own verdict, then a full stop. */
	e2e_stop_child(&e->echo_client, SIGTERM, 3000);
	out = read_all(log, 0);
	p = out ? strrchr(out, '{') : NULL;
	printf("e2e: echo client summary: %s", p ?: "(none)\n");
	if (ASSERT_OK_PTR(p, "echo client summary")) {
		json_error_t jerr;
		json_t *doc = json_loads(p, JSON_DISABLE_EOF_CHECK, &jerr);

		ASSERT_EQ(json_integer_value(json_object_get(doc, "errors")), 0,
			  "long-lived flow: errors");
		ASSERT_GE(json_integer_value(json_object_get(doc, "echoed")), echoed2,
			  "long-lived flow: lines echoed");
		_CHECK(json_integer_value(json_object_get(doc, "max_gap_ms")) > 1000,
		       "long-lived flow: no gap over 1 s", "longest gap %lld ms",
		       (long long)json_integer_value(json_object_get(doc, "max_gap_ms")));
		json_decref(doc);
	}
	free(out);

	rc = agent_stop(e);
	ASSERT_EQ(rc, 0, "last agent exit status");
	ASSERT_TRUE(log_find(e->agent_log, e->agent_log_off, "fleetgate-agent stopped", NULL, 0),
		    "last agent logged stopped");
	ASSERT_FALSE(log_find(e->agent_log, e->agent_log_off, "pins kept", NULL, 0),
		     "last agent did not keep the pins");
	ASSERT_NEQ(access(e->pin, F_OK), 0, "pin directory removed");
	ASSERT_NEQ(access(e->sock, F_OK), 0, "admin socket removed");
	for (i = 0; i < 3; i++) {
		snprintf(tag, sizeof(tag), "%s detached from %s%s", attach_want(e), e->t, ifs[i]);
		ASSERT_FALSE(prog_attached(e, ifs[i]), tag);
	}
}

/* ------------------------------------------------------------------ */
/* setup and cleanup                                                   */
/* ------------------------------------------------------------------ */

static int ctl_setup(struct ctl_e2e *e)
{
	int err;

	snprintf(e->t, sizeof(e->t), "%sx%s", test__prefix(), attach_is_xdp(e) ? "y" : "");
	e->o = 200 + getpid() % 50;
	snprintf(e->ns_cli, sizeof(e->ns_cli), "%scli", e->t);
	snprintf(e->ns_gw, sizeof(e->ns_gw), "%sgw", e->t);
	snprintf(e->ns_c1, sizeof(e->ns_c1), "%sc1", e->t);
	snprintf(e->ns_c2, sizeof(e->ns_c2), "%sc2", e->t);
	snprintf(e->pin, sizeof(e->pin), "/sys/fs/bpf/%s", e->t);
	snprintf(e->sock, sizeof(e->sock), "/run/fleetgate/%s.sock", e->t);
	snprintf(e->listen_addr, sizeof(e->listen_addr), "10.%d.0.1", e->o);
	snprintf(e->agent_log, sizeof(e->agent_log), "%s/control-agent-%s.log", test__tmpdir(), e->t);
	printf("e2e: names %s*, addresses 10.%d.0.0/16, pins %s, admin socket %s\n", e->t, e->o,
	       e->pin, e->sock);

	err = topo_setup(e);
	if (!ASSERT_OK(err, "topology"))
		return err;
	err = cfg_setup(e);
	if (!ASSERT_OK(err, "config directory"))
		return err;
	for (int i = SRV_1A; i <= SRV_2A; i++) {
		err = server_start(e, i);
		if (!ASSERT_OK(err, e->srv[i].name))
			return err;
	}
	err = agent_start(e, false);
	if (!ASSERT_OK(err, "agent start"))
		return err;
	return 0;
}

static void ctl_cleanup(struct ctl_e2e *e)
{
	char *ns[4] = { e->ns_cli, e->ns_gw, e->ns_c1, e->ns_c2 };
	int i;

	e2e_stop_child(&e->echo_client, SIGKILL, 2000);
	if (e->agent > 0)
		e2e_stop_child(&e->agent, SIGTERM, 5000);
	if (e->agent_log[0])
		show_file("agent log", e->agent_log, 0);
	for (i = 0; i < NR_SRV; i++)
		e2e_stop_child(&e->srv[i].pid, SIGKILL, 2000);
	/* A crashed agent, or one stopped with --keep-pins, leaves pins that
	 * hold the program on the interfaces. */
	if (e->t[0]) {
		fg_sh("rm -rf /sys/fs/bpf/%s /sys/fs/bpf/%s_* /run/fleetgate/%s.sock", e->t, e->t,
		      e->t);
	}
	for (i = 3; i >= 0; i--)
		if (e->ns_made[i])
			fg_sh("ip netns del %s", ns[i]);
}

static void e2e_control_run(const char *attach)
{
	struct ctl_e2e e = {
		.attach = attach,
		.srv = {
			[SRV_1A] = { "cluster1-a", C1, 2, POD_PORT },
			[SRV_1B] = { "cluster1-b", C1, 3, POD_PORT },
			[SRV_2A] = { "cluster2-a", C2, 2, POD_PORT },
			[SRV_2B] = { "cluster2-b", C2, 3, POD_PORT },
			[SRV_2C] = { "cluster2-c", C2, 4, POD_PORT },
			[SRV_E1] = { "cluster1-echo", C1, 2, ECHO_POD_PORT, true },
			[SRV_E2] = { "cluster2-echo", C2, 2, ECHO_POD_PORT, true },
		},
	};
	long long t0 = e2e_now_ms(), ts;

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
	if (find_paths(&e)) {
		test__skip("fleetgate-agent, fleetgatectl or selftests/e2e not found");
		return;
	}
	if (ctl_setup(&e) == 0) {
		printf("e2e: setup took %lld ms\n", e2e_now_ms() - t0);
#define RUN(name)                                                                  \
		if (test__start_subtest(#name)) {                                  \
			ts = e2e_now_ms();                                             \
			subtest_##name(&e);                                        \
			printf("e2e: " #name " took %lld ms\n", e2e_now_ms() - ts);   \
		}
		RUN(status)
		RUN(split_by_pod_count)
		if (!attach) {
			RUN(scale_shifts_ratio)
			RUN(service_deleted_failover)
			RUN(pods_die_failover)
			RUN(bad_yaml_keeps_routes)
			RUN(fd_limit_keeps_backends)
		}
		RUN(restart_keeps_flows)
#undef RUN
	}
	ctl_cleanup(&e);
	printf("e2e: total %lld ms\n", e2e_now_ms() - t0);
}

FG_TEST(e2e_control)
{
	e2e_control_run(NULL);
}

FG_TEST(e2e_control_xdp)
{
	e2e_control_run("xdp");
}
