// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * agent/netlink.c against the real kernel, inside a private network
 * namespace: the test process unshares one, builds two links with
 * addresses there through `ip`, checks what the netlink module reports,
 * and goes back to its original namespace at the end (the private one then
 * disappears with everything in it).
 *
 * The links are dummies; a kernel built without the dummy driver gets a
 * veth pair instead (the peer doubling as the second link).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/neighbour.h>

#include "fleetgate.h"
#include "netlink.h"
#include "test_progs.h"

struct nl_env {
	int orig_netns;		/* fd of the namespace we came from */
	bool in_netns;
	bool veth;
	bool have_v6;
	char d0[IF_NAMESIZE];	/* 10.250.0.1/24, fd00:250::1/64 */
	char d1[IF_NAMESIZE];	/* only addresses unfit as a source */
	int ifindex0;
	int ifindex1;
};

static struct fg_addr addr4(const char *s)
{
	struct fg_addr a = {};

	inet_pton(AF_INET, s, a.bytes);
	return a;
}

static struct fg_addr addr6(const char *s)
{
	struct fg_addr a = {};

	inet_pton(AF_INET6, s, a.bytes);
	return a;
}

static const struct fg_addr zero_addr;

/* ---- namespace and links ---- */

static int netns_enter(struct nl_env *e)
{
	int err;

	e->orig_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (e->orig_netns < 0)
		return -errno;
	if (unshare(CLONE_NEWNET)) {
		err = -errno;
		close(e->orig_netns);
		e->orig_netns = -1;
		return err;
	}
	e->in_netns = true;
	return 0;
}

static int netns_leave(struct nl_env *e)
{
	int err = 0;

	if (e->in_netns && setns(e->orig_netns, CLONE_NEWNET))
		err = -errno;
	else
		e->in_netns = false;
	if (e->orig_netns >= 0)
		close(e->orig_netns);
	e->orig_netns = -1;
	return err;
}

/* Creates @name (and, for veth, its peer @peer). */
static int link_add(struct nl_env *e, const char *name, const char *peer)
{
	if (!e->veth)
		return fg_sh("ip link add %s type dummy", name) ||
		       fg_sh("ip link add %s type dummy", peer) ? -EIO : 0;
	return fg_sh("ip link add %s type veth peer name %s", name, peer) ?
		       -EIO : 0;
}

static int links_setup(struct nl_env *e)
{
	const char *d0 = e->d0, *d1 = e->d1;

	if (fg_sh("ip link add %s type dummy", d0) == 0) {
		if (fg_sh("ip link add %s type dummy", d1))
			return -EIO;
	} else {
		e->veth = true;
		if (link_add(e, d0, d1))
			return -EOPNOTSUPP;
	}
	if (fg_sh("ip link set lo up && ip link set %s up && ip link set %s up",
		  d0, d1))
		return -EIO;
	if (fg_sh("ip addr add 10.250.0.1/24 dev %s", d0))
		return -EIO;
	/* d1 only has addresses the kernel would not pick as a source. */
	if (fg_sh("ip addr add 10.250.1.1/24 dev %s scope host", d1))
		return -EIO;

	e->have_v6 = access("/proc/sys/net/ipv6", F_OK) == 0;
	if (!e->have_v6)
		return 0;
	if (fg_sh("ip addr add fd00:250::1/64 dev %s nodad", d0))
		return -EIO;
	if (fg_sh("ip addr add fd00:251::1/64 dev %s nodad preferred_lft 0",
		  d1))
		return -EIO;
	return 0;
}

static int env_setup(struct nl_env *e)
{
	const char *p = test__prefix();
	int err;

	snprintf(e->d0, sizeof(e->d0), "%sd0", p);
	snprintf(e->d1, sizeof(e->d1), "%sd1", p);
	err = netns_enter(e);
	if (err)
		return err;
	err = links_setup(e);
	if (err)
		return err;
	e->ifindex0 = if_nametoindex(e->d0);
	e->ifindex1 = if_nametoindex(e->d1);
	return e->ifindex0 > 0 && e->ifindex1 > 0 ? 0 : -ENODEV;
}

