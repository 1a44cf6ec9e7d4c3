// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BPF_PROG_TEST_RUN tests of the gateway program, through both of its
 * entry points: xdp_gateway (XDP) and tc_gateway (TC ingress, a __sk_buff).
 * Every table and scenario runs once per hook: xdp_packets / tc_packets,
 * xdp_gateway / tc_gateway. The expected verdicts are written as XDP's and
 * mapped for TC (PASS -> TC_ACT_OK, DROP -> TC_ACT_SHOT, REDIRECT ->
 * TC_ACT_REDIRECT); everything else (frames, counters, maps) must be the
 * same byte for byte.
 *
 * Every case is a row: a packet spec (selftests/pktbuild.h), the verdict
 * (XDP_PASS/DROP/REDIRECT), the reason counter of the `verdicts` map that
 * must go up by exactly one (enum fg_reason), and the frame the program
 * must hand back, compared whole with ASSERT_MEMEQ. Expected frames are
 * built with the same packet builder from the same spec with the NATed
 * addresses, ports and MACs substituted (and VLAN tags removed), so the
 * checksums the program fixed incrementally are compared against ones
 * computed from scratch.
 *
 * The data plane is configured only through agent/dataplane.h. The
 * program's bpf_fib_lookup uses the network namespace of the caller, so a
 * fixture unshares a private one with two veth links:
 *
 *   <prefix>b  10.100.0.1/24 fd00:100::1/64  toward the clusters' backends
 *              (SNAT source, in the ifaces map)
 *   <prefix>c  10.200.0.1/24 fd00:200::1/64  toward the clients
 *
 * with permanent neighbours for every backend and client, so the next hop
 * is resolved and the expected MACs are known. (Veth rather than dummy
 * links: the test kernel may be built without CONFIG_DUMMY.) Leaving the
 * namespace at teardown destroys it with everything in it.
 *
 * Which backend a flow gets is predicted in user space from the rings read
 * back out of the maps, with the same flow hash as the program
 * (include/fleetgate_hash.h), and compared to what conntrack recorded.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "dataplane.h"
#include "fleetgate.h"
#include "fleetgate_hash.h"
#include "pktbuild.h"
#include "e2e_lib.h"
#include "test_progs.h"

/* Table rows start from a base packet and override a few fields. */
#pragma GCC diagnostic ignored "-Woverride-init"

/* ---- the test network ---- */

#define GW4_B     "10.100.0.1"   /* gateway on the cluster side: SNAT source */
#define GW4_B2    "10.100.0.2"   /* a second SNAT source (snat scenarios) */
#define GW6_B     "fd00:100::1"
#define CLIENT4   "10.200.0.5"
#define CLIENT6   "fd00:200::5"
#define STRANGER4 "10.201.0.5"   /* outside every allowlist */

#define MAC_B "02:00:00:00:0b:01" /* <prefix>b */
#define MAC_C "02:00:00:00:0c:01" /* <prefix>c */

enum side { SIDE_B, SIDE_C };

/* Permanent neighbours: the next hops the program must write as dmac. */
static const struct neigh_def {
	const char *addr;
	const char *mac;
	enum side side;
} neighs[] = {
	{ "10.100.0.11", "02:00:00:00:01:11", SIDE_B },
	{ "10.100.0.12", "02:00:00:00:01:12", SIDE_B },
	{ "10.100.0.21", "02:00:00:00:01:21", SIDE_B },
	{ "10.100.0.22", "02:00:00:00:01:22", SIDE_B },
	{ "fd00:100::11", "02:00:00:00:06:11", SIDE_B },
	{ "fd00:100::12", "02:00:00:00:06:12", SIDE_B },
	{ "fd00:100::21", "02:00:00:00:06:21", SIDE_B },
	{ "fd00:100::22", "02:00:00:00:06:22", SIDE_B },
	{ CLIENT4, "02:00:00:00:02:05", SIDE_C },
	{ CLIENT6, "02:00:00:00:06:05", SIDE_C },
	{ "10.200.0.7", "02:00:00:00:02:07", SIDE_C },
};

/* ---- services ---- */

#define VIP4 "10.0.0.100"
#define VIP6 "fd00::100"

enum {
	SVC_WEB4 = 1,     /* VIP4:80/tcp, two clusters, four backends */
	SVC_WEB6 = 2,     /* VIP6:80/tcp, the same over IPv6 */
	SVC_ALLOW = 3,    /* 10.0.0.101:80/tcp, clients 10.200.0.0/24 only */
	SVC_L7 = 4,       /* VIP4:443/tcp, L7: to the stack */
	SVC_DNS = 5,      /* VIP4:53/udp */
	SVC_NO_NEIGH = 6, /* 10.0.0.106:80, backend without neighbour entry */
	SVC_NO_ROUTE = 7, /* 10.0.0.107:80, backend without route */
	SVC_ALL_DOWN = 8, /* 10.0.0.108:80, its only backend down */
	SVC_SINGLE = 9,   /* 10.0.0.109:80, one backend */
	SVC_NO_SNAT = 10, /* 10.0.0.110:80, backend behind an iface with no
			   * entry in the ifaces map */
};

#define C0 0
#define C1 1

static const struct fg_l4_cluster_spec two_clusters[] = {
	{ .cluster_idx = C0, .name = "c-one", .weight = 1 },
	{ .cluster_idx = C1, .name = "c-two", .weight = 1 },
};
static const struct fg_l4_cluster_spec one_cluster[] = {
	{ .cluster_idx = C0, .name = "c-one", .weight = 1 },
};

/* Backends are listed with textual addresses, parsed at apply time. */
struct be_def {
	__u32 id;
	__u32 cluster;
	const char *addr;
	__u16 port;
	bool up;
};

struct svc_def {
	__u32 id;
	const char *name;
	const char *vip;
	__u16 port;
	__u8 proto;
	__u8 kind;
	const struct fg_l4_cluster_spec *clusters;
	size_t n_clusters;
	struct be_def be[4];
	size_t n_be;
	const char *allow[2]; /* CIDRs */
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CLUSTERS(c) .clusters = (c), .n_clusters = ARRAY_SIZE(c)

static const struct svc_def services[] = {
	{ SVC_WEB4, "web-v4", VIP4, 80, IPPROTO_TCP, FG_LISTENER_L4, CLUSTERS(two_clusters),
	  .be = { { 1, C0, "10.100.0.11", 8080, true }, { 2, C0, "10.100.0.12", 8080, true },
		  { 3, C1, "10.100.0.21", 8080, true }, { 4, C1, "10.100.0.22", 8080, true } },
	  .n_be = 4 },
	{ SVC_WEB6, "web-v6", VIP6, 80, IPPROTO_TCP, FG_LISTENER_L4, CLUSTERS(two_clusters),
	  .be = { { 11, C0, "fd00:100::11", 8080, true }, { 12, C0, "fd00:100::12", 8080, true },
		  { 13, C1, "fd00:100::21", 8080, true }, { 14, C1, "fd00:100::22", 8080, true } },
	  .n_be = 4 },
	{ SVC_ALLOW, "allow", "10.0.0.101", 80, IPPROTO_TCP, FG_LISTENER_L4, CLUSTERS(two_clusters),
	  .be = { { 21, C0, "10.100.0.11", 8080, true }, { 22, C1, "10.100.0.21", 8080, true } },
	  .n_be = 2, .allow = { "10.200.0.0/24" } },
	{ SVC_L7, "l7", VIP4, 443, IPPROTO_TCP, FG_LISTENER_L7, .n_clusters = 0, .n_be = 0 },
	{ SVC_DNS, "dns", VIP4, 53, IPPROTO_UDP, FG_LISTENER_L4, CLUSTERS(two_clusters),
	  .be = { { 31, C0, "10.100.0.11", 5353, true }, { 32, C1, "10.100.0.21", 5353, true } },
	  .n_be = 2 },
	{ SVC_NO_NEIGH, "no-neigh", "10.0.0.106", 80, IPPROTO_TCP, FG_LISTENER_L4,
	  CLUSTERS(one_cluster), .be = { { 41, C0, "10.100.0.99", 8080, true } }, .n_be = 1 },
	{ SVC_NO_ROUTE, "no-route", "10.0.0.107", 80, IPPROTO_TCP, FG_LISTENER_L4,
	  CLUSTERS(one_cluster), .be = { { 51, C0, "10.250.0.1", 8080, true } }, .n_be = 1 },
	{ SVC_ALL_DOWN, "all-down", "10.0.0.108", 80, IPPROTO_TCP, FG_LISTENER_L4,
	  CLUSTERS(one_cluster), .be = { { 61, C0, "10.100.0.11", 8080, false } }, .n_be = 1 },
	{ SVC_SINGLE, "single", "10.0.0.109", 80, IPPROTO_TCP, FG_LISTENER_L4,
	  CLUSTERS(one_cluster), .be = { { 71, C0, "10.100.0.12", 8080, true } }, .n_be = 1 },
	{ SVC_NO_SNAT, "no-snat", "10.0.0.110", 80, IPPROTO_TCP, FG_LISTENER_L4,
	  CLUSTERS(one_cluster), .be = { { 81, C0, "10.200.0.7", 8080, true } }, .n_be = 1 },
};

/* ---- small helpers ---- */

static struct fg_addr addr_of(const char *s)
{
	struct fg_addr a = {};
	int family;

	if (fg_addr_parse(s, &a, &family))
		fprintf(stderr, "bad address %s\n", s);
	return a;
}

static void mac_parse(const char *s, uint8_t mac[6])
{
	unsigned int m[6] = {};
	int i;

	sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)m[i];
}

/* The lladdr we configured for a neighbour; false when it has none. */
static bool neigh_mac(const char *addr, uint8_t mac[6])
{
	struct fg_addr want = addr_of(addr), a;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(neighs); i++) {
		a = addr_of(neighs[i].addr);
		if (!memcmp(&a, &want, sizeof(a))) {
			mac_parse(neighs[i].mac, mac);
			return true;
		}
	}
	return false;
}

/* The client-side flow of a spec, as the program keys conntrack. */
static struct fg_flow flow_of(const struct pkt_spec *s)
{
	struct fg_flow f = {};
	uint8_t af = 0;

	pkt_addr_parse(s->src, f.src.bytes, &af);
	pkt_addr_parse(s->dst, f.dst.bytes, &af);
	f.sport = htons(s->sport);
	f.dport = htons(s->dport);
	f.proto = s->proto;
	f.family = af;
	return f;
}

/* Offset of the L3 header of a frame as pktbuild lays them out. */
static size_t l3_offset(const uint8_t *buf)
{
	size_t off = 12;

	while (((buf[off] << 8) | buf[off + 1]) == PKT_TPID_8021Q ||
	       ((buf[off] << 8) | buf[off + 1]) == PKT_TPID_8021AD)
		off += 4;
	return off + 2;
}

/* ---- fixture: private netns, links, loaded data plane, services ---- */

struct fx_opts {
	/* Services to apply, as a bit mask of (1 << SVC_*); 0: all of them.
	 * Every service costs the agent a scan of the backends map per
	 * cluster, so scenarios apply only what they use. */
	__u32 services;
	__u16 snat_port_min; /* 0: program default */
	__u16 snat_port_max;
	/* 0: FX_MAGLEV_SIZE. Filling 65537-slot rings dominates the setup
	 * time; a smaller prime also proves the program hashes modulo the
	 * configured size, not the compiled default. */
	__u32 maglev_size;
	bool two_snat_addrs; /* GW4_B and GW4_B2 on <prefix>b */
};

/* Which entry point the tests run: set by each FG_TEST. */
enum hook { HOOK_XDP, HOOK_TC };
static enum hook cur_hook;

#define FX_MAGLEV_SIZE 4099

struct fx {
	int orig_netns;
	bool in_netns;
	struct fg_dataplane *dp;
	const struct fg_maps *maps;
	int prog_fd;
	enum hook hook;
	bool two_snat_addrs;
	char if_b[IF_NAMESIZE], if_c[IF_NAMESIZE];
	int ifindex_b, ifindex_c;
	uint8_t mac_b[6], mac_c[6];
	__u16 snat_min, snat_max;
};

static int if_hwaddr(const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr = {};
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		err = -errno;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
	return err;
}

