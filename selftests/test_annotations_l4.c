// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A LoadBalancer Service's spec.loadBalancerSourceRanges in the XDP
 * allowlist, through the real control plane: a config directory read by
 * fg_control, applied to a data plane loaded without pins in a private
 * network namespace, then SYNs run through the program
 * (BPF_PROG_TEST_RUN). From an allowed source the SYN is NATed and
 * forwarded to a backend; from another it is dropped and counted
 * (reason "allowlist"). Changing the ranges, removing them and removing
 * the Service leave exactly the entries they should in the trie.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>

#include "control.h"
#include "dataplane.h"
#include "fleetgate.h"
#include "pktbuild.h"
#include "test_progs.h"

#define C1 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"
#define VIP "10.99.0.100"
#define ALLOWED "10.200.0.5"
#define STRANGER "10.201.0.5"
#define GW_B "10.1.0.254"   /* the gateway's address toward the backends */
#define STALE_SID 77

static struct {
	struct fg_dataplane *dp;
	struct fg_control *control;
	char cfg[PATH_MAX - 64];
	char if_b[IFNAMSIZ], if_c[IFNAMSIZ];
	int ifindex_b, ifindex_c;
	__u16 sport;
} L;

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_file(const char *rel, const char *fmt, ...)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", L.cfg, rel);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	if (fclose(f))
		return -errno;
	/* renamed in whole: the watcher never reads half a file */
	return rename(tmp, path) ? -errno : 0;
}

/* The fleet's LoadBalancer Service; ranges: YAML list items, or "" */
static int write_lb(const char *ranges)
{
	return write_file("fleet/lb.yaml",
			  "apiVersion: v1\n"
			  "kind: Service\n"
			  "metadata:\n"
			  "  name: web\n"
			  "  namespace: web-demo\n"
			  "spec:\n"
			  "  type: LoadBalancer\n"
			  "  ports:\n"
			  "  - port: 80\n"
			  "    protocol: TCP\n"
			  "%s%s",
			  *ranges ? "  loadBalancerSourceRanges:\n" : "", ranges);
}

static int write_config(void)
{
	int err;

	snprintf(L.cfg, sizeof(L.cfg), "%s/l4cfg", test__tmpdir());
	if (fg_sh("mkdir -p '%s/fleet' '%s/clusters/" C1 "'", L.cfg, L.cfg))
		return -EIO;
	err = write_file("fleet/gateway.yaml",
			 "apiVersion: mse.alibabacloud.com/v1alpha1\n"
			 "kind: MseIngressConfig\n"
			 "metadata:\n"
			 "  name: gw\n"
			 "  annotations:\n"
			 "    mse.alibabacloud.com/remote-clusters: " C1 "\n"
			 "spec:\n"
			 "  ingress:\n"
			 "    local:\n"
			 "      ingressClass: mse\n");
	if (!err)
		err = write_file("clusters/" C1 "/web.yaml",
				 "apiVersion: v1\n"
				 "kind: Service\n"
				 "metadata:\n"
				 "  name: web\n"
				 "  namespace: web-demo\n"
				 "spec:\n"
				 "  ports:\n"
				 "  - port: 80\n"
				 "    protocol: TCP\n"
				 "    targetPort: 8080\n"
				 "---\n"
				 "apiVersion: discovery.k8s.io/v1\n"
				 "kind: EndpointSlice\n"
				 "metadata:\n"
				 "  name: web-a\n"
				 "  namespace: web-demo\n"
				 "  labels:\n"
				 "    kubernetes.io/service-name: web\n"
				 "addressType: IPv4\n"
				 "ports:\n"
				 "- port: 8080\n"
				 "  protocol: TCP\n"
				 "endpoints:\n"
				 "- addresses:\n"
				 "  - 10.1.0.1\n"
				 "  conditions:\n"
				 "    ready: true\n");
	if (!err)
		err = write_lb("  - 10.200.0.0/24\n  - 192.0.2.7\n");
	return err;
}

/* The L4 listener of VIP:80/TCP. */
static bool listener(struct fg_listener *val)
{
	struct fg_listener_key key = { .port = htons(80), .proto = FG_PROTO_TCP,
				       .family = FG_AF_INET };

	inet_pton(AF_INET, VIP, &key.vip.v4);
	return !bpf_map_lookup_elem(fg_dp_maps(L.dp)->listeners, &key, val);
}

/* The trie's entries of service sid as "addr/len" text, sorted. */
static void trie_of(__u32 sid, char *out, size_t len)
{
	int fd = fg_dp_maps(L.dp)->allowlists;
	struct fg_allow_key k, next;
	char items[16][64], a[INET6_ADDRSTRLEN], tmp[64];
	void *prev = NULL;
	size_t n = 0, i, j, o = 0;

	while (!bpf_map_get_next_key(fd, prev, &next) && n < 16) {
		k = next;
		prev = &k;
		if (ntohl(k.service_id) != sid)
			continue;
		inet_ntop(AF_INET, &k.addr[12], a, sizeof(a));
		snprintf(items[n++], sizeof(items[0]), "%s/%u", a, k.prefixlen - 32 - 96);
	}
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (strcmp(items[j], items[i]) < 0) {
				memcpy(tmp, items[i], sizeof(tmp));
				memcpy(items[i], items[j], sizeof(tmp));
				memcpy(items[j], tmp, sizeof(tmp));
			}
	out[0] = '\0';
	for (i = 0; i < n && o < len; i++)
		o += snprintf(out + o, len - o, "%s%s", i ? " " : "", items[i]);
}

