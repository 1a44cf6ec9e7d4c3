// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * End to end, the seed's acceptance tests: the five examples of
 * ../shared/seed/000_a952fdfcae598676.txt played against a real
 * fleetgate-agent, with the seed's own YAML (the files of demo/manifests, copied
 * verbatim with the cluster ids filled in), the seed's web-demo pods
 * (demo/web-demo.py) and the seed's request loop
 * `curl -H "host: example.com" GW/PATH` (selftests/e2e/seed_client.py: N
 * requests, each on a new connection like curl's).
 *
 *        cli                   gw                         c1 / c2
 *   T"cg" 10.O.0.2  <->  T"gc" 10.O.0.1 (--listen 10.O.0.1:80)
 *                        T"g1" 10.O.1.1  <->  T"1g" 10.O.1.11, .12, .13
 *                        T"g2" 10.O.2.1  <->  T"2g" 10.O.2.11, .12, .13
 *
 * T is test__prefix() + "s" (so names never meet the other e2e tests'), O
 * a second octet 50 + pid % 50 (test_e2e_l4 uses 100..199, test_e2e_control
 * 200..249). Cluster 1 is "c7fb82...", cluster 2 "c15d48..."; each has the
 * Service web-demo/service1 (80 -> 8080) in clusters/<id>/service1.yaml and
 * its EndpointSlice in clusters/<id>/service1-endpoints.yaml, one web-demo
 * pod each at .11 (cluster 1 scales to .12 and .13 in Example 1).
 *
 * The topology and the agent are set up once; every subtest first brings
 * the pods and the clusters' files back to that baseline, applies the
 * seed's files its example needs (as `kubectl apply -f` would: they stay),
 * and waits until the agent shows it, so any subtest can run alone.
 *
 * The bounds on shares are binomial: each request is an independent draw,
 * so n requests with probability p give n*p +- sqrt(n*p*(1-p)); the bounds
 * are about 5 to 6 standard deviations wide, so a correct gateway does not
 * fail them (p < 1e-7) while a wrong split (50:50 for 75:25, 0% or 50%
 * for 10%) is far outside.
 */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "e2e_lib.h"
#include "test_progs.h"

#define CLUSTER1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define CLUSTER2 "c15d48ca9d1fd43f9bbb89c56a474843c"
#define GATEWAY "ackone-gateway"
#define HOST_HDR "host: example.com"
#define GRAY_HDR "stage: gray"
#define HTTP_PORT 80
#define POD_PORT 8080
#define MAX_PODS 3
#define FIRST_POD 11 /* 10.O.<c+1>.11 */

enum { C1, C2 };
static const char *const cluster_ids[] = { CLUSTER1, CLUSTER2 };
static const char *const cluster_names[] = { "cluster1", "cluster2" };

/* The seed's files, in the order the seed applies them. */
enum { M_DEMO, M_CLUSTER_ONE, M_HEADER, M_WEIGHT, NR_MANIFESTS };
static const char *const manifests[] = {
	[M_DEMO] = "ingress-demo.yaml",
	[M_CLUSTER_ONE] = "ingress-demo-cluster-one.yaml",
	[M_HEADER] = "ingress-demo-header.yaml",
	[M_WEIGHT] = "ingress-weight.yaml",
};
/* The Ingresses each file holds. */
static const char *const manifest_ingresses[NR_MANIFESTS][3] = {
	[M_DEMO] = { "web-demo" },
	[M_CLUSTER_ONE] = { "web-demo-cluster-one" },
	[M_HEADER] = { "web-demo-cluster-second" },
	[M_WEIGHT] = { "web-demo-weight", "web-demo-weight-canary" },
};

struct seed_e2e {
	char t[16];       /* name tag: test__prefix() + "s" */
	int o;            /* second octet */
	char ns_cli[32], ns_gw[32], ns_c1[32], ns_c2[32];
	bool ns_made[4];
	bool etc_made[2];   /* /etc/netns/<cluster ns>/ */
	bool etc_root_made; /* /etc/netns itself */
	char pin[PATH_MAX];
	char sock[PATH_MAX];
	char agent_bin[PATH_MAX], ctl_bin[PATH_MAX], scripts[PATH_MAX];
	char web_demo[PATH_MAX], manifests[PATH_MAX], python[64];
	char cfg[PATH_MAX];
	char agent_log[PATH_MAX];
	char gw[32];      /* 10.O.0.1 */
	pid_t agent;
	int agent_status;
	pid_t pod[2][MAX_PODS];
	int slice_pods[2];  /* pods in the cluster's EndpointSlice */
	bool svc[2];        /* the cluster's service1.yaml present */
	bool applied[NR_MANIFESTS];
	pid_t bg;           /* background client */
	int client_timeout; /* s, per request of requests() */
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

/* The whole file from offset off, NUL-terminated and malloc'ed. */
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

/* Replaces every "from" in *s by "to" (*s is malloc'ed and replaced). */
static int str_replace(char **s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	char *p, *out, *o;

	for (p = *s; (p = strstr(p, from)); p += fl)
		n++;
	if (!n)
		return 0;
	out = malloc(strlen(*s) + n * (tl > fl ? tl - fl : 0) + 1);
	if (!out)
		return -ENOMEM;
	for (o = out, p = *s;;) {
		char *q = strstr(p, from);

		if (!q) {
			strcpy(o, p);
			break;
		}
		memcpy(o, p, q - p);
		o += q - p;
		memcpy(o, to, tl);
		o += tl;
		p = q + fl;
	}
	free(*s);
	*s = out;
	return (int)n;
}

/* DIR/rel through a temporary name and a rename, as a config-management
 * tool does. */
static int cfg_write(struct seed_e2e *e, const char *rel, const char *content)
{
	char path[PATH_MAX + 256], tmp[PATH_MAX + 300];
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

static int cfg_unlink(struct seed_e2e *e, const char *rel)
{
	char path[PATH_MAX + 256];

	snprintf(path, sizeof(path), "%s/%s", e->cfg, rel);
	if (unlink(path) && errno != ENOENT)
		return -errno;
	printf("e2e: removed %s\n", rel);
	return 0;
}

/* ------------------------------------------------------------------ */
/* processes                                                           */
/* ------------------------------------------------------------------ */

/* fleetgatectl -o json ARGS, parsed; NULL on failure (reported unless
 * quiet). */
static json_t *ctl_json(struct seed_e2e *e, bool quiet, const char *args)
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

/* fleetgatectl ARGS (table), into the log. */
static void ctl_show(struct seed_e2e *e, const char *args)
{
	int rc;

	free(e2e_capture(&rc, false, "%s -p %s %s 2>&1", e->ctl_bin, e->pin, args));
}

/* ------------------------------------------------------------------ */
/* paths, topology, pods, agent                                        */
/* ------------------------------------------------------------------ */

static int find_paths(struct seed_e2e *e)
{
	char exe[1024], root[1100], *slash;
	ssize_t n;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -errno;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	snprintf(root, sizeof(root), "%s/..", exe);
	snprintf(e->agent_bin, sizeof(e->agent_bin), "%s/fleetgate-agent", exe);
	snprintf(e->ctl_bin, sizeof(e->ctl_bin), "%s/fleetgatectl", exe);
	snprintf(e->scripts, sizeof(e->scripts), "%s/selftests/e2e/seed_client.py", root);
	if (access(e->agent_bin, X_OK) || access(e->ctl_bin, X_OK) || access(e->scripts, R_OK)) {
		/* not build/test_progs of a source tree: from the cwd */
		snprintf(root, sizeof(root), ".");
		snprintf(e->agent_bin, sizeof(e->agent_bin), "build/fleetgate-agent");
		snprintf(e->ctl_bin, sizeof(e->ctl_bin), "build/fleetgatectl");
	}
	snprintf(e->scripts, sizeof(e->scripts), "%s/selftests/e2e", root);
	snprintf(e->web_demo, sizeof(e->web_demo), "%s/demo/web-demo.py", root);
	snprintf(e->manifests, sizeof(e->manifests), "%s/demo/manifests", root);
	/* Debian's interpreter itself, so that a pod's PID is the server's. */
	snprintf(e->python, sizeof(e->python), "%s",
		 access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3");
	if (access(e->agent_bin, X_OK) || access(e->ctl_bin, X_OK))
		return -ENOENT;
	if (access(e->scripts, R_OK) || access(e->web_demo, R_OK) || access(e->manifests, R_OK))
		return -ENOENT;
	return 0;
}

static void pod_addr(const struct seed_e2e *e, int c, int i, char *buf, size_t len)
{
	snprintf(buf, len, "10.%d.%d.%d", e->o, c + 1, FIRST_POD + i);
}

/* A TCP connection from inside netns ns to addr:port within timeout_ms. */
static bool ns_can_connect(const char *ns, const char *addr, int port, int timeout_ms)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	char path[PATH_MAX];
	int self, target, fd = -1, err = 0;
	socklen_t elen = sizeof(err);
	struct pollfd pfd;
	bool ok = false;

	inet_pton(AF_INET, addr, &sin.sin_addr);
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	target = open(path, O_RDONLY | O_CLOEXEC);
	if (self >= 0 && target >= 0 && setns(target, CLONE_NEWNET) == 0) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (setns(self, CLONE_NEWNET)) {
			fprintf(stderr, "e2e: cannot return to our network namespace\n");
			abort();
		}
	}
	if (self >= 0)
		close(self);
	if (target >= 0)
		close(target);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
		ok = true;
	} else if (errno == EINPROGRESS) {
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, timeout_ms) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)
			ok = true;
	}
	close(fd);
	return ok;
}