/* ---- monitor helpers ---- */

#define MAX_EVENTS 1024

struct ev_log {
	struct fg_nl_event ev[MAX_EVENTS];
	int n;
	int dropped;
};

static int ev_record(const struct fg_nl_event *ev, void *ctx)
{
	struct ev_log *log = ctx;
	char buf[INET6_ADDRSTRLEN] = "";

	if (ev->family)
		inet_ntop(ev->family, ev->addr.bytes, buf, sizeof(buf));
	if (test__verbose())
		printf("  event %s ifindex %d %s %s state 0x%x\n",
		       fg_nl_event_name(ev->type), ev->ifindex, ev->ifname,
		       buf, ev->nud_state);
	if (log->n < MAX_EVENTS)
		log->ev[log->n++] = *ev;
	else
		log->dropped++;
	return 0;
}

static bool ev_matches(const struct fg_nl_event *ev,
		       const struct fg_nl_event *want)
{
	if (ev->type != want->type || ev->ifindex != want->ifindex)
		return false;
	/* A deletion first shows as a change to FAILED: match the state. */
	if (want->type == FG_NL_EV_NEIGH_CHANGE &&
	    ev->nud_state != want->nud_state)
		return false;
	if (!want->family)
		return true;
	return ev->family == want->family &&
	       !memcmp(&ev->addr, &want->addr, sizeof(ev->addr));
}