/* Processes config changes until the trie of the listener's service reads
 * want and the listener's flag says on (or 2 s). */
static bool settle(const char *want, bool flag)
{
	__u64 deadline = now_ms() + 2000;
	struct fg_listener l;
	char got[512] = "";
	bool on = false;

	do {
		fg_control_process(L.control);
		if (listener(&l)) {
			trie_of(l.service_id, got, sizeof(got));
			on = l.flags & FG_LISTENER_F_ALLOWLIST;
			if (!strcmp(got, want) && on == flag)
				return true;
		}
		usleep(20000);
	} while (now_ms() < deadline);
	printf("allowlist '%s' (flag %d), want '%s' (flag %d)\n", got, on, want, flag);
	ASSERT_TRUE(false, "the allowlist settles");
	return false;
}

static __u64 verdicts(int reason)
{
	struct fg_counter c = {};

	fg_dp_read_counter(L.dp, fg_dp_maps(L.dp)->verdicts, reason, &c);
	return c.packets;
}

/* A SYN from src to VIP:80: the program's verdict, and which reason
 * counted it. */
static int syn(const char *src, __u32 *verdict)
{
	struct pkt_spec s = { .src = src, .dst = VIP, .proto = IPPROTO_TCP,
			      .sport = ++L.sport, .dport = 80, .tcp_flags = PKT_TCP_SYN, .seq = 1 };
	__u64 before[FG_R_MAX];
	uint8_t in[PKT_MAX_LEN], out[PKT_MAX_LEN];
	struct xdp_md ctx = { .ingress_ifindex = (__u32)L.ifindex_c };
	size_t len = pkt_build(&s, in, sizeof(in));
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_out = out,
		    .data_size_out = sizeof(out), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
		    .repeat = 1);
	int i, reason = -1;

	if (!len)
		return -EINVAL;
	ctx.data_end = (__u32)len;
	o.data_size_in = (__u32)len;
	for (i = 0; i < FG_R_MAX; i++)
		before[i] = verdicts(i);
	if (bpf_prog_test_run_opts(fg_dp_prog_fd(L.dp), &o))
		return -errno;
	*verdict = o.retval;
	for (i = 0; i < FG_R_MAX; i++)
		if (verdicts(i) != before[i])
			reason = i;
	return reason;
}

static bool expect(const char *src, __u32 want_verdict, int want_reason, const char *tag)
{
	__u32 v = ~0u;
	int reason = syn(src, &v);
	bool ok;

	ok = ASSERT_EQ(v, want_verdict, tag);
	ok &= ASSERT_EQ(reason, want_reason, tag);
	if (!ok)
		printf("%s: verdict %u reason %s\n", tag, v,
		       reason >= 0 ? fg_reason_name(reason) : "(none)");
	return ok;
}

static int setup(void)
{
	struct fg_control_opts copts = { .listen = VIP ":8080" };
	struct fg_dp_opts dopts = {};
	struct fg_iface ifc = { .flags = FG_IFACE_F_V4, .n_v4 = 1 };
	const char *p = test__prefix();
	struct fg_addr stale = {};
	int err;

	snprintf(L.if_b, sizeof(L.if_b), "%sb", p);
	snprintf(L.if_c, sizeof(L.if_c), "%sc", p);
	/* b: toward the backend 10.1.0.1 (a permanent neighbour), c: the
	 * clients' side. */
	err = fg_sh("sysctl -qw net.ipv4.conf.all.forwarding=1 && ip -b - <<EOF\n"
		    "link add %1$s type veth peer name %1$sp\n"
		    "link add %2$s type veth peer name %2$sp\n"
		    "addr add " GW_B "/24 dev %1$s\n"
		    "addr add 10.200.0.1/16 dev %2$s\n"
		    "link set %1$s up\nlink set %1$sp up\nlink set %2$s up\nlink set %2$sp up\n"
		    "neigh replace 10.1.0.1 lladdr 02:00:00:00:01:01 dev %1$s nud permanent\n"
		    "EOF", L.if_b, L.if_c);
	if (!ASSERT_OK(err, "links"))
		return -EIO;
	L.ifindex_b = if_nametoindex(L.if_b);
	L.ifindex_c = if_nametoindex(L.if_c);
	err = write_config();
	if (!ASSERT_OK(err, "config"))
		return err;
	err = fg_dp_load(&L.dp, &dopts);
	if (err)
		return err;
	inet_pton(AF_INET, GW_B, &ifc.v4[0].v4);
	err = fg_dp_set_iface(L.dp, L.ifindex_b, &ifc);
	if (!ASSERT_OK(err, "iface"))
		return err;
	/* What a previous agent could have left (--keep-pins) for a service
	 * id nothing uses now: swept by the first apply. */
	inet_pton(AF_INET, "198.51.100.0", &stale.v4);
	err = fg_dp_allow_add(L.dp, STALE_SID, FG_AF_INET, &stale, 24);
	if (!ASSERT_OK(err, "a stale range"))
		return err;
	copts.config_dir = L.cfg;
	err = fg_control_new(&L.control, L.dp, &copts);
	if (!ASSERT_OK(err, "control"))
		return err;
	fg_control_set_state(L.control, true, true);
	err = fg_control_recompute(L.control);
	return ASSERT_OK(err, "recompute") ? 0 : err;
}