static const char *pod_ns(struct seed_e2e *e, int c)
{
	return c == C1 ? e->ns_c1 : e->ns_c2;
}

/* The seed's web-demo pod i of cluster c (envName "clusterN"), listening. */
static int pod_start(struct seed_e2e *e, int c, int i)
{
	char addr[32], port[16], log[PATH_MAX];
	char *argv[] = { "ip", "netns", "exec", (char *)pod_ns(e, c), e->python, e->web_demo,
			 (char *)cluster_names[c], addr, port, NULL };
	long long deadline;
	int status;

	if (e->pod[c][i] > 0)
		return 0;
	pod_addr(e, c, i, addr, sizeof(addr));
	snprintf(port, sizeof(port), "%d", POD_PORT);
	snprintf(log, sizeof(log), "%s/pod-%d-%d.log", test__tmpdir(), c + 1, i);
	/* ip netns exec execs the command: the PID is the pod's own. */
	e->pod[c][i] = e2e_spawn(log, NULL, argv);
	if (e->pod[c][i] < 0) {
		e->pod[c][i] = 0;
		return -errno;
	}
	for (deadline = e2e_now_ms() + 5000; e2e_now_ms() < deadline; e2e_sleep_ms(10)) {
		if (ns_can_connect(pod_ns(e, c), addr, POD_PORT, 100)) {
			printf("e2e: pod %s at %s is pid %d\n", cluster_names[c], addr, e->pod[c][i]);
			return 0;
		}
		if (waitpid(e->pod[c][i], &status, WNOHANG) == e->pod[c][i]) {
			printf("e2e: pod exited, wait status 0x%x\n", status);
			e->pod[c][i] = 0;
			break;
		}
	}
	printf("e2e: pod %s at %s did not come up\n", cluster_names[c], addr);
	show_file("pod", log, 0);
	if (e->pod[c][i] > 0)
		e2e_stop_child(&e->pod[c][i], SIGKILL, 2000);
	return -ETIMEDOUT;
}

/* Kills the pod by its PID, as the seed's "pods are down". */
static void pod_kill(struct seed_e2e *e, int c, int i)
{
	if (e->pod[c][i] <= 0)
		return;
	printf("e2e: killing pod %s #%d (pid %d)\n", cluster_names[c], i, e->pod[c][i]);
	e2e_stop_child(&e->pod[c][i], SIGKILL, 2000);
}

static int topo_setup(struct seed_e2e *e)
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
	for (i = 0; i < 2; i++) {
		const char *cns = i == C1 ? e->ns_c1 : e->ns_c2;

		if (fg_sh("ip -n %s addr add 10.%d.%d.11/24 dev %s%dg && "
			  "ip -n %s addr add 10.%d.%d.12/24 dev %s%dg && "
			  "ip -n %s addr add 10.%d.%d.13/24 dev %s%dg && "
			  "ip -n %s link set %s%dg up && "
			  "ip -n %s route add default via 10.%d.%d.1",
			  cns, o, i + 1, t, i + 1, cns, o, i + 1, t, i + 1, cns, o, i + 1, t, i + 1,
			  cns, t, i + 1, cns, o, i + 1))
			return -EIO;
	}
	/* demo/web-demo.py's HTTPServer resolves its address at start
	 * (socket.getfqdn): without an answer from /etc/hosts that is a DNS
	 * query out of the cluster's default route, and seconds of timeouts.
	 * ip netns exec bind-mounts /etc/netns/NS/<file> over /etc/<file>. */
	e->etc_root_made = access("/etc/netns", F_OK) != 0;
	for (i = 0; i < 2; i++) {
		const char *cns = i == C1 ? e->ns_c1 : e->ns_c2;

		e->etc_made[i] = true;
		if (fg_sh("mkdir -p /etc/netns/%s && "
			  "printf '127.0.0.1 localhost\\n10.%d.%d.11 pod-a\\n10.%d.%d.12 pod-b\\n"
			  "10.%d.%d.13 pod-c\\n' > /etc/netns/%s/hosts && "
			  "printf 'nameserver 127.0.0.1\\noptions timeout:1 attempts:1\\n' "
			  "> /etc/netns/%s/resolv.conf",
			  cns, o, i + 1, o, i + 1, o, i + 1, cns, cns))
			return -EIO;
	}
	/* A frame XDP_REDIRECTs into a veth is only received when the peer
	 * has XDP or GRO; and redirected TCP must carry full checksums. */
	if (fg_sh("ip netns exec %s ethtool -K %scg tx off tso off gso off gro on >/dev/null && "
		  "ip netns exec %s ethtool -K %s1g tx off tso off gso off gro on >/dev/null && "
		  "ip netns exec %s ethtool -K %s2g tx off tso off gso off gro on >/dev/null",
		  e->ns_cli, t, e->ns_c1, t, e->ns_c2, t))
		return -EIO;
	return 0;
}

static bool agent_alive(struct seed_e2e *e)
{
	if (e->agent <= 0)
		return false;
	if (waitpid(e->agent, &e->agent_status, WNOHANG) == e->agent) {
		printf("e2e: the agent died (wait status 0x%x)\n", e->agent_status);
		e->agent = 0;
		show_file("agent log", e->agent_log, 0);
		return false;
	}
	return true;
}

static int agent_start(struct seed_e2e *e)
{
	char netns[64], ifc[3][IF_NAMESIZE + 8], listen[48];
	char *argv[] = { "nsenter", netns, e->agent_bin, "--config-dir", e->cfg,
			 "--listen", listen, "--iface", ifc[0], "--iface", ifc[1],
			 "--iface", ifc[2], "--pin-path", e->pin, NULL };
	long long deadline;

	/* nsenter, not ip netns exec: the agent must see /sys/fs/bpf. */
	snprintf(netns, sizeof(netns), "--net=/run/netns/%s", e->ns_gw);
	snprintf(listen, sizeof(listen), "%s:%d", e->gw, HTTP_PORT);
	snprintf(ifc[0], sizeof(ifc[0]), "%sgc", e->t);
	snprintf(ifc[1], sizeof(ifc[1]), "%sg1", e->t);
	snprintf(ifc[2], sizeof(ifc[2]), "%sg2", e->t);
	printf("e2e: starting the agent (log %s)\n", e->agent_log);
	e->agent = e2e_spawn(e->agent_log, NULL, argv);
	if (e->agent < 0) {
		e->agent = 0;
		return -errno;
	}
	for (deadline = e2e_now_ms() + e2e_scaled_ms(10000); e2e_now_ms() < deadline;
	     e2e_sleep_ms(20)) {
		if (log_has(e->agent_log, 0, "fleetgate-agent ready") && access(e->sock, F_OK) == 0)
			return 0;
		if (waitpid(e->agent, &e->agent_status, WNOHANG) == e->agent) {
			printf("e2e: the agent exited early (status 0x%x)\n", e->agent_status);
			e->agent = 0;
			show_file("agent log", e->agent_log, 0);
			return -ECHILD;
		}
	}
	printf("e2e: the agent did not get ready within %lld s\n", e2e_scaled_ms(10000) / 1000);
	show_file("agent log", e->agent_log, 0);
	return -ETIMEDOUT;
}

/* ------------------------------------------------------------------ */
/* the config directory                                                */
/* ------------------------------------------------------------------ */