static int netns_setup(struct fx *fx)
{
	const char *p = test__prefix();
	char neigh_cmds[4096];
	size_t i, off = 0;
	int err;

	snprintf(fx->if_b, sizeof(fx->if_b), "%sb", p);
	snprintf(fx->if_c, sizeof(fx->if_c), "%sc", p);
	for (i = 0; i < ARRAY_SIZE(neighs); i++)
		off += snprintf(neigh_cmds + off, sizeof(neigh_cmds) - off,
				"neigh replace %s lladdr %s dev %s nud permanent\n",
				neighs[i].addr, neighs[i].mac,
				neighs[i].side == SIDE_B ? fx->if_b : fx->if_c);

	/* Forwarding first: links created afterwards inherit it. */
	err = fg_sh("ip link set lo up && "
		    "sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1 "
		    "net.ipv4.conf.lo.forwarding=1 net.ipv4.conf.default.forwarding=1 && "
		    "ip -b - <<EOF\n"
		    "link add %1$s address " MAC_B " type veth peer name %1$sp\n"
		    "link add %2$s address " MAC_C " type veth peer name %2$sp\n"
		    "addr add " GW4_B "/24 dev %1$s\n"
		    "addr add " GW6_B "/64 dev %1$s nodad\n"
		    "addr add 10.200.0.1/24 dev %2$s\n"
		    "addr add fd00:200::1/64 dev %2$s nodad\n"
		    "link set %1$s up\nlink set %1$sp up\n"
		    "link set %2$s up\nlink set %2$sp up\n"
		    "%3$s"
		    "EOF",
		    fx->if_b, fx->if_c, neigh_cmds);
	if (!ASSERT_OK(err, "netns links"))
		return -1;
	fx->ifindex_b = if_nametoindex(fx->if_b);
	fx->ifindex_c = if_nametoindex(fx->if_c);
	if (!ASSERT_GT(fx->ifindex_b, 0, "ifindex b") ||
	    !ASSERT_GT(fx->ifindex_c, 0, "ifindex c"))
		return -1;
	if (!ASSERT_OK(if_hwaddr(fx->if_b, fx->mac_b), "mac b") ||
	    !ASSERT_OK(if_hwaddr(fx->if_c, fx->mac_c), "mac c"))
		return -1;
	return 0;
}

static int apply_services(struct fx *fx, __u32 mask)
{
	size_t i, j;
	int err;

	for (i = 0; i < ARRAY_SIZE(services); i++) {
		const struct svc_def *d = &services[i];
		struct fg_l4_backend_spec be[4] = {};
		struct fg_l4_allow_spec allow[2] = {};
		struct fg_l4_service_spec spec = {
			.service_id = d->id,
			.name = d->name,
			.port = d->port,
			.proto = d->proto,
			.kind = d->kind,
			.stats_idx = (__u16)d->id,
			.clusters = d->clusters,
			.n_clusters = d->n_clusters,
			.backends = be,
			.n_backends = d->n_be,
			.allow = allow,
		};
		int family;

		if (mask && !(mask & (1u << d->id)))
			continue;
		if (fg_addr_parse(d->vip, &spec.vip, &family))
			return -EINVAL;
		spec.family = family;
		for (j = 0; j < d->n_be; j++) {
			be[j].backend_id = d->be[j].id;
			be[j].cluster_idx = d->be[j].cluster;
			be[j].port = d->be[j].port;
			be[j].weight = 1;
			be[j].up = d->be[j].up;
			if (fg_addr_parse(d->be[j].addr, &be[j].addr, &be[j].family))
				return -EINVAL;
		}
		for (j = 0; j < ARRAY_SIZE(d->allow) && d->allow[j]; j++) {
			char a[64];
			const char *slash = strchr(d->allow[j], '/');

			snprintf(a, sizeof(a), "%.*s", (int)(slash - d->allow[j]), d->allow[j]);
			if (fg_addr_parse(a, &allow[j].addr, &allow[j].family))
				return -EINVAL;
			allow[j].prefix_len = atoi(slash + 1);
			spec.n_allow++;
		}
		err = fg_dp_apply_service(fx->dp, &spec);
		if (err) {
			printf("apply service %s: %s\n", d->name, strerror(-err));
			return err;
		}
	}
	return 0;
}

static void fx_teardown(struct fx *fx)
{
	fg_dp_close(fx->dp, true);
	fx->dp = NULL;
	if (fx->in_netns) {
		ASSERT_OK(setns(fx->orig_netns, CLONE_NEWNET), "setns back");
		fx->in_netns = false;
	}
	if (fx->orig_netns >= 0)
		close(fx->orig_netns);
	fx->orig_netns = -1;
}

/* Everything a test needs; false (after teardown) when it cannot run. */
static bool fx_setup(struct fx *fx, const struct fx_opts *o)
{
	static const struct fx_opts defaults;
	struct fg_dp_opts dopts = {};
	struct fg_iface ifc = {
		.n_v4 = 1,
		.n_v6 = 1,
		.v4 = { addr_of(GW4_B) },
		.v6 = { addr_of(GW6_B) },
	};
	int err;

	if (!o)
		o = &defaults;
	memset(fx, 0, sizeof(*fx));
	fx->orig_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (!ASSERT_GE(fx->orig_netns, 0, "open netns"))
		return false;
	if (!ASSERT_OK(unshare(CLONE_NEWNET), "unshare netns")) {
		fx_teardown(fx);
		return false;
	}
	fx->in_netns = true;
	if (netns_setup(fx))
		goto fail;

	dopts.pin_path = NULL;
	dopts.maglev_size = o->maglev_size ? o->maglev_size : FX_MAGLEV_SIZE;
	dopts.snat_port_min = o->snat_port_min;
	dopts.snat_port_max = o->snat_port_max;
	fx->snat_min = o->snat_port_min ? o->snat_port_min : 40000;
	fx->snat_max = o->snat_port_max ? o->snat_port_max : 59999;
	err = fg_dp_load(&fx->dp, &dopts);
	if (!ASSERT_OK(err, "fg_dp_load"))
		goto fail;
	fx->maps = fg_dp_maps(fx->dp);
	fx->hook = cur_hook;
	fx->prog_fd = fx->hook == HOOK_TC ? fg_dp_tc_prog_fd(fx->dp) : fg_dp_prog_fd(fx->dp);
	if (!ASSERT_GE(fx->prog_fd, 0, "prog fd"))
		goto fail;
	if (o->two_snat_addrs) {
		ifc.n_v4 = 2;
		ifc.v4[1] = addr_of(GW4_B2);
		fx->two_snat_addrs = true;
	}
	if (!ASSERT_OK(fg_dp_set_iface(fx->dp, fx->ifindex_b, &ifc), "set iface b"))
		goto fail;
	if (!ASSERT_OK(apply_services(fx, o->services), "apply services"))
		goto fail;
	return true;
fail:
	fx_teardown(fx);
	return false;
}

/* ---- running the program ---- */

struct run {
	bool may_refuse; /* in: -EINVAL from the kernel is not a failure */
	bool refused;    /* out: it was refused so */
	int err;
	__u32 retval;
	uint8_t out[PKT_MAX_LEN];
	__u32 out_len;
};

/* ingress_ifindex 0: no ctx_in (the kernel then uses loopback). For TC
 * the device the skb arrives on is its ifindex. */
static void xdp_run(const struct fx *fx, const uint8_t *in, size_t len,
		    int ingress_ifindex, struct run *r)
{
	struct xdp_md ctx = {
		.data_end = (__u32)len,
		.ingress_ifindex = (__u32)ingress_ifindex,
	};
	struct __sk_buff skb = {
		.ifindex = (__u32)ingress_ifindex,
	};
	LIBBPF_OPTS(bpf_test_run_opts, topts,
		.data_in = in,
		.data_size_in = (__u32)len,
		.data_out = r->out,
		.data_size_out = sizeof(r->out),
		.repeat = 1,
	);

	if (ingress_ifindex && fx->hook == HOOK_TC) {
		topts.ctx_in = &skb;
		topts.ctx_size_in = sizeof(skb);
	} else if (ingress_ifindex) {
		topts.ctx_in = &ctx;
		topts.ctx_size_in = sizeof(ctx);
	}
	r->err = bpf_prog_test_run_opts(fx->prog_fd, &topts) ? -errno : 0;
	r->retval = topts.retval;
	r->out_len = topts.data_size_out;
}

#ifndef TC_ACT_OK
#define TC_ACT_OK       0
#define TC_ACT_SHOT     2
#define TC_ACT_REDIRECT 7
#endif

/* The hook's return value for an XDP verdict of the tables. */
static __u32 hook_verdict(const struct fx *fx, __u32 xdp)
{
	if (fx->hook != HOOK_TC)
		return xdp;
	switch (xdp) {
	case XDP_PASS: return TC_ACT_OK;
	case XDP_DROP: return TC_ACT_SHOT;
	case XDP_REDIRECT: return TC_ACT_REDIRECT;
	default: return 0xdead;
	}
}

static const char *xdp_name(const struct fx *fx, __u32 v)
{
	if (fx->hook == HOOK_TC) {
		switch (v) {
		case TC_ACT_OK: return "TC_ACT_OK";
		case TC_ACT_SHOT: return "TC_ACT_SHOT";
		case TC_ACT_REDIRECT: return "TC_ACT_REDIRECT";
		default: return "?";
		}
	}
	switch (v) {
	case XDP_ABORTED: return "XDP_ABORTED";
	case XDP_DROP: return "XDP_DROP";
	case XDP_PASS: return "XDP_PASS";
	case XDP_TX: return "XDP_TX";
	case XDP_REDIRECT: return "XDP_REDIRECT";
	default: return "?";
	}
}

static void read_verdicts(const struct fx *fx, struct fg_counter v[FG_R_MAX])
{
	__u32 i;

	for (i = 0; i < FG_R_MAX; i++)
		if (fg_dp_read_counter(fx->dp, fx->maps->verdicts, i, &v[i]))
			memset(&v[i], 0, sizeof(v[i]));
}

static struct fg_counter read_counter(const struct fx *fx, int map_fd, __u32 idx)
{
	struct fg_counter c = {};

	fg_dp_read_counter(fx->dp, map_fd, idx, &c);
	return c;
}

/* Runs one packet: checks the verdict, and that exactly the expected reason
 * counter went up, by one packet of the frame's length. */
static bool run_expect(const struct fx *fx, const uint8_t *in, size_t len, int ingress,
		       __u32 want_verdict, int want_reason, struct run *r)
{
	struct fg_counter before[FG_R_MAX], after[FG_R_MAX];
	bool ok = true;
	int i;

	read_verdicts(fx, before);
	xdp_run(fx, in, len, ingress, r);
	r->refused = r->may_refuse && r->err == -EINVAL;
	if (r->refused)
		return false;
	if (!ASSERT_OK(r->err, "bpf_prog_test_run"))
		return false;
	read_verdicts(fx, after);
	want_verdict = hook_verdict(fx, want_verdict);
	if (r->retval != want_verdict) {
		printf("verdict %s, want %s\n", xdp_name(fx, r->retval),
		       xdp_name(fx, want_verdict));
		ok = ASSERT_EQ(r->retval, want_verdict, "verdict");
	}
	for (i = 0; i < FG_R_MAX; i++) {
		__u64 dp = after[i].packets - before[i].packets;
		__u64 db = after[i].bytes - before[i].bytes;

		if (i == want_reason) {
			if (dp != 1)
				printf("reason %s not counted once\n", fg_reason_name(i));
			ok &= ASSERT_EQ(dp, 1, "reason counter packets");
			ok &= ASSERT_EQ(db, len, "reason counter bytes");
		} else if (dp) {
			printf("unexpected reason %s counted (want %s)\n", fg_reason_name(i),
			       fg_reason_name(want_reason));
			ok &= ASSERT_EQ(dp, 0, "other reason counters");
		}
	}
	return ok;
}

/* ---- reading back the maps ---- */

static bool ct_get(const struct fx *fx, const struct fg_flow *flow, struct fg_ct *ct)
{
	return !bpf_map_lookup_elem(fx->maps->conntrack, flow, ct);
}

static bool rnat_get(const struct fx *fx, const struct fg_flow *key, struct fg_rnat *rn)
{
	return !bpf_map_lookup_elem(fx->maps->reverse_nat, key, rn);
}