static void teardown(void)
{
	fg_control_free(L.control);
	if (L.dp)
		fg_dp_close(L.dp, false);
	/* the veths go with the namespace */
	memset(&L, 0, sizeof(L));
}

static void subtest_allowed_and_dropped(void)
{
	__u64 drops = verdicts(FG_R_ALLOWLIST);
	char stale[128];

	trie_of(STALE_SID, stale, sizeof(stale));
	ASSERT_STREQ(stale, "", "a previous agent's ranges of an unused service id swept");

	if (!settle("10.200.0.0/24 192.0.2.7/32", true))
		return;
	expect(ALLOWED, XDP_REDIRECT, FG_R_FORWARD, "an allowed source is forwarded");
	expect("192.0.2.7", XDP_REDIRECT, FG_R_FORWARD, "an allowed address is forwarded");
	expect(STRANGER, XDP_DROP, FG_R_ALLOWLIST, "another source is dropped");
	expect("192.0.2.8", XDP_DROP, FG_R_ALLOWLIST, "the next address too");
	ASSERT_EQ(verdicts(FG_R_ALLOWLIST) - drops, 2, "counted as allowlist drops");
}

static void subtest_ranges_change(void)
{
	if (!ASSERT_OK(write_lb("  - 10.201.0.0/24\n"), "write"))
		return;
	if (!settle("10.201.0.0/24", true))
		return;
	expect(STRANGER, XDP_REDIRECT, FG_R_FORWARD, "now allowed");
	expect(ALLOWED, XDP_DROP, FG_R_ALLOWLIST, "no longer allowed");
}

static void subtest_bad_range_not_exposed(void)
{
	struct fg_listener l;
	__u64 deadline = now_ms() + 2000;

	if (!ASSERT_OK(write_lb("  - 10.201.0.0/40\n"), "write"))
		return;
	/* Never open to everyone: the Service goes, its listener with it. */
	while (listener(&l) && now_ms() < deadline) {
		fg_control_process(L.control);
		usleep(20000);
	}
	ASSERT_FALSE(listener(&l), "no listener for a Service with a bad range");
	expect(STRANGER, XDP_PASS, FG_R_NO_LISTENER, "nothing listens");
}

static void subtest_ranges_removed(void)
{
	if (!ASSERT_OK(write_lb(""), "write"))
		return;
	if (!settle("", false))
		return;
	expect(STRANGER, XDP_REDIRECT, FG_R_FORWARD, "every source");
	expect(ALLOWED, XDP_REDIRECT, FG_R_FORWARD, "every source");
}

static void subtest_service_removed(void)
{
	struct fg_listener l;
	__u32 sid;
	char path[PATH_MAX], got[256];
	__u64 deadline = now_ms() + 2000;

	if (!ASSERT_OK(write_lb("  - 10.200.0.0/24\n"), "write") ||
	    !settle("10.200.0.0/24", true) || !listener(&l))
		return;
	sid = l.service_id;
	snprintf(path, sizeof(path), "%s/fleet/lb.yaml", L.cfg);
	if (!ASSERT_OK(unlink(path), "remove the Service"))
		return;
	while (listener(&l) && now_ms() < deadline) {
		fg_control_process(L.control);
		usleep(20000);
	}
	ASSERT_FALSE(listener(&l), "listener gone");
	trie_of(sid, got, sizeof(got));
	ASSERT_STREQ(got, "", "its ranges gone");
}

FG_TEST(annotations_l4)
{
	int ns = test__netns_private(), err;

	if (ns < 0) {
		test__skip("no private network namespace: %s", strerror(-ns));
		return;
	}
	memset(&L, 0, sizeof(L));
	L.sport = 40000;
	err = setup();
	if (err) {
		if (err == -EPERM || err == -EOPNOTSUPP)
			test__skip("cannot set up: %s", strerror(-err));
		else
			ASSERT_OK(err, "setup");
		goto out;
	}
	if (test__start_subtest("allowed_and_dropped"))
		subtest_allowed_and_dropped();
	if (test__start_subtest("ranges_change"))
		subtest_ranges_change();
	if (test__start_subtest("bad_range_not_exposed"))
		subtest_bad_range_not_exposed();
	if (test__start_subtest("ranges_removed"))
		subtest_ranges_removed();
	if (test__start_subtest("service_removed"))
		subtest_service_removed();
out:
	teardown();
	test__netns_restore(ns);
}