/* A seed file from demo/manifests with the cluster ids filled in. */
static char *seed_file(struct seed_e2e *e, const char *name)
{
	char path[PATH_MAX + 64];
	char *s;

	snprintf(path, sizeof(path), "%s/%s", e->manifests, name);
	s = read_all(path, 0);
	if (!s) {
		printf("e2e: cannot read %s\n", path);
		return NULL;
	}
	if (str_replace(&s, "${cluster1-id}", CLUSTER1) < 0 ||
	    str_replace(&s, "${cluster2-id}", CLUSTER2) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* kubectl apply -f: the seed's file into the fleet's directory. */
static int apply(struct seed_e2e *e, int m)
{
	char rel[128];
	char *s;
	int err;

	s = seed_file(e, manifests[m]);
	if (!s)
		return -ENOENT;
	snprintf(rel, sizeof(rel), "fleet/%s", manifests[m]);
	err = cfg_write(e, rel, s);
	free(s);
	if (!err)
		e->applied[m] = true;
	return err;
}

/* mseingressconfig.yaml with the remote-clusters annotation (Step 2: "add
 * it to the metadata object"). */
static int apply_gateway(struct seed_e2e *e)
{
	static const char anchor[] = "\n  name: " GATEWAY "\n";
	static const char annot[] = "  annotations:\n"
				    "    mse.alibabacloud.com/remote-clusters: " CLUSTER1 "," CLUSTER2
				    "\n";
	char *s = seed_file(e, "mseingressconfig.yaml"), *p, *out;
	size_t head;
	int err;

	if (!s)
		return -ENOENT;
	p = strstr(s, anchor);
	if (!p) {
		printf("e2e: mseingressconfig.yaml has no metadata.name line\n");
		free(s);
		return -EINVAL;
	}
	head = p - s + strlen(anchor);
	out = malloc(strlen(s) + sizeof(annot));
	if (!out) {
		free(s);
		return -ENOMEM;
	}
	memcpy(out, s, head);
	strcpy(out + head, annot);
	strcat(out, s + head);
	printf("e2e: mseingressconfig.yaml as applied:\n%s", out);
	err = cfg_write(e, "fleet/mseingressconfig.yaml", out);
	free(out);
	free(s);
	return err;
}

/* The member cluster's view of its Service, as its API would show it. */
static int write_service(struct seed_e2e *e, int c)
{
	static const char svc[] =
		"apiVersion: v1\n"
		"kind: Service\n"
		"metadata:\n"
		"  name: service1\n"
		"  namespace: web-demo\n"
		"spec:\n"
		"  type: ClusterIP\n"
		"  selector:\n"
		"    app: web-demo\n"
		"  ports:\n"
		"  - name: http\n"
		"    protocol: TCP\n"
		"    port: 80\n"
		"    targetPort: 8080\n";
	char rel[128];
	int err;

	snprintf(rel, sizeof(rel), "clusters/%s/service1.yaml", cluster_ids[c]);
	err = cfg_write(e, rel, svc);
	if (!err)
		e->svc[c] = true;
	return err;
}

/* ... and the EndpointSlice of its first n ready pods. */
static int write_slice(struct seed_e2e *e, int c, int n)
{
	char rel[128], buf[4096], addr[32];
	size_t off;
	int i, err;

	off = snprintf(buf, sizeof(buf),
		       "apiVersion: discovery.k8s.io/v1\n"
		       "kind: EndpointSlice\n"
		       "metadata:\n"
		       "  name: service1-%s\n"
		       "  namespace: web-demo\n"
		       "  labels:\n"
		       "    kubernetes.io/service-name: service1\n"
		       "addressType: IPv4\n"
		       "ports:\n"
		       "- name: http\n"
		       "  protocol: TCP\n"
		       "  port: %d\n"
		       "endpoints:\n",
		       c == C1 ? "x7k2p" : "m4q9z", POD_PORT);
	for (i = 0; i < n && off < sizeof(buf); i++) {
		pod_addr(e, c, i, addr, sizeof(addr));
		off += snprintf(buf + off, sizeof(buf) - off,
				"- addresses:\n"
				"  - %s\n"
				"  conditions:\n"
				"    ready: true\n"
				"  targetRef:\n"
				"    kind: Pod\n"
				"    name: web-demo-6b8f9c7d5-%c%d\n"
				"    namespace: web-demo\n",
				addr, 'a' + c, i);
	}
	snprintf(rel, sizeof(rel), "clusters/%s/service1-endpoints.yaml", cluster_ids[c]);
	err = cfg_write(e, rel, buf);
	if (!err)
		e->slice_pods[c] = n;
	return err;
}

static int cfg_setup(struct seed_e2e *e)
{
	char path[PATH_MAX + 64];
	int c, err = 0;

	snprintf(e->cfg, sizeof(e->cfg), "%s/seed-config", test__tmpdir());
	for (c = 0; c < 2; c++) {
		snprintf(path, sizeof(path), "%s/clusters/%s", e->cfg, cluster_ids[c]);
		if (fg_sh("mkdir -p %s %s/fleet", path, e->cfg))
			return -EIO;
	}
	err = apply_gateway(e);
	for (c = 0; c < 2 && !err; c++) {
		err = write_service(e, c);
		err = err ?: write_slice(e, c, 1);
	}
	return err;
}

/* ------------------------------------------------------------------ */
/* what the agent shows                                                */
/* ------------------------------------------------------------------ */

struct cluster_view {
	int services[2], ready[2], routed[2], healthy[2];
	bool listed[2];
};

static bool clusters_read(struct seed_e2e *e, struct cluster_view *v, bool quiet)
{
	json_t *doc = ctl_json(e, quiet, "get clusters"), *it;
	size_t i;
	int c;

	memset(v, 0, sizeof(*v));
	if (!doc)
		return false;
	json_array_foreach(json_object_get(doc, "items"), i, it) {
		const char *id = json_string_value(json_object_get(it, "id")) ?: "";

		for (c = 0; c < 2; c++) {
			if (strcmp(id, cluster_ids[c]))
				continue;
			v->listed[c] = true;
			v->services[c] = (int)json_integer_value(json_object_get(it, "services"));
			v->ready[c] = (int)json_integer_value(json_object_get(it, "readyEndpoints"));
			v->routed[c] = (int)json_integer_value(json_object_get(it, "routedEndpoints"));
			v->healthy[c] =
				(int)json_integer_value(json_object_get(it, "healthyEndpoints"));
		}
	}
	json_decref(doc);
	return true;
}

/* Waits until the clusters have r1:r2 endpoints in the routes (in the
 * backends map) and h1:h2 of them healthy (-1: any); the ms it took or -1. */
static long wait_clusters(struct seed_e2e *e, int r1, int r2, int h1, int h2,
			  unsigned int timeout_ms)
{
	long long t0 = e2e_now_ms(), deadline = t0 + timeout_ms;
	int routed[2] = { r1, r2 }, healthy[2] = { h1, h2 }, c;
	struct cluster_view v;
	bool ok;

	for (;;) {
		ok = clusters_read(e, &v, true);
		for (c = 0; c < 2 && ok; c++)
			if ((routed[c] >= 0 && v.routed[c] != routed[c]) ||
			    (healthy[c] >= 0 && v.healthy[c] != healthy[c]))
				ok = false;
		if (ok)
			return (long)(e2e_now_ms() - t0);
		if (e2e_now_ms() >= deadline)
			break;
		e2e_sleep_ms(10);
	}
	printf("e2e: wanted routed %d:%d, healthy %d:%d endpoints; last seen routed %d:%d, healthy %d:%d\n",
	       r1, r2, h1, h2, v.routed[C1], v.routed[C2], v.healthy[C1], v.healthy[C2]);
	ctl_show(e, "get clusters");
	ctl_show(e, "backends");
	return -1;
}

/* Waits until every Ingress of the applied files is accepted. */
static bool wait_ingresses(struct seed_e2e *e, unsigned int timeout_ms)
{
	long long deadline = e2e_now_ms() + timeout_ms;
	json_t *doc, *it;
	size_t i;
	int m, k;

	for (;;) {
		bool ok = true;

		doc = ctl_json(e, true, "get ingress");
		for (m = 0; m < NR_MANIFESTS && ok; m++) {
			if (!e->applied[m])
				continue;
			for (k = 0; k < 3 && manifest_ingresses[m][k] && ok; k++) {
				bool found = false;

				json_array_foreach(json_object_get(doc, "items"), i, it)
					if (!strcmp(json_string_value(json_object_get(it, "name")) ?: "",
						    manifest_ingresses[m][k]) &&
					    json_is_true(json_object_get(it, "accepted")))
						found = true;
				ok = found;
			}
		}
		json_decref(doc);
		if (ok)
			return true;
		if (e2e_now_ms() >= deadline)
			break;
		e2e_sleep_ms(10);
	}
	printf("e2e: not every applied Ingress is accepted within %u ms\n", timeout_ms);
	ctl_show(e, "get ingress");
	return false;
}

/* The baseline: one pod per cluster, both Services present, the files the
 * example needs applied (mask of M_*), everything healthy. */
static bool baseline(struct seed_e2e *e, unsigned int need)
{
	bool changed = false, routed;
	long ms;
	int c, i, m;

	if (!ASSERT_TRUE(agent_alive(e), "agent running"))
		return false;
	if (e->bg > 0)
		e2e_stop_child(&e->bg, SIGKILL, 2000);
	for (c = 0; c < 2; c++) {
		if (!e->svc[c]) {
			if (!ASSERT_OK(write_service(e, c), "restore service1.yaml"))
				return false;
			changed = true;
		}
		if (e->slice_pods[c] != 1) {
			if (!ASSERT_OK(write_slice(e, c, 1), "EndpointSlice back to one pod"))
				return false;
			changed = true;
		}
		if (!ASSERT_OK(pod_start(e, c, 0), "pod running"))
			return false;
	}
	for (m = 0; m < NR_MANIFESTS && !e->applied[m]; m++)
		;
	routed = m < NR_MANIFESTS;
	/* the EndpointSlices first, then the pods that left them go */
	if (changed && routed && wait_clusters(e, 1, 1, -1, -1, 5000) < 0)
		printf("e2e: baseline: the clusters did not settle yet\n");
	for (c = 0; c < 2; c++)
		for (i = 1; i < MAX_PODS; i++)
			pod_kill(e, c, i);
	for (m = 0; m < NR_MANIFESTS; m++) {
		if (!(need & (1u << m)) || e->applied[m])
			continue;
		if (!ASSERT_OK(apply(e, m), manifests[m]))
			return false;
	}
	if (!ASSERT_TRUE(wait_ingresses(e, 3000), "baseline: Ingresses accepted"))
		return false;
	if (!routed && !need)
		return true; /* no route: the endpoints are not in the maps */
	ms = wait_clusters(e, 1, 1, 1, 1, 5000);
	return _CHECK(ms < 0, "baseline: 1:1 healthy endpoints",
		      "the clusters did not show one healthy pod each within 5 s");
}

/* ------------------------------------------------------------------ */
/* traffic                                                             */
/* ------------------------------------------------------------------ */

struct result {
	int cluster[2];
	int errors;
	int requests;
	int connections;
	json_t *doc; /* the client's JSON (statuses, bodies, events) */
};

static void result_free(struct result *r)
{
	json_decref(r->doc);
	r->doc = NULL;
}

static bool result_parse(struct result *r, const char *out)
{
	json_error_t jerr;
	const char *p = out;

	memset(r, 0, sizeof(*r));
	/* the JSON line: the last line starting with '{' */
	for (const char *q = out; q && *q; q = strchr(q, '\n') ? strchr(q, '\n') + 1 : NULL)
		if (*q == '{')
			p = q;
	r->doc = p ? json_loads(p, JSON_DISABLE_EOF_CHECK, &jerr) : NULL;
	if (!r->doc)
		return false;
	r->cluster[C1] = (int)json_integer_value(json_object_get(r->doc, "cluster1"));
	r->cluster[C2] = (int)json_integer_value(json_object_get(r->doc, "cluster2"));
	r->errors = (int)json_integer_value(json_object_get(r->doc, "errors"));
	r->requests = (int)json_integer_value(json_object_get(r->doc, "requests"));
	r->connections = (int)json_integer_value(json_object_get(r->doc, "connections"));
	return true;
}

static void result_print(const char *tag, const struct result *r)
{
	char *st = json_dumps(json_object_get(r->doc, "statuses"), JSON_COMPACT);
	char *ek = json_dumps(json_object_get(r->doc, "error_kinds"), JSON_COMPACT);

	printf("e2e: %s: %d requests on %d connection(s): cluster1 %d, cluster2 %d, errors %d, statuses %s, errors by kind %s\n",
	       tag, r->requests, r->connections, r->cluster[C1], r->cluster[C2], r->errors,
	       st ?: "?", ek ?: "?");
	free(st);
	free(ek);
}

enum { F_KEEPALIVE = 1, F_ALTERNATE = 2, F_EVENTS = 4 };

/* The seed's loop: n requests for path with the host header and hdr (may
 * be NULL), from the client namespace, each on a new connection (one
 * keep-alive connection with F_KEEPALIVE). To keep the run short, 4 or 8
 * such loops run at once (seed_client.py --parallel): every request is
 * still routed on its own, so the counts are the same draws. */
static bool requests(struct seed_e2e *e, const char *path, int n, const char *hdr, int flags,
		     struct result *r)
{
	long long t0 = e2e_now_ms();
	char *out;
	int status;

	memset(r, 0, sizeof(*r));
	out = e2e_capture(&status, true,
		      "ip netns exec %s %s %s/seed_client.py %s %s %d -H '%s' %s%s%s %s %s %s "
		      "--timeout %d --max-time 40 --parallel %d",
		      e->ns_cli, e->python, e->scripts, e->gw, path, n, HOST_HDR, hdr ? "-H '" : "",
		      hdr ?: "", hdr ? "'" : "", flags & F_KEEPALIVE ? "--keep-alive" : "",
		      flags & F_ALTERNATE ? "--alternate" : "", flags & F_EVENTS ? "--events" : "",
		      e->client_timeout ?: 2, flags & F_KEEPALIVE ? 1 : n >= 100 ? 8 : 4);
	if (!out)
		return false;
	if (status || !result_parse(r, out)) {
		printf("e2e: client failed (exit %d): %s\n", status, out);
		free(out);
		return false;
	}
	free(out);
	printf("e2e: curl -H \"%s\"%s%s%s GW%s x%d took %lld ms\n", HOST_HDR, hdr ? " -H \"" : "",
	       hdr ?: "", hdr ? "\"" : "", path, n, e2e_now_ms() - t0);
	return true;
}

/* Runs the loop and checks that every request was answered (200, the
 * web-demo's body), all of them by cluster. */
static bool all_to(struct seed_e2e *e, const char *tag, const char *path, int n,
		   const char *hdr, int cluster)
{
	struct result r;
	char name[160];
	bool ok = true;

	snprintf(name, sizeof(name), "%s: client ran", tag);
	if (!ASSERT_TRUE(requests(e, path, n, hdr, 0, &r), name))
		return false;
	result_print(tag, &r);
	snprintf(name, sizeof(name), "%s: errors", tag);
	ok &= ASSERT_EQ(r.errors, 0, name);
	snprintf(name, sizeof(name), "%s: answered by %s", tag, cluster_names[cluster]);
	ok &= ASSERT_EQ(r.cluster[cluster], n, name);
	if (!ok)
		ctl_show(e, "get routes");
	result_free(&r);
	return ok;
}

/* The client in the background for duration s (events on), returning once
 * it has made requests for 0.3 s. */
static pid_t bg_start(struct seed_e2e *e, const char *out, const char *path, const char *hdr,
		      double duration)
{
	char script[PATH_MAX + 32], dur[32], ready[PATH_MAX + 8], err_log[PATH_MAX + 8];
	char host[] = HOST_HDR;
	char *argv[] = { "ip", "netns", "exec", e->ns_cli, e->python, script, e->gw, (char *)path,
			 "0", "-H", host, "--events", "--duration", dur, "--interval", "0.005",
			 "--timeout", "2", "--parallel", "4", "--ready-file", ready, hdr ? "-H" : NULL,
			 (char *)hdr, NULL };
	long long deadline;
	int status;
	pid_t pid;

	snprintf(script, sizeof(script), "%s/seed_client.py", e->scripts);
	snprintf(dur, sizeof(dur), "%.2f", duration);
	snprintf(ready, sizeof(ready), "%s.ready", out);
	snprintf(err_log, sizeof(err_log), "%s.err", out);
	unlink(out);
	unlink(ready);
	pid = e2e_spawn(out, err_log, argv);
	if (pid <= 0)
		return pid;
	for (deadline = e2e_now_ms() + 5000; e2e_now_ms() < deadline; e2e_sleep_ms(5)) {
		if (access(ready, F_OK) == 0)
			return pid;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			pid = 0;
			break;
		}
	}
	printf("e2e: the background client did not start\n");
	show_file("client", out, 0);
	show_file("client stderr", err_log, 0);
	if (pid > 0)
		e2e_stop_child(&pid, SIGKILL, 1000);
	return -1;
}

static bool bg_finish(struct seed_e2e *e, const char *out, struct result *r)
{
	char err_log[PATH_MAX + 8];
	char *all;
	int status;
	bool ok;

	memset(r, 0, sizeof(*r));
	if (!e2e_reap(e->bg, &status, 15000)) {
		e2e_stop_child(&e->bg, SIGKILL, 1000);
		printf("e2e: the background client did not finish\n");
		return false;
	}
	e->bg = 0;
	all = read_all(out, 0);
	ok = all && result_parse(r, all);
	if (!ok) {
		snprintf(err_log, sizeof(err_log), "%s.err", out);
		printf("e2e: background client (status 0x%x) printed no JSON: %s\n", status,
		       all ?: "");
		show_file("client stderr", err_log, 0);
	}
	free(all);
	return ok;
}

/* Around time t: who answered. A request that ended before t is
 * "before"; one still in flight at t, or started later, "after", timed by
 * when its answer came. */
struct ev_summary {
	int before, after;
	int by_before[2], by_after[2];
	int errors_before, errors_after;
	int errors_started_after; /* of errors_after, requests made at t_made or later */
	long first_after[2]; /* ms after t of the first answer by the cluster, -1 none */
	long last_after[2];  /* ... and the last one */
	int first_after_idx[2]; /* its index among the requests after t */
	long last_error;     /* ms after t of the last error, -1 none */
	int started_after[2]; /* answers to requests that started at t_made or later */
	long max_latency;     /* the slowest request (ms) ... */
	long max_latency_at;  /* ... started at this ms after t */
	long median_latency;
};

static int cluster_of(const char *what)
{
	int c;

	for (c = 0; c < 2; c++)
		if (!strcmp(what, cluster_names[c]))
			return c;
	return -1;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

/* started_after and errors_started_after count requests made at t_made or
 * later: for a kill, once the process is gone (a request made between the
 * signal and the exit may still be answered by it). */
static void ev_summarize_from(const struct result *r, long long t, long long t_made,
			      struct ev_summary *s)
{
	json_t *ev;
	size_t i;
	int c;

	memset(s, 0, sizeof(*s));
	s->first_after[0] = s->first_after[1] = s->last_after[0] = s->last_after[1] = -1;
	s->first_after_idx[0] = s->first_after_idx[1] = -1;
	s->last_error = -1;
	long lat[4096];
	size_t n_lat = 0;

	json_array_foreach(json_object_get(r->doc, "events"), i, ev) {
		long long ts = json_integer_value(json_array_get(ev, 2));
		long l = (long)(ts - json_integer_value(json_array_get(ev, 0)));

		if (n_lat < sizeof(lat) / sizeof(lat[0]))
			lat[n_lat++] = l;
		if (l > s->max_latency) {
			s->max_latency = l;
			s->max_latency_at = (long)(json_integer_value(json_array_get(ev, 0)) - t);
		}
		const char *what = json_string_value(json_array_get(ev, 1)) ?: "!";

		c = cluster_of(what);
		if (c >= 0 && json_integer_value(json_array_get(ev, 0)) >= t_made)
			s->started_after[c]++;
		if (c < 0 && json_integer_value(json_array_get(ev, 0)) >= t_made)
			s->errors_started_after++;
		if (ts < t) {
			s->before++;
			if (c >= 0)
				s->by_before[c]++;
			else
				s->errors_before++;
			continue;
		}
		if (c >= 0) {
			s->by_after[c]++;
			if (s->first_after[c] < 0) {
				s->first_after[c] = (long)(ts - t);
				s->first_after_idx[c] = s->after;
			}
			s->last_after[c] = (long)(ts - t);
		} else {
			s->errors_after++;
			s->last_error = (long)(ts - t);
		}
		s->after++;
	}
	qsort(lat, n_lat, sizeof(lat[0]), cmp_long);
	s->median_latency = n_lat ? lat[n_lat / 2] : -1;
	printf("e2e: request latency: median %ld ms, max %ld ms (the request started at %+ld ms)\n",
	       s->median_latency, s->max_latency, s->max_latency_at);
}

static void ev_summarize(const struct result *r, long long t, struct ev_summary *s)
{
	ev_summarize_from(r, t, t, s);
}

/* Collapsed runs: "+120ms..+340ms cluster1 x12". */
static void ev_print(const struct result *r, long long t)
{
	json_t *evs = json_object_get(r->doc, "events");
	size_t n = json_array_size(evs), i, j;
	int runs = 0;

	for (i = 0; i < n; i = j + 1) {
		const char *what = json_string_value(json_array_get(json_array_get(evs, i), 1)) ?: "?";

		for (j = i; j + 1 < n; j++)
			if (strcmp(json_string_value(json_array_get(json_array_get(evs, j + 1), 1)) ?: "?",
				   what))
				break;
		if (runs++ < 40)
			printf("e2e:   started %+lldms..%+lldms: %s x%zu\n",
			       json_integer_value(json_array_get(json_array_get(evs, i), 0)) - t,
			       json_integer_value(json_array_get(json_array_get(evs, j), 0)) - t, what,
			       j - i + 1);
	}
}

/* A share of n within [lo_pct, hi_pct] percent. */
static bool share_in(int got, int n, double lo_pct, double hi_pct)
{
	return got * 100.0 >= lo_pct * n && got * 100.0 <= hi_pct * n;
}

/* ------------------------------------------------------------------ */
/* subtests                                                            */
/* ------------------------------------------------------------------ */

#define NEED(m) (1u << (m))

static void subtest_gateway_listening(struct seed_e2e *e)
{
	char *out, *line, name[64] = "", status[32] = "", age[32] = "", *s;
	json_t *doc, *remote, *want, *entry, *v;
	const char *key;
	size_t i;
	int rc;

	if (!baseline(e, 0))
		return;
	/* kubectl get mseingressconfig ackone-gateway */
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
	ASSERT_STREQ(status, "Listening", "STATUS");
	ASSERT_TRUE(age[0] != '\0', "AGE shown");

	/* kubectl get mseingressconfig ackone-gateway -ojsonpath="{.status.remoteClusters}" */
	doc = ctl_json(e, false, "get mseingressconfig " GATEWAY);
	if (!ASSERT_OK_PTR(doc, "get mseingressconfig -o json"))
		return;
	remote = json_object_get(json_object_get(doc, "status"), "remoteClusters");
	s = json_dumps(remote, JSON_COMPACT | JSON_ENCODE_ANY);
	printf("e2e: .status.remoteClusters = %s\n", s ?: "(none)");
	free(s);
	want = json_pack("[{s:s},{s:s}]", "clusterId", CLUSTER1, "clusterId", CLUSTER2);
	ASSERT_TRUE(json_equal(remote, want),
		    "status.remoteClusters = [{clusterId: c1}, {clusterId: c2}]");
	json_array_foreach(remote, i, entry) {
		json_object_foreach(entry, key, v) {
			if (json_is_string(v) && strstr(json_string_value(v), "Failed"))
				_CHECK(true, "no Failed entry in status.remoteClusters", "%s: %s", key,
				       json_string_value(v));
		}
	}
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(doc, "status"), "status")),
		     "Listening", "status.status");
	json_decref(want);
	json_decref(doc);
}