static bool backend_get(const struct fx *fx, __u32 id, struct fg_backend *be)
{
	return !bpf_map_lookup_elem(fx->maps->backends, &id, be);
}

/* The backend-side tuple of a conntrack entry (the reverse_nat key). */
static struct fg_flow reverse_key(const struct fg_backend *be, const struct fg_ct *ct,
				  const struct fg_flow *client)
{
	struct fg_flow k = {
		.src = be->addr,
		.dst = ct->snat_addr,
		.sport = be->port,
		.dport = ct->snat_port,
		.proto = client->proto,
		.family = client->family,
	};
	return k;
}

/* The slot of ring (sid, cidx) a hash falls on, read as the program
 * reads it: the rings map says where the ring lives in the slab. */
static int ring_slot(const struct fx *fx, __u32 sid, __u32 cidx, __u32 hash, __u32 *val)
{
	__u32 *table, size;
	int err = fg_dp_ring_read(fx->dp, sid, cidx, &table, &size);

	if (err)
		return err;
	*val = table[hash % size];
	free(table);
	return 0;
}

struct choice {
	__u32 backend_id;
	__u32 cluster_idx;
	int attempt;
};

/* What lb_select (bpf/lib/lb.h) should choose, from the rings and the
 * health in the maps: attempt i hashes with FG_SEED_* + i. tries 1 is the
 * canonical prediction the agent-side distribution tests rely on. */
static int predict(const struct fx *fx, __u32 service_id, const struct fg_flow *flow,
		   int tries, struct choice *out)
{
	int i;

	for (i = 0; i < tries; i++) {
		struct fg_cluster cl;
		struct fg_backend be;
		__u32 cidx, bid;

		if (ring_slot(fx, service_id, FG_RING_CLUSTERS,
			      fg_flow_hash(flow, FG_SEED_CLUSTER + i), &cidx) ||
		    cidx == FG_NONE)
			continue;
		if (bpf_map_lookup_elem(fx->maps->clusters, &cidx, &cl) ||
		    !(cl.flags & FG_CLUSTER_F_UP))
			continue;
		if (ring_slot(fx, service_id, cidx, fg_flow_hash(flow, FG_SEED_BACKEND + i), &bid) ||
		    bid == FG_NONE)
			continue;
		if (!backend_get(fx, bid, &be) ||
		    (be.flags & (FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP)) !=
			    (FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP))
			continue;
		out->backend_id = bid;
		out->cluster_idx = cidx;
		out->attempt = i;
		return 0;
	}
	return -ENOENT;
}

/* The SNAT allocator's counters (enum fg_snat_stat), summed. */
static void snat_stats(const struct fx *fx, __u64 st[FG_SNAT_STAT_MAX])
{
	fg_dp_snat_stats(fx->dp, st);
}

/* ---- expected frames ---- */

typedef void (*mangle_fn)(uint8_t *buf, size_t *len);

struct nat_out {
	char src[INET6_ADDRSTRLEN];
	char dst[INET6_ADDRSTRLEN];
	__u16 sport, dport; /* host order */
	uint8_t smac[6], dmac[6];
	bool keep_l2; /* MACs and VLAN tags as in the input */
};

/* The input spec as it must leave: addresses, ports and MACs rewritten,
 * untagged; everything else (options, extension headers, TCP fields,
 * payload) unchanged. */
static size_t build_nat_frame(const struct pkt_spec *in, const struct nat_out *n,
			      mangle_fn mangle, uint8_t *buf)
{
	struct pkt_spec s = *in;
	size_t len;

	s.src = n->src;
	s.dst = n->dst;
	s.sport = n->sport;
	s.dport = n->dport;
	if (!n->keep_l2) {
		memcpy(s.eth_src, n->smac, 6);
		memcpy(s.eth_dst, n->dmac, 6);
		memset(s.vlan, 0, sizeof(s.vlan));
	}
	len = pkt_build(&s, buf, PKT_MAX_LEN);
	if (len && mangle)
		mangle(buf, &len);
	return len;
}

static bool csum_ok(const uint8_t *buf, size_t len)
{
	char why[128];

	if (pkt_csum_ok(buf, len, why, sizeof(why)))
		return true;
	printf("checksum: %s\n", why);
	return ASSERT_TRUE(false, "checksums valid");
}

/* After a client packet was forwarded: conntrack must hold the flow on the
 * predicted backend with a SNAT port from the range, and the output must
 * be exactly the input NATed toward that backend. The conntrack entry is
 * returned in *ct_out (may be NULL). */
static bool check_nated(const struct fx *fx, const struct pkt_spec *in, __u32 service_id,
			const struct run *r, mangle_fn mangle_expected, int tries,
			bool to_stack, struct fg_ct *ct_out)
{
	struct fg_flow flow = flow_of(in);
	uint8_t want[PKT_MAX_LEN];
	struct choice ch = {};
	struct fg_backend be;
	struct nat_out n = {};
	struct fg_addr gw;
	struct fg_ct ct;
	size_t want_len;
	bool ok = true;

	if (!ASSERT_TRUE(ct_get(fx, &flow, &ct), "conntrack entry"))
		return false;
	if (ct_out)
		*ct_out = ct;
	ok &= ASSERT_EQ(ct.service_id, service_id, "ct service");
	if (!tries) {
		/* An established flow: conntrack, not the rings, decides. */
	} else if (ASSERT_OK(predict(fx, service_id, &flow, tries, &ch), "prediction")) {
		ok &= ASSERT_EQ(ct.backend_id, ch.backend_id, "ct backend == predicted");
		ok &= ASSERT_EQ(ct.cluster_idx, ch.cluster_idx, "ct cluster == predicted");
	} else {
		ok = false;
	}
	ok &= ASSERT_GE(ntohs(ct.snat_port), fx->snat_min, "snat port >= min");
	ok &= ASSERT_LE(ntohs(ct.snat_port), fx->snat_max, "snat port <= max");
	gw = addr_of(flow.family == FG_AF_INET ? GW4_B : GW6_B);
	if (fx->two_snat_addrs && flow.family == FG_AF_INET &&
	    memcmp(&ct.snat_addr, &gw, sizeof(gw)))
		gw = addr_of(GW4_B2);
	ok &= ASSERT_MEMEQ(&ct.snat_addr, sizeof(gw), &gw, sizeof(gw), "snat addr");
	if (!ASSERT_TRUE(backend_get(fx, ct.backend_id, &be), "backend of ct"))
		return false;

	fg_addr_str(&ct.snat_addr, flow.family, n.src, sizeof(n.src));
	fg_addr_str(&be.addr, flow.family, n.dst, sizeof(n.dst));
	n.sport = ntohs(ct.snat_port);
	n.dport = ntohs(be.port);
	if (to_stack) {
		/* The stack will forward it: only L3/L4 are NATed, the L2
		 * header (tags included) is left as it came. */
		n.keep_l2 = true;
	} else {
		memcpy(n.smac, fx->mac_b, 6);
		ok &= ASSERT_TRUE(neigh_mac(n.dst, n.dmac), "backend has a neighbour");
	}
	want_len = build_nat_frame(in, &n, mangle_expected, want);
	if (!ASSERT_GT(want_len, 0, "build expected"))
		return false;
	ok &= ASSERT_MEMEQ(r->out, r->out_len, want, want_len,
			   to_stack ? "NATed frame to the stack" : "forwarded frame");
	ok &= csum_ok(r->out, r->out_len);
	return ok;
}

static bool check_forwarded(const struct fx *fx, const struct pkt_spec *in, __u32 service_id,
			    const struct run *r, mangle_fn mangle_expected, int tries,
			    struct fg_ct *ct_out)
{
	return check_nated(fx, in, service_id, r, mangle_expected, tries, false, ct_out);
}

/* forward_ok's tries for a packet of a flow conntrack already holds. */
#define STICKY 0

/* Sends a client packet expected to be forwarded, and checks it: tries is
 * how many selection attempts the prediction may take (1: the canonical
 * one), or STICKY. */
static bool forward_ok(const struct fx *fx, const struct pkt_spec *in, __u32 service_id,
		       int tries, struct fg_ct *ct_out)
{
	uint8_t buf[PKT_MAX_LEN];
	struct run r = {};
	size_t len = pkt_build(in, buf, sizeof(buf));

	if (!ASSERT_GT(len, 0, "build packet"))
		return false;
	if (!run_expect(fx, buf, len, fx->ifindex_c, XDP_REDIRECT, FG_R_FORWARD, &r))
		return false;
	return check_forwarded(fx, in, service_id, &r, NULL, tries, ct_out);
}

/* Sends a backend's packet (for the flow of client spec `cl` and its
 * conntrack entry) and checks it comes out reverse-NATed to the client. */
static bool reply_ok(const struct fx *fx, const struct pkt_spec *cl, const struct fg_ct *ct,
		     __u8 tcp_flags)
{
	struct fg_flow flow = flow_of(cl);
	uint8_t in[PKT_MAX_LEN], want[PKT_MAX_LEN];
	char bsrc[INET6_ADDRSTRLEN], bdst[INET6_ADDRSTRLEN];
	struct pkt_spec rs = {};
	struct nat_out n = {};
	struct fg_backend be;
	size_t len, want_len;
	struct run r = {};
	bool ok = true;

	if (!ASSERT_TRUE(backend_get(fx, ct->backend_id, &be), "backend"))
		return false;
	fg_addr_str(&be.addr, flow.family, bsrc, sizeof(bsrc));
	fg_addr_str(&ct->snat_addr, flow.family, bdst, sizeof(bdst));
	rs.src = bsrc;
	rs.dst = bdst;
	rs.proto = cl->proto;
	rs.sport = ntohs(be.port);
	rs.dport = ntohs(ct->snat_port);
	rs.tcp_flags = tcp_flags;
	rs.seq = 777000;
	rs.ack = cl->seq + 1;
	rs.payload = "pong";
	rs.payload_len = 4;
	neigh_mac(bsrc, rs.eth_src);
	memcpy(rs.eth_dst, fx->mac_b, 6);
	len = pkt_build(&rs, in, sizeof(in));
	if (!ASSERT_GT(len, 0, "build reply"))
		return false;
	if (!run_expect(fx, in, len, fx->ifindex_b, XDP_REDIRECT, FG_R_REPLY, &r))
		return false;

	snprintf(n.src, sizeof(n.src), "%s", cl->dst);
	snprintf(n.dst, sizeof(n.dst), "%s", cl->src);
	n.sport = cl->dport;
	n.dport = cl->sport;
	memcpy(n.smac, fx->mac_c, 6);
	ok &= ASSERT_TRUE(neigh_mac(cl->src, n.dmac), "client has a neighbour");
	want_len = build_nat_frame(&rs, &n, NULL, want);
	if (!ASSERT_GT(want_len, 0, "build expected reply"))
		return false;
	ok &= ASSERT_MEMEQ(r.out, r.out_len, want, want_len, "reply frame");
	ok &= csum_ok(r.out, r.out_len);
	return ok;
}

/* ---- base packets ---- */

#define SYN4(...) { .src = CLIENT4, .dst = VIP4, .proto = IPPROTO_TCP, .sport = 33000, \
		    .dport = 80, .tcp_flags = PKT_TCP_SYN, .seq = 1000, __VA_ARGS__ }
#define SYN6(...) { .src = CLIENT6, .dst = VIP6, .proto = IPPROTO_TCP, .sport = 33000, \
		    .dport = 80, .tcp_flags = PKT_TCP_SYN, .seq = 1000, __VA_ARGS__ }
#define UDP4(...) { .src = CLIENT4, .dst = VIP4, .proto = IPPROTO_UDP, .sport = 33000, \
		    .dport = 53, .payload = "query", .payload_len = 5, __VA_ARGS__ }

/* The same flow one step later. */
static struct pkt_spec next_pkt(const struct pkt_spec *s, __u8 flags)
{
	struct pkt_spec n = *s;

	n.tcp_flags = flags;
	n.seq = s->seq + 1;
	n.ack = 777001;
	return n;
}

/* ---- the packet table ---- */

enum expect_out {
	OUT_UNCHANGED,  /* the frame comes back as it went in */
	OUT_TO_BACKEND, /* NATed toward the predicted backend */
	OUT_NATED_TO_STACK, /* NATed, L2 untouched, for the stack to forward */
	OUT_NONE,       /* the kernel refuses the run (want_err) */
};