static const struct fg_nl_event *ev_find(const struct ev_log *log,
					 const struct fg_nl_event *want)
{
	int i;

	for (i = 0; i < log->n; i++)
		if (ev_matches(&log->ev[i], want))
			return &log->ev[i];
	return NULL;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Processes monitor events into @log until one matches @want or
 * @timeout_ms passes; returns the match or NULL. */
static const struct fg_nl_event *ev_wait(struct fg_nl_monitor *mon,
					 struct ev_log *log,
					 const struct fg_nl_event *want,
					 int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct pollfd pfd = { .fd = fg_nl_monitor_fd(mon), .events = POLLIN };
	const struct fg_nl_event *ev;
	int left, ret;

	for (;;) {
		ret = fg_nl_monitor_process(mon, ev_record, log);
		if (!ASSERT_GE(ret, 0, "monitor_process"))
			return NULL;
		ev = ev_find(log, want);
		if (ev)
			return ev;
		left = (int)(deadline - now_ms());
		if (left <= 0)
			return NULL;
		poll(&pfd, 1, left);
	}
}

/* ---- subtests ---- */

static void subtest_ifindex(struct nl_env *e)
{
	char name[IF_NAMESIZE + 8];

	ASSERT_EQ(fg_nl_ifindex(e->d0), e->ifindex0, "ifindex d0");
	ASSERT_EQ(fg_nl_ifindex(e->d1), e->ifindex1, "ifindex d1");
	ASSERT_EQ(fg_nl_ifindex("lo"), 1, "ifindex lo");

	snprintf(name, sizeof(name), "%snope", test__prefix());
	ASSERT_EQ(fg_nl_ifindex(name), -ENODEV, "unknown name");
	ASSERT_EQ(fg_nl_ifindex(""), -ENODEV, "empty name");
	ASSERT_EQ(fg_nl_ifindex("a-name-longer-than-ifnamsiz"), -ENODEV,
		  "name too long");
}

static void subtest_iface_addrs(struct nl_env *e)
{
	struct fg_addr want4 = addr4("10.250.0.1");
	struct fg_addr want6 = addr6("fd00:250::1");
	struct fg_iface ifc;
	__u32 want_flags = FG_IFACE_F_V4;

	if (e->have_v6)
		want_flags |= FG_IFACE_F_V6;

	memset(&ifc, 0xa5, sizeof(ifc));
	if (!ASSERT_OK(fg_nl_iface_addrs(e->ifindex0, &ifc), "d0"))
		return;
	ASSERT_EQ(ifc.flags, want_flags, "d0 flags");
	ASSERT_EQ(ifc.n_v4, 1, "d0 one v4 address");
	ASSERT_MEMEQ(&ifc.v4[0], sizeof(ifc.v4[0]), &want4, sizeof(want4), "d0 v4");
	if (e->have_v6) {
		ASSERT_EQ(ifc.n_v6, 1, "d0 one v6 address");
		ASSERT_MEMEQ(&ifc.v6[0], sizeof(ifc.v6[0]), &want6, sizeof(want6),
			     "d0 v6");
	}
	ASSERT_EQ(ifc.pad, 0, "pad zeroed");
	ASSERT_EQ(ifc.attach, 0, "attach zeroed");

	/* Every usable address is a SNAT source, primary first. */
	if (ASSERT_OK(fg_sh("ip addr add 10.250.0.9/24 dev %s", e->d0), "second v4 address") &&
	    ASSERT_OK(fg_nl_iface_addrs(e->ifindex0, &ifc), "d0 with two")) {
		struct fg_addr want4b = addr4("10.250.0.9");

		struct fg_addr other = addr4("10.251.0.1");
		const int fam[2] = { FG_AF_INET, FG_AF_INET };
		struct fg_addr want[2] = { want4b, other };

		ASSERT_EQ(ifc.n_v4, 2, "d0 two v4 addresses");
		ASSERT_MEMEQ(&ifc.v4[0], sizeof(ifc.v4[0]), &want4, sizeof(want4), "primary first");
		ASSERT_MEMEQ(&ifc.v4[1], sizeof(ifc.v4[1]), &want4b, sizeof(want4b), "then .9");
		/* --snat-addr: only those given of its own... */
		if (ASSERT_OK(fg_nl_iface_addrs_pick(e->ifindex0, &ifc, want, fam, 2), "pick .9")) {
			ASSERT_EQ(ifc.n_v4, 1, "only the one given");
			ASSERT_MEMEQ(&ifc.v4[0], sizeof(ifc.v4[0]), &want4b, sizeof(want4b), ".9");
			if (e->have_v6)
				ASSERT_EQ(ifc.n_v6, 1, "none of its IPv6 given: all of them");
		}
		/* ...or all of them when none of its own is given. */
		if (ASSERT_OK(fg_nl_iface_addrs_pick(e->ifindex0, &ifc, &other, fam, 1), "pick other"))
			ASSERT_EQ(ifc.n_v4, 2, "none of its own given: every one");
	}
	fg_sh("ip addr del 10.250.0.9/24 dev %s 2>/dev/null", e->d0);

	/* d1 has a host-scope IPv4 address, a deprecated IPv6 one and its
	 * link-local one; add a tentative one when DAD really runs there
	 * (not on NOARP dummies). None may be picked. */
	if (e->have_v6 &&
	    !fg_sh("echo 60 > /proc/sys/net/ipv6/conf/%s/dad_transmits && "
		   "ip addr add fd00:251::2/64 dev %s", e->d1, e->d1) &&
	    fg_sh("ip -6 addr show dev %s tentative | grep -q fd00:251::2",
		  e->d1))
		fg_sh("ip addr del fd00:251::2/64 dev %s", e->d1);
	ASSERT_OK(fg_nl_iface_addrs(e->ifindex1, &ifc), "d1");
	ASSERT_EQ(ifc.flags, 0, "d1 has no usable address");
	fg_sh("ip addr del fd00:251::2/64 dev %s 2>/dev/null", e->d1);

	/* Documented: an ifindex that does not exist has no address
	 * either, it is not an error. */
	memset(&ifc, 0xa5, sizeof(ifc));
	ASSERT_OK(fg_nl_iface_addrs(999999, &ifc), "unknown ifindex");
	ASSERT_EQ(ifc.flags, 0, "unknown ifindex flags");
	ASSERT_MEMEQ(&ifc.v4[0], sizeof(ifc.v4[0]), &zero_addr, sizeof(zero_addr),
		     "unknown ifindex v4 zeroed");
	ASSERT_EQ(ifc.n_v4 + ifc.n_v6, 0, "unknown ifindex has no address");
}

static void check_route(struct nl_env *e, int family, const char *dst,
			const char *want_src, const char *want_gw)
{
	struct fg_addr (*parse)(const char *) =
		family == AF_INET ? addr4 : addr6;
	struct fg_addr d = parse(dst), src, gw, wsrc, wgw;
	int oif = -1;

	memset(&src, 0xa5, sizeof(src));
	memset(&gw, 0xa5, sizeof(gw));
	wsrc = parse(want_src);
	wgw = want_gw ? parse(want_gw) : zero_addr;
	if (!ASSERT_OK(fg_nl_route_get(&d, family, &oif, &src, &gw), dst))
		return;
	ASSERT_EQ(oif, e->ifindex0, "oif");
	ASSERT_MEMEQ(&src, sizeof(src), &wsrc, sizeof(wsrc), "prefsrc");
	ASSERT_MEMEQ(&gw, sizeof(gw), &wgw, sizeof(wgw), "gateway");
}

static void subtest_route_get(struct nl_env *e)
{
	struct fg_addr unreach = addr4("192.0.2.1");
	int oif = 0;

	check_route(e, AF_INET, "10.250.0.7", "10.250.0.1", NULL);
	if (ASSERT_OK(fg_sh("ip route add 10.251.0.0/16 via 10.250.0.254"),
		      "add v4 route"))
		check_route(e, AF_INET, "10.251.3.4", "10.250.0.1",
			    "10.250.0.254");

	if (e->have_v6) {
		check_route(e, AF_INET6, "fd00:250::7", "fd00:250::1", NULL);
		if (ASSERT_OK(fg_sh("ip -6 route add fd00:252::/48 via fd00:250::fe"),
			      "add v6 route"))
			check_route(e, AF_INET6, "fd00:252::9", "fd00:250::1",
				    "fd00:250::fe");
	}

	/* No default route in this namespace. */
	ASSERT_EQ(fg_nl_route_get(&unreach, AF_INET, &oif, NULL, NULL),
		  -ENETUNREACH, "no route");
	ASSERT_EQ(fg_nl_route_get(&unreach, 99, &oif, NULL, NULL), -EINVAL,
		  "bad family");
}

/* NUD_VALID is kernel-internal: the states that have a usable MAC. */
#define STATES_WITH_MAC (NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | \
			 NUD_PROBE | NUD_STALE | NUD_DELAY)