static void subtest_ingress_address(struct seed_e2e *e)
{
	static const char *const all[] = { "web-demo", "web-demo-cluster-one",
					   "web-demo-cluster-second", "web-demo-weight",
					   "web-demo-weight-canary" };
	char *out, *line, tag[128];
	json_t *doc, *it, *ip;
	size_t i, k;
	int rc;

	if (!baseline(e, NEED(M_DEMO) | NEED(M_CLUSTER_ONE) | NEED(M_HEADER) | NEED(M_WEIGHT)))
		return;
	out = e2e_capture(&rc, false, "%s -p %s get ingress 2>&1", e->ctl_bin, e->pin);
	if (!ASSERT_OK_PTR(out, "fleetgatectl get ingress ran"))
		return;
	ASSERT_EQ(rc, 0, "get ingress exit status");
	for (k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		bool found = false;

		/* the row of this Ingress: its name as a whole word */
		for (line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
			char first[128] = "", second[128] = "";

			if (sscanf(line, "%127s %127s", first, second) < 1)
				continue;
			if (strcmp(first, all[k]) && strcmp(second, all[k]))
				continue;
			found = true;
			snprintf(tag, sizeof(tag), "get ingress: %s shows the address %s", all[k], e->gw);
			{
				char *eol = strchr(line, '\n');
				size_t len = eol ? (size_t)(eol - line) : strlen(line);
				char row[512];

				snprintf(row, sizeof(row), "%.*s", (int)len, line);
				_CHECK(!strstr(row, e->gw), tag, "row '%s'", row);
			}
		}
		snprintf(tag, sizeof(tag), "get ingress lists %s", all[k]);
		ASSERT_TRUE(found, tag);
	}
	free(out);

	/* kubectl get ingress web-demo: that one Ingress, as kubectl shows it
	 * (the usage says "get ingress [NAME]") */
	out = e2e_capture(&rc, false, "%s -p %s get ingress web-demo 2>&1", e->ctl_bin, e->pin);
	if (ASSERT_OK_PTR(out, "fleetgatectl get ingress web-demo ran")) {
		ASSERT_EQ(rc, 0, "get ingress web-demo exit status");
		ASSERT_TRUE(strstr(out, e->gw) != NULL, "get ingress web-demo shows the address");
		_CHECK(strstr(out, "web-demo-cluster-one") || strstr(out, "web-demo-weight"),
		       "get ingress web-demo lists web-demo only",
		       "other Ingresses listed too: NAME is ignored");
		free(out);
	}

	/* kubectl get ingress web-demo -ojsonpath="{.status.loadBalancer}" */
	doc = ctl_json(e, false, "get ingress");
	if (!ASSERT_OK_PTR(doc, "get ingress -o json"))
		return;
	for (k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		bool found = false;

		json_array_foreach(json_object_get(doc, "items"), i, it) {
			if (strcmp(json_string_value(json_object_get(it, "name")) ?: "", all[k]))
				continue;
			found = true;
			snprintf(tag, sizeof(tag), "%s accepted", all[k]);
			ASSERT_TRUE(json_is_true(json_object_get(it, "accepted")), tag);
			ip = json_object_get(json_array_get(json_object_get(json_object_get(it,
						"loadBalancer"), "ingress"), 0), "ip");
			snprintf(tag, sizeof(tag), "%s .loadBalancer.ingress[0].ip", all[k]);
			ASSERT_STREQ(json_string_value(ip), e->gw, tag);
		}
		snprintf(tag, sizeof(tag), "get ingress -o json lists %s", all[k]);
		ASSERT_TRUE(found, tag);
	}
	json_decref(doc);
}