struct xdp_case {
	const char *name;
	struct pkt_spec pkt;
	mangle_fn mangle;          /* applied to the built input */
	mangle_fn mangle_expected; /* applied to the expected NATed frame */
	int want_err;              /* errno of BPF_PROG_TEST_RUN itself */
	/* An skb test run of a frame whose IP header does not fit is refused
	 * by newer kernels (-EINVAL) before the program runs; older ones
	 * run it. */
	bool tc_may_refuse;
	__u32 verdict;
	int reason;
	enum expect_out out;
	__u32 service_id;          /* OUT_TO_BACKEND */
};

/* IPv4 header fields, with the header checksum kept valid. */
static void ip4_fix_csum(uint8_t *ip)
{
	size_t hl = (ip[0] & 0xf) * 4;
	uint16_t c;

	if (hl < 20)
		hl = 20;

	ip[10] = ip[11] = 0;
	c = pkt_inet_csum(ip, hl);
	ip[10] = c >> 8;
	ip[11] = c & 0xff;
}

static void ip4_version_5(uint8_t *buf, size_t *len)
{
	uint8_t *ip = buf + l3_offset(buf);

	ip[0] = 0x50 | (ip[0] & 0xf);
	ip4_fix_csum(ip);
}

static void ip4_ihl_4(uint8_t *buf, size_t *len)
{
	uint8_t *ip = buf + l3_offset(buf);

	ip[0] = 0x44;
}

static void ip4_tot_len_16(uint8_t *buf, size_t *len)
{
	uint8_t *ip = buf + l3_offset(buf);

	ip[2] = 0;
	ip[3] = 16;
	ip4_fix_csum(ip);
}

/* Cuts the frame inside the L4 header while keeping the IP length
 * consistent with the frame, so only L4 is short. */
static void ip4_cut_l4_to_6(uint8_t *buf, size_t *len)
{
	size_t l3 = l3_offset(buf);
	uint8_t *ip = buf + l3;
	size_t hl = (ip[0] & 0xf) * 4;

	ip[2] = 0;
	ip[3] = (uint8_t)(hl + 6);
	ip4_fix_csum(ip);
	*len = l3 + hl + 6;
}

static void ip6_cut_l4_to_6(uint8_t *buf, size_t *len)
{
	size_t l3 = l3_offset(buf);
	uint8_t *ip = buf + l3;

	ip[4] = 0;
	ip[5] = 6;
	*len = l3 + 40 + 6;
}

static void tcp_doff_4(uint8_t *buf, size_t *len)
{
	uint8_t *ip = buf + l3_offset(buf);

	ip[(ip[0] & 0xf) * 4 + 12] = 4 << 4;
}

static void udp_zero_csum(uint8_t *buf, size_t *len)
{
	uint8_t *ip = buf + l3_offset(buf);
	uint8_t *udp = ip + (ip[0] & 0xf) * 4;

	udp[6] = udp[7] = 0;
}

static void ip6_version_4(uint8_t *buf, size_t *len)
{
	uint8_t *ip = buf + l3_offset(buf);

	ip[0] = 0x40 | (ip[0] & 0xf);
}

/* A third VLAN tag (pktbuild builds two at most), inserted innermost. */
static void add_third_vlan(uint8_t *buf, size_t *len)
{
	size_t at = l3_offset(buf) - 2; /* the inner EtherType */

	memmove(buf + at + 4, buf + at, *len - at);
	buf[at] = 0x81;
	buf[at + 1] = 0x00;
	buf[at + 2] = 0x00;
	buf[at + 3] = 30;
	*len += 4;
}

/* n empty destination-options headers after the IPv6 header (pktbuild
 * chains four at most). The L4 checksum does not cover them. */
static void ip6_insert_dest_opts(uint8_t *buf, size_t *len, int n)
{
	uint8_t *ip = buf + l3_offset(buf);
	uint8_t *ext = ip + 40;
	size_t tail = *len - (size_t)(ext - buf);
	uint16_t plen = (uint16_t)((ip[4] << 8 | ip[5]) + 8 * n);
	uint8_t next = ip[6];
	int i;

	memmove(ext + 8 * n, ext, tail);
	memset(ext, 0, 8 * n);
	for (i = 0; i < n; i++)
		ext[8 * i] = i + 1 < n ? IPPROTO_DSTOPTS : next;
	ip[6] = IPPROTO_DSTOPTS;
	ip[4] = plen >> 8;
	ip[5] = plen & 0xff;
	*len += 8 * n;
}

/* An authentication header (pktbuild has none): 24 bytes, so its length
 * field is 24 / 4 - 2 = 4, unlike the other extension headers' 8-byte
 * units. */
static void ip6_insert_auth(uint8_t *buf, size_t *len)
{
	uint8_t *ip = buf + l3_offset(buf);
	uint8_t *ext = ip + 40;
	uint16_t plen = (uint16_t)((ip[4] << 8 | ip[5]) + 24);

	memmove(ext + 24, ext, *len - (size_t)(ext - buf));
	memset(ext, 0, 24);
	ext[0] = ip[6];
	ext[1] = 4;
	ext[7] = 0x42; /* SPI */
	ip[6] = IPPROTO_AH;
	ip[4] = plen >> 8;
	ip[5] = plen & 0xff;
	*len += 24;
}

/* An IPv4 packet saying it carries ICMPv6 (58), an IPv6 one saying ICMPv4
 * (1): neither is ICMP of its family. */
static void ip4_proto_58(uint8_t *buf, size_t *len)
{
	uint8_t *ip = buf + l3_offset(buf);

	ip[9] = 58;
	ip4_fix_csum(ip);
}

static void ip6_nexthdr_1(uint8_t *buf, size_t *len)
{
	buf[l3_offset(buf) + 6] = 1;
}

static void ip6_six_exts(uint8_t *buf, size_t *len)
{
	ip6_insert_dest_opts(buf, len, 6);
}

static void ip6_seven_exts(uint8_t *buf, size_t *len)
{
	ip6_insert_dest_opts(buf, len, 7);
}

/* What a NIC hands over for a short frame: zero padding up to 60 bytes,
 * beyond the IP length. */
static void eth_pad_60(uint8_t *buf, size_t *len)
{
	if (*len < 60) {
		memset(buf + *len, 0, 60 - *len);
		*len = 60;
	}
}

static const uint8_t payload32[32] = "0123456789abcdef0123456789abcdef";

#define DROP(r)     .verdict = XDP_DROP, .reason = (r), .out = OUT_UNCHANGED
#define PASS(r)     .verdict = XDP_PASS, .reason = (r), .out = OUT_UNCHANGED
#define FORWARD(s)  .verdict = XDP_REDIRECT, .reason = FG_R_FORWARD, .out = OUT_TO_BACKEND, \
		    .service_id = (s)

static const struct xdp_case packet_cases[] = {
	/* The kernel itself refuses frames shorter than an Ethernet header,
	 * so a 10-byte frame never reaches the program. */
	{ "eth_10_bytes_refused_by_kernel", SYN4(.truncate_to = 10), .want_err = -EINVAL,
	  .out = OUT_NONE },
	{ "eth_vlan_tag_cut", SYN4(.vlan = { { PKT_TPID_8021Q, 10 } }, .truncate_to = 16),
	  DROP(FG_R_TRUNC_ETH) },
	{ "eth_qinq_inner_tag_cut",
	  SYN4(.vlan = { { PKT_TPID_8021AD, 10 }, { PKT_TPID_8021Q, 20 } }, .truncate_to = 19),
	  DROP(FG_R_TRUNC_ETH) },
	{ "ip4_header_cut", SYN4(.truncate_to = 14 + 10), DROP(FG_R_TRUNC_IP),
	  .tc_may_refuse = true },
	{ "ip4_tot_len_beyond_frame",
	  SYN4(.payload = payload32, .payload_len = 32, .truncate_to = 14 + 20 + 20 + 16),
	  DROP(FG_R_TRUNC_IP) },
	{ "ip4_options_cut", SYN4(.ip_opts = { 1, 1, 1, 1, 1, 1, 1, 0 }, .ip_opts_len = 8,
				  .truncate_to = 14 + 24), DROP(FG_R_TRUNC_IP) },
	{ "ip4_bad_version", SYN4(), .mangle = ip4_version_5, DROP(FG_R_BAD_IP) },
	{ "ip4_bad_ihl", SYN4(), .mangle = ip4_ihl_4, DROP(FG_R_BAD_IP) },
	{ "ip4_tot_len_below_ihl", SYN4(), .mangle = ip4_tot_len_16, DROP(FG_R_BAD_IP) },
	{ "tcp_header_cut", SYN4(), .mangle = ip4_cut_l4_to_6, DROP(FG_R_TRUNC_L4) },
	{ "tcp_doff_below_5", SYN4(), .mangle = tcp_doff_4, DROP(FG_R_TRUNC_L4) },
	{ "udp_header_cut", UDP4(), .mangle = ip4_cut_l4_to_6, DROP(FG_R_TRUNC_L4) },
	{ "ip6_header_cut", SYN6(.truncate_to = 14 + 30), DROP(FG_R_TRUNC_IP),
	  .tc_may_refuse = true },
	{ "ip6_payload_len_beyond_frame",
	  SYN6(.payload = payload32, .payload_len = 32, .truncate_to = 14 + 40 + 20 + 8),
	  DROP(FG_R_TRUNC_IP) },
	{ "ip6_bad_version", SYN6(), .mangle = ip6_version_4, DROP(FG_R_BAD_IP) },
	{ "ip6_tcp_header_cut", SYN6(), .mangle = ip6_cut_l4_to_6, DROP(FG_R_TRUNC_L4) },

	{ "ip4_fragment_mf", SYN4(.mf = true, .sport = 33101), PASS(FG_R_FRAGMENT) },
	{ "ip4_fragment_offset", SYN4(.frag_off = 185, .sport = 33102), PASS(FG_R_FRAGMENT) },
	{ "ip6_fragment_header",
	  SYN6(.ext = { { .type = PKT_EXT_FRAG, .more = true, .frag_id = 7 } }, .sport = 33103),
	  PASS(FG_R_FRAGMENT) },
	{ "ip6_ext_chain_7_over_limit", SYN6(.sport = 33104), .mangle = ip6_seven_exts,
	  PASS(FG_R_IP6_EXT_LIMIT) },
	{ "vlan_3_tags",
	  SYN4(.vlan = { { PKT_TPID_8021AD, 10 }, { PKT_TPID_8021Q, 20 } }, .sport = 33105),
	  .mangle = add_third_vlan, PASS(FG_R_NOT_IP) },
	{ "arp", { .eth_proto = 0x0806, .eth_dst = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
		   .payload = payload32, .payload_len = 28 }, PASS(FG_R_NOT_IP) },
	{ "icmp_echo_to_vip", { .src = CLIENT4, .dst = VIP4, .proto = IPPROTO_ICMP,
				.icmp_type = 8, .icmp_id = 1, .icmp_seq = 1 }, PASS(FG_R_ICMP) },
	{ "icmp6_echo_to_vip", { .src = CLIENT6, .dst = VIP6, .proto = IPPROTO_ICMPV6,
				 .icmp_type = 128, .icmp_id = 1, .icmp_seq = 1 }, PASS(FG_R_ICMP) },
	{ "gre_to_vip", { .src = CLIENT4, .dst = VIP4, .proto = IPPROTO_GRE,
			  .payload = payload32, .payload_len = 4 }, PASS(FG_R_OTHER_L4) },
	{ "ip4_proto_58_is_not_icmp", { .src = CLIENT4, .dst = VIP4, .proto = IPPROTO_GRE,
					.payload = payload32, .payload_len = 8 },
	  .mangle = ip4_proto_58, PASS(FG_R_OTHER_L4) },
	{ "ip6_nexthdr_1_is_not_icmp", { .src = CLIENT6, .dst = VIP6, .proto = IPPROTO_GRE,
					 .payload = payload32, .payload_len = 8 },
	  .mangle = ip6_nexthdr_1, PASS(FG_R_OTHER_L4) },
	{ "ip6_ext_beyond_l4_offset_limit",
	  SYN6(.sport = 33116, .ext = { { .type = PKT_EXT_HOP, .len = 1024 } }),
	  PASS(FG_R_IP6_EXT_LIMIT) },
	{ "ip6_no_next_header", SYN6(.proto = IPPROTO_NONE, .sport = 0, .dport = 0),
	  PASS(FG_R_OTHER_L4) },
	{ "tcp_to_other_vip", SYN4(.dst = "10.0.0.200", .sport = 33106), PASS(FG_R_NO_LISTENER) },
	{ "tcp_to_vip_other_port", SYN4(.dport = 81, .sport = 33107), PASS(FG_R_NO_LISTENER) },
	{ "udp_to_tcp_port", UDP4(.dport = 80, .sport = 33108), PASS(FG_R_NO_LISTENER) },
	{ "l7_listener", SYN4(.dport = 443, .sport = 33109), PASS(FG_R_L7) },
	{ "allowlist_stranger", SYN4(.src = STRANGER4, .dst = "10.0.0.101", .sport = 33110),
	  DROP(FG_R_ALLOWLIST) },
	{ "no_backend_up", SYN4(.dst = "10.0.0.108", .sport = 33111), DROP(FG_R_NO_BACKEND) },
	/* Route known, neighbour not resolved: NATed (conntrack created),
	 * then passed for the stack to forward and resolve the neighbour. */
	{ "backend_neighbour_unresolved", SYN4(.dst = "10.0.0.106", .sport = 33112),
	  .verdict = XDP_PASS, .reason = FG_R_FIB_NO_NEIGH, .out = OUT_NATED_TO_STACK,
	  .service_id = SVC_NO_NEIGH },
	{ "backend_neighbour_unresolved_vlan",
	  SYN4(.dst = "10.0.0.106", .sport = 33115, .vlan = { { PKT_TPID_8021Q, 100 } }),
	  .verdict = XDP_PASS, .reason = FG_R_FIB_NO_NEIGH, .out = OUT_NATED_TO_STACK,
	  .service_id = SVC_NO_NEIGH },
	{ "backend_unroutable", SYN4(.dst = "10.0.0.107", .sport = 33113), DROP(FG_R_FIB_FAIL) },
	{ "egress_iface_without_snat_addr", SYN4(.dst = "10.0.0.110", .sport = 33114),
	  DROP(FG_R_NO_SNAT_ADDR) },

	{ "syn_v4", SYN4(.sport = 33200), FORWARD(SVC_WEB4) },
	{ "syn_v4_eth_padding_kept", SYN4(.sport = 33215), .mangle = eth_pad_60,
	  .mangle_expected = eth_pad_60, FORWARD(SVC_WEB4) },
	{ "syn_v4_with_payload", SYN4(.sport = 33201, .payload = payload32, .payload_len = 32),
	  FORWARD(SVC_WEB4) },
	{ "ip4_options_to_vip",
	  SYN4(.sport = 33202, .ip_opts = { 0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00 },
	       .ip_opts_len = 8), FORWARD(SVC_WEB4) },
	{ "tcp_options_to_vip",
	  SYN4(.sport = 33203, .tcp_opts = { 2, 4, 0x05, 0xb4, 4, 2, 1, 3, 3, 7 },
	       .tcp_opts_len = 10), FORWARD(SVC_WEB4) },
	{ "vlan_1_tag_to_vip", SYN4(.sport = 33204, .vlan = { { PKT_TPID_8021Q, 100, 3 } }),
	  FORWARD(SVC_WEB4) },
	{ "qinq_2_tags_to_vip",
	  SYN4(.sport = 33205, .vlan = { { PKT_TPID_8021AD, 100 }, { PKT_TPID_8021Q, 200 } }),
	  FORWARD(SVC_WEB4) },
	{ "ip6_syn_to_vip", SYN6(.sport = 33206), FORWARD(SVC_WEB6) },
	{ "ip6_hop_dest_to_vip",
	  SYN6(.sport = 33207, .ext = { { .type = PKT_EXT_HOP, .len = 16 },
					{ .type = PKT_EXT_DEST, .len = 8 } }),
	  FORWARD(SVC_WEB6) },
	{ "ip6_routing_segs0_to_vip",
	  SYN6(.sport = 33208, .ext = { { .type = PKT_EXT_ROUTING, .len = 24, .rt_type = 4 } }),
	  FORWARD(SVC_WEB6) },
	{ "ip6_auth_header_to_vip", SYN6(.sport = 33216), .mangle = ip6_insert_auth,
	  .mangle_expected = ip6_insert_auth, FORWARD(SVC_WEB6) },
	{ "ip4_df_is_not_a_fragment", SYN4(.sport = 33217, .df = true, .ip_id = 0x1234),
	  FORWARD(SVC_WEB4) },
	{ "ip6_ext_chain_6_at_limit", SYN6(.sport = 33209), .mangle = ip6_six_exts,
	  .mangle_expected = ip6_six_exts, FORWARD(SVC_WEB6) },
	{ "ip6_vlan_to_vip", SYN6(.sport = 33210, .vlan = { { PKT_TPID_8021Q, 7 } }),
	  FORWARD(SVC_WEB6) },
	{ "udp_to_udp_listener", UDP4(.sport = 33211), FORWARD(SVC_DNS) },
	{ "udp_zero_csum_stays_zero", UDP4(.sport = 33212), .mangle = udp_zero_csum,
	  .mangle_expected = udp_zero_csum, FORWARD(SVC_DNS) },
	{ "allowlist_member", SYN4(.dst = "10.0.0.101", .sport = 33213), FORWARD(SVC_ALLOW) },
};