static const __u8 mac2[6] = { 0x02, 0, 0, 0, 0, 0x02 };
static const __u8 mac4[6] = { 0x02, 0, 0, 0, 0, 0x04 };
static const __u8 mac5[6] = { 0x02, 0, 0, 0, 0, 0x05 };

/* Resolving an entry that already has a MAC must keep it. */
static void check_resolve_keeps(struct nl_env *e, const char *ip,
				const __u8 want_mac[6], __u16 valid_states)
{
	struct fg_addr a = addr4(ip);
	__u8 mac[6] = {};
	__u16 state = 0;

	if (!ASSERT_OK(fg_nl_neigh_resolve(e->ifindex0, &a, AF_INET), ip))
		return;
	if (!ASSERT_OK(fg_nl_neigh_lookup(e->ifindex0, &a, AF_INET, mac,
					  &state), ip))
		return;
	ASSERT_MEMEQ(mac, 6, want_mac, 6, "mac kept");
	_CHECK(!(state & valid_states), ip, "state 0x%x not in 0x%x", state,
	       valid_states);
}

static void subtest_neigh(struct nl_env *e)
{
	struct fg_addr a2 = addr4("10.250.0.2"), a3 = addr4("10.250.0.3");
	struct fg_addr a6 = addr6("fd00:250::3");
	__u8 mac[6] = {};
	__u16 state = 0;

	if (!ASSERT_OK(fg_sh("ip neigh add 10.250.0.2 lladdr 02:00:00:00:00:02 dev %s nud permanent",
			     e->d0), "ip neigh add"))
		return;
	if (ASSERT_OK(fg_nl_neigh_lookup(e->ifindex0, &a2, AF_INET, mac,
					 &state), "lookup permanent")) {
		ASSERT_MEMEQ(mac, 6, mac2, 6, "permanent mac");
		ASSERT_EQ(state, NUD_PERMANENT, "permanent state");
	}
	ASSERT_EQ(fg_nl_neigh_lookup(e->ifindex0, &a3, AF_INET, mac, &state),
		  -ENOENT, "lookup missing");

	/* A bare NTF_USE would turn the static entry INCOMPLETE. */
	check_resolve_keeps(e, "10.250.0.2", mac2, NUD_PERMANENT);
	ASSERT_OK(fg_sh("ip neigh add 10.250.0.4 lladdr 02:00:00:00:00:04 dev %s nud reachable && "
			"ip neigh add 10.250.0.5 lladdr 02:00:00:00:00:05 dev %s nud stale",
			e->d0, e->d0), "ip neigh add reachable/stale");
	check_resolve_keeps(e, "10.250.0.4", mac4, STATES_WITH_MAC);
	check_resolve_keeps(e, "10.250.0.5", mac5, STATES_WITH_MAC);

	/* A new address: an entry appears, resolving (or NOARP on a
	 * dummy), never PERMANENT. */
	if (ASSERT_OK(fg_nl_neigh_resolve(e->ifindex0, &a3, AF_INET),
		      "resolve new") &&
	    ASSERT_OK(fg_nl_neigh_lookup(e->ifindex0, &a3, AF_INET, mac,
					 &state), "lookup resolved"))
		ASSERT_FALSE(state & NUD_PERMANENT, "not permanent");
	fg_sh("ip neigh show dev %s", e->d0);

	if (e->have_v6 &&
	    ASSERT_OK(fg_nl_neigh_resolve(e->ifindex0, &a6, AF_INET6),
		      "resolve new v6") &&
	    ASSERT_OK(fg_nl_neigh_lookup(e->ifindex0, &a6, AF_INET6, NULL,
					 &state), "lookup resolved v6"))
		ASSERT_FALSE(state & NUD_PERMANENT, "v6 not permanent");

	ASSERT_ERR(fg_nl_neigh_resolve(999999, &a3, AF_INET),
		   "resolve on unknown ifindex");
}