static void subtest_example1_pod_counts(struct seed_e2e *e)
{
	struct result r;
	long long t0;
	long ms;
	int n;

	if (!baseline(e, NEED(M_DEMO)))
		return;
	/* 1:1 pods: each cluster 50% +- 20 points (n = 200: sd 3.5 points). */
	n = 200;
	if (!ASSERT_TRUE(requests(e, "/svc1", n, NULL, 0, &r), "client ran"))
		return;
	result_print("1:1 pods", &r);
	ASSERT_EQ(r.errors, 0, "1:1 pods: errors");
	_CHECK(!share_in(r.cluster[C1], n, 30, 70), "1:1 pods: cluster1 share 30%..70%",
	       "cluster1 answered %d of %d", r.cluster[C1], n);
	_CHECK(!share_in(r.cluster[C2], n, 30, 70), "1:1 pods: cluster2 share 30%..70%",
	       "cluster2 answered %d of %d", r.cluster[C2], n);
	result_free(&r);

	/* "To shift the ratio, scale the Deployment": cluster1 to 3 pods. */
	if (!ASSERT_OK(pod_start(e, C1, 1), "cluster1 pod 2") ||
	    !ASSERT_OK(pod_start(e, C1, 2), "cluster1 pod 3"))
		return;
	t0 = e2e_now_ms();
	if (!ASSERT_OK(write_slice(e, C1, 3), "cluster1 EndpointSlice with 3 pods"))
		return;
	ms = wait_clusters(e, 3, 1, 3, 1, 5000);
	printf("e2e: 3:1 healthy endpoints %lld ms after the rename\n", ms < 0 ? -1 : e2e_now_ms() - t0);
	if (!_CHECK(ms < 0, "3:1 healthy endpoints", "not within 5 s"))
		return;
	ctl_show(e, "get routes");
	/* 3:1 pods: cluster1 75%, 60..90 (n = 300: sd 2.5 points). */
	n = 300;
	if (!ASSERT_TRUE(requests(e, "/svc1", n, NULL, 0, &r), "client ran"))
		return;
	result_print("3:1 pods", &r);
	ASSERT_EQ(r.errors, 0, "3:1 pods: errors");
	_CHECK(!share_in(r.cluster[C1], n, 60, 90), "3:1 pods: cluster1 share 60%..90%",
	       "cluster1 answered %d of %d", r.cluster[C1], n);
	ASSERT_EQ(r.cluster[C1] + r.cluster[C2], n, "3:1 pods: answers");
	result_free(&r);
}