/* run_case's answer when the kernel refused to run the case at all. */
#define CASE_REFUSED 2

static int run_case(const struct fx *fx, const struct xdp_case *c)
{
	uint8_t in[PKT_MAX_LEN];
	size_t len = pkt_build(&c->pkt, in, sizeof(in));
	struct run r = {};

	if (!ASSERT_GT(len, 0, "build input"))
		return false;
	if (c->mangle)
		c->mangle(in, &len);
	if (c->out == OUT_NONE) {
		xdp_run(fx, in, len, fx->ifindex_c, &r);
		return ASSERT_EQ(r.err, c->want_err, "test run refused");
	}
	r.may_refuse = c->tc_may_refuse && fx->hook == HOOK_TC;
	if (!run_expect(fx, in, len, fx->ifindex_c, c->verdict, c->reason, &r)) {
		if (r.refused) {
			printf("%s: the kernel refuses this skb test run (IP header beyond the frame)\n",
			       c->name);
			return CASE_REFUSED;
		}
		return false;
	}
	switch (c->out) {
	case OUT_UNCHANGED:
		return ASSERT_MEMEQ(r.out, r.out_len, in, len, "frame untouched");
	case OUT_TO_BACKEND:
		return check_forwarded(fx, &c->pkt, c->service_id, &r, c->mangle_expected, 1,
				       NULL);
	case OUT_NATED_TO_STACK:
		return check_nated(fx, &c->pkt, c->service_id, &r, c->mangle_expected, 1, true,
				   NULL);
	default:
		return false;
	}
}

/* One subtest per row, all on one data plane: rows use distinct flows. */
static void packet_table(enum hook hook)
{
	struct fx fx;
	size_t i;

	cur_hook = hook;
	if (!fx_setup(&fx, NULL))
		return;
	for (i = 0; i < ARRAY_SIZE(packet_cases); i++) {
		if (!test__start_subtest(packet_cases[i].name))
			continue;
		run_case(&fx, &packet_cases[i]);
	}
	fx_teardown(&fx);
}

FG_TEST(xdp_packets)
{
	packet_table(HOOK_XDP);
}

FG_TEST(tc_packets)
{
	packet_table(HOOK_TC);
}

/* ---- scenario subtests ---- */

#define ONLY(m) (&(const struct fx_opts){ .services = (m) })
#define SVC(s) (1u << (s))

static void test_verifier(void)
{
	static const struct fg_dp_opts variants[] = {
		{ .maglev_size = 251, .snat_port_min = 1, .snat_port_max = 65535,
		  .ct_timeout_tcp_ns = 1000000000ULL, .ct_timeout_udp_ns = 1000000000ULL },
	};
	static const struct fx_opts deflt = {
		.services = SVC(SVC_WEB4),
		.maglev_size = FG_DEFAULT_MAGLEV_SIZE,
	};
	struct bpf_prog_info info = {};
	__u32 info_len = sizeof(info);
	struct fx fx;
	size_t i;

	if (!fx_setup(&fx, &deflt))
		return;
	ASSERT_EQ(fg_dp_maglev_size(fx.dp), FG_DEFAULT_MAGLEV_SIZE, "default ring size");
	ASSERT_OK(bpf_obj_get_info_by_fd(fx.prog_fd, &info, &info_len), "prog info");
	ASSERT_EQ(info.type, fx.hook == HOOK_TC ? BPF_PROG_TYPE_SCHED_CLS : BPF_PROG_TYPE_XDP,
		  "prog type");
	ASSERT_STREQ(info.name, fx.hook == HOOK_TC ? "tc_gateway" : "xdp_gateway", "prog name");
	ASSERT_GT(info.verified_insns, 0, "verified insns");
	fx_teardown(&fx);

	/* Other load-time constants give other programs to verify. */
	for (i = 0; i < ARRAY_SIZE(variants); i++) {
		struct fg_dataplane *dp = NULL;

		if (ASSERT_OK(fg_dp_load(&dp, &variants[i]), "load variant"))
			fg_dp_close(dp, true);
	}
}

static void test_syn_to_vip_v4(void)
{
	struct pkt_spec syn = SYN4(.sport = 41000, .payload = "hello", .payload_len = 5);
	struct fx fx;

	if (!fx_setup(&fx, ONLY(SVC(SVC_WEB4))))
		return;
	forward_ok(&fx, &syn, SVC_WEB4, 1, NULL);
	fx_teardown(&fx);
}

static void test_reply_reverse_nat(void)
{
	struct pkt_spec syn = SYN4(.sport = 41001), query = UDP4(.sport = 41010);
	struct fg_ct ct;
	struct fx fx;

	if (!fx_setup(&fx, ONLY(SVC(SVC_WEB4) | SVC(SVC_DNS))))
		return;
	if (forward_ok(&fx, &syn, SVC_WEB4, 1, &ct) &&
	    ASSERT_EQ(ct.state, FG_CT_NEW, "state after SYN") &&
	    reply_ok(&fx, &syn, &ct, PKT_TCP_SYN | PKT_TCP_ACK)) {
		struct fg_flow flow = flow_of(&syn);

		ASSERT_TRUE(ct_get(&fx, &flow, &ct), "ct still there");
		ASSERT_EQ(ct.state, FG_CT_ESTABLISHED, "state after SYN-ACK");
	}
	/* UDP: the answer to a query goes back the same way. */
	if (forward_ok(&fx, &query, SVC_DNS, 1, &ct))
		reply_ok(&fx, &query, &ct, 0);
	fx_teardown(&fx);
}

static void test_ipv6_vip(void)
{
	struct pkt_spec syn = SYN6(.sport = 41002, .payload = "hello6", .payload_len = 6);
	struct fg_ct ct;
	struct fx fx;

	if (!fx_setup(&fx, ONLY(SVC(SVC_WEB6))))
		return;
	if (forward_ok(&fx, &syn, SVC_WEB6, 1, &ct))
		reply_ok(&fx, &syn, &ct, PKT_TCP_SYN | PKT_TCP_ACK);
	fx_teardown(&fx);
}

static int set_cluster_weights(struct fx *fx, __u32 service_id, __u32 w0, __u32 w1)
{
	struct fg_maglev_entry e[2] = {
		{ .id = C0, .weight = w0, .key = "c-one", .key_len = 5 },
		{ .id = C1, .weight = w1, .key = "c-two", .key_len = 5 },
	};

	return fg_dp_set_cluster_ring(fx->dp, service_id, e, 2);
}