/* Runs @cmd and waits up to @timeout_ms for @want. */
static const struct fg_nl_event *
act_and_wait(struct fg_nl_monitor *mon, struct ev_log *log,
	     const struct fg_nl_event *want, int timeout_ms, const char *cmd)
{
	const struct fg_nl_event *ev;

	log->n = 0;
	if (!ASSERT_OK(fg_sh("%s", cmd), cmd))
		return NULL;
	ev = ev_wait(mon, log, want, timeout_ms);
	_CHECK(!ev, cmd, "no %s event for ifindex %d within %d ms (%d seen)",
	       fg_nl_event_name(want->type), want->ifindex, timeout_ms,
	       log->n);
	return ev;
}

static void monitor_addrs(struct nl_env *e, struct fg_nl_monitor *mon,
			  struct ev_log *log)
{
	struct fg_nl_event want = {
		.type = FG_NL_EV_ADDR_ADD, .ifindex = e->ifindex0,
		.family = AF_INET, .addr = addr4("10.250.0.50"),
	};
	const struct fg_nl_event *ev;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "ip addr add 10.250.0.50/24 dev %s", e->d0);
	ev = act_and_wait(mon, log, &want, 1000, cmd);
	if (ev)
		ASSERT_EQ(ev->prefixlen, 24, "prefixlen");

	want.type = FG_NL_EV_ADDR_DEL;
	snprintf(cmd, sizeof(cmd), "ip addr del 10.250.0.50/24 dev %s", e->d0);
	act_and_wait(mon, log, &want, 1000, cmd);

	if (!e->have_v6)
		return;
	want.type = FG_NL_EV_ADDR_ADD;
	want.family = AF_INET6;
	want.addr = addr6("fd00:250::50");
	snprintf(cmd, sizeof(cmd), "ip addr add fd00:250::50/64 dev %s nodad",
		 e->d0);
	act_and_wait(mon, log, &want, 1000, cmd);
}