static void subtest_example2_pinned(struct seed_e2e *e)
{
	if (!baseline(e, NEED(M_DEMO) | NEED(M_CLUSTER_ONE)))
		return;
	ctl_show(e, "get routes");
	all_to(e, "/service1", "/service1", 50, NULL, C1);
}

/* Who answered request i of a keep-alive run, from its events. */
static const char *event_what(const struct result *r, size_t i)
{
	return json_string_value(json_array_get(json_array_get(json_object_get(r->doc, "events"), i),
						1)) ?: "?";
}

static void subtest_example3_header(struct seed_e2e *e)
{
	struct result r;
	int i, n = 40, mismatch = -1;

	if (!baseline(e, NEED(M_DEMO) | NEED(M_CLUSTER_ONE) | NEED(M_HEADER)))
		return;
	ctl_show(e, "get routes");
	all_to(e, "stage: gray", "/service1", 50, GRAY_HDR, C2);
	all_to(e, "no header", "/service1", 50, NULL, C1);
	all_to(e, "stage: blue", "/service1", 20, "stage: blue", C1);

	/* Per-request routing: one keep-alive connection, every other request
	 * with the header. */
	if (!ASSERT_TRUE(requests(e, "/service1", n, GRAY_HDR, F_KEEPALIVE | F_ALTERNATE | F_EVENTS,
				  &r),
			 "keep-alive client ran"))
		return;
	result_print("keep-alive, header on every other request", &r);
	ASSERT_EQ(r.errors, 0, "keep-alive: errors");
	ASSERT_EQ(r.connections, 1, "keep-alive: one connection");
	for (i = 0; i < n; i++) {
		if (strcmp(event_what(&r, i), cluster_names[i % 2 ? C1 : C2])) {
			mismatch = i;
			break;
		}
	}
	if (!_CHECK(mismatch >= 0, "keep-alive: gray -> cluster2, plain -> cluster1, alternating",
		    "request %d (%s) answered by %s", mismatch,
		    mismatch % 2 ? "no header" : "stage: gray", event_what(&r, mismatch))) {
		for (i = 0; i < n && i < 12; i++)
			printf("e2e:   request %d %s: %s\n", i, i % 2 ? "plain" : "gray ",
			       event_what(&r, i));
	}
	ASSERT_EQ(r.cluster[C2], n / 2, "keep-alive: cluster2 answers");
	ASSERT_EQ(r.cluster[C1], n / 2, "keep-alive: cluster1 answers");
	result_free(&r);
}