/* Rebuilds (service, cluster)'s backend ring without one backend. */
static int backend_ring_without(struct fx *fx, __u32 service_id, __u32 cluster, __u32 skip)
{
	struct fg_maglev_entry e[4];
	char keys[4][64];
	size_t i, j, n = 0;

	for (i = 0; i < ARRAY_SIZE(services); i++) {
		if (services[i].id != service_id)
			continue;
		for (j = 0; j < services[i].n_be; j++) {
			const struct be_def *b = &services[i].be[j];

			if (b->cluster != cluster || b->id == skip)
				continue;
			snprintf(keys[n], sizeof(keys[n]), "%s:%u", b->addr, b->port);
			e[n].id = b->id;
			e[n].weight = 1;
			e[n].key = keys[n];
			e[n].key_len = strlen(keys[n]);
			n++;
		}
	}
	return fg_dp_set_backend_ring(fx->dp, service_id, cluster, e, n);
}

static void test_established_keeps_backend(void)
{
	struct pkt_spec syn = SYN4(.sport = 41003), ack, syn2;
	struct fg_ct ct, ct_after, ct2;
	struct fg_flow flow = flow_of(&syn);
	__u32 other;
	struct choice ch;
	struct fx fx;
	__u16 port;

	if (!fx_setup(&fx, ONLY(SVC(SVC_WEB4))))
		return;
	if (!forward_ok(&fx, &syn, SVC_WEB4, 1, &ct))
		goto out;
	/* Everything new now goes to the other cluster; the flow's own
	 * cluster ring no longer holds its backend either. */
	other = ct.cluster_idx == C0 ? C1 : C0;
	if (!ASSERT_OK(set_cluster_weights(&fx, SVC_WEB4, other == C0, other == C1),
		       "reweight clusters") ||
	    !ASSERT_OK(backend_ring_without(&fx, SVC_WEB4, ct.cluster_idx, ct.backend_id),
		       "backend ring without the flow's backend"))
		goto out;
	if (ASSERT_OK(predict(&fx, SVC_WEB4, &flow, 1, &ch), "new prediction"))
		ASSERT_NEQ(ch.backend_id, ct.backend_id, "the rings would move the flow");

	/* The next packet of the flow still goes to its backend, same port. */
	ack = next_pkt(&syn, PKT_TCP_ACK);
	if (forward_ok(&fx, &ack, SVC_WEB4, STICKY, &ct_after)) {
		ASSERT_EQ(ct_after.backend_id, ct.backend_id, "still on its backend");
		ASSERT_EQ(ct_after.snat_port, ct.snat_port, "same SNAT port");
	}

	/* A new flow follows the new weights. */
	for (port = 42000; port < 42008; port++) {
		syn2 = (struct pkt_spec)SYN4(.sport = port);
		if (!forward_ok(&fx, &syn2, SVC_WEB4, 1, &ct2))
			break;
		ASSERT_EQ(ct2.cluster_idx, other, "new flow in the weighted cluster");
	}
out:
	fx_teardown(&fx);
}

static void test_down_backend_reselected(void)
{
	struct pkt_spec syn = SYN4(.sport = 41004), ack;
	struct fg_flow flow = flow_of(&syn), old_rkey, new_rkey;
	struct fg_backend be_old, be_new;
	struct fg_ct ct, ct2;
	struct fg_rnat rn;
	__u32 be_down;
	__u16 port;
	struct fx fx;

	if (!fx_setup(&fx, ONLY(SVC(SVC_WEB4))))
		return;
	if (!forward_ok(&fx, &syn, SVC_WEB4, 1, &ct))
		goto out;
	backend_get(&fx, ct.backend_id, &be_old);
	old_rkey = reverse_key(&be_old, &ct, &flow);
	ASSERT_TRUE(rnat_get(&fx, &old_rkey, &rn), "reverse_nat entry of the flow");

	be_down = ct.backend_id;
	if (!ASSERT_OK(fg_dp_set_backend_up(fx.dp, be_down, false), "backend down"))
		goto out;
	ack = next_pkt(&syn, PKT_TCP_ACK);
	/* The rings still hold the backend (the agent has not rebuilt them):
	 * the program rehashes, as predicted with every attempt. */
	if (!forward_ok(&fx, &ack, SVC_WEB4, 4, &ct2))
		goto out;
	ASSERT_NEQ(ct2.backend_id, ct.backend_id, "moved off the down backend");
	if (ASSERT_TRUE(backend_get(&fx, ct2.backend_id, &be_new), "new backend"))
		ASSERT_EQ(be_new.flags & FG_BACKEND_F_UP, FG_BACKEND_F_UP, "new backend is up");
	ASSERT_EQ(ct2.state, FG_CT_ESTABLISHED, "re-selected mid-flow: established");
	ASSERT_FALSE(rnat_get(&fx, &old_rkey, &rn), "old reverse_nat entry released");
	new_rkey = reverse_key(&be_new, &ct2, &flow);
	if (ASSERT_TRUE(rnat_get(&fx, &new_rkey, &rn), "new reverse_nat entry"))
		ASSERT_EQ(rn.backend_id, ct2.backend_id, "reverse_nat backend");
	/* Replies of the new backend find their way back. */
	reply_ok(&fx, &syn, &ct2, PKT_TCP_ACK);

	/* The agent then rebuilds the rings without the down backend: the
	 * flow stays where it is, and new flows are predicted by the first
	 * attempt again and never land on the down backend. */
	if (!ASSERT_OK(fg_dp_rebuild_service(fx.dp, SVC_WEB4), "rebuild rings"))
		goto out;
	ack = next_pkt(&ack, PKT_TCP_ACK);
	if (forward_ok(&fx, &ack, SVC_WEB4, STICKY, &ct))
		ASSERT_EQ(ct.backend_id, ct2.backend_id, "flow stays on its new backend");
	for (port = 43000; port < 43016; port++) {
		struct pkt_spec s = SYN4(.sport = port);

		if (!forward_ok(&fx, &s, SVC_WEB4, 1, &ct))
			break;
		ASSERT_NEQ(ct.backend_id, be_down, "new flow avoids the down backend");
	}
out:
	fx_teardown(&fx);
}

static int run_named(struct fx *fx, const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(packet_cases); i++)
		if (!strcmp(packet_cases[i].name, name))
			return run_case(fx, &packet_cases[i]);
	ASSERT_TRUE(false, name);
	return 0;
}

static void test_non_listener_passes(void)
{
	struct fx fx;

	if (!fx_setup(&fx, ONLY(SVC(SVC_WEB4) | SVC(SVC_L7))))
		return;
	run_named(&fx, "tcp_to_other_vip");
	run_named(&fx, "tcp_to_vip_other_port");
	fx_teardown(&fx);
}

static void test_allowlist(bool allow)
{
	struct fx fx;

	if (!fx_setup(&fx, ONLY(SVC(SVC_ALLOW))))
		return;
	if (allow)
		run_named(&fx, "allowlist_member");
	else
		run_named(&fx, "allowlist_stranger");
	/* Counted for the listener either way. */
	ASSERT_EQ(read_counter(&fx, fx.maps->listener_stats, SVC_ALLOW).packets, 1,
		  "listener_stats");
	fx_teardown(&fx);
}

static void test_l7_listener_passes(void)
{
	struct fx fx;

	if (!fx_setup(&fx, ONLY(SVC(SVC_WEB4) | SVC(SVC_L7))))
		return;
	run_named(&fx, "l7_listener");
	ASSERT_EQ(read_counter(&fx, fx.maps->listener_stats, SVC_L7).packets, 1,
		  "listener_stats");
	fx_teardown(&fx);
}

static void test_rst_retires_flow(void)
{
	struct pkt_spec syn = SYN4(.sport = 41005), rst, syn_b = SYN4(.sport = 41006), fin;
	struct fg_flow flow = flow_of(&syn), flow_b = flow_of(&syn_b), rkey;
	struct fg_backend be;
	struct fg_ct ct;
	struct fg_rnat rn;
	struct fx fx;

	if (!fx_setup(&fx, ONLY(SVC(SVC_WEB4))))
		return;
	/* RST from the client: forwarded, then the flow is gone. */
	if (forward_ok(&fx, &syn, SVC_WEB4, 1, &ct)) {
		backend_get(&fx, ct.backend_id, &be);
		rkey = reverse_key(&be, &ct, &flow);
		rst = next_pkt(&syn, PKT_TCP_RST | PKT_TCP_ACK);
		{
			uint8_t in[PKT_MAX_LEN], want[PKT_MAX_LEN];
			size_t len = pkt_build(&rst, in, sizeof(in)), want_len;
			struct nat_out n = {};
			struct run r = {};

			if (run_expect(&fx, in, len, fx.ifindex_c, XDP_REDIRECT, FG_R_FORWARD, &r)) {
				fg_addr_str(&ct.snat_addr, FG_AF_INET, n.src, sizeof(n.src));
				fg_addr_str(&be.addr, FG_AF_INET, n.dst, sizeof(n.dst));
				n.sport = ntohs(ct.snat_port);
				n.dport = ntohs(be.port);
				memcpy(n.smac, fx.mac_b, 6);
				neigh_mac(n.dst, n.dmac);
				want_len = build_nat_frame(&rst, &n, NULL, want);
				ASSERT_MEMEQ(r.out, r.out_len, want, want_len, "RST forwarded");
			}
		}
		ASSERT_FALSE(ct_get(&fx, &flow, &ct), "conntrack entry gone after RST");
		ASSERT_FALSE(rnat_get(&fx, &rkey, &rn), "reverse_nat entry gone after RST");
	}

	/* FIN from the client: forwarded, the flow is closing. */
	if (forward_ok(&fx, &syn_b, SVC_WEB4, 1, &ct)) {
		fin = next_pkt(&syn_b, PKT_TCP_FIN | PKT_TCP_ACK);
		if (forward_ok(&fx, &fin, SVC_WEB4, 1, &ct))
			ASSERT_EQ(ct.state, FG_CT_CLOSING, "state after FIN");
		/* A reply does not reopen it. */
		if (reply_ok(&fx, &syn_b, &ct, PKT_TCP_ACK) &&
		    ASSERT_TRUE(ct_get(&fx, &flow_b, &ct), "ct after reply"))
			ASSERT_EQ(ct.state, FG_CT_CLOSING, "still closing after the reply");
		/* The backend's FIN closes both sides: a short timeout frees
		 * the tuple and its SNAT port soon. */
		if (reply_ok(&fx, &syn_b, &ct, PKT_TCP_FIN | PKT_TCP_ACK) &&
		    ASSERT_TRUE(ct_get(&fx, &flow_b, &ct), "ct after the backend's FIN")) {
			ASSERT_EQ(ct.state, FG_CT_CLOSED, "closed after both FINs");
			ASSERT_EQ(ct.fins, FG_FIN_CLIENT | FG_FIN_BACKEND, "both FINs recorded");
			backend_get(&fx, ct.backend_id, &be);
			rkey = reverse_key(&be, &ct, &flow_b);
			if (ASSERT_TRUE(rnat_get(&fx, &rkey, &rn), "reverse entry after both FINs"))
				ASSERT_EQ(rn.state, FG_CT_CLOSED, "reverse entry closed too");
		}
		/* A new SYN on the same tuple starts a new flow. */
		if (forward_ok(&fx, &syn_b, SVC_WEB4, 1, &ct))
			ASSERT_EQ(ct.state, FG_CT_NEW, "SYN after FIN: a new flow");
		ASSERT_EQ(ct.fins, 0, "a new flow has no FINs");
	}
	fx_teardown(&fx);
}

/* Packets of a flow conntrack does not know (evicted, or picked up after
 * a failover) are balanced like a new flow. A RST must still retire the
 * flow rather than leave an entry for two hours, and a FIN must leave it
 * closing, as they do for a known flow. */
static void test_midstream_rst_fin(void)
{
	struct pkt_spec rst = SYN4(.sport = 41020, .tcp_flags = PKT_TCP_RST | PKT_TCP_ACK);
	struct pkt_spec fin = SYN4(.sport = 41021, .tcp_flags = PKT_TCP_FIN | PKT_TCP_ACK);
	struct fg_flow flow = flow_of(&rst);
	uint8_t in[PKT_MAX_LEN];
	struct fg_ct ct;
	struct run r = {};
	size_t len;
	struct fx fx;

	if (!fx_setup(&fx, ONLY(SVC(SVC_WEB4))))
		return;
	len = pkt_build(&rst, in, sizeof(in));
	run_expect(&fx, in, len, fx.ifindex_c, XDP_REDIRECT, FG_R_FORWARD, &r);
	if (!ASSERT_FALSE(ct_get(&fx, &flow, &ct), "no conntrack entry after a lone RST"))
		printf("lone RST left a flow: backend %u state %u snat port %u\n",
		       ct.backend_id, ct.state, ntohs(ct.snat_port));
	if (forward_ok(&fx, &fin, SVC_WEB4, 1, &ct))
		ASSERT_EQ(ct.state, FG_CT_CLOSING, "state after a lone FIN");
	fx_teardown(&fx);
}