static void monitor_neighs(struct nl_env *e, struct fg_nl_monitor *mon,
			   struct ev_log *log)
{
	struct fg_nl_event want = {
		.type = FG_NL_EV_NEIGH_CHANGE, .ifindex = e->ifindex0,
		.family = AF_INET, .addr = addr4("10.250.0.60"),
		.nud_state = NUD_PERMANENT,
	};
	char cmd[128];

	snprintf(cmd, sizeof(cmd),
		 "ip neigh add 10.250.0.60 lladdr 02:00:00:00:00:60 dev %s nud permanent",
		 e->d0);
	act_and_wait(mon, log, &want, 1000, cmd);

	want.nud_state = NUD_NONE;
	snprintf(cmd, sizeof(cmd), "ip neigh del 10.250.0.60 dev %s", e->d0);
	act_and_wait(mon, log, &want, 1000, cmd);
}

static void monitor_links(struct nl_env *e, struct fg_nl_monitor *mon,
			  struct ev_log *log)
{
	struct fg_nl_event want = {
		.type = FG_NL_EV_LINK_DOWN, .ifindex = e->ifindex1,
	};
	const struct fg_nl_event *ev;
	char d2[IF_NAMESIZE], d3[IF_NAMESIZE], cmd[128];
	int ifindex2;

	snprintf(cmd, sizeof(cmd), "ip link set %s down", e->d1);
	ev = act_and_wait(mon, log, &want, 1000, cmd);
	if (ev)
		ASSERT_STREQ(ev->ifname, e->d1, "ifname");

	/* Carrier (IFF_RUNNING) follows through linkwatch, which may take
	 * up to a second. */
	want.type = FG_NL_EV_LINK_UP;
	snprintf(cmd, sizeof(cmd), "ip link set %s up", e->d1);
	act_and_wait(mon, log, &want, 3000, cmd);

	snprintf(d2, sizeof(d2), "%sd2", test__prefix());
	snprintf(d3, sizeof(d3), "%sd3", test__prefix());
	if (!ASSERT_OK(link_add(e, d2, d3), "add d2"))
		return;
	ifindex2 = if_nametoindex(d2);
	want.type = FG_NL_EV_LINK_DEL;
	want.ifindex = ifindex2;
	snprintf(cmd, sizeof(cmd), "ip link del %s", d2);
	act_and_wait(mon, log, &want, 1000, cmd);
	if (!e->veth)
		fg_sh("ip link del %s", d3);
}

static void subtest_monitor(struct nl_env *e)
{
	struct fg_nl_monitor *mon = NULL;
	struct ev_log *log;

	log = calloc(1, sizeof(*log));
	if (!ASSERT_OK_PTR(log, "calloc"))
		return;
	if (!ASSERT_OK(fg_nl_monitor_open(&mon), "monitor_open"))
		goto out;
	ASSERT_GE(fg_nl_monitor_fd(mon), 0, "monitor_fd");
	ASSERT_EQ(fg_nl_monitor_process(mon, ev_record, log), 0,
		  "nothing pending");

	monitor_addrs(e, mon, log);
	monitor_neighs(e, mon, log);
	monitor_links(e, mon, log);
out:
	fg_nl_monitor_close(mon);
	free(log);
}