static void subtest_example4_failover_pods(struct seed_e2e *e)
{
	char out[PATH_MAX];
	struct ev_summary s;
	struct result r;
	long long t0, t1, t_dead;
	long ms;

	if (!baseline(e, NEED(M_DEMO) | NEED(M_CLUSTER_ONE) | NEED(M_HEADER)))
		return;
	snprintf(out, sizeof(out), "%s/seed-bg-pods.json", test__tmpdir());

	/* Gray traffic flowing; cluster 2's pod dies. */
	e->bg = bg_start(e, out, "/service1", GRAY_HDR, 2.5);
	if (!ASSERT_GT(e->bg, 0, "gray traffic started"))
		return;
	t0 = e2e_now_ms();
	pod_kill(e, C2, 0);
	t_dead = e2e_now_ms(); /* pod_kill returns once the process is gone */
	ms = wait_clusters(e, 1, 1, 1, 0, 3000);
	printf("e2e: cluster2 has no healthy endpoint %lld ms after the kill\n",
	       ms < 0 ? -1 : e2e_now_ms() - t0);
	if (!ASSERT_TRUE(bg_finish(e, out, &r), "gray traffic"))
		return;
	ev_summarize_from(&r, t0, t_dead, &s);
	ev_print(&r, t0);
	result_print("gray traffic across the kill", &r);
	printf("e2e: the pod was gone %lld ms after the kill was sent\n", t_dead - t0);
	printf("e2e: FAILOVER: before the kill %d requests (cluster2 %d); after it (or in flight) "
	       "%d requests, %d errors (last at %+ld ms), first cluster1 answer at %+ld ms "
	       "(request #%d after the kill), last cluster2 answer at %+ld ms (%d of requests "
	       "made after the kill)\n",
	       s.before, s.by_before[C2], s.after, s.errors_after, s.last_error,
	       s.first_after[C1], s.first_after_idx[C1], s.last_after[C2], s.started_after[C2]);
	ASSERT_GT(s.by_before[C2], 0, "cluster2 answered gray traffic before the kill");
	ASSERT_EQ(s.by_before[C1] + s.errors_before, 0, "only cluster2 before the kill");
	ASSERT_GE(s.by_after[C1], 5, "cluster1 answered gray requests after the kill");
	/* A request made after the kill never fails (a refused connect is
	 * retried on cluster1); one in flight at the kill may be cut in the
	 * middle of its response (a truncated body cannot be retried): at
	 * most one per client stream (4). */
	ASSERT_EQ(s.errors_started_after, 0, "requests made after the kill: no error");
	ASSERT_LE(s.errors_after, 4, "errors after the kill: only requests in flight at it");
	ASSERT_GE(s.first_after[C1], 0, "cluster1 answered after the kill");
	/* measured; bounded only loosely (0.1 to 1.1 s seen, on a loaded host) */
	_CHECK(s.first_after[C1] > 2000, "first cluster1 answer within 2 s of the kill",
	       "at %+ld ms", s.first_after[C1]);
	ASSERT_EQ(s.started_after[C2], 0, "no request made after the pod was gone answered by cluster2");
	result_free(&r);
	if (!_CHECK(ms < 0, "cluster2 marked down", "still healthy 3 s after the kill"))
		return;
	all_to(e, "gray, cluster2's pod dead", "/service1", 50, GRAY_HDR, C1);
	ctl_show(e, "get routes");

	/* The pod restarts: gray traffic goes back to cluster 2 within 2 s. */
	e->bg = bg_start(e, out, "/service1", GRAY_HDR, 2.8);
	if (!ASSERT_GT(e->bg, 0, "gray traffic started"))
		return;
	if (!ASSERT_OK(pod_start(e, C2, 0), "restart cluster2's pod"))
		return;
	t1 = e2e_now_ms();
	ms = wait_clusters(e, 1, 1, 1, 1, 3000);
	printf("e2e: cluster2 healthy again %lld ms after its pod listens\n",
	       ms < 0 ? -1 : e2e_now_ms() - t1);
	if (!ASSERT_TRUE(bg_finish(e, out, &r), "gray traffic"))
		return;
	ev_summarize(&r, t1, &s);
	ev_print(&r, t1);
	printf("e2e: RECOVERY: first cluster2 answer %+ld ms after the pod listens; errors %d "
	       "before, %d after\n",
	       s.first_after[C2], s.errors_before, s.errors_after);
	ASSERT_EQ(r.errors, 0, "no error while the pod restarts");
	_CHECK(s.first_after[C2] < 0 || s.first_after[C2] > 2000,
	       "gray traffic back on cluster2 within 2 s", "first cluster2 answer at %+ld ms",
	       s.first_after[C2]);
	if (s.first_after[C2] >= 0)
		_CHECK(s.last_after[C1] > s.first_after[C2] + 50,
		       "cluster1 stops taking gray traffic once cluster2 is back",
		       "cluster1 answered at %+ld ms, cluster2 from %+ld ms", s.last_after[C1],
		       s.first_after[C2]);
	result_free(&r);
	all_to(e, "gray, cluster2's pod back", "/service1", 50, GRAY_HDR, C2);
}

static void subtest_example4_failover_service_deleted(struct seed_e2e *e)
{
	char out[PATH_MAX], rel[128];
	struct ev_summary s;
	struct result r;
	long long t0;
	long ms;

	if (!baseline(e, NEED(M_DEMO) | NEED(M_CLUSTER_ONE) | NEED(M_HEADER)))
		return;
	snprintf(out, sizeof(out), "%s/seed-bg-svc.json", test__tmpdir());
	snprintf(rel, sizeof(rel), "clusters/%s/service1.yaml", CLUSTER2);

	/* kubectl delete service service1 in cluster 2, gray traffic flowing */
	e->bg = bg_start(e, out, "/service1", GRAY_HDR, 2.0);
	if (!ASSERT_GT(e->bg, 0, "gray traffic started"))
		return;
	t0 = e2e_now_ms();
	if (!ASSERT_OK(cfg_unlink(e, rel), "delete cluster2's service1.yaml"))
		return;
	e->svc[C2] = false;
	ms = wait_clusters(e, 1, 0, 1, 0, 3000);
	printf("e2e: cluster2 out of the routes %lld ms after the delete\n",
	       ms < 0 ? -1 : e2e_now_ms() - t0);
	if (!ASSERT_TRUE(bg_finish(e, out, &r), "gray traffic"))
		return;
	ev_summarize(&r, t0, &s);
	ev_print(&r, t0);
	result_print("gray traffic across the delete", &r);
	printf("e2e: DELETE: last cluster2 answer at %+ld ms, first cluster1 at %+ld ms, %d errors after\n",
	       s.last_after[C2], s.first_after[C1], s.errors_after);
	ASSERT_GT(s.by_before[C2], 0, "cluster2 answered gray traffic before the delete");
	ASSERT_EQ(r.errors, 0, "no error across the delete");
	_CHECK(s.last_after[C2] > 1000, "cluster2 cut off within 1 s of the delete",
	       "last cluster2 answer at %+ld ms", s.last_after[C2]);
	ASSERT_GT(s.by_after[C1], 20, "cluster1 takes the gray traffic");
	result_free(&r);
	_CHECK(ms < 0, "cluster2 out of the routes", "not within 3 s");
	all_to(e, "gray, cluster2's Service deleted", "/service1", 50, GRAY_HDR, C1);
	ctl_show(e, "get routes");

	/* Restored. */
	e->bg = bg_start(e, out, "/service1", GRAY_HDR, 2.5);
	if (!ASSERT_GT(e->bg, 0, "gray traffic started"))
		return;
	t0 = e2e_now_ms();
	if (!ASSERT_OK(write_service(e, C2), "restore cluster2's service1.yaml"))
		return;
	ms = wait_clusters(e, 1, 1, 1, 1, 3000);
	printf("e2e: cluster2 back %lld ms after the restore\n", ms < 0 ? -1 : e2e_now_ms() - t0);
	if (!ASSERT_TRUE(bg_finish(e, out, &r), "gray traffic"))
		return;
	ev_summarize(&r, t0, &s);
	ev_print(&r, t0);
	printf("e2e: RESTORE: first cluster2 answer at %+ld ms, %d errors\n", s.first_after[C2],
	       r.errors);
	ASSERT_EQ(r.errors, 0, "no error across the restore");
	_CHECK(s.first_after[C2] < 0 || s.first_after[C2] > 2000,
	       "gray traffic back on cluster2 within 2 s", "first cluster2 answer at %+ld ms",
	       s.first_after[C2]);
	result_free(&r);
	all_to(e, "gray, cluster2's Service restored", "/service1", 50, GRAY_HDR, C2);
}

static void subtest_example5_weight(struct seed_e2e *e)
{
	struct ev_summary s;
	struct result r;
	int n = 1000;

	if (!baseline(e, NEED(M_WEIGHT)))
		return;
	ctl_show(e, "get routes");
	/* canary-weight 10: cluster2 10% +- 3.5 points (n = 1000: sd 0.95). */
	if (!ASSERT_TRUE(requests(e, "/svc1-w", n, NULL, F_EVENTS, &r), "client ran"))
		return;
	result_print("/svc1-w", &r);
	ev_summarize(&r, 0, &s); /* steady state: the latencies, for the log */
	ASSERT_EQ(r.errors, 0, "errors");
	ASSERT_EQ(r.cluster[C1] + r.cluster[C2], n, "answers");
	_CHECK(!share_in(r.cluster[C2], n, 6.5, 13.5), "cluster2 share 10% +- 3.5",
	       "cluster2 answered %d of %d", r.cluster[C2], n);
	result_free(&r);
}

/* The first body the client saw for status. */
static const char *body_of(const struct result *r, const char *status)
{
	return json_string_value(json_object_get(json_object_get(r->doc, "bodies"), status));
}

static int status_count(const struct result *r, const char *status)
{
	return (int)json_integer_value(json_object_get(json_object_get(r->doc, "statuses"), status));
}

static bool readable(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!isprint((unsigned char)*s) && !isspace((unsigned char)*s))
			return false;
	return true;
}