/* One packet for every reason the program can give, then the verdicts map
 * must hold exactly those counts; and the per-listener, per-backend and
 * per-cluster counters must have seen the forwarded traffic. */
static void test_counters(void)
{
	static const char *const one_each[] = {
		"ip4_bad_version", "ip4_header_cut", "eth_vlan_tag_cut", "tcp_header_cut",
		"ip4_fragment_mf", "ip6_ext_chain_7_over_limit", "icmp_echo_to_vip",
		"gre_to_vip", "arp", "tcp_to_other_vip", "allowlist_stranger", "l7_listener",
		"no_backend_up", "backend_neighbour_unresolved", "backend_unroutable",
		"egress_iface_without_snat_addr",
	};
	/* One SNAT port only: a second flow to the same backend has none. */
	static const struct fx_opts one_port = {
		.services = SVC(SVC_ALLOW) | SVC(SVC_L7) | SVC(SVC_ALL_DOWN) | SVC(SVC_NO_NEIGH) |
			    SVC(SVC_NO_ROUTE) | SVC(SVC_NO_SNAT) | SVC(SVC_SINGLE),
		.snat_port_min = 45000,
		.snat_port_max = 45000,
	};
	struct pkt_spec syn = SYN4(.dst = "10.0.0.109", .sport = 41007);
	struct pkt_spec syn2 = SYN4(.dst = "10.0.0.109", .sport = 41008);
	__u64 want[FG_R_MAX] = {};
	struct fg_counter v[FG_R_MAX], c;
	uint8_t in[PKT_MAX_LEN];
	struct fg_ct ct;
	struct run r = {};
	size_t i, len, syn_len;
	struct fx fx;

	if (!fx_setup(&fx, &one_port))
		return;
	for (i = 0; i < ARRAY_SIZE(one_each); i++) {
		size_t k;

		if (run_named(&fx, one_each[i]) == CASE_REFUSED)
			continue;
		for (k = 0; k < ARRAY_SIZE(packet_cases); k++)
			if (!strcmp(packet_cases[k].name, one_each[i]))
				want[packet_cases[k].reason]++;
	}
	if (forward_ok(&fx, &syn, SVC_SINGLE, 1, &ct)) {
		want[FG_R_FORWARD]++;
		ASSERT_EQ(ntohs(ct.snat_port), 45000, "the one SNAT port");
		if (reply_ok(&fx, &syn, &ct, PKT_TCP_SYN | PKT_TCP_ACK))
			want[FG_R_REPLY]++;
	}
	len = pkt_build(&syn2, in, sizeof(in));
	if (run_expect(&fx, in, len, fx.ifindex_c, XDP_DROP, FG_R_NO_SNAT_PORT, &r)) {
		want[FG_R_NO_SNAT_PORT]++;
		ASSERT_MEMEQ(r.out, r.out_len, in, len, "dropped frame untouched");
	}

	read_verdicts(&fx, v);
	for (i = 0; i < FG_R_MAX; i++) {
		if (v[i].packets != want[i])
			printf("verdicts[%s]: %llu packets, want %llu\n", fg_reason_name(i),
			       (unsigned long long)v[i].packets, (unsigned long long)want[i]);
		ASSERT_EQ(v[i].packets, want[i], "verdicts packets");
	}

	/* The forwarded SYN and the reply, by listener / backend / cluster. */
	syn_len = pkt_build(&syn, in, sizeof(in));
	c = read_counter(&fx, fx.maps->listener_stats, SVC_SINGLE);
	ASSERT_EQ(c.packets, 2, "listener_stats packets (SYN + refused SYN)");
	ASSERT_EQ(c.bytes, 2 * syn_len, "listener_stats bytes");
	c = read_counter(&fx, fx.maps->backend_stats, 71);
	ASSERT_EQ(c.packets, 2, "backend_stats packets (SYN + reply)");
	ASSERT_GT(c.bytes, syn_len, "backend_stats bytes");
	c = read_counter(&fx, fx.maps->backend_stats, 41);
	ASSERT_EQ(c.packets, 1, "backend_stats of the unresolved backend (NATed SYN)");
	/* Cluster 0 serves both: the forwarded SYN and the one NATed for the
	 * stack (same length). Replies are not counted per cluster. */
	c = read_counter(&fx, fx.maps->cluster_stats, C0);
	ASSERT_EQ(c.packets, 2, "cluster_stats packets (2 SYNs)");
	ASSERT_EQ(c.bytes, 2 * syn_len, "cluster_stats bytes");
	c = read_counter(&fx, fx.maps->listener_stats, SVC_ALLOW);
	ASSERT_EQ(c.packets, 1, "listener_stats of the allowlisted listener");
	fx_teardown(&fx);
}