static int count_type(const struct ev_log *log, enum fg_nl_event_type type)
{
	int i, n = 0;

	for (i = 0; i < log->n; i++)
		n += log->ev[i].type == type;
	return n;
}

static int stop_cb(const struct fg_nl_event *ev, void *ctx)
{
	return 42;
}

static void subtest_monitor_resync(struct nl_env *e)
{
	struct fg_nl_monitor *mon = NULL;
	int rcvbuf = 1; /* the kernel raises it to its minimum */
	struct ev_log *log;
	char batch[64];
	int ret;

	log = calloc(1, sizeof(*log));
	if (!ASSERT_OK_PTR(log, "calloc"))
		return;
	if (!ASSERT_OK(fg_nl_monitor_open(&mon), "monitor_open"))
		goto out;
	ASSERT_OK(setsockopt(fg_nl_monitor_fd(mon), SOL_SOCKET, SO_RCVBUF,
			     &rcvbuf, sizeof(rcvbuf)), "shrink rcvbuf");

	/* Far more notifications than the buffer holds, without reading. */
	snprintf(batch, sizeof(batch), "%s/addrs.batch", test__tmpdir());
	if (!ASSERT_OK(fg_sh("for i in $(seq 1 200); do echo \"address add 10.250.2.$i/32 dev %s\"; done > %s && ip -batch %s",
			     e->d0, batch, batch), "ip -batch"))
		goto out;
	ret = fg_nl_monitor_process(mon, ev_record, log);
	ASSERT_GT(ret, 0, "events after overrun");
	ASSERT_EQ(count_type(log, FG_NL_EV_RESYNC), 1, "one RESYNC");
	ASSERT_LT(count_type(log, FG_NL_EV_ADDR_ADD), 200, "some were lost");

	/* The socket keeps working after an overrun, and a callback's
	 * non-zero return stops processing and comes back. */
	ASSERT_OK(fg_sh("ip addr add 10.250.3.1/32 dev %s", e->d0), "ip addr");
	ASSERT_EQ(fg_nl_monitor_process(mon, stop_cb, NULL), 42,
		  "callback stop");
	fg_sh("sed -i 's/address add/address del/' %s && ip -batch %s",
	      batch, batch);
out:
	fg_nl_monitor_close(mon);
	free(log);
}

static bool same_netns(const struct stat *a)
{
	struct stat b;

	return stat("/proc/self/ns/net", &b) == 0 && a->st_ino == b.st_ino &&
	       a->st_dev == b.st_dev;
}

FG_TEST(netlink)
{
	struct nl_env e = { .orig_netns = -1 };
	struct stat orig;
	int err;

	if (!ASSERT_OK(stat("/proc/self/ns/net", &orig), "stat netns"))
		return;
	err = env_setup(&e);
	if (err == -EPERM) {
		test__skip("cannot create a network namespace (not root?)");
		goto out;
	}
	if (!ASSERT_OK(err, "netns and links setup"))
		goto out;

	if (test__start_subtest("ifindex"))
		subtest_ifindex(&e);
	if (test__start_subtest("iface_addrs"))
		subtest_iface_addrs(&e);
	if (test__start_subtest("route_get"))
		subtest_route_get(&e);
	if (test__start_subtest("neigh"))
		subtest_neigh(&e);
	if (test__start_subtest("monitor"))
		subtest_monitor(&e);
	if (test__start_subtest("monitor_resync"))
		subtest_monitor_resync(&e);
out:
	ASSERT_OK(netns_leave(&e), "setns back");
	ASSERT_TRUE(same_netns(&orig), "back in the original netns");
}