static void subtest_not_found_and_503(struct seed_e2e *e)
{
	struct ev_summary s;
	struct result r;
	bool ok;
	const char *body;
	long ms;

	if (!baseline(e, NEED(M_DEMO)))
		return;

	/* A path no Ingress has. */
	if (ASSERT_TRUE(requests(e, "/no-such-path", 3, NULL, 0, &r), "client ran")) {
		result_print("/no-such-path", &r);
		ASSERT_EQ(status_count(&r, "404"), 3, "unknown path: 404");
		body = body_of(&r, "404");
		printf("e2e: 404 body: %s\n", body ?: "(none)");
		ASSERT_TRUE(readable(body), "404 body is readable text");
		ASSERT_TRUE(body && strstr(body, "/no-such-path"), "404 body names the path");
		result_free(&r);
	}

	/* Every pod of service1 dead. */
	pod_kill(e, C1, 0);
	pod_kill(e, C2, 0);
	/* The proxy's own upstream connect timeout is 2 s: wait longer than
	 * that for its answer. */
	e->client_timeout = 5;
	ok = requests(e, "/svc1", 4, NULL, F_EVENTS, &r);
	e->client_timeout = 0;
	if (ASSERT_TRUE(ok, "client ran")) {
		result_print("/svc1 right after both pods died", &r);
		ev_summarize(&r, 0, &s);
		printf("e2e: right after: 502 body: %s; 503 body: %s\n", body_of(&r, "502") ?: "-",
		       body_of(&r, "503") ?: "-");
		ASSERT_EQ(r.cluster[C1] + r.cluster[C2], 0, "no answer from a dead pod");
		if (!ASSERT_EQ(status_count(&r, "502") + status_count(&r, "503"), 4,
			       "right after the kill: 502 or 503"))
			ctl_show(e, "counters");
		/* A refused connect should make a 502 at once; measured, not
		 * asserted (see the report: 0.5 to 1.3 s today). */
		printf("e2e: right after the kill: the slowest 5xx took %ld ms\n", s.max_latency);
		result_free(&r);
	}
	ms = wait_clusters(e, 1, 1, 0, 0, 3000);
	if (!_CHECK(ms < 0, "both clusters marked down", "not within 3 s"))
		return;
	if (ASSERT_TRUE(requests(e, "/svc1", 5, NULL, 0, &r), "client ran")) {
		result_print("/svc1, no healthy pod", &r);
		ASSERT_EQ(status_count(&r, "503"), 5, "no healthy pod: 503");
		body = body_of(&r, "503");
		printf("e2e: 503 body: %s\n", body ?: "(none)");
		ASSERT_TRUE(readable(body), "503 body is readable text");
		ASSERT_TRUE(body && strstr(body, "service1"), "503 body names the Service");
		result_free(&r);
	}

	/* Recovery. */
	if (!ASSERT_OK(pod_start(e, C1, 0), "restart cluster1's pod") ||
	    !ASSERT_OK(pod_start(e, C2, 0), "restart cluster2's pod"))
		return;
	ms = wait_clusters(e, 1, 1, 1, 1, 3000);
	printf("e2e: both healthy again after %ld ms\n", ms);
	if (!_CHECK(ms < 0, "both clusters healthy again", "not within 3 s"))
		return;
	if (ASSERT_TRUE(requests(e, "/svc1", 40, NULL, 0, &r), "client ran")) {
		result_print("/svc1 recovered", &r);
		ASSERT_EQ(r.errors, 0, "recovered: errors");
		ASSERT_GT(r.cluster[C1], 0, "recovered: cluster1 answers");
		ASSERT_GT(r.cluster[C2], 0, "recovered: cluster2 answers");
		result_free(&r);
	}
}

/* ------------------------------------------------------------------ */
/* setup and cleanup                                                   */
/* ------------------------------------------------------------------ */

static int seed_setup(struct seed_e2e *e)
{
	long long deadline;
	int err, c;

	snprintf(e->t, sizeof(e->t), "%ss", test__prefix());
	e->o = 50 + getpid() % 50;
	snprintf(e->ns_cli, sizeof(e->ns_cli), "%scli", e->t);
	snprintf(e->ns_gw, sizeof(e->ns_gw), "%sgw", e->t);
	snprintf(e->ns_c1, sizeof(e->ns_c1), "%sc1", e->t);
	snprintf(e->ns_c2, sizeof(e->ns_c2), "%sc2", e->t);
	snprintf(e->pin, sizeof(e->pin), "/sys/fs/bpf/%s", e->t);
	snprintf(e->sock, sizeof(e->sock), "/run/fleetgate/%s.sock", e->t);
	snprintf(e->gw, sizeof(e->gw), "10.%d.0.1", e->o);
	snprintf(e->agent_log, sizeof(e->agent_log), "%s/seed-agent.log", test__tmpdir());
	printf("e2e: names %s*, addresses 10.%d.0.0/16, pins %s, admin socket %s\n", e->t, e->o,
	       e->pin, e->sock);

	err = topo_setup(e);
	if (!ASSERT_OK(err, "topology"))
		return err;
	for (c = 0; c < 2; c++) {
		err = pod_start(e, c, 0);
		if (!ASSERT_OK(err, cluster_names[c]))
			return err;
	}
	err = cfg_setup(e);
	if (!ASSERT_OK(err, "config directory"))
		return err;
	err = agent_start(e);
	if (!ASSERT_OK(err, "agent start"))
		return err;
	/* The seed's Step 1: wait for Listening. */
	for (deadline = e2e_now_ms() + 5000;; e2e_sleep_ms(20)) {
		int rc;
		char *out = e2e_capture(&rc, true, "%s -p %s get mseingressconfig %s 2>&1", e->ctl_bin,
				    e->pin, GATEWAY);
		bool ok = out && strstr(out, "Listening");

		free(out);
		if (ok)
			break;
		if (e2e_now_ms() >= deadline) {
			ctl_show(e, "get mseingressconfig " GATEWAY);
			return _CHECK(true, "gateway Listening", "not within 5 s"), -ETIMEDOUT;
		}
	}
	return 0;
}

static void seed_cleanup(struct seed_e2e *e)
{
	char *ns[4] = { e->ns_cli, e->ns_gw, e->ns_c1, e->ns_c2 };
	int i, c;

	if (e->bg > 0)
		e2e_stop_child(&e->bg, SIGKILL, 2000);
	if (e->agent > 0) {
		int st = e2e_stop_child(&e->agent, SIGTERM, 5000);

		ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			    "agent exits 0 on SIGTERM");
	}
	if (e->agent_log[0] && access(e->agent_log, F_OK) == 0)
		show_file("agent log", e->agent_log, 0);
	for (c = 0; c < 2; c++)
		for (i = 0; i < MAX_PODS; i++)
			e2e_stop_child(&e->pod[c][i], SIGKILL, 2000);
	if (e->t[0]) {
		/* A crashed agent leaves pins that hold the program on the
		 * interfaces. */
		if (access(e->pin, F_OK) == 0 || access(e->sock, F_OK) == 0)
			printf("e2e: the agent left %s or %s behind\n", e->pin, e->sock);
		fg_sh("rm -rf /sys/fs/bpf/%s /run/fleetgate/%s.sock", e->t, e->t);
	}
	for (i = 3; i >= 0; i--)
		if (e->ns_made[i])
			fg_sh("ip netns del %s", ns[i]);
	for (i = 0; i < 2; i++)
		if (e->etc_made[i])
			fg_sh("rm -rf /etc/netns/%s", i == C1 ? e->ns_c1 : e->ns_c2);
	if (e->etc_root_made)
		rmdir("/etc/netns"); /* unless someone else's files are in it */
}

FG_TEST(e2e_seed)
{
	struct seed_e2e e = {};
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
		test__skip("fleetgate-agent, fleetgatectl, demo/ or selftests/e2e not found");
		return;
	}
	if (seed_setup(&e) == 0) {
		printf("e2e: setup took %lld ms\n", e2e_now_ms() - t0);
#define RUN(name)                                                                  \
		if (test__start_subtest(#name)) {                                  \
			ts = e2e_now_ms();                                             \
			subtest_##name(&e);                                        \
			printf("e2e: " #name " took %lld ms\n", e2e_now_ms() - ts);   \
		}
		RUN(gateway_listening)
		RUN(ingress_address)
		RUN(example1_pod_counts)
		RUN(example2_pinned)
		RUN(example3_header)
		RUN(example4_failover_pods)
		RUN(example4_failover_service_deleted)
		RUN(example5_weight)
		RUN(not_found_and_503)
#undef RUN
	}
	seed_cleanup(&e);
	printf("e2e: total %lld ms\n", e2e_now_ms() - t0);
}