/* splitmix64: deterministic, so a failure reproduces. */
static __u64 prng(__u64 *s)
{
	__u64 z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Random flows, one SYN each: the backend conntrack recorded is the one
 * user space predicts from the rings with the shared hash. */
static void test_prediction(void)
{
	const int nr_v4 = 2000, nr_v6 = 500;
	__u64 seed = 0x5eed, per_cluster[2] = {};
	int i, mismatches = 0, failures = 0, bad_csums = 0;
	struct fx fx;

	/* The agent's default ring size: what its distribution tests use. */
	static const struct fx_opts opts = {
		.services = SVC(SVC_WEB4) | SVC(SVC_WEB6),
		.maglev_size = FG_DEFAULT_MAGLEV_SIZE,
	};

	if (!fx_setup(&fx, &opts))
		return;
	for (i = 0; i < nr_v4 + nr_v6; i++) {
		bool v6 = i >= nr_v4;
		__u64 x = prng(&seed);
		char src[INET6_ADDRSTRLEN];
		struct pkt_spec s = SYN4();
		uint8_t in[PKT_MAX_LEN];
		struct fg_flow flow;
		struct choice ch;
		struct fg_ct ct;
		struct run r = {};
		size_t len;

		if (v6) {
			snprintf(src, sizeof(src), "fd00:%x:%x::%x", (unsigned int)(x & 0xffff),
				 (unsigned int)(x >> 16 & 0xffff), (unsigned int)(x >> 32 & 0xffff));
			s.src = src;
			s.dst = VIP6;
		} else {
			snprintf(src, sizeof(src), "10.%u.%u.%u", (unsigned int)(x & 0xff),
				 (unsigned int)(x >> 8 & 0xff), (unsigned int)(x >> 16 & 0xff));
			s.src = src;
		}
		s.sport = (__u16)(1024 + (x >> 48) % 64000);
		len = pkt_build(&s, in, sizeof(in));
		xdp_run(&fx, in, len, fx.ifindex_c, &r);
		flow = flow_of(&s);
		if (r.err || r.retval != hook_verdict(&fx, XDP_REDIRECT) || !ct_get(&fx, &flow, &ct)) {
			if (failures++ < 5)
				printf("flow %s:%u: err %d verdict %s\n", src, s.sport, r.err,
				       xdp_name(&fx, r.retval));
			continue;
		}
		if (!pkt_csum_ok(r.out, r.out_len, NULL, 0)) {
			if (bad_csums++ < 5)
				printf("flow %s:%u: bad checksum after NAT\n", src, s.sport);
		}
		if (predict(&fx, v6 ? SVC_WEB6 : SVC_WEB4, &flow, 1, &ch) ||
		    ch.backend_id != ct.backend_id || ch.cluster_idx != ct.cluster_idx) {
			if (mismatches++ < 5)
				printf("flow %s:%u: kernel backend %u, predicted %u\n", src,
				       s.sport, ct.backend_id, ch.backend_id);
			continue;
		}
		per_cluster[ct.cluster_idx & 1]++;
	}
	ASSERT_EQ(failures, 0, "every flow forwarded");
	ASSERT_EQ(mismatches, 0, "kernel choice == user-space prediction");
	ASSERT_EQ(bad_csums, 0, "checksums valid after NAT");
	/* Weights 1:1: both clusters get a fair share. */
	ASSERT_GT(per_cluster[0], (nr_v4 + nr_v6) * 4 / 10, "cluster 0 share");
	ASSERT_GT(per_cluster[1], (nr_v4 + nr_v6) * 4 / 10, "cluster 1 share");
	fx_teardown(&fx);
}

/* Without ctx_in the kernel runs the program as if received on loopback:
 * the FIB lookup then needs forwarding on lo. */
static void test_default_ingress_is_lo(void)
{
	struct pkt_spec syn = SYN4(.sport = 41009);
	uint8_t in[PKT_MAX_LEN];
	struct run r = {};
	struct fx fx;
	size_t len;

	if (!fx_setup(&fx, ONLY(SVC(SVC_WEB4))))
		return;
	len = pkt_build(&syn, in, sizeof(in));
	if (run_expect(&fx, in, len, 0, XDP_REDIRECT, FG_R_FORWARD, &r))
		check_forwarded(&fx, &syn, SVC_WEB4, &r, NULL, 1, NULL);
	syn.sport++;
	len = pkt_build(&syn, in, sizeof(in));
	if (ASSERT_OK(fg_sh("sysctl -qw net.ipv4.conf.lo.forwarding=0"), "lo forwarding off"))
		run_expect(&fx, in, len, 0, XDP_DROP, FG_R_FIB_FAIL, &r);
	fx_teardown(&fx);
}

/* ---- the SNAT allocator (bpf/lib/snat.h) ---- */

/* A whole short connection to SVC_SINGLE's one backend: SYN, SYN-ACK,
 * the client's FIN, the backend's FIN. The flow ends CLOSED, and its
 * SNAT tuple resting. */
static bool short_flow(struct fx *fx, __u16 sport, struct fg_ct *ct_out)
{
	struct pkt_spec syn = SYN4(.dst = "10.0.0.109", .sport = sport), fin;
	struct fg_flow flow = flow_of(&syn);
	struct fg_ct ct;

	if (!forward_ok(fx, &syn, SVC_SINGLE, 1, &ct) ||
	    !reply_ok(fx, &syn, &ct, PKT_TCP_SYN | PKT_TCP_ACK))
		return false;
	fin = next_pkt(&syn, PKT_TCP_FIN | PKT_TCP_ACK);
	if (!forward_ok(fx, &fin, SVC_SINGLE, STICKY, &ct) ||
	    !reply_ok(fx, &syn, &ct, PKT_TCP_FIN | PKT_TCP_ACK))
		return false;
	if (!ASSERT_TRUE(ct_get(fx, &flow, &ct), "conntrack after both FINs") ||
	    !ASSERT_EQ(ct.state, FG_CT_CLOSED, "closed"))
		return false;
	*ct_out = ct;
	return true;
}

/* The (address, port) a flow got, as one number for comparisons. */
static __u64 snat_tuple(const struct fg_ct *ct)
{
	return (__u64)ntohl(ct->snat_addr.v4) << 16 | ntohs(ct->snat_port);
}

/* Moves a flow's reverse_nat entry `secs` into the past, as if it had
 * closed that long ago. */
static bool age_reverse(struct fx *fx, const struct fg_ct *ct, const struct fg_flow *client,
			unsigned int secs)
{
	struct fg_backend be;
	struct fg_flow rkey;
	struct fg_rnat rn;

	if (!ASSERT_TRUE(backend_get(fx, ct->backend_id, &be), "backend"))
		return false;
	rkey = reverse_key(&be, ct, client);
	if (!ASSERT_TRUE(rnat_get(fx, &rkey, &rn), "reverse entry to age"))
		return false;
	rn.last_seen_ns -= (__u64)secs * 1000000000ULL;
	return ASSERT_OK(bpf_map_update_elem(fx->maps->reverse_nat, &rkey, &rn, BPF_EXIST),
			 "age the reverse entry");
}

/*
 * 16 ports toward one backend. 16 short connections get 16 different
 * ports (a closed flow's port rests while others are free); the 17th
 * finds every port resting and takes the one that closed first rather
 * than dropping the SYN; once a port has rested longer than TIME_WAIT
 * (aged here) it is taken over before any resting one, even when the
 * allocator's walk meets resting ones first.
 */
static void test_snat_rests_closed_ports(void)
{
	static const struct fx_opts o = {
		.services = 1u << SVC_SINGLE,
		.snat_port_min = 50000,
		.snat_port_max = 50015,
	};
	__u64 st0[FG_SNAT_STAT_MAX], st[FG_SNAT_STAT_MAX];
	struct fg_ct ct[16], c;
	struct fg_flow first, tenth;
	struct pkt_spec syn;
	int i, j;
	struct fx fx;

	if (!fx_setup(&fx, &o))
		return;
	snat_stats(&fx, st0);
	for (i = 0; i < 16; i++) {
		if (!short_flow(&fx, 45000 + i, &ct[i]))
			goto out;
		for (j = 0; j < i; j++)
			if (!ASSERT_NEQ(snat_tuple(&ct[i]), snat_tuple(&ct[j]),
					"no port reused while others are free"))
				goto out;
	}
	snat_stats(&fx, st);
	ASSERT_EQ(st[FG_SNAT_FRESH] - st0[FG_SNAT_FRESH], 16, "16 fresh ports");
	ASSERT_EQ(st[FG_SNAT_REUSED_TW] - st0[FG_SNAT_REUSED_TW], 0, "none reused");

	/* All 16 rest: the oldest (the first flow's) is reused, no drop. */
	syn = (struct pkt_spec)SYN4(.dst = "10.0.0.109", .sport = 45016);
	if (!forward_ok(&fx, &syn, SVC_SINGLE, 1, &c))
		goto out;
	ASSERT_EQ(snat_tuple(&c), snat_tuple(&ct[0]), "the port that closed first");
	snat_stats(&fx, st);
	ASSERT_EQ(st[FG_SNAT_REUSED_TW] - st0[FG_SNAT_REUSED_TW], 1, "reused inside TIME_WAIT");
	ASSERT_EQ(st[FG_SNAT_EXHAUSTED] - st0[FG_SNAT_EXHAUSTED], 0, "nothing dropped");
	syn.sport = 45000;
	first = flow_of(&syn);
	ASSERT_FALSE(ct_get(&fx, &first, &c), "the old flow's conntrack entry went with it");

	/* Flow 10's port rested 61 s: taken before the resting 8 and 9 the
	 * walk meets first. */
	syn.sport = 45010;
	tenth = flow_of(&syn);
	if (!age_reverse(&fx, &ct[10], &tenth, 61))
		goto out;
	snat_stats(&fx, st0);
	syn.sport = 45017;
	if (forward_ok(&fx, &syn, SVC_SINGLE, 1, &c))
		ASSERT_EQ(snat_tuple(&c), snat_tuple(&ct[10]), "the port past TIME_WAIT");
	snat_stats(&fx, st);
	ASSERT_EQ(st[FG_SNAT_RECLAIMED] - st0[FG_SNAT_RECLAIMED], 1, "reclaimed");
	ASSERT_EQ(st[FG_SNAT_REUSED_TW] - st0[FG_SNAT_REUSED_TW], 0, "not reused in TIME_WAIT");
	ASSERT_GE(st[FG_SNAT_SKIPPED] - st0[FG_SNAT_SKIPPED], 2, "resting ones skipped");
out:
	fx_teardown(&fx);
}

/* How many short connections toward one backend get a tuple of their own
 * before the first reuse inside TIME_WAIT. */
static int snat_capacity(bool two_addrs, int *per_addr2)
{
	const struct fx_opts o = {
		.services = 1u << SVC_SINGLE,
		.snat_port_min = 50000,
		.snat_port_max = 50007,
		.two_snat_addrs = two_addrs,
	};
	struct fg_addr b2 = addr_of(GW4_B2);
	__u64 st[FG_SNAT_STAT_MAX];
	struct fg_ct c;
	int n = -1, i;
	struct fx fx;

	*per_addr2 = 0;
	if (!fx_setup(&fx, &o))
		return -1;
	for (i = 0; i < 64; i++) {
		if (!short_flow(&fx, 46000 + i, &c))
			break;
		snat_stats(&fx, st);
		if (st[FG_SNAT_REUSED_TW]) {
			n = i;
			break;
		}
		*per_addr2 += !memcmp(&c.snat_addr, &b2, sizeof(b2));
	}
	snat_stats(&fx, st);
	ASSERT_EQ(st[FG_SNAT_EXHAUSTED], 0, "no SYN dropped");
	fx_teardown(&fx);
	return n;
}

/* --snat-addr with two addresses: twice the tuples per backend before a
 * port must be reused, each address taking half. */
static void test_snat_two_addresses(void)
{
	int one, two, second_one, second_two;

	one = snat_capacity(false, &second_one);
	two = snat_capacity(true, &second_two);
	printf("8 ports: %d connections before the first reuse with one address, %d with two\n",
	       one, two);
	ASSERT_EQ(one, 8, "one address: 8 ports");
	ASSERT_EQ(two, 16, "two addresses: twice as many");
	ASSERT_EQ(second_one, 0, "one address: the second is not used");
	ASSERT_EQ(second_two, 8, "two addresses: half on the second");
}

static void scenarios(enum hook hook)
{
	cur_hook = hook;
	if (test__start_subtest("verifier"))
		test_verifier();
	if (test__start_subtest("syn_to_vip_v4"))
		test_syn_to_vip_v4();
	if (test__start_subtest("reply_reverse_nat"))
		test_reply_reverse_nat();
	if (test__start_subtest("established_keeps_backend_after_weight_change"))
		test_established_keeps_backend();
	if (test__start_subtest("down_backend_reselected"))
		test_down_backend_reselected();
	if (test__start_subtest("non_listener_passes"))
		test_non_listener_passes();
	if (test__start_subtest("allowlist_drop"))
		test_allowlist(false);
	if (test__start_subtest("allowlist_allow"))
		test_allowlist(true);
	if (test__start_subtest("l7_listener_passes"))
		test_l7_listener_passes();
	if (test__start_subtest("ipv6_vip"))
		test_ipv6_vip();
	if (test__start_subtest("rst_retires_flow"))
		test_rst_retires_flow();
	if (test__start_subtest("midstream_rst_fin"))
		test_midstream_rst_fin();
	if (test__start_subtest("counters"))
		test_counters();
	if (test__start_subtest("bpf_vs_userspace_prediction"))
		test_prediction();
	if (test__start_subtest("default_ingress_is_lo"))
		test_default_ingress_is_lo();
	if (test__start_subtest("snat_rests_closed_ports"))
		test_snat_rests_closed_ports();
	if (test__start_subtest("snat_two_addresses"))
		test_snat_two_addresses();
}

/* ---- attaching (agent/dataplane.c) ---- */


/*
 * In a private namespace with a veth pair: auto picks TC for a veth (and
 * says why); TC as a tcx link and as a cls_bpf filter (what kernels
 * without tcx get), XDP native; each one is seen by the kernel while
 * attached, recorded for the ifaces map, and gone after detach; a second
 * attach of the other mode replaces the first one's cls_bpf filter.
 */
static void test_attach_modes(void)
{
	struct fg_dp_opts dopts = { .maglev_size = FX_MAGLEV_SIZE };
	struct fg_attach_info info;
	struct fg_dataplane *dp = NULL;
	char a[IF_NAMESIZE], b[IF_NAMESIZE];
	int orig, ifindex;
	static const struct {
		const char *name;
		struct fg_attach_opts o;
		enum fg_attach want;
	} modes[] = {
		{ "auto", { .want = FG_ATTACH_WANT_AUTO }, FG_ATTACH_TCX },
		{ "tc", { .want = FG_ATTACH_WANT_TC }, FG_ATTACH_TCX },
		{ "tc-cls", { .want = FG_ATTACH_WANT_TC, .tc_cls = true }, FG_ATTACH_TC_CLS },
		{ "xdp", { .want = FG_ATTACH_WANT_XDP, .xdp_mode = FG_XDP_NATIVE },
		  FG_ATTACH_XDP_NATIVE },
	};
	enum fg_attach tc_mode = e2e_kernel_has_tcx() ? FG_ATTACH_TCX : FG_ATTACH_TC_CLS;
	size_t i;

	printf("this kernel's TC attachment: %s\n", fg_attach_name(tc_mode));
	orig = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (!ASSERT_GE(orig, 0, "open netns") || !ASSERT_OK(unshare(CLONE_NEWNET), "unshare")) {
		if (orig >= 0)
			close(orig);
		return;
	}
	snprintf(a, sizeof(a), "%sa", test__prefix());
	snprintf(b, sizeof(b), "%sz", test__prefix());
	if (!ASSERT_OK(fg_sh("ip link add %s type veth peer name %s && ip link set %s up && "
			     "ip link set %s up", a, b, a, b), "veth"))
		goto out;
	ifindex = (int)if_nametoindex(a);
	fg_dp_attach_choose(ifindex, &info);
	printf("auto on a veth: %s (%s)\n", fg_attach_name(info.mode), info.why);
	ASSERT_EQ(info.mode, FG_ATTACH_TCX, "auto: a veth gets TC");
	ASSERT_STREQ(info.driver, "veth", "the driver ethtool names");
	if (!ASSERT_OK(fg_dp_load(&dp, &dopts), "load"))
		goto out;
	for (i = 0; i < ARRAY_SIZE(modes); i++) {
		char tag[64];
		__u32 id;

		snprintf(tag, sizeof(tag), "%s: attach", modes[i].name);
		if (!ASSERT_OK(fg_dp_attach(dp, ifindex, &modes[i].o, &info), tag))
			continue;
		enum fg_attach want = modes[i].want == FG_ATTACH_TCX ? tc_mode : modes[i].want;

		snprintf(tag, sizeof(tag), "%s: mode", modes[i].name);
		ASSERT_EQ(info.mode, want, tag);
		ASSERT_EQ(fg_dp_attach_mode(dp, ifindex), want, tag);
		id = fg_dp_attached_prog_id(ifindex, want);
		snprintf(tag, sizeof(tag), "%s: the kernel has it", modes[i].name);
		ASSERT_GT(id, 0, tag);
		snprintf(tag, sizeof(tag), "%s: detach", modes[i].name);
		ASSERT_OK(fg_dp_detach(dp, ifindex), tag);
		snprintf(tag, sizeof(tag), "%s: gone after detach", modes[i].name);
		ASSERT_EQ(fg_dp_attached_prog_id(ifindex, want), 0, tag);
	}
	/* A cls_bpf filter left behind (an agent that did not detach) goes
	 * when the interface is attached in another mode. */
	{
		const struct fg_attach_opts cls = { .want = FG_ATTACH_WANT_TC, .tc_cls = true };
		const struct fg_attach_opts tcx = { .want = FG_ATTACH_WANT_TC };
		const struct fg_attach_opts xdp = { .want = FG_ATTACH_WANT_XDP,
						    .xdp_mode = FG_XDP_NATIVE };
		/* Without tcx, XDP is the other mode that must clear it. */
		bool tcx_ok = tc_mode == FG_ATTACH_TCX;
		enum fg_attach other = tcx_ok ? FG_ATTACH_TCX : FG_ATTACH_XDP_NATIVE;

		if (ASSERT_OK(fg_dp_attach(dp, ifindex, &cls, &info), "cls again") &&
		    ASSERT_OK(fg_dp_attach(dp, ifindex, tcx_ok ? &tcx : &xdp, &info),
			      "the other mode over it")) {
			ASSERT_EQ(fg_dp_attached_prog_id(ifindex, FG_ATTACH_TC_CLS), 0,
				  "the old cls_bpf filter removed");
			ASSERT_GT(fg_dp_attached_prog_id(ifindex, other), 0, "the other mode in place");
		}
	}
out:
	fg_dp_close(dp, true);
	ASSERT_OK(setns(orig, CLONE_NEWNET), "setns back");
	close(orig);
}

FG_TEST(attach)
{
	if (geteuid() != 0) {
		test__skip("needs root");
		return;
	}
	if (test__start_subtest("modes"))
		test_attach_modes();
}

FG_TEST(xdp_gateway)
{
	scenarios(HOOK_XDP);
}

FG_TEST(tc_gateway)
{
	scenarios(HOOK_TC);
}
